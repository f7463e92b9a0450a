/*
 * stack.h - what the C tests that run against the Hub emulator share:
 * reading the harness's files (manifest.json, tokens.json).
 */
#ifndef HUBFS_TESTS_STACK_H
#define HUBFS_TESTS_STACK_H

#include <cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "hub.h"

/* The whole file, NUL terminated, or NULL.  Caller frees. */
char *stack_slurp(const char *path, size_t *len);
/* The JSON file the environment variable env names, or NULL. */
cJSON *stack_load_json(const char *env);
/* A fixture user's token from tokens.json, or NULL. */
const char *stack_user_token(cJSON *tokens, const char *user);

/*
 * One request to the emulator's control API at HUBFS_TEST_ENDPOINT
 * (/_emu/...): its body, NUL terminated (caller frees), or NULL when the
 * request failed or did not answer 200.
 */
char *stack_control(const char *method, const char *path, const char *body);
/*
 * The same for the cmocka tests: the request must answer 200 (else the
 * test fails); its body (caller frees).  The four below are its common
 * uses: add a fault rule, change the emulator's settings, clear its log,
 * and fail the test unless every fault rule set so far was used up (so
 * the faults really happened).
 */
char *stack_control_ok(const char *method, const char *path, const char *body);
void stack_fault(const char *json);
void stack_configure(const char *json);
void stack_log_clear(void);
void stack_faults_fired(void);
/* Hub requests in the emulator's log whose path contains needle, or -1. */
int stack_hub_requests(const char *needle);
/*
 * count(arg), polled every 20 ms until it reaches want or 5 s pass: a
 * server writes a request's log line after the request's last byte went,
 * so a client can be done before the line is there.  Returns the last
 * count; the caller asserts it.
 */
int stack_poll_count(int (*count)(const void *arg), const void *arg, int want);

/*
 * Test support (sync_fetch.c): GET the bytes [offset, offset + length) of
 * a file at a commit (length 0: to the end) synchronously, following the
 * resolve redirects as the transfer engine does: same-origin hops keep
 * the token, a hop to another origin (the CDN) never carries it.  cb gets
 * the bytes in order with their file offset; a non-zero return aborts and
 * is returned.  Retries 408/429/5xx and cut connections with backoff,
 * resuming after the last byte delivered, for at most stall_seconds
 * without progress.
 */
struct hub_client;
struct hub_error;
int stack_fetch(struct hub_client *c, enum hub_repo_type type, const char *id,
		const char *commit, const char *path, uint64_t offset,
		uint64_t length, hub_data_fn cb, void *arg,
		struct hub_error *err);

#endif

/*
 * stack.h - what the C tests that run against the Hub emulator share:
 * reading the harness's files (manifest.json, tokens.json).
 */
#ifndef HUBFS_TESTS_STACK_H
#define HUBFS_TESTS_STACK_H

#include <cJSON.h>
#include <stddef.h>

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
/* Hub requests in the emulator's log whose path contains needle, or -1. */
int stack_hub_requests(const char *needle);

#endif

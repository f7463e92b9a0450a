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

#endif

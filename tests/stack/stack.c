/*
 * stack.c - helpers shared by the C tests that run against the Hub
 * emulator (see stack.h).
 */
#include "stack.h"

#include <stdio.h>
#include <stdlib.h>

char *stack_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		if (buf) {
			buf[n] = '\0';
			*len = (size_t)n;
		}
	}
	fclose(f);
	return buf;
}

cJSON *stack_load_json(const char *env)
{
	const char *path = getenv(env);
	size_t len;
	char *text = path ? stack_slurp(path, &len) : NULL;
	cJSON *doc = text ? cJSON_Parse(text) : NULL;

	free(text);
	return doc;
}

const char *stack_user_token(cJSON *tokens, const char *user)
{
	cJSON *u =
		cJSON_GetObjectItem(cJSON_GetObjectItem(tokens, "users"), user);

	return cJSON_GetStringValue(cJSON_GetObjectItem(u, "token"));
}

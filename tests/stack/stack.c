/*
 * stack.c - helpers shared by the C tests that run against the Hub
 * emulator (see stack.h).
 */
#include "stack.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct body {
	char *p;
	size_t n;
};

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
	struct body *out = arg;
	size_t len = size * n;
	char *grown = realloc(out->p, out->n + len + 1);

	if (!grown)
		return 0;
	memcpy(grown + out->n, p, len);
	out->n += len;
	grown[out->n] = '\0';
	out->p = grown;
	return len;
}

char *stack_control(const char *method, const char *path, const char *body)
{
	const char *endpoint = getenv("HUBFS_TEST_ENDPOINT");
	struct curl_slist *h =
		curl_slist_append(NULL, "Content-Type: application/json");
	struct body out = { NULL, 0 };
	CURL *e = curl_easy_init();
	long status = 0;
	char url[512];

	if (!endpoint || !e || !h)
		goto fail;
	snprintf(url, sizeof(url), "%s%s", endpoint, path);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	if (body)
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &out);
	if (curl_easy_perform(e) != CURLE_OK)
		goto fail;
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200)
		goto fail;
	curl_easy_cleanup(e);
	curl_slist_free_all(h);
	return out.p ? out.p : strdup("");
fail:
	curl_easy_cleanup(e);
	curl_slist_free_all(h);
	free(out.p);
	return NULL;
}

char *stack_control_ok(const char *method, const char *path, const char *body)
{
	char *text = stack_control(method, path, body);

	assert_non_null(text);
	return text;
}

void stack_fault(const char *json)
{
	free(stack_control_ok("POST", "/_emu/faults", json));
}

void stack_configure(const char *json)
{
	free(stack_control_ok("POST", "/_emu/config", json));
}

void stack_log_clear(void)
{
	free(stack_control_ok("POST", "/_emu/log/clear", NULL));
}

void stack_faults_fired(void)
{
	char *text = stack_control_ok("GET", "/_emu/faults", NULL);
	cJSON *rules = cJSON_Parse(text), *r;

	assert_true(cJSON_IsArray(rules));
	cJSON_ArrayForEach(r, rules)
	{
		cJSON *left = cJSON_GetObjectItem(r, "left");

		if (cJSON_IsNumber(left) && left->valuedouble != 0)
			fail_msg("fault not used up: %s", text);
	}
	cJSON_Delete(rules);
	free(text);
}

int stack_hub_requests(const char *needle)
{
	char *text = stack_control("GET", "/_emu/log", NULL);
	cJSON *log = text ? cJSON_Parse(text) : NULL, *e;
	int n = 0;

	if (!log) {
		free(text);
		return -1;
	}
	cJSON_ArrayForEach(e, log)
	{
		const char *p =
			cJSON_GetStringValue(cJSON_GetObjectItem(e, "path"));

		if (p && strstr(p, needle))
			n++;
	}
	cJSON_Delete(log);
	free(text);
	return n;
}

int stack_poll_count(int (*count)(const void *arg), const void *arg, int want)
{
	int n = count(arg);

	for (int i = 0; i < 250 && n < want; i++) {
		usleep(20000);
		n = count(arg);
	}
	return n;
}

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

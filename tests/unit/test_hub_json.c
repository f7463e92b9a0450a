/*
 * test_hub_json.c - the parsers of the Hub's JSON bodies (hub/json.c), the
 * token's sources and cleaning (hub/auth.c) and client construction, all
 * without network.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hub_int.h"

#define SHA1 "0123456789abcdef0123456789abcdef01234567"
#define SHA256                                                                 \
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* hub_default_endpoint() into a buffer of the test's own. */
static const char *default_endpoint(void)
{
	static char buf[2048];

	hub_default_endpoint(buf, sizeof(buf));
	return buf;
}

static uint64_t size_of(const char *text, int *rc)
{
	cJSON *v = cJSON_Parse(text);
	uint64_t out = 12345;

	*rc = hub_json_size(v, &out);
	cJSON_Delete(v);
	return out;
}

static void sizes(void **state)
{
	int rc;

	(void)state;
	assert_int_equal(size_of("0", &rc), 0);
	assert_int_equal(rc, 0);
	/* Past INT_MAX, where cJSON's valueint saturates. */
	assert_int_equal(size_of("3000000000", &rc), 3000000000u);
	assert_int_equal(rc, 0);
	assert_int_equal(size_of("9007199254740991", &rc), 9007199254740991u);
	assert_int_equal(rc, 0);
	/* From 2^53 on, a double no longer tells neighbours apart. */
	size_of("9007199254740992", &rc);
	assert_int_equal(rc, -EINVAL);
	size_of("9007199254740993", &rc);
	assert_int_equal(rc, -EINVAL);
	size_of("1e300", &rc);
	assert_int_equal(rc, -EINVAL);
	size_of("-1", &rc);
	assert_int_equal(rc, -EINVAL);
	size_of("1.5", &rc);
	assert_int_equal(rc, -EINVAL);
	size_of("\"5\"", &rc);
	assert_int_equal(rc, -EINVAL);
	size_of("true", &rc);
	assert_int_equal(rc, -EINVAL);
	assert_int_equal(hub_json_size(NULL, &(uint64_t){ 0 }), -EINVAL);
}

static void dates(void **state)
{
	int64_t t = 0;

	(void)state;
	assert_int_equal(hub_parse_iso8601("2023-03-21T09:05:27.000Z", &t), 0);
	assert_int_equal(t, 1679389527);
	assert_int_equal(hub_parse_iso8601("2023-03-21T09:05:27Z", &t), 0);
	assert_int_equal(t, 1679389527);
	assert_int_equal(hub_parse_iso8601("2023-03-21T11:05:27+02:00", &t), 0);
	assert_int_equal(t, 1679389527);
	assert_int_equal(hub_parse_iso8601("1970-01-01T00:00:00.000Z", &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(hub_parse_iso8601("2023-13-21T09:05:27Z", &t),
			 -EINVAL);
	assert_int_equal(hub_parse_iso8601("2023-03-21", &t), -EINVAL);
	assert_int_equal(hub_parse_iso8601("2023-03-21T09:05:27.Z", &t),
			 -EINVAL);
	assert_int_equal(hub_parse_iso8601("2023-03-21T09:05:27Zjunk", &t),
			 -EINVAL);
	assert_int_equal(hub_parse_iso8601("", &t), -EINVAL);
}

static int info_of(const char *text, struct hub_repo_info *out)
{
	cJSON *doc = cJSON_Parse(text);
	int rc = hub_json_repo_info(doc, out);

	cJSON_Delete(doc);
	return rc;
}

static void repo_info(void **state)
{
	struct hub_repo_info i;

	(void)state;
	assert_int_equal(info_of("{\"_id\": \"x\", \"id\": \"org/name\", "
				 "\"sha\": \"" SHA1 "\", \"lastModified\": "
				 "\"2023-03-21T09:05:27.000Z\", \"private\": "
				 "true, \"gated\": \"manual\", \"disabled\": "
				 "false}",
				 &i),
			 0);
	assert_string_equal(i.id, "org/name");
	assert_string_equal(i.sha, SHA1);
	assert_int_equal(i.last_modified, 1679389527);
	assert_true(i.private_repo);
	assert_true(i.gated);
	assert_false(i.disabled);

	assert_int_equal(info_of("{\"id\": \"gpt2\", \"sha\": \"" SHA1 "\", "
				 "\"gated\": false, \"disabled\": true}",
				 &i),
			 0);
	assert_false(i.gated);
	assert_true(i.disabled);
	assert_int_equal(i.last_modified, 0);

	/* The sha becomes a folder name: exactly 40 lowercase hex. */
	assert_int_equal(info_of("{\"id\": \"a/b\", \"sha\": \"0123456789ABCDEF"
				 "0123456789abcdef01234567\"}",
				 &i),
			 -EPROTO);
	assert_int_equal(info_of("{\"id\": \"a/b\", \"sha\": \"abc\"}", &i),
			 -EPROTO);
	assert_int_equal(info_of("{\"id\": \"a/b\"}", &i), -EPROTO);
	assert_int_equal(
		info_of("{\"id\": \"../b\", \"sha\": \"" SHA1 "\"}", &i),
		-EPROTO);
	assert_int_equal(info_of("{\"sha\": \"" SHA1 "\"}", &i), -EPROTO);
	assert_int_equal(info_of("[]", &i), -EPROTO);
}

static int entry_of(const char *text, cJSON **doc, struct hub_entry *e)
{
	*doc = cJSON_Parse(text);
	return hub_json_tree_entry(*doc, e);
}

static void entry_ok(const char *text, struct hub_entry *e)
{
	cJSON *doc;

	assert_int_equal(entry_of(text, &doc, e), 0);
	cJSON_Delete(doc);
}

static void entry_bad(const char *text)
{
	struct hub_entry e;
	cJSON *doc;

	if (entry_of(text, &doc, &e) != -EINVAL)
		fail_msg("accepted: %s", text);
	cJSON_Delete(doc);
}

static void tree_entries(void **state)
{
	struct hub_entry e;
	cJSON *doc;

	(void)state;
	assert_int_equal(
		entry_of("{\"type\": \"file\", \"oid\": \"" SHA1
			 "\", \"size\": 5000000000, \"path\": "
			 "\"dir/model.bin\", \"lfs\": {\"oid\": \"" SHA256
			 "\", \"size\": 5000000000, \"pointerSize\": "
			 "135}, \"xetHash\": \"" SHA256 "\"}",
			 &doc, &e),
		0);
	assert_false(e.is_dir);
	assert_string_equal(e.path, "dir/model.bin");
	assert_int_equal(e.size, 5000000000u);
	assert_string_equal(e.oid, SHA1);
	assert_string_equal(e.lfs_oid, SHA256);
	assert_string_equal(e.xet_hash, SHA256);
	cJSON_Delete(doc);

	entry_ok("{\"type\": \"directory\", \"oid\": \"" SHA1
		 "\", \"size\": 0, "
		 "\"path\": \"dir\"}",
		 &e);
	assert_true(e.is_dir);
	assert_null(e.lfs_oid);
	entry_ok("{\"type\": \"file\", \"oid\": \"" SHA1 "\", \"size\": 0, "
		 "\"path\": \"empty\", \"lfs\": null}",
		 &e);
	assert_int_equal(e.size, 0);
	/* A bad xet hash is dropped, not fatal: it names nothing. */
	entry_ok("{\"type\": \"file\", \"oid\": \"" SHA1 "\", \"size\": 1, "
		 "\"path\": \"x\", \"xetHash\": \"nothex\"}",
		 &e);
	assert_null(e.xet_hash);

	entry_bad("{\"type\": \"file\", \"oid\": \"" SHA1 "\", \"size\": 1, "
		  "\"path\": \"../etc/passwd\"}");
	entry_bad("{\"type\": \"file\", \"oid\": \"" SHA1 "\", \"size\": 1, "
		  "\"path\": \"/abs\"}");
	entry_bad("{\"type\": \"file\", \"oid\": \"" SHA1 "\", \"size\": 1, "
		  "\"path\": \"a//b\"}");
	entry_bad("{\"type\": \"file\", \"oid\": \"" SHA1 "\", \"size\": 1, "
		  "\"path\": \"a/\\u0001b\"}");
	entry_bad("{\"type\": \"file\", \"oid\": \"" SHA1 "\", \"size\": 1}");
	entry_bad("{\"type\": \"file\", \"oid\": \"ABCDEF0123456789ABCDEF"
		  "0123456789abcdef\", \"size\": 1, \"path\": \"x\"}");
	entry_bad("{\"type\": \"file\", \"oid\": \"" SHA1 "0\", \"size\": 1, "
		  "\"path\": \"x\"}");
	entry_bad("{\"type\": \"file\", \"size\": 1, \"path\": \"x\"}");
	entry_bad("{\"type\": \"file\", \"oid\": \"" SHA1 "\", \"size\": -1, "
		  "\"path\": \"x\"}");
	entry_bad("{\"type\": \"file\", \"oid\": \"" SHA1 "\", \"size\": 1.5, "
		  "\"path\": \"x\"}");
	entry_bad("{\"type\": \"file\", \"oid\": \"" SHA1 "\", \"size\": "
		  "9007199254740993, \"path\": \"x\"}");
	entry_bad("{\"type\": \"file\", \"oid\": \"" SHA1 "\", \"path\": "
		  "\"x\"}");
	entry_bad("{\"type\": \"file\", \"oid\": \"" SHA1 "\", \"size\": 4, "
		  "\"path\": \"x\", \"lfs\": {\"oid\": \"" SHA1 "\", \"size\": "
		  "4}}");
	entry_bad("{\"type\": \"file\", \"oid\": \"" SHA1 "\", \"size\": 4, "
		  "\"path\": \"x\", \"lfs\": {\"oid\": \"" SHA256 "\", "
		  "\"size\": 5}}");
	entry_bad("{\"type\": \"unknown\", \"oid\": \"" SHA1 "\", \"size\": 1, "
		  "\"path\": \"x\"}");
	entry_bad("{\"type\": \"directory\", \"oid\": \"" SHA1 "\", \"size\": "
		  "0, \"path\": \"..\"}");
	entry_bad("[]");
}

/* A body parsed the way the client parses it (hub_json_parse rewrites it). */
static int parsed_entry(const char *text, cJSON **doc, struct hub_entry *e)
{
	char *body = strdup(text);

	assert_non_null(body);
	*doc = hub_json_parse(body, strlen(body));
	free(body);
	assert_non_null(*doc);
	return hub_json_tree_entry(*doc, e);
}

static void nul_escapes(void **state)
{
	struct hub_entry e;
	cJSON *doc;

	(void)state;
	/* Plain cJSON would cut these at the NUL: "nul", a valid name. */
	assert_int_equal(parsed_entry("{\"type\": \"file\", \"oid\": \"" SHA1
				      "\", \"size\": 1, \"path\": "
				      "\"nul\\u0000/../evil\"}",
				      &doc, &e),
			 -EINVAL);
	cJSON_Delete(doc);
	assert_int_equal(parsed_entry("{\"type\": \"file\", \"oid\": \"" SHA1
				      "\\u0000\", \"size\": 1, \"path\": "
				      "\"x\"}",
				      &doc, &e),
			 -EINVAL);
	cJSON_Delete(doc);
	/* An escaped backslash before "u0000" is six plain characters. */
	assert_int_equal(parsed_entry("{\"type\": \"file\", \"oid\": \"" SHA1
				      "\", \"size\": 1, \"path\": "
				      "\"a\\\\u0000\"}",
				      &doc, &e),
			 0);
	assert_string_equal(e.path, "a\\u0000");
	cJSON_Delete(doc);
	/* An escaped quote does not end the string. */
	{
		char body[] = "[1, \"\\\"\\u0000\"]";

		doc = hub_json_parse(body, strlen(body));
		assert_non_null(doc);
		assert_string_equal(cJSON_GetArrayItem(doc, 1)->valuestring,
				    "\"\x01");
		cJSON_Delete(doc);
	}
}

static void whoami(void **state)
{
	struct hub_whoami *w = malloc(sizeof(*w));
	cJSON *doc = cJSON_CreateObject(), *orgs;

	(void)state;
	cJSON_AddStringToObject(doc, "name", "alice");
	orgs = cJSON_AddArrayToObject(doc, "orgs");
	for (int i = 0; i < 70; i++) {
		cJSON *o = cJSON_CreateObject();
		char name[16];

		snprintf(name, sizeof(name), i == 1 ? "../x%d" : "org%d", i);
		cJSON_AddStringToObject(o, "name", name);
		cJSON_AddItemToArray(orgs, o);
	}
	assert_int_equal(hub_json_whoami(doc, w), 0);
	assert_string_equal(w->name, "alice");
	assert_int_equal(w->n_orgs, HUB_WHOAMI_ORGS);
	assert_string_equal(w->orgs[0], "org0");
	assert_string_equal(w->orgs[1], "org2"); /* the unsafe one skipped */
	cJSON_DeleteItemFromObject(doc, "name");
	assert_int_equal(hub_json_whoami(doc, w), -EPROTO);
	cJSON_AddStringToObject(doc, "name", "a/b");
	assert_int_equal(hub_json_whoami(doc, w), -EPROTO);
	cJSON_Delete(doc);
	free(w);
}

static void error_messages(void **state)
{
	static const char *cases[][2] = {
		{ "{\"error\": \"Repository not found\"}",
		  "Repository not found" },
		{ "{\"error\": [\"first\", \"second\"]}", "first" },
		{ "{\"errors\": [{\"message\": \"m\"}]}", "m" },
		{ "{\"message\": \"mm\"}", "mm" },
		{ "{\"error\": 5}", "" },
		{ "<html>nope</html>", "" },
		{ "", "" },
	};
	char out[8];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[64];

		hub_json_error_message(cases[i][0], strlen(cases[i][0]), buf,
				       sizeof(buf));
		assert_string_equal(buf, cases[i][1]);
	}
	hub_json_error_message("{\"error\": \"a long message\"}", 27, out,
			       sizeof(out));
	assert_string_equal(out, "a long ");
}

/* ---- The token ------------------------------------------------------- */

static char dir[] = "/tmp/hubfs-test-json-XXXXXX";

static void put_file(const char *path, const char *text, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, n), (ssize_t)n);
	close(fd);
}

static void token_text(const char *content, const char *want)
{
	char path[sizeof(dir) + 8], got[HUB_TOKEN_MAX + 1];
	struct hub_token t;

	snprintf(path, sizeof(path), "%s/tok", dir);
	put_file(path, content, strlen(content));
	assert_int_equal(hub_token_init(&t, path), 0);
	hub_token_copy(&t, got, sizeof(got));
	assert_string_equal(got, want);
	hub_token_destroy(&t);
}

static void token_cleaning(void **state)
{
	(void)state;
	token_text("hf_abc", "hf_abc");
	token_text("  hf_abc \r\n", "hf_abc");
	token_text("hf_a\r\nbc\n", "hf_abc");
	token_text("\n", "");
	token_text("", "");
	token_text("hf_a bc", ""); /* could not go into a header */
}

static void token_reload(void **state)
{
	char path[sizeof(dir) + 8], got[HUB_TOKEN_MAX + 1];
	char big[HUB_TOKEN_MAX + 200];
	struct hub_token t;

	(void)state;
	snprintf(path, sizeof(path), "%s/tok2", dir);
	assert_int_equal(hub_token_init(&t, path), 0); /* no file yet */
	assert_int_equal(hub_token_copy(&t, got, sizeof(got)), 0);
	put_file(path, "hf_one", 6);
	assert_true(hub_token_refresh(&t, false));
	assert_int_equal(hub_token_copy(&t, got, sizeof(got)), 6);
	assert_string_equal(got, "hf_one");
	assert_false(hub_token_refresh(&t, false)); /* unchanged */
	assert_false(hub_token_refresh(&t, true));  /* same token */
	put_file(path, "hf_two_", 7);
	assert_true(hub_token_refresh(&t, false));
	assert_string_equal((hub_token_copy(&t, got, sizeof(got)), got),
			    "hf_two_");
	memset(big, 'a', sizeof(big));
	put_file(path, big, sizeof(big)); /* too long: no token */
	assert_true(hub_token_refresh(&t, false));
	assert_int_equal(hub_token_copy(&t, got, sizeof(got)), 0);
	unlink(path);
	assert_false(hub_token_refresh(&t, false));
	hub_token_destroy(&t);
}

static void token_order(void **state)
{
	struct hub_token_source s;
	char want[sizeof(dir) + 64];

	(void)state;
	unsetenv("HF_TOKEN");
	unsetenv("HUGGING_FACE_HUB_TOKEN");
	unsetenv("HF_TOKEN_PATH");
	unsetenv("HF_HOME");
	unsetenv("XDG_CACHE_HOME");
	setenv("HOME", dir, 1);
	hub_token_source_find(&s, NULL);
	snprintf(want, sizeof(want), "%s/.cache/huggingface/token", dir);
	assert_int_equal(s.kind, HUB_TOKEN_FILE);
	assert_string_equal(s.where, want);
	setenv("XDG_CACHE_HOME", "/xdg", 1);
	hub_token_source_find(&s, NULL);
	assert_string_equal(s.where, "/xdg/huggingface/token");
	setenv("HF_HOME", "~/hf", 1);
	hub_token_source_find(&s, NULL);
	snprintf(want, sizeof(want), "%s/hf/token", dir);
	assert_string_equal(s.where, want);
	setenv("HF_TOKEN_PATH", "${HOME}/t/$NOPE_UNSET_VAR", 1);
	unsetenv("NOPE_UNSET_VAR");
	hub_token_source_find(&s, NULL);
	snprintf(want, sizeof(want), "%s/t/$NOPE_UNSET_VAR", dir);
	assert_string_equal(s.where, want);
	setenv("HUGGING_FACE_HUB_TOKEN", "hf_legacy", 1);
	hub_token_source_find(&s, NULL);
	assert_int_equal(s.kind, HUB_TOKEN_ENV);
	assert_string_equal(s.where, "HUGGING_FACE_HUB_TOKEN");
	setenv("HF_TOKEN", " \n", 1); /* empty once cleaned: not a token */
	hub_token_source_find(&s, NULL);
	assert_string_equal(s.where, "HUGGING_FACE_HUB_TOKEN");
	setenv("HF_TOKEN", "hf_new", 1);
	hub_token_source_find(&s, NULL);
	assert_string_equal(s.where, "HF_TOKEN");
	hub_token_source_find(&s, "/flag/file");
	assert_int_equal(s.kind, HUB_TOKEN_FILE);
	assert_string_equal(s.where, "/flag/file");
	unsetenv("HF_TOKEN");
	unsetenv("HUGGING_FACE_HUB_TOKEN");
	unsetenv("HF_TOKEN_PATH");
	unsetenv("HF_HOME");
	unsetenv("XDG_CACHE_HOME");
}

/* ---- Clients without a network --------------------------------------- */

static void clients(void **state)
{
	struct hub_config cfg = { 0 };
	struct hub_client *c = NULL;
	struct hub_repo_info info;
	struct hub_error err;
	struct hub_whoami me;

	(void)state;
	setenv("HF_ENDPOINT", "http://127.0.0.1:1///", 1);
	assert_string_equal(default_endpoint(), "http://127.0.0.1:1");
	assert_int_equal(hub_client_new(&c, &cfg), 0);
	assert_string_equal(hub_client_endpoint(c), "http://127.0.0.1:1");
	/* Nothing listens on port 1: EIO at once, with the cause. */
	assert_int_equal(hub_repo_info(c, HUB_MODEL, "a/b", NULL, &info, &err),
			 -EIO);
	assert_int_equal(err.status, 0);
	assert_int_equal(err.transport, CURLE_COULDNT_CONNECT);
	hub_client_free(c);
	unsetenv("HF_ENDPOINT");
	assert_string_equal(default_endpoint(), "https://huggingface.co");
	{
		char small[8] = "x";

		/* Too small a buffer, or only slashes: refused, never cut. */
		assert_int_equal(hub_default_endpoint(small, sizeof(small)),
				 -EINVAL);
		assert_string_equal(small, "");
		setenv("HF_ENDPOINT", "///", 1);
		assert_int_equal(hub_default_endpoint(small, sizeof(small)),
				 -EINVAL);
		unsetenv("HF_ENDPOINT");
	}

	cfg.endpoint = "ftp://example.com";
	assert_int_equal(hub_client_new(&c, &cfg), -EINVAL);
	cfg.endpoint = "not a url";
	assert_int_equal(hub_client_new(&c, &cfg), -EINVAL);
	cfg.endpoint = "https://hub.example/";
	cfg.offline = true;
	assert_int_equal(hub_client_new(&c, &cfg), 0);
	assert_string_equal(hub_client_endpoint(c), "https://hub.example");
	assert_int_equal(hub_whoami(c, &me, &err), -ENETDOWN);
	assert_int_equal(
		hub_repo_info(c, HUB_MODEL, "a/b", "main", &info, &err),
		-ENETDOWN);
	hub_client_free(c);
	hub_client_free(NULL);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[sizeof(dir) + 16];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sizes),
		cmocka_unit_test(dates),
		cmocka_unit_test(repo_info),
		cmocka_unit_test(tree_entries),
		cmocka_unit_test(nul_escapes),
		cmocka_unit_test(whoami),
		cmocka_unit_test(error_messages),
		cmocka_unit_test(token_cleaning),
		cmocka_unit_test(token_reload),
		cmocka_unit_test(token_order),
		cmocka_unit_test(clients),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

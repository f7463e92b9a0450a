/*
 * test_hub_names.c - repo ids, hex checks, etags, safe paths,
 * percent-encoding, redirect resolution and error mapping in hub/.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hub.h"

static void repo_ids(void **state)
{
	(void)state;
	assert_true(hub_repo_id_valid("gpt2"));
	assert_true(hub_repo_id_valid("openai-community/gpt2"));
	assert_true(hub_repo_id_valid("a_b.c-d/E.F_g"));
	assert_false(hub_repo_id_valid(""));
	assert_false(hub_repo_id_valid("/gpt2"));
	assert_false(hub_repo_id_valid("org/"));
	assert_false(hub_repo_id_valid("a/b/c"));
	assert_false(hub_repo_id_valid("org/../x"));
	assert_false(hub_repo_id_valid(".."));
	assert_false(hub_repo_id_valid("org/na--me"));
	assert_false(hub_repo_id_valid("org/-x"));
	assert_false(hub_repo_id_valid("org/x."));
	assert_false(hub_repo_id_valid("org/x y"));
	assert_false(hub_repo_id_valid("org/x%2F"));
	char longname[120];

	memset(longname, 'a', 97);
	longname[97] = '\0';
	assert_false(hub_repo_id_valid(longname));
	longname[96] = '\0';
	assert_true(hub_repo_id_valid(longname));
}

static void hex_ids(void **state)
{
	(void)state;
	assert_true(
		hub_is_commit_id("0123456789abcdef0123456789abcdef01234567"));
	assert_false(
		hub_is_commit_id("0123456789ABCDEF0123456789abcdef01234567"));
	assert_false(
		hub_is_commit_id("0123456789abcdef0123456789abcdef0123456"));
	assert_false(
		hub_is_commit_id("0123456789abcdef0123456789abcdef012345678"));
	assert_false(
		hub_is_commit_id("../../../../../../../../../../etc/passwd"));
	assert_true(hub_is_sha256("9be78edb5a5436aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
				  "aaaaaaaaaaaaaaaaaaaa"));
	assert_false(hub_is_sha256("9be78edb"));
}

static void etags(void **state)
{
	char e[HUB_ETAG_MAX + 1];

	(void)state;
	assert_int_equal(
		hub_etag_normalize(
			"\"a16a55fda99d2f2e7b69cce5cf93ff4ad3049930\"", e),
		0);
	assert_string_equal(e, "a16a55fda99d2f2e7b69cce5cf93ff4ad3049930");
	assert_int_equal(
		hub_etag_normalize(
			"W/\"A16A55FDA99D2F2E7B69CCE5CF93FF4AD3049930\"", e),
		0);
	assert_string_equal(e, "a16a55fda99d2f2e7b69cce5cf93ff4ad3049930");
	assert_int_equal(hub_etag_normalize("7c5d3f4b8b76583b422fcb9189ad6c89d5"
					    "d97a094541ce8932dce3ecabde1421",
					    e),
			 0);
	assert_int_equal(hub_etag_normalize("\"1234-5678\"", e), -EINVAL);
	assert_int_equal(hub_etag_normalize("\"../../etc/passwd\"", e),
			 -EINVAL);
	assert_int_equal(hub_etag_normalize("", e), -EINVAL);
	assert_int_equal(
		hub_etag_normalize(
			"\"a16a55fda99d2f2e7b69cce5cf93ff4ad304993g\"", e),
		-EINVAL);
}

static void paths(void **state)
{
	char longseg[300], longpath[5000];

	(void)state;
	assert_true(hub_path_safe("config.json"));
	assert_true(hub_path_safe("dir with space/\xc3\xbcn\xc3\xaf.txt"));
	assert_true(hub_path_safe("a/.hidden/..b/c.."));
	assert_false(hub_path_safe(""));
	assert_false(hub_path_safe("/etc/passwd"));
	assert_false(hub_path_safe("a/../../b"));
	assert_false(hub_path_safe(".."));
	assert_false(hub_path_safe("a/./b"));
	assert_false(hub_path_safe("a//b"));
	assert_false(hub_path_safe("a/"));
	assert_false(hub_path_safe("a\nb"));
	assert_false(hub_path_safe("a\x7f"));
	assert_false(hub_path_safe("bad\xff utf8"));
	assert_false(hub_path_safe("overlong \xc0\xaf"));
	assert_false(hub_path_safe("surrogate \xed\xa0\x80"));
	memset(longseg, 'x', 256);
	longseg[256] = '\0';
	assert_false(hub_path_safe(longseg));
	longseg[255] = '\0';
	assert_true(hub_path_safe(longseg));
	for (size_t i = 0; i < sizeof(longpath) - 1; i++)
		longpath[i] = i % 100 == 99 ? '/' : 'p';
	longpath[sizeof(longpath) - 2] = 'p';
	longpath[sizeof(longpath) - 1] = '\0';
	assert_false(hub_path_safe(longpath));
}

static void escaping(void **state)
{
	char *s;

	(void)state;
	s = hub_escape_segment("refs/pr/1");
	assert_string_equal(s, "refs%2Fpr%2F1");
	free(s);
	s = hub_escape_path("to?/awful?filename%you:should,never.give");
	assert_string_equal(
		s, "to%3F/awful%3Ffilename%25you%3Ashould%2Cnever.give");
	free(s);
	s = hub_escape_path("dir with space/\xc3\xbc~_-.txt");
	assert_string_equal(s, "dir%20with%20space/%C3%BC~_-.txt");
	free(s);

	assert_int_equal(hub_unescape("refs%2Fpr%2f1", &s), 0);
	assert_string_equal(s, "refs/pr/1");
	free(s);
	assert_int_equal(hub_unescape("a+b%20c", &s), 0);
	assert_string_equal(s, "a+b c");
	free(s);
	assert_int_equal(hub_unescape("bad%2", &s), -EINVAL);
	assert_null(s);
	assert_int_equal(hub_unescape("bad%zz", &s), -EINVAL);
	assert_int_equal(hub_unescape("nul%00byte", &s), -EINVAL);
	assert_int_equal(hub_unescape("end%", &s), -EINVAL);
}

static void locations(void **state)
{
	char *u;
	const char *req =
		"http://127.0.0.1:8080/org/name/resolve/main/config.json";

	(void)state;
	assert_int_equal(hub_resolve_location(req,
					      "/api/resolve-cache/models/org/"
					      "name/abc/config.json?x=1",
					      &u),
			 0);
	assert_string_equal(u, "http://127.0.0.1:8080/api/resolve-cache/models/"
			       "org/name/abc/config.json?x=1");
	free(u);
	assert_int_equal(hub_resolve_location(
				 req, "https://cdn.example/blobs/ab?sig=1", &u),
			 0);
	assert_string_equal(u, "https://cdn.example/blobs/ab?sig=1");
	free(u);
	assert_int_equal(hub_resolve_location(req, "other.json", &u), 0);
	assert_string_equal(
		u, "http://127.0.0.1:8080/org/name/resolve/main/other.json");
	free(u);
	assert_int_equal(hub_resolve_location(req, "//cdn.example:81/x", &u),
			 0);
	assert_string_equal(u, "http://cdn.example:81/x");
	free(u);
	assert_int_equal(hub_resolve_location(req, "file:///etc/passwd", &u),
			 -EPROTO);
	assert_null(u);
	assert_int_equal(hub_resolve_location(req, "ftp://h/x", &u), -EPROTO);
	assert_int_equal(hub_resolve_location(req, "", &u), -EPROTO);

	assert_true(hub_same_origin("http://127.0.0.1:8080/a",
				    "http://127.0.0.1:8080/b?c"));
	assert_true(hub_same_origin("https://HuggingFace.co/a",
				    "https://huggingface.co:443/"));
	assert_false(hub_same_origin("http://127.0.0.1:8080/a",
				     "http://127.0.0.1:8081/a"));
	assert_false(hub_same_origin("http://h/a", "https://h/a"));
	assert_false(hub_same_origin("http://h/a", "http://h.evil/a"));
	assert_false(hub_same_origin("http://h/a", "not a url"));

	/* A next-page Link naming the Hub otherwise, asked of the endpoint. */
	assert_int_equal(hub_rebase_url("http://127.0.0.1:8080",
					"https://huggingface.co/api/models/"
					"a/b/tree/c?recursive=1&cursor=x%3D",
					&u),
			 0);
	assert_string_equal(u, "http://127.0.0.1:8080/api/models/a/b/tree/"
			       "c?recursive=1&cursor=x%3D");
	free(u);
	assert_int_equal(hub_rebase_url("http://m/hub", "http://h/api/x", &u),
			 0);
	assert_string_equal(u, "http://m/hub/api/x");
	free(u);
	assert_int_equal(hub_rebase_url("http://m", "not a url", &u), -EPROTO);
	assert_null(u);
}

static void errors(void **state)
{
	struct hub_error e = { 0 };
	char buf[128];

	(void)state;
	e.status = 401;
	assert_int_equal(hub_error_errno(&e), EACCES);
	e.status = 403;
	assert_int_equal(hub_error_errno(&e), EACCES);
	e.status = 404;
	assert_int_equal(hub_error_errno(&e), ENOENT);
	e.status = 503;
	assert_int_equal(hub_error_errno(&e), EIO);
	e.status = 0;
	e.transport = 7;
	assert_int_equal(hub_error_errno(&e), EIO);

	e.status = 404;
	strcpy(e.code, "EntryNotFound");
	strcpy(e.message, "Entry not found");
	assert_string_equal(hub_error_describe(&e, buf, sizeof(buf)),
			    "HTTP 404 EntryNotFound: Entry not found");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(repo_ids), cmocka_unit_test(hex_ids),
		cmocka_unit_test(etags),    cmocka_unit_test(paths),
		cmocka_unit_test(escaping), cmocka_unit_test(locations),
		cmocka_unit_test(errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_hub_headers.c - the response-header parsers of hub/headers.c.
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

static void content_range_forms(void **state)
{
	struct hub_content_range r;

	(void)state;
	assert_int_equal(hub_parse_content_range("bytes 0-99/1000", &r), 0);
	assert_false(r.unsatisfied);
	assert_true(r.total_known);
	assert_int_equal(r.first, 0);
	assert_int_equal(r.last, 99);
	assert_int_equal(r.total, 1000);

	/* Sizes past 2^32 and 2^53 keep every bit. */
	assert_int_equal(
		hub_parse_content_range(
			"bytes "
			"9007199254740993-9007199254740993/9007199254740995",
			&r),
		0);
	assert_true(r.first == 9007199254740993ULL);
	assert_true(r.total == 9007199254740995ULL);

	assert_int_equal(hub_parse_content_range("bytes 5-9/*", &r), 0);
	assert_false(r.total_known);
	assert_int_equal(r.last, 9);

	assert_int_equal(hub_parse_content_range("bytes */1234", &r), 0);
	assert_true(r.unsatisfied);
	assert_int_equal(r.total, 1234);

	assert_int_equal(hub_parse_content_range("Bytes 1-1/2 ", &r), 0);
}

static void content_range_refusals(void **state)
{
	static const char *bad[] = {
		"",
		"bytes",
		"bytes=0-1/2",
		"bytes 1-0/5",	 /* last before first */
		"bytes 0-10/10", /* last past the end */
		"bytes -1-5/10",
		"bytes +1-5/10",
		"bytes 0-5/10x",
		"bytes 0-5",
		"bytes */*",
		"bytes 0-99999999999999999999/5",
		"items 0-1/2",
		"bytes 0 -1/2",
	};
	struct hub_content_range r;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(hub_parse_content_range(bad[i], &r), -EINVAL);
}

static void link_next(void **state)
{
	char *url;

	(void)state;
	assert_int_equal(hub_parse_link_next(
				 "<https://huggingface.co/api/models/x/tree/"
				 "main?cursor=abc&recursive=1>; rel=\"next\"",
				 &url),
			 0);
	assert_string_equal(url, "https://huggingface.co/api/models/x/tree/"
				 "main?cursor=abc&recursive=1");
	free(url);

	/* next after another link, unquoted rel, several rel values */
	assert_int_equal(hub_parse_link_next("<http://a/prev>; rel=prev, "
					     "<http://a/n>;rel=\"last next\"",
					     &url),
			 0);
	assert_string_equal(url, "http://a/n");
	free(url);

	/* parameters other than rel are skipped, even with commas in quotes */
	assert_int_equal(
		hub_parse_link_next("</p2>; title=\"a;b\"; rel=next", &url), 0);
	assert_string_equal(url, "/p2");
	free(url);

	assert_int_equal(
		hub_parse_link_next("<http://a/p>; rel=\"prev\"", &url),
		-ENOENT);
	assert_null(url);
	assert_int_equal(hub_parse_link_next("", &url), -ENOENT);
	assert_int_equal(hub_parse_link_next("http://a/n; rel=next", &url),
			 -EINVAL);
	assert_int_equal(hub_parse_link_next("<http://a/n; rel=next", &url),
			 -EINVAL);
	assert_int_equal(hub_parse_link_next("<>; rel=next", &url), -EINVAL);
	assert_int_equal(hub_parse_link_next("<http://a>; rel=\"next", &url),
			 -EINVAL);
	assert_int_equal(hub_parse_link_next("<http://a> junk; rel=next", &url),
			 -EINVAL);
}

/* A resolve's Xet links (hub-api.md 14.3): rel matched as a whole word. */
static void link_rel(void **state)
{
	const char *xet = "<https://hub/api/models/o/n/xet-read-token/c>; "
			  "rel=\"xet-auth\", <https://cas/v1/reconstructions/"
			  "h>; rel=\"xet-reconstruction-info\"";
	char *url;

	(void)state;
	assert_int_equal(hub_parse_link_rel(xet, "xet-auth", &url), 0);
	assert_string_equal(url, "https://hub/api/models/o/n/xet-read-token/c");
	free(url);
	assert_int_equal(
		hub_parse_link_rel(xet, "xet-reconstruction-info", &url), 0);
	assert_string_equal(url, "https://cas/v1/reconstructions/h");
	free(url);
	assert_int_equal(hub_parse_link_rel(xet, "xet", &url), -ENOENT);
	assert_int_equal(hub_parse_link_rel(xet, "next", &url), -ENOENT);
	assert_int_equal(hub_parse_link_rel("<http://a>; rel=XET-AUTH",
					    "xet-auth", &url),
			 0);
	free(url);
}

static void ratelimit(void **state)
{
	struct hub_ratelimit rl;
	struct hub_ratelimit_policy pol;

	(void)state;
	assert_int_equal(hub_parse_ratelimit("\"resolvers\";r=2998;t=172", &rl),
			 0);
	assert_string_equal(rl.bucket, "resolvers");
	assert_int_equal(rl.remaining, 2998);
	assert_int_equal(rl.reset, 172);

	assert_int_equal(hub_parse_ratelimit("\"api\";r=0;t=5", &rl), 0);
	assert_int_equal(rl.remaining, 0);

	assert_int_equal(
		hub_parse_ratelimit("limit=100, remaining=7, reset=30", &rl),
		0);
	assert_int_equal(rl.remaining, 7);
	assert_int_equal(rl.reset, 30);

	assert_int_equal(hub_parse_ratelimit("\"api\";r=-1;t=5", &rl), -EINVAL);
	assert_int_equal(hub_parse_ratelimit("\"api\";r=x", &rl), -EINVAL);
	assert_int_equal(hub_parse_ratelimit("\"api", &rl), -EINVAL);
	assert_int_equal(hub_parse_ratelimit("\"api\"", &rl), -EINVAL);
	assert_int_equal(hub_parse_ratelimit("", &rl), -EINVAL);

	assert_int_equal(
		hub_parse_ratelimit_policy(
			"\"fixed window\";\"resolvers\";q=3000;w=300", &pol),
		0);
	assert_string_equal(pol.bucket, "resolvers");
	assert_int_equal(pol.quota, 3000);
	assert_int_equal(pol.window, 300);
	assert_int_equal(
		hub_parse_ratelimit_policy("\"fixed window\";w=300", &pol),
		-EINVAL);
}

static void retry_after(void **state)
{
	long s;
	time_t now = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */

	(void)state;
	assert_int_equal(hub_parse_retry_after("120", now, &s), 0);
	assert_int_equal(s, 120);
	assert_int_equal(hub_parse_retry_after(" 0 ", now, &s), 0);
	assert_int_equal(s, 0);
	assert_int_equal(hub_parse_retry_after("99999999", now, &s), 0);
	assert_int_equal(s, 24 * 3600);
	assert_int_equal(
		hub_parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now, &s),
		0);
	assert_int_equal(s, 30);
	assert_int_equal(
		hub_parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now, &s),
		0);
	assert_int_equal(s, 0);
	assert_int_equal(hub_parse_retry_after("-5", now, &s), -EINVAL);
	assert_int_equal(hub_parse_retry_after("5s", now, &s), -EINVAL);
	assert_int_equal(hub_parse_retry_after("soon", now, &s), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(content_range_forms),
		cmocka_unit_test(content_range_refusals),
		cmocka_unit_test(link_next),
		cmocka_unit_test(link_rel),
		cmocka_unit_test(ratelimit),
		cmocka_unit_test(retry_after),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

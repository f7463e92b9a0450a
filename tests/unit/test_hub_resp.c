/*
 * test_hub_resp.c - what hub/client.c makes of a response without any
 * I/O: the header capture (hub_call_on_header) and the wait before a retry
 * (hub_backoff_delay: what the server asks for, else exponential).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "hub_int.h"

static void exponential_without_an_ask(void **state)
{
	struct hub_resp resp;

	(void)state;
	memset(&resp, 0, sizeof(resp));
	assert_int_equal(hub_backoff_delay(0, &resp), 1);
	assert_int_equal(hub_backoff_delay(1, &resp), 2);
	assert_int_equal(hub_backoff_delay(2, &resp), 4);
	assert_int_equal(hub_backoff_delay(3, &resp), 8);
	assert_int_equal(hub_backoff_delay(9, NULL), 8);
}

static void server_asks(void **state)
{
	struct hub_resp resp;

	(void)state;
	memset(&resp, 0, sizeof(resp));
	snprintf(resp.ratelimit, sizeof(resp.ratelimit),
		 "\"resolvers\";r=0;t=5");
	assert_int_equal(hub_backoff_delay(0, &resp), 6);
	/* Requests left: t= is not an ask; Retry-After then is. */
	snprintf(resp.ratelimit, sizeof(resp.ratelimit), "\"api\";r=3;t=5");
	snprintf(resp.retry_after, sizeof(resp.retry_after), "7");
	assert_int_equal(hub_backoff_delay(0, &resp), 8);
}

/*
 * Found by fuzz_headers: t=LONG_MAX parsed, and the + 1 overflowed.  A
 * huge t= is capped at a day, as Retry-After is.
 */
static void huge_reset_is_capped(void **state)
{
	struct hub_resp resp;

	(void)state;
	memset(&resp, 0, sizeof(resp));
	snprintf(resp.ratelimit, sizeof(resp.ratelimit), "\"api\";r=0;t=%ld",
		 LONG_MAX);
	assert_int_equal(hub_backoff_delay(0, &resp), 24L * 3600 + 1);
	snprintf(resp.ratelimit, sizeof(resp.ratelimit), "\"api\";r=0;t=%ld",
		 24L * 3600 - 1);
	assert_int_equal(hub_backoff_delay(0, &resp), 24L * 3600);
}

/* One header line into call, as libcurl hands it over. */
static void header(struct hub_call *call, const char *line, size_t n)
{
	char buf[512];

	assert_true(n <= sizeof(buf));
	memcpy(buf, line, n); /* libcurl's buffer is writable, not a string */
	assert_int_equal(hub_call_on_header(buf, 1, n, call), n);
}

#define HEADER(call, lit) header(call, lit, sizeof(lit) - 1)

static void headers_kept(void **state)
{
	struct hub_call call = { 0 };

	(void)state;
	HEADER(&call, "HTTP/1.1 206 Partial Content\r\n");
	HEADER(&call, "content-range:  bytes 0-9/100 \r\n");
	HEADER(&call, "X-Error-Message: "
		      "a long message\r\n");
	assert_int_equal(call.resp.status, 206);
	assert_string_equal(call.resp.content_range, "bytes 0-9/100");
	assert_string_equal(call.resp.error_message, "a long message");
	HEADER(&call, "x-mirror-slice: 1048576\r\n"); /* a mirror's unit */
	assert_string_equal(call.resp.mirror_slice, "1048576");
	/* A new response forgets the last one's headers. */
	HEADER(&call, "HTTP/2 200\r\n");
	assert_int_equal(call.resp.status, 200);
	assert_string_equal(call.resp.content_range, "");
	assert_string_equal(call.resp.mirror_slice, "");
	hub_call_reset(&call);
}

/*
 * Found by fuzz_response: a parsed value was cut to fit its field, so a
 * Content-Range padded past 95 bytes, or with a NUL inside, read as
 * another range ("bytes 0-9/100" of a 1000000-byte file).  Such a value
 * is now refused; a message is still cut to fit.
 */
static void long_or_nul_values_refused(void **state)
{
	struct hub_call call = { 0 };
	struct hub_content_range cr;
	char line[400], msg[400];
	int n;

	(void)state;
	HEADER(&call, "HTTP/1.1 206 Partial Content\r\n");
	n = snprintf(line, sizeof(line),
		     "Content-Range: bytes%90s0-9/1000000\r\n", "");
	header(&call, line, (size_t)n);
	assert_int_equal(hub_parse_content_range(call.resp.content_range, &cr),
			 -EINVAL);
	HEADER(&call, "Content-Range: bytes 0-9/100\0"
		      "0000\r\n");
	assert_int_equal(hub_parse_content_range(call.resp.content_range, &cr),
			 -EINVAL);
	HEADER(&call, "X-Repo-Commit: 0123456789abcdef0123456789abcdef01234567"
		      "0123456789\r\n");
	assert_string_not_equal(call.resp.repo_commit,
				"0123456789abcdef0123456789abcdef01234567");
	memset(msg, 'm', sizeof(msg));
	n = snprintf(line, sizeof(line), "X-Error-Message: %.300s\r\n", msg);
	header(&call, line, (size_t)n);
	assert_int_equal(strlen(call.resp.error_message),
			 sizeof(call.resp.error_message) - 1);
	hub_call_reset(&call);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(exponential_without_an_ask),
		cmocka_unit_test(server_asks),
		cmocka_unit_test(huge_reset_is_capped),
		cmocka_unit_test(headers_kept),
		cmocka_unit_test(long_or_nul_values_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

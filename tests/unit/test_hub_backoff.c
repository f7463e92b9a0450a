/*
 * test_hub_backoff.c - the wait before a retry (hub_backoff_delay in
 * hub/client.c): what the server asks for, else exponential.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(exponential_without_an_ask),
		cmocka_unit_test(server_asks),
		cmocka_unit_test(huge_reset_is_capped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

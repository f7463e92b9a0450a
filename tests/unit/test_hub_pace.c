/*
 * test_hub_pace.c - the pure helpers of the transfer engine: the pacing of
 * resolves by RateLimit headers (hub/pace.c) and the etag comparison that
 * tells a wrong file (hub_etag_conflict in hub/names.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "hub_int.h"

#define RES(r, t) "\"resolvers\";r=" #r ";t=" #t
#define POLICY(q) "\"fixed window\";\"resolvers\";q=" #q ";w=300"

static void assert_near(double got, double want)
{
	if (fabs(got - want) > 1e-6)
		fail_msg("got %f, want %f", got, want);
}

static void unknown_budget_never_waits(void **state)
{
	struct hub_pacer p;

	(void)state;
	hub_pacer_init(&p);
	assert_near(hub_pacer_delay(&p, 0), 0);
	for (int i = 0; i < 100; i++)
		hub_pacer_take(&p, 0);
	assert_near(hub_pacer_delay(&p, 0), 0);
	/* No answer at all, or one without the header: still unknown. */
	hub_pacer_done(&p, 0, NULL, NULL);
	hub_pacer_done(&p, 0, "", "");
	assert_near(hub_pacer_delay(&p, 0), 0);
	assert_int_equal(p.remaining, -1);
}

static void plenty_left_never_waits(void **state)
{
	struct hub_pacer p;

	(void)state;
	hub_pacer_init(&p);
	hub_pacer_take(&p, 0);
	hub_pacer_done(&p, 0, RES(2998, 172), POLICY(3000));
	assert_int_equal(p.quota, 3000);
	assert_int_equal(p.remaining, 2998);
	for (int i = 0; i < 100; i++) {
		assert_near(hub_pacer_delay(&p, 1), 0);
		hub_pacer_take(&p, 1);
	}
	assert_int_equal(p.remaining, 2898);
}

/* Below a tenth of the quota the rest is spread over the window. */
static void low_budget_is_spread_over_the_window(void **state)
{
	struct hub_pacer p;
	double t = 0, last = 0;
	int taken = 0;

	(void)state;
	hub_pacer_init(&p);
	hub_pacer_take(&p, 0);
	hub_pacer_done(&p, 0, RES(100, 99), POLICY(3000));
	/* window_end = 0 + 99 + 1; the next resolve a 101st of it away. */
	assert_near(hub_pacer_delay(&p, 0), 100.0 / 101);
	while (p.remaining > 0) {
		t += hub_pacer_delay(&p, t);
		assert_true(t < 100);
		hub_pacer_take(&p, t);
		assert_true(t - last > 0.5); /* spaced, not a burst */
		last = t;
		taken++;
	}
	assert_int_equal(taken, 100); /* every one left, within the window */
	assert_int_equal(p.remaining, 0);
	/* None left: wait for the window to reset, then ask again. */
	assert_near(hub_pacer_delay(&p, t), 100 - t);
	assert_near(hub_pacer_delay(&p, 100), 0);
	hub_pacer_take(&p, 100);
	assert_int_equal(p.remaining, -1);
}

static void exhausted_waits_for_reset_plus_one(void **state)
{
	struct hub_pacer p;

	(void)state;
	hub_pacer_init(&p);
	hub_pacer_take(&p, 5);
	hub_pacer_done(&p, 5, RES(0, 10), NULL); /* a 429's header */
	assert_near(hub_pacer_delay(&p, 5), 11);
	assert_near(hub_pacer_delay(&p, 10), 6);
	assert_near(hub_pacer_delay(&p, 16), 0);
	/* The next window says how much there is. */
	hub_pacer_take(&p, 16);
	hub_pacer_done(&p, 16.5, RES(2999, 300), NULL);
	assert_near(hub_pacer_delay(&p, 16.5), 0);
	assert_int_equal(p.remaining, 2999);
}

/* Resolves in flight may be uncounted in r=: the estimate is lowered. */
static void outstanding_resolves_count(void **state)
{
	struct hub_pacer p;

	(void)state;
	hub_pacer_init(&p);
	for (int i = 0; i < 4; i++)
		hub_pacer_take(&p, 0);
	hub_pacer_done(&p, 0.1, RES(5, 30), NULL);
	assert_int_equal(p.outstanding, 3);
	assert_int_equal(p.remaining, 2); /* 5 - 3 */
	/* Without a policy the low-water mark is HUB_PACE_LOW. */
	assert_true(hub_pacer_delay(&p, 0.1) > 0);
	/* More than left: never below zero. */
	for (int i = 0; i < 8; i++)
		hub_pacer_take(&p, 0.2);
	hub_pacer_done(&p, 0.3, RES(1, 30), NULL);
	assert_int_equal(p.remaining, 0);
	assert_near(hub_pacer_delay(&p, 0.3), 31.3 - 0.3);
}

static void same_window_keeps_the_lower(void **state)
{
	struct hub_pacer p;

	(void)state;
	hub_pacer_init(&p);
	hub_pacer_take(&p, 0);
	hub_pacer_done(&p, 0, RES(5, 100), NULL);
	hub_pacer_take(&p, 1);
	/* Whole seconds: t=99 or 100 one second on is the same window. */
	hub_pacer_done(&p, 1, RES(8, 100), NULL);
	assert_int_equal(p.remaining, 4);
	/* A window that ends later by far is a new one. */
	hub_pacer_done(&p, 1, RES(8, 400), NULL);
	assert_int_equal(p.remaining, 8);
}

/*
 * The newest answer wins: after an answer that left nothing for a long
 * window, a 429 asking for one second holds resolves two seconds (t + 1),
 * not for what is left of the long window.
 */
static void newest_answer_wins(void **state)
{
	struct hub_pacer p;

	(void)state;
	hub_pacer_init(&p);
	hub_pacer_take(&p, 0);
	hub_pacer_done(&p, 0, RES(0, 295), NULL);
	assert_near(hub_pacer_delay(&p, 0), 296);
	hub_pacer_done(&p, 10, RES(0, 1), NULL);
	assert_near(hub_pacer_delay(&p, 10), 2);
	assert_near(hub_pacer_delay(&p, 12), 0);
	/* A long window told after a short one is the newest too. */
	hub_pacer_take(&p, 12);
	hub_pacer_done(&p, 12, RES(0, 60), NULL);
	assert_near(hub_pacer_delay(&p, 12), 61);
	/* A 429 with Retry-After alone: held as asked, plus one second. */
	hub_pacer_hold(&p, 20, 1);
	assert_near(hub_pacer_delay(&p, 20), 2);
	assert_near(hub_pacer_delay(&p, 22), 0);
	/* Spacing planned for a long window never outlives a shorter one. */
	hub_pacer_init(&p);
	hub_pacer_take(&p, 0);
	hub_pacer_done(&p, 0, RES(2, 295), NULL);
	hub_pacer_take(&p, 0);
	hub_pacer_done(&p, 1, RES(1, 3), NULL);
	assert_true(hub_pacer_delay(&p, 1) <= 4 + 1e-6);
}

static void other_buckets_are_ignored(void **state)
{
	struct hub_pacer p;

	(void)state;
	hub_pacer_init(&p);
	hub_pacer_take(&p, 0);
	hub_pacer_done(&p, 0, "\"api\";r=0;t=100",
		       "\"fixed window\";\"api\";q=5;w=300");
	assert_int_equal(p.quota, -1);
	assert_int_equal(p.remaining, -1);
	assert_near(hub_pacer_delay(&p, 0), 0);
	assert_int_equal(p.outstanding, 0);
	/* Garbage is no information either. */
	hub_pacer_done(&p, 0, "\"resolvers\";r=x;t=y", "nonsense");
	assert_near(hub_pacer_delay(&p, 0), 0);
}

/* A small quota: a tenth of it rounds to at least one. */
static void small_quota(void **state)
{
	struct hub_pacer p;

	(void)state;
	hub_pacer_init(&p);
	hub_pacer_take(&p, 0);
	hub_pacer_done(&p, 0, RES(2, 3), POLICY(5));
	assert_near(hub_pacer_delay(&p, 0), 0); /* 2 >= max(5 / 10, 1) */
	hub_pacer_take(&p, 0);
	assert_near(hub_pacer_delay(&p, 0), 0); /* 1 is not below 1 */
	hub_pacer_take(&p, 0);
	assert_near(hub_pacer_delay(&p, 0), 4); /* none: till t + 1 */
}

static void etag_conflicts(void **state)
{
	const char *a = "097417381d6c7230bd9e3557456d726de6e83245ec8b24f529f601"
			"98a67b203a";
	const char *b = "\"7c5d3f4b8b76583b422fcb9189ad6c89d5d97a094541ce8932dc"
			"e3ecabde1421\"";
	const char *sha1 = "a16a55fda99d2f2e7b69cce5cf93ff4ad3049930";
	char quoted[80], weak[80], upper[80];

	(void)state;
	snprintf(quoted, sizeof(quoted), "\"%s\"", a);
	snprintf(weak, sizeof(weak), "W/\"%s\"", a);
	snprintf(upper, sizeof(upper), "\"%s\"", a);
	for (char *p = upper; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	assert_false(hub_etag_conflict(a, quoted));
	assert_false(hub_etag_conflict(a, weak));
	assert_false(hub_etag_conflict(a, upper));
	assert_true(hub_etag_conflict(a, b));
	/* Another kind says nothing: an LFS redirect's ETag is a sha1. */
	assert_false(hub_etag_conflict(a, sha1));
	assert_false(hub_etag_conflict(sha1, b));
	assert_true(hub_etag_conflict(
		sha1, "\"b16a55fda99d2f2e7b69cce5cf93ff4ad3049930\""));
	/* Nor does an etag that is no hash (nginx's own), or none. */
	assert_false(hub_etag_conflict(a, "\"5f3e1c2a-6400000\""));
	assert_false(hub_etag_conflict(a, ""));
	assert_false(hub_etag_conflict(a, NULL));
	assert_false(hub_etag_conflict(NULL, b));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(unknown_budget_never_waits),
		cmocka_unit_test(plenty_left_never_waits),
		cmocka_unit_test(low_budget_is_spread_over_the_window),
		cmocka_unit_test(exhausted_waits_for_reset_plus_one),
		cmocka_unit_test(outstanding_resolves_count),
		cmocka_unit_test(same_window_keeps_the_lower),
		cmocka_unit_test(newest_answer_wins),
		cmocka_unit_test(other_buckets_are_ignored),
		cmocka_unit_test(small_quota),
		cmocka_unit_test(etag_conflicts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

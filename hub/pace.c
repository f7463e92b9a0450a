/*
 * pace.c - spacing resolves out by the Hub's RateLimit headers, so that the
 * "resolvers" bucket (hub-api.md section 10.1: 3,000 to 12,000 resolves per
 * 5-minute window) is not run dry and no 429 comes back.
 *
 * Each answer to a resolve says how many are left in the window (r=) and
 * when the window resets (t=).  Plenty left: nothing waits.  Below the
 * low-water mark, what is left is spread evenly over what remains of the
 * window; with nothing left, resolves wait for the window to reset, plus
 * the one second Python's client adds to t.  The newest answer wins: a
 * window it gives replaces what earlier answers said (only its count is
 * merged, when it is the same window), so a short ask after a long one
 * (a 429 with t=1) holds resolves no longer than it asked, plus that
 * second.  A 429 with Retry-After and no RateLimit holds them the same
 * way (hub_pacer_hold).  Ranges of a file already resolved go to the
 * remembered target and are not paced at all.
 */
#include "hub_int.h"

#include <string.h>

void hub_pacer_init(struct hub_pacer *p)
{
	p->quota = -1;
	p->remaining = -1;
	p->outstanding = 0;
	p->window_end = 0;
	p->next_at = 0;
}

static long low_water(const struct hub_pacer *p)
{
	if (p->quota <= 0)
		return HUB_PACE_LOW;
	return p->quota / 10 > 1 ? p->quota / 10 : 1;
}

/* What the last answer said still holds: its window has not ended. */
static bool known(const struct hub_pacer *p, double now)
{
	return p->remaining >= 0 && now < p->window_end;
}

/* While pacing: the next resolve comes a fair share of the time left. */
static void space_out(struct hub_pacer *p, double from)
{
	double at = from + (p->window_end - from) / (double)(p->remaining + 1);

	if (at > p->next_at)
		p->next_at = at;
}

double hub_pacer_delay(const struct hub_pacer *p, double now)
{
	if (!known(p, now) || p->remaining >= low_water(p))
		return 0;
	if (p->remaining == 0)
		return p->window_end - now;
	return p->next_at > now ? p->next_at - now : 0;
}

void hub_pacer_take(struct hub_pacer *p, double now)
{
	p->outstanding++;
	if (!known(p, now)) {
		p->remaining = -1; /* a new window: the next answer says */
		return;
	}
	if (p->remaining > 0)
		p->remaining--;
	if (p->remaining < low_water(p))
		space_out(p, now);
}

void hub_pacer_done(struct hub_pacer *p, double now, const char *ratelimit,
		    const char *policy)
{
	struct hub_ratelimit_policy pol;
	struct hub_ratelimit rl;
	double end;
	long left;

	if (p->outstanding > 0)
		p->outstanding--;
	if (policy && hub_parse_ratelimit_policy(policy, &pol) == 0 &&
	    strcmp(pol.bucket, "resolvers") == 0 && pol.quota > 0)
		p->quota = pol.quota;
	if (!ratelimit || hub_parse_ratelimit(ratelimit, &rl) < 0 ||
	    strcmp(rl.bucket, "resolvers") != 0 || rl.remaining < 0 ||
	    rl.reset < 0)
		return;
	/* Resolves still in flight may not be counted in r= yet. */
	left = rl.remaining - (long)p->outstanding;
	if (left < 0)
		left = 0;
	end = now + (double)rl.reset + 1;
	if (known(p, now) && end - p->window_end <= 1 &&
	    p->window_end - end <= 1) {
		/* The same window (t= is whole seconds): keep the lower. */
		if (left < p->remaining)
			p->remaining = left;
	} else {
		p->remaining = left;
		p->next_at = 0;
	}
	p->window_end = end; /* the newest answer wins */
	if (p->next_at > end)
		p->next_at = end;
	if (p->remaining < low_water(p))
		space_out(p, now);
}

void hub_pacer_hold(struct hub_pacer *p, double now, double seconds)
{
	p->remaining = 0;
	p->window_end = now + seconds + 1;
	p->next_at = 0;
}

/*
 * fuzz_headers.c - the response-header parsers of hub/headers.c, and what
 * acts on their results: the retry delay (client.c) and the resolve pacer
 * (pace.c).  Every parser gets the same input as a header value.
 */
#include "fuzz.h"

#include "hub_int.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>

#define NOW	  ((time_t)1700000000)
#define RETRY_CAP (24L * 3600)

static void content_range(const char *s)
{
	struct hub_content_range cr, again;
	char canon[96];
	int rc = hub_parse_content_range(s, &cr);

	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	if (rc < 0)
		return;
	if (cr.unsatisfied) {
		/* "bytes * / *" is refused: a 416 must say the size. */
		FUZZ_CHECK(cr.total_known);
		snprintf(canon, sizeof(canon), "bytes */%" PRIu64, cr.total);
	} else {
		FUZZ_CHECK(cr.first <= cr.last);
		FUZZ_CHECK(!cr.total_known || cr.last < cr.total);
		if (cr.total_known)
			snprintf(canon, sizeof(canon),
				 "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64,
				 cr.first, cr.last, cr.total);
		else
			snprintf(canon, sizeof(canon),
				 "bytes %" PRIu64 "-%" PRIu64 "/*", cr.first,
				 cr.last);
	}
	/* What was understood, written back, means the same. */
	FUZZ_CHECK(hub_parse_content_range(canon, &again) == 0);
	FUZZ_CHECK(memcmp(&cr, &again, sizeof(cr)) == 0);
}

static void link_next(const char *s)
{
	char *url = (char *)1, *bracketed;
	int rc = hub_parse_link_next(s, &url);

	FUZZ_CHECK(rc == 0 || rc == -ENOENT || rc == -EINVAL);
	if (rc < 0) {
		FUZZ_CHECK(url == NULL);
		return;
	}
	/* The text between one '<' and its '>', verbatim and not empty. */
	FUZZ_CHECK(url && url[0] != '\0' && !strchr(url, '>'));
	bracketed = malloc(strlen(url) + 3);
	FUZZ_CHECK(bracketed);
	sprintf(bracketed, "<%s>", url);
	FUZZ_CHECK(strstr(s, bracketed) != NULL);
	free(bracketed);
	free(url);
}

static void ratelimit(const char *s)
{
	struct hub_ratelimit rl;
	struct hub_ratelimit_policy pol;

	if (hub_parse_ratelimit(s, &rl) == 0) {
		FUZZ_CHECK(strnlen(rl.bucket, sizeof(rl.bucket)) <
			   sizeof(rl.bucket));
		FUZZ_CHECK(rl.remaining >= -1 && rl.reset >= -1);
		FUZZ_CHECK(rl.remaining >= 0 || rl.reset >= 0);
	}
	if (hub_parse_ratelimit_policy(s, &pol) == 0) {
		FUZZ_CHECK(strnlen(pol.bucket, sizeof(pol.bucket)) <
			   sizeof(pol.bucket));
		FUZZ_CHECK(pol.quota >= 0 && pol.window >= -1);
	}
}

static void retry_after(const char *s)
{
	long secs = -5;
	int rc = hub_parse_retry_after(s, NOW, &secs);

	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	if (rc == 0)
		FUZZ_CHECK(secs >= 0 && secs <= RETRY_CAP);
	else
		FUZZ_CHECK(secs == -5); /* untouched on failure */
}

/* The wait a failed attempt leads to, with s as both headers. */
static void backoff(const char *s, unsigned tries)
{
	struct hub_resp resp;
	long d;

	memset(&resp, 0, sizeof(resp));
	snprintf(resp.ratelimit, sizeof(resp.ratelimit), "%s", s);
	snprintf(resp.retry_after, sizeof(resp.retry_after), "%s", s);
	d = hub_backoff_delay(tries, &resp);
	/* At least a second: a server's ask is t= or Retry-After, plus 1. */
	FUZZ_CHECK(d >= 1);
	memset(&resp, 0, sizeof(resp));
	d = hub_backoff_delay(tries, &resp);
	FUZZ_CHECK(d == (1L << (tries < 3 ? tries : 3)));
}

/* A pacer fed s as RateLimit and RateLimit-Policy never asks for a
   negative or endless wait, and never more than the window it was told. */
static void pacer(const char *s)
{
	struct hub_pacer p;
	double now = 1000.0, d;

	hub_pacer_init(&p);
	for (int i = 0; i < 3; i++) {
		hub_pacer_take(&p, now);
		hub_pacer_done(&p, now, s, s);
		d = hub_pacer_delay(&p, now);
		FUZZ_CHECK(isfinite(d) && d >= 0);
		FUZZ_CHECK(d <= p.window_end - now || d == 0);
		FUZZ_CHECK(p.remaining >= -1);
		now += 0.5;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);

	content_range(s);
	link_next(s);
	ratelimit(s);
	retry_after(s);
	backoff(s, size % 8);
	pacer(s);
	free(s);
	return 0;
}

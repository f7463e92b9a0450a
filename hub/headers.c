/*
 * headers.c - parsers of the HTTP response headers the Hub client acts on:
 * Content-Range, Link, RateLimit, RateLimit-Policy and Retry-After.
 *
 * All input is untrusted.  Numbers are parsed by hand (no strtol sign or
 * whitespace leniency) and checked for overflow; anything unexpected is
 * -EINVAL rather than a guess.
 */
#include "hub.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static const char *skip_ows(const char *p)
{
	while (is_ows(*p))
		p++;
	return p;
}

/*
 * Parse a run of decimal digits at *pp into *out, advancing *pp.  At least
 * one digit, at most a value that fits in 63 bits.
 */
static int parse_u64(const char **pp, uint64_t *out)
{
	const char *p = *pp;
	uint64_t v = 0;

	if (!is_digit(*p))
		return -EINVAL;
	for (; is_digit(*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > ((uint64_t)INT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	*pp = p;
	*out = v;
	return 0;
}

static int parse_long(const char **pp, long *out)
{
	uint64_t v;
	int rc = parse_u64(pp, &v);

	if (rc < 0 || v > (uint64_t)LONG_MAX)
		return -EINVAL;
	*out = (long)v;
	return 0;
}

int hub_parse_content_range(const char *value, struct hub_content_range *out)
{
	const char *p = skip_ows(value);

	memset(out, 0, sizeof(*out));
	if (strncasecmp(p, "bytes", 5) != 0 || !is_ows(p[5]))
		return -EINVAL;
	p = skip_ows(p + 5);

	if (*p == '*') {
		out->unsatisfied = true;
		p++;
	} else {
		if (parse_u64(&p, &out->first) < 0 || *p++ != '-' ||
		    parse_u64(&p, &out->last) < 0 || out->last < out->first)
			return -EINVAL;
	}
	if (*p++ != '/')
		return -EINVAL;
	if (*p == '*') {
		if (out->unsatisfied) /* "bytes * / *" says nothing */
			return -EINVAL;
		p++;
	} else {
		if (parse_u64(&p, &out->total) < 0)
			return -EINVAL;
		out->total_known = true;
		if (!out->unsatisfied && out->last >= out->total)
			return -EINVAL;
	}
	return *skip_ows(p) == '\0' ? 0 : -EINVAL;
}

/*
 * One parameter of a Link value: NAME=TOKEN or NAME="QUOTED".  Sets
 * name/value spans pointing into the header; quoted values keep no
 * backslash processing (rel values never need it).
 */
struct span {
	const char *p;
	size_t n;
};

static int parse_param(const char **pp, struct span *name, struct span *val)
{
	const char *p = skip_ows(*pp);

	name->p = p;
	while (*p && *p != '=' && *p != ';' && *p != ',' && !is_ows(*p))
		p++;
	name->n = (size_t)(p - name->p);
	if (name->n == 0)
		return -EINVAL;
	p = skip_ows(p);
	val->p = p;
	val->n = 0;
	if (*p != '=') { /* a parameter without a value */
		*pp = p;
		return 0;
	}
	p = skip_ows(p + 1);
	if (*p == '"') {
		val->p = ++p;
		while (*p && *p != '"')
			p++;
		if (*p != '"')
			return -EINVAL;
		val->n = (size_t)(p - val->p);
		p++;
	} else {
		val->p = p;
		while (*p && *p != ';' && *p != ',' && !is_ows(*p))
			p++;
		val->n = (size_t)(p - val->p);
	}
	*pp = p;
	return 0;
}

/* True when the space-separated rel list in v contains rel. */
static bool rel_has(struct span v, const char *rel)
{
	const char *p = v.p, *end = v.p + v.n;
	size_t n = strlen(rel);

	while (p < end) {
		const char *w = p;

		while (p < end && *p != ' ')
			p++;
		if ((size_t)(p - w) == n && strncasecmp(w, rel, n) == 0)
			return true;
		while (p < end && *p == ' ')
			p++;
	}
	return false;
}

int hub_parse_link_next(const char *value, char **out_url)
{
	return hub_parse_link_rel(value, "next", out_url);
}

int hub_parse_link_rel(const char *value, const char *rel, char **out_url)
{
	const char *p = value;

	*out_url = NULL;
	for (;;) {
		struct span url, name, val;
		bool found = false;

		p = skip_ows(p);
		if (*p == '\0')
			return -ENOENT;
		if (*p++ != '<')
			return -EINVAL;
		url.p = p;
		while (*p && *p != '>')
			p++;
		if (*p != '>')
			return -EINVAL;
		url.n = (size_t)(p++ - url.p);

		for (p = skip_ows(p); *p == ';'; p = skip_ows(p)) {
			p++;
			if (parse_param(&p, &name, &val) < 0)
				return -EINVAL;
			if (name.n == 3 && strncasecmp(name.p, "rel", 3) == 0 &&
			    rel_has(val, rel))
				found = true;
		}
		if (*p != ',' && *p != '\0')
			return -EINVAL;
		if (found) {
			if (url.n == 0)
				return -EINVAL;
			*out_url = strndup(url.p, url.n);
			return *out_url ? 0 : -ENOMEM;
		}
		if (*p == ',')
			p++;
	}
}

static void copy_span(char *dst, size_t size, struct span s)
{
	size_t n = s.n < size - 1 ? s.n : size - 1;

	memcpy(dst, s.p, n);
	dst[n] = '\0';
}

static bool span_is(struct span s, const char *word)
{
	return s.n == strlen(word) && strncasecmp(s.p, word, s.n) == 0;
}

static int span_long(struct span s, long *out)
{
	const char *p = s.p;

	if (parse_long(&p, out) < 0 || p != s.p + s.n)
		return -EINVAL;
	return 0;
}

/*
 * The IETF draft form, "limit=Q, remaining=R, reset=T": comma separated
 * NAME=VALUE pairs.
 */
static int parse_ratelimit_draft(const char *value, struct hub_ratelimit *out)
{
	const char *p = value;
	struct span name, val;

	while (*(p = skip_ows(p)) != '\0') {
		if (parse_param(&p, &name, &val) < 0)
			return -EINVAL;
		if (span_is(name, "remaining") &&
		    span_long(val, &out->remaining) < 0)
			return -EINVAL;
		if (span_is(name, "reset") && span_long(val, &out->reset) < 0)
			return -EINVAL;
		p = skip_ows(p);
		if (*p == ',' || *p == ';')
			p++;
		else if (*p != '\0')
			return -EINVAL;
	}
	return out->remaining >= 0 || out->reset >= 0 ? 0 : -EINVAL;
}

/*
 * The structured-field form the Hub sends: a list of items (quoted strings
 * or tokens) each followed by ;key=value parameters.  The last item names
 * the bucket; r and t (RateLimit) or q and w (RateLimit-Policy) are read.
 */
struct sf_fields {
	char bucket[16];
	long a, b; /* r,t or q,w */
};

static int parse_sf(const char *value, const char *ka, const char *kb,
		    struct sf_fields *out)
{
	const char *p = skip_ows(value);
	struct span name, val;

	out->bucket[0] = '\0';
	out->a = out->b = -1;
	while (*p != '\0') {
		if (*p == '"') {
			struct span item = { ++p, 0 };

			while (*p && *p != '"')
				p++;
			if (*p != '"')
				return -EINVAL;
			item.n = (size_t)(p++ - item.p);
			copy_span(out->bucket, sizeof(out->bucket), item);
		} else if (*p == ';') {
			p = skip_ows(p + 1);
			if (*p == '"') /* the next item of the list */
				continue;
			if (parse_param(&p, &name, &val) < 0)
				return -EINVAL;
			if (span_is(name, ka) && span_long(val, &out->a) < 0)
				return -EINVAL;
			if (span_is(name, kb) && span_long(val, &out->b) < 0)
				return -EINVAL;
		} else if (*p == ',') {
			p++;
		} else {
			return -EINVAL;
		}
		p = skip_ows(p);
	}
	return 0;
}

int hub_parse_ratelimit(const char *value, struct hub_ratelimit *out)
{
	struct sf_fields f;
	const char *p = skip_ows(value);

	memset(out, 0, sizeof(*out));
	out->remaining = out->reset = -1;
	if (*p != '"')
		return parse_ratelimit_draft(p, out);
	if (parse_sf(p, "r", "t", &f) < 0)
		return -EINVAL;
	memcpy(out->bucket, f.bucket, sizeof(out->bucket));
	out->remaining = f.a;
	out->reset = f.b;
	return out->remaining >= 0 || out->reset >= 0 ? 0 : -EINVAL;
}

int hub_parse_ratelimit_policy(const char *value,
			       struct hub_ratelimit_policy *out)
{
	struct sf_fields f;

	memset(out, 0, sizeof(*out));
	if (parse_sf(value, "q", "w", &f) < 0)
		return -EINVAL;
	memcpy(out->bucket, f.bucket, sizeof(out->bucket));
	out->quota = f.a;
	out->window = f.b;
	return out->quota >= 0 ? 0 : -EINVAL;
}

#define RETRY_AFTER_CAP (24L * 3600)

int hub_parse_retry_after(const char *value, time_t now, long *out_seconds)
{
	const char *p = skip_ows(value);
	long secs;

	if (is_digit(*p)) {
		uint64_t v;

		if (parse_u64(&p, &v) < 0 || *skip_ows(p) != '\0')
			return -EINVAL;
		secs = v > RETRY_AFTER_CAP ? RETRY_AFTER_CAP : (long)v;
	} else {
		time_t when = curl_getdate(p, NULL);

		if (when == -1)
			return -EINVAL;
		secs = when <= now ? 0 : (long)(when - now);
		if (secs > RETRY_AFTER_CAP)
			secs = RETRY_AFTER_CAP;
	}
	*out_seconds = secs;
	return 0;
}

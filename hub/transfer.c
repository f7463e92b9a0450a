/*
 * transfer.c - byte ranges of a file at a commit, through the resolve
 * redirects (hub-api.md section 5): what the transfer engine (xfer.c)
 * does with each response, and where a resolve URL led.
 *
 * The resolve URL answers a regular file directly (200/206) or with a
 * relative 307 to /api/resolve-cache/... (same origin: the token stays);
 * an LFS or xet file answers 302 to a signed URL on the CDN, which is
 * another origin and so gets no token.  Every hop is a separate exchange
 * (libcurl never follows), so no header of one hop leaks into the next.
 *
 * The callback only ever sees the bytes it asked for, at their true file
 * offsets: a 206 must start no later than asked; a wider 206, like a 200
 * to a ranged request, has its extra bytes skipped; a cut transfer
 * resumes at the next byte not yet delivered.  Where a resolve URL led is
 * remembered (a signed CDN URL is valid for a while), so later ranges of the
 * same file go straight there; a 403/404/410 from such a target means it
 * expired, and the Hub is asked again, once per attempt.
 */
#include "hub_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- Where resolve URLs redirected to ----------------------------------- */

#define LOC_MAX 256
#define LOC_TTL 1800 /* seconds; an expired signed URL answers 403 anyway */

struct hub_loc {
	char *from, *to;
	time_t stored;
};

static struct hub_loc *loc_find(struct hub_client *c, const char *from)
{
	for (unsigned i = 0; i < c->n_locs; i++)
		if (strcmp(c->locs[i].from, from) == 0)
			return &c->locs[i];
	return NULL;
}

int hub_loc_get(struct hub_client *c, const char *from, char **to)
{
	struct hub_loc *l;
	int rc = -ENOENT;

	*to = NULL;
	pthread_mutex_lock(&c->loc_lock);
	l = loc_find(c, from);
	if (l && time(NULL) - l->stored < LOC_TTL) {
		*to = strdup(l->to);
		rc = *to ? 0 : -ENOMEM;
	}
	pthread_mutex_unlock(&c->loc_lock);
	return rc;
}

/* The slot for a new entry: a free one, else the oldest. */
static struct hub_loc *loc_slot(struct hub_client *c)
{
	struct hub_loc *old;

	if (!c->locs) {
		c->locs = calloc(LOC_MAX, sizeof(*c->locs));
		if (!c->locs)
			return NULL;
	}
	if (c->n_locs < LOC_MAX)
		return &c->locs[c->n_locs++];
	old = &c->locs[0];
	for (unsigned i = 1; i < c->n_locs; i++)
		if (c->locs[i].stored < old->stored)
			old = &c->locs[i];
	free(old->from);
	free(old->to);
	old->from = old->to = NULL;
	return old;
}

void hub_loc_put(struct hub_client *c, const char *from, const char *to)
{
	char *f = strdup(from), *t = strdup(to);
	struct hub_loc *l;

	pthread_mutex_lock(&c->loc_lock);
	l = loc_find(c, from);
	if (l) {
		free(l->from);
		free(l->to);
	} else {
		l = loc_slot(c);
	}
	if (l && f && t) {
		l->from = f;
		l->to = t;
		l->stored = time(NULL);
		f = t = NULL;
	} else if (l) { /* out of memory: drop the slot */
		*l = c->locs[--c->n_locs];
	}
	pthread_mutex_unlock(&c->loc_lock);
	free(f);
	free(t);
}

void hub_loc_drop(struct hub_client *c, const char *from)
{
	struct hub_loc *l;

	pthread_mutex_lock(&c->loc_lock);
	l = loc_find(c, from);
	if (l) {
		free(l->from);
		free(l->to);
		*l = c->locs[--c->n_locs];
	}
	pthread_mutex_unlock(&c->loc_lock);
}

void hub_loc_free_all(struct hub_client *c)
{
	for (unsigned i = 0; i < c->n_locs; i++) {
		free(c->locs[i].from);
		free(c->locs[i].to);
	}
	free(c->locs);
	c->locs = NULL;
	c->n_locs = 0;
}

/* ---- One range, response by response ------------------------------------ */

void hub_range_response_reset(struct hub_range *r)
{
	r->started = false;
	r->pos = 0;
	r->stop = r->total = HUB_NO_END;
	r->wrong_file = false;
	r->proto[0] = '\0';
}

/* The etag a 2xx carries must be the file's (when it says, in our kind). */
static bool etag_ok(struct hub_range *r, const struct hub_resp *resp)
{
	const char *bad = hub_etag_conflict(r->etag, resp->etag) ? resp->etag
			  : hub_etag_conflict(r->etag, resp->linked_etag)
				  ? resp->linked_etag
				  : NULL;

	if (!bad)
		return true;
	r->wrong_file = true;
	snprintf(r->proto, sizeof(r->proto), "wrong file: etag %.80s, not %s",
		 bad, r->etag);
	return false;
}

/* Check a 2xx's headers before the first byte of its body. */
static int body_start(struct hub_range *r, const struct hub_resp *resp)
{
	struct hub_content_range cr;

	r->started = true;
	r->pos = 0;
	r->stop = r->total = HUB_NO_END;
	if (!etag_ok(r, resp))
		return -EIO;
	if (resp->status != 206)
		return 0; /* the whole file, from byte 0 */
	if (hub_parse_content_range(resp->content_range, &cr) < 0 ||
	    cr.unsatisfied) {
		snprintf(r->proto, sizeof(r->proto),
			 "206 with a bad Content-Range");
		return -EPROTO;
	}
	/*
	 * A 206 may be wider than asked (a server that rounds ranges to its
	 * blocks, or ignores the end): the leading bytes are skipped and the
	 * answer is stopped once the range is delivered, as for a 200.  One
	 * that starts past the next byte wanted would leave a hole.
	 */
	if (cr.first > r->next) {
		snprintf(r->proto, sizeof(r->proto),
			 "Content-Range %" PRIu64 "-%" PRIu64
			 " does not match the request from %" PRIu64,
			 cr.first, cr.last, r->next);
		return -EPROTO;
	}
	if (r->size != HUB_NO_END && cr.total_known && cr.total != r->size) {
		snprintf(r->proto, sizeof(r->proto),
			 "Content-Range of a %" PRIu64
			 "-byte file, not %" PRIu64,
			 cr.total, r->size);
		return -EPROTO;
	}
	r->pos = cr.first;
	r->stop = cr.last + 1;
	if (cr.total_known)
		r->total = cr.total;
	return 0;
}

int hub_range_on_body(struct hub_call *call, const char *p, size_t n)
{
	struct hub_range *r = call->arg;
	uint64_t skip = 0, give;
	int rc;

	if (!r->started && (rc = body_start(r, &call->resp)) != 0)
		return rc;
	if (r->stop != HUB_NO_END && n > r->stop - r->pos) {
		snprintf(r->proto, sizeof(r->proto),
			 "more bytes than the Content-Range");
		return -EPROTO;
	}
	if (r->pos < r->next)
		skip = r->next - r->pos < n ? r->next - r->pos : n;
	give = n - skip;
	if (give > r->end - r->next)
		give = r->end - r->next;
	r->pos += n;
	if (give > 0) {
		rc = r->cb(r->arg, r->next, p + skip, (size_t)give);
		if (rc != 0) {
			r->cb_rc = rc;
			return rc;
		}
		r->next += give;
	}
	if (r->next == r->end) {
		r->done = true;
		/*
		 * Nothing more is wanted.  A response that has sent all it
		 * announced ends by itself, and its connection can serve the
		 * next request; anything else (a 200 with more of the file)
		 * is stopped here.
		 */
		return r->pos == r->stop ? 0 : HUB_AGAIN;
	}
	return 0;
}

void hub_range_spec(const struct hub_range *r, char *buf, size_t size)
{
	if (r->end != HUB_NO_END)
		snprintf(buf, size, "%" PRIu64 "-%" PRIu64, r->next,
			 r->end - 1);
	else
		snprintf(buf, size, "%" PRIu64 "-", r->next);
}

/* A complete 2xx: finished, or a shorter range than asked (go on). */
static int body_end(struct hub_range *r, const struct hub_resp *resp,
		    struct hub_error *err)
{
	if (resp->status == 206) {
		if (!r->started || r->pos != r->stop) {
			hub_error_proto(err, "206 body shorter than its "
					     "Content-Range");
			return -EPROTO;
		}
		if (r->next < r->end &&
		    (r->total == HUB_NO_END || r->next < r->total))
			return HUB_AGAIN;
		return 0;
	}
	if (r->pos < r->next) { /* a 200 that ended before our offset */
		hub_error_proto(err,
				"offset %" PRIu64 " is past the end (%" PRIu64
				" bytes)",
				r->next, r->pos);
		return -EIO;
	}
	if (r->size != HUB_NO_END && r->next < r->end) {
		hub_error_proto(err,
				"200 body of %" PRIu64
				" bytes, the file has %" PRIu64,
				r->pos, r->size);
		return -EPROTO;
	}
	return 0; /* the end of the file */
}

/* 416: fine only when we asked for the byte just past the end. */
static int unsatisfied(struct hub_range *r, const struct hub_call *call,
		       struct hub_error *err)
{
	struct hub_content_range cr;

	if (hub_parse_content_range(call->resp.content_range, &cr) == 0 &&
	    cr.unsatisfied && cr.total_known && cr.total == r->next)
		return 0;
	hub_call_error(r->c, call, err);
	return -EIO;
}

int hub_redirect_target(char **url, const struct hub_call *call,
			struct hub_error *err)
{
	char *to = NULL;
	int rc;

	if (!call->resp.location) {
		hub_error_proto(err, "HTTP %d without Location",
				call->resp.status);
		return -EPROTO;
	}
	rc = hub_resolve_location(*url, call->resp.location, &to);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		hub_error_proto(err, "unusable Location in HTTP %d",
				call->resp.status);
		return -EPROTO;
	}
	free(*url);
	*url = to;
	return 0;
}

bool hub_is_redirect(int status)
{
	return status == 301 || status == 302 || status == 303 ||
	       status == 307 || status == 308;
}

int hub_range_check_headers(const struct hub_range *r,
			    const struct hub_call *call, struct hub_error *err)
{
	const struct hub_resp *resp = &call->resp;

	if (resp->repo_commit[0] && strcmp(resp->repo_commit, r->commit) != 0) {
		hub_error_proto(err, "answer for another commit");
		return -EPROTO;
	}
	if (hub_is_redirect(resp->status) &&
	    hub_etag_conflict(r->etag, resp->linked_etag)) {
		hub_error_proto(err, "wrong file: X-Linked-Etag %.80s, not %s",
				resp->linked_etag, r->etag);
		return -EIO;
	}
	return 0;
}

int hub_range_judge(struct hub_range *r, struct hub_call *call,
		    struct hub_error *err)
{
	int status = call->resp.status;

	if (r->cb_rc)
		return -ECANCELED;
	if (r->proto[0]) {
		hub_error_proto(err, "%s", r->proto);
		return r->wrong_file ? -EIO : -EPROTO;
	}
	if (r->done)
		return 0;
	if (status >= 200 && status < 300 && call->cc == CURLE_OK)
		return body_end(r, &call->resp, err);
	if (status == 416)
		return unsatisfied(r, call, err);
	if (!r->token_retried && hub_call_token_retry(r->c, call)) {
		r->token_retried = true;
		return HUB_AGAIN;
	}
	hub_call_error(r->c, call, err);
	if (call->abort_rc == -ENOMEM)
		return -ENOMEM;
	return hub_call_retryable(call) ? HUB_RETRY : -EIO;
}

bool hub_stale_target(const struct hub_call *call, const char *url,
		      const char *resolve_url)
{
	int s = call->resp.status;

	return (s == 403 || s == 404 || s == 410) &&
	       strcmp(url, resolve_url) != 0;
}

char *hub_resolve_url(struct hub_client *c, enum hub_repo_type type,
		      const char *id, const char *commit, const char *path)
{
	char *epath = hub_escape_path(path), *url;

	if (!epath)
		return NULL;
	url = hub_url_printf("%s/%s%s/resolve/%s/%s", c->endpoint,
			     hub_type_url_prefix(type), id, commit, epath);
	free(epath);
	return url;
}

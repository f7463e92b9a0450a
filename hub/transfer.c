/*
 * transfer.c - byte ranges of a file at a commit, through the resolve
 * redirects (hub-api.md section 5).
 *
 * The resolve URL answers a regular file directly (200/206) or with a
 * relative 307 to /api/resolve-cache/... (same origin: the token stays);
 * an LFS or xet file answers 302 to a signed URL on the CDN, which is
 * another origin and so gets no token.  Every hop is a separate exchange
 * (libcurl never follows), so no header of one hop leaks into the next.
 *
 * The callback only ever sees the bytes it asked for, at their true file
 * offsets: a 206 must start where we asked and end no later; a 200 to a
 * ranged request has its leading bytes skipped; a cut transfer resumes at
 * the next byte not yet delivered.  Where a resolve URL led is remembered
 * (a signed CDN URL is valid for a while), so later ranges of the same file
 * go straight there; a 403/404/410 from such a target means it expired, and
 * the Hub is asked again, once per attempt.
 */
#include "hub_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FETCH_HOPS 10
#define NO_END	   UINT64_MAX

/* Outcomes of one attempt besides 0 (all delivered) and -errno. */
#define AGAIN 1 /* go on at once: progress was made */
#define RETRY 2 /* back off, then go on */

struct fetch {
	struct hub_client *c;
	const char *commit;
	hub_data_fn cb;
	void *arg;
	uint64_t next; /* file offset of the next byte to deliver */
	uint64_t end;  /* one past the last byte wanted, or NO_END */
	bool token_retried;

	/* The response in progress. */
	bool started;	 /* its first body byte came */
	uint64_t pos;	 /* file offset of its next body byte */
	uint64_t stop;	 /* one past the last byte it may carry, or NO_END */
	uint64_t total;	 /* the file's size when it said, or NO_END */
	bool done;	 /* every wanted byte was delivered */
	int cb_rc;	 /* what the callback returned to stop */
	char proto[160]; /* how the body broke the protocol, or "" */
};

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

static int loc_get(struct hub_client *c, const char *from, char **to)
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

static void loc_put(struct hub_client *c, const char *from, const char *to)
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

static void loc_drop(struct hub_client *c, const char *from)
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

/* ---- One fetch ---------------------------------------------------------- */

/* Check a 2xx's headers before the first byte of its body. */
static int body_start(struct fetch *f, const struct hub_resp *resp)
{
	struct hub_content_range cr;

	f->started = true;
	f->pos = 0;
	f->stop = f->total = NO_END;
	if (resp->status != 206)
		return 0; /* the whole file, from byte 0 */
	if (hub_parse_content_range(resp->content_range, &cr) < 0 ||
	    cr.unsatisfied) {
		snprintf(f->proto, sizeof(f->proto),
			 "206 with a bad Content-Range");
		return -EPROTO;
	}
	if (cr.first != f->next || (f->end != NO_END && cr.last >= f->end)) {
		snprintf(f->proto, sizeof(f->proto),
			 "Content-Range %" PRIu64 "-%" PRIu64
			 " does not match the request from %" PRIu64,
			 cr.first, cr.last, f->next);
		return -EPROTO;
	}
	f->pos = cr.first;
	f->stop = cr.last + 1;
	if (cr.total_known)
		f->total = cr.total;
	return 0;
}

static int on_body(struct hub_call *call, const char *p, size_t n)
{
	struct fetch *f = call->arg;
	uint64_t skip = 0, give;
	int rc;

	if (!f->started && (rc = body_start(f, &call->resp)) != 0)
		return rc;
	if (f->stop != NO_END && n > f->stop - f->pos) {
		snprintf(f->proto, sizeof(f->proto),
			 "more bytes than the Content-Range");
		return -EPROTO;
	}
	if (f->pos < f->next)
		skip = f->next - f->pos < n ? f->next - f->pos : n;
	give = n - skip;
	if (give > f->end - f->next)
		give = f->end - f->next;
	f->pos += n;
	if (give > 0) {
		rc = f->cb(f->arg, f->next, p + skip, (size_t)give);
		if (rc != 0) {
			f->cb_rc = rc;
			return rc;
		}
		f->next += give;
	}
	if (f->next == f->end) {
		f->done = true;
		return AGAIN; /* stop the transfer: nothing more is wanted */
	}
	return 0;
}

static void range_for(const struct fetch *f, char *buf, size_t size)
{
	if (f->end != NO_END)
		snprintf(buf, size, "%" PRIu64 "-%" PRIu64, f->next,
			 f->end - 1);
	else
		snprintf(buf, size, "%" PRIu64 "-", f->next);
}

/* A complete 2xx: finished, or a shorter range than asked (go on). */
static int body_end(struct fetch *f, const struct hub_resp *resp,
		    struct hub_error *err)
{
	if (resp->status == 206) {
		if (!f->started || f->pos != f->stop) {
			hub_error_proto(err, "206 body shorter than its "
					     "Content-Range");
			return -EPROTO;
		}
		if (f->next < f->end &&
		    (f->total == NO_END || f->next < f->total))
			return AGAIN;
		return 0;
	}
	if (f->pos < f->next) { /* a 200 that ended before our offset */
		hub_error_proto(err,
				"offset %" PRIu64 " is past the end (%" PRIu64
				" bytes)",
				f->next, f->pos);
		return -EIO;
	}
	return 0; /* the end of the file */
}

/* 416: fine only when we asked for the byte just past the end. */
static int unsatisfied(struct hub_client *c, struct fetch *f,
		       const struct hub_call *call, struct hub_error *err)
{
	struct hub_content_range cr;

	if (hub_parse_content_range(call->resp.content_range, &cr) == 0 &&
	    cr.unsatisfied && cr.total_known && cr.total == f->next)
		return 0;
	hub_call_error(c, call, err);
	return -EIO;
}

/* Where the next hop goes; -EPROTO for a bad or missing Location. */
static int redirect(char **url, const struct hub_call *call,
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

static bool is_redirect(int status)
{
	return status == 301 || status == 302 || status == 303 ||
	       status == 307 || status == 308;
}

/* The Hub said which commit it answers for: it must be ours. */
static int commit_check(const struct fetch *f, const struct hub_call *call,
			struct hub_error *err)
{
	if (!call->resp.repo_commit[0] ||
	    strcmp(call->resp.repo_commit, f->commit) == 0)
		return 0;
	hub_error_proto(err, "answer for another commit");
	return -EPROTO;
}

/* Start a new response: clear what the last one left. */
static void response_reset(struct fetch *f)
{
	f->started = false;
	f->pos = 0;
	f->stop = f->total = NO_END;
	f->proto[0] = '\0';
}

/*
 * What to do with a finished exchange that was not a redirect: 0, AGAIN,
 * RETRY (err filled with why), or -errno.  When the callback stopped the
 * transfer, f->cb_rc says so and the caller returns that.
 */
static int judge(struct fetch *f, struct hub_call *call, struct hub_error *err)
{
	int status = call->resp.status;

	if (f->cb_rc)
		return -ECANCELED;
	if (f->proto[0]) {
		hub_error_proto(err, "%s", f->proto);
		return -EPROTO;
	}
	if (f->done)
		return 0;
	if (status >= 200 && status < 300 && call->cc == CURLE_OK)
		return body_end(f, &call->resp, err);
	if (status == 416)
		return unsatisfied(f->c, f, call, err);
	if (!f->token_retried && hub_call_token_retry(f->c, call)) {
		f->token_retried = true;
		return AGAIN;
	}
	hub_call_error(f->c, call, err);
	if (call->abort_rc == -ENOMEM)
		return -ENOMEM;
	return hub_call_retryable(call) ? RETRY : -EIO;
}

/* A target past the Hub's resolve (CDN or cached) that now refuses us. */
static bool stale_target(const struct hub_call *call, const char *url,
			 const char *resolve_url)
{
	int s = call->resp.status;

	return (s == 403 || s == 404 || s == 410) &&
	       strcmp(url, resolve_url) != 0;
}

/*
 * One attempt: from the remembered target (or the resolve URL) through
 * the redirects to one response, delivering what it carries.
 */
static int attempt(struct fetch *f, const char *resolve_url,
		   struct hub_call *call, struct hub_error *err)
{
	struct hub_client *c = f->c;
	bool reresolved = false;
	char range[48], *url = NULL;
	int rc, hops = 0;

	if (loc_get(c, resolve_url, &url) < 0)
		url = strdup(resolve_url);
	for (;;) {
		if (!url)
			return -ENOMEM;
		range_for(f, range, sizeof(range));
		call->url = url;
		call->range = f->next > 0 || f->end != NO_END ? range : NULL;
		response_reset(f);
		rc = hub_call_perform(c, call);
		if (rc == -ENETDOWN)
			rc = hub_error_offline(err);
		if (rc == 0)
			rc = commit_check(f, call, err);
		if (rc < 0)
			break;
		if (is_redirect(call->resp.status)) {
			rc = ++hops > FETCH_HOPS ? -ELOOP
						 : redirect(&url, call, err);
			if (rc == -ELOOP) {
				hub_error_proto(err, "redirect loop");
				rc = -EPROTO;
			}
			if (rc < 0)
				break;
			continue;
		}
		if (!reresolved && stale_target(call, url, resolve_url)) {
			reresolved = true;
			loc_drop(c, resolve_url);
			free(url);
			url = strdup(resolve_url);
			continue;
		}
		rc = judge(f, call, err);
		/* A target that served bytes is worth remembering. */
		if (f->started && rc != -EPROTO &&
		    strcmp(url, resolve_url) != 0)
			loc_put(c, resolve_url, url);
		break;
	}
	free(url);
	return rc;
}

static int fetch_args(const char *id, const char *commit, const char *path,
		      uint64_t offset, uint64_t length, struct hub_error *err)
{
	const char *bad = !hub_repo_id_valid(id)	 ? "repo id"
			  : !hub_is_commit_id(commit)	 ? "commit id"
			  : !hub_path_safe(path)	 ? "path"
			  : length > UINT64_MAX - offset ? "range"
							 : NULL;

	if (!bad)
		return 0;
	hub_error_proto(err, "invalid %s", bad);
	return -EINVAL;
}

static char *resolve_url_of(struct hub_client *c, enum hub_repo_type type,
			    const char *id, const char *commit,
			    const char *path)
{
	char *epath = hub_escape_path(path), *url;

	if (!epath)
		return NULL;
	url = hub_url_printf("%s/%s%s/resolve/%s/%s", c->endpoint,
			     hub_type_url_prefix(type), id, commit, epath);
	free(epath);
	return url;
}

int hub_fetch(struct hub_client *c, enum hub_repo_type type, const char *id,
	      const char *commit, const char *path, uint64_t offset,
	      uint64_t length, hub_data_fn cb, void *arg, struct hub_error *err)
{
	struct fetch f = { .c = c, .commit = commit, .cb = cb, .arg = arg };
	struct hub_call call = { .on_body = on_body, .arg = &f };
	struct hub_backoff b = { 0 };
	struct hub_error tmp;
	char *resolve_url;
	int rc;

	err = err ? err : &tmp;
	memset(err, 0, sizeof(*err));
	rc = fetch_args(id, commit, path, offset, length, err);
	if (rc < 0)
		return rc;
	if (c->offline)
		return hub_error_offline(err);
	f.next = offset;
	f.end = length ? offset + length : NO_END;
	resolve_url = resolve_url_of(c, type, id, commit, path);
	if (!resolve_url)
		return -ENOMEM;
	for (;;) {
		uint64_t before = f.next;

		rc = attempt(&f, resolve_url, &call, err);
		if (f.cb_rc) {
			rc = f.cb_rc; /* the callback's own value */
			break;
		}
		if (f.next > before) /* progress: a fresh retry budget */
			memset(&b, 0, sizeof(b));
		if (rc == AGAIN)
			continue;
		if (rc == RETRY && hub_backoff_wait(c, &b, &call.resp))
			continue;
		break;
	}
	if (rc == RETRY)
		rc = -EIO; /* err holds the last failure */
	if (rc == 0)
		memset(err, 0, sizeof(*err));
	hub_call_reset(&call);
	free(resolve_url);
	return rc;
}

/*
 * xfer.c - the transfer engine (hub.h, "The transfer engine"): byte ranges
 * of files, many at once, on one libcurl multi handle driven by one thread.
 *
 * Threads.  hub_xfer_submit() runs on any thread, the engine's own
 * callbacks included: it checks and copies the request, appends it to
 * `incoming` under x->lock and wakes the engine with curl_multi_wakeup().
 * Everything else - the multi handle and its easy handles, the lists of
 * requests, the pacer - belongs to the engine thread alone, which is also
 * the only thread that calls data() and done().  No lock is held while a
 * callback runs or while libcurl does I/O.
 *
 * A request's life: incoming -> ready (demand before readahead, then in
 * submission order) -> running: it holds one of the max_transfers slots
 * and an easy handle for one attempt, that is the request and its redirect
 * hops -> done, or back to ready for a new attempt, or to waiting (a
 * backoff timer, no slot) and then ready again.  Each attempt asks for
 * [next, end) where next is the first byte not yet delivered.
 *
 * Resolves.  An attempt goes to the file's remembered target (hub_loc_*,
 * transfer.c) when there is one, else to the resolve URL.  While
 * one request of a file is resolving, the other requests of that file wait
 * for it rather than resolve too, and go to the target it found as soon as
 * bytes come from there.  Starting a resolve takes a turn from the pacer
 * (pace.c), which the "resolvers" RateLimit headers of the answers feed.
 *
 * Stalls.  Each request has a clock of the time it has gone without new
 * bytes.  It runs while the request is running, waiting for a backoff or
 * waiting for the pacer, and stands still while it only waits for a slot;
 * new bytes set it back to zero.  When it reaches stall_seconds the request
 * fails with -ETIMEDOUT.  A transfer that has had no bytes for a third
 * of that is abandoned and retried on a fresh connection: libcurl's
 * low-speed limit does this while no byte came at all, the engine once a
 * response has begun (libcurl's speed is an average over seconds, so a
 * burst followed by silence would go unnoticed for a while).
 */
#include "hub_int.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define XFER_HOPS      10	   /* redirects followed per attempt */
#define XFER_MAX       256	   /* the most transfers at once */
#define HOST_CONNS     16	   /* connections per host, at least */
#define CURL_BUFFER    (128 << 10) /* libcurl's receive buffer */
#define CHECK_INTERVAL 0.1	   /* seconds between stall checks */
#define POLL_MAX       1.0	   /* seconds the engine sleeps at most */
#define PRIO_N	       2
#define SERVED_KEPT    16	    /* files whose resolve served bytes */
#define XET_KEPT       64	    /* files whose resolve named the CAS */
#define UNIT_MAX       (1ULL << 30) /* the largest range unit believed */

struct xreq;

/* A list of requests; each request is in at most one. */
struct xlist {
	struct xreq *head, *tail;
	unsigned n;
};

/*
 * One submitted request.  Built by hub_xfer_submit(); while it sits in
 * x->incoming its links are under x->lock, and once the engine has taken
 * it every field is touched by the engine thread only.
 */
struct xreq {
	struct xreq *prev, *next; /* in *in */
	struct xlist *in;
	struct hub_xfer *x;
	uint64_t seq; /* submission order */
	enum hub_xfer_priority prio;
	const struct hub_xfer_ops *ops;
	void *arg;

	/* The file: copies of what the caller's hub_file_ref said. */
	char *commit, *etag; /* etag may be NULL */
	char *resolve_url;   /* from the type, repo id, commit and path;
				NULL for a request of a fixed URL */
	char *fixed_url;     /* hub_xfer_submit_url: a signed URL, or NULL */

	struct hub_range range; /* what was delivered, the response now */
	struct hub_call call;
	char spec[48];		    /* the Range of the running request */
	CURL *easy;		    /* while running: in x->multi */
	struct curl_slist *headers; /* while running */
	char *url;		    /* where the attempt is, or NULL */
	unsigned hops;		    /* redirects in this attempt */
	bool from_resolve;	    /* this attempt began at the resolve URL */
	bool resolving;		    /* ... and found no target yet */
	bool paced;		    /* holds a turn of the pacer */
	bool reresolved;	    /* dropped a stale target this attempt */
	bool served;		    /* the response now delivered bytes */
	bool xet_probe;		    /* hub_file_ref.xet_probe */
	unsigned tries;		    /* failed attempts since progress */
	double rx_at;		    /* running: its last body bytes, or start */
	double not_before;	    /* waiting: when to be ready again */

	/* The stall clock (see the top of the file). */
	double idle; /* seconds without progress, up to mark */
	double mark;
	bool counting;

	struct hub_error err; /* the last failure */
};

struct hub_xfer {
	struct hub_client *c;	/* fixed */
	unsigned max_transfers; /* fixed */
	long low_speed_time;	/* fixed: seconds */
	CURLM *multi;		/* engine thread; curl_multi_wakeup: any */
	pthread_t thread;	/* fixed once started */

	pthread_mutex_t lock;
	struct xlist incoming;	     /* lock: submitted, not yet taken */
	uint64_t seq;		     /* lock: the next submission's */
	bool stopping;		     /* lock */
	struct hub_xfer_stats stats; /* lock; queued counts only the engine's */
	/*
	 * Files whose resolve answered bytes itself (hub_xfer_resolve_unit):
	 * their resolve URL and unit, the oldest replaced first.  lock.
	 */
	struct {
		char *url;
		uint64_t unit; /* 0: redirects */
	} served[SERVED_KEPT];
	unsigned n_served;
	/* Files whose resolve carried the Xet markers: resolve URLs.  lock. */
	char *xet_seen[XET_KEPT];
	unsigned n_xet_seen;

	/* Engine thread only. */
	struct xlist ready[PRIO_N]; /* by (priority, seq) */
	struct xlist running;	    /* holding a slot */
	struct xlist waiting;	    /* backing off */
	struct hub_pacer pacer;
	bool paced;	      /* a ready request waits for the pacer */
	double next_check;    /* when stalls are checked next */
	double next_deadline; /* the earliest stall deadline seen */
	CURL **idle_easy;     /* easy handles for the next transfers */
	unsigned n_idle;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- Lists -------------------------------------------------------------- */

static void list_remove(struct xreq *q)
{
	struct xlist *l = q->in;

	if (!l)
		return;
	if (q->prev)
		q->prev->next = q->next;
	else
		l->head = q->next;
	if (q->next)
		q->next->prev = q->prev;
	else
		l->tail = q->prev;
	q->prev = q->next = NULL;
	q->in = NULL;
	l->n--;
}

static void list_append(struct xlist *l, struct xreq *q)
{
	assert(!q->in);
	q->prev = l->tail;
	q->next = NULL;
	if (l->tail)
		l->tail->next = q;
	else
		l->head = q;
	l->tail = q;
	q->in = l;
	l->n++;
}

/* Insert by seq; new requests have the highest, so look from the tail. */
static void list_insert_ordered(struct xlist *l, struct xreq *q)
{
	struct xreq *after = l->tail;

	while (after && after->seq > q->seq)
		after = after->prev;
	if (after == l->tail) {
		list_append(l, q);
		return;
	}
	q->prev = after;
	q->next = after ? after->next : l->head;
	q->next->prev = q;
	if (after)
		after->next = q;
	else
		l->head = q;
	q->in = l;
	l->n++;
}

/* ---- The stall clock ---------------------------------------------------- */

static void clock_run(struct xreq *q, bool counting, double now)
{
	if (q->counting)
		q->idle += now - q->mark;
	q->mark = now;
	q->counting = counting;
}

static double clock_idle(const struct xreq *q, double now)
{
	return q->idle + (q->counting ? now - q->mark : 0);
}

/* ---- Requests ----------------------------------------------------------- */

static void req_free(struct xreq *q)
{
	hub_call_reset(&q->call);
	free(q->commit);
	free(q->etag);
	free(q->resolve_url);
	free(q->fixed_url);
	free(q->url);
	free(q);
}

static int req_data(void *arg, uint64_t offset, const void *buf, size_t n);

/* Body bytes of the running transfer: it is alive. */
static int req_body(struct hub_call *call, const char *p, size_t n)
{
	struct xreq *q = (struct xreq *)(void *)((char *)call -
						 offsetof(struct xreq, call));

	q->rx_at = now_s();
	return hub_range_on_body(call, p, n);
}

static struct xreq *req_new(struct hub_xfer *x, const struct hub_file_ref *f,
			    uint64_t offset, uint64_t length)
{
	struct xreq *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->x = x;
	q->commit = strdup(f->commit);
	q->etag = f->etag ? strdup(f->etag) : NULL;
	q->resolve_url =
		hub_resolve_url(x->c, f->type, f->repo_id, f->commit, f->path);
	if (!q->commit || (f->etag && !q->etag) || !q->resolve_url) {
		req_free(q);
		return NULL;
	}
	q->range.c = x->c;
	q->range.commit = q->commit;
	q->range.etag = q->etag;
	q->range.cb = req_data;
	q->range.arg = q;
	q->range.next = offset;
	q->range.end = offset + length;
	q->range.size = f->size;
	q->call.on_body = req_body;
	q->call.arg = &q->range;
	q->call.no_cache = f->refetch;
	q->xet_probe = f->xet_probe;
	return q;
}

static void stats_add(struct hub_xfer *x, uint64_t *field, uint64_t n)
{
	pthread_mutex_lock(&x->lock);
	*field += n;
	pthread_mutex_unlock(&x->lock);
}

/* What the engine holds for the request's running transfer goes back. */
static void unplug(struct hub_xfer *x, struct xreq *q)
{
	if (q->easy) {
		curl_multi_remove_handle(x->multi, q->easy);
		curl_easy_reset(q->easy);
		if (x->n_idle < x->max_transfers)
			x->idle_easy[x->n_idle++] = q->easy;
		else
			curl_easy_cleanup(q->easy);
		q->easy = NULL;
	}
	hub_headers_free(q->headers);
	q->headers = NULL;
	if (q->paced) { /* a resolve that got no answer */
		hub_pacer_done(&x->pacer, now_s(), NULL, NULL);
		q->paced = false;
	}
}

/* The attempt is over: the next one chooses its URL afresh. */
static void attempt_end(struct xreq *q)
{
	free(q->url);
	q->url = NULL;
	q->hops = 0;
	q->from_resolve = q->resolving = false;
}

/* done() once, then the request is gone. */
static void finish(struct hub_xfer *x, struct xreq *q, int rc)
{
	list_remove(q);
	unplug(x, q);
	if (rc == 0)
		memset(&q->err, 0, sizeof(q->err));
	else if (!q->err.status && !q->err.transport && !q->err.message[0])
		hub_error_proto(&q->err, "transfer failed (%s)",
				rc < 0 ? strerror(-rc) : "by its caller");
	q->ops->done(q->arg, rc, &q->err);
	req_free(q);
}

static void fail_timeout(struct hub_xfer *x, struct xreq *q)
{
	if (!q->err.status && !q->err.transport) {
		hub_error_proto(&q->err, "no progress for %ld s",
				x->c->stall_seconds);
		q->err.transport = CURLE_OPERATION_TIMEDOUT;
	}
	finish(x, q, -ETIMEDOUT);
}

/* The slot of url in x->served, or -1 (lock held). */
static int served_slot(const struct hub_xfer *x, const char *url)
{
	for (int i = 0; i < SERVED_KEPT; i++)
		if (x->served[i].url && strcmp(x->served[i].url, url) == 0)
			return i;
	return -1;
}

/*
 * A resolve answered with bytes: unit 0 when they came from where it
 * redirected, else from the resolve itself, with the unit it said.
 */
static void note_served(struct hub_xfer *x, const char *resolve_url,
			const char *slice)
{
	uint64_t unit = 0;
	char *copy = NULL;
	int i;

	if (slice) {
		char *end;
		unsigned long long v = strtoull(slice, &end, 10);

		unit = slice[0] >= '0' && slice[0] <= '9' && !*end && v > 0 &&
				       v <= UNIT_MAX
			       ? v
			       : 1;
	}
	pthread_mutex_lock(&x->lock);
	i = served_slot(x, resolve_url);
	if (i < 0 && unit) { /* only mirrors are listed */
		copy = strdup(resolve_url);
		if (copy) {
			i = (int)(x->n_served++ % SERVED_KEPT);
			free(x->served[i].url);
			x->served[i].url = copy;
		}
	}
	if (i >= 0)
		x->served[i].unit = unit;
	pthread_mutex_unlock(&x->lock);
}

/* Whether resolve_url is in x->xet_seen. */
static bool xet_seen(struct hub_xfer *x, const char *resolve_url)
{
	bool seen = false;

	pthread_mutex_lock(&x->lock);
	for (int i = 0; i < XET_KEPT && !seen; i++)
		seen = x->xet_seen[i] &&
		       strcmp(x->xet_seen[i], resolve_url) == 0;
	pthread_mutex_unlock(&x->lock);
	return seen;
}

static void note_xet(struct hub_xfer *x, const char *resolve_url)
{
	char *copy;

	if (xet_seen(x, resolve_url) || !(copy = strdup(resolve_url)))
		return;
	pthread_mutex_lock(&x->lock);
	free(x->xet_seen[x->n_xet_seen % XET_KEPT]);
	x->xet_seen[x->n_xet_seen++ % XET_KEPT] = copy;
	pthread_mutex_unlock(&x->lock);
}

/* A resolve's answer names the CAS (hub-api.md 14.3). */
static bool resp_xet(const struct hub_resp *r)
{
	char *url = NULL;
	bool yes = r->xet_hash[0] && strcmp(r->xet_hash, "?") != 0;

	if (!yes && r->link &&
	    hub_parse_link_rel(r->link, "xet-auth", &url) == 0)
		yes = true;
	free(url);
	return yes;
}

bool hub_xfer_resolve_xet(struct hub_xfer *x, const struct hub_file_ref *f)
{
	char *url =
		hub_resolve_url(x->c, f->type, f->repo_id, f->commit, f->path);
	bool yes = url && xet_seen(x, url);

	free(url);
	return yes;
}

uint64_t hub_xfer_resolve_unit(struct hub_xfer *x, const struct hub_file_ref *f)
{
	char *url =
		hub_resolve_url(x->c, f->type, f->repo_id, f->commit, f->path);
	uint64_t unit = 0;
	int i;

	if (!url)
		return 0;
	pthread_mutex_lock(&x->lock);
	i = served_slot(x, url);
	if (i >= 0)
		unit = x->served[i].unit;
	pthread_mutex_unlock(&x->lock);
	free(url);
	return unit;
}

/* Bytes for the caller: the first of a response proves its URL good. */
static int req_data(void *arg, uint64_t offset, const void *buf, size_t n)
{
	struct xreq *q = arg;
	struct hub_xfer *x = q->x;

	if (!q->served) {
		q->served = true;
		if (q->from_resolve && strcmp(q->url, q->resolve_url) != 0) {
			hub_loc_put(x->c, q->resolve_url, q->url);
			note_served(x, q->resolve_url, NULL);
		} else if (q->from_resolve) {
			note_served(x, q->resolve_url,
				    q->call.resp.mirror_slice);
		}
		q->resolving = false; /* the file's other requests may go */
	}
	q->idle = 0;
	q->mark = now_s();
	q->tries = 0;
	if (q->err.status || q->err.transport || q->err.message[0])
		memset(&q->err, 0, sizeof(q->err));
	stats_add(x, &x->stats.bytes, n);
	return q->ops->data(q->arg, offset, buf, n);
}

/* ---- Starting transfers ------------------------------------------------- */

static CURLcode easy_options(struct hub_xfer *x, struct xreq *q)
{
	CURLcode cc = CURLE_OK;

#define SET(opt, val)                                                          \
	do {                                                                   \
		if (cc == CURLE_OK)                                            \
			cc = curl_easy_setopt(q->easy, opt, val);              \
	} while (0)
	SET(CURLOPT_PRIVATE, (void *)q);
	/*
	 * Over TLS, where ALPN may give h2, a new transfer had rather wait
	 * for a stream on a connection being set up than open its own.  Not
	 * over plain http (HTTP/1.1 here): there libcurl then queues
	 * transfers behind busy connections (8 ranges ran at half the speed
	 * of 8 connections against the test CDN).
	 */
	SET(CURLOPT_PIPEWAIT, strncasecmp(q->url, "https:", 6) == 0 ? 1L : 0L);
	SET(CURLOPT_LOW_SPEED_TIME, x->low_speed_time);
	SET(CURLOPT_BUFFERSIZE, (long)CURL_BUFFER);
#undef SET
	return cc;
}

/* Send the next request of q's attempt, to q->url; q holds a slot. */
static void transfer_start(struct hub_xfer *x, struct xreq *q)
{
	struct hub_call *call = &q->call;
	int rc;

	hub_range_spec(&q->range, q->spec, sizeof(q->spec));
	call->url = q->url;
	call->range = q->spec;
	hub_range_response_reset(&q->range);
	q->served = false;
	q->rx_at = now_s();
	q->easy = x->n_idle ? x->idle_easy[--x->n_idle] : curl_easy_init();
	if (!q->easy) {
		finish(x, q, -ENOMEM);
		return;
	}
	rc = hub_call_setup(x->c, call, q->easy, &q->headers);
	if (rc == 0 && call->cc == CURLE_OK)
		call->cc = easy_options(x, q);
	if (rc == 0 && call->cc == CURLE_OK &&
	    curl_multi_add_handle(x->multi, q->easy) != CURLM_OK)
		call->cc = CURLE_OUT_OF_MEMORY;
	if (rc == -ENETDOWN)
		rc = hub_error_offline(&q->err);
	if (rc == 0 && call->cc != CURLE_OK) {
		hub_call_error(x->c, call, &q->err);
		rc = -EIO;
	}
	if (rc < 0) {
		finish(x, q, rc);
		return;
	}
	stats_add(x, &x->stats.requests, 1);
}

/* Another request of the same file is resolving it now. */
static bool sibling_resolving(struct hub_xfer *x, const struct xreq *q)
{
	for (struct xreq *r = x->running.head; r; r = r->next)
		if (r->resolving && q->resolve_url &&
		    strcmp(r->resolve_url, q->resolve_url) == 0)
			return true;
	return false;
}

/*
 * Choose where q's next attempt begins: the remembered target, or the
 * resolve URL if no sibling is resolving and the pacer allows.  1 when q
 * may start, 0 when it must wait, -ENOMEM, or -EXDEV for a Xet probe
 * whose file the Hub offers through the CAS.
 */
static int attempt_begin(struct hub_xfer *x, struct xreq *q, double now)
{
	char *to = NULL;

	if (q->fixed_url) {
		q->url = strdup(q->fixed_url);
		return q->url ? 1 : -ENOMEM;
	}
	if (q->xet_probe && xet_seen(x, q->resolve_url))
		return -EXDEV; /* the caller reads it through the CAS */
	if (hub_loc_get(x->c, q->resolve_url, &to) == 0) {
		q->url = to;
		return 1;
	}
	if (sibling_resolving(x, q)) {
		/* Waiting on the file, not on a slot: the stall clock runs. */
		clock_run(q, true, now);
		return 0;
	}
	if (hub_pacer_delay(&x->pacer, now) > 0) {
		x->paced = true;
		/* Waiting for the Hub's leave: a stall, unless waited out. */
		clock_run(q, !x->c->wait_out, now);
		return 0;
	}
	q->url = strdup(q->resolve_url);
	if (!q->url)
		return -ENOMEM;
	q->from_resolve = q->resolving = q->paced = true;
	hub_pacer_take(&x->pacer, now);
	stats_add(x, &x->stats.resolves, 1);
	return 1;
}

/*
 * Start what may start, demand first, while slots are free.  A file's
 * requests tend to queue together: once one of them must wait, the others
 * next to it wait too without asking again.
 */
static void schedule(struct hub_xfer *x, double now)
{
	const char *blocked = NULL;

	x->paced = false;
	for (int p = 0; p < PRIO_N; p++) {
		struct xreq *q = x->ready[p].head, *next;

		for (; q && x->running.n < x->max_transfers; q = next) {
			int rc;

			next = q->next;
			if (blocked && q->resolve_url &&
			    strcmp(blocked, q->resolve_url) == 0) {
				clock_run(q, true,
					  now); /* as for its sibling */
				continue;
			}
			rc = attempt_begin(x, q, now);
			if (rc == 0) {
				blocked = q->resolve_url;
				continue;
			}
			if (rc < 0) {
				finish(x, q, rc);
				continue;
			}
			list_remove(q);
			list_append(&x->running, q);
			clock_run(q, true, now);
			transfer_start(x, q);
		}
	}
}

/* ---- Finished transfers ------------------------------------------------- */

static void to_ready(struct hub_xfer *x, struct xreq *q, double now)
{
	attempt_end(q);
	list_remove(q);
	clock_run(q, false, now);
	list_insert_ordered(&x->ready[q->prio], q);
}

/*
 * Wait before the next attempt: what the server asked for or the next
 * step of 1, 2, 4, 8 s, but never past the request's stall deadline, at
 * which it fails.
 */
static void backoff(struct hub_xfer *x, struct xreq *q, double now)
{
	double left = (double)x->c->stall_seconds - clock_idle(q, now);
	double wait = (double)hub_backoff_delay(q->tries, &q->call.resp);
	bool asked = x->c->wait_out && hub_server_wait(&q->call.resp) >= 0;

	if (left <= 0 && !asked) {
		fail_timeout(x, q);
		return;
	}
	q->tries++;
	q->reresolved = false;
	attempt_end(q);
	list_remove(q);
	q->not_before = now + (wait < left || asked ? wait : left);
	list_append(&x->waiting, q);
	if (asked) { /* waited out: not a stall */
		clock_run(q, false, now);
		q->idle = 0;
	}
	stats_add(x, &x->stats.retries, 1);
}

/* A redirect: on to its target, in the same slot. */
static void follow(struct hub_xfer *x, struct xreq *q)
{
	int rc;

	if (++q->hops > XFER_HOPS) {
		hub_error_proto(&q->err, "more than %d redirects", XFER_HOPS);
		finish(x, q, -EPROTO);
		return;
	}
	rc = hub_redirect_target(&q->url, &q->call, &q->err);
	if (rc < 0) {
		finish(x, q, rc);
		return;
	}
	transfer_start(x, q);
}

/* q's target refused it; a sibling may have found a new one already. */
static void forget_target(struct hub_xfer *x, struct xreq *q)
{
	char *cur = NULL;

	if (hub_loc_get(x->c, q->resolve_url, &cur) == 0 &&
	    strcmp(cur, q->url) == 0)
		hub_loc_drop(x->c, q->resolve_url);
	free(cur);
}

/* Publish how long the pacer holds resolves, for hub_xfer_get_stats. */
static void note_hold(struct hub_xfer *x, double now)
{
	double held = hub_pacer_delay(&x->pacer, now);
	int64_t whole = (int64_t)held + (held > (double)(int64_t)held);
	int64_t until = held > 0 ? (int64_t)time(NULL) + whole : 0;

	pthread_mutex_lock(&x->lock);
	x->stats.resolves_held_until = until;
	pthread_mutex_unlock(&x->lock);
}

/* A 429 that asks with Retry-After alone holds the pacer as asked. */
static void pace_retry_after(struct hub_xfer *x, const struct hub_resp *resp,
			     double now)
{
	struct hub_ratelimit rl;
	long secs;

	if (resp->status != 429 || !resp->retry_after[0] ||
	    (resp->ratelimit[0] &&
	     hub_parse_ratelimit(resp->ratelimit, &rl) == 0 &&
	     strcmp(rl.bucket, "resolvers") == 0) ||
	    hub_parse_retry_after(resp->retry_after, time(NULL), &secs) < 0)
		return;
	hub_pacer_hold(&x->pacer, now, (double)secs);
}

static void transfer_done(struct hub_xfer *x, struct xreq *q, CURLcode cc,
			  double now)
{
	struct hub_call *call = &q->call;
	struct hub_range *r = &q->range;
	int rc;

	hub_call_finish(call, q->easy, cc);
	if (q->paced) { /* the answer to a resolve */
		hub_pacer_done(&x->pacer, now, call->resp.ratelimit,
			       call->resp.ratelimit_policy);
		pace_retry_after(x, &call->resp, now);
		note_hold(x, now);
		q->paced = false;
	}
	unplug(x, q);
	if (r->cb_rc) {
		hub_error_proto(&q->err, "stopped by its data callback");
		finish(x, q, r->cb_rc);
		return;
	}
	rc = hub_range_check_headers(r, call, &q->err);
	if (rc < 0) {
		finish(x, q, rc);
		return;
	}
	if (hub_is_redirect(call->resp.status) && q->xet_probe &&
	    q->from_resolve && resp_xet(&call->resp)) {
		note_xet(x, q->resolve_url);
		finish(x, q, -EXDEV);
		return;
	}
	if (hub_is_redirect(call->resp.status)) {
		follow(x, q);
		return;
	}
	if (q->fixed_url && hub_stale_target(call, q->url, "")) {
		hub_call_error(x->c, call, &q->err);
		finish(x, q, -EKEYEXPIRED); /* the caller asks for a new URL */
		return;
	}
	if (!q->reresolved && hub_stale_target(call, q->url, q->resolve_url)) {
		q->reresolved = true;
		forget_target(x, q);
		to_ready(x, q, now);
		return;
	}
	rc = hub_range_judge(r, call, &q->err);
	if (rc == 0 && r->next != r->end) {
		hub_error_proto(&q->err, "the answer ended early");
		rc = -EIO;
	}
	if (rc == HUB_AGAIN) {
		q->reresolved = false;
		to_ready(x, q, now);
	} else if (rc == HUB_RETRY || rc == -EPROTO) {
		backoff(x, q, now); /* a broken body may be the network's */
	} else {
		finish(x, q, rc);
	}
}

static void harvest(struct hub_xfer *x)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(x->multi, &left)) != NULL) {
		CURLcode cc = msg->data.result;
		void *q = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &q);
		transfer_done(x, q, cc, now_s());
	}
}

/* ---- Timers ------------------------------------------------------------- */

static void deadline(struct hub_xfer *x, double at)
{
	if (at < x->next_deadline)
		x->next_deadline = at;
}

/* A response began, then its bytes stopped: give up on this transfer. */
static void transfer_stalled(struct hub_xfer *x, struct xreq *q, double now)
{
	snprintf(q->call.errbuf, sizeof(q->call.errbuf), "no data for %ld s",
		 x->low_speed_time);
	transfer_done(x, q, CURLE_OPERATION_TIMEDOUT, now);
}

static void check_list(struct hub_xfer *x, struct xlist *l, double now)
{
	double stall = (double)x->c->stall_seconds;
	double quiet = (double)x->low_speed_time;
	struct xreq *q, *next;

	for (q = l->head; q; q = next) {
		double idle = clock_idle(q, now);

		next = q->next;
		if (!q->counting)
			continue;
		if (idle >= stall) {
			fail_timeout(x, q);
			continue;
		}
		deadline(x, now + stall - idle);
		if (l != &x->running || !q->call.resp.status)
			continue;
		if (now - q->rx_at >= quiet)
			transfer_stalled(x, q, now);
		else
			deadline(x, q->rx_at + quiet);
	}
}

static void check_stalls(struct hub_xfer *x, double now)
{
	x->next_deadline = INFINITY;
	x->next_check = now + CHECK_INTERVAL;
	check_list(x, &x->running, now);
	check_list(x, &x->waiting, now);
	for (int p = 0; p < PRIO_N; p++)
		check_list(x, &x->ready[p], now);
}

static void wake_timers(struct hub_xfer *x, double now)
{
	struct xreq *q, *next;

	for (q = x->waiting.head; q; q = next) {
		next = q->next;
		if (q->not_before > now)
			continue;
		if (clock_idle(q, now) >= (double)x->c->stall_seconds) {
			fail_timeout(x, q);
			continue;
		}
		list_remove(q);
		clock_run(q, false, now);
		list_insert_ordered(&x->ready[q->prio], q);
	}
}

/* Milliseconds until something is due: a backoff, the pacer, a stall. */
static int poll_timeout(struct hub_xfer *x, double now)
{
	double due = now + POLL_MAX;

	for (struct xreq *q = x->waiting.head; q; q = q->next)
		if (q->not_before < due)
			due = q->not_before;
	if (x->paced && now + hub_pacer_delay(&x->pacer, now) < due)
		due = now + hub_pacer_delay(&x->pacer, now);
	if (x->next_deadline < due)
		due = x->next_deadline;
	if (due <= now)
		return 0;
	return (int)((due - now) * 1000) + 1; /* not a moment too soon */
}

/* ---- The engine thread -------------------------------------------------- */

/* Take what was submitted; true when the engine is to stop. */
static bool intake(struct hub_xfer *x, double now)
{
	struct xreq *q;
	bool stop;

	pthread_mutex_lock(&x->lock);
	stop = x->stopping;
	while (!stop && (q = x->incoming.head) != NULL) {
		list_remove(q);
		q->mark = now;
		list_insert_ordered(&x->ready[q->prio], q);
		x->stats.queued++;
	}
	pthread_mutex_unlock(&x->lock);
	return stop;
}

static void publish(struct hub_xfer *x)
{
	pthread_mutex_lock(&x->lock);
	x->stats.in_flight = x->running.n;
	x->stats.queued = x->ready[0].n + x->ready[1].n + x->waiting.n;
	pthread_mutex_unlock(&x->lock);
}

static void cancel_list(struct hub_xfer *x, struct xlist *l)
{
	while (l->head) {
		hub_error_proto(&l->head->err, "the transfer engine stopped");
		finish(x, l->head, -ECANCELED);
	}
}

static void cancel_all(struct hub_xfer *x)
{
	struct xlist late = { 0 };

	cancel_list(x, &x->running);
	cancel_list(x, &x->waiting);
	for (int p = 0; p < PRIO_N; p++)
		cancel_list(x, &x->ready[p]);
	/* Nothing joins incoming once stopping is set. */
	pthread_mutex_lock(&x->lock);
	while (x->incoming.head) {
		struct xreq *q = x->incoming.head;

		list_remove(q);
		list_append(&late, q);
	}
	pthread_mutex_unlock(&x->lock);
	cancel_list(x, &late);
	publish(x);
}

static void *engine(void *arg)
{
	struct hub_xfer *x = arg;
	int still;

	for (;;) {
		double now = now_s();

		if (intake(x, now))
			break;
		if (now >= x->next_check)
			check_stalls(x, now);
		wake_timers(x, now);
		schedule(x, now);
		curl_multi_perform(x->multi, &still);
		harvest(x);
		now = now_s();
		schedule(x, now);
		publish(x);
		curl_multi_poll(x->multi, NULL, 0, poll_timeout(x, now), NULL);
	}
	cancel_all(x);
	return NULL;
}

/* ---- The interface ------------------------------------------------------ */

static int multi_new(struct hub_xfer *x)
{
	long host = x->max_transfers > HOST_CONNS ? (long)x->max_transfers
						  : HOST_CONNS;
	CURLMcode mc;

	x->multi = curl_multi_init();
	if (!x->multi)
		return -ENOMEM;
	/*
	 * No transfer should queue inside libcurl for want of a connection,
	 * where its stall clock would run; the cache keeps a full set for
	 * the Hub and one for the CDN alive between transfers.
	 */
	mc = curl_multi_setopt(x->multi, CURLMOPT_MAX_HOST_CONNECTIONS, host);
	if (mc == CURLM_OK)
		mc = curl_multi_setopt(x->multi, CURLMOPT_MAXCONNECTS,
				       2 * host);
	if (mc == CURLM_OK)
		mc = curl_multi_setopt(x->multi, CURLMOPT_PIPELINING,
				       (long)CURLPIPE_MULTIPLEX);
	return mc == CURLM_OK ? 0 : -ENOMEM;
}

static void xfer_free(struct hub_xfer *x)
{
	for (unsigned i = 0; i < x->n_idle; i++)
		curl_easy_cleanup(x->idle_easy[i]);
	free(x->idle_easy);
	for (int i = 0; i < SERVED_KEPT; i++)
		free(x->served[i].url);
	for (int i = 0; i < XET_KEPT; i++)
		free(x->xet_seen[i]);
	if (x->multi)
		curl_multi_cleanup(x->multi);
	pthread_mutex_destroy(&x->lock);
	free(x);
}

int hub_xfer_start(struct hub_xfer **out, struct hub_client *c,
		   unsigned max_transfers)
{
	struct hub_xfer *x;
	int rc;

	*out = NULL;
	if (!c || max_transfers == 0)
		return -EINVAL;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	if (pthread_mutex_init(&x->lock, NULL) != 0) {
		free(x);
		return -ENOMEM;
	}
	x->c = c;
	x->max_transfers = max_transfers < XFER_MAX ? max_transfers : XFER_MAX;
	x->low_speed_time = (c->stall_seconds + 2) / 3;
	x->next_deadline = INFINITY;
	hub_pacer_init(&x->pacer);
	x->idle_easy = calloc(x->max_transfers, sizeof(*x->idle_easy));
	rc = x->idle_easy ? multi_new(x) : -ENOMEM;
	if (rc == 0)
		rc = -pthread_create(&x->thread, NULL, engine, x);
	if (rc < 0) {
		xfer_free(x);
		return rc;
	}
	*out = x;
	return 0;
}

void hub_xfer_stop(struct hub_xfer *x)
{
	if (!x)
		return;
	assert(!pthread_equal(pthread_self(), x->thread));
	pthread_mutex_lock(&x->lock);
	x->stopping = true;
	curl_multi_wakeup(x->multi);
	pthread_mutex_unlock(&x->lock);
	pthread_join(x->thread, NULL);
	xfer_free(x);
}

static int check_request(const struct hub_file_ref *f, uint64_t offset,
			 uint64_t length, enum hub_xfer_priority prio)
{
	if (f->type != HUB_MODEL && f->type != HUB_DATASET &&
	    f->type != HUB_SPACE)
		return -EINVAL;
	if (!f->repo_id || !hub_repo_id_valid(f->repo_id) || !f->commit ||
	    !hub_is_commit_id(f->commit) || !f->path || !hub_path_safe(f->path))
		return -EINVAL;
	if (f->etag && !hub_is_commit_id(f->etag) && !hub_is_sha256(f->etag))
		return -EINVAL;
	if (length == 0 || offset > f->size || length > f->size - offset)
		return -EINVAL;
	if (prio != HUB_XFER_DEMAND && prio != HUB_XFER_READAHEAD)
		return -EINVAL;
	return 0;
}

static int enqueue(struct hub_xfer *x, struct xreq *q,
		   enum hub_xfer_priority prio, const struct hub_xfer_ops *ops,
		   void *arg);

int hub_xfer_submit(struct hub_xfer *x, const struct hub_file_ref *file,
		    uint64_t offset, uint64_t length,
		    enum hub_xfer_priority prio, const struct hub_xfer_ops *ops,
		    void *arg)
{
	struct xreq *q;
	int rc;

	if (!x || !file || !ops || !ops->data || !ops->done)
		return -EINVAL;
	rc = check_request(file, offset, length, prio);
	if (rc < 0)
		return rc;
	if (x->c->offline)
		return -ENETDOWN;
	q = req_new(x, file, offset, length);
	if (!q)
		return -ENOMEM;
	return enqueue(x, q, prio, ops, arg);
}

/* Queue a new request for the engine thread; frees it when refused. */
static int enqueue(struct hub_xfer *x, struct xreq *q,
		   enum hub_xfer_priority prio, const struct hub_xfer_ops *ops,
		   void *arg)
{
	q->prio = prio;
	q->ops = ops;
	q->arg = arg;
	pthread_mutex_lock(&x->lock);
	if (x->stopping) {
		pthread_mutex_unlock(&x->lock);
		req_free(q);
		return -ECANCELED;
	}
	q->seq = x->seq++;
	list_append(&x->incoming, q);
	/* Under the lock: a stop that follows finds the multi alive. */
	curl_multi_wakeup(x->multi);
	pthread_mutex_unlock(&x->lock);
	return 0;
}

static bool url_ok(const char *u)
{
	return u && (strncmp(u, "http://", 7) == 0 ||
		     strncmp(u, "https://", 8) == 0);
}

int hub_xfer_submit_url(struct hub_xfer *x, const char *url, uint64_t first,
			uint64_t last, enum hub_xfer_priority prio,
			const struct hub_xfer_ops *ops, void *arg)
{
	struct xreq *q;

	if (!x || !url_ok(url) || last < first || last == UINT64_MAX || !ops ||
	    !ops->data || !ops->done ||
	    (prio != HUB_XFER_DEMAND && prio != HUB_XFER_READAHEAD))
		return -EINVAL;
	if (x->c->offline)
		return -ENETDOWN;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->x = x;
	q->commit = strdup("");
	q->fixed_url = strdup(url);
	if (!q->commit || !q->fixed_url) {
		req_free(q);
		return -ENOMEM;
	}
	q->range.c = x->c;
	q->range.commit = q->commit;
	q->range.cb = req_data;
	q->range.arg = q;
	q->range.next = first;
	q->range.end = last + 1;
	q->range.size = HUB_NO_END;
	q->call.on_body = req_body;
	q->call.arg = &q->range;
	return enqueue(x, q, prio, ops, arg);
}

void hub_xfer_get_stats(struct hub_xfer *x, struct hub_xfer_stats *out)
{
	pthread_mutex_lock(&x->lock);
	*out = x->stats;
	out->queued += x->incoming.n;
	pthread_mutex_unlock(&x->lock);
}

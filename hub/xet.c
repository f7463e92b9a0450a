/*
 * xet.c - reads through the Xet CAS (hub.h, "Xet"; hub-api.md section 14).
 *
 * A read of [offset, offset + length) goes in batches of XET_BATCH bytes.
 * For each: a read token for the file's repo and commit (kept until a
 * minute before it expires), the reconstruction of the batch's range from
 * the CAS (v2, or v1 once v2 answered 404), then every fetch entry that a
 * needed term names is fetched (a ranged GET of a signed URL, no token)
 * and decoded, each into one buffer sized up front (a stored chunk is
 * copied there as it comes; buffers are reused while reads run), and the
 * terms' bytes go to the caller, in order, from there: each term as soon
 * as its chunks and every term before it are decoded, on the transfer
 * engine's thread as the bytes come (the rest from the reader's thread).
 * A batch that fails later has sent a prefix of itself; the caller
 * verifies the whole file anyway.  A xorb URL that refuses us (403, 404,
 * 410: expired) sends the batch back to the CAS for new URLs, a few
 * times; what went to the caller is not sent again.
 *
 * Local copies.  When the file names hub_xet_local hooks, each needed term
 * is first offered to copy(): a term the caller holds whole (the chunks of
 * an earlier revision, in a verified file of its own) is not fetched, and
 * a fetch entry is fetched only when some term still needs it.  A term
 * held in part is fetched whole: a signed xorb URL is good only for the
 * Range it names, so no narrower range can be asked for.  Once a batch
 * reached the caller, placed() hears where its chunks landed in the file.
 *
 * Tokens.  The Hub's token goes only to the Hub (hub_get_json); the CAS
 * token only to the casUrl the Hub named with it, as the Authorization of
 * reconstruction calls (hub_call.bearer, which replaces the Hub's token);
 * xorb URLs get neither.  CAS tokens live in struct xtok, in memory, and
 * are wiped when dropped.  No error message quotes one.
 */
#include "hub_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define XET_BATCH    (16u << 20) /* bytes asked of the CAS at once */
#define XET_REASK    3		 /* new reconstructions for expired URLs */
#define XET_RESTARTS 3		 /* a xorb range started over after bad bytes */
#define XET_ATTEMPTS 8		 /* reconstruction calls for one batch */
#define XET_RENEW    60		 /* seconds before exp a token is renewed */
#define XET_WORKERS  4		 /* reads of hub_xet_submit() run at once */
#define XET_KEPT     8		 /* decoder outputs kept for reuse, at most */
#define XET_KEPT_MAX (64u << 20) /* and their bytes */
/* A xorb URL refused us: ask the CAS again (positive, unlike errnos). */
#define XET_EXPIRED 3

/* A read token of one repo at one commit. */
struct xtok {
	struct xtok *next;
	char *url;    /* the xet-read-token URL it came from */
	char *access; /* the CAS token: wiped before it is freed */
	char *cas;    /* the CAS base URL, no trailing '/' */
	int64_t exp;  /* unix seconds */
};

struct hub_xet {
	struct hub_client *c;  /* fixed */
	struct hub_xfer *xfer; /* fixed: fetches the xorb ranges */
	pthread_mutex_t lock;
	struct xtok *toks;	    /* lock */
	bool no_v2;		    /* lock: the CAS answered 404 to v2 */
	struct hub_xet_stats stats; /* lock */

	/* hub_xet_submit: reads queued for the workers, demand first. */
	pthread_cond_t work;		/* signalled with lock */
	struct xjob *queue[2];		/* lock: by priority, FIFO each */
	bool stopping;			/* lock */
	pthread_t workers[XET_WORKERS]; /* started at the first submit */
	unsigned n_workers;		/* lock */

	/*
	 * Decoder outputs kept for the next fetch entries while reads run: a
	 * fresh one costs a page fault per 4 KiB as it fills.  Freed when the
	 * last read running ends.
	 */
	struct kept {
		uint8_t *p;
		size_t cap;
	} kept[XET_KEPT];  /* lock */
	unsigned n_kept;   /* lock */
	size_t kept_bytes; /* lock */
	unsigned reads;	   /* lock: hub_xet_read()s running */
};

/* A read queued by hub_xet_submit(), with copies of the file's strings. */
struct xjob {
	struct xjob *next;
	struct hub_xet_file f;
	char repo_id[256], commit[41], xet_hash[65];
	uint64_t off, len;
	const struct hub_xfer_ops *ops;
	void *arg;
};

static void stat_add(struct hub_xet *x, uint64_t *field, uint64_t n)
{
	pthread_mutex_lock(&x->lock);
	*field += n;
	pthread_mutex_unlock(&x->lock);
}

/* A kept buffer for an output of about need bytes (the smallest that
   holds it, else the largest), or NULL; *cap its size. */
static uint8_t *kept_take(struct hub_xet *x, uint64_t need, size_t *cap)
{
	unsigned best = XET_KEPT;
	uint8_t *p = NULL;

	pthread_mutex_lock(&x->lock);
	for (unsigned i = 0; i < x->n_kept; i++) {
		size_t c = x->kept[i].cap, b;

		if (best == XET_KEPT) {
			best = i;
			continue;
		}
		b = x->kept[best].cap;
		if (c >= need ? b < need || c < b : b < need && c > b)
			best = i;
	}
	if (best < XET_KEPT) {
		p = x->kept[best].p;
		*cap = x->kept[best].cap;
		x->kept_bytes -= *cap;
		x->kept[best] = x->kept[--x->n_kept];
	}
	pthread_mutex_unlock(&x->lock);
	return p;
}

/* The output of d back to the kept ones if there is room, else freed;
   then d is destroyed. */
static void kept_put(struct hub_xet *x, struct hub_xet_decoder *d)
{
	size_t cap;
	uint8_t *p = hub_xet_decoder_take(d, &cap);

	hub_xet_decoder_destroy(d);
	if (!p)
		return;
	pthread_mutex_lock(&x->lock);
	if (x->n_kept < XET_KEPT && x->kept_bytes + cap <= XET_KEPT_MAX) {
		x->kept[x->n_kept++] = (struct kept){ p, cap };
		x->kept_bytes += cap;
		p = NULL;
	}
	pthread_mutex_unlock(&x->lock);
	free(p);
}

/* Free the kept buffers (lock held): nothing is read. */
static void kept_drop_locked(struct hub_xet *x)
{
	while (x->n_kept > 0)
		free(x->kept[--x->n_kept].p);
	x->kept_bytes = 0;
}

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static void xtok_free(struct xtok *t)
{
	if (!t)
		return;
	free(t->url);
	wipe_free(t->access);
	free(t->cas);
	free(t);
}

/* ---- Tokens ------------------------------------------------------------- */

static bool token_text_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > HUB_TOKEN_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

/* {"accessToken", "exp", "casUrl"} into a new xtok (url not set). */
static int token_parse(const cJSON *root, struct xtok **out)
{
	const char *acc = cJSON_GetStringValue(
		cJSON_GetObjectItemCaseSensitive(root, "accessToken"));
	const char *cas = cJSON_GetStringValue(
		cJSON_GetObjectItemCaseSensitive(root, "casUrl"));
	struct xtok *t;
	uint64_t exp;
	size_t n;

	if (!token_text_ok(acc) || !cas ||
	    (strncmp(cas, "http://", 7) != 0 &&
	     strncmp(cas, "https://", 8) != 0) ||
	    !token_text_ok(cas) ||
	    hub_json_size(cJSON_GetObjectItemCaseSensitive(root, "exp"), &exp) <
		    0)
		return -EPROTO;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->access = strdup(acc);
	t->cas = strdup(cas);
	t->exp = (int64_t)exp;
	if (!t->access || !t->cas) {
		xtok_free(t);
		return -ENOMEM;
	}
	n = strlen(t->cas);
	while (n > 0 && t->cas[n - 1] == '/')
		t->cas[--n] = '\0';
	*out = t;
	return 0;
}

static char *token_url(struct hub_xet *x, const struct hub_xet_file *f)
{
	return hub_url_printf("%s/api/%s/%s/xet-read-token/%s", x->c->endpoint,
			      hub_type_plural(f->type), f->repo_id, f->commit);
}

/* Copies of the access token and CAS URL (caller wipes and frees). */
static int token_copy(const struct xtok *t, char **access, char **cas)
{
	*access = strdup(t->access);
	*cas = strdup(t->cas);
	if (*access && *cas)
		return 0;
	wipe_free(*access);
	free(*cas);
	*access = *cas = NULL;
	return -ENOMEM;
}

/* Unlink and free the token of url (lock held). */
static void token_drop_locked(struct hub_xet *x, const char *url)
{
	for (struct xtok **pp = &x->toks; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->url, url) == 0) {
			struct xtok *t = *pp;

			*pp = t->next;
			xtok_free(t);
			return;
		}
	}
}

/*
 * The file's read token: the kept one unless renew is set or it expires
 * within XET_RENEW seconds, else a new one from the Hub.
 */
static int token_get(struct hub_xet *x, const struct hub_xet_file *f,
		     bool renew, char **access, char **cas,
		     struct hub_error *err)
{
	char *url = token_url(x, f);
	struct xtok *t = NULL;
	cJSON *root = NULL;
	int rc = -ENOMEM;

	if (!url)
		return -ENOMEM;
	pthread_mutex_lock(&x->lock);
	for (t = x->toks; t; t = t->next)
		if (strcmp(t->url, url) == 0)
			break;
	if (t && !renew && (int64_t)time(NULL) + XET_RENEW < t->exp) {
		rc = token_copy(t, access, cas);
		pthread_mutex_unlock(&x->lock);
		free(url);
		return rc;
	}
	pthread_mutex_unlock(&x->lock);

	rc = hub_get_json(x->c, url, &root, err);
	if (rc == 0) {
		rc = token_parse(root, &t);
		if (rc == -EPROTO)
			hub_error_proto(err, "malformed Xet read token");
	}
	cJSON_Delete(root);
	if (rc < 0) {
		free(url);
		return rc;
	}
	t->url = url;
	rc = token_copy(t, access, cas);
	pthread_mutex_lock(&x->lock);
	token_drop_locked(x, url);
	t->next = x->toks;
	x->toks = t;
	x->stats.tokens++;
	pthread_mutex_unlock(&x->lock);
	return rc;
}

/* ---- Reconstructions ---------------------------------------------------- */

static char *recon_url(const char *cas, bool v1, const char *hash)
{
	return hub_url_printf("%s/%s/reconstructions/%s", cas, v1 ? "v1" : "v2",
			      hash);
}

/* What one answered reconstruction call comes to. */
static int recon_answer(struct hub_xet *x, struct hub_call *call,
			struct hub_xet_recon **out, struct hub_error *err)
{
	int rc;

	if (call->body_overflow) {
		hub_call_error(x->c, call, err);
		return -EPROTO;
	}
	rc = call->body ? hub_xet_recon_parse(call->body, call->body_len, out)
			: -EPROTO;
	if (rc == -EPROTO)
		hub_error_proto(err, "malformed reconstruction (HTTP %d)",
				call->resp.status);
	if (rc == 0)
		stat_add(x, &x->stats.reconstructions, 1);
	return rc;
}

/*
 * The reconstruction of [pos, pos + n): 0 with *out, or -errno with err.
 * Retries what may pass (5xx, 429, cut or malformed bodies) with backoff,
 * a 401 once with a new token, and a v2 404 once as v1.
 */
static int reconstruct(struct hub_xet *x, const struct hub_xet_file *f,
		       uint64_t pos, uint64_t n, struct hub_xet_recon **out,
		       struct hub_error *err)
{
	struct hub_call call = { .json = true };
	char *access = NULL, *cas = NULL, *url = NULL, range[48];
	struct hub_backoff b;
	bool renewed = false, v1;
	int rc;

	hub_backoff_init(&b);
	snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64, pos,
		 pos + n - 1);
	rc = token_get(x, f, false, &access, &cas, err);
	for (unsigned attempts = 0; rc == 0; attempts++) {
		if (attempts == XET_ATTEMPTS) {
			rc = -EIO; /* err holds the last failure */
			break;
		}
		pthread_mutex_lock(&x->lock);
		v1 = x->no_v2;
		pthread_mutex_unlock(&x->lock);
		free(url);
		url = recon_url(cas, v1, f->xet_hash);
		if (!url) {
			rc = -ENOMEM;
			break;
		}
		call.url = url;
		call.range = range;
		call.bearer = access;
		rc = hub_call_perform(x->c, &call);
		if (rc < 0) {
			if (rc == -ENETDOWN)
				hub_error_offline(err);
			break;
		}
		/*
		 * An answer that began and then broke (cut, stalled, not
		 * JSON): the CAS is up, so the retry budget starts afresh
		 * (attempts still bound it).
		 */
		if (call.resp.status / 100 == 2 && call.body_len > 0)
			hub_backoff_init(&b);
		if (call.resp.status / 100 == 2 && call.cc == CURLE_OK) {
			rc = recon_answer(x, &call, out, err);
			if (rc != -EPROTO || !hub_backoff_wait(x->c, &b, NULL))
				break;
			rc = 0;
			continue;
		}
		if (call.resp.status == 404 && !v1) {
			pthread_mutex_lock(&x->lock);
			x->no_v2 = true;
			pthread_mutex_unlock(&x->lock);
			continue;
		}
		if (call.resp.status == 401 && !renewed) {
			renewed = true;
			wipe_free(access);
			free(cas);
			access = cas = NULL;
			rc = token_get(x, f, true, &access, &cas, err);
			continue;
		}
		hub_call_error(x->c, &call, err);
		if (hub_call_retryable(&call) &&
		    hub_backoff_wait(x->c, &b, &call.resp))
			continue;
		rc = -EIO;
	}
	hub_call_reset(&call);
	free(url);
	wipe_free(access);
	free(cas);
	return rc;
}

/* ---- Xorb ranges -------------------------------------------------------- */

/*
 * The fetch entries a batch needs, in flight at once on the transfer
 * engine.  data() and done() run on the engine's thread: data() feeds the
 * entry's decoder (a chunk that does not decode cancels the transfer),
 * done() records the outcome under lock and wakes the reader, which alone
 * touches the decoders once nothing is running.
 */
struct sink;
struct tsrc;

struct batch {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned running; /* lock */
	const struct hub_xet_recon *r;
	struct xget *gets;
	struct sink *sink;
};

/*
 * Where a batch's bytes go: the caller's cb, in order, a term as soon as
 * it is decoded and every term before it went.  send() runs in data(), on
 * the transfer engine's thread, which alone feeds the decoders while
 * entries run, and on the reader's thread once none runs.
 */
struct sink {
	hub_data_fn cb;
	void *arg;
	const struct tsrc *src;
	uint64_t pos, n; /* the batch: the file's bytes [pos, pos + n) */
	uint64_t *sent;	 /* the file's bytes before *sent went to cb */
	unsigned term;	 /* the next term to send */
	uint64_t s;	 /* its offset in the reconstruction's stream */
	int rc;		 /* cb's refusal: the batch fails with it */
};

struct xget {
	struct batch *bt;
	struct hub_xet *x;
	const struct hub_xet_fetch *fe;
	struct hub_xet_decoder d;
	uint64_t next;	      /* the next byte expected */
	uint64_t unpacked;    /* what the terms naming it unpack to */
	bool needed;	      /* some term of the batch uses this entry */
	bool go;	      /* fetched in this round */
	unsigned restarts;    /* bad bytes: fetched again from the start */
	int rc;		      /* bt->lock: done()'s, 0 or a negative errno */
	struct hub_error err; /* bt->lock */
};

static int sink_send(const struct hub_xet_recon *r, const struct xget *gets,
		     struct sink *k);

static int get_data(void *arg, uint64_t off, const void *buf, size_t n)
{
	struct xget *g = arg;
	int rc;

	if (off != g->next)
		return -EPROTO;
	g->next += n;
	stat_add(g->x, &g->x->stats.xorb_bytes, n);
	rc = hub_xet_decoder_feed(&g->d, buf, n);
	if (rc == 0 && g->bt->sink)
		rc = sink_send(g->bt->r, g->bt->gets, g->bt->sink);
	return rc;
}

static void get_done(void *arg, int rc, const struct hub_error *err)
{
	struct xget *g = arg;
	struct batch *bt = g->bt;

	pthread_mutex_lock(&bt->lock);
	g->rc = rc;
	if (rc < 0 && err)
		g->err = *err;
	if (--bt->running == 0)
		pthread_cond_signal(&bt->cond);
	pthread_mutex_unlock(&bt->lock);
}

static const struct hub_xfer_ops get_ops = { get_data, get_done };

/* A fresh decoder for g, before any entry of the round is submitted (the
   transfer engine's thread reads the decoders of the others). */
static int get_prepare(struct xget *g)
{
	uint32_t n_chunks = g->fe->chunk_end - g->fe->chunk_start;
	size_t cap = 0;
	uint8_t *buf;
	int rc;

	kept_put(g->x, &g->d);
	rc = hub_xet_decoder_init(&g->d, n_chunks,
				  (uint64_t)n_chunks * HUB_XET_CHUNK_MAX);
	if (rc == 0) {
		buf = kept_take(g->x, g->unpacked, &cap);
		hub_xet_decoder_lend(&g->d, buf, cap);
		rc = hub_xet_decoder_reserve(&g->d, g->unpacked);
	}
	g->next = g->fe->byte_first;
	g->rc = 0;
	return rc;
}

static int get_submit(struct xget *g)
{
	int rc;

	pthread_mutex_lock(&g->bt->lock);
	g->bt->running++;
	pthread_mutex_unlock(&g->bt->lock);
	rc = hub_xfer_submit_url(g->x->xfer, g->fe->url, g->fe->byte_first,
				 g->fe->byte_last, HUB_XFER_DEMAND, &get_ops,
				 g);
	if (rc < 0) { /* refused: done() will not come */
		pthread_mutex_lock(&g->bt->lock);
		g->bt->running--;
		pthread_mutex_unlock(&g->bt->lock);
		return rc;
	}
	stat_add(g->x, &g->x->stats.xorb_requests, 1);
	return 0;
}

static void batch_wait(struct batch *bt)
{
	pthread_mutex_lock(&bt->lock);
	while (bt->running > 0)
		pthread_cond_wait(&bt->cond, &bt->lock);
	pthread_mutex_unlock(&bt->lock);
}

/*
 * The outcome of one finished entry: 0, 1 to fetch it again (bad bytes,
 * a few times), XET_EXPIRED, or a negative errno with err filled.
 */
static int get_judge(struct xget *g, struct hub_error *err)
{
	int rc = g->rc;

	if (rc == 0 && hub_xet_decoder_finish(&g->d) < 0) {
		hub_error_proto(&g->err,
				"xorb range of %.64s ends inside a "
				"chunk",
				g->fe->xorb);
		rc = -EPROTO;
	} else if (rc == -EPROTO) {
		hub_error_proto(&g->err, "bad xorb chunk in %.64s",
				g->fe->xorb);
	}
	if (rc == -EPROTO && g->restarts++ < XET_RESTARTS)
		return 1;
	if (rc == -EKEYEXPIRED) {
		*err = g->err;
		return XET_EXPIRED;
	}
	if (rc < 0)
		*err = g->err;
	return rc;
}

/*
 * Fetch every needed entry of r in parallel and decode it into gets[j].
 * Entries with bad bytes go again (after a backoff) until they decode or
 * have used their restarts.
 */
static int fetch_all(struct hub_xet *x, const struct hub_xet_recon *r,
		     struct xget *gets, struct sink *sink,
		     struct hub_error *err)
{
	struct batch bt = { .running = 0, .r = r, .gets = gets, .sink = sink };
	struct hub_backoff b;
	bool again = true;
	int rc = 0;

	if (pthread_mutex_init(&bt.lock, NULL) != 0)
		return -ENOMEM;
	if (pthread_cond_init(&bt.cond, NULL) != 0) {
		pthread_mutex_destroy(&bt.lock);
		return -ENOMEM;
	}
	hub_backoff_init(&b);
	for (unsigned j = 0; j < r->n_fetch; j++) {
		gets[j].bt = &bt;
		gets[j].x = x;
		gets[j].fe = &r->fetch[j];
		gets[j].rc = 1; /* not fetched yet */
	}
	while (again && rc == 0) {
		again = false;
		for (unsigned j = 0; j < r->n_fetch && rc == 0; j++) {
			gets[j].go = gets[j].needed && gets[j].rc == 1;
			if (gets[j].go)
				rc = get_prepare(&gets[j]);
		}
		for (unsigned j = 0; j < r->n_fetch && rc == 0; j++)
			if (gets[j].go)
				rc = get_submit(&gets[j]);
		batch_wait(&bt);
		if (rc == 0 && sink->rc)
			rc = sink->rc; /* the caller's: not the network's */
		for (unsigned j = 0; j < r->n_fetch && rc == 0; j++) {
			int g = gets[j].needed ? get_judge(&gets[j], err) : 0;

			if (g == 1) {
				gets[j].rc = 1;
				again = true;
			} else if (g != 0) {
				rc = g;
			}
		}
		if (again && rc == 0 && !hub_backoff_wait(x->c, &b, NULL)) {
			hub_error_proto(err, "xorb ranges kept failing");
			rc = -EIO;
		}
	}
	batch_wait(&bt); /* a refused submission may leave others running */
	pthread_cond_destroy(&bt.cond);
	pthread_mutex_destroy(&bt.lock);
	return rc;
}

/* ---- Batches ------------------------------------------------------------ */

/*
 * Where each term of a batch comes from: a local copy (bytes, with its
 * chunks' lengths), or the decoded fetch entry it names.  A term the same
 * as an earlier one (runs of zeros name one chunk many times) shares that
 * one's copy.
 */
struct tsrc {
	uint8_t *bytes;	   /* the term's unpacked bytes, or NULL: fetched */
	uint32_t *lengths; /* with bytes: chunk_end - chunk_start sizes */
	bool shared;	   /* bytes and lengths are an earlier term's */
};

/* The chunks a batch placed, for hub_xet_local.placed. */
struct placed {
	struct hub_xet_run *runs;
	size_t n;
	uint32_t *lengths; /* every run's, back to back */
	size_t n_lengths;
};

static void placed_free(struct placed *p)
{
	free(p->runs);
	free(p->lengths);
	memset(p, 0, sizeof(*p));
}

/* Does term t (at stream offset s) hold bytes of the window? */
static bool term_needed(const struct hub_xet_term *t, uint64_t s, uint64_t want,
			uint64_t n)
{
	return s < want + n && s + t->unpacked > want;
}

static bool same_chunks(const struct hub_xet_term *a,
			const struct hub_xet_term *b)
{
	return a->chunk_start == b->chunk_start &&
	       a->chunk_end == b->chunk_end && a->unpacked == b->unpacked &&
	       strcmp(a->xorb, b->xorb) == 0;
}

/*
 * Term i from the caller's local copy, if it has one.  Terms far larger
 * than the window (a lying CAS) are not asked for: they are fetched, and
 * fail there.
 */
static void local_term(struct hub_xet *x, const struct hub_xet_file *f,
		       const struct hub_xet_recon *r, unsigned i, uint64_t n,
		       struct tsrc *src)
{
	const struct hub_xet_term *t = &r->terms[i];
	uint32_t count = t->chunk_end - t->chunk_start;

	for (unsigned k = 0; k < i; k++) {
		if (src[k].bytes && !src[k].shared &&
		    same_chunks(&r->terms[k], t)) {
			src[i] = src[k];
			src[i].shared = true;
			return;
		}
	}
	if (t->unpacked > n + 2 * (uint64_t)HUB_XET_CHUNK_MAX)
		return;
	src[i].bytes = malloc(t->unpacked);
	src[i].lengths = malloc((size_t)count * sizeof(uint32_t));
	if (src[i].bytes && src[i].lengths &&
	    f->local->copy(f->local_arg, t->xorb, t->chunk_start, t->chunk_end,
			   t->unpacked, src[i].bytes, src[i].lengths) == 0) {
		uint64_t sum = 0;

		for (uint32_t k = 0; k < count; k++)
			sum += src[i].lengths[k];
		if (sum == t->unpacked) {
			pthread_mutex_lock(&x->lock);
			x->stats.local_terms++;
			x->stats.local_bytes += t->unpacked;
			pthread_mutex_unlock(&x->lock);
			return;
		}
	}
	free(src[i].bytes);
	free(src[i].lengths);
	src[i].bytes = NULL;
	src[i].lengths = NULL;
}

static void tsrc_free(struct tsrc *src, unsigned n)
{
	for (unsigned i = 0; src && i < n; i++) {
		if (!src[i].shared) {
			free(src[i].bytes);
			free(src[i].lengths);
		}
	}
	free(src);
}

/* The unpacked bytes of term t, or NULL when its chunks do not add up to
   its length. */
static const uint8_t *term_bytes(const struct hub_xet_term *t,
				 const struct hub_xet_fetch *fe,
				 const struct tsrc *src,
				 const struct hub_xet_decoder *d)
{
	uint64_t a, z;

	if (src->bytes)
		return src->bytes;
	a = d->chunk_off[t->chunk_start - fe->chunk_start];
	z = d->chunk_off[t->chunk_end - fe->chunk_start];
	return z - a == t->unpacked ? d->out + a : NULL;
}

/* The unpacked size of chunk chunk_start + k of term t. */
static uint32_t chunk_length(const struct hub_xet_term *t,
			     const struct hub_xet_fetch *fe,
			     const struct tsrc *src,
			     const struct hub_xet_decoder *d, uint32_t k)
{
	uint32_t j = t->chunk_start - fe->chunk_start + k;

	if (src->bytes)
		return src->lengths[k];
	return (uint32_t)(d->chunk_off[j + 1] - d->chunk_off[j]);
}

/*
 * The runs of chunks the needed terms of r place in the file, whose first
 * term begins at file offset base; terms that would not lie inside the
 * file (a lying CAS) are left out.
 */
static int place_runs(const struct hub_xet_file *f,
		      const struct hub_xet_recon *r, uint64_t base,
		      uint64_t want, uint64_t n, const struct tsrc *src,
		      const struct xget *gets, struct placed *out)
{
	uint64_t s = 0, chunks = 0;
	struct hub_xet_run *last = NULL;
	uint64_t last_end = 0;

	for (unsigned i = 0; i < r->n_terms; i++) {
		if (term_needed(&r->terms[i], s, want, n))
			chunks +=
				r->terms[i].chunk_end - r->terms[i].chunk_start;
		s += r->terms[i].unpacked;
	}
	out->runs = calloc(r->n_terms, sizeof(*out->runs));
	out->lengths = calloc(chunks ? chunks : 1, sizeof(uint32_t));
	if (!out->runs || !out->lengths) {
		placed_free(out);
		return -ENOMEM;
	}
	s = 0;
	for (unsigned i = 0; i < r->n_terms; i++) {
		const struct hub_xet_term *t = &r->terms[i];
		const struct hub_xet_fetch *fe = &r->fetch[t->fetch];
		uint32_t count = t->chunk_end - t->chunk_start;
		uint64_t at = base + s;
		uint32_t *len = out->lengths + out->n_lengths;

		s += t->unpacked;
		if (!term_needed(t, s - t->unpacked, want, n) ||
		    t->unpacked > f->size || at > f->size - t->unpacked) {
			last = NULL;
			continue;
		}
		for (uint32_t k = 0; k < count; k++)
			len[k] = chunk_length(t, fe, &src[i], &gets[t->fetch].d,
					      k);
		out->n_lengths += count;
		if (last && last_end == at &&
		    strcmp(last->xorb, t->xorb) == 0 &&
		    last->chunk + last->count == t->chunk_start) {
			last->count += count;
		} else {
			last = &out->runs[out->n++];
			*last = (struct hub_xet_run){ .xorb = t->xorb,
						      .chunk = t->chunk_start,
						      .count = count,
						      .lengths = len,
						      .offset = at };
		}
		last_end = at + t->unpacked;
	}
	return 0;
}

/*
 * Send k's terms of r that are ready: a term is when its chunks are
 * decoded (or copied locally) and every term before it went.  Bytes
 * before *k->sent (sent by an earlier reconstruction of the batch) are
 * not sent again.  k->rc: cb's refusal.
 */
static int sink_send(const struct hub_xet_recon *r, const struct xget *gets,
		     struct sink *k)
{
	uint64_t want = r->offset_into_first_range;

	while (k->rc == 0 && k->term < r->n_terms) {
		const struct hub_xet_term *t = &r->terms[k->term];
		const struct hub_xet_fetch *fe = &r->fetch[t->fetch];
		const struct tsrc *src = &k->src[k->term];
		uint64_t from = k->s > want ? k->s : want;
		uint64_t to = k->s + t->unpacked < want + k->n
				      ? k->s + t->unpacked
				      : want + k->n;

		if (from < to) {
			uint64_t at = k->pos + (from - want);
			uint64_t end = k->pos + (to - want), skip;
			const uint8_t *p;

			if (!src->bytes &&
			    gets[t->fetch].d.n < t->chunk_end - fe->chunk_start)
				break; /* not decoded yet */
			p = term_bytes(t, fe, src, &gets[t->fetch].d);
			if (!p)
				break; /* assemble() says what is wrong */
			if (end > *k->sent) {
				skip = *k->sent > at ? *k->sent - at : 0;
				k->rc = k->cb(k->arg, at + skip,
					      p + (from - k->s) + skip,
					      (size_t)(end - at - skip));
				if (k->rc)
					break;
				*k->sent = end;
			}
		}
		k->s += t->unpacked;
		k->term++;
	}
	return k->rc;
}

/*
 * The n bytes of the file from pos to cb, in order, from the terms of r:
 * fetch and decode what the needed terms lack (each term goes to cb as
 * soon as it and those before it are decoded), check that each unpacks
 * to its length, and say in *placed (when the caller wants it) where
 * their chunks went.  *sent: the file's bytes before it went to cb
 * already (by an earlier reconstruction of the batch), and after.
 * XET_EXPIRED for new URLs.
 */
static int assemble(struct hub_xet *x, const struct hub_xet_file *f,
		    const struct hub_xet_recon *r, uint64_t pos, uint64_t n,
		    uint64_t *sent, hub_data_fn cb, void *arg,
		    struct placed *placed, struct hub_error *err)
{
	uint64_t want = r->offset_into_first_range, s = 0;
	struct sink sink = {
		.cb = cb, .arg = arg, .pos = pos, .n = n, .sent = sent
	};
	struct xget *gets;
	struct tsrc *src;
	int rc;

	if (r->unpacked < want + n) {
		hub_error_proto(err, "reconstruction shorter than the range");
		return -EPROTO;
	}
	gets = calloc(r->n_fetch, sizeof(*gets));
	src = calloc(r->n_terms, sizeof(*src));
	if (!gets || !src) {
		free(gets);
		free(src);
		return -ENOMEM;
	}
	sink.src = src;
	for (unsigned i = 0; i < r->n_terms; i++) {
		const struct hub_xet_term *t = &r->terms[i];

		if (term_needed(t, s, want, n)) {
			if (f->local && f->local->copy)
				local_term(x, f, r, i, n, src);
			if (!src[i].bytes) {
				gets[t->fetch].needed = true;
				gets[t->fetch].unpacked += t->unpacked;
			}
		}
		s += t->unpacked;
	}
	rc = fetch_all(x, r, gets, &sink, err);
	s = 0;
	for (unsigned i = 0; i < r->n_terms && rc == 0; i++) {
		const struct hub_xet_term *t = &r->terms[i];

		if (term_needed(t, s, want, n) &&
		    !term_bytes(t, &r->fetch[t->fetch], &src[i],
				&gets[t->fetch].d)) {
			hub_error_proto(err,
					"term of %.64s does not unpack to "
					"its length",
					t->xorb);
			rc = -EPROTO;
		}
		s += t->unpacked;
	}
	if (rc == 0) /* what no transfer sent: local terms at the end */
		rc = sink_send(r, gets, &sink);
	/* Where the chunks went, when the first term starts in the file. */
	if (rc == 0 && placed && want <= pos)
		rc = place_runs(f, r, pos - want, want, n, src, gets, placed);
	for (unsigned j = 0; j < r->n_fetch; j++)
		kept_put(x, &gets[j].d);
	free(gets);
	tsrc_free(src, r->n_terms);
	return rc;
}

static int read_batch(struct hub_xet *x, const struct hub_xet_file *f,
		      uint64_t pos, uint64_t n, hub_data_fn cb, void *arg,
		      struct hub_error *err)
{
	bool want_placed = f->local && f->local->placed;
	struct placed placed = { .n = 0 };
	struct hub_xet_recon *r = NULL;
	uint64_t sent = pos;
	int rc = -EIO;

	for (unsigned asks = 0; asks <= XET_REASK; asks++) {
		rc = reconstruct(x, f, pos, n, &r, err);
		if (rc == 0)
			rc = assemble(x, f, r, pos, n, &sent, cb, arg,
				      want_placed ? &placed : NULL, err);
		if (rc != XET_EXPIRED)
			break;
		hub_xet_recon_free(r);
		r = NULL;
	}
	if (rc == XET_EXPIRED)
		rc = -EIO; /* err says what the last URL answered */
	if (rc == 0)
		stat_add(x, &x->stats.bytes, n);
	/* The runs point into r: reported before it goes. */
	if (rc == 0 && placed.n > 0)
		f->local->placed(f->local_arg, placed.runs, placed.n);
	placed_free(&placed);
	hub_xet_recon_free(r);
	return rc;
}

/* ---- The interface ------------------------------------------------------ */

int hub_xet_new(struct hub_xet **out, struct hub_client *c,
		struct hub_xfer *xfer)
{
	struct hub_xet *x;

	*out = NULL;
	if (!c || !xfer)
		return -EINVAL;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	if (pthread_mutex_init(&x->lock, NULL) != 0) {
		free(x);
		return -ENOMEM;
	}
	if (pthread_cond_init(&x->work, NULL) != 0) {
		pthread_mutex_destroy(&x->lock);
		free(x);
		return -ENOMEM;
	}
	x->c = c;
	x->xfer = xfer;
	*out = x;
	return 0;
}

static void jobs_cancel(struct xjob *j)
{
	struct hub_error err;

	while (j) {
		struct xjob *next = j->next;

		hub_error_proto(&err, "the Xet reader stopped");
		j->ops->done(j->arg, -ECANCELED, &err);
		free(j);
		j = next;
	}
}

void hub_xet_free(struct hub_xet *x)
{
	struct xjob *left[2];

	if (!x)
		return;
	pthread_mutex_lock(&x->lock);
	x->stopping = true;
	left[0] = x->queue[0];
	left[1] = x->queue[1];
	x->queue[0] = x->queue[1] = NULL;
	pthread_cond_broadcast(&x->work);
	pthread_mutex_unlock(&x->lock);
	jobs_cancel(left[0]);
	jobs_cancel(left[1]);
	for (unsigned i = 0; i < x->n_workers; i++)
		pthread_join(x->workers[i], NULL);
	pthread_cond_destroy(&x->work);
	kept_drop_locked(x);
	while (x->toks) {
		struct xtok *t = x->toks;

		x->toks = t->next;
		xtok_free(t);
	}
	pthread_mutex_destroy(&x->lock);
	free(x);
}

static bool file_ok(const struct hub_xet_file *f)
{
	return f &&
	       (f->type == HUB_MODEL || f->type == HUB_DATASET ||
		f->type == HUB_SPACE) &&
	       f->repo_id && hub_repo_id_valid(f->repo_id) && f->commit &&
	       hub_is_commit_id(f->commit) && f->xet_hash &&
	       hub_is_sha256(f->xet_hash);
}

int hub_xet_read(struct hub_xet *x, const struct hub_xet_file *file,
		 uint64_t offset, uint64_t length, hub_data_fn cb, void *arg,
		 struct hub_error *err)
{
	uint64_t pos, end;
	int rc = 0;

	memset(err, 0, sizeof(*err));
	if (!x || !cb || !file_ok(file) || length == 0 || offset > file->size ||
	    length > file->size - offset)
		return -EINVAL;
	if (x->c->offline)
		return hub_error_offline(err);
	pthread_mutex_lock(&x->lock);
	x->reads++;
	pthread_mutex_unlock(&x->lock);
	end = offset + length;
	for (pos = offset; pos < end && rc == 0;) {
		uint64_t n = end - pos < XET_BATCH ? end - pos : XET_BATCH;
		bool stop;

		pthread_mutex_lock(&x->lock);
		stop = x->stopping;
		pthread_mutex_unlock(&x->lock);
		if (stop) {
			hub_error_proto(err, "the Xet reader stopped");
			rc = -ECANCELED;
			break;
		}

		rc = read_batch(x, file, pos, n, cb, arg, err);
		pos += n;
	}
	pthread_mutex_lock(&x->lock);
	if (--x->reads == 0)
		kept_drop_locked(x);
	pthread_mutex_unlock(&x->lock);
	if (rc == 0)
		memset(err, 0, sizeof(*err));
	return rc;
}

/* ---- Queued reads ------------------------------------------------------- */

static struct xjob *job_take(struct hub_xet *x)
{
	struct xjob *j = NULL;

	pthread_mutex_lock(&x->lock);
	while (!x->stopping && !x->queue[0] && !x->queue[1])
		pthread_cond_wait(&x->work, &x->lock);
	for (int p = 0; p < 2 && !x->stopping && !j; p++) {
		j = x->queue[p];
		if (j)
			x->queue[p] = j->next;
	}
	pthread_mutex_unlock(&x->lock);
	return j;
}

static void *worker(void *arg)
{
	struct hub_xet *x = arg;
	struct xjob *j;

	while ((j = job_take(x)) != NULL) {
		struct hub_error err;
		int rc = hub_xet_read(x, &j->f, j->off, j->len, j->ops->data,
				      j->arg, &err);

		j->ops->done(j->arg, rc, &err);
		free(j);
	}
	return NULL;
}

/* Queue j (lock held); a worker more if all are busy and one is left. */
static int job_queue(struct hub_xet *x, struct xjob *j,
		     enum hub_xfer_priority prio)
{
	struct xjob **pp = &x->queue[prio == HUB_XFER_DEMAND ? 0 : 1];

	if (x->n_workers < XET_WORKERS) {
		int rc = -pthread_create(&x->workers[x->n_workers], NULL,
					 worker, x);

		if (rc < 0 && x->n_workers == 0)
			return rc;
		if (rc == 0)
			x->n_workers++;
	}
	while (*pp)
		pp = &(*pp)->next;
	*pp = j;
	pthread_cond_signal(&x->work);
	return 0;
}

int hub_xet_submit(struct hub_xet *x, const struct hub_xet_file *file,
		   uint64_t offset, uint64_t length,
		   enum hub_xfer_priority prio, const struct hub_xfer_ops *ops,
		   void *arg)
{
	struct xjob *j;
	int rc;

	if (!x || !file_ok(file) || length == 0 || offset > file->size ||
	    length > file->size - offset || !ops || !ops->data || !ops->done ||
	    (prio != HUB_XFER_DEMAND && prio != HUB_XFER_READAHEAD) ||
	    strlen(file->repo_id) >= sizeof(j->repo_id))
		return -EINVAL;
	if (x->c->offline)
		return -ENETDOWN;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	snprintf(j->repo_id, sizeof(j->repo_id), "%s", file->repo_id);
	snprintf(j->commit, sizeof(j->commit), "%s", file->commit);
	snprintf(j->xet_hash, sizeof(j->xet_hash), "%s", file->xet_hash);
	j->f = *file;
	j->f.repo_id = j->repo_id;
	j->f.commit = j->commit;
	j->f.xet_hash = j->xet_hash;
	j->off = offset;
	j->len = length;
	j->ops = ops;
	j->arg = arg;
	pthread_mutex_lock(&x->lock);
	rc = x->stopping ? -ECANCELED : job_queue(x, j, prio);
	pthread_mutex_unlock(&x->lock);
	if (rc < 0)
		free(j);
	return rc;
}

void hub_xet_get_stats(struct hub_xet *x, struct hub_xet_stats *out)
{
	pthread_mutex_lock(&x->lock);
	*out = x->stats;
	pthread_mutex_unlock(&x->lock);
}

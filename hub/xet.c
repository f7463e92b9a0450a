/*
 * xet.c - reads through the Xet CAS (hub.h, "Xet"; hub-api.md section 14).
 *
 * A read of [offset, offset + length) goes in batches of XET_BATCH bytes.
 * For each: a read token for the file's repo and commit (kept until a
 * minute before it expires), the reconstruction of the batch's range from
 * the CAS (v2, or v1 once v2 answered 404), then every fetch entry that a
 * needed term names is fetched (a ranged GET of a signed URL, no token)
 * and decoded, and the terms' bytes are copied into the batch.  Only a
 * batch that decoded whole reaches the caller.  A xorb URL that refuses
 * us (403, 404, 410: expired) sends the batch back to the CAS for new
 * URLs, a few times.
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
#define XET_EXPIRED                                                            \
	3 /* fetch_entry: the URL refused us (not HUB_AGAIN, HUB_RETRY) */

/* A read token of one repo at one commit. */
struct xtok {
	struct xtok *next;
	char *url;    /* the xet-read-token URL it came from */
	char *access; /* the CAS token: wiped before it is freed */
	char *cas;    /* the CAS base URL, no trailing '/' */
	int64_t exp;  /* unix seconds */
};

struct hub_xet {
	struct hub_client *c; /* fixed */
	pthread_mutex_t lock;
	struct xtok *toks;	    /* lock */
	bool no_v2;		    /* lock: the CAS answered 404 to v2 */
	struct hub_xet_stats stats; /* lock */
};

static void stat_add(struct hub_xet *x, uint64_t *field, uint64_t n)
{
	pthread_mutex_lock(&x->lock);
	*field += n;
	pthread_mutex_unlock(&x->lock);
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

static int feed(void *arg, uint64_t offset, const void *data, size_t n)
{
	(void)offset;
	return hub_xet_decoder_feed(arg, data, n);
}

/* One attempt's outcome: 0, HUB_AGAIN, HUB_RETRY, XET_EXPIRED or -errno. */
static int entry_attempt(struct hub_xet *x, const struct hub_xet_fetch *fe,
			 struct hub_range *r, struct hub_resp *last,
			 struct hub_error *err)
{
	struct hub_call call = { .on_body = hub_range_on_body, .arg = r };
	char spec[48];
	int rc, s;

	hub_range_spec(r, spec, sizeof(spec));
	call.url = fe->url;
	call.range = spec;
	hub_range_response_reset(r);
	rc = hub_call_perform(x->c, &call);
	if (rc < 0) {
		if (rc == -ENETDOWN)
			hub_error_offline(err);
		hub_call_reset(&call);
		return rc;
	}
	stat_add(x, &x->stats.xorb_requests, 1);
	memset(last, 0, sizeof(*last));
	memcpy(last->ratelimit, call.resp.ratelimit, sizeof(last->ratelimit));
	memcpy(last->retry_after, call.resp.retry_after,
	       sizeof(last->retry_after));
	s = call.resp.status;
	if (s == 403 || s == 404 || s == 410) {
		hub_call_error(x->c, &call, err);
		hub_call_reset(&call);
		return XET_EXPIRED;
	}
	rc = hub_range_judge(r, &call, err);
	if (rc == 0 && r->next != r->end) {
		hub_error_proto(err, "xorb range ended early");
		rc = -EPROTO;
	}
	if (rc == -ECANCELED) { /* the decoder refused the bytes */
		hub_error_proto(err, "bad xorb chunk in %.64s", fe->xorb);
		rc = r->cb_rc == -ENOMEM ? -ENOMEM : -EPROTO;
	}
	hub_call_reset(&call);
	return rc;
}

/* Start (again) from the first byte of the entry, with a fresh decoder. */
static int entry_restart(const struct hub_xet_fetch *fe, struct hub_range *r,
			 struct hub_xet_decoder *d)
{
	uint32_t n_chunks = fe->chunk_end - fe->chunk_start;

	hub_xet_decoder_destroy(d);
	r->cb_rc = 0;
	r->done = false;
	r->next = fe->byte_first;
	return hub_xet_decoder_init(d, n_chunks,
				    (uint64_t)n_chunks * HUB_XET_CHUNK_MAX);
}

/*
 * Fetch and decode one fetch entry into d.  Cut, stalled and short
 * answers resume after the last byte decoded (new bytes renew the retry
 * budget, as in hub_fetch); a body that breaks the format may be the
 * network's, so the entry starts over, a few times, with backoff.
 */
static int fetch_entry(struct hub_xet *x, const struct hub_xet_fetch *fe,
		       struct hub_xet_decoder *d, struct hub_error *err)
{
	struct hub_range r = { .c = x->c, .commit = "", .cb = feed, .arg = d };
	struct hub_resp last;
	struct hub_backoff b;
	unsigned restarts = 0;
	int rc;

	r.end = fe->byte_last + 1;
	r.size = HUB_NO_END;
	hub_backoff_init(&b);
	rc = entry_restart(fe, &r, d);
	while (rc == 0) {
		uint64_t before = r.next;

		rc = entry_attempt(x, fe, &r, &last, err);
		stat_add(x, &x->stats.xorb_bytes, r.next - before);
		if (r.next > before)
			hub_backoff_init(&b);
		if (rc == 0 && hub_xet_decoder_finish(d) < 0) {
			hub_error_proto(err,
					"xorb range of %.64s ends inside "
					"a chunk",
					fe->xorb);
			rc = -EPROTO;
		}
		if (rc == HUB_AGAIN) {
			rc = 0;
			continue;
		}
		if (rc == HUB_RETRY && hub_backoff_wait(x->c, &b, &last)) {
			rc = 0;
			continue;
		}
		if (rc == -EPROTO && ++restarts <= XET_RESTARTS &&
		    hub_backoff_wait(x->c, &b, NULL)) {
			rc = entry_restart(fe, &r, d);
			continue;
		}
		break;
	}
	return rc == HUB_RETRY ? -EIO : rc;
}

/* ---- Batches ------------------------------------------------------------ */

/* Copy term t's bytes (in d, stream offset s) that fall in the wanted
   window [want, want + n) of the stream into buf. */
static int copy_term(const struct hub_xet_term *t,
		     const struct hub_xet_fetch *fe,
		     const struct hub_xet_decoder *d, uint64_t s, uint64_t want,
		     uint64_t n, uint8_t *buf)
{
	uint64_t a = d->chunk_off[t->chunk_start - fe->chunk_start];
	uint64_t z = d->chunk_off[t->chunk_end - fe->chunk_start];
	uint64_t from = s > want ? s : want;
	uint64_t to = s + t->unpacked < want + n ? s + t->unpacked : want + n;

	if (z - a != t->unpacked)
		return -EPROTO;
	if (from < to)
		memcpy(buf + (from - want), d->out + a + (from - s), to - from);
	return 0;
}

/* Fill buf (n bytes) from the terms of r; XET_EXPIRED for new URLs. */
static int assemble(struct hub_xet *x, const struct hub_xet_recon *r,
		    uint64_t n, uint8_t *buf, struct hub_error *err)
{
	uint64_t want = r->offset_into_first_range;
	struct hub_xet_decoder d = { 0 };
	int rc = 0;

	if (r->unpacked < want + n) {
		hub_error_proto(err, "reconstruction shorter than the range");
		return -EPROTO;
	}
	for (unsigned j = 0; j < r->n_fetch && rc == 0; j++) {
		const struct hub_xet_fetch *fe = &r->fetch[j];
		uint64_t s = 0;
		bool fetched = false;

		for (unsigned i = 0; i < r->n_terms && rc == 0; i++) {
			const struct hub_xet_term *t = &r->terms[i];
			bool needed = s < want + n && s + t->unpacked > want;

			if (t->fetch == j && needed) {
				if (!fetched)
					rc = fetch_entry(x, fe, &d, err);
				fetched = true;
				if (rc == 0 &&
				    copy_term(t, fe, &d, s, want, n, buf) < 0) {
					hub_error_proto(err,
							"term of %.64s does "
							"not unpack to its "
							"length",
							t->xorb);
					rc = -EPROTO;
				}
			}
			s += t->unpacked;
		}
	}
	hub_xet_decoder_destroy(&d);
	return rc;
}

static int read_batch(struct hub_xet *x, const struct hub_xet_file *f,
		      uint64_t pos, uint64_t n, hub_data_fn cb, void *arg,
		      struct hub_error *err)
{
	struct hub_xet_recon *r = NULL;
	uint8_t *buf = malloc(n);
	int rc = -ENOMEM;

	for (unsigned asks = 0; buf && asks <= XET_REASK; asks++) {
		rc = reconstruct(x, f, pos, n, &r, err);
		if (rc == 0)
			rc = assemble(x, r, n, buf, err);
		hub_xet_recon_free(r);
		r = NULL;
		if (rc != XET_EXPIRED)
			break;
	}
	if (rc == XET_EXPIRED)
		rc = -EIO; /* err says what the last URL answered */
	if (rc == 0) {
		stat_add(x, &x->stats.bytes, n);
		rc = cb(arg, pos, buf, n);
	}
	free(buf);
	return rc;
}

/* ---- The interface ------------------------------------------------------ */

int hub_xet_new(struct hub_xet **out, struct hub_client *c)
{
	struct hub_xet *x;

	*out = NULL;
	if (!c)
		return -EINVAL;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	if (pthread_mutex_init(&x->lock, NULL) != 0) {
		free(x);
		return -ENOMEM;
	}
	x->c = c;
	*out = x;
	return 0;
}

void hub_xet_free(struct hub_xet *x)
{
	if (!x)
		return;
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
	end = offset + length;
	for (pos = offset; pos < end && rc == 0;) {
		uint64_t n = end - pos < XET_BATCH ? end - pos : XET_BATCH;

		rc = read_batch(x, file, pos, n, cb, arg, err);
		pos += n;
	}
	if (rc == 0)
		memset(err, 0, sizeof(*err));
	return rc;
}

void hub_xet_get_stats(struct hub_xet *x, struct hub_xet_stats *out)
{
	pthread_mutex_lock(&x->lock);
	*out = x->stats;
	pthread_mutex_unlock(&x->lock);
}

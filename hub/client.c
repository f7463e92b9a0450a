/*
 * client.c - the client object and one HTTP exchange on libcurl, with the
 * retry policy and the translation of a failed exchange into a hub_error.
 *
 * Redirects are never followed by libcurl (CURLOPT_FOLLOWLOCATION is off):
 * the callers in api.c, transfer.c and xfer.c follow them, and every exchange
 * decides on its own whether the token goes out, by comparing the URL's origin
 * with the endpoint's.  A URL of any other origin (the CDN) gets no
 * Authorization header, whatever came before it.
 *
 * Threads: the client is shared.  DNS and TLS sessions sit in a CURLSH
 * guarded by one mutex per lock data.  The connection cache is not shared:
 * libcurl does not support that between concurrent threads (see
 * CURLSHOPT_SHARE, "It is not supported to share connections between
 * multiple concurrent threads").  Instead idle easy handles, each with its
 * live connections, wait in a pool and are taken by the next request, so
 * connections are reused across requests and threads without two threads
 * ever touching one connection.
 */
#include "hub_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define POOL_MAX	32 /* idle easy handles kept */
#define CONNECT_TIMEOUT 10L
#define HEADER_LIMIT	(64u << 10) /* longest Location or Link kept */
#define RETRIES		5

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- The share and the pool of easy handles ---------------------------- */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access,
		       void *userp)
{
	struct hub_client *c = userp;

	(void)h;
	(void)access;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&c->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *userp)
{
	struct hub_client *c = userp;

	(void)h;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&c->share_locks[data]);
}

static int share_new(struct hub_client *c)
{
	CURLSHcode sc;

	c->share = curl_share_init();
	if (!c->share)
		return -ENOMEM;
	sc = curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
	if (sc == CURLSHE_OK)
		sc = curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC,
				       share_unlock);
	if (sc == CURLSHE_OK)
		sc = curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
	if (sc == CURLSHE_OK)
		sc = curl_share_setopt(c->share, CURLSHOPT_SHARE,
				       CURL_LOCK_DATA_DNS);
	if (sc == CURLSHE_OK)
		sc = curl_share_setopt(c->share, CURLSHOPT_SHARE,
				       CURL_LOCK_DATA_SSL_SESSION);
	return sc == CURLSHE_OK ? 0 : -ENOMEM;
}

static CURL *pool_get(struct hub_client *c)
{
	CURL *easy = NULL;

	pthread_mutex_lock(&c->pool_lock);
	if (c->n_pool > 0)
		easy = c->pool[--c->n_pool];
	pthread_mutex_unlock(&c->pool_lock);
	return easy ? easy : curl_easy_init();
}

/* Back to the pool, its options reset (no pointer into a finished call). */
static void pool_put(struct hub_client *c, CURL *easy)
{
	curl_easy_reset(easy);
	pthread_mutex_lock(&c->pool_lock);
	if (c->n_pool < POOL_MAX) {
		c->pool[c->n_pool++] = easy;
		easy = NULL;
	}
	pthread_mutex_unlock(&c->pool_lock);
	if (easy)
		curl_easy_cleanup(easy);
}

/* ---- The client -------------------------------------------------------- */

static int endpoint_set(struct hub_client *c, const char *ep)
{
	size_t n = strlen(ep);
	char *check = NULL;
	int rc;

	while (n > 0 && ep[n - 1] == '/')
		n--;
	c->endpoint = strndup(ep, n);
	if (!c->endpoint)
		return -ENOMEM;
	/* An absolute http(s) URL, to which paths can be appended. */
	rc = hub_resolve_location(c->endpoint, c->endpoint, &check);
	free(check);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0 || n == 0 || strpbrk(c->endpoint, "?# "))
		return -EINVAL;
	return 0;
}

static int locks_init(struct hub_client *c)
{
	if (pthread_mutex_init(&c->pool_lock, NULL) != 0 ||
	    pthread_mutex_init(&c->loc_lock, NULL) != 0)
		return -ENOMEM;
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		if (pthread_mutex_init(&c->share_locks[i], NULL) != 0)
			return -ENOMEM;
	return 0;
}

int hub_client_new(struct hub_client **out, const struct hub_config *cfg)
{
	static const struct hub_config defaults;
	char endpoint[2048];
	struct hub_client *c;
	int rc;

	*out = NULL;
	if (!cfg)
		cfg = &defaults;
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK)
		return -ENOMEM;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	rc = locks_init(c);
	if (rc == 0)
		rc = hub_token_init(&c->token, cfg->token_file);
	if (rc < 0)
		goto fail;
	c->offline = cfg->offline;
	c->stall_seconds = cfg->stall_seconds > 0 ? cfg->stall_seconds : 60;
	c->wait_out = cfg->wait_out_pauses;
	snprintf(c->user_agent, sizeof(c->user_agent), "hubfs/%s; libcurl/%s",
		 HUBFS_VERSION, curl_version_info(CURLVERSION_NOW)->version);
	if (!cfg->endpoint)
		hub_default_endpoint(endpoint, sizeof(endpoint));
	rc = endpoint_set(c, cfg->endpoint ? cfg->endpoint : endpoint);
	if (rc == 0)
		rc = share_new(c);
	if (rc == 0) {
		c->pool = calloc(POOL_MAX, sizeof(*c->pool));
		rc = c->pool ? 0 : -ENOMEM;
	}
	if (rc < 0)
		goto fail;
	*out = c;
	return 0;
fail:
	hub_client_free(c); /* copes with a half-built client */
	return rc;
}

void hub_client_free(struct hub_client *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < c->n_pool; i++)
		curl_easy_cleanup(c->pool[i]);
	free(c->pool);
	if (c->share)
		curl_share_cleanup(c->share);
	hub_loc_free_all(c);
	hub_token_destroy(&c->token);
	free(c->endpoint);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&c->share_locks[i]);
	pthread_mutex_destroy(&c->pool_lock);
	pthread_mutex_destroy(&c->loc_lock);
	free(c);
}

const char *hub_client_endpoint(const struct hub_client *c)
{
	return c->endpoint;
}

bool hub_client_offline(const struct hub_client *c)
{
	return c->offline;
}

bool hub_client_has_token(struct hub_client *c)
{
	char tok[HUB_TOKEN_MAX + 1];
	size_t n;

	hub_token_refresh(&c->token, false);
	n = hub_token_copy(&c->token, tok, sizeof(tok));
	explicit_bzero(tok, sizeof(tok));
	return n > 0;
}

unsigned hub_client_token_changes(struct hub_client *c)
{
	unsigned changes;

	hub_token_refresh(&c->token, false);
	pthread_mutex_lock(&c->token.lock);
	changes = c->token.changes;
	pthread_mutex_unlock(&c->token.lock);
	return changes;
}

/* ---- Response headers --------------------------------------------------- */

static void resp_clear(struct hub_resp *r)
{
	free(r->location);
	free(r->link);
	memset(r, 0, sizeof(*r));
}

/* "HTTP/1.1 206 Partial Content" or "HTTP/2 200": the status, or 0. */
static int parse_status(const char *p, size_t n)
{
	size_t i = 5;

	while (i < n && p[i] != ' ')
		i++;
	while (i < n && p[i] == ' ')
		i++;
	if (i + 3 > n || p[i] < '1' || p[i] > '5' || p[i + 1] < '0' ||
	    p[i + 1] > '9' || p[i + 2] < '0' || p[i + 2] > '9')
		return 0;
	return (p[i] - '0') * 100 + (p[i + 1] - '0') * 10 + (p[i + 2] - '0');
}

static void set_field(char *dst, size_t size, const char *v, size_t n)
{
	if (n >= size)
		n = size - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

/*
 * A value the client parses and acts on (a range, a commit, an etag, a
 * rate limit) is never cut short: cut to fit, "bytes 0-9/1000000" padded
 * with spaces could read as a 100-byte file, and so could one with a NUL
 * after "/100".  Such a value is kept as "?", which parses as nothing and
 * matches nothing (found by tests/fuzz/fuzz_response).
 */
static void set_parsed(char *dst, size_t size, const char *v, size_t n)
{
	if (n >= size || memchr(v, '\0', n))
		set_field(dst, size, "?", 1);
	else
		set_field(dst, size, v, n);
}

static void set_location(struct hub_resp *r, const char *v, size_t n)
{
	free(r->location);
	r->location = n < HEADER_LIMIT ? strndup(v, n) : NULL;
}

/* Several Link headers are one list, as HTTP says. */
static void add_link(struct hub_resp *r, const char *v, size_t n)
{
	size_t old = r->link ? strlen(r->link) : 0;
	char *p;

	if (old + n + 3 > HEADER_LIMIT)
		return;
	p = realloc(r->link, old + n + 3);
	if (!p)
		return;
	if (old) {
		memcpy(p + old, ", ", 2);
		old += 2;
	}
	memcpy(p + old, v, n);
	p[old + n] = '\0';
	r->link = p;
}

static void store_header(struct hub_resp *r, const char *name, size_t nn,
			 const char *v, size_t n)
{
#define IS(s) (nn == sizeof(s) - 1 && strncasecmp(name, s, nn) == 0)
	if (IS("location"))
		set_location(r, v, n);
	else if (IS("link"))
		add_link(r, v, n);
	else if (IS("content-range"))
		set_parsed(r->content_range, sizeof(r->content_range), v, n);
	else if (IS("x-error-code"))
		set_field(r->error_code, sizeof(r->error_code), v, n);
	else if (IS("x-error-message"))
		set_field(r->error_message, sizeof(r->error_message), v, n);
	else if (IS("x-repo-commit"))
		set_parsed(r->repo_commit, sizeof(r->repo_commit), v, n);
	else if (IS("x-linked-etag"))
		set_parsed(r->linked_etag, sizeof(r->linked_etag), v, n);
	else if (IS("x-linked-size"))
		set_parsed(r->linked_size, sizeof(r->linked_size), v, n);
	else if (IS("etag"))
		set_parsed(r->etag, sizeof(r->etag), v, n);
	else if (IS("x-mirror-slice"))
		set_parsed(r->mirror_slice, sizeof(r->mirror_slice), v, n);
	else if (IS("x-xet-hash"))
		set_parsed(r->xet_hash, sizeof(r->xet_hash), v, n);
	else if (IS("ratelimit"))
		set_parsed(r->ratelimit, sizeof(r->ratelimit), v, n);
	else if (IS("ratelimit-policy"))
		set_parsed(r->ratelimit_policy, sizeof(r->ratelimit_policy), v,
			   n);
	else if (IS("retry-after"))
		set_parsed(r->retry_after, sizeof(r->retry_after), v, n);
#undef IS
}

size_t hub_call_on_header(char *buf, size_t size, size_t nitems, void *userp)
{
	struct hub_call *call = userp;
	size_t n = size * nitems, nn;
	const char *colon, *v, *end = buf + n;

	if (n >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
		/* A new response (an interim 1xx came before): start over. */
		resp_clear(&call->resp);
		call->resp.status = parse_status(buf, n);
		call->body_len = 0;
		return n;
	}
	colon = memchr(buf, ':', n);
	if (!colon)
		return n;
	nn = (size_t)(colon - buf);
	while (nn > 0 && (buf[nn - 1] == ' ' || buf[nn - 1] == '\t'))
		nn--;
	v = colon + 1;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' ||
			   end[-1] == ' ' || end[-1] == '\t'))
		end--;
	store_header(&call->resp, buf, nn, v, (size_t)(end - v));
	return n;
}

/* ---- Response bodies ---------------------------------------------------- */

static bool status_ok(int status)
{
	return status >= 200 && status < 300;
}

static int body_append(struct hub_call *call, const char *p, size_t n,
		       size_t limit)
{
	size_t need = call->body_len + n + 1;

	if (call->body_len + n > limit)
		return -E2BIG;
	if (need > call->body_cap) {
		size_t cap = call->body_cap ? call->body_cap : 4096;
		char *b;

		while (cap < need)
			cap *= 2;
		if (cap > limit + 1)
			cap = limit + 1;
		b = realloc(call->body, cap);
		if (!b)
			return -ENOMEM;
		call->body = b;
		call->body_cap = cap;
	}
	memcpy(call->body + call->body_len, p, n);
	call->body_len += n;
	call->body[call->body_len] = '\0';
	return 0;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *userp)
{
	struct hub_call *call = userp;
	size_t n = size * nmemb, limit;
	int rc;

	if (status_ok(call->resp.status) && call->on_body) {
		rc = call->on_body(call, p, n);
		if (rc != 0) {
			call->abort_rc = rc;
			return CURL_WRITEFUNC_ERROR;
		}
		return n;
	}
	limit = status_ok(call->resp.status)
			? (call->body_limit ? call->body_limit : HUB_JSON_LIMIT)
			: HUB_ERROR_LIMIT;
	rc = body_append(call, p, n, limit);
	/* An error's message is at its start: the rest is dropped. */
	if (rc == -E2BIG && !status_ok(call->resp.status))
		return n;
	if (rc == -E2BIG) {
		call->body_overflow = true;
		return CURL_WRITEFUNC_ERROR;
	}
	if (rc < 0) {
		call->abort_rc = rc;
		return CURL_WRITEFUNC_ERROR;
	}
	return n;
}

/* ---- One exchange -------------------------------------------------------- */

void hub_call_reset(struct hub_call *call)
{
	resp_clear(&call->resp);
	free(call->body);
	call->body = NULL;
	call->body_len = call->body_cap = 0;
	call->cc = CURLE_OK;
	call->sent_token = false;
	call->reached = false;
	call->body_overflow = false;
	call->abort_rc = 0;
	call->errbuf[0] = '\0';
}

void hub_headers_free(struct curl_slist *h)
{
	for (struct curl_slist *i = h; i; i = i->next)
		explicit_bzero(i->data, strlen(i->data));
	curl_slist_free_all(h);
}

static int add_header(struct curl_slist **list, const char *h)
{
	struct curl_slist *n = curl_slist_append(*list, h);

	if (!n)
		return -ENOMEM;
	*list = n;
	return 0;
}

/* The Authorization header, only for the endpoint's origin. */
static int add_auth(struct hub_client *c, struct hub_call *call,
		    struct curl_slist **list)
{
	char tok[HUB_TOKEN_MAX + 1], h[HUB_TOKEN_MAX + 32];
	int rc = 0;

	if (call->bearer) { /* a CAS call: never the Hub's token */
		snprintf(h, sizeof(h), "Authorization: Bearer %s",
			 call->bearer);
		rc = add_header(list, h);
		explicit_bzero(h, sizeof(h));
		return rc;
	}
	if (!hub_same_origin(call->url, c->endpoint))
		return 0;
	hub_token_refresh(&c->token, false);
	if (hub_token_copy(&c->token, tok, sizeof(tok)) > 0) {
		snprintf(h, sizeof(h), "Authorization: Bearer %s", tok);
		rc = add_header(list, h);
		call->sent_token = rc == 0;
	}
	explicit_bzero(tok, sizeof(tok));
	explicit_bzero(h, sizeof(h));
	return rc;
}

static CURLcode setup(struct hub_client *c, CURL *easy, struct hub_call *call,
		      struct curl_slist *headers)
{
	CURLcode cc = CURLE_OK;

#define SET(opt, val)                                                          \
	do {                                                                   \
		if (cc == CURLE_OK)                                            \
			cc = curl_easy_setopt(easy, opt, val);                 \
	} while (0)
	SET(CURLOPT_ERRORBUFFER, call->errbuf);
	SET(CURLOPT_SHARE, c->share);
	SET(CURLOPT_URL, call->url);
	SET(CURLOPT_HTTPGET, 1L);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_USERAGENT, c->user_agent);
	SET(CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT);
	SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
	SET(CURLOPT_LOW_SPEED_TIME, c->stall_seconds);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	/*
	 * A request without Accept-Encoding accepts any coding (RFC 9110
	 * 12.5.3), so a server may compress whatever it likes.  Saying what
	 * we take also makes libcurl decode it: JSON may come compressed in
	 * any coding libcurl knows (a big listing shrinks tenfold), file
	 * bytes are asked for as they are, so that sizes and ranges count
	 * the file's own bytes, and are decoded should a server compress
	 * them all the same.
	 */
	SET(CURLOPT_ACCEPT_ENCODING, call->json ? "" : "identity");
	SET(CURLOPT_HTTPHEADER, headers);
	SET(CURLOPT_HEADERFUNCTION, hub_call_on_header);
	SET(CURLOPT_HEADERDATA, call);
	SET(CURLOPT_WRITEFUNCTION, on_write);
	SET(CURLOPT_WRITEDATA, call);
	if (call->range)
		SET(CURLOPT_RANGE, call->range);
#undef SET
	return cc;
}

int hub_call_setup(struct hub_client *c, struct hub_call *call, CURL *easy,
		   struct curl_slist **headers)
{
	int rc;

	hub_call_reset(call);
	*headers = NULL;
	if (c->offline)
		return -ENETDOWN;
	rc = add_auth(c, call, headers);
	if (rc == 0 && call->json)
		rc = add_header(headers, "Accept: application/json");
	if (rc == 0 && call->no_cache)
		rc = add_header(headers, "Cache-Control: no-cache");
	if (rc < 0) {
		hub_headers_free(*headers);
		*headers = NULL;
		return rc;
	}
	call->cc = setup(c, easy, call, *headers);
	return 0;
}

void hub_call_finish(struct hub_call *call, CURL *easy, CURLcode cc)
{
	long sent = 0;

	call->cc = cc;
	call->reached = curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &sent) ==
				CURLE_OK &&
			sent > 0;
}

int hub_call_perform(struct hub_client *c, struct hub_call *call)
{
	struct curl_slist *headers = NULL;
	CURL *easy;
	int rc;

	hub_call_reset(call);
	if (c->offline)
		return -ENETDOWN;
	easy = pool_get(c);
	if (!easy)
		return -ENOMEM;
	rc = hub_call_setup(c, call, easy, &headers);
	if (rc == 0 && call->cc == CURLE_OK)
		hub_call_finish(call, easy, curl_easy_perform(easy));
	if (rc == 0 && call->abort_rc == -ENOMEM)
		rc = -ENOMEM;
	pool_put(c, easy);
	hub_headers_free(headers);
	return rc;
}

/* ---- Retries ------------------------------------------------------------- */

static bool transport_retryable(CURLcode cc)
{
	switch (cc) {
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_PARTIAL_FILE:
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_HTTP3:
	case CURLE_QUIC_CONNECT_ERROR:
		return true;
	default:
		return false;
	}
}

bool hub_call_retryable(const struct hub_call *call)
{
	int s = call->resp.status;

	if (call->abort_rc || call->body_overflow)
		return false;
	if (s == 408 || s == 429 ||
	    (s >= 500 && s <= 599 && s != 501 && s != 505))
		return true;
	/*
	 * A cut during a successful response, or no response at all.  A
	 * server that could not even be reached (name, connect, TLS) fails
	 * at once: DESIGN.md section 2 wants EIO without delay then, and
	 * the caller retries in the background.
	 */
	return (s == 0 || status_ok(s)) && call->reached &&
	       transport_retryable(call->cc);
}

#define WAIT_CAP (24L * 3600) /* as hub_parse_retry_after() caps */

long hub_server_wait(const struct hub_resp *resp)
{
	struct hub_ratelimit rl;
	long secs;

	/*
	 * t= is capped at a day like Retry-After: any t= parses, up to
	 * LONG_MAX, and adding the one second to that would overflow
	 * (found by tests/fuzz/fuzz_headers).
	 */
	if (resp->ratelimit[0] &&
	    hub_parse_ratelimit(resp->ratelimit, &rl) == 0 &&
	    rl.remaining == 0 && rl.reset >= 0)
		return (rl.reset < WAIT_CAP ? rl.reset : WAIT_CAP) + 1;
	if (resp->retry_after[0] &&
	    hub_parse_retry_after(resp->retry_after, time(NULL), &secs) == 0)
		return secs + 1;
	return -1;
}

long hub_backoff_delay(unsigned tries, const struct hub_resp *resp)
{
	long asked = resp ? hub_server_wait(resp) : -1;

	if (asked >= 0)
		return asked;
	return 1L << (tries < 3 ? tries : 3); /* 1, 2, 4, 8, 8, ... */
}

static time_t monotonic_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

void hub_backoff_init(struct hub_backoff *b)
{
	memset(b, 0, sizeof(*b));
	b->start = monotonic_now();
}

bool hub_backoff_wait(struct hub_client *c, struct hub_backoff *b,
		      const struct hub_resp *resp)
{
	long wait, left = 2 * c->stall_seconds -
			  (long)(monotonic_now() - b->start);
	struct timespec ts;

	/*
	 * Retries end within twice the read timeout of the request's start
	 * (or last progress), attempts included: a Hub that stalls every
	 * attempt does not keep a lookup waiting for minutes.
	 */
	if (b->tries >= RETRIES || left <= 0)
		return false;
	wait = hub_backoff_delay(b->tries, resp);
	if (wait > c->stall_seconds)
		wait = c->stall_seconds;
	if (wait > left)
		return false;
	b->tries++;
	b->slept += wait;
	ts.tv_sec = wait;
	ts.tv_nsec = 0;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	return true;
}

bool hub_call_token_retry(struct hub_client *c, const struct hub_call *call)
{
	if (call->resp.status != 401 ||
	    !hub_same_origin(call->url, c->endpoint))
		return false;
	return hub_token_refresh(&c->token, true);
}

/* ---- Errors -------------------------------------------------------------- */

/* Keep log lines one line: control characters become '?'. */
static void sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

/* A server could echo the token back; it must not reach a log. */
static void redact_token(struct hub_client *c, char *msg)
{
	char tok[HUB_TOKEN_MAX + 1];
	size_t n = hub_token_copy(&c->token, tok, sizeof(tok));
	char *p;

	for (p = msg; n > 0 && (p = strstr(p, tok)) != NULL; p += n)
		memset(p, '*', n);
	/* The message may have been cut inside the token: mask what is left. */
	for (size_t len = strlen(msg), k = n < len ? n : len; n && k >= 4;
	     k--) {
		if (memcmp(msg + len - k, tok, k) == 0) {
			memset(msg + len - k, '*', k);
			break;
		}
	}
	explicit_bzero(tok, sizeof(tok));
}

void hub_call_error(struct hub_client *c, const struct hub_call *call,
		    struct hub_error *err)
{
	memset(err, 0, sizeof(*err));
	if (call->resp.status && !status_ok(call->resp.status)) {
		err->status = call->resp.status;
		set_field(err->code, sizeof(err->code), call->resp.error_code,
			  strlen(call->resp.error_code));
		if (call->resp.error_message[0])
			set_field(err->message, sizeof(err->message),
				  call->resp.error_message,
				  strlen(call->resp.error_message));
		else if (call->body)
			hub_json_error_message(call->body, call->body_len,
					       err->message,
					       sizeof(err->message));
	} else if (call->body_overflow) {
		snprintf(err->message, sizeof(err->message),
			 "response body over %u bytes", HUB_JSON_LIMIT);
	} else {
		err->transport = (int)call->cc;
		set_field(err->message, sizeof(err->message), call->errbuf,
			  strlen(call->errbuf));
	}
	sanitize(err->code);
	sanitize(err->message);
	redact_token(c, err->code);
	redact_token(c, err->message);
}

void hub_error_proto(struct hub_error *err, const char *fmt, ...)
{
	va_list ap;

	memset(err, 0, sizeof(*err));
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	sanitize(err->message);
}

int hub_error_offline(struct hub_error *err)
{
	memset(err, 0, sizeof(*err));
	snprintf(err->message, sizeof(err->message), "offline mode");
	return -ENETDOWN;
}

char *hub_url_printf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

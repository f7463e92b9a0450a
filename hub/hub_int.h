/*
 * hub_int.h - what the files of hub/ share with each other and with the
 * unit tests.  Not part of the module's interface (that is hub.h alone):
 * nothing outside hub/ and tests/ includes this file.
 *
 *   auth.c      the token (where it comes from, re-read when its file
 *               changes) and the endpoint in force
 *   client.c    the client object and one HTTP exchange on libcurl,
 *               retry policy and backoff, errors as values
 *   api.c       the JSON endpoints: repo info, tree, author listing,
 *               whoami
 *   json.c      the parsers of those JSON bodies (no I/O)
 *   transfer.c  byte ranges of a file through the resolve redirects: what
 *               xfer.c does with each response, where a resolve led
 *   xfer.c      the transfer engine: many ranges on one multi handle
 *   pace.c      spacing resolves out by the Hub's RateLimit headers
 *   xetfmt.c    the Xet formats: reconstruction answers, xorb chunks
 *   xet.c       reads through the Xet CAS: tokens, reconstructions, xorbs
 */
#ifndef HUBFS_HUB_INT_H
#define HUBFS_HUB_INT_H

#include "hub.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <pthread.h>
#include <sys/stat.h>

/* ---- auth.c ------------------------------------------------------------ */

/* The longest token accepted; anything longer counts as no token. */
#define HUB_TOKEN_MAX 1024

/*
 * The token of a client.  An environment token is read once; a file token
 * is re-read whenever the file's identity (device, inode, size, mtime)
 * changes, or when forced after a 401.  The value never leaves this struct
 * except into a caller's buffer that builds one request's header.
 */
struct hub_token {
	pthread_mutex_t lock;
	struct hub_token_source src; /* fixed after init */
	char *value;		     /* lock: NULL when there is no token */
	bool have_stat;	  /* lock: st describes the file value came from */
	struct stat st;	  /* lock */
	unsigned changes; /* lock: bumped whenever value changes */
};

int hub_token_init(struct hub_token *t, const char *token_file_flag);
void hub_token_destroy(struct hub_token *t);

/*
 * Re-read a file token when its file changed, or always when force is set.
 * Returns true when the token is now different from before.
 */
bool hub_token_refresh(struct hub_token *t, bool force);

/*
 * Copy the token into buf (NUL terminated).  Returns its length, or 0 when
 * there is no token.  The caller wipes buf with explicit_bzero().
 */
size_t hub_token_copy(struct hub_token *t, char *buf, size_t size);

/* ---- client.c ---------------------------------------------------------- */

#define HUB_JSON_LIMIT	(64u << 20) /* largest JSON body accepted */
#define HUB_ERROR_LIMIT (64u << 10) /* error bodies kept for their message */

struct hub_client {
	char *endpoint;	    /* fixed after new: no trailing '/' */
	bool offline;	    /* fixed */
	long stall_seconds; /* fixed, > 0 */
	bool wait_out;	    /* hub_config.wait_out_pauses; fixed */
	char user_agent[96];
	struct hub_token token;

	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

	pthread_mutex_t pool_lock;
	CURL **pool; /* pool_lock: idle easy handles */
	unsigned n_pool, cap_pool;

	pthread_mutex_t loc_lock;
	struct hub_loc *locs; /* loc_lock: where resolve URLs redirected to
				 (transfer.c) */
	unsigned n_locs;
};

/* The response headers the client acts on, from the last response only. */
struct hub_resp {
	int status;	/* 0 until a status line came */
	char *location; /* allocated, or NULL */
	char *link;	/* allocated; several Link headers joined by ", " */
	char content_range[96];
	char error_code[48];
	char error_message[256];
	char repo_commit[48];
	char linked_etag[80];
	char linked_size[24];
	char mirror_slice[24]; /* X-Mirror-Slice: a mirror's range unit */
	char xet_hash[80];     /* X-Xet-Hash: a resolve of a Xet file */
	char etag[80];
	char ratelimit[128];
	char ratelimit_policy[128];
	char retry_after[64];
};

struct hub_call;

/*
 * Called with the body bytes of a 2xx response.  Returns 0 to go on, or
 * non-zero to stop the transfer (kept in call->abort_rc).
 */
typedef int (*hub_body_fn)(struct hub_call *call, const char *p, size_t n);

/* One HTTP GET exchange.  Set the inputs, then hub_call_perform(). */
struct hub_call {
	/* in */
	const char *url;     /* absolute */
	const char *range;   /* CURLOPT_RANGE value "a-b" / "a-", or NULL */
	bool json;	     /* Accept: application/json, any coding */
	bool no_cache;	     /* Cache-Control: no-cache */
	hub_body_fn on_body; /* 2xx bodies; NULL: into body, up to the limit */
	void *arg;
	size_t body_limit;  /* for body when on_body is NULL; 0: JSON limit */
	const char *bearer; /* a Xet CAS token to send instead of the Hub's;
			       the caller sends it only to its CAS */

	/* out */
	struct hub_resp resp;
	CURLcode cc;	    /* CURLE_OK, or why the exchange ended early */
	bool sent_token;    /* an Authorization header went out */
	bool reached;	    /* the request was sent: the server is up */
	bool body_overflow; /* body hit its limit (a 2xx: a failure) */
	int abort_rc;	    /* what on_body returned to stop */
	char *body;	    /* allocated, NUL terminated; or NULL */
	size_t body_len, body_cap;
	char errbuf[CURL_ERROR_SIZE];
};

/* Free what a call holds and zero its outputs; inputs are kept. */
void hub_call_reset(struct hub_call *call);

/*
 * Perform the exchange: one request, redirects not followed.  The token
 * is sent only when url's origin is the endpoint's.  Returns 0 when the
 * exchange ran (look at resp.status and cc), -ENETDOWN offline, -ENOMEM.
 */
int hub_call_perform(struct hub_client *c, struct hub_call *call);

/*
 * hub_call_perform() in two halves, for a caller that runs easy on a
 * multi handle.  hub_call_setup() resets the call's outputs and sets every
 * option of easy for it (the token only for the endpoint's origin);
 * *headers must outlive the transfer, then go to hub_headers_free().
 * Returns 0 (call->cc says whether the options took), -ENETDOWN offline,
 * -ENOMEM.  hub_call_finish() records how the transfer ended.
 */
int hub_call_setup(struct hub_client *c, struct hub_call *call, CURL *easy,
		   struct curl_slist **headers);
void hub_call_finish(struct hub_call *call, CURL *easy, CURLcode cc);

/*
 * The CURLOPT_HEADERFUNCTION of every call (userp is the hub_call): one
 * header line as it came off the network, status line included, into
 * call->resp.  Exposed for the fuzzers (tests/fuzz/).
 */
size_t hub_call_on_header(char *buf, size_t size, size_t nitems, void *userp);

/* Free a header list, wiping it first: one entry may hold the token. */
void hub_headers_free(struct curl_slist *h);

/* 408, 429, 5xx (not 501/505) or a transport failure worth retrying. */
bool hub_call_retryable(const struct hub_call *call);

/*
 * Counts consecutive failed attempts of one request and their waits, and
 * when the request (or its last progress) began: no request goes on
 * retrying once twice stall_seconds have passed since then.  Start one with
 * hub_backoff_init().
 */
struct hub_backoff {
	unsigned tries;
	long slept;   /* seconds */
	time_t start; /* CLOCK_MONOTONIC seconds */
};

void hub_backoff_init(struct hub_backoff *b);

/*
 * Seconds to wait before the next attempt after `tries` failed ones in a
 * row: what RateLimit (r=0;t=N: N + 1) or Retry-After (N + 1) ask for,
 * else 1, 2, 4, 8, 8, ...  The server's ask is capped at a day (plus 1),
 * nothing else.
 */
long hub_backoff_delay(unsigned tries, const struct hub_resp *resp);
/* Seconds the server asked to wait (RateLimit r=0 or Retry-After, + 1), or
   -1 when it asked for nothing. */
long hub_server_wait(const struct hub_resp *resp);

/*
 * Sleep before the next attempt: 1, 2, 4, 8, 8 s, or what RateLimit
 * (r=0;t=N) or Retry-After ask for, each wait capped at stall_seconds.
 * Returns false, without sleeping, when the retries are used up or the
 * wait would end more than 2 * stall_seconds after b->start.
 */
bool hub_backoff_wait(struct hub_client *c, struct hub_backoff *b,
		      const struct hub_resp *resp);

/*
 * Fill err from a finished call that failed: status, X-Error-Code, the
 * message from X-Error-Message or the JSON body, or the transport error.
 */
void hub_call_error(struct hub_client *c, const struct hub_call *call,
		    struct hub_error *err);

/* Fill err with a protocol violation (status 0, transport 0). */
void hub_error_proto(struct hub_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Fill err for a request refused in offline mode; returns -ENETDOWN. */
int hub_error_offline(struct hub_error *err);

/* A 401 that a changed token may cure: re-read it; true to retry once. */
bool hub_call_token_retry(struct hub_client *c, const struct hub_call *call);

/* Build a URL with printf-like arguments; NULL on ENOMEM. */
char *hub_url_printf(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/* ---- transfer.c -------------------------------------------------------- */

#define HUB_NO_END UINT64_MAX

/* What an attempt at a range came to, besides 0 (all delivered), -errno. */
#define HUB_AGAIN 1 /* go on at once: progress was made */
#define HUB_RETRY 2 /* back off, then go on */

/*
 * A read of the bytes [next, end) of one file, over as many responses as
 * it takes: what was delivered so far, and the response in progress.
 * The transfer engine keeps one per request, touched only by its thread
 * (the stack test's synchronous fetch, one on its stack).
 */
struct hub_range {
	struct hub_client *c;
	const char *commit; /* an X-Repo-Commit must name it */
	const char *etag;   /* the file's etag, or NULL not to check */
	hub_data_fn cb;	    /* gets the bytes, in order */
	void *arg;
	uint64_t next; /* file offset of the next byte to deliver */
	uint64_t end;  /* one past the last byte wanted, or HUB_NO_END */
	uint64_t size; /* the file's size, or HUB_NO_END when unknown */
	bool token_retried;

	/* The response in progress (hub_range_response_reset). */
	bool started;	/* its first body byte came */
	uint64_t pos;	/* file offset of its next body byte */
	uint64_t stop;	/* one past the last byte it may carry, or HUB_NO_END */
	uint64_t total; /* the file's size when it said, or HUB_NO_END */
	bool done;	/* every wanted byte was delivered */
	bool wrong_file; /* its etag is not the one expected */
	int cb_rc;	 /* what the callback returned to stop */
	char proto[160]; /* how the body broke the protocol, or "" */
};

/* Start a new response: forget what the last one left. */
void hub_range_response_reset(struct hub_range *r);

/*
 * The hub_body_fn of a range (call->arg is the hub_range): checks the
 * status and Content-Range before the first byte, skips what a 200 sends
 * before r->next, hands r->cb the wanted bytes and stops the transfer
 * once nothing more is wanted.
 */
int hub_range_on_body(struct hub_call *call, const char *p, size_t n);

/* The CURLOPT_RANGE value for what is still wanted: "a-b" or "a-". */
void hub_range_spec(const struct hub_range *r, char *buf, size_t size);

/*
 * Headers every response must pass before anything else is done with it:
 * an X-Repo-Commit of another commit is -EPROTO, and an X-Linked-Etag on a
 * redirect that names another file than r->etag is -EIO.
 */
int hub_range_check_headers(const struct hub_range *r,
			    const struct hub_call *call, struct hub_error *err);

/*
 * What a finished exchange that was not a redirect comes to: 0,
 * HUB_AGAIN, HUB_RETRY (err filled with why), or -errno with err filled:
 * -EPROTO for a body that broke the protocol, -ECANCELED when the callback
 * stopped it (r->cb_rc says with what), -EIO otherwise.
 */
int hub_range_judge(struct hub_range *r, struct hub_call *call,
		    struct hub_error *err);

bool hub_is_redirect(int status);

/* Make *url the target of a redirect; -EPROTO for a missing or bad one. */
int hub_redirect_target(char **url, const struct hub_call *call,
			struct hub_error *err);

/*
 * A target past the Hub's resolve (a signed CDN URL, a resolve-cache URL)
 * that now refuses us (403, 404, 410): forget it and resolve again.
 */
bool hub_stale_target(const struct hub_call *call, const char *url,
		      const char *resolve_url);

/* {endpoint}/{prefix}{id}/resolve/{commit}/{escaped path}; NULL: ENOMEM */
char *hub_resolve_url(struct hub_client *c, enum hub_repo_type type,
		      const char *id, const char *commit, const char *path);

/*
 * Where resolve URLs led (the client's loc_lock): *to is a copy (caller
 * frees), -ENOENT when unknown or too old.  Shared by every transfer of a
 * client, so a file resolved once is read from its target by all.
 */
int hub_loc_get(struct hub_client *c, const char *from, char **to);
void hub_loc_put(struct hub_client *c, const char *from, const char *to);
void hub_loc_drop(struct hub_client *c, const char *from);

/* Forget every remembered redirect target (hub_client_free). */
void hub_loc_free_all(struct hub_client *c);

/* ---- pace.c ------------------------------------------------------------ */

/*
 * Pacing of resolves by the "resolvers" bucket of the Hub's RateLimit
 * headers (hub-api.md section 10.1).  Times are seconds on one monotonic
 * clock.  While the resolves left in the window are plenty, nothing waits;
 * below a low-water mark (a tenth of the RateLimit-Policy quota, or
 * HUB_PACE_LOW when the quota is unknown) the rest are spread evenly over
 * what remains of the window, and none goes out once the budget is spent
 * until the window has reset.  The budget is estimated conservatively:
 * each resolve that starts takes one, and each answer's r= is lowered by
 * the resolves still outstanding, which the server may not have counted
 * yet.  Pure computation: the owner serialises the calls.
 */
#define HUB_PACE_LOW 10

struct hub_pacer {
	long quota;	      /* RateLimit-Policy q=, or -1 */
	long remaining;	      /* resolves left, as estimated; -1: unknown */
	unsigned outstanding; /* resolves started and not yet answered */
	double window_end;    /* when the budget is whole again (reset + 1 s) */
	double next_at;	      /* while pacing, no resolve starts before */
};

void hub_pacer_init(struct hub_pacer *p);

/* Seconds to wait before a resolve may start: 0 for now. */
double hub_pacer_delay(const struct hub_pacer *p, double now);

/* A resolve starts now. */
void hub_pacer_take(struct hub_pacer *p, double now);

/*
 * A resolve that took ended: with its answer's RateLimit and
 * RateLimit-Policy values (either may be NULL or "", and those of another
 * bucket are ignored), or both NULL when no answer came.
 */
void hub_pacer_done(struct hub_pacer *p, double now, const char *ratelimit,
		    const char *policy);
/*
 * A resolve was answered 429 with Retry-After (seconds from now) and no
 * RateLimit of its bucket: no resolve starts before now + seconds + 1,
 * whatever was known before.
 */
void hub_pacer_hold(struct hub_pacer *p, double now, double seconds);

/* ---- names.c ----------------------------------------------------------- */

/*
 * True when an etag header value names another file than the etag
 * expected: both are hex etags of the same kind (40-digit sha1 or 64-digit
 * sha256) and they differ.  A value of the other kind says nothing (an LFS
 * redirect's ETag is its pointer's sha1, a CDN's the content's sha256), nor
 * does one that is no hex etag at all.
 */
bool hub_etag_conflict(const char *expected, const char *value);

/* ---- api.c ------------------------------------------------------------- */

/*
 * GET a JSON body from the Hub (redirects followed, 401 retried with a
 * re-read token, 408/429/5xx with backoff).  *out: caller frees with
 * cJSON_Delete.  -EIO (err), -EPROTO (not JSON), -ENETDOWN, -ENOMEM.
 */
int hub_get_json(struct hub_client *c, const char *url, cJSON **out,
		 struct hub_error *err);

/* ---- json.c ------------------------------------------------------------ */

/*
 * A JSON number that is a byte size: an integer from 0 to 2^53 - 1 (the
 * doubles cJSON keeps are exact up to there).  -EINVAL otherwise.
 */
int hub_json_size(const cJSON *item, uint64_t *out);

/* ISO-8601 "2023-03-21T09:05:27.000Z" (or with +hh:mm) to unix seconds. */
int hub_parse_iso8601(const char *s, int64_t *out);

/*
 * Parse a JSON body off the network (caller frees with cJSON_Delete; NULL
 * when it is not JSON).  body[0..n) is changed: cJSON turns "\u0000" into a
 * NUL that silently cuts a string short, so "a\u0000/../b" would read as "a"
 * and name another file.  Each such escape becomes "\u0001" first, a
 * control character that every check of a name or hash refuses.
 */
cJSON *hub_json_parse(char *body, size_t n);

/* Repo info fields (hub-api.md section 2.2); -EPROTO when unusable. */
int hub_json_repo_info(const cJSON *root, struct hub_repo_info *out);

/*
 * One tree entry (section 3.3).  The strings of *out point into item.
 * -EINVAL when the entry must be skipped (unsafe path, bad oid, bad size,
 * unknown type).
 */
int hub_json_tree_entry(const cJSON *item, struct hub_entry *out);

/*
 * The repo id of one item of an author listing (section 2.5), or NULL when
 * the item has none that hub_repo_id_valid() accepts.  Points into item.
 */
const char *hub_json_listed_id(const cJSON *item);

/* whoami-v2 (section 7.3): name and orgs[].name; -EPROTO when unusable. */
int hub_json_whoami(const cJSON *root, struct hub_whoami *out);

/*
 * The message of an error body (section 1.5): "error" as a string or the
 * first string of an array, "errors"[0].message, or "message".  Writes ""
 * when there is none.
 */
void hub_json_error_message(const char *body, size_t n, char *out, size_t size);

#endif /* HUBFS_HUB_INT_H */

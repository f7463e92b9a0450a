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
 *   transfer.c  byte ranges of a file through the resolve redirects
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
	char etag[80];
	char ratelimit[128];
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
	bool json;	     /* send Accept: application/json */
	hub_body_fn on_body; /* 2xx bodies; NULL: into body, up to the limit */
	void *arg;
	size_t body_limit; /* for body when on_body is NULL; 0: JSON limit */

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

/* 408, 429, 5xx (not 501/505) or a transport failure worth retrying. */
bool hub_call_retryable(const struct hub_call *call);

/* Counts consecutive failed attempts of one request and their waits. */
struct hub_backoff {
	unsigned tries;
	long slept; /* seconds */
};

/*
 * Sleep before the next attempt: 1, 2, 4, 8, 8 s, or what RateLimit
 * (r=0;t=N) or Retry-After ask for, each wait capped at stall_seconds.
 * Returns false, without sleeping, when the retries are used up.
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

/* Forget every remembered redirect target (hub_client_free). */
void hub_loc_free_all(struct hub_client *c);

/* ---- json.c ------------------------------------------------------------ */

/*
 * A JSON number that is a byte size: an integer from 0 to 2^53 - 1 (the
 * doubles cJSON keeps are exact up to there).  -EINVAL otherwise.
 */
int hub_json_size(const cJSON *item, uint64_t *out);

/* ISO-8601 "2023-03-21T09:05:27.000Z" (or with +hh:mm) to unix seconds. */
int hub_parse_iso8601(const char *s, int64_t *out);

/* Repo info fields (hub-api.md section 2.2); -EPROTO when unusable. */
int hub_json_repo_info(const cJSON *root, struct hub_repo_info *out);

/*
 * One tree entry (section 3.3).  The strings of *out point into item.
 * -EINVAL when the entry must be skipped (unsafe path, bad oid, bad size,
 * unknown type).
 */
int hub_json_tree_entry(const cJSON *item, struct hub_entry *out);

/* whoami-v2 (section 7.3): name and orgs[].name; -EPROTO when unusable. */
int hub_json_whoami(const cJSON *root, struct hub_whoami *out);

/*
 * The message of an error body (section 1.5): "error" as a string or the
 * first string of an array, "errors"[0].message, or "message".  Writes ""
 * when there is none.
 */
void hub_json_error_message(const char *body, size_t n, char *out, size_t size);

#endif /* HUBFS_HUB_INT_H */

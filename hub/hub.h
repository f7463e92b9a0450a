/*
 * hub.h - the Hugging Face Hub client: the whole interface of hub/.
 *
 * hub/ knows nothing about FUSE or the store.  It speaks the Hub's HTTP API
 * (hub/hub-api.md) and reports failures as values (struct hub_error)
 * carrying the HTTP status and the Hub's X-Error-Code, never as log lines.
 *
 * This part of the interface holds the parsers of bytes that come off the
 * network (headers, URLs, names) and the checks that keep Hub-supplied
 * strings from becoming unsafe file names.  Every parser takes untrusted
 * input, never reads past its terminating NUL and never allocates unless it
 * says so.  Functions return 0 or a negative errno.
 */
#ifndef HUBFS_HUB_H
#define HUBFS_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ---- Repositories ------------------------------------------------------ */

enum hub_repo_type { HUB_MODEL, HUB_DATASET, HUB_SPACE };

/* "models", "datasets", "spaces": the plural used in /api/ paths. */
const char *hub_type_plural(enum hub_repo_type type);

/* "", "datasets/", "spaces/": the prefix of /resolve/ paths. */
const char *hub_type_url_prefix(enum hub_repo_type type);

/*
 * A repo id is "name" (legacy) or "namespace/name"; each part is 1 to 96
 * characters of [A-Za-z0-9_.-], neither starting nor ending with '-' or '.',
 * without "--" or "..".  Anything else is refused before it reaches a URL.
 */
bool hub_repo_id_valid(const char *id);

/* ---- Names that become file names -------------------------------------- */

/*
 * The folder of a repo in the huggingface_hub cache (hub-api.md section
 * 8.2): the type's plural, "--", then the id with each '/' as "--"
 * ("models--org--name").  0, -EINVAL for an invalid id, or -ENAMETOOLONG
 * when it does not fit in size bytes.
 */
int hub_cache_folder_name(enum hub_repo_type type, const char *id, char *out,
			  size_t size);
/*
 * The type and repo id that a cache folder name stands for: 0, or -EINVAL
 * when name is not one (a valid id has no "--", so each was a '/').
 */
int hub_cache_folder_parse(const char *name, enum hub_repo_type *type,
			   char id[256]);

/* Exactly 40 lowercase hex digits: a full commit id or a git blob sha1. */
bool hub_is_commit_id(const char *s);

/* Exactly 64 lowercase hex digits: a sha256. */
bool hub_is_sha256(const char *s);

/*
 * Normalise an ETag header value as the official clients do: strip a leading
 * "W/", then one pair of surrounding double quotes.  The result must be a
 * 40- or 64-digit hex etag; uppercase is folded to lowercase.  Writes it NUL
 * terminated to out (65 bytes).  -EINVAL when the value is anything else.
 */
#define HUB_ETAG_MAX 64
int hub_etag_normalize(const char *value, char out[HUB_ETAG_MAX + 1]);

/*
 * A path inside a repo as the Hub lists it ("dir/file.bin") that is safe to
 * present under the repo's folder: valid UTF-8, at most HUB_PATH_MAX bytes,
 * no leading or trailing '/', no empty, "." or ".." segment, each segment at
 * most 255 bytes, no control character.  Anything else is refused, never
 * followed.
 */
#define HUB_PATH_MAX 4096
bool hub_path_safe(const char *path);

/* ---- Percent-encoding (hub-api.md section 1.2) ------------------------- */

/*
 * Escape every byte outside RFC 3986 "unreserved" (A-Z a-z 0-9 - . _ ~),
 * '/' included: the form used for a revision in a path segment
 * ("refs/pr/1" -> "refs%2Fpr%2F1").  Caller frees.  NULL on ENOMEM.
 */
char *hub_escape_segment(const char *s);

/* The same, but '/' is kept as the separator: the form for file paths. */
char *hub_escape_path(const char *s);

/*
 * Decode %XX escapes.  Refuses (-EINVAL) a truncated or non-hex escape and
 * an escaped NUL; '+' stays '+'.  *out is allocated, caller frees.
 */
int hub_unescape(const char *s, char **out);

/* ---- Response headers -------------------------------------------------- */

/*
 * Content-Range: "bytes FIRST-LAST/TOTAL", "bytes FIRST-LAST/ *" (no space)
 * or, on a 416, "bytes * /TOTAL" (no spaces).  -EINVAL for anything else,
 * including LAST < FIRST or LAST >= TOTAL.
 */
struct hub_content_range {
	bool unsatisfied;     /* the "bytes * /TOTAL" form: no range       */
	bool total_known;     /* TOTAL was a number, not '*'              */
	uint64_t first, last; /* inclusive; meaningful unless unsatisfied */
	uint64_t total;	      /* meaningful when total_known              */
};
int hub_parse_content_range(const char *value, struct hub_content_range *out);

/*
 * Link: find the target of the link whose rel includes "next".  *out_url is
 * allocated (caller frees) and is the text between '<' and '>', not yet
 * resolved against the request URL.  -ENOENT when there is no next link,
 * -EINVAL when the header is malformed.
 */
int hub_parse_link_next(const char *value, char **out_url);
/* The same for the link whose rel includes rel ("xet-auth", ...). */
int hub_parse_link_rel(const char *value, const char *rel, char **out_url);

/*
 * RateLimit: '"<bucket>";r=<remaining>;t=<seconds to reset>' as the Hub
 * sends it (hub-api.md section 1.4); the IETF draft form
 * "limit=Q, remaining=R, reset=T" is accepted too.  Missing numbers are -1.
 */
struct hub_ratelimit {
	char bucket[16]; /* "api", "resolvers", "pages" or ""  */
	long remaining;	 /* requests left in the window, or -1 */
	long reset;	 /* seconds until the window resets, or -1 */
};
int hub_parse_ratelimit(const char *value, struct hub_ratelimit *out);

/*
 * RateLimit-Policy: '"fixed window";"<bucket>";q=<quota>;w=<window>'.
 * Missing numbers are -1.
 */
struct hub_ratelimit_policy {
	char bucket[16];
	long quota;
	long window;
};
int hub_parse_ratelimit_policy(const char *value,
			       struct hub_ratelimit_policy *out);

/*
 * Retry-After: delta-seconds or an HTTP-date, turned into seconds from now
 * (never negative; capped at one day).
 */
int hub_parse_retry_after(const char *value, time_t now, long *out_seconds);

/* ---- URLs -------------------------------------------------------------- */

/*
 * Resolve a Location (absolute, scheme-relative, path-absolute or relative)
 * against the URL of the request that got it.  Only http and https results
 * are accepted (-EPROTO otherwise).  *out_url is allocated, caller frees.
 */
int hub_resolve_location(const char *request_url, const char *location,
			 char **out_url);

/*
 * The path and query of url (absolute) put after base (an absolute URL
 * without trailing '/'): "https://a/x?y" on "http://b:1" is
 * "http://b:1/x?y".  *out_url is allocated, caller frees.
 */
int hub_rebase_url(const char *base, const char *url, char **out_url);

/*
 * True when both URLs have the same scheme, host (case-insensitive) and
 * port (default ports filled in).  The Hub token is sent only to the
 * endpoint's origin.  False when either URL does not parse.
 */
bool hub_same_origin(const char *a, const char *b);

/* ---- Errors ------------------------------------------------------------ */

/*
 * What went wrong with a request, as a value.  status is 0 when no HTTP
 * response came (then transport says why: a CURLcode, or 0 for a protocol
 * violation described in message).  Never contains the token.
 */
struct hub_error {
	int status;	   /* HTTP status, or 0                         */
	int transport;	   /* CURLcode, or 0                            */
	char code[48];	   /* X-Error-Code, e.g. "RepoNotFound", or ""   */
	char message[256]; /* X-Error-Message, or a description, or ""   */
};

/*
 * The one place where a Hub failure becomes what a program sees
 * (DESIGN.md section 2): 401/403 -> EACCES, 404/410 -> ENOENT, anything
 * else (no answer, 5xx, 429, a protocol violation) -> EIO.  Returns a
 * positive errno.
 */
int hub_error_errno(const struct hub_error *err);
/*
 * Whether the failure says nothing about what was asked for, so that an
 * answer known from before still stands and a later try may succeed: no
 * answer at all (unreachable, cut, a garbled response), 408, 429, 5xx.
 */
bool hub_error_transient(const struct hub_error *err);

/*
 * A one-line description for logs: "HTTP 404 EntryNotFound: Entry not
 * found", "connection refused (curl 7)", ...  Returns buf.
 */
const char *hub_error_describe(const struct hub_error *err, char *buf,
			       size_t size);

/* ---- The client -------------------------------------------------------- */

/*
 * Where the token comes from, in huggingface_hub's order (hub-api.md
 * section 7.2): the --token-file flag, HF_TOKEN, HUGGING_FACE_HUB_TOKEN,
 * HF_TOKEN_PATH, $HF_HOME/token, $XDG_CACHE_HOME/huggingface/token,
 * ~/.cache/huggingface/token.  This names the source, never the token.
 */
enum hub_token_kind { HUB_TOKEN_NONE, HUB_TOKEN_ENV, HUB_TOKEN_FILE };
struct hub_token_source {
	enum hub_token_kind kind;
	char where[4096]; /* the variable's name or the file's path */
};
/* Fills *out; a file source is named even when the file does not exist. */
void hub_token_source_find(struct hub_token_source *out,
			   const char *token_file_flag);

struct hub_config {
	const char *endpoint;	/* base URL, no trailing '/'; NULL: HF_ENDPOINT
				   or https://huggingface.co */
	const char *token_file; /* --token-file, or NULL for the environment */
	bool offline;		/* refuse every request with -ENETDOWN */
	long stall_seconds;	/* abandon a transfer with no progress for this
				   long (the read timeout); 0: 60 */
	bool wait_out_pauses;	/* the transfer engine's requests wait out
				   what the Hub asks (RateLimit, Retry-After)
				   however long, without counting it as a
				   stall: for a pull, where nobody waits on
				   a reader */
};

/*
 * The endpoint in force, written to out: HF_ENDPOINT without trailing '/',
 * or the Hub's.  0, or -EINVAL (out "") when HF_ENDPOINT is set but has
 * nothing before its slashes or does not fit in size.
 */
int hub_default_endpoint(char *out, size_t size);

/*
 * A client is shared by every thread of a process; requests may run
 * concurrently.  hub_client_free(NULL) is a no-op.
 */
struct hub_client;
int hub_client_new(struct hub_client **out, const struct hub_config *cfg);
void hub_client_free(struct hub_client *c);
const char *hub_client_endpoint(const struct hub_client *c);
bool hub_client_offline(const struct hub_client *c);
/* True when a token is available now (re-read if its file changed). */
bool hub_client_has_token(struct hub_client *c);
/*
 * A counter that moves whenever the token changes (a new login, a removed
 * file): what was refused or missing before may be readable now.
 */
unsigned hub_client_token_changes(struct hub_client *c);

/*
 * Every request function below returns 0, or a negative errno with *err
 * filled: -ENETDOWN when offline, -EIO when no usable answer came (see
 * err), -EPROTO for a malformed answer, -ENOMEM.  The mapping to what a
 * program sees is hub_error_errno(err).
 */

/* GET /api/{types}/{id}[/revision/{rev}] (rev NULL: the default branch). */
struct hub_repo_info {
	char id[256];	       /* the canonical id: differs from the one asked
				  for after a rename or for a legacy id */
	char sha[41];	       /* the commit the revision resolves to */
	int64_t last_modified; /* unix seconds of the last commit, or 0 */
	bool private_repo;
	bool gated;
	bool disabled;
};
int hub_repo_info(struct hub_client *c, enum hub_repo_type type, const char *id,
		  const char *rev, struct hub_repo_info *out,
		  struct hub_error *err);

/*
 * GET /api/{types}/{id}/tree/{commit}?recursive=true, every page.  cb gets
 * each entry whose path passes hub_path_safe() and whose oids are hex;
 * the others are counted in *skipped (may be NULL).  The strings live only
 * for the call.  A non-zero return from cb stops the listing and is
 * returned.
 */
struct hub_entry {
	const char *path; /* full path from the repo root */
	bool is_dir;
	uint64_t size;	      /* real size (lfs.size for LFS files) */
	const char *oid;      /* git blob or tree sha1 */
	const char *lfs_oid;  /* sha256 of the content, or NULL */
	const char *xet_hash; /* or NULL */
};
typedef int (*hub_entry_fn)(void *arg, const struct hub_entry *entry);
int hub_tree_list(struct hub_client *c, enum hub_repo_type type, const char *id,
		  const char *commit, hub_entry_fn cb, void *arg,
		  unsigned *skipped, struct hub_error *err);

/*
 * A commit's files from huggingface_hub's cache instead of the Hub: its
 * trees/<commit>.json (hub-api.md section 8.6; format_version 1), text of
 * len bytes (modified while parsed).  cb gets each file as the listing
 * would give it; files whose path or ids fail the listing's checks are
 * counted in *skipped.  -EPROTO for another format or JSON that does not
 * parse; a non-zero return of cb stops and is returned.
 */
int hub_cache_tree_parse(char *text, size_t len, hub_entry_fn cb, void *arg,
			 unsigned *skipped);

/*
 * Whether the Hub knows owner as a user or an organisation, with or
 * without repos (hub-api.md section 2.6): GET /api/users/{owner}/overview,
 * then /api/organizations/{owner}/overview.  0 with *known set (false when
 * both answered 404), or a negative errno with err set.
 */
int hub_owner_exists(struct hub_client *c, const char *owner, bool *known,
		     struct hub_error *err);

/* GET /api/{types}?author={owner}, every page: cb gets each repo id. */
typedef int (*hub_name_fn)(void *arg, const char *repo_id);
int hub_list_author(struct hub_client *c, enum hub_repo_type type,
		    const char *owner, hub_name_fn cb, void *arg,
		    struct hub_error *err);

/* GET /api/whoami-v2: the user's name and organisations (err->status is
   401 without a valid token). */
#define HUB_WHOAMI_ORGS 64
struct hub_whoami {
	char name[128];
	unsigned n_orgs;
	char orgs[HUB_WHOAMI_ORGS][128];
};
int hub_whoami(struct hub_client *c, struct hub_whoami *out,
	       struct hub_error *err);

/* Bytes of a file in order, at their file offsets: see hub_xfer_ops. */
typedef int (*hub_data_fn)(void *arg, uint64_t offset, const void *data,
			   size_t n);

/* ---- The transfer engine ----------------------------------------------- */

/*
 * Byte ranges of files, fetched concurrently on one libcurl multi handle
 * driven by the engine's own thread (keep-alive, connection reuse).  A
 * request names a file at a commit; the engine resolves it (following the
 * resolve redirects by hand: the token only to the endpoint's origin),
 * remembers where it led while that stays valid (re-resolving on a 403 from
 * the CDN), and delivers the bytes in order.  It retries 408/429/5xx, cut
 * connections and stalls with backoff (Retry-After and RateLimit
 * honoured), resuming after the last byte delivered, and gives up once a
 * request has made no progress for stall_seconds.  New resolves are paced
 * by the Hub's RateLimit headers so that the resolvers bucket is not run
 * dry.
 */
struct hub_xfer;

struct hub_file_ref {
	enum hub_repo_type type;
	const char *repo_id; /* copied by submit */
	const char *commit;  /* 40 hex */
	const char *path;    /* hub_path_safe() */
	uint64_t size;	     /* the file's size, from the tree */
	const char *etag;    /* expected etag (40 or 64 lowercase hex),
				or NULL not to check */
	/*
	 * The last copy of this file failed its hash check: every attempt
	 * asks the caches on the way for fresh bytes ("Cache-Control:
	 * no-cache"; a mirror then refetches its slices, a CDN ignores it).
	 */
	bool refetch;
	/*
	 * The tree marks the file as Xet (a xetHash): when its resolve
	 * answers with a redirect that carries the Xet markers (X-Xet-Hash, a
	 * Link rel="xet-auth"; hub-api.md 14.3), or did so before
	 * (hub_xfer_resolve_xet), end with -EXDEV before any byte, so that the
	 * caller reads it through the CAS.  Otherwise (no markers: a mirror
	 * that serves the file itself, say) the request goes on as usual.
	 */
	bool xet_probe;
};

struct hub_xfer_ops {
	/*
	 * Bytes [offset, offset + n) of the file, in order, on the engine's
	 * thread; buf is valid only during the call.  A non-zero return
	 * cancels the request (done() then gets that value).  Must not
	 * block on the network or call into the engine except
	 * hub_xfer_submit().
	 */
	int (*data)(void *arg, uint64_t offset, const void *buf, size_t n);
	/*
	 * Called exactly once for each request hub_xfer_submit() accepted,
	 * on the engine's thread: rc 0 when the whole range was delivered,
	 * else a negative errno with err filled (-ETIMEDOUT: no progress for
	 * stall_seconds; -ECANCELED: the engine stopped; -EIO, -EPROTO:
	 * what err says, which hub_error_errno() maps).  The same rules as
	 * data() apply.  Nothing touches arg after it returns.  A refused
	 * submission gets neither call.
	 */
	void (*done)(void *arg, int rc, const struct hub_error *err);
};

enum hub_xfer_priority {
	HUB_XFER_DEMAND,    /* a reader is waiting */
	HUB_XFER_READAHEAD, /* nobody waits yet: queued behind demand */
};

/* Start the engine thread; at most max_transfers run at once. */
int hub_xfer_start(struct hub_xfer **out, struct hub_client *c,
		   unsigned max_transfers);
/*
 * Cancel everything (done() with -ECANCELED), join the thread, free.  Not
 * from data() or done(); no callback runs once it returns.  NULL: no-op.
 */
void hub_xfer_stop(struct hub_xfer *x);

/*
 * Queue [offset, offset + length) of a file (length > 0, within size).
 * Thread-safe; never blocks on the network.  Returns 0 (done() will be
 * called) or a negative errno (it will not): -EINVAL for a bad file,
 * range or priority, -ENETDOWN offline, -ECANCELED once hub_xfer_stop()
 * has begun (a done() that submits again during the stop), -ENOMEM.
 */
int hub_xfer_submit(struct hub_xfer *x, const struct hub_file_ref *file,
		    uint64_t offset, uint64_t length,
		    enum hub_xfer_priority prio, const struct hub_xfer_ops *ops,
		    void *arg);

/*
 * Queue the bytes [first, last] (inclusive) of a signed URL, a Xet xorb
 * range: no resolve, no token, offsets in data() are the URL's.  As
 * hub_xfer_submit() otherwise, except that a 403, 404 or 410 ends it with
 * -EKEYEXPIRED (the URL expired: ask for a new one).
 */
int hub_xfer_submit_url(struct hub_xfer *x, const char *url, uint64_t first,
			uint64_t last, enum hub_xfer_priority prio,
			const struct hub_xfer_ops *ops, void *arg);

/*
 * How the resolve of file answers, as of its last answer with bytes: 0
 * when it redirects to a CDN (or none came yet), else it answers the bytes
 * itself (a fleet mirror), and this is the range unit it asked for
 * (X-Mirror-Slice), or 1 when it named none.  There every range asked for
 * is a resolve at the Hub: ask for fewer, larger ranges on that unit.
 * Any thread.
 */
uint64_t hub_xfer_resolve_unit(struct hub_xfer *x,
			       const struct hub_file_ref *file);

/*
 * Whether a resolve of file answered with the Xet markers (a redirect with
 * X-Xet-Hash or a Link rel="xet-auth"), as seen by a request with
 * xet_probe: then the Hub offers the file through the CAS.  The most
 * recent files are remembered.  Any thread.
 */
bool hub_xfer_resolve_xet(struct hub_xfer *x, const struct hub_file_ref *file);

/* Counters for status and benchmarks. */
struct hub_xfer_stats {
	uint64_t bytes;	   /* body bytes delivered */
	uint64_t requests; /* HTTP requests made, redirects included */
	uint64_t resolves; /* requests to the resolve endpoint */
	uint64_t retries;
	/* in_flight and queued: as the transfer thread last published them,
	 * once per turn of its loop, so they may trail a completion a little */
	unsigned in_flight; /* transfers running */
	unsigned queued;
	/*
	 * Unix seconds until which new resolves wait because the Hub asked
	 * for a pause (RateLimit r=0, or a 429's Retry-After), as of its last
	 * answer; 0 when it asked for none.
	 */
	int64_t resolves_held_until;
};
void hub_xfer_get_stats(struct hub_xfer *x, struct hub_xfer_stats *out);

/* ---- Xet: reads through the CAS (hub-api.md section 14) ---------------- */

/*
 * A file the tree marks with a xetHash can be read from the Xet CAS
 * instead of through the resolve bridge: a read token from the Hub (with
 * the user's token), a reconstruction of the byte range from the CAS (with
 * the read token, sent to the casUrl the Hub named and nowhere else), then
 * the xorb byte ranges it names, at signed URLs (no token at all), whose
 * chunks are decompressed into the file's bytes.
 *
 * The parsers below take bytes off the network as untrusted input.
 */
#define HUB_XET_CHUNK_HEADER 8		  /* bytes of a xorb chunk header */
#define HUB_XET_CHUNK_MAX    (128u << 10) /* the largest unpacked chunk */

/* One term of a reconstruction: chunks [chunk_start, chunk_end) of a xorb,
   which unpack to `unpacked` bytes of the file, in file order. */
struct hub_xet_term {
	char xorb[65]; /* the xorb's hash, 64 lowercase hex */
	uint32_t chunk_start, chunk_end;
	uint64_t unpacked;
	unsigned fetch; /* index of the fetch entry that covers it */
};

/* Where to get chunks [chunk_start, chunk_end) of a xorb: the bytes
   [byte_first, byte_last] (inclusive, the Range to send) of url. */
struct hub_xet_fetch {
	char xorb[65];
	uint32_t chunk_start, chunk_end;
	uint64_t byte_first, byte_last;
	char *url; /* http(s), signed, expires */
};

/*
 * A reconstruction answer, v1 (fetch_info) or v2 (xorbs), checked: every
 * hash is 64 lowercase hex, chunk ranges are non-empty, byte ranges are
 * ordered, every url is http(s), each term lies inside one fetch entry of
 * its xorb, there is at least one term and offset_into_first_range is
 * inside the first.  Free with hub_xet_recon_free() (NULL: no-op).
 */
struct hub_xet_recon {
	uint64_t offset_into_first_range;
	uint64_t unpacked; /* the sum of the terms' unpacked lengths */
	struct hub_xet_term *terms;
	unsigned n_terms;
	struct hub_xet_fetch *fetch;
	unsigned n_fetch;
};

/* Parse body[0..n) (changed while parsed).  -EPROTO when it is not a
   reconstruction that passes the checks above, -ENOMEM. */
int hub_xet_recon_parse(char *body, size_t n, struct hub_xet_recon **out);
void hub_xet_recon_free(struct hub_xet_recon *r);

/* A xorb chunk header: version 0, sizes 3 bytes little-endian. */
enum hub_xet_scheme { HUB_XET_NONE = 0, HUB_XET_LZ4 = 1, HUB_XET_BG4_LZ4 = 2 };
struct hub_xet_chunk_header {
	enum hub_xet_scheme scheme;
	uint32_t compressed; /* bytes of data after the header */
	uint32_t unpacked;   /* 1 .. HUB_XET_CHUNK_MAX */
};

/*
 * -EPROTO for another version, an unknown scheme, an unpacked size of 0 or
 * over HUB_XET_CHUNK_MAX, a compressed size over what LZ4 can make of
 * that, or a stored (none) chunk whose two sizes differ.
 */
int hub_xet_chunk_header_parse(const uint8_t p[HUB_XET_CHUNK_HEADER],
			       struct hub_xet_chunk_header *out);

/*
 * Decode one chunk's data (h->compressed bytes) into out (h->unpacked
 * bytes): a copy, an LZ4 frame, or an LZ4 frame of bytes grouped by
 * position mod 4.  -EPROTO when the data does not decode to exactly
 * h->unpacked bytes; out is then undefined.
 */
int hub_xet_chunk_decode(const struct hub_xet_chunk_header *h,
			 const uint8_t *data, uint8_t *out);

/*
 * Turns the bytes of one fetch entry, fed in pieces as they come, into its
 * chunks: out holds them unpacked, back to back, and chunk_off[i] where
 * chunk chunk_start + i begins (chunk_off[n] is the total); a stored
 * chunk is copied there as it comes, a compressed one gathered and then
 * unpacked there.  The decoder refuses (-EPROTO) a bad header, data that
 * does not decode, more chunks than the entry names, or more than `limit`
 * unpacked bytes.
 */
struct hub_xet_decoder {
	uint32_t n_want;     /* chunks the entry names */
	uint64_t limit;	     /* unpacked bytes at most */
	uint32_t n;	     /* chunks decoded so far */
	uint64_t *chunk_off; /* n_want + 1 entries */
	uint8_t *out;	     /* chunk_off[n] bytes used */
	size_t out_cap;
	uint8_t head[HUB_XET_CHUNK_HEADER];
	size_t head_len;
	struct hub_xet_chunk_header h; /* valid once head_len is full */
	uint8_t *data;		       /* a compressed chunk's data so far */
	size_t data_len, data_cap;     /* data_len: the chunk's, either kind */
};
int hub_xet_decoder_init(struct hub_xet_decoder *d, uint32_t n_chunks,
			 uint64_t limit);
/*
 * The output's buffer: lend() gives d one of cap bytes before the first
 * feed (d owns it then), take() gets it back (NULL when there is none,
 * *cap its size) and leaves d without output.  A reused buffer costs no
 * page faults.
 */
void hub_xet_decoder_lend(struct hub_xet_decoder *d, uint8_t *buf, size_t cap);
uint8_t *hub_xet_decoder_take(struct hub_xet_decoder *d, size_t *cap);
/* Room for bytes (at most limit) of output up front, so that out is not
   moved as it fills: 0 or -ENOMEM. */
int hub_xet_decoder_reserve(struct hub_xet_decoder *d, uint64_t bytes);
int hub_xet_decoder_feed(struct hub_xet_decoder *d, const void *p, size_t n);
/* 0 when the bytes ended on a chunk boundary after every chunk, else
   -EPROTO. */
int hub_xet_decoder_finish(const struct hub_xet_decoder *d);
void hub_xet_decoder_destroy(struct hub_xet_decoder *d);

/*
 * The Xet reader of a client: keeps read tokens (one per repo and commit,
 * renewed a minute before they expire; in memory only, wiped when freed)
 * and whether the CAS answers v2.  Thread-safe.  hub_xet_free(NULL) is a
 * no-op.
 */
struct hub_xet;
/* Xorb ranges go through xfer (borrowed: it outlives the reader), all
   those of a batch at once, as demand. */
int hub_xet_new(struct hub_xet **out, struct hub_client *c,
		struct hub_xfer *xfer);
void hub_xet_free(struct hub_xet *x);

/*
 * Chunks [chunk, chunk + count) of a xorb, unpacked back to back from byte
 * offset of a file on: lengths[i] bytes each.
 */
struct hub_xet_run {
	const char *xorb; /* 64 lowercase hex */
	uint32_t chunk, count;
	const uint32_t *lengths; /* count entries, 1 .. HUB_XET_CHUNK_MAX */
	uint64_t offset;
};

/*
 * What a caller may know of chunks besides the CAS: a copy of them in
 * files it holds (copy), and where the chunks of a read landed (placed),
 * to find them there later.  Either may be NULL.  Both are called on the
 * thread that runs the read (the caller's for hub_xet_read(), one of the
 * reader's for hub_xet_submit()), with no lock of hub/'s held, possibly
 * by several threads at once for reads of one file; they may read and
 * write local files and the store, must not wait on the network, and
 * must not call into the reader.  The pointers and arg are borrowed for
 * as long as a read of the file runs.
 */
struct hub_xet_local {
	/*
	 * Chunks [start, end) of xorb, `unpacked` bytes in all: 0 when out
	 * (unpacked bytes) holds them and lengths (end - start entries) each
	 * one's size; else a negative errno (-ENOENT: not held whole), and
	 * they are fetched.  Asked before the xorb range that holds them is
	 * fetched; a range no term of a batch still needs is not fetched.
	 * hub/ cannot check what it gets (chunk hashes are BLAKE3): a wrong
	 * copy makes a wrong file, which the caller's sha256 check refuses.
	 */
	int (*copy)(void *arg, const char *xorb, uint32_t start, uint32_t end,
		    uint64_t unpacked, uint8_t *out, uint32_t *lengths);
	/*
	 * The chunks of a batch, as runs (terms that continue each other
	 * merged), once the batch reached the read's data callback whole:
	 * its fetched and its copied chunks alike, each inside the file.
	 * The array and what it points to live only for the call.
	 */
	void (*placed)(void *arg, const struct hub_xet_run *runs, size_t n);
};

struct hub_xet_file {
	enum hub_repo_type type;
	const char *repo_id;
	const char *commit;   /* 40 hex */
	const char *xet_hash; /* the tree's xetHash, 64 hex */
	uint64_t size;
	const struct hub_xet_local *local; /* or NULL: none */
	void *local_arg;
};

/*
 * The bytes [offset, offset + length) of a Xet file (within size, length
 * > 0), through the CAS, to cb in order.  Asks the CAS for the range in
 * batches (not the whole file), tries v2 then v1, retries 5xx, 429, cut
 * and stalled answers with backoff, fetches the batch's xorb ranges in
 * parallel on the transfer engine, asks again for a reconstruction when
 * a xorb URL has expired, and renews the token after a 401.  Blocks: not
 * from the transfer engine's callbacks.  cb gets each term of a batch as
 * soon as it and every term before it decoded, from the transfer engine's
 * thread or the caller's (one call at a time, each ordered after the last
 * by a lock), so a read that fails may have sent a prefix.  Chunks carry
 * no check that hub/ can make (their hashes are BLAKE3): the caller
 * verifies the file's sha256.  Returns 0, or a negative errno with err filled
 * as for the requests above (-EPROTO: a malformed token, reconstruction or
 * xorb; -ETIMEDOUT: no progress for stall_seconds).
 */
int hub_xet_read(struct hub_xet *x, const struct hub_xet_file *file,
		 uint64_t offset, uint64_t length, hub_data_fn cb, void *arg,
		 struct hub_error *err);

/*
 * hub_xet_read() of [offset, offset + length) on one of the reader's own
 * threads (up to 4 at once, demand before readahead), for the read engine:
 * the same contract as hub_xfer_submit() (ops->data gets the bytes in
 * order, from the transfer engine's thread or the reader's as for
 * hub_xet_read(); ops->done is called exactly once, on the reader's; never
 * inside this call).  -EINVAL, -ENETDOWN,
 * -ECANCELED once hub_xet_free() has begun, -ENOMEM: refused, no
 * callback.  hub_xet_free() answers what is still queued with
 * -ECANCELED, lets the reads in flight end (they stop at their next
 * batch) and must come before hub_xfer_stop() of its engine.
 */
int hub_xet_submit(struct hub_xet *x, const struct hub_xet_file *file,
		   uint64_t offset, uint64_t length,
		   enum hub_xfer_priority prio, const struct hub_xfer_ops *ops,
		   void *arg);

/* Counters, for tests and benchmarks. */
struct hub_xet_stats {
	uint64_t tokens;	  /* read tokens fetched from the Hub */
	uint64_t reconstructions; /* reconstruction requests answered */
	uint64_t xorb_requests;	  /* xorb ranges submitted to the engine */
	uint64_t xorb_bytes;	  /* bytes of xorb ranges received */
	uint64_t bytes;		  /* file bytes delivered */
	uint64_t local_terms;	  /* terms a local copy answered */
	uint64_t local_bytes;	  /* their unpacked bytes */
};
void hub_xet_get_stats(struct hub_xet *x, struct hub_xet_stats *out);

/* ---- JSON out ---------------------------------------------------------- */

/*
 * Add v to JSON object o under key as an exact integer (cJSON's own
 * numbers are doubles, exact only up to 2^53).  false when out of memory.
 */
struct cJSON;
bool hub_json_add_u64(struct cJSON *o, const char *key, uint64_t v);

#endif /* HUBFS_HUB_H */

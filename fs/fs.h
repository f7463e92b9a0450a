/*
 * fs.h - the filesystem: the whole interface of fs/ to the commands.
 *
 * fs/ presents the Hub as a folder tree (DESIGN.md section 1) over the
 * low-level FUSE API (fs_run), and gives the commands the same resolver
 * and read engine without a mount (fs_ctx_open, fs_repo_resolve,
 * fs_pull).  It asks db/ for names and attributes and the store for
 * bytes, and hub/ for what the store does not have yet; it knows nothing
 * about HTTP.  It is also where failures are logged, once, at the point
 * that decides what a program sees.  Inside: front.h (FUSE), internal.h
 * (resolver), engine.h (read engine).
 */
#ifndef HUBFS_FS_H
#define HUBFS_FS_H

#include <stdbool.h>
#include <stdarg.h>
#include <syslog.h>

#include "db.h"
#include "hub.h"

struct fs_config {
	const char *mountpoint;	  /* absolute */
	struct hub_client *hub;	  /* borrowed */
	struct db_store *store;	  /* borrowed */
	long revision_ttl;	  /* seconds a branch stays resolved */
	long listing_ttl;	  /* seconds an owner listing is kept */
	long negative_ttl;	  /* seconds a miss is remembered */
	long read_timeout;	  /* seconds without progress: EIO */
	bool debug;		  /* libfuse's -d */
	bool xattr;		  /* answer the user.hubfs.* attributes;
				     else ENOSYS, which the kernel keeps */
	const char *fuse_options; /* extra -o options, or NULL */
	const char *hf_cache;	  /* a huggingface_hub cache to take blobs
				     from (absolute), or NULL */
	bool no_xet;		  /* never read through the Xet CAS */
};

/* The defaults of every field that has one: TTLs and the read timeout. */
#define FS_REVISION_TTL 60 /* seconds */
#define FS_READ_TIMEOUT 60 /* seconds */
void fs_config_defaults(struct fs_config *cfg);

/*
 * Mount and serve until unmounted or signalled.  When ready_fd >= 0 (a
 * daemon), one byte is written to it (and it is closed) once the mount
 * answers, so the parent can exit then, and standard input, output and
 * error are pointed at /dev/null.  Returns 0 or a negative errno.
 */
int fs_run(const struct fs_config *cfg, int ready_fd);

/* ---- Without a mount: what the commands use -----------------------------
 *
 * A context that resolves repos and fetches blobs into the store exactly
 * as a mount does (the same read path: blocks, hashing, durability, the
 * locks that let a mount and a pull share a blob), with no FUSE session.
 * cfg->mountpoint and cfg->fuse_options are not used.
 */
struct fs_ctx;
int fs_ctx_open(struct fs_ctx **out, const struct fs_config *cfg);
/* Stops every transfer and waits for what is durable to be recorded. */
void fs_ctx_close(struct fs_ctx *ctx);

/* A repo at a revision, its tree in the store. */
struct fs_repo {
	enum hub_repo_type type;
	char id[256]; /* canonical: after a rename or a legacy id */
	int64_t repo; /* db row */
	char commit[41];
	int64_t mtime; /* commit time */
	int64_t tree;  /* db tree row */
	bool moving;   /* rev is a branch or tag: it may move */
};
/*
 * Resolve id (an "owner/name", a legacy id or an old name of a renamed
 * repo) at rev (NULL: the default branch) as a lookup in the mount would,
 * honouring cfg->revision_ttl (0 asks the Hub now), and list its tree
 * into the store if it is not there.  0 or a negative errno: -ENOENT (no
 * such repo or revision), -EACCES (the Hub refused), -EISDIR (an owner,
 * not a repo), -EIO; the cause is logged with fs_log().
 */
int fs_repo_resolve(struct fs_ctx *ctx, enum hub_repo_type type, const char *id,
		    const char *rev, struct fs_repo *out);

/*
 * Fetch files of a repo into the store, verified, several at once.  Each
 * item's rc is set: 0 once the blob is complete and verified, else a
 * negative errno (-EIO for a failed check or transfer, -ENOSPC, -EINTR
 * when fs_pull_stop came first).  progress, when not NULL, is called from
 * the calling thread about five times a second and at the end.  Returns 0
 * when every item succeeded, -EINTR when stopped, else -EIO.
 */
struct fs_pull_item {
	const char *path; /* in the repo */
	uint64_t size;
	const char *etag;
	bool lfs;
	char xet[65];	/* the tree's xetHash, "" when none */
	uint64_t local; /* bytes already in the store, when known */
	bool done;	/* out: settled (set on the calling thread) */
	int rc;		/* out */
};
struct fs_pull_progress {
	uint64_t total;	   /* bytes of every item */
	uint64_t done;	   /* bytes of them in the store now */
	uint64_t at_start; /* bytes in the store before the pull */
	size_t files_done, files;
	const char *current; /* a file being fetched, or NULL */
};
typedef void (*fs_pull_progress_fn)(void *arg,
				    const struct fs_pull_progress *p);
int fs_pull(struct fs_ctx *ctx, const struct fs_repo *r,
	    struct fs_pull_item *items, size_t n, fs_pull_progress_fn progress,
	    void *arg);
/*
 * Make fs_pull on ctx stop soon (within a progress tick): its own waits are
 * cancelled, transfers already running finish into the store.  Safe from
 * any thread and from a signal handler; a later fs_pull on ctx stops at
 * once.
 */
void fs_pull_stop(struct fs_ctx *ctx);

/* ---- Running mounts ------------------------------------------------------
 *
 * Each running mount answers on a Unix socket in its store,
 * <store>/mounts/<pid>.sock (fs/status.c).  Requests:
 *
 *   "status"   pid, mountpoint, endpoint, store, offline, started (unix
 *              seconds), revision_ttl, bytes_served (to readers),
 *              bytes_fetched (from the network), reads (FUSE reads of
 *              bytes in a file), reads_local (of those, answered without
 *              waiting for the network), transfers_in_flight,
 *              transfers_queued, blobs_open, resolves_held_until
 *              (unix seconds until which new files wait for the Hub's
 *              rate limit, 0: none), last_errors (the last warnings and
 *              errors it logged: [{time, level, message}], oldest first)
 *   "refresh"  the mount forgets the commits its branches and tags
 *              resolved to, so the next lookup asks the Hub; answers pid,
 *              mountpoint, endpoint, store and invalidated (how many repo
 *              folders the kernel dropped), or error
 *
 * Numbers are JSON numbers (exact up to 2^53).
 */
struct cJSON;
/*
 * Called once per running mount with its pid and its parsed answer (a
 * JSON object, or NULL when the mount did not answer in time; valid only
 * during the call).  A non-zero return stops the walk.
 */
typedef int (*fs_status_fn)(void *arg, long pid, const struct cJSON *reply);
/*
 * Send request to every mount running on the store at store_dir, waiting
 * at most a couple of seconds for each.  Sockets of mounts that died
 * without removing them are removed.  Returns 0 (no mount is not an
 * error, nor is a store that does not exist), cb's non-zero return, or a
 * negative errno.
 */
int fs_status_query(const char *store_dir, const char *request, fs_status_fn cb,
		    void *arg);
/*
 * The mounts of the store that ended or died, each with the last warnings
 * and errors it logged: cb gets {"pid", "mountpoint", "ended": true,
 * "last_errors": [{"time", "level", "message"}]} (the files are kept for
 * the 8 most recent mounts).  0, cb's non-zero return, or a negative errno.
 */
int fs_status_ended(const char *store_dir, fs_status_fn cb, void *arg);

/* ---- Logging ----------------------------------------------------------- */

/*
 * Where log lines go: a file (appended, 0600), stderr, or syslog when
 * neither is given.  Call once before any thread starts.
 */
int fs_log_open(const char *file, bool to_stderr);
/*
 * A daemon's log when it has no --log: syslog when there is one to take it
 * (/dev/log), else <store_dir>/hubfs.log, 0600, rotated to hubfs.log.1 at
 * FS_LOG_FILE_MAX bytes (so at most twice that is kept).  0 or a negative
 * errno.  Call once before any thread starts.
 */
#define FS_LOG_FILE_MAX (1 << 20)
int fs_log_open_daemon(const char *store_dir);
/*
 * The last FS_LOG_RECENT warnings and errors of this process, oldest
 * first, also kept (when fs_log_keep_errors named a file) in that file,
 * rewritten whole at each one, so that "hubfs status" shows them after the
 * process died.  The file's first line is "# <title>"; each further line
 * "<unix time>\t<level>\t<message>".
 */
#define FS_LOG_RECENT 16
struct fs_log_entry {
	int64_t time;
	int priority;
	char message[256];
};
size_t fs_log_recent(struct fs_log_entry *out, size_t max);
/* Keep them in dir_fd/name (dir_fd is the caller's; -1 stops). */
void fs_log_keep_errors(int dir_fd, const char *name, const char *title);
/* "error", "warning", "info" or "debug". */
const char *fs_log_level_name(int priority);
/* Lines less urgent than priority (LOG_INFO unless set) are left out. */
void fs_log_set_level(int priority);
void fs_log(int priority, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif /* HUBFS_FS_H */

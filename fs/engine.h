/*
 * engine.h - the read engine: the bytes of files, by their identity,
 * fetched into the store on demand and handed to readers as they arrive.
 *
 * The engine knows nothing about FUSE.  A mount's reads (fs/ops.c) and
 * "hubfs pull" (fs/pull.c) use the same calls: open a file's blob, wait
 * for a byte range with a completion, cancel a wait.  Underneath: blocks
 * of a sparse blob file, transfers from hub/'s transfer engine, the
 * in-order hash check, durability (fdatasync before a mark) and the OFD
 * range locks through which engines in several processes on one store
 * share a blob without fetching it twice (fs/engine.c has the details).
 *
 * Errors are negative errnos: -EIO (a failed transfer or check), -EACCES
 * (the Hub refused), -ENOSPC (the store is full), -EINTR (cancelled),
 * -ENOMEM.  Failures are logged once, here, where they become an errno.
 */
#ifndef HUBFS_ENGINE_H
#define HUBFS_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "hub.h"

/* A file of a repo at a commit.  Strings are borrowed for the call. */
struct engine_file {
	enum hub_repo_type type;
	const char *repo_id; /* canonical "owner/name" */
	const char *commit;  /* 40 hex, or "" when not known */
	const char *path;    /* in the repo */
	const char *etag;    /* lowercase hex: sha256 (LFS) or git blob sha1 */
	uint64_t size;
	bool lfs;	      /* the etag is a sha256 of the content */
	const char *xet_hash; /* the tree's xetHash (64 hex), or "" or NULL:
				 not a Xet file */
};

/*
 * A blob failed its check and was dropped: tag is the one given to
 * engine_open for an open of it (the 8 most recent distinct tags of each
 * blob are kept).  Called on a thread of the engine's own with no engine
 * lock held; it may call anything but engine_stop.
 */
typedef void (*engine_dropped_fn)(void *arg, uint64_t tag);
/*
 * A copy of the blob the user already has outside the store, used where
 * it lies: 0 with *fd (read-only; the engine closes it), -ENOENT when
 * there is none, or another negative errno.  Called on the thread that
 * opens the file.
 */
typedef int (*engine_external_fn)(void *arg, const struct engine_file *f,
				  int *fd);

struct engine_config {
	struct hub_client *hub;	   /* borrowed: outlives the engine */
	struct db_store *store;	   /* borrowed: outlives the engine */
	long read_timeout;	   /* seconds, for the log line of a stall */
	unsigned transfers;	   /* parallel transfers; 0: 16 */
	bool no_xet;		   /* Xet files through the bridge only */
	engine_dropped_fn dropped; /* or NULL */
	void *dropped_arg;
	engine_external_fn external; /* or NULL */
	void *external_arg;
};

struct engine;

/* Start the engine's threads.  0 or a negative errno. */
int engine_start(struct engine **out, const struct engine_config *cfg);
/*
 * Stop every transfer, answer every wait still pending (-EIO), close the
 * handles still open and wait for what is durable to be recorded.
 * NULL is a no-op.
 */
void engine_stop(struct engine *e);

/*
 * An open file: holds its blob (gc never removes a blob in use), shared
 * with every other open of the same etag, and the readahead state of its
 * readers.  *keep_cache (may be NULL) is false at the first open after the
 * blob was dropped: a caller that keeps pages of the file must drop them.
 * The caller closes the handle with engine_close().
 */
struct engine_handle;
int engine_open(struct engine *e, const struct engine_file *f, uint64_t tag,
		struct engine_handle **out, bool *keep_cache);
/* No wait on h may be pending.  NULL is a no-op. */
void engine_close(struct engine_handle *h);

/*
 * The range [off, off + size) clipped to the file, once it is in the
 * store: done is called exactly once, with rc 0 and the blob's file
 * (valid during the call; read [off, off + size) from it with pread or a
 * splice), or a negative errno and fd -1.  A range that ends the file
 * waits for the blob's check too: a reader that reads a file to its end
 * never gets a successful read of corrupt content.
 *
 * done may be called before engine_wait returns (bytes already in the
 * store) and from other threads; it must not call engine_stop or
 * engine_close.  With ENGINE_READAHEAD, a sequential reader of h grows a
 * readahead window fetched into the file.  Returns 0, or a negative errno
 * when done will not be called.
 */
#define ENGINE_READAHEAD 1u
typedef void (*engine_done_fn)(void *arg, int rc, int fd, uint64_t off,
			       size_t size);
int engine_wait(struct engine_handle *h, uint64_t off, uint64_t size,
		unsigned flags, engine_done_fn done, void *arg);
/*
 * Cancel the pending waits of h started with arg: their done is called
 * here with -EINTR.  Transfers and other waits go on.  Returns how many
 * were cancelled (0: answered already, or being answered).
 */
int engine_cancel(struct engine_handle *h, const void *arg);

/* Bytes of the blob etag present in the store (in any process). */
uint64_t engine_cached_bytes(struct engine *e, const char *etag);

struct engine_stats {
	uint64_t waits;	      /* engine_wait calls for bytes in a file */
	uint64_t waits_local; /* of those, answered without the network */
	uint64_t bytes_answered;
	unsigned blobs_open;
	struct hub_xfer_stats xfer;
	struct hub_xet_stats xet; /* zero without the Xet reader */
	uint64_t xet_fallbacks;	  /* Xet runs read through the bridge */
};
void engine_get_stats(struct engine *e, struct engine_stats *out);

#endif /* HUBFS_ENGINE_H */

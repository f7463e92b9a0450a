/*
 * internal.h - what the files of fs/ below the FUSE front share: the
 * context of the resolver and the engine.  Not part of the interface; no
 * FUSE type in it (the front's own header is front.h).
 *
 *   context.c  fs_ctx_open/close: a context without a mount
 *   resolve.c  repo@rev to a commit and its tree in the store, as values
 *   external.c blobs used where the user already has them
 *   engine.c   the read engine: blobs into the store, verified (engine.h)
 *   queue.c    the engine's worker threads (queue.h)
 *   pull.c     "hubfs pull" on the engine
 *   log.c      fs_log
 *
 * Errors are 0 or a negative errno; the FUSE front flips the sign once, at
 * its reply.
 */
#ifndef HUBFS_FS_INTERNAL_H
#define HUBFS_FS_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "engine.h"
#include "fs.h"

/*
 * The resolver's and the engine's state: one per mount (embedded in its
 * struct fs_mount, front.h) or per command (fs_ctx_open).
 */
struct fs_ctx {
	struct fs_config cfg;
	bool mounted; /* cfg.mountpoint is ours, served (set before threads) */

	pthread_mutex_t lock; /* protects the fields below */
	struct hub_whoami whoami;
	time_t whoami_at; /* 0: never asked */
	bool whoami_ok;
	unsigned whoami_token; /* hub_client_token_changes() when asked */
	struct miss *misses;   /* remembered misses, a short list */

	struct listing *listings; /* trees being listed; lock */
	pthread_cond_t listed;	  /* a listing ended; with lock */

	/* external.c: the huggingface_hub cache; lock */
	dev_t mount_dev;      /* our mount's device, 0: not known yet */
	bool hf_cache_warned; /* said once that it is unusable */

	/*
	 * "hubfs refresh": a branch's commit checked before this (unix
	 * seconds) is asked of the Hub again.  Relaxed atomic.
	 */
	int64_t refreshed;

	struct engine *eng; /* the read engine, once started */
	int pull_stop;	    /* fs_pull_stop: atomic, lock-free */
};

/* context.c: set up and tear down the resolver's part of ctx. */
int ctx_init(struct fs_ctx *ctx, const struct fs_config *cfg);
void ctx_destroy(struct fs_ctx *ctx);
/* Start ctx's engine; dropped (or NULL) is its hook for dropped blobs. */
int ctx_engine_start(struct fs_ctx *ctx, engine_dropped_fn dropped, void *arg);

/* ---- resolve.c ----------------------------------------------------------- */

void misses_free(struct fs_ctx *ctx);
/*
 * What a name at the root or under datasets/ or spaces/ (base, with rev
 * when it had "@rev") stands for: an owner (*owner set), or a legacy or
 * renamed id (canonical set to the id it leads to).  0 or a negative
 * errno; -ENOENT for anything else.
 */
int resolve_top_name(struct fs_ctx *ctx, enum hub_repo_type type,
		     const char *base, const char *rev, bool *owner,
		     char canonical[256]);
/*
 * Repo id ("owner/name") at rev (NULL: the default branch), as the main
 * tree resolves "owner/name@rev": one step, renames not followed, the
 * tree not listed.  0 or a negative errno.  When out->id is not id, the
 * repo lives under out->id now and nothing else of *out is set.
 */
int resolve_repo_rev(struct fs_ctx *ctx, enum hub_repo_type type,
		     const char *id, const char *rev, struct fs_repo *out);
/* The same, and the tree listed into the store (out->tree) when not renamed. */
int resolve_repo_at(struct fs_ctx *ctx, enum hub_repo_type type, const char *id,
		    const char *rev, struct fs_repo *out);
/*
 * The store's tree of r's commit (r->id, r->repo, r->commit, r->mtime
 * used), listed from the huggingface_hub cache or the Hub the first time.
 * 0 or a negative errno.
 */
int resolve_tree(struct fs_ctx *ctx, const struct fs_repo *r, int64_t *tree);
/* The owners to list at the top of type: the user's own, the store's. */
int resolve_owners(struct fs_ctx *ctx, enum hub_repo_type type, db_name_fn cb,
		   void *arg);
/* An owner's repos: the Hub's listing (kept listing_ttl), the store's. */
int resolve_owner_repos(struct fs_ctx *ctx, enum hub_repo_type type,
			const char *owner, db_name_fn cb, void *arg);

/*
 * external.c: a blob the user already has outside the store (a file
 * recorded good, or one found in the huggingface_hub cache and hashed
 * now).  0 with *fd (read-only, the caller closes), -ENOENT when there is
 * none, or another negative errno.
 */
int external_open(void *ctx, const struct engine_file *w, int *fd);
/*
 * The path of rel ("" for the folder itself) in a repo's folder of the
 * huggingface_hub cache, when there is a usable cache; -ENOENT otherwise.
 */
int external_cache_path(struct fs_ctx *ctx, enum hub_repo_type type,
			const char *repo_id, const char *rel, char *out,
			size_t size);

#endif /* HUBFS_FS_INTERNAL_H */

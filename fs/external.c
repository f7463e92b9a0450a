/*
 * external.c - blobs the user already has, used where they lie: files
 * recorded by "hubfs import" or found earlier, and the huggingface_hub
 * cache (hub-api.md section 8.3).
 *
 * The read path asks here before it fetches a blob the store lacks.  A
 * file recorded good with its stamp unchanged is used at once.  Otherwise
 * the cache is searched, first blobs/<etag> (content-addressed: right for
 * any revision), then snapshots/<commit>/<path> (a real file when the
 * cache was written without symlinks).  A candidate of the right size is
 * hashed once, here, on the thread that opens the file: a FUSE worker
 * (libfuse starts another when all are busy) or a pull's.  The first open
 * of a large file then waits for that hash; every later one, in this
 * process or the next, trusts the recorded stamp.
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/*
 * The device of our own mount, 0 when there is none (a pull) or it cannot
 * be known.  Asked once, lazily: stat of the mount point is answered by
 * another worker, and it must not be asked before the loop runs.
 */
static dev_t own_dev(struct fs_ctx *ctx)
{
	struct stat st;
	dev_t dev;

	if (!ctx->mounted || !ctx->cfg.mountpoint)
		return 0;
	pthread_mutex_lock(&ctx->lock);
	dev = ctx->mount_dev;
	pthread_mutex_unlock(&ctx->lock);
	if (dev || stat(ctx->cfg.mountpoint, &st) < 0)
		return dev;
	pthread_mutex_lock(&ctx->lock);
	ctx->mount_dev = st.st_dev;
	pthread_mutex_unlock(&ctx->lock);
	return st.st_dev;
}

/*
 * A cache inside a hubfs mount (ours, through a symlink or a bind mount,
 * or another's) would be read through hubfs to serve hubfs: it is ignored,
 * and said so once.
 */
static bool cache_usable(struct fs_ctx *ctx)
{
	const char *dir = ctx->cfg.hf_cache;
	struct stat st;
	dev_t own;
	bool warn;

	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return false;
	own = own_dev(ctx);
	if ((!own || st.st_dev != own) && !db_dev_is_hubfs(st.st_dev))
		return true;
	pthread_mutex_lock(&ctx->lock);
	warn = !ctx->hf_cache_warned;
	ctx->hf_cache_warned = true;
	pthread_mutex_unlock(&ctx->lock);
	if (warn)
		fs_log(LOG_WARNING,
		       "hf cache %s is inside a hubfs mount: not used", dir);
	return false;
}

/* Try one file of the cache; 0 with *fd when it holds the blob. */
static int try_candidate(struct fs_ctx *ctx, const struct engine_file *w,
			 const char *path, int *fd)
{
	struct db_store *s = ctx->cfg.store;
	int rc = db_external_check(s, path, w->etag, w->size, fd);

	if (rc == 1)
		fs_log(LOG_INFO,
		       "hf cache: %s verified, used in place for %s/%s", path,
		       w->repo_id, w->path);
	else if (rc == -EBADMSG)
		fs_log(LOG_WARNING,
		       "hf cache: %s does not hold %s/%s (%s): ignored, "
		       "fetching it",
		       path, w->repo_id, w->path, db_last_error());
	else if (rc == -EAGAIN)
		fs_log(LOG_INFO, "hf cache: %s changed while being checked",
		       path);
	else if (rc < 0 && rc != -ENOENT && rc != -ERANGE)
		fs_log(LOG_INFO, "hf cache: %s not used: %s", path,
		       strerror(-rc));
	return rc < 0 ? rc : 0;
}

/* <cache>/<type>s--<owner>--<name>: hub-api.md section 8.2. */
static int repo_folder(struct fs_ctx *ctx, enum hub_repo_type type,
		       const char *id, char *folder, size_t size)
{
	size_t n = (size_t)snprintf(folder, size, "%s/", ctx->cfg.hf_cache);

	if (n >= size || hub_cache_folder_name(type, id, folder + n, size - n))
		return -ENOENT;
	return 0;
}

int external_cache_path(struct fs_ctx *ctx, enum hub_repo_type type,
			const char *repo_id, const char *rel, char *out,
			size_t size)
{
	char folder[PATH_MAX];
	int n;

	if (!ctx->cfg.hf_cache || !cache_usable(ctx) ||
	    repo_folder(ctx, type, repo_id, folder, sizeof(folder)) < 0)
		return -ENOENT;
	n = snprintf(out, size, "%s%s%s", folder, rel[0] ? "/" : "", rel);
	return n > 0 && (size_t)n < size ? 0 : -ENOENT;
}

int external_open(void *arg, const struct engine_file *w, int *fd)
{
	struct fs_ctx *ctx = arg;
	char folder[PATH_MAX], path[PATH_MAX];
	int rc;

	rc = db_external_open(ctx->cfg.store, w->etag, w->size, fd);
	if (rc != -ENOENT || !ctx->cfg.hf_cache || !cache_usable(ctx))
		return rc;
	if (repo_folder(ctx, w->type, w->repo_id, folder, sizeof(folder)) < 0)
		return -ENOENT;

	rc = snprintf(path, sizeof(path), "%s/blobs/%s", folder, w->etag);
	if (rc > 0 && (size_t)rc < sizeof(path) &&
	    try_candidate(ctx, w, path, fd) == 0)
		return 0;
	rc = snprintf(path, sizeof(path), "%s/snapshots/%s/%s", folder,
		      w->commit, w->path);
	if (w->commit[0] && rc > 0 && (size_t)rc < sizeof(path) &&
	    try_candidate(ctx, w, path, fd) == 0)
		return 0;
	return -ENOENT;
}

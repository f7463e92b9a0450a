/*
 * resolve.c - the resolver: owners, legacy and renamed ids, a repo at a
 * revision (its commit, as a struct fs_repo) and its tree in the store
 * (DESIGN.md sections 1 and 5).  Values only: the FUSE front turns them
 * into nodes (lookup.c, hfcache.c), the commands use them as they are.
 *
 * Metadata comes from the index when it is there and fresh; the Hub is
 * asked otherwise.  Misses at the owner and repo level are remembered for
 * negative_ttl seconds, so programs probing for optional names cost no
 * requests.  Failures are logged here, where they become an errno.
 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct miss {
	struct miss *next;
	time_t until;
	int err;	/* -ENOENT, or -EACCES for what the Hub refused */
	unsigned token; /* hub_client_token_changes() when it was seen */
	char key[];
};

/* The errno remembered for key, or 0. */
static int miss_known(struct fs_ctx *ctx, const char *key)
{
	unsigned token = hub_client_token_changes(ctx->cfg.hub);
	time_t now = time(NULL);
	int hit = 0;

	pthread_mutex_lock(&ctx->lock);
	for (struct miss **pp = &ctx->misses; *pp;) {
		struct miss *m = *pp;

		/* A new token may see what the old one could not. */
		if (m->until <= now || m->token != token) {
			*pp = m->next;
			free(m);
			continue;
		}
		if (strcmp(m->key, key) == 0)
			hit = m->err;
		pp = &m->next;
	}
	pthread_mutex_unlock(&ctx->lock);
	return hit;
}

void misses_free(struct fs_ctx *ctx)
{
	while (ctx->misses) {
		struct miss *m = ctx->misses;

		ctx->misses = m->next;
		free(m);
	}
}

#define MAX_MISSES 4096

static void miss_add_for(struct fs_ctx *ctx, const char *key, int err,
			 long seconds)
{
	size_t len = strlen(key) + 1, count = 0;
	struct miss *m = malloc(sizeof(*m) + len), **pp;

	if (!m)
		return;
	/* Replace an older entry for the key; past the cap, drop the oldest. */
	pthread_mutex_lock(&ctx->lock);
	for (pp = &ctx->misses; *pp;) {
		struct miss *old = *pp;

		if (strcmp(old->key, key) == 0 || ++count >= MAX_MISSES) {
			*pp = old->next;
			free(old);
			continue;
		}
		pp = &old->next;
	}
	pthread_mutex_unlock(&ctx->lock);
	memcpy(m->key, key, len);
	m->err = err;
	m->token = hub_client_token_changes(ctx->cfg.hub);
	m->until = time(NULL) + seconds;
	pthread_mutex_lock(&ctx->lock);
	m->next = ctx->misses;
	ctx->misses = m;
	pthread_mutex_unlock(&ctx->lock);
}

static void miss_add(struct fs_ctx *ctx, const char *key, int err)
{
	miss_add_for(ctx, key, err, ctx->cfg.negative_ttl);
}

/*
 * How long a listing that failed after waiting out the read timeout (a
 * stalled Hub) is remembered: lookups queued behind it (the kernel runs
 * lookups of one name one at a time) fail at once instead of each waiting
 * that long again.  Short, so that the Hub is asked again soon; a quick
 * failure is not remembered at all.
 */
static long failure_ttl(const struct fs_ctx *ctx)
{
	long t = ctx->cfg.read_timeout;

	return t < 2 ? 2 : t > 10 ? 10 : t;
}

/* Log a Hub failure once and turn it into a -errno for the program. */
static int hub_failure(struct fs_ctx *ctx, int rc, const struct hub_error *err,
		       const char *what, const char *name)
{
	char buf[400];
	int e;

	if (rc == -ENETDOWN)
		return -ENOENT; /* offline: the Hub is not asked */
	if (rc == -ENOMEM)
		return -ENOMEM;
	e = hub_error_errno(err);
	if (e == ENOENT)
		return -ENOENT;
	fs_log(LOG_WARNING, "%s %s: %s", what, name,
	       hub_error_describe(err, buf, sizeof(buf)));
	if (e == EACCES && !hub_client_has_token(ctx->cfg.hub))
		fs_log(LOG_WARNING, "no Hub token is set: run 'hf auth login' "
				    "or set HF_TOKEN to read gated or private "
				    "repos");
	return -e;
}

static bool whoami_has(struct fs_ctx *ctx, const char *owner)
{
	bool found = false;

	pthread_mutex_lock(&ctx->lock);
	if (ctx->whoami_ok) {
		found = strcmp(ctx->whoami.name, owner) == 0;
		for (unsigned i = 0; !found && i < ctx->whoami.n_orgs; i++)
			found = strcmp(ctx->whoami.orgs[i], owner) == 0;
	}
	pthread_mutex_unlock(&ctx->lock);
	return found;
}

static int stop_at_first(void *arg, const char *name)
{
	(void)name;
	*(bool *)arg = true;
	return 1;
}

static bool owner_known(struct fs_ctx *ctx, enum hub_repo_type type,
			const char *owner)
{
	bool any = false;

	db_owner_repos(ctx->cfg.store, type, owner, stop_at_first, &any);
	return any || whoami_has(ctx, owner);
}

struct author_list {
	char **ids;
	size_t n, cap;
};

static int collect_id(void *arg, const char *id)
{
	struct author_list *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		char **ids = realloc(l->ids, cap * sizeof(*ids));

		if (!ids)
			return -ENOMEM;
		l->ids = ids;
		l->cap = cap;
	}
	l->ids[l->n] = strdup(id);
	return l->ids[l->n++] ? 0 : -ENOMEM;
}

static void author_list_free(struct author_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->ids[i]);
	free(l->ids);
}

/*
 * Ask the Hub for an owner's repos and keep the answer.  Returns the
 * number of repos, or a negative errno.
 */
static long refresh_listing(struct fs_ctx *ctx, enum hub_repo_type type,
			    const char *owner, struct hub_error *err)
{
	struct author_list l = { 0 };
	long rc;

	rc = hub_list_author(ctx->cfg.hub, type, owner, collect_id, &l, err);
	if (rc == 0)
		rc = db_listing_put(ctx->cfg.store, type, owner,
				    (const char *const *)l.ids, l.n,
				    time(NULL));
	if (rc == 0)
		rc = (long)l.n;
	author_list_free(&l);
	return rc;
}

/*
 * Offline: whether the huggingface_hub cache has a repo of owner, so that
 * the owner's folder can be entered to reach it.
 */
static bool cache_has_owner(struct fs_ctx *ctx, enum hub_repo_type type,
			    const char *owner)
{
	char probe[300], path[PATH_MAX], *slash;
	size_t n;
	struct dirent *d;
	bool found = false;
	DIR *dir;

	/* "<cache>/<types>--<owner>--x": its folder and the name's prefix. */
	snprintf(probe, sizeof(probe), "%s/x", owner);
	if (external_cache_path(ctx, type, probe, "", path, sizeof(path)) < 0 ||
	    !(slash = strrchr(path, '/')))
		return false;
	*slash++ = '\0';
	n = strlen(slash) - 1; /* without the "x" */
	dir = opendir(path);
	while (dir && !found && (d = readdir(dir)))
		found = strncmp(d->d_name, slash, n) == 0 && d->d_name[n];
	if (dir)
		closedir(dir);
	return found;
}

/*
 * What a name at the root or under datasets/ or spaces/ stands for: an
 * owner (*owner set), or a legacy or renamed id (canonical set).  0 or a
 * negative errno; -ENOENT for anything else.
 */
int resolve_top_name(struct fs_ctx *ctx, enum hub_repo_type type,
		     const char *base, const char *rev, bool *owner,
		     char canonical[256])
{
	struct hub_repo_info info;
	struct hub_error err = { 0 };
	struct db_repo repo;
	char key[600];
	int rc, hr;
	long n;

	*owner = false;
	canonical[0] = '\0';
	if (!hub_repo_id_valid(base) || strchr(base, '/'))
		return -ENOENT;
	if (!rev && (owner_known(ctx, type, base) ||
		     (hub_client_offline(ctx->cfg.hub) &&
		      cache_has_owner(ctx, type, base)))) {
		*owner = true;
		return 0;
	}
	if (db_repo_get(ctx->cfg.store, type, base, &repo) == 0 &&
	    repo.canonical[0]) {
		memcpy(canonical, repo.canonical, 256);
		return 0;
	}
	snprintf(key, sizeof(key), "%d:%s%s%s", (int)type, base, rev ? "@" : "",
		 rev ? rev : "");
	if ((rc = miss_known(ctx, key)) != 0)
		return rc;

	/* A legacy id answers /api/{types}/NAME with its canonical id. */
	hr = hub_repo_info(ctx->cfg.hub, type, base, rev, &info, &err);
	if (hr == 0 && strcmp(info.id, base) != 0 && strchr(info.id, '/')) {
		db_repo_put(ctx->cfg.store, type, base, info.id, NULL);
		memcpy(canonical, info.id, 256);
		return 0;
	}
	if (hr < 0 && hub_error_errno(&err) != ENOENT &&
	    hub_error_errno(&err) != EACCES)
		return hub_failure(ctx, hr, &err, "looking up", base);
	if (!rev) {
		memset(&err, 0, sizeof(err));
		n = refresh_listing(ctx, type, base, &err);
		if (n > 0) {
			*owner = true;
			return 0;
		}
		if (n < 0 && hub_error_errno(&err) != ENOENT)
			return hub_failure(ctx, (int)n, &err, "listing", base);
		/* No repos listed: a user or an organisation is a folder still
		   (its renamed repos lead on; hub-api.md section 2.6). */
		memset(&err, 0, sizeof(err));
		hr = hub_owner_exists(ctx->cfg.hub, base, owner, &err);
		if (hr < 0)
			return hub_failure(ctx, hr, &err, "looking up", base);
		if (*owner)
			return 0;
	}
	miss_add(ctx, key, -ENOENT);
	return -ENOENT;
}

/*
 * The commit a revision of a repo points to: from the index while fresh
 * (or forever, for a commit id), else from the Hub; a stale answer is used
 * when the Hub cannot be reached.  *canonical is set when the Hub says the
 * repo lives under another id now.
 */
struct revision {
	bool from_hub; /* asked now, not the index's answer */
	char commit[41];
	int64_t mtime;
	bool moving; /* a branch or tag: re-resolve after the TTL */
	char canonical[256];
};

#define CACHE_TREE_MAX (512U << 20) /* a trees/<commit>.json read whole */

/* The whole of a small regular file, NUL-terminated; caller frees. */
static char *read_whole(const char *path, size_t max, size_t *len,
			time_t *mtime)
{
	struct stat st;
	char *buf = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (uint64_t)st.st_size < max &&
	    (buf = malloc((size_t)st.st_size + 1))) {
		while (n < (size_t)st.st_size) {
			ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);

			if (r <= 0)
				break;
			n += (size_t)r;
		}
		buf[n] = '\0';
		*len = n;
		*mtime = st.st_mtime;
	}
	close(fd);
	return buf;
}

/*
 * Offline (or the Hub unreachable) and the store knows nothing of the
 * revision: what the huggingface_hub cache knows.  A branch or tag is its
 * refs/<rev> file ("" is refs/main, as huggingface_hub writes it); a
 * commit counts when the cache has its snapshot or its file list.
 */
static int cache_revision(struct fs_ctx *ctx, const struct db_repo *repo,
			  const char *rev, struct revision *out)
{
	char rel[300], path[PATH_MAX], *text;
	struct stat st;
	size_t len = 0;
	time_t mtime = 0;

	if (!out->moving) {
		snprintf(rel, sizeof(rel), "trees/%s.json", out->commit);
		if (external_cache_path(ctx, repo->type, repo->name, rel, path,
					sizeof(path)) == 0 &&
		    stat(path, &st) == 0)
			return 0;
		snprintf(rel, sizeof(rel), "snapshots/%s", out->commit);
		return external_cache_path(ctx, repo->type, repo->name, rel,
					   path, sizeof(path)) == 0 &&
				       stat(path, &st) == 0 &&
				       S_ISDIR(st.st_mode)
			       ? 0
			       : -ENOENT;
	}
	rev = rev && rev[0] ? rev : "main";
	if (!hub_path_safe(rev) ||
	    (size_t)snprintf(rel, sizeof(rel), "refs/%s", rev) >= sizeof(rel) ||
	    external_cache_path(ctx, repo->type, repo->name, rel, path,
				sizeof(path)) < 0 ||
	    !(text = read_whole(path, 128, &len, &mtime)))
		return -ENOENT;
	text[strcspn(text, " \t\r\n")] = '\0';
	if (!hub_is_commit_id(text)) {
		free(text);
		return -ENOENT;
	}
	memcpy(out->commit, text, sizeof(out->commit));
	free(text);
	fs_log(LOG_INFO, "%s@%s: %s from the huggingface_hub cache", repo->name,
	       rev, out->commit);
	return 0;
}

static int resolve_revision(struct fs_ctx *ctx, const struct db_repo *repo,
			    const char *rev, struct revision *out)
{
	struct hub_repo_info info;
	struct hub_error err = { 0 };
	struct db_tree tree;
	int64_t checked = 0;
	bool have = false;
	int rc;

	memset(out, 0, sizeof(*out));
	out->moving = !(rev && hub_is_commit_id(rev));
	if (!out->moving) {
		memcpy(out->commit, rev, 41);
		have = db_tree_find(ctx->cfg.store, repo->id, rev, &tree) == 0;
		if (have) {
			out->mtime = tree.mtime;
			return 0;
		}
	} else if (db_revision_get(ctx->cfg.store, repo->id, rev ? rev : "",
				   out->commit, &checked) == 0) {
		have = true;
		if (db_tree_find(ctx->cfg.store, repo->id, out->commit,
				 &tree) == 0)
			out->mtime = tree.mtime;
		/* "hubfs refresh" makes what was checked before it stale. */
		if (time(NULL) - checked < ctx->cfg.revision_ttl &&
		    checked > __atomic_load_n(&ctx->refreshed,
					      __ATOMIC_RELAXED) &&
		    out->mtime != 0)
			return 0;
	}

	rc = hub_repo_info(ctx->cfg.hub, repo->type, repo->name, rev, &info,
			   &err);
	if (rc == 0) {
		if (strcmp(info.id, repo->name) != 0) {
			memcpy(out->canonical, info.id, sizeof(out->canonical));
			return 0;
		}
		memcpy(out->commit, info.sha, sizeof(out->commit));
		out->mtime = info.last_modified;
		out->from_hub = true;
		if (out->moving)
			db_revision_put(ctx->cfg.store, repo->id,
					rev ? rev : "", info.sha, time(NULL));
		return 0;
	}
	if (have && (rc == -ENETDOWN || hub_error_transient(&err))) {
		char why[400];

		if (rc != -ENETDOWN)
			fs_log(LOG_INFO,
			       "%s: %s; using the revision known from %lld",
			       repo->name,
			       hub_error_describe(&err, why, sizeof(why)),
			       (long long)checked);
		return 0;
	}
	if ((rc == -ENETDOWN || hub_error_transient(&err)) &&
	    cache_revision(ctx, repo, rev, out) == 0)
		return 0;
	return hub_failure(ctx, rc, &err, "resolving", repo->name);
}

/* Whether the huggingface_hub cache has a folder for the repo. */
static bool in_cache(struct fs_ctx *ctx, enum hub_repo_type type,
		     const char *id)
{
	char path[PATH_MAX];
	struct stat st;

	return external_cache_path(ctx, type, id, "", path, sizeof(path)) ==
		       0 &&
	       stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/*
 * One step of resolving repo id at rev (NULL: the default branch), without
 * its tree: see resolve_repo_at.
 */
int resolve_repo_rev(struct fs_ctx *ctx, enum hub_repo_type type,
		     const char *id, const char *rev, struct fs_repo *out)
{
	struct revision r;
	struct db_repo repo;
	char key[600];
	int rc;

	memset(out, 0, sizeof(*out));
	out->type = type;
	if (strlen(id) >= sizeof(out->id) || !strchr(id, '/') ||
	    !hub_repo_id_valid(id))
		return -ENOENT;
	snprintf(key, sizeof(key), "%d:%s%s%s", (int)type, id, rev ? "@" : "",
		 rev ? rev : "");
	if ((rc = miss_known(ctx, key)) != 0)
		return rc;
	if (db_repo_get(ctx->cfg.store, type, id, &repo) < 0) {
		if (hub_client_offline(ctx->cfg.hub) &&
		    !in_cache(ctx, type, id))
			return -ENOENT;
		memset(&repo, 0, sizeof(repo));
		repo.type = type;
		snprintf(repo.name, sizeof(repo.name), "%s", id);
	}
	if (repo.canonical[0]) {
		snprintf(out->id, sizeof(out->id), "%s", repo.canonical);
		return 0;
	}
	rc = resolve_revision(ctx, &repo, rev, &r);
	if (rc) {
		if (rc == -ENOENT || rc == -EACCES)
			miss_add(ctx, key, rc);
		return rc;
	}
	if (r.canonical[0]) {
		db_repo_put(ctx->cfg.store, type, id, r.canonical, NULL);
		snprintf(out->id, sizeof(out->id), "%s", r.canonical);
		return 0;
	}
	if (repo.id == 0 &&
	    db_repo_put(ctx->cfg.store, type, id, "", &repo) < 0)
		return -EIO;
	/*
	 * What the Hub said is stamped with its time (for a repo new to the
	 * index, resolve_revision could not); a cached or stale answer keeps
	 * the time it was checked, so the TTL runs out.
	 */
	if (r.moving && r.from_hub)
		db_revision_put(ctx->cfg.store, repo.id, rev ? rev : "",
				r.commit, time(NULL));
	snprintf(out->id, sizeof(out->id), "%s", id);
	out->repo = repo.id;
	memcpy(out->commit, r.commit, sizeof(out->commit));
	out->mtime = r.mtime;
	out->moving = r.moving;
	return 0;
}

struct tree_fill {
	struct db_tree_writer *w;
	int rc;
};

static int add_entry(void *arg, const struct hub_entry *e)
{
	struct tree_fill *f = arg;

	f->rc = db_tree_add(f->w, e);
	return f->rc;
}

/* A tree being listed from the Hub; others wanting it wait. */
struct listing {
	struct listing *next;
	int64_t repo;
	char commit[41];
};

static struct listing *listing_find(struct fs_ctx *ctx, const struct fs_repo *n)
{
	struct listing *l;

	for (l = ctx->listings; l; l = l->next)
		if (l->repo == n->repo && strcmp(l->commit, n->commit) == 0)
			break;
	return l;
}

/*
 * Claim the listing of n's tree; false when it appeared in the index while
 * waiting for another thread that was listing it.
 */
static bool listing_claim(struct fs_ctx *ctx, const struct fs_repo *n,
			  struct listing *me, struct db_tree *t)
{
	bool claimed;

	pthread_mutex_lock(&ctx->lock);
	while (listing_find(ctx, n))
		pthread_cond_wait(&ctx->listed, &ctx->lock);
	claimed = db_tree_find(ctx->cfg.store, n->repo, n->commit, t) != 0;
	if (claimed) {
		me->repo = n->repo;
		memcpy(me->commit, n->commit, sizeof(me->commit));
		me->next = ctx->listings;
		ctx->listings = me;
	}
	pthread_mutex_unlock(&ctx->lock);
	return claimed;
}

static void listing_release(struct fs_ctx *ctx, struct listing *me)
{
	struct listing **pp;

	pthread_mutex_lock(&ctx->lock);
	for (pp = &ctx->listings; *pp != me; pp = &(*pp)->next)
		;
	*pp = me->next;
	pthread_cond_broadcast(&ctx->listed);
	pthread_mutex_unlock(&ctx->lock);
}

/*
 * The commit's tree from the huggingface_hub cache's trees/<commit>.json
 * (hub-api.md section 8.6), which a recent huggingface_hub writes after it
 * listed the tree: no tree call then, and none is possible offline.
 * Commit-addressed, so it never goes stale.  -ENOENT when there is none
 * or it does not parse: the Hub is asked as usual.
 */
static int cache_tree(struct fs_ctx *ctx, const struct fs_repo *n,
		      struct db_tree *t)
{
	struct tree_fill fill = { 0 };
	char rel[64], path[PATH_MAX], *text;
	unsigned skipped = 0;
	size_t len = 0;
	time_t mtime = 0;
	int rc, prc;

	snprintf(rel, sizeof(rel), "trees/%s.json", n->commit);
	if (external_cache_path(ctx, n->type, n->id, rel, path, sizeof(path)) <
		    0 ||
	    !(text = read_whole(path, CACHE_TREE_MAX, &len, &mtime)))
		return -ENOENT;
	rc = db_tree_begin(ctx->cfg.store, n->repo, n->commit,
			   n->mtime ? n->mtime : (int64_t)mtime, &fill.w);
	if (rc == 0) {
		prc = hub_cache_tree_parse(text, len, add_entry, &fill,
					   &skipped);
		rc = db_tree_end(fill.w, prc == 0 && fill.rc == 0, t);
		if (rc == 0 && (prc || fill.rc))
			rc = -ENOENT; /* rolled back */
	}
	free(text);
	if (rc == 0)
		fs_log(LOG_INFO, "%s@%s: files listed from %s%s", n->id,
		       n->commit, path,
		       skipped ? " (some unsafe entries left out)" : "");
	return rc < 0 ? -ENOENT : 0;
}

/*
 * The index's tree for a repo's commit, listed from the Hub the
 * first time (all pages, committed at once).  Two lookups in one new tree
 * share one listing; listings of different trees run side by side.
 */
int resolve_tree(struct fs_ctx *ctx, const struct fs_repo *n, int64_t *tree)
{
	struct hub_error err = { 0 };
	struct tree_fill fill = { 0 };
	struct listing me;
	struct db_tree t;
	unsigned skipped = 0;
	char key[80];
	time_t began;
	int rc, hrc = 0;

	if (db_tree_find(ctx->cfg.store, n->repo, n->commit, &t) == 0)
		goto found;
	if (cache_tree(ctx, n, &t) == 0)
		goto found;
	if (hub_client_offline(ctx->cfg.hub))
		return -ENOENT;
	snprintf(key, sizeof(key), "tree:%lld:%s", (long long)n->repo,
		 n->commit);
	if ((rc = miss_known(ctx, key)) != 0)
		return rc;
	if (!listing_claim(ctx, n, &me, &t))
		goto found;
	/* The listing this one waited for may just have failed. */
	if ((rc = miss_known(ctx, key)) != 0) {
		listing_release(ctx, &me);
		return rc;
	}
	began = time(NULL);
	rc = db_tree_begin(ctx->cfg.store, n->repo, n->commit, n->mtime,
			   &fill.w);
	if (rc == 0) {
		hrc = hub_tree_list(ctx->cfg.hub, n->type, n->id, n->commit,
				    add_entry, &fill, &skipped, &err);
		rc = db_tree_end(fill.w, hrc == 0, &t);
	}
	/* Remembered before the lookups waiting on this one wake up. */
	if (hrc < 0 && fill.rc == 0) {
		int e = hub_failure(ctx, hrc, &err, "listing the files of",
				    n->id);

		if (time(NULL) - began >= ctx->cfg.read_timeout)
			miss_add_for(ctx, key, e, failure_ttl(ctx));
		listing_release(ctx, &me);
		return e;
	}
	listing_release(ctx, &me);
	if (skipped)
		fs_log(LOG_WARNING,
		       "%s@%s: %u entries with unsafe names or "
		       "hashes were left out",
		       n->id, n->commit, skipped);
	if (rc < 0 || fill.rc < 0) {
		rc = fill.rc < 0 ? fill.rc : rc;
		fs_log(LOG_ERR, "%s@%s: storing the file list: %s", n->id,
		       n->commit,
		       rc == -ENOSPC ? "the store is full" : db_last_error());
		return rc == -ENOSPC ? -ENOSPC : -EIO;
	}
found:
	*tree = t.id;
	return 0;
}

int resolve_repo_at(struct fs_ctx *ctx, enum hub_repo_type type, const char *id,
		    const char *rev, struct fs_repo *out)
{
	int rc = resolve_repo_rev(ctx, type, id, rev, out);

	if (rc == 0 && strcmp(out->id, id) == 0)
		rc = resolve_tree(ctx, out, &out->tree);
	return rc;
}

/*
 * The user's own namespace and organisations: asked once an hour, and
 * again whenever the token changes.
 */
static void refresh_whoami(struct fs_ctx *ctx)
{
	unsigned token = hub_client_token_changes(ctx->cfg.hub);
	struct hub_whoami w;
	struct hub_error err = { 0 };
	time_t now = time(NULL);
	bool ask;

	pthread_mutex_lock(&ctx->lock);
	if (token != ctx->whoami_token)
		ctx->whoami_ok = false;
	ask = token != ctx->whoami_token || now - ctx->whoami_at > 3600;
	if (ask) {
		ctx->whoami_at = now;
		ctx->whoami_token = token;
	}
	pthread_mutex_unlock(&ctx->lock);
	if (!ask || hub_client_offline(ctx->cfg.hub) ||
	    !hub_client_has_token(ctx->cfg.hub) ||
	    hub_whoami(ctx->cfg.hub, &w, &err) < 0)
		return;
	pthread_mutex_lock(&ctx->lock);
	if (ctx->whoami_token == token) { /* not overtaken by a newer token */
		ctx->whoami = w;
		ctx->whoami_ok = true;
	}
	pthread_mutex_unlock(&ctx->lock);
}

int resolve_owners(struct fs_ctx *ctx, enum hub_repo_type type, db_name_fn cb,
		   void *arg)
{
	struct hub_whoami w;
	bool ok;

	refresh_whoami(ctx);
	pthread_mutex_lock(&ctx->lock);
	w = ctx->whoami;
	ok = ctx->whoami_ok;
	pthread_mutex_unlock(&ctx->lock);
	if (ok) {
		cb(arg, w.name);
		for (unsigned i = 0; i < w.n_orgs; i++)
			cb(arg, w.orgs[i]);
	}
	return db_owners(ctx->cfg.store, type, cb, arg);
}

int resolve_owner_repos(struct fs_ctx *ctx, enum hub_repo_type type,
			const char *owner, db_name_fn cb, void *arg)
{
	struct db_store *s = ctx->cfg.store;
	struct hub_error err = { 0 };
	int64_t listed = 0;

	if (!hub_client_offline(ctx->cfg.hub) &&
	    (db_listing_age(s, type, owner, &listed) < 0 ||
	     time(NULL) - listed >= ctx->cfg.listing_ttl) &&
	    refresh_listing(ctx, type, owner, &err) < 0 &&
	    hub_error_errno(&err) != ENOENT)
		hub_failure(ctx, -EIO, &err, "listing", owner);
	return db_owner_repos(s, type, owner, cb, arg);
}

/* ---- Repos for the commands -------------------------------------------- */

int fs_repo_resolve(struct fs_ctx *ctx, enum hub_repo_type type, const char *id,
		    const char *rev, struct fs_repo *out)
{
	char cur[256], canonical[256];
	bool owner;
	int rc = -ELOOP;

	memset(out, 0, sizeof(*out));
	if (strlen(id) >= sizeof(cur) || !hub_repo_id_valid(id))
		return -ENOENT;
	if (rev && strlen(rev) > 255)
		return -ENOENT;
	snprintf(cur, sizeof(cur), "%s", id);
	/* A legacy or renamed id leads to its canonical id, a hop each. */
	for (int hops = 0; hops < 4; hops++) {
		if (!strchr(cur, '/')) {
			rc = resolve_top_name(ctx, type, cur, rev, &owner,
					      canonical);
			if (rc == 0 && owner)
				rc = -EISDIR;
			if (rc)
				break;
			memcpy(cur, canonical, sizeof(cur));
			rc = -ELOOP;
			continue;
		}
		rc = resolve_repo_at(ctx, type, cur, rev, out);
		if (rc || strcmp(out->id, cur) == 0)
			break;
		snprintf(cur, sizeof(cur), "%s", out->id);
		rc = -ELOOP;
	}
	return rc;
}

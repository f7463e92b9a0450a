/*
 * hfcache.c - .hf-cache/: the repos hubfs knows, in the layout of the
 * huggingface_hub cache (hub-api.md section 8), read-only and lazy.
 *
 *   .hf-cache/                         every repo the store knows
 *     models--org--name/               datasets--..., spaces--... likewise
 *       refs/<rev>                     the commit, 40 hex, no newline
 *       refs/refs/pr/<N>               a revision containing '/' nests
 *       snapshots/<commit>/<path>      a folder of the tree, or a relative
 *                                      link to ../../blobs/<etag>
 *       blobs/<etag>                   the content, read like any file
 *       trees/<commit>.json            the commit's files (section 8.6)
 *
 * Pointing HF_HUB_CACHE here lets programs that only know repo ids read
 * through hubfs.  Listings show what the store holds (they cost no Hub
 * request); a lookup of a repo, a ref or a commit the store does not
 * have yet resolves it from the Hub as the main tree would, so the view
 * holds no state of its own.  Refs and snapshots are listed only for
 * commits whose tree is in the store: a ref without its snapshot folder
 * makes the cache "corrupt" to huggingface_hub's scanner.
 *
 * The default branch is the store's revision "" and is presented as
 * refs/main, the name huggingface_hub uses for it.
 */
#include "front.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_REF "main"

/* "models--org--name" for (model, "org/name").  Caller frees. */
static char *folder_name(enum hub_repo_type type, const char *id)
{
	char name[300];

	if (hub_cache_folder_name(type, id, name, sizeof(name)) < 0)
		return NULL;
	return strdup(name);
}

static struct node *new_hf(enum hf_folder hf, const struct node *parent,
			   const char *name)
{
	struct node *n = node_alloc(NODE_HF);

	if (!n)
		return NULL;
	n->hf = hf;
	if (parent) {
		n->type = parent->type;
		n->repo = parent->repo;
		n->repo_id = parent->repo_id ? strdup(parent->repo_id) : NULL;
		if (asprintf(&n->vpath, "%s%s%s", parent->vpath,
			     parent->vpath[0] ? "/" : "", name) < 0)
			n->vpath = NULL;
	} else {
		n->vpath = strdup("");
	}
	if (!n->vpath || (parent && parent->repo_id && !n->repo_id)) {
		node_free(n);
		return NULL;
	}
	n->ino = ino_hash(HFCACHE_NAME, n->vpath);
	return n;
}

int hfcache_root(struct node **out)
{
	*out = new_hf(HF_ROOT, NULL, "");
	return *out ? 0 : -ENOMEM;
}

/* A link from .hf-cache/ (or deeper) to another repo's folder. */
static int link_to(const struct node *parent, const char *name,
		   enum hub_repo_type type, const char *canonical,
		   struct node **out)
{
	struct node *n = node_alloc(NODE_LINK);

	if (!n)
		return -ENOMEM;
	n->target = folder_name(type, canonical);
	if (!n->target || asprintf(&n->vpath, "%s%s%s", parent->vpath,
				   parent->vpath[0] ? "/" : "", name) < 0) {
		n->vpath = NULL;
		node_free(n);
		return -ENOMEM;
	}
	n->ino = ino_hash(HFCACHE_NAME, n->vpath);
	*out = n;
	return 0;
}

/*
 * A repo folder: from the store when it knows the repo (no Hub request,
 * so this works offline), else resolved from the Hub.
 */
static int lookup_repo(struct fs_ctx *ctx, const struct node *root,
		       const char *name, struct node **out)
{
	enum hub_repo_type type;
	struct db_repo repo;
	struct fs_repo r;
	struct node *n;
	char id[256];
	int rc;

	if (hub_cache_folder_parse(name, &type, id) < 0)
		return -ENOENT;
	if (db_repo_get(ctx->cfg.store, type, id, &repo) < 0) {
		rc = resolve_repo_at(ctx, type, id, NULL, &r);
		if (rc)
			return rc;
		if (strcmp(r.id, id) != 0)
			return link_to(root, name, type, r.id, out);
		if (db_repo_get(ctx->cfg.store, type, id, &repo) < 0)
			return -EIO;
	}
	if (repo.canonical[0])
		return link_to(root, name, type, repo.canonical, out);
	n = new_hf(HF_REPO, root, name);
	if (!n)
		return -ENOMEM;
	n->type = type;
	n->repo = repo.id;
	n->repo_id = strdup(id);
	if (!n->repo_id) {
		node_free(n);
		return -ENOMEM;
	}
	*out = n;
	return 0;
}

/* ---- Revisions ---------------------------------------------------------- */

/* What the store records of a repo's revisions, as the view names them. */
struct rev_list {
	struct rev_item {
		char name[256]; /* "" is presented as DEFAULT_REF */
		bool pinned;	/* a commit no revision points at: no ref */
		char commit[41];
		bool listed; /* the commit's tree is in the store */
	} * items;
	size_t n, cap;
	bool has_default; /* a revision "" (the default branch) */
	bool has_main;	  /* a revision named DEFAULT_REF */
};

static int collect_rev(void *arg, const struct db_report_rev *r)
{
	struct rev_list *l = arg;
	struct rev_item *it;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct rev_item *items =
			realloc(l->items, cap * sizeof(*items));

		if (!items)
			return -ENOMEM;
		l->items = items;
		l->cap = cap;
	}
	it = &l->items[l->n++];
	memcpy(it->name, r->rev, sizeof(it->name));
	it->pinned = r->pinned;
	memcpy(it->commit, r->commit, sizeof(it->commit));
	it->listed = r->tree != 0;
	if (!r->pinned && r->rev[0] == '\0')
		l->has_default = true;
	else if (!r->pinned && strcmp(r->rev, DEFAULT_REF) == 0)
		l->has_main = true;
	return 0;
}

static int revs_get(struct fs_ctx *ctx, int64_t repo, struct rev_list *l)
{
	int rc;

	memset(l, 0, sizeof(*l));
	rc = db_report_revisions(ctx->cfg.store, repo, collect_rev, l);
	if (rc < 0) {
		free(l->items);
		return rc == -ENOMEM ? -ENOMEM : -EIO;
	}
	return 0;
}

/* The name under refs/ of a revision, or NULL for a pinned commit. */
static const char *ref_name(const struct rev_item *it)
{
	if (it->pinned)
		return NULL;
	return it->name[0] ? it->name : DEFAULT_REF;
}

/* The refs folder's path from refs/: "" for refs/ itself. */
static const char *refs_prefix(const struct node *dir)
{
	const char *p = strstr(dir->vpath, "/refs");

	p += strlen("/refs");
	return *p == '/' ? p + 1 : p;
}

/*
 * Whether prefix/name is a folder of refs/: some recorded revision lies
 * below it, or it is where the Hub keeps pull requests and conversions.
 */
static bool refs_folder(const struct rev_list *l, const char *full)
{
	size_t n = strlen(full);

	if (strcmp(full, "refs") == 0 || strcmp(full, "refs/pr") == 0 ||
	    strcmp(full, "refs/convert") == 0)
		return true;
	for (size_t i = 0; i < l->n; i++) {
		const char *r = ref_name(&l->items[i]);

		if (r && strncmp(r, full, n) == 0 && r[n] == '/')
			return true;
	}
	return false;
}

/*
 * A ref file: the commit the revision points to now, resolved as the
 * main tree resolves name@rev (the index while fresh, else the Hub), and
 * with its tree listed so that its snapshot folder exists.
 */
static int lookup_ref(struct fs_ctx *ctx, const struct node *dir,
		      const char *name, struct node **out)
{
	struct rev_list l;
	struct fs_repo r;
	struct node *n;
	const char *prefix = refs_prefix(dir), *rev;
	char *full = NULL;
	int rc;

	if (asprintf(&full, "%s%s%s", prefix, prefix[0] ? "/" : "", name) < 0)
		return -ENOMEM;
	rc = revs_get(ctx, dir->repo, &l);
	if (rc)
		goto out;
	if (refs_folder(&l, full)) {
		*out = new_hf(HF_REFS, dir, name);
		rc = *out ? 0 : -ENOMEM;
		goto out_revs;
	}
	rc = -ENOENT;
	if (hub_is_commit_id(full))
		goto out_revs; /* commits are snapshots, never refs */
	rev = full;
	if (strcmp(full, DEFAULT_REF) == 0 && !l.has_main && l.has_default)
		rev = NULL;
	rc = resolve_repo_at(ctx, dir->type, dir->repo_id, rev, &r);
	if (rc)
		goto out_revs;
	rc = -ENOENT; /* renamed: the repo's folder is a link elsewhere */
	if (strcmp(r.id, dir->repo_id) != 0)
		goto out_revs;
	rc = -ENOMEM;
	n = node_alloc(NODE_TEXT);
	if (!n)
		goto out_revs;
	*out = n;
	n->type = dir->type;
	n->repo = dir->repo;
	memcpy(n->commit, r.commit, sizeof(n->commit));
	n->expires = r.moving ? time(NULL) + ctx->cfg.revision_ttl : 0;
	n->text = strdup(r.commit);
	if (asprintf(&n->vpath, "%s/%s", dir->vpath, name) < 0)
		n->vpath = NULL;
	if (!n->text || !n->vpath) {
		node_free(n);
		*out = NULL;
		goto out_revs;
	}
	n->ino = ino_hash(HFCACHE_NAME, n->vpath);
	rc = 0;
out_revs:
	free(l.items);
out:
	free(full);
	return rc;
}

static int list_refs(struct fs_ctx *ctx, const struct node *dir, hf_name_fn cb,
		     void *arg)
{
	const char *prefix = refs_prefix(dir);
	size_t plen = strlen(prefix);
	struct rev_list l;
	int rc = revs_get(ctx, dir->repo, &l);

	for (size_t i = 0; rc == 0 && i < l.n; i++) {
		const char *r = ref_name(&l.items[i]), *slash;
		char part[256];

		/* A name that cannot be a path (an empty, "." or ".."
		   part) is no ref; the Hub has none such anyway. */
		if (!r || !l.items[i].listed || !hub_path_safe(r))
			continue;
		if (plen) {
			if (strncmp(r, prefix, plen) != 0 || r[plen] != '/')
				continue;
			r += plen + 1;
		}
		slash = strchr(r, '/');
		snprintf(part, sizeof(part), "%.*s",
			 (int)(slash ? (size_t)(slash - r) : strlen(r)), r);
		rc = cb(arg, part, slash ? S_IFDIR : S_IFREG);
	}
	free(l.items);
	return rc;
}

/* ---- Snapshots and blobs ------------------------------------------------ */

/* snapshots/<commit>: a commit's tree, from the store, else the Hub. */
static int lookup_snapshot(struct fs_ctx *ctx, const struct node *dir,
			   const char *name, struct node **out)
{
	struct db_tree tree;
	struct fs_repo r;
	struct node *n;
	int64_t mtime;
	int rc;

	if (!hub_is_commit_id(name))
		return -ENOENT;
	if (db_tree_find(ctx->cfg.store, dir->repo, name, &tree) == 0) {
		mtime = tree.mtime;
	} else {
		rc = resolve_repo_at(ctx, dir->type, dir->repo_id, name, &r);
		if (rc)
			return rc;
		if (strcmp(r.id, dir->repo_id) != 0)
			return -ENOENT;
		mtime = r.mtime;
	}
	n = node_alloc(NODE_DIR);
	if (!n)
		return -ENOMEM;
	n->type = dir->type;
	n->repo = dir->repo;
	memcpy(n->commit, name, sizeof(n->commit));
	n->mtime = mtime;
	n->repo_id = strdup(dir->repo_id);
	n->path = strdup("");
	n->expires = 0; /* a commit never moves */
	if (asprintf(&n->vpath, "%s/%s", dir->vpath, name) < 0)
		n->vpath = NULL;
	if (!n->repo_id || !n->path || !n->vpath) {
		node_free(n);
		return -ENOMEM;
	}
	n->ino = ino_hash(HFCACHE_NAME, n->vpath);
	*out = n;
	return 0;
}

static int list_snapshots(struct fs_ctx *ctx, const struct node *dir,
			  hf_name_fn cb, void *arg)
{
	struct rev_list l;
	int rc = revs_get(ctx, dir->repo, &l);

	for (size_t i = 0; rc == 0 && i < l.n; i++)
		if (l.items[i].listed)
			rc = cb(arg, l.items[i].commit, S_IFDIR);
	free(l.items);
	return rc;
}

/* blobs/<etag>: the file of some tree of the repo with that content. */
static int lookup_blob(struct fs_ctx *ctx, const struct node *dir,
		       const char *name, struct node **out)
{
	struct db_blob_file f;
	struct node *n;
	int rc = db_blob_where(ctx->cfg.store, dir->repo, name, &f);

	if (rc == -ENOENT || rc == -EINVAL)
		return -ENOENT;
	if (rc < 0)
		return rc == -ENOMEM ? -ENOMEM : -EIO;
	n = node_alloc(NODE_FILE);
	if (!n)
		return -ENOMEM;
	n->type = dir->type;
	n->repo = dir->repo;
	memcpy(n->commit, f.commit, sizeof(n->commit));
	memcpy(n->etag, name, strlen(name) + 1);
	n->size = f.size;
	n->lfs = f.lfs;
	memcpy(n->xet, f.xet, sizeof(n->xet));
	n->mtime = f.mtime;
	n->repo_id = strdup(dir->repo_id);
	n->path = strdup(f.path);
	if (asprintf(&n->vpath, "%s/%s", dir->vpath, name) < 0)
		n->vpath = NULL;
	if (!n->repo_id || !n->path || !n->vpath) {
		node_free(n);
		return -ENOMEM;
	}
	n->ino = ino_hash(HFCACHE_NAME, n->vpath);
	*out = n;
	return 0;
}

struct blob_names {
	hf_name_fn cb;
	void *arg;
};

static int blob_name(void *arg, const char *etag)
{
	struct blob_names *b = arg;

	return b->cb(b->arg, etag, S_IFREG);
}

/* ---- trees/<commit>.json ------------------------------------------------ */

/* s as a JSON string: hub_path_safe() paths hold no control character. */
static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

struct tree_json {
	FILE *f;
	bool first;
};

/*
 * One file: "size" and "blob_id" (the git blob id), and for LFS files
 * "lfs_sha256", "lfs_size" and, when xet-backed, "xet_hash".  A tree listed
 * before the store kept LFS files' blob ids cannot be written: -ENOENT.
 */
static int json_file(void *arg, const struct db_report_file *rf)
{
	struct tree_json *t = arg;
	unsigned long long size = (unsigned long long)rf->size;

	if (rf->lfs && !rf->oid[0])
		return -ENOENT;
	fputs(t->first ? "\n" : ",\n", t->f);
	t->first = false;
	fputs("    ", t->f);
	json_string(t->f, rf->path);
	fprintf(t->f, ": {\"size\": %llu, \"blob_id\": \"%s\"", size,
		rf->lfs ? rf->oid : rf->etag);
	if (rf->lfs)
		fprintf(t->f, ", \"lfs_sha256\": \"%s\", \"lfs_size\": %llu",
			rf->etag, size);
	if (rf->xet[0])
		fprintf(t->f, ", \"xet_hash\": \"%s\"", rf->xet);
	fputc('}', t->f);
	return 0;
}

/* The JSON of a tree in the store (caller frees), or ENOENT, EIO. */
static int tree_json(struct fs_ctx *ctx, int64_t tree, char **out)
{
	struct tree_json t = { .first = true };
	size_t len;
	int rc;

	*out = NULL;
	t.f = open_memstream(out, &len);
	if (!t.f)
		return -ENOMEM;
	fputs("{\"format_version\": 1, \"files\": {", t.f);
	rc = db_report_files(ctx->cfg.store, tree, json_file, &t);
	fputs(t.first ? "}}\n" : "\n}}\n", t.f);
	if (fclose(t.f) != 0 && rc == 0)
		rc = -ENOMEM;
	if (rc < 0) {
		free(*out);
		*out = NULL;
		return rc == -ENOENT ? -ENOENT : rc == -ENOMEM ? -ENOMEM : -EIO;
	}
	return 0;
}

#define JSON_SUFFIX ".json"

/* trees/<commit>.json: made from the store's tree, listed first if new. */
static int lookup_tree(struct fs_ctx *ctx, const struct node *dir,
		       const char *name, struct node **out)
{
	char commit[41];
	struct db_tree tree;
	struct fs_repo r;
	struct node *n;
	int rc;

	if (strlen(name) != 40 + strlen(JSON_SUFFIX) ||
	    strcmp(name + 40, JSON_SUFFIX) != 0)
		return -ENOENT;
	memcpy(commit, name, 40);
	commit[40] = '\0';
	if (!hub_is_commit_id(commit))
		return -ENOENT;
	if (db_tree_find(ctx->cfg.store, dir->repo, commit, &tree) < 0) {
		rc = resolve_repo_at(ctx, dir->type, dir->repo_id, commit, &r);
		if (rc)
			return rc;
		if (db_tree_find(ctx->cfg.store, dir->repo, commit, &tree) < 0)
			return -ENOENT;
	}
	n = node_alloc(NODE_TEXT);
	if (!n)
		return -ENOMEM;
	n->type = dir->type;
	n->repo = dir->repo;
	memcpy(n->commit, commit, sizeof(n->commit));
	n->mtime = tree.mtime;
	rc = tree_json(ctx, tree.id, &n->text);
	if (rc == 0 && asprintf(&n->vpath, "%s/%s", dir->vpath, name) < 0) {
		n->vpath = NULL;
		rc = -ENOMEM;
	}
	if (rc) {
		node_free(n);
		return rc;
	}
	n->ino = ino_hash(HFCACHE_NAME, n->vpath);
	*out = n;
	return 0;
}

/* The commits whose tree the store holds with everything the JSON needs. */
static int list_trees(struct fs_ctx *ctx, const struct node *dir, hf_name_fn cb,
		      void *arg)
{
	struct rev_list l;
	struct db_tree tree;
	char name[64], *json;
	int rc = revs_get(ctx, dir->repo, &l);

	for (size_t i = 0; rc == 0 && i < l.n; i++) {
		if (!l.items[i].listed ||
		    db_tree_find(ctx->cfg.store, dir->repo, l.items[i].commit,
				 &tree) < 0)
			continue;
		rc = tree_json(ctx, tree.id, &json);
		free(json);
		if (rc == -ENOENT) {
			rc = 0;
			continue;
		}
		snprintf(name, sizeof(name), "%s%s", l.items[i].commit,
			 JSON_SUFFIX);
		if (rc == 0)
			rc = cb(arg, name, S_IFREG);
	}
	free(l.items);
	return rc;
}

/* ---- The view's folders ------------------------------------------------- */

static const char *const repo_children[] = { "blobs", "refs", "snapshots",
					     "trees" };
static const enum hf_folder repo_kinds[] = { HF_BLOBS, HF_REFS, HF_SNAPSHOTS,
					     HF_TREES };
#define N_CHILDREN (sizeof(repo_children) / sizeof(repo_children[0]))

int hfcache_child(struct fs_ctx *ctx, struct node *parent, const char *name,
		  struct node **out)
{
	*out = NULL;
	switch (parent->hf) {
	case HF_ROOT:
		return lookup_repo(ctx, parent, name, out);
	case HF_REPO:
		for (size_t i = 0; i < N_CHILDREN; i++) {
			if (strcmp(name, repo_children[i]) == 0) {
				*out = new_hf(repo_kinds[i], parent, name);
				return *out ? 0 : -ENOMEM;
			}
		}
		return -ENOENT;
	case HF_REFS:
		return lookup_ref(ctx, parent, name, out);
	case HF_SNAPSHOTS:
		return lookup_snapshot(ctx, parent, name, out);
	case HF_BLOBS:
		return lookup_blob(ctx, parent, name, out);
	case HF_TREES:
		return lookup_tree(ctx, parent, name, out);
	}
	return -ENOENT;
}

struct repo_names {
	hf_name_fn cb;
	void *arg;
};

static int repo_name(void *arg, const struct db_repo *r)
{
	struct repo_names *rn = arg;
	char *name;
	int rc;

	/*
	 * An old or legacy id the store was asked for is listed as a link to
	 * its repo's folder: a cache huggingface_hub fills under that id has
	 * a folder by that name, and its scanner follows the link.
	 */
	if (r->type != HUB_MODEL && r->type != HUB_DATASET &&
	    r->type != HUB_SPACE)
		return 0;
	name = folder_name(r->type, r->name);
	if (!name)
		return -ENOMEM;
	rc = rn->cb(rn->arg, name, r->canonical[0] ? S_IFLNK : S_IFDIR);
	free(name);
	return rc;
}

int hfcache_list(struct fs_ctx *ctx, struct node *dir, hf_name_fn cb, void *arg)
{
	struct repo_names rn = { cb, arg };
	struct blob_names bn = { cb, arg };
	int rc = 0;

	switch (dir->hf) {
	case HF_ROOT:
		rc = db_report_repos(ctx->cfg.store, repo_name, &rn);
		break;
	case HF_REPO:
		for (size_t i = 0; rc == 0 && i < N_CHILDREN; i++)
			rc = cb(arg, repo_children[i], S_IFDIR);
		break;
	case HF_REFS:
		return list_refs(ctx, dir, cb, arg);
	case HF_SNAPSHOTS:
		return list_snapshots(ctx, dir, cb, arg);
	case HF_BLOBS:
		rc = db_repo_blobs(ctx->cfg.store, dir->repo, blob_name, &bn);
		break;
	case HF_TREES:
		return list_trees(ctx, dir, cb, arg);
	}
	return rc < 0 && rc != -ENOMEM ? -EIO : rc;
}

/*
 * Snapshot entries.  A file at depth d (its path has d slashes) links to
 * "../" x (d + 2) + "blobs/<etag>": up out of its folders, the commit's
 * folder and snapshots/.
 */
struct node *hfcache_entry(const struct node *dir, struct node *n)
{
	struct node *l = NULL;
	size_t depth = 0, size;
	char *p;

	if (asprintf(&n->vpath, "%s/%s", dir->vpath,
		     n->path + (dir->path[0] ? strlen(dir->path) + 1 : 0)) <
	    0) {
		n->vpath = NULL;
		goto fail;
	}
	n->ino = ino_hash(HFCACHE_NAME, n->vpath);
	if (n->kind == NODE_DIR)
		return n;
	l = node_alloc(NODE_LINK);
	if (!l)
		goto fail;
	for (p = n->path; *p; p++)
		depth += *p == '/';
	size = 3 * (depth + 2) + strlen("blobs/") + strlen(n->etag) + 1;
	l->target = malloc(size);
	if (!l->target)
		goto fail;
	p = l->target;
	for (size_t i = 0; i < depth + 2; i++, p += 3)
		memcpy(p, "../", 3);
	snprintf(p, size - (size_t)(p - l->target), "blobs/%s", n->etag);
	l->ino = n->ino;
	memcpy(l->commit, n->commit, sizeof(l->commit));
	l->vpath = n->vpath;
	n->vpath = NULL;
	node_free(n);
	return l;
fail:
	node_free(l);
	node_free(n);
	return NULL;
}

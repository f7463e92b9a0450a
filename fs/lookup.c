/*
 * lookup.c - from a name under a folder to a node (DESIGN.md section 1),
 * from the values the resolver (resolve.c) returns.
 *
 *   root, datasets/, spaces/   owners, legacy ids (symlinks), nothing else
 *   owner/                     repos: name[@rev], a renamed id is a symlink
 *   repo folders               entries of the commit's tree, from the index
 */
#include "front.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Split "name@rev" (rev percent-decoded); *rev is NULL without '@'. */
static int split_rev(const char *name, char **base, char **rev)
{
	const char *at = strchr(name, '@');

	*rev = NULL;
	*base = at ? strndup(name, (size_t)(at - name)) : strdup(name);
	if (!*base)
		return -ENOMEM;
	if (!at)
		return 0;
	if (at[1] == '\0' || hub_unescape(at + 1, rev) < 0 ||
	    strlen(*rev) > 255) {
		free(*base);
		free(*rev);
		*base = *rev = NULL;
		return -ENOENT;
	}
	return 0;
}

static struct node *new_owner(enum hub_repo_type type, const char *owner)
{
	struct node *n = node_alloc(NODE_OWNER);

	if (!n)
		return NULL;
	n->type = type;
	n->owner = strdup(owner);
	n->ino = ino_hash(hub_type_plural(type), owner);
	if (!n->owner) {
		node_free(n);
		return NULL;
	}
	return n;
}

/* A symlink to prefix + target [+ "@" + escaped rev]. */
static struct node *new_link(const char *prefix, const char *target,
			     const char *rev)
{
	struct node *n = node_alloc(NODE_LINK);
	char *erev = rev ? hub_escape_segment(rev) : NULL;
	size_t size;

	if (!n || (rev && !erev))
		goto fail;
	size = strlen(prefix) + strlen(target) + (erev ? strlen(erev) : 0) + 2;
	n->target = malloc(size);
	if (!n->target)
		goto fail;
	snprintf(n->target, size, "%s%s%s%s", prefix, target, erev ? "@" : "",
		 erev ? erev : "");
	n->ino = ino_hash("link", n->target);
	free(erev);
	return n;
fail:
	free(erev);
	node_free(n);
	return NULL;
}

/* A name at the root or under datasets/ or spaces/: a folder or a link. */
static int resolve_top(struct fs_ctx *ctx, enum hub_repo_type type,
		       const char *name, struct node **out)
{
	char *base, *rev, canonical[256];
	bool owner;
	int rc = split_rev(name, &base, &rev);

	if (rc)
		return rc;
	rc = resolve_top_name(ctx, type, base, rev, &owner, canonical);
	if (rc == 0) {
		*out = owner ? new_owner(type, base)
			     : new_link("", canonical, rev);
		rc = *out ? 0 : -ENOMEM;
	}
	free(base);
	free(rev);
	return rc;
}

/* The root folder of a resolved repo. */
static struct node *repo_node(struct fs_ctx *ctx, const struct fs_repo *r)
{
	struct node *n = node_alloc(NODE_DIR);

	if (!n)
		return NULL;
	n->type = r->type;
	n->repo = r->repo;
	n->repo_id = strdup(r->id);
	n->path = strdup("");
	memcpy(n->commit, r->commit, sizeof(n->commit));
	n->mtime = r->mtime;
	n->ino = ino_hash(n->commit, "");
	n->expires = r->moving ? time(NULL) + ctx->cfg.revision_ttl : 0;
	if (!n->repo_id || !n->path) {
		node_free(n);
		return NULL;
	}
	return n;
}

/* A repo folder (name[@rev]) under an owner folder: a folder or a link. */
static int resolve_repo(struct fs_ctx *ctx, struct node *owner,
			const char *name, struct node **out)
{
	struct fs_repo r;
	char *base, *rev, id[256];
	int rc = split_rev(name, &base, &rev);

	if (rc)
		return rc;
	rc = -ENOENT;
	if ((size_t)snprintf(id, sizeof(id), "%s/%s", owner->owner, base) >=
	    sizeof(id))
		goto out;
	rc = resolve_repo_rev(ctx, owner->type, id, rev, &r);
	if (rc)
		goto out;
	if (strcmp(r.id, id) != 0)
		*out = new_link("../", r.id, rev);
	else
		*out = repo_node(ctx, &r);
	rc = *out ? 0 : -ENOMEM;
out:
	free(base);
	free(rev);
	return rc;
}

static char *join_path(const char *dir, const char *name)
{
	size_t size = strlen(dir) + strlen(name) + 2;
	char *p = malloc(size);

	if (p)
		snprintf(p, size, "%s%s%s", dir, *dir ? "/" : "", name);
	return p;
}

/* A node for an entry of a repo folder. */
struct node *entry_node(const struct node *dir, const struct db_entry *e)
{
	struct node *n = node_alloc(e->is_dir ? NODE_DIR : NODE_FILE);

	if (!n)
		return NULL;
	n->type = dir->type;
	n->repo = dir->repo;
	memcpy(n->commit, dir->commit, sizeof(n->commit));
	n->mtime = dir->mtime;
	n->size = e->size;
	memcpy(n->etag, e->etag, sizeof(n->etag));
	n->lfs = e->lfs;
	memcpy(n->xet, e->xet, sizeof(n->xet));
	n->repo_id = strdup(dir->repo_id);
	n->path = join_path(dir->path, e->name);
	if (!n->repo_id || !n->path) {
		node_free(n);
		return NULL;
	}
	n->ino = ino_hash(n->commit, n->path);
	return dir->vpath ? hfcache_entry(dir, n) : n;
}

/* The repo at the commit of a folder of its tree. */
static struct fs_repo node_repo(const struct node *n)
{
	struct fs_repo r = { .type = n->type,
			     .repo = n->repo,
			     .mtime = n->mtime };

	snprintf(r.id, sizeof(r.id), "%s", n->repo_id);
	memcpy(r.commit, n->commit, sizeof(r.commit));
	return r;
}

static int resolve_entry(struct fs_ctx *ctx, struct node *dir, const char *name,
			 struct node **out)
{
	struct fs_repo r = node_repo(dir);
	struct db_entry e;
	int64_t tree;
	int rc = resolve_tree(ctx, &r, &tree);

	if (rc)
		return rc;
	rc = db_entry_lookup(ctx->cfg.store, tree, dir->path, name, &e);
	if (rc < 0)
		return rc == -ENOENT ? -ENOENT : -EIO;
	*out = entry_node(dir, &e);
	return *out ? 0 : -ENOMEM;
}

int lookup_child(struct fs_ctx *ctx, struct node *parent, const char *name,
		 struct node **out)
{
	*out = NULL;
	switch (parent->kind) {
	case NODE_ROOT:
		if (strcmp(name, HFCACHE_NAME) == 0)
			return hfcache_root(out); /* costs no Hub request */
		if (name[0] == '.')
			return -ENOENT;
		if (strcmp(name, "datasets") == 0 ||
		    strcmp(name, "spaces") == 0) {
			struct node *n = node_alloc(NODE_TYPEDIR);

			if (!n)
				return -ENOMEM;
			n->type = name[0] == 'd' ? HUB_DATASET : HUB_SPACE;
			n->ino = ino_hash("type", name);
			*out = n;
			return 0;
		}
		return resolve_top(ctx, HUB_MODEL, name, out);
	case NODE_TYPEDIR:
		if (name[0] == '.')
			return -ENOENT;
		return resolve_top(ctx, parent->type, name, out);
	case NODE_OWNER:
		if (name[0] == '.')
			return -ENOENT;
		return resolve_repo(ctx, parent, name, out);
	case NODE_DIR:
		return resolve_entry(ctx, parent, name, out);
	case NODE_HF:
		return hfcache_child(ctx, parent, name, out);
	default:
		return -ENOTDIR;
	}
}

int list_names(struct fs_ctx *ctx, struct node *dir, db_name_fn cb, void *arg)
{
	switch (dir->kind) {
	case NODE_ROOT:
		cb(arg, HFCACHE_NAME);
		cb(arg, "datasets");
		cb(arg, "spaces");
		return resolve_owners(ctx, HUB_MODEL, cb, arg);
	case NODE_TYPEDIR:
		return resolve_owners(ctx, dir->type, cb, arg);
	case NODE_OWNER:
		return resolve_owner_repos(ctx, dir->type, dir->owner, cb, arg);
	default:
		return -ENOTDIR;
	}
}

int list_entries(struct fs_ctx *ctx, struct node *dir, db_entry_fn cb,
		 void *arg)
{
	struct fs_repo r = node_repo(dir);
	int64_t tree;
	int rc = resolve_tree(ctx, &r, &tree);

	if (rc)
		return rc;
	rc = db_dir_list(ctx->cfg.store, tree, dir->path, cb, arg);
	return rc < 0 && rc != -ENOMEM ? -EIO : rc;
}

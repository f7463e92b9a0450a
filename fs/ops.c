/*
 * ops.c - the FUSE low-level handlers.  Each replies exactly once.  The
 * helpers below them return 0 or a negative errno, flipped here, at the
 * reply.
 *
 * The mount is read-only: write-type requests get EROFS (the kernel sees
 * the "ro" option too).  Attributes follow DESIGN.md section 1: files
 * 0444, folders 0555, owned by the mounting user, mtime the commit time,
 * st_blocks the full size.
 */
#include "front.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#define IMMUTABLE_TIMEOUT 86400.0 /* names and attributes inside a commit */
#define LISTING_TIMEOUT	  60.0	  /* owners, repos and links above them */

static struct fs_mount *mount_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void node_attr(struct fs_mount *m, const struct node *n, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = n->kind == NODE_ROOT ? FUSE_ROOT_ID : n->ino;
	st->st_uid = m->uid;
	st->st_gid = m->gid;
	st->st_blksize = 4096;
	st->st_mtim.tv_sec = n->kind == NODE_DIR || n->kind == NODE_FILE
				     ? n->mtime
				     : m->started;
	st->st_ctim = st->st_atim = st->st_mtim;
	switch (n->kind) {
	case NODE_FILE:
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)n->size;
		/* Never sparse-looking: cp would copy holes as zeros. */
		st->st_blocks = (blkcnt_t)((n->size + 511) / 512);
		break;
	case NODE_TEXT:
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)strlen(n->text);
		st->st_blocks = (blkcnt_t)((st->st_size + 511) / 512);
		break;
	case NODE_LINK:
		st->st_mode = S_IFLNK | 0777;
		st->st_nlink = 1;
		st->st_size = (off_t)strlen(n->target);
		break;
	default:
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		break;
	}
}

/* How long the kernel may keep a name of parent's: a moving revision's
   repo folder only until its next check. */
static double entry_timeout(struct fs_mount *m, const struct node *n)
{
	if (n->kind == NODE_DIR && n->path[0] == '\0')
		return n->expires ? (double)m->ctx.cfg.revision_ttl
				  : IMMUTABLE_TIMEOUT;
	if (n->kind == NODE_DIR || n->kind == NODE_FILE)
		return IMMUTABLE_TIMEOUT;
	if (n->kind == NODE_TEXT) /* a ref of .hf-cache/ */
		return n->expires ? (double)m->ctx.cfg.revision_ttl
				  : IMMUTABLE_TIMEOUT;
	return LISTING_TIMEOUT;
}

static void fill_entry(struct fs_mount *m, const struct node *n,
		       struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = n->id;
	e->attr_timeout = e->entry_timeout = entry_timeout(m, n);
	node_attr(m, n, &e->attr);
}

/*
 * Negotiation with the kernel.  Replies go out by splice where the kernel
 * allows it (no copy through our memory), and many reads may wait on the
 * network at once: readahead requests are "background" ones, which the
 * kernel caps at max_background.
 */
static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->max_read = FS_MAX_READ; /* as the mount option (session.c) */
	/* The kernel keeps the smaller of this and the bdi's, which fs_run
	   raised before the loop began (session.c raise_readahead). */
	conn->max_readahead = FS_READAHEAD;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_mount *m = mount_of(req);
	struct node *p = node_get(&m->nodes, parent), *n;
	struct fuse_entry_param e;
	int rc;

	if (!p) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	rc = lookup_child(&m->ctx, p, name, &n);
	if (rc == -ENOENT && p->kind == NODE_DIR) {
		/* A miss inside a commit stays a miss: cache it. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = IMMUTABLE_TIMEOUT;
		fuse_reply_entry(req, &e);
		return;
	}
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	n = node_publish(&m->nodes, n, parent, name);
	fill_entry(m, n, &e);
	if (fuse_reply_entry(req, &e) != 0)
		node_forget(&m->nodes, n->id, 1);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	node_forget(&mount_of(req)->nodes, ino, nlookup);
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	struct fs_mount *m = mount_of(req);

	for (size_t i = 0; i < count; i++)
		node_forget(&m->nodes, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs_mount *m = mount_of(req);
	struct node *n = node_get(&m->nodes, ino);
	struct stat st;

	(void)fi;
	if (!n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	node_attr(m, n, &st);
	fuse_reply_attr(req, &st, entry_timeout(m, n));
}

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct node *n = node_get(&mount_of(req)->nodes, ino);

	if (!n || n->kind != NODE_LINK)
		fuse_reply_err(req, n ? EINVAL : ESTALE);
	else
		fuse_reply_readlink(req, n->target);
}

/* ---- Folders ------------------------------------------------------------
 * opendir takes a snapshot of the names, so readdir at any offset is
 * consistent for the life of the handle.
 */
struct dirent_snap {
	char *name;
	mode_t type;	       /* above the repos: S_IFDIR or S_IFREG */
	struct node *node;     /* readdirplus: an unpublished node, or NULL */
	struct db_entry entry; /* folders in repos: the index's entry */
};

struct dir_handle {
	struct dirent_snap *items;
	size_t n, cap;
	struct node *dir;
};

static int snap_add(struct dir_handle *h, const char *name,
		    const struct db_entry *e)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 64;
		struct dirent_snap *items =
			realloc(h->items, cap * sizeof(*items));

		if (!items)
			return -ENOMEM;
		h->items = items;
		h->cap = cap;
	}
	memset(&h->items[h->n], 0, sizeof(h->items[h->n]));
	h->items[h->n].name = strdup(name);
	if (!h->items[h->n].name)
		return -ENOMEM;
	if (e)
		h->items[h->n].entry = *e;
	h->n++;
	return 0;
}

static int snap_name(void *arg, const char *name)
{
	return snap_add(arg, name, NULL);
}

static int snap_typed(void *arg, const char *name, mode_t type)
{
	struct dir_handle *h = arg;
	int rc = snap_add(h, name, NULL);

	if (rc == 0)
		h->items[h->n - 1].type = type;
	return rc;
}

static int snap_entry(void *arg, const struct db_entry *e)
{
	return snap_add(arg, e->name, e);
}

static int cmp_snap(const void *a, const void *b)
{
	return strcmp(((const struct dirent_snap *)a)->name,
		      ((const struct dirent_snap *)b)->name);
}

/* Sort and drop repeated names (owners come from several sources). */
static void snap_unique(struct dir_handle *h)
{
	size_t out = 0;

	if (h->n == 0) /* an owner with no repos: items may be NULL */
		return;
	qsort(h->items, h->n, sizeof(*h->items), cmp_snap);
	for (size_t i = 0; i < h->n; i++) {
		if (out > 0 &&
		    strcmp(h->items[out - 1].name, h->items[i].name) == 0) {
			free(h->items[i].name);
			continue;
		}
		h->items[out++] = h->items[i];
	}
	h->n = out;
}

static void dir_handle_free(struct dir_handle *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n; i++)
		free(h->items[i].name);
	free(h->items);
	free(h);
}

static void fs_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs_mount *m = mount_of(req);
	struct node *n = node_get(&m->nodes, ino);
	struct dir_handle *h;
	int rc;

	if (!n || n->kind == NODE_FILE || n->kind == NODE_LINK ||
	    n->kind == NODE_TEXT) {
		fuse_reply_err(req, n ? ENOTDIR : ESTALE);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->dir = n;
	if (n->kind == NODE_DIR) {
		rc = list_entries(&m->ctx, n, snap_entry, h);
	} else if (n->kind == NODE_HF) {
		rc = hfcache_list(&m->ctx, n, snap_typed, h);
		snap_unique(h);
	} else {
		rc = list_names(&m->ctx, n, snap_name, h);
		snap_unique(h);
	}
	if (rc) {
		dir_handle_free(h);
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uintptr_t)h;
	/* A commit's folders never change: let the kernel keep them. */
	fi->cache_readdir = fi->keep_cache = n->kind == NODE_DIR;
	fuse_reply_open(req, fi);
}

/*
 * One directory entry for readdir(plus).  In repo folders readdirplus
 * hands out real entries (each counts as a lookup); above the repos it
 * gives names only (node id 0), since resolving every repo of an owner
 * would cost a Hub request each.
 */
static size_t add_dirent(fuse_req_t req, struct dir_handle *h, size_t i,
			 char *buf, size_t size, bool plus)
{
	struct fs_mount *m = mount_of(req);
	struct dirent_snap *d = &h->items[i];
	struct fuse_entry_param e;
	struct node *n = NULL;
	size_t len;

	memset(&e, 0, sizeof(e));
	e.attr.st_ino = 2;
	e.attr.st_mode = d->type ? d->type : S_IFDIR;
	if (h->dir->kind == NODE_DIR) {
		n = entry_node(h->dir, &d->entry);
		if (!n)
			return 0;
		node_attr(m, n, &e.attr);
	}
	if (!plus) {
		node_free(n);
		return fuse_add_direntry(req, buf, size, d->name, &e.attr,
					 (off_t)i + 1);
	}
	if (n) {
		n->nlookup = 0;
		len = fuse_add_direntry_plus(req, NULL, 0, d->name, NULL, 0);
		if (len > size) {
			node_free(n);
			return len;
		}
		n = node_publish(&m->nodes, n, h->dir->id, d->name);
		fill_entry(m, n, &e);
	}
	return fuse_add_direntry_plus(req, buf, size, d->name, &e,
				      (off_t)i + 1);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct dir_handle *h = (struct dir_handle *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	size_t used = 0;

	(void)ino;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t i = (size_t)off; i < h->n; i++) {
		size_t len =
			add_dirent(req, h, i, buf + used, size - used, plus);

		if (len == 0 || len > size - used)
			break;
		used += len;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	(void)ino;
	dir_handle_free((struct dir_handle *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

/* ---- Files ------------------------------------------------------------ */

/* A file node's identity, for the engine (valid while n is). */
static struct engine_file node_file(const struct node *n)
{
	return (struct engine_file){
		.type = n->type,
		.repo_id = n->repo_id,
		.commit = n->commit,
		.path = n->path,
		.etag = n->etag,
		.size = n->size,
		.lfs = n->lfs,
		.xet_hash = n->xet,
	};
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_mount *m = mount_of(req);
	struct node *n = node_get(&m->nodes, ino);
	struct engine_handle *h;
	struct engine_file f;
	bool keep_cache;
	int rc;

	if (!n || (n->kind != NODE_FILE && n->kind != NODE_TEXT)) {
		fuse_reply_err(req, n ? EISDIR : ESTALE);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY ||
	    (fi->flags & (O_TRUNC | O_APPEND))) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (n->kind == NODE_TEXT) { /* read from the node itself */
		fi->fh = 0;
		fuse_reply_open(req, fi);
		return;
	}
	f = node_file(n);
	/* The node id is the tag: a dropped blob's pages are invalidated. */
	rc = engine_open(m->ctx.eng, &f, n->id, &h, &keep_cache);
	if (rc < 0) {
		fuse_reply_err(req, rc == -ENOSPC ? ENOSPC : EIO);
		return;
	}
	fi->fh = (uintptr_t)h;
	/*
	 * Content is immutable per etag: the kernel keeps its pages across
	 * opens, except at the first open after the blob failed its check.
	 */
	fi->keep_cache = keep_cache;
	if (fuse_reply_open(req, fi) != 0)
		engine_close(h);
}

/* The engine answered a read: its bytes go from the blob's file. */
static void read_done(void *arg, int rc, int fd, uint64_t off, size_t size)
{
	fuse_req_t req = arg;
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (size == 0) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = fd;
	buf.buf[0].pos = (off_t)off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

/* An interrupted read still waiting: the engine answers it with EINTR. */
static void read_interrupted(fuse_req_t req, void *data)
{
	engine_cancel(data, req);
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs_mount *m = mount_of(req);
	struct node *n = node_get(&m->nodes, ino);
	struct engine_handle *h = (struct engine_handle *)(uintptr_t)fi->fh;
	size_t len;
	int rc;

	if (n && n->kind == NODE_TEXT) {
		len = strlen(n->text);
		off = off < 0 || (size_t)off > len ? (off_t)len : off;
		len -= (size_t)off;
		fuse_reply_buf(req, n->text + off, size < len ? size : len);
		return;
	}
	fuse_req_interrupt_func(req, read_interrupted, h);
	if (fuse_req_interrupted(req)) {
		fuse_reply_err(req, EINTR);
		return;
	}
	rc = engine_wait(h, (uint64_t)off, size, ENGINE_READAHEAD, read_done,
			 req);
	if (rc < 0)
		fuse_reply_err(req, -rc);
}

static void fs_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	(void)ino;
	if (fi->fh) /* 0: a TEXT node's, which holds nothing */
		engine_close((struct engine_handle *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_mount *m = mount_of(req);
	struct statvfs sv;

	(void)ino;
	if (statvfs(db_store_dir(m->ctx.cfg.store), &sv) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	sv.f_namemax = 255;
	sv.f_flag |= ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

/* ---- Extended attributes ------------------------------------------------
 * Only with -o xattr.  Otherwise the first getxattr and the first
 * listxattr answer ENOSYS: the kernel then answers every later one of the
 * mount with EOPNOTSUPP itself, so "ls -l" (SELinux label, ACLs) costs no
 * round trip per file.
 */

static const char xattr_names[] =
	"user.hubfs.commit\0user.hubfs.etag\0user.hubfs.cached";

static int xattr_value(struct fs_mount *m, const struct node *n,
		       const char *name, char *buf, size_t size)
{
	uint64_t have = 0;

	if (n->kind != NODE_FILE && n->kind != NODE_DIR)
		return -ENODATA;
	if (strcmp(name, "user.hubfs.commit") == 0)
		return snprintf(buf, size, "%s", n->commit);
	if (n->kind != NODE_FILE)
		return -ENODATA;
	if (strcmp(name, "user.hubfs.etag") == 0)
		return snprintf(buf, size, "%s", n->etag);
	if (strcmp(name, "user.hubfs.cached") == 0) {
		have = engine_cached_bytes(m->ctx.eng, n->etag);
		return snprintf(buf, size, "%llu", (unsigned long long)have);
	}
	return -ENODATA;
}

static void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	struct fs_mount *m = mount_of(req);
	struct node *n = node_get(&m->nodes, ino);
	char value[128];
	int len;

	if (!m->ctx.cfg.xattr) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (!n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	len = xattr_value(m, n, name, value, sizeof(value));
	if (len < 0)
		fuse_reply_err(req, -len);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)len);
	else if ((size_t)len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, value, (size_t)len);
}

static void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs_mount *m = mount_of(req);
	struct node *n = node_get(&m->nodes, ino);
	size_t len = 0;

	if (!m->ctx.cfg.xattr) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (n && n->kind == NODE_FILE)
		len = sizeof(xattr_names);
	else if (n && n->kind == NODE_DIR)
		len = sizeof("user.hubfs.commit");
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, xattr_names, len);
}

/* ---- Everything that would write ---------------------------------------- */

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	(void)ino, (void)attr, (void)to_set, (void)fi;
	fuse_reply_err(req, EROFS);
}

static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	(void)parent, (void)name, (void)mode, (void)rdev;
	fuse_reply_err(req, EROFS);
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	(void)parent, (void)name, (void)mode;
	fuse_reply_err(req, EROFS);
}

static void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent, (void)name;
	fuse_reply_err(req, EROFS);
}

static void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	(void)link, (void)parent, (void)name;
	fuse_reply_err(req, EROFS);
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	(void)parent, (void)name, (void)newparent, (void)newname, (void)flags;
	fuse_reply_err(req, EROFS);
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	(void)ino, (void)newparent, (void)newname;
	fuse_reply_err(req, EROFS);
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	(void)parent, (void)name, (void)mode, (void)fi;
	fuse_reply_err(req, EROFS);
}

static void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	(void)ino, (void)name, (void)value, (void)size, (void)flags;
	fuse_reply_err(req, EROFS);
}

static void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino, (void)name;
	fuse_reply_err(req, EROFS);
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = fs_init,
	.lookup = fs_lookup,
	.forget = fs_forget,
	.forget_multi = fs_forget_multi,
	.getattr = fs_getattr,
	.readlink = fs_readlink,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.readdirplus = fs_readdirplus,
	.releasedir = fs_releasedir,
	.open = fs_open,
	.read = fs_read,
	.release = fs_release,
	.statfs = fs_statfs,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.setattr = fs_setattr,
	.mknod = fs_mknod,
	.mkdir = fs_mkdir,
	.unlink = fs_unlink,
	.rmdir = fs_unlink,
	.symlink = fs_symlink,
	.rename = fs_rename,
	.link = fs_link,
	.create = fs_create,
	.setxattr = fs_setxattr,
	.removexattr = fs_removexattr,
};

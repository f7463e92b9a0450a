/*
 * front.h - the FUSE front of fs/: the only code that knows FUSE.
 *
 *   node.c     the table of FUSE nodes (lookup counts, reuse by name)
 *   lookup.c   names to nodes: owners, repos, revisions, entries, from the
 *              resolver's values
 *   hfcache.c  the same repos in huggingface_hub's cache layout, .hf-cache/
 *   ops.c      the FUSE low-level handlers
 *   session.c  mounting and the loop
 *   status.c   the socket that answers "hubfs status" and "hubfs refresh"
 *
 * Errors are 0 or a negative errno everywhere in fs/; ops.c flips the sign
 * once, at fuse_reply_err().
 */
#ifndef HUBFS_FS_FRONT_H
#define HUBFS_FS_FRONT_H

#include <fuse_lowlevel.h>

#include "internal.h"

/*
 * The largest read the kernel sends (a mount option, and the same in INIT).
 * A read's reply is spliced from the blob through a pipe, which can grow
 * to /proc/sys/fs/pipe-max-size (1 MiB by default).  libfuse 3.14 wants
 * the reply plus three pages of slack to fit (fuse_send_data_iov) and
 * otherwise copies the bytes through a buffer of its own: a read in
 * memory it just allocated, page faults, a second copy.  1 MiB less 16
 * KiB (252 pages) keeps every reply a splice.
 */
#define FS_MAX_READ (1024 * 1024 - 16384)
/* The kernel's readahead for the mount (session.c raise_readahead). */
#define FS_READAHEAD (1024 * 1024)

enum node_kind {
	NODE_ROOT,    /* the mount root */
	NODE_TYPEDIR, /* datasets/ or spaces/ */
	NODE_OWNER,   /* an owner's folder of repos of one type */
	NODE_LINK, /* a legacy or renamed id: a symlink to its canonical id */
	NODE_DIR,  /* a folder in a repo at a commit; path "" is the root */
	NODE_FILE, /* a file in a repo at a commit */
	NODE_TEXT, /* a small file whose content is text (a ref of the view) */
	NODE_HF,   /* a folder of .hf-cache/ above the snapshots (hf says which)
		    */
};

/* The folders of .hf-cache/ that are not folders of a commit's tree. */
enum hf_folder {
	HF_ROOT,      /* .hf-cache itself */
	HF_REPO,      /* models--org--name */
	HF_REFS,      /* refs/, or a folder of revisions containing '/' */
	HF_SNAPSHOTS, /* snapshots/ */
	HF_BLOBS,     /* blobs/ */
	HF_TREES,     /* trees/: <commit>.json, hub-api.md section 8.6 */
};

/*
 * A FUSE node.  Node ids are never reused while the process lives.  Every
 * field but nlookup and the hash links is set before the node is
 * published and never changes after, so handlers read them unlocked.
 */
struct node {
	uint64_t id;
	uint64_t nlookup;	/* protected by the table lock */
	struct node *next_id;	/* table lock */
	struct node *next_name; /* table lock */
	bool named;		/* in the name index; table lock */

	uint64_t parent; /* key of the name index, with name */
	char *name;

	enum node_kind kind;
	enum hub_repo_type type;
	uint64_t ino;  /* st_ino */
	char *owner;   /* OWNER */
	char *repo_id; /* DIR, FILE: the canonical "owner/name" */
	int64_t repo;  /* DIR, FILE: db repo row */
	char commit[41];
	int64_t tree;  /* DIR, FILE: db tree row */
	int64_t mtime; /* commit time */
	char *path;    /* DIR, FILE: path in the repo, "" root */
	uint64_t size; /* FILE */
	char etag[65];
	bool lfs;
	char xet[65];	   /* FILE: the tree's xetHash, "" when none */
	char *target;	   /* LINK */
	time_t expires;	   /* a branch's repo root or ref: re-resolve after */
	enum hf_folder hf; /* HF */
	char *vpath;	   /* in .hf-cache/: the path under it, else NULL */
	char *text;	   /* TEXT: the content */
};

struct node_table {
	pthread_mutex_t lock;
	struct node **by_id;
	struct node **by_name;
	size_t nbuckets; /* power of two, both arrays */
	size_t count;
	uint64_t next_id;
};

int node_table_init(struct node_table *t);
void node_table_destroy(struct node_table *t);
struct node *node_alloc(enum node_kind kind);
void node_free(struct node *n);
/* The node with this id (FUSE_ROOT_ID is the root), or NULL. */
struct node *node_get(struct node_table *t, uint64_t id);
/*
 * Publish n under (parent, name) with one lookup, or, when a node with the
 * same key and the same identity (same_node) is there, free n and count a
 * lookup on that one.  A different node under the key is unlinked from the
 * name index (it lives on until forgotten).  Returns the published node.
 */
struct node *node_publish(struct node_table *t, struct node *n, uint64_t parent,
			  const char *name);
void node_forget(struct node_table *t, uint64_t id, uint64_t nlookup);
/*
 * Call fn for each node published under a name, with the table lock held:
 * fn must not call into the table, and copies what it keeps.
 */
typedef void (*node_walk_fn)(void *arg, const struct node *n);
void node_walk_named(struct node_table *t, node_walk_fn fn, void *arg);

/* A mount: the resolver and engine context, and what FUSE needs. */
struct fs_mount {
	struct fs_ctx ctx;
	struct node_table nodes;
	uid_t uid;
	gid_t gid;
	time_t started;
	struct fuse_session *se; /* set before the engine starts */

	/* status.c: the socket; set up and torn down by fs_run's thread */
	int status_fd;	      /* listening, or -1 */
	int status_dir;	      /* <store>/mounts, or -1 */
	int status_wake;      /* eventfd: stop the thread */
	char status_name[32]; /* <pid>.sock */
	pthread_t status_thread;
};

/* lookup.c */
int lookup_child(struct fs_ctx *ctx, struct node *parent, const char *name,
		 struct node **out);
/* Names in a folder above the repos (root, datasets/, an owner). */
int list_names(struct fs_ctx *ctx, struct node *dir, db_name_fn cb, void *arg);
/* Entries of a folder in a repo; a non-zero return of cb stops. */
int list_entries(struct fs_ctx *ctx, struct node *dir, db_entry_fn cb,
		 void *arg);
struct node *entry_node(const struct node *dir, const struct db_entry *e);

/* hfcache.c: .hf-cache/, in the layout of hub-api.md section 8. */
#define HFCACHE_NAME ".hf-cache"
int hfcache_root(struct node **out);
int hfcache_child(struct fs_ctx *ctx, struct node *parent, const char *name,
		  struct node **out);
/* The names in an HF folder, each with its type: S_IFDIR, S_IFREG, S_IFLNK. */
typedef int (*hf_name_fn)(void *arg, const char *name, mode_t type);
int hfcache_list(struct fs_ctx *ctx, struct node *dir, hf_name_fn cb,
		 void *arg);
/*
 * Turn n, a new entry of a view's snapshot folder dir, into its view
 * form: folders stay folders, files become links into blobs/.  Frees n
 * and returns NULL on failure.
 */
struct node *hfcache_entry(const struct node *dir, struct node *n);

/*
 * status.c: the socket in <store>/mounts that answers "hubfs status" and
 * "hubfs refresh" while the session runs.  status_start returns 0 or a
 * negative errno (the mount then runs without it); status_stop removes
 * the socket and is a no-op when status_start failed.
 */
int status_start(struct fs_mount *m);
void status_stop(struct fs_mount *m);

/* ops.c */
extern const struct fuse_lowlevel_ops fs_ops;

uint64_t ino_hash(const char *a, const char *b);

#endif /* HUBFS_FS_FRONT_H */

/*
 * db.h - the store: the SQLite index and the blob files.  The whole
 * interface of db/.
 *
 * A store is a folder (mode 0700):
 *
 *     index.db        SQLite, WAL mode, schema version in PRAGMA
 *                     user_version, migrated on open
 *     blobs/<etag>    complete, verified contents, named by etag: the
 *                     sha256 for LFS files, the git blob sha1 otherwise
 *                     (huggingface_hub's names)
 *     partial/<etag>  blobs being fetched: sparse, blocks marked in the index
 *     mounts/         the status sockets of running mounts (fs/status.c)
 *     tmp/            test support only (db_blob_tmpfile)
 *
 * Several processes (mounts, pull, gc, status) use one store at the same
 * time.  Each thread gets its own SQLite connection (opened on first use,
 * closed with the store); writes run in BEGIN IMMEDIATE transactions with a
 * busy timeout.
 *
 * db/ knows nothing about HTTP or FUSE.  Functions return 0 or a negative
 * errno: -ENOENT when a row is absent, -EINVAL for an argument refused
 * (an invalid repo id, commit id, etag or path), -ENOSPC when the disk is
 * full, -ENOMEM, -EIO for any other SQLite failure (logged by the caller
 * from db_last_error()).  Every function may be called from any thread.
 *
 * The walks (db_owners, db_owner_repos, db_dir_list) call cb for each item
 * in order; a non-zero return from cb stops the walk and is returned.  cb
 * may call the other reading functions.  It should not write: the walk
 * holds a read snapshot, and a write from inside it fails (-EIO) when
 * another connection has written since the walk began.
 */
#ifndef HUBFS_DB_H
#define HUBFS_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hub.h"

struct db_store;

/*
 * The default store folder: $XDG_CACHE_HOME/hubfs, else ~/.cache/hubfs.
 * Caller frees.  NULL when neither HOME nor XDG_CACHE_HOME is set.
 */
char *db_default_dir(void);

/*
 * Create the folder (0700, parents too) if needed, open or create and
 * migrate the index.  -EPROTO when the index has a schema version newer
 * than this program knows.
 */
int db_store_open(struct db_store **out, const char *dir);
/*
 * A damaged index (SQLite finds it malformed or not a database, PRAGMA
 * quick_check fails, or it is empty beside blobs) is moved aside to
 * index.db.corrupt-<UTC time>, its WAL with it, and a new one is created;
 * the blob files, which only the old index vouched for, are removed and
 * fetched again on use.  db_store_repaired then returns one line saying
 * so, naming both files (NULL when nothing was repaired): the caller
 * shows it to the user.  Valid while the store is open.
 *
 * Another process that has the damaged index open at the time goes on
 * using it until it reopens the store.
 */
const char *db_store_repaired(const struct db_store *s);
/*
 * A look at the index of store folder dir without SQLite, creating and
 * changing nothing: -EIO (db_last_error says why) when its header is not
 * SQLite's, the file is shorter than the header says, or it is empty
 * beside blobs.  Damage inside the file is found only by opening it.  0
 * when it looks sound or does not exist.
 */
int db_index_inspect(const char *dir);
/*
 * The path of the index of store folder dir (its SQLite file), and
 * whether it exists: a store without one has never been opened, and
 * opening it would create it.  0, or -ENAMETOOLONG.
 */
int db_index_path(const char *dir, char *out, size_t size);
bool db_store_exists(const char *dir);
/*
 * Closes every thread's connection.  Call it once no other thread uses the
 * store.  NULL is a no-op.
 */
void db_store_close(struct db_store *s);
/* The store folder as an absolute path. */
const char *db_store_dir(const struct db_store *s);
/*
 * What made this thread's last failing db/ call fail: the SQLite message,
 * or the system call and its strerror.  Valid until the thread's next db/
 * call.
 */
const char *db_last_error(void);

/* ---- Repos ------------------------------------------------------------- */

struct db_repo {
	int64_t id; /* row id, stable for the store's life */
	enum hub_repo_type type;
	char name[256];	     /* the id as asked for: "org/name", "gpt2" */
	char canonical[256]; /* "" or the id it redirects to */
	int64_t last_used;   /* unix seconds */
};

/* Find a repo the store knows.  -ENOENT when it does not. */
int db_repo_get(struct db_store *s, enum hub_repo_type type, const char *name,
		struct db_repo *out);
/*
 * Record a repo (or update its canonical id, "" for none, NULL to keep the
 * recorded one), marking it used now.  Fills *out (may be NULL).
 */
int db_repo_put(struct db_store *s, enum hub_repo_type type, const char *name,
		const char *canonical, struct db_repo *out);

/*
 * The owners of known repos of a type (the part before '/') and the owners
 * whose last listing holds at least one repo, each once, sorted (byte
 * order).  Legacy ids without an owner are not owners.
 */
typedef int (*db_name_fn)(void *arg, const char *name);
int db_owners(struct db_store *s, enum hub_repo_type type, db_name_fn cb,
	      void *arg);

/*
 * The repo names (the part after '/') under an owner: the known repos
 * merged with the last listing of the owner from the Hub, each once,
 * sorted.
 */
int db_owner_repos(struct db_store *s, enum hub_repo_type type,
		   const char *owner, db_name_fn cb, void *arg);

/*
 * Replace the Hub's listing of an owner (full repo ids) and stamp it with
 * the time; *listed_at gets that stamp back from db_listing_age().  Ids
 * that are not a valid "owner/name" of this owner (compared ignoring case)
 * are left out.
 */
int db_listing_put(struct db_store *s, enum hub_repo_type type,
		   const char *owner, const char *const *repo_ids, size_t n,
		   int64_t now);
/* When the owner was last listed; -ENOENT when never. */
int db_listing_age(struct db_store *s, enum hub_repo_type type,
		   const char *owner, int64_t *listed_at);

/* ---- Revisions --------------------------------------------------------- */

/*
 * A revision (branch, tag, "" for the default branch) of a repo and the
 * commit it pointed to when checked_at (unix seconds) was stamped.
 */
int db_revision_get(struct db_store *s, int64_t repo, const char *rev,
		    char commit[41], int64_t *checked_at);
/* -ENOENT when repo is not a repo row; -EINVAL unless commit is 40 hex. */
int db_revision_put(struct db_store *s, int64_t repo, const char *rev,
		    const char *commit, int64_t now);

/* ---- Trees ------------------------------------------------------------- */

/*
 * A commit's file tree, stored once: written in one transaction by a
 * db_tree_writer, and present (db_tree_find) only once committed, so a
 * crash mid-listing leaves nothing half-written.
 *
 * A writer collects entries on a connection of its own and takes the
 * store's write lock only inside db_tree_end(), briefly: a listing that
 * takes minutes blocks no other writer.  A writer is used by one thread at
 * a time (any thread).  If another process completed the same tree
 * meanwhile, db_tree_end() keeps that one and returns it.
 */
struct db_tree {
	int64_t id;    /* row id */
	int64_t mtime; /* commit time, unix seconds */
};
int db_tree_find(struct db_store *s, int64_t repo, const char *commit,
		 struct db_tree *out);

struct db_tree_writer;
int db_tree_begin(struct db_store *s, int64_t repo, const char *commit,
		  int64_t mtime, struct db_tree_writer **out);
/*
 * Add one entry.  Directories that are only implied by a file path are
 * created too; an explicit directory entry and an implied one are one
 * folder.  -EINVAL refuses an entry (path not hub_path_safe(), an oid or
 * lfs_oid that is not lowercase hex of the right length) and the writer
 * goes on; after any other error the writer only fails, and
 * db_tree_end(ok) returns that error.
 */
int db_tree_add(struct db_tree_writer *w, const struct hub_entry *e);
/*
 * Commit (ok) or roll back (!ok), and free the writer.  out may be NULL.
 * -ENOENT when the repo row does not exist.
 */
int db_tree_end(struct db_tree_writer *w, bool ok, struct db_tree *out);

struct db_entry {
	int64_t id; /* row id: unique in the store */
	char name[256];
	bool is_dir;
	uint64_t size;
	char etag[65]; /* blob name: lfs sha256, else git sha1; "" for dirs */
	bool lfs;
	char xet[65]; /* the tree's xetHash, "" when none */
};
/* The entry name in folder parent ("" is the repo root).  -ENOENT. */
int db_entry_lookup(struct db_store *s, int64_t tree, const char *parent,
		    const char *name, struct db_entry *out);
/*
 * The entries of folder parent, sorted by name (byte order).  A folder
 * that does not exist lists nothing.
 */
typedef int (*db_entry_fn)(void *arg, const struct db_entry *e);
int db_dir_list(struct db_store *s, int64_t tree, const char *parent,
		db_entry_fn cb, void *arg);
/*
 * The number of files (folders not counted) in a complete tree and their
 * total size, for statfs-like summaries.  -ENOENT for no such tree.
 */
int db_tree_count(struct db_store *s, int64_t tree, uint64_t *files,
		  uint64_t *bytes);

/*
 * The etags of the files of every complete tree of a repo, each once,
 * sorted: the blobs/ folder of the huggingface_hub cache view.
 */
int db_repo_blobs(struct db_store *s, int64_t repo, db_name_fn cb, void *arg);

/* A file with a given etag in a complete tree of a repo. */
struct db_blob_file {
	char commit[41];
	char path[HUB_PATH_MAX + 1]; /* from the repo root */
	uint64_t size;
	bool lfs;
	char xet[65];  /* the tree's xetHash, "" when none */
	int64_t mtime; /* the commit's time */
};
/* One file of the repo whose etag this is (any one).  -ENOENT. */
int db_blob_where(struct db_store *s, int64_t repo, const char *etag,
		  struct db_blob_file *out);

/* ---- Blobs ------------------------------------------------------------- */

/*
 * A blob is recorded only once it is complete and verified; its file is
 * blobs/<etag>.  db_blob_path writes that path (size >= PATH_MAX), or ""
 * when etag is not 40 or 64 lowercase hex digits.  Every blob function
 * refuses such an etag with -EINVAL before building a path.
 */
void db_blob_path(struct db_store *s, const char *etag, char *buf, size_t size);
/*
 * -ENOENT unless the blob is recorded complete and its file exists with the
 * recorded size, inode and mtime (those it had when recorded); a record
 * whose file is missing, has another size or was written or replaced
 * since is dropped, and the blob fetched again.  Content changed with its
 * size, inode and mtime kept (a bit flip on disk, an mtime restored) is
 * not noticed here: only hashing the file again finds it.
 */
int db_blob_get(struct db_store *s, const char *etag, uint64_t *size);
/*
 * Record a verified blob and mark it used now, with the inode and mtime
 * its file has now (blobs/<etag>; none recorded when it is absent).
 */
int db_blob_put(struct db_store *s, const char *etag, uint64_t size);
/* Drop a blob's record and file (a failed check, an eviction). */
int db_blob_drop(struct db_store *s, const char *etag);
/*
 * Test support: hubfs fetches into partial/ (db_partial_*); the unit tests
 * put complete blobs in place with these two.
 *
 * A fresh file in tmp/ for a download in progress, opened O_RDWR |
 * O_CLOEXEC, mode 0600.  Returns its descriptor (caller closes) or a
 * negative errno.  path_out (size >= PATH_MAX) gets its name for
 * db_blob_install.
 */
int db_blob_tmpfile(struct db_store *s, char *path_out, size_t size);
/*
 * Move a verified, fdatasync'ed download into place and record it
 * (rename, fsync of blobs/, then db_blob_put).  -EINVAL when the file is
 * not size bytes long.  When recording fails the file stays in place,
 * unrecorded, and a later install replaces it.
 */
int db_blob_install(struct db_store *s, const char *tmp_path, const char *etag,
		    uint64_t size);

/* ---- Partial blobs ------------------------------------------------------
 *
 * A blob being filled is the sparse file partial/<etag>, as long as the
 * blob.  Which of its blocks (1 << shift bytes; the last may be shorter)
 * are present is a bitmap in the index: a block is marked only after its
 * bytes were written and fdatasync'ed, so after a crash a marked block is
 * there, and an unmarked one is fetched again.  Once every block is
 * present and the content verified, db_partial_finish moves the file to
 * blobs/<etag> and records the blob, in that order.  Several processes may
 * fill one blob: marks merge.
 */
#define DB_BLOCK_SHIFT 20 /* 1 MiB */

struct db_partial {
	int fd;		 /* partial/<etag>, O_RDWR; the caller closes it */
	unsigned shift;	 /* log2 of the block size */
	uint64_t blocks; /* how many: ceil(size / block size) */
	uint8_t *bitmap; /* (blocks + 7) / 8 bytes; free with db_partial_free */
};

/* The bitmap's bytes for a blob of size bytes in blocks of 1 << shift. */
size_t db_bitmap_bytes(uint64_t size, unsigned shift);
static inline bool db_bit(const uint8_t *bitmap, uint64_t i)
{
	return bitmap[i / 8] & (1u << (i % 8));
}

/*
 * Open (creating it if needed, sized and sparse) a blob's partial file and
 * read its bitmap; a recorded bitmap for another size is discarded.
 */
int db_partial_open(struct db_store *s, const char *etag, uint64_t size,
		    struct db_partial *out);
/* Frees the bitmap (the descriptor is the caller's).  NULL is a no-op. */
void db_partial_free(struct db_partial *p);
/*
 * Record blocks [first, first + count) present (their bytes durable), and
 * OR into bitmap (may be NULL) what other processes marked meanwhile.
 */
int db_partial_mark(struct db_store *s, const char *etag, int fd, uint64_t size,
		    unsigned shift, uint64_t first, uint64_t count,
		    uint8_t *bitmap);
/* OR the recorded bitmap into bitmap. */
int db_partial_refresh(struct db_store *s, const char *etag, int fd,
		       uint64_t size, unsigned shift, uint8_t *bitmap);
/*
 * The blob is complete and verified: fdatasync'ed partial/<etag> becomes
 * blobs/<etag>, then the blob is recorded and the bitmap dropped.
 */
int db_partial_finish(struct db_store *s, const char *etag, uint64_t size);
/* Forget the bitmap and remove the partial file (a failed check). */
int db_partial_drop(struct db_store *s, const char *etag);

/* ---- Xet chunks -----------------------------------------------------------
 *
 * Where the chunks of Xet xorbs lie in blobs, so that a file read through
 * the CAS can copy the chunks it shares with a blob the store holds
 * (another revision of it) instead of fetching them.  Runs are recorded as
 * a blob is filled, complete or not, but count only once the blob is
 * recorded complete (verified), and go with it (db_blob_drop,
 * db_partial_drop, eviction).  A run says what the blob's content is; it
 * does not vouch for the file: the copier checks the file as db_blob_get
 * does, and the file it makes is verified whole.
 */
struct db_chunk_run {
	const char *xorb;	 /* 64 lowercase hex */
	uint32_t chunk, count;	 /* chunks [chunk, chunk + count), count >= 1 */
	const uint32_t *lengths; /* count unpacked sizes, 1 .. 128 KiB each */
	uint64_t offset;	 /* where chunk `chunk` begins in the blob */
};
/*
 * Record n runs of blob etag (complete or partial) in one transaction.
 * -EINVAL for a bad etag or run (nothing recorded).
 */
int db_chunks_put(struct db_store *s, const char *etag,
		  const struct db_chunk_run *runs, size_t n);

/* Where one chunk lies: bytes [offset, offset + length) of blob etag. */
struct db_chunk_at {
	char etag[65]; /* "": in no complete blob */
	uint64_t offset;
	uint32_t length;
};
/*
 * Where chunks [start, end) of xorb lie in complete blobs: out[i] (end -
 * start entries) for chunk start + i, from the most recently used blob
 * that has it, so a run found whole stays in one blob.  0 when every one
 * was found, -ENOENT when some were not (their etag ""), -EINVAL.
 */
int db_chunks_locate(struct db_store *s, const char *xorb, uint32_t start,
		     uint32_t end, struct db_chunk_at *out);

/* ---- Settings, use and eviction -----------------------------------------
 *
 * The size limit is a setting kept in the store once set.  A blob file
 * that some process has open holds an OFD read lock on it (db_blob_hold);
 * eviction, in this process or another, skips any blob so held and takes
 * the least recently used of the rest, complete blobs first, then partial
 * ones, until the store is within the limit.
 */
#define DB_SETTING_MAX_CACHE "max_cache" /* bytes; absent: no limit */

int db_setting_get(struct db_store *s, const char *key, int64_t *value);
int db_setting_put(struct db_store *s, const char *key, int64_t value);

/* Mark a complete blob used now (for the LRU order). */
int db_blob_touch(struct db_store *s, const char *etag);

/* Hold a blob in use for as long as fd (any open of its file) is open. */
int db_blob_hold(int fd);

/* Bytes the store holds: complete blobs plus the present blocks of partial
   ones. */
int db_store_usage(struct db_store *s, uint64_t *bytes);

/*
 * Evict unheld blobs, least recently used first, until the store holds at
 * most limit bytes; cb (may be NULL) hears of each one.  With dry_run,
 * nothing is removed: cb hears what would be.  *freed (may be NULL) gets
 * the bytes removed (or that would be).
 * Returns 0 even when the limit could not be reached (everything left is
 * in use); a negative errno on failure.
 */
typedef int (*db_evicted_fn)(void *arg, const char *etag, uint64_t bytes,
			     bool partial);
int db_evict(struct db_store *s, uint64_t limit, bool dry_run, db_evicted_fn cb,
	     void *arg, uint64_t *freed);

/* Used bytes of the store's blobs, and how many. */
int db_blob_usage(struct db_store *s, uint64_t *bytes, uint64_t *count);
/* Bytes present in the store's partial blobs, and how many there are. */
int db_partial_usage(struct db_store *s, uint64_t *bytes, uint64_t *count);

/* ---- Pins ---------------------------------------------------------------
 *
 * "hubfs pull" pins what it fetches: a pin names a blob (complete or not
 * yet) for a repo and a revision as asked for ("" the default branch, a
 * branch, tag or commit id).  Eviction never takes a pinned blob, so pins
 * may hold the store above its limit.  Pins go with their repo
 * (db_repo_forget).
 */
struct db_pin {
	const char *etag;
	uint64_t size;
};
/* Pin n blobs for (repo, rev), in one transaction. */
int db_pin_add(struct db_store *s, int64_t repo, const char *rev,
	       const struct db_pin *pins, size_t n);
/*
 * Remove the pins of (repo, rev), or every pin of repo when rev is NULL;
 * *removed (may be NULL) gets how many.
 */
int db_pin_remove(struct db_store *s, int64_t repo, const char *rev,
		  uint64_t *removed);

struct db_pin_usage {
	uint64_t blobs;		 /* distinct pinned blobs */
	uint64_t bytes;		 /* their sizes */
	uint64_t complete_bytes; /* of those, the complete ones */
};
int db_pin_usage(struct db_store *s, struct db_pin_usage *out);

/*
 * Drop a repo from the index: its revisions, trees and pins, and the
 * legacy or old ids that redirect to it.  Its blobs
 * stay until eviction takes them.  -ENOENT when there is no such row.
 */
int db_repo_forget(struct db_store *s, int64_t repo);

/* ---- Checking and cleaning ------------------------------------------ */

/*
 * Content hashed in the scheme its etag names it by: 64 hex digits are the
 * sha256 of the content (LFS and xet files), 40 the git blob id (the sha1
 * of "blob <size>\0" and the content).  db_hash_start: 0 or -ENOMEM.
 * db_hash_finish writes the digest as lowercase hex (a NUL-terminated
 * 41 or 65 bytes) and frees h; db_hash_free(NULL) is a no-op.
 */
struct db_hash;
int db_hash_start(struct db_hash **out, const char *etag, uint64_t size);
void db_hash_update(struct db_hash *h, const void *p, size_t n);
void db_hash_finish(struct db_hash *h, char hex[65]);
void db_hash_free(struct db_hash *h);

/*
 * Hash a complete blob's file again and compare with its etag.  0 when it
 * matches; -EBADMSG when it does not (db_last_error() says what it hashed
 * to; the blob is left as it is: db_blob_drop() removes it); -ESTALE when
 * its file is missing or was changed or replaced since it was verified
 * (its record is dropped, as db_blob_get does); -ENOENT when the blob is
 * not recorded complete.  *size gets its size.
 */
int db_blob_verify(struct db_store *s, const char *etag, uint64_t *size);

/* Every complete blob, by etag; cb may drop the blob it is given. */
typedef int (*db_blob_fn)(void *arg, const char *etag, uint64_t size);
int db_blobs(struct db_store *s, db_blob_fn cb, void *arg);

/*
 * Remove the blobs, complete or partial, that no tree in the index lists
 * and no pin names (a forgotten repo's, an old revision's that was
 * dropped), unless held; cb and dry_run as for db_evict.
 */
int db_evict_unreferenced(struct db_store *s, bool dry_run, db_evicted_fn cb,
			  void *arg, uint64_t *freed);

/* ---- Files used where they lie -------------------------------------------
 *
 * Content the user already has outside the store (a huggingface_hub cache,
 * a local-dir download, a folder given to "hubfs import") is used in
 * place: hashed once, then trusted while its file keeps the device, inode,
 * size and mtime it had when hashed.  Such files are only ever opened
 * read-only: never written, locked, moved, removed, or counted in the
 * store's size.  A file on a hubfs mount is never used.
 */

/*
 * Whether path (absolute; symlinks followed) holds etag's content, size
 * bytes.  Returns 1 when it was hashed now and matched, 0 when it had
 * matched before and its stamp is unchanged (the stamp names the file: one
 * hashed under another path that links to it counts), or a negative errno:
 * -ENOENT (missing, or a dangling link), -EISDIR (not a regular file),
 * -ERANGE (another size), -EXDEV (on a hubfs mount), -EBADMSG (another
 * content, now or before with the stamp unchanged: db_last_error() says
 * what it hashed to when hashed now), -EAGAIN (it changed while being
 * hashed).
 * The verdict is recorded either way.  When fd is not NULL and the result
 * is >= 0, *fd gets a read-only descriptor of the file (caller closes).
 */
int db_external_check(struct db_store *s, const char *path, const char *etag,
		      uint64_t size, int *fd);
/*
 * A read-only descriptor of a file recorded good for etag whose stamp is
 * unchanged.  Rows of files that went away or changed are dropped.
 * -ENOENT when there is none.
 */
int db_external_open(struct db_store *s, const char *etag, uint64_t size,
		     int *fd);
/* Distinct etags with a good file recorded, and their bytes. */
int db_external_usage(struct db_store *s, uint64_t *bytes, uint64_t *count);
/* Whether the device dev is a hubfs mount (any process's). */
bool db_dev_is_hubfs(dev_t dev);

/* ---- Reports ------------------------------------------------------------
 *
 * Read-only summaries for "hubfs ls" (db/report.c): the repos the store
 * knows, the commits known for each, and how much of each file is held
 * locally.  They never write.  Each walk reads one snapshot of the index
 * (a mount may be writing it meanwhile) and follows the rules of the walks
 * above.
 *
 * Bytes held locally: a file whose blob is recorded complete counts its
 * whole size; otherwise the present blocks of its partial blob count
 * (bits set in the bitmap times the block size, the last block only up to
 * the end of the file).  The blob files themselves are not looked at.
 */

/* Every repo the store knows, sorted by type, then name (byte order). */
typedef int (*db_repo_fn)(void *arg, const struct db_repo *r);
int db_report_repos(struct db_store *s, db_repo_fn cb, void *arg);

/*
 * A commit known for a repo: each recorded revision (sorted by name, ""
 * first), then each commit whose tree is in the store but that no revision
 * points at (a folder name@<commit>), oldest listing first.
 */
struct db_report_rev {
	char rev[256]; /* branch or tag as asked for; "" is the default
			  branch, and the rev of a pinned commit */
	bool pinned;   /* a commit no revision points at */
	char commit[41];
	int64_t checked_at; /* when rev was last resolved; 0 when pinned */
	int64_t tree;	    /* the commit's complete tree, or 0: not listed */
	int64_t mtime;	    /* the commit's time when listed, else 0 */
};
typedef int (*db_rev_fn)(void *arg, const struct db_report_rev *r);
int db_report_revisions(struct db_store *s, int64_t repo, db_rev_fn cb,
			void *arg);

/* A file of a tree; the strings are valid only during the callback. */
struct db_report_file {
	const char *path; /* from the repo root */
	uint64_t size;
	const char *etag;
	bool lfs;
	const char *oid;   /* an LFS file's git blob id; "" for others, and for
			      trees listed before schema version 6 */
	const char *xet;   /* its xet hash, or "" */
	bool complete;	   /* every byte is local: the blob is recorded
			      complete, or the file is empty */
	uint64_t local;	   /* bytes held locally, <= size: the whole of a
			      file used in place (external) */
	bool external;	   /* a file outside the store was verified for it
			      (its stamp is checked when it is opened, not
			      here) */
	int64_t last_used; /* of its blob or partial blob; 0: never */
};
typedef int (*db_file_fn)(void *arg, const struct db_report_file *f);
/* The files (not folders) of a tree, sorted by path (byte order). */
int db_report_files(struct db_store *s, int64_t tree, db_file_fn cb, void *arg);

#endif /* HUBFS_DB_H */

/*
 * evict.c - settings, last use, the size limit and eviction.
 *
 * "In use" is an OFD read lock on one byte far past the end of a blob's
 * file, taken by whoever opens the blob to read it (db_blob_hold).  OFD
 * locks belong to the open file description, so they hold between
 * processes and between two opens in one process alike, and vanish with
 * the last descriptor, even after kill -9.  Eviction takes the write lock
 * on the same byte, without waiting: if it gets it, nobody reads the blob,
 * and it removes the row, then the file, still holding the lock.
 */
#include "db_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HOLD_OFFSET (1LL << 62) /* the byte "in use" locks cover */
#define BATCH	    64		/* candidates read at a time */

static const char sql_setting_get[] =
	"SELECT value FROM settings WHERE key = ?1";
static const char sql_setting_put[] =
	"INSERT INTO settings(key, value) VALUES (?1, ?2)"
	" ON CONFLICT(key) DO UPDATE SET value = ?2";
static const char sql_blob_touch[] =
	"UPDATE blobs SET last_used = ?2 WHERE etag = ?1";
static const char sql_lru_blobs[] =
	"SELECT etag, size, 0, NULL FROM blobs"
	" WHERE etag NOT IN (SELECT etag FROM pins) ORDER BY last_used"
	" LIMIT ?1 OFFSET ?2";
static const char sql_lru_partial[] =
	"SELECT etag, 0, shift, bitmap FROM partial"
	" WHERE etag NOT IN (SELECT etag FROM pins) ORDER BY updated"
	" LIMIT ?1 OFFSET ?2";
static const char sql_unref_blobs[] =
	"SELECT etag, size, 0, NULL FROM blobs"
	" WHERE etag NOT IN (SELECT etag FROM pins)"
	" AND etag NOT IN (SELECT etag FROM entries)"
	" ORDER BY last_used LIMIT ?1 OFFSET ?2";
static const char sql_unref_partial[] =
	"SELECT etag, 0, shift, bitmap FROM partial"
	" WHERE etag NOT IN (SELECT etag FROM pins)"
	" AND etag NOT IN (SELECT etag FROM entries)"
	" ORDER BY updated LIMIT ?1 OFFSET ?2";
static const char sql_partial_all[] = "SELECT size, shift, bitmap FROM partial";

int db_setting_get(struct db_store *s, const char *key, int64_t *value)
{
	struct db_conn *c;
	struct db_query q;
	int rc = db_thread_query(s, ST_SETTING_GET, sql_setting_get, &c, &q);

	if (rc)
		return rc;
	sqlite3_bind_text(q.st, 1, key, -1, SQLITE_STATIC);
	rc = db_step(c, &q);
	if (rc > 0)
		*value = sqlite3_column_int64(q.st, 0);
	db_query_end(&q);
	return rc > 0 ? 0 : rc ? rc : -ENOENT;
}

int db_setting_put(struct db_store *s, const char *key, int64_t value)
{
	return db_write_row(s, ST_SETTING_PUT, sql_setting_put, key, &value, 1);
}

int db_blob_touch(struct db_store *s, const char *etag)
{
	int64_t now = (int64_t)time(NULL);

	return db_write_row(s, ST_BLOB_TOUCH, sql_blob_touch, etag, &now, 1);
}

int db_blob_hold(int fd)
{
	struct flock fl = { .l_type = F_RDLCK,
			    .l_whence = SEEK_SET,
			    .l_start = HOLD_OFFSET,
			    .l_len = 1 };

	return fcntl(fd, F_OFD_SETLK, &fl) < 0 ? -errno : 0;
}

static unsigned popcount8(uint8_t v)
{
	return (unsigned)__builtin_popcount(v);
}

struct candidate {
	char etag[65];
	uint64_t bytes; /* held in the store */
};

/* Bytes of the present blocks a bitmap row records. */
static uint64_t bitmap_bytes(sqlite3_stmt *st, int shift_col, int map_col)
{
	int shift = sqlite3_column_int(st, shift_col);
	const uint8_t *map = sqlite3_column_blob(st, map_col);
	int n = sqlite3_column_bytes(st, map_col);
	uint64_t total = 0;

	for (int i = 0; map && i < n && shift > 0 && shift < 40; i++)
		total += (uint64_t)popcount8(map[i]) << shift;
	return total;
}

int db_partial_usage(struct db_store *s, uint64_t *bytes, uint64_t *count)
{
	uint64_t total = 0, n = 0;
	struct db_conn *c;
	struct db_query q;
	int rc = db_thread_query(s, ST_PARTIAL_ALL, sql_partial_all, &c, &q);

	if (rc)
		return rc;
	while ((rc = db_step(c, &q)) > 0) {
		total += bitmap_bytes(q.st, 1, 2);
		n++;
	}
	db_query_end(&q);
	if (rc < 0)
		return rc;
	*bytes = total;
	*count = n;
	return 0;
}

int db_store_usage(struct db_store *s, uint64_t *bytes)
{
	uint64_t complete, partial, count;
	int rc = db_blob_usage(s, &complete, &count);

	if (rc == 0)
		rc = db_partial_usage(s, &partial, &count);
	if (rc == 0)
		*bytes = complete + partial;
	return rc;
}

/*
 * Remove one blob (complete, or partial) unless someone holds it.  Returns
 * 1 when it was removed, 2 when only its file was (the disk is full), 0
 * when held, or a negative errno.
 */
static int evict_one(struct db_store *s, bool partial, const char *etag,
		     bool dry_run)
{
	struct flock fl = { .l_type = F_WRLCK,
			    .l_whence = SEEK_SET,
			    .l_start = HOLD_OFFSET,
			    .l_len = 1 };
	char path[PATH_MAX];
	int fd, rc = db_blob_file(s, partial ? "partial" : "blobs", etag, path,
				  sizeof(path));

	if (rc)
		return rc;
	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno != ENOENT)
		return 0; /* cannot tell whether it is in use: leave it */
	if (fd >= 0 && fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		close(fd);
		return 0; /* in use */
	}
	if (!dry_run)
		rc = partial ? db_partial_drop(s, etag) : db_blob_drop(s, etag);
	/*
	 * A full disk leaves SQLite no room to delete the row: free the
	 * file's room first (our descriptor keeps it until closed), then try
	 * the row again.  Safe in this order too: a blob row whose file is
	 * missing, or a bitmap whose file has another inode, is never
	 * trusted, and is dropped when next seen.  A row still left: 2.
	 */
	if (rc == -ENOSPC && fd >= 0 && unlink(path) == 0) {
		close(fd);
		fd = -1;
		rc = partial ? db_partial_drop(s, etag) : db_blob_drop(s, etag);
	}
	if (rc == -ENOSPC && fd < 0)
		return 2; /* the file is gone (now or before): the row waits */
	if (fd >= 0)
		close(fd);
	return rc < 0 ? rc : 1;
}

/*
 * A batch of candidates, oldest first, skipping the first skip: any
 * unpinned blob, or (unref) only those no tree lists.
 */
static int candidates(struct db_store *s, bool partial, bool unref, int skip,
		      struct candidate *out, int *n)
{
	static const struct {
		enum db_stmt slot;
		const char *sql;
	} queries[2][2] = {
		{ { ST_LRU_BLOBS, sql_lru_blobs },
		  { ST_LRU_PARTIAL, sql_lru_partial } },
		{ { ST_UNREF_BLOBS, sql_unref_blobs },
		  { ST_UNREF_PARTIAL, sql_unref_partial } },
	};
	struct db_conn *c;
	struct db_query q;
	int rc = db_thread_query(s, queries[unref][partial].slot,
				 queries[unref][partial].sql, &c, &q);

	*n = 0;
	if (rc)
		return rc;
	sqlite3_bind_int(q.st, 1, BATCH);
	sqlite3_bind_int(q.st, 2, skip);
	while (*n < BATCH && (rc = db_step(c, &q)) > 0) {
		if (db_text(q.st, 0, out[*n].etag, sizeof(out[*n].etag)) < 0)
			continue;
		out[*n].bytes =
			partial ? bitmap_bytes(q.st, 2, 3)
				: (uint64_t)sqlite3_column_int64(q.st, 1);
		(*n)++;
	}
	db_query_end(&q);
	return rc < 0 ? rc : 0;
}

static int evict(struct db_store *s, uint64_t limit, bool unref, bool dry_run,
		 db_evicted_fn cb, void *arg, uint64_t *freed)
{
	struct candidate batch[BATCH];
	uint64_t used, start;
	int rc = db_store_usage(s, &used);

	start = used;
	for (int pass = 0; rc == 0 && pass < 2 && used > limit; pass++) {
		int skip = 0, n;

		/* Complete blobs first, then what was being filled. */
		while (used > limit &&
		       (rc = candidates(s, pass == 1, unref, skip, batch,
					&n)) == 0 &&
		       n > 0) {
			for (int i = 0; i < n && used > limit; i++) {
				struct candidate *b = &batch[i];
				int r = evict_one(s, pass == 1, b->etag,
						  dry_run);

				if (r < 0)
					return r;
				if (r != 1 || dry_run)
					skip++; /* still in the list */
				if (r == 0)
					continue;
				used -= b->bytes < used ? b->bytes : used;
				if (cb && (rc = cb(arg, b->etag, b->bytes,
						   pass == 1)) != 0)
					goto out;
			}
			if (!dry_run)
				rc = db_store_usage(s, &used);
		}
	}
out:
	if (freed)
		*freed = start > used ? start - used : 0;
	return rc;
}

int db_evict(struct db_store *s, uint64_t limit, bool dry_run, db_evicted_fn cb,
	     void *arg, uint64_t *freed)
{
	return evict(s, limit, false, dry_run, cb, arg, freed);
}

int db_evict_unreferenced(struct db_store *s, bool dry_run, db_evicted_fn cb,
			  void *arg, uint64_t *freed)
{
	return evict(s, 0, true, dry_run, cb, arg, freed);
}

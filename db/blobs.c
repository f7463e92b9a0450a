/*
 * blobs.c - blob files and their records.
 *
 * A blob is the file blobs/<etag>; its row in the index says it is
 * complete and verified.  The file goes in place first and the row comes
 * after, and a row whose file is missing or has the wrong size is dropped
 * on sight, so a crash at any point leaves at worst a file without a row:
 * fetched again, never trusted unverified.
 */
#include "db_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Checked before an etag becomes part of a path. */
static bool etag_valid(const char *etag)
{
	return etag && (hub_is_sha256(etag) || hub_is_commit_id(etag));
}

/* The path of etag's file in one of the store's folders. */
int db_blob_file(struct db_store *s, const char *folder, const char *etag,
		 char *buf, size_t size)
{
	int n;

	if (!etag_valid(etag))
		return -EINVAL;
	n = snprintf(buf, size, "%s/%s/%s", s->dir, folder, etag);
	return n >= 0 && (size_t)n < size ? 0 : -ENAMETOOLONG;
}

static int blob_path(struct db_store *s, const char *etag, char *buf,
		     size_t size)
{
	return db_blob_file(s, "blobs", etag, buf, size);
}

void db_blob_path(struct db_store *s, const char *etag, char *buf, size_t size)
{
	if (blob_path(s, etag, buf, size) < 0 && size > 0)
		buf[0] = '\0';
}

/* ---- Records ----------------------------------------------------------- */

static const char sql_blob_get[] =
	"SELECT size, last_used, ino, mtime_ns FROM blobs WHERE etag = ?1";
static const char sql_blob_put[] =
	"INSERT INTO blobs(etag, size, last_used, ino, mtime_ns)"
	" VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(etag) DO UPDATE"
	" SET size = ?2, last_used = ?3, ino = ?4, mtime_ns = ?5";
/* Only the row that was read: not one a new install wrote meanwhile. */
static const char sql_blob_forget[] =
	"DELETE FROM blobs WHERE etag = ?1 AND size = ?2 AND last_used = ?3";
static const char sql_blob_del[] = "DELETE FROM blobs WHERE etag = ?1";
static const char sql_blob_usage[] =
	"SELECT coalesce(sum(size), 0), count(*) FROM blobs";

/*
 * What a blob's row says of its file.  ino and mtime_ns are those of the
 * file as installed (both 0: not recorded, an install by an older hubfs).
 * Writing to the file changes its mtime, replacing it its inode: either
 * way the content is no longer the one that was verified.  A change that
 * restores the mtime keeps both and goes unnoticed here; only hashing the
 * file again finds it.
 */
struct blob_stamp {
	int64_t size, last_used, ino, mtime_ns;
};

static int64_t mtime_ns(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* The row of a blob: 1 when there is one, 0 when not, or -errno. */
static int blob_row(struct db_store *s, const char *etag,
		    struct blob_stamp *out)
{
	struct db_conn *c;
	struct db_query q;
	int rc = db_thread_query(s, ST_BLOB_GET, sql_blob_get, &c, &q);

	if (rc)
		return rc;
	sqlite3_bind_text(q.st, 1, etag, -1, SQLITE_STATIC);
	rc = db_step(c, &q);
	if (rc > 0) {
		out->size = sqlite3_column_int64(q.st, 0);
		out->last_used = sqlite3_column_int64(q.st, 1);
		out->ino = sqlite3_column_int64(q.st, 2);
		out->mtime_ns = sqlite3_column_int64(q.st, 3);
	}
	db_query_end(&q);
	return rc;
}

/*
 * *match: path is a regular file of the recorded size, inode and mtime.
 * Absent is no error.
 */
static int file_matches(const char *path, const struct blob_stamp *b,
			bool *match)
{
	struct stat st;

	*match = false;
	if (stat(path, &st) < 0)
		return errno == ENOENT ? 0 : db_sys_fail("checking", path);
	*match = S_ISREG(st.st_mode) && st.st_size == b->size;
	if (b->ino || b->mtime_ns)
		*match = *match && (int64_t)st.st_ino == b->ino &&
			 mtime_ns(&st) == b->mtime_ns;
	return 0;
}

int db_blob_recorded(struct db_store *s, const char *etag, uint64_t *size)
{
	struct blob_stamp b = { 0 };
	int rc = etag_valid(etag) ? blob_row(s, etag, &b) : -EINVAL;

	if (rc > 0)
		*size = (uint64_t)b.size;
	return rc < 0 ? rc : rc ? 0 : -ENOENT;
}

int db_blob_get(struct db_store *s, const char *etag, uint64_t *size)
{
	char path[PATH_MAX];
	struct blob_stamp b = { 0 };
	bool match;
	int rc = blob_path(s, etag, path, sizeof(path));

	if (rc)
		return rc;
	rc = blob_row(s, etag, &b);
	if (rc <= 0)
		return rc ? rc : -ENOENT;
	rc = file_matches(path, &b, &match);
	if (rc)
		return rc;
	if (match) {
		*size = (uint64_t)b.size;
		return 0;
	}
	/* The file left in place is replaced when the blob is fetched. */
	rc = db_write_row(s, ST_BLOB_FORGET, sql_blob_forget, etag,
			  (int64_t[]){ b.size, b.last_used }, 2);
	return rc ? rc : -ENOENT;
}

int db_blob_put(struct db_store *s, const char *etag, uint64_t size)
{
	char path[PATH_MAX];
	struct stat st;
	int64_t ino = 0, mtime = 0;

	if (!etag_valid(etag) || size > INT64_MAX)
		return -EINVAL;
	/* The file as verified: a later change to it shows (db_blob_get). */
	if (blob_path(s, etag, path, sizeof(path)) == 0 &&
	    stat(path, &st) == 0) {
		ino = (int64_t)st.st_ino;
		mtime = mtime_ns(&st);
	}
	return db_write_row(
		s, ST_BLOB_PUT, sql_blob_put, etag,
		(int64_t[]){ (int64_t)size, (int64_t)time(NULL), ino, mtime },
		4);
}

int db_blob_drop(struct db_store *s, const char *etag)
{
	char path[PATH_MAX];
	int rc = blob_path(s, etag, path, sizeof(path));

	/* The row first: a file without a row is never trusted. */
	if (rc == 0)
		rc = db_drop_rows(s, ST_BLOB_DEL, sql_blob_del, etag);
	if (rc == 0 && unlink(path) < 0 && errno != ENOENT)
		rc = db_sys_fail("removing", path);
	return rc;
}

int db_blob_usage(struct db_store *s, uint64_t *bytes, uint64_t *count)
{
	struct db_conn *c;
	struct db_query q;
	int rc = db_thread_query(s, ST_BLOB_USAGE, sql_blob_usage, &c, &q);

	if (rc)
		return rc;
	rc = db_step(c, &q);
	if (rc > 0) {
		*bytes = (uint64_t)sqlite3_column_int64(q.st, 0);
		*count = (uint64_t)sqlite3_column_int64(q.st, 1);
		rc = 0;
	} else if (rc == 0) {
		rc = -EIO; /* an aggregate always gives a row */
	}
	db_query_end(&q);
	return rc;
}

/* ---- Files ------------------------------------------------------------- */

int db_blob_tmpfile(struct db_store *s, char *path_out, size_t size)
{
	int n = snprintf(path_out, size, "%s/tmp/dl-XXXXXX", s->dir);
	int fd;

	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	fd = mkostemp(path_out, O_CLOEXEC); /* O_RDWR, 0600 */
	return fd >= 0 ? fd : db_sys_fail("creating", path_out);
}

/* Make a rename in the folder durable before the row points at it. */
int db_sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return db_sys_fail("opening", dir);
	if (fsync(fd) < 0)
		rc = db_sys_fail("syncing", dir);
	close(fd);
	return rc;
}

int db_blob_install(struct db_store *s, const char *tmp_path, const char *etag,
		    uint64_t size)
{
	char path[PATH_MAX], *slash;
	struct stat st;
	int rc = blob_path(s, etag, path, sizeof(path));

	if (rc)
		return rc;
	if (stat(tmp_path, &st) < 0)
		return db_sys_fail("checking", tmp_path);
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != size) {
		db_errorf("%s: %lld bytes, expected %llu", tmp_path,
			  (long long)st.st_size, (unsigned long long)size);
		return -EINVAL;
	}
	if (rename(tmp_path, path) < 0)
		return db_sys_fail("moving into place", tmp_path);
	slash = strrchr(path, '/');
	*slash = '\0';
	rc = db_sync_dir(path);
	*slash = '/';
	/* On failure the file stays, unrecorded: a later install replaces it.
	 */
	return rc ? rc : db_blob_put(s, etag, size);
}

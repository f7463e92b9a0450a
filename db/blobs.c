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
	"SELECT size, last_used FROM blobs WHERE etag = ?1";
static const char sql_blob_put[] =
	"INSERT INTO blobs(etag, size, last_used) VALUES (?1, ?2, ?3)"
	" ON CONFLICT(etag) DO UPDATE SET size = ?2, last_used = ?3";
/* Only the row that was read: not one a new install wrote meanwhile. */
static const char sql_blob_forget[] =
	"DELETE FROM blobs WHERE etag = ?1 AND size = ?2 AND last_used = ?3";
static const char sql_blob_del[] = "DELETE FROM blobs WHERE etag = ?1";
static const char sql_blob_usage[] =
	"SELECT coalesce(sum(size), 0), count(*) FROM blobs";

/* The row of a blob: 1 when there is one, 0 when not, or -errno. */
static int blob_row(struct db_store *s, const char *etag, int64_t *size,
		    int64_t *last_used)
{
	struct db_conn *c;
	struct db_query q;
	int rc = db_thread_query(s, ST_BLOB_GET, sql_blob_get, &c, &q);

	if (rc)
		return rc;
	sqlite3_bind_text(q.st, 1, etag, -1, SQLITE_STATIC);
	rc = db_step(c, &q);
	if (rc > 0) {
		*size = sqlite3_column_int64(q.st, 0);
		*last_used = sqlite3_column_int64(q.st, 1);
	}
	db_query_end(&q);
	return rc;
}

/* *match: path is a regular file of size bytes.  Absent is no error. */
static int file_matches(const char *path, int64_t size, bool *match)
{
	struct stat st;

	*match = false;
	if (stat(path, &st) < 0)
		return errno == ENOENT ? 0 : db_sys_fail("checking", path);
	*match = S_ISREG(st.st_mode) && st.st_size == size;
	return 0;
}

int db_blob_get(struct db_store *s, const char *etag, uint64_t *size)
{
	char path[PATH_MAX];
	int64_t recorded = 0, used = 0;
	bool match;
	int rc = blob_path(s, etag, path, sizeof(path));

	if (rc)
		return rc;
	rc = blob_row(s, etag, &recorded, &used);
	if (rc <= 0)
		return rc ? rc : -ENOENT;
	rc = file_matches(path, recorded, &match);
	if (rc)
		return rc;
	if (match) {
		*size = (uint64_t)recorded;
		return 0;
	}
	rc = db_write_row(s, ST_BLOB_FORGET, sql_blob_forget, etag,
			  (int64_t[]){ recorded, used }, 2);
	return rc ? rc : -ENOENT;
}

int db_blob_put(struct db_store *s, const char *etag, uint64_t size)
{
	if (!etag_valid(etag) || size > INT64_MAX)
		return -EINVAL;
	return db_write_row(s, ST_BLOB_PUT, sql_blob_put, etag,
			    (int64_t[]){ (int64_t)size, (int64_t)time(NULL) },
			    2);
}

int db_blob_drop(struct db_store *s, const char *etag)
{
	char path[PATH_MAX];
	int rc = blob_path(s, etag, path, sizeof(path));

	/* The row first: a file without a row is never trusted. */
	if (rc == 0)
		rc = db_write_row(s, ST_BLOB_DEL, sql_blob_del, etag, NULL, 0);
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

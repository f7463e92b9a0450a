/*
 * partial.c - blobs being filled, block by block.
 *
 * The file is partial/<etag>, created sparse at its full size.  The bitmap
 * row is rewritten whole in a BEGIN IMMEDIATE transaction that first reads
 * the stored one, so marks from several processes merge.  Nothing here
 * decides what is verified: db_partial_finish is called by whoever checked
 * the hash.
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

static const char sql_partial_get[] =
	"SELECT size, shift, bitmap, ino FROM partial WHERE etag = ?1";
static const char sql_partial_put[] =
	"INSERT INTO partial(etag, size, shift, bitmap, updated, ino)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(etag) DO UPDATE"
	" SET size = ?2, shift = ?3, bitmap = ?4, updated = ?5, ino = ?6";
static const char sql_partial_del[] = "DELETE FROM partial WHERE etag = ?1";

size_t db_bitmap_bytes(uint64_t size, unsigned shift)
{
	uint64_t blocks = (size + (1ULL << shift) - 1) >> shift;

	return (size_t)((blocks + 7) / 8);
}

/*
 * The inode of the partial file the caller has open (fd), or of the one at
 * its path now (fd < 0).  A bitmap is recorded with the inode of the file
 * it describes and applies to that file only: a file that was completed
 * and moved, or dropped, and created anew by another process starts with
 * nothing, whatever the row still says.
 */
static int file_ino(struct db_store *s, const char *etag, int fd, int64_t *ino)
{
	char path[PATH_MAX];
	struct stat st;
	int rc = 0;

	if (fd >= 0) {
		if (fstat(fd, &st) < 0)
			return -errno;
	} else if ((rc = db_blob_file(s, "partial", etag, path, sizeof(path))) <
		   0) {
		return rc;
	} else if (stat(path, &st) < 0) {
		return errno == ENOENT ? -ENOENT : -errno;
	}
	*ino = (int64_t)st.st_ino;
	return 0;
}

/*
 * OR the stored bitmap of etag into bitmap, when it was recorded for the
 * same file (ino), size and shift.  c may be in a transaction.
 */
static int read_bitmap(struct db_conn *c, const char *etag, int64_t ino,
		       uint64_t size, unsigned shift, uint8_t *bitmap)
{
	size_t n = db_bitmap_bytes(size, shift);
	struct db_query q;
	int rc = db_query(c, ST_PARTIAL_GET, sql_partial_get, &q);

	if (rc)
		return rc;
	sqlite3_bind_text(q.st, 1, etag, -1, SQLITE_STATIC);
	rc = db_step(c, &q);
	if (rc > 0 && (uint64_t)sqlite3_column_int64(q.st, 0) == size &&
	    sqlite3_column_int(q.st, 1) == (int)shift &&
	    sqlite3_column_int64(q.st, 3) == ino &&
	    (size_t)sqlite3_column_bytes(q.st, 2) == n) {
		const uint8_t *stored = sqlite3_column_blob(q.st, 2);

		for (size_t i = 0; i < n; i++)
			bitmap[i] |= stored[i];
	}
	db_query_end(&q);
	return rc < 0 ? rc : 0;
}

static void set_bits(uint8_t *bitmap, uint64_t first, uint64_t count)
{
	for (uint64_t i = first; i < first + count; i++)
		bitmap[i / 8] |= (uint8_t)(1u << (i % 8));
}

int db_partial_mark(struct db_store *s, const char *etag, int fd, uint64_t size,
		    unsigned shift, uint64_t first, uint64_t count,
		    uint8_t *bitmap)
{
	size_t n = db_bitmap_bytes(size, shift);
	uint64_t blocks = (size + (1ULL << shift) - 1) >> shift;
	uint8_t *merged;
	struct db_conn *c;
	struct db_query q;
	int64_t ino;
	int rc;

	if (!hub_is_sha256(etag) && !hub_is_commit_id(etag))
		return -EINVAL;
	if (first > blocks || count > blocks - first || size > INT64_MAX)
		return -EINVAL;
	rc = file_ino(s, etag, fd, &ino);
	if (rc < 0)
		return rc;
	merged = calloc(1, n ? n : 1);
	if (!merged)
		return -ENOMEM;
	rc = db_conn_get(s, &c);
	if (rc == 0)
		rc = db_tx_begin(c);
	if (rc)
		goto out;
	rc = read_bitmap(c, etag, ino, size, shift, merged);
	set_bits(merged, first, count);
	if (rc == 0)
		rc = db_query(c, ST_PARTIAL_PUT, sql_partial_put, &q);
	if (rc == 0) {
		sqlite3_bind_text(q.st, 1, etag, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q.st, 2, (int64_t)size);
		sqlite3_bind_int(q.st, 3, (int)shift);
		sqlite3_bind_blob(q.st, 4, merged, (int)n, SQLITE_STATIC);
		sqlite3_bind_int64(q.st, 5, (int64_t)time(NULL));
		sqlite3_bind_int64(q.st, 6, ino);
		rc = db_finish(c, &q);
	}
	rc = db_tx_end(c, rc);
	if (rc == 0 && bitmap)
		for (size_t i = 0; i < n; i++)
			bitmap[i] |= merged[i];
out:
	free(merged);
	return rc;
}

int db_partial_refresh(struct db_store *s, const char *etag, int fd,
		       uint64_t size, unsigned shift, uint8_t *bitmap)
{
	struct db_conn *c;
	int64_t ino;
	int rc = file_ino(s, etag, fd, &ino);

	if (rc == -ENOENT)
		return 0; /* no file: nothing present */
	if (rc == 0)
		rc = db_conn_get(s, &c);
	return rc ? rc : read_bitmap(c, etag, ino, size, shift, bitmap);
}

/* Open or create the sparse file, at least size bytes long. */
static int open_file(struct db_store *s, const char *etag, uint64_t size)
{
	char path[PATH_MAX];
	struct stat st;
	int fd, rc = db_blob_file(s, "partial", etag, path, sizeof(path));

	if (rc)
		return rc;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return db_sys_fail("opening", path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    ((uint64_t)st.st_size != size && ftruncate(fd, (off_t)size) < 0)) {
		rc = db_sys_fail("sizing", path);
		close(fd);
		return rc;
	}
	return fd;
}

int db_partial_open(struct db_store *s, const char *etag, uint64_t size,
		    struct db_partial *out)
{
	size_t n;
	int rc;

	memset(out, 0, sizeof(*out));
	out->fd = -1;
	if (size > INT64_MAX)
		return -EINVAL;
	out->shift = DB_BLOCK_SHIFT;
	out->blocks = (size + (1ULL << out->shift) - 1) >> out->shift;
	n = db_bitmap_bytes(size, out->shift);
	out->bitmap = calloc(1, n ? n : 1);
	if (!out->bitmap)
		return -ENOMEM;
	rc = open_file(s, etag, size);
	if (rc < 0)
		goto fail;
	out->fd = rc;
	rc = db_partial_refresh(s, etag, out->fd, size, out->shift,
				out->bitmap);
	if (rc == 0)
		return 0;
	close(out->fd);
fail:
	db_partial_free(out);
	out->fd = -1;
	return rc;
}

void db_partial_free(struct db_partial *p)
{
	if (!p)
		return;
	free(p->bitmap);
	p->bitmap = NULL;
}

static int partial_forget(struct db_store *s, const char *etag)
{
	return db_write_row(s, ST_PARTIAL_DEL, sql_partial_del, etag, NULL, 0);
}

int db_partial_finish(struct db_store *s, const char *etag, uint64_t size)
{
	char from[PATH_MAX], to[PATH_MAX], *slash;
	int rc = db_blob_file(s, "partial", etag, from, sizeof(from));

	if (rc == 0)
		rc = db_blob_file(s, "blobs", etag, to, sizeof(to));
	if (rc)
		return rc;
	if (rename(from, to) < 0)
		return db_sys_fail("moving into place", from);
	slash = strrchr(to, '/');
	*slash = '\0';
	rc = db_sync_dir(to);
	if (rc == 0)
		rc = db_blob_put(s, etag, size);
	/* A bitmap left behind is harmless: the blob row wins. */
	return rc ? rc : partial_forget(s, etag);
}

int db_partial_drop(struct db_store *s, const char *etag)
{
	char path[PATH_MAX];
	int rc = db_blob_file(s, "partial", etag, path, sizeof(path));

	if (rc == 0)
		rc = db_drop_rows(s, ST_PARTIAL_DEL, sql_partial_del, etag);
	if (rc == 0 && unlink(path) < 0 && errno != ENOENT)
		rc = db_sys_fail("removing", path);
	return rc;
}

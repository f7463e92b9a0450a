/*
 * external.c - files the user already has outside the store, used where
 * they lie (DESIGN.md section 4).
 *
 * A file found in a huggingface_hub cache, a local-dir download or any
 * folder "hubfs import" was given may hold a blob's content.  It is hashed
 * once; the row then records its path with the stamp its file had when
 * hashed (device, inode, size, mtime in ns) and whether it matched.  While
 * the stamp is unchanged the verdict stands, either way: a good file is
 * served without hashing again, a bad one is not hashed again on every
 * open.  Writing to the file changes its mtime, replacing it its inode or
 * device, so any change sends it back to be hashed, or, for a recorded
 * good one, drops its row: the blob then comes from the store.  A file
 * reached by several paths (symlinks or hard links, as huggingface_hub's
 * cache-wide shared blobs are) is hashed once: a new path whose stamp is
 * that of a file already hashed for the etag takes its verdict.
 *
 * These files are the user's: they are opened read-only, never locked,
 * written, moved or removed, and they count nowhere in the store's size
 * (db_store_usage, eviction and gc know only blobs/ and partial/).
 *
 * A file on a hubfs mount is never used: its bytes are the store's own
 * (or another store's), and a mount reading through itself to serve a
 * read could wait on itself (DESIGN.md section 7).
 */
#include "db_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define MAX_PATHS 8 /* good paths of one etag tried at most */

static const char sql_ext_good[] =
	"SELECT path, dev, ino, size, mtime_ns FROM external"
	" WHERE etag = ?1 AND good = 1 ORDER BY verified_at DESC LIMIT 8";
static const char sql_ext_get[] =
	"SELECT dev, ino, size, mtime_ns, good FROM external"
	" WHERE etag = ?1 AND path = ?2";
static const char sql_ext_same[] =
	"SELECT good FROM external WHERE etag = ?1 AND dev = ?2 AND ino = ?3"
	" AND size = ?4 AND mtime_ns = ?5 LIMIT 1";
static const char sql_ext_put[] =
	"INSERT INTO external(etag, path, dev, ino, size, mtime_ns,"
	" verified_at, good) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
	" ON CONFLICT(etag, path) DO UPDATE SET dev = ?3, ino = ?4,"
	" size = ?5, mtime_ns = ?6, verified_at = ?7, good = ?8";
static const char sql_ext_del[] =
	"DELETE FROM external WHERE etag = ?1 AND path = ?2";
static const char sql_ext_usage[] =
	"SELECT coalesce(sum(size), 0), count(*) FROM"
	" (SELECT etag, max(size) AS size FROM external WHERE good = 1"
	"  GROUP BY etag)";

struct stamp {
	int64_t dev, ino, size, mtime_ns;
};

static void stamp_of(const struct stat *st, struct stamp *out)
{
	out->dev = (int64_t)st->st_dev;
	out->ino = (int64_t)st->st_ino;
	out->size = (int64_t)st->st_size;
	out->mtime_ns =
		(int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static bool stamp_equal(const struct stamp *a, const struct stamp *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime_ns == b->mtime_ns;
}

static bool etag_valid(const char *etag)
{
	return etag && (hub_is_sha256(etag) || hub_is_commit_id(etag));
}

/*
 * Whether dev is a hubfs mount, from /proc/self/mountinfo: "ID PARENT
 * MAJ:MIN ROOT MOUNTPOINT OPTIONS [TAGS...] - FSTYPE SOURCE SUPEROPTS".
 * hubfs mounts with subtype=hubfs and fsname=hubfs.  Without /proc nothing
 * is known: false.
 */
bool db_dev_is_hubfs(dev_t dev)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	bool found = false;

	if (!f)
		return false;
	while (!found && getline(&line, &cap, f) > 0) {
		unsigned maj, min;
		char fstype[64], source[64];
		const char *dash = strstr(line, " - ");

		if (!dash || sscanf(line, "%*s %*s %u:%u", &maj, &min) != 2 ||
		    makedev(maj, min) != dev)
			continue;
		if (sscanf(dash + 3, "%63s %63s", fstype, source) != 2)
			continue;
		found = strcmp(fstype, "fuse.hubfs") == 0 ||
			(strncmp(fstype, "fuse", 4) == 0 &&
			 strcmp(source, "hubfs") == 0);
	}
	free(line);
	fclose(f);
	return found;
}

/* The row for (etag, path): 1 with *st and *good, 0 when none, -errno. */
static int ext_row(struct db_store *s, const char *etag, const char *path,
		   struct stamp *st, bool *good)
{
	struct db_conn *c;
	struct db_query q;
	int rc = db_thread_query(s, ST_EXT_GET, sql_ext_get, &c, &q);

	if (rc)
		return rc;
	sqlite3_bind_text(q.st, 1, etag, -1, SQLITE_STATIC);
	sqlite3_bind_text(q.st, 2, path, -1, SQLITE_STATIC);
	rc = db_step(c, &q);
	if (rc > 0) {
		st->dev = sqlite3_column_int64(q.st, 0);
		st->ino = sqlite3_column_int64(q.st, 1);
		st->size = sqlite3_column_int64(q.st, 2);
		st->mtime_ns = sqlite3_column_int64(q.st, 3);
		*good = sqlite3_column_int(q.st, 4) != 0;
	}
	db_query_end(&q);
	return rc;
}

/*
 * The verdict on the very file st stamps, recorded for etag under another
 * path: a file linked from several places (huggingface_hub's cache-wide
 * shared blobs, hard links) is hashed once.  1 with *good, 0 when none,
 * -errno.
 */
static int ext_same_file(struct db_store *s, const char *etag,
			 const struct stamp *st, bool *good)
{
	struct db_conn *c;
	struct db_query q;
	int rc = db_thread_query(s, ST_EXT_SAME, sql_ext_same, &c, &q);

	if (rc)
		return rc;
	sqlite3_bind_text(q.st, 1, etag, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q.st, 2, st->dev);
	sqlite3_bind_int64(q.st, 3, st->ino);
	sqlite3_bind_int64(q.st, 4, st->size);
	sqlite3_bind_int64(q.st, 5, st->mtime_ns);
	rc = db_step(c, &q);
	if (rc > 0)
		*good = sqlite3_column_int(q.st, 0) != 0;
	db_query_end(&q);
	return rc;
}

static int ext_write(struct db_store *s, const char *etag, const char *path,
		     const struct stamp *st, bool good, bool del)
{
	struct db_conn *c;
	struct db_query q;
	int rc = db_conn_get(s, &c);

	if (rc == 0)
		rc = db_tx_begin(c);
	if (rc)
		return rc;
	rc = del ? db_query(c, ST_EXT_DEL, sql_ext_del, &q)
		 : db_query(c, ST_EXT_PUT, sql_ext_put, &q);
	if (rc == 0) {
		sqlite3_bind_text(q.st, 1, etag, -1, SQLITE_STATIC);
		sqlite3_bind_text(q.st, 2, path, -1, SQLITE_STATIC);
		if (!del) {
			sqlite3_bind_int64(q.st, 3, st->dev);
			sqlite3_bind_int64(q.st, 4, st->ino);
			sqlite3_bind_int64(q.st, 5, st->size);
			sqlite3_bind_int64(q.st, 6, st->mtime_ns);
			sqlite3_bind_int64(q.st, 7, (int64_t)time(NULL));
			sqlite3_bind_int(q.st, 8, good);
		}
		rc = db_finish(c, &q);
	}
	return db_tx_end(c, rc);
}

/*
 * Open path read-only as a candidate for a blob of size bytes: a regular
 * file (symlinks followed), not on a hubfs mount.  O_NONBLOCK keeps a
 * FIFO planted there from blocking the open.
 */
static int open_candidate(const char *path, uint64_t size, int *fd_out,
			  struct stamp *out)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0)
		return errno == ENOTDIR || errno == ELOOP ? -ENOENT : -errno;
	if (fstat(fd, &st) < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != size ||
	    db_dev_is_hubfs(st.st_dev)) {
		close(fd);
		return !S_ISREG(st.st_mode)	      ? -EISDIR
		       : (uint64_t)st.st_size != size ? -ERANGE
						      : -EXDEV;
	}
	stamp_of(&st, out);
	*fd_out = fd;
	return 0;
}

int db_external_check(struct db_store *s, const char *path, const char *etag,
		      uint64_t size, int *fd_out)
{
	char hex[129];
	struct stamp now, was = { 0 }, after;
	struct stat st;
	bool good = false;
	int fd = -1, rc;

	if (fd_out)
		*fd_out = -1;
	if (!etag_valid(etag) || !path || path[0] != '/' || size > INT64_MAX)
		return -EINVAL;
	rc = open_candidate(path, size, &fd, &now);
	if (rc)
		return rc;
	rc = ext_row(s, etag, path, &was, &good);
	if (rc == 0 || (rc > 0 && !stamp_equal(&now, &was))) {
		/* The same file hashed under another path, unchanged since:
		 * its verdict is recorded for this path too. */
		rc = ext_same_file(s, etag, &now, &good);
		if (rc > 0) {
			rc = ext_write(s, etag, path, &now, good, false);
			was = now;
			if (rc == 0)
				rc = 1;
		}
	}
	if (rc < 0)
		goto out;
	if (rc > 0 && stamp_equal(&now, &was)) {
		/* The verdict stands. */
		if (!good)
			db_errorf("%s did not match when hashed, and has not "
				  "changed since",
				  path);
		rc = good ? 0 : -EBADMSG;
		goto out;
	}
	rc = db_hash_fd(fd, etag, size, hex);
	if (rc == -EBADMSG || (rc == 0 && fstat(fd, &st) < 0))
		rc = -EAGAIN;
	if (rc)
		goto out;
	/* Changed while being hashed: no verdict on either version. */
	stamp_of(&st, &after);
	if (!stamp_equal(&now, &after)) {
		rc = -EAGAIN;
		goto out;
	}
	good = strcmp(hex, etag) == 0;
	rc = ext_write(s, etag, path, &now, good, false);
	if (rc == 0 && !good) {
		db_errorf("%s hashes to %s, not %s", path, hex, etag);
		rc = -EBADMSG;
	}
	if (rc == 0)
		rc = 1; /* hashed now */
out:
	if (rc >= 0 && fd_out)
		*fd_out = fd;
	else
		close(fd);
	return rc;
}

struct ext_path {
	char path[PATH_MAX];
	struct stamp st;
};

int db_external_open(struct db_store *s, const char *etag, uint64_t size,
		     int *fd_out)
{
	struct ext_path *paths = NULL;
	struct db_conn *c;
	struct db_query q;
	int n = 0, rc;

	*fd_out = -1;
	if (!etag_valid(etag))
		return -EINVAL;
	rc = db_thread_query(s, ST_EXT_GOOD, sql_ext_good, &c, &q);
	if (rc)
		return rc;
	sqlite3_bind_text(q.st, 1, etag, -1, SQLITE_STATIC);
	while ((rc = db_step(c, &q)) > 0 && n < MAX_PATHS) {
		struct ext_path *p;

		if (!paths && !(paths = calloc(MAX_PATHS, sizeof(*paths)))) {
			rc = -ENOMEM;
			break;
		}
		p = &paths[n];
		if (db_text(q.st, 0, p->path, sizeof(p->path)) < 0)
			continue;
		p->st.dev = sqlite3_column_int64(q.st, 1);
		p->st.ino = sqlite3_column_int64(q.st, 2);
		p->st.size = sqlite3_column_int64(q.st, 3);
		p->st.mtime_ns = sqlite3_column_int64(q.st, 4);
		n++;
	}
	db_query_end(&q);
	if (rc < 0)
		goto out;
	/* Rows are written only once the walk is over (db.h). */
	rc = -ENOENT;
	for (int i = 0; i < n && rc == -ENOENT; i++) {
		struct stamp now;
		int fd;

		if ((uint64_t)paths[i].st.size != size)
			continue; /* not what the caller wants: left alone */
		if (open_candidate(paths[i].path, size, &fd, &now) == 0) {
			if (stamp_equal(&now, &paths[i].st)) {
				*fd_out = fd;
				rc = 0;
				break;
			}
			close(fd);
		}
		/* Gone or changed: this copy is no longer vouched for. */
		ext_write(s, etag, paths[i].path, NULL, false, true);
	}
out:
	free(paths);
	return rc;
}

int db_external_usage(struct db_store *s, uint64_t *bytes, uint64_t *count)
{
	struct db_conn *c;
	struct db_query q;
	int rc = db_thread_query(s, ST_EXT_USAGE, sql_ext_usage, &c, &q);

	if (rc)
		return rc;
	rc = db_step(c, &q);
	if (rc > 0) {
		*bytes = (uint64_t)sqlite3_column_int64(q.st, 0);
		*count = (uint64_t)sqlite3_column_int64(q.st, 1);
		rc = 0;
	} else if (rc == 0) {
		rc = -EIO;
	}
	db_query_end(&q);
	return rc;
}

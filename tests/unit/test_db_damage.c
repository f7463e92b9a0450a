/*
 * test_db_damage.c - a store damaged on disk: an index overwritten,
 * truncated, emptied or not a database at all is set aside and rebuilt on
 * open; a blob file written or replaced since it was verified is not
 * trusted; db_index_inspect looks at an index without opening it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"

#define SHA1_A "a16a55fda99d2f2e7b69cce5cf93ff4ad3049930"
#define SHA1_B "0123456789abcdef0123456789abcdef01234567"

struct fixture {
	char root[64]; /* mkdtemp folder, removed after */
	char dir[128]; /* the store */
	char index[160];
	struct db_store *s;
};

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->root, sizeof(f->root), "/tmp/hubfs-test-damage-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->dir, sizeof(f->dir), "%s/store", f->root);
	snprintf(f->index, sizeof(f->index), "%s/index.db", f->dir);
	assert_int_equal(db_store_open(&f->s, f->dir), 0);
	assert_null(db_store_repaired(f->s));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	db_store_close(f->s);
	nftw(f->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void install(struct fixture *f, const char *etag, const char *data)
{
	char tmp[PATH_MAX];
	size_t n = strlen(data);
	int fd = db_blob_tmpfile(f->s, tmp, sizeof(tmp));

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	close(fd);
	assert_int_equal(db_blob_install(f->s, tmp, etag, n), 0);
}

/* A store with a blob and enough rows for an index of several pages. */
static void fill(struct fixture *f)
{
	struct db_tree_writer *w;
	struct db_repo r;
	char path[64];

	install(f, SHA1_A, "0123456789");
	assert_int_equal(db_repo_put(f->s, HUB_MODEL, "acme/damage", NULL, &r),
			 0);
	assert_int_equal(db_tree_begin(f->s, r.id, SHA1_B, 1, &w), 0);
	for (int i = 0; i < 3000; i++) {
		struct hub_entry e = { .path = path,
				       .size = 10,
				       .oid = SHA1_A };

		snprintf(path, sizeof(path), "d%02d/file-%05d.txt", i % 50, i);
		assert_int_equal(db_tree_add(w, &e), 0);
	}
	assert_int_equal(db_tree_end(w, true, NULL), 0);
	/* The last connection checkpoints: everything is in index.db. */
	db_store_close(f->s);
	f->s = NULL;
}

static void overwrite(const char *path, off_t off, size_t n)
{
	char junk[8192];
	int fd = open(path, O_WRONLY);

	assert_true(n <= sizeof(junk));
	memset(junk, 0x5a, n);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, junk, n, off), (ssize_t)n);
	close(fd);
}

static off_t size_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

/* Open the damaged store: repaired, the old index beside, a usable one. */
static void reopen_repaired(struct fixture *f)
{
	char pattern[200], blob[PATH_MAX];
	const char *what;
	struct db_repo r;
	uint64_t size;
	glob_t g;

	assert_int_equal(db_store_open(&f->s, f->dir), 0);
	what = db_store_repaired(f->s);
	assert_non_null(what);
	assert_non_null(strstr(what, f->index));
	assert_non_null(strstr(what, "damaged"));
	assert_null(strchr(what, '\n'));
	snprintf(pattern, sizeof(pattern), "%s.corrupt-*", f->index);
	assert_int_equal(glob(pattern, 0, NULL, &g), 0);
	assert_int_equal(g.gl_pathc, 1);
	assert_non_null(strstr(what, g.gl_pathv[0]));
	globfree(&g);
	/* Only the old index vouched for the blob: it is gone. */
	db_blob_path(f->s, SHA1_A, blob, sizeof(blob));
	assert_int_equal(access(blob, F_OK), -1);
	assert_int_equal(db_blob_get(f->s, SHA1_A, &size), -ENOENT);
	assert_int_equal(db_repo_get(f->s, HUB_MODEL, "acme/damage", &r),
			 -ENOENT);
	assert_int_equal(db_repo_put(f->s, HUB_MODEL, "acme/damage", NULL, &r),
			 0);
	install(f, SHA1_A, "0123456789");
	assert_int_equal(db_blob_get(f->s, SHA1_A, &size), 0);
	/* And the next open finds nothing to repair. */
	db_store_close(f->s);
	assert_int_equal(db_index_inspect(f->dir), 0);
	assert_int_equal(db_store_open(&f->s, f->dir), 0);
	assert_null(db_store_repaired(f->s));
}

static void garbage_in_the_middle(void **state)
{
	struct fixture *f = *state;

	fill(f);
	overwrite(f->index, size_of(f->index) / 2 / 4096 * 4096, 8192);
	reopen_repaired(f);
}

static void truncated_to_half(void **state)
{
	struct fixture *f = *state;

	fill(f);
	assert_int_equal(db_index_inspect(f->dir), 0);
	assert_int_equal(truncate(f->index, size_of(f->index) / 2), 0);
	assert_int_equal(db_index_inspect(f->dir), -EIO);
	reopen_repaired(f);
}

static void not_a_database(void **state)
{
	struct fixture *f = *state;

	fill(f);
	overwrite(f->index, 0, 100);
	assert_int_equal(db_index_inspect(f->dir), -EIO);
	assert_non_null(strstr(db_last_error(), f->index));
	reopen_repaired(f);
}

static void emptied_beside_blobs(void **state)
{
	struct fixture *f = *state;

	fill(f);
	assert_int_equal(truncate(f->index, 0), 0);
	assert_int_equal(db_index_inspect(f->dir), -EIO);
	reopen_repaired(f);
}

/* A new store's index is empty too, with no blob beside it. */
static void empty_new_store(void **state)
{
	struct fixture *f = *state;

	db_store_close(f->s);
	assert_int_equal(truncate(f->index, 0), 0);
	assert_int_equal(db_index_inspect(f->dir), 0);
	assert_int_equal(db_store_open(&f->s, f->dir), 0);
	assert_null(db_store_repaired(f->s));
}

static void set_mtime(const char *path, time_t sec, long nsec)
{
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT },
				  { .tv_sec = sec, .tv_nsec = nsec } };

	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

/* Written since it was verified: not trusted; fetched again. */
static void blob_written(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX];
	uint64_t size;
	struct stat st;

	install(f, SHA1_A, "0123456789");
	db_blob_path(f->s, SHA1_A, path, sizeof(path));
	assert_int_equal(db_blob_get(f->s, SHA1_A, &size), 0);
	assert_int_equal(stat(path, &st), 0);
	/* Same size, new bytes, and the mtime a write gives it. */
	overwrite(path, 3, 2);
	set_mtime(path, st.st_mtim.tv_sec + 1, st.st_mtim.tv_nsec);
	assert_int_equal(db_blob_get(f->s, SHA1_A, &size), -ENOENT);
	/* Forgotten for good, even with the old mtime put back. */
	set_mtime(path, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	assert_int_equal(db_blob_get(f->s, SHA1_A, &size), -ENOENT);
	/* Fetched again: installed over the file left behind. */
	install(f, SHA1_A, "0123456789");
	assert_int_equal(db_blob_get(f->s, SHA1_A, &size), 0);
}

/* Replaced by another file (another inode), even one that looks alike. */
static void blob_replaced(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX], other[PATH_MAX + 8];
	uint64_t size;
	struct stat st;
	int fd;

	install(f, SHA1_A, "0123456789");
	db_blob_path(f->s, SHA1_A, path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	snprintf(other, sizeof(other), "%s.new", path);
	fd = open(other, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "0123456789", 10), 10);
	close(fd);
	set_mtime(other, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	assert_int_equal(rename(other, path), 0);
	assert_int_equal(db_blob_get(f->s, SHA1_A, &size), -ENOENT);
}

/*
 * The limit of the cheap check, written down: a change that keeps size,
 * inode and mtime (a bit flipped on disk, or an mtime put back) is not
 * seen without hashing the file.
 */
static void blob_flip_with_mtime_kept(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX];
	uint64_t size;
	struct stat st;

	install(f, SHA1_A, "0123456789");
	db_blob_path(f->s, SHA1_A, path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	overwrite(path, 3, 1);
	set_mtime(path, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	assert_int_equal(db_blob_get(f->s, SHA1_A, &size), 0);
}

/* A row from before stamps were recorded (0, 0) is trusted as before. */
static void blob_without_stamp(void **state)
{
	struct fixture *f = *state;
	sqlite3 *db;
	uint64_t size;

	install(f, SHA1_A, "0123456789");
	db_store_close(f->s);
	assert_int_equal(sqlite3_open(f->index, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      "UPDATE blobs SET ino = 0, mtime_ns = 0",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(db_store_open(&f->s, f->dir), 0);
	assert_int_equal(db_blob_get(f->s, SHA1_A, &size), 0);
	assert_int_equal(size, 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(garbage_in_the_middle), T(truncated_to_half),
		T(not_a_database),	  T(emptied_beside_blobs),
		T(empty_new_store),	  T(blob_written),
		T(blob_replaced),	  T(blob_flip_with_mtime_kept),
		T(blob_without_stamp),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

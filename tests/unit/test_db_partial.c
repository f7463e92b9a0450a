/*
 * test_db_partial.c - blobs being filled: the sparse file, the bitmap and
 * its merging, finishing into blobs/, dropping, and surviving a reopen.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"

#define ETAG "7c5d3f4b8b76583b422fcb9189ad6c89d5d97a094541ce8932dce3ecabde1421"
#define MiB  (1ULL << 20)

struct fixture {
	char dir[64];
	struct db_store *s;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/hubfs-test-partial-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(db_store_open(&f->s, f->dir), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	db_store_close(f->s);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void sparse_file_and_bitmap(void **state)
{
	struct fixture *f = *state;
	uint64_t size = 5 * MiB + 17; /* 6 blocks, the last short */
	struct db_partial p;
	struct stat st;
	uint8_t other[1] = { 0 };

	assert_int_equal(db_partial_open(f->s, ETAG, size, &p), 0);
	assert_int_equal(p.blocks, 6);
	assert_int_equal(db_bitmap_bytes(size, p.shift), 1);
	assert_int_equal(fstat(p.fd, &st), 0);
	assert_int_equal(st.st_size, size);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_true(st.st_blocks < 64); /* sparse */
	assert_int_equal(p.bitmap[0], 0);

	assert_int_equal(
		db_partial_mark(f->s, ETAG, -1, size, p.shift, 1, 2, p.bitmap),
		0);
	assert_int_equal(p.bitmap[0], 0x06);
	/* Another process marks block 5; our next mark merges it in. */
	assert_int_equal(
		db_partial_mark(f->s, ETAG, -1, size, p.shift, 5, 1, NULL), 0);
	assert_int_equal(
		db_partial_refresh(f->s, ETAG, -1, size, p.shift, other), 0);
	assert_int_equal(other[0], 0x26);
	assert_true(db_bit(other, 5) && !db_bit(other, 0));
	assert_int_equal(
		db_partial_mark(f->s, ETAG, -1, size, p.shift, 6, 1, NULL),
		-EINVAL);
	close(p.fd);
	db_partial_free(&p);

	/* A reopen (a new mount after a crash) sees the marks. */
	db_store_close(f->s);
	assert_int_equal(db_store_open(&f->s, f->dir), 0);
	assert_int_equal(db_partial_open(f->s, ETAG, size, &p), 0);
	assert_int_equal(p.bitmap[0], 0x26);
	close(p.fd);
	db_partial_free(&p);

	/* Recorded for another size: discarded, not misapplied. */
	assert_int_equal(db_partial_open(f->s, ETAG, size + 1, &p), 0);
	assert_int_equal(p.bitmap[0], 0);
	close(p.fd);
	db_partial_free(&p);
}

static void finish_and_drop(void **state)
{
	struct fixture *f = *state;
	struct db_partial p;
	char path[PATH_MAX];
	uint64_t size = 3;

	assert_int_equal(db_partial_open(f->s, ETAG, size, &p), 0);
	assert_int_equal(pwrite(p.fd, "abc", 3, 0), 3);
	assert_int_equal(db_blob_get(f->s, ETAG, &size), -ENOENT);
	assert_int_equal(
		db_partial_mark(f->s, ETAG, -1, 3, p.shift, 0, 1, NULL), 0);
	assert_int_equal(db_partial_finish(f->s, ETAG, 3), 0);
	assert_int_equal(db_blob_get(f->s, ETAG, &size), 0);
	assert_int_equal(size, 3);
	db_blob_path(f->s, ETAG, path, sizeof(path));
	assert_int_equal(access(path, R_OK), 0);
	/* The open descriptor still reads the same file after the move. */
	char buf[3];
	assert_int_equal(pread(p.fd, buf, 3, 0), 3);
	assert_memory_equal(buf, "abc", 3);
	close(p.fd);
	db_partial_free(&p);

	/* A blob whose check failed: dropped, bitmap and file. */
	assert_int_equal(db_partial_open(f->s, ETAG, 10, &p), 0);
	assert_int_equal(
		db_partial_mark(f->s, ETAG, -1, 10, p.shift, 0, 1, NULL), 0);
	assert_int_equal(db_partial_drop(f->s, ETAG), 0);
	snprintf(path, sizeof(path), "%s/partial/%s", f->dir, ETAG);
	assert_int_equal(access(path, F_OK), -1);
	close(p.fd);
	db_partial_free(&p);
	assert_int_equal(db_partial_open(f->s, ETAG, 10, &p), 0);
	assert_int_equal(p.bitmap[0], 0);
	close(p.fd);
	db_partial_free(&p);
	assert_int_equal(db_partial_open(f->s, "../../etc/passwd", 10, &p),
			 -EINVAL);
}

static void bitmap_belongs_to_its_file(void **state)
{
	struct fixture *f = *state;
	char from[PATH_MAX], to[PATH_MAX];
	struct db_partial p, q;

	assert_int_equal(db_partial_open(f->s, ETAG, 3 * MiB, &p), 0);
	assert_int_equal(
		db_partial_mark(f->s, ETAG, p.fd, 3 * MiB, p.shift, 0, 3, NULL),
		0);
	/* Another process completes it: the file moves to blobs/ ... */
	snprintf(from, sizeof(from), "%s/partial/%s", f->dir, ETAG);
	snprintf(to, sizeof(to), "%s/blobs/%s", f->dir, ETAG);
	assert_int_equal(rename(from, to), 0);
	/* ... and a new partial file made meanwhile has nothing, whatever
	   the row still says. */
	assert_int_equal(db_partial_open(f->s, ETAG, 3 * MiB, &q), 0);
	assert_int_equal(q.bitmap[0], 0);
	/* The moved file, still open, keeps its marks. */
	memset(p.bitmap, 0, 1);
	assert_int_equal(db_partial_refresh(f->s, ETAG, p.fd, 3 * MiB, p.shift,
					    p.bitmap),
			 0);
	assert_int_equal(p.bitmap[0], 0x07);
	close(p.fd);
	close(q.fd);
	db_partial_free(&p);
	db_partial_free(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(sparse_file_and_bitmap, setup,
						teardown),
		cmocka_unit_test_setup_teardown(finish_and_drop, setup,
						teardown),
		cmocka_unit_test_setup_teardown(bitmap_belongs_to_its_file,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_db_chunks.c - where the chunks of Xet xorbs lie in blobs
 * (db.h, "Xet chunks"): runs count only once their blob is complete, the
 * most recently used blob wins, a longer run replaces a shorter one, and
 * runs go with their blob (dropped, evicted, a partial blob dropped).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"

#define X1 "1111111111111111111111111111111111111111111111111111111111111111"
#define X2 "2222222222222222222222222222222222222222222222222222222222222222"
#define E1 "e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1"
#define E2 "e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2"
#define E3 "e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3"

struct fixture {
	char dir[64];
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
	snprintf(f->dir, sizeof(f->dir), "/tmp/hubfs-test-chunks-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(db_store_open(&f->s, f->dir), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	db_store_close(f->s);
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* One SQL statement on the index from outside db/: its first column. */
static long long sql_int(const struct fixture *f, const char *sql)
{
	char path[PATH_MAX];
	sqlite3 *db;
	sqlite3_stmt *st;
	long long v = -1;

	snprintf(path, sizeof(path), "%s/index.db", f->dir);
	assert_int_equal(
		sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL),
		SQLITE_OK);
	sqlite3_busy_timeout(db, 10000);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* A complete blob of size bytes, used at time `age`. */
static void complete_blob(struct fixture *f, const char *etag, uint64_t size,
			  int age)
{
	char tmp[PATH_MAX], sql[200];
	int fd = db_blob_tmpfile(f->s, tmp, sizeof(tmp));

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	close(fd);
	assert_int_equal(db_blob_install(f->s, tmp, etag, size), 0);
	snprintf(sql, sizeof(sql),
		 "UPDATE blobs SET last_used = %d WHERE etag = '%s'", age,
		 etag);
	sql_int(f, sql);
}

static long long runs_of(const struct fixture *f, const char *etag)
{
	char sql[160];

	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM chunks WHERE blob = '%s'", etag);
	return sql_int(f, sql);
}

static const uint32_t L4[] = { 1000, 2000, 3000, 4000 };

/* Runs of a blob being filled count once it is complete, not before. */
static void complete_only(void **state)
{
	struct fixture *f = *state;
	struct db_chunk_run run = { X1, 10, 4, L4, 500 };
	struct db_chunk_at at[4];
	struct db_partial p;

	assert_int_equal(db_partial_open(f->s, E1, 20000, &p), 0);
	close(p.fd);
	db_partial_free(&p);
	assert_int_equal(db_chunks_put(f->s, E1, &run, 1), 0);
	assert_int_equal(db_chunks_locate(f->s, X1, 10, 14, at), -ENOENT);
	assert_string_equal(at[0].etag, "");

	/* Complete (verified by its caller): the same rows now count. */
	assert_int_equal(db_partial_finish(f->s, E1, 20000), 0);
	assert_int_equal(db_chunks_locate(f->s, X1, 10, 14, at), 0);
	for (int i = 0; i < 4; i++)
		assert_string_equal(at[i].etag, E1);
	assert_int_equal(at[0].offset, 500);
	assert_int_equal(at[1].offset, 1500);
	assert_int_equal(at[2].offset, 3500);
	assert_int_equal(at[3].offset, 6500);
	assert_int_equal(at[3].length, 4000);

	/* A part of the run, and a range past it. */
	assert_int_equal(db_chunks_locate(f->s, X1, 12, 13, at), 0);
	assert_int_equal(at[0].offset, 3500);
	assert_int_equal(at[0].length, 3000);
	assert_int_equal(db_chunks_locate(f->s, X1, 13, 15, at), -ENOENT);
	assert_string_equal(at[0].etag, E1);
	assert_string_equal(at[1].etag, "");
	assert_int_equal(db_chunks_locate(f->s, X2, 10, 14, at), -ENOENT);
}

/* Chunks from several runs and blobs; the most recently used blob wins. */
static void several_blobs(void **state)
{
	struct fixture *f = *state;
	struct db_chunk_run r1[] = { { X1, 0, 4, L4, 0 },
				     { X2, 0, 2, L4, 10000 } };
	struct db_chunk_run r2 = { X1, 2, 4, L4, 100 };
	struct db_chunk_at at[6];

	complete_blob(f, E1, 20000, 100);
	complete_blob(f, E2, 20000, 200);
	assert_int_equal(db_chunks_put(f->s, E1, r1, 2), 0);
	assert_int_equal(db_chunks_put(f->s, E2, &r2, 1), 0);
	assert_int_equal(db_chunks_locate(f->s, X1, 0, 6, at), 0);
	assert_string_equal(at[0].etag, E1);
	assert_string_equal(at[1].etag, E1);
	/* E2 is the more recent: chunks 2 to 5 from it */
	for (int i = 2; i < 6; i++)
		assert_string_equal(at[i].etag, E2);
	assert_int_equal(at[2].offset, 100);
	assert_int_equal(at[5].offset, 100 + 1000 + 2000 + 3000);
	assert_int_equal(db_chunks_locate(f->s, X2, 0, 2, at), 0);
	assert_int_equal(at[1].offset, 11000);

	/* Dropped: its runs go, and E1's copies answer. */
	assert_int_equal(db_blob_drop(f->s, E2), 0);
	assert_int_equal(runs_of(f, E2), 0);
	assert_int_equal(db_chunks_locate(f->s, X1, 0, 6, at), -ENOENT);
	assert_string_equal(at[3].etag, E1);
	assert_int_equal(at[3].offset, 6000);
	assert_string_equal(at[4].etag, "");
}

/* One run per (xorb, first chunk, blob): the longest written stays. */
static void longest_run_kept(void **state)
{
	struct fixture *f = *state;
	struct db_chunk_run shorter = { X1, 0, 2, L4, 0 };
	struct db_chunk_run longer = { X1, 0, 4, L4, 0 };
	struct db_chunk_at at[4];

	complete_blob(f, E1, 20000, 100);
	assert_int_equal(db_chunks_put(f->s, E1, &shorter, 1), 0);
	assert_int_equal(db_chunks_put(f->s, E1, &longer, 1), 0);
	assert_int_equal(db_chunks_put(f->s, E1, &shorter, 1), 0);
	assert_int_equal(runs_of(f, E1), 1);
	assert_int_equal(db_chunks_locate(f->s, X1, 0, 4, at), 0);
	assert_int_equal(at[3].offset, 6000);
}

/* Runs go with their blob however it goes: eviction, a partial drop. */
static void dropped_with_blob(void **state)
{
	struct fixture *f = *state;
	struct db_chunk_run run = { X1, 0, 4, L4, 0 };
	struct db_chunk_at at[4];
	struct db_partial p;
	uint64_t freed = 0;

	complete_blob(f, E1, 20000, 100);
	assert_int_equal(db_chunks_put(f->s, E1, &run, 1), 0);
	assert_int_equal(db_evict(f->s, 0, false, NULL, NULL, &freed), 0);
	assert_int_equal(freed, 20000);
	assert_int_equal(runs_of(f, E1), 0);
	assert_int_equal(db_chunks_locate(f->s, X1, 0, 4, at), -ENOENT);

	assert_int_equal(db_partial_open(f->s, E3, 20000, &p), 0);
	close(p.fd);
	db_partial_free(&p);
	assert_int_equal(db_chunks_put(f->s, E3, &run, 1), 0);
	assert_int_equal(runs_of(f, E3), 1);
	assert_int_equal(db_partial_drop(f->s, E3), 0);
	assert_int_equal(runs_of(f, E3), 0);
}

/* Bad arguments record nothing. */
static void refused(void **state)
{
	struct fixture *f = *state;
	static const uint32_t zero[] = { 1000, 0 }, huge[] = { 131073 };
	struct db_chunk_run good = { X1, 0, 4, L4, 0 };
	struct db_chunk_run bad[] = {
		{ "1111", 0, 4, L4, 0 },
		{ X1, 0, 0, L4, 0 },
		{ X1, 0, 2, zero, 0 },
		{ X1, 0, 1, huge, 0 },
		{ X1, UINT32_MAX - 1, 4, L4, 0 },
		{ X1, 0, 4, NULL, 0 },
	};
	struct db_chunk_at at[1];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct db_chunk_run two[] = { good, bad[i] };

		assert_int_equal(db_chunks_put(f->s, E1, two, 2), -EINVAL);
	}
	assert_int_equal(db_chunks_put(f->s, "e1", &good, 1), -EINVAL);
	assert_int_equal(db_chunks_put(f->s, E1, &good, 0), 0);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM chunks"), 0);
	assert_int_equal(db_chunks_locate(f->s, "x", 0, 1, at), -EINVAL);
	assert_int_equal(db_chunks_locate(f->s, X1, 1, 1, at), -EINVAL);
}

/* A file of 16,384 chunks, as a 1 GiB read records it: a run per batch
   of 256 chunks, one transaction each; every chunk found afterwards. */
static void big_file(void **state)
{
	struct fixture *f = *state;
	enum { CHUNKS = 16384, BATCH = 256 };
	uint32_t *len = malloc(CHUNKS * sizeof(*len));
	struct db_chunk_at *at = malloc(CHUNKS * sizeof(*at));
	uint64_t off = 0;

	assert_non_null(len);
	assert_non_null(at);
	for (uint32_t i = 0; i < CHUNKS; i++)
		len[i] = 8192 + (i * 7919) % 65536;
	complete_blob(f, E1, 1, 100);
	for (uint32_t b = 0; b < CHUNKS; b += BATCH) {
		struct db_chunk_run run = { X1, b, BATCH, len + b, off };

		assert_int_equal(db_chunks_put(f->s, E1, &run, 1), 0);
		for (uint32_t i = b; i < b + BATCH; i++)
			off += len[i];
	}
	assert_int_equal(runs_of(f, E1), CHUNKS / BATCH);
	assert_int_equal(db_chunks_locate(f->s, X1, 0, CHUNKS, at), 0);
	off = 0;
	for (uint32_t i = 0; i < CHUNKS; i++) {
		assert_int_equal(at[i].offset, off);
		assert_int_equal(at[i].length, len[i]);
		off += len[i];
	}
	free(len);
	free(at);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(complete_only, setup, teardown),
		cmocka_unit_test_setup_teardown(several_blobs, setup, teardown),
		cmocka_unit_test_setup_teardown(longest_run_kept, setup,
						teardown),
		cmocka_unit_test_setup_teardown(dropped_with_blob, setup,
						teardown),
		cmocka_unit_test_setup_teardown(refused, setup, teardown),
		cmocka_unit_test_setup_teardown(big_file, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

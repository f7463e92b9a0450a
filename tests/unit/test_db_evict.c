/*
 * test_db_evict.c - settings, the in-use hold, store usage and LRU
 * eviction that skips held and pinned blobs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"

#define A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define C "cccccccccccccccccccccccccccccccccccccccc"
#define P "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"

static char dir[64];

static void put_blob(struct db_store *s, const char *etag, int age)
{
	char tmp[PATH_MAX], sql[160];
	int fd = db_blob_tmpfile(s, tmp, sizeof(tmp));
	sqlite3 *db;
	char path[PATH_MAX];

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "0123456789", 10), 10);
	close(fd);
	assert_int_equal(db_blob_install(s, tmp, etag, 10), 0);
	/* Set the order of last use by hand. */
	snprintf(path, sizeof(path), "%s/index.db", dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	snprintf(sql, sizeof(sql),
		 "UPDATE blobs SET last_used = %d WHERE etag = '%s'", age,
		 etag);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static bool present(struct db_store *s, const char *etag)
{
	uint64_t size;

	return db_blob_get(s, etag, &size) == 0;
}

static int count_one(void *arg, const char *etag, uint64_t bytes, bool partial)
{
	(void)etag;
	(void)bytes;
	(void)partial;
	(*(unsigned *)arg)++;
	return 0;
}

static void evict_lru_skipping_held(void **state)
{
	struct db_store *s;
	struct db_partial p;
	uint64_t used, freed;
	int64_t v;
	char path[PATH_MAX];
	int held;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/hubfs-test-evict-XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(db_store_open(&s, dir), 0);

	assert_int_equal(db_setting_get(s, DB_SETTING_MAX_CACHE, &v), -ENOENT);
	assert_int_equal(db_setting_put(s, DB_SETTING_MAX_CACHE, 1 << 30), 0);
	assert_int_equal(db_setting_get(s, DB_SETTING_MAX_CACHE, &v), 0);
	assert_int_equal(v, 1 << 30);

	put_blob(s, A, 1);
	put_blob(s, B, 2);
	put_blob(s, C, 3);
	/* A partial blob with two of its 1 MiB blocks present. */
	assert_int_equal(db_partial_open(s, P, 5 << 20, &p), 0);
	assert_int_equal(
		db_partial_mark(s, P, -1, 5 << 20, p.shift, 1, 2, NULL), 0);
	close(p.fd);
	db_partial_free(&p);
	assert_int_equal(db_store_usage(s, &used), 0);
	assert_int_equal(used, 30 + (2 << 20));

	/* B is open somewhere: never evicted. */
	db_blob_path(s, B, path, sizeof(path));
	held = open(path, O_RDONLY);
	assert_true(held >= 0);
	assert_int_equal(db_blob_hold(held), 0);

	/* A dry run says what would go, and removes nothing. */
	unsigned would = 0;

	assert_int_equal(db_evict(s, 15, true, count_one, &would, &freed), 0);
	assert_int_equal(would, 3);
	assert_int_equal(freed, 20 + (2 << 20));
	assert_true(present(s, A) && present(s, C));

	/* Down to 15 bytes: the partial blob goes too, then A and C; B stays.
	 */
	assert_int_equal(db_evict(s, 15, false, NULL, NULL, &freed), 0);
	assert_false(present(s, A));
	assert_true(present(s, B));
	assert_false(present(s, C));
	assert_int_equal(db_store_usage(s, &used), 0);
	assert_int_equal(used, 10);
	assert_int_equal(freed, 20 + (2 << 20));

	/* Nothing else can go while B is held: still 0, still there. */
	assert_int_equal(db_evict(s, 0, false, NULL, NULL, NULL), 0);
	assert_true(present(s, B));
	close(held);
	assert_int_equal(db_evict(s, 0, false, NULL, NULL, NULL), 0);
	assert_false(present(s, B));

	db_store_close(s);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	assert_int_equal(system(path), 0);
}

static void touch_orders_lru(void **state)
{
	struct db_store *s;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/hubfs-test-evict-XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(db_store_open(&s, dir), 0);
	put_blob(s, A, 1);
	put_blob(s, B, 2);
	assert_int_equal(db_blob_touch(s, A), 0); /* A: used now */
	assert_int_equal(db_evict(s, 10, false, NULL, NULL, NULL), 0);
	assert_true(present(s, A));
	assert_false(present(s, B));
	db_store_close(s);
	char cmd[96];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* Pinned blobs, complete or partial, outlive any limit until unpinned. */
static void pins_hold_until_unpinned(void **state)
{
	struct db_store *s;
	struct db_repo r, other;
	struct db_partial p;
	struct db_pin_usage u;
	uint64_t removed;
	const struct db_pin pins[] = { { A, 10 }, { P, 5 << 20 } };
	const struct db_pin bad[] = { { "../x", 1 } };
	char cmd[96];

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/hubfs-test-evict-XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(db_store_open(&s, dir), 0);
	assert_int_equal(db_repo_put(s, HUB_MODEL, "org/a", "", &r), 0);
	assert_int_equal(db_repo_put(s, HUB_MODEL, "org/b", "", &other), 0);
	put_blob(s, A, 1);
	put_blob(s, B, 2);
	assert_int_equal(db_partial_open(s, P, 5 << 20, &p), 0);
	assert_int_equal(
		db_partial_mark(s, P, -1, 5 << 20, p.shift, 0, 1, NULL), 0);
	close(p.fd);
	db_partial_free(&p);

	assert_int_equal(db_pin_add(s, r.id, "main", bad, 1), -EINVAL);
	assert_int_equal(db_pin_add(s, r.id, "main", pins, 2), 0);
	assert_int_equal(db_pin_add(s, r.id, "", pins, 1), 0);
	assert_int_equal(db_pin_add(s, other.id, "", pins, 1), 0);
	assert_int_equal(db_pin_usage(s, &u), 0);
	assert_int_equal(u.blobs, 2); /* A counted once */
	assert_int_equal(u.bytes, 10 + (5 << 20));
	assert_int_equal(u.complete_bytes, 10);

	/* Only B can go. */
	assert_int_equal(db_evict(s, 0, false, NULL, NULL, NULL), 0);
	assert_true(present(s, A));
	assert_false(present(s, B));
	struct db_partial again;

	assert_int_equal(db_partial_open(s, P, 5 << 20, &again), 0);
	assert_true(db_bit(again.bitmap, 0));
	close(again.fd);
	db_partial_free(&again);

	/* Unpinning one revision leaves A pinned by the others. */
	assert_int_equal(db_pin_remove(s, r.id, "main", &removed), 0);
	assert_int_equal(removed, 2);
	assert_int_equal(db_evict(s, 0, false, NULL, NULL, NULL), 0);
	assert_true(present(s, A));
	assert_int_equal(db_pin_remove(s, r.id, NULL, &removed), 0);
	assert_int_equal(removed, 1);
	assert_true(present(s, A));
	/* Forgetting the last repo that pins A lets it go, and its alias. */
	struct db_repo alias;

	assert_int_equal(db_repo_put(s, HUB_MODEL, "b", "org/b", &alias), 0);
	assert_int_equal(db_repo_put(s, HUB_DATASET, "b", "org/b", NULL), 0);
	assert_int_equal(db_repo_forget(s, other.id), 0);
	assert_int_equal(db_repo_forget(s, other.id), -ENOENT);
	assert_int_equal(db_pin_usage(s, &u), 0);
	assert_int_equal(u.blobs, 0);
	assert_int_equal(db_evict(s, 0, false, NULL, NULL, NULL), 0);
	assert_false(present(s, A));
	assert_int_equal(db_repo_get(s, HUB_MODEL, "org/b", &other), -ENOENT);

	db_store_close(s);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(evict_lru_skipping_held),
		cmocka_unit_test(touch_orders_lru),
		cmocka_unit_test(pins_hold_until_unpinned),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

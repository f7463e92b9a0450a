/*
 * test_db_report.c - the read-only reports behind "hubfs ls": repos in
 * order, revisions and pinned commits, and the bytes held locally per file
 * (complete blobs, present blocks of partial ones, the short last block,
 * stale bitmaps).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"

#define MiB (1ULL << 20)

#define C1 "1111111111111111111111111111111111111111"
#define C2 "2222222222222222222222222222222222222222"
#define C3 "3333333333333333333333333333333333333333"

#define E_SMALL "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define E_BIG	"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define E_HALF                                                                 \
	"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define E_EMPTY "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"

struct fixture {
	char dir[64];
	struct db_store *s;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/hubfs-test-report-XXXXXX");
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

static void add_tree(struct db_store *s, int64_t repo, const char *commit,
		     const struct hub_entry *e, size_t n, struct db_tree *out)
{
	struct db_tree_writer *w;

	assert_int_equal(db_tree_begin(s, repo, commit, 1700000000, &w), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(db_tree_add(w, &e[i]), 0);
	assert_int_equal(db_tree_end(w, true, out), 0);
}

/* ---- Repos and revisions ----------------------------------------------- */

struct names {
	char got[8][600];
	int n;
};

static int collect_repo(void *arg, const struct db_repo *r)
{
	struct names *l = arg;

	assert_true(l->n < 8);
	snprintf(l->got[l->n++], sizeof(l->got[0]), "%d:%s>%s", (int)r->type,
		 r->name, r->canonical);
	return 0;
}

static int collect_rev(void *arg, const struct db_report_rev *r)
{
	struct names *l = arg;

	assert_true(l->n < 8);
	snprintf(l->got[l->n++], sizeof(l->got[0]), "%s%s=%.4s/%s",
		 r->pinned ? "pinned" : "", r->rev, r->commit,
		 r->tree ? "listed" : "-");
	return 0;
}

static void repos_in_order(void **state)
{
	struct fixture *f = *state;
	struct names l = { 0 };

	assert_int_equal(db_repo_put(f->s, HUB_DATASET, "acme/data", "", NULL),
			 0);
	assert_int_equal(db_repo_put(f->s, HUB_MODEL, "zed/model", "", NULL),
			 0);
	assert_int_equal(db_repo_put(f->s, HUB_MODEL, "gpt2",
				     "openai-community/gpt2", NULL),
			 0);
	assert_int_equal(db_report_repos(f->s, collect_repo, &l), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.got[0], "0:gpt2>openai-community/gpt2");
	assert_string_equal(l.got[1], "0:zed/model>");
	assert_string_equal(l.got[2], "1:acme/data>");
}

static void revisions_and_pinned(void **state)
{
	struct fixture *f = *state;
	struct hub_entry e = { .path = "a.txt", .size = 3, .oid = E_SMALL };
	struct names l = { 0 };
	struct db_repo r;
	struct db_tree t;

	assert_int_equal(db_repo_put(f->s, HUB_MODEL, "acme/m", "", &r), 0);
	add_tree(f->s, r.id, C1, &e, 1, &t);
	add_tree(f->s, r.id, C3, &e, 1, &t);
	assert_int_equal(db_revision_put(f->s, r.id, "", C1, 100), 0);
	assert_int_equal(db_revision_put(f->s, r.id, "main", C1, 100), 0);
	assert_int_equal(db_revision_put(f->s, r.id, "v1.0", C2, 50), 0);
	assert_int_equal(db_report_revisions(f->s, r.id, collect_rev, &l), 0);
	assert_int_equal(l.n, 4);
	assert_string_equal(l.got[0], "=1111/listed");
	assert_string_equal(l.got[1], "main=1111/listed");
	assert_string_equal(l.got[2], "v1.0=2222/-"); /* resolved, not listed */
	assert_string_equal(l.got[3], "pinned=3333/listed");
}

/* ---- Files and local bytes --------------------------------------------- */

struct file_row {
	char path[64];
	uint64_t size, local;
	bool complete;
};

struct files {
	struct file_row row[8];
	int n;
};

static int collect_file(void *arg, const struct db_report_file *fr)
{
	struct files *l = arg;
	struct file_row *r = &l->row[l->n++];

	assert_true(l->n <= 8);
	snprintf(r->path, sizeof(r->path), "%s", fr->path);
	r->size = fr->size;
	r->local = fr->local;
	r->complete = fr->complete;
	assert_true(fr->local <= fr->size);
	return 0;
}

static void local_bytes(void **state)
{
	struct fixture *f = *state;
	uint64_t big = 5 * MiB + 17; /* 6 blocks, the last 17 bytes */
	uint64_t half = 4 * MiB;
	const struct hub_entry e[] = {
		{ .path = "z/small.txt", .size = 10, .oid = E_SMALL },
		{ .path = "big.bin",
		  .size = big,
		  .oid = E_SMALL,
		  .lfs_oid = E_BIG },
		{ .path = "half.bin",
		  .size = half,
		  .oid = E_SMALL,
		  .lfs_oid = E_HALF },
		{ .path = "empty", .size = 0, .oid = E_EMPTY },
		{ .path = "z", .is_dir = true, .oid = E_SMALL },
	};
	struct files l = { 0 };
	struct db_partial p;
	struct db_repo r;
	struct db_tree t;

	assert_int_equal(db_repo_put(f->s, HUB_MODEL, "acme/m", "", &r), 0);
	add_tree(f->s, r.id, C1, e, 5, &t);
	/* small.txt complete; big.bin has blocks 1, 2 and the short last. */
	assert_int_equal(db_blob_put(f->s, E_SMALL, 10), 0);
	assert_int_equal(db_partial_open(f->s, E_BIG, big, &p), 0);
	assert_int_equal(
		db_partial_mark(f->s, E_BIG, -1, big, p.shift, 1, 2, NULL), 0);
	assert_int_equal(
		db_partial_mark(f->s, E_BIG, -1, big, p.shift, 5, 1, NULL), 0);
	db_partial_free(&p);
	/* half.bin: a bitmap recorded for another size counts nothing. */
	assert_int_equal(db_partial_open(f->s, E_HALF, half + 1, &p), 0);
	close(p.fd);
	db_partial_free(&p);
	assert_int_equal(
		db_partial_mark(f->s, E_HALF, -1, half + 1, 20, 0, 1, NULL), 0);

	assert_int_equal(db_report_files(f->s, t.id, collect_file, &l), 0);
	assert_int_equal(l.n, 4); /* folders are not files */
	assert_string_equal(l.row[0].path, "big.bin");
	assert_int_equal(l.row[0].local, 2 * MiB + 17);
	assert_false(l.row[0].complete);
	assert_string_equal(l.row[1].path, "empty");
	assert_true(l.row[1].complete);
	assert_int_equal(l.row[1].local, 0);
	assert_string_equal(l.row[2].path, "half.bin");
	assert_int_equal(l.row[2].local, 0);
	assert_string_equal(l.row[3].path, "z/small.txt");
	assert_int_equal(l.row[3].local, 10);
	assert_true(l.row[3].complete);

	/* Every block: the whole size, no more. */
	assert_int_equal(db_partial_mark(f->s, E_BIG, -1, big, 20, 0, 6, NULL),
			 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(db_report_files(f->s, t.id, collect_file, &l), 0);
	assert_int_equal(l.row[0].local, big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(repos_in_order, setup,
						teardown),
		cmocka_unit_test_setup_teardown(revisions_and_pinned, setup,
						teardown),
		cmocka_unit_test_setup_teardown(local_bytes, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

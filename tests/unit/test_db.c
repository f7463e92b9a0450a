/*
 * test_db.c - the store: its folder and modes, repos, owners and listings,
 * revisions, commit trees (implied folders, order, atomicity, a 100,000
 * entry tree), blobs, reopening, and several threads at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "db.h"

/* The schema version this hubfs writes (db/schema.c). */
#define SCHEMA_VERSION 9
#define SCHEMA_TEXT    "9"

#define SHA1_A "a16a55fda99d2f2e7b69cce5cf93ff4ad3049930"
#define SHA1_B "0123456789abcdef0123456789abcdef01234567"
#define SHA1_C "fedcba9876543210fedcba9876543210fedcba98"
#define SHA256_A                                                               \
	"7c5d3f4b8b76583b422fcb9189ad6c89d5d97a094541ce8932dce3ecabde1421"
#define SHA256_B                                                               \
	"9be78edb5a5436aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

struct fixture {
	char root[64]; /* mkdtemp folder, removed after */
	char dir[128]; /* the store, two levels below root */
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
	snprintf(f->root, sizeof(f->root), "/tmp/hubfs-test-db-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->dir, sizeof(f->dir), "%s/cache/hubfs", f->root);
	assert_int_equal(db_store_open(&f->s, f->dir), 0);
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

static void reopen(struct fixture *f)
{
	db_store_close(f->s);
	f->s = NULL;
	assert_int_equal(db_store_open(&f->s, f->dir), 0);
}

static mode_t mode_of(const char *dir, const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

/* Run one SQL statement on the index from outside db/; its first column. */
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

/* Names handed to a db_name_fn, joined with ','. */
struct names {
	char buf[1024];
	int calls;
	int stop_after; /* return 7 after this many calls, 0: never */
};

static int add_name(void *arg, const char *name)
{
	struct names *n = arg;
	size_t len = strlen(n->buf);

	snprintf(n->buf + len, sizeof(n->buf) - len, "%s%s", len ? "," : "",
		 name);
	n->calls++;
	return n->stop_after && n->calls >= n->stop_after ? 7 : 0;
}

/* ---- The store --------------------------------------------------------- */

static void store_layout(void **state)
{
	struct fixture *f = *state;
	char real[PATH_MAX];
	struct db_repo r;

	assert_non_null(realpath(f->dir, real));
	assert_string_equal(db_store_dir(f->s), real);
	assert_int_equal(mode_of(f->root, "cache"), 0700);
	assert_int_equal(mode_of(f->dir, ""), 0700);
	assert_int_equal(mode_of(f->dir, "blobs"), 0700);
	assert_int_equal(mode_of(f->dir, "tmp"), 0700);
	assert_int_equal(mode_of(f->dir, "index.db"), 0600);
	assert_int_equal(db_repo_put(f->s, HUB_MODEL, "org/name", "", &r), 0);
	assert_int_equal(mode_of(f->dir, "index.db-wal"), 0600);
	assert_int_equal(mode_of(f->dir, "index.db-shm"), 0600);
	assert_int_equal(sql_int(f, "PRAGMA user_version"), SCHEMA_VERSION);
}

static void store_not_a_folder(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX];
	struct db_store *s = (struct db_store *)1;
	int fd;

	snprintf(path, sizeof(path), "%s/file", f->root);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(db_store_open(&s, path), -ENOTDIR);
	assert_null(s);
	db_store_close(NULL);
}

static void store_newer_schema(void **state)
{
	struct fixture *f = *state;

	sql_int(f, "PRAGMA user_version = 99");
	db_store_close(f->s);
	f->s = NULL;
	assert_int_equal(db_store_open(&f->s, f->dir), -EPROTO);
	assert_non_null(strstr(db_last_error(), "99"));
	sql_int(f, "PRAGMA user_version = " SCHEMA_TEXT);
	reopen(f);

	/* A version 1 store (before partial blobs) is migrated on open. */
	sql_int(f, "DROP TABLE partial");
	sql_int(f, "DROP TABLE settings");
	sql_int(f, "DROP TABLE pins");
	sql_int(f, "ALTER TABLE blobs DROP COLUMN ino");
	sql_int(f, "ALTER TABLE blobs DROP COLUMN mtime_ns");
	sql_int(f, "DROP INDEX entries_etag");
	sql_int(f, "ALTER TABLE entries DROP COLUMN oid");
	sql_int(f, "ALTER TABLE entries DROP COLUMN xet");
	sql_int(f, "DROP TABLE external");
	sql_int(f, "DROP TABLE chunks");
	sql_int(f, "PRAGMA user_version = 1");
	reopen(f);
	assert_int_equal(sql_int(f, "PRAGMA user_version"), SCHEMA_VERSION);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM partial"), 0);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM pins"), 0);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM external"), 0);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM chunks"), 0);
}

static void default_dir(void **state)
{
	char *saved_xdg = getenv("XDG_CACHE_HOME");
	char *saved_home = getenv("HOME");
	char *d;

	(void)state;
	saved_xdg = saved_xdg ? strdup(saved_xdg) : NULL;
	saved_home = saved_home ? strdup(saved_home) : NULL;
	setenv("XDG_CACHE_HOME", "/x/cache", 1);
	setenv("HOME", "/home/u", 1);
	d = db_default_dir();
	assert_string_equal(d, "/x/cache/hubfs");
	free(d);
	setenv("XDG_CACHE_HOME", "relative", 1);
	d = db_default_dir();
	assert_string_equal(d, "/home/u/.cache/hubfs");
	free(d);
	unsetenv("XDG_CACHE_HOME");
	unsetenv("HOME");
	assert_null(db_default_dir());
	if (saved_xdg)
		setenv("XDG_CACHE_HOME", saved_xdg, 1);
	if (saved_home)
		setenv("HOME", saved_home, 1);
	free(saved_xdg);
	free(saved_home);
}

/* ---- Repos, owners, listings, revisions -------------------------------- */

static void repos(void **state)
{
	struct fixture *f = *state;
	struct db_repo r, g;
	time_t now = time(NULL);

	assert_int_equal(db_repo_get(f->s, HUB_MODEL, "org/a", &g), -ENOENT);
	assert_int_equal(db_repo_put(f->s, HUB_MODEL, "org/a", "", &r), 0);
	assert_true(r.id > 0);
	assert_int_equal(r.type, HUB_MODEL);
	assert_string_equal(r.name, "org/a");
	assert_string_equal(r.canonical, "");
	assert_true(r.last_used >= now && r.last_used <= now + 5);
	assert_int_equal(db_repo_get(f->s, HUB_MODEL, "org/a", &g), 0);
	assert_int_equal(g.id, r.id);

	/* A rename, then a touch that keeps it, then a clear. */
	assert_int_equal(db_repo_put(f->s, HUB_MODEL, "org/a", "org/b", &g), 0);
	assert_int_equal(g.id, r.id);
	assert_string_equal(g.canonical, "org/b");
	assert_int_equal(db_repo_put(f->s, HUB_MODEL, "org/a", NULL, NULL), 0);
	assert_int_equal(db_repo_get(f->s, HUB_MODEL, "org/a", &g), 0);
	assert_string_equal(g.canonical, "org/b");
	assert_int_equal(db_repo_put(f->s, HUB_MODEL, "org/a", "", &g), 0);
	assert_string_equal(g.canonical, "");

	/* A legacy id, and the same name as another type. */
	assert_int_equal(db_repo_put(f->s, HUB_MODEL, "gpt2",
				     "openai-community/gpt2", &g),
			 0);
	assert_string_equal(g.canonical, "openai-community/gpt2");
	assert_int_equal(db_repo_put(f->s, HUB_DATASET, "org/a", "", &g), 0);
	assert_int_not_equal(g.id, r.id);
	assert_int_equal(g.type, HUB_DATASET);

	assert_int_equal(db_repo_put(f->s, HUB_MODEL, "a/b/c", "", NULL),
			 -EINVAL);
	assert_int_equal(db_repo_put(f->s, HUB_MODEL, "../etc", "", NULL),
			 -EINVAL);
	assert_int_equal(db_repo_put(f->s, HUB_MODEL, "org/c", "x y", NULL),
			 -EINVAL);
	assert_int_equal(db_repo_get(f->s, HUB_MODEL, "org/c", &g), -ENOENT);
}

static void owners_and_listings(void **state)
{
	struct fixture *f = *state;
	const char *z[] = { "z-org/r2", "z-org/r1",  "Z-ORG/r3",
			    "other/x",	"z-org/a b", "z-org" };
	const char *b[] = { "b-org/four", "b-org/one" };
	const char *z2[] = { "z-org/r9" };
	struct names n = { 0 };
	int64_t at;

	assert_int_equal(db_repo_put(f->s, HUB_MODEL, "b-org/one", "", NULL),
			 0);
	assert_int_equal(db_repo_put(f->s, HUB_MODEL, "a-org/two", "", NULL),
			 0);
	assert_int_equal(db_repo_put(f->s, HUB_MODEL, "b-org/three", "", NULL),
			 0);
	assert_int_equal(db_repo_put(f->s, HUB_MODEL, "gpt2", "", NULL), 0);
	assert_int_equal(db_repo_put(f->s, HUB_DATASET, "c-org/data", "", NULL),
			 0);
	assert_int_equal(db_owners(f->s, HUB_MODEL, add_name, &n), 0);
	assert_string_equal(n.buf, "a-org,b-org");

	assert_int_equal(db_listing_age(f->s, HUB_MODEL, "z-org", &at),
			 -ENOENT);
	assert_int_equal(db_listing_put(f->s, HUB_MODEL, "z-org", z, 6, 1000),
			 0);
	assert_int_equal(db_listing_age(f->s, HUB_MODEL, "z-org", &at), 0);
	assert_int_equal(at, 1000);
	assert_int_equal(db_listing_put(f->s, HUB_MODEL, "b-org", b, 2, 1001),
			 0);
	assert_int_equal(
		db_listing_put(f->s, HUB_MODEL, "e-org", NULL, 0, 1002), 0);
	assert_int_equal(db_listing_age(f->s, HUB_MODEL, "e-org", &at), 0);
	assert_int_equal(at, 1002);

	memset(&n, 0, sizeof(n));
	assert_int_equal(db_owners(f->s, HUB_MODEL, add_name, &n), 0);
	assert_string_equal(n.buf, "a-org,b-org,z-org");
	memset(&n, 0, sizeof(n));
	assert_int_equal(db_owners(f->s, HUB_DATASET, add_name, &n), 0);
	assert_string_equal(n.buf, "c-org");
	memset(&n, 0, sizeof(n));
	assert_int_equal(db_owner_repos(f->s, HUB_MODEL, "z-org", add_name, &n),
			 0);
	assert_string_equal(n.buf, "r1,r2,r3");
	memset(&n, 0, sizeof(n));
	assert_int_equal(db_owner_repos(f->s, HUB_MODEL, "b-org", add_name, &n),
			 0);
	assert_string_equal(n.buf, "four,one,three");
	memset(&n, 0, sizeof(n));
	assert_int_equal(db_owner_repos(f->s, HUB_MODEL, "e-org", add_name, &n),
			 0);
	assert_string_equal(n.buf, "");
	assert_int_equal(db_owner_repos(f->s, HUB_MODEL, "a/b", add_name, &n),
			 -EINVAL);

	/* A walk stops at the callback's first non-zero return. */
	memset(&n, 0, sizeof(n));
	n.stop_after = 2;
	assert_int_equal(db_owner_repos(f->s, HUB_MODEL, "b-org", add_name, &n),
			 7);
	assert_string_equal(n.buf, "four,one");

	/* A new listing replaces the old one whole. */
	assert_int_equal(db_listing_put(f->s, HUB_MODEL, "z-org", z2, 1, 2000),
			 0);
	memset(&n, 0, sizeof(n));
	assert_int_equal(db_owner_repos(f->s, HUB_MODEL, "z-org", add_name, &n),
			 0);
	assert_string_equal(n.buf, "r9");
	assert_int_equal(db_listing_age(f->s, HUB_MODEL, "z-org", &at), 0);
	assert_int_equal(at, 2000);
	assert_int_equal(
		db_listing_put(f->s, HUB_MODEL, "z-org", NULL, 0, 2001), 0);
	memset(&n, 0, sizeof(n));
	assert_int_equal(db_owners(f->s, HUB_MODEL, add_name, &n), 0);
	assert_string_equal(n.buf, "a-org,b-org");
}

static void revisions(void **state)
{
	struct fixture *f = *state;
	struct db_repo r;
	char commit[41];
	int64_t at;

	assert_int_equal(db_repo_put(f->s, HUB_MODEL, "org/a", "", &r), 0);
	assert_int_equal(db_revision_get(f->s, r.id, "", commit, &at), -ENOENT);
	assert_int_equal(db_revision_put(f->s, r.id, "", SHA1_A, 100), 0);
	assert_int_equal(db_revision_put(f->s, r.id, "refs/pr/1", SHA1_B, 101),
			 0);
	assert_int_equal(db_revision_get(f->s, r.id, "", commit, &at), 0);
	assert_string_equal(commit, SHA1_A);
	assert_int_equal(at, 100);
	assert_int_equal(db_revision_put(f->s, r.id, "", SHA1_C, 200), 0);
	assert_int_equal(db_revision_get(f->s, r.id, "", commit, &at), 0);
	assert_string_equal(commit, SHA1_C);
	assert_int_equal(at, 200);
	assert_int_equal(db_revision_get(f->s, r.id, "refs/pr/1", commit, &at),
			 0);
	assert_string_equal(commit, SHA1_B);

	assert_int_equal(db_revision_put(f->s, r.id, "main", "HEAD", 1),
			 -EINVAL);
	assert_int_equal(
		db_revision_put(f->s, r.id, "main",
				"A16A55FDA99D2F2E7B69CCE5CF93FF4AD3049930", 1),
		-EINVAL);
	assert_int_equal(db_revision_put(f->s, r.id + 100, "main", SHA1_A, 1),
			 -ENOENT);
	assert_non_null(strstr(db_last_error(), "FOREIGN KEY"));
}

/* ---- Trees ------------------------------------------------------------- */

static struct hub_entry file_entry(const char *path, uint64_t size,
				   const char *oid, const char *lfs)
{
	struct hub_entry e = {
		.path = path, .size = size, .oid = oid, .lfs_oid = lfs
	};

	return e;
}

static struct hub_entry dir_entry(const char *path)
{
	struct hub_entry e = { .path = path, .is_dir = true, .oid = SHA1_C };

	return e;
}

static int64_t new_repo(struct fixture *f, const char *name)
{
	struct db_repo r;

	assert_int_equal(db_repo_put(f->s, HUB_MODEL, name, "", &r), 0);
	return r.id;
}

static void add(struct db_tree_writer *w, struct hub_entry e)
{
	assert_int_equal(db_tree_add(w, &e), 0);
}

/* The names of a folder, joined with ','. */
struct listing {
	char buf[1024];
	int64_t ids[64];
	int n;
};

static int add_entry_name(void *arg, const struct db_entry *e)
{
	struct listing *l = arg;
	size_t len = strlen(l->buf);

	snprintf(l->buf + len, sizeof(l->buf) - len, "%s%s%s", len ? "," : "",
		 e->name, e->is_dir ? "/" : "");
	if (l->n < 64)
		l->ids[l->n++] = e->id;
	return 0;
}

static const char *list(struct fixture *f, int64_t tree, const char *parent,
			struct listing *l)
{
	memset(l, 0, sizeof(*l));
	assert_int_equal(db_dir_list(f->s, tree, parent, add_entry_name, l), 0);
	return l->buf;
}

/* A recursive walk from inside the callbacks: the store's statements nest. */
struct walk {
	struct fixture *f;
	int64_t tree;
	char path[512];
	int entries;
};

static int walk_entry(void *arg, const struct db_entry *e)
{
	struct walk *w = arg;
	size_t len = strlen(w->path);

	w->entries++;
	if (!e->is_dir)
		return 0;
	snprintf(w->path + len, sizeof(w->path) - len, "%s%s", len ? "/" : "",
		 e->name);
	assert_int_equal(db_dir_list(w->f->s, w->tree, w->path, walk_entry, w),
			 0);
	w->path[len] = '\0';
	return 0;
}

static void tree_nested(void **state)
{
	struct fixture *f = *state;
	int64_t repo = new_repo(f, "org/a");
	struct db_tree_writer *w;
	struct db_tree t, found;
	struct db_entry e;
	struct listing l;
	struct hub_entry bad;
	uint64_t files, bytes;

	assert_int_equal(db_tree_begin(f->s, repo, SHA1_A, 1234, &w), 0);
	add(w, file_entry("README.md", 10, SHA1_B, NULL));
	add(w, file_entry("a/b/c.bin", 5000000000ULL, SHA1_C, SHA256_A));
	add(w, file_entry("a/b/d.txt", 3, SHA1_A, NULL));
	add(w, dir_entry("a")); /* after it was implied */
	add(w, dir_entry("z")); /* before its contents */
	add(w, file_entry("z/y/w.txt", 7, SHA1_B, NULL));
	add(w, dir_entry("z/y")); /* again, implied first */
	add(w, dir_entry("empty"));
	add(w, file_entry("README.md", 10, SHA1_B, NULL)); /* a repeat */

	bad = file_entry("../etc/passwd", 1, SHA1_A, NULL);
	assert_int_equal(db_tree_add(w, &bad), -EINVAL);
	bad = file_entry("/abs", 1, SHA1_A, NULL);
	assert_int_equal(db_tree_add(w, &bad), -EINVAL);
	bad = file_entry("x", 1, "../../../../etc/passwd", NULL);
	assert_int_equal(db_tree_add(w, &bad), -EINVAL);
	bad = file_entry("x", 1, SHA1_A, SHA1_B); /* lfs must be sha256 */
	assert_int_equal(db_tree_add(w, &bad), -EINVAL);
	bad = file_entry("x", 1, NULL, NULL);
	assert_int_equal(db_tree_add(w, &bad), -EINVAL);
	bad = file_entry("x", UINT64_MAX, SHA1_A, NULL);
	assert_int_equal(db_tree_add(w, &bad), -EINVAL);

	/* Nothing is visible before the end. */
	assert_int_equal(db_tree_find(f->s, repo, SHA1_A, &found), -ENOENT);
	assert_int_equal(db_tree_end(w, true, &t), 0);
	assert_int_equal(db_tree_find(f->s, repo, SHA1_A, &found), 0);
	assert_int_equal(found.id, t.id);
	assert_int_equal(found.mtime, 1234);
	assert_int_equal(db_tree_find(f->s, repo, SHA1_B, &found), -ENOENT);

	assert_string_equal(list(f, t.id, "", &l), "README.md,a/,empty/,z/");
	assert_string_equal(list(f, t.id, "a", &l), "b/");
	assert_string_equal(list(f, t.id, "a/b", &l), "c.bin,d.txt");
	assert_string_equal(list(f, t.id, "z", &l), "y/");
	assert_string_equal(list(f, t.id, "z/y", &l), "w.txt");
	assert_string_equal(list(f, t.id, "empty", &l), "");
	assert_string_equal(list(f, t.id, "nowhere", &l), "");
	assert_string_equal(list(f, t.id + 1, "", &l), "");

	assert_int_equal(db_entry_lookup(f->s, t.id, "a/b", "c.bin", &e), 0);
	assert_false(e.is_dir);
	assert_true(e.lfs);
	assert_true(e.size == 5000000000ULL);
	assert_string_equal(e.etag, SHA256_A);
	assert_string_equal(e.name, "c.bin");
	assert_int_equal(db_entry_lookup(f->s, t.id, "", "README.md", &e), 0);
	assert_false(e.lfs);
	assert_int_equal(e.size, 10);
	assert_string_equal(e.etag, SHA1_B);
	assert_int_equal(db_entry_lookup(f->s, t.id, "a", "b", &e), 0);
	assert_true(e.is_dir);
	assert_string_equal(e.etag, "");
	assert_int_equal(e.size, 0);
	assert_int_equal(db_entry_lookup(f->s, t.id, "", "a", &e), 0);
	assert_true(e.is_dir);
	assert_int_equal(db_entry_lookup(f->s, t.id, "", "b", &e), -ENOENT);
	assert_int_equal(db_entry_lookup(f->s, t.id, "a", "c.bin", &e),
			 -ENOENT);

	/* Every path once: 4 files and 5 folders. */
	assert_int_equal(db_tree_count(f->s, t.id, &files, &bytes), 0);
	assert_int_equal(files, 4);
	assert_true(bytes == 5000000000ULL + 10 + 3 + 7);
	assert_int_equal(db_tree_count(f->s, t.id + 1, &files, &bytes),
			 -ENOENT);

	struct walk walk = { .f = f, .tree = t.id };

	assert_int_equal(db_dir_list(f->s, t.id, "", walk_entry, &walk), 0);
	assert_int_equal(walk.entries, 9);
}

static int add_extras(void *arg, const struct db_report_file *rf)
{
	char buf[256];

	snprintf(buf, sizeof(buf), "%s:%s:%s", rf->path, rf->oid, rf->xet);
	return add_name(arg, buf);
}

/* The view's blobs/: a repo's etags across its complete trees, by etag. */
static void files_by_etag(void **state)
{
	struct fixture *f = *state;
	int64_t repo = new_repo(f, "org/a"), other = new_repo(f, "org/b");
	struct db_tree_writer *w;
	struct db_blob_file bf;
	struct names n = { 0 };

	struct hub_entry xet = file_entry("x.bin", 9, SHA1_A, SHA256_B);
	struct db_tree t;
	struct names extras = { 0 };

	xet.xet_hash = SHA256_A;
	assert_int_equal(db_tree_begin(f->s, repo, SHA1_A, 5, &w), 0);
	add(w, file_entry("a/b/c.bin", 5000000000ULL, SHA1_C, SHA256_A));
	add(w, file_entry("README.md", 10, SHA1_B, NULL));
	add(w, file_entry("copy.md", 10, SHA1_B, NULL));
	add(w, xet);
	assert_int_equal(db_tree_end(w, true, &t), 0);
	/* An LFS file keeps its git blob id, a xet file its hash. */
	assert_int_equal(db_report_files(f->s, t.id, add_extras, &extras), 0);
	assert_string_equal(extras.buf,
			    "README.md::,a/b/c.bin:" SHA1_C
			    ":,copy.md::,x.bin:" SHA1_A ":" SHA256_A);
	assert_int_equal(db_tree_begin(f->s, repo, SHA1_B, 6, &w), 0);
	add(w, file_entry("new.txt", 3, SHA1_C, NULL));
	assert_int_equal(db_tree_end(w, true, NULL), 0);
	/* Neither a rolled-back tree nor another repo's counts. */
	assert_int_equal(db_tree_begin(f->s, repo, SHA1_C, 7, &w), 0);
	add(w, file_entry("gone.txt", 3, SHA1_A, NULL));
	assert_int_equal(db_tree_end(w, false, NULL), 0);
	assert_int_equal(db_tree_begin(f->s, other, SHA1_A, 7, &w), 0);
	add(w, file_entry("b.bin", 4, SHA1_B, SHA256_B));
	assert_int_equal(db_tree_end(w, true, NULL), 0);

	assert_int_equal(db_repo_blobs(f->s, repo, add_name, &n), 0);
	assert_string_equal(n.buf, SHA1_B "," SHA256_A "," SHA256_B "," SHA1_C);

	assert_int_equal(db_blob_where(f->s, repo, SHA256_A, &bf), 0);
	assert_string_equal(bf.commit, SHA1_A);
	assert_string_equal(bf.path, "a/b/c.bin");
	assert_true(bf.size == 5000000000ULL);
	assert_true(bf.lfs);
	assert_int_equal(bf.mtime, 5);
	assert_int_equal(db_blob_where(f->s, repo, SHA1_C, &bf), 0);
	assert_string_equal(bf.path, "new.txt");
	assert_string_equal(bf.commit, SHA1_B);
	assert_false(bf.lfs);
	assert_int_equal(db_blob_where(f->s, repo, SHA1_A, &bf), -ENOENT);
	assert_int_equal(db_blob_where(f->s, other, SHA256_A, &bf), -ENOENT);
	assert_int_equal(db_blob_where(f->s, other, SHA256_B, &bf), 0);
	assert_int_equal(db_blob_where(f->s, repo, "../x", &bf), -EINVAL);
}

static void tree_rollback(void **state)
{
	struct fixture *f = *state;
	int64_t repo = new_repo(f, "org/a");
	struct db_tree_writer *w;
	struct db_tree t;
	struct db_entry e;

	assert_int_equal(db_tree_begin(f->s, repo, SHA1_A, 1, &w), 0);
	add(w, file_entry("a/b", 1, SHA1_B, NULL));
	assert_int_equal(db_tree_end(w, false, &t), 0);
	assert_int_equal(db_tree_find(f->s, repo, SHA1_A, &t), -ENOENT);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM entries"), 0);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM trees"), 0);

	assert_int_equal(db_tree_begin(f->s, repo, "not-a-commit", 1, &w),
			 -EINVAL);
	assert_null(w);

	/* A tree of no known repo is refused at the end, leaving nothing. */
	assert_int_equal(db_tree_begin(f->s, repo + 1, SHA1_A, 1, &w), 0);
	add(w, file_entry("a", 1, SHA1_B, NULL));
	assert_int_equal(db_tree_end(w, true, &t), -ENOENT);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM trees"), 0);

	assert_int_equal(db_tree_begin(f->s, repo, SHA1_A, 2, &w), 0);
	add(w, file_entry("c", 1, SHA1_B, NULL));
	assert_int_equal(db_tree_end(w, true, &t), 0);
	assert_int_equal(t.mtime, 2);
	assert_int_equal(db_entry_lookup(f->s, t.id, "", "c", &e), 0);
	assert_int_equal(db_entry_lookup(f->s, t.id, "", "a", &e), -ENOENT);
}

/* A half-written tree left by a crash is invisible, and a new listing
   replaces it. */
static void tree_half_written(void **state)
{
	struct fixture *f = *state;
	int64_t repo = new_repo(f, "org/a");
	struct db_tree_writer *w;
	struct db_tree t;
	struct db_entry e;
	char sql[512];

	snprintf(sql, sizeof(sql),
		 "INSERT INTO trees(id, repo, commit_id, mtime) "
		 "VALUES (77, %lld, '%s', 5)",
		 (long long)repo, SHA1_A);
	sql_int(f, sql);
	sql_int(f, "INSERT INTO entries(tree, parent, name, is_dir, size, "
		   "etag, lfs) VALUES (77, '', 'stale', 0, 1, '', 0)");
	assert_int_equal(db_tree_find(f->s, repo, SHA1_A, &t), -ENOENT);

	assert_int_equal(db_tree_begin(f->s, repo, SHA1_A, 6, &w), 0);
	add(w, file_entry("fresh", 1, SHA1_B, NULL));
	assert_int_equal(db_tree_end(w, true, &t), 0);
	assert_int_not_equal(t.id, 77);
	assert_int_equal(db_entry_lookup(f->s, t.id, "", "fresh", &e), 0);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM entries "
				    "WHERE name = 'stale'"),
			 0);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM trees"), 1);
}

/* Two listings of one commit: the first to end wins, the second gets it. */
static void tree_raced(void **state)
{
	struct fixture *f = *state;
	int64_t repo = new_repo(f, "org/a");
	struct db_tree_writer *w1, *w2;
	struct db_tree t1, t2;
	struct db_entry e;

	assert_int_equal(db_tree_begin(f->s, repo, SHA1_A, 1, &w1), 0);
	assert_int_equal(db_tree_begin(f->s, repo, SHA1_A, 1, &w2), 0);
	add(w1, file_entry("one", 1, SHA1_B, NULL));
	add(w2, file_entry("two", 1, SHA1_B, NULL));
	assert_int_equal(db_tree_end(w1, true, &t1), 0);
	assert_int_equal(db_tree_end(w2, true, &t2), 0);
	assert_int_equal(t1.id, t2.id);
	assert_int_equal(db_entry_lookup(f->s, t1.id, "", "one", &e), 0);
	assert_int_equal(db_entry_lookup(f->s, t1.id, "", "two", &e), -ENOENT);
}

/* A listing in progress holds no lock: other writers go on meanwhile. */
static void tree_writer_holds_no_lock(void **state)
{
	struct fixture *f = *state;
	int64_t repo = new_repo(f, "org/a");
	struct db_tree_writer *w;
	struct db_store *other;
	struct db_tree t;
	time_t start;

	assert_int_equal(db_tree_begin(f->s, repo, SHA1_A, 1, &w), 0);
	add(w, file_entry("a/b", 1, SHA1_B, NULL));
	start = time(NULL);
	assert_int_equal(db_store_open(&other, f->dir), 0);
	assert_int_equal(db_repo_put(other, HUB_MODEL, "org/b", "", NULL), 0);
	assert_int_equal(db_blob_put(f->s, SHA1_C, 0), 0);
	assert_true(time(NULL) - start < 5);
	add(w, file_entry("a/c", 1, SHA1_B, NULL));
	assert_int_equal(db_tree_end(w, true, &t), 0);
	assert_int_equal(db_tree_find(other, repo, SHA1_A, &t), 0);
	db_store_close(other);
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) +
	       (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void tree_100k(void **state)
{
	struct fixture *f = *state;
	int64_t repo = new_repo(f, "org/big");
	struct db_tree_writer *w;
	struct db_tree t;
	struct db_entry e;
	struct timespec t0;
	uint64_t files, bytes;
	char path[128];
	int n = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(db_tree_begin(f->s, repo, SHA1_A, 1, &w), 0);
	for (int i = 0; i < 100000; i++) {
		snprintf(path, sizeof(path),
			 "data/shard-%03d/part-%02d/%06d.bin", i / 1000,
			 i / 100 % 10, i);
		add(w, file_entry(path, (uint64_t)i, SHA1_B,
				  i % 2 ? SHA256_A : NULL));
	}
	assert_int_equal(db_tree_end(w, true, &t), 0);
	print_message("    100,000 entries listed and committed in %.3f s\n",
		      seconds_since(&t0));

	assert_int_equal(db_tree_count(f->s, t.id, &files, &bytes), 0);
	assert_int_equal(files, 100000);
	assert_true(bytes == 99999ULL * 100000 / 2);
	n = (int)sql_int(f, "SELECT count(*) FROM entries WHERE is_dir");
	assert_int_equal(n, 1 + 100 + 1000);
	assert_int_equal(db_entry_lookup(f->s, t.id, "data/shard-042/part-07",
					 "042742.bin", &e),
			 0);
	assert_int_equal(e.size, 42742);
	assert_string_equal(e.etag, SHA1_B);
}

/* ---- Blobs ------------------------------------------------------------- */

static void write_file(int fd, const char *data)
{
	size_t n = strlen(data);

	assert_int_equal(write(fd, data, n), (ssize_t)n);
	assert_int_equal(fdatasync(fd), 0);
	close(fd);
}

static void blobs(void **state)
{
	struct fixture *f = *state;
	char tmp[PATH_MAX], path[PATH_MAX], prefix[PATH_MAX];
	uint64_t size, bytes, count;
	struct stat st;
	int fd;

	fd = db_blob_tmpfile(f->s, tmp, sizeof(tmp));
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
	snprintf(prefix, sizeof(prefix), "%s/tmp/dl-", db_store_dir(f->s));
	assert_memory_equal(tmp, prefix, strlen(prefix));
	assert_int_equal(stat(tmp, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	write_file(fd, "hello");

	assert_int_equal(db_blob_get(f->s, SHA256_A, &size), -ENOENT);
	assert_int_equal(db_blob_install(f->s, tmp, SHA256_A, 6), -EINVAL);
	assert_int_equal(db_blob_install(f->s, tmp, SHA256_A, 5), 0);
	assert_int_equal(access(tmp, F_OK), -1);
	db_blob_path(f->s, SHA256_A, path, sizeof(path));
	snprintf(prefix, sizeof(prefix), "%s/blobs/" SHA256_A,
		 db_store_dir(f->s));
	assert_string_equal(path, prefix);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(db_blob_get(f->s, SHA256_A, &size), 0);
	assert_int_equal(size, 5);
	assert_int_equal(db_blob_usage(f->s, &bytes, &count), 0);
	assert_int_equal(bytes, 5);
	assert_int_equal(count, 1);

	assert_int_equal(db_blob_drop(f->s, SHA256_A), 0);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(db_blob_get(f->s, SHA256_A, &size), -ENOENT);
	assert_int_equal(db_blob_drop(f->s, SHA256_A), 0);
	assert_int_equal(db_blob_usage(f->s, &bytes, &count), 0);
	assert_int_equal(bytes, 0);
	assert_int_equal(count, 0);
}

/* A record whose file went away, or changed size, is not a blob. */
static void blob_file_lost(void **state)
{
	struct fixture *f = *state;
	char tmp[PATH_MAX], path[PATH_MAX];
	uint64_t size, bytes, count;
	int fd;

	fd = db_blob_tmpfile(f->s, tmp, sizeof(tmp));
	write_file(fd, "0123456789");
	assert_int_equal(db_blob_install(f->s, tmp, SHA1_A, 10), 0);
	fd = db_blob_tmpfile(f->s, tmp, sizeof(tmp));
	write_file(fd, "abc");
	assert_int_equal(db_blob_install(f->s, tmp, SHA1_B, 3), 0);

	db_blob_path(f->s, SHA1_A, path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	assert_int_equal(db_blob_get(f->s, SHA1_A, &size), -ENOENT);
	db_blob_path(f->s, SHA1_B, path, sizeof(path));
	assert_int_equal(truncate(path, 2), 0);
	assert_int_equal(db_blob_get(f->s, SHA1_B, &size), -ENOENT);
	/* Both records are gone, not only hidden. */
	assert_int_equal(db_blob_usage(f->s, &bytes, &count), 0);
	assert_int_equal(count, 0);
}

static void invalid_etags(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = {
		"",
		"../../../../../../../../../../../../etc/passwd",
		"A16A55FDA99D2F2E7B69CCE5CF93FF4AD3049930",
		"a16a55fda99d2f2e7b69cce5cf93ff4ad304993",
		"a16a55fda99d2f2e7b69cce5cf93ff4ad3049930/",
		"a16a55fda99d2f2e7b69cce5cf93ff4ad304993g",
	};
	char path[PATH_MAX], tmp[PATH_MAX];
	uint64_t size;
	int fd = db_blob_tmpfile(f->s, tmp, sizeof(tmp));

	write_file(fd, "x");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(path, 'x', sizeof(path));
		db_blob_path(f->s, bad[i], path, sizeof(path));
		assert_string_equal(path, "");
		assert_int_equal(db_blob_get(f->s, bad[i], &size), -EINVAL);
		assert_int_equal(db_blob_put(f->s, bad[i], 1), -EINVAL);
		assert_int_equal(db_blob_drop(f->s, bad[i]), -EINVAL);
		assert_int_equal(db_blob_install(f->s, tmp, bad[i], 1),
				 -EINVAL);
	}
	assert_int_equal(access(tmp, F_OK), 0);
	assert_int_equal(db_blob_put(f->s, NULL, 1), -EINVAL);
	assert_int_equal(db_blob_put(f->s, SHA1_A, UINT64_MAX), -EINVAL);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM blobs"), 0);
}

/* ---- Reopening and threads --------------------------------------------- */

static void reopen_keeps_everything(void **state)
{
	struct fixture *f = *state;
	const char *ids[] = { "org/listed" };
	int64_t repo = new_repo(f, "org/a"), at;
	struct db_tree_writer *w;
	struct db_tree t, found;
	struct db_entry e;
	struct db_repo r;
	struct names n = { 0 };
	char tmp[PATH_MAX], commit[41];
	uint64_t size;

	assert_int_equal(db_revision_put(f->s, repo, "main", SHA1_A, 9), 0);
	assert_int_equal(db_listing_put(f->s, HUB_MODEL, "org", ids, 1, 8), 0);
	assert_int_equal(db_tree_begin(f->s, repo, SHA1_A, 7, &w), 0);
	add(w, file_entry("d/f", 1, SHA1_B, NULL));
	assert_int_equal(db_tree_end(w, true, &t), 0);
	write_file(db_blob_tmpfile(f->s, tmp, sizeof(tmp)), "z");
	assert_int_equal(db_blob_install(f->s, tmp, SHA1_B, 1), 0);

	reopen(f);
	assert_int_equal(db_repo_get(f->s, HUB_MODEL, "org/a", &r), 0);
	assert_int_equal(r.id, repo);
	assert_int_equal(db_revision_get(f->s, repo, "main", commit, &at), 0);
	assert_string_equal(commit, SHA1_A);
	assert_int_equal(db_owner_repos(f->s, HUB_MODEL, "org", add_name, &n),
			 0);
	assert_string_equal(n.buf, "a,listed");
	assert_int_equal(db_tree_find(f->s, repo, SHA1_A, &found), 0);
	assert_int_equal(found.id, t.id);
	assert_int_equal(found.mtime, 7);
	assert_int_equal(db_entry_lookup(f->s, t.id, "d", "f", &e), 0);
	assert_int_equal(db_blob_get(f->s, SHA1_B, &size), 0);
	assert_int_equal(size, 1);
	assert_int_equal(sql_int(f, "PRAGMA user_version"), SCHEMA_VERSION);
}

#define THREADS 4
#define ROUNDS	200

struct worker {
	struct db_store *s;
	int index;
	int failures;
};

static void *work(void *arg)
{
	struct worker *wk = arg;
	struct db_tree_writer *w;
	struct db_tree t;
	struct db_repo r;
	struct hub_entry e;
	char name[64], path[64], etag[41], rev[16];
	uint64_t size;

	snprintf(name, sizeof(name), "org/repo%d", wk->index);
	wk->failures += db_repo_put(wk->s, HUB_MODEL, name, "", &r) != 0;
	wk->failures += db_tree_begin(wk->s, r.id, SHA1_A, 1, &w) != 0;
	for (int i = 0; i < 2000; i++) {
		snprintf(path, sizeof(path), "d%d/f%d", i % 10, i);
		e = file_entry(path, 1, SHA1_B, NULL);
		wk->failures += db_tree_add(w, &e) != 0;
	}
	wk->failures += db_tree_end(w, true, &t) != 0;
	for (int i = 0; i < ROUNDS; i++) {
		snprintf(etag, sizeof(etag), "%08x%032x", wk->index, i);
		snprintf(rev, sizeof(rev), "r%d", i);
		wk->failures += db_blob_put(wk->s, etag, (uint64_t)i) != 0;
		wk->failures +=
			db_repo_put(wk->s, HUB_MODEL, name, "", &r) != 0;
		wk->failures +=
			db_revision_put(wk->s, r.id, rev, SHA1_A, i) != 0;
		wk->failures += db_repo_get(wk->s, HUB_MODEL, name, &r) != 0;
		/* Recorded, but without a file: dropped on sight. */
		wk->failures += db_blob_get(wk->s, etag, &size) != -ENOENT;
	}
	return NULL;
}

static void threads(void **state)
{
	struct fixture *f = *state;
	struct db_store *other; /* another process, as far as SQLite knows */
	struct worker wk[THREADS];
	pthread_t th[THREADS];
	uint64_t bytes, count;

	assert_int_equal(db_store_open(&other, f->dir), 0);
	for (int i = 0; i < THREADS; i++) {
		wk[i] = (struct worker){ .s = i % 2 ? other : f->s,
					 .index = i };
		assert_int_equal(pthread_create(&th[i], NULL, work, &wk[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(wk[i].failures, 0);
	}
	db_store_close(other);
	assert_int_equal(db_blob_usage(f->s, &bytes, &count), 0);
	assert_int_equal(count, 0);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM revisions"),
			 THREADS * ROUNDS);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM trees "
				    "WHERE complete"),
			 THREADS);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM entries"),
			 THREADS * (2000 + 10));
}

/* ---- Files used where they lie ---------------------------------------- */

#define HELLO_SHA1 "ce013625030ba8dba906f756967f9e9ca394464a"
#define HELLO_SHA256                                                           \
	"5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"

static void write_text(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

static void external(void **state)
{
	struct fixture *f = *state;
	char good[PATH_MAX], bad[PATH_MAX], link[PATH_MAX], stale[PATH_MAX];
	struct timespec later[2] = { { 0, UTIME_OMIT }, { 12345, 0 } };
	uint64_t bytes, count;
	struct stat before, after;
	int fd;

	snprintf(good, sizeof(good), "%s/hello", f->root);
	snprintf(bad, sizeof(bad), "%s/jello", f->root);
	snprintf(link, sizeof(link), "%s/link", f->root);
	snprintf(stale, sizeof(stale), "%s/stale", f->root);
	write_text(good, "hello\n");
	write_text(bad, "jello\n");
	assert_int_equal(symlink("nowhere", link), 0);
	assert_int_equal(stat(good, &before), 0);

	/* Hashed once, in the etag's scheme, then trusted by its stamp. */
	assert_int_equal(db_external_check(f->s, good, HELLO_SHA1, 6, NULL), 1);
	assert_int_equal(db_external_check(f->s, good, HELLO_SHA1, 6, &fd), 0);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(db_external_check(f->s, good, HELLO_SHA256, 6, NULL),
			 1);
	assert_int_equal(db_external_open(f->s, HELLO_SHA1, 6, &fd), 0);
	close(fd);
	assert_int_equal(db_external_open(f->s, HELLO_SHA1, 7, &fd), -ENOENT);

	/* Refused without being hashed, or hashed and remembered bad. */
	assert_int_equal(db_external_check(f->s, good, HELLO_SHA1, 7, NULL),
			 -ERANGE);
	assert_int_equal(db_external_check(f->s, link, HELLO_SHA1, 6, NULL),
			 -ENOENT);
	assert_int_equal(db_external_check(f->s, f->root, HELLO_SHA1, 6, NULL),
			 -EISDIR);
	assert_int_equal(db_external_check(f->s, "rel", HELLO_SHA1, 6, NULL),
			 -EINVAL);
	assert_int_equal(db_external_check(f->s, bad, HELLO_SHA1, 6, NULL),
			 -EBADMSG);
	assert_non_null(strstr(db_last_error(), "hashes to"));
	assert_int_equal(db_external_check(f->s, bad, HELLO_SHA1, 6, NULL),
			 -EBADMSG);
	assert_non_null(strstr(db_last_error(), "has not changed"));
	assert_int_equal(sql_int(f, "SELECT count(*) FROM external"), 3);

	/* Only good files count, each etag once; nothing in the store's use. */
	assert_int_equal(db_external_usage(f->s, &bytes, &count), 0);
	assert_int_equal(count, 2);
	assert_int_equal(bytes, 12);
	assert_int_equal(db_store_usage(f->s, &bytes), 0);
	assert_int_equal(bytes, 0);

	/* Changed (mtime) or gone: no longer vouched for, row dropped. */
	assert_int_equal(utimensat(AT_FDCWD, good, later, 0), 0);
	assert_int_equal(db_external_open(f->s, HELLO_SHA1, 6, &fd), -ENOENT);
	assert_int_equal(db_external_check(f->s, good, HELLO_SHA1, 6, NULL), 1);
	assert_int_equal(rename(good, stale), 0);
	assert_int_equal(db_external_open(f->s, HELLO_SHA1, 6, &fd), -ENOENT);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM external WHERE "
				    "etag = '" HELLO_SHA1 "'"),
			 1); /* the bad one */

	/* Never written: the file is as it was, but for our utimensat. */
	assert_int_equal(stat(stale, &after), 0);
	assert_int_equal(after.st_ino, before.st_ino);
	assert_int_equal(after.st_size, before.st_size);
}

/*
 * One file reached by several paths (huggingface_hub's shared blobs: a
 * symlink or a hard link from each repo's blobs/ into one store) is hashed
 * once; a copy, or the file once changed, is hashed again.
 */
static void external_links(void **state)
{
	struct fixture *f = *state;
	char shared[PATH_MAX], sym[PATH_MAX], hard[PATH_MAX], copy[PATH_MAX],
		bad[PATH_MAX], badlink[PATH_MAX];
	struct timespec later[2] = { { 0, UTIME_OMIT }, { 12345, 0 } };

	snprintf(shared, sizeof(shared), "%s/store-hello", f->root);
	snprintf(sym, sizeof(sym), "%s/sym", f->root);
	snprintf(hard, sizeof(hard), "%s/hard", f->root);
	snprintf(copy, sizeof(copy), "%s/copy", f->root);
	snprintf(bad, sizeof(bad), "%s/store-jello", f->root);
	snprintf(badlink, sizeof(badlink), "%s/badlink", f->root);
	write_text(shared, "hello\n");
	write_text(copy, "hello\n");
	write_text(bad, "jello\n");
	assert_int_equal(symlink("store-hello", sym), 0);
	assert_int_equal(link(shared, hard), 0);
	assert_int_equal(link(bad, badlink), 0);

	assert_int_equal(db_external_check(f->s, shared, HELLO_SHA256, 6, NULL),
			 1);
	assert_int_equal(db_external_check(f->s, sym, HELLO_SHA256, 6, NULL),
			 0);
	assert_int_equal(db_external_check(f->s, hard, HELLO_SHA256, 6, NULL),
			 0);
	/* Another etag of the same file is another question. */
	assert_int_equal(db_external_check(f->s, hard, HELLO_SHA1, 6, NULL), 1);
	/* A copy is another file. */
	assert_int_equal(db_external_check(f->s, copy, HELLO_SHA256, 6, NULL),
			 1);
	/* A bad verdict carries over too. */
	assert_int_equal(db_external_check(f->s, bad, HELLO_SHA256, 6, NULL),
			 -EBADMSG);
	assert_int_equal(
		db_external_check(f->s, badlink, HELLO_SHA256, 6, NULL),
		-EBADMSG);
	assert_non_null(strstr(db_last_error(), "has not changed"));
	assert_int_equal(sql_int(f, "SELECT count(*) FROM external WHERE "
				    "etag = '" HELLO_SHA256 "'"),
			 6);
	/* Changed: no verdict carries over, it is hashed again. */
	assert_int_equal(utimensat(AT_FDCWD, shared, later, 0), 0);
	assert_int_equal(db_external_check(f->s, sym, HELLO_SHA256, 6, NULL),
			 1);
	assert_int_equal(db_external_check(f->s, hard, HELLO_SHA256, 6, NULL),
			 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(store_layout),
		T(store_not_a_folder),
		T(store_newer_schema),
		cmocka_unit_test(default_dir),
		T(repos),
		T(owners_and_listings),
		T(revisions),
		T(tree_nested),
		T(files_by_etag),
		T(tree_rollback),
		T(tree_half_written),
		T(tree_raced),
		T(tree_writer_holds_no_lock),
		T(tree_100k),
		T(blobs),
		T(blob_file_lost),
		T(invalid_etags),
		T(reopen_keeps_everything),
		T(threads),
		T(external),
		T(external_links),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * store.c - the store folder and the machinery every db/ file uses: one
 * SQLite connection per thread (opened on first use, all closed with the
 * store), a cache of prepared statements per connection, BEGIN IMMEDIATE
 * transactions, and the translation of SQLite failures to errno values.
 */
#include "db_int.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The description of this thread's last db/ failure (db_last_error). */
static _Thread_local char last_error[512];

/*
 * Set when SQLite said the index is damaged (SQLITE_CORRUPT, SQLITE_NOTADB)
 * or PRAGMA quick_check found it so: db_store_open then rebuilds it.
 */
static _Thread_local bool damaged;

void db_errorf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
}

/* Record a failed system call on a path; returns -errno. */
int db_sys_fail(const char *what, const char *path)
{
	int err = errno;

	db_errorf("%s %s: %s", what, path, strerror(err));
	return -err;
}

const char *db_last_error(void)
{
	return last_error[0] ? last_error : "no error";
}

const char *db_store_dir(const struct db_store *s)
{
	return s->dir;
}

/* "a" + "/" + "b", allocated.  NULL on ENOMEM. */
static char *path_join(const char *a, const char *b)
{
	size_t size = strlen(a) + strlen(b) + 2;
	char *p = malloc(size);

	if (p)
		snprintf(p, size, "%s/%s", a, b);
	return p;
}

char *db_default_dir(void)
{
	const char *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");

	/* The XDG spec: a relative XDG_CACHE_HOME is ignored. */
	if (xdg && xdg[0] == '/')
		return path_join(xdg, "hubfs");
	if (home && home[0])
		return path_join(home, ".cache/hubfs");
	return NULL;
}

/* ---- Errors ------------------------------------------------------------ */

/*
 * Record the connection's error message for db_last_error() and map the
 * result code to an errno.  The message is copied now because whatever
 * runs next on the connection (a ROLLBACK) replaces it.
 */
int db_fail(struct db_conn *c, int sqlite_rc)
{
	switch (sqlite_rc & 0xff) {
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		/* Name the file: the message alone does not say which. */
		damaged = true;
		db_errorf("%s is damaged: %s", c->store->db_path,
			  sqlite3_errmsg(c->db));
		return -EIO;
	default:
		db_errorf("%s", sqlite3_errmsg(c->db));
		break;
	}
	if (sqlite_rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		return -ENOENT;
	switch (sqlite_rc & 0xff) {
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
		return -EROFS;
	default:
		return -EIO;
	}
}

/* Copy a text column; -EIO when it does not fit (the index is damaged). */
int db_text(sqlite3_stmt *st, int col, char *buf, size_t size)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);

	if (!t)
		return -ENOMEM; /* every text column is NOT NULL */
	if (n >= size) {
		db_errorf("index.db: a %zu-byte value where at most %zu fit", n,
			  size - 1);
		return -EIO;
	}
	memcpy(buf, t, n);
	buf[n] = '\0';
	return 0;
}

/* ---- Statements -------------------------------------------------------- */

int db_query(struct db_conn *c, enum db_stmt slot, const char *sql,
	     struct db_query *q)
{
	sqlite3_stmt *st;
	bool owned;
	int rc;

	assert(slot < ST_COUNT);
	assert(!c->sql[slot] || c->sql[slot] == sql);
	q->st = NULL;
	q->owned = false;
	if (c->stmt[slot] && !sqlite3_stmt_busy(c->stmt[slot])) {
		q->st = c->stmt[slot];
		return 0;
	}
	owned = c->stmt[slot] != NULL;
	rc = sqlite3_prepare_v3(c->db, sql, -1,
				owned ? 0 : SQLITE_PREPARE_PERSISTENT, &st,
				NULL);
	if (rc != SQLITE_OK)
		return db_fail(c, rc);
	if (!owned) {
		c->stmt[slot] = st;
		c->sql[slot] = sql;
	}
	q->st = st;
	q->owned = owned;
	return 0;
}

void db_query_end(struct db_query *q)
{
	if (!q->st)
		return;
	if (q->owned) {
		sqlite3_finalize(q->st);
	} else {
		sqlite3_reset(q->st);
		sqlite3_clear_bindings(q->st);
	}
	q->st = NULL;
}

/* 1 for a row, 0 when the statement is done, or a negative errno. */
int db_step(struct db_conn *c, struct db_query *q)
{
	int rc = sqlite3_step(q->st);

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return db_fail(c, rc);
}

/* Step a statement that returns no row, and end it. */
int db_finish(struct db_conn *c, struct db_query *q)
{
	int rc = db_step(c, q);

	db_query_end(q);
	return rc > 0 ? 0 : rc;
}

/* Run a cached statement that takes no parameters and returns no row. */
int db_run(struct db_conn *c, enum db_stmt slot, const char *sql)
{
	struct db_query q;
	int rc = db_query(c, slot, sql, &q);

	return rc ? rc : db_finish(c, &q);
}

/* Run uncached SQL text, several statements allowed (schema, pragmas). */
int db_exec(struct db_conn *c, const char *sql)
{
	int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : db_fail(c, rc);
}

/* ---- Transactions ------------------------------------------------------ */

/*
 * A write transaction: the write lock is taken at once, waiting up to
 * DB_BUSY_MS for other writers (the busy timeout), so no statement inside
 * can fail for a lock.
 */
int db_tx_begin(struct db_conn *c)
{
	return db_run(c, ST_BEGIN, "BEGIN IMMEDIATE");
}

/* Commit when rc is 0, else roll back.  Returns rc or the commit's error. */
int db_tx_end(struct db_conn *c, int rc)
{
	if (rc == 0) {
		rc = db_run(c, ST_COMMIT, "COMMIT");
		if (rc == 0)
			return 0;
	}
	/* SQLite may have rolled back already (SQLITE_FULL, SQLITE_NOMEM). */
	if (!sqlite3_get_autocommit(c->db))
		db_run(c, ST_ROLLBACK, "ROLLBACK");
	return rc;
}

/* ---- Connections ------------------------------------------------------- */

static const char conn_setup[] = "PRAGMA synchronous = NORMAL;"
				 "PRAGMA foreign_keys = ON;"
				 "PRAGMA journal_size_limit = 67108864;";

void db_conn_close(struct db_conn *c)
{
	if (!c)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(c->stmt[i]);
	sqlite3_close_v2(c->db);
	free(c);
}

/* A fresh connection, not bound to a thread (see db_conn_get). */
int db_conn_open(struct db_store *s, struct db_conn **out)
{
	struct db_conn *c = calloc(1, sizeof(*c));
	int rc;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	c->store = s;
	rc = sqlite3_open_v2(s->db_path, &c->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
				     SQLITE_OPEN_EXRESCODE,
			     NULL);
	if (rc != SQLITE_OK) {
		rc = c->db ? db_fail(c, rc) : -ENOMEM;
		goto fail;
	}
	sqlite3_busy_timeout(c->db, DB_BUSY_MS);
	rc = db_exec(c, conn_setup);
	if (rc)
		goto fail;
	*out = c;
	return 0;
fail:
	db_conn_close(c);
	return rc;
}

/* The key's destructor: a thread's connection ends with the thread. */
static void conn_release(void *p)
{
	struct db_conn *c = p;
	struct db_store *s = c->store;

	assert(s && c->db);
	pthread_mutex_lock(&s->lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&s->lock);
	db_conn_close(c);
}

/* A cached statement on this thread's connection. */
int db_thread_query(struct db_store *s, enum db_stmt slot, const char *sql,
		    struct db_conn **c, struct db_query *q)
{
	int rc = db_conn_get(s, c);

	return rc ? rc : db_query(*c, slot, sql, q);
}

/* This thread's connection, opened on first use. */
int db_conn_get(struct db_store *s, struct db_conn **out)
{
	struct db_conn *c = pthread_getspecific(s->key);
	int rc;

	if (c) {
		*out = c;
		return 0;
	}
	rc = db_conn_open(s, &c);
	if (rc)
		return rc;
	if (pthread_setspecific(s->key, c) != 0) {
		db_conn_close(c);
		return -ENOMEM;
	}
	pthread_mutex_lock(&s->lock);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	pthread_mutex_unlock(&s->lock);
	*out = c;
	return 0;
}

/* ---- Opening and closing ----------------------------------------------- */

/* mkdir -p, each folder it creates 0700. */
static int mkdirs(const char *dir)
{
	char path[PATH_MAX];
	size_t n = strlen(dir);
	struct stat st;

	if (n == 0 || n >= sizeof(path))
		return n ? -ENAMETOOLONG : -EINVAL;
	memcpy(path, dir, n + 1);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			goto fail;
		*p = '/';
	}
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		goto fail;
	if (stat(path, &st) < 0)
		goto fail;
	if (!S_ISDIR(st.st_mode)) {
		db_errorf("%s: not a folder", path);
		return -ENOTDIR;
	}
	return 0;
fail:
	return db_sys_fail("creating", path);
}

/* The folders and an index.db that SQLite's files will copy 0600 from. */
static int store_files(struct db_store *s, const char *dir)
{
	static const char *const subdirs[] = { "blobs", "partial", "tmp" };
	int rc = mkdirs(dir), fd;

	if (rc)
		return rc;
	s->dir = realpath(dir, NULL);
	if (!s->dir)
		return db_sys_fail("resolving", dir);
	/* The store is private to its user, whoever made the folder. */
	if (chmod(s->dir, 0700) < 0)
		return db_sys_fail("protecting", s->dir);
	for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		char *sub = path_join(s->dir, subdirs[i]);

		rc = sub ? mkdirs(sub) : -ENOMEM;
		free(sub);
		if (rc)
			return rc;
	}
	s->db_path = path_join(s->dir, "index.db");
	if (!s->db_path)
		return -ENOMEM;
	fd = open(s->db_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return db_sys_fail("opening", s->db_path);
	close(fd);
	return 0;
}

/* WAL lets readers run beside the one writer; it persists in the file. */
static int wal_mode(struct db_conn *c)
{
	static const char sql[] = "PRAGMA journal_mode = WAL";
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		return db_fail(c, rc);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = db_fail(c, rc);
	} else if (!sqlite3_column_text(st, 0) ||
		   strcmp((const char *)sqlite3_column_text(st, 0), "wal")) {
		db_errorf("index.db: cannot switch to WAL mode");
		rc = -EIO;
	} else {
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

/*
 * PRAGMA quick_check reads every page of the index once and checks the
 * b-trees' structure (not that indexes agree with their tables): about
 * 60-90 ms for a store that knows a 100,000-file repo (an 11 MB index),
 * cheap enough for every open.  A damaged page found later still fails its
 * statement with SQLITE_CORRUPT, as -EIO naming the file (db_fail).
 */
static int quick_check(struct db_conn *c)
{
	sqlite3_stmt *st;
	const char *res;
	int rc = sqlite3_prepare_v2(c->db, "PRAGMA quick_check(1)", -1, &st,
				    NULL);

	if (rc != SQLITE_OK)
		return db_fail(c, rc);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = db_fail(c, rc);
	} else if ((res = (const char *)sqlite3_column_text(st, 0)) &&
		   strcmp(res, "ok") == 0) {
		rc = 0;
	} else {
		/* One line: its first names the database ("*** in database
		   main ***"), the last the damage. */
		const char *nl = res ? strrchr(res, '\n') : NULL;

		damaged = true;
		db_errorf("%s is damaged: %s", c->store->db_path,
			  nl	? nl + 1
			  : res ? res
				: "quick_check failed");
		rc = -EIO;
	}
	sqlite3_finalize(st);
	return rc;
}

/* Close every connection, this thread's too (it is forgotten). */
static void close_conns(struct db_store *s)
{
	struct db_conn *c, *next;

	pthread_mutex_lock(&s->lock);
	for (c = s->conns; c; c = next) {
		next = c->next;
		db_conn_close(c);
	}
	s->conns = NULL;
	pthread_mutex_unlock(&s->lock);
}

/* Does folder sub of store folder dir hold anything? */
static bool holds_files(const char *dir, const char *sub)
{
	char *path = path_join(dir, sub);
	DIR *d = path ? opendir(path) : NULL;
	struct dirent *e;
	bool any = false;

	while (d && !any && (e = readdir(d)))
		any = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	if (d)
		closedir(d);
	free(path);
	return any;
}

/*
 * An index.db of 0 bytes is a new store's, created by store_files and not
 * yet written (SQLite writes page 1 when it switches to WAL).  Beside
 * blobs it is an index that lost its content.
 */
static bool emptied(const char *dir, const char *db_path)
{
	struct stat st;

	if (stat(db_path, &st) < 0 || st.st_size != 0)
		return false;
	if (!holds_files(dir, "blobs") && !holds_files(dir, "partial"))
		return false;
	db_errorf("%s is damaged: 0 bytes long, in a store that holds blobs",
		  db_path);
	return true;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/*
 * What the file's 100-byte header (sqlite.org/fileformat.html, 1.3) says
 * without SQLite: the magic string, and a file shorter than the pages the
 * header counts (valid when the change counter at 24 equals the
 * version-valid-for number at 92).
 */
static int check_header(const char *db_path)
{
	unsigned char h[100];
	struct stat st;
	uint32_t page;
	ssize_t n;
	int fd = open(db_path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT ? 0 : db_sys_fail("opening", db_path);
	n = fstat(fd, &st) < 0 ? -1 : pread(fd, h, sizeof(h), 0);
	close(fd);
	if (n < 0)
		return db_sys_fail("reading", db_path);
	if (n == 0)
		return 0;
	if ((size_t)n < sizeof(h) || memcmp(h, "SQLite format 3", 16)) {
		db_errorf("%s is damaged: not an SQLite database", db_path);
		return -EIO;
	}
	page = (uint32_t)h[16] << 8 | h[17];
	page = page == 1 ? 65536 : page;
	if (be32(h + 24) == be32(h + 92) &&
	    (uint64_t)st.st_size < (uint64_t)be32(h + 28) * page) {
		db_errorf("%s is damaged: %lld bytes long, its header counts "
			  "%llu",
			  db_path, (long long)st.st_size,
			  (unsigned long long)be32(h + 28) * page);
		return -EIO;
	}
	return 0;
}

int db_index_path(const char *dir, char *out, size_t size)
{
	int n = snprintf(out, size, "%s/index.db", dir);

	return n >= 0 && (size_t)n < size ? 0 : -ENAMETOOLONG;
}

bool db_store_exists(const char *dir)
{
	char path[PATH_MAX];
	struct stat st;

	return db_index_path(dir, path, sizeof(path)) == 0 &&
	       (stat(path, &st) == 0 || errno != ENOENT);
}

int db_index_inspect(const char *dir)
{
	char *db_path = path_join(dir, "index.db");
	int rc;

	if (!db_path)
		return -ENOMEM;
	rc = emptied(dir, db_path) ? -EIO : check_header(db_path);
	free(db_path);
	return rc;
}

/* Open, check and migrate the index; *bad when it is damaged. */
static int open_index(struct db_store *s, bool *bad)
{
	struct db_conn *c;
	int rc;

	damaged = false;
	*bad = emptied(s->dir, s->db_path);
	if (*bad)
		return -EIO;
	rc = db_conn_get(s, &c);
	if (rc == 0)
		rc = wal_mode(c);
	if (rc == 0)
		rc = quick_check(c);
	if (rc == 0)
		rc = db_migrate(c);
	*bad = rc && damaged;
	return rc;
}

/* Remove the files of a store folder whose names are etags. */
static void clear_folder(struct db_store *s, const char *sub)
{
	char *path = path_join(s->dir, sub), file[PATH_MAX];
	DIR *d = path ? opendir(path) : NULL;
	struct dirent *e;

	while (d && (e = readdir(d))) {
		if (!hub_is_sha256(e->d_name) && !hub_is_commit_id(e->d_name))
			continue;
		if (db_blob_file(s, sub, e->d_name, file, sizeof(file)) == 0)
			unlink(file);
	}
	if (d)
		closedir(d);
	free(path);
}

/*
 * Set a damaged index aside as index.db.corrupt-<time> (its WAL beside
 * it, -wal appended) and start an empty one.  The blob files go too: only
 * the index said they were verified, and with it gone nothing could ever
 * evict them, so they are fetched again on use rather than left to fill
 * the disk (re-adopting them would mean hashing every one first).
 */
static int set_aside(struct db_store *s)
{
	char stamp[32], aside[PATH_MAX], from[PATH_MAX];
	time_t now = time(NULL);
	struct tm tm;
	int fd;

	close_conns(s);
	pthread_setspecific(s->key, NULL);
	if (!gmtime_r(&now, &tm) ||
	    !strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm))
		snprintf(stamp, sizeof(stamp), "%lld", (long long)now);
	snprintf(aside, sizeof(aside), "%s.corrupt-%s", s->db_path, stamp);
	if (rename(s->db_path, aside) < 0)
		return db_sys_fail("moving aside", s->db_path);
	snprintf(s->repaired, sizeof(s->repaired),
		 "%s; moved it to %s and started a new index (blobs are "
		 "fetched again)",
		 last_error, aside);
	/* A WAL left beside the new index would be replayed into it. */
	snprintf(from, sizeof(from), "%s-wal", s->db_path);
	strncat(aside, "-wal", sizeof(aside) - strlen(aside) - 1);
	if (rename(from, aside) < 0 && errno != ENOENT)
		return db_sys_fail("moving aside", from);
	snprintf(from, sizeof(from), "%s-shm", s->db_path);
	if (unlink(from) < 0 && errno != ENOENT)
		return db_sys_fail("removing", from);
	clear_folder(s, "blobs");
	clear_folder(s, "partial");
	fd = open(s->db_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return db_sys_fail("creating", s->db_path);
	close(fd);
	return 0;
}

int db_store_open(struct db_store **out, const char *dir)
{
	struct db_store *s = calloc(1, sizeof(*s));
	bool bad = false;
	int rc;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	if (pthread_key_create(&s->key, conn_release) != 0) {
		free(s);
		return -EAGAIN;
	}
	pthread_mutex_init(&s->lock, NULL);
	rc = store_files(s, dir);
	if (rc == 0)
		rc = open_index(s, &bad);
	/* Once: a fresh index that fails too is not the old one's fault. */
	if (rc && bad) {
		rc = set_aside(s);
		if (rc == 0)
			rc = open_index(s, &bad);
	}
	if (rc) {
		db_store_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

const char *db_store_repaired(const struct db_store *s)
{
	return s->repaired[0] ? s->repaired : NULL;
}

void db_store_close(struct db_store *s)
{
	if (!s)
		return;
	/* First, so that no thread's exit closes a connection again. */
	pthread_key_delete(s->key);
	close_conns(s);
	pthread_mutex_destroy(&s->lock);
	free(s->db_path);
	free(s->dir);
	free(s);
}

/*
 * Run one write statement in its own transaction: key as parameter 1,
 * then the integers of ints[0, n) as parameters 2, 3...
 */
int db_write_row(struct db_store *s, enum db_stmt slot, const char *sql,
		 const char *key, const int64_t *ints, int n)
{
	struct db_conn *c;
	struct db_query q;
	int rc = db_conn_get(s, &c);

	if (rc == 0)
		rc = db_tx_begin(c);
	if (rc)
		return rc;
	rc = db_query(c, slot, sql, &q);
	if (rc == 0) {
		sqlite3_bind_text(q.st, 1, key, -1, SQLITE_STATIC);
		for (int i = 0; i < n; i++)
			sqlite3_bind_int64(q.st, 2 + i, ints[i]);
		rc = db_finish(c, &q);
	}
	return db_tx_end(c, rc);
}

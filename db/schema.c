/*
 * schema.c - the index's schema and its migrations.
 *
 * PRAGMA user_version is the number of migrations applied.  Opening a
 * store applies the missing ones in one BEGIN IMMEDIATE transaction, so
 * two processes opening an old store at once migrate it once, and a crash
 * mid-migration leaves the old version.  A later version appends a step to
 * migrations[]; a step never changes once released.
 */
#include "db_int.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>

/*
 * Version 1.
 *
 * Row ids are AUTOINCREMENT: an id is never handed out twice, even after
 * gc deletes the newest rows, so callers may key on them.
 *
 * entries holds every commit tree's files and folders, parent being the
 * folder's path from the repo root ("" for the root).  The unique index
 * answers both a lookup (tree, parent, name) and a listing (tree, parent)
 * in name order.  A tree is visible only once complete.
 *
 * listed says when an owner's repos were last listed from the Hub, and
 * listings holds that listing (repo names without the owner).
 */
static const char schema_v1[] =
	"CREATE TABLE repos("
	" id        INTEGER PRIMARY KEY AUTOINCREMENT,"
	" type      INTEGER NOT NULL,"
	" name      TEXT NOT NULL,"
	" canonical TEXT NOT NULL DEFAULT '',"
	" last_used INTEGER NOT NULL,"
	" UNIQUE(type, name));"

	"CREATE TABLE listed("
	" type      INTEGER NOT NULL,"
	" owner     TEXT NOT NULL,"
	" listed_at INTEGER NOT NULL,"
	" PRIMARY KEY(type, owner)) WITHOUT ROWID;"

	"CREATE TABLE listings("
	" type  INTEGER NOT NULL,"
	" owner TEXT NOT NULL,"
	" name  TEXT NOT NULL,"
	" PRIMARY KEY(type, owner, name),"
	" FOREIGN KEY(type, owner) REFERENCES listed(type, owner)"
	"  ON DELETE CASCADE) WITHOUT ROWID;"

	"CREATE TABLE revisions("
	" repo       INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,"
	" rev        TEXT NOT NULL,"
	" commit_id  TEXT NOT NULL,"
	" checked_at INTEGER NOT NULL,"
	" PRIMARY KEY(repo, rev)) WITHOUT ROWID;"

	"CREATE TABLE trees("
	" id        INTEGER PRIMARY KEY AUTOINCREMENT,"
	" repo      INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,"
	" commit_id TEXT NOT NULL,"
	" mtime     INTEGER NOT NULL,"
	" files     INTEGER NOT NULL DEFAULT 0,"
	" bytes     INTEGER NOT NULL DEFAULT 0,"
	" complete  INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE(repo, commit_id));"

	"CREATE TABLE entries("
	" id     INTEGER PRIMARY KEY AUTOINCREMENT,"
	" tree   INTEGER NOT NULL REFERENCES trees(id) ON DELETE CASCADE,"
	" parent TEXT NOT NULL,"
	" name   TEXT NOT NULL,"
	" is_dir INTEGER NOT NULL,"
	" size   INTEGER NOT NULL,"
	" etag   TEXT NOT NULL,"
	" lfs    INTEGER NOT NULL);"
	"CREATE UNIQUE INDEX entries_path ON entries(tree, parent, name);"

	"CREATE TABLE blobs("
	" etag      TEXT PRIMARY KEY,"
	" size      INTEGER NOT NULL,"
	" last_used INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE INDEX blobs_lru ON blobs(last_used);";

static int migrate_v1(struct db_conn *c)
{
	return db_exec(c, schema_v1);
}

/*
 * Version 2: blobs being filled.  bitmap has one bit per block of
 * 1 << shift bytes (bit i of byte i / 8 is block i), set once the block's
 * bytes are durable in partial/<etag>.
 */
static const char schema_v2[] = "CREATE TABLE partial("
				" etag    TEXT PRIMARY KEY,"
				" size    INTEGER NOT NULL,"
				" shift   INTEGER NOT NULL,"
				" bitmap  BLOB NOT NULL,"
				" updated INTEGER NOT NULL) WITHOUT ROWID;";

static int migrate_v2(struct db_conn *c)
{
	return db_exec(c, schema_v2);
}

/*
 * Version 3: settings kept in the store once set (the size limit), and an
 * index for evicting partial blobs oldest first.
 */
static const char schema_v3[] = "CREATE TABLE settings("
				" key   TEXT PRIMARY KEY,"
				" value INTEGER NOT NULL) WITHOUT ROWID;"
				"CREATE INDEX partial_lru ON partial(updated);";

static int migrate_v3(struct db_conn *c)
{
	return db_exec(c, schema_v3);
}

/*
 * Version 4: a bitmap names the inode of the partial file it describes, so
 * that it never applies to another file of the same etag.
 */
static int migrate_v4(struct db_conn *c)
{
	return db_exec(c, "ALTER TABLE partial ADD COLUMN"
			  " ino INTEGER NOT NULL DEFAULT 0;");
}

/*
 * Version 5: pins, what "hubfs pull" keeps through eviction (pins.c).  A
 * pin goes with its repo's row; the etags index serves eviction's "is it
 * pinned" and the pinned total.
 */
static const char schema_v5[] =
	"CREATE TABLE pins("
	" repo INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,"
	" rev  TEXT NOT NULL,"
	" etag TEXT NOT NULL,"
	" size INTEGER NOT NULL,"
	" PRIMARY KEY(repo, rev, etag)) WITHOUT ROWID;"
	"CREATE INDEX pins_etag ON pins(etag);";

static int migrate_v5(struct db_conn *c)
{
	return db_exec(c, schema_v5);
}

/*
 * Version 6: when a blob was installed, its file's inode and mtime (ns),
 * so that a file changed or replaced since is not trusted (blobs.c).  0 in
 * both means "not known" (installed before this version).
 */
static int migrate_v6(struct db_conn *c)
{
	return db_exec(c, "ALTER TABLE blobs ADD COLUMN"
			  " ino INTEGER NOT NULL DEFAULT 0;"
			  "ALTER TABLE blobs ADD COLUMN"
			  " mtime_ns INTEGER NOT NULL DEFAULT 0;");
}

/*
 * Version 7: for the huggingface_hub cache view, files by etag (a lookup
 * in its blobs/ names only the etag), and what its trees/<commit>.json
 * needs besides: an LFS file's git blob id (oid; '' for other files, whose
 * etag it is) and xet hash ('' when none).  Trees listed before have ''.
 *
 * The index holds the etag's first 12 hex digits only: as selective, but
 * an index on the whole etag made storing a 100,000-file tree 4 times
 * slower (random keys, 3 times the size) inside the write transaction.
 */
static const char schema_v7[] =
	"CREATE INDEX entries_etag ON entries(substr(etag, 1, 12));"
	"ALTER TABLE entries ADD COLUMN oid TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE entries ADD COLUMN xet TEXT NOT NULL DEFAULT '';";

static int migrate_v7(struct db_conn *c)
{
	return db_exec(c, schema_v7);
}

/*
 * Version 8: files the user already has outside the store (a
 * huggingface_hub cache, a local-dir download, any folder "hubfs import"
 * was given), used where they lie (external.c).  A row says what path was
 * hashed for an etag, with the stamp (device, inode, size, mtime) its file
 * had then, and whether it matched: a bad file is remembered too, so that
 * it is not hashed again on every open while it stays as it is.  One etag
 * may have several paths (the same content in two snapshots).
 */
static const char schema_v8[] = "CREATE TABLE external("
				" etag        TEXT NOT NULL,"
				" path        TEXT NOT NULL,"
				" dev         INTEGER NOT NULL,"
				" ino         INTEGER NOT NULL,"
				" size        INTEGER NOT NULL,"
				" mtime_ns    INTEGER NOT NULL,"
				" verified_at INTEGER NOT NULL,"
				" good        INTEGER NOT NULL,"
				" PRIMARY KEY(etag, path)) WITHOUT ROWID;";

static int migrate_v8(struct db_conn *c)
{
	return db_exec(c, schema_v8);
}

/*
 * Version 9: where the chunks of Xet xorbs lie in blobs (chunks.c), so
 * that a new revision of a file copies the chunks it shares with a
 * complete blob instead of fetching them.  A row is a run of chunks of a
 * xorb, unpacked back to back in the blob from pos on (lengths: count
 * little-endian u32).  Runs, not chunks: a file read through the CAS
 * gives about one run per 16 MiB read, not 256 rows.  The blob index
 * serves dropping a blob's runs with it.
 */
static const char schema_v9[] =
	"CREATE TABLE chunks("
	" xorb    TEXT NOT NULL,"
	" chunk   INTEGER NOT NULL,"
	" count   INTEGER NOT NULL,"
	" blob    TEXT NOT NULL,"
	" pos     INTEGER NOT NULL,"
	" lengths BLOB NOT NULL,"
	" PRIMARY KEY(xorb, chunk, blob)) WITHOUT ROWID;"
	"CREATE INDEX chunks_blob ON chunks(blob);";

static int migrate_v9(struct db_conn *c)
{
	return db_exec(c, schema_v9);
}

/* migrations[i] takes the schema from version i to version i + 1. */
static int (*const migrations[])(struct db_conn *c) = {
	migrate_v1, migrate_v2, migrate_v3, migrate_v4, migrate_v5,
	migrate_v6, migrate_v7, migrate_v8, migrate_v9,
};

#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

static int user_version(struct db_conn *c, int *out)
{
	sqlite3_stmt *st;
	int rc =
		sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL);

	if (rc != SQLITE_OK)
		return db_fail(c, rc);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int(st, 0);
		rc = 0;
	} else {
		rc = db_fail(c, rc);
	}
	sqlite3_finalize(st);
	return rc;
}

static int set_user_version(struct db_conn *c, int v)
{
	char sql[64]; /* a pragma takes no bound parameter */

	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v);
	return db_exec(c, sql);
}

/* Apply the missing steps; the caller holds the write transaction. */
static int migrate_locked(struct db_conn *c)
{
	int v, rc = user_version(c, &v);

	if (rc)
		return rc;
	if (v < 0 || v > SCHEMA_VERSION) {
		db_errorf("index.db has schema version %d; this hubfs knows "
			  "versions up to %d",
			  v, SCHEMA_VERSION);
		return -EPROTO;
	}
	for (; v < SCHEMA_VERSION; v++) {
		rc = migrations[v](c);
		if (rc)
			return rc;
	}
	return set_user_version(c, SCHEMA_VERSION);
}

int db_migrate(struct db_conn *c)
{
	int v, rc = user_version(c, &v);

	/* The common case takes no write lock. */
	if (rc || v == SCHEMA_VERSION)
		return rc;
	rc = db_tx_begin(c);
	if (rc)
		return rc;
	return db_tx_end(c, migrate_locked(c));
}

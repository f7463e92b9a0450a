/*
 * trees.c - commit trees: written once by a db_tree_writer, then read by
 * lookups and folder listings.
 *
 * Listing a big repo from the Hub takes many pages and may take minutes;
 * the write lock of the store must not be held meanwhile (every other
 * process's writes would time out).  So a writer has a connection of its
 * own and collects the entries in a TEMP table, which is private to that
 * connection and takes no lock on the index.  db_tree_end() then copies
 * them into the index in one short BEGIN IMMEDIATE transaction that also
 * marks the tree complete: the tree appears whole or not at all.
 */
#include "db_int.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct db_tree_writer {
	struct db_conn *c; /* the writer's own connection */
	int64_t repo;
	char commit[41];
	int64_t mtime;
	int failed; /* the first failure of the staging, or 0 */
};

/* The staging table; (parent, name) keeps each path once. */
static const char sql_stage_create[] =
	"CREATE TEMP TABLE stage("
	" parent TEXT NOT NULL,"
	" name   TEXT NOT NULL,"
	" is_dir INTEGER NOT NULL,"
	" size   INTEGER NOT NULL,"
	" etag   TEXT NOT NULL,"
	" lfs    INTEGER NOT NULL,"
	" oid    TEXT NOT NULL,"
	" xet    TEXT NOT NULL,"
	" PRIMARY KEY(parent, name)) WITHOUT ROWID;"
	"BEGIN"; /* touches only temp: no lock on the index */

static const char sql_stage_add[] =
	"INSERT OR IGNORE INTO temp.stage VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,"
	" ?8)";

int db_tree_begin(struct db_store *s, int64_t repo, const char *commit,
		  int64_t mtime, struct db_tree_writer **out)
{
	struct db_tree_writer *w;
	int rc;

	*out = NULL;
	if (!commit || !hub_is_commit_id(commit))
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->repo = repo;
	memcpy(w->commit, commit, sizeof(w->commit));
	w->mtime = mtime;
	rc = db_conn_open(s, &w->c);
	if (rc == 0)
		rc = db_exec(w->c, sql_stage_create);
	if (rc) {
		db_conn_close(w->c);
		free(w);
		return rc;
	}
	*out = w;
	return 0;
}

/* A piece of a path: [s, s + n). */
struct piece {
	const char *s;
	size_t n;
};

/* A row of the staging table. */
struct row {
	struct piece parent, name;
	bool is_dir;
	uint64_t size;
	const char *etag;
	bool lfs;
	const char *oid; /* an LFS file's git blob id, else "" */
	const char *xet; /* "" when none */
};

/* Stage a row; *added says whether its path was new. */
static int stage(struct db_tree_writer *w, const struct row *r, bool *added)
{
	struct db_query q;
	int rc = db_query(w->c, ST_STAGE_ADD, sql_stage_add, &q);

	*added = false;
	if (rc)
		return rc;
	assert(r->size <= INT64_MAX);
	sqlite3_bind_text(q.st, 1, r->parent.s, (int)r->parent.n,
			  SQLITE_STATIC);
	sqlite3_bind_text(q.st, 2, r->name.s, (int)r->name.n, SQLITE_STATIC);
	sqlite3_bind_int(q.st, 3, r->is_dir);
	sqlite3_bind_int64(q.st, 4, (sqlite3_int64)r->size);
	sqlite3_bind_text(q.st, 5, r->etag, -1, SQLITE_STATIC);
	sqlite3_bind_int(q.st, 6, r->lfs);
	sqlite3_bind_text(q.st, 7, r->oid, -1, SQLITE_STATIC);
	sqlite3_bind_text(q.st, 8, r->xet, -1, SQLITE_STATIC);
	rc = db_finish(w->c, &q);
	*added = rc == 0 && sqlite3_changes(w->c->db) > 0;
	return rc;
}

/* Split path[0, n) at its last '/'; the parent of "a" is "". */
static void split(const char *path, size_t n, struct piece *parent,
		  struct piece *name)
{
	size_t i = n;

	while (i > 0 && path[i - 1] != '/')
		i--;
	parent->s = path;
	parent->n = i ? i - 1 : 0;
	name->s = path + i;
	name->n = n - i;
}

/*
 * Stage the folders that hold the entry at path, innermost first.  A
 * folder staged before had its own ancestors staged then, so the walk
 * stops at the first one already there.
 */
static int stage_ancestors(struct db_tree_writer *w, struct piece dir)
{
	struct row r = { .is_dir = true, .etag = "", .oid = "", .xet = "" };
	bool added = true;
	int rc = 0;

	while (rc == 0 && added && dir.n > 0) {
		split(dir.s, dir.n, &r.parent, &r.name);
		rc = stage(w, &r, &added);
		dir = r.parent;
	}
	return rc;
}

/* A Hub entry as a row: the etag is the LFS sha256, else the git sha1. */
static int entry_to_row(const struct hub_entry *e, struct row *r)
{
	if (!e->path || !hub_path_safe(e->path))
		return -EINVAL;
	split(e->path, strlen(e->path), &r->parent, &r->name);
	r->is_dir = e->is_dir;
	r->size = 0;
	r->etag = r->oid = r->xet = "";
	r->lfs = false;
	if (e->is_dir)
		return 0;
	r->size = e->size;
	r->lfs = e->lfs_oid != NULL;
	r->etag = r->lfs ? e->lfs_oid : e->oid;
	if (!r->etag || e->size > INT64_MAX)
		return -EINVAL;
	if (r->lfs ? !hub_is_sha256(r->etag) : !hub_is_commit_id(r->etag))
		return -EINVAL;
	/* Extras for trees/<commit>.json: kept only when well-formed. */
	if (r->lfs && e->oid && hub_is_commit_id(e->oid))
		r->oid = e->oid;
	if (e->xet_hash && hub_is_sha256(e->xet_hash))
		r->xet = e->xet_hash;
	return 0;
}

int db_tree_add(struct db_tree_writer *w, const struct hub_entry *e)
{
	struct row r;
	bool added;
	int rc;

	assert(w && e);
	if (w->failed)
		return w->failed;
	rc = entry_to_row(e, &r);
	if (rc)
		return rc; /* the entry is refused, the writer goes on */
	rc = stage(w, &r, &added);
	if (rc == 0 && added)
		rc = stage_ancestors(w, r.parent);
	if (rc)
		w->failed = rc;
	return rc;
}

/* ---- Writing the staged tree into the index ---------------------------- */

static const char sql_tree_old[] = "SELECT id, mtime, complete FROM trees"
				   " WHERE repo = ?1 AND commit_id = ?2";
static const char sql_tree_drop[] = "DELETE FROM trees WHERE id = ?1";
static const char sql_tree_new[] =
	"INSERT INTO trees(repo, commit_id, mtime) VALUES (?1, ?2, ?3)"
	" RETURNING id";
/* In (parent, name) order, the order of the index it lands in. */
static const char sql_tree_fill[] =
	"INSERT INTO entries(tree, parent, name, is_dir, size, etag, lfs, oid,"
	" xet)"
	" SELECT ?1, parent, name, is_dir, size, etag, lfs, oid, xet"
	" FROM temp.stage"
	" ORDER BY parent, name";
static const char sql_tree_seal[] =
	"UPDATE trees SET complete = 1,"
	" files = (SELECT count(*) FROM temp.stage WHERE NOT is_dir),"
	" bytes = (SELECT coalesce(sum(size), 0) FROM temp.stage)"
	" WHERE id = ?1";

/* Run one of the statements above on a tree id. */
static int on_tree(struct db_conn *c, enum db_stmt slot, const char *sql,
		   int64_t tree)
{
	struct db_query q;
	int rc = db_query(c, slot, sql, &q);

	if (rc)
		return rc;
	sqlite3_bind_int64(q.st, 1, tree);
	return db_finish(c, &q);
}

/*
 * The tree already recorded for the commit: 1 with *out filled when it is
 * complete (another process listed it meanwhile), 0 when there is none
 * (an incomplete one is dropped), or a negative errno.
 */
static int tree_old(struct db_tree_writer *w, struct db_tree *out)
{
	struct db_query q;
	bool complete;
	int rc = db_query(w->c, ST_TREE_OLD, sql_tree_old, &q);

	if (rc)
		return rc;
	sqlite3_bind_int64(q.st, 1, w->repo);
	sqlite3_bind_text(q.st, 2, w->commit, -1, SQLITE_STATIC);
	rc = db_step(w->c, &q);
	if (rc <= 0) {
		db_query_end(&q);
		return rc;
	}
	out->id = sqlite3_column_int64(q.st, 0);
	out->mtime = sqlite3_column_int64(q.st, 1);
	complete = sqlite3_column_int(q.st, 2) != 0;
	db_query_end(&q);
	if (complete)
		return 1;
	return on_tree(w->c, ST_TREE_DROP, sql_tree_drop, out->id);
}

static int tree_new(struct db_tree_writer *w, int64_t *id)
{
	struct db_query q;
	int rc = db_query(w->c, ST_TREE_NEW, sql_tree_new, &q);

	if (rc)
		return rc;
	sqlite3_bind_int64(q.st, 1, w->repo);
	sqlite3_bind_text(q.st, 2, w->commit, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q.st, 3, w->mtime);
	rc = db_step(w->c, &q);
	if (rc > 0) {
		*id = sqlite3_column_int64(q.st, 0);
		rc = 0;
	} else if (rc == 0) {
		rc = -EIO; /* RETURNING always gives the row */
	}
	db_query_end(&q);
	return rc;
}

/* Inside the write transaction: the tree row, its entries, the seal. */
static int tree_write(struct db_tree_writer *w, struct db_tree *out)
{
	int rc = tree_old(w, out);

	if (rc)
		return rc > 0 ? 0 : rc;
	rc = tree_new(w, &out->id);
	if (rc == 0)
		rc = on_tree(w->c, ST_TREE_FILL, sql_tree_fill, out->id);
	if (rc == 0)
		rc = on_tree(w->c, ST_TREE_SEAL, sql_tree_seal, out->id);
	out->mtime = w->mtime;
	return rc;
}

static int tree_commit(struct db_tree_writer *w, struct db_tree *out)
{
	int rc = w->failed;

	if (rc == 0)
		rc = db_tx_end(w->c, 0); /* the staging transaction */
	if (rc == 0)
		rc = db_tx_begin(w->c);
	if (rc == 0)
		rc = db_tx_end(w->c, tree_write(w, out));
	return rc;
}

int db_tree_end(struct db_tree_writer *w, bool ok, struct db_tree *out)
{
	struct db_tree t = { 0 };
	int rc = 0;

	if (!w)
		return -EINVAL;
	if (ok)
		rc = tree_commit(w, &t);
	if (ok && rc == 0 && out)
		*out = t;
	/* Closing drops the staging table and anything uncommitted. */
	db_conn_close(w->c);
	free(w);
	return rc;
}

/* ---- Reading ----------------------------------------------------------- */

static const char sql_tree_find[] =
	"SELECT id, mtime FROM trees"
	" WHERE repo = ?1 AND commit_id = ?2 AND complete";
static const char sql_tree_count[] =
	"SELECT files, bytes FROM trees WHERE id = ?1 AND complete";
static const char sql_entry_lookup[] =
	"SELECT id, name, is_dir, size, etag, lfs, xet FROM entries"
	" WHERE tree = ?1 AND parent = ?2 AND name = ?3";
static const char sql_dir_list[] =
	"SELECT id, name, is_dir, size, etag, lfs, xet FROM entries"
	" WHERE tree = ?1 AND parent = ?2 ORDER BY name";

int db_tree_find(struct db_store *s, int64_t repo, const char *commit,
		 struct db_tree *out)
{
	struct db_conn *c;
	struct db_query q;
	int rc = db_thread_query(s, ST_TREE_FIND, sql_tree_find, &c, &q);

	if (rc)
		return rc;
	sqlite3_bind_int64(q.st, 1, repo);
	sqlite3_bind_text(q.st, 2, commit, -1, SQLITE_STATIC);
	rc = db_step(c, &q);
	if (rc > 0) {
		out->id = sqlite3_column_int64(q.st, 0);
		out->mtime = sqlite3_column_int64(q.st, 1);
		rc = 0;
	} else if (rc == 0) {
		rc = -ENOENT;
	}
	db_query_end(&q);
	return rc;
}

int db_tree_count(struct db_store *s, int64_t tree, uint64_t *files,
		  uint64_t *bytes)
{
	struct db_conn *c;
	struct db_query q;
	int rc = db_thread_query(s, ST_TREE_COUNT, sql_tree_count, &c, &q);

	if (rc)
		return rc;
	sqlite3_bind_int64(q.st, 1, tree);
	rc = db_step(c, &q);
	if (rc > 0) {
		*files = (uint64_t)sqlite3_column_int64(q.st, 0);
		*bytes = (uint64_t)sqlite3_column_int64(q.st, 1);
		rc = 0;
	} else if (rc == 0) {
		rc = -ENOENT;
	}
	db_query_end(&q);
	return rc;
}

/* Columns id, name, is_dir, size, etag, lfs, xet. */
static int entry_row(sqlite3_stmt *st, struct db_entry *out)
{
	int rc;

	out->id = sqlite3_column_int64(st, 0);
	out->is_dir = sqlite3_column_int(st, 2) != 0;
	out->size = (uint64_t)sqlite3_column_int64(st, 3);
	out->lfs = sqlite3_column_int(st, 5) != 0;
	rc = db_text(st, 1, out->name, sizeof(out->name));
	if (rc == 0)
		rc = db_text(st, 4, out->etag, sizeof(out->etag));
	return rc ? rc : db_text(st, 6, out->xet, sizeof(out->xet));
}

int db_entry_lookup(struct db_store *s, int64_t tree, const char *parent,
		    const char *name, struct db_entry *out)
{
	struct db_conn *c;
	struct db_query q;
	int rc = db_thread_query(s, ST_ENTRY_LOOKUP, sql_entry_lookup, &c, &q);

	if (rc)
		return rc;
	sqlite3_bind_int64(q.st, 1, tree);
	sqlite3_bind_text(q.st, 2, parent, -1, SQLITE_STATIC);
	sqlite3_bind_text(q.st, 3, name, -1, SQLITE_STATIC);
	rc = db_step(c, &q);
	if (rc > 0)
		rc = entry_row(q.st, out);
	else if (rc == 0)
		rc = -ENOENT;
	db_query_end(&q);
	return rc;
}

int db_dir_list(struct db_store *s, int64_t tree, const char *parent,
		db_entry_fn cb, void *arg)
{
	struct db_conn *c;
	struct db_query q;
	struct db_entry e;
	int rc = db_thread_query(s, ST_DIR_LIST, sql_dir_list, &c, &q);

	if (rc)
		return rc;
	sqlite3_bind_int64(q.st, 1, tree);
	sqlite3_bind_text(q.st, 2, parent, -1, SQLITE_STATIC);
	while ((rc = db_step(c, &q)) > 0) {
		rc = entry_row(q.st, &e);
		if (rc == 0)
			rc = cb(arg, &e);
		if (rc)
			break;
	}
	db_query_end(&q);
	return rc;
}

/* ---- Files by etag ------------------------------------------------------ */

static const char sql_repo_blobs[] =
	"SELECT DISTINCT e.etag FROM trees t JOIN entries e ON e.tree = t.id"
	" WHERE t.repo = ?1 AND t.complete AND NOT e.is_dir ORDER BY 1";

int db_repo_blobs(struct db_store *s, int64_t repo, db_name_fn cb, void *arg)
{
	struct db_conn *c;
	struct db_query q;
	char etag[65];
	int rc = db_thread_query(s, ST_REPO_BLOBS, sql_repo_blobs, &c, &q);

	if (rc)
		return rc;
	sqlite3_bind_int64(q.st, 1, repo);
	while ((rc = db_step(c, &q)) > 0) {
		rc = db_text(q.st, 0, etag, sizeof(etag));
		if (rc == 0)
			rc = cb(arg, etag);
		if (rc)
			break;
	}
	db_query_end(&q);
	return rc;
}

/*
 * Any file will do: the content is the same for every path of an etag.
 * The index is on the etag's prefix (schema.c); "+e.etag" keeps SQLite
 * from substituting ?2 into that expression, which would hide the index.
 */
static const char sql_blob_where[] =
	"SELECT t.commit_id, CASE e.parent WHEN '' THEN e.name"
	"  ELSE e.parent || '/' || e.name END, e.size, e.lfs, t.mtime,"
	" e.xet"
	" FROM entries e INDEXED BY entries_etag JOIN trees t ON t.id = e.tree"
	" WHERE substr(e.etag, 1, 12) = substr(?2, 1, 12) AND +e.etag = ?2"
	"  AND t.repo = ?1 AND t.complete AND NOT e.is_dir"
	" LIMIT 1";

int db_blob_where(struct db_store *s, int64_t repo, const char *etag,
		  struct db_blob_file *out)
{
	struct db_conn *c;
	struct db_query q;
	int rc;

	if (!hub_is_sha256(etag) && !hub_is_commit_id(etag))
		return -EINVAL;
	rc = db_thread_query(s, ST_BLOB_WHERE, sql_blob_where, &c, &q);
	if (rc)
		return rc;
	sqlite3_bind_int64(q.st, 1, repo);
	sqlite3_bind_text(q.st, 2, etag, -1, SQLITE_STATIC);
	rc = db_step(c, &q);
	if (rc > 0) {
		out->size = (uint64_t)sqlite3_column_int64(q.st, 2);
		out->lfs = sqlite3_column_int(q.st, 3) != 0;
		out->mtime = sqlite3_column_int64(q.st, 4);
		rc = db_text(q.st, 0, out->commit, sizeof(out->commit));
		if (rc == 0)
			rc = db_text(q.st, 1, out->path, sizeof(out->path));
		if (rc == 0)
			rc = db_text(q.st, 5, out->xet, sizeof(out->xet));
	} else if (rc == 0) {
		rc = -ENOENT;
	}
	db_query_end(&q);
	return rc;
}

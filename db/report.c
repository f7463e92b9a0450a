/*
 * report.c - read-only summaries of the index for "hubfs ls": the repos,
 * the commits known for each, and how much of each file is held locally.
 *
 * Reports are rare and run once per command, so their statements are
 * prepared for the call and finalized after it, outside the statement
 * cache of the other files.  Each walk is one statement: one read snapshot,
 * whatever a mount writes meanwhile.
 */
#include "db_int.h"

#include <errno.h>
#include <string.h>

/* Prepare sql on this thread's connection; the caller finalizes *st. */
static int prepare(struct db_store *s, const char *sql, struct db_conn **c,
		   sqlite3_stmt **st)
{
	int rc = db_conn_get(s, c);

	if (rc)
		return rc;
	rc = sqlite3_prepare_v2((*c)->db, sql, -1, st, NULL);
	return rc == SQLITE_OK ? 0 : db_fail(*c, rc);
}

/* Step: 1 for a row, 0 when done, or a negative errno. */
static int step(struct db_conn *c, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : db_fail(c, rc);
}

/* ---- Repos ------------------------------------------------------------- */

static const char sql_repos[] =
	"SELECT id, type, name, canonical, last_used FROM repos"
	" ORDER BY type, name";

int db_report_repos(struct db_store *s, db_repo_fn cb, void *arg)
{
	struct db_conn *c;
	sqlite3_stmt *st = NULL;
	struct db_repo r;
	int rc = prepare(s, sql_repos, &c, &st);

	while (rc == 0 && (rc = step(c, st)) > 0) {
		memset(&r, 0, sizeof(r));
		r.id = sqlite3_column_int64(st, 0);
		r.type = (enum hub_repo_type)sqlite3_column_int(st, 1);
		r.last_used = sqlite3_column_int64(st, 4);
		rc = db_text(st, 2, r.name, sizeof(r.name));
		if (rc == 0)
			rc = db_text(st, 3, r.canonical, sizeof(r.canonical));
		if (rc == 0)
			rc = cb(arg, &r);
	}
	sqlite3_finalize(st);
	return rc;
}

/* ---- Revisions --------------------------------------------------------- */

/*
 * The recorded revisions (pinned 0), then the complete trees of commits no
 * revision points at (pinned 1), each with its tree when one is complete.
 */
static const char sql_revs[] =
	"SELECT 0, r.rev, r.commit_id, r.checked_at,"
	"  coalesce(t.id, 0), coalesce(t.mtime, 0)"
	" FROM revisions r LEFT JOIN trees t"
	"  ON t.repo = r.repo AND t.commit_id = r.commit_id AND t.complete"
	" WHERE r.repo = ?1"
	" UNION ALL"
	" SELECT 1, '', t.commit_id, 0, t.id, t.mtime FROM trees t"
	" WHERE t.repo = ?1 AND t.complete AND t.commit_id NOT IN"
	"  (SELECT commit_id FROM revisions WHERE repo = ?1)"
	" ORDER BY 1, 2, 5";

int db_report_revisions(struct db_store *s, int64_t repo, db_rev_fn cb,
			void *arg)
{
	struct db_conn *c;
	sqlite3_stmt *st = NULL;
	struct db_report_rev r;
	int rc = prepare(s, sql_revs, &c, &st);

	if (rc == 0)
		sqlite3_bind_int64(st, 1, repo);
	while (rc == 0 && (rc = step(c, st)) > 0) {
		memset(&r, 0, sizeof(r));
		r.pinned = sqlite3_column_int(st, 0) != 0;
		r.checked_at = sqlite3_column_int64(st, 3);
		r.tree = sqlite3_column_int64(st, 4);
		r.mtime = sqlite3_column_int64(st, 5);
		rc = db_text(st, 1, r.rev, sizeof(r.rev));
		if (rc == 0)
			rc = db_text(st, 2, r.commit, sizeof(r.commit));
		if (rc == 0)
			rc = cb(arg, &r);
	}
	sqlite3_finalize(st);
	return rc;
}

/* ---- Files ------------------------------------------------------------- */

static const char sql_files[] =
	"SELECT CASE e.parent WHEN '' THEN e.name"
	"  ELSE e.parent || '/' || e.name END AS path,"
	" e.size, e.etag, e.lfs, b.size, coalesce(b.last_used, 0),"
	" p.size, p.shift, p.bitmap, coalesce(p.updated, 0), e.oid, e.xet,"
	" EXISTS(SELECT 1 FROM external x WHERE x.etag = e.etag"
	"  AND x.good AND x.size = e.size)"
	" FROM entries e"
	" LEFT JOIN blobs b ON b.etag = e.etag"
	" LEFT JOIN partial p ON p.etag = e.etag"
	" WHERE e.tree = ?1 AND NOT e.is_dir ORDER BY path";

/* How many bits are set among the first nbits of bitmap. */
static uint64_t count_bits(const uint8_t *bitmap, uint64_t nbits)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < nbits / 8; i++)
		n += (uint64_t)__builtin_popcount(bitmap[i]);
	for (uint64_t i = nbits / 8 * 8; i < nbits; i++)
		n += db_bit(bitmap, i);
	return n;
}

/*
 * The bytes of a partial blob that are present: its marked blocks, the
 * last one counting only up to the end of the file.  A bitmap recorded for
 * another size or block size is stale and counts nothing, as
 * db_partial_open would discard it.
 */
static uint64_t partial_bytes(sqlite3_stmt *st, uint64_t size)
{
	const uint8_t *bitmap;
	uint64_t blocks, present, block;
	int shift;

	if (sqlite3_column_type(st, 6) == SQLITE_NULL ||
	    (uint64_t)sqlite3_column_int64(st, 6) != size || size == 0)
		return 0;
	shift = sqlite3_column_int(st, 7);
	if (shift < 9 || shift > 40)
		return 0;
	block = 1ULL << shift;
	blocks = (size + block - 1) >> shift;
	bitmap = sqlite3_column_blob(st, 8);
	if (!bitmap || (size_t)sqlite3_column_bytes(st, 8) !=
			       db_bitmap_bytes(size, (unsigned)shift))
		return 0;
	present = count_bits(bitmap, blocks) * block;
	if (db_bit(bitmap, blocks - 1))
		present -= blocks * block - size;
	return present;
}

/* One row of sql_files as a report; the strings live in st's row. */
static int file_row(sqlite3_stmt *st, struct db_report_file *f)
{
	int64_t used = sqlite3_column_int64(st, 5);
	int64_t updated = sqlite3_column_int64(st, 9);

	f->path = (const char *)sqlite3_column_text(st, 0);
	f->size = (uint64_t)sqlite3_column_int64(st, 1);
	f->etag = (const char *)sqlite3_column_text(st, 2);
	f->lfs = sqlite3_column_int(st, 3) != 0;
	f->oid = (const char *)sqlite3_column_text(st, 10);
	f->xet = (const char *)sqlite3_column_text(st, 11);
	if (!f->path || !f->etag || !f->oid || !f->xet)
		return -ENOMEM;
	if (f->size == 0 ||
	    (sqlite3_column_type(st, 4) != SQLITE_NULL &&
	     (uint64_t)sqlite3_column_int64(st, 4) == f->size)) {
		f->complete = true;
		f->local = f->size;
	} else {
		f->complete = false;
		f->local = partial_bytes(st, f->size);
	}
	f->external = sqlite3_column_int(st, 12) != 0;
	if (f->external && !f->complete)
		f->local = f->size;
	f->last_used = used > updated ? used : updated;
	return 0;
}

int db_report_files(struct db_store *s, int64_t tree, db_file_fn cb, void *arg)
{
	struct db_conn *c;
	sqlite3_stmt *st = NULL;
	struct db_report_file f;
	int rc = prepare(s, sql_files, &c, &st);

	if (rc == 0)
		sqlite3_bind_int64(st, 1, tree);
	while (rc == 0 && (rc = step(c, st)) > 0) {
		rc = file_row(st, &f);
		if (rc == 0)
			rc = cb(arg, &f);
	}
	sqlite3_finalize(st);
	return rc;
}

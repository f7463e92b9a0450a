/*
 * pins.c - what "hubfs pull" keeps, and forgetting a repo.
 *
 * A pin names a blob by etag for a repo and the revision as it was asked
 * for ("" the default branch, a branch, a tag or a commit id).  A blob is
 * pinned while any pin names it, whether or not it is complete yet: a pull
 * records its pins before it fetches, so the blocks an interrupted pull
 * already has are kept for the next one.  Eviction passes pinned blobs by
 * (evict.c); a pin does not hold a blob against "hubfs verify" dropping a
 * bad copy.
 */
#include "db_int.h"

#include <errno.h>

static const char sql_pin_add[] =
	"INSERT INTO pins(repo, rev, etag, size) VALUES (?1, ?2, ?3, ?4)"
	" ON CONFLICT(repo, rev, etag) DO UPDATE SET size = ?4";
static const char sql_unpin_rev[] =
	"DELETE FROM pins WHERE repo = ?1 AND rev = ?2";
static const char sql_unpin_all[] = "DELETE FROM pins WHERE repo = ?1";
static const char sql_pin_usage[] =
	"SELECT count(*), coalesce(sum(size), 0),"
	" coalesce(sum(CASE WHEN etag IN (SELECT etag FROM blobs)"
	"  THEN size ELSE 0 END), 0)"
	" FROM (SELECT etag, max(size) AS size FROM pins GROUP BY etag)";
static const char sql_repo_forget[] = "DELETE FROM repos WHERE id = ?1";
/* The legacy and old ids that lead to it go with it. */
static const char sql_alias_forget[] =
	"DELETE FROM repos WHERE canonical != '' AND (type, canonical) IN"
	" (SELECT type, name FROM repos WHERE id = ?1)";

int db_pin_add(struct db_store *s, int64_t repo, const char *rev,
	       const struct db_pin *pins, size_t n)
{
	struct db_conn *c;
	struct db_query q;
	int rc;

	for (size_t i = 0; i < n; i++)
		if (!hub_is_sha256(pins[i].etag) &&
		    !hub_is_commit_id(pins[i].etag))
			return -EINVAL;
	rc = db_conn_get(s, &c);
	if (rc == 0)
		rc = db_tx_begin(c);
	if (rc)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		rc = db_query(c, ST_PIN_ADD, sql_pin_add, &q);
		if (rc)
			break;
		sqlite3_bind_int64(q.st, 1, repo);
		sqlite3_bind_text(q.st, 2, rev, -1, SQLITE_STATIC);
		sqlite3_bind_text(q.st, 3, pins[i].etag, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q.st, 4, (int64_t)pins[i].size);
		rc = db_finish(c, &q);
	}
	return db_tx_end(c, rc);
}

int db_pin_remove(struct db_store *s, int64_t repo, const char *rev,
		  uint64_t *removed)
{
	struct db_conn *c;
	struct db_query q;
	int rc = db_conn_get(s, &c);

	if (rc == 0)
		rc = db_tx_begin(c);
	if (rc)
		return rc;
	rc = rev ? db_query(c, ST_UNPIN_REV, sql_unpin_rev, &q)
		 : db_query(c, ST_UNPIN_ALL, sql_unpin_all, &q);
	if (rc == 0) {
		sqlite3_bind_int64(q.st, 1, repo);
		if (rev)
			sqlite3_bind_text(q.st, 2, rev, -1, SQLITE_STATIC);
		rc = db_finish(c, &q);
	}
	if (rc == 0 && removed)
		*removed = (uint64_t)sqlite3_changes(c->db);
	return db_tx_end(c, rc);
}

int db_pin_usage(struct db_store *s, struct db_pin_usage *out)
{
	struct db_conn *c;
	struct db_query q;
	int rc = db_thread_query(s, ST_PIN_USAGE, sql_pin_usage, &c, &q);

	if (rc)
		return rc;
	rc = db_step(c, &q);
	if (rc > 0) {
		out->blobs = (uint64_t)sqlite3_column_int64(q.st, 0);
		out->bytes = (uint64_t)sqlite3_column_int64(q.st, 1);
		out->complete_bytes = (uint64_t)sqlite3_column_int64(q.st, 2);
		rc = 0;
	} else if (rc == 0) {
		rc = -EIO;
	}
	db_query_end(&q);
	return rc;
}

int db_repo_forget(struct db_store *s, int64_t repo)
{
	struct db_conn *c;
	struct db_query q;
	int rc = db_conn_get(s, &c);

	if (rc == 0)
		rc = db_tx_begin(c);
	if (rc)
		return rc;
	rc = db_query(c, ST_ALIAS_FORGET, sql_alias_forget, &q);
	if (rc == 0) {
		sqlite3_bind_int64(q.st, 1, repo);
		rc = db_finish(c, &q);
	}
	if (rc == 0)
		rc = db_query(c, ST_REPO_FORGET, sql_repo_forget, &q);
	if (rc == 0) {
		sqlite3_bind_int64(q.st, 1, repo);
		rc = db_finish(c, &q);
	}
	if (rc == 0 && sqlite3_changes(c->db) == 0)
		rc = -ENOENT;
	return db_tx_end(c, rc);
}

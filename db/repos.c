/*
 * repos.c - the repos the store knows, the owners' listings from the Hub,
 * and the commit each revision of a repo pointed to when last checked.
 */
#include "db_int.h"

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* An owner: a repo id without '/'. */
static bool owner_valid(const char *owner)
{
	return owner && !strchr(owner, '/') && hub_repo_id_valid(owner);
}

/* ---- Repos ------------------------------------------------------------- */

static const char sql_repo_get[] =
	"SELECT id, type, name, canonical, last_used FROM repos"
	" WHERE type = ?1 AND name = ?2";

/* A NULL canonical keeps the one recorded. */
static const char sql_repo_put[] =
	"INSERT INTO repos(type, name, canonical, last_used)"
	" VALUES (?1, ?2, coalesce(?3, ''), ?4)"
	" ON CONFLICT(type, name) DO UPDATE"
	" SET canonical = coalesce(?3, canonical), last_used = ?4"
	" RETURNING id, type, name, canonical, last_used";

static int repo_row(sqlite3_stmt *st, struct db_repo *out)
{
	int rc;

	out->id = sqlite3_column_int64(st, 0);
	out->type = (enum hub_repo_type)sqlite3_column_int(st, 1);
	out->last_used = sqlite3_column_int64(st, 4);
	rc = db_text(st, 2, out->name, sizeof(out->name));
	return rc ? rc : db_text(st, 3, out->canonical, sizeof(out->canonical));
}

int db_repo_get(struct db_store *s, enum hub_repo_type type, const char *name,
		struct db_repo *out)
{
	struct db_conn *c;
	struct db_query q;
	int rc = db_thread_query(s, ST_REPO_GET, sql_repo_get, &c, &q);

	if (rc)
		return rc;
	sqlite3_bind_int(q.st, 1, (int)type);
	sqlite3_bind_text(q.st, 2, name, -1, SQLITE_STATIC);
	rc = db_step(c, &q);
	if (rc > 0)
		rc = repo_row(q.st, out);
	else if (rc == 0)
		rc = -ENOENT;
	db_query_end(&q);
	return rc;
}

static int repo_put(struct db_conn *c, enum hub_repo_type type,
		    const char *name, const char *canonical,
		    struct db_repo *out)
{
	struct db_query q;
	int rc = db_query(c, ST_REPO_PUT, sql_repo_put, &q);

	if (rc)
		return rc;
	sqlite3_bind_int(q.st, 1, (int)type);
	sqlite3_bind_text(q.st, 2, name, -1, SQLITE_STATIC);
	if (canonical)
		sqlite3_bind_text(q.st, 3, canonical, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q.st, 4, (sqlite3_int64)time(NULL));
	rc = db_step(c, &q);
	if (rc > 0)
		rc = out ? repo_row(q.st, out) : 0;
	else if (rc == 0)
		rc = -EIO; /* RETURNING always gives the row */
	db_query_end(&q);
	return rc;
}

int db_repo_put(struct db_store *s, enum hub_repo_type type, const char *name,
		const char *canonical, struct db_repo *out)
{
	struct db_conn *c;
	int rc;

	if (!name || !hub_repo_id_valid(name) ||
	    (canonical && canonical[0] && !hub_repo_id_valid(canonical)))
		return -EINVAL;
	rc = db_conn_get(s, &c);
	if (rc == 0)
		rc = db_tx_begin(c);
	if (rc)
		return rc;
	return db_tx_end(c, repo_put(c, type, name, canonical, out));
}

/* ---- Owners and listings ----------------------------------------------- */

/* Hand each row's one name to cb until it returns non-zero. */
static int each_name(struct db_conn *c, struct db_query *q, db_name_fn cb,
		     void *arg)
{
	int rc;

	while ((rc = db_step(c, q)) > 0) {
		const char *name = (const char *)sqlite3_column_text(q->st, 0);

		rc = name ? cb(arg, name) : -ENOMEM;
		if (rc)
			break;
	}
	return rc;
}

static const char sql_owners[] =
	"SELECT substr(name, 1, instr(name, '/') - 1) FROM repos"
	" WHERE type = ?1 AND instr(name, '/') > 0"
	" UNION SELECT owner FROM listings WHERE type = ?1"
	" ORDER BY 1";

int db_owners(struct db_store *s, enum hub_repo_type type, db_name_fn cb,
	      void *arg)
{
	struct db_conn *c;
	struct db_query q;
	int rc = db_thread_query(s, ST_OWNERS, sql_owners, &c, &q);

	if (rc)
		return rc;
	sqlite3_bind_int(q.st, 1, (int)type);
	rc = each_name(c, &q, cb, arg);
	db_query_end(&q);
	return rc;
}

/*
 * An owner's repos are the names between "owner/" and "owner0" ('0'
 * follows '/'), a range of the (type, name) index.
 */
static const char sql_owner_repos[] =
	"SELECT substr(name, length(?2) + 2) FROM repos"
	" WHERE type = ?1 AND name > (?2 || '/') AND name < (?2 || '0')"
	" UNION SELECT name FROM listings WHERE type = ?1 AND owner = ?2"
	" ORDER BY 1";

int db_owner_repos(struct db_store *s, enum hub_repo_type type,
		   const char *owner, db_name_fn cb, void *arg)
{
	struct db_conn *c;
	struct db_query q;
	int rc;

	if (!owner_valid(owner))
		return -EINVAL;
	rc = db_thread_query(s, ST_OWNER_REPOS, sql_owner_repos, &c, &q);
	if (rc)
		return rc;
	sqlite3_bind_int(q.st, 1, (int)type);
	sqlite3_bind_text(q.st, 2, owner, -1, SQLITE_STATIC);
	rc = each_name(c, &q, cb, arg);
	db_query_end(&q);
	return rc;
}

static const char sql_listed_put[] =
	"INSERT INTO listed(type, owner, listed_at) VALUES (?1, ?2, ?3)"
	" ON CONFLICT(type, owner) DO UPDATE SET listed_at = ?3";
static const char sql_listing_clear[] =
	"DELETE FROM listings WHERE type = ?1 AND owner = ?2";
static const char sql_listing_add[] =
	"INSERT OR IGNORE INTO listings(type, owner, name) VALUES (?1, ?2, ?3)";

/* One of the statements above with (type, owner) bound. */
static int owner_query(struct db_conn *c, enum db_stmt slot, const char *sql,
		       enum hub_repo_type type, const char *owner,
		       struct db_query *q)
{
	int rc = db_query(c, slot, sql, q);

	if (rc == 0) {
		sqlite3_bind_int(q->st, 1, (int)type);
		sqlite3_bind_text(q->st, 2, owner, -1, SQLITE_STATIC);
	}
	return rc;
}

/*
 * The repo name in a listed id of the owner, or NULL for an id that is not
 * a valid "owner/name".  Owners are compared as the Hub does, ignoring case.
 */
static const char *listed_name(const char *owner, const char *id)
{
	size_t n = strlen(owner);

	if (!id || strncasecmp(id, owner, n) != 0 || id[n] != '/' ||
	    !hub_repo_id_valid(id))
		return NULL;
	return id + n + 1;
}

static int listing_put(struct db_conn *c, enum hub_repo_type type,
		       const char *owner, const char *const *ids, size_t n,
		       int64_t now)
{
	struct db_query q;
	int rc;

	rc = owner_query(c, ST_LISTED_PUT, sql_listed_put, type, owner, &q);
	if (rc)
		return rc;
	sqlite3_bind_int64(q.st, 3, now);
	rc = db_finish(c, &q);
	if (rc == 0)
		rc = owner_query(c, ST_LISTING_CLEAR, sql_listing_clear, type,
				 owner, &q);
	if (rc == 0)
		rc = db_finish(c, &q);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const char *name = listed_name(owner, ids[i]);

		if (!name)
			continue;
		rc = owner_query(c, ST_LISTING_ADD, sql_listing_add, type,
				 owner, &q);
		if (rc)
			break;
		sqlite3_bind_text(q.st, 3, name, -1, SQLITE_STATIC);
		rc = db_finish(c, &q);
	}
	return rc;
}

int db_listing_put(struct db_store *s, enum hub_repo_type type,
		   const char *owner, const char *const *repo_ids, size_t n,
		   int64_t now)
{
	struct db_conn *c;
	int rc;

	if (!owner_valid(owner) || (n && !repo_ids))
		return -EINVAL;
	rc = db_conn_get(s, &c);
	if (rc == 0)
		rc = db_tx_begin(c);
	if (rc)
		return rc;
	return db_tx_end(c, listing_put(c, type, owner, repo_ids, n, now));
}

static const char sql_listed_get[] =
	"SELECT listed_at FROM listed WHERE type = ?1 AND owner = ?2";

int db_listing_age(struct db_store *s, enum hub_repo_type type,
		   const char *owner, int64_t *listed_at)
{
	struct db_conn *c;
	struct db_query q;
	int rc = db_conn_get(s, &c);

	if (rc == 0)
		rc = owner_query(c, ST_LISTED_GET, sql_listed_get, type, owner,
				 &q);
	if (rc)
		return rc;
	rc = db_step(c, &q);
	if (rc > 0) {
		*listed_at = sqlite3_column_int64(q.st, 0);
		rc = 0;
	} else if (rc == 0) {
		rc = -ENOENT;
	}
	db_query_end(&q);
	return rc;
}

/* ---- Revisions --------------------------------------------------------- */

static const char sql_rev_get[] = "SELECT commit_id, checked_at FROM revisions"
				  " WHERE repo = ?1 AND rev = ?2";
static const char sql_rev_put[] =
	"INSERT INTO revisions(repo, rev, commit_id, checked_at)"
	" VALUES (?1, ?2, ?3, ?4)"
	" ON CONFLICT(repo, rev) DO UPDATE SET commit_id = ?3, checked_at = ?4";

int db_revision_get(struct db_store *s, int64_t repo, const char *rev,
		    char commit[41], int64_t *checked_at)
{
	struct db_conn *c;
	struct db_query q;
	int rc = db_thread_query(s, ST_REV_GET, sql_rev_get, &c, &q);

	if (rc)
		return rc;
	sqlite3_bind_int64(q.st, 1, repo);
	sqlite3_bind_text(q.st, 2, rev, -1, SQLITE_STATIC);
	rc = db_step(c, &q);
	if (rc > 0) {
		*checked_at = sqlite3_column_int64(q.st, 1);
		rc = db_text(q.st, 0, commit, 41);
	} else if (rc == 0) {
		rc = -ENOENT;
	}
	db_query_end(&q);
	return rc;
}

static int revision_put(struct db_conn *c, int64_t repo, const char *rev,
			const char *commit, int64_t now)
{
	struct db_query q;
	int rc = db_query(c, ST_REV_PUT, sql_rev_put, &q);

	if (rc)
		return rc;
	sqlite3_bind_int64(q.st, 1, repo);
	sqlite3_bind_text(q.st, 2, rev, -1, SQLITE_STATIC);
	sqlite3_bind_text(q.st, 3, commit, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q.st, 4, now);
	return db_finish(c, &q);
}

int db_revision_put(struct db_store *s, int64_t repo, const char *rev,
		    const char *commit, int64_t now)
{
	struct db_conn *c;
	int rc;

	if (!rev || !commit || !hub_is_commit_id(commit))
		return -EINVAL;
	rc = db_conn_get(s, &c);
	if (rc == 0)
		rc = db_tx_begin(c);
	if (rc)
		return rc;
	return db_tx_end(c, revision_put(c, repo, rev, commit, now));
}

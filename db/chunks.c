/*
 * chunks.c - where the chunks of Xet xorbs lie in blobs.
 *
 * A row is a run: chunks [chunk, chunk + count) of a xorb are, unpacked,
 * the bytes of blob etag from pos on, back to back, lengths[i] each
 * (lengths: count little-endian u32).  It is written while the blob is
 * still being filled, and is a fact about the blob's content, whichever
 * way its bytes came; it is used only through a join with blobs, so only
 * once the blob is recorded complete and verified, and it goes with the
 * blob (db_drop_rows).  The key keeps one run per (xorb, first chunk,
 * blob), the longest written.
 */
#include "db_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char sql_chunk_put[] =
	"INSERT INTO chunks(xorb, chunk, count, blob, pos, lengths)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
	" ON CONFLICT(xorb, chunk, blob) DO UPDATE"
	" SET count = excluded.count, pos = excluded.pos,"
	" lengths = excluded.lengths WHERE excluded.count > chunks.count";
/* The most recently used blob's runs first: it is the likeliest to stay. */
static const char sql_chunk_find[] =
	"SELECT c.chunk, c.count, c.blob, c.pos, c.lengths"
	" FROM chunks c JOIN blobs b ON b.etag = c.blob"
	" WHERE c.xorb = ?1 AND c.chunk < ?3 AND c.chunk + c.count > ?2"
	" ORDER BY b.last_used DESC, c.blob";
static const char sql_chunk_drop[] = "DELETE FROM chunks WHERE blob = ?1";

static bool run_valid(const struct db_chunk_run *r)
{
	if (!r->xorb || !hub_is_sha256(r->xorb) || r->count == 0 ||
	    !r->lengths || r->chunk > UINT32_MAX - r->count ||
	    r->offset > INT64_MAX)
		return false;
	for (uint32_t i = 0; i < r->count; i++)
		if (r->lengths[i] == 0 || r->lengths[i] > HUB_XET_CHUNK_MAX)
			return false;
	return true;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static int put_run(struct db_conn *c, const char *etag,
		   const struct db_chunk_run *r, uint8_t *buf)
{
	struct db_query q;
	int rc = db_query(c, ST_CHUNK_PUT, sql_chunk_put, &q);

	if (rc)
		return rc;
	for (uint32_t i = 0; i < r->count; i++)
		put_le32(buf + 4 * (size_t)i, r->lengths[i]);
	sqlite3_bind_text(q.st, 1, r->xorb, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q.st, 2, r->chunk);
	sqlite3_bind_int64(q.st, 3, r->count);
	sqlite3_bind_text(q.st, 4, etag, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q.st, 5, (int64_t)r->offset);
	sqlite3_bind_blob(q.st, 6, buf, (int)(4 * r->count), SQLITE_STATIC);
	return db_finish(c, &q);
}

int db_chunks_put(struct db_store *s, const char *etag,
		  const struct db_chunk_run *runs, size_t n)
{
	uint32_t most = 0;
	struct db_conn *c;
	uint8_t *buf;
	int rc;

	if (!etag || (!hub_is_sha256(etag) && !hub_is_commit_id(etag)))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!run_valid(&runs[i]))
			return -EINVAL;
		if (runs[i].count > most)
			most = runs[i].count;
	}
	if (n == 0)
		return 0;
	if (most > (1u << 24))
		return -EINVAL; /* more than any xorb holds */
	buf = malloc(4 * (size_t)most);
	if (!buf)
		return -ENOMEM;
	rc = db_conn_get(s, &c);
	if (rc == 0)
		rc = db_tx_begin(c);
	if (rc == 0) {
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = put_run(c, etag, &runs[i], buf);
		rc = db_tx_end(c, rc);
	}
	free(buf);
	return rc;
}

/*
 * Fill the entries of out (chunks [start, end)) that the run of the
 * current row holds and that are still empty.  A row whose lengths do not
 * match its count is skipped (a damaged index is not trusted).
 */
static void take_run(sqlite3_stmt *st, uint32_t start, uint32_t end,
		     struct db_chunk_at *out)
{
	int64_t chunk = sqlite3_column_int64(st, 0);
	int64_t count = sqlite3_column_int64(st, 1);
	int64_t pos = sqlite3_column_int64(st, 3);
	const uint8_t *len = sqlite3_column_blob(st, 4);
	int n = sqlite3_column_bytes(st, 4);
	char etag[65];
	uint64_t at;

	if (chunk < 0 || count <= 0 || pos < 0 || !len ||
	    (int64_t)n != 4 * count || db_text(st, 2, etag, sizeof(etag)) < 0)
		return;
	at = (uint64_t)pos;
	for (int64_t i = 0; i < count; i++) {
		int64_t k = chunk + i;
		uint32_t l = get_le32(len + 4 * i);

		if (l == 0 || l > HUB_XET_CHUNK_MAX)
			return;
		if (k >= start && k < end && !out[k - start].etag[0]) {
			memcpy(out[k - start].etag, etag, sizeof(etag));
			out[k - start].offset = at;
			out[k - start].length = l;
		}
		at += l;
	}
}

int db_chunks_locate(struct db_store *s, const char *xorb, uint32_t start,
		     uint32_t end, struct db_chunk_at *out)
{
	struct db_conn *c;
	struct db_query q;
	int rc;

	if (!xorb || !hub_is_sha256(xorb) || start >= end)
		return -EINVAL;
	memset(out, 0, (size_t)(end - start) * sizeof(*out));
	rc = db_thread_query(s, ST_CHUNK_FIND, sql_chunk_find, &c, &q);
	if (rc)
		return rc;
	sqlite3_bind_text(q.st, 1, xorb, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q.st, 2, start);
	sqlite3_bind_int64(q.st, 3, end);
	while ((rc = db_step(c, &q)) > 0)
		take_run(q.st, start, end, out);
	db_query_end(&q);
	if (rc < 0)
		return rc;
	for (uint32_t i = 0; i < end - start; i++)
		if (!out[i].etag[0])
			return -ENOENT;
	return 0;
}

/*
 * Delete etag's row with sql (parameter 1: the etag) and its chunk runs,
 * in one transaction.
 */
int db_drop_rows(struct db_store *s, enum db_stmt slot, const char *sql,
		 const char *etag)
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
		sqlite3_bind_text(q.st, 1, etag, -1, SQLITE_STATIC);
		rc = db_finish(c, &q);
	}
	if (rc == 0)
		rc = db_query(c, ST_CHUNK_DROP, sql_chunk_drop, &q);
	if (rc == 0) {
		sqlite3_bind_text(q.st, 1, etag, -1, SQLITE_STATIC);
		rc = db_finish(c, &q);
	}
	return db_tx_end(c, rc);
}

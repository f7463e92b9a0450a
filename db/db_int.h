/*
 * db_int.h - what the files of db/ share; not part of the interface.
 *
 *   store.c   the store folder, per-thread connections, the statement
 *             cache, transactions, errors
 *   schema.c  the schema and its migrations
 *   repos.c   repos, owners' listings from the Hub, revisions
 *   trees.c   commit trees and their entries
 *   blobs.c   blob files and their records
 *   partial.c blobs being filled, block by block
 *   evict.c   settings, last use, the size limit and eviction
 *   pins.c    what pull keeps; forgetting a repo
 *   verify.c  re-hashing complete blobs; blobs nothing refers to
 *   external.c files outside the store, used where they lie
 *   chunks.c  where the chunks of Xet xorbs lie in blobs
 */
#ifndef HUBFS_DB_INT_H
#define HUBFS_DB_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>

#include "db.h"

/* How long a writer waits for another one (any process) to finish. */
#define DB_BUSY_MS 10000

/*
 * Slots of the per-connection statement cache: one per SQL text.  The text
 * lives next to the code that runs it and is passed with its slot.
 */
enum db_stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_REPO_GET,
	ST_REPO_PUT,
	ST_OWNERS,
	ST_OWNER_REPOS,
	ST_LISTED_PUT,
	ST_LISTED_GET,
	ST_LISTING_CLEAR,
	ST_LISTING_ADD,
	ST_REV_GET,
	ST_REV_PUT,
	ST_TREE_FIND,
	ST_TREE_COUNT,
	ST_ENTRY_LOOKUP,
	ST_DIR_LIST,
	ST_STAGE_ADD, /* tree writer's connection only */
	ST_TREE_OLD,  /* ditto */
	ST_TREE_DROP, /* ditto */
	ST_TREE_NEW,  /* ditto */
	ST_TREE_FILL, /* ditto */
	ST_TREE_SEAL, /* ditto */
	ST_BLOB_GET,
	ST_BLOB_PUT,
	ST_BLOB_FORGET,
	ST_BLOB_DEL,
	ST_BLOB_USAGE,
	ST_PARTIAL_GET,
	ST_PARTIAL_PUT,
	ST_PARTIAL_DEL,
	ST_SETTING_GET,
	ST_SETTING_PUT,
	ST_BLOB_TOUCH,
	ST_LRU_BLOBS,
	ST_LRU_PARTIAL,
	ST_PARTIAL_ALL,
	ST_PIN_ADD,
	ST_UNPIN_REV,
	ST_UNPIN_ALL,
	ST_PIN_USAGE,
	ST_REPO_FORGET,
	ST_ALIAS_FORGET,
	ST_BLOB_ALL,
	ST_UNREF_BLOBS,
	ST_UNREF_PARTIAL,
	ST_REPO_BLOBS,
	ST_BLOB_WHERE,
	ST_EXT_GOOD,
	ST_EXT_GET,
	ST_EXT_SAME,
	ST_EXT_PUT,
	ST_EXT_DEL,
	ST_EXT_USAGE,
	ST_CHUNK_PUT,
	ST_CHUNK_FIND,
	ST_CHUNK_DROP,
	ST_COUNT
};

/*
 * One SQLite connection and its prepared statements.  Used by one thread
 * at a time: the thread it belongs to, or a tree writer's caller.
 */
struct db_conn {
	struct db_store *store;
	sqlite3 *db;
	sqlite3_stmt *stmt[ST_COUNT]; /* prepared on first use */
	const char *sql[ST_COUNT];    /* the text each slot holds */
	struct db_conn *prev, *next;  /* store->conns; store->lock */
};

struct db_store {
	char *dir;	   /* absolute */
	char *db_path;	   /* dir/index.db */
	pthread_key_t key; /* this thread's struct db_conn */
	pthread_mutex_t lock;
	struct db_conn *conns; /* every thread's connection; lock */
	char repaired[5120];   /* what db_store_open repaired, or "" (an error
				  and a path) */
};

/*
 * A statement in use: the cached one, or a private copy when the cached
 * one is still stepping further up the stack (a callback's query).
 */
struct db_query {
	sqlite3_stmt *st;
	bool owned; /* finalize, not reset, when done */
};

/*
 * store.c.  Binding an integer or a SQLITE_STATIC text fails only for a
 * parameter index that does not exist, a bug the tests catch; those calls
 * are not checked.
 */
int db_conn_get(struct db_store *s, struct db_conn **out);
int db_conn_open(struct db_store *s, struct db_conn **out);
void db_conn_close(struct db_conn *c);
int db_query(struct db_conn *c, enum db_stmt slot, const char *sql,
	     struct db_query *q);
void db_query_end(struct db_query *q);
int db_thread_query(struct db_store *s, enum db_stmt slot, const char *sql,
		    struct db_conn **c, struct db_query *q);
int db_step(struct db_conn *c, struct db_query *q);
int db_finish(struct db_conn *c, struct db_query *q);
int db_run(struct db_conn *c, enum db_stmt slot, const char *sql);
int db_exec(struct db_conn *c, const char *sql);
int db_write_row(struct db_store *s, enum db_stmt slot, const char *sql,
		 const char *key, const int64_t *ints, int n);
int db_tx_begin(struct db_conn *c);
int db_tx_end(struct db_conn *c, int rc);
int db_fail(struct db_conn *c, int sqlite_rc);
int db_sys_fail(const char *what, const char *path);
void db_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int db_text(sqlite3_stmt *st, int col, char *buf, size_t size);

/* blobs.c; db_blob_recorded: the row alone, the file unchecked */
int db_blob_recorded(struct db_store *s, const char *etag, uint64_t *size);
int db_blob_file(struct db_store *s, const char *folder, const char *etag,
		 char *buf, size_t size);
int db_sync_dir(const char *dir);

/* verify.c: hash size bytes of fd in etag's scheme, hex into hex (129). */
int db_hash_fd(int fd, const char *etag, uint64_t size, char *hex);

/* chunks.c: delete etag's row (sql, etag as parameter 1) and its chunk
   runs in one transaction */
int db_drop_rows(struct db_store *s, enum db_stmt slot, const char *sql,
		 const char *etag);

/* schema.c */
int db_migrate(struct db_conn *c);

#endif /* HUBFS_DB_INT_H */

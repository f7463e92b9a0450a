/*
 * engine.c - the read engine (engine.h): blocks of a blob fetched on
 * demand, waits answered as their bytes arrive, the whole checked once it
 * is complete.
 *
 * One struct blob per etag in use, shared by every open of it.  A blob is
 * either complete (blobs/<etag>, verified: waits are answered at once) or
 * partial (partial/<etag>, sparse, 1 MiB blocks).  For a partial blob:
 *
 *   - A wait whose blocks are present is answered at once.  Otherwise it
 *     joins the blob's waiter list; missing blocks not already on their
 *     way are requested from the transfer engine in runs of up to
 *     XFER_MAX bytes, so two waits on one block share one transfer.
 *   - The transfer engine's thread gathers a run's bytes a block at a
 *     time and writes each whole block into the file, then hands it to the
 *     block thread, which marks it present and answers the waits it
 *     satisfies.  Present blocks are hashed in file order as they become
 *     available (sha256 for LFS files, the git blob sha1 otherwise), read
 *     back from the page cache on the block thread: hashing runs beside
 *     receiving and writing, which take about as long.
 *   - A wait that touches the end of the file also waits for that check.
 *     A failed check drops the blob (file, bitmap) and tells the dropped
 *     hook, so that a front can drop the pages it cached; the next open
 *     fetches it again.
 *   - Durability runs on a thread of its own: a finished transfer's blocks
 *     are fdatasync'ed, then marked in the index; a verified blob is moved
 *     to blobs/ and recorded.  Nothing unverified is ever recorded as
 *     verified, and a crash costs at most blocks fetched again.
 *
 * Sequential readers (ENGINE_READAHEAD) keep a readahead window ahead of
 * them, fetched as parallel runs into the file (plan_readahead says how
 * large and why); random readers fetch only the blocks they touch.
 *
 * Locking: eng->blobs_lock protects the table of blobs, each blob's refs
 * and the handle list; b->lock protects the rest of a blob's mutable
 * state.  No lock is held across a done() call, a submission to the
 * transfer engine or a disk sync; hash_advance reads the file with no
 * lock held.
 */
#include "engine.h"
#include "fs.h"
#include "queue.h"
#include "xetlocal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define XFER_MAX      (16ULL << 20)  /* bytes in one transfer at most */
#define RA_FLOOR      (8ULL << 20)   /* window a stream may have early */
#define RESOLVE_RUN   (16ULL << 20)  /* readahead run where each is a resolve */
#define RESOLVE_RUNS  8		     /* such runs in a window, at most */
#define XET_RUN	      (16ULL << 20)  /* readahead run through the CAS */
#define XET_WINDOW    (64ULL << 20)  /* window floor through the CAS */
#define RA_SHARE      8		     /* window <= 1/RA_SHARE of what was read */
#define RA_LONG	      (128ULL << 20) /* read by a stream that is clearly long */
#define RA_LONG_SHARE 4 /* its window <= 1/RA_LONG_SHARE of the read */
#define READAHEAD_MAX (128ULL << 20) /* largest readahead window */
#define SEQ_SLACK     (4ULL << 20)   /* reordering a stream tolerates */
#define MAX_TAGS      8		     /* open tags remembered per blob */
#define LOCK_POLL_MS  20	     /* another process's range lock, polled */
#define DROPPED_KEPT  16	     /* etags dropped lately, remembered */
#define REFETCH_KEPT  16 /* etags to fetch past caches, remembered */
#define POOL_KEPT     16 /* block buffers kept for reuse */
#define BUF_SIZE      (1ULL << DB_BLOCK_SHIFT) /* a pooled buffer's size */

struct engine {
	struct engine_config cfg;
	struct hub_xfer *xfer; /* the transfer engine */
	struct hub_xet *xet;   /* the Xet reader, or NULL (--no-xet) */

	pthread_mutex_t blobs_lock;
	struct blob *blobs;		/* blobs in use; blobs_lock */
	struct engine_handle *handles;	/* open; blobs_lock */
	char dropped[DROPPED_KEPT][65]; /* blobs_lock */
	unsigned n_dropped;		/* blobs_lock */
	/*
	 * Etags whose last copy failed its check, until one verifies: their
	 * transfers ask caches for fresh bytes (hub_file_ref.refetch), so a
	 * bad copy in a mirror's cache fails one read, not every machine's.
	 */
	char refetch[REFETCH_KEPT][65]; /* blobs_lock */
	unsigned n_refetch;		/* blobs_lock */
	/*
	 * Threads waiting for another process's range lock (wait_for_other),
	 * and the block thread while it sends a run on another way
	 * (reroute): engine_stop raises stopping and waits for them to end
	 * before it stops the Xet reader, the transfer engine and the queues
	 * they submit to.  blobs_lock.
	 */
	unsigned lock_waits;
	bool stopping;
	pthread_cond_t lock_waits_done; /* lock_waits fell to 0 */
	struct queue blocks; /* written blocks to mark, hash, answer */
	struct queue syncs;  /* durability: fdatasync, marks, records */
	/*
	 * Block buffers (BUF_SIZE) kept for the next blocks: a fresh one
	 * costs a megabyte of page faults and zeroing per block.  pool_lock.
	 */
	pthread_mutex_t pool_lock;
	unsigned char *pool[POOL_KEPT];
	unsigned n_pool;

	/* engine_get_stats: relaxed atomic adds */
	uint64_t waits, waits_local, bytes_answered, xet_fallbacks;
	int64_t hold_logged; /* the Hub's last pause logged (atomic) */
};

struct waiter {
	struct waiter *next;
	const struct engine_handle *h; /* with arg, engine_cancel's key */
	engine_done_fn done;
	void *arg;
	uint64_t off;
	size_t size;	    /* clipped to the file */
	bool need_verified; /* touches the end: wait for the check */
};

struct blob {
	struct blob *next; /* eng->blobs; blobs_lock */
	unsigned refs;	   /* handles and transfers; blobs_lock */
	bool listed;	   /* in eng->blobs; blobs_lock */

	/* Set at creation, then read-only. */
	struct engine *eng;
	char etag[65];
	uint64_t size;
	bool lfs;
	enum hub_repo_type type;
	char *repo_id, *path;
	char commit[41];
	char xet_hash[65];  /* the tree's xetHash, "" when none */
	struct xetlocal xl; /* the Xet reader's hooks' argument */
	unsigned shift;
	uint64_t blocks;
	int fd; /* the blob's file: partial/<etag>, later blobs/<etag> */
	/*
	 * hub_xfer_resolve_unit() as of the last transfer that ended well: 0
	 * (a CDN), or a mirror's slice.  Relaxed atomic.
	 */
	uint64_t unit;
	/* A run went to the CAS (readahead plans for it); a run of it fell
	   back to the bridge (logged).  Relaxed atomics. */
	bool via_xet, xet_fell_back;
	/*
	 * Items queued for the sync thread (atomic, release), and how many of
	 * them the last fdatasync covered (the sync thread's alone): an item
	 * whose blocks were written before an fdatasync began needs no other.
	 */
	uint64_t sync_queued;
	uint64_t sync_durable;

	pthread_mutex_t lock;
#ifndef NDEBUG
	pthread_t holder; /* who holds lock, when held: lock */
	bool held;
#endif
	bool complete;		/* recorded in blobs/: nothing left to do */
	bool external;		/* complete, but the user's file (external.c):
				   not the store's to touch */
	bool verified;		/* every block present and the hash checked */
	bool dropped;		/* failed its check: only waits to be freed */
	bool unmarked;		/* a mark or the final record failed: the
				   index lacks blocks the file has */
	uint8_t *present;	/* bytes are in the file (durable or not) */
	uint8_t *inflight;	/* a transfer will deliver them */
	uint64_t hashed;	/* blocks fed to hash, in order */
	bool hashing;		/* a thread feeds hash from the file, unlocked:
				   hash and hashbuf are its alone meanwhile */
	struct db_hash *hash;	/* in the etag's scheme; NULL once finished */
	unsigned char *hashbuf; /* one block, while hashing */
	struct waiter *waiters;
	uint64_t tags[MAX_TAGS]; /* engine_open's tags, for the hook; lock */
};

/*
 * A sequential stream of reads in an open file: threads reading different
 * parts of one descriptor each get their own.
 */
#define STREAMS 8
struct stream {
	uint64_t used;	 /* last use, 0: free */
	bool sequential; /* reads continue each other: read ahead */
	uint64_t start;	 /* where the stream started */
	uint64_t next;	 /* where it would continue */
	uint64_t ra_end; /* requested ahead up to here */
};

/* An open file of a blob. */
struct engine_handle {
	struct engine_handle *lprev, *lnext; /* eng->handles; blobs_lock */
	struct blob *b;
	pthread_mutex_t lock;
	struct stream streams[STREAMS]; /* readahead state; lock */
	uint64_t clock;			/* stamps stream use; lock */
};

/*
 * Work for the block thread, in arrival order: a block written whole into
 * the file, to mark, hash and answer readers with, or the end of a run
 * (the job's own `end` item).  Keeping this off the engine's thread lets
 * it go on receiving meanwhile.
 */
struct block_item {
	struct qitem q; /* first */
	struct job *j;
	uint64_t i; /* the block, unless this is j->end */
	int rc;	    /* j->end: done()'s arguments */
	struct hub_error err;
};

#define MAX_QUEUED_BLOCKS 32 /* beyond, the delivering thread does it */
#define ROOM_ON_ENOSPC	  (256ULL << 20) /* evicted when the disk is full */

/*
 * Which way a run goes.  A file the tree marks as Xet is read through the
 * CAS only once its resolve said so (the Xet markers: a mirror in front
 * of the Hub drops them and serves the file from its cache, and then so
 * must we): its first run is a probe, a bridge transfer that ends at a
 * resolve with the markers (-EXDEV) and is then sent to the CAS.
 */
enum job_route {
	ROUTE_BRIDGE, /* hub_xfer_submit */
	ROUTE_PROBE,  /* hub_xfer_submit with xet_probe */
	ROUTE_XET,    /* hub_xet_submit */
};

struct job {
	struct blob *b;
	uint64_t first, count; /* blocks */
	enum hub_xfer_priority prio;
	enum job_route route;
	/*
	 * Data and done come from the transfer engine's thread (bridge), or
	 * for a Xet read from that thread and the Xet reader's one it runs
	 * on, one at a time, each handing over to the next under a lock:
	 * buf belongs to the one calling until done.
	 */
	unsigned char *buf;    /* the block being gathered (buf_get), kept
				  for the run's next block */
	int failed;	       /* a queued block failed (atomic: set by the
				  block thread, read by the engine's) */
	bool locked;	       /* holds the OFD lock on its byte range */
	struct block_item end; /* queued when the run ends */
};

static int queue_block(struct job *j, uint64_t i);
static void range_unlock(const struct blob *b, struct job *j);

static int job_failed(struct job *j)
{
	return __atomic_load_n(&j->failed, __ATOMIC_RELAXED);
}

/* Work for the sync thread. */
enum sync_kind {
	SYNC_MARK,	  /* make blocks durable and mark them */
	SYNC_MARK_UNLOCK, /* the same, then release their range lock */
	SYNC_FINISH,	  /* move a verified blob into blobs/ and record it */
	SYNC_TOUCH,	  /* record that a complete blob was used */
};

struct sync_item {
	struct qitem q; /* first */
	struct blob *b;
	enum sync_kind kind;
	uint64_t first, count; /* SYNC_MARK: the blocks */
	uint64_t seq;	       /* b->sync_queued once it was queued */
};

/*
 * b->lock, its holder kept (in builds with assertions) so that a function
 * whose contract is "lock held" asserts it.
 */
static void blob_lock(struct blob *b)
{
	pthread_mutex_lock(&b->lock);
#ifndef NDEBUG
	b->holder = pthread_self();
	b->held = true;
#endif
}

static void blob_unlock(struct blob *b)
{
#ifndef NDEBUG
	b->held = false;
#endif
	pthread_mutex_unlock(&b->lock);
}

#define assert_held(b)                                                         \
	assert((b)->held &&pthread_equal((b)->holder, pthread_self()))

static uint64_t block_end(const struct blob *b, uint64_t i)
{
	uint64_t end = (i + 1) << b->shift;

	return end < b->size ? end : b->size;
}

static void set_bit(uint8_t *map, uint64_t i)
{
	map[i / 8] |= (uint8_t)(1u << (i % 8));
}

static void clear_bit(uint8_t *map, uint64_t i)
{
	map[i / 8] &= (uint8_t) ~(1u << (i % 8));
}

/* ---- The table of blobs in use ------------------------------------------ */

static void blob_free(struct blob *b)
{
	if (!b)
		return;
	if (b->fd >= 0)
		close(b->fd);
	db_hash_free(b->hash);
	free(b->hashbuf);
	free(b->present);
	free(b->inflight);
	free(b->repo_id);
	free(b->path);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

static void blob_ref(struct blob *b)
{
	pthread_mutex_lock(&b->eng->blobs_lock);
	b->refs++;
	pthread_mutex_unlock(&b->eng->blobs_lock);
}

static void unlist(struct engine *eng, struct blob *b)
{
	struct blob **pp;

	if (!b->listed)
		return;
	for (pp = &eng->blobs; *pp != b; pp = &(*pp)->next)
		;
	*pp = b->next;
	b->listed = false;
}

static void note_dropped(struct engine *eng, const char *etag);
static bool refetching(struct engine *eng, const char *etag, bool forget);

/*
 * The last reference is gone.  If the index could not record some of the
 * blocks this blob had (a full disk), the kernel may still cache their
 * pages while the next struct blob, loaded from the index, thinks them
 * missing: a reader served from that cache would never make the blob
 * whole.  The next open drops the cache, as after a failed check, and the
 * blocks are fetched again.
 */
static void blob_unref(struct blob *b)
{
	struct engine *eng = b->eng;
	bool last;

	pthread_mutex_lock(&eng->blobs_lock);
	assert(b->refs > 0);
	last = --b->refs == 0;
	if (last)
		unlist(eng, b);
	pthread_mutex_unlock(&eng->blobs_lock);
	if (last) {
		assert(!b->waiters);
		if (b->unmarked && !b->complete)
			note_dropped(eng, b->etag);
		blob_free(b);
	}
}

/*
 * The user's own copy of the blob, when there is one that checks out: it
 * is served in place, like a complete blob of the store, but never held,
 * touched or recorded (the store does not own it).
 */
static int use_external(struct blob *b)
{
	const struct engine_config *cfg = &b->eng->cfg;
	struct engine_file f = {
		.type = b->type,
		.repo_id = b->repo_id,
		.commit = b->commit,
		.path = b->path,
		.etag = b->etag,
		.size = b->size,
		.lfs = b->lfs,
		.xet_hash = b->xet_hash,
	};
	int rc;

	if (!cfg->external)
		return -ENOENT;
	rc = cfg->external(cfg->external_arg, &f, &b->fd);
	if (rc == 0)
		b->complete = b->verified = b->external = true;
	return rc;
}

/*
 * Open the blob's file: complete if the store has it, else the user's copy
 * if there is one, else partial.
 */
static int blob_load(struct blob *b)
{
	struct db_store *s = b->eng->cfg.store;
	struct db_partial p;
	char path[4096];
	uint64_t size;
	size_t n;
	int rc;

	if (db_blob_get(s, b->etag, &size) == 0 && size == b->size) {
		db_blob_path(s, b->etag, path, sizeof(path));
		b->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (b->fd >= 0) {
			b->complete = b->verified = true;
			/* In use: no gc, here or elsewhere, removes it. */
			return db_blob_hold(b->fd);
		}
	}
	if (use_external(b) == 0)
		return 0;
	rc = db_partial_open(s, b->etag, b->size, &p);
	if (rc < 0)
		return rc;
	b->fd = p.fd;
	rc = db_blob_hold(b->fd);
	if (rc < 0) {
		db_partial_free(&p);
		return rc;
	}
	b->shift = p.shift;
	b->blocks = p.blocks;
	b->present = p.bitmap;
	n = db_bitmap_bytes(b->size, b->shift);
	b->inflight = calloc(1, n ? n : 1);
	if (!b->inflight)
		return -ENOMEM;
	return db_hash_start(&b->hash, b->etag, b->size);
}

static struct blob *blob_new(struct engine *eng, const struct engine_file *f)
{
	struct blob *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->eng = eng;
	b->fd = -1;
	b->refs = 1;
	pthread_mutex_init(&b->lock, NULL);
	snprintf(b->etag, sizeof(b->etag), "%s", f->etag);
	snprintf(b->commit, sizeof(b->commit), "%s", f->commit);
	b->size = f->size;
	b->lfs = f->lfs;
	b->type = f->type;
	if (f->xet_hash && hub_is_sha256(f->xet_hash))
		memcpy(b->xet_hash, f->xet_hash, sizeof(b->xet_hash));
	b->xl.store = eng->cfg.store;
	memcpy(b->xl.etag, b->etag, sizeof(b->xl.etag));
	b->repo_id = strdup(f->repo_id);
	b->path = strdup(f->path);
	if (!b->repo_id || !b->path) {
		blob_free(b);
		return NULL;
	}
	return b;
}

/*
 * The blob of a file, shared with every other open of the same etag
 * (a dropped blob is no longer shared: the next open starts afresh).
 */
static int blob_get(struct engine *eng, const struct engine_file *f,
		    struct blob **out)
{
	struct blob *b, *fresh;
	int rc;

	pthread_mutex_lock(&eng->blobs_lock);
	for (b = eng->blobs; b; b = b->next)
		if (strcmp(b->etag, f->etag) == 0)
			break;
	if (b)
		b->refs++;
	pthread_mutex_unlock(&eng->blobs_lock);
	if (b) {
		*out = b;
		return 0;
	}

	fresh = blob_new(eng, f);
	if (!fresh)
		return -ENOMEM;
	rc = blob_load(fresh);
	if (rc < 0) {
		blob_free(fresh);
		return rc;
	}
	pthread_mutex_lock(&eng->blobs_lock);
	for (b = eng->blobs; b; b = b->next) /* another open won the race */
		if (strcmp(b->etag, f->etag) == 0)
			break;
	if (b) {
		b->refs++;
	} else {
		b = fresh;
		b->next = eng->blobs;
		eng->blobs = b;
		b->listed = true;
		fresh = NULL;
	}
	pthread_mutex_unlock(&eng->blobs_lock);
	blob_free(fresh);
	*out = b;
	return 0;
}

/* Keep tag for the dropped hook: the most recent MAX_TAGS distinct ones. */
static void remember_tag(struct blob *b, uint64_t tag)
{
	int i;

	blob_lock(b);
	for (i = 0; i < MAX_TAGS - 1 && b->tags[i] != tag; i++)
		;
	memmove(&b->tags[1], &b->tags[0], (size_t)i * sizeof(b->tags[0]));
	b->tags[0] = tag;
	blob_unlock(b);
}

/* ---- Answering readers ------------------------------------------------- */

/*
 * Whether w can be answered (lock held): its bytes are there and, for a
 * read that touches the end, the check is done.  The check can come only
 * once every block is here, so such a read waits for it only while every
 * missing block is on its way: a reader that jumps to the end of a file
 * it never read does not wait for the whole of it.
 */
static bool satisfied(const struct blob *b, const struct waiter *w)
{
	uint64_t first = w->off >> b->shift;
	uint64_t last = (w->off + w->size - 1) >> b->shift;

	assert_held(b);
	for (uint64_t i = first; i <= last; i++)
		if (!db_bit(b->present, i))
			return false;
	if (!w->need_verified || b->verified)
		return true;
	for (uint64_t i = 0; i < b->blocks; i++)
		if (!db_bit(b->present, i) && !db_bit(b->inflight, i))
			return true;
	return false;
}

/* Move the waiters whose bytes are there to *ready (lock held). */
static void take_ready(struct blob *b, struct waiter **ready)
{
	struct waiter **pp = &b->waiters;

	assert_held(b);
	while (*pp) {
		struct waiter *w = *pp;

		if (satisfied(b, w)) {
			*pp = w->next;
			w->next = *ready;
			*ready = w;
		} else {
			pp = &w->next;
		}
	}
}

/* Call the waiters' done with rc (0 or a negative errno), no lock held. */
static void answer(struct blob *b, struct waiter *ready, int rc)
{
	while (ready) {
		struct waiter *w = ready;

		ready = w->next;
		if (rc == 0)
			__atomic_fetch_add(&b->eng->bytes_answered, w->size,
					   __ATOMIC_RELAXED);
		w->done(w->arg, rc, rc ? -1 : b->fd, w->off, w->size);
		free(w);
	}
}

/* ---- Hashing and the final check -------------------------------------- */

static void queue_sync(struct blob *b, enum sync_kind kind, uint64_t first,
		       uint64_t count);
static void drop_blob(struct blob *b, struct waiter **failed);

/* Feed blocks [first, last) from the file to the digest (no lock held). */
static int hash_from_file(struct blob *b, uint64_t first, uint64_t last)
{
	if (!b->hashbuf && !(b->hashbuf = malloc(1ULL << b->shift)))
		return -ENOMEM;
	for (uint64_t i = first; i < last; i++) {
		uint64_t off = i << b->shift;
		size_t n = (size_t)(block_end(b, i) - off);

		if (pread(b->fd, b->hashbuf, n, (off_t)off) != (ssize_t)n)
			return -EIO; /* unreadable counts as corrupt */
		db_hash_update(b->hash, b->hashbuf, n);
	}
	return 0;
}

/*
 * Feed the present blocks that follow the hashed ones to the digest; when
 * the last is fed, check the result.  Called and returns with b->lock
 * held, but reads the file with it released: one thread at a time hashes
 * (b->hashing), and the others go on meanwhile.  Returns false when the
 * content failed its check.
 */
static bool hash_advance(struct blob *b)
{
	char hex[65];
	int rc = 0;

	assert_held(b);
	if (b->verified || b->hashing)
		return true; /* done, or the hashing thread goes on */
	b->hashing = true;
	while (rc == 0 && b->hashed < b->blocks &&
	       db_bit(b->present, b->hashed)) {
		uint64_t first = b->hashed, last = first;

		while (last < b->blocks && db_bit(b->present, last))
			last++;
		blob_unlock(b);
		rc = hash_from_file(b, first, last);
		blob_lock(b);
		if (rc == 0)
			b->hashed = last;
	}
	b->hashing = false;
	if (rc == -ENOMEM)
		return true; /* tried again when the next block arrives */
	if (rc < 0)
		return false;
	if (b->hashed < b->blocks)
		return true;
	free(b->hashbuf);
	b->hashbuf = NULL;
	db_hash_finish(b->hash, hex);
	b->hash = NULL;
	if (strcmp(hex, b->etag) != 0) {
		fs_log(LOG_ERR,
		       "%s/%s: content does not match its hash (got %s, "
		       "expected %s): dropped, fetched again on the next read",
		       b->repo_id, b->path, hex, b->etag);
		return false;
	}
	b->verified = true;
	refetching(b->eng, b->etag, true);
	queue_sync(b, SYNC_FINISH, 0, 0);
	return true;
}

/* ---- Transfers -------------------------------------------------------- */

/* A buffer for one block of b: from the pool, else new.  NULL: no memory. */
static unsigned char *buf_get(struct blob *b)
{
	struct engine *eng = b->eng;
	unsigned char *p = NULL;

	if ((1ULL << b->shift) > BUF_SIZE)
		return malloc(1ULL << b->shift);
	pthread_mutex_lock(&eng->pool_lock);
	if (eng->n_pool)
		p = eng->pool[--eng->n_pool];
	pthread_mutex_unlock(&eng->pool_lock);
	return p ? p : malloc(BUF_SIZE);
}

/* Give back a buffer of buf_get(b) (NULL: nothing), kept if there is room. */
static void buf_put(struct blob *b, unsigned char *p)
{
	struct engine *eng = b->eng;

	if (p && (1ULL << b->shift) <= BUF_SIZE) {
		pthread_mutex_lock(&eng->pool_lock);
		if (eng->n_pool < POOL_KEPT) {
			eng->pool[eng->n_pool++] = p;
			p = NULL;
		}
		pthread_mutex_unlock(&eng->pool_lock);
	}
	free(p);
}

static int write_all(int fd, const unsigned char *p, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/*
 * Write a whole block where it belongs in the blob's file.  When the disk
 * is full, make room from blobs nobody uses and try once more.
 */
static int store_block(struct blob *b, uint64_t i, const unsigned char *buf)
{
	uint64_t off = i << b->shift;
	size_t len = (size_t)(block_end(b, i) - off);
	int rc = write_all(b->fd, buf, len, off);

	if (rc == -ENOSPC || rc == -EDQUOT) {
		struct db_store *s = b->eng->cfg.store;
		uint64_t used, freed = 0;
		int erc = db_store_usage(s, &used);

		if (erc == 0)
			erc = db_evict(s,
				       used > ROOM_ON_ENOSPC
					       ? used - ROOM_ON_ENOSPC
					       : 0,
				       false, NULL, NULL, &freed);
		if (erc < 0)
			fs_log(LOG_WARNING, "store: disk full; evicting: %s",
			       db_last_error());
		if (freed > 0)
			fs_log(LOG_WARNING,
			       "store: disk full, evicted %llu bytes",
			       (unsigned long long)freed);
		/* Files may be gone even when their rows could not go. */
		rc = write_all(b->fd, buf, len, off);
	}
	return rc;
}

/*
 * Block i of a run is in the file, whole: mark it present, hash what
 * follows the hashed blocks and answer the readers it satisfies.
 */
static int block_arrived(struct job *j, uint64_t i)
{
	struct blob *b = j->b;
	struct waiter *ready = NULL, *failed = NULL;
	bool ok = true;

	blob_lock(b);
	set_bit(b->present, i);
	if (!b->dropped) {
		ok = hash_advance(b);
		if (!ok)
			drop_blob(b, &failed);
		else
			take_ready(b, &ready);
	}
	blob_unlock(b);
	answer(b, ready, 0);
	answer(b, failed, -EIO);
	return ok ? 0 : -ECANCELED; /* logged already: stop quietly */
}

/*
 * Bytes of a run, in order: gathered a block at a time, so that the file
 * gets whole, aligned blocks (large page-cache folios: writing libcurl's
 * pieces as they come cost more than this copy), each written here and
 * then handed to the block thread (or handled here when it lags far
 * behind).
 */
static int job_data(void *arg, uint64_t offset, const void *buf, size_t n)
{
	struct job *j = arg;
	struct blob *b = j->b;
	const unsigned char *p = buf;

	while (n > 0) {
		uint64_t i = offset >> b->shift;
		uint64_t start = i << b->shift, end = block_end(b, i);
		size_t take =
			(size_t)(end - offset) < n ? (size_t)(end - offset) : n;
		int rc;

		if (!j->buf && !(j->buf = buf_get(b)))
			return -ENOMEM;
		memcpy(j->buf + (offset - start), p, take);
		offset += take;
		p += take;
		n -= take;
		if (offset != end)
			continue;
		if (job_failed(j))
			return job_failed(j);
		rc = store_block(b, i, j->buf);
		if (rc == 0 && queue_block(j, i) != 0)
			rc = block_arrived(j, i);
		if (rc) {
			/* Ours, not the network's: no other way will help. */
			__atomic_store_n(&j->failed, rc, __ATOMIC_RELAXED);
			return rc;
		}
		if (i + 1 == j->first + j->count) { /* the run's last block */
			buf_put(b, j->buf);
			j->buf = NULL;
		}
	}
	return 0;
}

/* The -errno a reader sees for a failed transfer, logged once here. */
static int transfer_errno(struct blob *b, int rc, const struct hub_error *err)
{
	char why[400];

	if (rc == -ENOSPC || rc == -EDQUOT) {
		fs_log(LOG_ERR, "%s/%s: the store is full", b->repo_id,
		       b->path);
		return -ENOSPC;
	}
	if (rc == -ECANCELED)
		return -EIO;
	if (rc == -ENETDOWN)
		fs_log(LOG_WARNING, "%s/%s: offline and not in the store",
		       b->repo_id, b->path);
	else if (rc == -ETIMEDOUT)
		fs_log(LOG_ERR, "%s/%s: no progress for %ld s: giving up",
		       b->repo_id, b->path, b->eng->cfg.read_timeout);
	else
		fs_log(LOG_ERR, "%s/%s: %s", b->repo_id, b->path,
		       err && (err->status || err->transport || err->message[0])
			       ? hub_error_describe(err, why, sizeof(why))
			       : strerror(-rc));
	if (err && hub_error_errno(err) == EACCES)
		return -EACCES;
	return -EIO;
}

/*
 * Fail the waiters that need a block that is neither present nor on its
 * way (lock held).
 */
static void take_stranded(struct blob *b, struct waiter **failed)
{
	struct waiter **pp = &b->waiters;

	assert_held(b);
	while (*pp) {
		struct waiter *w = *pp;
		uint64_t first = w->off >> b->shift;
		uint64_t last = (w->off + w->size - 1) >> b->shift;
		bool stranded = false;

		for (uint64_t i = first; i <= last && !stranded; i++)
			stranded = !db_bit(b->present, i) &&
				   !db_bit(b->inflight, i);
		if (stranded) {
			*pp = w->next;
			w->next = *failed;
			*failed = w;
		} else {
			pp = &w->next;
		}
	}
}

/*
 * A run that failed part way still delivered some blocks: readers may have
 * been served them, and the kernel may cache them.  Mark them too, or the
 * index would lack blocks that a reader served from the kernel's cache
 * never asks for again.
 */
static void mark_arrived(struct blob *b, const struct job *j,
			 const uint8_t *arrived)
{
	for (uint64_t k = 0; k < j->count;) {
		uint64_t start = k;

		if (!db_bit(arrived, k)) {
			k++;
			continue;
		}
		while (k < j->count && db_bit(arrived, k))
			k++;
		queue_sync(b, SYNC_MARK, j->first + start, k - start);
	}
}

static void file_ref(const struct blob *b, struct hub_file_ref *ref)
{
	*ref = (struct hub_file_ref){
		.type = b->type,
		.repo_id = b->repo_id,
		.commit = b->commit,
		.path = b->path,
		.size = b->size,
		.etag = b->etag,
	};
}

/*
 * Whether the file's resolve answers bytes itself: see plan_readahead.  On
 * the transfer engine's thread (job_done), never after engine_stop has
 * stopped it.
 */
static void note_unit(struct blob *b)
{
	struct hub_file_ref ref;

	file_ref(b, &ref);
	__atomic_store_n(&b->unit, hub_xfer_resolve_unit(b->eng->xfer, &ref),
			 __ATOMIC_RELAXED);
}

static bool reroute(struct job *j, int rc, const struct hub_error *err);

/* The end of a run, after every block of it was handled. */
static void job_finish(struct job *j, int rc, const struct hub_error *err)
{
	struct blob *b = j->b;
	struct waiter *failed = NULL, *ready = NULL;
	uint8_t *arrived = NULL;
	int e;

	if (rc == 0 && job_failed(j))
		rc = job_failed(j);
	if (rc && reroute(j, rc, err))
		return;
	if (rc == -EXDEV) /* a probe for the CAS while stopping */
		rc = -ECANCELED;
	e = rc ? transfer_errno(b, rc, err) : 0;
	if (rc)
		arrived = calloc(1, (j->count + 7) / 8);
	blob_lock(b);
	for (uint64_t i = j->first; i < j->first + j->count; i++) {
		clear_bit(b->inflight, i);
		if (arrived && db_bit(b->present, i))
			set_bit(arrived, i - j->first);
	}
	if (rc)
		take_stranded(b, &failed);
	take_ready(b, &ready); /* reads at the end that no longer wait */
	if (rc && !arrived)
		b->unmarked = true; /* cannot say which: see blob_unref() */
	blob_unlock(b);
	answer(b, failed, e);
	answer(b, ready, 0);
	if (rc == 0 && j->locked)
		queue_sync(b, SYNC_MARK_UNLOCK, j->first, j->count);
	else if (rc == 0)
		queue_sync(b, SYNC_MARK, j->first, j->count);
	else
		range_unlock(b, j);
	if (arrived)
		mark_arrived(b, j, arrived);
	free(arrived);
	buf_put(b, j->buf);
	blob_unref(b);
	free(j);
}

/* Hand a block to the block thread; -EBUSY when too many wait already. */
static int queue_block(struct job *j, uint64_t i)
{
	struct engine *eng = j->b->eng;
	struct block_item *it;
	bool full;

	full = queue_counted(&eng->blocks) >= MAX_QUEUED_BLOCKS;
	if (full || !(it = calloc(1, sizeof(*it))))
		return -EBUSY;
	it->j = j;
	it->i = i;
	queue_push(&eng->blocks, &it->q, true);
	return 0;
}

/* The run ended: finished in order after its queued blocks. */
static void job_done(void *arg, int rc, const struct hub_error *err)
{
	struct job *j = arg;
	struct block_item *it = &j->end;

	/* On the transfer engine's thread, while it is there to ask. */
	if (rc == 0 && j->route != ROUTE_XET)
		note_unit(j->b);
	it->j = j;
	it->rc = rc;
	if (err)
		it->err = *err;
	queue_push(&j->b->eng->blocks, &it->q, false);
}

static void handle_block(struct qitem *q, void *arg)
{
	struct block_item *it = (struct block_item *)q;

	(void)arg;
	if (it != &it->j->end) {
		int rc = job_failed(it->j) ? 0 : block_arrived(it->j, it->i);

		if (rc)
			__atomic_store_n(&it->j->failed, rc, __ATOMIC_RELAXED);
		free(it);
	} else {
		job_finish(it->j, it->rc, &it->err); /* frees it */
	}
}

static const struct hub_xfer_ops job_ops = { job_data, job_done };

/* Runs of missing blocks in [first, last], marked in flight (lock held). */
struct runs {
	struct job *jobs[64];
	unsigned n;
	enum hub_xfer_priority prio[64];
};

/*
 * Runs of at most max_bytes (rounded up to a block), ending on multiples
 * of it, so that runs of a mirror's slice size stay on its slices.
 */
static void plan_runs(struct blob *b, uint64_t first, uint64_t last,
		      uint64_t max_bytes, enum hub_xfer_priority prio,
		      struct runs *r)
{
	uint64_t max = (max_bytes + (1ULL << b->shift) - 1) >> b->shift;

	assert_held(b);
	for (uint64_t i = first; i <= last && i < b->blocks && r->n < 64;) {
		uint64_t start = i;

		if (db_bit(b->present, i) || db_bit(b->inflight, i)) {
			i++;
			continue;
		}
		while (i <= last && i < b->blocks && (i == start || i % max) &&
		       !db_bit(b->present, i) && !db_bit(b->inflight, i))
			set_bit(b->inflight, i++);
		struct job *j = calloc(1, sizeof(*j));

		if (!j) {
			for (uint64_t k = start; k < i; k++)
				clear_bit(b->inflight, k);
			return;
		}
		j->b = b;
		j->first = start;
		j->count = i - start;
		r->prio[r->n] = prio;
		r->jobs[r->n++] = j;
	}
}

/*
 * Blocks being fetched are held by an OFD write lock on their byte range
 * of the blob's file, from the request until they are durable and marked
 * (or the fetch failed).  Another hubfs process that wants one of them
 * waits for the lock, then finds them marked instead of fetching them
 * again.
 */
static int range_lock(const struct blob *b, const struct job *j, short type)
{
	struct flock fl = {
		.l_type = type,
		.l_whence = SEEK_SET,
		.l_start = (off_t)(j->first << b->shift),
		.l_len = (off_t)(((j->first + j->count) << b->shift) -
				 (j->first << b->shift)),
	};
	int rc;

	do
		rc = fcntl(b->fd, F_OFD_SETLK, &fl);
	while (rc < 0 && errno == EINTR);
	return rc < 0 ? -errno : 0;
}

static void range_unlock(const struct blob *b, struct job *j)
{
	if (j->locked)
		range_lock(b, j, F_UNLCK);
	j->locked = false;
}

static void submit_one(struct blob *b, struct job *j,
		       enum hub_xfer_priority prio);

/*
 * Another process is fetching some of j's blocks: wait for it (on a thread
 * of our own, never a caller's), take what it marked, and fetch only if
 * something is still missing.
 */
struct lock_wait {
	struct job *j;
	enum hub_xfer_priority prio;
};

/*
 * What other processes made durable of b: their marks, or all of it when
 * one of them completed the blob in the very file we have open.
 */
static void others_marks(struct blob *b, uint8_t *map)
{
	struct db_store *s = b->eng->cfg.store;
	struct stat ours, done;
	char path[4096];
	uint64_t size;

	if (db_blob_get(s, b->etag, &size) == 0) {
		db_blob_path(s, b->etag, path, sizeof(path));
		if (fstat(b->fd, &ours) == 0 && stat(path, &done) == 0 &&
		    ours.st_dev == done.st_dev && ours.st_ino == done.st_ino) {
			memset(map, 0xff, db_bitmap_bytes(b->size, b->shift));
			return;
		}
	}
	db_partial_refresh(s, b->etag, b->fd, b->size, b->shift, map);
}

/* The runs of j's blocks still missing, each a new job (lock held). */
static void missing_runs(struct blob *b, const struct job *j,
			 enum hub_xfer_priority prio, struct runs *r)
{
	assert_held(b);
	for (uint64_t i = j->first; i < j->first + j->count;) {
		uint64_t start = i;
		struct job *sub;

		if (db_bit(b->present, i)) {
			clear_bit(b->inflight, i++);
			continue;
		}
		while (i < j->first + j->count && !db_bit(b->present, i))
			i++;
		sub = calloc(1, sizeof(*sub));
		if (!sub || r->n == sizeof(r->jobs) / sizeof(r->jobs[0])) {
			free(sub);
			for (uint64_t k = start; k < i; k++)
				clear_bit(b->inflight, k);
			continue;
		}
		sub->b = b;
		sub->first = start;
		sub->count = i - start; /* still marked in flight */
		r->prio[r->n] = prio;
		r->jobs[r->n++] = sub;
	}
}

/* Let go of the parts of j's locked range whose blocks are present. */
static void unlock_present(struct blob *b, const struct job *j)
{
	for (uint64_t i = j->first; i < j->first + j->count;) {
		struct job part = { .first = i, .locked = true };

		if (!db_bit(b->present, i)) {
			i++;
			continue;
		}
		while (i < j->first + j->count && db_bit(b->present, i))
			i++;
		part.count = i - part.first;
		range_unlock(b, &part);
	}
}

/*
 * j's range is ours (locked, or locks do not work here): take what other
 * processes already made durable in it, and fetch only the rest, as runs
 * that keep their part of the lock.  Frees j.
 */
static void settle(struct job *j, enum hub_xfer_priority prio)
{
	struct blob *b = j->b;
	struct waiter *ready = NULL, *failed = NULL;
	size_t n = db_bitmap_bytes(b->size, b->shift);
	uint8_t *theirs = calloc(1, n ? n : 1);
	struct runs runs = { .n = 0 };
	bool ok = true;

	if (theirs)
		others_marks(b, theirs);
	blob_lock(b);
	for (uint64_t i = j->first; i < j->first + j->count; i++)
		if (theirs && db_bit(theirs, i))
			set_bit(b->present, i);
	missing_runs(b, j, prio, &runs);
	if (!b->dropped) {
		ok = hash_advance(b);
		if (!ok)
			drop_blob(b, &failed);
		take_ready(b, &ready);
	}
	if (j->locked)
		unlock_present(b, j);
	blob_unlock(b);
	free(theirs);
	answer(b, ready, 0);
	answer(b, failed, -EIO);
	for (unsigned i = 0; i < runs.n; i++) {
		runs.jobs[i]->locked = j->locked;
		submit_one(b, runs.jobs[i], runs.prio[i]);
	}
	free(j);
}

static bool stopping(struct engine *eng)
{
	bool stop;

	pthread_mutex_lock(&eng->blobs_lock);
	stop = eng->stopping;
	pthread_mutex_unlock(&eng->blobs_lock);
	return stop;
}

/*
 * The lock is polled rather than waited for with F_OFD_SETLKW: nothing
 * could end that wait, and a thread still in it when blob_stop ran would
 * submit to the stopped engine and queues, and answer (with the blob's
 * waiters) a pull whose state is gone.  blob_stop waits for these threads
 * instead; once it has begun they stop waiting and fetch the rest
 * themselves (the engine, still running, cancels it).
 */
static void *wait_for_other(void *arg)
{
	struct lock_wait *lw = arg;
	struct blob *b = lw->j->b;
	struct engine *eng = b->eng;
	const struct timespec poll = { 0, LOCK_POLL_MS * 1000000L };
	int rc;

	while (((rc = range_lock(b, lw->j, F_WRLCK)) == -EAGAIN ||
		rc == -EACCES) &&
	       !stopping(eng))
		nanosleep(&poll, NULL);
	lw->j->locked = rc == 0;
	settle(lw->j, lw->prio);
	blob_unref(b); /* the reference the thread was started with */
	free(lw);
	pthread_mutex_lock(&eng->blobs_lock);
	if (--eng->lock_waits == 0)
		pthread_cond_broadcast(&eng->lock_waits_done);
	pthread_mutex_unlock(&eng->blobs_lock);
	return NULL;
}

/* Count a wait_for_other thread about to start; false once stopping. */
static bool lock_wait_begin(struct engine *eng)
{
	bool ok;

	pthread_mutex_lock(&eng->blobs_lock);
	ok = !eng->stopping;
	if (ok)
		eng->lock_waits++;
	pthread_mutex_unlock(&eng->blobs_lock);
	return ok;
}

static void lock_wait_abandon(struct engine *eng)
{
	pthread_mutex_lock(&eng->blobs_lock);
	if (--eng->lock_waits == 0)
		pthread_cond_broadcast(&eng->lock_waits_done);
	pthread_mutex_unlock(&eng->blobs_lock);
}

/*
 * The way for a new run of b: the bridge without the Xet reader, for a
 * file the tree does not mark as Xet and for an etag whose last copy
 * failed its check (fetched again past every cache); else the CAS once
 * the file's resolve named it, and a probe until then.
 */
static enum job_route choose_route(struct blob *b, bool refetch)
{
	struct hub_file_ref ref;

	if (!b->eng->xet || !b->xet_hash[0] || !hub_is_commit_id(b->commit) ||
	    refetch)
		return ROUTE_BRIDGE;
	if (__atomic_load_n(&b->via_xet, __ATOMIC_RELAXED))
		return ROUTE_XET;
	file_ref(b, &ref);
	return hub_xfer_resolve_xet(b->eng->xfer, &ref) ? ROUTE_XET
							: ROUTE_PROBE;
}

/*
 * The file as the Xet reader knows it (it copies the strings), with the
 * store's hooks (fs/xetlocal.c): where the chunks land is recorded, and
 * chunks that complete blobs hold are copied from them.  The run holds a
 * reference to b, so b->xl outlives the read.  A wrong copy fails the
 * blob's check, and its refetch goes by the bridge (choose_route).
 */
static void xet_file(struct blob *b, struct hub_xet_file *f)
{
	*f = (struct hub_xet_file){
		.type = b->type,
		.repo_id = b->repo_id,
		.commit = b->commit,
		.xet_hash = b->xet_hash,
		.size = b->size,
		.local = xetlocal_ops(true),
		.local_arg = &b->xl,
	};
}

/*
 * Send j on its way (j->route), with the reference to b that the run
 * holds until job_finish.  A refusal of the CAS sends it to the bridge; a
 * refusal of the bridge ends the run.
 */
static void submit_job(struct blob *b, struct job *j, bool refetch)
{
	struct hub_file_ref ref;
	struct hub_xet_file xf;
	uint64_t off = j->first << b->shift;
	uint64_t end = block_end(b, j->first + j->count - 1);
	int rc = -EINVAL;

	if (j->route == ROUTE_XET) {
		__atomic_store_n(&b->via_xet, true, __ATOMIC_RELAXED);
		xet_file(b, &xf);
		rc = hub_xet_submit(b->eng->xet, &xf, off, end - off, j->prio,
				    &job_ops, j);
		if (rc == 0)
			return;
		j->route = ROUTE_BRIDGE;
	}
	file_ref(b, &ref);
	ref.refetch = refetch;
	ref.xet_probe = j->route == ROUTE_PROBE;
	rc = hub_xfer_submit(b->eng->xfer, &ref, off, end - off, j->prio,
			     &job_ops, j);
	if (rc < 0) /* refused: done() was not called */
		job_done(j, rc, NULL);
}

static void submit_one(struct blob *b, struct job *j,
		       enum hub_xfer_priority prio)
{
	bool refetch = refetching(b->eng, b->etag, false);

	j->prio = prio;
	j->route = choose_route(b, refetch);
	blob_ref(b);
	submit_job(b, j, refetch);
}

/*
 * A run that the CAS did not deliver (job_finish, on the block thread,
 * every block it brought handled): the probe that found the Xet markers
 * goes to the CAS; a read through the CAS that failed (not cancelled, not
 * stopped by the engine itself) fetches the blocks it did not bring
 * through the bridge.  A malformed reconstruction or chunk is thus EIO
 * only when the bridge fails too.  False when j ends here with rc.
 */
static bool reroute(struct job *j, int rc, const struct hub_error *err)
{
	struct blob *b = j->b;
	struct engine *eng = b->eng;
	struct runs runs = { .n = 0 };
	struct waiter *failed = NULL;
	bool dropped;

	if (job_failed(j) || rc == -ECANCELED ||
	    !(j->route == ROUTE_PROBE ? rc == -EXDEV : j->route == ROUTE_XET))
		return false;
	blob_lock(b);
	dropped = b->dropped;
	blob_unlock(b);
	if (dropped || !lock_wait_begin(eng)) /* stopping: submit nothing */
		return false;
	if (j->route == ROUTE_PROBE) { /* nothing came: all of it again */
		buf_put(b, j->buf);
		j->buf = NULL;
		memset(&j->end.err, 0, sizeof(j->end.err));
		j->route = ROUTE_XET;
		submit_job(b, j, false);
		lock_wait_abandon(eng);
		return true;
	}
	__atomic_fetch_add(&eng->xet_fallbacks, 1, __ATOMIC_RELAXED);
	if (!__atomic_exchange_n(&b->xet_fell_back, true, __ATOMIC_RELAXED)) {
		char why[400];

		/* hub_error_describe names no token: the CAS's is never in a
		   URL, and xorb URLs carry only their signature. */
		fs_log(LOG_WARNING,
		       "%s/%s: reading through the Xet CAS failed (%s); "
		       "reading it through the resolve bridge",
		       b->repo_id, b->path,
		       err && (err->status || err->transport || err->message[0])
			       ? hub_error_describe(err, why, sizeof(why))
			       : strerror(-rc));
	}
	blob_lock(b);
	/* What the CAS brought: made durable and marked, then unlocked. */
	for (uint64_t k = j->first; k < j->first + j->count;) {
		uint64_t start = k;

		while (k < j->first + j->count && db_bit(b->present, k))
			k++;
		if (k > start)
			queue_sync(b, j->locked ? SYNC_MARK_UNLOCK : SYNC_MARK,
				   start, k - start);
		while (k < j->first + j->count && !db_bit(b->present, k))
			k++;
	}
	missing_runs(b, j, j->prio, &runs);
	take_stranded(b, &failed); /* runs missing_runs could not make */
	blob_unlock(b);
	answer(b, failed, -EIO);
	for (unsigned i = 0; i < runs.n; i++) {
		runs.jobs[i]->locked = j->locked;
		runs.jobs[i]->route = ROUTE_BRIDGE;
		runs.jobs[i]->prio = runs.prio[i];
		blob_ref(b);
		submit_job(b, runs.jobs[i], refetching(eng, b->etag, false));
	}
	lock_wait_abandon(eng);
	buf_put(b, j->buf);
	free(j);
	blob_unref(b);
	return true;
}

static void submit_runs(struct blob *b, struct runs *r)
{
	for (unsigned i = 0; i < r->n; i++) {
		struct job *j = r->jobs[i];
		struct lock_wait *lw;
		pthread_t t;
		int rc = range_lock(b, j, F_WRLCK);

		j->locked = rc == 0;
		if (rc != -EAGAIN && rc != -EACCES) { /* ours, or no locks */
			settle(j, r->prio[i]);
			continue;
		}
		lw = malloc(sizeof(*lw));
		if (lw && lock_wait_begin(b->eng)) {
			lw->j = j;
			lw->prio = r->prio[i];
			blob_ref(b);
			if (pthread_create(&t, NULL, wait_for_other, lw) == 0) {
				pthread_detach(t);
				continue;
			}
			blob_unref(b);
			lock_wait_abandon(b->eng);
		}
		free(lw);
		submit_one(b, j, r->prio[i]); /* fetch it twice, then */
	}
}

/* ---- Durability --------------------------------------------------------- */

static void queue_sync(struct blob *b, enum sync_kind kind, uint64_t first,
		       uint64_t count)
{
	struct engine *eng = b->eng;
	struct sync_item *it = calloc(1, sizeof(*it));

	if (!it)
		return; /* the blocks are fetched again after a restart */
	blob_ref(b);
	it->b = b;
	it->kind = kind;
	it->first = first;
	it->count = count;
	it->seq = __atomic_add_fetch(&b->sync_queued, 1, __ATOMIC_RELEASE);
	queue_push(&eng->syncs, &it->q, false);
}

/*
 * Make blocks durable, then record them; or record a verified blob.  The
 * records are written under the blob's lock so that a drop cannot slip in
 * between the check and the write and leave marks for bytes that are gone.
 */
/* Keep the store within its size limit, if it has one. */
static void keep_within_limit(struct engine *eng)
{
	struct db_store *s = eng->cfg.store;
	uint64_t freed = 0;
	int64_t limit;

	if (db_setting_get(s, DB_SETTING_MAX_CACHE, &limit) < 0 || limit <= 0)
		return;
	if (db_evict(s, (uint64_t)limit, false, NULL, NULL, &freed) < 0)
		fs_log(LOG_WARNING, "store: evicting: %s", db_last_error());
	else if (freed)
		fs_log(LOG_INFO,
		       "store: evicted %llu bytes to stay within "
		       "%lld",
		       (unsigned long long)freed, (long long)limit);
}

static void do_sync_once(struct sync_item *it)
{
	struct blob *b = it->b;
	struct db_store *s = b->eng->cfg.store;
	uint64_t size;
	int rc = 0;

	if (it->kind == SYNC_TOUCH) {
		db_blob_touch(s, b->etag);
		return;
	}
	if (it->seq > b->sync_durable) {
		/* Covers every item queued so far: their blocks are written. */
		uint64_t upto =
			__atomic_load_n(&b->sync_queued, __ATOMIC_ACQUIRE);

		if (fdatasync(b->fd) < 0) {
			fs_log(LOG_ERR, "store: syncing blob %s: %s", b->etag,
			       strerror(errno));
			return;
		}
		b->sync_durable = upto;
	}
	blob_lock(b);
	if (b->dropped || b->complete) {
		blob_unlock(b);
		return;
	}
	if (it->kind != SYNC_FINISH) {
		rc = db_partial_mark(s, b->etag, b->fd, b->size, b->shift,
				     it->first, it->count, NULL);
	} else {
		rc = db_partial_finish(s, b->etag, b->size);
		if (rc < 0 && db_blob_get(s, b->etag, &size) == 0)
			rc = 0; /* another process recorded it first */
		b->complete = rc == 0;
	}
	if (rc < 0)
		b->unmarked = true;
	blob_unlock(b);
	if (rc < 0)
		fs_log(LOG_WARNING, "store: recording %s of %s: %s",
		       it->kind == SYNC_FINISH ? "the whole" : "blocks",
		       b->etag, db_last_error());
	else if (it->kind == SYNC_FINISH)
		keep_within_limit(b->eng);
}

static void do_sync(struct sync_item *it)
{
	struct blob *b = it->b;

	do_sync_once(it);
	if (it->kind == SYNC_MARK_UNLOCK) {
		struct job range = { .first = it->first,
				     .count = it->count,
				     .locked = true };

		range_unlock(b, &range);
	}
}

static void handle_sync(struct qitem *q, void *arg)
{
	struct sync_item *it = (struct sync_item *)q;

	(void)arg;
	do_sync(it);
	blob_unref(it->b);
	free(it);
}

/* ---- Dropping a blob that failed its check ---------------------------- */

/*
 * The etags dropped lately: the next open of each one tells the kernel to
 * drop what it cached of the file (its pages are invalidated on the drop
 * too, from another thread, which that open must not race).  Every other
 * open keeps the cache: content is immutable per etag.  blobs_lock.
 */
static void note_dropped(struct engine *eng, const char *etag)
{
	pthread_mutex_lock(&eng->blobs_lock);
	memcpy(eng->dropped[eng->n_dropped++ % DROPPED_KEPT], etag, 65);
	pthread_mutex_unlock(&eng->blobs_lock);
}

static bool was_dropped(struct engine *eng, const char *etag)
{
	bool found = false;

	pthread_mutex_lock(&eng->blobs_lock);
	for (unsigned i = 0; i < DROPPED_KEPT && !found; i++) {
		if (strcmp(eng->dropped[i], etag) == 0) {
			eng->dropped[i][0] = '\0';
			found = true;
		}
	}
	pthread_mutex_unlock(&eng->blobs_lock);
	return found;
}

/* The slot of etag in eng->refetch, or -1 (blobs_lock held). */
static int refetch_slot(const struct engine *eng, const char *etag)
{
	for (int i = 0; i < REFETCH_KEPT; i++)
		if (strcmp(eng->refetch[i], etag) == 0)
			return i;
	return -1;
}

/*
 * Whether etag's last copy failed its check, so that a fetch must pass
 * caches by; forget: it verified now, forget that.
 */
static bool refetching(struct engine *eng, const char *etag, bool forget)
{
	int i;

	pthread_mutex_lock(&eng->blobs_lock);
	i = refetch_slot(eng, etag);
	if (i >= 0 && forget)
		eng->refetch[i][0] = '\0';
	pthread_mutex_unlock(&eng->blobs_lock);
	return i >= 0;
}

static void note_refetch(struct engine *eng, const char *etag)
{
	pthread_mutex_lock(&eng->blobs_lock);
	if (refetch_slot(eng, etag) < 0)
		memcpy(eng->refetch[eng->n_refetch++ % REFETCH_KEPT], etag, 65);
	pthread_mutex_unlock(&eng->blobs_lock);
}

static void *inval_main(void *arg)
{
	struct blob *b = arg;
	const struct engine_config *cfg = &b->eng->cfg;
	uint64_t tags[MAX_TAGS];

	blob_lock(b);
	memcpy(tags, b->tags, sizeof(tags));
	blob_unlock(b);
	for (int i = 0; i < MAX_TAGS && tags[i]; i++)
		cfg->dropped(cfg->dropped_arg, tags[i]);
	blob_unref(b);
	return NULL;
}

/*
 * The content failed its check (lock held): fail every waiter, forget the
 * blocks, remove the file and its bitmap, and make the next open or read
 * start afresh.  The dropped hook is called from another thread (a FUSE
 * front's invalidation must not wait on this one).
 */
static void drop_blob(struct blob *b, struct waiter **failed)
{
	struct engine *eng = b->eng;
	pthread_t t;

	assert_held(b);
	b->dropped = true;
	while (b->waiters) {
		struct waiter *w = b->waiters;

		b->waiters = w->next;
		w->next = *failed;
		*failed = w;
	}
	if (db_partial_drop(eng->cfg.store, b->etag) < 0)
		fs_log(LOG_ERR, "store: dropping blob %s: %s", b->etag,
		       db_last_error());
	pthread_mutex_lock(&eng->blobs_lock);
	unlist(eng, b);
	b->refs++;
	pthread_mutex_unlock(&eng->blobs_lock);
	note_dropped(eng, b->etag);
	note_refetch(eng, b->etag);
	if (eng->cfg.dropped && pthread_create(&t, NULL, inval_main, b) == 0)
		pthread_detach(t);
	else
		blob_unref(b);
}

/* ---- Opening files ------------------------------------------------------ */

int engine_open(struct engine *eng, const struct engine_file *f, uint64_t tag,
		struct engine_handle **out, bool *keep_cache)
{
	struct engine_handle *h = calloc(1, sizeof(*h));
	bool keep;
	int rc;

	*out = NULL;
	if (!h)
		return -ENOMEM;
	rc = blob_get(eng, f, &h->b);
	if (rc < 0) {
		fs_log(LOG_ERR, "store: cannot open blob %s for %s/%s: %s",
		       f->etag, f->repo_id, f->path, strerror(-rc));
		free(h);
		return rc;
	}
	pthread_mutex_init(&h->lock, NULL);
	if (tag)
		remember_tag(h->b, tag);
	pthread_mutex_lock(&eng->blobs_lock);
	h->lnext = eng->handles;
	if (h->lnext)
		h->lnext->lprev = h;
	eng->handles = h;
	pthread_mutex_unlock(&eng->blobs_lock);
	blob_lock(h->b);
	keep = !was_dropped(eng, f->etag);
	if (h->b->complete && !h->b->external)
		queue_sync(h->b, SYNC_TOUCH, 0, 0);
	blob_unlock(h->b);
	if (keep_cache)
		*keep_cache = keep;
	*out = h;
	return 0;
}

void engine_close(struct engine_handle *h)
{
	struct engine *eng;

	if (!h)
		return;
	eng = h->b->eng;
	pthread_mutex_lock(&eng->blobs_lock);
	if (h->lprev)
		h->lprev->lnext = h->lnext;
	else
		eng->handles = h->lnext;
	if (h->lnext)
		h->lnext->lprev = h->lprev;
	pthread_mutex_unlock(&eng->blobs_lock);
	/*
	 * No wait of h is pending (the caller's promise; a FUSE release
	 * comes only once every read was answered), but that order may run
	 * through /dev/fuse (spliced replies), which ThreadSanitizer cannot
	 * see.  Taking the lock the waits took makes it explicit.
	 */
	pthread_mutex_lock(&h->lock);
	pthread_mutex_unlock(&h->lock);
	blob_unref(h->b);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* ---- Waiting for bytes --------------------------------------------------- */

/*
 * The stream of h that a read at [off, end) continues, or a slot to start
 * one in (the least recently used).  The kernel's reads of one stream
 * arrive from several threads and may be reordered a little: a read near
 * where a stream is, or inside what was read ahead for it, continues it.
 */
static struct stream *find_stream(struct engine_handle *h, uint64_t off)
{
	struct stream *lru = &h->streams[0];

	for (int i = 0; i < STREAMS; i++) {
		struct stream *st = &h->streams[i];

		if (st->used && st->sequential && off + SEQ_SLACK >= st->next &&
		    off <= st->ra_end + SEQ_SLACK)
			return st;
		/* A stream starts with a read right where the last ended. */
		if (st->used && !st->sequential && off == st->next)
			return st;
		if (st->used < lru->used)
			lru = st;
	}
	memset(lru, 0, sizeof(*lru));
	return lru;
}

/*
 * Readahead for a read at [off, end) of a sequential reader: the range to
 * prefetch (empty when none) and the size of its transfers.
 *
 * What a window costs: a reader that stops (a loader that wanted one
 * tensor, a header probe) leaves the whole window fetched for nothing.
 * What it buys: a sequential reader only ever waits for bytes in flight,
 * so the window must hold what keeps the pipe full.  With n parallel
 * transfers of T bytes, each taking L (the request's round trip: the
 * resolve or redirect, then the first byte) plus T/r at a connection's
 * rate r, the throughput is n T / (L + T/r): the window n T must reach
 * B (L + T/r) for a link of B bytes/s.  So:
 *
 *   - Transfers are window / transfers (at least a block), so a window of
 *     any size keeps every transfer slot busy: a small window costs
 *     parallelism nothing, only more requests.  On the test CDN (L well
 *     under a millisecond, r = 100 MB/s) a 8 MiB window in 1 MiB runs
 *     keeps 8 connections running; 16 MiB keeps all 16.
 *   - The window is at most 1/RA_SHARE of what the stream has read, past
 *     a floor of RA_FLOOR (reached at twice the read, so a header probe of
 *     128 KiB gets a block, not megabytes).  A reader that stops wastes
 *     at most max(RA_FLOOR, read / RA_SHARE): 8 MiB for a 64 MiB tensor.
 *   - A stream that has read RA_LONG (128 MiB) in order from a CDN is
 *     reading a large file through, not picking a tensor: its share becomes
 *     1/RA_LONG_SHARE, so the window doubles there (16 to 32 MiB) and
 *     reaches READAHEAD_MAX at 512 MiB read instead of 1 GiB.  A reader
 *     that stops past RA_LONG wastes at most read / RA_LONG_SHARE, and
 *     never more than READAHEAD_MAX; below it the bound above holds.
 *   - On a real network L is 20-100 ms, and B (L + T/r) is tens of MiB at
 *     1 GB/s: 1 GB/s x 50 ms = 50 MB.  RA_FLOOR covers about 160 MB/s at
 *     50 ms from the start; past 64 MiB read the window grows with the
 *     read (a share of 1/8 is about +12% per round trip, 1/4 past
 *     RA_LONG about +25%) up to READAHEAD_MAX, which covers 1 GB/s at
 *     ~100 ms.  The first hundred-odd MiB of a fast long-distance stream
 *     run below the link's speed; that is the price of bounding what a
 *     reader that stops wastes to 1/8 of what it read.
 *
 * Where the file's resolve answers the bytes itself (a fleet mirror:
 * hub_xfer_resolve_unit), every run is a resolve at the Hub, which allows
 * 3000 per 5 minutes: runs of 1 MiB would cost ~400 resolves per GiB.
 * There runs are at least RESOLVE_RUN, whole slices of the mirror (no run
 * waits for a slice another one fills), and the window grows with the read
 * (doubling, as a probe must not cost 128 MiB) to hold RESOLVE_RUNS of
 * them: a mirror fetches a run's slices from its CDN one after another, so
 * the runs in flight are its parallelism on a cold file (4 runs at 100 MB/s
 * per connection: 3.3-3.6 s for a GiB; 8: 2.6-2.8 s).  ~70 resolves per
 * GiB, and a reader that stops leaves up to twice what it read, 128 MiB at
 * most, in the mirror's cache (the 1/RA_SHARE bound holds for files from
 * a CDN).
 *
 * A file read through the CAS has runs of half its window, a power of
 * two up to XET_RUN: each run is a reconstruction call and the xorb
 * ranges it names (the reader asks the CAS for 16 MiB at a time, so an
 * aligned run of a power of two up to that is one call), fetched in
 * parallel, and the reader runs 4 such reads at once.  Its window's floor
 * is XET_WINDOW, four whole runs, 64 MiB (reached at twice the read, as
 * above), and it ends on a whole run, so that each top-up is one aligned
 * run, one call: a reconstruction call is a round trip to the CAS (tens
 * of ms over the internet; ~45 ms here before the emulator set
 * TCP_NODELAY), and with two runs ahead the reader waited for each one's
 * call, while four keep the calls behind the transfers.  A reader that stops
 * wastes up to 64 MiB, not 8.  Measured on the 256 MiB Xet fixture
 * (tests/bench/xet_read.py), the CDN's plan cost ~960 reconstruction
 * calls per GiB (runs of about 1 MiB, each fetching the xorb range around
 * it), half-window runs on the CDN's window ~330, two runs not on whole
 * runs ~180 (each top-up split in two calls) and this ~110.  Demand reads
 * stay the size of the read.
 *
 * The window is topped up a run at a time, so transfers are staggered.
 */
static void plan_readahead(struct engine_handle *h, const struct blob *b,
			   uint64_t off, uint64_t end, uint64_t *ra_off,
			   uint64_t *ra_end, uint64_t *ra_run)
{
	uint64_t window, target, read, run, block = 1ULL << b->shift;
	uint64_t unit = __atomic_load_n(&b->unit, __ATOMIC_RELAXED);
	bool xet = __atomic_load_n(&b->via_xet, __ATOMIC_RELAXED);
	unsigned slots = b->eng->cfg.transfers ? b->eng->cfg.transfers : 16;
	struct stream *st;

	*ra_off = *ra_end = *ra_run = 0;
	pthread_mutex_lock(&h->lock);
	st = find_stream(h, off);
	if (!st->used) { /* new: a stream from the start, else a candidate */
		st->start = off;
		st->next = st->ra_end = end;
		st->sequential = off == 0;
	} else {
		st->sequential = true;
		if (end > st->next)
			st->next = end;
	}
	st->used = ++h->clock;
	if (st->sequential) {
		read = st->next - st->start;
		/* Past RA_LONG on the CDN's route: see above. */
		window =
			read / (read >= RA_LONG && !xet && !unit ? RA_LONG_SHARE
								 : RA_SHARE);
		if (window < RA_FLOOR)
			window = 2 * read < RA_FLOOR ? 2 * read : RA_FLOOR;
		if (window > READAHEAD_MAX)
			window = READAHEAD_MAX;
		run = window / slots;
		run = run < block ? block : run > XFER_MAX ? XFER_MAX : run;
		if (xet && !unit) { /* each run is a CAS call: above */
			if (window < XET_WINDOW)
				window = 2 * read < XET_WINDOW ? 2 * read
							       : XET_WINDOW;
			run = window / 2 < XET_RUN ? window / 2 : XET_RUN;
			while (run & (run - 1))
				run &= run - 1; /* a power of two */
			if (run < block)
				run = block;
		}
		if (unit) { /* each run is a resolve: see above */
			if (run < RESOLVE_RUN)
				run = RESOLVE_RUN;
			run = (run + unit - 1) / unit * unit;
			uint64_t cap = RESOLVE_RUNS * run;

			/* Large slices: READAHEAD_MAX, or 4 runs. */
			if (cap > READAHEAD_MAX)
				cap = 4 * run > READAHEAD_MAX ? 4 * run
							      : READAHEAD_MAX;
			/* Doubling with the read up to cap, as a probe
			   should not cost 128 MiB. */
			if (window < cap)
				window = 2 * read < cap ? 2 * read : cap;
			if (run > window / 2)
				run = window / 2 / unit * unit;
			if (run < unit)
				run = unit;
		}
		target = st->next + window;
		if ((unit || xet) && target < b->size) /* whole runs */
			target = target / run * run;
		if (target > b->size)
			target = b->size;
		if (target > st->ra_end &&
		    (target - st->ra_end >= run || target == b->size)) {
			*ra_off = st->ra_end > end ? st->ra_end : end;
			*ra_end = target;
			*ra_run = run;
			st->ra_end = target;
		}
	}
	pthread_mutex_unlock(&h->lock);
}

/*
 * The blob of an open file for one read, with a reference the caller
 * drops.  Once its blob failed the check, an open file only gets EIO: its
 * reader may already hold bytes of the bad copy, so it must not finish
 * with a success.  The next open fetches the blob afresh.
 */
static int handle_blob(struct engine_handle *h, struct blob **out)
{
	struct blob *b = h->b;
	bool dropped;

	blob_lock(b);
	dropped = b->dropped;
	blob_unlock(b);
	if (dropped)
		return -EIO;
	blob_ref(b);
	*out = b;
	return 0;
}

/*
 * Queue w on b (lock held) and plan the blocks it needs; false when it can
 * be answered at once instead.
 */
static bool wait_for(struct blob *b, struct waiter *w, struct runs *runs)
{
	uint64_t end = w->off + w->size;

	assert_held(b);
	if (satisfied(b, w))
		return false;
	w->next = b->waiters;
	b->waiters = w;
	plan_runs(b, w->off >> b->shift, (end - 1) >> b->shift, XFER_MAX,
		  HUB_XFER_DEMAND, runs);
	/* All there but unchecked (a blob completed before a restart). */
	if (!b->verified && w->need_verified) {
		struct waiter *ready = NULL, *failed = NULL;

		if (!hash_advance(b))
			drop_blob(b, &failed);
		take_ready(b, &ready);
		blob_unlock(b);
		answer(b, ready, 0);
		answer(b, failed, -EIO);
		blob_lock(b);
	}
	return true;
}

#define HOLD_LOG_S 5 /* a pause of the Hub's this long goes to the log */

/*
 * A wait that goes to the network while the Hub has asked for a pause of
 * resolves: said once per pause, so that a read that then fails at the
 * read timeout has its cause in the log ("hubfs status" shows it too).
 */
static void log_hold(struct blob *b)
{
	struct engine *eng = b->eng;
	struct hub_xfer_stats xs;
	int64_t now = (int64_t)time(NULL), last;

	hub_xfer_get_stats(eng->xfer, &xs);
	if (xs.resolves_held_until < now + HOLD_LOG_S)
		return;
	last = __atomic_load_n(&eng->hold_logged, __ATOMIC_RELAXED);
	if (last == xs.resolves_held_until ||
	    !__atomic_compare_exchange_n(&eng->hold_logged, &last,
					 xs.resolves_held_until, false,
					 __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		return;
	fs_log(LOG_WARNING,
	       "%s/%s: the Hub asked for a pause (rate limit): files not "
	       "resolved yet wait %lld s; a read gives up after %ld s",
	       b->repo_id, b->path, (long long)(xs.resolves_held_until - now),
	       eng->cfg.read_timeout);
}

/* A wait answered at once, from what the store has. */
static void answer_now(struct blob *b, engine_done_fn done, void *arg,
		       uint64_t off, uint64_t size)
{
	__atomic_fetch_add(&b->eng->waits_local, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&b->eng->bytes_answered, size, __ATOMIC_RELAXED);
	done(arg, 0, b->fd, off, (size_t)size);
}

int engine_wait(struct engine_handle *h, uint64_t off, uint64_t size,
		unsigned flags, engine_done_fn done, void *arg)
{
	struct runs runs = { .n = 0 };
	uint64_t end, ra_off = 0, ra_end = 0, ra_run = 0;
	struct waiter *w;
	struct blob *b;
	bool complete, waits;
	int rc = handle_blob(h, &b);

	if (rc < 0)
		return rc;
	if (off >= b->size || size == 0) {
		done(arg, 0, b->fd, off, 0);
		goto out;
	}
	end = size < b->size - off ? off + size : b->size;
	__atomic_fetch_add(&b->eng->waits, 1, __ATOMIC_RELAXED);
	if (flags & ENGINE_READAHEAD)
		plan_readahead(h, b, off, end, &ra_off, &ra_end, &ra_run);
	blob_lock(b);
	complete = b->complete;
	blob_unlock(b);
	if (complete) {
		answer_now(b, done, arg, off, end - off);
		goto out;
	}

	rc = -ENOMEM;
	w = calloc(1, sizeof(*w));
	if (!w)
		goto out;
	w->h = h;
	w->done = done;
	w->arg = arg;
	w->off = off;
	w->size = (size_t)(end - off);
	w->need_verified = end == b->size;
	blob_lock(b);
	if (b->dropped) {
		blob_unlock(b);
		free(w);
		rc = -EIO;
		goto out;
	}
	waits = wait_for(b, w, &runs);
	if (ra_end > ra_off && !b->dropped)
		plan_runs(b, ra_off >> b->shift, (ra_end - 1) >> b->shift,
			  ra_run, HUB_XFER_READAHEAD, &runs);
	blob_unlock(b);
	if (!waits) {
		free(w);
		answer_now(b, done, arg, off, end - off);
	}
	if (runs.n)
		log_hold(b);
	submit_runs(b, &runs);
	rc = 0;
out:
	blob_unref(b);
	return rc;
}

int engine_cancel(struct engine_handle *h, const void *arg)
{
	struct blob *b = h->b;
	struct waiter **pp, *gone = NULL;
	int n = 0;

	blob_lock(b);
	for (pp = &b->waiters; *pp;) {
		struct waiter *w = *pp;

		if (w->h == h && w->arg == arg) {
			*pp = w->next;
			w->next = gone;
			gone = w;
			n++;
		} else {
			pp = &w->next;
		}
	}
	blob_unlock(b);
	answer(b, gone, -EINTR);
	return n;
}

uint64_t engine_cached_bytes(struct engine *eng, const char *etag)
{
	struct blob *b;
	uint64_t size, have = 0;

	if (db_blob_get(eng->cfg.store, etag, &size) == 0)
		return size;
	pthread_mutex_lock(&eng->blobs_lock);
	for (b = eng->blobs; b; b = b->next)
		if (strcmp(b->etag, etag) == 0)
			break;
	if (b)
		b->refs++;
	pthread_mutex_unlock(&eng->blobs_lock);
	if (!b)
		return 0;
	blob_lock(b);
	for (uint64_t i = 0; i < b->blocks; i++)
		if (db_bit(b->present, i))
			have += block_end(b, i) - (i << b->shift);
	if (b->complete)
		have = b->size;
	blob_unlock(b);
	blob_unref(b);
	return have;
}

void engine_get_stats(struct engine *eng, struct engine_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->waits = __atomic_load_n(&eng->waits, __ATOMIC_RELAXED);
	out->waits_local = __atomic_load_n(&eng->waits_local, __ATOMIC_RELAXED);
	out->bytes_answered =
		__atomic_load_n(&eng->bytes_answered, __ATOMIC_RELAXED);
	pthread_mutex_lock(&eng->blobs_lock);
	for (struct blob *b = eng->blobs; b; b = b->next)
		out->blobs_open++;
	pthread_mutex_unlock(&eng->blobs_lock);
	hub_xfer_get_stats(eng->xfer, &out->xfer);
	if (eng->xet)
		hub_xet_get_stats(eng->xet, &out->xet);
	out->xet_fallbacks =
		__atomic_load_n(&eng->xet_fallbacks, __ATOMIC_RELAXED);
}

/* ---- Starting and stopping ----------------------------------------------- */

int engine_start(struct engine **out, const struct engine_config *cfg)
{
	struct engine *eng = calloc(1, sizeof(*eng));
	int rc;

	*out = NULL;
	if (!eng)
		return -ENOMEM;
	eng->cfg = *cfg;
	pthread_mutex_init(&eng->blobs_lock, NULL);
	pthread_mutex_init(&eng->pool_lock, NULL);
	pthread_cond_init(&eng->lock_waits_done, NULL);
	rc = queue_start(&eng->syncs, handle_sync, eng);
	if (rc < 0)
		goto fail;
	rc = queue_start(&eng->blocks, handle_block, eng);
	if (rc < 0) {
		queue_stop(&eng->syncs);
		goto fail;
	}
	keep_within_limit(eng);
	rc = hub_xfer_start(&eng->xfer, cfg->hub,
			    cfg->transfers ? cfg->transfers : 16);
	if (rc == 0 && !cfg->no_xet) {
		rc = hub_xet_new(&eng->xet, cfg->hub, eng->xfer);
		if (rc < 0)
			hub_xfer_stop(eng->xfer);
	}
	if (rc < 0) {
		queue_stop(&eng->blocks);
		queue_stop(&eng->syncs);
		goto fail;
	}
	*out = eng;
	return 0;
fail:
	pthread_mutex_destroy(&eng->blobs_lock);
	pthread_mutex_destroy(&eng->pool_lock);
	pthread_cond_destroy(&eng->lock_waits_done);
	free(eng);
	return rc;
}

/* Fail the waits still pending on any blob (none, unless a caller left
 * some when it stopped the engine). */
static void fail_pending(struct engine *eng)
{
	for (;;) {
		struct waiter *w = NULL;
		struct blob *b;

		pthread_mutex_lock(&eng->blobs_lock);
		for (b = eng->blobs; b && !b->waiters; b = b->next)
			;
		if (b)
			b->refs++;
		pthread_mutex_unlock(&eng->blobs_lock);
		if (!b)
			return;
		blob_lock(b);
		w = b->waiters;
		b->waiters = NULL;
		blob_unlock(b);
		answer(b, w, -EIO);
		blob_unref(b);
	}
}

void engine_stop(struct engine *eng)
{
	if (!eng)
		return;
	/* Lock waiters and reroutes submit to the Xet reader and the
	   transfer engine: those must outlive them. */
	pthread_mutex_lock(&eng->blobs_lock);
	eng->stopping = true;
	while (eng->lock_waits)
		pthread_cond_wait(&eng->lock_waits_done, &eng->blobs_lock);
	pthread_mutex_unlock(&eng->blobs_lock);
	/* Before the transfer engine its xorb ranges are on; every Xet
	   job's done() is queued, and nothing reroutes any more. */
	hub_xet_free(eng->xet);
	eng->xet = NULL;
	hub_xfer_stop(eng->xfer); /* every job's done() is queued */
	eng->xfer = NULL;
	/* Each drains its queue before it stops; blocks queue syncs. */
	queue_stop(&eng->blocks);
	queue_stop(&eng->syncs);
	fail_pending(eng);
	/* Files the front had not closed yet when it stopped. */
	while (eng->handles)
		engine_close(eng->handles);
	while (eng->n_pool)
		free(eng->pool[--eng->n_pool]);
	pthread_mutex_destroy(&eng->blobs_lock);
	pthread_mutex_destroy(&eng->pool_lock);
	pthread_cond_destroy(&eng->lock_waits_done);
	free(eng);
}

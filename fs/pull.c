/*
 * pull.c - fetching whole files into the store ahead of time ("hubfs
 * pull"), through the same read path a mount uses (blob.c): the blocks,
 * the in-order hash check, the marks that make an interrupted pull resume
 * where it stopped, and the range locks that let a pull and a mount share
 * a blob without fetching it twice.
 *
 * The files are cut into chunks, requested in file order with at most
 * IN_FLIGHT chunks outstanding, so small files go many at a time and a
 * large one is fetched as several parallel ranges.  A chunk that ends a
 * file is answered only once the blob passed its check.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHUNK	  (32ULL << 20) /* bytes asked of the read path at a time */
#define IN_FLIGHT 16		/* chunks outstanding */
#define ATTEMPTS  2		/* a file that failed is tried once more */
#define TICK_MS	  200		/* progress reports */

struct pull_file {
	struct fs_pull_item *item;
	struct node *node; /* what blob_open takes */
	uint64_t fh;
	bool open;	      /* fh is an open handle */
	bool active;	      /* started, not finished */
	uint64_t next;	      /* the next offset to ask for */
	unsigned outstanding; /* chunks asked for, not answered; lock */
	int err;	      /* a chunk failed (positive errno); lock */
	int attempts;
	struct pull *p;
};

struct pull {
	struct fs_ctx *ctx;
	pthread_mutex_t lock;
	pthread_cond_t cond;  /* a chunk was answered */
	unsigned outstanding; /* lock */
	struct pull_file *files;
	size_t n, started, finished;
};

static void chunk_done(void *arg, int err)
{
	struct pull_file *f = arg;
	struct pull *p = f->p;

	pthread_mutex_lock(&p->lock);
	f->outstanding--;
	p->outstanding--;
	if (err && !f->err)
		f->err = err;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

static struct node *file_node(const struct fs_repo *r,
			      const struct fs_pull_item *it)
{
	struct node *n = node_alloc(NODE_FILE);

	if (!n)
		return NULL;
	n->type = r->type;
	n->repo = r->repo;
	n->tree = r->tree;
	n->mtime = r->mtime;
	memcpy(n->commit, r->commit, sizeof(n->commit));
	n->size = it->size;
	n->lfs = it->lfs;
	snprintf(n->etag, sizeof(n->etag), "%s", it->etag);
	n->repo_id = strdup(r->id);
	n->path = strdup(it->path);
	n->ino = ino_hash(n->commit, it->path);
	if (!n->repo_id || !n->path) {
		node_free(n);
		return NULL;
	}
	return n;
}

/* A file all of whose chunks are answered: done, or tried again. */
static void settle_file(struct pull *p, struct pull_file *f, bool stopping)
{
	int err = f->err;

	if (f->open) {
		pthread_mutex_unlock(&p->lock);
		blob_release(f->fh);
		pthread_mutex_lock(&p->lock);
		f->open = false;
	}
	if (err && !stopping && ++f->attempts < ATTEMPTS) {
		fs_log(LOG_INFO, "%s/%s: %s; trying again", f->node->repo_id,
		       f->item->path, strerror(err));
		f->err = 0;
		f->next = 0;
		return;
	}
	f->item->rc = err ? -err : 0;
	f->item->done = true;
	f->active = false;
	p->finished++;
}

/* The next file with something left to ask for, starting one if needed. */
static struct pull_file *next_file(struct pull *p)
{
	for (size_t i = 0; i < p->started; i++) {
		struct pull_file *f = &p->files[i];

		if (f->active && !f->err && f->next < f->item->size)
			return f;
	}
	if (p->started < p->n && p->started - p->finished < IN_FLIGHT) {
		struct pull_file *f = &p->files[p->started++];

		f->active = true;
		return f;
	}
	return NULL;
}

/* Ask for f's next chunk (lock held; dropped meanwhile). */
static void ask(struct pull *p, struct pull_file *f)
{
	uint64_t off = f->next, len;
	bool keep_cache;
	int rc = 0;

	if (off >= f->item->size)
		return; /* empty: settles as it is */
	if (!f->open) {
		pthread_mutex_unlock(&p->lock);
		rc = blob_open(p->ctx, f->node, &f->fh, &keep_cache);
		pthread_mutex_lock(&p->lock);
		f->open = rc == 0;
		if (rc < 0) {
			f->err = -rc;
			return;
		}
	}
	len = f->item->size - off < CHUNK ? f->item->size - off : CHUNK;
	f->next += len;
	f->outstanding++;
	p->outstanding++;
	pthread_mutex_unlock(&p->lock);
	rc = blob_fetch(p->ctx, f->fh, off, len, chunk_done, f);
	pthread_mutex_lock(&p->lock);
	if (rc < 0) { /* not asked: chunk_done will not come */
		f->outstanding--;
		p->outstanding--;
		if (!f->err)
			f->err = -rc;
	}
}

/* Sum up what is in the store (lock held). */
static void tally(struct pull *p, struct fs_pull_progress *pr)
{
	pr->done = 0;
	pr->current = NULL;
	pr->files_done = 0;
	for (size_t i = 0; i < p->n; i++) {
		struct pull_file *f = &p->files[i];

		if (i < p->started && !f->active && f->item->rc == 0) {
			pr->done += f->item->size;
			pr->files_done++;
		} else if (f->active && f->open) {
			pr->done += blob_cached_bytes(p->ctx, f->node);
			if (!pr->current)
				pr->current = f->item->path;
		} else {
			pr->done += f->item->local;
		}
	}
}

static void wait_tick(struct pull *p)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += TICK_MS * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&p->cond, &p->lock, &ts);
}

/* The loop: keep IN_FLIGHT chunks asked for until every file settles. */
static void run(struct pull *p, fs_pull_progress_fn progress, void *arg,
		const volatile int *stop, struct fs_pull_progress *pr)
{
	struct timespec last = { 0 }, now;

	pthread_mutex_lock(&p->lock);
	while (p->finished < p->n && !(stop && *stop)) {
		for (size_t i = 0; i < p->started; i++) {
			struct pull_file *f = &p->files[i];

			if (f->active && f->outstanding == 0 &&
			    (f->err || f->next >= f->item->size))
				settle_file(p, f, false);
		}
		while (p->outstanding < IN_FLIGHT && !(stop && *stop)) {
			struct pull_file *f = next_file(p);

			if (!f)
				break;
			ask(p, f);
		}
		if (p->finished == p->n)
			break;
		wait_tick(p);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (progress &&
		    (now.tv_sec - last.tv_sec) * 1000 +
				    (now.tv_nsec - last.tv_nsec) / 1000000 >=
			    TICK_MS) {
			last = now;
			tally(p, pr);
			pthread_mutex_unlock(&p->lock);
			progress(arg, pr);
			pthread_mutex_lock(&p->lock);
		}
	}
	pthread_mutex_unlock(&p->lock);
}

/*
 * Stopped: end every transfer now.  Stopping the read path answers every
 * chunk still asked for and closes the files it has open, ours included.
 * What was durable is recorded; the rest is fetched by the next pull.
 */
static void stop_all(struct pull *p)
{
	blob_stop(p->ctx);
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < p->n; i++) {
		struct pull_file *f = &p->files[i];

		f->open = false; /* released by blob_stop() */
		if (i >= p->started || f->active) {
			f->item->rc = -EINTR;
			f->item->done = true;
		}
		f->active = false;
	}
	pthread_mutex_unlock(&p->lock);
}

int fs_pull(struct fs_ctx *ctx, const struct fs_repo *r,
	    struct fs_pull_item *items, size_t n, fs_pull_progress_fn progress,
	    void *arg, const volatile int *stop)
{
	struct fs_pull_progress pr = { .files = n };
	struct pull p = { .ctx = ctx, .n = n };
	int rc = 0;

	p.files = calloc(n ? n : 1, sizeof(*p.files));
	if (!p.files)
		return -ENOMEM;
	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.cond, NULL);
	for (size_t i = 0; i < n; i++) {
		struct pull_file *f = &p.files[i];

		f->p = &p;
		f->item = &items[i];
		items[i].rc = 0;
		items[i].done = false;
		pr.total += items[i].size;
		pr.at_start += items[i].local;
		f->node = file_node(r, &items[i]);
		if (!f->node)
			rc = -ENOMEM;
	}
	if (rc == 0) {
		run(&p, progress, arg, stop, &pr);
		if (stop && *stop)
			stop_all(&p);
		if (progress) {
			pthread_mutex_lock(&p.lock);
			tally(&p, &pr);
			pthread_mutex_unlock(&p.lock);
			progress(arg, &pr);
		}
		for (size_t i = 0; i < n; i++)
			if (items[i].rc < 0 && rc != -EINTR)
				rc = items[i].rc == -EINTR ? -EINTR : -EIO;
	}
	for (size_t i = 0; i < n; i++)
		node_free(p.files[i].node);
	pthread_cond_destroy(&p.cond);
	pthread_mutex_destroy(&p.lock);
	free(p.files);
	return rc;
}

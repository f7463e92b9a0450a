/*
 * pull.c - fetching whole files into the store ahead of time ("hubfs
 * pull"), through the same read engine a mount uses (engine.h): the blocks,
 * the in-order hash check, the marks that make an interrupted pull resume
 * where it stopped, and the range locks that let a pull and a mount share
 * a blob without fetching it twice.
 *
 * The files are cut into chunks, requested in file order with at most
 * IN_FLIGHT chunks outstanding, so small files go many at a time and a
 * large one is fetched as several parallel ranges.  A chunk that ends a
 * file is answered only once the blob passed its check.  Stopping cancels
 * this pull's own waits; transfers already running finish into the store.
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
	struct engine_file file;
	struct engine_handle *h; /* open, or NULL */
	bool active;		 /* started, not finished */
	uint64_t next;		 /* the next offset to ask for */
	unsigned outstanding;	 /* chunks asked for, not answered; lock */
	int err;		 /* a chunk failed (a -errno); lock */
	int attempts;
	struct pull *p;
};

struct pull {
	struct fs_ctx *ctx;
	const struct fs_repo *repo;
	pthread_mutex_t lock;
	pthread_cond_t cond;  /* a chunk was answered */
	unsigned outstanding; /* lock */
	struct pull_file *files;
	size_t n, started, finished;
};

static void chunk_done(void *arg, int rc, int fd, uint64_t off, size_t size)
{
	struct pull_file *f = arg;
	struct pull *p = f->p;

	(void)fd, (void)off, (void)size;
	pthread_mutex_lock(&p->lock);
	f->outstanding--;
	p->outstanding--;
	if (rc < 0 && !f->err)
		f->err = rc;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

/* A file all of whose chunks are answered: done, or tried again. */
static void settle_file(struct pull *p, struct pull_file *f, bool stopping)
{
	int err = f->err;

	if (f->h) {
		pthread_mutex_unlock(&p->lock);
		engine_close(f->h);
		pthread_mutex_lock(&p->lock);
		f->h = NULL;
	}
	if (err && !stopping && ++f->attempts < ATTEMPTS) {
		fs_log(LOG_INFO, "%s/%s: %s; trying again", p->repo->id,
		       f->item->path, strerror(-err));
		f->err = 0;
		f->next = 0;
		return;
	}
	f->item->rc = err;
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
	struct engine_handle *h = f->h;
	uint64_t off = f->next, len;
	int rc = 0;

	if (off >= f->item->size)
		return; /* empty: settles as it is */
	if (!h) {
		pthread_mutex_unlock(&p->lock);
		rc = engine_open(p->ctx->eng, &f->file, 0, &h, NULL);
		pthread_mutex_lock(&p->lock);
		f->h = h;
		if (rc < 0) {
			f->err = rc;
			return;
		}
	}
	len = f->item->size - off < CHUNK ? f->item->size - off : CHUNK;
	f->next += len;
	f->outstanding++;
	p->outstanding++;
	pthread_mutex_unlock(&p->lock);
	rc = engine_wait(h, off, len, 0, chunk_done, f);
	pthread_mutex_lock(&p->lock);
	if (rc < 0) { /* not asked: chunk_done will not come */
		f->outstanding--;
		p->outstanding--;
		if (!f->err)
			f->err = rc;
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
		} else if (f->active && f->h) {
			pr->done +=
				engine_cached_bytes(p->ctx->eng, f->item->etag);
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
static bool stopped(const struct pull *p)
{
	return __atomic_load_n(&p->ctx->pull_stop, __ATOMIC_RELAXED) != 0;
}

static void run(struct pull *p, fs_pull_progress_fn progress, void *arg,
		struct fs_pull_progress *pr)
{
	struct timespec last = { 0 }, now;

	pthread_mutex_lock(&p->lock);
	while (p->finished < p->n && !stopped(p)) {
		for (size_t i = 0; i < p->started; i++) {
			struct pull_file *f = &p->files[i];

			if (f->active && f->outstanding == 0 &&
			    (f->err || f->next >= f->item->size))
				settle_file(p, f, false);
		}
		while (p->outstanding < IN_FLIGHT && !stopped(p)) {
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
 * Stopped: cancel this pull's waits (the transfers they started go on
 * into the store until the engine stops), wait for the chunks being
 * answered, and close the files.  What was durable is recorded; the rest
 * is fetched by the next pull.
 */
static void stop_all(struct pull *p)
{
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < p->started; i++) {
		struct pull_file *f = &p->files[i];

		if (!f->h)
			continue;
		pthread_mutex_unlock(&p->lock);
		engine_cancel(f->h, f);
		pthread_mutex_lock(&p->lock);
	}
	while (p->outstanding)
		pthread_cond_wait(&p->cond, &p->lock);
	for (size_t i = 0; i < p->n; i++) {
		struct pull_file *f = &p->files[i];

		if (f->h) {
			pthread_mutex_unlock(&p->lock);
			engine_close(f->h);
			pthread_mutex_lock(&p->lock);
			f->h = NULL;
		}
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
	    void *arg)
{
	struct fs_pull_progress pr = { .files = n };
	struct pull p = { .ctx = ctx, .repo = r, .n = n };
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
		f->file = (struct engine_file){
			.type = r->type,
			.repo_id = r->id,
			.commit = r->commit,
			.path = items[i].path,
			.etag = items[i].etag,
			.size = items[i].size,
			.lfs = items[i].lfs,
			.xet_hash = items[i].xet,
		};
	}
	run(&p, progress, arg, &pr);
	if (stopped(&p))
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
	pthread_cond_destroy(&p.cond);
	pthread_mutex_destroy(&p.lock);
	free(p.files);
	return rc;
}

void fs_pull_stop(struct fs_ctx *ctx)
{
	__atomic_store_n(&ctx->pull_stop, 1, __ATOMIC_RELAXED);
}

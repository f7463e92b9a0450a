/*
 * test_fs_engine.c - the read engine (fs/engine.h) without a mount,
 * against the Hub emulator, run under tests/harness/hubstack.py (see
 * tests/README.md).
 *
 * Each test opens its own store in a fresh folder.  Setup pushes a commit
 * (branch "engine-test") with BIG, a regular file of several blocks, and
 * SMALL.  Every byte a wait is answered with is compared with the
 * manifest's content files; every done() must come exactly once.  A
 * regular file's transfer is one request to /api/resolve-cache/ (after a
 * redirect from /resolve/), which is what the tests count.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "fs.h"
#include "stack.h"

#define MODEL	 "acme/tiny-model"
#define BRANCH	 "engine-test"
#define BIG	 "engine/big.bin"
#define BIG_SZ	 (3 * 1024 * 1024 + 12345)
#define SMALL	 "engine/small.bin"
#define SMALL_SZ 200000
#define WAIT_S	 60 /* a bound on waiting for a done() or a hook */

static cJSON *manifest;
static char *want_big, *want_small;
static char tmpdir[] = "/tmp/hubfs-test-engine-XXXXXX";
static int store_no;

/* ---- The emulator -------------------------------------------------------- */

static cJSON *file_of(const char *path)
{
	cJSON *r, *repo = NULL;
	const char *sha;

	cJSON_ArrayForEach(r, cJSON_GetObjectItem(manifest, "repos"))
	{
		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r, "id")),
			   MODEL) == 0)
			repo = r;
	}
	assert_non_null(repo);
	sha = cJSON_GetStringValue(
		cJSON_GetObjectItem(cJSON_GetObjectItem(repo, "refs"), BRANCH));
	assert_non_null(sha);
	r = cJSON_GetObjectItem(cJSON_GetObjectItem(repo, "commits"), sha);
	r = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "files"), path);
	assert_non_null(r);
	return r;
}

static const char *commit_of_branch(void)
{
	cJSON *r;

	cJSON_ArrayForEach(r, cJSON_GetObjectItem(manifest, "repos"))
	{
		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r, "id")),
			   MODEL) == 0)
			return cJSON_GetStringValue(cJSON_GetObjectItem(
				cJSON_GetObjectItem(r, "refs"), BRANCH));
	}
	return NULL;
}

/* A file of the commit as the engine knows it. */
static struct engine_file file(const char *path)
{
	cJSON *f = file_of(path);

	return (struct engine_file){
		.type = HUB_MODEL,
		.repo_id = MODEL,
		.commit = commit_of_branch(),
		.path = f->string, /* the manifest's key: lives as long */
		.etag = cJSON_GetStringValue(cJSON_GetObjectItem(f, "oid")),
		.size = (uint64_t)cJSON_GetNumberValue(
			cJSON_GetObjectItem(f, "size")),
		.lfs = false,
	};
}

static void push_test_commit(void)
{
	cJSON *body = cJSON_CreateObject(), *files = cJSON_CreateObject();
	cJSON *big = cJSON_CreateObject(), *small = cJSON_CreateObject();
	char *text;

	cJSON_AddStringToObject(body, "repo", MODEL);
	cJSON_AddStringToObject(body, "type", "model");
	cJSON_AddStringToObject(body, "branch", BRANCH);
	cJSON_AddStringToObject(body, "message", "Files for the engine test");
	cJSON_AddNumberToObject(big, "size", BIG_SZ);
	cJSON_AddNumberToObject(big, "seed", 91);
	cJSON_AddItemToObject(files, BIG, big);
	cJSON_AddNumberToObject(small, "size", SMALL_SZ);
	cJSON_AddNumberToObject(small, "seed", 92);
	cJSON_AddItemToObject(files, SMALL, small);
	cJSON_AddItemToObject(body, "files", files);
	text = cJSON_PrintUnformatted(body);
	free(stack_control_ok("POST", "/_emu/commit", text));
	free(text);
	cJSON_Delete(body);
}

/* ---- Stores, clients, engines ------------------------------------------- */

struct hooks {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t tags[16];
	int n;
};

static struct hooks hooks = {
	PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, { 0 }, 0
};

static void on_dropped(void *arg, uint64_t tag)
{
	struct hooks *h = arg;

	pthread_mutex_lock(&h->lock);
	if (h->n < 16)
		h->tags[h->n++] = tag;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

static bool hook_saw(uint64_t tag)
{
	bool seen = false;

	pthread_mutex_lock(&hooks.lock);
	for (int i = 0; i < hooks.n; i++)
		seen = seen || hooks.tags[i] == tag;
	pthread_mutex_unlock(&hooks.lock);
	return seen;
}

struct rig {
	struct hub_client *hub;
	struct db_store *store;
	struct engine *eng;
};

/* A store folder of the test's own; the same for both rigs of a test. */
static void store_dir(char *out, size_t size, bool fresh)
{
	if (fresh)
		store_no++;
	snprintf(out, size, "%s/store%d", tmpdir, store_no);
}

static void rig_start(struct rig *r, bool fresh_store)
{
	struct hub_config hc = { .endpoint = getenv("HUBFS_TEST_ENDPOINT"),
				 .stall_seconds = 30 };
	struct engine_config ec = { .read_timeout = 30,
				    .dropped = on_dropped,
				    .dropped_arg = &hooks };
	char dir[sizeof(tmpdir) + 32];

	store_dir(dir, sizeof(dir), fresh_store);
	assert_int_equal(hub_client_new(&r->hub, &hc), 0);
	assert_int_equal(db_store_open(&r->store, dir), 0);
	ec.hub = r->hub;
	ec.store = r->store;
	assert_int_equal(engine_start(&r->eng, &ec), 0);
}

static void rig_stop(struct rig *r)
{
	engine_stop(r->eng);
	db_store_close(r->store);
	hub_client_free(r->hub);
}

/* ---- Waits and what came of them ----------------------------------------- */

struct wait {
	pthread_mutex_t *lock;
	pthread_cond_t *cond;
	const char *want; /* the file's bytes */
	uint64_t off, size;
	int calls, rc;
	bool bad_bytes;
	size_t got;
};

static pthread_mutex_t waits_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t waits_cond = PTHREAD_COND_INITIALIZER;

static void wait_init(struct wait *w, const char *want, uint64_t off,
		      uint64_t size)
{
	memset(w, 0, sizeof(*w));
	w->lock = &waits_lock;
	w->cond = &waits_cond;
	w->want = want;
	w->off = off;
	w->size = size;
}

static void on_done(void *arg, int rc, int fd, uint64_t off, size_t size)
{
	struct wait *w = arg;
	char *buf = NULL;
	bool bad = false;

	if (rc == 0) {
		buf = malloc(size ? size : 1);
		bad = !buf || off != w->off ||
		      pread(fd, buf, size, (off_t)off) != (ssize_t)size ||
		      memcmp(buf, w->want + off, size) != 0;
		free(buf);
	}
	pthread_mutex_lock(w->lock);
	w->calls++;
	w->rc = rc;
	w->got = size;
	w->bad_bytes = bad;
	pthread_cond_broadcast(w->cond);
	pthread_mutex_unlock(w->lock);
}

static void start(struct engine_handle *h, struct wait *w)
{
	assert_int_equal(engine_wait(h, w->off, w->size, 0, on_done, w), 0);
}

/* Wait until w was answered (bounded, so a lost done() fails the test). */
static void settle(struct wait *w)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += WAIT_S;
	pthread_mutex_lock(w->lock);
	while (w->calls == 0 &&
	       pthread_cond_timedwait(w->cond, w->lock, &until) == 0)
		;
	pthread_mutex_unlock(w->lock);
	if (w->calls == 0)
		fail_msg("no answer to the wait at %llu",
			 (unsigned long long)w->off);
}

static void answered_right(struct wait *w)
{
	settle(w);
	assert_int_equal(w->calls, 1);
	if (w->rc != 0)
		fail_msg("wait at %llu: %s", (unsigned long long)w->off,
			 strerror(-w->rc));
	assert_false(w->bad_bytes);
}

static int calls_of(struct wait *w)
{
	int n;

	pthread_mutex_lock(w->lock);
	n = w->calls;
	pthread_mutex_unlock(w->lock);
	return n;
}

static struct engine_handle *open_file(struct rig *r, const char *path,
				       uint64_t tag, bool *keep_cache)
{
	struct engine_file f = file(path);
	struct engine_handle *h = NULL;

	assert_int_equal(engine_open(r->eng, &f, tag, &h, keep_cache), 0);
	assert_non_null(h);
	return h;
}

/* ---- Tests ----------------------------------------------------------------
 */

/*
 * Waits on one block from several threads and two handles, while the
 * block's one transfer is held back: one request for the file, every
 * wait answered right.  Then the whole file, checked.
 */
#define SHARERS 4
#define PER	4

struct sharer {
	struct engine_handle *h;
	struct wait w[PER];
	int id;
};

static void *share_main(void *arg)
{
	struct sharer *s = arg;

	for (int i = 0; i < PER; i++) {
		uint64_t off = (uint64_t)(s->id * PER + i) * 40000 + 3;

		wait_init(&s->w[i], want_big, off, 1000 + (uint64_t)i * 777);
		start(s->h, &s->w[i]);
	}
	return NULL;
}

static void waits_share_a_transfer(void **state)
{
	struct sharer sh[SHARERS];
	pthread_t t[SHARERS];
	struct engine_handle *h1, *h2;
	struct engine_stats st;
	struct wait whole;
	struct rig r;

	(void)state;
	rig_start(&r, true);
	stack_fault(
		"{\"kind\": \"stall\", \"path\": \"big.bin\", \"after\": 100, "
		"\"seconds\": 2, \"count\": 1}");
	h1 = open_file(&r, BIG, 1, NULL);
	h2 = open_file(&r, BIG, 2, NULL);
	for (int i = 0; i < SHARERS; i++) {
		sh[i].h = i % 2 ? h2 : h1;
		sh[i].id = i;
		assert_int_equal(
			pthread_create(&t[i], NULL, share_main, &sh[i]), 0);
	}
	for (int i = 0; i < SHARERS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < SHARERS; i++)
		for (int k = 0; k < PER; k++)
			answered_right(&sh[i].w[k]);
	assert_int_equal(stack_hub_requests("resolve-cache"), 1);

	wait_init(&whole, want_big, 0, BIG_SZ);
	start(h1, &whole);
	answered_right(&whole);
	assert_int_equal(whole.got, BIG_SZ);
	engine_get_stats(r.eng, &st);
	assert_int_equal(st.waits, SHARERS * PER + 1);
	assert_int_equal(st.blobs_open, 1);
	engine_close(h1);
	engine_close(h2);
	rig_stop(&r);
}

/*
 * A cancelled wait is answered -EINTR at once; another wait on the same
 * block and handle stays, and a file beside it reads as usual.
 */
static void cancel_one_wait(void **state)
{
	struct engine_handle *h, *hs;
	struct wait a, b, other;
	struct rig r;

	(void)state;
	rig_start(&r, true);
	stack_fault(
		"{\"kind\": \"stall\", \"path\": \"big.bin\", \"after\": 100, "
		"\"seconds\": 20, \"count\": 1}");
	h = open_file(&r, BIG, 1, NULL);
	wait_init(&a, want_big, 0, 4096);
	wait_init(&b, want_big, 4096, 4096);
	start(h, &a);
	start(h, &b);
	assert_int_equal(engine_cancel(h, &a), 1);
	assert_int_equal(calls_of(&a), 1);
	assert_int_equal(a.rc, -EINTR);
	assert_int_equal(engine_cancel(h, &a), 0);

	hs = open_file(&r, SMALL, 3, NULL);
	wait_init(&other, want_small, 0, SMALL_SZ);
	start(hs, &other);
	answered_right(&other);
	assert_int_equal(calls_of(&b), 0); /* still held by the stall */
	engine_close(hs);

	/* Stopping answers what is still pending, once. */
	rig_stop(&r);
	assert_int_equal(calls_of(&b), 1);
	assert_true(b.rc < 0);
	assert_int_equal(calls_of(&a), 1);
}

/*
 * Content that fails its hash: the wait that ends the file gets -EIO, the
 * hook hears of each open's tag, and the next open starts afresh (the
 * cache of the old pages is not to be kept) and reads it right.
 */
static void failed_hash_drops(void **state)
{
	struct engine_handle *h1, *h2, *h3;
	struct wait bad, good;
	bool keep = true;
	struct rig r;

	(void)state;
	rig_start(&r, true);
	stack_fault("{\"kind\": \"wrong_bytes\", \"path\": "
		    "\"resolve-cache.*small.bin\", "
		    "\"after\": 5000, \"count\": 1}");
	h1 = open_file(&r, SMALL, 11, NULL);
	h2 = open_file(&r, SMALL, 22, NULL);
	wait_init(&bad, want_small, 0, SMALL_SZ);
	start(h1, &bad);
	settle(&bad);
	assert_int_equal(bad.rc, -EIO);

	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += WAIT_S;
	pthread_mutex_lock(&hooks.lock);
	while (hooks.n < 2 &&
	       pthread_cond_timedwait(&hooks.cond, &hooks.lock, &until) == 0)
		;
	pthread_mutex_unlock(&hooks.lock);
	assert_true(hook_saw(11));
	assert_true(hook_saw(22));
	/* A handle of the dropped blob only fails now. */
	assert_int_equal(engine_wait(h2, 0, 10, 0, on_done, &bad), -EIO);
	engine_close(h1);
	engine_close(h2);

	h3 = open_file(&r, SMALL, 33, &keep);
	assert_false(keep);
	wait_init(&good, want_small, 0, SMALL_SZ);
	start(h3, &good);
	answered_right(&good);
	engine_close(h3);
	h3 = open_file(&r, SMALL, 33, &keep);
	assert_true(keep);
	engine_close(h3);
	rig_stop(&r);
}

/*
 * Two engines on one store (as a mount and a pull in two processes): the
 * second waits for the first's range lock and takes the blocks it marked
 * instead of fetching them again.
 */
static void two_engines_share_locks(void **state)
{
	struct engine_handle *ha, *hb;
	struct wait wa, wb;
	struct rig a, b;

	(void)state;
	rig_start(&a, true);
	rig_start(&b, false);
	stack_fault(
		"{\"kind\": \"stall\", \"path\": \"big.bin\", \"after\": 100, "
		"\"seconds\": 2, \"count\": 1}");
	ha = open_file(&a, BIG, 1, NULL);
	hb = open_file(&b, BIG, 1, NULL);
	wait_init(&wa, want_big, 1 << 20, 5000);
	wait_init(&wb, want_big, (1 << 20) + 100, 5000);
	start(ha, &wa);
	start(hb, &wb);
	answered_right(&wa);
	answered_right(&wb);
	assert_int_equal(stack_hub_requests("resolve-cache"), 1);
	engine_close(ha);
	engine_close(hb);
	rig_stop(&a);
	rig_stop(&b);
}

/* ---- Setup ----------------------------------------------------------------
 */

static int setup_all(void **state)
{
	size_t n;

	(void)state;
	if (!getenv("HUBFS_TEST_ENDPOINT") || !mkdtemp(tmpdir)) {
		fprintf(stderr, "run me under tests/harness/hubstack.py\n");
		return -1;
	}
	unsetenv("HF_TOKEN");
	unsetenv("HF_TOKEN_PATH");
	setenv("HF_HOME", tmpdir, 1);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	fs_log_open(NULL, true);
	push_test_commit();
	manifest = stack_load_json("HUBFS_TEST_MANIFEST");
	if (!manifest)
		return -1;
	want_big = stack_slurp(cJSON_GetStringValue(cJSON_GetObjectItem(
				       file_of(BIG), "content")),
			       &n);
	want_small = stack_slurp(cJSON_GetStringValue(cJSON_GetObjectItem(
					 file_of(SMALL), "content")),
				 &n);
	return want_big && want_small ? 0 : -1;
}

static int teardown_all(void **state)
{
	char cmd[sizeof(tmpdir) + 16];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	cJSON_Delete(manifest);
	free(want_big);
	free(want_small);
	curl_global_cleanup();
	return 0;
}

static int reset_emulator(void **state)
{
	(void)state;
	free(stack_control_ok("POST", "/_emu/reset", NULL));
	stack_log_clear();
	pthread_mutex_lock(&hooks.lock);
	hooks.n = 0;
	pthread_mutex_unlock(&hooks.lock);
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(waits_share_a_transfer, reset_emulator),
		cmocka_unit_test_setup(cancel_one_wait, reset_emulator),
		cmocka_unit_test_setup(failed_hash_drops, reset_emulator),
		cmocka_unit_test_setup(two_engines_share_locks, reset_emulator),
	};

	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}

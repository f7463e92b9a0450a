/*
 * test_hub_xfer.c - the transfer engine (hub.h, "The transfer engine")
 * against the Hub emulator and the nginx CDN, run under
 * tests/harness/hubstack.py (see tests/README.md).
 *
 * Every byte delivered is compared with the manifest's content files, at
 * its offset, as it arrives; each request must end with exactly one done().
 * Setup pushes a commit (branch "xfer-test") with a regular file large
 * enough for many ranges and forty small files for the pacing test.  Every
 * engine but two runs with a token, and at the end the CDN's log must show
 * that none ever reached it.
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

#include "hub.h"
#include "stack.h"

#define MODEL	 "acme/tiny-model"
#define BRANCH	 "xfer-test"
#define LFS	 "model.safetensors"
#define PLAIN	 "plain.bin"
#define PLAIN_SZ 400000
#define N_PACE	 40

static const char *endpoint, *cdn_log;
static cJSON *manifest, *tokens;
static char *want_lfs, *want_plain; /* the bytes of LFS and PLAIN */
static char tmpdir[] = "/tmp/hubfs-test-xfer-XXXXXX";

/* ---- Files, JSON and the emulator's control API ------------------------- */

static const char *user_token(const char *user)
{
	return stack_user_token(tokens, user);
}

static cJSON *repo_of(const char *id)
{
	cJSON *r;

	cJSON_ArrayForEach(r, cJSON_GetObjectItem(manifest, "repos"))
	{
		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r, "id")),
			   id) == 0)
			return r;
	}
	fail_msg("repo %s is not in the manifest", id);
	return NULL;
}

static const char *sha_of(const char *id, const char *ref)
{
	cJSON *refs = cJSON_GetObjectItem(repo_of(id), "refs");
	const char *sha = cJSON_GetStringValue(cJSON_GetObjectItem(refs, ref));

	assert_non_null(sha);
	return sha;
}

static cJSON *file_of(const char *id, const char *ref, const char *path)
{
	cJSON *commits = cJSON_GetObjectItem(repo_of(id), "commits");
	cJSON *c = cJSON_GetObjectItem(commits, sha_of(id, ref));
	cJSON *f = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "files"), path);

	assert_non_null(f);
	return f;
}

/* A file of the manifest as the engine wants it, etag included. */
static struct hub_file_ref ref_of(const char *id, const char *ref,
				  const char *path)
{
	cJSON *f = file_of(id, ref, path);
	bool lfs = cJSON_IsTrue(cJSON_GetObjectItem(f, "lfs")) ||
		   cJSON_IsTrue(cJSON_GetObjectItem(f, "xet"));
	struct hub_file_ref r = {
		.type = HUB_MODEL,
		.repo_id = id,
		.commit = sha_of(id, ref),
		.path = f->string, /* the manifest's key: lives as long */
		.size = (uint64_t)cJSON_GetNumberValue(
			cJSON_GetObjectItem(f, "size")),
		.etag = cJSON_GetStringValue(
			cJSON_GetObjectItem(f, lfs ? "sha256" : "oid")),
	};

	return r;
}

/* The file's bytes (caller frees). */
static char *content_of(const char *id, const char *ref, const char *path)
{
	size_t n = 0;
	char *p = stack_slurp(cJSON_GetStringValue(cJSON_GetObjectItem(
				      file_of(id, ref, path), "content")),
			      &n);

	assert_non_null(p);
	return p;
}

/* A Range header against a pattern: exact, or "*-END" for any start. */
static bool range_match(const char *pattern, const char *range)
{
	size_t n = strlen(pattern), m = strlen(range);

	if (pattern[0] != '*')
		return strcmp(pattern, range) == 0;
	return m >= n - 1 && strcmp(range + m - (n - 1), pattern + 1) == 0;
}

/*
 * Hub requests since the last stack_log_clear() whose path contains needle (and
 * whose Range matches range, and whose status is status, when set).
 */
static int hub_requests(const char *needle, const char *range, int status)
{
	char *text = stack_control_ok("GET", "/_emu/log", NULL);
	cJSON *log = cJSON_Parse(text), *e;
	int n = 0;

	cJSON_ArrayForEach(e, log)
	{
		const char *p =
			cJSON_GetStringValue(cJSON_GetObjectItem(e, "path"));
		const char *r =
			cJSON_GetStringValue(cJSON_GetObjectItem(e, "range"));
		int s = (int)cJSON_GetNumberValue(
			cJSON_GetObjectItem(e, "status"));

		if (p && strstr(p, needle) &&
		    (!range || (r && range_match(range, r))) &&
		    (!status || s == status))
			n++;
	}
	cJSON_Delete(log);
	free(text);
	return n;
}

/* Lines of the CDN log (nginx and fault CDN); each is passed to fn. */
static int cdn_lines(bool (*fn)(cJSON *e, const void *arg), const void *arg)
{
	size_t len;
	char *log = stack_slurp(cdn_log, &len), *line, *nl;
	int n = 0;

	assert_non_null(log);
	for (line = log; *line; line = nl ? nl + 1 : line + strlen(line)) {
		cJSON *e;

		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (!*line)
			continue;
		e = cJSON_Parse(line);
		assert_non_null(e);
		if (fn(e, arg))
			n++;
		cJSON_Delete(e);
	}
	free(log);
	return n;
}

/* cdn_lines once the servers have logged (stack_poll_count). */
struct cdn_match {
	bool (*fn)(cJSON *e, const void *arg);
	const void *arg;
};

static int cdn_match_count(const void *arg)
{
	const struct cdn_match *m = arg;

	return cdn_lines(m->fn, m->arg);
}

static int cdn_lines_logged(bool (*fn)(cJSON *e, const void *arg),
			    const void *arg, int want)
{
	struct cdn_match m = { fn, arg };

	return stack_poll_count(cdn_match_count, &m, want);
}

static bool has_range(cJSON *e, const void *range)
{
	cJSON *r = cJSON_GetObjectItem(e, "range");

	return cJSON_IsString(r) && range_match(range, r->valuestring);
}

/* Distinct connections of nginx's log lines from line `from` on. */
struct conns {
	int from, line;
	cJSON *seen;
};

static bool new_conn(cJSON *e, const void *arg)
{
	struct conns *c = (struct conns *)arg;
	cJSON *conn = cJSON_GetObjectItem(e, "conn");
	char key[32];

	if (c->line++ < c->from ||
	    strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(e, "server")),
		   "nginx") != 0)
		return false;
	snprintf(key, sizeof(key), "%.0f", cJSON_GetNumberValue(conn));
	if (cJSON_GetObjectItem(c->seen, key))
		return false;
	cJSON_AddTrueToObject(c->seen, key);
	return true;
}

static bool any_line(cJSON *e, const void *arg)
{
	(void)e;
	(void)arg;
	return true;
}

static int cdn_conns_since(int from)
{
	struct conns c = { from, 0, cJSON_CreateObject() };
	int n = cdn_lines(new_conn, &c);

	cJSON_Delete(c.seen);
	return n;
}

/* ---- Requests and what came of them ------------------------------------- */

struct batch {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int finished; /* done() calls */
	int order;    /* the next completion's number */
	pthread_t cb_thread;
	bool have_thread, wrong_thread;

	/* The ordering test holds the engine in its first data() call. */
	bool hold, holding, released;
	struct hub_xfer *x; /* to submit from done() while stopping */
};

struct job {
	struct batch *b;
	struct hub_file_ref ref;
	uint64_t off, len;
	const char *want; /* the whole file's bytes */
	uint64_t got;
	bool bad_offset, bad_bytes;
	int rc, calls, order;
	struct hub_error err;
	int late_submit; /* what a submit from done() returned */
};

static void note_thread(struct batch *b)
{
	pthread_mutex_lock(&b->lock);
	if (!b->have_thread) {
		b->cb_thread = pthread_self();
		b->have_thread = true;
	} else if (!pthread_equal(b->cb_thread, pthread_self())) {
		b->wrong_thread = true;
	}
	pthread_mutex_unlock(&b->lock);
}

static int job_data(void *arg, uint64_t off, const void *buf, size_t n)
{
	struct job *j = arg;
	struct batch *b = j->b;

	note_thread(b);
	if (off != j->off + j->got || j->got + n > j->len) {
		if (!j->bad_offset)
			fprintf(stderr,
				"job [%llu,+%llu) %s: data at %llu+%zu after "
				"%llu\n",
				(unsigned long long)j->off,
				(unsigned long long)j->len, j->ref.path,
				(unsigned long long)off, n,
				(unsigned long long)j->got);
		j->bad_offset = true;
	} else if (memcmp(buf, j->want + off, n) != 0)
		j->bad_bytes = true;
	j->got += n;
	pthread_mutex_lock(&b->lock);
	if (b->hold) { /* the first data of all: keep the engine here */
		b->hold = false;
		b->holding = true;
		pthread_cond_broadcast(&b->cond);
		while (!b->released)
			pthread_cond_wait(&b->cond, &b->lock);
	}
	pthread_mutex_unlock(&b->lock);
	return 0;
}

static const struct hub_xfer_ops job_ops;

static void job_done(void *arg, int rc, const struct hub_error *err)
{
	struct job *j = arg;
	struct batch *b = j->b;

	note_thread(b);
	if (b->x)
		j->late_submit = hub_xfer_submit(b->x, &j->ref, 0, 1,
						 HUB_XFER_DEMAND, &job_ops, j);
	pthread_mutex_lock(&b->lock);
	j->rc = rc;
	j->err = *err;
	j->calls++;
	j->order = b->order++;
	b->finished++;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

static const struct hub_xfer_ops job_ops = { job_data, job_done };

static void batch_init(struct batch *b)
{
	memset(b, 0, sizeof(*b));
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->cond, NULL);
}

static void batch_destroy(struct batch *b)
{
	pthread_mutex_destroy(&b->lock);
	pthread_cond_destroy(&b->cond);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wait until n done() calls came, at most `seconds`. */
static void batch_wait(struct batch *b, int n, int seconds)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += seconds;
	pthread_mutex_lock(&b->lock);
	while (b->finished < n)
		if (pthread_cond_timedwait(&b->cond, &b->lock, &until) ==
		    ETIMEDOUT)
			break;
	n -= b->finished;
	pthread_mutex_unlock(&b->lock);
	if (n > 0)
		fail_msg("%d requests still not done after %d s", n, seconds);
}

static void job_submit(struct hub_xfer *x, struct batch *b, struct job *j,
		       struct hub_file_ref ref, const char *want, uint64_t off,
		       uint64_t len, enum hub_xfer_priority prio)
{
	memset(j, 0, sizeof(*j));
	j->b = b;
	j->ref = ref;
	j->want = want;
	j->off = off;
	j->len = len;
	j->rc = 1;
	assert_int_equal(hub_xfer_submit(x, &ref, off, len, prio, &job_ops, j),
			 0);
}

/* The request succeeded: once, every byte, right, in order. */
static void job_ok(const struct job *j)
{
	char buf[400];

	if (j->rc != 0)
		fail_msg("[%llu, +%llu) of %s: %d %s",
			 (unsigned long long)j->off, (unsigned long long)j->len,
			 j->ref.path, j->rc,
			 hub_error_describe(&j->err, buf, sizeof(buf)));
	assert_int_equal(j->calls, 1);
	assert_false(j->bad_offset);
	assert_false(j->bad_bytes);
	assert_int_equal(j->got, j->len);
}

/* ---- Clients and engines ------------------------------------------------ */

static struct hub_client *client_at(const char *ep, const char *tok, long stall)
{
	struct hub_config cfg = { .endpoint = ep, .stall_seconds = stall };
	struct hub_client *c = NULL;

	if (tok)
		setenv("HF_TOKEN", tok, 1);
	assert_int_equal(hub_client_new(&c, &cfg), 0);
	unsetenv("HF_TOKEN");
	return c;
}

/* A client with alice's token: the CDN must never see it. */
static struct hub_client *client(long stall)
{
	return client_at(endpoint, user_token("alice"), stall);
}

static struct hub_xfer *engine(struct hub_client *c, unsigned max)
{
	struct hub_xfer *x = NULL;

	assert_int_equal(hub_xfer_start(&x, c, max), 0);
	assert_non_null(x);
	return x;
}

/* ---- Setup -------------------------------------------------------------- */

/* A branch with a 400 kB regular file and N_PACE small ones. */
static void push_test_commit(void)
{
	cJSON *body = cJSON_CreateObject(), *files = cJSON_CreateObject();
	cJSON *plain = cJSON_CreateObject();
	char *text;

	cJSON_AddStringToObject(body, "repo", MODEL);
	cJSON_AddStringToObject(body, "type", "model");
	cJSON_AddStringToObject(body, "branch", BRANCH);
	cJSON_AddStringToObject(body, "message", "Files for the engine test");
	cJSON_AddNumberToObject(plain, "size", PLAIN_SZ);
	cJSON_AddNumberToObject(plain, "seed", 77);
	cJSON_AddItemToObject(files, PLAIN, plain);
	for (int i = 0; i < N_PACE; i++) {
		char path[32], content[64];

		snprintf(path, sizeof(path), "pace/f%02d.txt", i);
		snprintf(content, sizeof(content), "pacing file %d\n", i);
		cJSON_AddStringToObject(files, path, content);
	}
	cJSON_AddItemToObject(body, "files", files);
	text = cJSON_PrintUnformatted(body);
	free(stack_control_ok("POST", "/_emu/commit", text));
	free(text);
	cJSON_Delete(body);
}

static int setup_all(void **state)
{
	char home[sizeof(tmpdir) + 8];

	(void)state;
	endpoint = getenv("HUBFS_TEST_ENDPOINT");
	cdn_log = getenv("HUBFS_TEST_CDN_LOG");
	tokens = stack_load_json("HUBFS_TEST_TOKENS");
	if (!endpoint || !cdn_log || !tokens || !mkdtemp(tmpdir)) {
		fprintf(stderr, "run me under tests/harness/hubstack.py\n");
		return -1;
	}
	snprintf(home, sizeof(home), "%s/home", tmpdir);
	mkdir(home, 0700);
	setenv("HF_HOME", home, 1);
	unsetenv("HF_TOKEN");
	unsetenv("HUGGING_FACE_HUB_TOKEN");
	unsetenv("HF_TOKEN_PATH");
	unsetenv("HF_ENDPOINT");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	push_test_commit();
	manifest = stack_load_json("HUBFS_TEST_MANIFEST"); /* with the commit */
	if (!manifest)
		return -1;
	want_lfs = content_of(MODEL, BRANCH, LFS);
	want_plain = content_of(MODEL, BRANCH, PLAIN);
	return 0;
}

static int teardown_all(void **state)
{
	char cmd[sizeof(tmpdir) + 16];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	cJSON_Delete(manifest);
	cJSON_Delete(tokens);
	free(want_lfs);
	free(want_plain);
	curl_global_cleanup();
	return 0;
}

static int reset_emulator(void **state)
{
	(void)state;
	free(stack_control_ok("POST", "/_emu/reset", NULL));
	stack_log_clear();
	return 0;
}

/* ---- Ranges ------------------------------------------------------------- */

#define N_RANGES 32

/* Ranges of every shape: tiny, odd, across the middle, the last byte. */
static void range_n(uint64_t size, int i, uint64_t *off, uint64_t *len)
{
	uint64_t step = size / N_RANGES;

	switch (i % 4) {
	case 0:
		*off = (uint64_t)i * step;
		*len = step;
		break;
	case 1:
		*off = (uint64_t)i * step + 7;
		*len = 1;
		break;
	case 2:
		*off = (uint64_t)i * step / 3;
		*len = size / 2;
		break;
	default:
		*off = size - 1 - (uint64_t)i;
		*len = 1 + (uint64_t)i;
	}
}

static void many_ranges(void **state)
{
	struct hub_client *c = client(10);
	struct hub_xfer *x = engine(c, 8);
	struct hub_file_ref lfs = ref_of(MODEL, BRANCH, LFS);
	struct hub_file_ref plain = ref_of(MODEL, BRANCH, PLAIN);
	struct job jobs[2 * N_RANGES + 2];
	int cdn_before = cdn_lines(any_line, NULL);
	struct hub_xfer_stats st;
	struct batch b;
	uint64_t bytes = 0;
	int n = 0;

	(void)state;
	batch_init(&b);
	for (int i = 0; i < N_RANGES; i++) {
		uint64_t off, len;

		range_n(lfs.size, i, &off, &len);
		job_submit(x, &b, &jobs[n++], lfs, want_lfs, off, len,
			   i % 3 ? HUB_XFER_READAHEAD : HUB_XFER_DEMAND);
		range_n(plain.size, i, &off, &len);
		job_submit(x, &b, &jobs[n++], plain, want_plain, off, len,
			   i % 3 ? HUB_XFER_DEMAND : HUB_XFER_READAHEAD);
	}
	job_submit(x, &b, &jobs[n++], lfs, want_lfs, 0, lfs.size,
		   HUB_XFER_READAHEAD);
	job_submit(x, &b, &jobs[n++], plain, want_plain, 0, plain.size,
		   HUB_XFER_READAHEAD);
	batch_wait(&b, n, 60);
	for (int i = 0; i < n; i++) {
		job_ok(&jobs[i]);
		bytes += jobs[i].len;
	}
	assert_false(b.wrong_thread);
	assert_false(pthread_equal(b.cb_thread, pthread_self()));

	/* One resolve per file; every other range went to its target. */
	assert_int_equal(hub_requests("/resolve/" BRANCH "/", NULL, 0), 0);
	{
		char needle[128];

		snprintf(needle, sizeof(needle), "/resolve/%s/%s", lfs.commit,
			 LFS);
		assert_int_equal(hub_requests(needle, NULL, 0), 1);
		snprintf(needle, sizeof(needle), "/resolve/%s/%s", lfs.commit,
			 PLAIN);
		assert_int_equal(hub_requests(needle, NULL, 0), 1);
		snprintf(needle, sizeof(needle),
			 "/resolve-cache/models/%s/%s/%s", MODEL, plain.commit,
			 PLAIN);
		assert_int_equal(hub_requests(needle, NULL, 0), N_RANGES + 1);
	}
	/* Keep-alive: 33 CDN requests, never more connections than slots. */
	assert_true(cdn_conns_since(cdn_before) <= 8);
	/*
	 * The transfer thread publishes in_flight and queued once per turn
	 * of its loop, which may come just after the last completion.
	 */
	for (int i = 0; i < 100; i++) {
		hub_xfer_get_stats(x, &st);
		if (st.in_flight == 0 && st.queued == 0)
			break;
		usleep(20000);
	}
	assert_int_equal(st.bytes, bytes);
	assert_int_equal(st.resolves, 2);
	assert_int_equal(st.requests, n + 2); /* + the two redirects */
	assert_int_equal(st.retries, 0);
	assert_int_equal(st.in_flight, 0);
	assert_int_equal(st.queued, 0);
	hub_xfer_stop(x);
	hub_client_free(c);
	batch_destroy(&b);
}

/* Other kinds of files: a xet file, a private LFS file, a dataset's. */
static void other_files(void **state)
{
	struct hub_client *c = client(10);
	struct hub_xfer *x = engine(c, 4);
	struct {
		const char *id, *path;
		enum hub_repo_type type;
	} files[] = {
		{ MODEL, "weights/xet-model.bin", HUB_MODEL },
		{ "alice/private-notes", "secret.bin", HUB_MODEL },
		{ "alice/private-notes", "notes.txt", HUB_MODEL },
		{ MODEL, "docs/with space/na\xc3\xafve caf\xc3\xa9.txt",
		  HUB_MODEL },
		{ "acme/tiny-dataset", "data/train.csv", HUB_DATASET },
	};
	struct job jobs[5];
	char *want[5];
	struct batch b;

	(void)state;
	batch_init(&b);
	for (int i = 0; i < 5; i++) {
		struct hub_file_ref r =
			ref_of(files[i].id, "main", files[i].path);

		r.type = files[i].type;
		want[i] = content_of(files[i].id, "main", files[i].path);
		job_submit(x, &b, &jobs[i], r, want[i], r.size / 3,
			   r.size - r.size / 3, HUB_XFER_DEMAND);
	}
	batch_wait(&b, 5, 30);
	for (int i = 0; i < 5; i++) {
		job_ok(&jobs[i]);
		free(want[i]);
	}
	hub_xfer_stop(x);
	hub_client_free(c);
	batch_destroy(&b);
}

/*
 * xet_probe: a Xet file whose resolve carries the Xet markers ends with
 * -EXDEV and no byte, and is remembered (the next probe asks nobody); the
 * same file without the probe, and an LFS file with it, read as usual.
 */
static void xet_probe(void **state)
{
	struct hub_client *c = client(10);
	struct hub_xfer *x = engine(c, 4);
	struct hub_file_ref xet =
		ref_of(MODEL, "main", "weights/xet-model.bin");
	struct hub_file_ref lfs = ref_of(MODEL, "main", LFS);
	char *want_xet = content_of(MODEL, "main", "weights/xet-model.bin");
	char *main_lfs = content_of(MODEL, "main", LFS);
	struct job jobs[4];
	struct batch b;

	(void)state;
	if (!cJSON_IsTrue(cJSON_GetObjectItem(
		    file_of(MODEL, "main", "weights/xet-model.bin"),
		    "xetBuilt")))
		skip(); /* no Xet objects: no markers either */
	batch_init(&b);
	stack_log_clear();
	assert_false(hub_xfer_resolve_xet(x, &xet));
	xet.xet_probe = true;
	job_submit(x, &b, &jobs[0], xet, want_xet, 0, xet.size,
		   HUB_XFER_DEMAND);
	batch_wait(&b, 1, 30);
	assert_int_equal(jobs[0].rc, -EXDEV);
	assert_int_equal(jobs[0].got, 0);
	assert_true(hub_xfer_resolve_xet(x, &xet));
	assert_int_equal(hub_requests("/resolve/", NULL, 302), 1);

	job_submit(x, &b, &jobs[1], xet, want_xet, 10, 100, HUB_XFER_READAHEAD);
	batch_wait(&b, 2, 30);
	assert_int_equal(jobs[1].rc, -EXDEV);
	assert_int_equal(jobs[1].got, 0);
	assert_int_equal(hub_requests("/resolve/", NULL, 0), 1);

	xet.xet_probe = false; /* the bridge, as before */
	job_submit(x, &b, &jobs[2], xet, want_xet, 0, xet.size,
		   HUB_XFER_DEMAND);
	lfs.xet_probe = true; /* no markers: read as usual */
	job_submit(x, &b, &jobs[3], lfs, main_lfs, 0, lfs.size,
		   HUB_XFER_DEMAND);
	batch_wait(&b, 4, 30);
	job_ok(&jobs[2]);
	job_ok(&jobs[3]);
	assert_false(hub_xfer_resolve_xet(x, &lfs));
	hub_xfer_stop(x);
	hub_client_free(c);
	batch_destroy(&b);
	free(want_xet);
	free(main_lfs);
}

/*
 * One slot: while the engine is held inside the first request's data(),
 * readahead and then demand requests are queued; the demand ones must all
 * run first.
 */
static void demand_first(void **state)
{
	struct hub_client *c = client(10);
	struct hub_xfer *x = engine(c, 1);
	struct hub_file_ref plain = ref_of(MODEL, BRANCH, PLAIN);
	char *want = content_of(MODEL, BRANCH, PLAIN);
	struct job jobs[9];
	struct batch b;

	(void)state;
	batch_init(&b);
	b.hold = true;
	job_submit(x, &b, &jobs[0], plain, want, 0, 100000, HUB_XFER_READAHEAD);
	pthread_mutex_lock(&b.lock);
	while (!b.holding)
		pthread_cond_wait(&b.cond, &b.lock);
	pthread_mutex_unlock(&b.lock);
	for (int i = 1; i <= 4; i++)
		job_submit(x, &b, &jobs[i], plain, want, (uint64_t)i * 1000,
			   1000, HUB_XFER_READAHEAD);
	for (int i = 5; i <= 8; i++)
		job_submit(x, &b, &jobs[i], plain, want, (uint64_t)i * 1000,
			   1000, HUB_XFER_DEMAND);
	pthread_mutex_lock(&b.lock);
	b.released = true;
	pthread_cond_broadcast(&b.cond);
	pthread_mutex_unlock(&b.lock);
	batch_wait(&b, 9, 30);
	for (int i = 0; i < 9; i++)
		job_ok(&jobs[i]);
	/* The held one, then demand in order, then readahead in order. */
	assert_int_equal(jobs[0].order, 0);
	for (int i = 5; i <= 8; i++)
		assert_int_equal(jobs[i].order, i - 4);
	for (int i = 1; i <= 4; i++)
		assert_int_equal(jobs[i].order, i + 4);
	hub_xfer_stop(x);
	hub_client_free(c);
	free(want);
	batch_destroy(&b);
}

/* ---- Errors ------------------------------------------------------------- */

/*
 * One request on a fresh engine of client c; returns its job (rc, err,
 * got).  want: the file's bytes, or NULL when none should come.
 */
static struct job one(struct hub_client *c, struct hub_file_ref ref,
		      const char *want, uint64_t off, uint64_t len)
{
	struct hub_xfer *x = engine(c, 4);
	char *none = calloc(1, ref.size + 1);
	struct batch b;
	struct job j;

	assert_non_null(none);
	batch_init(&b);
	memset(&j, 0, sizeof(j));
	job_submit(x, &b, &j, ref, want ? want : none, off, len,
		   HUB_XFER_DEMAND);
	batch_wait(&b, 1, 60);
	hub_xfer_stop(x);
	assert_int_equal(j.calls, 1);
	assert_false(j.bad_offset);
	assert_false(j.bad_bytes);
	free(none);
	batch_destroy(&b);
	j.b = NULL;
	j.want = NULL;
	return j;
}

static void hub_errors(void **state)
{
	struct hub_client *alice = client(5);
	struct hub_client *anon = client_at(endpoint, NULL, 5);
	struct hub_file_ref r = ref_of(MODEL, BRANCH, "config.json");
	struct job j;

	(void)state;
	/* 404: at once, ENOENT. */
	r.path = "no/such/file.txt";
	j = one(alice, r, NULL, 0, 1);
	assert_int_equal(j.rc, -EIO);
	assert_int_equal(j.err.status, 404);
	assert_string_equal(j.err.code, "EntryNotFound");
	assert_int_equal(hub_error_errno(&j.err), ENOENT);
	assert_int_equal(j.got, 0);
	/* A private file without the token: EACCES. */
	r = ref_of("alice/private-notes", "main", "secret.bin");
	j = one(anon, r, NULL, 0, 10);
	assert_int_equal(j.rc, -EIO);
	assert_int_equal(hub_error_errno(&j.err), EACCES);
	/* Gated, not approved (bob). */
	{
		struct hub_client *bob =
			client_at(endpoint, user_token("bob"), 5);

		r = ref_of("bigco/gated-model", "main", "config.json");
		j = one(bob, r, NULL, 0, 1);
		assert_int_equal(j.rc, -EIO);
		assert_string_equal(j.err.code, "GatedRepo");
		assert_int_equal(hub_error_errno(&j.err), EACCES);
		hub_client_free(bob);
	}
	hub_client_free(alice);
	hub_client_free(anon);
}

/* A Hub that cannot be reached fails at once. */
static void unreachable(void **state)
{
	struct hub_client *c = client_at("http://127.0.0.1:1", NULL, 30);
	struct hub_file_ref r = ref_of(MODEL, BRANCH, LFS);
	double t0 = now_s();
	struct job j;

	(void)state;
	j = one(c, r, NULL, 0, 10);
	assert_int_equal(j.rc, -EIO);
	assert_int_equal(j.err.status, 0);
	assert_int_equal(j.err.transport, CURLE_COULDNT_CONNECT);
	assert_true(now_s() - t0 < 5); /* no backoff, nothing like 30 s */
	hub_client_free(c);
}

static void bad_submits(void **state)
{
	struct hub_client *c = client(5);
	struct hub_xfer *x = engine(c, 2);
	struct hub_file_ref r = ref_of(MODEL, BRANCH, LFS), bad;
	struct hub_config off = { .endpoint = endpoint, .offline = true };
	struct hub_client *offline = NULL;
	struct job j = { 0 };

	(void)state;
	assert_int_equal(
		hub_xfer_submit(x, &r, 0, 0, HUB_XFER_DEMAND, &job_ops, &j),
		-EINVAL);
	assert_int_equal(hub_xfer_submit(x, &r, r.size - 1, 2, HUB_XFER_DEMAND,
					 &job_ops, &j),
			 -EINVAL);
	assert_int_equal(hub_xfer_submit(x, &r, UINT64_MAX, 2, HUB_XFER_DEMAND,
					 &job_ops, &j),
			 -EINVAL);
	bad = r;
	bad.commit = "main";
	assert_int_equal(
		hub_xfer_submit(x, &bad, 0, 1, HUB_XFER_DEMAND, &job_ops, &j),
		-EINVAL);
	bad = r;
	bad.path = "../etc/passwd";
	assert_int_equal(
		hub_xfer_submit(x, &bad, 0, 1, HUB_XFER_DEMAND, &job_ops, &j),
		-EINVAL);
	bad = r;
	bad.etag = "W/\"abc\"";
	assert_int_equal(
		hub_xfer_submit(x, &bad, 0, 1, HUB_XFER_DEMAND, &job_ops, &j),
		-EINVAL);
	hub_xfer_stop(x);
	hub_xfer_stop(NULL);
	assert_int_equal(hub_client_new(&offline, &off), 0);
	x = engine(offline, 2);
	assert_int_equal(
		hub_xfer_submit(x, &r, 0, 1, HUB_XFER_DEMAND, &job_ops, &j),
		-ENETDOWN);
	hub_xfer_stop(x);
	assert_int_equal(j.calls, 0);
	hub_client_free(offline);
	hub_client_free(c);
}

/* The etag of another file: an error before a byte is delivered. */
static void wrong_etag(void **state)
{
	struct hub_client *c = client(5);
	struct hub_file_ref lfs = ref_of(MODEL, BRANCH, LFS);
	struct hub_file_ref plain = ref_of(MODEL, BRANCH, PLAIN);
	struct hub_file_ref other =
		ref_of(MODEL, BRANCH, "weights/xet-model.bin");
	struct hub_file_ref cfg = ref_of(MODEL, BRANCH, "config.json");
	struct job j;

	(void)state;
	/* The resolve's X-Linked-Etag names another file. */
	lfs.etag = other.etag;
	j = one(c, lfs, NULL, 0, 100);
	assert_int_equal(j.rc, -EIO);
	assert_non_null(strstr(j.err.message, "wrong file"));
	assert_int_equal(j.got, 0);
	/* Once the target is known, the CDN's ETag does. */
	lfs.etag = ref_of(MODEL, BRANCH, LFS).etag;
	j = one(c, lfs, want_lfs, 0, 100);
	assert_int_equal(j.rc, 0);
	stack_log_clear();
	lfs.etag = other.etag;
	j = one(c, lfs, NULL, 100, 100);
	assert_int_equal(j.rc, -EIO);
	assert_non_null(strstr(j.err.message, "wrong file"));
	assert_int_equal(j.got, 0);
	assert_int_equal(hub_requests("/resolve/", NULL, 0), 0);
	/* A regular file: the resolve-cache's ETag, a git sha1. */
	plain.etag = cfg.etag;
	j = one(c, plain, NULL, 10, 100);
	assert_int_equal(j.rc, -EIO);
	assert_non_null(strstr(j.err.message, "wrong file"));
	assert_int_equal(j.got, 0);
	hub_client_free(c);
}

/* ---- Faults ------------------------------------------------------------- */

/*
 * A fresh client per case: a remembered target would bypass the fault.
 * The reset fault sends some bytes, then a TCP RST, which may destroy
 * what the client had not read yet: the resumed Range starts wherever the
 * delivered bytes ended (the stall case in stall_times_out pins the exact
 * offset); the bytes must come out right all the same.
 */
static void fault_cut_resumes(void **state)
{
	struct hub_client *c = client(5);
	struct hub_file_ref lfs = ref_of(MODEL, BRANCH, LFS);
	int before = cdn_lines(has_range, "*-299999");
	struct job j;

	(void)state;
	stack_fault(
		"{\"kind\": \"reset\", \"target\": \"cdn\", \"after\": 100000, "
		"\"count\": 1}");
	j = one(c, lfs, want_lfs, 0, 300000);
	job_ok(&j);
	stack_faults_fired();
	assert_int_equal(cdn_lines_logged(has_range, "*-299999", before + 2) -
				 before,
			 2);
	hub_client_free(c);

	/* The Hub's resolve-cache cut mid-body (a regular file). */
	c = client(5);
	stack_fault("{\"kind\": \"reset\", \"path\": \"/resolve-cache/\", "
		    "\"after\": 5000, \"count\": 1}");
	j = one(c, ref_of(MODEL, BRANCH, PLAIN), want_plain, 1000, 20000);
	job_ok(&j);
	stack_faults_fired();
	assert_int_equal(hub_requests("/resolve-cache/", "*-20999", 0), 2);
	hub_client_free(c);
}

static void fault_status_retried(void **state)
{
	struct hub_client *c = client(10);
	struct hub_file_ref lfs = ref_of(MODEL, BRANCH, LFS);
	struct job j;
	double t0;

	(void)state;
	/* 503 from the resolve, then 502 from the CDN. */
	stack_fault("{\"kind\": \"status\", \"status\": 503, \"path\": "
		    "\"/resolve/\", \"count\": 1}");
	stack_fault(
		"{\"kind\": \"status\", \"status\": 502, \"target\": \"cdn\", "
		"\"count\": 1}");
	j = one(c, lfs, want_lfs, 5, 5000);
	job_ok(&j);
	stack_faults_fired();
	hub_client_free(c);

	/* 429 with Retry-After only: waited for (1 + 1 s), then fine. */
	c = client(10);
	stack_fault("{\"kind\": \"rate_limit\", \"header\": \"retry_after\", "
		    "\"t\": "
		    "1, \"path\": \"/resolve/\", \"count\": 1}");
	t0 = now_s();
	j = one(c, lfs, want_lfs, 5, 5000);
	job_ok(&j);
	assert_true(now_s() - t0 >= 1.9);
	stack_faults_fired();
	hub_client_free(c);

	/* 429 with RateLimit r=0;t=1. */
	c = client(10);
	stack_fault(
		"{\"kind\": \"rate_limit\", \"header\": \"ratelimit\", \"t\": "
		"1, \"path\": \"/resolve/\", \"count\": 1}");
	j = one(c, lfs, want_lfs, 5, 5000);
	job_ok(&j);
	stack_faults_fired();
	hub_client_free(c);
}

static void fault_range_200(void **state)
{
	struct hub_client *c = client(5);
	struct job j;

	(void)state;
	stack_fault(
		"{\"kind\": \"range_200\", \"target\": \"cdn\", \"count\": 1}");
	j = one(c, ref_of(MODEL, BRANCH, LFS), want_lfs, 70000, 3000);
	job_ok(&j);
	stack_fault("{\"kind\": \"range_200\", \"path\": \"/resolve-cache/\", "
		    "\"count\": 1}");
	j = one(c, ref_of(MODEL, BRANCH, PLAIN), want_plain, 123456, 4567);
	job_ok(&j);
	stack_faults_fired();
	hub_client_free(c);
}

/* Signed URLs that expire: the remembered one is dropped, resolved anew. */
static void expired_target(void **state)
{
	struct hub_client *c = client(10);
	struct hub_file_ref lfs = ref_of(MODEL, BRANCH, LFS);
	char needle[128];
	struct job j;

	(void)state;
	snprintf(needle, sizeof(needle), "/resolve/%s/%s", lfs.commit, LFS);
	stack_configure("{\"cdn_url_ttl\": 2}");
	j = one(c, lfs, want_lfs, 0, 1000);
	job_ok(&j);
	j = one(c, lfs, want_lfs, 1000,
		1000); /* the remembered URL, still good */
	job_ok(&j);
	assert_int_equal(hub_requests(needle, NULL, 0), 1);
	sleep(3);
	j = one(c, lfs, want_lfs, 2000, 1000); /* nginx: 403, expired */
	job_ok(&j);
	assert_int_equal(hub_requests(needle, NULL, 0), 2);
	hub_client_free(c);
}

/* No byte for longer than stall_seconds: -ETIMEDOUT, soon after. */
static void stall_times_out(void **state)
{
	struct hub_client *c = client(2);
	double t0, took;
	struct job j;

	(void)state;
	stack_fault("{\"kind\": \"stall\", \"target\": \"cdn\", \"after\": -1, "
		    "\"seconds\": 20}");
	t0 = now_s();
	j = one(c, ref_of(MODEL, BRANCH, LFS), NULL, 0, 1000);
	took = now_s() - t0;
	assert_int_equal(j.rc, -ETIMEDOUT);
	assert_int_equal(j.got, 0);
	assert_true(j.err.transport != 0 || j.err.message[0]);
	/* At least the stall time; the upper bound only catches a hang. */
	if (took < 1.9 || took > 30)
		fail_msg("timed out after %.2f s, stall_seconds is 2", took);
	free(stack_control_ok("DELETE", "/_emu/faults", NULL));
	hub_client_free(c);

	/*
	 * A stall after some bytes: given up on after 1 s (a third of 3),
	 * resumed from there after 1 s of backoff.
	 */
	c = client(3);
	stack_fault("{\"kind\": \"stall\", \"path\": \"/resolve-cache/\", "
		    "\"after\": 1000, \"seconds\": 10, \"count\": 1}");
	j = one(c, ref_of(MODEL, BRANCH, PLAIN), want_plain, 0, 5000);
	job_ok(&j);
	stack_faults_fired();
	assert_int_equal(hub_requests("/resolve-cache/", "bytes=1000-4999", 0),
			 1);
	hub_client_free(c);
}

/*
 * A resolvers quota of 20 per 3 s and 40 files to resolve: paced by the
 * RateLimit headers, the engine never runs into a 429.
 */
static void paced_resolves(void **state)
{
	struct hub_client *c = client(30);
	struct hub_xfer *x = engine(c, 4);
	struct job jobs[N_PACE];
	char *want[N_PACE];
	struct hub_xfer_stats st;
	struct batch b;

	(void)state;
	stack_configure("{\"quotas\": {\"resolvers\": 20}, \"window\": 3}");
	stack_log_clear();
	batch_init(&b);
	for (int i = 0; i < N_PACE; i++) {
		char path[32];
		struct hub_file_ref r;

		snprintf(path, sizeof(path), "pace/f%02d.txt", i);
		r = ref_of(MODEL, BRANCH, path);
		want[i] = content_of(MODEL, BRANCH, path);
		job_submit(x, &b, &jobs[i], r, want[i], 0, r.size,
			   HUB_XFER_READAHEAD);
	}
	batch_wait(&b, N_PACE, 60);
	for (int i = 0; i < N_PACE; i++) {
		job_ok(&jobs[i]);
		free(want[i]);
	}
	hub_xfer_get_stats(x, &st);
	assert_int_equal(st.resolves, N_PACE);
	assert_int_equal(st.retries, 0);
	assert_int_equal(hub_requests("/resolve/", NULL, 0), N_PACE);
	assert_int_equal(hub_requests("/", NULL, 429), 0);
	hub_xfer_stop(x);
	hub_client_free(c);
	batch_destroy(&b);
}

/* ---- Stop --------------------------------------------------------------- */

static void stop_cancels_all(void **state)
{
	struct hub_client *c = client(30);
	struct hub_xfer *x = engine(c, 4);
	struct hub_file_ref lfs = ref_of(MODEL, BRANCH, LFS);
	char *want = content_of(MODEL, BRANCH, LFS);
	struct hub_xfer_stats st;
	struct job jobs[16];
	struct batch b;
	double t0;

	(void)state;
	/* Every CDN response sends 1000 bytes, then nothing for 5 s. */
	stack_fault(
		"{\"kind\": \"stall\", \"target\": \"cdn\", \"after\": 1000, "
		"\"seconds\": 5}");
	batch_init(&b);
	for (int i = 0; i < 16; i++)
		job_submit(x, &b, &jobs[i], lfs, want, (uint64_t)i * 50000,
			   20000, HUB_XFER_READAHEAD);
	t0 = now_s();
	do {
		hub_xfer_get_stats(x, &st);
		if (now_s() - t0 > 20)
			fail_msg("never 4 in flight with bytes: %u, %llu",
				 st.in_flight, (unsigned long long)st.bytes);
		usleep(20000);
	} while (st.in_flight < 4 || st.bytes < 4000);
	assert_int_equal(st.queued, 12);
	b.x = x; /* done() tries to submit again: refused */
	t0 = now_s();
	hub_xfer_stop(x);
	assert_true(now_s() - t0 <
		    15); /* stalled transfers are not waited for */
	pthread_mutex_lock(&b.lock);
	assert_int_equal(b.finished, 16);
	pthread_mutex_unlock(&b.lock);
	for (int i = 0; i < 16; i++) {
		assert_int_equal(jobs[i].calls, 1);
		assert_int_equal(jobs[i].rc, -ECANCELED);
		assert_int_equal(jobs[i].late_submit, -ECANCELED);
		assert_false(jobs[i].bad_offset);
		assert_false(jobs[i].bad_bytes);
	}
	/* Nothing after stop returned. */
	usleep(100000);
	pthread_mutex_lock(&b.lock);
	assert_int_equal(b.finished, 16);
	pthread_mutex_unlock(&b.lock);
	free(stack_control_ok("DELETE", "/_emu/faults", NULL));
	hub_client_free(c);
	free(want);
	batch_destroy(&b);
}

/* Runs last: over everything above, the CDN never saw a token. */
static bool carried_auth(cJSON *e, const void *arg)
{
	cJSON *auth = cJSON_GetObjectItem(e, "auth");

	(void)arg;
	return cJSON_IsNumber(auth) ? auth->valueint != 0 : cJSON_IsTrue(auth);
}

static void cdn_never_saw_a_token(void **state)
{
	(void)state;
	assert_true(cdn_lines(any_line, NULL) > N_RANGES); /* many_ranges */
	assert_int_equal(cdn_lines(carried_auth, NULL), 0);
}

/* An argument runs only the tests whose name matches it (cmocka's glob). */
int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(many_ranges, reset_emulator),
		cmocka_unit_test_setup(other_files, reset_emulator),
		cmocka_unit_test_setup(xet_probe, reset_emulator),
		cmocka_unit_test_setup(demand_first, reset_emulator),
		cmocka_unit_test_setup(bad_submits, reset_emulator),
		cmocka_unit_test_setup(hub_errors, reset_emulator),
		cmocka_unit_test_setup(unreachable, reset_emulator),
		cmocka_unit_test_setup(wrong_etag, reset_emulator),
		cmocka_unit_test_setup(fault_cut_resumes, reset_emulator),
		cmocka_unit_test_setup(fault_status_retried, reset_emulator),
		cmocka_unit_test_setup(fault_range_200, reset_emulator),
		cmocka_unit_test_setup(expired_target, reset_emulator),
		cmocka_unit_test_setup(stall_times_out, reset_emulator),
		cmocka_unit_test_setup(paced_resolves, reset_emulator),
		cmocka_unit_test_setup(stop_cancels_all, reset_emulator),
		cmocka_unit_test(cdn_never_saw_a_token),
	};

	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}

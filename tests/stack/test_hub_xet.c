/*
 * test_hub_xet.c - reads through the Xet CAS (hub.h, "Xet") against the
 * Hub emulator's CAS and the nginx CDN, run under tests/harness/hubstack.py
 * with tests/fixtures/large/xet.json (see tests/README.md, "Xet").
 *
 * The Xet fixtures are real: hf_xet chunked, compressed (all three
 * schemes) and uploaded them, so every byte hubfs reconstructs is compared
 * with the manifest's content file at its offset.  Faults on the CAS and
 * on the xorbs must each end in a retry that succeeds or in a clean error,
 * never in wrong bytes reported as good.  Without the test venv the stack
 * builds no Xet objects and the tests are skipped.
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
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"
#include "hub.h"
#include "stack.h"
#include "xetlocal.h"

#define BIG  "acme/xet-revisions"
#define TINY "acme/tiny-model"
/* The clients' stall_seconds: retries end 2 * STALL after a request began,
   and a stall takes STALL and a bit to be noticed. */
#define STALL 6

static const char *endpoint, *cdn_log;
static cJSON *manifest, *tokens;
static char tmpdir[] = "/tmp/hubfs-test-xet-XXXXXX";

/* ---- The manifest and the emulator's control API ------------------------ */

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

/* The file as hub_xet_read() wants it; skips the test when the stack
   could not build its Xet objects. */
static struct hub_xet_file xfile(const char *id, const char *ref,
				 const char *path)
{
	cJSON *f = file_of(id, ref, path);
	struct hub_xet_file x = {
		.type = HUB_MODEL,
		.repo_id = id,
		.commit = sha_of(id, ref),
		.xet_hash =
			cJSON_GetStringValue(cJSON_GetObjectItem(f, "xetHash")),
		.size = (uint64_t)cJSON_GetNumberValue(
			cJSON_GetObjectItem(f, "size")),
	};

	if (!cJSON_IsTrue(cJSON_GetObjectItem(f, "xetBuilt")))
		skip();
	assert_non_null(x.xet_hash);
	return x;
}

static char *content_of(const char *id, const char *ref, const char *path)
{
	size_t n = 0;
	char *p = stack_slurp(cJSON_GetStringValue(cJSON_GetObjectItem(
				      file_of(id, ref, path), "content")),
			      &n);

	assert_non_null(p);
	return p;
}

/* Requests in the emulator's log whose path contains needle (and whose
   status is status, when set); with_auth: only those with a token. */
static int hub_requests(const char *needle, int status, bool with_auth)
{
	char *text = stack_control_ok("GET", "/_emu/log", NULL);
	cJSON *log = cJSON_Parse(text), *e;
	int n = 0;

	cJSON_ArrayForEach(e, log)
	{
		const char *p =
			cJSON_GetStringValue(cJSON_GetObjectItem(e, "path"));
		int s = (int)cJSON_GetNumberValue(
			cJSON_GetObjectItem(e, "status"));

		if (p && strstr(p, needle) && (!status || s == status) &&
		    (!with_auth ||
		     cJSON_IsTrue(cJSON_GetObjectItem(e, "auth"))))
			n++;
	}
	cJSON_Delete(log);
	free(text);
	return n;
}

/* Lines of the CDN log for xorbs; with_auth: only those with a token. */
static int xorb_lines(bool with_auth)
{
	size_t len;
	char *log = stack_slurp(cdn_log, &len), *line, *nl;
	int n = 0;

	assert_non_null(log);
	for (line = log; *line; line = nl ? nl + 1 : line + strlen(line)) {
		cJSON *e, *auth;
		const char *uri;

		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (!*line)
			continue;
		e = cJSON_Parse(line);
		assert_non_null(e);
		uri = cJSON_GetStringValue(cJSON_GetObjectItem(e, "uri"));
		if (!uri)
			uri = cJSON_GetStringValue(
				cJSON_GetObjectItem(e, "path"));
		auth = cJSON_GetObjectItem(e, "auth");
		if (uri && strstr(uri, "/xorbs/") &&
		    (!with_auth || cJSON_IsTrue(auth) ||
		     (cJSON_IsNumber(auth) && auth->valueint != 0)))
			n++;
		cJSON_Delete(e);
	}
	free(log);
	return n;
}

/* ---- Clients and reads -------------------------------------------------- */

static struct hub_xfer *xfer; /* of the current test's client */

static struct hub_client *client_with(const char *user)
{
	struct hub_config cfg = { .endpoint = endpoint,
				  .stall_seconds = STALL };
	struct hub_client *c = NULL;

	if (user)
		setenv("HF_TOKEN", stack_user_token(tokens, user), 1);
	assert_int_equal(hub_client_new(&c, &cfg), 0);
	unsetenv("HF_TOKEN");
	assert_null(xfer);
	assert_int_equal(hub_xfer_start(&xfer, c, 8), 0);
	return c;
}

static void client_free(struct hub_client *c)
{
	hub_xfer_stop(xfer);
	xfer = NULL;
	hub_client_free(c);
}

/* What a read delivered, checked against the file's bytes as it comes. */
struct got {
	const char *want; /* the whole file */
	uint64_t next;	  /* the next offset expected */
	uint64_t n;
};

static int check_data(void *arg, uint64_t off, const void *buf, size_t n)
{
	struct got *g = arg;

	if (off != g->next)
		fail_msg("bytes at %lu, expected %lu", (unsigned long)off,
			 (unsigned long)g->next);
	if (memcmp(g->want + off, buf, n) != 0) {
		size_t i = 0;

		while (((const char *)buf)[i] == g->want[off + i])
			i++;
		fail_msg("wrong byte at %lu", (unsigned long)(off + i));
	}
	g->next += n;
	g->n += n;
	return 0;
}

/* Read [off, off + len) and compare; returns hub_xet_read's result. */
static int read_range(struct hub_xet *x, const struct hub_xet_file *f,
		      const char *want, uint64_t off, uint64_t len,
		      struct hub_error *err)
{
	struct got g = { want, off, 0 };
	int rc = hub_xet_read(x, f, off, len, check_data, &g, err);

	if (rc == 0)
		assert_int_equal(g.n, len);
	return rc;
}

static void read_ok(struct hub_xet *x, const struct hub_xet_file *f,
		    const char *want, uint64_t off, uint64_t len)
{
	struct hub_error err;
	char d[320];
	int rc = read_range(x, f, want, off, len, &err);

	if (rc != 0)
		fail_msg("read %lu+%lu: %d, %s", (unsigned long)off,
			 (unsigned long)len, rc,
			 hub_error_describe(&err, d, sizeof(d)));
}

/* ---- Setup -------------------------------------------------------------- */

static int setup_all(void **state)
{
	char home[sizeof(tmpdir) + 8];

	(void)state;
	endpoint = getenv("HUBFS_TEST_ENDPOINT");
	cdn_log = getenv("HUBFS_TEST_CDN_LOG");
	tokens = stack_load_json("HUBFS_TEST_TOKENS");
	manifest = stack_load_json("HUBFS_TEST_MANIFEST");
	if (!endpoint || !cdn_log || !tokens || !manifest || !mkdtemp(tmpdir)) {
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
	curl_global_cleanup();
	return 0;
}

static int reset_emulator(void **state)
{
	(void)state;
	free(stack_control_ok("POST", "/_emu/reset", NULL));
	free(stack_control_ok("POST", "/_emu/log/clear", NULL));
	return 0;
}

/* ---- Whole files and ranges --------------------------------------------- */

/* Each revision of the 256 MiB file, whole, and the small ones. */
static void whole_files(void **state)
{
	static const char *refs[] = { "v1", "v2", "main" };
	struct hub_client *c = client_with("alice");
	struct hub_xet *x = NULL;
	struct hub_xet_stats st;

	(void)state;
	assert_int_equal(hub_xet_new(&x, c, xfer), 0);
	for (unsigned i = 0; i < 3; i++) {
		struct hub_xet_file f = xfile(BIG, refs[i], "model.bin");
		char *want = content_of(BIG, refs[i], "model.bin");

		read_ok(x, &f, want, 0, f.size);
		free(want);
	}
	{
		struct hub_xet_file f = xfile(BIG, "main", "small.bin");
		char *want = content_of(BIG, "main", "small.bin");

		read_ok(x, &f, want, 0, f.size);
		free(want);
	}
	{
		struct hub_xet_file f =
			xfile(TINY, "main", "weights/xet-model.bin");
		char *want = content_of(TINY, "main", "weights/xet-model.bin");

		read_ok(x, &f, want, 0, f.size);
		free(want);
	}
	hub_xet_get_stats(x, &st);
	/* 3 x 256 MiB in batches: never the whole file in one answer */
	assert_true(st.reconstructions >= 3 * 16 + 2);
	assert_int_equal(st.bytes, 3 * (256u << 20) + 3000000 + 300000);
	assert_int_equal(st.tokens, 4); /* per repo and commit, kept */
	assert_true(st.xorb_requests > 0);
	/* The CAS got a token every time, the CDN never one. */
	assert_int_equal(hub_requests("/reconstructions/", 0, false),
			 hub_requests("/reconstructions/", 0, true));
	assert_true(xorb_lines(false) > 0);
	assert_int_equal(xorb_lines(true), 0);
	hub_xet_free(x);
	client_free(c);
}

/* Ranges of every shape: first and last bytes, mid-chunk, across batches
   and across terms, odd lengths. */
static void ranges(void **state)
{
	struct hub_client *c = client_with("alice");
	struct hub_xet_file f = xfile(BIG, "v2", "model.bin");
	char *want = content_of(BIG, "v2", "model.bin");
	struct hub_xet *x = NULL;
	uint64_t seed = 0x9e3779b97f4a7c15u;

	(void)state;
	assert_int_equal(hub_xet_new(&x, c, xfer), 0);
	read_ok(x, &f, want, 0, 1);
	read_ok(x, &f, want, f.size - 1, 1);
	read_ok(x, &f, want, 12345, 1);
	read_ok(x, &f, want, 65536 - 3, 7);
	read_ok(x, &f, want, (16u << 20) - 5, 11); /* across a batch */
	read_ok(x, &f, want, (40u << 20) + 777, (33u << 20) + 1);
	read_ok(x, &f, want, f.size - 100000, 100000);
	for (int i = 0; i < 40; i++) {
		uint64_t off, len;

		seed = seed * 6364136223846793005u + 1442695040888963407u;
		off = (seed >> 16) % f.size;
		seed = seed * 6364136223846793005u + 1442695040888963407u;
		len = 1 + (seed >> 16) % (i % 2 ? 300000 : 3000000);
		if (len > f.size - off)
			len = f.size - off;
		read_ok(x, &f, want, off, len);
	}
	free(want);
	hub_xet_free(x);
	client_free(c);
}

/* A CAS without v2: one 404, then v1 from there on. */
static void v1_fallback(void **state)
{
	struct hub_client *c = client_with("alice");
	struct hub_xet_file f = xfile(BIG, "main", "small.bin");
	char *want = content_of(BIG, "main", "small.bin");
	struct hub_xet *x = NULL;

	(void)state;
	stack_configure("{\"xet_reconstruction\": \"v1\"}");
	assert_int_equal(hub_xet_new(&x, c, xfer), 0);
	read_ok(x, &f, want, 100, 2000000);
	read_ok(x, &f, want, 7, 5);
	assert_int_equal(hub_requests("/v2/reconstructions/", 404, false), 1);
	assert_int_equal(hub_requests("/v1/reconstructions/", 200, false), 2);
	free(want);
	hub_xet_free(x);
	client_free(c);
}

/* v2 with all of a xorb's ranges under one URL. */
static void multirange_urls(void **state)
{
	struct hub_client *c = client_with("alice");
	struct hub_xet_file f = xfile(BIG, "v2", "model.bin");
	char *want = content_of(BIG, "v2", "model.bin");
	struct hub_xet *x = NULL;

	(void)state;
	stack_configure("{\"xet_multirange\": true}");
	assert_int_equal(hub_xet_new(&x, c, xfer), 0);
	read_ok(x, &f, want, 0, f.size);
	free(want);
	hub_xet_free(x);
	client_free(c);
}

/* ---- Queued reads (hub_xet_submit) -------------------------------------- */

/* One queued read; its callbacks run on the reader's threads, so they
   only record (cmocka's checks belong to this thread). */
struct aread {
	const char *want;
	uint64_t off, len, next;
	bool wrong;
	int rc, n_done;
};

static pthread_mutex_t a_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t a_cond = PTHREAD_COND_INITIALIZER;
static int a_finished;

static int a_data(void *arg, uint64_t off, const void *buf, size_t n)
{
	struct aread *a = arg;

	if (off != a->next || memcmp(a->want + off, buf, n) != 0)
		a->wrong = true;
	a->next = off + n;
	return 0;
}

static void a_done(void *arg, int rc, const struct hub_error *err)
{
	struct aread *a = arg;

	(void)err;
	pthread_mutex_lock(&a_lock);
	a->rc = rc;
	a->n_done++;
	a_finished++;
	pthread_cond_signal(&a_cond);
	pthread_mutex_unlock(&a_lock);
}

static const struct hub_xfer_ops a_ops = { a_data, a_done };

#define N_ASYNC 10

static void queued_reads(void **state)
{
	struct hub_client *c = client_with("alice");
	struct hub_xet_file f = xfile(BIG, "v2", "model.bin");
	char *want = content_of(BIG, "v2", "model.bin");
	struct aread a[N_ASYNC];
	struct hub_xet *x = NULL;

	(void)state;
	assert_int_equal(hub_xet_new(&x, c, xfer), 0);
	a_finished = 0;
	for (int i = 0; i < N_ASYNC; i++) {
		uint64_t off = (uint64_t)i * 25000017u;

		a[i] = (struct aread){ want, off,   1 + (i % 3) * 3000000u,
				       off,  false, 1,
				       0 };
		assert_int_equal(hub_xet_submit(x, &f, a[i].off, a[i].len,
						i % 2 ? HUB_XFER_READAHEAD
						      : HUB_XFER_DEMAND,
						&a_ops, &a[i]),
				 0);
	}
	pthread_mutex_lock(&a_lock);
	while (a_finished < N_ASYNC)
		pthread_cond_wait(&a_cond, &a_lock);
	pthread_mutex_unlock(&a_lock);
	for (int i = 0; i < N_ASYNC; i++) {
		assert_int_equal(a[i].rc, 0);
		assert_int_equal(a[i].n_done, 1);
		assert_false(a[i].wrong);
		assert_int_equal(a[i].next, a[i].off + a[i].len);
	}
	assert_int_equal(
		hub_xet_submit(x, &f, 0, 0, HUB_XFER_DEMAND, &a_ops, &a[0]),
		-EINVAL);
	/* Freed with reads queued: each answered once, right or cancelled. */
	for (int i = 0; i < N_ASYNC; i++) {
		a[i] = (struct aread){ want, 0, f.size, 0, false, 1, 0 };
		assert_int_equal(hub_xet_submit(x, &f, 0, f.size,
						HUB_XFER_DEMAND, &a_ops, &a[i]),
				 0);
	}
	hub_xet_free(x);
	for (int i = 0; i < N_ASYNC; i++) {
		assert_int_equal(a[i].n_done, 1);
		assert_true(a[i].rc == 0 || a[i].rc == -ECANCELED);
		assert_false(a[i].wrong);
		if (a[i].rc == 0)
			assert_int_equal(a[i].next, f.size);
	}
	free(want);
	client_free(c);
}

/* ---- Tokens ------------------------------------------------------------- */

/* A token that expires within the minute is renewed before each use. */
static void token_renewed(void **state)
{
	struct hub_client *c = client_with("alice");
	struct hub_xet_file f = xfile(BIG, "main", "small.bin");
	char *want = content_of(BIG, "main", "small.bin");
	struct hub_xet *x = NULL;
	struct hub_xet_stats st;

	(void)state;
	stack_configure("{\"xet_token_ttl\": 30}");
	assert_int_equal(hub_xet_new(&x, c, xfer), 0);
	read_ok(x, &f, want, 0, 10);
	read_ok(x, &f, want, 10, 10);
	hub_xet_get_stats(x, &st);
	assert_int_equal(st.tokens, 2);
	assert_int_equal(hub_requests("/xet-read-token/", 200, true), 2);
	free(want);
	hub_xet_free(x);
	client_free(c);
}

/* Tokens the CAS refuses: renewed once, then a clean 401. */
static void token_refused(void **state)
{
	struct hub_client *c = client_with("alice");
	struct hub_xet_file f = xfile(BIG, "main", "small.bin");
	struct hub_xet *x = NULL;
	struct hub_error err;
	int rc;

	(void)state;
	stack_configure("{\"xet_token_ttl\": -10}");
	assert_int_equal(hub_xet_new(&x, c, xfer), 0);
	rc = hub_xet_read(x, &f, 0, 10, check_data, &(struct got){ "", 0, 0 },
			  &err);
	assert_int_equal(rc, -EIO);
	assert_int_equal(err.status, 401);
	assert_int_equal(hub_error_errno(&err), EACCES);
	assert_int_equal(hub_requests("/reconstructions/", 401, true), 2);
	hub_xet_free(x);
	client_free(c);
}

/* No read token for a repo the Hub does not show: nothing reaches the CAS. */
static void no_token(void **state)
{
	struct hub_client *c = client_with(NULL);
	struct hub_xet_file f = xfile(BIG, "main", "small.bin");
	struct hub_xet *x = NULL;
	struct hub_error err;

	(void)state;
	assert_int_equal(hub_xet_new(&x, c, xfer), 0);
	f.repo_id = "acme/no-such-repo";
	assert_int_equal(hub_xet_read(x, &f, 0, 10, check_data,
				      &(struct got){ "", 0, 0 }, &err),
			 -EIO);
	assert_true(err.status == 401 || err.status == 404);
	assert_int_equal(hub_requests("/reconstructions/", 0, false), 0);
	hub_xet_free(x);
	client_free(c);
}

static int no_data(void *arg, uint64_t off, const void *buf, size_t n)
{
	(void)arg;
	(void)off;
	(void)buf;
	(void)n;
	fail_msg("data for a refused request");
	return 0;
}

static void no_done(void *arg, int rc, const struct hub_error *err)
{
	(void)arg;
	(void)rc;
	(void)err;
	fail_msg("done for a refused request");
}

static const struct hub_xfer_ops no_ops = { no_data, no_done };

static void bad_calls(void **state)
{
	struct hub_client *c = client_with("alice");
	struct hub_xet_file f = xfile(BIG, "main", "small.bin");
	struct hub_xet *x = NULL;
	struct hub_error err;
	struct got g = { "", 0, 0 };

	(void)state;
	assert_int_equal(hub_xet_new(&x, c, xfer), 0);
	assert_int_equal(hub_xet_read(x, &f, 0, 0, check_data, &g, &err),
			 -EINVAL);
	assert_int_equal(hub_xet_read(x, &f, f.size, 1, check_data, &g, &err),
			 -EINVAL);
	assert_int_equal(hub_xet_read(x, &f, 1, f.size, check_data, &g, &err),
			 -EINVAL);
	f.xet_hash = "ABC";
	assert_int_equal(hub_xet_read(x, &f, 0, 1, check_data, &g, &err),
			 -EINVAL);
	assert_int_equal(g.n, 0);
	assert_int_equal(hub_xfer_submit_url(xfer, "file:///etc/passwd", 0, 1,
					     HUB_XFER_DEMAND, &no_ops, NULL),
			 -EINVAL);
	assert_int_equal(hub_xfer_submit_url(xfer, "http://a/x", 2, 1,
					     HUB_XFER_DEMAND, &no_ops, NULL),
			 -EINVAL);
	assert_int_equal(hub_requests("/", 0, false), 0);
	hub_xet_free(x);
	client_free(c);
	hub_xet_free(NULL);
}

/* ---- Faults ------------------------------------------------------------- */

/* Read the small file whole under the fault rule(s) json: it must come
   right (and every rule must have fired). */
static void survives(const char *json)
{
	struct hub_client *c = client_with("alice");
	struct hub_xet_file f = xfile(BIG, "main", "small.bin");
	char *want = content_of(BIG, "main", "small.bin");
	struct hub_xet *x = NULL;

	free(stack_control_ok("POST", "/_emu/log/clear", NULL));
	stack_fault(json);
	assert_int_equal(hub_xet_new(&x, c, xfer), 0);
	read_ok(x, &f, want, 0, f.size);
	stack_faults_fired();
	free(want);
	hub_xet_free(x);
	client_free(c);
	free(stack_control_ok("POST", "/_emu/reset", NULL));
}

/* Read under the rule; it must fail cleanly with nothing delivered. */
static void fails_cleanly(const char *json, int want_status)
{
	struct hub_client *c = client_with("alice");
	struct hub_xet_file f = xfile(BIG, "main", "small.bin");
	struct hub_xet *x = NULL;
	struct got g = { "", 0, 0 };
	struct hub_error err;
	int rc;

	stack_fault(json);
	assert_int_equal(hub_xet_new(&x, c, xfer), 0);
	rc = hub_xet_read(x, &f, 0, f.size, check_data, &g, &err);
	assert_true(rc < 0);
	assert_int_equal(g.n, 0);
	if (want_status)
		assert_int_equal(err.status, want_status);
	hub_xet_free(x);
	client_free(c);
	free(stack_control_ok("POST", "/_emu/reset", NULL));
}

static void cas_faults(void **state)
{
	(void)state;
	survives("{\"target\": \"cas\", \"path\": \"/reconstructions/\","
		 " \"kind\": \"status\", \"status\": 503, \"count\": 2}");
	survives("{\"target\": \"cas\", \"path\": \"/reconstructions/\","
		 " \"kind\": \"rate_limit\", \"t\": 1, \"count\": 1}");
	survives("{\"target\": \"cas\", \"path\": \"/reconstructions/\","
		 " \"kind\": \"reset\", \"after\": 100, \"count\": 1}");
	survives("{\"target\": \"cas\", \"path\": \"/reconstructions/\","
		 " \"kind\": \"stall\", \"after\": 50, \"seconds\": 20,"
		 " \"count\": 1}");
	survives("{\"target\": \"cas\", \"path\": \"/reconstructions/\","
		 " \"kind\": \"malformed_json\", \"count\": 1}");
	survives("{\"target\": \"cas\", \"path\": \"/reconstructions/\","
		 " \"kind\": \"truncated_json\", \"count\": 1}");
	/* bytes flipped inside the JSON: refused, asked again */
	survives("{\"target\": \"cas\", \"path\": \"/reconstructions/\","
		 " \"kind\": \"wrong_bytes\", \"after\": 0, \"length\": 1,"
		 " \"count\": 1}");
	fails_cleanly("{\"target\": \"cas\", \"path\": \"/reconstructions/\","
		      " \"kind\": \"expired\"}",
		      403);
	fails_cleanly("{\"target\": \"cas\", \"path\": \"/reconstructions/\","
		      " \"kind\": \"status\", \"status\": 500}",
		      500);
	fails_cleanly("{\"target\": \"cas\", \"path\": \"/reconstructions/\","
		      " \"kind\": \"malformed_json\"}",
		      0);
}

static void xorb_faults(void **state)
{
	(void)state;
	survives("{\"target\": \"cdn\", \"path\": \"^/xorbs/\","
		 " \"kind\": \"status\", \"status\": 502, \"count\": 2}");
	survives("{\"target\": \"cdn\", \"path\": \"^/xorbs/\","
		 " \"kind\": \"rate_limit\", \"t\": 1, \"count\": 1}");
	survives("{\"target\": \"cdn\", \"path\": \"^/xorbs/\","
		 " \"kind\": \"reset\", \"after\": 70000, \"count\": 2}");
	survives("{\"target\": \"cdn\", \"path\": \"^/xorbs/\","
		 " \"kind\": \"stall\", \"after\": 1000, \"seconds\": 20,"
		 " \"count\": 1}");
	survives("{\"target\": \"cdn\", \"path\": \"^/xorbs/\","
		 " \"kind\": \"short_range\", \"count\": 2}");
	survives("{\"target\": \"cdn\", \"path\": \"^/xorbs/\","
		 " \"kind\": \"range_200\", \"count\": 1}");
	survives("{\"target\": \"cdn\", \"path\": \"^/xorbs/\","
		 " \"kind\": \"range_wide\", \"count\": 1}");
	/* an expired URL: a new reconstruction, new URLs */
	survives("{\"target\": \"cdn\", \"path\": \"^/xorbs/\","
		 " \"kind\": \"expired\", \"count\": 1}");
	/* a broken chunk header: refused, the range fetched again */
	survives("{\"target\": \"cdn\", \"path\": \"^/xorbs/\","
		 " \"kind\": \"wrong_bytes\", \"after\": 1, \"length\": 4,"
		 " \"count\": 1}");
	fails_cleanly("{\"target\": \"cdn\", \"path\": \"^/xorbs/\","
		      " \"kind\": \"expired\"}",
		      403);
	fails_cleanly("{\"target\": \"cdn\", \"path\": \"^/xorbs/\","
		      " \"kind\": \"wrong_bytes\", \"after\": 1,"
		      " \"length\": 4}",
		      0);
}

/* Signed URLs that expired before use: asked again, then a clean error. */
static void expired_urls(void **state)
{
	(void)state;
	stack_configure("{\"xet_url_ttl\": -5}");
	{
		struct hub_client *c = client_with("alice");
		struct hub_xet_file f = xfile(BIG, "main", "small.bin");
		struct hub_xet *x = NULL;
		struct got g = { "", 0, 0 };
		struct hub_error err;

		assert_int_equal(hub_xet_new(&x, c, xfer), 0);
		assert_int_equal(
			hub_xet_read(x, &f, 0, 10, check_data, &g, &err), -EIO);
		assert_int_equal(err.status, 403);
		assert_int_equal(g.n, 0);
		/* the first answer and three more */
		assert_int_equal(hub_requests("/reconstructions/", 200, true),
				 4);
		hub_xet_free(x);
		client_free(c);
	}
}

/* ---- A new revision costs its changed chunks ----------------------------- */

static size_t collect_body(char *p, size_t size, size_t n, void *arg)
{
	char **out = arg;
	size_t have = *out ? strlen(*out) : 0, len = size * n;
	char *grown = realloc(*out, have + len + 1);

	assert_non_null(grown);
	memcpy(grown + have, p, len);
	grown[have + len] = '\0';
	*out = grown;
	return len;
}

/* GET url with a bearer token: the body of a 200 (caller frees). */
static char *http_get(const char *url, const char *bearer)
{
	char auth[1024], *body = NULL;
	struct curl_slist *h;
	CURL *e = curl_easy_init();
	long status = 0;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer);
	h = curl_slist_append(NULL, auth);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
	assert_int_equal(curl_easy_perform(e), CURLE_OK);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	assert_int_equal(status, 200);
	curl_easy_cleanup(e);
	curl_slist_free_all(h);
	assert_non_null(body);
	return body;
}

/* The whole file's reconstruction, asked of the CAS by the test itself. */
static struct hub_xet_recon *whole_recon(const struct hub_xet_file *f)
{
	char url[1024], *text;
	cJSON *tok;
	struct hub_xet_recon *r = NULL;

	snprintf(url, sizeof(url), "%s/api/models/%s/xet-read-token/%s",
		 endpoint, f->repo_id, f->commit);
	text = http_get(url, stack_user_token(tokens, "alice"));
	tok = cJSON_Parse(text);
	free(text);
	snprintf(url, sizeof(url), "%s/v1/reconstructions/%s",
		 cJSON_GetStringValue(cJSON_GetObjectItem(tok, "casUrl")),
		 f->xet_hash);
	text = http_get(url, cJSON_GetStringValue(
				     cJSON_GetObjectItem(tok, "accessToken")));
	cJSON_Delete(tok);
	assert_int_equal(hub_xet_recon_parse(text, strlen(text), &r), 0);
	free(text);
	return r;
}

/* Xorb bytes of `now`'s fetch entries whose xorb `before` never names:
   what a read of now that copies before's chunks must still fetch. */
static uint64_t new_xorb_bytes(const struct hub_xet_recon *before,
			       const struct hub_xet_recon *now)
{
	uint64_t sum = 0;

	for (unsigned j = 0; j < now->n_fetch; j++) {
		bool known = false;

		for (unsigned i = 0; i < before->n_terms && !known; i++)
			known = strcmp(before->terms[i].xorb,
				       now->fetch[j].xorb) == 0;
		if (!known)
			sum += now->fetch[j].byte_last -
			       now->fetch[j].byte_first + 1;
	}
	return sum;
}

/* A read into a store's file, checked against the content as it comes. */
struct into_file {
	struct got g;
	int fd;
};

static int write_data(void *arg, uint64_t off, const void *buf, size_t n)
{
	struct into_file *w = arg;
	int rc = check_data(&w->g, off, buf, n);

	if (rc == 0)
		assert_int_equal(pwrite(w->fd, buf, n, (off_t)off), (ssize_t)n);
	return rc;
}

/* The sha256 of a file's first size bytes, as hex. */
static void hash_file(int fd, const char *etag, uint64_t size, char hex[65])
{
	static char buf[1 << 20];
	struct db_hash *h = NULL;

	assert_int_equal(db_hash_start(&h, etag, size), 0);
	for (uint64_t off = 0; off < size;) {
		ssize_t n = pread(fd, buf, sizeof(buf), (off_t)off);

		assert_true(n > 0);
		db_hash_update(h, buf, (size_t)n);
		off += (uint64_t)n;
	}
	db_hash_finish(h, hex);
}

/*
 * Read ref's model.bin whole into the store as a blob, copying (copy)
 * what complete blobs hold: the xorb bytes it fetched.  The blob is
 * recorded only once its sha256 matched (as the engine does).
 */
static uint64_t read_into_store(struct hub_xet *x, struct db_store *s,
				const char *ref, bool copy, bool install)
{
	struct hub_xet_file f = xfile(BIG, ref, "model.bin");
	const char *etag = cJSON_GetStringValue(
		cJSON_GetObjectItem(file_of(BIG, ref, "model.bin"), "sha256"));
	struct xetlocal xl = { .store = s };
	struct into_file w = { .g = { content_of(BIG, ref, "model.bin"), 0,
				      0 } };
	struct hub_xet_stats a, b;
	struct hub_error err;
	char tmp[PATH_MAX], hex[65], d[320];
	int rc;

	snprintf(xl.etag, sizeof(xl.etag), "%s", etag);
	f.local = xetlocal_ops(copy);
	f.local_arg = &xl;
	w.fd = db_blob_tmpfile(s, tmp, sizeof(tmp));
	assert_true(w.fd >= 0);
	hub_xet_get_stats(x, &a);
	rc = hub_xet_read(x, &f, 0, f.size, write_data, &w, &err);
	if (rc != 0)
		fail_msg("read %s: %d, %s", ref, rc,
			 hub_error_describe(&err, d, sizeof(d)));
	hub_xet_get_stats(x, &b);
	assert_int_equal(w.g.n, f.size);
	hash_file(w.fd, etag, f.size, hex);
	assert_string_equal(hex, etag);
	assert_int_equal(fdatasync(w.fd), 0);
	close(w.fd);
	if (install)
		assert_int_equal(db_blob_install(s, tmp, etag, f.size), 0);
	else
		unlink(tmp);
	free((char *)w.g.want);
	print_message("    %s: %llu xorb bytes fetched, %llu bytes copied "
		      "(%llu terms)\n",
		      ref, (unsigned long long)(b.xorb_bytes - a.xorb_bytes),
		      (unsigned long long)(b.local_bytes - a.local_bytes),
		      (unsigned long long)(b.local_terms - a.local_terms));
	return b.xorb_bytes - a.xorb_bytes;
}

/*
 * Revision 1 read into the store records where its chunks lie; revision
 * 2 then fetches only the chunks revision 1 lacks (the xorbs that only
 * revision 2's reconstruction names), and hashes right.  Revision 3 copies
 * from both.  A source replaced behind the index, or dropped, is not
 * used: everything is fetched, and still right.
 */
static void revision_reuse(void **state)
{
	struct hub_client *c = client_with("alice");
	struct hub_xet_file f1 = xfile(BIG, "v1", "model.bin");
	struct hub_xet_file f2 = xfile(BIG, "v2", "model.bin");
	struct hub_xet_file f3 = xfile(BIG, "main", "model.bin");
	struct hub_xet_recon *r1 = whole_recon(&f1), *r2 = whole_recon(&f2);
	struct hub_xet_recon *r3 = whole_recon(&f3);
	uint64_t need2 = new_xorb_bytes(r1, r2), without, with, third;
	const char *etag1 = cJSON_GetStringValue(
		cJSON_GetObjectItem(file_of(BIG, "v1", "model.bin"), "sha256"));
	char store_dir[sizeof(tmpdir) + 16], path[PATH_MAX];
	struct db_store *s = NULL;
	struct hub_xet *x = NULL;

	(void)state;
	snprintf(store_dir, sizeof(store_dir), "%s/store", tmpdir);
	assert_int_equal(db_store_open(&s, store_dir), 0);
	assert_int_equal(hub_xet_new(&x, c, xfer), 0);

	read_into_store(x, s, "v1", true, true);
	without = read_into_store(x, s, "v2", false, false);
	with = read_into_store(x, s, "v2", true, true);
	print_message("    rev 2 after rev 1: %llu xorb bytes without the "
		      "local copy, %llu with it (%.2f %% of %llu); the "
		      "xorbs rev 1 lacks: %llu bytes\n",
		      (unsigned long long)without, (unsigned long long)with,
		      100.0 * (double)with / (double)f2.size,
		      (unsigned long long)f2.size, (unsigned long long)need2);
	/* Every byte of the new chunks came over the network... */
	assert_true(with >= need2);
	/* ...and nothing else, but chunks cut at a batch's edges (a 16 MiB
	   batch asks for the chunks that hold its first and last bytes). */
	assert_true(with <=
		    need2 + 2 * (f2.size >> 24) *
				    (HUB_XET_CHUNK_MAX + HUB_XET_CHUNK_HEADER));
	assert_true(without > 10 * with);

	/* Revision 3 copies from revisions 1 and 2 alike. */
	third = read_into_store(x, s, "main", true, false);
	assert_true(third <=
		    new_xorb_bytes(r2, r3) +
			    2 * (f3.size >> 24) *
				    (HUB_XET_CHUNK_MAX + HUB_XET_CHUNK_HEADER));

	/* Replaced behind the index (another inode): not used. */
	db_blob_path(s, etag1, path, sizeof(path));
	{
		char tmp[PATH_MAX];
		int fd = db_blob_tmpfile(s, tmp, sizeof(tmp));

		assert_true(fd >= 0);
		assert_int_equal(ftruncate(fd, (off_t)f1.size), 0);
		close(fd);
		assert_int_equal(rename(tmp, path), 0);
	}
	/* rev 2's own blob is dropped: rev 1's (now wrong) alone remains */
	assert_int_equal(
		db_blob_drop(
			s, cJSON_GetStringValue(cJSON_GetObjectItem(
				   file_of(BIG, "v2", "model.bin"), "sha256"))),
		0);
	assert_true(read_into_store(x, s, "v2", true, false) >= without);

	hub_xet_recon_free(r1);
	hub_xet_recon_free(r2);
	hub_xet_recon_free(r3);
	hub_xet_free(x);
	db_store_close(s);
	client_free(c);
}

/* Hooks that lie or refuse, and a record of where chunks were placed. */
struct fake_local {
	int mode;	 /* 0: refuse, 1: lengths that do not add up */
	unsigned asked;	 /* copy() calls */
	uint64_t *cover; /* [from, to) of each placed run, back to back */
	size_t n_cover, cap;
	uint64_t size; /* the file's */
	bool bad_run;  /* a run outside the file, or no chunk in it */
};

static int fake_copy(void *arg, const char *xorb, uint32_t start, uint32_t end,
		     uint64_t unpacked, uint8_t *out, uint32_t *lengths)
{
	struct fake_local *fl = arg;

	(void)xorb;
	(void)unpacked;
	fl->asked++;
	if (fl->mode == 0)
		return -ENOENT;
	memset(out, 0xa5, unpacked); /* wrong bytes, never to be used */
	for (uint32_t i = 0; i < end - start; i++)
		lengths[i] = 1;
	return 0;
}

static void fake_placed(void *arg, const struct hub_xet_run *runs, size_t n)
{
	struct fake_local *fl = arg;

	for (size_t i = 0; i < n; i++) {
		uint64_t len = 0;

		for (uint32_t k = 0; k < runs[i].count; k++)
			len += runs[i].lengths[k];
		if (runs[i].count == 0 || !hub_is_sha256(runs[i].xorb) ||
		    runs[i].offset + len > fl->size)
			fl->bad_run = true;
		if (fl->n_cover + 2 > fl->cap) {
			fl->cap = fl->cap ? 2 * fl->cap : 64;
			fl->cover = realloc(fl->cover,
					    fl->cap * sizeof(*fl->cover));
		}
		fl->cover[fl->n_cover++] = runs[i].offset;
		fl->cover[fl->n_cover++] = runs[i].offset + len;
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * A copy() that refuses, or answers lengths that do not add up to the
 * term's: every term is fetched, the bytes are right, and placed() heard
 * of runs inside the file that cover the whole range read.
 */
static void local_refused(void **state)
{
	static const struct hub_xet_local ops = { fake_copy, fake_placed };
	struct hub_client *c = client_with("alice");
	struct hub_xet_file f = xfile(BIG, "v1", "model.bin");
	char *want = content_of(BIG, "v1", "model.bin");
	uint64_t len = (40u << 20) + 12345;
	struct hub_xet *x = NULL;
	struct hub_xet_stats st;

	(void)state;
	assert_int_equal(hub_xet_new(&x, c, xfer), 0);
	f.local = &ops;
	for (int mode = 0; mode < 2; mode++) {
		struct fake_local fl = { .mode = mode, .size = f.size };
		uint64_t reach = 0;

		f.local_arg = &fl;
		read_ok(x, &f, want, 0, len);
		assert_true(fl.asked > 0);
		assert_false(fl.bad_run);
		/* the runs, as intervals, cover [0, len) without a gap */
		qsort(fl.cover, fl.n_cover / 2, 2 * sizeof(*fl.cover), cmp_u64);
		for (size_t i = 0; i < fl.n_cover; i += 2) {
			assert_true(fl.cover[i] <= reach);
			if (fl.cover[i + 1] > reach)
				reach = fl.cover[i + 1];
		}
		assert_true(reach >= len);
		free(fl.cover);
	}
	hub_xet_get_stats(x, &st);
	assert_int_equal(st.local_terms, 0);
	assert_int_equal(st.local_bytes, 0);
	free(want);
	hub_xet_free(x);
	client_free(c);
}

/* An argument runs only the tests whose name matches it (cmocka's glob). */
int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(whole_files, reset_emulator),
		cmocka_unit_test_setup(ranges, reset_emulator),
		cmocka_unit_test_setup(v1_fallback, reset_emulator),
		cmocka_unit_test_setup(multirange_urls, reset_emulator),
		cmocka_unit_test_setup(queued_reads, reset_emulator),
		cmocka_unit_test_setup(token_renewed, reset_emulator),
		cmocka_unit_test_setup(token_refused, reset_emulator),
		cmocka_unit_test_setup(no_token, reset_emulator),
		cmocka_unit_test_setup(bad_calls, reset_emulator),
		cmocka_unit_test_setup(cas_faults, reset_emulator),
		cmocka_unit_test_setup(xorb_faults, reset_emulator),
		cmocka_unit_test_setup(expired_urls, reset_emulator),
		cmocka_unit_test_setup(local_refused, reset_emulator),
		cmocka_unit_test_setup(revision_reuse, reset_emulator),
	};

	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}

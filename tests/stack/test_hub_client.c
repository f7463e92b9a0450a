/*
 * test_hub_client.c - the Hub client (hub/) against the Hub emulator and
 * the nginx CDN, run under tests/harness/hubstack.py (see tests/README.md).
 *
 * Expected data comes from the stack's manifest.json and tokens.json; file
 * bytes are compared with the manifest's content files.  Faults are set
 * through the emulator's /_emu/ control API.  At the end, the CDN's access
 * log must show that no request ever carried an Authorization header.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hub.h"
#include "stack.h"

/* hub_default_endpoint() into a buffer of the test's own. */
static const char *default_endpoint(void)
{
	static char buf[2048];

	hub_default_endpoint(buf, sizeof(buf));
	return buf;
}

static const char *endpoint, *cdn_log;
static cJSON *manifest, *tokens;
static char tmpdir[] = "/tmp/hubfs-test-client-XXXXXX";

/* ---- Files, JSON and the emulator's control API ------------------------ */

static const char *user_token(const char *user)
{
	return stack_user_token(tokens, user);
}

static cJSON *repo_of(const char *type, const char *id)
{
	cJSON *r;

	cJSON_ArrayForEach(r, cJSON_GetObjectItem(manifest, "repos"))
	{
		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r, "type")),
			   type) == 0 &&
		    strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r, "id")),
			   id) == 0)
			return r;
	}
	fail_msg("repo %s %s is not in the manifest", type, id);
	return NULL;
}

static const char *ref_of(const char *type, const char *id, const char *ref)
{
	cJSON *refs = cJSON_GetObjectItem(repo_of(type, id), "refs");
	const char *sha = cJSON_GetStringValue(cJSON_GetObjectItem(refs, ref));

	assert_non_null(sha);
	return sha;
}

static cJSON *commit_of(const char *type, const char *id, const char *sha)
{
	cJSON *commits = cJSON_GetObjectItem(repo_of(type, id), "commits");
	cJSON *c = cJSON_GetObjectItem(commits, sha);

	assert_non_null(c);
	return c;
}

static cJSON *file_of(const char *type, const char *id, const char *sha,
		      const char *path)
{
	cJSON *files = cJSON_GetObjectItem(commit_of(type, id, sha), "files");
	cJSON *f = cJSON_GetObjectItem(files, path);

	assert_non_null(f);
	return f;
}

/* CDN requests (nginx or the fault CDN) with exactly this Range header. */
static int cdn_requests(const void *arg)
{
	const char *range = arg;
	size_t len;
	char *log = stack_slurp(cdn_log, &len), *line, *nl;
	int n = 0;

	assert_non_null(log);
	for (line = log; *line; line = nl ? nl + 1 : line + strlen(line)) {
		cJSON *e, *r;

		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		e = cJSON_Parse(line);
		r = cJSON_GetObjectItem(e, "range");
		if (cJSON_IsString(r) && strcmp(r->valuestring, range) == 0)
			n++;
		cJSON_Delete(e);
	}
	free(log);
	return n;
}

static void emu_reset(void)
{
	free(stack_control_ok("POST", "/_emu/reset", NULL));
}

/* Hub requests since the last stack_log_clear() whose path contains needle. */
static int hub_requests(const char *needle, const char *range)
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

		if (p && strstr(p, needle) &&
		    (!range || (r && strcmp(r, range) == 0)))
			n++;
	}
	cJSON_Delete(log);
	free(text);
	return n;
}

/* ---- Clients ------------------------------------------------------------ */

/* A client whose only token is tok (NULL: none), via HF_TOKEN. */
static struct hub_client *client(const char *tok, long stall)
{
	struct hub_config cfg = { .endpoint = endpoint,
				  .stall_seconds = stall };
	struct hub_client *c = NULL;

	if (tok)
		setenv("HF_TOKEN", tok, 1);
	assert_int_equal(hub_client_new(&c, &cfg), 0);
	unsetenv("HF_TOKEN");
	return c;
}

static int setup_all(void **state)
{
	char home[sizeof(tmpdir) + 8];

	(void)state;
	endpoint = getenv("HUBFS_TEST_ENDPOINT");
	cdn_log = getenv("HUBFS_TEST_CDN_LOG");
	manifest = stack_load_json("HUBFS_TEST_MANIFEST");
	tokens = stack_load_json("HUBFS_TEST_TOKENS");
	if (!endpoint || !cdn_log || !manifest || !tokens || !mkdtemp(tmpdir)) {
		fprintf(stderr, "run me under tests/harness/hubstack.py\n");
		return -1;
	}
	/* No token from this machine's environment or files. */
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
	return 0;
}

static int reset_emulator(void **state)
{
	(void)state;
	emu_reset();
	return 0;
}

/* ---- Repo info ----------------------------------------------------------- */

static void check_info(struct hub_client *c, enum hub_repo_type type,
		       const char *mtype, const char *id, const char *rev,
		       const char *want_id, const char *ref)
{
	struct hub_repo_info info;
	struct hub_error err;
	const char *sha = ref_of(mtype, want_id, ref);
	const char *date = cJSON_GetStringValue(
		cJSON_GetObjectItem(commit_of(mtype, want_id, sha), "date"));
	int64_t t = 0;
	struct tm tm = { 0 };

	assert_int_equal(hub_repo_info(c, type, id, rev, &info, &err), 0);
	assert_string_equal(info.id, want_id);
	assert_string_equal(info.sha, sha);
	assert_non_null(strptime(date, "%Y-%m-%dT%H:%M:%S", &tm));
	t = timegm(&tm);
	assert_int_equal(info.last_modified, t);
	assert_false(info.disabled);
}

static void repo_info_kinds(void **state)
{
	struct hub_client *c = client(NULL, 5);

	(void)state;
	check_info(c, HUB_MODEL, "model", "acme/tiny-model", NULL,
		   "acme/tiny-model", "main");
	check_info(c, HUB_DATASET, "dataset", "acme/tiny-dataset", NULL,
		   "acme/tiny-dataset", "main");
	check_info(c, HUB_SPACE, "space", "acme/demo-space", NULL,
		   "acme/demo-space", "main");
	check_info(c, HUB_MODEL, "model", "acme/tiny-model", "v1.0",
		   "acme/tiny-model", "v1.0");
	check_info(c, HUB_MODEL, "model", "acme/tiny-model", "refs/pr/1",
		   "acme/tiny-model", "refs/pr/1");
	check_info(c, HUB_MODEL, "model", "acme/tiny-model", "dev",
		   "acme/tiny-model", "dev");
	check_info(c, HUB_DATASET, "dataset", "acme/tiny-dataset",
		   "refs/convert/parquet", "acme/tiny-dataset",
		   "refs/convert/parquet");
	/* A full commit id is a revision too. */
	check_info(c, HUB_MODEL, "model", "acme/tiny-model",
		   ref_of("model", "acme/tiny-model", "v1.0"),
		   "acme/tiny-model", "v1.0");
	hub_client_free(c);
}

static void repo_info_renamed_and_legacy(void **state)
{
	struct hub_client *c = client(NULL, 5);

	(void)state;
	stack_log_clear();
	check_info(c, HUB_MODEL, "model", "acme/old-name", NULL,
		   "acme/new-name", "main");
	check_info(c, HUB_MODEL, "model", "gpt2", NULL, "openai-community/gpt2",
		   "main");
	check_info(c, HUB_MODEL, "model", "gpt2", "v1.0",
		   "openai-community/gpt2", "v1.0");
	/* The 307s were followed by the client, not by the emulator. */
	assert_true(hub_requests("/api/models/acme/old-name", NULL) >= 1);
	assert_true(hub_requests("/api/models/acme/new-name", NULL) >= 1);
	hub_client_free(c);
}

static void repo_info_errors(void **state)
{
	struct hub_client *anon = client(NULL, 5);
	struct hub_client *bob = client(user_token("bob"), 5);
	struct hub_repo_info info;
	struct hub_error err;
	char buf[400];

	(void)state;
	/* Missing repo, authenticated: 404 RepoNotFound -> ENOENT. */
	assert_int_equal(hub_repo_info(bob, HUB_MODEL, "acme/no-such-repo",
				       NULL, &info, &err),
			 -EIO);
	assert_int_equal(err.status, 404);
	assert_string_equal(err.code, "RepoNotFound");
	assert_int_equal(hub_error_errno(&err), ENOENT);
	/* Anonymous: the Hub answers 401, which looks like no access. */
	assert_int_equal(hub_repo_info(anon, HUB_MODEL, "acme/no-such-repo",
				       NULL, &info, &err),
			 -EIO);
	assert_int_equal(err.status, 401);
	assert_int_equal(hub_error_errno(&err), EACCES);
	/* Unknown revision: 404 RevisionNotFound. */
	assert_int_equal(hub_repo_info(anon, HUB_MODEL, "acme/tiny-model",
				       "no-such-branch", &info, &err),
			 -EIO);
	assert_int_equal(err.status, 404);
	assert_string_equal(err.code, "RevisionNotFound");
	assert_int_equal(hub_error_errno(&err), ENOENT);
	hub_error_describe(&err, buf, sizeof(buf));
	assert_non_null(strstr(buf, "404"));
	/* Refused before any request. */
	assert_int_equal(
		hub_repo_info(anon, HUB_MODEL, "../etc", NULL, &info, &err),
		-EINVAL);
	hub_client_free(anon);
	hub_client_free(bob);
}

static void private_repo(void **state)
{
	struct hub_client *anon = client(NULL, 5);
	struct hub_client *alice = client(user_token("alice"), 5);
	struct hub_client *bob = client(user_token("bob"), 5);
	struct hub_repo_info info;
	struct hub_error err;

	(void)state;
	assert_false(hub_client_has_token(anon));
	assert_true(hub_client_has_token(alice));
	assert_int_equal(hub_repo_info(anon, HUB_MODEL, "alice/private-notes",
				       NULL, &info, &err),
			 -EIO);
	assert_int_equal(err.status, 401);
	assert_int_equal(hub_error_errno(&err), EACCES);
	assert_null(strstr(err.message, "hf_"));
	assert_int_equal(hub_repo_info(alice, HUB_MODEL, "alice/private-notes",
				       NULL, &info, &err),
			 0);
	assert_true(info.private_repo);
	assert_string_equal(info.sha,
			    ref_of("model", "alice/private-notes", "main"));
	/* Another user's token: 404, as if it did not exist. */
	assert_int_equal(hub_repo_info(bob, HUB_MODEL, "alice/private-notes",
				       NULL, &info, &err),
			 -EIO);
	assert_int_equal(err.status, 404);
	/* Gated: metadata is public. */
	assert_int_equal(hub_repo_info(anon, HUB_MODEL, "bigco/gated-model",
				       NULL, &info, &err),
			 0);
	assert_true(info.gated);
	hub_client_free(anon);
	hub_client_free(alice);
	hub_client_free(bob);
}

/* ---- Tree -----------------------------------------------------------------
 */

struct tree_seen {
	const char *type, *id, *sha;
	unsigned files, dirs;
	cJSON *dirs_seen;
};

static int on_entry(void *arg, const struct hub_entry *e)
{
	struct tree_seen *t = arg;
	cJSON *f;
	bool lfs;

	if (e->is_dir) {
		assert_null(cJSON_GetObjectItem(t->dirs_seen, e->path));
		cJSON_AddTrueToObject(t->dirs_seen, e->path);
		t->dirs++;
		return 0;
	}
	f = file_of(t->type, t->id, t->sha, e->path);
	lfs = cJSON_IsTrue(cJSON_GetObjectItem(f, "lfs")) ||
	      cJSON_IsTrue(cJSON_GetObjectItem(f, "xet"));
	assert_int_equal(e->size, (uint64_t)cJSON_GetNumberValue(
					  cJSON_GetObjectItem(f, "size")));
	assert_string_equal(
		e->oid, cJSON_GetStringValue(cJSON_GetObjectItem(f, "oid")));
	if (lfs)
		assert_string_equal(
			e->lfs_oid,
			cJSON_GetStringValue(cJSON_GetObjectItem(f, "sha256")));
	else
		assert_null(e->lfs_oid);
	if (cJSON_IsTrue(cJSON_GetObjectItem(f, "xet")))
		assert_non_null(e->xet_hash);
	t->files++;
	return 0;
}

/* Every folder that holds a file of the commit. */
static unsigned count_dirs(cJSON *files)
{
	cJSON *dirs = cJSON_CreateObject(), *f;
	unsigned n = 0;

	cJSON_ArrayForEach(f, files)
	{
		char path[1024], *slash;

		snprintf(path, sizeof(path), "%s", f->string);
		while ((slash = strrchr(path, '/')) != NULL) {
			*slash = '\0';
			if (!cJSON_GetObjectItem(dirs, path)) {
				cJSON_AddTrueToObject(dirs, path);
				n++;
			}
		}
	}
	cJSON_Delete(dirs);
	return n;
}

static void check_tree(struct hub_client *c, enum hub_repo_type type,
		       const char *mtype, const char *id, const char *ref)
{
	struct tree_seen t = { mtype, id, ref_of(mtype, id, ref),
			       0,     0,  cJSON_CreateObject() };
	cJSON *files =
		cJSON_GetObjectItem(commit_of(mtype, id, t.sha), "files");
	struct hub_error err;
	unsigned skipped = 99;

	assert_int_equal(
		hub_tree_list(c, type, id, t.sha, on_entry, &t, &skipped, &err),
		0);
	assert_int_equal(skipped, 0);
	assert_int_equal(t.files, cJSON_GetArraySize(files));
	assert_int_equal(t.dirs, count_dirs(files));
	cJSON_Delete(t.dirs_seen);
}

static void tree_paged(void **state)
{
	struct hub_client *c = client(NULL, 5);
	const char *sha = ref_of("model", "acme/tiny-model", "main");
	unsigned entries;
	char needle[128];

	(void)state;
	stack_log_clear();
	check_tree(c, HUB_MODEL, "model", "acme/tiny-model", "main");
	/* --page-size 3: the listing came in several pages. */
	entries =
		(unsigned)cJSON_GetArraySize(cJSON_GetObjectItem(
			commit_of("model", "acme/tiny-model", sha), "files")) +
		count_dirs(cJSON_GetObjectItem(
			commit_of("model", "acme/tiny-model", sha), "files"));
	snprintf(needle, sizeof(needle), "/api/models/acme/tiny-model/tree/%s",
		 sha);
	assert_true(entries > 3);
	assert_int_equal(hub_requests(needle, NULL), (entries + 2) / 3);
	check_tree(c, HUB_MODEL, "model", "acme/tiny-model", "refs/pr/1");
	check_tree(c, HUB_DATASET, "dataset", "acme/tiny-dataset", "main");
	check_tree(c, HUB_DATASET, "dataset", "acme/tiny-dataset",
		   "refs/convert/parquet");
	check_tree(c, HUB_SPACE, "space", "acme/demo-space", "main");
	hub_client_free(c);
}

/*
 * Legal variations of an independent Hub (hub-api.md sections 1.2, 3.2):
 * JSON bodies gzip-compressed (a server may compress when the request
 * has no Accept-Encoding), and next-page Links that name the Hub by
 * another name than the endpoint the client was given.
 */
static void tree_variants(void **state)
{
	struct hub_client *c = client(NULL, 5);
	struct hub_repo_info info;
	struct hub_error err;

	(void)state;
	free(stack_control_ok("POST", "/_emu/config", "{\"gzip_json\": true}"));
	check_tree(c, HUB_MODEL, "model", "acme/tiny-model", "main");
	assert_int_equal(hub_repo_info(c, HUB_MODEL, "acme/tiny-model", NULL,
				       &info, &err),
			 0);
	assert_string_equal(info.sha,
			    ref_of("model", "acme/tiny-model", "main"));
	emu_reset();
	/* Never contacted: the cursor is the Hub's, asked of the endpoint. */
	free(stack_control_ok("POST", "/_emu/config",
			      "{\"link_base\": \"https://hub.invalid:8443\"}"));
	stack_log_clear();
	check_tree(c, HUB_MODEL, "model", "acme/tiny-model", "main");
	assert_true(hub_requests("/tree/", NULL) > 1); /* --page-size 3 */
	hub_client_free(c);
}

static int stop_after_two(void *arg, const struct hub_entry *e)
{
	int *n = arg;

	(void)e;
	return ++*n == 2 ? 42 : 0;
}

static void tree_errors(void **state)
{
	struct hub_client *c = client(NULL, 2);
	const char *sha = ref_of("model", "acme/tiny-model", "main");
	struct hub_error err;
	int n = 0;

	(void)state;
	/* The callback's value stops the listing and comes back. */
	assert_int_equal(hub_tree_list(c, HUB_MODEL, "acme/tiny-model", sha,
				       stop_after_two, &n, NULL, &err),
			 42);
	assert_int_equal(n, 2);
	/* A branch name is not a commit. */
	assert_int_equal(hub_tree_list(c, HUB_MODEL, "acme/tiny-model", "main",
				       stop_after_two, &n, NULL, &err),
			 -EINVAL);
	/* A truncated page is a protocol error, not a short listing. */
	stack_fault("{\"kind\": \"truncated_json\", \"path\": \"/tree/\", "
		    "\"count\": 1}");
	n = 0;
	assert_int_equal(hub_tree_list(c, HUB_MODEL, "acme/tiny-model", sha,
				       stop_after_two, &n, NULL, &err),
			 -EPROTO);
	/* A 503 is retried. */
	stack_fault(
		"{\"kind\": \"status\", \"status\": 503, \"path\": \"/tree/\", "
		"\"count\": 1}");
	check_tree(c, HUB_MODEL, "model", "acme/tiny-model", "main");
	stack_faults_fired();
	/* So is a 429, after the time RateLimit asks for. */
	stack_fault(
		"{\"kind\": \"rate_limit\", \"t\": 1, \"path\": \"/tree/\", "
		"\"count\": 1}");
	check_tree(c, HUB_MODEL, "model", "acme/tiny-model", "main");
	stack_faults_fired();
	hub_client_free(c);
}

/* ---- Author listing and whoami ---------------------------------------- */

struct names {
	cJSON *seen;
};

static int on_name(void *arg, const char *id)
{
	struct names *n = arg;

	assert_null(cJSON_GetObjectItem(n->seen, id));
	cJSON_AddTrueToObject(n->seen, id);
	return 0;
}

/* The manifest's model repos of owner acme, private ones when asked. */
static int acme_models(bool with_private)
{
	cJSON *r;
	int n = 0;

	cJSON_ArrayForEach(r, cJSON_GetObjectItem(manifest, "repos"))
	{
		const char *id =
			cJSON_GetStringValue(cJSON_GetObjectItem(r, "id"));
		const char *t =
			cJSON_GetStringValue(cJSON_GetObjectItem(r, "type"));

		if (strcmp(t, "model") == 0 && strncmp(id, "acme/", 5) == 0 &&
		    (with_private ||
		     !cJSON_IsTrue(cJSON_GetObjectItem(r, "private"))))
			n++;
	}
	return n;
}

static void author_listing(void **state)
{
	struct hub_client *anon = client(NULL, 5);
	struct hub_client *carol = client(user_token("carol"), 5);
	struct names n = { cJSON_CreateObject() };
	struct hub_error err;

	(void)state;
	assert_int_equal(
		hub_list_author(anon, HUB_MODEL, "acme", on_name, &n, &err), 0);
	assert_int_equal(cJSON_GetArraySize(n.seen), acme_models(false));
	assert_non_null(cJSON_GetObjectItem(n.seen, "acme/tiny-model"));
	assert_null(cJSON_GetObjectItem(n.seen, "acme/secret-model"));
	cJSON_Delete(n.seen);

	n.seen = cJSON_CreateObject();
	assert_int_equal(
		hub_list_author(carol, HUB_MODEL, "acme", on_name, &n, &err),
		0);
	assert_int_equal(cJSON_GetArraySize(n.seen), acme_models(true));
	assert_non_null(cJSON_GetObjectItem(n.seen, "acme/secret-model"));
	cJSON_Delete(n.seen);

	n.seen = cJSON_CreateObject();
	assert_int_equal(
		hub_list_author(anon, HUB_DATASET, "acme", on_name, &n, &err),
		0);
	assert_non_null(cJSON_GetObjectItem(n.seen, "acme/tiny-dataset"));
	cJSON_Delete(n.seen);
	assert_int_equal(
		hub_list_author(anon, HUB_MODEL, "a/b", on_name, &n, &err),
		-EINVAL);
	hub_client_free(anon);
	hub_client_free(carol);
}

static void whoami(void **state)
{
	struct hub_client *anon = client(NULL, 5);
	struct hub_client *carol = client(user_token("carol"), 5);
	struct hub_client *bad = client(
		cJSON_GetStringValue(cJSON_GetObjectItem(tokens, "invalid")),
		5);
	struct hub_whoami me;
	struct hub_error err;

	(void)state;
	assert_int_equal(hub_whoami(carol, &me, &err), 0);
	assert_string_equal(me.name, "carol");
	assert_int_equal(me.n_orgs, 2);
	assert_true((strcmp(me.orgs[0], "acme") == 0 &&
		     strcmp(me.orgs[1], "bigco") == 0) ||
		    (strcmp(me.orgs[1], "acme") == 0 &&
		     strcmp(me.orgs[0], "bigco") == 0));
	assert_int_equal(hub_whoami(anon, &me, &err), -EIO);
	assert_int_equal(err.status, 401);
	assert_int_equal(hub_whoami(bad, &me, &err), -EIO);
	assert_int_equal(err.status, 401);
	assert_null(strstr(err.message, "hf_invalid"));
	hub_client_free(anon);
	hub_client_free(carol);
	hub_client_free(bad);
}

/* ---- The token file -------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void token_file(void **state)
{
	struct hub_config cfg = { .endpoint = endpoint, .stall_seconds = 5 };
	struct hub_token_source src;
	struct hub_client *c;
	struct hub_whoami me;
	struct hub_error err;
	struct stat st;
	char path[sizeof(tmpdir) + 16], bad[64], line[128];
	const char *alice = user_token("alice");

	(void)state;
	snprintf(path, sizeof(path), "%s/token", tmpdir);
	cfg.token_file = path;
	hub_token_source_find(&src, path);
	assert_int_equal(src.kind, HUB_TOKEN_FILE);
	assert_string_equal(src.where, path);

	/* Whitespace and CR/LF around the token are not part of it. */
	snprintf(line, sizeof(line), "  %s\r\n", user_token("bob"));
	write_file(path, line);
	assert_int_equal(hub_client_new(&c, &cfg), 0);
	assert_int_equal(hub_whoami(c, &me, &err), 0);
	assert_string_equal(me.name, "bob");

	/* A new token in the file is used from the next request on. */
	write_file(path, alice);
	assert_int_equal(hub_whoami(c, &me, &err), 0);
	assert_string_equal(me.name, "alice");

	/* A token the Hub refuses, same length as alice's. */
	snprintf(bad, sizeof(bad), "%s", alice);
	bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == '9' ? '8' : '9';
	write_file(path, bad);
	assert_int_equal(hub_whoami(c, &me, &err), -EIO);
	assert_int_equal(err.status, 401);

	/*
	 * Rewritten in place with its old mtime: stat() sees no change, so
	 * the 401 is what makes the client read the file again and retry.
	 */
	assert_int_equal(stat(path, &st), 0);
	write_file(path, alice);
	{
		struct timespec ts[2] = { st.st_atim, st.st_mtim };

		assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
	}
	assert_int_equal(hub_whoami(c, &me, &err), 0);
	assert_string_equal(me.name, "alice");

	/* An emptied file is no token. */
	write_file(path, "\n");
	assert_false(hub_client_has_token(c));
	hub_client_free(c);
}

static void token_sources(void **state)
{
	struct hub_token_source src;
	char want[sizeof(tmpdir) + 32];

	(void)state;
	setenv("HF_TOKEN", "hf_x", 1);
	setenv("HUGGING_FACE_HUB_TOKEN", "hf_y", 1);
	hub_token_source_find(&src, NULL);
	assert_int_equal(src.kind, HUB_TOKEN_ENV);
	assert_string_equal(src.where, "HF_TOKEN");
	unsetenv("HF_TOKEN");
	hub_token_source_find(&src, NULL);
	assert_string_equal(src.where, "HUGGING_FACE_HUB_TOKEN");
	unsetenv("HUGGING_FACE_HUB_TOKEN");
	hub_token_source_find(&src, "/some/file");
	assert_string_equal(src.where, "/some/file");
	hub_token_source_find(&src, NULL);
	snprintf(want, sizeof(want), "%s/home/token", tmpdir);
	assert_int_equal(src.kind, HUB_TOKEN_FILE);
	assert_string_equal(src.where, want);
	setenv("HF_TOKEN_PATH", "$HF_HOME/other", 1);
	hub_token_source_find(&src, NULL);
	snprintf(want, sizeof(want), "%s/home/other", tmpdir);
	assert_string_equal(src.where, want);
	unsetenv("HF_TOKEN_PATH");
	setenv("HF_ENDPOINT", "http://example.invalid:8080//", 1);
	assert_string_equal(default_endpoint(), "http://example.invalid:8080");
	unsetenv("HF_ENDPOINT");
	assert_string_equal(default_endpoint(), "https://huggingface.co");
}

/* ---- Fetch ----------------------------------------------------------- */

struct sink {
	uint64_t start; /* offset of the first byte */
	char *p;
	size_t n;
	bool out_of_order;
};

static int on_data(void *arg, uint64_t off, const void *data, size_t n)
{
	struct sink *s = arg;
	char *grown;

	if (off != s->start + s->n)
		s->out_of_order = true;
	grown = realloc(s->p, s->n + n + 1);
	if (!grown)
		return -ENOMEM;
	memcpy(grown + s->n, data, n);
	s->p = grown;
	s->n += n;
	return 0;
}

/*
 * Fetch [off, off+len) of the file at the manifest's ref of want_id,
 * asking for it as id, and compare with the manifest's bytes.  No cmocka
 * assertion here: worker threads call it too.  Returns "" or what failed.
 */
static const char *fetch_as(struct hub_client *c, enum hub_repo_type type,
			    const char *mtype, const char *id,
			    const char *want_id, const char *ref,
			    const char *path, uint64_t off, uint64_t len,
			    char *why, size_t size_why)
{
	cJSON *refs = cJSON_GetObjectItem(repo_of(mtype, want_id), "refs");
	const char *sha = cJSON_GetStringValue(cJSON_GetObjectItem(refs, ref));
	cJSON *commit = cJSON_GetObjectItem(
		cJSON_GetObjectItem(repo_of(mtype, want_id), "commits"), sha);
	cJSON *f =
		cJSON_GetObjectItem(cJSON_GetObjectItem(commit, "files"), path);
	size_t size = 0;
	char *want = stack_slurp(
		cJSON_GetStringValue(cJSON_GetObjectItem(f, "content")), &size);
	struct sink s = { .start = off };
	struct hub_error err;
	uint64_t end = len ? off + len : size;
	char buf[400];
	int rc;

	why[0] = '\0';
	if (!want) {
		snprintf(why, size_why, "%s not in the manifest", path);
		return why;
	}
	if (end > size)
		end = size;
	rc = stack_fetch(c, type, id, sha, path, off, len, on_data, &s, &err);
	if (rc != 0)
		snprintf(why, size_why, "fetch %s %s: %d %s", id, path, rc,
			 hub_error_describe(&err, buf, sizeof(buf)));
	else if (s.out_of_order)
		snprintf(why, size_why, "%s: offsets out of order", path);
	else if (s.n != end - off)
		snprintf(why, size_why, "%s: %zu bytes, want %llu", path, s.n,
			 (unsigned long long)(end - off));
	else if (s.n && memcmp(s.p, want + off, s.n) != 0)
		snprintf(why, size_why, "%s: wrong bytes", path);
	free(s.p);
	free(want);
	return why;
}

static void check_fetch(struct hub_client *c, enum hub_repo_type type,
			const char *mtype, const char *id, const char *ref,
			const char *path, uint64_t off, uint64_t len)
{
	char why[600];

	fetch_as(c, type, mtype, id, id, ref, path, off, len, why, sizeof(why));
	if (why[0])
		fail_msg("%s", why);
}

static uint64_t size_of(const char *mtype, const char *id, const char *ref,
			const char *path)
{
	cJSON *f = file_of(mtype, id, ref_of(mtype, id, ref), path);

	return (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(f, "size"));
}

static void fetch_files(void **state)
{
	struct hub_client *c = client(NULL, 5);
	const char *m = "acme/tiny-model";

	(void)state;
	check_fetch(c, HUB_MODEL, "model", m, "main", "config.json", 0, 0);
	check_fetch(c, HUB_MODEL, "model", m, "main", "model.safetensors", 0,
		    0);
	check_fetch(c, HUB_MODEL, "model", m, "main", "weights/xet-model.bin",
		    0, 0);
	check_fetch(c, HUB_MODEL, "model", m, "main",
		    "docs/with space/na\xc3\xafve caf\xc3\xa9.txt", 0, 0);
	check_fetch(c, HUB_MODEL, "model", m, "main",
		    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e/"
		    "\xe3\x83\x95\xe3\x82\xa1\xe3\x82\xa4\xe3\x83\xab.txt",
		    0, 0);
	check_fetch(c, HUB_MODEL, "model", m, "main", "empty.txt", 0, 0);
	check_fetch(c, HUB_MODEL, "model", m, "v1.0", "model.safetensors", 0,
		    0);
	check_fetch(c, HUB_DATASET, "dataset", "acme/tiny-dataset", "main",
		    "data/train.csv", 0, 0);
	check_fetch(c, HUB_DATASET, "dataset", "acme/tiny-dataset",
		    "refs/convert/parquet", "default/train/0000.parquet", 0, 0);
	check_fetch(c, HUB_SPACE, "space", "acme/demo-space", "main", "app.py",
		    0, 0);
	/* A renamed repo's old id still resolves (307 to the new name). */
	{
		char why[600];

		fetch_as(c, HUB_MODEL, "model", "acme/old-name",
			 "acme/new-name", "main", "weights.bin", 0, 0, why,
			 sizeof(why));
		assert_string_equal(why, "");
		fetch_as(c, HUB_MODEL, "model", "acme/old-name",
			 "acme/new-name", "main", "config.json", 0, 0, why,
			 sizeof(why));
		assert_string_equal(why, "");
	}
	hub_client_free(c);
}

static void fetch_ranges(void **state)
{
	struct hub_client *c = client(NULL, 5);
	const char *m = "acme/tiny-model";
	uint64_t big = size_of("model", m, "main", "model.safetensors");
	uint64_t cfg = size_of("model", m, "main", "config.json");
	struct sink s = { 0 };
	struct hub_error err;

	(void)state;
	check_fetch(c, HUB_MODEL, "model", m, "main", "model.safetensors", 1000,
		    5000);
	check_fetch(c, HUB_MODEL, "model", m, "main", "model.safetensors",
		    big - 7, 0);
	check_fetch(c, HUB_MODEL, "model", m, "main", "model.safetensors",
		    big - 7, 100); /* past the end: stops at it */
	check_fetch(c, HUB_MODEL, "model", m, "main", "config.json", 3, 4);
	check_fetch(c, HUB_MODEL, "model", m, "main", "config.json", 5, 0);
	/* At the end: nothing to read, no error (416 with offset == size). */
	check_fetch(c, HUB_MODEL, "model", m, "main", "model.safetensors", big,
		    0);
	check_fetch(c, HUB_MODEL, "model", m, "main", "config.json", cfg, 0);
	/* Past the end: an error. */
	assert_int_not_equal(
		stack_fetch(c, HUB_MODEL, m, ref_of("model", m, "main"),
			    "config.json", cfg + 10, 0, on_data, &s, &err),
		0);
	assert_int_equal(s.n, 0);
	hub_client_free(c);
}

static void fetch_errors(void **state)
{
	struct hub_client *anon = client(NULL, 5);
	struct hub_client *alice = client(user_token("alice"), 5);
	struct hub_config off = { .endpoint = endpoint, .offline = true };
	struct hub_client *offline = NULL;
	const char *m = "acme/tiny-model", *sha = ref_of("model", m, "main");
	struct sink s = { 0 };
	struct hub_repo_info info;
	struct hub_error err;

	(void)state;
	assert_int_equal(stack_fetch(anon, HUB_MODEL, m, sha, "no/such/file", 0,
				     0, on_data, &s, &err),
			 -EIO);
	assert_int_equal(err.status, 404);
	assert_string_equal(err.code, "EntryNotFound");
	assert_int_equal(hub_error_errno(&err), ENOENT);
	assert_int_equal(stack_fetch(anon, HUB_MODEL, m, "main", "config.json",
				     0, 0, on_data, &s, &err),
			 -EINVAL);
	assert_int_equal(stack_fetch(anon, HUB_MODEL, m, sha, "../config.json",
				     0, 0, on_data, &s, &err),
			 -EINVAL);
	/* Private: refused without the token, served with it. */
	sha = ref_of("model", "alice/private-notes", "main");
	assert_int_equal(stack_fetch(anon, HUB_MODEL, "alice/private-notes",
				     sha, "secret.bin", 0, 0, on_data, &s,
				     &err),
			 -EIO);
	assert_int_equal(hub_error_errno(&err), EACCES);
	check_fetch(alice, HUB_MODEL, "model", "alice/private-notes", "main",
		    "secret.bin", 0, 0);
	check_fetch(alice, HUB_MODEL, "model", "alice/private-notes", "main",
		    "notes.txt", 0, 0);
	/* Gated: the files need an approved user. */
	sha = ref_of("model", "bigco/gated-model", "main");
	assert_int_equal(stack_fetch(anon, HUB_MODEL, "bigco/gated-model", sha,
				     "config.json", 0, 0, on_data, &s, &err),
			 -EIO);
	assert_string_equal(err.code, "GatedRepo");
	check_fetch(alice, HUB_MODEL, "model", "bigco/gated-model", "main",
		    "model.safetensors", 0, 0);
	/* Offline: nothing goes out. */
	assert_int_equal(hub_client_new(&offline, &off), 0);
	assert_true(hub_client_offline(offline));
	assert_int_equal(
		hub_repo_info(offline, HUB_MODEL, m, NULL, &info, &err),
		-ENETDOWN);
	assert_int_equal(stack_fetch(offline, HUB_MODEL, m,
				     ref_of("model", m, "main"), "config.json",
				     0, 0, on_data, &s, &err),
			 -ENETDOWN);
	assert_int_equal(s.n, 0);
	free(s.p);
	hub_client_free(offline);
	hub_client_free(anon);
	hub_client_free(alice);
}

static void fetch_direct_modes(void **state)
{
	struct hub_client *c = client(NULL, 5);
	const char *m = "acme/tiny-model";

	(void)state;
	free(stack_control_ok(
		"POST", "/_emu/config",
		"{\"resolve_mode\": \"direct\", \"direct_lfs\": true}"));
	check_fetch(c, HUB_MODEL, "model", m, "main", "config.json", 2, 9);
	check_fetch(c, HUB_MODEL, "model", m, "main", "model.safetensors", 0,
		    0);
	check_fetch(c, HUB_MODEL, "model", m, "main", "model.safetensors", 4096,
		    4096);
	hub_client_free(c);
}

/* A fresh client per fault: remembered CDN URLs would bypass the fault. */
static void fetch_faults(void **state)
{
	const char *m = "acme/tiny-model";
	struct hub_client *c;

	(void)state;
	/* Cut mid-body on the CDN: resumed from the next byte. */
	c = client(NULL, 5);
	stack_log_clear();
	stack_fault(
		"{\"kind\": \"reset\", \"target\": \"cdn\", \"after\": 100000, "
		"\"count\": 1}");
	check_fetch(c, HUB_MODEL, "model", m, "main", "model.safetensors", 0,
		    0);
	stack_faults_fired();
	assert_int_equal(stack_poll_count(cdn_requests, "bytes=100000-", 1), 1);
	hub_client_free(c);

	/* Cut on the Hub's resolve-cache (a regular file). */
	c = client(NULL, 5);
	stack_log_clear();
	stack_fault("{\"kind\": \"reset\", \"path\": \"/resolve-cache/\", "
		    "\"after\": 5, \"count\": 1}");
	check_fetch(c, HUB_MODEL, "model", m, "main", "config.json", 0, 0);
	stack_faults_fired();
	/* Asked again, from where the bytes that made it stopped. */
	assert_int_equal(hub_requests("/resolve-cache/", NULL), 2);
	hub_client_free(c);

	/* A Range answered 200: the leading bytes are skipped. */
	c = client(NULL, 5);
	stack_fault(
		"{\"kind\": \"range_200\", \"target\": \"cdn\", \"count\": 1}");
	check_fetch(c, HUB_MODEL, "model", m, "main", "model.safetensors",
		    70000, 3000);
	stack_fault("{\"kind\": \"range_200\", \"path\": \"/resolve-cache/\", "
		    "\"count\": 1}");
	check_fetch(c, HUB_MODEL, "model", m, "main", "config.json", 4, 5);
	stack_faults_fired();
	hub_client_free(c);

	/*
	 * A 206 wider than the range asked (here the whole file): the bytes
	 * wanted are taken from it, the rest is skipped.
	 */
	c = client(NULL, 5);
	stack_fault("{\"kind\": \"range_wide\", \"target\": \"cdn\", "
		    "\"count\": 1}");
	check_fetch(c, HUB_MODEL, "model", m, "main", "model.safetensors",
		    70000, 3000);
	stack_fault("{\"kind\": \"range_wide\", \"path\": \"/resolve-cache/\", "
		    "\"count\": 1}");
	check_fetch(c, HUB_MODEL, "model", m, "main", "config.json", 4, 5);
	stack_faults_fired();
	hub_client_free(c);

	/* An expired signed URL: resolved again. */
	c = client(NULL, 5);
	stack_log_clear();
	stack_fault(
		"{\"kind\": \"expired\", \"target\": \"cdn\", \"count\": 1}");
	check_fetch(c, HUB_MODEL, "model", m, "main", "model.safetensors", 10,
		    10);
	assert_int_equal(hub_requests("/resolve/", NULL), 2);
	stack_faults_fired();
	/* The CDN URL is remembered: the next range asks the Hub nothing. */
	check_fetch(c, HUB_MODEL, "model", m, "main", "model.safetensors", 20,
		    10);
	assert_int_equal(hub_requests("/resolve/", NULL), 2);
	hub_client_free(c);

	/* Expired twice: resolved again once per attempt, then EACCES. */
	c = client(NULL, 5);
	stack_fault(
		"{\"kind\": \"expired\", \"target\": \"cdn\", \"count\": 2}");
	{
		struct sink s = { 0 };
		struct hub_error err;

		assert_int_equal(stack_fetch(c, HUB_MODEL, m,
					     ref_of("model", m, "main"),
					     "model.safetensors", 0, 10,
					     on_data, &s, &err),
				 -EIO);
		assert_int_equal(err.status, 403);
		assert_int_equal(hub_error_errno(&err), EACCES);
		free(s.p);
	}
	stack_faults_fired();
	hub_client_free(c);

	/* 502 from the CDN, 503 from the Hub, then a stall: retried. */
	c = client(NULL, 1);
	stack_fault(
		"{\"kind\": \"status\", \"status\": 502, \"target\": \"cdn\", "
		"\"count\": 1}");
	check_fetch(c, HUB_MODEL, "model", m, "main", "model.safetensors", 0,
		    0);
	stack_fault("{\"kind\": \"status\", \"status\": 503, \"path\": "
		    "\"/resolve/\", "
		    "\"count\": 1}");
	check_fetch(c, HUB_MODEL, "model", m, "main", "README.md", 0, 0);
	stack_fault("{\"kind\": \"stall\", \"path\": \"/resolve-cache/\", "
		    "\"after\": 3, \"seconds\": 10, \"count\": 1}");
	stack_log_clear();
	check_fetch(c, HUB_MODEL, "model", m, "main", "tokenizer/vocab.txt", 0,
		    0);
	stack_faults_fired();
	/* The stall was detected and the rest asked for from byte 3. */
	assert_int_equal(hub_requests("/resolve-cache/", "bytes=3-"), 1);
	hub_client_free(c);
}

struct worker {
	struct hub_client *c;
	int n;
	char why[600];
};

static void *work(void *arg)
{
	struct worker *w = arg;
	const char *m = "acme/tiny-model";

	for (int i = 0; i < 4 && !w->why[0]; i++) {
		fetch_as(w->c, HUB_MODEL, "model", m, m, "main",
			 "model.safetensors", (uint64_t)(w->n * 4096 + i),
			 65536, w->why, sizeof(w->why));
		if (!w->why[0])
			fetch_as(w->c, HUB_MODEL, "model", m, m, "main",
				 "config.json", 0, 0, w->why, sizeof(w->why));
	}
	return NULL;
}

static void fetch_threads(void **state)
{
	struct hub_client *c = client(user_token("alice"), 5);
	struct worker w[8];
	pthread_t t[8];

	(void)state;
	for (int i = 0; i < 8; i++) {
		w[i].c = c;
		w[i].n = i;
		w[i].why[0] = '\0';
		assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
	}
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 8; i++)
		assert_string_equal(w[i].why, "");
	hub_client_free(c);
}

/* Runs last: over everything above, the CDN never saw a token. */
static void cdn_never_saw_a_token(void **state)
{
	size_t len;
	char *log = stack_slurp(cdn_log, &len), *line, *nl;
	int lines = 0;

	(void)state;
	assert_non_null(log);
	for (line = log; *line; line = nl ? nl + 1 : line + strlen(line)) {
		cJSON *e;

		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (!*line)
			continue;
		e = cJSON_Parse(line);
		cJSON *auth = cJSON_GetObjectItem(e, "auth");

		assert_non_null(e);
		if (cJSON_IsNumber(auth))
			assert_int_equal(auth->valueint, 0);
		else
			assert_false(cJSON_IsTrue(auth));
		lines++;
		cJSON_Delete(e);
	}
	assert_true(lines > 10);
	free(log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(token_sources),
		cmocka_unit_test_setup(repo_info_kinds, reset_emulator),
		cmocka_unit_test_setup(repo_info_renamed_and_legacy,
				       reset_emulator),
		cmocka_unit_test_setup(repo_info_errors, reset_emulator),
		cmocka_unit_test_setup(private_repo, reset_emulator),
		cmocka_unit_test_setup(tree_paged, reset_emulator),
		cmocka_unit_test_setup(tree_variants, reset_emulator),
		cmocka_unit_test_setup(tree_errors, reset_emulator),
		cmocka_unit_test_setup(author_listing, reset_emulator),
		cmocka_unit_test_setup(whoami, reset_emulator),
		cmocka_unit_test_setup(token_file, reset_emulator),
		cmocka_unit_test_setup(fetch_files, reset_emulator),
		cmocka_unit_test_setup(fetch_ranges, reset_emulator),
		cmocka_unit_test_setup(fetch_errors, reset_emulator),
		cmocka_unit_test_setup(fetch_direct_modes, reset_emulator),
		cmocka_unit_test_setup(fetch_faults, reset_emulator),
		cmocka_unit_test_setup(fetch_threads, reset_emulator),
		cmocka_unit_test(cdn_never_saw_a_token),
	};

	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}

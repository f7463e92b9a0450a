/*
 * common.c - the options and set-up every subcommand shares.
 */
#include "cli.h"

#include <cjson/cJSON.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static bool env_true(const char *name)
{
	const char *v = getenv(name);

	return v && (strcasecmp(v, "1") == 0 || strcasecmp(v, "on") == 0 ||
		     strcasecmp(v, "yes") == 0 || strcasecmp(v, "true") == 0);
}

int cli_common_option(struct cli_common *c, int opt, const char *arg)
{
	switch (opt) {
	case 1000:
		c->cache_dir = arg;
		return 0;
	case 1001:
		c->endpoint = arg;
		return 0;
	case 1002:
		c->token_file = arg;
		return 0;
	case 1003:
		c->offline = true;
		return 0;
	case 1004:
		c->hf_cache = arg;
		c->no_hf_cache = false;
		return 0;
	case 1005:
		c->no_hf_cache = true;
		return 0;
	default:
		return -1;
	}
}

const char *cli_offline_reason(const struct cli_common *c)
{
	if (c->offline)
		return "--offline";
	if (env_true("HF_HUB_OFFLINE"))
		return "HF_HUB_OFFLINE";
	if (env_true("TRANSFORMERS_OFFLINE"))
		return "TRANSFORMERS_OFFLINE";
	return NULL;
}

/* dir, with a leading "~/" expanded, made absolute; allocated. */
static char *expand_path(const char *dir, const char *sub)
{
	const char *home = getenv("HOME");
	char cwd[PATH_MAX], *out = NULL;
	int n = -1;

	if (!dir || !*dir)
		return NULL;
	if (strcmp(dir, "~") == 0 || strncmp(dir, "~/", 2) == 0) {
		if (home && home[0] == '/')
			n = asprintf(&out, "%s%s%s", home, dir + 1, sub);
	} else if (dir[0] == '/')
		n = asprintf(&out, "%s%s", dir, sub);
	else if (getcwd(cwd, sizeof(cwd)))
		n = asprintf(&out, "%s/%s%s", cwd, dir, sub);
	return n < 0 ? NULL : out;
}

char *cli_hf_cache_dir(const struct cli_common *c, const char **from)
{
	static const char *const vars[] = { "HF_HUB_CACHE",
					    "HUGGINGFACE_HUB_CACHE" };
	const char *dummy, *v;

	if (!from)
		from = &dummy;
	if (c->no_hf_cache) {
		*from = "--no-hf-cache";
		return NULL;
	}
	if (c->hf_cache) {
		*from = "--hf-cache";
		return expand_path(c->hf_cache, "");
	}
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		v = getenv(vars[i]);
		if (v && *v) {
			*from = vars[i];
			return expand_path(v, "");
		}
	}
	v = getenv("HF_HOME");
	if (v && *v) {
		*from = "HF_HOME";
		return expand_path(v, "/hub");
	}
	v = getenv("XDG_CACHE_HOME");
	if (v && v[0] == '/') {
		*from = "XDG_CACHE_HOME";
		return expand_path(v, "/huggingface/hub");
	}
	*from = "HOME";
	return expand_path("~", "/.cache/huggingface/hub");
}

char *cli_store_dir(const struct cli_common *c)
{
	char *dir = c->cache_dir ? strdup(c->cache_dir) : db_default_dir();

	if (!dir && c->cache_dir)
		fprintf(stderr, "hubfs: out of memory\n");
	else if (!dir)
		fprintf(stderr, "hubfs: no store folder: set --cache-dir, "
				"XDG_CACHE_HOME or HOME\n");
	return dir;
}

int cli_store_open_existing(const char *dir, struct db_store **out)
{
	int rc;

	*out = NULL;
	if (!db_store_exists(dir))
		return 0;
	rc = db_store_open(out, dir);
	if (rc < 0) {
		fprintf(stderr, "hubfs: cannot open the store %s: %s\n", dir,
			rc == -EPROTO || rc == -EIO ? db_last_error()
						    : strerror(-rc));
		return CLI_EXIT_FAIL;
	}
	cli_report_repair(*out);
	return 0;
}

void cli_absolute(const char *path, char *out, size_t size)
{
	char cwd[PATH_MAX];
	int n = -1;

	if (realpath(path, out))
		return;
	if (path[0] != '/' && getcwd(cwd, sizeof(cwd)))
		n = snprintf(out, size, "%s/%s", cwd, path);
	if (n < 0 || (size_t)n >= size)
		snprintf(out, size, "%s", path);
}

int cli_print_json(cJSON *j)
{
	char *text = j ? cJSON_Print(j) : NULL;

	cJSON_Delete(j);
	if (!text) {
		fprintf(stderr, "hubfs: out of memory\n");
		return CLI_EXIT_FAIL;
	}
	printf("%s\n", text);
	cJSON_free(text);
	return 0;
}

const char *cli_human_size(uint64_t bytes, char *buf, size_t size)
{
	static const char *const units[] = { "KiB", "MiB", "GiB",
					     "TiB", "PiB", "EiB" };
	double v = (double)bytes;
	size_t u = 0;

	if (bytes < 1024) {
		snprintf(buf, size, "%llu B", (unsigned long long)bytes);
		return buf;
	}
	v /= 1024;
	while (v >= 1023.95 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	snprintf(buf, size, "%.1f %s", v, units[u]);
	return buf;
}

const char *cli_human_time(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || !localtime_r(&tt, &tm) ||
	    strftime(buf, size, "%Y-%m-%d %H:%M", &tm) == 0)
		snprintf(buf, size, "-");
	return buf;
}

int cli_parse_seconds(const char *arg, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno || end == arg || *end || v < 0) {
		fprintf(stderr, "hubfs: '%s' is not a number of seconds\n",
			arg);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

int cli_open(const struct cli_common *c, long stall_seconds,
	     struct hub_client **hub, struct db_store **store)
{
	struct hub_config cfg = { 0 };
	char *dir = cli_store_dir(c), endpoint[2048];
	int rc;

	*hub = NULL;
	*store = NULL;
	if (!dir)
		return CLI_EXIT_FAIL;
	cfg.endpoint = c->endpoint;
	cfg.token_file = c->token_file;
	cfg.offline = cli_offline_reason(c) != NULL;
	cfg.stall_seconds = stall_seconds;
	cfg.wait_out_pauses = c->wait_out_pauses;
	rc = hub_client_new(hub, &cfg);
	if (rc == -EINVAL) {
		hub_default_endpoint(endpoint, sizeof(endpoint));
		fprintf(stderr,
			"hubfs: the endpoint '%s'%s is not an http or https "
			"URL\n",
			c->endpoint ? c->endpoint : endpoint,
			c->endpoint ? "" : " (HF_ENDPOINT)");
		goto out;
	}
	if (rc < 0) {
		fprintf(stderr, "hubfs: cannot set up the Hub client: %s\n",
			strerror(-rc));
		goto out;
	}
	rc = db_store_open(store, dir);
	if (rc < 0)
		fprintf(stderr, "hubfs: cannot open the store %s: %s\n", dir,
			rc == -EPROTO || rc == -EIO ? db_last_error()
						    : strerror(-rc));
	else
		cli_report_repair(*store);
out:
	free(dir);
	if (rc < 0) {
		hub_client_free(*hub);
		*hub = NULL;
		return CLI_EXIT_FAIL;
	}
	return 0;
}

void cli_report_repair(struct db_store *s)
{
	const char *what = db_store_repaired(s);

	if (what)
		fprintf(stderr, "hubfs: %s\n", what);
}

int cli_parse_size(const char *arg, uint64_t *out)
{
	static const char units[] = "KMGTP";
	char *end;
	double v;
	const char *u;

	errno = 0;
	v = strtod(arg, &end);
	if (errno || end == arg || v < 0) {
		fprintf(stderr, "hubfs: '%s' is not a size (e.g. 50G)\n", arg);
		return -EINVAL;
	}
	if (*end && (u = strchr(units, toupper((unsigned char)*end))) != NULL) {
		for (const char *k = units; k <= u; k++)
			v *= 1024;
		end++;
		if (strcasecmp(end, "ib") == 0 || strcasecmp(end, "b") == 0)
			end += strlen(end);
	} else if (strcasecmp(end, "b") == 0) {
		end++;
	}
	if (*end || v >= 9.2e18) {
		fprintf(stderr, "hubfs: '%s' is not a size (e.g. 50G)\n", arg);
		return -EINVAL;
	}
	*out = (uint64_t)v;
	return 0;
}

/* "[datasets/|spaces/]owner/name[@rev]", rev percent-encoded or not. */
int cli_parse_target(const char *arg, struct cli_target *t)
{
	const char *at;
	size_t n;

	memset(t, 0, sizeof(*t));
	t->type = HUB_MODEL;
	if (strncmp(arg, "datasets/", 9) == 0) {
		t->type = HUB_DATASET;
		arg += 9;
	} else if (strncmp(arg, "spaces/", 7) == 0) {
		t->type = HUB_SPACE;
		arg += 7;
	}
	at = strchr(arg, '@');
	n = at ? (size_t)(at - arg) : strlen(arg);
	while (n > 0 && arg[n - 1] == '/')
		n--;
	if (n == 0 || n >= sizeof(t->id))
		return -EINVAL;
	memcpy(t->id, arg, n);
	t->id[n] = '\0';
	if (!hub_repo_id_valid(t->id))
		return -EINVAL;
	if (at && (!at[1] || hub_unescape(at + 1, &t->rev) < 0 || !t->rev[0])) {
		free(t->rev);
		t->rev = NULL;
		return -EINVAL;
	}
	return 0;
}

const char *cli_resolve_error(int rc)
{
	switch (rc) {
	case -ENOENT:
		return "no such repo or revision on the Hub";
	case -EACCES:
		return "the Hub refused access (a private or gated repo: is a "
		       "token set? see 'hubfs where')";
	case -EISDIR:
		return "that is an owner, not a repo: give owner/name";
	default:
		return strerror(-rc);
	}
}

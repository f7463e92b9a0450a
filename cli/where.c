/*
 * where.c - "hubfs where": the store, the token source, the endpoint and
 * offline mode that a mount with the same options and environment would
 * use.  Contacts nothing, creates nothing, and never prints the token:
 * only where it comes from.
 */
#include "cli.h"

#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct where {
	char store[PATH_MAX];
	const char *store_from; /* "--cache-dir", "XDG_CACHE_HOME", "HOME" */
	bool store_exists;
	char database[PATH_MAX + 16];
	bool database_exists;
	char damage[512]; /* why the index looks damaged, or "" */
	struct hub_token_source token;
	const char *token_state; /* NULL: usable as far as can be told */
	const char *endpoint;
	char endpoint_buf[2048];   /* HF_ENDPOINT or the default */
	const char *endpoint_from; /* "--endpoint", "HF_ENDPOINT", "default" */
	bool endpoint_valid;
	const char *offline_from; /* NULL: online */
	char *hf_cache;		  /* NULL: none */
	const char *hf_cache_from;
	bool hf_cache_exists;
};

static void where_usage(FILE *out)
{
	fprintf(out,
		"usage: hubfs where [OPTIONS]\n"
		"\n"
		"Print the store folder, its database, where the token comes "
		"from (never the\n"
		"token), the endpoint, whether hubfs runs offline and the "
		"huggingface_hub\n"
		"cache it takes files from, as a mount with the same options "
		"and environment\n"
		"would.\n"
		"\n" CLI_COMMON_HELP
		"  --json                  one JSON object, for scripts\n"
		"  -h, --help              this help\n");
}

static bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static int find_store(const struct cli_common *c, struct where *w)
{
	const char *xdg = getenv("XDG_CACHE_HOME");
	char *dir = cli_store_dir(c);

	if (!dir)
		return CLI_EXIT_FAIL;
	w->store_from = c->cache_dir	       ? "--cache-dir"
			: xdg && xdg[0] == '/' ? "XDG_CACHE_HOME"
					       : "HOME";
	cli_absolute(dir, w->store, sizeof(w->store));
	free(dir);
	w->store_exists = exists(w->store);
	db_index_path(w->store, w->database, sizeof(w->database));
	w->database_exists = db_store_exists(w->store);
	/* Opening it would create files: only its header is looked at. */
	if (w->store_exists && db_index_inspect(w->store) == -EIO)
		snprintf(w->damage, sizeof(w->damage), "%s", db_last_error());
	return 0;
}

static void find_token(const struct cli_common *c, struct where *w)
{
	hub_token_source_find(&w->token, c->token_file);
	if (w->token.kind != HUB_TOKEN_FILE)
		return;
	if (access(w->token.where, F_OK) < 0)
		w->token_state = errno == ENOENT ? "does not exist"
						 : "cannot be reached";
	else if (access(w->token.where, R_OK) < 0)
		w->token_state = "cannot be read";
}

/* The endpoint as the Hub client takes it: checked, no trailing '/'. */
static int find_endpoint(const struct cli_common *c, struct where *w,
			 struct hub_client **hub)
{
	struct hub_config cfg = { 0 };
	const char *env = getenv("HF_ENDPOINT");
	int rc;

	w->endpoint_from = c->endpoint	 ? "--endpoint"
			   : env && *env ? "HF_ENDPOINT"
					 : "default";
	hub_default_endpoint(w->endpoint_buf, sizeof(w->endpoint_buf));
	w->endpoint = c->endpoint ? c->endpoint : w->endpoint_buf;
	cfg.endpoint = c->endpoint;
	cfg.token_file = c->token_file;
	cfg.offline = true; /* nothing here goes to the network */
	rc = hub_client_new(hub, &cfg);
	if (rc == -EINVAL)
		return 0;
	if (rc < 0) {
		fprintf(stderr, "hubfs: cannot set up the Hub client: %s\n",
			strerror(-rc));
		return CLI_EXIT_FAIL;
	}
	w->endpoint_valid = true;
	w->endpoint = hub_client_endpoint(*hub);
	return 0;
}

static const char *token_kind(const struct hub_token_source *t)
{
	switch (t->kind) {
	case HUB_TOKEN_ENV:
		return "environment";
	case HUB_TOKEN_FILE:
		return "file";
	default:
		return "none";
	}
}

static void print_text(const struct where *w)
{
	printf("store     %s (from %s%s)\n", w->store, w->store_from,
	       w->store_exists ? "" : "; not created yet");
	printf("database  %s%s\n", w->database,
	       w->database_exists ? "" : " (not created yet)");
	if (w->damage[0])
		printf("damaged   %s; the next mount or command that opens "
		       "the store rebuilds it\n",
		       w->damage);
	if (w->token.kind == HUB_TOKEN_ENV)
		printf("token     %s (environment variable)\n", w->token.where);
	else if (w->token.kind == HUB_TOKEN_FILE)
		printf("token     %s (file%s%s)\n", w->token.where,
		       w->token_state ? "; " : "",
		       w->token_state ? w->token_state : "");
	else
		printf("token     none\n");
	printf("endpoint  %s (%s%s)\n", w->endpoint, w->endpoint_from,
	       w->endpoint_valid ? "" : "; not an http or https URL");
	if (w->offline_from)
		printf("offline   yes (%s)\n", w->offline_from);
	else
		printf("offline   no\n");
	if (w->hf_cache)
		printf("hf cache  %s (from %s%s)\n", w->hf_cache,
		       w->hf_cache_from,
		       w->hf_cache_exists ? "" : "; does not exist");
	else
		printf("hf cache  none (%s)\n", w->hf_cache_from);
}

static int print_json(const struct where *w)
{
	cJSON *o = cJSON_CreateObject(), *t = cJSON_CreateObject();

	if (!o || !t) {
		cJSON_Delete(t);
		cJSON_Delete(o);
		return cli_print_json(NULL);
	}
	cJSON_AddStringToObject(o, "store", w->store);
	cJSON_AddStringToObject(o, "store_from", w->store_from);
	cJSON_AddBoolToObject(o, "store_exists", w->store_exists);
	cJSON_AddStringToObject(o, "database", w->database);
	cJSON_AddBoolToObject(o, "database_exists", w->database_exists);
	if (w->damage[0])
		cJSON_AddStringToObject(o, "database_damage", w->damage);
	cJSON_AddStringToObject(t, "kind", token_kind(&w->token));
	cJSON_AddStringToObject(t, "where", w->token.where);
	if (w->token.kind == HUB_TOKEN_FILE)
		cJSON_AddBoolToObject(t, "exists", exists(w->token.where));
	cJSON_AddItemToObject(o, "token", t);
	cJSON_AddStringToObject(o, "endpoint", w->endpoint);
	cJSON_AddStringToObject(o, "endpoint_from", w->endpoint_from);
	cJSON_AddBoolToObject(o, "endpoint_valid", w->endpoint_valid);
	cJSON_AddBoolToObject(o, "offline", w->offline_from != NULL);
	if (w->offline_from)
		cJSON_AddStringToObject(o, "offline_from", w->offline_from);
	if (w->hf_cache)
		cJSON_AddStringToObject(o, "hf_cache", w->hf_cache);
	else
		cJSON_AddNullToObject(o, "hf_cache");
	cJSON_AddStringToObject(o, "hf_cache_from", w->hf_cache_from);
	cJSON_AddBoolToObject(o, "hf_cache_exists", w->hf_cache_exists);
	return cli_print_json(o);
}

int cli_where(int argc, char **argv)
{
	enum { OPT_JSON = 256, CLI_COMMON_OPT_ENUM };
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli_common common = { 0 };
	struct hub_client *hub = NULL;
	struct where w = { 0 };
	bool json = false;
	int c, rc;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (c == 'h') {
			where_usage(stdout);
			return CLI_EXIT_OK;
		} else if (c == OPT_JSON) {
			json = true;
		} else if (cli_common_option(&common, c, optarg) < 0) {
			where_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "hubfs where: unexpected argument '%s'\n",
			argv[optind]);
		return CLI_EXIT_USAGE;
	}
	rc = find_store(&common, &w);
	if (rc == 0)
		rc = find_endpoint(&common, &w, &hub);
	if (rc == 0) {
		find_token(&common, &w);
		w.offline_from = cli_offline_reason(&common);
		w.hf_cache = cli_hf_cache_dir(&common, &w.hf_cache_from);
		w.hf_cache_exists = w.hf_cache && exists(w.hf_cache);
		rc = json ? print_json(&w) : (print_text(&w), 0);
	}
	if (rc == 0 && !w.endpoint_valid) {
		fprintf(stderr,
			"hubfs: the endpoint '%s' is not an http or "
			"https URL\n",
			w.endpoint);
		rc = CLI_EXIT_FAIL;
	}
	hub_client_free(hub);
	free(w.hf_cache);
	return rc;
}

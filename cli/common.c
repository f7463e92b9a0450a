/*
 * common.c - the options and set-up every subcommand shares.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
	default:
		return -1;
	}
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
	char *dir = c->cache_dir ? strdup(c->cache_dir) : db_default_dir();
	int rc;

	*hub = NULL;
	*store = NULL;
	if (!dir) {
		fprintf(stderr, "hubfs: no store folder: set --cache-dir, "
				"XDG_CACHE_HOME or HOME\n");
		return CLI_EXIT_FAIL;
	}
	cfg.endpoint = c->endpoint;
	cfg.token_file = c->token_file;
	cfg.offline = c->offline || env_true("HF_HUB_OFFLINE") ||
		      env_true("TRANSFORMERS_OFFLINE");
	cfg.stall_seconds = stall_seconds;
	rc = hub_client_new(hub, &cfg);
	if (rc < 0) {
		fprintf(stderr, "hubfs: cannot set up the Hub client: %s\n",
			strerror(-rc));
		goto out;
	}
	rc = db_store_open(store, dir);
	if (rc < 0)
		fprintf(stderr, "hubfs: cannot open the store %s: %s\n", dir,
			strerror(-rc));
out:
	free(dir);
	if (rc < 0) {
		hub_client_free(*hub);
		*hub = NULL;
		return CLI_EXIT_FAIL;
	}
	return 0;
}

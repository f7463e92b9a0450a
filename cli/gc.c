/*
 * gc.c - "hubfs gc": remove what nothing refers to, and bring the store
 * within its size limit now.
 *
 * First the blobs that no tree in the index lists and no pin names (what
 * "hubfs forget" left, for one).  Then, when the store has a limit, the
 * least recently used files that no process has open go first,
 * complete ones before partly fetched ones (db_evict); a file a running
 * mount reads is held by its OFD lock and stays.  --dry-run says what
 * would go and removes nothing.
 */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

struct gc_opts {
	struct cli_common common;
	uint64_t max_cache; /* 0: the store's setting */
	bool dry_run;
};

static void gc_usage(FILE *out)
{
	fprintf(out,
		"usage: hubfs gc [OPTIONS]\n"
		"\n"
		"Remove the files no known repo lists any more (after 'hubfs "
		"forget'), then\n"
		"the least recently used ones that nothing has open or pins, "
		"until the store\n"
		"is within its size limit (--max-cache, kept in the store), "
		"if it has one.\n"
		"\n" CLI_COMMON_HELP
		"  --max-cache SIZE        the limit (e.g. 50G); it is kept "
		"for the mounts too\n"
		"  -n, --dry-run           say what would go, remove nothing\n"
		"  -h, --help              this help\n");
}

static int parse_gc(int argc, char **argv, struct gc_opts *o)
{
	enum { OPT_MAX_CACHE = 256, CLI_COMMON_OPT_ENUM };
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "max-cache", required_argument, NULL, OPT_MAX_CACHE },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "nh", longopts, NULL)) != -1) {
		if (c == 'h') {
			gc_usage(stdout);
			return -1;
		}
		if (c == 'n')
			o->dry_run = true;
		else if (c == OPT_MAX_CACHE &&
			 cli_parse_size(optarg, &o->max_cache) == 0)
			continue;
		else if (c == OPT_MAX_CACHE ||
			 cli_common_option(&o->common, c, optarg) != 0) {
			gc_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		gc_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	return 0;
}

static int report(void *arg, const char *etag, uint64_t bytes, bool partial)
{
	char size[32];

	printf("%s  %10s  %s%s\n", *(bool *)arg ? "would remove" : "removed",
	       cli_human_size(bytes, size, sizeof(size)), etag,
	       partial ? " (partly fetched)" : "");
	return 0;
}

/* The limit in force: the option (recorded), else the store's setting. */
static int limit_of(struct gc_opts *o, struct db_store *store, uint64_t *limit)
{
	int64_t v;

	if (o->max_cache) {
		*limit = o->max_cache;
		if (!o->dry_run && db_setting_put(store, DB_SETTING_MAX_CACHE,
						  (int64_t)o->max_cache) < 0) {
			fprintf(stderr,
				"hubfs: cannot record --max-cache: %s\n",
				db_last_error());
			return CLI_EXIT_FAIL;
		}
		return 0;
	}
	if (db_setting_get(store, DB_SETTING_MAX_CACHE, &v) == 0 && v > 0)
		*limit = (uint64_t)v;
	else
		*limit = UINT64_MAX; /* none */
	return 0;
}

int cli_gc(int argc, char **argv)
{
	struct gc_opts o = { 0 };
	struct hub_client *hub = NULL;
	struct db_store *store = NULL;
	uint64_t limit = 0, freed = 0, unref = 0, used = 0;
	char a[32], b[32], c[32];
	int rc = parse_gc(argc, argv, &o);

	if (rc)
		return rc < 0 ? CLI_EXIT_OK : rc;
	o.common.offline = true; /* gc asks the Hub nothing */
	rc = cli_open(&o.common, 60, &hub, &store);
	if (rc == 0)
		rc = limit_of(&o, store, &limit);
	if (rc == 0 &&
	    (db_evict_unreferenced(store, o.dry_run, report, &o.dry_run,
				   &unref) < 0 ||
	     (limit != UINT64_MAX && db_evict(store, limit, o.dry_run, report,
					      &o.dry_run, &freed) < 0))) {
		fprintf(stderr, "hubfs: gc: %s\n", db_last_error());
		rc = CLI_EXIT_FAIL;
	}
	freed += unref;
	if (rc == 0 && db_store_usage(store, &used) == 0) {
		if (o.dry_run)
			used = used > freed ? used - freed : 0;
		if (limit == UINT64_MAX)
			snprintf(c, sizeof(c), "no limit");
		else
			cli_human_size(limit, c, sizeof(c));
		printf("%s %s; the store %s %s (limit: %s)%s\n",
		       o.dry_run ? "would free" : "freed",
		       cli_human_size(freed, a, sizeof(a)),
		       o.dry_run ? "would hold" : "holds",
		       cli_human_size(used, b, sizeof(b)), c,
		       used > limit ? "; the rest is in use or pinned" : "");
	}
	db_store_close(store);
	hub_client_free(hub);
	return rc;
}

/*
 * status.c - "hubfs status": the store (where, how full against its limit,
 * what is pinned, how many blobs) and each mount running on it, as the
 * mount itself reports over its socket (fs_status_query): mount point,
 * endpoint, uptime, bytes served and fetched, hit rate, transfers.
 *
 * It contacts no Hub, works with no mount running, and creates no store:
 * on a store that does not exist yet it says so and succeeds.
 */
#include "cli.h"
#include "fs.h"

#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct store_facts {
	char dir[PATH_MAX];
	bool exists;
	uint64_t used;
	int64_t limit; /* 0: none */
	struct db_pin_usage pins;
	uint64_t complete, complete_bytes, partial, partial_bytes;
	uint64_t external, external_bytes; /* used in place, not counted */
};

static void status_usage(FILE *out)
{
	fprintf(out,
		"usage: hubfs status [OPTIONS]\n"
		"\n"
		"Print the store, its use against its size limit, what is "
		"pinned, and each\n"
		"mount running on it: mount point, endpoint, pid, uptime, "
		"bytes served to\n"
		"readers and fetched from the network, hit rate, transfers.\n"
		"\n" CLI_COMMON_HELP
		"  --json                  one JSON object, for scripts\n"
		"  -h, --help              this help\n");
}

static int read_store(struct store_facts *f, struct db_store *s)
{
	int rc = db_store_usage(s, &f->used);

	if (rc == 0)
		rc = db_pin_usage(s, &f->pins);
	if (rc == 0)
		rc = db_blob_usage(s, &f->complete_bytes, &f->complete);
	if (rc == 0)
		rc = db_partial_usage(s, &f->partial_bytes, &f->partial);
	if (rc == 0)
		rc = db_external_usage(s, &f->external_bytes, &f->external);
	if (rc == 0 &&
	    (db_setting_get(s, DB_SETTING_MAX_CACHE, &f->limit) < 0 ||
	     f->limit < 0))
		f->limit = 0;
	if (rc < 0)
		fprintf(stderr, "hubfs: reading the store %s: %s\n", f->dir,
			db_last_error());
	return rc;
}

/*
 * The store's facts; f->exists is false (and nothing else is read) when
 * the store has no index yet.  Returns 0 or an exit code.
 */
static int find_store(const struct cli_common *c, struct store_facts *f)
{
	char *dir = cli_store_dir(c);
	struct db_store *s = NULL;
	int rc;

	if (!dir)
		return CLI_EXIT_FAIL;
	cli_absolute(dir, f->dir, sizeof(f->dir));
	free(dir);
	rc = cli_store_open_existing(f->dir, &s);
	if (rc || !s)
		return rc; /* !s: opening it would create it */
	f->exists = true;
	snprintf(f->dir, sizeof(f->dir), "%s", db_store_dir(s));
	rc = read_store(f, s);
	db_store_close(s);
	return rc < 0 ? CLI_EXIT_FAIL : 0;
}

static uint64_t field(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) && v->valuedouble > 0
		       ? (uint64_t)v->valuedouble
		       : 0;
}

static const char *text_field(const cJSON *o, const char *key)
{
	const char *v =
		cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));

	return v ? v : "?";
}

/*
 * Each mount's answer, with what a reader wants computed: uptime and hit
 * rate (null before any read).  A mount that did not answer is
 * {"pid", "answered": false}.
 */
static int add_mount(void *arg, long pid, const cJSON *reply)
{
	cJSON *mounts = arg, *m;
	uint64_t reads;

	m = reply ? cJSON_Duplicate(reply, true) : cJSON_CreateObject();
	if (!m)
		return -ENOMEM;
	cJSON_AddItemToArray(mounts, m);
	if (!reply) {
		cJSON_AddNumberToObject(m, "pid", (double)pid);
		cJSON_AddBoolToObject(m, "answered", false);
		return 0;
	}
	cJSON_AddBoolToObject(m, "answered", true);
	cJSON_AddNumberToObject(
		m, "uptime",
		(double)(time(NULL) - (time_t)field(m, "started")));
	reads = field(m, "reads");
	if (reads)
		cJSON_AddNumberToObject(m, "hit_rate",
					(double)field(m, "reads_local") /
						(double)reads);
	else
		cJSON_AddNullToObject(m, "hit_rate");
	return 0;
}

static int add_ended(void *arg, long pid, const cJSON *m)
{
	cJSON *copy = cJSON_Duplicate(m, true);

	(void)pid;
	if (!copy)
		return -ENOMEM;
	cJSON_AddItemToArray(arg, copy);
	return 0;
}

static bool over_limit(const struct store_facts *f)
{
	return f->limit > 0 && f->used > (uint64_t)f->limit;
}

/* Above the limit, and what is pinned and held explains all of the excess. */
static bool over_because_pinned(const struct store_facts *f)
{
	return over_limit(f) &&
	       f->used - f->pins.complete_bytes <= (uint64_t)f->limit;
}

static const char *human_duration(uint64_t s, char *buf, size_t size)
{
	if (s >= 86400)
		snprintf(buf, size, "%llud %02lluh",
			 (unsigned long long)s / 86400,
			 (unsigned long long)s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(buf, size, "%lluh %02llum",
			 (unsigned long long)s / 3600,
			 (unsigned long long)s % 3600 / 60);
	else if (s >= 60)
		snprintf(buf, size, "%llum %02llus", (unsigned long long)s / 60,
			 (unsigned long long)s % 60);
	else
		snprintf(buf, size, "%llus", (unsigned long long)s);
	return buf;
}

static void print_store(const struct store_facts *f)
{
	char a[32], b[32], c[32];

	printf("store       %s\n", f->dir);
	if (f->limit > 0)
		printf("used        %s of %s (limit)\n",
		       cli_human_size(f->used, a, sizeof(a)),
		       cli_human_size((uint64_t)f->limit, b, sizeof(b)));
	else
		printf("used        %s (no limit)\n",
		       cli_human_size(f->used, a, sizeof(a)));
	if (over_because_pinned(f))
		printf("            above its limit because of pinned files: "
		       "pins are kept whatever the limit\n");
	else if (over_limit(f))
		printf("            above its limit: what is not pinned is in "
		       "use or not evicted yet ('hubfs gc')\n");
	if (f->pins.blobs)
		printf("pinned      %s in %llu files (%s of it fetched)\n",
		       cli_human_size(f->pins.bytes, a, sizeof(a)),
		       (unsigned long long)f->pins.blobs,
		       cli_human_size(f->pins.complete_bytes, b, sizeof(b)));
	else
		printf("pinned      nothing\n");
	printf("blobs       %llu complete (%s), %llu partly fetched (%s)\n",
	       (unsigned long long)f->complete,
	       cli_human_size(f->complete_bytes, b, sizeof(b)),
	       (unsigned long long)f->partial,
	       cli_human_size(f->partial_bytes, c, sizeof(c)));
	if (f->external)
		printf("in place    %llu files (%s) used where they lie, not "
		       "counted above\n",
		       (unsigned long long)f->external,
		       cli_human_size(f->external_bytes, a, sizeof(a)));
}

/* The last few of a mount's warnings and errors, newest last. */
#define ERRORS_SHOWN 5
static void print_errors(const cJSON *m, const char *indent)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(m, "last_errors");
	int n = cJSON_GetArraySize(a), i = 0;
	const cJSON *e;
	char when[32];

	if (n == 0)
		return;
	printf("%slast errors (%d kept; 'hubfs status --json' has all):\n",
	       indent, n);
	cJSON_ArrayForEach(e, a)
	{
		if (i++ < n - ERRORS_SHOWN)
			continue;
		printf("%s  %s %s: %s\n", indent,
		       cli_human_time((int64_t)field(e, "time"), when,
				      sizeof(when)),
		       text_field(e, "level"), text_field(e, "message"));
	}
}

static void print_mount(const cJSON *m)
{
	const cJSON *rate = cJSON_GetObjectItemCaseSensitive(m, "hit_rate");
	char a[32], b[32];

	if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(m, "answered"))) {
		printf("  pid %llu: running, but did not answer\n",
		       (unsigned long long)field(m, "pid"));
		return;
	}
	printf("  %s\n", text_field(m, "mountpoint"));
	printf("    endpoint    %s%s\n", text_field(m, "endpoint"),
	       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "offline"))
		       ? " (offline)"
		       : "");
	printf("    pid         %llu, up %s\n",
	       (unsigned long long)field(m, "pid"),
	       human_duration(field(m, "uptime"), a, sizeof(a)));
	printf("    served      %s to readers\n",
	       cli_human_size(field(m, "bytes_served"), a, sizeof(a)));
	printf("    fetched     %s from the network\n",
	       cli_human_size(field(m, "bytes_fetched"), b, sizeof(b)));
	if (cJSON_IsNumber(rate))
		printf("    hit rate    %.1f%% of %llu reads answered from the "
		       "store\n",
		       100 * rate->valuedouble,
		       (unsigned long long)field(m, "reads"));
	else
		printf("    hit rate    - (no reads yet)\n");
	printf("    transfers   %llu in flight, %llu queued\n",
	       (unsigned long long)field(m, "transfers_in_flight"),
	       (unsigned long long)field(m, "transfers_queued"));
	printf("    blobs open  %llu\n",
	       (unsigned long long)field(m, "blobs_open"));
	if (field(m, "xet_reconstructions") || field(m, "xet_fallbacks"))
		printf("    xet         %llu reconstructions, %s from xorbs, "
		       "%llu tokens, %llu runs fell back to the bridge\n",
		       (unsigned long long)field(m, "xet_reconstructions"),
		       cli_human_size(field(m, "xet_xorb_bytes"), a, sizeof(a)),
		       (unsigned long long)field(m, "xet_tokens"),
		       (unsigned long long)field(m, "xet_fallbacks"));
	print_errors(m, "    ");
	if (field(m, "resolves_held_until") > (uint64_t)time(NULL))
		printf("    held        new files wait %llu s for the Hub's "
		       "rate limit (until %s)\n",
		       (unsigned long long)(field(m, "resolves_held_until") -
					    (uint64_t)time(NULL)),
		       cli_human_time((int64_t)field(m, "resolves_held_until"),
				      a, sizeof(a)));
}

static void print_ended(const cJSON *ended)
{
	const cJSON *m;

	if (cJSON_GetArraySize(ended) == 0)
		return;
	printf("ended       %d mount%s left errors\n",
	       cJSON_GetArraySize(ended),
	       cJSON_GetArraySize(ended) == 1 ? "" : "s");
	cJSON_ArrayForEach(m, ended)
	{
		printf("  %s (pid %llu, no longer running)\n",
		       text_field(m, "mountpoint"),
		       (unsigned long long)field(m, "pid"));
		print_errors(m, "    ");
	}
}

static void print_text(const struct store_facts *f, const cJSON *mounts,
		       const cJSON *ended)
{
	int n = cJSON_GetArraySize(mounts);
	const cJSON *m;

	if (!f->exists) {
		printf("store       %s (does not exist yet)\n", f->dir);
		printf("mounts      none running\n");
		return;
	}
	print_store(f);
	if (n == 0)
		printf("mounts      none running\n");
	else
		printf("mounts      %d running\n", n);
	cJSON_ArrayForEach(m, mounts) print_mount(m);
	print_ended(ended);
}

static cJSON *store_json(const struct store_facts *f)
{
	cJSON *o = cJSON_CreateObject(), *p, *b;

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "store", f->dir);
	cJSON_AddBoolToObject(o, "store_exists", f->exists);
	if (!f->exists)
		return o;
	hub_json_add_u64(o, "used", f->used);
	if (f->limit > 0)
		hub_json_add_u64(o, "limit", (uint64_t)f->limit);
	else
		cJSON_AddNullToObject(o, "limit");
	cJSON_AddBoolToObject(o, "over_limit", over_limit(f));
	cJSON_AddBoolToObject(o, "over_limit_pinned", over_because_pinned(f));
	p = cJSON_AddObjectToObject(o, "pinned");
	if (p) {
		hub_json_add_u64(p, "files", f->pins.blobs);
		hub_json_add_u64(p, "bytes", f->pins.bytes);
		hub_json_add_u64(p, "fetched_bytes", f->pins.complete_bytes);
	}
	b = cJSON_AddObjectToObject(o, "blobs");
	if (b) {
		hub_json_add_u64(b, "complete", f->complete);
		hub_json_add_u64(b, "complete_bytes", f->complete_bytes);
		hub_json_add_u64(b, "partial", f->partial);
		hub_json_add_u64(b, "partial_bytes", f->partial_bytes);
		hub_json_add_u64(b, "external", f->external);
		hub_json_add_u64(b, "external_bytes", f->external_bytes);
	}
	return o;
}

static int print_json(const struct store_facts *f, cJSON *mounts, cJSON *ended)
{
	cJSON *o = store_json(f);

	if (o && (!cJSON_AddItemReferenceToObject(o, "mounts", mounts) ||
		  !cJSON_AddItemReferenceToObject(o, "ended_mounts", ended))) {
		cJSON_Delete(o);
		o = NULL;
	}
	return cli_print_json(o);
}

static int parse_status(int argc, char **argv, struct cli_common *common,
			bool *json)
{
	enum { OPT_JSON = 256, CLI_COMMON_OPT_ENUM };
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (c == 'h') {
			status_usage(stdout);
			return -1;
		}
		if (c == OPT_JSON) {
			*json = true;
		} else if (cli_common_option(common, c, optarg) < 0) {
			status_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "hubfs status: unexpected argument '%s'\n",
			argv[optind]);
		return CLI_EXIT_USAGE;
	}
	return 0;
}

int cli_status(int argc, char **argv)
{
	struct cli_common common = { 0 };
	struct store_facts f = { 0 };
	cJSON *mounts = NULL, *ended = NULL;
	bool json = false;
	int rc = parse_status(argc, argv, &common, &json);

	if (rc)
		return rc < 0 ? CLI_EXIT_OK : rc;
	rc = find_store(&common, &f);
	if (rc)
		return rc;
	mounts = cJSON_CreateArray();
	ended = cJSON_CreateArray();
	if (!mounts || !ended) {
		cJSON_Delete(mounts);
		cJSON_Delete(ended);
		fprintf(stderr, "hubfs: out of memory\n");
		return CLI_EXIT_FAIL;
	}
	if (f.exists) {
		rc = fs_status_query(f.dir, "status", add_mount, mounts);
		if (rc < 0)
			fprintf(stderr,
				"hubfs: cannot ask the running mounts: %s\n",
				strerror(-rc));
		/* After the query: sockets of dead mounts are gone by now. */
		if (rc == 0)
			rc = fs_status_ended(f.dir, add_ended, ended);
		if (rc < 0)
			fprintf(stderr,
				"hubfs: cannot read what ended mounts left: "
				"%s\n",
				strerror(-rc));
	}
	if (json && print_json(&f, mounts, ended) != 0)
		rc = -ENOMEM;
	else if (!json)
		print_text(&f, mounts, ended);
	cJSON_Delete(mounts);
	cJSON_Delete(ended);
	return rc < 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

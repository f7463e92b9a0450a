/*
 * pull.c - "hubfs pull REPO[@REV] [PATTERN...]": fetch files into the
 * store ahead of time and pin them, so they read at local speed, offline
 * too, and the size limit keeps them.
 *
 * The bytes come through the same read path a mount uses (fs_pull), so a
 * pull and a running mount share blobs without fetching anything twice,
 * and an interrupted pull resumes: the blocks it made durable are marked
 * in the index and the next pull fetches only the rest.
 *
 * Before fetching, the pull checks that what it needs fits on the store's
 * disk (evicting unused files if that makes room); a pull that cannot fit
 * stops there, with nothing fetched.  Pins win over the size limit.
 */
#include "cli.h"
#include "fs.h"

#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define RESERVE                                                                \
	(64ULL << 20) /* left free on the disk beyond what is pulled           \
		       */

struct pull_opts {
	struct cli_common common;
	bool no_pin, quiet;
	long read_timeout;
	const char *repo;
	char **patterns;
	int npatterns;
};

static void pull_usage(FILE *out)
{
	fprintf(out,
		"usage: hubfs pull [OPTIONS] REPO[@REV] [PATTERN...]\n"
		"\n"
		"Fetch a repo's files into the store now, so they read at "
		"local speed and\n"
		"offline, and pin them: gc and the size limit keep them until "
		"'hubfs unpin'.\n"
		"REPO is owner/name, datasets/owner/name or "
		"spaces/owner/name; REV a branch,\n"
		"tag or commit (default: the default branch).  With PATTERNs "
		"(shell globs\n"
		"such as '*.safetensors' or config.json, matched against the "
		"path in the\n"
		"repo; '*' also matches '/'), only the matching files.  An "
		"interrupted pull\n"
		"resumes where it stopped.\n"
		"\n" CLI_COMMON_HELP
		"  --no-pin                fetch without pinning\n"
		"  --read-timeout SECONDS  give up on a file whose bytes make "
		"no progress for\n"
		"                          this long (default 60)\n"
		"  -q, --quiet             no progress, only the summary and "
		"errors\n"
		"  -h, --help              this help\n");
}

static int parse_pull(int argc, char **argv, struct pull_opts *o)
{
	enum { OPT_NO_PIN = 256, OPT_READ_TIMEOUT, CLI_COMMON_OPT_ENUM };
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "no-pin", no_argument, NULL, OPT_NO_PIN },
		{ "read-timeout", required_argument, NULL, OPT_READ_TIMEOUT },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->read_timeout = FS_READ_TIMEOUT;
	while ((c = getopt_long(argc, argv, "qh", longopts, NULL)) != -1) {
		if (c == 'h') {
			pull_usage(stdout);
			return -1;
		} else if (c == 'q') {
			o->quiet = true;
		} else if (c == OPT_NO_PIN) {
			o->no_pin = true;
		} else if (c == OPT_READ_TIMEOUT) {
			if (cli_parse_seconds(optarg, &o->read_timeout) < 0 ||
			    o->read_timeout == 0) {
				fprintf(stderr, "hubfs pull: --read-timeout "
						"must be at least 1 second\n");
				return CLI_EXIT_USAGE;
			}
		} else if (cli_common_option(&o->common, c, optarg) < 0) {
			pull_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		pull_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	o->repo = argv[optind];
	o->patterns = argv + optind + 1;
	o->npatterns = argc - optind - 1;
	return 0;
}

/* ---- Which files ------------------------------------------------------- */

struct selection {
	struct pull_opts *o;
	bool *matched; /* per pattern */
	struct fs_pull_item *items;
	size_t n, cap;
	uint64_t need; /* bytes not in the store yet */
};

/*
 * huggingface_hub's allow_patterns: fnmatch, '*' crossing '/'; a pattern
 * that ends in '/' is a folder and everything under it.
 */
static bool pattern_match(const char *pattern, const char *path)
{
	size_t n = strlen(pattern);
	char buf[4200];

	if (n > 0 && pattern[n - 1] == '/' && n + 2 < sizeof(buf)) {
		snprintf(buf, sizeof(buf), "%s*", pattern);
		pattern = buf;
	}
	return fnmatch(pattern, path, 0) == 0;
}

static int select_file(void *arg, const struct db_report_file *f)
{
	struct selection *s = arg;
	bool want = s->o->npatterns == 0;
	struct fs_pull_item *it;

	for (int i = 0; i < s->o->npatterns; i++) {
		if (pattern_match(s->o->patterns[i], f->path)) {
			s->matched[i] = true;
			want = true;
		}
	}
	if (!want)
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;
		void *p = realloc(s->items, cap * sizeof(*s->items));

		if (!p)
			return -ENOMEM;
		s->items = p;
		s->cap = cap;
	}
	it = &s->items[s->n];
	memset(it, 0, sizeof(*it));
	it->path = strdup(f->path);
	it->etag = strdup(f->etag);
	if (!it->path || !it->etag) {
		free((char *)it->path);
		free((char *)it->etag);
		return -ENOMEM;
	}
	s->n++;
	it->size = f->size;
	it->lfs = f->lfs;
	snprintf(it->xet, sizeof(it->xet), "%s", f->xet);
	it->local = f->complete ? f->size : f->local;
	s->need += f->size - it->local;
	return 0;
}

static void selection_clear(struct selection *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free((char *)s->items[i].path);
		free((char *)s->items[i].etag);
	}
	s->n = 0;
	s->need = 0;
}

static int select_files(struct db_store *store, int64_t tree,
			struct selection *s)
{
	int rc;

	selection_clear(s);
	memset(s->matched, 0, (size_t)s->o->npatterns * sizeof(bool));
	rc = db_report_files(store, tree, select_file, s);
	if (rc < 0)
		fprintf(stderr, "hubfs pull: reading the file list: %s\n",
			rc == -ENOMEM ? strerror(ENOMEM) : db_last_error());
	return rc < 0 ? CLI_EXIT_FAIL : 0;
}

/* ---- Room on the disk -------------------------------------------------- */

static int disk_free(const char *dir, uint64_t *avail, uint64_t *reserve)
{
	struct statvfs sv;
	uint64_t size;

	if (statvfs(dir, &sv) < 0)
		return -errno;
	*avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	size = (uint64_t)sv.f_blocks * sv.f_frsize;
	*reserve = size / 20 < RESERVE ? size / 20 : RESERVE;
	return 0;
}

/*
 * What the pull needs must fit on the store's disk, with RESERVE to
 * spare; unused, unpinned files are evicted when that makes it fit.
 * Nothing is fetched when it does not.
 */
static int check_room(struct db_store *store, int64_t tree, struct selection *s)
{
	const char *dir = db_store_dir(store);
	uint64_t avail = 0, reserve = 0, used, freed = 0;
	char a[32], b[32];
	int rc = disk_free(dir, &avail, &reserve);

	if (rc < 0) {
		fprintf(stderr, "hubfs pull: %s: %s\n", dir, strerror(-rc));
		return CLI_EXIT_FAIL;
	}
	if (s->need + reserve <= avail)
		return 0;
	if (db_store_usage(store, &used) == 0) {
		uint64_t short_by = s->need + reserve - avail;

		db_evict(store, used > short_by ? used - short_by : 0, false,
			 NULL, NULL, &freed);
		/* Eviction may have taken partial files of this pull. */
		if (freed && (rc = select_files(store, tree, s)) != 0)
			return rc;
		if (disk_free(dir, &avail, &reserve) == 0 &&
		    s->need + reserve <= avail)
			return 0;
	}
	fprintf(stderr,
		"hubfs pull: %s needs %s, and the disk of the store %s has "
		"%s free%s;\nnothing was fetched: free some space, or pull "
		"fewer files (PATTERN...)\n",
		s->o->repo, cli_human_size(s->need, a, sizeof(a)), dir,
		cli_human_size(avail, b, sizeof(b)),
		freed ? " after removing unused files" : "");
	return CLI_EXIT_FAIL;
}

/* ---- Progress ---------------------------------------------------------- */

struct progress {
	bool tty;
	bool quiet;
	struct timespec start;
	size_t printed; /* files reported done, non-tty */
	struct fs_pull_item *items;
	size_t n;
	bool *told; /* per item: its line was printed */
	int width;  /* of the bar line, tty */
};

static double elapsed(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) +
	       (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

static void eta_text(double seconds, char *buf, size_t size)
{
	long s = (long)(seconds + 0.5);

	if (seconds < 0 || seconds > 99 * 3600.0)
		snprintf(buf, size, "--:--");
	else if (s >= 3600)
		snprintf(buf, size, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60,
			 s % 60);
	else
		snprintf(buf, size, "%ld:%02ld", s / 60, s % 60);
}

static void draw_bar(struct progress *pg, const struct fs_pull_progress *p)
{
	char done[32], total[32], rate[32], eta[48], tail[200];
	double t = elapsed(&pg->start);
	uint64_t got = p->done > p->at_start ? p->done - p->at_start : 0;
	double bps = t > 0.2 ? (double)got / t : 0;
	int pct = p->total ? (int)(100.0 * (double)p->done / (double)p->total)
			   : 100;
	int bar, fill;

	/* Every byte may be here while the last check still runs. */
	if (pct >= 100 && p->files_done < p->files)
		pct = 99;

	eta_text(bps > 0 ? (double)(p->total - p->done) / bps : -1, eta,
		 sizeof(eta));
	snprintf(tail, sizeof(tail), " %3d%% %s/%s %s/s ETA %s %zu/%zu files",
		 pct, cli_human_size(p->done, done, sizeof(done)),
		 cli_human_size(p->total, total, sizeof(total)),
		 cli_human_size((uint64_t)bps, rate, sizeof(rate)), eta,
		 p->files_done, p->files);
	bar = pg->width - (int)strlen(tail) - 3;
	if (bar > 40)
		bar = 40;
	fputc('\r', stderr);
	if (bar >= 10) {
		fill = bar * pct / 100;
		fputc('[', stderr);
		for (int i = 0; i < bar; i++)
			fputc(i < fill ? '#' : '.', stderr);
		fputc(']', stderr);
	}
	fputs(tail, stderr);
	fputs("\033[K", stderr); /* clear what a longer line left */
	fflush(stderr);
}

/* Not a terminal: a line per file as it is done. */
static void print_lines(struct progress *pg)
{
	char size[32];

	for (size_t i = 0; i < pg->n; i++) {
		struct fs_pull_item *it = &pg->items[i];

		if (pg->told[i] || !it->done)
			continue;
		pg->told[i] = true;
		if (it->rc == 0)
			printf("%s  %s%s\n",
			       cli_human_size(it->size, size, sizeof(size)),
			       it->path,
			       it->local == it->size ? "  (was local)" : "");
		fflush(stdout);
	}
}

static void on_progress(void *arg, const struct fs_pull_progress *p)
{
	struct progress *pg = arg;

	if (pg->quiet)
		return;
	if (pg->tty)
		draw_bar(pg, p);
	else
		print_lines(pg);
}

/* ---- The command ------------------------------------------------------- */

/* The context being pulled on: set before the handler, unset before it
   is closed (atomic: the handler may run on any thread). */
static struct fs_ctx *pulling;

static void on_signal(int sig)
{
	struct fs_ctx *ctx = __atomic_load_n(&pulling, __ATOMIC_SEQ_CST);

	(void)sig;
	if (ctx)
		fs_pull_stop(ctx);
}

static void catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

static int pin(struct db_store *store, const struct fs_repo *r,
	       const struct cli_target *t, const struct selection *s)
{
	struct db_pin *pins = calloc(s->n ? s->n : 1, sizeof(*pins));
	int rc;

	if (!pins)
		return CLI_EXIT_FAIL;
	for (size_t i = 0; i < s->n; i++) {
		pins[i].etag = s->items[i].etag;
		pins[i].size = s->items[i].size;
	}
	rc = db_pin_add(store, r->repo, t->rev ? t->rev : "", pins, s->n);
	free(pins);
	if (rc < 0) {
		fprintf(stderr, "hubfs pull: recording the pins: %s\n",
			db_last_error());
		return CLI_EXIT_FAIL;
	}
	return 0;
}

static int summary(struct pull_opts *o, const struct fs_repo *r,
		   const struct selection *s, const struct progress *pg, int rc,
		   struct db_store *store)
{
	uint64_t fetched = 0, local = 0, used;
	size_t failed = 0, was_local = 0;
	char a[32], b[32], c[32];
	double t = elapsed(&pg->start);
	int64_t limit;

	for (size_t i = 0; i < s->n; i++) {
		const struct fs_pull_item *it = &s->items[i];

		if (it->rc == 0 && it->local == it->size)
			was_local++;
		if (it->rc == 0)
			fetched += it->size - it->local;
		local += it->local;
		if (it->rc < 0 && it->rc != -EINTR) {
			failed++;
			fprintf(stderr, "hubfs pull: %s: %s\n", it->path,
				it->rc == -EIO ? "transfer or check failed "
						 "(see the lines above)"
					       : strerror(-it->rc));
		}
	}
	printf("%s %s@%.12s: %zu file%s; fetched %s in %.1f s (%s/s)%s\n",
	       rc == -EINTR ? "interrupted"
	       : failed	    ? "incomplete"
			    : "pulled",
	       r->id, r->commit, s->n, s->n == 1 ? "" : "s",
	       cli_human_size(fetched, a, sizeof(a)), t,
	       cli_human_size(t > 0 ? (uint64_t)((double)fetched / t) : 0, b,
			      sizeof(b)),
	       o->no_pin ? "" : "; pinned");
	if (was_local)
		printf("%zu file%s (%s) were already in the store\n", was_local,
		       was_local == 1 ? "" : "s",
		       cli_human_size(local, c, sizeof(c)));
	if (rc == -EINTR)
		printf("what was fetched is kept: run the same pull again to "
		       "resume\n");
	if (db_setting_get(store, DB_SETTING_MAX_CACHE, &limit) == 0 &&
	    limit > 0 && db_store_usage(store, &used) == 0 &&
	    used > (uint64_t)limit)
		printf("the store holds %s, above its limit of %s: pinned "
		       "files are kept ('hubfs unpin' releases them)\n",
		       cli_human_size(used, a, sizeof(a)),
		       cli_human_size((uint64_t)limit, b, sizeof(b)));
	return rc == -EINTR ? 130 : failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

static int terminal_width(void)
{
	struct winsize ws;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
		return ws.ws_col;
	return 80;
}

/* Resolve, select, check room, pin, fetch. */
static int run_pull(struct pull_opts *o, const struct cli_target *t,
		    struct hub_client *hub, struct db_store *store,
		    struct selection *s)
{
	struct fs_config cfg;
	struct progress pg = { .quiet = o->quiet };
	struct fs_ctx *ctx = NULL;
	struct fs_repo r;
	/* Files the huggingface_hub cache has are used there, not fetched. */
	char *hf_cache = cli_hf_cache_dir(&o->common, NULL);
	int rc;

	fs_config_defaults(&cfg);
	cfg.hub = hub;
	cfg.store = store;
	cfg.read_timeout = o->read_timeout;
	cfg.hf_cache = hf_cache;
	rc = fs_ctx_open(&ctx, &cfg);
	if (rc < 0) {
		fprintf(stderr, "hubfs pull: %s\n", strerror(-rc));
		free(hf_cache);
		return CLI_EXIT_FAIL;
	}
	rc = fs_repo_resolve(ctx, t->type, t->id, t->rev, &r);
	if (rc < 0) {
		fprintf(stderr, "hubfs pull: %s: %s\n", o->repo,
			cli_resolve_error(rc));
		rc = CLI_EXIT_FAIL;
		goto out;
	}
	if ((rc = select_files(store, r.tree, s)) != 0)
		goto out;
	for (int i = 0; i < o->npatterns; i++)
		if (!s->matched[i])
			fprintf(stderr,
				"hubfs pull: no file of %s@%.12s matches "
				"'%s'\n",
				r.id, r.commit, o->patterns[i]);
	if (s->n == 0) {
		rc = CLI_EXIT_FAIL;
		goto out;
	}
	if ((rc = check_room(store, r.tree, s)) != 0)
		goto out;
	if (!o->no_pin && (rc = pin(store, &r, t, s)) != 0)
		goto out;

	pg.tty = isatty(STDERR_FILENO) && !o->quiet;
	pg.width = terminal_width();
	pg.items = s->items;
	pg.n = s->n;
	pg.told = calloc(s->n, sizeof(bool));
	if (!pg.told) {
		rc = CLI_EXIT_FAIL;
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &pg.start);
	__atomic_store_n(&pulling, ctx, __ATOMIC_SEQ_CST);
	catch_signals();
	rc = fs_pull(ctx, &r, s->items, s->n, on_progress, &pg);
	__atomic_store_n(&pulling, NULL, __ATOMIC_SEQ_CST);
	if (pg.tty)
		fputc('\n', stderr);
	fs_ctx_close(ctx); /* what is durable gets recorded */
	ctx = NULL;
	rc = summary(o, &r, s, &pg, rc, store);
out:
	free(pg.told);
	fs_ctx_close(ctx);
	free(hf_cache);
	return rc;
}

int cli_pull(int argc, char **argv)
{
	struct pull_opts o = { 0 };
	struct hub_client *hub = NULL;
	struct db_store *store = NULL;
	struct selection s = { .o = &o };
	struct cli_target t = { 0 };
	const char *why;
	int rc = parse_pull(argc, argv, &o);

	if (rc)
		return rc < 0 ? CLI_EXIT_OK : rc;
	if (cli_parse_target(o.repo, &t) < 0) {
		fprintf(stderr,
			"hubfs pull: '%s' is not a repo: owner/name, "
			"datasets/owner/name or spaces/owner/name, optionally "
			"@REVISION\n",
			o.repo);
		return CLI_EXIT_USAGE;
	}
	if ((why = cli_offline_reason(&o.common)) != NULL) {
		fprintf(stderr,
			"hubfs pull: cannot fetch anything offline "
			"(%s)\n",
			why);
		free(t.rev);
		return CLI_EXIT_FAIL;
	}
	s.matched = calloc((size_t)o.npatterns + 1, sizeof(bool));
	/* Nobody waits on a reader here: the Hub's pauses are slept out. */
	o.common.wait_out_pauses = true;
	rc = s.matched ? cli_open(&o.common, o.read_timeout, &hub, &store)
		       : CLI_EXIT_FAIL;
	if (rc == 0 && fs_log_open(NULL, true) == 0) {
		fs_log_set_level(LOG_WARNING);
		rc = run_pull(&o, &t, hub, store, &s);
	}
	selection_clear(&s);
	free(s.items);
	free(s.matched);
	free(t.rev);
	db_store_close(store);
	hub_client_free(hub);
	return rc;
}

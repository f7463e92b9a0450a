/*
 * verify.c - "hubfs verify [REPO...]": hash complete files again.
 *
 * Every blob was checked when it was completed; this reads each one (or
 * each one a repo's known commits list) again and compares its hash with
 * its name.  A blob that fails is removed, so the next read fetches it
 * again, and reported.  A running mount that has the file open keeps
 * what it has open until it closes it.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct verify {
	struct db_store *s;
	char (*seen)[65]; /* etags checked for earlier trees, sorted */
	size_t nseen;
	bool quiet;
	uint64_t checked, bytes, bad, missing;
	const char *label; /* a repo file's path, else NULL */
};

static void verify_usage(FILE *out)
{
	fprintf(out,
		"usage: hubfs verify [OPTIONS] [REPO[@REV]...]\n"
		"\n"
		"Hash every complete file in the store again (or those of each "
		"REPO's known\n"
		"commits, or of REV only), and remove any whose content does "
		"not "
		"match its\n"
		"hash, so that the next read fetches it again.  Exit status 1 "
		"when one failed.\n"
		"\n" CLI_COMMON_HELP "  -q, --quiet             print only "
		"failures and the summary\n"
		"  -h, --help              this help\n");
}

static int check_blob(void *arg, const char *etag, uint64_t size)
{
	struct verify *v = arg;
	uint64_t got;
	char human[32];
	int rc = db_blob_verify(v->s, etag, &got);

	(void)size;
	if (rc == -ENOENT) {
		v->missing++;
		return 0;
	}
	v->checked++;
	if (rc == 0) {
		v->bytes += got;
		if (!v->quiet)
			printf("ok      %10s  %s\n",
			       cli_human_size(got, human, sizeof(human)),
			       v->label ? v->label : etag);
		return 0;
	}
	if (rc != -EBADMSG && rc != -ESTALE) {
		fprintf(stderr, "hubfs verify: %s: %s\n", etag,
			db_last_error());
		return CLI_EXIT_FAIL;
	}
	v->bad++;
	printf("FAILED  %10s  %s: %s; removed, fetched again on the next "
	       "read\n",
	       cli_human_size(got, human, sizeof(human)),
	       v->label ? v->label : etag, db_last_error());
	if (db_blob_drop(v->s, etag) < 0)
		fprintf(stderr, "hubfs verify: removing %s: %s\n", etag,
			db_last_error());
	return 0;
}

/*
 * The complete files of a tree, gathered first and checked after the
 * walk: a failed one is removed, and nothing may write during a walk.
 */
struct file_list {
	struct {
		char *path;
		char etag[65];
		uint64_t size;
	} * f;
	size_t n, cap;
};

static int add_file(void *arg, const struct db_report_file *f)
{
	struct file_list *l = arg;

	if (!f->complete || f->size == 0)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		void *a = realloc(l->f, cap * sizeof(*l->f));

		if (!a)
			return -ENOMEM;
		l->f = a;
		l->cap = cap;
	}
	l->f[l->n].path = strdup(f->path);
	if (!l->f[l->n].path)
		return -ENOMEM;
	snprintf(l->f[l->n].etag, sizeof(l->f[l->n].etag), "%s", f->etag);
	l->f[l->n++].size = f->size;
	return 0;
}

static int cmp_etag(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Each blob once, though several commits list it. */
static int check_tree(struct verify *v, int64_t tree)
{
	struct file_list l = { 0 };
	int rc = db_report_files(v->s, tree, add_file, &l);
	void *grown = NULL;

	for (size_t i = 0; rc == 0 && i < l.n; i++) {
		if (v->nseen && bsearch(l.f[i].etag, v->seen, v->nseen,
					sizeof(*v->seen), cmp_etag))
			continue;
		v->label = l.f[i].path;
		rc = check_blob(v, l.f[i].etag, l.f[i].size);
		v->label = NULL;
	}
	if (rc == 0 && l.n)
		grown = realloc(v->seen, (v->nseen + l.n) * sizeof(*v->seen));
	if (grown) {
		v->seen = grown;
		for (size_t i = 0; i < l.n; i++)
			memcpy(v->seen[v->nseen++], l.f[i].etag, 65);
		qsort(v->seen, v->nseen, sizeof(*v->seen), cmp_etag);
	}
	for (size_t i = 0; i < l.n; i++)
		free(l.f[i].path);
	free(l.f);
	return rc;
}

struct trees {
	int64_t ids[64];
	size_t n;
	const char *only;
};

static int collect_tree(void *arg, const struct db_report_rev *r)
{
	struct trees *t = arg;

	if (!r->tree || t->n == sizeof(t->ids) / sizeof(t->ids[0]))
		return 0;
	if (t->only && strcmp(t->only, r->rev) != 0 &&
	    strncmp(r->commit, t->only, strlen(t->only)) != 0)
		return 0;
	for (size_t i = 0; i < t->n; i++)
		if (t->ids[i] == r->tree)
			return 0;
	t->ids[t->n++] = r->tree;
	return 0;
}

static int verify_repo(struct verify *v, const char *arg)
{
	struct cli_target t;
	struct trees trees = { .n = 0 };
	struct db_repo r;
	int rc;

	if (cli_parse_target(arg, &t) < 0) {
		fprintf(stderr, "hubfs verify: '%s' is not a repo\n", arg);
		return CLI_EXIT_USAGE;
	}
	rc = db_repo_get(v->s, t.type, t.id, &r);
	if (rc == 0 && r.canonical[0])
		rc = db_repo_get(v->s, t.type, r.canonical, &r);
	if (rc < 0) {
		fprintf(stderr, "hubfs verify: %s is not in the store\n", arg);
		free(t.rev);
		return CLI_EXIT_FAIL;
	}
	trees.only = t.rev;
	rc = db_report_revisions(v->s, r.id, collect_tree, &trees);
	for (size_t i = 0; rc == 0 && i < trees.n; i++)
		rc = check_tree(v, trees.ids[i]);
	free(t.rev);
	if (rc < 0)
		fprintf(stderr, "hubfs verify: %s\n", db_last_error());
	return rc ? CLI_EXIT_FAIL : 0;
}

int cli_verify(int argc, char **argv)
{
	enum { CLI_COMMON_OPT_ENUM };
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli_common common = { 0 };
	struct hub_client *hub = NULL;
	struct verify v = { 0 };
	char human[32];
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "qh", longopts, NULL)) != -1) {
		if (opt == 'h') {
			verify_usage(stdout);
			return CLI_EXIT_OK;
		}
		if (opt == 'q') {
			v.quiet = true;
		} else if (cli_common_option(&common, opt, optarg) < 0) {
			verify_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	common.offline = true; /* verify asks the Hub nothing */
	rc = cli_open(&common, 60, &hub, &v.s);
	if (rc == 0 && optind == argc) {
		/* > 0: check_blob's exit status, its cause reported there. */
		rc = db_blobs(v.s, check_blob, &v);
		if (rc < 0)
			fprintf(stderr, "hubfs verify: %s\n", db_last_error());
		if (rc)
			rc = CLI_EXIT_FAIL;
	}
	for (int i = optind; rc == 0 && i < argc; i++)
		rc = verify_repo(&v, argv[i]);
	if (v.s && (rc == 0 || rc == CLI_EXIT_FAIL))
		printf("%llu file%s checked (%s), %llu failed\n",
		       (unsigned long long)v.checked, v.checked == 1 ? "" : "s",
		       cli_human_size(v.bytes, human, sizeof(human)),
		       (unsigned long long)v.bad);
	free(v.seen);
	db_store_close(v.s);
	hub_client_free(hub);
	return rc ? rc : v.bad ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

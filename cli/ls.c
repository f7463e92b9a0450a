/*
 * ls.c - "hubfs ls [REPO[@REV]]": what the store knows, from its index
 * alone.  Without REPO, one line per repo: its revisions, and the files,
 * size and bytes held locally of its head commit; with REPO, that
 * commit's files and how much of each is local.  Contacts nothing, and
 * works whether or not a mount is running (each reads the same index).
 */
#include "cli.h"

#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <langinfo.h>
#include <limits.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Sums over the files of one tree. */
struct totals {
	uint64_t files, bytes, local, complete;
	int64_t last_used;
};

struct rev {
	struct db_report_rev r;
	struct totals t; /* when r.tree */
};

struct repo {
	struct db_repo repo;
	struct rev *revs;
	size_t n_revs;
	struct rev *head; /* whose numbers the repo shows; may be NULL */
	int64_t last_used;
};

struct listing {
	struct db_store *store;
	struct repo *repos;
	size_t n;
};

static void ls_usage(FILE *out)
{
	fprintf(out,
		"usage: hubfs ls [OPTIONS] [REPO[@REVISION]]\n"
		"\n"
		"Without REPO, list the repos the store knows: type, id, size "
		"and bytes held\n"
		"locally, when last used, and the commit each known revision "
		"points to.\n"
		"With REPO (owner/name, datasets/owner/name, "
		"spaces/owner/name), list its\n"
		"files at REVISION (a branch, tag or commit; default: the "
		"default branch) and\n"
		"how much of each is held locally.  Reads the store only; "
		"contacts nothing.\n"
		"\n" CLI_COMMON_HELP
		"  --json                  JSON, for scripts\n"
		"  -h, --help              this help\n");
}

static const char *type_name(enum hub_repo_type t)
{
	return t == HUB_DATASET ? "dataset"
	       : t == HUB_SPACE ? "space"
				: "model";
}

/* The repo as a path under the mount: "datasets/owner/name". */
static void display_id(const struct db_repo *r, char *buf, size_t size)
{
	snprintf(buf, size, "%s%s", hub_type_url_prefix(r->type), r->name);
}

/* ---- Collecting -------------------------------------------------------- */

static int add_file(void *arg, const struct db_report_file *f)
{
	struct totals *t = arg;

	t->files++;
	t->bytes += f->size;
	t->local += f->local;
	t->complete += f->complete;
	if (f->last_used > t->last_used)
		t->last_used = f->last_used;
	return 0;
}

static int add_rev(void *arg, const struct db_report_rev *r)
{
	struct repo *p = arg;
	struct rev *revs = realloc(p->revs, (p->n_revs + 1) * sizeof(*revs));

	if (!revs)
		return -ENOMEM;
	p->revs = revs;
	memset(&revs[p->n_revs], 0, sizeof(revs[0]));
	revs[p->n_revs++].r = *r;
	return 0;
}

static int add_repo(void *arg, const struct db_repo *r)
{
	struct listing *l = arg;
	struct repo *repos = realloc(l->repos, (l->n + 1) * sizeof(*repos));

	if (!repos)
		return -ENOMEM;
	l->repos = repos;
	memset(&repos[l->n], 0, sizeof(repos[0]));
	repos[l->n++].repo = *r;
	return 0;
}

/* 3: the default branch, 2: another revision, 1: a pinned commit, 0: not
   listed. */
static int head_rank(const struct rev *v)
{
	if (!v->r.tree)
		return 0;
	if (v->r.pinned)
		return 1;
	return v->r.rev[0] ? 2 : 3;
}

/*
 * The head, whose numbers stand for the repo: the default branch when its
 * files are listed, else the most recently resolved revision whose files
 * are, else the newest pinned commit, else any revision (no numbers).
 */
static struct rev *pick_head(struct repo *p)
{
	struct rev *best = p->n_revs ? &p->revs[0] : NULL;

	for (size_t i = 1; i < p->n_revs; i++) {
		struct rev *v = &p->revs[i];
		int a = head_rank(v), b = head_rank(best);

		if (a > b ||
		    (a == b && a == 2 &&
		     v->r.checked_at > best->r.checked_at) ||
		    (a == b && a == 1 && v->r.tree > best->r.tree))
			best = v;
	}
	return best;
}

/* The totals of v's tree: another revision's when it is the same tree. */
static int sum_tree(struct db_store *s, struct repo *p, struct rev *v)
{
	for (struct rev *u = p->revs; u < v; u++)
		if (u->r.tree == v->r.tree) {
			v->t = u->t;
			return 0;
		}
	return db_report_files(s, v->r.tree, add_file, &v->t);
}

/* Revisions, per-tree totals, the head, the last use. */
static int fill_repo(struct db_store *s, struct repo *p)
{
	int rc = db_report_revisions(s, p->repo.id, add_rev, p);

	p->last_used = p->repo.last_used;
	for (size_t i = 0; rc == 0 && i < p->n_revs; i++) {
		struct rev *v = &p->revs[i];

		if (v->r.checked_at > p->last_used)
			p->last_used = v->r.checked_at;
		if (v->r.tree)
			rc = sum_tree(s, p, v);
		if (v->t.last_used > p->last_used)
			p->last_used = v->t.last_used;
	}
	p->head = pick_head(p);
	return rc;
}

static void listing_free(struct listing *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->repos[i].revs);
	free(l->repos);
}

/* ---- The list of repos ------------------------------------------------- */

/* "main", "(default)", or "@" for a pinned commit. */
static const char *rev_label(const struct rev *v)
{
	if (v->r.pinned)
		return "@";
	return v->r.rev[0] ? v->r.rev : "(default)";
}

static void print_revisions(const struct repo *p, const char *arrow)
{
	if (p->repo.canonical[0]) {
		printf("%s %s%s", arrow, hub_type_url_prefix(p->repo.type),
		       p->repo.canonical);
		return;
	}
	for (size_t i = 0; i < p->n_revs; i++) {
		const struct rev *v = &p->revs[i];

		if (v->r.pinned)
			printf("%s@%.8s", i ? " " : "", v->r.commit);
		else
			printf("%s%s%s%.8s", i ? " " : "", rev_label(v), arrow,
			       v->r.commit);
	}
}

static void print_repo_line(const struct repo *p, int width, const char *arrow)
{
	char id[300], size[32], local[32], used[32];
	const struct rev *h = p->head;
	bool numbers = h && h->r.tree && !p->repo.canonical[0];

	display_id(&p->repo, id, sizeof(id));
	if (numbers)
		printf("%-8s %-*s %7" PRIu64 " %10s %10s",
		       type_name(p->repo.type), width, id, h->t.files,
		       cli_human_size(h->t.bytes, size, sizeof(size)),
		       cli_human_size(h->t.local, local, sizeof(local)));
	else
		printf("%-8s %-*s %7s %10s %10s", type_name(p->repo.type),
		       width, id, "-", "-", "-");
	printf("  %-16s  ", cli_human_time(p->last_used, used, sizeof(used)));
	print_revisions(p, arrow);
	printf("\n");
}

/* "→" where the terminal's character set has it. */
static const char *arrow_text(void)
{
	setlocale(LC_CTYPE, "");
	return strcmp(nl_langinfo(CODESET), "UTF-8") == 0 ? "\u2192" : "->";
}

static void print_repos(const struct listing *l, const char *dir)
{
	const char *arrow = arrow_text();
	int width = 4;

	if (l->n == 0) {
		printf("No repos in the store %s yet.\n", dir);
		return;
	}
	for (size_t i = 0; i < l->n; i++) {
		char id[300];

		display_id(&l->repos[i].repo, id, sizeof(id));
		if ((int)strlen(id) > width)
			width = (int)strlen(id);
	}
	printf("%-8s %-*s %7s %10s %10s  %-16s  %s\n", "TYPE", width, "REPO",
	       "FILES", "SIZE", "LOCAL", "LAST USED", "REVISIONS");
	for (size_t i = 0; i < l->n; i++)
		print_repo_line(&l->repos[i], width, arrow);
}

/* ---- JSON -------------------------------------------------------------- */

static void add_i64(cJSON *o, const char *key, int64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRId64, v);
	cJSON_AddRawToObject(o, key, buf);
}

static void add_totals(cJSON *o, const struct totals *t)
{
	hub_json_add_u64(o, "files", t->files);
	hub_json_add_u64(o, "bytes", t->bytes);
	hub_json_add_u64(o, "local_bytes", t->local);
	hub_json_add_u64(o, "complete_files", t->complete);
}

static cJSON *rev_json(const struct rev *v)
{
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return NULL;
	if (v->r.pinned || v->r.rev[0] == '\0')
		cJSON_AddNullToObject(o, "revision");
	else
		cJSON_AddStringToObject(o, "revision", v->r.rev);
	cJSON_AddBoolToObject(o, "default", !v->r.pinned && !v->r.rev[0]);
	cJSON_AddBoolToObject(o, "pinned", v->r.pinned);
	cJSON_AddStringToObject(o, "commit", v->r.commit);
	add_i64(o, "checked_at", v->r.checked_at);
	cJSON_AddBoolToObject(o, "listed", v->r.tree != 0);
	if (v->r.tree) {
		add_i64(o, "commit_time", v->r.mtime);
		add_totals(o, &v->t);
	}
	return o;
}

static cJSON *repo_json(const struct repo *p)
{
	cJSON *o = cJSON_CreateObject(), *revs = cJSON_CreateArray();
	char id[300];

	if (!o || !revs) {
		cJSON_Delete(o);
		cJSON_Delete(revs);
		return NULL;
	}
	display_id(&p->repo, id, sizeof(id));
	cJSON_AddStringToObject(o, "type", type_name(p->repo.type));
	cJSON_AddStringToObject(o, "id", p->repo.name);
	cJSON_AddStringToObject(o, "path", id);
	if (p->repo.canonical[0])
		cJSON_AddStringToObject(o, "canonical", p->repo.canonical);
	else
		cJSON_AddNullToObject(o, "canonical");
	add_i64(o, "last_used", p->last_used);
	if (p->head && p->head->r.tree && !p->repo.canonical[0]) {
		cJSON_AddStringToObject(o, "commit", p->head->r.commit);
		add_totals(o, &p->head->t);
	}
	for (size_t i = 0; i < p->n_revs; i++)
		cJSON_AddItemToArray(revs, rev_json(&p->revs[i]));
	cJSON_AddItemToObject(o, "revisions", revs);
	return o;
}

static int print_repos_json(const struct listing *l)
{
	cJSON *a = cJSON_CreateArray();

	for (size_t i = 0; a && i < l->n; i++)
		cJSON_AddItemToArray(a, repo_json(&l->repos[i]));
	return cli_print_json(a);
}

/* ---- One repo's files -------------------------------------------------- */

struct files_out {
	cJSON *json; /* the array when printing JSON */
	struct totals t;
};

static int print_file(void *arg, const struct db_report_file *f)
{
	struct files_out *out = arg;
	char size[32], local[32];

	add_file(&out->t, f);
	if (out->json) {
		cJSON *o = cJSON_CreateObject();

		if (!o)
			return -ENOMEM;
		cJSON_AddStringToObject(o, "path", f->path);
		hub_json_add_u64(o, "size", f->size);
		hub_json_add_u64(o, "local_bytes", f->local);
		cJSON_AddBoolToObject(o, "complete", f->complete);
		cJSON_AddStringToObject(o, "etag", f->etag);
		cJSON_AddBoolToObject(o, "lfs", f->lfs);
		cJSON_AddBoolToObject(o, "in_place",
				      f->external && !f->complete);
		cJSON_AddItemToArray(out->json, o);
		return 0;
	}
	printf("%10s %10s %4u%%  %s%s\n",
	       cli_human_size(f->size, size, sizeof(size)),
	       cli_human_size(f->local, local, sizeof(local)),
	       f->size ? (unsigned)(f->local * 100 / f->size) : 100u, f->path,
	       f->external && !f->complete ? "  (used in place)" : "");
	return 0;
}

static void print_summary(const struct totals *t)
{
	char size[32], local[32];

	printf("%" PRIu64 " file%s, %s, %s held locally (%u%%)\n", t->files,
	       t->files == 1 ? "" : "s",
	       cli_human_size(t->bytes, size, sizeof(size)),
	       cli_human_size(t->local, local, sizeof(local)),
	       t->bytes ? (unsigned)(t->local * 100 / t->bytes) : 100u);
}

static int list_files(struct db_store *s, const struct repo *p,
		      const struct rev *v, bool json)
{
	struct files_out out = { 0 };
	char id[300], when[32];
	cJSON *o = NULL, *total;
	int rc;

	display_id(&p->repo, id, sizeof(id));
	if (json) {
		o = cJSON_CreateObject();
		out.json = cJSON_CreateArray();
		if (!o || !out.json) {
			cJSON_Delete(out.json);
			cJSON_Delete(o);
			fprintf(stderr, "hubfs: out of memory\n");
			return CLI_EXIT_FAIL;
		}
	} else {
		printf("%s %s, %s%s%.40s, committed %s\n",
		       type_name(p->repo.type), id,
		       v->r.pinned ? "" : rev_label(v),
		       v->r.pinned ? "commit " : " at ", v->r.commit,
		       cli_human_time(v->r.mtime, when, sizeof(when)));
		printf("%10s %10s %5s  %s\n", "SIZE", "LOCAL", "", "PATH");
	}
	rc = db_report_files(s, v->r.tree, print_file, &out);
	if (rc < 0) {
		fprintf(stderr, "hubfs: reading the store: %s\n",
			db_last_error());
		cJSON_Delete(out.json);
		cJSON_Delete(o);
		return CLI_EXIT_FAIL;
	}
	if (!json) {
		print_summary(&out.t);
		return 0;
	}
	cJSON_AddStringToObject(o, "type", type_name(p->repo.type));
	cJSON_AddStringToObject(o, "id", p->repo.name);
	cJSON_AddStringToObject(o, "path", id);
	if (v->r.pinned || !v->r.rev[0])
		cJSON_AddNullToObject(o, "revision");
	else
		cJSON_AddStringToObject(o, "revision", v->r.rev);
	cJSON_AddStringToObject(o, "commit", v->r.commit);
	add_i64(o, "commit_time", v->r.mtime);
	total = cJSON_AddObjectToObject(o, "total");
	if (total)
		add_totals(total, &out.t);
	cJSON_AddItemToObject(o, "files", out.json);
	return cli_print_json(o);
}

/* ---- Which repo and revision ------------------------------------------- */

static bool is_hex(const char *s)
{
	for (; *s; s++)
		if (!strchr("0123456789abcdef", *s))
			return false;
	return true;
}

/* The revision named rev: a branch or tag, else a commit or its prefix. */
static struct rev *find_rev(struct repo *p, const char *rev)
{
	struct rev *found = NULL;
	size_t n = strlen(rev);

	for (size_t i = 0; i < p->n_revs; i++)
		if (!p->revs[i].r.pinned && strcmp(p->revs[i].r.rev, rev) == 0)
			return &p->revs[i];
	/*
	 * "main" names the default branch when no branch was recorded by
	 * that name, as huggingface_hub assumes (and the .hf-cache view's
	 * refs/main shows).
	 */
	if (strcmp(rev, "main") == 0)
		for (size_t i = 0; i < p->n_revs; i++)
			if (!p->revs[i].r.pinned && !p->revs[i].r.rev[0])
				return &p->revs[i];
	if (n < 4 || n > 40 || !is_hex(rev))
		return NULL;
	for (size_t i = 0; i < p->n_revs; i++) {
		struct rev *v = &p->revs[i];

		if (strncmp(v->r.commit, rev, n) != 0)
			continue;
		if (found && strcmp(found->r.commit, v->r.commit) != 0)
			return NULL; /* ambiguous */
		if (!found || (!found->r.tree && v->r.tree))
			found = v;
	}
	return found;
}

static int show_repo(struct db_store *s, const struct cli_target *t, bool json)
{
	struct repo p = { 0 };
	struct rev *v;
	char id[300];
	int rc = db_repo_get(s, t->type, t->id, &p.repo);

	if (rc == 0 && p.repo.canonical[0]) {
		fprintf(stderr, "hubfs: %s is %s now\n", t->id,
			p.repo.canonical);
		rc = db_repo_get(s, t->type, p.repo.canonical, &p.repo);
	}
	snprintf(id, sizeof(id), "%s%s", hub_type_url_prefix(t->type), t->id);
	if (rc == -ENOENT) {
		fprintf(stderr,
			"hubfs: %s is not in the store (nothing has looked it "
			"up yet)\n",
			id);
		return CLI_EXIT_FAIL;
	}
	if (rc == 0)
		rc = fill_repo(s, &p);
	if (rc < 0) {
		fprintf(stderr, "hubfs: reading the store: %s\n",
			db_last_error());
		free(p.revs);
		return CLI_EXIT_FAIL;
	}
	v = t->rev ? find_rev(&p, t->rev) : p.head;
	if (!v)
		fprintf(stderr,
			"hubfs: the store knows no revision '%s' of %s\n",
			t->rev ? t->rev : "", id);
	else if (!v->r.tree)
		fprintf(stderr,
			"hubfs: %s@%s points to %.12s, whose files are not "
			"in the store yet\n",
			id, t->rev ? t->rev : rev_label(v), v->r.commit);
	rc = v && v->r.tree ? list_files(s, &p, v, json) : CLI_EXIT_FAIL;
	free(p.revs);
	return rc;
}

/* ---- The command ------------------------------------------------------- */

static int list_repos(struct db_store *s, const char *dir, bool json)
{
	struct listing l = { .store = s };
	int rc = db_report_repos(s, add_repo, &l);

	for (size_t i = 0; rc == 0 && i < l.n; i++)
		rc = fill_repo(s, &l.repos[i]);
	if (rc < 0) {
		fprintf(stderr, "hubfs: reading the store: %s\n",
			db_last_error());
		rc = CLI_EXIT_FAIL;
	} else if (json) {
		rc = print_repos_json(&l);
	} else {
		print_repos(&l, dir);
	}
	listing_free(&l);
	return rc;
}

static int run_ls(const struct cli_common *common, const char *arg, bool json)
{
	struct db_store *s = NULL;
	struct cli_target t;
	char *dir;
	int rc;

	if (arg && cli_parse_target(arg, &t) < 0) {
		fprintf(stderr,
			"hubfs ls: '%s' is not a repo: owner/name, "
			"datasets/owner/name or spaces/owner/name, "
			"optionally @REVISION\n",
			arg);
		free(t.rev);
		return CLI_EXIT_USAGE;
	}
	dir = cli_store_dir(common);
	rc = dir ? cli_store_open_existing(dir, &s) : CLI_EXIT_FAIL;
	if (rc) {
		/* said already */
	} else if (!s && arg) {
		fprintf(stderr, "hubfs: %s is not in the store %s\n", arg, dir);
		rc = CLI_EXIT_FAIL;
	} else if (!s) {
		rc = json ? cli_print_json(cJSON_CreateArray())
			  : (printf("No repos in the store %s yet.\n", dir), 0);
	} else {
		rc = arg ? show_repo(s, &t, json) : list_repos(s, dir, json);
	}
	db_store_close(s);
	free(dir);
	if (arg)
		free(t.rev);
	return rc;
}

int cli_ls(int argc, char **argv)
{
	enum { OPT_JSON = 256, CLI_COMMON_OPT_ENUM };
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli_common common = { 0 };
	bool json = false;
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (c == 'h') {
			ls_usage(stdout);
			return CLI_EXIT_OK;
		} else if (c == OPT_JSON) {
			json = true;
		} else if (cli_common_option(&common, c, optarg) < 0) {
			ls_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (argc - optind > 1) {
		fprintf(stderr,
			"hubfs ls: one repo at a time ('%s' is one too "
			"many)\n",
			argv[optind + 1]);
		return CLI_EXIT_USAGE;
	}
	return run_ls(&common, optind < argc ? argv[optind] : NULL, json);
}

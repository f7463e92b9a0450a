/*
 * repo.c - the commands that change what the store knows of a repo:
 *
 *   hubfs add REPO[@REV]...     resolve and list it now, so it shows up in
 *                               the mount (and offline) without a read
 *   hubfs forget REPO...        drop it from the index: its revisions,
 *                               file lists and pins; gc reclaims its bytes
 *   hubfs unpin REPO[@REV]...   release what "hubfs pull" pinned
 *   hubfs refresh [REPO...]     resolve branches and tags again now,
 *                               instead of when their TTL runs out
 */
#include "cli.h"
#include "fs.h"

#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct repo_cmd {
	const char *name;
	const char *args;
	const char *help;
	bool needs_hub; /* asks the Hub: refused offline */
	bool any_args;	/* zero REPO arguments allowed */
	int (*run)(struct cli_common *c, struct hub_client *hub,
		   struct db_store *s, const struct cli_target *t,
		   const char *arg);
};

static void usage(const struct repo_cmd *cmd, FILE *out)
{
	fprintf(out,
		"usage: hubfs %s [OPTIONS] %s\n\n%s\n" CLI_COMMON_HELP
		"  -h, --help              this help\n",
		cmd->name, cmd->args, cmd->help);
}

static const char *type_prefix(enum hub_repo_type type)
{
	return type == HUB_DATASET ? "datasets/"
	       : type == HUB_SPACE ? "spaces/"
				   : "";
}

/* The store's row of t, following a legacy or old id to its canonical. */
static int find_repo(struct db_store *s, const struct cli_target *t,
		     struct db_repo *out)
{
	int rc = db_repo_get(s, t->type, t->id, out);

	if (rc == 0 && out->canonical[0])
		rc = db_repo_get(s, t->type, out->canonical, out);
	if (rc == -ENOENT)
		fprintf(stderr, "hubfs: %s%s is not in the store %s\n",
			type_prefix(t->type), t->id, db_store_dir(s));
	else if (rc < 0)
		fprintf(stderr, "hubfs: %s\n", db_last_error());
	return rc < 0 ? CLI_EXIT_FAIL : 0;
}

static int open_ctx(struct hub_client *hub, struct db_store *s, long ttl,
		    struct fs_ctx **ctx)
{
	struct fs_config cfg;
	int rc;

	fs_config_defaults(&cfg);
	cfg.hub = hub;
	cfg.store = s;
	cfg.revision_ttl = ttl;
	rc = fs_ctx_open(ctx, &cfg);

	if (rc < 0)
		fprintf(stderr, "hubfs: %s\n", strerror(-rc));
	return rc < 0 ? CLI_EXIT_FAIL : 0;
}

/* ---- add ---------------------------------------------------------------- */

static int run_add(struct cli_common *c, struct hub_client *hub,
		   struct db_store *s, const struct cli_target *t,
		   const char *arg)
{
	struct fs_ctx *ctx;
	struct fs_repo r;
	uint64_t files = 0, bytes = 0;
	char size[32];
	int rc = open_ctx(hub, s, 60, &ctx);

	(void)c;
	if (rc)
		return rc;
	rc = fs_repo_resolve(ctx, t->type, t->id, t->rev, &r);
	fs_ctx_close(ctx);
	if (rc < 0) {
		fprintf(stderr, "hubfs add: %s: %s\n", arg,
			cli_resolve_error(rc));
		return CLI_EXIT_FAIL;
	}
	db_tree_count(s, r.tree, &files, &bytes);
	printf("added %s%s@%.12s: %llu file%s, %s\n", type_prefix(r.type), r.id,
	       r.commit, (unsigned long long)files, files == 1 ? "" : "s",
	       cli_human_size(bytes, size, sizeof(size)));
	return 0;
}

/* ---- forget ------------------------------------------------------------- */

static int run_forget(struct cli_common *c, struct hub_client *hub,
		      struct db_store *s, const struct cli_target *t,
		      const char *arg)
{
	struct db_repo r;
	int rc;

	(void)c;
	(void)hub;
	if (t->rev) {
		fprintf(stderr,
			"hubfs forget: %s: a whole repo is forgotten, not "
			"one revision\n",
			arg);
		return CLI_EXIT_USAGE;
	}
	if ((rc = find_repo(s, t, &r)) != 0)
		return rc;
	rc = db_repo_forget(s, r.id);
	if (rc < 0) {
		fprintf(stderr, "hubfs forget: %s: %s\n", arg, db_last_error());
		return CLI_EXIT_FAIL;
	}
	printf("forgot %s%s; 'hubfs gc' removes its files\n",
	       type_prefix(r.type), r.name);
	return 0;
}

/* ---- unpin -------------------------------------------------------------- */

static int run_unpin(struct cli_common *c, struct hub_client *hub,
		     struct db_store *s, const struct cli_target *t,
		     const char *arg)
{
	struct db_repo r;
	uint64_t n = 0;
	int rc;

	(void)c;
	(void)hub;
	if ((rc = find_repo(s, t, &r)) != 0)
		return rc;
	if (db_pin_remove(s, r.id, t->rev, &n) < 0) {
		fprintf(stderr, "hubfs unpin: %s: %s\n", arg, db_last_error());
		return CLI_EXIT_FAIL;
	}
	if (n == 0 && t->rev)
		printf("%s: nothing pinned for revision '%s' (pins are kept "
		       "by the revision pulled: 'hubfs unpin %s%s' releases "
		       "them all)\n",
		       arg, t->rev, type_prefix(r.type), r.name);
	else
		printf("unpinned %llu file%s of %s\n", (unsigned long long)n,
		       n == 1 ? "" : "s", arg);
	return 0;
}

/* ---- refresh ------------------------------------------------------------ */

struct rev_list {
	char (*revs)[256];
	size_t n, cap;
	char (*commits)[41];
};

static int collect_rev(void *arg, const struct db_report_rev *r)
{
	struct rev_list *l = arg;

	if (r->pinned) /* a commit folder: nothing to refresh */
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 8;
		void *a = realloc(l->revs, cap * sizeof(*l->revs));

		if (!a)
			return -ENOMEM;
		l->revs = a;
		a = realloc(l->commits, cap * sizeof(*l->commits));
		if (!a)
			return -ENOMEM;
		l->commits = a;
		l->cap = cap;
	}
	memcpy(l->revs[l->n], r->rev, sizeof(l->revs[0]));
	memcpy(l->commits[l->n], r->commit, sizeof(l->commits[0]));
	l->n++;
	return 0;
}

static int refresh_one(struct fs_ctx *ctx, const struct db_repo *r,
		       const char *rev, const char *before)
{
	const char *label = rev[0] ? rev : "(default branch)";
	struct fs_repo now;
	int rc;

	if (hub_is_commit_id(rev))
		return 0; /* a commit never moves */
	rc = fs_repo_resolve(ctx, r->type, r->name, rev[0] ? rev : NULL, &now);
	if (rc < 0) {
		fprintf(stderr, "hubfs refresh: %s%s@%s: %s\n",
			type_prefix(r->type), r->name, label,
			cli_resolve_error(rc));
		return CLI_EXIT_FAIL;
	}
	if (!before[0])
		printf("%s%s %s: %.12s, new to the store\n",
		       type_prefix(r->type), r->name, label, now.commit);
	else if (strcmp(before, now.commit) == 0)
		printf("%s%s %s: %.12s, unchanged\n", type_prefix(r->type),
		       r->name, label, now.commit);
	else
		printf("%s%s %s: %.12s -> %.12s\n", type_prefix(r->type),
		       r->name, label, before, now.commit);
	return 0;
}

static int refresh_repo(struct fs_ctx *ctx, struct db_store *s,
			const struct db_repo *r, const char *only)
{
	struct rev_list l = { 0 };
	int rc = db_report_revisions(s, r->id, collect_rev, &l), worst = 0;

	if (rc < 0) {
		fprintf(stderr, "hubfs refresh: %s\n",
			rc == -ENOMEM ? strerror(ENOMEM) : db_last_error());
		worst = CLI_EXIT_FAIL;
	}
	for (size_t i = 0; rc == 0 && i < l.n; i++) {
		if (only && strcmp(only, l.revs[i]) != 0)
			continue;
		rc = refresh_one(ctx, r, l.revs[i], l.commits[i]);
		if (rc)
			worst = rc;
		rc = 0;
	}
	if (only && worst == 0) {
		bool found = false;

		for (size_t i = 0; i < l.n; i++)
			found = found || strcmp(only, l.revs[i]) == 0;
		if (!found) /* new to the store: resolve it now */
			worst = refresh_one(ctx, r, only, "");
	}
	free(l.revs);
	free(l.commits);
	return worst;
}

struct repo_ids {
	struct db_repo *repos;
	size_t n, cap;
};

static int collect_repo(void *arg, const struct db_repo *r)
{
	struct repo_ids *ids = arg;

	if (r->canonical[0])
		return 0; /* an alias: its canonical repo is listed too */
	if (ids->n == ids->cap) {
		size_t cap = ids->cap ? 2 * ids->cap : 16;
		void *a = realloc(ids->repos, cap * sizeof(*ids->repos));

		if (!a)
			return -ENOMEM;
		ids->repos = a;
		ids->cap = cap;
	}
	ids->repos[ids->n++] = *r;
	return 0;
}

/* A running mount was told: its branch folders are looked up again. */
static int told_mount(void *arg, long pid, const struct cJSON *reply)
{
	(void)pid;
	if (reply && !cJSON_GetObjectItemCaseSensitive(reply, "error"))
		(*(unsigned *)arg)++;
	return 0;
}

static int run_refresh(struct cli_common *c, struct hub_client *hub,
		       struct db_store *s, const struct cli_target *t,
		       const char *arg)
{
	struct repo_ids ids = { 0 };
	struct fs_ctx *ctx;
	struct db_repo r;
	unsigned mounts = 0;
	int rc, worst = 0;

	(void)c;
	(void)arg;
	if (t && (rc = find_repo(s, t, &r)) != 0)
		return rc;
	if ((rc = open_ctx(hub, s, 0, &ctx)) != 0)
		return rc;
	if (t) {
		worst = refresh_repo(ctx, s, &r, t->rev);
	} else if (db_report_repos(s, collect_repo, &ids) < 0) {
		fprintf(stderr, "hubfs refresh: %s\n", db_last_error());
		worst = CLI_EXIT_FAIL;
	}
	for (size_t i = 0; i < ids.n; i++) {
		rc = refresh_repo(ctx, s, &ids.repos[i], NULL);
		if (rc)
			worst = rc;
	}
	free(ids.repos);
	fs_ctx_close(ctx);
	if (fs_status_query(db_store_dir(s), "refresh", told_mount, &mounts) ==
		    0 &&
	    mounts)
		printf("%u running mount%s will look the branches up again\n",
		       mounts, mounts == 1 ? "" : "s");
	return worst;
}

/* ---- The shared command line -------------------------------------------- */

static const struct repo_cmd cmds[] = {
	{ "add", "REPO[@REV]...",
	  "Resolve each repo (at REV, else its default branch) and list its "
	  "files now, so\n"
	  "it shows up in the mount and in 'hubfs ls', offline too.  Nothing "
	  "is downloaded.\n",
	  true, false, run_add },
	{ "forget", "REPO...",
	  "Drop each repo from the store's index: its revisions, file lists "
	  "and pins.  Its\n"
	  "files stay on disk until 'hubfs gc' removes them (or the size "
	  "limit does).\n"
	  "A mount still shows it when something looks it up again.\n",
	  false, false, run_forget },
	{ "unpin", "REPO[@REV]...",
	  "Release the files 'hubfs pull' pinned for each repo (for REV "
	  "only, when given:\n"
	  "the revision as it was pulled), so that gc and the size limit may "
	  "remove them.\n",
	  false, false, run_unpin },
	{ "refresh", "[REPO[@REV]...]",
	  "Resolve the branches and tags the store knows (of each REPO, or "
	  "of every repo)\n"
	  "again now, instead of when their time to live runs out, and list "
	  "the files of\n"
	  "commits that are new.  Running mounts are told, and show the new "
	  "commits\n"
	  "from then on.\n",
	  true, true, run_refresh },
};

static int run_cmd(const struct repo_cmd *cmd, int argc, char **argv)
{
	enum { CLI_COMMON_OPT_ENUM };
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli_common common = { 0 };
	struct hub_client *hub = NULL;
	struct db_store *store = NULL;
	const char *why;
	int opt, rc, worst = 0;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (opt == 'h') {
			usage(cmd, stdout);
			return CLI_EXIT_OK;
		}
		if (cli_common_option(&common, opt, optarg) < 0) {
			usage(cmd, stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind == argc && !cmd->any_args) {
		usage(cmd, stderr);
		return CLI_EXIT_USAGE;
	}
	for (int i = optind; i < argc; i++) {
		struct cli_target t;

		if (cli_parse_target(argv[i], &t) < 0) {
			fprintf(stderr,
				"hubfs %s: '%s' is not a repo: owner/name, "
				"datasets/owner/name or spaces/owner/name, "
				"optionally @REVISION\n",
				cmd->name, argv[i]);
			return CLI_EXIT_USAGE;
		}
		free(t.rev);
	}
	why = cli_offline_reason(&common);
	if (cmd->needs_hub && why) {
		fprintf(stderr,
			"hubfs %s: needs the Hub, and hubfs is offline "
			"(%s)\n",
			cmd->name, why);
		return CLI_EXIT_FAIL;
	}
	if (!cmd->needs_hub)
		common.offline = true;
	rc = cli_open(&common, 60, &hub, &store);
	if (rc == 0 && cmd->needs_hub && fs_log_open(NULL, true) == 0)
		fs_log_set_level(LOG_WARNING);
	if (rc == 0 && optind == argc)
		worst = cmd->run(&common, hub, store, NULL, NULL);
	for (int i = optind; rc == 0 && i < argc; i++) {
		struct cli_target t;

		cli_parse_target(argv[i], &t);
		int r = cmd->run(&common, hub, store, &t, argv[i]);

		if (r)
			worst = r;
		free(t.rev);
	}
	db_store_close(store);
	hub_client_free(hub);
	return rc ? rc : worst;
}

int cli_add(int argc, char **argv)
{
	return run_cmd(&cmds[0], argc, argv);
}

int cli_forget(int argc, char **argv)
{
	return run_cmd(&cmds[1], argc, argv);
}

int cli_unpin(int argc, char **argv)
{
	return run_cmd(&cmds[2], argc, argv);
}

int cli_refresh(int argc, char **argv)
{
	return run_cmd(&cmds[3], argc, argv);
}

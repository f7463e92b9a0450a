/*
 * cli.h - what the subcommands in cli/ share: the dispatch table entry and
 * the exit codes.
 */
#ifndef HUBFS_CLI_H
#define HUBFS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "hub.h"

/* Exit codes of every subcommand. */
enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_FAIL = 1,  /* the command ran and failed        */
	CLI_EXIT_USAGE = 2, /* the command line was not understood */
};

struct cli_command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv); /* argv[0] is the command name */
};

/*
 * What every subcommand takes, so that each describes the same store and
 * endpoint a mount would (DESIGN.md section 6).  Flags win over the
 * environment.
 */
struct cli_common {
	const char *cache_dir;	/* --cache-dir */
	const char *endpoint;	/* --endpoint */
	const char *token_file; /* --token-file */
	bool offline;		/* --offline, or HF_HUB_OFFLINE */
	const char *hf_cache;	/* --hf-cache */
	bool no_hf_cache;	/* --no-hf-cache */
	bool wait_out_pauses;	/* not an option: the command waits out the
				   Hub's rate limits (pull) */
};

#define CLI_COMMON_OPT_ENUM                                                    \
	CLI_OPT_CACHE_DIR = 1000, CLI_OPT_ENDPOINT, CLI_OPT_TOKEN_FILE,        \
	CLI_OPT_OFFLINE, CLI_OPT_HF_CACHE, CLI_OPT_NO_HF_CACHE
#define CLI_COMMON_LONGOPTS                                                    \
	{ "cache-dir", required_argument, NULL, 1000 },                        \
		{ "endpoint", required_argument, NULL, 1001 },                 \
		{ "token-file", required_argument, NULL, 1002 },               \
		{ "offline", no_argument, NULL, 1003 },                        \
		{ "hf-cache", required_argument, NULL, 1004 },                 \
	{                                                                      \
		"no-hf-cache", no_argument, NULL, 1005                         \
	}
#define CLI_COMMON_HELP                                                        \
	"  --cache-dir DIR         the store (default "                        \
	"$XDG_CACHE_HOME/hubfs)\n"                                             \
	"  --endpoint URL          the Hub (default $HF_ENDPOINT or "          \
	"https://huggingface.co)\n"                                            \
	"  --token-file FILE       read the token from FILE (default: "        \
	"HF_TOKEN, then the\n"                                                 \
	"                          huggingface_hub token file)\n"              \
	"  --offline               contact nothing; serve what the store "     \
	"has\n"                                                                \
	"  --hf-cache DIR          take files from this huggingface_hub "      \
	"cache (default\n"                                                     \
	"                          $HF_HUB_CACHE, else $HF_HOME/hub, else "    \
	"~/.cache/...)\n"                                                      \
	"  --no-hf-cache           use no huggingface_hub cache\n"

/* 0 when c was one of the common options, -1 otherwise. */
int cli_common_option(struct cli_common *c, int opt, const char *arg);

/*
 * Why the commands run offline: "--offline", "HF_HUB_OFFLINE" or
 * "TRANSFORMERS_OFFLINE"; NULL when they do not.
 */
const char *cli_offline_reason(const struct cli_common *c);

/*
 * The huggingface_hub cache the options describe, absolute, allocated
 * (caller frees): --hf-cache, else HF_HUB_CACHE (or the legacy
 * HUGGINGFACE_HUB_CACHE), else $HF_HOME/hub, else
 * $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub (a
 * leading ~ is expanded).  *from (may be NULL) says which.  NULL with
 * *from "--no-hf-cache" when turned off, or when there is no HOME.  The
 * folder may not exist.
 */
char *cli_hf_cache_dir(const struct cli_common *c, const char **from);

/*
 * The store folder the options describe (--cache-dir, else the default),
 * allocated; caller frees.  NULL, with the complaint printed, when there
 * is none (no HOME).
 */
char *cli_store_dir(const struct cli_common *c);

/*
 * Open the Hub client and the store the options describe; prints what
 * went wrong.  Returns 0 or an exit code.
 */
int cli_open(const struct cli_common *c, long stall_seconds,
	     struct hub_client **hub, struct db_store **store);

/*
 * A repo as the commands name it: "[datasets/|spaces/]owner/name[@REV]"
 * (or a legacy id without owner), REV percent-encoded or not.
 */
struct cli_target {
	enum hub_repo_type type;
	char id[256];
	char *rev; /* NULL: the default branch; allocated, caller frees */
};
/* -EINVAL when arg is not of that form (t->rev is then NULL). */
int cli_parse_target(const char *arg, struct cli_target *t);

/*
 * Open the store in dir when it exists (has an index): 0 with *out the
 * store, or NULL when there is none yet (opening it would create it); or
 * an exit code, the complaint printed.  What opening repaired is reported.
 */
int cli_store_open_existing(const char *dir, struct db_store **out);

/* path made absolute against the working folder (resolved if it exists);
   out has room for PATH_MAX bytes. */
void cli_absolute(const char *path, char *out, size_t size);

/* Print JSON j on stdout and free it: 0, or an exit code (out of memory,
   also when j is NULL). */
struct cJSON;
int cli_print_json(struct cJSON *j);

/* Print, on stderr, what opening the store repaired (a damaged index). */
void cli_report_repair(struct db_store *s);

/* What a failed fs_repo_resolve() means, for a message. */
const char *cli_resolve_error(int rc);

/* "512 B", "1.5 KiB", "12.0 MiB", "3.2 GiB", ...; returns buf. */
const char *cli_human_size(uint64_t bytes, char *buf, size_t size);

/* Unix seconds as local "YYYY-MM-DD HH:MM", or "-" for 0; returns buf. */
const char *cli_human_time(int64_t t, char *buf, size_t size);

/* A whole number of seconds, >= 0; prints the complaint. */
int cli_parse_seconds(const char *arg, long *out);

/* A size such as 500M, 50G or 1.5T (powers of 1024); prints the complaint. */
int cli_parse_size(const char *arg, uint64_t *out);

int cli_mount(int argc, char **argv);
int cli_umount(int argc, char **argv);
int cli_where(int argc, char **argv);
int cli_ls(int argc, char **argv);
int cli_gc(int argc, char **argv);
int cli_pull(int argc, char **argv);
int cli_add(int argc, char **argv);
int cli_forget(int argc, char **argv);
int cli_unpin(int argc, char **argv);
int cli_refresh(int argc, char **argv);
int cli_verify(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_import(int argc, char **argv);

/*
 * The form mount(8) runs through mount.fuse3 for an fstab entry of type
 * fuse.hubfs: "hubfs SOURCE MOUNTPOINT [-o OPTIONS]", argv[0] being the
 * program.
 */
int cli_mount_fstab(int argc, char **argv);

#endif /* HUBFS_CLI_H */

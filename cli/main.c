/*
 * main.c - the hubfs command: option parsing for the top level and dispatch
 * to the subcommands in cli/.  Kept thin: every subcommand is a function
 * over the library (hub/, db/, fs/) that the tests link as well.
 *
 * A first argument that is no command and no option is the fstab form,
 * "hubfs SOURCE MOUNTPOINT [-o OPTIONS]", which mount(8) runs through
 * mount.fuse3 for a line of type fuse.hubfs.
 */
#include "cli.h"

#include <cJSON.h>
#include <errno.h>
#include <curl/curl.h>
#include <fuse_lowlevel.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const struct cli_command commands[] = {
	{ "mount", "mount the Hub at a folder", cli_mount },
	{ "umount", "unmount it", cli_umount },
	{ "where", "print the store, token, endpoint, offline mode, hf cache",
	  cli_where },
	{ "ls", "list the repos in the store, or one repo's files", cli_ls },
	{ "pull", "fetch a repo's files into the store now, and pin them",
	  cli_pull },
	{ "unpin", "release what pull pinned", cli_unpin },
	{ "import", "use files already downloaded where they lie", cli_import },
	{ "add", "make a repo show up in the mount without reading it",
	  cli_add },
	{ "forget", "drop a repo from the store's index", cli_forget },
	{ "refresh", "resolve branches and tags again now", cli_refresh },
	{ "verify", "hash the files in the store again; remove bad ones",
	  cli_verify },
	{ "status", "the store's use, and what each running mount is doing",
	  cli_status },
	{ "gc", "remove forgotten files, and unused ones over the size limit",
	  cli_gc },
	{ NULL, NULL, NULL },
};

static void usage(FILE *out)
{
	fprintf(out, "usage: hubfs [--version] [--help] COMMAND [ARGS]\n"
		     "       hubfs SOURCE MOUNTPOINT [-o OPTION[,OPTION...]]"
		     "  (for fstab)\n"
		     "\n"
		     "Presents Hugging Face Hub repositories as plain folders, "
		     "with\n"
		     "contents fetched lazily into a local store.\n"
		     "\n");
	if (commands[0].name) {
		fprintf(out, "Commands:\n");
		for (const struct cli_command *c = commands; c->name; c++)
			fprintf(out, "  %-10s %s\n", c->name, c->summary);
		fprintf(out,
			"\n'hubfs COMMAND --help' describes one command.\n");
	}
	fprintf(out, "See hubfs(1) for the whole manual.\n");
}

static const struct cli_command *find_command(const char *name)
{
	for (const struct cli_command *c = commands; c->name; c++)
		if (strcmp(name, c->name) == 0)
			return c;
	return NULL;
}

/* "hubfs help [COMMAND]" */
static int help(int argc, char **argv)
{
	const struct cli_command *c;

	if (argc < 3) {
		usage(stdout);
		return CLI_EXIT_OK;
	}
	c = find_command(argv[2]);
	if (!c) {
		fprintf(stderr,
			"hubfs: '%s' is not a hubfs command; see 'hubfs "
			"--help'\n",
			argv[2]);
		return CLI_EXIT_USAGE;
	}
	return c->run(2, (char *[]){ argv[2], "--help", NULL });
}

/*
 * "hubfs SOURCE MOUNTPOINT [-o OPTIONS]": a word, then a folder (mount(8)
 * checked it) or a dead mount there, which mount then explains; and -o
 * (mount.fuse3 always passes it) or the word "hubfs".  Anything else is a
 * mistyped command: "hubfs umonut ~/models" must not mount again.
 */
static bool fstab_form(int argc, char **argv)
{
	struct stat st;
	bool opts;

	if (argc < 3 || argv[1][0] == '-' || argv[2][0] == '-')
		return false;
	opts = strcmp(argv[1], "hubfs") == 0;
	for (int i = 3; i < argc && !opts; i++)
		opts = strncmp(argv[i], "-o", 2) == 0;
	if (!opts)
		return false;
	if (stat(argv[2], &st) == 0)
		return S_ISDIR(st.st_mode);
	return errno == ENOTCONN || errno == ECONNABORTED;
}

static void version(void)
{
	printf("hubfs %s\n", HUBFS_VERSION);
	printf("libfuse %s, %s, SQLite %s, cJSON %s, %s\n", fuse_pkgversion(),
	       curl_version(), sqlite3_libversion(), cJSON_Version(),
	       OpenSSL_version(OPENSSL_VERSION));
}

int main(int argc, char **argv)
{
	const struct cli_command *cmd;

	if (argc < 2) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "help") == 0)
		return help(argc, argv);
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0 ||
	    strcmp(argv[1], "version") == 0) {
		version();
		return 0;
	}
	cmd = find_command(argv[1]);
	if (cmd) {
		char prog[32];

		/* getopt's complaints then start "hubfs ls: ..." */
		snprintf(prog, sizeof(prog), "hubfs %s", cmd->name);
		argv[1] = prog;
		return cmd->run(argc - 1, argv + 1);
	}
	if (fstab_form(argc, argv))
		return cli_mount_fstab(argc, argv);
	fprintf(stderr,
		"hubfs: '%s' is not a hubfs command; see 'hubfs --help'\n",
		argv[1]);
	return CLI_EXIT_USAGE;
}

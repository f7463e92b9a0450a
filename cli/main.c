/*
 * main.c - the hubfs command: option parsing for the top level and dispatch
 * to the subcommands in cli/.  Kept thin: every subcommand is a function
 * over the library (hub/, db/, fs/) that the tests link as well.
 */
#include "cli.h"

#include <cJSON.h>
#include <curl/curl.h>
#include <fuse_lowlevel.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

static const struct cli_command commands[] = {
	{ "mount", "mount the Hub at a folder", cli_mount },
	{ "umount", "unmount it", cli_umount },
	{ NULL, NULL, NULL },
};

static void usage(FILE *out)
{
	fprintf(out, "usage: hubfs [--version] [--help] COMMAND [ARGS]\n"
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

static void version(void)
{
	printf("hubfs %s\n", HUBFS_VERSION);
	printf("libfuse %s, %s, SQLite %s, cJSON %s, %s\n", fuse_pkgversion(),
	       curl_version(), sqlite3_libversion(), cJSON_Version(),
	       OpenSSL_version(OPENSSL_VERSION));
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0 ||
	    strcmp(argv[1], "version") == 0) {
		version();
		return 0;
	}
	for (const struct cli_command *c = commands; c->name; c++)
		if (strcmp(argv[1], c->name) == 0)
			return c->run(argc - 1, argv + 1);
	fprintf(stderr,
		"hubfs: '%s' is not a hubfs command; see 'hubfs --help'\n",
		argv[1]);
	return CLI_EXIT_USAGE;
}

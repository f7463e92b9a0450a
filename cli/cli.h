/*
 * cli.h - what the subcommands in cli/ share: the dispatch table entry and
 * the exit codes.
 */
#ifndef HUBFS_CLI_H
#define HUBFS_CLI_H

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

#endif /* HUBFS_CLI_H */

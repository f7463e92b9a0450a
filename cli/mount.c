/*
 * mount.c - "hubfs mount" and "hubfs umount".
 *
 * mount resolves every path and setting first, then (unless -f) forks:
 * the parent waits until the child reports that the mount answers, or
 * that it failed, and exits accordingly.  Threads, libcurl and SQLite are
 * started only in the child (DESIGN.md section 7).
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db.h"
#include "fs.h"
#include "hub.h"

struct mount_opts {
	struct cli_common common;
	long revision_ttl;
	long read_timeout;
	const char *log;
	bool foreground;
	bool debug;
	char *fuse_options; /* joined -o options */
	char mountpoint[PATH_MAX];
};

static void mount_usage(FILE *out)
{
	fprintf(out,
		"usage: hubfs mount [OPTIONS] MOUNTPOINT\n"
		"\n"
		"Mount the Hub at MOUNTPOINT: MOUNTPOINT/owner/name is a "
		"repo.\n"
		"\n" CLI_COMMON_HELP
		"  --revision-ttl SECONDS  how long a branch stays resolved "
		"(60)\n"
		"  --read-timeout SECONDS  give up on a read with no progress "
		"(60)\n"
		"  --log FILE              log to FILE (default: syslog, or "
		"stderr with -f)\n"
		"  -f, --foreground        stay in the foreground\n"
		"  -d, --debug             print every FUSE request (implies "
		"-f)\n"
		"  -o OPTION[,OPTION...]   FUSE mount options, e.g. "
		"allow_other\n"
		"                          (lets other local users read what "
		"your token can)\n"
		"  -h, --help              this help\n");
}

static int add_fuse_options(struct mount_opts *o, const char *opts)
{
	size_t old = o->fuse_options ? strlen(o->fuse_options) : 0;
	char *s = realloc(o->fuse_options, old + strlen(opts) + 2);

	if (!s)
		return -ENOMEM;
	if (old)
		s[old++] = ',';
	memcpy(s + old, opts, strlen(opts) + 1);
	o->fuse_options = s;
	return 0;
}

static int parse_mount(int argc, char **argv, struct mount_opts *o)
{
	enum { OPT_TTL = 256, OPT_TIMEOUT, OPT_LOG, CLI_COMMON_OPT_ENUM };
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "revision-ttl", required_argument, NULL, OPT_TTL },
		{ "read-timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "log", required_argument, NULL, OPT_LOG },
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->revision_ttl = 60;
	o->read_timeout = 60;
	while ((c = getopt_long(argc, argv, "fdho:", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			o->foreground = true;
			break;
		case 'd':
			o->debug = o->foreground = true;
			break;
		case 'o':
			if (add_fuse_options(o, optarg) < 0)
				return CLI_EXIT_FAIL;
			break;
		case 'h':
			mount_usage(stdout);
			return -1;
		case OPT_TTL:
			if (cli_parse_seconds(optarg, &o->revision_ttl) < 0)
				return CLI_EXIT_USAGE;
			break;
		case OPT_TIMEOUT:
			if (cli_parse_seconds(optarg, &o->read_timeout) < 0 ||
			    o->read_timeout == 0)
				return CLI_EXIT_USAGE;
			break;
		case OPT_LOG:
			o->log = optarg;
			break;
		default:
			if (cli_common_option(&o->common, c, optarg) == 0)
				break;
			mount_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		mount_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (!realpath(argv[optind], o->mountpoint)) {
		fprintf(stderr, "hubfs: %s: %s%s\n", argv[optind],
			strerror(errno),
			errno == ENOTCONN ? " (a hubfs that died is still "
					    "mounted there: run 'hubfs umount' "
					    "first)"
					  : "");
		return CLI_EXIT_FAIL;
	}
	return 0;
}

/*
 * path made absolute, with every symlink of its longest existing prefix
 * resolved (the rest may not exist yet).
 */
static int real_prefix(const char *path, char *out, size_t size)
{
	char buf[PATH_MAX], real[PATH_MAX], *cut = NULL;
	int n;

	if (path[0] == '/')
		n = snprintf(buf, sizeof(buf), "%s", path);
	else if (getcwd(real, sizeof(real)))
		n = snprintf(buf, sizeof(buf), "%s/%s", real, path);
	else
		return -errno;
	if (n < 0 || (size_t)n >= sizeof(buf))
		return -ENAMETOOLONG;
	for (;;) {
		if (realpath(buf, real)) {
			n = snprintf(out, size, "%s%s%s", real, cut ? "/" : "",
				     cut ? cut + 1 : "");
			return n >= 0 && (size_t)n < size ? 0 : -ENAMETOOLONG;
		}
		char *slash = strrchr(buf, '/');

		if (!slash || slash == buf)
			return -ENOENT;
		if (cut)
			*cut = '/';
		*slash = '\0';
		cut = slash;
	}
}

/*
 * The store must not live inside the mount it serves: once mounted, every
 * file SQLite opens there would be looked up through hubfs itself
 * (DESIGN.md section 7).  The store folder may not exist yet, and may be
 * reached through symlinks.
 */
static int check_store_outside(const struct mount_opts *o)
{
	char abs[PATH_MAX], *dir;
	size_t n = strlen(o->mountpoint);
	int rc = 0;

	dir = o->common.cache_dir ? strdup(o->common.cache_dir)
				  : db_default_dir();
	if (!dir || real_prefix(dir, abs, sizeof(abs)) < 0) {
		free(dir);
		return 0; /* opening the store will say what is wrong */
	}
	if (strncmp(abs, o->mountpoint, n) == 0 &&
	    (abs[n] == '/' || abs[n] == '\0' ||
	     strcmp(o->mountpoint, "/") == 0)) {
		fprintf(stderr,
			"hubfs: the store %s is inside the mount point %s; "
			"choose another --cache-dir\n",
			dir, o->mountpoint);
		rc = CLI_EXIT_FAIL;
	}
	free(dir);
	return rc;
}

/* The parent of a daemon: wait for "ready" or for the child to end. */
static int wait_ready(int fd, pid_t child)
{
	char c;
	ssize_t n;
	int status;

	do
		n = read(fd, &c, 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n == 1)
		return CLI_EXIT_OK;
	if (waitpid(child, &status, 0) == child && WIFEXITED(status) &&
	    WEXITSTATUS(status) != 0)
		return WEXITSTATUS(status);
	fprintf(stderr, "hubfs: the mount did not come up\n");
	return CLI_EXIT_FAIL;
}

static int serve(struct mount_opts *o, int ready_fd)
{
	struct hub_client *hub = NULL;
	struct db_store *store = NULL;
	struct fs_config cfg = { 0 };
	int rc;

	/* Relative paths (store, token file) are taken from where we started.
	 */
	rc = cli_open(&o->common, o->read_timeout, &hub, &store);
	if (rc)
		goto out;
	if (ready_fd >= 0 && chdir("/") < 0) {
		rc = CLI_EXIT_FAIL;
		goto out;
	}
	cfg.mountpoint = o->mountpoint;
	cfg.hub = hub;
	cfg.store = store;
	cfg.revision_ttl = o->revision_ttl;
	cfg.listing_ttl = 600;
	cfg.negative_ttl = 30;
	cfg.read_timeout = o->read_timeout;
	cfg.debug = o->debug;
	cfg.fuse_options = o->fuse_options;
	rc = fs_run(&cfg, ready_fd);
	if (rc < 0) {
		fprintf(stderr, "hubfs: cannot mount %s: %s\n", o->mountpoint,
			strerror(-rc));
		rc = CLI_EXIT_FAIL;
	}
out:
	db_store_close(store);
	hub_client_free(hub);
	return rc;
}

int cli_mount(int argc, char **argv)
{
	struct mount_opts o = { 0 };
	int pipefd[2], rc;
	pid_t pid;

	rc = parse_mount(argc, argv, &o);
	if (rc == 0)
		rc = check_store_outside(&o);
	if (rc)
		goto out;
	if (fs_log_open(o.log, o.foreground && !o.log) < 0) {
		fprintf(stderr, "hubfs: %s: %s\n", o.log, strerror(errno));
		rc = CLI_EXIT_FAIL;
		goto out;
	}
	if (o.foreground) {
		rc = serve(&o, -1);
		goto out;
	}
	if (pipe(pipefd) < 0 || (pid = fork()) < 0) {
		perror("hubfs");
		rc = CLI_EXIT_FAIL;
		goto out;
	}
	if (pid > 0) {
		close(pipefd[1]);
		rc = wait_ready(pipefd[0], pid);
		goto out;
	}
	close(pipefd[0]);
	setsid();
	rc = serve(&o, pipefd[1]);
out:
	free(o.fuse_options);
	return rc < 0 ? 0 : rc;
}

int cli_umount(int argc, char **argv)
{
	if (argc != 2 || argv[1][0] == '-') {
		fprintf(argc == 2 && strcmp(argv[1], "--help") == 0 ? stdout
								    : stderr,
			"usage: hubfs umount MOUNTPOINT\n");
		return argc == 2 && strcmp(argv[1], "--help") == 0
			       ? CLI_EXIT_OK
			       : CLI_EXIT_USAGE;
	}
	execlp("fusermount3", "fusermount3", "-u", argv[1], (char *)NULL);
	if (getuid() == 0)
		execlp("umount", "umount", "--", argv[1], (char *)NULL);
	perror("hubfs: fusermount3");
	return CLI_EXIT_FAIL;
}

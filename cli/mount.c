/*
 * mount.c - "hubfs mount", its fstab form, and "hubfs umount".
 *
 * mount resolves every path and setting first, then (unless -f) forks:
 * the parent waits until the child reports that the mount answers, or
 * that it failed, and exits accordingly.  Threads, libcurl and SQLite are
 * started only in the child (DESIGN.md section 7).
 *
 * The fstab form is what mount(8) runs for an entry of type fuse.hubfs:
 * mount.fuse3 execs "hubfs SOURCE MOUNTPOINT -o OPTIONS" through /bin/sh.
 * Its -o options, like those of "hubfs mount -o", carry hubfs's own
 * settings (cache_dir=DIR, ...) beside the ones meant for FUSE.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db.h"
#include "fs.h"
#include "hub.h"

struct mount_opts {
	struct cli_common common;
	long revision_ttl;
	long read_timeout;
	uint64_t max_cache; /* 0: keep the store's setting */
	bool no_xet;	    /* Xet files through the bridge only */
	const char *log;
	bool foreground;
	bool debug;
	bool xattr;
	char *fuse_options; /* joined -o options meant for FUSE */
	char **copies;	    /* of -o arguments; settings point into them */
	size_t n_copies;
	char mountpoint[PATH_MAX];
	char *hf_cache; /* resolved, or NULL: none */
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
		"  --max-cache SIZE        keep the store within SIZE (e.g. "
		"50G), evicting\n"
		"                          the least recently used files "
		"nothing "
		"has open;\n"
		"                          kept in the store for later mounts\n"
		"  --no-xet                read Xet files through the Hub's "
		"resolve bridge,\n"
		"                          never from the Xet CAS\n"
		"  --log FILE              log to FILE (default: syslog, or "
		"stderr with -f)\n"
		"  --xattr                 give files the user.hubfs.* "
		"extended attributes\n"
		"                          (commit, etag, cached); without "
		"it the mount has\n"
		"                          none, and ls -l costs no request "
		"per file\n"
		"  -f, --foreground        stay in the foreground\n"
		"  -d, --debug             print every FUSE request (implies "
		"-f)\n"
		"  -o OPTION[,OPTION...]   the settings above as "
		"cache_dir=DIR, "
		"endpoint=URL,\n"
		"                          token_file=FILE, offline, "
		"revision_ttl=N,\n"
		"                          read_timeout=N, max_cache=SIZE, "
		"log=FILE,\n"
		"                          hf_cache=DIR, no_hf_cache, no_xet, "
		"xattr; any other goes to\n"
		"                          FUSE, e.g. allow_other (lets other "
		"local users\n"
		"                          read what your token can)\n"
		"  -h, --help              this help\n"
		"\n"
		"The fstab form, which mount(8) runs for a line of type "
		"fuse.hubfs:\n"
		"  hubfs SOURCE MOUNTPOINT [-o OPTION[,OPTION...]]\n");
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

/*
 * Words of mount(8) and fstab that mean nothing to FUSE; mount.fuse3
 * drops some of them, but not all, and hubfs may be run by hand.  hubfs
 * is read-only and holds no device or set-user-ID file: rw, dev and suid
 * (mount.fuse3 adds the last two to every mount, and fusermount3 refuses
 * them to a user) are dropped, and so are the access-time words, which
 * libfuse does not know.
 */
static bool mount_word(const char *opt)
{
	static const char *const words[] = {
		"defaults",	 "auto",     "noauto",	   "user",
		"users",	 "nouser",   "owner",	   "group",
		"_netdev",	 "nofail",   "rw",	   "dev",
		"suid",		 "relatime", "norelatime", "strictatime",
		"nostrictatime", "lazytime", "nolazytime", "diratime",
		"nodiratime",	 "iversion", "noiversion", NULL,
	};

	for (const char *const *w = words; *w; w++)
		if (strcmp(opt, *w) == 0)
			return true;
	return strncmp(opt, "x-", 2) == 0 || strncmp(opt, "comment=", 8) == 0;
}

/* --read-timeout: a whole number of seconds, at least 1. */
static int parse_timeout(const char *arg, long *out)
{
	if (cli_parse_seconds(arg, out) < 0)
		return -1;
	if (*out == 0) {
		fprintf(stderr, "hubfs: the read timeout must be at least one "
				"second\n");
		return -1;
	}
	return 0;
}

/* opt is key or key=value, with '_' or '-' in the key. */
static bool key_is(const char *opt, const char *key)
{
	for (; *key; opt++, key++)
		if (*opt != *key && !(*key == '_' && *opt == '-'))
			return false;
	return *opt == '\0' || *opt == '=';
}

/*
 * One of hubfs's own settings given as -o key[=value]: 1 when taken, 0
 * when opt is not one, -1 (complaint printed) for a bad value.  The
 * setting points into opt.
 */
static int setting_option(struct mount_opts *o, const char *opt)
{
	static const char *const valued[] = {
		"cache_dir",	"endpoint",	"token_file", "log",
		"revision_ttl", "read_timeout", "max_cache",  "hf_cache",
	};
	const char *eq = strchr(opt, '='), *v = eq ? eq + 1 : NULL;
	size_t i, n = sizeof(valued) / sizeof(valued[0]);

	if (key_is(opt, "offline")) {
		o->common.offline = true;
		return 1;
	}
	if (key_is(opt, "no_hf_cache")) {
		o->common.no_hf_cache = true;
		return 1;
	}
	if (key_is(opt, "no_xet")) {
		o->no_xet = true;
		return 1;
	}
	if (key_is(opt, "xattr") && !eq) {
		o->xattr = true;
		return 1;
	}
	for (i = 0; i < n && !key_is(opt, valued[i]); i++)
		;
	if (i == n)
		return 0;
	if (!v || !*v) {
		fprintf(stderr, "hubfs: -o %s needs a value (%s=...)\n",
			valued[i], valued[i]);
		return -1;
	}
	if (i == 0)
		o->common.cache_dir = v;
	else if (i == 1)
		o->common.endpoint = v;
	else if (i == 2)
		o->common.token_file = v;
	else if (i == 3)
		o->log = v;
	else if (i == 7)
		o->common.hf_cache = v;
	else if (i == 4	  ? cli_parse_seconds(v, &o->revision_ttl) < 0
		 : i == 5 ? parse_timeout(v, &o->read_timeout) < 0
			  : cli_parse_size(v, &o->max_cache) < 0)
		return -1;
	return 1;
}

/* An -o argument: settings are taken, the rest is kept for FUSE. */
static int parse_o(struct mount_opts *o, const char *arg)
{
	char **copies = realloc(o->copies, (o->n_copies + 1) * sizeof(char *));
	char *opt, *next;
	int rc;

	if (!copies)
		return CLI_EXIT_FAIL;
	o->copies = copies;
	opt = strdup(arg);
	if (!opt)
		return CLI_EXIT_FAIL;
	copies[o->n_copies++] = opt;
	for (; opt; opt = next) {
		next = strchr(opt, ',');
		if (next)
			*next++ = '\0';
		if (!*opt || mount_word(opt))
			continue;
		rc = setting_option(o, opt);
		if (rc < 0)
			return CLI_EXIT_USAGE;
		if (rc == 0 && add_fuse_options(o, opt) < 0)
			return CLI_EXIT_FAIL;
	}
	return 0;
}

static int set_mountpoint(struct mount_opts *o, const char *path)
{
	if (strncmp(path, "/dev/fd/", 8) == 0) {
		fprintf(stderr,
			"hubfs: %s: a mount point passed as a file "
			"descriptor (drop_privileges) is not "
			"supported\n",
			path);
		return CLI_EXIT_USAGE;
	}
	if (!realpath(path, o->mountpoint)) {
		fprintf(stderr, "hubfs: %s: %s%s\n", path, strerror(errno),
			errno == ENOTCONN || errno == ECONNABORTED
				? " (a hubfs that died is still "
				  "mounted there: run 'hubfs umount' "
				  "first)"
				: "");
		return CLI_EXIT_FAIL;
	}
	return 0;
}

static int parse_mount(int argc, char **argv, struct mount_opts *o)
{
	enum {
		OPT_TTL = 256,
		OPT_TIMEOUT,
		OPT_LOG,
		OPT_MAX_CACHE,
		OPT_NO_XET,
		OPT_XATTR,
		CLI_COMMON_OPT_ENUM
	};
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "revision-ttl", required_argument, NULL, OPT_TTL },
		{ "read-timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "log", required_argument, NULL, OPT_LOG },
		{ "max-cache", required_argument, NULL, OPT_MAX_CACHE },
		{ "no-xet", no_argument, NULL, OPT_NO_XET },
		{ "xattr", no_argument, NULL, OPT_XATTR },
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, rc;

	while ((c = getopt_long(argc, argv, "fdho:", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			o->foreground = true;
			break;
		case 'd':
			o->debug = o->foreground = true;
			break;
		case 'o':
			rc = parse_o(o, optarg);
			if (rc)
				return rc;
			break;
		case 'h':
			mount_usage(stdout);
			return -1;
		case OPT_TTL:
			if (cli_parse_seconds(optarg, &o->revision_ttl) < 0)
				return CLI_EXIT_USAGE;
			break;
		case OPT_TIMEOUT:
			if (parse_timeout(optarg, &o->read_timeout) < 0)
				return CLI_EXIT_USAGE;
			break;
		case OPT_LOG:
			o->log = optarg;
			break;
		case OPT_NO_XET:
			o->no_xet = true;
			break;
		case OPT_MAX_CACHE:
			if (cli_parse_size(optarg, &o->max_cache) < 0 ||
			    o->max_cache == 0)
				return CLI_EXIT_USAGE;
			break;
		case OPT_XATTR:
			o->xattr = true;
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
	return set_mountpoint(o, argv[optind]);
}

/*
 * "hubfs SOURCE MOUNTPOINT [-o OPTIONS]...": SOURCE is any word (fstab's
 * first field).  mount(8) clears the environment of HOME; the store and
 * the token file are then found from the user's passwd entry.
 */
static int parse_fstab(int argc, char **argv, struct mount_opts *o)
{
	struct passwd *pw;
	int c, rc;

	while ((c = getopt(argc, argv, "o:")) != -1) {
		if (c != 'o') {
			mount_usage(stderr);
			return CLI_EXIT_USAGE;
		}
		rc = parse_o(o, optarg);
		if (rc)
			return rc;
	}
	if (argc - optind != 2) {
		fprintf(stderr, "usage: hubfs SOURCE MOUNTPOINT "
				"[-o OPTION[,OPTION...]]\n"
				"       (or see 'hubfs --help')\n");
		return CLI_EXIT_USAGE;
	}
	if (!getenv("HOME") && (pw = getpwuid(getuid())) && pw->pw_dir)
		setenv("HOME", pw->pw_dir, 1);
	return set_mountpoint(o, argv[optind + 1]);
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

/*
 * The huggingface_hub cache the mount takes blobs from.  One inside the
 * mount point would be read through the mount itself (DESIGN.md section
 * 7): it is left out here, as the daemon also does for one that reaches
 * its mount otherwise (a symlink made later, a bind mount).
 */
static void find_hf_cache(struct mount_opts *o)
{
	char abs[PATH_MAX];
	size_t n = strlen(o->mountpoint);

	o->hf_cache = cli_hf_cache_dir(&o->common, NULL);
	if (!o->hf_cache || real_prefix(o->hf_cache, abs, sizeof(abs)) < 0)
		return;
	if (strncmp(abs, o->mountpoint, n) == 0 &&
	    (abs[n] == '/' || abs[n] == '\0' ||
	     strcmp(o->mountpoint, "/") == 0)) {
		fprintf(stderr,
			"hubfs: the hf cache %s is inside the mount point %s: "
			"not used\n",
			o->hf_cache, o->mountpoint);
		free(o->hf_cache);
		o->hf_cache = NULL;
	}
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
	/* A daemon without --log on a machine without syslog: the store's. */
	if (!o->log && !o->foreground &&
	    (rc = fs_log_open_daemon(db_store_dir(store))) < 0) {
		fprintf(stderr, "hubfs: cannot open a log in %s: %s\n",
			db_store_dir(store), strerror(-rc));
		rc = CLI_EXIT_FAIL;
		goto out;
	}
	/* stderr may be a terminal that goes away: the log keeps it. */
	if (db_store_repaired(store))
		fs_log(LOG_WARNING, "%s", db_store_repaired(store));
	if (ready_fd >= 0 && chdir("/") < 0) {
		rc = CLI_EXIT_FAIL;
		goto out;
	}
	/* The limit stays with the store: later mounts, gc, status see it. */
	if (o->max_cache && db_setting_put(store, DB_SETTING_MAX_CACHE,
					   (int64_t)o->max_cache) < 0) {
		fprintf(stderr, "hubfs: cannot record --max-cache: %s\n",
			db_last_error());
		rc = CLI_EXIT_FAIL;
		goto out;
	}
	fs_config_defaults(&cfg);
	cfg.mountpoint = o->mountpoint;
	cfg.hub = hub;
	cfg.store = store;
	cfg.revision_ttl = o->revision_ttl;
	cfg.read_timeout = o->read_timeout;
	cfg.debug = o->debug;
	cfg.xattr = o->xattr;
	cfg.fuse_options = o->fuse_options;
	cfg.hf_cache = o->hf_cache;
	cfg.no_xet = o->no_xet;
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

/* Mount with the settings parsed (rc: what the parsing returned). */
static int run_mount(struct mount_opts *o, int rc)
{
	int pipefd[2];
	pid_t pid;

	if (rc == 0)
		rc = check_store_outside(o);
	if (rc)
		goto out;
	find_hf_cache(o);
	if (fs_log_open(o->log, o->foreground && !o->log) < 0) {
		fprintf(stderr, "hubfs: %s: %s\n", o->log, strerror(errno));
		rc = CLI_EXIT_FAIL;
		goto out;
	}
	if (o->foreground) {
		rc = serve(o, -1);
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
	rc = serve(o, pipefd[1]);
out:
	free(o->fuse_options);
	free(o->hf_cache);
	for (size_t i = 0; i < o->n_copies; i++)
		free(o->copies[i]);
	free(o->copies);
	return rc < 0 ? 0 : rc;
}

static void mount_defaults(struct mount_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->revision_ttl = FS_REVISION_TTL;
	o->read_timeout = FS_READ_TIMEOUT;
}

int cli_mount(int argc, char **argv)
{
	struct mount_opts o;

	mount_defaults(&o);
	return run_mount(&o, parse_mount(argc, argv, &o));
}

int cli_mount_fstab(int argc, char **argv)
{
	struct mount_opts o;

	mount_defaults(&o);
	return run_mount(&o, parse_fstab(argc, argv, &o));
}

int cli_umount(int argc, char **argv)
{
	bool help = argc == 2 && (strcmp(argv[1], "--help") == 0 ||
				  strcmp(argv[1], "-h") == 0);
	struct statvfs sv;

	if (argc != 2 || argv[1][0] == '-') {
		fprintf(help ? stdout : stderr,
			"usage: hubfs umount MOUNTPOINT\n"
			"\n"
			"Unmount the hubfs mounted at MOUNTPOINT (with "
			"fusermount3 -u, or umount\n"
			"as root); the daemon then exits.\n");
		return help ? CLI_EXIT_OK : CLI_EXIT_USAGE;
	}
	/*
	 * A daemon killed under its mount leaves it answering ENOTCONN (or
	 * ECONNABORTED, while the kernel tears the connection down), and
	 * a file still open on it makes a plain unmount fail EBUSY.  Nothing
	 * can be served there any more: detach it (lazily) so that the
	 * folder is usable again.  statfs always reaches the daemon; stat
	 * of the mount point may be answered from the kernel's cache.
	 */
	if (statvfs(argv[1], &sv) < 0 &&
	    (errno == ENOTCONN || errno == ECONNABORTED)) {
		fprintf(stderr,
			"hubfs: the daemon of %s is gone (%s); detaching it\n",
			argv[1], strerror(errno));
		execlp("fusermount3", "fusermount3", "-u", "-z", argv[1],
		       (char *)NULL);
		if (getuid() == 0)
			execlp("umount", "umount", "-l", "--", argv[1],
			       (char *)NULL);
		perror("hubfs: fusermount3");
		return CLI_EXIT_FAIL;
	}
	execlp("fusermount3", "fusermount3", "-u", argv[1], (char *)NULL);
	if (getuid() == 0)
		execlp("umount", "umount", "--", argv[1], (char *)NULL);
	perror("hubfs: fusermount3");
	return CLI_EXIT_FAIL;
}

/*
 * session.c - mount, serve, unmount.
 *
 * The mount answers before fs_run reports ready: a thread statfs()es the
 * mount point until the kernel says it is FUSE, which needs the loop to
 * have answered INIT and the request itself.  Before the loop starts,
 * fs_run widens the kernel's readahead for the mount (raise_readahead).
 */
#include "front.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#define FUSE_SUPER_MAGIC 0x65735546

struct ready {
	char *mountpoint;
	int fd; /* the parent's pipe */
};

/*
 * "MAJOR:MINOR" of the newest mount at mountpoint (an absolute, resolved
 * path) in /proc/self/mountinfo, whose fields are: id, parent id,
 * MAJOR:MINOR, root, mount point (space, tab, newline and backslash as
 * octal escapes), ...  0, or -ENOENT.  Reading the table asks nothing of
 * the mount itself: a stat() of our own mount point from the daemon would
 * wait for INIT, and under valgrind (which holds its lock across stat)
 * would keep the loop from ever answering it.
 */
static int mount_device(const char *mountpoint, char *dev, size_t size)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL, *path = NULL;
	size_t cap = 0;
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		char majmin[32];
		int at = 0;
		size_t i = 0;

		free(path);
		path = malloc(strlen(line) + 1);
		if (!path ||
		    sscanf(line, "%*d %*d %31s %*s %n", majmin, &at) != 1 ||
		    at == 0)
			continue;
		for (const char *p = line + at; *p && *p != ' '; p++) {
			if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' &&
			    p[2] >= '0' && p[2] <= '7' && p[3] >= '0' &&
			    p[3] <= '7') {
				path[i++] =
					(char)((p[1] - '0') * 64 +
					       (p[2] - '0') * 8 + (p[3] - '0'));
				p += 3;
			} else {
				path[i++] = *p;
			}
		}
		path[i] = '\0';
		if (strcmp(path, mountpoint) == 0) { /* the last one wins */
			snprintf(dev, size, "%s", majmin);
			rc = 0;
		}
	}
	free(path);
	free(line);
	fclose(f);
	return rc;
}

/*
 * The kernel reads ahead in a FUSE file at most its bdi's read_ahead_kb,
 * 128 KiB unless raised, and INIT can only lower it (fs_init asks for
 * FS_READAHEAD, so raising it here, before the loop answers INIT, holds): a
 * sequential reader then costs a request (and a wake-up on each side) per 128
 * KiB, and an mmap'ed model faults 128 KiB at a time.  The knob is
 * /sys/class/bdi/MAJOR:MINOR/read_ahead_kb of the mount's device, which
 * only root may write: for anyone else this changes nothing.  A value
 * someone raised further is kept.  1 MiB is one request (FS_MAX_READ):
 * more would have the kernel ask ahead of a reader that stops (a tensor
 * of a model), and the engine fetch further ahead still.  Called once
 * the mount exists, before the loop serves it.
 */
static void raise_readahead(const char *mountpoint, unsigned kb)
{
	char dev[32], path[80], buf[32];
	ssize_t n;
	int fd;

	if (mount_device(mountpoint, dev, sizeof(dev)) < 0) {
		fs_log(LOG_DEBUG,
		       "readahead stays the kernel's: %s is not in "
		       "/proc/self/mountinfo",
		       mountpoint);
		return;
	}
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fs_log(LOG_DEBUG, "readahead stays the kernel's: %s: %s", path,
		       strerror(errno));
		return;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	if (n > 0) {
		buf[n] = '\0';
		if (strtoul(buf, NULL, 10) >= kb) {
			close(fd);
			return;
		}
	}
	n = snprintf(buf, sizeof(buf), "%u\n", kb);
	if (pwrite(fd, buf, (size_t)n, 0) != n)
		fs_log(LOG_DEBUG, "readahead stays the kernel's: %s: %s", path,
		       strerror(errno));
	else
		fs_log(LOG_DEBUG, "readahead of the mount: %u KiB", kb);
	close(fd);
}

/* A daemon lets go of the terminal once its parent has been told. */
static void detach_stdio(void)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return;
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
}

/*
 * Poll until the mount answers, then tell the parent.  If the session ends
 * first, the process exits and the parent sees the pipe close.  r is this
 * thread's to free.
 */
static void *report_ready(void *arg)
{
	struct ready *r = arg;
	struct statfs sf;

	for (;;) {
		if (statfs(r->mountpoint, &sf) == 0 &&
		    sf.f_type == FUSE_SUPER_MAGIC) {
			if (write(r->fd, "1", 1) == 1)
				detach_stdio();
			break;
		}
		usleep(50 * 1000);
	}
	close(r->fd);
	free(r->mountpoint);
	free(r);
	return NULL;
}

static void start_ready_thread(const char *mountpoint, int fd)
{
	struct ready *r = malloc(sizeof(*r));
	pthread_t t;

	if (r && (r->mountpoint = strdup(mountpoint)) != NULL) {
		r->fd = fd;
		if (pthread_create(&t, NULL, report_ready, r) == 0) {
			pthread_detach(t);
			return;
		}
		free(r->mountpoint);
	}
	free(r);
	close(fd); /* the parent sees the pipe close and reports failure */
}

static int mount_init(struct fs_mount *m, const struct fs_config *cfg)
{
	struct node *root;
	int rc;

	memset(m, 0, sizeof(*m));
	rc = ctx_init(&m->ctx, cfg);
	if (rc < 0)
		return rc;
	m->ctx.mounted = true;
	m->uid = getuid();
	m->gid = getgid();
	m->started = time(NULL);
	m->status_fd = m->status_dir = m->status_wake = -1;
	if (node_table_init(&m->nodes) < 0)
		return -ENOMEM;
	root = node_alloc(NODE_ROOT);
	if (!root)
		return -ENOMEM;
	root->ino = FUSE_ROOT_ID;
	node_publish(&m->nodes, root, 0, "");
	return 0;
}

static void mount_destroy(struct fs_mount *m)
{
	node_table_destroy(&m->nodes);
	ctx_destroy(&m->ctx);
}

/* A blob failed its check: the kernel drops its pages of the file. */
static void dropped(void *arg, uint64_t node)
{
	struct fs_mount *m = arg;

	fuse_lowlevel_notify_inval_inode(m->se, node, 0, 0);
}

static int build_args(const struct fs_config *cfg, struct fuse_args *args)
{
	char opts[1024];

	snprintf(opts, sizeof(opts),
		 "ro,default_permissions,max_read=%u,fsname=hubfs,subtype="
		 "hubfs%s%s",
		 FS_MAX_READ, cfg->fuse_options ? "," : "",
		 cfg->fuse_options ? cfg->fuse_options : "");
	if (fuse_opt_add_arg(args, "hubfs") || fuse_opt_add_arg(args, "-o") ||
	    fuse_opt_add_arg(args, opts) ||
	    (cfg->debug && fuse_opt_add_arg(args, "-d")))
		return -ENOMEM;
	return 0;
}

int fs_run(const struct fs_config *cfg, int ready_fd)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config *loop = NULL;
	struct fuse_session *se = NULL;
	bool mounted = false, signals = false, started = false;
	struct fs_mount m;
	int rc;

	rc = mount_init(&m, cfg);
	if (rc == 0)
		rc = build_args(cfg, &args);
	if (rc < 0)
		goto out;
	rc = -EINVAL;
	se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), &m);
	if (!se)
		goto out;
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	signals = true;
	if (fuse_session_mount(se, cfg->mountpoint) != 0) {
		rc = -EIO;
		goto out;
	}
	mounted = true;
	m.se = se;
	rc = ctx_engine_start(&m.ctx, dropped, &m);
	if (rc < 0)
		goto out;
	started = true;
	status_start(&m); /* without it, the mount still serves */
	raise_readahead(cfg->mountpoint, FS_READAHEAD / 1024);
	if (ready_fd >= 0)
		start_ready_thread(cfg->mountpoint, ready_fd);
	loop = fuse_loop_cfg_create();
	if (!loop) {
		rc = -ENOMEM;
		goto out;
	}
	fuse_loop_cfg_set_max_threads(loop, 64);
	fs_log(LOG_INFO, "mounted %s (endpoint %s, store %s%s)",
	       cfg->mountpoint, hub_client_endpoint(cfg->hub),
	       db_store_dir(cfg->store),
	       hub_client_offline(cfg->hub) ? ", offline" : "");
	rc = fuse_session_loop_mt(se, loop);
	rc = rc < 0 ? rc : 0;
	fs_log(LOG_INFO, "unmounting %s", cfg->mountpoint);
out:
	fuse_loop_cfg_destroy(loop);
	status_stop(&m);
	if (started)
		engine_stop(m.ctx.eng);
	if (mounted)
		fuse_session_unmount(se);
	if (signals)
		fuse_remove_signal_handlers(se);
	if (se)
		fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	mount_destroy(&m);
	return rc;
}

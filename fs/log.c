/*
 * log.c - the daemon's log: one line per event, to a file, stderr or
 * syslog (or, for a daemon on a machine without syslog, a bounded file in
 * the store).  The last warnings and errors are also kept in memory and,
 * for a mount, in a small file of the store that "hubfs status" reads.
 * Callers never pass the token; nothing here could know it.
 */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Set before any thread starts, then read-only. */
static int log_fd = -1; /* file or stderr; -1 for syslog */
static int log_level = LOG_INFO;
static char *rotate_path; /* the store's log file, rotated; or NULL */

/* The last warnings and errors, and where they are kept. */
static pthread_mutex_t recent_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fs_log_entry recent[FS_LOG_RECENT]; /* recent_lock */
static size_t n_recent;				  /* recent_lock */
static int keep_dir = -1;			  /* recent_lock */
static char keep_name[64], keep_title[512];	  /* recent_lock */

int fs_log_open_daemon(const char *store_dir)
{
	struct stat st;
	char *path;
	int rc;

	if (stat("/dev/log", &st) == 0 && S_ISSOCK(st.st_mode))
		return fs_log_open(NULL, false);
	if (asprintf(&path, "%s/hubfs.log", store_dir) < 0)
		return -ENOMEM;
	rc = fs_log_open(path, false);
	if (rc == 0)
		rotate_path = path;
	else
		free(path);
	return rc;
}

/* The store's log grew past its bound: on to a fresh file (recent_lock). */
static void rotate(void)
{
	char old[4200];
	struct stat st;
	int fd;

	if (!rotate_path || fstat(log_fd, &st) < 0 ||
	    st.st_size < FS_LOG_FILE_MAX)
		return;
	snprintf(old, sizeof(old), "%s.1", rotate_path);
	if (rename(rotate_path, old) < 0)
		return;
	fd = open(rotate_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0) {
		dup2(fd, log_fd); /* writers keep their descriptor number */
		close(fd);
	}
}

/* Rewrite the kept file with what is recent (recent_lock). */
static void keep_write(void)
{
	char tmp[80];
	FILE *f;
	int fd;

	if (keep_dir < 0)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", keep_name);
	fd = openat(keep_dir, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0600);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	fprintf(f, "# %s\n", keep_title);
	for (size_t i = 0; i < n_recent; i++)
		fprintf(f, "%lld\t%s\t%s\n", (long long)recent[i].time,
			fs_log_level_name(recent[i].priority),
			recent[i].message);
	if (fclose(f) == 0)
		renameat(keep_dir, tmp, keep_dir, keep_name);
	else
		unlinkat(keep_dir, tmp, 0);
}

static void remember(int priority, time_t now, const char *msg)
{
	size_t len;

	pthread_mutex_lock(&recent_lock);
	if (n_recent == FS_LOG_RECENT) {
		memmove(&recent[0], &recent[1],
			(FS_LOG_RECENT - 1) * sizeof(recent[0]));
		n_recent--;
	}
	recent[n_recent].time = now;
	recent[n_recent].priority = priority;
	len = strnlen(msg, sizeof(recent[0].message) - 1);
	memcpy(recent[n_recent].message, msg, len);
	recent[n_recent].message[len] = '\0';
	n_recent++;
	keep_write();
	pthread_mutex_unlock(&recent_lock);
}

size_t fs_log_recent(struct fs_log_entry *out, size_t max)
{
	size_t n;

	pthread_mutex_lock(&recent_lock);
	n = n_recent < max ? n_recent : max;
	memcpy(out, &recent[n_recent - n], n * sizeof(*out));
	pthread_mutex_unlock(&recent_lock);
	return n;
}

void fs_log_keep_errors(int dir_fd, const char *name, const char *title)
{
	pthread_mutex_lock(&recent_lock);
	keep_dir = dir_fd;
	snprintf(keep_name, sizeof(keep_name), "%s", name ? name : "");
	snprintf(keep_title, sizeof(keep_title), "%s", title ? title : "");
	if (n_recent)
		keep_write();
	pthread_mutex_unlock(&recent_lock);
}

int fs_log_open(const char *file, bool to_stderr)
{
	if (file) {
		int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
			      0600);

		if (fd < 0)
			return -errno;
		log_fd = fd;
	} else if (to_stderr) {
		log_fd = STDERR_FILENO;
	} else {
		openlog("hubfs", LOG_PID, LOG_DAEMON);
	}
	return 0;
}

void fs_log_set_level(int priority)
{
	log_level = priority;
}

const char *fs_log_level_name(int priority)
{
	switch (priority) {
	case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warning";
	case LOG_DEBUG:
		return "debug";
	default:
		return "info";
	}
}

void fs_log(int priority, const char *fmt, ...)
{
	char line[1024], stamp[32];
	struct tm tm;
	time_t now = time(NULL);
	va_list ap;
	int n;

	if (priority <= LOG_WARNING) {
		va_start(ap, fmt);
		vsnprintf(line, sizeof(line), fmt, ap);
		va_end(ap);
		remember(priority, now, line);
	}
	if (priority > log_level)
		return;
	va_start(ap, fmt);
	if (log_fd < 0) {
		vsyslog(priority, fmt, ap);
		va_end(ap);
		return;
	}
	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	n = snprintf(line, sizeof(line), "%s hubfs[%d] %s: ", stamp,
		     (int)getpid(), fs_log_level_name(priority));
	if (n > 0 && (size_t)n < sizeof(line))
		n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	/* One write per line keeps lines whole between threads. */
	if (write(log_fd, line, (size_t)n) < 0)
		return;
	if (rotate_path) {
		pthread_mutex_lock(&recent_lock);
		rotate();
		pthread_mutex_unlock(&recent_lock);
	}
}

/*
 * log.c - the daemon's log: one line per event, to a file, stderr or
 * syslog.  Callers never pass the token; nothing here could know it.
 */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_fd = -1; /* file or stderr; -1 for syslog */
static int log_level = LOG_INFO;

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

static const char *level_name(int priority)
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
		     (int)getpid(), level_name(priority));
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
}

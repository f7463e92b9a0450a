/*
 * fs.h - the FUSE filesystem: the whole interface of fs/.
 *
 * fs/ presents the Hub as a folder tree (DESIGN.md section 1) over the
 * low-level FUSE API.  It asks db/ for names and attributes and the store
 * for bytes, and hub/ for what the store does not have yet; it knows
 * nothing about HTTP.  It is also where failures are logged, once, at the
 * point that decides what a program sees.
 */
#ifndef HUBFS_FS_H
#define HUBFS_FS_H

#include <stdbool.h>
#include <stdarg.h>
#include <syslog.h>

#include "db.h"
#include "hub.h"

struct fs_config {
	const char *mountpoint;	  /* absolute */
	struct hub_client *hub;	  /* borrowed */
	struct db_store *store;	  /* borrowed */
	long revision_ttl;	  /* seconds a branch stays resolved */
	long listing_ttl;	  /* seconds an owner listing is kept */
	long negative_ttl;	  /* seconds a miss is remembered */
	long read_timeout;	  /* seconds without progress: EIO */
	bool debug;		  /* libfuse's -d */
	const char *fuse_options; /* extra -o options, or NULL */
};

/*
 * Mount and serve until unmounted or signalled.  When ready_fd >= 0 (a
 * daemon), one byte is written to it (and it is closed) once the mount
 * answers, so the parent can exit then, and standard input, output and
 * error are pointed at /dev/null.  Returns 0 or a negative errno.
 */
int fs_run(const struct fs_config *cfg, int ready_fd);

/* ---- Logging ----------------------------------------------------------- */

/*
 * Where log lines go: a file (appended, 0600), stderr, or syslog when
 * neither is given.  Call once before any thread starts.
 */
int fs_log_open(const char *file, bool to_stderr);
void fs_log(int priority, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif /* HUBFS_FS_H */

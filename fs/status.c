/*
 * status.c - what a running mount tells "hubfs status" and "hubfs
 * refresh", over a Unix socket in the store (DESIGN.md section 3).
 *
 * Each mount listens on <store>/mounts/<pid>.sock: the folder is 0700 and
 * the socket 0600, so only the store's owner (and root) can connect; the
 * peer's uid is checked too.  The socket is removed at unmount.  A daemon
 * killed with -9 leaves its socket behind: whoever finds it dead (connect
 * says ECONNREFUSED) removes it.
 *
 * The protocol is one request per connection: the client sends a word
 * ("status" or "refresh") ended by a newline or the end of its stream; the
 * mount answers with one JSON object and closes.  Connections are served
 * one at a time by a thread of the mount's own, never a FUSE worker (a
 * refresh notifies the kernel, which must not wait on the thread that
 * sends the notification); a client that sends nothing is dropped after
 * REQUEST_MS.
 *
 * sun_path holds 108 bytes, less than a store's path may be.  A path that
 * does not fit is reached through the folder's descriptor instead,
 * "/proc/self/fd/<fd>/<pid>.sock": the kernel resolves that like any
 * path, so bind and connect see the same file.
 */
#include "front.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MOUNTS_DIR  "mounts"
#define REQUEST_MS  1000 /* a client gets this long to send its word */
#define REPLY_MS    3000 /* and the client waits this long for an answer */
#define REQUEST_MAX 64	 /* bytes of a request */
#define REPLY_MAX   (64 << 10) /* bytes of an answer, at most */

/* ---- Both sides -------------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Open <store>/mounts, checked to be ours.  A mount (create) creates it
 * and makes it 0700; root may look into anyone's.  Returns the
 * descriptor or a negative errno.
 */
static int mounts_open(const char *store, bool create)
{
	char path[4096];
	struct stat st;
	int fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", store, MOUNTS_DIR) >=
	    sizeof(path))
		return -ENAMETOOLONG;
	if (create && mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 ||
	    (st.st_uid != geteuid() && (create || geteuid() != 0))) {
		close(fd);
		return -EPERM;
	}
	if (create && (st.st_mode & 07777) != 0700 && fchmod(fd, 0700) < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	return fd;
}

/* The address of name in the folder dir (path) whose descriptor is dirfd. */
static int sock_addr(const char *dir, int dirfd, const char *name,
		     struct sockaddr_un *sa)
{
	size_t size = sizeof(sa->sun_path);
	int n;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	n = snprintf(sa->sun_path, size, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= size)
		n = snprintf(sa->sun_path, size, "/proc/self/fd/%d/%s", dirfd,
			     name);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/*
 * Connect to the socket at sa: a descriptor, -ECONNREFUSED when nobody
 * listens there (a dead mount's), or another negative errno.
 */
static int sock_connect(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	return fd;
}

/*
 * Remove the socket name, found dead, unless it is no longer the file
 * seen before the probe (a new mount bound the name meanwhile).
 */
static void remove_dead(int dirfd, const char *name, const struct stat *before)
{
	struct stat now;

	if (fstatat(dirfd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
	    now.st_ino == before->st_ino && now.st_dev == before->st_dev)
		unlinkat(dirfd, name, 0);
}

/*
 * Connect to the socket name in dir (whose descriptor is dirfd), removing
 * it when nobody listens there any more.  Returns the connected
 * descriptor, -ECONNREFUSED for a dead socket (removed), -EINVAL for a
 * file that is no socket, or another negative errno.
 */
static int connect_or_clean(const char *dir, int dirfd, const char *name)
{
	struct sockaddr_un sa;
	struct stat before;
	int rc = sock_addr(dir, dirfd, name, &sa);

	if (rc < 0)
		return rc;
	if (fstatat(dirfd, name, &before, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!S_ISSOCK(before.st_mode))
		return -EINVAL;
	rc = sock_connect(&sa);
	if (rc == -ECONNREFUSED)
		remove_dead(dirfd, name, &before);
	return rc;
}

/* ---- The mount's side -------------------------------------------------- */

/* Read the request word into buf, waiting at most REQUEST_MS in all. */
static int read_request(int fd, char *buf, size_t size)
{
	int64_t deadline = now_ms() + REQUEST_MS;
	size_t len = 0;

	while (len + 1 < size && !memchr(buf, '\n', len)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - now_ms();
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) == 0)
			return -ETIMEDOUT;
		n = recv(fd, buf + len, size - 1 - len, MSG_DONTWAIT);
		if (n == 0)
			break;
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return -errno;
		if (n > 0)
			len += (size_t)n;
	}
	buf[len] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

/* The fields every answer starts with: which mount this is. */
static cJSON *reply_new(struct fs_mount *m)
{
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return NULL;
	cJSON_AddNumberToObject(o, "pid", (double)getpid());
	cJSON_AddStringToObject(o, "mountpoint", m->ctx.cfg.mountpoint);
	cJSON_AddStringToObject(o, "endpoint",
				hub_client_endpoint(m->ctx.cfg.hub));
	cJSON_AddStringToObject(o, "store", db_store_dir(m->ctx.cfg.store));
	return o;
}

/* "last_errors": [{"time", "level", "message"}], oldest first. */
static void add_errors(cJSON *o)
{
	struct fs_log_entry e[FS_LOG_RECENT];
	size_t n = fs_log_recent(e, FS_LOG_RECENT);
	cJSON *a = cJSON_AddArrayToObject(o, "last_errors"), *x;

	for (size_t i = 0; a && i < n; i++) {
		x = cJSON_CreateObject();
		if (!x)
			return;
		cJSON_AddNumberToObject(x, "time", (double)e[i].time);
		cJSON_AddStringToObject(x, "level",
					fs_log_level_name(e[i].priority));
		cJSON_AddStringToObject(x, "message", e[i].message);
		cJSON_AddItemToArray(a, x);
	}
}

static cJSON *status_reply(struct fs_mount *m)
{
	struct engine_stats es;
	cJSON *o = reply_new(m);

	if (!o)
		return NULL;
	engine_get_stats(m->ctx.eng, &es);
	cJSON_AddBoolToObject(o, "offline", hub_client_offline(m->ctx.cfg.hub));
	hub_json_add_u64(o, "started", (uint64_t)m->started);
	hub_json_add_u64(o, "revision_ttl", (uint64_t)m->ctx.cfg.revision_ttl);
	/* A mount's waits are its FUSE reads of bytes in a file. */
	hub_json_add_u64(o, "bytes_served", es.bytes_answered);
	hub_json_add_u64(o, "bytes_fetched", es.xfer.bytes);
	hub_json_add_u64(o, "reads", es.waits);
	hub_json_add_u64(o, "reads_local", es.waits_local);
	hub_json_add_u64(o, "transfers_in_flight", es.xfer.in_flight);
	hub_json_add_u64(o, "transfers_queued", es.xfer.queued);
	hub_json_add_u64(o, "blobs_open", es.blobs_open);
	/* Reads through the Xet CAS (their xorb bytes are in bytes_fetched). */
	hub_json_add_u64(o, "xet_tokens", es.xet.tokens);
	hub_json_add_u64(o, "xet_reconstructions", es.xet.reconstructions);
	hub_json_add_u64(o, "xet_xorb_requests", es.xet.xorb_requests);
	hub_json_add_u64(o, "xet_xorb_bytes", es.xet.xorb_bytes);
	hub_json_add_u64(o, "xet_bytes", es.xet.bytes);
	hub_json_add_u64(o, "xet_fallbacks", es.xet_fallbacks);
	hub_json_add_u64(o, "resolves_held_until",
			 es.xfer.resolves_held_until > time(NULL)
				 ? (uint64_t)es.xfer.resolves_held_until
				 : 0);
	add_errors(o);
	return o;
}

/* A repo folder of a moving revision, as the kernel knows it. */
struct entry {
	uint64_t parent;
	char *name;
};

struct entries {
	struct entry *v;
	size_t n, cap;
	bool failed;
};

static void collect_moving(void *arg, const struct node *n)
{
	struct entries *es = arg;
	struct entry *v;

	if (n->kind != NODE_DIR || n->path[0] != '\0' || !n->expires)
		return;
	if (es->n == es->cap) {
		size_t cap = es->cap ? es->cap * 2 : 16;

		v = realloc(es->v, cap * sizeof(*v));
		if (!v) {
			es->failed = true;
			return;
		}
		es->v = v;
		es->cap = cap;
	}
	es->v[es->n].parent = n->parent;
	es->v[es->n].name = strdup(n->name);
	if (es->v[es->n].name)
		es->n++;
	else
		es->failed = true;
}

/*
 * Forget which commit the branches resolved to: a branch checked before
 * now is asked of the Hub again, and the kernel drops its entries for the
 * repo folders of branches and tags, so the next lookup reaches us.
 * Returns how many entries the kernel dropped, or a negative errno.
 */
static int refresh(struct fs_mount *m)
{
	struct entries es = { 0 };
	int dropped = 0;

	__atomic_store_n(&m->ctx.refreshed, (int64_t)time(NULL),
			 __ATOMIC_RELAXED);
	node_walk_named(&m->nodes, collect_moving, &es);
	for (size_t i = 0; i < es.n; i++) {
		/* 0 when the kernel had the entry, -ENOENT when not. */
		if (m->se && fuse_lowlevel_notify_inval_entry(
				     m->se, es.v[i].parent, es.v[i].name,
				     strlen(es.v[i].name)) == 0)
			dropped++;
		free(es.v[i].name);
	}
	free(es.v);
	fs_log(LOG_INFO, "refresh: branches re-resolve; %d folders dropped",
	       dropped);
	return es.failed ? -ENOMEM : dropped;
}

static cJSON *refresh_reply(struct fs_mount *m)
{
	int rc = refresh(m);
	cJSON *o = reply_new(m);

	if (!o)
		return NULL;
	if (rc < 0)
		cJSON_AddStringToObject(o, "error", strerror(-rc));
	else
		cJSON_AddNumberToObject(o, "invalidated", rc);
	return o;
}

static void send_all(int fd, const char *p, size_t n)
{
	int64_t deadline = now_ms() + REQUEST_MS;

	while (n > 0 && now_ms() < deadline) {
		struct pollfd pl = { .fd = fd, .events = POLLOUT };
		ssize_t k = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (k > 0) {
			p += k;
			n -= (size_t)k;
		} else if (k < 0 && errno == EAGAIN) {
			poll(&pl, 1, (int)(deadline - now_ms()));
		} else if (k < 0 && errno != EINTR) {
			return;
		}
	}
}

static bool peer_allowed(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	return cred.uid == geteuid() || cred.uid == 0;
}

static void serve(struct fs_mount *m, int fd)
{
	char req[REQUEST_MAX];
	cJSON *o = NULL;
	char *text = NULL;

	/* Nothing asked (a probe that only connected): nothing answered. */
	if (!peer_allowed(fd) || read_request(fd, req, sizeof(req)) < 0 ||
	    req[0] == '\0')
		return;
	if (strcmp(req, "status") == 0) {
		o = status_reply(m);
	} else if (strcmp(req, "refresh") == 0) {
		o = refresh_reply(m);
	} else {
		o = reply_new(m);
		if (o)
			cJSON_AddStringToObject(o, "error", "unknown request");
	}
	if (o)
		text = cJSON_PrintUnformatted(o);
	if (text) {
		send_all(fd, text, strlen(text));
		send_all(fd, "\n", 1);
	}
	cJSON_free(text);
	cJSON_Delete(o);
}

static void *status_main(void *arg)
{
	struct fs_mount *m = arg;

	for (;;) {
		struct pollfd p[2] = { { .fd = m->status_fd, .events = POLLIN },
				       { .fd = m->status_wake,
					 .events = POLLIN } };
		int fd;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(m->status_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue; /* the client went away, or EMFILE: next */
		serve(m, fd);
		close(fd);
	}
	return NULL;
}

/*
 * Bind and listen on <pid>.sock in m->status_dir; on failure nothing
 * of ours is left bound (m->status_fd is the caller's to close).
 */
static int listen_on(struct fs_mount *m, const char *dir)
{
	struct sockaddr_un sa;
	int rc = sock_addr(dir, m->status_dir, m->status_name, &sa);

	if (rc < 0)
		return rc;
	/*
	 * A socket under our pid is a dead process's that had the pid
	 * before, unless it answers (a mount in another pid namespace).
	 */
	rc = connect_or_clean(dir, m->status_dir, m->status_name);
	if (rc >= 0) {
		close(rc);
		return -EADDRINUSE;
	}
	m->status_fd =
		socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (m->status_fd < 0)
		return -errno;
	/*
	 * The socket's mode comes from the umask until the chmod; the 0700
	 * folder keeps everyone else out meanwhile.
	 */
	if (bind(m->status_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	if (fchmodat(m->status_dir, m->status_name, 0600, 0) < 0 ||
	    listen(m->status_fd, 16) < 0) {
		rc = -errno;
		unlinkat(m->status_dir, m->status_name, 0);
		return rc;
	}
	return 0;
}

#define ERRORS_KEPT 8 /* errors files of mounts that ended, at most */

/* "<pid>.errors": the pid, or 0 for another name. */
static long errors_pid(const char *name)
{
	char *end;
	long pid = strtol(name, &end, 10);

	return pid > 0 && strcmp(end, ".errors") == 0 ? pid : 0;
}

/*
 * This mount's warnings and errors go to <pid>.errors, which stays when
 * it ends ("hubfs status" shows it); the oldest files of mounts gone are
 * removed so that ERRORS_KEPT remain.
 */
static void keep_errors(struct fs_mount *m)
{
	char name[32], title[512];
	int fd = dup(m->status_dir);
	struct {
		char name[256];
		time_t mtime;
	} old[64];
	size_t n = 0;
	struct dirent *de;
	struct stat st;
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

	while (d && (de = readdir(d)) != NULL && n < 64)
		if (errors_pid(de->d_name) &&
		    fstatat(m->status_dir, de->d_name, &st, 0) == 0) {
			snprintf(old[n].name, sizeof(old[n].name), "%s",
				 de->d_name);
			old[n++].mtime = st.st_mtime;
		}
	if (d)
		closedir(d);
	else if (fd >= 0)
		close(fd);
	while (n >= ERRORS_KEPT) { /* the oldest goes */
		size_t o = 0;

		for (size_t i = 1; i < n; i++)
			if (old[i].mtime < old[o].mtime)
				o = i;
		unlinkat(m->status_dir, old[o].name, 0);
		old[o] = old[--n];
	}
	snprintf(name, sizeof(name), "%ld.errors", (long)getpid());
	snprintf(title, sizeof(title), "%s", m->ctx.cfg.mountpoint);
	fs_log_keep_errors(m->status_dir, name, title);
}

int status_start(struct fs_mount *m)
{
	const char *store = db_store_dir(m->ctx.cfg.store);
	char dir[4096];
	int rc;

	m->status_fd = m->status_dir = m->status_wake = -1;
	snprintf(m->status_name, sizeof(m->status_name), "%ld.sock",
		 (long)getpid());
	snprintf(dir, sizeof(dir), "%s/%s", store, MOUNTS_DIR);
	rc = mounts_open(store, true);
	if (rc < 0)
		goto fail;
	m->status_dir = rc;
	m->status_wake = eventfd(0, EFD_CLOEXEC);
	if (m->status_wake < 0) {
		rc = -errno;
		goto fail;
	}
	keep_errors(m);
	rc = listen_on(m, dir); /* leaves nothing bound when it fails */
	if (rc == 0) {
		rc = -pthread_create(&m->status_thread, NULL, status_main, m);
		if (rc == 0)
			return 0;
		unlinkat(m->status_dir, m->status_name, 0);
	}
fail:
	fs_log(LOG_WARNING,
	       "no status socket in %s: %s ('hubfs status' "
	       "will not list this mount)",
	       dir, strerror(-rc));
	if (m->status_wake >= 0)
		close(m->status_wake);
	if (m->status_fd >= 0)
		close(m->status_fd);
	if (m->status_dir >= 0)
		close(m->status_dir);
	m->status_fd = m->status_dir = m->status_wake = -1;
	return rc;
}

void status_stop(struct fs_mount *m)
{
	if (m->status_wake < 0)
		return;
	if (eventfd_write(m->status_wake, 1) == 0)
		pthread_join(m->status_thread, NULL);
	fs_log_keep_errors(-1, NULL, NULL);
	unlinkat(m->status_dir, m->status_name, 0);
	close(m->status_fd);
	close(m->status_wake);
	close(m->status_dir);
	m->status_fd = m->status_dir = m->status_wake = -1;
}

/* ---- The commands' side ------------------------------------------------ */

/*
 * Send request on fd, connected to a mount, and parse its answer; NULL if
 * none came.  Closes fd.
 */
static cJSON *ask(int fd, const char *request)
{
	struct timeval tv = { .tv_sec = REPLY_MS / 1000,
			      .tv_usec = (REPLY_MS % 1000) * 1000 };
	char *buf = malloc(REPLY_MAX);
	size_t len = 0;
	cJSON *reply = NULL;

	if (!buf)
		goto out;
	/* Each call waits at most REPLY_MS: a wedged mount costs that. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		goto out;
	if (send(fd, request, strlen(request), MSG_NOSIGNAL) < 0 ||
	    send(fd, "\n", 1, MSG_NOSIGNAL) < 0)
		goto out;
	shutdown(fd, SHUT_WR);
	for (;;) {
		ssize_t n = recv(fd, buf + len, REPLY_MAX - len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto out; /* a timeout, or the mount went away */
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == REPLY_MAX)
			goto out;
	}
	reply = cJSON_ParseWithLength(buf, len);
	if (reply && !cJSON_IsObject(reply)) {
		cJSON_Delete(reply);
		reply = NULL;
	}
out:
	close(fd);
	free(buf);
	return reply;
}

/* "<digits>.sock": the pid, or 0 for any other name. */
static long sock_pid(const char *name)
{
	char *end;
	long pid;

	if (name[0] < '1' || name[0] > '9')
		return 0;
	pid = strtol(name, &end, 10);
	return strcmp(end, ".sock") == 0 ? pid : 0;
}

int fs_status_query(const char *store_dir, const char *request, fs_status_fn cb,
		    void *arg)
{
	char dir[4096];
	struct dirent *de;
	DIR *d;
	int dfd, rc = 0;

	if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", store_dir,
			     MOUNTS_DIR) >= sizeof(dir))
		return -ENAMETOOLONG;
	dfd = mounts_open(store_dir, false);
	if (dfd == -ENOENT)
		return 0; /* no mount ever ran on this store */
	if (dfd < 0)
		return dfd;
	d = fdopendir(dfd);
	if (!d) {
		rc = -errno;
		close(dfd);
		return rc;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		long pid = sock_pid(de->d_name);
		cJSON *reply;
		int fd;

		if (pid <= 0)
			continue;
		fd = connect_or_clean(dir, dfd, de->d_name);
		if (fd < 0)
			continue; /* dead (now removed), or gone meanwhile */
		reply = ask(fd, request);
		rc = cb(arg, pid, reply);
		cJSON_Delete(reply);
	}
	closedir(d);
	return rc;
}

/*
 * The mounts that ended (or died) and left warnings or errors: for each
 * <pid>.errors whose pid runs no mount on the store any more, cb gets a
 * JSON object {"pid", "mountpoint", "ended": true, "last_errors": [...]}.
 */
int fs_status_ended(const char *store_dir, fs_status_fn cb, void *arg)
{
	char line[1024], sock[40];
	struct dirent *de;
	struct stat st;
	int dfd, fd, rc = 0;
	DIR *d;

	dfd = mounts_open(store_dir, false);
	if (dfd == -ENOENT)
		return 0;
	if (dfd < 0)
		return dfd;
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		long pid = errors_pid(de->d_name);
		cJSON *o, *a, *x;
		FILE *f;

		snprintf(sock, sizeof(sock), "%ld.sock", pid);
		if (!pid || fstatat(dfd, sock, &st, 0) == 0)
			continue; /* not an errors file, or still mounted */
		fd = openat(dfd, de->d_name, O_RDONLY | O_CLOEXEC);
		f = fd >= 0 ? fdopen(fd, "r") : NULL;
		if (!f) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		o = cJSON_CreateObject();
		a = o ? cJSON_AddArrayToObject(o, "last_errors") : NULL;
		if (a) {
			cJSON_AddNumberToObject(o, "pid", (double)pid);
			cJSON_AddBoolToObject(o, "ended", true);
		}
		while (a && fgets(line, sizeof(line), f)) {
			char *tab1, *tab2;

			line[strcspn(line, "\n")] = '\0';
			if (line[0] == '#') {
				cJSON_AddStringToObject(o, "mountpoint",
							line + 2);
				continue;
			}
			tab1 = strchr(line, '\t');
			tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
			if (!tab2 || !(x = cJSON_CreateObject()))
				continue;
			*tab1 = *tab2 = '\0';
			cJSON_AddNumberToObject(x, "time", strtod(line, NULL));
			cJSON_AddStringToObject(x, "level", tab1 + 1);
			cJSON_AddStringToObject(x, "message", tab2 + 1);
			cJSON_AddItemToArray(a, x);
		}
		fclose(f);
		if (a)
			rc = cb(arg, pid, o);
		cJSON_Delete(o);
	}
	closedir(d);
	return rc;
}

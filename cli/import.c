/*
 * import.c - "hubfs import": files the user already has count as present,
 * used where they lie (db/external.c: hashed once, never copied, never
 * removed).
 *
 * Four kinds of folder:
 *
 *   - a huggingface_hub cache (the default, hub-api.md section 8): every
 *     repo folder's snapshots become known commits, listed from the Hub
 *     into the index, its refs known revisions; each file of a snapshot
 *     is looked for in blobs/<etag>, else as the snapshot's own file;
 *   - a local-dir download (hf download --local-dir): the metadata files
 *     under .cache/huggingface/download/ (section 8.7) give the commit,
 *     and each file's etag, which must agree with the Hub's;
 *   - a git clone of a Hub repo: its remote names the repo, HEAD the
 *     commit; git-lfs pointer files that were never pulled are skipped;
 *   - any folder, with --repo ID[@REV].
 *
 * For the last three, every file of the folder is matched by its path to
 * the commit's tree; it counts where size and hash match.
 */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"

#define LFS_POINTER "version https://git-lfs.github.com/spec/v1"

struct import {
	struct db_store *store;
	struct fs_ctx *ctx;
	bool offline;
	/* totals */
	uint64_t verified, verified_bytes, known, known_bytes, skipped, absent,
		failed;
};

static void import_usage(FILE *out)
{
	fprintf(out,
		"usage: hubfs import [OPTIONS] [DIR]\n"
		"\n"
		"Make files already on disk count as present, used where they "
		"lie: hashed\n"
		"once, never copied, never removed.  DIR is a huggingface_hub "
		"cache (the\n"
		"default: the one --hf-cache names), an 'hf download "
		"--local-dir' folder,\n"
		"a git clone of a Hub repo, or any folder with --repo.\n"
		"\n" CLI_COMMON_HELP
		"  --repo [TYPE/]ID[@REV]  the repo DIR holds (TYPE datasets "
		"or spaces)\n"
		"  -h, --help              this help\n");
}

static const char *resolve_error(const struct import *im, int rc)
{
	switch (rc) {
	case -ENOENT:
		return im->offline ? "not in the store, and offline"
				   : "no such repo or revision on the Hub";
	case -EACCES:
		return "the Hub refused access (is a token set? see 'hubfs "
		       "where')";
	case -EISDIR:
		return "that is an owner, not a repo";
	default:
		return strerror(-rc);
	}
}

/* snprintf that says whether it all fit: a cut path names another file. */
static bool fmt(char *buf, size_t size, const char *f, ...)
	__attribute__((format(printf, 3, 4)));
static bool fmt(char *buf, size_t size, const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(buf, size, f, ap);
	va_end(ap);
	return n >= 0 && (size_t)n < size;
}

static bool is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Read a small text file, trailing whitespace cut.  0 or -errno. */
static int read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -EIO;
	buf[n] = '\0';
	while (n > 0 &&
	       (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return 0;
}

static const char *short_commit(const char *commit)
{
	static char buf[13];

	fmt(buf, sizeof(buf), "%.12s", commit);
	return buf;
}

/*
 * One file checked against (etag, size): counted and reported.  label
 * names it for the user.
 */
static void check_file(struct import *im, const char *path, const char *label,
		       const char *etag, uint64_t size)
{
	char h[32];
	int rc = db_external_check(im->store, path, etag, size, NULL);

	cli_human_size(size, h, sizeof(h));
	switch (rc) {
	case 1:
		printf("verified  %s (%s)\n", label, h);
		im->verified++;
		im->verified_bytes += size;
		return;
	case 0:
		printf("known     %s (%s, verified before, unchanged)\n", label,
		       h);
		im->known++;
		im->known_bytes += size;
		return;
	case -ENOENT:
		printf("skipped   %s: dangling link or gone\n", label);
		break;
	case -ERANGE:
		printf("skipped   %s: size differs from the Hub's %llu bytes\n",
		       label, (unsigned long long)size);
		break;
	case -EBADMSG:
		printf("skipped   %s: content does not match the Hub's hash "
		       "(%s)\n",
		       label, db_last_error());
		break;
	case -EISDIR:
		printf("skipped   %s: not a regular file\n", label);
		break;
	case -EXDEV:
		printf("skipped   %s: on a hubfs mount\n", label);
		break;
	case -EAGAIN:
		printf("skipped   %s: changed while being hashed\n", label);
		break;
	default:
		printf("skipped   %s: %s\n", label, strerror(-rc));
		im->failed++;
		break;
	}
	im->skipped++;
}

/* ---- A huggingface_hub cache ------------------------------------------- */

struct cache_repo {
	struct import *im;
	const char *folder; /* the repo's folder in the cache */
	const struct fs_repo *r;
};

static int cache_file(void *arg, const struct db_report_file *f)
{
	struct cache_repo *cr = arg;
	char blob[PATH_MAX], snap[PATH_MAX], label[PATH_MAX];
	struct stat st;
	const char *path = NULL;

	if (!fmt(blob, sizeof(blob), "%s/blobs/%s", cr->folder, f->etag) ||
	    !fmt(snap, sizeof(snap), "%s/snapshots/%s/%s", cr->folder,
		 cr->r->commit, f->path))
		return 0;
	fmt(label, sizeof(label), "%s@%s %s", cr->r->id,
	    short_commit(cr->r->commit), f->path);
	if (stat(blob, &st) == 0)
		path = blob;
	else if (lstat(snap, &st) == 0)
		path = snap; /* copied, not linked; or a dangling link */
	if (!path) {
		cr->im->absent++;
		return 0;
	}
	check_file(cr->im, path, label, f->etag, f->size);
	return 0;
}

/* Files of a snapshot no tree entry explains: dangling links above all. */
static void report_dangling(struct import *im, const char *dir,
			    const char *label)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[PATH_MAX], sub[PATH_MAX];
		struct stat st;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		fmt(path, sizeof(path), "%s/%s", dir, e->d_name);
		fmt(sub, sizeof(sub), "%s/%s", label, e->d_name);
		if (lstat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode))
			report_dangling(im, path, sub);
		else if (S_ISLNK(st.st_mode) && stat(path, &st) < 0) {
			printf("skipped   %s: dangling link\n", sub);
			im->skipped++;
		}
	}
	closedir(d);
}

/* refs/<rev> (nested for refs/pr/N): known revisions, commit and mtime. */
static void import_refs(struct import *im, const struct fs_repo *r,
			const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[PATH_MAX], rev[512], commit[128];
		struct stat st;

		if (e->d_name[0] == '.')
			continue;
		fmt(path, sizeof(path), "%s/%s", dir, e->d_name);
		fmt(rev, sizeof(rev), "%s%s", prefix, e->d_name);
		if (stat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			char sub[512];

			fmt(sub, sizeof(sub), "%s/", rev);
			import_refs(im, r, path, sub);
			continue;
		}
		if (read_small(path, commit, sizeof(commit)) < 0 ||
		    !hub_is_commit_id(commit))
			continue;
		/* As old as the cache's word for it: a mount asks again. */
		if (db_revision_put(im->store, r->repo, rev, commit,
				    (int64_t)st.st_mtime) == 0)
			printf("ref       %s %s -> %s\n", r->id, rev,
			       short_commit(commit));
	}
	closedir(d);
}

static int import_cache_repo(struct import *im, const char *cache,
			     const char *name)
{
	char folder[PATH_MAX], id[256], snaps[PATH_MAX], refs[PATH_MAX];
	enum hub_repo_type type;
	struct fs_repo r = { 0 };
	struct dirent *e;
	DIR *d;
	int rc, bad = 0;

	if (strncmp(name, "models--", 8) != 0 &&
	    strncmp(name, "datasets--", 10) != 0 &&
	    strncmp(name, "spaces--", 8) != 0)
		return 0;
	if (hub_cache_folder_parse(name, &type, id) < 0) {
		printf("skipped   %s/%s: not a repo folder\n", cache, name);
		im->skipped++;
		return 0;
	}
	if (!fmt(folder, sizeof(folder), "%s/%s", cache, name) ||
	    !fmt(snaps, sizeof(snaps), "%s/snapshots", folder) ||
	    !fmt(refs, sizeof(refs), "%s/refs", folder))
		return -ENAMETOOLONG;
	printf("repo      %s%s\n", hub_type_url_prefix(type), id);

	d = opendir(snaps);
	while (d && (e = readdir(d))) {
		struct cache_repo cr = { .im = im, .folder = folder, .r = &r };
		char label[PATH_MAX];

		if (!hub_is_commit_id(e->d_name))
			continue;
		rc = fs_repo_resolve(im->ctx, type, id, e->d_name, &r);
		if (rc < 0) {
			printf("skipped   %s%s@%s: %s\n",
			       hub_type_url_prefix(type), id,
			       short_commit(e->d_name), resolve_error(im, rc));
			im->skipped++;
			bad++;
			continue;
		}
		printf("snapshot  %s@%s\n", r.id, short_commit(r.commit));
		rc = db_report_files(im->store, r.tree, cache_file, &cr);
		if (rc < 0) {
			fprintf(stderr, "hubfs import: %s: %s\n", r.id,
				db_last_error());
			bad++;
		}
		fmt(label, sizeof(label), "%s/%s", snaps, e->d_name);
		report_dangling(im, label, label);
	}
	if (d)
		closedir(d);
	if (!r.repo)
		return bad ? -EIO : 0;
	import_refs(im, &r, refs, "");
	/*
	 * The repo without a revision, as a mount shows it: the Hub's
	 * default branch now, or offline the cache's "main".
	 */
	struct fs_repo now;
	char main_ref[PATH_MAX], commit[128];
	struct stat st;

	fmt(main_ref, sizeof(main_ref), "%s/main", refs);
	if (fs_repo_resolve(im->ctx, type, id, NULL, &now) < 0 &&
	    read_small(main_ref, commit, sizeof(commit)) == 0 &&
	    hub_is_commit_id(commit) && stat(main_ref, &st) == 0)
		db_revision_put(im->store, r.repo, "", commit,
				(int64_t)st.st_mtime);
	return bad ? -EIO : 0;
}

/* In-progress downloads of a repo folder's blobs/: reported, not used. */
static void report_incomplete(struct import *im, const char *blobs)
{
	DIR *d = opendir(blobs);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		if (ends_with(e->d_name, ".incomplete")) {
			printf("skipped   %s/%s: incomplete download\n", blobs,
			       e->d_name);
			im->skipped++;
		}
	}
	if (d)
		closedir(d);
}

/* A CACHEDIR.TAG, or a folder named like a repo's in a cache. */
static bool looks_like_cache(const char *dir)
{
	struct dirent *e;
	DIR *d = opendir(dir);
	bool yes = false;

	while (d && !yes && (e = readdir(d)))
		yes = strcmp(e->d_name, "CACHEDIR.TAG") == 0 ||
		      strncmp(e->d_name, "models--", 8) == 0 ||
		      strncmp(e->d_name, "datasets--", 10) == 0 ||
		      strncmp(e->d_name, "spaces--", 8) == 0;
	if (d)
		closedir(d);
	return yes;
}

static int import_cache(struct import *im, const char *cache)
{
	struct dirent **names = NULL;
	int n = scandir(cache, &names, NULL, alphasort), bad = 0;

	if (n < 0) {
		fprintf(stderr, "hubfs import: %s: %s\n", cache,
			strerror(errno));
		return -errno;
	}
	printf("found     huggingface_hub cache %s\n", cache);
	for (int i = 0; i < n; i++) {
		char blobs[PATH_MAX];

		if (names[i]->d_name[0] != '.') {
			if (import_cache_repo(im, cache, names[i]->d_name) < 0)
				bad++;
			fmt(blobs, sizeof(blobs), "%s/%s/blobs", cache,
			    names[i]->d_name);
			report_incomplete(im, blobs);
		}
		free(names[i]);
	}
	free(names);
	return bad ? -EIO : 0;
}

/* ---- A folder of one repo at one commit --------------------------------- */

struct folder {
	struct import *im;
	const char *root; /* absolute */
	const struct fs_repo *r;
	bool local_dir; /* .cache/huggingface/download has metadata */
	bool git;	/* a git clone: skip .git, expect pointer files */
};

static bool lfs_pointer(const char *path, uint64_t size)
{
	char head[sizeof(LFS_POINTER)];

	return size < 1024 && read_small(path, head, sizeof(head)) == 0 &&
	       strcmp(head, LFS_POINTER) == 0;
}

/*
 * The metadata of a local-dir file (hub-api.md 8.7): commit, etag,
 * timestamp.  0 when it agrees with the tree's etag; else why not.
 */
static const char *local_dir_disagrees(const struct folder *fo, const char *rel,
				       const char *etag)
{
	char path[PATH_MAX], text[512], *nl;

	fmt(path, sizeof(path), "%s/.cache/huggingface/download/%s.metadata",
	    fo->root, rel);
	if (read_small(path, text, sizeof(text)) < 0)
		return NULL; /* no metadata: the tree decides */
	nl = strchr(text, '\n');
	if (!nl)
		return "its metadata is malformed";
	if (strncmp(nl + 1, etag, strlen(etag)) != 0)
		return "its metadata names another etag than the Hub's";
	return NULL;
}

static void folder_file(struct folder *fo, const char *rel)
{
	char path[PATH_MAX], parent[PATH_MAX], label[PATH_MAX];
	const char *name = strrchr(rel, '/'), *why;
	struct db_entry e;
	struct stat st;

	if (!fmt(path, sizeof(path), "%s/%s", fo->root, rel))
		return;
	fmt(label, sizeof(label), "%s", path);
	if (ends_with(rel, ".incomplete")) {
		printf("skipped   %s: incomplete download\n", label);
		fo->im->skipped++;
		return;
	}
	if (stat(path, &st) < 0) {
		printf("skipped   %s: dangling link\n", label);
		fo->im->skipped++;
		return;
	}
	fmt(parent, sizeof(parent), "%.*s", name ? (int)(name - rel) : 0, rel);
	name = name ? name + 1 : rel;
	if (db_entry_lookup(fo->im->store, fo->r->tree, parent, name, &e) < 0 ||
	    e.is_dir) {
		printf("skipped   %s: not a file of %s@%s\n", label, fo->r->id,
		       short_commit(fo->r->commit));
		fo->im->skipped++;
		return;
	}
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size != e.size &&
	    lfs_pointer(path, (uint64_t)st.st_size)) {
		printf("skipped   %s: a git-lfs pointer file, never pulled\n",
		       label);
		fo->im->skipped++;
		return;
	}
	if (fo->local_dir && (why = local_dir_disagrees(fo, rel, e.etag))) {
		printf("skipped   %s: %s\n", label, why);
		fo->im->skipped++;
		return;
	}
	check_file(fo->im, path, label, e.etag, e.size);
}

static void walk_folder(struct folder *fo, const char *rel)
{
	char dir[PATH_MAX];
	struct dirent **names = NULL;
	int n;

	fmt(dir, sizeof(dir), "%s%s%s", fo->root, *rel ? "/" : "", rel);
	n = scandir(dir, &names, NULL, alphasort);
	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		char sub[PATH_MAX], path[PATH_MAX];
		struct stat st;

		fmt(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", name);
		if (!fmt(path, sizeof(path), "%s/%s", fo->root, sub) ||
		    strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
		    (!*rel && strcmp(name, ".git") == 0) ||
		    strcmp(sub, ".cache/huggingface") == 0 ||
		    lstat(path, &st) < 0) {
			free(names[i]);
			continue;
		}
		if (S_ISDIR(st.st_mode))
			walk_folder(fo, sub);
		else
			folder_file(fo, sub);
		free(names[i]);
	}
	free(names);
}

/* The commit of a local-dir download: the first metadata file's. */
static int local_dir_commit(const char *dir, char commit[41])
{
	struct dirent **names = NULL;
	int n = scandir(dir, &names, NULL, alphasort), rc = -ENOENT;

	for (int i = 0; i < n; i++) {
		char path[PATH_MAX], text[512];
		struct stat st;

		fmt(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		if (rc && names[i]->d_name[0] != '.' && stat(path, &st) == 0) {
			if (S_ISDIR(st.st_mode)) {
				rc = local_dir_commit(path, commit);
			} else if (ends_with(path, ".metadata") &&
				   read_small(path, text, sizeof(text)) == 0 &&
				   strlen(text) > 40 && text[40] == '\n') {
				text[40] = '\0';
				if (hub_is_commit_id(text)) {
					memcpy(commit, text, 41);
					rc = 0;
				}
			}
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

/*
 * A git clone: the repo from the remote "origin" URL (the last path parts,
 * "datasets/" or "spaces/" first for those), the commit from HEAD.
 */
static int git_origin(const char *root, struct cli_target *t, char commit[41])
{
	char path[PATH_MAX], line[1024], ref[512], *url = NULL;
	bool origin = false;
	FILE *f;

	fmt(path, sizeof(path), "%s/.git/config", root);
	f = fopen(path, "re");
	if (!f)
		return -ENOENT;
	while (fgets(line, sizeof(line), f)) {
		char *p = line + strspn(line, " \t");

		if (*p == '[')
			origin = strncmp(p, "[remote \"origin\"]", 17) == 0;
		else if (origin && strncmp(p, "url", 3) == 0 &&
			 (p = strchr(p, '='))) {
			p += strspn(p + 1, " \t") + 1;
			p[strcspn(p, " \t\r\n")] = '\0';
			url = strdup(p);
			break;
		}
	}
	fclose(f);
	if (!url)
		return -ENOENT;
	/* scheme://host[:port]/[datasets/|spaces/]owner/name[.git] */
	char *s = strstr(url, "://"), *end;

	s = s ? strchr(s + 3, '/') : NULL;
	if (!s) {
		free(url);
		return -EINVAL;
	}
	s++;
	end = s + strlen(s);
	while (end > s && end[-1] == '/')
		*--end = '\0';
	if (ends_with(s, ".git"))
		s[strlen(s) - 4] = '\0';
	int rc = cli_parse_target(s, t);

	free(url);
	if (rc < 0)
		return rc;
	fmt(path, sizeof(path), "%s/.git/HEAD", root);
	if (read_small(path, line, sizeof(line)) < 0)
		return -ENOENT;
	if (strncmp(line, "ref: ", 5) == 0) {
		fmt(ref, sizeof(ref), "%s", line + 5);
		fmt(path, sizeof(path), "%s/.git/%s", root, ref);
		if (read_small(path, line, sizeof(line)) < 0) {
			/* Packed: "<sha> <ref>" lines. */
			fmt(path, sizeof(path), "%s/.git/packed-refs", root);
			f = fopen(path, "re");
			line[0] = '\0';
			while (f && fgets(path, sizeof(path), f)) {
				path[strcspn(path, "\r\n")] = '\0';
				if (strlen(path) > 41 &&
				    strcmp(path + 41, ref) == 0) {
					memcpy(line, path, 40);
					line[40] = '\0';
					break;
				}
			}
			if (f)
				fclose(f);
		}
	}
	if (!hub_is_commit_id(line))
		return -ENOENT;
	memcpy(commit, line, 41);
	return 0;
}

static int import_folder(struct import *im, const char *root,
			 const char *repo_arg)
{
	struct cli_target t = { 0 };
	struct folder fo = { .im = im, .root = root };
	struct fs_repo r;
	char commit[41] = "", meta[PATH_MAX];
	const char *kind = "folder", *rev;
	int rc;

	fmt(meta, sizeof(meta), "%s/.cache/huggingface/download", root);
	if (is_dir(meta) && local_dir_commit(meta, commit) == 0) {
		kind = "local-dir download";
		fo.local_dir = true;
	} else if (!repo_arg && git_origin(root, &t, commit) == 0) {
		kind = "git clone";
		fo.git = true;
	}
	if (repo_arg) {
		if (cli_parse_target(repo_arg, &t) < 0) {
			fprintf(stderr, "hubfs import: '%s' is not a repo\n",
				repo_arg);
			return -EINVAL;
		}
	} else if (!fo.git) {
		fprintf(stderr,
			"hubfs import: %s is no huggingface_hub cache, git "
			"clone%s: say which repo it holds with --repo\n",
			root,
			fo.local_dir ? ""
				     : " or local-dir download with "
				       "metadata");
		return -EINVAL;
	}
	/* An explicit revision wins over what the folder says. */
	rev = t.rev ? t.rev : commit[0] ? commit : NULL;
	printf("found     %s %s\n", kind, root);
	rc = fs_repo_resolve(im->ctx, t.type, t.id, rev, &r);
	if (rc < 0) {
		fprintf(stderr, "hubfs import: %s%s%s%s: %s\n",
			hub_type_url_prefix(t.type), t.id, rev ? "@" : "",
			rev ? rev : "", resolve_error(im, rc));
		free(t.rev);
		return rc;
	}
	printf("repo      %s%s@%s\n", hub_type_url_prefix(r.type), r.id,
	       short_commit(r.commit));
	fo.r = &r;
	walk_folder(&fo, "");
	free(t.rev);
	return 0;
}

int cli_import(int argc, char **argv)
{
	enum { OPT_REPO = 256, CLI_COMMON_OPT_ENUM };
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "repo", required_argument, NULL, OPT_REPO },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli_common common = { 0 };
	struct hub_client *hub = NULL;
	struct import im = { 0 };
	const char *repo = NULL, *from = NULL;
	char *dir = NULL, real[PATH_MAX], a[32], b[32];
	int c, rc;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (c == 'h') {
			import_usage(stdout);
			return CLI_EXIT_OK;
		} else if (c == OPT_REPO) {
			repo = optarg;
		} else if (cli_common_option(&common, c, optarg) < 0) {
			import_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (argc - optind > 1) {
		import_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (optind < argc)
		dir = strdup(argv[optind]);
	else if (!(dir = cli_hf_cache_dir(&common, &from))) {
		fprintf(stderr,
			"hubfs import: no huggingface_hub cache (%s): "
			"name a folder\n",
			from);
		return CLI_EXIT_USAGE;
	}
	if (!dir || !realpath(dir, real)) {
		fprintf(stderr, "hubfs import: %s: %s\n", dir ? dir : "",
			strerror(dir ? errno : ENOMEM));
		free(dir);
		return CLI_EXIT_FAIL;
	}
	free(dir);
	rc = cli_open(&common, 60, &hub, &im.store);
	if (rc == 0 && fs_log_open(NULL, true) == 0) {
		struct fs_config cfg;

		fs_config_defaults(&cfg);
		cfg.hub = hub;
		cfg.store = im.store;
		cli_report_repair(im.store);
		im.offline = cli_offline_reason(&common) != NULL;
		fs_log_set_level(LOG_WARNING);
		rc = fs_ctx_open(&im.ctx, &cfg);
		if (rc < 0) {
			fprintf(stderr, "hubfs import: %s\n", strerror(-rc));
			rc = CLI_EXIT_FAIL;
		} else {
			rc = !repo && looks_like_cache(real)
				     ? import_cache(&im, real)
				     : import_folder(&im, real, repo);
			printf("summary   %llu verified (%s), %llu known "
			       "before "
			       "(%s), %llu skipped, %llu not downloaded\n",
			       (unsigned long long)im.verified,
			       cli_human_size(im.verified_bytes, a, sizeof(a)),
			       (unsigned long long)im.known,
			       cli_human_size(im.known_bytes, b, sizeof(b)),
			       (unsigned long long)im.skipped,
			       (unsigned long long)im.absent);
			rc = rc < 0 || im.failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
		}
		fs_ctx_close(im.ctx);
	}
	db_store_close(im.store);
	hub_client_free(hub);
	return rc;
}

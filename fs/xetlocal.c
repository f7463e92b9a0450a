/*
 * xetlocal.c - the store's side of a read through the Xet CAS
 * (xetlocal.h).
 *
 * copy(): the index says where each chunk of the term lies in complete
 * blobs (db_chunks_locate); chunks that follow each other in one blob are
 * read with one pread.  A source blob is opened and held (db_blob_hold)
 * before it is trusted, as the engine opens a blob: eviction skips a held
 * blob, and one evicted or replaced before the hold shows as a missing
 * file, a failed hold, or another inode than the one recorded.  Any such
 * failure, a short read, or lengths that do not add up to the term's
 * answers "not held", and the term is fetched.
 */
#include "xetlocal.h"
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* An open source blob. */
struct source {
	char etag[65];
	int fd;
	uint64_t size;
};

static void source_close(struct source *src)
{
	if (src->fd >= 0)
		close(src->fd);
	src->fd = -1;
	src->etag[0] = '\0';
}

/* Open and hold the complete blob etag as the index records it. */
static int source_open(struct db_store *s, const char *etag, struct source *src)
{
	char path[PATH_MAX];
	struct stat fst, pst;
	int rc;

	source_close(src);
	db_blob_path(s, etag, path, sizeof(path));
	if (!path[0])
		return -EINVAL;
	src->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (src->fd < 0)
		return -errno;
	rc = db_blob_hold(src->fd);
	if (rc == 0)
		rc = db_blob_get(s, etag, &src->size);
	if (rc == 0 && (fstat(src->fd, &fst) < 0 || stat(path, &pst) < 0 ||
			fst.st_dev != pst.st_dev || fst.st_ino != pst.st_ino ||
			(uint64_t)fst.st_size != src->size))
		rc = -ESTALE;
	if (rc < 0) {
		source_close(src);
		return rc;
	}
	memcpy(src->etag, etag, sizeof(src->etag));
	return 0;
}

static int read_exact(const struct source *src, uint8_t *out, uint64_t n,
		      uint64_t off)
{
	if (off > src->size || n > src->size - off)
		return -ERANGE;
	while (n > 0) {
		ssize_t r = pread(src->fd, out, n, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		out += r;
		n -= (uint64_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* Read the chunks at[0, n) into out, a run of one blob at a time. */
static int read_chunks(struct db_store *s, const struct db_chunk_at *at,
		       uint32_t n, uint8_t *out)
{
	struct source src = { .fd = -1 };
	uint64_t w = 0;
	int rc = 0;

	for (uint32_t i = 0; i < n && rc == 0;) {
		uint64_t len = at[i].length;
		uint32_t j = i;

		while (j + 1 < n && strcmp(at[j + 1].etag, at[i].etag) == 0 &&
		       at[j + 1].offset == at[j].offset + at[j].length)
			len += at[++j].length;
		if (strcmp(src.etag, at[i].etag) != 0)
			rc = source_open(s, at[i].etag, &src);
		if (rc == 0)
			rc = read_exact(&src, out + w, len, at[i].offset);
		w += len;
		i = j + 1;
	}
	source_close(&src);
	return rc;
}

static int copy(void *arg, const char *xorb, uint32_t start, uint32_t end,
		uint64_t unpacked, uint8_t *out, uint32_t *lengths)
{
	struct xetlocal *xl = arg;
	uint32_t n = end - start;
	struct db_chunk_at *at = malloc((size_t)n * sizeof(*at));
	uint64_t sum = 0;
	int rc;

	if (!at)
		return -ENOMEM;
	rc = db_chunks_locate(xl->store, xorb, start, end, at);
	for (uint32_t i = 0; rc == 0 && i < n; i++) {
		lengths[i] = at[i].length;
		sum += at[i].length;
	}
	/* The index and the CAS disagree: fetch, and trust the CAS. */
	if (rc == 0 && sum != unpacked)
		rc = -ENOENT;
	if (rc == 0)
		rc = read_chunks(xl->store, at, n, out);
	free(at);
	return rc;
}

static void placed(void *arg, const struct hub_xet_run *runs, size_t n)
{
	struct xetlocal *xl = arg;
	struct db_chunk_run *rows = calloc(n, sizeof(*rows));
	int rc = -ENOMEM;

	if (rows) {
		for (size_t i = 0; i < n; i++)
			rows[i] = (struct db_chunk_run){
				.xorb = runs[i].xorb,
				.chunk = runs[i].chunk,
				.count = runs[i].count,
				.lengths = runs[i].lengths,
				.offset = runs[i].offset,
			};
		rc = db_chunks_put(xl->store, xl->etag, rows, n);
	}
	free(rows);
	/* Only a later revision's reuse is lost: the read goes on. */
	if (rc < 0)
		fs_log(LOG_WARNING, "store: recording the Xet chunks of %s: %s",
		       xl->etag,
		       rc == -ENOMEM ? "out of memory" : db_last_error());
}

static const struct hub_xet_local with_copy = { copy, placed };
static const struct hub_xet_local record_only = { NULL, placed };

const struct hub_xet_local *xetlocal_ops(bool copy_too)
{
	return copy_too ? &with_copy : &record_only;
}

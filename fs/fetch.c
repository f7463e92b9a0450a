/*
 * fetch.c - bring a whole blob into the store, verified.
 *
 * First version of the byte path: the file is downloaded whole into tmp/,
 * hashed as it arrives (sha256 for LFS files, the git blob sha1 otherwise),
 * fdatasync'ed, and only then moved into blobs/ and recorded, so nothing
 * unverified is ever recorded as verified.  Two readers of one blob share
 * one download.  (Chunked lazy reads replace this behind the same call.)
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fetching {
	struct fetching *next;
	char etag[65];
};

struct download {
	int fd;
	uint64_t written;
	EVP_MD_CTX *md;
	int error; /* negative errno from a write */
};

static int take(void *arg, uint64_t offset, const void *data, size_t n)
{
	struct download *d = arg;
	const char *p = data;
	size_t left = n;

	if (offset != d->written)
		return d->error = -EIO; /* hub_fetch delivers in order */
	while (left > 0) {
		ssize_t w =
			pwrite(d->fd, p, left, (off_t)(offset + (n - left)));

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return d->error = w < 0 ? -errno : -EIO;
		p += w;
		left -= (size_t)w;
	}
	EVP_DigestUpdate(d->md, data, n);
	d->written += n;
	return 0;
}

static void hex(const unsigned char *b, unsigned n, char *out)
{
	for (unsigned i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static int start_hash(struct download *d, const struct node *f)
{
	char header[40];
	int n;

	d->md = EVP_MD_CTX_new();
	if (!d->md)
		return -ENOMEM;
	if (!EVP_DigestInit_ex(d->md, f->lfs ? EVP_sha256() : EVP_sha1(), NULL))
		return -EIO;
	if (f->lfs)
		return 0;
	/* A git blob id hashes "blob <size>\0" before the content. */
	n = snprintf(header, sizeof(header), "blob %llu",
		     (unsigned long long)f->size);
	EVP_DigestUpdate(d->md, header, (size_t)n + 1);
	return 0;
}

static int download(struct fs_ctx *ctx, const struct node *f)
{
	struct db_store *s = ctx->cfg.store;
	struct download d = { .fd = -1 };
	struct hub_error err = { 0 };
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned dlen = 0;
	char tmp[4096], got[2 * EVP_MAX_MD_SIZE + 1], why[400];
	int rc;

	d.fd = db_blob_tmpfile(s, tmp, sizeof(tmp));
	if (d.fd < 0) {
		fs_log(LOG_ERR, "store: cannot create a download file: %s",
		       strerror(-d.fd));
		return d.fd;
	}
	rc = start_hash(&d, f);
	if (rc < 0)
		goto out;
	rc = hub_fetch(ctx->cfg.hub, f->type, f->repo_id, f->commit, f->path, 0,
		       0, take, &d, &err);
	if (rc < 0) {
		if (d.error) {
			rc = d.error;
			fs_log(LOG_ERR, "%s/%s: writing to the store: %s",
			       f->repo_id, f->path, strerror(-rc));
		} else {
			fs_log(LOG_ERR, "%s/%s: %s", f->repo_id, f->path,
			       rc == -ENETDOWN
				       ? "offline and not in the store"
				       : hub_error_describe(&err, why,
							    sizeof(why)));
			rc = -hub_error_errno(&err);
			if (rc == -ENOENT) /* listed, yet not served */
				rc = -EIO;
		}
		goto out;
	}
	EVP_DigestFinal_ex(d.md, digest, &dlen);
	hex(digest, dlen, got);
	if (d.written != f->size || strcmp(got, f->etag) != 0) {
		fs_log(LOG_ERR,
		       "%s/%s: content check failed (got %llu bytes, %s; "
		       "expected %llu bytes, %s): not stored",
		       f->repo_id, f->path, (unsigned long long)d.written, got,
		       (unsigned long long)f->size, f->etag);
		rc = -EIO;
		goto out;
	}
	if (fdatasync(d.fd) < 0) {
		rc = -errno;
		goto out;
	}
	close(d.fd);
	d.fd = -1;
	rc = db_blob_install(s, tmp, f->etag, f->size);
	if (rc < 0)
		fs_log(LOG_ERR, "store: cannot record blob %s: %s", f->etag,
		       db_last_error(s));
out:
	if (d.fd >= 0)
		close(d.fd);
	if (rc < 0)
		unlink(tmp);
	EVP_MD_CTX_free(d.md);
	return rc;
}

static bool in_flight(struct fs_ctx *ctx, const char *etag)
{
	for (struct fetching *f = ctx->fetching; f; f = f->next)
		if (strcmp(f->etag, etag) == 0)
			return true;
	return false;
}

int fetch_blob(struct fs_ctx *ctx, const struct node *file)
{
	struct fetching me = { 0 }, **pp;
	uint64_t size;
	int rc;

	if (db_blob_get(ctx->cfg.store, file->etag, &size) == 0)
		return 0;
	pthread_mutex_lock(&ctx->fetch_lock);
	while (in_flight(ctx, file->etag))
		pthread_cond_wait(&ctx->fetch_done, &ctx->fetch_lock);
	if (db_blob_get(ctx->cfg.store, file->etag, &size) == 0) {
		pthread_mutex_unlock(&ctx->fetch_lock);
		return 0;
	}
	memcpy(me.etag, file->etag, sizeof(me.etag));
	me.next = ctx->fetching;
	ctx->fetching = &me;
	pthread_mutex_unlock(&ctx->fetch_lock);

	rc = download(ctx, file);

	pthread_mutex_lock(&ctx->fetch_lock);
	for (pp = &ctx->fetching; *pp != &me; pp = &(*pp)->next)
		;
	*pp = me.next;
	pthread_cond_broadcast(&ctx->fetch_done);
	pthread_mutex_unlock(&ctx->fetch_lock);
	return rc;
}

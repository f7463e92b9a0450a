/*
 * verify.c - checking complete blobs again ("hubfs verify") and finding
 * the ones nothing refers to any more ("hubfs gc").
 *
 * A blob is named by its hash: 64 hex digits are the sha256 of the
 * content (LFS and xet files), 40 the git blob id, the sha1 of
 * "blob <size>\0" followed by the content.
 */
#include "db_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HASH_BUF (1U << 20)

static const char sql_blob_all[] =
	"SELECT etag, size FROM blobs WHERE etag > ?1 ORDER BY etag LIMIT ?2";

struct db_hash {
	EVP_MD_CTX *md;
};

int db_hash_start(struct db_hash **out, const char *etag, uint64_t size)
{
	struct db_hash *h = calloc(1, sizeof(*h));
	bool sha256 = strlen(etag) == 64;
	char header[40];
	int n;

	*out = NULL;
	if (!h || !(h->md = EVP_MD_CTX_new()) ||
	    !EVP_DigestInit_ex(h->md, sha256 ? EVP_sha256() : EVP_sha1(),
			       NULL)) {
		db_hash_free(h);
		return -ENOMEM;
	}
	if (!sha256) { /* a git blob id hashes "blob <size>\0" first */
		n = snprintf(header, sizeof(header), "blob %llu",
			     (unsigned long long)size);
		EVP_DigestUpdate(h->md, header, (size_t)n + 1);
	}
	*out = h;
	return 0;
}

void db_hash_update(struct db_hash *h, const void *p, size_t n)
{
	EVP_DigestUpdate(h->md, p, n);
}

void db_hash_finish(struct db_hash *h, char hex[65])
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned len = 0;

	EVP_DigestFinal_ex(h->md, digest, &len);
	for (unsigned i = 0; i < len && i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
	hex[2 * (len < 32 ? len : 32)] = '\0';
	db_hash_free(h);
}

void db_hash_free(struct db_hash *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->md);
	free(h);
}

/* The hash of size bytes of fd, as lowercase hex, in the etag's scheme. */
int db_hash_fd(int fd, const char *etag, uint64_t size, char *hex)
{
	unsigned char *buf = malloc(HASH_BUF);
	struct db_hash *h = NULL;
	uint64_t off = 0;
	int rc = -ENOMEM;

	if (!buf || db_hash_start(&h, etag, size) < 0)
		goto out;
	while (off < size) {
		size_t want =
			size - off < HASH_BUF ? (size_t)(size - off) : HASH_BUF;
		ssize_t n = pread(fd, buf, want, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) { /* short: the file changed under us */
			rc = n < 0 ? -errno : -EBADMSG;
			goto out;
		}
		db_hash_update(h, buf, (size_t)n);
		off += (uint64_t)n;
	}
	db_hash_finish(h, hex);
	h = NULL;
	rc = 0;
out:
	db_hash_free(h);
	free(buf);
	return rc;
}

int db_blob_verify(struct db_store *s, const char *etag, uint64_t *size)
{
	char path[PATH_MAX], hex[65];
	int fd, rc = db_blob_recorded(s, etag, size);

	if (rc)
		return rc;
	rc = db_blob_get(s, etag, size);
	if (rc == -ENOENT) { /* recorded a moment ago: dropped just now */
		db_errorf("its file is missing, or was changed since it was "
			  "verified");
		return -ESTALE;
	}
	if (rc)
		return rc;
	db_blob_path(s, etag, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? -ENOENT : db_sys_fail("opening", path);
	rc = db_hash_fd(fd, etag, *size, hex);
	close(fd);
	if (rc == 0 && strcmp(hex, etag) != 0) {
		db_errorf("blob %s has content hashing to %s", etag, hex);
		rc = -EBADMSG;
	}
	return rc;
}

int db_blobs(struct db_store *s, db_blob_fn cb, void *arg)
{
	struct {
		char etag[65];
		uint64_t size;
	} batch[64];
	char after[65] = "";
	int n, rc;

	/*
	 * In batches, each read after the last etag of the one before, with
	 * no statement open while cb runs: cb may drop the blob it is given.
	 */
	do {
		struct db_conn *c;
		struct db_query q;

		rc = db_thread_query(s, ST_BLOB_ALL, sql_blob_all, &c, &q);
		if (rc)
			return rc;
		sqlite3_bind_text(q.st, 1, after, -1, SQLITE_STATIC);
		sqlite3_bind_int(q.st, 2, 64);
		n = 0;
		while (n < 64 && (rc = db_step(c, &q)) > 0)
			if (db_text(q.st, 0, batch[n].etag,
				    sizeof(batch[n].etag)) == 0)
				batch[n++].size =
					(uint64_t)sqlite3_column_int64(q.st, 1);
		db_query_end(&q);
		if (rc < 0)
			return rc;
		for (int i = 0; i < n; i++)
			if ((rc = cb(arg, batch[i].etag, batch[i].size)) != 0)
				return rc;
		if (n > 0)
			memcpy(after, batch[n - 1].etag, sizeof(after));
	} while (n == 64);
	return 0;
}

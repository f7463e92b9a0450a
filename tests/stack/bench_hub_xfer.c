/*
 * bench_hub_xfer.c - throughput of the transfer engine over the emulator's
 * nginx CDN: one 16 MiB range at a time against eight ranges at once, for
 * the 100 MiB LFS file of tests/fixtures/large/big-file.json.  Not a test:
 *
 *   /usr/bin/python3 tests/harness/hubstack.py run \
 *       --fixtures tests/fixtures/large/big-file.json [--cdn-rate 100m] \
 *       -- build/tests/bench_hub_xfer [ROUNDS]
 *
 * Every byte is compared with the manifest's content (mapped, so the
 * comparison costs a memcmp).  Prints MiB/s per round, the best of each,
 * and their ratio, measured in this one run.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hub.h"

#define REPO  "acme/big-model"
#define FILE_ "shard-100m.bin"
#define MiB   (1024.0 * 1024.0)
#define CHUNK (16u << 20)

struct run {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	const unsigned char *want;
	unsigned pending;
	int failed; /* the first error */
	bool wrong;
};

struct part {
	struct run *run;
	uint64_t off, len, got;
};

static int on_data(void *arg, uint64_t off, const void *buf, size_t n)
{
	struct part *p = arg;

	if (off != p->off + p->got || memcmp(buf, p->run->want + off, n) != 0)
		p->run->wrong = true;
	p->got += n;
	return 0;
}

static void on_done(void *arg, int rc, const struct hub_error *err)
{
	struct part *p = arg;
	struct run *r = p->run;
	char buf[300];

	if (rc != 0)
		fprintf(stderr, "range %llu: %d %s\n",
			(unsigned long long)p->off, rc,
			hub_error_describe(err, buf, sizeof(buf)));
	pthread_mutex_lock(&r->lock);
	if (rc != 0 && !r->failed)
		r->failed = rc;
	if (rc == 0 && p->got != p->len)
		r->wrong = true;
	r->pending--;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

static const struct hub_xfer_ops ops = { on_data, on_done };

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Fetch parts [0, n) with at most `at_once` submitted at a time. */
static int fetch(struct hub_xfer *x, const struct hub_file_ref *f,
		 struct run *r, struct part *parts, unsigned n,
		 unsigned at_once)
{
	unsigned next = 0;

	pthread_mutex_lock(&r->lock);
	for (;;) {
		while (next < n && r->pending < at_once && !r->failed) {
			r->pending++;
			pthread_mutex_unlock(&r->lock);
			if (hub_xfer_submit(x, f, parts[next].off,
					    parts[next].len, HUB_XFER_DEMAND,
					    &ops, &parts[next]) != 0) {
				fprintf(stderr, "submit refused\n");
				exit(1);
			}
			next++;
			pthread_mutex_lock(&r->lock);
		}
		if ((next == n || r->failed) && r->pending == 0)
			break;
		pthread_cond_wait(&r->cond, &r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return r->failed || r->wrong ? -1 : 0;
}

/* The file cut in n parts of `size` bytes (the last one shorter). */
static unsigned cut(struct part *parts, struct run *r, uint64_t total,
		    uint64_t size)
{
	unsigned n = 0;

	for (uint64_t off = 0; off < total; off += size, n++) {
		parts[n].run = r;
		parts[n].off = off;
		parts[n].len = total - off < size ? total - off : size;
		parts[n].got = 0;
	}
	return n;
}

static double round_mibs(struct hub_client *c, const struct hub_file_ref *f,
			 const unsigned char *want, uint64_t part_size,
			 unsigned at_once)
{
	struct run r = { .want = want };
	struct part parts[64];
	struct hub_xfer *x = NULL;
	unsigned n;
	double t0, t;

	pthread_mutex_init(&r.lock, NULL);
	pthread_cond_init(&r.cond, NULL);
	n = cut(parts, &r, f->size, part_size);
	if (hub_xfer_start(&x, c, at_once) != 0)
		exit(1);
	t0 = now_s();
	if (fetch(x, f, &r, parts, n, at_once) != 0) {
		fprintf(stderr, "fetch failed\n");
		exit(1);
	}
	t = now_s() - t0;
	hub_xfer_stop(x);
	pthread_mutex_destroy(&r.lock);
	pthread_cond_destroy(&r.cond);
	return (double)f->size / MiB / t;
}

static char *slurp(const char *path)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long n;

	if (!fp || fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) < 0 ||
	    fseek(fp, 0, SEEK_SET) != 0)
		exit(1);
	buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, fp) != (size_t)n)
		exit(1);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 3;
	const char *ep = getenv("HUBFS_TEST_ENDPOINT");
	const char *mpath = getenv("HUBFS_TEST_MANIFEST");
	struct hub_config cfg = { .endpoint = ep, .stall_seconds = 30 };
	struct hub_client *c = NULL;
	struct hub_file_ref f = { .type = HUB_MODEL,
				  .repo_id = REPO,
				  .path = FILE_ };
	cJSON *m, *repo = NULL, *r, *file;
	double best_seq = 0, best_par = 0, best_par16 = 0;
	unsigned char *want;
	struct stat st;
	char *text;
	int fd;

	if (!ep || !mpath) {
		fprintf(stderr,
			"run me under tests/harness/hubstack.py with "
			"--fixtures tests/fixtures/large/big-file.json\n");
		return 2;
	}
	text = slurp(mpath);
	m = cJSON_Parse(text);
	cJSON_ArrayForEach(r, cJSON_GetObjectItem(m, "repos")) if (
		strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r, "id")),
		       REPO) == 0) repo = r;
	if (!repo) {
		fprintf(stderr, "%s is not loaded (--fixtures)\n", REPO);
		return 2;
	}
	f.commit = cJSON_GetStringValue(
		cJSON_GetObjectItem(cJSON_GetObjectItem(repo, "refs"), "main"));
	file = cJSON_GetObjectItem(
		cJSON_GetObjectItem(
			cJSON_GetObjectItem(
				cJSON_GetObjectItem(repo, "commits"), f.commit),
			"files"),
		FILE_);
	f.size = (uint64_t)cJSON_GetNumberValue(
		cJSON_GetObjectItem(file, "size"));
	f.etag = cJSON_GetStringValue(cJSON_GetObjectItem(file, "sha256"));
	fd = open(cJSON_GetStringValue(cJSON_GetObjectItem(file, "content")),
		  O_RDONLY);
	if (fd < 0 || fstat(fd, &st) != 0 || (uint64_t)st.st_size != f.size)
		return 1;
	want = mmap(NULL, f.size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (want == MAP_FAILED)
		return 1;
	if (hub_client_new(&c, &cfg) != 0)
		return 1;
	/* Resolve once and warm the page cache of both sides. */
	round_mibs(c, &f, want, CHUNK, 8);
	for (int i = 0; i < rounds; i++) {
		double seq = round_mibs(c, &f, want, CHUNK, 1);
		double par = round_mibs(c, &f, want, (f.size + 7) / 8, 8);
		double par16 = round_mibs(c, &f, want, CHUNK, 8);

		printf("round %d: 16 MiB ranges one at a time %.0f MiB/s, "
		       "8 ranges at once %.0f MiB/s, 16 MiB ranges 8 at once "
		       "%.0f MiB/s\n",
		       i + 1, seq, par, par16);
		best_seq = seq > best_seq ? seq : best_seq;
		best_par = par > best_par ? par : best_par;
		best_par16 = par16 > best_par16 ? par16 : best_par16;
	}
	printf("best: one at a time %.0f MiB/s, 8 at once %.0f MiB/s "
	       "(x%.2f), 16 MiB ranges 8 at once %.0f MiB/s (x%.2f)\n",
	       best_seq, best_par, best_par / best_seq, best_par16,
	       best_par16 / best_seq);
	hub_client_free(c);
	munmap(want, f.size);
	close(fd);
	cJSON_Delete(m);
	free(text);
	return 0;
}

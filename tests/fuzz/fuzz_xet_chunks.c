/*
 * fuzz_xet_chunks.c - xorb bytes as a fetch entry delivers them: chunk
 * headers (hub_xet_chunk_header_parse), chunk data of each scheme
 * (hub_xet_chunk_decode) and the streaming decoder (hub_xet_decoder_*).
 *
 * Input: byte 0 is the number of chunks the entry names (1 + b % 8),
 * byte 1 the size of the pieces it is fed in (1 + b * 257), the rest the
 * xorb bytes.  The decoder must give the same chunks whether fed in
 * pieces or at once, never more than it was allowed, each chunk of a size
 * its header gave, and must accept the bytes only when they end on a
 * chunk boundary after exactly the chunks named.
 */
#include "fuzz.h"

#include "hub_int.h"

#include <errno.h>

static int run(struct hub_xet_decoder *d, uint32_t n, uint64_t limit,
	       const uint8_t *p, size_t len, size_t piece)
{
	int rc = hub_xet_decoder_init(d, n, limit);

	FUZZ_CHECK(rc == 0);
	for (size_t at = 0; at < len && rc == 0; at += piece) {
		size_t m = len - at < piece ? len - at : piece;

		rc = hub_xet_decoder_feed(d, p + at, m);
		FUZZ_CHECK(rc == 0 || rc == -EPROTO);
	}
	if (rc == 0)
		rc = hub_xet_decoder_finish(d);
	FUZZ_CHECK(rc == 0 || rc == -EPROTO);
	FUZZ_CHECK(d->n <= n);
	FUZZ_CHECK(d->chunk_off[d->n] <= limit);
	for (uint32_t i = 0; i < d->n; i++) {
		uint64_t sz = d->chunk_off[i + 1] - d->chunk_off[i];

		FUZZ_CHECK(d->chunk_off[i] < d->chunk_off[i + 1]);
		FUZZ_CHECK(sz <= HUB_XET_CHUNK_MAX);
	}
	return rc;
}

static void one_chunk(const uint8_t *p, size_t len)
{
	struct hub_xet_chunk_header h;
	uint8_t *out;

	if (len < HUB_XET_CHUNK_HEADER || hub_xet_chunk_header_parse(p, &h) < 0)
		return;
	FUZZ_CHECK(h.unpacked >= 1 && h.unpacked <= HUB_XET_CHUNK_MAX);
	FUZZ_CHECK(h.scheme != HUB_XET_NONE || h.compressed == h.unpacked);
	if (len - HUB_XET_CHUNK_HEADER < h.compressed)
		return;
	out = malloc(h.unpacked);
	if (!out)
		abort();
	FUZZ_CHECK(hub_xet_chunk_decode(&h, p + HUB_XET_CHUNK_HEADER, out) ==
			   0 ||
		   h.scheme != HUB_XET_NONE);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hub_xet_decoder a, b;
	uint32_t n;
	size_t piece;
	uint64_t limit;
	int ra, rb;

	if (size < 2)
		return 0;
	n = 1 + data[0] % 8;
	piece = 1 + (size_t)data[1] * 257;
	limit = (uint64_t)n * HUB_XET_CHUNK_MAX;
	one_chunk(data + 2, size - 2);
	ra = run(&a, n, limit, data + 2, size - 2, piece);
	rb = run(&b, n, limit, data + 2, size - 2, size);
	FUZZ_CHECK(ra == rb);
	if (ra == 0) {
		FUZZ_CHECK(a.n == n && b.n == n);
		FUZZ_CHECK(memcmp(a.chunk_off, b.chunk_off,
				  (n + 1) * sizeof(*a.chunk_off)) == 0);
		FUZZ_CHECK(memcmp(a.out, b.out, a.chunk_off[n]) == 0);
	}
	hub_xet_decoder_destroy(&a);
	hub_xet_decoder_destroy(&b);
	return 0;
}

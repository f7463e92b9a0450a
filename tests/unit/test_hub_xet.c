/*
 * test_hub_xet.c - the Xet formats of hub/xetfmt.c without network:
 * reconstruction answers (v1 and v2, and what they must refuse), xorb
 * chunk headers, chunk decoding by each scheme, and the streaming decoder.
 * Chunks are made here with liblz4, grouped by position mod 4 as the Xet
 * spec says (written out independently of the decoder's regrouping).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <lz4frame.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub_int.h"

#define H1 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define H2 "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

/* ---- Reconstructions ---------------------------------------------------- */

static int parse(const char *text, struct hub_xet_recon **out)
{
	char *body = strdup(text);
	int rc;

	assert_non_null(body);
	rc = hub_xet_recon_parse(body, strlen(body), out);
	free(body);
	return rc;
}

static const char *V1 =
	"{\"offset_into_first_range\": 5,"
	" \"terms\": [{\"hash\": \"" H1 "\", \"unpacked_length\": 300,"
	"              \"range\": {\"start\": 2, \"end\": 4}},"
	"             {\"hash\": \"" H2 "\", \"unpacked_length\": 100,"
	"              \"range\": {\"start\": 0, \"end\": 1}},"
	"             {\"hash\": \"" H1 "\", \"unpacked_length\": 150,"
	"              \"range\": {\"start\": 2, \"end\": 3}}],"
	" \"fetch_info\": {"
	"   \"" H1 "\": [{\"range\": {\"start\": 2, \"end\": 4},"
	"                 \"url\": \"http://cdn/x1?a=b\","
	"                 \"url_range\": {\"start\": 1000, \"end\": 1199}}],"
	"   \"" H2 "\": [{\"range\": {\"start\": 0, \"end\": 3},"
	"                 \"url\": \"https://cdn/x2\","
	"                 \"url_range\": {\"start\": 0, \"end\": 99}}]}}";

static void recon_v1(void **state)
{
	struct hub_xet_recon *r = NULL;

	(void)state;
	assert_int_equal(parse(V1, &r), 0);
	assert_int_equal(r->offset_into_first_range, 5);
	assert_int_equal(r->n_terms, 3);
	assert_int_equal(r->unpacked, 550);
	assert_int_equal(r->n_fetch, 2);
	assert_string_equal(r->terms[0].xorb, H1);
	assert_int_equal(r->terms[0].chunk_start, 2);
	assert_int_equal(r->terms[0].chunk_end, 4);
	assert_int_equal(r->terms[0].unpacked, 300);
	assert_string_equal(r->fetch[r->terms[0].fetch].url,
			    "http://cdn/x1?a=b");
	assert_int_equal(r->fetch[r->terms[0].fetch].byte_first, 1000);
	assert_int_equal(r->fetch[r->terms[0].fetch].byte_last, 1199);
	assert_string_equal(r->fetch[r->terms[1].fetch].xorb, H2);
	assert_int_equal(r->terms[2].fetch, r->terms[0].fetch);
	hub_xet_recon_free(r);
	hub_xet_recon_free(NULL);
}

static void recon_v2(void **state)
{
	struct hub_xet_recon *r = NULL;
	const char *v2 =
		"{\"offset_into_first_range\": 0,"
		" \"terms\": [{\"hash\": \"" H1 "\", \"unpacked_length\": 10,"
		"              \"range\": {\"start\": 0, \"end\": 1}},"
		"             {\"hash\": \"" H1 "\", \"unpacked_length\": 20,"
		"              \"range\": {\"start\": 5, \"end\": 7}}],"
		" \"xorbs\": {\"" H1 "\": [{\"url\": \"http://cdn/x1\","
		"   \"ranges\": [{\"chunks\": {\"start\": 0, \"end\": 1},"
		"                 \"bytes\": {\"start\": 0, \"end\": 17}},"
		"                {\"chunks\": {\"start\": 5, \"end\": 7},"
		"                 \"bytes\": {\"start\": 90, \"end\": "
		"135}}]}]}}";

	(void)state;
	assert_int_equal(parse(v2, &r), 0);
	assert_int_equal(r->n_terms, 2);
	assert_int_equal(r->n_fetch, 2); /* one per range, same URL */
	assert_int_equal(r->fetch[r->terms[1].fetch].chunk_start, 5);
	assert_int_equal(r->fetch[r->terms[1].fetch].byte_first, 90);
	assert_int_equal(r->fetch[r->terms[1].fetch].byte_last, 135);
	assert_string_equal(r->fetch[1].url, "http://cdn/x1");
	hub_xet_recon_free(r);
}

/* V1 with one substring replaced must be refused. */
static void refuse_edit(const char *from, const char *to)
{
	struct hub_xet_recon *r = (void *)1;
	const char *at = strstr(V1, from);
	char buf[4096];

	assert_non_null(at);
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at - V1), V1, to,
		 at + strlen(from));
	if (parse(buf, &r) != -EPROTO)
		fail_msg("accepted with \"%s\" as \"%s\"", from, to);
	assert_null(r);
}

static void recon_refused(void **state)
{
	struct hub_xet_recon *r = NULL;

	(void)state;
	assert_int_equal(parse("", &r), -EPROTO);
	assert_int_equal(parse("[]", &r), -EPROTO);
	assert_int_equal(parse("{\"offset_into_first_range\": 0, "
			       "\"terms\": [], \"fetch_info\": {}}",
			       &r),
			 -EPROTO);
	refuse_edit("\"offset_into_first_range\": 5",
		    "\"offset_into_first_range\": 300"); /* past term 0 */
	refuse_edit("\"offset_into_first_range\": 5",
		    "\"offset_into_first_range\": -1");
	refuse_edit("\"offset_into_first_range\": 5",
		    "\"offset_into_first_range\": 1.5");
	refuse_edit("\"offset_into_first_range\": 5", "\"x\": 5");
	refuse_edit("0123456789abcdef\", \"unpacked_length\": 300",
		    "0123456789ABCDEF\", \"unpacked_length\": 300");
	refuse_edit("\"start\": 2, \"end\": 4}}", "\"start\": 4, \"end\": 4}}");
	refuse_edit("\"start\": 2, \"end\": 4}}", "\"start\": 3, \"end\": 2}}");
	refuse_edit("\"unpacked_length\": 300", "\"unpacked_length\": 1");
	refuse_edit("\"unpacked_length\": 300", "\"unpacked_length\": 300000");
	refuse_edit("\"unpacked_length\": 300", "\"unpacked_length\": \"300\"");
	/* a term outside every fetch entry of its xorb */
	refuse_edit("\"range\": {\"start\": 2, \"end\": 4},", "");
	refuse_edit("\"range\": {\"start\": 0, \"end\": 3},",
		    "\"range\": {\"start\": 1, \"end\": 3},");
	refuse_edit("\"url\": \"http://cdn/x1?a=b\"", "\"url\": \"file:///x\"");
	refuse_edit("\"url\": \"http://cdn/x1?a=b\"",
		    "\"url\": \"http://a b\"");
	refuse_edit("\"url\": \"http://cdn/x1?a=b\"", "\"url\": 7");
	refuse_edit("\"url_range\": {\"start\": 1000, \"end\": 1199}",
		    "\"url_range\": {\"start\": 1200, \"end\": 1199}");
	refuse_edit("\"fetch_info\"", "\"fetch\"");
	refuse_edit("\"" H2 "\": [", "\"zz\": [");
	refuse_edit("\"" H2 "\": [", "\"" H2 "\": {\"a\": 1}, \"y\": [");
}

/* A term whose (xorb, chunks) match, but in the fetch of another xorb. */
static void recon_wrong_xorb(void **state)
{
	struct hub_xet_recon *r = NULL;
	const char *t =
		"{\"offset_into_first_range\": 0,"
		" \"terms\": [{\"hash\": \"" H2 "\", \"unpacked_length\": 10,"
		"              \"range\": {\"start\": 0, \"end\": 1}}],"
		" \"fetch_info\": {\"" H1 "\": [{\"range\": {\"start\": 0,"
		" \"end\": 1}, \"url\": \"http://c/x\","
		" \"url_range\": {\"start\": 0, \"end\": 17}}]}}";

	(void)state;
	assert_int_equal(parse(t, &r), -EPROTO);
}

/* ---- Chunks ------------------------------------------------------------- */

static void put24(uint8_t *p, uint32_t v)
{
	p[0] = v & 0xff;
	p[1] = (v >> 8) & 0xff;
	p[2] = (v >> 16) & 0xff;
}

static void header(uint8_t h[8], unsigned scheme, uint32_t comp, uint32_t unp)
{
	h[0] = 0;
	put24(h + 1, comp);
	h[4] = (uint8_t)scheme;
	put24(h + 5, unp);
}

static void headers(void **state)
{
	struct hub_xet_chunk_header h;
	uint8_t b[8];

	(void)state;
	header(b, 1, 70000, 131072);
	assert_int_equal(hub_xet_chunk_header_parse(b, &h), 0);
	assert_int_equal(h.scheme, HUB_XET_LZ4);
	assert_int_equal(h.compressed, 70000);
	assert_int_equal(h.unpacked, 131072);
	header(b, 0, 5, 5);
	assert_int_equal(hub_xet_chunk_header_parse(b, &h), 0);
	header(b, 0, 5, 6); /* stored, but sizes differ */
	assert_int_equal(hub_xet_chunk_header_parse(b, &h), -EPROTO);
	header(b, 3, 5, 5); /* unknown scheme */
	assert_int_equal(hub_xet_chunk_header_parse(b, &h), -EPROTO);
	header(b, 2, 5, 0);
	assert_int_equal(hub_xet_chunk_header_parse(b, &h), -EPROTO);
	header(b, 2, 0, 5);
	assert_int_equal(hub_xet_chunk_header_parse(b, &h), -EPROTO);
	header(b, 1, 5, 131073);
	assert_int_equal(hub_xet_chunk_header_parse(b, &h), -EPROTO);
	header(b, 1, 0xffffff, 1000);
	assert_int_equal(hub_xet_chunk_header_parse(b, &h), -EPROTO);
	header(b, 1, 100, 100);
	b[0] = 1; /* version */
	assert_int_equal(hub_xet_chunk_header_parse(b, &h), -EPROTO);
}

/* Data with runs and a float-like pattern, so that LZ4 has work. */
static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((i % 4 == 3) ? 0x3f : (i * seed) >> 3);
}

/* A chunk (header + data) of n bytes by scheme; caller frees. */
static uint8_t *make_chunk(const uint8_t *src, size_t n, unsigned scheme,
			   size_t *len)
{
	size_t cap = LZ4F_compressFrameBound(n, NULL);
	uint8_t *out = malloc(8 + cap), *grouped = malloc(n);
	const uint8_t *in = src;
	size_t comp = n, pos = 0;

	assert_non_null(out);
	assert_non_null(grouped);
	if (scheme == 2) { /* group g holds bytes g, g + 4, ... */
		for (size_t g = 0; g < 4; g++)
			for (size_t i = g; i < n; i += 4)
				grouped[pos++] = src[i];
		assert_int_equal(pos, n);
		in = grouped;
	}
	if (scheme == 0) {
		memcpy(out + 8, src, n);
	} else {
		comp = LZ4F_compressFrame(out + 8, cap, in, n, NULL);
		assert_false(LZ4F_isError(comp));
	}
	header(out, scheme, (uint32_t)comp, (uint32_t)n);
	free(grouped);
	*len = 8 + comp;
	return out;
}

static void decode_schemes(void **state)
{
	static const size_t sizes[] = { 1, 2,	 3,	4,	5,     6,
					7, 4096, 65537, 131071, 131072 };
	uint8_t *src = malloc(HUB_XET_CHUNK_MAX),
		*out = malloc(HUB_XET_CHUNK_MAX);

	(void)state;
	for (unsigned s = 0; s < 3; s++) {
		for (size_t k = 0; k < sizeof(sizes) / sizeof(*sizes); k++) {
			struct hub_xet_chunk_header h;
			size_t len, n = sizes[k];
			uint8_t *c;

			fill(src, n, 7 + (unsigned)k);
			c = make_chunk(src, n, s, &len);
			assert_int_equal(hub_xet_chunk_header_parse(c, &h), 0);
			assert_int_equal(h.scheme, s);
			memset(out, 0xaa, n);
			assert_int_equal(hub_xet_chunk_decode(&h, c + 8, out),
					 0);
			assert_memory_equal(out, src, n);
			free(c);
		}
	}
	free(src);
	free(out);
}

static void decode_broken(void **state)
{
	struct hub_xet_chunk_header h;
	uint8_t src[5000], out[5001];
	size_t len;
	uint8_t *c;

	(void)state;
	fill(src, sizeof(src), 3);
	c = make_chunk(src, sizeof(src), 1, &len);
	assert_int_equal(hub_xet_chunk_header_parse(c, &h), 0);
	/* says one byte more than the frame holds */
	h.unpacked++;
	assert_int_equal(hub_xet_chunk_decode(&h, c + 8, out), -EPROTO);
	h.unpacked -= 2; /* one byte less */
	assert_int_equal(hub_xet_chunk_decode(&h, c + 8, out), -EPROTO);
	h.unpacked++;
	h.compressed--; /* the frame cut short */
	assert_int_equal(hub_xet_chunk_decode(&h, c + 8, out), -EPROTO);
	h.compressed++;
	c[8] ^= 0xff; /* not a frame */
	assert_int_equal(hub_xet_chunk_decode(&h, c + 8, out), -EPROTO);
	free(c);
}

/* Three chunks (one per scheme) back to back, fed in pieces of `step`. */
static void decoder_stream(void **state)
{
	static const size_t n[3] = { 70000, 1234, 131072 };
	static const size_t steps[] = { 1, 7, 8, 4096, 1 << 20 };
	uint8_t *src[3], *c[3], *all;
	size_t len[3], total = 0, at = 0;

	(void)state;
	for (unsigned i = 0; i < 3; i++) {
		src[i] = malloc(n[i]);
		fill(src[i], n[i], 5 + i);
		c[i] = make_chunk(src[i], n[i], i, &len[i]);
		total += len[i];
	}
	all = malloc(total + 1);
	for (unsigned i = 0; i < 3; i++) {
		memcpy(all + at, c[i], len[i]);
		at += len[i];
	}
	for (size_t k = 0; k < sizeof(steps) / sizeof(*steps); k++) {
		struct hub_xet_decoder d;
		uint64_t off = 0;

		assert_int_equal(hub_xet_decoder_init(&d, 3, 3 * 131072), 0);
		/* a lent buffer too small (it grows), one reserved whole,
		   or none */
		if (k % 3 == 1)
			hub_xet_decoder_lend(&d, malloc(100), 100);
		else if (k % 3 == 2)
			assert_int_equal(
				hub_xet_decoder_reserve(&d, n[0] + n[1] + n[2]),
				0);
		for (size_t p = 0; p < total; p += steps[k]) {
			size_t m = total - p < steps[k] ? total - p : steps[k];

			assert_int_equal(hub_xet_decoder_feed(&d, all + p, m),
					 0);
		}
		assert_int_equal(hub_xet_decoder_finish(&d), 0);
		for (unsigned i = 0; i < 3; i++) {
			assert_int_equal(d.chunk_off[i], off);
			assert_memory_equal(d.out + off, src[i], n[i]);
			off += n[i];
		}
		assert_int_equal(d.chunk_off[3], off);
		/* a byte past the last chunk */
		assert_int_equal(hub_xet_decoder_feed(&d, all, 1), -EPROTO);
		{
			size_t cap;
			uint8_t *out = hub_xet_decoder_take(&d, &cap);

			assert_non_null(out);
			assert_true(cap >= off);
			assert_null(d.out);
			free(out);
		}
		hub_xet_decoder_destroy(&d);
	}
	/* ends inside a chunk; more chunks than named; over the limit */
	{
		struct hub_xet_decoder d;

		assert_int_equal(hub_xet_decoder_init(&d, 3, 3 * 131072), 0);
		assert_int_equal(hub_xet_decoder_feed(&d, all, total - 1), 0);
		assert_int_equal(hub_xet_decoder_finish(&d), -EPROTO);
		hub_xet_decoder_destroy(&d);
		assert_int_equal(hub_xet_decoder_init(&d, 2, 3 * 131072), 0);
		assert_int_equal(hub_xet_decoder_feed(&d, all, total), -EPROTO);
		hub_xet_decoder_destroy(&d);
		assert_int_equal(hub_xet_decoder_init(&d, 3, 70000 + 1233), 0);
		assert_int_equal(hub_xet_decoder_feed(&d, all, total), -EPROTO);
		hub_xet_decoder_destroy(&d);
		assert_int_equal(hub_xet_decoder_init(&d, 0, 1), -EINVAL);
	}
	for (unsigned i = 0; i < 3; i++) {
		free(src[i]);
		free(c[i]);
	}
	free(all);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(recon_v1),
		cmocka_unit_test(recon_v2),
		cmocka_unit_test(recon_refused),
		cmocka_unit_test(recon_wrong_xorb),
		cmocka_unit_test(headers),
		cmocka_unit_test(decode_schemes),
		cmocka_unit_test(decode_broken),
		cmocka_unit_test(decoder_stream),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

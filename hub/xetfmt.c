/*
 * xetfmt.c - the Xet formats hubfs reads off the network (hub.h, "Xet"):
 * the CAS's reconstruction answers (v1 and v2) and xorb chunks (header,
 * then a copy, an LZ4 frame, or an LZ4 frame of bytes grouped by position
 * mod 4).  No I/O.  Every length comes from untrusted bytes, so each is
 * checked before it sizes a buffer.
 */
#include "hub_int.h"

#include <errno.h>
#include <lz4frame.h>
#include <stdlib.h>
#include <string.h>

#define TERMS_MAX  (1u << 20) /* terms or fetch entries in one answer */
#define CHUNKS_MAX (1u << 20) /* chunk indices within a xorb */

/* ---- Reconstructions ---------------------------------------------------- */

static bool xorb_hash_ok(const char *s)
{
	return s && hub_is_sha256(s);
}

/* {"start": a, "end": b}: chunk indices, end-exclusive, a < b. */
static int chunk_range(const cJSON *o, uint32_t *start, uint32_t *end)
{
	uint64_t a, b;

	if (!cJSON_IsObject(o) ||
	    hub_json_size(cJSON_GetObjectItemCaseSensitive(o, "start"), &a) <
		    0 ||
	    hub_json_size(cJSON_GetObjectItemCaseSensitive(o, "end"), &b) < 0)
		return -EPROTO;
	if (a >= b || b > CHUNKS_MAX)
		return -EPROTO;
	*start = (uint32_t)a;
	*end = (uint32_t)b;
	return 0;
}

/* {"start": a, "end": b}: bytes, end-inclusive, a <= b. */
static int byte_range(const cJSON *o, uint64_t *first, uint64_t *last)
{
	if (!cJSON_IsObject(o) ||
	    hub_json_size(cJSON_GetObjectItemCaseSensitive(o, "start"), first) <
		    0 ||
	    hub_json_size(cJSON_GetObjectItemCaseSensitive(o, "end"), last) < 0)
		return -EPROTO;
	return *first <= *last ? 0 : -EPROTO;
}

static bool url_ok(const char *u)
{
	if (!u ||
	    (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0))
		return false;
	for (const unsigned char *p = (const unsigned char *)u; *p; p++)
		if (*p <= 0x20 || *p == 0x7f)
			return false;
	return true;
}

static int fetch_add(struct hub_xet_recon *r, unsigned *cap, const char *xorb,
		     const char *url, uint32_t cs, uint32_t ce, uint64_t bf,
		     uint64_t bl)
{
	struct hub_xet_fetch *f;

	if (!url_ok(url))
		return -EPROTO;
	if (r->n_fetch == *cap) {
		unsigned ncap = *cap ? 2 * *cap : 16;

		if (ncap > TERMS_MAX)
			return -EPROTO;
		f = realloc(r->fetch, ncap * sizeof(*f));
		if (!f)
			return -ENOMEM;
		r->fetch = f;
		*cap = ncap;
	}
	f = &r->fetch[r->n_fetch];
	memset(f, 0, sizeof(*f));
	f->url = strdup(url);
	if (!f->url)
		return -ENOMEM;
	r->n_fetch++;
	memcpy(f->xorb, xorb, 65);
	f->chunk_start = cs;
	f->chunk_end = ce;
	f->byte_first = bf;
	f->byte_last = bl;
	return 0;
}

/* v1: "fetch_info": {xorb: [{"range", "url", "url_range"}, ...]} */
static int parse_v1(struct hub_xet_recon *r, const cJSON *info, unsigned *cap)
{
	const cJSON *list, *e;
	int rc;

	cJSON_ArrayForEach(list, info)
	{
		if (!xorb_hash_ok(list->string) || !cJSON_IsArray(list))
			return -EPROTO;
		cJSON_ArrayForEach(e, list)
		{
			uint32_t cs, ce;
			uint64_t bf, bl;

			rc = chunk_range(
				cJSON_GetObjectItemCaseSensitive(e, "range"),
				&cs, &ce);
			if (rc == 0)
				rc = byte_range(
					cJSON_GetObjectItemCaseSensitive(
						e, "url_range"),
					&bf, &bl);
			if (rc == 0)
				rc = fetch_add(
					r, cap, list->string,
					cJSON_GetStringValue(
						cJSON_GetObjectItemCaseSensitive(
							e, "url")),
					cs, ce, bf, bl);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

/* v2: "xorbs": {xorb: [{"url", "ranges": [{"chunks", "bytes"}, ...]}]} */
static int parse_v2(struct hub_xet_recon *r, const cJSON *xorbs, unsigned *cap)
{
	const cJSON *list, *e, *rg;
	int rc;

	cJSON_ArrayForEach(list, xorbs)
	{
		if (!xorb_hash_ok(list->string) || !cJSON_IsArray(list))
			return -EPROTO;
		cJSON_ArrayForEach(e, list)
		{
			const char *url = cJSON_GetStringValue(
				cJSON_GetObjectItemCaseSensitive(e, "url"));
			const cJSON *ranges =
				cJSON_GetObjectItemCaseSensitive(e, "ranges");

			if (!cJSON_IsArray(ranges) ||
			    cJSON_GetArraySize(ranges) == 0)
				return -EPROTO;
			cJSON_ArrayForEach(rg, ranges)
			{
				uint32_t cs, ce;
				uint64_t bf, bl;

				rc = chunk_range(
					cJSON_GetObjectItemCaseSensitive(
						rg, "chunks"),
					&cs, &ce);
				if (rc == 0)
					rc = byte_range(
						cJSON_GetObjectItemCaseSensitive(
							rg, "bytes"),
						&bf, &bl);
				if (rc == 0)
					rc = fetch_add(r, cap, list->string,
						       url, cs, ce, bf, bl);
				if (rc < 0)
					return rc;
			}
		}
	}
	return 0;
}

static int parse_terms(struct hub_xet_recon *r, const cJSON *terms)
{
	const cJSON *t;
	int n = cJSON_GetArraySize(terms);

	if (!cJSON_IsArray(terms) || n <= 0 || (unsigned)n > TERMS_MAX)
		return -EPROTO;
	r->terms = calloc((size_t)n, sizeof(*r->terms));
	if (!r->terms)
		return -ENOMEM;
	cJSON_ArrayForEach(t, terms)
	{
		struct hub_xet_term *o = &r->terms[r->n_terms];
		const char *h = cJSON_GetStringValue(
			cJSON_GetObjectItemCaseSensitive(t, "hash"));

		if (!xorb_hash_ok(h) ||
		    chunk_range(cJSON_GetObjectItemCaseSensitive(t, "range"),
				&o->chunk_start, &o->chunk_end) < 0 ||
		    hub_json_size(cJSON_GetObjectItemCaseSensitive(
					  t, "unpacked_length"),
				  &o->unpacked) < 0)
			return -EPROTO;
		/* Each chunk unpacks to 1 .. HUB_XET_CHUNK_MAX bytes. */
		if (o->unpacked < o->chunk_end - o->chunk_start ||
		    o->unpacked > (uint64_t)(o->chunk_end - o->chunk_start) *
					  HUB_XET_CHUNK_MAX)
			return -EPROTO;
		memcpy(o->xorb, h, 65);
		r->unpacked += o->unpacked;
		r->n_terms++;
	}
	return 0;
}

/* Each term must lie inside a fetch entry of its xorb. */
static int link_terms(struct hub_xet_recon *r)
{
	for (unsigned i = 0; i < r->n_terms; i++) {
		struct hub_xet_term *t = &r->terms[i];
		unsigned j;

		for (j = 0; j < r->n_fetch; j++) {
			const struct hub_xet_fetch *f = &r->fetch[j];

			if (strcmp(f->xorb, t->xorb) == 0 &&
			    f->chunk_start <= t->chunk_start &&
			    t->chunk_end <= f->chunk_end)
				break;
		}
		if (j == r->n_fetch)
			return -EPROTO;
		t->fetch = j;
	}
	return 0;
}

int hub_xet_recon_parse(char *body, size_t n, struct hub_xet_recon **out)
{
	struct hub_xet_recon *r = NULL;
	cJSON *root = NULL;
	const cJSON *v1, *v2;
	unsigned cap = 0;
	int rc = -EPROTO;

	*out = NULL;
	root = hub_json_parse(body, n);
	if (!cJSON_IsObject(root))
		goto out;
	r = calloc(1, sizeof(*r));
	if (!r) {
		rc = -ENOMEM;
		goto out;
	}
	if (hub_json_size(cJSON_GetObjectItemCaseSensitive(
				  root, "offset_into_first_range"),
			  &r->offset_into_first_range) < 0)
		goto out;
	rc = parse_terms(r, cJSON_GetObjectItemCaseSensitive(root, "terms"));
	if (rc < 0)
		goto out;
	v1 = cJSON_GetObjectItemCaseSensitive(root, "fetch_info");
	v2 = cJSON_GetObjectItemCaseSensitive(root, "xorbs");
	rc = -EPROTO;
	if (cJSON_IsObject(v2))
		rc = parse_v2(r, v2, &cap);
	else if (cJSON_IsObject(v1))
		rc = parse_v1(r, v1, &cap);
	if (rc == 0)
		rc = link_terms(r);
	if (rc == 0 && r->offset_into_first_range >= r->terms[0].unpacked)
		rc = -EPROTO;
out:
	cJSON_Delete(root);
	if (rc < 0) {
		hub_xet_recon_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

void hub_xet_recon_free(struct hub_xet_recon *r)
{
	if (!r)
		return;
	for (unsigned i = 0; i < r->n_fetch; i++)
		free(r->fetch[i].url);
	free(r->fetch);
	free(r->terms);
	free(r);
}

/* ---- Chunks ------------------------------------------------------------- */

/* The most bytes an LZ4 frame of HUB_XET_CHUNK_MAX bytes can take. */
static size_t compressed_max(void)
{
	return LZ4F_compressFrameBound(HUB_XET_CHUNK_MAX, NULL) + 64;
}

int hub_xet_chunk_header_parse(const uint8_t p[HUB_XET_CHUNK_HEADER],
			       struct hub_xet_chunk_header *out)
{
	uint32_t comp = p[1] | (uint32_t)p[2] << 8 | (uint32_t)p[3] << 16;
	uint32_t unp = p[5] | (uint32_t)p[6] << 8 | (uint32_t)p[7] << 16;

	if (p[0] != 0 || p[4] > HUB_XET_BG4_LZ4)
		return -EPROTO;
	if (unp == 0 || unp > HUB_XET_CHUNK_MAX || comp == 0 ||
	    comp > compressed_max())
		return -EPROTO;
	if (p[4] == HUB_XET_NONE && comp != unp)
		return -EPROTO;
	out->scheme = (enum hub_xet_scheme)p[4];
	out->compressed = comp;
	out->unpacked = unp;
	return 0;
}

/* One LZ4 frame of exactly n bytes, nothing after it. */
static int lz4_frame(const uint8_t *src, size_t src_len, uint8_t *dst, size_t n)
{
	LZ4F_dctx *dctx;
	size_t in_pos = 0, out_pos = 0, hint = 1;
	int rc = -EPROTO;

	if (LZ4F_isError(LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION)))
		return -ENOMEM;
	while (hint != 0 && in_pos < src_len) {
		size_t in = src_len - in_pos, outn = n - out_pos;

		hint = LZ4F_decompress(dctx, dst + out_pos, &outn, src + in_pos,
				       &in, NULL);
		if (LZ4F_isError(hint))
			goto out;
		in_pos += in;
		out_pos += outn;
		if (in == 0 && outn == 0 && hint != 0)
			goto out; /* no progress: the output is full */
	}
	if (hint == 0 && in_pos == src_len && out_pos == n)
		rc = 0;
out:
	LZ4F_freeDecompressionContext(dctx);
	return rc;
}

/*
 * Undo byte grouping: in holds the bytes at positions 0 mod 4, then 1, 2
 * and 3 mod 4; the first n % 4 groups have one byte more.  Four bytes
 * out at a time, one of each group, then the tail.
 */
static void bg4_regroup(const uint8_t *in, uint8_t *out, size_t n)
{
	size_t split = n / 4, rem = n % 4;
	const uint8_t *g0 = in;
	const uint8_t *g1 = g0 + split + (rem > 0);
	const uint8_t *g2 = g1 + split + (rem > 1);
	const uint8_t *g3 = g2 + split + (rem > 2);

	for (size_t i = 0; i < split; i++) {
		out[4 * i] = g0[i];
		out[4 * i + 1] = g1[i];
		out[4 * i + 2] = g2[i];
		out[4 * i + 3] = g3[i];
	}
	if (rem > 0)
		out[4 * split] = g0[split];
	if (rem > 1)
		out[4 * split + 1] = g1[split];
	if (rem > 2)
		out[4 * split + 2] = g2[split];
}

int hub_xet_chunk_decode(const struct hub_xet_chunk_header *h,
			 const uint8_t *data, uint8_t *out)
{
	uint8_t *tmp;
	int rc;

	switch (h->scheme) {
	case HUB_XET_NONE:
		if (h->compressed != h->unpacked)
			return -EPROTO;
		memcpy(out, data, h->unpacked);
		return 0;
	case HUB_XET_LZ4:
		return lz4_frame(data, h->compressed, out, h->unpacked);
	case HUB_XET_BG4_LZ4:
		tmp = malloc(h->unpacked);
		if (!tmp)
			return -ENOMEM;
		rc = lz4_frame(data, h->compressed, tmp, h->unpacked);
		if (rc == 0)
			bg4_regroup(tmp, out, h->unpacked);
		free(tmp);
		return rc;
	}
	return -EPROTO;
}

/* ---- The streaming decoder ---------------------------------------------- */

int hub_xet_decoder_init(struct hub_xet_decoder *d, uint32_t n_chunks,
			 uint64_t limit)
{
	memset(d, 0, sizeof(*d));
	if (n_chunks == 0 || n_chunks > CHUNKS_MAX)
		return -EINVAL;
	d->n_want = n_chunks;
	d->limit = limit;
	d->chunk_off = calloc((size_t)n_chunks + 1, sizeof(*d->chunk_off));
	return d->chunk_off ? 0 : -ENOMEM;
}

void hub_xet_decoder_destroy(struct hub_xet_decoder *d)
{
	free(d->chunk_off);
	free(d->out);
	free(d->data);
	memset(d, 0, sizeof(*d));
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
	size_t ncap = *cap ? *cap : 1u << 16;
	uint8_t *p;

	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	p = realloc(*buf, ncap);
	if (!p)
		return -ENOMEM;
	*buf = p;
	*cap = ncap;
	return 0;
}

void hub_xet_decoder_lend(struct hub_xet_decoder *d, uint8_t *buf, size_t cap)
{
	free(d->out);
	d->out = buf;
	d->out_cap = buf ? cap : 0;
}

uint8_t *hub_xet_decoder_take(struct hub_xet_decoder *d, size_t *cap)
{
	uint8_t *p = d->out;

	*cap = d->out_cap;
	d->out = NULL;
	d->out_cap = 0;
	return p;
}

int hub_xet_decoder_reserve(struct hub_xet_decoder *d, uint64_t bytes)
{
	if (bytes > d->limit)
		bytes = d->limit;
	return grow(&d->out, &d->out_cap, (size_t)bytes);
}

/*
 * A header is in: room for its data.  A stored chunk's data goes straight
 * to its place in out; a compressed one's is gathered first.
 */
static int chunk_begin(struct hub_xet_decoder *d)
{
	uint64_t at = d->chunk_off[d->n];
	int rc = hub_xet_chunk_header_parse(d->head, &d->h);

	if (rc < 0)
		return rc;
	if (d->h.scheme != HUB_XET_NONE)
		return grow(&d->data, &d->data_cap, d->h.compressed);
	if (at + d->h.unpacked > d->limit)
		return -EPROTO;
	return grow(&d->out, &d->out_cap, (size_t)(at + d->h.unpacked));
}

/* The chunk's data is complete: unpack it after the others. */
static int chunk_done(struct hub_xet_decoder *d)
{
	uint64_t at = d->chunk_off[d->n];
	int rc;

	if (d->h.scheme != HUB_XET_NONE) {
		if (at + d->h.unpacked > d->limit)
			return -EPROTO;
		rc = grow(&d->out, &d->out_cap, (size_t)(at + d->h.unpacked));
		if (rc == 0)
			rc = hub_xet_chunk_decode(&d->h, d->data, d->out + at);
		if (rc < 0)
			return rc;
	}
	d->n++;
	d->chunk_off[d->n] = at + d->h.unpacked;
	d->head_len = 0;
	d->data_len = 0;
	return 0;
}

int hub_xet_decoder_feed(struct hub_xet_decoder *d, const void *p, size_t n)
{
	const uint8_t *b = p;
	uint8_t *dst;
	int rc;

	while (n > 0) {
		size_t take;

		if (d->head_len < HUB_XET_CHUNK_HEADER) {
			if (d->n == d->n_want)
				return -EPROTO; /* bytes past the last chunk */
			take = HUB_XET_CHUNK_HEADER - d->head_len;
			take = take < n ? take : n;
			memcpy(d->head + d->head_len, b, take);
			d->head_len += take;
			b += take;
			n -= take;
			if (d->head_len < HUB_XET_CHUNK_HEADER)
				break;
			rc = chunk_begin(d);
			if (rc < 0)
				return rc;
			continue;
		}
		take = d->h.compressed - d->data_len;
		take = take < n ? take : n;
		dst = d->h.scheme == HUB_XET_NONE ? d->out + d->chunk_off[d->n]
						  : d->data;
		memcpy(dst + d->data_len, b, take);
		d->data_len += take;
		b += take;
		n -= take;
		if (d->data_len == d->h.compressed) {
			rc = chunk_done(d);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

int hub_xet_decoder_finish(const struct hub_xet_decoder *d)
{
	return d->n == d->n_want && d->head_len == 0 ? 0 : -EPROTO;
}

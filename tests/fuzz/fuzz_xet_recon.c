/*
 * fuzz_xet_recon.c - the Xet CAS's reconstruction answers (v1 fetch_info
 * and v2 xorbs) through hub_xet_recon_parse().  An accepted answer must
 * hold what hub/xet.c relies on without checking again: at least one term,
 * each inside the fetch entry it points at, of the same xorb, with
 * non-empty chunk ranges and unpacked lengths a chunk count can give,
 * ordered byte ranges, http(s) URLs, and offset_into_first_range inside
 * the first term.
 */
#include "fuzz.h"

#include "hub_int.h"

#include <errno.h>

static void check(const struct hub_xet_recon *r)
{
	uint64_t sum = 0;

	FUZZ_CHECK(r->n_terms >= 1 && r->n_fetch >= 1);
	FUZZ_CHECK(r->offset_into_first_range < r->terms[0].unpacked);
	for (unsigned i = 0; i < r->n_terms; i++) {
		const struct hub_xet_term *t = &r->terms[i];
		const struct hub_xet_fetch *f;
		uint64_t chunks = t->chunk_end - t->chunk_start;

		FUZZ_CHECK(hub_is_sha256(t->xorb));
		FUZZ_CHECK(t->chunk_start < t->chunk_end);
		FUZZ_CHECK(t->unpacked >= chunks &&
			   t->unpacked <= chunks * HUB_XET_CHUNK_MAX);
		FUZZ_CHECK(t->fetch < r->n_fetch);
		f = &r->fetch[t->fetch];
		FUZZ_CHECK(strcmp(f->xorb, t->xorb) == 0);
		FUZZ_CHECK(f->chunk_start <= t->chunk_start &&
			   t->chunk_end <= f->chunk_end);
		sum += t->unpacked;
	}
	FUZZ_CHECK(sum == r->unpacked);
	for (unsigned j = 0; j < r->n_fetch; j++) {
		const struct hub_xet_fetch *f = &r->fetch[j];

		FUZZ_CHECK(hub_is_sha256(f->xorb));
		FUZZ_CHECK(f->chunk_start < f->chunk_end);
		FUZZ_CHECK(f->byte_first <= f->byte_last);
		FUZZ_CHECK(strncmp(f->url, "http://", 7) == 0 ||
			   strncmp(f->url, "https://", 8) == 0);
		for (const char *p = f->url; *p; p++)
			FUZZ_CHECK((unsigned char)*p > 0x20 &&
				   (unsigned char)*p != 0x7f);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hub_xet_recon *r = NULL;
	char *body = malloc(size + 1);
	int rc;

	if (!body)
		abort();
	memcpy(body, data, size);
	body[size] = '\0';
	rc = hub_xet_recon_parse(body, size, &r);
	FUZZ_CHECK(rc == 0 || rc == -EPROTO);
	FUZZ_CHECK((rc == 0) == (r != NULL));
	if (r)
		check(r);
	hub_xet_recon_free(r);
	free(body);
	return 0;
}

/*
 * fuzz_names.c - the checks and encodings of hub/names.c: repo ids, commit
 * ids, sha256s, etags, repo paths and percent-encoding.  Each accepted
 * string is checked against the rule it was accepted under, spelled out
 * here independently; each encoding must round-trip.
 */
#include "fuzz.h"

#include "hub_int.h"

#include <errno.h>

static bool lower_hex(const char *s, size_t n)
{
	if (strlen(s) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("0123456789abcdef", s[i]))
			return false;
	return true;
}

static bool id_part_ok(const char *s, size_t n)
{
	if (n < 1 || n > 96 || strchr("-.", s[0]) || strchr("-.", s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWX"
			    "YZ"
			    "0123456789-_.",
			    s[i]) ||
		    s[i] == '\0')
			return false;
		if (i > 0 && (s[i] == '-' || s[i] == '.') && s[i - 1] == s[i])
			return false;
	}
	return true;
}

static void repo_id(const char *s)
{
	const char *slash = strchr(s, '/');
	char *esc;

	if (!hub_repo_id_valid(s))
		return;
	if (slash)
		FUZZ_CHECK(id_part_ok(s, (size_t)(slash - s)) &&
			   id_part_ok(slash + 1, strlen(slash + 1)));
	else
		FUZZ_CHECK(id_part_ok(s, strlen(s)));
	/* A valid id goes into a URL path as it is. */
	esc = hub_escape_path(s);
	FUZZ_CHECK(esc && strcmp(esc, s) == 0);
	free(esc);
}

static void hex_ids(const char *s)
{
	char out[HUB_ETAG_MAX + 1], again[HUB_ETAG_MAX + 1];

	FUZZ_CHECK(hub_is_commit_id(s) == lower_hex(s, 40));
	FUZZ_CHECK(hub_is_sha256(s) == lower_hex(s, 64));
	if (hub_etag_normalize(s, out) < 0) {
		FUZZ_CHECK(!hub_etag_conflict(
			"0123456789abcdef0123456789abcdef01234567", s));
		return;
	}
	FUZZ_CHECK(lower_hex(out, 40) || lower_hex(out, 64));
	FUZZ_CHECK(hub_etag_normalize(out, again) == 0);
	FUZZ_CHECK(strcmp(out, again) == 0);
	/* A value never conflicts with itself, always with another. */
	FUZZ_CHECK(!hub_etag_conflict(out, s));
	again[0] = again[0] == '0' ? '1' : '0';
	FUZZ_CHECK(hub_etag_conflict(again, s));
}

/* Well-formed UTF-8 as RFC 3629 has it: shortest form, no surrogates. */
static bool utf8_ok(const unsigned char *p)
{
	while (*p) {
		unsigned c = *p, cp, n;

		if (c < 0x80) {
			p++;
			continue;
		}
		n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
		if (n == 0)
			return false;
		cp = c & (0x7f >> n);
		for (unsigned i = 1; i < n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
		    (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		p += n;
	}
	return true;
}

static void path(const char *s)
{
	const char *seg = s;

	if (!hub_path_safe(s))
		return;
	FUZZ_CHECK(strlen(s) <= HUB_PATH_MAX);
	FUZZ_CHECK(utf8_ok((const unsigned char *)s));
	for (const char *p = s; *p; p++)
		FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
	for (;;) {
		const char *end = strchrnul(seg, '/');
		size_t n = (size_t)(end - seg);

		/* No empty segment: no leading, trailing or double '/'. */
		FUZZ_CHECK(n >= 1 && n <= 255);
		FUZZ_CHECK(!(n == 1 && seg[0] == '.'));
		FUZZ_CHECK(!(n == 2 && seg[0] == '.' && seg[1] == '.'));
		if (*end == '\0')
			break;
		seg = end + 1;
	}
}

/* escape, then unescape, gives back s; the escaped form is plain. */
static void round_trip(const char *s, bool keep_slash)
{
	char *esc = keep_slash ? hub_escape_path(s) : hub_escape_segment(s);
	char *back = NULL;

	FUZZ_CHECK(esc);
	for (const char *p = esc; *p; p++) {
		if (*p == '%') {
			FUZZ_CHECK(strchr("0123456789ABCDEF", p[1]) && p[1]);
			FUZZ_CHECK(strchr("0123456789ABCDEF", p[2]) && p[2]);
			p += 2;
			continue;
		}
		FUZZ_CHECK(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP"
				  "QRSTUVWXYZ0123456789-._~",
				  *p) ||
			   (keep_slash && *p == '/'));
	}
	FUZZ_CHECK(hub_unescape(esc, &back) == 0);
	FUZZ_CHECK(strcmp(back, s) == 0);
	free(back);
	free(esc);
}

static void unescape(const char *s)
{
	char *out = (char *)1;
	size_t escapes = 0;
	int rc = hub_unescape(s, &out);

	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	if (rc < 0) {
		FUZZ_CHECK(out == NULL);
		return;
	}
	for (const char *p = s; *p; p++)
		escapes += *p == '%';
	/* Every '%' took two hex digits and made one byte, never a NUL. */
	FUZZ_CHECK(strlen(out) == strlen(s) - 2 * escapes);
	round_trip(out, false);
	free(out);
}

/*
 * huggingface_hub cache folder names: what parses names a valid id of a
 * type whose folder name is the input again; a valid id's folder name
 * parses back to it.
 */
static void cache_folder(const char *s)
{
	static const enum hub_repo_type types[] = { HUB_MODEL, HUB_DATASET,
						    HUB_SPACE };
	enum hub_repo_type type;
	char id[256], again[600], back[256];

	if (hub_cache_folder_parse(s, &type, id) == 0) {
		FUZZ_CHECK(hub_repo_id_valid(id));
		FUZZ_CHECK(hub_cache_folder_name(type, id, again,
						 sizeof(again)) == 0);
		FUZZ_CHECK(strcmp(again, s) == 0);
	}
	if (!hub_repo_id_valid(s)) {
		FUZZ_CHECK(hub_cache_folder_name(HUB_MODEL, s, again,
						 sizeof(again)) == -EINVAL);
		return;
	}
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		FUZZ_CHECK(hub_cache_folder_name(types[i], s, again,
						 sizeof(again)) == 0);
		FUZZ_CHECK(strstr(again, "--") ==
			   again + strlen(hub_type_plural(types[i])));
		FUZZ_CHECK(hub_cache_folder_parse(again, &type, back) == 0);
		FUZZ_CHECK(type == types[i] && strcmp(back, s) == 0);
		/* Just room enough is enough; less is refused, not cut. */
		FUZZ_CHECK(hub_cache_folder_name(types[i], s, again,
						 strlen(again) + 1) == 0);
		FUZZ_CHECK(hub_cache_folder_name(types[i], s, again,
						 strlen(again)) ==
			   -ENAMETOOLONG);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);

	repo_id(s);
	hex_ids(s);
	path(s);
	round_trip(s, false);
	round_trip(s, true);
	unescape(s);
	cache_folder(s);
	free(s);
	return 0;
}

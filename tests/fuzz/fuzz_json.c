/*
 * fuzz_json.c - the parsers of the Hub's JSON bodies in hub/json.c: repo
 * info, tree listing pages, author listing pages, whoami, error bodies,
 * and the ISO-8601 dates they carry.  The input is one response body,
 * handed to every parser.
 */
#include "fuzz.h"

#include "hub_int.h"

#include <errno.h>
#include <inttypes.h>

#define SIZE_LIMIT (UINT64_C(1) << 53)

/*
 * The integer a JSON number item holds, written out in full ("%.0f" of its
 * double, not cJSON's valueint, which saturates at INT_MAX, nor cJSON's
 * printing, which keeps 15 digits) and read back.  cJSON keeps no source
 * text, so a non-integer that its strtod rounds to an integer cannot be
 * told apart here (tests/fuzz/README.md).
 */
static bool printed_u64(const cJSON *item, uint64_t *out)
{
	char txt[400], *end;

	if (!(item->valuedouble >= 0)) /* NaN too */
		return false;
	snprintf(txt, sizeof(txt), "%.0f", item->valuedouble);
	if ((double)strtod(txt, NULL) != item->valuedouble)
		return false; /* not an integer */
	errno = 0;
	*out = strtoull(txt, &end, 10);
	return errno == 0 && *end == '\0';
}

static void size_exact(const cJSON *item, uint64_t size)
{
	uint64_t want;

	FUZZ_CHECK(cJSON_IsNumber(item));
	FUZZ_CHECK(size < SIZE_LIMIT);
	FUZZ_CHECK(printed_u64(item, &want));
	FUZZ_CHECK(want == size);
}

static void tree_entry(const cJSON *item)
{
	const cJSON *lfs = cJSON_GetObjectItemCaseSensitive(item, "lfs");
	const cJSON *size = cJSON_GetObjectItemCaseSensitive(item, "size");
	struct hub_entry e;

	if (hub_json_tree_entry(item, &e) < 0)
		return;
	FUZZ_CHECK(e.path && hub_path_safe(e.path));
	FUZZ_CHECK(e.oid && hub_is_commit_id(e.oid));
	FUZZ_CHECK(!e.lfs_oid || hub_is_sha256(e.lfs_oid));
	FUZZ_CHECK(!e.xet_hash || hub_is_sha256(e.xet_hash));
	if (e.is_dir) {
		FUZZ_CHECK(e.size == 0 && !e.lfs_oid && !e.xet_hash);
		return;
	}
	/* A file's size is exactly what the body says, lfs.size first. */
	if (e.lfs_oid)
		size_exact(cJSON_GetObjectItemCaseSensitive(lfs, "size"),
			   e.size);
	else
		size_exact(size, e.size);
	if (e.lfs_oid && size && !cJSON_IsNull(size))
		size_exact(size, e.size); /* the two agree */
}

static void listing(const cJSON *root)
{
	const cJSON *item;

	cJSON_ArrayForEach(item, root)
	{
		const char *id = hub_json_listed_id(item);

		tree_entry(item);
		if (id) {
			FUZZ_CHECK(hub_repo_id_valid(id));
			FUZZ_CHECK(strcmp(id, cJSON_GetObjectItemCaseSensitive(
						      item, "id")
						      ->valuestring) == 0);
		}
	}
}

static void repo_info(const cJSON *root)
{
	struct hub_repo_info ri;

	if (hub_json_repo_info(root, &ri) < 0)
		return;
	FUZZ_CHECK(strnlen(ri.id, sizeof(ri.id)) < sizeof(ri.id));
	FUZZ_CHECK(hub_repo_id_valid(ri.id));
	FUZZ_CHECK(hub_is_commit_id(ri.sha));
	FUZZ_CHECK(strcmp(ri.id, cJSON_GetObjectItemCaseSensitive(root, "id")
					 ->valuestring) == 0);
}

static void whoami(const cJSON *root)
{
	struct hub_whoami w;

	if (hub_json_whoami(root, &w) < 0)
		return;
	FUZZ_CHECK(w.n_orgs <= HUB_WHOAMI_ORGS);
	FUZZ_CHECK(hub_repo_id_valid(w.name) && !strchr(w.name, '/'));
	for (unsigned i = 0; i < w.n_orgs; i++)
		FUZZ_CHECK(hub_repo_id_valid(w.orgs[i]) &&
			   !strchr(w.orgs[i], '/'));
}

static void error_message(const uint8_t *data, size_t size)
{
	static const size_t sizes[] = { 1, 2, 16, 256 };
	char out[256];

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		memset(out, 'x', sizeof(out));
		hub_json_error_message((const char *)data, size, out, sizes[i]);
		FUZZ_CHECK(strnlen(out, sizes[i]) < sizes[i]);
	}
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian), d may overflow m. */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* An accepted date is the instant its fields name, worked out here. */
static void iso8601(const char *s)
{
	int64_t t, want;
	int y, mo, d, h, mi, se, zh = 0, zm = 0, used = 0;
	const char *z;

	if (!s || hub_parse_iso8601(s, &t) < 0)
		return;
	FUZZ_CHECK(sscanf(s, "%4d-%2d-%2d%*c%2d:%2d:%2d%n", &y, &mo, &d, &h,
			  &mi, &se, &used) == 6);
	want = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
	z = s + used;
	if (*z == '.' || *z == ',')
		z += 1 + strspn(z + 1, "0123456789");
	if (*z == '+' || *z == '-') {
		FUZZ_CHECK(sscanf(z + 1, "%2d", &zh) == 1);
		FUZZ_CHECK(sscanf(z + 3 + (z[3] == ':'), "%2d", &zm) == 1);
		want -= (*z == '-' ? -1 : 1) * (zh * 3600 + zm * 60);
	}
	FUZZ_CHECK(t == want);
}

static void dates(const cJSON *root)
{
	const cJSON *item;

	if (cJSON_IsString(root))
		iso8601(root->valuestring);
	cJSON_ArrayForEach(item, root)
	{
		if (cJSON_IsString(item))
			iso8601(item->valuestring);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cJSON *root = cJSON_ParseWithLength((const char *)data, size);
	char *s;

	error_message(data, size);
	s = fuzz_cstr(data, size);
	iso8601(s);
	free(s);
	if (!root)
		return 0;
	repo_info(root);
	whoami(root);
	listing(root);
	dates(root);
	cJSON_Delete(root);
	return 0;
}

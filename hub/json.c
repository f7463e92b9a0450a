/*
 * json.c - parsers of the Hub's JSON bodies (hub-api.md sections 1.5, 2.2,
 * 3.3 and 7.3), kept apart from the I/O so that unit tests and fuzzers can
 * feed them bytes directly.
 *
 * Everything here comes off the network.  Sizes must be exact: cJSON keeps
 * numbers as doubles (and its valueint saturates at INT_MAX), which are
 * exact integers only up to 2^53, so a size is accepted only when it is an
 * integer in [0, 2^53); anything else is refused, never rounded.  Ids and
 * hashes that may become names are checked to be what they claim.
 */
#include "hub_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define SIZE_LIMIT 9007199254740992.0 /* 2^53 */

int hub_json_size(const cJSON *item, uint64_t *out)
{
	double d;

	if (!cJSON_IsNumber(item))
		return -EINVAL;
	d = item->valuedouble;
	if (!(d >= 0 && d < SIZE_LIMIT) || (double)(uint64_t)d != d)
		return -EINVAL;
	*out = (uint64_t)d;
	return 0;
}

cJSON *hub_json_parse(char *body, size_t n)
{
	bool in_string = false;

	for (size_t i = 0; i < n; i++) {
		if (body[i] == '"') {
			in_string = !in_string;
		} else if (in_string && body[i] == '\\' && i + 1 < n) {
			if (body[i + 1] == 'u' && i + 5 < n &&
			    memcmp(body + i + 2, "0000", 4) == 0)
				body[i + 5] = '1';
			i++; /* the escaped character cannot end the string */
		}
	}
	return cJSON_ParseWithLength(body, n);
}

/* Exactly n digits at *pp into *out, advancing *pp. */
static int digits(const char **pp, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		char c = (*pp)[i];

		if (c < '0' || c > '9')
			return -EINVAL;
		v = v * 10 + (c - '0');
	}
	*pp += n;
	*out = v;
	return 0;
}

/* "Z", "+hh:mm", "-hhmm" or nothing (UTC): the offset in seconds. */
static int parse_zone(const char *p, long *off)
{
	int sign, hh, mm;

	*off = 0;
	if (*p == '\0' || (*p == 'Z' && p[1] == '\0'))
		return 0;
	if (*p != '+' && *p != '-')
		return -EINVAL;
	sign = *p++ == '-' ? -1 : 1;
	if (digits(&p, 2, &hh) < 0)
		return -EINVAL;
	if (*p == ':')
		p++;
	if (digits(&p, 2, &mm) < 0 || *p != '\0' || hh > 23 || mm > 59)
		return -EINVAL;
	*off = sign * (hh * 3600L + mm * 60L);
	return 0;
}

int hub_parse_iso8601(const char *s, int64_t *out)
{
	struct tm tm = { 0 };
	const char *p = s;
	int y, mo, d, h, mi, se;
	long off;
	time_t t;

	if (digits(&p, 4, &y) < 0 || *p++ != '-' || digits(&p, 2, &mo) < 0 ||
	    *p++ != '-' || digits(&p, 2, &d) < 0 || (*p != 'T' && *p != ' '))
		return -EINVAL;
	p++;
	if (digits(&p, 2, &h) < 0 || *p++ != ':' || digits(&p, 2, &mi) < 0 ||
	    *p++ != ':' || digits(&p, 2, &se) < 0)
		return -EINVAL;
	if (*p == '.' || *p == ',') {
		p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (parse_zone(p, &off) < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 ||
	    h > 23 || mi > 59 || se > 60)
		return -EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	t = timegm(&tm);
	*out = (int64_t)t - off;
	return 0;
}

/* A string member, or NULL. */
static const char *str(const cJSON *obj, const char *key)
{
	const cJSON *v;

	if (!cJSON_IsObject(obj))
		return NULL;
	v = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool copy_str(char *dst, size_t size, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (!s || n == 0 || n >= size)
		return false;
	memcpy(dst, s, n + 1);
	return true;
}

int hub_json_repo_info(const cJSON *root, struct hub_repo_info *out)
{
	const char *id = str(root, "id"), *sha = str(root, "sha");
	const char *lm = str(root, "lastModified");
	const cJSON *gated = cJSON_GetObjectItemCaseSensitive(root, "gated");

	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(root) || !id || !hub_repo_id_valid(id) ||
	    !copy_str(out->id, sizeof(out->id), id) || !sha ||
	    !hub_is_commit_id(sha))
		return -EPROTO;
	memcpy(out->sha, sha, 41);
	if (lm && hub_parse_iso8601(lm, &out->last_modified) < 0)
		out->last_modified = 0;
	out->private_repo =
		cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "private"));
	out->disabled = cJSON_IsTrue(
		cJSON_GetObjectItemCaseSensitive(root, "disabled"));
	/* false, or "auto" / "manual" */
	out->gated = cJSON_IsTrue(gated) ||
		     (cJSON_IsString(gated) && gated->valuestring[0] &&
		      strcmp(gated->valuestring, "false") != 0);
	return 0;
}

/* The lfs object of a file entry: its sha256 and size. */
static int tree_lfs(const cJSON *lfs, struct hub_entry *out, bool have_size)
{
	const char *oid = str(lfs, "oid");
	uint64_t size;

	if (!cJSON_IsObject(lfs) || !oid || !hub_is_sha256(oid) ||
	    hub_json_size(cJSON_GetObjectItemCaseSensitive(lfs, "size"),
			  &size) < 0)
		return -EINVAL;
	if (have_size && size != out->size)
		return -EINVAL; /* the two sizes of one file disagree */
	out->lfs_oid = oid;
	out->size = size;
	return 0;
}

int hub_json_tree_entry(const cJSON *item, struct hub_entry *out)
{
	const char *type = str(item, "type"), *xet = str(item, "xetHash");
	const cJSON *size = cJSON_GetObjectItemCaseSensitive(item, "size");
	const cJSON *lfs = cJSON_GetObjectItemCaseSensitive(item, "lfs");
	bool have_size = size && !cJSON_IsNull(size);

	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(item) || !type)
		return -EINVAL;
	if (strcmp(type, "directory") == 0)
		out->is_dir = true;
	else if (strcmp(type, "file") != 0)
		return -EINVAL;
	out->path = str(item, "path");
	out->oid = str(item, "oid");
	if (!out->path || !hub_path_safe(out->path) || !out->oid ||
	    !hub_is_commit_id(out->oid))
		return -EINVAL;
	if (have_size && hub_json_size(size, &out->size) < 0)
		return -EINVAL;
	if (!have_size && !out->is_dir && (!lfs || cJSON_IsNull(lfs)))
		return -EINVAL;
	if (lfs && !cJSON_IsNull(lfs)) {
		if (out->is_dir || tree_lfs(lfs, out, have_size) < 0)
			return -EINVAL;
	}
	if (out->is_dir)
		out->size = 0;
	out->xet_hash = !out->is_dir && xet && hub_is_sha256(xet) ? xet : NULL;
	return 0;
}

const char *hub_json_listed_id(const cJSON *item)
{
	const char *id = str(item, "id");

	return id && hub_repo_id_valid(id) ? id : NULL;
}

/* A user or organisation name: one part of a repo id. */
static bool owner_valid(const char *s)
{
	return s && !strchr(s, '/') && hub_repo_id_valid(s) &&
	       strlen(s) < sizeof(((struct hub_whoami *)0)->name);
}

int hub_json_whoami(const cJSON *root, struct hub_whoami *out)
{
	const char *name = str(root, "name");
	const cJSON *orgs = cJSON_GetObjectItemCaseSensitive(root, "orgs");
	const cJSON *org;

	memset(out, 0, sizeof(*out));
	if (!cJSON_IsArray(orgs))
		orgs = NULL;
	if (!cJSON_IsObject(root) || !owner_valid(name))
		return -EPROTO;
	memcpy(out->name, name, strlen(name) + 1);
	cJSON_ArrayForEach(org, orgs)
	{
		const char *o = str(org, "name");

		if (out->n_orgs == HUB_WHOAMI_ORGS)
			break;
		if (owner_valid(o))
			memcpy(out->orgs[out->n_orgs++], o, strlen(o) + 1);
	}
	return 0;
}

static void copy_msg(char *out, size_t size, const char *s)
{
	size_t n = strlen(s);

	if (n >= size)
		n = size - 1;
	memcpy(out, s, n);
	out[n] = '\0';
}

void hub_json_error_message(const char *body, size_t n, char *out, size_t size)
{
	cJSON *root = cJSON_ParseWithLength(body, n);
	const cJSON *e, *first;
	const char *msg = NULL;

	out[0] = '\0';
	if (!cJSON_IsObject(root))
		goto out;
	e = cJSON_GetObjectItemCaseSensitive(root, "error");
	first = cJSON_IsArray(e) ? cJSON_GetArrayItem(e, 0) : NULL;
	if (cJSON_IsString(e))
		msg = e->valuestring;
	else if (cJSON_IsString(first))
		msg = first->valuestring;
	e = cJSON_GetObjectItemCaseSensitive(root, "errors");
	if (!msg && cJSON_IsArray(e))
		msg = str(cJSON_GetArrayItem(e, 0), "message");
	if (!msg)
		msg = str(root, "message");
	if (msg)
		copy_msg(out, size, msg);
out:
	cJSON_Delete(root);
}

/*
 * One file of trees/<commit>.json: {"size", "blob_id", "lfs_sha256",
 * "lfs_size", "xet_hash"}, with the same checks as a listing's entry.
 */
static int cache_tree_file(const char *path, const cJSON *f,
			   struct hub_entry *out)
{
	const char *lfs = str(f, "lfs_sha256"), *xet = str(f, "xet_hash");
	const cJSON *lfs_size = cJSON_GetObjectItemCaseSensitive(f, "lfs_size");
	uint64_t n;

	memset(out, 0, sizeof(*out));
	out->path = path;
	out->oid = str(f, "blob_id");
	if (!cJSON_IsObject(f) || !path || !hub_path_safe(path) || !out->oid ||
	    !hub_is_commit_id(out->oid) ||
	    hub_json_size(cJSON_GetObjectItemCaseSensitive(f, "size"),
			  &out->size) < 0)
		return -EINVAL;
	if (lfs) {
		if (!hub_is_sha256(lfs) ||
		    (lfs_size &&
		     (hub_json_size(lfs_size, &n) < 0 || n != out->size)))
			return -EINVAL;
		out->lfs_oid = lfs;
	}
	out->xet_hash = xet && hub_is_sha256(xet) ? xet : NULL;
	return 0;
}

int hub_cache_tree_parse(char *text, size_t len, hub_entry_fn cb, void *arg,
			 unsigned *skipped)
{
	cJSON *root = hub_json_parse(text, len), *files, *f;
	const cJSON *version;
	struct hub_entry e;
	int rc = 0;

	*skipped = 0;
	version = cJSON_GetObjectItemCaseSensitive(root, "format_version");
	files = cJSON_GetObjectItemCaseSensitive(root, "files");
	if (!cJSON_IsObject(root) || !cJSON_IsNumber(version) ||
	    version->valuedouble != 1 || !cJSON_IsObject(files)) {
		cJSON_Delete(root);
		return -EPROTO;
	}
	cJSON_ArrayForEach(f, files)
	{
		if (cache_tree_file(f->string, f, &e) < 0) {
			(*skipped)++;
			continue;
		}
		if ((rc = cb(arg, &e)) != 0)
			break;
	}
	cJSON_Delete(root);
	return rc;
}

bool hub_json_add_u64(cJSON *o, const char *key, uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return cJSON_AddRawToObject(o, key, buf) != NULL;
}

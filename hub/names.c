/*
 * names.c - checks and encodings for strings the Hub hands us that end up
 * in URLs or file names: repo ids, commit ids, etags, repo paths, and the
 * percent-encoding rules of hub-api.md section 1.2.
 */
#include "hub_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *hub_type_plural(enum hub_repo_type type)
{
	switch (type) {
	case HUB_MODEL:
		return "models";
	case HUB_DATASET:
		return "datasets";
	case HUB_SPACE:
		return "spaces";
	}
	return "models";
}

const char *hub_type_url_prefix(enum hub_repo_type type)
{
	switch (type) {
	case HUB_MODEL:
		return "";
	case HUB_DATASET:
		return "datasets/";
	case HUB_SPACE:
		return "spaces/";
	}
	return "";
}

static bool id_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

/* One part of a repo id, [s, s+n). */
static bool id_part_valid(const char *s, size_t n)
{
	if (n == 0 || n > 96)
		return false;
	if (s[0] == '-' || s[0] == '.' || s[n - 1] == '-' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!id_char(s[i]))
			return false;
		if (i > 0 && (s[i] == '-' || s[i] == '.') && s[i] == s[i - 1])
			return false;
	}
	return true;
}

bool hub_repo_id_valid(const char *id)
{
	const char *slash = strchr(id, '/');

	if (!slash)
		return id_part_valid(id, strlen(id));
	return id_part_valid(id, (size_t)(slash - id)) &&
	       id_part_valid(slash + 1, strlen(slash + 1));
}

static const enum hub_repo_type all_types[] = { HUB_MODEL, HUB_DATASET,
						HUB_SPACE };

int hub_cache_folder_name(enum hub_repo_type type, const char *id, char *out,
			  size_t size)
{
	size_t n;

	if (!hub_repo_id_valid(id))
		return -EINVAL;
	n = (size_t)snprintf(out, size, "%s--", hub_type_plural(type));
	if (n >= size)
		return -ENAMETOOLONG;
	for (; *id; id++) {
		if (n + (*id == '/' ? 2 : 1) >= size)
			return -ENAMETOOLONG;
		if (*id == '/')
			out[n++] = '-';
		out[n++] = *id == '/' ? '-' : *id;
	}
	out[n] = '\0';
	return 0;
}

int hub_cache_folder_parse(const char *name, enum hub_repo_type *type,
			   char id[256])
{
	const char *sep = strstr(name, "--");
	size_t i, n = 0;

	if (!sep)
		return -EINVAL;
	for (i = 0; i < sizeof(all_types) / sizeof(all_types[0]); i++) {
		const char *plural = hub_type_plural(all_types[i]);

		if (strlen(plural) == (size_t)(sep - name) &&
		    strncmp(name, plural, (size_t)(sep - name)) == 0)
			break;
	}
	if (i == sizeof(all_types) / sizeof(all_types[0]))
		return -EINVAL;
	for (const char *p = sep + 2; *p; p++) {
		if (n + 1 >= 256 || *p == '/') /* a '/' is never in a name */
			return -EINVAL;
		if (p[0] == '-' && p[1] == '-') {
			id[n++] = '/';
			p++;
		} else {
			id[n++] = *p;
		}
	}
	id[n] = '\0';
	if (!hub_repo_id_valid(id))
		return -EINVAL;
	*type = all_types[i];
	return 0;
}

static bool lower_hex_n(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[i] == '\0';
}

bool hub_is_commit_id(const char *s)
{
	return lower_hex_n(s, 40);
}

bool hub_is_sha256(const char *s)
{
	return lower_hex_n(s, 64);
}

int hub_etag_normalize(const char *value, char out[HUB_ETAG_MAX + 1])
{
	const char *p = value;
	size_t n;

	while (*p == ' ' || *p == '\t')
		p++;
	if (p[0] == 'W' && p[1] == '/')
		p += 2;
	n = strlen(p);
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	if (n >= 2 && p[0] == '"' && p[n - 1] == '"') {
		p++;
		n -= 2;
	}
	if (n != 40 && n != 64)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = (char)tolower((unsigned char)p[i]);

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return -EINVAL;
		out[i] = c;
	}
	out[n] = '\0';
	return 0;
}

bool hub_etag_conflict(const char *expected, const char *value)
{
	char got[HUB_ETAG_MAX + 1];

	if (!expected || !value || hub_etag_normalize(value, got) < 0)
		return false;
	return strlen(got) == strlen(expected) && strcmp(got, expected) != 0;
}

/*
 * Length of the UTF-8 sequence starting at s, or 0 when it is not a valid,
 * shortest-form encoding of a scalar value.
 */
static size_t utf8_len(const unsigned char *s)
{
	unsigned c = s[0];
	size_t n;
	unsigned cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

bool hub_path_safe(const char *path)
{
	const unsigned char *p = (const unsigned char *)path;
	const unsigned char *seg = p;
	size_t total = 0;

	for (;;) {
		if (*p == '/' || *p == '\0') {
			size_t n = (size_t)(p - seg);

			if (n == 0 || n > 255 || (n == 1 && seg[0] == '.') ||
			    (n == 2 && seg[0] == '.' && seg[1] == '.'))
				return false;
			if (*p == '\0')
				return total <= HUB_PATH_MAX;
			seg = ++p;
			total++;
			continue;
		}
		if (*p < 0x20 || *p == 0x7f)
			return false;
		size_t n = utf8_len(p);

		if (n == 0)
			return false;
		p += n;
		total += n;
	}
}

static bool unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~';
}

static char *escape(const char *s, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = malloc(3 * n + 1), *o = out;

	if (!out)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (unreserved(*p) || (keep_slash && *p == '/')) {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

char *hub_escape_segment(const char *s)
{
	return escape(s, false);
}

char *hub_escape_path(const char *s)
{
	return escape(s, true);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int hub_unescape(const char *s, char **out)
{
	char *buf = malloc(strlen(s) + 1), *o = buf;

	*out = NULL;
	if (!buf)
		return -ENOMEM;
	for (const char *p = s; *p; p++) {
		if (*p != '%') {
			*o++ = *p;
			continue;
		}
		int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);

		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			free(buf);
			return -EINVAL;
		}
		*o++ = (char)(hi << 4 | lo);
		p += 2;
	}
	*o = '\0';
	*out = buf;
	return 0;
}

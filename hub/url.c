/*
 * url.c - where a redirect points, and whose origin a URL is.
 *
 * Redirect targets come off the network, so they are resolved with
 * libcurl's URL parser (RFC 3986 reference resolution) rather than by
 * string surgery, and only http and https results are accepted: a Location
 * of file:// or any other scheme is a protocol error, never followed.
 */
#include "hub.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool scheme_ok(CURLU *u)
{
	char *scheme = NULL;
	bool ok;

	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK)
		return false;
	ok = strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0;
	curl_free(scheme);
	return ok;
}

int hub_resolve_location(const char *request_url, const char *location,
			 char **out_url)
{
	CURLU *u = curl_url();
	char *url = NULL;
	int rc = -EPROTO;

	*out_url = NULL;
	if (!u)
		return -ENOMEM;
	if (*location == '\0' ||
	    curl_url_set(u, CURLUPART_URL, request_url, 0) != CURLUE_OK ||
	    curl_url_set(u, CURLUPART_URL, location, 0) != CURLUE_OK ||
	    !scheme_ok(u))
		goto out;
	if (curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK)
		goto out;
	*out_url = strdup(url);
	rc = *out_url ? 0 : -ENOMEM;
out:
	curl_free(url);
	curl_url_cleanup(u);
	return rc;
}

int hub_rebase_url(const char *base, const char *url, char **out_url)
{
	CURLU *u = curl_url();
	char *path = NULL, *query = NULL;
	int rc = -EPROTO, n;

	*out_url = NULL;
	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
		goto out;
	if (curl_url_get(u, CURLUPART_QUERY, &query, 0) != CURLUE_OK)
		query = NULL;
	n = asprintf(out_url, "%s%s%s%s", base, path, query ? "?" : "",
		     query ? query : "");
	if (n < 0) {
		*out_url = NULL;
		rc = -ENOMEM;
		goto out;
	}
	rc = 0;
out:
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(u);
	return rc;
}

/* Scheme, host and port of url; the three strings are curl-allocated. */
struct origin {
	char *scheme, *host, *port;
};

static int origin_get(const char *url, struct origin *o)
{
	CURLU *u = curl_url();
	int rc = -EINVAL;

	memset(o, 0, sizeof(*o));
	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &o->scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &o->host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &o->port, CURLU_DEFAULT_PORT) ==
		    CURLUE_OK)
		rc = 0;
	curl_url_cleanup(u);
	return rc;
}

static void origin_free(struct origin *o)
{
	curl_free(o->scheme);
	curl_free(o->host);
	curl_free(o->port);
}

bool hub_same_origin(const char *a, const char *b)
{
	struct origin oa = { 0 }, ob = { 0 };
	bool same = false;

	if (origin_get(a, &oa) == 0 && origin_get(b, &ob) == 0)
		same = strcasecmp(oa.scheme, ob.scheme) == 0 &&
		       strcasecmp(oa.host, ob.host) == 0 &&
		       strcmp(oa.port, ob.port) == 0;
	origin_free(&oa);
	origin_free(&ob);
	return same;
}

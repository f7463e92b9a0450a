/*
 * fuzz_url.c - Location resolution, the same-origin test and the rebasing
 * of hub/url.c, which decide where a redirect or a next page goes and
 * whether the token goes with it.
 *
 * Input: "REQUEST_URL\nLOCATION"; without a newline, the whole input is
 * the Location of a request to the Hub's resolve URL.
 */
#include "fuzz.h"

#include "hub.h"

#include <errno.h>
#include <strings.h>

#define HUB	"https://huggingface.co"
#define RESOLVE HUB "/gpt2/resolve/main/config.json"

/* ":", ":443", ":0443": the https port, given or left out (RFC 3986). */
static bool default_port(const char *p, size_t n)
{
	unsigned long v = 0;

	if (p[0] != ':')
		return false;
	for (size_t i = 1; i < n; i++) {
		if (p[i] < '0' || p[i] > '9' || v > 65535)
			return false;
		v = v * 10 + (unsigned long)(p[i] - '0');
	}
	return n == 1 || v == 443;
}

/*
 * The token goes only where hub_same_origin(endpoint, url) holds.  For the
 * Hub's endpoint, check that by hand on a URL as libcurl writes it out: an
 * https URL whose authority, past any userinfo, is exactly the Hub's host
 * with no port or the default one.
 */
static void token_only_to_hub(const char *url)
{
	const char *auth, *end, *at, *host;
	size_t n;

	if (!hub_same_origin(HUB, url))
		return;
	FUZZ_CHECK(strncasecmp(url, "https://", 8) == 0);
	auth = url + 8;
	end = auth + strcspn(auth, "/?#");
	at = memrchr(auth, '@', (size_t)(end - auth));
	host = at ? at + 1 : auth;
	n = (size_t)(end - host);
	FUZZ_CHECK(n >= 14 && strncasecmp(host, "huggingface.co", 14) == 0);
	FUZZ_CHECK(n == 14 || default_port(host + 14, n - 14));
}

static void resolve(const char *req, const char *loc)
{
	char *out = (char *)1, *again = NULL;
	int rc = hub_resolve_location(req, loc, &out);

	FUZZ_CHECK(rc == 0 || rc == -EPROTO);
	if (rc < 0) {
		FUZZ_CHECK(out == NULL);
		return;
	}
	FUZZ_CHECK(strncasecmp(out, "http://", 7) == 0 ||
		   strncasecmp(out, "https://", 8) == 0);
	/* The result is absolute: resolving it again changes nothing. */
	FUZZ_CHECK(hub_resolve_location(RESOLVE, out, &again) == 0);
	FUZZ_CHECK(strcmp(again, out) == 0);
	FUZZ_CHECK(hub_same_origin(out, out));
	FUZZ_CHECK(hub_same_origin(out, again));
	token_only_to_hub(out);
	free(again);
	/* A next-page Link put on the endpoint never leaves it. */
	again = (char *)1;
	rc = hub_rebase_url(HUB, out, &again);
	FUZZ_CHECK(rc == 0 || rc == -EPROTO);
	if (rc == 0) {
		FUZZ_CHECK(strncmp(again, HUB "/", sizeof(HUB)) == 0);
		FUZZ_CHECK(hub_same_origin(HUB, again));
	} else {
		FUZZ_CHECK(again == NULL);
	}
	free(again);
	free(out);
}

static void origin(const char *a, const char *b)
{
	bool ab = hub_same_origin(a, b);

	FUZZ_CHECK(ab == hub_same_origin(b, a));
	if (ab) {
		FUZZ_CHECK(hub_same_origin(a, a) && hub_same_origin(b, b));
		FUZZ_CHECK(hub_same_origin(HUB, a) == hub_same_origin(HUB, b));
	}
	/*
	 * libcurl takes "https:/host" and the like; what it makes of a, as
	 * written back out, must be of the same origin and pass the check.
	 */
	if (hub_same_origin(HUB, a)) {
		char *norm = NULL;

		FUZZ_CHECK(hub_resolve_location(RESOLVE, a, &norm) == 0);
		FUZZ_CHECK(hub_same_origin(HUB, norm));
		token_only_to_hub(norm);
		free(norm);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	char *nl = strchr(s, '\n');
	const char *req = RESOLVE, *loc = s;

	if (nl) {
		*nl = '\0';
		req = s;
		loc = nl + 1;
	}
	resolve(req, loc);
	origin(req, loc);
	free(s);
	return 0;
}

/*
 * api.c - the Hub's JSON endpoints: repo info (hub-api.md section 2), the
 * recursive tree listing (3), a namespace's repos (2.5) and whoami (7.3).
 *
 * Every GET here goes through get_json(): redirects are followed only
 * within the endpoint's origin (a renamed repo or a legacy id answers 307
 * with a relative Location), 408/429/5xx and cut connections are retried
 * with backoff, and a 401 is retried once when the token file changed in
 * the meantime.  Listings are paged by Link rel="next"; each page is
 * handed to the callback and freed before the next one is fetched.
 */
#include "hub_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define API_HOPS  5	     /* redirects followed per request */
#define MAX_PAGES (1u << 20) /* a listing longer than this is a loop */

/* A GET in progress: the call and the URL it went to last. */
struct json_get {
	struct hub_call call;
	char *url;
};

/* Make url the next hop's target; the caller checks the origin. */
static int next_hop(struct json_get *g, struct hub_error *err)
{
	char *to = NULL;
	int rc;

	if (!g->call.resp.location) {
		hub_error_proto(err, "HTTP %d without Location",
				g->call.resp.status);
		return -EPROTO;
	}
	rc = hub_resolve_location(g->url, g->call.resp.location, &to);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		hub_error_proto(err, "unusable Location in HTTP %d",
				g->call.resp.status);
		return -EPROTO;
	}
	free(g->url);
	g->url = to;
	return 0;
}

/*
 * One attempt: the request and its redirects, which must stay on the
 * endpoint's origin.  0 when g->call holds the final answer (or the
 * transport failure); a negative errno with err filled otherwise.
 */
static int follow(struct hub_client *c, const char *start, struct json_get *g,
		  struct hub_error *err)
{
	int rc;

	free(g->url);
	g->url = strdup(start);
	if (!g->url)
		return -ENOMEM;
	for (int hop = 0;; hop++) {
		g->call.url = g->url;
		rc = hub_call_perform(c, &g->call);
		if (rc == -ENETDOWN)
			return hub_error_offline(err);
		if (rc < 0 || !hub_is_redirect(g->call.resp.status))
			return rc;
		if (hop == API_HOPS) {
			hub_error_proto(err, "more than %d redirects",
					API_HOPS);
			return -EPROTO;
		}
		rc = next_hop(g, err);
		if (rc < 0)
			return rc;
		if (!hub_same_origin(g->url, c->endpoint)) {
			hub_error_proto(err, "API redirect off the endpoint");
			return -EPROTO;
		}
	}
}

/* The checked URL of the next page, or NULL when this was the last. */
static int next_page(struct hub_client *c, const struct json_get *g,
		     char **next, struct hub_error *err)
{
	char *raw = NULL;
	int rc;

	*next = NULL;
	if (!g->call.resp.link)
		return 0;
	rc = hub_parse_link_next(g->call.resp.link, &raw);
	if (rc == -ENOENT)
		return 0;
	if (rc == 0)
		rc = hub_resolve_location(g->url, raw, next);
	free(raw);
	/*
	 * The cursor in a next-page Link means something only to the Hub
	 * that gave it, yet a Hub may name itself otherwise than the
	 * endpoint we were given (its public name behind a proxy or a
	 * mirror, "localhost" for "127.0.0.1"): such a Link is asked of the
	 * endpoint, path and query as they are.  Nothing, the token least
	 * of all, goes to the origin it names.
	 */
	if (rc == 0 && !hub_same_origin(*next, c->endpoint)) {
		char *own = NULL;

		rc = hub_rebase_url(c->endpoint, *next, &own);
		free(*next);
		*next = own;
	}
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0 || strcmp(*next, g->url) == 0) {
		free(*next);
		*next = NULL;
		hub_error_proto(err, "unusable next-page Link");
		return -EPROTO;
	}
	return 0;
}

/* A 2xx arrived whole: parse it. */
static int parse_body(struct hub_client *c, const struct json_get *g,
		      cJSON **out, struct hub_error *err)
{
	if (g->call.body_overflow) {
		hub_call_error(c, &g->call, err);
		return -EPROTO;
	}
	*out = g->call.body ? hub_json_parse(g->call.body, g->call.body_len)
			    : NULL;
	if (!*out) {
		hub_error_proto(err, "malformed JSON (HTTP %d)",
				g->call.resp.status);
		return -EPROTO;
	}
	return 0;
}

/*
 * GET url as JSON.  On success *out is the document (caller frees with
 * cJSON_Delete) and, when next is not NULL, *next the next page's URL or
 * NULL (caller frees).
 */
static int get_json(struct hub_client *c, const char *url, cJSON **out,
		    char **next, struct hub_error *err)
{
	struct json_get g = { .call = { .json = true } };
	struct hub_backoff b;
	bool token_retried = false;
	int rc;

	hub_backoff_init(&b);
	*out = NULL;
	if (next)
		*next = NULL;
	if (c->offline)
		return hub_error_offline(err);
	for (;;) {
		rc = follow(c, url, &g, err);
		if (rc < 0)
			goto out;
		if (g.call.resp.status >= 200 && g.call.resp.status < 300 &&
		    g.call.cc == CURLE_OK)
			break;
		if (!token_retried && hub_call_token_retry(c, &g.call)) {
			token_retried = true;
			continue;
		}
		if (hub_call_retryable(&g.call) &&
		    hub_backoff_wait(c, &b, &g.call.resp))
			continue;
		hub_call_error(c, &g.call, err);
		rc = g.call.abort_rc == -ENOMEM ? -ENOMEM
		     : g.call.body_overflow	? -EPROTO
						: -EIO;
		goto out;
	}
	rc = parse_body(c, &g, out, err);
	if (rc == 0 && next)
		rc = next_page(c, &g, next, err);
out:
	hub_call_reset(&g.call);
	free(g.url);
	if (rc < 0) {
		cJSON_Delete(*out);
		*out = NULL;
	}
	return rc;
}

int hub_get_json(struct hub_client *c, const char *url, cJSON **out,
		 struct hub_error *err)
{
	return get_json(c, url, out, NULL, err);
}

static struct hub_error *err_or(struct hub_error *err, struct hub_error *tmp)
{
	err = err ? err : tmp;
	memset(err, 0, sizeof(*err));
	return err;
}

static int invalid(struct hub_error *err, const char *what)
{
	hub_error_proto(err, "invalid %s", what);
	return -EINVAL;
}

int hub_repo_info(struct hub_client *c, enum hub_repo_type type, const char *id,
		  const char *rev, struct hub_repo_info *out,
		  struct hub_error *err)
{
	struct hub_error tmp;
	char *url = NULL, *erev = NULL;
	cJSON *doc = NULL;
	int rc;

	err = err_or(err, &tmp);
	memset(out, 0, sizeof(*out));
	if (!hub_repo_id_valid(id))
		return invalid(err, "repo id");
	if (rev && !*rev)
		return invalid(err, "revision");
	if (rev) {
		erev = hub_escape_segment(rev);
		url = erev ? hub_url_printf("%s/api/%s/%s/revision/%s",
					    c->endpoint, hub_type_plural(type),
					    id, erev)
			   : NULL;
	} else {
		url = hub_url_printf("%s/api/%s/%s", c->endpoint,
				     hub_type_plural(type), id);
	}
	rc = url ? get_json(c, url, &doc, NULL, err) : -ENOMEM;
	if (rc == 0 && hub_json_repo_info(doc, out) < 0) {
		hub_error_proto(err, "repo info without a valid id and sha");
		rc = -EPROTO;
	}
	cJSON_Delete(doc);
	free(url);
	free(erev);
	return rc;
}

/* Each page of a listing: called with the page's JSON array. */
typedef int (*page_fn)(void *ctx, const cJSON *page);

/* GET url and every next page, handing each to fn, then freeing it. */
static int list_pages(struct hub_client *c, char *url, page_fn fn, void *ctx,
		      struct hub_error *err)
{
	unsigned pages = 0;
	int rc = 0;

	while (url && rc == 0) {
		cJSON *page = NULL;
		char *next = NULL;

		if (++pages > MAX_PAGES) {
			hub_error_proto(err, "more than %u pages", MAX_PAGES);
			rc = -EPROTO;
			break;
		}
		rc = get_json(c, url, &page, &next, err);
		if (rc == 0 && !cJSON_IsArray(page)) {
			hub_error_proto(err, "listing page is not an array");
			rc = -EPROTO;
		}
		if (rc == 0)
			rc = fn(ctx, page);
		cJSON_Delete(page);
		free(url);
		url = next;
	}
	free(url);
	return rc;
}

struct tree_ctx {
	hub_entry_fn cb;
	void *arg;
	unsigned skipped;
};

static int tree_page(void *ctx, const cJSON *page)
{
	struct tree_ctx *t = ctx;
	const cJSON *item;
	struct hub_entry e;
	int rc;

	cJSON_ArrayForEach(item, page)
	{
		if (hub_json_tree_entry(item, &e) < 0) {
			t->skipped++;
			continue;
		}
		rc = t->cb(t->arg, &e);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int hub_tree_list(struct hub_client *c, enum hub_repo_type type, const char *id,
		  const char *commit, hub_entry_fn cb, void *arg,
		  unsigned *skipped, struct hub_error *err)
{
	struct tree_ctx t = { .cb = cb, .arg = arg };
	struct hub_error tmp;
	char *url;
	int rc;

	err = err_or(err, &tmp);
	if (skipped)
		*skipped = 0;
	if (!hub_repo_id_valid(id))
		return invalid(err, "repo id");
	if (!hub_is_commit_id(commit))
		return invalid(err, "commit id");
	url = hub_url_printf("%s/api/%s/%s/tree/%s?recursive=true&expand=false",
			     c->endpoint, hub_type_plural(type), id, commit);
	if (!url)
		return -ENOMEM;
	rc = list_pages(c, url, tree_page, &t, err);
	if (skipped)
		*skipped = t.skipped;
	return rc;
}

struct author_ctx {
	hub_name_fn cb;
	void *arg;
};

static int author_page(void *ctx, const cJSON *page)
{
	struct author_ctx *a = ctx;
	const cJSON *item;
	int rc;

	cJSON_ArrayForEach(item, page)
	{
		const char *id = hub_json_listed_id(item);

		if (!id)
			continue;
		rc = a->cb(a->arg, id);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int hub_list_author(struct hub_client *c, enum hub_repo_type type,
		    const char *owner, hub_name_fn cb, void *arg,
		    struct hub_error *err)
{
	struct author_ctx a = { .cb = cb, .arg = arg };
	struct hub_error tmp;
	char *url, *eowner;

	err = err_or(err, &tmp);
	if (strchr(owner, '/') || !hub_repo_id_valid(owner))
		return invalid(err, "owner");
	eowner = hub_escape_segment(owner);
	url = eowner ? hub_url_printf("%s/api/%s?author=%s&limit=500",
				      c->endpoint, hub_type_plural(type),
				      eowner)
		     : NULL;
	free(eowner);
	if (!url)
		return -ENOMEM;
	return list_pages(c, url, author_page, &a, err);
}

int hub_owner_exists(struct hub_client *c, const char *owner, bool *known,
		     struct hub_error *err)
{
	static const char *const kinds[] = { "users", "organizations" };
	struct hub_error tmp;
	char *url, *eowner;
	cJSON *doc = NULL;
	int rc = 0;

	err = err_or(err, &tmp);
	*known = false;
	if (strchr(owner, '/') || !hub_repo_id_valid(owner))
		return invalid(err, "owner");
	eowner = hub_escape_segment(owner);
	if (!eowner)
		return -ENOMEM;
	for (size_t i = 0; i < 2 && !*known; i++) {
		url = hub_url_printf("%s/api/%s/%s/overview", c->endpoint,
				     kinds[i], eowner);
		rc = url ? get_json(c, url, &doc, NULL, err) : -ENOMEM;
		free(url);
		cJSON_Delete(doc);
		doc = NULL;
		if (rc == 0)
			*known = true;
		else if (hub_error_errno(err) == ENOENT && err->status)
			rc = 0; /* not this kind of owner */
		else
			break;
	}
	free(eowner);
	if (rc == 0)
		memset(err, 0, sizeof(*err));
	return rc;
}

int hub_whoami(struct hub_client *c, struct hub_whoami *out,
	       struct hub_error *err)
{
	struct hub_error tmp;
	char *url;
	cJSON *doc = NULL;
	int rc;

	err = err_or(err, &tmp);
	memset(out, 0, sizeof(*out));
	url = hub_url_printf("%s/api/whoami-v2", c->endpoint);
	rc = url ? get_json(c, url, &doc, NULL, err) : -ENOMEM;
	if (rc == 0 && hub_json_whoami(doc, out) < 0) {
		hub_error_proto(err, "whoami without a valid name");
		rc = -EPROTO;
	}
	cJSON_Delete(doc);
	free(url);
	return rc;
}

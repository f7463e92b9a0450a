/*
 * sync_fetch.c - test support: one range of a file, synchronously, through
 * the resolve redirects, with the parts of hub/transfer.c the transfer
 * engine uses (hub_int.h).  hubfs reads through the transfer engine; the
 * stack test of the client drives the redirect, retry and token rules
 * with this (stack.h).
 */
#include "hub_int.h"
#include "stack.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FETCH_HOPS 10

/*
 * One attempt: from the remembered target (or the resolve URL) through
 * the redirects to one response, delivering what it carries.
 */
static int attempt(struct hub_range *r, const char *resolve_url,
		   struct hub_call *call, struct hub_error *err)
{
	struct hub_client *c = r->c;
	bool reresolved = false;
	char range[48], *url = NULL;
	int rc, hops = 0;

	if (hub_loc_get(c, resolve_url, &url) < 0)
		url = strdup(resolve_url);
	for (;;) {
		if (!url)
			return -ENOMEM;
		hub_range_spec(r, range, sizeof(range));
		call->url = url;
		call->range =
			r->next > 0 || r->end != HUB_NO_END ? range : NULL;
		hub_range_response_reset(r);
		rc = hub_call_perform(c, call);
		if (rc == -ENETDOWN)
			rc = hub_error_offline(err);
		if (rc == 0)
			rc = hub_range_check_headers(r, call, err);
		if (rc < 0)
			break;
		if (hub_is_redirect(call->resp.status)) {
			if (++hops > FETCH_HOPS) {
				hub_error_proto(err, "redirect loop");
				rc = -EPROTO;
				break;
			}
			rc = hub_redirect_target(&url, call, err);
			if (rc < 0)
				break;
			continue;
		}
		if (!reresolved && hub_stale_target(call, url, resolve_url)) {
			reresolved = true;
			hub_loc_drop(c, resolve_url);
			free(url);
			url = strdup(resolve_url);
			continue;
		}
		rc = hub_range_judge(r, call, err);
		/* A target that served bytes is worth remembering. */
		if (r->started && rc != -EPROTO && !r->wrong_file &&
		    strcmp(url, resolve_url) != 0)
			hub_loc_put(c, resolve_url, url);
		break;
	}
	free(url);
	return rc;
}

static int fetch_args(const char *id, const char *commit, const char *path,
		      uint64_t offset, uint64_t length, struct hub_error *err)
{
	const char *bad = !hub_repo_id_valid(id)	 ? "repo id"
			  : !hub_is_commit_id(commit)	 ? "commit id"
			  : !hub_path_safe(path)	 ? "path"
			  : length > UINT64_MAX - offset ? "range"
							 : NULL;

	if (!bad)
		return 0;
	hub_error_proto(err, "invalid %s", bad);
	return -EINVAL;
}

int stack_fetch(struct hub_client *c, enum hub_repo_type type, const char *id,
		const char *commit, const char *path, uint64_t offset,
		uint64_t length, hub_data_fn cb, void *arg,
		struct hub_error *err)
{
	struct hub_range r = { .c = c,
			       .commit = commit,
			       .cb = cb,
			       .arg = arg,
			       .size = HUB_NO_END };
	struct hub_call call = { .on_body = hub_range_on_body, .arg = &r };
	struct hub_backoff b;
	struct hub_error tmp;
	char *resolve_url;
	int rc;

	err = err ? err : &tmp;
	memset(err, 0, sizeof(*err));
	rc = fetch_args(id, commit, path, offset, length, err);
	if (rc < 0)
		return rc;
	if (c->offline)
		return hub_error_offline(err);
	r.next = offset;
	r.end = length ? offset + length : HUB_NO_END;
	hub_backoff_init(&b);
	resolve_url = hub_resolve_url(c, type, id, commit, path);
	if (!resolve_url)
		return -ENOMEM;
	for (;;) {
		uint64_t before = r.next;

		rc = attempt(&r, resolve_url, &call, err);
		if (r.cb_rc) {
			rc = r.cb_rc; /* the callback's own value */
			break;
		}
		if (r.next > before) /* progress: a fresh retry budget */
			hub_backoff_init(&b);
		if (rc == HUB_AGAIN)
			continue;
		if (rc == HUB_RETRY && hub_backoff_wait(c, &b, &call.resp))
			continue;
		break;
	}
	if (rc == HUB_RETRY)
		rc = -EIO; /* err holds the last failure */
	if (rc == 0)
		memset(err, 0, sizeof(*err));
	hub_call_reset(&call);
	free(resolve_url);
	return rc;
}

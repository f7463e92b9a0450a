/*
 * fuzz_response.c - one HTTP response to a ranged read, as libcurl hands
 * it over: header lines into the client's header capture (client.c), then
 * the checks and the body handling of transfer.c (hub_range_*), and the
 * error a failed response becomes.
 *
 * Input: four parameter bytes, then header lines ("HTTP/1.1 206 ...\r\n",
 * "Content-Range: ...\r\n", ...) up to an empty line, then the body.
 *   byte 0  the first offset wanted (0-255)
 *   byte 1  how many bytes are wanted (0: to the end of the file)
 *   byte 2  bit 0: the file's size is known (the transfer engine's case),
 *           then it is the end wanted plus the other bits
 *   byte 3  bit 0: an etag is expected; bits 1-3: body chunk size - 1;
 *           bit 4: the callback cancels after its first delivery
 *
 * Whatever the response, the callback must see only bytes it asked for,
 * in order, at their true offsets; a response judged complete must have
 * delivered the whole range; "go on" must mean progress was made; and no
 * error message may carry the token or a control character.
 */
#include "fuzz.h"

#include "hub_int.h"

#include <errno.h>
#include <strings.h>

#define HUB	"https://huggingface.co"
#define COMMIT	"0123456789abcdef0123456789abcdef01234567"
#define ETAG	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define TOKEN	"hf_fuzzTokenDoNotLeak0123456789"
#define RESOLVE HUB "/gpt2/resolve/" COMMIT "/model.bin"
#define CDN	"https://cdn.example/signed/model.bin"

struct sink {
	const char *body; /* the response body, as sent */
	size_t body_len;
	uint64_t base;	 /* file offset of the body's first byte */
	uint64_t expect; /* the offset the next delivery must start at */
	uint64_t end;	 /* one past the last byte wanted */
	bool cancel;	 /* return non-zero after the first delivery */
};

static int deliver(void *arg, uint64_t offset, const void *buf, size_t n)
{
	struct sink *s = arg;

	FUZZ_CHECK(n > 0);
	FUZZ_CHECK(offset == s->expect);
	FUZZ_CHECK(s->end == HUB_NO_END || n <= s->end - offset);
	/* The bytes are the body's at that offset of the file. */
	FUZZ_CHECK(offset >= s->base && offset - s->base <= s->body_len &&
		   n <= s->body_len - (offset - s->base));
	FUZZ_CHECK(memcmp(buf, s->body + (offset - s->base), n) == 0);
	if (s->cancel)
		return -ECANCELED; /* then the bytes do not count as delivered
				    */
	s->expect += n;
	return 0;
}

static struct hub_client *client(void)
{
	static struct hub_client *c;
	struct hub_config cfg = { .endpoint = HUB, .offline = true };

	if (!c) {
		setenv("HF_TOKEN", TOKEN, 1);
		FUZZ_CHECK(hub_client_new(&c, &cfg) == 0);
	}
	return c;
}

static void check_resp(const struct hub_resp *r)
{
#define TERMINATED(f) FUZZ_CHECK(strnlen(r->f, sizeof(r->f)) < sizeof(r->f))
	FUZZ_CHECK(r->status == 0 || (r->status >= 100 && r->status <= 599));
	TERMINATED(content_range);
	TERMINATED(error_code);
	TERMINATED(error_message);
	TERMINATED(repo_commit);
	TERMINATED(linked_etag);
	TERMINATED(linked_size);
	TERMINATED(etag);
	TERMINATED(ratelimit);
	TERMINATED(ratelimit_policy);
	TERMINATED(retry_after);
#undef TERMINATED
	FUZZ_CHECK(!r->location || strlen(r->location) < (64u << 10));
	FUZZ_CHECK(!r->link || strlen(r->link) < (64u << 10));
}

static void check_error(const struct hub_error *err)
{
	FUZZ_CHECK(strnlen(err->code, sizeof(err->code)) < sizeof(err->code));
	FUZZ_CHECK(strnlen(err->message, sizeof(err->message)) <
		   sizeof(err->message));
	FUZZ_CHECK(!strstr(err->code, TOKEN) && !strstr(err->message, TOKEN));
	for (const char *p = err->message; *p; p++)
		FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
	for (const char *p = err->code; *p; p++)
		FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
}

/*
 * The last Content-Range value sent, read here by hand: what the client
 * keeps of it must be refused or mean the same (a value cut short could
 * name another range or size).
 */
static char *content_range;
static size_t content_range_len;

static void note_content_range(const char *p, size_t n)
{
	static const char name[] = "content-range";
	const char *colon = memchr(p, ':', n);
	size_t k;

	if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		free(content_range); /* a new response */
		content_range = NULL;
		return;
	}
	if (!colon)
		return;
	/* The client, like libcurl, takes "Content-Range :" too. */
	for (k = (size_t)(colon - p); k > 0 && strchr(" \t", p[k - 1]); k--)
		;
	if (k != sizeof(name) - 1 || strncasecmp(p, name, k) != 0)
		return;
	n -= (size_t)(colon + 1 - p);
	p = colon + 1;
	while (n > 0 && (*p == ' ' || *p == '\t'))
		p++, n--;
	while (n > 0 && strchr("\r\n \t", p[n - 1]))
		n--;
	free(content_range);
	content_range = malloc(n + 1);
	FUZZ_CHECK(content_range);
	memcpy(content_range, p, n);
	content_range[n] = '\0';
	content_range_len = n;
}

static void check_content_range(const struct hub_resp *r)
{
	struct hub_content_range sent, kept;
	int rs, rk;

	if (!content_range)
		return;
	/* A value with a NUL in it is no Content-Range. */
	rs = strlen(content_range) < content_range_len
		     ? -EINVAL
		     : hub_parse_content_range(content_range, &sent);
	rk = hub_parse_content_range(r->content_range, &kept);
	/* Refused, or the very range sent: never another one. */
	FUZZ_CHECK(rk < 0 ||
		   (rs == 0 && memcmp(&sent, &kept, sizeof(sent)) == 0));
}

/* Feed the header lines; returns where the body starts. */
static const char *headers(struct hub_call *call, char *p, const char *end)
{
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl + 1 - p) : (size_t)(end - p);

		bool blank =
			n <= 2 && (p[0] == '\n' || (p[0] == '\r' && n == 2));

		note_content_range(p, n);
		FUZZ_CHECK(hub_call_on_header(p, 1, n, call) == n);
		p += n;
		/* The end of the headers, unless of an interim 1xx response. */
		if (blank &&
		    (call->resp.status < 100 || call->resp.status > 199))
			return p;
	}
	return end;
}

static void redirect(struct hub_call *call)
{
	struct hub_error err;
	char *url = strdup(RESOLVE);
	int rc;

	FUZZ_CHECK(url);
	rc = hub_redirect_target(&url, call, &err);
	FUZZ_CHECK(rc == 0 || rc == -EPROTO);
	if (rc == 0)
		FUZZ_CHECK(strncmp(url, "http://", 7) == 0 ||
			   strncmp(url, "https://", 8) == 0);
	else
		check_error(&err);
	free(url);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hub_range r = { .c = client(), .commit = COMMIT, .cb = deliver };
	struct hub_call call = { .on_body = hub_range_on_body, .arg = &r };
	struct sink s = { 0 };
	struct hub_error err;
	const char *body;
	char *buf, spec[48];
	size_t chunk;
	int rc = 0, judged;

	if (size < 4)
		return 0;
	memset(&err, 0, sizeof(err));
	r.next = data[0];
	r.end = data[1] ? r.next + data[1] : HUB_NO_END;
	r.size = (data[2] & 1) && data[1] ? r.end + (data[2] >> 1) : HUB_NO_END;
	r.etag = data[3] & 1 ? ETAG : NULL;
	chunk = ((data[3] >> 1) & 7) + 1;
	s.cancel = data[3] & 16;
	r.arg = &s;
	s.expect = r.next;
	s.end = r.end;

	buf = malloc(size - 4 + 1);
	FUZZ_CHECK(buf);
	memcpy(buf, data + 4, size - 4);
	call.url = CDN;
	body = headers(&call, buf, buf + size - 4);
	check_resp(&call.resp);
	check_content_range(&call.resp);
	free(content_range);
	content_range = NULL;
	s.body = body;
	s.body_len = (size_t)(buf + size - 4 - body);
	/*
	 * A 206's body starts where its Content-Range says, which may be
	 * before the offset wanted (a wider answer is trimmed).
	 */
	s.base = 0;
	if (call.resp.status == 206) {
		struct hub_content_range cr;

		s.base = r.next;
		if (hub_parse_content_range(call.resp.content_range, &cr) ==
			    0 &&
		    !cr.unsatisfied)
			s.base = cr.first;
	}

	hub_range_spec(&r, spec, sizeof(spec));
	FUZZ_CHECK(strlen(spec) > 1 && strchr(spec, '-'));

	if (hub_range_check_headers(&r, &call, &err) < 0) {
		check_error(&err);
		goto out;
	}
	FUZZ_CHECK(!call.resp.repo_commit[0] ||
		   strcmp(call.resp.repo_commit, COMMIT) == 0);
	if (hub_is_redirect(call.resp.status)) {
		redirect(&call);
		goto out;
	}
	hub_range_response_reset(&r);
	if (call.resp.status >= 200 && call.resp.status < 300) {
		for (size_t off = 0; off < s.body_len && rc == 0; off += chunk)
			rc = hub_range_on_body(&call, body + off,
					       s.body_len - off < chunk
						       ? s.body_len - off
						       : chunk);
		call.cc = rc == 0 ? CURLE_OK : CURLE_WRITE_ERROR;
	} else if (s.body_len) {
		call.body = malloc(s.body_len + 1);
		FUZZ_CHECK(call.body);
		memcpy(call.body, body, s.body_len);
		call.body[s.body_len] = '\0';
		call.body_len = call.body_cap = s.body_len;
	}
	judged = hub_range_judge(&r, &call, &err);
	FUZZ_CHECK(judged == 0 || judged == HUB_AGAIN || judged == HUB_RETRY ||
		   judged == -EPROTO || judged == -EIO || judged == -ECANCELED);
	FUZZ_CHECK(r.next == s.expect);
	FUZZ_CHECK(r.end == HUB_NO_END || r.next <= r.end);
	if (call.resp.status >= 200 && call.resp.status < 300) {
		/* A 2xx judged complete delivered the whole range, when the
		   file's size is known (a 416 is left to the caller). */
		if (judged == 0 && r.size != HUB_NO_END)
			FUZZ_CHECK(r.next == r.end);
		/* "Go on at once" only after progress: no endless loop. */
		if (judged == HUB_AGAIN)
			FUZZ_CHECK(r.next > data[0]);
	}
	if (judged == -ECANCELED)
		FUZZ_CHECK(s.cancel && r.cb_rc == -ECANCELED);
	if ((judged < 0 && judged != -ECANCELED) || judged == HUB_RETRY)
		check_error(&err); /* -ECANCELED leaves err as it was */
	FUZZ_CHECK(hub_stale_target(&call, CDN, RESOLVE) ==
		   (call.resp.status == 403 || call.resp.status == 404 ||
		    call.resp.status == 410));
	FUZZ_CHECK(!hub_stale_target(&call, RESOLVE, RESOLVE));
	(void)hub_call_retryable(&call);
out:
	hub_call_reset(&call);
	free(buf);
	return 0;
}

/*
 * auth.c - where the token and the endpoint come from (hub-api.md sections
 * 7.2 and 11), and keeping the token current while a client lives.
 *
 * The token is a secret: it is copied only into the buffer that builds one
 * request's Authorization header, never logged, never put in an error.  The
 * token file is only ever read.  It is stat()ed before each request and
 * re-read when its device, inode, size or mtime changed, and after a 401, so
 * "hf auth login" while mounted takes effect at once.
 */
#include "hub_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_ENDPOINT "https://huggingface.co"

/* ---- The endpoint ------------------------------------------------------ */

int hub_default_endpoint(char *out, size_t size)
{
	const char *env = getenv("HF_ENDPOINT");
	size_t n;

	if (!env || !*env)
		env = DEFAULT_ENDPOINT;
	n = strlen(env);
	while (n > 0 && env[n - 1] == '/')
		n--;
	if (n == 0 || n >= size) {
		if (size)
			out[0] = '\0'; /* refused by hub_client_new */
		return -EINVAL;
	}
	memcpy(out, env, n);
	out[n] = '\0';
	return 0;
}

/* ---- Paths: ~ and $VAR expansion as Python's expanduser(expandvars()) -- */

static int put(char *out, size_t size, size_t *pos, const char *s, size_t n)
{
	if (*pos + n >= size)
		return -ENAMETOOLONG;
	memcpy(out + *pos, s, n);
	*pos += n;
	out[*pos] = '\0';
	return 0;
}

static bool var_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_';
}

/*
 * One $NAME or ${NAME} at *pp (which points at '$'); an unset variable is
 * kept as written, as Python does.
 */
static int expand_var(const char **pp, char *out, size_t size, size_t *pos)
{
	const char *start = *pp, *p = start + 1, *name, *end;
	bool braced = *p == '{';
	char var[256];
	const char *val;
	size_t n;

	if (braced)
		p++;
	name = p;
	while (var_char(*p))
		p++;
	n = (size_t)(p - name);
	end = braced ? (*p == '}' ? p + 1 : NULL) : p;
	if (n == 0 || n >= sizeof(var) || !end) {
		*pp = start + 1;
		return put(out, size, pos, "$", 1);
	}
	memcpy(var, name, n);
	var[n] = '\0';
	val = getenv(var);
	*pp = end;
	if (!val)
		return put(out, size, pos, start, (size_t)(end - start));
	return put(out, size, pos, val, strlen(val));
}

static const char *home_dir(char *buf, size_t size)
{
	const char *home = getenv("HOME");
	struct passwd pw, *res = NULL;

	if (home && *home)
		return home;
	if (getpwuid_r(getuid(), &pw, buf, size, &res) == 0 && res &&
	    res->pw_dir)
		return res->pw_dir;
	return NULL;
}

static int expand_path(const char *in, char *out, size_t size)
{
	char vars[4096], pwbuf[1024];
	const char *p = in, *home;
	size_t pos = 0;
	int rc = 0;

	vars[0] = out[0] = '\0';
	while (*p && rc == 0) {
		const char *d = strchr(p, '$');
		size_t n = d ? (size_t)(d - p) : strlen(p);

		rc = put(vars, sizeof(vars), &pos, p, n);
		p += n;
		if (rc == 0 && *p == '$')
			rc = expand_var(&p, vars, sizeof(vars), &pos);
	}
	if (rc < 0)
		return rc;
	pos = 0;
	if (vars[0] == '~' && (vars[1] == '/' || vars[1] == '\0')) {
		home = home_dir(pwbuf, sizeof(pwbuf));
		if (home) {
			rc = put(out, size, &pos, home, strlen(home));
			if (rc == 0)
				rc = put(out, size, &pos, vars + 1,
					 strlen(vars + 1));
			return rc;
		}
	}
	if (vars[0] != '/' && vars[0] != '\0') {
		/* Relative to where hubfs started, not to a daemon's "/". */
		char cwd[4096];

		if (getcwd(cwd, sizeof(cwd)) &&
		    (rc = put(out, size, &pos, cwd, strlen(cwd))) == 0)
			rc = put(out, size, &pos, "/", 1);
		if (rc < 0)
			return rc;
	}
	return put(out, size, &pos, vars, strlen(vars));
}

/* ---- Where the token comes from ---------------------------------------- */

/* Python's cleaning: drop every CR and LF, then surrounding whitespace. */
static size_t clean_token(const char *in, size_t n, char *out, size_t size)
{
	size_t len = 0, start = 0;

	for (size_t i = 0; i < n && len + 1 < size; i++)
		if (in[i] != '\r' && in[i] != '\n')
			out[len++] = in[i];
	out[len] = '\0';
	while (len > 0 && strchr(" \t\v\f", out[len - 1]))
		out[--len] = '\0';
	while (start < len && strchr(" \t\v\f", out[start]))
		start++;
	memmove(out, out + start, len - start + 1);
	return len - start;
}

static bool env_token_set(const char *name)
{
	const char *v = getenv(name);
	char tmp[HUB_TOKEN_MAX + 1];
	bool set;

	if (!v)
		return false;
	set = clean_token(v, strlen(v), tmp, sizeof(tmp)) > 0;
	explicit_bzero(tmp, sizeof(tmp));
	return set;
}

static void set_file(struct hub_token_source *out, const char *path,
		     const char *suffix)
{
	size_t pos = 0;

	out->kind = HUB_TOKEN_FILE;
	out->where[0] = '\0';
	if (expand_path(path, out->where, sizeof(out->where)) < 0 ||
	    (suffix && (pos = strlen(out->where),
			put(out->where, sizeof(out->where), &pos, suffix,
			    strlen(suffix)) < 0))) {
		out->kind = HUB_TOKEN_NONE;
		out->where[0] = '\0';
	}
}

void hub_token_source_find(struct hub_token_source *out,
			   const char *token_file_flag)
{
	const char *v;

	memset(out, 0, sizeof(*out));
	if (token_file_flag && *token_file_flag) {
		char cwd[4096] = "";
		size_t pos = 0;

		/* Taken as given (the shell expanded it), but made absolute. */
		out->kind = HUB_TOKEN_FILE;
		if (token_file_flag[0] != '/' &&
		    (!getcwd(cwd, sizeof(cwd)) ||
		     put(out->where, sizeof(out->where), &pos, cwd,
			 strlen(cwd)) < 0 ||
		     put(out->where, sizeof(out->where), &pos, "/", 1) < 0))
			out->kind = HUB_TOKEN_NONE;
		if (put(out->where, sizeof(out->where), &pos, token_file_flag,
			strlen(token_file_flag)) < 0)
			out->kind = HUB_TOKEN_NONE;
		if (out->kind == HUB_TOKEN_NONE)
			out->where[0] = '\0';
		return;
	}
	v = env_token_set("HF_TOKEN")		      ? "HF_TOKEN"
	    : env_token_set("HUGGING_FACE_HUB_TOKEN") ? "HUGGING_FACE_HUB_TOKEN"
						      : NULL;
	if (v) {
		out->kind = HUB_TOKEN_ENV;
		memcpy(out->where, v, strlen(v) + 1);
		return;
	}
	if ((v = getenv("HF_TOKEN_PATH")) && *v)
		set_file(out, v, NULL);
	else if ((v = getenv("HF_HOME")) && *v)
		set_file(out, v, "/token");
	else if ((v = getenv("XDG_CACHE_HOME")) && *v)
		set_file(out, v, "/huggingface/token");
	else
		set_file(out, "~/.cache/huggingface/token", NULL);
}

/* ---- The token of a client --------------------------------------------- */

/* Visible ASCII only: anything else could not go into a header. */
static bool token_usable(const char *tok, size_t n)
{
	if (n == 0 || n > HUB_TOKEN_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)tok[i] < 0x21 ||
		    (unsigned char)tok[i] > 0x7e)
			return false;
	return true;
}

static void token_wipe(char *tok)
{
	if (tok) {
		explicit_bzero(tok, strlen(tok));
		free(tok);
	}
}

/* Replace the value (lock held); true when it changed. */
static bool token_set(struct hub_token *t, const char *tok, size_t n)
{
	char *v = NULL;

	if (token_usable(tok, n))
		v = strndup(tok, n);
	if ((!v && !t->value) || (v && t->value && strcmp(v, t->value) == 0)) {
		token_wipe(v);
		return false;
	}
	token_wipe(t->value);
	t->value = v;
	t->changes++;
	return true;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	       a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Read the token file (lock held); true when the token changed. */
static bool token_read_file(struct hub_token *t)
{
	char raw[HUB_TOKEN_MAX + 64], tok[sizeof(raw)] = "";
	int fd = open(t->src.where,
		      O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	size_t len = 0, n = 0;
	bool changed;

	t->have_stat = false;
	if (fd < 0)
		return token_set(t, "", 0);
	if (fstat(fd, &t->st) == 0 && S_ISREG(t->st.st_mode)) {
		t->have_stat = true;
		while (len < sizeof(raw)) {
			ssize_t r = read(fd, raw + len, sizeof(raw) - len);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			len += (size_t)r;
		}
		if (len < sizeof(raw)) /* a longer file is no token */
			n = clean_token(raw, len, tok, sizeof(tok));
	}
	close(fd);
	changed = token_set(t, tok, n);
	explicit_bzero(raw, sizeof(raw));
	explicit_bzero(tok, sizeof(tok));
	return changed;
}

int hub_token_init(struct hub_token *t, const char *token_file_flag)
{
	memset(t, 0, sizeof(*t));
	if (pthread_mutex_init(&t->lock, NULL) != 0)
		return -ENOMEM;
	hub_token_source_find(&t->src, token_file_flag);
	if (t->src.kind == HUB_TOKEN_ENV) {
		const char *v = getenv(t->src.where);
		char tok[HUB_TOKEN_MAX + 1];
		size_t n = v ? clean_token(v, strlen(v), tok, sizeof(tok)) : 0;

		token_set(t, tok, n);
		explicit_bzero(tok, sizeof(tok));
	} else if (t->src.kind == HUB_TOKEN_FILE) {
		token_read_file(t);
	}
	return 0;
}

void hub_token_destroy(struct hub_token *t)
{
	token_wipe(t->value);
	t->value = NULL;
	pthread_mutex_destroy(&t->lock);
}

bool hub_token_refresh(struct hub_token *t, bool force)
{
	struct stat st;
	bool changed = false;

	if (t->src.kind != HUB_TOKEN_FILE)
		return false;
	pthread_mutex_lock(&t->lock);
	if (force)
		changed = token_read_file(t);
	else if (stat(t->src.where, &st) != 0)
		changed = t->have_stat && token_read_file(t);
	else if (!t->have_stat || !same_file(&st, &t->st))
		changed = token_read_file(t);
	pthread_mutex_unlock(&t->lock);
	return changed;
}

size_t hub_token_copy(struct hub_token *t, char *buf, size_t size)
{
	size_t n = 0;

	pthread_mutex_lock(&t->lock);
	if (t->value && strlen(t->value) < size) {
		n = strlen(t->value);
		memcpy(buf, t->value, n + 1);
	}
	pthread_mutex_unlock(&t->lock);
	if (n == 0 && size > 0)
		buf[0] = '\0';
	return n;
}

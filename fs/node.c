/*
 * node.c - the table of FUSE nodes.
 *
 * Two chained hash indexes over the same nodes: by node id, for every
 * request, and by (parent id, name), so that looking a name up again
 * reuses its node and counts one more lookup, as the kernel expects.
 * Node ids come from a counter and are never reused; a node is freed when
 * the kernel forgets its last lookup.
 */
#include "front.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define INITIAL_BUCKETS 1024

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

/* FNV-1a over a, a NUL, b: st_ino for (commit, path) and the name key. */
uint64_t ino_hash(const char *a, const char *b)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (const unsigned char *p = (const unsigned char *)a; *p; p++)
		h = (h ^ *p) * 0x100000001b3ULL;
	h = (h ^ 0) * 0x100000001b3ULL;
	for (const unsigned char *p = (const unsigned char *)b; *p; p++)
		h = (h ^ *p) * 0x100000001b3ULL;
	h = mix(h);
	return h > FUSE_ROOT_ID ? h : h + 2; /* 1 is the root's */
}

static size_t id_bucket(const struct node_table *t, uint64_t id)
{
	return mix(id) & (t->nbuckets - 1);
}

static size_t name_bucket(const struct node_table *t, uint64_t parent,
			  const char *name)
{
	return mix(parent ^ ino_hash(name, "")) & (t->nbuckets - 1);
}

int node_table_init(struct node_table *t)
{
	memset(t, 0, sizeof(*t));
	t->nbuckets = INITIAL_BUCKETS;
	t->by_id = calloc(t->nbuckets, sizeof(*t->by_id));
	t->by_name = calloc(t->nbuckets, sizeof(*t->by_name));
	if (!t->by_id || !t->by_name) {
		free(t->by_id);
		free(t->by_name);
		return -ENOMEM;
	}
	t->next_id = FUSE_ROOT_ID + 1;
	pthread_mutex_init(&t->lock, NULL);
	return 0;
}

void node_table_destroy(struct node_table *t)
{
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct node *n = t->by_id[i], *next;

		for (; n; n = next) {
			next = n->next_id;
			node_free(n);
		}
	}
	free(t->by_id);
	free(t->by_name);
	pthread_mutex_destroy(&t->lock);
}

struct node *node_alloc(enum node_kind kind)
{
	struct node *n = calloc(1, sizeof(*n));

	if (n)
		n->kind = kind;
	return n;
}

void node_free(struct node *n)
{
	if (!n)
		return;
	free(n->name);
	free(n->owner);
	free(n->repo_id);
	free(n->path);
	free(n->target);
	free(n->vpath);
	free(n->text);
	free(n);
}

/* Double both indexes when they get crowded; called with the lock held. */
static void grow(struct node_table *t)
{
	size_t old = t->nbuckets, size = old * 2;
	struct node **by_id = calloc(size, sizeof(*by_id));
	struct node **by_name = calloc(size, sizeof(*by_name));

	if (!by_id || !by_name) { /* stay as we are: slower, still right */
		free(by_id);
		free(by_name);
		return;
	}
	t->nbuckets = size;
	for (size_t i = 0; i < old; i++) {
		struct node *n, *next;

		for (n = t->by_id[i]; n; n = next) {
			size_t b = id_bucket(t, n->id);

			next = n->next_id;
			n->next_id = by_id[b];
			by_id[b] = n;
		}
		for (n = t->by_name[i]; n; n = next) {
			size_t b = name_bucket(t, n->parent, n->name);

			next = n->next_name;
			n->next_name = by_name[b];
			by_name[b] = n;
		}
	}
	free(t->by_id);
	free(t->by_name);
	t->by_id = by_id;
	t->by_name = by_name;
}

static struct node *find_locked(struct node_table *t, uint64_t parent,
				const char *name)
{
	struct node *n = t->by_name[name_bucket(t, parent, name)];

	for (; n; n = n->next_name)
		if (n->parent == parent && strcmp(n->name, name) == 0)
			return n;
	return NULL;
}

static void unlink_name(struct node_table *t, struct node *n)
{
	struct node **pp = &t->by_name[name_bucket(t, n->parent, n->name)];

	for (; *pp; pp = &(*pp)->next_name) {
		if (*pp == n) {
			*pp = n->next_name;
			n->named = false;
			return;
		}
	}
}

struct node *node_get(struct node_table *t, uint64_t id)
{
	struct node *n;

	pthread_mutex_lock(&t->lock);
	for (n = t->by_id[id_bucket(t, id)]; n; n = n->next_id)
		if (n->id == id)
			break;
	pthread_mutex_unlock(&t->lock);
	return n;
}

/* Same identity: a lookup may reuse the old node for the new one. */
static bool same_node(const struct node *a, const struct node *b)
{
	return a->kind == b->kind && a->ino == b->ino &&
	       strcmp(a->commit, b->commit) == 0 &&
	       (a->kind != NODE_LINK || strcmp(a->target, b->target) == 0);
}

struct node *node_publish(struct node_table *t, struct node *n, uint64_t parent,
			  const char *name)
{
	struct node *old;

	pthread_mutex_lock(&t->lock);
	old = find_locked(t, parent, name);
	if (old && same_node(old, n)) {
		old->nlookup++;
		pthread_mutex_unlock(&t->lock);
		node_free(n);
		return old;
	}
	if (old)
		unlink_name(t, old);
	if (t->count >= t->nbuckets)
		grow(t);
	n->parent = parent;
	if (!n->name)
		n->name = strdup(name);
	n->id = n->kind == NODE_ROOT ? FUSE_ROOT_ID : t->next_id++;
	n->nlookup = 1;
	n->next_id = t->by_id[id_bucket(t, n->id)];
	t->by_id[id_bucket(t, n->id)] = n;
	if (n->name) {
		size_t b = name_bucket(t, parent, n->name);

		n->next_name = t->by_name[b];
		t->by_name[b] = n;
		n->named = true;
	}
	t->count++;
	pthread_mutex_unlock(&t->lock);
	return n;
}

void node_forget(struct node_table *t, uint64_t id, uint64_t nlookup)
{
	struct node **pp, *n = NULL;

	if (id == FUSE_ROOT_ID)
		return;
	pthread_mutex_lock(&t->lock);
	for (pp = &t->by_id[id_bucket(t, id)]; *pp; pp = &(*pp)->next_id) {
		if ((*pp)->id == id) {
			n = *pp;
			break;
		}
	}
	if (n) {
		assert(n->nlookup >= nlookup);
		n->nlookup -= nlookup < n->nlookup ? nlookup : n->nlookup;
		if (n->nlookup == 0) {
			*pp = n->next_id;
			if (n->named)
				unlink_name(t, n);
			t->count--;
		} else {
			n = NULL;
		}
	}
	pthread_mutex_unlock(&t->lock);
	node_free(n);
}

void node_walk_named(struct node_table *t, node_walk_fn fn, void *arg)
{
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < t->nbuckets; i++)
		for (struct node *n = t->by_name[i]; n; n = n->next_name)
			fn(arg, n);
	pthread_mutex_unlock(&t->lock);
}

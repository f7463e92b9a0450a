/*
 * queue.h - work served in order by a thread of its own (fs/queue.c), for
 * the engine's block and sync threads.
 */
#ifndef HUBFS_FS_QUEUE_H
#define HUBFS_FS_QUEUE_H

#include <pthread.h>
#include <stdbool.h>

/*
 * Work served in order by a thread of its own.  An item embeds a
 * struct qitem first; the handler owns it once called.
 */
struct qitem {
	struct qitem *next;
	bool counted; /* counts toward queue_counted() */
};

struct queue {
	pthread_mutex_t lock; /* protects head, tail, counted, stop */
	pthread_cond_t cond;
	struct qitem *head, **tail;
	unsigned counted;
	bool stop;
	pthread_t thread;
	void (*handle)(struct qitem *it, void *arg);
	void *arg;
};

int queue_start(struct queue *q, void (*handle)(struct qitem *, void *),
		void *arg);
void queue_push(struct queue *q, struct qitem *it, bool counted);
unsigned queue_counted(struct queue *q);
/* Serve everything queued, then stop the thread. */
void queue_stop(struct queue *q);

#endif /* HUBFS_FS_QUEUE_H */

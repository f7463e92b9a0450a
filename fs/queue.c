/*
 * queue.c - work served in order by a thread of its own.
 *
 * The read path keeps two: the block thread (writing, hashing and
 * answering what the engine received) and the sync thread (making it
 * durable).  Producers never wait for the work, only for the queue's lock.
 */
#include "queue.h"

#include <string.h>

static void *queue_main(void *arg)
{
	struct queue *q = arg;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		struct qitem *it = q->head;

		if (!it) {
			if (q->stop)
				break;
			pthread_cond_wait(&q->cond, &q->lock);
			continue;
		}
		q->head = it->next;
		if (!q->head)
			q->tail = &q->head;
		if (it->counted)
			q->counted--;
		pthread_mutex_unlock(&q->lock);
		q->handle(it, q->arg); /* owns it from here */
		pthread_mutex_lock(&q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

int queue_start(struct queue *q, void (*handle)(struct qitem *, void *),
		void *arg)
{
	int rc;

	memset(q, 0, sizeof(*q));
	q->tail = &q->head;
	q->handle = handle;
	q->arg = arg;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	rc = pthread_create(&q->thread, NULL, queue_main, q);
	if (rc) {
		pthread_mutex_destroy(&q->lock);
		pthread_cond_destroy(&q->cond);
	}
	return -rc;
}

void queue_push(struct queue *q, struct qitem *it, bool counted)
{
	it->next = NULL;
	it->counted = counted;
	pthread_mutex_lock(&q->lock);
	*q->tail = it;
	q->tail = &it->next;
	if (counted)
		q->counted++;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

unsigned queue_counted(struct queue *q)
{
	unsigned n;

	pthread_mutex_lock(&q->lock);
	n = q->counted;
	pthread_mutex_unlock(&q->lock);
	return n;
}

void queue_stop(struct queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->stop = true;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
}

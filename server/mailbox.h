/* mailbox.h - a locked queue plus an eventfd wake-up: how one thread hands
 * work to the thread that owns a socket.
 *
 * Any thread may post; only the owner drains. Items are intrusive (embed a
 * struct mail first); the mailbox never allocates. */
#ifndef ROOMD_MAILBOX_H
#define ROOMD_MAILBOX_H

#include <pthread.h>

struct mail {
	struct mail *next;
	int type; /* the owner's own item kinds */
};

struct mailbox {
	pthread_mutex_t lock; /* guards head and tail */
	struct mail *head, *tail;
	int efd;              /* readable while items wait; the owner polls it */
};

/* 0 or -errno. */
int mailbox_init(struct mailbox *mb);
/* Frees nothing queued: drain first. */
void mailbox_fini(struct mailbox *mb);

/* Queue an item (ownership passes to the owner) and wake the owner if the
 * queue was empty: a burst of posts costs one wake-up. */
void mailbox_post(struct mailbox *mb, struct mail *m);

/* Wake the owner without posting anything (it finds the queue as it is). */
void mailbox_wake(struct mailbox *mb);

/* Owner only: take every queued item, oldest first (NULL when none), and
 * clear the wake-up. */
struct mail *mailbox_take_all(struct mailbox *mb);

#endif

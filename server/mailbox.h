/* mailbox.h - a locked queue plus an eventfd wake-up: how one thread hands
 * work to the thread that owns a socket.
 *
 * Any thread may post; only the owner drains. Items are intrusive (embed a
 * struct mail first); the mailbox never allocates. */
#ifndef ROOMD_MAILBOX_H
#define ROOMD_MAILBOX_H

#include <pthread.h>
#include <stddef.h>

struct mail {
	struct mail *next;
	int type; /* the owner's own item kinds */
};

struct mailbox {
	pthread_mutex_t lock; /* guards head and tail */
	struct mail *head, *tail;
	int efd;              /* readable while items wait; the owner polls it */
	int wake_owed;        /* guarded by lock: a deferred post left the owner
			       * unwoken (mailbox_post_deferrable) */
};

/* 0 or -errno. */
int mailbox_init(struct mailbox *mb);
/* Frees nothing queued: drain first. Forgets a wake-up this thread owes mb. */
void mailbox_fini(struct mailbox *mb);

/* Queue an item (ownership passes to the owner) and wake the owner if the
 * queue was empty: a burst of posts costs one wake-up. */
void mailbox_post(struct mailbox *mb, struct mail *m);

/* As mailbox_post, but when this thread defers its wake-ups
 * (mailbox_defer_wakes) the owner is woken only at its next
 * mailbox_flush_wakes(): many posts of one pass, one wake-up each owner,
 * when the poster is done. Any other post to mb (mailbox_post) wakes the
 * owner at once, as before. */
void mailbox_post_deferrable(struct mailbox *mb, struct mail *m);
/* The deferrable posts this thread made since its last flush. */
size_t mailbox_deferred_posts(void);
/* Whether items wait (the owner's look before a take: no system call). */
int mailbox_pending(struct mailbox *mb);

/* This thread's mailbox_post_deferrable() calls (on: 1) owe their wake-ups
 * until mailbox_flush_wakes(), which the thread must call before it blocks;
 * off (0) flushes first. Only the thread that frees the mailboxes it posts
 * to may defer (mailbox_fini forgets what it owes the one it frees). */
void mailbox_defer_wakes(int on);
/* Wake every owner this thread owes a wake-up. */
void mailbox_flush_wakes(void);

/* Wake the owner without posting anything (it finds the queue as it is). */
void mailbox_wake(struct mailbox *mb);

/* Owner only: take every queued item, oldest first (NULL when none), and
 * clear the wake-up. */
struct mail *mailbox_take_all(struct mailbox *mb);

#endif

/* mailbox.c - locked FIFO of intrusive items with an eventfd wake-up.
 * Posters hold the lock only to link an item; the eventfd is written after
 * unlocking, and only on the empty -> non-empty transition.
 *
 * Deferred wake-ups: a thread that posts to many mailboxes in one loop
 * pass (the acceptor relaying control-port CHATs) may have the eventfd
 * writes of mailbox_post_deferrable() held back until its
 * mailbox_flush_wakes(), at the end of its pass. The owner (on the same
 * CPU, typically) then neither preempts the poster after its first post
 * nor wakes once per message: it wakes once, and finds the pass's items
 * together. The mailboxes owed a wake-up are kept in a thread-local list
 * (only that thread touches it); mb->wake_owed, under the lock, says one
 * is owed, so that any other post (not deferred) writes it at once and
 * the owner's take clears it. */
#include "mailbox.h"

#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Mailboxes one thread may owe a wake-up at once; a post beyond them
 * wakes at once. */
#define MAILBOX_DEFER_MAX 64

static _Thread_local struct {
	int on;
	size_t n;
	size_t posts; /* deferrable posts since the last flush */
	struct mailbox *mb[MAILBOX_DEFER_MAX];
} deferred;

int mailbox_init(struct mailbox *mb)
{
	mb->head = mb->tail = NULL;
	mb->wake_owed = 0;
	mb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (mb->efd < 0)
		return -errno;
	if (pthread_mutex_init(&mb->lock, NULL) != 0) {
		close(mb->efd);
		return -ENOMEM;
	}
	return 0;
}

/* This thread no longer owes mb a wake-up (it is going away). */
static void forget_deferred(struct mailbox *mb)
{
	for (size_t i = 0; i < deferred.n; i++)
		if (deferred.mb[i] == mb)
			deferred.mb[i--] = deferred.mb[--deferred.n];
}

void mailbox_fini(struct mailbox *mb)
{
	forget_deferred(mb);
	close(mb->efd);
	pthread_mutex_destroy(&mb->lock);
}

static void wake(struct mailbox *mb)
{
	uint64_t one = 1;

	/* Non-blocking; the counter cannot overflow in practice, and an
	 * EAGAIN would mean it is already readable. */
	if (write(mb->efd, &one, sizeof(one)) < 0)
		return;
}

/* Link m; 1 when the owner must be woken now. defer: a wake-up this
 * thread can owe instead (then recorded in the thread's list). */
static int link_mail(struct mailbox *mb, struct mail *m, int defer)
{
	int was_empty, now;

	m->next = NULL;
	pthread_mutex_lock(&mb->lock);
	was_empty = mb->head == NULL;
	if (mb->tail)
		mb->tail->next = m;
	else
		mb->head = m;
	mb->tail = m;
	if (defer) {
		now = 0;
		if (was_empty) {
			mb->wake_owed = 1;
			deferred.mb[deferred.n++] = mb;
		}
	} else {
		now = was_empty || mb->wake_owed;
		mb->wake_owed = 0;
	}
	pthread_mutex_unlock(&mb->lock);
	return now;
}

void mailbox_post(struct mailbox *mb, struct mail *m)
{
	/* Wake-ups this thread owes go first: a room relayed to earlier in
	 * the pass starts before one told of a leave later (a CHAT then a
	 * DISCONNECT from one client reach the other rooms' members in the
	 * order sent, as they did before wake-ups were deferred). */
	if (deferred.n > 0)
		mailbox_flush_wakes();
	if (link_mail(mb, m, 0))
		wake(mb);
}

void mailbox_post_deferrable(struct mailbox *mb, struct mail *m)
{
	if (deferred.on)
		deferred.posts++;
	if (link_mail(mb, m, deferred.on && deferred.n < MAILBOX_DEFER_MAX))
		wake(mb);
}

void mailbox_defer_wakes(int on)
{
	if (!on)
		mailbox_flush_wakes();
	deferred.on = on;
}

void mailbox_flush_wakes(void)
{
	for (size_t i = 0; i < deferred.n; i++) {
		struct mailbox *mb = deferred.mb[i];
		int owed;

		pthread_mutex_lock(&mb->lock);
		owed = mb->wake_owed;
		mb->wake_owed = 0;
		pthread_mutex_unlock(&mb->lock);
		if (owed)
			wake(mb);
	}
	deferred.n = 0;
	deferred.posts = 0;
}

size_t mailbox_deferred_posts(void)
{
	return deferred.posts;
}

struct mail *mailbox_take_all(struct mailbox *mb)
{
	uint64_t n;
	struct mail *all;

	/* Clear the wake-up first: a post after this point wakes us again. */
	if (read(mb->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return NULL;
	pthread_mutex_lock(&mb->lock);
	all = mb->head;
	mb->head = mb->tail = NULL;
	mb->wake_owed = 0; /* found without it: the poster need not wake us */
	pthread_mutex_unlock(&mb->lock);
	return all;
}

int mailbox_pending(struct mailbox *mb)
{
	int any;

	pthread_mutex_lock(&mb->lock);
	any = mb->head != NULL;
	pthread_mutex_unlock(&mb->lock);
	return any;
}

void mailbox_wake(struct mailbox *mb)
{
	wake(mb);
}

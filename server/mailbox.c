/* mailbox.c - locked FIFO of intrusive items with an eventfd wake-up.
 * Posters hold the lock only to link an item; the eventfd is written after
 * unlocking, and only on the empty -> non-empty transition. */
#include "mailbox.h"

#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

int mailbox_init(struct mailbox *mb)
{
	mb->head = mb->tail = NULL;
	mb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (mb->efd < 0)
		return -errno;
	if (pthread_mutex_init(&mb->lock, NULL) != 0) {
		close(mb->efd);
		return -ENOMEM;
	}
	return 0;
}

void mailbox_fini(struct mailbox *mb)
{
	close(mb->efd);
	pthread_mutex_destroy(&mb->lock);
}

void mailbox_post(struct mailbox *mb, struct mail *m)
{
	uint64_t one = 1;
	int was_empty;

	m->next = NULL;
	pthread_mutex_lock(&mb->lock);
	was_empty = mb->head == NULL;
	if (mb->tail)
		mb->tail->next = m;
	else
		mb->head = m;
	mb->tail = m;
	pthread_mutex_unlock(&mb->lock);
	/* Non-blocking; the counter cannot overflow in practice, and an
	 * EAGAIN would mean it is already readable. */
	if (was_empty && write(mb->efd, &one, sizeof(one)) < 0)
		return;
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
	pthread_mutex_unlock(&mb->lock);
	return all;
}

void mailbox_wake(struct mailbox *mb)
{
	uint64_t one = 1;

	if (write(mb->efd, &one, sizeof(one)) < 0)
		return; /* EAGAIN: it is readable already */
}

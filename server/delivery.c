/* delivery.c - delivery batches, fan-outs, room-port requests and the backlog
 * counters a room shares with the owner of the control connections.
 *
 * Batches, fan-outs and requests are built by one thread and owned by whoever holds
 * them (ownership passes on post); a backlog's counters are atomics that a
 * room and the owner update from their own threads, and it is freed by
 * whoever drops the last reference. */
#include "delivery.h"
#include "log.h"
#include "msg.h"
#include "sendq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* ---- batches (room threads build them; the owner applies them) ---- */

int delivery_add(struct delivery_batch **bp, struct msg *m, int fd, uint64_t conn_id, long join_id,
		 int ack)
{
	struct delivery_batch *b = *bp;

	if (!b || b->n == b->cap) {
		size_t ncap = b ? b->cap * 2 : 16;
		struct delivery_batch *nb = realloc(b, sizeof(*nb) + ncap * sizeof(nb->d[0]));
		if (!nb)
			return -ENOMEM;
		if (!b)
			*nb = (struct delivery_batch){ .n = 0 };
		nb->cap = ncap;
		*bp = b = nb;
	}
	b->d[b->n++] = (struct delivery){ msg_ref(m), fd, conn_id, join_id, ack };
	b->bytes += m->len;
	return 0;
}

struct delivery_batch *delivery_batch_create(size_t cap)
{
	struct delivery_batch *b = malloc(sizeof(*b) + cap * sizeof(b->d[0]));

	if (b)
		*b = (struct delivery_batch){ .cap = cap };
	return b;
}

void delivery_free(struct delivery_batch *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++)
		msg_unref(&b->d[i].msg);
	sendq_pieces_free(b->pieces);
	delivery_backlog_unref(b->bl);
	free(b);
}

void delivery_post(struct mailbox *mbox, struct delivery_batch *b, struct delivery_backlog *bl)
{
	if (bl) {
		atomic_fetch_add(&bl->refs, 1);
		b->bl = bl;
		atomic_fetch_add(&bl->entries, (long)b->n);
		atomic_fetch_add(&bl->bytes, (long)b->bytes);
	}
	mailbox_post(mbox, &b->mail);
}

/* ---- fan-outs (a room builds one per pass; the owner applies it) ---- */

struct delivery_fanout *delivery_fanout_create(size_t cap)
{
	struct delivery_fanout *f = malloc(sizeof(*f) + cap * sizeof(f->t[0]));

	if (f)
		*f = (struct delivery_fanout){ .mail.type = DELIVERY_MAIL_FANOUT, .cap = cap };
	return f;
}

void delivery_fanout_target(struct delivery_fanout *f, int fd, uint64_t conn_id, long join_id)
{
	if (f->n < f->cap)
		f->t[f->n++] = (struct delivery_target){ fd, conn_id, join_id };
}

int delivery_fanout_add(struct delivery_fanout *f, struct msg *m)
{
	if (sendq_pieces_add(&f->frames, m, m->data, m->len) < 0)
		return -ENOMEM;
	f->nmsgs++;
	return 0;
}

size_t delivery_fanout_entries(const struct delivery_fanout *f)
{
	return f->nmsgs * f->n;
}

size_t delivery_fanout_bytes(const struct delivery_fanout *f)
{
	return f->frames ? f->frames->bytes * f->n : 0;
}

void delivery_fanout_free(struct delivery_fanout *f)
{
	if (!f)
		return;
	sendq_pieces_free(f->frames);
	delivery_backlog_unref(f->bl);
	free(f);
}

void delivery_fanout_post(struct mailbox *mbox, struct delivery_fanout *f,
			  struct delivery_backlog *bl)
{
	if (bl) {
		atomic_fetch_add(&bl->refs, 1);
		f->bl = bl;
		atomic_fetch_add(&bl->entries, (long)delivery_fanout_entries(f));
		atomic_fetch_add(&bl->bytes, (long)delivery_fanout_bytes(f));
	}
	mailbox_post(mbox, &f->mail);
}

/* ---- backlog counters (a room and the mailbox's owner) ---- */

struct delivery_backlog *delivery_backlog_create(void)
{
	struct delivery_backlog *bl = calloc(1, sizeof(*bl));

	if (!bl)
		return NULL;
	bl->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (bl->efd < 0) {
		free(bl);
		return NULL;
	}
	atomic_init(&bl->refs, 1);
	return bl;
}

void delivery_backlog_unref(struct delivery_backlog *bl)
{
	if (bl && atomic_fetch_sub(&bl->refs, 1) == 1) {
		close(bl->efd);
		free(bl);
	}
}

int delivery_backlog_over(struct delivery_backlog *bl, size_t more_entries, size_t more_bytes)
{
	return atomic_load(&bl->entries) + (long)more_entries > DELIVERY_BACKLOG_ENTRIES ||
	       atomic_load(&bl->bytes) + (long)more_bytes > DELIVERY_BACKLOG_BYTES;
}

static int backlog_low(struct delivery_backlog *bl)
{
	return atomic_load(&bl->entries) <= DELIVERY_BACKLOG_ENTRIES / 2 &&
	       atomic_load(&bl->bytes) <= DELIVERY_BACKLOG_BYTES / 2;
}

int delivery_backlog_hold(struct delivery_backlog *bl)
{
	atomic_store(&bl->held, 1);
	/* The owner may have drained it before seeing the flag: then
	 * whoever clears the flag first decides (no wake-up is lost). */
	if (backlog_low(bl) && atomic_exchange(&bl->held, 0) == 1)
		return 0;
	return 1;
}

int delivery_backlog_released(struct delivery_backlog *bl)
{
	uint64_t n;

	if (read(bl->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn("backlog wake-up: read: %s", strerror(errno));
	return atomic_load(&bl->held) == 0;
}

void delivery_backlog_applied(struct delivery_backlog *bl, size_t n, size_t bytes)
{
	uint64_t one = 1;

	if (!bl)
		return;
	atomic_fetch_sub(&bl->entries, (long)n);
	atomic_fetch_sub(&bl->bytes, (long)bytes);
	if (atomic_load(&bl->held) && backlog_low(bl) && atomic_exchange(&bl->held, 0) == 1 &&
	    write(bl->efd, &one, sizeof(one)) < 0)
		log_warn("backlog wake-up: write: %s", strerror(errno));
}

/* ---- a member's requests made on its room port (SPEC §2.4) ---- */

struct room_request *room_request_create(int kind)
{
	struct room_request *rq = calloc(1, sizeof(*rq));

	if (rq) {
		rq->mail.type = DELIVERY_MAIL_ROOM_REQUEST;
		rq->kind = kind;
		rq->ctl_fd = -1;
	}
	return rq;
}

void room_request_post(struct mailbox *mbox, struct room_request *rq)
{
	mailbox_post(mbox, &rq->mail);
}

/* sendq.c - bounded per-connection output queues of shared messages.
 * The owner thread pushes references and flushes them with writev(2) on a
 * non-blocking socket: several queued messages leave in one system call. */
#include "sendq.h"
#include "msg.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* Pieces gathered into one writev; beyond this the kernel buffer is
 * usually full anyway. */
#define SENDQ_IOV 64

void sendq_init(struct sendq *q, size_t max_bytes)
{
	q->ring = NULL;
	q->cap_slots = 0;
	q->head = 0;
	q->count = 0;
	q->off = 0;
	q->bytes = 0;
	q->max_bytes = max_bytes;
}

void sendq_fini(struct sendq *q)
{
	while (q->count > 0) {
		msg_unref(&q->ring[q->head].owner);
		q->head = (q->head + 1) & (q->cap_slots - 1);
		q->count--;
	}
	free(q->ring);
	sendq_init(q, q->max_bytes);
}

static int sendq_grow(struct sendq *q)
{
	size_t nslots = q->cap_slots ? q->cap_slots * 2 : 8;
	struct sendq_piece *ring = malloc(nslots * sizeof(*ring));

	if (!ring)
		return -ENOMEM;
	for (size_t i = 0; i < q->count; i++)
		ring[i] = q->ring[(q->head + i) & (q->cap_slots - 1)];
	free(q->ring);
	q->ring = ring;
	q->cap_slots = nslots;
	q->head = 0;
	return 0;
}

int sendq_push(struct sendq *q, struct msg *m)
{
	struct sendq_piece *p;

	if (m->len == 0)
		return 0; /* nothing to send; queued it would never be released */
	if (q->bytes + m->len > q->max_bytes)
		return -ENOBUFS;
	if (q->count > 0) {
		p = &q->ring[(q->head + q->count - 1) & (q->cap_slots - 1)];
		if (p->owner == m->owner && p->data + p->len == m->data) {
			p->len += m->len;
			q->bytes += m->len;
			return 0;
		}
	}
	if (q->count == q->cap_slots && sendq_grow(q) < 0)
		return -ENOMEM;
	p = &q->ring[(q->head + q->count) & (q->cap_slots - 1)];
	p->owner = msg_ref(m->owner);
	p->data = m->data;
	p->len = m->len;
	q->count++;
	q->bytes += m->len;
	return 0;
}

/* Release fully written pieces after a write of n bytes. */
static void sendq_advance(struct sendq *q, size_t n)
{
	q->bytes -= n;
	while (n > 0) {
		size_t left = q->ring[q->head].len - q->off;

		if (n < left) {
			q->off += n;
			return;
		}
		n -= left;
		q->off = 0;
		msg_unref(&q->ring[q->head].owner);
		q->head = (q->head + 1) & (q->cap_slots - 1);
		q->count--;
	}
}

int sendq_flush(struct sendq *q, int fd)
{
	struct iovec iov[SENDQ_IOV];

	while (q->count > 0) {
		size_t n = q->count < SENDQ_IOV ? q->count : SENDQ_IOV;
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = n };
		ssize_t w;

		for (size_t i = 0; i < n; i++) {
			const struct sendq_piece *p = &q->ring[(q->head + i) & (q->cap_slots - 1)];
			size_t skip = i == 0 ? q->off : 0;
			iov[i].iov_base = (char *)p->data + skip;
			iov[i].iov_len = p->len - skip;
		}
		/* sendmsg for MSG_NOSIGNAL: a vanished peer is EPIPE, not a
		 * signal that kills the daemon. */
		w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		}
		sendq_advance(q, (size_t)w);
	}
	if (q->ring && q->cap_slots > 64) {
		/* A burst is over: give the big ring back. */
		free(q->ring);
		q->ring = NULL;
		q->cap_slots = 0;
		q->head = 0;
	}
	return 0;
}

void sendq_drop_unstarted(struct sendq *q)
{
	size_t keep = q->count > 0 && q->off > 0 ? 1 : 0;

	while (q->count > keep) {
		size_t tail = (q->head + q->count - 1) & (q->cap_slots - 1);
		q->bytes -= q->ring[tail].len;
		msg_unref(&q->ring[tail].owner);
		q->count--;
	}
}

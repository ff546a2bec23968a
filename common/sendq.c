/* sendq.c - bounded per-connection output queues of shared messages.
 * The owner thread pushes references and flushes them with writev(2) on a
 * non-blocking socket (or through its connection's transport,
 * sendq_flush_via): several queued messages leave in one system call.
 * The bound is charged bytes plus SENDQ_PIECE_COST per piece; a frame that
 * merges into the previous piece (same block, adjacent) costs its bytes
 * only, since it takes no slot and no reference. */
#include "sendq.h"
#include "msg.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* Pieces gathered into one writev; beyond this the kernel buffer is
 * usually full anyway. */
#define SENDQ_IOV 64
/* Bytes one flush writes at most. A loopback peer's buffers take many
 * megabytes; copying them all for one connection would stall the owner's
 * other connections (a HISTORY reply is ~200 KB). What is left waits for
 * EPOLLOUT, which fires at once while the socket takes more. */
#define SENDQ_FLUSH_BYTES (64 * 1024)

void sendq_init(struct sendq *q, size_t max_bytes)
{
	q->ring = NULL;
	q->cap_slots = 0;
	q->head = 0;
	q->count = 0;
	q->off = 0;
	q->bytes = 0;
	q->cost = 0;
	q->max_bytes = max_bytes;
	q->sent = 0;
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

int sendq_push_slice(struct sendq *q, struct msg *m, const char *data, size_t len)
{
	struct sendq_piece *p;

	if (len == 0)
		return 0; /* nothing to send; queued it would never be released */
	if (q->count > 0) {
		p = &q->ring[(q->head + q->count - 1) & (q->cap_slots - 1)];
		if (p->owner == m->owner && p->data + p->len == data) {
			if (q->cost + len > q->max_bytes)
				return -ENOBUFS;
			p->len += len;
			q->bytes += len;
			q->cost += len;
			return 0;
		}
	}
	if (q->cost + len + SENDQ_PIECE_COST > q->max_bytes)
		return -ENOBUFS;
	if (q->count == q->cap_slots && sendq_grow(q) < 0)
		return -ENOMEM;
	p = &q->ring[(q->head + q->count) & (q->cap_slots - 1)];
	p->owner = msg_ref(m->owner);
	p->data = data;
	p->len = len;
	q->count++;
	q->bytes += len;
	q->cost += len + SENDQ_PIECE_COST;
	return 0;
}

int sendq_push(struct sendq *q, struct msg *m)
{
	return sendq_push_slice(q, m, m->data, m->len);
}

int sendq_push_pieces(struct sendq *q, const struct sendq_pieces *l)
{
	if (q->cost + l->bytes + l->n * SENDQ_PIECE_COST > q->max_bytes)
		return -ENOBUFS;
	for (size_t i = 0; i < l->n; i++) {
		int rc = sendq_push_slice(q, l->p[i].owner, l->p[i].data, l->p[i].len);
		if (rc < 0)
			return rc; /* -ENOMEM only: the bound was checked */
	}
	return 0;
}

int sendq_reserve(struct sendq *q, size_t n)
{
	if (q->cost + n > q->max_bytes)
		return -ENOBUFS;
	q->cost += n;
	return 0;
}

void sendq_unreserve(struct sendq *q, size_t n)
{
	q->cost -= n;
}

int sendq_pieces_add(struct sendq_pieces **lp, struct msg *m, const char *data, size_t len)
{
	struct sendq_pieces *l = *lp;

	if (l && l->n > 0) {
		struct sendq_piece *p = &l->p[l->n - 1];
		if (p->owner == m->owner && p->data + p->len == data) {
			p->len += len; /* adjacent in one block: one piece */
			l->bytes += len;
			return 0;
		}
	}
	if (!l || l->n == l->cap) {
		size_t ncap = l ? l->cap * 2 : 16;
		struct sendq_pieces *nl = realloc(l, sizeof(*nl) + ncap * sizeof(nl->p[0]));
		if (!nl)
			return -ENOMEM;
		if (!l) {
			nl->n = 0;
			nl->bytes = 0;
		}
		nl->cap = ncap;
		*lp = l = nl;
	}
	l->p[l->n++] = (struct sendq_piece){ msg_ref(m->owner), data, len };
	l->bytes += len;
	return 0;
}

void sendq_pieces_free(struct sendq_pieces *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		msg_unref(&l->p[i].owner);
	free(l);
}

/* Release fully written pieces after a write of n bytes. */
static void sendq_advance(struct sendq *q, size_t n)
{
	q->bytes -= n;
	q->cost -= n;
	q->sent += n;
	while (n > 0) {
		size_t left = q->ring[q->head].len - q->off;

		if (n < left) {
			q->off += n;
			return;
		}
		n -= left;
		q->off = 0;
		q->cost -= SENDQ_PIECE_COST;
		msg_unref(&q->ring[q->head].owner);
		q->head = (q->head + 1) & (q->cap_slots - 1);
		q->count--;
	}
}

/* sendq_flush's writer: a plain socket. sendmsg for MSG_NOSIGNAL: a
 * vanished peer is EPIPE, not a signal that kills the daemon. */
static long write_socket(void *ctx, const struct iovec *iov, int n)
{
	struct msghdr mh = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n };
	ssize_t w;

	do {
		w = sendmsg(*(const int *)ctx, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (w < 0 && errno == EINTR);
	if (w < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return (long)w;
}

int sendq_flush(struct sendq *q, int fd)
{
	return sendq_flush_via(q, write_socket, &fd);
}

int sendq_flush_via(struct sendq *q, sendq_writev_fn writev, void *ctx)
{
	struct iovec iov[SENDQ_IOV];
	size_t written = 0;

	while (q->count > 0) {
		if (written >= SENDQ_FLUSH_BYTES)
			return -EAGAIN; /* the rest next pass: others wait no longer */
		size_t n = q->count < SENDQ_IOV ? q->count : SENDQ_IOV;
		long w;

		for (size_t i = 0; i < n; i++) {
			const struct sendq_piece *p = &q->ring[(q->head + i) & (q->cap_slots - 1)];
			size_t skip = i == 0 ? q->off : 0;
			iov[i].iov_base = (char *)p->data + skip;
			iov[i].iov_len = p->len - skip;
		}
		w = writev(ctx, iov, (int)n);
		if (w < 0)
			return (int)w;
		sendq_advance(q, (size_t)w);
		written += (size_t)w;
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

/* The pieces at the front that are started: those that begin within the
 * written bytes of the head piece (q->off) plus the pinned ones. */
static size_t started_pieces(const struct sendq *q, size_t pinned)
{
	size_t mask = q->cap_slots - 1, n = 0, start = 0, want = q->off + pinned;

	for (; n < q->count && start < want; n++)
		start += q->ring[(q->head + n) & mask].len;
	return n;
}

void sendq_drop_unstarted(struct sendq *q, size_t pinned)
{
	size_t keep = started_pieces(q, pinned);

	while (q->count > keep) {
		size_t tail = (q->head + q->count - 1) & (q->cap_slots - 1);
		q->bytes -= q->ring[tail].len;
		q->cost -= q->ring[tail].len + SENDQ_PIECE_COST;
		msg_unref(&q->ring[tail].owner);
		q->count--;
	}
}

void sendq_drop_unstarted_if(struct sendq *q, size_t pinned,
			     int (*drop)(const struct sendq_piece *p, void *arg), void *arg)
{
	size_t mask = q->cap_slots - 1, kept = started_pieces(q, pinned), n = q->count;

	for (size_t i = kept; i < n; i++) {
		struct sendq_piece *p = &q->ring[(q->head + i) & mask];
		if (drop(p, arg)) {
			q->bytes -= p->len;
			q->cost -= p->len + SENDQ_PIECE_COST;
			msg_unref(&p->owner);
		} else {
			q->ring[(q->head + kept++) & mask] = *p;
		}
	}
	q->count = kept;
}

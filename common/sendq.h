/* sendq.h - a connection's bounded queue of outgoing messages.
 *
 * Holds references to shared messages (never copies them); flushes with
 * writev on a non-blocking socket. Owned by the thread that owns the socket.
 * A message that continues the previous one in the same block (msg_arena)
 * extends its piece instead of taking a slot and a reference: a member sent
 * a burst of room traffic holds one piece and gets one iovec for it. */
#ifndef ROOMD_SENDQ_H
#define ROOMD_SENDQ_H

#include <stddef.h>

struct msg;

/* Bytes of one block, holding a reference to it. */
struct sendq_piece {
	struct msg *owner;
	const char *data;
	size_t len;
};

struct sendq {
	struct sendq_piece *ring; /* circular array */
	size_t cap_slots;  /* allocated slots: 0 or a power of two */
	size_t head;       /* index of the oldest piece */
	size_t count;      /* pieces queued */
	size_t off;        /* bytes of the oldest piece already written */
	size_t bytes;      /* unwritten bytes queued */
	size_t max_bytes;  /* the bound: a push beyond it fails */
};

void sendq_init(struct sendq *q, size_t max_bytes);
/* Drop every queued reference and free the storage. */
void sendq_fini(struct sendq *q);

/* Queue a reference to m (takes a new reference; the caller keeps its own).
 * Returns 0, -ENOBUFS when the queue would exceed max_bytes (the caller
 * must cut the connection off), or -ENOMEM. */
int sendq_push(struct sendq *q, struct msg *m);

/* Write as much as the socket takes. Returns 0 when the queue is empty,
 * -EAGAIN when bytes remain (arm EPOLLOUT), or another negative errno when
 * the connection is broken (EPIPE, ECONNRESET, ...). Never blocks. */
int sendq_flush(struct sendq *q, int fd);

/* Drop the pieces not yet started; a partly written one stays (whole) so
 * the client never sees half a frame. */
void sendq_drop_unstarted(struct sendq *q);

static inline int sendq_empty(const struct sendq *q) { return q->count == 0; }

#endif

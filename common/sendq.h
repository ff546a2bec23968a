/* sendq.h - a connection's bounded queue of outgoing messages.
 *
 * Holds references to shared messages (never copies them); flushes with
 * writev on a non-blocking socket. Owned by the thread that owns the socket.
 * A message that continues the previous one in the same block (msg_arena)
 * extends its piece instead of taking a slot and a reference: a member sent
 * a burst of room traffic holds one piece and gets one iovec for it.
 *
 * The bound (max_bytes, the config's sendq_bytes) is charged what a queued
 * piece really costs: its unwritten bytes plus SENDQ_PIECE_COST for the
 * memory around them. A piece may also be a slice of a message (a HISTORY
 * reply points into the kept CHAT frames instead of copying them). */
#ifndef ROOMD_SENDQ_H
#define ROOMD_SENDQ_H

#include <stddef.h>
#include "msg.h"

/* Bytes of one block, holding a reference to it. */
struct sendq_piece {
	struct msg *owner;
	const char *data;
	size_t len;
};

/* Memory a piece costs beyond its bytes: its ring slot, counted twice (the
 * ring grows by doubling, so up to half of it is slack), and the message
 * header it keeps alive with the allocator's own header (two words). For a
 * 40-byte frame this is the ~2x the bytes alone would miss. */
#define SENDQ_PIECE_COST (2 * sizeof(struct sendq_piece) + sizeof(struct msg) + 2 * sizeof(size_t))

/* A list of pieces built by one thread and handed to another (a HISTORY
 * reply): each holds a reference to its owner; all or none are queued. */
struct sendq_pieces {
	size_t n, cap;
	size_t bytes; /* the sum of the pieces' lengths */
	struct sendq_piece p[];
};

struct sendq {
	struct sendq_piece *ring; /* circular array */
	size_t cap_slots;  /* allocated slots: 0 or a power of two */
	size_t head;       /* index of the oldest piece */
	size_t count;      /* pieces queued */
	size_t off;        /* bytes of the oldest piece already written */
	size_t bytes;      /* unwritten bytes queued */
	size_t cost;       /* bytes + count x SENDQ_PIECE_COST + reserved: what the
			    * bound limits */
	size_t max_bytes;  /* the bound: a push beyond it fails */
	unsigned long long sent; /* bytes written since init: progress marks */
};

void sendq_init(struct sendq *q, size_t max_bytes);
/* Drop every queued reference and free the storage. */
void sendq_fini(struct sendq *q);

/* Queue a reference to m (takes a new reference; the caller keeps its own).
 * Returns 0, -ENOBUFS when the queue would exceed max_bytes (the caller
 * must cut the connection off), or -ENOMEM. */
int sendq_push(struct sendq *q, struct msg *m);

/* Queue len bytes at data, which lie inside m's bytes (a slice; takes a
 * reference to the block that holds them). The same returns. */
int sendq_push_slice(struct sendq *q, struct msg *m, const char *data, size_t len);

/* Queue every piece of l, or none: -ENOBUFS when they would not all fit
 * (charged as if none merged), -ENOMEM. l keeps its own references. */
int sendq_push_pieces(struct sendq *q, const struct sendq_pieces *l);

/* Set n bytes of the bound aside for a reply still being built (pushes
 * beyond the rest fail). 0, or -ENOBUFS when they do not fit now. */
int sendq_reserve(struct sendq *q, size_t n);
/* Give back what sendq_reserve set aside (before pushing the reply). */
void sendq_unreserve(struct sendq *q, size_t n);

/* Append a slice of m (len bytes at data, inside m) to *lp, grown or
 * allocated as needed; takes a reference, or extends the last piece when
 * the slice continues it in the same block. 0 or -ENOMEM. */
int sendq_pieces_add(struct sendq_pieces **lp, struct msg *m, const char *data, size_t len);
/* Drop a list and its references; NULL is allowed. */
void sendq_pieces_free(struct sendq_pieces *l);

/* Write as much as the socket takes, up to 64 KiB a call (fairness
 * between one thread's connections). Returns 0 when the queue is empty,
 * -EAGAIN when bytes remain (arm EPOLLOUT), or another negative errno when
 * the connection is broken (EPIPE, ECONNRESET, ...). Never blocks. */
int sendq_flush(struct sendq *q, int fd);

struct iovec;
/* A writer for sendq_flush_via: writes from n iovecs (never blocking) and
 * returns the bytes written (>= 0), -EAGAIN when none can be now, or another
 * negative errno when the connection is broken. ctx is the caller's. */
typedef long (*sendq_writev_fn)(void *ctx, const struct iovec *iov, int n);

/* sendq_flush through writev (a connection's transport: TLS later), one
 * call per batch of pieces. The same returns. */
int sendq_flush_via(struct sendq *q, sendq_writev_fn writev, void *ctx);

/* Drop the pieces not yet started; a partly written one stays (whole) so
 * the client never sees half a frame. pinned: bytes after the written ones
 * that the writer has already taken but not finished writing (a TLS record
 * waiting for the socket, which must be written again from the same
 * bytes): the pieces they lie in count as started. */
void sendq_drop_unstarted(struct sendq *q, size_t pinned);

/* Drop the pieces not yet started (as above) for which drop(piece, arg)
 * says so (each asked once, oldest first); the others keep their order. */
void sendq_drop_unstarted_if(struct sendq *q, size_t pinned,
			     int (*drop)(const struct sendq_piece *p, void *arg), void *arg);

static inline int sendq_empty(const struct sendq *q) { return q->count == 0; }

#endif

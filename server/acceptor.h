/* acceptor.h - the main thread's control-port loop.
 *
 * The acceptor owns the control listening socket, every control connection,
 * the signal descriptor and the room threads' lifetimes. Room threads hand
 * it messages for members that are not attached through acceptor_deliver(). */
#ifndef ROOMD_ACCEPTOR_H
#define ROOMD_ACCEPTOR_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "mailbox.h"

struct config;
struct registry;
struct msg;
struct acceptor;
struct room;
struct iptable;
struct ip_entry;
struct conn;
struct sendq_pieces;

enum delivery_kind {
	DELIVERY_RELAY,   /* room traffic */
	DELIVERY_LEAVE,   /* the answer to a LEAVE: delivered anyway, then the
			   * connection resumes reading requests */
	DELIVERY_HISTORY, /* the answer to a HISTORY: the batch's pieces (NULL:
			   * it failed), in the space reserved for it; the
			   * connection resumes once they are written */
};

/* One message for one membership of a control connection. */
struct delivery {
	struct msg *msg;  /* a reference owned by the batch (NULL: HISTORY) */
	int fd;           /* the control connection... */
	uint64_t conn_id; /* ...if its id still matches (fds are reused) */
	long join_id;     /* delivered only while this membership is live */
	int ack;          /* enum delivery_kind */
};

/* What one room has handed the acceptor and the acceptor has not applied
 * yet, shared by the room (which stops reading its room port while it is
 * over DELIVERY_BACKLOG_*) and every batch it posted (so it outlives the
 * room). The acceptor wakes the room through efd when it drains below the
 * low-water mark (half the bound). */
struct delivery_backlog {
	atomic_long entries, bytes; /* bytes: the deliveries' frame lengths */
	atomic_int held;            /* the room waits for a wake-up */
	atomic_int refs;
	int efd;
};

/* A room's backlog bound: 8192 deliveries (~330 KiB of entries) or 2 MiB
 * bound for members' send queues, whichever first. */
#define DELIVERY_BACKLOG_ENTRIES 8192
#define DELIVERY_BACKLOG_BYTES (2L << 20)

/* Deliveries made by one room thread in one loop pass. */
struct delivery_batch {
	struct mail mail;
	struct delivery_backlog *bl;   /* whose counters it is in (set on post) */
	struct sendq_pieces *pieces;   /* DELIVERY_HISTORY only */
	size_t reserved;               /* DELIVERY_HISTORY: send queue bytes set aside */
	size_t bytes;                  /* sum of the deliveries' frame lengths */
	size_t n, cap;
	size_t done;                   /* applied so far (the acceptor works in slices) */
	struct delivery d[];
};

/* What the acceptor's mailbox carries (mail.type). */
enum acceptor_mail {
	ACC_MAIL_BATCH = 0,    /* a struct delivery_batch */
	ACC_MAIL_ROOM_REQUEST, /* a struct room_request */
};

enum room_request_kind {
	ROOM_REQ_LEAVE,      /* end membership join_id of the control connection;
			      * the room answers on the room connection (SPEC §2.4) */
	ROOM_REQ_DISCONNECT, /* close the control connection (every membership
			      * ends, announced), as its own DISCONNECT would */
};

/* A member's LEAVE_CHATROOM or DISCONNECT made on its room port (lab-era
 * clients, SPEC §2.4): the membership lives with the control connection,
 * so the room thread hands the request to the acceptor, in order with its
 * delivery batches. A LEAVE's request is allocated with the membership
 * (room_add_member), so a leave never fails for lack of memory; at most
 * one per membership is ever in flight. The acceptor frees it. */
struct room_request {
	struct mail mail;  /* mail.type is ACC_MAIL_ROOM_REQUEST */
	int kind;          /* enum room_request_kind */
	int ctl_fd;        /* the member's control connection... */
	uint64_t ctl_id;   /* ...if its id still matches */
	long join_id;      /* ROOM_REQ_LEAVE: the membership */
};

/* A request of kind (ROOM_REQ_*), or NULL. Any thread. */
struct room_request *room_request_create(int kind);

/* Any thread: hand a room-port request over (ownership passes); it is
 * carried out after the batches posted before it. */
void acceptor_room_request(struct acceptor *acc, struct room_request *rq);

/* The control port actually bound (read-only once the rooms run). */
unsigned acceptor_control_port(const struct acceptor *acc);

/* Set up the control port (cfg->bind, port), the signal descriptor, the
 * configured rooms. Returns NULL with a message logged on failure. Must be
 * called before any other thread exists (it blocks SIGINT/SIGTERM/SIGHUP). */
struct acceptor *acceptor_create(const struct config *cfg, struct registry *reg, unsigned port);

/* What the daemon around the acceptor does on its thread (any may be NULL;
 * each is called with arg). */
struct acceptor_hooks {
	void (*reload)(void *arg);   /* SIGHUP arrived (NULL: logged, ignored) */
	int (*tick)(void *arg);      /* after every loop pass; returns the ms it
				      * wants until the next (capped at 500) */
	void (*stopping)(void *arg); /* the loop ended: shutdown begins */
	void *arg;
};

/* Set the hooks acceptor_run() calls (before it runs). */
void acceptor_set_hooks(struct acceptor *acc, const struct acceptor_hooks *hooks);

/* Serve until SIGINT, SIGTERM or KILL_SERVICE; then stop the rooms, flush
 * and close every connection. Returns 0 on a clean stop. */
int acceptor_run(struct acceptor *acc);

void acceptor_destroy(struct acceptor *acc);

/* One pass of the loop: wait up to timeout_ms for events, handle them, flush,
 * check deadlines. Returns 0, 1 once a stop was requested (signal or
 * KILL_SERVICE), -1 on failure. acceptor_run() is this in a loop; tests and
 * fuzz targets drive it directly. */
int acceptor_step(struct acceptor *acc, int timeout_ms);

/* Take fd over as a control connection from peer, exactly as if it had been
 * accepted (tests and fuzzing feed requests through a socketpair this way).
 * Returns the connection, or NULL (fd is closed). */
struct conn *acceptor_adopt(struct acceptor *acc, int fd, const char *peer);

/* The per-address table (connections of every port, shared buckets). It
 * lives as long as the acceptor; any thread may use it (it locks). */
struct iptable *acceptor_iptable(struct acceptor *acc);

/* Acceptor thread: the room's last member left; stop its thread (it
 * finishes what it holds first) and free it once done. 0 or -ENOMEM (the
 * room keeps running). */
int acceptor_retire_room(struct acceptor *acc, struct room *room);

/* Room threads, as their last act: wake the acceptor so that it joins and
 * frees retired rooms at once, releasing their descriptors. */
void acceptor_room_exited(struct acceptor *acc);

/* Acceptor thread: the live control connection (fd, id), or NULL. */
struct conn *acceptor_conn(struct acceptor *acc, int fd, uint64_t id);

/* Acceptor thread: queue m (shared) on control connection c and flush it
 * this pass; a client that does not read is cut off. 0 or -errno. */
int acceptor_send(struct acceptor *acc, struct conn *c, struct msg *m);

/* Any thread: hand a batch over (ownership passes), counted in bl. */
void acceptor_deliver(struct acceptor *acc, struct delivery_batch *b, struct delivery_backlog *bl);

/* A room's backlog counter (refcount 1), or NULL. */
struct delivery_backlog *delivery_backlog_create(void);
void delivery_backlog_unref(struct delivery_backlog *bl);
/* Would the backlog be over its bound with this much more? */
int delivery_backlog_over(struct delivery_backlog *bl, size_t more_entries, size_t more_bytes);
/* The room stops reading: 1, or 0 when the backlog already fell below
 * the low-water mark (nothing to wait for). */
int delivery_backlog_hold(struct delivery_backlog *bl);
/* After a wake-up on efd: 1 when the hold is over. */
int delivery_backlog_released(struct delivery_backlog *bl);

/* Acceptor thread: HISTORY for membership join_id of c, in room; pauses c
 * until the reply is written. 0, or the error to answer: -E2BIG (the reply
 * is larger than c's whole send queue), -ENOBUFS (no room for it in the
 * queue now), -ENOMEM. */
int acceptor_history(struct acceptor *acc, struct conn *c, struct room *room, long join_id);

/* Room threads: append a relay delivery to *bp (grown or allocated as needed);
 * takes a new reference to m. 0 or -ENOMEM. */
int delivery_add(struct delivery_batch **bp, struct msg *m, int fd, uint64_t conn_id, long join_id,
		 int ack);

/* An empty batch with room for cap deliveries (delivery_add will not need
 * to allocate until it is full), or NULL. */
struct delivery_batch *delivery_batch_create(size_t cap);

/* Drop a batch that was never handed over. */
void delivery_free(struct delivery_batch *b);

#endif

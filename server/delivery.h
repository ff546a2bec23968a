/* delivery.h - what a room thread hands the thread that owns the control
 * connections: its traffic for the members that are not attached (a
 * fan-out: frames and members, each listed once), single deliveries (the
 * answers to a LEAVE or HISTORY) and a member's requests made on its room
 * port, all posted to that thread's mailbox in one order; and each room's
 * backlog counter, the back-pressure between the two.
 *
 * Room threads build batches and requests and post them (any thread may
 * post); the owner of the mailbox (the acceptor) applies them and calls
 * delivery_backlog_applied(). Nothing here names either side. */
#ifndef ROOMD_DELIVERY_H
#define ROOMD_DELIVERY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "mailbox.h"

struct msg;
struct sendq_pieces;

/* Room traffic goes over as fan-outs (struct delivery_fanout); a batch
 * carries a room's answers to one connection. */
enum delivery_kind {
	DELIVERY_LEAVE,   /* the answer to a LEAVE: delivered anyway, then the
			   * connection resumes reading requests */
	DELIVERY_HISTORY, /* the answer to a HISTORY: the batch's pieces (NULL:
			   * it failed), in the space reserved for it; the
			   * connection resumes once they are written */
	DELIVERY_JOINED,  /* cluster mode, the answer to a JOIN (sent by the room
			   * once the join is in the room's stream): delivered,
			   * then the connection resumes reading requests */
};

/* One message for one membership of a control connection. */
struct delivery {
	struct msg *msg;  /* a reference owned by the batch (NULL: HISTORY) */
	int fd;           /* the control connection... */
	uint64_t conn_id; /* ...if its id still matches (fds are reused) */
	long join_id;     /* delivered only while this membership is live */
	int ack;          /* enum delivery_kind */
};

/* What one room has handed over and the control connections' owner has
 * not applied yet, shared by the room (which stops reading its room port
 * while it is over DELIVERY_BACKLOG_*) and every batch it posted (so it
 * outlives the room). The owner wakes the room through efd when it drains
 * below the low-water mark (half the bound). */
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
	size_t done;                   /* applied so far (the owner works in slices) */
	struct delivery d[];
};

/* A member a fan-out goes to, named as a struct delivery names it. */
struct delivery_target {
	int fd;           /* the control connection... */
	uint64_t conn_id; /* ...if its id still matches */
	long join_id;     /* delivered only while this membership is live */
};

/* A room's traffic for its members that are not attached, from one loop
 * pass while that set of members did not change (a join, a leave, an
 * attach or a detach starts another): the frames once, in order (frames
 * carved end to end from one block make one piece), and the members once,
 * in join order. The owner queues the pieces on each member's connection,
 * so handing m messages to n members costs O(m + n), not O(m x n).
 * Counted in the backlog as nmsgs x n deliveries of bytes x n bytes, as
 * that many single deliveries would be. */
struct delivery_fanout {
	struct mail mail;              /* mail.type is DELIVERY_MAIL_FANOUT */
	struct delivery_backlog *bl;   /* whose counters it is in (set on post) */
	struct sendq_pieces *frames;   /* NULL until the first frame */
	size_t nmsgs;                  /* messages in frames */
	size_t n, cap;                 /* members */
	size_t done;                   /* members applied so far (in slices) */
	struct delivery_target t[];
};

/* What the owner's mailbox carries (mail.type). */
enum delivery_mail {
	DELIVERY_MAIL_BATCH = 0,    /* a struct delivery_batch */
	DELIVERY_MAIL_ROOM_REQUEST, /* a struct room_request */
	DELIVERY_MAIL_FANOUT,       /* a struct delivery_fanout */
};

enum room_request_kind {
	ROOM_REQ_LEAVE,      /* end membership join_id of the control connection;
			      * the room answers on the room connection (SPEC §2.4) */
	ROOM_REQ_DISCONNECT, /* close the control connection (every membership
			      * ends, announced), as its own DISCONNECT would */
};

/* A member's LEAVE_CHATROOM or DISCONNECT made on its room port (lab-era
 * clients, SPEC §2.4): the membership lives with the control connection,
 * so the room thread hands the request over, in order with its delivery
 * batches. A LEAVE's request is allocated with the membership
 * (room_add_member), so a leave never fails for lack of memory; at most
 * one per membership is ever in flight. The owner frees it. */
struct room_request {
	struct mail mail;  /* mail.type is DELIVERY_MAIL_ROOM_REQUEST */
	int kind;          /* enum room_request_kind */
	int ctl_fd;        /* the member's control connection... */
	uint64_t ctl_id;   /* ...if its id still matches */
	long join_id;      /* ROOM_REQ_LEAVE: the membership */
};

/* A request of kind (ROOM_REQ_*), or NULL. Any thread. */
struct room_request *room_request_create(int kind);

/* Any thread: hand a room-port request over to mbox's owner (ownership
 * passes); it is carried out after the batches posted before it. */
void room_request_post(struct mailbox *mbox, struct room_request *rq);

/* Room threads: append a relay delivery to *bp (grown or allocated as needed);
 * takes a new reference to m. 0 or -ENOMEM. */
int delivery_add(struct delivery_batch **bp, struct msg *m, int fd, uint64_t conn_id, long join_id,
		 int ack);

/* An empty batch with room for cap deliveries (delivery_add will not need
 * to allocate until it is full), or NULL. */
struct delivery_batch *delivery_batch_create(size_t cap);

/* Drop a batch that was never handed over. */
void delivery_free(struct delivery_batch *b);

/* Any thread: hand a batch over to mbox's owner (ownership passes),
 * counted in bl (may be NULL). */
void delivery_post(struct mailbox *mbox, struct delivery_batch *b, struct delivery_backlog *bl);

/* An empty fan-out for up to cap members, or NULL. Room threads. */
struct delivery_fanout *delivery_fanout_create(size_t cap);
/* Add a member (cap is never exceeded: the room counts them first). */
void delivery_fanout_target(struct delivery_fanout *f, int fd, uint64_t conn_id, long join_id);
/* Append frame m for every member (takes a reference to its block).
 * 0 or -ENOMEM. */
int delivery_fanout_add(struct delivery_fanout *f, struct msg *m);
/* What f counts for in a backlog: deliveries and their bytes. */
size_t delivery_fanout_entries(const struct delivery_fanout *f);
size_t delivery_fanout_bytes(const struct delivery_fanout *f);
/* Drop a fan-out (never posted, or applied) and its references. */
void delivery_fanout_free(struct delivery_fanout *f);
/* Any thread: hand f over to mbox's owner (ownership passes), counted in
 * bl (may be NULL). */
void delivery_fanout_post(struct mailbox *mbox, struct delivery_fanout *f,
			  struct delivery_backlog *bl);

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
/* The mailbox's owner: n deliveries of bytes frame bytes counted in bl
 * (NULL: nothing) were applied; wakes a held room at the low-water mark. */
void delivery_backlog_applied(struct delivery_backlog *bl, size_t n, size_t bytes);

#endif

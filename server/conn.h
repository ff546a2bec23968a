/* conn.h - one client socket as its owner thread sees it: read buffer,
 * parser state, bounded send queue; its bytes go through its transport.
 *
 * A conn belongs to exactly one thread, whose loop tracks it (loop.h: the
 * acceptor for control connections, a room thread for room connections):
 * only that thread reads, writes, or closes it, so nothing here is locked. */
#ifndef ROOMD_CONN_H
#define ROOMD_CONN_H

#include <stdint.h>
#include "buf.h"
#include "config.h"
#include "net.h"
#include "proto.h"
#include "sendq.h"
#include "transport.h"

struct config;
struct iptable;
struct ip_entry;
struct msg;

struct conn {
	int fd;
	const struct conn_transport *tr; /* how its bytes are read and written
					  * (transport.h); plain TCP by default */
	struct transport_sock io;    /* what tr works on: fd and its state */
	uint64_t id;                 /* unique for the daemon's lifetime */
	char peer[NET_ADDRSTRLEN];   /* numeric peer address, for logs */
	struct buf in;               /* bytes read, not yet parsed */
	struct proto_parser parser;
	struct sendq out;
	unsigned ev_mask;            /* the epoll events registered now */
	size_t slot;                 /* its index in its loop's connections */
	int dirty;                   /* on the owner's flush list */
	int closing;                 /* close after the pending flush */
	uint64_t since_ms;           /* accepted, or (closing) when closing began */
	uint64_t active_ms;          /* accepted, or last request handled (idle_timeout):
				      * not bytes, blank lines or refused input */
	uint64_t read_ms;            /* last bytes received (the quiet deadline is armed then, or at a resume) */
	uint64_t partial_ms;         /* when the pending partial request began; 0: none */
	/* token bucket (requests), in thousandths of a request */
	long tokens;
	uint64_t refill_ms;
	int throttled;               /* bucket empty: not read until resume_ms */
	/* the address's entry (connection count, shared buckets), set by the
	 * owner once iptable_open() counted it; NULL: not counted */
	struct iptable *ipt;
	struct ip_entry *ipe;
	int throttle_logged;         /* its first throttling was logged */
	uint64_t resume_ms;
	struct conn *next_throttled;
	struct conn *next_dirty;
	/* end_quiet_ms (SPEC §2.4): when the bytes held of an unfinished request
	 * may be ended by the quiet period; 0: nothing to end */
	uint64_t quiet_ms;
	int on_quiet;                /* on its owner's quiet list */
	unsigned long ignored_logged; /* parser.ignored when last logged */
	struct conn *next_quiet;
	/* it asked for sequence numbers (a control connection: WELCOME: SEQ;
	 * a room connection: its member's did, set at the attach): its rooms
	 * send it their members' messages numbered (a SEQ frame before each),
	 * and an overflow of those gets a gap notice before a cut-off */
	int seq;
	/* it was sent gap notices, which end at this queue position (out.sent;
	 * 0: none), queued when out.sent was gap_sent: another overflow before
	 * they are written, with nothing written since, is a cut-off (a client
	 * that reads nothing at all); one that reads, however slowly, gets
	 * another gap */
	unsigned long long gap_mark, gap_sent;
	/* reads no request while set: a LEAVE waits for the other side to
	 * answer, in room order, before the next request is handled (control
	 * connections: its room; room connections: the acceptor), and a
	 * HISTORY waits for its reply (control connections) */
	int paused;
	long leaving_id;             /* its deliveries still pass meanwhile */
	/* What a role keeps per connection lives with the role's code, in a
	 * struct that begins with this conn: control.h's struct control_conn,
	 * room.c's struct room_conn (loop.conn_size). */
};

/* How long a closing connection may take to accept its last bytes. */
#define CONN_CLOSE_GRACE_MS 2000

/* Monotonic milliseconds, for deadlines. */
uint64_t conn_clock_ms(void);

/* Mark c closing (once): it reads nothing more, and its owner closes it
 * when its queue is out or CONN_CLOSE_GRACE_MS have passed. With cut_off
 * (a client that does not read) the queued messages not yet started are
 * dropped. */
void conn_begin_close(struct conn *c, int cut_off);

/* Charge one handled request to c's bucket (cfg->rate tokens a second, at
 * most cfg->burst saved up). Returns 0, or the milliseconds until the debt
 * is repaid: the caller handles no further request of c and stops reading
 * it until then, so a flooding client is slowed by TCP back-pressure and
 * nothing it sent is dropped. */
long conn_take_token(struct conn *c, const struct config *cfg, uint64_t now);

/* The connections of one thread waiting for tokens. */
struct throttle_list {
	struct conn *head;
};

/* Stop reading c for wait_ms (the caller updates its epoll interest). */
void throttle_add(struct throttle_list *l, struct conn *c, long wait_ms);
/* Forget c (it is being destroyed). */
void throttle_remove(struct throttle_list *l, struct conn *c);
/* Unlink and return the connections whose wait is over (chained by
 * next_throttled, their throttled flag cleared). */
struct conn *throttle_take_due(struct throttle_list *l, uint64_t now);
/* The epoll timeout that wakes the thread for the next resumption: at most
 * dflt (which may be -1: none). */
int throttle_timeout(const struct throttle_list *l, uint64_t now, int dflt);

/* The connections of one thread holding part of a request when they last
 * read: each may be ended by the quiet period (cfg->end_quiet_ms after its
 * last byte). One deadline per connection, set only when a read leaves
 * bytes of an unfinished request; connections whose reads end at a request
 * boundary are never on it. Entries whose request completed meanwhile
 * (quiet_ms back to 0) are dropped lazily by the next quiet_timeout. */
struct quiet_list {
	struct conn *head;
};

/* Forget c (it is being destroyed). */
void quiet_remove(struct quiet_list *l, struct conn *c);
/* Unlink and return the connections whose quiet period is over (chained by
 * next_quiet, their quiet_ms cleared). */
struct conn *quiet_take_due(struct quiet_list *l, uint64_t now);
/* The epoll timeout that wakes the thread for the next quiet deadline: at
 * most dflt (which may be -1: none). Drops stale entries. */
int quiet_timeout(struct quiet_list *l, uint64_t now, int dflt);

/* What the owner of a conn does with its requests (see conn_process). */
struct conn_handler {
	/* a complete request */
	void (*request)(void *arg, struct conn *c, const struct proto_msg *m);
	/* a request the parser refused; fatal: the stream cannot be trusted */
	void (*reject)(void *arg, struct conn *c, enum proto_err err, int fatal);
	/* optional: nonzero when no further request may be handled at all */
	int (*halted)(void *arg);
	void *arg;
	/* optional: where c waits for its quiet period (NULL: never ended by one) */
	struct quiet_list *quiet;
};

/* Handle the complete requests buffered for c, in order, each charged to
 * its token bucket and to its address's (c->ipe), until c closes, pauses,
 * runs out of tokens (then it joins throttled and the caller stops reading
 * it) or h->halted() says so. Nothing is handled while the address is in
 * debt, whichever of its connections ran it up. At most CONN_PASS_REQUESTS
 * per call: then c joins throttled with no wait, so its owner handles the
 * rest next pass, after the other connections. Discards the bytes handled.
 * Owner thread only. */
#define CONN_PASS_REQUESTS 32
void conn_process(struct conn *c, const struct config *cfg, struct throttle_list *throttled,
		  const struct conn_handler *h);

/* c's quiet period is over (taken from quiet_take_due): if the bytes it
 * holds are a request complete but for its terminator, handle it as
 * conn_process would (proto_finish). Owner thread only. */
void conn_process_quiet(struct conn *c, const struct config *cfg, struct throttle_list *throttled,
		       const struct conn_handler *h);

/* Is c's pending partial request older than cfg->request_timeout? Keeps
 * track of when one began (bytes in the read buffer with no complete
 * request). The caller answers error 1 and closes. */
int conn_request_overdue(struct conn *c, const struct config *cfg, uint64_t now);

/* A new conn for fd (taken over) with limits from cfg, or NULL. */
struct conn *conn_create(int fd, const char *peer, const struct config *cfg);
/* The same, allocating size bytes (zeroed) for an owner's struct that
 * begins with the conn (size >= sizeof(struct conn)); conn_destroy frees
 * it all. */
struct conn *conn_create_size(int fd, const char *peer, const struct config *cfg, size_t size);
/* Tell a client we cannot take it, without waiting on it, and close fd. */
void conn_refuse(int fd, enum proto_err err, const char *detail);

/* Close the socket and free everything; uncount it from its address. */
void conn_destroy(struct conn *c);

/* Read what the socket has (one read, bounded by the buffer cap). Returns
 * bytes read (> 0), 0 at end of stream, -EAGAIN, or another -errno. */
long conn_read(struct conn *c);

/* Write what c has queued (never blocking) and register the epoll events it
 * needs now: requests unless it is paused, throttled or closing; writability
 * only while output is left over. Returns 1 when the owner must destroy c
 * (closing and all out, or the peer is gone), else 0. */
int conn_flush(struct conn *c, int epfd);

/* Queue m for sending (shared, not copied). 0, or -ENOBUFS when the send
 * queue bound is reached (the caller cuts the client off), or -ENOMEM.
 * On a connection that asked for sequence numbers, a numbered room
 * message that does not fit drops, instead, every numbered message
 * queued and not started (and itself), and queues one gap notice per
 * room naming the numbers dropped (docs/PROTOCOL.md §7.7); -ENOBUFS only
 * when the notices do not fit either, or nothing at all was written since
 * the last ones were queued and they still wait (a client that does not
 * read is still cut off). */
int conn_queue(struct conn *c, struct msg *m);

/* Queue the bytes data[0..len) of owner's block (whole frames: a piece of
 * a fan-out), taking a reference to owner; the same returns and the same
 * gap rule as conn_queue. */
int conn_queue_slice(struct conn *c, struct msg *owner, const char *data, size_t len);

/* Queue m and drop the caller's reference; the same returns. */
int conn_queue_take(struct conn *c, struct msg *m);

#endif

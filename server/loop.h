/* loop.h - one thread's event loop: what the acceptor and every room
 * thread run, each as a loop plus its handlers (struct loop_ops).
 *
 * A loop owns an epoll set, its connections (every conn it tracks is read,
 * written and closed by the loop's thread only), the dirty, throttled and
 * quiet lists, the deadlines every connection has (closing grace, request
 * timeout, quiet period), accepting on its listeners with one back-off at
 * EMFILE, and the bounded drain at shutdown. What differs between the
 * control port and a room port (the requests, memberships, attachments,
 * role deadlines, mailboxes) reaches it only through the handlers, called
 * on the loop's thread. Nothing here is locked. */
#ifndef ROOMD_LOOP_H
#define ROOMD_LOOP_H

#include <stddef.h>
#include <stdint.h>
#include "conn.h"
#include "config.h"
#include "metrics.h"
#include "net.h"
#include "proto.h"

struct iptable;

/* What the owner of a loop does; arg is passed back to each. Called on the
 * loop's thread only. */
struct loop_ops {
	/* a complete request of c */
	void (*request)(void *arg, struct conn *c, const struct proto_msg *m);
	/* queue error err (detail may be NULL) on c: a refused request, or a
	 * request left incomplete too long (the loop then closes c) */
	void (*reply_error)(void *arg, struct conn *c, enum proto_err err, const char *detail);
	/* optional: nonzero while no request may be handled at all */
	int (*halted)(void *arg);
	/* a descriptor added with loop_watch() is ready (events from epoll) */
	void (*marker)(void *arg, void *marker, uint32_t events);
	/* optional: c was just accepted and tracked (reading EPOLLIN) */
	void (*accepted)(void *arg, struct conn *c);
	/* optional: c begins to close (loop_close): the role's part, e.g.
	 * ending its memberships; may be called again for a closing c */
	void (*closing)(void *arg, struct conn *c);
	/* optional: c is about to be destroyed (forget every pointer to it) */
	void (*destroy)(void *arg, struct conn *c);
	/* optional: c was flushed and stays (it may be processed again) */
	void (*flushed)(void *arg, struct conn *c);
	/* optional: the dirty list was written (a pass's or a sweep's) */
	void (*flush_done)(void *arg);
	/* optional: the events of a pass were dispatched; before the
	 * resumptions, quiet periods, flush and sweep */
	void (*events_done)(void *arg);
	/* optional: the role's own deadlines for c at a sweep (every
	 * LOOP_SWEEP_MS), when no generic one closed it: it may loop_close() */
	void (*expired)(void *arg, struct conn *c, uint64_t now);
};

/* The descriptors a loop polls that are not connections: its listeners
 * and what its owner watches (signalfd, mailbox and backlog eventfds). */
#define LOOP_MARKERS 4

/* How often the deadlines are checked. */
#define LOOP_SWEEP_MS 500
/* At EMFILE (and ENFILE, ENOBUFS, ENOMEM), how long accepting pauses. */
#define LOOP_ACCEPT_PAUSE_MS 250

/* Embedded in its owner (struct acceptor, struct room). The owner may read
 * conns/nconns and set hold_input, max_conns and conn_size (before the
 * first connection); the rest is loop.c's. */
struct loop {
	const struct config *cfg;
	struct loop_ops ops;
	void *arg;
	char name[CONFIG_NAME_MAX + 8]; /* "acceptor" or "room NAME", for logs */
	enum metrics_conn_kind kind;    /* which connections' gauge it counts in */
	int epfd;
	int max_events;                 /* per epoll_wait (fairness) */
	struct iptable *ips;            /* per-address counts (shared, it locks) */
	long max_conns;                 /* accepted at most (0: no bound) */
	int hold_input;                 /* the owner's backlog: read no request */
	size_t conn_size;               /* what a connection's allocation holds: the
					 * owner's struct beginning with the conn
					 * (default sizeof(struct conn)) */
	/* the connections: dense (conn->slot), and by fd when indexed */
	struct conn **conns;
	size_t nconns, conns_cap;
	struct conn **by_fd;            /* NULL unless LOOP_INDEX_FD */
	size_t by_fd_cap;
	struct conn *dirty;             /* output queued this pass */
	struct throttle_list throttled; /* out of tokens, or yielding a pass */
	struct quiet_list quiet;        /* holding part of a request */
	uint64_t next_sweep_ms;
	/* listeners (owned by the owner; NULL: none) and the pause at EMFILE */
	const struct net_listeners *lis;
	char listen_marks[NET_LISTEN_MAX]; /* listener i's epoll data.ptr */
	int accept_paused;
	uint64_t accept_resume_ms;
	int accept_err_logged;          /* the shortage was logged (once per episode) */
	int input_pending;              /* a transport holds input no event announces */
	/* the owner's other descriptors */
	void *marks[LOOP_MARKERS];
	int mark_fds[LOOP_MARKERS];
	size_t nmarks;
};

/* Keep an index by descriptor so loop_conn_by_fd() is O(1) (the acceptor:
 * deliveries name their control connection by fd). */
#define LOOP_INDEX_FD 1

/* Set up l (empty, with its own epoll set). name is for logs. 0 or -errno.
 * loop_fini() is safe after a failure too. */
int loop_init(struct loop *l, const struct config *cfg, const char *name,
	      enum metrics_conn_kind kind, struct iptable *ips, int max_events, int flags, const struct loop_ops *ops, void *arg);

/* Destroy every connection left (nothing flushed) and free l. */
void loop_fini(struct loop *l);

/* Accept on every listener of lis (kept by the caller, which closes it
 * after loop_fini). 0 or -errno. */
int loop_listen(struct loop *l, const struct net_listeners *lis);

/* Poll fd (not a connection) for EPOLLIN: ops.marker gets marker when it
 * is ready. At most LOOP_MARKERS. 0 or -errno. */
int loop_watch(struct loop *l, int fd, void *marker);

/* One pass: wait up to timeout_ms (-1: no limit, shortened by the
 * deadlines), handle the markers' events, then accept and read, then
 * ops.events_done, then resume throttled connections, end quiet
 * periods, flush, and every LOOP_SWEEP_MS check deadlines. 0, or -1 when
 * epoll fails (logged). */
int loop_step(struct loop *l, int timeout_ms);

/* Take fd over as a connection from peer (counted against its address,
 * refused silently over its limits): the conn, or NULL (fd closed). */
struct conn *loop_adopt(struct loop *l, int fd, const char *peer);

/* c has output queued: it is written at the end of this pass. */
void loop_mark_dirty(struct loop *l, struct conn *c);

/* Close c once what it queued is written (cut_off: a client that does not
 * read: only a partly written frame is finished), within
 * CONN_CLOSE_GRACE_MS; it reads nothing more. Calls ops.closing. */
void loop_close(struct loop *l, struct conn *c, int cut_off);

/* Handle the complete requests buffered for c now (conn_process with the
 * loop's handlers), then mark it dirty. */
void loop_process(struct loop *l, struct conn *c);

/* Handle no request of c for wait_ms (0: next pass, after the others). */
void loop_throttle(struct loop *l, struct conn *c, long wait_ms);

/* Write every dirty connection now (the loop does at the end of a pass). */
void loop_flush(struct loop *l);

/* Shutdown: give every connection's queued output up to budget_ms to
 * leave (nothing is read; listeners and markers are no longer polled),
 * then destroy them all. */
void loop_drain(struct loop *l, long budget_ms);

/* The connection on fd (LOOP_INDEX_FD), or NULL. */
static inline struct conn *loop_conn_by_fd(const struct loop *l, int fd)
{
	return fd >= 0 && (size_t)fd < l->by_fd_cap ? l->by_fd[fd] : NULL;
}

#endif

/* control.h - the control-port commands (HELO, KILL_SERVICE, JOIN_CHATROOM,
 * LEAVE_CHATROOM, DISCONNECT, CHAT), dispatched through a table.
 * What a control connection keeps beyond the generic conn (its
 * memberships, struct membership; extension frames; the HISTORY wait) is
 * this module's struct control_conn: conn.h knows nothing of rooms.
 *
 * Runs on the acceptor thread only: it owns the control connections the
 * handlers reply to. Replies are queued on the connection; the caller
 * flushes. Rooms are opened and retired through rooms.h; another control
 * connection is reached only through struct control_peers. */
#ifndef ROOMD_CONTROL_H
#define ROOMD_CONTROL_H

#include <stdint.h>
#include "config.h"
#include "conn.h"
#include "proto.h"

struct registry;
struct rooms;
struct store;
struct msg;

/* The other control connections, as PRIVATE needs them: named by (fd, id),
 * owned by the caller of control_handle(). */
struct control_peers {
	/* 1 when (fd, id) is a live control connection, not closing, that
	 * takes extension frames; else 0. */
	int (*reachable)(void *arg, int fd, uint64_t id);
	/* Queue m (shared) on reachable connection (fd, id) and flush it this
	 * pass; a client that does not read is cut off. 0 or -errno. */
	int (*send)(void *arg, int fd, uint64_t id, struct msg *m);
	void *arg;
};
struct room;
struct room_event;

/* One membership of a control connection (owned with the conn). */
struct membership {
	long join_id;
	long ref;
	char name[CONFIG_NAME_MAX + 1];      /* CLIENT_NAME it joined with */
	char room_name[CONFIG_NAME_MAX + 1]; /* for the idempotent re-join */
	unsigned port;      /* room port, for the re-join reply */
	struct room *room;
	struct room_event *leave; /* preallocated: leaving cannot fail */
};

/* A control connection: the generic conn (conn.h, tracked by the
 * acceptor's loop) and what the control port keeps per connection. Every
 * conn of the acceptor's loop is one (loop.conn_size = sizeof); acceptor
 * thread only. */
struct control_conn {
	struct conn conn;  /* first: the loop's struct conn * points here */
	/* it used an extension request, so it may be sent extension frames it
	 * did not ask for (private messages) */
	int ext;
	/* a handler asks that the next request wait this long (the room it
	 * relayed to is behind); the acceptor applies it */
	long backoff_ms;
	/* a HISTORY pauses the connection until its reply is queued (1:
	 * waiting for the room) and written (2: until out.sent reaches
	 * history_mark) */
	int history_wait;
	unsigned long long history_mark;
	/* memberships, at most max_rooms_per_client */
	struct membership *ms;
	size_t nms;
};

static inline struct control_conn *control_conn(struct conn *c)
{
	return (struct control_conn *)c;
}

/* Free what c keeps beyond the conn (its memberships must be ended or
 * forgotten first). Before conn_destroy. */
void control_conn_fini(struct conn *c);

/* c's membership join_id, or NULL. Acceptor thread. */
struct membership *control_membership(struct conn *c, long join_id);
/* Copy m into c's memberships: 0, -ENOSPC at max, -ENOMEM. */
int control_add_membership(struct conn *c, const struct membership *m, long max);
/* Forget c's membership join_id (nothing when it has none). */
void control_remove_membership(struct conn *c, long join_id);

struct control {
	const struct config *cfg;
	struct registry *reg;
	struct store *store;        /* NULL: persistence off */
	struct rooms *rooms;        /* opens and retires the room threads */
	struct control_peers peers; /* for a private message to another connection */
	unsigned port;              /* the control port actually bound */
	struct cluster *cluster;    /* NULL: a single node; else names the
				     * cluster's state (error 11 while Redis
				     * cannot take messages) */
};

enum control_result {
	CONTROL_OK,    /* the connection goes on */
	CONTROL_CLOSE, /* flush the replies, then close (DISCONNECT) */
	CONTROL_STOP,  /* shut the daemon down (KILL_SERVICE) */
};

/* Handle one parsed request from control connection c. */
enum control_result control_handle(struct control *ctl, struct conn *c, const struct proto_msg *m);

/* Reply to a request the parser rejected. */
void control_reply_error(struct conn *c, enum proto_err err, const char *detail);

/* Drop every membership of c, announcing each leave to its room (the
 * connection itself gets nothing: it is going away). */
void control_drop_memberships(struct control *ctl, struct conn *c);

/* Membership join_id of c asked to leave on its room port (lab-era
 * clients, SPEC §2.4): end it, announced, and have the room answer on that
 * room connection. Nothing when it has ended already. */
void control_leave_from_room(struct control *ctl, struct conn *c, long join_id);

/* Free c's memberships without announcing (shutdown: rooms are gone). */
void control_forget_memberships(struct conn *c);

/* Cluster mode: the answer q to a request c made (c NULL: gone
 * meanwhile), or a private message from another node for c. Consumes q.
 * Nonzero when c was paused for it and may read on now. */
struct cluster_req;
int control_cluster_answer(struct control *ctl, struct conn *c, struct cluster_req *q);

#endif

/* room.h - one chatroom: a thread with its own listening port that relays
 * the room's traffic to its members.
 *
 * rooms.c starts and stops rooms and control.c tells them about membership
 * changes and chat through the room's mailbox, both on the acceptor thread;
 * the room thread owns the room port, the attached room connections and its
 * delivery list. What it hands back goes through its uplink (below), which
 * names no other module: a room depends only on the mailbox and the
 * delivery module. */
#ifndef ROOMD_ROOM_H
#define ROOMD_ROOM_H

#include <stddef.h>
#include <stdint.h>

struct cluster;
struct config;
struct iptable;
struct mailbox;
struct msg;
struct proto_chat_layout;
struct room;
struct store;

/* What a room thread reaches outside itself, given at room_start. */
struct room_uplink {
	struct mailbox *mbox;  /* drained by the owner of the control connections:
				* the room's fan-outs, delivery batches and
				* room-port requests, in one order (delivery.h); woken as
				* the room thread exits, so it is reaped at once.
				* It outlives every room thread. */
	struct iptable *ips;   /* per-address counts, shared by every port (it locks) */
	unsigned control_port; /* named in the error a JOIN on the room port gets */
	struct cluster *cluster; /* NULL: a single node; else every event goes
				  * through the room's Redis stream and comes
				  * back from it (cluster.h, docs/CLUSTER.md) */
};

/* Bind the room port (port 0 with a range: the first free port of the
 * range; port 0 without one: any free port) and start the room thread,
 * which first loads its history from store (NULL: none) and then hands it
 * every member's message; it posts to up (copied). Returns the room, or
 * NULL with *err a negative errno (-EADDRINUSE when no port is free).
 * Acceptor thread only. */
struct room *room_start(const struct config *cfg, const struct room_uplink *up, struct store *store,
			const char *name, long ref, unsigned port, long max_members, long history,
			int *err);

/* The port the room listens on. Any thread. */
unsigned room_port(const struct room *r);

/* The following post to the room's mailbox and return at once; the room
 * thread applies them in order. They take over the caller's reference to
 * the message, even on failure (a NULL message announces nothing). */

struct room_event;

/* A member joined over control connection (ctl_fd, ctl_id) from address
 * ctl_peer (the only address its capability is accepted from on the room
 * port): add it to the delivery list, then relay announce to every member,
 * the new one included. numbered: the control connection asked for
 * sequence numbers (§7.7), so a room connection the member attaches gets
 * them too. *leave receives the event its removal will use, so
 * that leaving never fails (with it, the request that carries a LEAVE made
 * on the room port to the acceptor). 0, or -ENOMEM (nothing posted). */
int room_add_member(struct room *r, long join_id, const char *name, int ctl_fd,
		    uint64_t ctl_id, const char *ctl_peer, int numbered, struct msg *announce,
		    struct room_event **leave);

/* The same, with joined (cluster mode: the JOINED_CHATROOM reply, taken
 * over; NULL: none): the room delivers it to the control connection when
 * the member's own join entry comes back from the room's stream, just
 * before that announcement, and the connection then reads on (the caller
 * paused it). */
int room_add_member_joined(struct room *r, long join_id, const char *name, int ctl_fd,
			   uint64_t ctl_id, const char *ctl_peer, int numbered, struct msg *announce,
			   struct msg *joined, struct room_event **leave);

/* A member left: stop delivering to it (close its room connection), then
 * relay announce to the remaining members. Consumes leave. When self is
 * not NULL (LEAVE_CHATROOM) it goes back to the leaver's control
 * connection as an ack delivery, after everything relayed before. */
void room_remove_member(struct room *r, struct room_event *leave, long join_id, int ctl_fd,
			uint64_t ctl_id, struct msg *announce, struct msg *self);

/* The same for a LEAVE_CHATROOM the member made on its room port (SPEC
 * §2.4): self (LEFT_CHATROOM and its own copy of announce; NULL when it
 * could not be made) goes to the room connection that asked, if it is
 * still attached to the member, after everything queued there before;
 * then nothing more for this room goes to it. Consumes leave. */
void room_remove_member_here(struct room *r, struct room_event *leave, long join_id,
			     struct msg *announce, struct msg *self);

/* Free a leave event that will never be posted (shutdown). */
void room_event_free(struct room_event *ev);

/* Relay a CHAT frame to every member. A member's message (not a server
 * notice) comes with member_text, where its name and text lie in m (as
 * proto_fmt_chat() says): it is numbered (members that asked get it after
 * a SEQ frame) and kept in the room's history. NULL: a
 * notice, neither numbered nor kept. 0, or -ENOMEM (nothing relayed). */
int room_relay(struct room *r, struct msg *m, const struct proto_chat_layout *member_text);

/* Nonzero while the room has more relays waiting than it should take:
 * control-port CHATs posted and not yet relayed, or deliveries handed to
 * the acceptor over the backlog bound. The acceptor then makes the sender
 * wait before its next request, so a flood slows down through TCP. Any
 * thread (atomic reads). */
int room_relay_busy(struct room *r);

/* Send member join_id its room's history (HISTORY: head, COUNT entries) on
 * its control connection (ctl_fd, ctl_id), in at most budget bytes of send
 * queue cost (reserved by the caller; the oldest entries are left out if
 * the history grew meanwhile). after >= 0: HISTORY_AFTER, the entries
 * numbered after it only, under its own head (at most
 * PROTO_HISTORY_AFTER_HEAD_MAX bytes, which budget must include). The
 * answer always comes back, as a DELIVERY_HISTORY batch (no pieces when it
 * failed). 0, or -ENOMEM. */
int room_history(struct room *r, long join_id, int ctl_fd, uint64_t ctl_id, size_t budget,
		 long after);

/* What a HISTORY reply costs now in a send queue (bytes and pieces, as
 * sendq_push_pieces charges them). Any thread. */
size_t room_history_cost(struct room *r);

/* Nonzero once a member's message was kept in the room's history (relayed
 * with record, from either port, or loaded from the store). Any thread. */
int room_has_history(struct room *r);

/* A reload: the room switches to cfg (it takes a reference) when its
 * thread takes this from its mailbox, after everything posted before, and
 * keeps history messages from then on (-1: as many as now), dropping the
 * oldest beyond it. Nothing is posted to a room asked to stop. 0, or
 * -ENOMEM (the room stays on its config). Acceptor thread only. */
int room_reconfigure(struct room *r, const struct config *cfg, long history);

/* Nonzero once the thread has finished (room_stop() will not wait). */
int room_exited(struct room *r);

/* Ask the thread to stop, without waiting; the room's port is released at
 * once (no more connections, and free for another room). The thread wakes
 * its uplink's mailbox as it ends. Acceptor thread only. */
void room_request_stop(struct room *r);

/* Stop the thread (it flushes what is queued, bounded in time), join it and
 * free the room. Acceptor thread only. */
void room_stop(struct room *r);

#endif

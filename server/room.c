/* room.c - a chatroom's thread: its listening port, its attached room
 * connections, and the relay of its traffic.
 *
 * The thread is a loop (loop.c: epoll, the room connections, their
 * deadlines, accept, the drain at shutdown) plus the handlers here
 * (room_ops): room-port requests, attachment, the attach deadline, the
 * mailbox and the backlog wake-up.
 *
 * Ownership: the room thread alone touches everything in struct room except
 * the mailbox (any thread posts) and the read-only name/ref/port; cfg is
 * the thread's reference to a config snapshot, swapped for the next one
 * when it takes an EV_CONFIG from its mailbox (a reload). The
 * delivery list (members) mirrors the registry, updated from the mailbox in
 * order, so joins, leaves and messages reach everyone in one total order;
 * each member's place in it comes allocated with its join, so no member is
 * ever registered but left out of it.
 * Members with an attached room connection get traffic from this thread;
 * the others through the acceptor, as one fan-out per loop pass (the pass's
 * frames and those members, each listed once; delivery.h), which is sealed
 * and posted early whenever that set of members changes (a join, a leave,
 * an attach, a detach), so everyone gets exactly what was relayed while it
 * was a member, once, by one path.
 *
 * Sequence numbers (docs/PROTOCOL.md §7.7): the thread numbers its members'
 * messages in that same order (r->seq, stored with the history, so it goes
 * on after a restart) and, when a member asked for numbers, formats each
 * message's numbered form once into a block of its own (seq_arena); the
 * delivery list says which member gets which form.
 *
 * Room-port connections count against max_clients_per_ip with the control
 * connections (the shared, locked iptable); before it attaches, a room
 * connection is "pending": at most room_unattached_max per room (a new one
 * pushes out the oldest, of its own address first), for
 * ROOM_ATTACH_TIMEOUT_MS. A capability (ref,
 * JOIN_ID, name) is accepted only from the member's control-connection
 * address, and refused ones are counted per address and throttled: see
 * room_check_capability(). A member's own HELO, CHAT, LEAVE_CHATROOM and
 * DISCONNECT are served here without an ATTACH (lab-era clients, SPEC
 * §2.4): the first valid request attaches; a LEAVE or DISCONNECT is handed
 * to the acceptor (struct room_request), which owns the membership, and a
 * LEAVE's answer comes back here with the member's removal.
 *
 * Cluster mode (up.cluster, docs/CLUSTER.md): an event made here (a join,
 * a leave, a CHAT from either port, a notice) is not relayed here but
 * appended to the room's Redis stream (cluster_append, to the cluster
 * thread); what the cluster thread reads back from the stream comes to the
 * mailbox as EV_STREAM, in stream order, and is relayed, numbered and kept
 * exactly as a local event is on a single node. A joiner is in the
 * delivery list from its EV_ADD but "waiting": it gets nothing before its
 * own join entry, so every member on every node sees the one order. A
 * CHAT Redis cannot take gets error 11 (room port) or is refused by the
 * acceptor before it is posted (control port).
 *
 * Back-pressure: what the room has handed the acceptor and the acceptor has
 * not applied yet is counted in its delivery_backlog. Over the bound
 * (DELIVERY_BACKLOG_*, checked before each room-port request) the room
 * stops reading its room connections until the acceptor has drained it to
 * half and wakes it: flooders slow down through TCP, readers lose nothing. */
#include "room.h"
#include "cluster.h"
#include "config.h"
#include "conn.h"
#include "delivery.h"
#include "iptable.h"
#include "log.h"
#include "loop.h"
#include "mailbox.h"
#include "metrics.h"
#include "msg.h"
#include "net.h"
#include "proto.h"
#include "store.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum room_event_type { EV_ADD, EV_REMOVE, EV_RELAY, EV_HISTORY, EV_STOP, EV_CONFIG, EV_STREAM };

struct room_event {
	struct mail mail;  /* mail.type is an enum room_event_type */
	long join_id;
	int ctl_fd;
	uint64_t ctl_id;
	struct msg *msg;
	struct msg *self; /* EV_REMOVE: the leaver's LEFT reply, or NULL */
	char peer[NET_ADDRSTRLEN]; /* EV_ADD: the member's control-connection address */
	struct delivery_batch *answer; /* EV_REMOVE, EV_HISTORY: the answer's batch,
					* preallocated */
	struct room_request *req; /* EV_ADD: the member's room-port LEAVE request,
				   * preallocated (delivery.h) */
	struct member *member; /* EV_ADD: its place in the delivery list,
				* preallocated, so that adding cannot fail */
	struct proto_chat_layout chat; /* EV_RELAY with record: where the name
					* and text lie in msg */
	int here;         /* EV_REMOVE: self goes to the room connection that
			   * asked (a LEAVE made on the room port) */
	size_t budget;    /* EV_HISTORY: send queue cost reserved for the reply */
	long after;       /* EV_HISTORY: HISTORY_AFTER's SEQ (-1: a plain HISTORY) */
	int record;       /* EV_RELAY: a member's message, kept in the history */
	const struct config *cfg; /* EV_CONFIG: the snapshot to switch to (a reference) */
	long history;     /* EV_CONFIG: messages to keep from now on */
	int numbered;     /* EV_ADD: the member asked for sequence numbers */
	struct cluster_entry *entry; /* EV_STREAM: an entry of the room's stream */
	char name[CONFIG_NAME_MAX + 1];
};

/* A message kept for HISTORY: its ENTRY frame, formatted once when kept
 * and carved from the room's history blocks (consecutive entries lie end to
 * end, so a HISTORY reply references them as a few pieces, never copying
 * them), and where its name and text lie in it (for the store). */
struct hist_entry {
	struct msg *frame;
	time_t when;
	long seq;         /* its sequence number (§7.7) */
	size_t name_off, name_len, text_off, text_len;
	int run_start;    /* not adjacent to the entry before it (or the oldest) */
};

/* A membership that ended through a LEAVE made on this room port: a
 * repeat of that LEAVE (SPEC §2.1: idempotent) from the same address is
 * answered with the echo without counting it as a refused capability, so
 * a lab client repeating its own LEAVE cannot get its address throttled.
 * It grants nothing: the membership is gone. */
struct departed {
	long join_id;
	char name[CONFIG_NAME_MAX + 1];
	char peer[NET_ADDRSTRLEN];
	uint64_t until_ms; /* 0 (or past): free */
};
/* How many a room remembers, and for how long: enough for the repeats of
 * one half-minute in a lab room; an older one is overwritten (a repeat of
 * it is then counted like any unknown id). */
#define ROOM_DEPARTED 8
#define ROOM_DEPARTED_MS 30000

struct member {
	long join_id;
	char name[CONFIG_NAME_MAX + 1];
	int ctl_fd;
	uint64_t ctl_id;
	char peer[NET_ADDRSTRLEN]; /* its control connection's address: the only
				    * one its capability is accepted from */
	struct conn *attached; /* NULL: delivered over the control connection */
	struct room_request *leave_req; /* for a LEAVE made here, or for closing
					 * its control connection when a delivery
					 * cannot be queued; NULL once posted */
	int unreachable;       /* a delivery could not be queued: its control
				* connection is closing, nothing more goes there */
	int numbered;          /* it asked for sequence numbers: so does the
				* room connection it attaches (§7.7) */
	int waiting;           /* cluster mode: nothing goes to it before its
				* own join entry comes back from the stream */
	struct msg *joined;    /* cluster mode: its JOINED reply, sent then */
	struct delivery_batch *joined_answer; /* ...in this batch, preallocated */
	struct room_event *leave_ev; /* cluster mode: its LEAVE, held until its
				      * own leave entry comes back (it gets the
				      * room's order up to there, then LEFT) */
	struct member *next;   /* the room's delivery list */
};

/* A room connection: the generic conn (conn.h, tracked by the room's
 * loop) and what the room keeps per connection. Every conn of a room's
 * loop is one (loop.conn_size); room thread only. */
struct room_conn {
	struct conn conn;      /* first: the loop's struct conn * points here */
	long attached_id;      /* the membership attached here (0: none yet) */
	/* the member whose LEAVE was answered here, whose control connection a
	 * DISCONNECT sent here next closes (left_name empty: none) */
	int left_ctl_fd;
	uint64_t left_ctl_id;
	char left_name[CONFIG_NAME_MAX + 1];
};

static struct room_conn *rconn(struct conn *c)
{
	return (struct room_conn *)c;
}

struct room {
	/* room thread only after room_start: its reference to the config */
	const struct config *cfg;
	struct room_uplink up; /* where deliveries and room-port requests go */
	struct store *store; /* NULL: persistence off */
	char name[CONFIG_NAME_MAX + 1];
	long ref;
	unsigned port;
	pthread_t thread;
	struct mailbox mbox; /* the only field other threads touch */
	struct room_metrics *metrics; /* counters: the room thread writes them,
				       * the scrape reads them (metrics.h) */
	struct room_event stop_event;
	int stop_posted;     /* acceptor thread only */
	atomic_int exited;   /* set by the room thread as its last act */
	atomic_long relays_posted; /* EV_RELAYs posted and not yet relayed */
	atomic_size_t hist_on; /* hist_cap, for room_relay on the acceptor thread
				* (the room thread changes it on a reload) */
	atomic_int kept;     /* a member's message was ever kept in the history:
			      * set by room_relay (the caller's thread) and by
			      * the room thread (room-port CHAT, loaded history) */
	/* room thread only */
	struct net_listeners lis; /* the room port, one per [server] bind address */
	struct loop loop;         /* epoll, the room connections, deadlines */
	int stopping;
	struct member *members;       /* the delivery list, in join order, each node
				       * allocated with its join (room_add_member) */
	struct member **members_end;  /* the last node's next (&members when empty) */
	size_t nmembers;
	size_t nattached;             /* members with a room connection */
	struct conn **pending;        /* not attached yet, not closing: oldest first */
	size_t npending;              /* at most cfg->room_unattached_max */
	int evict_logged;             /* a pending connection was pushed out (once) */
	struct iptable *ips;          /* per-address counts, shared (it locks) */
	/* For the acceptor, this pass (NULL: none open; members_changed() seals
	 * them): the members that asked for sequence numbers get their fan-out
	 * of the numbered forms, the others the plain frames. */
	struct delivery_fanout *fan, *fan_seq;
	struct msg_arena arena;         /* blocks the relayed frames are carved from */
	long seq;                       /* the last member's message's number (0: none) */
	size_t nnumbered;               /* members that asked for numbers */
	struct msg_arena seq_arena;     /* blocks their numbered forms are carved from */
	struct hist_entry *hist;        /* ring of the last hist_cap messages */
	size_t hist_cap, hist_head, hist_count;
	size_t hist_bytes, hist_runs;   /* the entries' bytes; pieces they make */
	struct msg_arena hist_arena;    /* blocks the ENTRY frames are carved from */
	time_t hist_when;               /* the last entry's time... */
	char hist_when_text[32];        /* ...formatted (one strftime a second) */
	atomic_size_t reply_cost;       /* a full HISTORY reply's; read by the acceptor */
	struct delivery_backlog *backlog; /* deliveries handed over, not applied */
	int input_held;                 /* backlog over its bound: room conns not read */
	struct departed departed[ROOM_DEPARTED]; /* the last who left through
						  * the room port */
	size_t departed_next;
	unsigned long holds;            /* times input was held */
	uint64_t stop_at;               /* cluster mode: EV_STOP came while leaves were
					 * held: stop when they are answered, or then */
	struct cluster_room *cr;        /* cluster mode: the room's stream (NULL: a
					 * single node); opened before the thread
					 * starts, closed by room_free */
};


/* epoll data.ptr markers for the descriptors that are not conns. */
static char mailbox_marker, backlog_marker;

#define ROOM_EVENTS 64
/* Relayed CHATs are carved from blocks this big: about a hundred typical
 * messages, one loop pass of a busy room. */
#define ROOM_BLOCK_BYTES 16384
/* A room connection must attach within this time; an unattached one does
 * nothing but hold a descriptor. A client attaches right after its JOIN,
 * so a few seconds are plenty even over a slow link. */
#define ROOM_ATTACH_TIMEOUT_MS 3000
/* Control-port CHATs waiting in the mailbox beyond which their senders are
 * made to wait (room_relay_busy): with the delivery backlog, what bounds
 * the fan-out the acceptor can hand a room faster than it relays. */
#define ROOM_RELAYS_POSTED_MAX 256
#define ROOM_STOP_FLUSH_MS 700 /* part of the daemon's 2 s shutdown budget */
/* Cluster mode: a stopping room waits this long for the leave entries of
 * its last leavers (a Redis round trip or two), checking this often. */
#define ROOM_LEAVE_WAIT_MS 500
#define ROOM_LEAVE_POLL_MS 50

/* ---- posting (any thread) ---- */

static void post_event(struct room *r, struct room_event *ev, int type, long join_id,
		       const char *name, int ctl_fd, uint64_t ctl_id, struct msg *m)
{
	ev->mail.type = type;
	ev->join_id = join_id;
	ev->ctl_fd = ctl_fd;
	ev->ctl_id = ctl_id;
	ev->msg = m;
	if (name)
		snprintf(ev->name, sizeof(ev->name), "%s", name);
	/* A relay may wake the room at the end of the poster's pass (the
	 * acceptor's: mailbox_defer_wakes), with that pass's other relays. */
	if (type == EV_RELAY)
		mailbox_post_deferrable(&r->mbox, &ev->mail);
	else
		mailbox_post(&r->mbox, &ev->mail);
}

int room_add_member(struct room *r, long join_id, const char *name, int ctl_fd,
		    uint64_t ctl_id, const char *ctl_peer, int numbered, struct msg *announce,
		    struct room_event **leave)
{
	return room_add_member_joined(r, join_id, name, ctl_fd, ctl_id, ctl_peer, numbered, announce,
				      NULL, leave);
}

int room_add_member_joined(struct room *r, long join_id, const char *name, int ctl_fd,
			   uint64_t ctl_id, const char *ctl_peer, int numbered, struct msg *announce,
			   struct msg *joined, struct room_event **leave)
{
	struct room_event *ev = calloc(1, sizeof(*ev));

	/* The member's place in the delivery list, the leave event and the
	 * batch for its answer are allocated now, so that joining and leaving
	 * cannot fail in the room thread and a LEAVE is always answered; so is
	 * the request a LEAVE made on the room port travels in. */
	*leave = calloc(1, sizeof(**leave));
	if (*leave)
		(*leave)->answer = delivery_batch_create(1);
	if (ev) {
		ev->req = room_request_create(ROOM_REQ_LEAVE);
		ev->member = calloc(1, sizeof(*ev->member));
		ev->self = joined; /* EV_ADD: the JOINED reply it holds */
		if (joined)
			ev->answer = delivery_batch_create(1);
	}
	if (!ev || !ev->req || !ev->member || !*leave || !(*leave)->answer ||
	    (joined && !ev->answer)) {
		if (ev)
			msg_unref(&ev->self);
		else
			msg_unref(&joined);
		room_event_free(ev);
		room_event_free(*leave);
		*leave = NULL;
		msg_unref(&announce);
		return -ENOMEM;
	}
	snprintf(ev->peer, sizeof(ev->peer), "%s", ctl_peer);
	ev->numbered = numbered;
	post_event(r, ev, EV_ADD, join_id, name, ctl_fd, ctl_id, announce);
	return 0;
}

void room_remove_member(struct room *r, struct room_event *leave, long join_id, int ctl_fd,
			uint64_t ctl_id, struct msg *announce, struct msg *self)
{
	leave->self = self;
	post_event(r, leave, EV_REMOVE, join_id, NULL, ctl_fd, ctl_id, announce);
}

void room_remove_member_here(struct room *r, struct room_event *leave, long join_id,
			     struct msg *announce, struct msg *self)
{
	leave->self = self;
	leave->here = 1;
	post_event(r, leave, EV_REMOVE, join_id, NULL, -1, 0, announce);
}

void room_event_free(struct room_event *ev)
{
	if (ev) {
		delivery_free(ev->answer);
		free(ev->req);
		free(ev->member);
		free(ev->entry);
		config_release(ev->cfg);
	}
	free(ev);
}

int room_relay(struct room *r, struct msg *m, const struct proto_chat_layout *member_text)
{
	struct room_event *ev = calloc(1, sizeof(*ev));
	int record = member_text != NULL;

	if (!ev) {
		msg_unref(&m);
		return -ENOMEM;
	}
	atomic_fetch_add_explicit(&r->relays_posted, 1, memory_order_relaxed);
	ev->record = record;
	if (record)
		ev->chat = *member_text;
	/* Set now, not when the room thread gets to it, so that a leave
	 * right after a CHAT sees the room has history. */
	if (record && atomic_load(&r->hist_on) > 0)
		atomic_store(&r->kept, 1);
	post_event(r, ev, EV_RELAY, 0, NULL, -1, 0, m);
	return 0;
}

int room_history(struct room *r, long join_id, int ctl_fd, uint64_t ctl_id, size_t budget,
		 long after)
{
	struct room_event *ev = calloc(1, sizeof(*ev));

	/* The answer's batch now: the reply always comes back, so the
	 * connection paused for it never waits forever. */
	if (ev)
		ev->answer = delivery_batch_create(1);
	if (!ev || !ev->answer) {
		free(ev);
		return -ENOMEM;
	}
	ev->budget = budget;
	ev->after = after;
	post_event(r, ev, EV_HISTORY, join_id, NULL, ctl_fd, ctl_id, NULL);
	return 0;
}

size_t room_history_cost(struct room *r)
{
	return atomic_load(&r->reply_cost);
}

int room_relay_busy(struct room *r)
{
	return atomic_load_explicit(&r->relays_posted, memory_order_relaxed) >= ROOM_RELAYS_POSTED_MAX ||
	       delivery_backlog_over(r->backlog, 0, 0);
}

unsigned room_port(const struct room *r) { return r->port; }

/* ---- members and connections (room thread) ---- */

/* The link to member join_id in the delivery list (*link is NULL when it
 * is not there). */
static struct member **member_link(struct room *r, long join_id)
{
	struct member **link = &r->members;

	while (*link && (*link)->join_id != join_id)
		link = &(*link)->next;
	return link;
}

static struct member *find_member(struct room *r, long join_id)
{
	return *member_link(r, join_id);
}

static void pending_remove(struct room *r, struct conn *c)
{
	for (size_t i = 0; i < r->npending; i++) {
		if (r->pending[i] == c) {
			memmove(&r->pending[i], &r->pending[i + 1], (r->npending - i - 1) * sizeof(c));
			r->npending--;
			return;
		}
	}
}

static void post_batch(struct room *r);
static void drop_joined(struct member *m);

/* The set of members delivered to through the acceptor is about to change:
 * the open fan-out, whose member list is that of before, goes now. */
static void members_changed(struct room *r)
{
	post_batch(r);
}

static void detach(struct room *r, struct conn *c)
{
	struct member *m = rconn(c)->attached_id ? find_member(r, rconn(c)->attached_id) : NULL;

	if (m && m->attached == c) {
		members_changed(r);
		m->attached = NULL; /* back to delivery over the control connection */
		r->nattached--;
		metrics_gauge_add_own(&r->metrics->attached, -1);
	}
	rconn(c)->attached_id = 0;
}

/* The loop closes c (loop_close: what it has queued is written first) or
 * destroys it: it is detached from its member at once, and is no longer
 * a pending connection. */
static void forget_conn(void *arg, struct conn *c)
{
	struct room *r = arg;

	pending_remove(r, c);
	detach(r, c);
}

/* A message for m, who has no room connection, could not be queued for
 * the acceptor (out of memory). Rather than m missing it unnoticed, its
 * control connection is closed (its memberships end, announced), after
 * what was queued for it before, through its preallocated request; and
 * nothing more is queued for it meanwhile. */
static void close_unreachable(struct room *r, struct member *m)
{
	members_changed(r);
	m->unreachable = 1;
	if (!m->leave_req) {
		log_error("room %s: out of memory: a message to %s could not be queued; its LEAVE "
			  "is under way", r->name, m->name);
		return;
	}
	log_error("room %s: out of memory: a message to %s could not be queued: closing its "
		  "control connection", r->name, m->name);
	m->leave_req->kind = ROOM_REQ_DISCONNECT;
	post_batch(r);
	room_request_post(r->up.mbox, m->leave_req);
	m->leave_req = NULL;
}

/* m, attached, gets msg on its room connection. */
static void deliver(struct room *r, struct member *m, struct msg *msg)
{
	struct conn *c = m->attached;

	if (c->closing)
		return;
	if (conn_queue(c, msg) < 0) {
		log_warn("room %s: %s (%s) is not reading: room connection cut off",
			 r->name, m->name, c->peer);
		metrics_room_cut_off(r->metrics);
		metrics_cut_off(METRICS_ROOM);
		loop_close(&r->loop, c, 1);
		return;
	}
	loop_mark_dirty(&r->loop, c);
}

/* Is m delivered to through the acceptor, in the fan-out of the numbered
 * forms (seq) or of the plain frames? */
static int fanout_member(const struct member *m, int seq)
{
	return !m->attached && !m->unreachable && !m->waiting && m->numbered == seq;
}

static struct delivery_fanout **fanout_of(struct room *r, int seq)
{
	return seq ? &r->fan_seq : &r->fan;
}

/* Open this pass's fan-out (seq: of the numbered forms): its members, in
 * join order (none: it stays NULL). 0 or -ENOMEM. */
static int fanout_open(struct room *r, int seq)
{
	struct delivery_fanout **fp = fanout_of(r, seq);
	size_t n = 0;

	for (struct member *m = r->members; m; m = m->next)
		n += (size_t)fanout_member(m, seq);
	if (n == 0)
		return 0;
	*fp = delivery_fanout_create(n);
	if (!*fp)
		return -ENOMEM;
	for (struct member *m = r->members; m; m = m->next)
		if (fanout_member(m, seq))
			delivery_fanout_target(*fp, m->ctl_fd, m->ctl_id, m->join_id);
	return 0;
}

/* frame for the members of one fan-out (seq: those that asked for
 * numbers); when it cannot be handed over, each of them is closed
 * (close_unreachable). */
static void hand_over(struct room *r, int seq, struct msg *frame)
{
	struct delivery_fanout **fp = fanout_of(r, seq);

	if ((*fp || fanout_open(r, seq) == 0) && (!*fp || delivery_fanout_add(*fp, frame) == 0))
		return;
	for (struct member *m = r->members; m; m = m->next)
		if (fanout_member(m, seq))
			close_unreachable(r, m);
}

/* msg as a frame of the room's current block: a frame formatted elsewhere
 * (a control-port CHAT, an announcement) is copied after the last one, so
 * that the frames of a pass lie end to end and each member's queue takes
 * them as one piece. A new reference (msg itself when it cannot be copied). */
static struct msg *block_frame(struct room *r, struct msg *msg)
{
	struct msg *copy = NULL;
	char *dst;

	if (msg->owner != msg)
		return msg_ref(msg); /* a slice of a block already */
	dst = msg_arena_reserve(&r->arena, msg->len);
	if (dst) {
		memcpy(dst, msg->data, msg->len);
		copy = msg_arena_take(&r->arena, msg->len);
	}
	return copy ? copy : msg_ref(msg);
}

/* numbered: msg's numbered form for the members that asked (NULL: none). */
static void broadcast(struct room *r, struct msg *msg, struct msg *numbered)
{
	struct msg *frame;

	metrics_add_own(&r->metrics->deliveries, r->nmembers);
	if (r->nmembers == 0)
		return;
	frame = block_frame(r, msg);
	/* The acceptor's share first: an attached member cut off below falls
	 * back to its control connection only from the next message on. */
	if (r->nattached < r->nmembers) {
		hand_over(r, 0, frame);
		if (r->nnumbered > 0)
			hand_over(r, 1, numbered ? numbered : frame);
	}
	for (struct member *m = r->members; m && r->nattached > 0; m = m->next)
		if (m->attached && !m->waiting)
			deliver(r, m, m->numbered && numbered ? numbered : frame);
	msg_unref(&frame);
}

/* A member's message is being relayed: count it (room thread). */
static void count_message(struct room *r, const struct msg *msg)
{
	metrics_add_own(&r->metrics->messages, 1);
	metrics_add_own(&r->metrics->bytes, msg->len);
}

static void post_fanout(struct room *r, struct delivery_fanout **fp)
{
	if (*fp && (*fp)->nmsgs > 0)
		delivery_fanout_post(r->up.mbox, *fp, r->backlog);
	else
		delivery_fanout_free(*fp);
	*fp = NULL;
}

/* Hand this pass's deliveries (the open fan-outs; their member sets do not
 * overlap) to the acceptor now. */
static void post_batch(struct room *r)
{
	post_fanout(r, &r->fan);
	post_fanout(r, &r->fan_seq);
}

/* Its place was allocated with the join (room_add_member): this cannot fail. */
static void add_member(struct room *r, struct room_event *ev)
{
	struct member *m = ev->member;

	members_changed(r);
	ev->member = NULL;
	*r->members_end = m; /* last: deliveries go out in join order */
	r->members_end = &m->next;
	r->nmembers++;
	metrics_set(&r->metrics->members, (long)r->nmembers);
	m->join_id = ev->join_id;
	snprintf(m->name, sizeof(m->name), "%s", ev->name);
	m->ctl_fd = ev->ctl_fd;
	m->ctl_id = ev->ctl_id;
	m->numbered = ev->numbered;
	m->waiting = r->cr != NULL;
	m->joined = ev->self; /* EV_ADD with a JOINED to send (cluster mode) */
	ev->self = NULL;
	m->joined_answer = ev->answer;
	ev->answer = NULL;
	r->nnumbered += (size_t)m->numbered;
	snprintf(m->peer, sizeof(m->peer), "%s", ev->peer);
	m->leave_req = ev->req;
	m->leave_req->ctl_fd = m->ctl_fd;
	m->leave_req->ctl_id = m->ctl_id;
	m->leave_req->join_id = m->join_id;
	ev->req = NULL;
}

static void pending_make_room(struct room *r, const char *peer);
static void reply(struct room *r, struct conn *c, struct msg *m);

/* m left through a LEAVE made on this port: remember it for repeats. */
static void departed_add(struct room *r, const struct member *m)
{
	struct departed *d = &r->departed[r->departed_next++ % ROOM_DEPARTED];

	d->join_id = m->join_id;
	snprintf(d->name, sizeof(d->name), "%s", m->name);
	snprintf(d->peer, sizeof(d->peer), "%s", m->peer);
	d->until_ms = conn_clock_ms() + ROOM_DEPARTED_MS;
}

/* ROOM_REF and JOIN_ID as numbers: 0, or -1 when either is no id. */
static int parse_ids(const char *ref_s, const char *id_s, long *ref, long *id)
{
	return proto_parse_int(ref_s, 1, PROTO_ID_MAX, ref) == 0 &&
	       proto_parse_int(id_s, 1, PROTO_ID_MAX, id) == 0 ? 0 : -1;
}

/* Is (ref, id, name) from peer a repeat of a LEAVE made here lately? */
static int departed_repeat(struct room *r, long ref, long id, const char *name, const char *peer)
{
	uint64_t now = conn_clock_ms();

	if (ref != r->ref)
		return 0;
	for (size_t i = 0; i < ROOM_DEPARTED; i++) {
		const struct departed *d = &r->departed[i];
		if (d->until_ms > now && d->join_id == id && strcmp(d->name, name) == 0 &&
		    strcmp(d->peer, peer) == 0)
			return 1;
	}
	return 0;
}

/* The membership m ends while room connection c waits for the answer to
 * the LEAVE it carried (SPEC §2.4): c gets LEFT_CHATROOM and the leaver's
 * copy of the announcement (ev->here: this LEAVE's own end), or the LEFT
 * echo (the membership ended otherwise meanwhile: SPEC §2.1's idempotent
 * LEAVE), after what it holds already, and nothing more for this room.
 * It stays open unattached, as a pending connection (so within
 * room_unattached_max and the attach deadline, counted from now), because
 * a lab client may send its DISCONNECT on it next (departed_add keeps whose
 * control connection that closes). Returns c when it may read on. */
static struct conn *answer_leave(struct room *r, struct conn *c, struct member *m,
				 const struct room_event *ev)
{
	struct msg *answer = ev->here ? msg_ref(ev->self) : proto_write_left(r->ref, m->join_id);

	m->attached = NULL;
	r->nattached--;
	metrics_gauge_add_own(&r->metrics->attached, -1);
	rconn(c)->attached_id = 0;
	c->leaving_id = 0;
	if (!answer) {
		log_error("room %s: out of memory answering %s's LEAVE: room connection closed",
			  r->name, m->name);
		loop_close(&r->loop, c, 0);
		return NULL;
	}
	reply(r, c, answer);
	if (c->closing)
		return NULL;
	/* The capability was shown on this very connection: a DISCONNECT
	 * sent on it next (lab clients do) closes m's control connection. */
	rconn(c)->left_ctl_fd = m->ctl_fd;
	rconn(c)->left_ctl_id = m->ctl_id;
	snprintf(rconn(c)->left_name, sizeof(rconn(c)->left_name), "%s", m->name);
	c->since_ms = conn_clock_ms();
	pending_make_room(r, c->peer);
	r->pending[r->npending++] = c;
	c->paused = r->input_held;
	return c;
}

/* Returns the room connection that asked for this leave when it may read
 * its next requests (the caller resumes it once the leave is announced). */
static struct conn *remove_member(struct room *r, struct room_event *ev)
{
	struct member **link = member_link(r, ev->join_id), *m = *link;
	struct conn *asker = NULL;

	members_changed(r);
	/* The answer goes even if the member is unknown here: the leaver's
	 * connection waits for it. It follows everything relayed to the
	 * leaver before. */
	if (ev->self && !ev->here) {
		post_batch(r);
		delivery_add(&ev->answer, ev->self, ev->ctl_fd, ev->ctl_id, ev->join_id, DELIVERY_LEAVE);
		delivery_post(r->up.mbox, ev->answer, r->backlog);
		ev->answer = NULL;
	}
	if (!m)
		return NULL;
	if (ev->here)
		departed_add(r, m);
	if (m->attached && m->attached->leaving_id == m->join_id)
		asker = answer_leave(r, m->attached, m, ev);
	/* What was relayed to it before the leave still goes out, then the
	 * room connection closes. */
	if (m->attached)
		loop_close(&r->loop, m->attached, 0);
	drop_joined(m);
	free(m->leave_req);
	r->nnumbered -= (size_t)m->numbered;
	*link = m->next;
	if (r->members_end == &m->next)
		r->members_end = link;
	free(m);
	r->nmembers--;
	metrics_set(&r->metrics->members, (long)r->nmembers);
	return asker;
}

static size_t history_head_len(const struct room *r, size_t count)
{
	return proto_fmt_history_head(NULL, 0, r->ref, (long)count);
}

/* What the acceptor reserves for a HISTORY now (sendq_push_pieces' charge,
 * plus one piece for a run the budget might split). */
static void publish_reply_cost(struct room *r)
{
	atomic_store(&r->reply_cost, history_head_len(r, r->hist_count) + r->hist_bytes +
					     (r->hist_runs + 2) * SENDQ_PIECE_COST);
	metrics_set(&r->metrics->history, (long)r->hist_count);
}

static const char *history_time(struct room *r, time_t when)
{
	struct tm tm;

	if (when != r->hist_when || !r->hist_when_text[0]) {
		gmtime_r(&when, &tm);
		strftime(r->hist_when_text, sizeof(r->hist_when_text), "%Y-%m-%dT%H:%M:%SZ", &tm);
		r->hist_when = when;
	}
	return r->hist_when_text;
}

static void history_drop_oldest(struct room *r)
{
	struct hist_entry *e = &r->hist[r->hist_head];

	r->hist_bytes -= e->frame->len;
	r->hist_runs--;
	msg_unref(&e->frame);
	r->hist_head = (r->hist_head + 1) % r->hist_cap;
	if (--r->hist_count > 0 && !r->hist[r->hist_head].run_start) {
		r->hist[r->hist_head].run_start = 1;
		r->hist_runs++;
	}
}

/* Keep at most cap messages from now on (a reload): the oldest beyond it
 * go now, so HISTORY answers with the new length at once (the store
 * trims its copy with the room's next message, store_append). 0, or
 * -ENOMEM (the ring stays as it was). */
static int history_resize(struct room *r, size_t cap)
{
	struct hist_entry *h = NULL;

	if (cap == r->hist_cap)
		return 0;
	if (cap && !(h = calloc(cap, sizeof(*h))))
		return -ENOMEM;
	while (r->hist_count > cap)
		history_drop_oldest(r);
	for (size_t i = 0; i < r->hist_count; i++)
		h[i] = r->hist[(r->hist_head + i) % r->hist_cap];
	free(r->hist);
	r->hist = h;
	r->hist_cap = cap;
	r->hist_head = 0;
	atomic_store(&r->hist_on, cap);
	publish_reply_cost(r);
	return 0;
}

/* Keep a message (name, text) of time when in the history ring as its
 * ENTRY frame, dropping the oldest when full. Returns the entry, or NULL
 * when nothing is kept. */
static const struct hist_entry *history_keep(struct room *r, const char *name, size_t name_len,
					     const char *text, size_t text_len, time_t when, long seq)
{
	size_t max = name_len + text_len + PROTO_CHAT_OVERHEAD, len = 0;
	const char *t = history_time(r, when);
	struct proto_chat_layout at;
	struct hist_entry *e, *prev;
	struct msg *frame = NULL;
	char *dst;

	if (r->hist_cap == 0)
		return NULL;
	dst = msg_arena_reserve(&r->hist_arena, max);
	if (dst)
		len = proto_fmt_history_entry(dst, max + 1, t, name, name_len, text, text_len, &at);
	if (dst && len <= max) /* it always fits: its time is at most PROTO_TIME_MAX bytes */
		frame = msg_arena_take(&r->hist_arena, len);
	if (!frame) {
		log_error("room %s: out of memory: a message was not kept for HISTORY", r->name);
		return NULL;
	}
	if (r->hist_count == r->hist_cap)
		history_drop_oldest(r);
	prev = r->hist_count ? &r->hist[(r->hist_head + r->hist_count - 1) % r->hist_cap] : NULL;
	e = &r->hist[(r->hist_head + r->hist_count++) % r->hist_cap];
	e->frame = frame;
	e->when = when;
	e->seq = seq;
	e->name_off = at.name_off;
	e->name_len = at.name_len;
	e->text_off = at.text_off;
	e->text_len = at.text_len;
	e->run_start = !prev || prev->frame->owner != frame->owner ||
		       prev->frame->data + prev->frame->len != frame->data;
	r->hist_runs += (size_t)e->run_start;
	r->hist_bytes += frame->len;
	publish_reply_cost(r);
	return e;
}

/* A member's message just relayed (a CHAT frame, its name and text where
 * the formatter said, *at): keep it, and hand it to the store's writer (a
 * queue append under a short lock: never the disk). */
static void history_record(struct room *r, const struct msg *frame,
			   const struct proto_chat_layout *at, long seq)
{
	const struct hist_entry *e;

	if (r->hist_cap == 0)
		return;
	e = history_keep(r, frame->data + at->name_off, at->name_len, frame->data + at->text_off,
			 at->text_len, time(NULL), seq);
	if (e)
		atomic_store(&r->kept, 1);
	if (e && r->store)
		store_append_numbered(r->store, r->ref, (long)r->hist_cap, e->frame, e->name_off,
				      e->name_len, e->text_off, e->text_len, e->when, e->seq);
}

/* A stored message: its number goes on from the stored ones (a row stored
 * before numbers existed, 0, gets the next one), so numbers survive a
 * restart. */
static void history_loaded(void *arg, time_t when, long seq, const char *name, const char *text)
{
	struct room *r = arg;

	if (seq <= r->seq || seq > PROTO_SEQ_MAX)
		seq = r->seq + 1;
	r->seq = seq;
	if (history_keep(r, name, strlen(name), text, strlen(text), when, seq))
		atomic_store(&r->kept, 1);
}

/* Number a member's message about to be relayed (§7.7): r->seq is its
 * number. Returns its numbered form, "SEQ: n" then the frame, carved from
 * the room's block once for every member that asked for numbers (a burst
 * of them lies end to end, one piece in each queue, as the plain frames
 * do), or NULL when no member asked. Out of memory it goes out
 * unnumbered (logged): such a client finds the hole through its next
 * HISTORY_AFTER. */
static struct msg *number_message(struct room *r, const struct msg *frame)
{
	size_t max = PROTO_SEQ_FRAME_MAX + frame->len, len;
	struct msg *numbered = NULL;
	char *dst;

	r->seq = r->seq < PROTO_SEQ_MAX ? r->seq + 1 : 1;
	if (r->nnumbered == 0)
		return NULL;
	dst = msg_arena_reserve(&r->seq_arena, max);
	if (dst) {
		len = proto_fmt_seq(dst, max, r->seq);
		memcpy(dst + len, frame->data, frame->len);
		numbered = msg_arena_take(&r->seq_arena, len + frame->len);
	}
	if (!numbered)
		log_error("room %s: out of memory: message %ld goes out without its number", r->name,
			  r->seq);
	return numbered;
}

/* Refill the ring from the store (the room's last messages before a
 * restart, or before it last closed). Runs first on the room thread, so
 * requests posted meanwhile wait in the mailbox and come after it. */
static void history_load(struct room *r)
{
	if (r->store && r->hist_cap > 0)
		store_load_numbered(r->store, r->ref, (long)r->hist_cap, history_loaded, r);
}

/* The ring index of the oldest kept entry numbered after `after`
 * (hist_count when none is). */
static size_t history_find_after(const struct room *r, long after)
{
	size_t lo = 0, hi = r->hist_count;

	/* Numbers grow along the ring: a binary search. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (r->hist[(r->hist_head + mid) % r->hist_cap].seq <= after)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* A history reply as pieces: head (its reference taken over), then the k
 * kept ENTRY frames from the start-th oldest, referenced where they lie
 * (never copied; adjacent ones make one piece). NULL when out of memory. */
static struct sendq_pieces *history_range_pieces(struct room *r, struct msg *head, size_t start,
						 size_t k)
{
	struct sendq_pieces *l = NULL;

	if (!head || sendq_pieces_add(&l, head, head->data, head->len) < 0)
		goto fail;
	for (size_t i = start; i < start + k; i++) {
		struct msg *f = r->hist[(r->hist_head + i) % r->hist_cap].frame;
		if (sendq_pieces_add(&l, f, f->data, f->len) < 0)
			goto fail;
	}
	msg_unref(&head);
	return l;
fail:
	sendq_pieces_free(l);
	msg_unref(&head);
	return NULL;
}

/* HISTORY_AFTER's reply (§7.7): the oldest kept entries numbered after
 * `after` whose charge fits in budget, consecutive numbers only (an entry
 * lost on the way ends the page: the next request shows the hole as a
 * gap), under a head that says the first number and the room's newest, so
 * the client asks again after the page's last while it is short of it. */
static struct sendq_pieces *history_after_pieces(struct room *r, size_t budget, long after)
{
	size_t start = history_find_after(r, after), k = 0;
	size_t cost = SENDQ_PIECE_COST + PROTO_HISTORY_AFTER_HEAD_MAX; /* the head */
	long first = start < r->hist_count ? r->hist[(r->hist_head + start) % r->hist_cap].seq
					    : r->seq + 1;

	for (; start + k < r->hist_count; k++) {
		const struct hist_entry *e = &r->hist[(r->hist_head + start + k) % r->hist_cap];
		/* A page's first entry may start inside a run: a piece of its own. */
		size_t more = e->frame->len + (k == 0 || e->run_start ? SENDQ_PIECE_COST : 0);
		if (e->seq != first + (long)k || cost + more > budget)
			break;
		cost += more;
	}
	return history_range_pieces(r, proto_write_history_after_head(r->ref, first, r->seq, (long)k),
				    start, k);
}

/* The reply to a HISTORY, as pieces: a head, then the kept ENTRY frames
 * referenced where they lie (never copied; adjacent ones make one piece).
 * The newest entries whose charge fits in budget: normally all of them. */
static struct sendq_pieces *history_pieces(struct room *r, size_t budget)
{
	size_t k = 0, cost = 2 * SENDQ_PIECE_COST; /* the head, a split run */

	for (; k < r->hist_count; k++) {
		const struct hist_entry *e = &r->hist[(r->hist_head + r->hist_count - 1 - k) % r->hist_cap];
		size_t more = e->frame->len + (e->run_start ? SENDQ_PIECE_COST : 0);
		if (cost + more + history_head_len(r, k + 1) > budget)
			break;
		cost += more;
	}
	return history_range_pieces(r, proto_write_history_head(r->ref, (long)k), r->hist_count - k, k);
}

/* Answer a member's HISTORY on its control connection, after everything
 * relayed to it before. The answer always goes (without pieces when it
 * failed: the acceptor answers error 11 and resumes the connection). */
static void history_reply(struct room *r, struct room_event *ev)
{
	struct delivery_batch *b = ev->answer;

	if (!find_member(r, ev->join_id))
		b->pieces = NULL;
	else if (ev->after >= 0)
		b->pieces = history_after_pieces(r, ev->budget, ev->after);
	else
		b->pieces = history_pieces(r, ev->budget);
	if (!b->pieces)
		log_error("room %s: cannot answer a HISTORY request (out of memory, or no such member)",
			  r->name);
	b->reserved = ev->budget;
	b->d[0] = (struct delivery){ NULL, ev->ctl_fd, ev->ctl_id, ev->join_id, DELIVERY_HISTORY };
	b->n = 1;
	post_batch(r);
	delivery_post(r->up.mbox, b, r->backlog);
	ev->answer = NULL;
}

/* EV_CONFIG: switch to the reloaded config between two mail items, where
 * nothing of this thread holds a value read from the old one, and drop
 * this thread's reference to the old one. Connections keep what they
 * copied when they were accepted (conn_create: send queue size, request
 * size); room_unattached_max needs a restart (pending is sized by it). */
static void reconfigure(struct room *r, struct room_event *ev)
{
	const struct config *old = r->cfg;

	if (ev->history >= 0 && history_resize(r, (size_t)ev->history) < 0)
		log_error("room %s: out of memory: history stays at %zu messages", r->name, r->hist_cap);
	r->cfg = ev->cfg;
	r->loop.cfg = ev->cfg;
	ev->cfg = NULL;
	config_release(old);
}

/* ---- cluster mode: the room's events go through its stream ---- */

/* Called on the cluster thread (under the room's cluster lock, so r is
 * alive): an entry of the room's stream, in stream order, for its mailbox. */
static void stream_entry(void *arg, struct cluster_entry *e)
{
	struct room *r = arg;
	struct room_event *ev = calloc(1, sizeof(*ev));

	if (!ev) {
		log_error("room %s: out of memory: a stream entry is not relayed on this node", r->name);
		free(e);
		return;
	}
	ev->entry = e;
	post_event(r, ev, EV_STREAM, 0, NULL, -1, 0, NULL);
}

/* A locally originated event is not relayed here: it is appended to the
 * stream, and relayed when it comes back (stream_taken), on every node in
 * the same order. Consumes ev->msg. */
static void to_stream(struct room *r, struct room_event *ev)
{
	int kind = ev->mail.type == EV_ADD ? CLUSTER_JOIN
		 : ev->mail.type == EV_REMOVE ? CLUSTER_LEAVE
		 : ev->record ? CLUSTER_MSG : CLUSTER_NOTICE;
	/* A control-port CHAT was admitted by the acceptor's check already. */
	int rc = cluster_append(r->cr, kind, ev->msg, ev->record ? &ev->chat : NULL, ev->name,
				ev->join_id, ev->mail.type == EV_RELAY && ev->record);

	if (rc < 0)
		log_warn("room %s: %s: a %s is not relayed", r->name,
			 rc == -EAGAIN ? "the cluster's Redis cannot take messages now" : "out of memory",
			 kind == CLUSTER_MSG ? "member's message" : "notice");
	msg_unref(&ev->msg);
}

/* An entry read back from the stream: ev->msg becomes its frame, relayed
 * (and, for a member's message, numbered and kept) as a local event is in
 * a single node. A joiner of this node starts receiving with its own join
 * entry; an entry from before the room opened here is only kept. */
static struct conn *release_leave(struct room *r, struct member *m);
static int holds_leaves(const struct room *r);

/* Cluster mode: m's join is in the stream: its JOINED reply goes to its
 * control connection now, before the join announcement (the connection
 * reads on once it is delivered). */
static void send_joined(struct room *r, struct member *m)
{
	if (!m->joined)
		return;
	delivery_add(&m->joined_answer, m->joined, m->ctl_fd, m->ctl_id, m->join_id, DELIVERY_JOINED);
	delivery_post(r->up.mbox, m->joined_answer, r->backlog);
	m->joined_answer = NULL;
	msg_unref(&m->joined);
}

/* m's held JOINED, never sent (it left first, or the room ends). */
static void drop_joined(struct member *m)
{
	msg_unref(&m->joined);
	delivery_free(m->joined_answer);
	m->joined_answer = NULL;
}

static struct conn *stream_taken(struct room *r, struct room_event *ev)
{
	const struct cluster_entry *e = ev->entry;
	struct proto_chat_layout at;
	struct msg *frame = cluster_entry_frame(e, r->ref, &at);
	struct conn *resume = NULL;
	struct member *m;

	/* A leaver of this node: its answer first, then the others get the
	 * announcement. */
	if (e->kind == CLUSTER_LEAVE && e->join_id && (m = find_member(r, e->join_id)) && m->leave_ev) {
		resume = release_leave(r, m);
		if (r->stop_at && !holds_leaves(r))
			r->stopping = 1; /* the stop that waited for it */
	}
	if (e->not_relayed) {
		msg_unref(&frame);
		return resume;
	}
	if (!frame) {
		log_error("room %s: out of memory: a stream entry is not relayed on this node", r->name);
		return resume;
	}
	/* The room's numbers are Redis's, the same on every node. */
	if (e->kind == CLUSTER_MSG && e->seq > 0 && e->seq <= PROTO_SEQ_MAX)
		r->seq = e->seq - 1;
	if (e->history_only) {
		r->seq = r->seq < PROTO_SEQ_MAX ? r->seq + 1 : 1;
		if (r->hist_cap && history_keep(r, frame->data + at.name_off, at.name_len,
						frame->data + at.text_off, at.text_len,
						(time_t)(e->when_ms / 1000), r->seq))
			atomic_store(&r->kept, 1);
		msg_unref(&frame);
		return resume;
	}
	if (e->kind == CLUSTER_JOIN && e->join_id && (m = find_member(r, e->join_id)) && m->waiting) {
		members_changed(r);
		send_joined(r, m);
		m->waiting = 0;
	}
	ev->msg = frame;
	ev->record = e->kind == CLUSTER_MSG;
	ev->chat = at;
	return resume;
}

/* Cluster mode, a LEAVE (self: LEFT_CHATROOM and the leaver's copy of the
 * announcement): the leaver stays in the delivery list until its own leave
 * entry comes back, so it gets everything the stream ordered before its
 * leave, then its answer, then nothing (stream_taken). Returns 0 when ev is
 * held so (its announcement appended), -1 when the leave is to be carried
 * out now: no such member, a DISCONNECT's (nobody waits for the answer),
 * or Redis cannot take appends now (the leave is not held up by an
 * outage; its announcement is still appended). */
static int hold_leave(struct room *r, struct room_event *ev)
{
	struct member *m = find_member(r, ev->join_id);

	if (!m || !ev->self || m->leave_ev || !cluster_accepting(r->up.cluster))
		return -1;
	to_stream(r, ev);
	m->leave_ev = ev;
	return 0;
}

/* Carry out a held leave now (its entry came back, or the room stops).
 * Returns the room connection that may read on, as remove_member does. */
static struct conn *release_leave(struct room *r, struct member *m)
{
	struct room_event *ev = m->leave_ev;
	struct conn *resume;

	m->leave_ev = NULL;
	resume = remove_member(r, ev);
	msg_unref(&ev->msg);
	msg_unref(&ev->self);
	room_event_free(ev);
	return resume;
}

static int holds_leaves(const struct room *r)
{
	for (const struct member *m = r->members; m; m = m->next)
		if (m->leave_ev)
			return 1;
	return 0;
}

/* EV_STOP: at once, unless leaves are held (cluster mode): their entries
 * are waited for, up to ROOM_LEAVE_WAIT_MS (room_main), so the last
 * leavers of a room still get its order up to their leave. */
static void stop_when_answered(struct room *r)
{
	if (holds_leaves(r))
		r->stop_at = conn_clock_ms() + ROOM_LEAVE_WAIT_MS;
	else
		r->stopping = 1;
}

/* The room stops: the leaves still held are answered now. */
static void release_all_leaves(struct room *r)
{
	struct member *m = r->members, *next;

	for (; m; m = next) {
		next = m->next;
		if (m->leave_ev)
			release_leave(r, m);
	}
}

static void hold_input(struct room *r);

static void handle_mail(struct room *r)
{
	struct mail *all = mailbox_take_all(&r->mbox), *next;

	for (; all; all = next) {
		struct room_event *ev = (struct room_event *)all;
		struct conn *resume = NULL;
		struct msg *numbered = NULL;
		next = all->next;
		switch (ev->mail.type) {
		case EV_ADD:
			add_member(r, ev);
			break;
		case EV_REMOVE:
			if (r->cr) { /* the leaver's name, for the member registry */
				struct member *gone = find_member(r, ev->join_id);
				snprintf(ev->name, sizeof(ev->name), "%s", gone ? gone->name : "");
				if (hold_leave(r, ev) == 0)
					continue; /* ev is the member's now */
			}
			resume = remove_member(r, ev);
			break;
		case EV_STREAM:
			cluster_room_taken(r->cr);
			resume = stream_taken(r, ev);
			break;
		case EV_HISTORY:
			history_reply(r, ev);
			break;
		case EV_STOP:
			stop_when_answered(r);
			break;
		case EV_CONFIG:
			reconfigure(r, ev);
			break;
		case EV_RELAY:
			atomic_fetch_sub_explicit(&r->relays_posted, 1, memory_order_relaxed);
			break;
		default:
			break;
		}
		if (ev->msg && r->cr && ev->mail.type != EV_STREAM)
			to_stream(r, ev);
		if (ev->msg && ev->record) {
			count_message(r, ev->msg);
			numbered = number_message(r, ev->msg);
		}
		if (ev->msg)
			broadcast(r, ev->msg, numbered);
		if (ev->msg && ev->record)
			history_record(r, ev->msg, &ev->chat, r->seq);
		msg_unref(&numbered);
		msg_unref(&ev->msg);
		msg_unref(&ev->self);
		if (ev != &r->stop_event)
			room_event_free(ev);
		/* A room connection whose LEAVE was answered: its next
		 * requests (a DISCONNECT), after the leave's announcement. */
		if (resume && resume->in.len > 0)
			loop_process(&r->loop, resume);
	}
	/* Cluster mode: traffic from other nodes fills the backlog too, with
	 * no room-port request to check it: hold here as well. */
	if (r->cr && !r->input_held && delivery_backlog_over(r->backlog, 0, 0))
		hold_input(r);
}

static void reply_error(struct room *r, struct conn *c, enum proto_err err, const char *detail);

/* Make room for a new pending connection from peer when all
 * room_unattached_max places are taken: the oldest pending connection of
 * peer's own address goes, or, if it holds none, the oldest of all. So one
 * address refilling the places pushes out only its own, and a client from
 * another address that attaches right away always gets in. O(places). */
/* A pending connection that answered a member's LEAVE waits for that
 * member's DISCONNECT (it showed a JOIN_ID): pushed out last. */
static int pending_evictable(struct conn *c)
{
	return rconn(c)->left_name[0] == '\0';
}

/* The oldest evictable pending connection of the address holding the
 * most of them (the oldest of all on a tie): a hoarder spread over a few
 * addresses pushes out its own before a client that holds one. O(n^2) in
 * room_unattached_max, only when the places are full. */
static struct conn *pending_of_busiest(struct room *r)
{
	struct conn *best = r->pending[0];
	size_t best_n = 0;

	for (size_t i = 0; i < r->npending; i++) {
		size_t n = 0;
		int seen = 0;
		if (!pending_evictable(r->pending[i]))
			continue;
		for (size_t j = 0; j < r->npending && !seen; j++) {
			int same = pending_evictable(r->pending[j]) &&
				   strcmp(r->pending[j]->peer, r->pending[i]->peer) == 0;
			seen = same && j < i; /* counted at its oldest already */
			if (same)
				n++;
		}
		if (!seen && n > best_n) {
			best_n = n;
			best = r->pending[i];
		}
	}
	return best;
}

static void pending_make_room(struct room *r, const char *peer)
{
	struct conn *old = NULL;

	if (r->npending < (size_t)r->cfg->room_unattached_max)
		return;
	for (size_t i = 0; i < r->npending && !old; i++)
		if (pending_evictable(r->pending[i]) && strcmp(r->pending[i]->peer, peer) == 0)
			old = r->pending[i];
	if (!old)
		old = pending_of_busiest(r);
	if (!r->evict_logged) {
		r->evict_logged = 1; /* once per episode: until places are free again */
		log_warn("room %s: %ld room connections waiting to attach: closing the oldest (%s)",
			 r->name, r->cfg->room_unattached_max, old->peer);
	}
	reply_error(r, old, PROTO_E_SERVER_FULL, "too many unattached room connections");
	loop_close(&r->loop, old, 0);
}

/* A new room connection: pending until it attaches. While input is held,
 * it waits like the others. */
static void accepted(void *arg, struct conn *c)
{
	struct room *r = arg;

	if (r->input_held) {
		c->paused = 1;
		loop_mark_dirty(&r->loop, c); /* the flush drops EPOLLIN */
	}
	/* Only now that it is taken: a failure before pushes nobody out. */
	pending_make_room(r, c->peer);
	r->pending[r->npending++] = c;
	if (r->npending < (size_t)r->cfg->room_unattached_max)
		r->evict_logged = 0;
}

/* ---- requests on the room port ---- */

static void reply(struct room *r, struct conn *c, struct msg *m)
{
	if (conn_queue_take(c, m) < 0) {
		log_warn("room %s: %s is not reading its replies: closed", r->name, c->peer);
		metrics_cut_off(METRICS_ROOM);
		loop_close(&r->loop, c, 1);
		return;
	}
	loop_mark_dirty(&r->loop, c);
}

static void reply_error(struct room *r, struct conn *c, enum proto_err err, const char *detail)
{
	metrics_error(err);
	reply(r, c, proto_write_error(err, detail));
}

/* The capability check of every room-port request that names a member:
 * the member with this ref, JOIN_ID and CLIENT_NAME, if c's address is its
 * control connection's. Otherwise NULL and *err: PROTO_E_NOT_MEMBER (the
 * refusal is counted against c's address: IPTABLE_CAP_BURST, then
 * IPTABLE_CAP_PER_MIN a minute) or PROTO_E_RATE (the address is over that:
 * refused before any lookup, so the answer says nothing about the id).
 * Live elsewhere, dead, or never issued: the same answer. */
static struct member *room_check_capability(struct room *r, struct conn *c, long ref, long id,
					    const char *name, enum proto_err *err)
{
	uint64_t now = conn_clock_ms();
	struct member *m = NULL;
	int log_it;

	if (c->ipe && !iptable_cap_allowed(r->ips, c->ipe, now, &log_it)) {
		if (log_it)
			log_warn("room %s: %s made more than %d refused capability checks: its checks"
				 " are refused for a while (%d a minute)", r->name, c->peer,
				 IPTABLE_CAP_BURST, IPTABLE_CAP_PER_MIN);
		metrics_refusal(METRICS_REFUSE_CAPABILITY);
		*err = PROTO_E_RATE;
		return NULL;
	}
	if (ref == r->ref) /* 0: no id (refs and JOIN_IDs are never 0) */
		m = find_member(r, id);
	if (m && strcmp(m->name, name) == 0 && strcmp(m->peer, c->peer) == 0)
		return m;
	if (c->ipe)
		iptable_cap_refused(r->ips, c->ipe, now);
	log_info("room %s: capability refused for %s", r->name, c->peer);
	*err = PROTO_E_NOT_MEMBER;
	return NULL;
}

/* An ATTACH on a connection attached already: the same answer again for
 * its own member, error 1 otherwise (no lookup: no probing from here). */
static void reattach(struct room *r, struct conn *c, const struct proto_msg *pm)
{
	struct member *m = find_member(r, rconn(c)->attached_id);
	long ref, id;

	if (m && parse_ids(pm->field[PROTO_F_ATTACH_REF], pm->field[PROTO_F_ATTACH_ID], &ref, &id) == 0 &&
	    ref == r->ref && id == rconn(c)->attached_id && strcmp(m->name, pm->field[PROTO_F_ATTACH_NAME]) == 0)
		reply(r, c, proto_write_attached(ref, id));
	else
		reply_error(r, c, PROTO_E_MALFORMED, "this connection is attached to another member");
}

/* Room traffic for m goes to c from now on (an ATTACH, or the first valid
 * request of a lab-era client, SPEC §2.4): exactly once, never also on the
 * control connection. */
static void attach_conn(struct room *r, struct conn *c, struct member *m)
{
	if (m->attached && m->attached != c) {
		/* The capability holder re-attached: the old channel closes
		 * once what it holds is written. */
		loop_close(&r->loop, m->attached, 0);
	}
	pending_remove(r, c);
	if (!m->attached) {
		members_changed(r);
		r->nattached++;
		metrics_gauge_add_own(&r->metrics->attached, 1);
	}
	m->attached = c;
	rconn(c)->attached_id = m->join_id;
	c->seq = m->numbered; /* its traffic numbered as on the control connection */
}

static void handle_attach(struct room *r, struct conn *c, const struct proto_msg *pm)
{
	enum proto_err err;
	struct member *m;
	long ref, id;

	if (rconn(c)->attached_id) {
		reattach(r, c, pm);
		return;
	}
	/* Numbers that are no ids name nobody: refused as a wrong capability. */
	if (parse_ids(pm->field[PROTO_F_ATTACH_REF], pm->field[PROTO_F_ATTACH_ID], &ref, &id) < 0)
		ref = id = 0;
	m = room_check_capability(r, c, ref, id, pm->field[PROTO_F_ATTACH_NAME], &err);
	if (!m) {
		/* A wrong capability: nothing more from this connection. */
		reply_error(r, c, err, err == PROTO_E_RATE ? "too many refused attempts from your address"
							   : NULL);
		loop_close(&r->loop, c, 0);
		return;
	}
	attach_conn(r, c, m);
	reply(r, c, proto_write_attached(r->ref, m->join_id));
}

/* A member's CHAT as relayed, carved from the room's current block: the
 * frames of one burst lie end to end, and each member's queue sends them
 * as one piece. */
static struct msg *format_chat(struct room *r, const char *name, const char *text, size_t text_len,
			       struct proto_chat_layout *where)
{
	size_t max = PROTO_CHAT_OVERHEAD + strlen(name) + text_len;
	char *dst = msg_arena_reserve(&r->arena, max);

	if (!dst)
		return NULL;
	return msg_arena_take(&r->arena, proto_fmt_chat(dst, max + 1, r->ref, name, text, text_len, where));
}

/* The member a request on c speaks for (ref, id, name). A connection
 * attached already speaks for its own member only, with no lookup (so it
 * probes nothing); on any other, the capability check decides, and the
 * first valid request attaches c to that member exactly as an ATTACH would
 * (SPEC §2.4). NULL with *err (a refusal of the check is counted against
 * c's address). */
static struct member *request_member(struct room *r, struct conn *c, long ref, long id,
				     const char *name, enum proto_err *err)
{
	struct member *m;

	if (rconn(c)->attached_id) {
		m = find_member(r, rconn(c)->attached_id);
		*err = PROTO_E_NOT_MEMBER;
		if (!m || ref != r->ref || id != m->join_id || strcmp(m->name, name) != 0)
			return NULL;
		return m;
	}
	m = room_check_capability(r, c, ref, id, name, err);
	if (m)
		attach_conn(r, c, m);
	return m;
}

/* A capability refused on a connection that holds none: as for an ATTACH,
 * nothing more from it. */
static void refuse_unattached(struct room *r, struct conn *c, enum proto_err err)
{
	reply_error(r, c, err, err == PROTO_E_RATE ? "too many refused attempts from your address" : NULL);
	loop_close(&r->loop, c, 0);
}

/* A member's request names it (ROOM_REF, JOIN_ID, CLIENT_NAME); the
 * command table's pre-check (run_for_member) resolves it before the
 * handler runs. */
struct member_request {
	long ref, id;     /* the request's ROOM_REF and JOIN_ID */
	struct member *m; /* the member c speaks for; NULL only for a LEAVE's echo */
};

static void handle_chat(struct room *r, struct conn *c, const struct proto_msg *pm,
			const struct member_request *q)
{
	struct proto_chat_layout where;
	struct msg *out, *numbered;

	if ((long)pm->len[PROTO_F_CHAT_TEXT] > r->cfg->max_message) {
		reply_error(r, c, PROTO_E_TOO_LARGE, "message too large");
		return;
	}
	if (proto_text_forges_field(pm->field[PROTO_F_CHAT_TEXT], pm->len[PROTO_F_CHAT_TEXT])) {
		reply_error(r, c, PROTO_E_MALFORMED, PROTO_FORGED_LINE_TEXT);
		return;
	}
	out = format_chat(r, q->m->name, pm->field[PROTO_F_CHAT_TEXT], pm->len[PROTO_F_CHAT_TEXT],
			  &where);
	if (!out) {
		reply_error(r, c, PROTO_E_SERVER, "out of memory");
		return;
	}
	if (r->cr && q->m->leave_ev) { /* its LEAVE is under way: as gone */
		msg_unref(&out);
		reply_error(r, c, PROTO_E_NOT_MEMBER, NULL);
		return;
	}
	if (r->cr) { /* relayed when it comes back from the stream */
		if (cluster_append(r->cr, CLUSTER_MSG, out, &where, NULL, 0, 0) < 0)
			reply_error(r, c, PROTO_E_SERVER, CLUSTER_DOWN_TEXT);
		msg_unref(&out);
		return;
	}
	count_message(r, out);
	numbered = number_message(r, out);
	broadcast(r, out, numbered);
	history_record(r, out, &where, r->seq);
	msg_unref(&numbered);
	msg_unref(&out);
}

/* ---- a member's own requests without ATTACH (lab-era clients, SPEC §2.4) ---- */

/* HELO: the same reply as on the control port, naming this room's port
 * (what a lab-era single-port server said: the port the client is
 * connected to). No capability needed; it attaches nothing. */
static void handle_helo(struct room *r, struct conn *c, const struct proto_msg *pm)
{
	char ip[NET_ADDRSTRLEN + CONFIG_HOST_MAX];
	const char *bind = r->cfg->bind;

	/* As the control port's: public_host, else this connection's own
	 * address (the client's family), else the first bind address. */
	if (r->cfg->public_host[0])
		snprintf(ip, sizeof(ip), "%s", r->cfg->public_host);
	else if (net_local_ip(c->fd, ip, sizeof(ip)) < 0)
		snprintf(ip, sizeof(ip), "%.*s", (int)strcspn(bind, ","), bind);
	reply(r, c, proto_write_helo(pm->field[PROTO_F_HELO_TEXT], ip, r->port, r->cfg->server_id));
}

/* Ask the acceptor to end m (it owns the membership); the answer comes
 * back here with the leave (answer_leave). c reads nothing more until
 * then, so a DISCONNECT right behind the LEAVE follows its answer. */
static void start_leave(struct room *r, struct conn *c, struct member *m)
{
	c->leaving_id = m->join_id;
	c->paused = 1;
	loop_mark_dirty(&r->loop, c); /* the flush drops EPOLLIN */
	if (!m->leave_req)
		return; /* asked on another connection already: the answer comes here */
	/* What was relayed to m over the control connection goes first. */
	post_batch(r);
	room_request_post(r->up.mbox, m->leave_req);
	m->leave_req = NULL;
}

/* LEAVE_CHATROOM on the room port: its member leaves; anything else
 * that reaches here (see the table's pre-check) gets SPEC §2.1's
 * idempotent echo. */
static void handle_leave(struct room *r, struct conn *c, const struct proto_msg *pm,
			 const struct member_request *q)
{
	(void)pm;
	if (q->m)
		start_leave(r, c, q->m);
	else
		reply(r, c, proto_write_left(q->ref, q->id));
}

/* DISCONNECT on the room port (CS4032's carries no JOIN_ID): closes the
 * control connection of the member this very connection speaks for, every
 * membership ending with its announcement, and this connection. Which
 * member: the one c is attached to (its name must match), else the one
 * whose LEAVE was answered on c (a lab client sends its DISCONNECT right
 * behind its LEAVE). A name, or a name and an address, is not a
 * capability: only a connection on which the member showed its JOIN_ID
 * can end it (docs/PROTOCOL.md §3). Anything else closes this connection
 * only, nothing sent (what a DISCONNECT's answer looks like), and is not
 * counted as a refused capability: it probes nothing. */
static void handle_disconnect(struct room *r, struct conn *c, const struct proto_msg *pm)
{
	const char *name = pm->field[PROTO_F_DISC_NAME];
	struct member *m = rconn(c)->attached_id ? find_member(r, rconn(c)->attached_id) : NULL;
	struct room_request *rq;
	int left_here = !m && rconn(c)->left_name[0] && strcmp(rconn(c)->left_name, name) == 0;

	if (rconn(c)->attached_id && (!m || strcmp(m->name, name) != 0)) {
		reply_error(r, c, PROTO_E_NOT_MEMBER, "CLIENT_NAME is not this connection's member");
		return;
	}
	if (!m && !left_here) {
		log_info("room %s: %s: DISCONNECT for %s, whose capability this connection does not "
			 "hold: room connection closed", r->name, c->peer, name);
		loop_close(&r->loop, c, 0);
		return;
	}
	rq = room_request_create(ROOM_REQ_DISCONNECT);
	if (!rq) {
		reply_error(r, c, PROTO_E_SERVER, "out of memory");
		return;
	}
	rq->ctl_fd = m ? m->ctl_fd : rconn(c)->left_ctl_fd;
	rq->ctl_id = m ? m->ctl_id : rconn(c)->left_ctl_id;
	post_batch(r); /* what was relayed over the control connection goes first */
	room_request_post(r->up.mbox, rq);
	loop_close(&r->loop, c, 0);
}

static void handle_join(struct room *r, struct conn *c)
{
	char text[64];

	snprintf(text, sizeof(text), "JOIN_CHATROOM goes to the control port %u",
		 r->up.control_port);
	reply_error(r, c, PROTO_E_MALFORMED, text);
}

static void handle_join_request(struct room *r, struct conn *c, const struct proto_msg *pm)
{
	(void)pm;
	handle_join(r, c);
}

/* The room port's requests. One that names a member (for_member) runs
 * only once run_for_member() has resolved it; the others (handler) check
 * what they need themselves. */
static const struct room_command {
	enum proto_kind kind;
	void (*handler)(struct room *, struct conn *, const struct proto_msg *);
	void (*for_member)(struct room *, struct conn *, const struct proto_msg *,
			   const struct member_request *);
	/* LEAVE, idempotent (SPEC §2.1): what names no member of c's runs
	 * too, without one (the echo), instead of being refused. */
	int idempotent;
	const char *bad_ids;    /* error 1's text: ROOM_REF or JOIN_ID is no id */
	const char *not_member; /* error 3's text on an attached connection */
} room_commands[] = {
	{ PROTO_ATTACH, handle_attach, NULL, 0, NULL, NULL },
	{ PROTO_CHAT, NULL, handle_chat, 0, "bad CHAT or JOIN_ID", NULL },
	{ PROTO_HELO, handle_helo, NULL, 0, NULL, NULL },
	{ PROTO_LEAVE, NULL, handle_leave, 1, "bad LEAVE_CHATROOM or JOIN_ID",
	  "JOIN_ID does not match the room or name" },
	{ PROTO_DISCONNECT, handle_disconnect, NULL, 0, NULL, NULL },
	{ PROTO_JOIN, handle_join_request, NULL, 0, NULL, NULL },
};

/* The pre-check of a request that names a member: its numbers parse, and
 * request_member() finds the member c speaks for (attaching c on its first
 * valid request). A refused capability on a connection that holds none
 * closes it, as for an ATTACH. An idempotent LEAVE runs without a member,
 * so that an outsider learns nothing: for an id that is not this attached
 * connection's (no lookup, as on the control port); on a connection
 * holding no capability, for a repeat of a LEAVE made here (not counted)
 * and for an id unknown, of another room or name, or from another address
 * than the member's (counted as refused, as for an ATTACH; the connection
 * stays open). A throttled address gets error 9 and is closed, whatever
 * the id. */
static void run_for_member(struct room *r, struct conn *c, const struct proto_msg *pm,
			   const struct room_command *cmd)
{
	const char *name = pm->field[PROTO_F_MEMBER_NAME];
	struct member_request q = { 0, 0, NULL };
	int attached = rconn(c)->attached_id != 0;
	enum proto_err err;

	if (parse_ids(pm->field[PROTO_F_MEMBER_REF], pm->field[PROTO_F_MEMBER_ID], &q.ref, &q.id) < 0) {
		reply_error(r, c, PROTO_E_MALFORMED, cmd->bad_ids);
		return;
	}
	if (cmd->idempotent && ((attached && q.id != rconn(c)->attached_id) ||
				(!attached && departed_repeat(r, q.ref, q.id, name, c->peer)))) {
		cmd->for_member(r, c, pm, &q);
		return;
	}
	q.m = request_member(r, c, q.ref, q.id, name, &err);
	if (q.m || (cmd->idempotent && !attached && err == PROTO_E_NOT_MEMBER))
		cmd->for_member(r, c, pm, &q);
	else if (attached) /* its own id with another room or name: the holder's mistake */
		reply_error(r, c, err, cmd->not_member);
	else
		refuse_unattached(r, c, err);
}

static void handle_request(struct room *r, struct conn *c, const struct proto_msg *pm)
{
	for (size_t i = 0; i < sizeof(room_commands) / sizeof(room_commands[0]); i++) {
		const struct room_command *cmd = &room_commands[i];
		if (cmd->kind != pm->kind)
			continue;
		if (cmd->for_member)
			run_for_member(r, c, pm, cmd);
		else
			cmd->handler(r, c, pm);
		return;
	}
	reply_error(r, c, PROTO_E_MALFORMED, "not a room port request");
}

static void on_request(void *arg, struct conn *c, const struct proto_msg *pm)
{
	handle_request(arg, c, pm);
}

static void on_reply_error(void *arg, struct conn *c, enum proto_err err, const char *detail)
{
	reply_error(arg, c, err, detail);
}

/* The acceptor has too much of this room's traffic: read no room
 * connection (they keep what they buffered) until it wakes us. */
static void hold_input(struct room *r)
{
	post_batch(r); /* what is over the bound must reach the acceptor */
	if (!delivery_backlog_hold(r->backlog))
		return;
	if (!r->input_held && r->holds++ == 0)
		log_info("room %s: relay backlog at the acceptor over its bound: room port input "
			 "paused until it drains (not logged again)", r->name);
	r->input_held = 1;
	if (r->cr) /* nor the room's stream, from other nodes */
		cluster_room_hold(r->cr, 1);
	for (size_t i = 0; i < r->loop.nconns; i++) {
		r->loop.conns[i]->paused = 1;
		loop_mark_dirty(&r->loop, r->loop.conns[i]); /* the flush drops EPOLLIN */
	}
}

static int input_halted(void *arg)
{
	struct room *r = arg;
	size_t entries = 0, bytes = 0;

	for (int seq = 0; seq <= 1; seq++) {
		const struct delivery_fanout *f = *fanout_of(r, seq);
		if (f) {
			entries += delivery_fanout_entries(f);
			bytes += delivery_fanout_bytes(f);
		}
	}

	if (!r->input_held && delivery_backlog_over(r->backlog, entries, bytes))
		hold_input(r);
	return r->input_held;
}

/* The backlog drained: read again, starting with what was buffered. */
static void release_input(struct room *r)
{
	r->input_held = 0;
	if (r->cr)
		cluster_room_hold(r->cr, 0);
	for (size_t i = 0; i < r->loop.nconns && !r->input_held; i++) {
		struct conn *c = r->loop.conns[i];
		c->paused = c->leaving_id != 0; /* a LEAVE still waits for its answer */
		if (c->in.len > 0)
			loop_process(&r->loop, c);
		loop_mark_dirty(&r->loop, c); /* the flush restores EPOLLIN */
	}
}

static void on_marker(void *arg, void *marker, uint32_t events)
{
	struct room *r = arg;

	(void)events;
	if (marker == &mailbox_marker)
		handle_mail(r);
	else if (marker == &backlog_marker && delivery_backlog_released(r->backlog) && r->input_held)
		release_input(r);
}

/* After each flush: hand the acceptor this pass's batch. */
static void flush_done(void *arg)
{
	post_batch(arg);
}

/* The room's own deadline: a room connection that never attaches. */
static void expired(void *arg, struct conn *c, uint64_t now)
{
	struct room *r = arg;

	if (!c->closing && !rconn(c)->attached_id && now - c->since_ms > ROOM_ATTACH_TIMEOUT_MS) {
		log_info("room %s: %s did not attach in time: closed", r->name, c->peer);
		loop_close(&r->loop, c, 1);
	}
}

static const struct loop_ops room_ops = {
	.request = on_request,
	.reply_error = on_reply_error,
	.halted = input_halted,
	.marker = on_marker,
	.accepted = accepted,
	.closing = forget_conn,
	.destroy = forget_conn,
	.flush_done = flush_done,
	.expired = expired,
};

static void *room_main(void *arg)
{
	struct room *r = arg;
	char tname[16];

	snprintf(tname, sizeof(tname), "room-%ld", r->ref);
	pthread_setname_np(pthread_self(), tname);
	history_load(r);
	/* Only deadlines need a timeout; an idle room sleeps. (The loop
	 * handles the mailbox before the requests: an attach may depend on a
	 * membership change.) */
	while (!r->stopping && loop_step(&r->loop, r->stop_at ? ROOM_LEAVE_POLL_MS
					 : r->loop.nconns > 0 ? LOOP_SWEEP_MS : -1) == 0) {
		if (r->stop_at && conn_clock_ms() >= r->stop_at) {
			release_all_leaves(r); /* their entries are late: answered now */
			r->stopping = 1;
		}
	}
	/* Shutdown: queued output gets a bounded time to leave. */
	loop_drain(&r->loop, ROOM_STOP_FLUSH_MS);
	/* Release: everything the thread did happens-before the acceptor's
	 * acquire load, and its join. */
	atomic_store_explicit(&r->exited, 1, memory_order_release);
	/* Then have it join and free us now, not at its next sweep, so the
	 * room's descriptors go at once (the uplink's mailbox outlives every
	 * room thread). */
	mailbox_wake(r->up.mbox);
	return NULL;
}

int room_has_history(struct room *r)
{
	return atomic_load(&r->kept);
}

int room_exited(struct room *r)
{
	return atomic_load_explicit(&r->exited, memory_order_acquire);
}

/* ---- lifecycle (acceptor thread) ---- */

/* The room's port on every bind address, one number for all (SERVER_IP
 * differs by family, PORT does not): a port of the range taken on any of
 * them is passed over. 0 or -errno. */
static int bind_room_port(const struct config *cfg, unsigned port, struct net_listeners *lis,
			  unsigned *bound)
{
	struct config_addrs a;
	char why[256];
	size_t failed;
	int rc = -EADDRINUSE;

	if (config_bind_addrs(cfg->bind, &a, why, sizeof(why)) < 0)
		return -EINVAL; /* a loaded config's list always splits */
	if (port == 0 && cfg->room_port_min > 0) {
		for (unsigned p = cfg->room_port_min; p <= cfg->room_port_max; p++) {
			rc = net_listen_all(lis, a.ptr, a.n, p, 128, &failed);
			if (rc != -EADDRINUSE)
				break;
		}
	} else {
		rc = net_listen_all(lis, a.ptr, a.n, port, 128, &failed);
	}
	if (rc == 0)
		*bound = (unsigned)net_local_port(lis->fd[0]);
	return rc;
}

static void room_free(struct room *r)
{
	/* No stream entry comes after this; those queued are freed. */
	cluster_room_close(r->cr);
	for (struct mail *m = mailbox_take_all(&r->mbox), *next; m; m = next) {
		next = m->next;
		if (m->type == EV_STREAM)
			room_event_free((struct room_event *)m);
	}
	loop_fini(&r->loop);
	net_listeners_close(&r->lis);
	mailbox_fini(&r->mbox);
	for (size_t i = 0; i < r->hist_count; i++)
		msg_unref(&r->hist[(r->hist_head + i) % r->hist_cap].frame);
	free(r->hist);
	delivery_backlog_unref(r->backlog);
	msg_arena_fini(&r->arena);
	msg_arena_fini(&r->seq_arena);
	msg_arena_fini(&r->hist_arena);
	while (r->members) {
		struct member *m = r->members;
		r->members = m->next;
		if (m->leave_ev) { /* a thread that never ran its stop */
			msg_unref(&m->leave_ev->self);
			room_event_free(m->leave_ev);
		}
		drop_joined(m);
		free(m->leave_req);
		free(m);
	}
	free(r->pending);
	metrics_room_close(r->metrics);
	config_release(r->cfg);
	free(r);
}

struct room *room_start(const struct config *cfg, const struct room_uplink *up, struct store *store,
			const char *name, long ref, unsigned port, long max_members, long history,
			int *err)
{
	struct room *r = calloc(1, sizeof(*r));
	char where[CONFIG_NAME_MAX + 8];
	pthread_attr_t attr;
	int rc;

	if (!r) {
		*err = -ENOMEM;
		return NULL;
	}
	r->up = *up;
	r->store = store;
	r->ref = ref;
	r->loop.epfd = -1;
	r->members_end = &r->members;
	msg_arena_init(&r->arena, ROOM_BLOCK_BYTES);
	msg_arena_init(&r->seq_arena, ROOM_BLOCK_BYTES);
	(void)max_members; /* room connections: one per attached member, plus the pending */
	r->ips = up->ips;
	r->pending = calloc((size_t)cfg->room_unattached_max, sizeof(*r->pending));
	if (!r->pending) {
		free(r);
		*err = -ENOMEM;
		return NULL;
	}
	msg_arena_init(&r->hist_arena, ROOM_BLOCK_BYTES);
	r->hist_cap = history > 0 ? (size_t)history : 0;
	atomic_init(&r->hist_on, r->hist_cap);
	r->hist = r->hist_cap ? calloc(r->hist_cap, sizeof(*r->hist)) : NULL;
	if (r->hist_cap && !r->hist) {
		free(r->pending);
		free(r);
		*err = -ENOMEM;
		return NULL;
	}
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->cfg = config_hold(cfg); /* released by room_free, from here on */
	r->backlog = delivery_backlog_create();
	if (!r->backlog) {
		config_release(r->cfg);
		free(r->hist);
		free(r->pending);
		free(r);
		*err = -ENOMEM;
		return NULL;
	}
	if ((rc = mailbox_init(&r->mbox)) == 0 && up->cluster &&
	    !(r->cr = cluster_room_open(up->cluster, name, ref, (long)r->hist_cap, stream_entry, r))) {
		mailbox_fini(&r->mbox);
		rc = -ENOMEM;
	}
	if (rc < 0) {
		delivery_backlog_unref(r->backlog);
		config_release(r->cfg);
		free(r->hist);
		free(r->pending);
		free(r);
		*err = rc;
		return NULL;
	}
	r->metrics = metrics_room_open(name);
	rc = r->metrics ? bind_room_port(cfg, port, &r->lis, &r->port) : -ENOMEM;
	if (rc < 0)
		goto fail;
	publish_reply_cost(r);
	snprintf(where, sizeof(where), "room %s", name);
	rc = loop_init(&r->loop, cfg, where, METRICS_ROOM, r->ips, ROOM_EVENTS, 0, &room_ops, r);
	r->loop.conn_size = sizeof(struct room_conn);
	if (rc == 0)
		rc = loop_listen(&r->loop, &r->lis);
	if (rc == 0)
		rc = loop_watch(&r->loop, r->mbox.efd, &mailbox_marker);
	if (rc == 0)
		rc = loop_watch(&r->loop, r->backlog->efd, &backlog_marker);
	if (rc < 0)
		goto fail;
	/* A room thread needs little stack: no recursion, small frames. */
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	rc = -pthread_create(&r->thread, &attr, room_main, r);
	pthread_attr_destroy(&attr);
	if (rc < 0)
		goto fail;
	return r;
fail:
	*err = rc;
	room_free(r);
	return NULL;
}

int room_reconfigure(struct room *r, const struct config *cfg, long history)
{
	struct room_event *ev;

	/* A stopping room ends with what it has: nothing after EV_STOP. */
	if (r->stop_posted)
		return 0;
	if (!(ev = calloc(1, sizeof(*ev))))
		return -ENOMEM;
	ev->cfg = config_hold(cfg);
	ev->history = history;
	post_event(r, ev, EV_CONFIG, 0, NULL, -1, 0, NULL);
	return 0;
}

void room_request_stop(struct room *r)
{
	/* The stop event lives in the room, so stopping cannot fail. */
	if (!r->stop_posted) {
		r->stop_posted = 1;
		metrics_room_unlist(r->metrics); /* its series go now */
		post_event(r, &r->stop_event, EV_STOP, 0, NULL, -1, 0, NULL);
		/* Release the port now, before this thread answers anything
		 * more: shutdown() ends the listen (connections queued or new
		 * are refused) and lets a new room bind the port (SO_REUSEADDR),
		 * while the descriptor, which the room thread polls, stays
		 * valid until room_free() closes it after the join. */
		for (size_t i = 0; i < r->lis.n; i++)
			if (shutdown(r->lis.fd[i], SHUT_RDWR) < 0)
				log_warn("room %s: shutting its listener: %s", r->name, strerror(errno));
	}
}

void room_stop(struct room *r)
{
	room_request_stop(r);
	pthread_join(r->thread, NULL);
	post_batch(r);
	room_free(r);
}

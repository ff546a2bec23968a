/* cluster.h - rooms that span several roomd nodes through Redis
 * (docs/CLUSTER.md): every event of a room goes through the room's Redis
 * stream, and each node relays the stream's entries to its local members in
 * stream order.
 *
 * One cluster thread per node owns every Redis connection (per shard: one
 * for appends and bookkeeping, one for XREAD) and the per-room read
 * positions; room threads and the acceptor never wait on Redis. A room
 * thread registers its room (cluster_room_open), posts its events as
 * appends (cluster_append, returns at once), and receives the entries read
 * back through its callback, called on the cluster thread (it posts them to
 * its own mailbox). cluster_accepting() is an atomic read for any thread.
 * Pure helpers (entry codec, consistent hash, reaping decisions) are
 * exposed for the unit tests. */
#ifndef ROOMD_CLUSTER_H
#define ROOMD_CLUSTER_H

#include <stddef.h>

#include "config.h"
#include "mailbox.h"
#include "proto.h"

struct config;
struct msg;
struct cluster;
struct cluster_room;

/* The description of error 11 for a member's message Redis cannot take. */
#define CLUSTER_DOWN_TEXT "the cluster's Redis cannot take messages now; try again"

/* What a stream entry is. */
enum cluster_kind {
	CLUSTER_MSG = 'm',    /* a member's message: numbered, kept in the history */
	CLUSTER_NOTICE = 'n', /* a server notice (a topic change): relayed only */
	CLUSTER_JOIN = 'j',   /* a join announcement */
	CLUSTER_LEAVE = 'l',  /* a leave announcement */
};

/* An entry read back from a room's stream, handed to the room, which
 * frees it (free()). The frame is "CHAT: <ref>" then body: the body is the
 * same on every node, the ref the local one. */
struct cluster_entry {
	int kind;                    /* enum cluster_kind */
	long join_id;                /* CLUSTER_JOIN or CLUSTER_LEAVE appended by
				      * this node's incarnation: the member's
				      * JOIN_ID; else 0 */
	int history_only;            /* from before the room opened here: kept
				      * in its history, not relayed */
	int not_relayed;             /* CLUSTER_LEAVE of this node that Redis did
				      * not announce (the member was reaped):
				      * only ends the member's wait (no body) */
	long long when_ms;           /* when Redis took it (its id's time) */
	long seq;                    /* CLUSTER_MSG: its number in the room
				      * (§7.7), counted by Redis; 0: none */
	struct proto_chat_layout at; /* CLUSTER_MSG: name and text, in body */
	size_t body_len;
	char body[];
};

/* Called on the cluster thread with each entry of the room's stream, in
 * stream order; the callee owns e. */
typedef void (*cluster_entry_fn)(void *arg, struct cluster_entry *e);

/* Connect to the shards of cfg's [cluster] (logged; an unreachable Redis
 * is retried with back-off by the thread) and start the cluster thread.
 * maxlen: the entries each stream keeps at least (MAXLEN ~). 0, or -1 with
 * err set. Start-up only. */
int cluster_start(const struct config *cfg, long maxlen, struct cluster **out, char *err,
		  size_t errlen);

/* Stop the thread (what is queued is given a bounded time to go out) and
 * free everything. Every room must be closed first. NULL: nothing. */
void cluster_stop(struct cluster *cl);

/* Nonzero while a member's message can be appended: every shard is
 * connected and the append queue is below its bound. Any thread. */
int cluster_accepting(struct cluster *cl);

/* Register room ref, called name (listed cluster-wide), on this node: the thread reads its last
 * history entries (handed with history_only), then every entry after them,
 * to fn(arg, ...). NULL when out of memory. The room's thread. */
struct cluster_room *cluster_room_open(struct cluster *cl, const char *name, long ref, long history,
				       cluster_entry_fn fn, void *arg);

/* The room took an entry fn handed it (call once per entry, from its
 * mailbox): a room with many not taken is not read until it catches up. */
void cluster_room_taken(struct cluster_room *cr);

/* The room's relay backlog is over its bound (held) or back under it: its
 * stream is not read meanwhile. Any thread. */
void cluster_room_hold(struct cluster_room *cr, int held);

/* Unregister: after this returns fn is never called again. NULL: nothing. */
void cluster_room_close(struct cluster_room *cr);

/* Append an event to the room's stream: kind, the CHAT frame (its first
 * line, the ref, is not stored), where the member's name and text lie in it
 * (CLUSTER_MSG), the member's name and JOIN_ID (CLUSTER_JOIN, CLUSTER_LEAVE:
 * the member registry that reaping reads). A CLUSTER_MSG or CLUSTER_NOTICE
 * is refused while !cluster_accepting() (-EAGAIN); joins and leaves are
 * always queued (a joiner waits for its own join entry, and a leave must be
 * announced), and so is one admitted already (a control-port CHAT the
 * acceptor checked cluster_accepting() for: its sender got no error, so it
 * must not be dropped; the acceptor's check bounds them). Everything queued
 * is kept until Redis takes it. 0, -EAGAIN or -ENOMEM. The room's thread. */
int cluster_append(struct cluster_room *cr, int kind, const struct msg *frame,
		   const struct proto_chat_layout *at, const char *name, long join_id,
		   int admitted);

/* The frame of entry e for room ref (*at: where name and text lie, for a
 * CLUSTER_MSG). NULL when out of memory. */
struct msg *cluster_entry_frame(const struct cluster_entry *e, long ref, struct proto_chat_layout *at);

/* ---- requests of the acceptor (names, lists, private messages) ---- */

/* The mail type of an answered request in the acceptor's mailbox (apart
 * from delivery.h's). */
#define CLUSTER_MAIL_ANSWER 0x434c

enum cluster_req_kind {
	CLUSTER_REQ_CLAIM,   /* a JOIN: name (unless "") for connection (fd, id), and
			      * with need_ref the ref of room (allocated once, kept
			      * in Redis): 0 (ref set), or -EEXIST (name taken) */
	CLUSTER_REQ_RELEASE, /* name no longer held by (fd, id): no answer */
	CLUSTER_REQ_EXT,     /* (fd, id) used an extension: private messages reach it; no answer */
	CLUSTER_REQ_ROOMS,   /* every room of the cluster, with its member count */
	CLUSTER_REQ_MEMBERS, /* the members of room ref, on every node */
	CLUSTER_REQ_PRIVATE, /* text from "from" to name: 0 sent, 1 the holder is on
			      * this node (the caller delivers), -ENOENT nobody */
	CLUSTER_REQ_FROM,    /* from the cluster: a private message for (fd, id)
			      * holding name, from another node */
	CLUSTER_REQ_REAPED,  /* from the cluster: this node was cut off from Redis
			      * long enough to be judged dead, and its members
			      * were announced as left by another node: every
			      * membership here must end (this node carries on
			      * as a new incarnation) */
};

/* A room or a member in a list answer. */
struct cluster_item {
	char name[CONFIG_NAME_MAX + 1];
	long ref, count;
};

/* A request: posted by the acceptor (cluster_request), answered in place
 * and posted back to the acceptor's mailbox as CLUSTER_MAIL_ANSWER. */
struct cluster_req {
	struct mail mail;              /* first */
	int kind;                      /* enum cluster_req_kind */
	int ctl_fd;                    /* the control connection that waits */
	unsigned long long ctl_id;
	char name[CONFIG_NAME_MAX + 1];
	char from[CONFIG_NAME_MAX + 1];
	char room[CONFIG_NAME_MAX + 1]; /* CLAIM: the room the JOIN asked for */
	int need_ref;                  /* CLAIM: the room is not known here: its
					* ref from Redis (allocated if new) */
	long ref;
	int result;                    /* 0, or -EEXIST, -ENOENT, -EAGAIN (Redis down) */
	struct cluster_item *items;    /* ROOMS, MEMBERS */
	size_t nitems;
	char *text;                    /* PRIVATE, FROM */
	size_t text_len;
};

/* A request of kind for control connection (fd, id), with text (len
 * bytes, NULL: none) copied. NULL when out of memory. */
struct cluster_req *cluster_req_new(int kind, int fd, unsigned long long id, const char *text,
				    size_t len);
void cluster_req_free(struct cluster_req *q);

/* Where answers and private messages from other nodes go (the acceptor's
 * mailbox, which must outlive the cluster thread's use: set it before the
 * first request, NULL it before the mailbox goes). Start-up. */
void cluster_set_acceptor(struct cluster *cl, struct mailbox *mb);

/* Hand q to the cluster thread (it owns it until the answer comes back,
 * or frees it: RELEASE, EXT). Any thread. */
void cluster_request(struct cluster *cl, struct cluster_req *q);

/* ---- pure helpers (unit tests) ---- */

/* The shard of room ref among n: a consistent hash (adding a shard moves
 * only about 1/n of the rooms). */
unsigned cluster_shard_of(long ref, unsigned n);

/* An entry as read from Redis: its fields and values, nfields pairs; id is
 * the entry id ("ms-seq"); self the "node/incarnation" of this node. NULL
 * when malformed (logged by the caller) or out of memory. */
struct cluster_entry *cluster_entry_decode(const char *id, const char *const *fields,
					   const size_t *lens, size_t nfields, const char *self);

/* Is member field f ("node/incarnation/join_id") of incarnation dead? */
int cluster_member_of(const char *f, const char *dead);

/* Does "node/incarnation" x belong to an earlier incarnation of node_id
 * than self (the restarted node reaps it at once)? */
int cluster_earlier_self(const char *x, const char *self);

/* Does stream entry id ("ms-seq") come after last (a malformed id does
 * not)? */
int cluster_id_after(const char *id, const char *last);

#endif

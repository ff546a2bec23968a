/* control.c - the control-port commands, one handler per request kind,
 * dispatched through a table whose pre-check resolves the membership a
 * request names (CHAT, LEAVE_CHATROOM, HISTORY, SET_TOPIC) once, before its
 * handler runs.
 *
 * Acceptor thread only. Handlers validate, update the registry (which takes
 * its own lock briefly), queue the reply on the requesting connection and
 * hand announcements and chat to the room's thread through its mailbox;
 * they never write to a socket themselves.
 *
 * Cluster mode (ctl->cluster): what only Redis knows is asked of the
 * cluster thread (cluster_request: a JOIN's name claim, LIST_ROOMS,
 * LIST_MEMBERS, a PRIVATE_MESSAGE to a name not held here); the connection
 * reads no further request (c->paused) until the answer comes back as
 * mail to the acceptor, which hands it to control_cluster_answer. A CHAT or
 * JOIN while Redis cannot take messages gets error 11. */
#include "control.h"
#include "cluster.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "msg.h"
#include "net.h"
#include "registry.h"
#include "room.h"
#include "rooms.h"
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* How long a control connection waits before its next request when the
 * room it just relayed to is behind (room_relay_busy). */
#define CONTROL_RELAY_BACKOFF_MS 5

/* ---- a control connection's memberships (struct control_conn) ---- */

struct membership *control_membership(struct conn *c, long join_id)
{
	struct control_conn *cc = control_conn(c);

	for (size_t i = 0; i < cc->nms; i++)
		if (cc->ms[i].join_id == join_id)
			return &cc->ms[i];
	return NULL;
}

int control_add_membership(struct conn *c, const struct membership *m, long max)
{
	struct control_conn *cc = control_conn(c);
	struct membership *ms;

	if ((long)cc->nms >= max)
		return -ENOSPC;
	ms = realloc(cc->ms, (cc->nms + 1) * sizeof(*ms));
	if (!ms)
		return -ENOMEM;
	cc->ms = ms;
	cc->ms[cc->nms++] = *m;
	return 0;
}

void control_remove_membership(struct conn *c, long join_id)
{
	struct control_conn *cc = control_conn(c);

	for (size_t i = 0; i < cc->nms; i++) {
		if (cc->ms[i].join_id == join_id) {
			cc->ms[i] = cc->ms[--cc->nms];
			return;
		}
	}
}

void control_conn_fini(struct conn *c)
{
	free(control_conn(c)->ms);
	control_conn(c)->ms = NULL;
}

/* Queue a reply we made; a full send queue marks the client for closing. */
static void reply(struct conn *c, struct msg *m)
{
	int rc;

	if (c->closing) {
		/* Cut off (or closing) mid-list: nothing more, so the client
		 * never gets entries without their head. */
		msg_unref(&m);
		return;
	}
	rc = conn_queue_take(c, m);

	if (rc < 0 && !c->closing) {
		log_warn("control: %s: %s: closing", c->peer,
			 rc == -ENOBUFS ? "send queue full (not reading)" : "out of memory");
		if (rc == -ENOBUFS)
			metrics_cut_off(METRICS_CONTROL);
		conn_begin_close(c, 1); /* the acceptor ends its memberships */
	}
}

void control_reply_error(struct conn *c, enum proto_err err, const char *detail)
{
	metrics_error(err);
	reply(c, proto_write_error(err, detail));
}

/* The address clients should use to reach us: the configured public host,
 * else the local address of this connection (right even when bound to
 * 0.0.0.0 or ::, and in the client's own family: "::1" to an IPv6 client,
 * "127.0.0.1" to an IPv4 one, also through a dual-stack socket). An IPv6
 * literal goes bare, without brackets: CS4032 clients hand SERVER_IP to
 * getaddrinfo()/inet_pton() as it is. */
static void our_address(const struct control *ctl, const struct conn *c, char *out, size_t len)
{
	const char *bind = ctl->cfg->bind;

	if (ctl->cfg->public_host[0])
		snprintf(out, len, "%s", ctl->cfg->public_host);
	else if (net_local_ip(c->fd, out, len) < 0) /* not seen: the first bind address */
		snprintf(out, len, "%.*s", (int)strcspn(bind, ","), bind);
}

static struct msg *announcement(long ref, const char *name, const char *what)
{
	char text[CONFIG_NAME_MAX + 64];

	snprintf(text, sizeof(text), "%s%s", name, what);
	return proto_write_chat(ref, name, text);
}

static enum control_result handle_helo(struct control *ctl, struct conn *c, const struct proto_msg *m)
{
	char ip[NET_ADDRSTRLEN + CONFIG_HOST_MAX];

	our_address(ctl, c, ip, sizeof(ip));
	reply(c, proto_write_helo(m->field[PROTO_F_HELO_TEXT], ip, ctl->port, ctl->cfg->server_id));
	return CONTROL_OK;
}

static enum control_result handle_kill(struct control *ctl, struct conn *c, const struct proto_msg *m)
{
	(void)m;
	if (!ctl->cfg->kill_service || !net_is_loopback(c->peer)) {
		log_warn("control: %s: KILL_SERVICE refused", c->peer);
		control_reply_error(c, PROTO_E_FORBIDDEN, "KILL_SERVICE is not allowed");
		return CONTROL_OK;
	}
	log_info("control: KILL_SERVICE from %s: shutting down", c->peer);
	return CONTROL_STOP;
}

/* Apply the dormant bounds before a request looks at rooms, so no request
 * sees a room past them. */
static void trim_dormant(struct control *ctl)
{
	rooms_trim_dormant(ctl->rooms);
}

/* Retire room ref's thread if it is on demand and empty (the last member
 * left, or a join into a room just opened failed). */
static void close_if_empty(struct control *ctl, long ref, struct room *room)
{
	rooms_close_if_empty(ctl->rooms, ref, room);
}

/* Find the room called name, opening it when the config allows, for c.
 * Returns PROTO_OK or the error for the joiner. */
static enum proto_err open_room(struct control *ctl, struct conn *c, const char *name,
				struct room_info *info)
{
	return rooms_open(ctl->rooms, c, name, info);
}

/* HISTORY for membership join_id of c, in room (after >= 0: HISTORY_AFTER,
 * a page of at most half the queue, whose longer head is charged too);
 * pauses c until the reply is written. 0, or the error to answer: -E2BIG
 * (the reply is larger than c's whole send queue), -ENOBUFS (no room for
 * it in the queue now), -ENOMEM. */
static int request_history(struct conn *c, struct room *room, long join_id, long after)
{
	size_t cost = room_history_cost(room) + (after >= 0 ? PROTO_HISTORY_AFTER_HEAD_MAX : 0);
	int rc;

	/* At most half the queue: the rest stays for the room traffic that
	 * arrives meanwhile, so asking cannot get a reading member cut off. */
	if (after >= 0 && cost > c->out.max_bytes / 2)
		cost = c->out.max_bytes / 2; /* a page: the client asks on */
	if (cost > c->out.max_bytes / 2)
		return -E2BIG;
	if (sendq_reserve(&c->out, cost) < 0)
		return -ENOBUFS;
	rc = room_history(room, join_id, c->fd, c->id, cost, after);
	if (rc < 0) {
		sendq_unreserve(&c->out, cost);
		return rc;
	}
	/* One HISTORY in flight per connection: the next request waits for
	 * this reply to be written (TCP slows a pipelining client). */
	c->paused = 1;
	control_conn(c)->history_wait = 1;
	return 0;
}

static struct msg *joined_reply(struct control *ctl, struct conn *c, const struct membership *ms)
{
	char ip[NET_ADDRSTRLEN + CONFIG_HOST_MAX];

	our_address(ctl, c, ip, sizeof(ip));
	return proto_write_joined(ms->room_name, ip, ms->port, ms->ref, ms->join_id);
}

static void reply_joined(struct control *ctl, struct conn *c, const struct membership *ms)
{
	reply(c, joined_reply(ctl, c, ms));
}

static enum control_result join_error(struct conn *c, enum proto_err err, const char *room)
{
	log_debug("control: %s: join %s refused: %s", c->peer, room, proto_err_text(err));
	control_reply_error(c, err, NULL);
	return CONTROL_OK;
}

/* ---- cluster mode: what only Redis knows (cluster.h) ---- */

/* Tell the cluster thread something that needs no answer (a name
 * released, the extension opt-in); out of memory it is logged. */
static void cluster_tell(struct control *ctl, struct conn *c, int kind, const char *name)
{
	struct cluster_req *q;

	if (!ctl->cluster)
		return;
	if (!(q = cluster_req_new(kind, c->fd, c->id, NULL, 0))) {
		log_error("control: %s: out of memory telling the cluster", c->peer);
		return;
	}
	if (name)
		snprintf(q->name, sizeof(q->name), "%s", name);
	cluster_request(ctl->cluster, q);
}

/* Ask the cluster thread q for c, which reads no further request until the
 * answer (control_cluster_answer). */
static enum control_result cluster_ask(struct control *ctl, struct conn *c, struct cluster_req *q)
{
	if (!q) {
		control_reply_error(c, PROTO_E_SERVER, "out of memory");
		return CONTROL_OK;
	}
	c->paused = 1;
	cluster_request(ctl->cluster, q);
	return CONTROL_OK;
}

static int has_name(const struct conn *c, const char *name);

/* name is no longer one of c's: free it cluster-wide. */
static void release_if_unused(struct control *ctl, struct conn *c, const char *name)
{
	if (ctl->cluster && ctl->cfg->name_scope == CONFIG_SCOPE_SERVER && !has_name(c, name))
		cluster_tell(ctl, c, CLUSTER_REQ_RELEASE, name);
}

static int name_held_elsewhere(struct control *ctl, const struct conn *c, const char *name)
{
	struct member_info holder;
	int rc = registry_name_holder(ctl->reg, name, &holder);

	return rc == -EEXIST || (rc == 0 && holder.conn_id != c->id);
}

static enum control_result join_named(struct control *ctl, struct conn *c, const char *room,
				      const char *name);

static enum control_result handle_join(struct control *ctl, struct conn *c, const struct proto_msg *m)
{
	const char *room = m->field[PROTO_F_JOIN_ROOM], *name = m->field[PROTO_F_JOIN_NAME];
	struct control_conn *cc = control_conn(c);

	if (!config_name_valid(ctl->cfg, room, m->len[PROTO_F_JOIN_ROOM]) ||
	    !config_name_valid(ctl->cfg, name, m->len[PROTO_F_JOIN_NAME]))
		return join_error(c, PROTO_E_BAD_NAME, room);
	for (size_t i = 0; i < cc->nms; i++) {
		/* Joining again under the same name: the same answer, no news. */
		if (strcmp(cc->ms[i].room_name, room) == 0 && strcmp(cc->ms[i].name, name) == 0) {
			reply_joined(ctl, c, &cc->ms[i]);
			return CONTROL_OK;
		}
	}
	if ((long)cc->nms >= ctl->cfg->max_rooms_per_client)
		return join_error(c, PROTO_E_SERVER_FULL, room);
	/* Cluster mode: a joiner starts receiving with its own join entry,
	 * which only a Redis that takes appends can give it. */
	if (ctl->cluster && !cluster_accepting(ctl->cluster)) {
		control_reply_error(c, PROTO_E_SERVER, CLUSTER_DOWN_TEXT);
		return CONTROL_OK;
	}
	/* A name another connection holds is refused before any room is
	 * opened for it (SPEC 2.1: names are server wide). Only this thread
	 * changes names, so the answer holds until registry_join. */
	if (ctl->cfg->name_scope == CONFIG_SCOPE_SERVER && name_held_elsewhere(ctl, c, name))
		return join_error(c, PROTO_E_NAME_IN_USE, room);
	/* Cluster mode: the name is claimed in Redis (names are cluster
	 * wide) and the room's ref looked up or allocated there (one ref per
	 * name cluster-wide); the join goes on when the answer comes
	 * (control_cluster_answer). */
	if (ctl->cluster) {
		struct room_info here;
		int need_ref = registry_find_room(ctl->reg, room, &here) < 0;
		enum proto_err err = need_ref ? rooms_may_open(ctl->rooms, c, room) : PROTO_OK;
		struct cluster_req *q;

		if (err != PROTO_OK) /* refused here: nothing allocated in Redis */
			return join_error(c, err, room);
		if ((q = cluster_req_new(CLUSTER_REQ_CLAIM, c->fd, c->id, NULL, 0))) {
			q->need_ref = need_ref;
			if (ctl->cfg->name_scope == CONFIG_SCOPE_SERVER)
				snprintf(q->name, sizeof(q->name), "%s", name);
			snprintf(q->from, sizeof(q->from), "%s", name);
			snprintf(q->room, sizeof(q->room), "%s", room);
		}
		return cluster_ask(ctl, c, q);
	}
	return join_named(ctl, c, room, name);
}

/* The rest of a JOIN, once name is c's (cluster-wide in cluster mode). */
static enum control_result join_named(struct control *ctl, struct conn *c, const char *room,
				      const char *name)
{
	struct membership ms, *stored;
	struct msg *joined;
	struct room_info info;
	enum proto_err err;

	err = open_room(ctl, c, room, &info);
	if (err != PROTO_OK)
		return join_error(c, err, room);

	memset(&ms, 0, sizeof(ms));
	err = registry_join(ctl->reg, info.ref, name, c->id, c->fd, &ms.join_id);
	if (err != PROTO_OK) {
		close_if_empty(ctl, info.ref, info.room); /* a room opened for nothing */
		return join_error(c, err, room);
	}
	ms.ref = info.ref;
	ms.port = info.port;
	ms.room = info.room;
	snprintf(ms.name, sizeof(ms.name), "%s", name);
	snprintf(ms.room_name, sizeof(ms.room_name), "%s", room);
	/* Everything that can fail comes before the room hears of the member,
	 * so a failure leaves no trace. */
	if (control_add_membership(c, &ms, ctl->cfg->max_rooms_per_client) < 0) {
		registry_leave(ctl->reg, ms.join_id);
		close_if_empty(ctl, info.ref, info.room);
		return join_error(c, PROTO_E_SERVER, room);
	}
	stored = control_membership(c, ms.join_id);
	/* Cluster mode: the room sends JOINED itself once the join is in the
	 * room's stream (c reads on then), so that whatever anyone says after
	 * the joiner has JOINED comes after its join, on every node. */
	joined = ctl->cluster ? joined_reply(ctl, c, stored) : NULL;
	if ((ctl->cluster && !joined) ||
	    room_add_member_joined(info.room, ms.join_id, name, c->fd, c->id, c->peer, c->seq,
				   announcement(info.ref, name, PROTO_JOINED_TEXT), joined,
				   &stored->leave) < 0) {
		control_remove_membership(c, ms.join_id);
		registry_leave(ctl->reg, ms.join_id);
		close_if_empty(ctl, info.ref, info.room);
		return join_error(c, PROTO_E_SERVER, room);
	}
	log_debug("control: %s joined %s as %s (join id %ld)", c->peer, room, name, ms.join_id);
	if (ctl->cluster)
		c->paused = 1;
	else
		reply_joined(ctl, c, stored);
	return CONTROL_OK;
}

/* ms is over: c forgets it, and (cluster mode) its name is freed in Redis
 * once no other membership of c uses it. */
static void forget_membership(struct control *ctl, struct conn *c, struct membership *ms)
{
	char name[CONFIG_NAME_MAX + 1];

	snprintf(name, sizeof(name), "%s", ms->name);
	control_remove_membership(c, ms->join_id);
	release_if_unused(ctl, c, name);
}

/* End membership ms of c; the leave is announced to the other members.
 * With self (LEAVE_CHATROOM: the LEFT_CHATROOM reply and the leaver's own
 * copy of the announcement), the room sends self back after everything it
 * relayed before, and c handles no further request until then: so the
 * leaver gets its own earlier messages, then LEFT, then nothing more. */
static void end_membership(struct control *ctl, struct conn *c, struct membership *ms,
			   struct msg *note, struct msg *self)
{
	registry_leave(ctl->reg, ms->join_id);
	if (self) {
		c->paused = 1;
		c->leaving_id = ms->join_id;
	}
	room_remove_member(ms->room, ms->leave, ms->join_id, c->fd, c->id, note, self);
	/* A room made by a JOIN ends with its last member; it stops after
	 * this removal, its mailbox being in order. A later JOIN restarts it
	 * under the same ref if it was kept dormant, else under a new one. */
	close_if_empty(ctl, ms->ref, ms->room);
	forget_membership(ctl, c, ms);
}

/* A LEAVE_CHATROOM that membership join_id of c made on its room port
 * (SPEC §2.4), carried here by the room thread. The membership ends as on
 * the control port, but the answer (LEFT_CHATROOM and the leaver's own
 * copy of the announcement) goes back to the room connection that asked,
 * after everything relayed to it before; c itself is not paused, since
 * it waits for nothing. Ended meanwhile: nothing here (the room answers
 * the asker with the LEFT echo when that end reaches it). */
void control_leave_from_room(struct control *ctl, struct conn *c, long join_id)
{
	struct membership *ms = control_membership(c, join_id);
	struct msg *note, *left, *self;

	if (!ms)
		return;
	note = announcement(ms->ref, ms->name, PROTO_LEFT_TEXT);
	left = proto_write_left(ms->ref, join_id);
	/* Out of memory: the leave happens all the same (leaving cannot
	 * fail); the room then closes the asking connection. */
	self = note && left ? msg_concat(left, note) : NULL;
	msg_unref(&left);
	if (!self)
		log_error("control: %s: out of memory answering a room-port LEAVE", c->peer);
	log_debug("control: %s left room %ld as %s through its room port", c->peer, ms->ref, ms->name);
	registry_leave(ctl->reg, ms->join_id);
	room_remove_member_here(ms->room, ms->leave, ms->join_id, note, self);
	close_if_empty(ctl, ms->ref, ms->room);
	forget_membership(ctl, c, ms);
}

/* A request that names a membership of c (ROOM_REF, JOIN_ID, CLIENT_NAME),
 * resolved by the command table's pre-check (resolve_membership) before
 * its handler runs. */
struct named_membership {
	long ref, id;          /* its ROOM_REF and JOIN_ID */
	struct membership *ms; /* NULL only for a LEAVE's idempotent echo */
};

static enum control_result handle_leave(struct control *ctl, struct conn *c, const struct proto_msg *m,
					const struct named_membership *nm)
{
	struct msg *note, *left, *self;

	(void)m;
	if (!nm->ms) {
		/* Idempotent (SPEC 2.1): a JOIN_ID that is not a live membership
		 * of this connection, whatever the ref, gets the same echo and
		 * changes nothing. */
		reply(c, proto_write_left(nm->ref, nm->id));
		return CONTROL_OK;
	}
	note = announcement(nm->ref, nm->ms->name, PROTO_LEFT_TEXT);
	left = proto_write_left(nm->ref, nm->id);
	self = note && left ? msg_concat(left, note) : NULL;
	msg_unref(&left);
	if (!self) {
		msg_unref(&note);
		control_reply_error(c, PROTO_E_SERVER, "out of memory");
		return CONTROL_OK;
	}
	end_membership(ctl, c, nm->ms, note, self);
	return CONTROL_OK;
}

static enum control_result handle_disconnect(struct control *ctl, struct conn *c, const struct proto_msg *m)
{
	(void)m;
	control_drop_memberships(ctl, c);
	return CONTROL_CLOSE;
}

static enum control_result handle_chat(struct control *ctl, struct conn *c, const struct proto_msg *m,
				       const struct named_membership *nm)
{
	struct proto_chat_layout where;
	struct room *room = nm->ms->room;
	struct msg *out;

	if ((long)m->len[PROTO_F_CHAT_TEXT] > ctl->cfg->max_message) {
		control_reply_error(c, PROTO_E_TOO_LARGE, "message too large");
		return CONTROL_OK;
	}
	if (proto_text_forges_field(m->field[PROTO_F_CHAT_TEXT], m->len[PROTO_F_CHAT_TEXT])) {
		control_reply_error(c, PROTO_E_MALFORMED, PROTO_FORGED_LINE_TEXT);
		return CONTROL_OK;
	}
	/* Cluster mode: never a local-only relay (docs/CLUSTER.md). */
	if (ctl->cluster && !cluster_accepting(ctl->cluster)) {
		control_reply_error(c, PROTO_E_SERVER, CLUSTER_DOWN_TEXT);
		return CONTROL_OK;
	}
	out = proto_write_chat_at(nm->ref, nm->ms->name, m->field[PROTO_F_CHAT_TEXT],
				  m->len[PROTO_F_CHAT_TEXT], &where);
	if (!out || room_relay(room, out, &where) < 0)
		control_reply_error(c, PROTO_E_SERVER, "out of memory");
	else if (room_relay_busy(room)) {
		control_conn(c)->backoff_ms = CONTROL_RELAY_BACKOFF_MS; /* the room is behind: slow the sender */
		metrics_slowdown(METRICS_SLOW_ROOM_BUSY);
	}
	return CONTROL_OK;
}

static enum control_result handle_attach(struct control *ctl, struct conn *c, const struct proto_msg *m)
{
	(void)ctl;
	(void)m;
	control_reply_error(c, PROTO_E_MALFORMED, "ATTACH_CHATROOM goes to the room port");
	return CONTROL_OK;
}

/* ---- extensions (docs/PROTOCOL.md, "Extensions") ---- */

static enum control_result handle_welcome(struct control *ctl, struct conn *c, const struct proto_msg *m)
{
	const struct config *cfg = ctl->cfg;
	char limits[256];

	/* "WELCOME: SEQ" asks for sequence numbers (§7.7), and LIMITS then
	 * says they are given; any other value is the classic request. */
	if (strcasecmp(m->field[0], "SEQ") == 0)
		c->seq = 1;
	snprintf(limits, sizeof(limits),
		 "max_name=%ld max_message=%ld max_rooms_per_client=%ld history=%ld rate=%ld burst=%ld%s",
		 cfg->max_name, cfg->max_message, cfg->max_rooms_per_client, cfg->history, cfg->rate,
		 cfg->burst, c->seq ? " seq=1" : "");
	reply(c, proto_write_welcome(cfg->server_id, "roomd " ROOMD_VERSION, limits, cfg->welcome));
	return CONTROL_OK;
}

static void list_room(const struct room_info *info, void *arg)
{
	reply(arg, proto_write_room_entry(info->name, info->ref, info->room ? info->port : 0,
					  info->members, info->topic));
}

/* One page of the live (or dormant) rooms: at most PROTO_LIST_ROOMS_MAX
 * entries, with the total so the client can ask for the rest. */
static enum control_result handle_list_rooms(struct control *ctl, struct conn *c, const struct proto_msg *m)
{
	struct proto_list_rooms q;
	struct room_info *page;
	long total, n;

	if (proto_parse_list_rooms(m->field[PROTO_F_LIST_ROOMS_ARGS], &q) < 0) {
		control_reply_error(c, PROTO_E_MALFORMED, "bad LIST_ROOMS (OFFSET=n LIMIT=n DORMANT=1)");
		return CONTROL_OK;
	}
	if (ctl->cluster) { /* every node's rooms: Redis knows them */
		struct cluster_req *cq = cluster_req_new(CLUSTER_REQ_ROOMS, c->fd, c->id, NULL, 0);

		if (cq) { /* the page asked for, kept in the request */
			cq->ref = q.offset;
			cq->text_len = (size_t)q.limit;
			cq->room[0] = (char)q.dormant;
		}
		return cluster_ask(ctl, c, cq);
	}
	trim_dormant(ctl);
	page = malloc((size_t)(q.limit > 0 ? q.limit : 1) * sizeof(*page));
	/* The page and the total are copied under one lock: they agree. */
	n = page ? registry_list_rooms(ctl->reg, q.dormant, q.offset, q.limit, page, &total) : -ENOMEM;
	if (n < 0) {
		free(page);
		control_reply_error(c, PROTO_E_SERVER, "out of memory");
		return CONTROL_OK;
	}
	reply(c, proto_write_rooms_head(n, total));
	for (long i = 0; i < n; i++)
		list_room(&page[i], c);
	free(page);
	return CONTROL_OK;
}

struct member_list {
	struct conn *c;
	long left; /* entries promised by the count */
};

static void list_member(const struct member_info *mi, void *arg)
{
	struct member_list *ml = arg;

	if (ml->left-- > 0)
		reply(ml->c, proto_write_member_entry(mi->name));
}

static enum control_result handle_list_members(struct control *ctl, struct conn *c, const struct proto_msg *m)
{
	struct room_info info;
	struct member_list ml = { c, 0 };
	long ref;

	if (proto_parse_int(m->field[PROTO_F_LIST_MEMBERS_REF], 1, PROTO_ID_MAX, &ref) < 0) {
		control_reply_error(c, PROTO_E_MALFORMED, "bad LIST_MEMBERS");
		return CONTROL_OK;
	}
	trim_dormant(ctl);
	if (ctl->cluster) { /* every node's members: Redis knows them */
		struct cluster_req *q = cluster_req_new(CLUSTER_REQ_MEMBERS, c->fd, c->id, NULL, 0);

		if (q)
			q->ref = ref;
		return cluster_ask(ctl, c, q);
	}
	if (registry_find_ref(ctl->reg, ref, &info) < 0) {
		control_reply_error(c, PROTO_E_NO_ROOM, NULL);
		return CONTROL_OK;
	}
	/* Membership changes only on this thread, so the count holds. */
	ml.left = info.members;
	reply(c, proto_write_members_head(ref, info.members));
	if (registry_each_member(ctl->reg, ref, list_member, &ml) < 0 || ml.left != 0)
		conn_begin_close(c, 1);
	return CONTROL_OK;
}

static int has_name(const struct conn *c, const char *name)
{
	const struct control_conn *cc = (const struct control_conn *)c;

	for (size_t i = 0; i < cc->nms; i++)
		if (strcmp(cc->ms[i].name, name) == 0)
			return 1;
	return 0;
}

static enum control_result handle_private(struct control *ctl, struct conn *c, const struct proto_msg *m)
{
	const char *to = m->field[PROTO_F_PRIV_TO], *from = m->field[PROTO_F_PRIV_NAME];
	struct member_info holder;
	struct msg *out;
	int rc;

	if (!config_name_valid(ctl->cfg, to, m->len[PROTO_F_PRIV_TO])) {
		control_reply_error(c, PROTO_E_BAD_NAME, NULL);
		return CONTROL_OK;
	}
	if (!has_name(c, from)) {
		/* One speaks under a name one holds in some room. */
		control_reply_error(c, PROTO_E_NOT_MEMBER, "CLIENT_NAME is not a name of this connection");
		return CONTROL_OK;
	}
	if ((long)m->len[PROTO_F_PRIV_TEXT] > ctl->cfg->max_message) {
		control_reply_error(c, PROTO_E_TOO_LARGE, "message too large");
		return CONTROL_OK;
	}
	if (proto_text_forges_field(m->field[PROTO_F_PRIV_TEXT], m->len[PROTO_F_PRIV_TEXT])) {
		control_reply_error(c, PROTO_E_MALFORMED, PROTO_FORGED_LINE_TEXT);
		return CONTROL_OK;
	}
	/* With name_scope room a name may be several people's: then neither
	 * the sender nor the recipient is a person, and nothing is sent. */
	if (registry_name_holder(ctl->reg, from, &holder) == -EEXIST) {
		control_reply_error(c, PROTO_E_NAME_IN_USE, "CLIENT_NAME is held by several connections");
		return CONTROL_OK;
	}
	rc = registry_name_holder(ctl->reg, to, &holder);
	if (rc == -ENOENT && ctl->cluster && ctl->cfg->name_scope == CONFIG_SCOPE_SERVER) {
		/* Not here: perhaps on another node. */
		struct cluster_req *q = cluster_req_new(CLUSTER_REQ_PRIVATE, c->fd, c->id,
							m->field[PROTO_F_PRIV_TEXT],
							m->len[PROTO_F_PRIV_TEXT]);
		if (q) {
			snprintf(q->name, sizeof(q->name), "%s", to);
			snprintf(q->from, sizeof(q->from), "%s", from);
		}
		return cluster_ask(ctl, c, q);
	}
	if (rc == -EEXIST) {
		control_reply_error(c, PROTO_E_NAME_IN_USE, "the recipient's name is held by several connections");
		return CONTROL_OK;
	}
	if (rc != 0 || !ctl->peers.reachable(ctl->peers.arg, holder.fd, holder.conn_id)) {
		control_reply_error(c, PROTO_E_NO_ROOM, "no such user");
		return CONTROL_OK;
	}
	out = proto_write_private_from(from, m->field[PROTO_F_PRIV_TEXT]);
	if (!out) {
		control_reply_error(c, PROTO_E_SERVER, "out of memory");
		return CONTROL_OK;
	}
	if (holder.conn_id == c->id)
		reply(c, msg_ref(out));
	else
		ctl->peers.send(ctl->peers.arg, holder.fd, holder.conn_id, out);
	msg_unref(&out);
	reply(c, proto_write_private_sent(to, 1));
	return CONTROL_OK;
}

static enum control_result history_answer(struct conn *c, int rc);

static enum control_result handle_history(struct control *ctl, struct conn *c, const struct proto_msg *m,
					  const struct named_membership *nm)
{
	int rc = request_history(c, nm->ms->room, nm->ms->join_id, -1);

	(void)ctl;
	(void)m;
	return history_answer(c, rc);
}

/* HISTORY_AFTER (§7.7): the same, for the messages numbered after SEQ. */
static enum control_result handle_history_after(struct control *ctl, struct conn *c,
						const struct proto_msg *m,
						const struct named_membership *nm)
{
	long after;

	(void)ctl;
	if (proto_parse_int(m->field[PROTO_F_HISTA_SEQ], 0, PROTO_SEQ_MAX, &after) < 0) {
		control_reply_error(c, PROTO_E_MALFORMED, "bad SEQ");
		return CONTROL_OK;
	}
	return history_answer(c, request_history(c, nm->ms->room, nm->ms->join_id, after));
}

/* A HISTORY request's error, if it could not be asked (rc < 0). */
static enum control_result history_answer(struct conn *c, int rc)
{
	if (rc == -E2BIG)
		control_reply_error(c, PROTO_E_TOO_LARGE, "history larger than the send queue");
	else if (rc == -ENOBUFS)
		control_reply_error(c, PROTO_E_RATE, "send queue too full for the history: read first");
	else if (rc < 0)
		control_reply_error(c, PROTO_E_SERVER, "out of memory");
	return CONTROL_OK;
}

static enum control_result handle_set_topic(struct control *ctl, struct conn *c, const struct proto_msg *m,
					    const struct named_membership *nm)
{
	const char *topic = m->field[PROTO_F_TOPIC_TEXT];
	const struct membership *ms = nm->ms;
	struct room_info info;
	char text[CONFIG_NAME_MAX + sizeof(PROTO_TOPIC_NOTICE_TEXT) + CONFIG_TOPIC_MAX];

	if (registry_find_ref(ctl->reg, ms->ref, &info) < 0 || !info.topic_change) {
		control_reply_error(c, PROTO_E_FORBIDDEN, "this room's topic cannot be changed");
		return CONTROL_OK;
	}
	if (m->len[PROTO_F_TOPIC_TEXT] > CONFIG_TOPIC_MAX) {
		control_reply_error(c, PROTO_E_TOO_LARGE, "topic too long");
		return CONTROL_OK;
	}
	/* The rule the config loader applies to a room's topic key: what one
	 * member sets is shown to everyone by LIST_ROOMS and the notice. */
	if (!config_topic_valid(topic, m->len[PROTO_F_TOPIC_TEXT])) {
		control_reply_error(c, PROTO_E_MALFORMED, "topic contains a control byte");
		return CONTROL_OK;
	}
	registry_set_topic(ctl->reg, ms->ref, topic);
	store_set_topic(ctl->store, ms->ref, topic);
	reply(c, proto_write_topic_set(ms->ref, topic));
	/* Announced as a CHAT so that plain CS4032 members see it too. */
	snprintf(text, sizeof(text), "%s" PROTO_TOPIC_NOTICE_TEXT "%s", ms->name, topic);
	room_relay(ms->room, proto_write_chat(ms->ref, ctl->cfg->server_id, text), NULL);
	return CONTROL_OK;
}

/* The control port's requests. One that names a membership (for_member)
 * runs only once resolve_membership() has found it; the others (handler)
 * check what they need themselves. */
static const struct command {
	enum proto_kind kind;
	enum control_result (*handler)(struct control *, struct conn *, const struct proto_msg *);
	enum control_result (*for_member)(struct control *, struct conn *, const struct proto_msg *,
					  const struct named_membership *);
	/* LEAVE, idempotent (SPEC 2.1): a JOIN_ID that is no membership of
	 * this connection runs too, without one (the echo), instead of
	 * being refused. */
	int idempotent;
	const char *bad_ids;    /* error 1's text: ROOM_REF or JOIN_ID is no id */
	const char *not_member; /* error 3's text (NULL: the code's own) */
} commands[] = {
	{ PROTO_HELO, handle_helo, NULL, 0, NULL, NULL },
	{ PROTO_KILL_SERVICE, handle_kill, NULL, 0, NULL, NULL },
	{ PROTO_JOIN, handle_join, NULL, 0, NULL, NULL },
	{ PROTO_LEAVE, NULL, handle_leave, 1, "bad LEAVE_CHATROOM or JOIN_ID",
	  "JOIN_ID does not match the room or name" },
	{ PROTO_DISCONNECT, handle_disconnect, NULL, 0, NULL, NULL },
	{ PROTO_CHAT, NULL, handle_chat, 0, "bad CHAT or JOIN_ID", NULL },
	{ PROTO_ATTACH, handle_attach, NULL, 0, NULL, NULL },
	{ PROTO_WELCOME, handle_welcome, NULL, 0, NULL, NULL },
	{ PROTO_LIST_ROOMS, handle_list_rooms, NULL, 0, NULL, NULL },
	{ PROTO_LIST_MEMBERS, handle_list_members, NULL, 0, NULL, NULL },
	{ PROTO_PRIVATE, handle_private, NULL, 0, NULL, NULL },
	{ PROTO_HISTORY, NULL, handle_history, 0, "bad ROOM_REF or JOIN_ID", NULL },
	{ PROTO_SET_TOPIC, NULL, handle_set_topic, 0, "bad ROOM_REF or JOIN_ID", NULL },
	{ PROTO_HISTORY_AFTER, NULL, handle_history_after, 0, "bad ROOM_REF or JOIN_ID", NULL },
};

/* The pre-check of a request that names a membership: its numbers parse
 * (else error 1), the room exists unless the JOIN_ID is c's membership of
 * it (error 2), and the JOIN_ID is c's membership of that room under that
 * name (error 3). Only c's own memberships and the room refs are looked
 * up, never another connection's ids: no request tells an outsider which
 * ids are live. 0 when the handler may run (*nm set), else -1 (answered). */
static int resolve_membership(struct control *ctl, struct conn *c, const struct proto_msg *m,
			      const struct command *cmd, struct named_membership *nm)
{
	struct room_info info;
	struct membership *ms;

	if (proto_parse_int(m->field[PROTO_F_MEMBER_REF], 1, PROTO_ID_MAX, &nm->ref) < 0 ||
	    proto_parse_int(m->field[PROTO_F_MEMBER_ID], 1, PROTO_ID_MAX, &nm->id) < 0) {
		control_reply_error(c, PROTO_E_MALFORMED, cmd->bad_ids);
		return -1;
	}
	ms = nm->ms = control_membership(c, nm->id);
	if (!ms && cmd->idempotent)
		return 0; /* whatever the ref: nothing else is looked up */
	if ((!ms || ms->ref != nm->ref) && registry_find_ref(ctl->reg, nm->ref, &info) < 0) {
		control_reply_error(c, PROTO_E_NO_ROOM, NULL);
		return -1;
	}
	if (!ms || ms->ref != nm->ref || strcmp(ms->name, m->field[PROTO_F_MEMBER_NAME]) != 0) {
		log_info("control: %s: %s refused: JOIN_ID %ld is not its membership of room %ld",
			 c->peer, proto_kind_key(m->kind), nm->id, nm->ref);
		control_reply_error(c, PROTO_E_NOT_MEMBER, cmd->not_member);
		return -1;
	}
	return 0;
}

enum control_result control_handle(struct control *ctl, struct conn *c, const struct proto_msg *m)
{
	/* Using an extension is the opt-in to extension frames. */
	if (m->kind >= PROTO_WELCOME && m->kind <= PROTO_HISTORY_AFTER && !control_conn(c)->ext) {
		control_conn(c)->ext = 1;
		cluster_tell(ctl, c, CLUSTER_REQ_EXT, NULL); /* other nodes may now write to it */
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		const struct command *cmd = &commands[i];
		struct named_membership nm;

		if (cmd->kind != m->kind)
			continue;
		if (!cmd->for_member)
			return cmd->handler(ctl, c, m);
		if (resolve_membership(ctl, c, m, cmd, &nm) < 0)
			return CONTROL_OK;
		return cmd->for_member(ctl, c, m, &nm);
	}
	control_reply_error(c, PROTO_E_MALFORMED, "not a request");
	return CONTROL_OK;
}

void control_drop_memberships(struct control *ctl, struct conn *c)
{
	struct control_conn *cc = control_conn(c);

	while (cc->nms > 0) {
		struct membership *ms = &cc->ms[cc->nms - 1];
		end_membership(ctl, c, ms, announcement(ms->ref, ms->name, PROTO_LEFT_TEXT), NULL);
	}
}

void control_forget_memberships(struct conn *c)
{
	struct control_conn *cc = control_conn(c);

	for (size_t i = 0; i < cc->nms; i++)
		room_event_free(cc->ms[i].leave);
	cc->nms = 0;
}

/* ---- cluster answers ---- */

/* A cluster-wide LIST_ROOMS: the page asked for (offset q->ref, limit
 * q->text_len, as handle_list_rooms stored them) of the rooms by name; the
 * port and topic of a room open here, 0 and "" for the others. Rooms
 * without members anywhere count as dormant unless open here. */
static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct cluster_item *)a)->name, ((const struct cluster_item *)b)->name);
}

/* Is item listed by a LIST_ROOMS (dormant: DORMANT=1)? */
static int room_listed(struct control *ctl, const struct cluster_item *it, int dormant)
{
	struct room_info info;
	int live = it->count > 0 || (registry_find_ref(ctl->reg, it->ref, &info) == 0 && info.room);

	return live != dormant;
}

static void answer_rooms(struct control *ctl, struct conn *c, struct cluster_req *q)
{
	long offset = q->ref, limit = (long)q->text_len, total = 0, n;
	int dormant = q->room[0] != 0;
	struct room_info info;

	qsort(q->items, q->nitems, sizeof(*q->items), by_name);
	for (size_t i = 0; i < q->nitems; i++)
		total += room_listed(ctl, &q->items[i], dormant);
	n = total - offset < 0 ? 0 : total - offset;
	if (n > limit)
		n = limit;
	reply(c, proto_write_rooms_head(n, total));
	for (size_t i = 0, k = 0, sent = 0; i < q->nitems && sent < (size_t)n; i++) {
		const struct cluster_item *it = &q->items[i];
		int here;

		if (!room_listed(ctl, it, dormant) || (long)k++ < offset)
			continue;
		here = registry_find_ref(ctl->reg, it->ref, &info) == 0;
		reply(c, proto_write_room_entry(it->name, it->ref, here && info.room ? info.port : 0,
						it->count, here ? info.topic : ""));
		sent++;
	}
}

static void answer_members(struct control *ctl, struct conn *c, struct cluster_req *q)
{
	struct room_info info;

	if (q->nitems == 0 && registry_find_ref(ctl->reg, q->ref, &info) < 0) {
		control_reply_error(c, PROTO_E_NO_ROOM, NULL);
		return;
	}
	reply(c, proto_write_members_head(q->ref, (long)q->nitems));
	for (size_t i = 0; i < q->nitems; i++)
		reply(c, proto_write_member_entry(q->items[i].name));
}

/* A private message from another node for c, if c still holds the name
 * and opted in to extension frames. */
static void deliver_private(struct conn *c, const struct cluster_req *q)
{
	if (!c || !control_conn(c)->ext || !has_name(c, q->name)) {
		log_info("control: a private message from another node to %s: its connection is gone", q->name);
		return;
	}
	reply(c, proto_write_private_from(q->from, q->text));
}

/* A PRIVATE_MESSAGE whose recipient is not on this node, as Redis says. */
static void answer_private(struct control *ctl, struct conn *c, struct cluster_req *q)
{
	struct member_info holder;
	struct msg *out;

	if (q->result == 1 && registry_name_holder(ctl->reg, q->name, &holder) == 0 &&
	    ctl->peers.reachable(ctl->peers.arg, holder.fd, holder.conn_id) &&
	    (out = proto_write_private_from(q->from, q->text))) {
		/* here after all (it joined meanwhile) */
		ctl->peers.send(ctl->peers.arg, holder.fd, holder.conn_id, out);
		msg_unref(&out);
		q->result = 0;
	}
	if (q->result == 0)
		reply(c, proto_write_private_sent(q->name, 1));
	else if (q->result == -EAGAIN)
		control_reply_error(c, PROTO_E_SERVER, CLUSTER_DOWN_TEXT);
	else
		control_reply_error(c, PROTO_E_NO_ROOM, "no such user");
}

/* A JOIN's claim answered: the join goes on under the room's cluster ref;
 * a name claimed for a join that then failed is released again. */
static void answer_claim(struct control *ctl, struct conn *c, struct cluster_req *q)
{
	if (q->result == 0) {
		rooms_set_cluster_ref(ctl->rooms, q->ref);
		join_named(ctl, c, q->room, q->from);
		rooms_set_cluster_ref(ctl->rooms, 0);
	} else if (q->result == -EEXIST) {
		join_error(c, PROTO_E_NAME_IN_USE, q->room);
	} else {
		control_reply_error(c, PROTO_E_SERVER, CLUSTER_DOWN_TEXT);
	}
	if (q->name[0] && q->result != -EEXIST)
		release_if_unused(ctl, c, q->name);
}

int control_cluster_answer(struct control *ctl, struct conn *c, struct cluster_req *q)
{
	int resume;

	/* What c waited for is here (a JOIN may pause it again, for JOINED). */
	if (c && q->kind != CLUSTER_REQ_FROM)
		c->paused = 0;

	if (q->kind == CLUSTER_REQ_FROM)
		deliver_private(c, q);
	else if (!c && q->kind == CLUSTER_REQ_CLAIM && q->result != -EEXIST && q->name[0]) {
		q->kind = CLUSTER_REQ_RELEASE; /* closed meanwhile: the name goes back */
		cluster_request(ctl->cluster, q);
		return 0;
	} else if (c && q->kind == CLUSTER_REQ_CLAIM)
		answer_claim(ctl, c, q);
	else if (c && q->result == -EAGAIN && q->kind != CLUSTER_REQ_PRIVATE)
		control_reply_error(c, PROTO_E_SERVER, CLUSTER_DOWN_TEXT);
	else if (c && q->kind == CLUSTER_REQ_ROOMS)
		answer_rooms(ctl, c, q);
	else if (c && q->kind == CLUSTER_REQ_MEMBERS)
		answer_members(ctl, c, q);
	else if (c && q->kind == CLUSTER_REQ_PRIVATE)
		answer_private(ctl, c, q);
	resume = c && q->kind != CLUSTER_REQ_FROM && !c->paused;
	cluster_req_free(q);
	return resume;
}

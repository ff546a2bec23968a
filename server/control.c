/* control.c - the control-port commands, one handler per request kind,
 * dispatched through a table.
 *
 * Acceptor thread only. Handlers validate, update the registry (which takes
 * its own lock briefly), queue the reply on the requesting connection and
 * hand announcements and chat to the room's thread through its mailbox;
 * they never write to a socket themselves. */
#include "control.h"
#include "acceptor.h"
#include "config.h"
#include "conn.h"
#include "iptable.h"
#include "log.h"
#include "metrics.h"
#include "msg.h"
#include "net.h"
#include "registry.h"
#include "room.h"
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ID_MAX 0x7fffffffL
/* How long a control connection waits before its next request when the
 * room it just relayed to is behind (room_relay_busy). */
#define CONTROL_RELAY_BACKOFF_MS 5

/* ---- a control connection's memberships (they live with the conn, as
 * control.h's type: conn.c knows nothing of rooms) ---- */

struct membership *conn_membership(struct conn *c, long join_id)
{
	for (size_t i = 0; i < c->nms; i++)
		if (c->ms[i].join_id == join_id)
			return &c->ms[i];
	return NULL;
}

int conn_add_membership(struct conn *c, const struct membership *m, long max)
{
	struct membership *ms;

	if ((long)c->nms >= max)
		return -ENOSPC;
	ms = realloc(c->ms, (c->nms + 1) * sizeof(*ms));
	if (!ms)
		return -ENOMEM;
	c->ms = ms;
	c->ms[c->nms++] = *m;
	return 0;
}

void conn_remove_membership(struct conn *c, long join_id)
{
	for (size_t i = 0; i < c->nms; i++) {
		if (c->ms[i].join_id == join_id) {
			c->ms[i] = c->ms[--c->nms];
			return;
		}
	}
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

/* A new room created on demand goes to the store, so that its ref holds
 * across restarts and it comes back (dormant) after one. */
static void remember_room(struct control *ctl, const char *name, long ref)
{
	struct store_room sr = { .ref = ref, .created = (int64_t)time(NULL) };

	snprintf(sr.name, sizeof(sr.name), "%s", name);
	store_put_room(registry_store(ctl->reg), &sr);
}

static void forget_stored_room(const struct room_info *info, void *arg)
{
	struct control *ctl = arg;

	store_forget_room(registry_store(ctl->reg), info->ref);
	log_info("room %s (ref %ld) forgotten: dormant too long or too many dormant rooms",
		 info->name, info->ref);
}

/* Apply the dormant bounds (dormant_room_ttl, max_dormant_rooms) before a
 * request looks at rooms, so no request sees a room past them. O(number
 * forgotten): the oldest dormant room is first in line. */
static void trim_dormant(struct control *ctl)
{
	registry_trim_dormant(ctl->reg, (int64_t)time(NULL), forget_stored_room, ctl);
}

/* Room ref (created on demand) has no members left and its thread is
 * retiring. It stays dormant, to come back with its history on the next
 * JOIN, only when it has history to come back with: a member's message was
 * kept (the room's flag, set when the message was handed to the room, or
 * the registry's, sticky across its dormant periods) and a database keeps
 * it (without one, history ends with the thread). Otherwise it is
 * forgotten at once, here and in the store; its ref is not reused. */
static void room_emptied(struct control *ctl, const struct room_info *info, struct room *room)
{
	int history = info->history_seen || room_has_history(room);

	if (history && registry_store(ctl->reg)) {
		registry_mark_history(ctl->reg, info->ref);
		registry_set_room(ctl->reg, info->ref, NULL, 0);
		log_info("room %s closed: no members left; dormant", info->name);
		trim_dormant(ctl);
		return;
	}
	registry_set_room(ctl->reg, info->ref, NULL, 0);
	registry_forget(ctl->reg, info->ref);
	store_forget_room(registry_store(ctl->reg), info->ref);
	log_info("room %s closed: no members left and no history; forgotten (ref %ld retired)",
		 info->name, info->ref);
}

/* Retire room ref's thread if it is on demand and empty (the last member
 * left, or a join into a room just opened failed). */
static void close_if_empty(struct control *ctl, long ref, struct room *room)
{
	struct room_info info;

	if (registry_find_ref(ctl->reg, ref, &info) == 0 && info.on_demand && info.members == 0 &&
	    info.room == room && acceptor_retire_room(ctl->acc, room) == 0)
		room_emptied(ctl, &info, room);
}

/* Find the room called name, creating it (thread, port, registry entry)
 * when the config allows, for c. Returns PROTO_OK or the error for the
 * joiner. */
static enum proto_err open_room(struct control *ctl, struct conn *c, const char *name,
				struct room_info *info)
{
	struct room *room;
	long ref;
	int err;

	int known;

	trim_dormant(ctl);
	known = registry_find_room(ctl->reg, name, info) == 0;

	if (known && info->room)
		return PROTO_OK;
	if (!known && !ctl->cfg->room_creation)
		return PROTO_E_FORBIDDEN;
	if (registry_room_count(ctl->reg) >= ctl->cfg->max_rooms)
		return PROTO_E_SERVER_FULL;
	/* Starting a room (a thread, a port, a name kept) is the dearest
	 * request: room_create_rate a minute per address. */
	if (c->ipe && iptable_create_room(c->ipt, c->ipe, conn_clock_ms()) < 0) {
		log_info("control: %s: room %s not created: over room_create_rate (%ld a minute)",
			 c->peer, name, ctl->cfg->room_create_rate);
		metrics_refusal(METRICS_REFUSE_ROOM_CREATE_RATE);
		return PROTO_E_RATE;
	}
	/* Only this thread creates rooms, so the ref cannot be taken meanwhile;
	 * a dormant room keeps its ref. */
	ref = known ? info->ref : registry_next_ref(ctl->reg);
	room = room_start(ctl->cfg, ctl->acc, registry_store(ctl->reg), name, ref, 0,
			  known ? info->max_members : 0, known ? info->history : ctl->cfg->history, &err);
	if (!room) {
		log_error("control: cannot open room %s: %s", name, strerror(-err));
		return PROTO_E_SERVER;
	}
	if (known) {
		err = registry_set_room(ctl->reg, ref, room, room_port(room));
	} else {
		struct room_info fresh = { .ref = ref, .port = room_port(room), .history = -1,
					   .topic_change = -1, .on_demand = 1, .room = room };
		snprintf(fresh.name, sizeof(fresh.name), "%s", name);
		err = registry_add_room(ctl->reg, &fresh);
	}
	if (err < 0) {
		room_stop(room);
		return err == -ENOSPC ? PROTO_E_SERVER_FULL : PROTO_E_SERVER;
	}
	if (!known)
		remember_room(ctl, name, ref);
	log_info("room %s opened: ref %ld, port %u", name, ref, room_port(room));
	return registry_find_room(ctl->reg, name, info) == 0 ? PROTO_OK : PROTO_E_SERVER;
}

static void reply_joined(struct control *ctl, struct conn *c, const struct membership *ms)
{
	char ip[NET_ADDRSTRLEN + CONFIG_HOST_MAX];

	our_address(ctl, c, ip, sizeof(ip));
	reply(c, proto_write_joined(ms->room_name, ip, ms->port, ms->ref, ms->join_id));
}

static enum control_result join_error(struct conn *c, enum proto_err err, const char *room)
{
	log_debug("control: %s: join %s refused: %s", c->peer, room, proto_err_text(err));
	control_reply_error(c, err, NULL);
	return CONTROL_OK;
}

static int name_held_elsewhere(struct control *ctl, const struct conn *c, const char *name)
{
	struct member_info holder;
	int rc = registry_name_holder(ctl->reg, name, &holder);

	return rc == -EEXIST || (rc == 0 && holder.conn_id != c->id);
}

static enum control_result handle_join(struct control *ctl, struct conn *c, const struct proto_msg *m)
{
	const char *room = m->field[PROTO_F_JOIN_ROOM], *name = m->field[PROTO_F_JOIN_NAME];
	struct membership ms, *stored;
	struct room_info info;
	enum proto_err err;

	if (!config_name_valid(ctl->cfg, room, m->len[PROTO_F_JOIN_ROOM]) ||
	    !config_name_valid(ctl->cfg, name, m->len[PROTO_F_JOIN_NAME]))
		return join_error(c, PROTO_E_BAD_NAME, room);
	for (size_t i = 0; i < c->nms; i++) {
		/* Joining again under the same name: the same answer, no news. */
		if (strcmp(c->ms[i].room_name, room) == 0 && strcmp(c->ms[i].name, name) == 0) {
			reply_joined(ctl, c, &c->ms[i]);
			return CONTROL_OK;
		}
	}
	if ((long)c->nms >= ctl->cfg->max_rooms_per_client)
		return join_error(c, PROTO_E_SERVER_FULL, room);
	/* A name another connection holds is refused before any room is
	 * opened for it (SPEC 2.1: names are server wide). Only this thread
	 * changes names, so the answer holds until registry_join. */
	if (ctl->cfg->name_scope == CONFIG_SCOPE_SERVER && name_held_elsewhere(ctl, c, name))
		return join_error(c, PROTO_E_NAME_IN_USE, room);
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
	if (conn_add_membership(c, &ms, ctl->cfg->max_rooms_per_client) < 0) {
		registry_leave(ctl->reg, ms.join_id);
		close_if_empty(ctl, info.ref, info.room);
		return join_error(c, PROTO_E_SERVER, room);
	}
	stored = conn_membership(c, ms.join_id);
	if (room_add_member(info.room, ms.join_id, name, c->fd, c->id, c->peer,
			    announcement(info.ref, name, PROTO_JOINED_TEXT), &stored->leave) < 0) {
		conn_remove_membership(c, ms.join_id);
		registry_leave(ctl->reg, ms.join_id);
		close_if_empty(ctl, info.ref, info.room);
		return join_error(c, PROTO_E_SERVER, room);
	}
	log_debug("control: %s joined %s as %s (join id %ld)", c->peer, room, name, ms.join_id);
	reply_joined(ctl, c, stored);
	return CONTROL_OK;
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
	conn_remove_membership(c, ms->join_id);
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
	struct membership *ms = conn_membership(c, join_id);
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
	conn_remove_membership(c, ms->join_id);
}

static int parse_ref_and_id(const struct proto_msg *m, int ref_field, int id_field, long *ref, long *id)
{
	return proto_parse_int(m->field[ref_field], 1, ID_MAX, ref) == 0 &&
	       proto_parse_int(m->field[id_field], 1, ID_MAX, id) == 0;
}

static enum control_result handle_leave(struct control *ctl, struct conn *c, const struct proto_msg *m)
{
	struct room_info info;
	struct membership *ms;
	struct msg *note, *left, *self;
	long ref, id;

	if (!parse_ref_and_id(m, PROTO_F_LEAVE_REF, PROTO_F_LEAVE_ID, &ref, &id)) {
		control_reply_error(c, PROTO_E_MALFORMED, "bad LEAVE_CHATROOM or JOIN_ID");
		return CONTROL_OK;
	}
	ms = conn_membership(c, id);
	if (!ms) {
		/* Idempotent (SPEC 2.1): a JOIN_ID that is not a live membership
		 * of this connection, whatever the ref, gets the same echo and
		 * changes nothing. Nothing else is looked up, so the answer is
		 * the same whether the id is live elsewhere or not: no request
		 * tells an outsider which ids are live. */
		reply(c, proto_write_left(ref, id));
		return CONTROL_OK;
	}
	/* Its own membership, named with the wrong room or name: a mistake
	 * of the holder, told as such (nobody else can get here). */
	if (ms->ref != ref && registry_find_ref(ctl->reg, ref, &info) < 0) {
		control_reply_error(c, PROTO_E_NO_ROOM, NULL);
		return CONTROL_OK;
	}
	if (ms->ref != ref || strcmp(ms->name, m->field[PROTO_F_LEAVE_NAME]) != 0) {
		control_reply_error(c, PROTO_E_NOT_MEMBER, "JOIN_ID does not match the room or name");
		return CONTROL_OK;
	}
	note = announcement(ref, ms->name, PROTO_LEFT_TEXT);
	left = proto_write_left(ref, id);
	self = note && left ? msg_concat(left, note) : NULL;
	msg_unref(&left);
	if (!self) {
		msg_unref(&note);
		control_reply_error(c, PROTO_E_SERVER, "out of memory");
		return CONTROL_OK;
	}
	end_membership(ctl, c, ms, note, self);
	return CONTROL_OK;
}

static enum control_result handle_disconnect(struct control *ctl, struct conn *c, const struct proto_msg *m)
{
	(void)m;
	control_drop_memberships(ctl, c);
	return CONTROL_CLOSE;
}

static enum control_result handle_chat(struct control *ctl, struct conn *c, const struct proto_msg *m)
{
	struct room_info info;
	struct membership *ms;
	struct msg *out;
	long ref, id;

	if (!parse_ref_and_id(m, PROTO_F_CHAT_REF, PROTO_F_CHAT_ID, &ref, &id)) {
		control_reply_error(c, PROTO_E_MALFORMED, "bad CHAT or JOIN_ID");
		return CONTROL_OK;
	}
	ms = conn_membership(c, id);
	if ((!ms || ms->ref != ref) && registry_find_ref(ctl->reg, ref, &info) < 0) {
		control_reply_error(c, PROTO_E_NO_ROOM, NULL);
		return CONTROL_OK;
	}
	if (!ms || ms->ref != ref || strcmp(ms->name, m->field[PROTO_F_CHAT_NAME]) != 0) {
		log_info("control: %s: CHAT refused: JOIN_ID %ld is not its membership of room %ld",
			 c->peer, id, ref);
		control_reply_error(c, PROTO_E_NOT_MEMBER, NULL);
		return CONTROL_OK;
	}
	if ((long)m->len[PROTO_F_CHAT_TEXT] > ctl->cfg->max_message) {
		control_reply_error(c, PROTO_E_TOO_LARGE, "message too large");
		return CONTROL_OK;
	}
	if (proto_text_forges_field(m->field[PROTO_F_CHAT_TEXT], m->len[PROTO_F_CHAT_TEXT])) {
		control_reply_error(c, PROTO_E_MALFORMED, PROTO_FORGED_LINE_TEXT);
		return CONTROL_OK;
	}
	out = proto_write_chat(ref, ms->name, m->field[PROTO_F_CHAT_TEXT]);
	if (!out || room_relay(ms->room, out, 1) < 0)
		control_reply_error(c, PROTO_E_SERVER, "out of memory");
	else if (room_relay_busy(ms->room)) {
		c->backoff_ms = CONTROL_RELAY_BACKOFF_MS; /* the room is behind: slow the sender */
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

	(void)m;
	snprintf(limits, sizeof(limits),
		 "max_name=%ld max_message=%ld max_rooms_per_client=%ld history=%ld rate=%ld burst=%ld",
		 cfg->max_name, cfg->max_message, cfg->max_rooms_per_client, cfg->history, cfg->rate,
		 cfg->burst);
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

	if (proto_parse_int(m->field[PROTO_F_LIST_MEMBERS_REF], 1, ID_MAX, &ref) < 0) {
		control_reply_error(c, PROTO_E_MALFORMED, "bad LIST_MEMBERS");
		return CONTROL_OK;
	}
	trim_dormant(ctl);
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
	for (size_t i = 0; i < c->nms; i++)
		if (strcmp(c->ms[i].name, name) == 0)
			return 1;
	return 0;
}

static enum control_result handle_private(struct control *ctl, struct conn *c, const struct proto_msg *m)
{
	const char *to = m->field[PROTO_F_PRIV_TO], *from = m->field[PROTO_F_PRIV_NAME];
	struct member_info holder;
	struct conn *target;
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
	if (rc == -EEXIST) {
		control_reply_error(c, PROTO_E_NAME_IN_USE, "the recipient's name is held by several connections");
		return CONTROL_OK;
	}
	target = rc == 0 ? acceptor_conn(ctl->acc, holder.fd, holder.conn_id) : NULL;
	if (!target || !target->ext) {
		control_reply_error(c, PROTO_E_NO_ROOM, "no such user");
		return CONTROL_OK;
	}
	out = proto_write_private_from(from, m->field[PROTO_F_PRIV_TEXT]);
	if (!out) {
		control_reply_error(c, PROTO_E_SERVER, "out of memory");
		return CONTROL_OK;
	}
	if (target == c)
		reply(c, msg_ref(out));
	else
		acceptor_send(ctl->acc, target, out);
	msg_unref(&out);
	reply(c, proto_write_private_sent(to, 1));
	return CONTROL_OK;
}

/* The membership a request names (ref, JOIN_ID, CLIENT_NAME), with the
 * errors of CHAT: 1 bad numbers, 2 no such room, 3 not this connection's. */
static struct membership *request_membership(struct control *ctl, struct conn *c, const char *ref_s,
					     const char *id_s, const char *name)
{
	struct room_info info;
	struct membership *ms;
	long ref, id;

	if (proto_parse_int(ref_s, 1, ID_MAX, &ref) < 0 || proto_parse_int(id_s, 1, ID_MAX, &id) < 0) {
		control_reply_error(c, PROTO_E_MALFORMED, "bad ROOM_REF or JOIN_ID");
		return NULL;
	}
	ms = conn_membership(c, id);
	if ((!ms || ms->ref != ref) && registry_find_ref(ctl->reg, ref, &info) < 0) {
		control_reply_error(c, PROTO_E_NO_ROOM, NULL);
		return NULL;
	}
	if (!ms || ms->ref != ref || strcmp(ms->name, name) != 0) {
		control_reply_error(c, PROTO_E_NOT_MEMBER, NULL);
		return NULL;
	}
	return ms;
}

static enum control_result handle_history(struct control *ctl, struct conn *c, const struct proto_msg *m)
{
	struct membership *ms = request_membership(ctl, c, m->field[PROTO_F_HIST_REF],
						   m->field[PROTO_F_HIST_ID], m->field[PROTO_F_HIST_NAME]);

	int rc = ms ? acceptor_history(ctl->acc, c, ms->room, ms->join_id) : 0;

	if (rc == -E2BIG)
		control_reply_error(c, PROTO_E_TOO_LARGE, "history larger than the send queue");
	else if (rc == -ENOBUFS)
		control_reply_error(c, PROTO_E_RATE, "send queue too full for the history: read first");
	else if (rc < 0)
		control_reply_error(c, PROTO_E_SERVER, "out of memory");
	return CONTROL_OK;
}

static enum control_result handle_set_topic(struct control *ctl, struct conn *c, const struct proto_msg *m)
{
	const char *topic = m->field[PROTO_F_TOPIC_TEXT];
	struct membership *ms = request_membership(ctl, c, m->field[PROTO_F_TOPIC_REF],
						   m->field[PROTO_F_TOPIC_ID], m->field[PROTO_F_TOPIC_NAME]);
	struct room_info info;
	char text[CONFIG_NAME_MAX + CONFIG_TOPIC_MAX + 32];

	if (!ms)
		return CONTROL_OK;
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
	store_set_topic(registry_store(ctl->reg), ms->ref, topic);
	reply(c, proto_write_topic_set(ms->ref, topic));
	/* Announced as a CHAT so that plain CS4032 members see it too. */
	snprintf(text, sizeof(text), "%s set the topic: %s", ms->name, topic);
	room_relay(ms->room, proto_write_chat(ms->ref, ctl->cfg->server_id, text), 0);
	return CONTROL_OK;
}

static const struct {
	enum proto_kind kind;
	enum control_result (*handler)(struct control *, struct conn *, const struct proto_msg *);
} commands[] = {
	{ PROTO_HELO, handle_helo },
	{ PROTO_KILL_SERVICE, handle_kill },
	{ PROTO_JOIN, handle_join },
	{ PROTO_LEAVE, handle_leave },
	{ PROTO_DISCONNECT, handle_disconnect },
	{ PROTO_CHAT, handle_chat },
	{ PROTO_ATTACH, handle_attach },
	{ PROTO_WELCOME, handle_welcome },
	{ PROTO_LIST_ROOMS, handle_list_rooms },
	{ PROTO_LIST_MEMBERS, handle_list_members },
	{ PROTO_PRIVATE, handle_private },
	{ PROTO_HISTORY, handle_history },
	{ PROTO_SET_TOPIC, handle_set_topic },
};

enum control_result control_handle(struct control *ctl, struct conn *c, const struct proto_msg *m)
{
	/* Using an extension is the opt-in to extension frames. */
	if (m->kind >= PROTO_WELCOME && m->kind <= PROTO_SET_TOPIC)
		c->ext = 1;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].kind == m->kind)
			return commands[i].handler(ctl, c, m);
	control_reply_error(c, PROTO_E_MALFORMED, "not a request");
	return CONTROL_OK;
}

void control_drop_memberships(struct control *ctl, struct conn *c)
{
	while (c->nms > 0) {
		struct membership *ms = &c->ms[c->nms - 1];
		end_membership(ctl, c, ms, announcement(ms->ref, ms->name, PROTO_LEFT_TEXT), NULL);
	}
}

void control_forget_memberships(struct conn *c)
{
	for (size_t i = 0; i < c->nms; i++)
		room_event_free(c->ms[i].leave);
	c->nms = 0;
}

int control_open_configured_rooms(struct control *ctl)
{
	for (size_t i = 0; i < ctl->cfg->nrooms; i++) {
		const struct room_conf *rc = &ctl->cfg->rooms[i];
		long history = rc->history >= 0 ? rc->history : ctl->cfg->history;
		struct room_info info = { .ref = rc->ref, .max_members = rc->max_members,
					  .history = history, .topic_change = rc->topic_change };
		int err;
		struct room *room = room_start(ctl->cfg, ctl->acc, registry_store(ctl->reg), rc->name,
					       rc->ref, rc->port, rc->max_members, history, &err);

		if (!room) {
			log_error("room %s: cannot listen on port %u: %s", rc->name, rc->port, strerror(-err));
			return -1;
		}
		snprintf(info.name, sizeof(info.name), "%s", rc->name);
		snprintf(info.topic, sizeof(info.topic), "%s", rc->topic);
		info.port = room_port(room);
		info.room = room;
		err = registry_add_room(ctl->reg, &info);
		if (err < 0) {
			log_error("room %s: cannot register: %s", rc->name, strerror(-err));
			room_stop(room);
			return -1;
		}
		log_info("room %s: ref %ld, port %u", rc->name, rc->ref, room_port(room));
	}
	return 0;
}

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
#include "log.h"
#include "msg.h"
#include "net.h"
#include "registry.h"
#include "room.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define ID_MAX 0x7fffffffL

/* Queue a reply we made; a full send queue marks the client for closing. */
static void reply(struct conn *c, struct msg *m)
{
	int rc = conn_queue_take(c, m);

	if (rc < 0 && !c->closing) {
		log_warn("control: %s: %s: closing", c->peer,
			 rc == -ENOBUFS ? "send queue full (not reading)" : "out of memory");
		conn_begin_close(c, 1); /* the acceptor ends its memberships */
	}
}

void control_reply_error(struct conn *c, enum proto_err err, const char *detail)
{
	reply(c, proto_write_error(err, detail));
}

/* The address clients should use to reach us: the configured public host,
 * else the local address of this connection (right even when bound to
 * 0.0.0.0). */
static void our_address(const struct control *ctl, const struct conn *c, char *out, size_t len)
{
	if (ctl->cfg->public_host[0] || net_local_ip(c->fd, out, len) < 0)
		snprintf(out, len, "%s", ctl->cfg->public_host[0] ? ctl->cfg->public_host : ctl->cfg->bind);
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

/* Find the room called name, creating it (thread, port, registry entry)
 * when the config allows. Returns PROTO_OK or the error for the joiner. */
static enum proto_err open_room(struct control *ctl, const char *name, struct room_info *info)
{
	struct room *room;
	long ref;
	int err;

	int known = registry_find_room(ctl->reg, name, info) == 0;

	if (known && info->room)
		return PROTO_OK;
	if (!known && !ctl->cfg->room_creation)
		return PROTO_E_FORBIDDEN;
	if (registry_room_count(ctl->reg) >= ctl->cfg->max_rooms)
		return PROTO_E_SERVER_FULL;
	/* Only this thread creates rooms, so the ref cannot be taken meanwhile;
	 * a dormant room keeps its ref. */
	ref = known ? info->ref : registry_next_ref(ctl->reg);
	room = room_start(ctl->cfg, ctl->acc, name, ref, 0, known ? info->max_members : 0, &err);
	if (!room) {
		log_error("control: cannot open room %s: %s", name, strerror(-err));
		return PROTO_E_SERVER;
	}
	err = known ? registry_set_room(ctl->reg, ref, room, room_port(room))
		    : registry_add_room(ctl->reg, name, ref, room_port(room), 0, 1, room);
	if (err < 0) {
		room_stop(room);
		return err == -ENOSPC ? PROTO_E_SERVER_FULL : PROTO_E_SERVER;
	}
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
	err = open_room(ctl, room, &info);
	if (err != PROTO_OK)
		return join_error(c, err, room);

	memset(&ms, 0, sizeof(ms));
	err = registry_join(ctl->reg, info.ref, name, c->id, &ms.join_id);
	if (err != PROTO_OK)
		return join_error(c, err, room);
	ms.ref = info.ref;
	ms.port = info.port;
	ms.room = info.room;
	snprintf(ms.name, sizeof(ms.name), "%s", name);
	snprintf(ms.room_name, sizeof(ms.room_name), "%s", room);
	/* Everything that can fail comes before the room hears of the member,
	 * so a failure leaves no trace. */
	if (conn_add_membership(c, &ms, ctl->cfg->max_rooms_per_client) < 0) {
		registry_leave(ctl->reg, ms.join_id);
		return join_error(c, PROTO_E_SERVER, room);
	}
	stored = conn_membership(c, ms.join_id);
	if (room_add_member(info.room, ms.join_id, name, c->fd, c->id,
			    announcement(info.ref, name, PROTO_JOINED_TEXT), &stored->leave) < 0) {
		conn_remove_membership(c, ms.join_id);
		registry_leave(ctl->reg, ms.join_id);
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
	struct room_info info;

	registry_leave(ctl->reg, ms->join_id);
	if (self) {
		c->paused = 1;
		c->leaving_id = ms->join_id;
	}
	room_remove_member(ms->room, ms->leave, ms->join_id, c->fd, c->id, note, self);
	/* A room made by a JOIN ends with its last member; it stops after
	 * this removal, its mailbox being in order. A later JOIN restarts it
	 * under the same ref. */
	if (registry_find_ref(ctl->reg, ms->ref, &info) == 0 && info.on_demand && info.members == 0 &&
	    info.room == ms->room && acceptor_retire_room(ctl->acc, ms->room) == 0) {
		registry_set_room(ctl->reg, ms->ref, NULL, 0);
		log_info("room %s closed: no members left", info.name);
	}
	conn_remove_membership(c, ms->join_id);
}

static int parse_ref_and_id(const struct proto_msg *m, int ref_field, int id_field, long *ref, long *id)
{
	return proto_parse_int(m->field[ref_field], 1, ID_MAX, ref) == 0 &&
	       proto_parse_int(m->field[id_field], 1, ID_MAX, id) == 0;
}

static enum control_result handle_leave(struct control *ctl, struct conn *c, const struct proto_msg *m)
{
	struct member_info other;
	struct room_info info;
	struct membership *ms;
	struct msg *note, *left, *self;
	long ref, id;

	if (!parse_ref_and_id(m, PROTO_F_LEAVE_REF, PROTO_F_LEAVE_ID, &ref, &id)) {
		control_reply_error(c, PROTO_E_MALFORMED, "bad LEAVE_CHATROOM or JOIN_ID");
		return CONTROL_OK;
	}
	ms = conn_membership(c, id);
	if (ms && ms->ref != ref && registry_find_ref(ctl->reg, ref, &info) < 0) {
		control_reply_error(c, PROTO_E_NO_ROOM, NULL);
		return CONTROL_OK;
	}
	if (ms && (ms->ref != ref || strcmp(ms->name, m->field[PROTO_F_LEAVE_NAME]) != 0)) {
		control_reply_error(c, PROTO_E_NOT_MEMBER, "JOIN_ID does not match the room or name");
		return CONTROL_OK;
	}
	if (!ms && registry_member(ctl->reg, id, &other) == 0) {
		/* Nobody can make someone else leave. */
		log_info("control: %s: LEAVE with another connection's JOIN_ID refused", c->peer);
		control_reply_error(c, PROTO_E_NOT_MEMBER, NULL);
		return CONTROL_OK;
	}
	if (!ms) {
		/* Idempotent (SPEC 2.1): a JOIN_ID that is not live, whatever
		 * the ref, gets the same reply and changes nothing. */
		reply(c, proto_write_left(ref, id));
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
	out = proto_write_chat(ref, ms->name, m->field[PROTO_F_CHAT_TEXT]);
	if (!out || room_relay(ms->room, out) < 0)
		control_reply_error(c, PROTO_E_SERVER, "out of memory");
	return CONTROL_OK;
}

static enum control_result handle_attach(struct control *ctl, struct conn *c, const struct proto_msg *m)
{
	(void)ctl;
	(void)m;
	control_reply_error(c, PROTO_E_MALFORMED, "ATTACH_CHATROOM goes to the room port");
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
};

enum control_result control_handle(struct control *ctl, struct conn *c, const struct proto_msg *m)
{
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
		int err;
		struct room *room = room_start(ctl->cfg, ctl->acc, rc->name, rc->ref, rc->port,
					       rc->max_members, &err);

		if (!room) {
			log_error("room %s: cannot listen on port %u: %s", rc->name, rc->port, strerror(-err));
			return -1;
		}
		err = registry_add_room(ctl->reg, rc->name, rc->ref, room_port(room), rc->max_members, 0, room);
		if (err < 0) {
			log_error("room %s: cannot register: %s", rc->name, strerror(-err));
			room_stop(room);
			return -1;
		}
		log_info("room %s: ref %ld, port %u", rc->name, rc->ref, room_port(room));
	}
	return 0;
}

/* rooms.c - the room threads' lifecycle: opening (configured rooms at
 * start-up, others on demand), retiring an emptied on-demand room (dormant
 * or forgotten), reaping exited threads, stopping them all.
 *
 * A reload (rooms_reconfigure) applies a new config to every room: limits
 * in the registry, the config and history length through each room's
 * mailbox, rooms added started, rooms removed closed once empty, topics
 * set and announced.
 *
 * In cluster mode an on-demand room's ref is the one Redis holds for its
 * name (rooms_set_cluster_ref, from the JOIN's cluster request).
 *
 * Acceptor thread only: struct rooms (the retiring list) is this thread's;
 * the registry locks itself, the store queues for its writer, and a room
 * is told to stop through its own mailbox. */
#include "rooms.h"
#include "cluster.h"
#include "config.h"
#include "conn.h"
#include "iptable.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"
#include "room.h"
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct rooms {
	const struct config *cfg;
	struct registry *reg;
	struct store *store;     /* NULL: persistence off */
	struct room_uplink up;   /* what every room thread posts to */
	struct room **retiring;  /* rooms asked to stop, not yet joined */
	size_t nretiring, retiring_cap;
	long cluster_ref;        /* cluster mode: the ref Redis holds for the room
				  * the JOIN being served opens (0: none) */
	char charged[CONFIG_NAME_MAX + 1]; /* cluster mode: the room whose
				  * room_create_rate token rooms_may_open took
				  * ("": none): rooms_open takes no second one */
};

void rooms_set_cluster_ref(struct rooms *rs, long ref)
{
	rs->cluster_ref = ref;
}

/* The ref of a new on-demand room: in cluster mode the one Redis holds for
 * its name (the same on every node, allocated once), unless another room
 * holds it here (logged: that room's ref then differs between nodes). */
static long new_ref(struct rooms *rs, const char *name)
{
	struct room_info other;
	long ref = rs->cluster_ref;

	if (!rs->up.cluster || ref <= 0)
		return registry_next_ref(rs->reg);
	if (registry_find_ref(rs->reg, ref, &other) < 0)
		return ref;
	log_error("rooms: room %s: its cluster ref %ld is room %s's here: it gets a local one", name,
		  ref, other.name);
	return registry_next_ref(rs->reg);
}

struct rooms *rooms_create(const struct config *cfg, struct registry *reg, struct store *store,
			   const struct room_uplink *up)
{
	struct rooms *rs = calloc(1, sizeof(*rs));

	if (rs)
		*rs = (struct rooms){ .cfg = cfg, .reg = reg, .store = store, .up = *up };
	return rs;
}

void rooms_destroy(struct rooms *rs)
{
	if (!rs)
		return;
	free(rs->retiring);
	free(rs);
}

/* ---- dormant rooms and the store ---- */

/* A new room created on demand goes to the store, so that its ref holds
 * across restarts and it comes back (dormant) after one. */
static void remember_room(struct rooms *rs, const char *name, long ref)
{
	struct store_room sr = { .ref = ref, .created = (int64_t)time(NULL) };

	snprintf(sr.name, sizeof(sr.name), "%s", name);
	store_put_room(rs->store, &sr);
}

static void forget_stored_room(const struct room_info *info, void *arg)
{
	struct rooms *rs = arg;

	store_forget_room(rs->store, info->ref);
	log_info("room %s (ref %ld) forgotten: dormant too long or too many dormant rooms",
		 info->name, info->ref);
}

/* Before a request looks at rooms, so no request sees a room past the
 * bounds. O(number forgotten): the oldest dormant room is first in line. */
void rooms_trim_dormant(struct rooms *rs)
{
	registry_trim_dormant(rs->reg, (int64_t)time(NULL), forget_stored_room, rs);
}

/* ---- retiring and reaping ---- */

/* The room's last member left: stop its thread (it finishes what it holds
 * first) and free it once done (rooms_reap). 0 or -ENOMEM (the room keeps
 * running). */
static int retire(struct rooms *rs, struct room *room)
{
	if (rs->nretiring == rs->retiring_cap) {
		size_t ncap = rs->retiring_cap ? rs->retiring_cap * 2 : 8;
		struct room **nr = realloc(rs->retiring, ncap * sizeof(*nr));
		if (!nr)
			return -ENOMEM;
		rs->retiring = nr;
		rs->retiring_cap = ncap;
	}
	rs->retiring[rs->nretiring++] = room;
	room_request_stop(room);
	return 0;
}

/* Join and free the retiring rooms whose thread is done (all of them when
 * wait_all: shutdown). */
static void reap(struct rooms *rs, int wait_all)
{
	for (size_t i = rs->nretiring; i-- > 0;) {
		if (wait_all || room_exited(rs->retiring[i])) {
			room_stop(rs->retiring[i]);
			rs->retiring[i] = rs->retiring[--rs->nretiring];
		}
	}
}

void rooms_reap(struct rooms *rs)
{
	if (rs->nretiring > 0)
		reap(rs, 0);
}

/* Room ref (created on demand) has no members left and its thread is
 * retiring. It stays dormant, to come back with its history on the next
 * JOIN, only when it has history to come back with: a member's message was
 * kept (the room's flag, set when the message was handed to the room, or
 * the registry's, sticky across its dormant periods) and a database keeps
 * it (without one, history ends with the thread). Otherwise it is
 * forgotten at once, here and in the store; its ref is not reused. */
static void room_emptied(struct rooms *rs, const struct room_info *info, struct room *room)
{
	int history = info->history_seen || room_has_history(room);

	if (history && rs->store) {
		registry_mark_history(rs->reg, info->ref);
		registry_set_room(rs->reg, info->ref, NULL, 0);
		log_info("room %s closed: no members left; dormant", info->name);
		rooms_trim_dormant(rs);
		return;
	}
	registry_set_room(rs->reg, info->ref, NULL, 0);
	registry_forget(rs->reg, info->ref);
	store_forget_room(rs->store, info->ref);
	log_info("room %s closed: no members left and no history; forgotten (ref %ld retired)",
		 info->name, info->ref);
}

void rooms_close_if_empty(struct rooms *rs, long ref, struct room *room)
{
	struct room_info info;

	if (registry_find_ref(rs->reg, ref, &info) == 0 && info.on_demand && info.members == 0 &&
	    info.room == room && retire(rs, room) == 0)
		room_emptied(rs, &info, room);
}

/* ---- opening ---- */

/* Starting a room (a thread, a port, a name kept) is the dearest
 * request: room_create_rate a minute per address. */
static enum proto_err charge_creation(struct rooms *rs, struct conn *c, const char *name)
{
	if (c->ipe && iptable_create_room(c->ipt, c->ipe, conn_clock_ms()) < 0) {
		log_info("control: %s: room %s not created: over room_create_rate (%ld a minute)",
			 c->peer, name, rs->cfg->room_create_rate);
		metrics_refusal(METRICS_REFUSE_ROOM_CREATE_RATE);
		return PROTO_E_RATE;
	}
	return PROTO_OK;
}

enum proto_err rooms_may_open(struct rooms *rs, struct conn *c, const char *name)
{
	enum proto_err err;

	rs->charged[0] = '\0';
	if (!rs->cfg->room_creation)
		return PROTO_E_FORBIDDEN;
	if (registry_room_count(rs->reg) >= rs->cfg->max_rooms)
		return PROTO_E_SERVER_FULL;
	if ((err = charge_creation(rs, c, name)) == PROTO_OK)
		snprintf(rs->charged, sizeof(rs->charged), "%s", name);
	return err;
}

enum proto_err rooms_open(struct rooms *rs, struct conn *c, const char *name,
			  struct room_info *info)
{
	struct room *room;
	long ref;
	int err;

	int known;

	rooms_trim_dormant(rs);
	known = registry_find_room(rs->reg, name, info) == 0;

	if (known && info->room)
		return PROTO_OK;
	if (!known && !rs->cfg->room_creation)
		return PROTO_E_FORBIDDEN;
	if (registry_room_count(rs->reg) >= rs->cfg->max_rooms)
		return PROTO_E_SERVER_FULL;
	if (strcmp(rs->charged, name) == 0)
		rs->charged[0] = '\0'; /* its token is taken already */
	else if (charge_creation(rs, c, name) != PROTO_OK)
		return PROTO_E_RATE;
	/* Only this thread creates rooms, so the ref cannot be taken meanwhile;
	 * a dormant room keeps its ref. */
	ref = known ? info->ref : new_ref(rs, name);
	room = room_start(rs->cfg, &rs->up, rs->store, name, ref, 0,
			  known ? info->max_members : 0, known ? info->history : rs->cfg->history, &err);
	if (!room) {
		log_error("control: cannot open room %s: %s", name, strerror(-err));
		return PROTO_E_SERVER;
	}
	if (known) {
		err = registry_set_room(rs->reg, ref, room, room_port(room));
	} else {
		struct room_info fresh = { .ref = ref, .port = room_port(room), .history = -1,
					   .topic_change = -1, .on_demand = 1, .room = room };
		snprintf(fresh.name, sizeof(fresh.name), "%s", name);
		err = registry_add_room(rs->reg, &fresh);
	}
	if (err < 0) {
		room_stop(room);
		return err == -ENOSPC ? PROTO_E_SERVER_FULL : PROTO_E_SERVER;
	}
	if (!known)
		remember_room(rs, name, ref);
	log_info("room %s opened: ref %ld, port %u", name, ref, room_port(room));
	return registry_find_room(rs->reg, name, info) == 0 ? PROTO_OK : PROTO_E_SERVER;
}

/* Start configured room rc's thread and register it. 0, or -1 with the
 * reason logged. */
static int open_configured(struct rooms *rs, const struct room_conf *rc)
{
	long history = rc->history >= 0 ? rc->history : rs->cfg->history;
	struct room_info info = { .ref = rc->ref, .max_members = rc->max_members,
				  .history = history, .topic_change = rc->topic_change };
	int err;
	struct room *room = room_start(rs->cfg, &rs->up, rs->store, rc->name, rc->ref,
				       rc->port, rc->max_members, history, &err);

	if (!room) {
		log_error("room %s: cannot listen on port %u: %s", rc->name, rc->port, strerror(-err));
		return -1;
	}
	snprintf(info.name, sizeof(info.name), "%s", rc->name);
	snprintf(info.topic, sizeof(info.topic), "%s", rc->topic);
	info.port = room_port(room);
	info.room = room;
	err = registry_add_room(rs->reg, &info);
	if (err < 0) {
		log_error("room %s: cannot register: %s", rc->name,
			  err == -EEXIST ? "its ref is another room's" : err == -ENOSPC ?
			  "max_rooms rooms are open" : strerror(-err));
		room_stop(room);
		return -1;
	}
	log_info("room %s: ref %ld, port %u", rc->name, rc->ref, room_port(room));
	return 0;
}

int rooms_open_configured(struct rooms *rs)
{
	for (size_t i = 0; i < rs->cfg->nrooms; i++)
		if (open_configured(rs, &rs->cfg->rooms[i]) < 0)
			return -1;
	return 0;
}

/* ---- reload ---- */

/* What a reload does to each room known (live or dormant). */
struct reconf {
	struct rooms *rs;
	const struct config *next;
};

static const struct room_conf *conf_named(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->nrooms; i++)
		if (strcmp(c->rooms[i].name, name) == 0)
			return &c->rooms[i];
	return NULL;
}

/* Room info's limits under next: a configured room's own, else the
 * server's; a room the file no longer defines is on demand from now on. */
static void reconfigure_room(const struct room_info *info, void *arg)
{
	const struct reconf *rf = arg;
	const struct config *c = rf->next;
	const struct room_conf *rc = conf_named(c, info->name);
	struct room_info conf = *info;

	conf.max_members = rc && rc->max_members > 0 ? rc->max_members : c->max_members;
	conf.history = rc && rc->history >= 0 ? rc->history : c->history;
	conf.topic_change = rc && rc->topic_change >= 0 ? rc->topic_change : c->topic_change;
	conf.on_demand = rc == NULL;
	registry_set_room_conf(rf->rs->reg, info->ref, &conf);
	if (info->room && room_reconfigure(info->room, c, conf.history) < 0)
		log_error("reload: room %s: out of memory: it keeps its old config", info->name);
}

/* A server notice (a CHAT from server_id) to room info's members. */
static void notice(const struct config *c, const struct room_info *info, const char *text)
{
	if (info->room && info->members > 0)
		room_relay(info->room, proto_write_chat(info->ref, c->server_id, text), NULL);
}

/* Room rc was removed from the file: it becomes an on-demand room (done by
 * reconfigure_room), so it closes as soon as it has no member, as such a
 * room does; its members are told and are not dropped. */
static void removed(struct rooms *rs, const struct config *next, const struct room_conf *rc)
{
	struct room_info info;

	if (registry_find_room(rs->reg, rc->name, &info) < 0)
		return;
	if (info.room && info.members > 0) {
		log_info("reload: room %s removed from the config: it closes when its %ld member%s left",
			 rc->name, info.members, info.members > 1 ? "s have" : " has");
		notice(next, &info, "This room was removed from the server's configuration: "
		       "it closes when its last member leaves.");
	} else {
		log_info("reload: room %s removed from the config: closed", rc->name);
	}
	if (info.room)
		rooms_close_if_empty(rs, info.ref, info.room);
}

/* Room rc is new in the file: start it, unless a room of that name is
 * open on demand or dormant already (it is configured from now on, with
 * the ref and port it has). */
static void added(struct rooms *rs, const struct room_conf *rc)
{
	struct room_info info;

	if (registry_find_room(rs->reg, rc->name, &info) == 0) {
		if (info.ref != rc->ref || (rc->port && info.port != rc->port))
			log_warn("reload: room %s added to the config: it exists already (ref %ld, port %u) "
				 "and keeps them until a restart", rc->name, info.ref, info.port);
		else
			log_info("reload: room %s added to the config: it exists already", rc->name);
		return;
	}
	if (open_configured(rs, rc) == 0) {
		remember_room(rs, rc->name, rc->ref);
		log_info("reload: room %s added to the config: opened", rc->name);
	}
}

/* Room rc's topic in the file changed (or it is newly configured over a
 * room that existed): set it and tell its members as a SET_TOPIC is. */
static void topic_changed(struct rooms *rs, const struct config *next, const struct room_conf *rc)
{
	char text[sizeof("the server") + sizeof(PROTO_TOPIC_NOTICE_TEXT) + CONFIG_TOPIC_MAX];
	struct room_info info;

	if (registry_find_room(rs->reg, rc->name, &info) < 0 || strcmp(info.topic, rc->topic) == 0)
		return;
	registry_set_topic(rs->reg, info.ref, rc->topic);
	store_set_topic(rs->store, info.ref, rc->topic);
	snprintf(text, sizeof(text), "the server" PROTO_TOPIC_NOTICE_TEXT "%s", rc->topic);
	notice(next, &info, text);
}

void rooms_reconfigure(struct rooms *rs, const struct config *next)
{
	const struct config *old = rs->cfg;
	struct reconf rf = { rs, next };

	rs->cfg = next;
	if (registry_each_room(rs->reg, reconfigure_room, &rf) < 0)
		log_error("reload: out of memory: the rooms keep their old limits");
	for (size_t i = 0; i < old->nrooms; i++)
		if (!conf_named(next, old->rooms[i].name))
			removed(rs, next, &old->rooms[i]);
	for (size_t i = 0; i < next->nrooms; i++) {
		const struct room_conf *was = conf_named(old, next->rooms[i].name);

		if (!was)
			added(rs, &next->rooms[i]);
		if (!was && !next->rooms[i].topic[0])
			continue; /* a room open on demand keeps its members' topic */
		if (was && strcmp(was->topic, next->rooms[i].topic) == 0)
			continue;
		topic_changed(rs, next, &next->rooms[i]);
	}
}

/* ---- shutdown ---- */

static void room_stop_cb(const struct room_info *info, void *arg)
{
	(void)arg;
	if (info->room)
		room_stop(info->room);
}

static void room_request_stop_cb(const struct room_info *info, void *arg)
{
	(void)arg;
	if (info->room)
		room_request_stop(info->room);
}

void rooms_stop_all(struct rooms *rs)
{
	if (!rs)
		return;
	registry_each_room(rs->reg, room_request_stop_cb, NULL);
	registry_each_room(rs->reg, room_stop_cb, NULL);
	reap(rs, 1);
}

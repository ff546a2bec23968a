/* registry.h - the shared registry of rooms and memberships.
 *
 * Names, ROOM_REFs, JOIN_IDs, counts and limits; no I/O. One mutex guards
 * all of it and is held only for the lookup or update at hand: callers get
 * copies, never pointers into the registry. The acceptor thread makes every
 * change; any thread may read. */
#ifndef ROOMD_REGISTRY_H
#define ROOMD_REGISTRY_H

#include <stdint.h>
#include "config.h"
#include "proto.h"

struct registry;
struct room;
struct store;

/* A copy of a room's registry entry. */
struct room_info {
	char name[CONFIG_NAME_MAX + 1];
	long ref;
	unsigned port;
	long members;
	long max_members;
	long history;      /* messages it keeps */
	int topic_change;  /* members may set the topic */
	int on_demand;     /* created by a JOIN: its thread ends with its last member */
	char topic[CONFIG_TOPIC_MAX + 1];
	struct room *room; /* the room's thread; NULL while the room is dormant */
};

/* A copy of a membership. */
struct member_info {
	long join_id;
	long ref;
	uint64_t conn_id; /* the control connection that joined... */
	int fd;           /* ...and its descriptor (check conn_id before use) */
	char name[CONFIG_NAME_MAX + 1];
};

/* A new empty registry for cfg (which must outlive it), or NULL. */
struct registry *registry_create(const struct config *cfg);
/* Free the registry. Rooms' threads must already be stopped. */
void registry_destroy(struct registry *reg);

/* Copy the room called name (or with ref) into *out. 0, or -ENOENT. */
int registry_find_room(struct registry *reg, const char *name, struct room_info *out);
int registry_find_ref(struct registry *reg, long ref, struct room_info *out);

/* Rooms with a running thread (what max_rooms bounds). */
long registry_room_count(struct registry *reg);

/* Rooms known, dormant ones included (what registry_each_room visits). */
long registry_room_count_all(struct registry *reg);

/* Room names are remembered for the daemon's lifetime, so that a ROOM_REF
 * is never reused or renumbered; this bounds the dormant ones. */
#define REGISTRY_MAX_NAMES 65536

/* The ref a new on-demand room will get: above every configured ref. */
long registry_next_ref(struct registry *reg);

/* Register a room described by *info (ref from registry_next_ref(), the
 * config or the store; members ignored; max_members 0 and history -1 mean
 * the server's, topic_change -1 too). info->room NULL registers it dormant
 * (a stored room that comes back on its next JOIN): it does not count
 * against max_rooms. Returns 0, -EEXIST (name or ref taken), -ENOSPC
 * (max_rooms running, or REGISTRY_MAX_NAMES known) or -ENOMEM. */
int registry_add_room(struct registry *reg, const struct room_info *info);

/* Set room ref's topic. 0 or -ENOENT. */
int registry_set_topic(struct registry *reg, long ref, const char *topic);

/* Give the room ref a (new) thread listening on port, or none (room NULL:
 * dormant; its name and ref stay). Returns 0, -ENOENT, or -ENOSPC when a
 * thread would exceed max_rooms. */
int registry_set_room(struct registry *reg, long ref, struct room *room, unsigned port);

/* Add a membership of name, held by control connection conn_id, to the room
 * ref. On success *join_id is a fresh random id (positive, 31 bits, not
 * live) and the result is PROTO_OK; otherwise PROTO_E_NO_ROOM,
 * PROTO_E_NAME_IN_USE (another connection has the name there),
 * PROTO_E_ROOM_FULL or PROTO_E_SERVER (out of memory). */
enum proto_err registry_join(struct registry *reg, long ref, const char *name,
			     uint64_t conn_id, int fd, long *join_id);

/* Remove a membership. 0, or -ENOENT when it is not live. */
int registry_leave(struct registry *reg, long join_id);

/* Copy a live membership. 0, or -ENOENT. */
int registry_member(struct registry *reg, long join_id, struct member_info *out);

/* Visit the members of room ref (ref 0: every membership), or those named
 * name when name is not NULL: a snapshot copied under the lock, visited
 * without it. Returns the number visited, or -ENOMEM. */
long registry_each_member(struct registry *reg, long ref, const char *name,
			  void (*fn)(const struct member_info *, void *), void *arg);

/* The durable store (NULL: persistence off), set once at start-up before
 * any other thread exists and read-only afterwards, like the config. It
 * lives here because the registry is what every room-creating path holds. */
void registry_set_store(struct registry *reg, struct store *store);
struct store *registry_store(const struct registry *reg);

/* Visit every room (a snapshot copied under the lock, visited without it).
 * Returns the number visited, or -ENOMEM. */
long registry_each_room(struct registry *reg, void (*fn)(const struct room_info *, void *), void *arg);

#endif

/* registry.h - the shared registry of rooms, memberships and names.
 *
 * Names, ROOM_REFs, JOIN_IDs, counts and limits; no I/O. One mutex guards
 * all of it and is held only for the lookup or update at hand: callers get
 * copies, never pointers into the registry. Every lookup is hashed (room by
 * name or ref, member by JOIN_ID, name to its holder) and every list is
 * per room, so no request costs more than what it asks about.
 *
 * Who calls it: one thread, the main thread, which is also the acceptor's.
 * main.c creates it and, before acceptor_run(), registers the stored rooms
 * (registry_add_room, _set_topic, _sort_dormant, _trim_dormant,
 * _reserve_refs, _set_store); control.c's handlers, on the acceptor thread,
 * make every other lookup and change (find, join, leave, list, members,
 * names, rooms on demand, topics, dormant trimming, registry_store); a
 * SIGHUP reload, on that thread too, swaps its config and each room's
 * limits (registry_set_config, _set_room_conf);
 * acceptor.c visits the rooms to stop them (registry_each_room); main.c
 * destroys it once acceptor_run() has returned. Room threads, the store's
 * writer and the metrics thread never call it: a room learns of its members
 * through its mailbox. (fuzz_control's thread plays the acceptor's.) The
 * lock is therefore uncontended today; it is kept so that a reader on
 * another thread needs no change here.
 * Lock order: the registry's lock is innermost: it is taken with no other
 * roomd lock held, and no other is taken nor any callback run while it is
 * held (the visitors of registry_each_room, _each_member and _trim_dormant
 * run on copies, after it is released). */
#ifndef ROOMD_REGISTRY_H
#define ROOMD_REGISTRY_H

#include <stdint.h>
#include "config.h"
#include "proto.h"

struct registry;
struct room;

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
	int history_seen;  /* a member's message was ever kept (sticky; see registry_mark_history) */
	int64_t dormant_since; /* UTC seconds it went dormant; 0 while it has a thread */
	struct room *room; /* the room's thread; NULL while the room is dormant */
	char topic[CONFIG_TOPIC_MAX + 1]; /* last: the registry stores only what is used */
};

/* A copy of a membership. */
struct member_info {
	long join_id;
	long ref;
	uint64_t conn_id; /* the control connection that joined... */
	int fd;           /* ...and its descriptor (check conn_id before use) */
	char name[CONFIG_NAME_MAX + 1];
};

/* A new empty registry for cfg (which must outlive it or its replacement,
 * registry_set_config), or NULL. */
struct registry *registry_create(const struct config *cfg);
/* Use cfg from now on (a SIGHUP reload; swapped under the lock). cfg
 * must outlive the registry or the next call. */
void registry_set_config(struct registry *reg, const struct config *cfg);

/* Set room ref's max_members, history, topic_change and on_demand from
 * conf (resolved values, not 0 or -1; a reload). Members beyond a lower
 * max_members stay; only joins are refused. 0, or -ENOENT. */
int registry_set_room_conf(struct registry *reg, long ref, const struct room_info *conf);

/* Free the registry. Rooms' threads must already be stopped. */
void registry_destroy(struct registry *reg);

/* Copy the room called name (or with ref) into *out. 0, or -ENOENT. O(1). */
int registry_find_room(struct registry *reg, const char *name, struct room_info *out);
int registry_find_ref(struct registry *reg, long ref, struct room_info *out);

/* Rooms with a running thread (what max_rooms bounds). */
long registry_room_count(struct registry *reg);

/* Dormant rooms (what [limits] max_dormant_rooms bounds). */
long registry_dormant_count(struct registry *reg);

/* Rooms known, dormant ones included (what registry_each_room visits). */
long registry_room_count_all(struct registry *reg);

/* The ref a new on-demand room will get: above every ref ever registered
 * or reserved, so a forgotten room's ref is never handed out again. */
long registry_next_ref(struct registry *reg);

/* Refs up to ref were handed out before (the store remembers the highest):
 * never give them again. */
void registry_reserve_refs(struct registry *reg, long ref);

/* Register a room described by *info (ref from registry_next_ref(), the
 * config or the store; members ignored; max_members 0 and history -1 mean
 * the server's, topic_change -1 too). info->room NULL registers it dormant
 * (a stored room that comes back on its next JOIN), since
 * info->dormant_since (0: now), at the end of the dormant list (oldest
 * first: add them in that order, or call registry_sort_dormant); it does not count against max_rooms,
 * and registry_trim_dormant() applies the dormant bounds. Returns 0,
 * -EEXIST (name or ref taken), -ENOSPC (max_rooms running) or -ENOMEM. */
int registry_add_room(struct registry *reg, const struct room_info *info);

/* Put the dormant list in order of dormant_since (then ref), oldest first,
 * after registering stored rooms in another order. O(n log n). */
void registry_sort_dormant(struct registry *reg);

/* Set room ref's topic. 0, -ENOENT or -ENOMEM. */
int registry_set_topic(struct registry *reg, long ref, const char *topic);

/* Give the room ref a (new) thread listening on port (a dormant room comes
 * back), or none (room NULL: it goes dormant now, name and ref kept).
 * Returns 0, -ENOENT, or -ENOSPC when a thread would exceed max_rooms. */
int registry_set_room(struct registry *reg, long ref, struct room *room, unsigned port);

/* A member's message of room ref was kept in its history: from now on the
 * room has history (and is kept dormant, not forgotten, when it empties). */
void registry_mark_history(struct registry *reg, long ref);

/* Forget the room ref now (name, ref, entry): it must have no thread and
 * no members. 0, -ENOENT, or -EBUSY. */
int registry_forget(struct registry *reg, long ref);

/* Forget the dormant rooms dormant longer than [limits] dormant_room_ttl
 * at time now (UTC seconds), and the oldest ones beyond
 * max_dormant_rooms; forgot (may be NULL) gets a copy of each, called
 * without the lock. Returns the number forgotten. O(number forgotten). */
long registry_trim_dormant(struct registry *reg, int64_t now,
			   void (*forgot)(const struct room_info *, void *), void *arg);

/* Add a membership of name, held by control connection conn_id, to the room
 * ref. On success *join_id is a fresh random id (positive, 31 bits, not
 * live) and the result is PROTO_OK; otherwise PROTO_E_NO_ROOM,
 * PROTO_E_NAME_IN_USE (name_scope server: another connection holds the
 * name in any room; room: another membership has it in that room),
 * PROTO_E_ROOM_FULL or PROTO_E_SERVER (out of memory). */
enum proto_err registry_join(struct registry *reg, long ref, const char *name,
			     uint64_t conn_id, int fd, long *join_id);

/* Remove a membership. 0, or -ENOENT when it is not live. */
int registry_leave(struct registry *reg, long join_id);

/* Copy a live membership. 0, or -ENOENT. */
int registry_member(struct registry *reg, long join_id, struct member_info *out);

/* The one connection holding name (out: conn_id, fd and name; join_id and
 * ref 0). 0, -ENOENT (nobody), or -EEXIST (several
 * connections: only with name_scope room). O(1). */
int registry_name_holder(struct registry *reg, const char *name, struct member_info *out);

/* Visit the members of room ref: a snapshot of that room's list copied
 * under the lock, visited without it (O(members of the room)). Returns
 * the number visited, or -ENOMEM. */
long registry_each_member(struct registry *reg, long ref,
			  void (*fn)(const struct member_info *, void *), void *arg);

/* The live rooms (dormant 0: in the order they got their thread,
 * configured rooms first) or the dormant ones (oldest first): copies of
 * at most limit of them from position offset into out (room for limit),
 * and in *total how many there are, under one lock. Returns the number
 * copied. O(offset + limit). */
long registry_list_rooms(struct registry *reg, int dormant, long offset, long limit,
			 struct room_info *out, long *total);

/* Visit every room, live then dormant (a snapshot copied under the lock,
 * visited without it). Returns the number visited, or -ENOMEM. */
long registry_each_room(struct registry *reg, void (*fn)(const struct room_info *, void *), void *arg);

#endif

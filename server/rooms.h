/* rooms.h - the room threads' lifecycle in one place: open the configured
 * rooms at start-up and a room on demand (a JOIN), retire an on-demand room
 * when its last member has left (kept dormant or forgotten, in the registry
 * and the store), reap the threads that have exited, stop them all at
 * shutdown.
 *
 * Acceptor thread only: the thread that owns the control connections and
 * drains the mailbox the rooms post to (struct room_uplink). */
#ifndef ROOMD_ROOMS_H
#define ROOMD_ROOMS_H

#include "proto.h"

struct config;
struct conn;
struct registry;
struct room;
struct room_info;
struct room_uplink;
struct rooms;
struct store;

/* The lifecycle for rooms registered in reg, whose threads keep history
 * in store (NULL: persistence off) and post to up (copied). All must
 * outlive it. NULL when out of memory. */
struct rooms *rooms_create(const struct config *cfg, struct registry *reg, struct store *store,
			   const struct room_uplink *up);

/* Free it; stop the rooms first (rooms_stop_all). NULL: nothing. */
void rooms_destroy(struct rooms *rs);

/* Start the room threads of the configured rooms and register them.
 * 0, or -1 with the reason logged. Start-up only. */
int rooms_open_configured(struct rooms *rs);

/* Find the room called name, starting its thread (port, registry entry,
 * and the store for a new one) when it has none and the config allows,
 * for control connection c (whose address's room_create_rate it counts
 * against). Copies the room's entry into *info. Returns PROTO_OK or the
 * error for the joiner. */
enum proto_err rooms_open(struct rooms *rs, struct conn *c, const char *name,
			  struct room_info *info);

/* A SIGHUP reload: use next from now on (it must outlive rs or the next
 * call; each room takes its own reference). Every room known gets next's
 * limits (a configured room its own keys, others the server's) and each
 * running room switches to next at its next mailbox pass, cutting its
 * history to the new length. A room new in next is started (or, if a room
 * of that name exists on demand, becomes configured); a room next no
 * longer defines becomes an on-demand room: its members are told with a
 * notice and it closes once the last has left (at once when empty). A
 * topic that changed in the file is set and announced to the room as a
 * SET_TOPIC is. Restart-only keys (ports, refs) must already be the
 * running ones in next. Failures are logged; nothing is undone. */
void rooms_reconfigure(struct rooms *rs, const struct config *next);

/* Cluster mode, before a JOIN asks Redis for the ref of room name, which
 * is not known here: the checks rooms_open makes to start it (room
 * creation allowed, max_rooms, room_create_rate, whose token is taken now
 * and not again by the next rooms_open of that name), so that refused
 * JOINs allocate nothing in Redis. PROTO_OK or the joiner's error. */
enum proto_err rooms_may_open(struct rooms *rs, struct conn *c, const char *name);

/* Cluster mode: the ref the room opened by the next rooms_open gets if it
 * is new here, as Redis allocated it for its name (0: none). */
void rooms_set_cluster_ref(struct rooms *rs, long ref);

/* Retire room ref's thread if it is on demand and empty (its last member
 * left, or a join into a room just opened failed): it stops after what is
 * already in its mailbox, and the room goes dormant or is forgotten. */
void rooms_close_if_empty(struct rooms *rs, long ref, struct room *room);

/* Apply the dormant bounds (dormant_room_ttl, max_dormant_rooms) now,
 * forgetting in the store too. */
void rooms_trim_dormant(struct rooms *rs);

/* Join and free the retired rooms whose thread is done (a room thread
 * wakes the uplink's mailbox as it exits: call this every loop pass). */
void rooms_reap(struct rooms *rs);

/* Stop every room thread (all at once, so their flush deadlines overlap),
 * retired ones included, and free them. What they handed over is still in
 * the uplink's mailbox. NULL: nothing. */
void rooms_stop_all(struct rooms *rs);

#endif

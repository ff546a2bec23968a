/* store.h - the durable store: rooms and their history in one SQLite file
 * (WAL mode), so that ROOM_REFs, rooms created on demand and scrollback
 * survive a restart.
 *
 * The only module that speaks SQL. Start-up (open, migrate, reconcile with
 * the config, read the rooms) runs on the main thread before serving. Then
 * one writer thread owns the write connection: room threads hand it messages
 * through a bounded queue and never wait for the disk; it commits them in
 * batches. Every function taking a NULL store does nothing (persistence off). */
#ifndef ROOMD_STORE_H
#define ROOMD_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "config.h"

struct store;
struct msg;

/* The schema this roomd writes; a file with a higher one is refused. */
#define STORE_SCHEMA_VERSION 2

/* How the writer batches and how much may wait for it. */
struct store_options {
	size_t queue_max;   /* messages waiting for the writer, at most */
	size_t queue_bytes; /* bytes of their frames, at most */
	long batch_ms;      /* a message waits at most this long for its commit... */
	size_t batch_max;   /* ...or until this many wait */
	long max_age;       /* seconds a stored message is kept; 0 = no age limit */
};

/* The daemon's values: 65536 messages or 64 MiB queued, a commit every
 * 100 ms or 1024 messages; max_age from cfg. */
void store_default_options(struct store_options *o, const struct config *cfg);

/* A stored room. */
struct store_room {
	char name[CONFIG_NAME_MAX + 1];
	long ref;
	unsigned port;     /* the configured port; 0 for rooms created on demand */
	char topic[CONFIG_TOPIC_MAX + 1];
	int64_t created;   /* UTC seconds */
	int configured;    /* in the config at the last start */
	int has_messages;  /* store_each_room: it has stored messages... */
	int64_t last_message; /* ...the newest at this UTC time (0: none) */
};

/* Counters, for logs and tests. */
struct store_stats {
	uint64_t appended; /* messages accepted into the queue */
	uint64_t stored;   /* messages committed */
	uint64_t dropped;  /* refused because the queue was full (disk too slow) */
	uint64_t failed;   /* lost to a failed commit (disk full, I/O error) */
	uint64_t write_errors; /* failed commits */
};

/* Open (creating it and, one level, its directory if missing), lock
 * against a second roomd, check, and migrate the database at path. Main
 * thread, start-up. Returns 0 with *out set, or -1 with a message in err
 * that names the file, says what is wrong and what to do (corrupt, newer
 * schema, not roomd's, unreadable, read-only, disk full, in use). */
int store_open(struct store **out, const char *path, const struct store_options *o, char *err,
	       size_t errlen);

/* Make the stored rooms agree with the configured ones (the config wins:
 * a configured room keeps its configured ref; a stored room that held that
 * ref gets a new one, logged). A configured topic replaces the stored one
 * only when the config's changed since the last start, so a SET_TOPIC
 * survives a restart. Main thread, after store_open. 0, or -1 with err. */
int store_reconcile(struct store *s, const struct config *cfg, char *err, size_t errlen);

/* Visit every stored room, in ref order. Main thread, before store_start.
 * Returns the number visited, or -1 with err. */
long store_each_room(struct store *s, void (*fn)(const struct store_room *, void *), void *arg,
		     char *err, size_t errlen);

/* Start the writer thread (with every signal blocked, so signals keep going
 * to the thread that handles them). 0 or a negative errno. */
int store_start(struct store *s);

/* Queue a relayed CHAT frame of room ref for storage: name and text lie at
 * the given offsets in frame, when is its UTC time, and the room keeps its
 * last keep messages. Takes a new reference to frame. Never waits for the
 * disk: with the queue full the message is not stored, counted and logged
 * (rate-limited). Any thread. 0, or -ENOBUFS when dropped. */
int store_append(struct store *s, long ref, long keep, struct msg *frame, size_t name_off,
		 size_t name_len, size_t text_off, size_t text_len, time_t when);
/* The same, with the message's sequence number in its room
 * (docs/PROTOCOL.md §7.7; store_append stores 0: not numbered). */
int store_append_numbered(struct store *s, long ref, long keep, struct msg *frame, size_t name_off,
			  size_t name_len, size_t text_off, size_t text_len, time_t when, long seq);

/* Queue a new room (created on demand) / a topic change. Rare; not
 * bounded by queue_max (there are at most as many pending as rooms). Any
 * thread. 0 or -ENOMEM (logged). */
int store_put_room(struct store *s, const struct store_room *room);
int store_set_topic(struct store *s, long ref, const char *topic);

/* Queue the deletion of the room ref created on demand (its row and its
 * messages; a configured room is never deleted). Its ref stays counted in
 * store_max_ref(), so it is not handed out again after a restart. Any
 * thread. 0 or -ENOMEM (logged). */
int store_forget_room(struct store *s, long ref);

/* The highest ref ever stored (rooms present or forgotten), 0 for none or
 * a NULL store, -1 on a read error. Main thread, before store_start. */
long store_max_ref(struct store *s);

/* Wait until everything queued before the call is committed (or has
 * failed). Bounded by one commit: the writer is asked to commit at once. */
void store_sync(struct store *s);

/* Call fn with the last n stored messages of room ref, oldest first (not
 * older than max_age), after a store_sync() so that nothing queued is
 * missed. For a room thread starting up; reads through its own read-only
 * connection, never the writer's. Returns the number of messages, or a
 * negative errno (logged). Known gap: a room joined again while its
 * previous thread is still draining its mailbox misses, in memory, a
 * message that thread appends after this load (it is stored, and comes
 * back at the next start). */
long store_load_history(struct store *s, long ref, long n,
			void (*fn)(void *arg, time_t when, const char *name, const char *text),
			void *arg);
/* The same, with the number stored with each message (0: stored
 * unnumbered, as schema version 1 rows are). */
long store_load_numbered(struct store *s, long ref, long n,
			 void (*fn)(void *arg, time_t when, long seq, const char *name, const char *text),
			 void *arg);

void store_get_stats(struct store *s, struct store_stats *out);

/* Commit everything queued, stop the writer, log the counters and close
 * the database. NULL is allowed. Main thread, at exit. */
void store_close(struct store *s);

/* A consistent copy of the database at path into dest (which must not
 * exist), taken with SQLite's online backup API while a roomd may be
 * writing it (WAL: the daemon is never blocked). The copy is checked with
 * quick_check. 0, or -1 with err. */
int store_backup(const char *path, const char *dest, char *err, size_t errlen);

#endif

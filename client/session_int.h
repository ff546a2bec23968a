/* session_int.h - the session's insides, shared by session.c (the loop, the
 * control connection, the room table, joining and leaving) and verbs.c (the
 * commands a user types). No other file includes it.
 *
 * Everything here runs on the command thread (the main thread) only: the
 * struct session below is that thread's alone, and the listener threads
 * reach it only through the notifier and output.c. */
#ifndef ROOMC_SESSION_INT_H
#define ROOMC_SESSION_INT_H

#include <stddef.h>

#include "control.h"
#include "proto.h"
#include "session.h"

struct msg;
struct lost_room;

/* A command handler's verdict, besides a negative errno (fatal: -EPIPE when
 * the control connection is gone, -EINTR for a signal). */
enum { CMD_CONTINUE = 0, CMD_QUIT = 1 };

struct joined {
	char *typed;       /* the room name as the user typed it */
	struct room *room; /* its name as the server spells it: room_name() */
};

struct session {
	struct session_params p;
	int sigfd;
	struct notify *note;
	struct control *ctl;
	struct input *in;              /* piped stdin, or NULL with a terminal */
	struct term *term;             /* terminal editor, or NULL */
	struct joined *rooms;          /* in the order joined (Alt-1..9) */
	size_t nrooms, caprooms;
	long cur;                      /* the current room's index, or -1 */
	int ext;                       /* the server answered WELCOME: it speaks
					* the extensions (history, topics, ...) */
	int seq;                       /* WELCOME said seq=1: messages come
					* numbered, and HISTORY_AFTER works
					* (catch-up by number, seqtrack.h) */
	char *server_id;               /* from WELCOME: the sender of the
					* server's own announcements, or NULL */
	struct control_reply listed;   /* the last LIST_ROOMS answer: topics,
					* refs of rooms not joined, completion */
};

/* Sleep until ready(arg), the control connection closes, a signal arrives or
 * ms pass: 0, -EPIPE, -EINTR or -ETIMEDOUT. ready is tested first, so a
 * reply that arrived just before the close still counts. Output the readers
 * queue is printed meanwhile. */
int session_wait(struct session *s, int (*ready)(void *), void *arg, int ms);

/* Send m (consumed; NULL: "out of memory" is said) on the control connection
 * and wait for the reply to it, moved into *rep (kind PROTO_NONE when there
 * is none: timeout or no memory, which is reported here). 0 or a fatal
 * -errno (-ECONNABORTED: the write failed, said here). The caller finishes
 * *rep with control_reply_fini() in every case. */
int session_request(struct session *s, struct msg *m, enum proto_kind expect,
		    struct control_reply *rep);

/* Wait (a short bound) for the announcement armed on the notifier before
 * the request, so the next command's output cannot overtake it. 0 or fatal. */
int session_wait_announcement(struct session *s);

/* A joined room by the name as typed or as the server spells it, or NULL. */
struct joined *session_find_room(struct session *s, const char *name);

/* Make rooms[i] the current room (i < 0: none). */
void session_set_current(struct session *s, long i);

/* Forget a joined room (its connection closed); the current room, when it
 * goes, passes to the one joined last. j is invalid afterwards. */
void session_remove_room(struct session *s, struct joined *j);

/* LEAVE_CHATROOM for a membership, waiting for our leave announcement; *rep
 * says how it went (finish it with control_reply_fini()). 0 or fatal. */
int session_leave_membership(struct session *s, long ref, long join_id,
			     struct control_reply *rep);

/* Join room (JOIN, attach to its port, show recent history) and make it the
 * current one; lost non-NULL when rejoining after a reconnect: then the
 * messages missed meanwhile are shown instead. Every refusal is said here.
 * CMD_CONTINUE or fatal. */
int session_join_room(struct session *s, const char *room, const struct lost_room *lost);

/* HISTORY for a joined room; max > 0 (after a join): at most the last max
 * entries, our own join announcement left out, nothing said when empty.
 * CMD_CONTINUE or fatal. */
int session_show_history(struct session *s, struct joined *j, size_t max);

/* Nonzero when name can go on the wire as one line (non-empty, no control
 * characters); the server judges the rest. */
int session_name_ok(const char *name);

#endif

/* room.h - one joined room: its connection to the room's port and the
 * listener thread that prints what arrives there.
 *
 * The command thread creates, sends, and destroys; the listener thread reads
 * the socket and prints every CHAT as "[ROOM] NAME: TEXT" (highlighted, with
 * the bell, when it mentions us), counts activity and remembers the last few
 * messages for the catch-up after a reconnect (from a server that numbers
 * them, their numbers too: seqtrack.h). The state is
 * shared under the room's lock; changes are announced through the notifier. */
#ifndef ROOMC_ROOM_H
#define ROOMC_ROOM_H

#include "catchup.h"

struct notify;
struct room;

/* What room_create() needs; the caller keeps it on the stack. Strings are
 * copied. */
struct room_params {
	const char *name;          /* room name from the JOINED reply (printed) */
	long ref;                  /* ROOM_REF */
	long join_id;              /* JOIN_ID */
	const char *client_name;   /* our CLIENT_NAME */
	const char *server_ip;     /* SERVER_IP from the JOINED reply */
	unsigned port;             /* PORT from the JOINED reply */
	const char *control_host;  /* the -h host: the fallback address */
	int control_is_loopback;   /* we reach the daemon over loopback */
	int abort_fd;              /* readable => give up connecting (signalfd), or -1 */
	struct notify *note;       /* poked on every state change; not owned */
	const struct tlsconn_opts *tls; /* the control connection's TLS options
					 * (the room port speaks as it does), or NULL */
};

enum room_state {
	ROOM_ATTACHING, /* ATTACH_CHATROOM sent, no answer yet */
	ROOM_ATTACHED,  /* traffic flows on the room connection */
	ROOM_REFUSED,   /* the server answered the attach with an error */
	ROOM_CLOSED,    /* the connection ended */
};

/* Connect to the room's port (SERVER_IP, or the control host when SERVER_IP is
 * a wildcard, a loopback address we cannot mean, or unreachable), send
 * ATTACH_CHATROOM and start the listener. Waits for the TCP connection (up to
 * a few seconds per address), not for the answer: see room_state(). 0 or
 * -errno (-EINTR when abort_fd fired). Command thread. */
int room_create(const struct room_params *p, struct room **out);

/* Mark the room as being left (or not, after a failed leave): its connection
 * closing is then expected and not reported. Command thread. */
void room_set_leaving(struct room *r, int leaving);

/* Shut the connection down, join the listener, free the room. */
void room_destroy(struct room *r);

enum room_state room_state(struct room *r);

/* Send a CHAT with text (one line) on the room connection. 0, -ENOTCONN when
 * the room is not attached, -ENOMEM, or -errno from the write. Command
 * thread. */
int room_send(struct room *r, const char *text);

/* Activity since the room was last current: messages from others, and
 * whether one of them mentioned us. A current room counts nothing; making a
 * room current (or not) clears its counts. The listener counts under the
 * room's lock. Command thread. */
void room_set_current(struct room *r, int current);
void room_activity(struct room *r, unsigned long *unread, int *mentioned);

/* Where we are in the room's history when the listener has printed
 * nothing yet: the newest history entry shown (after a join or a catch-up).
 * Ignored once a message came live (it is newer). Command thread. */
void room_seed_seen(struct room *r, const char *name, const char *text);

/* The last messages the listener printed (at most CATCHUP_SEEN, oldest
 * first, after any seed), copied for catchup_plan()
 * into names[i] / texts[i] (malloc'd; the caller frees them). Returns how
 * many, or 0 when out of memory. Command thread. */
size_t room_copy_seen(struct room *r, char **names, char **texts);

/* Immutable after create: any thread. */
const char *room_name(const struct room *r);
long room_ref(const struct room *r);
long room_join_id(const struct room *r);

#endif

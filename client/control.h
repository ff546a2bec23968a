/* control.h - roomc's control connection to the daemon.
 *
 * A reader thread parses everything the server sends on it. CHAT frames are
 * printed at once (the joiner's own announcement and the leaver's copy arrive
 * here). JOINED, LEFT and ERROR replies print their line ("joined ...",
 * "left ...", "error K: ...") in stream order and are handed to the command
 * thread through a one-slot mailbox, as are the extension replies (lists
 * whole, once their last entry is in); PRIVATE_FROM prints at once as
 * "[private] NAME: TEXT". A SEQ frame's number goes to seqtrack.h with
 * the CHAT it precedes. Only the command thread writes to the
 * socket, one request at a time. */
#ifndef ROOMC_CONTROL_H
#define ROOMC_CONTROL_H

#include "proto.h"

struct control;
struct msg;
struct notify;

/* One entry of a list reply, copied out of the reader's buffer. */
struct control_entry {
	char *name;      /* ROOM: the room; MEMBER: the member; ENTRY: the sender */
	char *text;      /* ROOM: its topic; ENTRY: the message; else NULL */
	char *time;      /* ENTRY: ISO 8601 UTC time as sent; else NULL */
	long ref;        /* ROOM: ROOM_REF (-1 when malformed) */
	long members;    /* ROOM: MEMBERS (-1 when malformed) */
	unsigned port;   /* ROOM: PORT, 0 while the room is dormant */
};

/* A reply, copied out of the reader's buffer. */
struct control_reply {
	enum proto_kind kind; /* PROTO_R_JOINED, _LEFT, _ERROR, _WELCOME, _ROOMS,
			       * _MEMBERS, _HISTORY, _HISTORY_AFTER, _PRIVATE_SENT,
			       * _TOPIC_SET, or
			       * PROTO_NONE for a reply that failed validation */
	char *room;           /* JOINED: the room's name (malloc'd), else NULL */
	char *server_ip;      /* JOINED: SERVER_IP as sent (malloc'd), else NULL */
	unsigned port;        /* JOINED: the room's port */
	long ref;             /* JOINED, LEFT, MEMBERS, HISTORY, TOPIC_SET: ROOM_REF */
	long join_id;         /* JOINED, LEFT: JOIN_ID */
	long code;            /* ERROR: ERROR_CODE */
	char *text;           /* WELCOME: TEXT; TOPIC_SET: TOPIC; PRIVATE_SENT:
			       * the recipient (malloc'd), else NULL */
	char *server_id;      /* WELCOME: the server id (malloc'd), else NULL */
	char *version;        /* WELCOME: VERSION (malloc'd), else NULL */
	long count;           /* ROOMS, MEMBERS, HISTORY: the entries announced;
			       * PRIVATE_SENT: connections reached */
	long total;           /* ROOMS: the rooms of that kind in all (TOTAL), -1 if absent */
	long first, last;     /* HISTORY_AFTER: the first entry's number (FIRST)
			       * and the room's newest (LAST) */
	int seq;              /* WELCOME: LIMITS says seq=1 (numbers given) */
	struct control_entry *entries; /* ROOMS, MEMBERS, HISTORY: the entries
					* kept (malloc'd), in arrival order */
	size_t nentries;      /* at most CONTROL_MAX_ENTRIES, and <= count */
};

/* List entries kept per reply: far above any sane room list or history
 * (the daemon caps history at 10000), and what bounds our memory against a
 * server announcing more. Entries past it are read and dropped. */
#define CONTROL_MAX_ENTRIES 20000

/* Free the strings of a reply taken with control_take_reply(). */
void control_reply_fini(struct control_reply *r);

/* Take over the connected socket fd and start the reader thread, which pokes
 * note whenever something the command thread may wait for changes. With
 * tls->on, the TLS handshake and the server's verification come first
 * (tlsconn.h: a refusal is printed); tls may be NULL (plain). On error
 * the fd is closed. 0 or -errno. Command thread. */
struct tlsconn_opts;
int control_create(int fd, struct notify *note, const struct tlsconn_opts *tls, struct control **out);

/* Shut the socket down, join the reader, free everything. Command thread. */
void control_destroy(struct control *c);

/* Nonzero when the socket's local address is a loopback one (we reached the
 * daemon over loopback). Immutable: any thread. */
int control_is_loopback(const struct control *c);

/* Write one request; expect is the reply kind the command thread will wait
 * for (any kind struct control_reply lists; an ERROR answers any of them),
 * or PROTO_NONE. For PROTO_R_WELCOME an ERROR is not printed (a classic
 * server refuses the request; the caller says so its own way). List replies
 * are delivered once their last entry has arrived. m stays the caller's. 0 or -errno (the connection is then
 * unusable). Command thread. */
int control_send(struct control *c, const struct msg *m, enum proto_kind expect);

/* Nonzero when the reply to the last request has arrived. Command thread. */
int control_reply_ready(struct control *c);

/* Move the reply into *out (caller frees it with control_reply_fini) and stop
 * expecting one. 0, or -EAGAIN when none has arrived. Command thread. */
int control_take_reply(struct control *c, struct control_reply *out);

/* Stop expecting a reply (after a timeout): a late one is ignored. */
void control_cancel(struct control *c);

/* A GAP notice arrived (on the control connection or a room's): mark the
 * room for a refill (seqtrack.h) and wake the command thread. Any reader. */
void control_on_gap(struct notify *note, const struct proto_msg *m);

/* 0 while the connection is up; once the reader has stopped, 1 for a close
 * by the server or the -errno that ended it (-EMSGSIZE: oversized frame). */
int control_closed(struct control *c);

#endif

/* proto.h - the roomd wire protocol: incremental parser and reply writers.
 *
 * The only code that knows the wire syntax (docs/PROTOCOL.md). Pure: no I/O,
 * no globals, no locks; any thread may use its own parser. */
#ifndef ROOMD_PROTO_H
#define ROOMD_PROTO_H

#include <stddef.h>

struct msg;

/* Hard ceilings; the configured limits must stay at or below them. */
#define PROTO_MAX_FIELDS 8        /* fields in one message */
#define PROTO_DEFAULT_MAX_REQUEST 8192
/* ROOM_REF and JOIN_ID are positive and fit a signed 32-bit int (lab-era
 * clients parse them so): every number of the protocol that names a room
 * or a membership is in [1, PROTO_ID_MAX]. */
#define PROTO_ID_MAX 0x7fffffffL

/* SPEC §2.1 error codes: one enum for every request failure. */
enum proto_err {
	PROTO_OK = 0,
	PROTO_E_MALFORMED = 1,
	PROTO_E_NO_ROOM = 2,
	PROTO_E_NOT_MEMBER = 3,
	PROTO_E_BAD_NAME = 4,
	PROTO_E_NAME_IN_USE = 5,
	PROTO_E_ROOM_FULL = 6,
	PROTO_E_SERVER_FULL = 7,
	PROTO_E_TOO_LARGE = 8,
	PROTO_E_RATE = 9,
	PROTO_E_FORBIDDEN = 10,
	PROTO_E_SERVER = 11,
};

/* The text the daemon sends with an error code. */
const char *proto_err_text(enum proto_err err);

/* Message kinds. Requests (client -> server) and replies (server -> client)
 * are parsed with different dialects because CHAT exists in both. */
enum proto_kind {
	PROTO_NONE = 0,
	/* requests */
	PROTO_HELO,
	PROTO_KILL_SERVICE,
	PROTO_JOIN,
	PROTO_LEAVE,
	PROTO_DISCONNECT,
	PROTO_CHAT,
	PROTO_ATTACH,
	/* extension requests (docs/PROTOCOL.md, "Extensions") */
	PROTO_WELCOME,
	PROTO_LIST_ROOMS,
	PROTO_LIST_MEMBERS,
	PROTO_PRIVATE,
	PROTO_HISTORY,
	PROTO_SET_TOPIC,
	PROTO_HISTORY_AFTER,  /* the history after a sequence number (§7.7) */
	/* replies */
	PROTO_R_HELO,
	PROTO_R_JOINED,
	PROTO_R_LEFT,
	PROTO_R_CHAT,
	PROTO_R_ERROR,
	PROTO_R_ATTACHED,
	/* extension replies: a head with a count, then that many entries */
	PROTO_R_WELCOME,
	PROTO_R_ROOMS,        /* ROOMS: n, then n PROTO_R_ROOM */
	PROTO_R_ROOM,
	PROTO_R_MEMBERS,      /* MEMBERS: ref, COUNT: n, then n PROTO_R_MEMBER */
	PROTO_R_MEMBER,
	PROTO_R_PRIVATE_SENT,
	PROTO_R_PRIVATE_FROM,
	PROTO_R_HISTORY,      /* HISTORY: ref, COUNT: n, then n PROTO_R_ENTRY */
	PROTO_R_ENTRY,
	PROTO_R_TOPIC_SET,
	PROTO_R_SEQ,          /* SEQ: n, the number of the CHAT frame that follows */
	PROTO_R_HISTORY_AFTER, /* HISTORY_AFTER: ref, FIRST, LAST, COUNT: n, then
				* n PROTO_R_ENTRY */
	PROTO_R_GAP,          /* GAP: ref, FIRST, LAST: numbered messages dropped */
};

enum proto_dialect { PROTO_REQUESTS, PROTO_REPLIES };

/* The head key of a kind ("CHAT", "LEAVE_CHATROOM", ...), for logs. */
const char *proto_kind_key(enum proto_kind kind);

/* A complete message. Values are NUL-terminated, trimmed, and point into the
 * buffer passed to proto_parse(): valid until the caller discards or moves
 * those bytes. field[i] is the value of the i-th field of the kind, in the
 * order the table in proto.c lists them (see the PROTO_F_* indexes below),
 * whatever order the fields arrived in. */
struct proto_msg {
	enum proto_kind kind;
	const char *field[PROTO_MAX_FIELDS];
	size_t len[PROTO_MAX_FIELDS]; /* strlen of each field */
};

/* LIST_ROOMS carries its options in its one value, so that the request
 * still ends with its head line (a classic "LIST_ROOMS: 0" means the first
 * page of live rooms): space-separated words OFFSET=n, LIMIT=n, DORMANT=0|1,
 * keys in any case. A reply holds at most PROTO_LIST_ROOMS_MAX rooms (a
 * bigger LIMIT is cut to it). */
#define PROTO_LIST_ROOMS_MAX 100
struct proto_list_rooms {
	long offset;  /* rooms skipped */
	long limit;   /* rooms at most, 0..PROTO_LIST_ROOMS_MAX */
	int dormant;  /* list the dormant rooms instead of the live ones */
};
/* 0, or -1 for a value that is none of the above. */
int proto_parse_list_rooms(const char *value, struct proto_list_rooms *out);

/* Field indexes, per kind. */
enum {
	/* Every request that names a membership (LEAVE_CHATROOM, CHAT,
	 * ATTACH_CHATROOM, HISTORY, SET_TOPIC) has its ROOM_REF, JOIN_ID and
	 * CLIENT_NAME at these indexes (checked in proto.c), so that one
	 * check can resolve the membership before the kind's handler runs. */
	PROTO_F_MEMBER_REF = 0, PROTO_F_MEMBER_ID = 1, PROTO_F_MEMBER_NAME = 2,
	/* HELO <text> */
	PROTO_F_HELO_TEXT = 0,
	/* JOIN_CHATROOM, CLIENT_IP, PORT, CLIENT_NAME */
	PROTO_F_JOIN_ROOM = 0, PROTO_F_JOIN_IP = 1, PROTO_F_JOIN_PORT = 2, PROTO_F_JOIN_NAME = 3,
	/* LEAVE_CHATROOM, JOIN_ID, CLIENT_NAME */
	PROTO_F_LEAVE_REF = 0, PROTO_F_LEAVE_ID = 1, PROTO_F_LEAVE_NAME = 2,
	/* DISCONNECT, PORT, CLIENT_NAME */
	PROTO_F_DISC_IP = 0, PROTO_F_DISC_PORT = 1, PROTO_F_DISC_NAME = 2,
	/* CHAT, JOIN_ID, CLIENT_NAME, MESSAGE */
	PROTO_F_CHAT_REF = 0, PROTO_F_CHAT_ID = 1, PROTO_F_CHAT_NAME = 2, PROTO_F_CHAT_TEXT = 3,
	/* ATTACH_CHATROOM, JOIN_ID, CLIENT_NAME */
	PROTO_F_ATTACH_REF = 0, PROTO_F_ATTACH_ID = 1, PROTO_F_ATTACH_NAME = 2,
	/* replies: HELO, IP, Port, StudentID */
	PROTO_F_RHELO_TEXT = 0, PROTO_F_RHELO_IP = 1, PROTO_F_RHELO_PORT = 2, PROTO_F_RHELO_ID = 3,
	/* JOINED_CHATROOM, SERVER_IP, PORT, ROOM_REF, JOIN_ID */
	PROTO_F_JOINED_ROOM = 0, PROTO_F_JOINED_IP = 1, PROTO_F_JOINED_PORT = 2,
	PROTO_F_JOINED_REF = 3, PROTO_F_JOINED_ID = 4,
	/* LEFT_CHATROOM, JOIN_ID */
	PROTO_F_LEFT_REF = 0, PROTO_F_LEFT_ID = 1,
	/* CHAT, CLIENT_NAME, MESSAGE */
	PROTO_F_RCHAT_REF = 0, PROTO_F_RCHAT_NAME = 1, PROTO_F_RCHAT_TEXT = 2,
	/* ERROR_CODE, ERROR_DESCRIPTION */
	PROTO_F_ERROR_CODE = 0, PROTO_F_ERROR_TEXT = 1,
	/* ATTACHED_CHATROOM, JOIN_ID */
	PROTO_F_ATTACHED_REF = 0, PROTO_F_ATTACHED_ID = 1,
	/* extension requests */
	PROTO_F_LIST_ROOMS_ARGS = 0,
	PROTO_F_LIST_MEMBERS_REF = 0,
	/* PRIVATE_MESSAGE, CLIENT_NAME, MESSAGE */
	PROTO_F_PRIV_TO = 0, PROTO_F_PRIV_NAME = 1, PROTO_F_PRIV_TEXT = 2,
	/* HISTORY, JOIN_ID, CLIENT_NAME */
	PROTO_F_HIST_REF = 0, PROTO_F_HIST_ID = 1, PROTO_F_HIST_NAME = 2,
	/* SET_TOPIC, JOIN_ID, CLIENT_NAME, TOPIC */
	PROTO_F_TOPIC_REF = 0, PROTO_F_TOPIC_ID = 1, PROTO_F_TOPIC_NAME = 2, PROTO_F_TOPIC_TEXT = 3,
	/* HISTORY_AFTER, JOIN_ID, CLIENT_NAME, SEQ */
	PROTO_F_HISTA_REF = 0, PROTO_F_HISTA_ID = 1, PROTO_F_HISTA_NAME = 2, PROTO_F_HISTA_SEQ = 3,
	/* extension replies */
	/* WELCOME, VERSION, LIMITS, TEXT */
	PROTO_F_RWELCOME_ID = 0, PROTO_F_RWELCOME_VERSION = 1, PROTO_F_RWELCOME_LIMITS = 2,
	PROTO_F_RWELCOME_TEXT = 3,
	PROTO_F_RROOMS_COUNT = 0, PROTO_F_RROOMS_TOTAL = 1,
	/* ROOM, ROOM_REF, PORT, MEMBERS, TOPIC */
	PROTO_F_RROOM_NAME = 0, PROTO_F_RROOM_REF = 1, PROTO_F_RROOM_PORT = 2,
	PROTO_F_RROOM_MEMBERS = 3, PROTO_F_RROOM_TOPIC = 4,
	/* MEMBERS, COUNT */
	PROTO_F_RMEMBERS_REF = 0, PROTO_F_RMEMBERS_COUNT = 1,
	PROTO_F_RMEMBER_NAME = 0,
	/* PRIVATE_SENT, COUNT */
	PROTO_F_RPSENT_TO = 0, PROTO_F_RPSENT_COUNT = 1,
	/* PRIVATE_FROM, MESSAGE */
	PROTO_F_RPFROM_NAME = 0, PROTO_F_RPFROM_TEXT = 1,
	/* HISTORY, COUNT */
	PROTO_F_RHIST_REF = 0, PROTO_F_RHIST_COUNT = 1,
	/* ENTRY (time), CLIENT_NAME, MESSAGE */
	PROTO_F_RENTRY_TIME = 0, PROTO_F_RENTRY_NAME = 1, PROTO_F_RENTRY_TEXT = 2,
	/* TOPIC_SET, TOPIC */
	PROTO_F_RTOPIC_REF = 0, PROTO_F_RTOPIC_TEXT = 1,
	PROTO_F_RSEQ_SEQ = 0,
	/* HISTORY_AFTER, FIRST, LAST, COUNT */
	PROTO_F_RHISTA_REF = 0, PROTO_F_RHISTA_FIRST = 1, PROTO_F_RHISTA_LAST = 2,
	PROTO_F_RHISTA_COUNT = 3,
	/* GAP, FIRST, LAST */
	PROTO_F_RGAP_REF = 0, PROTO_F_RGAP_FIRST = 1, PROTO_F_RGAP_LAST = 2,
};

/* Parser state for one byte stream. Embedded in its owner (a connection);
 * all of it is private to proto.c. The bytes of the message being parsed stay
 * in the caller's buffer until proto_parse() says how many to discard. */
struct proto_parser {
	enum proto_dialect dialect;
	size_t max_request;   /* bytes of one message, blank lines excluded */
	size_t scan;          /* bytes of the current message already examined */
	size_t msg_start;     /* offset of the first line of the message */
	int kind_index;       /* table row of the message, -1 before its first line */
	int skipping;         /* resynchronising after a malformed message */
	unsigned seen;        /* bit i: field i has arrived */
	size_t val_off[PROTO_MAX_FIELDS];
	size_t val_end[PROTO_MAX_FIELDS];
	size_t last_line_end; /* start of the line being scanned */
	unsigned trailer;     /* optional fields the last message ended without */
	int trailer_index;    /* ...and its table row */
	unsigned long ignored; /* unknown fields ignored so far (for debug logs) */
};

enum proto_status {
	PROTO_NEED_MORE = 0, /* no complete message yet; keep the bytes, feed more */
	PROTO_MESSAGE,       /* *out holds a message */
	PROTO_ERROR,         /* *err says why; the bytes are discarded */
};

/* Start parsing a stream. max_request caps one message (hostile above it). */
void proto_parser_init(struct proto_parser *p, enum proto_dialect dialect, size_t max_request);

/* Parse buf[0..len): the unconsumed bytes of the stream, the same bytes as
 * the previous call plus any new ones appended. Returns:
 *   PROTO_MESSAGE: *out is set; *consumed bytes (the message and any blank
 *     lines before it) must be discarded from the front of buf before the
 *     next call, after the caller is done with *out. buf is modified in place
 *     (values are NUL-terminated).
 *   PROTO_ERROR: *err is the code, *fatal is nonzero when the stream cannot
 *     be trusted any more (request too large: close the connection);
 *     *consumed bytes must be discarded. A non-fatal error leaves the parser
 *     skipping to the start of the next message.
 *   PROTO_NEED_MORE: *consumed bytes (blank or skipped lines) may be
 *     discarded; keep the rest and call again when more bytes arrive.
 * Each byte is examined once across calls (no rescan on split input). */
enum proto_status proto_parse(struct proto_parser *p, char *buf, size_t len,
			      struct proto_msg *out, size_t *consumed,
			      enum proto_err *err, int *fatal);

/* End the request held in buf[0..len) because no byte has come for the
 * quiet period (SPEC §2.4; the caller keeps the clock: call it when
 * end_quiet_ms have passed since the last byte arrived and the last
 * proto_parse() of these same bytes returned PROTO_NEED_MORE). If the held
 * bytes are a request whose fields are all there but whose terminator is
 * not (an unterminated last line, a MESSAGE without its blank line), the
 * stream is read as if the terminator had come: the last line ends at len,
 * and PROTO_MESSAGE is returned as by proto_parse(), *consumed being len.
 * Otherwise PROTO_NEED_MORE: nothing changes (bytes that only finish the
 * previous request, like a late optional field, may be *consumed), and
 * the request keeps waiting for its bytes or the request timeout. It
 * writes a NUL at buf[len]: buf must have room for one byte more. Never
 * an error: a quiet stream is not a malformed one. A last line that is a
 * key with no value yet ("CLIENT_NAME:") is not finished: the client is
 * still inside it. */
enum proto_status proto_finish(struct proto_parser *p, char *buf, size_t len,
			       struct proto_msg *out, size_t *consumed);

/* Parse a decimal integer field in [min, max]: 0 on success, -1 otherwise. */
int proto_parse_int(const char *s, long min, long max, long *out);

/* Nonzero when a line of a MESSAGE after its first looks like a field of
 * the protocol (`CHAT: 1`, `client_name:x`, `HELO x`, ...): relayed as is,
 * a line-based CS4032 client would read it as a frame of its own, a CHAT
 * forged under another name. Such a message is refused (error 1). */
int proto_text_forges_field(const char *text, size_t len);
#define PROTO_FORGED_LINE_TEXT "a MESSAGE line after the first looks like a protocol field"

/* ---- writers: each returns a new message (refcount 1), or NULL when out of
 * memory. Values are our own or already validated; they must not contain a
 * newline (asserted). */
struct msg *proto_write_helo(const char *text, const char *ip, unsigned port, const char *server_id);
struct msg *proto_write_joined(const char *room, const char *ip, unsigned port, long ref, long join_id);
struct msg *proto_write_left(long ref, long join_id);

/* Where the name and the text lie in a CHAT or ENTRY frame, as offsets
 * into its bytes: what the history keeps (and the store saves) instead of
 * searching the frame for them. */
struct proto_chat_layout {
	size_t name_off, name_len;
	size_t text_off, text_len;
};

/* A CHAT or ENTRY frame is at most PROTO_CHAT_OVERHEAD bytes longer than
 * its name and text (its head value: a ref, or a time of at most
 * PROTO_TIME_MAX bytes). */
#define PROTO_CHAT_OVERHEAD 64
#define PROTO_TIME_MAX 24

/* The CHAT relay frame (CHAT, CLIENT_NAME, MESSAGE, a blank line) of name
 * and text (text_len bytes; it may span lines, never with a blank one),
 * formatted into dst: the one CHAT formatter, for every path that relays.
 * Returns its length; when that does not fit in cap bytes (a NUL is
 * written after it), nothing is written: the length it needs (like
 * snprintf). *where, unless NULL, gets where name and text lie in it. */
size_t proto_fmt_chat(char *dst, size_t cap, long ref, const char *name, const char *text,
		      size_t text_len, struct proto_chat_layout *where);
/* The same frame as a message of its own (*where as above, unless NULL). */
struct msg *proto_write_chat_at(long ref, const char *name, const char *text, size_t text_len,
				struct proto_chat_layout *where);
/* proto_write_chat_at() of a NUL-terminated text, without the layout. */
struct msg *proto_write_chat(long ref, const char *name, const char *text);
struct msg *proto_write_error(enum proto_err err, const char *detail);
struct msg *proto_write_attached(long ref, long join_id);

/* Extension replies. Lists are a head frame with a count, then that many
 * entry frames, each written by its own function. */
struct msg *proto_write_welcome(const char *server_id, const char *version, const char *limits,
				const char *text);
struct msg *proto_write_rooms_head(long count, long total);
struct msg *proto_write_room_entry(const char *name, long ref, unsigned port, long members,
				   const char *topic);
struct msg *proto_write_members_head(long ref, long count);
struct msg *proto_write_member_entry(const char *name);
struct msg *proto_write_private_sent(const char *to, long count);
struct msg *proto_write_private_from(const char *from, const char *text);
struct msg *proto_write_history_head(long ref, long count);
/* The same head into dst (cap bytes), like snprintf: its length (what a
 * HISTORY reply's head costs: proto_fmt_history_head(NULL, 0, ...)). */
size_t proto_fmt_history_head(char *dst, size_t cap, long ref, long count);
/* An ENTRY frame (ENTRY, CLIENT_NAME, MESSAGE, a blank line) into dst, as
 * proto_fmt_chat() formats a CHAT: its length, or the length it needs when
 * cap is too small (nothing written); *where (unless NULL) as there. time
 * is ISO 8601 UTC, at most PROTO_TIME_MAX bytes. */
size_t proto_fmt_history_entry(char *dst, size_t cap, const char *time, const char *name,
			       size_t name_len, const char *text, size_t text_len,
			       struct proto_chat_layout *where);
struct msg *proto_write_topic_set(long ref, const char *topic);

/* Sequence numbers (§7.7): a room numbers its members' messages 1, 2, ...
 * (PROTO_SEQ_MAX at most: 2^53, so that any client's double holds it).
 * A connection that asked for them gets each numbered CHAT frame right
 * after a SEQ frame, "SEQ: <n>\n", formatted into dst like
 * proto_fmt_chat() (its length, or the length it needs). */
#define PROTO_SEQ_MAX 9007199254740992L
#define PROTO_SEQ_FRAME_MAX 32 /* "SEQ: " 16 digits "\n", with room to spare */
size_t proto_fmt_seq(char *dst, size_t cap, long seq);
/* The head of a HISTORY_AFTER reply: the entries that follow are
 * numbered first, first + 1, ..., count of them; last is the room's
 * newest number (0: none yet). Like proto_fmt_history_head(). */
size_t proto_fmt_history_after_head(char *dst, size_t cap, long ref, long first, long last,
				    long count);
/* What that head costs at most, whatever its numbers. */
#define PROTO_HISTORY_AFTER_HEAD_MAX 128
struct msg *proto_write_history_after_head(long ref, long first, long last, long count);
/* Nonzero when data[0..len) starts with a numbered CHAT (a SEQ frame). */
int proto_is_numbered(const char *data, size_t len);
/* The numbered CHAT at the start of data[0..len) (SEQ frame and CHAT
 * frame): its length, with *ref and *seq; 0 when there is none whole. */
size_t proto_numbered_next(const char *data, size_t len, long *ref, long *seq);
/* The gap notice: room ref's messages first..last were dropped from the
 * connection's queue (§7.7). */
struct msg *proto_write_gap(long ref, long first, long last);

/* The texts of the server's notices, relayed as CHATs, shared by the
 * daemon, roomc and the tests: "<name> has joined this chatroom." (from
 * name), "<name> has left this chatroom." (from name), and "<name> set the
 * topic: <topic>" (from the server's id). */
#define PROTO_JOINED_TEXT " has joined this chatroom."
#define PROTO_LEFT_TEXT   " has left this chatroom."
#define PROTO_TOPIC_NOTICE_TEXT " set the topic: "

/* Requests, as a client writes them. */
struct msg *proto_write_join_req(const char *room, const char *name);
struct msg *proto_write_leave_req(long ref, long join_id, const char *name);
struct msg *proto_write_disconnect_req(const char *name);
struct msg *proto_write_chat_req(long ref, long join_id, const char *name, const char *text);
struct msg *proto_write_attach_req(long ref, long join_id, const char *name);
struct msg *proto_write_helo_req(const char *text);
struct msg *proto_write_welcome_req(void);
/* "WELCOME: SEQ": the same, asking for sequence numbers (§7.7). */
struct msg *proto_write_welcome_seq_req(void);
/* "LIST_ROOMS: 0" for the first page of live rooms, else with its words. */
struct msg *proto_write_list_rooms_req(long offset, long limit, int dormant);
struct msg *proto_write_list_members_req(long ref);
struct msg *proto_write_private_req(const char *to, const char *from, const char *text);
struct msg *proto_write_history_req(long ref, long join_id, const char *name);
struct msg *proto_write_history_after_req(long ref, long join_id, const char *name, long seq);
struct msg *proto_write_set_topic_req(long ref, long join_id, const char *name, const char *topic);

#endif

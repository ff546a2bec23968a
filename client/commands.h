/* commands.h - roomc's command language: one command a line.
 *
 * Pure: no I/O, no allocation, no globals written; any thread may call it.
 * The syntax, argument counts and usage strings live in one table in
 * commands.c. */
#ifndef ROOMC_COMMANDS_H
#define ROOMC_COMMANDS_H

#include <stddef.h>

enum command_verb {
	COMMAND_NONE = 0,
	COMMAND_JOIN,       /* join ROOM */
	COMMAND_SEND,       /* send ROOM MESSAGE... */
	COMMAND_LEAVE,      /* leave_chatroom ROOM, or leave ROOM */
	COMMAND_DISCONNECT, /* disconnect, or quit */
	COMMAND_HELP,       /* help */
	COMMAND_ROOMS,      /* rooms */
	COMMAND_WHO,        /* who ROOM */
	COMMAND_MSG,        /* msg NAME TEXT... (NAME in the room field) */
	COMMAND_HISTORY,    /* history ROOM */
	COMMAND_TOPIC,      /* topic ROOM [TEXT...] */
	COMMAND_ROOM,       /* room ROOM: make a joined room the current one */
	COMMAND_SAY,        /* say MESSAGE...: to the current room, verbatim */
	COMMAND_NVERBS      /* not a verb: one more than the last; keep it last */
};

/* The result of command_parse(). The pointers point into the parsed line and
 * are not NUL-terminated: use the lengths. */
struct command {
	enum command_verb verb; /* COMMAND_NONE for an empty or unknown line */
	const char *word;       /* the first word as typed (for messages) */
	size_t word_len;
	const char *room;       /* ROOM argument (msg: the NAME); NULL when the
				 * verb takes none */
	size_t room_len;
	const char *text;       /* send, msg, topic, say: the rest of the line after
				 * ROOM with surrounding blanks trimmed and inner
				 * spacing kept; NULL for other verbs, and for
				 * topic without TEXT */
	size_t text_len;
};

enum command_status {
	COMMAND_OK = 0,         /* *out holds a command */
	COMMAND_EMPTY = 1,      /* blank line: nothing to do */
	COMMAND_E_UNKNOWN = -1, /* unknown verb: out->word says which */
	COMMAND_E_USAGE = -2,   /* known verb, wrong arguments: out->verb says which */
};

/* Parse one line (NUL-terminated, with or without its line ending; blanks are
 * spaces, tabs, CR and LF). Words are separated by runs of blanks. Verbs are
 * case-sensitive; a verb may be written with a leading '/' (/join lobby,
 * /say join us), as in IRC clients. A ROOM or NAME with spaces is written in double quotes
 * (join "chatroom 1", msg "Client 1" hi); room points inside them. Returns an enum command_status; *out is always filled
 * (zeroed first). Never fails on any input. */
int command_parse(const char *line, struct command *out);

/* Nonzero when the line's first word starts with '/': on a terminal, such a
 * line is always a command, never a message to the current room. */
int command_slashed(const char *line);

/* "usage: send ROOM MESSAGE..." for a verb; "" for COMMAND_NONE. Static
 * storage. */
const char *command_usage(enum command_verb verb);

/* "send ROOM MESSAGE...": the usage without its "usage: " (help's first
 * column); "" for COMMAND_NONE. Static storage. */
const char *command_synopsis(enum command_verb verb);

/* The i-th command word of the table (aliases included), or NULL past the
 * end: for tab completion. Static storage. */
const char *command_name_at(size_t i);

/* Nonzero when the verb's first argument is a room name (join, send, leave,
 * who, history, topic): for tab completion. */
int command_takes_room(enum command_verb verb);

/* The verb a command word names (exact, case-sensitive), COMMAND_NONE for an
 * unknown word. word need not be NUL-terminated. */
enum command_verb command_lookup(const char *word, size_t len);

#endif

/* verbs.c - what each of roomc's commands does, dispatched from one table.
 *
 * commands.c parses a line (verb words, aliases, argument shape, usage);
 * the table here gives each parsed verb its handler and its line of help,
 * in the order help lists them. Handlers reach the session (requests, the
 * room table, joining and leaving) through session_int.h. Runs on the
 * command thread only, as the session does; each handler returns
 * CMD_CONTINUE, CMD_QUIT or a fatal -errno, and says itself what went
 * wrong with a command. */
#include "verbs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "commands.h"
#include "notify.h"
#include "output.h"
#include "room.h"
#include "session_int.h"

/* How long a send waits for the server to relay our message back. */
#define ECHO_TIMEOUT_MS 5000

/* The ROOM column is as wide as the longest name, within reason. */
#define ROOMS_NAME_MAX_WIDTH 32

/* A parsed command's arguments as NUL-terminated copies: room is the ROOM
 * (msg: the NAME), NULL when the verb takes none; text the rest of the
 * line, NULL when the verb takes none or none was typed (topic ROOM). */
struct verb_args {
	const char *room;
	const char *text;
};

struct verb {
	enum command_verb verb;
	int (*run)(struct session *s, const struct verb_args *a);
	const char *help; /* after the synopsis (command_synopsis()) in help */
};

/* ---- listing rooms ------------------------------------------------------------ */

/* One page of LIST_ROOMS (live rooms from offset) into s->listed: 1 when
 * it was refreshed, 0 when the server answered otherwise (it said why), or
 * a fatal -errno. */
static int list_rooms_page(struct session *s, long offset)
{
	struct control_reply rep;
	int rc = session_request(s, proto_write_list_rooms_req(offset, PROTO_LIST_ROOMS_MAX, 0),
				 PROTO_R_ROOMS, &rep);

	if (rc == 0 && rep.kind == PROTO_R_ROOMS) {
		control_reply_fini(&s->listed);
		s->listed = rep;
		return 1;
	}
	control_reply_fini(&rep);
	return rc;
}

/* The first page of live rooms (the server sends at most
 * PROTO_LIST_ROOMS_MAX at a time). */
static int list_rooms(struct session *s)
{
	return list_rooms_page(s, 0);
}

/* A room of the last list by name: the server's spelling first, then any
 * case (as a user may type it). */
static const struct control_entry *find_listed(const struct session *s, const char *name)
{
	for (size_t i = 0; i < s->listed.nentries; i++)
		if (strcmp(s->listed.entries[i].name, name) == 0)
			return &s->listed.entries[i];
	for (size_t i = 0; i < s->listed.nentries; i++)
		if (strcasecmp(s->listed.entries[i].name, name) == 0)
			return &s->listed.entries[i];
	return NULL;
}

/* The ref and the server's spelling of a room: ours when joined, else from a
 * fresh room list. 1 when found, 0 when not (said here), or fatal. */
static int resolve_room(struct session *s, const char *room, long *ref, const char **name)
{
	struct joined *j = session_find_room(s, room);
	const struct control_entry *e;
	int rc;

	if (j) {
		*ref = room_ref(j->room);
		*name = room_name(j->room);
		return 1;
	}
	/* Page by page: the server lists at most PROTO_LIST_ROOMS_MAX rooms at
	 * a time (its live rooms are bounded by its max_rooms). */
	for (long offset = 0;; offset += (long)s->listed.nentries) {
		rc = list_rooms_page(s, offset);
		if (rc <= 0)
			return rc;
		e = find_listed(s, room);
		if (e || s->listed.nentries == 0 || offset + (long)s->listed.nentries >= s->listed.total)
			break;
	}
	if (!e || e->ref < 0) {
		output_local("no room %s", output_q(room));
		return 0;
	}
	*ref = e->ref;
	*name = e->name;
	return 1;
}

/* The width of the ROOM column: the longest name shown, at least the
 * heading's, at most ROOMS_NAME_MAX_WIDTH. */
static int rooms_name_width(const struct control_reply *r)
{
	int w = 4;

	for (size_t i = 0; i < r->nentries; i++) {
		size_t len = strlen(output_q(r->entries[i].name));
		if ((int)len > w)
			w = len > ROOMS_NAME_MAX_WIDTH ? ROOMS_NAME_MAX_WIDTH : (int)len;
	}
	return w;
}

static int verb_rooms(struct session *s, const struct verb_args *a)
{
	int rc = list_rooms(s), w;
	const struct control_reply *r = &s->listed;

	(void)a;
	if (rc <= 0)
		return rc;
	if (r->nentries == 0) {
		output_info("no rooms");
		return CMD_CONTINUE;
	}
	w = rooms_name_width(r);
	output_info("%-*s  %4s  %7s  %s", w, "ROOM", "REF", "MEMBERS", "TOPIC");
	for (size_t i = 0; i < r->nentries; i++) {
		const struct control_entry *e = &r->entries[i];

		if (*e->text)
			output_info("%-*s  %4ld  %7ld  %s", w, output_q(e->name), e->ref, e->members, e->text);
		else
			output_info("%-*s  %4ld  %7ld", w, output_q(e->name), e->ref, e->members);
	}
	if (r->total > (long)r->nentries)
		output_info("(%ld more not shown)", r->total - (long)r->nentries);
	else if (r->count > (long)r->nentries)
		output_info("(%ld more not shown)", r->count - (long)r->nentries);
	return CMD_CONTINUE;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct control_entry *)a)->name,
		      ((const struct control_entry *)b)->name);
}

static int verb_who(struct session *s, const struct verb_args *a)
{
	struct control_reply rep;
	const char *name;
	long ref;
	int rc = resolve_room(s, a->room, &ref, &name);

	if (rc <= 0)
		return rc;
	rc = session_request(s, proto_write_list_members_req(ref), PROTO_R_MEMBERS, &rep);
	if (rc == 0 && rep.kind == PROTO_R_MEMBERS) {
		/* The server's order is its own; sorted, the list reads (and
		 * tests) the same every time. */
		qsort(rep.entries, rep.nentries, sizeof(rep.entries[0]), by_name);
		if (rep.nentries == 0)
			output_info("nobody in %s", output_q(name));
		else
			output_info("members of %s: %zu", output_q(name), rep.nentries);
		for (size_t i = 0; i < rep.nentries; i++)
			output_info("  %s", output_q(rep.entries[i].name));
		if (rep.count > (long)rep.nentries)
			output_info("(%ld more not shown)", rep.count - (long)rep.nentries);
	}
	control_reply_fini(&rep);
	return rc;
}

/* ---- private messages, history, topics ---------------------------------------- */

static int verb_msg(struct session *s, const struct verb_args *a)
{
	struct control_reply rep;
	int rc;

	/* The server knows us by the names of our memberships only. */
	if (s->nrooms == 0) {
		output_local("join a room first: private messages go out under your name there");
		return CMD_CONTINUE;
	}
	if (!session_name_ok(a->room)) {
		output_local("invalid name");
		return CMD_CONTINUE;
	}
	rc = session_request(s, proto_write_private_req(a->room, s->p.name, a->text),
			     PROTO_R_PRIVATE_SENT, &rep);
	if (rc == 0 && rep.kind == PROTO_R_PRIVATE_SENT)
		output_private(s->p.name, a->room, a->text);
	control_reply_fini(&rep);
	return rc;
}

static int verb_history(struct session *s, const struct verb_args *a)
{
	struct joined *j = session_find_room(s, a->room);

	if (!j) {
		output_local("not in %s (history is for members)", output_q(a->room));
		return CMD_CONTINUE;
	}
	return session_show_history(s, j, 0);
}

/* Set the topic of a joined room. The server announces the change in the
 * room as a CHAT from its own id; we wait for it (like our own echo), so
 * the next command's output comes after it. */
static int set_topic(struct session *s, struct joined *j, const char *text)
{
	struct control_reply rep;
	char *prefix = NULL;
	int rc, armed = 0;

	if (s->server_id && asprintf(&prefix, "%s" PROTO_TOPIC_NOTICE_TEXT, s->p.name) >= 0)
		armed = notify_arm_prefix(s->note, room_ref(j->room), s->server_id, prefix) == 0;
	free(prefix);
	rc = session_request(s, proto_write_set_topic_req(room_ref(j->room), room_join_id(j->room),
							  s->p.name, text),
			     PROTO_R_TOPIC_SET, &rep);
	if (rc == 0 && rep.kind == PROTO_R_TOPIC_SET) {
		/* The announcement is the confirmation; without one (no server
		 * id, or it did not come) the reply says it. */
		if (armed)
			rc = session_wait_announcement(s);
		if (rc == 0 && notify_result(s->note) != 1)
			output_info("topic of %s: %s", output_q(room_name(j->room)), rep.text);
	}
	control_reply_fini(&rep);
	notify_disarm(s->note);
	return rc;
}

/* topic ROOM shows it (any live room), topic ROOM TEXT sets it (members). */
static int verb_topic(struct session *s, const struct verb_args *a)
{
	struct joined *j = session_find_room(s, a->room);
	const struct control_entry *e;
	int rc;

	if (a->text) {
		if (!j) {
			output_local("not in %s (only members set the topic)", output_q(a->room));
			return CMD_CONTINUE;
		}
		return set_topic(s, j, a->text);
	}
	rc = list_rooms(s);
	if (rc <= 0)
		return rc;
	e = find_listed(s, j ? room_name(j->room) : a->room);
	if (!e)
		output_local("no room %s", output_q(a->room));
	else if (!*e->text)
		output_info("%s has no topic", output_q(e->name));
	else
		output_info("topic of %s: %s", output_q(e->name), e->text);
	return CMD_CONTINUE;
}

/* ---- joining, leaving, the current room ---------------------------------------- */

static int verb_join(struct session *s, const struct verb_args *a)
{
	return session_join_room(s, a->room, NULL);
}

/* `room NAME`, Alt-N: a joined room becomes the current one. */
static int verb_room(struct session *s, const struct verb_args *a)
{
	struct joined *j = session_find_room(s, a->room);

	if (!j) {
		output_local("not in %s (join it first)", output_q(a->room));
		return CMD_CONTINUE;
	}
	session_set_current(s, (long)(j - s->rooms));
	output_info("current room: %s", output_q(room_name(j->room)));
	return CMD_CONTINUE;
}

static int verb_leave(struct session *s, const struct verb_args *a)
{
	struct joined *j = session_find_room(s, a->room);
	struct control_reply rep;
	int rc;

	if (!j) {
		output_local("not in %s", output_q(a->room));
		return CMD_CONTINUE;
	}
	/* The server closes the room connection after LEFT: not news. */
	room_set_leaving(j->room, 1);
	rc = session_leave_membership(s, room_ref(j->room), room_join_id(j->room), &rep);
	if (rep.kind == PROTO_R_LEFT)
		session_remove_room(s, j);
	else if (rc == 0)
		room_set_leaving(j->room, 0);
	control_reply_fini(&rep);
	return rc;
}

/* ---- sending --------------------------------------------------------------------- */

struct echo_wait {
	struct notify *note;
	struct room *room;
};

static int echo_settled(void *arg)
{
	struct echo_wait *w = arg;

	return notify_result(w->note) != 0 || room_state(w->room) != ROOM_ATTACHED;
}

/* text to a joined room (by name as typed or as the server spells it). */
static int send_to(struct session *s, const char *room, const char *text)
{
	struct joined *j = session_find_room(s, room);
	struct echo_wait w;
	int rc;

	if (!j) {
		output_local("not in %s", output_q(room));
		return CMD_CONTINUE;
	}
	w.note = s->note;
	w.room = j->room;
	/* The server relays our message back to us: that echo, printed, ends
	 * the command, so the next command's output comes after it. */
	notify_arm(s->note, room_ref(j->room), NULL);
	rc = room_send(j->room, text);
	if (rc == 0) {
		rc = session_wait(s, echo_settled, &w, ECHO_TIMEOUT_MS);
		if (rc == -ETIMEDOUT)
			output_local("%s: no echo of the message from the server in %d s", output_q(room),
				     ECHO_TIMEOUT_MS / 1000);
		else if (rc < 0)
			goto out; /* fatal: control connection gone, or a signal */
	} else if (rc == -ENOTCONN) {
		output_local("not connected to %s (leave it and join again)", output_q(room));
	} else {
		output_local("cannot send to %s: %s", output_q(room), strerror(-rc));
	}
	rc = CMD_CONTINUE; /* a room's trouble is not the session's */
out:
	notify_disarm(s->note);
	return rc;
}

static int verb_send(struct session *s, const struct verb_args *a)
{
	return send_to(s, a->room, a->text);
}

/* A message to the current room: `say TEXT`, or a plain line on a terminal. */
static int verb_say(struct session *s, const struct verb_args *a)
{
	if (s->cur < 0) {
		output_local("no current room: join one, or use send ROOM MESSAGE...");
		return CMD_CONTINUE;
	}
	return send_to(s, room_name(s->rooms[s->cur].room), a->text);
}

/* ---- the rest, and the table ----------------------------------------------------- */

static int verb_help(struct session *s, const struct verb_args *a)
{
	(void)s;
	(void)a;
	verbs_help();
	return CMD_CONTINUE;
}

static int verb_disconnect(struct session *s, const struct verb_args *a)
{
	(void)s;
	(void)a;
	return CMD_QUIT;
}

/* Every verb of commands.h once, in the order help lists them. */
static const struct verb verbs[] = {
	{ COMMAND_JOIN, verb_join, "join ROOM (the server may create it)" },
	{ COMMAND_SEND, verb_send, "send MESSAGE to ROOM" },
	{ COMMAND_LEAVE, verb_leave, "leave ROOM (also: leave ROOM)" },
	{ COMMAND_ROOMS, verb_rooms, "list the rooms: name, ref, members, topic" },
	{ COMMAND_WHO, verb_who, "list the members of ROOM" },
	{ COMMAND_MSG, verb_msg, "send MESSAGE to NAME only (join a room first)" },
	{ COMMAND_HISTORY, verb_history, "the recent messages of a room you are in" },
	{ COMMAND_TOPIC, verb_topic, "show the topic of ROOM, or set it to TEXT" },
	{ COMMAND_DISCONNECT, verb_disconnect, "leave every room and quit (also: quit, EOF, Ctrl-C)" },
	{ COMMAND_HELP, verb_help, "this list" },
	{ COMMAND_ROOM, verb_room, "make ROOM (joined) the current room (also: Alt-1..9)" },
	{ COMMAND_SAY, verb_say, "send MESSAGE to the current room" },
};

#define NVERBS (sizeof(verbs) / sizeof(verbs[0]))

_Static_assert(NVERBS == COMMAND_NVERBS - 1, "verbs[] has one entry per verb of commands.h");

static const char help_footer[] =
	"on a terminal a line that is no command goes to the current room (shown in\n"
	"the prompt, with the unread counts of the others); /join etc. also work\n"
	"incoming messages print as [ROOM] NAME: TEXT, private ones as [private] NAME: TEXT";

void verbs_help(void)
{
	struct output_help_row rows[NVERBS];

	for (size_t i = 0; i < NVERBS; i++) {
		rows[i].synopsis = command_synopsis(verbs[i].verb);
		rows[i].text = verbs[i].help;
	}
	output_help(rows, NVERBS, help_footer);
}

static const struct verb *find_verb(enum command_verb v)
{
	for (size_t i = 0; i < NVERBS; i++)
		if (verbs[i].verb == v)
			return &verbs[i];
	return NULL;
}

/* Run a parsed command: its arguments copied as strings, then its handler. */
static int dispatch(struct session *s, const struct command *c)
{
	const struct verb *v = find_verb(c->verb);
	char *room = c->room ? strndup(c->room, c->room_len) : NULL;
	char *text = c->text ? strndup(c->text, c->text_len) : NULL;
	int rc = CMD_CONTINUE;

	if (!v) /* commands.c parsed a verb this table lacks: a bug here */
		output_local("command '%.*s' not implemented", (int)c->word_len, c->word);
	else if ((c->room && !room) || (c->text && !text))
		output_local("out of memory");
	else
		rc = v->run(s, &(struct verb_args){ .room = room, .text = text });
	free(room);
	free(text);
	return rc;
}

/* A terminal line that is no command: the current room's, trimmed. */
static int say_line(struct session *s, const char *line)
{
	const char *p = line, *end = line + strlen(line);
	struct command c = { .verb = COMMAND_SAY, .word = "say", .word_len = 3 };

	while (*p == ' ' || *p == '\t')
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
		end--;
	c.text = p;
	c.text_len = (size_t)(end - p);
	return dispatch(s, &c);
}

int verbs_execute(struct session *s, const char *line, size_t len)
{
	struct command c;
	int st;

	if (control_closed(s->ctl))
		return -EPIPE;
	if (strlen(line) != len) {
		output_local("line ignored: it holds a NUL byte");
		return CMD_CONTINUE;
	}
	st = command_parse(line, &c);
	if (st == COMMAND_EMPTY)
		return CMD_CONTINUE;
	if (st == COMMAND_E_UNKNOWN && s->term && s->cur >= 0 && !command_slashed(line))
		return say_line(s, line); /* a terminal: the current room's */
	if (st == COMMAND_E_UNKNOWN) {
		output_local("unknown command '%.*s' (try help)", (int)c.word_len, c.word);
		return CMD_CONTINUE;
	}
	if (st == COMMAND_E_USAGE) {
		output_local("%s", command_usage(c.verb));
		return CMD_CONTINUE;
	}
	return dispatch(s, &c);
}

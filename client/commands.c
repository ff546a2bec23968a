/* commands.c - parse a line typed (or piped) to roomc into a command.
 *
 * One table lists every verb with its aliases, its argument shape and its
 * usage text; parsing is a word split over that table. A room or client
 * name with spaces is typed in double quotes: join "chatroom 1". Pure code: results
 * point into the caller's line. */
#include "commands.h"

#include <string.h>

enum command_args {
	ARGS_NONE,      /* verb alone */
	ARGS_ROOM,      /* verb ROOM */
	ARGS_ROOM_TEXT, /* verb ROOM MESSAGE... */
	ARGS_ROOM_OPT,  /* verb ROOM [TEXT...] */
	ARGS_TEXT,      /* verb MESSAGE... */
};

struct command_def {
	const char *name;
	enum command_verb verb;
	enum command_args args;
};

static const struct command_def command_defs[] = {
	{ "join", COMMAND_JOIN, ARGS_ROOM },
	{ "send", COMMAND_SEND, ARGS_ROOM_TEXT },
	{ "leave_chatroom", COMMAND_LEAVE, ARGS_ROOM },
	{ "leave", COMMAND_LEAVE, ARGS_ROOM },
	{ "disconnect", COMMAND_DISCONNECT, ARGS_NONE },
	{ "quit", COMMAND_DISCONNECT, ARGS_NONE },
	{ "help", COMMAND_HELP, ARGS_NONE },
	{ "rooms", COMMAND_ROOMS, ARGS_NONE },
	{ "who", COMMAND_WHO, ARGS_ROOM },
	{ "msg", COMMAND_MSG, ARGS_ROOM_TEXT },
	{ "history", COMMAND_HISTORY, ARGS_ROOM },
	{ "topic", COMMAND_TOPIC, ARGS_ROOM_OPT },
	{ "room", COMMAND_ROOM, ARGS_ROOM },
	{ "say", COMMAND_SAY, ARGS_TEXT },
};

/* Each a prefix and a synopsis, which help shows on its own. */
#define USAGE "usage: "

static const char *const usages[COMMAND_NVERBS] = {
	[COMMAND_NONE] = "",
	[COMMAND_JOIN] = USAGE "join ROOM",
	[COMMAND_SEND] = USAGE "send ROOM MESSAGE...",
	[COMMAND_LEAVE] = USAGE "leave_chatroom ROOM",
	[COMMAND_DISCONNECT] = USAGE "disconnect",
	[COMMAND_HELP] = USAGE "help",
	[COMMAND_ROOMS] = USAGE "rooms",
	[COMMAND_WHO] = USAGE "who ROOM",
	[COMMAND_MSG] = USAGE "msg NAME MESSAGE...",
	[COMMAND_HISTORY] = USAGE "history ROOM",
	[COMMAND_TOPIC] = USAGE "topic ROOM [TEXT...]",
	[COMMAND_ROOM] = USAGE "room ROOM",
	[COMMAND_SAY] = USAGE "say MESSAGE...",
};

#define NDEFS ((int)(sizeof(command_defs) / sizeof(command_defs[0])))

const char *command_usage(enum command_verb verb)
{
	if ((unsigned)verb >= sizeof(usages) / sizeof(usages[0]))
		return "";
	return usages[verb];
}

const char *command_synopsis(enum command_verb verb)
{
	const char *u = command_usage(verb);

	return *u ? u + strlen(USAGE) : u;
}

const char *command_name_at(size_t i)
{
	return i < (size_t)NDEFS ? command_defs[i].name : NULL;
}

int command_takes_room(enum command_verb verb)
{
	for (int i = 0; i < NDEFS; i++)
		if (command_defs[i].verb == verb)
			return verb != COMMAND_MSG && command_defs[i].args != ARGS_NONE &&
			       command_defs[i].args != ARGS_TEXT;
	return 0;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static const char *skip_blanks(const char *s)
{
	while (*s && is_blank(*s))
		s++;
	return s;
}

/* The word starting at s (not at a blank): its length. */
static size_t word_len(const char *s)
{
	size_t n = 0;

	while (s[n] && !is_blank(s[n]))
		n++;
	return n;
}

static const struct command_def *find_def(const char *word, size_t len)
{
	for (int i = 0; i < NDEFS; i++) {
		if (strlen(command_defs[i].name) == len &&
		    memcmp(command_defs[i].name, word, len) == 0)
			return &command_defs[i];
	}
	return NULL;
}

int command_slashed(const char *line)
{
	return *skip_blanks(line) == '/';
}

enum command_verb command_lookup(const char *word, size_t len)
{
	const struct command_def *def = find_def(word, len);

	return def ? def->verb : COMMAND_NONE;
}

/* The ROOM (or NAME) argument at p (not at a blank): a word, or a name in
 * double quotes, which may hold spaces ("chatroom 1"; names never contain a
 * quote). Sets out->room and room_len (without the quotes); returns the
 * position after it, or NULL when a quote is not closed, is empty, or is
 * not followed by a blank or the end. */
static const char *take_room(const char *p, struct command *out)
{
	const char *close;

	if (*p != '"') {
		out->room = p;
		out->room_len = word_len(p);
		return p + out->room_len;
	}
	close = strchr(p + 1, '"');
	if (!close || close == p + 1 || (close[1] && !is_blank(close[1])))
		return NULL;
	out->room = p + 1;
	out->room_len = (size_t)(close - (p + 1));
	return close + 1;
}

/* The rest of the line from p (not at a blank) with trailing blanks cut:
 * out->text. */
static void take_text(const char *p, struct command *out)
{
	const char *end = p + strlen(p);

	while (end > p && is_blank(end[-1]))
		end--;
	out->text = p;
	out->text_len = (size_t)(end - p);
}

/* Fill the arguments of a known verb from rest (just after the verb). */
static int parse_args(const struct command_def *def, const char *rest, struct command *out)
{
	const char *p = skip_blanks(rest);

	if (def->args == ARGS_NONE)
		return *p ? COMMAND_E_USAGE : COMMAND_OK;
	if (!*p)
		return COMMAND_E_USAGE;
	if (def->args == ARGS_TEXT) {
		take_text(p, out);
		return COMMAND_OK;
	}
	p = take_room(p, out);
	if (!p)
		return COMMAND_E_USAGE;
	p = skip_blanks(p);
	if (def->args == ARGS_ROOM)
		return *p ? COMMAND_E_USAGE : COMMAND_OK;
	if (!*p) /* an empty message is not a message; topic shows instead */
		return def->args == ARGS_ROOM_OPT ? COMMAND_OK : COMMAND_E_USAGE;
	take_text(p, out);
	return COMMAND_OK;
}

int command_parse(const char *line, struct command *out)
{
	const struct command_def *def;
	const char *p = skip_blanks(line);
	int rc;

	memset(out, 0, sizeof(*out));
	if (!*p)
		return COMMAND_EMPTY;
	out->word = p;
	out->word_len = word_len(p);
	/* "/join": the IRC habit; the slash is not part of the verb. */
	def = *p == '/' ? find_def(p + 1, out->word_len - 1) : find_def(p, out->word_len);
	if (!def)
		return COMMAND_E_UNKNOWN;
	out->verb = def->verb;
	rc = parse_args(def, p + out->word_len, out);
	if (rc != COMMAND_OK) {
		out->room = out->text = NULL;
		out->room_len = out->text_len = 0;
	}
	return rc;
}

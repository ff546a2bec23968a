/* test_commands.c - roomc's command-line parser: every verb, aliases,
 * argument counts, spacing, and never failing on odd input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "commands.h"

struct parse_case {
	const char *line;
	int status;
	enum command_verb verb;
	const char *room; /* NULL: no room expected */
	const char *text; /* NULL: no text expected */
};

static const struct parse_case cases[] = {
	{ "join room1", COMMAND_OK, COMMAND_JOIN, "room1", NULL },
	{ "  join\troom1  \r\n", COMMAND_OK, COMMAND_JOIN, "room1", NULL },
	{ "send room1 hello world", COMMAND_OK, COMMAND_SEND, "room1", "hello world" },
	{ "send room1   spaced   out  \n", COMMAND_OK, COMMAND_SEND, "room1", "spaced   out" },
	{ "leave_chatroom room1", COMMAND_OK, COMMAND_LEAVE, "room1", NULL },
	{ "leave room1", COMMAND_OK, COMMAND_LEAVE, "room1", NULL },
	{ "disconnect", COMMAND_OK, COMMAND_DISCONNECT, NULL, NULL },
	{ "quit", COMMAND_OK, COMMAND_DISCONNECT, NULL, NULL },
	{ "help", COMMAND_OK, COMMAND_HELP, NULL, NULL },
	{ "", COMMAND_EMPTY, COMMAND_NONE, NULL, NULL },
	{ "   \t \n", COMMAND_EMPTY, COMMAND_NONE, NULL, NULL },
	{ "dance now", COMMAND_E_UNKNOWN, COMMAND_NONE, NULL, NULL },
	{ "JOIN room1", COMMAND_E_UNKNOWN, COMMAND_NONE, NULL, NULL },
	{ "join", COMMAND_E_USAGE, COMMAND_JOIN, NULL, NULL },
	{ "join a b", COMMAND_E_USAGE, COMMAND_JOIN, NULL, NULL },
	{ "send room1", COMMAND_E_USAGE, COMMAND_SEND, NULL, NULL },
	{ "send", COMMAND_E_USAGE, COMMAND_SEND, NULL, NULL },
	{ "disconnect now", COMMAND_E_USAGE, COMMAND_DISCONNECT, NULL, NULL },
	{ "rooms", COMMAND_OK, COMMAND_ROOMS, NULL, NULL },
	{ "rooms all", COMMAND_E_USAGE, COMMAND_ROOMS, NULL, NULL },
	{ "who lobby", COMMAND_OK, COMMAND_WHO, "lobby", NULL },
	{ "who", COMMAND_E_USAGE, COMMAND_WHO, NULL, NULL },
	{ "who a b", COMMAND_E_USAGE, COMMAND_WHO, NULL, NULL },
	{ "msg bob hi  there \r\n", COMMAND_OK, COMMAND_MSG, "bob", "hi  there" },
	{ "msg bob", COMMAND_E_USAGE, COMMAND_MSG, NULL, NULL },
	{ "msg", COMMAND_E_USAGE, COMMAND_MSG, NULL, NULL },
	{ "history lobby", COMMAND_OK, COMMAND_HISTORY, "lobby", NULL },
	{ "history", COMMAND_E_USAGE, COMMAND_HISTORY, NULL, NULL },
	{ "history a b", COMMAND_E_USAGE, COMMAND_HISTORY, NULL, NULL },
	{ "topic lobby", COMMAND_OK, COMMAND_TOPIC, "lobby", NULL },
	{ "topic lobby  \t", COMMAND_OK, COMMAND_TOPIC, "lobby", NULL },
	{ "topic lobby  a new  topic ", COMMAND_OK, COMMAND_TOPIC, "lobby", "a new  topic" },
	{ "topic", COMMAND_E_USAGE, COMMAND_TOPIC, NULL, NULL },
	{ "Rooms", COMMAND_E_UNKNOWN, COMMAND_NONE, NULL, NULL },
	/* names with spaces, quoted (lab-era rooms and clients) */
	{ "join \"chatroom 1\"", COMMAND_OK, COMMAND_JOIN, "chatroom 1", NULL },
	{ "join  \"chatroom 1\"  \n", COMMAND_OK, COMMAND_JOIN, "chatroom 1", NULL },
	{ "send \"chatroom 1\" hi there", COMMAND_OK, COMMAND_SEND, "chatroom 1", "hi there" },
	{ "send \"chatroom 1\" \"quoted\" text", COMMAND_OK, COMMAND_SEND, "chatroom 1", "\"quoted\" text" },
	{ "msg \"Client 1\" hi", COMMAND_OK, COMMAND_MSG, "Client 1", "hi" },
	{ "who \"chatroom 1\"", COMMAND_OK, COMMAND_WHO, "chatroom 1", NULL },
	{ "leave_chatroom \"chatroom 1\"", COMMAND_OK, COMMAND_LEAVE, "chatroom 1", NULL },
	{ "history \"chatroom 1\"", COMMAND_OK, COMMAND_HISTORY, "chatroom 1", NULL },
	{ "topic \"chatroom 1\" new topic", COMMAND_OK, COMMAND_TOPIC, "chatroom 1", "new topic" },
	{ "topic \"chatroom 1\"", COMMAND_OK, COMMAND_TOPIC, "chatroom 1", NULL },
	{ "join \"plain\"", COMMAND_OK, COMMAND_JOIN, "plain", NULL },
	{ "join \"chatroom 1", COMMAND_E_USAGE, COMMAND_JOIN, NULL, NULL },
	{ "join \"\"", COMMAND_E_USAGE, COMMAND_JOIN, NULL, NULL },
	{ "join \"a b\"c", COMMAND_E_USAGE, COMMAND_JOIN, NULL, NULL },
	{ "join \"a b\" c", COMMAND_E_USAGE, COMMAND_JOIN, NULL, NULL },
	{ "send \"a b\"", COMMAND_E_USAGE, COMMAND_SEND, NULL, NULL },
	{ "join chatroom 1", COMMAND_E_USAGE, COMMAND_JOIN, NULL, NULL },
	/* issue 16: the current room */
	{ "room dev", COMMAND_OK, COMMAND_ROOM, "dev", NULL },
	{ "room", COMMAND_E_USAGE, COMMAND_ROOM, NULL, NULL },
	{ "room a b", COMMAND_E_USAGE, COMMAND_ROOM, NULL, NULL },
	{ "say join us  \n", COMMAND_OK, COMMAND_SAY, NULL, "join us" },
	{ "say", COMMAND_E_USAGE, COMMAND_SAY, NULL, NULL },
	{ "/join lobby", COMMAND_OK, COMMAND_JOIN, "lobby", NULL },
	{ " /say hi", COMMAND_OK, COMMAND_SAY, NULL, "hi" },
	{ "/", COMMAND_E_UNKNOWN, COMMAND_NONE, NULL, NULL },
	{ "/dance", COMMAND_E_UNKNOWN, COMMAND_NONE, NULL, NULL },
	{ "hello there", COMMAND_E_UNKNOWN, COMMAND_NONE, NULL, NULL },
};

static void expect_slice(const char *what, const char *p, size_t n, const char *want)
{
	if (!want) {
		if (p)
			fail_msg("%s: expected none, got '%.*s'", what, (int)n, p);
		return;
	}
	assert_non_null(p);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(p, want, n);
}

static void test_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct parse_case *pc = &cases[i];
		struct command cmd;
		int st = command_parse(pc->line, &cmd);

		if (st != pc->status || (pc->status != COMMAND_E_UNKNOWN && cmd.verb != pc->verb))
			fail_msg("'%s': status %d verb %d, expected %d and %d", pc->line, st, cmd.verb,
				 pc->status, pc->verb);
		if (st == COMMAND_OK) {
			expect_slice(pc->line, cmd.room, cmd.room_len, pc->room);
			expect_slice(pc->line, cmd.text, cmd.text_len, pc->text);
		}
	}
}

static void test_unknown_names_the_word(void **state)
{
	struct command cmd;

	(void)state;
	assert_int_equal(command_parse("  frobnicate x y", &cmd), COMMAND_E_UNKNOWN);
	assert_int_equal(cmd.word_len, strlen("frobnicate"));
	assert_memory_equal(cmd.word, "frobnicate", cmd.word_len);
}

static void test_usage_strings(void **state)
{
	(void)state;
	assert_non_null(strstr(command_usage(COMMAND_SEND), "send ROOM MESSAGE"));
	assert_non_null(strstr(command_usage(COMMAND_JOIN), "join ROOM"));
	assert_string_equal(command_usage(COMMAND_NONE), "");
}

/* help's first column is the usage without its prefix, for every verb. */
static void test_synopsis(void **state)
{
	(void)state;
	assert_string_equal(command_synopsis(COMMAND_SEND), "send ROOM MESSAGE...");
	assert_string_equal(command_synopsis(COMMAND_NONE), "");
	for (int v = COMMAND_JOIN; v < COMMAND_NVERBS; v++) {
		const char *u = command_usage((enum command_verb)v);

		assert_true(strncmp(u, "usage: ", 7) == 0);
		assert_string_equal(command_synopsis((enum command_verb)v), u + 7);
	}
}

/* Any byte string parses to some status without crashing. */
static void test_odd_input(void **state)
{
	char line[64];
	struct command cmd;

	(void)state;
	for (int b = 1; b < 256; b++) {
		memset(line, 0, sizeof(line));
		snprintf(line, sizeof(line), "send r%c x%c", b, b);
		int st = command_parse(line, &cmd);
		assert_true(st >= COMMAND_E_USAGE && st <= COMMAND_EMPTY);
	}
}

/* The helpers tab completion uses. */
static void test_completion_helpers(void **state)
{
	int join = 0, topic = 0, leave = 0;
	const char *w;

	(void)state;
	for (size_t i = 0; (w = command_name_at(i)) != NULL; i++) {
		join |= strcmp(w, "join") == 0;
		topic |= strcmp(w, "topic") == 0;
		leave |= strcmp(w, "leave_chatroom") == 0;
	}
	assert_true(join && topic && leave);
	assert_int_equal(command_lookup("who", 3), COMMAND_WHO);
	assert_int_equal(command_lookup("whoever", 3), COMMAND_WHO); /* length counts */
	assert_int_equal(command_lookup("whoever", 7), COMMAND_NONE);
	assert_int_equal(command_lookup("WHO", 3), COMMAND_NONE);
	assert_true(command_takes_room(COMMAND_JOIN));
	assert_true(command_takes_room(COMMAND_TOPIC));
	assert_true(command_takes_room(COMMAND_HISTORY));
	assert_false(command_takes_room(COMMAND_MSG));
	assert_false(command_takes_room(COMMAND_ROOMS));
	assert_false(command_takes_room(COMMAND_NONE));
	assert_non_null(strstr(command_usage(COMMAND_TOPIC), "topic ROOM [TEXT"));
	assert_non_null(strstr(command_usage(COMMAND_MSG), "msg NAME MESSAGE"));
	assert_true(command_takes_room(COMMAND_ROOM));
	assert_false(command_takes_room(COMMAND_SAY));
	assert_true(command_slashed("  /join x"));
	assert_false(command_slashed("join /x"));
	assert_false(command_slashed(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_unknown_names_the_word),
		cmocka_unit_test(test_usage_strings),
		cmocka_unit_test(test_synopsis),
		cmocka_unit_test(test_odd_input),
		cmocka_unit_test(test_completion_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

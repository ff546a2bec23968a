/* test_codec.c - unit tests of the CHAT and ENTRY formatters (common/proto.h):
 * their bytes are those the daemon always sent, and the layout they return
 * says exactly where the name and the text lie in the frame (what the room's
 * history keeps and the store saves instead of searching the frame). Also
 * the protocol's named limits and texts. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "proto.h"

/* The name and text lie at the layout's offsets, between the keys the wire
 * puts around them, and the frame ends right after the text's blank line. */
static void assert_layout(const char *frame, size_t len, const struct proto_chat_layout *at,
			  const char *name, size_t name_len, const char *text, size_t text_len)
{
	assert_int_equal(at->name_len, name_len);
	assert_int_equal(at->text_len, text_len);
	assert_memory_equal(frame + at->name_off, name, name_len);
	assert_memory_equal(frame + at->text_off, text, text_len);
	assert_true(at->name_off >= 14);
	assert_memory_equal(frame + at->name_off - 14, "\nCLIENT_NAME: ", 14);
	assert_int_equal(at->text_off, at->name_off + name_len + 10);
	assert_memory_equal(frame + at->text_off - 10, "\nMESSAGE: ", 10);
	assert_int_equal(len, at->text_off + text_len + 2);
	assert_memory_equal(frame + len - 2, "\n\n", 2);
}

/* A CHAT frame as the daemon formatted it before the codec owned it. */
static size_t old_chat(char *dst, size_t cap, long ref, const char *name, const char *text)
{
	return (size_t)snprintf(dst, cap, "CHAT: %ld\nCLIENT_NAME: %s\nMESSAGE: %s\n\n", ref, name, text);
}

static void check_chat(long ref, const char *name, const char *text)
{
	char got[512], want[512];
	struct proto_chat_layout at;
	size_t len = proto_fmt_chat(got, sizeof(got), ref, name, text, strlen(text), &at);

	assert_int_equal(len, old_chat(want, sizeof(want), ref, name, text));
	assert_string_equal(got, want); /* NUL-terminated, byte for byte */
	assert_layout(got, len, &at, name, strlen(name), text, strlen(text));
	assert_true(len <= strlen(name) + strlen(text) + PROTO_CHAT_OVERHEAD);
}

static void test_chat_bytes_and_layout(void **state)
{
	(void)state;
	check_chat(1, "a", "hi");
	check_chat(42, "client1", "hello world");
	check_chat(PROTO_ID_MAX, "bob", "one\ntwo: 2\nthree");
	check_chat(7, "carol", "carol" PROTO_JOINED_TEXT);
	check_chat(3, "x", "");
	/* A name of the longest kind and a ref of every width. */
	for (long ref = 1; ref <= PROTO_ID_MAX / 10; ref *= 10)
		check_chat(ref, "0123456789012345678901234567890123456789012345678901234567890123",
			   "text");
}

/* A text passed with its length need not end at a NUL: the parser's field
 * does, but the formatter takes the length it is given. */
static void test_chat_text_by_length(void **state)
{
	char got[128];
	struct proto_chat_layout at;
	const char *text = "hello, and more after";
	size_t len;

	(void)state;
	len = proto_fmt_chat(got, sizeof(got), 5, "ann", text, 5, &at);
	assert_string_equal(got, "CHAT: 5\nCLIENT_NAME: ann\nMESSAGE: hello\n\n");
	assert_layout(got, len, &at, "ann", 3, "hello", 5);
}

/* Too small a buffer: nothing written, the length it needs returned (and
 * the layout of the frame that would be written). */
static void test_chat_too_small(void **state)
{
	char got[64];
	struct proto_chat_layout at;
	size_t need;

	(void)state;
	memset(got, 'z', sizeof(got));
	need = proto_fmt_chat(got, 20, 12, "dave", "a message", 9, &at);
	assert_int_equal(need, strlen("CHAT: 12\nCLIENT_NAME: dave\nMESSAGE: a message\n\n"));
	for (size_t i = 0; i < sizeof(got); i++)
		assert_int_equal(got[i], 'z');
	assert_int_equal(at.name_len, 4);
	/* Exactly its length: no room for the NUL, so still nothing. */
	assert_int_equal(proto_fmt_chat(got, need, 12, "dave", "a message", 9, NULL), need);
	assert_int_equal(got[0], 'z');
	assert_int_equal(proto_fmt_chat(got, need + 1, 12, "dave", "a message", 9, NULL), need);
	assert_memory_equal(got, "CHAT: 12\n", 9);
	assert_int_equal(got[need], '\0');
}

/* The message-making form: the same bytes, its exact length, the same
 * layout; proto_write_chat() is it without the layout. */
static void test_write_chat_at(void **state)
{
	const char *text = "line one\nline two";
	char want[256];
	struct proto_chat_layout at, fmt_at;
	size_t want_len = proto_fmt_chat(want, sizeof(want), 99, "erin", text, strlen(text), &fmt_at);
	struct msg *m = proto_write_chat_at(99, "erin", text, strlen(text), &at);
	struct msg *plain = proto_write_chat(99, "erin", text);

	(void)state;
	assert_non_null(m);
	assert_non_null(plain);
	assert_int_equal(m->len, want_len);
	assert_memory_equal(m->data, want, want_len);
	assert_int_equal(m->data[m->len], '\0');
	assert_memory_equal(&at, &fmt_at, sizeof(at));
	assert_layout(m->data, m->len, &at, "erin", 4, text, strlen(text));
	assert_int_equal(plain->len, want_len);
	assert_string_equal(plain->data, want);
	msg_unref(&m);
	msg_unref(&plain);
}

/* ENTRY frames: the same shape, the same bytes as before, a name given by
 * its length (a slice of a CHAT frame), and the bound on their size. */
static void test_history_entry(void **state)
{
	const char *t = "2026-12-07T14:15:16Z", *name = "frankly", *text = "one\ntwo";
	char got[256], want[256];
	struct proto_chat_layout at;
	size_t len;

	(void)state;
	len = proto_fmt_history_entry(got, sizeof(got), t, name, 5, text, strlen(text), &at);
	assert_int_equal(len, (size_t)snprintf(want, sizeof(want),
					       "ENTRY: %s\nCLIENT_NAME: %.*s\nMESSAGE: %s\n\n", t, 5,
					       name, text));
	assert_string_equal(got, want);
	assert_layout(got, len, &at, "frank", 5, text, strlen(text));
	/* The longest time the room may write still fits the overhead. */
	len = proto_fmt_history_entry(got, sizeof(got), "+123456789-12-31T23:59:59Z", "n", 1, "", 0,
				      &at);
	assert_true(strlen("+123456789-12-31T23:59:59Z") <= PROTO_TIME_MAX + 2);
	assert_true(len <= 1 + PROTO_CHAT_OVERHEAD + 2);
	assert_int_equal(proto_fmt_history_entry(got, 10, t, name, 5, text, 7, NULL),
			 strlen(want));
}

/* Parsed back as a client reads it, a frame's fields are the slices the
 * layout names. */
static void test_layout_matches_parser(void **state)
{
	const char *text = "first\n  second: not a field here\nthird";
	char frame[256];
	struct proto_chat_layout at;
	struct proto_parser p;
	struct proto_msg m;
	enum proto_err err;
	size_t len, consumed;
	int fatal;

	(void)state;
	len = proto_fmt_chat(frame, sizeof(frame), 31, "gina", text, strlen(text), &at);
	proto_parser_init(&p, PROTO_REPLIES, PROTO_DEFAULT_MAX_REQUEST);
	assert_int_equal(proto_parse(&p, frame, len, &m, &consumed, &err, &fatal), PROTO_MESSAGE);
	assert_int_equal(m.kind, PROTO_R_CHAT);
	assert_ptr_equal(m.field[PROTO_F_RCHAT_NAME], frame + at.name_off);
	assert_int_equal(m.len[PROTO_F_RCHAT_NAME], at.name_len);
	assert_ptr_equal(m.field[PROTO_F_RCHAT_TEXT], frame + at.text_off);
	assert_int_equal(m.len[PROTO_F_RCHAT_TEXT], at.text_len);
	assert_int_equal(consumed, len);
}

static void test_named_limits_and_texts(void **state)
{
	(void)state;
	assert_int_equal(PROTO_ID_MAX, 2147483647L);
	assert_string_equal(PROTO_TOPIC_NOTICE_TEXT, " set the topic: ");
	assert_string_equal(proto_kind_key(PROTO_CHAT), "CHAT");
	assert_string_equal(proto_kind_key(PROTO_LEAVE), "LEAVE_CHATROOM");
	assert_string_equal(proto_kind_key(PROTO_SET_TOPIC), "SET_TOPIC");
	assert_string_equal(proto_kind_key(PROTO_R_CHAT), "CHAT");
	assert_string_equal(proto_kind_key(PROTO_R_ENTRY), "ENTRY");
}

/* Sequence numbers (§7.7): the SEQ frame, the scan of numbered frames a
 * queue drops, the gap notice and the HISTORY_AFTER head. */
static void test_numbered_frames(void **state)
{
	char buf[256];
	size_t n = proto_fmt_seq(buf, sizeof(buf), 42);
	long ref = 0, seq = 0;
	struct msg *m;

	(void)state;
	n += proto_fmt_chat(buf + n, sizeof(buf) - n, 7, "bob", "hi\nthere", 8, NULL);
	n += proto_fmt_seq(buf + n, sizeof(buf) - n, 43);
	n += proto_fmt_chat(buf + n, sizeof(buf) - n, 7, "al", "x", 1, NULL);
	assert_true(proto_is_numbered(buf, n));
	assert_false(proto_is_numbered("CHAT: 7\n", 8));
	size_t first = proto_numbered_next(buf, n, &ref, &seq);
	assert_int_equal(ref, 7);
	assert_int_equal(seq, 42);
	assert_memory_equal(buf, "SEQ: 42\nCHAT: 7\nCLIENT_NAME: bob\nMESSAGE: hi\nthere\n\n", first);
	assert_int_equal(proto_numbered_next(buf + first, n - first, &ref, &seq), n - first);
	assert_int_equal(seq, 43);
	assert_int_equal(proto_numbered_next(buf, first - 1, &ref, &seq), 0); /* not whole */
	m = proto_write_gap(7, 5, 9);
	assert_string_equal(m->data, "GAP: 7\nFIRST: 5\nLAST: 9\n");
	msg_unref(&m);
	m = proto_write_history_after_head(7, 10, 12, 3);
	assert_string_equal(m->data, "HISTORY_AFTER: 7\nFIRST: 10\nLAST: 12\nCOUNT: 3\n");
	assert_true(m->len <= PROTO_HISTORY_AFTER_HEAD_MAX);
	msg_unref(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chat_bytes_and_layout),
		cmocka_unit_test(test_chat_text_by_length),
		cmocka_unit_test(test_chat_too_small),
		cmocka_unit_test(test_write_chat_at),
		cmocka_unit_test(test_history_entry),
		cmocka_unit_test(test_layout_matches_parser),
		cmocka_unit_test(test_named_limits_and_texts),
		cmocka_unit_test(test_numbered_frames),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

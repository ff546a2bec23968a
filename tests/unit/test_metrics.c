/* test_metrics.c - the exposition's label escaping and rendering, and the
 * per-room series' lifetime (server/metrics.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "metrics.h"

static void expect_escaped(const char *in, const char *want)
{
	char out[128];

	assert_int_equal(metrics_escape_label(in, out, sizeof out), strlen(want));
	assert_string_equal(out, want);
}

/* Backslash, double quote and newline are escaped; every other byte
 * (spaces, UTF-8, '}', '=' and ',') goes as it is. */
static void test_escape(void **state)
{
	(void)state;
	expect_escaped("lobby", "lobby");
	expect_escaped("", "");
	expect_escaped("a room", "a room");
	expect_escaped("a\\b", "a\\\\b");
	expect_escaped("say \"hi\"", "say \\\"hi\\\"");
	expect_escaped("two\nlines", "two\\nlines");
	expect_escaped("\\\"\n", "\\\\\\\"\\n");
	expect_escaped("caf\xc3\xa9 {x=1,y}", "caf\xc3\xa9 {x=1,y}");
}

/* Cut short, the output stays NUL-terminated, never ends in half an
 * escape, and the return value is still the whole length. */
static void test_escape_short(void **state)
{
	char out[4];

	(void)state;
	assert_int_equal(metrics_escape_label("abcdef", out, sizeof out), 6);
	assert_string_equal(out, "abc");
	assert_int_equal(metrics_escape_label("ab\"c", out, sizeof out), 5);
	assert_string_equal(out, "ab");
	assert_int_equal(metrics_escape_label("x", out, 0), 1);
}

static int has(const char *text, const char *line)
{
	return strstr(text, line) != NULL;
}

/* A room's series are listed while it is open, escaped, and go when it is
 * unlisted; its counters stay readable through the room's own reference. */
static void test_room_series(void **state)
{
	struct room_metrics *rm = metrics_room_open("a \"b\"");
	size_t len;
	char *text;

	(void)state;
	assert_non_null(rm);
	metrics_add_own(&rm->messages, 3);
	metrics_add_own(&rm->bytes, 120);
	metrics_set(&rm->members, 2);
	metrics_room_cut_off(rm);
	text = metrics_render(&len);
	assert_non_null(text);
	assert_int_equal(strlen(text), len);
	assert_true(has(text, "# TYPE roomd_room_messages_total counter\n"));
	assert_true(has(text, "roomd_room_messages_total{room=\"a \\\"b\\\"\"} 3\n"));
	assert_true(has(text, "roomd_room_bytes_total{room=\"a \\\"b\\\"\"} 120\n"));
	assert_true(has(text, "roomd_room_members{room=\"a \\\"b\\\"\"} 2\n"));
	assert_true(has(text, "roomd_room_slow_consumers_cut_off_total{room=\"a \\\"b\\\"\"} 1\n"));
	assert_true(has(text, "roomd_rooms 1\n"));
	free(text);
	metrics_room_unlist(rm);
	metrics_room_unlist(rm); /* idempotent */
	text = metrics_render(&len);
	assert_non_null(text);
	assert_false(has(text, "room=\""));
	assert_true(has(text, "roomd_rooms 0\n"));
	free(text);
	assert_int_equal(atomic_load(&rm->messages), 3);
	metrics_room_close(rm);
}

/* Server-wide counters and the commit histogram (cumulative buckets). */
static void test_server(void **state)
{
	size_t len;
	char *text;

	(void)state;
	metrics_error(PROTO_E_NOT_MEMBER);
	metrics_error((enum proto_err)99); /* out of range: ignored */
	metrics_refusal(METRICS_REFUSE_PER_IP);
	metrics_store_commit(2000000, 1);    /* 2 ms */
	metrics_store_commit(7000000000, 0); /* 7 s: +Inf only */
	text = metrics_render(&len);
	assert_non_null(text);
	assert_true(has(text, "roomd_errors_total{code=\"3\"} 1\n"));
	assert_true(has(text, "roomd_refusals_total{reason=\"max_clients_per_ip\"} 1\n"));
	assert_true(has(text, "roomd_store_commit_seconds_bucket{le=\"0.001\"} 0\n"));
	assert_true(has(text, "roomd_store_commit_seconds_bucket{le=\"0.0025\"} 1\n"));
	assert_true(has(text, "roomd_store_commit_seconds_bucket{le=\"5\"} 1\n"));
	assert_true(has(text, "roomd_store_commit_seconds_bucket{le=\"+Inf\"} 2\n"));
	assert_true(has(text, "roomd_store_commit_seconds_count 2\n"));
	assert_true(has(text, "roomd_store_commit_seconds_sum 7.002000000\n"));
	assert_true(has(text, "roomd_store_commit_failures_total 1\n"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_escape_short),
		cmocka_unit_test(test_room_series),
		cmocka_unit_test(test_server),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

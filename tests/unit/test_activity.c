/* test_activity.c - roomc's pure daily-driver logic: mentions, the activity
 * prompt, the reconnect back-off schedule, and the catch-up plan. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "activity.h"
#include "backoff.h"
#include "catchup.h"

static void test_mentions(void **state)
{
	(void)state;
	assert_true(activity_mentions("hey alice, look", "alice"));
	assert_true(activity_mentions("ALICE!", "alice"));
	assert_true(activity_mentions("alice", "alice"));
	assert_false(activity_mentions("malice aforethought", "alice"));
	assert_false(activity_mentions("alice_b is here", "alice"));
	assert_false(activity_mentions("alices", "alice"));
	assert_false(activity_mentions("anything", ""));
	assert_true(activity_mentions("cc: \"Client 1\"", "Client 1"));
}

static void test_prompt(void **state)
{
	char buf[128];
	struct activity_item items[] = {
		{ "dev", 3, 0 }, { "quiet", 0, 0 }, { "ops", 1, 1 },
	};

	(void)state;
	assert_string_equal(activity_prompt(buf, sizeof(buf), NULL, NULL, 0), "> ");
	assert_string_equal(activity_prompt(buf, sizeof(buf), "lobby", NULL, 0), "lobby> ");
	assert_string_equal(activity_prompt(buf, sizeof(buf), "lobby", items, 3), "lobby [dev:3 ops:1!]> ");
	assert_string_equal(activity_prompt(buf, sizeof(buf), NULL, items, 1), "[dev:3]> ");
	assert_string_equal(activity_prompt(buf, sizeof(buf), "lo\x1b[2Jbby", NULL, 0), "lo?[2Jbby> ");
	/* Cut: never past cap, always ending in "> ". */
	for (size_t cap = 8; cap < 40; cap++) {
		activity_prompt(buf, cap, "lobby", items, 3);
		assert_true(strlen(buf) < cap);
		assert_string_equal(buf + strlen(buf) - 2, "> ");
	}
}

static void test_backoff(void **state)
{
	static const unsigned steps[] = { 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000 };

	(void)state;
	for (unsigned i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		assert_int_equal(backoff_step_ms(i), steps[i]);
	assert_int_equal(backoff_step_ms(1000), BACKOFF_CAP_MS);
	assert_int_equal(backoff_step_ms(~0u), BACKOFF_CAP_MS);
	for (unsigned i = 0; i < 12; i++) {
		unsigned step = backoff_step_ms(i);
		for (unsigned r = 0; r < 100000; r += 997) {
			unsigned d = backoff_delay_ms(i, r * 7919u);
			assert_true(d >= step / 2 && d <= step);
		}
		assert_int_equal(backoff_delay_ms(i, 0), step / 2);
		assert_int_equal(backoff_delay_ms(i, step / 2), step);
	}
}

#define E(n, t) { n, t }

static void test_catchup(void **state)
{
	const struct catchup_entry hist[] = {
		E("bob", "a"), E("bob", "ok"), E("carol", "b"), E("bob", "ok"),
		E("bob", "missed 1"), E("carol", "missed 2"), E("bob", "live 1"),
	};
	const struct catchup_entry seen[] = { E("carol", "b"), E("bob", "ok") };
	const struct catchup_entry ok_only[] = { E("bob", "ok") };
	const struct catchup_entry live[] = { E("bob", "live 1") };
	const struct catchup_entry last_before[] = { E("carol", "missed 2") };
	const struct catchup_entry gone[] = { E("dave", "long ago") };
	struct catchup_plan p;

	(void)state;
	/* Two seen messages place us after the second "ok", not the first. */
	p = catchup_plan(hist, 7, seen, 2, live, 1);
	assert_int_equal(p.first, 4);
	assert_int_equal(p.end, 6);
	assert_false(p.gap);
	/* One seen "ok": the newest match. */
	p = catchup_plan(hist, 7, ok_only, 1, NULL, 0);
	assert_int_equal(p.first, 4);
	assert_int_equal(p.end, 7);
	/* Nothing missed: the last seen is just before the live ones. */
	p = catchup_plan(hist, 7, last_before, 1, live, 1);
	assert_int_equal(p.first, 6);
	assert_int_equal(p.end, 6);
	/* The last seen is no longer kept: a gap, all before the live ones. */
	p = catchup_plan(hist, 7, gone, 1, live, 1);
	assert_true(p.gap);
	assert_int_equal(p.first, 0);
	assert_int_equal(p.end, 6);
	/* Nothing seen (empty history at the join): all of it was missed. */
	p = catchup_plan(hist, 7, NULL, 0, live, 1);
	assert_false(p.gap);
	assert_int_equal(p.first, 0);
	assert_int_equal(p.end, 6);
	/* An empty history. */
	p = catchup_plan(NULL, 0, seen, 2, live, 1);
	assert_int_equal(p.first, 0);
	assert_int_equal(p.end, 0);
	assert_true(p.gap);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mentions),
		cmocka_unit_test(test_prompt),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_catchup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

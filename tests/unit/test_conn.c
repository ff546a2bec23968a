/* test_conn.c - the per-connection token bucket and the throttle list. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "config.h"
#include "conn.h"

static void bucket_init(struct conn *c, const struct config *cfg, uint64_t now)
{
	memset(c, 0, sizeof(*c));
	c->tokens = cfg->burst * 1000;
	c->refill_ms = now;
}

static void test_burst_then_rate(void **state)
{
	struct config cfg;
	struct conn c;
	uint64_t t = 1000000;
	int passed = 0;

	(void)state;
	config_defaults(&cfg);
	cfg.rate = 5;
	cfg.burst = 3;
	bucket_init(&c, &cfg, t);
	/* burst requests pass, the next one runs into debt: 200 ms at 5/s. */
	while (conn_take_token(&c, &cfg, t) == 0)
		passed++;
	assert_int_equal(passed, 3);
	assert_int_equal(c.tokens, -1000);
	/* Not repaid after 100 ms ... */
	assert_int_equal(conn_take_token(&c, &cfg, t + 100), 300);
	/* ... a steady client at exactly the rate is never held longer. */
	c.tokens = 0;
	c.refill_ms = t;
	for (int i = 1; i <= 10; i++)
		assert_int_equal(conn_take_token(&c, &cfg, t + (uint64_t)i * 200), 0);
}

static void test_refill_capped(void **state)
{
	struct config cfg;
	struct conn c;
	uint64_t t = 5000;
	int passed = 0;

	(void)state;
	config_defaults(&cfg);
	cfg.rate = 100;
	cfg.burst = 4;
	bucket_init(&c, &cfg, t);
	/* An hour of silence saves up no more than the burst. */
	while (conn_take_token(&c, &cfg, t + 3600 * 1000) == 0)
		passed++;
	assert_int_equal(passed, 4);
}

static void test_throttle_list(void **state)
{
	struct throttle_list l = { NULL };
	struct conn a, b, c;
	uint64_t now;
	struct conn *due;

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(&c, 0, sizeof(c));
	throttle_add(&l, &a, 0);
	throttle_add(&l, &b, 100000);
	throttle_add(&l, &c, 100000);
	throttle_add(&l, &a, 100000); /* already throttled: unchanged */
	now = conn_clock_ms();
	assert_true(throttle_timeout(&l, now, 500) == 0);
	due = throttle_take_due(&l, now);
	assert_ptr_equal(due, &a);
	assert_null(due->next_throttled);
	assert_false(a.throttled);
	assert_true(throttle_timeout(&l, now, 500) == 500);
	assert_true(throttle_timeout(&l, now, -1) > 90000);
	throttle_remove(&l, &c);
	assert_false(c.throttled);
	assert_ptr_equal(l.head, &b);
	assert_null(throttle_take_due(&l, now));
	due = throttle_take_due(&l, now + 200000);
	assert_ptr_equal(due, &b);
	assert_null(l.head);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_then_rate),
		cmocka_unit_test(test_refill_capped),
		cmocka_unit_test(test_throttle_list),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

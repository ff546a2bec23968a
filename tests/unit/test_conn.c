/* test_conn.c - the per-connection token bucket, the throttle list, and
 * conn_process charging the address's shared bucket: a second connection
 * of an address in debt handles nothing until the debt is repaid. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "iptable.h"

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

static int handled;

static void count_request(void *arg, struct conn *c, const struct proto_msg *m)
{
	(void)arg;
	(void)c;
	(void)m;
	handled++;
}

static void ignore_reject(void *arg, struct conn *c, enum proto_err err, int fatal)
{
	(void)arg;
	(void)c;
	(void)err;
	(void)fatal;
}

/* A conn over one end of a socketpair, counted for 10.0.0.1, with n HELO
 * requests buffered as if read. */
static struct conn *helo_conn(struct iptable *t, const struct config *cfg, int n)
{
	int sv[2];
	struct conn *c;
	int log_it;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[1]);
	c = conn_create(sv[0], "10.0.0.1", cfg);
	assert_non_null(c);
	assert_int_equal(iptable_open(t, "10.0.0.1", conn_clock_ms(), &c->ipe, &log_it), IP_OK);
	c->ipt = t;
	for (int i = 0; i < n; i++) {
		assert_true(buf_reserve(&c->in, 16) >= 16);
		memcpy(c->in.data + c->in.len, "HELO x\n", 7);
		c->in.len += 7;
	}
	return c;
}

static void test_address_bucket_shared(void **state)
{
	struct config cfg;
	struct iptable *t;
	struct throttle_list l = { NULL };
	const struct conn_handler h = { count_request, ignore_reject, NULL, NULL, NULL };
	struct conn *a, *b;

	(void)state;
	config_defaults(&cfg);
	cfg.rate = 1000;        /* the connection's own bucket is no limit here */
	cfg.burst = 1000;
	cfg.rate_per_ip = 1;    /* the address's is: 5 at once, then 1 a second */
	cfg.burst_per_ip = 5;
	t = iptable_create(&cfg);
	assert_non_null(t);
	a = helo_conn(t, &cfg, 8);
	handled = 0;
	conn_process(a, &cfg, &l, &h);
	/* The sixth request runs into debt: it is handled, the next waits. */
	assert_int_equal(handled, 6);
	assert_true(a->throttled);
	/* A fresh connection of the same address brings no fresh burst. */
	b = helo_conn(t, &cfg, 3);
	conn_process(b, &cfg, &l, &h);
	assert_int_equal(handled, 6);
	assert_true(b->throttled);
	assert_int_equal(b->in.len, 3 * 7); /* kept, not dropped */
	assert_true(b->resume_ms > conn_clock_ms() + 500);
	throttle_remove(&l, a);
	throttle_remove(&l, b);
	conn_destroy(a);
	conn_destroy(b);
	/* Uncounted on destruction (the entry stays, idle, for its debt). */
	assert_int_equal(iptable_count(t, "10.0.0.1"), 0);
	assert_int_equal(iptable_entries(t), 1);
	iptable_destroy(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_then_rate),
		cmocka_unit_test(test_refill_capped),
		cmocka_unit_test(test_throttle_list),
		cmocka_unit_test(test_address_bucket_shared),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

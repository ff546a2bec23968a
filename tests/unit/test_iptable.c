/* test_iptable.c - the per-address table: connection counts against
 * max_clients_per_ip, the shared buckets (requests, connections, room
 * creations, refused capability checks) and that they survive a reconnect,
 * IPv6 grouping by /64, idle entries freed once settled and bounded, and
 * use from several threads at once. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>

#include "config.h"
#include "iptable.h"

static struct config cfg;

static int setup(void **state)
{
	(void)state;
	config_defaults(&cfg);
	cfg.max_clients_per_ip = 3;
	cfg.rate_per_ip = 100;
	cfg.burst_per_ip = 10;
	cfg.connect_rate_per_ip = 10;
	cfg.connect_burst_per_ip = 5;
	cfg.room_create_rate = 6;
	return 0;
}

static enum ip_verdict open_at(struct iptable *t, const char *ip, uint64_t now, struct ip_entry **e)
{
	int log_it;

	return iptable_open(t, ip, now, e, &log_it);
}

static void test_counts(void **state)
{
	struct iptable *t = iptable_create(&cfg);
	struct ip_entry *a[3], *b, *x;

	(void)state;
	assert_non_null(t);
	for (int i = 0; i < 3; i++)
		assert_int_equal(open_at(t, "10.0.0.1", 1000, &a[i]), IP_OK);
	assert_int_equal(iptable_count(t, "10.0.0.1"), 3);
	/* The fourth from that address is one too many; another is fine. */
	assert_int_equal(open_at(t, "10.0.0.1", 1000, &x), IP_TOO_MANY);
	assert_int_equal(open_at(t, "10.0.0.2", 1000, &b), IP_OK);
	assert_ptr_equal(a[0], a[1]);
	assert_ptr_not_equal(a[0], b);
	iptable_close(t, a[0], 1000);
	assert_int_equal(iptable_count(t, "10.0.0.1"), 2);
	iptable_close(t, a[1], 1000);
	iptable_close(t, a[2], 1000);
	iptable_close(t, b, 1000);
	assert_int_equal(iptable_count(t, "10.0.0.1"), 0);
	/* Long after, with every bucket full again, nothing is remembered. */
	assert_int_equal(open_at(t, "10.0.0.3", 100000, &x), IP_OK);
	iptable_close(t, x, 200000);
	assert_int_equal(iptable_entries(t), 0);
	iptable_destroy(t);
}

static void test_ipv6_grouped_by_64(void **state)
{
	struct iptable *t = iptable_create(&cfg);
	struct ip_entry *e[4], *x;

	(void)state;
	assert_int_equal(open_at(t, "2001:db8::1", 0, &e[0]), IP_OK);
	assert_int_equal(open_at(t, "2001:db8::ffff:2", 0, &e[1]), IP_OK);
	assert_int_equal(open_at(t, "2001:db8:0:1::1", 0, &e[2]), IP_OK);
	assert_int_equal(open_at(t, "::ffff:10.0.0.1", 0, &e[3]), IP_OK);
	assert_ptr_equal(e[0], e[1]);     /* one /64 */
	assert_ptr_not_equal(e[0], e[2]); /* the next /64 */
	assert_int_equal(iptable_count(t, "2001:db8::abcd"), 2);
	assert_int_equal(iptable_count(t, "::ffff:10.0.0.2"), 0); /* mapped IPv4: per address */
	/* ...and the same entry as the plain IPv4 address: one client from a
	 * dual-stack socket and from an IPv4 one is counted once. */
	assert_int_equal(iptable_count(t, "10.0.0.1"), 1);
	assert_int_equal(open_at(t, "10.0.0.1", 0, &x), IP_OK);
	assert_ptr_equal(x, e[3]);
	iptable_close(t, x, 0);
	/* The /64 is the key, whatever the spelling of the address. */
	assert_int_equal(iptable_count(t, "2001:0db8:0000:0000:1234:5678:9abc:def0"), 2);
	assert_int_equal(iptable_count(t, "2001:db8:0:1:ffff::"), 1);
	for (int i = 0; i < 4; i++)
		iptable_close(t, e[i], 0);
	iptable_destroy(t);
}

static void test_connect_rate(void **state)
{
	struct iptable *t = iptable_create(&cfg);
	struct ip_entry *e;
	int log_it;

	(void)state;
	/* Burst 5, then 10 a second. */
	for (int i = 0; i < 5; i++) {
		assert_int_equal(open_at(t, "10.0.0.1", 0, &e), IP_OK);
		iptable_close(t, e, 0);
	}
	assert_int_equal(iptable_open(t, "10.0.0.1", 0, &e, &log_it), IP_TOO_FAST);
	assert_int_equal(log_it, 1);
	assert_int_equal(iptable_open(t, "10.0.0.1", 50, &e, &log_it), IP_TOO_FAST);
	assert_int_equal(log_it, 0); /* once per episode */
	assert_int_equal(open_at(t, "10.0.0.1", 100, &e), IP_OK);
	iptable_close(t, e, 100);
	assert_int_equal(open_at(t, "10.0.0.1", 150, &e), IP_TOO_FAST);
	iptable_destroy(t);
}

static void test_requests_shared_across_reconnects(void **state)
{
	struct iptable *t = iptable_create(&cfg);
	struct ip_entry *e, *f;
	long wait = 0;
	int n = 0;

	(void)state;
	assert_int_equal(open_at(t, "10.0.0.1", 0, &e), IP_OK);
	assert_int_equal(iptable_request_wait(t, e, 0), 0);
	while ((wait = iptable_request_charge(t, e, 0)) == 0)
		n++;
	assert_int_equal(n, 10); /* burst 10: the tenth leaves nothing, the 11th a debt */
	assert_int_equal(wait, 10); /* one request at 100/s */
	assert_int_equal(iptable_request_wait(t, e, 5), 5);
	/* Reconnecting brings no fresh burst: the debt is the address's. */
	iptable_close(t, e, 5);
	assert_int_equal(iptable_entries(t), 1);
	assert_int_equal(open_at(t, "10.0.0.1", 5, &f), IP_OK);
	assert_int_equal(iptable_request_wait(t, f, 5), 5);
	assert_int_equal(iptable_request_wait(t, f, 10), 0);
	assert_int_equal(iptable_request_charge(t, f, 10), 10);
	/* Sustained: one request per 10 ms, whatever the connection. */
	for (uint64_t now = 20; now < 1000; now += 10)
		assert_int_equal(iptable_request_charge(t, f, now), 10);
	iptable_close(t, f, 1000);
	iptable_destroy(t);
}

static void test_room_creation(void **state)
{
	struct iptable *t = iptable_create(&cfg);
	struct ip_entry *e;

	(void)state;
	assert_int_equal(open_at(t, "10.0.0.1", 0, &e), IP_OK);
	for (int i = 0; i < 6; i++)
		assert_int_equal(iptable_create_room(t, e, 0), 0);
	assert_int_equal(iptable_create_room(t, e, 0), -1);
	assert_int_equal(iptable_create_room(t, e, 9999), -1); /* 6 a minute: one per 10 s */
	assert_int_equal(iptable_create_room(t, e, 10000), 0);
	iptable_close(t, e, 10000);
	iptable_destroy(t);
}

static void test_capability_throttle(void **state)
{
	struct iptable *t = iptable_create(&cfg);
	struct ip_entry *e;
	int log_it;

	(void)state;
	assert_int_equal(open_at(t, "10.0.0.1", 0, &e), IP_OK);
	for (int i = 0; i < IPTABLE_CAP_BURST; i++) {
		assert_int_equal(iptable_cap_allowed(t, e, 0, &log_it), 1);
		iptable_cap_refused(t, e, 0);
	}
	assert_int_equal(iptable_cap_allowed(t, e, 0, &log_it), 0);
	assert_int_equal(log_it, 1);
	assert_int_equal(iptable_cap_allowed(t, e, 1000, &log_it), 0);
	assert_int_equal(log_it, 0); /* one log line per episode */
	/* IPTABLE_CAP_PER_MIN a minute: one more after 60 s / that. */
	assert_int_equal(iptable_cap_allowed(t, e, 60000 / IPTABLE_CAP_PER_MIN, &log_it), 1);
	iptable_cap_refused(t, e, 60000 / IPTABLE_CAP_PER_MIN);
	assert_int_equal(iptable_cap_allowed(t, e, 60000 / IPTABLE_CAP_PER_MIN + 1, &log_it), 0);
	assert_int_equal(log_it, 0);
	/* The throttling survives a reconnect. */
	iptable_close(t, e, 13000);
	assert_int_equal(open_at(t, "10.0.0.1", 13000, &e), IP_OK);
	assert_int_equal(iptable_cap_allowed(t, e, 13000, &log_it), 0);
	/* Successes cost nothing; a full bucket ends the episode. */
	assert_int_equal(iptable_cap_allowed(t, e, 200000, &log_it), 1);
	for (int i = 0; i < IPTABLE_CAP_BURST; i++)
		iptable_cap_refused(t, e, 200000);
	assert_int_equal(iptable_cap_allowed(t, e, 200000, &log_it), 0);
	assert_int_equal(log_it, 1);
	iptable_close(t, e, 200000);
	iptable_destroy(t);
}

static void test_idle_bounded(void **state)
{
	struct iptable *t = iptable_create(&cfg);
	struct ip_entry *e;
	char ip[32];

	(void)state;
	/* Each address leaves a debt behind: kept, but at most IPTABLE_IDLE_MAX. */
	for (int i = 0; i < IPTABLE_IDLE_MAX + 5000; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		assert_int_equal(open_at(t, ip, 1000, &e), IP_OK);
		while (iptable_request_charge(t, e, 1000) == 0)
			;
		iptable_close(t, e, 1000);
		assert_true(iptable_entries(t) <= IPTABLE_IDLE_MAX);
	}
	assert_int_equal(iptable_entries(t), IPTABLE_IDLE_MAX);
	/* Once settled they go, a few per operation. */
	for (int i = 0; i < IPTABLE_IDLE_MAX; i++) {
		uint64_t now = 1000000 + (uint64_t)i * 1000;
		assert_int_equal(open_at(t, "10.255.255.255", now, &e), IP_OK);
		iptable_close(t, e, now + 1000);
	}
	assert_int_equal(iptable_entries(t), 0);
	iptable_destroy(t);
}

struct worker {
	struct iptable *t;
	const char *ip;
};

static void *hammer(void *arg)
{
	struct worker *w = arg;
	struct ip_entry *e;
	int log_it;

	for (uint64_t i = 0; i < 20000; i++) {
		if (iptable_open(w->t, w->ip, i, &e, &log_it) != IP_OK)
			continue;
		iptable_request_wait(w->t, e, i);
		iptable_request_charge(w->t, e, i);
		iptable_cap_allowed(w->t, e, i, &log_it);
		iptable_close(w->t, e, i);
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct config c = cfg;
	struct iptable *t;
	pthread_t th[4];
	struct worker w[4] = { { NULL, "10.0.0.1" }, { NULL, "10.0.0.1" }, { NULL, "10.0.0.2" },
			       { NULL, "::1" } };

	(void)state;
	c.connect_rate_per_ip = 1000000;
	c.connect_burst_per_ip = 1000000;
	c.max_clients_per_ip = 2;
	t = iptable_create(&c);
	for (int i = 0; i < 4; i++) {
		w[i].t = t;
		assert_int_equal(pthread_create(&th[i], NULL, hammer, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(iptable_count(t, "10.0.0.1"), 0);
	iptable_destroy(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_counts, setup),
		cmocka_unit_test_setup(test_ipv6_grouped_by_64, setup),
		cmocka_unit_test_setup(test_connect_rate, setup),
		cmocka_unit_test_setup(test_requests_shared_across_reconnects, setup),
		cmocka_unit_test_setup(test_room_creation, setup),
		cmocka_unit_test_setup(test_capability_throttle, setup),
		cmocka_unit_test_setup(test_idle_bounded, setup),
		cmocka_unit_test_setup(test_threads, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

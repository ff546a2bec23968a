/* test_iptable.c - per-address connection counts: counting up and down,
 * independence of addresses, entries gone at zero, many addresses. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "iptable.h"

static void test_counts(void **state)
{
	struct iptable *t = iptable_create();

	(void)state;
	assert_non_null(t);
	assert_int_equal(iptable_add(t, "10.0.0.1", 1), 1);
	assert_int_equal(iptable_add(t, "10.0.0.1", 1), 2);
	assert_int_equal(iptable_add(t, "10.0.0.2", 1), 1);
	assert_int_equal(iptable_add(t, "::1", 1), 1);
	assert_int_equal(iptable_add(t, "10.0.0.1", -1), 1);
	assert_int_equal(iptable_add(t, "10.0.0.1", -1), 0);
	/* Gone at zero: a decrement of an unknown address stays at zero. */
	assert_int_equal(iptable_add(t, "10.0.0.1", -1), 0);
	assert_int_equal(iptable_add(t, "10.0.0.1", 1), 1);
	assert_int_equal(iptable_add(t, "10.0.0.2", -1), 0);
	iptable_destroy(t);
}

static void test_many_addresses(void **state)
{
	struct iptable *t = iptable_create();
	char ip[32];

	(void)state;
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < 5000; i++) {
			snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
			assert_int_equal(iptable_add(t, ip, 1), round + 1);
		}
	for (int i = 0; i < 5000; i += 2) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		assert_int_equal(iptable_add(t, ip, -3), 0);
	}
	for (int i = 1; i < 5000; i += 2) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		assert_int_equal(iptable_add(t, ip, 1), 4);
	}
	iptable_destroy(t); /* frees the survivors: ASan checks */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_many_addresses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_registry.c - the registry of rooms and memberships: lookups, limits,
 * name uniqueness per room, JOIN_ID properties, growth and removal. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "registry.h"

/* Rooms are opaque to the registry: any distinct pointer will do. */
static char fake_room_a, fake_room_b;

static int setup(void **state)
{
	struct config *cfg = calloc(1, sizeof(*cfg));

	config_defaults(cfg);
	cfg->max_rooms = 3;
	cfg->max_members = 4;
	*state = cfg;
	return 0;
}

static int teardown(void **state)
{
	free(*state);
	return 0;
}

static int add_room(struct registry *reg, const char *name, long ref, unsigned port,
		    long max_members, struct room *room)
{
	struct room_info info = { .ref = ref, .port = port, .max_members = max_members,
				  .history = -1, .topic_change = -1, .room = room };

	snprintf(info.name, sizeof(info.name), "%s", name);
	return registry_add_room(reg, &info);
}

static struct registry *with_two_rooms(const struct config *cfg)
{
	struct registry *reg = registry_create(cfg);

	assert_non_null(reg);
	assert_int_equal(add_room(reg, "lobby", 1, 9001, 0, (struct room *)&fake_room_a), 0);
	assert_int_equal(add_room(reg, "dev", 7, 9002, 2, (struct room *)&fake_room_b), 0);
	return reg;
}

static void test_rooms_lookup(void **state)
{
	struct registry *reg = with_two_rooms(*state);
	struct room_info info;

	assert_int_equal(registry_find_room(reg, "dev", &info), 0);
	assert_string_equal(info.name, "dev");
	assert_int_equal(info.ref, 7);
	assert_int_equal(info.port, 9002);
	assert_int_equal(info.max_members, 2);
	assert_ptr_equal(info.room, &fake_room_b);
	assert_int_equal(registry_find_ref(reg, 1, &info), 0);
	assert_string_equal(info.name, "lobby");
	assert_int_equal(info.max_members, 4); /* 0: the server default */
	assert_int_equal(registry_find_room(reg, "Dev", &info), -ENOENT); /* case matters */
	assert_int_equal(registry_find_ref(reg, 2, &info), -ENOENT);
	assert_int_equal(registry_room_count(reg), 2);
	assert_int_equal(registry_next_ref(reg), 8); /* above every ref */
	registry_destroy(reg);
}

static void test_rooms_unique_and_bounded(void **state)
{
	struct registry *reg = with_two_rooms(*state);

	assert_int_equal(add_room(reg, "lobby", 9, 0, 0, NULL), -EEXIST);
	assert_int_equal(add_room(reg, "other", 7, 0, 0, NULL), -EEXIST);
	assert_int_equal(add_room(reg, "third", 8, 0, 0, (struct room *)&fake_room_a), 0);
	assert_int_equal(add_room(reg, "fourth", 9, 0, 0, (struct room *)&fake_room_b), -ENOSPC); /* max_rooms 3 */
	/* A dormant room (from the store) has no thread: max_rooms does not
	 * bound it, but waking it does. */
	assert_int_equal(add_room(reg, "fourth", 9, 0, 0, NULL), 0);
	assert_int_equal(registry_room_count(reg), 3);
	assert_int_equal(registry_room_count_all(reg), 4);
	assert_int_equal(registry_next_ref(reg), 10);
	assert_int_equal(registry_set_room(reg, 9, (struct room *)&fake_room_a, 9009), -ENOSPC);
	registry_destroy(reg);
}

static void test_join_and_member(void **state)
{
	struct registry *reg = with_two_rooms(*state);
	struct member_info mi;
	struct room_info info;
	long a, b;

	assert_int_equal(registry_join(reg, 1, "alice", 100, -1, &a), PROTO_OK);
	assert_int_equal(registry_join(reg, 1, "bob", 101, -1, &b), PROTO_OK);
	assert_true(a > 0 && a <= 0x7fffffffL);
	assert_true(b > 0 && b != a);
	assert_int_equal(registry_member(reg, a, &mi), 0);
	assert_int_equal(mi.join_id, a);
	assert_int_equal(mi.ref, 1);
	assert_int_equal(mi.conn_id, 100);
	assert_string_equal(mi.name, "alice");
	assert_int_equal(registry_find_ref(reg, 1, &info), 0);
	assert_int_equal(info.members, 2);
	registry_destroy(reg);
}

static void test_join_errors(void **state)
{
	struct registry *reg = with_two_rooms(*state);
	long id;

	assert_int_equal(registry_join(reg, 99, "alice", 1, -1, &id), PROTO_E_NO_ROOM);
	assert_int_equal(registry_join(reg, 7, "alice", 1, -1, &id), PROTO_OK);
	/* The same name in the same room is taken, whoever asks. */
	assert_int_equal(registry_join(reg, 7, "alice", 2, -1, &id), PROTO_E_NAME_IN_USE);
	/* ... but free in another room. */
	assert_int_equal(registry_join(reg, 1, "alice", 2, -1, &id), PROTO_OK);
	assert_int_equal(registry_join(reg, 7, "bob", 3, -1, &id), PROTO_OK);
	assert_int_equal(registry_join(reg, 7, "carol", 4, -1, &id), PROTO_E_ROOM_FULL); /* max 2 */
	registry_destroy(reg);
}

static void test_leave_frees_name_and_seat(void **state)
{
	struct registry *reg = with_two_rooms(*state);
	struct member_info mi;
	struct room_info info;
	long a, b, c;

	assert_int_equal(registry_join(reg, 7, "alice", 1, -1, &a), PROTO_OK);
	assert_int_equal(registry_join(reg, 7, "bob", 2, -1, &b), PROTO_OK);
	assert_int_equal(registry_leave(reg, a), 0);
	assert_int_equal(registry_leave(reg, a), -ENOENT);
	assert_int_equal(registry_member(reg, a, &mi), -ENOENT);
	assert_int_equal(registry_find_ref(reg, 7, &info), 0);
	assert_int_equal(info.members, 1);
	assert_int_equal(registry_join(reg, 7, "alice", 3, -1, &c), PROTO_OK);
	assert_int_equal(registry_member(reg, b, &mi), 0);
	assert_string_equal(mi.name, "bob");
	registry_destroy(reg);
}

/* Thousands of members: the tables grow, every id stays unique and
 * findable, and removal in any order keeps the others intact. */
static void test_many_members(void **state)
{
	struct config *cfg = *state;
	enum { N = 5000 };
	long *ids = calloc(N, sizeof(*ids));
	struct registry *reg;
	struct member_info mi;
	char name[32];

	cfg->max_members = N;
	reg = registry_create(cfg);
	assert_int_equal(add_room(reg, "big", 1, 0, 0, NULL), 0);
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "user%d", i);
		assert_int_equal(registry_join(reg, 1, name, (uint64_t)i, -1, &ids[i]), PROTO_OK);
	}
	for (int i = 0; i < N; i += 2)
		assert_int_equal(registry_leave(reg, ids[i]), 0);
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "user%d", i);
		if (i % 2 == 0) {
			assert_int_equal(registry_member(reg, ids[i], &mi), -ENOENT);
		} else {
			assert_int_equal(registry_member(reg, ids[i], &mi), 0);
			assert_string_equal(mi.name, name);
		}
	}
	registry_destroy(reg);
	free(ids);
}

/* JOIN_IDs are capabilities: consecutive joins must not give consecutive
 * or otherwise obviously related ids. */
static void test_join_ids_unpredictable(void **state)
{
	struct config *cfg = *state;
	enum { N = 200 };
	struct registry *reg;
	long ids[N];
	int small_steps = 0;
	char name[32];

	cfg->max_members = N;
	reg = registry_create(cfg);
	assert_int_equal(add_room(reg, "r", 1, 0, 0, NULL), 0);
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "u%d", i);
		assert_int_equal(registry_join(reg, 1, name, 1, -1, &ids[i]), PROTO_OK);
	}
	for (int i = 1; i < N; i++)
		if (labs(ids[i] - ids[i - 1]) < 1000)
			small_steps++;
	/* For random 31-bit ids the chance of even one is about 1e-4. */
	assert_true(small_steps <= 1);
	registry_destroy(reg);
}

static void count_room(const struct room_info *info, void *arg)
{
	long *sum = arg;

	*sum += info->ref;
}

static void test_each_room(void **state)
{
	struct registry *reg = with_two_rooms(*state);
	long sum = 0;

	assert_int_equal(registry_each_room(reg, count_room, &sum), 2);
	assert_int_equal(sum, 8);
	registry_destroy(reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rooms_lookup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rooms_unique_and_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_join_and_member, setup, teardown),
		cmocka_unit_test_setup_teardown(test_join_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leave_frees_name_and_seat, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_members, setup, teardown),
		cmocka_unit_test_setup_teardown(test_join_ids_unpredictable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_each_room, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_registry.c - the registry of rooms and memberships: lookups, limits,
 * name uniqueness (server wide, or per room with name_scope room), the name
 * index, per-room member lists, JOIN_ID properties, growth and removal,
 * dormant rooms, their bounds and forgetting, paged listing. */
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
	/* ... and, names being server wide (SPEC 2.1), in any other room too;
	 * but the connection holding it may use it there. */
	assert_int_equal(registry_join(reg, 1, "alice", 2, -1, &id), PROTO_E_NAME_IN_USE);
	assert_int_equal(registry_join(reg, 1, "alice", 1, -1, &id), PROTO_OK);
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
	/* The name is free again, server wide. */
	assert_int_equal(registry_name_holder(reg, "alice", &mi), -ENOENT);
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

/* The name index: one holder per name, refcounted by memberships, in O(1). */
static void test_name_index(void **state)
{
	struct registry *reg = with_two_rooms(*state);
	struct member_info mi;
	long a1, a2, b;

	assert_int_equal(registry_name_holder(reg, "alice", &mi), -ENOENT);
	assert_int_equal(registry_join(reg, 1, "alice", 10, 5, &a1), PROTO_OK);
	assert_int_equal(registry_join(reg, 7, "alice", 10, 5, &a2), PROTO_OK);
	assert_int_equal(registry_join(reg, 7, "bob", 11, 6, &b), PROTO_OK);
	assert_int_equal(registry_name_holder(reg, "alice", &mi), 0);
	assert_int_equal(mi.conn_id, 10);
	assert_int_equal(mi.fd, 5);
	assert_string_equal(mi.name, "alice");
	/* Another connection cannot take it, in either room... */
	assert_int_equal(registry_join(reg, 1, "alice", 11, 6, &b), PROTO_E_NAME_IN_USE);
	/* ...until its last membership under the name ends. */
	assert_int_equal(registry_leave(reg, a1), 0);
	assert_int_equal(registry_name_holder(reg, "alice", &mi), 0);
	assert_int_equal(mi.conn_id, 10);
	assert_int_equal(registry_join(reg, 1, "alice", 11, 6, &b), PROTO_E_NAME_IN_USE);
	assert_int_equal(registry_leave(reg, a2), 0);
	assert_int_equal(registry_name_holder(reg, "alice", &mi), -ENOENT);
	assert_int_equal(registry_join(reg, 1, "alice", 11, 6, &b), PROTO_OK);
	assert_int_equal(registry_name_holder(reg, "alice", &mi), 0);
	assert_int_equal(mi.conn_id, 11);
	registry_destroy(reg);
}

/* name_scope room: the classic rule, and an ambiguous name is reported. */
static void test_name_scope_room(void **state)
{
	struct config *cfg = *state;
	struct registry *reg;
	struct member_info mi;
	long a, b;

	cfg->name_scope = CONFIG_SCOPE_ROOM;
	reg = with_two_rooms(cfg);
	assert_int_equal(registry_join(reg, 1, "alice", 10, 5, &a), PROTO_OK);
	assert_int_equal(registry_join(reg, 1, "alice", 11, 6, &b), PROTO_E_NAME_IN_USE);
	assert_int_equal(registry_join(reg, 7, "alice", 11, 6, &b), PROTO_OK);
	assert_int_equal(registry_name_holder(reg, "alice", &mi), -EEXIST);
	assert_int_equal(registry_leave(reg, a), 0);
	assert_int_equal(registry_name_holder(reg, "alice", &mi), 0);
	assert_int_equal(mi.conn_id, 11);
	registry_destroy(reg);
}

struct names {
	char seen[8][CONFIG_NAME_MAX + 1];
	int n;
};

static void collect_member(const struct member_info *mi, void *arg)
{
	struct names *nm = arg;

	assert_true(nm->n < 8);
	snprintf(nm->seen[nm->n++], sizeof(nm->seen[0]), "%s", mi->name);
}

/* LIST_MEMBERS' source: exactly the members of that room. */
static void test_per_room_members(void **state)
{
	struct registry *reg = with_two_rooms(*state);
	struct names nm = { .n = 0 };
	long id[4];

	assert_int_equal(registry_join(reg, 1, "alice", 1, -1, &id[0]), PROTO_OK);
	assert_int_equal(registry_join(reg, 7, "bob", 2, -1, &id[1]), PROTO_OK);
	assert_int_equal(registry_join(reg, 1, "carol", 3, -1, &id[2]), PROTO_OK);
	assert_int_equal(registry_join(reg, 1, "dave", 4, -1, &id[3]), PROTO_OK);
	assert_int_equal(registry_leave(reg, id[2]), 0);
	assert_int_equal(registry_each_member(reg, 1, collect_member, &nm), 2);
	assert_int_equal(nm.n, 2);
	assert_true((strcmp(nm.seen[0], "alice") == 0 && strcmp(nm.seen[1], "dave") == 0) ||
		    (strcmp(nm.seen[1], "alice") == 0 && strcmp(nm.seen[0], "dave") == 0));
	nm.n = 0;
	assert_int_equal(registry_each_member(reg, 7, collect_member, &nm), 1);
	assert_string_equal(nm.seen[0], "bob");
	assert_int_equal(registry_each_member(reg, 99, collect_member, &nm), 0);
	registry_destroy(reg);
}

/* Tens of thousands of rooms: every lookup by name and by ref finds its
 * room (hashed tables that grow), and registering them is fast. */
static void test_many_rooms_hashed(void **state)
{
	struct config *cfg = *state;
	enum { N = 65536 };
	struct registry *reg = registry_create(cfg);
	struct room_info info;
	char name[32];

	for (long i = 1; i <= N; i++) {
		snprintf(name, sizeof(name), "room-%ld", i);
		assert_int_equal(add_room(reg, name, i * 3, 0, 0, NULL), 0);
	}
	assert_int_equal(registry_room_count_all(reg), N);
	assert_int_equal(registry_dormant_count(reg), N);
	for (long i = 1; i <= N; i += 97) {
		snprintf(name, sizeof(name), "room-%ld", i);
		assert_int_equal(registry_find_room(reg, name, &info), 0);
		assert_int_equal(info.ref, i * 3);
		assert_int_equal(registry_find_ref(reg, i * 3, &info), 0);
		assert_string_equal(info.name, name);
	}
	assert_int_equal(registry_find_ref(reg, 4, &info), -ENOENT);
	assert_int_equal(registry_next_ref(reg), 3 * N + 1);
	registry_destroy(reg);
}

static void count_forgotten(const struct room_info *info, void *arg)
{
	long *n = arg;

	assert_null(info->room);
	(*n)++;
}

/* Forgetting: a room's name and ref go, its ref is not handed out again;
 * a room with a thread or members cannot be forgotten. */
static void test_forget(void **state)
{
	struct registry *reg = with_two_rooms(*state);
	struct room_info info;
	long id;

	assert_int_equal(add_room(reg, "pop", 8, 0, 0, (struct room *)&fake_room_a), 0);
	assert_int_equal(registry_join(reg, 8, "alice", 1, -1, &id), PROTO_OK);
	assert_int_equal(registry_forget(reg, 8), -EBUSY);
	assert_int_equal(registry_leave(reg, id), 0);
	assert_int_equal(registry_forget(reg, 8), -EBUSY); /* its thread runs */
	assert_int_equal(registry_set_room(reg, 8, NULL, 0), 0);
	assert_int_equal(registry_find_ref(reg, 8, &info), 0);
	assert_true(info.dormant_since > 0);
	assert_int_equal(registry_forget(reg, 8), 0);
	assert_int_equal(registry_find_room(reg, "pop", &info), -ENOENT);
	assert_int_equal(registry_find_ref(reg, 8, &info), -ENOENT);
	assert_int_equal(registry_forget(reg, 8), -ENOENT);
	assert_int_equal(registry_next_ref(reg), 9); /* 8 is not handed out again */
	registry_reserve_refs(reg, 41);              /* nor what the store says was */
	assert_int_equal(registry_next_ref(reg), 42);
	/* The name can be registered again, under a new ref. */
	assert_int_equal(add_room(reg, "pop", 42, 0, 0, (struct room *)&fake_room_a), 0);
	registry_destroy(reg);
}

/* The dormant bounds: beyond max_dormant_rooms the oldest go first; past
 * dormant_room_ttl they go whatever their number; waking a room takes it
 * off the dormant list; a history mark is sticky. */
static void test_dormant_cap_and_ttl(void **state)
{
	struct config *cfg = *state;
	struct registry *reg;
	struct room_info info = { .history = -1, .topic_change = -1, .on_demand = 1 };
	struct room_info page[4];
	long forgotten = 0, total;

	cfg->max_dormant_rooms = 3;
	cfg->dormant_room_ttl = 100;
	reg = registry_create(cfg);
	for (long i = 1; i <= 5; i++) {
		snprintf(info.name, sizeof(info.name), "d%ld", i);
		info.ref = i;
		info.dormant_since = 1000 + i; /* oldest first */
		assert_int_equal(registry_add_room(reg, &info), 0);
	}
	assert_int_equal(registry_trim_dormant(reg, 1005, count_forgotten, &forgotten), 2);
	assert_int_equal(forgotten, 2);
	assert_int_equal(registry_find_ref(reg, 1, &info), -ENOENT);
	assert_int_equal(registry_find_ref(reg, 2, &info), -ENOENT);
	assert_int_equal(registry_find_ref(reg, 3, &info), 0);
	assert_int_equal(registry_dormant_count(reg), 3);
	/* Waking d3 takes it off the dormant list (and onto the live one). */
	assert_int_equal(registry_set_room(reg, 3, (struct room *)&fake_room_a, 9003), 0);
	assert_int_equal(registry_dormant_count(reg), 2);
	assert_int_equal(registry_room_count(reg), 1);
	registry_mark_history(reg, 3);
	assert_int_equal(registry_find_ref(reg, 3, &info), 0);
	assert_true(info.history_seen);
	assert_int_equal(info.dormant_since, 0);
	/* Listing: the dormant ones oldest first, paged, with the total. */
	assert_int_equal(registry_list_rooms(reg, 1, 0, 4, page, &total), 2);
	assert_int_equal(total, 2);
	assert_string_equal(page[0].name, "d4");
	assert_string_equal(page[1].name, "d5");
	assert_int_equal(registry_list_rooms(reg, 1, 1, 4, page, &total), 1);
	assert_string_equal(page[0].name, "d5");
	assert_int_equal(registry_list_rooms(reg, 1, 7, 4, page, &total), 0);
	assert_int_equal(registry_list_rooms(reg, 0, 0, 4, page, &total), 1);
	assert_string_equal(page[0].name, "d3");
	assert_int_equal(total, 1);
	/* Age: d4 (since 1004) is past a ttl of 100 at 1105; d5 not yet. */
	assert_int_equal(registry_trim_dormant(reg, 1105, NULL, NULL), 1);
	assert_int_equal(registry_find_ref(reg, 4, &info), -ENOENT);
	assert_int_equal(registry_find_ref(reg, 5, &info), 0);
	/* Back to sleep: d3 is now the newest dormant room, kept with its mark. */
	assert_int_equal(registry_set_room(reg, 3, NULL, 0), 0);
	assert_int_equal(registry_list_rooms(reg, 1, 0, 4, page, &total), 2);
	assert_string_equal(page[1].name, "d3");
	assert_true(page[1].history_seen);
	registry_destroy(reg);
}

/* max_dormant_rooms 0 keeps none; eviction runs in slices beyond 64. */
static void test_dormant_cap_zero(void **state)
{
	struct config *cfg = *state;
	struct registry *reg;
	struct room_info info = { .history = -1, .topic_change = -1, .on_demand = 1 };
	long forgotten = 0;

	cfg->max_dormant_rooms = 0;
	cfg->dormant_room_ttl = 0;
	reg = registry_create(cfg);
	for (long i = 1; i <= 200; i++) {
		snprintf(info.name, sizeof(info.name), "d%ld", i);
		info.ref = i;
		assert_int_equal(registry_add_room(reg, &info), 0);
	}
	assert_int_equal(registry_trim_dormant(reg, 0, count_forgotten, &forgotten), 200);
	assert_int_equal(forgotten, 200);
	assert_int_equal(registry_room_count_all(reg), 0);
	assert_int_equal(registry_next_ref(reg), 201);
	registry_destroy(reg);
}

/* A topic longer than the record was made for: the room moves, its
 * members, lookups and list position with it. */
static void test_topic_grows(void **state)
{
	struct registry *reg = with_two_rooms(*state);
	struct room_info info, page[4];
	struct names nm = { .n = 0 };
	char topic[CONFIG_TOPIC_MAX + 1];
	long id, total;

	memset(topic, 't', CONFIG_TOPIC_MAX);
	topic[CONFIG_TOPIC_MAX] = '\0';
	assert_int_equal(registry_join(reg, 1, "alice", 1, -1, &id), PROTO_OK);
	assert_int_equal(registry_set_topic(reg, 1, "short"), 0);
	assert_int_equal(registry_set_topic(reg, 1, topic), 0);
	assert_int_equal(registry_find_room(reg, "lobby", &info), 0);
	assert_string_equal(info.topic, topic);
	assert_int_equal(info.members, 1);
	assert_int_equal(registry_find_ref(reg, 1, &info), 0);
	assert_int_equal(registry_each_member(reg, 1, collect_member, &nm), 1);
	assert_int_equal(registry_leave(reg, id), 0);
	assert_int_equal(registry_list_rooms(reg, 0, 0, 4, page, &total), 2);
	assert_string_equal(page[0].name, "lobby");
	assert_string_equal(page[1].name, "dev");
	assert_int_equal(registry_set_topic(reg, 99, "x"), -ENOENT);
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
		cmocka_unit_test_setup_teardown(test_name_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_name_scope_room, setup, teardown),
		cmocka_unit_test_setup_teardown(test_per_room_members, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_rooms_hashed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dormant_cap_and_ttl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dormant_cap_zero, setup, teardown),
		cmocka_unit_test_setup_teardown(test_topic_grows, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

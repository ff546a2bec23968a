/* test_store.c - unit tests of the durable store (server/store.c) against
 * temporary databases, each in its own mkdtemp directory.
 *
 * The product's only SQL is in store.c; this test also opens the files with
 * SQLite directly, to craft bad ones (newer schema, someone else's, locked)
 * and to count what the store left in them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"
#include "log.h"
#include "msg.h"
#include "proto.h"
#include "store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fixture {
	char dir[256];
	char path[400];
	char err[4096];
	struct config cfg;
	struct store_options opt;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "%s/test_store.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/data/rooms.db", f->dir);
	config_defaults(&f->cfg);
	store_default_options(&f->opt, &f->cfg);
	f->opt.batch_ms = 20;
	log_set_level(LOG_ERROR);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	config_fini(&f->cfg);
	free(f);
	return 0;
}

static struct store *open_ok(struct fixture *f)
{
	struct store *s;

	if (store_open(&s, f->path, &f->opt, f->err, sizeof(f->err)) < 0)
		fail_msg("store_open: %s", f->err);
	if (store_reconcile(s, &f->cfg, f->err, sizeof(f->err)) < 0)
		fail_msg("store_reconcile: %s", f->err);
	return s;
}

/* Expect store_open to refuse, with want in the message. */
static void open_fails(struct fixture *f, const char *want)
{
	struct store *s = (struct store *)f;

	assert_int_equal(store_open(&s, f->path, &f->opt, f->err, sizeof(f->err)), -1);
	assert_null(s);
	if (!strstr(f->err, want) || !strstr(f->err, f->path))
		fail_msg("expected \"%s\" and the path in: %s", want, f->err);
}

/* Run sql on the file directly; the first column of the last row as a
 * number (-1: no row). */
static long sql(const char *path, const char *q)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	long v = -1;
	int rc;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	assert_int_equal(rc, SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void add_room(struct fixture *f, const char *name, long ref, const char *topic)
{
	struct room_conf *r;

	f->cfg.rooms = realloc(f->cfg.rooms, (f->cfg.nrooms + 1) * sizeof(*r));
	assert_non_null(f->cfg.rooms);
	r = &f->cfg.rooms[f->cfg.nrooms++];
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	snprintf(r->topic, sizeof(r->topic), "%s", topic);
	r->ref = ref;
}

/* Append one member's message the way a room thread does: a relayed
 * CHAT frame and where the name and text lie in it. */
static int append(struct store *s, long ref, long keep, const char *name, const char *text, time_t when)
{
	struct msg *m = proto_write_chat(ref, name, text);
	const char *n, *t;
	int rc;

	assert_non_null(m);
	n = strstr(m->data, "CLIENT_NAME: ") + 13;
	t = strstr(n, "MESSAGE: ") + 9;
	rc = store_append(s, ref, keep, m, (size_t)(n - m->data), strlen(name), (size_t)(t - m->data),
			  strlen(text), when);
	msg_unref(&m);
	return rc;
}

struct loaded {
	char text[64][64];
	char name[64][16];
	time_t when[64];
	int n;
};

static void on_loaded(void *arg, time_t when, const char *name, const char *text)
{
	struct loaded *l = arg;

	assert_true(l->n < 64);
	snprintf(l->text[l->n], sizeof(l->text[0]), "%s", text);
	snprintf(l->name[l->n], sizeof(l->name[0]), "%s", name);
	l->when[l->n++] = when;
}

static void test_open_creates_and_migrates(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(f);
	struct store_stats st;

	store_close(s);
	assert_int_equal(sql(f->path, "SELECT value FROM meta WHERE key = 'schema_version'"), STORE_SCHEMA_VERSION);
	/* Reopening an up-to-date file changes nothing. */
	s = open_ok(f);
	store_get_stats(s, &st);
	assert_int_equal(st.appended, 0);
	store_close(s);
	assert_int_equal(sql(f->path, "SELECT count(*) FROM meta"), 1);
	/* A clean close leaves no WAL behind (a copy of the file is whole). */
	snprintf(f->err, sizeof(f->err), "%s-wal", f->path);
	assert_int_equal(access(f->err, F_OK), -1);
}

static void test_newer_schema_refused(void **state)
{
	struct fixture *f = *state;

	store_close(open_ok(f));
	sql(f->path, "UPDATE meta SET value = 99 WHERE key = 'schema_version'");
	open_fails(f, "schema version 99 was written by a newer roomd");
}

static void test_corrupt_file_refused(void **state)
{
	struct fixture *f = *state;
	FILE *fp;

	store_close(open_ok(f));
	fp = fopen(f->path, "w");
	assert_non_null(fp);
	for (int i = 0; i < 4096; i++)
		fputc("garbage!"[i % 8], fp);
	fclose(fp);
	open_fails(f, "damaged or not a database");
}

static void test_foreign_database_refused(void **state)
{
	struct fixture *f = *state;

	snprintf(f->path, sizeof(f->path), "%s/other.db", f->dir);
	sql(f->path, "CREATE TABLE accounts (id INTEGER)");
	open_fails(f, "not roomd's");
	/* And it was not touched. */
	assert_int_equal(sql(f->path, "SELECT count(*) FROM sqlite_master"), 1);
}

static void test_second_open_refused(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(f);

	open_fails(f, "another roomd is using it");
	store_close(s);
}

static void test_append_batch_reload_in_order(void **state)
{
	struct fixture *f = *state;
	struct store *s;
	struct loaded l = { .n = 0 };
	char text[32];

	add_room(f, "lobby", 1, "");
	s = open_ok(f);
	assert_int_equal(store_start(s), 0);
	for (int i = 0; i < 40; i++) {
		snprintf(text, sizeof(text), "m%d", i);
		assert_int_equal(append(s, 1, 50, i % 2 ? "bob" : "alice", text, 1000 + i), 0);
	}
	/* Loading waits for what is queued: all 40 are there, in order. */
	assert_int_equal(store_load_history(s, 1, 50, on_loaded, &l), 40);
	for (int i = 0; i < 40; i++) {
		snprintf(text, sizeof(text), "m%d", i);
		assert_string_equal(l.text[i], text);
		assert_string_equal(l.name[i], i % 2 ? "bob" : "alice");
		assert_int_equal(l.when[i], 1000 + i);
	}
	store_close(s);
	/* After a restart: the last n, oldest first. */
	s = open_ok(f);
	l.n = 0;
	assert_int_equal(store_load_history(s, 1, 3, on_loaded, &l), 3);
	assert_string_equal(l.text[0], "m37");
	assert_string_equal(l.text[2], "m39");
	store_close(s);
}

static void test_close_flushes_queue(void **state)
{
	struct fixture *f = *state;
	struct store *s;
	struct store_stats st;

	add_room(f, "lobby", 1, "");
	f->opt.batch_ms = 60000; /* only the close can commit these */
	s = open_ok(f);
	assert_int_equal(store_start(s), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(append(s, 1, 50, "alice", "x", 1), 0);
	store_get_stats(s, &st);
	assert_int_equal(st.appended, 10);
	store_close(s);
	assert_int_equal(sql(f->path, "SELECT count(*) FROM messages"), 10);
}

static void test_retention_count_and_age(void **state)
{
	struct fixture *f = *state;
	struct store *s;
	struct loaded l = { .n = 0 };
	time_t now = time(NULL);

	add_room(f, "a", 1, "");
	add_room(f, "b", 2, "");
	f->opt.max_age = 3600;
	s = open_ok(f);
	assert_int_equal(store_start(s), 0);
	for (int i = 0; i < 20; i++)
		assert_int_equal(append(s, 1, 5, "alice", "a", now), 0);
	/* Room b: two messages older than max_age, then three new ones. */
	assert_int_equal(append(s, 2, 100, "bob", "old1", now - 7200), 0);
	assert_int_equal(append(s, 2, 100, "bob", "old2", now - 7200), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(append(s, 2, 100, "bob", "new", now), 0);
	store_sync(s);
	assert_int_equal(sql(f->path, "SELECT count(*) FROM messages m JOIN rooms r ON m.room_id = r.id "
				      "WHERE r.ref = 1"), 5);
	assert_int_equal(sql(f->path, "SELECT count(*) FROM messages m JOIN rooms r ON m.room_id = r.id "
				      "WHERE r.ref = 2"), 3);
	assert_int_equal(store_load_history(s, 2, 100, on_loaded, &l), 3);
	store_close(s);
}

static void test_queue_full_is_counted(void **state)
{
	struct fixture *f = *state;
	struct store *s;
	struct store_stats st;

	add_room(f, "lobby", 1, "");
	f->opt.queue_max = 4;
	s = open_ok(f);
	/* No writer yet: nothing leaves the queue. */
	for (int i = 0; i < 4; i++)
		assert_int_equal(append(s, 1, 50, "alice", "kept", 1), 0);
	assert_int_equal(append(s, 1, 50, "alice", "dropped", 1), -ENOBUFS);
	assert_int_equal(append(s, 1, 50, "alice", "dropped", 1), -ENOBUFS);
	store_get_stats(s, &st);
	assert_int_equal(st.appended, 4);
	assert_int_equal(st.dropped, 2);
	assert_int_equal(store_start(s), 0);
	store_sync(s);
	store_get_stats(s, &st);
	assert_int_equal(st.stored, 4);
	/* Room again once the writer has taken them. */
	assert_int_equal(append(s, 1, 50, "alice", "kept", 1), 0);
	store_close(s);
	assert_int_equal(sql(f->path, "SELECT count(*) FROM messages WHERE text = 'dropped'"), 0);
	assert_int_equal(sql(f->path, "SELECT count(*) FROM messages"), 5);
}

static void test_queue_bytes_bound(void **state)
{
	struct fixture *f = *state;
	struct store *s;
	char big[2000];

	add_room(f, "lobby", 1, "");
	f->opt.queue_bytes = 5000;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	s = open_ok(f);
	assert_int_equal(append(s, 1, 50, "alice", big, 1), 0);
	assert_int_equal(append(s, 1, 50, "alice", big, 1), 0);
	assert_int_equal(append(s, 1, 50, "alice", big, 1), -ENOBUFS);
	store_close(s); /* never started: the queue is dropped with the store */
}

static void test_write_error_counted(void **state)
{
	struct fixture *f = *state;
	struct store *s;
	struct store_stats st;
	sqlite3 *other;

	add_room(f, "lobby", 1, "");
	s = open_ok(f);
	assert_int_equal(store_start(s), 0);
	/* Another connection holds the write lock past the busy timeout:
	 * the commit fails, the batch is counted lost, the store goes on. */
	assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
	assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(append(s, 1, 50, "alice", "lost", 1), 0);
	store_sync(s);
	store_get_stats(s, &st);
	assert_int_equal(st.failed, 1);
	assert_int_equal(st.write_errors, 1);
	assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(other);
	assert_int_equal(append(s, 1, 50, "alice", "kept", 1), 0);
	store_sync(s);
	store_get_stats(s, &st);
	assert_int_equal(st.stored, 1);
	store_close(s);
	assert_int_equal(sql(f->path, "SELECT count(*) FROM messages"), 1);
}

struct seen {
	struct store_room r[8];
	int n;
};

static void on_room(const struct store_room *r, void *arg)
{
	struct seen *seen = arg;

	assert_true(seen->n < 8);
	seen->r[seen->n++] = *r;
}

static void test_rooms_persisted_with_refs(void **state)
{
	struct fixture *f = *state;
	struct store *s;
	struct seen seen = { .n = 0 };
	struct store_room nr = { .ref = 5, .created = 42 };
	struct loaded l = { .n = 0 };

	add_room(f, "lobby", 1, "configured topic");
	s = open_ok(f);
	assert_int_equal(store_start(s), 0);
	snprintf(nr.name, sizeof(nr.name), "made");
	assert_int_equal(store_put_room(s, &nr), 0);
	assert_int_equal(append(s, 5, 50, "alice", "in made", 1), 0);
	assert_int_equal(store_set_topic(s, 1, "changed by a member"), 0);
	assert_int_equal(store_set_topic(s, 5, "made's topic"), 0);
	store_close(s);

	s = open_ok(f);
	assert_int_equal(store_each_room(s, on_room, &seen, f->err, sizeof(f->err)), 2);
	assert_string_equal(seen.r[0].name, "lobby");
	assert_int_equal(seen.r[0].ref, 1);
	assert_int_equal(seen.r[0].configured, 1);
	/* The config's topic did not change: the member's change stands. */
	assert_string_equal(seen.r[0].topic, "changed by a member");
	assert_string_equal(seen.r[1].name, "made");
	assert_int_equal(seen.r[1].ref, 5);
	assert_int_equal(seen.r[1].configured, 0);
	assert_int_equal(seen.r[1].created, 42);
	assert_string_equal(seen.r[1].topic, "made's topic");
	store_close(s);

	/* The config now gives ref 5 to lobby and changes its topic: the
	 * config wins, made gets a new ref above every other, and history
	 * follows the name, not the ref. */
	f->cfg.rooms[0].ref = 5;
	snprintf(f->cfg.rooms[0].topic, sizeof(f->cfg.rooms[0].topic), "new configured topic");
	s = open_ok(f);
	seen.n = 0;
	assert_int_equal(store_each_room(s, on_room, &seen, f->err, sizeof(f->err)), 2);
	assert_string_equal(seen.r[0].name, "lobby");
	assert_int_equal(seen.r[0].ref, 5);
	assert_string_equal(seen.r[0].topic, "new configured topic");
	assert_string_equal(seen.r[1].name, "made");
	assert_int_equal(seen.r[1].ref, 6);
	assert_int_equal(store_start(s), 0);
	assert_int_equal(store_load_history(s, 6, 10, on_loaded, &l), 1);
	assert_string_equal(l.text[0], "in made");
	l.n = 0;
	assert_int_equal(store_load_history(s, 5, 10, on_loaded, &l), 0);
	store_close(s);
}

/* A forgotten room: its row and its messages go, a configured room is
 * never deleted, and the highest ref stays known (so a restart does not
 * hand it out again). The newest message's time is reported per room. */
static void test_forget_room(void **state)
{
	struct fixture *f = *state;
	struct store *s;
	struct seen seen = { .n = 0 };
	struct store_room a = { .ref = 7, .created = 10 }, b = { .ref = 9, .created = 10 };

	add_room(f, "lobby", 1, "");
	s = open_ok(f);
	assert_int_equal(store_start(s), 0);
	snprintf(a.name, sizeof(a.name), "gone");
	snprintf(b.name, sizeof(b.name), "kept");
	assert_int_equal(store_put_room(s, &a), 0);
	assert_int_equal(store_put_room(s, &b), 0);
	assert_int_equal(append(s, 7, 50, "alice", "in gone", 100), 0);
	assert_int_equal(append(s, 9, 50, "alice", "in kept", 200), 0);
	assert_int_equal(append(s, 1, 50, "alice", "in lobby", 300), 0);
	store_sync(s);
	assert_int_equal(store_forget_room(s, 7), 0);
	assert_int_equal(store_forget_room(s, 1), 0); /* configured: refused quietly */
	/* A message of the forgotten room that comes after: stored nowhere. */
	assert_int_equal(append(s, 7, 50, "alice", "late", 101), 0);
	store_close(s);
	assert_int_equal(sql(f->path, "SELECT count(*) FROM rooms WHERE name = 'gone'"), 0);
	assert_int_equal(sql(f->path, "SELECT count(*) FROM messages"), 2);
	assert_int_equal(sql(f->path, "SELECT count(*) FROM messages WHERE room_id NOT IN (SELECT id FROM rooms)"), 0);

	s = open_ok(f);
	assert_int_equal(store_max_ref(s), 9);
	assert_int_equal(store_each_room(s, on_room, &seen, f->err, sizeof(f->err)), 2);
	assert_string_equal(seen.r[0].name, "lobby");
	assert_true(seen.r[0].has_messages);
	assert_int_equal(seen.r[0].last_message, 300);
	assert_string_equal(seen.r[1].name, "kept");
	assert_true(seen.r[1].has_messages);
	assert_int_equal(seen.r[1].last_message, 200);
	store_close(s);

	/* Forget the highest: the ref is still remembered. */
	s = open_ok(f);
	assert_int_equal(store_start(s), 0);
	assert_int_equal(store_forget_room(s, 9), 0);
	store_close(s);
	s = open_ok(f);
	assert_int_equal(store_max_ref(s), 9);
	seen.n = 0;
	assert_int_equal(store_each_room(s, on_room, &seen, f->err, sizeof(f->err)), 1);
	store_close(s);
	assert_int_equal(store_max_ref(NULL), 0);
}

static void test_backup_copy(void **state)
{
	struct fixture *f = *state;
	struct store *s;
	char dest[300];

	add_room(f, "lobby", 1, "");
	s = open_ok(f);
	assert_int_equal(store_start(s), 0);
	for (int i = 0; i < 7; i++)
		assert_int_equal(append(s, 1, 50, "alice", "b", 1), 0);
	store_sync(s);
	/* While the store is open and writing. */
	snprintf(dest, sizeof(dest), "%s/backup.db", f->dir);
	if (store_backup(f->path, dest, f->err, sizeof(f->err)) < 0)
		fail_msg("store_backup: %s", f->err);
	assert_int_equal(append(s, 1, 50, "alice", "after", 1), 0);
	assert_int_equal(store_backup(f->path, dest, f->err, sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, "exists already"));
	store_close(s);
	assert_int_equal(sql(dest, "SELECT count(*) FROM messages"), 7);
	/* The copy opens as a store of its own. */
	snprintf(f->path, sizeof(f->path), "%s", dest);
	store_close(open_ok(f));
}

static void test_null_store_is_off(void **state)
{
	struct store_stats st;

	(void)state;
	assert_int_equal(append(NULL, 1, 5, "a", "b", 1), 0);
	assert_int_equal(store_set_topic(NULL, 1, "t"), 0);
	assert_int_equal(store_load_history(NULL, 1, 5, on_loaded, NULL), 0);
	store_sync(NULL);
	store_get_stats(NULL, &st);
	assert_int_equal(st.appended, 0);
	store_close(NULL);
}

/* One batch holding more than a room keeps, rooms interleaved: the writer
 * inserts only what survives the trim, and what survives is exactly each
 * room's newest messages in order; a second batch trims across batches. */
static void test_batch_keeps_newest_per_room(void **state)
{
	struct fixture *f = *state;
	struct store *s;
	struct loaded l1 = { .n = 0 }, l2 = { .n = 0 }, l3 = { .n = 0 };
	time_t now = time(NULL);
	char text[16];

	add_room(f, "a", 1, "");
	add_room(f, "b", 2, "");
	s = open_ok(f);
	assert_int_equal(store_start(s), 0);
	for (int i = 0; i < 10; i++) {
		snprintf(text, sizeof(text), "m%d", i);
		assert_int_equal(append(s, 1, 3, "alice", text, now), 0);
		if (i < 6) {
			snprintf(text, sizeof(text), "n%d", i);
			assert_int_equal(append(s, 2, 4, "bob", text, now), 0);
		}
	}
	store_sync(s);
	assert_int_equal(store_load_history(s, 1, 3, on_loaded, &l1), 3);
	assert_string_equal(l1.text[0], "m7");
	assert_string_equal(l1.text[1], "m8");
	assert_string_equal(l1.text[2], "m9");
	assert_int_equal(store_load_history(s, 2, 4, on_loaded, &l2), 4);
	assert_string_equal(l2.text[0], "n2");
	assert_string_equal(l2.text[3], "n5");
	assert_int_equal(append(s, 1, 3, "alice", "x0", now), 0);
	store_sync(s);
	assert_int_equal(store_load_history(s, 1, 3, on_loaded, &l3), 3);
	assert_string_equal(l3.text[0], "m8");
	assert_string_equal(l3.text[1], "m9");
	assert_string_equal(l3.text[2], "x0");
	assert_int_equal(sql(f->path, "SELECT count(*) FROM messages"), 7);
	store_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_creates_and_migrates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_file_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_database_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_open_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_batch_reload_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_flushes_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_count_and_age, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_keeps_newest_per_room, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_full_is_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_bytes_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_error_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rooms_persisted_with_refs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forget_room, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backup_copy, setup, teardown),
		cmocka_unit_test(test_null_store_is_off),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* store.c - rooms and history in SQLite; the only file that speaks SQL.
 *
 * Start-up (store_open, store_reconcile, store_each_room) runs on the main
 * thread with the write connection. After store_start the writer thread
 * owns that connection and its statements. Room threads only append to the
 * queue (s->lock, a few stores, never any SQL) and, when they start, read
 * their history through a connection of their own. s->lock is never held
 * across SQL or a system call other than a condition-variable wait. */
#include "store.h"

#include "log.h"
#include "metrics.h"
#include "msg.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* A write error or a full queue is logged at once, then at most this often
 * (with the counts so far), so that a dying disk does not flood the log. */
#define STORE_LOG_EVERY_MS 10000
/* Backup and history loads retry a busy database this long. */
#define STORE_BUSY_MS 5000

/* One message waiting for the writer: the relayed frame itself (shared,
 * not copied) and where its sender and text lie in it. */
struct pending {
	struct msg *frame;
	long ref, keep;
	int64_t when;
	size_t name_off, name_len, text_off, text_len;
	long seq;
};

enum rec_kind { REC_ROOM, REC_TOPIC, REC_FORGET };

/* A room created on demand, a topic change or a forgotten room, waiting
 * for the writer. */
struct room_rec {
	struct room_rec *next;
	enum rec_kind kind;
	struct store_room room; /* REC_TOPIC: ref and topic only; REC_FORGET: ref only */
};

struct store {
	char path[CONFIG_PATH_MAX];
	struct store_options opt;
	int lock_fd;         /* holds the flock that keeps a second roomd out */
	sqlite3 *db;         /* main thread until store_start, then the writer's */
	sqlite3_stmt *ins, *trim_count, *trim_age, *put_room, *set_topic; /* same */
	sqlite3_stmt *put_max_ref, *forget_msgs, *forget_room;            /* same */
	pthread_t writer;
	int started;         /* main thread only */
	int64_t next_error_log_ms; /* writer only */

	pthread_mutex_t lock; /* guards every field below */
	pthread_cond_t wake;  /* the writer waits for work or stop */
	pthread_cond_t done;  /* store_sync waits for settled */
	struct pending *ring; /* queue_max slots; [head, head + count) pending */
	size_t head, count, bytes;
	struct room_rec *recs, **recs_tail;
	uint64_t settled;     /* messages committed or lost to a failed commit */
	int flush_now;        /* a store_sync is waiting: commit without delay */
	int running;          /* the writer is up, so everything queued will settle */
	int stop;
	struct store_stats stats;
	int64_t next_drop_log_ms;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void store_default_options(struct store_options *o, const struct config *cfg)
{
	/* 100 ms bounds what a kill -9 loses (docs/OPERATIONS.md) and keeps
	 * commits (and fsyncs) to ten a second whatever the traffic. The
	 * queue holds seconds of heavy traffic should the disk stall. */
	*o = (struct store_options){ .queue_max = 65536, .queue_bytes = 64u << 20, .batch_ms = 100,
				     .batch_max = 1024, .max_age = cfg ? cfg->history_max_age : 0 };
}

/* ---- errors at start-up ---- */

/* What to tell the operator about SQLite result rc on the file. */
static const char *advice(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
		return "the file is damaged or not a database: restore it from a backup, or move it "
		       "away to start with no stored rooms and history (docs/OPERATIONS.md, "
		       "\"Persistence and backup\")";
	case SQLITE_FULL:
		return "the disk is full: free space on its filesystem and start again";
	case SQLITE_READONLY:
	case SQLITE_CANTOPEN:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return "roomd must be able to read and write the file and to create FILE-wal and "
		       "FILE-shm in its directory: fix the owner or mode, or set [server] database "
		       "to another path";
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return "another process holds it locked: stop it, or use another file";
	default:
		return "see docs/OPERATIONS.md, \"Persistence and backup\"";
	}
}

static void set_err(char *err, size_t errlen, const char *path, const char *what, int rc,
		    const char *detail)
{
	char one_line[256];
	char *c;

	/* quick_check's report spans lines; the message is one. */
	snprintf(one_line, sizeof(one_line), "%s", detail ? detail : sqlite3_errstr(rc));
	for (c = one_line; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	snprintf(err, errlen, "database %s: %s (%s): %s", path, what, one_line, advice(rc));
}

/* ---- small SQL helpers ---- */

static int exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* The first column of the first row of sql as text into out (empty when
 * there is no row). SQLite result code. */
static int query_text(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	out[0] = '\0';
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);
		snprintf(out, outlen, "%s", t ? (const char *)t : "");
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

/* ---- opening and migrating ---- */

/* Version N -> N + 1 is migrations[N], run in one transaction with the
 * version bump. Never edit a shipped step: add one. */
static const char *const migrations[] = {
	/* 0 -> 1: rooms (the id ties history to a name, so that a ref
	 * reassigned by the config does not carry another room's history)
	 * and messages. */
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
	"INSERT INTO meta (key, value) VALUES ('schema_version', 0);"
	"CREATE TABLE rooms ("
	" id INTEGER PRIMARY KEY,"
	" name TEXT NOT NULL UNIQUE,"
	" ref INTEGER UNIQUE,"
	" port INTEGER NOT NULL DEFAULT 0,"
	" topic TEXT NOT NULL DEFAULT '',"
	" config_topic TEXT,"          /* the configured topic at the last start */
	" created INTEGER NOT NULL,"   /* UTC seconds */
	" configured INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE messages ("
	" id INTEGER PRIMARY KEY,"     /* increasing: the room's order */
	" room_id INTEGER NOT NULL REFERENCES rooms (id),"
	" at INTEGER NOT NULL,"        /* UTC seconds */
	" sender TEXT NOT NULL,"
	" text TEXT NOT NULL);"
	"CREATE INDEX messages_room ON messages (room_id, id);",
	/* 1 -> 2: each message's sequence number in its room (docs/PROTOCOL.md
	 * §7.7); rows of version 1 have 0, and are numbered on from the
	 * highest number when loaded. */
	"ALTER TABLE messages ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;",
};
#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

_Static_assert(NMIGRATIONS == STORE_SCHEMA_VERSION, "one migration step per schema version");

/* The file's schema version: 0 for an empty database, -1 when it holds
 * tables but is not roomd's. */
static int schema_version(struct store *s, long *version, char *err, size_t errlen)
{
	char buf[64];
	int rc = query_text(s->db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
			    buf, sizeof(buf));

	if (rc == SQLITE_OK && strcmp(buf, "0") == 0) {
		rc = query_text(s->db, "SELECT count(*) FROM sqlite_master", buf, sizeof(buf));
		*version = strcmp(buf, "0") == 0 ? 0 : -1;
	} else if (rc == SQLITE_OK) {
		rc = query_text(s->db, "SELECT value FROM meta WHERE key = 'schema_version'", buf, sizeof(buf));
		*version = buf[0] ? strtol(buf, NULL, 10) : -1;
	}
	if (rc != SQLITE_OK)
		set_err(err, errlen, s->path, "cannot read the schema version", rc, sqlite3_errmsg(s->db));
	return rc == SQLITE_OK ? 0 : -1;
}

/* Refuse a file roomd must not touch, before anything is written to it. */
static int check_version(struct store *s, long *v, char *err, size_t errlen)
{
	if (schema_version(s, v, err, errlen) < 0)
		return -1;
	if (*v < 0) {
		snprintf(err, errlen, "database %s: an SQLite database, but not roomd's (no schema_version "
			 "row): set [server] database to another path; roomd does not touch it", s->path);
		return -1;
	}
	if (*v > STORE_SCHEMA_VERSION) {
		snprintf(err, errlen, "database %s: schema version %ld was written by a newer roomd; this "
			 "one knows up to %d: run the newer roomd, or restore a backup taken before the "
			 "upgrade (docs/OPERATIONS.md, \"Persistence and backup\")", s->path, *v,
			 STORE_SCHEMA_VERSION);
		return -1;
	}
	return 0;
}

/* Bring a file of version v up to STORE_SCHEMA_VERSION. */
static int migrate(struct store *s, long v, char *err, size_t errlen)
{
	char bump[96];
	int rc;

	for (; v < STORE_SCHEMA_VERSION; v++) {
		snprintf(bump, sizeof(bump), "UPDATE meta SET value = %ld WHERE key = 'schema_version'", v + 1);
		rc = exec(s->db, "BEGIN IMMEDIATE");
		if (rc == SQLITE_OK)
			rc = exec(s->db, migrations[v]);
		if (rc == SQLITE_OK)
			rc = exec(s->db, bump);
		if (rc == SQLITE_OK)
			rc = exec(s->db, "COMMIT");
		if (rc != SQLITE_OK) {
			set_err(err, errlen, s->path, "cannot migrate the schema", rc, sqlite3_errmsg(s->db));
			exec(s->db, "ROLLBACK");
			return -1;
		}
		log_info("store: %s: schema version %ld", s->path, v + 1);
	}
	return 0;
}

/* Create the file's directory if it is missing (one level: a typo in a
 * deeper path should not silently build a tree). */
static int make_dir(const char *path, char *err, size_t errlen)
{
	char dir[CONFIG_PATH_MAX];
	const char *slash = strrchr(path, '/');
	struct stat st;

	if (!slash || slash == path)
		return 0;
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	if (stat(dir, &st) == 0 || errno != ENOENT)
		return 0; /* any other problem shows when the file is opened */
	if (mkdir(dir, 0750) < 0) {
		snprintf(err, errlen, "database %s: cannot create its directory %s: %s: create it, or set "
			 "[server] database to another path", path, dir, strerror(errno));
		return -1;
	}
	log_info("store: created directory %s", dir);
	return 0;
}

/* Open the file ourselves first: for a plain message when it cannot be
 * opened, and for the flock that keeps a second roomd (which would write
 * the same rooms) away. The descriptor stays open until store_close: the
 * kernel drops SQLite's own fcntl locks when any descriptor of the file is
 * closed. */
static int lock_file(struct store *s, char *err, size_t errlen)
{
	s->lock_fd = open(s->path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (s->lock_fd < 0) {
		snprintf(err, errlen, "database %s: cannot open or create it: %s: %s", s->path,
			 strerror(errno), advice(SQLITE_CANTOPEN));
		return -1;
	}
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		snprintf(err, errlen, "database %s: %s: another roomd is using it; stop that one, or set "
			 "[server] database to another path", s->path,
			 errno == EWOULDBLOCK ? "locked" : strerror(errno));
		return -1;
	}
	return 0;
}

/* quick_check reads every page once: O(size), which retention keeps
 * bounded. Nothing is written. */
static int check_integrity(struct store *s, char *err, size_t errlen)
{
	char res[256];
	int rc;

	sqlite3_busy_timeout(s->db, 2000);
	rc = query_text(s->db, "PRAGMA quick_check", res, sizeof(res));
	if (rc != SQLITE_OK) {
		set_err(err, errlen, s->path, "cannot read it", rc, sqlite3_errmsg(s->db));
		return -1;
	}
	if (strcmp(res, "ok") != 0) {
		set_err(err, errlen, s->path, "integrity check failed", SQLITE_CORRUPT, res);
		return -1;
	}
	return 0;
}

/* WAL (readers, a backup among them, never block the writer, nor it
 * them) and durability. */
static int configure(struct store *s, char *err, size_t errlen)
{
	char res[256];
	int rc = query_text(s->db, "PRAGMA journal_mode = WAL", res, sizeof(res));
	if (rc == SQLITE_OK && strcmp(res, "wal") != 0)
		rc = SQLITE_CANTOPEN;
	if (rc != SQLITE_OK) {
		set_err(err, errlen, s->path, "cannot switch to WAL mode", rc, sqlite3_errmsg(s->db));
		return -1;
	}
	/* FULL: a commit is on the disk when it returns, so that a power cut
	 * loses no more than a kill -9. It costs one fsync a batch, on the
	 * writer thread only. */
	rc = exec(s->db, "PRAGMA synchronous = FULL");
	if (rc != SQLITE_OK) {
		set_err(err, errlen, s->path, "cannot configure it", rc, sqlite3_errmsg(s->db));
		return -1;
	}
	return 0;
}

static int prepare_writer(struct store *s, char *err, size_t errlen)
{
	static const char ins[] =
		"INSERT INTO messages (room_id, at, sender, text, seq) SELECT id, ?2, ?3, ?4, ?5 FROM rooms "
		"WHERE ref = ?1";
	/* Everything older than the room's keep-th newest message. */
	static const char trim_count[] =
		"DELETE FROM messages WHERE room_id = (SELECT id FROM rooms WHERE ref = ?1) AND id <= "
		"(SELECT m.id FROM messages m WHERE m.room_id = (SELECT id FROM rooms WHERE ref = ?1) "
		"ORDER BY m.id DESC LIMIT 1 OFFSET ?2)";
	static const char trim_age[] =
		"DELETE FROM messages WHERE room_id = (SELECT id FROM rooms WHERE ref = ?1) AND at < ?2";
	static const char put_room[] =
		"INSERT INTO rooms (name, ref, port, topic, created, configured) VALUES (?1, ?2, ?3, ?4, ?5, 0) "
		"ON CONFLICT (name) DO UPDATE SET ref = excluded.ref";
	static const char set_topic[] = "UPDATE rooms SET topic = ?2 WHERE ref = ?1";
	/* The highest ref ever handed out, so that a forgotten room's ref is
	 * not handed out again after a restart. */
	static const char put_max_ref[] =
		"INSERT INTO meta (key, value) VALUES ('max_ref', ?1) "
		"ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)";
	/* A forgotten room: its messages, then its row (never a configured
	 * one: the config may have taken the name back meanwhile). */
	static const char forget_msgs[] =
		"DELETE FROM messages WHERE room_id = (SELECT id FROM rooms WHERE ref = ?1 AND configured = 0)";
	static const char forget_room[] = "DELETE FROM rooms WHERE ref = ?1 AND configured = 0";
	int rc = sqlite3_prepare_v3(s->db, ins, -1, SQLITE_PREPARE_PERSISTENT, &s->ins, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v3(s->db, trim_count, -1, SQLITE_PREPARE_PERSISTENT, &s->trim_count, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v3(s->db, trim_age, -1, SQLITE_PREPARE_PERSISTENT, &s->trim_age, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v3(s->db, put_room, -1, SQLITE_PREPARE_PERSISTENT, &s->put_room, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v3(s->db, set_topic, -1, SQLITE_PREPARE_PERSISTENT, &s->set_topic, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v3(s->db, put_max_ref, -1, SQLITE_PREPARE_PERSISTENT, &s->put_max_ref, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v3(s->db, forget_msgs, -1, SQLITE_PREPARE_PERSISTENT, &s->forget_msgs, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v3(s->db, forget_room, -1, SQLITE_PREPARE_PERSISTENT, &s->forget_room, NULL);
	if (rc != SQLITE_OK)
		set_err(err, errlen, s->path, "cannot prepare statements", rc, sqlite3_errmsg(s->db));
	return rc == SQLITE_OK ? 0 : -1;
}

static void store_free(struct store *s)
{
	struct room_rec *rec, *next;

	/* What a store that never started (a start-up failure) still holds. */
	for (size_t i = 0; i < s->count; i++)
		msg_unref(&s->ring[(s->head + i) % s->opt.queue_max].frame);
	for (rec = s->recs; rec; rec = next) {
		next = rec->next;
		free(rec);
	}
	sqlite3_finalize(s->ins);
	sqlite3_finalize(s->trim_count);
	sqlite3_finalize(s->trim_age);
	sqlite3_finalize(s->put_room);
	sqlite3_finalize(s->set_topic);
	sqlite3_finalize(s->put_max_ref);
	sqlite3_finalize(s->forget_msgs);
	sqlite3_finalize(s->forget_room);
	if (s->db)
		sqlite3_close(s->db); /* the last connection: checkpoints and removes the WAL */
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	pthread_cond_destroy(&s->wake);
	pthread_cond_destroy(&s->done);
	pthread_mutex_destroy(&s->lock);
	free(s->ring);
	free(s);
}

static int init_sync(struct store *s)
{
	pthread_condattr_t ca;
	int rc;

	if (pthread_condattr_init(&ca) != 0)
		return -1;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* batch deadlines ignore clock changes */
	rc = pthread_mutex_init(&s->lock, NULL) || pthread_cond_init(&s->wake, &ca) ||
	     pthread_cond_init(&s->done, NULL);
	pthread_condattr_destroy(&ca);
	return rc ? -1 : 0;
}

int store_open(struct store **out, const char *path, const struct store_options *o, char *err,
	       size_t errlen)
{
	struct store *s = calloc(1, sizeof(*s));
	long version;
	int rc;

	*out = NULL;
	if (!s || init_sync(s) < 0 || !(s->ring = calloc(o->queue_max ? o->queue_max : 1, sizeof(*s->ring)))) {
		snprintf(err, errlen, "database %s: out of memory", path);
		if (s) {
			s->lock_fd = -1;
			store_free(s);
		}
		return -1;
	}
	snprintf(s->path, sizeof(s->path), "%s", path);
	s->opt = *o;
	s->lock_fd = -1;
	s->recs_tail = &s->recs;
	if (make_dir(path, err, errlen) < 0 || lock_file(s, err, errlen) < 0)
		goto fail;
	rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		set_err(err, errlen, path, "cannot open it", rc, s->db ? sqlite3_errmsg(s->db) : NULL);
		goto fail;
	}
	if (check_integrity(s, err, errlen) < 0 || check_version(s, &version, err, errlen) < 0 ||
	    configure(s, err, errlen) < 0 || migrate(s, version, err, errlen) < 0 ||
	    prepare_writer(s, err, errlen) < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	store_free(s);
	return -1;
}

/* ---- reconciling with the config (main thread, start-up) ---- */

static sqlite3_stmt *prep(struct store *s, const char *sql)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return NULL;
	return st;
}

/* Step a prepared statement to its end. SQLite result code. */
static int run(sqlite3_stmt *st)
{
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* A stored room other than conf holding its ref loses it (it gets a new
 * one below); conf's own row gets its configured ref, port and flag. */
static int reconcile_room(struct store *s, const struct room_conf *conf, int64_t now)
{
	sqlite3_stmt *other = prep(s, "SELECT name FROM rooms WHERE ref = ?1 AND name <> ?2");
	sqlite3_stmt *clear = prep(s, "UPDATE rooms SET ref = NULL WHERE ref = ?1 AND name <> ?2");
	sqlite3_stmt *old = prep(s, "SELECT ref FROM rooms WHERE name = ?1 AND ref IS NOT ?2");
	sqlite3_stmt *upsert = prep(s,
		"INSERT INTO rooms (name, ref, port, topic, config_topic, created, configured) "
		"VALUES (?1, ?2, ?3, ?4, ?4, ?5, 1) ON CONFLICT (name) DO UPDATE SET ref = ?2, port = ?3, "
		"configured = 1, topic = CASE WHEN config_topic IS ?4 THEN topic ELSE ?4 END, config_topic = ?4");
	int rc = other && clear && old && upsert ? SQLITE_OK : sqlite3_errcode(s->db);

	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(other, 1, conf->ref);
		sqlite3_bind_text(other, 2, conf->name, -1, SQLITE_STATIC);
		while (sqlite3_step(other) == SQLITE_ROW)
			log_warn("store: stored room %s had ref %ld, which the config gives to room %s: "
				 "it gets a new ref", (const char *)sqlite3_column_text(other, 0), conf->ref, conf->name);
		sqlite3_bind_text(old, 1, conf->name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(old, 2, conf->ref);
		if (sqlite3_step(old) == SQLITE_ROW && sqlite3_column_type(old, 0) != SQLITE_NULL)
			log_warn("store: room %s was stored with ref %lld; the config says %ld, which it now has "
				 "(clients holding the old ref must join again)", conf->name,
				 (long long)sqlite3_column_int64(old, 0), conf->ref);
		sqlite3_bind_int64(clear, 1, conf->ref);
		sqlite3_bind_text(clear, 2, conf->name, -1, SQLITE_STATIC);
		rc = run(clear);
	}
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(upsert, 1, conf->name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(upsert, 2, conf->ref);
		sqlite3_bind_int64(upsert, 3, conf->port);
		sqlite3_bind_text(upsert, 4, conf->topic, -1, SQLITE_STATIC);
		sqlite3_bind_int64(upsert, 5, now);
		rc = run(upsert);
	}
	sqlite3_finalize(other);
	sqlite3_finalize(clear);
	sqlite3_finalize(old);
	sqlite3_finalize(upsert);
	return rc;
}

/* Stored rooms that lost their ref get new ones above every ref in use,
 * so that no ref is ever reused for another name. */
static int renumber(struct store *s, long max_conf_ref)
{
	sqlite3_stmt *q = prep(s, "SELECT id, name FROM rooms WHERE ref IS NULL ORDER BY id");
	sqlite3_stmt *max = prep(s, "SELECT max(coalesce((SELECT max(ref) FROM rooms), 0), "
				    "coalesce((SELECT value FROM meta WHERE key = 'max_ref'), 0))");
	sqlite3_stmt *set = prep(s, "UPDATE rooms SET ref = ?2 WHERE id = ?1");
	long next = max_conf_ref;
	int rc = q && max && set ? SQLITE_OK : sqlite3_errcode(s->db);

	if (rc == SQLITE_OK && sqlite3_step(max) == SQLITE_ROW && sqlite3_column_int64(max, 0) > next)
		next = (long)sqlite3_column_int64(max, 0);
	while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		sqlite3_bind_int64(set, 1, sqlite3_column_int64(q, 0));
		sqlite3_bind_int64(set, 2, ++next);
		log_warn("store: stored room %s now has ref %ld", (const char *)sqlite3_column_text(q, 1), next);
		rc = run(set);
	}
	if (rc == SQLITE_DONE)
		rc = SQLITE_OK;
	sqlite3_finalize(q);
	sqlite3_finalize(max);
	sqlite3_finalize(set);
	return rc;
}

int store_reconcile(struct store *s, const struct config *cfg, char *err, size_t errlen)
{
	int64_t now = (int64_t)time(NULL);
	long max_ref = 0;
	int rc = exec(s->db, "BEGIN IMMEDIATE");

	if (rc == SQLITE_OK)
		rc = exec(s->db, "UPDATE rooms SET configured = 0 WHERE configured <> 0"); /* not every row */
	for (size_t i = 0; rc == SQLITE_OK && i < cfg->nrooms; i++) {
		rc = reconcile_room(s, &cfg->rooms[i], now);
		if (cfg->rooms[i].ref > max_ref)
			max_ref = cfg->rooms[i].ref;
	}
	if (rc == SQLITE_OK)
		rc = renumber(s, max_ref);
	if (rc == SQLITE_OK)
		rc = exec(s->db, "COMMIT");
	if (rc != SQLITE_OK) {
		set_err(err, errlen, s->path, "cannot record the configured rooms", rc, sqlite3_errmsg(s->db));
		exec(s->db, "ROLLBACK");
		return -1;
	}
	return 0;
}

long store_each_room(struct store *s, void (*fn)(const struct store_room *, void *), void *arg,
		     char *err, size_t errlen)
{
	/* The newest message through the (room_id, id) index: one probe a room. */
	sqlite3_stmt *q = prep(s, "SELECT name, ref, port, topic, created, configured, "
				  "(SELECT at FROM messages WHERE room_id = rooms.id ORDER BY id DESC LIMIT 1) AS last "
				  "FROM rooms WHERE ref IS NOT NULL ORDER BY ref");
	struct store_room r;
	long n = 0;
	int rc = q ? SQLITE_OK : sqlite3_errcode(s->db);

	while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		memset(&r, 0, sizeof(r));
		snprintf(r.name, sizeof(r.name), "%s", (const char *)sqlite3_column_text(q, 0));
		r.ref = (long)sqlite3_column_int64(q, 1);
		r.port = (unsigned)sqlite3_column_int64(q, 2);
		snprintf(r.topic, sizeof(r.topic), "%s", (const char *)sqlite3_column_text(q, 3));
		r.created = sqlite3_column_int64(q, 4);
		r.configured = sqlite3_column_int(q, 5);
		r.has_messages = sqlite3_column_type(q, 6) != SQLITE_NULL;
		r.last_message = r.has_messages ? sqlite3_column_int64(q, 6) : 0;
		fn(&r, arg);
		n++;
		rc = SQLITE_OK;
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE) {
		set_err(err, errlen, s->path, "cannot read the rooms", rc, sqlite3_errmsg(s->db));
		return -1;
	}
	return n;
}

/* ---- the queue (any thread) ---- */

int store_append(struct store *s, long ref, long keep, struct msg *frame, size_t name_off,
		 size_t name_len, size_t text_off, size_t text_len, time_t when)
{
	return store_append_numbered(s, ref, keep, frame, name_off, name_len, text_off, text_len,
				     when, 0);
}

int store_append_numbered(struct store *s, long ref, long keep, struct msg *frame, size_t name_off,
			  size_t name_len, size_t text_off, size_t text_len, time_t when, long seq)
{
	struct pending *p;
	int log_now = 0, first;
	uint64_t dropped = 0;

	if (!s)
		return 0;
	pthread_mutex_lock(&s->lock);
	if (s->count == s->opt.queue_max || s->bytes + frame->len > s->opt.queue_bytes || s->stop) {
		s->stats.dropped++;
		/* Reading the clock only on this (rare) path. */
		if (now_ms() >= s->next_drop_log_ms) {
			s->next_drop_log_ms = now_ms() + STORE_LOG_EVERY_MS;
			log_now = 1;
			dropped = s->stats.dropped;
		}
		pthread_mutex_unlock(&s->lock);
		if (log_now)
			log_warn("store: queue full (the disk is too slow): %llu messages not stored so far; "
				 "relaying goes on", (unsigned long long)dropped);
		return -ENOBUFS;
	}
	p = &s->ring[(s->head + s->count) % s->opt.queue_max];
	*p = (struct pending){ msg_ref(frame), ref, keep, (int64_t)when, name_off, name_len, text_off,
			       text_len, seq };
	first = s->count++ == 0;
	metrics_store_queue(s->count);
	s->bytes += frame->len;
	s->stats.appended++;
	/* The writer sleeps without a deadline while the queue is empty, and
	 * needs waking early only when a batch is full. */
	if (first || s->count == s->opt.batch_max)
		pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static int put_rec(struct store *s, struct room_rec *rec)
{
	if (!s) {
		free(rec);
		return 0;
	}
	if (!rec) {
		log_error("store: out of memory: a room or topic change will not be stored");
		return -ENOMEM;
	}
	pthread_mutex_lock(&s->lock);
	*s->recs_tail = rec;
	s->recs_tail = &rec->next;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int store_put_room(struct store *s, const struct store_room *room)
{
	struct room_rec *rec = s ? calloc(1, sizeof(*rec)) : NULL;

	if (rec) {
		rec->kind = REC_ROOM;
		rec->room = *room;
	}
	return put_rec(s, rec);
}

int store_forget_room(struct store *s, long ref)
{
	struct room_rec *rec = s ? calloc(1, sizeof(*rec)) : NULL;

	if (rec) {
		rec->kind = REC_FORGET;
		rec->room.ref = ref;
	}
	return put_rec(s, rec);
}

long store_max_ref(struct store *s)
{
	sqlite3_stmt *q;
	long ref = -1;

	if (!s)
		return 0;
	q = prep(s, "SELECT max(coalesce((SELECT max(ref) FROM rooms), 0), "
		    "coalesce((SELECT value FROM meta WHERE key = 'max_ref'), 0))");
	if (q && sqlite3_step(q) == SQLITE_ROW)
		ref = (long)sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return ref;
}

int store_set_topic(struct store *s, long ref, const char *topic)
{
	struct room_rec *rec = s ? calloc(1, sizeof(*rec)) : NULL;

	if (rec) {
		rec->kind = REC_TOPIC;
		rec->room.ref = ref;
		snprintf(rec->room.topic, sizeof(rec->room.topic), "%s", topic);
	}
	return put_rec(s, rec);
}

void store_sync(struct store *s)
{
	uint64_t target;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	target = s->stats.appended;
	if (s->running && s->settled < target) {
		s->flush_now = 1;
		pthread_cond_signal(&s->wake);
		while (s->running && s->settled < target)
			pthread_cond_wait(&s->done, &s->lock);
	}
	pthread_mutex_unlock(&s->lock);
}

void store_get_stats(struct store *s, struct store_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	*out = s->stats;
	pthread_mutex_unlock(&s->lock);
}

/* ---- the writer thread ---- */

/* Log a failed commit at once, then at most every STORE_LOG_EVERY_MS. */
static void write_error(struct store *s, int rc, size_t lost)
{
	int64_t now = now_ms();
	struct store_stats st;

	if (now < s->next_error_log_ms)
		return;
	s->next_error_log_ms = now + STORE_LOG_EVERY_MS;
	store_get_stats(s, &st);
	log_error("store: %s: commit failed: %s (%s): %zu messages lost in this batch, %llu so far; %s; "
		  "relaying goes on", s->path, sqlite3_errstr(rc), sqlite3_errmsg(s->db), lost,
		  (unsigned long long)(st.failed + lost), advice(rc));
}

static int apply_forget(struct store *s, long ref)
{
	int rc;

	sqlite3_bind_int64(s->forget_msgs, 1, ref);
	rc = run(s->forget_msgs);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(s->forget_room, 1, ref);
		rc = run(s->forget_room);
	}
	return rc;
}

static int apply_rec(struct store *s, const struct room_rec *rec)
{
	sqlite3_stmt *st = rec->kind == REC_ROOM ? s->put_room : s->set_topic;
	int rc;

	if (rec->kind == REC_FORGET)
		return apply_forget(s, rec->room.ref);
	if (rec->kind == REC_ROOM) {
		sqlite3_bind_int64(s->put_max_ref, 1, rec->room.ref);
		rc = run(s->put_max_ref);
		if (rc != SQLITE_OK)
			return rc;
		sqlite3_bind_text(st, 1, rec->room.name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, rec->room.ref);
		sqlite3_bind_int64(st, 3, rec->room.port);
		sqlite3_bind_text(st, 4, rec->room.topic, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, rec->room.created);
	} else {
		sqlite3_bind_int64(st, 1, rec->room.ref);
		sqlite3_bind_text(st, 2, rec->room.topic, -1, SQLITE_STATIC);
	}
	rc = run(st);
	/* A constraint failure ends only this statement; the batch goes on. */
	if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		log_error("store: room %s (ref %ld) not stored: %s", rec->room.name, rec->room.ref,
			  sqlite3_errmsg(s->db));
		rc = SQLITE_OK;
	}
	return rc;
}

static int insert_message(struct store *s, const struct pending *p)
{
	sqlite3_bind_int64(s->ins, 1, p->ref);
	sqlite3_bind_int64(s->ins, 2, p->when);
	sqlite3_bind_text(s->ins, 3, p->frame->data + p->name_off, (int)p->name_len, SQLITE_STATIC);
	sqlite3_bind_text(s->ins, 4, p->frame->data + p->text_off, (int)p->text_len, SQLITE_STATIC);
	sqlite3_bind_int64(s->ins, 5, p->seq);
	return run(s->ins);
}

/* Trim room ref to its last keep messages and to max_age. */
static int trim_room(struct store *s, long ref, long keep)
{
	int rc;

	sqlite3_bind_int64(s->trim_count, 1, ref);
	sqlite3_bind_int64(s->trim_count, 2, keep);
	rc = run(s->trim_count);
	if (rc == SQLITE_OK && s->opt.max_age > 0) {
		sqlite3_bind_int64(s->trim_age, 1, ref);
		sqlite3_bind_int64(s->trim_age, 2, (int64_t)time(NULL) - s->opt.max_age);
		rc = run(s->trim_age);
	}
	return rc;
}

/* Trim each room the batch touched once, after its inserts. */
static int trim_rooms(struct store *s, size_t head, size_t n)
{
	int rc = SQLITE_OK;

	for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
		const struct pending *p = &s->ring[(head + i) % s->opt.queue_max];
		size_t j = i + 1;

		/* Trimmed at its last message in the batch: later ones skip it. */
		while (j < n && s->ring[(head + j) % s->opt.queue_max].ref != p->ref)
			j++;
		if (j == n)
			rc = trim_room(s, p->ref, p->keep);
	}
	return rc;
}

/* Mark in skip[] the messages of the batch that its own trim would delete:
 * all but the last keep of each room. Not inserting them leaves exactly the
 * rows that inserting and trimming would, and bounds the work per batch by
 * rooms x keep instead of by the message rate (a busy room with a short
 * history would otherwise insert and delete every message). Out of memory:
 * nothing is marked, everything is inserted. */
static void mark_superseded(const struct store *s, size_t head, size_t n, unsigned char *skip)
{
	size_t cap = 16;
	long *refs, *seen;

	while (cap < 2 * n)
		cap *= 2;
	refs = calloc(cap, sizeof(*refs));
	seen = calloc(cap, sizeof(*seen));
	/* From the newest back: a room's (keep + 1)-th newest and older go. */
	for (size_t i = n; refs && seen && i-- > 0;) {
		const struct pending *p = &s->ring[(head + i) % s->opt.queue_max];
		size_t h = ((size_t)p->ref * 0x9e3779b97f4a7c15ull) & (cap - 1);

		while (refs[h] != 0 && refs[h] != p->ref)
			h = (h + 1) & (cap - 1);
		refs[h] = p->ref; /* refs are positive: 0 marks a free slot */
		skip[i] = ++seen[h] > p->keep;
	}
	free(refs);
	free(seen);
}

/* One transaction: room records, then messages, then trims. */
static int commit_batch(struct store *s, const struct room_rec *recs, size_t head, size_t n)
{
	int rc = exec(s->db, "BEGIN IMMEDIATE");
	unsigned char *skip = calloc(n ? n : 1, 1);

	if (skip)
		mark_superseded(s, head, n, skip);
	for (; rc == SQLITE_OK && recs; recs = recs->next)
		rc = apply_rec(s, recs);
	for (size_t i = 0; rc == SQLITE_OK && i < n; i++)
		if (!skip || !skip[i])
			rc = insert_message(s, &s->ring[(head + i) % s->opt.queue_max]);
	free(skip);
	if (rc == SQLITE_OK)
		rc = trim_rooms(s, head, n);
	if (rc == SQLITE_OK)
		rc = exec(s->db, "COMMIT");
	if (rc != SQLITE_OK) {
		write_error(s, rc, n);
		exec(s->db, "ROLLBACK");
	}
	return rc;
}

/* Wait (s->lock held) until there is a batch to commit: the first message
 * waits at most batch_ms, and batch_max messages, a store_sync or stop
 * end the wait at once. */
static void wait_for_batch_locked(struct store *s)
{
	struct timespec deadline;

	while (!s->stop && !s->flush_now && s->count == 0 && !s->recs)
		pthread_cond_wait(&s->wake, &s->lock);
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += s->opt.batch_ms / 1000;
	deadline.tv_nsec += (s->opt.batch_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	while (!s->stop && !s->flush_now && s->count < s->opt.batch_max)
		if (pthread_cond_timedwait(&s->wake, &s->lock, &deadline) == ETIMEDOUT)
			break;
}

static void *writer_main(void *arg)
{
	struct store *s = arg;

	pthread_setname_np(pthread_self(), "store");
	pthread_mutex_lock(&s->lock);
	for (;;) {
		wait_for_batch_locked(s);
		if (s->count == 0 && !s->recs) {
			if (s->stop)
				break;
			s->flush_now = 0;
			continue;
		}
		/* The batch's slots stay counted (so still bound the queue)
		 * until committed; appenders only write past them. */
		size_t head = s->head, n = s->count, bytes = 0;
		struct room_rec *recs = s->recs, *next;
		s->recs = NULL;
		s->recs_tail = &s->recs;
		s->flush_now = 0;
		pthread_mutex_unlock(&s->lock);

		uint64_t t0 = now_ns();
		int rc = commit_batch(s, recs, head, n);
		metrics_store_commit(now_ns() - t0, rc == SQLITE_OK);
		for (; recs; recs = next) {
			next = recs->next;
			free(recs);
		}
		for (size_t i = 0; i < n; i++) {
			struct pending *p = &s->ring[(head + i) % s->opt.queue_max];
			bytes += p->frame->len;
			msg_unref(&p->frame);
		}

		pthread_mutex_lock(&s->lock);
		s->head = (head + n) % s->opt.queue_max;
		s->count -= n;
		metrics_store_queue(s->count);
		s->bytes -= bytes;
		s->settled += n;
		if (rc == SQLITE_OK) {
			s->stats.stored += n;
		} else {
			s->stats.failed += n;
			s->stats.write_errors++;
		}
		pthread_cond_broadcast(&s->done);
	}
	s->running = 0;
	pthread_cond_broadcast(&s->done);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int store_start(struct store *s)
{
	sigset_t all, old;
	int rc;

	if (!s)
		return 0;
	pthread_mutex_lock(&s->lock);
	s->running = 1;
	pthread_mutex_unlock(&s->lock);
	/* The thread inherits a mask with every signal blocked, so SIGINT and
	 * SIGTERM reach only the acceptor's signalfd. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&s->writer, NULL, writer_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc < 0) {
		pthread_mutex_lock(&s->lock);
		s->running = 0;
		pthread_mutex_unlock(&s->lock);
		return rc;
	}
	s->started = 1;
	return 0;
}

/* ---- reading history (room threads) ---- */

/* store_load_history's callback, carried through store_load_numbered. */
struct unnumbered {
	void (*fn)(void *arg, time_t when, const char *name, const char *text);
	void *arg;
};

static void drop_number(void *arg, time_t when, long seq, const char *name, const char *text)
{
	const struct unnumbered *u = arg;

	(void)seq;
	u->fn(u->arg, when, name, text);
}

long store_load_history(struct store *s, long ref, long n,
			void (*fn)(void *arg, time_t when, const char *name, const char *text),
			void *arg)
{
	struct unnumbered u = { fn, arg };

	return store_load_numbered(s, ref, n, drop_number, &u);
}

long store_load_numbered(struct store *s, long ref, long n,
			 void (*fn)(void *arg, time_t when, long seq, const char *name, const char *text),
			 void *arg)
{
	static const char sql[] =
		"SELECT at, seq, sender, text FROM (SELECT id, at, seq, sender, text FROM messages "
		"WHERE room_id = (SELECT id FROM rooms WHERE ref = ?1) AND at >= ?3 "
		"ORDER BY id DESC LIMIT ?2) ORDER BY id";
	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;
	long count = 0;
	int rc;

	if (!s || n <= 0)
		return 0;
	store_sync(s);
	rc = sqlite3_open_v2(s->path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(db, STORE_BUSY_MS);
		rc = sqlite3_prepare_v2(db, sql, -1, &q, NULL);
	}
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(q, 1, ref);
		sqlite3_bind_int64(q, 2, n);
		sqlite3_bind_int64(q, 3, s->opt.max_age > 0 ? (int64_t)time(NULL) - s->opt.max_age : INT64_MIN);
		while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
			fn(arg, (time_t)sqlite3_column_int64(q, 0), (long)sqlite3_column_int64(q, 1),
			   (const char *)sqlite3_column_text(q, 2), (const char *)sqlite3_column_text(q, 3));
			count++;
		}
		if (rc == SQLITE_DONE)
			rc = SQLITE_OK;
	}
	if (rc != SQLITE_OK)
		log_error("store: %s: cannot load the history of room ref %ld: %s", s->path, ref,
			  db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	sqlite3_finalize(q);
	sqlite3_close(db);
	return rc == SQLITE_OK ? count : -EIO;
}

/* ---- closing ---- */

void store_close(struct store *s)
{
	struct store_stats st;

	if (!s)
		return;
	if (s->started) {
		pthread_mutex_lock(&s->lock);
		s->stop = 1;
		pthread_cond_signal(&s->wake);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->writer, NULL);
	}
	store_get_stats(s, &st);
	if (st.dropped || st.failed)
		log_warn("store: %s: %llu messages stored, %llu not stored (queue full), %llu lost to %llu "
			 "failed commits", s->path, (unsigned long long)st.stored,
			 (unsigned long long)st.dropped, (unsigned long long)st.failed,
			 (unsigned long long)st.write_errors);
	else
		log_info("store: %s: %llu messages stored, none lost", s->path, (unsigned long long)st.stored);
	store_free(s);
}

/* ---- backup (roomd --backup) ---- */

static int file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 || errno != ENOENT;
}

/* Copy every page in one step: one read transaction, so the copy is one
 * consistent moment; in WAL mode the daemon keeps committing meanwhile. */
static int copy_pages(sqlite3 *src, sqlite3 *dst)
{
	sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
	int64_t give_up = now_ms() + STORE_BUSY_MS;
	int rc;

	if (!b)
		return sqlite3_errcode(dst);
	do {
		rc = sqlite3_backup_step(b, -1);
		if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
			sqlite3_sleep(20);
	} while ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED || rc == SQLITE_OK) && now_ms() < give_up);
	sqlite3_backup_finish(b);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int store_backup(const char *path, const char *dest, char *err, size_t errlen)
{
	sqlite3 *src = NULL, *dst = NULL;
	char res[256];
	int rc;

	if (file_exists(dest)) {
		snprintf(err, errlen, "backup %s: it exists already: remove it or choose another name", dest);
		return -1;
	}
	rc = sqlite3_open_v2(path, &src, SQLITE_OPEN_READONLY, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(src, STORE_BUSY_MS);
		rc = query_text(src, "SELECT value FROM meta WHERE key = 'schema_version'", res, sizeof(res));
	}
	if (rc != SQLITE_OK) {
		set_err(err, errlen, path, "cannot read it", rc, src ? sqlite3_errmsg(src) : NULL);
		sqlite3_close(src);
		return -1;
	}
	rc = sqlite3_open_v2(dest, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc == SQLITE_OK)
		rc = copy_pages(src, dst);
	if (rc == SQLITE_OK)
		rc = query_text(dst, "PRAGMA quick_check", res, sizeof(res));
	if (rc == SQLITE_OK && strcmp(res, "ok") != 0)
		rc = SQLITE_CORRUPT;
	if (rc != SQLITE_OK)
		snprintf(err, errlen, "backup %s of %s: %s (%s)", dest, path, sqlite3_errstr(rc),
			 dst ? sqlite3_errmsg(dst) : "");
	sqlite3_close(src);
	sqlite3_close(dst);
	if (rc != SQLITE_OK)
		unlink(dest); /* no half copy that looks like a backup */
	return rc == SQLITE_OK ? 0 : -1;
}

/* test_config.c - unit tests of the rooms.ini loader (common/config.c).
 *
 * Each case writes its own temporary file (mkstemp under $TMPDIR or /tmp),
 * loads it and checks the values or the exact error: file, line, section,
 * key and reason. The shipped conf/rooms.ini must load cleanly. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef ROOMD_SOURCE_DIR
#error "ROOMD_SOURCE_DIR must name the source tree (set by tests/CMakeLists.txt)"
#endif

#define ERRLEN 4096

/* A loaded config, its error text and the temporary file it came from. */
struct fixture {
	struct config cfg;
	char err[ERRLEN];
	char path[256];
	int rc;
};

static void write_tmp(struct fixture *f, const char *text)
{
	const char *dir = getenv("TMPDIR");
	size_t len = strlen(text);
	int fd;

	snprintf(f->path, sizeof f->path, "%s/test_config.XXXXXX", dir && *dir ? dir : "/tmp");
	fd = mkstemp(f->path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

/* Load text over the defaults. */
static struct fixture *load_text(const char *text)
{
	struct fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	write_tmp(f, text);
	config_defaults(&f->cfg);
	f->rc = config_load(&f->cfg, f->path, f->err, sizeof f->err);
	unlink(f->path);
	return f;
}

static void done(struct fixture *f)
{
	config_fini(&f->cfg);
	assert_null(f->cfg.rooms);
	assert_int_equal(f->cfg.nrooms, 0);
	free(f);
}

/* Assert the load failed and err contains "PATH:LINE: " + want. */
static void assert_error_at(const struct fixture *f, int line, const char *want)
{
	char prefix[300 + 64];

	assert_int_equal(f->rc, -1);
	assert_null(f->cfg.rooms);
	snprintf(prefix, sizeof prefix, "%s:%d: %s", f->path, line, want);
	if (!strstr(f->err, prefix))
		fail_msg("expected \"%s\" in:\n%s", prefix, f->err);
}

static void assert_ok(const struct fixture *f)
{
	if (f->rc != 0)
		fail_msg("load failed:\n%s", f->err);
	assert_string_equal(f->err, "");
}

static int count_lines(const char *s)
{
	int n = *s ? 1 : 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void test_defaults(void **state)
{
	struct config cfg;

	(void)state;
	config_defaults(&cfg);
	assert_string_equal(cfg.bind, "127.0.0.1");
	assert_int_equal(cfg.port, 9000);
	assert_string_equal(cfg.public_host, "");
	assert_int_equal(cfg.room_port_min, 9001);
	assert_int_equal(cfg.room_port_max, 9999);
	assert_string_equal(cfg.server_id, "roomd");
	assert_int_equal(cfg.log_level, LOG_INFO);
	assert_int_equal(cfg.log_target, LOG_TO_STDERR);
	assert_string_equal(cfg.welcome, "Welcome to roomd. Type help for the commands.");
	assert_int_equal(cfg.max_clients, 1024);
	assert_int_equal(cfg.max_clients_per_ip, 64);
	assert_int_equal(cfg.max_rooms, 256);
	assert_int_equal(cfg.max_members, 256);
	assert_int_equal(cfg.max_rooms_per_client, 32);
	assert_int_equal(cfg.max_name, 32);
	assert_int_equal(cfg.max_message, 4096);
	assert_int_equal(cfg.max_request, 8192);
	assert_true(cfg.max_request >= cfg.max_message + 512);
	assert_int_equal(cfg.sendq_bytes, 1048576);
	assert_int_equal(cfg.rate, 200);
	assert_int_equal(cfg.burst, 400);
	assert_int_equal(cfg.rate_per_ip, 1000);
	assert_int_equal(cfg.burst_per_ip, 2000);
	assert_int_equal(cfg.connect_rate_per_ip, 20);
	assert_int_equal(cfg.connect_burst_per_ip, 64);
	assert_int_equal(cfg.room_create_rate, 30);
	assert_int_equal(cfg.room_unattached_max, 8);
	assert_int_equal(cfg.idle_timeout, 300);
	assert_int_equal(cfg.end_quiet_ms, 250);
	assert_int_equal(cfg.history, 50);
	assert_int_equal(cfg.history_max_age, 0);
	assert_int_equal(cfg.name_scope, CONFIG_SCOPE_SERVER);
	assert_int_equal(cfg.dormant_room_ttl, 604800);
	assert_int_equal(cfg.max_dormant_rooms, 1024);
	assert_string_equal(cfg.database, "");
	assert_false(config_persistent(&cfg));
	assert_int_equal(cfg.room_creation, 1);
	assert_int_equal(cfg.kill_service, 0);
	assert_null(cfg.rooms);
	assert_int_equal(cfg.nrooms, 0);
	config_fini(&cfg);
}

static void test_empty_file_gives_defaults(void **state)
{
	struct fixture *f = load_text("; nothing here\n\n# nor here\n");
	struct config def;

	(void)state;
	assert_ok(f);
	config_defaults(&def);
	assert_int_equal(f->cfg.port, def.port);
	assert_int_equal(f->cfg.max_request, def.max_request);
	assert_int_equal(f->cfg.nrooms, 0);
	done(f);
}

static void test_full_file(void **state)
{
	struct fixture *f = load_text(
		"[Server]\n"
		"  BIND = ::1  ; IPv6 loopback\n"
		"port=7000\n"
		"public_host = chat.example.org\n"
		"room_port_min = 7100\n"
		"room_port_max = 7200\n"
		"server_id = \"Student 12345\"\n"
		"log_level = DEBUG\n"
		"welcome = \"Hi; be nice # really\"\n"
		"name_scope = Room\n"
		"\n"
		"[limits]\n"
		"max_clients = 10\n"
		"max_clients_per_ip = 2\n"
		"max_rooms = 5\n"
		"max_members = 3\n"
		"max_rooms_per_client = 4\n"
		"max_name = 64\n"
		"max_message = 100\n"
		"max_request = 612\n"
		"sendq_bytes = 65536\n"
		"rate = 5\n"
		"burst = 1\n"
		"idle_timeout = 0\n"
		"end_quiet_ms = 0\n"
		"history = 10000\n"
		"dormant_room_ttl = 0\n"
		"max_dormant_rooms = 0\n"
		"[features]\n"
		"room_creation = off\n"
		"kill_service = Yes\n"
		"[room:general]\n"
		"topic = all things \\\n"
		"   general\n"
		"max_members = 2\n");

	(void)state;
	assert_ok(f);
	assert_string_equal(f->cfg.bind, "::1");
	assert_int_equal(f->cfg.port, 7000);
	assert_string_equal(f->cfg.public_host, "chat.example.org");
	assert_int_equal(f->cfg.room_port_min, 7100);
	assert_int_equal(f->cfg.room_port_max, 7200);
	assert_string_equal(f->cfg.server_id, "Student 12345");
	assert_int_equal(f->cfg.log_level, LOG_DEBUG);
	assert_string_equal(f->cfg.welcome, "Hi; be nice # really");
	assert_int_equal(f->cfg.max_clients, 10);
	assert_int_equal(f->cfg.max_clients_per_ip, 2);
	assert_int_equal(f->cfg.max_rooms, 5);
	assert_int_equal(f->cfg.max_members, 3);
	assert_int_equal(f->cfg.max_rooms_per_client, 4);
	assert_int_equal(f->cfg.max_name, 64);
	assert_int_equal(f->cfg.max_message, 100);
	assert_int_equal(f->cfg.max_request, 612);
	assert_int_equal(f->cfg.end_quiet_ms, 0);
	assert_int_equal(f->cfg.sendq_bytes, 65536);
	assert_int_equal(f->cfg.rate, 5);
	assert_int_equal(f->cfg.burst, 1);
	assert_int_equal(f->cfg.idle_timeout, 0);
	assert_int_equal(f->cfg.history, 10000);
	assert_int_equal(f->cfg.name_scope, CONFIG_SCOPE_ROOM);
	assert_int_equal(f->cfg.dormant_room_ttl, 0);
	assert_int_equal(f->cfg.max_dormant_rooms, 0);
	assert_int_equal(f->cfg.room_creation, 0);
	assert_int_equal(f->cfg.kill_service, 1);
	assert_int_equal(f->cfg.nrooms, 1);
	assert_string_equal(f->cfg.rooms[0].name, "general");
	assert_int_equal(f->cfg.rooms[0].ref, 1);
	assert_int_equal(f->cfg.rooms[0].port, 0);
	assert_string_equal(f->cfg.rooms[0].topic, "all things    general");
	assert_int_equal(f->cfg.rooms[0].max_members, 2);
	assert_int_equal(f->cfg.rooms[0].line, 32);
	done(f);
}

static void test_shipped_config(void **state)
{
	struct config cfg, def;
	char err[ERRLEN];
	int rc;

	(void)state;
	config_defaults(&cfg);
	config_defaults(&def);
	rc = config_load(&cfg, ROOMD_SOURCE_DIR "/conf/rooms.ini", err, sizeof err);
	if (rc)
		fail_msg("conf/rooms.ini does not load:\n%s", err);
	/* The shipped file states the defaults. */
	assert_string_equal(cfg.bind, def.bind);
	assert_int_equal(cfg.port, def.port);
	assert_string_equal(cfg.public_host, def.public_host);
	assert_int_equal(cfg.room_port_min, def.room_port_min);
	assert_int_equal(cfg.room_port_max, def.room_port_max);
	assert_string_equal(cfg.server_id, def.server_id);
	assert_int_equal(cfg.log_level, def.log_level);
	assert_string_equal(cfg.welcome, def.welcome);
	assert_int_equal(cfg.max_clients, def.max_clients);
	assert_int_equal(cfg.max_clients_per_ip, def.max_clients_per_ip);
	assert_int_equal(cfg.max_rooms, def.max_rooms);
	assert_int_equal(cfg.max_members, def.max_members);
	assert_int_equal(cfg.max_rooms_per_client, def.max_rooms_per_client);
	assert_int_equal(cfg.max_name, def.max_name);
	assert_int_equal(cfg.max_message, def.max_message);
	assert_int_equal(cfg.max_request, def.max_request);
	assert_int_equal(cfg.sendq_bytes, def.sendq_bytes);
	assert_int_equal(cfg.rate, def.rate);
	assert_int_equal(cfg.burst, def.burst);
	assert_int_equal(cfg.rate_per_ip, def.rate_per_ip);
	assert_int_equal(cfg.burst_per_ip, def.burst_per_ip);
	assert_int_equal(cfg.connect_rate_per_ip, def.connect_rate_per_ip);
	assert_int_equal(cfg.connect_burst_per_ip, def.connect_burst_per_ip);
	assert_int_equal(cfg.room_create_rate, def.room_create_rate);
	assert_int_equal(cfg.room_unattached_max, def.room_unattached_max);
	assert_int_equal(cfg.idle_timeout, def.idle_timeout);
	assert_int_equal(cfg.history, def.history);
	assert_int_equal(cfg.history_max_age, def.history_max_age);
	assert_int_equal(cfg.name_scope, def.name_scope);
	assert_int_equal(cfg.dormant_room_ttl, def.dormant_room_ttl);
	assert_int_equal(cfg.max_dormant_rooms, def.max_dormant_rooms);
	/* Persistence is on in the shipped file (off by default), in a data
	 * directory next to it, whatever directory roomd starts from. */
	assert_string_equal(cfg.database, ROOMD_SOURCE_DIR "/conf/data/roomd.db");
	assert_true(config_persistent(&cfg));
	assert_int_equal(cfg.room_creation, def.room_creation);
	assert_int_equal(cfg.kill_service, def.kill_service);
	assert_true(cfg.nrooms >= 2);
	assert_string_equal(cfg.rooms[0].name, "lobby");
	assert_string_equal(cfg.rooms[1].name, "dev");
	assert_int_equal(cfg.rooms[1].port, 8999);
	for (size_t i = 0; i < cfg.nrooms; i++)
		assert_true(cfg.rooms[i].port == 0 || cfg.rooms[i].port < cfg.room_port_min ||
			    cfg.rooms[i].port > cfg.room_port_max);
	config_fini(&cfg);
}

static void test_missing_file(void **state)
{
	struct config cfg;
	char err[ERRLEN];

	(void)state;
	config_defaults(&cfg);
	assert_int_equal(config_load(&cfg, "/nonexistent/rooms.ini", err, sizeof err), -1);
	assert_string_equal(err, "/nonexistent/rooms.ini: cannot read: No such file or directory");
	assert_null(cfg.rooms);
	assert_int_equal(cfg.port, 9000);
}

static void test_directory(void **state)
{
	struct config cfg;
	char err[ERRLEN];

	(void)state;
	config_defaults(&cfg);
	assert_int_equal(config_load(&cfg, "/", err, sizeof err), -1);
	assert_string_equal(err, "/: cannot read: Is a directory");
}

/* One bad line each: the error names this line, section, key and reason. */
struct bad_case {
	const char *text;
	int line;
	const char *want; /* after "PATH:LINE: " */
};

static const struct bad_case bad_cases[] = {
	{ "[server]\nport = 9000\nprot = 1\n", 3, "[server] prot: unknown key (known here: bind, port," },
	{ "[limits]\n\n\nbind = 1.2.3.4\n", 4, "[limits] bind: unknown key" },
	{ "[room:x]\nmax_clients = 3\n", 2, "[room:x] max_clients: unknown key (known here: name, ref, port, topic, max_members, history, topic_change)" },
	{ "[server]\n[serve]\nport = 1\n", 2, "[serve]: unknown section" },
	{ "[rooms:x]\n", 1, "[rooms:x]: unknown section" },
	{ "port = 1\n", 1, "port: key outside any section" },
	{ "[limits]\nmax_rooms = abc\n", 2, "[limits] max_rooms: 'abc' is not an integer in 1..100000" },
	{ "[limits]\nmax_rooms = 0\n", 2, "[limits] max_rooms: '0' is not an integer in 1..100000" },
	{ "[limits]\nmax_rooms = 100001\n", 2, "[limits] max_rooms: '100001' is not an integer in 1..100000" },
	{ "[limits]\nmax_rooms = 12abc\n", 2, "[limits] max_rooms: '12abc' is not an integer" },
	{ "[limits]\nmax_rooms = +5\n", 2, "[limits] max_rooms: '+5' is not an integer" },
	{ "[limits]\nmax_rooms =\n", 2, "[limits] max_rooms: '' is not an integer" },
	{ "[limits]\nmax_rooms = 99999999999999999999999\n", 2, "[limits] max_rooms: '99999999999999999999999' is not" },
	{ "[limits]\nend_quiet_ms = -1\n", 2, "[limits] end_quiet_ms: '-1' is not an integer in 0..10000" },
	{ "[limits]\nend_quiet_ms = 10001\n", 2, "[limits] end_quiet_ms: '10001' is not an integer in 0..10000" },
	{ "[limits]\nhistory = -1\n", 2, "[limits] history: '-1' is not an integer in 0..10000" },
	{ "[limits]\nhistory = 10001\n", 2, "[limits] history: '10001' is not an integer in 0..10000" },
	{ "[limits]\nhistory_max_age = -1\n", 2, "[limits] history_max_age: '-1' is not an integer in 0..3153600000" },
	{ "[limits]\nhistory_max_age = 1d\n", 2, "[limits] history_max_age: '1d' is not an integer" },
	{ "[limits]\ndormant_room_ttl = -1\n", 2, "[limits] dormant_room_ttl: '-1' is not an integer in 0..3153600000" },
	{ "[limits]\nmax_dormant_rooms = 100001\n", 2, "[limits] max_dormant_rooms: '100001' is not an integer in 0..100000" },
	{ "[server]\nname_scope = global\n", 2, "[server] name_scope: 'global' is not a name scope (server, room)" },
	{ "[server]\ndatabase = \"a\tb\"\n", 2, "[server] database: 'a?b' contains a control byte" },
	{ "[limits]\nmax_name = 65\n", 2, "[limits] max_name: '65' is not an integer in 1..64" },
	{ "[limits]\nsendq_bytes = 65535\n", 2, "[limits] sendq_bytes: '65535' is not an integer in 65536.." },
	{ "[server]\nroom_port_min = 0\n", 2, "[server] room_port_min: the room port range 0..9999 must be two ports, or 0..0 for any free port" },
	{ "[server]\nport = 65536\n", 2, "[server] port: '65536' is not an integer in 0..65535" },
	{ "[features]\nroom_creation = maybe\n", 2, "[features] room_creation: 'maybe' is not a boolean" },
	{ "[features]\nkill_service = 2\n", 2, "[features] kill_service: '2' is not a boolean" },
	{ "[features]\nkill_service = yess\n", 2, "[features] kill_service: 'yess' is not a boolean" },
	{ "[server]\nbind = localhost\n", 2, "[server] bind: 'localhost' is not a numeric IPv4 or IPv6 address" },
	{ "[server]\nbind = 1.2.3\n", 2, "[server] bind: '1.2.3' is not a numeric" },
	{ "[server]\nbind = 0.0.0.0:9000\n", 2, "[server] bind: '0.0.0.0:9000' is not a numeric" },
	{ "[server]\nbind =\n", 2, "[server] bind: '' is 0 bytes long, not 1..383" },
	{ "[server]\nbind = 127.0.0.1,\n", 2, "[server] bind: '' is not a numeric IPv4 or IPv6 address (a list: "
	  "'127.0.0.1, ::1'; 0.0.0.0 or :: for all interfaces)" },
	{ "[server]\nbind = 127.0.0.1, , ::1\n", 2, "[server] bind: '' is not a numeric" },
	{ "[server]\nbind = 127.0.0.1 ::1\n", 2, "[server] bind: '127.0.0.1 ::1' is not a numeric" },
	{ "[server]\nbind = 127.0.0.1, [::1]\n", 2, "[server] bind: '[::1]' is not a numeric" },
	{ "[server]\nbind = ::1, 0:0::1\n", 2, "[server] bind: '::1' is listed twice" },
	{ "[server]\nbind = 0.0.0.0, 127.0.0.1\n", 2,
	  "[server] bind: '0.0.0.0' already listens on '127.0.0.1': give one or the other" },
	{ "[server]\nbind = ::1, ::\n", 2, "[server] bind: '::' already listens on '::1'" },
	{ "[server]\nbind = 10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4,10.0.0.5,10.0.0.6,10.0.0.7,10.0.0.8,10.0.0.9\n", 2,
	  "[server] bind: more than 8 addresses" },
	{ "[server]\nlog_level = verbose\n", 2, "[server] log_level: 'verbose' is not a log level (error, warn, info, debug)" },
	{ "[server]\nserver_id = \"\"\n", 2, "[server] server_id: '' is 0 bytes long, not 1..64" },
	{ "[server]\nserver_id = 01234567890123456789012345678901234567890123456789012345678901234\n", 2,
	  "[server] server_id: '012345678901234567890123456789012345678901234567890123456789...' is 65 bytes long, not 1..64" },
	{ "[server]\npublic_host = \"my host\"\n", 2, "[server] public_host: 'my host' contains a space" },
	{ "[server]\nwelcome = \"a\tb\"\n", 2, "[server] welcome: 'a?b' contains a control byte" },
	{ "[room:x]\ntopic = \"a\tb\"\n", 2, "[room:x] topic: 'a?b' contains a control byte" },
	{ "[room:x]\ntopic = \"a\x1b[2Jb\"\n", 2, "[room:x] topic: 'a?[2Jb' contains a control byte" },
	{ "[room:x]\ntopic = \"a\x7f\"\n", 2, "[room:x] topic: 'a?' contains a control byte" },
	{ "[server]\nport = 1\n[server]\n", 3, "[server]: duplicate section (first at line 1)" },
	{ "[limits]\nrate = 1\nrate = 2\n", 3, "[limits] rate: duplicate key (first at line 2)" },
	{ "[limits]\nrate_per_ip = 0\n", 2, "[limits] rate_per_ip: '0' is not an integer in 1..1000000" },
	{ "[limits]\nburst_per_ip = x\n", 2, "[limits] burst_per_ip: 'x' is not an integer in 1..1000000" },
	{ "[limits]\nconnect_rate_per_ip = 1000001\n", 2,
	  "[limits] connect_rate_per_ip: '1000001' is not an integer in 1..1000000" },
	{ "[limits]\nconnect_burst_per_ip = -1\n", 2,
	  "[limits] connect_burst_per_ip: '-1' is not an integer in 1..1000000" },
	{ "[limits]\nroom_create_rate = 0\n", 2, "[limits] room_create_rate: '0' is not an integer in 1..1000000" },
	{ "[limits]\nroom_unattached_max = 1025\n", 2,
	  "[limits] room_unattached_max: '1025' is not an integer in 1..1024" },
	{ "[server]\njunk\n", 2, "syntax error: expected [section] or key = value, not 'junk'" },
	{ "[server]\n= 5\n", 2, "syntax error" },
	{ "[server\n", 1, "syntax error" },
	{ "[server] ; main\n", 1, "syntax error: expected [section] or key = value, not '[server] ; main' "
	  "(no comment may follow a section header)" },
	{ "[]\n", 1, "empty section name" },
	{ "[server]\nport = 1\\\n", 2, "the last line ends in a backslash" },
	/* cross-field constraints */
	{ "[server]\nroom_port_min = 9500\nroom_port_max = 9400\n", 3,
	  "[server] room_port_max: the room port range 9500..9400 is empty" },
	{ "[server]\nport = 9500\n", 2, "[server] port: the control port 9500 is inside the room port range 9001..9999" },
	{ "[server]\nroom_port_min = 8000\n", 2, "[server] room_port_min: the control port 9000 is inside" },
	{ "[limits]\nmax_message = 8000\n", 2, "[limits] max_message: max_request 8192 is below max_message + 512 = 8512" },
	{ "[limits]\nmax_request = 4607\n", 2, "[limits] max_request: max_request 4607 is below max_message + 512 = 4608" },
	{ "[limits]\nmax_message = 60000\nmax_request = 60512\nsendq_bytes = 200000\n", 4,
	  "[limits] sendq_bytes: sendq_bytes 200000 is below 4 x max_request = 242048" },
	{ "[limits]\nhistory = 4097\n", 2, "[limits] history: history 4097 x max_message 4096 = 16781312 "
	  "bytes is over 16777216 (16 MiB)" },
	{ "[limits]\nmax_message = 1048576\nmax_request = 1049088\nsendq_bytes = 4196352\n", 2,
	  "[limits] max_message: history 50 x max_message 1048576 = 52428800 bytes is over 16777216" },
	{ "[limits]\nmax_message = 8192\nmax_request = 8704\n[room:a]\nhistory = 2049\n", 5,
	  "[room:a] history: 2049 x max_message 8192 = 16785408 bytes is over 16777216 (16 MiB)" },
	{ "[limits]\nmax_rooms = 1\n[room:a]\n[room:b]\n", 4, "[room:b]: one room more than [limits] max_rooms = 1" },
	/* rooms */
	{ "[room:a]\n[room:b]\n[room:a]\n", 3, "[room:a]: duplicate section (first at line 1)" },
	{ "[room:]\n", 1, "[room:] name: '' is not a valid room name" },
	{ "[room:a/b]\n", 1, "[room:a/b] name: 'a/b' is not a valid room name: 1..32 bytes of letters, "
	  "digits, - _ . # @ + and inner spaces (taken from the section name" },
	{ "[room:a]\nname = b:c\n", 2, "[room:a] name: 'b:c' is not a valid room name" },
	{ "[limits]\nmax_name = 3\n[room:abcd]\n", 3, "[room:abcd] name: 'abcd' is not a valid room name: 1..3 bytes" },
	{ "[room:a]\nname = 01234567890123456789012345678901234567890123456789012345678901234\n", 2,
	  "[room:a] name: '012345678901234567890123456789012345678901234567890123456789...' is 65 bytes long, not 1..64" },
	{ "[room:a]\n[room:b]\nname = a\n", 3, "[room:b] name: 'a' is also the name of [room:a] (line 1)" },
	{ "[room:a]\nref = 7\n[room:b]\nref = 7\n", 4, "[room:b] ref: 7 is also the ref of [room:a] (line 1)" },
	{ "[room:a]\n[room:b]\nref = 1\n", 3, "[room:b] ref: 1 is also the ref of [room:a] (line 1, by its position)" },
	{ "[room:a]\nref = 2\n[room:b]\n", 3, "[room:b] ref: 2 (its position, as it sets no ref) is also the ref of [room:a]" },
	{ "[room:a]\nref = 0\n", 2, "[room:a] ref: '0' is not an integer in 1..2147483647" },
	{ "[room:a]\nport = 8000\n[room:b]\nport = 8000\n", 4, "[room:b] port: 8000 is also the port of [room:a] (line 1)" },
	{ "[room:a]\nport = 9001\n", 2, "[room:a] port: 9001 is inside room_port_min..room_port_max (9001..9999)" },
	{ "[room:a]\nport = 9999\n", 2, "[room:a] port: 9999 is inside" },
	{ "[room:a]\nport = 9000\n", 2, "[room:a] port: 9000 is the control port" },
	{ "[room:a]\nmax_members = -1\n", 2, "[room:a] max_members: '-1' is not an integer in 0..100000" },
};

static void test_bad_values(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
		struct fixture *f = load_text(bad_cases[i].text);

		if (f->rc != -1)
			fail_msg("case %zu loaded but should not:\n%s", i, bad_cases[i].text);
		assert_error_at(f, bad_cases[i].line, bad_cases[i].want);
		done(f);
	}
}

/* Values at the ends of their ranges load. */
static void test_range_edges(void **state)
{
	static const char *const good[] = {
		"[server]\nport = 1\n",
		"[server]\nport = 65535\nroom_port_max = 65534\n",
		"[server]\nroom_port_min = 9500\nroom_port_max = 9500\n",
		"[server]\nbind = 0.0.0.0\n",
		"[server]\nbind = ::\n",
		"[server]\nbind = fe80::1\n",
		"[server]\nbind = 127.0.0.1, ::1\n",
		"[server]\nbind = ::, 0.0.0.0\n", /* the IPv6 socket is then IPV6_V6ONLY */
		"[server]\nbind = 10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4,10.0.0.5,10.0.0.6,10.0.0.7,10.0.0.8\n",
		"[server]\nbind = ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff1, ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff2, "
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff3, ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff4, "
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff5, ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff6, "
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff7, ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff8\n",
		"[server]\nlog_level = error\n",
		"[server]\npublic_host =\n",
		"[server]\nwelcome = ''\n",
		"[limits]\nmax_name = 1\n",
		"[limits]\nmax_message = 1\nmax_request = 513\n",
		"[limits]\nmax_message = 1048576\nmax_request = 1049088\nsendq_bytes = 4196352\nhistory = 16\n",
		"[limits]\nhistory = 4096\n", /* x 4096 = 16 MiB: at the cap */
		"[room:a]\nhistory = 4096\n",
		"[limits]\nhistory = 0\nidle_timeout = 604800\n",
		"[limits]\nrate_per_ip = 1\nburst_per_ip = 1\nconnect_rate_per_ip = 1\nconnect_burst_per_ip = 1\n"
		"room_create_rate = 1\nroom_unattached_max = 1\n",
		"[limits]\nrate_per_ip = 1000000\nburst_per_ip = 1000000\nconnect_rate_per_ip = 1000000\n"
		"connect_burst_per_ip = 1000000\nroom_create_rate = 1000000\nroom_unattached_max = 1024\n",
		"[features]\nroom_creation = 0\nkill_service = ON\n",
		"[room:a]\nref = 2147483647\nport = 65535\nmax_members = 0\n",
		"[room:a]\nport = 9000\n[server]\nport = 8000\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		struct fixture *f = load_text(good[i]);

		if (f->rc)
			fail_msg("case %zu should load:\n%s\n-> %s", i, good[i], f->err);
		done(f);
	}
}

static void test_booleans(void **state)
{
	static const struct {
		const char *v;
		int want;
	} cases[] = {
		{ "true", 1 }, { "TRUE", 1 }, { "yes", 1 }, { "on", 1 }, { "1", 1 },
		{ "false", 0 }, { "No", 0 }, { "off", 0 }, { "0", 0 },
	};
	char text[128];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct fixture *f;

		snprintf(text, sizeof text, "[features]\nkill_service = %s\nroom_creation = %s\n", cases[i].v,
			 cases[i].v);
		f = load_text(text);
		assert_ok(f);
		assert_int_equal(f->cfg.kill_service, cases[i].want);
		assert_int_equal(f->cfg.room_creation, cases[i].want);
		done(f);
	}
}

static void test_log_levels(void **state)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	char text[64];

	(void)state;
	for (int i = 0; i < 4; i++) {
		struct fixture *f;

		snprintf(text, sizeof text, "[server]\nlog_level = %s\n", names[i]);
		f = load_text(text);
		assert_ok(f);
		assert_int_equal(f->cfg.log_level, i);
		done(f);
	}
	assert_int_equal(LOG_ERROR, 0);
	assert_int_equal(LOG_DEBUG, 3);
}

/* [metrics] listen: off by default and when empty; ADDR:PORT with a
 * numeric IPv4 address or [ADDR6]:PORT, port 0..65535; anything else, and
 * an unknown key of [metrics], refused with its line. */
static void test_metrics_listen(void **state)
{
	static const char *const good[][3] = {
		{ "127.0.0.1:9101", "127.0.0.1", "9101" }, { "0.0.0.0:0", "0.0.0.0", "0" },
		{ "[::1]:9101", "::1", "9101" }, { "[::]:65535", "::", "65535" },
	};
	static const char *const bad[] = { "localhost:9101", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536",
					   "127.0.0.1:-1", "::1:9101", "[::1]9101", "[127.0.0.1]:1",
					   ":9101", "127.0.0.1:91 01", "[::1:9101" };
	char text[200], want[200], host[64];
	struct fixture *f;
	unsigned port;

	(void)state;
	f = load_text("[server]\n");
	assert_ok(f);
	assert_string_equal(f->cfg.metrics_listen, "");
	done(f);
	f = load_text("[metrics]\nlisten =\n");
	assert_ok(f);
	assert_string_equal(f->cfg.metrics_listen, "");
	done(f);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(text, sizeof text, "[metrics]\nlisten = %s\n", good[i][0]);
		f = load_text(text);
		assert_ok(f);
		assert_string_equal(f->cfg.metrics_listen, good[i][0]);
		done(f);
		assert_int_equal(config_split_listen(good[i][0], host, sizeof host, &port), 0);
		assert_string_equal(host, good[i][1]);
		assert_int_equal(port, (unsigned)atoi(good[i][2]));
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof text, "[metrics]\n\nlisten = %s\n", bad[i]);
		snprintf(want, sizeof want, "[metrics] listen: '%s' is not ADDR:PORT or [ADDR6]:PORT", bad[i]);
		f = load_text(text);
		assert_error_at(f, 3, want);
		done(f);
		assert_int_equal(config_split_listen(bad[i], NULL, 0, NULL), -1);
	}
	f = load_text("[metrics]\nport = 9101\n");
	assert_error_at(f, 2, "[metrics] port: unknown key (known here: listen)");
	done(f);
}

/* [server] log_target: stderr (the default) or syslog, any case; anything
 * else refused with its line. */
static void test_log_target(void **state)
{
	struct fixture *f;

	(void)state;
	f = load_text("[server]\n");
	assert_ok(f);
	assert_int_equal(f->cfg.log_target, LOG_TO_STDERR);
	done(f);
	f = load_text("[server]\nlog_target = syslog\n");
	assert_ok(f);
	assert_int_equal(f->cfg.log_target, LOG_TO_SYSLOG);
	done(f);
	f = load_text("[server]\nlog_target = STDERR\n");
	assert_ok(f);
	assert_int_equal(f->cfg.log_target, LOG_TO_STDERR);
	done(f);
	f = load_text("[server]\n\nlog_target = journal\n");
	assert_error_at(f, 3, "[server] log_target: 'journal' is not a log target (stderr, syslog)");
	done(f);
	assert_int_equal(log_target_parse("syslog"), LOG_TO_SYSLOG);
	assert_int_equal(log_target_parse("file"), -1);
	assert_string_equal(log_target_name(LOG_TO_STDERR), "stderr");
}

/* [tls]: the modes and versions by name, what a mode needs, relative
 * paths against the file's directory, and the keys listed apart. */
static void count_tls_key(const char *section, const char *key, void *arg)
{
	(void)key;
	*(int *)arg += strcmp(section, "tls") == 0 ? 1 : 1000;
}

static void test_tls_keys(void **state)
{
	struct fixture *f;
	char want[300];
	int n = 0;

	(void)state;
	f = load_text("[tls]\nmode = optional\ncert = c.pem\nkey = /k.pem\nmin_version = 1.3\n");
	assert_ok(f);
	assert_int_equal(f->cfg.tls_mode, CONFIG_TLS_OPTIONAL);
	assert_int_equal(f->cfg.tls_min_version, CONFIG_TLS_13);
	snprintf(want, sizeof want, "%.*s/c.pem", (int)(strrchr(f->path, '/') - f->path), f->path);
	assert_string_equal(f->cfg.tls_cert, want);
	assert_string_equal(f->cfg.tls_key, "/k.pem");
	done(f);
	f = load_text("[tls]\nmode = sometimes\n");
	assert_error_at(f, 2, "[tls] mode: 'sometimes' is not a TLS mode (off, optional, required)");
	done(f);
	f = load_text("[tls]\nmin_version = 1.1\n");
	assert_error_at(f, 2, "[tls] min_version: '1.1' is not a TLS version");
	done(f);
	f = load_text("[tls]\ncert = /c.pem\nmode = required\n");
	assert_error_at(f, 3, "[tls] mode: mode required needs a cert and a key");
	done(f);
	f = load_text("[tls]\nverify_clients = yes\n");
	assert_error_at(f, 2, "[tls] verify_clients: verify_clients needs ca");
	done(f);
	f = load_text("[tls]\n");
	assert_ok(f);
	assert_int_equal(f->cfg.tls_mode, CONFIG_TLS_OFF);
	done(f);
	config_each_tls_key(count_tls_key, &n);
	assert_int_equal(n, 6); /* mode cert key ca min_version verify_clients */
}

/* config_each_key: every key once, sections as the loader names them. */
struct key_seen {
	int n, rooms, log_target, bogus;
};

static void see_key(const char *section, const char *key, void *arg)
{
	struct key_seen *ks = arg;

	ks->n++;
	ks->rooms += strcmp(section, "room") == 0;
	ks->log_target += strcmp(section, "server") == 0 && strcmp(key, "log_target") == 0;
	ks->bogus += strcmp(section, "server") && strcmp(section, "limits") && strcmp(section, "features") &&
		     strcmp(section, "metrics") && strcmp(section, "room");
}

static void test_each_key(void **state)
{
	struct key_seen ks = { 0, 0, 0, 0 };

	(void)state;
	config_each_key(see_key, &ks);
	assert_int_equal(ks.log_target, 1);
	assert_int_equal(ks.rooms, 7); /* name ref port topic max_members history topic_change */
	assert_int_equal(ks.bogus, 0);
	assert_true(ks.n >= 35);
}

/* config_diff names exactly the keys whose values differ: strings,
 * numbers, booleans, enums; room keys by room name; rooms added and
 * removed with a NULL key. */
struct diff_seen {
	char text[512];
};

static void see_diff(const char *section, const char *key, void *arg)
{
	struct diff_seen *ds = arg;
	size_t used = strlen(ds->text);

	snprintf(ds->text + used, sizeof ds->text - used, "%s.%s;", section, key ? key : "*");
}

static void test_diff(void **state)
{
	struct fixture *a, *b;
	struct diff_seen ds = { "" };

	(void)state;
	a = load_text("[server]\nwelcome = hi\n[limits]\nmax_clients = 10\n[room:lobby]\n[room:dev]\nport = 8999\n");
	assert_ok(a);
	config_diff(&a->cfg, &a->cfg, see_diff, &ds);
	assert_string_equal(ds.text, "");
	b = load_text("[server]\nwelcome = hello\nlog_target = syslog\nlog_level = debug\n"
		      "[limits]\nmax_clients = 10\nrate = 5\n[features]\nkill_service = yes\n"
		      "[room:dev]\nport = 8998\n[room:ops]\n");
	assert_ok(b);
	config_diff(&a->cfg, &b->cfg, see_diff, &ds);
	/* Order: global keys in table order, then a's rooms, then b's new ones.
	 * lobby's ref (1 -> none: dev is now first) is not compared: lobby is gone. */
	assert_string_equal(ds.text, "server.log_level;server.log_target;server.welcome;limits.rate;"
				     "features.kill_service;room:lobby.*;room:dev.ref;room:dev.port;room:ops.*;");
	done(a);
	done(b);
}

/* Values as rooms.ini spells them (a room's unset keys as the server's),
 * a restart-only key put back from the running config, and a snapshot's
 * references. */
static void test_values_and_snapshots(void **state)
{
	struct fixture *a, *b;
	char v[128];
	const struct config *held;
	struct config *snap;

	(void)state;
	a = load_text("[server]\nwelcome = \"a ; b\"\n[limits]\nhistory = 7\n[room:dev]\nport = 8999\n");
	assert_ok(a);
	assert_int_equal(config_value_text(&a->cfg, "server", "welcome", v, sizeof v), 0);
	assert_string_equal(v, "\"a ; b\"");
	assert_int_equal(config_value_text(&a->cfg, "room:dev", "history", v, sizeof v), 0);
	assert_string_equal(v, "7");
	assert_int_equal(config_value_text(&a->cfg, "room:dev", "topic_change", v, sizeof v), 0);
	assert_string_equal(v, "true");
	assert_int_equal(config_value_text(&a->cfg, "room:nope", "port", v, sizeof v), -1);
	assert_int_equal(config_value_text(&a->cfg, "limits", "nope", v, sizeof v), -1);
	b = load_text("[server]\nbind = ::1\nwelcome = x\n[room:dev]\nport = 8998\n");
	assert_ok(b);
	assert_int_equal(config_keep_value(&b->cfg, &a->cfg, "server", "bind"), 0);
	assert_string_equal(b->cfg.bind, "127.0.0.1");
	assert_int_equal(config_keep_value(&b->cfg, &a->cfg, "room:dev", "port"), 0);
	assert_int_equal(b->cfg.rooms[0].port, 8999);
	assert_string_equal(b->cfg.welcome, "x");
	assert_int_equal(config_keep_value(&b->cfg, &a->cfg, "room:dev", "name"), -1);
	done(a);
	done(b);

	snap = config_create();
	assert_non_null(snap);
	assert_int_equal(snap->history, 50);
	held = config_hold(snap);
	assert_ptr_equal(held, snap);
	config_release(snap);
	config_release(held); /* the last: freed (ASan would see a leak or a double free) */
	config_release(NULL);
}

/* A bind list is stored in canonical form and splits back into its
 * addresses, in order; a reload that only respells it changes nothing,
 * one that reorders or adds an address is a change (a restart). */
static void test_bind_list(void **state)
{
	struct fixture *a = load_text("[server]\nbind =  127.0.0.1 ,0:0:0::1\t\n");
	struct fixture *b = load_text("[server]\nbind = 127.0.0.1, ::1\n");
	struct fixture *c = load_text("[server]\nbind = ::1, 127.0.0.1\n");
	struct fixture *d = load_text("[server]\nbind = 127.0.0.1\n");
	struct diff_seen ds = { "" };
	struct config_addrs l;
	char why[256];

	(void)state;
	assert_ok(a);
	assert_string_equal(a->cfg.bind, "127.0.0.1, ::1");
	assert_int_equal(config_bind_addrs(a->cfg.bind, &l, why, sizeof why), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.ptr[0], "127.0.0.1");
	assert_string_equal(l.ptr[1], "::1");
	assert_ptr_equal(l.ptr[1], l.addr[1]);
	assert_ok(d);
	assert_string_equal(d->cfg.bind, "127.0.0.1"); /* one address: as before */
	assert_int_equal(config_bind_addrs(d->cfg.bind, &l, why, sizeof why), 0);
	assert_int_equal(l.n, 1);
	config_diff(&a->cfg, &b->cfg, see_diff, &ds);
	assert_string_equal(ds.text, "");
	config_diff(&b->cfg, &c->cfg, see_diff, &ds);
	config_diff(&b->cfg, &d->cfg, see_diff, &ds);
	assert_string_equal(ds.text, "server.bind;server.bind;");
	assert_int_equal(config_bind_addrs("::, ::1", &l, why, sizeof why), -1);
	assert_string_equal(why, "'::' already listens on '::1': give one or the other");
	done(a);
	done(b);
	done(c);
	done(d);
}

static void test_room_defaults(void **state)
{
	struct fixture *f = load_text(
		"; rooms\n"
		"[room:Lobby]\n"
		"topic = 'hello there'\n"
		"[room:b]\n"
		"ref = 10\n"
		"name = Bee\n"
		"port = 8500\n"
		"max_members = 7\n"
		"[room:c]\n");

	(void)state;
	assert_ok(f);
	assert_int_equal(f->cfg.nrooms, 3);
	/* The section name is lowercased by iniparser; a name key keeps capitals. */
	assert_string_equal(f->cfg.rooms[0].name, "lobby");
	assert_int_equal(f->cfg.rooms[0].ref, 1);
	assert_int_equal(f->cfg.rooms[0].port, 0);
	assert_int_equal(f->cfg.rooms[0].max_members, 0);
	assert_string_equal(f->cfg.rooms[0].topic, "hello there");
	assert_int_equal(f->cfg.rooms[0].line, 2);
	assert_string_equal(f->cfg.rooms[1].name, "Bee");
	assert_int_equal(f->cfg.rooms[1].ref, 10);
	assert_int_equal(f->cfg.rooms[1].port, 8500);
	assert_int_equal(f->cfg.rooms[1].max_members, 7);
	assert_int_equal(f->cfg.rooms[1].line, 4);
	assert_string_equal(f->cfg.rooms[2].name, "c");
	assert_int_equal(f->cfg.rooms[2].ref, 3);
	assert_string_equal(f->cfg.rooms[2].topic, "");
	assert_int_equal(f->cfg.rooms[2].line, 9);
	done(f);
}

static void test_room_limit(void **state)
{
	size_t n = CONFIG_MAX_ROOMS_DEFINED + 1, len = 0, cap = n * 32 + 64;
	char *text = malloc(cap);
	struct fixture *f;

	(void)state;
	assert_non_null(text);
	len += (size_t)snprintf(text + len, cap - len, "[limits]\nmax_rooms = 100000\n");
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, cap - len, "[room:r%zu]\n", i);
	f = load_text(text);
	assert_error_at(f, 3 + CONFIG_MAX_ROOMS_DEFINED, "[room:r4096]: more than 4096 rooms defined");
	done(f);
	/* Exactly the maximum loads. */
	text[len - strlen("[room:r4096]\n")] = '\0';
	f = load_text(text);
	assert_ok(f);
	assert_int_equal(f->cfg.nrooms, CONFIG_MAX_ROOMS_DEFINED);
	assert_int_equal(f->cfg.rooms[4095].ref, 4096);
	done(f);
	free(text);
}

static void test_several_errors(void **state)
{
	struct fixture *f = load_text(
		"[server]\n"
		"port = x\n"            /* 2 */
		"colour = blue\n"       /* 3 */
		"[limits]\n"
		"rate = 0\n"            /* 5 */
		"[features]\n"
		"kill_service = sure\n" /* 7 */
		"[nope]\n");            /* 8 */

	(void)state;
	assert_error_at(f, 2, "[server] port: 'x' is not an integer in 0..65535");
	assert_error_at(f, 3, "[server] colour: unknown key");
	assert_error_at(f, 5, "[limits] rate: '0' is not an integer in 1..1000000");
	assert_error_at(f, 7, "[features] kill_service: 'sure' is not a boolean");
	assert_error_at(f, 8, "[nope]: unknown section");
	assert_int_equal(count_lines(f->err), 5);
	/* In file order. */
	assert_true(strstr(f->err, "port:") < strstr(f->err, "colour:"));
	assert_true(strstr(f->err, "rate:") < strstr(f->err, "[nope]"));
	done(f);
}

/* Cross-key faults are found last but listed in line order with the rest. */
static void test_errors_in_line_order(void **state)
{
	struct fixture *f = load_text("[server]\nport = 9500\nbind = nowhere\n");
	char want[400];

	(void)state;
	snprintf(want, sizeof want, "%s:2: [server] port: the control port 9500 is inside", f->path);
	assert_int_equal(strncmp(f->err, want, strlen(want)), 0);
	assert_error_at(f, 3, "[server] bind: 'nowhere' is not a numeric");
	assert_int_equal(count_lines(f->err), 2);
	done(f);
}

/* iniparser's own messages are captured, never printed. */
static void test_iniparser_is_quiet(void **state)
{
	char path[] = "/tmp/test_config_stderr.XXXXXX";
	int fd = mkstemp(path), saved = dup(2);
	struct fixture *f;
	off_t size;

	(void)state;
	assert_true(fd >= 0 && saved >= 0);
	assert_int_equal(dup2(fd, 2), 2);
	f = load_text("[server]\nthis is not ini\n");
	assert_int_equal(f->rc, -1);
	done(f);
	f = load_text("[server]\nport = 1\\\n");
	done(f);
	{
		struct config cfg;
		char err[256];

		config_defaults(&cfg);
		assert_int_equal(config_load(&cfg, "/nonexistent/x.ini", err, sizeof err), -1);
	}
	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	size = lseek(fd, 0, SEEK_END);
	close(fd);
	unlink(path);
	assert_int_equal(size, 0);
}

static void test_error_cap(void **state)
{
	char text[1024];
	size_t len = 0;
	struct fixture *f;
	char want[400];

	(void)state;
	len += (size_t)snprintf(text + len, sizeof text - len, "[limits]\n");
	for (int i = 0; i < 12; i++)
		len += (size_t)snprintf(text + len, sizeof text - len, "bad%d = 1\n", i);
	f = load_text(text);
	assert_int_equal(f->rc, -1);
	assert_int_equal(count_lines(f->err), 9);
	snprintf(want, sizeof want, "\n%s: ... and 4 more errors", f->path);
	assert_non_null(strstr(f->err, want));
	assert_error_at(f, 9, "[limits] bad7: unknown key");
	assert_null(strstr(f->err, "bad8"));
	done(f);
}

static void test_small_err_buffer(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	char small[24];

	(void)state;
	assert_non_null(f);
	write_tmp(f, "[limits]\nmax_rooms = abc\nfoo = 1\n");
	config_defaults(&f->cfg);
	memset(small, 'x', sizeof small);
	assert_int_equal(config_load(&f->cfg, f->path, small, sizeof small), -1);
	assert_int_equal(strlen(small), sizeof small - 1);
	assert_int_equal(config_load(&f->cfg, f->path, NULL, 0), -1);
	unlink(f->path);
	done(f);
}

static void test_failure_leaves_cfg(void **state)
{
	struct fixture *f = load_text("[server]\nport = 7000\n[room:a]\n[limits]\nrate = x\n");

	(void)state;
	assert_int_equal(f->rc, -1);
	assert_int_equal(f->cfg.port, 9000);
	assert_null(f->cfg.rooms);
	assert_int_equal(f->cfg.nrooms, 0);
	done(f);
}

static void test_reload_replaces_rooms(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	(void)state;
	assert_non_null(f);
	config_defaults(&f->cfg);
	write_tmp(f, "[room:a]\n[room:b]\n");
	assert_int_equal(config_load(&f->cfg, f->path, f->err, sizeof f->err), 0);
	unlink(f->path);
	assert_int_equal(f->cfg.nrooms, 2);
	write_tmp(f, "[room:c]\n");
	assert_int_equal(config_load(&f->cfg, f->path, f->err, sizeof f->err), 0);
	unlink(f->path);
	assert_int_equal(f->cfg.nrooms, 1);
	assert_string_equal(f->cfg.rooms[0].name, "c");
	done(f);
}

static void test_crlf_and_comments(void **state)
{
	struct fixture *f = load_text(
		"# comment\r\n"
		"[server]\r\n"
		"port = 7001 ; trailing comment\r\n"
		"\t; indented comment\r\n"
		"server_id = id#1\r\n"
		"[room:a] \r\n");

	(void)state;
	assert_ok(f);
	assert_int_equal(f->cfg.port, 7001);
	assert_string_equal(f->cfg.server_id, "id"); /* '#' starts a comment unless quoted */
	assert_string_equal(f->cfg.rooms[0].name, "a");
	done(f);
}

static void test_long_line(void **state)
{
	char text[1200];
	struct fixture *f;

	(void)state;
	/* 1022 bytes a line is iniparser's limit. */
	snprintf(text, sizeof text, "[server]\nwelcome = %01011d\n", 0);
	assert_int_equal(strlen("welcome = ") + 1011, 1021);
	f = load_text(text);
	assert_ok(f);
	assert_int_equal(strlen(f->cfg.welcome), 1011);
	done(f);
	snprintf(text, sizeof text, "[server]\nwelcome = %01013d\n", 0);
	f = load_text(text);
	assert_error_at(f, 2, "line too long");
	done(f);
}

/* database: a relative path is relative to the config file's directory;
 * absolute paths, ":memory:" and "" are kept as they are. */
static void test_database_path(void **state)
{
	static const struct {
		const char *value;
		const char *want; /* NULL: the config file's directory + value */
		int persistent;
	} cases[] = {
		{ "data/roomd.db", NULL, 1 },
		{ "roomd.db", NULL, 1 },
		{ "/var/lib/roomd/roomd.db", "/var/lib/roomd/roomd.db", 1 },
		{ ":memory:", ":memory:", 0 },
		{ "\"\"", "", 0 },
	};
	char text[256], want[512];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct fixture *f;

		snprintf(text, sizeof text, "[server]\ndatabase = %s\n[limits]\nhistory_max_age = 86400\n",
			 cases[i].value);
		f = load_text(text);
		assert_ok(f);
		if (cases[i].want)
			snprintf(want, sizeof want, "%s", cases[i].want);
		else
			snprintf(want, sizeof want, "%.*s/%s", (int)(strrchr(f->path, '/') - f->path), f->path,
				 cases[i].value);
		assert_string_equal(f->cfg.database, want);
		assert_int_equal(config_persistent(&f->cfg), cases[i].persistent);
		assert_int_equal(f->cfg.history_max_age, 86400);
		done(f);
	}
}

static void test_name_valid(void **state)
{
	static const struct {
		const char *name;
		size_t len; /* 0: strlen */
		int want;
	} cases[] = {
		{ "alice", 0, 1 },
		{ "Bob_2", 0, 1 },
		{ "a-b.c#d@e+f", 0, 1 },
		{ "#general", 0, 1 },
		{ "x", 0, 1 },
		{ "0123456789012345678901234567890", 0, 1 },  /* 31 */
		{ "01234567890123456789012345678901", 0, 1 }, /* 32 = max_name */
		{ "012345678901234567890123456789012", 0, 0 }, /* 33 */
		{ "", 0, 0 },
		{ "a b", 0, 1 },             /* inner spaces: lab-era names */
		{ "chatroom 1", 0, 1 },
		{ "I AM A BOT", 0, 1 },
		{ "a  b", 0, 1 },
		{ " a", 0, 0 },              /* never at either end */
		{ "a ", 0, 0 },
		{ " ", 0, 0 },
		{ "a\"b", 0, 0 },
		{ "a]b", 0, 0 },
		{ "a\x7f", 0, 0 },
		{ "a\nb", 0, 0 },
		{ "a\rb", 0, 0 },
		{ "a\tb", 0, 0 },
		{ "a:b", 0, 0 },
		{ "a,b", 0, 0 },
		{ "a/b", 0, 0 },
		{ "caf\xc3\xa9", 0, 0 },
		{ "a\0b", 3, 0 },
		{ "good\0bad", 4, 1 }, /* only name[0..len) counts */
		{ "ab", 1, 1 },
	};
	struct config cfg;

	(void)state;
	config_defaults(&cfg);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].name);

		if (config_name_valid(&cfg, cases[i].name, len) != cases[i].want)
			fail_msg("case %zu \"%s\": expected %d", i, cases[i].name, cases[i].want);
	}
	/* Not NUL-terminated at len. */
	assert_true(config_name_valid(&cfg, "abc def", 3));
	assert_false(config_name_valid(&cfg, "abc def", 0));
	/* max_name is honoured, and CONFIG_NAME_MAX is a hard ceiling. */
	cfg.max_name = 3;
	assert_true(config_name_valid(&cfg, "abc", 3));
	assert_false(config_name_valid(&cfg, "abcd", 4));
	cfg.max_name = 1000;
	{
		char big[CONFIG_NAME_MAX + 2];

		memset(big, 'a', sizeof big);
		assert_true(config_name_valid(&cfg, big, CONFIG_NAME_MAX));
		assert_false(config_name_valid(&cfg, big, CONFIG_NAME_MAX + 1));
	}
}

/* The one topic rule, shared by the loader and SET_TOPIC. */
static void test_topic_valid(void **state)
{
	static const struct {
		const char *topic;
		size_t len; /* 0: strlen */
		int want;
	} cases[] = {
		{ "", 0, 1 },
		{ "Release on Friday", 0, 1 },
		{ "caf\xc3\xa9 \xe2\x80\xae", 0, 1 }, /* UTF-8 passes unchecked */
		{ "a\tb", 0, 0 },
		{ "a\rb", 0, 0 },
		{ "a\nb", 0, 0 },
		{ "\x1b[2J", 0, 0 },
		{ "a\x7f", 0, 0 },
		{ "\x01", 0, 0 },
		{ "a\0b", 3, 0 },
		{ "good\0bad", 4, 1 }, /* only topic[0..len) counts */
	};
	char big[CONFIG_TOPIC_MAX + 2];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].topic);

		if (config_topic_valid(cases[i].topic, len) != cases[i].want)
			fail_msg("case %zu \"%s\": expected %d", i, cases[i].topic, cases[i].want);
	}
	memset(big, 'a', sizeof big);
	assert_true(config_topic_valid(big, CONFIG_TOPIC_MAX));
	assert_false(config_topic_valid(big, CONFIG_TOPIC_MAX + 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_empty_file_gives_defaults),
		cmocka_unit_test(test_full_file),
		cmocka_unit_test(test_shipped_config),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_directory),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_range_edges),
		cmocka_unit_test(test_booleans),
		cmocka_unit_test(test_log_levels),
		cmocka_unit_test(test_log_target),
		cmocka_unit_test(test_metrics_listen),
		cmocka_unit_test(test_tls_keys),
		cmocka_unit_test(test_each_key),
		cmocka_unit_test(test_diff),
		cmocka_unit_test(test_values_and_snapshots),
		cmocka_unit_test(test_bind_list),
		cmocka_unit_test(test_room_defaults),
		cmocka_unit_test(test_room_limit),
		cmocka_unit_test(test_several_errors),
		cmocka_unit_test(test_errors_in_line_order),
		cmocka_unit_test(test_iniparser_is_quiet),
		cmocka_unit_test(test_error_cap),
		cmocka_unit_test(test_small_err_buffer),
		cmocka_unit_test(test_failure_leaves_cfg),
		cmocka_unit_test(test_reload_replaces_rooms),
		cmocka_unit_test(test_crlf_and_comments),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_database_path),
		cmocka_unit_test(test_name_valid),
		cmocka_unit_test(test_topic_valid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_rcfile.c - roomc's config file: keys, comments, errors with line
 * numbers, bounds, the XDG default path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "rcfile.h"

static char path[64];

static void write_file(const char *text)
{
	FILE *f;

	strcpy(path, "/tmp/test_rcfile.XXXXXX");
	{
		int fd = mkstemp(path);
		assert_true(fd >= 0);
		f = fdopen(fd, "w");
	}
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static int load(const char *text, struct rcfile *rc, char *err, size_t errlen)
{
	int rv;

	write_file(text);
	rv = rcfile_load(path, 0, rc, err, errlen);
	unlink(path);
	return rv;
}

static void every_key(void **state)
{
	struct rcfile rc;
	char err[256] = "";

	(void)state;
	assert_int_equal(load("# roomc\n\nhost = chat.example.org\n  port=9100  \r\n"
			      "name = mad max 21\njoin = lobby\njoin =  dev team \n"
			      "reconnect = no\n", &rc, err, sizeof(err)), 0);
	assert_string_equal(rc.host, "chat.example.org");
	assert_int_equal(rc.port, 9100);
	assert_string_equal(rc.name, "mad max 21");
	assert_int_equal(rc.reconnect, 0);
	assert_int_equal(rc.nrooms, 2);
	assert_string_equal(rc.rooms[0], "lobby");
	assert_string_equal(rc.rooms[1], "dev team");
	rcfile_free(&rc);
}

static void later_line_wins_and_hash_in_value(void **state)
{
	struct rcfile rc;
	char err[256] = "";

	(void)state;
	assert_int_equal(load("name = a\nname = b\njoin = #ops\n", &rc, err, sizeof(err)), 0);
	assert_string_equal(rc.name, "b");
	assert_int_equal(rc.reconnect, -1);
	assert_int_equal(rc.port, 0);
	assert_null(rc.host);
	assert_string_equal(rc.rooms[0], "#ops");
	rcfile_free(&rc);
}

static void errors_name_the_line(void **state)
{
	static const struct { const char *text, *want; } cases[] = {
		{ "host = a\nport = 70000\n", ":2: invalid port '70000' (1-65535)" },
		{ "colour = red\n", ":1: unknown key 'colour'" },
		{ "\n\njust words\n", ":3: expected 'key = value'" },
		{ "name =\n", ":1: 'name' has no value" },
		{ "reconnect = maybe\n", ":1: reconnect is yes or no, not 'maybe'" },
		{ "name = a\x01" "b\n", ":1: 'name': control characters in the value" },
	};
	struct rcfile rc;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		assert_int_equal(load(cases[i].text, &rc, err, sizeof(err)), -1);
		assert_non_null(strstr(err, path));
		assert_non_null(strstr(err, cases[i].want));
		assert_null(rc.host);
		assert_int_equal(rc.nrooms, 0);
	}
}

static void bounds(void **state)
{
	struct rcfile rc;
	char err[256];
	char *text = malloc(RCFILE_MAX_BYTES + 64);
	size_t n = 0;

	(void)state;
	assert_non_null(text);
	/* A line over the cap. */
	n = (size_t)sprintf(text, "name = ");
	memset(text + n, 'x', RCFILE_MAX_LINE + 10);
	strcpy(text + n + RCFILE_MAX_LINE + 10, "\n");
	assert_int_equal(load(text, &rc, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":1: line longer than"));
	/* One room too many. */
	n = 0;
	for (int i = 0; i <= RCFILE_MAX_ROOMS; i++)
		n += (size_t)sprintf(text + n, "join = r%d\n", i);
	assert_int_equal(load(text, &rc, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "more than 64 rooms"));
	/* A file over the size cap is refused whole. */
	memset(text, '#', RCFILE_MAX_BYTES + 1);
	text[RCFILE_MAX_BYTES + 1] = '\0';
	assert_int_equal(load(text, &rc, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "at most 65536 bytes"));
	free(text);
}

static void missing_file(void **state)
{
	struct rcfile rc;
	char err[256] = "";

	(void)state;
	assert_int_equal(rcfile_load("/nonexistent/roomc/config", 1, &rc, err, sizeof(err)), 1);
	assert_int_equal(rcfile_load("/nonexistent/roomc/config", 0, &rc, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file"));
}

static void default_path(void **state)
{
	char buf[256];

	(void)state;
	setenv("HOME", "/home/alice", 1);
	setenv("XDG_CONFIG_HOME", "/cfg", 1);
	assert_string_equal(rcfile_default_path(buf, sizeof(buf)), "/cfg/roomc/config");
	setenv("XDG_CONFIG_HOME", "relative", 1); /* invalid: ignored */
	assert_string_equal(rcfile_default_path(buf, sizeof(buf)), "/home/alice/.config/roomc/config");
	unsetenv("XDG_CONFIG_HOME");
	assert_string_equal(rcfile_default_path(buf, sizeof(buf)), "/home/alice/.config/roomc/config");
	unsetenv("HOME");
	assert_string_equal(rcfile_default_path(buf, sizeof(buf)), "");
	setenv("HOME", "/home/alice", 1);
	assert_string_equal(rcfile_default_path(buf, 8), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_key),
		cmocka_unit_test(later_line_wins_and_hash_in_value),
		cmocka_unit_test(errors_name_the_line),
		cmocka_unit_test(bounds),
		cmocka_unit_test(missing_file),
		cmocka_unit_test(default_path),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_output.c - roomc's stdout: what a peer's bytes become on the way to
 * the terminal. C0 and C1 controls, DEL and invalid UTF-8 are shown as \xNN,
 * bidi controls and UTF-8 encoded C1 controls as \uNNNN, in every printing
 * path that carries server-supplied text; valid UTF-8 passes unchanged.
 *
 * stdout is redirected to a temporary file around each call (output.c
 * flushes every event), so the exact bytes written are checked. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "output.h"

static FILE *capture_file;
static int saved_stdout = -1;

static void capture_begin(void)
{
	fflush(stdout);
	capture_file = tmpfile();
	assert_non_null(capture_file);
	saved_stdout = dup(STDOUT_FILENO);
	assert_true(saved_stdout >= 0);
	assert_true(dup2(fileno(capture_file), STDOUT_FILENO) >= 0);
}

/* What was written since capture_begin(), NUL-terminated (free it). */
static char *capture_end(void)
{
	long len;
	char *out;

	fflush(stdout);
	assert_true(dup2(saved_stdout, STDOUT_FILENO) >= 0);
	close(saved_stdout);
	assert_int_equal(fseek(capture_file, 0, SEEK_END), 0);
	len = ftell(capture_file);
	assert_true(len >= 0);
	out = calloc(1, (size_t)len + 1);
	assert_non_null(out);
	rewind(capture_file);
	assert_int_equal(fread(out, 1, (size_t)len, capture_file), (size_t)len);
	fclose(capture_file);
	return out;
}

static void assert_printed(char *got, const char *want)
{
	if (strcmp(got, want) != 0) {
		fprintf(stderr, "  expected: ");
		for (const unsigned char *p = (const unsigned char *)want; *p; p++)
			fprintf(stderr, *p >= 0x20 && *p < 0x7f ? "%c" : "<%02x>", *p);
		fprintf(stderr, "\n  got:      ");
		for (const unsigned char *p = (const unsigned char *)got; *p; p++)
			fprintf(stderr, *p >= 0x20 && *p < 0x7f ? "%c" : "<%02x>", *p);
		fprintf(stderr, "\n");
		free(got);
		fail_msg("printed bytes differ");
	}
	free(got);
}

/* One message text through output_chat, and what it must print as. */
struct clean_case {
	const char *text;
	const char *shown;
};

static const struct clean_case clean_cases[] = {
	{ "plain words", "plain words" },
	{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe4\xb8\xad", /* valid UTF-8 */
	  "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe4\xb8\xad" },
	{ "tab\there", "tab\there" },
	/* C0 controls and DEL */
	{ "\x1b[2Jclear", "\\x1b[2Jclear" },
	{ "bell\x07", "bell\\x07" },
	{ "cr\rforged", "cr\\x0dforged" },
	{ "del\x7f", "del\\x7f" },
	{ "\x01\x1f", "\\x01\\x1f" },
	/* 8-bit C1 controls as raw bytes (not UTF-8) */
	{ "\x9b" "31mred", "\\x9b31mred" },
	{ "\x80\x85\x9f", "\\x80\\x85\\x9f" },
	/* C1 controls encoded as UTF-8 */
	{ "\xc2\x9b" "31m", "\\u009b31m" },
	{ "\xc2\x80\xc2\x9f", "\\u0080\\u009f" },
	{ "nbsp\xc2\xa0ok", "nbsp\xc2\xa0ok" }, /* U+00A0 is not a control */
	/* bidi embeddings, overrides, isolates, marks; separators */
	{ "abc\xe2\x80\xae" "fdp.exe", "abc\\u202efdp.exe" },
	{ "\xe2\x80\xaa\xe2\x80\xab\xe2\x80\xac\xe2\x80\xad", "\\u202a\\u202b\\u202c\\u202d" },
	{ "\xe2\x81\xa6\xe2\x81\xa7\xe2\x81\xa8\xe2\x81\xa9", "\\u2066\\u2067\\u2068\\u2069" },
	{ "\xe2\x80\x8e\xe2\x80\x8f", "\\u200e\\u200f" },
	{ "\xd8\x9c", "\\u061c" },
	{ "a\xe2\x80\xa8" "b\xe2\x80\xa9", "a\\u2028b\\u2029" },
	{ "\xe2\x80\x8d", "\xe2\x80\x8d" }, /* ZWJ: shown as it came */
	/* invalid UTF-8: every offending byte escaped, the rest kept */
	{ "\xc3", "\\xc3" },                       /* cut short at the end */
	{ "\xc3(", "\\xc3(" },                     /* bad continuation */
	{ "\xc0\xaf", "\\xc0\\xaf" },              /* overlong '/' */
	{ "\xe0\x80\xaf", "\\xe0\\x80\\xaf" },     /* overlong */
	{ "\xed\xa0\x80", "\\xed\\xa0\\x80" },     /* surrogate U+D800 */
	{ "\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80" }, /* past U+10FFFF */
	{ "\xf5\xff\xfe", "\\xf5\\xff\\xfe" },
	{ "\xe2\x80", "\\xe2\\x80" },              /* U+202E cut short */
	{ "\xe2\x80" "A", "\\xe2\\x80A" },
	/* a backslash stays as it is */
	{ "C:\\dir \\x41", "C:\\dir \\x41" },
};

static void test_chat_text_cleaned(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof clean_cases / sizeof clean_cases[0]; i++) {
		char want[512];

		snprintf(want, sizeof want, "[room] bob: %s\n", clean_cases[i].shown);
		capture_begin();
		output_chat("room", "bob", clean_cases[i].text);
		assert_printed(capture_end(), want);
	}
}

/* A newline in a message continues the event, indented; elsewhere (names,
 * one-line replies) it is escaped. */
static void test_newlines(void **state)
{
	(void)state;
	capture_begin();
	output_chat("room", "bob", "one\ntwo\x1b");
	assert_printed(capture_end(), "[room] bob: one\n  two\\x1b\n");
	capture_begin();
	output_info("topic of %s: %s", "room", "a\nforged line");
	assert_printed(capture_end(), "topic of room: a\\x0aforged line\n");
}

/* Every path that prints server-supplied text escapes it. */
static void test_every_path(void **state)
{
	static const char evil[] = "\x9b\xc2\x9b\xe2\x80\xae\x1b";
	static const char shown[] = "\\x9b\\u009b\\u202e\\x1b";
	char want[256];

	(void)state;
	capture_begin();
	output_chat(evil, evil, evil);
	snprintf(want, sizeof want, "[%s] %s: %s\n", shown, shown, shown);
	assert_printed(capture_end(), want);

	capture_begin();
	output_private(evil, NULL, evil);
	snprintf(want, sizeof want, "[private] %s: %s\n", shown, shown);
	assert_printed(capture_end(), want);

	capture_begin();
	output_private("me", evil, evil);
	snprintf(want, sizeof want, "[private to %s] me: %s\n", shown, shown);
	assert_printed(capture_end(), want);

	capture_begin();
	output_history_entry(evil, "2026-01-01T00:00:00Z", evil, evil);
	{
		char *got = capture_end();
		/* "[ROOM <local time>] NAME: TEXT" */
		snprintf(want, sizeof want, "] %s: %s\n", shown, shown);
		assert_true(strncmp(got, "[\\x9b\\u009b\\u202e\\x1b ", 22) == 0);
		assert_non_null(strstr(got, want));
		free(got);
	}
	capture_begin();
	output_history_entry("r", evil, "n", "t"); /* a time that does not parse */
	snprintf(want, sizeof want, "[r %s] n: t\n", shown);
	assert_printed(capture_end(), want);

	capture_begin();
	output_joined(evil, 3, 4000);
	snprintf(want, sizeof want, "joined %s (ref 3, port 4000)\n", shown);
	assert_printed(capture_end(), want);

	capture_begin();
	output_left(evil);
	snprintf(want, sizeof want, "left %s\n", shown);
	assert_printed(capture_end(), want);

	capture_begin();
	output_server_error(4, evil);
	snprintf(want, sizeof want, "error 4: %s\n", shown);
	assert_printed(capture_end(), want);

	capture_begin();
	output_info("welcome: %s", evil); /* welcome, topics, lists, members */
	snprintf(want, sizeof want, "welcome: %s\n", shown);
	assert_printed(capture_end(), want);

	capture_begin();
	output_local("no room %s", evil);
	snprintf(want, sizeof want, "roomc: no room %s\n", shown);
	assert_printed(capture_end(), want);
}

/* Colour (on a terminal): only our own SGR codes are raw escapes. */
static void test_colour_name(void **state)
{
	char *got;

	(void)state;
	output_init(0, 1);
	capture_begin();
	output_chat("r", "\x1b]0;x\x07", "t");
	got = capture_end();
	output_init(0, 0);
	assert_non_null(strstr(got, "\\x1b]0;x\\x07\x1b[0m: t\n"));
	assert_true(strncmp(got, "[r] \x1b[3", 7) == 0);
	free(got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chat_text_cleaned),
		cmocka_unit_test(test_newlines),
		cmocka_unit_test(test_every_path),
		cmocka_unit_test(test_colour_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_proto.c - unit tests of the wire codec (common/proto.h).
 *
 * Every parse goes through a feeder that behaves like a connection: it
 * appends the bytes it is given to an accumulating buffer, calls
 * proto_parse() until PROTO_NEED_MORE, and discards *consumed bytes after
 * each call. What the parser produced is logged as text, one line a result
 * ("JOIN[room1|0|0|alice]", "ERROR 1", "FATAL 8"), so that feeding a stream
 * whole, split in two at every byte, or one byte at a time can be compared
 * exactly. The buffer is reallocated to its exact size on every append so
 * AddressSanitizer catches a read past len or a pointer kept across calls. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "proto.h"

/* ---- a growable string for the logs ----------------------------------- */

struct str {
	char *s;
	size_t len, cap;
};

static void str_add(struct str *t, const char *p, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		size_t ncap = t->cap ? t->cap : 64;
		while (ncap < t->len + n + 1)
			ncap *= 2;
		t->s = realloc(t->s, ncap);
		assert_non_null(t->s);
		t->cap = ncap;
	}
	memcpy(t->s + t->len, p, n);
	t->len += n;
	t->s[t->len] = '\0';
}

static void str_adds(struct str *t, const char *p)
{
	str_add(t, p, strlen(p));
}

/* The string built so far ("" when nothing); the caller frees it. */
static char *str_take(struct str *t)
{
	char *s = t->s ? t->s : strdup("");

	assert_non_null(s);
	t->s = NULL;
	t->len = t->cap = 0;
	return s;
}

/* Repeat c n times. */
static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* ---- kinds as the tests expect them (independent of proto.c's table) --- */

static const struct {
	enum proto_kind kind;
	const char *name;
	int nfields;
} kinds[] = {
	{ PROTO_HELO, "HELO", 1 },
	{ PROTO_KILL_SERVICE, "KILL_SERVICE", 1 },
	{ PROTO_JOIN, "JOIN", 4 },
	{ PROTO_LEAVE, "LEAVE", 3 },
	{ PROTO_DISCONNECT, "DISCONNECT", 3 },
	{ PROTO_CHAT, "CHAT", 4 },
	{ PROTO_ATTACH, "ATTACH", 3 },
	{ PROTO_R_HELO, "R_HELO", 4 },
	{ PROTO_R_JOINED, "R_JOINED", 5 },
	{ PROTO_R_LEFT, "R_LEFT", 2 },
	{ PROTO_R_CHAT, "R_CHAT", 3 },
	{ PROTO_R_ERROR, "R_ERROR", 2 },
	{ PROTO_R_ATTACHED, "R_ATTACHED", 2 },
};

#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

/* Append "KIND[f0|f1|...]\n"; \n, \r, | and \ in values are escaped so a
 * stray carriage return or a merged field shows in the comparison. */
static void log_msg(struct str *log, const struct proto_msg *m)
{
	size_t k;

	for (k = 0; k < NKINDS; k++)
		if (kinds[k].kind == m->kind)
			break;
	if (k == NKINDS) {
		char tmp[48];
		snprintf(tmp, sizeof(tmp), "KIND?%d\n", (int)m->kind);
		str_adds(log, tmp);
		return;
	}
	str_adds(log, kinds[k].name);
	str_adds(log, "[");
	for (int i = 0; i < kinds[k].nfields; i++) {
		const char *v = m->field[i];

		if (i > 0)
			str_adds(log, "|");
		if (!v) {
			str_adds(log, "<NULL>");
			continue;
		}
		assert_int_equal(m->len[i], strlen(v));
		for (; *v; v++) {
			switch (*v) {
			case '\n': str_adds(log, "\\n"); break;
			case '\r': str_adds(log, "\\r"); break;
			case '|': str_adds(log, "\\|"); break;
			case '\\': str_adds(log, "\\\\"); break;
			default: str_add(log, v, 1);
			}
		}
	}
	str_adds(log, "]\n");
	for (int i = kinds[k].nfields; i < PROTO_MAX_FIELDS; i++)
		assert_null(m->field[i]);
}

/* ---- the feeder: a connection's read side ------------------------------ */

struct feeder {
	struct proto_parser p;
	char *buf;
	size_t len;
	struct str log;
	int closed;      /* a fatal error came: the connection is gone */
	size_t fed;      /* bytes fed so far */
	size_t fatal_at; /* bytes fed when the fatal error came */
};

static void feeder_init(struct feeder *f, enum proto_dialect d, size_t max_request)
{
	memset(f, 0, sizeof(*f));
	proto_parser_init(&f->p, d, max_request);
}

static void feeder_fini(struct feeder *f)
{
	free(f->buf);
	free(f->log.s);
	memset(f, 0, sizeof(*f));
}

/* Append n bytes and parse until the parser needs more. After a fatal error
 * the connection is closed: further bytes are ignored. */
static void feed_bytes(struct feeder *f, const char *data, size_t n)
{
	char *nbuf;

	if (f->closed)
		return;
	nbuf = malloc(f->len + n ? f->len + n : 1);
	assert_non_null(nbuf);
	if (f->len)
		memcpy(nbuf, f->buf, f->len);
	if (n)
		memcpy(nbuf + f->len, data, n);
	free(f->buf);
	f->buf = nbuf;
	f->len += n;
	f->fed += n;

	for (int guard = 0;; guard++) {
		struct proto_msg m;
		size_t consumed = (size_t)-1;
		enum proto_err err = (enum proto_err)-1;
		int fatal = -1;
		enum proto_status st;
		char tmp[32];

		assert_true(guard < 100000); /* the parser makes progress */
		memset(&m, 0xa5, sizeof(m));
		st = proto_parse(&f->p, f->buf, f->len, &m, &consumed, &err, &fatal);
		assert_true(consumed <= f->len);
		switch (st) {
		case PROTO_MESSAGE:
			assert_true(consumed > 0);
			log_msg(&f->log, &m);
			break;
		case PROTO_ERROR:
			assert_true(err >= PROTO_E_MALFORMED && err <= PROTO_E_SERVER);
			snprintf(tmp, sizeof(tmp), "%s %d\n", fatal ? "FATAL" : "ERROR", (int)err);
			str_adds(&f->log, tmp);
			break;
		case PROTO_NEED_MORE:
			break;
		default:
			fail_msg("proto_parse returned %d", (int)st);
		}
		memmove(f->buf, f->buf + consumed, f->len - consumed);
		f->len -= consumed;
		if (st == PROTO_NEED_MORE)
			return;
		if (st == PROTO_ERROR && fatal) {
			f->closed = 1;
			f->fatal_at = f->fed;
			return;
		}
	}
}

/* feed(f, chunk, chunk, ..., NULL): each chunk arrives as one read. */
static void feed(struct feeder *f, ...)
{
	va_list ap;
	const char *chunk;

	va_start(ap, f);
	while ((chunk = va_arg(ap, const char *)) != NULL)
		feed_bytes(f, chunk, strlen(chunk));
	va_end(ap);
}

/* How a stream is delivered. */
enum split { WHOLE, SPLIT_AT, BYTEWISE };

/* Parse data[0..n) delivered as told; returns the log (caller frees) and,
 * when fatal_at is not NULL, the bytes fed when a fatal error came (0: none). */
static char *run(enum proto_dialect d, size_t max, const char *data, size_t n,
		 enum split how, size_t k, size_t *fatal_at)
{
	struct feeder f;
	char *log;

	feeder_init(&f, d, max);
	switch (how) {
	case WHOLE:
		feed_bytes(&f, data, n);
		break;
	case SPLIT_AT:
		feed_bytes(&f, data, k);
		feed_bytes(&f, data + k, n - k);
		break;
	case BYTEWISE:
		for (size_t i = 0; i < n; i++)
			feed_bytes(&f, data + i, 1);
		break;
	}
	if (fatal_at)
		*fatal_at = f.closed ? f.fatal_at : 0;
	log = str_take(&f.log);
	feeder_fini(&f);
	return log;
}

static char *run_whole(enum proto_dialect d, size_t max, const char *data, size_t n)
{
	return run(d, max, data, n, WHOLE, 0, NULL);
}

/* Compare a stream's log fed whole with the expected log; with splits,
 * also split in two at every byte, and byte by byte. Returns the number of
 * mismatches, each printed. */
static int check_stream_how(const char *name, enum proto_dialect d, size_t max,
			    const char *data, size_t n, const char *want, int splits)
{
	int bad = 0;
	char *got = run_whole(d, max, data, n);

	if (strcmp(got, want) != 0) {
		print_error("%s: whole:\n  want: %s\n  got:  %s\n", name, want, got);
		bad++;
	}
	free(got);
	if (!splits)
		return bad;
	for (size_t k = 1; k < n; k++) {
		got = run(d, max, data, n, SPLIT_AT, k, NULL);
		if (strcmp(got, want) != 0) {
			print_error("%s: split at %zu:\n  want: %s\n  got:  %s\n", name, k, want, got);
			bad++;
			free(got);
			break; /* one split is enough to show */
		}
		free(got);
	}
	got = run(d, max, data, n, BYTEWISE, 0, NULL);
	if (strcmp(got, want) != 0) {
		print_error("%s: byte by byte:\n  want: %s\n  got:  %s\n", name, want, got);
		bad++;
	}
	free(got);
	return bad;
}

static int check_stream(const char *name, enum proto_dialect d, size_t max,
			const char *data, size_t n, const char *want)
{
	return check_stream_how(name, d, max, data, n, want, 1);
}

/* ---- table of streams -------------------------------------------------- */

struct stream_case {
	const char *name;
	enum proto_dialect dialect;
	const char *input; /* NUL-free; see test_nul_byte for NULs */
	const char *want;
};

#define JOIN_REQ "JOIN_CHATROOM: room1\nCLIENT_IP: 0\nPORT: 0\nCLIENT_NAME: alice\n"
#define JOIN_LOG "JOIN[room1|0|0|alice]\n"

static const struct stream_case kind_cases[] = {
	/* every request kind */
	{ "HELO", PROTO_REQUESTS, "HELO BASE_TEST\n", "HELO[BASE_TEST]\n" },
	{ "HELO text with spaces", PROTO_REQUESTS, "HELO hello big world\n", "HELO[hello big world]\n" },
	{ "KILL_SERVICE", PROTO_REQUESTS, "KILL_SERVICE\n", "KILL_SERVICE[]\n" },
	{ "JOIN", PROTO_REQUESTS, JOIN_REQ, JOIN_LOG },
	{ "LEAVE", PROTO_REQUESTS, "LEAVE_CHATROOM: 3\nJOIN_ID: 12345\nCLIENT_NAME: alice\n",
	  "LEAVE[3|12345|alice]\n" },
	{ "DISCONNECT", PROTO_REQUESTS, "DISCONNECT: 0\nPORT: 0\nCLIENT_NAME: alice\n",
	  "DISCONNECT[0|0|alice]\n" },
	{ "CHAT", PROTO_REQUESTS,
	  "CHAT: 3\nJOIN_ID: 12345\nCLIENT_NAME: alice\nMESSAGE: hello there\n\n",
	  "CHAT[3|12345|alice|hello there]\n" },
	{ "ATTACH", PROTO_REQUESTS, "ATTACH_CHATROOM: 3\nJOIN_ID: 12345\nCLIENT_NAME: alice\n",
	  "ATTACH[3|12345|alice]\n" },
	/* every reply kind */
	{ "R_HELO", PROTO_REPLIES, "HELO text\nIP:1.2.3.4\nPort:9000\nStudentID:id\n",
	  "R_HELO[text|1.2.3.4|9000|id]\n" },
	{ "R_JOINED", PROTO_REPLIES,
	  "JOINED_CHATROOM: room1\nSERVER_IP: 10.0.0.1\nPORT: 9001\nROOM_REF: 3\nJOIN_ID: 12345\n",
	  "R_JOINED[room1|10.0.0.1|9001|3|12345]\n" },
	{ "R_LEFT", PROTO_REPLIES, "LEFT_CHATROOM: 3\nJOIN_ID: 12345\n", "R_LEFT[3|12345]\n" },
	{ "R_CHAT", PROTO_REPLIES, "CHAT: 3\nCLIENT_NAME: alice\nMESSAGE: hi all\n\n",
	  "R_CHAT[3|alice|hi all]\n" },
	{ "R_ERROR", PROTO_REPLIES, "ERROR_CODE: 2\nERROR_DESCRIPTION: no such room\n",
	  "R_ERROR[2|no such room]\n" },
	{ "R_ATTACHED", PROTO_REPLIES, "ATTACHED_CHATROOM: 3\nJOIN_ID: 12345\n",
	  "R_ATTACHED[3|12345]\n" },
	/* the dialects are distinct */
	{ "reply head in requests", PROTO_REQUESTS, "JOINED_CHATROOM: room1\n\nHELO x\n",
	  "ERROR 1\nHELO[x]\n" },
	{ "request head in replies", PROTO_REPLIES, "JOIN_CHATROOM: room1\n\nLEFT_CHATROOM: 1\nJOIN_ID: 2\n",
	  "ERROR 1\nR_LEFT[1|2]\n" },
	{ "request CHAT in replies", PROTO_REPLIES,
	  "CHAT: 3\nJOIN_ID: 12345\nCLIENT_NAME: alice\nMESSAGE: hi\n\nLEFT_CHATROOM: 1\nJOIN_ID: 2\n",
	  "ERROR 1\nR_LEFT[1|2]\n" },
};

static const struct stream_case liberal_cases[] = {
	{ "CRLF", PROTO_REQUESTS,
	  "JOIN_CHATROOM: room1\r\nCLIENT_IP: 0\r\nPORT: 0\r\nCLIENT_NAME: alice\r\n", JOIN_LOG },
	{ "CRLF HELO", PROTO_REQUESTS, "HELO x\r\n", "HELO[x]\n" },
	{ "CRLF KILL_SERVICE", PROTO_REQUESTS, "KILL_SERVICE\r\n", "KILL_SERVICE[]\n" },
	{ "KEY:value", PROTO_REQUESTS,
	  "JOIN_CHATROOM:room1\nCLIENT_IP:0\nPORT:0\nCLIENT_NAME:alice\n", JOIN_LOG },
	{ "value white space trimmed", PROTO_REQUESTS,
	  "JOIN_CHATROOM:   room1  \nCLIENT_IP:\t0\t\nPORT: 0 \r\nCLIENT_NAME: \t alice \t\n", JOIN_LOG },
	{ "inner white space kept", PROTO_REQUESTS, "HELO  a  b  \n", "HELO[a  b]\n" },
	{ "colon in a value", PROTO_REQUESTS,
	  "CHAT: 1\nJOIN_ID: 2\nCLIENT_NAME: bob\nMESSAGE: time: 10:30\n\n",
	  "CHAT[1|2|bob|time: 10:30]\n" },
	{ "blank lines between requests", PROTO_REQUESTS,
	  "\n\r\n\nHELO a\n\n\n\r\n  \t\nHELO b\n\n" JOIN_REQ "\n\n",
	  "HELO[a]\nHELO[b]\n" JOIN_LOG },
	/* JOIN ends at CLIENT_NAME (SPEC §2.4): optional fields after it are
	 * absorbed silently, their values not read. */
	{ "fields reordered", PROTO_REQUESTS,
	  "JOIN_CHATROOM: room1\nCLIENT_NAME: alice\nPORT: 0\nCLIENT_IP: 0\nHELO x\n",
	  "JOIN[room1|||alice]\nHELO[x]\n" },
	{ "fields reordered, CLIENT_NAME last", PROTO_REQUESTS,
	  "JOIN_CHATROOM: room1\nPORT: 0\nCLIENT_IP: 0\nCLIENT_NAME: alice\n", JOIN_LOG },
	{ "late optional field absorbed once", PROTO_REQUESTS,
	  "DISCONNECT: 0\nCLIENT_NAME: a\nPORT: 0\nPORT: 0\n\nHELO x\n",
	  "DISCONNECT[0||a]\nERROR 1\nHELO[x]\n" },
	/* lab-era clients (SPEC §2.4) */
	{ "unknown field ignored", PROTO_REQUESTS,
	  "JOIN_CHATROOM: r\nCLIENT_IP: 0\nCOLOUR: red\nPORT: 0\nCLIENT_NAME: a\nHELO x\n",
	  "JOIN[r|0|0|a]\nHELO[x]\n" },
	{ "misspelled CLIENT IP", PROTO_REQUESTS,
	  "JOIN_CHATROOM: chatroom 1\nCLIENT IP: 0\nPORT: 0\nCLIENT_NAME: Client 1\n",
	  "JOIN[chatroom 1||0|Client 1]\n" },
	{ "JOIN without CLIENT_IP and PORT", PROTO_REQUESTS,
	  "JOIN_CHATROOM: r\nCLIENT_NAME: a\nHELO x\n", "JOIN[r|||a]\nHELO[x]\n" },
	{ "empty CLIENT_IP and PORT", PROTO_REQUESTS,
	  "JOIN_CHATROOM: r\nCLIENT_IP:\nPORT: \nCLIENT_NAME: a\n", "JOIN[r|||a]\n" },
	{ "DISCONNECT without PORT", PROTO_REQUESTS, "DISCONNECT: 0\nCLIENT_NAME: a\n",
	  "DISCONNECT[0||a]\n" },
	{ "unknown fields in LEAVE and CHAT", PROTO_REQUESTS,
	  "LEAVE_CHATROOM: 1\nX-Y: z\nJOIN_ID: 2\nCLIENT_NAME: a\n"
	  "CHAT: 1\nJOIN_ID: 2\n: odd\nCLIENT_NAME: a\nMESSAGE: hi\nX: kept in text\n\n",
	  "LEAVE[1|2|a]\nCHAT[1|2|a|hi\\nX: kept in text]\n" },
	{ "LEAVE reordered", PROTO_REQUESTS, "LEAVE_CHATROOM: 3\nCLIENT_NAME: alice\nJOIN_ID: 12345\n",
	  "LEAVE[3|12345|alice]\n" },
	{ "CHAT reordered, MESSAGE last", PROTO_REQUESTS,
	  "CHAT: 3\nCLIENT_NAME: alice\nJOIN_ID: 12345\nMESSAGE: hi\n\n", "CHAT[3|12345|alice|hi]\n" },
	{ "reply reordered", PROTO_REPLIES,
	  "JOINED_CHATROOM: room1\nJOIN_ID: 12345\nROOM_REF: 3\nPORT: 9001\nSERVER_IP: 10.0.0.1\n",
	  "R_JOINED[room1|10.0.0.1|9001|3|12345]\n" },
	{ "multi-line MESSAGE LF", PROTO_REQUESTS,
	  "CHAT: 3\nJOIN_ID: 7\nCLIENT_NAME: alice\nMESSAGE: line one\nline two\n  three  \n\nHELO x\n",
	  "CHAT[3|7|alice|line one\\nline two\\n  three]\nHELO[x]\n" },
	{ "multi-line MESSAGE CRLF", PROTO_REQUESTS,
	  "CHAT: 3\r\nJOIN_ID: 7\r\nCLIENT_NAME: alice\r\nMESSAGE: line one\r\nline two\r\n  three\r\n\r\nHELO x\r\n",
	  "CHAT[3|7|alice|line one\\nline two\\n  three]\nHELO[x]\n" },
	{ "multi-line reply CHAT", PROTO_REPLIES,
	  "CHAT: 3\r\nCLIENT_NAME: alice\r\nMESSAGE: a\r\nb\r\n\r\n", "R_CHAT[3|alice|a\\nb]\n" },
	{ "MESSAGE that looks like a head", PROTO_REQUESTS,
	  "CHAT: 3\nJOIN_ID: 7\nCLIENT_NAME: alice\nMESSAGE: x\nHELO y\nJOIN_CHATROOM: r\n\n",
	  "CHAT[3|7|alice|x\\nHELO y\\nJOIN_CHATROOM: r]\n" },
	{ "empty MESSAGE", PROTO_REQUESTS, "CHAT: 3\nJOIN_ID: 7\nCLIENT_NAME: alice\nMESSAGE:\n\n",
	  "CHAT[3|7|alice|]\n" },
	{ "coalesced requests", PROTO_REQUESTS,
	  "HELO x\n" JOIN_REQ
	  "CHAT: 3\nJOIN_ID: 5\nCLIENT_NAME: alice\nMESSAGE: m1\n\n"
	  "CHAT: 3\r\nJOIN_ID: 5\r\nCLIENT_NAME: alice\r\nMESSAGE: m2\r\n\r\n"
	  "LEAVE_CHATROOM: 3\nJOIN_ID: 5\nCLIENT_NAME: alice\n"
	  "ATTACH_CHATROOM: 3\nJOIN_ID: 5\nCLIENT_NAME: alice\n"
	  "DISCONNECT: 0\nPORT: 0\nCLIENT_NAME: alice\n"
	  "KILL_SERVICE\n",
	  "HELO[x]\n" JOIN_LOG "CHAT[3|5|alice|m1]\nCHAT[3|5|alice|m2]\nLEAVE[3|5|alice]\n"
	  "ATTACH[3|5|alice]\nDISCONNECT[0|0|alice]\nKILL_SERVICE[]\n" },
	{ "coalesced replies", PROTO_REPLIES,
	  "HELO t\nIP:1.2.3.4\nPort:9000\nStudentID:id\n"
	  "JOINED_CHATROOM: r\nSERVER_IP: 1.2.3.4\nPORT: 9001\nROOM_REF: 1\nJOIN_ID: 9\n"
	  "CHAT: 1\nCLIENT_NAME: a\nMESSAGE: a has joined this chatroom.\n\n"
	  "ERROR_CODE: 5\nERROR_DESCRIPTION: name already in use in that room\n"
	  "ATTACHED_CHATROOM: 1\nJOIN_ID: 9\n"
	  "LEFT_CHATROOM: 1\nJOIN_ID: 9\n",
	  "R_HELO[t|1.2.3.4|9000|id]\nR_JOINED[r|1.2.3.4|9001|1|9]\n"
	  "R_CHAT[1|a|a has joined this chatroom.]\nR_ERROR[5|name already in use in that room]\n"
	  "R_ATTACHED[1|9]\nR_LEFT[1|9]\n" },
};

static const struct stream_case malformed_cases[] = {
	{ "unknown command", PROTO_REQUESTS, "FOO bar\nHELO x\n", "ERROR 1\nHELO[x]\n" },
	{ "unknown KEY: value command", PROTO_REQUESTS, "NOPE: 1\n\n" JOIN_REQ, "ERROR 1\n" JOIN_LOG },
	{ "field without a head", PROTO_REQUESTS, "CLIENT_NAME: a\n\nHELO x\n", "ERROR 1\nHELO[x]\n" },
	{ "head without colon", PROTO_REQUESTS, "JOIN_CHATROOM room1\n\nHELO x\n", "ERROR 1\nHELO[x]\n" },
	{ "bare head run on", PROTO_REQUESTS, "HELOX\nKILL_SERVICES\n\nHELO x\n", "ERROR 1\nHELO[x]\n" },
	{ "garbage skipped to blank line", PROTO_REQUESTS,
	  "NOPE: 1\ngarbage one\nmore: garbage\nCLIENT_NAME: a\n\nHELO x\n", "ERROR 1\nHELO[x]\n" },
	{ "garbage skipped to known head", PROTO_REQUESTS,
	  "NOPE\ngarbage\nJOIN_ID: 4\n" JOIN_REQ, "ERROR 1\n" JOIN_LOG },
	{ "one error per unknown command", PROTO_REQUESTS, "NOPE\n\nNOPE\nstill\n\nHELO x\n",
	  "ERROR 1\nERROR 1\nHELO[x]\n" },
	{ "unknown field in a reply", PROTO_REPLIES,
	  "LEFT_CHATROOM: 1\nCOLOUR: red\nJOIN_ID: 2\n\nLEFT_CHATROOM: 1\nJOIN_ID: 2\n",
	  "ERROR 1\nR_LEFT[1|2]\n" },
	{ "only unknown fields, then a blank line", PROTO_REQUESTS,
	  "JOIN_CHATROOM: r\nCLIENT IP: 0\nPORT: 0\n\nHELO x\n", "ERROR 1\nHELO[x]\n" },
	{ "line without colon in a request", PROTO_REQUESTS,
	  "LEAVE_CHATROOM: 1\nJOIN_ID 2\nCLIENT_NAME: a\n\nHELO x\n", "ERROR 1\nHELO[x]\n" },
	{ "repeated field", PROTO_REQUESTS,
	  "LEAVE_CHATROOM: 1\nJOIN_ID: 2\nJOIN_ID: 2\nCLIENT_NAME: a\n\nHELO x\n", "ERROR 1\nHELO[x]\n" },
	{ "repeated reply field", PROTO_REPLIES,
	  "JOINED_CHATROOM: r\nPORT: 1\nPORT: 1\nSERVER_IP: x\nROOM_REF: 1\nJOIN_ID: 2\n\nLEFT_CHATROOM: 1\nJOIN_ID: 2\n",
	  "ERROR 1\nR_LEFT[1|2]\n" },
	{ "missing field", PROTO_REQUESTS, "JOIN_CHATROOM: r\nCLIENT_IP: 0\n\nHELO x\n",
	  "ERROR 1\nHELO[x]\n" },
	{ "CHAT without MESSAGE", PROTO_REQUESTS, "CHAT: 1\nJOIN_ID: 2\nCLIENT_NAME: a\n\n" JOIN_REQ,
	  "ERROR 1\n" JOIN_LOG },
	{ "missing field, CRLF", PROTO_REQUESTS, "LEAVE_CHATROOM: 1\r\n\r\nHELO x\r\n",
	  "ERROR 1\nHELO[x]\n" },
	{ "new head before completion", PROTO_REQUESTS,
	  "JOIN_CHATROOM: r\nCLIENT_IP: 0\nLEAVE_CHATROOM: 1\nJOIN_ID: 2\nCLIENT_NAME: a\n",
	  "ERROR 1\nLEAVE[1|2|a]\n" },
	{ "bare head before completion", PROTO_REQUESTS, "CHAT: 1\nJOIN_ID: 2\nHELO x\n",
	  "ERROR 1\nHELO[x]\n" },
	{ "same head again before completion", PROTO_REQUESTS, "JOIN_CHATROOM: r\n" JOIN_REQ,
	  "ERROR 1\n" JOIN_LOG },
	{ "MESSAGE not last", PROTO_REQUESTS,
	  "CHAT: 1\nMESSAGE: hi\nJOIN_ID: 2\nCLIENT_NAME: a\n\nHELO x\n", "ERROR 1\nHELO[x]\n" },
	{ "MESSAGE not last in reply", PROTO_REPLIES,
	  "CHAT: 1\nMESSAGE: hi\nCLIENT_NAME: a\n\nLEFT_CHATROOM: 1\nJOIN_ID: 2\n",
	  "ERROR 1\nR_LEFT[1|2]\n" },
	{ "errors then valid requests", PROTO_REQUESTS,
	  "NOPE\n" "JOIN_CHATROOM: r\n\n" "LEAVE_CHATROOM: 1\nJOIN_ID: 2\nJOIN_ID: 3\n\n" JOIN_REQ,
	  "ERROR 1\nERROR 1\nERROR 1\n" JOIN_LOG },
};

static int run_table(const struct stream_case *t, size_t n, int splits)
{
	int bad = 0;

	for (size_t i = 0; i < n; i++)
		bad += check_stream_how(t[i].name, t[i].dialect, PROTO_DEFAULT_MAX_REQUEST,
					t[i].input, strlen(t[i].input), t[i].want, splits);
	return bad;
}

#define TABLE(t, splits) run_table((t), sizeof(t) / sizeof((t)[0]), (splits))

static void test_kinds(void **state)
{
	(void)state;
	assert_int_equal(TABLE(kind_cases, 0), 0);
}

static void test_liberal_reading(void **state)
{
	(void)state;
	assert_int_equal(TABLE(liberal_cases, 0), 0);
}

static void test_malformed(void **state)
{
	(void)state;
	assert_int_equal(TABLE(malformed_cases, 0), 0);
}

/* ---- field indexes, one parse at a time -------------------------------- */

/* Parse one complete message from s (copied into buf, which must outlive
 * the use of *m); asserts it is the whole of s. */
static void parse_one(enum proto_dialect d, const char *s, char *buf, size_t bufsize,
		      struct proto_msg *m)
{
	struct proto_parser p;
	size_t len = strlen(s), consumed = 0;
	enum proto_err err;
	int fatal;

	assert_true(len < bufsize);
	memcpy(buf, s, len);
	proto_parser_init(&p, d, PROTO_DEFAULT_MAX_REQUEST);
	assert_int_equal(proto_parse(&p, buf, len, m, &consumed, &err, &fatal), PROTO_MESSAGE);
	assert_int_equal(consumed, len);
}

static void test_field_indexes(void **state)
{
	char b[512];
	struct proto_msg m;

	(void)state;
	parse_one(PROTO_REQUESTS, "HELO hi there\n", b, sizeof(b), &m);
	assert_int_equal(m.kind, PROTO_HELO);
	assert_string_equal(m.field[PROTO_F_HELO_TEXT], "hi there");

	parse_one(PROTO_REQUESTS, "KILL_SERVICE\n", b, sizeof(b), &m);
	assert_int_equal(m.kind, PROTO_KILL_SERVICE);

	parse_one(PROTO_REQUESTS, "JOIN_CHATROOM: r1\nPORT: 7\nCLIENT_IP: 1.1.1.1\nCLIENT_NAME: n1\n",
		  b, sizeof(b), &m);
	assert_int_equal(m.kind, PROTO_JOIN);
	assert_string_equal(m.field[PROTO_F_JOIN_ROOM], "r1");
	assert_string_equal(m.field[PROTO_F_JOIN_IP], "1.1.1.1");
	assert_string_equal(m.field[PROTO_F_JOIN_PORT], "7");
	assert_string_equal(m.field[PROTO_F_JOIN_NAME], "n1");
	assert_int_equal(m.len[PROTO_F_JOIN_IP], 7);

	parse_one(PROTO_REQUESTS, "LEAVE_CHATROOM: 4\nCLIENT_NAME: n2\nJOIN_ID: 99\n", b, sizeof(b), &m);
	assert_int_equal(m.kind, PROTO_LEAVE);
	assert_string_equal(m.field[PROTO_F_LEAVE_REF], "4");
	assert_string_equal(m.field[PROTO_F_LEAVE_ID], "99");
	assert_string_equal(m.field[PROTO_F_LEAVE_NAME], "n2");

	parse_one(PROTO_REQUESTS, "DISCONNECT: 5\nPORT: 6\nCLIENT_NAME: n3\n", b, sizeof(b), &m);
	assert_int_equal(m.kind, PROTO_DISCONNECT);
	assert_string_equal(m.field[PROTO_F_DISC_IP], "5");
	assert_string_equal(m.field[PROTO_F_DISC_PORT], "6");
	assert_string_equal(m.field[PROTO_F_DISC_NAME], "n3");

	parse_one(PROTO_REQUESTS, "CHAT: 8\nCLIENT_NAME: n4\nJOIN_ID: 77\nMESSAGE: t\r\nu\r\n\r\n",
		  b, sizeof(b), &m);
	assert_int_equal(m.kind, PROTO_CHAT);
	assert_string_equal(m.field[PROTO_F_CHAT_REF], "8");
	assert_string_equal(m.field[PROTO_F_CHAT_ID], "77");
	assert_string_equal(m.field[PROTO_F_CHAT_NAME], "n4");
	assert_string_equal(m.field[PROTO_F_CHAT_TEXT], "t\nu");
	assert_int_equal(m.len[PROTO_F_CHAT_TEXT], 3);

	parse_one(PROTO_REQUESTS, "ATTACH_CHATROOM: 9\nCLIENT_NAME: n5\nJOIN_ID: 66\n", b, sizeof(b), &m);
	assert_int_equal(m.kind, PROTO_ATTACH);
	assert_string_equal(m.field[PROTO_F_ATTACH_REF], "9");
	assert_string_equal(m.field[PROTO_F_ATTACH_ID], "66");
	assert_string_equal(m.field[PROTO_F_ATTACH_NAME], "n5");

	parse_one(PROTO_REPLIES, "HELO t1\nStudentID: s1\nPort: 9000\nIP: 2.2.2.2\n", b, sizeof(b), &m);
	assert_int_equal(m.kind, PROTO_R_HELO);
	assert_string_equal(m.field[PROTO_F_RHELO_TEXT], "t1");
	assert_string_equal(m.field[PROTO_F_RHELO_IP], "2.2.2.2");
	assert_string_equal(m.field[PROTO_F_RHELO_PORT], "9000");
	assert_string_equal(m.field[PROTO_F_RHELO_ID], "s1");

	parse_one(PROTO_REPLIES,
		  "JOINED_CHATROOM: r2\nJOIN_ID: 55\nROOM_REF: 2\nPORT: 9002\nSERVER_IP: 3.3.3.3\n",
		  b, sizeof(b), &m);
	assert_int_equal(m.kind, PROTO_R_JOINED);
	assert_string_equal(m.field[PROTO_F_JOINED_ROOM], "r2");
	assert_string_equal(m.field[PROTO_F_JOINED_IP], "3.3.3.3");
	assert_string_equal(m.field[PROTO_F_JOINED_PORT], "9002");
	assert_string_equal(m.field[PROTO_F_JOINED_REF], "2");
	assert_string_equal(m.field[PROTO_F_JOINED_ID], "55");

	parse_one(PROTO_REPLIES, "LEFT_CHATROOM: 2\nJOIN_ID: 55\n", b, sizeof(b), &m);
	assert_int_equal(m.kind, PROTO_R_LEFT);
	assert_string_equal(m.field[PROTO_F_LEFT_REF], "2");
	assert_string_equal(m.field[PROTO_F_LEFT_ID], "55");

	parse_one(PROTO_REPLIES, "CHAT: 2\nCLIENT_NAME: n6\nMESSAGE: hey\n\n", b, sizeof(b), &m);
	assert_int_equal(m.kind, PROTO_R_CHAT);
	assert_string_equal(m.field[PROTO_F_RCHAT_REF], "2");
	assert_string_equal(m.field[PROTO_F_RCHAT_NAME], "n6");
	assert_string_equal(m.field[PROTO_F_RCHAT_TEXT], "hey");

	parse_one(PROTO_REPLIES, "ERROR_CODE: 3\nERROR_DESCRIPTION: not a member\n", b, sizeof(b), &m);
	assert_int_equal(m.kind, PROTO_R_ERROR);
	assert_string_equal(m.field[PROTO_F_ERROR_CODE], "3");
	assert_string_equal(m.field[PROTO_F_ERROR_TEXT], "not a member");

	parse_one(PROTO_REPLIES, "ATTACHED_CHATROOM: 2\nJOIN_ID: 55\n", b, sizeof(b), &m);
	assert_int_equal(m.kind, PROTO_R_ATTACHED);
	assert_string_equal(m.field[PROTO_F_ATTACHED_REF], "2");
	assert_string_equal(m.field[PROTO_F_ATTACHED_ID], "55");
}

/* ---- every byte boundary ----------------------------------------------- */

static void test_every_split(void **state)
{
	int bad = 0;

	(void)state;
	/* Every case of every table whole, split in two at every byte, and byte
	 * by byte; then all of them as one stream per dialect. */
	bad += TABLE(kind_cases, 1);
	bad += TABLE(liberal_cases, 1);
	bad += TABLE(malformed_cases, 1);
	for (int d = 0; d < 2; d++) {
		const struct stream_case *tabs[] = { kind_cases, liberal_cases, malformed_cases };
		size_t ns[] = { sizeof(kind_cases) / sizeof(kind_cases[0]),
				sizeof(liberal_cases) / sizeof(liberal_cases[0]),
				sizeof(malformed_cases) / sizeof(malformed_cases[0]) };
		struct str in = { 0 }, want = { 0 };
		char *i_s, *w_s;

		for (size_t t = 0; t < 3; t++) {
			for (size_t i = 0; i < ns[t]; i++) {
				if ((int)tabs[t][i].dialect != d)
					continue;
				str_adds(&in, tabs[t][i].input);
				/* a blank line ends any skipping left by an error case */
				str_adds(&in, "\n");
				str_adds(&want, tabs[t][i].want);
			}
		}
		i_s = str_take(&in);
		w_s = str_take(&want);
		bad += check_stream(d ? "all replies" : "all requests", (enum proto_dialect)d,
				    PROTO_DEFAULT_MAX_REQUEST, i_s, strlen(i_s), w_s);
		free(i_s);
		free(w_s);
	}
	assert_int_equal(bad, 0);
}

/* The feed() driver with explicit chunks, as a connection sees reads. */
static void test_feed_chunks(void **state)
{
	struct feeder f;

	(void)state;
	feeder_init(&f, PROTO_REQUESTS, PROTO_DEFAULT_MAX_REQUEST);
	feed(&f, "JOIN_CHA", "TROOM: room1\r", "\nCLIENT_IP: 0\nPO", NULL);
	assert_string_equal(f.log.s ? f.log.s : "", "");
	feed(&f, "RT: 0\nCLIENT_NAME: alice\nCHAT: 3\nJOIN_ID: 1\nCLIENT_NAME: alice\nMESSAGE: a\r",
	     "\nb\r\n\r", NULL);
	assert_string_equal(f.log.s, JOIN_LOG);
	feed(&f, "\nHELO", " x\n", NULL);
	assert_string_equal(f.log.s, JOIN_LOG "CHAT[3|1|alice|a\\nb]\nHELO[x]\n");
	assert_int_equal(f.len, 0);
	feeder_fini(&f);
}

/* Blank and skipped lines are released at once (*consumed), so a client
 * sending endless garbage after an unknown command does not grow its read
 * buffer; an unfinished request is kept from its head on. */
static void test_skipped_bytes_released(void **state)
{
	struct feeder f;

	(void)state;
	feeder_init(&f, PROTO_REQUESTS, 64);
	feed(&f, "\n\r\n\n", NULL);
	assert_int_equal(f.len, 0);
	feed(&f, "NOPE\n", NULL);
	assert_string_equal(f.log.s, "ERROR 1\n");
	assert_int_equal(f.len, 0);
	for (int i = 0; i < 1000; i++) {
		feed(&f, "garbage: line\n", NULL);
		assert_int_equal(f.len, 0);
	}
	feed(&f, "garb", NULL);
	assert_int_equal(f.len, 4);
	feed(&f, "age\n\n\nJOIN_CHATROOM: r\nCLIENT_IP: 0\nPO", NULL);
	assert_int_equal(f.len, strlen("JOIN_CHATROOM: r\nCLIENT_IP: 0\nPO"));
	feed(&f, "RT: 0\nCLIENT_NAME: a\n", NULL);
	assert_int_equal(f.len, 0);
	assert_string_equal(f.log.s, "ERROR 1\nJOIN[r|0|0|a]\n");
	assert_int_equal(f.closed, 0);
	feeder_fini(&f);
}

/* ---- NUL bytes --------------------------------------------------------- */

struct bin_case {
	const char *name;
	const char *input;
	size_t len;
	const char *want;
};

#define BIN(name, lit, want) { name, lit, sizeof(lit) - 1, want }

static const struct bin_case nul_cases[] = {
	BIN("NUL in a head", "HELO a\0b\nHELO x\n", "ERROR 1\nHELO[x]\n"),
	BIN("NUL alone on a line", "\0\n\nHELO x\n", "ERROR 1\nHELO[x]\n"),
	BIN("NUL in a field", "JOIN_CHATROOM: r\nCLIENT_NAME: a\0b\nCLIENT_IP: 0\nPORT: 0\n\nHELO x\n",
	    "ERROR 1\nHELO[x]\n"),
	BIN("NUL in a MESSAGE line", "CHAT: 1\nJOIN_ID: 2\nCLIENT_NAME: a\nMESSAGE: hi\nthe\0re\n\nHELO x\n",
	    "ERROR 1\nHELO[x]\n"),
};

static void test_nul_byte(void **state)
{
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(nul_cases) / sizeof(nul_cases[0]); i++)
		bad += check_stream(nul_cases[i].name, PROTO_REQUESTS, PROTO_DEFAULT_MAX_REQUEST,
				    nul_cases[i].input, nul_cases[i].len, nul_cases[i].want);
	assert_int_equal(bad, 0);
}

/* A garbage line being skipped after an unknown command is not examined
 * for content: one error for the whole garbage, NUL or not. */
static void test_nul_in_skipped_garbage(void **state)
{
	static const char in[] = "NOPE\nga\0rbage\nHELO x\n";

	(void)state;
	assert_int_equal(check_stream("NUL in skipped garbage", PROTO_REQUESTS,
				      PROTO_DEFAULT_MAX_REQUEST, in, sizeof(in) - 1,
				      "ERROR 1\nHELO[x]\n"), 0);
}

/* ---- limits ------------------------------------------------------------ */

static void test_long_line_without_newline(void **state)
{
	char *a64 = repeat('A', 64), *a65 = repeat('A', 65), *a200 = repeat('A', 200);
	char *log;
	size_t at;

	(void)state;
	/* max bytes of a line without its newline: not yet too large */
	log = run(PROTO_REQUESTS, 64, a64, 64, WHOLE, 0, &at);
	assert_string_equal(log, "");
	assert_int_equal(at, 0);
	free(log);
	/* one more: hostile, whole or byte by byte, and at once */
	log = run(PROTO_REQUESTS, 64, a65, 65, WHOLE, 0, &at);
	assert_string_equal(log, "FATAL 8\n");
	assert_int_equal(at, 65);
	free(log);
	log = run(PROTO_REQUESTS, 64, a200, 200, BYTEWISE, 0, &at);
	assert_string_equal(log, "FATAL 8\n");
	assert_int_equal(at, 65);
	free(log);
	/* a long first line of a known command, and a long line after a valid
	 * request: the valid one is still delivered */
	{
		struct str s = { 0 };
		char *in;

		str_adds(&s, "HELO a\nHELO ");
		str_adds(&s, a200);
		in = str_take(&s);
		for (int how = WHOLE; how <= BYTEWISE; how++) {
			log = run(PROTO_REQUESTS, 64, in, strlen(in), (enum split)how, 40, &at);
			assert_string_equal(log, "HELO[a]\nFATAL 8\n");
			assert_int_equal(at, how == BYTEWISE ? 7 + 65 : strlen(in));
			free(log);
		}
		free(in);
	}
	/* with its newline the line is still too large */
	{
		struct str s = { 0 };
		char *in;

		str_adds(&s, a200);
		str_adds(&s, "\nHELO x\n");
		in = str_take(&s);
		log = run(PROTO_REQUESTS, 64, in, strlen(in), WHOLE, 0, NULL);
		assert_string_equal(log, "FATAL 8\n");
		free(log);
		free(in);
	}
	free(a64);
	free(a65);
	free(a200);
}

static void test_multiline_too_large(void **state)
{
	struct str s = { 0 };
	char *in, *log;
	size_t at, n;

	(void)state;
	str_adds(&s, "CHAT: 1\nJOIN_ID: 2\nCLIENT_NAME: a\nMESSAGE: first line\n");
	for (int i = 0; i < 20; i++)
		str_adds(&s, "another line\n"); /* 13 bytes each, all short */
	str_adds(&s, "\nHELO x\n");
	in = str_take(&s);
	n = strlen(in);
	/* max 100: the byte at offset 100 is not a newline, so the message is
	 * too large as soon as 101 bytes of it are in */
	assert_true(in[100] != '\n');
	for (int how = WHOLE; how <= BYTEWISE; how++) {
		log = run(PROTO_REQUESTS, 100, in, n, (enum split)how, 60, &at);
		assert_string_equal(log, "FATAL 8\n");
		if (how == BYTEWISE)
			assert_int_equal(at, 101);
		free(log);
	}
	/* the same message under the default limit is fine */
	log = run_whole(PROTO_REQUESTS, PROTO_DEFAULT_MAX_REQUEST, in, n);
	assert_string_equal(log, "CHAT[1|2|a|first line"
			    "\\nanother line\\nanother line\\nanother line\\nanother line"
			    "\\nanother line\\nanother line\\nanother line\\nanother line"
			    "\\nanother line\\nanother line\\nanother line\\nanother line"
			    "\\nanother line\\nanother line\\nanother line\\nanother line"
			    "\\nanother line\\nanother line\\nanother line\\nanother line]\nHELO[x]\n");
	free(log);
	free(in);
}

/* Blank lines between requests do not count toward a request's size. */
static void test_blank_lines_do_not_count(void **state)
{
	struct str s = { 0 };
	char *in, *log;

	(void)state;
	for (int i = 0; i < 500; i++)
		str_adds(&s, i % 2 ? "\n" : "\r\n");
	str_adds(&s, "HELO abc\n");
	for (int i = 0; i < 500; i++)
		str_adds(&s, "\n");
	str_adds(&s, "HELO def\n");
	in = str_take(&s);
	log = run_whole(PROTO_REQUESTS, 16, in, strlen(in));
	assert_string_equal(log, "HELO[abc]\nHELO[def]\n");
	free(log);
	assert_int_equal(check_stream("blank lines, small limit", PROTO_REQUESTS, 16, in,
				      strlen(in), "HELO[abc]\nHELO[def]\n"), 0);
	free(in);
}

/* A request's size is its bytes on the wire, the blank line that ends a
 * multi-line request excluded (SPEC: max_request is the bytes of one
 * request; proto.h: "blank lines excluded"). */
static const struct limit_case {
	const char *name;
	const char *input;
	size_t blank; /* bytes of the terminating blank line */
	const char *want;
} limit_cases[] = {
	{ "HELO LF", "HELO abcdef\n", 0, "HELO[abcdef]\n" },
	{ "HELO CRLF", "HELO abcdef\r\n", 0, "HELO[abcdef]\n" },
	{ "JOIN LF", JOIN_REQ, 0, JOIN_LOG },
	{ "JOIN CRLF", "JOIN_CHATROOM: room1\r\nCLIENT_IP: 0\r\nPORT: 0\r\nCLIENT_NAME: alice\r\n", 0,
	  JOIN_LOG },
	{ "CHAT LF", "CHAT: 3\nJOIN_ID: 7\nCLIENT_NAME: alice\nMESSAGE: one\ntwo\n\n", 1,
	  "CHAT[3|7|alice|one\\ntwo]\n" },
	{ "CHAT CRLF", "CHAT: 3\r\nJOIN_ID: 7\r\nCLIENT_NAME: alice\r\nMESSAGE: one\r\ntwo\r\n\r\n", 2,
	  "CHAT[3|7|alice|one\\ntwo]\n" },
};

static int check_limit(const struct limit_case *c, size_t max, const char *want)
{
	int bad = 0;
	size_t n = strlen(c->input);

	for (int how = WHOLE; how <= BYTEWISE; how++) {
		char *log = run(PROTO_REQUESTS, max, c->input, n, (enum split)how, n / 2, NULL);

		if (strcmp(log, want) != 0) {
			print_error("%s (size %zu) with max_request %zu, %s: want %s got %s\n", c->name,
				    n - c->blank, max,
				    how == WHOLE ? "whole" : how == SPLIT_AT ? "split" : "byte by byte",
				    want, log);
			bad++;
		}
		free(log);
	}
	return bad;
}

static void test_request_at_limit_accepted(void **state)
{
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(limit_cases) / sizeof(limit_cases[0]); i++) {
		const struct limit_case *c = &limit_cases[i];
		size_t size = strlen(c->input) - c->blank;

		bad += check_limit(c, size, c->want);
		bad += check_limit(c, size + 1, c->want);
	}
	assert_int_equal(bad, 0);
}

static void test_request_over_limit_rejected(void **state)
{
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(limit_cases) / sizeof(limit_cases[0]); i++) {
		const struct limit_case *c = &limit_cases[i];
		size_t size = strlen(c->input) - c->blank;

		bad += check_limit(c, size - 1, "FATAL 8\n");
		bad += check_limit(c, size - 5, "FATAL 8\n");
	}
	assert_int_equal(bad, 0);
}

/* ---- proto_parse_int --------------------------------------------------- */

static const struct int_case {
	const char *s;
	long min, max;
	int ok;
	long v;
} int_cases[] = {
	{ "0", 0, 10, 1, 0 },
	{ "7", 1, 10, 1, 7 },
	{ "10", 1, 10, 1, 10 },
	{ "1", 1, 10, 1, 1 },
	{ "12345", 1, 2147483647L, 1, 12345 },
	{ "2147483647", 1, 2147483647L, 1, 2147483647L },
	{ "-5", -10, 10, 1, -5 },
	{ "-10", -10, 10, 1, -10 },
	{ "007", 0, 10, 1, 7 },
	{ "-5", 0, 10, 0, 0 },
	{ "0", 1, 10, 0, 0 },
	{ "11", 1, 10, 0, 0 },
	{ "-11", -10, 10, 0, 0 },
	{ "2147483648", 1, 2147483647L, 0, 0 },
	{ "99999999999999999999999", LONG_MIN, LONG_MAX, 0, 0 },
	{ "-99999999999999999999999", LONG_MIN, LONG_MAX, 0, 0 },
	{ "12a", 0, 1000, 0, 0 },
	{ "12 ", 0, 1000, 0, 0 },
	{ "1.5", 0, 1000, 0, 0 },
	{ "0x10", 0, 1000, 0, 0 },
	{ "", 0, 1000, 0, 0 },
	{ "-", -10, 10, 0, 0 },
	{ "+5", 0, 10, 0, 0 },
	{ " 5", 0, 10, 0, 0 },
	{ "abc", 0, 10, 0, 0 },
};

static void test_parse_int(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(int_cases) / sizeof(int_cases[0]); i++) {
		const struct int_case *c = &int_cases[i];
		long v = -4242;
		int r = proto_parse_int(c->s, c->min, c->max, &v);

		if (r != (c->ok ? 0 : -1) || (c->ok && v != c->v))
			fail_msg("proto_parse_int(\"%s\", %ld, %ld): returned %d value %ld", c->s,
				 c->min, c->max, r, v);
	}
}

/* The limits of a long, as strtol took them: each end in, one past out. */
static void test_parse_int_long_limits(void **state)
{
	static const struct int_case cases[] = {
		{ "9223372036854775807", LONG_MIN, LONG_MAX, 1, LONG_MAX },
		{ "-9223372036854775808", LONG_MIN, LONG_MAX, 1, LONG_MIN },
		{ "9223372036854775808", LONG_MIN, LONG_MAX, 0, 0 },
		{ "-9223372036854775809", LONG_MIN, LONG_MAX, 0, 0 },
		{ "-0", -1, 1, 1, 0 },
		{ "--5", -10, 10, 0, 0 },
		{ "-+5", -10, 10, 0, 0 },
		{ "5-", -10, 10, 0, 0 },
	};

	(void)state;
	assert_int_equal(LONG_MAX, 9223372036854775807L); /* the strings above */
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct int_case *c = &cases[i];
		long v = -4242;
		int r = proto_parse_int(c->s, c->min, c->max, &v);

		if (r != (c->ok ? 0 : -1) || (c->ok && v != c->v))
			fail_msg("proto_parse_int(\"%s\", %ld, %ld): returned %d value %ld", c->s,
				 c->min, c->max, r, v);
	}
	assert_int_equal(proto_parse_int(NULL, 0, 1, &(long){ 0 }), -1);
}

/* No leading white space of any kind, like the leading space. */
static void test_parse_int_leading_white_space(void **state)
{
	static const char *const bad[] = { " 5", "\t5", "\n5", "\r5", "\v5", "\f5" };
	int nbad = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		long v = -4242;
		if (proto_parse_int(bad[i], 0, 10, &v) != -1) {
			print_error("proto_parse_int(\"%s\") accepted: %ld\n",
				    bad[i][0] == '\t' ? "\\t5" : bad[i][0] == '\n' ? "\\n5" :
				    bad[i][0] == '\r' ? "\\r5" : bad[i][0] == '\v' ? "\\v5" :
				    bad[i][0] == '\f' ? "\\f5" : bad[i], v);
			nbad++;
		}
	}
	assert_int_equal(nbad, 0);
}

/* ---- writers ----------------------------------------------------------- */

static struct msg *w_helo(void) { return proto_write_helo("text", "1.2.3.4", 9000, "id"); }
static struct msg *w_joined(void) { return proto_write_joined("room1", "10.0.0.1", 9001, 3, 12345); }
static struct msg *w_left(void) { return proto_write_left(3, 12345); }
static struct msg *w_chat(void) { return proto_write_chat(1, "a", "hi"); }
static struct msg *w_chat_lines(void) { return proto_write_chat(2, "bob", "one\ntwo: 2\nthree"); }
static struct msg *w_chat_joined(void) { return proto_write_chat(4, "carol", "carol" PROTO_JOINED_TEXT); }
static struct msg *w_error(void) { return proto_write_error(PROTO_E_NO_ROOM, NULL); }
static struct msg *w_error_detail(void) { return proto_write_error(PROTO_E_MALFORMED, "unknown command"); }
static struct msg *w_attached(void) { return proto_write_attached(3, 12345); }
static struct msg *w_join_req(void) { return proto_write_join_req("room1", "alice"); }
static struct msg *w_leave_req(void) { return proto_write_leave_req(3, 12345, "alice"); }
static struct msg *w_disc_req(void) { return proto_write_disconnect_req("alice"); }
static struct msg *w_chat_req(void) { return proto_write_chat_req(3, 12345, "alice", "hi"); }
static struct msg *w_chat_req_lines(void) { return proto_write_chat_req(3, 12345, "alice", "a\nb"); }
static struct msg *w_attach_req(void) { return proto_write_attach_req(3, 12345, "alice"); }
static struct msg *w_helo_req(void) { return proto_write_helo_req("BASE_TEST"); }

static const struct writer_case {
	const char *name;
	struct msg *(*make)(void);
	const char *bytes;           /* SPEC §2.1 */
	enum proto_dialect dialect;  /* the parser that reads it back */
	const char *parsed;
} writer_cases[] = {
	{ "helo", w_helo, "HELO text\nIP:1.2.3.4\nPort:9000\nStudentID:id\n", PROTO_REPLIES,
	  "R_HELO[text|1.2.3.4|9000|id]\n" },
	{ "joined", w_joined,
	  "JOINED_CHATROOM: room1\nSERVER_IP: 10.0.0.1\nPORT: 9001\nROOM_REF: 3\nJOIN_ID: 12345\n",
	  PROTO_REPLIES, "R_JOINED[room1|10.0.0.1|9001|3|12345]\n" },
	{ "left", w_left, "LEFT_CHATROOM: 3\nJOIN_ID: 12345\n", PROTO_REPLIES, "R_LEFT[3|12345]\n" },
	{ "chat", w_chat, "CHAT: 1\nCLIENT_NAME: a\nMESSAGE: hi\n\n", PROTO_REPLIES, "R_CHAT[1|a|hi]\n" },
	{ "chat lines", w_chat_lines, "CHAT: 2\nCLIENT_NAME: bob\nMESSAGE: one\ntwo: 2\nthree\n\n",
	  PROTO_REPLIES, "R_CHAT[2|bob|one\\ntwo: 2\\nthree]\n" },
	{ "chat joined", w_chat_joined,
	  "CHAT: 4\nCLIENT_NAME: carol\nMESSAGE: carol has joined this chatroom.\n\n", PROTO_REPLIES,
	  "R_CHAT[4|carol|carol has joined this chatroom.]\n" },
	{ "error", w_error, "ERROR_CODE: 2\nERROR_DESCRIPTION: no such room\n", PROTO_REPLIES,
	  "R_ERROR[2|no such room]\n" },
	{ "error detail", w_error_detail, "ERROR_CODE: 1\nERROR_DESCRIPTION: unknown command\n",
	  PROTO_REPLIES, "R_ERROR[1|unknown command]\n" },
	{ "attached", w_attached, "ATTACHED_CHATROOM: 3\nJOIN_ID: 12345\n", PROTO_REPLIES,
	  "R_ATTACHED[3|12345]\n" },
	{ "join_req", w_join_req, "JOIN_CHATROOM: room1\nCLIENT_IP: 0\nPORT: 0\nCLIENT_NAME: alice\n",
	  PROTO_REQUESTS, "JOIN[room1|0|0|alice]\n" },
	{ "leave_req", w_leave_req, "LEAVE_CHATROOM: 3\nJOIN_ID: 12345\nCLIENT_NAME: alice\n",
	  PROTO_REQUESTS, "LEAVE[3|12345|alice]\n" },
	{ "disconnect_req", w_disc_req, "DISCONNECT: 0\nPORT: 0\nCLIENT_NAME: alice\n", PROTO_REQUESTS,
	  "DISCONNECT[0|0|alice]\n" },
	{ "chat_req", w_chat_req, "CHAT: 3\nJOIN_ID: 12345\nCLIENT_NAME: alice\nMESSAGE: hi\n\n",
	  PROTO_REQUESTS, "CHAT[3|12345|alice|hi]\n" },
	{ "chat_req lines", w_chat_req_lines,
	  "CHAT: 3\nJOIN_ID: 12345\nCLIENT_NAME: alice\nMESSAGE: a\nb\n\n", PROTO_REQUESTS,
	  "CHAT[3|12345|alice|a\\nb]\n" },
	{ "attach_req", w_attach_req, "ATTACH_CHATROOM: 3\nJOIN_ID: 12345\nCLIENT_NAME: alice\n",
	  PROTO_REQUESTS, "ATTACH[3|12345|alice]\n" },
	{ "helo_req", w_helo_req, "HELO BASE_TEST\n", PROTO_REQUESTS, "HELO[BASE_TEST]\n" },
};

static void test_writers_bytes(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(writer_cases) / sizeof(writer_cases[0]); i++) {
		const struct writer_case *c = &writer_cases[i];
		struct msg *m = c->make();

		assert_non_null(m);
		if (m->len != strlen(c->bytes) || memcmp(m->data, c->bytes, m->len) != 0) {
			print_error("writer %s:\n  want: %s\n  got:  %.*s\n", c->name, c->bytes,
				    (int)m->len, m->data);
			msg_unref(&m);
			fail();
		}
		assert_int_equal(m->data[m->len], '\0');
		assert_int_equal(m->refs, 1);
		msg_unref(&m);
		assert_null(m);
	}
}

static void test_writers_round_trip(void **state)
{
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(writer_cases) / sizeof(writer_cases[0]); i++) {
		const struct writer_case *c = &writer_cases[i];
		struct msg *m = c->make();

		assert_non_null(m);
		bad += check_stream(c->name, c->dialect, PROTO_DEFAULT_MAX_REQUEST, m->data, m->len,
				    c->parsed);
		msg_unref(&m);
	}
	assert_int_equal(bad, 0);
}

/* Several frames of one writer after another, as a queue sends them. */
static void test_writers_coalesced(void **state)
{
	struct str s = { 0 }, want = { 0 };
	char *in, *w;

	(void)state;
	for (int rep = 0; rep < 2; rep++) {
		for (size_t i = 0; i < sizeof(writer_cases) / sizeof(writer_cases[0]); i++) {
			const struct writer_case *c = &writer_cases[i];
			struct msg *m;

			if (c->dialect != PROTO_REPLIES)
				continue;
			m = c->make();
			assert_non_null(m);
			str_add(&s, m->data, m->len);
			str_adds(&want, c->parsed);
			msg_unref(&m);
		}
	}
	in = str_take(&s);
	w = str_take(&want);
	assert_int_equal(check_stream("reply frames back to back", PROTO_REPLIES,
				      PROTO_DEFAULT_MAX_REQUEST, in, strlen(in), w), 0);
	free(in);
	free(w);
}

/* ---- the quiet period (SPEC §2.4), with a fake clock --------------------- */

#define QUIET_MS 250

/* A feeder with a clock: bytes arrive at given times; whenever the clock
 * passes QUIET_MS after the last byte while bytes are held, the owner calls
 * proto_finish() once, as conn.c does. */
struct timed {
	struct feeder f;
	uint64_t now, last_byte;
	int armed; /* bytes held since the last read, not yet offered */
};

static void timed_advance(struct timed *t, uint64_t ms)
{
	t->now += ms;
	if (t->armed && t->f.len > 0 && t->now - t->last_byte >= QUIET_MS) {
		struct proto_msg m;
		size_t consumed = (size_t)-1;
		/* one spare byte, exactly: ASan catches a write past it */
		char *nbuf = malloc(t->f.len + 1);
		enum proto_status st;

		assert_non_null(nbuf);
		memcpy(nbuf, t->f.buf, t->f.len);
		free(t->f.buf);
		t->f.buf = nbuf;
		st = proto_finish(&t->f.p, t->f.buf, t->f.len, &m, &consumed);
		assert_true(consumed <= t->f.len);
		if (st == PROTO_MESSAGE) {
			assert_int_equal(consumed, t->f.len);
			log_msg(&t->f.log, &m);
		} else {
			assert_int_equal(st, PROTO_NEED_MORE);
		}
		memmove(t->f.buf, t->f.buf + consumed, t->f.len - consumed);
		t->f.len -= consumed;
		t->armed = 0; /* until the next byte */
	}
}

static void timed_feed(struct timed *t, const char *data, size_t n)
{
	feed_bytes(&t->f, data, n);
	t->last_byte = t->now;
	t->armed = 1;
}

/* data cut at cut (0: not cut), the two parts gap ms apart, then silence. */
static char *timed_run(const char *data, size_t cut, uint64_t gap)
{
	struct timed t = { .now = 1000 };
	char *log;

	feeder_init(&t.f, PROTO_REQUESTS, PROTO_DEFAULT_MAX_REQUEST);
	timed_feed(&t, data, cut);
	timed_advance(&t, gap);
	timed_feed(&t, data + cut, strlen(data) - cut);
	timed_advance(&t, 10 * QUIET_MS);
	assert_int_equal(t.f.len, 0);
	log = str_take(&t.f.log);
	feeder_fini(&t.f);
	return log;
}

static const struct stream_case quiet_cases[] = {
	{ "JOIN without final newline", PROTO_REQUESTS,
	  "JOIN_CHATROOM: chatroom 1\nCLIENT_IP: 0\nPORT: 0\nCLIENT_NAME: Client 1",
	  "JOIN[chatroom 1|0|0|Client 1]\n" },
	{ "JOIN CRLF, last line bare", PROTO_REQUESTS,
	  "JOIN_CHATROOM: r\r\nCLIENT_IP: 0\r\nPORT: 0\r\nCLIENT_NAME: a", "JOIN[r|0|0|a]\n" },
	{ "JOIN with CLIENT IP, no final newline", PROTO_REQUESTS,
	  "JOIN_CHATROOM: r\nCLIENT IP: \nPORT: 0\nCLIENT_NAME: a", "JOIN[r||0|a]\n" },
	{ "CHAT without blank line", PROTO_REQUESTS,
	  "CHAT: 3\nJOIN_ID: 7\nCLIENT_NAME: a\nMESSAGE: hello there\n", "CHAT[3|7|a|hello there]\n" },
	{ "CHAT without any final newline", PROTO_REQUESTS,
	  "CHAT: 3\nJOIN_ID: 7\nCLIENT_NAME: a\nMESSAGE: hello", "CHAT[3|7|a|hello]\n" },
	{ "multi-line MESSAGE, blank line", PROTO_REQUESTS,
	  "CHAT: 3\nJOIN_ID: 7\nCLIENT_NAME: a\nMESSAGE: one\ntwo\n  three\n\n",
	  "CHAT[3|7|a|one\\ntwo\\n  three]\n" },
	{ "multi-line MESSAGE, no blank line", PROTO_REQUESTS,
	  "CHAT: 3\nJOIN_ID: 7\nCLIENT_NAME: a\nMESSAGE: one\ntwo\r\n", "CHAT[3|7|a|one\\ntwo]\n" },
	{ "HELO without newline", PROTO_REQUESTS, "HELO text", "HELO[text]\n" },
	{ "LEAVE without newline", PROTO_REQUESTS, "LEAVE_CHATROOM: 3\nJOIN_ID: 7\nCLIENT_NAME: a",
	  "LEAVE[3|7|a]\n" },
	{ "DISCONNECT without PORT or newline", PROTO_REQUESTS, "DISCONNECT: 0\nCLIENT_NAME: a",
	  "DISCONNECT[0||a]\n" },
	{ "terminated requests", PROTO_REQUESTS, "HELO a\n" JOIN_REQ "HELO b\n\n",
	  "HELO[a]\n" JOIN_LOG "HELO[b]\n" },
};

/* A request split anywhere, its parts arriving promptly (well inside the
 * quiet period), is one request; then the quiet period ends what lacks a
 * terminator. Every split position of every case, and byte by byte. */
static void test_quiet_every_split(void **state)
{
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(quiet_cases) / sizeof(quiet_cases[0]); i++) {
		const struct stream_case *c = &quiet_cases[i];
		size_t n = strlen(c->input);

		for (size_t k = 0; k < n; k++) {
			char *got = timed_run(c->input, k, QUIET_MS - 1);
			if (strcmp(got, c->want) != 0) {
				print_error("%s: split at %zu:\n  want: %s\n  got:  %s\n", c->name, k,
					    c->want, got);
				bad++;
			}
			free(got);
		}
		{
			struct timed t = { .now = 1000 };
			char *got;

			feeder_init(&t.f, PROTO_REQUESTS, PROTO_DEFAULT_MAX_REQUEST);
			for (size_t k = 0; k < n; k++) {
				timed_feed(&t, c->input + k, 1);
				timed_advance(&t, QUIET_MS / 3);
			}
			timed_advance(&t, QUIET_MS);
			got = str_take(&t.f.log);
			if (strcmp(got, c->want) != 0) {
				print_error("%s: byte by byte:\n  want: %s\n  got:  %s\n", c->name, c->want, got);
				bad++;
			}
			free(got);
			feeder_fini(&t.f);
		}
	}
	assert_int_equal(bad, 0);
}

/* A pause at a split where the request is not yet complete changes
 * nothing; a pause where it is (all fields there) ends it, which is the
 * documented cost: a value cut by a pause longer than the quiet period. */
static void test_quiet_pause_positions(void **state)
{
	static const char join[] = "JOIN_CHATROOM: r\nCLIENT_IP: 0\nPORT: 0\nCLIENT_NAME: alice\n";
	static const char chat[] = "CHAT: 3\nJOIN_ID: 7\nCLIENT_NAME: a\nMESSAGE: one\ntwo\n\n";
	size_t name_at = strlen("JOIN_CHATROOM: r\nCLIENT_IP: 0\nPORT: 0\nCLIENT_NAME: ");
	size_t two_at = strlen("CHAT: 3\nJOIN_ID: 7\nCLIENT_NAME: a\nMESSAGE: one\n");
	char *got;

	(void)state;
	/* Before the CLIENT_NAME value: nothing to finish, the JOIN is whole. */
	for (size_t k = 1; k <= name_at; k++) {
		got = timed_run(join, k, 10 * QUIET_MS);
		if (strcmp(got, "JOIN[r|0|0|alice]\n") != 0)
			fail_msg("pause at %zu: got %s", k, got);
		free(got);
	}
	/* Inside the value: it ends at the pause; the rest is a bad line. */
	got = timed_run(join, name_at + 3, 10 * QUIET_MS);
	assert_string_equal(got, "JOIN[r|0|0|ali]\nERROR 1\n");
	free(got);
	/* Only the final newline late: the JOIN, once. */
	got = timed_run(join, sizeof(join) - 2, 10 * QUIET_MS);
	assert_string_equal(got, "JOIN[r|0|0|alice]\n");
	free(got);
	/* A CHAT before its MESSAGE line: nothing to finish. */
	got = timed_run(chat, two_at - strlen("MESSAGE: one\n"), 10 * QUIET_MS);
	assert_string_equal(got, "CHAT[3|7|a|one\\ntwo]\n");
	free(got);
	/* After "one\n": a MESSAGE may end there; the next line is then no
	 * request (error 1) and the blank line ends the skipping. */
	got = timed_run(chat, two_at, 10 * QUIET_MS);
	assert_string_equal(got, "CHAT[3|7|a|one]\nERROR 1\n");
	free(got);
}

/* The client's next request after a quiet-ended one is a request; a late
 * optional field is absorbed; a quiet period with nothing complete keeps
 * the bytes. */
static void test_quiet_then_next_request(void **state)
{
	struct timed t = { .now = 1000 };
	static const char *const steps[] = {
		"JOIN_CHATROOM: chatroom 1\nCLIENT IP: 0\nPORT: 0\nCLIENT_NAME: Client 1",
		"CHAT: 3\nJOIN_ID: 7\nCLIENT_NAME: Client 1\nMESSAGE: hello\n",
		"LEAVE_CHATROOM: 3\nJOIN_ID: 7\nCLIENT_NAME: Client 1",
		"JOIN_CHATROOM: r\nCLIENT_NAME: a\nPORT: 0",
		"JOIN_CHATROOM: r\nCLIENT_IP: 0",
		"\nPORT: 0\nCLIENT_NAME: b\n",
		"DISCONNECT: 0\nPORT: 0\nCLIENT_NAME: a",
	};

	(void)state;
	feeder_init(&t.f, PROTO_REQUESTS, PROTO_DEFAULT_MAX_REQUEST);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		timed_feed(&t, steps[i], strlen(steps[i]));
		timed_advance(&t, QUIET_MS);
	}
	assert_string_equal(t.f.log.s,
			    "JOIN[chatroom 1||0|Client 1]\nCHAT[3|7|Client 1|hello]\n"
			    "LEAVE[3|7|Client 1]\nJOIN[r|||a]\nJOIN[r|0|0|b]\nDISCONNECT[0|0|a]\n");
	assert_int_equal(t.f.len, 0);
	feeder_fini(&t.f);

	/* Held bytes that are no complete request: finish changes nothing. */
	{
		struct proto_parser p;
		struct proto_msg m;
		char buf[64] = "JOIN_CHATROOM: r\nCLIENT_NA";
		size_t len = strlen(buf), consumed = 1;
		enum proto_err err;
		int fatal;

		proto_parser_init(&p, PROTO_REQUESTS, PROTO_DEFAULT_MAX_REQUEST);
		assert_int_equal(proto_parse(&p, buf, len, &m, &consumed, &err, &fatal), PROTO_NEED_MORE);
		assert_int_equal(consumed, 0);
		assert_int_equal(proto_finish(&p, buf, len, &m, &consumed), PROTO_NEED_MORE);
		assert_int_equal(consumed, 0);
		memcpy(buf + len, "ME: z\n", 7);
		len += 6;
		assert_int_equal(proto_parse(&p, buf, len, &m, &consumed, &err, &fatal), PROTO_MESSAGE);
		assert_int_equal(m.kind, PROTO_JOIN);
		assert_string_equal(m.field[PROTO_F_JOIN_NAME], "z");
		assert_int_equal(p.ignored, 0);
	}
}

/* Unknown fields are counted for the owner's debug log. */
static void test_ignored_counted(void **state)
{
	struct feeder f;

	(void)state;
	feeder_init(&f, PROTO_REQUESTS, PROTO_DEFAULT_MAX_REQUEST);
	feed(&f, "JOIN_CHATROOM: r\nCLIENT IP: 0\nX: 1\nCLIENT_NAME: a\n", NULL);
	assert_string_equal(f.log.s, "JOIN[r|||a]\n");
	assert_int_equal(f.p.ignored, 2);
	feeder_fini(&f);
}

/* A MESSAGE line after the first that a line-based client would read as
 * a field of a frame of its own is refused; near misses pass. */
static void test_forged_field_lines(void **state)
{
	static const char *const forged[] = {
		"hi\nCHAT: 1\nCLIENT_NAME: alice\nMESSAGE: I owe you",
		"hi\nclient_name:alice",
		"hi\n  LEFT_CHATROOM: 1",
		"hi\nERROR_CODE: 3",
		"a\nb\nHELO x",
		"a\nHELO",
		"a\nJOINED_CHATROOM: x",
		"a\nStudentID: 1",
	};
	static const char *const fine[] = {
		"CHAT: 1 on the first line is the sender's own business",
		"hi\nCHAT :1",
		"hi\nJOIN_ID 7",
		"hi\nHELLO there",
		"hi\nMESSAGE= x",
		"hi\nERROR CODE: 1",
		"one line",
		"",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(forged) / sizeof(forged[0]); i++)
		assert_true(proto_text_forges_field(forged[i], strlen(forged[i])));
	for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++)
		assert_false(proto_text_forges_field(fine[i], strlen(fine[i])));
}

static void test_error_codes(void **state)
{
	(void)state;
	assert_string_equal(proto_err_text(PROTO_E_MALFORMED), "malformed request");
	assert_string_equal(proto_err_text(PROTO_E_NO_ROOM), "no such room");
	assert_string_equal(proto_err_text(PROTO_E_TOO_LARGE), "request or message too large");
	assert_string_equal(proto_err_text((enum proto_err)12), "unknown error");
	assert_string_equal(proto_err_text((enum proto_err)-1), "unknown error");
	assert_int_equal(PROTO_E_MALFORMED, 1);
	assert_int_equal(PROTO_E_SERVER, 11);
	for (int e = PROTO_E_MALFORMED; e <= PROTO_E_SERVER; e++) {
		struct msg *m = proto_write_error((enum proto_err)e, NULL);
		char want[160];
		char *log;

		assert_non_null(m);
		assert_true(strlen(proto_err_text((enum proto_err)e)) > 0);
		snprintf(want, sizeof(want), "ERROR_CODE: %d\nERROR_DESCRIPTION: %s\n", e,
			 proto_err_text((enum proto_err)e));
		assert_string_equal(m->data, want);
		log = run_whole(PROTO_REPLIES, PROTO_DEFAULT_MAX_REQUEST, m->data, m->len);
		snprintf(want, sizeof(want), "R_ERROR[%d|%s]\n", e, proto_err_text((enum proto_err)e));
		assert_string_equal(log, want);
		free(log);
		msg_unref(&m);
	}
	assert_string_equal(PROTO_JOINED_TEXT, " has joined this chatroom.");
	assert_string_equal(PROTO_LEFT_TEXT, " has left this chatroom.");
}

/* The heads formatted by hand write what snprintf wrote: every digit
 * count and sign, and cut to the buffer as snprintf cuts (the length is
 * the whole one either way). */
static void test_number_heads_as_snprintf(void **state)
{
	const long v[] = { 0, 1, 9, 10, 99, 100, 12345, -1, -10, -987654321, 1000000000000L,
			   LONG_MAX, LONG_MIN };
	const size_t caps[] = { 0, 1, 5, 10, 64 };
	const size_t nv = sizeof(v) / sizeof(v[0]), nc = sizeof(caps) / sizeof(caps[0]);

	(void)state;
	for (size_t i = 0; i < nv; i++) {
		for (size_t k = 0; k < nc; k++) {
			char want[128], got[128];
			size_t cap = caps[k];
			int n;

			memset(want, 'x', sizeof(want));
			memset(got, 'x', sizeof(got));
			n = snprintf(want, cap, "HISTORY: %ld\nCOUNT: %ld\n", v[i], v[nv - 1 - i]);
			assert_int_equal(proto_fmt_history_head(got, cap, v[i], v[nv - 1 - i]), n);
			assert_memory_equal(got, want, sizeof(got));
			memset(want, 'x', sizeof(want));
			memset(got, 'x', sizeof(got));
			n = snprintf(want, cap, "SEQ: %ld\n", v[i]);
			assert_int_equal(proto_fmt_seq(got, cap, v[i]), n);
			assert_memory_equal(got, want, sizeof(got));
		}
	}
	assert_int_equal(proto_fmt_history_head(NULL, 0, 7, 12), strlen("HISTORY: 7\nCOUNT: 12\n"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kinds),
		cmocka_unit_test(test_field_indexes),
		cmocka_unit_test(test_liberal_reading),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_feed_chunks),
		cmocka_unit_test(test_skipped_bytes_released),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_nul_in_skipped_garbage),
		cmocka_unit_test(test_long_line_without_newline),
		cmocka_unit_test(test_multiline_too_large),
		cmocka_unit_test(test_blank_lines_do_not_count),
		cmocka_unit_test(test_request_at_limit_accepted),
		cmocka_unit_test(test_request_over_limit_rejected),
		cmocka_unit_test(test_parse_int),
		cmocka_unit_test(test_parse_int_leading_white_space),
		cmocka_unit_test(test_writers_bytes),
		cmocka_unit_test(test_writers_round_trip),
		cmocka_unit_test(test_writers_coalesced),
		cmocka_unit_test(test_error_codes),
		cmocka_unit_test(test_quiet_every_split),
		cmocka_unit_test(test_quiet_pause_positions),
		cmocka_unit_test(test_quiet_then_next_request),
		cmocka_unit_test(test_ignored_counted),
		cmocka_unit_test(test_forged_field_lines),
		cmocka_unit_test(test_number_heads_as_snprintf),
		cmocka_unit_test(test_parse_int_long_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

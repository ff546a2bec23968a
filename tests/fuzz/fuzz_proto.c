/* fuzz_proto.c - libFuzzer target for the wire codec (common/proto.h).
 *
 * The input is parsed in both dialects the way a connection feeds the
 * parser: bytes appended to a growing buffer in chunks, proto_parse() called
 * until PROTO_NEED_MORE, *consumed bytes discarded after each call. Every
 * result is checked against the codec's contract (abort() on violation, so
 * NDEBUG cannot remove a check), recorded as a byte string, and the same
 * input fed whole must record exactly the same: the parse of a stream may
 * not depend on how it was split. Parsed messages are written back with the
 * codec's own writers and parsed again (round trip).
 *
 * Input: byte 0 picks max_request (64..8192, bits 0-6) and turns on the
 * quiet-period path (bit 7: proto_finish() with a fake clock, the sender
 * pausing after the fraction byte1/255 of the stream and at its end), byte
 * 1 the chunking pattern, the rest is the stream. Single-threaded; no state survives a call. */
#include "msg.h"
#include "proto.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The slack a connection keeps above max_request in its read buffer
 * (CONN_READ_CHUNK in server/conn.c): the parser must have reported a
 * request too large before the bytes it holds reach max_request + this,
 * or the connection's buffer would be full with no verdict. */
#define FUZZ_CONN_SLACK 4096

/* The reparse of a written message may be longer than the original
 * (spacing, "0" fields); its limit is not what is under test. */
#define FUZZ_ROUNDTRIP_MAX (1u << 20)

#define CHECK(cond)                                                                       \
	do {                                                                              \
		if (!(cond)) {                                                            \
			fprintf(stderr, "fuzz_proto: %s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                                         \
			abort();                                                          \
		}                                                                         \
	} while (0)

/* ---- what the codec promises, independent of proto.c's tables ---------- */

/* Fields of each kind (0: not a kind of that dialect) and the index of the
 * multi-line field (-1: none). */
static int kind_fields(enum proto_dialect d, enum proto_kind k, int *multiline)
{
	*multiline = -1;
	if (d == PROTO_REQUESTS) {
		switch (k) {
		case PROTO_HELO: return 1;
		case PROTO_KILL_SERVICE: return 1;
		case PROTO_JOIN: return 4;
		case PROTO_LEAVE: return 3;
		case PROTO_DISCONNECT: return 3;
		case PROTO_CHAT: *multiline = PROTO_F_CHAT_TEXT; return 4;
		case PROTO_ATTACH: return 3;
		case PROTO_WELCOME: return 1;
		case PROTO_LIST_ROOMS: return 1;
		case PROTO_LIST_MEMBERS: return 1;
		case PROTO_PRIVATE: *multiline = PROTO_F_PRIV_TEXT; return 3;
		case PROTO_HISTORY: return 3;
		case PROTO_SET_TOPIC: return 4;
		case PROTO_HISTORY_AFTER: return 4;
		default: return 0;
		}
	}
	switch (k) {
	case PROTO_R_HELO: return 4;
	case PROTO_R_JOINED: return 5;
	case PROTO_R_LEFT: return 2;
	case PROTO_R_CHAT: *multiline = PROTO_F_RCHAT_TEXT; return 3;
	case PROTO_R_ERROR: return 2;
	case PROTO_R_ATTACHED: return 2;
	case PROTO_R_WELCOME: return 4;
	case PROTO_R_ROOMS: return 1;
	case PROTO_R_ROOM: return 5;
	case PROTO_R_MEMBERS: return 2;
	case PROTO_R_MEMBER: return 1;
	case PROTO_R_PRIVATE_SENT: return 2;
	case PROTO_R_PRIVATE_FROM: *multiline = PROTO_F_RPFROM_TEXT; return 2;
	case PROTO_R_HISTORY: return 2;
	case PROTO_R_ENTRY: *multiline = PROTO_F_RENTRY_TEXT; return 3;
	case PROTO_R_TOPIC_SET: return 2;
	case PROTO_R_SEQ: return 1;
	case PROTO_R_HISTORY_AFTER: return 4;
	case PROTO_R_GAP: return 3;
	default: return 0;
	}
}

static int is_blank_char(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* Check one PROTO_MESSAGE against buf[0..len) it was parsed from. */
static void check_message(enum proto_dialect d, const struct proto_msg *m, const char *buf,
			  size_t len)
{
	int multiline, n = kind_fields(d, m->kind, &multiline);

	CHECK(n > 0);
	for (int i = 0; i < PROTO_MAX_FIELDS; i++) {
		const char *f = m->field[i];

		if (i >= n) {
			CHECK(f == NULL);
			continue;
		}
		CHECK(f != NULL);
		CHECK(f >= buf && f < buf + len);
		CHECK(m->len[i] < (size_t)(buf + len - f)); /* the NUL is inside too */
		CHECK(f[m->len[i]] == '\0');
		CHECK(strlen(f) == m->len[i]);
		/* Values are trimmed. */
		if (m->len[i] > 0) {
			CHECK(!is_blank_char(f[0]) && f[0] != '\n');
			CHECK(!is_blank_char(f[m->len[i] - 1]) && f[m->len[i] - 1] != '\n');
		}
		if (i != multiline) {
			CHECK(memchr(f, '\n', m->len[i]) == NULL);
			continue;
		}
		/* The multi-line text runs to a blank line, so none of its
		 * lines is blank (white space only). It may be empty. */
		for (size_t s = 0; m->len[i] > 0 && s <= m->len[i];) {
			const char *nl = memchr(f + s, '\n', m->len[i] - s);
			size_t e = nl ? (size_t)(nl - f) : m->len[i], k = s;

			while (k < e && is_blank_char(f[k]))
				k++;
			CHECK(k < e);
			s = e + 1;
		}
		CHECK(strstr(f, "\n\n") == NULL);
	}
}

/* ---- the record of a parse, compared between feedings -------------------- */

struct record {
	unsigned char *s;
	size_t len, cap;
};

static void rec_add(struct record *r, const void *p, size_t n)
{
	if (r->len + n > r->cap) {
		size_t ncap = r->cap ? r->cap : 256;
		unsigned char *ns;

		while (ncap < r->len + n)
			ncap *= 2;
		ns = realloc(r->s, ncap);
		CHECK(ns != NULL);
		r->s = ns;
		r->cap = ncap;
	}
	memcpy(r->s + r->len, p, n);
	r->len += n;
}

static void rec_message(struct record *r, enum proto_dialect d, const struct proto_msg *m)
{
	int multiline, n = kind_fields(d, m->kind, &multiline);
	unsigned char tag[2] = { 'M', (unsigned char)m->kind };

	rec_add(r, tag, sizeof(tag));
	for (int i = 0; i < n; i++) {
		rec_add(r, &m->len[i], sizeof(m->len[i]));
		rec_add(r, m->field[i], m->len[i]);
	}
}

static void rec_error(struct record *r, enum proto_err err, int fatal)
{
	unsigned char tag[3] = { 'E', (unsigned char)err, (unsigned char)(fatal != 0) };

	rec_add(r, tag, sizeof(tag));
}

/* ---- round trip through the writers -------------------------------------- */

static int printable(const char *s, size_t n, int newline_ok)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(c >= 0x20 && c < 0x7f) && !(newline_ok && c == '\n'))
			return 0;
	}
	return 1;
}

static int as_long(const char *s, long *v)
{
	return proto_parse_int(s, LONG_MIN, LONG_MAX, v) == 0;
}

/* Parse w (a message a writer made) alone: exactly one message, all of it. */
static void reparse(enum proto_dialect d, const struct msg *w, struct proto_msg *out, char **copy)
{
	struct proto_parser p;
	size_t used;
	enum proto_err err;
	int fatal;

	*copy = malloc(w->len);
	CHECK(*copy != NULL);
	memcpy(*copy, w->data, w->len);
	proto_parser_init(&p, d, FUZZ_ROUNDTRIP_MAX);
	CHECK(proto_parse(&p, *copy, w->len, out, &used, &err, &fatal) == PROTO_MESSAGE);
	CHECK(used == w->len);
	check_message(d, out, *copy, w->len);
}

static void same_text(const struct proto_msg *a, int fa, const struct proto_msg *b, int fb)
{
	CHECK(a->len[fa] == b->len[fb]);
	CHECK(memcmp(a->field[fa], b->field[fb], a->len[fa]) == 0);
}

static void same_int(const struct proto_msg *a, int fa, const struct proto_msg *b, int fb)
{
	long va, vb;

	CHECK(as_long(a->field[fa], &va) && as_long(b->field[fb], &vb) && va == vb);
}

/* Write m back with the writer of its kind (when its values are ones a
 * writer accepts: printable, integers where the writer takes a long), parse
 * the result, and compare. */
static void round_trip(enum proto_dialect d, const struct proto_msg *m)
{
	struct msg *w = NULL;
	struct proto_msg r;
	char *copy = NULL;
	long a, b, port;
	int multiline, n = kind_fields(d, m->kind, &multiline);

	for (int i = 0; i < n; i++)
		if (!printable(m->field[i], m->len[i], i == multiline))
			return;
	switch (m->kind) {
	case PROTO_HELO:
		w = proto_write_helo_req(m->field[PROTO_F_HELO_TEXT]);
		break;
	case PROTO_JOIN:
		w = proto_write_join_req(m->field[PROTO_F_JOIN_ROOM], m->field[PROTO_F_JOIN_NAME]);
		break;
	case PROTO_LEAVE:
		if (as_long(m->field[PROTO_F_LEAVE_REF], &a) && as_long(m->field[PROTO_F_LEAVE_ID], &b))
			w = proto_write_leave_req(a, b, m->field[PROTO_F_LEAVE_NAME]);
		break;
	case PROTO_DISCONNECT:
		w = proto_write_disconnect_req(m->field[PROTO_F_DISC_NAME]);
		break;
	case PROTO_CHAT:
		if (as_long(m->field[PROTO_F_CHAT_REF], &a) && as_long(m->field[PROTO_F_CHAT_ID], &b))
			w = proto_write_chat_req(a, b, m->field[PROTO_F_CHAT_NAME],
						 m->field[PROTO_F_CHAT_TEXT]);
		break;
	case PROTO_ATTACH:
		if (as_long(m->field[PROTO_F_ATTACH_REF], &a) && as_long(m->field[PROTO_F_ATTACH_ID], &b))
			w = proto_write_attach_req(a, b, m->field[PROTO_F_ATTACH_NAME]);
		break;
	case PROTO_R_LEFT:
		if (as_long(m->field[PROTO_F_LEFT_REF], &a) && as_long(m->field[PROTO_F_LEFT_ID], &b))
			w = proto_write_left(a, b);
		break;
	case PROTO_R_ATTACHED:
		if (as_long(m->field[PROTO_F_ATTACHED_REF], &a) &&
		    as_long(m->field[PROTO_F_ATTACHED_ID], &b))
			w = proto_write_attached(a, b);
		break;
	case PROTO_R_CHAT:
		if (as_long(m->field[PROTO_F_RCHAT_REF], &a))
			w = proto_write_chat(a, m->field[PROTO_F_RCHAT_NAME], m->field[PROTO_F_RCHAT_TEXT]);
		break;
	case PROTO_R_ERROR:
		if (as_long(m->field[PROTO_F_ERROR_CODE], &a) && a >= 1 && a <= PROTO_E_SERVER)
			w = proto_write_error((enum proto_err)a, m->field[PROTO_F_ERROR_TEXT]);
		break;
	case PROTO_R_JOINED:
		if (as_long(m->field[PROTO_F_JOINED_PORT], &port) && port >= 0 && port <= (long)UINT_MAX &&
		    as_long(m->field[PROTO_F_JOINED_REF], &a) && as_long(m->field[PROTO_F_JOINED_ID], &b))
			w = proto_write_joined(m->field[PROTO_F_JOINED_ROOM], m->field[PROTO_F_JOINED_IP],
					       (unsigned)port, a, b);
		break;
	case PROTO_R_HELO:
		if (as_long(m->field[PROTO_F_RHELO_PORT], &port) && port >= 0 && port <= (long)UINT_MAX)
			w = proto_write_helo(m->field[PROTO_F_RHELO_TEXT], m->field[PROTO_F_RHELO_IP],
					     (unsigned)port, m->field[PROTO_F_RHELO_ID]);
		break;
	default:
		break;
	}
	if (!w)
		return;
	reparse(d, w, &r, &copy);
	CHECK(r.kind == m->kind);
	switch (m->kind) {
	case PROTO_HELO:
		same_text(m, PROTO_F_HELO_TEXT, &r, PROTO_F_HELO_TEXT);
		break;
	case PROTO_JOIN:
		same_text(m, PROTO_F_JOIN_ROOM, &r, PROTO_F_JOIN_ROOM);
		same_text(m, PROTO_F_JOIN_NAME, &r, PROTO_F_JOIN_NAME);
		break;
	case PROTO_LEAVE:
		same_int(m, PROTO_F_LEAVE_REF, &r, PROTO_F_LEAVE_REF);
		same_int(m, PROTO_F_LEAVE_ID, &r, PROTO_F_LEAVE_ID);
		same_text(m, PROTO_F_LEAVE_NAME, &r, PROTO_F_LEAVE_NAME);
		break;
	case PROTO_DISCONNECT:
		same_text(m, PROTO_F_DISC_NAME, &r, PROTO_F_DISC_NAME);
		break;
	case PROTO_CHAT:
		same_int(m, PROTO_F_CHAT_REF, &r, PROTO_F_CHAT_REF);
		same_int(m, PROTO_F_CHAT_ID, &r, PROTO_F_CHAT_ID);
		same_text(m, PROTO_F_CHAT_NAME, &r, PROTO_F_CHAT_NAME);
		same_text(m, PROTO_F_CHAT_TEXT, &r, PROTO_F_CHAT_TEXT);
		break;
	case PROTO_ATTACH:
		same_int(m, PROTO_F_ATTACH_REF, &r, PROTO_F_ATTACH_REF);
		same_int(m, PROTO_F_ATTACH_ID, &r, PROTO_F_ATTACH_ID);
		same_text(m, PROTO_F_ATTACH_NAME, &r, PROTO_F_ATTACH_NAME);
		break;
	case PROTO_R_LEFT:
		same_int(m, PROTO_F_LEFT_REF, &r, PROTO_F_LEFT_REF);
		same_int(m, PROTO_F_LEFT_ID, &r, PROTO_F_LEFT_ID);
		break;
	case PROTO_R_ATTACHED:
		same_int(m, PROTO_F_ATTACHED_REF, &r, PROTO_F_ATTACHED_REF);
		same_int(m, PROTO_F_ATTACHED_ID, &r, PROTO_F_ATTACHED_ID);
		break;
	case PROTO_R_CHAT:
		same_int(m, PROTO_F_RCHAT_REF, &r, PROTO_F_RCHAT_REF);
		same_text(m, PROTO_F_RCHAT_NAME, &r, PROTO_F_RCHAT_NAME);
		same_text(m, PROTO_F_RCHAT_TEXT, &r, PROTO_F_RCHAT_TEXT);
		break;
	case PROTO_R_ERROR:
		same_int(m, PROTO_F_ERROR_CODE, &r, PROTO_F_ERROR_CODE);
		same_text(m, PROTO_F_ERROR_TEXT, &r, PROTO_F_ERROR_TEXT);
		break;
	case PROTO_R_JOINED:
		same_text(m, PROTO_F_JOINED_ROOM, &r, PROTO_F_JOINED_ROOM);
		same_text(m, PROTO_F_JOINED_IP, &r, PROTO_F_JOINED_IP);
		same_int(m, PROTO_F_JOINED_PORT, &r, PROTO_F_JOINED_PORT);
		same_int(m, PROTO_F_JOINED_REF, &r, PROTO_F_JOINED_REF);
		same_int(m, PROTO_F_JOINED_ID, &r, PROTO_F_JOINED_ID);
		break;
	case PROTO_R_HELO:
		same_text(m, PROTO_F_RHELO_TEXT, &r, PROTO_F_RHELO_TEXT);
		same_text(m, PROTO_F_RHELO_IP, &r, PROTO_F_RHELO_IP);
		same_int(m, PROTO_F_RHELO_PORT, &r, PROTO_F_RHELO_PORT);
		same_text(m, PROTO_F_RHELO_ID, &r, PROTO_F_RHELO_ID);
		break;
	default:
		break;
	}
	msg_unref(&w);
	free(copy);
}

/* ---- feeding ------------------------------------------------------------ */

/* A tiny deterministic generator for chunk sizes. */
static uint32_t next_rand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* The size of the next chunk under pattern (0: the whole input at once). */
static size_t chunk_size(unsigned pattern, uint32_t *rng, size_t left)
{
	size_t n;

	switch (pattern & 3) {
	case 0: n = 1 + (pattern >> 2); break;              /* constant 1..64 */
	case 1: n = 1 + next_rand(rng) % 16; break;         /* small, ragged */
	case 2: n = 1 + next_rand(rng) % 512; break;
	default: n = 1 + next_rand(rng) % FUZZ_CONN_SLACK; break; /* like reads */
	}
	return n < left ? n : left;
}

/* proto_parse() until it needs more, as conn_process does: every result
 * checked and recorded, consumed bytes dropped. Returns 1 after a fatal
 * error (the connection is closed). */
static int drain(enum proto_dialect d, struct proto_parser *p, char *buf, size_t *lenp,
		 struct record *rec, int with_round_trip)
{
	size_t len = *lenp;
	int dead = 0;

	for (;;) {
		struct proto_msg m;
		size_t used = (size_t)-1;
		enum proto_err err = (enum proto_err)-1;
		int fatal = -1;
		enum proto_status st;

		memset(&m, 0x5a, sizeof(m)); /* unset fields must not look set */
		st = proto_parse(p, buf, len, &m, &used, &err, &fatal);
		CHECK(used <= len);
		CHECK(fatal == 0 || fatal == 1);
		if (st == PROTO_MESSAGE) {
			CHECK(used > 0); /* progress, or the caller would spin */
			CHECK(fatal == 0);
			check_message(d, &m, buf, len);
			/* Its values lie in the bytes it consumes. */
			for (int i = 0; i < PROTO_MAX_FIELDS && m.field[i]; i++)
				CHECK(m.field[i] + m.len[i] < buf + used);
			rec_message(rec, d, &m);
			if (with_round_trip)
				round_trip(d, &m);
		} else if (st == PROTO_ERROR) {
			CHECK(used > 0);
			CHECK(err >= PROTO_E_MALFORMED && err <= PROTO_E_SERVER);
			rec_error(rec, err, fatal);
			if (fatal) {
				dead = 1;
				break;
			}
		} else {
			CHECK(st == PROTO_NEED_MORE);
			CHECK(fatal == 0);
		}
		memmove(buf, buf + used, len - used);
		len -= used;
		if (st == PROTO_NEED_MORE)
			break;
	}
	*lenp = len;
	return dead;
}

/* Feed in[0..n) through a parser as a connection does, in chunks chosen by
 * pattern (whole: one chunk), checking every result and recording it.
 * Stops at a fatal error, as the connection is then closed. */
static void feed(enum proto_dialect d, size_t max_request, const uint8_t *in, size_t n, int whole,
		 unsigned pattern, struct record *rec, int with_round_trip)
{
	struct proto_parser p;
	char *buf = NULL; /* exactly len bytes, so ASan sees a read past len */
	size_t len = 0, off = 0;
	uint32_t rng = 0x9e3779b9u ^ pattern;
	int dead = 0;

	proto_parser_init(&p, d, max_request);
	while (off < n && !dead) {
		size_t add = whole ? n - off : chunk_size(pattern, &rng, n - off);
		char *nb = realloc(buf, len + add);

		CHECK(nb != NULL);
		buf = nb;
		memcpy(buf + len, in + off, add);
		len += add;
		off += add;
		dead = drain(d, &p, buf, &len, rec, with_round_trip);
		/* What the parser keeps must fit the connection's buffer with
		 * room to read more: over-long requests are reported first. */
		if (!dead)
			CHECK(len <= max_request + FUZZ_CONN_SLACK);
		if (len > 0) {
			char *sb = realloc(buf, len);
			CHECK(sb != NULL);
			buf = sb;
		}
	}
	if (!dead) {
		/* The unconsumed tail is part of the result: a later byte must
		 * meet the same parser state whatever the split. */
		unsigned char tag = 'T';
		rec_add(rec, &tag, 1);
		rec_add(rec, &len, sizeof(len));
	}
	free(buf);
}

/* The owner's quiet deadline passed (SPEC §2.4): proto_finish() on what
 * the parser holds, with exactly one spare byte (its NUL). Checks and
 * records the result. */
static char *quiet_finish(enum proto_dialect d, struct proto_parser *p, char *buf, size_t *lenp,
			  struct record *rec)
{
	size_t len = *lenp, used = (size_t)-1;
	struct proto_msg m;
	enum proto_status st;
	char *nb = realloc(buf, len + 1);

	CHECK(nb != NULL);
	buf = nb;
	memset(&m, 0x5a, sizeof(m));
	st = proto_finish(p, buf, len, &m, &used);
	CHECK(used <= len);
	if (st == PROTO_MESSAGE) {
		CHECK(used == len && len > 0); /* it ends at the end of the bytes */
		check_message(d, &m, buf, len + 1);
		rec_message(rec, d, &m);
		round_trip(d, &m);
	} else {
		CHECK(st == PROTO_NEED_MORE);
	}
	memmove(buf, buf + used, len - used);
	*lenp = len - used;
	return buf;
}

/* in[0..n) with a quiet period after byte q and at the end: a lab-era
 * client that stops sending at q for longer than end_quiet_ms. Whatever
 * the quiet period ends, the parser stays within its contract, and a quiet
 * period only at the end may only add one message to the whole parse. */
static void feed_quiet(enum proto_dialect d, size_t max_request, const uint8_t *in, size_t n,
		       size_t q, struct record *rec)
{
	struct proto_parser p;
	char *buf = NULL;
	size_t len = 0;
	const size_t parts[2] = { q, n - q };
	int dead = 0;

	proto_parser_init(&p, d, max_request);
	for (int i = 0; i < 2 && !dead; i++) {
		char *nb = realloc(buf, len + parts[i] + 1);

		CHECK(nb != NULL);
		buf = nb;
		memcpy(buf + len, in + (i ? q : 0), parts[i]);
		len += parts[i];
		dead = drain(d, &p, buf, &len, rec, 0);
		if (!dead) {
			CHECK(len <= max_request + FUZZ_CONN_SLACK);
			if (len > 0)
				buf = quiet_finish(d, &p, buf, &len, rec);
		}
	}
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum proto_dialect dialects[] = { PROTO_REQUESTS, PROTO_REPLIES };
	size_t max_request;
	unsigned pattern;
	int quiet;

	if (size < 2)
		return 0;
	max_request = 64 + (size_t)(data[0] & 127) * 64; /* 64..8192 */
	quiet = data[0] & 128;
	pattern = data[1];
	data += 2;
	size -= 2;
	for (size_t i = 0; i < sizeof(dialects) / sizeof(dialects[0]); i++) {
		struct record whole = { 0 }, chunked = { 0 };

		feed(dialects[i], max_request, data, size, 1, pattern, &whole, 1);
		feed(dialects[i], max_request, data, size, 0, pattern, &chunked, 0);
		if (whole.len != chunked.len || memcmp(whole.s, chunked.s, whole.len) != 0) {
			fprintf(stderr, "fuzz_proto: %s dialect, max_request %zu, chunk pattern %u: "
				"fed whole and fed in chunks parse differently\n",
				dialects[i] == PROTO_REQUESTS ? "request" : "reply", max_request, pattern);
			abort();
		}
		/* The quiet-period path (a fake clock): bit 7 of byte 0 turns it
		 * on, byte 1 says where the sender pauses. */
		if (quiet) {
			struct record q = { 0 };
			size_t at = size * pattern / 255;

			feed_quiet(dialects[i], max_request, data, size, at, &q);
			free(q.s);
			q = (struct record){ 0 };
			feed_quiet(dialects[i], max_request, data, size, size, &q);
			/* Quiet only at the end: the whole parse, then at most one
			 * message more (the tail tag of whole is not in q). */
			if (whole.len > 1 + sizeof(size_t)) {
				CHECK(q.len >= whole.len - 1 - sizeof(size_t));
				CHECK(memcmp(q.s, whole.s, whole.len - 1 - sizeof(size_t)) == 0);
			}
			free(q.s);
		}
		free(whole.s);
		free(chunked.s);
	}
	return 0;
}

/* proto.c - the wire protocol: an incremental line parser that turns a byte
 * stream into complete messages, and the writers of every frame.
 *
 * Each message kind is a row of a table (its head key and its fields), so
 * the parser has no per-command code. Each byte is examined once: the parser
 * remembers how far it scanned and where each field's value lies, as offsets
 * into the caller's buffer. Pure code: no I/O, no globals written. */
#include "proto.h"
#include "msg.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct proto_def {
	enum proto_kind kind;
	int bare;          /* head written "HELO text", not "KEY: value" */
	int multiline;     /* the last field runs to the blank line */
	int nfields;
	const char *keys[PROTO_MAX_FIELDS]; /* keys[0] is the head */
	unsigned optional; /* bit i: field i may be missing (read as "") */
};

/* A message ends at its last field (the blank line after it when
 * multiline) once every field that is not optional has arrived. CLIENT_IP
 * and PORT are never used, so lab-era clients may leave them out (SPEC
 * §2.4): those requests end at CLIENT_NAME. */
#define OPT(i) (1u << (i))

#define SAME_MEMBER_FIELDS(k)                                                    \
	_Static_assert(PROTO_F_##k##_REF == PROTO_F_MEMBER_REF &&                \
			       PROTO_F_##k##_ID == PROTO_F_MEMBER_ID &&          \
			       PROTO_F_##k##_NAME == PROTO_F_MEMBER_NAME,        \
		       #k " names its membership where every such request does")
SAME_MEMBER_FIELDS(LEAVE);
SAME_MEMBER_FIELDS(CHAT);
SAME_MEMBER_FIELDS(ATTACH);
SAME_MEMBER_FIELDS(HIST);
SAME_MEMBER_FIELDS(TOPIC);
SAME_MEMBER_FIELDS(HISTA);

static const struct proto_def request_defs[] = {
	{ PROTO_HELO, 1, 0, 1, { "HELO" }, 0 },
	{ PROTO_KILL_SERVICE, 1, 0, 1, { "KILL_SERVICE" }, 0 },
	{ PROTO_JOIN, 0, 0, 4, { "JOIN_CHATROOM", "CLIENT_IP", "PORT", "CLIENT_NAME" },
	  OPT(PROTO_F_JOIN_IP) | OPT(PROTO_F_JOIN_PORT) },
	{ PROTO_LEAVE, 0, 0, 3, { "LEAVE_CHATROOM", "JOIN_ID", "CLIENT_NAME" }, 0 },
	{ PROTO_DISCONNECT, 0, 0, 3, { "DISCONNECT", "PORT", "CLIENT_NAME" }, OPT(PROTO_F_DISC_PORT) },
	{ PROTO_CHAT, 0, 1, 4, { "CHAT", "JOIN_ID", "CLIENT_NAME", "MESSAGE" }, 0 },
	{ PROTO_ATTACH, 0, 0, 3, { "ATTACH_CHATROOM", "JOIN_ID", "CLIENT_NAME" }, 0 },
	{ PROTO_WELCOME, 0, 0, 1, { "WELCOME" }, 0 },
	{ PROTO_LIST_ROOMS, 0, 0, 1, { "LIST_ROOMS" }, 0 },
	{ PROTO_LIST_MEMBERS, 0, 0, 1, { "LIST_MEMBERS" }, 0 },
	{ PROTO_PRIVATE, 0, 1, 3, { "PRIVATE_MESSAGE", "CLIENT_NAME", "MESSAGE" }, 0 },
	{ PROTO_HISTORY, 0, 0, 3, { "HISTORY", "JOIN_ID", "CLIENT_NAME" }, 0 },
	{ PROTO_SET_TOPIC, 0, 0, 4, { "SET_TOPIC", "JOIN_ID", "CLIENT_NAME", "TOPIC" }, 0 },
	{ PROTO_HISTORY_AFTER, 0, 0, 4, { "HISTORY_AFTER", "JOIN_ID", "CLIENT_NAME", "SEQ" }, 0 },
};

static const struct proto_def reply_defs[] = {
	{ PROTO_R_HELO, 1, 0, 4, { "HELO", "IP", "Port", "StudentID" }, 0 },
	{ PROTO_R_JOINED, 0, 0, 5, { "JOINED_CHATROOM", "SERVER_IP", "PORT", "ROOM_REF", "JOIN_ID" }, 0 },
	{ PROTO_R_LEFT, 0, 0, 2, { "LEFT_CHATROOM", "JOIN_ID" }, 0 },
	{ PROTO_R_CHAT, 0, 1, 3, { "CHAT", "CLIENT_NAME", "MESSAGE" }, 0 },
	{ PROTO_R_ERROR, 0, 0, 2, { "ERROR_CODE", "ERROR_DESCRIPTION" }, 0 },
	{ PROTO_R_ATTACHED, 0, 0, 2, { "ATTACHED_CHATROOM", "JOIN_ID" }, 0 },
	{ PROTO_R_WELCOME, 0, 0, 4, { "WELCOME", "VERSION", "LIMITS", "TEXT" }, 0 },
	{ PROTO_R_ROOMS, 0, 0, 2, { "ROOMS", "TOTAL" }, 0 },
	{ PROTO_R_ROOM, 0, 0, 5, { "ROOM", "ROOM_REF", "PORT", "MEMBERS", "TOPIC" }, 0 },
	{ PROTO_R_MEMBERS, 0, 0, 2, { "MEMBERS", "COUNT" }, 0 },
	{ PROTO_R_MEMBER, 0, 0, 1, { "MEMBER" }, 0 },
	{ PROTO_R_PRIVATE_SENT, 0, 0, 2, { "PRIVATE_SENT", "COUNT" }, 0 },
	{ PROTO_R_PRIVATE_FROM, 0, 1, 2, { "PRIVATE_FROM", "MESSAGE" }, 0 },
	{ PROTO_R_HISTORY, 0, 0, 2, { "HISTORY", "COUNT" }, 0 },
	{ PROTO_R_ENTRY, 0, 1, 3, { "ENTRY", "CLIENT_NAME", "MESSAGE" }, 0 },
	{ PROTO_R_TOPIC_SET, 0, 0, 2, { "TOPIC_SET", "TOPIC" }, 0 },
	{ PROTO_R_SEQ, 0, 0, 1, { "SEQ" }, 0 },
	{ PROTO_R_HISTORY_AFTER, 0, 0, 4, { "HISTORY_AFTER", "FIRST", "LAST", "COUNT" }, 0 },
	{ PROTO_R_GAP, 0, 0, 3, { "GAP", "FIRST", "LAST" }, 0 },
};

#define NDEFS(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *const err_texts[] = {
	[PROTO_OK] = "ok",
	[PROTO_E_MALFORMED] = "malformed request",
	[PROTO_E_NO_ROOM] = "no such room",
	[PROTO_E_NOT_MEMBER] = "not a member",
	[PROTO_E_BAD_NAME] = "invalid room or client name",
	[PROTO_E_NAME_IN_USE] = "name already in use in that room",
	[PROTO_E_ROOM_FULL] = "room full",
	[PROTO_E_SERVER_FULL] = "server full",
	[PROTO_E_TOO_LARGE] = "request or message too large",
	[PROTO_E_RATE] = "rate limited",
	[PROTO_E_FORBIDDEN] = "forbidden",
	[PROTO_E_SERVER] = "server error",
};

const char *proto_err_text(enum proto_err err)
{
	if ((unsigned)err >= sizeof(err_texts) / sizeof(err_texts[0]))
		return "unknown error";
	return err_texts[err];
}

/* ---- parser ------------------------------------------------------------ */

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

static void defs_of(enum proto_dialect d, const struct proto_def **defs, int *n)
{
	if (d == PROTO_REQUESTS) {
		*defs = request_defs;
		*n = NDEFS(request_defs);
	} else {
		*defs = reply_defs;
		*n = NDEFS(reply_defs);
	}
}

const char *proto_kind_key(enum proto_kind kind)
{
	const struct proto_def *defs;
	int n;

	defs_of(kind < PROTO_R_HELO ? PROTO_REQUESTS : PROTO_REPLIES, &defs, &n);
	for (int i = 0; i < n; i++)
		if (defs[i].kind == kind)
			return defs[i].keys[0];
	return "?";
}

void proto_parser_init(struct proto_parser *p, enum proto_dialect dialect, size_t max_request)
{
	memset(p, 0, sizeof(*p));
	p->dialect = dialect;
	p->max_request = max_request;
	p->kind_index = -1;
}

static void reset_message(struct proto_parser *p)
{
	p->kind_index = -1;
	p->seen = 0;
}

/* A line split into key and value, as offsets into the buffer. */
struct line {
	size_t start, end;       /* content, without the line ending */
	size_t key_off, key_end; /* trimmed key */
	size_t val_off, val_end; /* trimmed value */
	int has_colon;
	int blank;
};

static void split_line(const char *buf, size_t start, size_t end, struct line *ln)
{
	const char *colon;
	size_t s = start, e = end;

	ln->start = start;
	ln->end = end;
	while (s < e && is_space(buf[s]))
		s++;
	while (e > s && is_space(buf[e - 1]))
		e--;
	ln->blank = s == e;
	colon = memchr(buf + s, ':', e - s);
	ln->has_colon = colon != NULL;
	ln->key_off = s;
	ln->key_end = colon ? (size_t)(colon - buf) : e;
	while (ln->key_end > s && is_space(buf[ln->key_end - 1]))
		ln->key_end--;
	ln->val_off = colon ? (size_t)(colon - buf) + 1 : e;
	while (ln->val_off < e && is_space(buf[ln->val_off]))
		ln->val_off++;
	ln->val_end = e;
}

static int key_is(const char *buf, size_t off, size_t end, const char *key)
{
	size_t n = strlen(key);
	return end - off == n && memcmp(buf + off, key, n) == 0;
}

/* A bare head ("HELO text", "KILL_SERVICE") is its word followed by the end
 * of the line, white space or a colon; the value is the rest. */
static int match_bare(const char *buf, struct line *ln, const char *head)
{
	size_t n = strlen(head), s = ln->key_off, e = ln->val_end;

	if (e - s < n || memcmp(buf + s, head, n) != 0)
		return 0;
	if (e - s > n && !is_space(buf[s + n]) && buf[s + n] != ':')
		return 0;
	s += n;
	if (s < e && buf[s] == ':')
		s++;
	while (s < e && is_space(buf[s]))
		s++;
	ln->val_off = s;
	return 1;
}

/* Which table row starts with this line; -1 when none. */
static int find_head(const struct proto_parser *p, const char *buf, struct line *ln)
{
	const struct proto_def *defs;
	int n;

	defs_of(p->dialect, &defs, &n);
	for (int i = 0; i < n; i++) {
		if (defs[i].bare ? match_bare(buf, ln, defs[i].keys[0])
				 : ln->has_colon && key_is(buf, ln->key_off, ln->key_end, defs[i].keys[0]))
			return i;
	}
	return -1;
}

static const struct proto_def *current_def(const struct proto_parser *p)
{
	const struct proto_def *defs;
	int n;

	defs_of(p->dialect, &defs, &n);
	return &defs[p->kind_index];
}

/* NUL-terminate every value in place and fill *out. A multi-line value loses
 * the '\r' of its inner CRLF line endings. */
static void finish_message(struct proto_parser *p, char *buf, struct proto_msg *out)
{
	const struct proto_def *def = current_def(p);

	memset(out, 0, sizeof(*out));
	out->kind = def->kind;
	for (int i = 0; i < def->nfields; i++) {
		size_t r = p->val_off[i], w = r, e = p->val_end[i];
		if (!(p->seen & (1u << i))) {
			/* An optional field left out: empty, and like every value
			 * inside the buffer (the NUL after the head's value). */
			out->field[i] = out->field[0] + out->len[0];
			continue;
		}
		/* Most values hold no '\r': nothing to move (a CHAT's text was
		 * copied a byte at a time, for every message). */
		const char *cr = memchr(buf + r, '\r', e - r);
		w = r = cr ? (size_t)(cr - buf) : e;
		for (; r < e; r++) {
			if (buf[r] == '\r' && r + 1 < e && buf[r + 1] == '\n')
				continue;
			buf[w++] = buf[r];
		}
		buf[w] = '\0';
		out->field[i] = buf + p->val_off[i];
		out->len[i] = w - p->val_off[i];
	}
	/* Optional fields may still follow the line that ended the message
	 * (CLIENT_NAME before PORT): the next lines may absorb them. */
	p->trailer = def->optional & ~p->seen;
	p->trailer_index = p->kind_index;
	reset_message(p);
}

/* After a message that ended without some optional fields: is this line
 * one of them, arriving late? Then it belongs to that message and is
 * dropped. Any other line ends the chance. */
static int absorb_trailer(struct proto_parser *p, const char *buf, const struct line *ln)
{
	const struct proto_def *defs;
	int n;

	defs_of(p->dialect, &defs, &n);
	for (int i = 1; ln->has_colon && i < defs[p->trailer_index].nfields; i++) {
		if ((p->trailer & (1u << i)) &&
		    key_is(buf, ln->key_off, ln->key_end, defs[p->trailer_index].keys[i])) {
			p->trailer &= ~(1u << i);
			return 1;
		}
	}
	p->trailer = 0;
	return 0;
}

/* Offsets are relative to the buffer the caller passes; once it drops n
 * bytes from the front, they move down by n. */
static void rebase(struct proto_parser *p, size_t n)
{
	p->scan -= n;
	p->last_line_end -= n;
	if (p->kind_index >= 0)
		p->msg_start -= n;
	for (int i = 0; i < PROTO_MAX_FIELDS; i++) {
		if (p->seen & (1u << i)) {
			p->val_off[i] -= n;
			p->val_end[i] -= n;
		}
	}
}

/* Start a message with its head line. Returns 1 when the message is already
 * complete (a one-field kind). */
static int begin_message(struct proto_parser *p, int idx, const struct line *ln)
{
	p->kind_index = idx;
	p->msg_start = ln->start;
	p->seen = 1u;
	p->val_off[0] = ln->val_off;
	p->val_end[0] = ln->val_end;
	p->skipping = 0;
	p->trailer = 0;
	return current_def(p)->nfields == 1;
}

/* Have all the fields that end a (not multiline) message arrived? */
static int message_complete(const struct proto_parser *p, const struct proto_def *def)
{
	return (p->seen | def->optional) == (1u << def->nfields) - 1;
}

enum line_result { LINE_MORE, LINE_DONE, LINE_ERROR, LINE_AGAIN };

/* Add a line to the message being parsed. LINE_AGAIN: the line is a new
 * message's head while this one is incomplete (an error, and the line is
 * examined again as a head). */
static enum line_result message_line(struct proto_parser *p, const char *buf, struct line *ln)
{
	const struct proto_def *def = current_def(p);
	unsigned all = (1u << def->nfields) - 1;
	int last = def->nfields - 1;

	if (def->multiline && (p->seen & (1u << last))) {
		if (ln->blank)
			return LINE_DONE;
		/* "MESSAGE:" alone on its line: the text starts on this one. */
		if (p->val_end[last] == p->val_off[last])
			p->val_off[last] = ln->key_off;
		p->val_end[last] = ln->end; /* keeps the line's own spacing */
		while (p->val_end[last] > p->val_off[last] && is_space(buf[p->val_end[last] - 1]))
			p->val_end[last]--;
		return LINE_MORE;
	}
	if (ln->blank)
		return LINE_ERROR; /* a field is missing */
	for (int i = 1; i < def->nfields; i++) {
		if (!ln->has_colon || !key_is(buf, ln->key_off, ln->key_end, def->keys[i]))
			continue;
		if (p->seen & (1u << i))
			return LINE_ERROR; /* repeated field */
		/* The multi-line field must come last: it runs to the blank line. */
		if (def->multiline && i == last && (p->seen | def->optional | (1u << i)) != all)
			return LINE_ERROR;
		p->seen |= 1u << i;
		p->val_off[i] = ln->val_off;
		p->val_end[i] = ln->val_end;
		if (!def->multiline && (p->seen & (1u << last)) && message_complete(p, def))
			return LINE_DONE;
		return LINE_MORE;
	}
	if (find_head(p, buf, ln) >= 0)
		return LINE_AGAIN;
	/* An unknown or misspelled field ("CLIENT IP: x") in a request: ignored,
	 * as lab-era servers did (SPEC §2.4). The request still ends at its last
	 * field, and max_request bounds how many of these it may carry. Replies
	 * come from roomd: there it is an error. */
	if (!ln->has_colon || p->dialect != PROTO_REQUESTS)
		return LINE_ERROR;
	p->ignored++;
	return LINE_MORE;
}

/* White space a blank line may carry without counting against the limit
 * (it ends a message, it is not part of one): a "\r", or a few spaces. */
#define PROTO_BLANK_SLACK 64

/* Is the incomplete line at the end of buf already past the limit? A line of
 * only white space so far may be the blank line ending the message (its
 * '\r' arrived first), so up to PROTO_BLANK_SLACK of it does not count. */
static int over_limit(const struct proto_parser *p, const char *buf, size_t len)
{
	size_t start = p->kind_index >= 0 ? p->msg_start : p->last_line_end;
	size_t s = p->last_line_end;

	if (len - start <= p->max_request)
		return 0;
	while (s < len && is_space(buf[s]))
		s++;
	return s < len || len - start > p->max_request + PROTO_BLANK_SLACK;
}

enum proto_status proto_parse(struct proto_parser *p, char *buf, size_t len,
			      struct proto_msg *out, size_t *consumed,
			      enum proto_err *err, int *fatal)
{
	enum proto_status st = PROTO_NEED_MORE;
	size_t drop = 0;

	*fatal = 0;
	*err = PROTO_OK;
	while (p->scan < len) {
		char *nl = memchr(buf + p->scan, '\n', len - p->scan);
		size_t start = p->last_line_end, end;
		struct line ln;

		if (!nl) {
			if (over_limit(p, buf, len))
				goto too_large;
			p->scan = len;
			break;
		}
		end = (size_t)(nl - buf);
		p->scan = end + 1;
		p->last_line_end = p->scan;
		split_line(buf, start, end, &ln);
		/* The limit counts a message's wire bytes, line endings included,
		 * but not the blank line that ends it. */
		if (!ln.blank && end + 1 - (p->kind_index >= 0 ? p->msg_start : start) > p->max_request)
			goto too_large;
		/* The same bound over_limit() applies while the line is incomplete,
		 * so the verdict does not depend on how the bytes were split. */
		if (ln.blank && end - (p->kind_index >= 0 ? p->msg_start : start) >
				    p->max_request + PROTO_BLANK_SLACK)
			goto too_large;
		if (memchr(buf + start, '\0', end - start)) {
			if (p->kind_index < 0 && p->skipping) {
				drop = p->scan;
				continue;
			}
			/* A NUL would silently truncate a value later. */
			*err = PROTO_E_MALFORMED;
			st = PROTO_ERROR;
			reset_message(p);
			p->skipping = 1;
			drop = p->scan;
			break;
		}

		if (p->kind_index >= 0) {
			enum line_result r = message_line(p, buf, &ln);
			if (r == LINE_MORE)
				continue;
			if (r == LINE_DONE) {
				finish_message(p, buf, out);
				st = PROTO_MESSAGE;
				drop = p->scan;
				break;
			}
			*err = PROTO_E_MALFORMED;
			st = PROTO_ERROR;
			reset_message(p);
			if (r == LINE_AGAIN) {
				/* Examine this head again on the next call. */
				p->scan = start;
				p->last_line_end = start;
				drop = start;
			} else {
				p->skipping = !ln.blank;
				drop = p->scan;
			}
			break;
		}

		if (p->trailer && absorb_trailer(p, buf, &ln)) {
			drop = p->scan;
			continue;
		}
		if (ln.blank) {
			p->skipping = 0;
			drop = p->scan;
			continue;
		}
		int idx = find_head(p, buf, &ln);
		if (idx < 0) {
			drop = p->scan;
			if (p->skipping)
				continue;
			*err = PROTO_E_MALFORMED;
			st = PROTO_ERROR;
			p->skipping = 1;
			break;
		}
		if (begin_message(p, idx, &ln)) {
			finish_message(p, buf, out);
			st = PROTO_MESSAGE;
			drop = p->scan;
			break;
		}
	}
	if (st == PROTO_NEED_MORE)
		drop = p->kind_index < 0 ? p->last_line_end : p->msg_start;
	rebase(p, drop);
	*consumed = drop;
	return st;

too_large:
	*err = PROTO_E_TOO_LARGE;
	*fatal = 1;
	reset_message(p);
	p->trailer = 0;
	p->scan = 0;
	p->msg_start = 0;
	p->last_line_end = 0;
	*consumed = len;
	return PROTO_ERROR;
}

/* The parser state as if the stream had begun at the start of buf. */
static void restart_at_zero(struct proto_parser *p)
{
	p->scan = 0;
	p->last_line_end = 0;
	p->msg_start = 0;
	p->skipping = 0;
}

enum proto_status proto_finish(struct proto_parser *p, char *buf, size_t len,
			       struct proto_msg *out, size_t *consumed)
{
	const struct proto_parser saved = *p;
	size_t start = p->last_line_end;
	struct line ln;
	int idx;

	*consumed = 0;
	/* Only what proto_parse() has seen, and no NUL (that is an error the
	 * line's terminator will bring). */
	if (p->scan != len || start > len || memchr(buf + start, '\0', len - start))
		return PROTO_NEED_MORE;
	split_line(buf, start, len, &ln);
	/* "CLIENT_NAME:" and nothing yet: the client is inside its last line. */
	if (!ln.blank && ln.has_colon && ln.val_off == ln.val_end)
		return PROTO_NEED_MORE;
	if (p->kind_index >= 0) {
		const struct proto_def *def = current_def(p);
		int last_seen = (p->seen >> (def->nfields - 1)) & 1u;
		int done;

		if (ln.blank) {
			done = def->multiline && last_seen; /* a MESSAGE without its blank line */
		} else {
			enum line_result r = message_line(p, buf, &ln);
			done = r == LINE_DONE ||
			       (r == LINE_MORE && def->multiline &&
				((p->seen >> (def->nfields - 1)) & 1u));
		}
		if (!done) {
			*p = saved;
			return PROTO_NEED_MORE;
		}
	} else if (ln.blank) {
		return PROTO_NEED_MORE;
	} else if (p->trailer && absorb_trailer(p, buf, &ln)) {
		restart_at_zero(p);
		*consumed = len;
		return PROTO_NEED_MORE;
	} else if ((idx = find_head(p, buf, &ln)) < 0 || !begin_message(p, idx, &ln)) {
		*p = saved; /* a head still waiting for its fields, or not a head */
		return PROTO_NEED_MORE;
	}
	finish_message(p, buf, out);
	restart_at_zero(p);
	*consumed = len;
	return PROTO_MESSAGE;
}

/* One "KEY=n" word of a LIST_ROOMS value: 1 when it is key's (*out set),
 * 0 when another key's, -1 when malformed. */
static int list_word(const char *w, size_t len, const char *key, long min, long max, long *out)
{
	size_t k = strlen(key);
	char num[24];

	if (len <= k + 1 || strncasecmp(w, key, k) != 0 || w[k] != '=')
		return 0;
	if (len - k - 1 >= sizeof(num))
		return -1;
	memcpy(num, w + k + 1, len - k - 1);
	num[len - k - 1] = '\0';
	return proto_parse_int(num, min, max, out) == 0 ? 1 : -1;
}

int proto_parse_list_rooms(const char *value, struct proto_list_rooms *out)
{
	const char *p = value;
	long v;

	*out = (struct proto_list_rooms){ 0, PROTO_LIST_ROOMS_MAX, 0 };
	/* The classic value ("LIST_ROOMS: 0", any lone integer): the first page. */
	if (*p == '\0' || proto_parse_int(p, LONG_MIN, LONG_MAX, &v) == 0)
		return 0;
	while (*p) {
		size_t len = strcspn(p, " \t");
		int r;

		if ((r = list_word(p, len, "OFFSET", 0, LONG_MAX, &out->offset)) == 0 &&
		    (r = list_word(p, len, "LIMIT", 0, LONG_MAX, &out->limit)) == 0 &&
		    (r = list_word(p, len, "DORMANT", 0, 1, &v)) == 1)
			out->dormant = (int)v;
		if (r <= 0)
			return -1;
		p += len;
		p += strspn(p, " \t");
	}
	if (out->limit > PROTO_LIST_ROOMS_MAX)
		out->limit = PROTO_LIST_ROOMS_MAX;
	return 0;
}

/* Is line (len bytes, no newline) a field line of the protocol: a key of
 * any request or reply, then a colon (or, for the bare heads, a space or
 * nothing)? Leading white space and case are ignored: lab-era clients trim
 * and compare loosely. */
static int looks_like_field(const char *line, size_t len)
{
	static const struct proto_def *const tables[] = { request_defs, reply_defs };
	static const int ntables[] = { NDEFS(request_defs), NDEFS(reply_defs) };

	while (len > 0 && (*line == ' ' || *line == '\t' || *line == '\r')) {
		line++;
		len--;
	}
	for (int t = 0; t < 2; t++) {
		for (int d = 0; d < ntables[t]; d++) {
			const struct proto_def *def = &tables[t][d];
			for (int f = 0; f < def->nfields; f++) {
				size_t k = strlen(def->keys[f]);
				char after;
				if (len < k || strncasecmp(line, def->keys[f], k) != 0)
					continue;
				after = len > k ? line[k] : '\0';
				if (after == ':' || (def->bare && f == 0 && (after == ' ' || after == '\0')))
					return 1;
			}
		}
	}
	return 0;
}

int proto_text_forges_field(const char *text, size_t len)
{
	const char *end = text + len, *nl;

	/* The first line follows "MESSAGE: " in every frame: it cannot. */
	while ((nl = memchr(text, '\n', (size_t)(end - text))) != NULL) {
		const char *line = nl + 1, *next = memchr(line, '\n', (size_t)(end - line));
		if (looks_like_field(line, (size_t)((next ? next : end) - line)))
			return 1;
		text = line;
	}
	return 0;
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* By hand, not strtol (which would also accept leading white space and
 * '+', which the wire may not, and costs ~200 instructions: a room parses
 * a ROOM_REF and a JOIN_ID for every CHAT). */
int proto_parse_int(const char *s, long min, long max, long *out)
{
	const char *d;
	unsigned long u = 0, limit;
	long v;
	int neg;

	if (!s)
		return -1;
	neg = *s == '-';
	d = s + neg;
	if (!is_digit(*d))
		return -1;
	/* the magnitude's bound: LONG_MIN's is one more than LONG_MAX's */
	limit = neg ? (unsigned long)LONG_MAX + 1 : (unsigned long)LONG_MAX;
	for (; is_digit(*d); d++) {
		unsigned long digit = (unsigned long)(*d - '0');
		if (u > (limit - digit) / 10)
			return -1; /* out of range, as strtol's ERANGE */
		u = u * 10 + digit;
	}
	if (*d)
		return -1;
	v = !neg ? (long)u : u == (unsigned long)LONG_MAX + 1 ? LONG_MIN : -(long)u;
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* ---- writers ----------------------------------------------------------- */

static void assert_one_line(const char *s)
{
	(void)s;
	assert(!strchr(s, '\n'));
}

struct msg *proto_write_helo(const char *text, const char *ip, unsigned port, const char *server_id)
{
	assert_one_line(text);
	return msg_printf("HELO %s\nIP:%s\nPort:%u\nStudentID:%s\n", text, ip, port, server_id);
}

struct msg *proto_write_joined(const char *room, const char *ip, unsigned port, long ref, long join_id)
{
	assert_one_line(room);
	return msg_printf("JOINED_CHATROOM: %s\nSERVER_IP: %s\nPORT: %u\nROOM_REF: %ld\nJOIN_ID: %ld\n",
			  room, ip, port, ref, join_id);
}

struct msg *proto_write_left(long ref, long join_id)
{
	return msg_printf("LEFT_CHATROOM: %ld\nJOIN_ID: %ld\n", ref, join_id);
}

/* CHAT and ENTRY frames share one shape, "<HEAD>: <value>\nCLIENT_NAME:
 * <name>\nMESSAGE: <text>\n\n": these lay it out and write it, so the
 * offsets of name and text are known without searching the frame. */
static const char named_name_key[] = "\nCLIENT_NAME: ", named_text_key[] = "\nMESSAGE: ";
static const char chat_head[] = "CHAT", entry_head[] = "ENTRY";

_Static_assert(sizeof(entry_head) - 1 + 2 + PROTO_TIME_MAX + sizeof(named_name_key) - 1 +
		       sizeof(named_text_key) - 1 + 2 <= PROTO_CHAT_OVERHEAD,
	       "PROTO_CHAT_OVERHEAD bounds an ENTRY's own bytes (a CHAT's are fewer)");

/* The frame's length, and where its name and text lie. */
static size_t named_layout(size_t head_len, size_t value_len, size_t name_len, size_t text_len,
			   struct proto_chat_layout *where)
{
	where->name_off = head_len + 2 + value_len + sizeof(named_name_key) - 1;
	where->name_len = name_len;
	where->text_off = where->name_off + name_len + sizeof(named_text_key) - 1;
	where->text_len = text_len;
	return where->text_off + text_len + 2;
}

/* Write the frame laid out in *where into dst (room for it and a NUL). */
static void named_write(char *dst, const char *head, size_t head_len, const char *value,
			size_t value_len, const char *name, const char *text,
			const struct proto_chat_layout *where)
{
	char *p = dst;

	assert(!memchr(name, '\n', where->name_len));
	assert(!memmem(text, where->text_len, "\n\n", 2));
	memcpy(p, head, head_len);
	p += head_len;
	*p++ = ':';
	*p++ = ' ';
	memcpy(p, value, value_len);
	memcpy(p + value_len, named_name_key, sizeof(named_name_key) - 1);
	memcpy(dst + where->name_off, name, where->name_len);
	p = dst + where->name_off + where->name_len;
	memcpy(p, named_text_key, sizeof(named_text_key) - 1);
	memcpy(dst + where->text_off, text, where->text_len);
	p = dst + where->text_off + where->text_len;
	memcpy(p, "\n\n", 3); /* with the NUL */
}

/* Format a named-text frame into dst (cap bytes): its length, or the
 * length it needs when it does not fit (nothing written). */
static size_t named_fmt(char *dst, size_t cap, const char *head, const char *value, size_t value_len,
			const char *name, size_t name_len, const char *text, size_t text_len,
			struct proto_chat_layout *where)
{
	struct proto_chat_layout at;
	size_t head_len = strlen(head);
	size_t len = named_layout(head_len, value_len, name_len, text_len, &at);

	if (len < cap)
		named_write(dst, head, head_len, value, value_len, name, text, &at);
	if (where)
		*where = at;
	return len;
}

/* v in decimal, as "%ld" writes it, into num (not NUL-terminated): its
 * length. By hand: snprintf costs ~600 instructions, and a CHAT's ref and
 * a room's HISTORY head are formatted for every message relayed. */
static size_t fmt_number(char num[24], long v)
{
	char rev[24];
	/* the magnitude as unsigned: -LONG_MIN does not fit a long */
	unsigned long u = v < 0 ? 0UL - (unsigned long)v : (unsigned long)v;
	size_t n = 0, len = 0;

	do {
		rev[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u > 0);
	if (v < 0)
		num[len++] = '-';
	while (n > 0)
		num[len++] = rev[--n];
	return len;
}

/* Appends what fmt_number() writes of v at *len in out. */
static void append_number(char *out, size_t *len, long v)
{
	*len += fmt_number(out + *len, v);
}

static void append_text(char *out, size_t *len, const char *text, size_t n)
{
	memcpy(out + *len, text, n);
	*len += n;
}

/* Deliver what snprintf would: len bytes of text, cut to cap - 1 and
 * NUL-terminated when cap > 0; the full length either way. */
static size_t put_text(char *dst, size_t cap, const char *text, size_t len)
{
	if (cap > 0) {
		size_t n = len < cap ? len : cap - 1;
		memcpy(dst, text, n);
		dst[n] = '\0';
	}
	return len;
}

size_t proto_fmt_chat(char *dst, size_t cap, long ref, const char *name, const char *text,
		      size_t text_len, struct proto_chat_layout *where)
{
	char num[24];
	size_t num_len = fmt_number(num, ref);

	return named_fmt(dst, cap, chat_head, num, num_len, name, strlen(name), text, text_len, where);
}

struct msg *proto_write_chat_at(long ref, const char *name, const char *text, size_t text_len,
				struct proto_chat_layout *where)
{
	struct proto_chat_layout at;
	char num[24];
	size_t num_len = fmt_number(num, ref), name_len = strlen(name);
	struct msg *m = msg_new(named_layout(sizeof(chat_head) - 1, num_len, name_len, text_len, &at));

	if (m)
		named_write(m->data, chat_head, sizeof(chat_head) - 1, num, num_len, name, text, &at);
	if (where)
		*where = at;
	return m;
}

struct msg *proto_write_chat(long ref, const char *name, const char *text)
{
	return proto_write_chat_at(ref, name, text, strlen(text), NULL);
}

struct msg *proto_write_error(enum proto_err err, const char *detail)
{
	const char *text = detail ? detail : proto_err_text(err);

	assert_one_line(text);
	return msg_printf("ERROR_CODE: %d\nERROR_DESCRIPTION: %s\n", (int)err, text);
}

struct msg *proto_write_attached(long ref, long join_id)
{
	return msg_printf("ATTACHED_CHATROOM: %ld\nJOIN_ID: %ld\n", ref, join_id);
}

struct msg *proto_write_welcome(const char *server_id, const char *version, const char *limits,
				const char *text)
{
	assert_one_line(text);
	return msg_printf("WELCOME: %s\nVERSION: %s\nLIMITS: %s\nTEXT: %s\n", server_id, version,
			  limits, text);
}

struct msg *proto_write_rooms_head(long count, long total)
{
	return msg_printf("ROOMS: %ld\nTOTAL: %ld\n", count, total);
}

struct msg *proto_write_room_entry(const char *name, long ref, unsigned port, long members,
				   const char *topic)
{
	assert_one_line(topic);
	return msg_printf("ROOM: %s\nROOM_REF: %ld\nPORT: %u\nMEMBERS: %ld\nTOPIC: %s\n", name, ref,
			  port, members, topic);
}

struct msg *proto_write_members_head(long ref, long count)
{
	return msg_printf("MEMBERS: %ld\nCOUNT: %ld\n", ref, count);
}

struct msg *proto_write_member_entry(const char *name)
{
	return msg_printf("MEMBER: %s\n", name);
}

struct msg *proto_write_private_sent(const char *to, long count)
{
	return msg_printf("PRIVATE_SENT: %s\nCOUNT: %ld\n", to, count);
}

struct msg *proto_write_private_from(const char *from, const char *text)
{
	assert(!strstr(text, "\n\n"));
	return msg_printf("PRIVATE_FROM: %s\nMESSAGE: %s\n\n", from, text);
}

size_t proto_fmt_history_head(char *dst, size_t cap, long ref, long count)
{
	char out[sizeof("HISTORY: \nCOUNT: \n") + 2 * 24];
	size_t len = 0;

	/* The room sizes a HISTORY reply with it for every message kept. */
	append_text(out, &len, "HISTORY: ", 9);
	append_number(out, &len, ref);
	append_text(out, &len, "\nCOUNT: ", 8);
	append_number(out, &len, count);
	append_text(out, &len, "\n", 1);
	return put_text(dst, cap, out, len);
}

struct msg *proto_write_history_head(long ref, long count)
{
	size_t len = proto_fmt_history_head(NULL, 0, ref, count);
	struct msg *m = msg_new(len);

	if (m)
		proto_fmt_history_head(m->data, len + 1, ref, count);
	return m;
}

size_t proto_fmt_history_entry(char *dst, size_t cap, const char *time, const char *name,
			       size_t name_len, const char *text, size_t text_len,
			       struct proto_chat_layout *where)
{
	return named_fmt(dst, cap, entry_head, time, strlen(time), name, name_len, text, text_len, where);
}

size_t proto_fmt_seq(char *dst, size_t cap, long seq)
{
	char out[sizeof("SEQ: \n") + 24];
	size_t len = 0;

	/* Once per message relayed while a member asked for numbers. */
	append_text(out, &len, "SEQ: ", 5);
	append_number(out, &len, seq);
	append_text(out, &len, "\n", 1);
	return put_text(dst, cap, out, len);
}

size_t proto_fmt_history_after_head(char *dst, size_t cap, long ref, long first, long last,
				    long count)
{
	int n = snprintf(dst, cap, "HISTORY_AFTER: %ld\nFIRST: %ld\nLAST: %ld\nCOUNT: %ld\n", ref,
			 first, last, count);

	return n < 0 ? 0 : (size_t)n;
}

struct msg *proto_write_history_after_head(long ref, long first, long last, long count)
{
	size_t len = proto_fmt_history_after_head(NULL, 0, ref, first, last, count);
	struct msg *m = msg_new(len);

	if (m)
		proto_fmt_history_after_head(m->data, len + 1, ref, first, last, count);
	return m;
}

static const char seq_head[] = "SEQ: ";

int proto_is_numbered(const char *data, size_t len)
{
	return len > sizeof(seq_head) - 1 && memcmp(data, seq_head, sizeof(seq_head) - 1) == 0;
}

/* The decimal number at *p (advanced past it), or -1. */
static long scan_number(const char **p, const char *end)
{
	long v = 0;

	if (*p == end || **p < '0' || **p > '9')
		return -1;
	for (; *p < end && **p >= '0' && **p <= '9'; (*p)++) {
		if (v > PROTO_SEQ_MAX / 10)
			return -1;
		v = v * 10 + (**p - '0');
	}
	return v;
}

size_t proto_numbered_next(const char *data, size_t len, long *ref, long *seq)
{
	static const char chat[] = "\nCHAT: ";
	const char *p = data + sizeof(seq_head) - 1, *end = data + len, *stop;

	if (!proto_is_numbered(data, len))
		return 0;
	*seq = scan_number(&p, end);
	if (*seq < 0 || (size_t)(end - p) < sizeof(chat) - 1 || memcmp(p, chat, sizeof(chat) - 1) != 0)
		return 0;
	p += sizeof(chat) - 1;
	*ref = scan_number(&p, end);
	/* A CHAT frame ends at its blank line (its text never holds one). */
	stop = *ref < 0 ? NULL : memmem(p, (size_t)(end - p), "\n\n", 2);
	return stop ? (size_t)(stop + 2 - data) : 0;
}

struct msg *proto_write_gap(long ref, long first, long last)
{
	return msg_printf("GAP: %ld\nFIRST: %ld\nLAST: %ld\n", ref, first, last);
}

struct msg *proto_write_topic_set(long ref, const char *topic)
{
	assert_one_line(topic);
	return msg_printf("TOPIC_SET: %ld\nTOPIC: %s\n", ref, topic);
}

struct msg *proto_write_welcome_req(void)
{
	return msg_printf("WELCOME: 0\n");
}

struct msg *proto_write_welcome_seq_req(void)
{
	return msg_printf("WELCOME: SEQ\n");
}

struct msg *proto_write_list_rooms_req(long offset, long limit, int dormant)
{
	if (offset == 0 && limit == PROTO_LIST_ROOMS_MAX && !dormant)
		return msg_printf("LIST_ROOMS: 0\n");
	return msg_printf("LIST_ROOMS: OFFSET=%ld LIMIT=%ld%s\n", offset, limit, dormant ? " DORMANT=1" : "");
}

struct msg *proto_write_list_members_req(long ref)
{
	return msg_printf("LIST_MEMBERS: %ld\n", ref);
}

struct msg *proto_write_private_req(const char *to, const char *from, const char *text)
{
	assert(!strstr(text, "\n\n"));
	return msg_printf("PRIVATE_MESSAGE: %s\nCLIENT_NAME: %s\nMESSAGE: %s\n\n", to, from, text);
}

struct msg *proto_write_history_req(long ref, long join_id, const char *name)
{
	return msg_printf("HISTORY: %ld\nJOIN_ID: %ld\nCLIENT_NAME: %s\n", ref, join_id, name);
}

struct msg *proto_write_history_after_req(long ref, long join_id, const char *name, long seq)
{
	return msg_printf("HISTORY_AFTER: %ld\nJOIN_ID: %ld\nCLIENT_NAME: %s\nSEQ: %ld\n", ref,
			  join_id, name, seq);
}

struct msg *proto_write_set_topic_req(long ref, long join_id, const char *name, const char *topic)
{
	assert_one_line(topic);
	return msg_printf("SET_TOPIC: %ld\nJOIN_ID: %ld\nCLIENT_NAME: %s\nTOPIC: %s\n", ref, join_id,
			  name, topic);
}

struct msg *proto_write_join_req(const char *room, const char *name)
{
	assert_one_line(room);
	assert_one_line(name);
	return msg_printf("JOIN_CHATROOM: %s\nCLIENT_IP: 0\nPORT: 0\nCLIENT_NAME: %s\n", room, name);
}

struct msg *proto_write_leave_req(long ref, long join_id, const char *name)
{
	assert_one_line(name);
	return msg_printf("LEAVE_CHATROOM: %ld\nJOIN_ID: %ld\nCLIENT_NAME: %s\n", ref, join_id, name);
}

struct msg *proto_write_disconnect_req(const char *name)
{
	assert_one_line(name);
	return msg_printf("DISCONNECT: 0\nPORT: 0\nCLIENT_NAME: %s\n", name);
}

struct msg *proto_write_chat_req(long ref, long join_id, const char *name, const char *text)
{
	assert_one_line(name);
	assert(!strstr(text, "\n\n"));
	return msg_printf("CHAT: %ld\nJOIN_ID: %ld\nCLIENT_NAME: %s\nMESSAGE: %s\n\n",
			  ref, join_id, name, text);
}

struct msg *proto_write_attach_req(long ref, long join_id, const char *name)
{
	assert_one_line(name);
	return msg_printf("ATTACH_CHATROOM: %ld\nJOIN_ID: %ld\nCLIENT_NAME: %s\n", ref, join_id, name);
}

struct msg *proto_write_helo_req(const char *text)
{
	assert_one_line(text);
	return msg_printf("HELO %s\n", text);
}

/* output.c - roomc's stdout: incoming chat, command results, local errors.
 *
 * Owns stdout, the decoration settings and the queue of events waiting for
 * the terminal's owner. Any thread calls in (the command thread, the control
 * reader, every room listener): an event is formatted into its own buffer
 * without the lock, then out_lock makes it one uninterrupted write followed
 * by a flush. With a terminal attached, only the owner (command thread)
 * writes: other threads queue their events and wake it. Bytes from the
 * network pass through put_clean(), which shows control characters, bidi
 * controls and invalid UTF-8 escaped (\x1b, \u202e), so a remote user cannot
 * send terminal escape sequences, forge whole lines, or reorder what the
 * terminal shows.
 *
 * Terminal sequences emitted here (only when output_init() asked for colour):
 * ESC[3Nm (N = 1..6: red, green, yellow, blue, magenta, cyan) before a
 * sender's name and ESC[0m after it; ESC[7m (reverse) before a text that
 * mentions us and ESC[0m after it. BEL (0x07) before a line that mentions
 * us, on a terminal even without colour. Erasing and redrawing the edited line
 * is term.c's (see the list at its top). */
#include "output.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OUTPUT_LOCAL_MAX 1024
/* Events queued for the terminal's owner. It drains them within a poll()
 * wake-up unless a command is blocked connecting (seconds at most); the cap
 * only stops a flood from growing memory meanwhile, and what it drops is
 * counted and reported. */
#define OUTPUT_QUEUE_MAX 4096

/* Written once by output_init() before other threads start: read-only after. */
static int deco_time, deco_colour;

struct event {
	struct event *next;
	size_t len;
	char data[];
};

/* Guards stdout, the terminal hooks and the queue: held for the whole of one
 * event (its lines and the flush), and while the owner drains the queue. */
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static int attached;                 /* a terminal editor owns the line */
static pthread_t owner;              /* the thread that attached it */
static struct output_terminal term;  /* its hooks */
static struct event *q_head, **q_tail = &q_head;
static size_t q_len;
static unsigned long q_dropped;      /* events lost at the cap or to ENOMEM */

/* ---- building an event -------------------------------------------------- */

/* A growing buffer; out of memory is remembered and reported on emit. */
struct sb {
	char *p;
	size_t len, cap;
	int oom;
};

static void sb_putn(struct sb *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 128;
		char *np;

		while (ncap < b->len + n + 1)
			ncap *= 2;
		np = realloc(b->p, ncap);
		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_puts(struct sb *b, const char *s) { sb_putn(b, s, strlen(s)); }
static void sb_putc(struct sb *b, char c) { sb_putn(b, &c, 1); }

static void sb_vprintf(struct sb *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void sb_vprintf(struct sb *b, const char *fmt, va_list ap)
{
	char tmp[OUTPUT_LOCAL_MAX];
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);

	/* Truncation is fine: these are one-line messages. */
	if (n > 0)
		sb_putn(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void sb_printf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sb *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sb_vprintf(b, fmt, ap);
	va_end(ap);
}

/* The length of the valid UTF-8 sequence at p (1..4), with its code point in
 * *cp, or 0 when p does not start one (a stray continuation byte, an
 * overlong form, a surrogate, past U+10FFFF, or cut short). p is
 * NUL-terminated, and NUL is never a continuation byte. */
static size_t utf8_decode(const unsigned char *p, uint32_t *cp)
{
	unsigned char lo = 0x80, hi = 0xbf; /* the range of the second byte */
	size_t n;

	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
		*cp = p[0] & 0x1fu;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		*cp = p[0] & 0x0fu;
		if (p[0] == 0xe0)
			lo = 0xa0; /* overlong below */
		else if (p[0] == 0xed)
			hi = 0x9f; /* surrogates above */
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		*cp = p[0] & 0x07u;
		if (p[0] == 0xf0)
			lo = 0x90; /* overlong below */
		else if (p[0] == 0xf4)
			hi = 0x8f; /* past U+10FFFF above */
	} else {
		return 0;
	}
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
		*cp = (*cp << 6) | (p[i] & 0x3fu);
	}
	return n;
}

/* Code points a terminal may obey rather than show: the C1 controls (0x9b
 * is CSI to some terminals), the bidi embeddings, overrides, isolates and
 * marks (they reorder the rest of the line), and the line and paragraph
 * separators. */
static int unsafe_code_point(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e || cp == 0x200f ||
	       cp == 0x2028 || cp == 0x2029 || (cp >= 0x202a && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069);
}

/* Append s as text that cannot drive the terminal: C0 controls but tab, DEL
 * and any byte not part of valid UTF-8 (raw 0x80..0xff included) as \xNN;
 * the unsafe code points above as \uNNNN; everything else as it came. A
 * newline is written as a newline plus `indent`, so continuation lines stay
 * visibly inside the event; with a NULL indent it is escaped (\x0a) too.
 * A backslash is not escaped: text that spells "\x1b" drives nothing. */
static void put_clean(struct sb *b, const char *s, const char *indent)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		uint32_t cp;
		size_t n = utf8_decode(p, &cp);

		if (*p == '\n' && indent) {
			sb_putc(b, '\n');
			sb_puts(b, indent);
		} else if (n == 0 || (n == 1 && ((cp < 0x20 && cp != '\t') || cp == 0x7f))) {
			sb_printf(b, "\\x%02x", *p);
			n = 1;
		} else if (unsafe_code_point(cp)) {
			sb_printf(b, "\\u%04x", (unsigned)cp);
		} else {
			sb_putn(b, (const char *)p, n);
		}
		p += n;
	}
}

/* "HH:MM " of now, on a terminal only. */
static void put_now(struct sb *b)
{
	char hm[16];
	time_t now = time(NULL);
	struct tm tm;

	if (!deco_time || !localtime_r(&now, &tm))
		return;
	strftime(hm, sizeof(hm), "%H:%M ", &tm);
	sb_puts(b, hm);
}

/* A room or client name, in double quotes when it holds a space (lab-era
 * names like "chatroom 1"): printed as it is typed in a command, so a line
 * always shows where a name ends. Names never hold a quote. */
static void put_label(struct sb *b, const char *name)
{
	int q = strchr(name, ' ') != NULL;

	if (q)
		sb_putc(b, '"');
	put_clean(b, name, NULL);
	if (q)
		sb_putc(b, '"');
}

const char *output_q(const char *name)
{
	static _Thread_local char ring[4][80];
	static _Thread_local unsigned next;
	char *out;

	if (!strchr(name, ' ') || strlen(name) + 3 > sizeof(ring[0]))
		return name;
	out = ring[next++ % 4];
	snprintf(out, sizeof(ring[0]), "\"%s\"", name);
	return out;
}

/* A sender's name, in its colour when colour is on: FNV-1a of the name picks
 * one of six, so a name keeps its colour across lines and sessions. */
static void put_name(struct sb *b, const char *name)
{
	uint32_t h = 2166136261u;

	if (!deco_colour) {
		put_label(b, name);
		return;
	}
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 16777619u;
	sb_printf(b, "\x1b[3%um", (unsigned)(h % 6) + 1);
	put_label(b, name);
	sb_puts(b, "\x1b[0m");
}

/* ---- writing an event --------------------------------------------------- */

static void write_locked(const char *p, size_t n)
{
	/* A failed write to stdout (closed pipe) loses output, nothing else:
	 * the session goes on and ends by its own rules. */
	if (n && fwrite(p, 1, n, stdout) != n)
		clearerr(stdout);
}

static void report_dropped_locked(void)
{
	char line[96];
	int n;

	if (!q_dropped)
		return;
	n = snprintf(line, sizeof(line), "roomc: %lu line(s) lost (out of memory or too many)\n",
		     q_dropped);
	write_locked(line, (size_t)n);
	q_dropped = 0;
}

static void drain_locked(void)
{
	while (q_head) {
		struct event *e = q_head;

		q_head = e->next;
		write_locked(e->data, e->len);
		free(e);
	}
	q_tail = &q_head;
	q_len = 0;
	report_dropped_locked();
}

static void enqueue_locked(const struct sb *b)
{
	struct event *e = q_len < OUTPUT_QUEUE_MAX ? malloc(sizeof(*e) + b->len) : NULL;

	if (!e) {
		q_dropped++;
		return;
	}
	e->next = NULL;
	e->len = b->len;
	memcpy(e->data, b->p, b->len);
	*q_tail = e;
	q_tail = &e->next;
	q_len++;
}

/* Finish the event in b (a newline is added) and write it, or queue it for
 * the terminal's owner. Frees b. */
static void emit(struct sb *b)
{
	sb_putc(b, '\n');
	pthread_mutex_lock(&out_lock);
	if (b->oom)
		q_dropped++;
	if (attached && !pthread_equal(pthread_self(), owner)) {
		if (!b->oom)
			enqueue_locked(b);
		term.wake(term.arg);
		pthread_mutex_unlock(&out_lock);
		free(b->p);
		return;
	}
	if (attached) {
		term.hide(term.arg);
		drain_locked(); /* earlier events first */
		if (!b->oom)
			write_locked(b->p, b->len);
		report_dropped_locked();
		term.show(term.arg);
	} else {
		if (!b->oom)
			write_locked(b->p, b->len);
		report_dropped_locked();
	}
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
	free(b->p);
}

/* ---- the API -------------------------------------------------------------- */

void output_init(int timestamps, int colour)
{
	deco_time = timestamps;
	deco_colour = colour;
}

void output_attach_terminal(const struct output_terminal *t)
{
	pthread_mutex_lock(&out_lock);
	term = *t;
	owner = pthread_self();
	attached = 1;
	pthread_mutex_unlock(&out_lock);
}

void output_detach_terminal(void)
{
	pthread_mutex_lock(&out_lock);
	if (attached) {
		term.hide(term.arg);
		drain_locked();
		fflush(stdout);
	}
	attached = 0;
	pthread_mutex_unlock(&out_lock);
}

void output_flush(void)
{
	pthread_mutex_lock(&out_lock);
	if (attached && pthread_equal(pthread_self(), owner) && (q_head || q_dropped)) {
		term.hide(term.arg);
		drain_locked();
		term.show(term.arg);
		fflush(stdout);
	}
	pthread_mutex_unlock(&out_lock);
}

void output_chat_mention(const char *room, const char *name, const char *text, int mention)
{
	struct sb b = { 0 };

	if (mention && deco_time)
		sb_putc(&b, '\a'); /* the bell: once per mention, terminal only */
	put_now(&b);
	sb_putc(&b, '[');
	put_label(&b, room);
	sb_puts(&b, "] ");
	put_name(&b, name);
	sb_puts(&b, ": ");
	if (mention && deco_colour)
		sb_puts(&b, "\x1b[7m");
	put_clean(&b, text, "  ");
	if (mention && deco_colour)
		sb_puts(&b, "\x1b[0m");
	emit(&b);
}

void output_chat(const char *room, const char *name, const char *text)
{
	output_chat_mention(room, name, text, 0);
}

void output_private(const char *from, const char *to, const char *text)
{
	struct sb b = { 0 };

	put_now(&b);
	if (to) {
		sb_puts(&b, "[private to ");
		put_label(&b, to);
		sb_puts(&b, "] ");
	} else {
		sb_puts(&b, "[private] ");
	}
	put_name(&b, from);
	sb_puts(&b, ": ");
	put_clean(&b, text, "  ");
	emit(&b);
}

/* "HH:MM", or "YYYY-MM-DD HH:MM" when not today, in local time; 0 or -1 when
 * iso is not "YYYY-MM-DDTHH:MM:SSZ". */
static int local_time(const char *iso, char *out, size_t cap)
{
	struct tm tm = { 0 }, lt, today;
	time_t t, now = time(NULL);
	char z;

	if (sscanf(iso, "%4d-%2d-%2dT%2d:%2d:%2d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &z) != 7 || z != 'Z')
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	t = timegm(&tm);
	if (t == (time_t)-1 || !localtime_r(&t, &lt) || !localtime_r(&now, &today))
		return -1;
	if (lt.tm_year == today.tm_year && lt.tm_yday == today.tm_yday)
		strftime(out, cap, "%H:%M", &lt);
	else
		strftime(out, cap, "%Y-%m-%d %H:%M", &lt);
	return 0;
}

void output_history_entry(const char *room, const char *iso_time, const char *name,
			  const char *text)
{
	struct sb b = { 0 };
	char when[32];

	sb_putc(&b, '[');
	put_label(&b, room);
	sb_putc(&b, ' ');
	if (local_time(iso_time, when, sizeof(when)) == 0)
		sb_puts(&b, when);
	else
		put_clean(&b, iso_time, NULL);
	sb_puts(&b, "] ");
	put_name(&b, name);
	sb_puts(&b, ": ");
	put_clean(&b, text, "  ");
	emit(&b);
}

void output_joined(const char *room, long ref, unsigned port)
{
	struct sb b = { 0 };

	sb_puts(&b, "joined ");
	put_label(&b, room);
	sb_printf(&b, " (ref %ld, port %u)", ref, port);
	emit(&b);
}

void output_left(const char *room)
{
	struct sb b = { 0 };

	sb_puts(&b, "left ");
	put_label(&b, room);
	emit(&b);
}

void output_server_error(long code, const char *description)
{
	struct sb b = { 0 };

	sb_printf(&b, "error %ld: ", code);
	put_clean(&b, description, NULL);
	emit(&b);
}

/* One formatted, cleaned line with an optional prefix. */
static void emit_formatted(const char *prefix, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
static void emit_formatted(const char *prefix, const char *fmt, va_list ap)
{
	char line[OUTPUT_LOCAL_MAX];
	struct sb b = { 0 };

	(void)vsnprintf(line, sizeof(line), fmt, ap);
	sb_puts(&b, prefix);
	put_clean(&b, line, NULL);
	emit(&b);
}

void output_local(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit_formatted("roomc: ", fmt, ap);
	va_end(ap);
}

void output_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit_formatted("", fmt, ap);
	va_end(ap);
}

/* The synopsis column's width: the longest synopsis ("send ROOM
 * MESSAGE...", "topic ROOM [TEXT...]") and a blank. */
#define HELP_SYNOPSIS_WIDTH 22

void output_help(const struct output_help_row *rows, size_t n, const char *footer)
{
	struct sb b = { 0 };

	sb_puts(&b, "commands:\n");
	for (size_t i = 0; i < n; i++)
		sb_printf(&b, "  %-*s %s\n", HELP_SYNOPSIS_WIDTH, rows[i].synopsis, rows[i].text);
	sb_puts(&b, footer);
	emit(&b);
}

/* term.c - line editing on a terminal with libedit's native API, driven a key
 * at a time from the command thread's poll(2) loop (EL_UNBUFFERED).
 *
 * Owns the EditLine and History objects and the terminal's modes; only the
 * command thread touches them, including through the hooks output.c calls
 * (with its lock held) to print an event above the line being edited: the
 * linenoise hide / print / show approach.
 *
 * Terminal sequences emitted here (libedit emits its own, from terminfo, to
 * draw and edit the line):
 *   CR          hide: to column 0 of the edited line's last row
 *   ESC[nA      hide: up n rows, to the first row of a wrapped line
 *   ESC[J       hide: erase from there to the end of the screen
 * and show redraws prompt and line with el_set(EL_REFRESH). */
#include "term.h"

#include <errno.h>
#include <histedit.h>
#include <locale.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <wchar.h>

#include "commands.h"
#include "notify.h"
#include "output.h"

#define TERM_HISTORY_SIZE 500
#define TERM_MAX_CANDIDATES 64 /* completion candidates listed at most */

struct term {
	EditLine *el;
	History *hist;
	char prompt[256];
	term_prompt_fn prompt_src;  /* NULL: the fixed prompt above */
	term_key_fn key_fn;
	void *hooks_arg;
	term_room_fn rooms;
	void *rooms_arg;
	struct notify *note;  /* woken for events queued by other threads */
	int editing;          /* a prompt and line are on screen, keys go to el */
};

static char *prompt_fn(EditLine *el)
{
	struct term *t = NULL;

	el_get(el, EL_CLIENTDATA, &t);
	return t ? t->prompt : "";
}

/* ---- hide / show, for output.c ----------------------------------------------- */

static int columns(void)
{
	struct winsize ws;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 80;
}

/* Display width of s[0..n) in columns, counting one per UTF-8 character:
 * close enough to find the rows of a wrapped line. */
static size_t width(const char *s, size_t n)
{
	size_t w = 0;

	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			w++;
	return w;
}

static void term_hide(void *arg)
{
	struct term *t = arg;
	const LineInfo *li;
	size_t pos;
	int row;

	if (!t->editing)
		return;
	li = el_line(t->el);
	pos = width(t->prompt, strlen(t->prompt)) +
	      width(li->buffer, (size_t)(li->cursor - li->buffer));
	row = (int)(pos / (size_t)columns());
	if (row > 0)
		printf("\r\x1b[%dA\x1b[J", row);
	else
		fputs("\r\x1b[J", stdout);
}

static void refresh_prompt(struct term *t)
{
	if (t->prompt_src)
		t->prompt_src(t->hooks_arg, t->prompt, sizeof(t->prompt));
}

/* Between hide and show the old prompt is gone from the screen: the place to
 * recompute it (the activity list changes with what was just printed). */
static void term_show(void *arg)
{
	struct term *t = arg;

	if (t->editing) {
		refresh_prompt(t);
		el_set(t->el, EL_REFRESH);
	}
}

/* Alt-1..9: switch rooms. The line being typed stays. */
static unsigned char room_key(EditLine *el, int ch)
{
	struct term *t = NULL;

	el_get(el, EL_CLIENTDATA, &t);
	if (!t || !t->key_fn || ch < '1' || ch > '9')
		return CC_ERROR;
	t->key_fn(t->hooks_arg, ch - '0');
	refresh_prompt(t);
	return CC_REDISPLAY;
}

static void term_wake(void *arg)
{
	struct term *t = arg;

	notify_poke(t->note);
}

/* ---- completion ------------------------------------------------------------------ */

static int blank(char c)
{
	return c == ' ' || c == '\t';
}

struct candidates {
	const char *v[TERM_MAX_CANDIDATES];
	size_t n;
	size_t more; /* matches beyond the array */
};

/* Nonzero when word is printable ASCII without spaces, as every command and
 * room name is: a room name the server sent that is not (no roomd sends one)
 * is never inserted into the edited line, where it would reach the terminal
 * unescaped. */
static int plain_word(const char *word)
{
	for (const unsigned char *p = (const unsigned char *)word; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f)
			return 0;
	return 1;
}

static void add_candidate(struct candidates *c, const char *word, const char *prefix, size_t plen)
{
	if (!word || strncmp(word, prefix, plen) != 0 || !plain_word(word))
		return;
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->v[i], word) == 0)
			return;
	if (c->n < TERM_MAX_CANDIDATES)
		c->v[c->n++] = word;
	else
		c->more++;
}

/* Tab: complete the command word, or the room argument of a command that
 * takes one (joined rooms and the last room list). One match is inserted
 * with a space; several extend the common prefix, or are listed. */
static unsigned char complete(EditLine *el, int ch)
{
	struct term *t = NULL;
	const LineInfo *li = el_line(el);
	const char *start = li->buffer, *cur = li->cursor, *w = cur, *p = start;
	struct candidates c = { .n = 0 };
	size_t plen, common;
	char buf[256];

	(void)ch;
	el_get(el, EL_CLIENTDATA, &t);
	while (w > start && !blank(w[-1]))
		w--;
	plen = (size_t)(cur - w);
	while (p < w && blank(*p))
		p++;
	if (p == w) { /* the command word */
		const char *name;
		for (size_t i = 0; (name = command_name_at(i)) != NULL; i++)
			add_candidate(&c, name, w, plen);
	} else { /* an argument: the first one, of a command taking a room */
		const char *verb = p, *q;
		size_t vlen = 0;

		while (p < w && !blank(*p))
			p++;
		vlen = (size_t)(p - verb);
		q = p;
		while (q < w && blank(*q))
			q++;
		if (q == w && command_takes_room(command_lookup(verb, vlen))) {
			const char *room;
			for (size_t i = 0; (room = t->rooms(t->rooms_arg, i)) != NULL; i++)
				add_candidate(&c, room, w, plen);
		}
	}
	if (c.n == 0)
		return CC_REFRESH_BEEP;
	if (c.n == 1 && !c.more) {
		snprintf(buf, sizeof(buf), "%s ", c.v[0] + plen);
		return el_insertstr(el, buf) < 0 ? CC_ERROR : CC_REFRESH;
	}
	common = strlen(c.v[0]);
	for (size_t i = 1; i < c.n; i++) {
		size_t k = 0;
		while (k < common && c.v[i][k] == c.v[0][k])
			k++;
		common = k;
	}
	if (common > plen && common - plen < sizeof(buf)) {
		memcpy(buf, c.v[0] + plen, common - plen);
		buf[common - plen] = '\0';
		return el_insertstr(el, buf) < 0 ? CC_ERROR : CC_REFRESH;
	}
	{
		char list[1024];
		size_t len = 0;

		list[0] = '\0';
		for (size_t i = 0; i < c.n && len < sizeof(list); i++)
			len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s",
						i ? "  " : "", c.v[i]);
		if (c.more && len < sizeof(list))
			snprintf(list + len, sizeof(list) - len, "  (%zu more)", c.more);
		output_info("%s", list); /* printed above the line, which is redrawn */
	}
	return CC_REFRESH;
}

/* ---- the API ---------------------------------------------------------------------- */

int term_create(const char *prompt, term_room_fn rooms, void *arg, struct notify *note,
		struct term **out)
{
	struct output_terminal hooks = { .hide = term_hide, .show = term_show, .wake = term_wake };
	struct term *t = calloc(1, sizeof(*t));
	HistEvent ev;

	if (!t)
		return -ENOMEM;
	/* UTF-8 typing, if the environment says so. Before any other thread. */
	setlocale(LC_CTYPE, "");
	t->rooms = rooms;
	t->rooms_arg = arg;
	t->note = note;
	snprintf(t->prompt, sizeof(t->prompt), "%s", prompt);
	t->hist = history_init();
	t->el = el_init("roomc", stdin, stdout, stderr);
	if (!t->hist || !t->el) {
		int rc = t->hist ? -ENOTTY : -ENOMEM;
		term_destroy(t);
		return rc;
	}
	history(t->hist, &ev, H_SETSIZE, TERM_HISTORY_SIZE);
	history(t->hist, &ev, H_SETUNIQUE, 1);
	el_set(t->el, EL_CLIENTDATA, t);
	el_set(t->el, EL_EDITOR, "emacs");
	el_set(t->el, EL_SIGNAL, 0); /* signals are the session's (signalfd) */
	el_set(t->el, EL_PROMPT, prompt_fn);
	el_set(t->el, EL_HIST, history, t->hist);
	/* The wide call: the narrow el_set(EL_ADDFN) duplicates the strings
	 * and el_end() never frees them (a leak LeakSanitizer reports). */
	el_wset(t->el, EL_ADDFN, L"roomc-complete", L"complete commands and room names", complete);
	el_set(t->el, EL_BIND, "^I", "roomc-complete", NULL);
	el_wset(t->el, EL_ADDFN, L"roomc-room", L"switch to the n-th joined room", room_key);
	for (char k[] = "\0331"; k[1] <= '9'; k[1]++)
		el_set(t->el, EL_BIND, k, "roomc-room", NULL);
	hooks.arg = t;
	output_attach_terminal(&hooks);
	*out = t;
	return 0;
}

void term_destroy(struct term *t)
{
	if (!t)
		return;
	if (t->el) {
		output_detach_terminal(); /* erases the prompt, prints what is queued */
		if (t->editing)
			el_set(t->el, EL_UNBUFFERED, 0); /* back to the original mode */
		t->editing = 0;
		el_end(t->el);
	}
	if (t->hist)
		history_end(t->hist);
	free(t);
}

int term_fd(const struct term *t)
{
	(void)t;
	return STDIN_FILENO;
}

void term_set_hooks(struct term *t, term_prompt_fn prompt, term_key_fn key, void *arg)
{
	t->prompt_src = prompt;
	t->key_fn = key;
	t->hooks_arg = arg;
}

void term_prompt(struct term *t)
{
	if (t->editing)
		return;
	output_flush();
	refresh_prompt(t);
	/* read_prepare(): raw mode, an empty line, the prompt drawn. */
	el_set(t->el, EL_UNBUFFERED, 1);
	t->editing = 1;
}

/* el_gets() gave nothing: end of input when the terminal hung up. */
static int no_key(void)
{
	struct pollfd pf = { .fd = STDIN_FILENO, .events = POLLIN };
	int err = errno;

	if (err == EIO || err == EBADF || err == ENXIO)
		return -EPIPE;
	if (poll(&pf, 1, 0) == 1 && (pf.revents & (POLLHUP | POLLERR | POLLNVAL)) &&
	    !(pf.revents & POLLIN))
		return -EPIPE;
	return 0;
}

int term_read(struct term *t, char **line)
{
	const char *buf;
	HistEvent ev;
	int n = 0;

	if (!t->editing)
		term_prompt(t);
	errno = 0;
	buf = el_gets(t->el, &n);
	if (!buf || n <= 0)
		return no_key();
	if (n == 1 && buf[0] == '\x04') { /* Ctrl-D on an empty line */
		/* Erase the prompt, so what follows starts a clean line. The
		 * owner is stdout's only writer while a terminal is attached. */
		term_hide(t);
		fflush(stdout);
		el_set(t->el, EL_UNBUFFERED, 0);
		t->editing = 0;
		return -EPIPE;
	}
	if (buf[n - 1] != '\n')
		return 0;
	*line = strndup(buf, (size_t)n - 1);
	if (!*line)
		return -ENOMEM;
	if (strspn(*line, " \t") < strlen(*line))
		history(t->hist, &ev, H_ENTER, *line);
	/* read_finish(): the line is done, the terminal back in its mode. */
	el_set(t->el, EL_UNBUFFERED, 0);
	t->editing = 0;
	return 1;
}

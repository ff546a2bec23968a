/* session.c - the command loop: stdin in, requests out, one reply at a time.
 *
 * Owns the control connection, the joined rooms, the last room list, the
 * notifier, stdin (as lines, or through the terminal editor) and the
 * signalfd. Runs on the main thread only; the control reader and the room
 * listeners (threads owned by control.c and room.c) print what they receive
 * and poke the notifier; with a terminal, their lines wait in output.c until
 * this thread prints them above the edited line (output_flush at each
 * wake-up). Every wait here is a poll(2) bounded by a timeout that also
 * wakes for a signal, so Ctrl-C always ends the session cleanly. The
 * commands themselves (what each verb does) are verbs.c's, which reaches
 * the session through session_int.h. After a reconnect it prints what each
 * room missed (by number with a server that numbers messages, seqtrack.h;
 * else by content, catchup.h), and after a GAP notice, before it sleeps, it
 * refills the room from its history (HISTORY_AFTER pages). */
#include "session_int.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "activity.h"
#include "backoff.h"
#include "catchup.h"
#include "seqtrack.h"
#include "control.h"
#include "net.h"
#include "input.h"
#include "msg.h"
#include "notify.h"
#include "output.h"
#include "proto.h"
#include "room.h"
#include "term.h"
#include "verbs.h"

/* A command line: generous for chat, and what keeps a runaway paste from
 * growing our memory. */
#define SESSION_MAX_LINE 65536

/* How long each command waits. Replies come in milliseconds from a live
 * daemon; these only bound a dead or overloaded one. */
#define REPLY_TIMEOUT_MS 10000      /* JOINED_CHATROOM, LEFT_CHATROOM */
#define ATTACH_TIMEOUT_MS 10000     /* ATTACHED_CHATROOM */
#define ANNOUNCE_TIMEOUT_MS 2000    /* our join/leave announcement; a server
				     * that sends none only costs this */
#define DISCONNECT_TIMEOUT_MS 5000  /* the server closing after DISCONNECT */

/* History entries shown right after a join: enough to catch up, few enough
 * not to scroll the join itself away. `history ROOM` shows all the server
 * keeps. */
#define HISTORY_ON_JOIN 20

/* A room we were in when the control connection dropped: what rejoining it
 * needs, and the last messages seen there, to find what was missed. */
struct lost_room {
	char *typed;
	char *names[CATCHUP_SEEN], *texts[CATCHUP_SEEN];
	size_t nseen;
	int current;
	int numbered;  /* the lost connection gave numbers: last_seq counts */
	long last_seq; /* the newest number seen in the room (0: none) */
};

/* Refills (HISTORY_AFTER rounds after GAP notices) per wake-up at most. */
#define REFILL_ROUNDS 8

/* Rooms listed in the prompt's activity list at most. */
#define PROMPT_ROOMS_MAX 32

/* ---- waiting ------------------------------------------------------------ */

static long ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0->tv_sec) * 1000L + (now.tv_nsec - t0->tv_nsec) / 1000000L;
}

static void take_signal(struct session *s)
{
	struct signalfd_siginfo si;

	/* Only the fact matters; EAGAIN cannot happen after POLLIN. */
	if (read(s->sigfd, &si, sizeof(si)) < 0)
		return;
}

/* Sleep until ready(arg), the control connection closes, a signal arrives or
 * ms pass: 0, -EPIPE, -EINTR or -ETIMEDOUT. ready is tested first, so a
 * reply that arrived just before the close still counts. */
int session_wait(struct session *s, int (*ready)(void *), void *arg, int ms)
{
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd pf[2] = {
			{ .fd = notify_fd(s->note), .events = POLLIN },
			{ .fd = s->sigfd, .events = POLLIN },
		};
		long left = ms - ms_since(&t0);
		int n;

		if (ready(arg))
			return 0;
		if (control_closed(s->ctl))
			return -EPIPE;
		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(pf, 2, (int)left);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (pf[1].revents & POLLIN) {
			take_signal(s);
			return -EINTR;
		}
		if (pf[0].revents & POLLIN) {
			notify_drain(s->note);
			output_flush();
		}
	}
}

static int reply_ready(void *arg) { return control_reply_ready(arg); }
static int notify_settled(void *arg) { return notify_result(arg) != 0; }
static int attach_settled(void *arg) { return room_state(arg) != ROOM_ATTACHING; }
static int control_gone(void *arg) { return control_closed(arg) != 0; }

/* ---- the room table ------------------------------------------------------ */

struct joined *session_find_room(struct session *s, const char *name)
{
	for (size_t i = 0; i < s->nrooms; i++)
		if (strcmp(s->rooms[i].typed, name) == 0 ||
		    strcmp(room_name(s->rooms[i].room), name) == 0)
			return &s->rooms[i];
	return NULL;
}

/* Grows only with the user's own joins. 0 or -ENOMEM. */
static int add_room(struct session *s, const char *typed, struct room *room)
{
	char *copy = strdup(typed);

	if (!copy)
		return -ENOMEM;
	if (s->nrooms == s->caprooms) {
		size_t ncap = s->caprooms ? s->caprooms * 2 : 8;
		struct joined *p = realloc(s->rooms, ncap * sizeof(*p));
		if (!p) {
			free(copy);
			return -ENOMEM;
		}
		s->rooms = p;
		s->caprooms = ncap;
	}
	s->rooms[s->nrooms].typed = copy;
	s->rooms[s->nrooms++].room = room;
	return 0;
}

/* Make rooms[i] the current room (i < 0: none). */
void session_set_current(struct session *s, long i)
{
	if (s->cur >= 0 && s->cur < (long)s->nrooms)
		room_set_current(s->rooms[s->cur].room, 0);
	s->cur = i;
	if (i >= 0)
		room_set_current(s->rooms[i].room, 1);
}

/* Keeps the order (Alt-N is the N-th room joined); the current room, when
 * it goes, passes to the one joined last. */
void session_remove_room(struct session *s, struct joined *j)
{
	long i = (long)(j - s->rooms);

	room_destroy(j->room);
	free(j->typed);
	memmove(j, j + 1, (s->nrooms - (size_t)i - 1) * sizeof(*j));
	s->nrooms--;
	if (s->cur == i)
		session_set_current(s, s->nrooms ? (long)s->nrooms - 1 : -1);
	else if (s->cur > i)
		s->cur--;
}

static void remove_all_rooms(struct session *s)
{
	while (s->nrooms > 0)
		session_remove_room(s, &s->rooms[s->nrooms - 1]);
}

/* ---- requests -------------------------------------------------------------- */

static const char *errtext(int rc)
{
	return rc == -ENOENT ? "host not found" : strerror(-rc);
}

/* Send m (consumed) on the control connection and wait for the reply to it,
 * moved into *rep (kind PROTO_NONE when there is none: timeout, no memory,
 * which is reported here). 0 or a fatal -errno. */
int session_request(struct session *s, struct msg *m, enum proto_kind expect,
		    struct control_reply *rep)
{
	int rc;

	memset(rep, 0, sizeof(*rep));
	if (!m) {
		output_local("out of memory");
		return 0;
	}
	rc = control_send(s->ctl, m, expect);
	msg_unref(&m);
	if (rc < 0) {
		output_local("cannot write to the server: %s", strerror(-rc));
		return -ECONNABORTED;
	}
	rc = session_wait(s, reply_ready, s->ctl, REPLY_TIMEOUT_MS);
	if (rc < 0) {
		control_cancel(s->ctl);
		if (rc != -ETIMEDOUT)
			return rc;
		output_local("no reply from the server in %d s", REPLY_TIMEOUT_MS / 1000);
		return 0;
	}
	(void)control_take_reply(s->ctl, rep); /* ready: cannot fail */
	return 0;
}

/* Our own announcement (armed before the request) is printed, so the next
 * command's output cannot overtake it. A server that sends none costs only
 * the timeout. */
int session_wait_announcement(struct session *s)
{
	int rc = session_wait(s, notify_settled, s->note, ANNOUNCE_TIMEOUT_MS);

	return rc == -ETIMEDOUT ? 0 : rc;
}

/* LEAVE_CHATROOM for a membership; *rep says how it went. 0 or fatal. */
int session_leave_membership(struct session *s, long ref, long join_id,
			     struct control_reply *rep)
{
	int rc;

	notify_arm(s->note, ref, PROTO_LEFT_TEXT);
	rc = session_request(s, proto_write_leave_req(ref, join_id, s->p.name), PROTO_R_LEFT, rep);
	if (rc == 0 && rep->kind == PROTO_R_LEFT)
		rc = session_wait_announcement(s);
	notify_disarm(s->note);
	return rc;
}

/* A join whose room connection failed is undone, so the server does not keep
 * a member we cannot serve. */
static int undo_join(struct session *s, const struct control_reply *joined)
{
	struct control_reply rep;
	int rc = session_leave_membership(s, joined->ref, joined->join_id, &rep);

	control_reply_fini(&rep);
	return rc;
}

/* The JOINED reply is in: connect to the room's port and attach. */
static int attach(struct session *s, const char *typed, const struct control_reply *joined)
{
	struct room_params rp = {
		.name = joined->room, .ref = joined->ref, .join_id = joined->join_id,
		.client_name = s->p.name, .server_ip = joined->server_ip,
		.port = joined->port, .control_host = s->p.host,
		.control_is_loopback = control_is_loopback(s->ctl),
		.abort_fd = s->sigfd, .note = s->note, .tls = &s->p.tls,
	};
	struct room *room;
	int rc = room_create(&rp, &room);

	if (rc == -EINTR) {
		take_signal(s);
		return rc;
	}
	if (rc < 0) {
		output_local("cannot connect to %s (port %u): %s", joined->room, joined->port, errtext(rc));
		return undo_join(s, joined);
	}
	rc = session_wait(s, attach_settled, room, ATTACH_TIMEOUT_MS);
	if (rc == 0 && room_state(room) == ROOM_ATTACHED) {
		rc = add_room(s, typed, room);
		if (rc == 0)
			return session_wait_announcement(s);
		output_local("out of memory");
	} else if (rc == -ETIMEDOUT) {
		output_local("no answer from the port of %s in %d s", joined->room,
			     ATTACH_TIMEOUT_MS / 1000);
	}
	/* Refused or closed: the listener said why. */
	room_destroy(room);
	if (rc == 0 || rc == -ETIMEDOUT || rc == -ENOMEM)
		return undo_join(s, joined);
	return rc;
}

/* ---- joining ------------------------------------------------------------------ */

/* Names go on the wire as one line: no control characters. The server judges
 * the rest (length, charset) and answers error 4. */
int session_name_ok(const char *name)
{
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return *name != '\0';
}

/* Our own join announcement, the last entry right after a join: it was
 * printed a moment ago. */
static int own_join_entry(const struct session *s, const struct control_entry *e)
{
	size_t n = strlen(s->p.name);

	return strcmp(e->name, s->p.name) == 0 && strncmp(e->text, s->p.name, n) == 0 &&
	       strcmp(e->text + n, PROTO_JOINED_TEXT) == 0;
}

/* HISTORY for a joined room; max > 0 (after a join): at most the last max
 * entries, our own join announcement left out, nothing said when empty. */
int session_show_history(struct session *s, struct joined *j, size_t max)
{
	struct control_reply rep;
	const char *name = room_name(j->room);
	size_t first = 0, n;
	/* With numbers, the same entries with the room's newest number: what
	 * the catch-up after a reconnect starts from. */
	enum proto_kind kind = s->seq ? PROTO_R_HISTORY_AFTER : PROTO_R_HISTORY;
	long ref = room_ref(j->room), id = room_join_id(j->room);
	int rc = session_request(s, s->seq ? proto_write_history_after_req(ref, id, s->p.name, 0)
					   : proto_write_history_req(ref, id, s->p.name),
				 kind, &rep);

	if (rc < 0 || rep.kind != kind)
		goto out;
	if (kind == PROTO_R_HISTORY_AFTER && rep.nentries > 0 &&
	    rep.first + (long)rep.nentries - 1 < rep.last) {
		/* Only a page of a history larger than half the send queue: the
		 * newest are what is shown, so ask as a classic client would. */
		control_reply_fini(&rep);
		kind = PROTO_R_HISTORY;
		rc = session_request(s, proto_write_history_req(ref, id, s->p.name), kind, &rep);
		if (rc < 0 || rep.kind != kind)
			goto out;
	} else if (kind == PROTO_R_HISTORY_AFTER) {
		seqtrack_seed_shown(ref, rep.first, rep.nentries);
	}
	n = rep.nentries;
	if (max > 0 && n > 0 && own_join_entry(s, &rep.entries[n - 1]))
		n--;
	if (n == 0) {
		if (max == 0)
			output_info("history of %s: no messages", output_q(name));
		goto out;
	}
	if (max > 0 && n > max) {
		first = n - max;
		output_info("history of %s: last %zu of %zu messages", output_q(name), max, n);
	} else {
		output_info("history of %s: %zu message%s", output_q(name), n, n == 1 ? "" : "s");
	}
	for (size_t i = first; i < n; i++)
		output_history_entry(name, rep.entries[i].time, rep.entries[i].name,
				     rep.entries[i].text);
	if (max > 0) /* after a join: where the catch-up starts from */
		room_seed_seen(j->room, rep.entries[n - 1].name, rep.entries[n - 1].text);
out:
	control_reply_fini(&rep);
	return rc;
}

static int catch_up(struct session *s, struct joined *j, const struct lost_room *lost);
static int catch_up_numbered(struct session *s, struct joined *j, const struct lost_room *lost);
static int refill_gaps(struct session *s);

/* Join room; lost non-NULL when rejoining after a reconnect: then the
 * messages missed meanwhile are shown instead of the usual recent history.
 * The joined room becomes the current one. */
int session_join_room(struct session *s, const char *room, const struct lost_room *lost)
{
	struct control_reply rep;
	struct joined *j;
	int rc;

	if (session_find_room(s, room)) {
		output_local("already in %s", output_q(room));
		return CMD_CONTINUE;
	}
	if (!session_name_ok(room)) {
		output_local("invalid room name");
		return CMD_CONTINUE;
	}
	/* Armed before the request: the announcement may follow JOINED at once. */
	notify_arm(s->note, -1, PROTO_JOINED_TEXT);
	rc = session_request(s, proto_write_join_req(room, s->p.name), PROTO_R_JOINED, &rep);
	if (rc == 0 && rep.kind == PROTO_R_JOINED)
		rc = attach(s, room, &rep);
	control_reply_fini(&rep);
	notify_disarm(s->note);
	j = rc == 0 ? session_find_room(s, room) : NULL;
	if (!j)
		return rc;
	if (!lost || lost->current)
		session_set_current(s, (long)(j - s->rooms));
	if (lost)
		return catch_up(s, j, lost);
	return s->ext ? session_show_history(s, j, HISTORY_ON_JOIN) : 0;
}

/* ---- the loop ------------------------------------------------------------------- */

/* Sleep until stdin has input: 1, or -EPIPE / -EINTR / -errno. */
static int wait_input(struct session *s)
{
	for (;;) {
		struct pollfd pf[3] = {
			{ .fd = s->term ? term_fd(s->term) : input_fd(s->in), .events = POLLIN },
			{ .fd = notify_fd(s->note), .events = POLLIN },
			{ .fd = s->sigfd, .events = POLLIN },
		};
		int rc;

		if (control_closed(s->ctl))
			return -EPIPE;
		/* Before sleeping: a GAP notice may have come while a command
		 * waited for its reply (its wake-up was taken there). */
		rc = refill_gaps(s);
		if (rc < 0)
			return rc;
		if (poll(pf, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (pf[2].revents & POLLIN) {
			take_signal(s);
			return -EINTR;
		}
		if (pf[1].revents & POLLIN) {
			notify_drain(s->note);
			output_flush();
		}
		if (pf[0].revents)
			return 1; /* POLLIN, POLLHUP or POLLERR: read() tells which */
	}
}

/* Run buffered commands, then read more, until the session should end:
 * 0 to disconnect (quit, end of input, signal), or a fatal -errno. */
static int command_loop(struct session *s)
{
	for (;;) {
		char *line;
		size_t len;
		int rc = input_next(s->in, &line, &len);

		if (rc == -E2BIG) {
			output_local("line ignored: longer than %d bytes", SESSION_MAX_LINE);
			continue;
		}
		if (rc < 0) {
			output_local("cannot read commands: %s", strerror(-rc));
			return 0;
		}
		if (rc > 0) {
			rc = verbs_execute(s, line, len);
			if (rc == CMD_QUIT || rc == -EINTR)
				return 0;
			if (rc < 0)
				return rc;
			continue;
		}
		if (input_eof(s->in))
			return 0;
		rc = wait_input(s);
		if (rc == -EINTR)
			return 0;
		if (rc < 0)
			return rc;
		rc = input_read(s->in);
		if (rc < 0) {
			output_local("cannot read commands: %s", strerror(-rc));
			return 0;
		}
	}
}

/* The same with the terminal editor: a key at a time, the prompt shown
 * again after each command. */
static int term_loop(struct session *s)
{
	for (;;) {
		char *line = NULL;
		int rc;

		term_prompt(s->term);
		rc = wait_input(s);
		if (rc == -EINTR)
			return 0;
		if (rc < 0)
			return rc;
		rc = term_read(s->term, &line);
		if (rc == -EPIPE)
			return 0; /* Ctrl-D, or the terminal went away */
		if (rc < 0) {
			output_local("cannot read commands: %s", strerror(-rc));
			return 0;
		}
		if (rc == 0)
			continue;
		if (strlen(line) > SESSION_MAX_LINE)
			output_local("line ignored: longer than %d bytes", SESSION_MAX_LINE);
		else
			rc = verbs_execute(s, line, strlen(line));
		free(line);
		if (rc == CMD_QUIT || rc == -EINTR)
			return 0;
		if (rc < 0)
			return rc;
	}
}

/* WELCOME: the server's greeting, and whether it speaks the extensions; then
 * the command list. 0 or fatal. */
static int welcome(struct session *s, int again)
{
	struct control_reply rep;
	int rc = session_request(s, proto_write_welcome_seq_req(), PROTO_R_WELCOME, &rep);

	if (rc < 0)
		return rc;
	s->ext = 0;
	s->seq = 0;
	if (rep.kind == PROTO_R_WELCOME) {
		s->ext = 1;
		s->seq = rep.seq;
		free(s->server_id);
		s->server_id = rep.server_id;
		rep.server_id = NULL;
		output_info("connected to %s (%s)", s->server_id, rep.version);
		if (!again)
			output_info("welcome: %s", rep.text);
	} else if (rep.kind == PROTO_R_ERROR && !again) {
		output_local("the server has no welcome: rooms, who, msg, history and topic"
			     " may not work (a plain CS4032 server?)");
	}
	control_reply_fini(&rep);
	if (!again)
		verbs_help();
	return 0;
}

/* The config file's rooms, joined at the start like typed joins. */
static int autojoin(struct session *s)
{
	int rc = 0;

	for (size_t i = 0; i < s->p.nautojoin && rc == 0; i++)
		rc = session_join_room(s, s->p.autojoin[i], NULL);
	return rc;
}

/* ---- reconnecting ---------------------------------------------------------------- */

/* The catch-up's header: the gap line, "nothing missed", or how many. */
static void catch_up_header(const char *name, int gap, size_t n)
{
	if (gap)
		output_info("--- %s: gap: more was said while disconnected than the history keeps;"
			    " its %zu oldest kept message%s follow ---", output_q(name), n,
			    n == 1 ? "" : "s");
	else if (n == 0)
		output_info("--- %s: nothing missed ---", output_q(name));
	else
		output_info("--- %s: %zu message%s missed while disconnected ---", output_q(name), n,
			    n == 1 ? "" : "s");
}

/* The pages of a room's history after a number: HISTORY_AFTER answers the
 * oldest entries that fit in half our send queue on the server, so it is
 * asked again after each page's last until the room's newest (or upto). */
struct after_pages {
	struct control_reply *p;
	size_t n;
	long first;   /* the first page's FIRST: the number of entry 0 */
	long last;    /* the room's newest number (the last page's LAST) */
	size_t count; /* entries in all, numbered first, first + 1, ... */
};

/* Pages asked for at most (the server keeps at most 10000 entries). */
#define AFTER_PAGES_MAX 10000

static void after_pages_fini(struct after_pages *pg)
{
	for (size_t i = 0; i < pg->n; i++)
		control_reply_fini(&pg->p[i]);
	free(pg->p);
	memset(pg, 0, sizeof(*pg));
}

/* Entry i of the pages. */
static const struct control_entry *after_entry(const struct after_pages *pg, size_t i)
{
	size_t k = 0;

	while (i >= pg->p[k].nentries)
		i -= pg->p[k++].nentries;
	return &pg->p[k].entries[i];
}

/* Fetch room j's history after `after` (up to upto when > 0): 1 when
 * answered (*pg filled; a page stops at a hole in the numbers), 0 when the
 * server refused (said already), or fatal. */
static int fetch_after(struct session *s, struct joined *j, long after, long upto,
		       struct after_pages *pg)
{
	long ref = room_ref(j->room), id = room_join_id(j->room);

	memset(pg, 0, sizeof(*pg));
	while (pg->n < AFTER_PAGES_MAX) {
		struct control_reply rep, *np;
		int rc = session_request(s, proto_write_history_after_req(ref, id, s->p.name, after),
					 PROTO_R_HISTORY_AFTER, &rep);

		if (rc < 0 || rep.kind != PROTO_R_HISTORY_AFTER ||
		    (pg->n > 0 && rep.first != after + 1)) {
			control_reply_fini(&rep);
			return rc < 0 ? rc : pg->n > 0;
		}
		np = realloc(pg->p, (pg->n + 1) * sizeof(*np));
		if (!np) {
			output_local("out of memory");
			control_reply_fini(&rep);
			return pg->n > 0;
		}
		pg->p = np;
		if (pg->n == 0)
			pg->first = rep.first;
		pg->last = rep.last;
		pg->count += rep.nentries;
		pg->p[pg->n++] = rep;
		if (rep.nentries == 0)
			break;
		after = rep.first + (long)rep.nentries - 1;
		if (after >= rep.last || (upto > 0 && after >= upto))
			break;
	}
	return 1;
}

/* Print the entries numbered in (after, upto] of pg. */
static void print_after(const char *name, const struct after_pages *pg, long after, long upto)
{
	for (size_t i = 0; i < pg->count; i++) {
		long seq = pg->first + (long)i;
		const struct control_entry *e = after_entry(pg, i);

		if (seq > after && seq <= upto)
			output_history_entry(name, e->time, e->name, e->text);
	}
}

/* How many entries of pg are numbered in (after, upto]. */
static size_t count_after(const struct after_pages *pg, long after, long upto)
{
	long lo = pg->first > after + 1 ? pg->first : after + 1;
	long hi = pg->first + (long)pg->count - 1 < upto ? pg->first + (long)pg->count - 1 : upto;

	return hi >= lo ? (size_t)(hi - lo + 1) : 0;
}

/* The catch-up by number (§7.7): the entries numbered after the last one
 * seen before the drop, up to the first printed live since the rejoin
 * (none twice). A gap: the history starts after a number we never saw, or
 * the room numbers from below ours (a restart without a database). */
static int catch_up_numbered(struct session *s, struct joined *j, const struct lost_room *lost)
{
	struct after_pages pg;
	const char *name = room_name(j->room);
	long ref = room_ref(j->room), last = lost->last_seq, live, dummy, upto;
	int renumbered = 0, gap, rc = fetch_after(s, j, last, 0, &pg);

	if (rc > 0 && pg.last < last) { /* numbered anew: nothing tells what we saw */
		renumbered = 1;
		last = 0;
		after_pages_fini(&pg);
		rc = fetch_after(s, j, 0, 0, &pg);
	}
	if (rc <= 0)
		goto out;
	seqtrack_get(ref, &dummy, &live);
	/* Missed: the numbers after last, up to the first one printed live. */
	upto = live > 0 && live - 1 < pg.last ? live - 1 : pg.last;
	gap = renumbered || (upto > last && (pg.count == 0 || pg.first > last + 1));
	catch_up_header(name, gap, count_after(&pg, last, upto));
	print_after(name, &pg, last, upto);
	/* Printed up to the newest kept: a live copy still on its way is not
	 * printed again. With live ones printed, the readers know already. */
	if (live == 0)
		seqtrack_seed_shown(ref, pg.first, pg.count);
out:
	after_pages_fini(&pg);
	return rc < 0 ? rc : 0;
}

/* The room joined under ref, or NULL. */
static struct joined *find_ref(struct session *s, long ref)
{
	for (size_t i = 0; i < s->nrooms; i++)
		if (room_ref(s->rooms[i].room) == ref)
			return &s->rooms[i];
	return NULL;
}

/* Refill one room after a GAP notice: its history after the newest
 * number printed, in order (its live messages wait meanwhile), or the gap
 * line when the history no longer reaches back. 0 or fatal. */
static int refill_room(struct session *s, long ref, long after)
{
	struct joined *j = find_ref(s, ref);
	struct after_pages pg;
	const char *name;
	long to;
	int rc;

	if (!j) {
		seqtrack_refilled(ref, -1, 0); /* left meanwhile */
		return 0;
	}
	name = room_name(j->room);
	rc = fetch_after(s, j, after, 0, &pg);
	if (rc <= 0) {
		output_local("%s: messages dropped by the server could not be refilled: see history %s",
			     output_q(name), output_q(name));
		seqtrack_refilled(ref, -1, 0);
		after_pages_fini(&pg);
		return rc;
	}
	to = pg.count > 0 ? pg.first + (long)pg.count - 1 : pg.last;
	if (pg.count == 0 ? pg.last > after : pg.first > after + 1)
		output_info("--- %s: gap: the server dropped messages its history no longer has ---",
			    output_q(name));
	else
		output_info("--- %s: %zu message%s dropped by the server, refilled from its history ---",
			    output_q(name), pg.count, pg.count == 1 ? "" : "s");
	print_after(name, &pg, after, to);
	seqtrack_refilled(ref, to, pg.last);
	after_pages_fini(&pg);
	return 0;
}

/* Refill the rooms the server sent GAP notices for (§7.7): a bounded
 * number of rounds per wake-up (a room still flooded waits for the next).
 * 0 or fatal. */
static int refill_gaps(struct session *s)
{
	long ref, after;
	int rc = 0;

	for (int round = 0; round < REFILL_ROUNDS && rc == 0 && seqtrack_refill_next(&ref, &after);
	     round++)
		rc = refill_room(s, ref, after);
	return rc;
}

/* Print the history entries of room j missed while we were away (lost: what
 * we had seen there), found by catchup_plan(); or the gap line when the
 * history no longer reaches back to what we saw. 0 or fatal. */
static int catch_up(struct session *s, struct joined *j, const struct lost_room *lost)
{
	struct catchup_entry seen[CATCHUP_SEEN], live[CATCHUP_SEEN], *hist = NULL;
	char *live_names[CATCHUP_SEEN], *live_texts[CATCHUP_SEEN];
	size_t nlive = 0;
	struct catchup_plan plan;
	struct control_reply rep;
	const char *name = room_name(j->room);
	int rc;

	if (!s->ext) {
		output_local("%s: what was said while disconnected is lost (no history on this server)",
			     output_q(name));
		return 0;
	}
	if (s->seq && lost->numbered)
		return catch_up_numbered(s, j, lost);
	rc = session_request(s, proto_write_history_req(room_ref(j->room), room_join_id(j->room), s->p.name),
			     PROTO_R_HISTORY, &rep);
	if (rc < 0 || rep.kind != PROTO_R_HISTORY)
		goto out;
	hist = calloc(rep.nentries + 1, sizeof(*hist));
	if (!hist) {
		output_local("out of memory");
		goto out;
	}
	for (size_t i = 0; i < rep.nentries; i++)
		hist[i] = (struct catchup_entry){ rep.entries[i].name, rep.entries[i].text };
	for (size_t i = 0; i < lost->nseen; i++)
		seen[i] = (struct catchup_entry){ lost->names[i], lost->texts[i] };
	/* Printed since the rejoin: the reply's tail, not missed. */
	nlive = room_copy_seen(j->room, live_names, live_texts);
	for (size_t i = 0; i < nlive; i++)
		live[i] = (struct catchup_entry){ live_names[i], live_texts[i] };
	plan = catchup_plan(hist, rep.nentries, seen, lost->nseen, live, nlive);
	catch_up_header(name, plan.gap, plan.end - plan.first);
	for (size_t i = plan.first; i < plan.end; i++)
		output_history_entry(name, rep.entries[i].time, rep.entries[i].name,
				     rep.entries[i].text);
	if (plan.end > plan.first)
		room_seed_seen(j->room, rep.entries[plan.end - 1].name, rep.entries[plan.end - 1].text);
	for (size_t i = 0; i < nlive; i++) {
		free(live_names[i]);
		free(live_texts[i]);
	}
out:
	free(hist);
	control_reply_fini(&rep);
	return rc;
}

static void report_loss(struct session *s, int rc)
{
	if (rc == -EPIPE) {
		int closed = control_closed(s->ctl);

		if (closed < 0)
			output_local("connection to the server lost: %s",
				     closed == -EMSGSIZE ? "oversized frame" : strerror(-closed));
		else
			output_local("connection closed by server");
	} else if (rc != -ECONNABORTED) { /* that one was reported where it happened */
		output_local("%s", strerror(-rc));
	}
}

static void free_lost(struct lost_room *lost, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(lost[i].typed);
		for (size_t k = 0; k < lost[i].nseen; k++) {
			free(lost[i].names[k]);
			free(lost[i].texts[k]);
		}
	}
	free(lost);
}

/* Forget the dead connection and its rooms, keeping what rejoining needs.
 * *out is NULL (and *n 0) when out of memory: then no room is rejoined. */
static void drop_connection(struct session *s, struct lost_room **out, size_t *n)
{
	struct lost_room *lost = calloc(s->nrooms + 1, sizeof(*lost));
	long live;

	*n = 0;
	for (size_t i = 0; lost && i < s->nrooms; i++) {
		struct lost_room *l = &lost[*n];

		room_set_leaving(s->rooms[i].room, 1); /* its close is no news now */
		l->typed = strdup(s->rooms[i].typed);
		if (!l->typed)
			continue;
		l->nseen = room_copy_seen(s->rooms[i].room, l->names, l->texts);
		l->current = (long)i == s->cur;
		l->numbered = s->seq;
		seqtrack_get(room_ref(s->rooms[i].room), &l->last_seq, &live);
		(*n)++;
	}
	if (!lost)
		output_local("out of memory: the rooms will not be rejoined");
	s->cur = -1;
	remove_all_rooms(s);
	control_destroy(s->ctl);
	s->ctl = NULL;
	seqtrack_reset(); /* the readers are gone: what comes now is the rejoin's */
	*out = lost;
}

/* Sleep ms, waking to print what the readers queue: 0, or -EINTR for a
 * signal (Ctrl-C: the user gives up). */
static int backoff_sleep(struct session *s, unsigned ms)
{
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd pf[2] = {
			{ .fd = notify_fd(s->note), .events = POLLIN },
			{ .fd = s->sigfd, .events = POLLIN },
		};
		long left = (long)ms - ms_since(&t0);

		if (left <= 0)
			return 0;
		if (poll(pf, 2, (int)left) < 0 && errno != EINTR)
			return -errno;
		if (pf[1].revents & POLLIN) {
			take_signal(s);
			return -EINTR;
		}
		if (pf[0].revents & POLLIN) {
			notify_drain(s->note);
			output_flush();
		}
	}
}

/* Connect again, with back-off, until it works or a signal: 0 or -EINTR. */
static int redial(struct session *s)
{
	const char *h = s->p.host;
	int br = strchr(h, ':') != NULL;

	for (unsigned attempt = 0;; attempt++) {
		unsigned ms = backoff_delay_ms(attempt, (unsigned)random());
		int fd, rc;

		output_local("reconnecting to %s%s%s:%u in %u.%u s (attempt %u; Ctrl-C quits)",
			     br ? "[" : "", h, br ? "]" : "", s->p.port, ms / 1000,
			     ms % 1000 / 100, attempt + 1);
		rc = backoff_sleep(s, ms);
		if (rc < 0)
			return -EINTR;
		fd = net_connect(h, s->p.port);
		if (fd < 0) {
			output_local("cannot connect: %s", errtext(fd));
			continue;
		}
		rc = control_create(fd, s->note, &s->p.tls, &s->ctl);
		if (rc == 0)
			return 0;
		output_local("cannot start: %s", strerror(-rc));
	}
}

/* The control connection is gone (rc says how): reconnect, rejoin every
 * room, show what was missed. 0 when the session goes on, -EINTR when the
 * user quit while waiting. */
static int reconnect(struct session *s, int rc)
{
	struct lost_room *lost;
	size_t nlost;

	report_loss(s, rc);
	drop_connection(s, &lost, &nlost);
	for (;;) {
		rc = redial(s);
		if (rc == 0)
			rc = welcome(s, 1);
		for (size_t i = 0; i < nlost && rc == 0; i++)
			rc = session_join_room(s, lost[i].typed, &lost[i]);
		if (rc == 0 || rc == -EINTR || !s->ctl) {
			free_lost(lost, nlost);
			return rc == 0 ? 0 : -EINTR;
		}
		/* Lost again while rejoining: start over with what we had. */
		report_loss(s, rc);
		s->cur = -1;
		remove_all_rooms(s);
		control_destroy(s->ctl);
		s->ctl = NULL;
	}
}

/* DISCONNECT, then wait for the server to close: it has announced our
 * departure everywhere by then. A second signal stops the wait. */
static void disconnect(struct session *s)
{
	struct msg *m = proto_write_disconnect_req(s->p.name);

	for (size_t i = 0; i < s->nrooms; i++)
		room_set_leaving(s->rooms[i].room, 1);
	if (m && !control_closed(s->ctl) && control_send(s->ctl, m, PROTO_NONE) == 0)
		(void)session_wait(s, control_gone, s->ctl, DISCONNECT_TIMEOUT_MS);
	msg_unref(&m);
	remove_all_rooms(s);
}

int session_run(struct session *s)
{
	int rc = welcome(s, 0);

	if (rc == 0)
		rc = autojoin(s);
	for (;;) {
		if (rc == 0)
			rc = s->term ? term_loop(s) : command_loop(s);
		if (rc == -EINTR)
			rc = 0;
		if ((rc == -EPIPE || rc == -ECONNABORTED) && !s->p.no_reconnect) {
			rc = reconnect(s, rc);
			if (rc == -EINTR) { /* the user quit while we waited */
				if (s->ctl)
					disconnect(s);
				remove_all_rooms(s);
				return 0;
			}
			continue;
		}
		break;
	}
	if (rc == 0) {
		disconnect(s);
		return 0;
	}
	report_loss(s, rc);
	remove_all_rooms(s);
	return 1;
}

/* ---- set-up ----------------------------------------------------------------------- */

static int take_signals(struct session *s)
{
	struct sigaction ign = { .sa_handler = SIG_IGN };
	sigset_t set;

	/* Peer closes show up as EPIPE from send(2), and a closed stdout as
	 * failed writes, instead of killing us. */
	sigaction(SIGPIPE, &ign, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		return -EINVAL;
	s->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return s->sigfd < 0 ? -errno : 0;
}

/* Tab completion's room names: joined rooms, then the last room list. */
static const char *room_at(void *arg, size_t i)
{
	struct session *s = arg;

	if (i < s->nrooms)
		return room_name(s->rooms[i].room);
	i -= s->nrooms;
	return i < s->listed.nentries ? s->listed.entries[i].name : NULL;
}

/* The prompt: the current room, then the others' activity. */
static void make_prompt(void *arg, char *buf, size_t cap)
{
	struct session *s = arg;
	struct activity_item items[PROMPT_ROOMS_MAX];
	size_t n = 0;

	for (size_t i = 0; i < s->nrooms && n < PROMPT_ROOMS_MAX; i++) {
		if ((long)i == s->cur)
			continue;
		items[n].name = room_name(s->rooms[i].room);
		room_activity(s->rooms[i].room, &items[n].unread, &items[n].mentioned);
		n++;
	}
	activity_prompt(buf, cap, s->cur >= 0 ? room_name(s->rooms[s->cur].room) : NULL, items, n);
}

/* Alt-N: the N-th room joined becomes current (the prompt says so). */
static void room_key(void *arg, int n)
{
	struct session *s = arg;

	if (n >= 1 && (size_t)n <= s->nrooms)
		session_set_current(s, n - 1);
}

int session_create(const struct session_params *p, int fd, struct session **out)
{
	struct session *s = calloc(1, sizeof(*s));
	int rc;

	if (!s) {
		close(fd);
		return -ENOMEM;
	}
	s->p = *p;
	s->sigfd = -1;
	s->cur = -1;
	srandom((unsigned)time(NULL) ^ (unsigned)getpid()); /* back-off jitter */
	rc = take_signals(s);
	if (rc == 0)
		rc = notify_create(p->name, &s->note);
	/* Line editing only when both ends are a terminal; a pipe on either
	 * side keeps the deterministic line mode. The editor is made before
	 * the reader thread starts (it sets the locale). */
	if (rc == 0 && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO))
		rc = term_create("> ", room_at, s, s->note, &s->term);
	if (rc == 0 && s->term)
		term_set_hooks(s->term, make_prompt, room_key, s);
	if (rc == -ENOTTY)
		rc = 0; /* libedit cannot drive it: plain lines then */
	if (rc == 0 && !s->term)
		rc = input_create(STDIN_FILENO, SESSION_MAX_LINE, &s->in);
	if (rc == 0)
		rc = control_create(fd, s->note, &s->p.tls, &s->ctl);
	else
		close(fd);
	if (rc < 0) {
		session_destroy(s);
		return rc;
	}
	*out = s;
	return 0;
}

void session_destroy(struct session *s)
{
	if (!s)
		return;
	remove_all_rooms(s);
	free(s->rooms);
	control_destroy(s->ctl);
	/* After the readers are joined: what they queued is printed now. */
	term_destroy(s->term);
	input_destroy(s->in);
	control_reply_fini(&s->listed);
	free(s->server_id);
	notify_destroy(s->note);
	if (s->sigfd >= 0)
		close(s->sigfd);
	free(s);
}

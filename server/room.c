/* room.c - a chatroom's thread: its listening port, its attached room
 * connections, and the relay of its traffic.
 *
 * Ownership: the room thread alone touches everything in struct room except
 * the mailbox (any thread posts) and the read-only name/ref/port/cfg. The
 * delivery list (members) mirrors the registry, updated from the mailbox in
 * order, so joins, leaves and messages reach everyone in one total order.
 * Members with an attached room connection get traffic from this thread;
 * the others through the acceptor, in one batch per loop pass. */
#include "room.h"
#include "acceptor.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "mailbox.h"
#include "msg.h"
#include "net.h"
#include "proto.h"
#include "store.h"

#include <errno.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

enum room_event_type { EV_ADD, EV_REMOVE, EV_RELAY, EV_HISTORY, EV_STOP };

struct room_event {
	struct mail mail;  /* mail.type is an enum room_event_type */
	long join_id;
	int ctl_fd;
	uint64_t ctl_id;
	struct msg *msg;
	struct msg *self; /* EV_REMOVE: the leaver's LEFT reply, or NULL */
	struct delivery_batch *answer; /* EV_REMOVE: room for self, preallocated */
	int record;       /* EV_RELAY: a member's message, kept in the history */
	char name[CONFIG_NAME_MAX + 1];
};

/* A message kept for HISTORY: the relayed CHAT frame itself (shared, not
 * copied) and where its name and text lie in it. */
struct hist_entry {
	struct msg *frame;
	time_t when;
	size_t name_off, name_len, text_off, text_len;
};

struct member {
	long join_id;
	char name[CONFIG_NAME_MAX + 1];
	int ctl_fd;
	uint64_t ctl_id;
	struct conn *attached; /* NULL: delivered over the control connection */
};

struct room {
	/* read-only after room_start */
	const struct config *cfg;
	struct acceptor *acc;
	struct store *store; /* NULL: persistence off */
	char name[CONFIG_NAME_MAX + 1];
	long ref;
	unsigned port;
	pthread_t thread;
	struct mailbox mbox; /* the only field other threads touch */
	struct room_event stop_event;
	int stop_posted;     /* acceptor thread only */
	atomic_int exited;   /* set by the room thread as its last act */
	atomic_int kept;     /* a member's message was ever kept in the history:
			      * set by room_relay (the caller's thread) and by
			      * the room thread (room-port CHAT, loaded history) */
	/* room thread only */
	int lfd, epfd;
	int stopping;
	struct member *members;
	size_t nmembers, members_cap;
	struct conn *dirty;           /* conns with output queued this pass */
	struct conn **conns;          /* every room connection */
	size_t nconns, conns_cap;
	struct delivery_batch *batch; /* for the acceptor, this pass */
	long max_conns;               /* room connections at most */
	int listen_paused;            /* out of descriptors: accept later */
	uint64_t resume_ms;           /* when to accept again */
	uint64_t next_sweep_ms;
	struct throttle_list throttled; /* room conns out of tokens */
	struct msg_arena arena;         /* blocks the relayed CHATs are carved from */
	struct hist_entry *hist;        /* ring of the last hist_cap messages */
	size_t hist_cap, hist_head, hist_count;
};

/* epoll data.ptr markers for the two descriptors that are not conns. */
static char listen_marker, mailbox_marker;

#define ROOM_EVENTS 64
/* Relayed CHATs are carved from blocks this big: about a hundred typical
 * messages, one loop pass of a busy room. */
#define ROOM_BLOCK_BYTES 16384
/* A room connection must attach within this time; an unattached one does
 * nothing but hold a descriptor. */
#define ROOM_ATTACH_TIMEOUT_MS 10000
#define ROOM_SWEEP_MS 500
#define ROOM_ACCEPT_PAUSE_MS 250
#define ROOM_STOP_FLUSH_MS 700 /* part of the daemon's 2 s shutdown budget */

/* ---- posting (any thread) ---- */

static void post_event(struct room *r, struct room_event *ev, int type, long join_id,
		       const char *name, int ctl_fd, uint64_t ctl_id, struct msg *m)
{
	ev->mail.type = type;
	ev->join_id = join_id;
	ev->ctl_fd = ctl_fd;
	ev->ctl_id = ctl_id;
	ev->msg = m;
	if (name)
		snprintf(ev->name, sizeof(ev->name), "%s", name);
	mailbox_post(&r->mbox, &ev->mail);
}

int room_add_member(struct room *r, long join_id, const char *name, int ctl_fd,
		    uint64_t ctl_id, struct msg *announce, struct room_event **leave)
{
	struct room_event *ev = calloc(1, sizeof(*ev));

	/* The leave event and the batch for its answer are allocated now, so
	 * that leaving cannot fail and a LEAVE is always answered. */
	*leave = calloc(1, sizeof(**leave));
	if (*leave)
		(*leave)->answer = delivery_batch_create(1);
	if (!ev || !*leave || !(*leave)->answer) {
		free(ev);
		room_event_free(*leave);
		*leave = NULL;
		msg_unref(&announce);
		return -ENOMEM;
	}
	post_event(r, ev, EV_ADD, join_id, name, ctl_fd, ctl_id, announce);
	return 0;
}

void room_remove_member(struct room *r, struct room_event *leave, long join_id, int ctl_fd,
			uint64_t ctl_id, struct msg *announce, struct msg *self)
{
	leave->self = self;
	post_event(r, leave, EV_REMOVE, join_id, NULL, ctl_fd, ctl_id, announce);
}

void room_event_free(struct room_event *ev)
{
	if (ev)
		delivery_free(ev->answer);
	free(ev);
}

int room_relay(struct room *r, struct msg *m, int record)
{
	struct room_event *ev = calloc(1, sizeof(*ev));

	if (!ev) {
		msg_unref(&m);
		return -ENOMEM;
	}
	ev->record = record;
	/* Set now, not when the room thread gets to it, so that a leave
	 * right after a CHAT sees the room has history. */
	if (record && r->hist_cap > 0)
		atomic_store(&r->kept, 1);
	post_event(r, ev, EV_RELAY, 0, NULL, -1, 0, m);
	return 0;
}

int room_history(struct room *r, long join_id, int ctl_fd, uint64_t ctl_id)
{
	struct room_event *ev = calloc(1, sizeof(*ev));

	if (!ev)
		return -ENOMEM;
	post_event(r, ev, EV_HISTORY, join_id, NULL, ctl_fd, ctl_id, NULL);
	return 0;
}

unsigned room_port(const struct room *r) { return r->port; }

/* ---- members and connections (room thread) ---- */

static struct member *find_member(struct room *r, long join_id)
{
	for (size_t i = 0; i < r->nmembers; i++)
		if (r->members[i].join_id == join_id)
			return &r->members[i];
	return NULL;
}

static void mark_dirty(struct room *r, struct conn *c)
{
	if (!c->dirty) {
		c->dirty = 1;
		c->next_dirty = r->dirty;
		r->dirty = c;
	}
}

static void detach(struct room *r, struct conn *c)
{
	struct member *m = c->attached_id ? find_member(r, c->attached_id) : NULL;

	if (m && m->attached == c)
		m->attached = NULL; /* back to delivery over the control connection */
	c->attached_id = 0;
}

/* Stop using c: it is detached from its member at once, what it has queued
 * is written (with cut_off, only a partly written frame is finished), then
 * it is closed, within CONN_CLOSE_GRACE_MS. */
static void close_conn(struct room *r, struct conn *c, int cut_off)
{
	detach(r, c);
	conn_begin_close(c, cut_off);
	mark_dirty(r, c);
}

static void deliver(struct room *r, struct member *m, struct msg *msg)
{
	if (m->attached) {
		struct conn *c = m->attached;
		if (c->closing)
			return;
		if (conn_queue(c, msg) < 0) {
			log_warn("room %s: %s (%s) is not reading: room connection cut off",
				 r->name, m->name, c->peer);
			close_conn(r, c, 1);
			return;
		}
		mark_dirty(r, c);
		return;
	}
	if (delivery_add(&r->batch, msg, m->ctl_fd, m->ctl_id, m->join_id, 0) < 0)
		log_error("room %s: out of memory: a message to %s was dropped", r->name, m->name);
}

static void broadcast(struct room *r, struct msg *msg)
{
	for (size_t i = 0; i < r->nmembers; i++)
		deliver(r, &r->members[i], msg);
}

static void add_member(struct room *r, const struct room_event *ev)
{
	struct member *m;

	if (r->nmembers == r->members_cap) {
		size_t ncap = r->members_cap ? r->members_cap * 2 : 8;
		m = realloc(r->members, ncap * sizeof(*m));
		if (!m) {
			log_error("room %s: out of memory: %s will receive nothing", r->name, ev->name);
			return;
		}
		r->members = m;
		r->members_cap = ncap;
	}
	m = &r->members[r->nmembers++];
	memset(m, 0, sizeof(*m));
	m->join_id = ev->join_id;
	snprintf(m->name, sizeof(m->name), "%s", ev->name);
	m->ctl_fd = ev->ctl_fd;
	m->ctl_id = ev->ctl_id;
}

static void remove_member(struct room *r, struct room_event *ev)
{
	struct member *m = find_member(r, ev->join_id);

	/* The answer goes even if the member is unknown here (its add failed
	 * for lack of memory): the leaver's connection waits for it. It
	 * follows everything relayed to the leaver before. */
	if (ev->self) {
		if (r->batch)
			acceptor_deliver(r->acc, r->batch);
		r->batch = NULL;
		delivery_add(&ev->answer, ev->self, ev->ctl_fd, ev->ctl_id, ev->join_id, 1);
		acceptor_deliver(r->acc, ev->answer);
		ev->answer = NULL;
	}
	if (!m)
		return;
	/* What was relayed to it before the leave still goes out, then the
	 * room connection closes. */
	if (m->attached)
		close_conn(r, m->attached, 0);
	*m = r->members[--r->nmembers];
}

/* Keep a CHAT frame ("CHAT: ref\nCLIENT_NAME: n\nMESSAGE: t\n\n", our own
 * bytes) of time when in the history ring, dropping the oldest when full.
 * Returns the entry, or NULL when nothing is kept. */
static const struct hist_entry *history_keep(struct room *r, struct msg *frame, time_t when)
{
	static const char name_key[] = "\nCLIENT_NAME: ", text_key[] = "\nMESSAGE: ";
	/* memmem: a frame carved from a block is not NUL-terminated. */
	const char *name = memmem(frame->data, frame->len, name_key, sizeof(name_key) - 1), *text;
	struct hist_entry *e;

	if (r->hist_cap == 0 || !name)
		return NULL;
	name += sizeof(name_key) - 1;
	text = memmem(name, frame->len - (size_t)(name - frame->data), text_key, sizeof(text_key) - 1);
	if (!text || frame->len < 2)
		return NULL;
	text += sizeof(text_key) - 1;
	if (r->hist_count == r->hist_cap) {
		msg_unref(&r->hist[r->hist_head].frame);
		r->hist_head = (r->hist_head + 1) % r->hist_cap;
		r->hist_count--;
	}
	e = &r->hist[(r->hist_head + r->hist_count++) % r->hist_cap];
	e->frame = msg_ref(frame);
	e->when = when;
	e->name_off = (size_t)(name - frame->data);
	e->name_len = (size_t)(text - (sizeof(text_key) - 1) - name);
	e->text_off = (size_t)(text - frame->data);
	e->text_len = frame->len - 2 - e->text_off; /* the frame ends in "\n\n" */
	return e;
}

/* A member's message just relayed: keep it, and hand it to the store's
 * writer (a queue append under a short lock: never the disk). */
static void history_record(struct room *r, struct msg *frame)
{
	const struct hist_entry *e = history_keep(r, frame, time(NULL));

	if (e)
		atomic_store(&r->kept, 1);
	if (e && r->store)
		store_append(r->store, r->ref, (long)r->hist_cap, e->frame, e->name_off, e->name_len,
			     e->text_off, e->text_len, e->when);
}

static void history_loaded(void *arg, time_t when, const char *name, const char *text)
{
	struct room *r = arg;
	struct msg *frame = proto_write_chat(r->ref, name, text);

	if (frame && history_keep(r, frame, when))
		atomic_store(&r->kept, 1);
	msg_unref(&frame);
}

/* Refill the ring from the store (the room's last messages before a
 * restart, or before it last closed). Runs first on the room thread, so
 * requests posted meanwhile wait in the mailbox and come after it. */
static void history_load(struct room *r)
{
	if (r->store && r->hist_cap > 0)
		store_load_history(r->store, r->ref, (long)r->hist_cap, history_loaded, r);
}

/* Format history entry i (0 = oldest) into dst; its length (like snprintf). */
static size_t history_format(const struct room *r, size_t i, char *dst, size_t cap)
{
	const struct hist_entry *e = &r->hist[(r->hist_head + i) % r->hist_cap];
	char when[32];
	struct tm tm;

	gmtime_r(&e->when, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return proto_fmt_history_entry(dst, cap, when, e->frame->data + e->name_off, e->name_len,
				       e->frame->data + e->text_off, e->text_len);
}

/* Answer a member's HISTORY on its control connection: one frame with the
 * head and every kept entry, oldest first. */
static void history_reply(struct room *r, const struct room_event *ev)
{
	struct msg *head = proto_write_history_head(r->ref, (long)r->hist_count), *out = NULL;
	size_t total = head ? head->len : 0, off;

	for (size_t i = 0; i < r->hist_count; i++)
		total += history_format(r, i, NULL, 0);
	if (head)
		out = msg_new(total);
	if (out) {
		memcpy(out->data, head->data, head->len);
		off = head->len;
		for (size_t i = 0; i < r->hist_count; i++)
			off += history_format(r, i, out->data + off, total + 1 - off);
	}
	if (!out || delivery_add(&r->batch, out, ev->ctl_fd, ev->ctl_id, ev->join_id, 0) < 0)
		log_error("room %s: out of memory answering a HISTORY request", r->name);
	msg_unref(&head);
	msg_unref(&out);
}

static void handle_mail(struct room *r)
{
	struct mail *all = mailbox_take_all(&r->mbox), *next;

	for (; all; all = next) {
		struct room_event *ev = (struct room_event *)all;
		next = all->next;
		switch (ev->mail.type) {
		case EV_ADD:
			add_member(r, ev);
			break;
		case EV_REMOVE:
			remove_member(r, ev);
			break;
		case EV_HISTORY:
			if (find_member(r, ev->join_id))
				history_reply(r, ev);
			break;
		case EV_STOP:
			r->stopping = 1;
			break;
		default:
			break;
		}
		if (ev->msg)
			broadcast(r, ev->msg);
		if (ev->msg && ev->record)
			history_record(r, ev->msg);
		msg_unref(&ev->msg);
		msg_unref(&ev->self);
		if (ev != &r->stop_event)
			room_event_free(ev);
	}
}

static int track_conn(struct room *r, struct conn *c)
{
	struct epoll_event ee = { .events = EPOLLIN, .data.ptr = c };

	if (r->nconns == r->conns_cap) {
		size_t ncap = r->conns_cap ? r->conns_cap * 2 : 8;
		struct conn **nc = realloc(r->conns, ncap * sizeof(*nc));
		if (!nc)
			return -ENOMEM;
		r->conns = nc;
		r->conns_cap = ncap;
	}
	if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, c->fd, &ee) < 0)
		return -errno;
	c->ev_mask = EPOLLIN;
	r->conns[r->nconns++] = c;
	return 0;
}

static void drop_conn(struct room *r, struct conn *c)
{
	throttle_remove(&r->throttled, c);
	detach(r, c);
	for (size_t i = 0; i < r->nconns; i++) {
		if (r->conns[i] == c) {
			r->conns[i] = r->conns[--r->nconns];
			break;
		}
	}
	conn_destroy(c); /* close() also removes it from the epoll set */
}

/* Out of descriptors: stop accepting for a moment instead of spinning on a
 * listener that stays readable. */
static void pause_accepting(struct room *r, int err)
{
	struct epoll_event ee = { .events = 0, .data.ptr = &listen_marker };

	if (r->listen_paused)
		return;
	log_error("room %s: accept: %s: pausing new room connections", r->name, strerror(-err));
	if (epoll_ctl(r->epfd, EPOLL_CTL_MOD, r->lfd, &ee) == 0) {
		r->listen_paused = 1;
		r->resume_ms = conn_clock_ms() + ROOM_ACCEPT_PAUSE_MS;
	}
}

static void accept_all(struct room *r)
{
	char peer[NET_ADDRSTRLEN];
	int fd;

	while ((fd = net_accept(r->lfd, peer, sizeof(peer))) >= 0) {
		struct conn *c;

		if ((long)r->nconns >= r->max_conns) {
			log_warn("room %s: %s refused: %ld room connections", r->name, peer, r->max_conns);
			conn_refuse(fd, PROTO_E_SERVER_FULL, "too many room connections");
			continue;
		}
		c = conn_create(fd, peer, r->cfg);
		if (!c || track_conn(r, c) < 0) {
			log_error("room %s: cannot take a connection from %s: out of resources", r->name, peer);
			if (c)
				conn_destroy(c);
			else
				close(fd);
		}
	}
	if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM)
		pause_accepting(r, fd);
	else if (fd != -EAGAIN && fd != -ECONNABORTED)
		log_warn("room %s: accept: %s", r->name, strerror(-fd));
}

/* ---- requests on the room port ---- */

static void reply(struct room *r, struct conn *c, struct msg *m)
{
	if (conn_queue_take(c, m) < 0) {
		log_warn("room %s: %s is not reading its replies: closed", r->name, c->peer);
		close_conn(r, c, 1);
		return;
	}
	mark_dirty(r, c);
}

static void reply_error(struct room *r, struct conn *c, enum proto_err err, const char *detail)
{
	reply(r, c, proto_write_error(err, detail));
}

static void handle_attach(struct room *r, struct conn *c, const struct proto_msg *pm)
{
	long ref, id;
	struct member *m = NULL;

	if (proto_parse_int(pm->field[PROTO_F_ATTACH_REF], 1, 0x7fffffff, &ref) == 0 &&
	    proto_parse_int(pm->field[PROTO_F_ATTACH_ID], 1, 0x7fffffff, &id) == 0 &&
	    ref == r->ref)
		m = find_member(r, id);
	if (!m || strcmp(m->name, pm->field[PROTO_F_ATTACH_NAME]) != 0) {
		/* A wrong capability: nothing more from this connection. */
		log_info("room %s: attach refused for %s", r->name, c->peer);
		reply_error(r, c, PROTO_E_NOT_MEMBER, NULL);
		close_conn(r, c, 0);
		return;
	}
	if (c->attached_id && c->attached_id != id) {
		reply_error(r, c, PROTO_E_MALFORMED, "this connection is attached to another member");
		return;
	}
	if (m->attached && m->attached != c) {
		/* The capability holder re-attached: the old channel closes
		 * once what it holds is written. */
		close_conn(r, m->attached, 0);
	}
	m->attached = c;
	c->attached_id = id;
	reply(r, c, proto_write_attached(ref, id));
}

/* A member's CHAT as relayed, carved from the room's current block: the
 * frames of one burst lie end to end, and each member's queue sends them
 * as one piece. */
static struct msg *format_chat(struct room *r, const char *name, const char *text, size_t text_len)
{
	size_t max = PROTO_CHAT_OVERHEAD + strlen(name) + text_len;
	char *dst = msg_arena_reserve(&r->arena, max);

	if (!dst)
		return NULL;
	return msg_arena_take(&r->arena, proto_fmt_chat(dst, max + 1, r->ref, name, text));
}

static void handle_chat(struct room *r, struct conn *c, const struct proto_msg *pm)
{
	long ref, id;
	struct member *m;
	struct msg *out;

	if (proto_parse_int(pm->field[PROTO_F_CHAT_REF], 1, 0x7fffffff, &ref) < 0 ||
	    proto_parse_int(pm->field[PROTO_F_CHAT_ID], 1, 0x7fffffff, &id) < 0) {
		reply_error(r, c, PROTO_E_MALFORMED, "bad CHAT or JOIN_ID");
		return;
	}
	m = c->attached_id == id ? find_member(r, id) : NULL;
	if (ref != r->ref || !m || strcmp(m->name, pm->field[PROTO_F_CHAT_NAME]) != 0) {
		reply_error(r, c, PROTO_E_NOT_MEMBER, NULL);
		return;
	}
	if ((long)pm->len[PROTO_F_CHAT_TEXT] > r->cfg->max_message) {
		reply_error(r, c, PROTO_E_TOO_LARGE, "message too large");
		return;
	}
	out = format_chat(r, m->name, pm->field[PROTO_F_CHAT_TEXT], pm->len[PROTO_F_CHAT_TEXT]);
	if (!out) {
		reply_error(r, c, PROTO_E_SERVER, "out of memory");
		return;
	}
	broadcast(r, out);
	history_record(r, out);
	msg_unref(&out);
}

static void handle_request(struct room *r, struct conn *c, const struct proto_msg *pm)
{
	switch (pm->kind) {
	case PROTO_ATTACH:
		handle_attach(r, c, pm);
		break;
	case PROTO_CHAT:
		handle_chat(r, c, pm);
		break;
	default:
		reply_error(r, c, PROTO_E_MALFORMED, "not a room port request");
		break;
	}
}

static void on_request(void *arg, struct conn *c, const struct proto_msg *pm)
{
	handle_request(arg, c, pm);
}

static void on_reject(void *arg, struct conn *c, enum proto_err err, int fatal)
{
	struct room *r = arg;

	reply_error(r, c, err, NULL);
	if (fatal) {
		log_warn("room %s: %s sent an over-long request: closed", r->name, c->peer);
		close_conn(r, c, 0);
	}
}

/* Handle the complete requests buffered for c, until it closes or runs out
 * of tokens. */
static void process_input(struct room *r, struct conn *c)
{
	const struct conn_handler h = { on_request, on_reject, NULL, r };

	conn_process(c, r->cfg, &r->throttled, &h);
	mark_dirty(r, c); /* the flush also sets its epoll interest */
}

/* Read what c sent and handle it. */
static void serve_input(struct room *r, struct conn *c)
{
	long n = conn_read(c);

	if (n == -EAGAIN)
		return;
	if (n <= 0) {
		close_conn(r, c, 1);
		return;
	}
	process_input(r, c);
}

static void resume_throttled(struct room *r)
{
	struct conn *c = throttle_take_due(&r->throttled, conn_clock_ms()), *next;

	for (; c; c = next) {
		next = c->next_throttled;
		process_input(r, c);
	}
}

/* Write what each conn has queued this pass (one writev per connection for
 * everything it got), then hand the acceptor its batch. */
static void flush_dirty(struct room *r)
{
	struct conn *c = r->dirty, *next;

	r->dirty = NULL;
	for (; c; c = next) {
		next = c->next_dirty;
		c->dirty = 0;
		if (conn_flush(c, r->epfd))
			drop_conn(r, c);
	}
	if (r->batch) {
		acceptor_deliver(r->acc, r->batch);
		r->batch = NULL;
	}
}

static void handle_event(struct room *r, struct epoll_event *ev)
{
	struct conn *c = ev->data.ptr;

	if (ev->data.ptr == &listen_marker) {
		accept_all(r);
		return;
	}
	if (ev->data.ptr == &mailbox_marker)
		return;
	if (ev->events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
		mark_dirty(r, c);
	if (c->throttled && (ev->events & (EPOLLHUP | EPOLLERR)))
		close_conn(r, c, 1);
	else if (!c->closing && !c->throttled && (ev->events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		serve_input(r, c);
}

/* Deadlines: closing connections that do not drain, connections that never
 * attach, and a paused listener. Runs with the dirty list empty. */
static void sweep(struct room *r)
{
	uint64_t now = conn_clock_ms();

	if (now < r->next_sweep_ms)
		return;
	r->next_sweep_ms = now + ROOM_SWEEP_MS;
	for (size_t i = r->nconns; i-- > 0;) {
		struct conn *c = r->conns[i];
		if (c->closing && now - c->since_ms > CONN_CLOSE_GRACE_MS) {
			drop_conn(r, c);
		} else if (!c->throttled && conn_request_overdue(c, r->cfg, now)) {
			log_info("room %s: %s left a request incomplete: closed", r->name, c->peer);
			reply_error(r, c, PROTO_E_MALFORMED, "request incomplete for too long");
			close_conn(r, c, 0);
		} else if (!c->closing && !c->attached_id && now - c->since_ms > ROOM_ATTACH_TIMEOUT_MS) {
			log_info("room %s: %s did not attach in time: closed", r->name, c->peer);
			close_conn(r, c, 1);
		}
	}
	if (r->listen_paused && now >= r->resume_ms) {
		struct epoll_event ee = { .events = EPOLLIN, .data.ptr = &listen_marker };
		if (epoll_ctl(r->epfd, EPOLL_CTL_MOD, r->lfd, &ee) == 0)
			r->listen_paused = 0;
	}
	flush_dirty(r);
}

/* Shutdown: give queued output a bounded time to leave, then close all. */
static void drain_and_close(struct room *r)
{
	struct timespec t0, now;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		int pending = 0;
		for (size_t i = 0; i < r->nconns; i++) {
			struct conn *c = r->conns[i];
			if (!sendq_empty(&c->out) && sendq_flush(&c->out, c->fd) == -EAGAIN)
				pending = 1;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (!pending || (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 >
					ROOM_STOP_FLUSH_MS)
			break;
		struct timespec pause = { 0, 10 * 1000000 };
		nanosleep(&pause, NULL);
	}
	while (r->nconns > 0)
		drop_conn(r, r->conns[r->nconns - 1]);
}

static void *room_main(void *arg)
{
	struct room *r = arg;
	struct epoll_event evs[ROOM_EVENTS];
	char tname[16];

	snprintf(tname, sizeof(tname), "room-%ld", r->ref);
	pthread_setname_np(pthread_self(), tname);
	history_load(r);
	while (!r->stopping) {
		/* Only deadlines need a timeout; an idle room sleeps. */
		int timeout = r->nconns > 0 || r->listen_paused ? ROOM_SWEEP_MS : -1;
		int n = epoll_wait(r->epfd, evs, ROOM_EVENTS,
				   throttle_timeout(&r->throttled, conn_clock_ms(), timeout));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("room %s: epoll_wait: %s", r->name, strerror(errno));
			break;
		}
		/* Membership changes first: an attach may depend on them. */
		for (int i = 0; i < n; i++)
			if (evs[i].data.ptr == &mailbox_marker)
				handle_mail(r);
		for (int i = 0; i < n; i++)
			handle_event(r, &evs[i]);
		resume_throttled(r);
		flush_dirty(r);
		sweep(r);
	}
	drain_and_close(r);
	/* Release: everything the thread did happens-before the acceptor's
	 * acquire load, and its join. */
	atomic_store_explicit(&r->exited, 1, memory_order_release);
	return NULL;
}

int room_has_history(struct room *r)
{
	return atomic_load(&r->kept);
}

int room_exited(struct room *r)
{
	return atomic_load_explicit(&r->exited, memory_order_acquire);
}

/* ---- lifecycle (acceptor thread) ---- */

static int bind_room_port(const struct config *cfg, unsigned port, unsigned *bound)
{
	int fd = -EADDRINUSE;

	if (port == 0 && cfg->room_port_min > 0) {
		for (unsigned p = cfg->room_port_min; p <= cfg->room_port_max; p++) {
			fd = net_listen(cfg->bind, p, 128);
			if (fd >= 0 || fd != -EADDRINUSE)
				break;
		}
	} else {
		fd = net_listen(cfg->bind, port, 128);
	}
	if (fd >= 0)
		*bound = (unsigned)net_local_port(fd);
	return fd;
}

static void room_free(struct room *r)
{
	if (r->epfd >= 0)
		close(r->epfd);
	if (r->lfd >= 0)
		close(r->lfd);
	mailbox_fini(&r->mbox);
	for (size_t i = 0; i < r->hist_count; i++)
		msg_unref(&r->hist[(r->hist_head + i) % r->hist_cap].frame);
	free(r->hist);
	msg_arena_fini(&r->arena);
	free(r->members);
	free(r->conns);
	free(r);
}

struct room *room_start(const struct config *cfg, struct acceptor *acc, struct store *store,
			const char *name, long ref, unsigned port, long max_members, long history,
			int *err)
{
	struct room *r = calloc(1, sizeof(*r));
	struct epoll_event ee = { .events = EPOLLIN };
	pthread_attr_t attr;
	int rc;

	if (!r) {
		*err = -ENOMEM;
		return NULL;
	}
	r->cfg = cfg;
	r->acc = acc;
	r->store = store;
	r->ref = ref;
	r->lfd = r->epfd = -1;
	msg_arena_init(&r->arena, ROOM_BLOCK_BYTES);
	/* One per member, and room for members re-attaching. */
	r->max_conns = (max_members > 0 ? max_members : cfg->max_members) * 2 + 16;
	r->hist_cap = history > 0 ? (size_t)history : 0;
	r->hist = r->hist_cap ? calloc(r->hist_cap, sizeof(*r->hist)) : NULL;
	if (r->hist_cap && !r->hist) {
		free(r);
		*err = -ENOMEM;
		return NULL;
	}
	snprintf(r->name, sizeof(r->name), "%s", name);
	if ((rc = mailbox_init(&r->mbox)) < 0) {
		free(r);
		*err = rc;
		return NULL;
	}
	rc = bind_room_port(cfg, port, &r->port);
	if (rc < 0)
		goto fail;
	r->lfd = rc;
	r->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (r->epfd < 0) {
		rc = -errno;
		goto fail;
	}
	ee.data.ptr = &listen_marker;
	if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->lfd, &ee) < 0) {
		rc = -errno;
		goto fail;
	}
	ee.data.ptr = &mailbox_marker;
	if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->mbox.efd, &ee) < 0) {
		rc = -errno;
		goto fail;
	}
	/* A room thread needs little stack: no recursion, small frames. */
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	rc = -pthread_create(&r->thread, &attr, room_main, r);
	pthread_attr_destroy(&attr);
	if (rc < 0)
		goto fail;
	return r;
fail:
	*err = rc;
	room_free(r);
	return NULL;
}

void room_request_stop(struct room *r)
{
	/* The stop event lives in the room, so stopping cannot fail. */
	if (!r->stop_posted) {
		r->stop_posted = 1;
		post_event(r, &r->stop_event, EV_STOP, 0, NULL, -1, 0, NULL);
	}
}

void room_stop(struct room *r)
{
	room_request_stop(r);
	pthread_join(r->thread, NULL);
	if (r->batch)
		acceptor_deliver(r->acc, r->batch);
	room_free(r);
}

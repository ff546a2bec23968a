/* control.c - the control connection: requests out, replies and CHAT in.
 *
 * Owns the control socket, its reader thread, the room names learned from
 * JOINED replies and the list reply being collected. The reader thread alone
 * reads the socket and touches the frame reader, the name table and the list;
 * the command thread alone writes requests.
 * lock guards the reply slot and the closed state, shared by both. Lines are
 * printed by the reader in stream order, so "joined ROOM" always precedes the
 * announcement that follows it on the wire. */
#include "control.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "frame_reader.h"
#include "msg.h"
#include "net.h"
#include "notify.h"
#include "output.h"
#include "tlsconn.h"
#include "seqtrack.h"

/* A write that cannot finish in this time means the daemon stopped reading;
 * better to fail than to hang the command thread (and Ctrl-C) forever. */
#define CONTROL_SEND_TIMEOUT_S 10

struct ref_name {
	long ref;
	char *name;
};

struct control {
	int fd;
	struct tlsconn *tls;       /* NULL: plain; set before the reader starts */
	int loopback;              /* immutable after create */
	struct notify *note;       /* not owned */
	pthread_t reader;
	struct frame_reader fr;    /* reader thread only */
	struct ref_name *names;    /* reader thread only: from JOINED replies */
	size_t nnames, capnames;
	struct control_reply list; /* reader thread only: the list reply being
				    * collected (kind PROTO_NONE: none) */
	long list_left;            /* its entries still to come */
	size_t list_cap;
	long next_seq;             /* reader thread only: the number a SEQ frame
				    * gave the CHAT that follows it (0: none) */
	pthread_mutex_t lock;      /* guards the fields below */
	enum proto_kind pending;   /* reply the command thread waits for */
	int have_reply;
	struct control_reply reply;
	int closed;                /* 0 up, 1 closed by peer, -errno */
};

void control_reply_fini(struct control_reply *r)
{
	free(r->room);
	free(r->server_ip);
	free(r->text);
	free(r->server_id);
	free(r->version);
	for (size_t i = 0; i < r->nentries; i++) {
		free(r->entries[i].name);
		free(r->entries[i].text);
		free(r->entries[i].time);
	}
	free(r->entries);
	memset(r, 0, sizeof(*r));
}

/* ---- reader thread --------------------------------------------------- */

static const char *name_of(const struct control *c, long ref)
{
	for (size_t i = 0; i < c->nnames; i++)
		if (c->names[i].ref == ref)
			return c->names[i].name;
	return NULL;
}

/* Remember ref's name. Growth is bounded by our own JOIN requests: only a
 * reply to one is recorded. Out of memory only loses the pretty name. */
static void name_set(struct control *c, long ref, const char *name)
{
	char *copy = strdup(name);

	if (!copy)
		return;
	for (size_t i = 0; i < c->nnames; i++) {
		if (c->names[i].ref == ref) {
			free(c->names[i].name);
			c->names[i].name = copy;
			return;
		}
	}
	if (c->nnames == c->capnames) {
		size_t ncap = c->capnames ? c->capnames * 2 : 8;
		struct ref_name *p = realloc(c->names, ncap * sizeof(*p));
		if (!p) {
			free(copy);
			return;
		}
		c->names = p;
		c->capnames = ncap;
	}
	c->names[c->nnames].ref = ref;
	c->names[c->nnames++].name = copy;
}

/* The room's name for printing, or "REF" when we never learned it. */
static const char *label_of(const struct control *c, const char *ref_text, long *ref)
{
	const char *name = NULL;

	if (proto_parse_int(ref_text, 0, LONG_MAX, ref) == 0)
		name = name_of(c, *ref);
	else
		*ref = -1;
	return name ? name : ref_text;
}

static enum proto_kind pending_kind(struct control *c)
{
	enum proto_kind k;

	pthread_mutex_lock(&c->lock);
	k = c->pending;
	pthread_mutex_unlock(&c->lock);
	return k;
}

static int is_pending(struct control *c, enum proto_kind kind)
{
	int yes;

	pthread_mutex_lock(&c->lock);
	yes = c->pending == kind || (kind == PROTO_R_ERROR && c->pending != PROTO_NONE);
	pthread_mutex_unlock(&c->lock);
	return yes;
}

/* Hand a reply to the command thread; dropped if it stopped waiting. */
static void deliver(struct control *c, struct control_reply *r)
{
	pthread_mutex_lock(&c->lock);
	if (c->pending != PROTO_NONE && !c->have_reply) {
		c->reply = *r;
		c->have_reply = 1;
		memset(r, 0, sizeof(*r));
	}
	pthread_mutex_unlock(&c->lock);
	control_reply_fini(r);
	notify_poke(c->note);
}

static int parse_joined(const struct proto_msg *m, struct control_reply *r)
{
	long port;

	r->kind = PROTO_R_JOINED;
	if (proto_parse_int(m->field[PROTO_F_JOINED_PORT], 1, 65535, &port) < 0 ||
	    proto_parse_int(m->field[PROTO_F_JOINED_REF], 0, LONG_MAX, &r->ref) < 0 ||
	    /* JOIN_ID from 0: classic servers count from 0. */
	    proto_parse_int(m->field[PROTO_F_JOINED_ID], 0, PROTO_ID_MAX, &r->join_id) < 0 ||
	    !*m->field[PROTO_F_JOINED_ROOM])
		return -EINVAL;
	r->port = (unsigned)port;
	r->room = strdup(m->field[PROTO_F_JOINED_ROOM]);
	r->server_ip = strdup(m->field[PROTO_F_JOINED_IP]);
	return r->room && r->server_ip ? 0 : -ENOMEM;
}

static void on_joined(struct control *c, const struct proto_msg *m)
{
	struct control_reply r = { 0 };
	int rc;

	if (!is_pending(c, PROTO_R_JOINED))
		return; /* late or unsolicited: nothing waits for it */
	rc = parse_joined(m, &r);
	if (rc < 0) {
		output_local("%s", rc == -ENOMEM ? "out of memory"
			     : "malformed JOINED_CHATROOM reply from the server");
		control_reply_fini(&r); /* kind becomes PROTO_NONE */
	} else {
		name_set(c, r.ref, r.room);
		output_joined(r.room, r.ref, r.port);
	}
	deliver(c, &r);
}

static void on_left(struct control *c, const struct proto_msg *m)
{
	struct control_reply r = { .kind = PROTO_R_LEFT };
	const char *name;

	if (!is_pending(c, PROTO_R_LEFT))
		return;
	if (proto_parse_int(m->field[PROTO_F_LEFT_ID], 0, PROTO_ID_MAX, &r.join_id) < 0)
		r.join_id = -1;
	name = label_of(c, m->field[PROTO_F_LEFT_REF], &r.ref);
	output_left(name);
	deliver(c, &r);
}

static void on_error(struct control *c, const struct proto_msg *m)
{
	struct control_reply r = { .kind = PROTO_R_ERROR };

	if (proto_parse_int(m->field[PROTO_F_ERROR_CODE], 0, LONG_MAX, &r.code) < 0)
		r.code = -1;
	if (pending_kind(c) != PROTO_R_WELCOME)
		output_server_error(r.code, m->field[PROTO_F_ERROR_TEXT]);
	notify_error(c->note, -1);
	if (is_pending(c, PROTO_R_ERROR))
		deliver(c, &r);
}

static void on_chat(struct control *c, const struct proto_msg *m)
{
	long ref;
	const char *room = label_of(c, m->field[PROTO_F_RCHAT_REF], &ref);
	long seq = c->next_seq;

	c->next_seq = 0;
	if (seq > 0 && ref > 0 && !seqtrack_live(ref, seq)) {
		notify_poke(c->note); /* a refill may be due */
		return; /* shown by a history, or held for a refill */
	}
	output_chat(room, m->field[PROTO_F_RCHAT_NAME], m->field[PROTO_F_RCHAT_TEXT]);
	notify_chat(c->note, ref, m->field[PROTO_F_RCHAT_NAME], m->field[PROTO_F_RCHAT_TEXT]);
}

/* ---- extension replies (reader thread) ----------------------------------- */

/* dup of s, or NULL with *oom set. */
static char *dup_field(const char *s, int *oom)
{
	char *d = strdup(s);

	if (!d)
		*oom = 1;
	return d;
}

/* A reply that failed: report it and wake the command thread with kind
 * PROTO_NONE, which it treats as "no answer". */
static void deliver_bad(struct control *c, struct control_reply *r, int oom, const char *what)
{
	output_local("%s", oom ? "out of memory" : what);
	control_reply_fini(r);
	deliver(c, r);
}

/* Does a LIMITS value hold the word "seq=1" (numbers given, §7.7)? */
static int limits_say_seq(const char *limits)
{
	const char *p = limits;

	while ((p = strstr(p, "seq=1")) != NULL) {
		if ((p == limits || p[-1] == ' ') && (p[5] == '\0' || p[5] == ' '))
			return 1;
		p += 5;
	}
	return 0;
}

static void on_welcome(struct control *c, const struct proto_msg *m)
{
	struct control_reply r = { .kind = PROTO_R_WELCOME };
	int oom = 0;

	if (!is_pending(c, PROTO_R_WELCOME))
		return;
	r.server_id = dup_field(m->field[PROTO_F_RWELCOME_ID], &oom);
	r.version = dup_field(m->field[PROTO_F_RWELCOME_VERSION], &oom);
	r.text = dup_field(m->field[PROTO_F_RWELCOME_TEXT], &oom);
	r.seq = limits_say_seq(m->field[PROTO_F_RWELCOME_LIMITS]);
	if (oom)
		deliver_bad(c, &r, oom, NULL);
	else
		deliver(c, &r);
}

static void on_private_sent(struct control *c, const struct proto_msg *m)
{
	struct control_reply r = { .kind = PROTO_R_PRIVATE_SENT };
	int oom = 0;

	if (!is_pending(c, PROTO_R_PRIVATE_SENT))
		return;
	if (proto_parse_int(m->field[PROTO_F_RPSENT_COUNT], 0, LONG_MAX, &r.count) < 0)
		r.count = -1;
	r.text = dup_field(m->field[PROTO_F_RPSENT_TO], &oom);
	if (oom)
		deliver_bad(c, &r, oom, NULL);
	else
		deliver(c, &r);
}

static void on_topic_set(struct control *c, const struct proto_msg *m)
{
	struct control_reply r = { .kind = PROTO_R_TOPIC_SET };
	int oom = 0;

	if (!is_pending(c, PROTO_R_TOPIC_SET))
		return;
	if (proto_parse_int(m->field[PROTO_F_RTOPIC_REF], 0, LONG_MAX, &r.ref) < 0)
		r.ref = -1;
	r.text = dup_field(m->field[PROTO_F_RTOPIC_TEXT], &oom);
	if (oom)
		deliver_bad(c, &r, oom, NULL);
	else
		deliver(c, &r);
}

static void list_reset(struct control *c)
{
	control_reply_fini(&c->list);
	c->list_left = 0;
	c->list_cap = 0;
}

/* A list head (ROOMS, MEMBERS, HISTORY): start collecting its entries, or
 * deliver at once when it announces none. A head nobody waits for is
 * skipped with its entries (they match no list in progress). */
static void on_list_head(struct control *c, const struct proto_msg *m, int count_field,
			 int ref_field)
{
	list_reset(c);
	if (!is_pending(c, m->kind))
		return;
	c->list.kind = m->kind;
	if (ref_field < 0 ||
	    proto_parse_int(m->field[ref_field], 0, LONG_MAX, &c->list.ref) < 0)
		c->list.ref = -1;
	if (proto_parse_int(m->field[count_field], 0, LONG_MAX, &c->list.count) < 0) {
		deliver_bad(c, &c->list, 0, "malformed list reply from the server");
		return;
	}
	c->list.total = -1;
	if (m->kind == PROTO_R_ROOMS &&
	    proto_parse_int(m->field[PROTO_F_RROOMS_TOTAL], 0, LONG_MAX, &c->list.total) < 0)
		c->list.total = -1;
	if (m->kind == PROTO_R_HISTORY_AFTER &&
	    (proto_parse_int(m->field[PROTO_F_RHISTA_FIRST], 0, LONG_MAX, &c->list.first) < 0 ||
	     proto_parse_int(m->field[PROTO_F_RHISTA_LAST], 0, LONG_MAX, &c->list.last) < 0)) {
		deliver_bad(c, &c->list, 0, "malformed list reply from the server");
		return;
	}
	c->list_left = c->list.count;
	if (c->list_left == 0)
		deliver(c, &c->list);
}

/* The entry kind that follows each list head. */
static enum proto_kind entry_kind(enum proto_kind head)
{
	switch (head) {
	case PROTO_R_ROOMS: return PROTO_R_ROOM;
	case PROTO_R_MEMBERS: return PROTO_R_MEMBER;
	case PROTO_R_HISTORY: return PROTO_R_ENTRY;
	case PROTO_R_HISTORY_AFTER: return PROTO_R_ENTRY;
	default: return PROTO_NONE;
	}
}

static int fill_entry(const struct proto_msg *m, struct control_entry *e)
{
	int oom = 0;
	long port;

	memset(e, 0, sizeof(*e));
	e->ref = e->members = -1;
	switch (m->kind) {
	case PROTO_R_ROOM:
		e->name = dup_field(m->field[PROTO_F_RROOM_NAME], &oom);
		e->text = dup_field(m->field[PROTO_F_RROOM_TOPIC], &oom);
		if (proto_parse_int(m->field[PROTO_F_RROOM_REF], 0, LONG_MAX, &e->ref) < 0)
			e->ref = -1;
		if (proto_parse_int(m->field[PROTO_F_RROOM_MEMBERS], 0, LONG_MAX, &e->members) < 0)
			e->members = -1;
		if (proto_parse_int(m->field[PROTO_F_RROOM_PORT], 0, 65535, &port) == 0)
			e->port = (unsigned)port;
		break;
	case PROTO_R_MEMBER:
		e->name = dup_field(m->field[PROTO_F_RMEMBER_NAME], &oom);
		break;
	default: /* PROTO_R_ENTRY */
		e->time = dup_field(m->field[PROTO_F_RENTRY_TIME], &oom);
		e->name = dup_field(m->field[PROTO_F_RENTRY_NAME], &oom);
		e->text = dup_field(m->field[PROTO_F_RENTRY_TEXT], &oom);
		break;
	}
	if (oom) {
		free(e->name);
		free(e->text);
		free(e->time);
		return -ENOMEM;
	}
	return 0;
}

static void on_list_entry(struct control *c, const struct proto_msg *m)
{
	struct control_reply *l = &c->list;

	if (l->kind == PROTO_NONE || c->list_left <= 0 || entry_kind(l->kind) != m->kind)
		return; /* not part of a list we collect */
	c->list_left--;
	if (l->nentries < CONTROL_MAX_ENTRIES) {
		if (l->nentries == c->list_cap) {
			size_t ncap = c->list_cap ? c->list_cap * 2 : 16;
			struct control_entry *p = realloc(l->entries, ncap * sizeof(*p));

			if (!p) {
				deliver_bad(c, l, 1, NULL);
				list_reset(c);
				return;
			}
			l->entries = p;
			c->list_cap = ncap;
		}
		if (fill_entry(m, &l->entries[l->nentries]) < 0) {
			deliver_bad(c, l, 1, NULL);
			list_reset(c);
			return;
		}
		l->nentries++;
	}
	if (c->list_left == 0) {
		deliver(c, l);
		list_reset(c);
	}
}

/* A SEQ frame: the number of the CHAT that follows (§7.7). */
static void on_seq(struct control *c, const struct proto_msg *m)
{
	if (proto_parse_int(m->field[PROTO_F_RSEQ_SEQ], 1, PROTO_SEQ_MAX, &c->next_seq) < 0)
		c->next_seq = 0;
}

/* A GAP notice (§7.7), on this connection or a room's: the room's live
 * messages wait for the command thread's refill. */
void control_on_gap(struct notify *note, const struct proto_msg *m)
{
	long ref;

	if (proto_parse_int(m->field[PROTO_F_RGAP_REF], 1, PROTO_ID_MAX, &ref) < 0)
		return;
	seqtrack_gap(ref);
	notify_poke(note);
}

static void on_gap(struct notify *note, const struct proto_msg *m)
{
	control_on_gap(note, m);
}

static void on_private_from(const struct proto_msg *m)
{
	output_private(m->field[PROTO_F_RPFROM_NAME], NULL, m->field[PROTO_F_RPFROM_TEXT]);
}

static void *reader_main(void *arg)
{
	struct control *c = arg;
	struct proto_msg m;
	int rc;

	while ((rc = frame_reader_next(&c->fr, &m)) > 0) {
		switch (m.kind) {
		case PROTO_R_CHAT: on_chat(c, &m); break;
		case PROTO_R_JOINED: on_joined(c, &m); break;
		case PROTO_R_LEFT: on_left(c, &m); break;
		case PROTO_R_ERROR: on_error(c, &m); break;
		case PROTO_R_WELCOME: on_welcome(c, &m); break;
		case PROTO_R_PRIVATE_SENT: on_private_sent(c, &m); break;
		case PROTO_R_PRIVATE_FROM: on_private_from(&m); break;
		case PROTO_R_TOPIC_SET: on_topic_set(c, &m); break;
		case PROTO_R_ROOMS: on_list_head(c, &m, PROTO_F_RROOMS_COUNT, -1); break;
		case PROTO_R_MEMBERS:
			on_list_head(c, &m, PROTO_F_RMEMBERS_COUNT, PROTO_F_RMEMBERS_REF);
			break;
		case PROTO_R_HISTORY:
			on_list_head(c, &m, PROTO_F_RHIST_COUNT, PROTO_F_RHIST_REF);
			break;
		case PROTO_R_HISTORY_AFTER:
			on_list_head(c, &m, PROTO_F_RHISTA_COUNT, PROTO_F_RHISTA_REF);
			break;
		case PROTO_R_SEQ: on_seq(c, &m); break;
		case PROTO_R_GAP: on_gap(c->note, &m); break;
		case PROTO_R_ROOM:
		case PROTO_R_MEMBER:
		case PROTO_R_ENTRY: on_list_entry(c, &m); break;
		default: break; /* HELO, ATTACHED: we never ask for them here */
		}
	}
	pthread_mutex_lock(&c->lock);
	c->closed = rc == 0 ? 1 : rc;
	pthread_mutex_unlock(&c->lock);
	notify_poke(c->note);
	return NULL;
}

/* ---- command thread ---------------------------------------------------- */

int control_create(int fd, struct notify *note, const struct tlsconn_opts *tls, struct control **out)
{
	struct timeval tv = { .tv_sec = CONTROL_SEND_TIMEOUT_S };
	char ip[NET_ADDRSTRLEN];
	struct control *c = calloc(1, sizeof(*c));
	int rc;

	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	c->fd = fd;
	c->note = note;
	c->loopback = net_local_ip(fd, ip, sizeof(ip)) == 0 && net_is_loopback(ip);
	if (tls && tls->on && (rc = tlsconn_start(fd, tls, CONTROL_SEND_TIMEOUT_S, &c->tls)) < 0) {
		close(fd);
		free(c);
		return rc;
	}
	/* Failure only loses the write timeout. */
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	frame_reader_init(&c->fr, fd);
	c->fr.tls = c->tls;
	pthread_mutex_init(&c->lock, NULL);
	rc = -pthread_create(&c->reader, NULL, reader_main, c);
	if (rc < 0) {
		frame_reader_fini(&c->fr);
		pthread_mutex_destroy(&c->lock);
		tlsconn_free(c->tls);
		close(fd);
		free(c);
		return rc;
	}
	(void)pthread_setname_np(c->reader, "roomc-control");
	*out = c;
	return 0;
}

void control_destroy(struct control *c)
{
	if (!c)
		return;
	/* Wakes the reader out of recv(2) even if the peer never closes. */
	shutdown(c->fd, SHUT_RDWR);
	pthread_join(c->reader, NULL);
	tlsconn_free(c->tls);
	close(c->fd);
	frame_reader_fini(&c->fr);
	for (size_t i = 0; i < c->nnames; i++)
		free(c->names[i].name);
	free(c->names);
	control_reply_fini(&c->list);
	control_reply_fini(&c->reply);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

int control_is_loopback(const struct control *c)
{
	return c->loopback;
}

int control_send(struct control *c, const struct msg *m, enum proto_kind expect)
{
	/* Pending before writing: the reply may beat write(2) back. */
	pthread_mutex_lock(&c->lock);
	c->pending = expect;
	c->have_reply = 0;
	control_reply_fini(&c->reply);
	pthread_mutex_unlock(&c->lock);
	if (c->tls)
		return tlsconn_write_all(c->tls, m->data, m->len);
	return net_write_all(c->fd, m->data, m->len);
}

int control_reply_ready(struct control *c)
{
	int ready;

	pthread_mutex_lock(&c->lock);
	ready = c->have_reply;
	pthread_mutex_unlock(&c->lock);
	return ready;
}

int control_take_reply(struct control *c, struct control_reply *out)
{
	int rc = -EAGAIN;

	pthread_mutex_lock(&c->lock);
	if (c->have_reply) {
		*out = c->reply;
		memset(&c->reply, 0, sizeof(c->reply));
		c->have_reply = 0;
		c->pending = PROTO_NONE;
		rc = 0;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

void control_cancel(struct control *c)
{
	pthread_mutex_lock(&c->lock);
	c->pending = PROTO_NONE;
	c->have_reply = 0;
	control_reply_fini(&c->reply);
	pthread_mutex_unlock(&c->lock);
}

int control_closed(struct control *c)
{
	int closed;

	pthread_mutex_lock(&c->lock);
	closed = c->closed;
	pthread_mutex_unlock(&c->lock);
	return closed;
}

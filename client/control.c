/* control.c - the control connection: requests out, replies and CHAT in.
 *
 * Owns the control socket, its reader thread, and the room names learned from
 * JOINED replies. The reader thread alone reads the socket and touches the
 * frame reader and the name table; the command thread alone writes requests.
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

/* A write that cannot finish in this time means the daemon stopped reading;
 * better to fail than to hang the command thread (and Ctrl-C) forever. */
#define CONTROL_SEND_TIMEOUT_S 10

/* JOIN_ID is a 31-bit integer; classic servers count from 0. */
#define CONTROL_MAX_ID 2147483647L

struct ref_name {
	long ref;
	char *name;
};

struct control {
	int fd;
	int loopback;              /* immutable after create */
	struct notify *note;       /* not owned */
	pthread_t reader;
	struct frame_reader fr;    /* reader thread only */
	struct ref_name *names;    /* reader thread only: from JOINED replies */
	size_t nnames, capnames;
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
	    proto_parse_int(m->field[PROTO_F_JOINED_ID], 0, CONTROL_MAX_ID, &r->join_id) < 0 ||
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
	if (proto_parse_int(m->field[PROTO_F_LEFT_ID], 0, CONTROL_MAX_ID, &r.join_id) < 0)
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
	output_server_error(r.code, m->field[PROTO_F_ERROR_TEXT]);
	notify_error(c->note, -1);
	if (is_pending(c, PROTO_R_ERROR))
		deliver(c, &r);
}

static void on_chat(struct control *c, const struct proto_msg *m)
{
	long ref;
	const char *room = label_of(c, m->field[PROTO_F_RCHAT_REF], &ref);

	output_chat(room, m->field[PROTO_F_RCHAT_NAME], m->field[PROTO_F_RCHAT_TEXT]);
	notify_chat(c->note, ref, m->field[PROTO_F_RCHAT_NAME], m->field[PROTO_F_RCHAT_TEXT]);
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

int control_create(int fd, struct notify *note, struct control **out)
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
	/* Failure only loses the write timeout. */
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	frame_reader_init(&c->fr, fd);
	pthread_mutex_init(&c->lock, NULL);
	rc = -pthread_create(&c->reader, NULL, reader_main, c);
	if (rc < 0) {
		frame_reader_fini(&c->fr);
		pthread_mutex_destroy(&c->lock);
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
	close(c->fd);
	frame_reader_fini(&c->fr);
	for (size_t i = 0; i < c->nnames; i++)
		free(c->names[i].name);
	free(c->names);
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

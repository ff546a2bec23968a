/* conn.c - the state of one client socket. Everything here runs on the
 * conn's owner thread only, so nothing is locked. */
#include "conn.h"
#include "config.h"
#include "log.h"
#include "msg.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Ids are never reused, so a stale reference to a closed conn whose fd
 * number was recycled is recognised. */
static atomic_uint_fast64_t next_conn_id = 1;

/* Bytes read per system call at most; also the slack above max_request
 * so the parser sees an over-long request before the buffer is full. */
#define CONN_READ_CHUNK 4096

uint64_t conn_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void conn_begin_close(struct conn *c, int cut_off)
{
	if (cut_off)
		sendq_drop_unstarted(&c->out);
	if (!c->closing) {
		c->closing = 1;
		c->since_ms = conn_clock_ms();
	}
}

struct conn *conn_create(int fd, const char *peer, const struct config *cfg)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fd = fd;
	c->since_ms = conn_clock_ms();
	c->id = atomic_fetch_add_explicit(&next_conn_id, 1, memory_order_relaxed);
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	buf_init(&c->in, (size_t)cfg->max_request + CONN_READ_CHUNK);
	proto_parser_init(&c->parser, PROTO_REQUESTS, (size_t)cfg->max_request);
	sendq_init(&c->out, (size_t)cfg->sendq_bytes);
	return c;
}

void conn_refuse(int fd, enum proto_err err, const char *detail)
{
	struct msg *m = proto_write_error(err, detail);

	/* Best effort: a fresh socket's buffer takes a short error frame. */
	if (m && send(fd, m->data, m->len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug("refusal not sent: %s", strerror(errno));
	msg_unref(&m);
	close(fd);
}

void conn_destroy(struct conn *c)
{
	if (!c)
		return;
	close(c->fd);
	buf_fini(&c->in);
	sendq_fini(&c->out);
	free(c->ms);
	free(c);
}

long conn_read(struct conn *c)
{
	long room = buf_reserve(&c->in, CONN_READ_CHUNK);
	ssize_t n;

	if (room < 0)
		return room;
	if (room == 0)
		return -ENOBUFS; /* cannot happen: the parser fails first */
	do {
		n = read(c->fd, c->in.data + c->in.len, (size_t)room);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	c->in.len += (size_t)n;
	return n;
}

int conn_queue(struct conn *c, struct msg *m)
{
	return sendq_push(&c->out, m);
}

int conn_queue_take(struct conn *c, struct msg *m)
{
	int rc = m ? sendq_push(&c->out, m) : -ENOMEM;

	msg_unref(&m);
	return rc;
}

struct membership *conn_membership(struct conn *c, long join_id)
{
	for (size_t i = 0; i < c->nms; i++)
		if (c->ms[i].join_id == join_id)
			return &c->ms[i];
	return NULL;
}

int conn_add_membership(struct conn *c, const struct membership *m, long max)
{
	struct membership *ms;

	if ((long)c->nms >= max)
		return -ENOSPC;
	ms = realloc(c->ms, (c->nms + 1) * sizeof(*ms));
	if (!ms)
		return -ENOMEM;
	c->ms = ms;
	c->ms[c->nms++] = *m;
	return 0;
}

void conn_remove_membership(struct conn *c, long join_id)
{
	for (size_t i = 0; i < c->nms; i++) {
		if (c->ms[i].join_id == join_id) {
			c->ms[i] = c->ms[--c->nms];
			return;
		}
	}
}

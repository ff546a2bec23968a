/* conn.c - the state of one client socket. Everything here runs on the
 * conn's owner thread only, so nothing is locked here (the per-address
 * table takes its own lock). Also the gap rule of a connection that asked
 * for sequence numbers (conn_queue): its numbered room messages are dropped
 * for a gap notice where another would be cut off. */
#include "conn.h"
#include "config.h"
#include "iptable.h"
#include "log.h"
#include "metrics.h"
#include "msg.h"
#include "proto.h"
#include "sendq.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
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
		sendq_drop_unstarted(&c->out, c->io.committed);
	if (!c->closing) {
		c->closing = 1;
		c->since_ms = conn_clock_ms();
	}
}

/* Slow c down for wait_ms: it handles nothing more and is not read until
 * then, so TCP back-pressure slows the sender and nothing is dropped. */
static void throttle(struct conn *c, struct throttle_list *throttled, long wait, long rate,
		     long burst, const char *whose)
{
	if (!c->throttle_logged) {
		c->throttle_logged = 1; /* once, not once a request */
		log_info("%s is over %s rate/burst (%ld/s, %ld): slowed down", c->peer, whose, rate,
			 burst);
	}
	throttle_add(throttled, c, wait);
}

/* Charge one handled request to c and to its address; the next one waits
 * for the later of the two debts. */
static void charge_request(struct conn *c, const struct config *cfg, struct throttle_list *throttled)
{
	uint64_t now = conn_clock_ms();
	long wait = conn_take_token(c, cfg, now);
	long ip_wait = c->ipe ? iptable_request_charge(c->ipt, c->ipe, now) : 0;

	if (ip_wait > wait)
		throttle(c, throttled, ip_wait, cfg->rate_per_ip, cfg->burst_per_ip, "its address's");
	else if (wait > 0)
		throttle(c, throttled, wait, cfg->rate, cfg->burst, "its");
	if (ip_wait > 0 || wait > 0)
		metrics_slowdown(ip_wait > wait ? METRICS_SLOW_ADDRESS : METRICS_SLOW_CONNECTION);
}

/* Hand a complete request to the owner and charge it to c's bucket. */
static void handle_message(struct conn *c, const struct config *cfg, struct throttle_list *throttled,
			   const struct conn_handler *h, const struct proto_msg *pm)
{
	unsigned long ignored = c->parser.ignored;

	if (ignored != c->ignored_logged) {
		c->ignored_logged = ignored; /* debug only: lab-era clients do this */
		log_debug("%s: request with unknown fields (ignored, %lu so far)", c->peer, ignored);
	}
	metrics_request();
	h->request(h->arg, c, pm);
	charge_request(c, cfg, throttled); /* the next request waits */
}

/* c stopped parsing for want of bytes while holding some: give it a quiet
 * deadline (one per connection), from now: its last read, or its resume
 * after a throttle or pause, during which it was not read (bytes waiting
 * in the socket then are no quiet period). */
static void quiet_arm(struct quiet_list *l, struct conn *c, const struct config *cfg)
{
	c->quiet_ms = conn_clock_ms() + (uint64_t)cfg->end_quiet_ms;
	if (!c->on_quiet) {
		c->on_quiet = 1;
		c->next_quiet = l->head;
		l->head = c;
	}
}

/* Another connection of c's address may have run up its debt: then c
 * handles nothing until it is repaid. */
static void address_debt(struct conn *c, const struct config *cfg, struct throttle_list *throttled)
{
	if (c->ipe && !c->closing && !c->throttled && c->in.len > 0) {
		long wait = iptable_request_wait(c->ipt, c->ipe, conn_clock_ms());
		if (wait > 0)
			throttle(c, throttled, wait, cfg->rate_per_ip, cfg->burst_per_ip, "its address's");
	}
}

void conn_process(struct conn *c, const struct config *cfg, struct throttle_list *throttled,
		  const struct conn_handler *h)
{
	size_t off = 0;
	int need_more = 0;
	int handled = 0;

	address_debt(c, cfg, throttled);
	while (!c->closing && !c->paused && !c->throttled && c->in.len > off &&
	       !(h->halted && h->halted(h->arg))) {
		struct proto_msg pm;
		size_t used;
		enum proto_err err;
		int fatal;
		enum proto_status st = proto_parse(&c->parser, c->in.data + off, c->in.len - off,
						   &pm, &used, &err, &fatal);
		if (st == PROTO_MESSAGE)
			handle_message(c, cfg, throttled, h, &pm);
		off += used;
		if (st == PROTO_ERROR)
			h->reject(h->arg, c, err, fatal);
		if (st == PROTO_NEED_MORE) {
			need_more = 1;
			break;
		}
		if (++handled == CONN_PASS_REQUESTS && c->in.len > off && !c->closing && !c->paused &&
		    !c->throttled) {
			/* Enough for one pass: the rest waits for the next
			 * (its owner resumes it at once), others go first. */
			throttle_add(throttled, c, 0);
			break;
		}
	}
	buf_consume(&c->in, off);
	/* The only cost for a client that terminates its requests: this test. */
	c->quiet_ms = 0;
	if (need_more && c->in.len > 0 && h->quiet && cfg->end_quiet_ms > 0 && !c->closing)
		quiet_arm(h->quiet, c, cfg);
}

void conn_process_quiet(struct conn *c, const struct config *cfg, struct throttle_list *throttled,
		       const struct conn_handler *h)
{
	struct proto_msg pm;
	size_t used = 0;

	address_debt(c, cfg, throttled);
	/* Paused, throttled or closing: the bytes wait for conn_process, which
	 * gives a new deadline. */
	if (c->closing || c->paused || c->throttled || c->in.len == 0 ||
	    (h->halted && h->halted(h->arg)))
		return;
	if (buf_reserve(&c->in, 1) <= 0) /* proto_finish's NUL after the last byte */
		return;
	if (proto_finish(&c->parser, c->in.data, c->in.len, &pm, &used) == PROTO_MESSAGE) {
		log_debug("%s: request ended by %ld ms of quiet", c->peer, cfg->end_quiet_ms);
		handle_message(c, cfg, throttled, h, &pm);
	}
	buf_consume(&c->in, used);
}

void quiet_remove(struct quiet_list *l, struct conn *c)
{
	struct conn **pp = &l->head;

	if (!c->on_quiet)
		return;
	while (*pp && *pp != c)
		pp = &(*pp)->next_quiet;
	if (*pp)
		*pp = c->next_quiet;
	c->on_quiet = 0;
}

struct conn *quiet_take_due(struct quiet_list *l, uint64_t now)
{
	struct conn **pp = &l->head, *due = NULL;

	while (*pp) {
		struct conn *c = *pp;
		if (c->quiet_ms == 0 || c->quiet_ms <= now) {
			*pp = c->next_quiet;
			c->on_quiet = 0;
			if (c->quiet_ms != 0) {
				c->quiet_ms = 0;
				c->next_quiet = due;
				due = c;
			}
		} else {
			pp = &c->next_quiet;
		}
	}
	return due;
}

int quiet_timeout(struct quiet_list *l, uint64_t now, int dflt)
{
	struct conn **pp = &l->head;
	long best = dflt;

	while (*pp) {
		struct conn *c = *pp;
		if (c->quiet_ms == 0) { /* completed since: drop it */
			*pp = c->next_quiet;
			c->on_quiet = 0;
			continue;
		}
		long left = c->quiet_ms > now ? (long)(c->quiet_ms - now) : 0;
		if (best < 0 || left < best)
			best = left;
		pp = &c->next_quiet;
	}
	return (int)best;
}

int conn_request_overdue(struct conn *c, const struct config *cfg, uint64_t now)
{
	if (c->in.len == 0 || c->closing) {
		c->partial_ms = 0;
		return 0;
	}
	if (c->partial_ms == 0)
		c->partial_ms = now;
	return cfg->request_timeout > 0 && now - c->partial_ms > (uint64_t)cfg->request_timeout * 1000;
}

long conn_take_token(struct conn *c, const struct config *cfg, uint64_t now)
{
	long full = cfg->burst * 1000;

	/* rate tokens a second = rate thousandths a millisecond. */
	if (now > c->refill_ms) {
		uint64_t gain = (now - c->refill_ms) * (uint64_t)cfg->rate;
		c->tokens = gain >= (uint64_t)(full - c->tokens) ? full : c->tokens + (long)gain;
		c->refill_ms = now;
	}
	/* The request was handled: it always costs a token. A balance below
	 * zero is a debt, repaid before the next request is read. */
	c->tokens -= 1000;
	if (c->tokens >= 0)
		return 0;
	return (-c->tokens + cfg->rate - 1) / cfg->rate;
}

void throttle_add(struct throttle_list *l, struct conn *c, long wait_ms)
{
	if (c->throttled)
		return;
	c->throttled = 1;
	c->resume_ms = conn_clock_ms() + (uint64_t)wait_ms;
	c->next_throttled = l->head;
	l->head = c;
}

void throttle_remove(struct throttle_list *l, struct conn *c)
{
	struct conn **pp = &l->head;

	if (!c->throttled)
		return;
	while (*pp && *pp != c)
		pp = &(*pp)->next_throttled;
	if (*pp)
		*pp = c->next_throttled;
	c->throttled = 0;
}

struct conn *throttle_take_due(struct throttle_list *l, uint64_t now)
{
	struct conn **pp = &l->head, *due = NULL;

	while (*pp) {
		struct conn *c = *pp;
		if (c->resume_ms <= now) {
			*pp = c->next_throttled;
			c->throttled = 0;
			c->next_throttled = due;
			due = c;
		} else {
			pp = &c->next_throttled;
		}
	}
	return due;
}

int throttle_timeout(const struct throttle_list *l, uint64_t now, int dflt)
{
	long best = dflt;

	for (const struct conn *c = l->head; c; c = c->next_throttled) {
		long left = c->resume_ms > now ? (long)(c->resume_ms - now) : 0;
		if (best < 0 || left < best)
			best = left;
	}
	return (int)best;
}

struct conn *conn_create(int fd, const char *peer, const struct config *cfg)
{
	return conn_create_size(fd, peer, cfg, sizeof(struct conn));
}

struct conn *conn_create_size(int fd, const char *peer, const struct config *cfg, size_t size)
{
	struct conn *c = calloc(1, size);

	if (!c)
		return NULL;
	c->fd = fd;
	c->tr = &transport_tcp;
	c->io = (struct transport_sock){ .fd = fd };
	c->since_ms = c->active_ms = c->read_ms = c->refill_ms = conn_clock_ms();
	c->tokens = cfg->burst * 1000;
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

	metrics_error(err);
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
	if (c->ipe)
		iptable_close(c->ipt, c->ipe, conn_clock_ms());
	c->tr->close(&c->io);
	buf_fini(&c->in);
	sendq_fini(&c->out);
	free(c);
}

long conn_read(struct conn *c)
{
	long room = buf_reserve(&c->in, CONN_READ_CHUNK);
	long n;

	if (room < 0)
		return room;
	if (room == 0)
		return -ENOBUFS; /* cannot happen: the parser fails first */
	n = c->tr->read(&c->io, c->in.data + c->in.len, (size_t)room);
	if (n <= 0)
		return n;
	c->in.len += (size_t)n;
	c->read_ms = conn_clock_ms(); /* for the quiet period; active_ms counts requests */
	return n;
}

int conn_flush(struct conn *c, int epfd)
{
	int rc = sendq_flush_via(&c->out, c->tr->writev, &c->io);
	unsigned mask;
	struct epoll_event ee;

	if ((rc < 0 && rc != -EAGAIN) || (rc == 0 && c->closing))
		return 1;
	mask = (c->paused || c->closing || c->throttled ? 0 : EPOLLIN) | (rc == -EAGAIN ? EPOLLOUT : 0);
	/* TLS: a read that must write first waits for writability, a write
	 * that must read first for readability (not for a writability that
	 * would wake the loop at once, again and again). */
	if ((c->io.flags & TRANSPORT_READ_WANTS_WRITE) && (mask & EPOLLIN))
		mask |= EPOLLOUT;
	if ((c->io.flags & TRANSPORT_WRITE_WANTS_READ) && rc == -EAGAIN)
		mask = (mask & ~(unsigned)EPOLLOUT) | EPOLLIN;
	ee = (struct epoll_event){ .events = mask, .data.ptr = c };
	if (c->ev_mask != mask && epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ee) == 0)
		c->ev_mask = mask;
	return 0;
}

/* The numbered messages one room lost in a gap. */
struct gap_range {
	long ref, first, last;
};

/* The rooms a gap drops messages of: one entry per room, at most one per
 * membership (bounded by max_rooms_per_client). */
struct gap {
	struct gap_range *r;
	size_t n, cap;
	int oom;
};

static void gap_note(struct gap *g, long ref, long seq)
{
	size_t i = 0;

	while (i < g->n && g->r[i].ref != ref)
		i++;
	if (i == g->n) {
		if (g->n == g->cap) {
			size_t ncap = g->cap ? g->cap * 2 : 4;
			struct gap_range *nr = realloc(g->r, ncap * sizeof(*nr));
			if (!nr) {
				g->oom = 1;
				return;
			}
			g->r = nr;
			g->cap = ncap;
		}
		g->r[g->n++] = (struct gap_range){ ref, seq, seq };
	}
	if (seq < g->r[i].first)
		g->r[i].first = seq;
	if (seq > g->r[i].last)
		g->r[i].last = seq;
}

/* Note the numbered messages of bytes data[0..len) (whole frames: what
 * one queued piece or message holds); 0 when it holds none. */
static int gap_note_bytes(struct gap *g, const char *data, size_t len)
{
	size_t at = 0, n;
	long ref, seq;

	if (!proto_is_numbered(data, len))
		return 0;
	while (at < len && (n = proto_numbered_next(data + at, len - at, &ref, &seq)) > 0) {
		gap_note(g, ref, seq);
		at += n;
	}
	return 1;
}

/* sendq_drop_unstarted_if's test: a piece of numbered room messages
 * (numbered frames lie in blocks of their own: a piece holds only them). */
static int drop_numbered(const struct sendq_piece *p, void *arg)
{
	return gap_note_bytes(arg, p->data, p->len);
}

/* data[0..len), numbered room messages, did not fit in c's queue: the gap
 * instead of the cut-off (conn.h). 0, or -ENOBUFS. */
static int queue_gap(struct conn *c, const char *data, size_t len)
{
	struct gap g = { NULL, 0, 0, 0 };
	int rc = 0;

	/* Nothing written since the last notice, which still waits: the
	 * client does not read at all, and no notice reaches it. */
	if (c->gap_mark && c->out.sent < c->gap_mark && c->out.sent == c->gap_sent)
		return -ENOBUFS;
	sendq_drop_unstarted_if(&c->out, c->io.committed, drop_numbered, &g);
	gap_note_bytes(&g, data, len);
	for (size_t i = 0; i < g.n && rc == 0; i++)
		rc = conn_queue_take(c, proto_write_gap(g.r[i].ref, g.r[i].first, g.r[i].last));
	if (g.oom || rc < 0) {
		log_error("%s: out of memory or queue space for a gap notice", c->peer);
		rc = -ENOBUFS;
	} else {
		log_warn("%s: send queue full: dropped the numbered messages of %zu room%s, gap "
			 "notice%s queued", c->peer, g.n, g.n == 1 ? "" : "s", g.n == 1 ? "" : "s");
		c->gap_mark = c->out.sent + c->out.bytes;
		c->gap_sent = c->out.sent;
	}
	free(g.r);
	return rc;
}

int conn_queue(struct conn *c, struct msg *m)
{
	int rc = sendq_push(&c->out, m);

	if (rc == -ENOBUFS && c->seq && proto_is_numbered(m->data, m->len))
		rc = queue_gap(c, m->data, m->len);
	return rc;
}

int conn_queue_slice(struct conn *c, struct msg *owner, const char *data, size_t len)
{
	int rc = sendq_push_slice(&c->out, owner, data, len);

	if (rc == -ENOBUFS && c->seq && proto_is_numbered(data, len))
		rc = queue_gap(c, data, len);
	return rc;
}

int conn_queue_take(struct conn *c, struct msg *m)
{
	int rc = m ? sendq_push(&c->out, m) : -ENOMEM;

	msg_unref(&m);
	return rc;
}

/* loop.c - one thread's event loop, written once for the acceptor and for
 * every room thread (see loop.h).
 *
 * Ownership: a loop and every connection it tracks belong to the thread
 * that runs loop_step() on it (the acceptor's, or one room's); it is set up
 * and torn down by whoever starts and joins that thread. Nothing here is
 * locked; the per-address table locks itself.
 *
 * At EMFILE (ENFILE, ENOBUFS, ENOMEM) a level-triggered listener would
 * stay readable and spin the loop: accepting pauses for
 * LOOP_ACCEPT_PAUSE_MS instead, the pending connections waiting in the
 * kernel's listen backlog. One policy for every loop, chosen over shedding
 * through a spare descriptor because it costs no descriptor per loop (a
 * spare per room thread would count against the limit main.c checks), has
 * no spare to race for between threads, and refuses nobody over a
 * shortage that lasts a moment.
 *
 * TLS (tls.c) is a transport like plain TCP; what the loop does for it: it
 * wraps every new connection when TLS is on (take_conn), polls for the
 * direction a TLS read or write waits for (the transport's flags), reads
 * again a connection whose transport holds decrypted input no epoll event
 * announces (serve_pending), and cuts a handshake that outlives
 * request_timeout (sweep_conn). */
#include "loop.h"
#include "iptable.h"
#include "log.h"
#include "msg.h"
#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define LOOP_EVENTS_MAX 128
/* Connections accepted per listener event at most, so established clients
 * are served too. */
#define LOOP_ACCEPT_BATCH 64
/* The drain's wait for writability between flushes. */
#define LOOP_DRAIN_WAIT_MS 20

int loop_init(struct loop *l, const struct config *cfg, const char *name,
	      enum metrics_conn_kind kind, struct iptable *ips, int max_events, int flags,
	      const struct loop_ops *ops, void *arg)
{
	*l = (struct loop){ .cfg = cfg, .ops = *ops, .arg = arg, .kind = kind, .ips = ips,
			    .max_events = max_events < LOOP_EVENTS_MAX ? max_events : LOOP_EVENTS_MAX };
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->conn_size = sizeof(struct conn);
	if (flags & LOOP_INDEX_FD) {
		l->by_fd = calloc(1024, sizeof(*l->by_fd));
		if (!l->by_fd) {
			l->epfd = -1;
			return -ENOMEM;
		}
		l->by_fd_cap = 1024;
	}
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	return l->epfd < 0 ? -errno : 0;
}

static void destroy_conn(struct loop *l, struct conn *c)
{
	struct conn *last = l->conns[--l->nconns];

	throttle_remove(&l->throttled, c);
	quiet_remove(&l->quiet, c);
	if (l->ops.destroy)
		l->ops.destroy(l->arg, c);
	last->slot = c->slot;
	l->conns[c->slot] = last;
	if (l->by_fd)
		l->by_fd[c->fd] = NULL;
	metrics_conn_close(l->kind);
	conn_destroy(c); /* close() also removes it from the epoll set */
}

void loop_fini(struct loop *l)
{
	while (l->nconns > 0)
		destroy_conn(l, l->conns[l->nconns - 1]);
	l->dirty = NULL;
	free(l->conns);
	free(l->by_fd);
	l->conns = l->by_fd = NULL;
	l->conns_cap = l->by_fd_cap = 0;
	if (l->epfd >= 0)
		close(l->epfd);
	l->epfd = -1;
}

static int watch_listeners(struct loop *l, int op, uint32_t events)
{
	for (size_t i = 0; l->lis && i < l->lis->n; i++) {
		struct epoll_event ee = { .events = events, .data.ptr = &l->listen_marks[i] };
		if (epoll_ctl(l->epfd, op, l->lis->fd[i], &ee) < 0)
			return -errno;
	}
	return 0;
}

int loop_listen(struct loop *l, const struct net_listeners *lis)
{
	l->lis = lis;
	return watch_listeners(l, EPOLL_CTL_ADD, EPOLLIN);
}

int loop_watch(struct loop *l, int fd, void *marker)
{
	struct epoll_event ee = { .events = EPOLLIN, .data.ptr = marker };

	if (l->nmarks == LOOP_MARKERS)
		return -ENOSPC;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ee) < 0)
		return -errno;
	l->marks[l->nmarks] = marker;
	l->mark_fds[l->nmarks++] = fd;
	return 0;
}

/* The listener a data.ptr names, or -1 (by equality: ordering unrelated
 * pointers is undefined). */
static int listener_of(const struct loop *l, const void *ptr)
{
	for (size_t i = 0; l->lis && i < l->lis->n; i++)
		if (ptr == &l->listen_marks[i])
			return (int)i;
	return -1;
}

static int is_marker(const struct loop *l, const void *ptr)
{
	for (size_t i = 0; i < l->nmarks; i++)
		if (ptr == l->marks[i])
			return 1;
	return 0;
}

/* ---- the connection set ---- */

static int index_fd(struct loop *l, int fd)
{
	size_t ncap = l->by_fd_cap;
	struct conn **nc;

	if ((size_t)fd < l->by_fd_cap)
		return 0;
	while (ncap <= (size_t)fd)
		ncap *= 2;
	nc = realloc(l->by_fd, ncap * sizeof(*nc));
	if (!nc)
		return -ENOMEM;
	memset(nc + l->by_fd_cap, 0, (ncap - l->by_fd_cap) * sizeof(*nc));
	l->by_fd = nc;
	l->by_fd_cap = ncap;
	return 0;
}

static int track_conn(struct loop *l, struct conn *c)
{
	struct epoll_event ee = { .events = EPOLLIN, .data.ptr = c };

	if (l->nconns == l->conns_cap) {
		size_t ncap = l->conns_cap ? l->conns_cap * 2 : 8;
		struct conn **nc = realloc(l->conns, ncap * sizeof(*nc));
		if (!nc)
			return -ENOMEM;
		l->conns = nc;
		l->conns_cap = ncap;
	}
	if (l->by_fd && index_fd(l, c->fd) < 0)
		return -ENOMEM;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, c->fd, &ee) < 0)
		return -errno;
	c->ev_mask = EPOLLIN;
	c->slot = l->nconns;
	l->conns[l->nconns++] = c;
	if (l->by_fd)
		l->by_fd[c->fd] = c;
	metrics_conn_open(l->kind);
	return 0;
}

void loop_mark_dirty(struct loop *l, struct conn *c)
{
	if (!c->dirty) {
		c->dirty = 1;
		c->next_dirty = l->dirty;
		l->dirty = c;
	}
}

void loop_close(struct loop *l, struct conn *c, int cut_off)
{
	conn_begin_close(c, cut_off);
	if (l->ops.closing)
		l->ops.closing(l->arg, c);
	loop_mark_dirty(l, c);
}

void loop_throttle(struct loop *l, struct conn *c, long wait_ms)
{
	throttle_add(&l->throttled, c, wait_ms);
}

/* ---- accepting ---- */

/* A conn for fd (taken over), counted against entry e of its address, and
 * tracked; NULL when it cannot be had (logged unless quiet; fd closed). */
static struct conn *take_conn(struct loop *l, int fd, const char *peer, struct ip_entry *e, int quiet)
{
	struct conn *c = conn_create_size(fd, peer, l->cfg, l->conn_size);

	if (c) {
		c->ipt = l->ips;
		c->ipe = e;
	}
	/* TLS on: every port speaks it (the transport tells plain clients
	 * apart in optional mode), counted and timed as any connection. */
	if (!c || tls_wrap(&c->tr, &c->io) < 0 || track_conn(l, c) < 0) {
		if (!quiet)
			log_error("%s: %s refused: out of resources", l->name, peer);
		if (c) {
			conn_destroy(c);
		} else {
			iptable_close(l->ips, e, conn_clock_ms());
			close(fd);
		}
		return NULL;
	}
	return c;
}

/* Count a new connection from peer against its address's limits, or
 * refuse it (error 7 over max_clients_per_ip, 9 over connect_rate_per_ip,
 * logged once per episode). The entry, or NULL (fd closed). */
static struct ip_entry *admit(struct loop *l, int fd, const char *peer)
{
	const struct config *cfg = l->cfg;
	struct ip_entry *e = NULL;
	int log_it;

	switch (iptable_open(l->ips, peer, conn_clock_ms(), &e, &log_it)) {
	case IP_OK:
		return e;
	case IP_TOO_MANY:
		if (log_it)
			log_warn("%s: %s refused: max_clients_per_ip (%ld) reached", l->name, peer,
				 cfg->max_clients_per_ip);
		metrics_refusal(METRICS_REFUSE_PER_IP);
		conn_refuse(fd, PROTO_E_SERVER_FULL, "too many connections from your address");
		return NULL;
	case IP_TOO_FAST:
		if (log_it)
			log_warn("%s: %s refused: over connect_rate_per_ip (%ld/s, %ld)", l->name, peer,
				 cfg->connect_rate_per_ip, cfg->connect_burst_per_ip);
		metrics_refusal(METRICS_REFUSE_CONNECT_RATE);
		conn_refuse(fd, PROTO_E_RATE, "too many connections from your address: slow down");
		return NULL;
	case IP_NOMEM:
		break;
	}
	log_error("%s: %s refused: out of memory", l->name, peer);
	close(fd);
	return NULL;
}

/* Out of descriptors (or memory): stop polling the listeners for a
 * moment instead of spinning on one that stays readable (see the top). */
static void pause_accepting(struct loop *l, int err)
{
	if (!l->accept_err_logged) {
		log_error("%s: accept: %s: pausing new connections", l->name, strerror(-err));
		l->accept_err_logged = 1;
	}
	if (!l->accept_paused && watch_listeners(l, EPOLL_CTL_MOD, 0) == 0) {
		l->accept_paused = 1;
		l->accept_resume_ms = conn_clock_ms() + LOOP_ACCEPT_PAUSE_MS;
	}
}

static void accept_one(struct loop *l, int fd, const char *peer)
{
	struct ip_entry *e;
	struct conn *c;

	if (l->max_conns > 0 && (long)l->nconns >= l->max_conns) {
		log_warn("%s: %s refused: max_clients (%ld) reached", l->name, peer, l->max_conns);
		metrics_refusal(METRICS_REFUSE_MAX_CLIENTS);
		conn_refuse(fd, PROTO_E_SERVER_FULL, "server full");
		return;
	}
	e = admit(l, fd, peer);
	c = e ? take_conn(l, fd, peer, e, 0) : NULL;
	if (!c)
		return;
	log_debug("%s: connection from %s (fd %d)", l->name, peer, fd);
	if (l->ops.accepted)
		l->ops.accepted(l->arg, c);
}

static void accept_all(struct loop *l, int lfd)
{
	char peer[NET_ADDRSTRLEN];
	int fd = -EAGAIN;

	for (int i = 0; i < LOOP_ACCEPT_BATCH && (fd = net_accept(lfd, peer, sizeof(peer))) >= 0; i++) {
		l->accept_err_logged = 0;
		accept_one(l, fd, peer);
	}
	if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM)
		pause_accepting(l, fd);
	else if (fd < 0 && fd != -EAGAIN && fd != -ECONNABORTED && fd != -EINVAL)
		log_warn("%s: accept: %s", l->name, strerror(-fd));
	/* EINVAL: a room's listener shut by room_request_stop() before its
	 * thread saw the stop; the room is retiring. */
}

struct conn *loop_adopt(struct loop *l, int fd, const char *peer)
{
	struct ip_entry *e = NULL;
	int log_it;

	if (iptable_open(l->ips, peer, conn_clock_ms(), &e, &log_it) != IP_OK) {
		close(fd);
		return NULL;
	}
	return take_conn(l, fd, peer, e, 1);
}

/* ---- requests ---- */

static void on_request(void *arg, struct conn *c, const struct proto_msg *pm)
{
	struct loop *l = arg;

	l->ops.request(l->arg, c, pm);
}

static void on_reject(void *arg, struct conn *c, enum proto_err err, int fatal)
{
	struct loop *l = arg;

	l->ops.reply_error(l->arg, c, err, NULL);
	if (fatal) {
		log_warn("%s: %s sent a request over %ld bytes: closed", l->name, c->peer,
			 l->cfg->max_request);
		loop_close(l, c, 0);
	}
}

static int on_halted(void *arg)
{
	struct loop *l = arg;

	return l->ops.halted && l->ops.halted(l->arg);
}

static struct conn_handler handler(struct loop *l)
{
	return (struct conn_handler){ on_request, on_reject, on_halted, l, &l->quiet };
}

void loop_process(struct loop *l, struct conn *c)
{
	const struct conn_handler h = handler(l);

	conn_process(c, l->cfg, &l->throttled, &h);
	if (c->closing)
		loop_close(l, c, 0); /* a handler gave up on it (full queue) */
	loop_mark_dirty(l, c);   /* the flush also sets its epoll interest */
}

/* Read what c sent and handle it. */
static void serve_input(struct loop *l, struct conn *c)
{
	long n = conn_read(c);

	if (n == -EAGAIN) {
		if (c->io.flags & TRANSPORT_WANTS)
			loop_mark_dirty(l, c); /* the flush polls for what TLS waits for */
		return;
	}
	if (n <= 0) {
		if (n == -EPROTONOSUPPORT) /* the transport told it why (error 10) */
			log_info("%s: %s: plain connection refused: [tls] mode is required", l->name,
				 c->peer);
		else if (n < 0 && n != -ECONNRESET)
			log_info("%s: %s: read: %s", l->name, c->peer, strerror((int)-n));
		loop_close(l, c, 1); /* an abrupt close is a disconnect */
		return;
	}
	loop_process(l, c);
}

static void conn_event(struct loop *l, struct conn *c, uint32_t events)
{
	/* A TLS read waiting to write, or a write waiting to read: the event
	 * may be for the other direction; a read or a write too many only
	 * says -EAGAIN. */
	if ((c->io.flags & TRANSPORT_WANTS) && (events & (EPOLLIN | EPOLLOUT)))
		events |= EPOLLIN | EPOLLOUT;
	if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
		loop_mark_dirty(l, c);
	if ((c->paused || c->throttled) && (events & (EPOLLHUP | EPOLLERR)))
		loop_close(l, c, 1); /* gone while waiting */
	else if (!c->closing && !c->paused && !c->throttled && !l->hold_input &&
		 (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		serve_input(l, c);
}

/* Connections whose transport holds bytes already taken off the socket
 * (the rest of a TLS record bigger than one read): no epoll event will come
 * for them, so they are read again here. A scan of the connections, but
 * only in a pass after a flush that found such a connection, which takes a
 * burst of more than a read buffer of TLS input. */
static void serve_pending(struct loop *l)
{
	if (!l->input_pending || l->hold_input)
		return;
	l->input_pending = 0;
	for (size_t i = 0; i < l->nconns; i++) {
		struct conn *c = l->conns[i];
		if ((c->ev_mask & EPOLLIN) && !c->closing && !c->paused && !c->throttled &&
		    (c->io.flags & TRANSPORT_PENDING_INPUT))
			serve_input(l, c);
	}
}

/* Throttled connections whose tokens are back: read them again, starting
 * with what they already sent. */
static void resume_throttled(struct loop *l)
{
	struct conn *c = throttle_take_due(&l->throttled, conn_clock_ms()), *next;

	for (; c; c = next) {
		next = c->next_throttled;
		loop_process(l, c); /* may throttle it again; the flush restores EPOLLIN */
	}
}

/* Connections whose partial request saw no byte for end_quiet_ms: a request
 * complete but for its terminator ends there (SPEC §2.4, lab-era clients). */
static void finish_quiet(struct loop *l)
{
	const struct conn_handler h = handler(l);
	struct conn *c = quiet_take_due(&l->quiet, conn_clock_ms()), *next;

	for (; c; c = next) {
		next = c->next_quiet;
		conn_process_quiet(c, l->cfg, &l->throttled, &h);
		if (c->closing)
			loop_close(l, c, 0);
		loop_mark_dirty(l, c);
	}
}

/* ---- output and deadlines ---- */

void loop_flush(struct loop *l)
{
	/* ops.flushed may process a connection, which marks it dirty again. */
	while (l->dirty) {
		struct conn *c = l->dirty, *next;

		l->dirty = NULL;
		for (; c; c = next) {
			next = c->next_dirty;
			c->dirty = 0;
			if (conn_flush(c, l->epfd)) {
				destroy_conn(l, c);
				continue;
			}
			if ((c->ev_mask & EPOLLIN) && (c->io.flags & TRANSPORT_PENDING_INPUT))
				l->input_pending = 1; /* serve_pending, next pass */
			if (l->ops.flushed)
				l->ops.flushed(l->arg, c);
		}
	}
	if (l->ops.flush_done)
		l->ops.flush_done(l->arg);
}

/* A TLS handshake is the connection's first request: it has
 * request_timeout to finish, from the accept (no error frame: there is no
 * channel to send one on). */
static int handshake_overdue(const struct loop *l, const struct conn *c, uint64_t now)
{
	return l->cfg->request_timeout > 0 && (c->io.flags & TRANSPORT_HANDSHAKING) &&
	       now - c->since_ms > (uint64_t)l->cfg->request_timeout * 1000;
}

/* The deadlines every connection has, then the role's (ops.expired). */
static void sweep_conn(struct loop *l, struct conn *c, uint64_t now)
{
	if (c->closing && now - c->since_ms > CONN_CLOSE_GRACE_MS) {
		log_info("%s: %s did not take its last bytes: closed", l->name, c->peer);
		destroy_conn(l, c);
	} else if (!c->closing && handshake_overdue(l, c, now)) {
		log_info("%s: %s did not finish its TLS handshake in %lds: closed", l->name, c->peer,
			 l->cfg->request_timeout);
		destroy_conn(l, c);
	} else if (!c->paused && !c->throttled && conn_request_overdue(c, l->cfg, now)) {
		log_info("%s: %s left a request incomplete for %lds: closed", l->name, c->peer,
			 l->cfg->request_timeout);
		l->ops.reply_error(l->arg, c, PROTO_E_MALFORMED, "request incomplete for too long");
		loop_close(l, c, 0);
	} else if (l->ops.expired) {
		l->ops.expired(l->arg, c, now);
	}
}

/* Every LOOP_SWEEP_MS: the deadlines. Runs with the dirty list empty. */
static void sweep(struct loop *l)
{
	uint64_t now = conn_clock_ms();

	if (now < l->next_sweep_ms)
		return;
	l->next_sweep_ms = now + LOOP_SWEEP_MS;
	/* Backwards: destroying one moves the last into its slot. */
	for (size_t i = l->nconns; i-- > 0;)
		sweep_conn(l, l->conns[i], now);
	loop_flush(l);
}

/* The end of an accept pause: poll the listeners again (checked every
 * pass: the pass's timeout is cut to it). */
static void resume_accepting(struct loop *l)
{
	if (l->accept_paused && conn_clock_ms() >= l->accept_resume_ms &&
	    watch_listeners(l, EPOLL_CTL_MOD, EPOLLIN) == 0)
		l->accept_paused = 0;
}

/* The epoll timeout: at most dflt, shortened for the next resumption,
 * quiet period or end of an accept pause. */
static int pass_timeout(struct loop *l, int dflt)
{
	uint64_t now = conn_clock_ms();
	int t = dflt;

	if (l->accept_paused) {
		int left = l->accept_resume_ms > now ? (int)(l->accept_resume_ms - now) : 0;
		if (t < 0 || left < t)
			t = left;
	}
	if (l->input_pending && !l->hold_input)
		t = 0;
	t = throttle_timeout(&l->throttled, now, t);
	return quiet_timeout(&l->quiet, now, t);
}

int loop_step(struct loop *l, int timeout_ms)
{
	struct epoll_event evs[LOOP_EVENTS_MAX];
	int n = epoll_wait(l->epfd, evs, l->max_events, pass_timeout(l, timeout_ms));

	if (n < 0 && errno != EINTR) {
		log_error("%s: epoll_wait: %s", l->name, strerror(errno));
		return -1;
	}
	/* The owner's descriptors first: a room's membership changes come
	 * before the requests that may depend on them. */
	for (int i = 0; i < n; i++)
		if (is_marker(l, evs[i].data.ptr))
			l->ops.marker(l->arg, evs[i].data.ptr, evs[i].events);
	for (int i = 0; i < n; i++) {
		int li = listener_of(l, evs[i].data.ptr);
		if (li >= 0)
			accept_all(l, l->lis->fd[li]);
		else if (!is_marker(l, evs[i].data.ptr))
			conn_event(l, evs[i].data.ptr, evs[i].events);
	}
	serve_pending(l);
	if (l->ops.events_done)
		l->ops.events_done(l->arg);
	resume_throttled(l);
	finish_quiet(l);
	loop_flush(l);
	sweep(l);
	resume_accepting(l);
	return 0;
}

/* ---- shutdown ---- */

static long since_ms(uint64_t t0)
{
	return (long)(conn_clock_ms() - t0);
}

void loop_drain(struct loop *l, long budget_ms)
{
	uint64_t t0 = conn_clock_ms();

	/* Only the connections' writability matters now: a listener or an
	 * eventfd left readable would wake every wait. */
	watch_listeners(l, EPOLL_CTL_DEL, 0);
	for (size_t i = 0; i < l->nmarks; i++)
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, l->mark_fds[i], NULL);
	l->nmarks = 0;
	for (size_t i = 0; i < l->nconns; i++)
		l->conns[i]->paused = 1; /* read nothing: the flush drops EPOLLIN */
	for (;;) {
		struct epoll_event evs[LOOP_EVENTS_MAX];
		for (size_t i = 0; i < l->nconns; i++)
			loop_mark_dirty(l, l->conns[i]);
		loop_flush(l);
		/* One that has written everything is done: closed now, so
		 * that its hang-up cannot wake the waits below. */
		for (size_t i = l->nconns; i-- > 0;)
			if (sendq_empty(&l->conns[i]->out))
				destroy_conn(l, l->conns[i]);
		if (l->nconns == 0 || since_ms(t0) >= budget_ms)
			break;
		/* Until one is writable again (or a short while). */
		epoll_wait(l->epfd, evs, l->max_events, LOOP_DRAIN_WAIT_MS);
	}
	while (l->nconns > 0)
		destroy_conn(l, l->conns[l->nconns - 1]);
}

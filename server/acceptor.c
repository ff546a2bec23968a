/* acceptor.c - the main thread: the control port, every control connection,
 * signals, and the rooms' lifetimes.
 *
 * Ownership: this thread alone reads, writes and closes control connections
 * (conns[], indexed by fd), and runs the rooms' lifecycle (rooms.c). Room
 * threads reach those connections only by posting delivery batches (and a
 * member's LEAVE or DISCONNECT made on its room port, struct room_request,
 * applied in order with them; delivery.h) to acc->mbox, their uplink; a
 * delivery names the connection by
 * fd and id, and is dropped when the connection or the membership is gone,
 * so nothing arrives after LEFT_CHATROOM. SIGINT/SIGTERM/SIGHUP are blocked
 * in every thread and read here through a signalfd; SIGHUP and each loop
 * pass are handed to the daemon's hooks (reload, watchdog), on this thread.
 *
 * Deliveries are applied in slices of ACC_APPLY_SLICE per loop pass, with
 * the connections flushed in between, so a backlog reaches the members'
 * queues no faster than they can be written to; each room's share is
 * counted in its delivery_backlog, and a room over its bound stops reading
 * its room port until this thread drains it. While more than
 * ACC_HOLD_ENTRIES wait here, control requests (which may relay more) wait
 * too. */
#include "acceptor.h"
#include "config.h"
#include "conn.h"
#include "control.h"
#include "delivery.h"
#include "iptable.h"
#include "log.h"
#include "metrics.h"
#include "msg.h"
#include "net.h"
#include "room.h"
#include "rooms.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define ACC_EVENTS 128
#define ACC_STOP_FLUSH_MS 700 /* with the rooms' 700 ms: exit within 2 s */
#define ACC_SWEEP_MS 500
/* Deliveries applied per loop pass at most (~1 ms of work): then the
 * queues are flushed and other events served. */
#define ACC_APPLY_SLICE 16384
/* Above this many deliveries waiting, control requests are not read. */
#define ACC_HOLD_ENTRIES (4 * DELIVERY_BACKLOG_ENTRIES)

struct acceptor {
	const struct config *cfg;
	struct registry *reg;
	struct store *store;   /* NULL: persistence off */
	struct rooms *rooms;   /* the room threads' lifecycle */
	struct control ctl;
	struct mailbox mbox;   /* delivery batches from the room threads */
	struct net_listeners lis; /* the control port, one per [server] bind address */
	int epfd, sigfd;
	int spare_fd;          /* given up to shed a connection at EMFILE */
	int stop;
	int rooms_stopped;     /* room threads joined: post nothing to them */
	struct conn **conns;   /* by fd */
	size_t conns_cap;
	long nclients;
	struct conn *dirty;    /* conns with output queued this pass */
	int emfile_logged;
	uint64_t next_sweep_ms;
	struct iptable *ips;   /* per address: connections and buckets (shared with rooms) */
	struct throttle_list throttled; /* conns out of tokens */
	struct quiet_list quiet;        /* conns holding part of a request */
	struct mail *pend_head, *pend_tail; /* batches taken from mbox, in order */
	long pend_entries;     /* their deliveries not yet applied */
	int input_held;        /* pend_entries over ACC_HOLD_ENTRIES: read no requests */
	struct acceptor_hooks hooks;    /* all NULL unless the daemon sets them */
};

/* epoll data.ptr markers for the descriptors that are not conns: listener
 * i is &listen_markers[i]. */
static char listen_markers[NET_LISTEN_MAX], signal_marker, mailbox_marker;
_Static_assert(CONFIG_BIND_MAX <= NET_LISTEN_MAX, "a listener per bind address");

static struct conn *acceptor_conn(struct acceptor *acc, int fd, uint64_t id);

/* The listener a marker names, or -1 when it is not a listener's (by
 * equality: ordering unrelated pointers is undefined). */
static int listener_of(const void *ptr)
{
	for (int i = 0; i < NET_LISTEN_MAX; i++)
		if (ptr == &listen_markers[i])
			return i;
	return -1;
}

/* ---- connections ---- */

static void mark_dirty(struct acceptor *acc, struct conn *c)
{
	if (!c->dirty) {
		c->dirty = 1;
		c->next_dirty = acc->dirty;
		acc->dirty = c;
	}
}

/* Decide to close c: its memberships end now (announced to the rooms), it
 * reads nothing more, and it is closed once its queue is out (with cut_off,
 * a client that does not read: only a partly written frame is finished),
 * within CONN_CLOSE_GRACE_MS. */
static void begin_close(struct acceptor *acc, struct conn *c, int cut_off)
{
	conn_begin_close(c, cut_off);
	/* Once the rooms are stopped (shutdown's last deliveries can still cut
	 * a client off) there is nobody left to announce to. */
	if (acc->rooms_stopped)
		control_forget_memberships(c);
	else
		control_drop_memberships(&acc->ctl, c);
	mark_dirty(acc, c);
}

static void destroy_conn(struct acceptor *acc, struct conn *c)
{
	throttle_remove(&acc->throttled, c);
	quiet_remove(&acc->quiet, c);
	if (acc->rooms_stopped)
		control_forget_memberships(c);
	else
		control_drop_memberships(&acc->ctl, c);
	acc->conns[c->fd] = NULL;
	acc->nclients--;
	metrics_conn_close(METRICS_CONTROL);
	conn_destroy(c);
}

static int track_conn(struct acceptor *acc, struct conn *c)
{
	struct epoll_event ee = { .events = EPOLLIN, .data.ptr = c };

	if ((size_t)c->fd >= acc->conns_cap) {
		size_t ncap = acc->conns_cap ? acc->conns_cap : 1024;
		struct conn **nc;
		while (ncap <= (size_t)c->fd)
			ncap *= 2;
		nc = realloc(acc->conns, ncap * sizeof(*nc));
		if (!nc)
			return -ENOMEM;
		memset(nc + acc->conns_cap, 0, (ncap - acc->conns_cap) * sizeof(*nc));
		acc->conns = nc;
		acc->conns_cap = ncap;
	}
	if (epoll_ctl(acc->epfd, EPOLL_CTL_ADD, c->fd, &ee) < 0)
		return -errno;
	c->ev_mask = EPOLLIN;
	acc->conns[c->fd] = c;
	acc->nclients++;
	metrics_conn_open(METRICS_CONTROL);
	return 0;
}

/* At EMFILE the pending connection cannot even be accepted, and with a
 * level-triggered listener we would spin: give up the spare descriptor,
 * accept and close the connection, take the spare back. */
static void shed_one(struct acceptor *acc, int lfd, int err)
{
	char peer[NET_ADDRSTRLEN];
	int fd;

	if (!acc->emfile_logged) {
		log_error("acceptor: out of file descriptors (%s): shedding new connections",
			  strerror(-err));
		acc->emfile_logged = 1;
	}
	if (acc->spare_fd >= 0)
		close(acc->spare_fd);
	fd = net_accept(lfd, peer, sizeof(peer));
	if (fd >= 0)
		conn_refuse(fd, PROTO_E_SERVER_FULL, "server out of resources");
	acc->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void accept_all(struct acceptor *acc, int lfd)
{
	char peer[NET_ADDRSTRLEN];
	int fd;

	/* A bounded number per pass, so established clients are served too. */
	for (int i = 0; i < 64; i++) {
		struct conn *c;
		struct ip_entry *e;

		fd = net_accept(lfd, peer, sizeof(peer));
		if (fd == -EMFILE || fd == -ENFILE) {
			shed_one(acc, lfd, fd);
			return;
		}
		if (fd < 0) {
			if (fd != -EAGAIN && fd != -ECONNABORTED)
				log_warn("acceptor: accept: %s", strerror(-fd));
			return;
		}
		acc->emfile_logged = 0;
		if (acc->nclients >= acc->cfg->max_clients) {
			log_warn("acceptor: %s refused: max_clients (%ld) reached", peer, acc->cfg->max_clients);
			metrics_refusal(METRICS_REFUSE_MAX_CLIENTS);
			conn_refuse(fd, PROTO_E_SERVER_FULL, "server full");
			continue;
		}
		e = conn_admit(acc->ips, acc->cfg, fd, peer, "acceptor");
		if (!e)
			continue;
		c = conn_create(fd, peer, acc->cfg);
		if (c) {
			c->ipt = acc->ips;
			c->ipe = e;
		}
		if (!c || track_conn(acc, c) < 0) {
			log_error("acceptor: %s refused: out of memory", peer);
			if (c) {
				conn_destroy(c);
			} else {
				iptable_close(acc->ips, e, conn_clock_ms());
				close(fd);
			}
			continue;
		}
		log_debug("acceptor: connection from %s (fd %d)", peer, fd);
	}
}

static void handle_parsed(struct acceptor *acc, struct conn *c, const struct proto_msg *pm)
{
	switch (control_handle(&acc->ctl, c, pm)) {
	case CONTROL_OK:
		break;
	case CONTROL_CLOSE:
		begin_close(acc, c, 0);
		break;
	case CONTROL_STOP:
		acc->stop = 1;
		break;
	}
	if (c->backoff_ms > 0) {
		throttle_add(&acc->throttled, c, c->backoff_ms);
		c->backoff_ms = 0;
	}
}

static void on_request(void *arg, struct conn *c, const struct proto_msg *pm)
{
	/* Only a request the parser accepted is activity for idle_timeout:
	 * blank lines, partial requests and refused input are not, so neither
	 * keeps a connection in no room (and a slot of max_clients) alive. */
	c->active_ms = conn_clock_ms();
	handle_parsed(arg, c, pm);
}

static void on_reject(void *arg, struct conn *c, enum proto_err err, int fatal)
{
	struct acceptor *acc = arg;

	control_reply_error(c, err, NULL);
	if (fatal) {
		log_warn("acceptor: %s sent a request over %ld bytes: closed", c->peer,
			 acc->cfg->max_request);
		begin_close(acc, c, 0);
	}
}

static int on_halted(void *arg)
{
	return ((struct acceptor *)arg)->stop;
}

/* Handle the complete requests buffered for c, until it pauses (a LEAVE
 * waiting for its room), runs out of tokens, or closes. */
static void process_input(struct acceptor *acc, struct conn *c)
{
	const struct conn_handler h = { on_request, on_reject, on_halted, acc, &acc->quiet };

	conn_process(c, acc->cfg, &acc->throttled, &h);
	if (c->closing)
		begin_close(acc, c, 0); /* a handler gave up on it (full queue) */
	mark_dirty(acc, c);
}

/* Read what c sent and handle it. */
static void serve_input(struct acceptor *acc, struct conn *c)
{
	long n = conn_read(c);

	if (n == -EAGAIN)
		return;
	if (n <= 0) {
		if (n < 0 && n != -ECONNRESET)
			log_info("acceptor: %s: read: %s", c->peer, strerror((int)-n));
		begin_close(acc, c, 1); /* an abrupt close is a disconnect */
		return;
	}
	process_input(acc, c);
}

/* Move the batches the rooms posted to the local queue (in order). */
static void take_deliveries(struct acceptor *acc)
{
	struct mail *all = mailbox_take_all(&acc->mbox), *next;

	for (; all; all = next) {
		next = all->next;
		all->next = NULL;
		if (acc->pend_tail)
			acc->pend_tail->next = all;
		else
			acc->pend_head = all;
		acc->pend_tail = all;
		if (all->type == DELIVERY_MAIL_BATCH)
			acc->pend_entries += (long)((struct delivery_batch *)all)->n;
	}
}

/* The answer to c's HISTORY: its pieces go into the space reserved for
 * them; c reads on once they are written (flush_dirty). */
static void apply_history(struct acceptor *acc, struct conn *c, struct delivery_batch *b)
{
	sendq_unreserve(&c->out, b->reserved);
	c->history_wait = 0;
	if (b->pieces && sendq_push_pieces(&c->out, b->pieces) == 0) {
		c->history_wait = 2;
		c->history_mark = c->out.sent + c->out.bytes;
	} else {
		log_error("acceptor: %s: out of memory answering a HISTORY request", c->peer);
		control_reply_error(c, PROTO_E_SERVER, "out of memory");
		c->paused = 0;
		process_input(acc, c);
	}
	mark_dirty(acc, c);
}

static void apply_one(struct acceptor *acc, struct delivery_batch *b, struct delivery *d)
{
	struct conn *c = (size_t)d->fd < acc->conns_cap ? acc->conns[d->fd] : NULL;

	if (!c || c->id != d->conn_id || c->closing)
		return; /* gone */
	if (d->ack == DELIVERY_HISTORY) {
		apply_history(acc, c, b);
		return;
	}
	if (d->ack == DELIVERY_RELAY && !conn_membership(c, d->join_id) && c->leaving_id != d->join_id)
		return; /* left the room since */
	if (conn_queue(c, d->msg) < 0) {
		log_warn("acceptor: %s is not reading: send queue full, disconnected", c->peer);
		metrics_cut_off(METRICS_CONTROL);
		begin_close(acc, c, 1);
		return;
	}
	mark_dirty(acc, c);
	if (d->ack == DELIVERY_LEAVE) {
		/* The LEAVE is answered: go on with its next requests. */
		c->paused = 0;
		c->leaving_id = 0;
		process_input(acc, c);
	}
}

/* ---- a member's requests made on its room port (SPEC §2.4) ---- */

/* Carry out a room-port LEAVE or DISCONNECT, in order with the batches
 * the room posted before it (so what was relayed to the member over the
 * control connection before is delivered first). A control connection or
 * membership that is gone meanwhile: nothing to do here (the room answers
 * its room connection as that membership's end reaches it). */
static void apply_room_request(struct acceptor *acc, struct room_request *rq)
{
	struct conn *c = acceptor_conn(acc, rq->ctl_fd, rq->ctl_id);

	if (c && !acc->rooms_stopped) {
		if (rq->kind == ROOM_REQ_LEAVE) {
			control_leave_from_room(&acc->ctl, c, rq->join_id);
		} else {
			log_info("acceptor: %s: DISCONNECT made on a room port: closing", c->peer);
			begin_close(acc, c, 0);
		}
	}
	free(rq);
}

/* Apply up to budget deliveries, oldest first; a batch may be left half
 * applied for the next pass. */
static void apply_deliveries(struct acceptor *acc, size_t budget)
{
	while (acc->pend_head && budget > 0) {
		if (acc->pend_head->type == DELIVERY_MAIL_ROOM_REQUEST) {
			struct room_request *rq = (struct room_request *)acc->pend_head;
			acc->pend_head = rq->mail.next;
			if (!acc->pend_head)
				acc->pend_tail = NULL;
			apply_room_request(acc, rq);
			budget--;
			continue;
		}
		struct delivery_batch *b = (struct delivery_batch *)acc->pend_head;
		size_t start = b->done, end = b->n - start > budget ? start + budget : b->n, bytes = 0;

		for (size_t i = start; i < end; i++) {
			bytes += b->d[i].msg ? b->d[i].msg->len : 0;
			apply_one(acc, b, &b->d[i]);
		}
		b->done = end;
		budget -= end - start;
		acc->pend_entries -= (long)(end - start);
		delivery_backlog_applied(b->bl, end - start, bytes);
		if (b->done == b->n) {
			acc->pend_head = b->mail.next;
			if (!acc->pend_head)
				acc->pend_tail = NULL;
			delivery_free(b);
		}
	}
}

/* Write what each conn has queued this pass: one writev per connection for
 * everything it got. */
static void flush_dirty(struct acceptor *acc)
{
	while (acc->dirty) {
		struct conn *c = acc->dirty, *next;

		acc->dirty = NULL;
		for (; c; c = next) {
			next = c->next_dirty;
			c->dirty = 0;
			if (conn_flush(c, acc->epfd)) {
				destroy_conn(acc, c);
			} else if (c->history_wait == 2 && c->out.sent >= c->history_mark) {
				/* Its HISTORY reply is out: the next request
				 * (marks it dirty again, hence the outer loop). */
				c->history_wait = 0;
				c->paused = 0;
				process_input(acc, c);
			}
		}
	}
}

static void handle_event(struct acceptor *acc, struct epoll_event *ev)
{
	struct conn *c = ev->data.ptr;
	int li = listener_of(ev->data.ptr);

	if (li >= 0) {
		accept_all(acc, acc->lis.fd[li]);
	} else if (ev->data.ptr == &signal_marker) {
		struct signalfd_siginfo si;
		if (read(acc->sigfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
			return;
		if (si.ssi_signo != SIGHUP) {
			log_info("acceptor: %s: shutting down", strsignal((int)si.ssi_signo));
			acc->stop = 1;
		} else if (acc->hooks.reload) {
			acc->hooks.reload(acc->hooks.arg);
		} else {
			log_info("acceptor: SIGHUP: nothing to reload here");
		}
	} else if (ev->data.ptr == &mailbox_marker) {
		take_deliveries(acc);
	} else {
		if (ev->events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			mark_dirty(acc, c);
		if ((c->paused || c->throttled) && (ev->events & (EPOLLHUP | EPOLLERR)))
			begin_close(acc, c, 1); /* gone while waiting */
		else if (!c->closing && !c->paused && !c->throttled && !acc->input_held &&
			 (ev->events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
			serve_input(acc, c);
	}
}

/* ---- lifecycle ---- */

static long elapsed_ms(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

/* The live control connection (fd, id), or NULL. */
static struct conn *acceptor_conn(struct acceptor *acc, int fd, uint64_t id)
{
	struct conn *c = fd >= 0 && (size_t)fd < acc->conns_cap ? acc->conns[fd] : NULL;

	return c && c->id == id && !c->closing ? c : NULL;
}

/* Queue m (shared) on control connection c and flush it this pass; a
 * client that does not read is cut off. 0 or -errno. */
static int acceptor_send(struct acceptor *acc, struct conn *c, struct msg *m)
{
	int rc = conn_queue(c, m);

	if (rc < 0) {
		log_warn("acceptor: %s is not reading: send queue full, disconnected", c->peer);
		metrics_cut_off(METRICS_CONTROL);
		begin_close(acc, c, 1);
		return rc;
	}
	mark_dirty(acc, c);
	return 0;
}

/* control_peers for PRIVATE: another control connection, by (fd, id). */
static int peer_reachable(void *arg, int fd, uint64_t id)
{
	struct conn *c = acceptor_conn(arg, fd, id);

	return c && c->ext;
}

static int peer_send(void *arg, int fd, uint64_t id, struct msg *m)
{
	struct conn *c = acceptor_conn(arg, fd, id);

	return c ? acceptor_send(arg, c, m) : -ENOENT;
}

/* Stop every room thread (all at once, so their flush deadlines overlap),
 * then deliver what they handed over. */
static void stop_rooms(struct acceptor *acc)
{
	if (acc->rooms_stopped)
		return;
	acc->stop = 1; /* no request may reach a room from now on */
	rooms_stop_all(acc->rooms);
	acc->rooms_stopped = 1;
	take_deliveries(acc);
	apply_deliveries(acc, (size_t)-1);
}

/* Stop the rooms (each flushes its own connections), deliver what they
 * handed over, give control connections a bounded time to take it. */
static void shutdown_all(struct acceptor *acc)
{
	struct timespec t0;

	stop_rooms(acc);
	for (size_t fd = 0; fd < acc->conns_cap; fd++)
		if (acc->conns[fd])
			mark_dirty(acc, acc->conns[fd]);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (acc->dirty && elapsed_ms(&t0) < ACC_STOP_FLUSH_MS) {
		struct epoll_event evs[ACC_EVENTS];
		flush_dirty(acc);
		int n = epoll_wait(acc->epfd, evs, ACC_EVENTS, 20);
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (listener_of(evs[i].data.ptr) < 0 && evs[i].data.ptr != &signal_marker &&
			    evs[i].data.ptr != &mailbox_marker && (evs[i].events & (EPOLLOUT | EPOLLERR)))
				mark_dirty(acc, c);
		}
	}
	for (size_t fd = 0; fd < acc->conns_cap; fd++)
		if (acc->conns[fd])
			destroy_conn(acc, acc->conns[fd]);
}

/* Throttled connections whose tokens are back: read them again, starting
 * with what they already sent. */
static void resume_throttled(struct acceptor *acc)
{
	struct conn *c = throttle_take_due(&acc->throttled, conn_clock_ms()), *next;

	for (; c; c = next) {
		next = c->next_throttled;
		process_input(acc, c); /* may throttle it again */
		mark_dirty(acc, c);    /* the flush also restores EPOLLIN */
	}
}

/* Connections whose partial request saw no byte for end_quiet_ms: a request
 * complete but for its terminator ends there (SPEC §2.4, lab-era clients). */
static void finish_quiet(struct acceptor *acc)
{
	const struct conn_handler h = { on_request, on_reject, on_halted, acc, &acc->quiet };
	struct conn *c = quiet_take_due(&acc->quiet, conn_clock_ms()), *next;

	for (; c; c = next) {
		next = c->next_quiet;
		conn_finish_quiet(c, acc->cfg, &acc->throttled, &h);
		if (c->closing)
			begin_close(acc, c, 0);
		mark_dirty(acc, c);
	}
}

/* Retired rooms whose thread is done, then deadlines: closing connections
 * that did not take their last bytes, and connections in no room that sent
 * no request for idle_timeout. Runs with the dirty list empty. */
static void sweep(struct acceptor *acc)
{
	uint64_t now = conn_clock_ms(), idle_ms = (uint64_t)acc->cfg->idle_timeout * 1000;

	/* Every pass: a room thread wakes us as it exits, and its descriptors
	 * go now rather than at the next deadline. */
	rooms_reap(acc->rooms);
	if (now < acc->next_sweep_ms)
		return;
	acc->next_sweep_ms = now + ACC_SWEEP_MS;
	for (size_t fd = 0; fd < acc->conns_cap; fd++) {
		struct conn *c = acc->conns[fd];
		if (!c)
			continue;
		if (c->closing && now - c->since_ms > CONN_CLOSE_GRACE_MS) {
			log_info("acceptor: %s did not take its last bytes: closed", c->peer);
			destroy_conn(acc, c);
		} else if (!c->paused && !c->throttled && conn_request_overdue(c, acc->cfg, now)) {
			log_info("acceptor: %s left a request incomplete for %lds: closed", c->peer,
				 acc->cfg->request_timeout);
			control_reply_error(c, PROTO_E_MALFORMED, "request incomplete for too long");
			begin_close(acc, c, 0);
		} else if (!c->closing && idle_ms && c->nms == 0 && !c->paused &&
			   now - c->active_ms > idle_ms) {
			log_info("acceptor: %s idle for %lds in no room: closed", c->peer,
				 acc->cfg->idle_timeout);
			begin_close(acc, c, 1);
		}
	}
	flush_dirty(acc);
}

int acceptor_step(struct acceptor *acc, int timeout_ms)
{
	struct epoll_event evs[ACC_EVENTS];
	/* Deliveries left over from the last slice: do not sleep. */
	int wait = acc->pend_head ? 0 : throttle_timeout(&acc->throttled, conn_clock_ms(), timeout_ms);
	int n = epoll_wait(acc->epfd, evs, ACC_EVENTS, quiet_timeout(&acc->quiet, conn_clock_ms(), wait));

	if (n < 0 && errno != EINTR) {
		log_error("acceptor: epoll_wait: %s", strerror(errno));
		return -1;
	}
	/* Requests wait while a large backlog does; ready ones are seen
	 * again next pass (level-triggered). */
	acc->input_held = acc->pend_entries > ACC_HOLD_ENTRIES;
	for (int i = 0; i < n; i++)
		handle_event(acc, &evs[i]);
	apply_deliveries(acc, ACC_APPLY_SLICE);
	resume_throttled(acc);
	finish_quiet(acc);
	flush_dirty(acc);
	sweep(acc);
	return acc->stop ? 1 : 0;
}

int acceptor_run(struct acceptor *acc)
{
	int rc, wait = ACC_SWEEP_MS;

	do {
		rc = acceptor_step(acc, wait);
		/* The tick (the watchdog) runs every pass, so a pass that hangs
		 * is what stops the pings; it may shorten the next wait. */
		wait = acc->hooks.tick ? acc->hooks.tick(acc->hooks.arg) : ACC_SWEEP_MS;
		if (wait > ACC_SWEEP_MS || wait < 0)
			wait = ACC_SWEEP_MS;
	} while (rc == 0);
	if (acc->hooks.stopping)
		acc->hooks.stopping(acc->hooks.arg);
	shutdown_all(acc);
	log_info("acceptor: stopped");
	return rc < 0 ? -1 : 0;
}

struct conn *acceptor_adopt(struct acceptor *acc, int fd, const char *peer)
{
	struct ip_entry *e = NULL;
	struct conn *c;
	int log_it;

	if (iptable_open(acc->ips, peer, conn_clock_ms(), &e, &log_it) != IP_OK) {
		close(fd);
		return NULL;
	}
	c = conn_create(fd, peer, acc->cfg);
	if (c) {
		c->ipt = acc->ips;
		c->ipe = e;
	}
	if (!c || track_conn(acc, c) < 0) {
		if (c) {
			conn_destroy(c);
		} else {
			iptable_close(acc->ips, e, conn_clock_ms());
			close(fd);
		}
		return NULL;
	}
	return c;
}

static int add_fd(struct acceptor *acc, int fd, void *marker)
{
	struct epoll_event ee = { .events = EPOLLIN, .data.ptr = marker };

	return epoll_ctl(acc->epfd, EPOLL_CTL_ADD, fd, &ee);
}

static int setup_signals(struct acceptor *acc)
{
	sigset_t set;

	/* Blocked here, before any room thread exists, so every thread
	 * inherits the mask and only the signalfd sees them. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	acc->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return acc->sigfd < 0 ? -1 : 0;
}

/* The control port on every bind address, the same number on each. */
static int listen_control(struct acceptor *acc, unsigned port)
{
	struct config_addrs a;
	char why[256], where[NET_ADDRSTRLEN + 8];
	size_t failed;
	int rc;

	if (config_bind_addrs(acc->cfg->bind, &a, why, sizeof(why)) < 0) {
		log_error("cannot listen: [server] bind: %s", why);
		return -1;
	}
	rc = net_listen_all(&acc->lis, a.ptr, a.n, port, 511, &failed);
	if (rc < 0) {
		net_format_endpoint(a.addr[failed], port, where, sizeof(where));
		log_error("cannot listen on %s: %s", where, strerror(-rc));
		return -1;
	}
	for (size_t i = 0; i < acc->lis.n; i++)
		if (add_fd(acc, acc->lis.fd[i], &listen_markers[i]) < 0) {
			log_error("cannot set up epoll: %s", strerror(errno));
			return -1;
		}
	acc->ctl.port = (unsigned)net_local_port(acc->lis.fd[0]);
	return 0;
}

/* Once the configured rooms are open too: the first line is the one tests
 * and scripts wait for (same port on every line). */
static void log_listening(const struct acceptor *acc)
{
	char ip[NET_ADDRSTRLEN];

	for (size_t i = 0; i < acc->lis.n; i++) {
		if (net_local_ip(acc->lis.fd[i], ip, sizeof(ip)) < 0)
			snprintf(ip, sizeof(ip), "?");
		log_info("control listening on %s:%u", ip, acc->ctl.port);
	}
}

/* The rooms' lifecycle, their uplink this acceptor's mailbox; then the
 * configured rooms. 0 or -1 (logged). */
static int open_rooms(struct acceptor *acc)
{
	const struct room_uplink up = { .mbox = &acc->mbox, .ips = acc->ips,
					.control_port = acc->ctl.port };

	acc->rooms = rooms_create(acc->cfg, acc->reg, acc->store, &up);
	if (!acc->rooms) {
		log_error("cannot set up the rooms: %s", strerror(ENOMEM));
		return -1;
	}
	acc->ctl.rooms = acc->rooms;
	return rooms_open_configured(acc->rooms);
}

struct acceptor *acceptor_create(const struct config *cfg, struct registry *reg, unsigned port)
{
	return acceptor_open(cfg, reg, NULL, port);
}

struct acceptor *acceptor_open(const struct config *cfg, struct registry *reg, struct store *store,
			       unsigned port)
{
	struct acceptor *acc = calloc(1, sizeof(*acc));

	if (!acc)
		return NULL;
	acc->cfg = cfg;
	acc->reg = reg;
	acc->store = store;
	acc->epfd = acc->sigfd = acc->spare_fd = -1;
	acc->ips = iptable_create(cfg);
	if (!acc->ips || mailbox_init(&acc->mbox) < 0) {
		iptable_destroy(acc->ips);
		free(acc);
		return NULL;
	}
	if (setup_signals(acc) < 0) {
		log_error("cannot set up signal handling: %s", strerror(errno));
		goto fail;
	}
	acc->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	acc->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (acc->epfd < 0 || add_fd(acc, acc->sigfd, &signal_marker) < 0 ||
	    add_fd(acc, acc->mbox.efd, &mailbox_marker) < 0) {
		log_error("cannot set up epoll: %s", strerror(errno));
		goto fail;
	}
	acc->ctl = (struct control){ .cfg = cfg, .reg = reg, .store = store,
				     .peers = { peer_reachable, peer_send, acc } };
	if (listen_control(acc, port) < 0)
		goto fail;
	if (open_rooms(acc) < 0)
		goto fail;
	log_listening(acc);
	return acc;
fail:
	acceptor_destroy(acc);
	return NULL;
}

void acceptor_set_hooks(struct acceptor *acc, const struct acceptor_hooks *hooks)
{
	acc->hooks = *hooks;
}

void acceptor_destroy(struct acceptor *acc)
{
	if (!acc)
		return;
	stop_rooms(acc); /* if not yet: a start-up failure */
	for (size_t fd = 0; fd < acc->conns_cap; fd++)
		if (acc->conns[fd])
			destroy_conn(acc, acc->conns[fd]);
	free(acc->conns);
	rooms_destroy(acc->rooms);
	net_listeners_close(&acc->lis);
	if (acc->epfd >= 0)
		close(acc->epfd);
	if (acc->sigfd >= 0)
		close(acc->sigfd);
	if (acc->spare_fd >= 0)
		close(acc->spare_fd);
	mailbox_fini(&acc->mbox);
	iptable_destroy(acc->ips);
	free(acc);
}

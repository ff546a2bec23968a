/* acceptor.c - the main thread: the control port, every control connection,
 * signals, and the rooms' lifetimes.
 *
 * The thread is a loop (loop.c: epoll, the control connections indexed by
 * fd, their deadlines, accept, the drain at shutdown) plus the handlers
 * here (acceptor_ops): control requests, memberships, the idle deadline,
 * the signal descriptor and the mailbox.
 *
 * Ownership: this thread alone reads, writes and closes control connections
 * (acc->loop), and runs the rooms' lifecycle (rooms.c). Room threads reach
 * those connections only by posting fan-outs and delivery batches (and a
 * member's LEAVE or DISCONNECT made on its room port, struct room_request,
 * applied in order with them; delivery.h) to acc->mbox, their uplink; a
 * delivery (a fan-out's member too) names the connection by fd and id, and
 * is dropped when the connection or the membership is gone, so nothing
 * arrives after LEFT_CHATROOM. SIGINT/SIGTERM/SIGHUP are blocked
 * in every thread and read here through a signalfd; SIGHUP and each loop
 * pass are handed to the daemon's hooks (reload, watchdog), on this thread;
 * a reload switches this thread's config between two passes
 * (acceptor_reconfigure). The CHATs it relays to a room wake that room
 * once per pass (mailbox_defer_wakes, from acceptor_run): at the end of a
 * busy pass, or, in a pass that relayed at most ACC_SAME_PASS_RELAYS,
 * before its deliveries are applied, so that what the rooms hand back
 * meanwhile (a plain member's CHAT, relayed) is written in the same pass
 * (events_done).
 * In cluster mode the cluster thread posts to
 * acc->mbox too (CLUSTER_MAIL_ANSWER: the answer to a request a control
 * connection waits for, a private message from another node, or word that
 * this node was reaped), applied in order with the rest.
 *
 * Deliveries are applied in slices of ACC_APPLY_SLICE per loop pass (a
 * fan-out's member counts for its messages), with
 * the connections flushed in between, so a backlog reaches the members'
 * queues no faster than they can be written to; each room's share is
 * counted in its delivery_backlog, and a room over its bound stops reading
 * its room port until this thread drains it. While more than
 * ACC_HOLD_ENTRIES wait here, control requests (which may relay more) wait
 * too. */
#include "acceptor.h"
#include "cluster.h"
#include "config.h"
#include "conn.h"
#include "control.h"
#include "delivery.h"
#include "iptable.h"
#include "log.h"
#include "loop.h"
#include "mailbox.h"
#include "metrics.h"
#include "msg.h"
#include "net.h"
#include "registry.h"
#include "room.h"
#include "rooms.h"
#include "sendq.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define ACC_EVENTS 128
#define ACC_STOP_FLUSH_MS 700 /* with the rooms' 700 ms: exit within 2 s */
#define ACC_SWEEP_MS LOOP_SWEEP_MS
/* Deliveries applied per loop pass at most (~1 ms of work): then the
 * queues are flushed and other events served. */
#define ACC_APPLY_SLICE 16384
/* A pass that relayed at most this many CHATs wakes the rooms before it
 * writes: on a CPU they share, they run then, and their fan-outs go out
 * in this pass, a plain member's message taking one pass as on the raw
 * relay, not two (half the latency at a fixed rate: docs/PERFORMANCE.md).
 * A busier pass wakes them after its writes: the next pass then takes
 * all they relayed meanwhile at once, in fewer and larger writes (the
 * closed loop's throughput; taking each pass's fan-outs at once cost a
 * tenth of it). */
#define ACC_SAME_PASS_RELAYS 8
/* Above this many deliveries waiting, control requests are not read. */
#define ACC_HOLD_ENTRIES (4 * DELIVERY_BACKLOG_ENTRIES)

struct acceptor {
	const struct config *cfg;
	struct registry *reg;
	struct store *store;   /* NULL: persistence off */
	struct cluster *cluster; /* NULL: a single node */
	struct rooms *rooms;   /* the room threads' lifecycle */
	struct control ctl;
	struct mailbox mbox;   /* fan-outs, batches and requests from the room threads */
	struct net_listeners lis; /* the control port, one per [server] bind address */
	struct loop loop;      /* epoll, the control connections (by fd), deadlines */
	int sigfd;
	int stop;
	int rooms_stopped;     /* room threads joined: post nothing to them */
	struct iptable *ips;   /* per address: connections and buckets (shared with rooms) */
	struct mail *pend_head, *pend_tail; /* mail taken from mbox, in order */
	long pend_entries;     /* their deliveries not yet applied */
	struct acceptor_hooks hooks;    /* all NULL unless the daemon sets them */
};

/* epoll data.ptr markers for the descriptors that are not conns. */
static char signal_marker, mailbox_marker;

static struct conn *acceptor_conn(struct acceptor *acc, int fd, uint64_t id);

/* ---- connections: the loop's handlers ---- */

/* c closes (loop_close) or is destroyed: its memberships end now,
 * announced to the rooms; once the rooms are stopped (shutdown's last
 * deliveries can still cut a client off) there is nobody left to announce
 * to. */
static void end_memberships(void *arg, struct conn *c)
{
	struct acceptor *acc = arg;

	if (acc->rooms_stopped)
		control_forget_memberships(c);
	else
		control_drop_memberships(&acc->ctl, c);
}

/* The connection goes: its memberships ended (closing), then what the
 * control port kept for it. */
static void destroy_control_conn(void *arg, struct conn *c)
{
	end_memberships(arg, c);
	control_conn_fini(c);
}

static void handle_parsed(struct acceptor *acc, struct conn *c, const struct proto_msg *pm)
{
	struct control_conn *cc = control_conn(c);

	switch (control_handle(&acc->ctl, c, pm)) {
	case CONTROL_OK:
		break;
	case CONTROL_CLOSE:
		loop_close(&acc->loop, c, 0);
		break;
	case CONTROL_STOP:
		acc->stop = 1;
		break;
	}
	if (cc->backoff_ms > 0) {
		loop_throttle(&acc->loop, c, cc->backoff_ms);
		cc->backoff_ms = 0;
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

static void reply_error(void *arg, struct conn *c, enum proto_err err, const char *detail)
{
	(void)arg;
	control_reply_error(c, err, detail);
}

static int on_halted(void *arg)
{
	return ((struct acceptor *)arg)->stop;
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
		else if (all->type == DELIVERY_MAIL_FANOUT)
			acc->pend_entries += (long)delivery_fanout_entries((struct delivery_fanout *)all);
	}
}

/* The answer to c's HISTORY: its pieces go into the space reserved for
 * them; c reads on once they are written (flushed). */
static void apply_history(struct acceptor *acc, struct conn *c, struct delivery_batch *b)
{
	struct control_conn *cc = control_conn(c);

	sendq_unreserve(&c->out, b->reserved);
	cc->history_wait = 0;
	if (b->pieces && sendq_push_pieces(&c->out, b->pieces) == 0) {
		cc->history_wait = 2;
		cc->history_mark = c->out.sent + c->out.bytes;
	} else {
		log_error("acceptor: %s: out of memory answering a HISTORY request", c->peer);
		control_reply_error(c, PROTO_E_SERVER, "out of memory");
		c->paused = 0;
		loop_process(&acc->loop, c);
	}
	loop_mark_dirty(&acc->loop, c);
}

static void apply_one(struct acceptor *acc, struct delivery_batch *b, struct delivery *d)
{
	struct conn *c = loop_conn_by_fd(&acc->loop, d->fd);

	if (!c || c->id != d->conn_id || c->closing)
		return; /* gone */
	if (d->ack == DELIVERY_HISTORY) {
		apply_history(acc, c, b);
		return;
	}
	if (conn_queue(c, d->msg) < 0) {
		log_warn("acceptor: %s is not reading: send queue full, disconnected", c->peer);
		metrics_cut_off(METRICS_CONTROL);
		loop_close(&acc->loop, c, 1);
		return;
	}
	loop_mark_dirty(&acc->loop, c);
	if (d->ack == DELIVERY_LEAVE || d->ack == DELIVERY_JOINED) {
		/* The LEAVE (JOIN) is answered: go on with its next requests. */
		c->paused = 0;
		if (d->ack == DELIVERY_LEAVE)
			c->leaving_id = 0;
		loop_process(&acc->loop, c);
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
			loop_close(&acc->loop, c, 0);
		}
	}
	free(rq);
}

/* Cluster mode: the answer to a request of a control connection (which
 * reads on if it was paused for it), or a private message from another
 * node. Consumes q. */
static void apply_cluster_answer(struct acceptor *acc, struct cluster_req *q)
{
	struct conn *c;

	if (q->kind == CLUSTER_REQ_REAPED) {
		/* The cluster announced this node's members as left: their
		 * connections close (what they have queued goes first). */
		for (size_t i = 0; i < acc->loop.nconns; i++) {
			c = acc->loop.conns[i];
			if (!c->closing && control_conn(c)->nms > 0)
				loop_close(&acc->loop, c, 0);
		}
		cluster_req_free(q);
		return;
	}
	c = acceptor_conn(acc, q->ctl_fd, (uint64_t)q->ctl_id);
	if (c && c->closing)
		c = NULL;
	if (control_cluster_answer(&acc->ctl, c, q) && c) {
		loop_mark_dirty(&acc->loop, c);
		loop_process(&acc->loop, c);
	} else if (c) {
		loop_mark_dirty(&acc->loop, c);
	}
}

/* The frames of fan-out f for its member t: queued on the connection as
 * the pieces they make (one per block), if it is still a member. */
static void apply_target(struct acceptor *acc, const struct delivery_fanout *f,
			 const struct delivery_target *t)
{
	struct conn *c = acceptor_conn(acc, t->fd, t->conn_id);
	const struct sendq_pieces *l = f->frames;

	if (!c || (!control_membership(c, t->join_id) && c->leaving_id != t->join_id))
		return; /* gone, or left the room since */
	for (size_t i = 0; i < l->n; i++) {
		if (conn_queue_slice(c, l->p[i].owner, l->p[i].data, l->p[i].len) < 0) {
			log_warn("acceptor: %s is not reading: send queue full, disconnected", c->peer);
			metrics_cut_off(METRICS_CONTROL);
			loop_close(&acc->loop, c, 1);
			return;
		}
	}
	loop_mark_dirty(&acc->loop, c);
}

/* Apply fan-out f's next members within *budget deliveries (each member
 * counts for f's messages; one at least goes per call). 1 when f is done. */
static int apply_fanout(struct acceptor *acc, struct delivery_fanout *f, size_t *budget)
{
	size_t start = f->done, k;

	for (; f->done < f->n && *budget > 0; f->done++) {
		apply_target(acc, f, &f->t[f->done]);
		*budget -= f->nmsgs < *budget ? f->nmsgs : *budget;
	}
	k = f->done - start;
	acc->pend_entries -= (long)(k * f->nmsgs);
	delivery_backlog_applied(f->bl, k * f->nmsgs, k * f->frames->bytes);
	return f->done == f->n;
}

/* The oldest pending mail is done with: unlink it. */
static void pend_pop(struct acceptor *acc)
{
	acc->pend_head = acc->pend_head->next;
	if (!acc->pend_head)
		acc->pend_tail = NULL;
}

/* Apply up to budget deliveries, oldest first; a batch or fan-out may be
 * left half applied for the next pass. */
static void apply_deliveries(struct acceptor *acc, size_t budget)
{
	while (acc->pend_head && budget > 0) {
		if (acc->pend_head->type == DELIVERY_MAIL_FANOUT) {
			struct delivery_fanout *f = (struct delivery_fanout *)acc->pend_head;
			if (apply_fanout(acc, f, &budget)) {
				pend_pop(acc);
				delivery_fanout_free(f);
			}
			continue;
		}
		if (acc->pend_head->type == CLUSTER_MAIL_ANSWER) {
			struct cluster_req *q = (struct cluster_req *)acc->pend_head;
			pend_pop(acc);
			apply_cluster_answer(acc, q);
			budget--;
			continue;
		}
		if (acc->pend_head->type == DELIVERY_MAIL_ROOM_REQUEST) {
			struct room_request *rq = (struct room_request *)acc->pend_head;
			pend_pop(acc);
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
			pend_pop(acc);
			delivery_free(b);
		}
	}
}

/* c was written: once its HISTORY reply is out, its next request (which
 * marks it dirty again: the loop flushes until nothing is). */
static void flushed(void *arg, struct conn *c)
{
	struct acceptor *acc = arg;
	struct control_conn *cc = control_conn(c);

	if (cc->history_wait == 2 && c->out.sent >= cc->history_mark) {
		cc->history_wait = 0;
		c->paused = 0;
		loop_process(&acc->loop, c);
	}
}

static void on_signal(struct acceptor *acc)
{
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
}

static void on_marker(void *arg, void *marker, uint32_t events)
{
	struct acceptor *acc = arg;

	(void)events;
	if (marker == &signal_marker)
		on_signal(acc);
	else if (marker == &mailbox_marker)
		take_deliveries(acc);
}

/* After the events of a pass: a slice of the deliveries (then the loop
 * flushes them), with the fan-outs of the rooms woken here (a quiet pass:
 * ACC_SAME_PASS_RELAYS) if they posted them already. While a large
 * backlog waits, requests wait too (ready ones are seen again next pass:
 * level-triggered). */
static void events_done(void *arg)
{
	struct acceptor *acc = arg;

	if (mailbox_deferred_posts() <= ACC_SAME_PASS_RELAYS) {
		mailbox_flush_wakes();
		if (mailbox_pending(&acc->mbox))
			take_deliveries(acc);
	}
	apply_deliveries(acc, ACC_APPLY_SLICE);
	acc->loop.hold_input = acc->pend_entries > ACC_HOLD_ENTRIES;
}

/* The acceptor's own deadline: a connection in no room that sent no
 * request for idle_timeout. */
static void expired(void *arg, struct conn *c, uint64_t now)
{
	struct acceptor *acc = arg;
	uint64_t idle_ms = (uint64_t)acc->cfg->idle_timeout * 1000;

	if (!c->closing && idle_ms && control_conn(c)->nms == 0 && !c->paused && now - c->active_ms > idle_ms) {
		log_info("acceptor: %s idle for %lds in no room: closed", c->peer, acc->cfg->idle_timeout);
		loop_close(&acc->loop, c, 1);
	}
}

static const struct loop_ops acceptor_ops = {
	.request = on_request,
	.reply_error = reply_error,
	.halted = on_halted,
	.marker = on_marker,
	.closing = end_memberships,
	.destroy = destroy_control_conn,
	.flushed = flushed,
	.events_done = events_done,
	.expired = expired,
};

/* ---- lifecycle ---- */

/* The live control connection (fd, id), or NULL. */
static struct conn *acceptor_conn(struct acceptor *acc, int fd, uint64_t id)
{
	struct conn *c = loop_conn_by_fd(&acc->loop, fd);

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
		loop_close(&acc->loop, c, 1);
		return rc;
	}
	loop_mark_dirty(&acc->loop, c);
	return 0;
}

/* control_peers for PRIVATE: another control connection, by (fd, id). */
static int peer_reachable(void *arg, int fd, uint64_t id)
{
	struct conn *c = acceptor_conn(arg, fd, id);

	return c && control_conn(c)->ext;
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
	if (acc->cluster) /* nothing more comes from the cluster thread */
		cluster_set_acceptor(acc->cluster, NULL);
	rooms_stop_all(acc->rooms);
	acc->rooms_stopped = 1;
	take_deliveries(acc);
	apply_deliveries(acc, (size_t)-1);
}

/* Stop the rooms (each flushes its own connections), deliver what they
 * handed over, give control connections a bounded time to take it. */
static void shutdown_all(struct acceptor *acc)
{
	stop_rooms(acc);
	loop_drain(&acc->loop, ACC_STOP_FLUSH_MS);
}

int acceptor_step(struct acceptor *acc, int timeout_ms)
{
	int rc;

	/* No wake-up is owed while this thread waits: what was relayed
	 * between two passes (a reload's notice, from the tick hook) goes
	 * now (acceptor_run defers the relays' wake-ups). */
	mailbox_flush_wakes();
	/* Deliveries left over from the last slice: do not sleep. */
	rc = loop_step(&acc->loop, acc->pend_head ? 0 : timeout_ms);
	/* The rooms this pass relayed to, woken once each, now that it is
	 * done. */
	mailbox_flush_wakes();
	if (rc < 0)
		return -1;
	/* Every pass: a room thread wakes us as it exits, and its
	 * descriptors go now rather than at the next deadline. */
	rooms_reap(acc->rooms);
	return acc->stop ? 1 : 0;
}

int acceptor_run(struct acceptor *acc)
{
	int rc, wait = ACC_SWEEP_MS;

	/* A pass's relays to a room wake it once, at the end of the pass: it
	 * neither preempts this thread at the first one (on a shared CPU) nor
	 * wakes once per message. */
	mailbox_defer_wakes(1);
	do {
		rc = acceptor_step(acc, wait);
		/* The tick (the watchdog) runs every pass, so a pass that hangs
		 * is what stops the pings; it may shorten the next wait. */
		wait = acc->hooks.tick ? acc->hooks.tick(acc->hooks.arg) : ACC_SWEEP_MS;
		if (wait > ACC_SWEEP_MS || wait < 0)
			wait = ACC_SWEEP_MS;
	} while (rc == 0);
	mailbox_defer_wakes(0);
	if (acc->hooks.stopping)
		acc->hooks.stopping(acc->hooks.arg);
	shutdown_all(acc);
	log_info("acceptor: stopped");
	return rc < 0 ? -1 : 0;
}

struct conn *acceptor_adopt(struct acceptor *acc, int fd, const char *peer)
{
	return loop_adopt(&acc->loop, fd, peer);
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
	rc = loop_listen(&acc->loop, &acc->lis);
	if (rc < 0) {
		log_error("cannot set up epoll: %s", strerror(-rc));
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
					.control_port = acc->ctl.port, .cluster = acc->cluster };

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
	return acceptor_open(cfg, reg, NULL, NULL, port);
}

struct acceptor *acceptor_open(const struct config *cfg, struct registry *reg, struct store *store,
			       struct cluster *cluster, unsigned port)
{
	struct acceptor *acc = calloc(1, sizeof(*acc));
	int rc;

	if (!acc)
		return NULL;
	acc->cfg = cfg;
	acc->reg = reg;
	acc->store = store;
	acc->cluster = cluster;
	acc->sigfd = -1;
	acc->loop.epfd = -1;
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
	rc = loop_init(&acc->loop, cfg, "acceptor", METRICS_CONTROL, acc->ips, ACC_EVENTS,
		       LOOP_INDEX_FD, &acceptor_ops, acc);
	if (rc == 0)
		rc = loop_watch(&acc->loop, acc->sigfd, &signal_marker);
	if (rc == 0)
		rc = loop_watch(&acc->loop, acc->mbox.efd, &mailbox_marker);
	if (rc < 0) {
		log_error("cannot set up epoll: %s", strerror(-rc));
		goto fail;
	}
	acc->loop.max_conns = cfg->max_clients;
	acc->loop.conn_size = sizeof(struct control_conn);
	acc->ctl = (struct control){ .cfg = cfg, .reg = reg, .store = store, .cluster = cluster,
				     .peers = { peer_reachable, peer_send, acc } };
	if (listen_control(acc, port) < 0)
		goto fail;
	if (cluster)
		cluster_set_acceptor(cluster, &acc->mbox);
	if (open_rooms(acc) < 0)
		goto fail;
	log_listening(acc);
	return acc;
fail:
	acceptor_destroy(acc);
	return NULL;
}

void acceptor_reconfigure(struct acceptor *acc, const struct config *next)
{
	/* This thread's readers (the loop, control, rooms.c) switch here, the
	 * shared tables under their locks, the room threads at their next
	 * mailbox pass. Open control connections keep what conn_create copied
	 * (send queue size, request size, their token level). */
	acc->cfg = next;
	acc->loop.cfg = next;
	acc->loop.max_conns = next->max_clients;
	acc->ctl.cfg = next;
	iptable_set_config(acc->ips, next);
	registry_set_config(acc->reg, next);
	if (acc->rooms && !acc->rooms_stopped)
		rooms_reconfigure(acc->rooms, next);
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
	loop_fini(&acc->loop); /* the connections left, then the epoll set */
	rooms_destroy(acc->rooms);
	net_listeners_close(&acc->lis);
	if (acc->sigfd >= 0)
		close(acc->sigfd);
	mailbox_fini(&acc->mbox);
	iptable_destroy(acc->ips);
	free(acc);
}

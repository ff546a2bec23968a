/* room.c - a joined room's connection and its listener thread.
 *
 * Owns the room socket, the listener thread and its frame reader. Only the
 * listener reads the socket; only the command thread writes to it (attach,
 * CHAT) and finally shuts it down, which wakes the listener for the join.
 * lock guards state, leaving, the activity counts and the seen ring, which
 * both threads touch; it is never held while printing. The numbers of the
 * messages printed go to seqtrack.h (its own lock). */
#include "room.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "activity.h"
#include "control.h"
#include "frame_reader.h"
#include "msg.h"
#include "net.h"
#include "notify.h"
#include "output.h"
#include "proto.h"
#include "tlsconn.h"
#include "seqtrack.h"

/* Per address tried: a room port that does not answer this fast is as good
 * as unreachable, and the command waits for it. */
#define ROOM_CONNECT_TIMEOUT_MS 3000
/* As for the control socket: a daemon that stops reading fails the send. */
#define ROOM_SEND_TIMEOUT_S 10

struct room {
	char *name, *client_name;  /* immutable after create */
	long ref, join_id;
	int fd;
	struct tlsconn *tls;       /* NULL: plain; set before the listener starts */
	struct notify *note;       /* not owned */
	pthread_t listener;
	struct frame_reader fr;    /* listener only */
	pthread_mutex_t lock;      /* guards the fields below */
	enum room_state state;
	int leaving;
	int current;               /* the session's current room: not counted */
	unsigned long unread;      /* messages from others while not current */
	int mentioned;             /* one of them mentioned us */
	char *seen_name[CATCHUP_SEEN], *seen_text[CATCHUP_SEEN]; /* a ring */
	size_t seen_next, seen_n;
};

/* ---- connecting -------------------------------------------------------- */

static int wait_connected(int fd, int abort_fd)
{
	struct pollfd pf[2] = { { .fd = fd, .events = POLLOUT }, { .fd = abort_fd, .events = POLLIN } };
	socklen_t len = sizeof(int);
	int n, soerr = 0;

	do {
		n = poll(pf, abort_fd >= 0 ? 2 : 1, ROOM_CONNECT_TIMEOUT_MS);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ETIMEDOUT;
	if (abort_fd >= 0 && (pf[1].revents & POLLIN))
		return -EINTR;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		return -errno;
	return -soerr;
}

/* One address: a non-blocking connect bounded in time, then back to a
 * blocking socket (the command thread's writes are bounded by SO_SNDTIMEO). */
static int dial_addr(const struct addrinfo *ai, int abort_fd)
{
	struct timeval tv = { .tv_sec = ROOM_SEND_TIMEOUT_S };
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			ai->ai_protocol);
	int rc;

	if (fd < 0)
		return -errno;
	rc = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : -errno;
	if (rc == -EINPROGRESS || rc == -EINTR)
		rc = wait_connected(fd, abort_fd);
	if (rc == 0) {
		int flags = fcntl(fd, F_GETFL);
		if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
			rc = -errno;
	}
	if (rc < 0) {
		close(fd);
		return rc;
	}
	(void)net_set_nodelay(fd); /* only latency is lost */
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

/* net_connect() without an unbounded wait: fd or -errno. */
static int dial(const char *host, unsigned port, int abort_fd)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
	char service[16];
	int fd = -ECONNREFUSED, rc;

	snprintf(service, sizeof(service), "%u", port);
	rc = getaddrinfo(host, service, &hints, &res);
	if (rc != 0)
		return rc == EAI_SYSTEM ? -errno : -ENOENT;
	for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = dial_addr(ai, abort_fd);
		if (fd >= 0 || fd == -EINTR)
			break;
	}
	freeaddrinfo(res);
	return fd;
}

/* A SERVER_IP we should not take literally: a wildcard (the daemon listens
 * everywhere and does not know its public name), or loopback when we did not
 * reach the daemon over loopback (it would be our own machine). */
static int unusable_ip(const char *ip, int control_is_loopback)
{
	static const char *const wildcards[] = { "", "0", "0.0.0.0", "::", "[::]", "*" };

	for (size_t i = 0; i < sizeof(wildcards) / sizeof(wildcards[0]); i++)
		if (strcmp(ip, wildcards[i]) == 0)
			return 1;
	return net_is_loopback(ip) && !control_is_loopback;
}

static int room_connect(const struct room_params *p)
{
	int fd = -ENOENT;

	if (!unusable_ip(p->server_ip, p->control_is_loopback)) {
		fd = dial(p->server_ip, p->port, p->abort_fd);
		if (fd >= 0 || fd == -EINTR || strcmp(p->server_ip, p->control_host) == 0)
			return fd;
	}
	/* The host we reached the control port through reaches the rooms too. */
	return dial(p->control_host, p->port, p->abort_fd);
}

/* ---- listener thread --------------------------------------------------- */

static void set_state(struct room *r, enum room_state st)
{
	pthread_mutex_lock(&r->lock);
	r->state = st;
	pthread_mutex_unlock(&r->lock);
	notify_poke(r->note);
}

static void on_error(struct room *r, const struct proto_msg *m, int attaching)
{
	long code;

	if (proto_parse_int(m->field[PROTO_F_ERROR_CODE], 0, LONG_MAX, &code) < 0)
		code = -1;
	output_server_error(code, m->field[PROTO_F_ERROR_TEXT]);
	if (attaching)
		set_state(r, ROOM_REFUSED);
	else
		notify_error(r->note, r->ref);
}

/* Report an end we did not ask for; settle the state. */
static void on_end(struct room *r, int rc)
{
	int report;

	pthread_mutex_lock(&r->lock);
	report = !r->leaving && r->state != ROOM_REFUSED;
	if (r->state != ROOM_REFUSED)
		r->state = ROOM_CLOSED;
	pthread_mutex_unlock(&r->lock);
	if (report && rc == 0)
		output_local("connection to %s closed by the server", r->name);
	else if (report)
		output_local("connection to %s lost: %s", r->name,
			     rc == -EMSGSIZE ? "oversized frame from the server" : strerror(-rc));
	notify_poke(r->note);
}

/* Remember a message for the catch-up (lock held). Out of memory forgets
 * it, which only makes the catch-up less sure of its place. */
static void seen_add_locked(struct room *r, const char *name, const char *text)
{
	size_t i = r->seen_next;
	char *n = strdup(name), *t = strdup(text);

	if (!n || !t) {
		free(n);
		free(t);
		return;
	}
	free(r->seen_name[i]);
	free(r->seen_text[i]);
	r->seen_name[i] = n;
	r->seen_text[i] = t;
	r->seen_next = (i + 1) % CATCHUP_SEEN;
	if (r->seen_n < CATCHUP_SEEN)
		r->seen_n++;
}

/* A CHAT on the room connection: printed, counted, remembered. */
static void on_chat(struct room *r, const char *name, const char *text)
{
	int own = strcmp(name, r->client_name) == 0;
	int mention = !own && activity_mentions(text, r->client_name);

	pthread_mutex_lock(&r->lock);
	if (!own && !r->current) {
		r->unread++;
		r->mentioned |= mention;
	}
	seen_add_locked(r, name, text);
	pthread_mutex_unlock(&r->lock);
	output_chat_mention(r->name, name, text, mention);
	notify_chat(r->note, r->ref, name, text);
}

static void *listener_main(void *arg)
{
	struct room *r = arg;
	struct proto_msg m;
	int rc, attaching = 1;
	long next_seq = 0; /* a SEQ frame's number for the CHAT after it (§7.7) */

	while ((rc = frame_reader_next(&r->fr, &m)) > 0) {
		if (m.kind == PROTO_R_SEQ) {
			if (proto_parse_int(m.field[PROTO_F_RSEQ_SEQ], 1, PROTO_SEQ_MAX, &next_seq) < 0)
				next_seq = 0;
		} else if (m.kind == PROTO_R_CHAT) {
			/* Not printed when a history showed it or a refill will. */
			if (next_seq <= 0 || seqtrack_live(r->ref, next_seq))
				on_chat(r, m.field[PROTO_F_RCHAT_NAME], m.field[PROTO_F_RCHAT_TEXT]);
			else
				notify_poke(r->note); /* a refill may be due */
			next_seq = 0;
		} else if (m.kind == PROTO_R_GAP) {
			control_on_gap(r->note, &m);
		} else if (m.kind == PROTO_R_ERROR) {
			on_error(r, &m, attaching);
			if (attaching)
				break; /* refused: the server closes; nothing more to read */
		} else if (m.kind == PROTO_R_ATTACHED && attaching) {
			attaching = 0;
			set_state(r, ROOM_ATTACHED);
		}
	}
	on_end(r, rc);
	return NULL;
}

/* ---- command thread ---------------------------------------------------- */

static void room_free(struct room *r)
{
	for (size_t i = 0; i < CATCHUP_SEEN; i++) {
		free(r->seen_name[i]);
		free(r->seen_text[i]);
	}
	free(r->name);
	free(r->client_name);
	free(r);
}

static int room_write(struct room *r, const struct msg *m)
{
	if (r->tls)
		return tlsconn_write_all(r->tls, m->data, m->len);
	return net_write_all(r->fd, m->data, m->len);
}

static int send_attach(struct room *r)
{
	struct msg *m = proto_write_attach_req(r->ref, r->join_id, r->client_name);
	int rc;

	if (!m)
		return -ENOMEM;
	rc = room_write(r, m);
	msg_unref(&m);
	return rc;
}

int room_create(const struct room_params *p, struct room **out)
{
	struct room *r = calloc(1, sizeof(*r));
	int rc;

	if (!r)
		return -ENOMEM;
	r->name = strdup(p->name);
	r->client_name = strdup(p->client_name);
	r->ref = p->ref;
	r->join_id = p->join_id;
	r->note = p->note;
	r->state = ROOM_ATTACHING;
	if (!r->name || !r->client_name) {
		room_free(r);
		return -ENOMEM;
	}
	r->fd = room_connect(p);
	if (r->fd < 0) {
		rc = r->fd;
		room_free(r);
		return rc;
	}
	if (p->tls && p->tls->on && (rc = tlsconn_start(r->fd, p->tls, ROOM_SEND_TIMEOUT_S, &r->tls)) < 0)
		goto fail;
	rc = send_attach(r);
	if (rc < 0)
		goto fail;
	frame_reader_init(&r->fr, r->fd);
	r->fr.tls = r->tls;
	pthread_mutex_init(&r->lock, NULL);
	rc = -pthread_create(&r->listener, NULL, listener_main, r);
	if (rc < 0) {
		frame_reader_fini(&r->fr);
		pthread_mutex_destroy(&r->lock);
		goto fail;
	}
	(void)pthread_setname_np(r->listener, "roomc-room");
	*out = r;
	return 0;

fail:
	tlsconn_free(r->tls);
	close(r->fd);
	room_free(r);
	return rc;
}

void room_set_leaving(struct room *r, int leaving)
{
	pthread_mutex_lock(&r->lock);
	r->leaving = leaving;
	pthread_mutex_unlock(&r->lock);
}

void room_destroy(struct room *r)
{
	if (!r)
		return;
	room_set_leaving(r, 1);
	/* Wakes the listener out of recv(2) whatever the server does. */
	shutdown(r->fd, SHUT_RDWR);
	pthread_join(r->listener, NULL);
	tlsconn_free(r->tls);
	close(r->fd);
	frame_reader_fini(&r->fr);
	pthread_mutex_destroy(&r->lock);
	room_free(r);
}

enum room_state room_state(struct room *r)
{
	enum room_state st;

	pthread_mutex_lock(&r->lock);
	st = r->state;
	pthread_mutex_unlock(&r->lock);
	return st;
}

int room_send(struct room *r, const char *text)
{
	struct msg *m;
	int rc;

	if (room_state(r) != ROOM_ATTACHED)
		return -ENOTCONN;
	m = proto_write_chat_req(r->ref, r->join_id, r->client_name, text);
	if (!m)
		return -ENOMEM;
	rc = room_write(r, m);
	msg_unref(&m);
	return rc;
}

void room_set_current(struct room *r, int current)
{
	pthread_mutex_lock(&r->lock);
	r->current = current;
	r->unread = 0;
	r->mentioned = 0;
	pthread_mutex_unlock(&r->lock);
}

void room_activity(struct room *r, unsigned long *unread, int *mentioned)
{
	pthread_mutex_lock(&r->lock);
	*unread = r->unread;
	*mentioned = r->mentioned;
	pthread_mutex_unlock(&r->lock);
}

void room_seed_seen(struct room *r, const char *name, const char *text)
{
	pthread_mutex_lock(&r->lock);
	if (r->seen_n == 0)
		seen_add_locked(r, name, text);
	pthread_mutex_unlock(&r->lock);
}

size_t room_copy_seen(struct room *r, char **names, char **texts)
{
	size_t n;

	pthread_mutex_lock(&r->lock);
	n = r->seen_n;
	for (size_t k = 0; k < n; k++) {
		size_t i = (r->seen_next + CATCHUP_SEEN - n + k) % CATCHUP_SEEN;
		names[k] = strdup(r->seen_name[i]);
		texts[k] = strdup(r->seen_text[i]);
		if (!names[k] || !texts[k]) {
			for (size_t j = 0; j <= k; j++) {
				free(names[j]);
				free(texts[j]);
			}
			n = 0;
			break;
		}
	}
	pthread_mutex_unlock(&r->lock);
	return n;
}

const char *room_name(const struct room *r) { return r->name; }
long room_ref(const struct room *r) { return r->ref; }
long room_join_id(const struct room *r) { return r->join_id; }

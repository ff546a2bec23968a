/* roombench.c - load generator for roomd, and for the raw-epoll limit
 * server (../shared/bench/limit_server.c) with the same workload.
 *
 * R rooms x M members; the first S members of each room send. Closed loop
 * (at most W of a sender's messages in flight: a message is in flight
 * until the sender receives its own copy) or a fixed rate per sender.
 * Every payload carries the sender, a sequence number and a send time, so
 * each delivery is checked (lost, duplicated, out of order, wrong room) and
 * timed. Reports one JSON line on stdout and a table on stderr. With
 * --servers, the members are spread over the nodes of a roomd cluster
 * (issue 15): a room's members on every node, each sender's copies relayed
 * back through the cluster.
 *
 * --tls: every connection (control and room ports) speaks TLS through
 * tlsconn.c, on the same buffers and the same loop: a connection's SSL is
 * NULL for plain TCP, and the plain path only tests that pointer.
 * --handshakes: instead of members, N connections at a time each do a
 * (TLS handshake and a) HELO round trip and close, to measure the rate of
 * new connections and the daemon's CPU per connection.
 *
 * Ownership: one thread owns everything. Every socket is non-blocking and
 * in one epoll set; output is buffered per connection and written once
 * per loop pass, so the tool costs little next to the daemon it loads. */
#include "hist.h"
#include "tlsconn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IN_CAP 16384
#define OUT_MAX (4u << 20) /* a sender's unsent bytes beyond which it skips */
#define EVENTS 512
#define DRAIN_NS (5 * NS)
#define NS 1000000000ull

enum target { T_ROOMD, T_LIMIT };
/* M_HELLO: a --handshakes connection waiting for its HELO reply. */
enum mstate { M_WAITING, M_JOINING, M_ATTACHING, M_READY, M_HELLO };
enum phase { P_SETUP, P_WARMUP, P_MEASURE, P_DRAIN, P_DONE };

struct member;

struct bconn {
	int fd;
	int want_out, dirty;
	struct member *m;
	SSL *ssl;            /* --tls; NULL: plain TCP */
	int handshaking;     /* TLS: the handshake is not done yet */
	int tls_want;        /* TLS: what the handshake or a write waits for */
	int read_wants_write; /* TLS: an SSL_read waits for the socket to take bytes */
	size_t tls_retry;    /* TLS: the len a blocked SSL_write must be given again */
	int closing;         /* --handshakes: done, closed after this event */
	uint64_t t_open;     /* --handshakes: when it connected */
	struct bconn *next_dirty;
	char *out;
	size_t outlen, outoff, outcap;
	size_t inlen;
	char in[IN_CAP];
};

struct member {
	int room, idx, sender; /* sender: global sender id, or -1 */
	enum mstate state;
	long ref, join_id;
	unsigned room_port;
	int error_code;
	struct bconn *ctl, *rc; /* rc: the attached room connection */
	uint64_t *next_seq;     /* per sender of the room: the next expected */
	char name[24];
};

struct sender {
	struct member *m;
	uint64_t sent, echoed, due_ns, skipped;
};

struct options {
	enum target target;
	const char *host, *label, *servers;
	unsigned port;
	int rooms, members, senders, bytes, window, plain, setup_par, spin, share;
	int tls, handshakes, inflight;
	const char *cafile;
	double rate, duration, warmup, setup_limit;
	long pid;
};

static struct options opt = {
	.target = T_ROOMD, .host = "127.0.0.1", .label = "", .port = 9000, .rooms = 1,
	.members = 10, .senders = 1, .bytes = 100, .window = 8, .setup_par = 128, .share = 1,
	.duration = 10, .warmup = 1, .setup_limit = 120, .pid = 0, .inflight = 32,
};

/* The run: everything below is the bench thread's. */
static int epfd;
/* The servers (--servers; else the one of --host/--port): member idx of
 * every room talks to server idx mod nservers, so each room spans them all
 * and a --share group (one idx) stays on one server. */
#define MAX_SERVERS 16
static struct server {
	struct sockaddr_in addr;
	unsigned port;
} servers[MAX_SERVERS];
static int nservers;
static struct member *members;
static struct sender *senders;
static uint64_t *room_got; /* payload deliveries per room */
static struct bconn *dirty;
static enum phase phase;
static uint64_t now_ns, t_start, t_ready, t_measure, t_measure_end, t_drain;
static uint64_t interval_ns;
static long rss_ready_kib;
static int nready, nstarted, nsetup;
static struct hist lat;
static struct {
	uint64_t good, dup, reordered, foreign, window_deliveries, window_messages;
} st;

static uint64_t clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("roombench: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (!p)
		die("out of memory");
	return p;
}

/* ---- daemon figures from /proc ---- */

static long proc_status_kib(const char *key)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", opt.pid);
	if (!opt.pid || !(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, klen) == 0 && line[klen] == ':')
			kib = strtol(line + klen + 1, NULL, 10);
	fclose(f);
	return kib;
}

static double proc_cpu_s(void)
{
	char path[64], buf[1024], *p;
	unsigned long ut, stt;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", opt.pid);
	if (!opt.pid || !(f = fopen(path, "r")))
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields after the command name, which may hold spaces: state is 3rd,
	 * utime the 14th and stime the 15th. */
	if (!(p = strrchr(buf, ')')) || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
					       &ut, &stt) != 2)
		return -1;
	return (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
}

/* ---- connections ---- */

static void conn_interest(struct bconn *c, int out)
{
	struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c };

	if (c->want_out == out)
		return;
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));
	c->want_out = out;
}

static const struct server *member_server(const struct member *m)
{
	return &servers[m->idx % nservers];
}

/* A connection of m to port of m's server (its control port, or the room
 * port its JOINED named). */
static struct bconn *conn_open(struct member *m, unsigned port)
{
	struct sockaddr_in a = member_server(m)->addr;
	struct epoll_event ev = { .events = EPOLLIN };
	struct bconn *c = xcalloc(1, sizeof(*c));
	int one = 1;

	a.sin_port = htons((uint16_t)port);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		die("socket: %s (raise the descriptor limit: ulimit -n)", strerror(errno));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS)
		die("connect to %s:%u: %s", inet_ntoa(a.sin_addr), port, strerror(errno));
	c->m = m;
	ev.data.ptr = c;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));
	if (opt.tls) {
		/* The handshake starts when the socket is writable, i.e.
		 * connected; until then flushes leave the output buffered. */
		c->ssl = tlsc_new(c->fd);
		c->handshaking = 1;
		c->tls_want = TLSC_WANT_WRITE;
		conn_interest(c, 1);
	}
	return c;
}

static void conn_close(struct bconn *c)
{
	if (c->ssl)
		tlsc_free(c->ssl);
	close(c->fd); /* also leaves the epoll set */
	free(c->out);
	free(c);
}

static void conn_append(struct bconn *c, const char *p, size_t n)
{
	if (c->outlen + n > c->outcap) {
		if (c->outoff) {
			memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
			c->outlen -= c->outoff;
			c->outoff = 0;
		}
		if (c->outlen + n > c->outcap) {
			size_t cap = c->outcap ? c->outcap : 4096;
			while (cap < c->outlen + n)
				cap *= 2;
			if (!(c->out = realloc(c->out, cap)))
				die("out of memory");
			c->outcap = cap;
		}
	}
	memcpy(c->out + c->outlen, p, n);
	c->outlen += n;
	if (!c->dirty) {
		c->dirty = 1;
		c->next_dirty = dirty;
		dirty = c;
	}
}

/* ---- TLS connections: the same buffers, through tlsconn.c ---- */

static void take_lines(struct bconn *c);

static void tls_interest(struct bconn *c)
{
	conn_interest(c, c->tls_want == TLSC_WANT_WRITE || c->read_wants_write);
}

/* Handshake if needed, then write the buffered output. Does nothing while
 * an earlier step waits for the socket: its event calls again. */
static void tls_flush(struct bconn *c)
{
	if (c->tls_want)
		return;
	if (c->handshaking) {
		if (!tlsc_handshake(c->ssl, &c->tls_want, c->m->name)) {
			tls_interest(c);
			return;
		}
		c->handshaking = 0;
	}
	while (c->outoff < c->outlen) {
		size_t len = c->tls_retry ? c->tls_retry : c->outlen - c->outoff;
		long w = tlsc_write(c->ssl, c->out + c->outoff, len, &c->tls_want, c->m->name);
		if (w < 0) {
			c->tls_retry = len;
			tls_interest(c);
			return;
		}
		c->tls_retry = 0;
		c->outoff += (size_t)w;
	}
	c->outoff = c->outlen = 0;
	tls_interest(c);
}

/* Read and handle what the socket has, a bounded amount per event (the
 * loop comes back while the socket stays readable; stopping only where
 * SSL holds no decrypted bytes, which epoll could not report). */
static void tls_read_all(struct bconn *c)
{
	size_t got = 0;
	int want = 0;

	while (!c->closing) {
		long n = tlsc_read(c->ssl, c->in + c->inlen, IN_CAP - c->inlen, &want, c->m->name);
		if (n < 0) {
			c->read_wants_write = want == TLSC_WANT_WRITE;
			tls_interest(c);
			break;
		}
		if (n == 0)
			die("%s: connection closed by the server", c->m->name);
		c->inlen += (size_t)n;
		got += (size_t)n;
		now_ns = clock_ns();
		take_lines(c);
		if (got >= 4 * IN_CAP && SSL_pending(c->ssl) == 0)
			break;
	}
}

static void tls_writable(struct bconn *c)
{
	c->tls_want = 0;
	if (c->read_wants_write) {
		c->read_wants_write = 0;
		tls_read_all(c);
	}
	if (!c->closing)
		tls_flush(c);
}

static void tls_readable(struct bconn *c)
{
	if (c->tls_want == TLSC_WANT_READ) {
		c->tls_want = 0;
		tls_flush(c);
	}
	if (!c->handshaking)
		tls_read_all(c);
}

/* ---- plain connections ---- */

static void conn_flush(struct bconn *c)
{
	if (c->ssl) {
		tls_flush(c);
		return;
	}
	while (c->outoff < c->outlen) {
		ssize_t w = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
		if (w > 0) {
			c->outoff += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == ENOTCONN)) {
			conn_interest(c, 1);
			return;
		}
		die("%s: write: %s", c->m->name, w < 0 ? strerror(errno) : "closed");
	}
	c->outoff = c->outlen = 0;
	conn_interest(c, 0);
}

/* EPOLLOUT: a full socket took bytes again, or a connect finished. */
static void conn_writable(struct bconn *c)
{
	if (c->ssl)
		tls_writable(c);
	else
		conn_flush(c);
}

static void flush_dirty(void)
{
	struct bconn *c = dirty, *next;

	dirty = NULL;
	for (; c; c = next) {
		next = c->next_dirty;
		c->dirty = 0;
		conn_flush(c);
	}
}

/* ---- setup: join (and attach) every member, a few at a time ---- */

/* Member idx of rooms first..first+share-1 share one control connection
 * (--share): like a person in several rooms, and it saves descriptors. */
static int group_end(int first_room)
{
	return first_room + opt.share < opt.rooms ? first_room + opt.share : opt.rooms;
}

static void send_join(struct bconn *c, struct member *m)
{
	char req[256];
	int n;

	if (opt.target == T_LIMIT)
		n = snprintf(req, sizeof(req), "JOIN r%d\n", m->room);
	else
		n = snprintf(req, sizeof(req),
			     "JOIN_CHATROOM: r%d\nCLIENT_IP: 0\nPORT: 0\nCLIENT_NAME: %s\n", m->room,
			     m->name);
	c->m = m;
	conn_append(c, req, (size_t)n);
	m->state = M_JOINING;
}

/* Open control connection number g: its members join one after another. */
static void start_group(int g)
{
	int groups_per_idx = (opt.rooms + opt.share - 1) / opt.share;
	int first = g % groups_per_idx * opt.share, idx = g / groups_per_idx;
	struct member *m0 = &members[first * opt.members + idx];
	struct bconn *c = conn_open(m0, member_server(m0)->port);

	for (int r = first; r < group_end(first); r++) {
		members[r * opt.members + idx].ctl = c;
		nsetup++;
	}
	send_join(c, m0);
}

static void start_more_members(void)
{
	int groups = (opt.rooms + opt.share - 1) / opt.share * opt.members;

	while (nstarted < groups && nsetup < opt.setup_par)
		start_group(nstarted++);
}

/* The member of room that control connection c serves, or NULL. */
static struct member *member_on_ctl(struct bconn *c, int room)
{
	int first = c->m->room / opt.share * opt.share;

	if (room < first || room >= group_end(first))
		return NULL;
	return &members[room * opt.members + c->m->idx];
}

static void member_ready(struct member *m)
{
	m->state = M_READY;
	nsetup--;
	nready++;
	start_more_members();
}

static void member_joined(struct member *m)
{
	char req[256];
	int n;

	if (m->room + 1 < group_end(m->room / opt.share * opt.share))
		send_join(m->ctl, &members[(m->room + 1) * opt.members + m->idx]);
	if (opt.target == T_LIMIT || opt.plain) {
		member_ready(m);
		return;
	}
	m->rc = conn_open(m, m->room_port);
	n = snprintf(req, sizeof(req), "ATTACH_CHATROOM: %ld\nJOIN_ID: %ld\nCLIENT_NAME: %s\n",
		     m->ref, m->join_id, m->name);
	conn_append(m->rc, req, (size_t)n);
	m->state = M_ATTACHING;
}

/* ---- traffic ---- */

static uint64_t parse_u64(const char **p, const char *end)
{
	uint64_t v = 0;

	while (*p < end && **p >= '0' && **p <= '9')
		v = v * 10 + (uint64_t)(*(*p)++ - '0');
	return v;
}

static void send_one(struct sender *s, uint64_t stamp)
{
	struct member *m = s->m;
	struct bconn *c = m->rc ? m->rc : m->ctl;
	char buf[256 + 65536];
	int head, n;

	if (c->outlen - c->outoff > OUT_MAX) {
		s->skipped++;
		return;
	}
	if (opt.target == T_LIMIT)
		head = 0;
	else
		head = snprintf(buf, 256, "CHAT: %ld\nJOIN_ID: %ld\nCLIENT_NAME: %s\nMESSAGE: ", m->ref,
				m->join_id, m->name);
	n = snprintf(buf + head, 64, "~%d.%" PRIu64 ".%" PRIu64 ".", m->sender, s->sent, stamp);
	if (n < opt.bytes) {
		memset(buf + head + n, 'x', (size_t)(opt.bytes - n));
		n = opt.bytes;
	}
	n += head;
	buf[n++] = '\n';
	if (opt.target == T_ROOMD)
		buf[n++] = '\n';
	conn_append(c, buf, (size_t)n);
	s->sent++;
	if (phase == P_MEASURE)
		st.window_messages++;
}

static int sending(void)
{
	return phase == P_WARMUP || phase == P_MEASURE;
}

static void closed_loop_refill(struct sender *s)
{
	while (sending() && s->sent - s->echoed < (uint64_t)opt.window)
		send_one(s, now_ns);
}

/* Fixed rate: send what is due; returns when the next send is due. The
 * stamp is the time the message is queued: if the server pushes back, the
 * wait in our buffer counts as latency. */
static uint64_t paced_sends(void)
{
	int n = opt.rooms * opt.senders;
	uint64_t next = UINT64_MAX;

	if (!sending())
		return next;
	for (int i = 0; i < n; i++) {
		struct sender *s = &senders[i];
		while (s->due_ns <= now_ns) {
			send_one(s, now_ns);
			s->due_ns += interval_ns;
		}
		if (s->due_ns < next)
			next = s->due_ns;
	}
	return next;
}

/* A payload "~SENDER.SEQ.STAMP.xxx" delivered on c. */
static void on_payload(struct bconn *c, const char *p, const char *end)
{
	struct member *m;
	uint64_t sid, seq, stamp, *next;
	int room, j;

	p++;
	sid = parse_u64(&p, end);
	p++;
	seq = parse_u64(&p, end);
	p++;
	stamp = parse_u64(&p, end);
	if (sid >= (uint64_t)opt.rooms * (uint64_t)opt.senders) {
		st.foreign++;
		return;
	}
	room = (int)(sid / (uint64_t)opt.senders);
	j = (int)(sid % (uint64_t)opt.senders);
	m = c == c->m->rc ? c->m : member_on_ctl(c, room);
	if (!m || room != m->room) {
		st.foreign++;
		return;
	}
	next = &m->next_seq[j];
	if (seq < *next) {
		st.dup++;
		return;
	}
	if (seq > *next)
		st.reordered++;
	*next = seq + 1;
	st.good++;
	room_got[room]++;
	if (phase == P_MEASURE) {
		st.window_deliveries++;
		hist_record(&lat, now_ns > stamp ? now_ns - stamp : 0);
	}
	if ((uint64_t)m->sender == sid) {
		struct sender *s = &senders[sid];
		s->echoed++;
		if (interval_ns == 0)
			closed_loop_refill(s);
	}
}

static void on_error_line(struct member *m, const char *line, size_t len)
{
	if (len > 12 && memcmp(line, "ERROR_CODE: ", 12) == 0)
		m->error_code = atoi(line + 12);
	else if (m->error_code)
		die("%s: error %d (%.*s)", m->name, m->error_code, (int)len, line);
}

static void hello_answered(struct bconn *c);

static void on_roomd_line(struct bconn *c, const char *line, size_t len)
{
	struct member *m = c->m;
	const char *end = line + len;

	if (len > 10 && memcmp(line, "MESSAGE: ~", 10) == 0) {
		on_payload(c, line + 9, end);
		return;
	}
	if (m->state == M_READY || len < 6)
		return;
	if (memcmp(line, "PORT: ", 6) == 0) {
		m->room_port = (unsigned)atoi(line + 6);
	} else if (len > 10 && memcmp(line, "ROOM_REF: ", 10) == 0) {
		m->ref = atol(line + 10);
	} else if (len > 9 && memcmp(line, "JOIN_ID: ", 9) == 0) {
		if (m->state == M_JOINING && c == m->ctl) {
			m->join_id = atol(line + 9);
			member_joined(m);
		} else if (m->state == M_ATTACHING && c == m->rc) {
			member_ready(m);
		}
	} else if (memcmp(line, "ERROR_", 6) == 0) {
		on_error_line(m, line, len);
	} else if (m->state == M_HELLO && len >= 10 && memcmp(line, "StudentID:", 10) == 0) {
		hello_answered(c); /* the HELO reply's last line */
	}
}

static void on_limit_line(struct bconn *c, const char *line, size_t len)
{
	if (len > 0 && line[0] == '~')
		on_payload(c, line, line + len);
	else if (c->m->state == M_JOINING && len > 7 && memcmp(line, "JOINED ", 7) == 0)
		member_ready(c->m);
}

/* Handle every complete line in c's input and keep the rest. */
static void take_lines(struct bconn *c)
{
	size_t start = 0;

	for (;;) {
		char *nl = memchr(c->in + start, '\n', c->inlen - start);
		size_t len;
		if (!nl)
			break;
		len = (size_t)(nl - (c->in + start));
		if (opt.target == T_ROOMD)
			on_roomd_line(c, c->in + start, len);
		else
			on_limit_line(c, c->in + start, len);
		start += len + 1;
	}
	if (start == 0 && c->inlen == IN_CAP)
		die("%s: a line longer than %d bytes", c->m->name, IN_CAP);
	memmove(c->in, c->in + start, c->inlen - start);
	c->inlen -= start;
}

static void on_readable(struct bconn *c)
{
	ssize_t n;

	if (c->ssl) {
		tls_readable(c);
		return;
	}
	n = recv(c->fd, c->in + c->inlen, IN_CAP - c->inlen, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0)
		die("%s: connection closed by the server%s%s", c->m->name, n < 0 ? ": " : "",
		    n < 0 ? strerror(errno) : "");
	c->inlen += (size_t)n;
	now_ns = clock_ns();
	take_lines(c);
}

/* ---- phases ---- */

static uint64_t expected_deliveries(void)
{
	uint64_t sent = 0;

	for (int i = 0; i < opt.rooms * opt.senders; i++)
		sent += senders[i].sent;
	return sent * (uint64_t)opt.members;
}

static void start_traffic(void)
{
	phase = P_WARMUP;
	t_ready = now_ns;
	/* The daemon's RSS with every member in, before any message. */
	rss_ready_kib = proc_status_kib("VmRSS");
	for (int i = 0; i < opt.rooms * opt.senders; i++) {
		/* Spread the first sends over one interval. */
		senders[i].due_ns = now_ns + (interval_ns ? interval_ns * (uint64_t)i /
							    (uint64_t)(opt.rooms * opt.senders) : 0);
		if (!interval_ns)
			closed_loop_refill(&senders[i]);
	}
}

static double cpu_at_measure, cpu_at_end;

static void advance_phase(void)
{
	uint64_t warm = (uint64_t)(opt.warmup * NS), dur = (uint64_t)(opt.duration * NS);

	if (phase == P_SETUP && nready == opt.rooms * opt.members) {
		start_traffic();
	} else if (phase == P_SETUP && now_ns - t_start > (uint64_t)(opt.setup_limit * NS)) {
		die("setup not done after %.0f s: %d of %d members ready", opt.setup_limit, nready,
		    opt.rooms * opt.members);
	} else if (phase == P_WARMUP && now_ns - t_ready >= warm) {
		phase = P_MEASURE;
		t_measure = now_ns;
		cpu_at_measure = proc_cpu_s();
	} else if (phase == P_MEASURE && now_ns - t_measure >= dur) {
		phase = P_DRAIN;
		t_measure_end = t_drain = now_ns;
		cpu_at_end = proc_cpu_s();
	} else if (phase == P_DRAIN &&
		   (st.good >= expected_deliveries() || now_ns - t_drain > DRAIN_NS)) {
		phase = P_DONE;
	}
}

static void run(void)
{
	struct epoll_event evs[EVENTS];
	uint64_t next_due = UINT64_MAX;

	t_start = now_ns = clock_ns();
	start_more_members();
	while (phase != P_DONE) {
		/* Wake for the next paced send to the nanosecond (epoll_pwait2):
		 * a millisecond tick would add up to 1 ms to every latency. */
		uint64_t wait = 100 * 1000000ull;
		struct timespec ts;
		int n;

		if (next_due != UINT64_MAX)
			wait = next_due > now_ns ? next_due - now_ns : 0;
		if (opt.spin && phase != P_SETUP)
			wait = 0;
		ts.tv_sec = (time_t)(wait / NS);
		ts.tv_nsec = (long)(wait % NS);
		flush_dirty();
		n = epoll_pwait2(epfd, evs, EVENTS, &ts, NULL);
		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		now_ns = clock_ns();
		for (int i = 0; i < n; i++) {
			struct bconn *c = evs[i].data.ptr;
			if (evs[i].events & EPOLLOUT)
				conn_writable(c);
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				on_readable(c);
		}
		now_ns = clock_ns();
		next_due = interval_ns ? paced_sends() : UINT64_MAX;
		advance_phase();
	}
}

/* ---- --handshakes: new connections, each a HELO round trip ---- */

static struct member hello_member = { .state = M_HELLO, .sender = -1, .name = "hello" };
static struct {
	int inflight, unfinished;
	uint64_t window_done;
	double self_cpu_at_measure, self_cpu_at_end; /* roombench's own */
} hello;

/* roombench's own CPU seconds: with its core busy all the time, the tool,
 * not the daemon, set the rate. */
static double self_cpu_s(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return -1;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* A new connection with its HELO queued (sent once the handshake is
 * done). It closes first, so its port waits in TIME_WAIT; Linux reuses
 * such ports for new loopback connections (net.ipv4.tcp_tw_reuse = 2, the
 * default), so a long run does not run out of ephemeral ports. */
static void hello_open(void)
{
	static const char helo[] = "HELO roombench\n";
	struct bconn *c = conn_open(&hello_member, member_server(&hello_member)->port);

	c->t_open = now_ns;
	conn_append(c, helo, sizeof(helo) - 1);
	hello.inflight++;
}

static void hello_answered(struct bconn *c)
{
	c->closing = 1;
	if (phase == P_MEASURE) {
		hello.window_done++;
		hist_record(&lat, now_ns > c->t_open ? now_ns - c->t_open : 0);
	}
}

static void advance_hello_phase(void)
{
	uint64_t warm = (uint64_t)(opt.warmup * NS), dur = (uint64_t)(opt.duration * NS);

	if (phase == P_WARMUP && now_ns - t_ready >= warm) {
		phase = P_MEASURE;
		t_measure = now_ns;
		cpu_at_measure = proc_cpu_s();
		hello.self_cpu_at_measure = self_cpu_s();
	} else if (phase == P_MEASURE && now_ns - t_measure >= dur) {
		phase = P_DRAIN;
		t_measure_end = t_drain = now_ns;
		cpu_at_end = proc_cpu_s();
		hello.self_cpu_at_end = self_cpu_s();
	} else if (phase == P_DRAIN && (hello.inflight == 0 || now_ns - t_drain > DRAIN_NS)) {
		hello.unfinished = hello.inflight;
		phase = P_DONE;
	}
}

/* Never spins (--spin): its own CPU time is one of its figures. */
static void run_hellos(void)
{
	struct epoll_event evs[EVENTS];

	t_start = t_ready = now_ns = clock_ns();
	phase = P_WARMUP;
	while (phase != P_DONE) {
		struct timespec ts = { 0, 10 * 1000000L };
		int n;

		while (sending() && hello.inflight < opt.inflight)
			hello_open();
		flush_dirty();
		n = epoll_pwait2(epfd, evs, EVENTS, &ts, NULL);
		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		now_ns = clock_ns();
		for (int i = 0; i < n; i++) {
			struct bconn *c = evs[i].data.ptr;
			if (evs[i].events & EPOLLOUT)
				conn_writable(c);
			if (!c->closing && evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				on_readable(c);
			if (c->closing) {
				conn_close(c);
				hello.inflight--;
			}
		}
		now_ns = clock_ns();
		advance_hello_phase();
	}
}

/* ---- report ---- */

/* Prints the figures; returns the exit status: 3 when a delivery check
 * failed (lost, duplicated, reordered, misrouted, a silent room). */
static int report(long rss_base, long rss_ready)
{
	double secs = (double)(t_measure_end - t_measure) / 1e9;
	double setup = (double)(t_ready - t_start) / 1e9;
	uint64_t expected = expected_deliveries(), skipped = 0;
	uint64_t lost = expected > st.good ? expected - st.good : 0;
	long rss_peak = proc_status_kib("VmHWM");
	double cpu = cpu_at_end >= 0 && cpu_at_measure >= 0 ? cpu_at_end - cpu_at_measure : -1;
	long nmem = (long)opt.rooms * opt.members;
	double per_member = rss_base >= 0 && rss_ready >= 0 ? (double)(rss_ready - rss_base) * 1024.0 / (double)nmem : -1;
	/* What the daemon spent per delivery measured: comparable across servers
	 * and runs on a shared machine, where rates vary with the neighbours. */
	double cpu_per = cpu >= 0 && st.window_deliveries ? cpu * 1e6 / (double)st.window_deliveries : -1;
	int silent = 0;

	for (int i = 0; i < opt.rooms * opt.senders; i++)
		skipped += senders[i].skipped;
	for (int i = 0; i < opt.rooms; i++)
		silent += room_got[i] == 0;
	printf("{\"label\":\"%s\",\"target\":\"%s\",\"rooms\":%d,\"members\":%d,\"senders\":%d,"
	       "\"bytes\":%d,\"mode\":\"%s\",\"window\":%d,\"rate\":%.0f,\"plain\":%d,\"tls\":%d,"
	       "\"seconds\":%.3f,\"setup_s\":%.3f,\"messages_per_s\":%.0f,\"deliveries_per_s\":%.0f,"
	       "\"lat_p50_us\":%.1f,\"lat_p99_us\":%.1f,\"lat_p999_us\":%.1f,\"lat_max_us\":%.1f,"
	       "\"deliveries\":%" PRIu64 ",\"expected\":%" PRIu64 ",\"lost\":%" PRIu64
	       ",\"duplicated\":%" PRIu64 ",\"reordered\":%" PRIu64 ",\"misrouted\":%" PRIu64
	       ",\"skipped_sends\":%" PRIu64 ",\"silent_rooms\":%d,"
	       "\"daemon_cpu_s\":%.2f,\"daemon_cpu_us_per_delivery\":%.3f,\"daemon_rss_peak_kib\":%ld,\"daemon_rss_base_kib\":%ld,"
	       "\"daemon_rss_ready_kib\":%ld,\"daemon_rss_per_member_b\":%.0f}\n",
	       opt.label, opt.target == T_ROOMD ? "roomd" : "limit", opt.rooms, opt.members,
	       opt.senders, opt.bytes, interval_ns ? "rate" : "closed", opt.window, opt.rate,
	       opt.plain, opt.tls, secs, setup, (double)st.window_messages / secs,
	       (double)st.window_deliveries / secs, (double)hist_quantile(&lat, 0.50) / 1e3,
	       (double)hist_quantile(&lat, 0.99) / 1e3, (double)hist_quantile(&lat, 0.999) / 1e3,
	       (double)lat.max / 1e3, st.good, expected, lost, st.dup, st.reordered, st.foreign,
	       skipped, silent, cpu, cpu_per, rss_peak, rss_base, rss_ready, per_member);
	fflush(stdout);
	fprintf(stderr,
		"roombench %s %s: %d rooms x %d members, %d senders/room, %d B, %s%s\n"
		"  setup            %10.3f s\n"
		"  messages/s       %10.0f\n"
		"  deliveries/s     %10.0f\n"
		"  latency us       p50 %.1f  p99 %.1f  p999 %.1f  max %.1f\n"
		"  lost/dup/reorder %" PRIu64 " / %" PRIu64 " / %" PRIu64 "  (misrouted %" PRIu64
		", skipped sends %" PRIu64 ", silent rooms %d)\n"
		"  daemon           cpu %.2f s in %.1f s (%.3f us/delivery), rss peak %ld KiB, base %ld, ready %ld (%.0f B/member)\n",
		opt.label, opt.target == T_ROOMD ? "roomd" : "limit", opt.rooms, opt.members,
		opt.senders, opt.bytes, interval_ns ? "fixed rate" : "closed loop", opt.tls ? ", TLS" : "", setup,
		(double)st.window_messages / secs, (double)st.window_deliveries / secs,
		(double)hist_quantile(&lat, 0.50) / 1e3, (double)hist_quantile(&lat, 0.99) / 1e3,
		(double)hist_quantile(&lat, 0.999) / 1e3, (double)lat.max / 1e3, lost, st.dup,
		st.reordered, st.foreign, skipped, silent, cpu, secs, cpu_per, rss_peak, rss_base, rss_ready,
		per_member);
	return lost || st.dup || st.reordered || st.foreign || (opt.senders && silent) ? 3 : 0;
}

/* The --handshakes figures; 3 when a connection did not finish or none did. */
static int report_hellos(void)
{
	double secs = (double)(t_measure_end - t_measure) / 1e9;
	double cpu = cpu_at_end >= 0 && cpu_at_measure >= 0 ? cpu_at_end - cpu_at_measure : -1;
	double rate = (double)hello.window_done / secs;
	double cpu_per = cpu >= 0 && hello.window_done ? cpu * 1e6 / (double)hello.window_done : -1;
	double self = hello.self_cpu_at_end - hello.self_cpu_at_measure;
	double self_per = hello.window_done ? self * 1e6 / (double)hello.window_done : -1;
	const char *what = opt.tls ? "TLS handshakes + HELO" : "connections + HELO";

	printf("{\"label\":\"%s\",\"target\":\"roomd\",\"mode\":\"handshakes\",\"tls\":%d,"
	       "\"inflight\":%d,\"seconds\":%.3f,\"handshakes\":%" PRIu64 ",\"handshakes_per_s\":%.0f,"
	       "\"lat_p50_us\":%.1f,\"lat_p99_us\":%.1f,\"lat_max_us\":%.1f,\"unfinished\":%d,"
	       "\"daemon_cpu_s\":%.2f,\"daemon_cpu_us_per_handshake\":%.1f,\"daemon_rss_peak_kib\":%ld,"
	       "\"bench_cpu_s\":%.2f,\"bench_cpu_us_per_handshake\":%.1f}\n",
	       opt.label, opt.tls, opt.inflight, secs, hello.window_done, rate,
	       (double)hist_quantile(&lat, 0.50) / 1e3, (double)hist_quantile(&lat, 0.99) / 1e3,
	       (double)lat.max / 1e3, hello.unfinished, cpu, cpu_per, proc_status_kib("VmHWM"), self,
	       self_per);
	fflush(stdout);
	fprintf(stderr,
		"roombench %s: %s, %d in flight\n"
		"  per second       %10.0f\n"
		"  connect to reply us  p50 %.1f  p99 %.1f  max %.1f\n"
		"  unfinished       %d\n"
		"  daemon           cpu %.2f s in %.1f s (%.1f us per connection)\n"
		"  roombench        cpu %.2f s (%.1f us per connection)\n",
		opt.label, what, opt.inflight, rate, (double)hist_quantile(&lat, 0.50) / 1e3,
		(double)hist_quantile(&lat, 0.99) / 1e3, (double)lat.max / 1e3, hello.unfinished, cpu,
		secs, cpu_per, self, self_per);
	return hello.unfinished || !hello.window_done ? 3 : 0;
}

/* ---- command line ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: roombench [options]\n"
		"  -t, --target roomd|limit  the server's protocol (default roomd)\n"
		"  -H, --host ADDR           server address, IPv4 (default 127.0.0.1)\n"
		"  -p, --port PORT           control port, or the limit server's port (default 9000)\n"
		"      --servers LIST        roomd nodes of a cluster, ADDR:PORT,ADDR:PORT,... (at\n"
		"                            most 16; instead of -H/-p): member i of each room\n"
		"                            uses node i mod n\n"
		"  -r, --rooms N             rooms (default 1)\n"
		"  -m, --members N           members per room, senders included (default 10)\n"
		"  -s, --senders N           senders per room (default 1)\n"
		"  -b, --bytes N             payload bytes (default 100)\n"
		"  -w, --window N            closed loop: a sender's messages in flight (default 8)\n"
		"  -R, --rate N              fixed rate: messages/s per sender (instead of -w)\n"
		"  -d, --duration S          measured seconds (default 10)\n"
		"      --warmup S            traffic before measuring (default 1)\n"
		"      --plain               roomd: members stay on the control connection\n"
		"      --share K             roomd: member i of K rooms in a row share one control\n"
		"                            connection (default 1: one each)\n"
		"      --pid PID             the daemon: report its CPU seconds and RSS\n"
		"      --spin                poll without sleeping once traffic starts: the\n"
		"                            server never pays to wake the tool (give the tool\n"
		"                            a core of its own; not with --handshakes)\n"
		"      --setup-parallel N    members being set up at once (default 128)\n"
		"      --setup-limit S       give up if setup takes longer (default 120)\n"
		"      --tls                 roomd: every connection (control and room ports)\n"
		"                            speaks TLS; the server's certificate is not\n"
		"                            verified (a load generator) unless --cafile\n"
		"      --cafile FILE         --tls: verify the server's certificate against\n"
		"                            these PEM CAs, and that it names --host\n"
		"      --handshakes          roomd: no members; for the duration, connections\n"
		"                            that each do a full TLS handshake (with --tls; no\n"
		"                            session resumption) and one HELO round trip, then\n"
		"                            close: reports them per second, the daemon's and\n"
		"                            roombench's own CPU per connection\n"
		"      --inflight N          --handshakes: connections at once (default 32)\n"
		"  -l, --label TEXT          a label for the JSON line\n"
		"  -h, --help\n"
		"Prints one JSON line on stdout and a table on stderr; exits 1 on any\n"
		"setup or connection failure, 3 when the run completed but a check failed\n"
		"(a delivery lost, duplicated, reordered or misrouted, a silent room; a\n"
		"connection of --handshakes unfinished). Stops by itself.\n");
}

static long num_arg(const char *s, long min, long max, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < min || v > max)
		die("%s: '%s' is not a number in %ld..%ld", what, s, min, max);
	return v;
}

static double secs_arg(const char *s, const char *what)
{
	char *end;
	double v = strtod(s, &end);

	if (*end || !(v >= 0) || v > 86400)
		die("%s: '%s' is not a number of seconds", what, s);
	return v;
}

static void add_server(const char *host, unsigned port, const char *what)
{
	struct server *sv = &servers[nservers];

	if (nservers == MAX_SERVERS)
		die("%s: at most %d servers", what, MAX_SERVERS);
	if (inet_pton(AF_INET, host, &sv->addr.sin_addr) != 1)
		die("%s: '%s' is not an IPv4 address", what, host);
	sv->addr.sin_family = AF_INET;
	sv->port = port;
	nservers++;
}

/* --servers ADDR:PORT,ADDR:PORT,... */
static void parse_servers(const char *list)
{
	char buf[1024], *save = NULL;

	if (strlen(list) >= sizeof(buf))
		die("--servers: list too long");
	strcpy(buf, list);
	for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *colon = strrchr(item, ':');

		if (!colon)
			die("--servers: '%s' is not ADDR:PORT", item);
		*colon = '\0';
		add_server(item, (unsigned)num_arg(colon + 1, 1, 65535, "--servers port"), "--servers");
	}
	if (!nservers)
		die("--servers: no server in '%s'", list);
}

static void parse_args(int argc, char **argv)
{
	enum { O_WARMUP = 256, O_PLAIN, O_PID, O_SETUP_PAR, O_SETUP_LIMIT, O_SPIN, O_SHARE, O_TLS,
	       O_CAFILE, O_HANDSHAKES, O_INFLIGHT, O_SERVERS };
	static const struct option lo[] = {
		{ "target", 1, 0, 't' },	 { "host", 1, 0, 'H' },	   { "port", 1, 0, 'p' },
		{ "rooms", 1, 0, 'r' },		 { "members", 1, 0, 'm' }, { "senders", 1, 0, 's' },
		{ "bytes", 1, 0, 'b' },		 { "window", 1, 0, 'w' },  { "rate", 1, 0, 'R' },
		{ "duration", 1, 0, 'd' },	 { "warmup", 1, 0, O_WARMUP },
		{ "plain", 0, 0, O_PLAIN },	 { "pid", 1, 0, O_PID },
		{ "setup-parallel", 1, 0, O_SETUP_PAR }, { "setup-limit", 1, 0, O_SETUP_LIMIT },
		{ "spin", 0, 0, O_SPIN },	 { "share", 1, 0, O_SHARE },
		{ "tls", 0, 0, O_TLS },		 { "cafile", 1, 0, O_CAFILE },
		{ "handshakes", 0, 0, O_HANDSHAKES }, { "inflight", 1, 0, O_INFLIGHT },
		{ "servers", 1, 0, O_SERVERS },
		{ "label", 1, 0, 'l' },		 { "help", 0, 0, 'h' },	   { 0, 0, 0, 0 },
	};
	int o;

	while ((o = getopt_long(argc, argv, "t:H:p:r:m:s:b:w:R:d:l:h", lo, NULL)) != -1) {
		switch (o) {
		case 't':
			if (strcmp(optarg, "roomd") && strcmp(optarg, "limit"))
				die("--target: roomd or limit");
			opt.target = strcmp(optarg, "roomd") ? T_LIMIT : T_ROOMD;
			break;
		case 'H': opt.host = optarg; break;
		case 'p': opt.port = (unsigned)num_arg(optarg, 1, 65535, "--port"); break;
		case 'r': opt.rooms = (int)num_arg(optarg, 1, 100000, "--rooms"); break;
		case 'm': opt.members = (int)num_arg(optarg, 1, 1000000, "--members"); break;
		case 's': opt.senders = (int)num_arg(optarg, 0, 1000, "--senders"); break;
		case 'b': opt.bytes = (int)num_arg(optarg, 40, 65536, "--bytes"); break;
		case 'w': opt.window = (int)num_arg(optarg, 1, 100000, "--window"); break;
		case 'R': opt.rate = secs_arg(optarg, "--rate"); break;
		case 'd': opt.duration = secs_arg(optarg, "--duration"); break;
		case O_WARMUP: opt.warmup = secs_arg(optarg, "--warmup"); break;
		case O_PLAIN: opt.plain = 1; break;
		case O_SPIN: opt.spin = 1; break;
		case O_SHARE: opt.share = (int)num_arg(optarg, 1, 1000, "--share"); break;
		case O_TLS: opt.tls = 1; break;
		case O_CAFILE: opt.cafile = optarg; break;
		case O_HANDSHAKES: opt.handshakes = 1; break;
		case O_INFLIGHT: opt.inflight = (int)num_arg(optarg, 1, 10000, "--inflight"); break;
		case O_PID: opt.pid = num_arg(optarg, 1, 1L << 30, "--pid"); break;
		case O_SETUP_PAR: opt.setup_par = (int)num_arg(optarg, 1, 100000, "--setup-parallel"); break;
		case O_SETUP_LIMIT: opt.setup_limit = secs_arg(optarg, "--setup-limit"); break;
		case O_SERVERS: opt.servers = optarg; break;
		case 'l': opt.label = optarg; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind < argc)
		die("unexpected argument '%s' (see --help)", argv[optind]);
	if (opt.share > 1 && opt.target == T_LIMIT)
		die("--share: the limit server's connections hold one room each");
	if ((opt.tls || opt.handshakes) && opt.target == T_LIMIT)
		die("--tls, --handshakes: roomd only (the limit server speaks plain TCP)");
	if (opt.cafile && !opt.tls)
		die("--cafile: only with --tls");
	if (opt.senders > opt.members)
		die("--senders %d is more than --members %d", opt.senders, opt.members);
	if (opt.duration <= 0)
		die("--duration must be above 0");
	if (opt.rate > 0)
		interval_ns = (uint64_t)(1e9 / opt.rate);
	if (opt.servers)
		parse_servers(opt.servers);
	else
		add_server(opt.host, opt.port, "--host");
}

static void make_members(void)
{
	int total = opt.rooms * opt.members, ns = opt.rooms * opt.senders;

	members = xcalloc((size_t)total, sizeof(*members));
	senders = xcalloc((size_t)(ns ? ns : 1), sizeof(*senders));
	room_got = xcalloc((size_t)opt.rooms, sizeof(*room_got));
	for (int i = 0; i < total; i++) {
		struct member *m = &members[i];
		m->room = i / opt.members;
		m->idx = i % opt.members;
		m->sender = m->idx < opt.senders ? m->room * opt.senders + m->idx : -1;
		m->next_seq = xcalloc((size_t)(opt.senders ? opt.senders : 1), sizeof(uint64_t));
		snprintf(m->name, sizeof(m->name), "m%d_%d", m->room, m->idx);
		if (m->sender >= 0)
			senders[m->sender].m = m;
	}
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	rlim_t ctl = (rlim_t)((opt.rooms + opt.share - 1) / opt.share) * (rlim_t)opt.members;
	rlim_t need = ctl + (opt.plain || opt.target == T_LIMIT ? 0 : (rlim_t)opt.rooms * (rlim_t)opt.members) + 64;

	if (opt.handshakes)
		need = (rlim_t)opt.inflight + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need)
		die("%lu descriptors needed, the limit is %lu (ulimit -n)", (unsigned long)need,
		    (unsigned long)rl.rlim_cur);
}

int main(int argc, char **argv)
{
	long rss_base;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	if (opt.tls)
		tlsc_init(opt.cafile, opt.host);
	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll_create1: %s", strerror(errno));
	cpu_at_measure = cpu_at_end = -1;
	if (opt.handshakes) {
		run_hellos();
		return report_hellos();
	}
	make_members();
	rss_base = proc_status_kib("VmRSS");
	run();
	return report(rss_base, rss_ready_kib);
}

/* fuzz_control.c - libFuzzer target for the control-port request handler,
 * fed through the acceptor exactly as a client's bytes are: a socketpair
 * whose one end is adopted as a control connection (acceptor_adopt), the
 * acceptor driven one loop pass at a time (acceptor_step), the rooms real
 * threads. The fuzzer's end writes the input and reads every reply.
 *
 * Input: byte 0 is a set of flags (FUZZ_* below; some change the config);
 * the rest is split at each 0xff byte into segments, written in turn (to
 * connections A and B alternately in two-connection mode), each handled
 * before the next is written. JOIN_IDs are random, so "$J<d>" in a segment
 * becomes the JOIN_ID of the d-th JOINED_CHATROOM reply received so far
 * (either connection) and "$R<d>" its ROOM_REF: a LEAVE or CHAT may name a
 * live membership, its own or the other connection's.
 *
 * Checked: acceptor_step never fails; every byte the daemon sends parses as
 * reply frames (a client never sees a frame it cannot parse) with sane
 * values; once the fuzzer's end is closed, the daemon closes its end (no
 * connection outlives its client); once the daemon is torn down, every
 * descriptor it opened is closed and (LeakSanitizer) its memory freed.
 *
 * The config is made once. The daemon (registry, acceptor, room threads)
 * is made for each input and torn down after it (about 0.4 ms), so every
 * input runs alone and replays the same, and rooms created by JOINs do not
 * pile up against max_rooms. The fuzzer thread is the acceptor's thread.
 *
 * FUZZ_CONTROL_TRACE=1 in the environment prints what each connection sends
 * and receives, to see what an input does:
 *     FUZZ_CONTROL_TRACE=1 build/fuzz/fuzz_control tests/fuzz/corpus/control/session */
#include "acceptor.h"
#include "config.h"
#include "log.h"
#include "proto.h"
#include "registry.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Flags in byte 0. */
#define FUZZ_TWO_CONNS 0x01  /* segments alternate between A and B */
#define FUZZ_WRITE_MASK 0x06 /* how each segment is cut into writes */
#define FUZZ_FAR_PEER 0x08   /* A comes from a non-loopback address */
#define FUZZ_SLOW_READER 0x10 /* small socket buffers, replies read slowly:
				* the daemon's partial writes and EPOLLOUT */
#define FUZZ_NO_CREATION 0x20 /* [features] room_creation off */
#define FUZZ_TIGHT_RATE 0x40  /* rate 10000/s, burst 2: the token bucket */

#define FUZZ_SEPARATOR 0xff
#define FUZZ_MAX_JOINED 16
#define FUZZ_SLOW_READ 256
/* Loop passes allowed for one segment's requests and replies to settle;
 * the whole input stays far below libFuzzer's -timeout. */
#define FUZZ_SETTLE_PASSES 200
#define FUZZ_QUIET_PASSES 3
#define FUZZ_QUIET_US 50
/* How long a closed client's connection may survive on the daemon side:
 * the close grace period plus a sweep, with margin. */
#define FUZZ_TEARDOWN_MS 4000

#define CHECK(cond)                                                                         \
	do {                                                                                \
		if (!(cond)) {                                                              \
			fprintf(stderr, "fuzz_control: %s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                                           \
			abort();                                                            \
		}                                                                           \
	} while (0)

/* One simulated client: our end of the socketpair and its reply stream. */
struct client {
	int fd;            /* our end; -1 once closed */
	int server_fd;     /* the daemon's end, as adopted */
	ino_t server_ino;  /* its socket inode, to tell it from a reused fd */
	int eof;           /* the daemon closed its end */
	int slow;          /* read at most FUZZ_SLOW_READ bytes at a time */
	char name;         /* 'A' or 'B', for traces */
	struct proto_parser parser;
	char *buf;         /* reply bytes not yet parsed */
	size_t len, cap;
};

static struct config cfg;
static struct registry *reg;
static struct acceptor *acc;
static int stopped; /* KILL_SERVICE honoured: the daemon is stopping */
static int quiet_wait_ms; /* settle()'s first quiet pass waits in the loop */
static int trace;   /* FUZZ_CONTROL_TRACE set */
static int lowest_free_fd; /* before the current daemon existed */

/* JOINED_CHATROOM replies of the current input, for $J and $R. */
static char joined_id[FUZZ_MAX_JOINED][16], joined_ref[FUZZ_MAX_JOINED][16];
static size_t njoined;

/* ---- the daemon ---------------------------------------------------------- */

/* The lowest descriptor number not in use. */
static int lowest_fd(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	CHECK(fd >= 0);
	close(fd);
	return fd;
}

/* A daemon for one input; no thread of the last one is left, so the
 * config may change first. */
static void daemon_start(unsigned flags)
{
	cfg.room_creation = !(flags & FUZZ_NO_CREATION);
	/* Throttling slows the fuzzer down (a millisecond wait every ten
	 * requests here), so only some inputs meet it. */
	cfg.rate = flags & FUZZ_TIGHT_RATE ? 10000 : 1000000;
	cfg.burst = flags & FUZZ_TIGHT_RATE ? 2 : 1000000;
	quiet_wait_ms = flags & FUZZ_TIGHT_RATE ? 1 : 0;
	/* Per input: the sanitizer's symbolizer may have opened a pipe since. */
	lowest_free_fd = lowest_fd();
	reg = registry_create(&cfg);
	CHECK(reg != NULL);
	acc = acceptor_create(&cfg, reg, 0);
	CHECK(acc != NULL);
	stopped = 0;
}

static void daemon_stop(void)
{
	acceptor_destroy(acc);
	registry_destroy(reg);
	acc = NULL;
	reg = NULL;
	/* A descriptor some other thread of the process holds for a moment
	 * (libFuzzer's own) is not a leak: only one that stays is. */
	for (int tries = 0; lowest_fd() > lowest_free_fd; tries++) {
		if (tries == 20) {
			char path[64], target[256] = "?";
			ssize_t n;

			snprintf(path, sizeof(path), "/proc/self/fd/%d", lowest_free_fd);
			n = readlink(path, target, sizeof(target) - 1);
			target[n > 0 ? n : 1] = '\0';
			if (strncmp(target, "pipe:", 5) == 0)
				break; /* roomd makes no pipes: the symbolizer's */
			fprintf(stderr, "fuzz_control: descriptor %d (%s) left open by the daemon\n",
				lowest_free_fd, target);
			abort();
		}
		usleep(5000);
	}
}

static void teardown_at_exit(void)
{
	config_fini(&cfg);
}

static void init_once(void)
{
	static int done;
	struct room_conf *rooms;

	if (done)
		return;
	done = 1;
	/* Short sleeps in settle() should be short. */
	prctl(PR_SET_TIMERSLACK, 1UL);
	trace = getenv("FUZZ_CONTROL_TRACE") != NULL;
	lowest_free_fd = lowest_fd();
	config_defaults(&cfg);
	snprintf(cfg.bind, sizeof(cfg.bind), "127.0.0.1");
	cfg.port = 0;
	cfg.room_port_min = cfg.room_port_max = 0; /* rooms take any free port */
	cfg.max_rooms = 4;
	cfg.max_members = 8;
	cfg.max_rooms_per_client = 3;
	/* The smallest limits the config accepts, so inputs of a few
	 * kilobytes reach them (error 8 both ways). */
	cfg.max_request = 1024;
	cfg.max_message = 512;
	cfg.sendq_bytes = 65536;
	cfg.idle_timeout = 0;
	/* Every input comes from the same peers: per-address buckets would
	 * carry state from one input to the next (and refuse adoptions past
	 * connect_burst_per_ip), so an input would not replay alone. They are
	 * tested in test_iptable and tests/integration/36-38. */
	cfg.rate_per_ip = cfg.burst_per_ip = 1000000;
	cfg.connect_rate_per_ip = cfg.connect_burst_per_ip = 1000000;
	cfg.room_create_rate = 1000000;
	cfg.kill_service = 1; /* honoured for loopback peers: see FUZZ_FAR_PEER */
	cfg.log_level = LOG_ERROR;
	log_set_level(LOG_ERROR);
	/* Two configured rooms, so seeds can name rooms that always exist. */
	rooms = calloc(2, sizeof(*rooms));
	CHECK(rooms != NULL);
	snprintf(rooms[0].name, sizeof(rooms[0].name), "lobby");
	rooms[0].ref = 1;
	snprintf(rooms[0].topic, sizeof(rooms[0].topic), "fuzzing");
	snprintf(rooms[1].name, sizeof(rooms[1].name), "tiny");
	rooms[1].ref = 2;
	rooms[1].max_members = 2;
	cfg.rooms = rooms;
	cfg.nrooms = 2;
	atexit(teardown_at_exit);
}

/* One loop pass; a failure is a bug, a stop is remembered. */
static void step(int timeout_ms)
{
	int rc = acceptor_step(acc, timeout_ms);

	CHECK(rc == 0 || rc == 1);
	if (rc == 1)
		stopped = 1;
}

/* ---- replies --------------------------------------------------------------- */

static int int_in(const char *s, long min, long max)
{
	long v;

	return proto_parse_int(s, min, max, &v) == 0;
}

/* A reply frame the daemon sent: values it makes must be well-formed. */
static void check_reply(const struct proto_msg *m)
{
	switch (m->kind) {
	case PROTO_R_HELO:
		CHECK(int_in(m->field[PROTO_F_RHELO_PORT], 1, 65535));
		break;
	case PROTO_R_JOINED:
		CHECK(int_in(m->field[PROTO_F_JOINED_PORT], 1, 65535));
		CHECK(int_in(m->field[PROTO_F_JOINED_REF], 1, LONG_MAX));
		CHECK(int_in(m->field[PROTO_F_JOINED_ID], 1, 0x7fffffffL));
		CHECK(m->len[PROTO_F_JOINED_REF] < sizeof(joined_ref[0]));
		CHECK(m->len[PROTO_F_JOINED_ID] < sizeof(joined_id[0]));
		if (njoined < FUZZ_MAX_JOINED) {
			memcpy(joined_ref[njoined], m->field[PROTO_F_JOINED_REF],
			       m->len[PROTO_F_JOINED_REF] + 1);
			memcpy(joined_id[njoined], m->field[PROTO_F_JOINED_ID],
			       m->len[PROTO_F_JOINED_ID] + 1);
			njoined++;
		}
		break;
	case PROTO_R_LEFT:
		CHECK(int_in(m->field[PROTO_F_LEFT_REF], 1, LONG_MAX));
		CHECK(int_in(m->field[PROTO_F_LEFT_ID], 1, 0x7fffffffL));
		break;
	case PROTO_R_CHAT:
		CHECK(int_in(m->field[PROTO_F_RCHAT_REF], 1, LONG_MAX));
		CHECK(m->len[PROTO_F_RCHAT_NAME] > 0);
		break;
	case PROTO_R_ERROR:
		CHECK(int_in(m->field[PROTO_F_ERROR_CODE], PROTO_E_MALFORMED, PROTO_E_SERVER));
		CHECK(m->len[PROTO_F_ERROR_TEXT] > 0);
		break;
	case PROTO_R_WELCOME:
	case PROTO_R_ROOM:
	case PROTO_R_MEMBER:
	case PROTO_R_PRIVATE_FROM:
	case PROTO_R_ENTRY:
	case PROTO_R_TOPIC_SET:
		break;
	case PROTO_R_ROOMS:
		CHECK(int_in(m->field[PROTO_F_RROOMS_COUNT], 0, LONG_MAX));
		break;
	case PROTO_R_MEMBERS:
		CHECK(int_in(m->field[PROTO_F_RMEMBERS_COUNT], 0, LONG_MAX));
		break;
	case PROTO_R_PRIVATE_SENT:
		CHECK(int_in(m->field[PROTO_F_RPSENT_COUNT], 1, LONG_MAX));
		break;
	case PROTO_R_HISTORY:
		CHECK(int_in(m->field[PROTO_F_RHIST_COUNT], 0, LONG_MAX));
		break;
	default:
		/* ATTACHED comes from room ports only. */
		fprintf(stderr, "fuzz_control: unexpected reply kind %d on a control connection\n",
			(int)m->kind);
		abort();
	}
}

/* Parse what cl has received: whole frames only, never an error. */
static void parse_replies(struct client *cl)
{
	for (;;) {
		struct proto_msg m;
		size_t used;
		enum proto_err err;
		int fatal;
		enum proto_status st = proto_parse(&cl->parser, cl->buf, cl->len, &m, &used, &err, &fatal);

		if (st == PROTO_ERROR) {
			fprintf(stderr, "fuzz_control: the daemon sent a frame a client cannot parse "
				"(error %d) in:\n%.*s\n", (int)err, (int)(cl->len < 2000 ? cl->len : 2000),
				cl->buf);
			abort();
		}
		if (st == PROTO_MESSAGE)
			check_reply(&m);
		memmove(cl->buf, cl->buf + used, cl->len - used);
		cl->len -= used;
		if (st == PROTO_NEED_MORE)
			return;
	}
}

/* Read everything cl has been sent so far. Returns the bytes read. */
static size_t drain(struct client *cl)
{
	size_t total = 0;

	while (cl->fd >= 0 && !cl->eof) {
		ssize_t n;

		if (cl->cap - cl->len < 4096) {
			size_t ncap = cl->cap ? cl->cap * 2 : 16384;
			char *nb = realloc(cl->buf, ncap);
			CHECK(nb != NULL);
			cl->buf = nb;
			cl->cap = ncap;
		}
		n = recv(cl->fd, cl->buf + cl->len, cl->slow ? FUZZ_SLOW_READ : cl->cap - cl->len,
			 MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			if (trace)
				fprintf(stderr, "<%c (closed by the daemon)\n", cl->name);
			cl->eof = 1; /* closed (or reset) by the daemon */
			break;
		}
		if (trace)
			fprintf(stderr, "<%c %.*s", cl->name, (int)n, cl->buf + cl->len);
		cl->len += (size_t)n;
		total += (size_t)n;
		parse_replies(cl);
		if (cl->slow)
			break;
	}
	return total;
}

static size_t drain_all(struct client *cls, int n)
{
	size_t total = 0;

	for (int i = 0; i < n; i++)
		total += drain(&cls[i]);
	return total;
}

/* Run loop passes until nothing more arrives. Quiet passes first give the
 * room threads a moment to answer (announcements, relays, LEAVE acks):
 * they run on other CPUs and answer in microseconds, so a short sleep,
 * not acceptor_step's millisecond timeout, keeps the fuzzer fast. A
 * throttled connection resumes on the loop's own timeout: with a tight
 * rate, the first quiet pass waits in acceptor_step. */
static void settle(struct client *cls, int n)
{
	int quiet = 0;

	for (int i = 0; i < FUZZ_SETTLE_PASSES && quiet < FUZZ_QUIET_PASSES; i++) {
		if (quiet == 1 && quiet_wait_ms) {
			step(quiet_wait_ms);
		} else {
			if (quiet)
				usleep(FUZZ_QUIET_US);
			step(0);
		}
		if (drain_all(cls, n) > 0)
			quiet = 0;
		else
			quiet++;
	}
}

/* ---- requests -------------------------------------------------------------- */

/* seg with "$J<d>" and "$R<d>" replaced; *outlen set; the caller frees. */
static char *substitute(const uint8_t *seg, size_t n, size_t *outlen)
{
	char *out = malloc(n * 4 + 1); /* a 3-byte token becomes at most 10 digits */
	size_t o = 0;

	CHECK(out != NULL);
	for (size_t i = 0; i < n; i++) {
		if (seg[i] == '$' && i + 2 < n && (seg[i + 1] == 'J' || seg[i + 1] == 'R') &&
		    seg[i + 2] >= '0' && seg[i + 2] <= '9') {
			const char *v = "0"; /* nothing joined yet: never a live id */
			if (njoined > 0) {
				size_t k = (size_t)(seg[i + 2] - '0') % njoined;
				v = seg[i + 1] == 'J' ? joined_id[k] : joined_ref[k];
			}
			memcpy(out + o, v, strlen(v));
			o += strlen(v);
			i += 2;
			continue;
		}
		out[o++] = (char)seg[i];
	}
	*outlen = o;
	return out;
}

static uint32_t next_rand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* Write a segment to cl in the pattern of flags, letting the daemon run
 * between writes (it may reply, or close the connection, meanwhile). */
static void send_segment(struct client *cls, int ncls, struct client *cl, const char *p, size_t n,
			 unsigned flags, uint32_t *rng)
{
	size_t off = 0;
	int stalls = 0;

	while (off < n && cl->fd >= 0 && !cl->eof && !stopped) {
		size_t k;
		ssize_t w;

		switch ((flags & FUZZ_WRITE_MASK) >> 1) {
		case 0: k = n - off; break;
		case 1: k = 1; break;
		case 2: k = 1 + next_rand(rng) % 64; break;
		default: k = 1 + next_rand(rng) % 512; break;
		}
		if (k > n - off)
			k = n - off;
		w = send(cl->fd, p + off, k, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* The daemon is not reading (paused, throttled): let it. */
			if (++stalls > FUZZ_SETTLE_PASSES)
				return;
			step(1);
			drain_all(cls, ncls);
			continue;
		}
		if (w < 0)
			return; /* EPIPE, ECONNRESET: the daemon closed it */
		if (trace)
			fprintf(stderr, ">%c %.*s%s", cl->name, (int)w, p + off,
				off + (size_t)w == n ? "\n" : "|");
		off += (size_t)w;
		step(0);
		drain_all(cls, ncls);
	}
}

static void client_open(struct client *cl, char name, const char *peer, int slow)
{
	int fds[2];
	struct stat st;

	memset(cl, 0, sizeof(*cl));
	cl->fd = cl->server_fd = -1;
	cl->slow = slow;
	cl->name = name;
	proto_parser_init(&cl->parser, PROTO_REPLIES, 1u << 20);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
	if (slow) {
		int small = 1; /* the kernel's minimum, a few kilobytes */
		CHECK(setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)) == 0);
	}
	/* Descriptors the daemon never closed would show here first. */
	CHECK(fds[0] < 512 && fds[1] < 512);
	CHECK(fstat(fds[0], &st) == 0);
	cl->server_fd = fds[0];
	cl->server_ino = st.st_ino;
	cl->fd = fds[1];
	CHECK(acceptor_adopt(acc, fds[0], peer) != NULL);
}

/* Is the daemon's end of cl still open? */
static int server_end_open(const struct client *cl)
{
	struct stat st;

	return fstat(cl->server_fd, &st) == 0 && st.st_ino == cl->server_ino;
}

/* The client vanishes (an abrupt close is a disconnect): the daemon must
 * close its end too, within the close grace period. */
static void client_close(struct client *cls, int n)
{
	for (int i = 0; i < n; i++) {
		if (cls[i].fd >= 0)
			close(cls[i].fd);
		cls[i].fd = -1;
	}
	settle(cls, n);
	if (stopped)
		return; /* acceptor_destroy closes what is left */
	for (int i = 0; i < n; i++) {
		for (int waited = 0; server_end_open(&cls[i]); waited += 10) {
			if (waited > FUZZ_TEARDOWN_MS) {
				fprintf(stderr, "fuzz_control: connection %c (fd %d) still open %d ms "
					"after its client closed\n", 'A' + i, cls[i].server_fd, waited);
				abort();
			}
			step(10);
		}
	}
}

/* KILL_SERVICE was honoured: finish as roomd's main() does. acceptor_run
 * sees the pending stop, stops the rooms, flushes what is queued to the
 * clients still connected (bounded in time) and closes them. */
static void shutdown_daemon(struct client *cls, int n)
{
	for (int i = 0; i < n; i++) {
		/* A byte wakes the loop at once rather than after a sweep
		 * interval; after the stop it is never handled. */
		if (cls[i].fd >= 0 && !cls[i].eof)
			(void)send(cls[i].fd, "\n", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	CHECK(acceptor_run(acc) == 0);
	drain_all(cls, n);
	for (int i = 0; i < n; i++) {
		if (cls[i].fd >= 0)
			close(cls[i].fd);
		cls[i].fd = -1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct client cls[2];
	unsigned flags;
	uint32_t rng;
	int ncls;
	size_t start, seg = 0;

	if (size < 1)
		return 0;
	init_once();
	flags = data[0];
	daemon_start(flags);
	rng = 0x2545f491u ^ flags;
	ncls = flags & FUZZ_TWO_CONNS ? 2 : 1;
	njoined = 0;
	client_open(&cls[0], 'A', flags & FUZZ_FAR_PEER ? "192.0.2.7" : "127.0.0.1",
		    !!(flags & FUZZ_SLOW_READER));
	if (ncls == 2)
		client_open(&cls[1], 'B', "127.0.0.1", 0);

	data++;
	size--;
	for (start = 0; start <= size && !stopped; seg++) {
		const uint8_t *sep = memchr(data + start, FUZZ_SEPARATOR, size - start);
		size_t end = sep ? (size_t)(sep - data) : size, n;
		struct client *cl = &cls[seg % (size_t)ncls];
		char *text = substitute(data + start, end - start, &n);

		/* An empty segment only passes the turn to the other client. */
		if (n > 0) {
			send_segment(cls, ncls, cl, text, n, flags, &rng);
			settle(cls, ncls);
		}
		free(text);
		start = end + 1;
	}
	if (stopped)
		shutdown_daemon(cls, ncls);
	else
		client_close(cls, ncls);
	for (int i = 0; i < ncls; i++)
		free(cls[i].buf);
	daemon_stop();
	return 0;
}

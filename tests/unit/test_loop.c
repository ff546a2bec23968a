/* test_loop.c - the event loop both thread kinds run (server/loop.c):
 * requests reach the handler and replies leave in the same pass, a closing
 * connection is destroyed once written (ops.destroy first), accept hands
 * the connection to ops.accepted and pauses at EMFILE instead of spinning,
 * the drain writes what is queued before closing, and a connection's bytes
 * go through its transport. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "iptable.h"
#include "loop.h"
#include "msg.h"
#include "net.h"
#include "transport.h"

struct seen {
	struct loop loop;
	int requests, destroyed, accepted, markers;
	struct conn *last;
};

static void on_request(void *arg, struct conn *c, const struct proto_msg *m)
{
	struct seen *s = arg;

	s->requests++;
	assert_int_equal(m->kind, PROTO_HELO);
	assert_int_equal(conn_queue_take(c, proto_write_left(1, 2)), 0);
}

static void on_reply_error(void *arg, struct conn *c, enum proto_err err, const char *detail)
{
	(void)arg;
	conn_queue_take(c, proto_write_error(err, detail));
}

static void on_marker(void *arg, void *marker, uint32_t events)
{
	struct seen *s = arg;

	(void)marker;
	(void)events;
	s->markers++;
}

static void on_accepted(void *arg, struct conn *c)
{
	struct seen *s = arg;

	s->accepted++;
	s->last = c;
}

static void on_destroy(void *arg, struct conn *c)
{
	struct seen *s = arg;

	(void)c;
	s->destroyed++;
}

static const struct loop_ops ops = {
	.request = on_request,
	.reply_error = on_reply_error,
	.marker = on_marker,
	.accepted = on_accepted,
	.destroy = on_destroy,
};

static struct config cfg;
static struct iptable *ips;

static int setup(void **state)
{
	static struct seen s;

	config_defaults(&cfg);
	ips = iptable_create(&cfg);
	memset(&s, 0, sizeof(s));
	assert_int_equal(loop_init(&s.loop, &cfg, "test", METRICS_CONTROL, ips, 16, LOOP_INDEX_FD, &ops, &s),
			 0);
	*state = &s;
	return 0;
}

static int teardown(void **state)
{
	struct seen *s = *state;

	loop_fini(&s->loop);
	iptable_destroy(ips);
	return 0;
}

/* Read what the peer got within a second (the loop wrote it already). */
static ssize_t peer_read(int fd, char *buf, size_t len)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, 1000) != 1)
		return -1;
	return read(fd, buf, len);
}

static void test_request_reply_close(void **state)
{
	struct seen *s = *state;
	char buf[256];
	int sv[2];
	struct conn *c;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	c = loop_adopt(&s->loop, sv[0], "127.0.0.1");
	assert_non_null(c);
	assert_ptr_equal(loop_conn_by_fd(&s->loop, sv[0]), c);
	assert_int_equal(write(sv[1], "HELO x\n", 7), 7);
	assert_int_equal(loop_step(&s->loop, 1000), 0);
	assert_int_equal(s->requests, 1);
	/* The reply left in the same pass. */
	ssize_t n = peer_read(sv[1], buf, sizeof(buf));
	assert_true(n > 0 && memcmp(buf, "LEFT_CHATROOM: 1\n", 17) == 0);
	/* Closing: written (nothing left), then destroyed at the flush. */
	loop_close(&s->loop, c, 0);
	loop_flush(&s->loop);
	assert_int_equal(s->destroyed, 1);
	assert_int_equal((int)s->loop.nconns, 0);
	assert_null(loop_conn_by_fd(&s->loop, sv[0]));
	assert_int_equal(peer_read(sv[1], buf, sizeof(buf)), 0); /* end of stream */
	close(sv[1]);
}

static void test_accept_and_emfile_pause(void **state)
{
	struct seen *s = *state;
	struct net_listeners lis = { .n = 1 };
	struct rlimit old, low;
	int fds[64], nfds = 0, cl;

	lis.fd[0] = net_listen("127.0.0.1", 0, 16);
	assert_true(lis.fd[0] >= 0);
	assert_int_equal(loop_listen(&s->loop, &lis), 0);
	cl = net_connect("127.0.0.1", (unsigned)net_local_port(lis.fd[0]));
	assert_true(cl >= 0);
	for (int i = 0; i < 20 && s->accepted == 0; i++)
		loop_step(&s->loop, 50);
	assert_int_equal(s->accepted, 1);
	assert_int_equal((int)s->loop.nconns, 1);
	close(cl);

	/* No descriptor left: accept fails with EMFILE, the loop pauses. */
	getrlimit(RLIMIT_NOFILE, &old);
	cl = net_connect("127.0.0.1", (unsigned)net_local_port(lis.fd[0]));
	assert_true(cl >= 0);
	low = old;
	low.rlim_cur = (rlim_t)cl + 2;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	while (nfds < 64 && (fds[nfds] = open("/dev/null", O_RDONLY)) >= 0)
		nfds++;
	for (int i = 0; i < 5 && !s->loop.accept_paused; i++)
		loop_step(&s->loop, 50);
	assert_int_equal(s->loop.accept_paused, 1);
	assert_int_equal(s->accepted, 1);
	/* Descriptors back: it accepts again after the pause. */
	while (nfds > 0)
		close(fds[--nfds]);
	setrlimit(RLIMIT_NOFILE, &old);
	for (int i = 0; i < 40 && s->accepted < 2; i++)
		loop_step(&s->loop, 50);
	assert_int_equal(s->accepted, 2);
	assert_int_equal(s->loop.accept_paused, 0);
	close(cl);
	loop_fini(&s->loop); /* before the listener goes */
	net_listeners_close(&lis);
	assert_int_equal(loop_init(&s->loop, &cfg, "test", METRICS_CONTROL, ips, 16, 0, &ops, s), 0);
}

static void test_drain_writes_then_closes(void **state)
{
	struct seen *s = *state;
	char buf[256];
	int sv[2];
	struct conn *c;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	c = loop_adopt(&s->loop, sv[0], "127.0.0.1");
	assert_non_null(c);
	assert_int_equal(loop_watch(&s->loop, sv[1], &s->markers), 0); /* no longer polled */
	assert_int_equal(conn_queue_take(c, proto_write_left(3, 4)), 0);
	loop_drain(&s->loop, 500);
	assert_int_equal(s->destroyed, 1);
	assert_int_equal((int)s->loop.nconns, 0);
	ssize_t n = read(sv[1], buf, sizeof(buf));
	assert_true(n > 0 && memcmp(buf, "LEFT_CHATROOM: 3\n", 17) == 0);
	assert_int_equal(read(sv[1], buf, sizeof(buf)), 0);
	close(sv[1]);
}

/* A transport that counts its calls and passes them on to plain TCP. */
static int reads, writes, closes;

static long count_read(struct transport_sock *ts, char *buf, size_t len)
{
	reads++;
	return transport_tcp.read(ts, buf, len);
}

static long count_writev(void *ctx, const struct iovec *iov, int n)
{
	writes++;
	return transport_tcp.writev(ctx, iov, n);
}

static void count_close(struct transport_sock *ts)
{
	closes++;
	transport_tcp.close(ts);
}

static const struct conn_transport counting = { "counting", count_read, count_writev, count_close };

static void test_transport_carries_the_bytes(void **state)
{
	struct seen *s = *state;
	char buf[256];
	int sv[2];
	struct conn *c;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	c = loop_adopt(&s->loop, sv[0], "127.0.0.1");
	assert_non_null(c);
	c->tr = &counting;
	/* Two requests in one read: one read call, one writev for both replies. */
	assert_int_equal(write(sv[1], "HELO a\nHELO b\n", 14), 14);
	assert_int_equal(loop_step(&s->loop, 1000), 0);
	assert_int_equal(s->requests, 2);
	assert_int_equal(reads, 1);
	assert_int_equal(writes, 1);
	assert_true(peer_read(sv[1], buf, sizeof(buf)) > 0);
	loop_fini(&s->loop);
	assert_int_equal(closes, 1);
	assert_int_equal(loop_init(&s->loop, &cfg, "test", METRICS_CONTROL, ips, 16, 0, &ops, s), 0);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_request_reply_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_accept_and_emfile_pause, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain_writes_then_closes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transport_carries_the_bytes, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

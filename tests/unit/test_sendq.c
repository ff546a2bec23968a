/* test_sendq.c - unit tests of the bounded send queue (common/sendq.h).
 *
 * Each test writes into one end of an AF_UNIX stream socketpair made
 * non-blocking, and reads the other end to compare the exact bytes. SIGPIPE
 * keeps its default action, so a write to a closed peer without
 * MSG_NOSIGNAL would kill the test. Reference counts of the messages are
 * checked after every step that should take or drop one. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "msg.h"
#include "sendq.h"

/* sv[0]: the writer, non-blocking; sv[1]: the reader. A small send buffer
 * when small is set, so the writer fills up quickly. */
static void make_pair(int sv[2], int small)
{
	int flags;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	flags = fcntl(sv[0], F_GETFL);
	assert_true(flags >= 0);
	assert_int_equal(fcntl(sv[0], F_SETFL, flags | O_NONBLOCK), 0);
	if (small) {
		int sz = 4096;
		assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)), 0);
		assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz)), 0);
	}
}

static void close_pair(int sv[2])
{
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	sv[0] = sv[1] = -1;
}

struct bytes {
	char *p;
	size_t len, cap;
};

static void bytes_add(struct bytes *b, const char *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t ncap = b->cap ? b->cap : 4096;
		while (ncap < b->len + n)
			ncap *= 2;
		b->p = realloc(b->p, ncap);
		assert_non_null(b->p);
		b->cap = ncap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

/* Read everything the reader has now, without blocking. */
static void drain(int fd, struct bytes *got)
{
	char tmp[65536];

	for (;;) {
		ssize_t r = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);
		if (r > 0) {
			bytes_add(got, tmp, (size_t)r);
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		assert_true(r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
		return;
	}
}

static unsigned refs(struct msg *m)
{
	return atomic_load(&m->refs);
}

static struct msg *mk(const char *s)
{
	struct msg *m = msg_create(s, strlen(s));

	assert_non_null(m);
	return m;
}

static void test_push_flush_bytes(void **state)
{
	int sv[2];
	struct sendq q;
	struct msg *m[3];
	struct bytes got = { 0 };
	static const char want[] = "HELO x\nIP:1.2.3.4\nPort:9000\nStudentID:id\n"
				   "CHAT: 1\nCLIENT_NAME: a\nMESSAGE: hi\n\n"
				   "LEFT_CHATROOM: 1\nJOIN_ID: 2\n";

	(void)state;
	make_pair(sv, 0);
	sendq_init(&q, 1 << 20);
	assert_true(sendq_empty(&q));
	/* an empty queue flushes to nothing, without touching the socket */
	assert_int_equal(sendq_flush(&q, -1), 0);

	m[0] = mk("HELO x\nIP:1.2.3.4\nPort:9000\nStudentID:id\n");
	m[1] = mk("CHAT: 1\nCLIENT_NAME: a\nMESSAGE: hi\n\n");
	m[2] = mk("LEFT_CHATROOM: 1\nJOIN_ID: 2\n");
	for (int i = 0; i < 3; i++) {
		assert_int_equal(sendq_push(&q, m[i]), 0);
		assert_int_equal(refs(m[i]), 2);
	}
	assert_false(sendq_empty(&q));
	assert_int_equal(q.count, 3);
	assert_int_equal(q.bytes, sizeof(want) - 1);

	assert_int_equal(sendq_flush(&q, sv[0]), 0);
	assert_true(sendq_empty(&q));
	assert_int_equal(q.count, 0);
	assert_int_equal(q.bytes, 0);
	assert_int_equal(q.off, 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(refs(m[i]), 1);

	drain(sv[1], &got);
	assert_int_equal(got.len, sizeof(want) - 1);
	assert_memory_equal(got.p, want, got.len);

	/* the same message pushed twice is sent twice */
	assert_int_equal(sendq_push(&q, m[2]), 0);
	assert_int_equal(sendq_push(&q, m[2]), 0);
	assert_int_equal(refs(m[2]), 3);
	assert_int_equal(sendq_flush(&q, sv[0]), 0);
	assert_int_equal(refs(m[2]), 1);
	got.len = 0;
	drain(sv[1], &got);
	assert_int_equal(got.len, 2 * m[2]->len);
	assert_memory_equal(got.p, "LEFT_CHATROOM: 1\nJOIN_ID: 2\nLEFT_CHATROOM: 1\nJOIN_ID: 2\n", got.len);

	sendq_fini(&q);
	for (int i = 0; i < 3; i++)
		msg_unref(&m[i]);
	free(got.p);
	close_pair(sv);
}

/* The bound is charged bytes plus SENDQ_PIECE_COST per piece. */
static void test_byte_cap(void **state)
{
	int sv[2];
	struct sendq q;
	struct msg *five = mk("12345"), *six = mk("abcdef"), *one = mk("x");
	struct bytes got = { 0 };
	const size_t cap = 2 * SENDQ_PIECE_COST + 10;

	(void)state;
	make_pair(sv, 0);
	sendq_init(&q, cap);
	assert_int_equal(sendq_push(&q, five), 0);
	assert_int_equal(q.bytes, 5);
	assert_int_equal(q.cost, 5 + SENDQ_PIECE_COST);

	/* 5 + 6 bytes in two pieces > cap: refused, nothing queued, no reference */
	assert_int_equal(sendq_push(&q, six), -ENOBUFS);
	assert_int_equal(q.count, 1);
	assert_int_equal(q.bytes, 5);
	assert_int_equal(q.cost, 5 + SENDQ_PIECE_COST);
	assert_int_equal(refs(six), 1);

	/* exactly at the cap is allowed */
	assert_int_equal(sendq_push(&q, five), 0);
	assert_int_equal(q.count, 2);
	assert_int_equal(q.bytes, 10);
	assert_int_equal(q.cost, cap);
	assert_int_equal(refs(five), 3);

	assert_int_equal(sendq_push(&q, one), -ENOBUFS);
	assert_int_equal(q.count, 2);
	assert_int_equal(q.bytes, 10);
	assert_int_equal(refs(one), 1);

	/* a message larger than the whole cap, on an empty queue */
	assert_int_equal(sendq_flush(&q, sv[0]), 0);
	drain(sv[1], &got);
	assert_int_equal(got.len, 10);
	assert_memory_equal(got.p, "1234512345", 10);
	assert_int_equal(q.cost, 0);
	assert_int_equal(q.sent, 10);
	{
		struct msg *big = msg_new(cap - SENDQ_PIECE_COST + 1);
		memset(big->data, 'b', big->len);
		assert_int_equal(sendq_push(&q, big), -ENOBUFS);
		assert_int_equal(q.count, 0);
		assert_int_equal(q.bytes, 0);
		assert_int_equal(refs(big), 1);
		msg_unref(&big);
	}
	/* written bytes free room under the cap */
	assert_int_equal(sendq_push(&q, six), 0);
	assert_int_equal(q.bytes, 6);

	sendq_fini(&q);
	assert_int_equal(refs(five), 1);
	assert_int_equal(refs(six), 1);
	msg_unref(&five);
	msg_unref(&six);
	msg_unref(&one);
	free(got.p);
	close_pair(sv);
}

/* Many small frames cost what they hold in memory, not just their bytes:
 * a 1 MiB queue holds far fewer than 1 MiB / 40 separate 40-byte frames.
 * Frames merged into one piece (adjacent in one block) cost bytes only. */
static void test_real_cost(void **state)
{
	struct sendq q;
	struct msg *m = msg_new(40);
	struct msg_arena a;
	size_t n = 0, cap = 1 << 20;

	(void)state;
	memset(m->data, 'm', 40);
	sendq_init(&q, cap);
	while (sendq_push(&q, m) == 0)
		n++;
	assert_int_equal(n, cap / (40 + SENDQ_PIECE_COST));
	/* what it costs: >= the ring slot and the message header it keeps */
	assert_true(SENDQ_PIECE_COST >= sizeof(struct sendq_piece) + sizeof(struct msg));
	assert_int_equal(q.cost, n * (40 + SENDQ_PIECE_COST));
	printf("sendq: %zu separate 40-byte frames fit in %zu bytes (cost %zu each)\n", n, cap,
	       (size_t)(40 + SENDQ_PIECE_COST));
	sendq_fini(&q);
	assert_int_equal(q.cost, 0);

	/* the relay fast path: adjacent frames of one block merge, one piece */
	sendq_init(&q, cap);
	msg_arena_init(&a, 1 << 16);
	for (int i = 0; i < 100; i++) {
		char *dst = msg_arena_reserve(&a, 40);
		struct msg *s;
		memset(dst, 'a' + i % 26, 40);
		s = msg_arena_take(&a, 40);
		assert_int_equal(sendq_push(&q, s), 0);
		msg_unref(&s);
	}
	assert_int_equal(q.count, 1);
	assert_int_equal(q.cost, 4000 + SENDQ_PIECE_COST);
	sendq_fini(&q);
	msg_arena_fini(&a);
	msg_unref(&m);
}

/* Slices: pieces that point into another message's bytes, queued all or
 * none, written in order, each holding a reference to its block. */
static void test_slices(void **state)
{
	int sv[2];
	struct sendq q;
	struct msg *head = mk("HEAD:"), *frame = mk("CHAT: 1\nCLIENT_NAME: a\nMESSAGE: hi\n\n");
	struct sendq_pieces *l = NULL;
	struct bytes got = { 0 };
	const char *tail = strstr(frame->data, "\nCLIENT_NAME");
	const char want[] = "HEAD:x\nCLIENT_NAME: a\nMESSAGE: hi\n\nHEAD:";

	(void)state;
	make_pair(sv, 0);
	assert_int_equal(sendq_pieces_add(&l, head, head->data, 4), 0);
	assert_int_equal(sendq_pieces_add(&l, head, head->data + 4, 1), 0); /* adjacent: extends */
	assert_int_equal(sendq_pieces_add(&l, frame, frame->data, 0), 0); /* empty: skipped */
	{
		struct msg *x = mk("x");
		assert_int_equal(sendq_pieces_add(&l, x, x->data, 1), 0);
		msg_unref(&x); /* the list holds it */
	}
	assert_int_equal(sendq_pieces_add(&l, frame, tail, frame->len - (size_t)(tail - frame->data)), 0);
	assert_int_equal(sendq_pieces_add(&l, head, head->data, 5), 0);
	assert_int_equal(l->n, 5); /* the two adjacent head slices are one piece */
	assert_int_equal(refs(head), 3);
	assert_int_equal(refs(frame), 3);

	/* all or none: a queue too small for the whole list takes nothing */
	sendq_init(&q, l->bytes + l->n * SENDQ_PIECE_COST - 1);
	assert_int_equal(sendq_push_pieces(&q, l), -ENOBUFS);
	assert_true(sendq_empty(&q));
	assert_int_equal(q.cost, 0);
	sendq_fini(&q);

	sendq_init(&q, l->bytes + l->n * SENDQ_PIECE_COST);
	assert_int_equal(sendq_push_pieces(&q, l), 0);
	assert_int_equal(q.count, 4); /* head merged; the empty one skipped */
	assert_int_equal(q.bytes, sizeof(want) - 1);
	sendq_pieces_free(l);
	assert_int_equal(refs(head), 3); /* the queue's two pieces of it */
	assert_int_equal(refs(frame), 2);
	assert_int_equal(sendq_flush(&q, sv[0]), 0);
	drain(sv[1], &got);
	assert_int_equal(got.len, sizeof(want) - 1);
	assert_memory_equal(got.p, want, sizeof(want) - 1);
	assert_int_equal(refs(head), 1);
	assert_int_equal(refs(frame), 1);
	assert_int_equal(q.cost, 0);
	assert_int_equal(q.sent, sizeof(want) - 1);
	sendq_pieces_free(NULL);
	sendq_fini(&q);
	msg_unref(&head);
	msg_unref(&frame);
	free(got.p);
	close_pair(sv);
}

static void test_shared_message(void **state)
{
	int a[2], b[2];
	struct sendq qa, qb;
	struct msg *m = mk("CHAT: 7\nCLIENT_NAME: z\nMESSAGE: shared\n\n");
	struct bytes ga = { 0 }, gb = { 0 };

	(void)state;
	make_pair(a, 0);
	make_pair(b, 0);
	sendq_init(&qa, 4096);
	sendq_init(&qb, 4096);
	assert_int_equal(sendq_push(&qa, m), 0);
	assert_int_equal(sendq_push(&qb, m), 0);
	assert_int_equal(refs(m), 3);
	/* the creator lets go: the queues keep it alive */
	{
		struct msg *mine = m;
		msg_unref(&mine);
		assert_null(mine);
	}
	assert_int_equal(refs(m), 2);

	assert_int_equal(sendq_flush(&qa, a[0]), 0);
	assert_int_equal(refs(m), 1); /* still alive for qb (ASan checks) */
	drain(a[1], &ga);
	assert_int_equal(ga.len, m->len);
	assert_memory_equal(ga.p, m->data, m->len);

	drain(b[1], &gb);
	assert_int_equal(gb.len, 0); /* nothing before the flush */
	assert_int_equal(sendq_flush(&qb, b[0]), 0); /* frees m: the last owner */
	drain(b[1], &gb);
	assert_int_equal(gb.len, ga.len);
	assert_memory_equal(gb.p, "CHAT: 7\nCLIENT_NAME: z\nMESSAGE: shared\n\n", gb.len);

	sendq_fini(&qa);
	sendq_fini(&qb);
	free(ga.p);
	free(gb.p);
	close_pair(a);
	close_pair(b);
}

/* Message i of a numbered sequence, of varying length. */
static struct msg *numbered(int i)
{
	struct msg *m = msg_printf("CHAT: 1\nCLIENT_NAME: n\nMESSAGE: %06d %.*s\n\n", i, i % 97,
				   "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
				   "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz");
	assert_non_null(m);
	return m;
}

/* Fill the socket until flush says -EAGAIN, keep pushing while it is full
 * (the ring grows and wraps), then alternately drain and flush to the end. */
static void test_eagain_then_complete(void **state)
{
	int sv[2], r, n = 0;
	struct sendq q;
	struct msg *all[4000];
	struct bytes want = { 0 }, got = { 0 };

	(void)state;
	make_pair(sv, 1);
	sendq_init(&q, 1 << 22);
	do {
		assert_true(n < 1000);
		all[n] = numbered(n);
		bytes_add(&want, all[n]->data, all[n]->len);
		assert_int_equal(sendq_push(&q, all[n]), 0);
		n++;
		r = sendq_flush(&q, sv[0]);
		assert_true(r == 0 || r == -EAGAIN);
	} while (r == 0);
	assert_int_equal(r, -EAGAIN);
	assert_false(sendq_empty(&q));
	assert_true(q.bytes > 0);
	/* still full: another flush writes nothing and says so again */
	{
		size_t before = q.bytes;
		assert_int_equal(sendq_flush(&q, sv[0]), -EAGAIN);
		assert_int_equal(q.bytes, before);
	}
	/* more while blocked: over 64 queued (one writev batch) */
	for (int k = 0; k < 300; k++, n++) {
		all[n] = numbered(n);
		bytes_add(&want, all[n]->data, all[n]->len);
		assert_int_equal(sendq_push(&q, all[n]), 0);
	}
	assert_true(q.count > 300);
	for (int rounds = 0;; rounds++) {
		assert_true(rounds < 100000);
		drain(sv[1], &got);
		r = sendq_flush(&q, sv[0]);
		assert_true(r == 0 || r == -EAGAIN);
		if (r == 0)
			break;
		/* interleave pushes with partial flushes: the ring wraps */
		if (rounds % 3 == 0 && n < 1500) {
			all[n] = numbered(n);
			bytes_add(&want, all[n]->data, all[n]->len);
			assert_int_equal(sendq_push(&q, all[n]), 0);
			n++;
		}
	}
	drain(sv[1], &got);
	assert_true(sendq_empty(&q));
	assert_int_equal(q.bytes, 0);
	assert_int_equal(got.len, want.len);
	assert_memory_equal(got.p, want.p, want.len);
	for (int i = 0; i < n; i++) {
		assert_int_equal(refs(all[i]), 1);
		msg_unref(&all[i]);
	}
	/* the queue is usable again after the burst */
	{
		struct msg *m = mk("again\n");
		got.len = 0;
		assert_int_equal(sendq_push(&q, m), 0);
		assert_int_equal(sendq_flush(&q, sv[0]), 0);
		drain(sv[1], &got);
		assert_int_equal(got.len, 6);
		assert_memory_equal(got.p, "again\n", 6);
		assert_int_equal(refs(m), 1);
		msg_unref(&m);
	}
	sendq_fini(&q);
	free(want.p);
	free(got.p);
	close_pair(sv);
}

/* The head is partly written: drop_unstarted keeps it (the reader must get
 * the whole frame) and drops everything behind it. */
static void test_drop_unstarted_keeps_partial_head(void **state)
{
	int sv[2], r;
	struct sendq q;
	size_t bigsz = 256 * 1024;
	char *pattern = malloc(bigsz);
	struct msg *big, *s1 = mk("CHAT: 1\nCLIENT_NAME: a\nMESSAGE: after 1\n\n");
	struct msg *s2 = mk("CHAT: 1\nCLIENT_NAME: a\nMESSAGE: after 2\n\n");
	struct bytes got = { 0 };

	(void)state;
	assert_non_null(pattern);
	for (size_t i = 0; i < bigsz; i++)
		pattern[i] = (char)('a' + (i * 7 + i / 251) % 26);
	big = msg_create(pattern, bigsz);
	assert_non_null(big);
	make_pair(sv, 1);
	sendq_init(&q, 1 << 20);
	assert_int_equal(sendq_push(&q, big), 0);
	assert_int_equal(sendq_push(&q, s1), 0);
	assert_int_equal(sendq_push(&q, s2), 0);
	assert_int_equal(sendq_flush(&q, sv[0]), -EAGAIN);
	/* the socket took part of the head, not all of it */
	assert_int_equal(q.count, 3);
	assert_true(q.off > 0 && q.off < bigsz);
	assert_int_equal(q.bytes, bigsz - q.off + s1->len + s2->len);

	sendq_drop_unstarted(&q, 0);
	assert_int_equal(q.count, 1);
	assert_int_equal(q.bytes, bigsz - q.off);
	assert_int_equal(refs(big), 2);
	assert_int_equal(refs(s1), 1);
	assert_int_equal(refs(s2), 1);

	for (int rounds = 0;; rounds++) {
		assert_true(rounds < 100000);
		drain(sv[1], &got);
		r = sendq_flush(&q, sv[0]);
		assert_true(r == 0 || r == -EAGAIN);
		if (r == 0)
			break;
	}
	drain(sv[1], &got);
	assert_int_equal(got.len, bigsz);
	assert_memory_equal(got.p, pattern, bigsz);
	assert_int_equal(refs(big), 1);
	assert_true(sendq_empty(&q));

	sendq_fini(&q);
	msg_unref(&big);
	msg_unref(&s1);
	msg_unref(&s2);
	free(pattern);
	free(got.p);
	close_pair(sv);
}

static int drop_all(const struct sendq_piece *p, void *arg)
{
	(void)p;
	(*(int *)arg)++;
	return 1;
}

/* Bytes a writer has taken but not finished (a TLS record waiting for the
 * socket) pin the pieces they lie in: those stay, whole, and the rest go. */
static void test_drop_unstarted_keeps_pinned(void **state)
{
	struct sendq q;
	struct msg *a = mk("one\n"), *b = mk("two\n"), *c = mk("three\n"), *d = mk("four\n");
	int asked = 0;

	(void)state;
	sendq_init(&q, 4096);
	assert_int_equal(sendq_push(&q, a), 0);
	assert_int_equal(sendq_push(&q, b), 0);
	assert_int_equal(sendq_push(&q, c), 0);
	/* 5 bytes pinned: all of a and the first byte of b. */
	sendq_drop_unstarted(&q, 5);
	assert_int_equal(q.count, 2);
	assert_int_equal(q.bytes, a->len + b->len);
	assert_int_equal(refs(c), 1);
	/* Exactly a's bytes pinned: b is not started. */
	sendq_drop_unstarted(&q, a->len);
	assert_int_equal(q.count, 1);
	assert_int_equal(refs(b), 1);
	/* The filtered form keeps pinned pieces even when asked to drop all. */
	assert_int_equal(sendq_push(&q, d), 0);
	sendq_drop_unstarted_if(&q, a->len + 1, drop_all, &asked);
	assert_int_equal(q.count, 2);
	assert_int_equal(asked, 0);
	sendq_fini(&q);
	msg_unref(&a);
	msg_unref(&b);
	msg_unref(&c);
	msg_unref(&d);
}

/* Nothing started: everything is dropped. */
static void test_drop_unstarted_nothing_started(void **state)
{
	int sv[2];
	struct sendq q;
	struct msg *a = mk("one\n"), *b = mk("two\n");
	struct bytes got = { 0 };

	(void)state;
	make_pair(sv, 0);
	sendq_init(&q, 4096);
	sendq_drop_unstarted(&q, 0); /* empty: nothing to do */
	assert_true(sendq_empty(&q));
	assert_int_equal(sendq_push(&q, a), 0);
	assert_int_equal(sendq_push(&q, b), 0);
	assert_int_equal(sendq_push(&q, a), 0);
	sendq_drop_unstarted(&q, 0);
	assert_true(sendq_empty(&q));
	assert_int_equal(q.bytes, 0);
	assert_int_equal(refs(a), 1);
	assert_int_equal(refs(b), 1);
	assert_int_equal(sendq_flush(&q, sv[0]), 0);
	drain(sv[1], &got);
	assert_int_equal(got.len, 0);
	/* the queue still works */
	assert_int_equal(sendq_push(&q, b), 0);
	assert_int_equal(sendq_flush(&q, sv[0]), 0);
	drain(sv[1], &got);
	assert_int_equal(got.len, 4);
	assert_memory_equal(got.p, "two\n", 4);
	sendq_fini(&q);
	msg_unref(&a);
	msg_unref(&b);
	free(got.p);
	close_pair(sv);
}

static void test_peer_closed(void **state)
{
	int sv[2], r;
	struct sendq q;
	struct msg *m = mk("LEFT_CHATROOM: 1\nJOIN_ID: 2\n");
	void (*old)(int) = signal(SIGPIPE, SIG_DFL);

	(void)state;
	make_pair(sv, 0);
	sendq_init(&q, 4096);
	close(sv[1]);
	sv[1] = -1;
	assert_int_equal(sendq_push(&q, m), 0);
	r = sendq_flush(&q, sv[0]);
	assert_true(r < 0);
	assert_int_not_equal(r, -EAGAIN);
	if (r != -EPIPE && r != -ECONNRESET)
		fail_msg("flush to a closed peer returned %d (%s)", r, strerror(-r));
	/* still there to be released by the owner */
	assert_int_equal(refs(m), 2);
	sendq_fini(&q);
	assert_int_equal(refs(m), 1);
	msg_unref(&m);
	close_pair(sv);
	signal(SIGPIPE, old);
}

static void test_fini_releases(void **state)
{
	struct sendq q;
	struct msg *a = mk("aaaa\n"), *b = mk("bb\n");

	(void)state;
	sendq_init(&q, 1 << 16);
	sendq_fini(&q); /* never used: fine */
	sendq_init(&q, 1 << 16);
	for (int i = 0; i < 20; i++) /* past the first ring growth */
		assert_int_equal(sendq_push(&q, i % 3 ? a : b), 0);
	assert_int_equal(refs(a), 1 + 13);
	assert_int_equal(refs(b), 1 + 7);
	assert_int_equal(q.bytes, 13 * 5 + 7 * 3);
	sendq_fini(&q);
	assert_int_equal(refs(a), 1);
	assert_int_equal(refs(b), 1);
	assert_true(sendq_empty(&q));
	assert_int_equal(q.bytes, 0);
	assert_null(q.ring);
	msg_unref(&a);
	msg_unref(&b);
}

/* A zero-length message (msg_create("", 0) is a valid message) must not
 * stall the queue. Run in a child with an alarm: a flush that spins
 * forever fails the test instead of hanging it. */
static void check_in_child(const char *const *texts, size_t n)
{
	pid_t pid;
	int status;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int sv[2], r;
		struct sendq q;
		size_t total = 0;
		char buf[256];
		ssize_t got;

		alarm(2);
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
			_exit(10);
		fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
		sendq_init(&q, 4096);
		for (size_t i = 0; i < n; i++) {
			struct msg *m = msg_create(texts[i], strlen(texts[i]));
			if (!m || sendq_push(&q, m) != 0)
				_exit(11);
			total += m->len;
			msg_unref(&m);
		}
		r = sendq_flush(&q, sv[0]);
		if (r != 0 || !sendq_empty(&q))
			_exit(12);
		got = recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT);
		if ((total == 0 && !(got < 0 && errno == EAGAIN)) || (total > 0 && got != (ssize_t)total))
			_exit(13);
		sendq_fini(&q);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		fail_msg("flush of a queue holding an empty message: child killed by signal %d%s",
			 WTERMSIG(status), WTERMSIG(status) == SIGALRM ? " (spun forever)" : "");
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_empty_message(void **state)
{
	static const char *const only[] = { "" };
	static const char *const after[] = { "abc\n", "" };
	static const char *const between[] = { "abc\n", "", "def\n" };

	(void)state;
	check_in_child(between, 3);
	check_in_child(only, 1);
	check_in_child(after, 2);
}

/* Carve a frame from the arena (as the room thread does). */
static struct msg *carve(struct msg_arena *a, const char *text)
{
	size_t n = strlen(text);
	char *dst = msg_arena_reserve(a, n);
	struct msg *m;

	assert_non_null(dst);
	memcpy(dst, text, n);
	m = msg_arena_take(a, n);
	assert_non_null(m);
	return m;
}

/* Frames carved one after another from a block go out as one piece, with
 * one reference to the block; a frame from another block, or a message of
 * its own, starts a new piece. The slices may go before the queue does. */
static void test_arena_slices_merge(void **state)
{
	int sv[2];
	struct sendq q;
	struct msg_arena a;
	struct msg *f[3], *own, *block;
	struct bytes got = { 0 };
	static const char want[] = "one\ntwo\nthree\nown\n";

	(void)state;
	make_pair(sv, 0);
	sendq_init(&q, 1 << 20);
	msg_arena_init(&a, 64);
	f[0] = carve(&a, "one\n");
	f[1] = carve(&a, "two\n");
	f[2] = carve(&a, "three\n");
	block = f[0]->owner;
	assert_ptr_equal(f[1]->owner, block);
	assert_ptr_equal(f[1]->data, f[0]->data + f[0]->len);
	own = mk("own\n");
	for (int i = 0; i < 3; i++)
		assert_int_equal(sendq_push(&q, f[i]), 0);
	assert_int_equal(sendq_push(&q, own), 0);
	assert_int_equal(q.count, 2); /* the three frames, then own */
	assert_int_equal(q.bytes, strlen(want));
	/* arena + 3 slices + 1 piece */
	assert_int_equal(refs(block), 5);
	for (int i = 0; i < 3; i++)
		msg_unref(&f[i]);
	msg_arena_fini(&a);
	assert_int_equal(refs(block), 1); /* the queue's piece keeps it */
	assert_int_equal(sendq_flush(&q, sv[0]), 0);
	drain(sv[1], &got);
	assert_int_equal(got.len, strlen(want));
	assert_memory_equal(got.p, want, got.len);
	assert_int_equal(refs(own), 1);
	msg_unref(&own);
	sendq_fini(&q);
	free(got.p);
	close_pair(sv);
}

/* A frame that does not fit starts a new block; the pieces stay apart, and
 * each holds its own block. */
static void test_arena_new_block(void **state)
{
	struct sendq q;
	struct msg_arena a;
	struct msg *f[2];

	(void)state;
	sendq_init(&q, 1 << 20);
	msg_arena_init(&a, 16);
	f[0] = carve(&a, "0123456789\n");
	f[1] = carve(&a, "abcdefghij\n");
	assert_ptr_not_equal(f[0]->owner, f[1]->owner);
	assert_int_equal(sendq_push(&q, f[0]), 0);
	assert_int_equal(sendq_push(&q, f[1]), 0);
	assert_int_equal(q.count, 2);
	msg_unref(&f[0]);
	msg_unref(&f[1]);
	msg_arena_fini(&a);
	sendq_fini(&q); /* frees both blocks: ASan reports a leak otherwise */
}

/* A cut-off connection finishes the piece being written, which may hold
 * several whole frames, never half of one. */
static void test_drop_unstarted_merged_piece(void **state)
{
	int sv[2];
	struct sendq q;
	struct msg_arena a;
	struct msg *f[3];
	struct bytes got = { 0 };

	(void)state;
	make_pair(sv, 1);
	sendq_init(&q, 1 << 22);
	msg_arena_init(&a, 1 << 20);
	/* Big frames so the small socket buffer takes only part of the first. */
	for (int i = 0; i < 3; i++) {
		char *dst = msg_arena_reserve(&a, 100000);
		assert_non_null(dst);
		memset(dst, 'a' + i, 99999);
		dst[99999] = '\n';
		f[i] = msg_arena_take(&a, 100000);
		assert_non_null(f[i]);
		assert_int_equal(sendq_push(&q, f[i]), 0);
	}
	assert_int_equal(q.count, 1);
	assert_int_equal(sendq_flush(&q, sv[0]), -EAGAIN);
	sendq_drop_unstarted(&q, 0);
	assert_int_equal(q.count, 1); /* started: kept whole */
	for (;;) {
		int rc = sendq_flush(&q, sv[0]);
		drain(sv[1], &got);
		if (rc == 0)
			break;
		assert_int_equal(rc, -EAGAIN);
	}
	assert_int_equal(got.len, 300000);
	assert_int_equal(got.p[299999], '\n');
	for (int i = 0; i < 3; i++)
		msg_unref(&f[i]);
	msg_arena_fini(&a);
	sendq_fini(&q);
	free(got.p);
	close_pair(sv);
}

/* drop_if: drops the pieces the test names, keeps the rest in order and
 * the charge exact. */
static int drop_odd(const struct sendq_piece *p, void *arg)
{
	(*(int *)arg)++;
	return p->data[0] % 2 == 1;
}

static void test_drop_unstarted_if(void **state)
{
	struct sendq q;
	struct msg *m[5];
	int asked = 0;
	size_t cost;

	(void)state;
	sendq_init(&q, 1 << 20);
	for (int i = 0; i < 5; i++) {
		char c = (char)('0' + i);
		m[i] = msg_create(&c, 1);
		assert_int_equal(sendq_push(&q, m[i]), 0);
	}
	cost = q.cost;
	sendq_drop_unstarted_if(&q, 0, drop_odd, &asked);
	assert_int_equal(asked, 5);
	assert_int_equal(q.count, 3);
	assert_int_equal(q.bytes, 3);
	assert_int_equal(q.cost, cost - 2 * (1 + SENDQ_PIECE_COST));
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(q.ring[(q.head + i) & (q.cap_slots - 1)].data[0], '0' + 2 * (int)i);
	for (int i = 0; i < 5; i++)
		msg_unref(&m[i]);
	sendq_fini(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_push_flush_bytes),
		cmocka_unit_test(test_byte_cap),
		cmocka_unit_test(test_real_cost),
		cmocka_unit_test(test_slices),
		cmocka_unit_test(test_shared_message),
		cmocka_unit_test(test_eagain_then_complete),
		cmocka_unit_test(test_drop_unstarted_keeps_partial_head),
		cmocka_unit_test(test_drop_unstarted_keeps_pinned),
		cmocka_unit_test(test_drop_unstarted_nothing_started),
		cmocka_unit_test(test_peer_closed),
		cmocka_unit_test(test_fini_releases),
		cmocka_unit_test(test_empty_message),
		cmocka_unit_test(test_arena_slices_merge),
		cmocka_unit_test(test_arena_new_block),
		cmocka_unit_test(test_drop_unstarted_merged_piece),
		cmocka_unit_test(test_drop_unstarted_if),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

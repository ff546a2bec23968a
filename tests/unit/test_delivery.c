/* test_delivery.c - what a room hands the control connections' owner:
 * batches that grow and keep their order, fan-outs that list frames and
 * members once (adjacent frames one piece) and count as frames x members
 * in the backlog, posts that carry batches and room-port requests through
 * one mailbox in order, and the backlog bound (over, hold, the low-water
 * wake-up, released) with its references. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "delivery.h"
#include "msg.h"
#include "sendq.h"

static struct msg *frame(size_t len)
{
	struct msg *m = msg_new(len);

	assert_non_null(m);
	assert_int_equal(m->len, len);
	return m;
}

static int readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

static void test_batch_grows_in_order(void **state)
{
	struct delivery_batch *b = NULL;
	struct msg *m = frame(10);

	(void)state;
	for (int i = 0; i < 40; i++)
		assert_int_equal(delivery_add(&b, m, i, (uint64_t)i + 100, i + 1, DELIVERY_LEAVE), 0);
	assert_int_equal(b->n, 40);
	assert_true(b->cap >= 40);
	assert_int_equal(b->bytes, 400);
	assert_int_equal(b->mail.type, DELIVERY_MAIL_BATCH);
	for (int i = 0; i < 40; i++) {
		assert_int_equal(b->d[i].fd, i);
		assert_int_equal(b->d[i].conn_id, (uint64_t)i + 100);
		assert_int_equal(b->d[i].join_id, i + 1);
		assert_ptr_equal(b->d[i].msg, m);
	}
	delivery_free(b); /* drops its 40 references */
	msg_unref(&m);
	assert_null(m);
	delivery_free(NULL);
}

static void test_batch_create_has_room(void **state)
{
	struct delivery_batch *b = delivery_batch_create(1), *same;
	struct msg *m = frame(3);

	(void)state;
	assert_non_null(b);
	assert_int_equal(b->n, 0);
	same = b;
	assert_int_equal(delivery_add(&b, m, 5, 6, 7, DELIVERY_LEAVE), 0);
	assert_ptr_equal(b, same); /* no allocation while there is room */
	assert_int_equal(b->d[0].ack, DELIVERY_LEAVE);
	delivery_free(b);
	msg_unref(&m);
}

/* Batches and requests come out of the mailbox in the order posted, the
 * batches counted in the backlog until applied. */
static void test_post_keeps_order(void **state)
{
	struct mailbox mb;
	struct delivery_backlog *bl = delivery_backlog_create();
	struct delivery_batch *b1 = NULL, *b2 = NULL;
	struct room_request *rq = room_request_create(ROOM_REQ_DISCONNECT);
	struct msg *m = frame(100);
	struct mail *all;

	(void)state;
	assert_int_equal(mailbox_init(&mb), 0);
	assert_non_null(bl);
	assert_non_null(rq);
	assert_int_equal(rq->mail.type, DELIVERY_MAIL_ROOM_REQUEST);
	assert_int_equal(rq->ctl_fd, -1);
	assert_int_equal(delivery_add(&b1, m, 1, 1, 1, DELIVERY_LEAVE), 0);
	assert_int_equal(delivery_add(&b1, m, 2, 2, 2, DELIVERY_LEAVE), 0);
	assert_int_equal(delivery_add(&b2, m, 3, 3, 3, DELIVERY_LEAVE), 0);
	delivery_post(&mb, b1, bl);
	room_request_post(&mb, rq);
	delivery_post(&mb, b2, bl);
	assert_int_equal(atomic_load(&bl->entries), 3);
	assert_int_equal(atomic_load(&bl->bytes), 300);
	assert_int_equal(atomic_load(&bl->refs), 3); /* the room's and one per batch */
	all = mailbox_take_all(&mb);
	assert_ptr_equal(all, &b1->mail);
	assert_ptr_equal(all->next, &rq->mail);
	assert_ptr_equal(all->next->next, &b2->mail);
	assert_null(all->next->next->next);
	delivery_backlog_applied(b1->bl, b1->n, b1->bytes);
	delivery_backlog_applied(b2->bl, b2->n, b2->bytes);
	delivery_backlog_applied(NULL, 5, 5); /* a batch counted nowhere */
	assert_int_equal(atomic_load(&bl->entries), 0);
	delivery_free(b1);
	delivery_free(b2);
	free(rq);
	assert_int_equal(atomic_load(&bl->refs), 1);
	delivery_backlog_unref(bl);
	msg_unref(&m);
	mailbox_fini(&mb);
}

/* Over the bound the room holds; the owner's applying down to half of it
 * wakes the room once, and the hold is then over. */
static void test_backlog_hold_and_wake(void **state)
{
	struct delivery_backlog *bl = delivery_backlog_create();

	(void)state;
	assert_non_null(bl);
	assert_false(delivery_backlog_over(bl, DELIVERY_BACKLOG_ENTRIES, 0));
	assert_true(delivery_backlog_over(bl, DELIVERY_BACKLOG_ENTRIES + 1, 0));
	assert_true(delivery_backlog_over(bl, 1, (size_t)DELIVERY_BACKLOG_BYTES + 1));
	/* Below the low-water mark there is nothing to wait for. */
	assert_int_equal(delivery_backlog_hold(bl), 0);
	assert_int_equal(atomic_load(&bl->held), 0);

	atomic_store(&bl->entries, DELIVERY_BACKLOG_ENTRIES + 10);
	assert_true(delivery_backlog_over(bl, 0, 0));
	assert_int_equal(delivery_backlog_hold(bl), 1);
	/* Applied, but still above half: no wake-up yet. */
	delivery_backlog_applied(bl, 100, 0);
	assert_false(readable(bl->efd));
	/* Down to half: one wake-up, and the hold is over. */
	delivery_backlog_applied(bl, (size_t)(atomic_load(&bl->entries) - DELIVERY_BACKLOG_ENTRIES / 2), 0);
	assert_int_equal(atomic_load(&bl->entries), DELIVERY_BACKLOG_ENTRIES / 2);
	assert_true(readable(bl->efd));
	assert_int_equal(delivery_backlog_released(bl), 1);
	assert_false(readable(bl->efd)); /* the wake-up was read */
	/* No second wake-up without a new hold. */
	delivery_backlog_applied(bl, 1, 0);
	assert_false(readable(bl->efd));
	delivery_backlog_unref(bl);
}

static void test_fanout_lists_frames_and_members_once(void **state)
{
	struct delivery_fanout *f = delivery_fanout_create(3);
	struct delivery_backlog *bl = delivery_backlog_create();
	struct msg_arena a;
	struct msg *own = frame(7), *m[4];
	struct mailbox mb;

	(void)state;
	assert_non_null(f);
	assert_non_null(bl);
	assert_int_equal(mailbox_init(&mb), 0);
	msg_arena_init(&a, 4096);
	assert_int_equal(f->mail.type, DELIVERY_MAIL_FANOUT);
	for (int i = 0; i < 4; i++) /* never beyond cap */
		delivery_fanout_target(f, 10 + i, (uint64_t)i + 100, i + 1);
	assert_int_equal(f->n, 3);
	assert_int_equal(f->t[2].fd, 12);
	assert_int_equal(f->t[2].conn_id, 102);
	assert_int_equal(f->t[2].join_id, 3);
	for (int i = 0; i < 4; i++) { /* four frames end to end in one block */
		assert_non_null(msg_arena_reserve(&a, 10));
		m[i] = msg_arena_take(&a, 10);
		assert_non_null(m[i]);
		assert_int_equal(delivery_fanout_add(f, m[i]), 0);
	}
	assert_int_equal(delivery_fanout_add(f, own), 0); /* a frame of its own */
	assert_int_equal(f->nmsgs, 5);
	assert_int_equal(f->frames->n, 2);
	assert_int_equal(f->frames->p[0].len, 40);
	assert_int_equal(f->frames->bytes, 47);
	assert_int_equal(delivery_fanout_entries(f), 15);
	assert_int_equal(delivery_fanout_bytes(f), 141);
	delivery_fanout_post(&mb, f, bl);
	assert_int_equal(atomic_load(&bl->entries), 15);
	assert_int_equal(atomic_load(&bl->bytes), 141);
	assert_ptr_equal(mailbox_take_all(&mb), &f->mail);
	delivery_backlog_applied(bl, 15, 141);
	delivery_fanout_free(f); /* its references, and its share of bl */
	for (int i = 0; i < 4; i++)
		msg_unref(&m[i]);
	msg_unref(&own);
	msg_arena_fini(&a);
	assert_int_equal(atomic_load(&bl->refs), 1);
	delivery_backlog_unref(bl);
	mailbox_fini(&mb);
	delivery_fanout_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batch_grows_in_order),
		cmocka_unit_test(test_batch_create_has_room),
		cmocka_unit_test(test_post_keeps_order),
		cmocka_unit_test(test_backlog_hold_and_wake),
		cmocka_unit_test(test_fanout_lists_frames_and_members_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

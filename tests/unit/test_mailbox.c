/* test_mailbox.c - the mailbox's wake-ups: a post to an empty mailbox
 * wakes the owner, later ones do not; a deferrable post while this thread
 * defers wakes nobody until mailbox_flush_wakes(), once per mailbox; a
 * plain post, the owner's take or mailbox_fini settle what is owed; with
 * deferring off a deferrable post wakes at once. The deferrable posts of
 * a pass are counted until the flush; mailbox_pending says whether items
 * wait without touching the wake-up. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <unistd.h>

#include "mailbox.h"

static int readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

/* How many wake-ups are pending on mb (reads the eventfd: clears it). */
static uint64_t wakes(struct mailbox *mb)
{
	uint64_t n = 0;

	if (!readable(mb->efd))
		return 0;
	assert_int_equal(read(mb->efd, &n, sizeof(n)), sizeof(n));
	return n;
}

static void test_post_wakes_on_empty_only(void **state)
{
	struct mailbox mb;
	struct mail a, b;

	(void)state;
	assert_int_equal(mailbox_init(&mb), 0);
	mailbox_post(&mb, &a);
	mailbox_post(&mb, &b);
	assert_int_equal(wakes(&mb), 1);
	assert_ptr_equal(mailbox_take_all(&mb), &a);
	assert_ptr_equal(a.next, &b);
	mailbox_fini(&mb);
}

static void test_deferred_wake_once_at_flush(void **state)
{
	struct mailbox m1, m2;
	struct mail a, b, c;

	(void)state;
	assert_int_equal(mailbox_init(&m1), 0);
	assert_int_equal(mailbox_init(&m2), 0);
	mailbox_defer_wakes(1);
	mailbox_post_deferrable(&m1, &a);
	mailbox_post_deferrable(&m1, &b);
	mailbox_post_deferrable(&m2, &c);
	assert_false(readable(m1.efd));
	assert_false(readable(m2.efd));
	mailbox_flush_wakes();
	assert_int_equal(wakes(&m1), 1);
	assert_int_equal(wakes(&m2), 1);
	mailbox_flush_wakes(); /* nothing owed any more */
	assert_int_equal(wakes(&m1), 0);
	assert_ptr_equal(mailbox_take_all(&m1), &a);
	assert_ptr_equal(a.next, &b);
	assert_ptr_equal(mailbox_take_all(&m2), &c);
	mailbox_defer_wakes(0);
	mailbox_fini(&m1);
	mailbox_fini(&m2);
}

/* A plain post after a deferred one wakes the owner at once (a stop must
 * not wait for the poster's pass to end); the flush then owes nothing. */
static void test_plain_post_pays_the_owed_wake(void **state)
{
	struct mailbox mb;
	struct mail a, b;

	(void)state;
	assert_int_equal(mailbox_init(&mb), 0);
	mailbox_defer_wakes(1);
	mailbox_post_deferrable(&mb, &a);
	mailbox_post(&mb, &b);
	assert_int_equal(wakes(&mb), 1);
	mailbox_flush_wakes();
	assert_int_equal(wakes(&mb), 0);
	mailbox_defer_wakes(0);
	mailbox_fini(&mb);
}

/* The owner found the items without the wake-up: none is written. */
static void test_take_clears_the_owed_wake(void **state)
{
	struct mailbox mb;
	struct mail a;

	(void)state;
	assert_int_equal(mailbox_init(&mb), 0);
	mailbox_defer_wakes(1);
	mailbox_post_deferrable(&mb, &a);
	assert_ptr_equal(mailbox_take_all(&mb), &a);
	mailbox_flush_wakes();
	assert_int_equal(wakes(&mb), 0);
	mailbox_defer_wakes(0);
	mailbox_fini(&mb);
}

/* Freed while a wake-up is owed: forgotten, the flush touches it no more
 * (ASan would see a use after free). */
static void test_fini_forgets_the_owed_wake(void **state)
{
	struct mailbox *mb = test_malloc(sizeof(*mb)), other;
	struct mail a, b;

	(void)state;
	assert_int_equal(mailbox_init(mb), 0);
	assert_int_equal(mailbox_init(&other), 0);
	mailbox_defer_wakes(1);
	mailbox_post_deferrable(mb, &a);
	mailbox_post_deferrable(&other, &b);
	mailbox_fini(mb);
	test_free(mb);
	mailbox_flush_wakes();
	assert_int_equal(wakes(&other), 1);
	mailbox_defer_wakes(0);
	mailbox_fini(&other);
}

static void test_not_deferring_wakes_at_once(void **state)
{
	struct mailbox mb;
	struct mail a;

	(void)state;
	assert_int_equal(mailbox_init(&mb), 0);
	mailbox_post_deferrable(&mb, &a);
	assert_int_equal(wakes(&mb), 1);
	mailbox_fini(&mb);
}

/* Owing more mailboxes than the thread can list: the rest wake at once. */
static void test_deferred_list_full_wakes_at_once(void **state)
{
	enum { N = 80 };
	struct mailbox mb[N];
	struct mail m[N];
	size_t at_once = 0;

	(void)state;
	mailbox_defer_wakes(1);
	for (int i = 0; i < N; i++) {
		assert_int_equal(mailbox_init(&mb[i]), 0);
		mailbox_post_deferrable(&mb[i], &m[i]);
	}
	for (int i = 0; i < N; i++)
		at_once += wakes(&mb[i]);
	assert_true(at_once > 0 && at_once < N);
	mailbox_flush_wakes();
	for (int i = 0; i < N; i++)
		at_once += wakes(&mb[i]);
	assert_int_equal(at_once, N);
	mailbox_defer_wakes(0);
	for (int i = 0; i < N; i++)
		mailbox_fini(&mb[i]);
}

/* The count the acceptor decides by (ACC_SAME_PASS_RELAYS): every
 * deferrable post since the last flush, several to one mailbox included,
 * and none after the flush. */
static void test_deferred_posts_counted_until_flush(void **state)
{
	struct mailbox m1, m2;
	struct mail a, b, c;

	(void)state;
	assert_int_equal(mailbox_init(&m1), 0);
	assert_int_equal(mailbox_init(&m2), 0);
	mailbox_defer_wakes(1);
	assert_int_equal(mailbox_deferred_posts(), 0);
	assert_false(mailbox_pending(&m1));
	mailbox_post_deferrable(&m1, &a);
	mailbox_post_deferrable(&m1, &b);
	mailbox_post_deferrable(&m2, &c);
	assert_int_equal(mailbox_deferred_posts(), 3);
	assert_true(mailbox_pending(&m1));
	assert_false(readable(m1.efd)); /* looking does not wake */
	mailbox_flush_wakes();
	assert_int_equal(mailbox_deferred_posts(), 0);
	assert_true(mailbox_pending(&m1)); /* until the owner takes them */
	assert_ptr_equal(mailbox_take_all(&m1), &a);
	assert_false(mailbox_pending(&m1));
	assert_ptr_equal(mailbox_take_all(&m2), &c);
	mailbox_defer_wakes(0);
	mailbox_fini(&m1);
	mailbox_fini(&m2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_post_wakes_on_empty_only),
		cmocka_unit_test(test_deferred_wake_once_at_flush),
		cmocka_unit_test(test_plain_post_pays_the_owed_wake),
		cmocka_unit_test(test_take_clears_the_owed_wake),
		cmocka_unit_test(test_fini_forgets_the_owed_wake),
		cmocka_unit_test(test_not_deferring_wakes_at_once),
		cmocka_unit_test(test_deferred_list_full_wakes_at_once),
		cmocka_unit_test(test_deferred_posts_counted_until_flush),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

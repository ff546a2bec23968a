/* notify.c - the command thread's wake-up (an eventfd) and its expectation of
 * one of its own CHAT frames.
 *
 * Owns the eventfd and the expectation (with its copied sender and prefix). The command thread arms, waits and
 * disarms; the control reader and room listeners report CHAT frames and error
 * replies from their threads. lock guards the expectation only; the eventfd
 * needs none. */
#include "notify.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct notify {
	int efd;
	char *own_name;       /* immutable after create */
	size_t own_len;
	pthread_mutex_t lock; /* guards the fields below */
	int armed;
	long ref;             /* -1: any room */
	const char *suffix;   /* NULL: any text */
	char *sender;         /* non-NULL: match this sender (not our own name) */
	char *prefix;         /* ... and a text starting with this (owned) */
	int result;           /* 0 pending, 1 seen, -1 failed */
};

int notify_create(const char *own_name, struct notify **out)
{
	struct notify *n = calloc(1, sizeof(*n));

	if (!n)
		return -ENOMEM;
	n->own_name = strdup(own_name);
	if (!n->own_name) {
		free(n);
		return -ENOMEM;
	}
	n->own_len = strlen(own_name);
	n->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (n->efd < 0) {
		int err = -errno;
		free(n->own_name);
		free(n);
		return err;
	}
	pthread_mutex_init(&n->lock, NULL);
	*out = n;
	return 0;
}

/* Drop an owned sender/prefix pair. Lock held (or no other thread yet). */
static void clear_prefix_locked(struct notify *n)
{
	free(n->sender);
	free(n->prefix);
	n->sender = n->prefix = NULL;
}

void notify_destroy(struct notify *n)
{
	if (!n)
		return;
	clear_prefix_locked(n);
	close(n->efd);
	pthread_mutex_destroy(&n->lock);
	free(n->own_name);
	free(n);
}

int notify_fd(const struct notify *n)
{
	return n->efd;
}

void notify_poke(struct notify *n)
{
	uint64_t one = 1;

	/* EAGAIN means the counter is saturated: the command thread will wake
	 * anyway. Nothing else can fail on a valid eventfd. */
	if (write(n->efd, &one, sizeof(one)) < 0)
		return;
}

void notify_drain(struct notify *n)
{
	uint64_t count;

	/* EAGAIN: already drained. */
	if (read(n->efd, &count, sizeof(count)) < 0)
		return;
}

void notify_arm(struct notify *n, long ref, const char *suffix)
{
	pthread_mutex_lock(&n->lock);
	clear_prefix_locked(n);
	n->armed = 1;
	n->ref = ref;
	n->suffix = suffix;
	n->result = 0;
	pthread_mutex_unlock(&n->lock);
}

int notify_arm_prefix(struct notify *n, long ref, const char *sender, const char *prefix)
{
	char *s = strdup(sender), *p = strdup(prefix);

	if (!s || !p) {
		free(s);
		free(p);
		notify_disarm(n);
		return -ENOMEM;
	}
	pthread_mutex_lock(&n->lock);
	clear_prefix_locked(n);
	n->armed = 1;
	n->ref = ref;
	n->suffix = NULL;
	n->sender = s;
	n->prefix = p;
	n->result = 0;
	pthread_mutex_unlock(&n->lock);
	return 0;
}

void notify_disarm(struct notify *n)
{
	pthread_mutex_lock(&n->lock);
	clear_prefix_locked(n);
	n->armed = 0;
	n->result = 0;
	pthread_mutex_unlock(&n->lock);
}

int notify_result(struct notify *n)
{
	int r;

	pthread_mutex_lock(&n->lock);
	r = n->result;
	pthread_mutex_unlock(&n->lock);
	return r;
}

static int matches_locked(const struct notify *n, long ref, const char *name, const char *text)
{
	if (!n->armed || n->result != 0 || (n->ref != -1 && n->ref != ref))
		return 0;
	if (n->sender)
		return strcmp(name, n->sender) == 0 &&
		       strncmp(text, n->prefix, strlen(n->prefix)) == 0;
	if (strcmp(name, n->own_name) != 0)
		return 0;
	if (!n->suffix)
		return 1;
	return strncmp(text, n->own_name, n->own_len) == 0 &&
	       strcmp(text + n->own_len, n->suffix) == 0;
}

void notify_chat(struct notify *n, long ref, const char *name, const char *text)
{
	int hit;

	pthread_mutex_lock(&n->lock);
	hit = matches_locked(n, ref, name, text);
	if (hit)
		n->result = 1;
	pthread_mutex_unlock(&n->lock);
	if (hit)
		notify_poke(n);
}

void notify_error(struct notify *n, long ref)
{
	int hit;

	pthread_mutex_lock(&n->lock);
	hit = n->armed && n->result == 0 && (ref == -1 || n->ref == -1 || n->ref == ref);
	if (hit)
		n->result = -1;
	pthread_mutex_unlock(&n->lock);
	if (hit)
		notify_poke(n);
}

/* msg.c - refcounted immutable messages, shared by every queue that sends
 * them. Any thread may take or drop a reference. */
#include "msg.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct msg *msg_new(size_t len)
{
	struct msg *m = malloc(sizeof(*m) + len + 1);

	if (!m)
		return NULL;
	atomic_init(&m->refs, 1);
	m->len = len;
	m->data = m->buf;
	m->owner = m;
	m->data[len] = '\0';
	return m;
}

struct msg *msg_create(const char *data, size_t len)
{
	struct msg *m = msg_new(len);

	if (m)
		memcpy(m->data, data, len);
	return m;
}

struct msg *msg_printf(const char *fmt, ...)
{
	va_list ap;
	int n;
	struct msg *m;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	m = msg_new((size_t)n);
	if (!m)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(m->data, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return m;
}

struct msg *msg_concat(const struct msg *a, const struct msg *b)
{
	struct msg *m = msg_new(a->len + b->len);

	if (m) {
		memcpy(m->data, a->data, a->len);
		memcpy(m->data + a->len, b->data, b->len);
	}
	return m;
}

struct msg *msg_ref(struct msg *m)
{
	/* Relaxed: a new reference is only made from an existing one, which
	 * already keeps the message alive. */
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
	return m;
}

void msg_unref(struct msg **mp)
{
	struct msg *m = *mp;

	if (!m)
		return;
	*mp = NULL;
	/* acq_rel: the last owner must see every other owner's use finished
	 * before it frees. */
	if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1) {
		if (m->owner != m)
			msg_unref(&m->owner);
		free(m);
	}
}

void msg_arena_init(struct msg_arena *a, size_t block_size)
{
	a->block = NULL;
	a->used = 0;
	a->block_size = block_size;
}

void msg_arena_fini(struct msg_arena *a)
{
	msg_unref(&a->block);
	a->used = 0;
}

char *msg_arena_reserve(struct msg_arena *a, size_t max_len)
{
	if (!a->block || a->block->len - a->used < max_len + 1) {
		/* The old block lives on in the slices still using it. */
		msg_unref(&a->block);
		a->used = 0;
		a->block = msg_new(max_len + 1 > a->block_size ? max_len + 1 : a->block_size);
		if (!a->block)
			return NULL;
	}
	return a->block->data + a->used;
}

struct msg *msg_arena_take(struct msg_arena *a, size_t len)
{
	struct msg *m = malloc(sizeof(*m));

	if (!m)
		return NULL;
	atomic_init(&m->refs, 1);
	m->len = len;
	m->data = a->block->data + a->used;
	m->owner = msg_ref(a->block);
	a->used += len;
	return m;
}

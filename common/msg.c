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
	if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
		free(m);
}

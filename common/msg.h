/* msg.h - refcounted immutable byte strings.
 *
 * A message is formatted once and shared by every queue it is delivered to;
 * the last msg_unref() frees it. The refcount is atomic so queues owned by
 * different threads may hold the same message. */
#ifndef ROOMD_MSG_H
#define ROOMD_MSG_H

#include <stddef.h>
#include <stdatomic.h>

struct msg {
	atomic_uint refs; /* relaxed increments; acq_rel decrement frees */
	size_t len;       /* bytes in data, the NUL terminator excluded */
	char data[];      /* always NUL-terminated for convenience */
};

/* A new message of len bytes, to be filled by the caller before it is
 * shared (refcount 1, data[len] already NUL), or NULL. */
struct msg *msg_new(size_t len);

/* A new message of len bytes copied from data (refcount 1), or NULL. */
struct msg *msg_create(const char *data, size_t len);

/* A new message formatted like printf (refcount 1), or NULL. */
struct msg *msg_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A new message holding a's bytes then b's (refcount 1), or NULL. */
struct msg *msg_concat(const struct msg *a, const struct msg *b);

/* Take one more reference; returns m. */
struct msg *msg_ref(struct msg *m);

/* Drop the reference held in *mp and set *mp to NULL; NULL is allowed. */
void msg_unref(struct msg **mp);

#endif

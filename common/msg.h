/* msg.h - refcounted immutable byte strings.
 *
 * A message is formatted once and shared by every queue it is delivered to;
 * the last msg_unref() frees it. The refcount is atomic so queues owned by
 * different threads may hold the same message.
 *
 * A message either holds its own bytes or is a slice of a shared block
 * (struct msg_arena): frames carved one after another from one block lie
 * next to each other, so a send queue holding several of them keeps and
 * writes them as one piece (see sendq.c). */
#ifndef ROOMD_MSG_H
#define ROOMD_MSG_H

#include <stddef.h>
#include <stdatomic.h>

struct msg {
	atomic_uint refs;  /* relaxed increments; acq_rel decrement frees */
	size_t len;        /* bytes in data, the NUL terminator excluded */
	char *data;        /* NUL-terminated, except in a slice */
	struct msg *owner; /* who holds the bytes: itself, or a slice's block */
	char buf[];        /* the bytes of a message that owns them */
};

/* Carves messages out of shared blocks of block_size bytes. Owned by one
 * thread; the messages it makes may go anywhere. */
struct msg_arena {
	struct msg *block; /* the block being filled, or NULL */
	size_t used;       /* bytes of it given out */
	size_t block_size;
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

void msg_arena_init(struct msg_arena *a, size_t block_size);
/* Drop the arena's reference to its block (its slices stay valid). */
void msg_arena_fini(struct msg_arena *a);

/* Room for a message of up to max_len bytes (+1 for a terminator the
 * formatter may write): a pointer to fill, or NULL when out of memory. */
char *msg_arena_reserve(struct msg_arena *a, size_t max_len);

/* The len bytes just written at the reserved pointer as a message (refcount
 * 1; not NUL-terminated), or NULL when out of memory. */
struct msg *msg_arena_take(struct msg_arena *a, size_t len);

/* Take one more reference; returns m. */
struct msg *msg_ref(struct msg *m);

/* Drop the reference held in *mp and set *mp to NULL; NULL is allowed. */
void msg_unref(struct msg **mp);

#endif

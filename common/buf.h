/* buf.h - a growable byte buffer with a hard cap (read buffers).
 *
 * Grows by doubling up to its cap, so a client can never make us allocate
 * more than the cap. Owned by one thread. */
#ifndef ROOMD_BUF_H
#define ROOMD_BUF_H

#include <stddef.h>

struct buf {
	char *data;
	size_t len;  /* bytes held */
	size_t size; /* bytes allocated */
	size_t cap;  /* never grow beyond this */
};

void buf_init(struct buf *b, size_t cap);
void buf_fini(struct buf *b);

/* Make room for at least want more bytes (bounded by cap). Returns the free
 * space at data + len (0 when the cap is reached), or -ENOMEM. */
long buf_reserve(struct buf *b, size_t want);

/* Discard n bytes from the front. When empty, frees the storage so an idle
 * connection holds no buffer. */
void buf_consume(struct buf *b, size_t n);

#endif

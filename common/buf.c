/* buf.c - capped growable byte buffers, owned by one thread. */
#include "buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BUF_MIN_SIZE 512

void buf_init(struct buf *b, size_t cap)
{
	b->data = NULL;
	b->len = 0;
	b->size = 0;
	b->cap = cap;
}

void buf_fini(struct buf *b)
{
	free(b->data);
	buf_init(b, b->cap);
}

long buf_reserve(struct buf *b, size_t want)
{
	size_t need = b->len + want, nsize;
	char *p;

	if (need > b->cap)
		need = b->cap;
	if (need <= b->size)
		return (long)(b->size - b->len);
	nsize = b->size ? b->size : BUF_MIN_SIZE;
	while (nsize < need)
		nsize *= 2;
	if (nsize > b->cap)
		nsize = b->cap;
	p = realloc(b->data, nsize);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->size = nsize;
	return (long)(b->size - b->len);
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		/* Idle connections hold no storage: thousands of them stay cheap. */
		free(b->data);
		b->data = NULL;
		b->len = 0;
		b->size = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

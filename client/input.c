/* input.c - stdin split into lines for the command loop.
 *
 * Owns a capped buffer of unread input; only the command thread uses it. A
 * returned line stays in the buffer until the next call. An overlong line is
 * dropped up to its newline, so one bad paste cannot make us allocate more
 * than the cap, nor run its tail as a command. */
#include "input.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"

#define INPUT_CHUNK 4096

struct input {
	int fd;
	size_t max_line;
	struct buf b;     /* cap: max_line + INPUT_CHUNK, so a read always fits */
	size_t consumed;  /* bytes of the last returned line */
	int discarding;   /* dropping the rest of an overlong line */
	int eof;
};

int input_create(int fd, size_t max_line, struct input **out)
{
	struct input *in = calloc(1, sizeof(*in));

	if (!in)
		return -ENOMEM;
	in->fd = fd;
	in->max_line = max_line;
	buf_init(&in->b, max_line + INPUT_CHUNK);
	*out = in;
	return 0;
}

void input_destroy(struct input *in)
{
	if (!in)
		return;
	buf_fini(&in->b);
	free(in);
}

int input_fd(const struct input *in)
{
	return in->fd;
}

int input_eof(const struct input *in)
{
	return in->eof;
}

int input_read(struct input *in)
{
	long room;
	ssize_t n;

	buf_consume(&in->b, in->consumed);
	in->consumed = 0;
	room = buf_reserve(&in->b, INPUT_CHUNK);
	if (room < 0)
		return (int)room;
	if (room == 0)
		return -ENOBUFS; /* not reached: input_next() drops overlong lines */
	do {
		n = read(in->fd, in->b.data + in->b.len, (size_t)room);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? 1 : -errno;
	if (n == 0) {
		in->eof = 1;
		return 0;
	}
	in->b.len += (size_t)n;
	return 1;
}

/* Drop input up to and including the next newline. 1 once found. */
static int skip_to_newline(struct input *in)
{
	char *nl = in->b.len ? memchr(in->b.data, '\n', in->b.len) : NULL;

	if (!nl) {
		buf_consume(&in->b, in->b.len);
		return in->eof;
	}
	buf_consume(&in->b, (size_t)(nl - in->b.data) + 1);
	return 1;
}

int input_next(struct input *in, char **line, size_t *len)
{
	char *nl;
	size_t n;

	buf_consume(&in->b, in->consumed);
	in->consumed = 0;
	if (in->discarding) {
		if (!skip_to_newline(in))
			return 0;
		in->discarding = 0;
	}
	nl = in->b.len ? memchr(in->b.data, '\n', in->b.len) : NULL;
	if (nl) {
		n = (size_t)(nl - in->b.data);
		in->consumed = n + 1;
	} else if (in->b.len > in->max_line) {
		buf_consume(&in->b, in->b.len);
		in->discarding = !in->eof;
		return -E2BIG;
	} else if (in->eof && in->b.len > 0) {
		if (buf_reserve(&in->b, 1) <= 0)
			return -ENOMEM;
		n = in->b.len;
		in->consumed = n;
	} else {
		return 0;
	}
	if (n > in->max_line) {
		in->consumed = 0;
		buf_consume(&in->b, n + (nl ? 1 : 0));
		return -E2BIG;
	}
	if (n > 0 && in->b.data[n - 1] == '\r')
		n--;
	in->b.data[n] = '\0';
	*line = in->b.data;
	*len = n;
	return 1;
}

/* frame_reader.c - blocking frame reads for roomc's reader threads.
 *
 * Owns a read buffer and a reply parser for one socket; only the thread that
 * reads that socket calls in. A frame stays in the buffer until the next call,
 * so the strings it hands out need no copy. */
#include "frame_reader.h"
#include "tlsconn.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/types.h>

/* One read's worth: chat frames are small, and the parser rescans nothing. */
#define FRAME_READER_CHUNK 4096

void frame_reader_init(struct frame_reader *r, int fd)
{
	r->fd = fd;
	r->tls = NULL;
	/* The parser stops at MAX_FRAME; the slack lets it see that happen. */
	buf_init(&r->in, FRAME_READER_MAX_FRAME + FRAME_READER_MAX_FRAME);
	proto_parser_init(&r->parser, PROTO_REPLIES, FRAME_READER_MAX_FRAME);
	r->consumed = 0;
}

void frame_reader_fini(struct frame_reader *r)
{
	buf_fini(&r->in);
}

/* Append what the socket has. 1 when bytes arrived, 0 at EOF, -errno. */
static int fill(struct frame_reader *r)
{
	long room = buf_reserve(&r->in, FRAME_READER_CHUNK);
	ssize_t n;

	if (room < 0)
		return (int)room;
	if (room == 0)
		return -EMSGSIZE;
	if (r->tls) {
		n = tlsconn_read(r->tls, r->in.data + r->in.len, (size_t)room);
		if (n < 0)
			return (int)n;
	} else {
		do {
			n = recv(r->fd, r->in.data + r->in.len, (size_t)room, 0);
		} while (n < 0 && errno == EINTR);
		if (n < 0)
			return -errno;
	}
	if (n == 0)
		return 0;
	r->in.len += (size_t)n;
	return 1;
}

int frame_reader_next(struct frame_reader *r, struct proto_msg *m)
{
	buf_consume(&r->in, r->consumed);
	r->consumed = 0;
	for (;;) {
		if (r->in.len > 0) {
			enum proto_err err;
			size_t consumed;
			int fatal;
			enum proto_status st = proto_parse(&r->parser, r->in.data, r->in.len,
							   m, &consumed, &err, &fatal);

			if (st == PROTO_MESSAGE) {
				r->consumed = consumed;
				return 1;
			}
			buf_consume(&r->in, consumed);
			if (st == PROTO_ERROR && fatal)
				return -EMSGSIZE;
			if (st == PROTO_ERROR)
				continue; /* unknown or malformed frame: skipped */
		}
		int rc = fill(r);
		if (rc <= 0)
			return rc;
	}
}

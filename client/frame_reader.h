/* frame_reader.h - read the server's frames from a blocking socket (plain,
 * or through its TLS session).
 *
 * Wraps the common parser (PROTO_REPLIES dialect) and a capped read buffer.
 * Embedded in its owner; used by one thread only (the control reader or a
 * room listener). The server cannot make it allocate more than
 * FRAME_READER_MAX_FRAME plus one read's worth of bytes. */
#ifndef ROOMC_FRAME_READER_H
#define ROOMC_FRAME_READER_H

#include <stddef.h>

#include "buf.h"
#include "proto.h"

/* Largest frame we accept from the server. Well above anything a CS4032
 * server sends (its request cap is 8 KiB by default), and what keeps a
 * broken or hostile server from growing our memory without bound. */
#define FRAME_READER_MAX_FRAME 65536

struct tlsconn;

struct frame_reader {
	int fd;                    /* not owned: the owner closes it */
	struct tlsconn *tls;       /* not owned: NULL, or TLS over fd (set by
				    * the owner after init) */
	struct buf in;             /* unparsed bytes, capped */
	struct proto_parser parser;
	size_t consumed;           /* bytes of the last frame, dropped on the next call */
};

void frame_reader_init(struct frame_reader *r, int fd);
void frame_reader_fini(struct frame_reader *r);

/* Block until the next complete frame. Returns 1 with *m set (its strings
 * point into the reader's buffer: valid until the next call), 0 at end of
 * stream, -EMSGSIZE when the server sent a frame over the cap, or -errno
 * from recv(2) (-ENOMEM when the buffer cannot grow). A frame the parser does
 * not recognise is skipped. */
int frame_reader_next(struct frame_reader *r, struct proto_msg *m);

#endif

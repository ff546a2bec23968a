/* transport.h - how a connection's bytes reach its socket: plain TCP
 * (transport_tcp, here) or TLS (tls.h); a WebSocket framing later is one
 * more transport, not an edit of every caller.
 *
 * conn.c calls a conn's transport for every read and every batch of
 * writes (one indirect call per system call, nothing per message); it
 * runs on the conn's owner thread only, like the conn. */
#ifndef ROOMD_TRANSPORT_H
#define ROOMD_TRANSPORT_H

#include <stddef.h>

struct iovec;

/* What a transport works on: a connection's socket and the transport's own
 * state for it (NULL for plain TCP; a TLS session later). Embedded in the
 * conn, so a transport needs nothing of struct conn. */
struct transport_sock {
	int fd;
	void *state;
	/* TRANSPORT_* below, set by the transport at each read or write and
	 * read by the owner; always 0 for plain TCP. */
	unsigned flags;
	/* Bytes from the send queue's front (after what is written) that the
	 * transport has taken and must be given again, unchanged, at its next
	 * write (a TLS record waiting for the socket): the queue may not drop
	 * them. Always 0 for plain TCP. */
	size_t committed;
};

/* The last read's -EAGAIN waits for writability, or the last write's for
 * readability (TLS: a handshake message must go out or come in first): the
 * owner polls for that direction too. */
#define TRANSPORT_READ_WANTS_WRITE 1u
#define TRANSPORT_WRITE_WANTS_READ 2u
#define TRANSPORT_WANTS (TRANSPORT_READ_WANTS_WRITE | TRANSPORT_WRITE_WANTS_READ)
/* Bytes already taken off the socket wait to be read (TLS: the rest of a
 * decrypted record): no epoll event will say so, the owner reads again on
 * its own. */
#define TRANSPORT_PENDING_INPUT 4u
/* A handshake is under way (the owner's deadline cuts one that stalls). */
#define TRANSPORT_HANDSHAKING 8u

struct conn_transport {
	const char *name; /* for logs: "tcp" */
	/* Read up to len bytes into buf, never blocking: bytes read (> 0), 0
	 * at end of stream, -EAGAIN when none are there now, or another
	 * negative errno. */
	long (*read)(struct transport_sock *s, char *buf, size_t len);
	/* Write from n iovecs, never blocking (a sendq_writev_fn; ctx is the
	 * struct transport_sock): bytes written, -EAGAIN, or another negative errno
	 * (EPIPE, ECONNRESET: the peer is gone). Never raises SIGPIPE. */
	long (*writev)(void *ctx, const struct iovec *iov, int n);
	/* Close the socket and free the transport's state. */
	void (*close)(struct transport_sock *s);
};

/* Plain TCP on c->fd (the default of conn_create). */
extern const struct conn_transport transport_tcp;

#endif

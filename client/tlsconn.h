/* tlsconn.h - roomc's side of TLS (--tls): one TLS session over a connected
 * socket, shared by the thread that reads it and the thread that writes it.
 *
 * The server is verified against the system's CAs (or --cafile) and the
 * host name given; a certificate no known CA signed (a self-signed server)
 * is trusted on first use: its SHA-256 fingerprint is shown once and
 * remembered in $XDG_CONFIG_HOME/roomc/known_servers (else
 * ~/.config/roomc/known_servers), and a different one later is refused.
 * --insecure checks nothing. */
#ifndef ROOMC_TLSCONN_H
#define ROOMC_TLSCONN_H

#include <stddef.h>

/* What --tls, --cafile and --insecure asked for; kept by the caller for
 * the session's lifetime. */
struct tlsconn_opts {
	int on;              /* --tls */
	const char *cafile;  /* --cafile, or NULL: the system's CAs */
	int insecure;        /* --insecure: no verification at all */
	const char *host;    /* the -h host: the name checked and pinned */
	unsigned port;       /* the control port: with host, the pin's key
			      * (room ports share the control port's pin) */
};

struct tlsconn;

/* Handshake over fd (connected; it is made non-blocking, the waits are
 * poll(2)s bounded by timeout_s) and verify the server as o says. 0 with
 * *out, or -errno after printing why to stderr (a changed pinned
 * certificate loudly). fd stays the caller's. Command thread. */
int tlsconn_start(int fd, const struct tlsconn_opts *o, int timeout_s, struct tlsconn **out);

/* Read up to len bytes, waiting for them: bytes read, 0 at the end of the
 * stream, or -errno (shutdown(2) of the fd by another thread ends the
 * wait). One reader thread. */
long tlsconn_read(struct tlsconn *t, void *buf, size_t len);

/* Write all of buf, waiting at most the start's timeout_s for room in the
 * socket each time: 0 or -errno. One writer thread, concurrently with the
 * reader (a lock serialises their SSL calls, never held while waiting). */
int tlsconn_write_all(struct tlsconn *t, const void *buf, size_t len);

/* Free the session (the fd is the caller's to close). NULL is fine. After
 * the reader and writer are done. */
void tlsconn_free(struct tlsconn *t);

#endif

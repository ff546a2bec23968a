/* tlsconn.h - roombench's TLS client side (OpenSSL 3): one client context
 * and non-blocking handshake, read and write on an SSL. No state of its
 * own beyond the context; the caller (roombench's one thread) owns each
 * SSL and keeps what a retried write needs. */
#ifndef ROOMBENCH_TLSCONN_H
#define ROOMBENCH_TLSCONN_H

#include <openssl/ssl.h>
#include <stddef.h>

/* What the last operation waits for: the socket readable or writable. */
#define TLSC_WANT_READ 1
#define TLSC_WANT_WRITE 2

/* The client context: no certificate verification when cafile is NULL (a
 * load generator), else the server's certificate must chain to cafile and
 * name host (an IP address). Dies on failure. */
void tlsc_init(const char *cafile, const char *host);

/* A client SSL on connected (or connecting) socket fd. Dies on failure. */
SSL *tlsc_new(int fd);

/* One handshake step: 1 done, 0 not yet (*want says for what). Dies on
 * a failed handshake, naming who. */
int tlsc_handshake(SSL *ssl, int *want, const char *who);

/* Bytes read (> 0), 0 at the end of the stream, or -1: nothing now
 * (*want says what for). Dies on an error. */
long tlsc_read(SSL *ssl, char *buf, size_t len, int *want, const char *who);

/* Bytes written (> 0, at most one record's), or -1: repeat later with the
 * same bytes and the same len (*want says what for); the caller keeps that
 * len. Dies on an error. */
long tlsc_write(SSL *ssl, const char *buf, size_t len, int *want, const char *who);

/* close_notify, best effort, and free. */
void tlsc_free(SSL *ssl);

#endif

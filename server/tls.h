/* tls.h - TLS (OpenSSL 3) as a transport of the event loop, and the
 * daemon's server context ([tls] in rooms.ini).
 *
 * The context (certificate chain, key, minimum version, client CAs) is one
 * refcounted SSL_CTX: tls_init() builds it before any thread starts, a
 * SIGHUP builds a new one (tls_reload(), acceptor thread) and swaps it in
 * under a lock; every connection's SSL holds a reference to the context it
 * was made from, so open connections keep theirs and the old context is
 * freed with its last connection. The transport itself runs on the conn's
 * owner thread only, like the conn. */
#ifndef ROOMD_TLS_H
#define ROOMD_TLS_H

#include <stddef.h>
#include "transport.h"

struct config;

/* Build the context cfg's [tls] describes and throw it away: the
 * certificate chain and key load, and they belong together (roomd -t).
 * 0 (also when mode is off), or -1 with the reason in why. */
int tls_check(const struct config *cfg, char *why, size_t whylen);

/* Serve TLS as cfg says (mode off: nothing, every connection plain TCP).
 * Before any loop accepts. 0, or -1 with the reason in why. */
int tls_init(const struct config *cfg, char *why, size_t whylen);

/* SIGHUP: build a context from next's certificate, key, ca, verify_clients
 * and min_version and serve it to new connections; open ones keep theirs.
 * On failure nothing changes. 1 when reloaded, 0 when TLS is off (nothing
 * to reload), -1 with the reason in why. Acceptor thread. */
int tls_reload(const struct config *next, char *why, size_t whylen);

/* Drop the daemon's reference to the context (connections left keep
 * theirs) and serve no TLS to new ones. After every loop stopped. */
void tls_fini(void);

/* A new connection: when TLS is on, give it the TLS transport (which tells
 * TLS from plain by the first byte in optional mode). 0, or -ENOMEM (the
 * connection stays plain TCP; the caller refuses it). */
int tls_wrap(const struct conn_transport **tr, struct transport_sock *s);

/* The transport tls_wrap() installs. */
extern const struct conn_transport transport_tls;

#endif

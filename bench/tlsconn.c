/* tlsconn.c - roombench's TLS client side (see tlsconn.h).
 *
 * Ownership: `ctx` is built once by tlsc_init() before the run and only
 * read afterwards; roombench has one thread, which owns every SSL. The
 * session cache is off and no session is ever offered, so every
 * connection pays a full handshake, as the handshake-rate run intends. */
#include "tlsconn.h"

#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One SSL_write takes at most one full record. */
#define RECORD_MAX 16384

static SSL_CTX *ctx;
static const char *verify_host;

static void tls_die(const char *who, const char *what) __attribute__((noreturn));
static void tls_die(const char *who, const char *what)
{
	char reason[256];
	unsigned long e = ERR_get_error();

	if (e)
		ERR_error_string_n(e, reason, sizeof(reason));
	else
		snprintf(reason, sizeof(reason), "%s", errno ? strerror(errno) : "connection closed");
	fprintf(stderr, "roombench: %s: %s: %s\n", who, what, reason);
	exit(1);
}

void tlsc_init(const char *cafile, const char *host)
{
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		tls_die("tls", "SSL_CTX_new");
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* A FIN without close_notify is the end of the stream, as for TCP. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* Partial writes: SSL_write returns after each record, as send()
	 * returns what fitted; the buffer may move between a write and its
	 * repetition (roombench's output buffer grows). */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (!cafile) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		return;
	}
	if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1)
		tls_die(cafile, "cannot load the CA file");
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	verify_host = host;
}

SSL *tlsc_new(int fd)
{
	SSL *ssl = SSL_new(ctx);

	if (!ssl || SSL_set_fd(ssl, fd) != 1)
		tls_die("tls", "SSL_new");
	if (verify_host && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), verify_host) != 1)
		tls_die(verify_host, "not an IP address to verify");
	SSL_set_connect_state(ssl);
	return ssl;
}

/* -1 with *want set when the operation must wait; dies otherwise. */
static long would_block(SSL *ssl, int rc, int *want, const char *who, const char *what)
{
	switch (SSL_get_error(ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		*want = TLSC_WANT_READ;
		return -1;
	case SSL_ERROR_WANT_WRITE:
		*want = TLSC_WANT_WRITE;
		return -1;
	default:
		break;
	}
	tls_die(who, what);
}

int tlsc_handshake(SSL *ssl, int *want, const char *who)
{
	int rc;

	errno = 0;
	rc = SSL_do_handshake(ssl);
	if (rc == 1)
		return 1;
	would_block(ssl, rc, want, who, "TLS handshake failed");
	return 0;
}

long tlsc_read(SSL *ssl, char *buf, size_t len, int *want, const char *who)
{
	int rc;

	errno = 0;
	rc = SSL_read(ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
	if (rc > 0)
		return rc;
	if (SSL_get_error(ssl, rc) == SSL_ERROR_ZERO_RETURN)
		return 0;
	return would_block(ssl, rc, want, who, "TLS read");
}

long tlsc_write(SSL *ssl, const char *buf, size_t len, int *want, const char *who)
{
	int rc;

	errno = 0;
	rc = SSL_write(ssl, buf, len > RECORD_MAX ? RECORD_MAX : (int)len);
	if (rc > 0)
		return rc;
	return would_block(ssl, rc, want, who, "TLS write");
}

void tlsc_free(SSL *ssl)
{
	if (SSL_is_init_finished(ssl) && SSL_shutdown(ssl) < 0)
		ERR_clear_error();
	SSL_free(ssl);
}

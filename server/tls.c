/* tls.c - the TLS transport (OpenSSL 3) and the daemon's server context.
 *
 * The context: `server` below, built by tls_init() before any thread runs
 * and replaced by tls_reload() on the acceptor thread; `lock` guards only
 * the ctx pointer, held for an SSL_new() or a swap (no I/O). An SSL takes
 * its own reference to its SSL_CTX, so a reload frees the old context only
 * when its last connection is gone. `mode` is written before the threads
 * start and only read afterwards.
 *
 * A connection's state (struct tls_sock) is its owner thread's. Its first
 * byte decides what it speaks: 0x16 (a TLS handshake record) starts TLS;
 * anything else is a plain CS4032 client, served as before in optional
 * mode and refused with an error frame in required mode. The handshake is
 * driven by SSL_read() from the loop's reads, never blocking: a read or a
 * write that needs the other direction says so in the sock's flags,
 * and the loop polls for it. Renegotiation is off (SSL_OP_NO_RENEGOTIATION),
 * so after the handshake a read only reads and a write only writes. */
#include "tls.h"

#include "config.h"
#include "log.h"
#include "msg.h"
#include "proto.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* The first byte of a TLS record carrying a handshake message. */
#define TLS_HANDSHAKE_RECORD 0x16
/* What one SSL_write() takes at most: one full TLS record, so a batch of
 * small frames costs one record, not one each. */
#define TLS_WRITE_MAX 16384

static struct {
	pthread_mutex_t lock; /* guards ctx */
	SSL_CTX *ctx;         /* what new connections use; NULL: TLS off */
	int mode;             /* enum config_tls_mode; set before the threads */
} server = { PTHREAD_MUTEX_INITIALIZER, NULL, CONFIG_TLS_OFF };

enum tls_kind { TLS_UNDECIDED, TLS_PLAIN, TLS_ON };

struct tls_sock {
	SSL *ssl;            /* TLS_ON only */
	enum tls_kind kind;
	int established;     /* the handshake finished (logged once) */
	/* An SSL_write() that returned WANT_WRITE must be repeated with the
	 * same bytes: how many it was given (0: none pending). */
	size_t retry_len;
};

/* ---- the context ---- */

/* The first OpenSSL error queued, as text, and the queue emptied. */
static void ssl_reason(char *out, size_t len)
{
	unsigned long e = ERR_get_error();

	if (e)
		ERR_error_string_n(e, out, len);
	else
		snprintf(out, len, "unknown error");
	ERR_clear_error();
}

static int ctx_fail(SSL_CTX *ctx, const char *what, const char *path, char *why, size_t whylen)
{
	char reason[256];

	ssl_reason(reason, sizeof(reason));
	snprintf(why, whylen, "[tls] %s%s%s: %s", what, path ? " " : "", path ? path : "", reason);
	SSL_CTX_free(ctx);
	return -1;
}

static int load_client_cas(SSL_CTX *ctx, const struct config *cfg, char *why, size_t whylen)
{
	STACK_OF(X509_NAME) *names;

	if (SSL_CTX_load_verify_locations(ctx, cfg->tls_ca, NULL) != 1)
		return ctx_fail(ctx, "ca", cfg->tls_ca, why, whylen);
	names = SSL_load_client_CA_file(cfg->tls_ca);
	if (!names)
		return ctx_fail(ctx, "ca: no CA certificate in", cfg->tls_ca, why, whylen);
	SSL_CTX_set_client_CA_list(ctx, names);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	return 0;
}

/* A new server context from cfg's [tls], or NULL with the reason in why. */
static SSL_CTX *ctx_build(const struct config *cfg, char *why, size_t whylen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	int min = cfg->tls_min_version == CONFIG_TLS_13 ? TLS1_3_VERSION : TLS1_2_VERSION;

	if (!ctx) {
		ctx_fail(NULL, "cannot create a context", NULL, why, whylen);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, min);
	/* A peer that closes without close_notify (most clients on exit)
	 * is an end of stream, as in plain TCP: frames delimit themselves, so
	 * a truncation shows as an incomplete request anyway. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
				       SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* Partial writes: SSL_write returns after each record, as writev
	 * returns a short count. Moving buffer: a repeated write comes from
	 * the send queue again, not from the same address. Release buffers: an
	 * idle member costs no 34 KB of record buffers. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	/* Read ahead: one read(2) takes a record's header and body, and the
	 * records behind it, instead of two reads per record; what OpenSSL
	 * holds unread is flagged TRANSPORT_PENDING_INPUT, which the loop
	 * serves without waiting for epoll. */
	SSL_CTX_set_read_ahead(ctx, 1);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
		ctx_fail(ctx, "cert", cfg->tls_cert, why, whylen);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1) {
		/* OpenSSL checks the pair here already; say it plainly. */
		int mismatch = ERR_GET_REASON(ERR_peek_error()) == X509_R_KEY_VALUES_MISMATCH;
		ctx_fail(ctx, mismatch ? "key does not match the certificate:" : "key", cfg->tls_key, why,
			 whylen);
		return NULL;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ctx_fail(ctx, "key does not match the certificate:", cfg->tls_key, why, whylen);
		return NULL;
	}
	if (cfg->tls_verify_clients && load_client_cas(ctx, cfg, why, whylen) < 0)
		return NULL;
	return ctx;
}

int tls_check(const struct config *cfg, char *why, size_t whylen)
{
	SSL_CTX *ctx;

	if (cfg->tls_mode == CONFIG_TLS_OFF)
		return 0;
	ctx = ctx_build(cfg, why, whylen);
	SSL_CTX_free(ctx);
	return ctx ? 0 : -1;
}

/* New connections get ctx from now on; the old context is freed when the
 * last connection made from it is (an SSL holds a reference to it). */
static void swap_ctx(SSL_CTX *ctx)
{
	SSL_CTX *old;

	pthread_mutex_lock(&server.lock);
	old = server.ctx;
	server.ctx = ctx;
	pthread_mutex_unlock(&server.lock);
	SSL_CTX_free(old);
}

int tls_init(const struct config *cfg, char *why, size_t whylen)
{
	SSL_CTX *ctx;

	if (cfg->tls_mode == CONFIG_TLS_OFF)
		return 0;
	ctx = ctx_build(cfg, why, whylen);
	if (!ctx)
		return -1;
	swap_ctx(ctx); /* an old one only in the unit tests' repeated starts */
	server.mode = cfg->tls_mode;
	log_info("tls: %s, certificate %s, TLS %s or later%s", cfg->tls_mode == CONFIG_TLS_REQUIRED ?
		 "required on every port" : "optional on every port (plain clients too)", cfg->tls_cert,
		 cfg->tls_min_version == CONFIG_TLS_13 ? "1.3" : "1.2",
		 cfg->tls_verify_clients ? ", client certificates required" : "");
	return 0;
}

int tls_reload(const struct config *next, char *why, size_t whylen)
{
	SSL_CTX *ctx;

	if (server.mode == CONFIG_TLS_OFF)
		return 0;
	ctx = ctx_build(next, why, whylen);
	if (!ctx)
		return -1;
	swap_ctx(ctx);
	return 1;
}

void tls_fini(void)
{
	pthread_mutex_lock(&server.lock);
	SSL_CTX_free(server.ctx);
	server.ctx = NULL;
	pthread_mutex_unlock(&server.lock);
	server.mode = CONFIG_TLS_OFF;
}

int tls_wrap(const struct conn_transport **tr, struct transport_sock *s)
{
	struct tls_sock *ts;

	if (server.mode == CONFIG_TLS_OFF)
		return 0;
	ts = calloc(1, sizeof(*ts));
	if (!ts)
		return -ENOMEM;
	s->state = ts;
	*tr = &transport_tls;
	return 0;
}

/* ---- the first byte ---- */

/* Required mode: a plain client hears why, in its own protocol. Best
 * effort, as conn_refuse(): a fresh socket's buffer takes one frame. */
static void refuse_plain(int fd)
{
	struct msg *m = proto_write_error(PROTO_E_FORBIDDEN, "this server requires TLS: connect with TLS");
	char junk[4096];

	if (m && send(fd, m->data, m->len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug("tls: refusal not sent: %s", strerror(errno));
	msg_unref(&m);
	/* Take the request it sent (what is there now, bounded): closing with
	 * unread bytes would reset the connection, and a reset may make the
	 * client drop the refusal before reading it. */
	for (int i = 0; i < 4 && recv(fd, junk, sizeof(junk), MSG_DONTWAIT) > 0; i++)
		;
}

static int start_tls(struct transport_sock *s, struct tls_sock *ts)
{
	pthread_mutex_lock(&server.lock);
	ts->ssl = SSL_new(server.ctx);
	pthread_mutex_unlock(&server.lock);
	if (!ts->ssl || SSL_set_fd(ts->ssl, s->fd) != 1) {
		ERR_clear_error();
		return -ENOMEM;
	}
	SSL_set_accept_state(ts->ssl);
	ts->kind = TLS_ON;
	s->flags |= TRANSPORT_HANDSHAKING;
	return 0;
}

/* Peek at the first byte and choose: 0, or what a read returns instead
 * (-EAGAIN, 0 at end of stream, -EPROTONOSUPPORT for a refused plain
 * client, -errno). */
static long decide(struct transport_sock *s, struct tls_sock *ts)
{
	unsigned char b;
	ssize_t n;

	do {
		n = recv(s->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	if (n == 0)
		return 0;
	if (b == TLS_HANDSHAKE_RECORD)
		return start_tls(s, ts);
	if (server.mode == CONFIG_TLS_REQUIRED) {
		refuse_plain(s->fd);
		return -EPROTONOSUPPORT;
	}
	ts->kind = TLS_PLAIN;
	return 0;
}

/* ---- reads and writes ---- */

/* What an SSL call's failure means to the loop: -EAGAIN (with the
 * direction it waits for in flags), 0 at a clean end, or -errno. */
static long ssl_result(struct transport_sock *s, struct tls_sock *ts, int rc, int saved_errno,
		       unsigned other)
{
	int err = SSL_get_error(ts->ssl, rc);
	char reason[256];

	switch (err) {
	case SSL_ERROR_WANT_READ:
		if (other == TRANSPORT_WRITE_WANTS_READ)
			s->flags |= other;
		return -EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		if (other == TRANSPORT_READ_WANTS_WRITE)
			s->flags |= other;
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		/* errno 0, or a stale EAGAIN: the peer vanished */
		return saved_errno && saved_errno != EAGAIN ? -saved_errno : -ECONNRESET;
	default:
		ssl_reason(reason, sizeof(reason));
		log_info("tls: fd %d: %s: %s", s->fd, ts->established ? "TLS error" : "handshake failed", reason);
		return -EPROTO;
	}
}

static void note_established(struct transport_sock *s, struct tls_sock *ts)
{
	if (ts->established || !SSL_is_init_finished(ts->ssl))
		return;
	ts->established = 1;
	s->flags &= ~TRANSPORT_HANDSHAKING;
	log_debug("tls: fd %d: %s, %s", s->fd, SSL_get_version(ts->ssl), SSL_get_cipher_name(ts->ssl));
}

/* Read as much as fits: every record SSL already holds, then what the
 * socket has, so little is left pending after a read. */
static long tls_read(struct transport_sock *s, char *buf, size_t len)
{
	struct tls_sock *ts = s->state;
	size_t got = 0;
	long rc = 0;

	s->flags &= ~TRANSPORT_READ_WANTS_WRITE;
	if (ts->kind == TLS_UNDECIDED && (rc = decide(s, ts)) != 0)
		return rc;
	if (ts->kind == TLS_UNDECIDED) /* end of stream before a byte */
		return 0;
	if (ts->kind == TLS_PLAIN)
		return transport_tcp.read(s, buf, len);
	while (got < len) {
		int n = SSL_read(ts->ssl, buf + got, len - got > INT32_MAX ? INT32_MAX : (int)(len - got));
		int saved = errno;

		note_established(s, ts);
		if (n <= 0) {
			rc = ssl_result(s, ts, n, saved, TRANSPORT_READ_WANTS_WRITE);
			break;
		}
		got += (size_t)n;
	}
	if (SSL_pending(ts->ssl) > 0 || SSL_has_pending(ts->ssl))
		s->flags |= TRANSPORT_PENDING_INPUT;
	else
		s->flags &= ~TRANSPORT_PENDING_INPUT;
	/* Bytes first: an error or the end comes again at the next read. */
	return got > 0 ? (long)got : rc;
}

/* Copy the first len bytes of iov into out. */
static void gather(const struct iovec *iov, int n, char *out, size_t len)
{
	for (int i = 0; i < n && len > 0; i++) {
		size_t take = iov[i].iov_len < len ? iov[i].iov_len : len;
		memcpy(out, iov[i].iov_base, take);
		out += take;
		len -= take;
	}
}

static long tls_writev(void *ctx, const struct iovec *iov, int n)
{
	struct transport_sock *s = ctx;
	struct tls_sock *ts = s->state;
	char chunk[TLS_WRITE_MAX];
	size_t total = 0, len;
	int w, saved;

	if (ts->kind == TLS_PLAIN)
		return transport_tcp.writev(ctx, iov, n);
	s->flags &= ~TRANSPORT_WRITE_WANTS_READ;
	if (ts->kind == TLS_UNDECIDED) {
		/* Nothing is said before the client's first byte tells what it
		 * speaks: wait for it. */
		s->flags |= TRANSPORT_WRITE_WANTS_READ;
		return -EAGAIN;
	}
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	/* A repeated write: the same bytes again (the send queue still holds
	 * them in front). */
	len = ts->retry_len ? ts->retry_len : total < sizeof(chunk) ? total : sizeof(chunk);
	if (len > total)
		return -EPROTO; /* the queue lost bytes SSL had taken: cannot resume */
	gather(iov, n, chunk, len);
	w = SSL_write(ts->ssl, chunk, (int)len);
	saved = errno;
	if (w > 0) {
		ts->retry_len = s->committed = 0;
		return w;
	}
	ts->retry_len = s->committed = len;
	return ssl_result(s, ts, w, saved, TRANSPORT_WRITE_WANTS_READ);
}

static void tls_close(struct transport_sock *s)
{
	struct tls_sock *ts = s->state;

	/* close_notify, best effort: the socket is non-blocking and closed
	 * right after, the peer learns the end from the FIN either way. */
	if (ts->ssl && ts->established && SSL_shutdown(ts->ssl) < 0)
		ERR_clear_error();
	SSL_free(ts->ssl);
	free(ts);
	s->state = NULL;
	close(s->fd);
}

const struct conn_transport transport_tls = {
	.name = "tls",
	.read = tls_read,
	.writev = tls_writev,
	.close = tls_close,
};

/* tlsconn.c - roomc's TLS sessions (OpenSSL 3) and the known_servers pins.
 *
 * A session is started by the command thread (handshake, verification,
 * pin), then read by one reader thread (the control reader or a room
 * listener) and written by the command thread. OpenSSL does not allow two
 * threads in one SSL at once, so `lock` serialises every SSL call; it is
 * never held while waiting: the socket is non-blocking and each thread
 * polls it, unlocked, for what its last call wanted. After the handshake
 * a read only reads and a write only writes (roomd refuses renegotiation),
 * so neither takes bytes the other waits for. */
#include "tlsconn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TLSCONN_PIN_LINE 1024

struct tlsconn {
	int fd;                 /* not owned */
	int timeout_ms;         /* a write's wait for room, at most */
	SSL_CTX *ctx;
	SSL *ssl;
	pthread_mutex_t lock;   /* guards ssl: one SSL call at a time */
};

/* ---- waiting and the SSL calls ---- */

/* Wait for events on fd up to timeout_ms (-1: no limit): 0, -ETIMEDOUT or
 * -errno. */
static int wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd pf = { .fd = fd, .events = events };
	int n;

	do {
		n = poll(&pf, 1, timeout_ms);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == 0 ? -ETIMEDOUT : 0;
}

/* What an SSL call's failure asks: POLLIN or POLLOUT to wait for, or a
 * final result (0 at the end of the stream, -errno) in *final. */
static short ssl_wants(SSL *ssl, int rc, int saved_errno, long *final)
{
	switch (SSL_get_error(ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		return POLLIN;
	case SSL_ERROR_WANT_WRITE:
		return POLLOUT;
	case SSL_ERROR_ZERO_RETURN:
		*final = 0;
		return 0;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		*final = saved_errno ? -saved_errno : 0; /* 0: the peer closed */
		return 0;
	default: /* the caller reads the reason, then clears the queue */
		*final = -EPROTO;
		return 0;
	}
}

long tlsconn_read(struct tlsconn *t, void *buf, size_t len)
{
	int cap = len > (size_t)INT32_MAX ? INT32_MAX : (int)len;

	for (;;) {
		long final = -EPROTO;
		short ev;
		int n, saved;

		pthread_mutex_lock(&t->lock);
		n = SSL_read(t->ssl, buf, cap);
		saved = errno;
		ev = n > 0 ? 0 : ssl_wants(t->ssl, n, saved, &final);
		ERR_clear_error();
		pthread_mutex_unlock(&t->lock);
		if (n > 0)
			return n;
		if (!ev)
			return final;
		int rc = wait_fd(t->fd, ev, -1);
		if (rc < 0)
			return rc;
	}
}

int tlsconn_write_all(struct tlsconn *t, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		long final = -EPROTO;
		int cap = len > (size_t)INT32_MAX ? INT32_MAX : (int)len, n, saved, rc;
		short ev;

		pthread_mutex_lock(&t->lock);
		n = SSL_write(t->ssl, p, cap);
		saved = errno;
		ev = n > 0 ? 0 : ssl_wants(t->ssl, n, saved, &final);
		ERR_clear_error();
		pthread_mutex_unlock(&t->lock);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (!ev)
			return final == 0 ? -EPIPE : (int)final;
		rc = wait_fd(t->fd, ev, t->timeout_ms);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* The handshake, by the command thread before any reader runs. */
static int handshake(struct tlsconn *t)
{
	for (;;) {
		long final = -EPROTO;
		int n = SSL_connect(t->ssl), rc;
		short ev = n == 1 ? 0 : ssl_wants(t->ssl, n, errno, &final);

		if (n == 1)
			return 0;
		if (!ev)
			return final == 0 ? -ECONNRESET : (int)final;
		rc = wait_fd(t->fd, ev, t->timeout_ms);
		if (rc < 0)
			return rc;
	}
}

/* ---- trust on first use ---- */

static void pins_path(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");
	int n = -1;

	/* XDG: a relative XDG_CONFIG_HOME is invalid and must be ignored. */
	if (xdg && xdg[0] == '/')
		n = snprintf(buf, len, "%s/roomc/known_servers", xdg);
	else if (home && *home)
		n = snprintf(buf, len, "%s/.config/roomc/known_servers", home);
	if (n < 0 || (size_t)n >= len)
		buf[0] = '\0';
}

/* "AB:CD:..." of the leaf certificate's SHA-256, or -1. */
static int leaf_fingerprint(SSL *ssl, char *out, size_t len)
{
	X509 *leaf = SSL_get1_peer_certificate(ssl);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t o = 0;
	int ok = leaf && X509_digest(leaf, EVP_sha256(), md, &mdlen) == 1;

	X509_free(leaf);
	if (!ok || len < (size_t)mdlen * 3)
		return -1;
	for (unsigned i = 0; i < mdlen; i++)
		o += (size_t)snprintf(out + o, len - o, "%s%02X", i ? ":" : "", md[i]);
	return 0;
}

/* The pin of key ("host:port") in path: 1 with it in fp, 0 when none. */
static int pin_find(const char *path, const char *key, char *fp, size_t fplen)
{
	char line[TLSCONN_PIN_LINE];
	size_t klen = strlen(key);
	FILE *f = fopen(path, "r");
	int found = 0;

	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
			snprintf(fp, fplen, "%.*s", (int)strcspn(line + klen + 1, "\r\n"), line + klen + 1);
			found = 1;
		}
	}
	fclose(f);
	return found;
}

/* mkdir -p of path's directory (0700: what the user trusts is theirs). */
static void make_parent(const char *path)
{
	char dir[TLSCONN_PIN_LINE];

	snprintf(dir, sizeof(dir), "%s", path);
	for (char *s = dir + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		(void)mkdir(dir, 0700); /* EEXIST is fine; fopen says the rest */
		*s = '/';
	}
}

static int pin_add(const char *path, const char *key, const char *fp)
{
	FILE *f;

	make_parent(path);
	f = fopen(path, "a");
	if (!f)
		return -errno;
	fprintf(f, "%s %s\n", key, fp);
	return fclose(f) == 0 ? 0 : -errno;
}

/* A certificate no known CA signed: trust it on first use, then only it. */
static int check_pin(SSL *ssl, const struct tlsconn_opts *o, const char *why_unverified)
{
	char path[TLSCONN_PIN_LINE], key[300], fp[200], pinned[200];
	int br = strchr(o->host, ':') != NULL;

	pins_path(path, sizeof(path));
	snprintf(key, sizeof(key), "%s%s%s:%u", br ? "[" : "", o->host, br ? "]" : "", o->port);
	if (leaf_fingerprint(ssl, fp, sizeof(fp)) < 0 || !path[0]) {
		fprintf(stderr, "roomc: %s: %s, and it cannot be pinned (no fingerprint, or no HOME): refused\n",
			key, why_unverified);
		return -EPERM;
	}
	if (pin_find(path, key, pinned, sizeof(pinned))) {
		if (strcmp(pinned, fp) == 0)
			return 0;
		fprintf(stderr,
			"roomc: WARNING: THE CERTIFICATE OF %s HAS CHANGED: refused.\n"
			"roomc: remembered SHA-256 %s\n"
			"roomc: presented  SHA-256 %s\n"
			"roomc: someone may be intercepting the connection, or the server got a new\n"
			"roomc: certificate. If you know it did, delete the line for %s in %s.\n",
			key, pinned, fp, key, path);
		return -EPERM;
	}
	fprintf(stderr,
		"roomc: %s: %s.\n"
		"roomc: its SHA-256 fingerprint is %s\n"
		"roomc: trusted on first use and remembered in %s: a different certificate\n"
		"roomc: will be refused. Compare the fingerprint with the server's operator.\n",
		key, why_unverified, fp, path);
	if (pin_add(path, key, fp) < 0)
		fprintf(stderr, "roomc: cannot write %s: %s (not remembered)\n", path, strerror(errno));
	return 0;
}

/* Did verification fail only because no known CA signed the certificate
 * (self-signed, or a private CA we were not given)? */
static int unknown_issuer(long v)
{
	return v == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT || v == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
	       v == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
	       v == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE;
}

static int verify(struct tlsconn *t, const struct tlsconn_opts *o)
{
	long v = SSL_get_verify_result(t->ssl);
	char why[300];

	if (o->insecure)
		return 0;
	if (v == X509_V_OK)
		return 0;
	if (unknown_issuer(v)) {
		snprintf(why, sizeof(why), "the certificate is not signed by a CA roomc knows (%s)",
			 X509_verify_cert_error_string(v));
		return check_pin(t->ssl, o, why);
	}
	fprintf(stderr, "roomc: %s: the server's certificate is not valid: %s: refused\n", o->host,
		X509_verify_cert_error_string(v));
	return -EPERM;
}

/* ---- a session ---- */

static SSL_CTX *client_ctx(const struct tlsconn_opts *o)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* Partial writes are handled; a repeated write may come from a moved
	 * buffer (the same bytes). */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* The verdict is read after the handshake (verify()): a self-signed
	 * server gets its chance at a pin. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (o->cafile ? SSL_CTX_load_verify_locations(ctx, o->cafile, NULL) != 1
		      : SSL_CTX_set_default_verify_paths(ctx) != 1) {
		if (o->cafile)
			fprintf(stderr, "roomc: --cafile %s: cannot load it\n", o->cafile);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* The name the certificate must carry: the -h host, as a name or an IP. */
static int set_peer_name(SSL *ssl, const char *host)
{
	unsigned char addr[16];
	int is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;

	if (is_ip)
		return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1 ? 0 : -1;
	if (SSL_set_tlsext_host_name(ssl, host) != 1)
		return -1;
	return SSL_set1_host(ssl, host) == 1 ? 0 : -1;
}

void tlsconn_free(struct tlsconn *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	SSL_CTX_free(t->ctx);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static int setup(struct tlsconn *t, int fd, const struct tlsconn_opts *o)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	t->ctx = client_ctx(o);
	t->ssl = t->ctx ? SSL_new(t->ctx) : NULL;
	if (!t->ssl || SSL_set_fd(t->ssl, fd) != 1 || set_peer_name(t->ssl, o->host) < 0) {
		ERR_clear_error();
		return o->cafile && !t->ctx ? -ENOENT : -ENOMEM;
	}
	return 0;
}

int tlsconn_start(int fd, const struct tlsconn_opts *o, int timeout_s, struct tlsconn **out)
{
	struct tlsconn *t = calloc(1, sizeof(*t));
	int rc;

	if (!t)
		return -ENOMEM;
	t->fd = fd;
	t->timeout_ms = timeout_s * 1000;
	pthread_mutex_init(&t->lock, NULL);
	rc = setup(t, fd, o);
	if (rc == 0 && (rc = handshake(t)) < 0) {
		char reason[256];
		unsigned long e = ERR_peek_error();
		ERR_error_string_n(e, reason, sizeof(reason));
		fprintf(stderr, "roomc: TLS handshake with %s failed: %s\n", o->host,
			e ? reason : strerror(-rc));
		ERR_clear_error();
	}
	if (rc == 0)
		rc = verify(t, o);
	if (rc < 0) {
		tlsconn_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

/* test_tls.c - the TLS transport (server/tls.c) over a socketpair, driven
 * by hand as the loop drives it: a client SSL on the other end, both
 * non-blocking, stepped in turn. Checks the handshake (and its flag), bytes
 * both ways, input left inside SSL (TRANSPORT_PENDING_INPUT), a plain
 * client in optional mode, the refusal of one in required mode, and a
 * reload that fails keeping the old certificate. The certificate is made
 * here with the OpenSSL API, in a temporary directory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "config.h"
#include "tls.h"

static char dir[64];
static struct config cfg;

/* A self-signed P-256 certificate and its key, as PEM files in dir. */
static void make_cert(const char *cert_path, const char *key_path)
{
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	FILE *f;

	assert_non_null(pk);
	assert_non_null(x);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, pk);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)"localhost", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
	f = fopen(cert_path, "w");
	assert_non_null(f);
	PEM_write_X509(f, x);
	fclose(f);
	f = fopen(key_path, "w");
	assert_non_null(f);
	PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(pk);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_tls.XXXXXX");
	assert_non_null(mkdtemp(dir));
	config_defaults(&cfg);
	snprintf(cfg.tls_cert, sizeof(cfg.tls_cert), "%s/cert.pem", dir);
	snprintf(cfg.tls_key, sizeof(cfg.tls_key), "%s/key.pem", dir);
	make_cert(cfg.tls_cert, cfg.tls_key);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* The server end, as the loop has it. */
struct end {
	const struct conn_transport *tr;
	struct transport_sock s;
	int peer; /* the client's fd */
};

static void open_end(struct end *e, int mode)
{
	int sv[2];
	char why[512];

	cfg.tls_mode = mode;
	assert_int_equal(tls_init(&cfg, why, sizeof(why)), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	e->tr = &transport_tcp;
	e->s = (struct transport_sock){ .fd = sv[0] };
	e->peer = sv[1];
	assert_int_equal(tls_wrap(&e->tr, &e->s), 0);
	assert_ptr_equal(e->tr, &transport_tls);
}

static void close_end(struct end *e)
{
	e->tr->close(&e->s);
	close(e->peer);
	tls_fini();
}

static SSL *client_for(int fd)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = SSL_new(ctx);

	SSL_CTX_free(ctx); /* the SSL holds it */
	SSL_set_fd(ssl, fd);
	SSL_set_connect_state(ssl);
	return ssl;
}

/* Step client and server until the handshake is done on both sides. */
static void handshake(struct end *e, SSL *cl)
{
	char buf[16];

	for (int i = 0; i < 50 && !(SSL_is_init_finished(cl) && !(e->s.flags & TRANSPORT_HANDSHAKING)); i++) {
		int rc = SSL_do_handshake(cl);
		if (rc != 1)
			assert_true(SSL_get_error(cl, rc) == SSL_ERROR_WANT_READ);
		long n = e->tr->read(&e->s, buf, sizeof(buf));
		assert_int_equal(n, -EAGAIN); /* no application data yet */
	}
	assert_true(SSL_is_init_finished(cl));
	assert_false(e->s.flags & TRANSPORT_HANDSHAKING);
}

static void test_handshake_and_bytes(void **state)
{
	struct end e;
	SSL *cl;
	char buf[64];
	struct iovec iov[2] = { { "HELO ", 5 }, { "x\n", 2 } };

	(void)state;
	open_end(&e, CONFIG_TLS_OPTIONAL);
	cl = client_for(e.peer);
	assert_int_equal(e.tr->read(&e.s, buf, sizeof(buf)), -EAGAIN); /* nothing yet */
	assert_int_equal(e.tr->writev(&e.s, iov, 2), -EAGAIN);           /* nor said before */
	assert_true(e.s.flags & TRANSPORT_WRITE_WANTS_READ);
	handshake(&e, cl);
	assert_int_equal(SSL_write(cl, "JOIN\n", 5), 5);
	assert_int_equal(e.tr->read(&e.s, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "JOIN\n", 5);
	assert_int_equal(e.tr->writev(&e.s, iov, 2), 7); /* one record for both */
	assert_int_equal(SSL_read(cl, buf, sizeof(buf)), 7);
	assert_memory_equal(buf, "HELO x\n", 7);
	SSL_free(cl);
	close_end(&e);
}

static void test_pending_input(void **state)
{
	struct end e;
	SSL *cl;
	char big[3000], buf[1000];
	long got = 0, n;

	(void)state;
	memset(big, 'a', sizeof(big));
	open_end(&e, CONFIG_TLS_REQUIRED);
	cl = client_for(e.peer);
	handshake(&e, cl);
	assert_int_equal(SSL_write(cl, big, sizeof(big)), (int)sizeof(big));
	/* One record, read a third at a time: the rest stays inside SSL, and
	 * the flag says so (no epoll event would). */
	n = e.tr->read(&e.s, buf, sizeof(buf));
	assert_int_equal(n, (long)sizeof(buf));
	assert_true(e.s.flags & TRANSPORT_PENDING_INPUT);
	got += n;
	while ((n = e.tr->read(&e.s, buf, sizeof(buf))) > 0)
		got += n;
	assert_int_equal(got, (long)sizeof(big));
	assert_int_equal(n, -EAGAIN);
	assert_false(e.s.flags & TRANSPORT_PENDING_INPUT);
	SSL_free(cl);
	close_end(&e);
}

static void test_plain_optional_and_required(void **state)
{
	struct end e;
	char buf[128];
	long n;

	(void)state;
	open_end(&e, CONFIG_TLS_OPTIONAL);
	assert_int_equal(write(e.peer, "HELO x\n", 7), 7);
	assert_int_equal(e.tr->read(&e.s, buf, sizeof(buf)), 7); /* served as plain */
	assert_memory_equal(buf, "HELO x\n", 7);
	close_end(&e);

	open_end(&e, CONFIG_TLS_REQUIRED);
	assert_int_equal(write(e.peer, "HELO x\n", 7), 7);
	assert_int_equal(e.tr->read(&e.s, buf, sizeof(buf)), -EPROTONOSUPPORT);
	n = read(e.peer, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "ERROR_CODE: 10\nERROR_DESCRIPTION: this server requires TLS"));
	close_end(&e);
}

static void test_reload(void **state)
{
	struct config bad = cfg;
	char why[512];

	(void)state;
	cfg.tls_mode = CONFIG_TLS_OPTIONAL;
	assert_int_equal(tls_check(&cfg, why, sizeof(why)), 0);
	assert_int_equal(tls_init(&cfg, why, sizeof(why)), 0);
	assert_int_equal(tls_reload(&cfg, why, sizeof(why)), 1);
	snprintf(bad.tls_key, sizeof(bad.tls_key), "%s/missing.pem", dir);
	assert_int_equal(tls_reload(&bad, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "[tls] key"));
	assert_int_equal(tls_check(&bad, why, sizeof(why)), -1);
	tls_fini();
	/* TLS off: nothing to reload, connections stay plain TCP. */
	assert_int_equal(tls_reload(&cfg, why, sizeof(why)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handshake_and_bytes),
		cmocka_unit_test(test_pending_input),
		cmocka_unit_test(test_plain_optional_and_required),
		cmocka_unit_test(test_reload),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

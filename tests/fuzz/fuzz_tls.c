/* fuzz_tls.c - libFuzzer target for the TLS transport seam (server/tls.c):
 * what a client's first bytes and its records do to the server end, read
 * and written as the loop does (non-blocking, -EAGAIN, the flags).
 *
 * Input: byte 0 is a set of flags (FUZZ_* below); the rest is split at each
 * 0xff byte into segments, each written to the client end of a socketpair
 * and then read by the server end until it has nothing more (every read
 * answered by a write of what it read, as a request gets a reply). A seed
 * corpus holds a real TLS ClientHello (so the fuzzer starts inside the
 * handshake) and plain CS4032 requests.
 *
 * Checked: a read returns at most what was asked; only a TLS connection
 * says it holds input or is in a handshake; a plain connection in optional
 * mode reads exactly the bytes written; once the client end is closed, the
 * server end ends (0 or an error) within a bounded number of reads; the
 * transport frees everything (LeakSanitizer).
 *
 * The certificate is made once, in a temporary directory, with the OpenSSL
 * API; the server context is rebuilt only when the mode flag changes. */
#include "config.h"
#include "log.h"
#include "tls.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_REQUIRED 0x01   /* [tls] mode required (else optional) */
#define FUZZ_SMALL_READS 0x02 /* read 7 bytes at a time: input left inside SSL */
#define FUZZ_SEPARATOR 0xff
#define FUZZ_MAX_READS 4096  /* per segment: a read loop that never ends is a bug */

static struct config cfg;
static int mode_now = -1;

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_tls: %s\n", what);
	abort();
}

static void make_cert(void)
{
	char dir[] = "/tmp/fuzz_tls.XXXXXX";
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	FILE *f;

	if (!mkdtemp(dir) || !pk || !x)
		fail("cannot make a certificate");
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, pk);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)"localhost", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	if (X509_sign(x, pk, EVP_sha256()) <= 0)
		fail("cannot sign the certificate");
	snprintf(cfg.tls_cert, sizeof(cfg.tls_cert), "%s/cert.pem", dir);
	snprintf(cfg.tls_key, sizeof(cfg.tls_key), "%s/key.pem", dir);
	if (!(f = fopen(cfg.tls_cert, "w")) || PEM_write_X509(f, x) != 1 || fclose(f) != 0)
		fail("cannot write the certificate");
	if (!(f = fopen(cfg.tls_key, "w")) || PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) != 1 ||
	    fclose(f) != 0)
		fail("cannot write the key");
	X509_free(x);
	EVP_PKEY_free(pk);
}

static void use_mode(int mode)
{
	char why[512];

	if (mode == mode_now)
		return;
	if (mode_now < 0) {
		log_set_level(LOG_ERROR); /* a failed handshake a run is no news */
		config_defaults(&cfg);
		make_cert();
	}
	cfg.tls_mode = mode;
	if (tls_init(&cfg, why, sizeof(why)) < 0)
		fail(why);
	mode_now = mode;
}

/* Read the server end dry, answering what it reads. Returns the last
 * read's result (-EAGAIN: open and waiting). */
static long serve(const struct conn_transport *tr, struct transport_sock *s, size_t chunk,
		  size_t *got)
{
	char buf[4096];
	long n = -EAGAIN;

	for (int i = 0; i < FUZZ_MAX_READS; i++) {
		n = tr->read(s, buf, chunk);
		if (n > (long)chunk)
			fail("read more than asked");
		if (n <= 0)
			return n;
		*got += (size_t)n;
		struct iovec iov = { buf, (size_t)n };
		long w = tr->writev(s, &iov, 1);
		if (w > n)
			fail("wrote more than given");
	}
	fail("reads never ran dry");
	return n;
}

/* What the client end has been sent: read and dropped. */
static void drain(int fd)
{
	char buf[4096];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct conn_transport *tr = &transport_tcp;
	struct transport_sock s;
	size_t chunk, got = 0, sent = 0;
	int sv[2], first = -1, plain;
	long n = -EAGAIN;

	if (size < 1)
		return 0;
	use_mode(data[0] & FUZZ_REQUIRED ? CONFIG_TLS_REQUIRED : CONFIG_TLS_OPTIONAL);
	chunk = data[0] & FUZZ_SMALL_READS ? 7 : 4096;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
		fail("socketpair");
	s = (struct transport_sock){ .fd = sv[0] };
	if (tls_wrap(&tr, &s) < 0)
		fail("tls_wrap");
	for (size_t i = 1; i < size && (n > 0 || n == -EAGAIN);) {
		size_t end = i;
		while (end < size && data[end] != FUZZ_SEPARATOR)
			end++;
		ssize_t w = end > i ? send(sv[1], data + i, end - i, MSG_DONTWAIT | MSG_NOSIGNAL) : 0;

		if (w > 0 && first < 0)
			first = data[i];
		sent += w > 0 ? (size_t)w : 0;
		n = serve(tr, &s, chunk, &got);
		if (first >= 0 && first != 0x16 && !(data[0] & FUZZ_REQUIRED) &&
		    (s.flags & (TRANSPORT_PENDING_INPUT | TRANSPORT_HANDSHAKING)))
			fail("a plain connection with TLS flags");
		drain(sv[1]);
		i = end + 1;
	}
	/* A plain connection (first byte not 0x16, optional mode) reads what
	 * was written, no more, no less. */
	plain = first >= 0 && first != 0x16 && !(data[0] & FUZZ_REQUIRED);
	if (plain && (n > 0 || n == -EAGAIN) && got != sent)
		fail("a plain connection lost or invented bytes");
	close(sv[1]);
	for (int i = 0; i < 8 && (n > 0 || n == -EAGAIN); i++)
		n = serve(tr, &s, chunk, &got);
	if (n > 0 || n == -EAGAIN)
		fail("the server end did not see its client go");
	tr->close(&s);
	return 0;
}

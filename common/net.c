/* net.c - socket helpers for both programs: listen, accept, connect, and the
 * option setting they share. The EINTR loops live here. No logging, no
 * policy: callers decide what a failure means. */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NET_PICK_TRIES 16 /* port 0 over several addresses: picks tried */

static int addr_to_string(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
	const struct in6_addr *a6 = &((const struct sockaddr_in6 *)ss)->sin6_addr;
	int family = ss->ss_family;
	const void *src = family == AF_INET6 ? (const void *)a6
		: (const void *)&((const struct sockaddr_in *)ss)->sin_addr;

	/* An IPv4 client on a dual-stack socket (::ffff:a.b.c.d) is plain
	 * IPv4: one client, one spelling, for the per-address limits, the
	 * capability checks and the logs; and SERVER_IP in its own family. */
	if (family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(a6)) {
		family = AF_INET;
		src = &a6->s6_addr[12];
	}
	if (!inet_ntop(family, src, out, (socklen_t)outlen))
		return -errno;
	return 0;
}

int net_set_nonblock(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

int net_set_nodelay(int fd)
{
	int one = 1;

	/* Chat lines are small: Nagle would hold them back for up to 40 ms. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		return -errno;
	return 0;
}

/* v6only: 1 or 0 sets IPV6_V6ONLY on an IPv6 socket; -1 leaves the
 * system's default (net.ipv6.bindv6only). */
static int listen_one(const char *host, unsigned port, int backlog, int v6only)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	int fd, one = 1, err;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		sslen = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		sslen = sizeof(*sin6);
	} else {
		return -EINVAL;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A restarted daemon must get its ports back despite TIME_WAIT. */
	if ((ss.ss_family == AF_INET6 && v6only >= 0 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) < 0) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&ss, sslen) < 0 || listen(fd, backlog) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int net_listen(const char *host, unsigned port, int backlog)
{
	return listen_one(host, port, backlog, -1);
}

void net_listeners_close(struct net_listeners *l)
{
	for (size_t i = 0; i < l->n; i++)
		close(l->fd[i]);
	l->n = 0;
}

/* One try at listening on port (0: the first host picks) on all hosts. */
static int listen_all_once(struct net_listeners *l, const char *const *hosts, size_t nhosts,
			   unsigned port, int backlog, int v6only, size_t *failed)
{
	l->n = 0;
	for (size_t i = 0; i < nhosts; i++) {
		int fd = listen_one(hosts[i], port, backlog, v6only);
		if (fd < 0) {
			*failed = i;
			net_listeners_close(l);
			return fd;
		}
		l->fd[l->n++] = fd;
		if (port == 0) { /* the first host's pick, for all the others */
			int picked = net_local_port(fd);
			if (picked < 0) {
				*failed = i;
				net_listeners_close(l);
				return picked;
			}
			port = (unsigned)picked;
		}
	}
	return 0;
}

int net_listen_all(struct net_listeners *l, const char *const *hosts, size_t nhosts, unsigned port,
		   int backlog, size_t *failed)
{
	unsigned char a[4];
	int v6only = 0, rc;

	*failed = 0;
	l->n = 0;
	if (nhosts == 0 || nhosts > NET_LISTEN_MAX)
		return -EINVAL;
	for (size_t i = 0; i < nhosts; i++)
		if (inet_pton(AF_INET, hosts[i], a) == 1)
			v6only = 1;
	/* A port picked on the first address may be taken on another: pick
	 * again (each pick is a port free on the first). */
	for (int tries = port == 0 && nhosts > 1 ? NET_PICK_TRIES : 1;; ) {
		rc = listen_all_once(l, hosts, nhosts, port, backlog, v6only, failed);
		if (rc != -EADDRINUSE || *failed == 0 || --tries == 0)
			return rc;
	}
}

void net_format_endpoint(const char *ip, unsigned port, char *out, size_t outlen)
{
	int v6 = strchr(ip, ':') != NULL;

	snprintf(out, outlen, "%s%s%s:%u", v6 ? "[" : "", ip, v6 ? "]" : "", port);
}

int net_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int net_local_ip(int fd, char *out, size_t outlen)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	return addr_to_string(&ss, out, outlen);
}

int net_accept(int lfd, char *peer, size_t peerlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	do {
		len = sizeof(ss);
		fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
	} while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	if (addr_to_string(&ss, peer, peerlen) < 0)
		snprintf(peer, peerlen, "?");
	/* Failure only costs latency; the connection is still good. */
	(void)net_set_nodelay(fd);
	return fd;
}

/* A blocking connect interrupted by a signal goes on in the background
 * (calling connect again would fail with EALREADY): wait for its end.
 * 0, or -1 with errno set. */
static int finish_connect(int fd)
{
	struct pollfd pf = { .fd = fd, .events = POLLOUT };
	socklen_t len = sizeof(int);
	int n, soerr = 0;

	do {
		n = poll(&pf, 1, -1);
	} while (n < 0 && errno == EINTR);
	if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		return -1;
	errno = soerr;
	return soerr ? -1 : 0;
}

int net_connect(const char *host, unsigned port)
{
	struct addrinfo hints, *res, *ai;
	char service[16];
	int fd = -ECONNREFUSED, rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(service, sizeof(service), "%u", port);
	rc = getaddrinfo(host, service, &hints, &res);
	if (rc != 0)
		return rc == EAI_SYSTEM ? -errno : -ENOENT;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			fd = -errno;
			continue;
		}
		rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
		if (rc < 0 && errno == EINTR)
			rc = finish_connect(fd);
		if (rc == 0)
			break;
		rc = -errno;
		close(fd);
		fd = rc;
	}
	freeaddrinfo(res);
	if (fd >= 0)
		(void)net_set_nodelay(fd);
	return fd;
}

int net_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int net_is_loopback(const char *ip)
{
	return strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0;
}

int net_parse_port(const char *s, unsigned *port)
{
	char *end;
	long v;

	if (*s < '0' || *s > '9')
		return -1; /* strtol would take blanks and a sign */
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 1 || v > 65535)
		return -1;
	*port = (unsigned)v;
	return 0;
}

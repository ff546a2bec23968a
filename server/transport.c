/* transport.c - the plain-TCP transport: read(2), sendmsg(2) with
 * MSG_NOSIGNAL, close(2) on the conn's descriptor. Stateless; called on
 * the conn's owner thread only. */
#include "transport.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static long tcp_read(struct transport_sock *s, char *buf, size_t len)
{
	ssize_t n;

	do {
		n = read(s->fd, buf, len);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return (long)n;
}

/* sendmsg for MSG_NOSIGNAL: a vanished peer is EPIPE, not a signal that
 * kills the daemon. */
static long tcp_writev(void *ctx, const struct iovec *iov, int n)
{
	const struct transport_sock *s = ctx;
	struct msghdr mh = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n };
	ssize_t w;

	do {
		w = sendmsg(s->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (w < 0 && errno == EINTR);
	if (w < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return (long)w;
}

static void tcp_close(struct transport_sock *s)
{
	close(s->fd);
}

const struct conn_transport transport_tcp = {
	.name = "tcp",
	.read = tcp_read,
	.writev = tcp_writev,
	.close = tcp_close,
};

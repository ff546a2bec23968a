/* net.h - socket helpers shared by roomd and roomc.
 *
 * Return a descriptor or 0 on success, a negative errno on failure; the
 * EINTR loops live here and nowhere else. No policy, no logging. */
#ifndef ROOMD_NET_H
#define ROOMD_NET_H

#include <stddef.h>
#include <sys/socket.h>

#define NET_ADDRSTRLEN 64 /* "[ipv6]:port" fits */

/* A non-blocking, close-on-exec listening TCP socket on host:port (host is a
 * numeric address; port 0 picks a free one). Returns the fd or -errno. */
int net_listen(const char *host, unsigned port, int backlog);

/* The port a socket is bound to, or -errno. */
int net_local_port(int fd);

/* The numeric local address of a connected socket into out, or -errno. */
int net_local_ip(int fd, char *out, size_t outlen);

/* Accept one connection, non-blocking and close-on-exec, TCP_NODELAY set;
 * its numeric peer address in peer ("ip" only). Returns fd or -errno
 * (-EAGAIN when none is pending). */
int net_accept(int lfd, char *peer, size_t peerlen);

/* A blocking, close-on-exec TCP connection to host:port (name or numeric),
 * TCP_NODELAY set. Returns fd or -errno (-ENOENT when the name does not
 * resolve). */
int net_connect(const char *host, unsigned port);

int net_set_nonblock(int fd);
int net_set_nodelay(int fd);

/* Write all of buf to a blocking fd (the client's control socket): 0 or
 * -errno. */
int net_write_all(int fd, const void *buf, size_t len);

/* Nonzero when the numeric address is a loopback address. */
int net_is_loopback(const char *ip);

#endif

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

/* Listening sockets on one port over several addresses (the [server] bind
 * list): a control port or a room port is the same number on each. */
#define NET_LISTEN_MAX 8
struct net_listeners {
	size_t n;
	int fd[NET_LISTEN_MAX];
};

/* Listen on port on every one of hosts (numeric, 1..NET_LISTEN_MAX), as
 * net_listen does. Port 0 picks a port free on all of them: the first
 * host's pick, taken on the others too (a few tries when it is taken
 * there). An IPv6 socket is IPV6_V6ONLY when hosts holds an IPv4 address
 * too (so "::" and "0.0.0.0" do not collide), else dual stack ("::" alone
 * serves both families). Returns 0, or -errno with *failed the index of
 * the host that failed and nothing left open. */
int net_listen_all(struct net_listeners *l, const char *const *hosts, size_t nhosts, unsigned port,
		   int backlog, size_t *failed);

/* Close every socket of l (n = 0 after). */
void net_listeners_close(struct net_listeners *l);

/* A TCP port given by a person (1-65535, decimal, nothing else): 0 with
 * *port set, or -1. */
int net_parse_port(const char *s, unsigned *port);

/* Format ip and port as "ip:port", or "[ip]:port" for IPv6. */
void net_format_endpoint(const char *ip, unsigned port, char *out, size_t outlen);

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

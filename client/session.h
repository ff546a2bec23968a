/* session.h - one roomc session: the command loop and what it commands.
 *
 * Runs on the main thread (the command thread). It reads commands, sends the
 * requests and waits for each reply before reading the next command, so a
 * piped script runs deterministically. It sleeps only in poll(2), on stdin,
 * the reader threads' notifier and a signalfd for SIGINT/SIGTERM/SIGHUP. */
#ifndef ROOMC_SESSION_H
#define ROOMC_SESSION_H

#include <stddef.h>

#include "tlsconn.h"

struct session;

struct session_params {
	const char *host;   /* the -h host; also the fallback for room ports */
	unsigned port;      /* the control port */
	const char *name;   /* our CLIENT_NAME, already validated */
	char *const *autojoin; /* rooms to join at the start (config file) */
	size_t nautojoin;
	int no_reconnect;   /* exit when the connection drops (--no-reconnect;
			     * the default when stdin is not a terminal) */
	struct tlsconn_opts tls; /* --tls, --cafile, --insecure: the control
				  * connection and every room connection */
};

/* Take over the connected control socket fd and start its reader. Blocks
 * SIGINT, SIGTERM and SIGHUP in the calling thread, which must be the only
 * thread so far (threads inherit the mask), and ignores SIGPIPE. The strings
 * in p must outlive the session. 0 or -errno; the fd is closed on error. */
int session_create(const struct session_params *p, int fd, struct session **out);

/* Run commands from stdin until `disconnect`, end of input or a signal, then
 * disconnect cleanly. When the control connection drops, reconnect with
 * back-off (backoff.h), rejoin every room and print what was missed
 * (catchup.h), unless no_reconnect. Returns the exit status: 0, or 1 when
 * the connection to the daemon failed and no_reconnect is set. */
int session_run(struct session *s);

/* Free the session: every thread it started is joined. */
void session_destroy(struct session *s);

#endif

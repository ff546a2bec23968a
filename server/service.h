/* service.h - roomd and what runs it: systemd's notify protocol (READY,
 * RELOADING, STOPPING, WATCHDOG) and the SIGHUP reload of the config file.
 *
 * Main thread only, which is the acceptor thread: service_ready() before
 * the loop, the rest through the acceptor's hooks. Without NOTIFY_SOCKET
 * in the environment nothing is sent and roomd runs exactly as before. */
#ifndef ROOMD_SERVICE_H
#define ROOMD_SERVICE_H

#include <stdint.h>

struct acceptor;
struct config;

/* Kept on main()'s stack for the daemon's lifetime; fields are service.c's. */
struct service {
	const char *config_path;       /* what a reload reads */
	const struct config *running;  /* the config roomd runs with: a shared snapshot
					* whose reference this holds (a reload swaps it) */
	struct acceptor *acc;          /* what a reload reconfigures (service_set_hooks) */
	int reload_pending;            /* SIGHUP seen: reload at the end of the pass */
	long port_override;            /* -p, or -1 */
	int level_override;            /* -v, or -1 */
	int notify;                    /* NOTIFY_SOCKET is set */
	int notify_failed;             /* a failed sd_notify was logged */
	uint64_t ping_usec;            /* watchdog ping interval; 0: no watchdog */
	uint64_t next_ping_usec;       /* CLOCK_MONOTONIC */
};

/* Read NOTIFY_SOCKET and WATCHDOG_USEC (the ping interval is half the
 * watchdog timeout, so one late pass does not get roomd killed) and keep
 * what a reload needs. svc takes over the caller's reference to running
 * (config_create); release svc->running when done with svc. */
void service_init(struct service *svc, const char *config_path, const struct config *running,
		  long port_override, int level_override);

/* Listening, configured and stored rooms up: READY=1. */
void service_ready(struct service *svc);

/* Install the reload (SIGHUP), tick (watchdog) and stopping hooks. */
void service_set_hooks(struct service *svc, struct acceptor *acc);

/* SIGHUP (at the end of the acceptor pass it arrived in): RELOADING=1;
 * read and check the whole config file into a new snapshot; on failure
 * log every error with its line and change nothing; otherwise log each
 * change on a line, keep the running value of each key that needs a
 * restart (said on its line), apply the rest (acceptor_reconfigure) and
 * release the old snapshot; READY=1. Acceptor thread. */
void service_reload(struct service *svc);

#endif

/* service.c - roomd and what runs it: sd_notify READY/RELOADING/STOPPING
 * and WATCHDOG pings (only when NOTIFY_SOCKET is set), and the SIGHUP
 * reload of the config file.
 *
 * Main (= acceptor) thread only. It owns the reference to the running
 * config snapshot. A reload reads and checks the whole file into a new
 * snapshot (any error: every one logged with its line, nothing changed),
 * logs the diff a line per change, puts the running value back into each
 * key that needs a restart, and publishes the rest at the end of an
 * acceptor loop pass (acceptor_reconfigure: that thread's readers and the
 * shared tables at once, the room threads through their mailboxes); the
 * old snapshot is freed when its last holder, a room thread, lets go. */
#include "service.h"

#include "acceptor.h"
#include "config.h"
#include "log.h"
#include "tls.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

static uint64_t mono_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Tell systemd state (newline-separated assignments). A failure is logged
 * once: the manager is gone or the socket is wrong, and repeating that on
 * every watchdog ping would fill the log. */
static void notify(struct service *svc, const char *state)
{
	int rc;

	if (!svc->notify)
		return;
	rc = sd_notify(0, state);
	if (rc < 0 && !svc->notify_failed) {
		log_warn("sd_notify(%.*s): %s: systemd will not hear from roomd",
			 (int)strcspn(state, "\n"), state, strerror(-rc));
		svc->notify_failed = 1;
	}
}

void service_init(struct service *svc, const char *config_path, const struct config *running,
		  long port_override, int level_override)
{
	uint64_t usec = 0;
	int rc;

	*svc = (struct service){ .config_path = config_path, .running = running,
				 .port_override = port_override, .level_override = level_override };
	svc->notify = getenv("NOTIFY_SOCKET") != NULL;
	if (!svc->notify)
		return;
	/* 0: keep WATCHDOG_USEC/PID; roomd starts no child they could mislead. */
	rc = sd_watchdog_enabled(0, &usec);
	if (rc < 0)
		log_warn("systemd: WATCHDOG_USEC: %s: no watchdog pings", strerror(-rc));
	else if (rc > 0 && usec >= 2) {
		svc->ping_usec = usec / 2;
		log_info("systemd: watchdog %" PRIu64 " ms, pinging every %" PRIu64 " ms", usec / 1000,
			 svc->ping_usec / 1000);
	}
}

void service_ready(struct service *svc)
{
	notify(svc, "READY=1\nSTATUS=serving");
	svc->next_ping_usec = 0; /* the first tick pings */
}

/* The hook after every acceptor pass: ping when due. Returns the ms until
 * the next ping (the acceptor waits no longer), or a large value. */
static int tick(void *arg)
{
	struct service *svc = arg;
	uint64_t now;

	if (!svc->ping_usec)
		return 1 << 30;
	now = mono_usec();
	if (now >= svc->next_ping_usec) {
		notify(svc, "WATCHDOG=1");
		svc->next_ping_usec = now + svc->ping_usec;
	}
	return (int)((svc->next_ping_usec - now + 999) / 1000);
}

static void stopping(void *arg)
{
	notify(arg, "STOPPING=1\nSTATUS=stopping");
}

/* SIGHUP: reload at the end of this loop pass (tick), where no handler of
 * the acceptor is half way through a request with the old config. */
static void reload_hook(void *arg)
{
	struct service *svc = arg;

	svc->reload_pending = 1;
}

static int tick_and_reload(void *arg)
{
	struct service *svc = arg;

	if (svc->reload_pending) {
		svc->reload_pending = 0;
		service_reload(svc);
	}
	return tick(arg);
}

void service_set_hooks(struct service *svc, struct acceptor *acc)
{
	const struct acceptor_hooks h = { reload_hook, tick_and_reload, stopping, svc };

	svc->acc = acc;
	acceptor_set_hooks(acc, &h);
}

/* Keys that cannot change while roomd runs: what listens where, what the
 * database is, what was sized at start. A reload reports them and keeps
 * their running values ("room" is every [room:NAME] section). */
static const struct { const char *section, *key, *why; } restart_keys[] = {
	{ "server", "bind", "the listening sockets are opened at start" },
	{ "server", "port", "the control port is opened at start" },
	{ "server", "room_port_min", "room ports are bound when a room opens" },
	{ "server", "room_port_max", "room ports are bound when a room opens" },
	{ "server", "database", "the database is opened at start" },
	{ "server", "name_scope", "the names held now were checked under the old scope" },
	{ "limits", "room_unattached_max", "each room's pending list is sized at its start" },
	{ "limits", "history_max_age", "the store's writer reads it at start" },
	{ "metrics", "listen", "the metrics socket is opened at start" },
	{ "tls", "mode", "every port's TLS mode is set at start" },
	{ "cluster", "redis", "the cluster's Redis connections are opened at start" },
	{ "cluster", "node_id", "other nodes know this node by it" },
	{ "cluster", "password", "the cluster's Redis connections are opened at start" },
	{ "cluster", "tls", "the cluster's Redis connections are opened at start" },
	{ "room", "port", "the room's port is bound when it opens" },
	{ "room", "ref", "members and clients hold the room's ref" },
};

/* The reason key of section needs a restart, or NULL when it is applied. */
static const char *needs_restart(const char *section, const char *key)
{
	int room = strncmp(section, "room:", 5) == 0;

	for (size_t i = 0; i < sizeof restart_keys / sizeof restart_keys[0]; i++)
		if (strcmp(restart_keys[i].key, key) == 0 &&
		    strcmp(restart_keys[i].section, room ? "room" : section) == 0)
			return restart_keys[i].why;
	return NULL;
}

/* One reload's view while it walks the diff. */
struct reload {
	struct service *svc;
	const struct config *running;
	struct config *next;   /* restart-only keys put back as they are found */
	int applied, restart;  /* changes of each kind */
};

/* One changed key (or a room added or removed): a log line, and the
 * running value back into next when it needs a restart. */
static void note_change(const char *section, const char *key, void *arg)
{
	struct reload *rl = arg;
	char was[600], now[600];
	const char *why;

	if (!key) {
		rl->applied++;
		log_info("reload: [%s] %s", section,
			 config_value_text(rl->next, section, "name", now, sizeof now) == 0 ? "added" : "removed");
		return;
	}
	config_value_text(rl->running, section, key, was, sizeof was);
	config_value_text(rl->next, section, key, now, sizeof now);
	if ((why = needs_restart(section, key))) {
		rl->restart++;
		log_warn("reload: [%s] %s %s (was %s) needs a restart (%s): it stays %s", section, key, now,
			 was, why, was);
		config_keep_value(rl->next, rl->running, section, key);
		return;
	}
	rl->applied++;
	log_info("reload: [%s] applied %s %s (was %s)", section, key, now, was);
}

/* The log settings, atomics in log.c: switched now, on this thread. */
static void apply_log(const struct config *running, const struct config *next)
{
	if (next->log_level != running->log_level)
		log_set_level((enum log_level)next->log_level);
	if (next->log_target != running->log_target) {
		/* Said where it is still read, before the lines move away. */
		log_info("reload: log lines go to %s from now on",
			 log_target_name((enum log_target)next->log_target));
		log_set_target((enum log_target)next->log_target);
	}
}

/* The [tls] certificate and key, read again on every reload (a renewal
 * keeps its file names): new connections get them, open ones keep theirs.
 * A bad file is refused and the old material stays served, so next keeps
 * the running [tls] values too. */
static void reload_tls(const struct config *running, struct config *next)
{
	static const char *const keys[] = { "cert", "key", "ca", "min_version", "verify_clients" };
	char why[512];
	int rc = tls_reload(next, why, sizeof(why));

	if (rc > 0) {
		log_info("reload: TLS certificate %s and key %s loaded for new connections",
			 next->tls_cert, next->tls_key);
	} else if (rc < 0) {
		log_error("reload: TLS certificate not reloaded, the old one is still served: %s", why);
		for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
			config_keep_value(next, running, "tls", keys[i]);
	}
}

/* Log each of the loader's messages (a line each, "PATH:LINE: ...") on a
 * line of its own. */
static void log_errors(const char *err)
{
	while (*err) {
		size_t n = strcspn(err, "\n");

		log_error("reload: %.*s", (int)n, err);
		err += n + (err[n] == '\n');
	}
}

void service_reload(struct service *svc)
{
	char status[80], err[4096];
	struct reload rl = { svc, svc->running, NULL, 0, 0 };

	snprintf(status, sizeof(status), "RELOADING=1\nMONOTONIC_USEC=%" PRIu64, mono_usec());
	notify(svc, status);
	if (!(rl.next = config_create())) {
		log_error("reload: %s: out of memory: nothing changed", svc->config_path);
		notify(svc, "READY=1\nSTATUS=serving; the last reload failed (see the log)");
		return;
	}
	if (config_load(rl.next, svc->config_path, err, sizeof(err)) < 0) {
		log_errors(err);
		log_error("reload: %s is invalid, nothing changed: roomd runs on the config it had",
			  svc->config_path);
		config_release(rl.next);
		notify(svc, "READY=1\nSTATUS=serving; the last reload failed (see the log)");
		return;
	}
	/* The command line overrides the file, now as at start-up. */
	if (svc->port_override >= 0)
		rl.next->port = svc->running->port;
	if (svc->level_override >= 0 && rl.next->log_level != svc->running->log_level) {
		log_info("reload: [server] log_level in the file is not applied: -v on the command line wins");
		rl.next->log_level = svc->running->log_level;
	}
	/* The log first, so that the lines below go where they now belong. */
	apply_log(svc->running, rl.next);
	config_diff(svc->running, rl.next, note_change, &rl);
	reload_tls(svc->running, rl.next);
	/* Publish: the acceptor's readers now, the rooms at their next pass;
	 * the old snapshot goes with its last holder. */
	if (svc->acc)
		acceptor_reconfigure(svc->acc, rl.next);
	config_release(svc->running);
	svc->running = rl.next;
	if (rl.applied + rl.restart == 0)
		log_info("reload: %s: no change", svc->config_path);
	else
		log_info("reload: %s: %d change%s applied, %d need%s a restart", svc->config_path, rl.applied,
			 rl.applied == 1 ? "" : "s", rl.restart, rl.restart == 1 ? "s" : "");
	notify(svc, "READY=1\nSTATUS=serving");
}

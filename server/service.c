/* service.c - roomd and what runs it: sd_notify READY/RELOADING/STOPPING
 * and WATCHDOG pings (only when NOTIFY_SOCKET is set), and the SIGHUP
 * reload of the config file.
 *
 * Main (= acceptor) thread only. The running config is read-only shared
 * state: a reload loads the file into a new struct, applies what can change
 * live (log_level and log_target, atomics in log.c; the TLS certificate and
 * key, tls.c's context), names the keys that
 * need a restart in one log line, and frees it. The full live reload is
 * issue 13. */
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

static void reload_hook(void *arg)
{
	service_reload(arg);
}

void service_set_hooks(struct service *svc, struct acceptor *acc)
{
	const struct acceptor_hooks h = { reload_hook, tick, stopping, svc };

	acceptor_set_hooks(acc, &h);
}

/* The keys of a reload that differ from the running config and need a
 * restart, as "[limits] max_clients, [room:dev] port, ...". */
struct restart_list {
	char text[600];
	size_t used;
	int n;
	int tls_on;      /* TLS runs: its files and settings but mode are reloaded */
};

static void note_restart(const char *section, const char *key, void *arg)
{
	struct restart_list *rl = arg;
	size_t room = sizeof(rl->text) - rl->used;
	int w;

	/* Applied live, reported on their own. */
	if (key && strcmp(section, "server") == 0 && (strcmp(key, "log_level") == 0 || strcmp(key, "log_target") == 0))
		return;
	if (key && strcmp(section, "tls") == 0 && strcmp(key, "mode") != 0 && rl->tls_on)
		return;
	rl->n++;
	if (room < 2)
		return;
	w = snprintf(rl->text + rl->used, room, "%s[%s]%s%s", rl->n > 1 ? ", " : "", section, key ? " " : "",
		     key ? key : " (added or removed)");
	rl->used += w < 0 ? 0 : (size_t)w < room ? (size_t)w : room - 1;
}

/* Apply the new file's log_level and log_target; describe what changed in
 * applied (empty if nothing). */
static void apply_live(struct service *svc, const struct config *next, char *applied, size_t len)
{
	enum log_level level = (enum log_level)next->log_level, old_level = log_get_level();
	enum log_target target = (enum log_target)next->log_target, old_target = log_get_target();
	int n = 0;

	applied[0] = '\0';
	if (svc->level_override >= 0) {
		level = old_level; /* -v on the command line wins over the file */
	} else if (level != old_level) {
		log_set_level(level);
		n = snprintf(applied, len, "log_level %s (was %s)", log_level_name(level), log_level_name(old_level));
	}
	if (target != old_target) {
		/* Said where it is still read, before the lines move away. */
		log_info("reload: log lines go to %s from now on", log_target_name(target));
		log_set_target(target);
		snprintf(applied + n, len - (size_t)n, "%slog_target %s (was %s)", n ? ", " : "",
			 log_target_name(target), log_target_name(old_target));
	}
}

/* The [tls] certificate and key (a renewal): new connections get the new
 * ones, open connections keep theirs; a bad file is refused, the old ones
 * stay. */
static void reload_tls(const struct config *next)
{
	char why[512];
	int rc = tls_reload(next, why, sizeof(why));

	if (rc < 0)
		log_error("reload: TLS certificate not reloaded, the old one is still served: %s", why);
	else if (rc > 0)
		log_info("reload: TLS certificate %s and key %s loaded for new connections", next->tls_cert,
			 next->tls_key);
}

/* "a\nb" -> "a | b": a loader message of several lines as one log line. */
static void one_line(const char *in, char *out, size_t len)
{
	size_t o = 0;

	for (; *in && o + 4 < len; in++) {
		if (*in == '\n') {
			memcpy(out + o, " | ", 3);
			o += 3;
		} else {
			out[o++] = *in;
		}
	}
	out[o] = '\0';
}

void service_reload(struct service *svc)
{
	char status[80], applied[160], err[2048], line[1024];
	struct restart_list rl = { .used = 0, .n = 0, .tls_on = svc->running->tls_mode != CONFIG_TLS_OFF };
	struct config next;

	snprintf(status, sizeof(status), "RELOADING=1\nMONOTONIC_USEC=%" PRIu64, mono_usec());
	notify(svc, status);
	config_defaults(&next);
	if (config_load(&next, svc->config_path, err, sizeof(err)) < 0) {
		one_line(err, line, sizeof(line));
		log_error("reload: %s is invalid, nothing changed, roomd runs on: %s", svc->config_path, line);
		notify(svc, "READY=1\nSTATUS=serving; the last reload failed (see the log)");
		return;
	}
	/* The command line overrides the file, now as at start-up. */
	if (svc->port_override >= 0)
		next.port = svc->running->port;
	apply_live(svc, &next, applied, sizeof(applied));
	reload_tls(&next);
	config_diff(svc->running, &next, note_restart, &rl);
	config_fini(&next);
	if (rl.n)
		log_warn("reload: %s: %s%s%s%d changed key%s need%s a restart to take effect: %s%s",
			 svc->config_path, applied[0] ? "applied " : "", applied, applied[0] ? "; " : "", rl.n,
			 rl.n > 1 ? "s" : "",
			 rl.n > 1 ? "" : "s", rl.text, rl.used + 1 >= sizeof(rl.text) ? ", ..." : "");
	else
		log_info("reload: %s: %s%s", svc->config_path, applied[0] ? "applied " : "",
			 applied[0] ? applied : "no change to apply, none needing a restart");
	notify(svc, "READY=1\nSTATUS=serving");
}

/* log.c - leveled log lines: on stderr "2026-11-21T10:00:00Z [warn] ...",
 * on journald's stderr stream "<4>[warn] ..." (journald stamps and reads the
 * priority), or through syslog(3) as "roomd[PID]: [warn] ...", facility
 * LOG_DAEMON. Level and target are atomics any thread may change
 * (start-up, then a SIGHUP reload on the acceptor thread); each line is one
 * write(2) or one syslog() call, so concurrent lines never interleave. */

/* <syslog.h> defines LOG_INFO and LOG_DEBUG as macros, which would rewrite
 * our enum constants of the same names: take the priorities we need first,
 * then drop the two macros before log.h is read. */
#include <syslog.h>

static const int syslog_priority[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

#undef LOG_INFO
#undef LOG_DEBUG

#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The level is relaxed: a line needs a valid level, not an ordering with
 * anything else; a line logged while a reload switches it may go either
 * way. The target is released after openlog() and acquired by log_msg(),
 * so a thread that sees "syslog" also sees syslog opened as roomd/daemon. */
static atomic_int current_level = LOG_INFO;
static atomic_int current_target = LOG_TO_STDERR;
/* Is stderr journald's stream? -1 not looked at yet. Every thread that
 * looks finds the same answer, so a race only repeats the look. */
static atomic_int stderr_journal = -1;
static atomic_int syslog_opened;

static const char *const level_names[] = { "error", "warn", "info", "debug" };
static const char *const target_names[] = { "stderr", "syslog" };

void log_set_level(enum log_level level)
{
	atomic_store_explicit(&current_level, (int)level, memory_order_relaxed);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load_explicit(&current_level, memory_order_relaxed);
}

const char *log_level_name(enum log_level level)
{
	return level <= LOG_DEBUG ? level_names[level] : "?";
}

int log_level_parse(const char *name)
{
	for (int i = 0; i <= LOG_DEBUG; i++)
		if (strcmp(name, level_names[i]) == 0)
			return i;
	return -1;
}

void log_set_target(enum log_target target)
{
	/* openlog once, for good: closing it under another thread's syslog()
	 * call would buy nothing but a reconnection later. */
	if (target == LOG_TO_SYSLOG && !atomic_exchange(&syslog_opened, 1))
		openlog("roomd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	atomic_store_explicit(&current_target, (int)target, memory_order_release);
}

enum log_target log_get_target(void)
{
	return (enum log_target)atomic_load_explicit(&current_target, memory_order_relaxed);
}

const char *log_target_name(enum log_target target)
{
	return target <= LOG_TO_SYSLOG ? target_names[target] : "?";
}

int log_target_parse(const char *name)
{
	for (int i = 0; i <= LOG_TO_SYSLOG; i++)
		if (strcasecmp(name, target_names[i]) == 0)
			return i;
	return -1;
}

/* systemd sets JOURNAL_STREAM=DEV:INODE when stdout/stderr is a journald
 * stream; stderr is that stream if its device and inode match (not merely
 * inherited by a child whose stderr was redirected). */
static int stderr_is_journal(void)
{
	int v = atomic_load_explicit(&stderr_journal, memory_order_relaxed);
	const char *env;
	unsigned long long dev, ino;
	struct stat st;

	if (v >= 0)
		return v;
	env = getenv("JOURNAL_STREAM");
	v = env && sscanf(env, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
	    (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
	atomic_store_explicit(&stderr_journal, v, memory_order_relaxed);
	return v;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[1024];
	struct tm tm;
	time_t now;
	va_list ap;
	int n, target = atomic_load_explicit(&current_target, memory_order_acquire);

	if ((int)level > atomic_load_explicit(&current_level, memory_order_relaxed) || level > LOG_DEBUG)
		return;
	if (target == LOG_TO_SYSLOG) {
		n = 0; /* syslog stamps the line */
	} else if (stderr_is_journal()) {
		n = snprintf(line, sizeof(line), "<%d>", syslog_priority[level]);
	} else {
		now = time(NULL);
		gmtime_r(&now, &tm);
		n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ ", &tm);
	}
	/* The level stays in the text everywhere: a line copied out of the
	 * journal or a syslog file still says what it is. */
	n += snprintf(line + n, sizeof(line) - (size_t)n, "[%s] ", level_names[level]);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2; /* truncated: still one line */
	if (target == LOG_TO_SYSLOG) {
		line[n] = '\0';
		syslog(LOG_DAEMON | syslog_priority[level], "%s", line);
		return;
	}
	line[n++] = '\n';
	/* Nothing useful to do if stderr is gone. */
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

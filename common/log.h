/* log.h - leveled logging to stderr or syslog.
 *
 * One write(2) (or one syslog(3) call) per line, so lines from different
 * threads never interleave. Level and target are atomics: set at start-up
 * and again by a SIGHUP reload on the acceptor thread while other threads
 * log; a line logged during the switch goes by the old or the new setting,
 * never garbled. */
#ifndef ROOMD_LOG_H
#define ROOMD_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Where lines go: stderr (with a time stamp, or with a <N> priority prefix
 * and no stamp when stderr is journald's stream: JOURNAL_STREAM), or
 * syslog(3) as "roomd" with facility LOG_DAEMON. */
enum log_target { LOG_TO_STDERR = 0, LOG_TO_SYSLOG };

/* Any thread; takes effect from the next line. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* "error", "warn", "info", "debug" -> level; -1 when unknown. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);

/* Any thread; takes effect from the next line. Switching to syslog opens
 * the connection to the syslog socket at once (LOG_NDELAY), so a
 * sandboxed daemon finds out now, not on its first warning. */
void log_set_target(enum log_target target);
enum log_target log_get_target(void);
/* "stderr", "syslog" (any case) -> target; -1 when unknown. */
int log_target_parse(const char *name);
const char *log_target_name(enum log_target target);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif

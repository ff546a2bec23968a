/* rcfile.c - reads roomc's config file (rcfile.h for the format).
 *
 * Main thread only, before the session starts. Everything it allocates is
 * bounded by the file's size cap; the caller owns the result. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "net.h"
#include "rcfile.h"

const char *rcfile_default_path(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");
	int n;

	/* XDG: a relative XDG_CONFIG_HOME is invalid and must be ignored. */
	if (xdg && xdg[0] == '/')
		n = snprintf(buf, len, "%s/roomc/config", xdg);
	else if (home && *home)
		n = snprintf(buf, len, "%s/.config/roomc/config", home);
	else
		n = -1;
	if (n < 0 || (size_t)n >= len)
		buf[0] = '\0';
	return buf;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static char *trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		*--end = '\0';
	return s;
}

static int has_control_chars(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return 1;
	return 0;
}

static int parse_bool(const char *s, int *out)
{
	if (!strcmp(s, "yes") || !strcmp(s, "true") || !strcmp(s, "on") || !strcmp(s, "1"))
		*out = 1;
	else if (!strcmp(s, "no") || !strcmp(s, "false") || !strcmp(s, "off") || !strcmp(s, "0"))
		*out = 0;
	else
		return -1;
	return 0;
}

/* Replace *slot with a copy of value (a later line wins, as on a command line). */
static int set_string(char **slot, const char *value)
{
	char *copy = strdup(value);

	if (!copy)
		return -1;
	free(*slot);
	*slot = copy;
	return 0;
}

static int add_room(struct rcfile *rc, const char *room)
{
	char **rooms;

	if (rc->nrooms == RCFILE_MAX_ROOMS)
		return -2;
	rooms = realloc(rc->rooms, (rc->nrooms + 1) * sizeof(*rooms));
	if (!rooms)
		return -1;
	rc->rooms = rooms;
	rooms[rc->nrooms] = strdup(room);
	if (!rooms[rc->nrooms])
		return -1;
	rc->nrooms++;
	return 0;
}

/* One `key = value` line. 0, or -1 with the reason in err. */
static int apply_line(struct rcfile *rc, char *line, char *err, size_t errlen)
{
	char *eq = strchr(line, '=');
	char *key, *value;
	int rv;

	if (!eq)
		return fail(err, errlen, "expected 'key = value'");
	*eq = '\0';
	key = trim(line);
	value = trim(eq + 1);
	if (!*value)
		return fail(err, errlen, "'%s' has no value", key);
	if (has_control_chars(value))
		return fail(err, errlen, "'%s': control characters in the value", key);
	if (!strcmp(key, "host") || !strcmp(key, "name")) {
		if (set_string(!strcmp(key, "host") ? &rc->host : &rc->name, value) < 0)
			return fail(err, errlen, "out of memory");
	} else if (!strcmp(key, "port")) {
		if (net_parse_port(value, &rc->port) < 0)
			return fail(err, errlen, "invalid port '%s' (1-65535)", value);
	} else if (!strcmp(key, "reconnect")) {
		if (parse_bool(value, &rc->reconnect) < 0)
			return fail(err, errlen, "reconnect is yes or no, not '%s'", value);
	} else if (!strcmp(key, "join")) {
		rv = add_room(rc, value);
		if (rv == -2)
			return fail(err, errlen, "more than %d rooms to join", RCFILE_MAX_ROOMS);
		if (rv < 0)
			return fail(err, errlen, "out of memory");
	} else {
		return fail(err, errlen, "unknown key '%s' (host, port, name, join, reconnect)", key);
	}
	return 0;
}

static int read_lines(FILE *f, const char *path, struct rcfile *rc, char *err, size_t errlen)
{
	char buf[RCFILE_MAX_LINE + 2];
	char why[256];
	unsigned lineno = 0;

	while (fgets(buf, sizeof(buf), f)) {
		size_t n = strlen(buf);
		char *line;

		lineno++;
		if (n == sizeof(buf) - 1 && buf[n - 1] != '\n')
			return fail(err, errlen, "%s:%u: line longer than %d bytes", path, lineno,
				    RCFILE_MAX_LINE);
		if (n && buf[n - 1] == '\n')
			buf[n - 1] = '\0';
		line = trim(buf);
		if (!*line || *line == '#')
			continue;
		if (apply_line(rc, line, why, sizeof(why)) < 0)
			return fail(err, errlen, "%s:%u: %s", path, lineno, why);
	}
	if (ferror(f))
		return fail(err, errlen, "%s: %s", path, strerror(errno));
	return 0;
}

int rcfile_load(const char *path, int missing_ok, struct rcfile *rc, char *err, size_t errlen)
{
	struct stat st;
	FILE *f;
	int rv;

	memset(rc, 0, sizeof(*rc));
	rc->reconnect = -1;
	f = fopen(path, "r");
	if (!f) {
		if (errno == ENOENT && missing_ok)
			return 1;
		return fail(err, errlen, "%s: %s", path, strerror(errno));
	}
	if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > RCFILE_MAX_BYTES) {
		fclose(f);
		return fail(err, errlen, "%s: not a regular file of at most %d bytes", path,
			    RCFILE_MAX_BYTES);
	}
	rv = read_lines(f, path, rc, err, errlen);
	fclose(f);
	if (rv < 0)
		rcfile_free(rc);
	return rv;
}

void rcfile_free(struct rcfile *rc)
{
	free(rc->host);
	free(rc->name);
	for (size_t i = 0; i < rc->nrooms; i++)
		free(rc->rooms[i]);
	free(rc->rooms);
	memset(rc, 0, sizeof(*rc));
	rc->reconnect = -1;
}

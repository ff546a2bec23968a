/* rcfile.h - roomc's own config file: defaults for the command line.
 *
 * `$XDG_CONFIG_HOME/roomc/config` (else `~/.config/roomc/config`), lines of
 * `key = value`, blank lines, and comment lines that start with `#` (only
 * whole lines: a room name may contain `#`):
 *
 *     host = chat.example.org
 *     port = 9000
 *     name = alice
 *     # one room a line, joined at the start in this order
 *     join = lobby
 *     join = dev team
 *     # yes or no; unset, it depends on stdin being a terminal (main.c)
 *     reconnect = yes
 *
 * Read once on the main thread before anything starts; the result is owned
 * by the caller. Command-line flags win over the file (main.c). */
#ifndef ROOMC_RCFILE_H
#define ROOMC_RCFILE_H

#include <stddef.h>

#define RCFILE_MAX_BYTES 65536  /* a config file is a few lines, not a log */
#define RCFILE_MAX_LINE 1024
#define RCFILE_MAX_ROOMS 64

struct rcfile {
	char *host;       /* NULL when the file does not say */
	unsigned port;    /* 0 when the file does not say */
	char *name;
	int reconnect;    /* -1 unset, 0 no, 1 yes */
	char **rooms;     /* `join` lines, in order */
	size_t nrooms;
};

/* The default path into buf: "" when neither XDG_CONFIG_HOME nor HOME is set
 * (or the path does not fit). Returns buf. */
const char *rcfile_default_path(char *buf, size_t len);

/* Read path into rc (zeroed first, reconnect -1). 0 on success; 1 when the
 * file does not exist and missing_ok; -1 otherwise, with "path:line: why"
 * (or "path: why") in err. rc holds nothing to free unless 0. */
int rcfile_load(const char *path, int missing_ok, struct rcfile *rc, char *err, size_t errlen);

void rcfile_free(struct rcfile *rc);

#endif

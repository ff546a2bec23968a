/* verbs.h - roomc's commands: what each verb of commands.h does.
 *
 * Command thread only (the session's thread). The verbs' handlers live in
 * verbs.c, dispatched from its table (verb, handler, help line); the syntax
 * of a command line is commands.c's. */
#ifndef ROOMC_VERBS_H
#define ROOMC_VERBS_H

#include <stddef.h>

struct session;

/* Run one command line (len bytes, NUL-terminated; a line holding a NUL is
 * refused): parse it, then run its verb's handler. On a terminal with a
 * current room, a line that is no command is said there. Problems with the
 * command are printed and the session goes on. Returns CMD_CONTINUE or
 * CMD_QUIT (session_int.h), or a fatal -errno: -EPIPE when the control
 * connection is gone, -EINTR for a signal. */
int verbs_execute(struct session *s, const char *line, size_t len);

/* Print the command list (the `help` command, and the start of a session). */
void verbs_help(void);

#endif

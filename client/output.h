/* output.h - everything roomc prints on stdout.
 *
 * The only code that writes to stdout. Every function may be called from any
 * thread: one event is written whole under one lock and flushed at once, so
 * lines from the listener threads never interleave and a pipe reader sees
 * each line as soon as it happens. Text from the network is sanitised: control
 * characters become '?', so a peer cannot drive the terminal. */
#ifndef ROOMC_OUTPUT_H
#define ROOMC_OUTPUT_H

/* "[ROOM] NAME: TEXT". Continuation lines of a multi-line TEXT are indented
 * by two spaces, so they can never pass for a line of their own. */
void output_chat(const char *room, const char *name, const char *text);

/* "joined ROOM (ref REF, port PORT)" */
void output_joined(const char *room, long ref, unsigned port);

/* "left ROOM" */
void output_left(const char *room);

/* "error CODE: DESCRIPTION": an error reply from the server. */
void output_server_error(long code, const char *description);

/* "roomc: ..." - a local problem (bad command, not in a room, lost
 * connection). On stdout too, so a transcript of a session is complete.
 * Truncated at 1 KiB. */
void output_local(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The command list, for the `help` command. */
void output_help(void);

#endif

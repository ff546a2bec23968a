/* term.h - the terminal owner: line editing, history and completion (libedit)
 * when stdin and stdout are a terminal.
 *
 * Used by the command thread only, which feeds it a key at a time from its
 * poll(2) loop, so the loop still wakes for replies, room traffic and
 * signals. While a line is being edited, output.c hands every event to this
 * thread, which erases the line, prints the event and draws the line again. */
#ifndef ROOMC_TERM_H
#define ROOMC_TERM_H

#include <stddef.h>

struct notify;
struct term;

/* Room names offered by tab completion: the i-th, or NULL past the end.
 * Called on the command thread, during term_read(). */
typedef const char *(*term_room_fn)(void *arg, size_t i);

/* Set up editing on stdin/stdout and attach to output.c (the calling thread
 * becomes the terminal's owner; note is poked when other threads queue
 * output). Call before any other thread exists (it sets LC_CTYPE from the
 * environment). Editing starts with term_prompt() or term_read(). rooms/arg
 * feed completion. 0 or -errno (-ENOTTY when libedit cannot drive the
 * terminal). */
int term_create(const char *prompt, term_room_fn rooms, void *arg, struct notify *note,
		struct term **out);

/* The prompt, recomputed whenever it is drawn (a fresh prompt, and each
 * redraw after output above the line): fill buf (cap bytes, NUL-terminated).
 * Command thread. */
typedef void (*term_prompt_fn)(void *arg, char *buf, size_t cap);

/* Alt-1..Alt-9 pressed while editing: n is 1..9. Command thread, during
 * term_read(); the prompt is redrawn afterwards. */
typedef void (*term_key_fn)(void *arg, int n);

/* Install the prompt source and the Alt-digit handler (either may be NULL). */
void term_set_hooks(struct term *t, term_prompt_fn prompt, term_key_fn key, void *arg);

/* Detach from output.c, give the terminal back in its original mode, free. */
void term_destroy(struct term *t);

/* The descriptor to poll for POLLIN (stdin). */
int term_fd(const struct term *t);

/* Process one key (call after poll(2) said term_fd is readable). Returns 1
 * with a complete line in *line (NUL-terminated, no newline, malloc'd: the
 * caller frees it) and editing paused (the prompt is gone; call
 * term_prompt() after the command ran); 0 when the line is not finished;
 * -EPIPE at Ctrl-D on an empty line or end of input; -errno. */
int term_read(struct term *t, char **line);

/* Show a fresh prompt and resume editing. */
void term_prompt(struct term *t);

#endif

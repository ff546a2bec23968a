/* input.h - commands from stdin, a line at a time, without blocking.
 *
 * The command thread polls the descriptor with its other wake-ups, then
 * reads what is there and takes the complete lines. Lines are capped: a
 * longer one is dropped whole and reported once. Owned by the command
 * thread. Used when stdin or stdout is not a terminal; line editing on a
 * terminal is term.c's. */
#ifndef ROOMC_INPUT_H
#define ROOMC_INPUT_H

#include <stddef.h>

struct input;

/* Read lines from fd (not owned), max_line bytes each without the newline.
 * 0 or -ENOMEM. */
int input_create(int fd, size_t max_line, struct input **out);
void input_destroy(struct input *in);

int input_fd(const struct input *in);

/* One read(2) of what is available: 1 when bytes arrived, 0 at end of file,
 * -errno. After end of file, input_next() still returns the buffered lines,
 * the last one even without a newline. */
int input_read(struct input *in);

/* Nonzero once input_read() saw the end of file. */
int input_eof(const struct input *in);

/* The next complete line: 1 with *line (NUL-terminated, without its "\n" or
 * "\r\n"; *len its length, which is less than strlen's when the line holds a
 * NUL byte) valid until the next call; 0 when no complete line is buffered;
 * -E2BIG when a line over max_line was dropped. */
int input_next(struct input *in, char **line, size_t *len);

#endif

/* output.h - everything roomc prints on stdout.
 *
 * The only code that writes to stdout (libedit, driven by term.c on the
 * command thread, draws the prompt line through the same FILE). Every
 * function may be called from any thread: one event is formatted whole, then
 * written under one lock and flushed at once, so lines from the listener
 * threads never interleave and a pipe reader sees each line as soon as it
 * happens. Text from the network is sanitised: C0 and C1 control characters,
 * DEL and bytes that are not valid UTF-8 are shown as \xNN, bidi controls
 * (U+202A..U+202E, U+2066..U+2069, U+200E/U+200F, U+061C), U+2028/U+2029
 * and UTF-8 encoded C1 controls as \uNNNN, so a peer cannot drive the
 * terminal or reorder a line.
 *
 * While a terminal is attached (output_attach_terminal), the line being
 * edited belongs to the command thread: events from other threads are queued
 * and the command thread prints them (output_flush) between hiding and
 * redrawing that line, so typed text is never garbled. */
#ifndef ROOMC_OUTPUT_H
#define ROOMC_OUTPUT_H

#include <stddef.h>

/* Decorations, set once at start-up before any other thread exists:
 * timestamps ("HH:MM " before chat and private lines) when stdout is a
 * terminal, and a stable ANSI colour per sender name when colour is also
 * wanted (not when NO_COLOR is set). Off by default: plain, deterministic
 * lines with no escape codes. */
void output_init(int timestamps, int colour);

/* The terminal editor's hooks, all called on the thread that attached them
 * (the command thread), with the output lock held:
 * hide: erase the line being edited (prompt and text), cursor at column 0;
 * show: draw it again; wake: (any thread, lock held) make the command thread
 * call output_flush() soon. */
struct output_terminal {
	void (*hide)(void *arg);
	void (*show)(void *arg);
	void (*wake)(void *arg);
	void *arg;
};

/* Attach the editor: the calling thread becomes the terminal's owner. t is
 * copied. Detach before the editor goes away: queued events are printed and
 * printing goes back to direct writes from every thread. */
void output_attach_terminal(const struct output_terminal *t);
void output_detach_terminal(void);

/* Print the events other threads queued, above the edited line. Owner thread
 * only; a no-op without a terminal. */
void output_flush(void);

/* "[ROOM] NAME: TEXT". Continuation lines of a multi-line TEXT are indented
 * by two spaces, so they can never pass for a line of their own. */
void output_chat(const char *room, const char *name, const char *text);

/* The same, for a message that mentions us (mention nonzero): on a
 * terminal the bell rings once, and with colour the text is shown in
 * reverse video (ESC[7m ... ESC[0m). Piped, exactly output_chat()'s line. */
void output_chat_mention(const char *room, const char *name, const char *text, int mention);

/* Incoming: "[private] FROM: TEXT"; our own, sent to TO:
 * "[private to TO] FROM: TEXT". */
void output_private(const char *from, const char *to, const char *text);

/* A history entry: "[ROOM HH:MM] NAME: TEXT", the time (ISO 8601 UTC from
 * the server) in local time, with the date ("YYYY-MM-DD HH:MM") when it is
 * not today; shown as sent when it does not parse. */
void output_history_entry(const char *room, const char *iso_time, const char *name,
			  const char *text);

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

/* One line of information (a table row, a reply), sanitised as a whole.
 * Truncated at 1 KiB. */
void output_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The command list: "commands:", then a line per row, its synopsis in a
 * column of its own ("  join ROOM              join ROOM (the ..."), then
 * footer (lines of its own). Our own text: printed as is, in one event. */
struct output_help_row {
	const char *synopsis; /* "send ROOM MESSAGE..." */
	const char *text;     /* what it does */
};
void output_help(const struct output_help_row *rows, size_t n, const char *footer);

/* name, or "\"name\"" when it holds a space: how roomc shows (and the user
 * types) a room or client name. The result lives until the calling thread's
 * fourth call after this one. */
const char *output_q(const char *name);

#endif

/* output.c - roomc's stdout: incoming chat, command results, local errors.
 *
 * Owns stdout; any thread calls in (the command thread, the control reader,
 * every room listener). out_lock makes each event one uninterrupted write
 * followed by a flush. Bytes from the network pass through put_clean(), which
 * replaces control characters so a remote user cannot send terminal escape
 * sequences or forge whole lines. */
#include "output.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#define OUTPUT_LOCAL_MAX 1024

/* Guards stdout: held for the whole of one event (its lines and the flush). */
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

/* Write s with C0 controls, DEL and UTF-8 encoded C1 controls (U+0080..U+009F,
 * which some terminals obey as escapes) shown as '?'. A newline is written as
 * a newline plus `indent`, so continuation lines stay visibly inside the
 * event; NULL indent turns newlines into '?' as well. */
static void put_clean(const char *s, const char *indent)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '\n' && indent) {
			putchar('\n');
			fputs(indent, stdout);
		} else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
			putchar('?');
			p++;
		} else if ((*p < 0x20 && *p != '\t') || *p == 0x7f) {
			putchar('?');
		} else {
			putchar(*p);
		}
	}
}

static void end_event(void)
{
	putchar('\n');
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
}

void output_chat(const char *room, const char *name, const char *text)
{
	pthread_mutex_lock(&out_lock);
	putchar('[');
	put_clean(room, NULL);
	fputs("] ", stdout);
	put_clean(name, NULL);
	fputs(": ", stdout);
	put_clean(text, "  ");
	end_event();
}

void output_joined(const char *room, long ref, unsigned port)
{
	pthread_mutex_lock(&out_lock);
	fputs("joined ", stdout);
	put_clean(room, NULL);
	printf(" (ref %ld, port %u)", ref, port);
	end_event();
}

void output_left(const char *room)
{
	pthread_mutex_lock(&out_lock);
	fputs("left ", stdout);
	put_clean(room, NULL);
	end_event();
}

void output_server_error(long code, const char *description)
{
	pthread_mutex_lock(&out_lock);
	printf("error %ld: ", code);
	put_clean(description, NULL);
	end_event();
}

void output_local(const char *fmt, ...)
{
	char line[OUTPUT_LOCAL_MAX];
	va_list ap;

	va_start(ap, fmt);
	/* Truncation is fine: these are one-line diagnostics. */
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&out_lock);
	fputs("roomc: ", stdout);
	put_clean(line, NULL);
	end_event();
}

void output_help(void)
{
	pthread_mutex_lock(&out_lock);
	fputs("commands:\n"
	      "  join ROOM              join ROOM (the server may create it)\n"
	      "  send ROOM MESSAGE...   send MESSAGE to ROOM\n"
	      "  leave_chatroom ROOM    leave ROOM (also: leave ROOM)\n"
	      "  disconnect             leave every room and quit (also: quit, EOF, Ctrl-C)\n"
	      "  help                   this list\n"
	      "incoming messages print as [ROOM] NAME: TEXT",
	      stdout);
	end_event();
}

/* activity.h - what the prompt says about the rooms: the current room, the
 * unread counts of the others, and whether someone said our name.
 *
 * Pure: no I/O, no globals; any thread may call it. The counts themselves
 * live in room.c (the listener counts, under the room's lock); the session
 * turns them into the prompt with activity_prompt(). */
#ifndef ROOMC_ACTIVITY_H
#define ROOMC_ACTIVITY_H

#include <stddef.h>

/* Nonzero when text mentions name: name appears in it, in any case, not
 * inside a longer word (the bytes around it are not letters, digits, '_'
 * or '-'). An empty name mentions nothing. */
int activity_mentions(const char *text, const char *name);

/* One room of the prompt's activity list. */
struct activity_item {
	const char *name;   /* the room, as the server spells it */
	unsigned long unread; /* messages since it was last the current room */
	int mentioned;      /* one of them mentions us */
};

/* The prompt into buf (always NUL-terminated when cap > 0): "CURRENT> ", or
 * "> " without a current room; rooms with unread messages (or a mention) are
 * listed in brackets before the '>', in the order given:
 * "lobby [dev:3 ops:1!]> ". Bytes of names that are not printable ASCII or
 * UTF-8 are shown as '?', so a name cannot drive the terminal. Cut at cap
 * (with "...]> " when the list does not fit). Returns buf. */
char *activity_prompt(char *buf, size_t cap, const char *current,
		      const struct activity_item *items, size_t n);

#endif

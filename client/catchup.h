/* catchup.h - which history entries a reconnected roomc missed.
 *
 * Pure: no I/O, no allocation; any thread. Without per-message sequence
 * numbers, a room's place in its history is found by content: the last
 * messages roomc saw in the room (up to CATCHUP_SEEN of them, oldest first)
 * are looked for in the HISTORY reply, newest match first; what follows them,
 * up to our own new join announcement, was said while we were away. When
 * the server gains sequence numbers, this is the one function to change:
 * the entries after the last sequence number seen. */
#ifndef ROOMC_CATCHUP_H
#define ROOMC_CATCHUP_H

#include <stddef.h>

/* Messages remembered per room to find our place: more than one, so a
 * repeated line ("ok") does not match too early. */
#define CATCHUP_SEEN 8

struct catchup_entry {
	const char *name; /* the sender */
	const char *text;
};

struct catchup_plan {
	size_t first; /* the missed entries are hist[first..end) */
	size_t end;   /* our own newest join announcement (seen live), or n */
	int gap;      /* 1: the last seen message is no longer in the history,
		       * so more was missed than it keeps; [first..end) is all
		       * it has */
};

/* Plan the catch-up of a room from its history hist[0..n) (oldest first),
 * given the messages seen before the connection dropped, seen[0..nseen)
 * (oldest first), for a client called own_name. With nothing seen, nothing
 * is missed (first == end). Never fails. */
struct catchup_plan catchup_plan(const struct catchup_entry *hist, size_t n,
				 const struct catchup_entry *seen, size_t nseen,
				 const char *own_name);

#endif

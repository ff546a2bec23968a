/* catchup.h - which history entries a reconnected roomc missed.
 *
 * Pure: no I/O, no allocation; any thread. Without per-message sequence
 * numbers, a room's place in its history is found by content: the last
 * messages roomc saw in the room (up to CATCHUP_SEEN of them, oldest first)
 * are looked for in the HISTORY reply, newest match first; what follows them,
 * up to the messages already printed live since the rejoin (the reply's
 * tail), was said while we were away. The history keeps members' messages
 * only (no join or leave announcements). A server that numbers its
 * messages (docs/PROTOCOL.md §7.7) is caught up with by number instead
 * (session.c, seqtrack.h); this serves the servers that do not. */
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
	size_t end;   /* where the messages printed live since the rejoin
		       * start, or n */
	int gap;      /* 1: the last seen message is no longer in the history,
		       * so more was missed than it keeps; [first..end) is all
		       * it has */
};

/* Plan the catch-up of a room from its history hist[0..n) (oldest first),
 * given the messages seen before the connection dropped, seen[0..nseen)
 * (oldest first; the newest history entry shown at the join counts as
 * seen), and those printed live since the rejoin, live[0..nlive). With
 * nothing seen (the history was empty when we joined and nobody spoke),
 * every entry before the live ones was missed. Never fails. */
struct catchup_plan catchup_plan(const struct catchup_entry *hist, size_t n,
				 const struct catchup_entry *seen, size_t nseen,
				 const struct catchup_entry *live, size_t nlive);

#endif

/* seqtrack.h - the sequence numbers roomc has seen, per room (issue 16).
 *
 * A server that gives numbers (WELCOME: SEQ, docs/PROTOCOL.md §7.7) sends a
 * SEQ frame before each member's message; whichever reader prints the
 * message (the control connection's or a room connection's listener)
 * records its number here, keyed by ROOM_REF. The command thread reads
 * where each room stood when the connection dropped (the catch-up asks
 * for the messages after it) and which number was the first printed live
 * since the rejoin (the catch-up stops before it: none printed twice).
 * A GAP notice holds a room's live messages until the command thread has
 * printed what was dropped from the history, so they stay in order.
 * One lock; any thread. Bounded: SEQTRACK_ROOMS rooms, the rest untracked
 * (their catch-up then shows what the history has after 0). */
#ifndef ROOMC_SEQTRACK_H
#define ROOMC_SEQTRACK_H

#include <stddef.h>

#define SEQTRACK_ROOMS 256

/* A live message numbered seq of room ref arrived: 1 when the reader
 * prints it (and it is recorded as seen), 0 when it must not: a history
 * shown or a refill printed it already, or the room is being refilled
 * after a gap (the refill prints it, in order). A live number below one
 * printed live still prints: around an attach the control connection's
 * reader and the room's may take the room's messages out of order (the
 * server sends each once, by one of them). */
int seqtrack_live(long ref, long seq);

/* The server dropped room ref's messages from our queue (a GAP notice,
 * §7.7): its live messages wait until the command thread has refilled
 * from the history (seqtrack_refill_next). */
void seqtrack_gap(long ref);

/* A room waiting for its refill: 1 with its ref and the newest number
 * printed (ask for the history after it), or 0 when none waits. */
int seqtrack_refill_next(long *ref, long *after);

/* The refill of room ref printed its history up to last (the room's
 * newest being newest): live messages after it print again. Returns 1
 * when more is due (live messages newer than last were held meanwhile, or
 * the history went further): the room stays held for another round.
 * last < 0: the refill failed; live messages print again, as they come. */
int seqtrack_refilled(long ref, long last, long newest);

/* A history of room ref was shown: its n entries, numbered first, first +
 * 1, ... (HISTORY_AFTER's FIRST). What it covers is up to its newest entry,
 * not the room's newest number (LAST): a message numbered but not kept
 * (history = 0, or one past the reply) is not shown by it, and its live
 * copy, still on its way, must print. */
void seqtrack_seed_shown(long ref, long first, size_t n);

/* The newest number seen in room ref (0: none), and the lowest printed
 * live since the last seqtrack_reset() (0: none). */
void seqtrack_get(long ref, long *last, long *first_live);

/* Forget every room (a new connection: its rooms are rejoined). */
void seqtrack_reset(void);

#endif

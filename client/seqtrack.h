/* seqtrack.h - the sequence numbers roomc has seen, per room (issue 16).
 *
 * A server that gives numbers (WELCOME: SEQ, docs/PROTOCOL.md §7.7) sends a
 * SEQ frame before each member's message; whichever reader prints the
 * message (the control connection's or a room connection's listener)
 * records its number here, keyed by ROOM_REF. The command thread reads
 * where each room stood when the connection dropped (the catch-up asks
 * for the messages after it) and which number was the first printed live
 * since the rejoin (the catch-up stops before it: none printed twice).
 * One lock; any thread. Bounded: SEQTRACK_ROOMS rooms, the rest untracked
 * (their catch-up then shows what the history has after 0). */
#ifndef ROOMC_SEQTRACK_H
#define ROOMC_SEQTRACK_H

#define SEQTRACK_ROOMS 256

/* A message numbered seq of room ref was printed live. */
void seqtrack_saw(long ref, long seq);

/* Everything of room ref up to seq counts as seen (a history shown), but
 * nothing was printed live. */
void seqtrack_seed(long ref, long seq);

/* The newest number seen in room ref (0: none), and the first printed live
 * since the last seqtrack_reset() (0: none). */
void seqtrack_get(long ref, long *last, long *first_live);

/* Forget every room (a new connection: its rooms are rejoined). */
void seqtrack_reset(void);

#endif

/* notify.h - how the reader threads wake the command thread.
 *
 * The command thread sleeps in poll(2) only, so that a signal (via signalfd)
 * or stdin can wake it as well. The control reader and the room listeners
 * change state under their own locks, then poke this eventfd. It also holds
 * the one "expectation" the command thread may wait for: the next CHAT of our
 * own name in a room (our echo, our join or leave announcement), or the
 * server's announcement of our new topic, which makes piped scripts
 * deterministic. */
#ifndef ROOMC_NOTIFY_H
#define ROOMC_NOTIFY_H

struct notify;

/* A new notifier for a client called own_name (copied). 0 or -errno. */
int notify_create(const char *own_name, struct notify **out);

/* Free it. No other thread may use it any more. */
void notify_destroy(struct notify *n);

/* The descriptor to poll for POLLIN. */
int notify_fd(const struct notify *n);

/* Wake the command thread. Any thread; never blocks, never fails usefully. */
void notify_poke(struct notify *n);

/* Reset the wake-up after poll(2) reported it. Command thread. */
void notify_drain(struct notify *n);

/* Wait for our own CHAT in room ref (-1: any room); with suffix non-NULL,
 * only the one whose text is our name followed by suffix (a string literal:
 * PROTO_JOINED_TEXT, PROTO_LEFT_TEXT). Replaces any earlier expectation.
 * Command thread. */
void notify_arm(struct notify *n, long ref, const char *suffix);

/* Wait for a CHAT in room ref from sender whose text starts with prefix
 * (both copied): the server's announcement of a change we asked for (a new
 * topic). Replaces any earlier expectation. 0, or -ENOMEM with nothing
 * armed. Command thread. */
int notify_arm_prefix(struct notify *n, long ref, const char *sender, const char *prefix);

/* Forget the expectation. Command thread. */
void notify_disarm(struct notify *n);

/* 0 while the expectation is pending (or none is armed), 1 once it was
 * seen, -1 when an error reply ended it. Any thread. */
int notify_result(struct notify *n);

/* A CHAT was printed for room ref: settles the expectation if it matches, and
 * pokes. Reader threads. */
void notify_chat(struct notify *n, long ref, const char *name, const char *text);

/* An error reply arrived on the connection of room ref (-1: the control
 * connection): fails a pending expectation for that room. Reader threads. */
void notify_error(struct notify *n, long ref);

#endif

/* acceptor.h - the main thread's control-port loop.
 *
 * The acceptor owns the control listening socket, every control connection,
 * the signal descriptor and the room threads' lifetimes. Room threads hand
 * it messages for members that are not attached through acceptor_deliver(). */
#ifndef ROOMD_ACCEPTOR_H
#define ROOMD_ACCEPTOR_H

#include <stddef.h>
#include <stdint.h>
#include "mailbox.h"

struct config;
struct registry;
struct msg;
struct acceptor;
struct room;

/* One message for one membership of a control connection. */
struct delivery {
	struct msg *msg;  /* a reference owned by the batch */
	int fd;           /* the control connection... */
	uint64_t conn_id; /* ...if its id still matches (fds are reused) */
	long join_id;     /* delivered only while this membership is live */
	int ack;          /* the answer to a LEAVE: delivered anyway, then the
			   * connection resumes reading requests */
};

/* Deliveries made by one room thread in one loop pass. */
struct delivery_batch {
	struct mail mail;
	size_t n, cap;
	struct delivery d[];
};

/* Set up the control port (cfg->bind, port), the signal descriptor, the
 * configured rooms. Returns NULL with a message logged on failure. Must be
 * called before any other thread exists (it blocks SIGINT/SIGTERM/SIGHUP). */
struct acceptor *acceptor_create(const struct config *cfg, struct registry *reg, unsigned port);

/* What the daemon around the acceptor does on its thread (any may be NULL;
 * each is called with arg). */
struct acceptor_hooks {
	void (*reload)(void *arg);   /* SIGHUP arrived (NULL: logged, ignored) */
	int (*tick)(void *arg);      /* after every loop pass; returns the ms it
				      * wants until the next (capped at 500) */
	void (*stopping)(void *arg); /* the loop ended: shutdown begins */
	void *arg;
};

/* Set the hooks acceptor_run() calls (before it runs). */
void acceptor_set_hooks(struct acceptor *acc, const struct acceptor_hooks *hooks);

/* Serve until SIGINT, SIGTERM or KILL_SERVICE; then stop the rooms, flush
 * and close every connection. Returns 0 on a clean stop. */
int acceptor_run(struct acceptor *acc);

void acceptor_destroy(struct acceptor *acc);

/* One pass of the loop: wait up to timeout_ms for events, handle them, flush,
 * check deadlines. Returns 0, 1 once a stop was requested (signal or
 * KILL_SERVICE), -1 on failure. acceptor_run() is this in a loop; tests and
 * fuzz targets drive it directly. */
int acceptor_step(struct acceptor *acc, int timeout_ms);

/* Take fd over as a control connection from peer, exactly as if it had been
 * accepted (tests and fuzzing feed requests through a socketpair this way).
 * Returns the connection, or NULL (fd is closed). */
struct conn *acceptor_adopt(struct acceptor *acc, int fd, const char *peer);

/* Acceptor thread: the room's last member left; stop its thread (it
 * finishes what it holds first) and free it once done. 0 or -ENOMEM (the
 * room keeps running). */
int acceptor_retire_room(struct acceptor *acc, struct room *room);

/* Room threads, as their last act: wake the acceptor so that it joins and
 * frees retired rooms at once, releasing their descriptors. */
void acceptor_room_exited(struct acceptor *acc);

/* Acceptor thread: the live control connection (fd, id), or NULL. */
struct conn *acceptor_conn(struct acceptor *acc, int fd, uint64_t id);

/* Acceptor thread: queue m (shared) on control connection c and flush it
 * this pass; a client that does not read is cut off. 0 or -errno. */
int acceptor_send(struct acceptor *acc, struct conn *c, struct msg *m);

/* Any thread: hand a batch over (ownership passes). */
void acceptor_deliver(struct acceptor *acc, struct delivery_batch *b);

/* Room threads: append a delivery to *bp (grown or allocated as needed);
 * takes a new reference to m. 0 or -ENOMEM. */
int delivery_add(struct delivery_batch **bp, struct msg *m, int fd, uint64_t conn_id, long join_id,
		 int ack);

/* An empty batch with room for cap deliveries (delivery_add will not need
 * to allocate until it is full), or NULL. */
struct delivery_batch *delivery_batch_create(size_t cap);

/* Drop a batch that was never handed over. */
void delivery_free(struct delivery_batch *b);

#endif

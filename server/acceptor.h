/* acceptor.h - the main thread's control-port loop.
 *
 * The acceptor owns the control listening socket, every control connection,
 * the signal descriptor and the room threads' lifetimes (through rooms.h).
 * Room threads hand it messages for members that are not attached by
 * posting to its mailbox (delivery.h); they do not know this header. */
#ifndef ROOMD_ACCEPTOR_H
#define ROOMD_ACCEPTOR_H

struct cluster;
struct config;
struct registry;
struct store;
struct acceptor;
struct conn;

/* Set up the control port (cfg->bind, port), the signal descriptor, the
 * configured rooms, which keep their history in store (NULL: persistence
 * off; it must outlive the acceptor), and go through cluster's Redis
 * streams (NULL: a single node; it must outlive the acceptor). Returns NULL with a message logged on
 * failure. Must be called before any other thread exists (it blocks
 * SIGINT/SIGTERM/SIGHUP). */
struct acceptor *acceptor_open(const struct config *cfg, struct registry *reg, struct store *store,
			       struct cluster *cluster, unsigned port);

/* acceptor_open() without a store (tests and fuzz targets). */
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

/* A SIGHUP reload, between two loop passes: use next from now on (it must
 * outlive the acceptor or the next call; rooms take their own references):
 * limits, timeouts and texts for the control connections, the per-address
 * table and the registry, and every room (rooms_reconfigure: rooms added,
 * removed, topics, history lengths). Keys that need a restart must already
 * hold their running values in next. This is where the transport's
 * reloadable material (TLS certificates) is swapped too: new connections
 * use it, open ones keep theirs. Acceptor thread only. */
void acceptor_reconfigure(struct acceptor *acc, const struct config *next);

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

#endif

/* metrics.h - counters for Prometheus, and the HTTP endpoint that serves
 * them ([metrics] listen; docs/OPERATIONS.md "Metrics").
 *
 * The counters live in this module, one set per process: the daemon has
 * one acceptor, one store and one registry, and every thread that counts
 * something reaches them without a pointer threaded through its callers.
 * Counting never takes a lock and never makes a system call: a relaxed
 * atomic add (or, for a counter only one thread writes, a relaxed load and
 * store). The scrape runs on libmicrohttpd's own thread; it takes the
 * metrics lock only to copy the list of rooms (and a reference to each),
 * never the registry lock, and never waits for a room thread.
 *
 * Per-room counters are a struct room_metrics, refcounted apart from the
 * room: the room holds one reference, the list of live rooms one, and a
 * scrape one for each room it is reading, so a room that ends during a
 * scrape leaves its counters readable until the scrape lets go. A room's
 * series are listed from room_start until it stops (goes dormant, is
 * forgotten or retired): a dormant room has none. */
#ifndef ROOMD_METRICS_H
#define ROOMD_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "proto.h"

/* One room's counters. The room thread writes all of them except cut_off
 * (also counted by the acceptor, for members without a room connection). */
struct room_metrics {
	atomic_ulong messages;   /* members' messages relayed */
	atomic_ulong bytes;      /* their frames' bytes, once each */
	atomic_ulong deliveries; /* frames queued to members: members x frames */
	atomic_ulong cut_off;    /* members' connections cut off: not reading */
	atomic_long members;     /* on the delivery list now */
	atomic_long attached;    /* of them, with an attached room connection */
	atomic_long history;     /* messages kept for HISTORY now */
	/* the metrics module's: */
	atomic_long refs;
	int listed;              /* on the live list (metrics lock) */
	struct room_metrics *prev, *next;
	char name[CONFIG_NAME_MAX + 1];
};

/* Add n to a counter only one thread writes: no locked instruction. */
static inline void metrics_add_own(atomic_ulong *c, unsigned long n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

/* The same for a gauge. */
static inline void metrics_gauge_add_own(atomic_long *g, long n)
{
	atomic_store_explicit(g, atomic_load_explicit(g, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static inline void metrics_set(atomic_long *g, long v)
{
	atomic_store_explicit(g, v, memory_order_relaxed);
}

/* A new room's counters, listed for scrapes under name; NULL out of memory
 * (the room then counts nothing: every metrics_room_* call takes NULL). */
struct room_metrics *metrics_room_open(const char *name);
/* The room stopped: its series go from the next scrape (idempotent). */
void metrics_room_unlist(struct room_metrics *rm);
/* Drop the room's reference (unlisting it too). */
void metrics_room_close(struct room_metrics *rm);
/* A member's connection was cut off for not reading. Any thread. */
void metrics_room_cut_off(struct room_metrics *rm);

/* ---- server-wide (any thread) ---- */

enum metrics_conn_kind { METRICS_CONTROL, METRICS_ROOM, METRICS_CONN_KINDS };
enum metrics_slowdown { METRICS_SLOW_CONNECTION, METRICS_SLOW_ADDRESS, METRICS_SLOW_ROOM_BUSY,
			METRICS_SLOWDOWNS };
enum metrics_refusal { METRICS_REFUSE_MAX_CLIENTS, METRICS_REFUSE_PER_IP, METRICS_REFUSE_CONNECT_RATE,
		       METRICS_REFUSE_ROOM_CREATE_RATE, METRICS_REFUSE_CAPABILITY, METRICS_REFUSALS };

void metrics_conn_open(enum metrics_conn_kind kind);
void metrics_conn_close(enum metrics_conn_kind kind);
void metrics_request(void);
/* A connection of this kind was cut off for not reading its replies or
 * deliveries (a room's also counts in its room_metrics). */
void metrics_cut_off(enum metrics_conn_kind kind);
void metrics_error(enum proto_err code);
void metrics_slowdown(enum metrics_slowdown why);
void metrics_refusal(enum metrics_refusal why);
/* The store's queue holds depth messages now (store lock held). */
void metrics_store_queue(size_t depth);
/* A commit (transaction) took ns nanoseconds; ok: it succeeded. */
void metrics_store_commit(uint64_t ns, int ok);

/* ---- exposition ---- */

/* Write label value v escaped per the text exposition format (backslash,
 * double quote and newline as \\, \" and \n; every other byte as is) into
 * out (outlen bytes, NUL-terminated, cut short if it does not fit).
 * Returns the length the whole escaped value needs. */
size_t metrics_escape_label(const char *v, char *out, size_t outlen);

/* The whole exposition now, malloc'd, in *len bytes; NULL out of memory. */
char *metrics_render(size_t *len);

/* Serve GET /metrics on listen ("ADDR:PORT" or "[ADDR6]:PORT"; port 0: a
 * free one) from libmicrohttpd's thread, and log "metrics listening on
 * ADDR:PORT". "" serves nothing. 0, or -1 with a message in err. Main
 * thread, start-up. */
int metrics_start(const char *listen, char *err, size_t errlen);
/* Stop serving (waits for a scrape in progress). Main thread. */
void metrics_stop(void);

#endif

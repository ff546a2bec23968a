/* iptable.h - what each client address holds and may still do: its
 * connections (control and room ports together, for max_clients_per_ip)
 * and its token buckets (requests, connections, room creations, refused
 * capability checks), shared by every connection from that address so
 * that reconnecting buys nothing.
 *
 * Any thread: one mutex guards the table and is held for one hash lookup
 * or one bucket update, never across a system call. An IPv4 address is
 * one entry; IPv6 addresses are grouped by /64 (what one host can get).
 * An entry lives while the address has connections, and afterwards while
 * one of its buckets is still refilling (so a debt survives a reconnect),
 * at most IPTABLE_IDLE_MAX such idle entries (oldest dropped first). */
#ifndef ROOMD_IPTABLE_H
#define ROOMD_IPTABLE_H

#include <stdint.h>

struct config;
struct iptable;
struct ip_entry;

/* Refused capability checks (room ports: a wrong JOIN_ID, name, room or
 * source address) one address may make: IPTABLE_CAP_BURST at once, then
 * IPTABLE_CAP_PER_MIN a minute. Beyond that every capability check from
 * it is refused before any lookup (error 9). */
#define IPTABLE_CAP_BURST 5
#define IPTABLE_CAP_PER_MIN 5

/* Idle entries (no connection, buckets still refilling) kept at most. */
#define IPTABLE_IDLE_MAX 16384

/* An empty table using cfg's per-address limits (cfg must outlive it), or
 * NULL. */
struct iptable *iptable_create(const struct config *cfg);

/* Use cfg's limits from now on (a reload, on the thread that publishes it):
 * swapped under the lock, so no thread reads the old config through the
 * table once this returns. cfg must outlive the table or the next call. */
void iptable_set_config(struct iptable *t, const struct config *cfg);
void iptable_destroy(struct iptable *t);

enum ip_verdict {
	IP_OK,       /* counted: *out is the address's entry until iptable_close */
	IP_TOO_MANY, /* max_clients_per_ip connections open already */
	IP_TOO_FAST, /* over connect_rate_per_ip */
	IP_NOMEM,
};

/* A connection from ip is being opened: count it and charge its
 * connection bucket. On IP_OK *out stays valid until iptable_close().
 * Otherwise *log_it is set for the first refusal of an episode (the
 * caller logs once, not once per connection). */
enum ip_verdict iptable_open(struct iptable *t, const char *ip, uint64_t now, struct ip_entry **out,
			     int *log_it);

/* The connection counted by iptable_open is gone. */
void iptable_close(struct iptable *t, struct ip_entry *e, uint64_t now);

/* Requests of all connections from one address share one bucket
 * (rate_per_ip a second, burst_per_ip at most saved up); a handled request
 * always costs a token, a negative balance is a debt.
 *
 * Before reading a connection's requests: 0, or the milliseconds until the
 * address's debt is repaid (the caller waits that long first: so a fresh
 * connection does not bring a fresh burst). */
long iptable_request_wait(struct iptable *t, struct ip_entry *e, uint64_t now);
/* A request was handled: charge it. 0, or the milliseconds until the debt
 * it leaves is repaid. */
long iptable_request_charge(struct iptable *t, struct ip_entry *e, uint64_t now);

/* Charge one room creation to e: 0, or -1 over room_create_rate. */
int iptable_create_room(struct iptable *t, struct ip_entry *e, uint64_t now);

/* May e make a capability check now? 1 yes; 0 no (throttled), with
 * *log_it set the first time in an episode (the caller logs once). */
int iptable_cap_allowed(struct iptable *t, struct ip_entry *e, uint64_t now, int *log_it);

/* A capability check from e was refused: charge it. */
void iptable_cap_refused(struct iptable *t, struct ip_entry *e, uint64_t now);

/* Connections counted for the address of ip (tests, logs). */
long iptable_count(struct iptable *t, const char *ip);

/* Entries held (live and idle). */
long iptable_entries(struct iptable *t);

#endif

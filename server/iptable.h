/* iptable.h - connection counts per client address, for max_clients_per_ip.
 *
 * A plain hash table owned by the acceptor thread; no lock. Entries exist
 * only while their count is above zero, so memory follows live clients. */
#ifndef ROOMD_IPTABLE_H
#define ROOMD_IPTABLE_H

struct iptable;

/* An empty table, or NULL. */
struct iptable *iptable_create(void);
void iptable_destroy(struct iptable *t);

/* Add delta (+1 or -1) to ip's count. Returns the new count, or -ENOMEM
 * (nothing changed) when a new entry cannot be allocated. */
long iptable_add(struct iptable *t, const char *ip, long delta);

#endif

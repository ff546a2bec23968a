/* iptable.c - per-address connection counts: a chained hash table with a
 * fixed number of buckets (the entries are bounded by max_clients, so the
 * chains stay short). Acceptor thread only. */
#include "iptable.h"
#include "net.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IPTABLE_BUCKETS 1024

struct ip_entry {
	struct ip_entry *next;
	long count;
	char ip[NET_ADDRSTRLEN];
};

struct iptable {
	struct ip_entry *buckets[IPTABLE_BUCKETS];
};

static size_t bucket_of(const char *ip)
{
	uint32_t h = 2166136261u;

	for (; *ip; ip++)
		h = (h ^ (unsigned char)*ip) * 16777619u;
	return h % IPTABLE_BUCKETS;
}

struct iptable *iptable_create(void)
{
	return calloc(1, sizeof(struct iptable));
}

void iptable_destroy(struct iptable *t)
{
	if (!t)
		return;
	for (size_t b = 0; b < IPTABLE_BUCKETS; b++) {
		struct ip_entry *e = t->buckets[b], *next;
		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(t);
}

long iptable_add(struct iptable *t, const char *ip, long delta)
{
	struct ip_entry **pp = &t->buckets[bucket_of(ip)], *e;

	while (*pp && strcmp((*pp)->ip, ip) != 0)
		pp = &(*pp)->next;
	e = *pp;
	if (!e) {
		if (delta <= 0)
			return 0;
		e = calloc(1, sizeof(*e));
		if (!e)
			return -ENOMEM;
		snprintf(e->ip, sizeof(e->ip), "%s", ip);
		*pp = e;
	}
	e->count += delta;
	if (e->count > 0)
		return e->count;
	*pp = e->next;
	free(e);
	return 0;
}

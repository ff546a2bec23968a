/* iptable.c - per-address connection counts and token buckets: a chained
 * hash table with a fixed number of buckets under one mutex, plus a FIFO
 * of idle entries (no connection left) that are freed once their buckets
 * are full again, or when there are too many of them. Any thread; the lock
 * is held for one lookup or update, with no system call inside. */
#include "iptable.h"
#include "config.h"
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IPTABLE_BUCKETS 4096
/* Key length: an IPv6 address's text and "/64". */
#define IPTABLE_KEY_MAX (NET_ADDRSTRLEN + 4)

/* Token buckets count in 1/60000ths of a token, so that a rate per second
 * (60 units a millisecond each) and a rate per minute (1 unit a
 * millisecond each) are both whole numbers. A negative balance is a debt. */
#define UNIT 60000LL

struct bucket {
	long long units;
	uint64_t at; /* refilled up to this time */
};

/* Units a millisecond and capacity of one kind of bucket. */
struct bucket_spec {
	long long per_ms, cap;
};

struct ip_entry {
	struct ip_entry *next;                  /* hash chain */
	struct ip_entry *idle_prev, *idle_next; /* idle FIFO, while count == 0 */
	long count;                             /* connections open */
	struct bucket req, conn, create, cap;
	uint64_t settle_ms;  /* every bucket is full again by then */
	int refuse_logged;   /* a connection refusal episode was logged */
	int cap_logged;      /* a capability throttling episode was logged */
	char key[IPTABLE_KEY_MAX];
};

struct iptable {
	pthread_mutex_t lock;
	const struct config *cfg;
	struct bucket_spec req, conn, create, cap;
	struct ip_entry *idle_head, *idle_tail;
	long nidle, nentries;
	struct ip_entry *buckets[IPTABLE_BUCKETS];
};

/* ---- buckets ---- */

static void refill(struct bucket *b, const struct bucket_spec *s, uint64_t now)
{
	if (now > b->at) {
		long long gain = (long long)(now - b->at) * s->per_ms;
		/* gain may be huge after a long idle: compare before adding. */
		b->units = gain >= s->cap - b->units ? s->cap : b->units + gain;
		b->at = now;
	}
}

static uint64_t full_at(const struct bucket *b, const struct bucket_spec *s)
{
	long long missing = s->cap - b->units;

	return missing <= 0 ? b->at : b->at + (uint64_t)((missing + s->per_ms - 1) / s->per_ms);
}

static void charge(struct ip_entry *e, struct bucket *b, const struct bucket_spec *s, long long units)
{
	uint64_t settle;

	b->units -= units;
	settle = full_at(b, s);
	if (settle > e->settle_ms)
		e->settle_ms = settle;
}

static void bucket_fill(struct bucket *b, const struct bucket_spec *s, uint64_t now)
{
	b->units = s->cap;
	b->at = now;
}

/* ---- the table ---- */

/* The entry's key: an IPv4 address itself, an IPv6 address's /64 (one
 * customer's subnet: its addresses are free for it to use, so counting
 * them apart would multiply every limit), and an IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d, from a dual-stack socket) as the IPv4 address it is, so
 * one client is one entry whichever way it came in. */
static void key_of(const char *ip, char *key)
{
	unsigned char a[16];
	char text[NET_ADDRSTRLEN];

	if (strchr(ip, ':') && inet_pton(AF_INET6, ip, a) == 1) {
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (memcmp(a, mapped, sizeof(mapped)) == 0) {
			if (inet_ntop(AF_INET, a + 12, text, sizeof(text))) {
				snprintf(key, IPTABLE_KEY_MAX, "%s", text);
				return;
			}
		} else {
			memset(a + 8, 0, 8);
			if (inet_ntop(AF_INET6, a, text, sizeof(text))) {
				snprintf(key, IPTABLE_KEY_MAX, "%s/64", text);
				return;
			}
		}
	}
	snprintf(key, IPTABLE_KEY_MAX, "%s", ip);
}

static size_t bucket_of(const char *key)
{
	uint32_t h = 2166136261u;

	for (; *key; key++)
		h = (h ^ (unsigned char)*key) * 16777619u;
	return h % IPTABLE_BUCKETS;
}

static struct ip_entry **find(struct iptable *t, const char *key)
{
	struct ip_entry **pp = &t->buckets[bucket_of(key)];

	while (*pp && strcmp((*pp)->key, key) != 0)
		pp = &(*pp)->next;
	return pp;
}

static void idle_unlink(struct iptable *t, struct ip_entry *e)
{
	if (e->idle_prev)
		e->idle_prev->idle_next = e->idle_next;
	else
		t->idle_head = e->idle_next;
	if (e->idle_next)
		e->idle_next->idle_prev = e->idle_prev;
	else
		t->idle_tail = e->idle_prev;
	e->idle_prev = e->idle_next = NULL;
	t->nidle--;
}

static void idle_append(struct iptable *t, struct ip_entry *e)
{
	e->idle_prev = t->idle_tail;
	e->idle_next = NULL;
	if (t->idle_tail)
		t->idle_tail->idle_next = e;
	else
		t->idle_head = e;
	t->idle_tail = e;
	t->nidle++;
}

static void entry_free(struct iptable *t, struct ip_entry *e)
{
	struct ip_entry **pp = find(t, e->key);

	if (*pp == e)
		*pp = e->next;
	idle_unlink(t, e);
	t->nentries--;
	free(e);
}

/* Free idle entries whose buckets are full again (they remember nothing
 * worth keeping), and the oldest beyond IPTABLE_IDLE_MAX. A few per call:
 * the cost stays O(1) per operation. */
static void collect(struct iptable *t, uint64_t now)
{
	for (int i = 0; i < 4 && t->idle_head; i++) {
		if (t->idle_head->settle_ms > now && t->nidle <= IPTABLE_IDLE_MAX)
			break;
		entry_free(t, t->idle_head);
	}
}

/* An entry that has just lost its last connection (or never got one). */
static void release_if_idle(struct iptable *t, struct ip_entry *e, uint64_t now)
{
	if (e->count > 0)
		return;
	if (e->settle_ms <= now) {
		idle_append(t, e); /* entry_free unlinks it */
		entry_free(t, e);
		return;
	}
	idle_append(t, e);
	collect(t, now);
}

static struct ip_entry *entry_get(struct iptable *t, const char *ip, uint64_t now)
{
	char key[IPTABLE_KEY_MAX];
	struct ip_entry **pp, *e;

	key_of(ip, key);
	pp = find(t, key);
	if (*pp) {
		e = *pp;
		if (e->count == 0)
			idle_unlink(t, e);
		return e;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	snprintf(e->key, sizeof(e->key), "%s", key);
	bucket_fill(&e->req, &t->req, now);
	bucket_fill(&e->conn, &t->conn, now);
	bucket_fill(&e->create, &t->create, now);
	bucket_fill(&e->cap, &t->cap, now);
	e->settle_ms = now;
	*pp = e;
	t->nentries++;
	return e;
}

/* The per-address limits of cfg (its rates and bursts), which a reload may
 * change: under the lock, or before the table is shared. */
static void set_specs_locked(struct iptable *t, const struct config *cfg)
{
	t->cfg = cfg;
	t->req = (struct bucket_spec){ cfg->rate_per_ip * UNIT / 1000, cfg->burst_per_ip * UNIT };
	t->conn = (struct bucket_spec){ cfg->connect_rate_per_ip * UNIT / 1000,
					cfg->connect_burst_per_ip * UNIT };
	t->create = (struct bucket_spec){ cfg->room_create_rate * UNIT / 60000,
					  cfg->room_create_rate * UNIT };
}

void iptable_set_config(struct iptable *t, const struct config *cfg)
{
	/* Entries keep their levels; the new rates and caps apply from their
	 * next refill. */
	pthread_mutex_lock(&t->lock);
	set_specs_locked(t, cfg);
	pthread_mutex_unlock(&t->lock);
}

struct iptable *iptable_create(const struct config *cfg)
{
	struct iptable *t = calloc(1, sizeof(struct iptable));

	if (!t)
		return NULL;
	if (pthread_mutex_init(&t->lock, NULL) != 0) {
		free(t);
		return NULL;
	}
	set_specs_locked(t, cfg);
	t->cap = (struct bucket_spec){ IPTABLE_CAP_PER_MIN * UNIT / 60000, IPTABLE_CAP_BURST * UNIT };
	return t;
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
	pthread_mutex_destroy(&t->lock);
	free(t);
}

enum ip_verdict iptable_open(struct iptable *t, const char *ip, uint64_t now, struct ip_entry **out,
			     int *log_it)
{
	enum ip_verdict v = IP_OK;
	struct ip_entry *e;

	pthread_mutex_lock(&t->lock);
	collect(t, now);
	e = entry_get(t, ip, now);
	if (!e) {
		pthread_mutex_unlock(&t->lock);
		return IP_NOMEM;
	}
	/* Every attempt costs a connection token, refused or not, so that
	 * hammering the port is slowed too. */
	refill(&e->conn, &t->conn, now);
	if (e->conn.units < UNIT)
		v = IP_TOO_FAST;
	else
		charge(e, &e->conn, &t->conn, UNIT);
	if (v == IP_OK && e->count >= t->cfg->max_clients_per_ip)
		v = IP_TOO_MANY;
	*log_it = 0;
	if (v == IP_OK) {
		e->count++;
		if (e->conn.units >= t->conn.cap - UNIT)
			e->refuse_logged = 0; /* a calm address: the episode is over */
		*out = e;
	} else {
		*log_it = !e->refuse_logged;
		e->refuse_logged = 1;
		release_if_idle(t, e, now);
	}
	pthread_mutex_unlock(&t->lock);
	return v;
}

void iptable_close(struct iptable *t, struct ip_entry *e, uint64_t now)
{
	if (!e)
		return;
	pthread_mutex_lock(&t->lock);
	e->count--;
	release_if_idle(t, e, now);
	pthread_mutex_unlock(&t->lock);
}

static long debt_ms(const struct bucket *b, const struct bucket_spec *s)
{
	return b->units >= 0 ? 0 : (long)((-b->units + s->per_ms - 1) / s->per_ms);
}

long iptable_request_wait(struct iptable *t, struct ip_entry *e, uint64_t now)
{
	long wait;

	pthread_mutex_lock(&t->lock);
	refill(&e->req, &t->req, now);
	wait = debt_ms(&e->req, &t->req);
	pthread_mutex_unlock(&t->lock);
	return wait;
}

long iptable_request_charge(struct iptable *t, struct ip_entry *e, uint64_t now)
{
	long wait;

	pthread_mutex_lock(&t->lock);
	refill(&e->req, &t->req, now);
	charge(e, &e->req, &t->req, UNIT);
	wait = debt_ms(&e->req, &t->req);
	pthread_mutex_unlock(&t->lock);
	return wait;
}

int iptable_create_room(struct iptable *t, struct ip_entry *e, uint64_t now)
{
	int rc = 0;

	pthread_mutex_lock(&t->lock);
	refill(&e->create, &t->create, now);
	if (e->create.units < UNIT)
		rc = -1;
	else
		charge(e, &e->create, &t->create, UNIT);
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int iptable_cap_allowed(struct iptable *t, struct ip_entry *e, uint64_t now, int *log_it)
{
	int ok;

	*log_it = 0;
	pthread_mutex_lock(&t->lock);
	refill(&e->cap, &t->cap, now);
	if (e->cap.units >= t->cap.cap)
		e->cap_logged = 0; /* the last episode is over */
	ok = e->cap.units >= UNIT;
	if (!ok && !e->cap_logged)
		*log_it = e->cap_logged = 1;
	pthread_mutex_unlock(&t->lock);
	return ok;
}

void iptable_cap_refused(struct iptable *t, struct ip_entry *e, uint64_t now)
{
	pthread_mutex_lock(&t->lock);
	refill(&e->cap, &t->cap, now);
	charge(e, &e->cap, &t->cap, UNIT);
	pthread_mutex_unlock(&t->lock);
}

long iptable_count(struct iptable *t, const char *ip)
{
	char key[IPTABLE_KEY_MAX];
	struct ip_entry *e;
	long n;

	key_of(ip, key);
	pthread_mutex_lock(&t->lock);
	e = *find(t, key);
	n = e ? e->count : 0;
	pthread_mutex_unlock(&t->lock);
	return n;
}

long iptable_entries(struct iptable *t)
{
	long n;

	pthread_mutex_lock(&t->lock);
	n = t->nentries;
	pthread_mutex_unlock(&t->lock);
	return n;
}

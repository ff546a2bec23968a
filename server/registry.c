/* registry.c - rooms, memberships and names, for the main (acceptor)
 * thread: main.c at start-up and shutdown, control.c's handlers and
 * acceptor.c's room shutdown in between (registry.h says which calls what);
 * no other thread calls in.
 *
 * reg->lock guards everything in struct registry and every record. It is
 * held for one lookup or update, with no I/O and no calls out; it is the
 * innermost lock (taken with none other held, nothing taken under it). Records are
 * allocated one by one (their addresses are stable) and indexed in chained
 * hash tables that double as they fill: rooms by name and by ref, members
 * by JOIN_ID and by (room ref, name), names by name, and name holders by
 * (name, connection). Rooms sit on one of two lists, live (with a thread)
 * or dormant (oldest first), and each room keeps its own member list, so
 * LIST_ROOMS, LIST_MEMBERS and PRIVATE_MESSAGE cost what they return. */
#include "registry.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* ---- an intrusive chained hash table ---- */

struct hnode {
	struct hnode *next;
	uint64_t hash;
};

struct htab {
	struct hnode **b; /* buckets: a power of two */
	size_t nb, n;
};

#define CONTAINER(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))

static int htab_init(struct htab *t)
{
	t->nb = 64;
	t->n = 0;
	t->b = calloc(t->nb, sizeof(*t->b));
	return t->b ? 0 : -ENOMEM;
}

/* Twice the buckets. Out of memory, the table keeps its size: chains get
 * longer, nothing is lost. */
static void htab_grow(struct htab *t)
{
	size_t nb = t->nb * 2;
	struct hnode **b = calloc(nb, sizeof(*b));

	if (!b)
		return;
	for (size_t i = 0; i < t->nb; i++) {
		struct hnode *n = t->b[i], *next;
		for (; n; n = next) {
			next = n->next;
			n->next = b[n->hash & (nb - 1)];
			b[n->hash & (nb - 1)] = n;
		}
	}
	free(t->b);
	t->b = b;
	t->nb = nb;
}

static void htab_add(struct htab *t, struct hnode *n, uint64_t hash)
{
	if (t->n >= t->nb)
		htab_grow(t);
	n->hash = hash;
	n->next = t->b[hash & (t->nb - 1)];
	t->b[hash & (t->nb - 1)] = n;
	t->n++;
}

static void htab_del(struct htab *t, struct hnode *n)
{
	struct hnode **pp = &t->b[n->hash & (t->nb - 1)];

	while (*pp != n)
		pp = &(*pp)->next;
	*pp = n->next;
	t->n--;
}

/* The nodes with this hash: htab_first, then htab_next until NULL. */
static struct hnode *htab_next(struct hnode *n, uint64_t hash)
{
	while (n && n->hash != hash)
		n = n->next;
	return n;
}

static struct hnode *htab_first(const struct htab *t, uint64_t hash)
{
	return htab_next(t->b[hash & (t->nb - 1)], hash);
}

static uint64_t hash_str(uint64_t h, const char *s)
{
	/* FNV-1a: names are short; distribution is all we need. */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static uint64_t mix(uint64_t v)
{
	/* splitmix64's finaliser: neighbouring refs and ids spread out. */
	v = (v ^ (v >> 30)) * 0xbf58476d1ce4e5b9ull;
	v = (v ^ (v >> 27)) * 0x94d049bb133111ebull;
	return v ^ (v >> 31);
}

#define FNV_BASIS 14695981039346656037ull

/* ---- records ---- */

struct reg_member;

struct reg_room {
	struct hnode by_name, by_ref;
	struct reg_room *prev, *next; /* in reg->live or reg->dormant */
	struct reg_member *members;   /* this room's members */
	size_t topic_cap;             /* bytes allocated for info.topic */
	struct room_info info;        /* last, its topic cut to topic_cap:
				       * tens of thousands of dormant rooms
				       * mostly have none. Read it with
				       * room_copy(); info.members is current. */
};

/* A room record with room for a topic of len bytes. */
static struct reg_room *room_alloc(size_t len)
{
	size_t cap = len + 1 < 16 ? 16 : len + 1;
	struct reg_room *r = calloc(1, offsetof(struct reg_room, info.topic) + cap);

	if (r)
		r->topic_cap = cap;
	return r;
}

static void room_copy(struct room_info *out, const struct reg_room *r)
{
	memcpy(out, &r->info, offsetof(struct room_info, topic));
	memcpy(out->topic, r->info.topic, strlen(r->info.topic) + 1);
}

struct room_list {
	struct reg_room *head, *tail;
	long n;
};

struct reg_holder;

/* A name in use, and the connections holding it (one, unless name_scope
 * is room). */
struct reg_name {
	struct hnode node;
	char name[CONFIG_NAME_MAX + 1];
	long nholders;
	struct reg_holder *holders;
};

/* One connection's hold on a name: as many refs as memberships under it. */
struct reg_holder {
	struct hnode node;
	struct reg_name *name;
	uint64_t conn_id;
	int fd;
	long refs;
	struct reg_holder *prev, *next; /* in name->holders */
};

struct reg_member {
	struct member_info info;
	struct hnode by_id, by_room_name;
	struct reg_member *prev, *next; /* in room->members */
	struct reg_room *room;
	struct reg_holder *holder;
};

struct registry {
	pthread_mutex_t lock; /* guards every field below and all records */
	const struct config *cfg;
	struct htab rooms_by_name, rooms_by_ref;
	struct room_list live, dormant;
	long max_ref;
	struct htab members_by_id, members_by_room_name;
	struct htab names, holders;
};

static uint64_t room_name_hash(const char *name) { return hash_str(FNV_BASIS, name); }
static uint64_t ref_hash(long ref) { return mix((uint64_t)ref); }
static uint64_t id_hash(long id) { return mix((uint64_t)id ^ 0x5555555555555555ull); }
static uint64_t member_name_hash(long ref, const char *name) { return hash_str(FNV_BASIS ^ mix((uint64_t)ref), name); }
static uint64_t name_hash(const char *name) { return hash_str(FNV_BASIS ^ 1, name); }
static uint64_t holder_hash(const char *name, uint64_t conn_id) { return hash_str(FNV_BASIS ^ mix(conn_id), name); }

struct registry *registry_create(const struct config *cfg)
{
	struct registry *reg = calloc(1, sizeof(*reg));

	if (!reg)
		return NULL;
	reg->cfg = cfg;
	if (htab_init(&reg->rooms_by_name) < 0 || htab_init(&reg->rooms_by_ref) < 0 ||
	    htab_init(&reg->members_by_id) < 0 || htab_init(&reg->members_by_room_name) < 0 ||
	    htab_init(&reg->names) < 0 || htab_init(&reg->holders) < 0 ||
	    pthread_mutex_init(&reg->lock, NULL) != 0) {
		free(reg->rooms_by_name.b);
		free(reg->rooms_by_ref.b);
		free(reg->members_by_id.b);
		free(reg->members_by_room_name.b);
		free(reg->names.b);
		free(reg->holders.b);
		free(reg);
		return NULL;
	}
	return reg;
}

static void free_rooms(struct room_list *l)
{
	struct reg_room *r = l->head, *next;

	for (; r; r = next) {
		struct reg_member *m = r->members, *mnext;
		for (; m; m = mnext) {
			mnext = m->next;
			free(m);
		}
		next = r->next;
		free(r);
	}
}

static void free_table_nodes(struct htab *t, size_t off)
{
	for (size_t i = 0; i < t->nb; i++) {
		struct hnode *n = t->b[i], *next;
		for (; n; n = next) {
			next = n->next;
			free((char *)n - off);
		}
	}
	free(t->b);
}

void registry_destroy(struct registry *reg)
{
	if (!reg)
		return;
	free_rooms(&reg->live);
	free_rooms(&reg->dormant);
	free_table_nodes(&reg->names, offsetof(struct reg_name, node));
	free_table_nodes(&reg->holders, offsetof(struct reg_holder, node));
	free(reg->rooms_by_name.b);
	free(reg->rooms_by_ref.b);
	free(reg->members_by_id.b);
	free(reg->members_by_room_name.b);
	pthread_mutex_destroy(&reg->lock);
	free(reg);
}

/* ---- rooms ---- */

static void list_append(struct room_list *l, struct reg_room *r)
{
	r->next = NULL;
	r->prev = l->tail;
	if (l->tail)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
	l->n++;
}

static void list_remove(struct room_list *l, struct reg_room *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		l->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		l->tail = r->prev;
	r->prev = r->next = NULL;
	l->n--;
}

static struct reg_room *find_name_locked(struct registry *reg, const char *name)
{
	uint64_t h = room_name_hash(name);

	for (struct hnode *n = htab_first(&reg->rooms_by_name, h); n; n = htab_next(n->next, h)) {
		struct reg_room *r = CONTAINER(n, struct reg_room, by_name);
		if (strcmp(r->info.name, name) == 0)
			return r;
	}
	return NULL;
}

static struct reg_room *find_ref_locked(struct registry *reg, long ref)
{
	uint64_t h = ref_hash(ref);

	for (struct hnode *n = htab_first(&reg->rooms_by_ref, h); n; n = htab_next(n->next, h)) {
		struct reg_room *r = CONTAINER(n, struct reg_room, by_ref);
		if (r->info.ref == ref)
			return r;
	}
	return NULL;
}

int registry_find_room(struct registry *reg, const char *name, struct room_info *out)
{
	struct reg_room *r;

	pthread_mutex_lock(&reg->lock);
	r = find_name_locked(reg, name);
	if (r)
		room_copy(out, r);
	pthread_mutex_unlock(&reg->lock);
	return r ? 0 : -ENOENT;
}

int registry_find_ref(struct registry *reg, long ref, struct room_info *out)
{
	struct reg_room *r;

	pthread_mutex_lock(&reg->lock);
	r = find_ref_locked(reg, ref);
	if (r)
		room_copy(out, r);
	pthread_mutex_unlock(&reg->lock);
	return r ? 0 : -ENOENT;
}

static long read_count(struct registry *reg, const long *field)
{
	long n;

	pthread_mutex_lock(&reg->lock);
	n = *field;
	pthread_mutex_unlock(&reg->lock);
	return n;
}

long registry_room_count(struct registry *reg)
{
	return read_count(reg, &reg->live.n);
}

long registry_dormant_count(struct registry *reg)
{
	return read_count(reg, &reg->dormant.n);
}

long registry_room_count_all(struct registry *reg)
{
	long n;

	pthread_mutex_lock(&reg->lock);
	n = reg->live.n + reg->dormant.n;
	pthread_mutex_unlock(&reg->lock);
	return n;
}

long registry_next_ref(struct registry *reg)
{
	return read_count(reg, &reg->max_ref) + 1;
}

void registry_reserve_refs(struct registry *reg, long ref)
{
	pthread_mutex_lock(&reg->lock);
	if (ref > reg->max_ref)
		reg->max_ref = ref;
	pthread_mutex_unlock(&reg->lock);
}

int registry_add_room(struct registry *reg, const struct room_info *info)
{
	struct reg_room *r = room_alloc(strnlen(info->topic, CONFIG_TOPIC_MAX));
	int rc = 0;

	if (!r)
		return -ENOMEM;
	pthread_mutex_lock(&reg->lock);
	if (find_name_locked(reg, info->name) || find_ref_locked(reg, info->ref))
		rc = -EEXIST;
	else if (info->room && reg->live.n >= reg->cfg->max_rooms)
		rc = -ENOSPC;
	if (rc == 0) {
		memcpy(&r->info, info, offsetof(struct room_info, topic));
		snprintf(r->info.topic, r->topic_cap, "%s", info->topic);
		r->info.members = 0;
		if (info->max_members <= 0)
			r->info.max_members = reg->cfg->max_members;
		if (info->history < 0)
			r->info.history = reg->cfg->history;
		if (info->topic_change < 0)
			r->info.topic_change = reg->cfg->topic_change;
		if (info->room) {
			r->info.dormant_since = 0;
			list_append(&reg->live, r);
		} else {
			if (!r->info.dormant_since)
				r->info.dormant_since = (int64_t)time(NULL);
			list_append(&reg->dormant, r);
		}
		htab_add(&reg->rooms_by_name, &r->by_name, room_name_hash(r->info.name));
		htab_add(&reg->rooms_by_ref, &r->by_ref, ref_hash(r->info.ref));
		if (info->ref > reg->max_ref)
			reg->max_ref = info->ref;
		r = NULL;
	}
	pthread_mutex_unlock(&reg->lock);
	free(r);
	return rc;
}

static int older(const struct reg_room *a, const struct reg_room *b)
{
	if (a->info.dormant_since != b->info.dormant_since)
		return a->info.dormant_since < b->info.dormant_since;
	return a->info.ref < b->info.ref;
}

/* Merge sort of a next-linked chain (prev links are rebuilt after). */
static struct reg_room *sort_chain(struct reg_room *head, long n)
{
	struct reg_room *a, *b, **tail, *out = NULL, *mid = head;

	if (n < 2)
		return head;
	for (long i = 1; i < n / 2; i++)
		mid = mid->next;
	b = mid->next;
	mid->next = NULL;
	a = sort_chain(head, n / 2);
	b = sort_chain(b, n - n / 2);
	tail = &out;
	while (a && b) {
		struct reg_room **pick = older(b, a) ? &b : &a;
		*tail = *pick;
		tail = &(*pick)->next;
		*pick = (*pick)->next;
	}
	*tail = a ? a : b;
	return out;
}

void registry_sort_dormant(struct registry *reg)
{
	struct reg_room *r, *prev = NULL;

	pthread_mutex_lock(&reg->lock);
	reg->dormant.head = sort_chain(reg->dormant.head, reg->dormant.n);
	for (r = reg->dormant.head; r; prev = r, r = r->next)
		r->prev = prev;
	reg->dormant.tail = prev;
	pthread_mutex_unlock(&reg->lock);
}

/* Put record n (room for a longer topic) in r's place everywhere. */
static void room_move_locked(struct registry *reg, struct reg_room *r, struct reg_room *n)
{
	struct room_list *l = r->info.room ? &reg->live : &reg->dormant;
	size_t cap = n->topic_cap;

	memcpy(&n->info, &r->info, offsetof(struct room_info, topic));
	n->members = r->members;
	for (struct reg_member *m = n->members; m; m = m->next)
		m->room = n;
	n->prev = r->prev;
	n->next = r->next;
	if (n->prev)
		n->prev->next = n;
	else
		l->head = n;
	if (n->next)
		n->next->prev = n;
	else
		l->tail = n;
	htab_del(&reg->rooms_by_name, &r->by_name);
	htab_del(&reg->rooms_by_ref, &r->by_ref);
	htab_add(&reg->rooms_by_name, &n->by_name, room_name_hash(n->info.name));
	htab_add(&reg->rooms_by_ref, &n->by_ref, ref_hash(n->info.ref));
	n->topic_cap = cap;
}

int registry_set_topic(struct registry *reg, long ref, const char *topic)
{
	size_t len = strnlen(topic, CONFIG_TOPIC_MAX);
	struct reg_room *r, *bigger = room_alloc(len), *old = NULL;
	int rc = 0;

	pthread_mutex_lock(&reg->lock);
	r = find_ref_locked(reg, ref);
	if (!r) {
		rc = -ENOENT;
	} else if (len + 1 > r->topic_cap && !bigger) {
		rc = -ENOMEM;
	} else {
		if (len + 1 > r->topic_cap) {
			room_move_locked(reg, r, bigger);
			old = r;
			r = bigger;
			bigger = NULL;
		}
		snprintf(r->info.topic, r->topic_cap, "%s", topic);
	}
	pthread_mutex_unlock(&reg->lock);
	free(bigger);
	free(old);
	return rc;
}

int registry_set_room(struct registry *reg, long ref, struct room *room, unsigned port)
{
	struct reg_room *r;
	int rc = 0;

	pthread_mutex_lock(&reg->lock);
	r = find_ref_locked(reg, ref);
	if (!r) {
		rc = -ENOENT;
	} else if (room && !r->info.room && reg->live.n >= reg->cfg->max_rooms) {
		rc = -ENOSPC;
	} else {
		if (room && !r->info.room) {
			list_remove(&reg->dormant, r);
			list_append(&reg->live, r);
			r->info.dormant_since = 0;
		} else if (!room && r->info.room) {
			list_remove(&reg->live, r);
			list_append(&reg->dormant, r);
			r->info.dormant_since = (int64_t)time(NULL);
		}
		r->info.room = room;
		r->info.port = port;
	}
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

void registry_mark_history(struct registry *reg, long ref)
{
	struct reg_room *r;

	pthread_mutex_lock(&reg->lock);
	r = find_ref_locked(reg, ref);
	if (r)
		r->info.history_seen = 1;
	pthread_mutex_unlock(&reg->lock);
}

/* Unlink and free a dormant room without members. */
static void forget_locked(struct registry *reg, struct reg_room *r)
{
	list_remove(&reg->dormant, r);
	htab_del(&reg->rooms_by_name, &r->by_name);
	htab_del(&reg->rooms_by_ref, &r->by_ref);
	free(r);
}

int registry_forget(struct registry *reg, long ref)
{
	struct reg_room *r;
	int rc = 0;

	pthread_mutex_lock(&reg->lock);
	r = find_ref_locked(reg, ref);
	if (!r)
		rc = -ENOENT;
	else if (r->info.room || r->info.members)
		rc = -EBUSY;
	else
		forget_locked(reg, r);
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

/* Is the oldest dormant room over a bound at time now? */
static int dormant_over_locked(const struct registry *reg, int64_t now)
{
	const struct reg_room *r = reg->dormant.head;
	long ttl = reg->cfg->dormant_room_ttl;

	if (!r)
		return 0;
	return reg->dormant.n > reg->cfg->max_dormant_rooms ||
	       (ttl > 0 && now - r->info.dormant_since > ttl);
}

long registry_trim_dormant(struct registry *reg, int64_t now,
			   void (*forgot)(const struct room_info *, void *), void *arg)
{
	/* In slices, so that the callbacks run without the lock and the
	 * lock is not held for a long eviction at once. */
	enum { SLICE = 64 };
	struct room_info gone[SLICE];
	long total = 0;
	size_t n;

	do {
		n = 0;
		pthread_mutex_lock(&reg->lock);
		while (n < SLICE && dormant_over_locked(reg, now)) {
			struct reg_room *r = reg->dormant.head;
			room_copy(&gone[n++], r);
			forget_locked(reg, r);
		}
		pthread_mutex_unlock(&reg->lock);
		for (size_t i = 0; forgot && i < n; i++)
			forgot(&gone[i], arg);
		total += (long)n;
	} while (n == SLICE);
	return total;
}

/* ---- members and names ---- */

static struct reg_member *member_by_id_locked(struct registry *reg, long id)
{
	uint64_t h = id_hash(id);

	for (struct hnode *n = htab_first(&reg->members_by_id, h); n; n = htab_next(n->next, h)) {
		struct reg_member *m = CONTAINER(n, struct reg_member, by_id);
		if (m->info.join_id == id)
			return m;
	}
	return NULL;
}

static struct reg_member *member_by_room_name_locked(struct registry *reg, long ref, const char *name)
{
	uint64_t h = member_name_hash(ref, name);

	for (struct hnode *n = htab_first(&reg->members_by_room_name, h); n; n = htab_next(n->next, h)) {
		struct reg_member *m = CONTAINER(n, struct reg_member, by_room_name);
		if (m->info.ref == ref && strcmp(m->info.name, name) == 0)
			return m;
	}
	return NULL;
}

static struct reg_name *name_locked(struct registry *reg, const char *name)
{
	uint64_t h = name_hash(name);

	for (struct hnode *n = htab_first(&reg->names, h); n; n = htab_next(n->next, h)) {
		struct reg_name *rn = CONTAINER(n, struct reg_name, node);
		if (strcmp(rn->name, name) == 0)
			return rn;
	}
	return NULL;
}

static struct reg_holder *holder_locked(struct registry *reg, const char *name, uint64_t conn_id)
{
	uint64_t h = holder_hash(name, conn_id);

	for (struct hnode *n = htab_first(&reg->holders, h); n; n = htab_next(n->next, h)) {
		struct reg_holder *hd = CONTAINER(n, struct reg_holder, node);
		if (hd->conn_id == conn_id && strcmp(hd->name->name, name) == 0)
			return hd;
	}
	return NULL;
}

/* Is name held by a connection other than conn_id? */
static int name_taken_locked(struct registry *reg, const char *name, uint64_t conn_id)
{
	struct reg_name *rn = name_locked(reg, name);

	return rn && (rn->nholders > 1 || rn->holders->conn_id != conn_id);
}

/* conn_id's hold on name, created with its name record when new (the two
 * allocations are passed in, so that nothing fails under the lock; the
 * caller frees what was not used). */
static struct reg_holder *hold_locked(struct registry *reg, const char *name, uint64_t conn_id, int fd,
				      struct reg_name **spare_name, struct reg_holder **spare_holder)
{
	struct reg_holder *hd = holder_locked(reg, name, conn_id);
	struct reg_name *rn;

	if (hd)
		return hd;
	rn = name_locked(reg, name);
	if (!rn) {
		rn = *spare_name;
		*spare_name = NULL;
		snprintf(rn->name, sizeof(rn->name), "%s", name);
		htab_add(&reg->names, &rn->node, name_hash(name));
	}
	hd = *spare_holder;
	*spare_holder = NULL;
	hd->name = rn;
	hd->conn_id = conn_id;
	hd->fd = fd;
	hd->next = rn->holders;
	if (rn->holders)
		rn->holders->prev = hd;
	rn->holders = hd;
	rn->nholders++;
	htab_add(&reg->holders, &hd->node, holder_hash(name, conn_id));
	return hd;
}

static void unhold_locked(struct registry *reg, struct reg_holder *hd)
{
	struct reg_name *rn = hd->name;

	if (--hd->refs > 0)
		return;
	htab_del(&reg->holders, &hd->node);
	if (hd->prev)
		hd->prev->next = hd->next;
	else
		rn->holders = hd->next;
	if (hd->next)
		hd->next->prev = hd->prev;
	free(hd);
	if (--rn->nholders == 0) {
		htab_del(&reg->names, &rn->node);
		free(rn);
	}
}

/* An unpredictable JOIN_ID: it is the capability to speak in the room. */
static long random_join_id(void)
{
	uint32_t v = 0;

	while (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
		; /* only EINTR is possible for 4 bytes once the pool is ready */
	return (long)(v & (uint32_t)PROTO_ID_MAX); /* a JOIN_ID of the wire */
}

static void link_member_locked(struct registry *reg, struct reg_member *m, struct reg_room *r)
{
	m->room = r;
	m->prev = NULL;
	m->next = r->members;
	if (r->members)
		r->members->prev = m;
	r->members = m;
	r->info.members++;
	htab_add(&reg->members_by_id, &m->by_id, id_hash(m->info.join_id));
	htab_add(&reg->members_by_room_name, &m->by_room_name, member_name_hash(m->info.ref, m->info.name));
}

enum proto_err registry_join(struct registry *reg, long ref, const char *name,
			     uint64_t conn_id, int fd, long *join_id)
{
	struct reg_member *m = calloc(1, sizeof(*m));
	struct reg_name *spare_name = calloc(1, sizeof(*spare_name));
	struct reg_holder *spare_holder = calloc(1, sizeof(*spare_holder));
	struct reg_room *r;
	enum proto_err err = PROTO_OK;
	long id;

	if (!m || !spare_name || !spare_holder) {
		free(m);
		free(spare_name);
		free(spare_holder);
		return PROTO_E_SERVER;
	}
	do {
		/* getrandom outside the lock: it is a system call. */
		id = random_join_id();
		pthread_mutex_lock(&reg->lock);
		if (id != 0 && !member_by_id_locked(reg, id))
			break;
		pthread_mutex_unlock(&reg->lock);
	} while (1);

	r = find_ref_locked(reg, ref);
	if (!r)
		err = PROTO_E_NO_ROOM;
	else if (member_by_room_name_locked(reg, ref, name) ||
		 (reg->cfg->name_scope == CONFIG_SCOPE_SERVER && name_taken_locked(reg, name, conn_id)))
		err = PROTO_E_NAME_IN_USE;
	else if (r->info.members >= r->info.max_members)
		err = PROTO_E_ROOM_FULL;
	if (err == PROTO_OK) {
		m->info.join_id = id;
		m->info.ref = ref;
		m->info.conn_id = conn_id;
		m->info.fd = fd;
		snprintf(m->info.name, sizeof(m->info.name), "%s", name);
		m->holder = hold_locked(reg, name, conn_id, fd, &spare_name, &spare_holder);
		m->holder->refs++;
		link_member_locked(reg, m, r);
		*join_id = id;
		m = NULL;
	}
	pthread_mutex_unlock(&reg->lock);
	free(m);
	free(spare_name);
	free(spare_holder);
	return err;
}

int registry_leave(struct registry *reg, long join_id)
{
	struct reg_member *m;

	pthread_mutex_lock(&reg->lock);
	m = member_by_id_locked(reg, join_id);
	if (m) {
		struct reg_room *r = m->room;
		htab_del(&reg->members_by_id, &m->by_id);
		htab_del(&reg->members_by_room_name, &m->by_room_name);
		if (m->prev)
			m->prev->next = m->next;
		else
			r->members = m->next;
		if (m->next)
			m->next->prev = m->prev;
		r->info.members--;
		unhold_locked(reg, m->holder);
	}
	pthread_mutex_unlock(&reg->lock);
	free(m);
	return m ? 0 : -ENOENT;
}

int registry_member(struct registry *reg, long join_id, struct member_info *out)
{
	struct reg_member *m;

	pthread_mutex_lock(&reg->lock);
	m = member_by_id_locked(reg, join_id);
	if (m)
		*out = m->info;
	pthread_mutex_unlock(&reg->lock);
	return m ? 0 : -ENOENT;
}

int registry_name_holder(struct registry *reg, const char *name, struct member_info *out)
{
	struct reg_name *rn;
	int rc = 0;

	pthread_mutex_lock(&reg->lock);
	rn = name_locked(reg, name);
	if (!rn) {
		rc = -ENOENT;
	} else if (rn->nholders > 1) {
		rc = -EEXIST;
	} else {
		memset(out, 0, sizeof(*out));
		out->conn_id = rn->holders->conn_id;
		out->fd = rn->holders->fd;
		snprintf(out->name, sizeof(out->name), "%s", rn->name);
	}
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

long registry_each_member(struct registry *reg, long ref,
			  void (*fn)(const struct member_info *, void *), void *arg)
{
	struct member_info *copy = NULL;
	struct reg_room *r;
	size_t n = 0;

	pthread_mutex_lock(&reg->lock);
	r = find_ref_locked(reg, ref);
	if (r) {
		copy = malloc((r->info.members ? (size_t)r->info.members : 1) * sizeof(*copy));
		for (struct reg_member *m = r->members; copy && m; m = m->next)
			copy[n++] = m->info;
	}
	pthread_mutex_unlock(&reg->lock);
	if (r && !copy)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		fn(&copy[i], arg);
	free(copy);
	return (long)n;
}

/* ---- listing ---- */

long registry_list_rooms(struct registry *reg, int dormant, long offset, long limit,
			 struct room_info *out, long *total)
{
	const struct room_list *l = dormant ? &reg->dormant : &reg->live;
	struct reg_room *r;
	long n = 0, i = 0;

	pthread_mutex_lock(&reg->lock);
	*total = l->n;
	for (r = offset < l->n ? l->head : NULL; r && i < offset; r = r->next)
		i++;
	for (; r && n < limit; r = r->next)
		room_copy(&out[n++], r);
	pthread_mutex_unlock(&reg->lock);
	return n;
}

long registry_each_room(struct registry *reg, void (*fn)(const struct room_info *, void *), void *arg)
{
	struct room_info *copy;
	size_t n = 0;

	pthread_mutex_lock(&reg->lock);
	copy = malloc((size_t)(reg->live.n + reg->dormant.n + 1) * sizeof(*copy));
	for (struct reg_room *r = reg->live.head; copy && r; r = r->next)
		room_copy(&copy[n++], r);
	for (struct reg_room *r = reg->dormant.head; copy && r; r = r->next)
		room_copy(&copy[n++], r);
	pthread_mutex_unlock(&reg->lock);
	if (!copy)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		fn(&copy[i], arg);
	free(copy);
	return (long)n;
}

void registry_set_config(struct registry *reg, const struct config *cfg)
{
	pthread_mutex_lock(&reg->lock);
	reg->cfg = cfg;
	pthread_mutex_unlock(&reg->lock);
}

int registry_set_room_conf(struct registry *reg, long ref, const struct room_info *conf)
{
	struct reg_room *r;

	pthread_mutex_lock(&reg->lock);
	r = find_ref_locked(reg, ref);
	if (r) {
		r->info.max_members = conf->max_members;
		r->info.history = conf->history;
		r->info.topic_change = conf->topic_change;
		r->info.on_demand = conf->on_demand;
	}
	pthread_mutex_unlock(&reg->lock);
	return r ? 0 : -ENOENT;
}

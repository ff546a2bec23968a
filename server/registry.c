/* registry.c - rooms and memberships, shared by the acceptor (which makes
 * every change) and the room threads (which read).
 *
 * reg->lock guards everything in struct registry and every room and member
 * record. It is held for one lookup or update, with no I/O and no calls out.
 * Members are indexed twice in chained hash tables: by JOIN_ID (requests)
 * and by (room ref, name) (the name-in-use check on join). */
#include "registry.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct reg_room {
	struct room_info info; /* info.members is kept current */
};

struct reg_member {
	struct member_info info;
	struct reg_member *next_by_id;
	struct reg_member *next_by_name;
};

struct registry {
	pthread_mutex_t lock; /* guards every field below and all records */
	const struct config *cfg;
	struct reg_room *rooms;   /* array, in creation order */
	size_t nrooms, rooms_cap;
	long nlive;               /* rooms with a thread */
	long max_ref;
	struct store *store;      /* set once before other threads start; read-only then */
	struct reg_member **by_id;   /* buckets */
	struct reg_member **by_name; /* buckets */
	size_t nbuckets;             /* a power of two */
	size_t nmembers;
};

static uint64_t hash_bytes(uint64_t h, const char *s)
{
	/* FNV-1a: names are short; distribution is all we need. */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static size_t bucket_of_id(const struct registry *reg, long id)
{
	return ((uint64_t)id * 11400714819323198485ull >> 32) & (reg->nbuckets - 1);
}

static size_t bucket_of_name(const struct registry *reg, long ref, const char *name)
{
	return hash_bytes(14695981039346656037ull ^ (uint64_t)ref, name) & (reg->nbuckets - 1);
}

struct registry *registry_create(const struct config *cfg)
{
	struct registry *reg = calloc(1, sizeof(*reg));

	if (!reg)
		return NULL;
	reg->cfg = cfg;
	reg->nbuckets = 256;
	reg->by_id = calloc(reg->nbuckets, sizeof(*reg->by_id));
	reg->by_name = calloc(reg->nbuckets, sizeof(*reg->by_name));
	if (!reg->by_id || !reg->by_name || pthread_mutex_init(&reg->lock, NULL) != 0) {
		free(reg->by_id);
		free(reg->by_name);
		free(reg);
		return NULL;
	}
	return reg;
}

void registry_destroy(struct registry *reg)
{
	if (!reg)
		return;
	for (size_t b = 0; b < reg->nbuckets; b++) {
		struct reg_member *m = reg->by_id[b], *next;
		for (; m; m = next) {
			next = m->next_by_id;
			free(m);
		}
	}
	free(reg->by_id);
	free(reg->by_name);
	free(reg->rooms);
	pthread_mutex_destroy(&reg->lock);
	free(reg);
}

static struct reg_room *find_name_locked(struct registry *reg, const char *name)
{
	for (size_t i = 0; i < reg->nrooms; i++)
		if (strcmp(reg->rooms[i].info.name, name) == 0)
			return &reg->rooms[i];
	return NULL;
}

static struct reg_room *find_ref_locked(struct registry *reg, long ref)
{
	for (size_t i = 0; i < reg->nrooms; i++)
		if (reg->rooms[i].info.ref == ref)
			return &reg->rooms[i];
	return NULL;
}

int registry_find_room(struct registry *reg, const char *name, struct room_info *out)
{
	struct reg_room *r;

	pthread_mutex_lock(&reg->lock);
	r = find_name_locked(reg, name);
	if (r)
		*out = r->info;
	pthread_mutex_unlock(&reg->lock);
	return r ? 0 : -ENOENT;
}

int registry_find_ref(struct registry *reg, long ref, struct room_info *out)
{
	struct reg_room *r;

	pthread_mutex_lock(&reg->lock);
	r = find_ref_locked(reg, ref);
	if (r)
		*out = r->info;
	pthread_mutex_unlock(&reg->lock);
	return r ? 0 : -ENOENT;
}

long registry_room_count(struct registry *reg)
{
	long n;

	pthread_mutex_lock(&reg->lock);
	n = reg->nlive;
	pthread_mutex_unlock(&reg->lock);
	return n;
}

long registry_room_count_all(struct registry *reg)
{
	long n;

	pthread_mutex_lock(&reg->lock);
	n = (long)reg->nrooms;
	pthread_mutex_unlock(&reg->lock);
	return n;
}

long registry_next_ref(struct registry *reg)
{
	long ref;

	pthread_mutex_lock(&reg->lock);
	ref = reg->max_ref + 1;
	pthread_mutex_unlock(&reg->lock);
	return ref;
}

int registry_add_room(struct registry *reg, const struct room_info *info)
{
	struct reg_room *r;
	int rc = 0;

	pthread_mutex_lock(&reg->lock);
	if (find_name_locked(reg, info->name) || find_ref_locked(reg, info->ref)) {
		rc = -EEXIST;
	} else if ((info->room && reg->nlive >= reg->cfg->max_rooms) || reg->nrooms >= REGISTRY_MAX_NAMES) {
		rc = -ENOSPC;
	} else if (reg->nrooms == reg->rooms_cap) {
		size_t ncap = reg->rooms_cap ? reg->rooms_cap * 2 : 16;
		struct reg_room *nr = realloc(reg->rooms, ncap * sizeof(*nr));
		if (!nr) {
			rc = -ENOMEM;
		} else {
			reg->rooms = nr;
			reg->rooms_cap = ncap;
		}
	}
	if (rc == 0) {
		r = &reg->rooms[reg->nrooms++];
		r->info = *info;
		r->info.members = 0;
		if (info->max_members <= 0)
			r->info.max_members = reg->cfg->max_members;
		if (info->history < 0)
			r->info.history = reg->cfg->history;
		if (info->topic_change < 0)
			r->info.topic_change = reg->cfg->topic_change;
		reg->nlive += info->room != NULL;
		if (info->ref > reg->max_ref)
			reg->max_ref = info->ref;
	}
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

int registry_set_topic(struct registry *reg, long ref, const char *topic)
{
	struct reg_room *r;

	pthread_mutex_lock(&reg->lock);
	r = find_ref_locked(reg, ref);
	if (r)
		snprintf(r->info.topic, sizeof(r->info.topic), "%s", topic);
	pthread_mutex_unlock(&reg->lock);
	return r ? 0 : -ENOENT;
}

int registry_set_room(struct registry *reg, long ref, struct room *room, unsigned port)
{
	struct reg_room *r;
	int rc = 0;

	pthread_mutex_lock(&reg->lock);
	r = find_ref_locked(reg, ref);
	if (!r) {
		rc = -ENOENT;
	} else if (room && !r->info.room && reg->nlive >= reg->cfg->max_rooms) {
		rc = -ENOSPC;
	} else {
		reg->nlive += (room != NULL) - (r->info.room != NULL);
		r->info.room = room;
		r->info.port = port;
	}
	pthread_mutex_unlock(&reg->lock);
	return rc;
}

static struct reg_member *member_by_id_locked(struct registry *reg, long id)
{
	struct reg_member *m = reg->by_id[bucket_of_id(reg, id)];

	while (m && m->info.join_id != id)
		m = m->next_by_id;
	return m;
}

static struct reg_member *member_by_name_locked(struct registry *reg, long ref, const char *name)
{
	struct reg_member *m = reg->by_name[bucket_of_name(reg, ref, name)];

	while (m && (m->info.ref != ref || strcmp(m->info.name, name) != 0))
		m = m->next_by_name;
	return m;
}

static void link_locked(struct registry *reg, struct reg_member *m)
{
	size_t bi = bucket_of_id(reg, m->info.join_id);
	size_t bn = bucket_of_name(reg, m->info.ref, m->info.name);

	m->next_by_id = reg->by_id[bi];
	reg->by_id[bi] = m;
	m->next_by_name = reg->by_name[bn];
	reg->by_name[bn] = m;
}

/* Keep chains short as members grow: rehash into twice the buckets. */
static int grow_locked(struct registry *reg)
{
	size_t old_n = reg->nbuckets;
	struct reg_member **old_id = reg->by_id;
	struct reg_member **nid = calloc(old_n * 2, sizeof(*nid));
	struct reg_member **nname = calloc(old_n * 2, sizeof(*nname));

	if (!nid || !nname) {
		free(nid);
		free(nname);
		return -ENOMEM;
	}
	free(reg->by_name);
	reg->by_id = nid;
	reg->by_name = nname;
	reg->nbuckets = old_n * 2;
	for (size_t b = 0; b < old_n; b++) {
		struct reg_member *m = old_id[b], *next;
		for (; m; m = next) {
			next = m->next_by_id;
			link_locked(reg, m);
		}
	}
	free(old_id);
	return 0;
}

/* An unpredictable JOIN_ID: it is the capability to speak in the room. */
static long random_join_id(void)
{
	uint32_t v = 0;

	while (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
		; /* only EINTR is possible for 4 bytes once the pool is ready */
	return (long)(v & 0x7fffffffu);
}

enum proto_err registry_join(struct registry *reg, long ref, const char *name,
			     uint64_t conn_id, int fd, long *join_id)
{
	struct reg_member *m = calloc(1, sizeof(*m));
	struct reg_room *r;
	enum proto_err err = PROTO_OK;
	long id;

	if (!m)
		return PROTO_E_SERVER;
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
	else if (member_by_name_locked(reg, ref, name))
		err = PROTO_E_NAME_IN_USE;
	else if (r->info.members >= r->info.max_members)
		err = PROTO_E_ROOM_FULL;
	else if (reg->nmembers >= reg->nbuckets && grow_locked(reg) < 0)
		err = PROTO_E_SERVER;
	if (err == PROTO_OK) {
		m->info.join_id = id;
		m->info.ref = ref;
		m->info.conn_id = conn_id;
		m->info.fd = fd;
		snprintf(m->info.name, sizeof(m->info.name), "%s", name);
		link_locked(reg, m);
		reg->nmembers++;
		r->info.members++;
		*join_id = id;
		m = NULL;
	}
	pthread_mutex_unlock(&reg->lock);
	free(m);
	return err;
}

static void unlink_locked(struct registry *reg, struct reg_member *m)
{
	struct reg_member **pp = &reg->by_id[bucket_of_id(reg, m->info.join_id)];

	while (*pp != m)
		pp = &(*pp)->next_by_id;
	*pp = m->next_by_id;
	pp = &reg->by_name[bucket_of_name(reg, m->info.ref, m->info.name)];
	while (*pp != m)
		pp = &(*pp)->next_by_name;
	*pp = m->next_by_name;
}

int registry_leave(struct registry *reg, long join_id)
{
	struct reg_member *m;
	struct reg_room *r;
	int rc;

	pthread_mutex_lock(&reg->lock);
	m = member_by_id_locked(reg, join_id);
	if (m) {
		unlink_locked(reg, m);
		reg->nmembers--;
		r = find_ref_locked(reg, m->info.ref);
		if (r)
			r->info.members--;
	}
	pthread_mutex_unlock(&reg->lock);
	rc = m ? 0 : -ENOENT;
	free(m);
	return rc;
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

long registry_each_member(struct registry *reg, long ref, const char *name,
			  void (*fn)(const struct member_info *, void *), void *arg)
{
	struct member_info *copy;
	size_t n = 0;

	pthread_mutex_lock(&reg->lock);
	copy = malloc((reg->nmembers ? reg->nmembers : 1) * sizeof(*copy));
	for (size_t b = 0; copy && b < reg->nbuckets; b++)
		for (struct reg_member *m = reg->by_id[b]; m; m = m->next_by_id)
			if ((!ref || m->info.ref == ref) && (!name || strcmp(m->info.name, name) == 0))
				copy[n++] = m->info;
	pthread_mutex_unlock(&reg->lock);
	if (!copy)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		fn(&copy[i], arg);
	free(copy);
	return (long)n;
}

long registry_each_room(struct registry *reg, void (*fn)(const struct room_info *, void *), void *arg)
{
	struct room_info *copy;
	size_t n;

	pthread_mutex_lock(&reg->lock);
	n = reg->nrooms;
	copy = malloc((n ? n : 1) * sizeof(*copy));
	if (copy)
		for (size_t i = 0; i < n; i++)
			copy[i] = reg->rooms[i].info;
	pthread_mutex_unlock(&reg->lock);
	if (!copy)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		fn(&copy[i], arg);
	free(copy);
	return (long)n;
}

void registry_set_store(struct registry *reg, struct store *store)
{
	reg->store = store;
}

struct store *registry_store(const struct registry *reg)
{
	return reg->store;
}

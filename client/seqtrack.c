/* seqtrack.c - per-room sequence numbers seen (see seqtrack.h). */
#include "seqtrack.h"

#include <pthread.h>
#include <string.h>

struct tracked {
	long ref;        /* 0: a free slot */
	long last;       /* the newest number seen or seeded */
	long covered;    /* the newest a history or a refill printed */
	long first_live; /* the first printed live since the reset */
	int refilling;   /* a GAP notice came: live messages are held */
	long held;       /* the newest live number held meanwhile */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct tracked rooms[SEQTRACK_ROOMS];

/* Room ref's slot, taking a free one when create (lock held); NULL when
 * not tracked. */
static struct tracked *slot(long ref, int create)
{
	struct tracked *free_slot = NULL;

	for (size_t i = 0; i < SEQTRACK_ROOMS; i++) {
		if (rooms[i].ref == ref)
			return &rooms[i];
		if (!free_slot && rooms[i].ref == 0)
			free_slot = &rooms[i];
	}
	if (create && free_slot)
		free_slot->ref = ref;
	return create ? free_slot : NULL;
}

int seqtrack_live(long ref, long seq)
{
	struct tracked *t;
	int print = 1;

	pthread_mutex_lock(&lock);
	t = slot(ref, 1);
	if (t && t->refilling) {
		if (seq > t->held)
			t->held = seq;
		print = 0;
	} else if (t && seq <= t->covered) {
		print = 0; /* a history shown (or a refill) printed it already */
	} else if (t) {
		/* Not "seq <= last": the two readers (the control connection's,
		 * a room's) may take a room's messages out of order around its
		 * attach, the server sending each once, by one of them. */
		if (seq > t->last)
			t->last = seq;
		if (t->first_live == 0 || seq < t->first_live)
			t->first_live = seq;
	}
	pthread_mutex_unlock(&lock);
	return print;
}

void seqtrack_gap(long ref)
{
	struct tracked *t;

	pthread_mutex_lock(&lock);
	t = slot(ref, 1);
	if (t)
		t->refilling = 1;
	pthread_mutex_unlock(&lock);
}

int seqtrack_refill_next(long *ref, long *after)
{
	int found = 0;

	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < SEQTRACK_ROOMS && !found; i++) {
		if (rooms[i].ref != 0 && rooms[i].refilling) {
			*ref = rooms[i].ref;
			*after = rooms[i].last;
			found = 1;
		}
	}
	pthread_mutex_unlock(&lock);
	return found;
}

int seqtrack_refilled(long ref, long last, long newest)
{
	struct tracked *t;
	int again = 0;

	pthread_mutex_lock(&lock);
	t = slot(ref, 0);
	if (t) {
		if (last > t->last)
			t->last = last;
		if (last > t->covered)
			t->covered = last;
		again = last >= 0 && (t->held > t->last || newest > t->last);
		t->refilling = again;
		t->held = 0;
	}
	pthread_mutex_unlock(&lock);
	return again;
}

/* Everything of room ref up to seq counts as seen (a history shown), but
 * nothing was printed live. */
static void seed(long ref, long seq)
{
	struct tracked *t;

	pthread_mutex_lock(&lock);
	t = slot(ref, 1);
	if (t && seq > t->last)
		t->last = seq;
	if (t && seq > t->covered)
		t->covered = seq;
	pthread_mutex_unlock(&lock);
}

void seqtrack_seed_shown(long ref, long first, size_t n)
{
	if (n > 0 && first > 0)
		seed(ref, first + (long)n - 1);
}

void seqtrack_get(long ref, long *last, long *first_live)
{
	const struct tracked *t;

	pthread_mutex_lock(&lock);
	t = slot(ref, 0);
	*last = t ? t->last : 0;
	*first_live = t ? t->first_live : 0;
	pthread_mutex_unlock(&lock);
}

void seqtrack_reset(void)
{
	pthread_mutex_lock(&lock);
	memset(rooms, 0, sizeof(rooms));
	pthread_mutex_unlock(&lock);
}

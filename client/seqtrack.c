/* seqtrack.c - per-room sequence numbers seen (see seqtrack.h). */
#include "seqtrack.h"

#include <pthread.h>
#include <string.h>

struct tracked {
	long ref;        /* 0: a free slot */
	long last;       /* the newest number seen or seeded */
	long first_live; /* the first printed live since the reset */
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

void seqtrack_saw(long ref, long seq)
{
	struct tracked *t;

	pthread_mutex_lock(&lock);
	t = slot(ref, 1);
	if (t) {
		if (seq > t->last)
			t->last = seq;
		if (t->first_live == 0 || seq < t->first_live)
			t->first_live = seq;
	}
	pthread_mutex_unlock(&lock);
}

void seqtrack_seed(long ref, long seq)
{
	struct tracked *t;

	pthread_mutex_lock(&lock);
	t = slot(ref, 1);
	if (t && seq > t->last)
		t->last = seq;
	pthread_mutex_unlock(&lock);
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

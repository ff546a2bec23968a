/* catchup.c - find the missed history entries (pure code, see catchup.h). */
#include "catchup.h"

#include <string.h>

#include "proto.h"

static int same(const struct catchup_entry *a, const struct catchup_entry *b)
{
	return strcmp(a->name, b->name) == 0 && strcmp(a->text, b->text) == 0;
}

/* Our own join announcement: "NAME has joined this chatroom." from NAME. */
static int own_join(const struct catchup_entry *e, const char *own_name)
{
	size_t n = strlen(own_name);

	return strcmp(e->name, own_name) == 0 && strncmp(e->text, own_name, n) == 0 &&
	       strcmp(e->text + n, PROTO_JOINED_TEXT) == 0;
}

/* Nonzero when hist[..i] ends with the seen messages (as many of them as
 * the history reaches back for). */
static int seen_ends_at(const struct catchup_entry *hist, size_t i,
			const struct catchup_entry *seen, size_t nseen)
{
	for (size_t k = 0; k < nseen && k <= i; k++)
		if (!same(&hist[i - k], &seen[nseen - 1 - k]))
			return 0;
	return 1;
}

struct catchup_plan catchup_plan(const struct catchup_entry *hist, size_t n,
				 const struct catchup_entry *seen, size_t nseen,
				 const char *own_name)
{
	struct catchup_plan p = { .first = n, .end = n, .gap = 0 };

	for (size_t i = n; i > 0; i--) {
		if (own_join(&hist[i - 1], own_name)) {
			p.end = i - 1;
			break;
		}
	}
	p.first = p.end;
	if (nseen == 0)
		return p;
	for (size_t i = p.end; i > 0; i--) {
		if (seen_ends_at(hist, i - 1, seen, nseen)) {
			p.first = i;
			return p;
		}
	}
	p.first = 0;
	p.gap = 1;
	return p;
}

/* catchup.c - find the missed history entries (pure code, see catchup.h). */
#include "catchup.h"

#include <string.h>


static int same(const struct catchup_entry *a, const struct catchup_entry *b)
{
	return strcmp(a->name, b->name) == 0 && strcmp(a->text, b->text) == 0;
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
				 const struct catchup_entry *live, size_t nlive)
{
	struct catchup_plan p = { .first = 0, .end = n, .gap = 0 };

	/* The longest tail of the history that is the tail of the live ones. */
	for (size_t k = nlive < n ? nlive : n; k > 0; k--) {
		if (seen_ends_at(hist, n - 1, live + nlive - k, k)) {
			p.end = n - k;
			break;
		}
	}
	if (nseen == 0)
		return p;
	for (size_t i = p.end; i > 0; i--) {
		if (seen_ends_at(hist, i - 1, seen, nseen)) {
			p.first = i;
			return p;
		}
	}
	p.gap = 1;
	return p;
}

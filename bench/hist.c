/* hist.c - log-linear histogram: values below HIST_SUB are exact; above,
 * each power of two is split into HIST_SUB equal buckets. */
#include "hist.h"

static unsigned bucket_of(uint64_t v)
{
	unsigned msb, shift;

	if (v < HIST_SUB)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	shift = msb - HIST_SUB_BITS;
	/* v >> shift lies in [HIST_SUB, 2 * HIST_SUB). */
	return (shift + 1) * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
}

/* The upper bound of bucket b: a quantile never under-reports. */
static uint64_t bucket_top(unsigned b)
{
	unsigned shift;

	if (b < HIST_SUB)
		return b;
	shift = b / HIST_SUB - 1;
	return (((uint64_t)(b % HIST_SUB + HIST_SUB) + 1) << shift) - 1;
}

void hist_record(struct hist *h, uint64_t value)
{
	unsigned b = bucket_of(value);

	if (b >= HIST_BUCKETS)
		b = HIST_BUCKETS - 1;
	h->count[b]++;
	h->total++;
	if (value > h->max)
		h->max = value;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t want, seen = 0;

	if (h->total == 0)
		return 0;
	want = (uint64_t)(q * (double)h->total);
	if (want >= h->total)
		want = h->total - 1;
	for (unsigned b = 0; b < HIST_BUCKETS; b++) {
		seen += h->count[b];
		if (seen > want) {
			uint64_t top = bucket_top(b);
			return top < h->max ? top : h->max;
		}
	}
	return h->max;
}

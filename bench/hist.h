/* hist.h - a fixed-size latency histogram for roombench: constant time per
 * sample, no allocation while recording, percentiles within 1/64 (1.6%)
 * relative error. Owned by the one bench thread. */
#ifndef ROOMBENCH_HIST_H
#define ROOMBENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 6                    /* 64 sub-buckets per power of two */
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS ((64 - HIST_SUB_BITS) * HIST_SUB)

struct hist {
	uint64_t count[HIST_BUCKETS];
	uint64_t total, max;
};

void hist_record(struct hist *h, uint64_t value);
/* The value below which a fraction q (0..1) of the samples lie; 0 if empty. */
uint64_t hist_quantile(const struct hist *h, double q);

#endif

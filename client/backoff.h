/* backoff.h - how long roomc waits before each attempt to reconnect.
 *
 * Pure: any thread. Capped exponential back-off with jitter: the step
 * doubles from BACKOFF_FIRST_MS to BACKOFF_CAP_MS, and each wait is a random
 * point in the upper half of its step, so clients cut off together by a
 * daemon restart do not all come back in the same millisecond. */
#ifndef ROOMC_BACKOFF_H
#define ROOMC_BACKOFF_H

#define BACKOFF_FIRST_MS 500
#define BACKOFF_CAP_MS 30000

/* The step of attempt n (0 for the first): 500, 1000, 2000, ... 30000 ms. */
unsigned backoff_step_ms(unsigned attempt);

/* The wait before attempt n: step/2 + random % (step/2 + 1), so within
 * [step/2, step]. random is any value (rand(), a counter, ...). */
unsigned backoff_delay_ms(unsigned attempt, unsigned random);

#endif

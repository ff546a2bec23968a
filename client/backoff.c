/* backoff.c - the reconnect schedule (pure code, see backoff.h). */
#include "backoff.h"

unsigned backoff_step_ms(unsigned attempt)
{
	unsigned step = BACKOFF_FIRST_MS;

	for (unsigned i = 0; i < attempt && step < BACKOFF_CAP_MS; i++)
		step *= 2;
	return step < BACKOFF_CAP_MS ? step : BACKOFF_CAP_MS;
}

unsigned backoff_delay_ms(unsigned attempt, unsigned random)
{
	unsigned step = backoff_step_ms(attempt);

	return step / 2 + random % (step / 2 + 1);
}

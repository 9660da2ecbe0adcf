/*
 * base/rng — small deterministic random numbers (splitmix64 seeding a
 * xoshiro256** generator).  Same seed, same stream of dm_rng_u64 and
 * dm_rng_uniform values on every machine; dm_rng_normal uses libm's log, sin
 * and cos, whose results may differ in the last bit between libm builds.
 */
#ifndef DM_BASE_RNG_H
#define DM_BASE_RNG_H

#include <stdint.h>

struct dm_rng {
	uint64_t s[4];
	double spare;
	int has_spare;
};

void dm_rng_seed(struct dm_rng *r, uint64_t seed);
uint64_t dm_rng_u64(struct dm_rng *r);
/* Uniform in [0, 1). */
double dm_rng_uniform(struct dm_rng *r);
/* Standard normal (Box–Muller). */
double dm_rng_normal(struct dm_rng *r);

#endif

/* base/rng — see rng.h. */
#include "base/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

void dm_rng_seed(struct dm_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
	r->has_spare = 0;
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t dm_rng_u64(struct dm_rng *r)
{
	uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return res;
}

double dm_rng_uniform(struct dm_rng *r)
{
	return (double)(dm_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

double dm_rng_normal(struct dm_rng *r)
{
	double u, v, m;

	if (r->has_spare) {
		r->has_spare = 0;
		return r->spare;
	}
	u = 1.0 - dm_rng_uniform(r); /* (0, 1] */
	v = dm_rng_uniform(r);
	m = sqrt(-2.0 * log(u));
	r->spare = m * sin(6.283185307179586476925 * v);
	r->has_spare = 1;
	return m * cos(6.283185307179586476925 * v);
}

/*
 * base/half — scalar IEEE half (F16) and bfloat16 (BF16) conversions.
 * These are the reference conversions; kern/ has vectorised ones that must
 * agree with them bit for bit.
 */
#ifndef DM_BASE_HALF_H
#define DM_BASE_HALF_H

#include <stdint.h>
#include <string.h>

static inline uint32_t dm_f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static inline float dm_bits_f32(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

/* F16 → F32, exact for every input (subnormals, inf, NaN included). */
static inline float dm_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1F, man = h & 0x3FF;

	if (exp == 0x1F) /* inf / NaN */
		return dm_bits_f32(sign | 0x7F800000u | (man << 13));
	if (exp == 0) {
		if (man == 0)
			return dm_bits_f32(sign);
		/* subnormal: value = man * 2^-24 */
		float v = (float)man * (1.0f / 16777216.0f);
		return sign ? -v : v;
	}
	return dm_bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

/* F32 → F16 with round-to-nearest-even, overflow to inf, NaN kept NaN. */
static inline uint16_t dm_f32_to_f16(float f)
{
	uint32_t u = dm_f32_bits(f);
	uint32_t sign = (u >> 16) & 0x8000;
	uint32_t abs = u & 0x7FFFFFFF;

	if (abs > 0x7F800000u) /* NaN: keep a quiet NaN */
		return (uint16_t)(sign | 0x7E00 | ((abs >> 13) & 0x3FF));
	if (abs >= 0x477FF000u) /* rounds to >= 65520: inf */
		return (uint16_t)(sign | 0x7C00);
	if (abs < 0x38800000u) {
		/* result is subnormal or zero: round abs * 2^24 to an integer */
		uint32_t e = abs >> 23;
		if (e < 102) /* below half of the smallest subnormal */
			return (uint16_t)sign;
		uint32_t m = (abs & 0x7FFFFF) | 0x800000;
		uint32_t shift = 126 - e; /* 14..24 */
		uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
		if (rem > half || (rem == half && (q & 1)))
			q++;
		return (uint16_t)(sign | q);
	}
	/* normal: rebias exponent, round mantissa from 23 to 10 bits */
	uint32_t r = abs - 0x38000000u; /* exponent bias 127 -> 15 */
	uint32_t q = r >> 13, rem = r & 0x1FFF;
	if (rem > 0x1000 || (rem == 0x1000 && (q & 1)))
		q++;
	return (uint16_t)(sign | q);
}

static inline float dm_bf16_to_f32(uint16_t h)
{
	return dm_bits_f32((uint32_t)h << 16);
}

/* F32 → BF16 with round-to-nearest-even; NaN stays NaN. */
static inline uint16_t dm_f32_to_bf16(float f)
{
	uint32_t u = dm_f32_bits(f);
	if ((u & 0x7FFFFFFF) > 0x7F800000u)
		return (uint16_t)((u >> 16) | 0x40);
	return (uint16_t)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

#endif

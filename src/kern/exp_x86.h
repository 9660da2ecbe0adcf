/*
 * kern/exp_x86 — e^x on 8 float lanes (AVX2 + FMA), shared by the files
 * that are compiled for AVX2 or AVX-512 and work on 256-bit vectors
 * (ops_avx2.c, attn_avx2.c, attn_avx512.c).
 */
#ifndef DM_KERN_EXP_X86_H
#define DM_KERN_EXP_X86_H

#include <immintrin.h>

/* e^x on 8 lanes (test_kern_ops holds the softmax built on it within 4 ulp
 * of the exact result for normal results), the same method as ops_avx512.c's exp16: x = n·ln2 + r with n = round(x·log2
 * e) and |r| <= ln2/2 (ln2 as a float plus its remainder, each subtraction
 * one FMA), e^r by its Taylor series to r⁷, then ·2ⁿ as two exact
 * power-of-two factors 2^⌊n/2⌋·2^(n − ⌊n/2⌋) (each within the normal
 * exponents, so a result past the float range still overflows to inf and
 * one below it still rounds once into the denormals or to 0).  x is
 * clamped to [−104, 89] first; a NaN passes the clamps (the second operand
 * of vmaxps/vminps) and comes out NaN. */
static inline __m256 exp8(__m256 x)
{
	const __m256 ln2_hi = _mm256_set1_ps(0.693147182464599609375f); /* (float)ln 2 */
	const __m256 ln2_lo = _mm256_set1_ps(-1.904654323148236e-9f);   /* ln 2 − ln2_hi */
	x = _mm256_max_ps(_mm256_set1_ps(-104.0f), x);
	x = _mm256_min_ps(_mm256_set1_ps(89.0f), x);
	const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.4426950408889634f)),
					 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m256 r = _mm256_fnmadd_ps(n, ln2_hi, x);
	r = _mm256_fnmadd_ps(n, ln2_lo, r);
	__m256 p = _mm256_set1_ps(1.0f / 5040);
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
	const __m256i ni = _mm256_cvtps_epi32(n), n1 = _mm256_srai_epi32(ni, 1);
	const __m256i n2 = _mm256_sub_epi32(ni, n1), bias = _mm256_set1_epi32(127);
	const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
	const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
	return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

#endif

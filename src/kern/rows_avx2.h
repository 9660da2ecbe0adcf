/*
 * kern/rows_avx2 — helpers of the AVX2 kernels that put 8 weight rows
 * across one 256-bit vector (gemm_avx2.c's panels, gemv_avx2.c's 8-row
 * matvecs): 16 bytes of two rows into one vector, and a dword transpose
 * of 8 rows.  Only included by files compiled for AVX2.
 */
#ifndef DORMANT_KERN_ROWS_AVX2_H
#define DORMANT_KERN_ROWS_AVX2_H

#include <immintrin.h>
#include <stdint.h>

/* r[i] = [row i | row i + 4] (4 dwords each, i < 4); on return r[k] holds
 * dword k of rows 0..7 in order. */
static inline __attribute__((always_inline)) void kern_transpose8x4(__m256i r[4])
{
	__m256i t0 = _mm256_unpacklo_epi32(r[0], r[1]); /* 0.0 1.0 0.1 1.1 */
	__m256i t1 = _mm256_unpackhi_epi32(r[0], r[1]); /* 0.2 1.2 0.3 1.3 */
	__m256i t2 = _mm256_unpacklo_epi32(r[2], r[3]);
	__m256i t3 = _mm256_unpackhi_epi32(r[2], r[3]);
	r[0] = _mm256_unpacklo_epi64(t0, t2);
	r[1] = _mm256_unpackhi_epi64(t0, t2);
	r[2] = _mm256_unpacklo_epi64(t1, t3);
	r[3] = _mm256_unpackhi_epi64(t1, t3);
}

/* 16 bytes at lo in the low 128-bit lane, 16 at hi in the high one. */
static inline __attribute__((always_inline)) __m256i kern_load2x128(const uint8_t *lo, const uint8_t *hi)
{
	return _mm256_set_m128i(_mm_loadu_si128((const __m128i *)hi),
				_mm_loadu_si128((const __m128i *)lo));
}

#endif

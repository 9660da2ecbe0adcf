/*
 * bench/bw_avx2 — the memory bandwidth probe's inner loop in 256-bit loads
 * (compiled with AVX2; bench_bandwidth calls it only on CPUs that have it).
 */
#include "bench/bench.h"

#if defined(__x86_64__)
#include <immintrin.h>

/* 256-bit loads with four independent accumulators: the loop must be
 * limited by memory, not by the core (scalar 8-byte loads are not).  With
 * pf it prefetches as far ahead as the matvec kernels do (16 KiB); some
 * cores stream faster with their hardware prefetchers alone (Zen 4), so
 * the probe runs both ways and keeps the faster. */
static inline __attribute__((always_inline)) uint64_t
sum_avx2_body(const uint64_t *p, int64_t b, int64_t e, const bool pf)
{
	__m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
	for (int64_t i = b; i < e; i += 16) {
		if (pf) {
			__builtin_prefetch((const char *)(p + i) + 16384, 0, 2);
			__builtin_prefetch((const char *)(p + i) + 16384 + 64, 0, 2);
		}
		s0 = _mm256_add_epi64(s0, _mm256_load_si256((const __m256i *)(p + i)));
		s1 = _mm256_add_epi64(s1, _mm256_load_si256((const __m256i *)(p + i + 4)));
		s2 = _mm256_add_epi64(s2, _mm256_load_si256((const __m256i *)(p + i + 8)));
		s3 = _mm256_add_epi64(s3, _mm256_load_si256((const __m256i *)(p + i + 12)));
	}
	s0 = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
	return (uint64_t)_mm256_extract_epi64(s0, 0) ^ (uint64_t)_mm256_extract_epi64(s0, 3);
}

uint64_t bench_sum_avx2(const uint64_t *p, int64_t b, int64_t e, bool pf)
{
	return pf ? sum_avx2_body(p, b, e, true) : sum_avx2_body(p, b, e, false);
}
#endif

/*
 * kern/dot_avx2 — AVX2 + FMA + F16C dot products for every weight type
 * (the kernels are in dot_x86.h).  Int8 products use vpmaddubsw (u8·s8
 * pairs into int16) then vpmaddwd (pairs into int32, times the sub-block
 * scale for the K-quants).  Only called after kern_isa_supported(AVX2).
 */
#include "kern/kern_impl.h"

#if defined(__x86_64__)
#include "gguf/gguf.h"

#define SFX(name) name##_avx2
#define DOT_U8S8(u, s) _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
#define SCV(v) _mm256_set1_epi16((short)(v))
#define SCV2(lo, hi) _mm256_set_m128i(_mm_set1_epi16((short)(hi)), _mm_set1_epi16((short)(lo)))
#define DOT_SC(u, s, sc) _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), sc)

#include "kern/dot_x86.h"

void kern_simd_avx2(uint32_t type, struct kern_simd *s)
{
	simd_fill_avx2(type, s);
}
#else
void kern_simd_avx2(uint32_t type, struct kern_simd *s)
{
	(void)type;
	(void)s;
}
#endif

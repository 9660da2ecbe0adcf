/*
 * kern/dot_avx512 — AVX-512 (F/BW/VL/DQ + VNNI) dot products for every
 * weight type.  The shared kernels of dot_x86.h are compiled here with
 * vpdpbusd (u8·s8, four products per int32 lane, one instruction) and get
 * 32 vector registers, which the multi-column matmul kernels need to keep
 * eight columns of accumulators.  Only called after
 * kern_isa_supported(AVX512).
 */
#include "kern/kern_impl.h"

#if defined(__x86_64__)
#include "gguf/gguf.h"

#define SFX(name) name##_avx512
#define DOT_U8S8(u, s) _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
#define SCV(v) _mm256_set1_epi32(v)
#define SCV2(lo, hi) _mm256_set_m128i(_mm_set1_epi32(hi), _mm_set1_epi32(lo))
#define DOT_SC(u, s, sc) _mm256_mullo_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s), sc)

#include "kern/dot_x86.h"

void kern_simd_avx512(uint32_t type, struct kern_simd *s)
{
	simd_fill_avx512(type, s);
}
#else
void kern_simd_avx512(uint32_t type, struct kern_simd *s)
{
	(void)type;
	(void)s;
}
#endif

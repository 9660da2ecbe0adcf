/*
 * kern/gemv_avx512 — decode matvec kernels on AVX-512 (VBMI + VNNI) for the
 * types whose generic vec_dot cannot keep up with memory: two 32-element
 * blocks per 512-bit vector straight from one (masked) load of the weight
 * row, with the activation laid out once per call to match.  Only called
 * after kern_isa_supported(AVX512) and a VBMI check (kern_gemv_avx512).
 *
 * Q4_0: a pair of blocks (36 bytes: d, 16 nibble bytes, d, 16 nibble
 * bytes) is loaded as one vector; vpermb places block a's nibble bytes in
 * bytes 0-15 and 32-47 and block b's in 16-31 and 48-63, a per-word shift
 * by 0 or 4 and a mask make the codes, so the vector holds
 *
 *   a[0..15] | b[0..15] | a[16..31] | b[16..31]       (element indices)
 *
 * and the activation pair is packed in the same order.  vpermw lays the two
 * fp16 scales over the int32 lanes they cover.  Per pair of blocks and
 * int32 lane (4 products):
 *   isum = −8·Σ a (precomputed) + Σ q·a          exact, as in ref.c
 *   acc += isum · (d_w · d_a)
 * so results differ from the reference only in float rounding and order.
 */
#include "kern/kern_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#include "gguf/gguf.h"

/* Packed Q4_0 activation, per pair p of 32-element blocks (an odd last
 * block is paired with zeros):
 *   int8  codes[64]  element order above
 *   float d[16]      each int32 lane's block scale
 *   int32 corr[16]   −8 · Σ of the lane's 4 codes
 */
#define PAIR_BYTES 192

static size_t q4_0_act_bytes(int64_t n)
{
	return (size_t)((n / 32 + 1) / 2) * PAIR_BYTES;
}

static void q4_0_act_pack(const float *x, void *out, int64_t n)
{
	const int64_t nb = n / 32;
	kern_from_float_fn q8 = kern_act_quant_avx512(GGUF_TYPE_Q8_0);
	uint8_t *o = out;
	for (int64_t b = 0; b < nb; b += 2) {
		struct block_q8_0 blk[2];
		memset(blk, 0, sizeof blk);
		q8(x + b * 32, &blk[0], 32);
		if (b + 1 < nb)
			q8(x + (b + 1) * 32, &blk[1], 32);
		int8_t *codes = (int8_t *)o;
		float *d = (float *)(o + 64);
		for (int h = 0; h < 2; h++) { /* element halves */
			memcpy(codes + 32 * h, blk[0].qs + 16 * h, 16);
			memcpy(codes + 32 * h + 16, blk[1].qs + 16 * h, 16);
		}
		for (int l = 0; l < 16; l++)
			d[l] = _cvtsh_ss(blk[(l / 4) % 2].d);
		__m512i a = _mm512_loadu_si512((const void *)codes);
		__m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(1), a);
		_mm512_storeu_si512((void *)(o + 128), _mm512_sub_epi32(_mm512_setzero_si512(),
									_mm512_slli_epi32(s, 3)));
		o += PAIR_BYTES;
	}
}

/* vpermb is AVX512_VBMI, which the file's flags (AVX-512 F/BW/VL/DQ/VNNI)
 * do not include: kern_gemv_avx512 checks for it at run time. */
__attribute__((target("avx512vbmi"))) static float q4_0_dot(int64_t n, const void *w,
							     const void *act)
{
	/* output byte j ← input byte: a's qs at 2.., b's qs at 20.. */
	static const uint8_t perm_b[64] = {
		2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17,
		20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35,
		2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17,
		20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35,
	};
	/* word l (l < 16) ← the scale of int32 lane l: a's d is word 0, b's word 9 */
	static const uint16_t perm_d[32] = { 0, 0, 0, 0, 9, 9, 9, 9, 0, 0, 0, 0, 9, 9, 9, 9 };
	const __m512i pb = _mm512_loadu_si512((const void *)perm_b);
	const __m512i pd = _mm512_loadu_si512((const void *)perm_d);
	const __m512i shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
	const __m512i m4 = _mm512_set1_epi8(0x0F);
	const int64_t nb = n / 32;
	const uint8_t *x = w, *a = act;
	__m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
	int64_t b = 0;

#define Q4_0_PAIR(MASK, ACC)                                                             \
	{                                                                                \
		__m512i raw = _mm512_maskz_loadu_epi8(MASK, x + b * 18);                  \
		__m512i q = _mm512_and_si512(                                            \
			_mm512_srlv_epi16(_mm512_permutexvar_epi8(pb, raw), shift), m4); \
		__m512i isum = _mm512_dpbusd_epi32(_mm512_loadu_si512((const void *)(a + 128)), q, \
						   _mm512_loadu_si512((const void *)a)); \
		__m512 dw = _mm512_cvtph_ps(                                             \
			_mm512_castsi512_si256(_mm512_permutexvar_epi16(pd, raw)));      \
		ACC = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum),                          \
				      _mm512_mul_ps(dw, _mm512_loadu_ps((const void *)(a + 64))), \
				      ACC);                                              \
		a += PAIR_BYTES;                                                         \
		b += 2;                                                                  \
	}
	for (; b + 4 <= nb; ) {
		Q4_0_PAIR(((__mmask64)1 << 36) - 1, acc0)
		Q4_0_PAIR(((__mmask64)1 << 36) - 1, acc1)
	}
	if (b + 2 <= nb)
		Q4_0_PAIR(((__mmask64)1 << 36) - 1, acc0)
	if (b < nb) /* a lone last block: its pair partner reads as zeros */
		Q4_0_PAIR(((__mmask64)1 << 18) - 1, acc1)
#undef Q4_0_PAIR
	return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

static const struct kern_gemv gemv_q4_0 = { q4_0_act_bytes, q4_0_act_pack, q4_0_dot };

const struct kern_gemv *kern_gemv_avx512(uint32_t type)
{
	if (!__builtin_cpu_supports("avx512vbmi"))
		return NULL;
	switch (type) {
	case GGUF_TYPE_Q4_0:
		return &gemv_q4_0;
	default:
		return NULL;
	}
}
#else
const struct kern_gemv *kern_gemv_avx512(uint32_t type)
{
	(void)type;
	return NULL;
}
#endif

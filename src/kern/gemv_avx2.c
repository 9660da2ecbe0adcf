/*
 * kern/gemv_avx2 — decode matvec kernels on AVX2 (+FMA, F16C) for types
 * whose generic vec_dot (dot_x86.h) cannot keep up with memory, with the
 * activation laid out once per call.  Only called after
 * kern_isa_supported(AVX2).  Every kernel keeps ref.c's integer sums exact
 * and differs from it only in float rounding; test_kern checks each one
 * against the reference dot on every ISA.
 *
 * Q4_0.  The weight nibbles q are 0..15 and a weight is d_w·(q − 8), so a
 * block's product with a Q8_0 activation block (codes a, scale d_a) is
 *   d_w·d_a·(Σ q·a − 8·Σ a)
 * The activation is packed per block as its 32 codes in element order
 * (which is the order unpack_nib16 gives the nibbles: the low nibbles are
 * elements 0-15, the high ones 16-31), plus its scale as a float and −Σ a:
 * vpmaddubsw multiplies the unsigned nibbles by the signed codes directly
 * (|15·127·2| < 2^15: no saturation), vpmaddwd sums pairs into 8 int32
 * lanes, and −Σ a added to each lane makes the lanes sum to the exact
 * integer above.  No sign tricks and no fp16 conversion of the activation
 * scale per weight row; four blocks per step into four accumulators.
 */
#include "kern/kern_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#include "gguf/gguf.h"

/* Packed activation of n elements (nb = n / 32 blocks):
 *   int8  codes[nb][32]
 *   float d[nb]        the block's scale
 *   int32 neg_sum[nb]  −Σ of its codes */
static size_t q4_0_act_bytes(int64_t n)
{
	return (size_t)(n / 32) * (32 + 4 + 4);
}

static void q4_0_act_pack(const float *x, void *out, int64_t n)
{
	kern_from_float_fn q8 = kern_act_quant_avx2(GGUF_TYPE_Q8_0);
	const int64_t nb = n / 32;
	uint8_t *codes = out;
	float *d = (float *)(void *)(codes + (size_t)nb * 32);
	int32_t *neg = (int32_t *)(void *)(d + nb);

	for (int64_t b = 0; b < nb; b++) {
		struct block_q8_0 blk;
		int32_t s = 0;
		q8(x + b * 32, &blk, 32);
		memcpy(codes + b * 32, blk.qs, 32);
		for (int i = 0; i < 32; i++)
			s += blk.qs[i];
		d[b] = _cvtsh_ss(blk.d);
		neg[b] = -s;
	}
}

static inline __attribute__((always_inline)) __m256i nibbles(const uint8_t *p)
{
	const __m128i m4 = _mm_set1_epi8(0x0F);
	__m128i raw = _mm_loadu_si128((const __m128i *)p);
	return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), m4), _mm_and_si128(raw, m4));
}

/* One block's 8 int32 lanes, summing to Σ q·a − 8·Σ a. */
static inline __attribute__((always_inline)) __m256i q4_0_block(const struct block_q4_0 *x,
								const uint8_t *codes, int32_t neg)
{
	const __m256i ones = _mm256_set1_epi16(1);
	__m256i p = _mm256_maddubs_epi16(nibbles(x->qs), _mm256_loadu_si256((const __m256i *)codes));
	return _mm256_add_epi32(_mm256_madd_epi16(p, ones), _mm256_set1_epi32(neg));
}

static float q4_0_dot(int64_t n, const void *w, const void *act)
{
	const struct block_q4_0 *x = w;
	const int64_t nb = n / 32;
	const uint8_t *codes = act;
	const float *d = (const float *)(const void *)(codes + (size_t)nb * 32);
	const int32_t *neg = (const int32_t *)(const void *)(d + nb);
	__m256 acc[4] = { _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps() };
	int64_t b = 0;

	for (; b + 4 <= nb; b += 4) {
		kern_pf_stream(x + b, 4 * sizeof *x);
#pragma GCC unroll 4
		for (int k = 0; k < 4; k++) {
			__m256i s = q4_0_block(x + b + k, codes + (b + k) * 32, neg[b + k]);
			acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s),
						 _mm256_set1_ps(_cvtsh_ss(x[b + k].d) * d[b + k]), acc[k]);
		}
	}
	for (; b < nb; b++) {
		__m256i s = q4_0_block(x + b, codes + b * 32, neg[b]);
		acc[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(_cvtsh_ss(x[b].d) * d[b]), acc[0]);
	}
	__m256 t = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
	__m128 h = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
	h = _mm_add_ps(h, _mm_movehl_ps(h, h));
	h = _mm_add_ss(h, _mm_movehdup_ps(h));
	return _mm_cvtss_f32(h);
}

static const struct kern_gemv gemv_q4_0 = { q4_0_act_bytes, q4_0_act_pack, q4_0_dot };

const struct kern_gemv *kern_gemv_avx2(uint32_t type)
{
	return type == GGUF_TYPE_Q4_0 ? &gemv_q4_0 : NULL;
}
#else
const struct kern_gemv *kern_gemv_avx2(uint32_t type)
{
	(void)type;
	return NULL;
}
#endif

/*
 * kern/gemm_avx512 — the prefill matmul for Q4_0 and Q8_0 weights on
 * AVX-512 VNNI: a tile of up to 4 weight rows × 4 token columns, two
 * 32-element blocks per 512-bit vpdpbusd.  Only called after
 * kern_isa_supported(AVX512).
 *
 * Activations are quantized once per call into a split layout (struct
 * kern_pack, see kern_impl.h): the Q8_0 codes of a row contiguous and the
 * block scales already as floats, the block count padded to even with zero
 * blocks, so the inner loop has no fp16 conversion and no tail.  The codes
 * and scales are those of the reference Q8_0 quantizer, bit for bit.
 *
 * vpdpbusd multiplies unsigned by signed bytes:
 *   Q4_0  Σ (q − 8)·a = Σ q·a − 8·Σ a: the nibbles q are the unsigned
 *         operand and −8·Σ a (one vpdpbusd per column, shared by the rows)
 *         starts the accumulator;
 *   Q8_0  Σ w·a = Σ w·(a + 128) − 128·Σ w: the activations flipped to
 *         unsigned and −128·Σ w (one per row, shared by the columns) starts
 *         the accumulator.
 * Both are exact in int32, so each block's integer sum equals ref.c's; the
 * float results differ from the reference only in the order of additions.
 */
#include "kern/kern_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#include "base/half.h"
#include "gguf/gguf.h"

#define INLINE static inline __attribute__((always_inline))

void kern_pack_q8_0_avx512(const float *x, uint8_t *row, int64_t n)
{
	const int64_t nb = n / QK8_0, nbp = (nb + 1) & ~(int64_t)1;
	int8_t *qs = (int8_t *)row;
	float *d = (float *)(row + (size_t)nbp * QK8_0);
	kern_from_float_fn q8 = kern_act_quant_avx512(GGUF_TYPE_Q8_0);
	struct block_q8_0 b;

	for (int64_t i = 0; i < nb; i++) {
		q8(x + i * QK8_0, &b, QK8_0);
		memcpy(qs + i * QK8_0, b.qs, QK8_0);
		d[i] = dm_f16_to_f32(b.d);
	}
	if (nbp > nb) {
		memset(qs + nb * QK8_0, 0, QK8_0);
		d[nb] = 0;
	}
}

/* [a × 8, b × 8] */
INLINE __m512 scale_pair(float a, float b)
{
	return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1);
}

INLINE __m512 fp16_pair(uint16_t a, uint16_t b)
{
	return scale_pair(_cvtsh_ss(a), _cvtsh_ss(b));
}

/* Nibbles of two Q4_0 blocks → 64 unsigned bytes in element order. */
INLINE __m512i q4_0_pair(const struct block_q4_0 *x, bool two)
{
	const __m256i m4 = _mm256_set1_epi8(0x0F);
	__m128i a = _mm_loadu_si128((const __m128i *)x[0].qs);
	__m128i b = two ? _mm_loadu_si128((const __m128i *)x[1].qs) : _mm_setzero_si128();
	__m256i v = _mm256_set_m128i(b, a);
	__m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
	/* [a_lo b_lo | a_hi b_hi] → [a_lo a_hi | b_lo b_hi] */
	__m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
	return _mm512_shuffle_i64x2(w, w, _MM_SHUFFLE(3, 1, 2, 0));
}

INLINE __m512i q8_0_pair(const struct block_q8_0 *x, bool two)
{
	__m256i a = _mm256_loadu_si256((const __m256i *)x[0].qs);
	__m256i b = two ? _mm256_loadu_si256((const __m256i *)x[1].qs) : _mm256_setzero_si256();
	return _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
}

/* y[c·ys + r] = row r · column c for r < NR, c < NC.  FOUR: Q4_0, else Q8_0. */
INLINE void tile(int64_t n, const uint8_t *w, size_t w_row, const uint8_t *act, size_t a_row,
		 float *y, size_t ys, const int NR, const int NC, const bool FOUR)
{
	const int64_t nb = n / 32, nbp = (nb + 1) & ~(int64_t)1;
	__m512 acc[4][4];
	for (int r = 0; r < NR; r++)
		for (int c = 0; c < NC; c++)
			acc[r][c] = _mm512_setzero_ps();
	for (int64_t ib = 0; ib < nb; ib += 2) {
		const bool two = ib + 1 < nb;
		__m512i wv[4], wc[4];
		__m512 dw[4];
		for (int r = 0; r < NR; r++) {
			if (FOUR) {
				const struct block_q4_0 *x = (const struct block_q4_0 *)(w + r * w_row) + ib;
				wv[r] = q4_0_pair(x, two);
				dw[r] = fp16_pair(x[0].d, two ? x[1].d : 0);
			} else {
				const struct block_q8_0 *x = (const struct block_q8_0 *)(w + r * w_row) + ib;
				wv[r] = q8_0_pair(x, two);
				dw[r] = fp16_pair(x[0].d, two ? x[1].d : 0);
				wc[r] = _mm512_sub_epi32(_mm512_setzero_si512(),
							 _mm512_dpbusd_epi32(_mm512_setzero_si512(),
									     _mm512_set1_epi8((char)0x80), wv[r]));
			}
		}
		for (int c = 0; c < NC; c++) {
			const uint8_t *ac = act + c * a_row;
			__m512i av = _mm512_loadu_si512((const void *)(ac + ib * 32));
			const float *ad = (const float *)(ac + nbp * 32) + ib;
			__m512 da = scale_pair(ad[0], ad[1]);
			if (FOUR) {
				__m512i corr = _mm512_sub_epi32(
					_mm512_setzero_si512(),
					_mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(8), av));
				for (int r = 0; r < NR; r++) {
					__m512i s = _mm512_dpbusd_epi32(corr, wv[r], av);
					acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s),
								    _mm512_mul_ps(dw[r], da), acc[r][c]);
				}
			} else {
				__m512i au = _mm512_xor_si512(av, _mm512_set1_epi8((char)0x80));
				for (int r = 0; r < NR; r++) {
					__m512i s = _mm512_dpbusd_epi32(wc[r], au, wv[r]);
					acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s),
								    _mm512_mul_ps(dw[r], da), acc[r][c]);
				}
			}
		}
	}
	for (int r = 0; r < NR; r++)
		for (int c = 0; c < NC; c++)
			y[c * ys + r] = _mm512_reduce_add_ps(acc[r][c]);
}

#define TILE_SWITCH(FOUR)                                                                \
	switch ((nr - 1) * 4 + (nc - 1)) {                                               \
	case 0: tile(n, w, w_row, act, a_row, y, ys, 1, 1, FOUR); break;                 \
	case 1: tile(n, w, w_row, act, a_row, y, ys, 1, 2, FOUR); break;                 \
	case 2: tile(n, w, w_row, act, a_row, y, ys, 1, 3, FOUR); break;                 \
	case 3: tile(n, w, w_row, act, a_row, y, ys, 1, 4, FOUR); break;                 \
	case 4: tile(n, w, w_row, act, a_row, y, ys, 2, 1, FOUR); break;                 \
	case 5: tile(n, w, w_row, act, a_row, y, ys, 2, 2, FOUR); break;                 \
	case 6: tile(n, w, w_row, act, a_row, y, ys, 2, 3, FOUR); break;                 \
	case 7: tile(n, w, w_row, act, a_row, y, ys, 2, 4, FOUR); break;                 \
	case 8: tile(n, w, w_row, act, a_row, y, ys, 3, 1, FOUR); break;                 \
	case 9: tile(n, w, w_row, act, a_row, y, ys, 3, 2, FOUR); break;                 \
	case 10: tile(n, w, w_row, act, a_row, y, ys, 3, 3, FOUR); break;                \
	case 11: tile(n, w, w_row, act, a_row, y, ys, 3, 4, FOUR); break;                \
	case 12: tile(n, w, w_row, act, a_row, y, ys, 4, 1, FOUR); break;                \
	case 13: tile(n, w, w_row, act, a_row, y, ys, 4, 2, FOUR); break;                \
	case 14: tile(n, w, w_row, act, a_row, y, ys, 4, 3, FOUR); break;                \
	default: tile(n, w, w_row, act, a_row, y, ys, 4, 4, FOUR); break;                \
	}

static void gemm_q4_0_avx512(int64_t n, const void *wp, size_t w_row, int nr, const uint8_t *act,
			     size_t a_row, int nc, float *y, size_t ys)
{
	const uint8_t *w = wp;
	TILE_SWITCH(true)
}

static void gemm_q8_0_avx512(int64_t n, const void *wp, size_t w_row, int nr, const uint8_t *act,
			     size_t a_row, int nc, float *y, size_t ys)
{
	const uint8_t *w = wp;
	TILE_SWITCH(false)
}

kern_gemm_fn kern_gemm_avx512(uint32_t type)
{
	switch (type) {
	case GGUF_TYPE_Q4_0:
		return gemm_q4_0_avx512;
	case GGUF_TYPE_Q8_0:
		return gemm_q8_0_avx512;
	default:
		return NULL;
	}
}
#else
kern_gemm_fn kern_gemm_avx512(uint32_t type)
{
	(void)type;
	return NULL;
}
#endif

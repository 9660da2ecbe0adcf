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
 *
 * Q8_0.  The same layout (−Σ a unused); the weights are signed, so
 * vpmaddubsw takes |w| and a with w's sign (2·128·127 < 2^15).
 *
 * Q4_K, Q5_K, Q6_K.  The activation is quantized to Q8_K (scale d_a, codes
 * a with |a| <= 127) and laid out per 256-element block, 64-byte aligned,
 * in the order the weight codes come out of their loads (each kernel's
 * comment has the order).  32 unsigned weight codes (Q4_K 0..15, Q5_K
 * 0..31, Q6_K 0..63) meet 32 activation codes in one vpmaddubsw
 * (2·63·127 < 2^15), and a vpmaddwd against the sub-block scales as int16
 * words (vpshufb out of one register of the block's scales, a different
 * scale per 128-bit lane) sums word pairs into int32 lanes.  Per block the
 * 8 int32 lanes sum to
 *   Q4_K/Q5_K:  Σ_j sc_j·Σ_{i in j} q·a            sub-blocks j of 32
 *     and, by one 128-bit vpmaddwd of the 8 mins with the 8 sub-block sums
 *     of a, Σ_j m_j·Σ_{i in j} a
 *   Q6_K:       Σ_j sc_j·Σ_{i in j} q·a − 32·Σ_j sc_j·Σ_{i in j} a
 *                                                  sub-blocks j of 16
 * exactly ref.c's integers (sum and summ); then acc += lanes·(d·d_a) and,
 * for the mins, accm += lanes·(dmin·d_a), so results differ from ref.c's
 * only in float rounding and the order of the float additions.
 *
 * Shape: on the AVX2 machines this is for (first-generation EPYC), a
 * 256-bit instruction is two 128-bit µops, vpmaddubsw and vpmaddwd go to
 * one pipe and 16-bit shifts to one other, each 2 cycles per 256-bit
 * instruction: written plainly these kernels are bound by µop count well
 * below memory speed, so they spend µops sparingly (int16 adds before a
 * shared vpmaddwd, vpshufb tables instead of shifts, scale shuffle indices
 * from memory, the activation scale as a float).
 */
#include "kern/kern_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "gguf/gguf.h"
#include "kern/rows_avx2.h"

static inline __attribute__((always_inline)) int32_t ld32(const uint8_t *p)
{
	int32_t v;
	memcpy(&v, p, 4);
	return v;
}

static inline __attribute__((always_inline)) uint64_t ld16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}

static inline __attribute__((always_inline)) float hsum_ps(__m256 t)
{
	__m128 h = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
	h = _mm_add_ps(h, _mm_movehl_ps(h, h));
	h = _mm_add_ss(h, _mm_movehdup_ps(h));
	return _mm_cvtss_f32(h);
}

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
	__m256 acc[4] = { _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
			  _mm256_setzero_ps() };
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
	return hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
}

/* Eight rows at once, rows across the vector (lane i = row i): per block,
 * the rows' 16 code bytes are dword-transposed (kern_transpose8x4) so that
 * one vector holds the same 4 bytes of every row; its low nibbles are
 * elements 4k..4k+3 and its high nibbles 16 + 4k.., each multiplied by that
 * group's 4 activation codes broadcast to all rows.  The 8 vpmaddubsw
 * results of a block add up in int16 (8·2·15·127 = 30480 < 2^15) before
 * one vpmaddwd gives each row's Σ q·a, and 8·(−Σ a) completes
 * Σ (q − 8)·a: one vpmaddwd, one conversion and one multiply-add per 8
 * rows and block where q4_0_dot spends one each per row.  On cores with a
 * single 128-bit integer-multiply pipe that is what bounds decode. */
static void q4_0_dot8(int64_t n, const uint8_t *w, size_t w_row, const void *act, float *y)
{
	const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
	const int64_t nb = n / 32;
	const uint8_t *codes = act;
	const float *d = (const float *)(const void *)(codes + (size_t)nb * 32);
	const int32_t *neg = (const int32_t *)(const void *)(d + nb);
	const uint8_t *row[8];
	__m256 acc = _mm256_setzero_ps();

	for (int i = 0; i < 8; i++)
		row[i] = w + (size_t)i * w_row;
	for (int64_t b = 0; b < nb; b++) {
		const size_t off = (size_t)b * sizeof(struct block_q4_0);
		const uint8_t *a = codes + b * 32;
		__m256i r[4], s = _mm256_setzero_si256();
		__m128i dh;
		if ((b & 3) == 0)
#pragma GCC unroll 8
			for (int i = 0; i < 8; i++)
				kern_pf_stream(row[i] + off, 4 * sizeof(struct block_q4_0));
#pragma GCC unroll 4
		for (int i = 0; i < 4; i++)
			r[i] = kern_load2x128(row[i] + off + 2, row[i + 4] + off + 2);
		kern_transpose8x4(r);
#pragma GCC unroll 4
		for (int k = 0; k < 4; k++) {
			const __m256i lo = _mm256_and_si256(r[k], m4);
			const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(r[k], 4), m4);
			s = _mm256_add_epi16(s, _mm256_maddubs_epi16(lo, _mm256_set1_epi32(ld32(a + 4 * k))));
			s = _mm256_add_epi16(s, _mm256_maddubs_epi16(hi, _mm256_set1_epi32(ld32(a + 16 + 4 * k))));
		}
		const __m256i isum = _mm256_add_epi32(_mm256_madd_epi16(s, ones), _mm256_set1_epi32(8 * neg[b]));
		/* the rows' fp16 scales, put together in general registers (the
		 * vector pipes are the busy ones; stored as words and loaded as a
		 * vector they would stall on store forwarding) */
		const uint64_t d03 = ld16(row[0] + off) | ld16(row[1] + off) << 16 |
				     ld16(row[2] + off) << 32 | ld16(row[3] + off) << 48;
		const uint64_t d47 = ld16(row[4] + off) | ld16(row[5] + off) << 16 |
				     ld16(row[6] + off) << 32 | ld16(row[7] + off) << 48;
		dh = _mm_insert_epi64(_mm_cvtsi64_si128((long long)d03), (long long)d47, 1);
		const __m256 dw = _mm256_cvtph_ps(dh);
		acc = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(d[b])), dw, acc);
	}
	_mm256_storeu_ps(y, acc);
}

static const struct kern_gemv gemv_q4_0 = { q4_0_act_bytes, q4_0_act_pack, q4_0_dot, q4_0_dot8, 0, NULL };

/* Q8_0 on Q4_0's activation layout (its −Σ a unused): signed weights w
 * and codes a, so vpmaddubsw takes |w| and a with w's sign (vpsignb; a
 * zero w gives a zero product either way), 2·128·127 < 2^15; then as
 * Q4_0, with the activation scale already a float. */
static inline __attribute__((always_inline)) __m256i q8_0_block(const struct block_q8_0 *x,
								const uint8_t *codes)
{
	const __m256i w = _mm256_loadu_si256((const __m256i *)x->qs);
	const __m256i p = _mm256_maddubs_epi16(
		_mm256_sign_epi8(w, w), _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)codes), w));
	return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

static float q8_0_dot(int64_t n, const void *w, const void *act)
{
	const struct block_q8_0 *x = w;
	const int64_t nb = n / 32;
	const uint8_t *codes = act;
	const float *d = (const float *)(const void *)(codes + (size_t)nb * 32);
	__m256 acc[4] = { _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
			  _mm256_setzero_ps() };
	int64_t b = 0;

	for (; b + 4 <= nb; b += 4) {
		kern_pf_stream(x + b, 4 * sizeof *x);
#pragma GCC unroll 4
		for (int k = 0; k < 4; k++)
			acc[k] = _mm256_fmadd_ps(
				_mm256_cvtepi32_ps(q8_0_block(x + b + k, codes + (b + k) * 32)),
				_mm256_set1_ps(_cvtsh_ss(x[b + k].d) * d[b + k]), acc[k]);
	}
	for (; b < nb; b++)
		acc[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q8_0_block(x + b, codes + b * 32)),
					 _mm256_set1_ps(_cvtsh_ss(x[b].d) * d[b]), acc[0]);
	return hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
}

static const struct kern_gemv gemv_q8_0 = { q4_0_act_bytes, q4_0_act_pack, q8_0_dot, NULL, 0, NULL };

/* Q4_K, Q5_K, Q6_K: bytes of a packed activation per 256-element block
 * (the codes, the float scale and int16 sums; 64-byte aligned codes). */
#define KQ_ACT_BYTES 320

static size_t kq_act_bytes(int64_t n)
{
	return (size_t)(n / QK_K) * KQ_ACT_BYTES;
}

/* vpshufb indices putting one int16 word of each 128-bit lane into every
 * word of that lane, out of a register holding 8 scales as words: row g
 * (0..3) word 2g in the low lane and 2g + 1 in the high one (Q6_K's two
 * 16-element sub-blocks of a 32-code vector), row 4 + 2P + nib word
 * 4P + nib | 4P + 2 + nib (a Q4_K/Q5_K vector's two sub-blocks).  Loaded
 * from memory as vpshufb operands: built in registers they cost more than
 * the kernels' other work. */
#define W2(b) (b), (b) + 1, (b), (b) + 1, (b), (b) + 1, (b), (b) + 1
#define WLANE(b) W2(b), W2(b)
static const uint8_t word_bcast[8][32] __attribute__((aligned(32))) = {
	{ WLANE(0), WLANE(2) },	 { WLANE(4), WLANE(6) },   { WLANE(8), WLANE(10) },
	{ WLANE(12), WLANE(14) }, { WLANE(0), WLANE(4) },   { WLANE(2), WLANE(6) },
	{ WLANE(8), WLANE(12) },  { WLANE(10), WLANE(14) },
};
#undef WLANE
#undef W2

static inline __attribute__((always_inline)) __m256i bcast_idx(int row)
{
	return _mm256_load_si256((const __m256i *)word_bcast[row]);
}

/* Q4_K (five = false, 144-byte blocks: d, dmin, scales[12], qs[128]) or
 * Q5_K (176: the same header, qh[32], qs[128]).  Chunk c of qs (32 bytes)
 * holds sub-block 2c (elements 64c + l) in its low nibbles and 2c + 1
 * (64c + 32 + l) in its high ones.  A vector is loaded as bytes 16h..16h+15
 * of chunks 2P (low lane) and 2P + 1 (high lane), P, h = 0, 1: its low
 * nibbles are sub-blocks 4P | 4P + 2 and its high ones 4P + 1 | 4P + 3,
 * the same pair for h = 0 and 1.  So the two halves' vpmaddubsw words,
 * each at most 2·31·127, are added as int16 (at most 15748: exact) before
 * one vpmaddwd with the pair's scales: 4 vpmaddwd and 4 vpshufb per block
 * instead of 8 (the 128-bit inserts cost less than the µops saved).  The
 * activation codes are packed in that order (q45_act_pack).  Q5_K's bit 4 of element 64c + l is bit 2c
 * of qh[l] and of 64c + 32 + l bit 2c + 1: with qh[16h..] in the low lane
 * and qh[16h..] >> 2 in the high one, both lanes want bit 4P (low nibbles)
 * and 4P + 1 (high), moved to bit 4 by one 16-bit shift and a mask (a
 * byte's bits never cross into bit 4 of its neighbour). */

/* Packed Q4_K/Q5_K activation, per 256-element block (KQ_ACT_BYTES):
 *   int8  codes[256]  vector 4P + 2·nib + h (nib: low 0, high 1) is
 *                     elements 64·2P + 32·nib + 16h + (0..15), then
 *                     64·(2P + 1) + 32·nib + 16h + (0..15)
 *   float d           the Q8_K scale
 *   int16 bsum[8]     Σ of each 32 codes (sub-block j, natural order)
 *   zeros to 320 */
static void q45_act_pack(const float *x, void *out, int64_t n)
{
	kern_from_float_fn q8 = kern_act_quant_avx2(GGUF_TYPE_Q8_K);
	uint8_t *o = out;

	for (int64_t b = 0; b < n / QK_K; b++, o += KQ_ACT_BYTES) {
		struct block_q8_K blk;
		int16_t bsum[8];
		q8(x + b * QK_K, &blk, QK_K);
		for (int v = 0; v < 8; v++) {
			const int P = v / 4, nib = (v / 2) % 2, h = v % 2;
			memcpy(o + 32 * v, blk.qs + 128 * P + 32 * nib + 16 * h, 16);
			memcpy(o + 32 * v + 16, blk.qs + 128 * P + 64 + 32 * nib + 16 * h, 16);
		}
		for (int j = 0; j < 8; j++)
			bsum[j] = (int16_t)(blk.bsums[2 * j] + blk.bsums[2 * j + 1]);
		memcpy(o + QK_K, &blk.d, sizeof blk.d);
		memcpy(o + QK_K + 4, bsum, sizeof bsum);
		memset(o + QK_K + 20, 0, KQ_ACT_BYTES - QK_K - 20);
	}
}

static inline __attribute__((always_inline)) float q45_K_dot(int64_t n, const uint8_t *x,
							      const uint8_t *a, bool five)
{
	const __m256i m4 = _mm256_set1_epi8(0x0F), m10 = _mm256_set1_epi8(0x10);
	const size_t bb = five ? sizeof(struct block_q5_K) : sizeof(struct block_q4_K);
	const size_t qs = five ? offsetof(struct block_q5_K, qs) : offsetof(struct block_q4_K, qs);
	__m256 acc = _mm256_setzero_ps();
	__m128 accm = _mm_setzero_ps();

	for (int64_t b = 0; b < n / QK_K; b++, x += bb, a += KQ_ACT_BYTES) {
		uint32_t dd;
		uint64_t sc, mn;
		kern_pf_stream(x, bb);
		memcpy(&dd, x, 4);
		kern_k4_scales8(x + 4, &sc, &mn);
		/* the 8 scales as words, in both lanes */
		const __m256i scw =
			_mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc)));
		__m256i isum = _mm256_setzero_si256();
#pragma GCC unroll 2
		for (int P = 0; P < 2; P++) {
			__m256i plo = _mm256_setzero_si256(), phi = _mm256_setzero_si256();
#pragma GCC unroll 2
			for (int h = 0; h < 2; h++) {
				const uint8_t *q = x + qs + 64 * P + 16 * h;
				const __m256i raw = _mm256_loadu2_m128i((const __m128i *)(q + 32),
									(const __m128i *)q);
				__m256i lo = _mm256_and_si256(raw, m4);
				__m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
				if (five) {
					const __m128i q16 = _mm_loadu_si128((const __m128i *)(x + 16 + 16 * h));
					const __m256i qh = _mm256_inserti128_si256(_mm256_castsi128_si256(q16),
										   _mm_srli_epi16(q16, 2), 1);
					const __m256i hl = P ? qh : _mm256_slli_epi16(qh, 4);
					const __m256i hh = P ? _mm256_srli_epi16(qh, 1) : _mm256_slli_epi16(qh, 3);
					lo = _mm256_or_si256(lo, _mm256_and_si256(hl, m10));
					hi = _mm256_or_si256(hi, _mm256_and_si256(hh, m10));
				}
				const uint8_t *av = a + 128 * P + 32 * h;
				const __m256i alo = _mm256_load_si256((const __m256i *)av);
				const __m256i ahi = _mm256_load_si256((const __m256i *)(av + 64));
				plo = _mm256_add_epi16(plo, _mm256_maddubs_epi16(lo, alo));
				phi = _mm256_add_epi16(phi, _mm256_maddubs_epi16(hi, ahi));
			}
			const __m256i slo = _mm256_shuffle_epi8(scw, bcast_idx(4 + 2 * P));
			const __m256i shi = _mm256_shuffle_epi8(scw, bcast_idx(5 + 2 * P));
			isum = _mm256_add_epi32(isum, _mm256_madd_epi16(plo, slo));
			isum = _mm256_add_epi32(isum, _mm256_madd_epi16(phi, shi));
		}
		/* 4 lanes summing to Σ_j min_j · Σ a of sub-block j */
		const __m128i msum = _mm_madd_epi16(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mn)),
						    _mm_loadu_si128((const __m128i *)(a + QK_K + 4)));
		float da;
		memcpy(&da, a + QK_K, 4);
		/* [d·d_a, dmin·d_a] */
		const __m128 f = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)dd)), _mm_set1_ps(da));
		acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_broadcastss_ps(f), acc);
		accm = _mm_fmadd_ps(_mm_cvtepi32_ps(msum), _mm_shuffle_ps(f, f, 0x55), accm);
	}
	accm = _mm_add_ps(accm, _mm_movehl_ps(accm, accm));
	return hsum_ps(acc) - _mm_cvtss_f32(_mm_add_ss(accm, _mm_movehdup_ps(accm)));
}

static float q4_K_dot(int64_t n, const void *w, const void *act)
{
	return q45_K_dot(n, w, act, false);
}

static float q5_K_dot(int64_t n, const void *w, const void *act)
{
	return q45_K_dot(n, w, act, true);
}

/* Q6_K (210-byte blocks: ql[128], qh[64], int8 scales[16], d).  Half h
 * (128 elements) is four 32-element groups g: the low (g = 0, 1) or high
 * (g = 2, 3) nibbles of ql[64h + 32(g & 1) + l] with bits 2g, 2g + 1 of
 * qh[32h + l] on top, element 128h + 32g + l; a group's low 128-bit lane
 * is 16-element sub-block 8h + 2g, its high lane 8h + 2g + 1.  The high
 * bits of groups 0 and 1 come from a vpshufb table on qh's low nibble, of
 * group 3 on its high nibble (one shift instead of three), of group 2 by a
 * mask. */

/* Packed Q6_K activation, per 256-element block (KQ_ACT_BYTES):
 *   int8  codes[256]  natural element order (the Q8_K codes)
 *   float d           the Q8_K scale
 *   int16 bsum[16]    Σ of each 16 codes (the Q8_K bsums)
 *   zeros to 320 */
static void q6_K_act_pack(const float *x, void *out, int64_t n)
{
	kern_from_float_fn q8 = kern_act_quant_avx2(GGUF_TYPE_Q8_K);
	uint8_t *o = out;

	for (int64_t b = 0; b < n / QK_K; b++, o += KQ_ACT_BYTES) {
		struct block_q8_K blk;
		q8(x + b * QK_K, &blk, QK_K);
		memcpy(o, blk.qs, QK_K);
		memcpy(o + QK_K, &blk.d, sizeof blk.d);
		memcpy(o + QK_K + 4, blk.bsums, sizeof blk.bsums);
		memset(o + QK_K + 36, 0, KQ_ACT_BYTES - QK_K - 36);
	}
}

static float q6_K_dot(int64_t n, const void *w, const void *act)
{
	const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
	/* nibble v of qh → (v & 3) << 4 and (v >> 2) << 4 */
	const __m256i t01 = _mm256_setr_epi8(0, 16, 32, 48, 0, 16, 32, 48, 0, 16, 32, 48, 0, 16, 32, 48,
					     0, 16, 32, 48, 0, 16, 32, 48, 0, 16, 32, 48, 0, 16, 32, 48);
	const __m256i t23 = _mm256_setr_epi8(0, 0, 0, 0, 16, 16, 16, 16, 32, 32, 32, 32, 48, 48, 48, 48,
					     0, 0, 0, 0, 16, 16, 16, 16, 32, 32, 32, 32, 48, 48, 48, 48);
	const uint8_t *x = w, *a = act;
	__m256 acc = _mm256_setzero_ps();

	for (int64_t b = 0; b < n / QK_K; b++, x += sizeof(struct block_q6_K), a += KQ_ACT_BYTES) {
		kern_pf_stream(x, sizeof(struct block_q6_K));
		/* the 16 scales as words; each half's 8 in both lanes */
		const __m256i sc16 = _mm256_cvtepi8_epi16(
			_mm_loadu_si128((const __m128i *)(x + offsetof(struct block_q6_K, scales))));
		__m256i isum = _mm256_setzero_si256();
#pragma GCC unroll 2
		for (int h = 0; h < 2; h++) {
			const __m256i sw = h ? _mm256_permute4x64_epi64(sc16, 0xEE)
					     : _mm256_permute4x64_epi64(sc16, 0x44);
			const __m256i l0 = _mm256_loadu_si256((const __m256i *)(x + 64 * h));
			const __m256i l1 = _mm256_loadu_si256((const __m256i *)(x + 64 * h + 32));
			const __m256i hb = _mm256_loadu_si256((const __m256i *)(x + 128 + 32 * h));
			const __m256i hl = _mm256_and_si256(hb, m4);
			const __m256i hh = _mm256_and_si256(_mm256_srli_epi16(hb, 4), m4);
			__m256i q[4];
			q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_shuffle_epi8(t01, hl));
			q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_shuffle_epi8(t23, hl));
			q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
					       _mm256_and_si256(hb, m30));
			q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
					       _mm256_shuffle_epi8(t23, hh));
#pragma GCC unroll 4
			for (int g = 0; g < 4; g++) {
				const __m256i p = _mm256_maddubs_epi16(
					q[g], _mm256_load_si256((const __m256i *)(a + 128 * h + 32 * g)));
				const __m256i sv = _mm256_shuffle_epi8(sw, bcast_idx(g));
				isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, sv));
			}
		}
		/* − 32 · Σ_j scale_j · bsum_j */
		const __m256i bsum = _mm256_loadu_si256((const __m256i *)(a + QK_K + 4));
		const __m256i corr = _mm256_madd_epi16(sc16, bsum);
		isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(corr, 5));
		uint16_t dh;
		float da;
		memcpy(&dh, x + offsetof(struct block_q6_K, d), 2);
		memcpy(&da, a + QK_K, 4);
		acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(_cvtsh_ss(dh) * da), acc);
	}
	return hsum_ps(acc);
}

static const struct kern_gemv gemv_q4_K = { kq_act_bytes, q45_act_pack, q4_K_dot, NULL, 0, NULL };
static const struct kern_gemv gemv_q5_K = { kq_act_bytes, q45_act_pack, q5_K_dot, NULL, 0, NULL };
static const struct kern_gemv gemv_q6_K = { kq_act_bytes, q6_K_act_pack, q6_K_dot, NULL, 0, NULL };

const struct kern_gemv *kern_gemv_avx2(uint32_t type)
{
	switch (type) {
	case GGUF_TYPE_Q4_0:
		return &gemv_q4_0;
	case GGUF_TYPE_Q8_0:
		return &gemv_q8_0;
	case GGUF_TYPE_Q4_K:
		return &gemv_q4_K;
	case GGUF_TYPE_Q5_K:
		return &gemv_q5_K;
	case GGUF_TYPE_Q6_K:
		return &gemv_q6_K;
	default:
		return NULL;
	}
}
#else
const struct kern_gemv *kern_gemv_avx2(uint32_t type)
{
	(void)type;
	return NULL;
}
#endif

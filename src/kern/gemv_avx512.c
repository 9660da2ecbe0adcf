/*
 * kern/gemv_avx512 — decode matvec kernels on AVX-512 for the types whose
 * generic vec_dot cannot keep up with memory: whole 64-byte loads of the
 * weight row, with the activation laid out once per call to match the
 * order the codes come out in.  Only called after
 * kern_isa_supported(AVX512) (and a VBMI check for Q4_0:
 * kern_gemv_avx512).  Every kernel keeps ref.c's integer sums exact (F16:
 * its products exact, below) and differs from it only in float rounding;
 * test_kern checks each one against the reference dot.
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
#include <float.h>
#include <math.h>
#include <string.h>

#include "gguf/gguf.h"

/* Packed activation for a pair of 32-element blocks (an odd last block is
 * paired with zeros), Q4_0's and Q8_0's:
 *   int8  codes[64]  Q4_0: a[0..15] b[0..15] a[16..31] b[16..31] (above);
 *                    Q8_0: a[0..31] b[0..31]
 *   float d[16]      each int32 lane's block scale
 *   int32 corr[16]   −offset · Σ of the lane's 4 codes (offset 8 for
 *                    Q4_0's codes, 128 for Q8_0's signed values read as
 *                    unsigned codes w + 128)
 */
#define PAIR_BYTES 192

static size_t pair_bytes(int64_t n)
{
	return (size_t)((n / 32 + 1) / 2) * PAIR_BYTES;
}

/* halves: Q4_0's code order (else Q8_0's); the offset is 1 << shift. */
static void pair_pack(const float *x, void *out, int64_t n, bool halves, int shift)
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
		if (halves) {
			for (int h = 0; h < 2; h++) { /* element halves */
				memcpy(codes + 32 * h, blk[0].qs + 16 * h, 16);
				memcpy(codes + 32 * h + 16, blk[1].qs + 16 * h, 16);
			}
			for (int l = 0; l < 16; l++)
				d[l] = _cvtsh_ss(blk[(l / 4) % 2].d);
		} else {
			memcpy(codes, blk[0].qs, 32);
			memcpy(codes + 32, blk[1].qs, 32);
			for (int l = 0; l < 16; l++)
				d[l] = _cvtsh_ss(blk[l / 8].d);
		}
		__m512i a = _mm512_loadu_si512((const void *)codes);
		__m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(1), a);
		_mm512_storeu_si512((void *)(o + 128), _mm512_sub_epi32(_mm512_setzero_si512(),
									_mm512_sll_epi32(s, _mm_cvtsi32_si128(shift))));
		o += PAIR_BYTES;
	}
}

/* vpermb is AVX512_VBMI, which the file's flags (AVX-512 F/BW/VL/DQ/VNNI)
 * do not include: kern_gemv_avx512 checks for it at run time. */
__attribute__((target("avx512vbmi"))) static float q4_0_pair_dot(int64_t n, const void *w,
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

/* Rows of a multiple of 16 blocks (n % 512 == 0, every model shape) go 16
 * blocks (288 bytes) at a time, with the scale work done once per 16:
 *   T_k (k = 0..3): one vpermt2b gathers the 16 nibble bytes of blocks
 *        4k..4k+3 into the four 128-bit lanes; low and high nibbles
 *        against the activation codes packed to match (two vpdpbusd);
 *   a 4 × 4 transpose-add reduces T_0..T_3 to one int32 per block, lane
 *        4L + k holding block 4k + L, plus −8·Σ a of the block (packed);
 *   two vpermt2w pick the 16 fp16 scales out of two 128-byte spans.
 * ~2× the pair kernel's throughput per core. */
#define GROUP_BYTES 640 /* codes 8 × 64, int32 corr[16], float d[16] */

static size_t q4_0_act_bytes(int64_t n)
{
	return n % 512 ? pair_bytes(n) : (size_t)(n / 512) * GROUP_BYTES;
}

static void q4_0_act_pack(const float *x, void *out, int64_t n)
{
	kern_from_float_fn q8 = kern_act_quant_avx512(GGUF_TYPE_Q8_0);
	uint8_t *o = out;
	if (n % 512) {
		pair_pack(x, out, n, true, 3); /* Q4_0's element halves, −8·Σ a */
		return;
	}
	for (int64_t g = 0; g < n / 512; g++, o += GROUP_BYTES) {
		int32_t corr[16];
		float d[16];
		for (int b = 0; b < 16; b++) {
			const int k = b / 4, L = b % 4;
			struct block_q8_0 blk;
			q8(x + g * 512 + b * 32, &blk, 32);
			memcpy(o + 128 * k + 16 * L, blk.qs, 16);
			memcpy(o + 128 * k + 64 + 16 * L, blk.qs + 16, 16);
			int sum = 0;
			for (int i = 0; i < 32; i++)
				sum += blk.qs[i];
			corr[4 * L + k] = -8 * sum;
			d[4 * L + k] = _cvtsh_ss(blk.d);
		}
		memcpy(o + 512, corr, sizeof corr);
		memcpy(o + 576, d, sizeof d);
	}
}

__attribute__((target("avx512vbmi"))) static float q4_0_dot(int64_t n, const void *w,
							     const void *act)
{
	/* byte 16L + i ← byte 18L + 2 + i of the 72 (+ 56) loaded: block L's qs */
	static const uint8_t idx_q[64] = {
		2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17,
		20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35,
		38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53,
		56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71,
	};
	/* word 4L + k ← the d of block 4k + L (word 9·(b mod 8) of its span) */
	static const uint16_t idx_d[32] = { 0,  36, 0,  36, 9,  45, 9,  45,
					    18, 54, 18, 54, 27, 63, 27, 63 };
	const __mmask32 upper = 0xCCCC; /* lanes whose block is 8..15 */
	const __m512i iq = _mm512_loadu_si512((const void *)idx_q);
	const __m512i id = _mm512_loadu_si512((const void *)idx_d);
	const __m512i m4 = _mm512_set1_epi8(0x0F);
	const uint8_t *x = w, *a = act;
	__m512 acc = _mm512_setzero_ps();

	if (n % 512)
		return q4_0_pair_dot(n, w, act);
	for (int64_t g = 0; g < n / 512; g++, x += 288, a += GROUP_BYTES) {
		__m512i T[4];
		kern_pf_stream(x, 288);
#pragma GCC unroll 4
		for (int k = 0; k < 4; k++) {
			/* 72 bytes: 64 + the 8 past them (masked: never past the row) */
			__m512i v = _mm512_permutex2var_epi8(
				_mm512_loadu_si512((const void *)(x + 72 * k)), iq,
				_mm512_maskz_loadu_epi8(0xFF, x + 72 * k + 64));
			__m512i lo = _mm512_and_si512(v, m4);
			__m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
			T[k] = _mm512_dpbusd_epi32(
				_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo,
						    _mm512_load_si512((const void *)(a + 128 * k))),
				hi, _mm512_load_si512((const void *)(a + 128 * k + 64)));
		}
		/* lane 4L + k ← Σ of T_k's lane L */
		__m512i u0 = _mm512_add_epi32(_mm512_unpacklo_epi32(T[0], T[1]),
					      _mm512_unpackhi_epi32(T[0], T[1]));
		__m512i u1 = _mm512_add_epi32(_mm512_unpacklo_epi32(T[2], T[3]),
					      _mm512_unpackhi_epi32(T[2], T[3]));
		__m512i isum = _mm512_add_epi32(_mm512_unpacklo_epi64(u0, u1),
						_mm512_unpackhi_epi64(u0, u1));
		isum = _mm512_add_epi32(isum, _mm512_load_si512((const void *)(a + 512)));
		/* blocks 0-7 have their d in bytes 0..127, blocks 8-15 in 144..271 */
		__m512i d0 = _mm512_permutex2var_epi16(_mm512_loadu_si512((const void *)x), id,
						       _mm512_loadu_si512((const void *)(x + 64)));
		__m512i d1 = _mm512_permutex2var_epi16(_mm512_loadu_si512((const void *)(x + 144)),
						       id, _mm512_loadu_si512((const void *)(x + 208)));
		__m512 dw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_mask_blend_epi16(upper, d0, d1)));
		acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum),
				      _mm512_mul_ps(dw, _mm512_load_ps((const void *)(a + 576))), acc);
	}
	return _mm512_reduce_add_ps(acc);
}

static const struct kern_gemv gemv_q4_0 = { q4_0_act_bytes, q4_0_act_pack, q4_0_dot, NULL, 0, NULL };

/* ---- Q8_0 ----
 * A pair of blocks (68 bytes: d, 32 codes, d, 32 codes) in one vector: two
 * 32-byte loads (bytes 2 and 36; whole-vector loads at this stride would
 * straddle cache lines every time, which costs more than the insert when
 * streaming from memory) put block a's codes in bytes 0-31 and b's in
 * 32-63; xor 0x80 makes them unsigned (w + 128) for vpdpbusd, and the
 * packed −128·Σ a puts the sum back:
 *   isum = −128·Σ a + Σ (w + 128)·a = Σ w·a      exact, as in ref.c
 *   acc += isum · (d_w · d_a)
 * with the two fp16 scales broadcast over their 8 int32 lanes each. */
static void q8_0_act_pack(const float *x, void *out, int64_t n)
{
	pair_pack(x, out, n, false, 7);
}

/* The two fp16 scales of a pair (x[0], x[34]), each over its 8 lanes. */
static inline __attribute__((always_inline)) __m512 q8_0_pair_scales(const uint8_t *x, bool two)
{
	uint16_t da, db = 0;
	memcpy(&da, x, 2);
	if (two)
		memcpy(&db, x + 34, 2);
	return _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16((short)da)),
						       _mm_set1_epi16((short)db), 1));
}

static float q8_0_dot(int64_t n, const void *w, const void *act)
{
	const __m512i flip = _mm512_set1_epi8((char)0x80);
	const int64_t nb = n / 32;
	const uint8_t *x = w, *a = act;
	__m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
	int64_t b = 0;

#define Q8_0_PAIR(HI, TWO, ACC)                                                            \
	{                                                                                \
		const uint8_t *p = x + b * 34;                                           \
		__m512i v = _mm512_inserti64x4(                                          \
			_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(const void *)(p + 2))), \
			HI, 1);                                                          \
		__m512i isum = _mm512_dpbusd_epi32(_mm512_loadu_si512((const void *)(a + 128)), \
						   _mm512_xor_si512(v, flip),             \
						   _mm512_loadu_si512((const void *)a));  \
		ACC = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum),                          \
				      _mm512_mul_ps(q8_0_pair_scales(p, TWO),            \
						    _mm512_loadu_ps((const void *)(a + 64))), \
				      ACC);                                              \
		a += PAIR_BYTES;                                                         \
		b += 2;                                                                  \
	}
#define HI_LOAD _mm256_loadu_si256((const __m256i *)(const void *)(p + 36))
	for (; b + 4 <= nb;) {
		kern_pf_stream(x + b * 34, 136);
		Q8_0_PAIR(HI_LOAD, true, acc0)
		Q8_0_PAIR(HI_LOAD, true, acc1)
	}
	if (b + 2 <= nb)
		Q8_0_PAIR(HI_LOAD, true, acc0)
	if (b < nb) /* a lone last block: its partner's lanes read as 0x80 ^ 0x80 = 0 codes */
		Q8_0_PAIR(_mm256_set1_epi8((char)0x80), false, acc1)
#undef HI_LOAD
#undef Q8_0_PAIR
	return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

static const struct kern_gemv gemv_q8_0 = { pair_bytes, q8_0_act_pack, q8_0_dot, NULL, 0, NULL };

/* ---- Q4_K ----
 * A 144-byte block: d, dmin (fp16), 12 bytes of 6-bit scales and mins, 128
 * bytes of nibbles where chunk c (32 bytes) holds sub-block 2c in its low
 * and 2c + 1 in its high nibbles.  One 64-byte load is chunks c, c + 1; its
 * low nibbles are sub-blocks (2c, 2c + 2) and its high ones (2c + 1, 2c + 3),
 * so the activation codes are packed per block in sub-block order
 * 0 2 1 3 4 6 5 7.  Per block and row:
 *   words  = vpmaddubsw(q, a)                 q·a pairs, at most 2·15·128
 *   isum  += vpmaddwd(words, scale of the word's sub-block)
 *   msum   = Σ_j min_j · Σ a of sub-block j    (vpmaddwd, 8 words)
 *   acc   += isum·(d·d_a),  accm += msum·(dmin·d_a)
 * The integer sums are ref.c's exactly; only the float steps round
 * differently. */

/* Packed Q4_K/Q5_K activation, per 256-element block:
 *   int8  codes[256]   sub-block order above
 *   float d            the Q8_K scale
 *   int16 bsum[8]      Σ codes of sub-block j (natural order)
 *   (pad to KQ_ACT_BYTES, keeping the codes 64-byte aligned; Q6_K's
 *   packing below has the same size) */
#define KQ_ACT_BYTES 320

/* vpshufb indices for a vector of 8 scale bytes repeated in every 128-bit
 * lane: words 0-15 (lanes 0, 1) ← byte A, words 16-31 (lanes 2, 3) ← byte
 * B, high bytes zero. */
static inline __m512i shuf_pair(int A, int B)
{
	const long long wa = (long long)(0x8000800080008000ULL | (uint64_t)A * 0x0001000100010001ULL);
	const long long wb = (long long)(0x8000800080008000ULL | (uint64_t)B * 0x0001000100010001ULL);
	return _mm512_set_epi64(wb, wb, wb, wb, wa, wa, wa, wa);
}

static size_t kq_act_bytes(int64_t n)
{
	return (size_t)(n / QK_K) * KQ_ACT_BYTES;
}

static void q4_K_act_pack(const float *x, void *out, int64_t n)
{
	static const int order[8] = { 0, 2, 1, 3, 4, 6, 5, 7 };
	kern_from_float_fn q8 = kern_act_quant_avx512(GGUF_TYPE_Q8_K);
	uint8_t *o = out;
	for (int64_t b = 0; b < n / QK_K; b++, o += KQ_ACT_BYTES) {
		struct block_q8_K blk;
		int16_t bsum[8];
		q8(x + b * QK_K, &blk, QK_K);
		for (int j = 0; j < 8; j++) {
			memcpy(o + 32 * j, blk.qs + 32 * order[j], 32);
			bsum[j] = (int16_t)(blk.bsums[2 * j] + blk.bsums[2 * j + 1]);
		}
		memcpy(o + QK_K, &blk.d, sizeof blk.d);
		memcpy(o + QK_K + 4, bsum, sizeof bsum);
		memset(o + QK_K + 20, 0, KQ_ACT_BYTES - QK_K - 20);
	}
}

/* Q4_K, or Q5_K with `five`: its block is Q4_K's header, qh[32], then qs;
 * bit 4 of element 64c + l is bit 2c of qh[l], of 64c + 32 + l bit 2c + 1.
 * The block at x's 256 codes in the packed activation's sub-block order, as
 * four vectors. */
static inline __attribute__((always_inline)) void q45_codes(const uint8_t *x, bool five, __m512i q[4])
{
	const __m512i m4 = _mm512_set1_epi8(0x0F);
	const size_t qs = five ? 48 : 16;
	const __m512i raw0 = _mm512_loadu_si512((const void *)(x + qs));
	const __m512i raw1 = _mm512_loadu_si512((const void *)(x + qs + 64));
	q[0] = _mm512_and_si512(raw0, m4);
	q[1] = _mm512_and_si512(_mm512_srli_epi16(raw0, 4), m4);
	q[2] = _mm512_and_si512(raw1, m4);
	q[3] = _mm512_and_si512(_mm512_srli_epi16(raw1, 4), m4);
	if (five) {
		/* bit k of each qh byte to bit 4: left by 4 − k or right by k − 4,
		 * per 16-bit word (a byte's carry into its neighbour never lands on
		 * bit 4); vectors (lo, hi) of loads 0 and 1 take bits (0|2, 1|3) and
		 * (4|6, 5|7) */
		const __m512i sh_l0 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
		const __m512i sh_h0 = _mm512_inserti64x4(_mm512_set1_epi16(3), _mm256_set1_epi16(1), 1);
		const __m512i sh_l1 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
		const __m512i sh_h1 = _mm512_inserti64x4(_mm512_set1_epi16(1), _mm256_set1_epi16(3), 1);
		const __m512i m10 = _mm512_set1_epi8(0x10);
		const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x + 16)));
		q[0] = _mm512_or_si512(q[0], _mm512_and_si512(_mm512_sllv_epi16(qh, sh_l0), m10));
		q[1] = _mm512_or_si512(q[1], _mm512_and_si512(_mm512_sllv_epi16(qh, sh_h0), m10));
		q[2] = _mm512_or_si512(q[2], _mm512_and_si512(_mm512_srlv_epi16(qh, sh_l1), m10));
		q[3] = _mm512_or_si512(q[3], _mm512_and_si512(_mm512_srlv_epi16(qh, sh_h1), m10));
	}
}

static inline __attribute__((always_inline)) float q45_K_dot(int64_t n, const uint8_t *x,
							      const uint8_t *a, bool five)
{
	const __m512i i02 = shuf_pair(0, 2), i13 = shuf_pair(1, 3), i46 = shuf_pair(4, 6),
		      i57 = shuf_pair(5, 7);
	const size_t bb = five ? 176 : 144;
	__m512 acc = _mm512_setzero_ps();
	__m128 accm = _mm_setzero_ps();

	for (int64_t b = 0; b < n / QK_K; b++, x += bb, a += KQ_ACT_BYTES) {
		uint32_t dd;
		uint64_t sc, mn;
		kern_pf_stream(x, bb);
		memcpy(&dd, x, 4);
		kern_k4_scales8(x + 4, &sc, &mn);
		const __m512i scv = _mm512_set1_epi64((long long)sc);
		__m512i q[4];
		q45_codes(x, five, q);
		/* vpdpwssd: the scale vpmaddwd and the adds in one */
		__m512i isum = _mm512_madd_epi16(
			_mm512_maddubs_epi16(q[0], _mm512_load_si512((const void *)a)),
			_mm512_shuffle_epi8(scv, i02));
		isum = _mm512_dpwssd_epi32(isum,
					   _mm512_maddubs_epi16(q[1], _mm512_load_si512((const void *)(a + 64))),
					   _mm512_shuffle_epi8(scv, i13));
		isum = _mm512_dpwssd_epi32(isum,
					   _mm512_maddubs_epi16(q[2], _mm512_load_si512((const void *)(a + 128))),
					   _mm512_shuffle_epi8(scv, i46));
		isum = _mm512_dpwssd_epi32(isum,
					   _mm512_maddubs_epi16(q[3], _mm512_load_si512((const void *)(a + 192))),
					   _mm512_shuffle_epi8(scv, i57));
		const __m128i msum = _mm_madd_epi16(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mn)),
						    _mm_loadu_si128((const __m128i *)(a + QK_K + 4)));
		float da;
		memcpy(&da, a + QK_K, 4);
		/* [d·d_a, dmin·d_a] */
		const __m128 f = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)dd)), _mm_set1_ps(da));
		acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_broadcastss_ps(f), acc);
		accm = _mm_fmadd_ps(_mm_cvtepi32_ps(msum), _mm_shuffle_ps(f, f, 0x55), accm);
	}
	return _mm512_reduce_add_ps(acc) - (accm[0] + accm[1] + accm[2] + accm[3]);
}

static float q4_K_dot(int64_t n, const void *w, const void *act)
{
	return q45_K_dot(n, w, act, false);
}

static float q5_K_dot(int64_t n, const void *w, const void *act)
{
	return q45_K_dot(n, w, act, true);
}

/* Up to 4 tokens against one Q4_K/Q5_K row (prompt batches below the panel
 * gemm's threshold): each block's codes and scales are unpacked once and
 * multiplied with every token's activation, the same integer sums as
 * q45_K_dot per token. */
static inline __attribute__((always_inline)) void q45_K_cols8(int64_t n, const uint8_t *x, const uint8_t *a,
							      size_t as, int nc, float *out, bool five)
{
	const __m512i i02 = shuf_pair(0, 2), i13 = shuf_pair(1, 3), i46 = shuf_pair(4, 6),
		      i57 = shuf_pair(5, 7);
	const size_t bb = five ? 176 : 144;
	__m512 acc[8];
	__m128 accm[8];
	for (int t = 0; t < 8; t++) {
		acc[t] = _mm512_setzero_ps();
		accm[t] = _mm_setzero_ps();
	}
	for (int64_t b = 0; b < n / QK_K; b++, x += bb) {
		uint32_t dd;
		uint64_t sc, mn;
		memcpy(&dd, x, 4);
		kern_k4_scales8(x + 4, &sc, &mn);
		const __m512i scv = _mm512_set1_epi64((long long)sc);
		const __m512i s0 = _mm512_shuffle_epi8(scv, i02), s1 = _mm512_shuffle_epi8(scv, i13),
			      s2 = _mm512_shuffle_epi8(scv, i46), s3 = _mm512_shuffle_epi8(scv, i57);
		__m512i q[4];
		q45_codes(x, five, q);
		const __m128i mn16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mn));
		const __m128 dw = _mm_cvtph_ps(_mm_cvtsi32_si128((int)dd)); /* [d, dmin] */
		for (int t = 0; t < nc; t++) {
			const uint8_t *at = a + (size_t)t * as + (size_t)b * KQ_ACT_BYTES;
			__m512i isum = _mm512_madd_epi16(
				_mm512_maddubs_epi16(q[0], _mm512_load_si512((const void *)at)), s0);
			isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(q[1], _mm512_load_si512((const void *)(at + 64))), s1);
			isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(q[2], _mm512_load_si512((const void *)(at + 128))), s2);
			isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(q[3], _mm512_load_si512((const void *)(at + 192))), s3);
			const __m128i msum = _mm_madd_epi16(mn16, _mm_loadu_si128((const __m128i *)(at + QK_K + 4)));
			float da;
			memcpy(&da, at + QK_K, 4);
			const __m128 f = _mm_mul_ps(dw, _mm_set1_ps(da));
			acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_broadcastss_ps(f), acc[t]);
			accm[t] = _mm_fmadd_ps(_mm_cvtepi32_ps(msum), _mm_shuffle_ps(f, f, 0x55), accm[t]);
		}
	}
	for (int t = 0; t < nc; t++)
		out[t] = _mm512_reduce_add_ps(acc[t]) - (accm[t][0] + accm[t][1] + accm[t][2] + accm[t][3]);
}

static void q4_K_cols(int64_t n, const void *w, const uint8_t *act, size_t as, int nc, float *out)
{
	for (int t = 0; t < nc; t += 8)
		q45_K_cols8(n, w, act + (size_t)t * as, as, nc - t < 8 ? nc - t : 8, out + t, false);
}

static void q5_K_cols(int64_t n, const void *w, const uint8_t *act, size_t as, int nc, float *out)
{
	for (int t = 0; t < nc; t += 8)
		q45_K_cols8(n, w, act + (size_t)t * as, as, nc - t < 8 ? nc - t : 8, out + t, true);
}

static const struct kern_gemv gemv_q4_K = { kq_act_bytes, q4_K_act_pack, q4_K_dot, NULL, 0, q4_K_cols };
static const struct kern_gemv gemv_q5_K = { kq_act_bytes, q4_K_act_pack, q5_K_dot, NULL, 0, q5_K_cols };

/* ---- Q6_K ----
 * A 210-byte block: ql[128] (low 4 bits), qh[64] (high 2 bits), 16 int8
 * scales (one per 16 elements), fp16 d.  Half h (128 elements) reads
 * ql[64h .. 64h + 63] as one vector: its low nibbles are elements
 * 128h + 0..63 and its high nibbles 128h + 64..127, natural order; the 2
 * high bits of element 128h + 32k + l sit at bits 2k, 2k + 1 of
 * qh[32h + l].  Codes are 0..63 (value = code − 32), so per block
 *   isum = Σ_j scale_j·Σ code·a − 32·Σ_j scale_j·bsum_j
 * (vpmaddubsw + vpmaddwd with each 128-bit lane's scale, and one vpmaddwd
 * of the scales with the activation's 16-element sums), the integer of
 * ref.c exactly; then acc += isum·(d·d_a). */

/* Packed Q6_K activation, per 256-element block: int8 codes[256] (natural
 * order), float d, int16 bsum[16] (Σ of each 16 codes), pad to 320. */
static void q6_K_act_pack(const float *x, void *out, int64_t n)
{
	kern_from_float_fn q8 = kern_act_quant_avx512(GGUF_TYPE_Q8_K);
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

static inline __m512i lane_words(int a, int b, int c, int d)
{
	return _mm512_set_epi16(d, d, d, d, d, d, d, d, c, c, c, c, c, c, c, c, b, b, b, b, b, b,
				b, b, a, a, a, a, a, a, a, a);
}

static float q6_K_dot(int64_t n, const void *w, const void *act)
{
	const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
	/* high bits: (qh >> 2k) << 4 for k = 0, 1 (low half words, high half)
	 * is qh << 4, qh << 2; for k = 2, 3 it is qh, qh >> 2 (then & 0x30) */
	const __m512i sl = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
	const __m512i sr = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
	/* the scale word of each 128-bit lane, per half and nibble */
	const __m512i p0 = lane_words(0, 1, 2, 3), p1 = lane_words(4, 5, 6, 7),
		      p2 = lane_words(8, 9, 10, 11), p3 = lane_words(12, 13, 14, 15);
	const uint8_t *x = w, *a = act;
	__m512 acc = _mm512_setzero_ps();

	for (int64_t b = 0; b < n / QK_K; b++, x += 210, a += KQ_ACT_BYTES) {
		kern_pf_stream(x, 210);
		const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x + 192)));
		const __m512i scw = _mm512_castsi256_si512(sc16);
		__m512i isum = _mm512_setzero_si512();
		for (int h = 0; h < 2; h++) {
			const __m512i ql = _mm512_loadu_si512((const void *)(x + 64 * h));
			const __m512i qh = _mm512_broadcast_i64x4(
				_mm256_loadu_si256((const __m256i *)(x + 128 + 32 * h)));
			const __m512i lo = _mm512_or_si512(
				_mm512_and_si512(ql, m4), _mm512_and_si512(_mm512_sllv_epi16(qh, sl), m30));
			const __m512i hi = _mm512_or_si512(
				_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
				_mm512_and_si512(_mm512_srlv_epi16(qh, sr), m30));
			const __m512i slo = _mm512_permutexvar_epi16(h ? p2 : p0, scw);
			const __m512i shi = _mm512_permutexvar_epi16(h ? p3 : p1, scw);
			isum = _mm512_add_epi32(
				isum, _mm512_madd_epi16(_mm512_maddubs_epi16(
								lo, _mm512_load_si512((const void *)(a + 128 * h))),
							slo));
			isum = _mm512_add_epi32(
				isum,
				_mm512_madd_epi16(_mm512_maddubs_epi16(hi, _mm512_load_si512((const void *)(
									   a + 128 * h + 64))),
						  shi));
		}
		/* − 32·Σ_j scale_j·bsum_j, in the low 8 lanes */
		const __m256i ms = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)(a + QK_K + 4)));
		isum = _mm512_sub_epi32(isum, _mm512_castsi256_si512(_mm256_slli_epi32(ms, 5)));
		uint16_t dh;
		float da;
		memcpy(&dh, x + 208, 2);
		memcpy(&da, a + QK_K, 4);
		acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(da * _cvtsh_ss(dh)), acc);
	}
	return _mm512_reduce_add_ps(acc);
}

/* Up to 8 tokens against one Q6_K row: each block's codes and scales are
 * made once, then the same integer sums as q6_K_dot per token. */
static inline __attribute__((always_inline)) void q6_K_cols8(int64_t n, const uint8_t *x, const uint8_t *a,
							     size_t as, int nc, float *out)
{
	const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
	const __m512i sl = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
	const __m512i sr = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
	const __m512i p0 = lane_words(0, 1, 2, 3), p1 = lane_words(4, 5, 6, 7),
		      p2 = lane_words(8, 9, 10, 11), p3 = lane_words(12, 13, 14, 15);
	__m512 acc[8];
	for (int t = 0; t < 8; t++)
		acc[t] = _mm512_setzero_ps();
	for (int64_t b = 0; b < n / QK_K; b++, x += 210) {
		const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x + 192)));
		const __m512i scw = _mm512_castsi256_si512(sc16);
		__m512i code[4], scl[4];
		for (int h = 0; h < 2; h++) {
			const __m512i ql = _mm512_loadu_si512((const void *)(x + 64 * h));
			const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x + 128 + 32 * h)));
			code[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, m4),
						      _mm512_and_si512(_mm512_sllv_epi16(qh, sl), m30));
			code[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
							  _mm512_and_si512(_mm512_srlv_epi16(qh, sr), m30));
			scl[2 * h] = _mm512_permutexvar_epi16(h ? p2 : p0, scw);
			scl[2 * h + 1] = _mm512_permutexvar_epi16(h ? p3 : p1, scw);
		}
		uint16_t dh;
		memcpy(&dh, x + 208, 2);
		const float dw = _cvtsh_ss(dh);
		for (int t = 0; t < nc; t++) {
			const uint8_t *at = a + (size_t)t * as + (size_t)b * KQ_ACT_BYTES;
			__m512i isum = _mm512_setzero_si512();
			for (int k = 0; k < 4; k++)
				isum = _mm512_add_epi32(
					isum, _mm512_madd_epi16(_mm512_maddubs_epi16(
									code[k], _mm512_load_si512((const void *)(at + 64 * k))),
								scl[k]));
			const __m256i ms = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)(at + QK_K + 4)));
			isum = _mm512_sub_epi32(isum, _mm512_castsi256_si512(_mm256_slli_epi32(ms, 5)));
			float da;
			memcpy(&da, at + QK_K, 4);
			acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(da * dw), acc[t]);
		}
	}
	for (int t = 0; t < nc; t++)
		out[t] = _mm512_reduce_add_ps(acc[t]);
}

static void q6_K_cols(int64_t n, const void *w, const uint8_t *act, size_t as, int nc, float *out)
{
	for (int t = 0; t < nc; t += 8)
		q6_K_cols8(n, w, act + (size_t)t * as, as, nc - t < 8 ? nc - t : 8, out + t);
}

static const struct kern_gemv gemv_q6_K = { kq_act_bytes, q6_K_act_pack, q6_K_dot, NULL, 0, q6_K_cols };

/* ---- BF16 on AVX512_BF16 ----
 * The activation rounded to bf16 once per call (nearest even, as the
 * reference engine does for BF16 weights; zeros up to a multiple of 32),
 * then one vdpbf16ps per 64 bytes of the row: the weights go in as they
 * are loaded.  Each product within 2^-9 of the exact one (the
 * activation's rounding), summed in float.  No software prefetch: on Zen 4
 * the hardware prefetcher alone streams this loop faster. */
static size_t bf16_act_bytes(int64_t n)
{
	return (size_t)((n + 31) / 32) * 64;
}

static void bf16_act_pack(const float *x, void *out, int64_t n)
{
	uint8_t *o = out;
	for (int64_t i = 0; i < n; i += 32, o += 64) {
		const int64_t left = n - i;
		const __mmask16 m0 = (__mmask16)kern_tail_mask(left, 16);
		const __mmask16 m1 = (__mmask16)kern_tail_mask(left - 16, 16);
		_mm512_storeu_si512((void *)o, (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, x + i + 16),
									 _mm512_maskz_loadu_ps(m0, x + i)));
	}
}

static float bf16_dot(int64_t n, const void *w, const void *act)
{
	const uint16_t *p = w;
	const uint8_t *a = act;
	__m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
	int64_t i = 0;
#define BF(S, K) S = _mm512_dpbf16_ps(S, (__m512bh)_mm512_loadu_si512((const void *)(p + i + (K))), \
				       (__m512bh)_mm512_loadu_si512((const void *)(a + 2 * (i + (K)))))
	for (; i + 128 <= n; i += 128) {
		BF(s0, 0);
		BF(s1, 32);
		BF(s2, 64);
		BF(s3, 96);
	}
	for (; i + 32 <= n; i += 32)
		BF(s0, 0);
#undef BF
	if (i < n) /* the activation's padding is 0 */
		s1 = _mm512_dpbf16_ps(s1, (__m512bh)_mm512_maskz_loadu_epi16(kern_tail_mask(n - i, 32), p + i),
				      (__m512bh)_mm512_loadu_si512((const void *)(a + 2 * i)));
	return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

static const struct kern_gemv gemv_bf16 = { bf16_act_bytes, bf16_act_pack, bf16_dot, NULL, 0x1p-9, NULL };

/* ---- F16 ----
 * Exact products, as the traits' f16_dot1, without vcvtph2ps (its 512-bit
 * form takes two cycles per 16 weights on Zen 4, and the loop around it
 * streamed about three quarters of one core's bandwidth).  A 64-byte load
 * holds 32 weights as 16 pairs; for each half of a pair two shifts and a
 * mask make a float with the f16's sign, exponent and mantissa in place,
 * which is the weight times 2^-112 exactly (f16 subnormals become float
 * subnormals).  The activation is packed per 32 elements as the even ones
 * then the odd ones, times 2^k (k = 56, less when the activation's largest
 * magnitude is past 2^44, so that it stays below 2^100), and the sum is
 * scaled back once.  Each product is w·a·2^(k−112), exact unless it falls
 * below float's normal range: |y − exact| <= 2·n·u·S + n·2^-94 for k = 56
 * (u = 2^-24, S = Σ|w·a|).  A row with an infinite or NaN weight (f16
 * exponent 31) is seen in a running 16-bit maximum of |w| and summed again
 * one element at a time, giving the reference's inf or NaN. */
#define F16_GROUPS(n) (((n) + 31) / 32)

/* The packed activation: F16_GROUPS(n)·32 floats, then 2^(56−k). */
static size_t f16_act_bytes(int64_t n)
{
	return ((size_t)F16_GROUPS(n) * 32 + 16) * sizeof(float);
}

static void f16_act_pack(const float *x, void *out, int64_t n)
{
	float *o = out, top = 0;
	for (int64_t i = 0; i < n; i++)
		top = fabsf(x[i]) > top ? fabsf(x[i]) : top;
	int k = 56;
	if (top >= 0x1p44f && top <= FLT_MAX) {
		int e;
		frexpf(top, &e); /* top < 2^e */
		k = 100 - e;
	}
	const float scale = ldexpf(1.0f, k);
	for (int64_t i = 0; i < n; i += 32, o += 32)
		for (int j = 0; j < 16; j++) {
			o[j] = i + 2 * j < n ? x[i + 2 * j] * scale : 0.0f;
			o[16 + j] = i + 2 * j + 1 < n ? x[i + 2 * j + 1] * scale : 0.0f;
		}
	*o = ldexpf(1.0f, 56 - k);
}

/* The row one element at a time (the rows with inf or NaN weights). */
static float f16_dot_slow(int64_t n, const uint16_t *p, const float *a, float back)
{
	float s = 0;
	for (int64_t i = 0; i < n; i++)
		s += _cvtsh_ss(p[i]) * (a[(i & ~(int64_t)31) + (i & 1) * 16 + (i & 31) / 2] * 0x1p-56f * back);
	return s;
}

static float f16_dot(int64_t n, const void *w, const void *act)
{
	const uint16_t *p = w;
	const float *a = act;
	const __m512i keep = _mm512_set1_epi32((int)0x8FFFE000);
	const __m512i mag = _mm512_set1_epi16(0x7FFF);
	__m512i top = _mm512_setzero_si512(); /* the largest |w| bits seen */
	__m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
	int64_t i = 0;
#define EVEN(v) _mm512_castsi512_ps(_mm512_and_si512(_mm512_srai_epi32(_mm512_slli_epi32(v, 16), 3), keep))
#define ODD(v) _mm512_castsi512_ps(_mm512_and_si512(_mm512_srai_epi32(v, 3), keep))
	for (; i + 64 <= n; i += 64) {
		kern_pf_stream(p + i, 128);
		const __m512i v = _mm512_loadu_si512((const void *)(p + i));
		const __m512i u = _mm512_loadu_si512((const void *)(p + i + 32));
		top = _mm512_max_epu16(top, _mm512_and_si512(v, mag));
		top = _mm512_max_epu16(top, _mm512_and_si512(u, mag));
		s0 = _mm512_fmadd_ps(EVEN(v), _mm512_loadu_ps(a + i), s0);
		s1 = _mm512_fmadd_ps(ODD(v), _mm512_loadu_ps(a + i + 16), s1);
		s2 = _mm512_fmadd_ps(EVEN(u), _mm512_loadu_ps(a + i + 32), s2);
		s3 = _mm512_fmadd_ps(ODD(u), _mm512_loadu_ps(a + i + 48), s3);
	}
	for (; i < n; i += 32) {
		const __m512i v = _mm512_maskz_loadu_epi16(kern_tail_mask(n - i, 32), p + i);
		top = _mm512_max_epu16(top, _mm512_and_si512(v, mag));
		s0 = _mm512_fmadd_ps(EVEN(v), _mm512_loadu_ps(a + i), s0);
		s1 = _mm512_fmadd_ps(ODD(v), _mm512_loadu_ps(a + i + 16), s1);
	}
#undef EVEN
#undef ODD
	const float back = a[F16_GROUPS(n) * 32];
	if (_mm512_cmpge_epu16_mask(top, _mm512_set1_epi16(0x7C00)))
		return f16_dot_slow(n, p, a, back);
	return 0x1p56f * _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3))) * back;
}

static const struct kern_gemv gemv_f16 = { f16_act_bytes, f16_act_pack, f16_dot, NULL, 0, NULL };

const struct kern_gemv *kern_gemv_avx512bf16(uint32_t type)
{
	return type == GGUF_TYPE_BF16 ? &gemv_bf16 : NULL;
}

const struct kern_gemv *kern_gemv_avx512(uint32_t type)
{
	switch (type) {
	case GGUF_TYPE_Q4_0:
		/* vpermb: AVX512_VBMI */
		return __builtin_cpu_supports("avx512vbmi") ? &gemv_q4_0 : NULL;
	case GGUF_TYPE_Q8_0:
		return &gemv_q8_0;
	case GGUF_TYPE_Q4_K:
		return &gemv_q4_K;
	case GGUF_TYPE_Q5_K:
		return &gemv_q5_K;
	case GGUF_TYPE_Q6_K:
		return &gemv_q6_K;
	case GGUF_TYPE_F16:
		return &gemv_f16;
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

const struct kern_gemv *kern_gemv_avx512bf16(uint32_t type)
{
	(void)type;
	return NULL;
}
#endif

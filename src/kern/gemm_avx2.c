/*
 * kern/gemm_avx2 — the prefill matmul on AVX2 machines (no VNNI): weight
 * rows go through in panels of KERN_PANEL_ROWS = 16 rows, each repacked
 * once per call into per-thread scratch so that one 256-bit vector holds
 * the same 4 elements ("group") of 8 rows, then multiplied against every
 * token.  Only called after kern_isa_supported(AVX2).  Q4_0 Q8_0 Q4_K Q5_K Q6_K,
 * and F32 F16 BF16 (float panels, at the end of this file).
 *
 * Why this shape: with rows across the vector one token's 4 activation
 * bytes are broadcast to 8 rows, so there is no horizontal sum and the
 * float work (convert, scale, add) is one instruction per 8 rows per block.
 * vpmaddubsw (unsigned × signed bytes, pairs added in int16) needs small
 * unsigned weights: codes are kept as 4-bit values 0..15, so a pair is at
 * most 2·15·127 = 3810 (2·15·128 = 3840 for an activation of −128) and the
 * 8 groups of a block add up in int16 (8·3840 = 30720 < 32767) before one
 * vpmaddwd widens them to int32.  Wider codes run shorter int16 sums:
 * Q5_K's 0..31 over 4 groups (4·2·31·127 = 31496), Q6_K's 0..63 over 2
 * (2·2·63·127 = 32004; the K-quant activations are within ±127), one
 * vpmaddubsw per group either way.  A tile is 8 rows × up to 4 tokens (× 2
 * planes for Q8_0) of int16, int32 and float accumulators, which fits the
 * 16 ymm registers with the weight and broadcast operands (Q8_0 keeps 3
 * float accumulators in L1).
 *
 * Panel layout, per unit of U elements (a Q4_0/Q8_0 block, or one
 * sub-block of a Q4_K/Q5_K (U = 32) or Q6_K (U = 16) block), P planes
 * (Q8_0: 2, the others 1):
 *
 *   codes  [U/4 groups][P planes][16 rows][4 bytes]  group g = elements 4g..4g+3
 *   scale  [16 rows] float                 Q4_0/Q8_0: d; K-quants: d·sc
 *   min    [16 rows] float                 Q4_K, Q5_K only: −dmin·m
 *
 * The plane of Q4_0, Q4_K and Q5_K is their codes q (values d·(q − 8) and
 * d·sc·q − dmin·m), Q6_K's its stored 6-bit codes u = q + 32.  Q8_0's
 * signed codes w become u = w + 128 = 16·h + l, and its planes are h then
 * l (0..15 each).
 *
 * Activations are quantized once per call by the reference-exact Q8_0
 * (K-quants: Q8_K) quantizer and packed in blocks of KERN_GEMM_TOK = 8 tokens,
 * per unit one record:
 *
 *   int8  codes[8][U]   token c's codes of the unit, element order
 *   float d[8]          the token's activation scale (fp16 d as float; Q8_K's d)
 *   int32 corr[8]       −offset·Σ codes (offset 8 Q4_0, 128 Q8_0, 32 Q6_K, 0)
 *   float s[8]          Q4_K, Q5_K only: d·Σ codes of the unit (from Q8_K's bsums)
 *
 * so that per unit, row r and token t (a = activation codes):
 *   Q4_0: isum = Σ q·a + corr                     = Σ (q − 8)·a
 *   Q8_0: isum = 16·Σ h·a + Σ l·a + corr          = Σ (u − 128)·a = Σ w·a
 *   Q4_K: isum = Σ q·a
 *   Q5_K: isum = Σ q·a
 *   Q6_K: isum = Σ u·a + corr                     = Σ (u − 32)·a
 *   y   += isum·(scale_r·d_t)  [+ min_r·s_t for Q4_K, Q5_K]
 * which is ref.c's integer sum per block (per sub-block for the K-quants, whose
 * scales are applied in float per unit instead of in int per block), exact
 * in int32; results differ from the reference only in float rounding and
 * the order of additions.
 */
#include "kern/kern_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/half.h"
#include "gguf/gguf.h"
#include "kern/rows_avx2.h"

#define INLINE static inline __attribute__((always_inline))
#define PR KERN_PANEL_ROWS /* 16: two 8-row halves */
#define PC KERN_GEMM_TOK   /* 8 tokens per activation block */
#define PREFETCH 512       /* repack: bytes ahead in each weight row */

_Static_assert(PR == 16 && PC == 8, "gemm_avx2 assumes 16-row panels and 8-token blocks");

/* Bytes of one unit of the panel with P planes (and a min). */
INLINE size_t unit_bytes(int P, int U, bool min)
{
	return (size_t)P * (size_t)(U / 4) * 64 + 64 + (min ? 64 : 0);
}

/* Bytes of one unit's activation record: codes, d, corr (and s). */
INLINE size_t rec_bytes(int U, bool min)
{
	return (size_t)PC * (size_t)U + PC * 4 * (min ? 3 : 2);
}

INLINE int32_t ld32(const uint8_t *p)
{
	int32_t v;
	memcpy(&v, p, 4);
	return v;
}

INLINE float ldf(const uint8_t *p)
{
	float v;
	memcpy(&v, p, 4);
	return v;
}

/* One block of 8 rows (row[0..8), block at byte off) into the panel unit p
 * at row half h (bytes 32h of each 64-byte group/plane slot). */
INLINE void repack_q4_0_half(const uint8_t *const row[8], size_t off, uint8_t *p, int h)
{
	const __m256i m4 = _mm256_set1_epi8(0x0F);
	__m256i r[4];
	for (int i = 0; i < 4; i++) /* the 16 code bytes, past the 2-byte d */
		r[i] = kern_load2x128(row[i] + off + 2, row[i + 4] + off + 2);
	kern_transpose8x4(r);
	/* dword k: low nibbles are elements 4k.., high nibbles 16 + 4k.. */
	for (int k = 0; k < 4; k++) {
		_mm256_store_si256((__m256i *)(p + 64 * k + 32 * h), _mm256_and_si256(r[k], m4));
		_mm256_store_si256((__m256i *)(p + 64 * (k + 4) + 32 * h),
				   _mm256_and_si256(_mm256_srli_epi16(r[k], 4), m4));
	}
}

INLINE void repack_q8_0_half(const uint8_t *const row[8], size_t off, uint8_t *p, int h)
{
	const __m256i m4 = _mm256_set1_epi8(0x0F), x80 = _mm256_set1_epi8((char)0x80);
	for (int half = 0; half < 2; half++) { /* dwords 0..3, then 4..7 */
		__m256i r[4];
		for (int i = 0; i < 4; i++)
			r[i] = kern_load2x128(row[i] + off + 2 + 16 * half, row[i + 4] + off + 2 + 16 * half);
		kern_transpose8x4(r);
		for (int k = 0; k < 4; k++) {
			const int g = 4 * half + k;
			__m256i u = _mm256_xor_si256(r[k], x80); /* w + 128 */
			_mm256_store_si256((__m256i *)(p + 128 * g + 32 * h),
					   _mm256_and_si256(_mm256_srli_epi16(u, 4), m4));
			_mm256_store_si256((__m256i *)(p + 128 * g + 64 + 32 * h),
					   _mm256_and_si256(u, m4));
		}
	}
}

/* Bit pos of every byte moved to bit 4 (the other bits are masked off by
 * the caller; with 16-bit shifts no neighbouring byte's bit lands there). */
INLINE __m256i bit_to4(__m256i v, int pos)
{
	return pos < 4 ? _mm256_slli_epi16(v, 4 - pos) : _mm256_srli_epi16(v, pos - 4);
}

/* Q4_K (five false) or Q5_K: one 256-block of 8 rows into the panel's 8
 * units (ub bytes apart).  qs chunk c (32 bytes) holds elements 64c.. in
 * its low nibbles (unit 2c) and 64c + 32.. in its high nibbles (unit
 * 2c + 1); byte 4g + i of a chunk is element 4g + i of both units, so a
 * dword transpose of each 16-byte half gives groups 4·half + k directly.
 * Q5_K adds bit 4 of each code: element l of units 2c and 2c + 1 takes it
 * from bits 2c and 2c + 1 of qh[l], so the same transpose of each 16-byte
 * half of qh gives the high bits of the same groups. */
INLINE void repack_q45_K_half(const uint8_t *const row[8], size_t off, uint8_t *p, size_t ub,
			      int h, const bool five)
{
	const __m256i m4 = _mm256_set1_epi8(0x0F), m10 = _mm256_set1_epi8(0x10);
	const size_t qs = five ? offsetof(struct block_q5_K, qs) : offsetof(struct block_q4_K, qs);
	const size_t qho = offsetof(struct block_q5_K, qh);
	for (int half = 0; half < 2; half++) {
		__m256i hb[4];
		if (five) {
			for (int i = 0; i < 4; i++)
				hb[i] = kern_load2x128(row[i] + off + qho + 16 * (size_t)half,
						       row[i + 4] + off + qho + 16 * (size_t)half);
			kern_transpose8x4(hb);
		}
		for (int c = 0; c < 4; c++) {
			__m256i r[4];
			const size_t o = off + qs + 32 * (size_t)c + 16 * (size_t)half;
			for (int i = 0; i < 4; i++)
				r[i] = kern_load2x128(row[i] + o, row[i + 4] + o);
			kern_transpose8x4(r);
			for (int k = 0; k < 4; k++) {
				const int g = 4 * half + k;
				uint8_t *lo = p + (size_t)(2 * c) * ub + 64 * g + 32 * h;
				__m256i q0 = _mm256_and_si256(r[k], m4);
				__m256i q1 = _mm256_and_si256(_mm256_srli_epi16(r[k], 4), m4);
				if (five) { /* bit 2c (2c + 1) of qh moved to bit 4 */
					q0 = _mm256_or_si256(q0, _mm256_and_si256(bit_to4(hb[k], 2 * c), m10));
					q1 = _mm256_or_si256(q1, _mm256_and_si256(bit_to4(hb[k], 2 * c + 1), m10));
				}
				_mm256_store_si256((__m256i *)lo, q0);
				_mm256_store_si256((__m256i *)(lo + ub), q1);
			}
		}
	}
}

/* Q6_K: one 256-block of 8 rows into the panel's 16 units of 16 (ub bytes
 * apart), the stored 6-bit codes u = q + 32 = 16·h + l put together from
 * their 2 high bits h and 4 low bits l.  Span s = 4i + k
 * (elements 32s..32s+31) takes its low bits from ql + 64i + 32(k % 2)
 * (shifted by 4(k / 2)) and its high bits from qh + 32i (shifted by 2k);
 * its 16-byte halves are units 2s and 2s + 1. */
INLINE void repack_q6_K_half(const uint8_t *const row[8], size_t off, uint8_t *p, size_t ub,
			     int h)
{
	const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
	for (int s = 0; s < 8; s++) {
		const int i = s / 4, k = s % 4;
		for (int half = 0; half < 2; half++) {
			__m256i lo[4], hi[4];
			const size_t ol = off + 64 * (size_t)i + 32 * (size_t)(k % 2) + 16 * (size_t)half;
			const size_t oh = off + QK_K / 2 + 32 * (size_t)i + 16 * (size_t)half;
			for (int r = 0; r < 4; r++) {
				lo[r] = kern_load2x128(row[r] + ol, row[r + 4] + ol);
				hi[r] = kern_load2x128(row[r] + oh, row[r + 4] + oh);
			}
			kern_transpose8x4(lo);
			kern_transpose8x4(hi);
			uint8_t *u = p + (size_t)(2 * s + half) * ub + 32 * h;
			for (int g = 0; g < 4; g++) {
				__m256i l4 = _mm256_and_si256(_mm256_srli_epi16(lo[g], 4 * (k / 2)), m4);
				__m256i h2 = _mm256_and_si256(_mm256_srli_epi16(hi[g], 2 * k), m2);
				_mm256_store_si256((__m256i *)(u + 64 * g),
						   _mm256_or_si256(l4, _mm256_slli_epi16(h2, 4)));
			}
		}
	}
}

/* Repacks rows w[0..nr) (rows past nr repeat row nr − 1; their results are
 * never stored) into the panel layout above; bb bytes per block, P planes. */
INLINE void repack(uint32_t type, const int P, int bb, int64_t n, const uint8_t *w, size_t w_row,
		   int nr, uint8_t *panel)
{
	const uint8_t *row[PR];
	const bool min = type == GGUF_TYPE_Q4_K || type == GGUF_TYPE_Q5_K;
	const size_t ub = unit_bytes(P, 32, min);
	for (int r = 0; r < PR; r++)
		row[r] = w + (size_t)(r < nr ? r : nr - 1) * w_row;
	if (type == GGUF_TYPE_Q6_K) {
		const size_t ub6 = unit_bytes(1, 16, false);
		for (int64_t b = 0; b < n / QK_K; b++) {
			uint8_t *p = panel + (size_t)b * 16 * ub6;
			const size_t off = (size_t)b * (size_t)bb;
			for (int r = 0; r < PR; r++)
				for (int l = 0; l < bb; l += 64)
					_mm_prefetch((const char *)row[r] + off + l + 4 * PREFETCH,
						     _MM_HINT_T0);
			for (int h = 0; h < 2; h++)
				repack_q6_K_half(row + 8 * h, off, p, ub6, h);
			for (int r = 0; r < PR; r++) {
				const struct block_q6_K *k = (const struct block_q6_K *)(row[r] + off);
				const float d = _cvtsh_ss(k->d);
				for (int j = 0; j < 16; j++)
					((float *)(p + (size_t)j * ub6 + 4 * 64))[r] = d * (float)k->scales[j];
			}
		}
		return;
	}
	if (min) { /* Q4_K, Q5_K: d, dmin and the 12 scale bytes first in both */
		for (int64_t b = 0; b < n / QK_K; b++) {
			uint8_t *p = panel + (size_t)b * 8 * ub;
			const size_t off = (size_t)b * (size_t)bb;
			for (int r = 0; r < PR; r++)
				for (int l = 0; l < bb; l += 64)
					_mm_prefetch((const char *)row[r] + off + l + 4 * PREFETCH,
						     _MM_HINT_T0);
			for (int h = 0; h < 2; h++)
				repack_q45_K_half(row + 8 * h, off, p, ub, h, type == GGUF_TYPE_Q5_K);
			/* unit j: scale d·sc_j, min −dmin·m_j of each row */
			for (int r = 0; r < PR; r++) {
				const struct block_q4_K *k = (const struct block_q4_K *)(row[r] + off);
				const float d = _cvtsh_ss(k->d), dmin = _cvtsh_ss(k->dmin);
				for (int j = 0; j < 8; j++) {
					uint8_t s6, m6;
					kern_k4_scale_min(j, k->scales, &s6, &m6);
					float *sc = (float *)(p + (size_t)j * ub + (size_t)P * 512);
					sc[r] = d * (float)s6;
					sc[PR + r] = -dmin * (float)m6;
				}
			}
		}
		return;
	}
	for (int64_t b = 0; b < n / 32; b++) {
		uint8_t *p = panel + (size_t)b * ub;
		const size_t off = (size_t)b * (size_t)bb;
		/* the rows come from DRAM once per call: fetch ahead of the loads */
		for (int r = 0; r < PR; r++)
			_mm_prefetch((const char *)row[r] + off + PREFETCH, _MM_HINT_T0);
		for (int h = 0; h < 2; h++) {
			if (P == 1)
				repack_q4_0_half(row + 8 * h, off, p, h);
			else
				repack_q8_0_half(row + 8 * h, off, p, h);
		}
		/* the 16 rows' d (first in both block types), fp16 → float */
		uint16_t d[PR];
		for (int r = 0; r < PR; r++)
			memcpy(&d[r], row[r] + off, 2);
		float *sc = (float *)(p + (size_t)P * 512);
		_mm256_store_ps(sc, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)d)));
		_mm256_store_ps(sc + 8, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(d + 8))));
	}
}

INLINE size_t act_bytes_int(int U, bool min, int64_t n)
{
	return (size_t)(n / U) * rec_bytes(U, min);
}

/* Σ of 32 int8 codes. */
INLINE int sum32(const int8_t *p)
{
	__m256i a = _mm256_loadu_si256((const __m256i *)p);
	__m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), a),
				      _mm256_set1_epi16(1));
	__m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
	s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(1, 0, 3, 2)));
	s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(2, 3, 0, 1)));
	return _mm_cvtsi128_si32(s4);
}

/* Quantizes one token (n floats) into slot `slot` of the token block blk. */
INLINE void act_pack_int(uint32_t type, int offset, const float *x, uint8_t *blk, int64_t n,
			 int slot)
{
	if (type == GGUF_TYPE_Q6_K) { /* Q8_K, units of 16: corr −32·bsums */
		kern_from_float_fn quant = kern_act_quant_avx2(GGUF_TYPE_Q8_K);
		struct block_q8_K bk;
		for (int64_t k = 0; k < n / QK_K; k++) {
			quant(x + k * QK_K, &bk, QK_K);
			for (int j = 0; j < 16; j++) {
				uint8_t *rec = blk + (size_t)(16 * k + j) * rec_bytes(16, false);
				const int32_t corr = -offset * bk.bsums[j];
				memcpy(rec + 16 * slot, bk.qs + 16 * j, 16);
				memcpy(rec + PC * 16 + 4 * slot, &bk.d, 4);
				memcpy(rec + PC * 16 + PC * 4 + 4 * slot, &corr, 4);
			}
		}
		return;
	}
	if (type == GGUF_TYPE_Q4_K || type == GGUF_TYPE_Q5_K) { /* Q8_K: d per 256, Σ per 16 (bsums) */
		kern_from_float_fn quant = kern_act_quant_avx2(GGUF_TYPE_Q8_K);
		struct block_q8_K bk;
		for (int64_t k = 0; k < n / QK_K; k++) {
			quant(x + k * QK_K, &bk, QK_K);
			for (int j = 0; j < 8; j++) {
				uint8_t *rec = blk + (size_t)(8 * k + j) * rec_bytes(32, true);
				const int32_t corr = 0;
				const float s = bk.d * (float)(bk.bsums[2 * j] + bk.bsums[2 * j + 1]);
				memcpy(rec + 32 * slot, bk.qs + 32 * j, 32);
				memcpy(rec + PC * 32 + 4 * slot, &bk.d, 4);
				memcpy(rec + PC * 32 + PC * 4 + 4 * slot, &corr, 4);
				memcpy(rec + PC * 32 + PC * 8 + 4 * slot, &s, 4);
			}
		}
		return;
	}
	kern_from_float_fn quant = kern_act_quant_avx2(GGUF_TYPE_Q8_0);
	struct block_q8_0 b;
	for (int64_t u = 0; u < n / 32; u++) {
		uint8_t *rec = blk + (size_t)u * rec_bytes(32, false);
		quant(x + u * 32, &b, 32);
		const float d = _cvtsh_ss(b.d);
		const int32_t corr = -offset * sum32(b.qs);
		memcpy(rec + 32 * slot, b.qs, 32);
		memcpy(rec + PC * 32 + 4 * slot, &d, 4);
		memcpy(rec + PC * 32 + PC * 4 + 4 * slot, &corr, 4);
	}
}

/* Keeps *v in a register as it is: GCC otherwise reassociates the 8
 * in-order int16 additions of a block into a tree of all 8 products,
 * which needs 8 live registers per accumulator and spills (measured). */
INLINE void pin(__m256i *v)
{
	__asm__("" : "+x"(*v));
}

/* One 8-row half (hv) of a panel × NT tokens (c0.. of the token block at
 * act) over the whole row: y[c·ys + r] for r < nr of that half. */
INLINE void int_tile(const uint8_t *panel, const int P, const int U, const bool MIN, const int GS,
		     int64_t nb, const uint8_t *act, int hv, int c0, const int NT, float *y, size_t ys,
		     int nr)
{
	const size_t ub = unit_bytes(P, U, MIN), rb = rec_bytes(U, MIN);
	const int G = U / 4;
	const __m256i ones = _mm256_set1_epi16(1), sixteen = _mm256_set1_epi16(16);
	__m256 acc[4];
#pragma GCC unroll 4
	for (int c = 0; c < NT; c++)
		acc[c] = _mm256_setzero_ps();
	for (int64_t b = 0; b < nb; b++) {
		const uint8_t *p = panel + (size_t)b * ub + 32 * hv;
		const uint8_t *a = act + (size_t)b * rb;
		__m256i s16[2][4], i32[4];
#pragma GCC unroll 8
		for (int g = 0; g < G; g++) {
			__m256i av[4];
#pragma GCC unroll 4
			for (int c = 0; c < NT; c++)
				av[c] = _mm256_set1_epi32(ld32(a + U * (c0 + c) + 4 * g));
#pragma GCC unroll 2
			for (int pl = 0; pl < P; pl++) {
				const __m256i wv = _mm256_load_si256((const __m256i *)(p + 64 * (P * g + pl)));
#pragma GCC unroll 4
				for (int c = 0; c < NT; c++) {
					__m256i m = _mm256_maddubs_epi16(wv, av[c]);
					s16[pl][c] = g % GS ? _mm256_add_epi16(s16[pl][c], m) : m;
					pin(&s16[pl][c]);
				}
			}
			if (P == 1 && g % GS == GS - 1) /* one plane: widen every GS groups */
#pragma GCC unroll 4
				for (int c = 0; c < NT; c++) {
					const __m256i w32 = _mm256_madd_epi16(s16[0][c], ones);
					i32[c] = g == GS - 1 ? w32 : _mm256_add_epi32(i32[c], w32);
				}
		}
		const __m256 sc = _mm256_load_ps((const float *)(p - 32 * hv + P * G * 64) + 8 * hv);
#pragma GCC unroll 4
		for (int c = 0; c < NT; c++) {
			__m256i isum = P == 2 ? _mm256_add_epi32(_mm256_madd_epi16(s16[0][c], sixteen),
								 _mm256_madd_epi16(s16[1][c], ones))
					      : i32[c];
			isum = _mm256_add_epi32(isum,
						_mm256_set1_epi32(ld32(a + PC * U + PC * 4 + 4 * (c0 + c))));
			const __m256 s = _mm256_mul_ps(sc, _mm256_set1_ps(ldf(a + PC * U + 4 * (c0 + c))));
			acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), s, acc[c]);
		}
		if (MIN) {
			const __m256 mn = _mm256_load_ps((const float *)(p - 32 * hv + P * G * 64 + 64) + 8 * hv);
#pragma GCC unroll 4
			for (int c = 0; c < NT; c++)
				acc[c] = _mm256_fmadd_ps(mn, _mm256_set1_ps(ldf(a + PC * U + PC * 8 + 4 * (c0 + c))),
							 acc[c]);
		}
	}
	const int rows = nr - 8 * hv;
#pragma GCC unroll 4
	for (int c = 0; c < NT; c++) {
		float *yc = y + (size_t)c * ys + 8 * hv;
		if (rows >= 8) {
			_mm256_storeu_ps(yc, acc[c]);
		} else {
			float tmp[8];
			_mm256_storeu_ps(tmp, acc[c]);
			memcpy(yc, tmp, (size_t)rows * sizeof(float));
		}
	}
}

/* One tile kernel per kind (Q4_0: 1 plane; Q8_0: 2 planes; Q4_K: 1 plane
 * with a min; Q6_K: 16-element units, int16 sums of 2 groups; Q5_K: with
 * a min, sums of 4 groups) × token count. */
#define TILE_FN(name, P, U, MIN, GS, NT)                                                  \
	static void name(const uint8_t *panel, int64_t nb, const uint8_t *act, int hv, int c0, \
			 float *y, size_t ys, int nr)                                     \
	{                                                                                \
		int_tile(panel, P, U, MIN, GS, nb, act, hv, c0, NT, y, ys, nr);          \
	}
#define TILE_KIND(k, P, U, MIN, GS)                                                       \
	TILE_FN(tile##k##_1, P, U, MIN, GS, 1)                                           \
	TILE_FN(tile##k##_2, P, U, MIN, GS, 2)                                           \
	TILE_FN(tile##k##_3, P, U, MIN, GS, 3)                                           \
	TILE_FN(tile##k##_4, P, U, MIN, GS, 4)
TILE_KIND(0, 1, 32, false, 8)
TILE_KIND(1, 2, 32, false, 8)
TILE_KIND(2, 1, 32, true, 8)
TILE_KIND(3, 1, 16, false, 2)
TILE_KIND(4, 1, 32, true, 4)

typedef void (*tile_fn)(const uint8_t *, int64_t, const uint8_t *, int, int, float *, size_t, int);
static const tile_fn tiles[5][4] = { { tile0_1, tile0_2, tile0_3, tile0_4 },
				     { tile1_1, tile1_2, tile1_3, tile1_4 },
				     { tile2_1, tile2_2, tile2_3, tile2_4 },
				     { tile3_1, tile3_2, tile3_3, tile3_4 },
				     { tile4_1, tile4_2, tile4_3, tile4_4 } };

/* The cache lines [l0, l1) of the 16 rows after this panel (line l: row
 * l / lpr, its line l % lpr), towards L2 for the next panel's repack.
 * Past the matrix's last row this touches nothing that faults. */
INLINE void prefetch_next(const uint8_t *w, size_t w_row, int64_t lpr, int64_t l0, int64_t l1)
{
	const uint8_t *next = w + PR * w_row;
	for (int64_t l = l0; l < l1; l++)
		_mm_prefetch((const char *)next + (size_t)(l / lpr) * w_row + (size_t)(l % lpr) * 64,
			     _MM_HINT_T1);
}

INLINE void panel_int(uint32_t type, const int P, int bb, int64_t n, const uint8_t *w,
		      size_t w_row, int nr, const uint8_t *act, size_t a_blk, int64_t n_tok, float *y,
		      size_t ys, uint8_t *scratch)
{
	const int U = type == GGUF_TYPE_Q6_K ? 16 : 32;
	const int64_t nb = n / U, passes = (n_tok + PC - 1) / PC;
	const int64_t lpr = (int64_t)(w_row + 63) / 64;
	const int kind = type == GGUF_TYPE_Q6_K	  ? 3
			 : type == GGUF_TYPE_Q5_K ? 4
			 : type == GGUF_TYPE_Q4_K ? 2
						  : P - 1;
	repack(type, P, bb, n, w, w_row, nr, scratch);
	for (int64_t i = 0; i < passes; i++) {
		const int64_t t0 = i * PC;
		const int nc = (int)(n_tok - t0 < PC ? n_tok - t0 : PC);
		const uint8_t *a = act + (size_t)i * a_blk;
		if (nr == PR)
			prefetch_next(w, w_row, lpr, PR * lpr * i / passes, PR * lpr * (i + 1) / passes);
		for (int c0 = 0; c0 < nc; c0 += 4) {
			const int nt = nc - c0 < 4 ? nc - c0 : 4;
			float *yt = y + (size_t)(t0 + c0) * ys;
			for (int hv = 0; hv < 2 && 8 * hv < nr; hv++)
				tiles[kind][nt - 1](scratch, nb, a, hv, c0, yt, ys, nr);
		}
	}
}

/* Panel gemm from MINTOK tokens up (below it the per-call repack costs more
 * than dot_cols spends). */
#define INT_TYPE(ty, TY, P, U, BB, OFF, MIN, MINTOK)                                         \
	static size_t act_bytes_##ty(int64_t n)                                           \
	{                                                                                \
		return act_bytes_int(U, MIN, n);                                            \
	}                                                                                \
	static void pack_##ty(const float *x, uint8_t *blk, int64_t n, int slot)          \
	{                                                                                \
		act_pack_int(GGUF_TYPE_##TY, OFF, x, blk, n, slot);                      \
	}                                                                                \
	static size_t scratch_##ty(int64_t n)                                             \
	{                                                                                \
		return (size_t)(n / U) * unit_bytes(P, U, MIN);                            \
	}                                                                                \
	static void panel_##ty(int64_t n, const uint8_t *w, size_t w_row, int nr,         \
			       const uint8_t *act, size_t a_blk, int64_t n_tok, float *y,  \
			       size_t ys, uint8_t *scratch)                               \
	{                                                                                \
		panel_int(GGUF_TYPE_##TY, P, BB, n, w, w_row, nr, act, a_blk, n_tok, y, ys, \
			  scratch);                                                      \
	}                                                                                \
	static const struct kern_gemm gemm_##ty = { MINTOK, act_bytes_##ty, pack_##ty,    \
						    scratch_##ty, panel_##ty, 0 };

/*       type  TYPE  planes unit block bytes offset min   min tokens */
INT_TYPE(q4_0, Q4_0, 1, 32, 18, 8, false, 4)
INT_TYPE(q8_0, Q8_0, 2, 32, 34, 128, false, 4)
INT_TYPE(q4_K, Q4_K, 1, 32, 144, 0, true, 8)
INT_TYPE(q5_K, Q5_K, 1, 32, 176, 0, true, 8)
INT_TYPE(q6_K, Q6_K, 1, 16, 210, 32, false, 8)

/* ================= float types (F32, F16, BF16) =================
 * The panel is [k][16 rows] floats for a chunk of KC elements (converted
 * once per call; F16 and BF16 convert to F32 exactly), and the float
 * activations, packed x[k][8 tokens] per block of 8 tokens, are broadcast
 * from there: per element, two weight vectors (16 rows) meet up to 4
 * broadcast tokens in 8 multiply-adds into 8 accumulators, so loads stay
 * below one per multiply-add.  y is accumulated over the chunks.  The
 * order of additions differs from the reference dot (per element, in
 * chunks), the products do not: F32 arithmetic on exactly converted
 * weights. */

#define KC 256 /* elements per chunk: a 16 KiB panel, in L1 beside the activations */

/* 8 floats of a row from element k: 8, or the first `left` and zeros. */
INLINE __m256 row8f(uint32_t type, const uint8_t *row, int64_t k, int64_t left)
{
	if (left < 8) {
		float t[8] = { 0 };
		for (int64_t i = 0; i < left; i++) {
			uint16_t h;
			if (type == GGUF_TYPE_F32) {
				memcpy(&t[i], row + (size_t)(k + i) * 4, 4);
				continue;
			}
			memcpy(&h, row + (size_t)(k + i) * 2, 2);
			t[i] = type == GGUF_TYPE_F16 ? dm_f16_to_f32(h) : dm_bf16_to_f32(h);
		}
		return _mm256_loadu_ps(t);
	}
	switch (type) {
	case GGUF_TYPE_F32:
		return _mm256_loadu_ps((const float *)(const void *)row + k);
	case GGUF_TYPE_F16:
		return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + (size_t)k * 2)));
	default: { /* BF16: the high half of an F32 */
		const __m128i h = _mm_loadu_si128((const __m128i *)(row + (size_t)k * 2));
		return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
	}
	}
}

/* r[i] = 8 floats of row i; on return r[k] = element k of rows 0..7. */
INLINE void transpose8x8_ps(__m256 r[8])
{
	__m256 t[8], u[8];
	for (int i = 0; i < 4; i++) {
		t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);     /* i0 j0 i1 j1 | i4 j4 i5 j5 */
		t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]); /* i2 j2 i3 j3 | i6 j6 i7 j7 */
	}
	for (int q = 0; q < 2; q++) { /* rows 4q..4q+3 */
		u[4 * q] = _mm256_shuffle_ps(t[4 * q], t[4 * q + 2], 0x44);     /* element 0 | 4 */
		u[4 * q + 1] = _mm256_shuffle_ps(t[4 * q], t[4 * q + 2], 0xEE); /* 1 | 5 */
		u[4 * q + 2] = _mm256_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0x44); /* 2 | 6 */
		u[4 * q + 3] = _mm256_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0xEE); /* 3 | 7 */
	}
	for (int e = 0; e < 4; e++) {
		r[e] = _mm256_permute2f128_ps(u[e], u[4 + e], 0x20);
		r[e + 4] = _mm256_permute2f128_ps(u[e], u[4 + e], 0x31);
	}
}

/* Elements [k0, k0 + kc) of the 16 rows → panel[k][16] (to a multiple of 8
 * elements, zeros past the row's end). */
INLINE void repack_float(uint32_t type, const uint8_t *const row[PR], int64_t n, int64_t k0,
			 int64_t kc, float *panel)
{
	for (int64_t k = 0; k < kc; k += 8)
		for (int h = 0; h < 2; h++) {
			__m256 v[8];
			for (int i = 0; i < 8; i++)
				v[i] = row8f(type, row[8 * h + i], k0 + k, n - k0 - k);
			transpose8x8_ps(v);
			for (int g = 0; g < 8; g++)
				_mm256_store_ps(panel + (k + g) * PR + 8 * h, v[g]);
		}
}

/* Rows 8h.. of y (the first `rows` of 8 when fewer remain). */
INLINE __m256 y_load(const float *y, int rows)
{
	float t[8] = { 0 };
	if (rows >= 8)
		return _mm256_loadu_ps(y);
	memcpy(t, y, (size_t)(rows > 0 ? rows : 0) * sizeof(float));
	return _mm256_loadu_ps(t);
}

INLINE void y_store(float *y, __m256 v, int rows)
{
	float t[8];
	if (rows >= 8) {
		_mm256_storeu_ps(y, v);
		return;
	}
	_mm256_storeu_ps(t, v);
	if (rows > 0)
		memcpy(y, t, (size_t)rows * sizeof(float));
}

/* Tokens c0..c0 + NT − 1 of a block (xb: its x[k][8] from the chunk's
 * first element) against kc panel elements, added to y (stored when
 * first); nr rows of the panel are real. */
INLINE void float_tile(const float *panel, int64_t kc, const float *xb, int c0, float *y, size_t ys,
		       int nr, bool first, const int NT)
{
	__m256 a0[4], a1[4];
#pragma GCC unroll 4
	for (int c = 0; c < NT; c++) {
		a0[c] = first ? _mm256_setzero_ps() : y_load(y + (size_t)c * ys, nr);
		a1[c] = first ? _mm256_setzero_ps() : y_load(y + (size_t)c * ys + 8, nr - 8);
	}
#pragma GCC unroll 2
	for (int64_t k = 0; k < kc; k++) {
		const __m256 w0 = _mm256_load_ps(panel + k * PR), w1 = _mm256_load_ps(panel + k * PR + 8);
#pragma GCC unroll 4
		for (int c = 0; c < NT; c++) {
			const __m256 b = _mm256_broadcast_ss(xb + k * PC + c0 + c);
			a0[c] = _mm256_fmadd_ps(w0, b, a0[c]);
			a1[c] = _mm256_fmadd_ps(w1, b, a1[c]);
		}
	}
#pragma GCC unroll 4
	for (int c = 0; c < NT; c++) {
		y_store(y + (size_t)c * ys, a0[c], nr);
		y_store(y + (size_t)c * ys + 8, a1[c], nr - 8);
	}
}

#define FTILE_FN(NT)                                                                      \
	static void ftile_##NT(const float *panel, int64_t kc, const float *xb, int c0, float *y, \
			       size_t ys, int nr, bool first)                             \
	{                                                                                \
		float_tile(panel, kc, xb, c0, y, ys, nr, first, NT);                     \
	}
FTILE_FN(1)
FTILE_FN(2)
FTILE_FN(3)
FTILE_FN(4)
typedef void (*ftile_fn)(const float *, int64_t, const float *, int, float *, size_t, int, bool);
static const ftile_fn ftiles[4] = { ftile_1, ftile_2, ftile_3, ftile_4 };

INLINE void panel_float(uint32_t type, int64_t n, const uint8_t *w, size_t w_row, int nr,
			const uint8_t *act, size_t a_blk, int64_t n_tok, float *y, size_t ys,
			uint8_t *scratch)
{
	const uint8_t *row[PR];
	float *panel = (float *)(void *)scratch;
	for (int r = 0; r < PR; r++)
		row[r] = w + (size_t)(r < nr ? r : nr - 1) * w_row;
	for (int64_t k0 = 0; k0 < n; k0 += KC) {
		const int64_t kc = n - k0 < KC ? n - k0 : KC;
		repack_float(type, row, n, k0, kc, panel);
		for (int64_t t0 = 0; t0 < n_tok; t0 += PC) {
			const int nc = (int)(n_tok - t0 < PC ? n_tok - t0 : PC);
			const float *xb = (const float *)(const void *)(act + (size_t)(t0 / PC) * a_blk) +
					  (size_t)k0 * PC;
			for (int c0 = 0; c0 < nc; c0 += 4) {
				const int nt = nc - c0 < 4 ? nc - c0 : 4;
				ftiles[nt - 1](panel, kc, xb, c0, y + (size_t)(t0 + c0) * ys, ys, nr, k0 == 0);
			}
		}
	}
}

static size_t scratch_float(int64_t n)
{
	(void)n;
	return (size_t)KC * PR * sizeof(float);
}

#define FLOAT_TYPE(ty, TY)                                                                \
	static void panel_##ty(int64_t n, const uint8_t *w, size_t w_row, int nr,         \
			       const uint8_t *act, size_t a_blk, int64_t n_tok, float *y,  \
			       size_t ys, uint8_t *scratch)                               \
	{                                                                                \
		panel_float(GGUF_TYPE_##TY, n, w, w_row, nr, act, a_blk, n_tok, y, ys, scratch); \
	}                                                                                \
	static const struct kern_gemm gemm_##ty = { 4, kern_gemm_float_act_bytes,          \
						    kern_gemm_float_pack, scratch_float, \
						    panel_##ty, 0 };

FLOAT_TYPE(f32, F32)
FLOAT_TYPE(f16, F16)
FLOAT_TYPE(bf16, BF16)

const struct kern_gemm *kern_gemm_avx2(uint32_t type)
{
	switch (type) {
	case GGUF_TYPE_F32:
		return &gemm_f32;
	case GGUF_TYPE_F16:
		return &gemm_f16;
	case GGUF_TYPE_BF16:
		return &gemm_bf16;
	case GGUF_TYPE_Q4_0:
		return &gemm_q4_0;
	case GGUF_TYPE_Q8_0:
		return &gemm_q8_0;
	case GGUF_TYPE_Q4_K:
		return &gemm_q4_K;
	case GGUF_TYPE_Q5_K:
		return &gemm_q5_K;
	case GGUF_TYPE_Q6_K:
		return &gemm_q6_K;
	default:
		return NULL;
	}
}
#else
const struct kern_gemm *kern_gemm_avx2(uint32_t type)
{
	(void)type;
	return NULL;
}
#endif

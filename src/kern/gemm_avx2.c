/*
 * kern/gemm_avx2 — the prefill matmul on AVX2 machines (no VNNI): weight
 * rows go through in panels of KERN_PANEL_ROWS = 16 rows, each repacked
 * once per call into per-thread scratch so that one 256-bit vector holds
 * the same 4 elements ("group") of 8 rows, then multiplied against every
 * token.  Only called after kern_isa_supported(AVX2).  Q4_0, Q8_0, Q4_K.
 *
 * Why this shape: with rows across the vector one token's 4 activation
 * bytes are broadcast to 8 rows, so there is no horizontal sum and the
 * float work (convert, scale, add) is one instruction per 8 rows per block.
 * vpmaddubsw (unsigned × signed bytes, pairs added in int16) needs small
 * unsigned weights: codes are kept as 4-bit values 0..15, so a pair is at
 * most 2·15·127 = 3810 (2·15·128 = 3840 for an activation of −128) and the
 * 8 groups of a block add up in int16 (8·3840 = 30720 < 32767) before one
 * vpmaddwd widens them to int32.  A tile is 8 rows × TT tokens (8 rows ×
 * 4 tokens × 2 planes for Q8_0) of int16 and float accumulators, which
 * fits the 16 ymm registers with the weight and broadcast operands.
 *
 * Panel layout, per unit of 32 elements (a Q4_0/Q8_0 block, or one
 * sub-block of a Q4_K block), P planes (Q4_0, Q4_K: 1, Q8_0: 2):
 *
 *   codes  [8 groups][P planes][16 rows][4 bytes]  group g = elements 4g..4g+3
 *   scale  [16 rows] float                          Q4_0/Q8_0: d; Q4_K: d·sc
 *   min    [16 rows] float                          Q4_K only: −dmin·m
 *
 * Q4_0's and Q4_K's plane is their codes q (values d·(q − 8) and
 * d·sc·q − dmin·m).  Q8_0's signed codes w become u = w + 128 = 16·h + l,
 * and its planes are h then l (0..15 each).
 *
 * Activations are quantized once per call by the reference-exact Q8_0
 * (Q4_K: Q8_K) quantizer and packed in blocks of KERN_GEMM_TOK = 8 tokens,
 * per unit one record:
 *
 *   int8  codes[8][32]  token c's codes of the unit, element order
 *   float d[8]          the token's activation scale (fp16 d as float; Q8_K's d)
 *   int32 corr[8]       −offset·Σ codes (offset 8 for Q4_0, 128 for Q8_0, 0)
 *   float s[8]          Q4_K only: d·Σ codes of the unit (from Q8_K's bsums)
 *
 * so that per unit, row r and token t (a = activation codes):
 *   Q4_0: isum = Σ q·a + corr                     = Σ (q − 8)·a
 *   Q8_0: isum = 16·Σ h·a + Σ l·a + corr          = Σ (u − 128)·a = Σ w·a
 *   Q4_K: isum = Σ q·a
 *   y   += isum·(scale_r·d_t)  [+ min_r·s_t for Q4_K]
 * which is ref.c's integer sum per block (per sub-block for Q4_K, whose
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

#include "gguf/gguf.h"

#define INLINE static inline __attribute__((always_inline))
#define PR KERN_PANEL_ROWS /* 16: two 8-row halves */
#define PC KERN_GEMM_TOK   /* 8 tokens per activation block */
#define PREFETCH 512       /* repack: bytes ahead in each weight row */

_Static_assert(PR == 16 && PC == 8, "gemm_avx2 assumes 16-row panels and 8-token blocks");

/* Bytes of one unit of the panel with P planes (and a min). */
INLINE size_t unit_bytes(int P, bool min)
{
	return (size_t)P * 8 * 64 + 64 + (min ? 64 : 0);
}

/* Bytes of one unit's activation record: codes, d, corr (and s). */
INLINE size_t rec_bytes(bool min)
{
	return PC * 32 + PC * 4 * (min ? 3 : 2);
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

/* r[i] = [row i | row i + 4] (4 dwords each, i < 4); on return r[k] holds
 * dword k of rows 0..7 in order. */
INLINE void transpose8x4(__m256i r[4])
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

INLINE __m256i load2x128(const uint8_t *lo, const uint8_t *hi)
{
	return _mm256_set_m128i(_mm_loadu_si128((const __m128i *)hi),
				_mm_loadu_si128((const __m128i *)lo));
}

/* One block of 8 rows (row[0..8), block at byte off) into the panel unit p
 * at row half h (bytes 32h of each 64-byte group/plane slot). */
INLINE void repack_q4_0_half(const uint8_t *const row[8], size_t off, uint8_t *p, int h)
{
	const __m256i m4 = _mm256_set1_epi8(0x0F);
	__m256i r[4];
	for (int i = 0; i < 4; i++) /* the 16 code bytes, past the 2-byte d */
		r[i] = load2x128(row[i] + off + 2, row[i + 4] + off + 2);
	transpose8x4(r);
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
			r[i] = load2x128(row[i] + off + 2 + 16 * half, row[i + 4] + off + 2 + 16 * half);
		transpose8x4(r);
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

/* Q4_K: one 256-block of 8 rows into the panel's 8 units (ub bytes apart).
 * qs chunk c (32 bytes) holds elements 64c.. in its low nibbles (unit 2c)
 * and 64c + 32.. in its high nibbles (unit 2c + 1); byte 4g + i of a
 * chunk is element 4g + i of both units, so a dword transpose of each
 * 16-byte half gives groups 4·half + k directly. */
INLINE void repack_q4_K_half(const uint8_t *const row[8], size_t off, uint8_t *p, size_t ub,
			     int h)
{
	const __m256i m4 = _mm256_set1_epi8(0x0F);
	const size_t qs = offsetof(struct block_q4_K, qs);
	for (int c = 0; c < 4; c++)
		for (int half = 0; half < 2; half++) {
			__m256i r[4];
			const size_t o = off + qs + 32 * (size_t)c + 16 * (size_t)half;
			for (int i = 0; i < 4; i++)
				r[i] = load2x128(row[i] + o, row[i + 4] + o);
			transpose8x4(r);
			for (int k = 0; k < 4; k++) {
				const int g = 4 * half + k;
				uint8_t *lo = p + (size_t)(2 * c) * ub + 64 * g + 32 * h;
				_mm256_store_si256((__m256i *)lo, _mm256_and_si256(r[k], m4));
				_mm256_store_si256((__m256i *)(lo + ub),
						   _mm256_and_si256(_mm256_srli_epi16(r[k], 4), m4));
			}
		}
}

/* Repacks rows w[0..nr) (rows past nr repeat row nr − 1; their results are
 * never stored) into the panel layout above; bb bytes per block, P planes. */
INLINE void repack(uint32_t type, const int P, int bb, int64_t n, const uint8_t *w, size_t w_row,
		   int nr, uint8_t *panel)
{
	const uint8_t *row[PR];
	const bool min = type == GGUF_TYPE_Q4_K;
	const size_t ub = unit_bytes(P, min);
	for (int r = 0; r < PR; r++)
		row[r] = w + (size_t)(r < nr ? r : nr - 1) * w_row;
	if (type == GGUF_TYPE_Q4_K) {
		for (int64_t b = 0; b < n / QK_K; b++) {
			uint8_t *p = panel + (size_t)b * 8 * ub;
			const size_t off = (size_t)b * (size_t)bb;
			for (int r = 0; r < PR; r++)
				for (int l = 0; l < bb; l += 64)
					_mm_prefetch((const char *)row[r] + off + l + 4 * PREFETCH,
						     _MM_HINT_T0);
			for (int h = 0; h < 2; h++)
				repack_q4_K_half(row + 8 * h, off, p, ub, h);
			/* unit j: scale d·sc_j, min −dmin·m_j of each row */
			for (int r = 0; r < PR; r++) {
				const struct block_q4_K *k = (const struct block_q4_K *)(row[r] + off);
				const float d = _cvtsh_ss(k->d), dmin = _cvtsh_ss(k->dmin);
				for (int j = 0; j < 8; j++) {
					uint8_t s6, m6;
					kern_k4_scale_min(j, k->scales, &s6, &m6);
					float *sc = (float *)(p + (size_t)j * ub + 512);
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

INLINE size_t act_bytes_int(bool min, int64_t n)
{
	return (size_t)(n / 32) * rec_bytes(min);
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
	if (type == GGUF_TYPE_Q4_K) { /* Q8_K: d per 256, Σ per 16 (bsums) */
		kern_from_float_fn quant = kern_act_quant_avx2(GGUF_TYPE_Q8_K);
		struct block_q8_K bk;
		for (int64_t k = 0; k < n / QK_K; k++) {
			quant(x + k * QK_K, &bk, QK_K);
			for (int j = 0; j < 8; j++) {
				uint8_t *rec = blk + (size_t)(8 * k + j) * rec_bytes(true);
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
		uint8_t *rec = blk + (size_t)u * rec_bytes(false);
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
INLINE void int_tile(const uint8_t *panel, const int P, const bool MIN, int64_t nb,
		     const uint8_t *act, int hv, int c0, const int NT, float *y, size_t ys, int nr)
{
	const size_t ub = unit_bytes(P, MIN), rb = rec_bytes(MIN);
	const __m256i ones = _mm256_set1_epi16(1), sixteen = _mm256_set1_epi16(16);
	__m256 acc[4];
#pragma GCC unroll 4
	for (int c = 0; c < NT; c++)
		acc[c] = _mm256_setzero_ps();
	for (int64_t b = 0; b < nb; b++) {
		const uint8_t *p = panel + (size_t)b * ub + 32 * hv;
		const uint8_t *a = act + (size_t)b * rb;
		__m256i s16[2][4];
#pragma GCC unroll 8
		for (int g = 0; g < 8; g++) {
			__m256i av[4];
#pragma GCC unroll 4
			for (int c = 0; c < NT; c++)
				av[c] = _mm256_set1_epi32(ld32(a + 32 * (c0 + c) + 4 * g));
#pragma GCC unroll 2
			for (int pl = 0; pl < P; pl++) {
				const __m256i wv = _mm256_load_si256((const __m256i *)(p + 64 * (P * g + pl)));
#pragma GCC unroll 4
				for (int c = 0; c < NT; c++) {
					__m256i m = _mm256_maddubs_epi16(wv, av[c]);
					s16[pl][c] = g ? _mm256_add_epi16(s16[pl][c], m) : m;
					pin(&s16[pl][c]);
				}
			}
		}
		const __m256 sc = _mm256_load_ps((const float *)(p - 32 * hv + P * 512) + 8 * hv);
#pragma GCC unroll 4
		for (int c = 0; c < NT; c++) {
			__m256i isum = P == 2 ? _mm256_add_epi32(_mm256_madd_epi16(s16[0][c], sixteen),
								 _mm256_madd_epi16(s16[1][c], ones))
					      : _mm256_madd_epi16(s16[0][c], ones);
			isum = _mm256_add_epi32(isum,
						_mm256_set1_epi32(ld32(a + PC * 32 + PC * 4 + 4 * (c0 + c))));
			const __m256 s = _mm256_mul_ps(sc, _mm256_set1_ps(ldf(a + PC * 32 + 4 * (c0 + c))));
			acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), s, acc[c]);
		}
		if (MIN) {
			const __m256 mn = _mm256_load_ps((const float *)(p - 32 * hv + P * 512 + 64) + 8 * hv);
#pragma GCC unroll 4
			for (int c = 0; c < NT; c++)
				acc[c] = _mm256_fmadd_ps(mn, _mm256_set1_ps(ldf(a + PC * 32 + PC * 8 + 4 * (c0 + c))),
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

/* One tile kernel per kind (1 plane, 2 planes, 1 plane with a min) ×
 * token count. */
#define TILE_FN(name, P, MIN, NT)                                                         \
	static void name(const uint8_t *panel, int64_t nb, const uint8_t *act, int hv, int c0, \
			 float *y, size_t ys, int nr)                                     \
	{                                                                                \
		int_tile(panel, P, MIN, nb, act, hv, c0, NT, y, ys, nr);                 \
	}
TILE_FN(tile1_1, 1, false, 1)
TILE_FN(tile1_2, 1, false, 2)
TILE_FN(tile1_3, 1, false, 3)
TILE_FN(tile1_4, 1, false, 4)
TILE_FN(tile2_1, 2, false, 1)
TILE_FN(tile2_2, 2, false, 2)
TILE_FN(tile2_3, 2, false, 3)
TILE_FN(tile2_4, 2, false, 4)
TILE_FN(tilem_1, 1, true, 1)
TILE_FN(tilem_2, 1, true, 2)
TILE_FN(tilem_3, 1, true, 3)
TILE_FN(tilem_4, 1, true, 4)

typedef void (*tile_fn)(const uint8_t *, int64_t, const uint8_t *, int, int, float *, size_t, int);
static const tile_fn tiles[3][4] = { { tile1_1, tile1_2, tile1_3, tile1_4 },
				     { tile2_1, tile2_2, tile2_3, tile2_4 },
				     { tilem_1, tilem_2, tilem_3, tilem_4 } };

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
	const int64_t nb = n / 32, passes = (n_tok + PC - 1) / PC;
	const int64_t lpr = (int64_t)(w_row + 63) / 64;
	const int kind = type == GGUF_TYPE_Q4_K ? 2 : P - 1;
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
#define INT_TYPE(ty, TY, P, BB, OFF, MIN, MINTOK)                                         \
	static size_t act_bytes_##ty(int64_t n)                                           \
	{                                                                                \
		return act_bytes_int(MIN, n);                                            \
	}                                                                                \
	static void pack_##ty(const float *x, uint8_t *blk, int64_t n, int slot)          \
	{                                                                                \
		act_pack_int(GGUF_TYPE_##TY, OFF, x, blk, n, slot);                      \
	}                                                                                \
	static size_t scratch_##ty(int64_t n)                                             \
	{                                                                                \
		return (size_t)(n / 32) * unit_bytes(P, MIN);                            \
	}                                                                                \
	static void panel_##ty(int64_t n, const uint8_t *w, size_t w_row, int nr,         \
			       const uint8_t *act, size_t a_blk, int64_t n_tok, float *y,  \
			       size_t ys, uint8_t *scratch)                               \
	{                                                                                \
		panel_int(GGUF_TYPE_##TY, P, BB, n, w, w_row, nr, act, a_blk, n_tok, y, ys, \
			  scratch);                                                      \
	}                                                                                \
	static const struct kern_gemm gemm_##ty = { MINTOK, act_bytes_##ty, pack_##ty,    \
						    scratch_##ty, panel_##ty };

/*       type  TYPE  planes block bytes offset min   min tokens */
INT_TYPE(q4_0, Q4_0, 1, 18, 8, false, 4)
INT_TYPE(q8_0, Q8_0, 2, 34, 128, false, 4)
INT_TYPE(q4_K, Q4_K, 1, 144, 0, true, 8)

const struct kern_gemm *kern_gemm_avx2(uint32_t type)
{
	switch (type) {
	case GGUF_TYPE_Q4_0:
		return &gemm_q4_0;
	case GGUF_TYPE_Q8_0:
		return &gemm_q8_0;
	case GGUF_TYPE_Q4_K:
		return &gemm_q4_K;
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

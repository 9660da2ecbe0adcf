/*
 * kern/gemm_avx512 — the prefill matmul on AVX-512 (VNNI): weight rows go
 * through in panels of KERN_PANEL_ROWS = 16 rows, each repacked once per
 * call into per-thread scratch so that one 512-bit vector holds the same
 * few elements of all 16 rows, then multiplied against every token, 8
 * tokens per pass, with the 16 row results of a token in one vector (no
 * horizontal sums).  Only called after kern_isa_supported(AVX512).
 *
 * Why this shape: a vector across rows lets one activation value (or one
 * group of 4 int8 activations) be broadcast to all 16 rows straight from
 * memory, so the inner loop is one weight load + 8 vpdpbusd (or vfmadd)
 * with broadcast operands; the per-unit float work (convert, scale, add)
 * is one instruction per 16 rows instead of one per row.  (The 4 × 4 tile
 * this replaced did a convert, a multiply and an FMA per row × token ×
 * block pair and spilled its 16 accumulators: ~40 instructions per
 * vpdpbusd.)  vpdpbusd issues once per cycle on the machines we measured.
 *
 * Integer types (Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 and the K-quants): every weight
 * value is scale·(code − offset) [+ min] with unsigned 8-bit codes, one
 * scale (and min) per "unit" of 32 elements (16 for Q2_K Q3_K Q6_K, whose
 * sub-blocks are 16).  Panel layout, per unit of G = unit/4 groups:
 *
 *   codes  [G groups][16 rows][4 bytes]   group g = elements 4g..4g+3
 *   scale  [16 rows] float
 *   min    [16 rows] float                 (types with a min only)
 *
 * Activations are quantized once per call by the type's reference-exact
 * act quantizer (Q8_0, Q8_1 or Q8_K) and packed in blocks of 8 tokens,
 * per unit one record (all a tile reads for a unit at fixed offsets from
 * one pointer: with per-token pointers GCC ran out of registers):
 *
 *   int8  codes[8][unit]  token c's codes, element order
 *   float d[8]            the unit's activation scale (fp16 d as float;
 *                         Q8_K's d)
 *   int32 corr[8]         −offset·Σ codes of the unit
 *   float s[8]            d·Σ codes of the unit (Q8_1's fp16 s), for mins
 *
 * so that per unit, row r and token t:
 *   isum = corr + Σ code_w·code_a      (vpdpbusd, exact in int32)
 *   y   += isum·(scale_r·d_t) + min_r·s_t
 * which is ref.c's integer sum (Σ (code − offset)·a is the same integer;
 * K-quant scales are applied per unit in float instead of per block in
 * int); results differ from the reference only in float rounding and the
 * order of additions.  Q8_0 weights are signed: their codes are w + 128.
 *
 * Float types (F32 F16 BF16; F16 and BF16 on AVX512_BF16 CPUs take the
 * bf16-product panels at the end of this file): the panel is [k][16 rows] floats for a chunk
 * of KC elements (converted once per call; F16 and BF16 convert exactly),
 * and the float activations, packed x[k][8 tokens] per block of 8, are
 * broadcast from there.  y is accumulated over the chunks.  This runs at
 * about 2/3 of the FMA peak
 * (16 multiply-adds per cycle per core on the 2-core Zen 4 test machine).
 */
#include "kern/kern_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "base/half.h"
#include "gguf/gguf.h"

#define INLINE static inline __attribute__((always_inline))
#define PR KERN_PANEL_ROWS
#define PC 8            /* tokens per pass */
#define KC 256          /* float path: elements per panel chunk */
#define PREFETCH 512    /* repack: bytes ahead in each weight row */

/* ---- 16 rows × 8 dwords → 8 vectors of 16 rows ---- */

/* r[i] = [row i | row i + 8] (8 dwords each); on return r[g] = dword g of
 * rows 0..15 in order.  Three rounds of in-lane unpacks, then one
 * two-source permute to join the 128-bit quarters. */
INLINE void transpose16x8(__m512i r[8])
{
	__m512i t[8], u[8];
	for (int i = 0; i < 8; i += 2) {
		t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
		t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
	}
	for (int h = 0; h < 8; h += 4) {
		u[h + 0] = _mm512_unpacklo_epi64(t[h + 0], t[h + 2]); /* dwords 0 | 4 */
		u[h + 1] = _mm512_unpackhi_epi64(t[h + 0], t[h + 2]); /* 1 | 5 */
		u[h + 2] = _mm512_unpacklo_epi64(t[h + 1], t[h + 3]); /* 2 | 6 */
		u[h + 3] = _mm512_unpackhi_epi64(t[h + 1], t[h + 3]); /* 3 | 7 */
	}
	const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
	const __m512i hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
	for (int g = 0; g < 4; g++) {
		r[g] = _mm512_permutex2var_epi64(u[g], lo, u[g + 4]);
		r[g + 4] = _mm512_permutex2var_epi64(u[g], hi, u[g + 4]);
	}
}

INLINE __m512i join(__m256i a, __m256i b)
{
	return _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
}

/* ================= integer types ================= */

/* How a weight type maps onto the unsigned-code panel. */
struct qdesc {
	int bs, bb;        /* elements and bytes per weight block */
	int unit;          /* elements per scale unit: 32 or 16 */
	int offset;        /* value = scale·(code − offset) (+ min) */
	bool min;          /* has a per-unit min */
	uint32_t act_type; /* GGUF_TYPE_Q8_0, Q8_1 or Q8_K */
};

INLINE __m256i and15(__m256i v)
{
	return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

/* 16 packed bytes → 32 codes: low nibbles, then high nibbles. */
INLINE __m256i nibbles(const uint8_t *qs)
{
	const __m128i m4 = _mm_set1_epi8(0x0F);
	__m128i raw = _mm_loadu_si128((const __m128i *)qs);
	return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), m4), _mm_and_si128(raw, m4));
}

/* Bit j of the 32-bit word at p → `bit` in byte j. */
INLINE __m256i bits32(const uint8_t *p, char bit)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return _mm256_maskz_mov_epi8((__mmask32)v, _mm256_set1_epi8(bit));
}

/* Bit k of each of the 32 bytes at p → `bit` in that byte. */
INLINE __m256i bitk(const uint8_t *p, int k, char bit)
{
	__m256i v = _mm256_loadu_si256((const __m256i *)p);
	__mmask32 m = _mm256_test_epi8_mask(v, _mm256_set1_epi8((char)(1 << k)));
	return _mm256_maskz_mov_epi8(m, _mm256_set1_epi8(bit));
}

/* The 32 unsigned codes of span s (elements 32s..32s+31) of a block, in
 * element order (layouts in blocks.h). */
INLINE __m256i codes32(uint32_t type, const uint8_t *blk, int s)
{
	switch (type) {
	case GGUF_TYPE_Q4_0:
		return nibbles(((const struct block_q4_0 *)blk)->qs);
	case GGUF_TYPE_Q4_1:
		return nibbles(((const struct block_q4_1 *)blk)->qs);
	case GGUF_TYPE_Q5_0: {
		const struct block_q5_0 *b = (const struct block_q5_0 *)blk;
		return _mm256_or_si256(nibbles(b->qs), bits32(b->qh, 0x10));
	}
	case GGUF_TYPE_Q5_1: {
		const struct block_q5_1 *b = (const struct block_q5_1 *)blk;
		return _mm256_or_si256(nibbles(b->qs), bits32(b->qh, 0x10));
	}
	case GGUF_TYPE_Q8_0: /* signed codes + 128 */
		return _mm256_xor_si256(
			_mm256_loadu_si256((const __m256i *)((const struct block_q8_0 *)blk)->qs),
			_mm256_set1_epi8((char)0x80));
	case GGUF_TYPE_Q2_K: { /* s = 4h + shift */
		const struct block_q2_K *b = (const struct block_q2_K *)blk;
		__m256i raw = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * (s / 4)));
		return _mm256_and_si256(_mm256_srli_epi16(raw, 2 * (s % 4)), _mm256_set1_epi8(3));
	}
	case GGUF_TYPE_Q3_K: { /* low 2 bits as Q2_K, high bit from hmask: code = q + 4 */
		const struct block_q3_K *b = (const struct block_q3_K *)blk;
		__m256i raw = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * (s / 4)));
		__m256i lo = _mm256_and_si256(_mm256_srli_epi16(raw, 2 * (s % 4)), _mm256_set1_epi8(3));
		return _mm256_or_si256(lo, bitk(b->hmask, s, 4));
	}
	case GGUF_TYPE_Q4_K: { /* s = 2c + (high nibble) */
		const struct block_q4_K *b = (const struct block_q4_K *)blk;
		__m256i raw = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * (s / 2)));
		return and15(_mm256_srli_epi16(raw, 4 * (s % 2)));
	}
	case GGUF_TYPE_Q5_K: {
		const struct block_q5_K *b = (const struct block_q5_K *)blk;
		__m256i raw = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * (s / 2)));
		return _mm256_or_si256(and15(_mm256_srli_epi16(raw, 4 * (s % 2))), bitk(b->qh, s, 0x10));
	}
	default: { /* Q6_K: s = 4h + k, code = q + 32 */
		const struct block_q6_K *b = (const struct block_q6_K *)blk;
		const int h = s / 4, k = s % 4;
		__m256i ql = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32 * (k % 2)));
		__m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
		__m256i lo = and15(_mm256_srli_epi16(ql, 4 * (k / 2)));
		__m256i hi = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), _mm256_set1_epi8(3));
		return _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
	}
	}
}

INLINE float h2f(const uint8_t *p)
{
	uint16_t h;
	memcpy(&h, p, 2);
	return _cvtsh_ss(h);
}

/* Scale (and min) of every unit of a block: value = sc·(code − offset) + mn
 * for the unit's codes (mn stays unset for types without a min). */
INLINE void block_scales(uint32_t type, const uint8_t *blk, float *sc, float *mn)
{
	switch (type) {
	case GGUF_TYPE_Q4_1:
	case GGUF_TYPE_Q5_1: /* d, then m */
		mn[0] = h2f(blk + 2);
		sc[0] = h2f(blk);
		break;
	case GGUF_TYPE_Q2_K: {
		const struct block_q2_K *b = (const struct block_q2_K *)blk;
		const float d = h2f((const uint8_t *)&b->d), dmin = h2f((const uint8_t *)&b->dmin);
		for (int j = 0; j < 16; j++) {
			sc[j] = d * (float)(b->scales[j] & 0xF);
			mn[j] = -dmin * (float)(b->scales[j] >> 4);
		}
		break;
	}
	case GGUF_TYPE_Q3_K: {
		const struct block_q3_K *b = (const struct block_q3_K *)blk;
		const float d = h2f((const uint8_t *)&b->d);
		int8_t s3[16];
		kern_k3_scales(b->scales, s3);
		for (int j = 0; j < 16; j++)
			sc[j] = d * (float)s3[j];
		break;
	}
	case GGUF_TYPE_Q4_K:
	case GGUF_TYPE_Q5_K: { /* d, dmin, scales at the same offsets */
		const struct block_q4_K *b = (const struct block_q4_K *)blk;
		const float d = h2f((const uint8_t *)&b->d), dmin = h2f((const uint8_t *)&b->dmin);
		for (int j = 0; j < 8; j++) {
			uint8_t s6, m6;
			kern_k4_scale_min(j, b->scales, &s6, &m6);
			sc[j] = d * (float)s6;
			mn[j] = -dmin * (float)m6;
		}
		break;
	}
	case GGUF_TYPE_Q6_K: {
		const struct block_q6_K *b = (const struct block_q6_K *)blk;
		const float d = h2f((const uint8_t *)&b->d);
		for (int j = 0; j < 16; j++)
			sc[j] = d * (float)b->scales[j];
		break;
	}
	default: /* Q4_0 Q5_0 Q8_0: d first */
		sc[0] = h2f(blk);
		break;
	}
}

INLINE size_t unit_bytes(int unit, bool min)
{
	return (size_t)(unit / 4) * 64 + 64 + (min ? 64 : 0);
}

/* Q4_0's codes of one block of 16 rows, straight to the panel's 8 groups:
 * the rows' 16 code bytes (4 dwords each) as four vectors of 4 rows, a
 * 16 × 4 dword transpose (two-source permutes, then 256-bit halves joined)
 * to "dword g of rows 0..15", whose low nibbles are group g and high
 * nibbles group g + 4.  A third of the generic path's instructions. */
INLINE void repack_q4_0_codes(const uint8_t *const row[PR], size_t off, uint8_t *p)
{
	/* element j of the 2-source permute: dword g = 2h + j / 8 of row j % 8
	 * (row i of a vector pair is lane 4·(i % 4) + g of source i / 4) */
	const __m512i i01 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
	const __m512i i23 = _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27,
					      31);
	const __m512i m4 = _mm512_set1_epi8(0x0F);
	__m512i a[4];
	for (int k = 0; k < 4; k++) {
		__m512i v = _mm512_castsi128_si512(
			_mm_loadu_si128((const __m128i *)(row[4 * k] + off + 2)));
		v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(row[4 * k + 1] + off + 2)), 1);
		v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(row[4 * k + 2] + off + 2)), 2);
		a[k] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(row[4 * k + 3] + off + 2)),
					  3);
	}
	const __m512i lo01 = _mm512_permutex2var_epi32(a[0], i01, a[1]); /* rows 0-7, dwords 0 1 */
	const __m512i lo23 = _mm512_permutex2var_epi32(a[0], i23, a[1]); /* rows 0-7, dwords 2 3 */
	const __m512i hi01 = _mm512_permutex2var_epi32(a[2], i01, a[3]);
	const __m512i hi23 = _mm512_permutex2var_epi32(a[2], i23, a[3]);
	__m512i d[4];
	d[0] = _mm512_shuffle_i64x2(lo01, hi01, _MM_SHUFFLE(1, 0, 1, 0));
	d[1] = _mm512_shuffle_i64x2(lo01, hi01, _MM_SHUFFLE(3, 2, 3, 2));
	d[2] = _mm512_shuffle_i64x2(lo23, hi23, _MM_SHUFFLE(1, 0, 1, 0));
	d[3] = _mm512_shuffle_i64x2(lo23, hi23, _MM_SHUFFLE(3, 2, 3, 2));
	for (int g = 0; g < 4; g++) {
		_mm512_store_si512((void *)(p + 64 * g), _mm512_and_si512(d[g], m4));
		_mm512_store_si512((void *)(p + 64 * (g + 4)),
				   _mm512_and_si512(_mm512_srli_epi16(d[g], 4), m4));
	}
}

/* Repacks rows w[0..nr) (rows past nr repeat row nr − 1; their results are
 * never stored) into the panel layout above. */
INLINE void repack_int(const struct qdesc *q, uint32_t type, int64_t n, const uint8_t *w,
		       size_t w_row, int nr, uint8_t *panel)
{
	const uint8_t *row[PR];
	const size_t ub = unit_bytes(q->unit, q->min);
	const int upb = q->bs / q->unit, G = q->unit / 4;
	float sct[PR][QK_K / 16], mnt[PR][QK_K / 16];
	for (int r = 0; r < PR; r++)
		row[r] = w + (size_t)(r < nr ? r : nr - 1) * w_row;
	/* byte offsets of the rows, for the gather below when they fit in int32 */
	const __m512i vrow = _mm512_mullo_epi32(
		_mm512_min_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
				 _mm512_set1_epi32(nr - 1)),
		_mm512_set1_epi32((int)w_row));
	for (int64_t b = 0; b < n / q->bs; b++) {
		uint8_t *p = panel + (size_t)b * (size_t)upb * ub;
		const size_t off = (size_t)b * (size_t)q->bb;
		/* the rows come from DRAM once per call: fetch ahead of the loads
		 * (16 streams are more than the hardware prefetcher follows) */
		for (int r = 0; r < PR; r++)
			_mm_prefetch((const char *)row[r] + off + PREFETCH, _MM_HINT_T0);
		if (type == GGUF_TYPE_Q4_0) {
			repack_q4_0_codes(row, off, p);
		} else {
			for (int sp = 0; sp < q->bs / 32; sp++) {
				__m512i v[8];
				for (int i = 0; i < 8; i++)
					v[i] = join(codes32(type, row[i] + off, sp),
						    codes32(type, row[i + 8] + off, sp));
				transpose16x8(v);
				/* 8 groups of 4: one unit of 32, or two of 16 */
				for (int g = 0; g < 8; g++) {
					const size_t k = (size_t)(sp * 8 + g);
					_mm512_store_si512((void *)(p + k / (size_t)G * ub + k % (size_t)G * 64),
							   v[g]);
				}
			}
		}
		if (q->bs == 32 && w_row <= INT32_MAX / PR) { /* d (and m) of the 16 rows: one gather */
			__m512i h = _mm512_i32gather_epi32(vrow, (const void *)(w + off), 1);
			float *sc = (float *)(p + 8 * 64);
			_mm512_store_ps(sc, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(h)));
			if (q->min)
				_mm512_store_ps(sc + PR, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(
								 _mm512_srli_epi32(h, 16))));
			continue;
		}
		for (int r = 0; r < PR; r++)
			block_scales(type, row[r] + off, sct[r], mnt[r]);
		for (int u = 0; u < upb; u++) {
			float *sc = (float *)(p + (size_t)u * ub + (size_t)G * 64), *mn = sc + PR;
			for (int r = 0; r < PR; r++) {
				sc[r] = sct[r][u];
				if (q->min)
					mn[r] = mnt[r][u];
			}
		}
	}
}

/* Packed activations, per block of PC tokens and per unit u:
 *   int8  codes[PC][unit]   token c's codes of the unit
 *   float d[PC]
 *   int32 corr[PC]
 *   float s[PC]             (types with a min)
 * so that everything the tile reads for a unit is one record at constant
 * offsets from one pointer. */
INLINE size_t rec_bytes(int unit, bool min)
{
	return (size_t)PC * (size_t)unit + (size_t)PC * 4 * (min ? 3 : 2);
}

INLINE size_t act_bytes_int(int unit, bool min, int64_t n)
{
	return (size_t)(n / unit) * rec_bytes(unit, min);
}

/* Σ of 32 int8 codes. */
INLINE int sum32(const int8_t *p)
{
	__m256i a = _mm256_loadu_si256((const __m256i *)p);
	/* ones as the unsigned operand: Σ 1·a per dword */
	__m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), a);
	__m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
	s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(1, 0, 3, 2)));
	s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(2, 3, 0, 1)));
	return _mm_cvtsi128_si32(s4);
}

/* One unit's fields of token `slot` in a record. */
INLINE void rec_put(const struct qdesc *q, uint8_t *rec, int slot, const int8_t *codes, float d,
		    int32_t corr, float s)
{
	memcpy(rec + (size_t)slot * (size_t)q->unit, codes, (size_t)q->unit);
	uint8_t *f = rec + (size_t)PC * (size_t)q->unit + 4 * (size_t)slot;
	memcpy(f, &d, 4);
	memcpy(f + 4 * PC, &corr, 4);
	if (q->min)
		memcpy(f + 8 * PC, &s, 4);
}

INLINE void act_pack_int(const struct qdesc *q, const float *x, uint8_t *blk, int64_t n, int slot)
{
	const size_t rb = rec_bytes(q->unit, q->min);
	kern_from_float_fn quant = kern_act_quant_avx512(q->act_type);
	union {
		struct block_q8_0 b0;
		struct block_q8_1 b1;
		struct block_q8_K bk;
	} b;

	if (q->act_type == GGUF_TYPE_Q8_K) {
		const int upb = QK_K / q->unit;
		for (int64_t k = 0; k < n / QK_K; k++) {
			quant(x + k * QK_K, &b, QK_K);
			for (int j = 0; j < upb; j++) {
				const int64_t u = k * upb + j;
				int sum = upb == 16 ? b.bk.bsums[j] : b.bk.bsums[2 * j] + b.bk.bsums[2 * j + 1];
				rec_put(q, blk + (size_t)u * rb, slot, b.bk.qs + j * q->unit, b.bk.d,
					-q->offset * sum, b.bk.d * (float)sum);
			}
		}
		return;
	}
	for (int64_t u = 0; u < n / 32; u++) {
		uint8_t *rec = blk + (size_t)u * rb;
		quant(x + u * 32, &b, 32);
		if (q->act_type == GGUF_TYPE_Q8_1)
			rec_put(q, rec, slot, b.b1.qs, _cvtsh_ss(b.b1.d), 0, _cvtsh_ss(b.b1.s));
		else
			rec_put(q, rec, slot, b.b0.qs, _cvtsh_ss(b.b0.d),
				q->offset ? -q->offset * sum32(b.b0.qs) : 0, 0);
	}
}

/* acc + w·broadcast(*p) by vpdpbusd (and f·broadcast(*p) by vmulps) with
 * the broadcast folded into the instruction's memory operand: GCC 12
 * otherwise issues many of them as separate vpbroadcastd, which cost
 * ~25 % of the tile (measured). */
INLINE __m512i dpbusd_b(__m512i acc, __m512i w, const uint8_t *p)
{
	__asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*(const int32_t *)p));
	return acc;
}

INLINE __m512 mul_b(__m512 f, const uint8_t *p)
{
	__m512 r;
	__asm__("vmulps %2%{1to16%}, %1, %0" : "=v"(r) : "v"(f), "m"(*(const float *)p));
	return r;
}

INLINE __m512 fmadd_b(__m512 f, const uint8_t *p, __m512 acc)
{
	__asm__("vfmadd231ps %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(f), "m"(*(const float *)p));
	return acc;
}

INLINE int32_t ld32(const uint8_t *p)
{
	int32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* One panel × NC tokens (one token block) over the whole row: y[c·ys + r]
 * for the rows in mask m.  Units of 4·G elements. */
INLINE void int_tile(const uint8_t *panel, const int G, bool min, int64_t n, const uint8_t *act,
		     float *y, size_t ys, __mmask16 m, const int NC)
{
	const int64_t nu = n / (4 * G);
	const size_t ub = unit_bytes(4 * G, min), rb = rec_bytes(4 * G, min);
	const size_t fd = (size_t)PC * 4 * (size_t)G; /* d[], then corr[], s[] */
	__m512 acc[PC];
#pragma GCC unroll 8
	for (int c = 0; c < NC; c++)
		acc[c] = _mm512_setzero_ps();
	for (int64_t u = 0; u < nu; u++) {
		const uint8_t *p = panel + (size_t)u * ub, *a = act + (size_t)u * rb;
		__m512i isum[PC];
#pragma GCC unroll 8
		for (int c = 0; c < NC; c++)
			isum[c] = _mm512_set1_epi32(ld32(a + fd + 4 * PC + 4 * c));
#pragma GCC unroll 8
		for (int g = 0; g < G; g++) {
			__m512i wv = _mm512_load_si512((const void *)(p + 64 * g));
#pragma GCC unroll 8
			for (int c = 0; c < NC; c++)
				isum[c] = dpbusd_b(isum[c], wv, a + 4 * G * c + 4 * g);
		}
		__m512 sc = _mm512_load_ps((const void *)(p + G * 64));
#pragma GCC unroll 8
		for (int c = 0; c < NC; c++)
			acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), mul_b(sc, a + fd + 4 * c),
						 acc[c]);
		if (min) {
			__m512 mn = _mm512_load_ps((const void *)(p + G * 64 + 64));
#pragma GCC unroll 8
			for (int c = 0; c < NC; c++)
				acc[c] = fmadd_b(mn, a + fd + 8 * PC + 4 * c, acc[c]);
		}
	}
#pragma GCC unroll 8
	for (int c = 0; c < NC; c++)
		_mm512_mask_storeu_ps(y + (size_t)c * ys, m, acc[c]);
}

#define NC_SWITCH(CALL)                                                                  \
	switch (nc) {                                                                    \
	case 1: CALL(1); break;                                                          \
	case 2: CALL(2); break;                                                          \
	case 3: CALL(3); break;                                                          \
	case 4: CALL(4); break;                                                          \
	case 5: CALL(5); break;                                                          \
	case 6: CALL(6); break;                                                          \
	case 7: CALL(7); break;                                                          \
	default: CALL(8); break;                                                         \
	}

/* One tile kernel per unit size × min (× token count), shared by the types. */
#define TILE_FN(name, G, MIN)                                                             \
	static void name(const uint8_t *panel, int64_t n, const uint8_t *act, float *y,  \
			 size_t ys, __mmask16 m, int nc)                                  \
	{                                                                                \
		NC_SWITCH(TILE_CALL_##G##_##MIN)                                         \
	}
#define TILE_CALL_8_0(NC) int_tile(panel, 8, false, n, act, y, ys, m, NC)
#define TILE_CALL_8_1(NC) int_tile(panel, 8, true, n, act, y, ys, m, NC)
#define TILE_CALL_4_0(NC) int_tile(panel, 4, false, n, act, y, ys, m, NC)
#define TILE_CALL_4_1(NC) int_tile(panel, 4, true, n, act, y, ys, m, NC)
TILE_FN(tile32, 8, 0)
TILE_FN(tile32m, 8, 1)
TILE_FN(tile16, 4, 0)
TILE_FN(tile16m, 4, 1)

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

INLINE void panel_int(const struct qdesc *q, uint32_t type, int64_t n, const uint8_t *w,
		      size_t w_row, int nr, const uint8_t *act, size_t a_blk, int64_t n_tok,
		      float *y, size_t ys, uint8_t *scratch)
{
	const __mmask16 m = (__mmask16)((1u << nr) - 1);
	const int64_t passes = (n_tok + PC - 1) / PC, lpr = (int64_t)(w_row + 63) / 64;
	repack_int(q, type, n, w, w_row, nr, scratch);
	for (int64_t i = 0; i < passes; i++) {
		const int64_t t0 = i * PC;
		const int nc = (int)(n_tok - t0 < PC ? n_tok - t0 : PC);
		const uint8_t *a = act + (size_t)i * a_blk;
		float *yt = y + (size_t)t0 * ys;
		/* the next panel's rows come in while this one computes, a share
		 * per pass (a burst would stall on the miss buffers) */
		if (nr == PR)
			prefetch_next(w, w_row, lpr, PR * lpr * i / passes, PR * lpr * (i + 1) / passes);
		if (q->unit == 32)
			(q->min ? tile32m : tile32)(scratch, n, a, yt, ys, m, nc);
		else
			(q->min ? tile16m : tile16)(scratch, n, a, yt, ys, m, nc);
	}
}

/* Panel gemm from MINTOK tokens up: below it the per-call repack costs more
 * than dot_cols spends (2048² matrices, 1 thread: the 32-element types win
 * from 4 tokens, the K-quants' costlier repack from about 8). */
#define INT_TYPE(ty, TY, BS, BB, UNIT, OFF, MIN, ACT, MINTOK)                             \
	static const struct qdesc desc_##ty = { BS, BB, UNIT, OFF, MIN, GGUF_TYPE_##ACT }; \
	static size_t act_bytes_##ty(int64_t n)                                           \
	{                                                                                \
		return act_bytes_int(UNIT, MIN, n);                                      \
	}                                                                                \
	static void pack_##ty(const float *x, uint8_t *blk, int64_t n, int slot)          \
	{                                                                                \
		act_pack_int(&desc_##ty, x, blk, n, slot);                               \
	}                                                                                \
	static size_t scratch_##ty(int64_t n)                                             \
	{                                                                                \
		return (size_t)(n / UNIT) * unit_bytes(UNIT, MIN);                       \
	}                                                                                \
	static void panel_##ty(int64_t n, const uint8_t *w, size_t w_row, int nr,         \
			       const uint8_t *act, size_t a_blk, int64_t n_tok, float *y,  \
			       size_t ys, uint8_t *scratch)                               \
	{                                                                                \
		panel_int(&desc_##ty, GGUF_TYPE_##TY, n, w, w_row, nr, act, a_blk, n_tok, \
			  y, ys, scratch);                                               \
	}                                                                                \
	static const struct kern_gemm gemm_##ty = { MINTOK, act_bytes_##ty, pack_##ty,    \
						    scratch_##ty, panel_##ty, 0 };

/* min tokens: below it dot_cols, or the matvec's own several-token kernel
 * (gemv_avx512.c's cols for Q4_K, Q5_K, Q6_K: faster than a panel repacked
 * per call up to 15 tokens on Zen 4, level at 16)
 *       type  TYPE  block bytes unit offset min   act  min tokens */
INT_TYPE(q4_0, Q4_0, 32, 18, 32, 8, false, Q8_0, 4)
INT_TYPE(q5_0, Q5_0, 32, 22, 32, 16, false, Q8_0, 4)
INT_TYPE(q8_0, Q8_0, 32, 34, 32, 128, false, Q8_0, 4)
INT_TYPE(q4_1, Q4_1, 32, 20, 32, 0, true, Q8_1, 4)
INT_TYPE(q5_1, Q5_1, 32, 24, 32, 0, true, Q8_1, 4)
INT_TYPE(q2_K, Q2_K, 256, 84, 16, 0, true, Q8_K, 8)
INT_TYPE(q3_K, Q3_K, 256, 110, 16, 4, false, Q8_K, 8)
INT_TYPE(q4_K, Q4_K, 256, 144, 32, 0, true, Q8_K, 16)
INT_TYPE(q5_K, Q5_K, 256, 176, 32, 0, true, Q8_K, 16)
INT_TYPE(q6_K, Q6_K, 256, 210, 16, 32, false, Q8_K, 16)

/* ================= float types ================= */

/* 8 floats of a row from element k (the first `left` of them when fewer
 * than 8 remain; the rest are 0). */
INLINE __m256 row8(uint32_t type, const uint8_t *row, int64_t k, int64_t left)
{
	const __mmask8 m = (__mmask8)kern_tail_mask(left, 8);
	switch (type) {
	case GGUF_TYPE_F32:
		return _mm256_maskz_loadu_ps(m, (const float *)row + k);
	case GGUF_TYPE_F16:
		return _mm256_cvtph_ps(_mm_maskz_loadu_epi16(m, (const uint16_t *)row + k));
	default: { /* BF16: the high half of an F32 */
		__m128i h = _mm_maskz_loadu_epi16(m, (const uint16_t *)row + k);
		return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
	}
	}
}

/* Elements [k0, k0 + kc) of 16 rows → panel[k][16]. */
INLINE void repack_float(uint32_t type, const uint8_t *const row[PR], int64_t n, int64_t k0,
			 int64_t kc, float *panel)
{
	for (int64_t k = 0; k < kc; k += 8) {
		__m512i v[8];
		for (int i = 0; i < 8; i++)
			v[i] = join(_mm256_castps_si256(row8(type, row[i], k0 + k, n - k0 - k)),
				    _mm256_castps_si256(row8(type, row[i + 8], k0 + k, n - k0 - k)));
		transpose16x8(v);
		for (int g = 0; g < 8; g++)
			_mm512_store_si512((void *)(panel + (k + g) * PR), v[g]);
	}
}

/* NC tokens (the block at xb, from the chunk's first element) against kc
 * panel elements, added to y (or stored when first). */
INLINE void float_tile(const float *panel, int64_t kc, const uint8_t *xb, float *y, size_t ys,
		       __mmask16 m, bool first, const int NC)
{
	__m512 acc[PC];
#pragma GCC unroll 8
	for (int c = 0; c < NC; c++)
		acc[c] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, y + (size_t)c * ys);
#pragma GCC unroll 4
	for (int64_t k = 0; k < kc; k++) {
		__m512 wv = _mm512_load_ps(panel + k * PR);
#pragma GCC unroll 8
		for (int c = 0; c < NC; c++)
			acc[c] = fmadd_b(wv, xb + ((size_t)k * PC + (size_t)c) * sizeof(float), acc[c]);
	}
#pragma GCC unroll 8
	for (int c = 0; c < NC; c++)
		_mm512_mask_storeu_ps(y + (size_t)c * ys, m, acc[c]);
}

INLINE void panel_float(uint32_t type, int64_t n, const uint8_t *w, size_t w_row, int nr,
			const uint8_t *act, size_t a_blk, int64_t n_tok, float *y, size_t ys,
			uint8_t *scratch)
{
	const __mmask16 m = (__mmask16)((1u << nr) - 1);
	const uint8_t *row[PR];
	float *panel = (float *)scratch;
	for (int r = 0; r < PR; r++)
		row[r] = w + (size_t)(r < nr ? r : nr - 1) * w_row;
	for (int64_t k0 = 0; k0 < n; k0 += KC) {
		const int64_t kc = n - k0 < KC ? n - k0 : KC;
		repack_float(type, row, n, k0, kc, panel);
		for (int64_t t0 = 0; t0 < n_tok; t0 += PC) {
			const int nc = (int)(n_tok - t0 < PC ? n_tok - t0 : PC);
			const uint8_t *xb = act + (size_t)(t0 / PC) * a_blk + (size_t)k0 * PC * sizeof(float);
			float *yt = y + (size_t)t0 * ys;
#define CALL(NC) float_tile(panel, kc, xb, yt, ys, m, k0 == 0, NC)
			NC_SWITCH(CALL)
#undef CALL
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
	static const struct kern_gemm gemm_##ty = { 8, kern_gemm_float_act_bytes,          \
						    kern_gemm_float_pack, scratch_float, \
						    panel_##ty, 0 };

FLOAT_TYPE(f32, F32)
FLOAT_TYPE(f16, F16)
FLOAT_TYPE(bf16, BF16)

/* ================= F16 and BF16 in bf16 products (AVX512_BF16) =================
 *
 * vdpbf16ps multiplies pairs of bf16 values exactly and adds both products
 * to a float lane: 32 multiply-adds per instruction where vfmadd does 16.
 * Here a lane pair (2t, 2t + 1) belongs to token t, and a "quad" is 4
 * consecutive elements (two bf16 pairs):
 *   act    per block of 8 tokens, x[quad][8 tokens][4 bf16]: one 64-byte
 *          vector holds a quad of all 8 tokens (lane 2t: elements 4q, 4q+1
 *          of token t; lane 2t + 1: 4q + 2, 4q + 3); padded with zeros to
 *          whole groups of 8 quads (32 elements)
 *   panel  per group of 32 elements, [16 rows][32 bf16]: the rows as they
 *          are (BF16) or rounded to bf16 (F16), no transposition
 * so per quad and row: one 8-byte broadcast of the row's quad (the same 4
 * values in every token's lane pair) and one vdpbf16ps into the row's
 * accumulator; a pass is 16 rows × 8 tokens in 16 registers, and the lane
 * pairs are added and turned into token vectors once at its end.  No
 * shuffles in the inner loop, and the panel costs a copy (or a convert)
 * per call instead of a transpose.
 *
 * Numerics: the activations are rounded to bf16 (nearest even), as the
 * reference engine does for BF16 weights; BF16 weights are used as they
 * are, F16 weights are rounded to bf16 (nearest even: 8 of their 11
 * significant bits kept).  Each product is then within eps = 2^-9 (BF16)
 * or 2^-8 + 2^-18 (F16) of the exact one, and sums are float: |y − y_exact|
 * <= (eps + float summation)·Σ|w·x| (kern_matmul_eps; tested against
 * float64 in test_kern). */
#define BG 32 /* elements per group */

static size_t act_bytes_bf(int64_t n)
{
	return (size_t)((n + BG - 1) / BG) * BG * PC * 2;
}

static void pack_bf(const float *x, uint8_t *blk, int64_t n, int slot)
{
	const int64_t groups = (n + BG - 1) / BG;
	/* quad q of group g at g·512 + q·64, this token's 8 bytes at slot·8 */
	const __m512i idx = _mm512_setr_epi64(0, 64, 128, 192, 256, 320, 384, 448);
	uint8_t *o = blk + (size_t)slot * 8;
	for (int64_t g = 0; g < groups; g++, o += BG * PC * 2) {
		const int64_t left = n - g * BG;
		const __mmask16 m0 = (__mmask16)kern_tail_mask(left, 16);
		const __mmask16 m1 = (__mmask16)kern_tail_mask(left - 16, 16);
		/* vcvtne2ps2bf16 rounds to nearest even as dm_f32_to_bf16 does */
		__m512i v = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, x + g * BG + 16),
							 _mm512_maskz_loadu_ps(m0, x + g * BG));
		_mm512_i64scatter_epi64(o, idx, v, 1);
	}
}

/* Rows w[0..16) (w_row bytes apart; rows past nr repeat the last one)
 * → panel[group][16 rows][32 bf16], the last group padded with zeros. */
INLINE void repack_bf(uint32_t type, const uint8_t *w, size_t w_row, int nr, int64_t n,
		      uint8_t *panel)
{
	for (int r = 0; r < PR; r++) {
		const uint16_t *row = (const uint16_t *)(const void *)(w + (size_t)(r < nr ? r : nr - 1) * w_row);
		uint8_t *o = panel + (size_t)r * BG * 2;
		for (int64_t k = 0; k < n; k += BG, o += PR * BG * 2) {
			const int64_t left = n - k;
			if (type == GGUF_TYPE_BF16) {
				const __mmask32 m = kern_tail_mask(left, 32);
				_mm512_store_si512((void *)o, _mm512_maskz_loadu_epi16(m, row + k));
			} else {
				const __mmask16 m0 = (__mmask16)kern_tail_mask(left, 16);
				const __mmask16 m1 = (__mmask16)kern_tail_mask(left - 16, 16);
				__m512 lo = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m0, row + k));
				__m512 hi = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m1, row + k + 16));
				_mm512_store_si512((void *)o, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
			}
		}
	}
}

/* One pass: 16 rows × the 8 tokens of the act block at a, over `groups`
 * groups; y[c][0..16) for c < nc, rows masked by m. */
INLINE void bf_tile(const uint8_t *panel, int64_t groups, const uint8_t *a, float *y, size_t ys,
		    __mmask16 m, int nc)
{
	__m512 acc[PR];
#pragma GCC unroll 16
	for (int r = 0; r < PR; r++)
		acc[r] = _mm512_setzero_ps();
	for (int64_t g = 0; g < groups; g++, panel += PR * BG * 2, a += BG * PC * 2) {
#pragma GCC unroll 8
		for (int q = 0; q < BG / 4; q++) {
			const __m512bh av = (__m512bh)_mm512_load_si512((const void *)(a + q * 64));
#pragma GCC unroll 16
			for (int r = 0; r < PR; r++) {
				int64_t wq;
				memcpy(&wq, panel + r * BG * 2 + q * 8, 8);
				acc[r] = _mm512_dpbf16_ps(acc[r], av, (__m512bh)_mm512_set1_epi64(wq));
			}
		}
	}
	/* row r's token t is lanes 2t + 2t+1: rows i and i + 8 → [i | i + 8]
	 * (8 token sums each), then the 16 × 8 transpose gives token vectors */
	const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
	const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
	__m512i v[8];
#pragma GCC unroll 8
	for (int i = 0; i < 8; i++)
		v[i] = _mm512_castps_si512(_mm512_add_ps(_mm512_permutex2var_ps(acc[i], ev, acc[i + 8]),
							 _mm512_permutex2var_ps(acc[i], od, acc[i + 8])));
	transpose16x8(v);
	for (int c = 0; c < nc; c++)
		_mm512_mask_storeu_ps(y + (size_t)c * ys, m, _mm512_castsi512_ps(v[c]));
}

INLINE void panel_bf(uint32_t type, int64_t n, const uint8_t *w, size_t w_row, int nr,
		     const uint8_t *act, size_t a_blk, int64_t n_tok, float *y, size_t ys,
		     uint8_t *scratch)
{
	const __mmask16 m = (__mmask16)((1u << nr) - 1);
	const int64_t passes = (n_tok + PC - 1) / PC, lpr = (int64_t)(w_row + 63) / 64;
	repack_bf(type, w, w_row, nr, n, scratch);
	for (int64_t i = 0; i < passes; i++) {
		const int64_t t0 = i * PC;
		const int nc = (int)(n_tok - t0 < PC ? n_tok - t0 : PC);
		/* the next panel's rows come in a share per pass (see panel_int) */
		if (nr == PR)
			prefetch_next(w, w_row, lpr, PR * lpr * i / passes, PR * lpr * (i + 1) / passes);
		bf_tile(scratch, (n + BG - 1) / BG, act + (size_t)i * a_blk, y + (size_t)t0 * ys, ys, m, nc);
	}
}

static size_t scratch_bf(int64_t n)
{
	return (size_t)((n + BG - 1) / BG) * PR * BG * 2;
}

#define BF_TYPE(ty, TY, EPS)                                                              \
	static void panel_bf_##ty(int64_t n, const uint8_t *w, size_t w_row, int nr,      \
				  const uint8_t *act, size_t a_blk, int64_t n_tok, float *y, \
				  size_t ys, uint8_t *scratch)                            \
	{                                                                                \
		panel_bf(GGUF_TYPE_##TY, n, w, w_row, nr, act, a_blk, n_tok, y, ys, scratch); \
	}                                                                                \
	static const struct kern_gemm gemm_bf_##ty = { 8, act_bytes_bf, pack_bf, scratch_bf, \
						       panel_bf_##ty, EPS };

BF_TYPE(f16, F16, 0x1p-8 + 0x1p-18)
BF_TYPE(bf16, BF16, 0x1p-9)

const struct kern_gemm *kern_gemm_avx512bf16(uint32_t type)
{
	switch (type) {
	case GGUF_TYPE_F16:
		return &gemm_bf_f16;
	case GGUF_TYPE_BF16:
		return &gemm_bf_bf16;
	default:
		return NULL;
	}
}

const struct kern_gemm *kern_gemm_avx512(uint32_t type)
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
	case GGUF_TYPE_Q4_1:
		return &gemm_q4_1;
	case GGUF_TYPE_Q5_0:
		return &gemm_q5_0;
	case GGUF_TYPE_Q5_1:
		return &gemm_q5_1;
	case GGUF_TYPE_Q8_0:
		return &gemm_q8_0;
	case GGUF_TYPE_Q2_K:
		return &gemm_q2_K;
	case GGUF_TYPE_Q3_K:
		return &gemm_q3_K;
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
const struct kern_gemm *kern_gemm_avx512(uint32_t type)
{
	(void)type;
	return NULL;
}

const struct kern_gemm *kern_gemm_avx512bf16(uint32_t type)
{
	(void)type;
	return NULL;
}
#endif

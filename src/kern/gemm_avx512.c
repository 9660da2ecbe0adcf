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
 * with broadcast operands; the per-block float work (convert, scale, add)
 * is one instruction per 16 rows instead of one per row.  vpdpbusd issues
 * once per cycle here, and the loop keeps it busy.
 *
 * Integer types (Q4_0 Q4_1 Q5_0 Q5_1 Q8_0): every weight value is
 * scale·(code − offset) [+ min] with unsigned 8-bit codes, one scale (and
 * min) per "unit" of 32 elements.  Panel layout, per unit:
 *
 *   codes  [8 groups][16 rows][4 bytes]   group g = elements 4g..4g+3
 *   scale  [16 rows] float
 *   min    [16 rows] float                 (types with a min only)
 *
 * Activations are quantized once per call by the type's reference-exact
 * act quantizer (Q8_0 or Q8_1) and packed per token row as
 *
 *   int8  codes[n]        element order
 *   float d[n/32]         block scales (the fp16 d, as float)
 *   int32 corr[n/32]      −offset·Σ codes of the block
 *   float s[n/32]         Q8_1's s (d·Σ codes, fp16), types with a min
 *
 * so that per unit, row r and token t:
 *   isum = corr + Σ code_w·code_a      (vpdpbusd, exact in int32)
 *   y   += isum·(scale_r·d_t) + min_r·s_t
 * which is ref.c's block sum (Σ (code − offset)·a is the same integer);
 * results differ from the reference only in float rounding and the order
 * of additions.  Q8_0 weights are signed: their codes are w + 128.
 *
 * Float types (F32 F16 BF16): the panel is [k][16 rows] floats for a chunk
 * of KERN_GEMM_KC elements (converted once per call; F16 and BF16 convert
 * exactly), and the float activations are broadcast from the caller's rows.
 * y is accumulated over the chunks.
 */
#include "kern/kern_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#include "base/half.h"
#include "gguf/gguf.h"

#define INLINE static inline __attribute__((always_inline))
#define PR KERN_PANEL_ROWS
#define PC 8            /* tokens per pass */
#define KC 256          /* float path: elements per panel chunk */

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
	int offset;        /* value = scale·(code − offset) (+ min) */
	bool min;          /* has a per-unit min (then offset is 0) */
	uint32_t act_type; /* GGUF_TYPE_Q8_0 or Q8_1 */
};

/* The 32 unsigned codes of a block, in element order. */
INLINE __m256i nibbles(const uint8_t *qs)
{
	const __m128i m4 = _mm_set1_epi8(0x0F);
	__m128i raw = _mm_loadu_si128((const __m128i *)qs);
	return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), m4), _mm_and_si128(raw, m4));
}

/* Bit j of the 32-bit qh → 0x10 in byte j. */
INLINE __m256i qh_bits(const uint8_t qh4[4])
{
	uint32_t qh;
	memcpy(&qh, qh4, 4);
	return _mm256_maskz_mov_epi8((__mmask32)qh, _mm256_set1_epi8(0x10));
}

INLINE __m256i codes32(uint32_t type, const uint8_t *blk)
{
	switch (type) {
	case GGUF_TYPE_Q4_0:
		return nibbles(((const struct block_q4_0 *)blk)->qs);
	case GGUF_TYPE_Q4_1:
		return nibbles(((const struct block_q4_1 *)blk)->qs);
	case GGUF_TYPE_Q5_0: {
		const struct block_q5_0 *b = (const struct block_q5_0 *)blk;
		return _mm256_or_si256(nibbles(b->qs), qh_bits(b->qh));
	}
	case GGUF_TYPE_Q5_1: {
		const struct block_q5_1 *b = (const struct block_q5_1 *)blk;
		return _mm256_or_si256(nibbles(b->qs), qh_bits(b->qh));
	}
	default: /* Q8_0: signed codes + 128 */
		return _mm256_xor_si256(
			_mm256_loadu_si256((const __m256i *)((const struct block_q8_0 *)blk)->qs),
			_mm256_set1_epi8((char)0x80));
	}
}

INLINE float h2f(const uint8_t *p)
{
	uint16_t h;
	memcpy(&h, p, 2);
	return _cvtsh_ss(h);
}

/* d sits first in every 32-element block; m (Q4_1, Q5_1) right after it. */
INLINE void scale_min32(const uint8_t *blk, bool min, float *sc, float *mn)
{
	*sc = h2f(blk);
	if (min)
		*mn = h2f(blk + 2);
}

INLINE size_t unit_bytes(bool min)
{
	return 8 * 64 + 64 + (min ? 64 : 0);
}

/* Repacks rows w[0..nr) (rows past nr repeat row nr − 1; their results are
 * never stored) into the panel layout above. */
INLINE void repack_int(const struct qdesc *q, uint32_t type, int64_t n, const uint8_t *w,
		       size_t w_row, int nr, uint8_t *panel)
{
	const uint8_t *row[PR];
	const size_t ub = unit_bytes(q->min);
	for (int r = 0; r < PR; r++)
		row[r] = w + (size_t)(r < nr ? r : nr - 1) * w_row;
	for (int64_t b = 0; b < n / q->bs; b++) {
		uint8_t *p = panel + (size_t)b * ub;
		const size_t off = (size_t)b * (size_t)q->bb;
		__m512i v[8];
		for (int i = 0; i < 8; i++)
			v[i] = join(codes32(type, row[i] + off), codes32(type, row[i + 8] + off));
		transpose16x8(v);
		for (int g = 0; g < 8; g++)
			_mm512_store_si512((void *)(p + 64 * g), v[g]);
		float *sc = (float *)(p + 8 * 64), *mn = sc + PR;
		for (int r = 0; r < PR; r++)
			scale_min32(row[r] + off, q->min, &sc[r], &mn[r]);
	}
}

/* Packed activation row: codes[n], d[nu], corr[nu], s[nu]. */
static size_t act_bytes_int(int64_t n)
{
	const size_t nu = (size_t)(n / 32);
	return ((size_t)n + 12 * nu + 63) & ~(size_t)63;
}

INLINE void act_pack_int(const struct qdesc *q, const float *x, uint8_t *row, int64_t n)
{
	const int64_t nu = n / 32;
	int8_t *qs = (int8_t *)row;
	float *d = (float *)(row + n), *s = d + 2 * nu;
	int32_t *corr = (int32_t *)(d + nu);
	kern_from_float_fn quant = kern_act_quant_avx512(q->act_type);
	union {
		struct block_q8_0 b0;
		struct block_q8_1 b1;
	} blk;

	for (int64_t u = 0; u < nu; u++) {
		const int8_t *bq;
		quant(x + u * 32, &blk, 32);
		if (q->act_type == GGUF_TYPE_Q8_1) {
			bq = blk.b1.qs;
			d[u] = _cvtsh_ss(blk.b1.d);
			s[u] = _cvtsh_ss(blk.b1.s);
		} else {
			bq = blk.b0.qs;
			d[u] = _cvtsh_ss(blk.b0.d);
			s[u] = 0;
		}
		memcpy(qs + u * 32, bq, 32);
		__m256i a = _mm256_loadu_si256((const __m256i *)bq);
		/* Σ codes: |a| as unsigned times sign(a) through vpdpbusd with ones */
		__m256i one = _mm256_set1_epi8(1);
		__m256i sum = _mm256_dpbusd_epi32(_mm256_setzero_si256(), one, a);
		__m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
		s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(1, 0, 3, 2)));
		s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(2, 3, 0, 1)));
		corr[u] = -q->offset * _mm_cvtsi128_si32(s4);
	}
}

INLINE int32_t ld32(const int8_t *p)
{
	int32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* One panel × NC tokens over the whole row: y[c·ys + r] for the rows in
 * mask m. */
INLINE void int_tile(const uint8_t *panel, bool min, int64_t n, const uint8_t *act, size_t a_row,
		     float *y, size_t ys, __mmask16 m, const int NC)
{
	const int64_t nu = n / 32;
	const size_t ub = unit_bytes(min);
	const int8_t *qa[PC];
	const float *da[PC], *sa[PC];
	const int32_t *ca[PC];
	__m512 acc[PC];
#pragma GCC unroll 8
	for (int c = 0; c < NC; c++) {
		qa[c] = (const int8_t *)(act + (size_t)c * a_row);
		da[c] = (const float *)(act + (size_t)c * a_row + n);
		ca[c] = (const int32_t *)(da[c] + nu);
		sa[c] = da[c] + 2 * nu;
		acc[c] = _mm512_setzero_ps();
	}
	for (int64_t u = 0; u < nu; u++) {
		const uint8_t *p = panel + (size_t)u * ub;
		__m512i isum[PC];
#pragma GCC unroll 8
		for (int c = 0; c < NC; c++)
			isum[c] = _mm512_set1_epi32(ca[c][u]);
#pragma GCC unroll 8
		for (int g = 0; g < 8; g++) {
			__m512i wv = _mm512_load_si512((const void *)(p + 64 * g));
#pragma GCC unroll 8
			for (int c = 0; c < NC; c++)
				isum[c] = _mm512_dpbusd_epi32(isum[c], wv,
							      _mm512_set1_epi32(ld32(qa[c] + u * 32 + 4 * g)));
		}
		__m512 sc = _mm512_load_ps((const void *)(p + 8 * 64));
#pragma GCC unroll 8
		for (int c = 0; c < NC; c++)
			acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]),
						 _mm512_mul_ps(sc, _mm512_set1_ps(da[c][u])), acc[c]);
		if (min) {
			__m512 mn = _mm512_load_ps((const void *)(p + 9 * 64));
#pragma GCC unroll 8
			for (int c = 0; c < NC; c++)
				acc[c] = _mm512_fmadd_ps(mn, _mm512_set1_ps(sa[c][u]), acc[c]);
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

INLINE void panel_int(const struct qdesc *q, uint32_t type, int64_t n, const uint8_t *w,
		      size_t w_row, int nr, const uint8_t *act, size_t a_row, int64_t n_tok,
		      float *y, size_t ys, uint8_t *scratch)
{
	const __mmask16 m = (__mmask16)((1u << nr) - 1);
	repack_int(q, type, n, w, w_row, nr, scratch);
	for (int64_t t0 = 0; t0 < n_tok; t0 += PC) {
		const int nc = (int)(n_tok - t0 < PC ? n_tok - t0 : PC);
		const uint8_t *a = act + (size_t)t0 * a_row;
		float *yt = y + (size_t)t0 * ys;
		if (q->min) {
#define CALL(NC) int_tile(scratch, true, n, a, a_row, yt, ys, m, NC)
			NC_SWITCH(CALL)
#undef CALL
		} else {
#define CALL(NC) int_tile(scratch, false, n, a, a_row, yt, ys, m, NC)
			NC_SWITCH(CALL)
#undef CALL
		}
	}
}

static size_t scratch_int32(int64_t n, bool min)
{
	return (size_t)(n / 32) * unit_bytes(min);
}

static size_t scratch_nomin(int64_t n)
{
	return scratch_int32(n, false);
}

static size_t scratch_min(int64_t n)
{
	return scratch_int32(n, true);
}

#define INT_TYPE(ty, TY, BB, OFF, MIN, ACT)                                               \
	static const struct qdesc desc_##ty = { 32, BB, OFF, MIN, GGUF_TYPE_##ACT };      \
	static void pack_##ty(const float *x, void *row, int64_t n)                       \
	{                                                                                \
		act_pack_int(&desc_##ty, x, row, n);                                     \
	}                                                                                \
	static void panel_##ty(int64_t n, const uint8_t *w, size_t w_row, int nr,         \
			       const uint8_t *act, size_t a_row, const float *x,          \
			       int64_t n_tok, float *y, size_t ys, uint8_t *scratch)      \
	{                                                                                \
		(void)x;                                                                 \
		panel_int(&desc_##ty, GGUF_TYPE_##TY, n, w, w_row, nr, act, a_row, n_tok, \
			  y, ys, scratch);                                               \
	}                                                                                \
	static const struct kern_gemm gemm_##ty = { act_bytes_int, pack_##ty,             \
						    MIN ? scratch_min : scratch_nomin,    \
						    panel_##ty };

INT_TYPE(q4_0, Q4_0, 18, 8, false, Q8_0)
INT_TYPE(q5_0, Q5_0, 22, 16, false, Q8_0)
INT_TYPE(q8_0, Q8_0, 34, 128, false, Q8_0)
INT_TYPE(q4_1, Q4_1, 20, 0, true, Q8_1)
INT_TYPE(q5_1, Q5_1, 24, 0, true, Q8_1)

/* ================= float types ================= */

/* 8 floats of a row from element k (the first `left` of them when fewer
 * than 8 remain; the rest are 0). */
INLINE __m256 row8(uint32_t type, const uint8_t *row, int64_t k, int64_t left)
{
	const __mmask8 m = left >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << left) - 1);
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

/* NC tokens (float rows x, xs floats apart, from element k0) against kc
 * panel elements, added to y (or stored when first). */
INLINE void float_tile(const float *panel, int64_t kc, const float *x, size_t xs, float *y,
		       size_t ys, __mmask16 m, bool first, const int NC)
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
			acc[c] = _mm512_fmadd_ps(wv, _mm512_set1_ps(x[(size_t)c * xs + (size_t)k]), acc[c]);
	}
#pragma GCC unroll 8
	for (int c = 0; c < NC; c++)
		_mm512_mask_storeu_ps(y + (size_t)c * ys, m, acc[c]);
}

INLINE void panel_float(uint32_t type, int64_t n, const uint8_t *w, size_t w_row, int nr,
			const float *x, int64_t n_tok, float *y, size_t ys, uint8_t *scratch)
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
			const float *xt = x + (size_t)t0 * (size_t)n + (size_t)k0;
			float *yt = y + (size_t)t0 * ys;
#define CALL(NC) float_tile(panel, kc, xt, (size_t)n, yt, ys, m, k0 == 0, NC)
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
			       const uint8_t *act, size_t a_row, const float *x,          \
			       int64_t n_tok, float *y, size_t ys, uint8_t *scratch)      \
	{                                                                                \
		(void)act;                                                               \
		(void)a_row;                                                             \
		panel_float(GGUF_TYPE_##TY, n, w, w_row, nr, x, n_tok, y, ys, scratch);   \
	}                                                                                \
	static const struct kern_gemm gemm_##ty = { NULL, NULL, scratch_float, panel_##ty };

FLOAT_TYPE(f32, F32)
FLOAT_TYPE(f16, F16)
FLOAT_TYPE(bf16, BF16)

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
#endif

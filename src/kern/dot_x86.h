/*
 * kern/dot_x86 — dot-product kernels for x86-64, written once with 256-bit
 * vectors and compiled twice: by dot_avx2.c (AVX2: int8 products with
 * vpmaddubsw + vpmaddwd) and by dot_avx512.c (AVX-512 VL + VNNI: vpdpbusd,
 * and 32 vector registers).  Only those two files include this; they
 * define, before including it:
 *   SFX(name)        appends the ISA suffix (name##_avx2 / name##_avx512)
 *   DOT_U8S8(u, s)   8 × int32: lane k = Σ_{i<4} u[4k+i]·s[4k+i]
 *                    (u unsigned bytes, s signed bytes)
 *   DOT_SC(u, s, sc) DOT_U8S8 with each lane multiplied by sc, a vector made
 *                    by SCV(v) (one scale) or SCV2(lo, hi) (one per 128-bit
 *                    half); without VNNI this is maddubs + madd, the scale
 *                    riding in the madd for free
 *
 * Every kernel computes the same per-block integer sums as ref.c; results
 * differ from the reference only by float rounding in the scaling and in
 * the order of the additions (8 lanes, then a horizontal sum).
 *
 * Saturation: vpmaddubsw adds two u8·s8 products in int16.  Our unsigned
 * operands are at most 63 (Q6_K) or |w| <= 128 (the sign trick for signed
 * weights), activations |a| <= 127 (ggml's Q8 quantizers never give -128):
 * 2·128·127 = 32512 < 32767.
 *
 * Each *_cols kernel takes one weight row and nc <= KERN_COLS_MAX
 * activation rows; it is instantiated for each constant nc through
 * COLS_SWITCH so the per-column accumulators live in registers.
 */
#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "kern/kern_impl.h"

#define INLINE static inline __attribute__((always_inline))

INLINE float hsum8(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

INLINE float h2f(uint16_t h)
{
	return _cvtsh_ss(h);
}

/* 16 packed nibble bytes → 32 bytes: low nibbles, then high nibbles. */
INLINE __m256i unpack_nib16(const uint8_t *p)
{
	const __m128i m4 = _mm_set1_epi8(0x0F);
	__m128i raw = _mm_loadu_si128((const __m128i *)p);
	return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), m4), _mm_and_si128(raw, m4));
}

/* Bit j of the 32-bit qh → 0x10 in byte j, else 0. */
INLINE __m256i qh_bits32(const uint8_t qh4[4])
{
	uint32_t qh;
	memcpy(&qh, qh4, 4);
	const __m256i shuf = _mm256_setr_epi64x(0, 0x0101010101010101ll, 0x0202020202020202ll,
						0x0303030303030303ll);
	const __m256i bits = _mm256_set1_epi64x((long long)0x8040201008040201ull);
	__m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), shuf);
	v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bits), bits);
	return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

#define COLS_SWITCH(fn, n, w, a, as, nc, out)                                              \
	switch (nc) {                                                                    \
	case 1: fn(n, w, a, as, 1, out); break;                                          \
	case 2: fn(n, w, a, as, 2, out); break;                                          \
	case 3: fn(n, w, a, as, 3, out); break;                                          \
	case 4: fn(n, w, a, as, 4, out); break;                                          \
	case 5: fn(n, w, a, as, 5, out); break;                                          \
	case 6: fn(n, w, a, as, 6, out); break;                                          \
	case 7: fn(n, w, a, as, 7, out); break;                                          \
	default: fn(n, w, a, as, 8, out); break;                                         \
	}

#define DEFINE_COLS(ty)                                                                  \
	static void SFX(ty##_cols)(int64_t n, const void *w, const void *a, size_t as,     \
				   int nc, float *out)                                     \
	{                                                                                \
		COLS_SWITCH(ty##_cols_impl, n, w, (const uint8_t *)a, as, nc, out)       \
	}
#define DEFINE_ENTRY(ty)                                                                 \
	DEFINE_COLS(ty)                                                                  \
	static float SFX(ty##_dot)(int64_t n, const void *w, const void *a)                \
	{                                                                                \
		float r;                                                                 \
		ty##_cols_impl(n, w, (const uint8_t *)a, 0, 1, &r);                      \
		return r;                                                                \
	}

/* ---------------- 32-element blocks with Q8_0 activations ---------------- */

/* Signed weights s (bytes) times activations: |s| as unsigned, the sign
 * moved onto the activation. */
INLINE __m256i dot_signed(__m256i s, __m256i absw, __m256i act)
{
	return DOT_U8S8(absw, _mm256_sign_epi8(act, s));
}

/* One block of a Q8_0-activation type into the accumulators ACC (LOADW(ib)
 * gives the signed weight bytes). */
#define Q8ACT_STEP(LOADW, IDX, ACC)                                                      \
	{                                                                                \
		const int64_t ib = (IDX);                                                \
		__m256i s = LOADW(ib);                                                   \
		__m256i u = _mm256_sign_epi8(s, s);                                      \
		float dw = h2f(x[ib].d);                                                 \
		for (int c = 0; c < nc; c++) {                                           \
			const struct block_q8_0 *y =                                     \
				(const struct block_q8_0 *)(a + (size_t)c * as) + ib;    \
			__m256i av = _mm256_loadu_si256((const __m256i *)y->qs);         \
			__m256i p = dot_signed(s, u, av);                                \
			ACC[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p),                  \
						 _mm256_set1_ps(dw * h2f(y->d)), ACC[c]); \
		}                                                                        \
	}

/* Blocks alternate between two sets of accumulators so that consecutive
 * fmadds do not wait on each other (the matvec case, nc = 1, would
 * otherwise run at one block per fmadd latency). */
#define Q8ACT_BODY(BLOCK, LOADW)                                                         \
	const struct BLOCK *x = w;                                                       \
	__m256 acc0[KERN_COLS_MAX], acc1[KERN_COLS_MAX];                                 \
	const int64_t nb = n / 32;                                                       \
	int64_t i = 0;                                                                   \
	for (int c = 0; c < nc; c++)                                                     \
		acc0[c] = acc1[c] = _mm256_setzero_ps();                                 \
	for (; i + 2 <= nb; i += 2) {                                                    \
		kern_pf_stream(x + i, 2 * sizeof *x);                                    \
		Q8ACT_STEP(LOADW, i, acc0)                                               \
		Q8ACT_STEP(LOADW, i + 1, acc1)                                           \
	}                                                                                \
	if (i < nb)                                                                      \
		Q8ACT_STEP(LOADW, i, acc0)                                               \
	for (int c = 0; c < nc; c++)                                                     \
		out[c] = hsum8(_mm256_add_ps(acc0[c], acc1[c]));

#define LW_Q4_0(ib) _mm256_sub_epi8(unpack_nib16(x[ib].qs), _mm256_set1_epi8(8))
#define LW_Q5_0(ib)                                                                      \
	_mm256_sub_epi8(_mm256_or_si256(unpack_nib16(x[ib].qs), qh_bits32(x[ib].qh)),     \
			_mm256_set1_epi8(16))
#define LW_Q8_0(ib) _mm256_loadu_si256((const __m256i *)x[ib].qs)

INLINE void q4_0_cols_impl(int64_t n, const void *w, const uint8_t *a, size_t as, int nc,
			   float *out)
{
	Q8ACT_BODY(block_q4_0, LW_Q4_0)
}

INLINE void q5_0_cols_impl(int64_t n, const void *w, const uint8_t *a, size_t as, int nc,
			   float *out)
{
	Q8ACT_BODY(block_q5_0, LW_Q5_0)
}

INLINE void q8_0_cols_impl(int64_t n, const void *w, const uint8_t *a, size_t as, int nc,
			   float *out)
{
	Q8ACT_BODY(block_q8_0, LW_Q8_0)
}

/* ---------------- 32-element blocks with Q8_1 activations ---------------- */

#define Q8_1ACT_STEP(LOADW, IDX, ACC)                                                    \
	{                                                                                \
		const int64_t ib = (IDX);                                                \
		__m256i q = LOADW(ib);                                                   \
		float dw = h2f(x[ib].d), mw = h2f(x[ib].m);                              \
		for (int c = 0; c < nc; c++) {                                           \
			const struct block_q8_1 *y =                                     \
				(const struct block_q8_1 *)(a + (size_t)c * as) + ib;    \
			__m256i av = _mm256_loadu_si256((const __m256i *)y->qs);         \
			__m256i p = DOT_U8S8(q, av);                                     \
			ACC[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p),                  \
						 _mm256_set1_ps(dw * h2f(y->d)), ACC[c]); \
			accm[c] += mw * h2f(y->s);                                       \
		}                                                                        \
	}

#define Q8_1ACT_BODY(BLOCK, LOADW)                                                       \
	const struct BLOCK *x = w;                                                       \
	__m256 acc0[KERN_COLS_MAX], acc1[KERN_COLS_MAX];                                 \
	float accm[KERN_COLS_MAX];                                                       \
	const int64_t nb = n / 32;                                                       \
	int64_t i = 0;                                                                   \
	for (int c = 0; c < nc; c++) {                                                   \
		acc0[c] = acc1[c] = _mm256_setzero_ps();                                 \
		accm[c] = 0;                                                             \
	}                                                                                \
	for (; i + 2 <= nb; i += 2) {                                                    \
		kern_pf_stream(x + i, 2 * sizeof *x);                                    \
		Q8_1ACT_STEP(LOADW, i, acc0)                                             \
		Q8_1ACT_STEP(LOADW, i + 1, acc1)                                         \
	}                                                                                \
	if (i < nb)                                                                      \
		Q8_1ACT_STEP(LOADW, i, acc0)                                             \
	for (int c = 0; c < nc; c++)                                                     \
		out[c] = hsum8(_mm256_add_ps(acc0[c], acc1[c])) + accm[c];

#define LW_Q4_1(ib) unpack_nib16(x[ib].qs)
#define LW_Q5_1(ib) _mm256_or_si256(unpack_nib16(x[ib].qs), qh_bits32(x[ib].qh))

INLINE void q4_1_cols_impl(int64_t n, const void *w, const uint8_t *a, size_t as, int nc,
			   float *out)
{
	Q8_1ACT_BODY(block_q4_1, LW_Q4_1)
}

INLINE void q5_1_cols_impl(int64_t n, const void *w, const uint8_t *a, size_t as, int nc,
			   float *out)
{
	Q8_1ACT_BODY(block_q5_1, LW_Q5_1)
}

/* ---------------- K-quants with Q8_K activations ---------------- */

#define QK8K(c, i) ((const struct block_q8_K *)(a + (size_t)(c) * as) + (i))

/* Q4_K / Q5_K: 4 chunks of 64; low nibbles are sub-block 2c, high 2c + 1. */
INLINE void q45k_cols(int64_t n, const uint8_t *w, bool five, const uint8_t *a, size_t as,
		      int nc, float *out)
{
	const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
	__m256 acc[KERN_COLS_MAX];
	for (int c = 0; c < nc; c++)
		acc[c] = _mm256_setzero_ps();
	for (int64_t i = 0; i < n / QK_K; i++) {
		/* d, dmin, scales sit at the same offsets in Q4_K and Q5_K */
		const uint8_t *blk = w + (size_t)i * (five ? sizeof(struct block_q5_K)
							   : sizeof(struct block_q4_K));
		const struct block_q4_K *hdr = (const struct block_q4_K *)blk;
		kern_pf_stream(blk, sizeof(struct block_q5_K));
		const uint8_t *qs = blk + (five ? offsetof(struct block_q5_K, qs)
						: offsetof(struct block_q4_K, qs));
		const uint8_t *qh = five ? blk + offsetof(struct block_q5_K, qh) : NULL;
		__m256i isum[KERN_COLS_MAX];
		float d = h2f(hdr->d), dmin = h2f(hdr->dmin);
		/* the 12 scale bytes as words a | b | c: scales 0-3 = a & 63,
		 * 4-7 = (c & 15) | (a >> 6) << 4; mins 0-3 = b & 63,
		 * 4-7 = (c >> 4) | (b >> 6) << 4 (per byte) */
		uint32_t wa, wb, wc;
		memcpy(&wa, hdr->scales, 4);
		memcpy(&wb, hdr->scales + 4, 4);
		memcpy(&wc, hdr->scales + 8, 4);
		const uint32_t sc_lo = wa & 0x3F3F3F3Fu;
		const uint32_t sc_hi = (wc & 0x0F0F0F0Fu) | ((wa >> 2) & 0x30303030u);
		const uint32_t m_lo = wb & 0x3F3F3F3Fu;
		const uint32_t m_hi = ((wc >> 4) & 0x0F0F0F0Fu) | ((wb >> 2) & 0x30303030u);
		const uint64_t sc8 = (uint64_t)sc_hi << 32 | sc_lo;
		/* mins as int32 lanes, one per 32-element sub-block */
		const __m256i mv = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)((uint64_t)m_hi << 32 | m_lo)));
		for (int c = 0; c < nc; c++)
			isum[c] = _mm256_setzero_si256();
		__m256i qhv = qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
		for (int k = 0; k < 4; k++) {
			__m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 32 * k));
			__m256i lo = _mm256_and_si256(raw, m4);
			__m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
			if (qh) {
				__m256i b0 = _mm256_and_si256(_mm256_srli_epi16(qhv, 2 * k), one);
				__m256i b1 = _mm256_and_si256(_mm256_srli_epi16(qhv, 2 * k + 1), one);
				lo = _mm256_or_si256(lo, _mm256_slli_epi16(b0, 4));
				hi = _mm256_or_si256(hi, _mm256_slli_epi16(b1, 4));
			}
			__m256i s0 = SCV((int)(sc8 >> 16 * k) & 0xFF);
			__m256i s1 = SCV((int)(sc8 >> (16 * k + 8)) & 0xFF);
			for (int c = 0; c < nc; c++) {
				const int8_t *aq = QK8K(c, i)->qs + 64 * k;
				__m256i a0 = _mm256_loadu_si256((const __m256i *)aq);
				__m256i a1 = _mm256_loadu_si256((const __m256i *)(aq + 32));
				isum[c] = _mm256_add_epi32(isum[c], DOT_SC(lo, a0, s0));
				isum[c] = _mm256_add_epi32(isum[c], DOT_SC(hi, a1, s1));
			}
		}
		for (int c = 0; c < nc; c++) {
			const struct block_q8_K *y = QK8K(c, i);
			/* Σ of each 32-element sub-block's activations, times its min */
			__m256i bs = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y->bsums),
						       _mm256_set1_epi16(1));
			__m256i ms = _mm256_mullo_epi32(bs, mv);
			acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), _mm256_set1_ps(y->d * d),
						 acc[c]);
			acc[c] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(ms), _mm256_set1_ps(y->d * dmin),
						  acc[c]);
		}
	}
	for (int c = 0; c < nc; c++)
		out[c] = hsum8(acc[c]);
}

INLINE void q4_K_cols_impl(int64_t n, const void *w, const uint8_t *a, size_t as, int nc,
			   float *out)
{
	q45k_cols(n, w, false, a, as, nc, out);
}

INLINE void q5_K_cols_impl(int64_t n, const void *w, const uint8_t *a, size_t as, int nc,
			   float *out)
{
	q45k_cols(n, w, true, a, as, nc, out);
}

/* Q6_K: per half, 4 groups of 32 (two sub-blocks of 16 each); codes are
 * unsigned 0..63 and the -32 comes back through the bsums. */
INLINE void q6_K_cols_impl(int64_t n, const void *w, const uint8_t *a, size_t as, int nc,
			   float *out)
{
	const struct block_q6_K *x = w;
	const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3);
	__m256 acc[KERN_COLS_MAX];
	for (int c = 0; c < nc; c++)
		acc[c] = _mm256_setzero_ps();
	for (int64_t i = 0; i < n / QK_K; i++) {
		kern_pf_stream(x + i, sizeof *x);
		const int8_t *scl = x[i].scales;
		__m256i isum[KERN_COLS_MAX];
		float d = h2f(x[i].d);
		for (int c = 0; c < nc; c++)
			isum[c] = _mm256_setzero_si256();
		for (int h = 0; h < 2; h++) {
			const uint8_t *ql = x[i].ql + 64 * h, *qhp = x[i].qh + 32 * h;
			__m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
			__m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
			__m256i hb = _mm256_loadu_si256((const __m256i *)qhp);
			__m256i q[4];
			q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4),
					       _mm256_slli_epi16(_mm256_and_si256(hb, m3), 4));
			q[1] = _mm256_or_si256(
				_mm256_and_si256(l1, m4),
				_mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m3), 4));
			q[2] = _mm256_or_si256(
				_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
				_mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m3), 4));
			q[3] = _mm256_or_si256(
				_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
				_mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m3), 4));
			for (int g = 0; g < 4; g++) {
				int sb = 8 * h + 2 * g;
				__m256i sv = SCV2(scl[sb], scl[sb + 1]);
				for (int c = 0; c < nc; c++) {
					const int8_t *aq = QK8K(c, i)->qs + 128 * h + 32 * g;
					__m256i av = _mm256_loadu_si256((const __m256i *)aq);
					isum[c] = _mm256_add_epi32(isum[c], DOT_SC(q[g], av, sv));
				}
			}
		}
		__m256i scv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)scl));
		for (int c = 0; c < nc; c++) {
			const struct block_q8_K *y = QK8K(c, i);
			__m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
			__m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(bs, scv), 5);
			__m256i t = _mm256_sub_epi32(isum[c], corr);
			acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), _mm256_set1_ps(y->d * d), acc[c]);
		}
	}
	for (int c = 0; c < nc; c++)
		out[c] = hsum8(acc[c]);
}

/* Q2_K: per half, 4 shifts of the same 32 bytes; each 32-group covers two
 * sub-blocks of 16.  x = d·sc·q − dmin·m, the mins through the bsums. */
INLINE void q2_K_cols_impl(int64_t n, const void *w, const uint8_t *a, size_t as, int nc,
			   float *out)
{
	const struct block_q2_K *x = w;
	const __m256i m3 = _mm256_set1_epi8(3);
	__m256 acc[KERN_COLS_MAX];
	for (int c = 0; c < nc; c++)
		acc[c] = _mm256_setzero_ps();
	for (int64_t i = 0; i < n / QK_K; i++) {
		kern_pf_stream(x + i, sizeof *x);
		__m256i isum[KERN_COLS_MAX];
		int16_t m16[16];
		float d = h2f(x[i].d), dmin = h2f(x[i].dmin);
		for (int j = 0; j < 16; j++)
			m16[j] = x[i].scales[j] >> 4;
		for (int c = 0; c < nc; c++)
			isum[c] = _mm256_setzero_si256();
		for (int h = 0; h < 2; h++) {
			__m256i raw = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
			for (int s = 0; s < 4; s++) {
				__m256i q = _mm256_and_si256(_mm256_srli_epi16(raw, 2 * s), m3);
				int sb = 8 * h + 2 * s;
				__m256i sv = SCV2(x[i].scales[sb] & 0xF, x[i].scales[sb + 1] & 0xF);
				for (int c = 0; c < nc; c++) {
					const int8_t *aq = QK8K(c, i)->qs + 128 * h + 32 * s;
					__m256i av = _mm256_loadu_si256((const __m256i *)aq);
					isum[c] = _mm256_add_epi32(isum[c], DOT_SC(q, av, sv));
				}
			}
		}
		__m256i mv = _mm256_loadu_si256((const __m256i *)m16);
		for (int c = 0; c < nc; c++) {
			const struct block_q8_K *y = QK8K(c, i);
			__m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
			__m256i ms = _mm256_madd_epi16(bs, mv);
			acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), _mm256_set1_ps(y->d * d),
						 acc[c]);
			acc[c] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(ms), _mm256_set1_ps(y->d * dmin),
						  acc[c]);
		}
	}
	for (int c = 0; c < nc; c++)
		out[c] = hsum8(acc[c]);
}

/* Q3_K: codes low2 | high << 2 in 0..7 (the −4 comes back through the
 * bsums), signed 6-bit scales. */
INLINE void q3_K_cols_impl(int64_t n, const void *w, const uint8_t *a, size_t as, int nc,
			   float *out)
{
	const struct block_q3_K *x = w;
	const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
	__m256 acc[KERN_COLS_MAX];
	for (int c = 0; c < nc; c++)
		acc[c] = _mm256_setzero_ps();
	for (int64_t i = 0; i < n / QK_K; i++) {
		kern_pf_stream(x + i, sizeof *x);
		__m256i isum[KERN_COLS_MAX];
		int8_t sc[16];
		int16_t sc16[16];
		float d = h2f(x[i].d);
		kern_k3_scales(x[i].scales, sc);
		for (int j = 0; j < 16; j++)
			sc16[j] = sc[j];
		for (int c = 0; c < nc; c++)
			isum[c] = _mm256_setzero_si256();
		__m256i hm = _mm256_loadu_si256((const __m256i *)x[i].hmask);
		for (int h = 0; h < 2; h++) {
			__m256i raw = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
			for (int s = 0; s < 4; s++) {
				__m256i lo = _mm256_and_si256(_mm256_srli_epi16(raw, 2 * s), m3);
				__m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + s), one);
				__m256i q = _mm256_or_si256(lo, _mm256_slli_epi16(hb, 2));
				int sb = 8 * h + 2 * s;
				__m256i sv = SCV2(sc[sb], sc[sb + 1]);
				for (int c = 0; c < nc; c++) {
					const int8_t *aq = QK8K(c, i)->qs + 128 * h + 32 * s;
					__m256i av = _mm256_loadu_si256((const __m256i *)aq);
					isum[c] = _mm256_add_epi32(isum[c], DOT_SC(q, av, sv));
				}
			}
		}
		__m256i scv = _mm256_loadu_si256((const __m256i *)sc16);
		for (int c = 0; c < nc; c++) {
			const struct block_q8_K *y = QK8K(c, i);
			__m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
			__m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(bs, scv), 2);
			__m256i t = _mm256_sub_epi32(isum[c], corr);
			acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), _mm256_set1_ps(y->d * d), acc[c]);
		}
	}
	for (int c = 0; c < nc; c++)
		out[c] = hsum8(acc[c]);
}

/* ---------------- float weights with float activations ---------------- */

#define FLOAT_BODY(LOAD8)                                                                \
	__m256 acc[KERN_COLS_MAX];                                                       \
	int64_t i = 0;                                                                   \
	for (int c = 0; c < nc; c++)                                                     \
		acc[c] = _mm256_setzero_ps();                                            \
	for (; i + 8 <= n; i += 8) {                                                     \
		__m256 wv = LOAD8;                                                       \
		for (int c = 0; c < nc; c++) {                                           \
			const float *y = (const float *)(a + (size_t)c * as) + i;        \
			acc[c] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(y), acc[c]);        \
		}                                                                        \
	}                                                                                \
	for (int c = 0; c < nc; c++)                                                     \
		out[c] = hsum8(acc[c]);                                                  \
	for (; i < n; i++)                                                               \
		for (int c = 0; c < nc; c++)                                             \
			out[c] += WSCALAR(i) * ((const float *)(a + (size_t)c * as))[i];

INLINE __m256 load_f16x8(const uint16_t *p)
{
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

INLINE __m256 load_bf16x8(const uint16_t *p)
{
	__m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
	return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

INLINE float bf2f(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

#define WSCALAR(i) (p[i])
INLINE void f32_cols_impl(int64_t n, const void *w, const uint8_t *a, size_t as, int nc,
			  float *out)
{
	const float *p = w;
	FLOAT_BODY(_mm256_loadu_ps(p + i))
}
#undef WSCALAR
#define WSCALAR(i) h2f(p[i])
INLINE void f16_cols_impl(int64_t n, const void *w, const uint8_t *a, size_t as, int nc,
			  float *out)
{
	const uint16_t *p = w;
	FLOAT_BODY(load_f16x8(p + i))
}
#undef WSCALAR
#define WSCALAR(i) bf2f(p[i])
INLINE void bf16_cols_impl(int64_t n, const void *w, const uint8_t *a, size_t as, int nc,
			   float *out)
{
	const uint16_t *p = w;
	FLOAT_BODY(load_bf16x8(p + i))
}
#undef WSCALAR

/* Single-row float dots with 4 independent accumulators (latency-bound
 * otherwise): the decode path for float weights. */
#define FLOAT_DOT1(name, T, LOAD8, SCAL)                                                  \
	static float SFX(name)(int64_t n, const void *w, const void *a)                    \
	{                                                                                \
		const T *p = w;                                                          \
		const float *y = a;                                                      \
		__m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;              \
		int64_t i = 0;                                                           \
		for (; i + 32 <= n; i += 32) {                                           \
			kern_pf_stream(p + i, 32 * sizeof *p);                           \
			s0 = _mm256_fmadd_ps(LOAD8(p + i), _mm256_loadu_ps(y + i), s0);  \
			s1 = _mm256_fmadd_ps(LOAD8(p + i + 8), _mm256_loadu_ps(y + i + 8), s1); \
			s2 = _mm256_fmadd_ps(LOAD8(p + i + 16), _mm256_loadu_ps(y + i + 16), s2); \
			s3 = _mm256_fmadd_ps(LOAD8(p + i + 24), _mm256_loadu_ps(y + i + 24), s3); \
		}                                                                        \
		for (; i + 8 <= n; i += 8)                                               \
			s0 = _mm256_fmadd_ps(LOAD8(p + i), _mm256_loadu_ps(y + i), s0);  \
		float r = hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3))); \
		for (; i < n; i++)                                                       \
			r += SCAL(p[i]) * y[i];                                          \
		return r;                                                                \
	}

#define ID(x) (x)
FLOAT_DOT1(f32_dot1, float, _mm256_loadu_ps, ID)
FLOAT_DOT1(f16_dot1, uint16_t, load_f16x8, h2f)
FLOAT_DOT1(bf16_dot1, uint16_t, load_bf16x8, bf2f)
#undef ID

DEFINE_ENTRY(q4_0)
DEFINE_ENTRY(q4_1)
DEFINE_ENTRY(q5_0)
DEFINE_ENTRY(q5_1)
DEFINE_ENTRY(q8_0)
DEFINE_ENTRY(q2_K)
DEFINE_ENTRY(q3_K)
DEFINE_ENTRY(q4_K)
DEFINE_ENTRY(q5_K)
DEFINE_ENTRY(q6_K)
DEFINE_COLS(f32)
DEFINE_COLS(f16)
DEFINE_COLS(bf16)

/* Fills the SIMD members for `type` (see kern_impl.h). */
static void SFX(simd_fill)(uint32_t type, struct kern_simd *s)
{
#define CASE(T, ty)                                                                      \
	case GGUF_TYPE_##T:                                                              \
		s->vec_dot = SFX(ty##_dot);                                              \
		s->dot_cols = SFX(ty##_cols);                                            \
		break;
	switch (type) {
		CASE(Q4_0, q4_0)
		CASE(Q4_1, q4_1)
		CASE(Q5_0, q5_0)
		CASE(Q5_1, q5_1)
		CASE(Q8_0, q8_0)
		CASE(Q2_K, q2_K)
		CASE(Q3_K, q3_K)
		CASE(Q4_K, q4_K)
		CASE(Q5_K, q5_K)
		CASE(Q6_K, q6_K)
	case GGUF_TYPE_F32:
		s->vec_dot = SFX(f32_dot1);
		s->dot_cols = SFX(f32_cols);
		break;
	case GGUF_TYPE_F16:
		s->vec_dot = SFX(f16_dot1);
		s->dot_cols = SFX(f16_cols);
		break;
	case GGUF_TYPE_BF16:
		s->vec_dot = SFX(bf16_dot1);
		s->dot_cols = SFX(bf16_cols);
		break;
	default:
		break;
	}
#undef CASE
}

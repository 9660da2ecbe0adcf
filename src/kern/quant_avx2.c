/*
 * kern/quant_avx2 — AVX2 weight quantizers for quantize-on-load (Q8_0,
 * Q4_0, Q4_K) and the F16 → F32 row conversion in front of them.  Only called after
 * kern_isa_supported(AVX2).
 *
 * Contract: the same bytes as ref.c's quantizers (as compiled for x86-64)
 * for every finite input, tiny, huge and overflowing ones included.  Every
 * float operation of the reference is done once per value, in the same
 * order, by the same IEEE operation (add, mul, div, sqrt are correctly
 * rounded on every lane; no FMA: this file is compiled as ISO C, where GCC
 * does not contract a*b+c, and every product is its own _mm256_mul_ps);
 * maxima and minima are taken with the reference's comparison (x < min
 * keeps the old value on ties and NaN); nearest_int's 1.5·2^23 trick and
 * the truncating (int) casts are reproduced lane by lane.
 *
 * Q4_K layout: the reference searches each 32-value sub-block on its own
 * (make_qkx2_quants: 21 candidate scales, each with sequential sums over
 * the 32 values).  Sums in another order would round differently, so the
 * sums are not split across lanes; instead lane j of every vector holds
 * sub-block j: the 8 × 32 block is transposed once so that vector l holds
 * value l of each of the 8 sub-blocks, and every sequential loop of the
 * reference runs once for all 8 sub-blocks, in its own order.
 */
#include "kern/kern_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#include "base/half.h"
#include "gguf/gguf.h"

static inline __m256 abs8(__m256 v)
{
	return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
}

/* ref.c's nearest_int on 8 lanes (ties to even, |v| < 2^22). */
static inline __m256i nearest8(__m256 v)
{
	__m256i b = _mm256_castps_si256(_mm256_add_ps(v, _mm256_set1_ps(12582912.0f)));
	return _mm256_sub_epi32(_mm256_and_si256(b, _mm256_set1_epi32(0x007FFFFF)),
				_mm256_set1_epi32(0x00400000));
}

static inline __m256i clamp8(__m256i v, int lo, int hi)
{
	return _mm256_min_epi32(_mm256_max_epi32(v, _mm256_set1_epi32(lo)), _mm256_set1_epi32(hi));
}

/* 32 int32 lanes (values 0..255 as signed) → 32 bytes in order. */
static inline __m256i pack32(__m256i a, __m256i b, __m256i c, __m256i d)
{
	__m256i v = _mm256_packus_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
	return _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* Transposes 8 rows of 8 floats in place (r[i][j] ↔ r[j][i]). */
static inline void transpose8(__m256 r[8])
{
	__m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
	__m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
	__m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
	__m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
	__m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
	__m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
	__m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
	__m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
	r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
	r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
	r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
	r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
	r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
	r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
	r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
	r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* roundf() on 8 lanes: trunc(t) ± 1 where the exact remainder is >= 1/2
 * (infinities and NaN pass through). */
static inline __m256 round_away(__m256 t)
{
	__m256 r = _mm256_round_ps(t, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
	__m256 up = _mm256_cmp_ps(abs8(_mm256_sub_ps(t, r)), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
	__m256 one = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(t, _mm256_set1_ps(-0.0f)));
	return _mm256_add_ps(r, _mm256_and_ps(up, one));
}

/* The low byte of each of 32 int32 lanes, in order: what the reference's
 * (int8_t) cast of the int conversion keeps (cvttss2si gives INT_MIN for
 * infinities and NaN, whose low byte is 0; a saturating pack would give
 * -128). */
static inline __m256i low_bytes32(__m256i a, __m256i b, __m256i c, __m256i d)
{
	const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
					      0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
	__m256i ab = _mm256_or_si256(_mm256_shuffle_epi8(a, pick),
				     _mm256_slli_si256(_mm256_shuffle_epi8(b, pick), 4));
	__m256i cd = _mm256_or_si256(_mm256_shuffle_epi8(c, pick),
				     _mm256_slli_si256(_mm256_shuffle_epi8(d, pick), 4));
	/* per 128-bit lane: ab = a0..3 b0..3 | a4..7 b4..7, cd alike */
	__m256i v = _mm256_unpacklo_epi64(ab, cd); /* a0..3 b0..3 c0..3 d0..3 | a4..7 b4..7 c4..7 d4..7 */
	return _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* ---- Q8_0: d = amax / 127, codes roundf(x / d) ---- */
static void q8_0_avx2(const float *x, void *y, int64_t n)
{
	struct block_q8_0 *b = y;
	for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
		__m256 v[4], mx = _mm256_setzero_ps();
		__m256i q[4];
		for (int j = 0; j < 4; j++) {
			v[j] = _mm256_loadu_ps(x + 8 * j);
			mx = _mm256_max_ps(abs8(v[j]), mx); /* fmaxf: a NaN lane keeps mx */
		}
		__m128 m = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
		m = _mm_max_ps(m, _mm_movehl_ps(m, m));
		m = _mm_max_ss(m, _mm_movehdup_ps(m));
		float amax = _mm_cvtss_f32(m);
		float d = amax / 127, id = d != 0 ? 1.0f / d : 0.0f;
		__m256 iv = _mm256_set1_ps(id);
		for (int j = 0; j < 4; j++)
			q[j] = _mm256_cvttps_epi32(round_away(_mm256_mul_ps(v[j], iv)));
		_mm256_storeu_si256((__m256i *)b[i].qs, low_bytes32(q[0], q[1], q[2], q[3]));
		b[i].d = dm_f32_to_f16(d);
	}
}

/* ---- Q4_0: d = max / -8 (max = the first value of largest magnitude),
 * codes min(15, (int)(x / d + 8.5)) ---- */
static void q4_0_avx2(const float *x, void *y, int64_t n)
{
	struct block_q4_0 *b = y;
	for (int64_t i = 0; i < n / QK4_0; i++, x += QK4_0) {
		__m256 v[4], mx = _mm256_setzero_ps();
		__m256i q[4];
		float amax, max = 0;
		for (int j = 0; j < 4; j++) {
			v[j] = _mm256_loadu_ps(x + 8 * j);
			mx = _mm256_max_ps(abs8(v[j]), mx); /* NaN lanes keep mx, as amax < NaN is false */
		}
		{
			__m128 m = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
			m = _mm_max_ps(m, _mm_movehl_ps(m, m));
			m = _mm_max_ss(m, _mm_movehdup_ps(m));
			amax = _mm_cvtss_f32(m);
		}
		if (amax > 0)
			for (int j = 0; j < 4; j++) {
				int hit = _mm256_movemask_ps(_mm256_cmp_ps(abs8(v[j]), _mm256_set1_ps(amax), _CMP_EQ_OQ));
				if (hit) {
					max = x[8 * j + __builtin_ctz((unsigned)hit)];
					break;
				}
			}
		float d = max / -8, id = d != 0 ? 1.0f / d : 0.0f;
		__m256 iv = _mm256_set1_ps(id), h = _mm256_set1_ps(8.5f);
		b[i].d = dm_f32_to_f16(d);
		for (int j = 0; j < 4; j++)
			q[j] = _mm256_min_epi32(_mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(v[j], iv), h)),
						_mm256_set1_epi32(15));
		__m256i c = pack32(q[0], q[1], q[2], q[3]);
		__m128i lo = _mm256_castsi256_si128(c), hi = _mm256_extracti128_si256(c, 1);
		_mm_storeu_si128((__m128i *)b[i].qs, _mm_or_si128(lo, _mm_slli_epi16(hi, 4)));
	}
}

/* ---- Q4_K ---- */

/* make_qkx2_quants(32, 15, x, w, L, &min, Laux, -1, 0.1, 20, false) for
 * the 8 sub-blocks of a super-block at once: xt[l] / wt[l] hold value /
 * weight l of each sub-block (lane j = sub-block j).  Lt[l] gets the codes
 * (as floats), *scale_out and *the_min the lanes' results.  (Two
 * super-blocks interleaved to overlap their chains of sums measured no
 * faster: the 16 registers spill.) */
static void qkx2_8(const __m256 xt[32], const __m256 wt[32], __m256 Lt[32], __m256 *scale_out,
		   __m256 *the_min)
{
	const __m256 zero = _mm256_setzero_ps();
	__m256 min = xt[0], max = xt[0], sum_w = wt[0], sum_x = _mm256_mul_ps(wt[0], xt[0]);
	__m256 best_error = zero, scale, iscale, flat, min0;
	__m256 Laux[32];

	for (int i = 1; i < 32; i++) {
		min = _mm256_min_ps(xt[i], min); /* x < min ? x : min */
		max = _mm256_max_ps(xt[i], max); /* x > max ? x : max */
		sum_w = _mm256_add_ps(sum_w, wt[i]);
		sum_x = _mm256_add_ps(sum_x, _mm256_mul_ps(wt[i], xt[i]));
	}
	min = _mm256_blendv_ps(min, zero, _mm256_cmp_ps(min, zero, _CMP_GT_OQ)); /* if (min > 0) min = 0 */
	min0 = min;
	flat = _mm256_cmp_ps(max, min, _CMP_EQ_OQ);
	iscale = _mm256_div_ps(_mm256_set1_ps(15.0f), _mm256_sub_ps(max, min));
	scale = _mm256_div_ps(_mm256_set1_ps(1.0f), iscale);
	for (int i = 0; i < 32; i++) {
		__m256 l = _mm256_cvtepi32_ps(clamp8(nearest8(_mm256_mul_ps(iscale, _mm256_sub_ps(xt[i], min))), 0, 15));
		__m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale, l), min), xt[i]);
		Lt[i] = l;
		best_error = _mm256_add_ps(best_error, _mm256_mul_ps(wt[i], _mm256_mul_ps(diff, diff)));
	}
	for (int is = 0; is <= 20; is++) {
		/* the reference's (rmin + rdelta·is + nmax) in float, then / (max - min)
		 * with the min of the best assignment so far */
		float num = -1.0f + 0.1f * (float)is;
		num = num + 15.0f;
		__m256 sum_l = zero, sum_l2 = zero, sum_xl = zero, cur_error = zero;
		iscale = _mm256_div_ps(_mm256_set1_ps(num), _mm256_sub_ps(max, min));
		for (int i = 0; i < 32; i++) {
			__m256 lf = _mm256_cvtepi32_ps(
				clamp8(nearest8(_mm256_mul_ps(iscale, _mm256_sub_ps(xt[i], min))), 0, 15));
			__m256 wl = _mm256_mul_ps(wt[i], lf);
			Laux[i] = lf;
			sum_l = _mm256_add_ps(sum_l, wl);
			sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(wl, lf));
			sum_xl = _mm256_add_ps(sum_xl, _mm256_mul_ps(wl, xt[i]));
		}
		__m256 D = _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_l2), _mm256_mul_ps(sum_l, sum_l));
		__m256 this_scale = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_w, sum_xl), _mm256_mul_ps(sum_x, sum_l)), D);
		__m256 this_min = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_l2, sum_x), _mm256_mul_ps(sum_l, sum_xl)), D);
		__m256 pos = _mm256_cmp_ps(this_min, zero, _CMP_GT_OQ);
		this_min = _mm256_blendv_ps(this_min, zero, pos);
		this_scale = _mm256_blendv_ps(this_scale, _mm256_div_ps(sum_xl, sum_l2), pos);
		for (int i = 0; i < 32; i++) {
			__m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(this_scale, Laux[i]), this_min), xt[i]);
			cur_error = _mm256_add_ps(cur_error, _mm256_mul_ps(wt[i], _mm256_mul_ps(diff, diff)));
		}
		/* lanes with D > 0 and a smaller error take this assignment */
		__m256 take = _mm256_and_ps(_mm256_cmp_ps(D, zero, _CMP_GT_OQ),
					    _mm256_cmp_ps(cur_error, best_error, _CMP_LT_OQ));
		if (!_mm256_movemask_ps(take))
			continue;
		for (int i = 0; i < 32; i++)
			Lt[i] = _mm256_blendv_ps(Lt[i], Laux[i], take);
		best_error = _mm256_blendv_ps(best_error, cur_error, take);
		scale = _mm256_blendv_ps(scale, this_scale, take);
		min = _mm256_blendv_ps(min, this_min, take);
	}
	/* max == min: codes 0, scale 0, the min as it was (the reference
	 * returns before the search) */
	for (int i = 0; i < 32; i++)
		Lt[i] = _mm256_andnot_ps(flat, Lt[i]);
	*scale_out = _mm256_andnot_ps(flat, scale);
	*the_min = _mm256_xor_ps(_mm256_blendv_ps(min, min0, flat), _mm256_set1_ps(-0.0f)); /* -min */
}

/* Transposes super-block x into xt (vector l = value l of each sub-block)
 * and makes the reference's weights av_x + |x| in wt. */
static inline void q4k_prepare(const float *x, __m256 xt[32], __m256 wt[32])
{
	__m256 sum_x2 = _mm256_setzero_ps(), av_x;
	for (int c = 0; c < 4; c++) {
		for (int j = 0; j < 8; j++)
			xt[8 * c + j] = _mm256_loadu_ps(x + 32 * j + 8 * c);
		transpose8(xt + 8 * c);
	}
	for (int l = 0; l < 32; l++)
		sum_x2 = _mm256_add_ps(sum_x2, _mm256_mul_ps(xt[l], xt[l]));
	av_x = _mm256_sqrt_ps(_mm256_div_ps(sum_x2, _mm256_set1_ps(32.0f)));
	for (int l = 0; l < 32; l++)
		wt[l] = _mm256_add_ps(av_x, abs8(xt[l]));
}

/* The rest of the reference after the search: 6-bit scales and mins, the
 * codes re-derived from them (or the search's where a scale is 0), packed. */
static void q4k_finish(const float *x, const __m256 Lt[32], __m256 scale_v, __m256 min_v, struct block_q4_K *b)
{
	float scales[8], mins[8];
	uint8_t L[QK_K];

	_mm256_storeu_ps(scales, scale_v);
	_mm256_storeu_ps(mins, min_v);
	memset(b->scales, 0, sizeof b->scales);
	kern_q45k_scales(scales, mins, b->scales, &b->d, &b->dmin);
	for (int j = 0; j < 8; j++) {
		uint8_t sc, m;
		kern_k4_scale_min(j, b->scales, &sc, &m);
		float d = dm_f16_to_f32(b->d) * (float)sc;
		if (d == 0) {
			/* the search's codes stay: lane j of Lt */
			float t[8];
			for (int l = 0; l < 32; l++) {
				_mm256_storeu_ps(t, Lt[l]);
				L[32 * j + l] = (uint8_t)t[j];
			}
			continue;
		}
		float dm = dm_f16_to_f32(b->dmin) * (float)m;
		__m256 dv = _mm256_set1_ps(d), dmv = _mm256_set1_ps(dm);
		__m256i q[4];
		for (int k = 0; k < 4; k++)
			q[k] = clamp8(nearest8(_mm256_div_ps(_mm256_add_ps(_mm256_loadu_ps(x + 32 * j + 8 * k), dmv), dv)), 0, 15);
		_mm256_storeu_si256((__m256i *)(L + 32 * j), pack32(q[0], q[1], q[2], q[3]));
	}
	for (int c = 0; c < 4; c++) {
		__m256i lo = _mm256_loadu_si256((const __m256i *)(L + 64 * c));
		__m256i hi = _mm256_loadu_si256((const __m256i *)(L + 64 * c + 32));
		_mm256_storeu_si256((__m256i *)(b->qs + 32 * c), _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4)));
	}
}

static void q4_K_avx2(const float *x, void *y, int64_t n)
{
	struct block_q4_K *b = y;
	__m256 xt[32], wt[32], Lt[32], scale_v, min_v;

	for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
		q4k_prepare(x, xt, wt);
		qkx2_8(xt, wt, Lt, &scale_v, &min_v);
		q4k_finish(x, Lt, scale_v, min_v, &b[i]);
	}
}

kern_from_float_fn kern_quant_avx2(uint32_t type)
{
	switch (type) {
	case GGUF_TYPE_Q4_0:
		return q4_0_avx2;
	case GGUF_TYPE_Q4_K:
		return q4_K_avx2;
	case GGUF_TYPE_Q8_0:
		return q8_0_avx2;
	default:
		return NULL;
	}
}

void kern_f16_to_f32_avx2(const void *x, float *y, int64_t n)
{
	const uint16_t *h = x;
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
	for (; i < n; i++)
		y[i] = dm_f16_to_f32(h[i]);
}

#else
kern_from_float_fn kern_quant_avx2(uint32_t type)
{
	(void)type;
	return NULL;
}

void kern_f16_to_f32_avx2(const void *x, float *y, int64_t n)
{
	kern_to_float_f16_ref(x, y, n);
}
#endif

/*
 * kern/ops_avx512 — AVX-512 (F/BW/VL/DQ) versions of the hot per-token
 * operations: activation quantization (Q8_0, Q8_1, Q8_K), attention over
 * the F16 KV cache, and softmax / SwiGLU on a vector e^x (exp16).  Only called after kern_isa_supported(AVX512).
 *
 * The quantizers are bit-identical to ref.c: every product and division is
 * the same single float operation, maxima are exact whatever the order, and
 * the two roundings are reproduced exactly (Q8_0/Q8_1: half away from zero,
 * built from a truncation and an exact remainder; Q8_K: half to even, the
 * hardware's default mode).  The attention kernels sum in a different order
 * than the reference (16 lanes, then a tree), so they agree with it to
 * float rounding only.
 */
#include "kern/kern_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "base/half.h"
#include "gguf/gguf.h"

/* roundf() on 16 lanes: trunc(t) ± 1 where the exact remainder t − trunc(t)
 * is at least one half in magnitude (exact for every float). */
static inline __m512 round_away(__m512 t)
{
	__m512 r = _mm512_roundscale_ps(t, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
	__mmask16 up = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(t, r)),
					  _mm512_set1_ps(0.5f), _CMP_GE_OQ);
	__m512 one = _mm512_or_ps(_mm512_set1_ps(1.0f),
				  _mm512_and_ps(t, _mm512_set1_ps(-0.0f)));
	return _mm512_mask_add_ps(r, up, r, one);
}

/* One 32-element Q8_0/Q8_1 block: codes into qs, returns d; *sum gets Σ qs. */
static inline float q8_block_avx512(const float *x, int8_t *qs, int *sum)
{
	__m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
	float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
	float d = amax / 127, id = d != 0 ? 1.0f / d : 0.0f;
	__m512 iv = _mm512_set1_ps(id);
	__m512i q0 = _mm512_cvtps_epi32(round_away(_mm512_mul_ps(x0, iv)));
	__m512i q1 = _mm512_cvtps_epi32(round_away(_mm512_mul_ps(x1, iv)));
	_mm_storeu_si128((__m128i *)qs, _mm512_cvtepi32_epi8(q0));
	_mm_storeu_si128((__m128i *)(qs + 16), _mm512_cvtepi32_epi8(q1));
	if (sum)
		*sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
	return d;
}

static void q8_0_act_avx512(const float *x, void *y, int64_t n)
{
	struct block_q8_0 *b = y;
	for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0)
		b[i].d = dm_f32_to_f16(q8_block_avx512(x, b[i].qs, NULL));
}

static void q8_1_act_avx512(const float *x, void *y, int64_t n)
{
	struct block_q8_1 *b = y;
	for (int64_t i = 0; i < n / QK8_1; i++, x += QK8_1) {
		int sum;
		float d = q8_block_avx512(x, b[i].qs, &sum);
		b[i].d = dm_f32_to_f16(d);
		b[i].s = dm_f32_to_f16((float)sum * d);
	}
}

/* Q8_K: the reference's max is the first value of largest magnitude. */
static void q8_K_act_avx512(const float *x, void *y, int64_t n)
{
	struct block_q8_K *b = y;
	for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
		__m512 mx = _mm512_setzero_ps();
		for (int j = 0; j < QK_K; j += 16)
			mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_loadu_ps(x + j)));
		float amax = _mm512_reduce_max_ps(mx);
		if (amax == 0) {
			memset(&b[i], 0, sizeof b[i]);
			continue;
		}
		float max = 0;
		for (int j = 0; j < QK_K; j += 16) {
			__mmask16 m = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + j)),
							 _mm512_set1_ps(amax), _CMP_EQ_OQ);
			if (m) {
				max = x[j + __builtin_ctz(m)];
				break;
			}
		}
		float iscale = -127.f / max;
		__m512 iv = _mm512_set1_ps(iscale);
		for (int j = 0; j < QK_K; j += 16) {
			__m512 v = _mm512_mul_ps(iv, _mm512_loadu_ps(x + j));
			__m512i q = _mm512_cvtps_epi32(
				_mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
			q = _mm512_min_epi32(q, _mm512_set1_epi32(127));
			_mm_storeu_si128((__m128i *)(b[i].qs + j), _mm512_cvtepi32_epi8(q));
			b[i].bsums[j / 16] = (int16_t)_mm512_reduce_add_epi32(q);
		}
		b[i].d = 1 / iscale;
	}
}

kern_from_float_fn kern_act_quant_avx512(uint32_t act_type)
{
	switch (act_type) {
	case GGUF_TYPE_Q8_0:
		return q8_0_act_avx512;
	case GGUF_TYPE_Q8_1:
		return q8_1_act_avx512;
	case GGUF_TYPE_Q8_K:
		return q8_K_act_avx512;
	default:
		return NULL;
	}
}

/* 16 F16 values (the first `m` lanes) as floats. */
static inline __m512 load_h16(__mmask16 m, const uint16_t *p)
{
	return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

static inline __mmask16 lanes(int64_t left)
{
	return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
}

/* Four cache rows at a time, so four independent FMA chains are in flight. */
void kern_attn_scores_avx512(float *scores, const float *q, const uint16_t *k, int64_t n_kv,
			     int64_t head_dim, size_t stride, float scale)
{
	int64_t t = 0;
	for (; t + 4 <= n_kv; t += 4) {
		const uint16_t *k0 = k + (size_t)t * stride;
		__m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
		for (int64_t i = 0; i < head_dim; i += 16) {
			__mmask16 m = lanes(head_dim - i);
			__m512 qv = _mm512_maskz_loadu_ps(m, q + i);
			s0 = _mm512_fmadd_ps(qv, load_h16(m, k0 + i), s0);
			s1 = _mm512_fmadd_ps(qv, load_h16(m, k0 + stride + i), s1);
			s2 = _mm512_fmadd_ps(qv, load_h16(m, k0 + 2 * stride + i), s2);
			s3 = _mm512_fmadd_ps(qv, load_h16(m, k0 + 3 * stride + i), s3);
		}
		scores[t] = _mm512_reduce_add_ps(s0) * scale;
		scores[t + 1] = _mm512_reduce_add_ps(s1) * scale;
		scores[t + 2] = _mm512_reduce_add_ps(s2) * scale;
		scores[t + 3] = _mm512_reduce_add_ps(s3) * scale;
	}
	for (; t < n_kv; t++) {
		const uint16_t *kr = k + (size_t)t * stride;
		__m512 s = _mm512_setzero_ps();
		for (int64_t i = 0; i < head_dim; i += 16) {
			__mmask16 m = lanes(head_dim - i);
			s = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), load_h16(m, kr + i), s);
		}
		scores[t] = _mm512_reduce_add_ps(s) * scale;
	}
}

/* 64 outputs at a time held in registers over all rows; rows in pairs with
 * separate accumulators (eight FMA chains). */
void kern_attn_values_avx512(float *out, const float *p, const uint16_t *v, int64_t n_kv,
			     int64_t head_dim, size_t stride)
{
	for (int64_t i0 = 0; i0 < head_dim; i0 += 64) {
		__mmask16 m[4];
		__m512 a[4], b[4];
		for (int j = 0; j < 4; j++) {
			int64_t left = head_dim - i0 - 16 * j;
			m[j] = left > 0 ? lanes(left) : 0;
			a[j] = b[j] = _mm512_setzero_ps();
		}
		int64_t t = 0;
		for (; t + 2 <= n_kv; t += 2) {
			const uint16_t *r0 = v + (size_t)t * stride + i0, *r1 = r0 + stride;
			__m512 p0 = _mm512_set1_ps(p[t]), p1 = _mm512_set1_ps(p[t + 1]);
			for (int j = 0; j < 4; j++) {
				a[j] = _mm512_fmadd_ps(p0, load_h16(m[j], r0 + 16 * j), a[j]);
				b[j] = _mm512_fmadd_ps(p1, load_h16(m[j], r1 + 16 * j), b[j]);
			}
		}
		if (t < n_kv) {
			const uint16_t *r0 = v + (size_t)t * stride + i0;
			__m512 p0 = _mm512_set1_ps(p[t]);
			for (int j = 0; j < 4; j++)
				a[j] = _mm512_fmadd_ps(p0, load_h16(m[j], r0 + 16 * j), a[j]);
		}
		for (int j = 0; j < 4; j++)
			_mm512_mask_storeu_ps(out + i0 + 16 * j, m[j], _mm512_add_ps(a[j], b[j]));
	}
}

/* e^x on 16 lanes (test_kern_ops holds the softmax built on it within 4 ulp
 * of the exact result for normal results):
 * x = n·ln2 + r with n = round(x·log2 e) and |r| <= ln2/2 (ln2 as a float
 * plus its remainder, each subtraction one FMA), e^r by its Taylor series
 * to r⁷ (truncation < 1e-8 relative), then ·2ⁿ by vscalefps, which gives
 * inf on overflow and 0 on underflow.  x is clamped to [−104, 89] first
 * (e^−104 is below half the smallest float, e^89 above the largest); a NaN
 * passes the clamps (the second operand of vmaxps/vminps) and comes out NaN. */
static inline __m512 exp16(__m512 x)
{
	const __m512 ln2_hi = _mm512_set1_ps(0.693147182464599609375f); /* (float)ln 2 */
	const __m512 ln2_lo = _mm512_set1_ps(-1.904654323148236e-9f);   /* ln 2 − ln2_hi */
	x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x);
	x = _mm512_min_ps(_mm512_set1_ps(89.0f), x);
	__m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.4426950408889634f)),
					_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m512 r = _mm512_fnmadd_ps(n, ln2_hi, x);
	r = _mm512_fnmadd_ps(n, ln2_lo, r);
	__m512 p = _mm512_set1_ps(1.0f / 5040);
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
	return _mm512_scalef_ps(p, n);
}

static inline __mmask16 tail_mask(int64_t left)
{
	return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
}

/* ops.c's kern_softmax with exp16; the sum still in double. */
double kern_softmax_avx512(float *x, int64_t n)
{
	__m512 mx = _mm512_set1_ps(-INFINITY);
	for (int64_t i = 0; i < n; i += 16)
		mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(mx, tail_mask(n - i), x + i));
	const __m512 max = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
	__m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
	for (int64_t i = 0; i < n; i += 16) {
		const __mmask16 m = tail_mask(n - i);
		__m512 e = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), max)));
		_mm512_mask_storeu_ps(x + i, m, e);
		s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
		s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(
					       _mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
	}
	const double sum = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
	const __m512 inv = _mm512_set1_ps(sum > 0 ? (float)(1.0 / sum) : 0.0f);
	for (int64_t i = 0; i < n; i += 16) {
		const __mmask16 m = tail_mask(n - i);
		_mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
	}
	return sum;
}

/* ops.c's kern_swiglu with exp16: g = g / (1 + e^−g) · u. */
void kern_swiglu_avx512(float *g, const float *u, int64_t n)
{
	for (int64_t i = 0; i < n; i += 16) {
		const __mmask16 m = tail_mask(n - i);
		__m512 gv = _mm512_maskz_loadu_ps(m, g + i);
		__m512 d = _mm512_add_ps(_mm512_set1_ps(1.0f), exp16(_mm512_sub_ps(_mm512_setzero_ps(), gv)));
		_mm512_mask_storeu_ps(g + i, m,
				      _mm512_mul_ps(_mm512_div_ps(gv, d), _mm512_maskz_loadu_ps(m, u + i)));
	}
}
/* tanh(z) = 1 − 2 / (1 + e^(2z)), with e^(2z) from exp16; z is clamped to
 * ±10 first, where tanh is ±1 to float precision (and e^(2z) cannot
 * overflow). */
static inline __m512 tanh16(__m512 z)
{
	z = _mm512_min_ps(_mm512_max_ps(z, _mm512_set1_ps(-10.0f)), _mm512_set1_ps(10.0f));
	const __m512 e = exp16(_mm512_add_ps(z, z));
	return _mm512_sub_ps(_mm512_set1_ps(1.0f),
			     _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e)));
}

/* ops.c's kern_geglu with tanh16: g = 0.5·g·(1 + tanh(√(2/π)·(g + 0.044715·g³))) · u. */
void kern_geglu_avx512(float *g, const float *u, int64_t n)
{
	const __m512 c = _mm512_set1_ps(0.7978845608028654f), k = _mm512_set1_ps(0.044715f);
	const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
	for (int64_t i = 0; i < n; i += 16) {
		const __mmask16 m = tail_mask(n - i);
		__m512 x = _mm512_maskz_loadu_ps(m, g + i);
		__m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
		__m512 t = tanh16(_mm512_mul_ps(c, _mm512_fmadd_ps(k, x3, x)));
		__m512 y = _mm512_mul_ps(_mm512_mul_ps(half, x), _mm512_add_ps(one, t));
		_mm512_mask_storeu_ps(g + i, m, _mm512_mul_ps(y, _mm512_maskz_loadu_ps(m, u + i)));
	}
}

/* ops.c's kern_softcap with tanh16: y = c·tanh(x / c). */
void kern_softcap_avx512(float *y, const float *x, float c, int64_t n)
{
	const __m512 cv = _mm512_set1_ps(c), inv = _mm512_set1_ps(1.0f / c);
	for (int64_t i = 0; i < n; i += 16) {
		const __mmask16 m = tail_mask(n - i);
		__m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv);
		_mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(cv, tanh16(v)));
	}
}
#else
kern_from_float_fn kern_act_quant_avx512(uint32_t act_type)
{
	(void)act_type;
	return NULL;
}
#endif

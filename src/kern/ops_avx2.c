/*
 * kern/ops_avx2 — AVX2 + FMA + F16C versions of the hot per-token
 * operations: activation quantization (Q8_0, Q8_1, Q8_K), attention over
 * the F16 KV cache, and softmax / SwiGLU / GeGLU / soft-capping on a vector
 * e^x (exp8).  Only called after kern_isa_supported(AVX2).
 *
 * Same contract as ops_avx512.c: the quantizers are bit-identical to ref.c
 * (same single float operations, exact maxima, the reference's two
 * roundings reproduced exactly); attention agrees with the reference to
 * float rounding (8 lanes, then a tree).
 */
#include "kern/kern_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "base/half.h"
#include "gguf/gguf.h"
#include "kern/exp_x86.h"

static inline __m256 abs8(__m256 v)
{
	return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
}

static inline float hmax8(__m256 v)
{
	__m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	m = _mm_max_ps(m, _mm_movehl_ps(m, m));
	m = _mm_max_ss(m, _mm_movehdup_ps(m));
	return _mm_cvtss_f32(m);
}

static inline float hsum8(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

static inline int hsum8i(__m256i v)
{
	__m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
	s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
	s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
	return _mm_cvtsi128_si32(s);
}

/* roundf() on 8 lanes: trunc(t) ± 1 where the exact remainder is >= 1/2. */
static inline __m256 round_away(__m256 t)
{
	__m256 r = _mm256_round_ps(t, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
	__m256 up = _mm256_cmp_ps(abs8(_mm256_sub_ps(t, r)), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
	__m256 one = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(t, _mm256_set1_ps(-0.0f)));
	return _mm256_add_ps(r, _mm256_and_ps(up, one));
}

/* 32 int32 lanes (values in int8 range) → 32 bytes in order. */
static inline __m256i pack32(__m256i a, __m256i b, __m256i c, __m256i d)
{
	__m256i v = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
	return _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static inline float q8_block_avx2(const float *x, int8_t *qs, int *sum)
{
	__m256 v[4], mx = _mm256_setzero_ps();
	__m256i q[4];
	for (int j = 0; j < 4; j++) {
		v[j] = _mm256_loadu_ps(x + 8 * j);
		mx = _mm256_max_ps(mx, abs8(v[j]));
	}
	float amax = hmax8(mx);
	float d = amax / 127, id = d != 0 ? 1.0f / d : 0.0f;
	__m256 iv = _mm256_set1_ps(id);
	for (int j = 0; j < 4; j++)
		q[j] = _mm256_cvtps_epi32(round_away(_mm256_mul_ps(v[j], iv)));
	_mm256_storeu_si256((__m256i *)qs, pack32(q[0], q[1], q[2], q[3]));
	if (sum)
		*sum = hsum8i(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]),
					       _mm256_add_epi32(q[2], q[3])));
	return d;
}

static void q8_0_act_avx2(const float *x, void *y, int64_t n)
{
	struct block_q8_0 *b = y;
	for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0)
		b[i].d = dm_f32_to_f16(q8_block_avx2(x, b[i].qs, NULL));
}

static void q8_1_act_avx2(const float *x, void *y, int64_t n)
{
	struct block_q8_1 *b = y;
	for (int64_t i = 0; i < n / QK8_1; i++, x += QK8_1) {
		int sum;
		float d = q8_block_avx2(x, b[i].qs, &sum);
		b[i].d = dm_f32_to_f16(d);
		b[i].s = dm_f32_to_f16((float)sum * d);
	}
}

static void q8_K_act_avx2(const float *x, void *y, int64_t n)
{
	struct block_q8_K *b = y;
	for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
		__m256 mx = _mm256_setzero_ps();
		for (int j = 0; j < QK_K; j += 8)
			mx = _mm256_max_ps(mx, abs8(_mm256_loadu_ps(x + j)));
		float amax = hmax8(mx);
		if (amax == 0) {
			memset(&b[i], 0, sizeof b[i]);
			continue;
		}
		float max = 0;
		for (int j = 0; j < QK_K; j += 8) {
			int m = _mm256_movemask_ps(_mm256_cmp_ps(abs8(_mm256_loadu_ps(x + j)),
								 _mm256_set1_ps(amax), _CMP_EQ_OQ));
			if (m) {
				max = x[j + __builtin_ctz((unsigned)m)];
				break;
			}
		}
		float iscale = -127.f / max;
		__m256 iv = _mm256_set1_ps(iscale);
		for (int j = 0; j < QK_K; j += 32) {
			__m256i q[4];
			for (int k = 0; k < 4; k++) {
				__m256 v = _mm256_mul_ps(iv, _mm256_loadu_ps(x + j + 8 * k));
				q[k] = _mm256_cvtps_epi32(_mm256_round_ps(
					v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
				q[k] = _mm256_min_epi32(q[k], _mm256_set1_epi32(127));
			}
			_mm256_storeu_si256((__m256i *)(b[i].qs + j), pack32(q[0], q[1], q[2], q[3]));
			b[i].bsums[j / 16] = (int16_t)hsum8i(_mm256_add_epi32(q[0], q[1]));
			b[i].bsums[j / 16 + 1] = (int16_t)hsum8i(_mm256_add_epi32(q[2], q[3]));
		}
		b[i].d = 1 / iscale;
	}
}

kern_from_float_fn kern_act_quant_avx2(uint32_t act_type)
{
	switch (act_type) {
	case GGUF_TYPE_Q8_0:
		return q8_0_act_avx2;
	case GGUF_TYPE_Q8_1:
		return q8_1_act_avx2;
	case GGUF_TYPE_Q8_K:
		return q8_K_act_avx2;
	default:
		return NULL;
	}
}

static inline __m256 load_h8(const uint16_t *p)
{
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

/* Two cache rows at a time, two accumulators each; the head_dim % 8 tail in
 * scalar. */
void kern_attn_scores_avx2(float *scores, const float *q, const uint16_t *k, int64_t n_kv,
			   int64_t head_dim, size_t stride, float scale)
{
	const int64_t hd8 = head_dim & ~(int64_t)7;
	for (int64_t t = 0; t < n_kv; t += 2) {
		const int rows = t + 1 < n_kv ? 2 : 1;
		for (int r = 0; r < rows; r++) {
			const uint16_t *kr = k + (size_t)(t + r) * stride;
			__m256 s0 = _mm256_setzero_ps(), s1 = s0;
			int64_t i = 0;
			for (; i + 16 <= hd8; i += 16) {
				s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load_h8(kr + i), s0);
				s1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), load_h8(kr + i + 8), s1);
			}
			if (i < hd8)
				s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load_h8(kr + i), s0);
			float s = hsum8(_mm256_add_ps(s0, s1));
			for (i = hd8; i < head_dim; i++)
				s += q[i] * _cvtsh_ss(kr[i]);
			scores[t + r] = s * scale;
		}
	}
}

/* 32 outputs at a time in registers over all rows, rows in pairs. */
void kern_attn_values_avx2(float *out, const float *p, const uint16_t *v, int64_t n_kv,
			   int64_t head_dim, size_t stride)
{
	const int64_t hd8 = head_dim & ~(int64_t)7;
	int64_t i0 = 0;
	for (; i0 < hd8; i0 += 32) {
		const int nv = (int)((hd8 - i0) / 8 < 4 ? (hd8 - i0) / 8 : 4);
		__m256 a[4], b[4];
		for (int j = 0; j < 4; j++)
			a[j] = b[j] = _mm256_setzero_ps();
		int64_t t = 0;
		for (; t + 2 <= n_kv; t += 2) {
			const uint16_t *r0 = v + (size_t)t * stride + i0, *r1 = r0 + stride;
			__m256 p0 = _mm256_set1_ps(p[t]), p1 = _mm256_set1_ps(p[t + 1]);
			for (int j = 0; j < nv; j++) {
				a[j] = _mm256_fmadd_ps(p0, load_h8(r0 + 8 * j), a[j]);
				b[j] = _mm256_fmadd_ps(p1, load_h8(r1 + 8 * j), b[j]);
			}
		}
		if (t < n_kv) {
			const uint16_t *r0 = v + (size_t)t * stride + i0;
			__m256 p0 = _mm256_set1_ps(p[t]);
			for (int j = 0; j < nv; j++)
				a[j] = _mm256_fmadd_ps(p0, load_h8(r0 + 8 * j), a[j]);
		}
		for (int j = 0; j < nv; j++)
			_mm256_storeu_ps(out + i0 + 8 * j, _mm256_add_ps(a[j], b[j]));
	}
	for (int64_t i = hd8; i < head_dim; i++) {
		float s = 0;
		for (int64_t t = 0; t < n_kv; t++)
			s += p[t] * _cvtsh_ss(v[(size_t)t * stride + (size_t)i]);
		out[i] = s;
	}
}
/* ---- grouped-query attention: g heads against one K/V head ----
 * Each block of keys (values) is converted from F16 once into a float
 * buffer on the stack and then used by all g heads, where the one-head
 * kernels above convert every row once per head.  Scores: 8 keys × one
 * head are 8 accumulators of 8 lanes (a multiply-add per 8 elements and
 * key, the key rows as memory operands), summed into one vector of 8
 * scores by a horizontal-add tree.  Values: per head up to 8 vectors of
 * its output stay in registers over a block, each key a broadcast
 * probability times its float row.  head_dim must be a multiple of 8, at
 * most KERN_GRP_HD (the caller's contract, checked in ops.c). */
#define GRP_KB 8  /* keys per scores block */
#define GRP_VB 16 /* keys per values block */

static inline void f16_row_to_f32(float *dst, const uint16_t *src, int64_t n)
{
	for (int64_t i = 0; i < n; i += 8)
		_mm256_store_ps(dst + i, load_h8(src + i));
}

/* [Σ a[0], Σ a[1], ..., Σ a[7]] */
static inline __m256 hsum8x8(const __m256 a[8])
{
	const __m256 h01 = _mm256_hadd_ps(a[0], a[1]), h23 = _mm256_hadd_ps(a[2], a[3]);
	const __m256 h45 = _mm256_hadd_ps(a[4], a[5]), h67 = _mm256_hadd_ps(a[6], a[7]);
	const __m256 h03 = _mm256_hadd_ps(h01, h23), h47 = _mm256_hadd_ps(h45, h67);
	/* h03 = [a0..a3 low halves | a0..a3 high halves], h47 the same for a4..a7 */
	return _mm256_add_ps(_mm256_permute2f128_ps(h03, h47, 0x20), _mm256_permute2f128_ps(h03, h47, 0x31));
}

void kern_attn_scores_grp_avx2(float *scores, size_t s_stride, const float *q, size_t q_stride, int g,
			       const uint16_t *k, int64_t n_kv, int64_t head_dim, size_t stride, float scale)
{
	float kb[GRP_KB * KERN_GRP_HD] __attribute__((aligned(32)));
	const __m256 sv = _mm256_set1_ps(scale);

	for (int64_t t0 = 0; t0 < n_kv; t0 += GRP_KB) {
		const int nk = n_kv - t0 < GRP_KB ? (int)(n_kv - t0) : GRP_KB;
		for (int r = 0; r < GRP_KB; r++) {
			if (r < nk)
				f16_row_to_f32(kb + r * head_dim, k + (size_t)(t0 + r) * stride, head_dim);
			else
				memset(kb + r * head_dim, 0, (size_t)head_dim * sizeof(float));
		}
		for (int j = 0; j < g; j++) {
			const float *qj = q + (size_t)j * q_stride;
			__m256 a[GRP_KB];
#pragma GCC unroll 8
			for (int r = 0; r < GRP_KB; r++)
				a[r] = _mm256_setzero_ps();
			for (int64_t i = 0; i < head_dim; i += 8) {
				const __m256 qv = _mm256_loadu_ps(qj + i);
#pragma GCC unroll 8
				for (int r = 0; r < GRP_KB; r++)
					a[r] = _mm256_fmadd_ps(qv, _mm256_load_ps(kb + r * head_dim + i), a[r]);
			}
			const __m256 sc = _mm256_mul_ps(hsum8x8(a), sv);
			float *out = scores + (size_t)j * s_stride + t0;
			if (nk == GRP_KB) {
				_mm256_storeu_ps(out, sc);
			} else {
				float tmp[GRP_KB];
				_mm256_storeu_ps(tmp, sc);
				memcpy(out, tmp, (size_t)nk * sizeof(float));
			}
		}
	}
}

/* Head j's outputs [i0, i0 + 8·NV) over the block's nk keys. */
static inline __attribute__((always_inline)) void grp_values_span(float *o, const float *pj, const float *vb,
								  int64_t head_dim, int nk, const int NV)
{
	__m256 a[8];
#pragma GCC unroll 8
	for (int c = 0; c < NV; c++)
		a[c] = _mm256_loadu_ps(o + 8 * c);
	for (int r = 0; r < nk; r++) {
		const __m256 pb = _mm256_broadcast_ss(pj + r);
		const float *vr = vb + (size_t)r * (size_t)head_dim;
#pragma GCC unroll 8
		for (int c = 0; c < NV; c++)
			a[c] = _mm256_fmadd_ps(pb, _mm256_load_ps(vr + 8 * c), a[c]);
	}
#pragma GCC unroll 8
	for (int c = 0; c < NV; c++)
		_mm256_storeu_ps(o + 8 * c, a[c]);
}

void kern_attn_values_grp_avx2(float *out, size_t o_stride, const float *p, size_t p_stride, int g,
			       const uint16_t *v, int64_t n_kv, int64_t head_dim, size_t stride)
{
	float vb[GRP_VB * KERN_GRP_HD] __attribute__((aligned(32)));

	for (int j = 0; j < g; j++)
		memset(out + (size_t)j * o_stride, 0, (size_t)head_dim * sizeof(float));
	for (int64_t t0 = 0; t0 < n_kv; t0 += GRP_VB) {
		const int nk = n_kv - t0 < GRP_VB ? (int)(n_kv - t0) : GRP_VB;
		for (int r = 0; r < nk; r++)
			f16_row_to_f32(vb + r * head_dim, v + (size_t)(t0 + r) * stride, head_dim);
		for (int j = 0; j < g; j++) {
			float *o = out + (size_t)j * o_stride;
			const float *pj = p + (size_t)j * p_stride + t0;
			int64_t i0 = 0;
			for (; i0 + 64 <= head_dim; i0 += 64)
				grp_values_span(o + i0, pj, vb + i0, head_dim, nk, 8);
			for (; i0 + 32 <= head_dim; i0 += 32)
				grp_values_span(o + i0, pj, vb + i0, head_dim, nk, 4);
			for (; i0 < head_dim; i0 += 8)
				grp_values_span(o + i0, pj, vb + i0, head_dim, nk, 1);
		}
	}
}
/* ---- e^x and the operations built on it ---- */

/* The tails below go through an 8-float buffer: masked loads are cheap,
 * but a masked store (vmaskmovps) is microcoded on some of the AVX2 cores
 * this is for, and costs more than the whole vector of work. */
static inline __m256 tail_load(const float *x, int64_t left, float pad)
{
	float t[8];
	for (int i = 0; i < 8; i++)
		t[i] = i < left ? x[i] : pad;
	return _mm256_loadu_ps(t);
}

static inline void tail_store(float *x, __m256 v, int64_t left)
{
	float t[8];
	_mm256_storeu_ps(t, v);
	memcpy(x, t, (size_t)left * sizeof(float));
}

/* ops.c's kern_softmax with exp8; the sum still in double. */
double kern_softmax_avx2(float *x, int64_t n)
{
	const int64_t n8 = n & ~(int64_t)7, left = n - n8;
	__m256 mx = _mm256_set1_ps(-INFINITY);
	int64_t i = 0;
	for (; i < n8; i += 8)
		mx = _mm256_max_ps(mx, _mm256_loadu_ps(x + i));
	if (left)
		mx = _mm256_max_ps(mx, tail_load(x + n8, left, -INFINITY));
	const __m256 max = _mm256_set1_ps(hmax8(mx));
	__m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
	for (i = 0; i < n; i += 8) {
		/* the tail's padding is −inf: e^−inf = 0 adds nothing */
		const __m256 v = i < n8 ? _mm256_loadu_ps(x + i) : tail_load(x + i, left, -INFINITY);
		const __m256 e = exp8(_mm256_sub_ps(v, max));
		if (i < n8)
			_mm256_storeu_ps(x + i, e);
		else
			tail_store(x + i, e, left);
		s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
		s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
	}
	const __m256d s = _mm256_add_pd(s0, s1);
	const __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
	const double sum = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
	const float inv = sum > 0 ? (float)(1.0 / sum) : 0.0f;
	const __m256 iv = _mm256_set1_ps(inv);
	for (i = 0; i < n8; i += 8)
		_mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), iv));
	for (; i < n; i++)
		x[i] *= inv;
	return sum;
}

/* ops.c's kern_swiglu with exp8: g = g / (1 + e^−g) · u. */
static inline __m256 swiglu8(__m256 gv, __m256 uv)
{
	const __m256 d = _mm256_add_ps(_mm256_set1_ps(1.0f), exp8(_mm256_sub_ps(_mm256_setzero_ps(), gv)));
	return _mm256_mul_ps(_mm256_div_ps(gv, d), uv);
}

/* g = f(g, u) over n elements, 8 at a time (f inlined: a constant). */
static inline __attribute__((always_inline)) void glu_map(float *g, const float *u, int64_t n,
							  __m256 (*f)(__m256, __m256))
{
	const int64_t n8 = n & ~(int64_t)7;
	for (int64_t i = 0; i < n8; i += 8)
		_mm256_storeu_ps(g + i, f(_mm256_loadu_ps(g + i), _mm256_loadu_ps(u + i)));
	if (n > n8)
		tail_store(g + n8, f(tail_load(g + n8, n - n8, 0), tail_load(u + n8, n - n8, 0)), n - n8);
}

void kern_swiglu_avx2(float *g, const float *u, int64_t n)
{
	glu_map(g, u, n, swiglu8);
}

/* tanh(z) = 1 − 2 / (1 + e^(2z)), z clamped to ±10 (tanh is ±1 to float
 * precision there, and e^(2z) cannot overflow). */
static inline __m256 tanh8(__m256 z)
{
	z = _mm256_min_ps(_mm256_max_ps(z, _mm256_set1_ps(-10.0f)), _mm256_set1_ps(10.0f));
	const __m256 e = exp8(_mm256_add_ps(z, z));
	return _mm256_sub_ps(_mm256_set1_ps(1.0f),
			     _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e)));
}

/* ops.c's kern_geglu with tanh8 (GELU's tanh form, times u). */
static inline __m256 geglu8(__m256 x, __m256 uv)
{
	const __m256 c = _mm256_set1_ps(0.7978845608028654f), k = _mm256_set1_ps(0.044715f);
	const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
	const __m256 t = tanh8(_mm256_mul_ps(c, _mm256_fmadd_ps(k, x3, x)));
	const __m256 y = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(_mm256_set1_ps(1.0f), t));
	return _mm256_mul_ps(y, uv);
}

void kern_geglu_avx2(float *g, const float *u, int64_t n)
{
	glu_map(g, u, n, geglu8);
}

/* ops.c's kern_softcap with tanh8: y = c·tanh(x / c). */
void kern_softcap_avx2(float *y, const float *x, float c, int64_t n)
{
	const int64_t n8 = n & ~(int64_t)7;
	const __m256 cv = _mm256_set1_ps(c), inv = _mm256_set1_ps(1.0f / c);
	for (int64_t i = 0; i < n8; i += 8)
		_mm256_storeu_ps(y + i, _mm256_mul_ps(cv, tanh8(_mm256_mul_ps(_mm256_loadu_ps(x + i), inv))));
	if (n > n8)
		tail_store(y + n8, _mm256_mul_ps(cv, tanh8(_mm256_mul_ps(tail_load(x + n8, n - n8, 0), inv))),
			   n - n8);
}
#else
kern_from_float_fn kern_act_quant_avx2(uint32_t act_type)
{
	(void)act_type;
	return NULL;
}
#endif

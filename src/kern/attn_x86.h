/*
 * kern/attn_x86 — kern_attn_run for x86-64: one query token against a run
 * of F16 cache rows, every head at once.  Written once with 256-bit
 * vectors and compiled twice, by attn_avx2.c (16 registers) and
 * attn_avx512.c (32 registers, so twice the keys per block, and
 * broadcasts folded into the multiply-adds).  They define before
 * including this:
 *   SFX(name)           appends the ISA suffix
 *   ATTN_NV             score vectors kept in registers per key block
 *   SOFTCAP(y, x, c, n) the ISA's kern_softcap
 *
 * Scores without horizontal sums.  A vector of 8 lanes holds W = 8 / P
 * query heads × P keys (lane l: head l / P of the group, key l % P), P = 1
 * for 5 or more heads per K/V head, 2 for 3–4, 4 for 2; more heads than W
 * make several groups.  The keys of a block are converted to float once
 * per K/V head into kt, P keys interleaved per element ([vector][element]
 * [P]), so one broadcast of P floats times the group's queries (qt:
 * [element][8 lanes], pre-scaled, made once per token by kern_attn_q_prep)
 * adds one element's products to W·P scores.  The interleaving shuffles
 * keep 128-bit lanes apart, which permutes the elements inside each 8; qt
 * is built in the same order, and a dot product does not care about the
 * order of its terms.
 *
 * Then per group: the optional soft-cap, keys past n set to −inf, the
 * maximum and the sum of e^(s − m) per lane, each reduced over the P lanes
 * of a head (in-lane shuffles), and the exponentials written back.  Values:
 * per K/V head a block of rows is converted once, and each head's output
 * (spans of up to 64 floats in registers) adds probability × row.  The
 * rows are read in blocks of all K/V heads at once, so memory is read in
 * order, and prefetched ATTN_PF rows ahead.  Sums run in float in a different order than the reference:
 * agreement to float rounding.
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kern/exp_x86.h"
#include "kern/kern_impl.h"

#define INLINE static inline __attribute__((always_inline))
#define ATTN_VB 16 /* rows per values block */
#define ATTN_PF 16 /* rows ahead that are prefetched (a run's rows follow on) */

/* Keys per lane group: heads per K/V head 5 or more → 1, 3–4 → 2, 2 → 4. */
static inline int attn_p(int64_t gqa)
{
	return gqa >= 5 ? 1 : gqa >= 3 ? 2 : 4;
}

/* The element that position u (of each 8) of an interleaved row holds. */
static inline int64_t attn_dim(int P, int64_t u)
{
	static const int8_t perm[3][8] = { { 0, 1, 2, 3, 4, 5, 6, 7 },
					   { 0, 1, 4, 5, 2, 3, 6, 7 },
					   { 0, 4, 1, 5, 2, 6, 3, 7 } };
	return (u & ~(int64_t)7) + perm[P == 1 ? 0 : P == 2 ? 1 : 2][u & 7];
}

INLINE __m256 load_h8x(const uint16_t *p)
{
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

/* P floats at p, repeated over the 8 lanes. */
INLINE __m256 bcast_p(const float *p, const int P)
{
	if (P == 1)
		return _mm256_broadcast_ss(p);
	if (P == 2)
		return _mm256_castpd_ps(_mm256_broadcast_sd((const double *)p));
	return _mm256_broadcast_ps((const __m128 *)p);
}

/* kt[(v·hd + u)·P + p] = element attn_dim(u) of key row rows[v·P + p]
 * (zeros for the rows past nk): the rows of one K/V head, v < ATTN_NV. */
INLINE void kt_build(float *kt, const uint16_t *k, size_t stride, int64_t hd, int nk, const int P)
{
	static const uint16_t zero[8];
	for (int v = 0; v < ATTN_NV; v++) {
		const uint16_t *r[4];
		for (int p = 0; p < P; p++) {
			const int t = v * P + p;
			r[p] = t < nk ? k + (size_t)t * stride : NULL;
		}
		float *dst = kt + (size_t)v * (size_t)hd * (size_t)P;
		for (int p = 0; p < P; p++)
			for (int64_t c = 0; c < hd; c += 32)
				_mm_prefetch((const char *)(k + (size_t)(v * P + p + ATTN_PF) * stride + (size_t)c), _MM_HINT_T0);
		for (int64_t c = 0; c < hd; c += 8) {
			__m256 a[4];
			for (int p = 0; p < P; p++)
				a[p] = r[p] ? load_h8x(r[p] + c) : load_h8x(zero);
			float *d = dst + c * P;
			if (P == 1) {
				_mm256_store_ps(d, a[0]);
			} else if (P == 2) {
				_mm256_store_ps(d, _mm256_unpacklo_ps(a[0], a[1]));
				_mm256_store_ps(d + 8, _mm256_unpackhi_ps(a[0], a[1]));
			} else {
				const __m256 t0 = _mm256_unpacklo_ps(a[0], a[1]), t1 = _mm256_unpacklo_ps(a[2], a[3]);
				const __m256 t2 = _mm256_unpackhi_ps(a[0], a[1]), t3 = _mm256_unpackhi_ps(a[2], a[3]);
				_mm256_store_ps(d, _mm256_shuffle_ps(t0, t1, 0x44));
				_mm256_store_ps(d + 8, _mm256_shuffle_ps(t0, t1, 0xEE));
				_mm256_store_ps(d + 16, _mm256_shuffle_ps(t2, t3, 0x44));
				_mm256_store_ps(d + 24, _mm256_shuffle_ps(t2, t3, 0xEE));
			}
		}
	}
}

/* s[8·v + l] = Σ_u qt[8u + l]·kt[(v·hd + u)·P + l % P] for the block's
 * ATTN_NV vectors. */
INLINE void scores_block(float *s, const float *qt, const float *kt, int64_t hd, const int P)
{
	__m256 a[ATTN_NV];
#pragma GCC unroll 16
	for (int v = 0; v < ATTN_NV; v++)
		a[v] = _mm256_setzero_ps();
	for (int64_t u = 0; u < hd; u++) {
		const __m256 qv = _mm256_load_ps(qt + 8 * u);
		const float *ku = kt + u * P;
#pragma GCC unroll 16
		for (int v = 0; v < ATTN_NV; v++)
			a[v] = _mm256_fmadd_ps(qv, bcast_p(ku + (size_t)v * (size_t)hd * (size_t)P, P), a[v]);
	}
#pragma GCC unroll 16
	for (int v = 0; v < ATTN_NV; v++)
		_mm256_store_ps(s + 8 * v, a[v]);
}

/* The maximum (op max) or sum of the P lanes of each head, in every one of them. */
INLINE __m256 lane_reduce(__m256 x, const int P, const bool max)
{
	if (P >= 2) {
		const __m256 y = _mm256_shuffle_ps(x, x, 0xB1); /* swap lanes 2i, 2i+1 */
		x = max ? _mm256_max_ps(x, y) : _mm256_add_ps(x, y);
	}
	if (P >= 4) {
		const __m256 y = _mm256_shuffle_ps(x, x, 0x4E); /* swap pairs */
		x = max ? _mm256_max_ps(x, y) : _mm256_add_ps(x, y);
	}
	return x;
}

/* o[0, 8·NO) += Σ_{t<nv} p[t]·row t, p[t] at pa[(t / P)·8 + t % P]. */
INLINE void values_span(float *o, const float *pa, const float *vt, int64_t hd, int nv, const int P, const int NO)
{
	__m256 a[8];
#pragma GCC unroll 8
	for (int c = 0; c < NO; c++)
		a[c] = _mm256_loadu_ps(o + 8 * c);
	for (int t = 0; t < nv; t++) {
		const __m256 pb = _mm256_broadcast_ss(pa + (t / P) * 8 + t % P);
		const float *vr = vt + (size_t)t * (size_t)hd;
#pragma GCC unroll 8
		for (int c = 0; c < NO; c++)
			a[c] = _mm256_fmadd_ps(pb, _mm256_load_ps(vr + 8 * c), a[c]);
	}
#pragma GCC unroll 8
	for (int c = 0; c < NO; c++)
		_mm256_storeu_ps(o + 8 * c, a[c]);
}

/* Floats of the prepared query (qt), and of the scratch: kt, vt, then the
 * scores of every group. */
static size_t attn_ws_parts(const struct kern_attn_shape *sh, size_t *qt, size_t *kt, size_t *vt, size_t *sg)
{
	const int64_t gqa = sh->n_head / sh->n_head_kv;
	const int P = attn_p(gqa), W = 8 / P;
	const size_t ng = (size_t)sh->n_head_kv * (size_t)((gqa + W - 1) / W), hd = (size_t)sh->head_dim;
	const size_t rows = (KERN_ATTN_RUN / (size_t)(ATTN_NV * P) + 1) * ATTN_NV; /* score vectors per group */
	*qt = ng * hd * 8;
	*kt = (size_t)ATTN_NV * (size_t)P * hd;
	*vt = ATTN_VB * hd;
	*sg = rows * 8;
	return *kt + *vt + ng * *sg;
}

size_t SFX(kern_attn_run_ws)(const struct kern_attn_shape *sh)
{
	size_t a, b, c, d;
	return attn_ws_parts(sh, &a, &b, &c, &d);
}

size_t SFX(kern_attn_q_size)(const struct kern_attn_shape *sh)
{
	size_t a, b, c, d;
	attn_ws_parts(sh, &a, &b, &c, &d);
	return a;
}

/* qt[((h·NG + g)·hd + u)·8 + l] = scale·q[head g·W + l/P of K/V head h][attn_dim(u)]
 * (0 for the lanes of a last group's missing heads) */
void SFX(kern_attn_q_prep)(const struct kern_attn_shape *sh, const float *q, float *qt)
{
	const int64_t hd = sh->head_dim, nkv = sh->n_head_kv, gqa = sh->n_head / nkv;
	const int P = attn_p(gqa), W = 8 / P;
	const int64_t NG = (gqa + W - 1) / W;
	int64_t e[8];
	for (int u = 0; u < 8; u++)
		e[u] = attn_dim(P, u);
	for (int64_t h = 0; h < nkv; h++)
		for (int64_t g = 0; g < NG; g++) {
			float *d = qt + (size_t)(h * NG + g) * (size_t)hd * 8;
			for (int l = 0; l < 8; l++) {
				const int64_t j = g * W + l / P;
				const float *src = q + (size_t)(h * gqa + j) * (size_t)hd;
				for (int64_t u = 0; u < hd; u++)
					d[u * 8 + l] = j < gqa ? sh->scale * src[(u & ~(int64_t)7) + e[u & 7]] : 0.0f;
			}
		}
}

INLINE void attn_run_p(const struct kern_attn_shape *sh, const float *qt, const uint16_t *k, const uint16_t *v,
		       int64_t n, float *part, float *ws, const int P)
{
	const int64_t hd = sh->head_dim, nkv = sh->n_head_kv, gqa = sh->n_head / nkv, W = 8 / P;
	const int64_t NG = (gqa + W - 1) / W, KB = (int64_t)ATTN_NV * P, nb = (n + KB - 1) / KB;
	const size_t ps = (size_t)hd + 2, stride = sh->stride;
	size_t nqt, nkt, nvt, nsg;
	attn_ws_parts(sh, &nqt, &nkt, &nvt, &nsg);
	float *kt = ws, *vt = kt + nkt, *S = vt + nvt;

	/* scores: per block of keys, per K/V head */
	for (int64_t b = 0; b < nb; b++) {
		const int64_t r0 = b * KB;
		const int nk = (int)(n - r0 < KB ? n - r0 : KB);
		for (int64_t h = 0; h < nkv; h++) {
			kt_build(kt, k + (size_t)r0 * stride + (size_t)(h * hd), stride, hd, nk, P);
			for (int64_t g = 0; g < NG; g++) {
				float *sb = S + (size_t)(h * NG + g) * nsg + (size_t)b * ATTN_NV * 8;
				const float *qg = qt + (size_t)(h * NG + g) * (size_t)hd * 8;
				scores_block(sb, qg, kt, hd, P);
			}
		}
	}

	/* per group: soft-cap, mask, maximum, e^(s − m) and its sum */
	const int64_t nvec = nb * ATTN_NV, full = n / P;
	for (int64_t h = 0; h < nkv; h++)
		for (int64_t g = 0; g < NG; g++) {
			float *sg = S + (size_t)(h * NG + g) * nsg;
			if (sh->softcap > 0)
				SOFTCAP(sg, sg, sh->softcap, nvec * 8);
			/* the vectors read below: the last one's keys past n count as −inf */
			const int64_t used = full + (n % P != 0);
			for (int64_t t = n; t < used * P; t++)
				for (int64_t w = 0; w < W; w++)
					sg[(t / P) * 8 + w * P + t % P] = -INFINITY;
			__m256 mx = _mm256_set1_ps(-INFINITY), sum = _mm256_setzero_ps();
			for (int64_t r = 0; r < used; r++)
				mx = _mm256_max_ps(mx, _mm256_load_ps(sg + 8 * r));
			mx = lane_reduce(mx, P, true);
			for (int64_t r = 0; r < used; r++) {
				const __m256 e = exp8(_mm256_sub_ps(_mm256_load_ps(sg + 8 * r), mx));
				_mm256_store_ps(sg + 8 * r, e);
				sum = _mm256_add_ps(sum, e);
			}
			sum = lane_reduce(sum, P, false);
			float m8[8], l8[8];
			_mm256_storeu_ps(m8, mx);
			_mm256_storeu_ps(l8, sum);
			for (int64_t w = 0; w < W && g * W + w < gqa; w++) {
				float *ph = part + (size_t)(h * gqa + g * W + w) * ps;
				ph[hd] = m8[w * P];
				ph[hd + 1] = l8[w * P];
			}
		}

	/* values: per block of rows, per K/V head */
	for (int64_t j = 0; j < sh->n_head; j++)
		memset(part + (size_t)j * ps, 0, (size_t)hd * sizeof(float));
	for (int64_t r0 = 0; r0 < n; r0 += ATTN_VB) {
		const int nv = (int)(n - r0 < ATTN_VB ? n - r0 : ATTN_VB);
		for (int64_t h = 0; h < nkv; h++) {
			const uint16_t *vr = v + (size_t)r0 * stride + (size_t)(h * hd);
			for (int t = 0; t < nv; t++)
				for (int64_t c = 0; c < hd; c += 32)
					_mm_prefetch((const char *)(vr + (size_t)(t + ATTN_PF) * stride + (size_t)c), _MM_HINT_T0);
			for (int t = 0; t < nv; t++)
				for (int64_t c = 0; c < hd; c += 8)
					_mm256_store_ps(vt + (size_t)t * (size_t)hd + (size_t)c,
							load_h8x(vr + (size_t)t * stride + (size_t)c));
			for (int64_t j = 0; j < gqa; j++) {
				const int64_t g = j / W, w = j % W;
				const float *pa = S + (size_t)(h * NG + g) * nsg + (size_t)(r0 / P) * 8 + (size_t)(w * P);
				float *o = part + (size_t)(h * gqa + j) * ps;
				int64_t i0 = 0;
				for (; i0 + 64 <= hd; i0 += 64)
					values_span(o + i0, pa, vt + i0, hd, nv, P, 8);
				for (; i0 + 32 <= hd; i0 += 32)
					values_span(o + i0, pa, vt + i0, hd, nv, P, 4);
				for (; i0 + 16 <= hd; i0 += 16)
					values_span(o + i0, pa, vt + i0, hd, nv, P, 2);
				for (; i0 < hd; i0 += 8)
					values_span(o + i0, pa, vt + i0, hd, nv, P, 1);
			}
		}
	}

	/* o / l */
	for (int64_t j = 0; j < sh->n_head; j++) {
		float *o = part + (size_t)j * ps;
		const __m256 inv = _mm256_set1_ps(1.0f / o[hd + 1]);
		for (int64_t i = 0; i < hd; i += 8)
			_mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_loadu_ps(o + i), inv));
	}
}

/* The caller (ops.c) has checked: n_head / n_head_kv >= 2, head_dim a
 * multiple of 8 and at most KERN_GRP_HD.  1 <= n <= KERN_ATTN_RUN is the
 * caller's precondition (kern.h's kern_attn_run contract). */
void SFX(kern_attn_run)(const struct kern_attn_shape *sh, const float *qt, const uint16_t *k, const uint16_t *v,
			int64_t n, float *part, float *ws)
{
	switch (attn_p(sh->n_head / sh->n_head_kv)) {
	case 1:
		attn_run_p(sh, qt, k, v, n, part, ws, 1);
		break;
	case 2:
		attn_run_p(sh, qt, k, v, n, part, ws, 2);
		break;
	default:
		attn_run_p(sh, qt, k, v, n, part, ws, 4);
		break;
	}
}

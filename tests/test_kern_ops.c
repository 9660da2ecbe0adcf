/* tests/kern_ops — element-wise operations against straightforward double
 * precision formulas (relative tolerances of a few float ulps times the
 * number of terms). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/half.h"
#include "base/rng.h"
#include "gguf/gguf.h"
#include "kern/kern.h"

static void fill(float *x, int n, uint64_t seed)
{
	struct dm_rng r;
	dm_rng_seed(&r, seed);
	for (int i = 0; i < n; i++)
		x[i] = (float)dm_rng_normal(&r);
}

static void test_rmsnorm(void **state)
{
	float x[300], w[300], y[300];
	double ss = 0;
	(void)state;
	fill(x, 300, 1);
	fill(w, 300, 2);
	for (int i = 0; i < 300; i++)
		ss += (double)x[i] * x[i];
	double s = 1.0 / sqrt(ss / 300 + 1e-5);
	kern_rmsnorm(y, x, w, 300, 1e-5f);
	for (int i = 0; i < 300; i++)
		assert_true(fabs(y[i] - x[i] * s * w[i]) <= 1e-6 * (1 + fabs(x[i] * s * w[i])));
	kern_rmsnorm(x, x, NULL, 300, 1e-5f); /* in place, no weight */
	ss = 0;
	for (int i = 0; i < 300; i++)
		ss += (double)x[i] * x[i];
	assert_true(fabs(ss / 300 - 1.0) < 1e-3);
}

/* Both RoPE modes against θ_i = pos·scale·base^(−2i/n_rot)/ff_i in double,
 * with and without frequency factors and LongRoPE's attn_factor (which
 * scales the rotated dimensions only). */
static void test_rope(void **state)
{
	const int hd = 64, nh = 3, nrot = 48;
	float x[3 * 64], y[3 * 64], ff[24];
	(void)state;
	for (int i = 0; i < 24; i++)
		ff[i] = 1.0f + (float)i / 8;
	for (int mode = 0; mode <= 2; mode += 2)
		for (int use_ff = 0; use_ff < 3; use_ff++) {
			const double af = use_ff == 2 ? 1.25 : 1.0;
			struct kern_rope r = { (enum kern_rope_mode)mode, nrot, 10000.0f, 0.5f,
					       use_ff ? ff : NULL, use_ff == 2 ? 1.25f : 0.0f };
			const int64_t pos = 37;
			fill(x, nh * hd, 3);
			memcpy(y, x, sizeof x);
			kern_rope_apply(y, nh, hd, pos, &r);
			for (int h = 0; h < nh; h++)
				for (int i = 0; i < hd; i++) {
					double want = x[h * hd + i];
					if (i < nrot) {
						int p = mode == KERN_ROPE_NEOX ? i % (nrot / 2) : i / 2;
						int a = mode == KERN_ROPE_NEOX ? p : 2 * p;
						int b = mode == KERN_ROPE_NEOX ? p + nrot / 2 : 2 * p + 1;
						double th = pos * 0.5 * pow(10000.0, -2.0 * p / nrot) /
							    (use_ff ? ff[p] : 1.0);
						double xa = x[h * hd + a], xb = x[h * hd + b];
						want = af * (i == a ? xa * cos(th) - xb * sin(th)
								   : xa * sin(th) + xb * cos(th));
					}
					assert_true(fabs(y[h * hd + i] - want) < 1e-4);
				}
		}
}

static void test_softmax_activations(void **state)
{
	float x[100], y[100], g[100], u[100];
	double sum = 0, mx = -1e30;
	(void)state;
	fill(x, 100, 4);
	for (int i = 0; i < 100; i++)
		x[i] *= 10, mx = fmax(mx, x[i]);
	memcpy(y, x, sizeof x);
	kern_softmax(KERN_ISA_REF, y, 100);
	for (int i = 0; i < 100; i++)
		sum += exp(x[i] - mx);
	for (int i = 0; i < 100; i++)
		assert_true(fabs(y[i] - exp(x[i] - mx) / sum) <= 1e-6 * (exp(x[i] - mx) / sum) + 1e-12);
	kern_silu(y, x, 100);
	for (int i = 0; i < 100; i++)
		assert_true(fabs(y[i] - x[i] / (1 + exp(-x[i]))) <= 1e-5 * (1 + fabs(x[i])));
	kern_gelu(y, x, 100);
	for (int i = 0; i < 100; i++) {
		double v = x[i], want = 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
		assert_true(fabs(y[i] - want) <= 1e-5 * (1 + fabs(v)));
	}
	fill(g, 100, 5);
	fill(u, 100, 6);
	memcpy(y, g, sizeof g);
	kern_swiglu(KERN_ISA_REF, y, u, 100);
	for (int i = 0; i < 100; i++)
		assert_true(fabs(y[i] - g[i] / (1 + exp(-g[i])) * u[i]) <= 1e-5 * (1 + fabs(g[i] * u[i])));
	kern_add(y, g, u, 100);
	assert_true(y[7] == g[7] + u[7]);
	kern_mul(y, g, u, 100);
	assert_true(y[7] == g[7] * u[7]);
	kern_scale(y, g, 3.0f, 100);
	assert_true(y[7] == g[7] * 3.0f);
}

/* softmax and SwiGLU on every ISA (the SIMD ones use their own e^x) against
 * double formulas: softmax over [−110, 0] (results down into the float
 * denormals, and −inf entries, which must give exactly 0) to 4 ulp plus
 * the denormal step; SwiGLU over [−120, 120] (e^−g overflowing to inf and
 * underflowing to 0) to 4 ulp (below −88.7, where the float formula gives
 * −0, to 1e-35); a NaN gate stays NaN.  Lengths that are
 * not multiples of the vector width check the tails. */
static void test_softmax_swiglu_isa(void **state)
{
	enum { N = 4001 };
	static float x[N], y[N], g[N], u[N];
	(void)state;
	for (int isa = 0; isa < KERN_ISA_COUNT; isa++) {
		if (!kern_isa_supported((enum kern_isa)isa))
			continue;
		for (int n = 1; n <= N; n += n < 40 ? 1 : 997) {
			double sum = 0;
			for (int i = 0; i < n; i++)
				x[i] = -110.0f * (float)i / (float)(n > 1 ? n - 1 : 1);
			if (n > 3)
				x[n / 3] = -INFINITY;
			for (int i = 0; i < n; i++)
				sum += exp((double)x[i]);
			memcpy(y, x, (size_t)n * sizeof *x);
			kern_softmax((enum kern_isa)isa, y, n);
			for (int i = 0; i < n; i++) {
				double want = exp((double)x[i]) / sum;
				if (isinf(x[i]))
					assert_true(y[i] == 0.0f);
				else if (!(fabs(y[i] - want) <= 4.8e-7 * want + 1.5e-45))
					fail_msg("%s softmax n=%d x[%d]=%g: %g, want %g", kern_isa_name((enum kern_isa)isa),
						 n, i, (double)x[i], (double)y[i], want);
			}
			for (int i = 0; i < n; i++) {
				g[i] = -120.0f + 240.0f * (float)i / (float)(n > 1 ? n - 1 : 1);
				u[i] = 0.5f + (float)(i % 7);
			}
			memcpy(y, g, (size_t)n * sizeof *g);
			kern_swiglu((enum kern_isa)isa, y, u, n);
			for (int i = 0; i < n; i++) {
				double want = (double)g[i] / (1 + exp(-(double)g[i])) * u[i];
				/* below −88.7 e^−g is inf in float: the formula gives −0 for
				 * what is under 1e-36 */
				double tol = g[i] < -88.7f ? 1e-35 : 4.8e-7 * fabs(want) + 1.5e-45;
				if (!(fabs(y[i] - want) <= tol))
					fail_msg("%s swiglu n=%d g=%g: %g, want %g", kern_isa_name((enum kern_isa)isa), n,
						 (double)g[i], (double)y[i], want);
			}
		}
		g[0] = NAN;
		u[0] = 1;
		kern_swiglu((enum kern_isa)isa, g, u, 1);
		assert_true(isnan(g[0]));
	}
}

/* GeGLU and soft-capping (tanh built on e^x on AVX-512) on every ISA
 * against the double formulas, over the range where tanh bends (|z| < 10,
 * then ±1) and beyond; lengths off the vector width check the tails.  The
 * tolerance is absolute on purpose: 1 − 2/(1 + e^2z) loses the relative
 * precision of tanh near 0 (an absolute error of a few ulp of 1), which is
 * what a logit or an activation can tell. */
static void test_geglu_softcap_isa(void **state)
{
	enum { N = 1001 };
	static float g[N], u[N], y[N];
	(void)state;
	for (int isa = 0; isa < KERN_ISA_COUNT; isa++) {
		if (!kern_isa_supported((enum kern_isa)isa))
			continue;
		for (int n = 1; n <= N; n += n < 40 ? 1 : 320) {
			for (int i = 0; i < n; i++) {
				g[i] = -30.0f + 60.0f * (float)i / (float)(n > 1 ? n - 1 : 1);
				u[i] = 0.25f + (float)(i % 5);
			}
			memcpy(y, g, (size_t)n * sizeof *g);
			kern_geglu((enum kern_isa)isa, y, u, n);
			for (int i = 0; i < n; i++) {
				double v = g[i];
				double want = 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))) * u[i];
				if (!(fabs(y[i] - want) <= 1e-6 * (1 + fabs(v)) * u[i]))
					fail_msg("%s geglu n=%d g=%g: %g, want %g", kern_isa_name((enum kern_isa)isa),
						 n, v, (double)y[i], want);
			}
			kern_softcap((enum kern_isa)isa, y, g, 7.5f, n);
			for (int i = 0; i < n; i++) {
				double want = 7.5 * tanh((double)g[i] / 7.5);
				if (!(fabs(y[i] - want) <= 1e-6 * 7.5))
					fail_msg("%s softcap n=%d x=%g: %g, want %g", kern_isa_name((enum kern_isa)isa),
						 n, (double)g[i], (double)y[i], want);
			}
		}
	}
}

static void test_conversions(void **state)
{
	float x[64], y[64];
	uint16_t h[64];
	(void)state;
	fill(x, 64, 7);
	kern_f32_to_f16(x, h, 64);
	kern_f16_to_f32(h, y, 64);
	for (int i = 0; i < 64; i++)
		assert_true(h[i] == dm_f32_to_f16(x[i]) && y[i] == dm_f16_to_f32(h[i]));
	kern_f32_to_bf16(x, h, 64);
	kern_bf16_to_f32(h, y, 64);
	for (int i = 0; i < 64; i++)
		assert_true(h[i] == dm_f32_to_bf16(x[i]) && y[i] == dm_bf16_to_f32(h[i]));
}

/* Scores and values over an F16 cache with a row stride wider than the head,
 * on every ISA, for head sizes that hit each SIMD tail.  Any summation
 * order of m products is within m·u·Σ|terms| of the exact sum (u = 2^-24,
 * 1.2e-7 leaves room for the final scaling), so the bound holds for the
 * reference and the SIMD paths alike; SIMD vs reference gets twice that. */
static void check_attention(enum kern_isa isa, int nkv, int hd, int stride)
{
	float *q = malloc((size_t)hd * sizeof *q), *kf = malloc((size_t)nkv * stride * sizeof *kf);
	float *p = malloc((size_t)nkv * sizeof *p), *sc = malloc((size_t)nkv * sizeof *sc);
	float *sr = malloc((size_t)nkv * sizeof *sr), *out = malloc((size_t)hd * sizeof *out);
	float *outr = malloc((size_t)hd * sizeof *outr);
	uint16_t *k = malloc((size_t)nkv * stride * sizeof *k), *v = malloc((size_t)nkv * stride * sizeof *v);
	const int64_t nk = (int64_t)nkv * stride;

	fill(q, hd, 8);
	fill(kf, (int)nk, 9);
	fill(p, nkv, 10);
	kern_f32_to_f16(kf, k, nk);
	for (int64_t i = 0; i < nk; i++)
		v[i] = k[(i * 7) % nk];
	kern_attn_scores(isa, sc, q, k, nkv, hd, (size_t)stride, 0.125f);
	kern_attn_scores(KERN_ISA_REF, sr, q, k, nkv, hd, (size_t)stride, 0.125f);
	for (int t = 0; t < nkv; t++) {
		double s = 0, a = 0;
		for (int i = 0; i < hd; i++) {
			s += (double)q[i] * dm_f16_to_f32(k[(size_t)t * stride + i]);
			a += fabs((double)q[i] * dm_f16_to_f32(k[(size_t)t * stride + i]));
		}
		assert_true(fabs(sc[t] - 0.125 * s) <= 0.125 * a * hd * 1.2e-7 + 1e-7);
		assert_true(fabs(sc[t] - sr[t]) <= 2 * (0.125 * a * hd * 1.2e-7 + 1e-7));
	}
	kern_attn_values(isa, out, p, v, nkv, hd, (size_t)stride);
	kern_attn_values(KERN_ISA_REF, outr, p, v, nkv, hd, (size_t)stride);
	for (int i = 0; i < hd; i++) {
		double s = 0, a = 0;
		for (int t = 0; t < nkv; t++) {
			s += (double)p[t] * dm_f16_to_f32(v[(size_t)t * stride + i]);
			a += fabs((double)p[t] * dm_f16_to_f32(v[(size_t)t * stride + i]));
		}
		assert_true(fabs(out[i] - s) <= a * nkv * 1.2e-7 + 1e-7);
		assert_true(fabs(out[i] - outr[i]) <= 2 * (a * nkv * 1.2e-7 + 1e-7));
	}
	free(q), free(kf), free(p), free(sc), free(sr), free(out), free(outr), free(k), free(v);
}

/* The grouped kernels: g heads (strided q, scores, probabilities and
 * outputs) against one K/V head, each head within the bound of check_attention
 * from a double-precision sum, on every ISA (AVX2: the grouped path for
 * head sizes that are multiples of 8, one head at a time otherwise). */
static void check_attention_grp(enum kern_isa isa, int g, int nkv, int hd, int stride)
{
	const size_t qs = (size_t)hd + 3, ss = (size_t)nkv + 5, os = (size_t)hd + 7;
	const int64_t nk = (int64_t)nkv * stride;
	float *q = malloc((size_t)g * qs * sizeof *q), *kf = malloc((size_t)(nk + 1) * sizeof *kf);
	float *sc = malloc((size_t)g * ss * sizeof *sc), *p = malloc((size_t)g * ss * sizeof *p);
	float *out = malloc((size_t)g * os * sizeof *out);
	uint16_t *k = malloc((size_t)(nk + 1) * sizeof *k), *v = malloc((size_t)(nk + 1) * sizeof *v);

	fill(q, (int)((size_t)g * qs), 11);
	fill(kf, (int)nk, 12);
	fill(p, (int)((size_t)g * ss), 13);
	kern_f32_to_f16(kf, k, nk);
	for (int64_t i = 0; i < nk; i++)
		v[i] = k[(i * 5) % nk];
	for (size_t i = 0; i < (size_t)g * ss; i++)
		sc[i] = -1e30f;
	kern_attn_scores_grp(isa, sc, ss, q, qs, g, k, nkv, hd, (size_t)stride, 0.25f);
	kern_attn_values_grp(isa, out, os, p, ss, g, v, nkv, hd, (size_t)stride);
	for (int j = 0; j < g; j++) {
		const float *qj = q + (size_t)j * qs, *pj = p + (size_t)j * ss;
		for (int t = 0; t < nkv; t++) {
			double s = 0, a = 0;
			for (int i = 0; i < hd; i++) {
				double x = (double)qj[i] * dm_f16_to_f32(k[(size_t)t * stride + i]);
				s += x;
				a += fabs(x);
			}
			if (!(fabs(sc[(size_t)j * ss + t] - 0.25 * s) <= 0.25 * a * hd * 1.2e-7 + 1e-7))
				fail_msg("%s g=%d n_kv=%d hd=%d: head %d score %d is %g, want %g",
					 kern_isa_name(isa), g, nkv, hd, j, t, sc[(size_t)j * ss + t], 0.25 * s);
		}
		/* nothing written past the head's n_kv scores */
		for (size_t t = (size_t)nkv; t < ss; t++)
			assert_true(sc[(size_t)j * ss + t] == -1e30f);
		for (int i = 0; i < hd; i++) {
			double s = 0, a = 0;
			for (int t = 0; t < nkv; t++) {
				double x = (double)pj[t] * dm_f16_to_f32(v[(size_t)t * stride + i]);
				s += x;
				a += fabs(x);
			}
			if (!(fabs(out[(size_t)j * os + i] - s) <= a * nkv * 1.2e-7 + 1e-7))
				fail_msg("%s g=%d n_kv=%d hd=%d: head %d output %d is %g, want %g",
					 kern_isa_name(isa), g, nkv, hd, j, i, out[(size_t)j * os + i], s);
		}
	}
	free(q), free(kf), free(sc), free(p), free(out), free(k), free(v);
}

static void test_attention_grp(void **state)
{
	static const int shapes[][3] = { /* n_kv, head_dim, stride */
		{ 19, 40, 56 }, { 1, 64, 64 }, { 7, 64, 256 }, { 33, 128, 128 }, { 5, 17, 20 },
		{ 130, 80, 96 }, { 16, 8, 8 }, { 0, 64, 64 }, { 250, 256, 512 }, { 9, 264, 264 },
	};
	static const int groups[] = { 1, 3, 8 };
	(void)state;
	for (int isa = 0; isa < KERN_ISA_COUNT; isa++) {
		if (!kern_isa_supported((enum kern_isa)isa))
			continue;
		for (size_t gi = 0; gi < sizeof groups / sizeof groups[0]; gi++)
			for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
				check_attention_grp((enum kern_isa)isa, groups[gi], shapes[s][0], shapes[s][1],
						    shapes[s][2]);
	}
}

static void test_attention(void **state)
{
	static const int shapes[][3] = { /* n_kv, head_dim, stride */
		{ 19, 40, 56 }, { 1, 64, 64 }, { 7, 64, 256 }, { 33, 128, 128 }, { 5, 17, 20 },
		{ 130, 80, 96 }, { 4, 8, 8 }, { 3, 3, 5 }, { 0, 64, 64 }, { 250, 256, 512 },
	};
	(void)state;
	for (int isa = 0; isa < KERN_ISA_COUNT; isa++) {
		if (!kern_isa_supported((enum kern_isa)isa))
			continue;
		for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
			check_attention((enum kern_isa)isa, shapes[s][0], shapes[s][1], shapes[s][2]);
	}
}

/* Runs of rows for every head at once, merged: a token's attention over
 * n_kv rows cut into runs of `run` (the last shorter), against the
 * softmax-weighted sum computed in double.  Each score is within
 * δ = scale·Σ|q_i·k_i|·hd·2^-23 of its exact value, which moves each
 * probability by a factor within e^{±2δ}; the rest (exponentials, the
 * float sums over n_kv and head_dim terms) is a few ulp per term.  So each
 * output is checked within (4δ + (n_kv + hd)·2.4e-7 + 1e-6)·Σ p_t·|v_t| +
 * 1e-6.  Each run's maximum and sum are checked too.  Shapes cover every
 * lane layout (1–16 query heads per K/V head, padded groups of 3, 6, 7),
 * head sizes of each values span and the one-head fallbacks (hd 17, 264,
 * one K/V head per query head), soft-capping, and rows wider than the
 * heads. */
static void check_attn_run(enum kern_isa isa, int nh, int nkvh, int hd, int extra, int n_kv, int run,
			   float softcap)
{
	const struct kern_attn_shape sh = { nh, nkvh, hd, (size_t)(nkvh * hd + extra),
					    1.0f / sqrtf((float)hd), softcap };
	const int gqa = nh / nkvh, n_run = (n_kv + run - 1) / run;
	const size_t nk = (size_t)n_kv * sh.stride, ps = kern_attn_part_size(&sh);
	float *q = malloc((size_t)nh * hd * sizeof *q), *kf = malloc(nk * sizeof *kf);
	float *parts = malloc((size_t)n_run * ps * sizeof *parts), *out = malloc((size_t)nh * hd * sizeof *out);
	float *ws = aligned_alloc(64, (kern_attn_run_ws(&sh) * sizeof(float) + 63) / 64 * 64);
	float *qp = aligned_alloc(64, (kern_attn_q_size(&sh) * sizeof(float) + 63) / 64 * 64);
	uint16_t *k = malloc(nk * sizeof *k), *v = malloc(nk * sizeof *v);
	double *sc = malloc((size_t)n_kv * sizeof *sc), *err = malloc((size_t)n_kv * sizeof *err);

	assert_int_equal(ps, (size_t)nh * (hd + 2));
	fill(q, nh * hd, 21);
	fill(kf, (int)nk, 22);
	kern_f32_to_f16(kf, k, (int64_t)nk);
	for (size_t i = 0; i < nk; i++)
		v[i] = k[(i * 7 + 3) % nk];
	kern_attn_q_prep(isa, &sh, q, qp);
	for (int r = 0; r < n_run; r++) {
		const int n = n_kv - r * run < run ? n_kv - r * run : run;
		kern_attn_run(isa, &sh, qp, k + (size_t)r * run * sh.stride, v + (size_t)r * run * sh.stride, n,
			      parts + (size_t)r * ps, ws);
	}
	kern_attn_merge(out, parts, n_run, &sh);
	for (int h = 0; h < nh; h++) {
		const float *qh = q + (size_t)h * hd;
		const size_t off = (size_t)(h / gqa) * hd;
		double mx = -INFINITY, sum = 0, dmax = 0;
		for (int t = 0; t < n_kv; t++) {
			double s = 0, a = 0;
			for (int i = 0; i < hd; i++) {
				const double x = (double)qh[i] * dm_f16_to_f32(k[(size_t)t * sh.stride + off + i]);
				s += x;
				a += fabs(x);
			}
			s *= sh.scale;
			err[t] = sh.scale * a * hd * 1.2e-7 + 1e-7;
			if (softcap > 0)
				s = softcap * tanh(s / softcap);
			sc[t] = s;
			mx = fmax(mx, s);
			dmax = fmax(dmax, err[t]);
		}
		for (int t = 0; t < n_kv; t++)
			sum += exp(sc[t] - mx);
		/* the first run's maximum and sum */
		{
			const int n = n_kv < run ? n_kv : run;
			double m1 = -INFINITY, l1 = 0, e1 = 0;
			for (int t = 0; t < n; t++)
				m1 = fmax(m1, sc[t]), e1 = fmax(e1, err[t]);
			for (int t = 0; t < n; t++)
				l1 += exp(sc[t] - m1);
			const float *ph = parts + (size_t)h * (hd + 2);
			if (!(fabs(ph[hd] - m1) <= e1 + 1e-6) || !(fabs(ph[hd + 1] - l1) <= l1 * (4 * e1 + n * 2.4e-7)))
				fail_msg("%s %d/%d heads hd %d n %d: head %d run 0 max %g sum %g, want %g %g",
					 kern_isa_name(isa), nh, nkvh, hd, n_kv, h, ph[hd], ph[hd + 1], m1, l1);
		}
		for (int i = 0; i < hd; i++) {
			double o = 0, a = 0;
			for (int t = 0; t < n_kv; t++) {
				const double p = exp(sc[t] - mx) / sum, x = dm_f16_to_f32(v[(size_t)t * sh.stride + off + i]);
				o += p * x;
				a += p * fabs(x);
			}
			const double tol = (4 * dmax + (n_kv + hd) * 2.4e-7 + 1e-6) * a + 1e-6;
			if (!(fabs(out[(size_t)h * hd + i] - o) <= tol))
				fail_msg("%s %d/%d heads hd %d n %d run %d cap %g: head %d output %d is %.9g, want %.9g (tol %.2g)",
					 kern_isa_name(isa), nh, nkvh, hd, n_kv, run, softcap, h, i,
					 out[(size_t)h * hd + i], o, tol);
		}
	}
	free(q), free(qp), free(kf), free(parts), free(out), free(ws), free(k), free(v), free(sc), free(err);
}

static void test_attention_run(void **state)
{
	static const int shapes[][7] = { /* n_head, n_head_kv, hd, extra stride, n_kv, run, softcap */
		{ 32, 4, 64, 0, 300, 128, 0 }, { 32, 4, 64, 0, 1, 128, 0 }, { 16, 8, 64, 8, 37, 256, 0 },
		{ 8, 2, 128, 0, 256, 256, 0 }, { 12, 4, 40, 16, 77, 32, 0 }, { 14, 2, 64, 0, 129, 128, 0 },
		{ 12, 2, 48, 0, 19, 7, 0 }, { 32, 2, 64, 0, 70, 64, 0 }, { 8, 4, 256, 0, 23, 16, 0 },
		{ 8, 4, 64, 0, 90, 40, 2 }, { 6, 3, 8, 0, 5, 256, 0 }, { 4, 4, 64, 0, 50, 16, 0 },
		{ 4, 2, 17, 3, 11, 8, 0 }, { 4, 1, 264, 0, 9, 256, 0 }, { 16, 4, 64, 0, 256, 256, 2 },
	};
	(void)state;
	for (int isa = 0; isa < KERN_ISA_COUNT; isa++) {
		if (!kern_isa_supported((enum kern_isa)isa))
			continue;
		for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
			check_attn_run((enum kern_isa)isa, shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3],
				       shapes[s][4], shapes[s][5], (float)shapes[s][6]);
	}
}

/* Each ISA's activation quantizer gives the reference's bytes: random rows
 * of several sizes, plus rows built to hit the rounding ties (amax 127 so
 * the scale is exactly 1 and x.5 values survive the scaling), repeated
 * magnitudes of both signs (Q8_K keeps the first) and all-zero blocks. */
static void test_act_quant_bit_exact(void **state)
{
	static const uint32_t types[] = { GGUF_TYPE_Q4_0, GGUF_TYPE_Q4_1, GGUF_TYPE_Q4_K };
	static const int64_t sizes[] = { 256, 512, 2048, 5632 };
	(void)state;
	for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
		struct kern_traits ref;
		assert_int_equal(kern_traits_get(types[ti], KERN_ISA_REF, &ref), 0);
		for (int isa = 1; isa < KERN_ISA_COUNT; isa++) {
			struct kern_traits t;
			if (!kern_isa_supported((enum kern_isa)isa))
				continue;
			assert_int_equal(kern_traits_get(types[ti], (enum kern_isa)isa, &t), 0);
			for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
				for (int kind = 0; kind < 4; kind++) {
					const int64_t n = sizes[si];
					const size_t rb = kern_act_row_bytes(types[ti], n);
					float *x = malloc((size_t)n * sizeof *x);
					uint8_t *a = malloc(rb), *b = malloc(rb);
					fill(x, (int)n, 100 + (uint64_t)si * 4 + (uint64_t)kind);
					for (int64_t i = 0; i < n; i++) {
						if (kind == 1) /* ties: k + 0.5 with the scale 1 */
							x[i] = (float)((int)(x[i] * 40) % 126) + 0.5f;
						else if (kind == 2) /* equal magnitudes, both signs */
							x[i] = (i % 3 == 0) ? (i % 2 ? 3.0f : -3.0f) : x[i] * 0.5f;
						else if (kind == 3 && (i / 256) % 2) /* zero blocks */
							x[i] = 0;
						if (kind == 1 && i % 32 == 5)
							x[i] = (i / 32) % 2 ? 127.0f : -127.0f;
					}
					memset(a, 0xAA, rb);
					memset(b, 0x55, rb);
					ref.act_from_float(x, a, n);
					t.act_from_float(x, b, n);
					if (memcmp(a, b, rb))
						fail_msg("%s act quantizer on %s differs from the reference (n %lld, kind %d)",
							 kern_isa_name((enum kern_isa)isa), ref.name, (long long)n, kind);
					free(x), free(a), free(b);
				}
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rmsnorm),
		cmocka_unit_test(test_rope),
		cmocka_unit_test(test_softmax_activations),
		cmocka_unit_test(test_softmax_swiglu_isa),
		cmocka_unit_test(test_geglu_softcap_isa),
		cmocka_unit_test(test_conversions),
		cmocka_unit_test(test_attention),
		cmocka_unit_test(test_attention_grp),
		cmocka_unit_test(test_attention_run),
		cmocka_unit_test(test_act_quant_bit_exact),
	};
	return cmocka_run_group_tests_name("kern_ops", tests, NULL, NULL);
}

/*
 * kern/ops — element-wise operations of a transformer (see kern.h), scalar
 * and readable; the compiler vectorises the simple loops.  Attention
 * dispatches to ops_avx2.c / ops_avx512.c, and so do softmax, SwiGLU,
 * GeGLU and soft-capping (expf and tanhf do not vectorise); the scalar
 * versions here are the reference.  Reductions
 * (RMSNorm, softmax) sum in double so their result does not depend on n's
 * size in any visible way.
 */
#include <math.h>

#include "base/half.h"
#include "kern/kern.h"
#include "kern/kern_impl.h"

void kern_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps)
{
	double ss = 0;
	for (int64_t i = 0; i < n; i++)
		ss += (double)x[i] * (double)x[i];
	float scale = n > 0 ? (float)(1.0 / sqrt(ss / (double)n + (double)eps)) : 0.0f;
	if (w)
		for (int64_t i = 0; i < n; i++)
			y[i] = x[i] * scale * w[i];
	else
		for (int64_t i = 0; i < n; i++)
			y[i] = x[i] * scale;
}

void kern_layernorm(float *y, const float *x, const float *w, const float *b, int64_t n, float eps)
{
	double sum = 0, ss = 0;
	for (int64_t i = 0; i < n; i++)
		sum += x[i];
	double mean = n > 0 ? sum / (double)n : 0;
	for (int64_t i = 0; i < n; i++)
		ss += ((double)x[i] - mean) * ((double)x[i] - mean);
	float scale = n > 0 ? (float)(1.0 / sqrt(ss / (double)n + (double)eps)) : 0.0f;
	float m = (float)mean;
	for (int64_t i = 0; i < n; i++)
		y[i] = (x[i] - m) * scale * w[i] + (b ? b[i] : 0.0f);
}

/* Pair i turns by θ_i = pos·freq_scale·base^(−2i/n_rot)/ff_i; base^(−2i/n_rot)
 * is built by repeated multiplication as ggml does, so angles agree with it
 * to the last bit. */
void kern_rope_apply(float *x, int64_t n_head, int64_t head_dim, int64_t pos,
		     const struct kern_rope *r)
{
	int64_t n_rot = r->n_rot < head_dim ? r->n_rot : head_dim;
	int64_t half = n_rot / 2;
	float theta_scale = powf(r->freq_base, -2.0f / (float)n_rot);
	float theta = (float)pos;
	float mscale = r->attn_factor != 0.0f ? r->attn_factor : 1.0f;
	float cs[512], sn[512]; /* head_dim up to 1024 */

	if (half > 512)
		half = 512;
	for (int64_t i = 0; i < half; i++) {
		float ff = r->freq_factors ? r->freq_factors[i] : 1.0f;
		float t = r->freq_scale * (theta / ff);
		cs[i] = cosf(t) * mscale;
		sn[i] = sinf(t) * mscale;
		theta *= theta_scale;
	}
	for (int64_t h = 0; h < n_head; h++) {
		float *v = x + (size_t)h * (size_t)head_dim;
		for (int64_t i = 0; i < half; i++) {
			int64_t a = r->mode == KERN_ROPE_NEOX ? i : 2 * i;
			int64_t b = r->mode == KERN_ROPE_NEOX ? i + half : 2 * i + 1;
			float x0 = v[a], x1 = v[b];
			v[a] = x0 * cs[i] - x1 * sn[i];
			v[b] = x0 * sn[i] + x1 * cs[i];
		}
	}
}

/* kern_softmax, returning the sum of the exponentials. */
static double softmax_sum(enum kern_isa isa, float *x, int64_t n)
{
#if defined(__x86_64__)
	if (isa >= KERN_ISA_AVX512)
		return kern_softmax_avx512(x, n);
	if (isa >= KERN_ISA_AVX2)
		return kern_softmax_avx2(x, n);
#endif
	(void)isa;
	float max = -INFINITY;
	double sum = 0;
	for (int64_t i = 0; i < n; i++)
		if (x[i] > max)
			max = x[i];
	for (int64_t i = 0; i < n; i++) {
		x[i] = expf(x[i] - max);
		sum += x[i];
	}
	float inv = sum > 0 ? (float)(1.0 / sum) : 0.0f;
	for (int64_t i = 0; i < n; i++)
		x[i] *= inv;
	return sum;
}

void kern_softmax(enum kern_isa isa, float *x, int64_t n)
{
	softmax_sum(isa, x, n);
}

void kern_silu(float *y, const float *x, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		y[i] = x[i] / (1.0f + expf(-x[i]));
}

void kern_gelu(float *y, const float *x, int64_t n)
{
	const float c = 0.7978845608028654f; /* sqrt(2/pi) */
	for (int64_t i = 0; i < n; i++) {
		float v = x[i];
		y[i] = 0.5f * v * (1.0f + tanhf(c * (v + 0.044715f * v * v * v)));
	}
}

void kern_swiglu(enum kern_isa isa, float *g, const float *u, int64_t n)
{
#if defined(__x86_64__)
	if (isa >= KERN_ISA_AVX512) {
		kern_swiglu_avx512(g, u, n);
		return;
	}
	if (isa >= KERN_ISA_AVX2) {
		kern_swiglu_avx2(g, u, n);
		return;
	}
#endif
	(void)isa;
	for (int64_t i = 0; i < n; i++)
		g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void kern_geglu(enum kern_isa isa, float *g, const float *u, int64_t n)
{
#if defined(__x86_64__)
	if (isa >= KERN_ISA_AVX512) {
		kern_geglu_avx512(g, u, n);
		return;
	}
	if (isa >= KERN_ISA_AVX2) {
		kern_geglu_avx2(g, u, n);
		return;
	}
#endif
	(void)isa;
	kern_gelu(g, g, n);
	for (int64_t i = 0; i < n; i++)
		g[i] *= u[i];
}

void kern_softcap(enum kern_isa isa, float *y, const float *x, float c, int64_t n)
{
#if defined(__x86_64__)
	if (isa >= KERN_ISA_AVX512) {
		kern_softcap_avx512(y, x, c, n);
		return;
	}
	if (isa >= KERN_ISA_AVX2) {
		kern_softcap_avx2(y, x, c, n);
		return;
	}
#endif
	(void)isa;
	for (int64_t i = 0; i < n; i++)
		y[i] = c * tanhf(x[i] / c);
}

void kern_add(float *y, const float *a, const float *b, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		y[i] = a[i] + b[i];
}

void kern_mul(float *y, const float *a, const float *b, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		y[i] = a[i] * b[i];
}

void kern_scale(float *y, const float *x, float s, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		y[i] = x[i] * s;
}

void kern_f16_to_f32(const uint16_t *x, float *y, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		y[i] = dm_f16_to_f32(x[i]);
}

void kern_f32_to_f16(const float *x, uint16_t *y, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		y[i] = dm_f32_to_f16(x[i]);
}

void kern_bf16_to_f32(const uint16_t *x, float *y, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		y[i] = dm_bf16_to_f32(x[i]);
}

void kern_f32_to_bf16(const float *x, uint16_t *y, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		y[i] = dm_f32_to_bf16(x[i]);
}

static void attn_scores_ref(float *scores, const float *q, const uint16_t *k, int64_t n_kv,
			    int64_t head_dim, size_t stride, float scale)
{
	for (int64_t t = 0; t < n_kv; t++) {
		const uint16_t *kr = k + (size_t)t * stride;
		float s = 0;
		for (int64_t i = 0; i < head_dim; i++)
			s += q[i] * dm_f16_to_f32(kr[i]);
		scores[t] = s * scale;
	}
}

static void attn_values_ref(float *out, const float *p, const uint16_t *v, int64_t n_kv,
			    int64_t head_dim, size_t stride)
{
	for (int64_t i = 0; i < head_dim; i++)
		out[i] = 0;
	for (int64_t t = 0; t < n_kv; t++) {
		const uint16_t *vr = v + (size_t)t * stride;
		float pt = p[t];
		for (int64_t i = 0; i < head_dim; i++)
			out[i] += pt * dm_f16_to_f32(vr[i]);
	}
}

void kern_attn_scores(enum kern_isa isa, float *scores, const float *q, const uint16_t *k,
		      int64_t n_kv, int64_t head_dim, size_t stride, float scale)
{
#if defined(__x86_64__)
	if (isa >= KERN_ISA_AVX512) {
		kern_attn_scores_avx512(scores, q, k, n_kv, head_dim, stride, scale);
		return;
	}
	if (isa >= KERN_ISA_AVX2) {
		kern_attn_scores_avx2(scores, q, k, n_kv, head_dim, stride, scale);
		return;
	}
#endif
	(void)isa;
	attn_scores_ref(scores, q, k, n_kv, head_dim, stride, scale);
}

void kern_attn_values(enum kern_isa isa, float *out, const float *p, const uint16_t *v,
		      int64_t n_kv, int64_t head_dim, size_t stride)
{
#if defined(__x86_64__)
	if (isa >= KERN_ISA_AVX512) {
		kern_attn_values_avx512(out, p, v, n_kv, head_dim, stride);
		return;
	}
	if (isa >= KERN_ISA_AVX2) {
		kern_attn_values_avx2(out, p, v, n_kv, head_dim, stride);
		return;
	}
#endif
	(void)isa;
	attn_values_ref(out, p, v, n_kv, head_dim, stride);
}

/* The grouped kernels (AVX2's, on AVX-512 machines too: converting each K
 * and V row once for the group saves more than wider vectors would) where
 * the head fits their buffers; elsewhere (the reference, odd head sizes)
 * one head at a time. */
static bool grp_fast(enum kern_isa isa, int64_t head_dim)
{
#if defined(__x86_64__)
	return isa >= KERN_ISA_AVX2 && head_dim % 8 == 0 && head_dim <= KERN_GRP_HD;
#else
	(void)isa;
	(void)head_dim;
	return false;
#endif
}

void kern_attn_scores_grp(enum kern_isa isa, float *scores, size_t s_stride, const float *q,
			  size_t q_stride, int g, const uint16_t *k, int64_t n_kv, int64_t head_dim,
			  size_t stride, float scale)
{
#if defined(__x86_64__)
	if (grp_fast(isa, head_dim)) {
		kern_attn_scores_grp_avx2(scores, s_stride, q, q_stride, g, k, n_kv, head_dim, stride, scale);
		return;
	}
#endif
	for (int j = 0; j < g; j++)
		kern_attn_scores(isa, scores + (size_t)j * s_stride, q + (size_t)j * q_stride, k, n_kv,
				 head_dim, stride, scale);
}

void kern_attn_values_grp(enum kern_isa isa, float *out, size_t o_stride, const float *p,
			  size_t p_stride, int g, const uint16_t *v, int64_t n_kv, int64_t head_dim,
			  size_t stride)
{
#if defined(__x86_64__)
	if (grp_fast(isa, head_dim)) {
		kern_attn_values_grp_avx2(out, o_stride, p, p_stride, g, v, n_kv, head_dim, stride);
		return;
	}
#endif
	for (int j = 0; j < g; j++)
		kern_attn_values(isa, out + (size_t)j * o_stride, p + (size_t)j * p_stride, v, n_kv,
				 head_dim, stride);
}

/* ---- attention over a run of rows, every head ---- */

static bool run_fast(enum kern_isa isa, const struct kern_attn_shape *sh)
{
	return grp_fast(isa, sh->head_dim) && sh->n_head / sh->n_head_kv >= 2;
}

size_t kern_attn_part_size(const struct kern_attn_shape *sh)
{
	return (size_t)sh->n_head * ((size_t)sh->head_dim + 2);
}

#if defined(__x86_64__)
/* The larger of n (what the one-head path needs) and what each x86 build
 * of the runs asks for the shape. */
static size_t run_size(const struct kern_attn_shape *sh, size_t n,
		       size_t (*avx2)(const struct kern_attn_shape *), size_t (*avx512)(const struct kern_attn_shape *))
{
	if (run_fast(KERN_ISA_AVX2, sh)) {
		const size_t a = avx2(sh), b = avx512(sh);
		n = a > n ? a : n;
		n = b > n ? b : n;
	}
	return n;
}
#endif

size_t kern_attn_q_size(const struct kern_attn_shape *sh)
{
	const size_t n = (size_t)sh->n_head * (size_t)sh->head_dim;
#if defined(__x86_64__)
	return run_size(sh, n, kern_attn_q_size_avx2, kern_attn_q_size_avx512);
#else
	return n;
#endif
}

void kern_attn_q_prep(enum kern_isa isa, const struct kern_attn_shape *sh, const float *q, float *qp)
{
#if defined(__x86_64__)
	if (run_fast(isa, sh)) {
		if (isa >= KERN_ISA_AVX512)
			kern_attn_q_prep_avx512(sh, q, qp);
		else
			kern_attn_q_prep_avx2(sh, q, qp);
		return;
	}
#endif
	memcpy(qp, q, (size_t)sh->n_head * (size_t)sh->head_dim * sizeof(float));
}

size_t kern_attn_run_ws(const struct kern_attn_shape *sh)
{
#if defined(__x86_64__)
	return run_size(sh, KERN_ATTN_RUN, kern_attn_run_ws_avx2, kern_attn_run_ws_avx512);
#else
	(void)sh;
	return KERN_ATTN_RUN;
#endif
}

/* One head at a time: the scores, soft-cap and softmax (keeping its
 * maximum and sum) and values of the one-head kernels; with
 * KERN_ISA_REF, the reference. */
static void attn_run_heads(enum kern_isa isa, const struct kern_attn_shape *sh, const float *q,
			   const uint16_t *k, const uint16_t *v, int64_t n, float *part, float *s)
{
	const int64_t hd = sh->head_dim, gqa = sh->n_head / sh->n_head_kv;
	for (int64_t h = 0; h < sh->n_head; h++) {
		const size_t off = (size_t)(h / gqa) * (size_t)hd;
		float *o = part + (size_t)h * ((size_t)hd + 2);
		kern_attn_scores(isa, s, q + (size_t)h * (size_t)hd, k + off, n, hd, sh->stride, sh->scale);
		if (sh->softcap > 0)
			kern_softcap(isa, s, s, sh->softcap, n);
		float m = -INFINITY;
		for (int64_t t = 0; t < n; t++)
			m = s[t] > m ? s[t] : m;
		o[hd] = m;
		o[hd + 1] = (float)softmax_sum(isa, s, n);
		kern_attn_values(isa, o, s, v + off, n, hd, sh->stride);
	}
}

void kern_attn_run(enum kern_isa isa, const struct kern_attn_shape *sh, const float *qp,
		   const uint16_t *k, const uint16_t *v, int64_t n, float *part, float *ws)
{
#if defined(__x86_64__)
	if (run_fast(isa, sh)) {
		if (isa >= KERN_ISA_AVX512)
			kern_attn_run_avx512(sh, qp, k, v, n, part, ws);
		else
			kern_attn_run_avx2(sh, qp, k, v, n, part, ws);
		return;
	}
#endif
	attn_run_heads(isa, sh, qp, k, v, n, part, ws);
}

void kern_attn_merge(float *out, const float *parts, int64_t n_part, const struct kern_attn_shape *sh)
{
	const int64_t hd = sh->head_dim;
	const size_t ps = kern_attn_part_size(sh);
	for (int64_t h = 0; h < sh->n_head; h++) {
		const float *p0 = parts + (size_t)h * ((size_t)hd + 2);
		float *o = out + (size_t)h * (size_t)hd;
		if (n_part == 1) {
			memcpy(o, p0, (size_t)hd * sizeof(float));
			continue;
		}
		float mx = -INFINITY;
		for (int64_t p = 0; p < n_part; p++)
			mx = p0[(size_t)p * ps + (size_t)hd] > mx ? p0[(size_t)p * ps + (size_t)hd] : mx;
		double wsum = 0;
		for (int64_t i = 0; i < hd; i++)
			o[i] = 0;
		for (int64_t p = 0; p < n_part; p++) {
			const float *pp = p0 + (size_t)p * ps;
			const float w = pp[hd + 1] * expf(pp[hd] - mx);
			wsum += w;
			for (int64_t i = 0; i < hd; i++)
				o[i] += w * pp[i];
		}
		const float inv = wsum > 0 ? (float)(1.0 / wsum) : 0.0f;
		for (int64_t i = 0; i < hd; i++)
			o[i] *= inv;
	}
}

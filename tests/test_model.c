/*
 * tests/model — the forward pass against a slow float64 reference, prefill
 * vs one-by-one decode, thread-count independence, the sampler, and (when
 * ../shared/golden exists) greedy outputs and perplexity of a real model
 * against the reference engine.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/half.h"
#include "base/mem.h"
#include "base/pool.h"
#include "gguf/gguf.h"
#include "kern/kern.h"
#include "model/model.h"
#include "model/ppl.h"
#include "model/sample.h"
#include "model/synth.h"
#include "tutil.h"

static int argmax_f(const float *x, int n)
{
	int b = 0;
	for (int i = 1; i < n; i++)
		if (x[i] > x[b])
			b = i;
	return b;
}

/* ---- a slow, obviously-correct float64 reference forward pass ---- */

/* Dequantized copy of a weight, in double, rows × cols. */
static double *deq(const struct model_w *w)
{
	size_t rb = kern_row_bytes(w->type, w->ne0);
	double *out = malloc((size_t)w->ne0 * (size_t)w->ne1 * sizeof *out);
	float *row = malloc((size_t)w->ne0 * sizeof *row);
	assert_non_null(out);
	for (int64_t r = 0; r < w->ne1; r++) {
		assert_int_equal(kern_dequantize(w->type, (const uint8_t *)w->data + (size_t)r * rb, row, w->ne0, NULL), 0);
		for (int64_t i = 0; i < w->ne0; i++)
			out[(size_t)r * (size_t)w->ne0 + (size_t)i] = row[i];
	}
	free(row);
	return out;
}

/* y[r] = Σ_i W[r][i] x[i] */
static void ref_mv(const double *W, int64_t rows, int64_t cols, const double *x, double *y)
{
	for (int64_t r = 0; r < rows; r++) {
		double s = 0;
		for (int64_t i = 0; i < cols; i++)
			s += W[r * cols + i] * x[i];
		y[r] = s;
	}
}

static void ref_rmsnorm(double *y, const double *x, const float *w, int64_t n, double eps)
{
	double ss = 0;
	for (int64_t i = 0; i < n; i++)
		ss += x[i] * x[i];
	ss = 1.0 / sqrt(ss / (double)n + eps);
	for (int64_t i = 0; i < n; i++)
		y[i] = x[i] * ss * w[i]; /* in place is fine: x[i] is read before y[i] is written */
}

/* θ_i = pos·scale·base^(−2i/n_rot)/ff_i; LongRoPE's attn_factor af scales
 * the rotated pair. */
static void ref_rope(double *x, int64_t n_head, int64_t hd, int64_t n_rot, int64_t pos, double base,
		     double scale, const float *ff, double af, bool neox)
{
	for (int64_t h = 0; h < n_head; h++) {
		double *v = x + h * hd;
		for (int64_t i = 0; i < n_rot / 2; i++) {
			double th = (double)pos * scale * pow(base, -2.0 * (double)i / (double)n_rot) /
				    (ff ? (double)ff[i] : 1.0);
			int64_t a = neox ? i : 2 * i, b = neox ? i + n_rot / 2 : 2 * i + 1;
			double x0 = v[a], x1 = v[b];
			v[a] = af * (x0 * cos(th) - x1 * sin(th));
			v[b] = af * (x0 * sin(th) + x1 * cos(th));
		}
	}
}

/* the KV cache format (F16) is part of the specification */
static double f16r(double x)
{
	return dm_f16_to_f32(dm_f32_to_f16((float)x));
}

static void ref_heads_norm(double *x, int64_t n_head, int64_t hd, const float *w, double eps)
{
	for (int64_t h = 0; w && h < n_head; h++)
		ref_rmsnorm(x + h * hd, x + h * hd, w, hd, eps);
}

/* Logits (n_tok × n_vocab) for tokens at positions 0..n_tok-1 in a context
 * of n_ctx (which picks LongRoPE's factors).  Every architecture's steps
 * as the reference engine computes them, in double, from the bound
 * weights: embedding scale, Q/K biases and per-head norms, per-layer RoPE,
 * sliding windows, soft-caps, post-norms, SwiGLU or GeGLU. */
static double *ref_forward(const struct model *m, const int32_t *tok, int n_tok, int n_ctx)
{
	const struct model_hparams *hp = &m->hp;
	const int64_t E = hp->n_embd, F = hp->n_ff, hd = hp->head_dim, V = hp->n_vocab;
	const int64_t QD = hp->n_head * hd, KVD = hp->n_head_kv * hd;
	const bool neox = hp->rope_mode == KERN_ROPE_NEOX;
	const float *ff = m->rope_factors_long && n_ctx > hp->n_ctx_orig ? m->rope_factors_long
									  : m->rope_factors_short;
	const double af = hp->rope_attn_factor;
	double *x = calloc((size_t)(n_tok * E), sizeof *x), *h = malloc((size_t)E * 8);
	double *K = malloc((size_t)(n_tok * KVD) * 8), *Vc = malloc((size_t)(n_tok * KVD) * 8);
	double *q = malloc((size_t)QD * 8), *att = malloc((size_t)QD * 8), *tmp = malloc((size_t)(E > F ? E : F) * 8);
	double *g = malloc((size_t)F * 8), *u = malloc((size_t)F * 8), *sc = malloc((size_t)n_tok * 8);
	double *logits = malloc((size_t)(n_tok * V) * 8);
	double *emb = deq(&m->tok_embd);

	for (int t = 0; t < n_tok; t++)
		for (int64_t i = 0; i < E; i++)
			x[t * E + i] = emb[(size_t)tok[t] * (size_t)E + (size_t)i] * hp->embd_scale;
	for (int l = 0; l < hp->n_layer; l++) {
		const struct model_layer *L = &m->layers[l];
		double *Wq = deq(&L->wq), *Wk = deq(&L->wk), *Wv = deq(&L->wv), *Wo = deq(&L->wo);
		double *Wg = deq(&L->w_gate), *Wu = deq(&L->w_up), *Wd = deq(&L->w_down);
		for (int t = 0; t < n_tok; t++) {
			ref_rmsnorm(h, x + t * E, L->attn_norm, E, hp->rms_eps);
			ref_mv(Wk, KVD, E, h, K + t * KVD);
			ref_mv(Wv, KVD, E, h, Vc + t * KVD);
			for (int64_t i = 0; L->bk && i < KVD; i++) {
				K[t * KVD + i] += L->bk[i];
				Vc[t * KVD + i] += L->bv[i];
			}
			ref_heads_norm(K + t * KVD, hp->n_head_kv, hd, L->k_norm, hp->rms_eps);
			ref_rope(K + t * KVD, hp->n_head_kv, hd, hp->n_rot, t, L->rope_base, L->rope_scale, ff, af, neox);
			for (int64_t i = 0; i < KVD; i++) {
				K[t * KVD + i] = f16r(K[t * KVD + i]);
				Vc[t * KVD + i] = f16r(Vc[t * KVD + i]);
			}
		}
		for (int t = 0; t < n_tok; t++) {
			/* a windowed layer sees positions t − n_swa + 1 .. t */
			const int first = L->n_swa > 0 && t + 1 > L->n_swa ? t + 1 - L->n_swa : 0;
			ref_rmsnorm(h, x + t * E, L->attn_norm, E, hp->rms_eps);
			ref_mv(Wq, QD, E, h, q);
			for (int64_t i = 0; L->bq && i < QD; i++)
				q[i] += L->bq[i];
			ref_heads_norm(q, hp->n_head, hd, L->q_norm, hp->rms_eps);
			ref_rope(q, hp->n_head, hd, hp->n_rot, t, L->rope_base, L->rope_scale, ff, af, neox);
			for (int64_t hh = 0; hh < hp->n_head; hh++) {
				int64_t kvh = hh / (hp->n_head / hp->n_head_kv);
				double mx = -1e300, sum = 0;
				for (int s = first; s <= t; s++) {
					double d = 0;
					for (int64_t i = 0; i < hd; i++)
						d += q[hh * hd + i] * K[s * KVD + kvh * hd + i];
					sc[s] = d * hp->attn_scale;
					if (hp->attn_softcap > 0)
						sc[s] = hp->attn_softcap * tanh(sc[s] / hp->attn_softcap);
					if (sc[s] > mx)
						mx = sc[s];
				}
				for (int s = first; s <= t; s++)
					sum += sc[s] = exp(sc[s] - mx);
				for (int64_t i = 0; i < hd; i++) {
					double a = 0;
					for (int s = first; s <= t; s++)
						a += sc[s] / sum * Vc[s * KVD + kvh * hd + i];
					att[hh * hd + i] = a;
				}
			}
			ref_mv(Wo, E, QD, att, tmp);
			if (L->attn_post_norm)
				ref_rmsnorm(tmp, tmp, L->attn_post_norm, E, hp->rms_eps);
			for (int64_t i = 0; i < E; i++)
				x[t * E + i] += tmp[i];
			ref_rmsnorm(h, x + t * E, L->ffn_norm, E, hp->rms_eps);
			ref_mv(Wg, F, E, h, g);
			ref_mv(Wu, F, E, h, u);
			for (int64_t i = 0; i < F; i++) {
				double v = g[i];
				g[i] = hp->ffn_act == MODEL_ACT_GELU
					       ? 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))) * u[i]
					       : v / (1.0 + exp(-v)) * u[i];
			}
			ref_mv(Wd, E, F, g, tmp);
			if (L->ffn_post_norm)
				ref_rmsnorm(tmp, tmp, L->ffn_post_norm, E, hp->rms_eps);
			for (int64_t i = 0; i < E; i++)
				x[t * E + i] += tmp[i];
		}
		free(Wq); free(Wk); free(Wv); free(Wo); free(Wg); free(Wu); free(Wd);
	}
	{
		double *Wout = deq(&m->output);
		for (int t = 0; t < n_tok; t++) {
			ref_rmsnorm(h, x + t * E, m->output_norm, E, hp->rms_eps);
			ref_mv(Wout, V, E, h, logits + t * V);
			for (int64_t i = 0; hp->final_softcap > 0 && i < V; i++)
				logits[t * V + i] = hp->final_softcap * tanh(logits[t * V + i] / hp->final_softcap);
		}
		free(Wout);
	}
	free(emb); free(x); free(h); free(K); free(Vc); free(q); free(att); free(tmp);
	free(g); free(u); free(sc);
	return logits;
}

static double nmse(const float *a, const double *ref, size_t n)
{
	double num = 0, den = 0;
	for (size_t i = 0; i < n; i++) {
		num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
		den += ref[i] * ref[i];
	}
	return num / den;
}

/* A tiny model of the given architecture and weight type. */
struct fixture {
	char path[512];
	struct gguf_file *g;
	struct model *m;
};

static void fixture_open(struct fixture *f, const char *arch, uint32_t type)
{
	struct synth_opts o = { .type = type, .seed = 3, .arch = arch };
	struct dm_err e;
	assert_int_equal(synth_preset("tiny", &o.shape, &e), 0);
	/* gemma3: six layers, so that one of them (layer 5) is global */
	o.shape.n_layer = !strcmp(arch, "gemma3") ? 6 : 2;
	snprintf(f->path, sizeof f->path, "%s", tu_tmp_path(arch));
	strcat(f->path, gguf_type_get(type)->name);
	if (synth_write(&o, f->path, &e))
		fail_msg("%s", e.msg);
	if (gguf_open(&f->g, f->path, &e) || model_bind(&f->m, f->g, &e))
		fail_msg("%s", e.msg);
}

static void fixture_close(struct fixture *f)
{
	model_free(f->m);
	gguf_close(f->g);
}

/* synth's Q4_K_M mix: the tensor types of a 16-layer model listed by hand
 * from llama.cpp's rule, and the same types as the golden Q4_K_M file
 * (made by llama-quantize) for the 2-layer shape, when it is present. */
static void test_synth_q4_k_m(void **state)
{
	static const int more[16] = { 1, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 1, 1 };
	struct synth_opts o = { .type = GGUF_TYPE_Q4_K, .seed = 3, .q4_k_m = true };
	const char *path = tu_tmp_path("mix.gguf");
	struct gguf_file *g;
	struct dm_err e;
	char nm[64];
	(void)state;

	assert_int_equal(synth_preset("tiny", &o.shape, &e), 0);
	o.shape.n_layer = 16;
	if (synth_write(&o, path, &e) || gguf_open(&g, path, &e))
		fail_msg("%s", e.msg);
	assert_int_equal(gguf_tensor_find(g, "output.weight")->type, GGUF_TYPE_Q6_K);
	assert_int_equal(gguf_tensor_find(g, "token_embd.weight")->type, GGUF_TYPE_Q4_K);
	for (int l = 0; l < 16; l++) {
		static const char *const six[] = { "attn_v", "ffn_down" };
		static const char *const four[] = { "attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up" };
		for (int i = 0; i < 2; i++) {
			snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, six[i]);
			if (gguf_tensor_find(g, nm)->type != (more[l] ? GGUF_TYPE_Q6_K : GGUF_TYPE_Q4_K))
				fail_msg("%s: type %u", nm, gguf_tensor_find(g, nm)->type);
		}
		for (int i = 0; i < 5; i++) {
			snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, four[i]);
			assert_int_equal(gguf_tensor_find(g, nm)->type, GGUF_TYPE_Q4_K);
		}
	}
	gguf_close(g);

	/* the golden file's 2-layer mix, tensor by tensor */
	const char *gold = tu_golden_dir();
	if (!gold)
		return;
	char gpath[512];
	struct gguf_file *ref;
	snprintf(gpath, sizeof gpath, "%s/kquant/kquant-Q4_K_M.gguf", gold);
	if (gguf_open(&ref, gpath, &e))
		fail_msg("%s", e.msg);
	assert_int_equal(gguf_get_u32(ref, "llama.block_count", &o.shape.n_layer, NULL), 0);
	if (synth_write(&o, path, &e) || gguf_open(&g, path, &e))
		fail_msg("%s", e.msg);
	int checked = 0;
	for (uint64_t i = 0; i < ref->n_tensors; i++) {
		const struct gguf_tensor *rt = &ref->tensors[i];
		snprintf(nm, sizeof nm, "%.*s", (int)rt->name.len, rt->name.ptr);
		const struct gguf_tensor *t = gguf_tensor_find(g, nm);
		if (!t || rt->n_dims < 2)
			continue;
		if (t->type != rt->type)
			fail_msg("%s: synth %u, golden %u", nm, t->type, rt->type);
		checked++;
	}
	assert_true(checked >= 9);
	gguf_close(g);
	gguf_close(ref);
}

static const int32_t prompt[] = { 1, 300, 17, 42, 480, 511, 260, 3, 99, 128, 200, 7 };
#define N_PROMPT ((int)(sizeof prompt / sizeof prompt[0]))

/* Engine logits vs the float64 reference on F32 weights: NMSE < 1e-5. */
static void check_vs_reference_ctx(const char *arch, uint32_t type, double bound, int n_ctx)
{
	struct fixture f;
	struct model_ctx *c;
	struct model_ctx_params cp = { .n_ctx = n_ctx, .n_batch = 5 };
	struct dm_err e;
	float *lg;
	double *ref, err;
	int V;

	fixture_open(&f, arch, type);
	V = f.m->hp.n_vocab;
	assert_int_equal(model_ctx_init(&c, f.m, &cp, &e), 0);
	lg = malloc((size_t)N_PROMPT * (size_t)V * sizeof *lg);
	if (model_decode(c, prompt, N_PROMPT, lg, true, &e))
		fail_msg("%s", e.msg);
	ref = ref_forward(f.m, prompt, N_PROMPT, n_ctx);
	err = nmse(lg, ref, (size_t)N_PROMPT * (size_t)V);
	print_message("      %s %s n_ctx %d: NMSE %.3g (bound %.0e)\n", arch, gguf_type_get(type)->name, n_ctx,
		      err, bound);
	assert_true(err < bound);
	free(ref);
	free(lg);
	model_ctx_free(c);
	fixture_close(&f);
}

static void check_vs_reference(const char *arch, uint32_t type, double bound)
{
	check_vs_reference_ctx(arch, type, bound, 64);
}

/* Every architecture synth writes, F32 and Q8_0 weights (Q8_0: the 8-bit
 * activations alone give NMSE ~1e-4 per two layers, as in
 * test_quantized_vs_reference; measured 1.7e-4 .. 5.3e-4, gemma3 with six
 * layers the highest, so the bound is 1e-3); phi3 also in a context longer than its
 * original one (long LongRoPE factors; 64 picks the short ones). */
static void test_archs_vs_reference(void **state)
{
	static const char *const archs[] = { "qwen3", "gemma2", "gemma3", "phi3" };
	(void)state;
	for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++) {
		check_vs_reference(archs[i], GGUF_TYPE_F32, 1e-5);
		check_vs_reference(archs[i], GGUF_TYPE_Q8_0, 1e-3);
	}
	check_vs_reference_ctx("phi3", GGUF_TYPE_F32, 1e-5, 256);
}

/* Copies the GGUF at src to dst with one change: metadata key `key` set to
 * the float f (vtype GGUF_VT_FLOAT32), the u32 u (GGUF_VT_UINT32) or the
 * string "bad" (GGUF_VT_STRING), or removed (vtype < 0); or, when key names
 * a tensor ("t:NAME"), that tensor left out. */
static void rewrite(const char *src, const char *dst, const char *key, int vtype, float f, uint32_t u)
{
	struct gguf_file *g;
	struct gguf_writer *w;
	struct dm_err e;
	bool tensor = !strncmp(key, "t:", 2), done = false;

	if (gguf_open(&g, src, &e) || gguf_writer_open(&w, dst, &e))
		fail_msg("%s", e.msg);
	for (uint64_t i = 0; i < g->n_kv; i++) {
		const struct gguf_kv *kv = &g->kv[i];
		char name[128];
		int rc = 0;
		snprintf(name, sizeof name, "%.*s", (int)kv->key.len, kv->key.ptr);
		if (!strcmp(name, "general.alignment"))
			continue;
		if (!tensor && !strcmp(name, key)) {
			done = true;
			if (vtype == GGUF_VT_FLOAT32)
				rc = gguf_writer_add_f32(w, name, f, &e);
			else if (vtype == GGUF_VT_UINT32)
				rc = gguf_writer_add_u32(w, name, u, &e);
			else if (vtype == GGUF_VT_STRING)
				rc = gguf_writer_add_str(w, name, "bad", &e);
		} else if (kv->val.type == GGUF_VT_STRING) {
			rc = gguf_writer_add_strn(w, name, kv->val.str.ptr, (size_t)kv->val.str.len, &e);
		} else if (kv->val.type == GGUF_VT_ARRAY) {
			uint8_t *buf = malloc((size_t)kv->val.nbytes + 12);
			memcpy(buf, &kv->val.elem_type, 4);
			memcpy(buf + 4, &kv->val.n, 8);
			memcpy(buf + 12, kv->val.p, (size_t)kv->val.nbytes);
			rc = gguf_writer_add_raw(w, name, GGUF_VT_ARRAY, buf, kv->val.nbytes + 12, &e);
			free(buf);
		} else {
			rc = gguf_writer_add_raw(w, name, kv->val.type, kv->val.p, kv->val.nbytes, &e);
		}
		if (rc)
			fail_msg("%s", e.msg);
	}
	if (!tensor && !done && vtype >= 0) /* a key the file lacks: add it */
		assert_int_equal(vtype == GGUF_VT_FLOAT32 ? gguf_writer_add_f32(w, key, f, &e)
							   : gguf_writer_add_u32(w, key, u, &e), 0);
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		const struct gguf_tensor *t = &g->tensors[i];
		char name[128];
		snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
		if (tensor && !strcmp(name, key + 2))
			continue;
		if (gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, &e) < 0)
			fail_msg("%s", e.msg);
	}
	if (gguf_writer_write_header(w, &e))
		fail_msg("%s", e.msg);
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		const struct gguf_tensor *t = &g->tensors[i];
		if (tensor && gguf_str_eq(t->name, key + 2))
			continue;
		if (gguf_writer_write(w, t->data, t->nbytes, &e))
			fail_msg("%s", e.msg);
	}
	if (gguf_writer_close(w, &e))
		fail_msg("%s", e.msg);
	gguf_close(g);
}

/* Every metadata key and tensor an architecture adds is validated: missing,
 * out of range or of the wrong type is a load error naming it, never a
 * crash or a silent default where the reference engine would refuse. */
static void test_arch_metadata_errors(void **state)
{
	static const struct {
		const char *arch, *key;
		int vtype;
		float f;
		uint32_t u;
		const char *want; /* in the error message */
	} cases[] = {
		{ "gemma2", "gemma2.attention.sliding_window", GGUF_VT_UINT32, 0, 0, "gemma2.attention.sliding_window = 0" },
		{ "gemma2", "gemma2.attn_logit_softcapping", GGUF_VT_FLOAT32, -1.0f, 0, "gemma2.attn_logit_softcapping = -1" },
		{ "gemma2", "gemma2.final_logit_softcapping", GGUF_VT_FLOAT32, NAN, 0, "gemma2.final_logit_softcapping" },
		{ "gemma2", "gemma2.final_logit_softcapping", GGUF_VT_STRING, 0, 0, "gemma2.final_logit_softcapping" },
		{ "gemma3", "gemma3.attention.sliding_window", -1, 0, 0, "gemma3.attention.sliding_window" },
		{ "gemma3", "gemma3.rope.scaling.factor", GGUF_VT_FLOAT32, INFINITY, 0, "gemma3.rope.scaling.factor" },
		{ "gemma3", "t:blk.1.post_ffw_norm.weight", -1, 0, 0, "blk.1.post_ffw_norm.weight" },
		{ "qwen3", "qwen3.attention.value_length", GGUF_VT_UINT32, 0, 32, "qwen3.attention.value_length = 32" },
		{ "qwen3", "qwen3.attention.key_length", GGUF_VT_UINT32, 0, 0x7fffffffu, "qwen3.attention.key_length" },
		{ "qwen3", "t:blk.0.attn_k_norm.weight", -1, 0, 0, "blk.0.attn_k_norm.weight" },
		{ "phi3", "phi3.rope.scaling.attn_factor", GGUF_VT_FLOAT32, 0.0f, 0, "phi3.rope.scaling.attn_factor = 0" },
		{ "phi3", "phi3.rope.scaling.original_context_length", -1, 0, 0, "original_context_length" },
		{ "phi3", "t:rope_factors_short.weight", -1, 0, 0, "rope_factors_short.weight" },
		{ "phi3", "t:blk.1.attn_qkv.weight", -1, 0, 0, "blk.1.attn_qkv.weight" },
		{ "phi3", "phi3.rope.freq_base", GGUF_VT_FLOAT32, -10000.0f, 0, "phi3.rope.freq_base" },
		{ "gemma2", "gemma2.block_count", GGUF_VT_UINT32, 0, 0x1fffffffu, "gemma2.block_count = 536870911" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct fixture f;
		struct gguf_file *g;
		struct model *m = NULL;
		struct dm_err e;
		const char *dst = tu_tmp_path("bad-arch.gguf");

		fixture_open(&f, cases[i].arch, GGUF_TYPE_F32);
		rewrite(f.path, dst, cases[i].key, cases[i].vtype, cases[i].f, cases[i].u);
		fixture_close(&f);
		if (gguf_open(&g, dst, &e))
			fail_msg("%s", e.msg);
		memset(&e, 0, sizeof e);
		if (model_bind(&m, g, &e) == 0)
			fail_msg("case %zu (%s): accepted", i, cases[i].key);
		assert_null(m);
		if (!strstr(e.msg, cases[i].want))
			fail_msg("case %zu: error '%s' does not name '%s'", i, e.msg, cases[i].want);
		gguf_close(g);
	}
	/* the rewrite itself keeps a file loadable: no change, same load */
	{
		struct fixture f;
		struct gguf_file *g;
		struct model *m;
		struct dm_err e;
		const char *dst = tu_tmp_path("same-arch.gguf");
		fixture_open(&f, "phi3", GGUF_TYPE_F32);
		rewrite(f.path, dst, "no.such.key", -1, 0, 0);
		fixture_close(&f);
		if (gguf_open(&g, dst, &e) || model_bind(&m, g, &e))
			fail_msg("%s", e.msg);
		model_free(m);
		gguf_close(g);
	}
}

/* Prompt-prefix reuse, every architecture: a context that holds an earlier
 * conversation (its first 8 tokens shared with the new prompt, then 3
 * that are not) keeps the 12, prefills only the rest, and then gives the
 * same logits (up to the matrix products' batch-size rounding) and the same
 * greedy continuation as a fresh context that prefills the whole prompt. */
static void test_prefix_reuse(void **state)
{
	static const char *const archs[] = { "llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3" };
	static const int32_t other[3] = { 5, 6, 7 };
	(void)state;
	for (size_t a = 0; a < sizeof archs / sizeof archs[0]; a++) {
		struct fixture f;
		struct model_ctx *fresh, *warm;
		struct model_ctx_params cp = { .n_ctx = 64, .n_batch = 64 };
		struct dm_err e;
		int32_t gf[8], gw[8], tok;
		float *lf, *lw;
		double mx = 0;
		int V;

		fixture_open(&f, archs[a], GGUF_TYPE_F32);
		V = f.m->hp.n_vocab;
		lf = malloc((size_t)V * sizeof *lf);
		lw = malloc((size_t)V * sizeof *lw);
		assert_int_equal(model_ctx_init(&fresh, f.m, &cp, &e), 0);
		assert_int_equal(model_ctx_init(&warm, f.m, &cp, &e), 0);
		assert_int_equal(model_decode(fresh, prompt, N_PROMPT, lf, false, &e), 0);
		/* the earlier conversation: 8 shared tokens, then 3 others */
		assert_int_equal(model_decode(warm, prompt, 8, NULL, false, &e), 0);
		assert_int_equal(model_decode(warm, other, 3, NULL, false, &e), 0);
		assert_int_equal(model_ctx_reuse(warm, prompt, N_PROMPT), 8);
		assert_int_equal(warm->n_past, 8);
		assert_int_equal(model_decode(warm, prompt + 8, N_PROMPT - 8, lw, false, &e), 0);
		for (int i = 0; i < V; i++)
			mx = fmax(mx, fabs((double)lf[i] - lw[i]));
		for (int s = 0; s < 8; s++) {
			gf[s] = argmax_f(lf, V);
			gw[s] = argmax_f(lw, V);
			tok = gf[s];
			assert_int_equal(model_decode(fresh, &tok, 1, lf, false, &e), 0);
			tok = gw[s];
			assert_int_equal(model_decode(warm, &tok, 1, lw, false, &e), 0);
		}
		print_message("      %s: reused 8 of %d prompt tokens, max |logit diff| %.2g, greedy %s\n", archs[a],
			      N_PROMPT, mx, memcmp(gf, gw, sizeof gf) ? "DIFFERS" : "identical");
		assert_true(mx < 1e-4);
		assert_memory_equal(gf, gw, sizeof gf);
		/* the whole prompt again: all but its last token come from the cache */
		assert_int_equal(model_ctx_reuse(warm, prompt, N_PROMPT), N_PROMPT - 1);
		assert_int_equal(model_ctx_reuse(warm, prompt, 1), 0);
		free(lf);
		free(lw);
		model_ctx_free(fresh);
		model_ctx_free(warm);
		fixture_close(&f);
	}
}

/* model_ctx_prefault makes the pages of the first positions resident and
 * no others; model_ctx_trim gives back the KV pages past n_past: every page
 * resident before, only those of the positions in use after (mincore), and
 * the positions kept still give the same logits. */
static void test_kv_trim(void **state)
{
	struct fixture f;
	struct model_ctx *c;
	struct model_ctx_params cp = { .n_ctx = 2048, .n_batch = 16 };
	struct dm_err e;
	const size_t pg = dm_mem_page_size();
	unsigned char *vec;
	size_t pages, resident = 0, keep;
	float *a, *b;
	int32_t tok = 77;
	(void)state;

	fixture_open(&f, "llama", GGUF_TYPE_F32);
	assert_int_equal(model_ctx_init(&c, f.m, &cp, &e), 0);
	pages = (c->kv_bytes + pg - 1) / pg;
	vec = malloc(pages);
	a = malloc((size_t)f.m->hp.n_vocab * sizeof *a);
	b = malloc((size_t)f.m->hp.n_vocab * sizeof *b);
	/* warm-up's prefault: the first 64 positions of every layer, no more */
	model_ctx_prefault(c, 64);
	assert_int_equal(mincore(c->k, c->kv_bytes, vec), 0);
	for (size_t i = 0; i < pages; i++)
		resident += vec[i] & 1;
	print_message("      KV cache: %zu of %zu pages resident after prefaulting 64 of %d positions\n", resident,
		      pages, c->n_ctx);
	assert_true(resident >= model_ctx_kv_bytes_for(c, 64) / pg);
	assert_true(resident <= model_ctx_kv_bytes_for(c, 64) / pg + 2 * (size_t)f.m->hp.n_layer);
	dm_mem_populate(c->k, c->kv_bytes);
	assert_int_equal(mincore(c->k, c->kv_bytes, vec), 0);
	resident = 0;
	for (size_t i = 0; i < pages; i++)
		resident += vec[i] & 1;
	assert_int_equal(resident, pages);
	assert_int_equal(model_decode(c, prompt, N_PROMPT, NULL, false, &e), 0);
	assert_int_equal(model_decode(c, &tok, 1, a, false, &e), 0);
	c->n_past = N_PROMPT; /* forget the last token again */
	model_ctx_trim(c);
	assert_int_equal(mincore(c->k, c->kv_bytes, vec), 0);
	resident = 0;
	for (size_t i = 0; i < pages; i++)
		resident += vec[i] & 1;
	/* the pages of N_PROMPT positions per region, plus a partial page at
	 * each region's end */
	keep = model_ctx_kv_bytes_for(c, N_PROMPT) / pg + 2 * (size_t)f.m->hp.n_layer;
	print_message("      KV cache: %zu pages resident before trim, %zu after (%d positions in use)\n", pages,
		      resident, N_PROMPT);
	assert_true(resident <= keep);
	assert_true(resident < pages / 8);
	assert_int_equal(model_decode(c, &tok, 1, b, false, &e), 0);
	assert_memory_equal(a, b, (size_t)f.m->hp.n_vocab * sizeof *a);
	free(vec);
	free(a);
	free(b);
	model_ctx_free(c);
	fixture_close(&f);
}

/* A context that reserves more than it starts with grows without a new
 * allocation: decode refuses to pass the context in force, and once
 * model_ctx_set_n_ctx raised it, 290 positions give the logits and greedy
 * tokens of a context made with n_ctx 300; only the pages of the positions
 * written are resident (mincore), and model_ctx_held_bytes says so.  A
 * LongRoPE model (phi3: original context 128) switches factor sets with the
 * context, forgetting the cache then, and matches a fresh context of that
 * size. */
static void test_ctx_grow(void **state)
{
	static const char *const archs[] = { "llama", "phi3" };
	(void)state;
	for (size_t a = 0; a < 2; a++) {
		struct fixture f;
		struct model_ctx *grow, *fresh;
		struct model_ctx_params cg = { .n_ctx = 32, .n_ctx_max = 2048, .n_batch = 16 };
		struct model_ctx_params cf = { .n_ctx = 300, .n_batch = 16 };
		struct dm_err e;
		const size_t pg = dm_mem_page_size();
		int32_t ids[290], gg[4], gf[4];
		unsigned char *vec;
		size_t pages, resident = 0;
		float *lg, *lf;
		double mx = 0;
		int V;

		fixture_open(&f, archs[a], GGUF_TYPE_F32);
		V = f.m->hp.n_vocab;
		for (int i = 0; i < 290; i++)
			ids[i] = (int32_t)((i * 37 + 11) % V);
		lg = malloc((size_t)V * sizeof *lg);
		lf = malloc((size_t)V * sizeof *lf);
		assert_int_equal(model_ctx_init(&grow, f.m, &cg, &e), 0);
		assert_int_equal(model_ctx_init(&fresh, f.m, &cf, &e), 0);
		assert_int_equal(grow->n_ctx, 32);
		assert_int_equal(grow->n_ctx_max, 2048);
		assert_int_equal(model_decode(grow, ids, 40, NULL, false, &e), DM_ENOSPC);
		assert_int_equal(model_ctx_set_n_ctx(grow, 0, &e), DM_EINVAL);
		assert_int_equal(model_ctx_set_n_ctx(grow, 2049, &e), DM_EINVAL);
		print_message("      %s: %s\n", archs[a], e.msg);
		assert_int_equal(model_decode(grow, ids, 10, NULL, false, &e), 0);
		assert_int_equal(model_ctx_set_n_ctx(grow, 100, &e), 0);
		assert_int_equal(grow->n_past, 10); /* the same factor set: the cache stays */
		assert_int_equal(model_ctx_set_n_ctx(grow, 300, &e), 0);
		/* phi3's original context is 128: 300 takes the long factors */
		assert_int_equal(grow->n_past, a == 1 ? 0 : 10);
		model_ctx_reset(grow);
		assert_int_equal(model_decode(grow, ids, 290, lg, false, &e), 0);
		assert_int_equal(model_decode(fresh, ids, 290, lf, false, &e), 0);
		for (int s = 0; s < 4; s++) {
			for (int i = 0; i < V; i++)
				mx = fmax(mx, fabs((double)lg[i] - lf[i]));
			gg[s] = argmax_f(lg, V);
			gf[s] = argmax_f(lf, V);
			if (s < 3) {
				assert_int_equal(model_decode(grow, &gg[s], 1, lg, false, &e), 0);
				assert_int_equal(model_decode(fresh, &gf[s], 1, lf, false, &e), 0);
			}
		}
		assert_true(mx < 1e-5);
		assert_memory_equal(gg, gf, sizeof gg);
		/* 293 positions written out of 2048 reserved */
		pages = (grow->kv_bytes + pg - 1) / pg;
		vec = malloc(pages);
		assert_int_equal(mincore(grow->k, grow->kv_bytes, vec), 0);
		for (size_t i = 0; i < pages; i++)
			resident += vec[i] & 1;
		print_message("      %s: grown to 300 of 2048 positions, max |logit diff| %.2g vs a context made with 300; "
			      "%zu of %zu KV pages resident\n", archs[a], mx, resident, pages);
		assert_true(resident <= model_ctx_kv_bytes_for(grow, 293) / pg + 2 * (size_t)f.m->hp.n_layer);
		assert_true(resident < pages / 4);
		assert_int_equal(model_ctx_held_bytes(grow), grow->scratch_bytes + model_ctx_kv_bytes_for(grow, 293));
		assert_int_equal(model_decode(grow, ids, 8, NULL, false, &e), DM_ENOSPC); /* 293 + 8 > 300 */
		free(vec);
		free(lg);
		free(lf);
		model_ctx_free(grow);
		model_ctx_free(fresh);
		fixture_close(&f);
	}
}

/* Saved prefixes: three conversations A, B, C of 41 positions (sharing
 * only their first token) with a bound that holds two copies.  B's prompt
 * saves A, C's saves B; B's next turn restores B (41 positions reused:
 * the same logits and greedy token as a fresh context's prefill of the
 * whole prompt) and saves C, which pushes out A, the least recently used;
 * A's next turn then finds nothing to reuse but its first token, and C's
 * next turn still restores C.  model_ctx_snap_drop gives all of it back. */
static void test_prefix_snapshots(void **state)
{
	struct fixture f;
	struct model_ctx *c, *fresh;
	struct model_ctx_params cp = { .n_ctx = 128, .n_batch = 64 };
	struct dm_err e;
	int32_t conv[3][46];
	float *lw, *lf;
	double mx = 0;
	size_t one;
	int V;
	(void)state;

	fixture_open(&f, "llama", GGUF_TYPE_F32);
	V = f.m->hp.n_vocab;
	for (int a = 0; a < 3; a++)
		for (int i = 0; i < 46; i++)
			conv[a][i] = i == 0 ? 1 : (int32_t)((i * 7 + a * 101 + 3) % (V - 2) + 2);
	lw = malloc((size_t)V * sizeof *lw);
	lf = malloc((size_t)V * sizeof *lf);
	assert_int_equal(model_ctx_init(&c, f.m, &cp, &e), 0);
	assert_int_equal(model_ctx_init(&fresh, f.m, &cp, &e), 0);
	/* room for two copies of 41 (or 46) positions, not three */
	one = model_ctx_snap_bytes_for(c, 41);
	model_ctx_set_snap_max(c, 2 * one + 2 * dm_mem_page_size());
	assert_true(model_ctx_snap_bytes_for(c, 46) + one <= c->snap_max);
	assert_true(3 * one > c->snap_max);
	for (int a = 0; a < 3; a++) {
		/* the first turns: 41 tokens each, nothing shared but the first */
		assert_int_equal(model_ctx_reuse(c, conv[a], 41), a == 0 ? 0 : 1);
		assert_int_equal(model_decode(c, conv[a] + c->n_past, 41 - c->n_past, NULL, false, &e), 0);
		assert_int_equal(c->n_snaps, a); /* the previous conversations */
	}
	/* B's next turn: B comes back, C is saved, A (least recently used) goes */
	assert_int_equal(model_ctx_reuse(c, conv[1], 46), 41);
	assert_int_equal(c->n_snaps, 2);
	assert_int_equal(model_decode(c, conv[1] + 41, 5, lw, false, &e), 0);
	assert_int_equal(model_decode(fresh, conv[1], 46, lf, false, &e), 0);
	for (int i = 0; i < V; i++)
		mx = fmax(mx, fabs((double)lw[i] - lf[i]));
	print_message("      B restored: 41 positions reused, max |logit diff| %.2g vs a fresh prefill; %d copies, %zu of %zu bytes\n",
		      mx, c->n_snaps, c->snap_bytes, c->snap_max);
	assert_true(mx < 1e-4);
	assert_int_equal(argmax_f(lw, V), argmax_f(lf, V));
	assert_true(c->snap_bytes <= c->snap_max);
	/* A was pushed out: only the shared first token */
	assert_int_equal(model_ctx_reuse(c, conv[0], 46), 1);
	assert_int_equal(model_decode(c, conv[0] + 1, 45, NULL, false, &e), 0);
	/* C was kept */
	assert_int_equal(model_ctx_reuse(c, conv[2], 46), 41);
	assert_true(c->snap_bytes <= c->snap_max);
	assert_int_equal(c->n_snaps, 2);
	assert_int_equal(model_ctx_held_bytes(c), c->scratch_bytes + model_ctx_kv_bytes_for(c, c->n_touched) + c->snap_bytes);
	one = c->snap_bytes;
	assert_true(one > 0);
	assert_int_equal(model_ctx_snap_drop(c), one);
	assert_int_equal(c->n_snaps, 0);
	assert_int_equal(c->snap_bytes, 0);
	free(lw);
	free(lf);
	model_ctx_free(c);
	model_ctx_free(fresh);
	fixture_close(&f);
}

static void test_llama_f32_vs_reference(void **state)
{
	(void)state;
	check_vs_reference("llama", GGUF_TYPE_F32, 1e-5);
}

static void test_qwen2_f32_vs_reference(void **state)
{
	(void)state;
	check_vs_reference("qwen2", GGUF_TYPE_F32, 1e-5);
}

/* Quantized weights: the reference uses the same (dequantized) weights with
 * float activations; the engine quantizes activations to 8 bits per value
 * (as ggml does), which alone gives a logits NMSE of ~1e-4 on this random
 * model whatever the weight type (measured: Q8_0 9.6e-5, Q6_K 2.1e-4, Q4_0
 * 1.3e-4, Q4_K 2.4e-4).  Bounds are 2.5-5x the measured values; F16/BF16
 * weights take float activations and stay at rounding level. */
static void test_quantized_vs_reference(void **state)
{
	static const struct { uint32_t type; double bound; } cases[] = {
		{ GGUF_TYPE_F16, 1e-5 }, { GGUF_TYPE_BF16, 1e-5 }, { GGUF_TYPE_Q8_0, 5e-4 },
		{ GGUF_TYPE_Q4_0, 5e-4 }, { GGUF_TYPE_Q4_K, 1e-3 }, { GGUF_TYPE_Q6_K, 1e-3 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		check_vs_reference("llama", cases[i].type, cases[i].bound);
}

/* Prefill of N tokens at once == N one-token decodes (within float
 * reordering), and 1 thread == 2 threads exactly. */
/* Decoding deep into a context, every architecture: a 290-token prompt
 * prefilled in batches of 64, then 6 tokens decoded one at a time, each
 * attending over three runs of cache rows that decoding computes apart and
 * merges (gemma2/gemma3: their sliding-window layers over the last 4
 * rows) — the decoded tokens' logits against the float64 reference
 * (NMSE < 1e-5 on F32 weights), and 1 thread == 2 threads exactly. */
static void test_long_context_decode(void **state)
{
	static const char *const archs[] = { "llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3" };
	enum { N = 296, P = 290, N_CTX = 320 };
	struct dm_pool *p1, *p2;
	struct dm_err e;
	(void)state;
	assert_int_equal(dm_pool_init(&p1, 1, &e), 0);
	assert_int_equal(dm_pool_init(&p2, 2, &e), 0);
	for (size_t a = 0; a < sizeof archs / sizeof archs[0]; a++) {
		struct fixture f;
		struct model_ctx *c[2];
		struct model_ctx_params cp = { .n_ctx = N_CTX, .n_batch = 64 };
		int32_t tok[N];
		float *lg[2];
		double *ref, err;
		int V;

		fixture_open(&f, archs[a], GGUF_TYPE_F32);
		V = f.m->hp.n_vocab;
		for (int i = 0; i < N; i++)
			tok[i] = (int32_t)((i * 37 + 11) % V);
		for (int k = 0; k < 2; k++) {
			cp.pool = k ? p2 : p1;
			assert_int_equal(model_ctx_init(&c[k], f.m, &cp, &e), 0);
			lg[k] = malloc((size_t)(N - P) * (size_t)V * sizeof *lg[k]);
			if (model_decode(c[k], tok, P, NULL, false, &e))
				fail_msg("%s", e.msg);
			for (int i = P; i < N; i++)
				if (model_decode(c[k], tok + i, 1, lg[k] + (size_t)(i - P) * (size_t)V, false, &e))
					fail_msg("%s", e.msg);
		}
		assert_memory_equal(lg[0], lg[1], (size_t)(N - P) * (size_t)V * sizeof(float));
		ref = ref_forward(f.m, tok, N, N_CTX);
		err = nmse(lg[0], ref + (size_t)P * (size_t)V, (size_t)(N - P) * (size_t)V);
		print_message("      %s: decoding at positions %d..%d, NMSE %.3g\n", archs[a], P, N - 1, err);
		assert_true(err < 1e-5);
		free(ref);
		for (int k = 0; k < 2; k++) {
			free(lg[k]);
			model_ctx_free(c[k]);
		}
		fixture_close(&f);
	}
	dm_pool_free(p1);
	dm_pool_free(p2);
}

static void test_prefill_vs_decode_and_threads(void **state)
{
	struct fixture f;
	struct model_ctx *c1, *c2, *c3;
	struct dm_pool *p1, *p2;
	struct model_ctx_params cp = { .n_ctx = 64, .n_batch = 8 };
	struct dm_err e;
	float *a, *b, *d;
	int V;
	(void)state;

	fixture_open(&f, "llama", GGUF_TYPE_Q4_0);
	V = f.m->hp.n_vocab;
	a = malloc((size_t)V * N_PROMPT * sizeof *a);
	b = malloc((size_t)V * N_PROMPT * sizeof *b);
	d = malloc((size_t)V * N_PROMPT * sizeof *d);
	assert_int_equal(dm_pool_init(&p1, 1, &e), 0);
	assert_int_equal(dm_pool_init(&p2, 2, &e), 0);
	cp.pool = p1;
	assert_int_equal(model_ctx_init(&c1, f.m, &cp, &e), 0);
	cp.pool = p2;
	assert_int_equal(model_ctx_init(&c2, f.m, &cp, &e), 0);
	assert_int_equal(model_ctx_init(&c3, f.m, &cp, &e), 0);
	assert_int_equal(model_decode(c1, prompt, N_PROMPT, a, true, &e), 0);
	assert_int_equal(model_decode(c2, prompt, N_PROMPT, b, true, &e), 0);
	assert_memory_equal(a, b, (size_t)V * N_PROMPT * sizeof *a);
	for (int t = 0; t < N_PROMPT; t++)
		assert_int_equal(model_decode(c3, prompt + t, 1, d + (size_t)t * (size_t)V, false, &e), 0);
	for (size_t i = 0; i < (size_t)V * N_PROMPT; i++)
		if (fabsf(a[i] - d[i]) > 1e-4f + 1e-3f * fabsf(a[i]))
			fail_msg("logit %zu: prefill %g vs decode %g", i, a[i], d[i]);
	model_ctx_free(c1);
	model_ctx_free(c2);
	model_ctx_free(c3);
	dm_pool_free(p1);
	dm_pool_free(p2);
	free(a); free(b); free(d);
	fixture_close(&f);
}

static void test_context_full_and_bad_tokens(void **state)
{
	struct fixture f;
	struct model_ctx *c;
	struct model_ctx_params cp = { .n_ctx = 8, .n_batch = 4 };
	struct dm_err e;
	int32_t bad[2] = { 1, 100000 };
	(void)state;
	fixture_open(&f, "llama", GGUF_TYPE_F32);
	assert_int_equal(model_ctx_init(&c, f.m, &cp, &e), 0);
	assert_int_equal(model_decode(c, prompt, 6, NULL, false, &e), 0);
	assert_int_equal(model_decode(c, prompt, 3, NULL, false, &e), DM_ENOSPC);
	assert_string_equal(e.msg, "context full: 6 + 3 tokens > n_ctx 8");
	assert_int_equal(c->n_past, 6);
	assert_int_equal(model_decode(c, bad, 2, NULL, false, &e), DM_EINVAL);
	assert_non_null(strstr(e.msg, "token id 100000"));
	assert_int_equal(model_ctx_bytes(f.m, &cp), c->kv_bytes + c->scratch_bytes);
	model_ctx_free(c);
	fixture_close(&f);
}

static void test_embeddings(void **state)
{
	struct fixture f;
	struct model_ctx *c;
	struct model_ctx_params cp = { .n_ctx = 32 };
	struct dm_err e;
	float a[256], b[256];
	double n2 = 0;
	(void)state;
	fixture_open(&f, "llama", GGUF_TYPE_F32);
	assert_int_equal(model_ctx_init(&c, f.m, &cp, &e), 0);
	assert_int_equal(model_embed(c, prompt, 5, true, a, &e), 0);
	assert_int_equal(model_embed(c, prompt, 5, true, b, &e), 0);
	assert_memory_equal(a, b, sizeof a);
	for (int i = 0; i < 256; i++)
		n2 += (double)a[i] * a[i];
	assert_true(fabs(n2 - 1.0) < 1e-4);
	assert_int_equal(model_embed(c, prompt, 5, false, b, &e), 0);
	assert_true(memcmp(a, b, sizeof a) != 0);
	model_ctx_free(c);
	fixture_close(&f);
}

/* ---- sampler ---- */

static void test_sampler_greedy_is_argmax(void **state)
{
	struct sampler *s;
	struct sample_params p;
	float lg[50];
	(void)state;
	sample_params_default(&p);
	p.temp = 0;
	assert_int_equal(sampler_init(&s, 50, &p, NULL), 0);
	for (int k = 0; k < 20; k++) {
		int best = (k * 7) % 50;
		for (int i = 0; i < 50; i++)
			lg[i] = (float)sin(i * 1.3 + k);
		lg[best] = 5.0f;
		assert_int_equal(sampler_sample(s, lg, NULL, 0), best);
	}
	sampler_free(s);
}

static void test_sampler_seeded_reproducible(void **state)
{
	struct sampler *a, *b;
	struct sample_params p;
	float lg[100];
	int diff = 0;
	(void)state;
	sample_params_default(&p);
	p.temp = 1.0f;
	p.top_k = 0;
	p.top_p = 1.0f;
	p.min_p = 0;
	p.seed = 1234;
	for (int i = 0; i < 100; i++)
		lg[i] = (float)(i % 10) * 0.1f;
	assert_int_equal(sampler_init(&a, 100, &p, NULL), 0);
	assert_int_equal(sampler_init(&b, 100, &p, NULL), 0);
	for (int k = 0; k < 200; k++)
		assert_int_equal(sampler_sample(a, lg, NULL, 0), sampler_sample(b, lg, NULL, 0));
	sampler_reseed(b, 99);
	for (int k = 0; k < 200; k++)
		diff += sampler_sample(a, lg, NULL, 0) != sampler_sample(b, lg, NULL, 0);
	assert_true(diff > 0);
	sampler_free(a);
	sampler_free(b);
}

/* Hand-made distribution: p = 0.5, 0.25, 0.125, 0.0625, 0.0625 (ids 4,1,3,0,2). */
static void make_cands(struct sample_cand *c)
{
	const int ids[5] = { 4, 1, 3, 0, 2 };
	const double p[5] = { 0.5, 0.25, 0.125, 0.0625, 0.0625 };
	for (int i = 0; i < 5; i++) {
		c[i].id = ids[4 - i];
		c[i].logit = (float)log(p[4 - i]);
	}
}

static void test_sampler_filters(void **state)
{
	struct sample_cand c[5];
	size_t n;
	(void)state;
	make_cands(c);
	n = sample_top_k(c, 5, 2);
	assert_int_equal(n, 2);
	assert_int_equal(c[0].id, 4);
	assert_int_equal(c[1].id, 1);
	make_cands(c);
	assert_int_equal(sample_top_p(c, 5, 0.74f), 2); /* 0.5 + 0.25 reaches 0.74 */
	make_cands(c);
	assert_int_equal(sample_top_p(c, 5, 0.76f), 3);
	make_cands(c);
	assert_int_equal(sample_top_p(c, 5, 0.3f), 1);
	make_cands(c);
	assert_int_equal(sample_min_p(c, 5, 0.24f), 3); /* p >= 0.12 */
	make_cands(c);
	assert_int_equal(sample_min_p(c, 5, 0.26f), 2);
	make_cands(c);
	assert_int_equal(sample_min_p(c, 5, 0.9f), 1);
	/* ties at the cut keep the lower id first */
	make_cands(c);
	sample_sort_softmax(c, 5);
	assert_int_equal(c[3].id, 0);
	assert_int_equal(c[4].id, 2);
}

static void test_sampler_penalties(void **state)
{
	struct sampler *s;
	struct sample_params p;
	float lg[4] = { 2.0f, 1.9f, -1.0f, 0.5f };
	int32_t hist[3] = { 0, 0, 2 };
	(void)state;
	sample_params_default(&p);
	p.temp = 0;
	p.repeat_penalty = 2.0f; /* 2.0 -> 1.0 for id 0: id 1 wins */
	assert_int_equal(sampler_init(&s, 4, &p, NULL), 0);
	assert_int_equal(sampler_sample(s, lg, hist, 3), 1);
	assert_int_equal(sampler_sample(s, lg, NULL, 0), 0);
	sampler_free(s);
	sample_params_default(&p);
	p.temp = 0;
	p.freq_penalty = 0.06f; /* id 0 seen twice: 2.0 - 0.12 < 1.9 */
	assert_int_equal(sampler_init(&s, 4, &p, NULL), 0);
	assert_int_equal(sampler_sample(s, lg, hist, 3), 1);
	sampler_free(s);
}

/* ---- the reference engine's outputs on a real model ---- */

static int32_t *read_ids(const char *path, size_t *n)
{
	size_t len;
	char *txt = tu_read_file(path, &len), *p;
	int32_t *ids;
	if (!txt)
		return NULL;
	ids = malloc((len / 2 + 1) * sizeof *ids);
	*n = 0;
	p = txt;
	for (;;) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		ids[(*n)++] = (int32_t)v;
		p = end;
	}
	free(txt);
	return ids;
}

static void test_golden_greedy(void **state)
{
	static const char *files[] = { "stories260K.gguf", "stories260K-q8_0.gguf", "stories260K-q4_0.gguf" };
	const char *gd = tu_golden_dir();
	char path[1024];
	int exact = 0, total = 0;
	(void)state;
	if (!gd)
		skip();
	for (size_t fi = 0; fi < 3; fi++) {
		struct gguf_file *g;
		struct model *m;
		struct model_ctx *c;
		struct model_ctx_params cp = { .n_ctx = 128 };
		struct dm_err e;
		float *lg;
		snprintf(path, sizeof path, "%s/stories260K/%s", gd, files[fi]);
		assert_int_equal(gguf_open(&g, path, &e), 0);
		if (model_bind(&m, g, &e))
			fail_msg("%s", e.msg);
		assert_int_equal(model_ctx_init(&c, m, &cp, &e), 0);
		lg = malloc((size_t)m->hp.n_vocab * sizeof *lg);
		for (int pn = 1; pn <= 4; pn++) {
			size_t np, ne;
			int32_t *pr, *exp_ids, id;
			int match = 0;
			snprintf(path, sizeof path, "%s/stories260K/expected/prompt.%d.ids", gd, pn);
			pr = read_ids(path, &np);
			snprintf(path, sizeof path, "%s/stories260K/expected/%s.%d.ids", gd, files[fi], pn);
			exp_ids = read_ids(path, &ne);
			assert_non_null(pr);
			assert_non_null(exp_ids);
			model_ctx_reset(c);
			assert_int_equal(model_decode(c, pr, (int32_t)np, lg, false, &e), 0);
			for (size_t k = 0; k < ne; k++) {
				id = 0;
				for (int32_t i = 1; i < m->hp.n_vocab; i++)
					if (lg[i] > lg[id])
						id = i;
				if (id != exp_ids[k])
					break;
				match++;
				assert_int_equal(model_decode(c, &id, 1, lg, false, &e), 0);
			}
			print_message("      %s prompt %d: %d/%zu greedy tokens equal\n", files[fi], pn, match, ne);
			/* F32: the whole run.  Quantized files: llama.cpp and we
			 * quantize activations with different roundings (error of
			 * equal size, different realisation: see the kquant logits
			 * test), so runs part at the first close call; the first
			 * tokens must still agree. */
			if (fi == 0)
				exact += match == (int)ne;
			else
				exact += match >= 5;
			total++;
			free(pr);
			free(exp_ids);
		}
		free(lg);
		model_ctx_free(c);
		model_free(m);
		gguf_close(g);
	}
	print_message("      greedy: %d of %d runs as expected\n", exact, total);
	assert_int_equal(exact, total);
}

/* Perplexity of story.txt (ids from the reference tokenizer) with n_ctx 128:
 * the reference engine's figures, on the best ISA here.  The F16 file runs
 * twice where the CPU has AVX512_BF16: with float products (AVX512), as
 * close to the reference as the F32 file, and with the bf16 products of
 * its prompt batches (kern_matmul_eps), allowed 0.04 % (measured: 0.015 %). */
static void test_golden_perplexity(void **state)
{
	static const struct { const char *file; double ppl, tol; int isa; } cases[] = {
		{ "stories260K/stories260K.gguf", 3.8236, 0.0005, -1 },
		{ "stories260K/stories260K-q8_0.gguf", 3.8123, 0.01, -1 },
		{ "stories260K/stories260K-q4_0.gguf", 4.1106, 0.02, -1 },
		{ "kquant/kquant-F16.gguf", 534.2528, 0.05, KERN_ISA_AVX512 },
		{ "kquant/kquant-F16.gguf", 534.2528, 0.2, KERN_ISA_AVX512BF16 },
		{ "kquant/kquant-Q8_0.gguf", 534.3118, 0.5, -1 },
		{ "kquant/kquant-Q4_K_M.gguf", 540.2451, 1.0, -1 },
	};
	const char *gd = tu_golden_dir();
	char path[1024];
	size_t n;
	int32_t *ids;
	(void)state;
	if (!gd)
		skip();
	snprintf(path, sizeof path, "%s/stories260K/expected/story.ids", gd);
	ids = read_ids(path, &n);
	assert_non_null(ids);
	assert_int_equal(n, 954);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct gguf_file *g;
		struct model *m;
		struct model_ctx *c;
		struct model_ctx_params cp = { .n_ctx = 128 };
		struct ppl_result r;
		struct dm_err e;
		if (cases[i].isa >= 0) {
			/* float products: AVX512 or the best below it; the bf16 run
			 * only where the CPU has it */
			if (cases[i].isa == KERN_ISA_AVX512BF16 && kern_isa_best() < KERN_ISA_AVX512BF16)
				continue;
			cp.isa = (int)kern_isa_best() < cases[i].isa ? kern_isa_best() : (enum kern_isa)cases[i].isa;
			cp.isa_set = true;
		}
		snprintf(path, sizeof path, "%s/%s", gd, cases[i].file);
		assert_int_equal(gguf_open(&g, path, &e), 0);
		assert_int_equal(model_bind(&m, g, &e), 0);
		assert_int_equal(model_ctx_init(&c, m, &cp, &e), 0);
		assert_int_equal(model_perplexity(c, ids, n, 1, NULL, NULL, &r, &e), 0);
		print_message("      %s%s%s: PPL = %.4f +/- %.5f (reference %.4f)\n", cases[i].file,
			      cases[i].isa >= 0 ? " on " : "",
			      cases[i].isa >= 0 ? kern_isa_name(cp.isa) : "", r.ppl,
			      r.ppl_err, cases[i].ppl);
		assert_int_equal(r.n_chunks, 7);
		assert_int_equal(r.n_scored, 441);
		assert_true(fabs(r.ppl - cases[i].ppl) <= cases[i].tol);
		model_ctx_free(c);
		model_free(m);
		gguf_close(g);
	}
	free(ids);
}

static float *read_f32(const char *path, size_t n)
{
	size_t len;
	float *p = tu_read_file(path, &len);
	if (p && len != n * sizeof(float)) {
		free(p);
		return NULL;
	}
	return p;
}

/* Logits of "Once upon a time" at every position on the tiny model in every
 * type.  Against the same weights run in F32 by the reference engine
 * (deqf32): F16/BF16 weights with float activations agree to rounding;
 * quantized types carry the 8-bit activation error, measured at NMSE
 * 1e-4..2.2e-4 and max |diff| 0.013..0.021 — the same size as the reference
 * engine's own error against deqf32 (its README: 1.3e-2..2.1e-2). */
static void test_golden_kquant_logits(void **state)
{
	static const char *types[] = { "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
				       "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q4_K_M" };
	static const int32_t ids[5] = { 1, 403, 407, 261, 378 };
	const char *gd = tu_golden_dir();
	char path[1024];
	(void)state;
	if (!gd)
		skip();
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		struct gguf_file *g;
		struct model *m;
		struct model_ctx *c;
		struct model_ctx_params cp = { .n_ctx = 16 };
		struct dm_err e;
		float *lg, *ref;
		double num = 0, den = 0, mx = 0, nm;
		bool half = i < 2;
		snprintf(path, sizeof path, "%s/kquant/kquant-%s.gguf", gd, types[i]);
		assert_int_equal(gguf_open(&g, path, &e), 0);
		assert_int_equal(model_bind(&m, g, &e), 0);
		assert_int_equal(model_ctx_init(&c, m, &cp, &e), 0);
		lg = malloc(5 * 512 * sizeof *lg);
		assert_int_equal(model_decode(c, ids, 5, lg, true, &e), 0);
		snprintf(path, sizeof path, "%s/kquant/expected/kquant-%s.gguf.deqf32.logits.f32", gd, types[i]);
		ref = read_f32(path, 5 * 512);
		assert_non_null(ref);
		for (int k = 0; k < 5 * 512; k++) {
			double d = (double)lg[k] - ref[k];
			num += d * d;
			den += (double)ref[k] * ref[k];
			mx = fabs(d) > mx ? fabs(d) : mx;
		}
		nm = num / den;
		print_message("      kquant-%s: NMSE %.3g, max |diff| %.3g vs the reference engine's F32 run\n",
			      types[i], nm, mx);
		assert_true(nm < (half ? 1e-6 : 5e-4));
		assert_true(mx < (half ? 2e-3 : 0.04));
		free(ref);
		free(lg);
		model_ctx_free(c);
		model_free(m);
		gguf_close(g);
	}
}

/* `dormant run` as a user runs it: stdout carries exactly the generated
 * text; with the real model it is the reference engine's greedy text. */
static void test_cli_run(void **state)
{
	const char *gd = tu_golden_dir();
	const char *synth = tu_tmp_path("run.gguf");
	char *out, *want;
	size_t n;
	int st;
	(void)state;
	assert_int_equal(tu_system("%s synth --preset tiny --type Q8_0 -o %s", tu_dormant(), synth), 0);
	out = tu_capture(&st, "%s run %s 'hello world' -n 8 --seed 7 2>/dev/null", tu_dormant(), synth);
	assert_int_equal(st, 0);
	assert_true(strlen(out) > 1);
	free(out);
	out = tu_capture(&st, "%s run %s hi --temp -1 2>&1", tu_dormant(), synth);
	assert_int_equal(st, 2);
	assert_non_null(strstr(out, "--temp: '-1' is not a number between 0 and 100"));
	free(out);
	out = tu_capture(&st, "%s run /nonexistent.gguf hi 2>&1", tu_dormant());
	assert_int_equal(st, 1);
	assert_non_null(strstr(out, "dormant: /nonexistent.gguf: No such file or directory"));
	free(out);
	if (!gd)
		skip();
	for (int p = 1; p <= 4; p++) {
		char path[1024], ptxt[256];
		FILE *f;
		snprintf(path, sizeof path, "%s/stories260K/prompts.txt", gd);
		f = fopen(path, "r");
		assert_non_null(f);
		for (int k = 0; k < p; k++)
			assert_non_null(fgets(ptxt, sizeof ptxt, f));
		fclose(f);
		ptxt[strcspn(ptxt, "\n")] = '\0';
		snprintf(path, sizeof path, "%s/stories260K/expected/stories260K.gguf.%d.txt", gd, p);
		want = tu_read_file(path, &n);
		assert_non_null(want);
		out = tu_capture(&st, "%s run %s/stories260K/stories260K.gguf \"%s\" -n 96 --temp 0",
				 tu_dormant(), gd, ptxt);
		assert_int_equal(st, 0);
		assert_int_equal(strlen(out), n + 1);
		assert_memory_equal(out, want, n);
		assert_int_equal(out[n], '\n');
		free(out);
		free(want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_llama_f32_vs_reference),
		cmocka_unit_test(test_qwen2_f32_vs_reference),
		cmocka_unit_test(test_archs_vs_reference),
		cmocka_unit_test(test_arch_metadata_errors),
		cmocka_unit_test(test_prefix_reuse),
		cmocka_unit_test(test_kv_trim),
		cmocka_unit_test(test_ctx_grow),
		cmocka_unit_test(test_prefix_snapshots),
		cmocka_unit_test(test_quantized_vs_reference),
		cmocka_unit_test(test_prefill_vs_decode_and_threads),
		cmocka_unit_test(test_long_context_decode),
		cmocka_unit_test(test_context_full_and_bad_tokens),
		cmocka_unit_test(test_embeddings),
		cmocka_unit_test(test_sampler_greedy_is_argmax),
		cmocka_unit_test(test_sampler_seeded_reproducible),
		cmocka_unit_test(test_sampler_filters),
		cmocka_unit_test(test_sampler_penalties),
		cmocka_unit_test(test_golden_greedy),
		cmocka_unit_test(test_golden_perplexity),
		cmocka_unit_test(test_golden_kquant_logits),
		cmocka_unit_test(test_synth_q4_k_m),
		cmocka_unit_test(test_cli_run),
	};
	return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}

/*
 * model/model — architecture binding and context (KV cache + scratch)
 * allocation.  See model.h for ownership and shapes.
 */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/pool.h"

static int key_u32(const struct gguf_file *g, const char *arch, const char *suffix, bool required,
		   uint32_t def, uint32_t *out, struct dm_err *err)
{
	char key[128];
	int rc;

	snprintf(key, sizeof key, "%s.%s", arch, suffix);
	rc = gguf_get_u32(g, key, out, err);
	if (rc == DM_ENOTFOUND && !required) {
		*out = def;
		return 0;
	}
	return rc;
}

/* A float key that must be finite and > 0 when present ("≥ 0" with
 * zero_ok); absent → def.  *present tells which (may be NULL). */
static int key_pos_f32(const struct gguf_file *g, const char *arch, const char *suffix, float def,
		       bool zero_ok, float *out, bool *present, struct dm_err *err)
{
	char key[128];
	int rc;

	snprintf(key, sizeof key, "%s.%s", arch, suffix);
	rc = gguf_get_f32(g, key, out, err);
	if (present)
		*present = rc == 0;
	if (rc == DM_ENOTFOUND) {
		*out = def;
		return 0;
	}
	if (rc)
		return rc;
	if (!isfinite(*out) || *out < 0.0f || (*out == 0.0f && !zero_ok))
		return dm_err_set(err, DM_EFORMAT, "%s: %s = %g is out of range (expected %s)", g->name,
				  key, (double)*out, zero_ok ? ">= 0" : "> 0");
	return 0;
}

/*
 * The architectures, one row each: everything an architecture adds to the
 * llama decoder, as data the binding turns into per-layer fields.  Read the
 * columns as "this file has / does": the forward pass never asks which
 * architecture it runs.
 */
enum swa_rule {
	SWA_NONE,   /* every layer sees the whole context */
	SWA_ALL,    /* every layer is windowed when the file sets a window (phi3) */
	SWA_PERIOD, /* layer l is windowed iff l % period < period − 1 (gemma) */
};

static const struct arch_desc {
	const char *name;
	enum model_arch arch;
	enum kern_rope_mode rope;
	enum model_act act;
	bool qkv_bias;       /* attn_q/k/v.bias (required) */
	bool qk_norm;        /* attn_q_norm / attn_k_norm (required) */
	bool post_norms;     /* post_attention_norm / post_ffw_norm (required) */
	bool embd_scale;     /* x = embedding · sqrtf(n_embd) */
	bool fused_qkv;      /* attn_qkv instead of attn_q/k/v */
	bool fused_gate_up;  /* ffn_up holds gate (first n_ff rows) and up */
	enum swa_rule swa;
	int32_t swa_period;
	int32_t swa_default; /* window when attention.sliding_window is absent; -1: required */
	bool local_rope_10k; /* windowed layers: RoPE base 10000, no scaling */
	float attn_softcap_default, final_softcap_default; /* keys absent; 0: none */
	int32_t big_n_layer; /* a file of this depth scales q by 1/√(n_embd/n_head) */
	bool encoder;        /* bidirectional, post-LayerNorm (encode.c; the columns
			      * above then read: bias = bert's biases everywhere,
			      * fqkv = nomic's fused QKV, act GELU = ungated FFN) */
} arch_table[] = {
	/* name         arch                   rope            act             bias   qknorm post   escale fqkv   fgu    swa         per win  l10k   capA   capF   big enc */
	{ "llama",      MODEL_ARCH_LLAMA,      KERN_ROPE_NORM, MODEL_ACT_SILU, false, false, false, false, false, false, SWA_NONE,   0, 0,    false, 0,     0,     0,  false },
	{ "qwen2",      MODEL_ARCH_QWEN2,      KERN_ROPE_NEOX, MODEL_ACT_SILU, true,  false, false, false, false, false, SWA_NONE,   0, 0,    false, 0,     0,     0,  false },
	{ "qwen3",      MODEL_ARCH_QWEN3,      KERN_ROPE_NEOX, MODEL_ACT_SILU, false, true,  false, false, false, false, SWA_NONE,   0, 0,    false, 0,     0,     0,  false },
	{ "gemma2",     MODEL_ARCH_GEMMA2,     KERN_ROPE_NEOX, MODEL_ACT_GELU, false, false, true,  true,  false, false, SWA_PERIOD, 2, 4096, false, 50.0f, 30.0f, 46, false },
	{ "gemma3",     MODEL_ARCH_GEMMA3,     KERN_ROPE_NEOX, MODEL_ACT_GELU, false, true,  true,  true,  false, false, SWA_PERIOD, 6, -1,   true,  0,     0,     62, false },
	{ "phi3",       MODEL_ARCH_PHI3,       KERN_ROPE_NEOX, MODEL_ACT_SILU, false, false, false, false, true,  true,  SWA_ALL,    0, 0,    false, 0,     0,     0,  false },
	{ "bert",       MODEL_ARCH_BERT,       KERN_ROPE_NEOX, MODEL_ACT_GELU, true,  false, false, false, false, false, SWA_NONE,   0, 0,    false, 0,     0,     0,  true },
	{ "nomic-bert", MODEL_ARCH_NOMIC_BERT, KERN_ROPE_NEOX, MODEL_ACT_SILU, false, false, false, false, true,  false, SWA_NONE,   0, 0,    false, 0,     0,     0,  true },
};

static const struct arch_desc *arch_find(const char *name)
{
	for (size_t i = 0; i < sizeof arch_table / sizeof arch_table[0]; i++)
		if (!strcmp(arch_table[i].name, name))
			return &arch_table[i];
	return NULL;
}

static int read_hparams(const struct gguf_file *g, const struct arch_desc **desc,
			struct model_hparams *hp, struct dm_err *err)
{
	char scaling[32] = "";
	uint32_t v;
	int rc;
	const char *a;
	const struct arch_desc *d;
	bool present;

	memset(hp, 0, sizeof *hp);
	if ((rc = gguf_get_str_buf(g, "general.architecture", hp->arch_name, sizeof hp->arch_name, err)))
		return rc;
	a = hp->arch_name;
	if (!(d = arch_find(a)))
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "%s: unsupported architecture '%s' (supported: llama, qwen2, qwen3, gemma2, gemma3, phi3, bert, nomic-bert)",
				  g->name, a);
	*desc = d;
	hp->arch = d->arch;
	hp->rope_mode = d->rope;
	hp->ffn_act = d->act;
#define U32(suffix, req, def, field)                                              \
	do {                                                                      \
		if ((rc = key_u32(g, a, suffix, req, def, &v, err)))              \
			return rc;                                                \
		if (v > (uint32_t)INT32_MAX / 4)                                  \
			return dm_err_set(err, DM_EFORMAT, "%s: %s.%s = %u is out of range", \
					  g->name, a, suffix, v);                 \
		hp->field = (int32_t)v;                                           \
	} while (0)
	U32("context_length", true, 0, n_ctx_train);
	U32("embedding_length", true, 0, n_embd);
	U32("block_count", true, 0, n_layer);
	U32("feed_forward_length", true, 0, n_ff);
	U32("attention.head_count", true, 0, n_head);
	U32("attention.head_count_kv", false, (uint32_t)hp->n_head, n_head_kv);
	/* every layer holds several tensors: a block count beyond the file's
	 * tensor count is a lie, refused before anything is sized by it */
	if ((uint64_t)hp->n_layer > g->n_tensors)
		return dm_err_set(err, DM_EFORMAT, "%s: %s.block_count = %d, but the file holds only %llu tensors",
				  g->name, a, hp->n_layer, (unsigned long long)g->n_tensors);
	if (hp->n_head < 1 || hp->n_embd < 1 || hp->n_layer < 1 || hp->n_ff < 1 || hp->n_ctx_train < 1)
		return dm_err_set(err, DM_EFORMAT, "%s: zero-sized hyper-parameter (embd %d, layers %d, heads %d, ff %d, ctx %d)",
				  g->name, hp->n_embd, hp->n_layer, hp->n_head, hp->n_ff, hp->n_ctx_train);
	U32("attention.key_length", false, (uint32_t)(hp->n_embd / hp->n_head), head_dim);
	if ((rc = key_u32(g, a, "attention.value_length", false, (uint32_t)hp->head_dim, &v, err)))
		return rc;
	if (v != (uint32_t)hp->head_dim)
		return dm_err_set(err, DM_EUNSUPPORTED, "%s: %s.attention.value_length = %u differs from key_length %d (not supported)",
				  g->name, a, v, hp->head_dim);
	U32("rope.dimension_count", false, (uint32_t)hp->head_dim, n_rot);
	U32("rope.scaling.original_context_length", false, 0, n_ctx_orig);
	U32("attention.sliding_window", d->swa_default < 0, (uint32_t)(d->swa_default > 0 ? d->swa_default : 0),
	    n_swa);
#undef U32
	if (d->swa == SWA_NONE)
		hp->n_swa = 0; /* a window key on an architecture that has none is ignored, as the reference does */
	else if (d->swa == SWA_PERIOD && hp->n_swa < 1)
		return dm_err_set(err, DM_EFORMAT, "%s: %s.attention.sliding_window = %d is out of range (expected >= 1)",
				  g->name, a, hp->n_swa);
	if (hp->n_head_kv < 1 || hp->n_head % hp->n_head_kv != 0)
		return dm_err_set(err, DM_EFORMAT, "%s: %d heads are not a multiple of %d KV heads",
				  g->name, hp->n_head, hp->n_head_kv);
	if (hp->head_dim < 2 || hp->head_dim % 2 || hp->n_rot > hp->head_dim || hp->n_rot % 2 ||
	    hp->n_rot < 2 || hp->head_dim > 1024)
		return dm_err_set(err, DM_EFORMAT, "%s: head size %d / rotary dims %d are not usable",
				  g->name, hp->head_dim, hp->n_rot);
	hp->encoder = d->encoder;
	if (d->encoder) {
		if ((rc = key_u32(g, a, "pooling_type", false, MODEL_POOL_MEAN, &v, err)))
			return rc;
		if (v > MODEL_POOL_RANK)
			return dm_err_set(err, DM_EUNSUPPORTED, "%s: %s.pooling_type = %u is not supported (0-4)",
					  g->name, a, v);
		hp->pooling = (enum model_pooling)v;
	}
	if ((rc = key_pos_f32(g, a, d->encoder ? "attention.layer_norm_epsilon" : "attention.layer_norm_rms_epsilon",
			      d->encoder ? 1e-12f : 1e-5f, true, &hp->rms_eps, NULL, err)) ||
	    (rc = key_pos_f32(g, a, "rope.freq_base", 10000.0f, false, &hp->rope_base, NULL, err)) ||
	    (rc = key_pos_f32(g, a, "rope.scaling.attn_factor", 1.0f, false, &hp->rope_attn_factor, NULL, err)) ||
	    (rc = key_pos_f32(g, a, "attn_logit_softcapping", d->attn_softcap_default, false,
			      &hp->attn_softcap, &present, err)))
		return rc;
	if (d->arch != MODEL_ARCH_GEMMA2)
		hp->attn_softcap = 0; /* only gemma2 caps attention logits (gemma3 files may carry the key) */
	if ((rc = key_pos_f32(g, a, "final_logit_softcapping", d->final_softcap_default, false,
			      &hp->final_softcap, &present, err)))
		return rc;
	hp->rope_scale = 1.0f;
	{
		char key[128];
		float factor = 0;
		snprintf(key, sizeof key, "%s.rope.scaling.type", a);
		rc = gguf_get_str_buf(g, key, scaling, sizeof scaling, err);
		if (rc && rc != DM_ENOTFOUND)
			return rc;
		if (rc == 0 && strcmp(scaling, "none") != 0 && strcmp(scaling, "linear") != 0 &&
		    !(d->arch == MODEL_ARCH_LLAMA && !strcmp(scaling, "llama3")))
			return dm_err_set(err, DM_EUNSUPPORTED, "%s: rope scaling '%s' is not supported (none, linear)",
					  g->name, scaling);
		if ((rc = key_pos_f32(g, a, "rope.scaling.factor", 0.0f, true, &factor, NULL, err)))
			return rc;
		if (factor == 0.0f && (rc = key_pos_f32(g, a, "rope.scale_linear", 0.0f, true, &factor, NULL, err)))
			return rc;
		/* llama3 scaling lives in rope_freqs; the factor key then is not a linear scale */
		if (factor > 0.0f && strcmp(scaling, "none") != 0 && strcmp(scaling, "llama3") != 0)
			hp->rope_scale = 1.0f / factor;
	}
	hp->embd_scale = d->embd_scale ? sqrtf((float)hp->n_embd) : 1.0f;
	hp->attn_scale = d->big_n_layer && hp->n_layer == d->big_n_layer
				 ? 1.0f / sqrtf((float)(hp->n_embd / hp->n_head))
				 : 1.0f / sqrtf((float)hp->head_dim);
	return 0;
}

/* Binds a weight, checking shape and that kern computes with its type. */
static int bind_w(const struct gguf_file *g, const char *name, int64_t ne0, int64_t ne1,
		  struct model_w *w, uint64_t *bytes, struct dm_err *err)
{
	const struct gguf_tensor *t = gguf_tensor_find(g, name);
	struct kern_traits tr;

	if (!t)
		return dm_err_set(err, DM_EFORMAT, "%s: tensor '%s' is missing", g->name, name);
	if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1)
		return dm_err_set(err, DM_EFORMAT, "%s: tensor '%s' has shape %lld x %lld x %lld x %lld, expected %lld x %lld",
				  g->name, name, (long long)t->ne[0], (long long)t->ne[1],
				  (long long)t->ne[2], (long long)t->ne[3], (long long)ne0, (long long)ne1);
	if (kern_traits_get(t->type, KERN_ISA_REF, &tr) != 0)
		return dm_err_set(err, DM_EUNSUPPORTED, "%s: tensor '%s' has type %s, which this build cannot compute with",
				  g->name, name, gguf_type_get(t->type)->name);
	w->data = t->data;
	w->type = t->type;
	w->ne0 = ne0;
	w->ne1 = ne1;
	*bytes += t->nbytes;
	return 0;
}

/* A 1-D F32 vector of n (norms, biases, rope factors); optional → NULL ok. */
static int bind_vec(const struct gguf_file *g, const char *name, int64_t n, bool optional,
		    const float **out, uint64_t *bytes, struct dm_err *err)
{
	const struct gguf_tensor *t = gguf_tensor_find(g, name);

	*out = NULL;
	if (!t) {
		if (optional)
			return 0;
		return dm_err_set(err, DM_EFORMAT, "%s: tensor '%s' is missing", g->name, name);
	}
	if (t->n_elem != n || t->ne[0] != n)
		return dm_err_set(err, DM_EFORMAT, "%s: tensor '%s' has %lld elements, expected %lld",
				  g->name, name, (long long)t->n_elem, (long long)n);
	if (t->type != GGUF_TYPE_F32)
		return dm_err_set(err, DM_EUNSUPPORTED, "%s: tensor '%s' is %s, expected F32", g->name,
				  name, gguf_type_get(t->type)->name);
	if ((uintptr_t)t->data % sizeof(float))
		return dm_err_set(err, DM_EFORMAT, "%s: tensor '%s' is not 4-byte aligned", g->name, name);
	*out = t->data;
	*bytes += t->nbytes;
	return 0;
}

/* A view of rows [r0, r0 + n) of a bound weight (a fused tensor's part). */
static struct model_w rows_view(const struct model_w *w, int64_t r0, int64_t n)
{
	struct model_w v = *w;
	v.data = (const uint8_t *)w->data + (size_t)r0 * kern_row_bytes(w->type, w->ne0);
	v.ne1 = n;
	return v;
}

/* A layer's matrix blk.<l>.<suffix>.weight of shape (a, b) into dst, and a
 * layer's F32 vector blk.<l>.<suffix>.<kind> of n into L->field; on error
 * to the binder's `fail` (both binders below have l, L, m, g, nm, rc and
 * err in scope). */
#define W(dst, suffix, a, b)                                                                     \
	do {                                                                                     \
		snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, suffix);                           \
		if ((rc = bind_w(g, nm, a, b, dst, &m->weight_bytes, err)))                       \
			goto fail;                                                               \
	} while (0)
#define V(field, suffix, kind, n, opt)                                                            \
	do {                                                                                     \
		snprintf(nm, sizeof nm, "blk.%d.%s.%s", l, suffix, kind);                         \
		if ((rc = bind_vec(g, nm, n, opt, &L->field, &m->weight_bytes, err)))             \
			goto fail;                                                               \
	} while (0)

/* An encoder's tensors (bert, nomic-bert; see encode.c for the math):
 *   token_embd (E, V)  token_types (E, n_types)  position_embd (E, n_ctx_train) (bert)
 *   token_embd_norm.weight/.bias (E)
 *   blk.N: attn_q/k/v (E, E) + biases, or attn_qkv (E, 3E) (nomic);
 *          attn_output (E, E) [+ bias]; attn_output_norm.weight/.bias (E);
 *          ffn_up (E, F) [+ bias], [ffn_gate (E, F) (nomic)], ffn_down (F, E) [+ bias];
 *          layer_output_norm.weight/.bias (E)
 *   cls (E, E) + cls.bias, cls.output (E, n_out) + cls.output.bias  (rank pooling) */
static int bind_encoder(struct model *m, const struct gguf_file *g, const struct arch_desc *d,
			struct dm_err *err)
{
	struct model_hparams *hp = &m->hp;
	const int64_t E = hp->n_embd, F = hp->n_ff, QD = (int64_t)hp->n_head * hp->head_dim;
	const struct gguf_tensor *t;
	char nm[96];
	int rc;

	if (QD != E || hp->n_head_kv != hp->n_head)
		return dm_err_set(err, DM_EFORMAT, "%s: an encoder needs n_head·head_size = n_embd and no GQA (%lld, %d/%d)",
				  g->name, (long long)QD, hp->n_head, hp->n_head_kv);
	if ((t = gguf_tensor_find(g, "token_types.weight"))) {
		if (t->ne[1] < 1 || t->ne[1] > 16)
			return dm_err_set(err, DM_EFORMAT, "%s: tensor 'token_types.weight' has %lld types", g->name,
					  (long long)t->ne[1]);
		if ((rc = bind_w(g, "token_types.weight", E, t->ne[1], &m->tok_types, &m->weight_bytes, err)))
			return rc;
	}
	if (!d->fused_qkv &&
	    (rc = bind_w(g, "position_embd.weight", E, hp->n_ctx_train, &m->pos_embd, &m->weight_bytes, err)))
		return rc;
	if ((rc = bind_vec(g, "token_embd_norm.weight", E, false, &m->embd_norm_w, &m->weight_bytes, err)) ||
	    (rc = bind_vec(g, "token_embd_norm.bias", E, false, &m->embd_norm_b, &m->weight_bytes, err)))
		return rc;
	for (int32_t l = 0; l < hp->n_layer; l++) {
		struct model_layer *L = &m->layers[l];
		struct model_w fused;
		if (d->fused_qkv) {
			W(&fused, "attn_qkv", E, 3 * E);
			L->wq = rows_view(&fused, 0, E);
			L->wk = rows_view(&fused, E, E);
			L->wv = rows_view(&fused, 2 * E, E);
		} else {
			W(&L->wq, "attn_q", E, E);
			W(&L->wk, "attn_k", E, E);
			W(&L->wv, "attn_v", E, E);
		}
		V(bq, "attn_q", "bias", E, !d->qkv_bias);
		V(bk, "attn_k", "bias", E, !d->qkv_bias);
		V(bv, "attn_v", "bias", E, !d->qkv_bias);
		W(&L->wo, "attn_output", E, E);
		V(bo, "attn_output", "bias", E, !d->qkv_bias);
		V(ln_attn_w, "attn_output_norm", "weight", E, false);
		V(ln_attn_b, "attn_output_norm", "bias", E, false);
		W(&L->w_up, "ffn_up", E, F);
		V(b_up, "ffn_up", "bias", F, !d->qkv_bias);
		if (d->act == MODEL_ACT_SILU)
			W(&L->w_gate, "ffn_gate", E, F);
		W(&L->w_down, "ffn_down", F, E);
		V(b_down, "ffn_down", "bias", E, !d->qkv_bias);
		V(ln_ffn_w, "layer_output_norm", "weight", E, false);
		V(ln_ffn_b, "layer_output_norm", "bias", E, false);
		L->rope_base = hp->rope_base;
		L->rope_scale = hp->rope_scale;
	}
	if (hp->pooling == MODEL_POOL_RANK) {
		t = gguf_tensor_find(g, "cls.output.weight");
		if (!t)
			return dm_err_set(err, DM_EFORMAT, "%s: tensor 'cls.output.weight' is missing (rank pooling needs the classification head)",
					  g->name);
		if (t->ne[1] < 1 || t->ne[1] > 1024)
			return dm_err_set(err, DM_EFORMAT, "%s: tensor 'cls.output.weight' has %lld outputs", g->name,
					  (long long)t->ne[1]);
		hp->n_cls_out = (int32_t)t->ne[1];
		if ((rc = bind_w(g, "cls.weight", E, E, &m->cls, &m->weight_bytes, err)) ||
		    (rc = bind_vec(g, "cls.bias", E, false, &m->cls_b, &m->weight_bytes, err)) ||
		    (rc = bind_w(g, "cls.output.weight", E, hp->n_cls_out, &m->cls_out, &m->weight_bytes, err)) ||
		    (rc = bind_vec(g, "cls.output.bias", hp->n_cls_out, false, &m->cls_out_b, &m->weight_bytes, err)))
			return rc;
	}
	return 0;
fail:
	return rc;
}

int model_bind(struct model **out, const struct gguf_file *g, struct dm_err *err)
{
	struct model *m = calloc(1, sizeof *m);
	struct model_hparams *hp;
	const struct arch_desc *d = NULL;
	const struct gguf_tensor *te;
	char nm[96];
	int rc;

	*out = NULL;
	if (!m)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	m->gguf = g;
	hp = &m->hp;
	if ((rc = read_hparams(g, &d, hp, err)))
		goto fail;
	te = gguf_tensor_find(g, "token_embd.weight");
	if (!te) {
		rc = dm_err_set(err, DM_EFORMAT, "%s: tensor 'token_embd.weight' is missing", g->name);
		goto fail;
	}
	if (te->ne[1] < 1 || te->ne[1] > INT32_MAX) {
		rc = dm_err_set(err, DM_EFORMAT, "%s: bad vocabulary size %lld", g->name, (long long)te->ne[1]);
		goto fail;
	}
	hp->n_vocab = (int32_t)te->ne[1];
	{
		const int64_t E = hp->n_embd, V = hp->n_vocab, F = hp->n_ff, hd = hp->head_dim;
		const int64_t QD = (int64_t)hp->n_head * hd;
		const int64_t KVD = (int64_t)hp->n_head_kv * hd;
		const float *freqs = NULL;

		if ((rc = bind_w(g, "token_embd.weight", E, V, &m->tok_embd, &m->weight_bytes, err)))
			goto fail;
		if (d->encoder) {
			m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
			if (!m->layers) {
				rc = dm_err_set(err, DM_ENOMEM, "out of memory");
				goto fail;
			}
			if ((rc = bind_encoder(m, g, d, err)))
				goto fail;
			*out = m;
			return 0;
		}
		if ((rc = bind_vec(g, "output_norm.weight", E, false, &m->output_norm, &m->weight_bytes, err)))
			goto fail;
		if (gguf_tensor_find(g, "output.weight")) {
			if ((rc = bind_w(g, "output.weight", E, V, &m->output, &m->weight_bytes, err)))
				goto fail;
		} else {
			m->output = m->tok_embd; /* tied embeddings */
		}
		/* RoPE frequency divisors: Llama 3.1's for every context, or
		 * LongRoPE's pair (both or neither, each n_rot / 2) */
		if ((rc = bind_vec(g, "rope_freqs.weight", hp->n_rot / 2, true, &freqs, &m->weight_bytes, err)) ||
		    (rc = bind_vec(g, "rope_factors_long.weight", hp->n_rot / 2, true, &m->rope_factors_long,
				   &m->weight_bytes, err)) ||
		    (rc = bind_vec(g, "rope_factors_short.weight", hp->n_rot / 2, true, &m->rope_factors_short,
				   &m->weight_bytes, err)))
			goto fail;
		if (!m->rope_factors_long != !m->rope_factors_short) {
			rc = dm_err_set(err, DM_EFORMAT, "%s: tensor '%s' is missing (LongRoPE needs both factor sets)",
					g->name, m->rope_factors_long ? "rope_factors_short.weight" : "rope_factors_long.weight");
			goto fail;
		}
		if (m->rope_factors_long && freqs) {
			rc = dm_err_set(err, DM_EFORMAT, "%s: both rope_freqs and rope_factors_long/short are present",
					g->name);
			goto fail;
		}
		if (m->rope_factors_long && hp->n_ctx_orig < 1) {
			rc = dm_err_set(err, DM_EFORMAT, "%s: %s.rope.scaling.original_context_length is missing (LongRoPE factors need it)",
					g->name, hp->arch_name);
			goto fail;
		}
		if (freqs)
			m->rope_factors_long = m->rope_factors_short = freqs;
		m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
		if (!m->layers) {
			rc = dm_err_set(err, DM_ENOMEM, "out of memory");
			goto fail;
		}
		for (int32_t l = 0; l < hp->n_layer; l++) {
			struct model_layer *L = &m->layers[l];
			struct model_w fused;
			V(attn_norm, "attn_norm", "weight", E, false);
			if (d->fused_qkv) {
				W(&fused, "attn_qkv", E, QD + 2 * KVD);
				L->wq = rows_view(&fused, 0, QD);
				L->wk = rows_view(&fused, QD, KVD);
				L->wv = rows_view(&fused, QD + KVD, KVD);
			} else {
				W(&L->wq, "attn_q", E, QD);
				W(&L->wk, "attn_k", E, KVD);
				W(&L->wv, "attn_v", E, KVD);
			}
			W(&L->wo, "attn_output", QD, E);
			V(bq, "attn_q", "bias", QD, !d->qkv_bias);
			V(bk, "attn_k", "bias", KVD, !d->qkv_bias);
			V(bv, "attn_v", "bias", KVD, !d->qkv_bias);
			if (d->qk_norm) {
				V(q_norm, "attn_q_norm", "weight", hd, false);
				V(k_norm, "attn_k_norm", "weight", hd, false);
			}
			if (d->post_norms) {
				V(attn_post_norm, "post_attention_norm", "weight", E, false);
				V(ffn_post_norm, "post_ffw_norm", "weight", E, false);
			}
			V(ffn_norm, "ffn_norm", "weight", E, false);
			if (d->fused_gate_up) {
				W(&fused, "ffn_up", E, 2 * F);
				L->w_gate = rows_view(&fused, 0, F);
				L->w_up = rows_view(&fused, F, F);
			} else {
				W(&L->w_gate, "ffn_gate", E, F);
				W(&L->w_up, "ffn_up", E, F);
			}
			W(&L->w_down, "ffn_down", F, E);
			/* window and RoPE of this layer */
			bool windowed = hp->n_swa > 0 &&
					(d->swa == SWA_ALL ||
					 (d->swa == SWA_PERIOD && l % d->swa_period < d->swa_period - 1));
			L->n_swa = windowed ? hp->n_swa : 0;
			L->rope_base = hp->rope_base;
			L->rope_scale = hp->rope_scale;
			if (windowed && d->local_rope_10k) {
				L->rope_base = 10000.0f;
				L->rope_scale = 1.0f;
			}
		}
	}
	*out = m;
	return 0;
fail:
	model_free(m);
	return rc;
}
#undef W
#undef V

void model_free(struct model *m)
{
	if (!m)
		return;
	free(m->layers);
	free(m);
}

/* ---- context ---- */

static void resolve(const struct model *m, const struct model_ctx_params *p, int32_t *n_ctx,
		    int32_t *n_ctx_max, int32_t *n_batch)
{
	*n_ctx = p && p->n_ctx > 0 ? p->n_ctx : (m->hp.n_ctx_train < 4096 ? m->hp.n_ctx_train : 4096);
	/* an encoder keeps nothing between calls: nothing to grow into */
	*n_ctx_max = p && p->n_ctx_max > *n_ctx && !m->hp.encoder ? p->n_ctx_max : *n_ctx;
	*n_batch = p && p->n_batch > 0 ? p->n_batch : 512;
	if (*n_batch > *n_ctx)
		*n_batch = *n_ctx;
}

/* Scratch layout in floats; one place computes it for both sizing and
 * carving, so the reported size is the allocated size. */
struct scratch_layout {
	size_t x, xn, q, kk, vv, att, g, u, scores, runs, run_q, run_ws, ws, tokens, total;
	size_t ws_bytes, run_q_stride, run_ws_stride;
	int32_t scores_stride;
};

/* The largest workspace any matrix product of the forward pass needs (the
 * sets forward.c runs: Q/K/V, O, gate/up, down, output) for up to n_batch
 * tokens.  A type kern cannot size counts 0: the product then fails with
 * kern's own error, never overruns. */
static size_t ws_bytes(const struct model *m, enum kern_isa isa, int32_t n_batch, int n_threads)
{
	size_t best = 0, b;
	struct dm_err e;
#define NEED(count, n, ...)                                                              \
	do {                                                                             \
		const uint32_t ty[] = { __VA_ARGS__ };                                   \
		if (!kern_ws_bytes(isa, ty, count, n, n_batch, n_threads, &b, &e) && b > best) \
			best = b;                                                        \
	} while (0)
	for (int32_t l = 0; l < m->hp.n_layer; l++) {
		const struct model_layer *L = &m->layers[l];
		NEED(3, L->wq.ne0, L->wq.type, L->wk.type, L->wv.type);
		NEED(1, L->wo.ne0, L->wo.type);
		if (L->w_gate.data)
			NEED(2, L->w_gate.ne0, L->w_gate.type, L->w_up.type);
		else /* an encoder's ungated FFN */
			NEED(1, L->w_up.ne0, L->w_up.type);
		NEED(1, L->w_down.ne0, L->w_down.type);
	}
	if (m->output.data)
		NEED(1, m->output.ne0, m->output.type);
	if (m->cls.data) { /* rank pooling's head */
		NEED(1, m->cls.ne0, m->cls.type);
		NEED(1, m->cls_out.ne0, m->cls_out.type);
	}
#undef NEED
	return best;
}

static void layout(const struct model *m, enum kern_isa isa, int32_t n_ctx, int32_t n_batch,
		   int n_threads, struct scratch_layout *s)
{
	const struct model_hparams *hp = &m->hp;
	size_t B = (size_t)n_batch, E = (size_t)hp->n_embd, F = (size_t)hp->n_ff;
	size_t QD = (size_t)hp->n_head * (size_t)hp->head_dim;
	size_t KVD = (size_t)hp->n_head_kv * (size_t)hp->head_dim;
	size_t off = 0;
	*s = (struct scratch_layout){ 0 }; /* an encoder takes no runs: those stay 0 */
	/* 16 floats (64 bytes) alignment for every buffer */
#define TAKE(field, n) do { s->field = off; off += ((n) + 15) / 16 * 16; } while (0)
	TAKE(x, B * E);
	TAKE(xn, B * (E > QD ? E : QD));
	TAKE(q, B * QD);
	TAKE(kk, B * KVD);
	TAKE(vv, B * KVD);
	TAKE(att, B * QD);
	TAKE(g, B * F);
	TAKE(u, B * F);
	s->scores_stride = (int32_t)(((size_t)n_ctx + 15) / 16 * 16);
	/* attention scores: per thread one row of n_ctx per query head of a
	 * K/V group (forward.c scores a group's heads together) */
	TAKE(scores, (size_t)s->scores_stride * (size_t)n_threads *
			     (size_t)(hp->n_head_kv > 0 ? hp->n_head / hp->n_head_kv : 1));
	/* decoding's runs (forward.c): the results of every run of up to
	 * MODEL_ATTN_RUN_TOK tokens, and per thread kern_attn_run's scratch */
	if (hp->n_head_kv > 0 && !hp->encoder) { /* encode.c has its own attention */
		const struct kern_attn_shape sh = { hp->n_head, hp->n_head_kv, hp->head_dim, KVD, 1, 0 };
		const size_t runs = ((size_t)n_ctx + MODEL_ATTN_RUN - 1) / MODEL_ATTN_RUN + 1;
		TAKE(runs, (size_t)MODEL_ATTN_RUN_TOK * runs * kern_attn_part_size(&sh));
		s->run_q_stride = (kern_attn_q_size(&sh) + 15) / 16 * 16;
		TAKE(run_q, (size_t)MODEL_ATTN_RUN_TOK * s->run_q_stride);
		s->run_ws_stride = (kern_attn_run_ws(&sh) + 15) / 16 * 16;
		TAKE(run_ws, s->run_ws_stride * (size_t)n_threads);
	}
	/* the matrix products' packed activations and weight panels */
	s->ws_bytes = ws_bytes(m, isa, n_batch, n_threads);
	TAKE(ws, (s->ws_bytes + sizeof(float) - 1) / sizeof(float));
	TAKE(tokens, (size_t)n_ctx); /* int32 ids, one per position */
#undef TAKE
	s->total = off * sizeof(float);
}

/* K and V of every layer for n_ctx positions; an encoder keeps nothing
 * between layers or calls, so it needs one layer's worth (encode.c). */
static size_t kv_bytes(const struct model *m, int32_t n_ctx)
{
	return 2 * (size_t)(m->hp.encoder ? 1 : m->hp.n_layer) * (size_t)n_ctx * (size_t)m->hp.n_head_kv *
	       (size_t)m->hp.head_dim * sizeof(uint16_t);
}

size_t model_ctx_scratch_bytes(const struct model *m, const struct model_ctx_params *p)
{
	struct scratch_layout s;
	int32_t n_ctx, n_ctx_max, n_batch;
	resolve(m, p, &n_ctx, &n_ctx_max, &n_batch);
	/* scores and token ids are sized for the whole reservation */
	layout(m, p && p->isa_set ? p->isa : kern_isa_best(), n_ctx_max, n_batch,
	       p && p->pool ? dm_pool_size(p->pool) : (p && p->n_threads > 1 ? p->n_threads : 1), &s);
	return s.total;
}

size_t model_ctx_bytes(const struct model *m, const struct model_ctx_params *p)
{
	int32_t n_ctx, n_ctx_max, n_batch;
	resolve(m, p, &n_ctx, &n_ctx_max, &n_batch);
	return kv_bytes(m, n_ctx) + model_ctx_scratch_bytes(m, p);
}

/* The LongRoPE factor set a context of n positions uses: the long factors
 * iff it is longer than the training context they extend (the reference
 * engine's rule). */
static const float *rope_factors_for(const struct model *m, int32_t n)
{
	return m->rope_factors_long && n > m->hp.n_ctx_orig ? m->rope_factors_long : m->rope_factors_short;
}

int model_ctx_init(struct model_ctx **out, const struct model *m, const struct model_ctx_params *p,
		   struct dm_err *err)
{
	struct model_ctx *c = calloc(1, sizeof *c);
	struct scratch_layout s;
	float *f;

	*out = NULL;
	if (!c)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	c->m = m;
	resolve(m, p, &c->n_ctx, &c->n_ctx_max, &c->n_batch);
	if (c->n_ctx < 1 || c->n_ctx_max > (1 << 24)) {
		int32_t n_ctx = c->n_ctx < 1 ? c->n_ctx : c->n_ctx_max;
		free(c);
		return dm_err_set(err, DM_EINVAL, "n_ctx %d is out of range", n_ctx);
	}
	c->pool = p ? p->pool : NULL;
	c->isa = p && p->isa_set ? p->isa : kern_isa_best();
	layout(m, c->isa, c->n_ctx_max, c->n_batch, c->pool ? dm_pool_size(c->pool) : 1, &s);
	c->kv_bytes = kv_bytes(m, c->n_ctx_max);
	c->scratch_bytes = s.total;
	/* the reservation: address space only until positions are written */
	c->k = dm_mem_reserve(c->kv_bytes);
	c->scratch = dm_mem_map(c->scratch_bytes);
	if (!c->k || !c->scratch) {
		size_t need = c->kv_bytes + c->scratch_bytes;
		int32_t n_max = c->n_ctx_max;
		model_ctx_free(c);
		return dm_err_set(err, DM_ENOMEM, "cannot map %zu MiB for the KV cache (%d positions) and scratch",
				  need >> 20, n_max);
	}
	c->v = c->k + c->kv_bytes / 2 / sizeof(uint16_t);
	c->rope_factors = rope_factors_for(m, c->n_ctx);
	c->snap_max = p && !m->hp.encoder ? p->prefix_cache_max : 0;
	f = c->scratch;
	c->x = f + s.x;
	c->xn = f + s.xn;
	c->q = f + s.q;
	c->kk = f + s.kk;
	c->vv = f + s.vv;
	c->att = f + s.att;
	c->g = f + s.g;
	c->u = f + s.u;
	c->scores = f + s.scores;
	c->scores_stride = s.scores_stride;
	c->runs = f + s.runs;
	c->run_q = f + s.run_q;
	c->run_ws = f + s.run_ws;
	c->run_q_stride = s.run_q_stride;
	c->run_ws_stride = s.run_ws_stride;
	c->ws = (struct kern_ws){ f + s.ws, s.ws_bytes };
	c->tokens = (int32_t *)(void *)(f + s.tokens);
	/* the token ids are the layout's last buffer: what trim keeps */
	c->scratch_keep = c->scratch_bytes - s.tokens * sizeof(float) / dm_mem_page_size() * dm_mem_page_size();
	*out = c;
	return 0;
}

void model_ctx_free(struct model_ctx *c)
{
	if (!c)
		return;
	model_ctx_snap_drop(c);
	dm_mem_unmap(c->k, c->kv_bytes);
	dm_mem_unmap(c->scratch, c->scratch_bytes);
	free(c);
}

void model_ctx_reset(struct model_ctx *c)
{
	c->n_past = 0;
}

int model_ctx_set_n_ctx(struct model_ctx *c, int32_t n, struct dm_err *err)
{
	const float *f;
	if (n < 1 || n > c->n_ctx_max)
		return dm_err_set(err, DM_EINVAL, "a context of %d positions is out of range (1 to %d)", n,
				  c->n_ctx_max);
	f = rope_factors_for(c->m, n);
	if (f != c->rope_factors)
		c->n_past = 0; /* computed with the other factor set */
	c->rope_factors = f;
	c->n_ctx = n;
	return 0;
}

/* Bytes of one layer's K (or V) rows for n_pos positions. */
static size_t kv_row_bytes(const struct model_ctx *c, int32_t n_pos)
{
	return (size_t)n_pos * (size_t)c->m->hp.n_head_kv * (size_t)c->m->hp.head_dim * sizeof(uint16_t);
}

size_t model_ctx_kv_bytes_for(const struct model_ctx *c, int32_t n_pos)
{
	const size_t pg = dm_mem_page_size();
	size_t per = (kv_row_bytes(c, n_pos) + pg - 1) / pg * pg, all = kv_row_bytes(c, c->n_ctx_max);
	int32_t layers = c->m->hp.encoder ? 1 : c->m->hp.n_layer;
	return 2 * (size_t)layers * (per < all ? per : all);
}

size_t model_ctx_held_bytes(const struct model_ctx *c)
{
	if (c->m->hp.encoder) /* each call writes its own passes' rows: count them all */
		return c->scratch_bytes + c->kv_bytes;
	return (c->scratch_live ? c->scratch_bytes : c->scratch_keep) +
	       model_ctx_kv_bytes_for(c, c->n_touched > c->n_past ? c->n_touched : c->n_past) + c->snap_bytes;
}

void model_ctx_prefault(struct model_ctx *c, int32_t n_pos)
{
	const size_t region = kv_row_bytes(c, c->n_ctx_max);
	const int32_t layers = c->m->hp.encoder ? 1 : c->m->hp.n_layer;
	const int32_t n = n_pos < c->n_ctx ? n_pos : c->n_ctx;
	const size_t used = kv_row_bytes(c, n);

	dm_mem_populate(c->scratch, c->scratch_bytes);
	c->scratch_live = true;
	for (int32_t r = 0; r < 2 * layers; r++)
		dm_mem_populate((uint8_t *)c->k + (size_t)r * region, used);
	if (n > c->n_touched)
		c->n_touched = n;
}

void model_ctx_trim(struct model_ctx *c)
{
	const size_t pg = dm_mem_page_size(), region = kv_row_bytes(c, c->n_ctx_max);
	const int32_t layers = c->m->hp.encoder ? 1 : c->m->hp.n_layer;
	uint8_t *base = (uint8_t *)c->k;

	/* K of layer l, then (after all K) V of layer l: 2 · layers regions of
	 * n_ctx_max rows; each keeps its first n_past rows' pages */
	for (int32_t r = 0; r < 2 * layers; r++) {
		uint8_t *lo = base + (size_t)r * region, *hi = lo + region;
		uint8_t *from = lo + kv_row_bytes(c, c->n_past);
		from = (uint8_t *)(((uintptr_t)from + pg - 1) / pg * pg);
		if (from < hi)
			dm_mem_release(from, (size_t)(hi - from) / pg * pg);
	}
	c->n_touched = c->n_past;
	/* the activations of the last batch are not needed between requests */
	dm_mem_release(c->scratch, c->scratch_bytes - c->scratch_keep);
	c->scratch_live = false;
}

/*
 * model/encode — the encoder forward pass (bert, nomic-bert) over a pack of
 * sequences, and pooling.  Reads top to bottom like the math (post-norm
 * transformer, LayerNorm with bias, bidirectional attention inside each
 * sequence); bracketed steps are there when the model's data says so:
 *
 *   x = tok_embd[id] [+ tok_types[0]] [+ pos_embd[p]]   (T, E), p = position in its sequence
 *   x = layernorm(x)·embd_norm_w + embd_norm_b
 *   for each layer:
 *     q, k, v = x·Wq [+bq], x·Wk [+bk], x·Wv [+bv]     (or rows of the fused attn_qkv)
 *     [rope(q), rope(k) at p]                          (nomic-bert)
 *     a[t, head] = softmax(q·Kᵀ / √hd over t's own sequence) · V
 *     x = layernorm(x + a·Wo [+bo])·ln_attn_w + ln_attn_b
 *     f = gelu(x·Wup + b_up)·Wdown + b_down            (bert)
 *       | (silu(x·Wgate) ⊙ x·Wup)·Wdown                (nomic-bert)
 *     x = layernorm(x + f)·ln_ffn_w + ln_ffn_b
 *   pool: mean over the sequence | first token | last token
 *         | rank: cls_out·tanh(cls·x[first] + cls_b) + cls_out_b
 *
 * Sequences are packed into passes of at most n_ctx tokens (and n_batch:
 * the scratch is sized for n_batch tokens); K and V of a pass live in the
 * context's F16 cache rows 0..T-1 (layer 0's region, reused by every layer:
 * nothing outlives a call), so encoding leaves n_past at 0.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/pool.h"
#include "model/model.h"

static int mm(struct model_ctx *c, const struct model_w *w, const float *x, int32_t T, float *y,
	      struct dm_err *err)
{
	const struct kern_mat m = { w->type, w->data, w->ne1, y };
	return kern_matmul_set(c->pool, c->isa, &m, 1, w->ne0, x, T, &c->ws, err);
}

static void add_bias(float *y, const float *b, int32_t T, int64_t n)
{
	for (int32_t t = 0; b && t < T; t++)
		kern_add(y + (size_t)t * (size_t)n, y + (size_t)t * (size_t)n, b, n);
}

/* x = layernorm(x + d)·w + b, row by row. */
static void add_layernorm(float *x, const float *d, const float *w, const float *b, int32_t T, int64_t E,
			  float eps)
{
	for (int32_t t = 0; t < T; t++) {
		float *r = x + (size_t)t * (size_t)E;
		if (d)
			kern_add(r, r, d + (size_t)t * (size_t)E, E);
		kern_layernorm(r, r, w, b, E, eps);
	}
}

/* Bidirectional attention: (token, head) pairs over the pool; a token sees
 * the rows [seq0[t], seq1[t]) of the pack's K and V. */
struct enc_attn_job {
	struct model_ctx *c;
	const int32_t *seq0, *seq1;
};

static void enc_attention_range(void *arg, int64_t begin, int64_t end, int thread)
{
	const struct enc_attn_job *j = arg;
	struct model_ctx *c = j->c;
	const struct model_hparams *hp = &c->m->hp;
	const int64_t hd = hp->head_dim, E = hp->n_embd;
	float *sc = c->scores + (size_t)thread * (size_t)c->scores_stride;

	for (int64_t i = begin; i < end; i++) {
		const int64_t t = i / hp->n_head, h = i % hp->n_head;
		const int64_t s0 = j->seq0[t], n_kv = j->seq1[t] - s0;
		const size_t row0 = (size_t)s0 * (size_t)E + (size_t)h * (size_t)hd;
		kern_attn_scores(c->isa, sc, c->q + (size_t)t * (size_t)E + (size_t)h * (size_t)hd, c->k + row0,
				 n_kv, hd, (size_t)E, hp->attn_scale);
		kern_softmax(c->isa, sc, n_kv);
		kern_attn_values(c->isa, c->att + (size_t)t * (size_t)E + (size_t)h * (size_t)hd, sc, c->v + row0,
				 n_kv, hd, (size_t)E);
	}
}

/* One pass over T tokens of whole sequences; x ends with the final states. */
static int encode_pass(struct model_ctx *c, const int32_t *tok, const int32_t *pos, const int32_t *seq0,
		       const int32_t *seq1, int32_t T, struct dm_err *err)
{
	const struct model *m = c->m;
	const struct model_hparams *hp = &m->hp;
	const int64_t E = hp->n_embd, F = hp->n_ff;
	const size_t emb_row = kern_row_bytes(m->tok_embd.type, E);
	float *row = c->xn; /* a row of scratch for dequantized embeddings */
	struct kern_rope rope = { .mode = hp->rope_mode, .n_rot = hp->n_rot, .freq_base = hp->rope_base,
				  .freq_scale = hp->rope_scale };
	const bool use_rope = hp->arch == MODEL_ARCH_NOMIC_BERT;
	int rc;

	/* x = embeddings, then their LayerNorm */
	for (int32_t t = 0; t < T; t++) {
		float *x = c->x + (size_t)t * (size_t)E;
		if ((rc = kern_dequantize(m->tok_embd.type, (const uint8_t *)m->tok_embd.data + (size_t)tok[t] * emb_row,
					  x, E, err)))
			return rc;
		if (m->tok_types.data) {
			if ((rc = kern_dequantize(m->tok_types.type, m->tok_types.data, row, E, err)))
				return rc;
			kern_add(x, x, row, E);
		}
		if (m->pos_embd.data) {
			const size_t pr = kern_row_bytes(m->pos_embd.type, E);
			if ((rc = kern_dequantize(m->pos_embd.type, (const uint8_t *)m->pos_embd.data + (size_t)pos[t] * pr,
						  row, E, err)))
				return rc;
			kern_add(x, x, row, E);
		}
	}
	add_layernorm(c->x, NULL, m->embd_norm_w, m->embd_norm_b, T, E, hp->rms_eps);

	for (int32_t l = 0; l < hp->n_layer; l++) {
		const struct model_layer *L = &m->layers[l];
		const struct kern_mat qkv[3] = { { L->wq.type, L->wq.data, E, c->q },
						 { L->wk.type, L->wk.data, E, c->kk },
						 { L->wv.type, L->wv.data, E, c->vv } };
		if ((rc = kern_matmul_set(c->pool, c->isa, qkv, 3, E, c->x, T, &c->ws, err)))
			return rc;
		add_bias(c->q, L->bq, T, E);
		add_bias(c->kk, L->bk, T, E);
		add_bias(c->vv, L->bv, T, E);
		for (int32_t t = 0; t < T; t++) {
			float *q = c->q + (size_t)t * (size_t)E, *k = c->kk + (size_t)t * (size_t)E;
			if (use_rope) {
				kern_rope_apply(q, hp->n_head, hp->head_dim, pos[t], &rope);
				kern_rope_apply(k, hp->n_head, hp->head_dim, pos[t], &rope);
			}
			kern_f32_to_f16(k, c->k + (size_t)t * (size_t)E, E);
			kern_f32_to_f16(c->vv + (size_t)t * (size_t)E, c->v + (size_t)t * (size_t)E, E);
		}
		struct enc_attn_job j = { c, seq0, seq1 };
		if (c->pool)
			dm_pool_run(c->pool, (int64_t)T * hp->n_head, 1, enc_attention_range, &j);
		else
			enc_attention_range(&j, 0, (int64_t)T * hp->n_head, 0);
		if ((rc = mm(c, &L->wo, c->att, T, c->xn, err)))
			return rc;
		add_bias(c->xn, L->bo, T, E);
		add_layernorm(c->x, c->xn, L->ln_attn_w, L->ln_attn_b, T, E, hp->rms_eps);

		if (L->w_gate.data) { /* SwiGLU */
			const struct kern_mat gu[2] = { { L->w_gate.type, L->w_gate.data, F, c->g },
							{ L->w_up.type, L->w_up.data, F, c->u } };
			if ((rc = kern_matmul_set(c->pool, c->isa, gu, 2, E, c->x, T, &c->ws, err)))
				return rc;
			for (int32_t t = 0; t < T; t++)
				kern_swiglu(c->isa, c->g + (size_t)t * (size_t)F, c->u + (size_t)t * (size_t)F, F);
		} else { /* GELU */
			if ((rc = mm(c, &L->w_up, c->x, T, c->g, err)))
				return rc;
			add_bias(c->g, L->b_up, T, F);
			kern_gelu(c->g, c->g, (int64_t)T * F);
		}
		if ((rc = mm(c, &L->w_down, c->g, T, c->xn, err)))
			return rc;
		add_bias(c->xn, L->b_down, T, E);
		add_layernorm(c->x, c->xn, L->ln_ffn_w, L->ln_ffn_b, T, E, hp->rms_eps);
	}
	return 0;
}

int32_t model_pooled_dim(const struct model *m, enum model_pooling pool)
{
	if (pool == MODEL_POOL_NONE)
		pool = m->hp.pooling;
	return pool == MODEL_POOL_RANK ? m->hp.n_cls_out : m->hp.n_embd;
}

/* The pooled output of the sequence at rows [s0, s1) of x. */
static int pool_seq(struct model_ctx *c, enum model_pooling pool, int32_t s0, int32_t s1, float *out,
		    struct dm_err *err)
{
	const struct model *m = c->m;
	const int64_t E = m->hp.n_embd;
	const float *x = c->x;
	int rc;

	switch (pool) {
	case MODEL_POOL_MEAN:
		memset(out, 0, (size_t)E * sizeof *out);
		for (int32_t t = s0; t < s1; t++)
			kern_add(out, out, x + (size_t)t * (size_t)E, E);
		kern_scale(out, out, 1.0f / (float)(s1 - s0), E);
		return 0;
	case MODEL_POOL_CLS:
	case MODEL_POOL_LAST:
		memcpy(out, x + (size_t)(pool == MODEL_POOL_CLS ? s0 : s1 - 1) * (size_t)E, (size_t)E * sizeof *out);
		return 0;
	case MODEL_POOL_RANK: {
		float *h = c->g, *y = c->u; /* n_ff >= 1 floats each, per token: room for E and n_out */
		if ((rc = mm(c, &m->cls, x + (size_t)s0 * (size_t)E, 1, h, err)))
			return rc;
		kern_add(h, h, m->cls_b, E);
		for (int64_t i = 0; i < E; i++)
			h[i] = tanhf(h[i]);
		if ((rc = mm(c, &m->cls_out, h, 1, y, err)))
			return rc;
		for (int32_t i = 0; i < m->hp.n_cls_out; i++)
			out[i] = y[i] + m->cls_out_b[i];
		return 0;
	}
	case MODEL_POOL_NONE:
		break;
	}
	return dm_err_set(err, DM_EINVAL, "no pooling to apply");
}

int model_encode(struct model_ctx *c, const int32_t *tokens, const int32_t *lens, int32_t n_seq,
		 enum model_pooling pool, float *out, struct dm_err *err)
{
	const struct model *m = c->m;
	const int32_t cap = c->n_ctx < c->n_batch ? c->n_ctx : c->n_batch;
	int32_t *pos = NULL, *seq0 = NULL, *seq1 = NULL;
	int32_t dim;
	int64_t off = 0;
	int rc = 0;

	if (!m->hp.encoder)
		return dm_err_set(err, DM_EUNSUPPORTED, "%s is a decoder: encoding needs an encoder model",
				  m->hp.arch_name);
	if (pool == MODEL_POOL_NONE)
		pool = m->hp.pooling;
	if (pool == MODEL_POOL_NONE)
		return dm_err_set(err, DM_EUNSUPPORTED, "the model has no pooling type: nothing to pool");
	if (pool == MODEL_POOL_RANK && !m->cls_out.data)
		return dm_err_set(err, DM_EUNSUPPORTED, "the model has no classification head: it cannot rank");
	if (pool == MODEL_POOL_RANK && (m->hp.n_ff < m->hp.n_embd || m->hp.n_ff < m->hp.n_cls_out))
		return dm_err_set(err, DM_EUNSUPPORTED, "classification head wider than the scratch");
	dim = model_pooled_dim(m, pool);
	for (int32_t i = 0; i < n_seq; i++) {
		if (lens[i] < 1)
			return dm_err_set(err, DM_EINVAL, "input %d is empty", i);
		if (lens[i] > cap || lens[i] > m->hp.n_ctx_train)
			return dm_err_set(err, DM_ENOSPC, "input %d has %d tokens, more than the model's context of %d",
					  i, lens[i], cap < m->hp.n_ctx_train ? cap : m->hp.n_ctx_train);
		for (int32_t t = 0; t < lens[i]; t++)
			if (tokens[off + t] < 0 || tokens[off + t] >= m->hp.n_vocab)
				return dm_err_set(err, DM_EINVAL, "token id %d of input %d is out of range (vocabulary of %d)",
						  tokens[off + t], i, m->hp.n_vocab);
		off += lens[i];
	}
	pos = malloc((size_t)cap * sizeof *pos);
	seq0 = malloc((size_t)cap * sizeof *seq0);
	seq1 = malloc((size_t)cap * sizeof *seq1);
	if (!pos || !seq0 || !seq1) {
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
		goto out;
	}
	off = 0;
	for (int32_t i = 0; i < n_seq;) {
		/* pack whole sequences i..k-1 into one pass */
		int32_t k = i, T = 0;
		while (k < n_seq && T + lens[k] <= cap) {
			for (int32_t t = 0; t < lens[k]; t++) {
				pos[T + t] = t;
				seq0[T + t] = T;
				seq1[T + t] = T + lens[k];
			}
			T += lens[k++];
		}
		if ((rc = encode_pass(c, tokens + off, pos, seq0, seq1, T, err)))
			goto out;
		for (int32_t s = i, r = 0; s < k; r += lens[s++])
			if ((rc = pool_seq(c, pool, r, r + lens[s], out + (size_t)s * (size_t)dim, err)))
				goto out;
		off += T;
		i = k;
	}
out:
	free(pos);
	free(seq0);
	free(seq1);
	c->n_past = 0;
	return rc;
}

/*
 * model/forward — the decoder forward pass over a batch of tokens.
 *
 * Reads top to bottom like the math (pre-norm transformer, RMSNorm, RoPE,
 * grouped-query attention over an F16 KV cache, gated feed-forward).  The
 * bracketed steps are there when the model's data says so (model.h):
 *
 *   x = embed(tokens) [· embd_scale]                    (T, E)
 *   for each layer:
 *     h = rmsnorm(x)·attn_norm
 *     q, k, v = h·Wq (+bq), h·Wk (+bk), h·Wv (+bv)      (T, QD) (T, KVD) (T, KVD)
 *     [q, k = rmsnorm per head ·q_norm, ·k_norm]
 *     rope(q), rope(k) at positions n_past + t          (the layer's base and scale)
 *     K[n_past + t], V[n_past + t] = k, v  (as F16)
 *     s = attn_scale · q·Kᵀ  [s = c·tanh(s / c)]
 *     a[t, head] = softmax(s over the causal positions [inside the layer's window]) · V
 *     o = a·Wo  [o = rmsnorm(o)·attn_post_norm]          x += o
 *     h = rmsnorm(x)·ffn_norm
 *     f = (act(h·Wgate) ⊙ h·Wup)·Wdown  [f = rmsnorm(f)·ffn_post_norm]   x += f
 *   logits = (rmsnorm(x)·output_norm)·Woutput  [logits = c·tanh(logits / c)]
 */
#include <math.h>
#include <string.h>

#include "base/pool.h"
#include "model/model.h"

enum out_mode { OUT_NONE, OUT_LAST, OUT_ALL, OUT_HIDDEN_SUM, OUT_HIDDEN_LAST };

/* y (T × w.ne1) = x (T × w.ne0) · wᵀ */
static int mm(struct model_ctx *c, const struct model_w *w, const float *x, int32_t T, float *y,
	      struct dm_err *err)
{
	const struct kern_mat m = { w->type, w->data, w->ne1, y };
	return kern_matmul_set(c->pool, c->isa, &m, 1, w->ne0, x, T, &c->ws, err);
}

/* y_i = x · w_iᵀ for two or three matrices of the same input width, as one
 * job (x packed once per layout, one wait). */
static int mm_set(struct model_ctx *c, const struct model_w *const *w, float *const *y, int count,
		  const float *x, int32_t T, struct dm_err *err)
{
	struct kern_mat m[3];
	for (int i = 0; i < count; i++)
		m[i] = (struct kern_mat){ w[i]->type, w[i]->data, w[i]->ne1, y[i] };
	return kern_matmul_set(c->pool, c->isa, m, count, w[0]->ne0, x, T, &c->ws, err);
}

/* Causal attention of T new tokens (at positions n_past..) for one layer;
 * a prompt batch (more than MODEL_ATTN_RUN_TOK tokens) goes this way.
 * A work item is one token and G query heads that share a K/V head (G
 * divides n_head / n_head_kv: the whole group, or fewer heads where there
 * would be too few items for the pool), so each K and V row is read once
 * per item rather than once per head; items spread over the pool, each
 * thread with its own G rows of scores. */
struct attn_job {
	struct model_ctx *c;
	const uint16_t *kc, *vc;
	int32_t n_swa; /* the layer's window; 0: none */
	int32_t G;     /* query heads per item */
};

static void attention_range(void *arg, int64_t begin, int64_t end, int thread)
{
	const struct attn_job *j = arg;
	struct model_ctx *c = j->c;
	const struct model_hparams *hp = &c->m->hp;
	const int64_t hd = hp->head_dim, QD = (int64_t)hp->n_head * hd, KVD = (int64_t)hp->n_head_kv * hd;
	const int32_t gqa = hp->n_head / hp->n_head_kv, G = j->G;
	const int64_t per_tok = hp->n_head / G;
	const size_t ss = (size_t)c->scores_stride;
	float *sc = c->scores + (size_t)thread * (size_t)gqa * ss;

	for (int64_t i = begin; i < end; i++) {
		const int64_t t = i / per_tok, h0 = (i % per_tok) * G;
		const int64_t pos = (int64_t)c->n_past + t;
		/* causal: positions 0..pos; a windowed layer sees the last n_swa of them */
		const int64_t first = j->n_swa > 0 && pos + 1 > j->n_swa ? pos + 1 - j->n_swa : 0;
		const int64_t n_kv = pos + 1 - first;
		const int64_t kvh = h0 / gqa;
		const float *q = c->q + (size_t)t * (size_t)QD + (size_t)h0 * (size_t)hd;
		float *out = c->att + (size_t)t * (size_t)QD + (size_t)h0 * (size_t)hd;
		const size_t row0 = (size_t)first * (size_t)KVD + (size_t)kvh * (size_t)hd;
		kern_attn_scores_grp(c->isa, sc, ss, q, (size_t)hd, G, j->kc + row0, n_kv, hd, (size_t)KVD,
				     hp->attn_scale);
		for (int32_t g = 0; g < G; g++) {
			float *s = sc + (size_t)g * ss;
			if (hp->attn_softcap > 0)
				kern_softcap(c->isa, s, s, hp->attn_softcap, n_kv);
			kern_softmax(c->isa, s, n_kv);
		}
		kern_attn_values_grp(c->isa, out, (size_t)hd, sc, ss, G, j->vc + row0, n_kv, hd, (size_t)KVD);
	}
}

/* Decoding (at most MODEL_ATTN_RUN_TOK new tokens): each token's rows are
 * cut into runs of MODEL_ATTN_RUN, and a work item is one run of one
 * token for every head (kern_attn_run): the rows are read once, in order,
 * for all the heads that share them, and a long context spreads over the
 * threads however few the K/V heads.  The runs are cut the same way and
 * merged in the same order whatever the thread count. */
struct run_job {
	struct model_ctx *c;
	const uint16_t *kc, *vc;
	struct kern_attn_shape sh;
	int64_t first[MODEL_ATTN_RUN_TOK]; /* each token's first visible row */
	int64_t n_kv[MODEL_ATTN_RUN_TOK];  /* and how many it sees */
	int64_t item0[MODEL_ATTN_RUN_TOK + 1]; /* token t's runs are items item0[t]..item0[t+1] */
	int32_t T;
};

static void attention_runs(void *arg, int64_t begin, int64_t end, int thread)
{
	const struct run_job *j = arg;
	struct model_ctx *c = j->c;
	const size_t ps = kern_attn_part_size(&j->sh);
	float *ws = c->run_ws + (size_t)thread * c->run_ws_stride;
	int32_t t = 0;
	for (int64_t i = begin; i < end; i++) {
		while (i >= j->item0[t + 1])
			t++;
		const int64_t r0 = (i - j->item0[t]) * MODEL_ATTN_RUN, row = j->first[t] + r0;
		const int64_t n = j->n_kv[t] - r0 < MODEL_ATTN_RUN ? j->n_kv[t] - r0 : MODEL_ATTN_RUN;
		kern_attn_run(c->isa, &j->sh, c->run_q + (size_t)t * c->run_q_stride, j->kc + (size_t)row * j->sh.stride,
			      j->vc + (size_t)row * j->sh.stride, n, c->runs + (size_t)i * ps, ws);
	}
}

static void attention(struct model_ctx *c, const uint16_t *kc, const uint16_t *vc, int32_t n_swa,
		      int32_t T)
{
	const struct model_hparams *hp = &c->m->hp;
	const int threads = c->pool ? dm_pool_size(c->pool) : 1;
	if (T <= MODEL_ATTN_RUN_TOK) {
		struct run_job j = { .c = c, .kc = kc, .vc = vc, .T = T };
		j.sh = (struct kern_attn_shape){ hp->n_head, hp->n_head_kv, hp->head_dim,
						 (size_t)hp->n_head_kv * (size_t)hp->head_dim, hp->attn_scale,
						 hp->attn_softcap };
		for (int32_t t = 0; t < T; t++) {
			const int64_t pos = (int64_t)c->n_past + t;
			j.first[t] = n_swa > 0 && pos + 1 > n_swa ? pos + 1 - n_swa : 0;
			j.n_kv[t] = pos + 1 - j.first[t];
			j.item0[t + 1] = j.item0[t] + (j.n_kv[t] + MODEL_ATTN_RUN - 1) / MODEL_ATTN_RUN;
			kern_attn_q_prep(c->isa, &j.sh, c->q + (size_t)t * (size_t)hp->n_head * (size_t)hp->head_dim,
					 c->run_q + (size_t)t * c->run_q_stride);
		}
		if (c->pool && j.item0[T] > 1)
			dm_pool_run(c->pool, j.item0[T], 1, attention_runs, &j);
		else
			attention_runs(&j, 0, j.item0[T], 0);
		const size_t ps = kern_attn_part_size(&j.sh), QD = (size_t)hp->n_head * (size_t)hp->head_dim;
		for (int32_t t = 0; t < T; t++)
			kern_attn_merge(c->att + (size_t)t * QD, c->runs + (size_t)j.item0[t] * ps,
					j.item0[t + 1] - j.item0[t], &j.sh);
		return;
	}
	struct attn_job j = { c, kc, vc, n_swa, hp->n_head / hp->n_head_kv };
	/* at least two items per thread where halving the groups can give them */
	while (j.G % 2 == 0 && (int64_t)T * (hp->n_head / j.G) < 2 * (int64_t)threads)
		j.G /= 2;
	const int64_t n = (int64_t)T * (hp->n_head / j.G);
	if (c->pool)
		dm_pool_run(c->pool, n, 1, attention_range, &j);
	else
		attention_range(&j, 0, n, 0);
}

/* The per-token work between the matrix products (norms, residual adds,
 * bias + Q/K norm + RoPE + cache store, the gate), spread over the pool by
 * tokens: the same operations in the same order per token whatever the
 * thread count. */
enum tok_op {
	TOK_NORM,     /* xn = rmsnorm(x)·w */
	TOK_ADD_NORM, /* [xn = rmsnorm(xn)·wp]; x += xn; xn = rmsnorm(x)·w */
	TOK_ADD,      /* [xn = rmsnorm(xn)·wp]; x += xn */
	TOK_QKV,      /* q, k, v += biases; [q, k per-head norms]; rope(q), rope(k); K, V cache rows = k, v */
	TOK_GLU,      /* g = act(g) ⊙ u */
};

struct tok_job {
	struct model_ctx *c;
	enum tok_op op;
	const float *w;  /* the norm's weight */
	const float *wp; /* the block output's post-norm weight, or NULL */
	const struct model_layer *L;
	const struct kern_rope *rope;
	uint16_t *kc, *vc;
};

static void tok_range(void *arg, int64_t b, int64_t e, int thread)
{
	const struct tok_job *j = arg;
	struct model_ctx *c = j->c;
	const struct model_hparams *hp = &c->m->hp;
	const int64_t E = hp->n_embd, F = hp->n_ff, hd = hp->head_dim;
	const int64_t QD = (int64_t)hp->n_head * hd, KVD = (int64_t)hp->n_head_kv * hd;
	(void)thread;
	for (int64_t t = b; t < e; t++) {
		float *x = c->x + (size_t)t * (size_t)E, *xn = c->xn + (size_t)t * (size_t)E;
		switch (j->op) {
		case TOK_ADD_NORM:
		case TOK_ADD:
			if (j->wp)
				kern_rmsnorm(xn, xn, j->wp, E, hp->rms_eps);
			kern_add(x, x, xn, E);
			if (j->op == TOK_ADD)
				break;
			/* fall through */
		case TOK_NORM:
			kern_rmsnorm(xn, x, j->w, E, hp->rms_eps);
			break;
		case TOK_QKV: {
			const int64_t pos = (int64_t)c->n_past + t;
			float *q = c->q + (size_t)t * (size_t)QD, *k = c->kk + (size_t)t * (size_t)KVD;
			float *v = c->vv + (size_t)t * (size_t)KVD;
			if (j->L->bq)
				kern_add(q, q, j->L->bq, QD);
			if (j->L->bk)
				kern_add(k, k, j->L->bk, KVD);
			if (j->L->bv)
				kern_add(v, v, j->L->bv, KVD);
			for (int64_t h = 0; j->L->q_norm && h < hp->n_head; h++)
				kern_rmsnorm(q + h * hd, q + h * hd, j->L->q_norm, hd, hp->rms_eps);
			for (int64_t h = 0; j->L->k_norm && h < hp->n_head_kv; h++)
				kern_rmsnorm(k + h * hd, k + h * hd, j->L->k_norm, hd, hp->rms_eps);
			kern_rope_apply(q, hp->n_head, hd, pos, j->rope);
			kern_rope_apply(k, hp->n_head_kv, hd, pos, j->rope);
			kern_f32_to_f16(k, j->kc + (size_t)pos * (size_t)KVD, KVD);
			kern_f32_to_f16(v, j->vc + (size_t)pos * (size_t)KVD, KVD);
			break;
		}
		case TOK_GLU:
			if (hp->ffn_act == MODEL_ACT_GELU)
				kern_geglu(c->isa, c->g + (size_t)t * (size_t)F, c->u + (size_t)t * (size_t)F, F);
			else
				kern_swiglu(c->isa, c->g + (size_t)t * (size_t)F, c->u + (size_t)t * (size_t)F, F);
			break;
		}
	}
}

static void per_token(struct model_ctx *c, struct tok_job *j, enum tok_op op, const float *w,
		      const float *wp, int32_t T)
{
	j->op = op;
	j->w = w;
	j->wp = wp;
	if (c->pool)
		dm_pool_run(c->pool, T, 1, tok_range, j);
	else
		tok_range(j, 0, T, 0);
}

static int forward(struct model_ctx *c, const int32_t *tok, int32_t T, enum out_mode mode,
		   float *out, struct dm_err *err)
{
	const struct model *m = c->m;
	const struct model_hparams *hp = &m->hp;
	const int64_t E = hp->n_embd, KVD = (int64_t)hp->n_head_kv * hp->head_dim;
	const size_t emb_row = kern_row_bytes(m->tok_embd.type, E);
	struct kern_rope rope = {
		.mode = hp->rope_mode, .n_rot = hp->n_rot, .freq_factors = c->rope_factors,
		.attn_factor = hp->rope_attn_factor,
	};
	int rc;

	/* x = embed(tokens) */
	for (int32_t t = 0; t < T; t++) {
		const uint8_t *row = (const uint8_t *)m->tok_embd.data + (size_t)tok[t] * emb_row;
		if ((rc = kern_dequantize(m->tok_embd.type, row, c->x + (size_t)t * (size_t)E, E, err)))
			return rc;
		if (hp->embd_scale != 1.0f)
			kern_scale(c->x + (size_t)t * (size_t)E, c->x + (size_t)t * (size_t)E, hp->embd_scale, E);
	}

	struct tok_job tj = { .c = c, .rope = &rope };
	c->scratch_live = true;
	per_token(c, &tj, TOK_NORM, m->layers[0].attn_norm, NULL, T);
	for (int32_t l = 0; l < hp->n_layer; l++) {
		const struct model_layer *L = &m->layers[l];
		tj.L = L;
		rope.freq_base = L->rope_base;
		rope.freq_scale = L->rope_scale;
		tj.kc = c->k + (size_t)l * (size_t)c->n_ctx_max * (size_t)KVD;
		tj.vc = c->v + (size_t)l * (size_t)c->n_ctx_max * (size_t)KVD;

		/* attention block (xn = the normed x) */
		const struct model_w *qkv[] = { &L->wq, &L->wk, &L->wv };
		float *const qkv_out[] = { c->q, c->kk, c->vv };
		if ((rc = mm_set(c, qkv, qkv_out, 3, c->xn, T, err)))
			return rc;
		per_token(c, &tj, TOK_QKV, NULL, NULL, T);
		attention(c, tj.kc, tj.vc, L->n_swa, T);
		if ((rc = mm(c, &L->wo, c->att, T, c->xn, err)))
			return rc;

		/* feed-forward block */
		per_token(c, &tj, TOK_ADD_NORM, L->ffn_norm, L->attn_post_norm, T);
		const struct model_w *gate_up[] = { &L->w_gate, &L->w_up };
		float *const gate_up_out[] = { c->g, c->u };
		if ((rc = mm_set(c, gate_up, gate_up_out, 2, c->xn, T, err)))
			return rc;
		per_token(c, &tj, TOK_GLU, NULL, NULL, T);
		if ((rc = mm(c, &L->w_down, c->g, T, c->xn, err)))
			return rc;
		if (l + 1 < hp->n_layer) /* the next layer's attention norm */
			per_token(c, &tj, TOK_ADD_NORM, m->layers[l + 1].attn_norm, L->ffn_post_norm, T);
		else
			per_token(c, &tj, TOK_ADD, NULL, L->ffn_post_norm, T);
	}

	switch (mode) {
	case OUT_NONE:
		break;
	case OUT_LAST:
		kern_rmsnorm(c->xn, c->x + (size_t)(T - 1) * (size_t)E, m->output_norm, E, hp->rms_eps);
		if ((rc = mm(c, &m->output, c->xn, 1, out, err)))
			return rc;
		if (hp->final_softcap > 0)
			kern_softcap(c->isa, out, out, hp->final_softcap, hp->n_vocab);
		break;
	case OUT_ALL:
		for (int32_t t = 0; t < T; t++)
			kern_rmsnorm(c->xn + (size_t)t * (size_t)E, c->x + (size_t)t * (size_t)E,
				     m->output_norm, E, hp->rms_eps);
		if ((rc = mm(c, &m->output, c->xn, T, out, err)))
			return rc;
		if (hp->final_softcap > 0)
			kern_softcap(c->isa, out, out, hp->final_softcap, (int64_t)T * hp->n_vocab);
		break;
	case OUT_HIDDEN_SUM:
	case OUT_HIDDEN_LAST:
		for (int32_t t = mode == OUT_HIDDEN_LAST ? T - 1 : 0; t < T; t++) {
			kern_rmsnorm(c->xn, c->x + (size_t)t * (size_t)E, m->output_norm, E, hp->rms_eps);
			if (mode == OUT_HIDDEN_LAST)
				memcpy(out, c->xn, (size_t)E * sizeof(float));
			else
				kern_add(out, out, c->xn, E);
		}
		break;
	}
	memcpy(c->tokens + c->n_past, tok, (size_t)T * sizeof *tok);
	c->n_past += T;
	if (c->n_past > c->n_touched)
		c->n_touched = c->n_past;
	return 0;
}

static int check_tokens(const struct model_ctx *c, const int32_t *tokens, int32_t n,
			struct dm_err *err)
{
	if (c->m->hp.encoder)
		return dm_err_set(err, DM_EUNSUPPORTED, "%s is an encoder: it embeds and ranks, it does not generate",
				  c->m->hp.arch_name);
	if (n < 0)
		return dm_err_set(err, DM_EINVAL, "negative token count");
	if ((int64_t)c->n_past + n > c->n_ctx)
		return dm_err_set(err, DM_ENOSPC, "context full: %d + %d tokens > n_ctx %d", c->n_past,
				  n, c->n_ctx);
	for (int32_t i = 0; i < n; i++)
		if (tokens[i] < 0 || tokens[i] >= c->m->hp.n_vocab)
			return dm_err_set(err, DM_EINVAL, "token id %d at position %d is out of range (vocabulary of %d)",
					  tokens[i], i, c->m->hp.n_vocab);
	return 0;
}

int model_decode(struct model_ctx *c, const int32_t *tokens, int32_t n, float *logits,
		 bool all_logits, struct dm_err *err)
{
	const int32_t V = c->m->hp.n_vocab;
	int32_t n_past0 = c->n_past;
	int rc;

	if ((rc = check_tokens(c, tokens, n, err)))
		return rc;
	for (int32_t i = 0; i < n; i += c->n_batch) {
		int32_t T = n - i < c->n_batch ? n - i : c->n_batch;
		enum out_mode mode = !logits ? OUT_NONE : all_logits ? OUT_ALL
					 : (i + T == n ? OUT_LAST : OUT_NONE);
		float *out = !logits ? NULL : all_logits ? logits + (size_t)i * (size_t)V : logits;
		if ((rc = forward(c, tokens + i, T, mode, out, err))) {
			c->n_past = n_past0; /* the cache rows past n_past0 are garbage now */
			return rc;
		}
	}
	return 0;
}

int model_embed(struct model_ctx *c, const int32_t *tokens, int32_t n, bool mean, float *out,
		struct dm_err *err)
{
	const int64_t E = c->m->hp.n_embd;
	double norm = 0;
	int rc;

	if (n < 1)
		return dm_err_set(err, DM_EINVAL, "nothing to embed");
	model_ctx_reset(c);
	if ((rc = check_tokens(c, tokens, n, err)))
		return rc;
	memset(out, 0, (size_t)E * sizeof(float));
	for (int32_t i = 0; i < n; i += c->n_batch) {
		int32_t T = n - i < c->n_batch ? n - i : c->n_batch;
		enum out_mode mode = mean ? OUT_HIDDEN_SUM : (i + T == n ? OUT_HIDDEN_LAST : OUT_NONE);
		if ((rc = forward(c, tokens + i, T, mode, out, err))) {
			model_ctx_reset(c);
			return rc;
		}
	}
	for (int64_t i = 0; i < E; i++)
		norm += (double)out[i] * out[i];
	norm = sqrt(norm);
	for (int64_t i = 0; i < E; i++)
		out[i] = norm > 0 ? (float)(out[i] / norm) : 0.0f;
	model_ctx_reset(c);
	return 0;
}

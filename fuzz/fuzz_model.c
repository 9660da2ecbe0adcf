/*
 * fuzz/model — libFuzzer target for the architecture binding: any input the
 * GGUF reader accepts must either be refused by model_bind with an error or
 * bind into a model whose hyper-parameters are usable and whose every
 * weight view (fused tensors' row views included) lies inside the input;
 * such a model then runs two tokens in a context of 8 without a fault.
 * The seeds (fuzz/seeds.c) are tiny models of every architecture.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "kern/kern.h"
#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void oracle(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_model: accepted a model with %s\n", what);
		abort();
	}
}

static void inside(const uint8_t *buf, size_t size, const struct model_w *w, const char *what)
{
	size_t rb = kern_row_bytes(w->type, w->ne0);
	const uint8_t *p = w->data;
	oracle(rb > 0 && w->ne1 > 0, what);
	oracle(p >= buf && p <= buf + size && (size_t)w->ne1 * rb <= (size_t)(buf + size - p), what);
}

static void vec_inside(const uint8_t *buf, size_t size, const float *v, int64_t n, const char *what)
{
	const uint8_t *p = (const uint8_t *)v;
	if (!v)
		return;
	oracle(p >= buf && p <= buf + size && (size_t)n * 4 <= (size_t)(buf + size - p), what);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gguf_file *g;
	struct model *m;
	struct dm_err err;
	uint8_t *copy = malloc(size ? size : 1);

	if (!copy)
		return 0;
	if (size)
		memcpy(copy, data, size);
	if (gguf_open_buffer(&g, copy, size, "fuzz", &err) == 0) {
		if (model_bind(&m, g, &err) == 0) {
			const struct model_hparams *hp = &m->hp;
			const int64_t hd = hp->head_dim;
			oracle(hp->n_head_kv >= 1 && hp->n_head % hp->n_head_kv == 0, "a bad GQA ratio");
			oracle(hd >= 2 && hd % 2 == 0 && hp->n_rot >= 2 && hp->n_rot <= hd, "a bad head size");
			oracle(hp->n_swa >= 0, "a negative window");
			oracle(isfinite(hp->rope_base) && hp->rope_base > 0, "a bad RoPE base");
			oracle(isfinite(hp->rope_attn_factor) && hp->rope_attn_factor > 0, "a bad attn_factor");
			oracle(isfinite(hp->attn_softcap) && hp->attn_softcap >= 0, "a bad attention soft-cap");
			oracle(isfinite(hp->final_softcap) && hp->final_softcap >= 0, "a bad final soft-cap");
			oracle(isfinite(hp->rms_eps) && hp->rms_eps >= 0, "a bad epsilon");
			inside(copy, size, &m->tok_embd, "token_embd outside the file");
			inside(copy, size, &m->output, "output outside the file");
			vec_inside(copy, size, m->rope_factors_long, hp->n_rot / 2, "rope factors outside the file");
			vec_inside(copy, size, m->rope_factors_short, hp->n_rot / 2, "rope factors outside the file");
			for (int32_t l = 0; l < hp->n_layer; l++) {
				const struct model_layer *L = &m->layers[l];
				inside(copy, size, &L->wq, "attn_q outside the file");
				inside(copy, size, &L->wk, "attn_k outside the file");
				inside(copy, size, &L->wv, "attn_v outside the file");
				inside(copy, size, &L->wo, "attn_output outside the file");
				inside(copy, size, &L->w_gate, "ffn_gate outside the file");
				inside(copy, size, &L->w_up, "ffn_up outside the file");
				inside(copy, size, &L->w_down, "ffn_down outside the file");
				vec_inside(copy, size, L->q_norm, hd, "attn_q_norm outside the file");
				vec_inside(copy, size, L->k_norm, hd, "attn_k_norm outside the file");
				vec_inside(copy, size, L->attn_post_norm, hp->n_embd, "a post-norm outside the file");
				vec_inside(copy, size, L->ffn_post_norm, hp->n_embd, "a post-norm outside the file");
				oracle(L->n_swa >= 0 && isfinite(L->rope_base) && L->rope_base > 0, "a bad layer");
			}
			/* small enough to run: two tokens through the whole model */
			if ((int64_t)hp->n_layer * hp->n_embd * (hp->n_ff + hp->n_embd) < (1 << 22)) {
				struct model_ctx *c;
				struct model_ctx_params cp = { .n_ctx = 8, .n_batch = 2 };
				if (model_ctx_init(&c, m, &cp, &err) == 0) {
					int32_t tok[2] = { 0, hp->n_vocab - 1 };
					float *lg = malloc((size_t)hp->n_vocab * sizeof *lg);
					if (lg)
						(void)model_decode(c, tok, 2, lg, false, &err);
					free(lg);
					model_ctx_free(c);
				}
			}
			model_free(m);
		}
		gguf_close(g);
	}
	free(copy);
	return 0;
}

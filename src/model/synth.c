/*
 * model/synth — see synth.h.
 *
 * Tensor names and shapes are those of llama-family GGUF files (ne[0] is the
 * row length, i.e. the input dimension):
 *   token_embd.weight      (n_embd, n_vocab)
 *   blk.L.attn_norm.weight (n_embd)
 *   blk.L.attn_q.weight    (n_embd, n_embd)
 *   blk.L.attn_k.weight    (n_embd, n_head_kv * head_dim)
 *   blk.L.attn_v.weight    (n_embd, n_head_kv * head_dim)
 *   blk.L.attn_output.weight (n_embd, n_embd)
 *   blk.L.ffn_norm.weight  (n_embd)
 *   blk.L.ffn_gate.weight  (n_embd, n_ff)
 *   blk.L.ffn_up.weight    (n_embd, n_ff)
 *   blk.L.ffn_down.weight  (n_ff, n_embd)
 *   output_norm.weight     (n_embd)
 *   output.weight          (n_embd, n_vocab)
 * Each tensor's values come from its own generator seeded by (seed, tensor
 * index), so a tensor's contents do not depend on the weight type chosen.
 *
 * Other architectures (--arch) add what their files carry, with small
 * hyper-parameters chosen so that a short prompt exercises every feature:
 *   qwen2   q/k/v biases
 *   qwen3   per-head attn_q_norm / attn_k_norm; in the tiny preset head size
 *           2·n_embd/n_head (key_length ≠ n_embd/n_head)
 *   gemma2  post_attention_norm / post_ffw_norm, GeGLU, attention and final
 *           soft-capping, a window on even layers (4 in the tiny preset), tied output
 *   gemma3  as gemma2 without attention soft-capping, Q/K norms, windowed
 *           layers 5 of every 6, linear RoPE scaling ×8 on global layers
 *   phi3    fused attn_qkv and gate+up ffn_up, LongRoPE factors with an
 *           original context of n_ctx/4 and attn_factor √1.25
 * Their norm weights are 1 + 0.1·N(0, 1) (llama's and qwen2's stay 1.0, so
 * those models are the same as before), so a misplaced norm shows.
 *
 * The encoders (bert, nomic-bert) have the tensors model.c's bind_encoder
 * reads (E = n_embd, F = n_ff, V = n_vocab):
 *   token_embd.weight (E, V)  token_types.weight (E, 2)
 *   position_embd.weight (E, n_ctx)                       bert only
 *   token_embd_norm.weight / .bias (E)
 *   blk.L.attn_q/k/v.weight (E, E) + .bias (E)            bert
 *   blk.L.attn_qkv.weight (E, 3E)                         nomic-bert
 *   blk.L.attn_output.weight (E, E) [+ .bias (bert)]
 *   blk.L.attn_output_norm.weight / .bias (E)
 *   blk.L.ffn_up.weight (E, F) [+ .bias (bert)]
 *   blk.L.ffn_gate.weight (E, F)                          nomic-bert
 *   blk.L.ffn_down.weight (F, E) [+ .bias (bert)]
 *   blk.L.layer_output_norm.weight / .bias (E)
 *   cls.weight (E, E) + cls.bias (E), cls.output.weight (E, 1) +
 *   cls.output.bias (1)                                   with rank
 * LayerNorm weights 1 + 0.1·N(0, 1), biases 0.05·N(0, 1), matrices and the
 * embedding tables 0.02·N(0, 1) (token_types and position_embd always F32;
 * token_embd in the weight type), and a WordPiece
 * vocabulary in llama.cpp's BERT layout (see vocab_make_wpm).
 */
#include "model/synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/half.h"
#include "base/rng.h"
#include "gguf/gguf.h"
#include "kern/kern.h"

int synth_preset(const char *name, struct synth_shape *s, struct dm_err *err)
{
	static const struct synth_shape presets[] = {
		/* name    embd  layer head kv  ff    vocab  ctx */
		{ "tiny", 256, 2, 8, 4, 768, 512, 512 },
		{ "110m", 768, 12, 12, 12, 2048, 32000, 2048 },
		{ "1b", 2048, 22, 32, 4, 5632, 32000, 2048 },
		{ "minilm", 384, 6, 12, 12, 1536, 30522, 512 },
	};
	for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
		if (!strcmp(name, presets[i].preset)) {
			*s = presets[i];
			return 0;
		}
	return dm_err_set(err, DM_EINVAL, "unknown preset '%s' (tiny, 110m, 1b, minilm)", name);
}

/* ggml's general.file_type numbers for a model whose matrices are `type`. */
static int file_type_of(uint32_t type)
{
	switch (type) {
	case GGUF_TYPE_F32: return 0;
	case GGUF_TYPE_F16: return 1;
	case GGUF_TYPE_Q4_0: return 2;
	case GGUF_TYPE_Q4_1: return 3;
	case GGUF_TYPE_Q8_0: return 7;
	case GGUF_TYPE_Q5_0: return 8;
	case GGUF_TYPE_Q5_1: return 9;
	case GGUF_TYPE_Q2_K: return 10;
	case GGUF_TYPE_Q3_K: return 12;
	case GGUF_TYPE_Q4_K: return 15;
	case GGUF_TYPE_Q5_K: return 17;
	case GGUF_TYPE_Q6_K: return 18;
	case GGUF_TYPE_BF16: return 32;
	}
	return -1;
}

/* F32/F16/BF16, and every quantized type kern has a reference quantizer
 * for (Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K..Q6_K; bytes identical to ggml's). */
static bool encodable(uint32_t type)
{
	struct kern_traits t;
	return type == GGUF_TYPE_F32 || type == GGUF_TYPE_F16 || type == GGUF_TYPE_BF16 ||
	       (kern_traits_get(type, KERN_ISA_REF, &t) == 0 && t.from_float);
}

/* Encodes a row of n floats as `type`.  Returns DM_EUNSUPPORTED for types
 * this build cannot encode yet (see encodable()). */
static int encode_row(uint32_t type, const float *x, int64_t n, void *out)
{
	switch (type) {
	case GGUF_TYPE_F32:
		memcpy(out, x, (size_t)n * sizeof *x);
		return 0;
	case GGUF_TYPE_F16:
		for (int64_t i = 0; i < n; i++)
			((uint16_t *)out)[i] = dm_f32_to_f16(x[i]);
		return 0;
	case GGUF_TYPE_BF16:
		for (int64_t i = 0; i < n; i++)
			((uint16_t *)out)[i] = dm_f32_to_bf16(x[i]);
		return 0;
	}
	if (!encodable(type))
		return DM_EUNSUPPORTED;
	return kern_quantize(type, x, out, n, NULL);
}

/* The generated SentencePiece vocabulary: <unk> <s> </s>, 256 byte tokens,
 * then pieces built breadth-first from single characters so every piece of
 * length k is the merge of a piece of length k-1 and a letter. */
struct vocab {
	char **tok;
	float *score;
	int32_t *type;
	uint32_t n;
};

static void vocab_free(struct vocab *v)
{
	if (v->tok)
		for (uint32_t i = 0; i < v->n; i++)
			free(v->tok[i]);
	free(v->tok);
	free(v->score);
	free(v->type);
}

static int vocab_add(struct vocab *v, uint32_t cap, const char *s, float score, int32_t type)
{
	if (v->n >= cap)
		return 1;
	if (!(v->tok[v->n] = strdup(s)))
		return -1;
	v->score[v->n] = score;
	v->type[v->n] = type;
	v->n++;
	return 0;
}

static int vocab_make(struct vocab *v, uint32_t n_vocab, struct dm_err *err)
{
	static const char *const specials[] = { "<unk>", "<s>", "</s>" };
	static const int32_t special_types[] = { 2, 3, 3 }; /* unknown, control */
	static const char letters[] = "etaoinshrdlcumwfgypbvkjxqz";
	static const char singles[] = "etaoinshrdlcumwfgypbvkjxqzETAOINSHRDLCUMWFGYPBVKJXQZ"
				      "0123456789.,!?'\"-:;()";
	char buf[64];
	uint32_t lvl_start, lvl_end, base;
	int rc = 0;

	memset(v, 0, sizeof *v);
	if (n_vocab < 3 + 256 + 1)
		return dm_err_set(err, DM_EINVAL, "vocabulary of %u is too small", n_vocab);
	v->tok = calloc(n_vocab, sizeof *v->tok);
	v->score = calloc(n_vocab, sizeof *v->score);
	v->type = calloc(n_vocab, sizeof *v->type);
	if (!v->tok || !v->score || !v->type)
		goto oom;
	for (int i = 0; i < 3; i++)
		if (vocab_add(v, n_vocab, specials[i], 0.0f, special_types[i]) < 0)
			goto oom;
	for (int b = 0; b < 256; b++) {
		snprintf(buf, sizeof buf, "<0x%02X>", b);
		if (vocab_add(v, n_vocab, buf, 0.0f, 6) < 0) /* byte */
			goto oom;
	}
	base = v->n;
	/* level 1: the word-start marker and single characters */
	lvl_start = v->n;
	rc = vocab_add(v, n_vocab, "\xe2\x96\x81", -0.0f, 1);
	for (const char *c = singles; *c && !rc; c++) {
		buf[0] = *c;
		buf[1] = '\0';
		rc = vocab_add(v, n_vocab, buf, -(float)(v->n - base), 1);
	}
	lvl_end = v->n;
	/* next levels: every piece of the previous level + each lower-case letter */
	while (!rc) {
		for (uint32_t p = lvl_start; p < lvl_end && !rc; p++) {
			size_t len = strlen(v->tok[p]);
			unsigned char c0 = (unsigned char)v->tok[p][0];
			if (len + 2 > sizeof buf || (len == 1 && !(c0 >= 'a' && c0 <= 'z')) ||
			    (c0 != 0xe2 && !(c0 >= 'a' && c0 <= 'z')))
				continue; /* extend words and word starts only */
			for (const char *c = letters; *c && !rc; c++) {
				memcpy(buf, v->tok[p], len);
				buf[len] = *c;
				buf[len + 1] = '\0';
				rc = vocab_add(v, n_vocab, buf, -(float)(v->n - base), 1);
			}
		}
		if (v->n == lvl_end)
			break; /* nothing new: cannot happen with the letters above */
		lvl_start = lvl_end;
		lvl_end = v->n;
	}
	if (rc < 0)
		goto oom;
	if (v->n != n_vocab) {
		vocab_free(v);
		return dm_err_set(err, DM_EINVAL, "could not generate %u tokens", n_vocab);
	}
	return 0;
oom:
	vocab_free(v);
	return dm_err_set(err, DM_ENOMEM, "out of memory for the vocabulary");
}

/* The WordPiece vocabulary of the encoders, in the layout of llama.cpp's
 * BERT conversion (which tok/wpm reads): [PAD] [UNK] [CLS] [SEP] [MASK] as
 * ids 0-4 (control tokens), then every character of `singles` as a
 * word-initial piece "▁c" and as a continuation piece "c" (so every ASCII
 * word made of them tokenizes without [UNK]), then breadth-first the
 * letter-only pieces of the previous level (word-initial and continuation)
 * extended by each lower-case letter, until n_vocab. */
static int vocab_make_wpm(struct vocab *v, uint32_t n_vocab, struct dm_err *err)
{
	static const char *const specials[] = { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" };
	static const char letters[] = "etaoinshrdlcumwfgypbvkjxqz";
	static const char singles[] = "etaoinshrdlcumwfgypbvkjxqz0123456789.,!?'\"-:;()";
	const uint32_t n_min = 5 + 2 * (uint32_t)(sizeof singles - 1) + 1;
	char buf[64];
	uint32_t lvl_start, lvl_end;
	int rc = 0;

	memset(v, 0, sizeof *v);
	if (n_vocab < n_min)
		return dm_err_set(err, DM_EINVAL, "a WordPiece vocabulary of %u is too small (at least %u)",
				  n_vocab, n_min);
	v->tok = calloc(n_vocab, sizeof *v->tok);
	v->score = calloc(n_vocab, sizeof *v->score);
	v->type = calloc(n_vocab, sizeof *v->type);
	if (!v->tok || !v->score || !v->type)
		goto oom;
	for (int i = 0; i < 5; i++)
		if (vocab_add(v, n_vocab, specials[i], 0.0f, 3) < 0) /* control */
			goto oom;
	lvl_start = v->n;
	for (const char *c = singles; *c && !rc; c++) {
		snprintf(buf, sizeof buf, "\xe2\x96\x81%c", *c);
		rc = vocab_add(v, n_vocab, buf, 0.0f, 1);
		snprintf(buf, sizeof buf, "%c", *c);
		if (!rc)
			rc = vocab_add(v, n_vocab, buf, 0.0f, 1);
	}
	lvl_end = v->n;
	while (!rc) {
		for (uint32_t p = lvl_start; p < lvl_end && !rc; p++) {
			const char *t = v->tok[p];
			size_t len = strlen(t);
			const char *body = (unsigned char)t[0] == 0xe2 ? t + 3 : t;
			if (len + 2 > sizeof buf || strspn(body, letters) != strlen(body))
				continue; /* extend letter-only pieces */
			for (const char *c = letters; *c && !rc; c++) {
				memcpy(buf, t, len);
				buf[len] = *c;
				buf[len + 1] = '\0';
				rc = vocab_add(v, n_vocab, buf, 0.0f, 1);
			}
		}
		if (v->n == lvl_end)
			break;
		lvl_start = lvl_end;
		lvl_end = v->n;
	}
	if (rc < 0)
		goto oom;
	if (v->n != n_vocab) {
		vocab_free(v);
		return dm_err_set(err, DM_EINVAL, "could not generate %u tokens", n_vocab);
	}
	return 0;
oom:
	vocab_free(v);
	return dm_err_set(err, DM_ENOMEM, "out of memory for the vocabulary");
}

bool synth_is_encoder(const char *arch)
{
	return arch && (!strcmp(arch, "bert") || !strcmp(arch, "nomic-bert"));
}

struct wtensor_plan {
	char name[64];
	int64_t ne[2];
	uint32_t n_dims, type;
	bool norm;     /* 1.0, or 1 + 0.1·N(0, 1) with rnd_norm */
	bool rnd_norm;
	bool factors;  /* RoPE frequency divisors 1 + i/4 (long) or 1 + i/16 (short) */
	bool bias;     /* an encoder's bias: 0.05·N(0, 1) */
};

uint32_t synth_head_dim(const struct synth_opts *o)
{
	uint32_t hd = o->shape.n_head ? o->shape.n_embd / o->shape.n_head : 0;
	/* qwen3's tiny models exercise key_length != n_embd / n_head; the
	 * larger presets keep llama's size, so that speeds compare */
	return o->arch && !strcmp(o->arch, "qwen3") && o->shape.preset && !strcmp(o->shape.preset, "tiny") ? 2 * hd
																	   : hd;
}

/* An encoder's keys: read_hparams's for bert / nomic-bert, and the WordPiece
 * vocabulary with its special ids. */
static int add_metadata_encoder(struct gguf_writer *w, const struct synth_opts *o, const struct vocab *v,
				struct dm_err *err)
{
	const struct synth_shape *s = &o->shape;
	const char *a = o->arch;
	char name[64], key[96];
	int rc = 0;

	snprintf(name, sizeof name, "dormant-synth-%s-%s%s", a, s->preset ? s->preset : "custom",
		 o->rank ? "-rerank" : "");
#define T(x) if (!rc) rc = (x)
#define K(suffix) (snprintf(key, sizeof key, "%s.%s", a, suffix), key)
	T(gguf_writer_add_str(w, "general.architecture", a, err));
	T(gguf_writer_add_str(w, "general.name", name, err));
	T(gguf_writer_add_str(w, "general.description",
			      "synthetic encoder with random weights made by dormant synth; "
			      "its vectors and scores are meaningless", err));
	T(gguf_writer_add_u32(w, "general.file_type", (uint32_t)file_type_of(o->type), err));
	T(gguf_writer_add_u32(w, "general.quantization_version", 2, err));
	T(gguf_writer_add_bool(w, "dormant.synthetic", true, err));
	T(gguf_writer_add_u64(w, "dormant.synth.seed", o->seed, err));
	T(gguf_writer_add_u32(w, K("context_length"), s->n_ctx, err));
	T(gguf_writer_add_u32(w, K("embedding_length"), s->n_embd, err));
	T(gguf_writer_add_u32(w, K("block_count"), s->n_layer, err));
	T(gguf_writer_add_u32(w, K("feed_forward_length"), s->n_ff, err));
	T(gguf_writer_add_u32(w, K("attention.head_count"), s->n_head, err));
	T(gguf_writer_add_f32(w, K("attention.layer_norm_epsilon"), 1e-12f, err));
	T(gguf_writer_add_bool(w, K("attention.causal"), false, err));
	T(gguf_writer_add_u32(w, K("pooling_type"), o->rank ? 4 : 1, err)); /* rank : mean */
	if (!strcmp(a, "nomic-bert"))
		T(gguf_writer_add_f32(w, K("rope.freq_base"), 1000.0f, err));
	T(gguf_writer_add_u32(w, K("vocab_size"), s->n_vocab, err));
	T(gguf_writer_add_str(w, "tokenizer.ggml.model", "bert", err));
	T(gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tok, NULL,
				  v->n, err));
	T(gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, v->type, v->n, err));
	T(gguf_writer_add_u32(w, "tokenizer.ggml.padding_token_id", 0, err));
	T(gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", 1, err));
	T(gguf_writer_add_u32(w, "tokenizer.ggml.cls_token_id", 2, err));
	T(gguf_writer_add_u32(w, "tokenizer.ggml.seperator_token_id", 3, err));
	T(gguf_writer_add_u32(w, "tokenizer.ggml.mask_token_id", 4, err));
#undef K
#undef T
	return rc;
}

static int add_metadata(struct gguf_writer *w, const struct synth_opts *o, const struct vocab *v,
			struct dm_err *err)
{
	const struct synth_shape *s = &o->shape;
	const char *a = o->arch ? o->arch : "llama";
	const uint32_t hd = synth_head_dim(o);
	char name[64], key[96];
	int rc = 0;

	snprintf(name, sizeof name, "dormant-synth-%s", s->preset ? s->preset : "custom");
#define T(x) if (!rc) rc = (x)
	T(gguf_writer_add_str(w, "general.architecture", a, err));
	T(gguf_writer_add_str(w, "general.name", name, err));
	T(gguf_writer_add_str(w, "general.description",
			      "synthetic model with random weights made by dormant synth; "
			      "its text is meaningless", err));
	T(gguf_writer_add_u32(w, "general.file_type", (uint32_t)file_type_of(o->type), err));
	T(gguf_writer_add_u32(w, "general.quantization_version", 2, err));
	T(gguf_writer_add_bool(w, "dormant.synthetic", true, err));
	T(gguf_writer_add_u64(w, "dormant.synth.seed", o->seed, err));
	T(gguf_writer_add_u32(w, (snprintf(key, sizeof key, "%s.context_length", a), key), s->n_ctx, err));
	T(gguf_writer_add_u32(w, (snprintf(key, sizeof key, "%s.embedding_length", a), key), s->n_embd, err));
	T(gguf_writer_add_u32(w, (snprintf(key, sizeof key, "%s.block_count", a), key), s->n_layer, err));
	T(gguf_writer_add_u32(w, (snprintf(key, sizeof key, "%s.feed_forward_length", a), key), s->n_ff, err));
	T(gguf_writer_add_u32(w, (snprintf(key, sizeof key, "%s.rope.dimension_count", a), key), hd, err));
	if (strcmp(a, "llama") && strcmp(a, "qwen2")) {
		T(gguf_writer_add_u32(w, (snprintf(key, sizeof key, "%s.attention.key_length", a), key), hd, err));
		T(gguf_writer_add_u32(w, (snprintf(key, sizeof key, "%s.attention.value_length", a), key), hd, err));
	}
	/* the tiny preset's window is 4 so that tests' short prompts cross it;
	 * larger presets use Gemma 3 1B's 512 (gemma2's files say 4096) */
	if (!strcmp(a, "gemma2") || !strcmp(a, "gemma3"))
		T(gguf_writer_add_u32(w, (snprintf(key, sizeof key, "%s.attention.sliding_window", a), key),
				      s->preset && !strcmp(s->preset, "tiny") ? 4 : !strcmp(a, "gemma2") ? 4096 : 512, err));
	if (!strcmp(a, "gemma2")) {
		T(gguf_writer_add_f32(w, (snprintf(key, sizeof key, "%s.attn_logit_softcapping", a), key), 0.2f, err));
		T(gguf_writer_add_f32(w, (snprintf(key, sizeof key, "%s.final_logit_softcapping", a), key), 1.5f, err));
	}
	if (!strcmp(a, "gemma3")) {
		T(gguf_writer_add_str(w, (snprintf(key, sizeof key, "%s.rope.scaling.type", a), key), "linear", err));
		T(gguf_writer_add_f32(w, (snprintf(key, sizeof key, "%s.rope.scaling.factor", a), key), 8.0f, err));
	}
	if (!strcmp(a, "phi3")) {
		T(gguf_writer_add_u32(w, (snprintf(key, sizeof key, "%s.rope.scaling.original_context_length", a), key),
				      s->n_ctx / 4, err));
		T(gguf_writer_add_f32(w, (snprintf(key, sizeof key, "%s.rope.scaling.attn_factor", a), key),
				      1.118034f, err));
		T(gguf_writer_add_u32(w, (snprintf(key, sizeof key, "%s.attention.sliding_window", a), key), s->n_ctx, err));
	}
	T(gguf_writer_add_u32(w, (snprintf(key, sizeof key, "%s.attention.head_count", a), key), s->n_head, err));
	T(gguf_writer_add_u32(w, (snprintf(key, sizeof key, "%s.attention.head_count_kv", a), key), s->n_head_kv, err));
	T(gguf_writer_add_f32(w, (snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", a), key), 1e-5f, err));
	T(gguf_writer_add_f32(w, (snprintf(key, sizeof key, "%s.rope.freq_base", a), key),
			      !strcmp(a, "qwen3") || !strcmp(a, "gemma3") ? 1e6f : 10000.0f, err));
	T(gguf_writer_add_u32(w, (snprintf(key, sizeof key, "%s.vocab_size", a), key), s->n_vocab, err));
	T(gguf_writer_add_str(w, "tokenizer.ggml.model", "llama", err));
	T(gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tok, NULL,
				  v->n, err));
	T(gguf_writer_add_arr(w, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, v->score, v->n, err));
	T(gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, v->type, v->n, err));
	T(gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 1, err));
	T(gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 2, err));
	T(gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", 0, err));
	T(gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", true, err));
	T(gguf_writer_add_bool(w, "tokenizer.ggml.add_eos_token", false, err));
#undef T
	return rc;
}

/* llama.cpp's rule for the layers that get more bits in the _M mixes. */
static bool more_bits(uint32_t l, uint32_t n)
{
	return l < n / 8 || l >= 7 * n / 8 || (l >= n / 8 && (l - n / 8) % 3 == 2);
}

/* kind: 0 matrix (o->type, 0.02·N), 1 norm (F32), 2 F32 table or vector
 * 0.02·N, 3 rope factors, 4 bias (F32, 0.05·N) */
#define ADD(nm, a, b, nd, kind)                                                          \
	do {                                                                             \
		snprintf(p[k].name, sizeof p[k].name, "%s", nm);                         \
		p[k].ne[0] = (a);                                                        \
		p[k].ne[1] = (b);                                                        \
		p[k].n_dims = (nd);                                                      \
		p[k].norm = (kind) == 1;                                                 \
		p[k].rnd_norm = (kind) == 1 && rnd_norm;                                 \
		p[k].factors = (kind) == 3;                                              \
		p[k].bias = (kind) == 4;                                                 \
		p[k].type = (kind) ? GGUF_TYPE_F32 : o->type;                            \
		k++;                                                                     \
	} while (0)
#define BLK(suffix, a, b, nd, kind)                                                      \
	do {                                                                             \
		snprintf(nm, sizeof nm, "blk.%u.%s", l, suffix);                         \
		ADD(nm, a, b, nd, kind);                                                 \
	} while (0)

/* The encoder's tensors, in the order of the table at the top. */
static int plan_tensors_encoder(const struct synth_opts *o, struct wtensor_plan **out, uint32_t *n_out,
				struct dm_err *err)
{
	const struct synth_shape *s = &o->shape;
	const bool bert = !strcmp(o->arch, "bert"), rnd_norm = true;
	const int64_t E = s->n_embd, F = s->n_ff;
	uint32_t n = 10 + 20 * s->n_layer, k = 0;
	struct wtensor_plan *p = calloc(n, sizeof *p);
	char nm[64];

	if (!p)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	ADD("token_embd.weight", E, s->n_vocab, 2, 0);
	ADD("token_types.weight", E, 2, 2, 2);
	if (bert)
		ADD("position_embd.weight", E, s->n_ctx, 2, 2);
	ADD("token_embd_norm.weight", E, 1, 1, 1);
	ADD("token_embd_norm.bias", E, 1, 1, 4);
	for (uint32_t l = 0; l < s->n_layer; l++) {
		if (bert) {
			BLK("attn_q.weight", E, E, 2, 0);
			BLK("attn_q.bias", E, 1, 1, 4);
			BLK("attn_k.weight", E, E, 2, 0);
			BLK("attn_k.bias", E, 1, 1, 4);
			BLK("attn_v.weight", E, E, 2, 0);
			BLK("attn_v.bias", E, 1, 1, 4);
		} else {
			BLK("attn_qkv.weight", E, 3 * E, 2, 0);
		}
		BLK("attn_output.weight", E, E, 2, 0);
		if (bert)
			BLK("attn_output.bias", E, 1, 1, 4);
		BLK("attn_output_norm.weight", E, 1, 1, 1);
		BLK("attn_output_norm.bias", E, 1, 1, 4);
		BLK("ffn_up.weight", E, F, 2, 0);
		if (bert)
			BLK("ffn_up.bias", F, 1, 1, 4);
		else
			BLK("ffn_gate.weight", E, F, 2, 0);
		BLK("ffn_down.weight", F, E, 2, 0);
		if (bert)
			BLK("ffn_down.bias", E, 1, 1, 4);
		BLK("layer_output_norm.weight", E, 1, 1, 1);
		BLK("layer_output_norm.bias", E, 1, 1, 4);
	}
	if (o->rank) {
		ADD("cls.weight", E, E, 2, 0);
		ADD("cls.bias", E, 1, 1, 4);
		ADD("cls.output.weight", E, 1, 2, 0);
		ADD("cls.output.bias", 1, 1, 1, 4);
	}
	*out = p;
	*n_out = k;
	return 0;
}

static int plan_tensors(const struct synth_opts *o, struct wtensor_plan **out, uint32_t *n_out,
			struct dm_err *err)
{
	const struct synth_shape *s = &o->shape;
	const char *arch = o->arch ? o->arch : "llama";
	const int64_t hd = synth_head_dim(o), qd = hd * s->n_head, kv = hd * s->n_head_kv;
	const bool bias = !strcmp(arch, "qwen2"), qk_norm = !strcmp(arch, "qwen3") || !strcmp(arch, "gemma3");
	const bool gemma = !strcmp(arch, "gemma2") || !strcmp(arch, "gemma3"), phi3 = !strcmp(arch, "phi3");
	const bool rnd_norm = strcmp(arch, "llama") && strcmp(arch, "qwen2");
	uint32_t n = 5 + 16 * s->n_layer, k = 0;
	struct wtensor_plan *p = calloc(n, sizeof *p);

	if (!p)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	ADD("token_embd.weight", s->n_embd, s->n_vocab, 2, 0);
	if (phi3) {
		ADD("rope_factors_long.weight", hd / 2, 1, 1, 3);
		ADD("rope_factors_short.weight", hd / 2, 1, 1, 3);
	}
	for (uint32_t l = 0; l < s->n_layer; l++) {
		char nm[64];
		BLK("attn_norm.weight", s->n_embd, 1, 1, 1);
		if (phi3) {
			BLK("attn_qkv.weight", s->n_embd, qd + 2 * kv, 2, 0);
		} else {
			BLK("attn_q.weight", s->n_embd, qd, 2, 0);
			BLK("attn_k.weight", s->n_embd, kv, 2, 0);
			BLK("attn_v.weight", s->n_embd, kv, 2, 0);
			if (o->q4_k_m && more_bits(l, s->n_layer))
				p[k - 1].type = GGUF_TYPE_Q6_K;
		}
		if (bias) {
			BLK("attn_q.bias", qd, 1, 1, 2);
			BLK("attn_k.bias", kv, 1, 1, 2);
			BLK("attn_v.bias", kv, 1, 1, 2);
		}
		if (qk_norm) {
			BLK("attn_q_norm.weight", hd, 1, 1, 1);
			BLK("attn_k_norm.weight", hd, 1, 1, 1);
		}
		BLK("attn_output.weight", qd, s->n_embd, 2, 0);
		if (gemma)
			BLK("post_attention_norm.weight", s->n_embd, 1, 1, 1);
		BLK("ffn_norm.weight", s->n_embd, 1, 1, 1);
		if (phi3) {
			BLK("ffn_up.weight", s->n_embd, 2 * (int64_t)s->n_ff, 2, 0);
		} else {
			BLK("ffn_gate.weight", s->n_embd, s->n_ff, 2, 0);
			BLK("ffn_up.weight", s->n_embd, s->n_ff, 2, 0);
		}
		BLK("ffn_down.weight", s->n_ff, s->n_embd, 2, 0);
		if (o->q4_k_m && more_bits(l, s->n_layer))
			p[k - 1].type = GGUF_TYPE_Q6_K;
		if (gemma)
			BLK("post_ffw_norm.weight", s->n_embd, 1, 1, 1);
	}
	ADD("output_norm.weight", s->n_embd, 1, 1, 1);
	if (!gemma) { /* gemma ties the output to token_embd */
		ADD("output.weight", s->n_embd, s->n_vocab, 2, 0);
		if (o->q4_k_m)
			p[k - 1].type = GGUF_TYPE_Q6_K;
	}
	*out = p;
	*n_out = k;
	return 0;
}
#undef BLK
#undef ADD

int synth_write(const struct synth_opts *o_in, const char *path, struct dm_err *err)
{
	const bool encoder = synth_is_encoder(o_in->arch);
	struct synth_opts eo = *o_in;
	const struct synth_opts *o = &eo;
	const struct synth_shape *s = &o->shape;
	struct gguf_writer *w = NULL;
	struct wtensor_plan *plan = NULL;
	struct vocab v = { 0 };
	float *row = NULL;
	void *enc = NULL;
	uint32_t n_t = 0;
	int64_t max_row = s->n_embd > s->n_ff ? s->n_embd : s->n_ff;

	if (max_row < (int64_t)synth_head_dim(o) * s->n_head) /* attn_output's rows */
		max_row = (int64_t)synth_head_dim(o) * s->n_head;
	uint64_t rb;
	int rc;

	if (encoder)
		eo.shape.n_head_kv = eo.shape.n_head; /* encoders have no GQA */
	else if (o->rank)
		return dm_err_set(err, DM_EINVAL, "synth: rank pooling needs an encoder (bert, nomic-bert)");
	if (o->arch && !encoder && strcmp(o->arch, "llama") && strcmp(o->arch, "qwen2") && strcmp(o->arch, "qwen3") &&
	    strcmp(o->arch, "gemma2") && strcmp(o->arch, "gemma3") && strcmp(o->arch, "phi3"))
		return dm_err_set(err, DM_EINVAL, "synth: unknown architecture '%s' (%s)", o->arch, SYNTH_ARCHS);
	if (!s->n_head || s->n_embd % s->n_head || !s->n_head_kv || s->n_head % s->n_head_kv)
		return dm_err_set(err, DM_EINVAL, "bad shape: embd %u, heads %u, kv heads %u",
				  s->n_embd, s->n_head, s->n_head_kv);
	if (o->q4_k_m && o->type != GGUF_TYPE_Q4_K)
		return dm_err_set(err, DM_EINVAL, "synth: the Q4_K_M mix needs type Q4_K");
	if (file_type_of(o->type) < 0 || !encodable(o->type)) {
		const struct gguf_type_info *ti = gguf_type_get(o->type);
		return dm_err_set(err, DM_EUNSUPPORTED, "synth: weight type %s is not supported",
				  ti ? ti->name : "?");
	}
	if ((rc = encoder ? vocab_make_wpm(&v, s->n_vocab, err) : vocab_make(&v, s->n_vocab, err)))
		return rc;
	if ((rc = encoder ? plan_tensors_encoder(o, &plan, &n_t, err) : plan_tensors(o, &plan, &n_t, err)))
		goto out;
	row = malloc((size_t)max_row * sizeof *row);
	enc = malloc((size_t)max_row * sizeof(float));
	if (!row || !enc) {
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = gguf_writer_open(&w, path, err)))
		goto out;
	if ((rc = encoder ? add_metadata_encoder(w, o, &v, err) : add_metadata(w, o, &v, err)))
		goto out;
	for (uint32_t i = 0; i < n_t; i++) {
		rc = gguf_writer_add_tensor(w, plan[i].name, plan[i].type, plan[i].n_dims, plan[i].ne,
					    err);
		if (rc < 0)
			goto out;
	}
	if ((rc = gguf_writer_write_header(w, err)))
		goto out;
	for (uint32_t i = 0; i < n_t; i++) {
		const struct wtensor_plan *t = &plan[i];
		struct dm_rng rng;

		dm_rng_seed(&rng, o->seed * 0x100000001B3ull + i);
		if ((rc = gguf_type_row_bytes(t->type, t->ne[0], &rb, err)))
			goto out;
		for (int64_t r = 0; r < t->ne[1]; r++) {
			for (int64_t j = 0; j < t->ne[0]; j++)
				row[j] = t->factors ? 1.0f + (float)j / (strstr(t->name, "long") ? 4.0f : 16.0f)
					 : t->rnd_norm ? (float)(1.0 + 0.1 * dm_rng_normal(&rng))
					 : t->bias ? (float)(0.05 * dm_rng_normal(&rng))
					 : t->norm ? 1.0f
						   : (float)(0.02 * dm_rng_normal(&rng));
			if ((rc = encode_row(t->type, row, t->ne[0], enc))) {
				dm_err_set(err, rc, "synth: cannot encode %s", t->name);
				goto out;
			}
			if ((rc = gguf_writer_write(w, enc, rb, err)))
				goto out;
		}
	}
	rc = gguf_writer_close(w, err);
	w = NULL;
out:
	gguf_writer_free(w);
	free(row);
	free(enc);
	free(plan);
	vocab_free(&v);
	return rc;
}

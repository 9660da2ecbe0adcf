/*
 * model/synth — synthetic models for tests, benchmarks and the demo.
 *
 * Deterministic random weights N(0, 0.02) (norm weights 1.0 for llama and
 * qwen2, 1 + 0.1·N(0, 1) for the other architectures) and a generated
 * SentencePiece vocabulary (decoders) or WordPiece vocabulary (the encoders
 * bert and nomic-bert), written as a GGUF file with streaming writes so
 * the 1B preset needs no multi-GB buffer.  The text such a model produces is
 * meaningless; it exists so that everything but the numbers of a trained
 * model can be exercised without downloading anything.
 *
 * Prefix synth_, not model_: a named exception to the folder-is-a-prefix
 * rule (README, "How it works").
 */
#ifndef DM_MODEL_SYNTH_H
#define DM_MODEL_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"

struct synth_shape {
	const char *preset;
	uint32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
};

struct synth_opts {
	struct synth_shape shape;
	/* weight type for 2-D tensors (enum gguf_type), except the encoders'
	 * token_types and position_embd tables (always F32) and the tensors
	 * that q4_k_m makes Q6_K */
	uint32_t type;
	const char *arch; /* "llama" (default when NULL), "qwen2", "qwen3", "gemma2", "gemma3", "phi3",
			   * or the encoders "bert", "nomic-bert" (their n_head_kv is n_head) */
	/* encoders only: rank pooling and a classification head with one
	 * output (a reranker); otherwise mean pooling (an embedder) */
	bool rank;
	uint64_t seed;
	/* llama.cpp's Q4_K_M mix on top of type Q4_K: output, and attn_v and
	 * ffn_down of the first and last eighth of the layers and every third
	 * in between, as Q6_K */
	bool q4_k_m;
};

#define SYNTH_ARCHS "llama, qwen2, qwen3, gemma2, gemma3, phi3, bert, nomic-bert"

/* Whether synth writes arch as an encoder (bert, nomic-bert). */
bool synth_is_encoder(const char *arch);

/* The head size synth writes for o's architecture and shape. */
uint32_t synth_head_dim(const struct synth_opts *o);

/* Fills *shape for "tiny", "110m", "1b" or "minilm" (all-MiniLM-L6-v2's
 * shape: 384 wide, 6 layers, 12 heads, FFN 1536, 30522 tokens, 512
 * positions); DM_EINVAL for other names. */
int synth_preset(const char *name, struct synth_shape *shape, struct dm_err *err);

/* Writes the model to path.  DM_EUNSUPPORTED for weight types this build
 * cannot encode. */
int synth_write(const struct synth_opts *o, const char *path, struct dm_err *err);

#endif

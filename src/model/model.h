/*
 * model — the transformer engine: binds a GGUF file's tensors to a decoder
 * architecture (llama incl. Llama 3.x and Mistral, qwen2, qwen3, gemma2,
 * gemma3, phi3) or an encoder (bert, nomic-bert; encode.c), owns the KV
 * cache and scratch of a context, and runs the forward pass.
 *
 * What an architecture adds is data chosen at load (model.c's table of
 * architectures, then per-layer fields: norm placement, activation,
 * soft-caps, window, Q/K norms, fused tensors as row views), never a test
 * of the architecture inside the forward pass.
 *
 * Ownership: struct model borrows the struct gguf_file it was bound to (the
 * weights stay where the loader put them: mapped file pages or memory the
 * lifecycle manager owns; nothing is copied).  The gguf file must outlive
 * the model.  struct model_ctx owns its KV cache and scratch, mapped once at
 * init, anonymously, so that model_ctx_free() returns them to the OS.  The
 * KV cache reserves address space for n_ctx_max positions; a page becomes
 * memory only when a position on it is written (or prefaulted), so a context
 * grows within the reservation (model_ctx_set_n_ctx) without a reload.
 *
 * Shapes (ne[0] = row length = input dimension; hd = head size):
 *   token_embd   (n_embd, n_vocab)      output (n_embd, n_vocab), or tied
 *   attn_q       (n_embd, n_head·hd)    attn_k/v (n_embd, n_head_kv·hd)
 *     or attn_qkv (n_embd, n_head·hd + 2·n_head_kv·hd): rows q, then k, then v (phi3)
 *   attn_output  (n_head·hd, n_embd)
 *   attn_q_norm, attn_k_norm (hd)       per-head RMSNorm weights (qwen3, gemma3)
 *   ffn_gate/up  (n_embd, n_ff)         ffn_down (n_ff, n_embd)
 *     or ffn_up  (n_embd, 2·n_ff): rows gate, then up (phi3)
 *   norms        (n_embd)  F32          qwen2 biases bq (n_head·hd), bk/bv (n_head_kv·hd)
 *   rope_freqs / rope_factors_long / rope_factors_short (n_rot / 2)
 *   KV cache     per layer: n_ctx_max rows of n_head_kv·hd F16 values for K, same
 *                for V: positions 0..n touch a prefix of each layer's rows
 *                (windowed layers mask positions outside their window; they
 *                keep all rows, so a window saves no memory yet)
 */
#ifndef DM_MODEL_MODEL_H
#define DM_MODEL_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "gguf/gguf.h"
#include "kern/kern.h"

struct dm_pool;

enum model_arch {
	MODEL_ARCH_LLAMA = 0,
	MODEL_ARCH_QWEN2 = 1,
	MODEL_ARCH_QWEN3 = 2,
	MODEL_ARCH_GEMMA2 = 3,
	MODEL_ARCH_GEMMA3 = 4,
	MODEL_ARCH_PHI3 = 5,
	MODEL_ARCH_BERT = 6,       /* encoder (also XLM-RoBERTa files, written as bert) */
	MODEL_ARCH_NOMIC_BERT = 7, /* encoder: fused QKV, RoPE, SwiGLU */
};

/* How an encoder's (or embedding decoder's) token states become one vector:
 * the values of {arch}.pooling_type. */
enum model_pooling {
	MODEL_POOL_NONE = 0,
	MODEL_POOL_MEAN = 1,
	MODEL_POOL_CLS = 2,  /* the first token's state */
	MODEL_POOL_LAST = 3, /* the last token's state */
	MODEL_POOL_RANK = 4, /* the first token through the classification head: one score */
};

/* The feed-forward gate's activation: down(act(gate·x) ⊙ up·x). */
enum model_act {
	MODEL_ACT_SILU = 0, /* SwiGLU */
	MODEL_ACT_GELU = 1, /* GeGLU, GELU in its tanh form */
};

struct model_hparams {
	enum model_arch arch;
	char arch_name[32];
	int32_t n_vocab;
	int32_t n_ctx_train;
	int32_t n_embd;
	int32_t n_layer;
	int32_t n_head;
	int32_t n_head_kv;
	int32_t head_dim;
	int32_t n_ff;
	int32_t n_rot;
	float rms_eps;
	float rope_base;
	float rope_scale; /* multiplier on positions: 1 / linear scaling factor */
	enum kern_rope_mode rope_mode;
	float rope_attn_factor; /* multiplies RoPE's cos and sin (phi3 LongRoPE); 1 */
	int32_t n_ctx_orig;     /* rope.scaling.original_context_length; 0: none */
	int32_t n_swa;          /* sliding window (positions a windowed layer sees, its own
				 * included); 0: no windowed layers */
	float embd_scale;       /* x = embedding · embd_scale (gemma: sqrtf(n_embd)); 1 */
	float attn_scale;       /* scores = attn_scale · q·k (1/√hd unless the arch says) */
	float attn_softcap;     /* scores = c·tanh(scores / c) before the mask; 0: none */
	float final_softcap;    /* logits = c·tanh(logits / c); 0: none */
	enum model_act ffn_act;
	/* encoders (bert, nomic-bert): bidirectional attention, post-LayerNorm */
	bool encoder;
	enum model_pooling pooling;
	int32_t n_cls_out;      /* rank pooling: outputs of the classification head */
};

/* A weight: a view into the file's (or the manager's) memory. */
struct model_w {
	const void *data;
	uint32_t type;
	int64_t ne0, ne1; /* row length, rows */
};

struct model_layer {
	const float *attn_norm, *ffn_norm;      /* pre-norms (n_embd) */
	const float *attn_post_norm, *ffn_post_norm; /* norms of a block's output before the
						      * residual add (gemma), or NULL */
	const float *q_norm, *k_norm;           /* per-head RMSNorm before RoPE (hd), or NULL */
	struct model_w wq, wk, wv, wo;          /* wq/wk/wv: row views of attn_qkv when fused */
	const float *bq, *bk, *bv;              /* Q/K/V biases: required for qwen2 and bert,
						 * bound when present for the other
						 * architectures (nomic-bert included), else NULL */
	struct model_w w_gate, w_up, w_down;    /* gate/up: row views of ffn_up when fused */
	int32_t n_swa;                          /* this layer's window; 0: whole context */
	float rope_base, rope_scale;            /* this layer's RoPE (gemma3 local layers differ) */
	/* encoders: biases of the output and FFN products (bert), and the
	 * LayerNorms after the attention and FFN residual adds (n_embd each) */
	const float *bo, *b_up, *b_down;
	const float *ln_attn_w, *ln_attn_b, *ln_ffn_w, *ln_ffn_b;
};

struct model {
	struct model_hparams hp;
	struct model_w tok_embd, output;
	const float *output_norm;
	/* RoPE frequency divisors (n_rot / 2), or NULL: LongRoPE's long factors
	 * serve a context longer than n_ctx_orig, the short ones any other;
	 * Llama 3.1's rope_freqs serve every context (both point to it). */
	const float *rope_factors_long, *rope_factors_short;
	struct model_layer *layers;
	/* encoders: position (absolute, bert) and token-type embeddings, the
	 * embedding LayerNorm; rank pooling's head (cls: n_embd → n_embd with
	 * bias and tanh, cls_out: n_embd → n_cls_out with bias) */
	struct model_w pos_embd, tok_types, cls, cls_out; /* .data NULL when absent */
	const float *embd_norm_w, *embd_norm_b, *cls_b, *cls_out_b;
	uint64_t weight_bytes;   /* bytes of all bound tensors */
	const struct gguf_file *gguf;
};

/* Binds the tensors of an open GGUF file.  Errors name the file and what is
 * wrong: "unsupported architecture 'gpt2'", "tensor 'blk.3.attn_q.weight'
 * has shape 4096 x 1024 x 1 x 1, expected 4096 x 4096", "tensor ... has
 * type IQ2_XS, which this build cannot compute with", missing tensors or
 * keys. */
int model_bind(struct model **out, const struct gguf_file *g, struct dm_err *err);
void model_free(struct model *m);

struct model_ctx_params {
	int32_t n_ctx;     /* 0: min(4096, n_ctx_train) */
	int32_t n_ctx_max; /* positions the KV cache reserves (>= n_ctx): how far
			    * model_ctx_set_n_ctx may grow the context; 0: n_ctx */
	size_t prefix_cache_max; /* bytes of saved conversation prefixes (kvsnap.c); 0: none */
	int32_t n_batch;   /* 0: 512 */
	struct dm_pool *pool; /* NULL: single-threaded */
	int n_threads;     /* sizing only, when pool is NULL (model_ctx_bytes before the pool exists) */
	enum kern_isa isa;
	bool isa_set;      /* false: kern_isa_best() */
};

struct model_snap;

/* Decoding's attention (forward.c): a step of at most MODEL_ATTN_RUN_TOK
 * new tokens cuts each token's context into runs of MODEL_ATTN_RUN rows. */
#define MODEL_ATTN_RUN 128
#define MODEL_ATTN_RUN_TOK 4

struct model_ctx {
	const struct model *m;
	int32_t n_ctx;     /* the context in force: decode refuses to go past it */
	int32_t n_ctx_max; /* the positions reserved: n_ctx can be set up to it */
	int32_t n_batch;
	int32_t n_past;    /* positions filled in the KV cache */
	int32_t n_touched; /* positions whose pages may be resident (written or
			    * prefaulted since the last trim), >= n_past */
	int32_t *tokens;   /* the ids at positions 0..n_past-1 (what the cache holds) */
	const float *rope_factors; /* chosen for n_ctx from the model's long/short */
	struct dm_pool *pool;
	enum kern_isa isa;
	/* KV cache: layer l's K at k + l·n_ctx_max·kv_dim (F16) */
	uint16_t *k, *v;
	size_t kv_bytes;   /* the reservation (address space, not memory) */
	/* saved conversation prefixes (kvsnap.c), most recently used first */
	struct model_snap *snaps;
	size_t snap_bytes, snap_max;
	int32_t n_snaps;
	/* scratch, one mapping; the token ids at its end stay when trim gives
	 * the rest back (scratch_live: pages may be resident since) */
	void *scratch;
	size_t scratch_bytes, scratch_keep;
	bool scratch_live;
	float *x, *xn, *q, *kk, *vv, *att, *g, *u, *scores;
	int32_t scores_stride;
	float *runs, *run_q, *run_ws; /* decoding's attention runs (forward.c), their queries, scratch */
	size_t run_q_stride;  /* floats of run_q per token */
	size_t run_ws_stride; /* floats of run_ws per thread */
	struct kern_ws ws; /* the matrix products' working memory */
};

/* Bytes a context of these parameters holds when its n_ctx positions are
 * full (scratch + that much KV cache), for budgeting before the allocation
 * happens; model_ctx_scratch_bytes is the scratch alone (resident from the
 * first request on). */
size_t model_ctx_bytes(const struct model *m, const struct model_ctx_params *p);
size_t model_ctx_scratch_bytes(const struct model *m, const struct model_ctx_params *p);
int model_ctx_init(struct model_ctx **out, const struct model *m,
		   const struct model_ctx_params *p, struct dm_err *err);
void model_ctx_free(struct model_ctx *c);
/* Forgets the KV cache contents (n_past = 0). */
void model_ctx_reset(struct model_ctx *c);

/* Sets the context in force to n positions (1..n_ctx_max; DM_EINVAL
 * otherwise), as if the context had been made with n_ctx = n: decode
 * refuses to go past it, and LongRoPE's factor set is the one n picks.
 * When that set changes, the cache is forgotten (its positions were
 * computed with the other one).  Positions past n that the cache holds are
 * kept until the next reuse or reset; nothing is allocated here. */
int model_ctx_set_n_ctx(struct model_ctx *c, int32_t n, struct dm_err *err);

/* Prompt-prefix reuse: keeps the longest prefix of the cache that equals
 * prompt[0..n) — at most n − 1 positions, so that the prompt's last token
 * is evaluated again and yields logits — and forgets the rest (n_past
 * becomes that length, which it returns).  The positions kept are exactly
 * what a fresh run of the same tokens would have computed, so decoding
 * prompt[n_past..n) next gives the same logits as decoding all of it.
 * With saved prefixes (snap_max > 0, kvsnap.c): a saved conversation that
 * shares more with the prompt than the live one is copied back instead,
 * and a live conversation the prompt would mostly overwrite (more than half
 * of it) is saved first. */
int32_t model_ctx_reuse(struct model_ctx *c, const int32_t *prompt, int32_t n);

/*
 * Saved prefixes (kvsnap.c): a small LRU of compact copies of earlier
 * conversations (their token ids and, per layer, the K and V rows of their
 * positions; nothing else), so that alternating conversations do not evict
 * each other's cache.  At most snap_max bytes in all: a new copy pushes
 * out the least recently used ones, and a conversation too long for the
 * bound keeps its first positions.  A copy records LongRoPE's factor set
 * and is only restored into a context using the same one.
 *
 * model_ctx_set_snap_max changes the bound (dropping least recently used
 * copies to fit; 0 drops all); model_ctx_snap_drop drops all and returns the
 * bytes given back; model_ctx_snap_bytes_for is what a copy of n positions
 * occupies; model_ctx_snap_save saves the live conversation now (what
 * reuse does before overwriting it).
 */
void model_ctx_set_snap_max(struct model_ctx *c, size_t bytes);
size_t model_ctx_snap_drop(struct model_ctx *c);
size_t model_ctx_snap_bytes_for(const struct model_ctx *c, int32_t n);
void model_ctx_snap_save(struct model_ctx *c);

/* Gives the KV cache pages past the positions in use (n_past, rounded up
 * to whole pages per layer) and the scratch (but its token ids) back to
 * the OS; they come back as zero pages when written again.  The cache's
 * contents up to n_past are kept (n_touched becomes n_past).  For the end
 * of a request, so that an idle loaded model holds its weights and the
 * conversation it caches, not n_ctx's worth of cache or a batch's worth of
 * activations. */
void model_ctx_trim(struct model_ctx *c);

/* The KV cache on disk (kvfile.c): save writes positions 0..n_past-1 and
 * their token ids (to path.tmp, then renamed over path); restore reads
 * them into a context of the same model (at most n_ctx_max positions),
 * setting n_past.  identity is the caller's hash of what made the cache
 * (file, size, mtime, reservation, weight conversion); the file also
 * records which LongRoPE factor set the positions were computed with, and
 * a context using the other set refuses it as stale.  Restore checks magic, version, identity,
 * layout, size, token range and a checksum: DM_EFORMAT naming the failed
 * check (the context is then empty), DM_ENOTFOUND without a file. */
int model_ctx_save(const struct model_ctx *c, const char *path, uint64_t identity, struct dm_err *err);
int model_ctx_restore(struct model_ctx *c, const char *path, uint64_t identity, struct dm_err *err);

/* Makes the scratch and the KV cache pages of positions 0..n_pos-1
 * (capped at n_ctx) resident now (warm-up). */
void model_ctx_prefault(struct model_ctx *c, int32_t n_pos);

/* Bytes of KV cache the positions 0..n_pos-1 occupy (resident after they
 * have been written; capped at n_ctx_max), and what the context holds now:
 * the scratch (its token ids alone after a trim) + the KV pages of its
 * n_touched positions + saved prefixes. */
size_t model_ctx_kv_bytes_for(const struct model_ctx *c, int32_t n_pos);
size_t model_ctx_held_bytes(const struct model_ctx *c);

/*
 * Runs tokens[0..n) at positions n_past.. n_past+n-1, appending to the KV
 * cache in n_batch chunks.  Logits: if all_logits, `logits` receives n rows
 * of n_vocab floats (row i after token i); otherwise one row, after the last
 * token.  logits may be NULL (only fill the cache).  DM_ENOSPC when the
 * context would overflow ("context full: 4090 + 10 tokens > n_ctx 4096");
 * DM_EINVAL for token ids out of range, DM_EUNSUPPORTED for an encoder.
 * Checked before anything runs; if a forward pass fails after earlier
 * chunks, n_past is restored (cache rows and logits past it may have been
 * overwritten).
 */
int model_decode(struct model_ctx *c, const int32_t *tokens, int32_t n, float *logits,
		 bool all_logits, struct dm_err *err);

/* Embeddings of tokens[0..n) (from an empty cache, which it resets):
 * mean-pooled (mean = true) or last-token final hidden state, L2-normalised,
 * n_embd floats into out.  Decoders only (encoders: model_encode). */
int model_embed(struct model_ctx *c, const int32_t *tokens, int32_t n, bool mean, float *out,
		struct dm_err *err);

/*
 * Encoders (encode.c): runs n_seq sequences (tokens concatenated, lens[i]
 * tokens each, every one at most min(n_ctx, n_batch, n_ctx_train)) as few
 * forward passes as fit the
 * context, each token seeing every token of its own sequence, and pools
 * each by `pool` (MODEL_POOL_NONE: the model's own pooling_type):
 *   MEAN / CLS / LAST  out[i] = n_embd floats, not normalised
 *   RANK               out[i] = n_cls_out floats (the head's raw output:
 *                      no sigmoid, as the reference engine returns it)
 * out holds n_seq × model_pooled_dim() floats.  DM_EINVAL for an empty
 * sequence or bad ids, DM_ENOSPC for one longer than that limit,
 * DM_EUNSUPPORTED for a decoder, a model with no pooling type, or RANK
 * without a classification head.
 */
int model_encode(struct model_ctx *c, const int32_t *tokens, const int32_t *lens, int32_t n_seq,
		 enum model_pooling pool, float *out, struct dm_err *err);
/* Floats per pooled output: n_cls_out for RANK, else n_embd (NONE: the
 * model's own pooling_type). */
int32_t model_pooled_dim(const struct model *m, enum model_pooling pool);

#endif

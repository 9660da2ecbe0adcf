/*
 * kern — the numeric core: quantized block formats, dequantization,
 * reference quantizers, dot products, matrix×vector and matrix×matrix over
 * every weight type, and the element-wise operations of a transformer.
 *
 * Layers:
 *   blocks.h          byte layouts of the quant blocks (a file format)
 *   ref.c             scalar, readable executable specification of every type
 *   *_avx2.c          AVX2+FMA+F16C kernels     (compiled with -mavx2 ...)
 *   *_avx512.c        AVX-512 BW/VL/VNNI kernels (compiled with -mavx512* ...)
 *   kern.c            trait tables, ISA selection, threaded matvec/matmul
 *   ops.c             RMSNorm, RoPE, softmax, activations, attention
 *
 * ISA selection: kern_isa_best() picks the widest ISA this CPU supports
 * (__builtin_cpu_supports), lowered by the environment variable
 * DORMANT_ISA=ref|avx2|avx512|avx512bf16 when set (a request above what the CPU has is
 * clamped to the best supported).  The CPU is probed once per process (the
 * answer is cached); $DORMANT_ISA is read on every call, so callers (the
 * engine) call it once and keep the answer.  Every type has a path on every ISA; the
 * reference path works on any machine and architecture.
 *
 * Shapes follow GGUF: a weight matrix of n_rows × n is stored as n_rows
 * contiguous rows of n elements (n = ne[0], the input dimension), each row
 * kern_row_bytes(type, n) bytes.  n must be a multiple of the type's block
 * size.  Activations are float; y = W·x means y[r] = Σ_i W[r][i]·x[i].
 *
 * Numerics: quantized weights are multiplied by activations quantized to
 * 8 bits per value (the type's act_type: Q8_0, Q8_1 or Q8_K, with the same
 * rounding as ggml's reference quantizers), as ggml does; inside a block the
 * products are summed exactly in integers, so SIMD and reference paths
 * differ only in the order of float additions across blocks.  F32, F16 and
 * BF16 weights take float activations unchanged, except on AVX512BF16: the
 * BF16 matvec, and the F16 and BF16 prefill from 8 tokens, round them to
 * bf16 (kern_matmul_eps).
 */
#ifndef DM_KERN_H
#define DM_KERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct dm_pool;

enum kern_isa {
	KERN_ISA_REF = 0,
	KERN_ISA_AVX2 = 1,   /* AVX2 + FMA + F16C */
	KERN_ISA_AVX512 = 2, /* AVX-512 F/BW/VL/DQ + VNNI */
	KERN_ISA_AVX512BF16 = 3, /* the same + AVX512_BF16: bf16 products in the BF16 matvec
				  * and the F16/BF16 prefill */
	KERN_ISA_COUNT
};

/* The best ISA this machine supports, lowered by $DORMANT_ISA if set to a
 * known name.  The CPU flags are probed once per process; the environment
 * is read on every call. */
enum kern_isa kern_isa_best(void);
/* Whether this CPU can run isa's kernels (REF: always). */
bool kern_isa_supported(enum kern_isa isa);
/* "ref", "avx2", "avx512", "avx512bf16". */
const char *kern_isa_name(enum kern_isa isa);
/* Parses "ref", "avx2", "avx512", "avx512bf16"; -1 for anything else. */
int kern_isa_from_name(const char *name);

/* Dequantizes n elements (a multiple of the block size) from x to y. */
typedef void (*kern_to_float_fn)(const void *x, float *y, int64_t n);
/* Quantizes n floats into n / block_size blocks at y. */
typedef void (*kern_from_float_fn)(const float *x, void *y, int64_t n);
/* Σ_i w[i]·a[i] over n elements; w is a row of the weight type, a a row of
 * its act_type (as made by act_from_float). */
typedef float (*kern_vec_dot_fn)(int64_t n, const void *w, const void *a);
/* out[c] = vec_dot(n, w, a + c·a_stride) for c < nc, nc <= KERN_COLS_MAX:
 * one weight row against several activation rows, unpacking the weights
 * once (the matmul micro-kernel). */
typedef void (*kern_dot_cols_fn)(int64_t n, const void *w, const void *a, size_t a_stride,
				 int nc, float *out);

#define KERN_COLS_MAX 8

/* Everything kern knows about one weight type on one ISA. */
struct kern_traits {
	uint32_t type;         /* enum gguf_type */
	const char *name;
	uint32_t block_size;   /* elements per block */
	uint32_t block_bytes;  /* bytes per block */
	uint32_t act_type;     /* format vec_dot wants its activations in */
	kern_to_float_fn to_float;
	/* The reference quantizer: same bytes as ggml's quantize_row_*_ref
	 * (NULL for none).  Identical on every ISA. */
	kern_from_float_fn from_float;
	/* Quantizes a float activation row into act_type.  Bit-identical to
	 * the reference on every ISA. */
	kern_from_float_fn act_from_float;
	kern_vec_dot_fn vec_dot;
	kern_dot_cols_fn dot_cols;
};

/* Fills *out with the traits of a weight type for an ISA.  DM_EUNSUPPORTED
 * if kern cannot compute with that type (we support F32 F16 BF16 Q4_0 Q4_1
 * Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K) or this CPU lacks the ISA.
 * The caller keeps its copy (the function pointers are static). */
int kern_traits_get(uint32_t type, enum kern_isa isa, struct kern_traits *out);

/* Bytes of one row of n elements of type (block-aligned n), 0 if unknown
 * or if n is not a multiple of the block size. */
size_t kern_row_bytes(uint32_t type, int64_t n);
/* Bytes of one activation row of n elements for weight type `type`. */
size_t kern_act_row_bytes(uint32_t type, int64_t n);

/* Dequantizes n elements of `type` at x (any type with traits on REF, plus
 * the activation types Q8_0/Q8_1/Q8_K).  DM_EUNSUPPORTED / DM_EINVAL. */
int kern_dequantize(uint32_t type, const void *x, float *y, int64_t n, struct dm_err *err);
/* Reference-quantizes n floats to `type` (bytes identical to ggml's
 * quantize_row_*_ref).  DM_EUNSUPPORTED / DM_EINVAL. */
int kern_quantize(uint32_t type, const float *x, void *y, int64_t n, struct dm_err *err);

/* Quantizes n_rows rows of n elements of src_type (F32, F16 or BF16) at
 * src, rows kern_row_bytes(src_type, n) apart, to `type` at dst, rows
 * kern_row_bytes(type, n) apart, on the pool's threads (NULL: the calling
 * thread).  The bytes are those of dequantizing each row and calling
 * kern_quantize, on every ISA: the SIMD quantizers of isa (Q8_0, Q4_0,
 * Q4_K on AVX2) reproduce the reference's float operations lane by lane
 * (finite inputs).  Working memory: one row of floats per thread.
 * DM_EUNSUPPORTED (types), DM_EINVAL (n not a multiple of the block),
 * DM_ENOMEM. */
int kern_quantize_rows(struct dm_pool *pool, enum kern_isa isa, uint32_t src_type, const void *src,
		       uint32_t type, void *dst, int64_t n_rows, int64_t n, struct dm_err *err);

/*
 * Matrix products.  w: n_rows rows of `type`, each n elements.  pool may be
 * NULL (runs on the calling thread).  Their working memory (the
 * activations packed for the kernels, a few KiB per token, and the gemm's
 * per-thread weight panels) is either allocated per call and freed before
 * returning, or taken from a caller's workspace (kern_matmul_set).
 * Errors: DM_EUNSUPPORTED (type), DM_EINVAL (n not block-aligned, sizes
 * < 0, workspace too small), DM_ENOMEM.
 */

/* Decode: y[r] = Σ_i w[r][i]·x[i], r < n_rows.  x has n floats. */
int kern_matvec(struct dm_pool *pool, enum kern_isa isa, uint32_t type, const void *w,
		int64_t n_rows, int64_t n, const float *x, float *y, struct dm_err *err);

/* Prefill: y[t][r] = Σ_i w[r][i]·x[t][i] for t < n_tok, r < n_rows.
 * x is n_tok × n floats (row-major), y is n_tok × n_rows.  Tiled so that a
 * block of weight rows is reused from cache for KERN_COLS_MAX tokens (on
 * AVX-512, Q4_K, Q5_K and Q6_K rows are unpacked once for up to 8 tokens:
 * gemv_avx512.c's cols); on AVX-512 and AVX2, from a per-type number of
 * tokens up (4, 8 or 16), weight rows are repacked 16 at a time into
 * per-thread scratch (a few hundred KiB per thread) and multiplied against
 * every token (gemm_avx512.c for the types it has, Q4_K, Q5_K and Q6_K from
 * 16 tokens; gemm_avx2.c for Q4_0, Q8_0, F32, F16 and BF16 from 4 tokens,
 * Q4_K, Q5_K and Q6_K from 8). */
int kern_matmul(struct dm_pool *pool, enum kern_isa isa, uint32_t type, const void *w,
		int64_t n_rows, int64_t n, const float *x, int64_t n_tok, float *y,
		struct dm_err *err);

/* The relative rounding of one product's operands in a kern_matmul of
 * n_tok tokens on isa (n_tok 1: kern_matvec): 0 where the operands are used
 * as they are (every path but these), else eps such that each product w·x
 * is computed as some w·x·(1 + δ), |δ| <= eps, before float summation.
 * On KERN_ISA_AVX512BF16: BF16 weights are multiplied in bf16, the
 * activations rounded to bf16 as the reference engine does for BF16
 * weights (eps = 2^-9), at 1 token (the matvec) and from 8 tokens (the
 * panel gemm); 2 to 7 tokens use float products (dot_cols, eps 0).  F16
 * weights are multiplied in bf16 from 8 tokens, rounded to bf16 too
 * (eps = 2^-8 + 2^-18); below 8 tokens, the F16 matvec included, they stay
 * in float products.  DORMANT_ISA=avx512 keeps float products everywhere. */
double kern_matmul_eps(enum kern_isa isa, uint32_t type, int64_t n_tok);

/* Several products of the same x (n_tok × n) at once — y_i = x · w_iᵀ for
 * the Q, K, V or gate, up matrices of a layer — as one job on the pool:
 * activations packed once per distinct layout, one wait instead of one per
 * matrix.  Each y_i is what kern_matvec (n_tok == 1) or kern_matmul gives
 * for that matrix alone.  1 <= count <= KERN_SET_MAX.
 *
 * ws: working memory for the call, or NULL to allocate it per call.  A
 * caller that sizes its memory once (the engine, at load) gets the size
 * from kern_ws_bytes for every set it will run and passes the largest;
 * a workspace smaller than the call needs is DM_EINVAL, never an overrun. */
#define KERN_SET_MAX 4
struct kern_mat {
	uint32_t type;
	const void *w;
	int64_t n_rows;
	float *y; /* n_tok × n_rows */
};
struct kern_ws {
	void *base;   /* 64-byte aligned */
	size_t bytes;
};
int kern_matmul_set(struct dm_pool *pool, enum kern_isa isa, const struct kern_mat *mats,
		    int count, int64_t n, const float *x, int64_t n_tok, const struct kern_ws *ws,
		    struct dm_err *err);

/* Workspace bytes kern_matmul_set needs for a set of `count` matrices of
 * types[0..count) and input size n, at any n_tok from 1 to n_tok_max, on a
 * pool of `threads` threads (at least 1), into *bytes. */
int kern_ws_bytes(enum kern_isa isa, const uint32_t *types, int count, int64_t n,
		  int64_t n_tok_max, int threads, size_t *bytes, struct dm_err *err);

/*
 * Element-wise operations (ops.c).  All take n >= 0 and allow y == x
 * (in place) unless said otherwise.
 */

/* y = x / sqrt(mean(x²) + eps) · w   (w may be NULL: no weight). */
void kern_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps);

/* y = (x − mean(x)) / sqrt(var(x) + eps) · w + b  (LayerNorm; b may be NULL). */
void kern_layernorm(float *y, const float *x, const float *w, const float *b, int64_t n, float eps);
enum kern_rope_mode {
	KERN_ROPE_NORM = 0, /* rotate pairs (x[2i], x[2i+1])        (llama) */
	KERN_ROPE_NEOX = 2, /* rotate pairs (x[i], x[i + n_rot/2])  (neox, qwen) */
};

struct kern_rope {
	enum kern_rope_mode mode;
	int32_t n_rot;             /* rotated dimensions per head (<= head_dim, even) */
	float freq_base;           /* 10000 for llama */
	float freq_scale;          /* 1 / linear context scaling factor; 1 = none */
	const float *freq_factors; /* n_rot / 2 divisors of each pair's frequency, or NULL */
	float attn_factor;         /* multiplies cos and sin (LongRoPE's magnitude scaling); 0 or 1: none */
};

/* Rotates n_head heads of head_dim floats at x (head h at x + h·head_dim)
 * for position pos: pair i (i < n_rot/2) turns by
 * θ = pos · freq_scale · base^(−2i/n_rot) / freq_factors[i], with cos θ and
 * sin θ both multiplied by attn_factor when it is set.
 * Dimensions past n_rot are left unchanged.  n_rot is at most 1024 (the
 * loader's limit on head_dim): ops.c keeps 512 angles and turns no pair
 * past them. */
void kern_rope_apply(float *x, int64_t n_head, int64_t head_dim, int64_t pos,
		     const struct kern_rope *r);

/* In place: x = exp(x − max) / Σ exp(x − max).  n >= 1.  isa as for
 * attention below (the SIMD e^x is within 4 ulp of exp, the bound the
 * kernel tests hold it to). */
void kern_softmax(enum kern_isa isa, float *x, int64_t n);
/* y = x · sigmoid(x). */
void kern_silu(float *y, const float *x, int64_t n);
/* y = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))  (GELU, tanh form). */
void kern_gelu(float *y, const float *x, int64_t n);
/* g = silu(g) · u  (SwiGLU gate, in place on g); isa as for kern_softmax. */
void kern_swiglu(enum kern_isa isa, float *g, const float *u, int64_t n);
/* g = gelu(g) · u  (GeGLU gate, GELU in its tanh form, in place on g); isa as
 * for kern_softmax (the SIMD tanh is built on the same e^x). */
void kern_geglu(enum kern_isa isa, float *g, const float *u, int64_t n);
/* y = c · tanh(x / c)  (logit soft-capping), c > 0. */
void kern_softcap(enum kern_isa isa, float *y, const float *x, float c, int64_t n);
void kern_add(float *y, const float *a, const float *b, int64_t n);
void kern_mul(float *y, const float *a, const float *b, int64_t n);
void kern_scale(float *y, const float *x, float s, int64_t n);

void kern_f16_to_f32(const uint16_t *x, float *y, int64_t n);
void kern_f32_to_f16(const float *x, uint16_t *y, int64_t n);
void kern_bf16_to_f32(const uint16_t *x, float *y, int64_t n);
void kern_f32_to_bf16(const float *x, uint16_t *y, int64_t n);

/*
 * Attention over an F16 KV cache for one query head.  k and v hold n_kv
 * rows (cache positions) of head_dim F16 values, row t at k + t·stride
 * (stride in elements, >= head_dim).  isa must be supported by this CPU
 * (kern_isa_supported); the SIMD paths add in a different order than the
 * scalar reference (KERN_ISA_REF) and agree with it to float rounding.
 */
/* scores[t] = scale · Σ_i q[i]·k[t][i]. */
void kern_attn_scores(enum kern_isa isa, float *scores, const float *q, const uint16_t *k,
		      int64_t n_kv, int64_t head_dim, size_t stride, float scale);
/* out[i] = Σ_t p[t]·v[t][i]  (out is overwritten). */
void kern_attn_values(enum kern_isa isa, float *out, const float *p, const uint16_t *v,
		      int64_t n_kv, int64_t head_dim, size_t stride);
/* The same for g query heads that share one K/V head (grouped-query
 * attention): head j's q at q + j·q_stride, its scores at scores +
 * j·s_stride, its probabilities at p + j·p_stride and its output at out +
 * j·o_stride (strides in floats).  Each head's result is what the one-head
 * call gives, to float rounding; the AVX2 path converts each K and V row
 * once for all g heads. */
void kern_attn_scores_grp(enum kern_isa isa, float *scores, size_t s_stride, const float *q,
			  size_t q_stride, int g, const uint16_t *k, int64_t n_kv, int64_t head_dim,
			  size_t stride, float scale);
void kern_attn_values_grp(enum kern_isa isa, float *out, size_t o_stride, const float *p,
			  size_t p_stride, int g, const uint16_t *v, int64_t n_kv, int64_t head_dim,
			  size_t stride);

/* ---- attention of one query token over a run of cache rows, every head at
 * once (the pieces of a split softmax: runs of one token's context are
 * computed apart, on any threads, and merged) ---- */
#define KERN_ATTN_RUN 256 /* most rows in one kern_attn_run */
struct kern_attn_shape {
	int32_t n_head, n_head_kv; /* n_head a multiple of n_head_kv */
	int64_t head_dim;
	size_t stride;             /* halfs from one cache row to the next, >= n_head_kv·head_dim */
	float scale, softcap;      /* softcap 0: none */
};
/* Floats of (32-byte aligned) scratch that kern_attn_run needs. */
size_t kern_attn_run_ws(const struct kern_attn_shape *sh);
/* Floats of a query prepared by kern_attn_q_prep (32-byte aligned). */
size_t kern_attn_q_size(const struct kern_attn_shape *sh);
/* Floats of one run's result: n_head·(head_dim + 2). */
size_t kern_attn_part_size(const struct kern_attn_shape *sh);
/* q (n_head·head_dim floats) laid out for kern_attn_run with the same isa
 * and shape: once per token, for all of its runs. */
void kern_attn_q_prep(enum kern_isa isa, const struct kern_attn_shape *sh, const float *q, float *qp);
/* qp: a query prepared by kern_attn_q_prep, head h against K/V head h /
 * (n_head / n_head_kv) of the n rows (1 <= n <= KERN_ATTN_RUN) k +
 * t·stride and v + t·stride, each n_head_kv·head_dim halfs.  For every
 * head h, with s_t = scale·q_h·k_t (then c·tanh(s_t / c) where softcap
 * c > 0):
 *   m = max_t s_t,  l = Σ_t e^{s_t − m},  o = Σ_t (e^{s_t − m} / l)·v_t
 * written to part + h·(head_dim + 2): o (head_dim floats), then m, then l.
 * Each o is what kern_attn_scores + kern_softmax + kern_attn_values give
 * for the head, to float rounding.  AVX2 and up: K and V rows are read
 * once for every head that shares them and a head group's scores are
 * vectors of heads × keys (no horizontal sums); one K/V head per query
 * head (n_head == n_head_kv), or a head_dim past 256 or not a multiple of
 * 8, takes the one-head kernels. */
void kern_attn_run(enum kern_isa isa, const struct kern_attn_shape *sh, const float *qp,
		   const uint16_t *k, const uint16_t *v, int64_t n, float *part, float *ws);
/* out (n_head·head_dim floats) = the attention over the n_part runs whose
 * results are consecutive at parts: per head, the runs' o weighted by
 * l·e^{m − max m}.  One run is copied as it is. */
void kern_attn_merge(float *out, const float *parts, int64_t n_part, const struct kern_attn_shape *sh);

#endif

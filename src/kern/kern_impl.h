/*
 * kern/impl — declarations shared between kern's own files (not part of
 * the public API in kern.h).
 *
 * Each ISA file exports one lookup function filling in the SIMD members of
 * a traits entry; kern.c owns the tables and the dispatch.
 */
#ifndef DM_KERN_IMPL_H
#define DM_KERN_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kern/blocks.h"
#include "kern/kern.h"

/* ---- ref.c: dequantizers (bit-identical to ggml's to_float) ---- */
void kern_to_float_f32_ref(const void *x, float *y, int64_t n);
void kern_to_float_f16_ref(const void *x, float *y, int64_t n);
void kern_to_float_bf16_ref(const void *x, float *y, int64_t n);
void kern_to_float_q4_0_ref(const void *x, float *y, int64_t n);
void kern_to_float_q4_1_ref(const void *x, float *y, int64_t n);
void kern_to_float_q5_0_ref(const void *x, float *y, int64_t n);
void kern_to_float_q5_1_ref(const void *x, float *y, int64_t n);
void kern_to_float_q8_0_ref(const void *x, float *y, int64_t n);
void kern_to_float_q8_1_ref(const void *x, float *y, int64_t n);
void kern_to_float_q2_K_ref(const void *x, float *y, int64_t n);
void kern_to_float_q3_K_ref(const void *x, float *y, int64_t n);
void kern_to_float_q4_K_ref(const void *x, float *y, int64_t n);
void kern_to_float_q5_K_ref(const void *x, float *y, int64_t n);
void kern_to_float_q6_K_ref(const void *x, float *y, int64_t n);
void kern_to_float_q8_K_ref(const void *x, float *y, int64_t n);

/* ---- ref.c: reference quantizers (bytes identical to ggml's *_ref) ---- */
void kern_from_float_f32_ref(const float *x, void *y, int64_t n);
void kern_from_float_f16_ref(const float *x, void *y, int64_t n);
void kern_from_float_bf16_ref(const float *x, void *y, int64_t n);
void kern_from_float_q4_0_ref(const float *x, void *y, int64_t n);
void kern_from_float_q4_1_ref(const float *x, void *y, int64_t n);
void kern_from_float_q5_0_ref(const float *x, void *y, int64_t n);
void kern_from_float_q5_1_ref(const float *x, void *y, int64_t n);
void kern_from_float_q8_0_ref(const float *x, void *y, int64_t n);
void kern_from_float_q8_1_ref(const float *x, void *y, int64_t n);
void kern_from_float_q2_K_ref(const float *x, void *y, int64_t n);
void kern_from_float_q3_K_ref(const float *x, void *y, int64_t n);
void kern_from_float_q4_K_ref(const float *x, void *y, int64_t n);
void kern_from_float_q5_K_ref(const float *x, void *y, int64_t n);
void kern_from_float_q6_K_ref(const float *x, void *y, int64_t n);
void kern_from_float_q8_K_ref(const float *x, void *y, int64_t n);

/* The scale step of the Q4_K/Q5_K quantizers, shared by ref.c and the
 * SIMD quantizers: the 8 sub-block scales and mins (from the per-sub-block
 * search) quantized to 6 bits against the largest of each into scales12
 * (zeroed by the caller), and the block's d and dmin. */
void kern_q45k_scales(const float scales[8], const float mins[8], uint8_t scales12[12],
		      uint16_t *d16, uint16_t *dmin16);

/* ---- ref.c: dot products (weight row · activation row) ---- */
float kern_dot_f32_ref(int64_t n, const void *w, const void *a);
float kern_dot_f16_ref(int64_t n, const void *w, const void *a);
float kern_dot_bf16_ref(int64_t n, const void *w, const void *a);
float kern_dot_q4_0_ref(int64_t n, const void *w, const void *a);
float kern_dot_q4_1_ref(int64_t n, const void *w, const void *a);
float kern_dot_q5_0_ref(int64_t n, const void *w, const void *a);
float kern_dot_q5_1_ref(int64_t n, const void *w, const void *a);
float kern_dot_q8_0_ref(int64_t n, const void *w, const void *a);
float kern_dot_q2_K_ref(int64_t n, const void *w, const void *a);
float kern_dot_q3_K_ref(int64_t n, const void *w, const void *a);
float kern_dot_q4_K_ref(int64_t n, const void *w, const void *a);
float kern_dot_q5_K_ref(int64_t n, const void *w, const void *a);
float kern_dot_q6_K_ref(int64_t n, const void *w, const void *a);

/* Decode reads each weight once, and with compute between the loads the
 * hardware prefetchers alone did not overlap memory with it (one thread
 * streamed Q4_0 at ~17 GB/s from DRAM where its kernel runs ~30 GB/s from
 * L2).  Every block loop of a weight row therefore prefetches towards L2
 * (prefetcht1) KERN_PF_AHEAD bytes ahead of the step it computes: one
 * prefetch per 64 of the step's `bytes` (a constant; the loop unrolls), so
 * consecutive steps leave no line of the stream out.  Past the row's end it
 * reaches into the next rows, which the same thread usually takes.
 * Measured: 8-16 KiB best, 1 KiB and 64 KiB worse. */
#define KERN_PF_AHEAD 16384
static inline __attribute__((always_inline)) void kern_pf_stream(const void *p, size_t bytes)
{
	for (size_t o = 0; o < bytes; o += 64)
		__builtin_prefetch((const char *)p + KERN_PF_AHEAD + o, 0, 2);
}

/* The lane mask of a step over `lanes` (8, 16 or 32) elements of which
 * `left` remain: every lane when left >= lanes, none when left <= 0. */
static inline uint32_t kern_tail_mask(int64_t left, int lanes)
{
	if (left >= lanes)
		return lanes == 32 ? 0xFFFFFFFFu : (1u << lanes) - 1;
	return left > 0 ? (1u << left) - 1 : 0;
}

/* Decodes the 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K
 * block's 12 packed bytes. */
static inline void kern_k4_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
	if (j < 4) {
		*sc = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
		*m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
	}
}

/* All 8 scales and 8 mins of a Q4_K/Q5_K block's 12 packed scale bytes
 * q, one byte each (sub-block j in byte j): scales 0-3 are a & 63, 4-7
 * (c & 15) | (a >> 6) << 4; mins 0-3 b & 63, 4-7 (c >> 4) | (b >> 6) << 4,
 * with a, b, c the three 4-byte words of q (per byte). */
static inline void kern_k4_scales8(const uint8_t *q, uint64_t *sc, uint64_t *mn)
{
	uint32_t a, b, c;
	memcpy(&a, q, 4);
	memcpy(&b, q + 4, 4);
	memcpy(&c, q + 8, 4);
	*sc = (uint64_t)((c & 0x0F0F0F0Fu) | ((a >> 2) & 0x30303030u)) << 32 | (a & 0x3F3F3F3Fu);
	*mn = (uint64_t)(((c >> 4) & 0x0F0F0F0Fu) | ((b >> 2) & 0x30303030u)) << 32 | (b & 0x3F3F3F3Fu);
}

/* Decodes the 16 signed 6-bit Q3_K scales (already minus 32). */
static inline void kern_k3_scales(const uint8_t *s, int8_t out[16])
{
	for (int j = 0; j < 16; j++) {
		int lo = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
		int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
		out[j] = (int8_t)((lo | hi << 4) - 32);
	}
}

/* ---- per-ISA SIMD members: fill vec_dot/dot_cols for a type, or leave
 * them alone when that file has nothing better for the type ---- */
struct kern_simd {
	kern_vec_dot_fn vec_dot;
	kern_dot_cols_fn dot_cols;
};
void kern_simd_avx2(uint32_t type, struct kern_simd *s);
void kern_simd_avx512(uint32_t type, struct kern_simd *s);

/* ---- quant_avx2.c: weight quantizers bit-identical to the reference one
 * of a type (Q8_0, Q4_0, Q4_K; NULL for others), and F16 rows to float
 * (exact) ---- */
kern_from_float_fn kern_quant_avx2(uint32_t type);
void kern_f16_to_f32_avx2(const void *x, float *y, int64_t n);

/* ---- ops_<isa>.c: activation quantizers bit-identical to the reference
 * one of act_type (NULL where the ISA has none), and attention (contracts
 * as kern_attn_scores / kern_attn_values) ---- */
kern_from_float_fn kern_act_quant_avx2(uint32_t act_type);
kern_from_float_fn kern_act_quant_avx512(uint32_t act_type);
void kern_attn_scores_avx2(float *scores, const float *q, const uint16_t *k, int64_t n_kv,
			   int64_t head_dim, size_t stride, float scale);
void kern_attn_values_avx2(float *out, const float *p, const uint16_t *v, int64_t n_kv,
			   int64_t head_dim, size_t stride);
/* Grouped (kern_attn_scores_grp / kern_attn_values_grp), head_dim a
 * multiple of 8 and at most KERN_GRP_HD. */
#define KERN_GRP_HD 256
void kern_attn_scores_grp_avx2(float *scores, size_t s_stride, const float *q, size_t q_stride, int g,
			       const uint16_t *k, int64_t n_kv, int64_t head_dim, size_t stride, float scale);
void kern_attn_values_grp_avx2(float *out, size_t o_stride, const float *p, size_t p_stride, int g,
			       const uint16_t *v, int64_t n_kv, int64_t head_dim, size_t stride);
void kern_attn_scores_avx512(float *scores, const float *q, const uint16_t *k, int64_t n_kv,
			     int64_t head_dim, size_t stride, float scale);
void kern_attn_values_avx512(float *out, const float *p, const uint16_t *v, int64_t n_kv,
			     int64_t head_dim, size_t stride);
/* kern_attn_run for n_head / n_head_kv >= 2 and head_dim a multiple of 8,
 * at most KERN_GRP_HD (attn_x86.h); scratch as kern_attn_run_ws. */
size_t kern_attn_run_ws_avx2(const struct kern_attn_shape *sh);
size_t kern_attn_run_ws_avx512(const struct kern_attn_shape *sh);
size_t kern_attn_q_size_avx2(const struct kern_attn_shape *sh);
size_t kern_attn_q_size_avx512(const struct kern_attn_shape *sh);
void kern_attn_q_prep_avx2(const struct kern_attn_shape *sh, const float *q, float *qt);
void kern_attn_q_prep_avx512(const struct kern_attn_shape *sh, const float *q, float *qt);
void kern_attn_run_avx2(const struct kern_attn_shape *sh, const float *qt, const uint16_t *k,
			const uint16_t *v, int64_t n, float *part, float *ws);
void kern_attn_run_avx512(const struct kern_attn_shape *sh, const float *qt, const uint16_t *k,
			  const uint16_t *v, int64_t n, float *part, float *ws);
/* kern_softmax; returns the sum of the exponentials */
double kern_softmax_avx2(float *x, int64_t n);
void kern_swiglu_avx2(float *g, const float *u, int64_t n);
void kern_geglu_avx2(float *g, const float *u, int64_t n);
void kern_softcap_avx2(float *y, const float *x, float c, int64_t n);
double kern_softmax_avx512(float *x, int64_t n);
void kern_swiglu_avx512(float *g, const float *u, int64_t n);
void kern_geglu_avx512(float *g, const float *u, int64_t n);
void kern_softcap_avx512(float *y, const float *x, float c, int64_t n);

/* ---- gemm_<isa>.c: the prefill matmul over repacked weight panels ----
 * Weight rows are multiplied KERN_PANEL_ROWS at a time (a "panel"): panel()
 * repacks rows w[0..nr) (nr <= KERN_PANEL_ROWS, rows w_row bytes apart)
 * into per-thread scratch (scratch_bytes(n) bytes, 64-byte aligned) and
 * computes y[t·ys + r] = row r · token t for every t < n_tok.  Tokens come
 * in blocks of KERN_GEMM_TOK: act_pack(x, blk, n, slot) writes one token's
 * packed activations (quantized, or floats for the float types) into slot
 * `slot` of the block at blk (act_bytes(n) bytes per block; block b, a_blk
 * bytes apart, holds tokens b·KERN_GEMM_TOK ...).  Results agree with the
 * type's reference vec_dot to float rounding where eps is 0 (the integer
 * part of every block is exact), otherwise within eps (bf16 products). */
#define KERN_PANEL_ROWS 16
#define KERN_GEMM_TOK 8
struct kern_gemm {
	int64_t min_tok; /* fewest tokens for which it beats dot_cols (measured) */
	size_t (*act_bytes)(int64_t n);
	void (*act_pack)(const float *x, uint8_t *blk, int64_t n, int slot);
	size_t (*scratch_bytes)(int64_t n);
	void (*panel)(int64_t n, const uint8_t *w, size_t w_row, int nr, const uint8_t *act,
		      size_t a_blk, int64_t n_tok, float *y, size_t ys,
		      uint8_t *scratch);
	/* bound on the relative error of one product from rounding its
	 * operands (kern_matmul_eps); 0: operands used as they are */
	double eps;
};
/* The float types' activation blocks, shared by every ISA's float panels:
 * per block of KERN_GEMM_TOK tokens x[k][KERN_GEMM_TOK] (element k of the
 * block's tokens side by side), so a tile broadcasts them from one pointer. */
size_t kern_gemm_float_act_bytes(int64_t n);
void kern_gemm_float_pack(const float *x, uint8_t *blk, int64_t n, int slot);
/* The panel gemm for a weight type, NULL for types that use dot_cols. */
const struct kern_gemm *kern_gemm_avx512(uint32_t type);
/* The bf16-product gemm for F16 and BF16 weights (AVX512_BF16), NULL for
 * other types. */
const struct kern_gemm *kern_gemm_avx512bf16(uint32_t type);
/* gemm_avx2.c: the same for AVX2 machines (Q4_0, Q8_0, Q4_K, Q5_K, Q6_K, F32, F16, BF16). */
const struct kern_gemm *kern_gemm_avx2(uint32_t type);

/* ---- gemv_avx512.c: decode matvec with a type-specific activation
 * layout: act_pack makes act_bytes(n) bytes from n floats once per call,
 * dot(n, row, act) is one weight row's product (agreeing with the type's
 * reference vec_dot to float rounding where eps is 0, otherwise within eps:
 * bf16 products).  NULL: use the traits' vec_dot. */
struct kern_gemv {
	size_t (*act_bytes)(int64_t n);
	kern_from_float_fn act_pack;
	kern_vec_dot_fn dot;
	/* NULL, or 8 rows at once (w_row bytes apart) into y[0..8), each
	 * row's result as dot's to float rounding */
	void (*dot8)(int64_t n, const uint8_t *w, size_t w_row, const void *act, float *y);
	double eps; /* as kern_gemm's */
	/* NULL, or one row against nc <= KERN_COLS_MAX tokens whose packed
	 * activations are as bytes apart, into out[0..nc): each token's result
	 * as dot's to float rounding (prompt batches below the panel gemm's
	 * threshold, in place of the traits' dot_cols) */
	void (*cols)(int64_t n, const void *w, const uint8_t *act, size_t as, int nc, float *out);
};
/* Q4_0 (with VBMI), Q8_0, Q4_K, Q5_K, Q6_K and F16; NULL for other types. */
const struct kern_gemv *kern_gemv_avx512(uint32_t type);
/* The BF16 matvec in bf16 products (AVX512_BF16), NULL for other types. */
const struct kern_gemv *kern_gemv_avx512bf16(uint32_t type);
/* gemv_avx2.c: the same for AVX2 machines (Q4_0, Q8_0, Q4_K, Q5_K, Q6_K; Q4_0 also 8 rows at
 * once), and on AVX-512 machines for a type kern_gemv_avx512 has none for. */
const struct kern_gemv *kern_gemv_avx2(uint32_t type);

#endif

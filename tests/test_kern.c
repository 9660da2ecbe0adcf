/* tests/kern — SIMD vs reference dot products on every type × ISA × size,
 * quantization error bounds, a corrupted block that must be caught, matvec
 * / matmul against the reference, and ISA selection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/half.h"
#include "base/pool.h"
#include "base/rng.h"
#include "gguf/gguf.h"
#include "kern/blocks.h"
#include "kern/kern.h"

static const uint32_t types[] = {
	GGUF_TYPE_F32,  GGUF_TYPE_F16,  GGUF_TYPE_BF16, GGUF_TYPE_Q4_0, GGUF_TYPE_Q4_1,
	GGUF_TYPE_Q5_0, GGUF_TYPE_Q5_1, GGUF_TYPE_Q8_0, GGUF_TYPE_Q2_K, GGUF_TYPE_Q3_K,
	GGUF_TYPE_Q4_K, GGUF_TYPE_Q5_K, GGUF_TYPE_Q6_K,
};
#define N_TYPES (sizeof types / sizeof types[0])

static const char *tname(uint32_t t)
{
	return gguf_type_get(t)->name;
}

static void fill_normal(float *x, int64_t n, uint64_t seed, float sigma)
{
	struct dm_rng r;
	dm_rng_seed(&r, seed);
	for (int64_t i = 0; i < n; i++)
		x[i] = (float)(sigma * dm_rng_normal(&r));
}

/*
 * Tolerance of a SIMD dot against the reference: |simd − ref| <= atol + rtol·|ref|.
 *
 * Both paths compute the same exact integer sum inside each block and
 * differ only in float rounding: the scaling of each partial sum and the
 * order in which at most n partial products/sums are added.  The classic
 * bound for summing m terms in float is (m − 1)·u·Σ|term| with u = 2^−24,
 * and Σ|term| <= S = Σ_i |w_i|·|a_i| over the dequantized values; two such
 * errors (ref and SIMD) give atol = 2·n·u·S.  This is absolute on purpose:
 * a dot of random vectors cancels, so |ref| can be far below S.  rtol =
 * 1e-6 covers the final roundings.  Corrupting one block changes the result
 * by about S / n_blocks or more, 10× above atol for every size tested (see
 * test_corrupt_block_detected).
 */
static bool dot_close_eps(double ref, double got, double S, int64_t n, double eps, double *excess)
{
	double atol = (2.0 * (double)n * ldexp(1.0, -24) + eps) * S, rtol = 1e-6;
	double lim = atol + rtol * fabs(ref);
	if (excess)
		*excess = fabs(got - ref) / lim;
	return fabs(got - ref) <= lim;
}

/* The same for a path that uses its operands as they are. */
static bool dot_close(double ref, double got, double S, int64_t n, double *excess)
{
	return dot_close_eps(ref, got, S, n, 0, excess);
}

struct dot_case {
	struct kern_traits ref;
	void *wq, *aq;
	float *wd, *ad;
	size_t w_row, a_row;
	int64_t n;
	double S;
};

/* Quantizes random rows: one weight row and KERN_COLS_MAX activation rows. */
static void dot_case_make(struct dot_case *c, uint32_t type, int64_t n, uint64_t seed)
{
	float *x = malloc((size_t)n * sizeof *x);
	assert_int_equal(kern_traits_get(type, KERN_ISA_REF, &c->ref), 0);
	c->n = n;
	c->w_row = kern_row_bytes(type, n);
	c->a_row = kern_act_row_bytes(type, n);
	assert_true(c->w_row > 0 && c->a_row > 0);
	c->wq = malloc(c->w_row);
	c->aq = malloc(c->a_row * KERN_COLS_MAX);
	c->wd = malloc((size_t)n * sizeof(float));
	c->ad = malloc((size_t)n * KERN_COLS_MAX * sizeof(float));
	fill_normal(x, n, seed, 0.02f);
	c->ref.from_float(x, c->wq, n);
	c->ref.to_float(c->wq, c->wd, n);
	for (int k = 0; k < KERN_COLS_MAX; k++) {
		fill_normal(x, n, seed * 31 + 7 + (uint64_t)k, 1.0f);
		c->ref.act_from_float(x, (uint8_t *)c->aq + (size_t)k * c->a_row, n);
		assert_int_equal(kern_dequantize(c->ref.act_type, (uint8_t *)c->aq + (size_t)k * c->a_row,
						 c->ad + (size_t)k * (size_t)n, n, NULL),
				 0);
	}
	c->S = 0;
	for (int64_t i = 0; i < n; i++)
		c->S += fabs((double)c->wd[i]) * fabs((double)c->ad[i]);
	free(x);
}

static void dot_case_free(struct dot_case *c)
{
	free(c->wq);
	free(c->aq);
	free(c->wd);
	free(c->ad);
}

static double S_col(const struct dot_case *c, int k)
{
	double S = 0;
	for (int64_t i = 0; i < c->n; i++)
		S += fabs((double)c->wd[i]) * fabs((double)c->ad[(size_t)k * (size_t)c->n + (size_t)i]);
	return S;
}

/* Every type × every ISA the machine has × sizes: 1 block, odd block
 * counts, 4096 and 11008, for vec_dot and every column count of dot_cols. */
static void test_simd_vs_ref(void **state)
{
	(void)state;
	for (size_t ti = 0; ti < N_TYPES; ti++) {
		struct kern_traits r;
		assert_int_equal(kern_traits_get(types[ti], KERN_ISA_REF, &r), 0);
		int64_t bs = r.block_size == 1 ? 32 : r.block_size;
		const int64_t sizes[] = { bs, 3 * bs, 7 * bs, 4096, 11008, r.block_size == 1 ? 37 : bs };
		for (int isa = KERN_ISA_REF; isa < KERN_ISA_COUNT; isa++) {
			struct kern_traits t;
			if (!kern_isa_supported((enum kern_isa)isa))
				continue;
			assert_int_equal(kern_traits_get(types[ti], (enum kern_isa)isa, &t), 0);
			for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
				struct dot_case c;
				float out[KERN_COLS_MAX];
				dot_case_make(&c, types[ti], sizes[si], 1000 + ti * 17 + si);
				for (int k = 0; k < KERN_COLS_MAX; k++) {
					const void *ak = (uint8_t *)c.aq + (size_t)k * c.a_row;
					double ref = r.vec_dot(c.n, c.wq, ak), ex;
					double got = t.vec_dot(c.n, c.wq, ak);
					if (!dot_close(ref, got, S_col(&c, k), c.n, &ex))
						fail_msg("%s %s n=%lld col %d: ref %.9g simd %.9g (%.2f× tol)",
							 tname(types[ti]), kern_isa_name((enum kern_isa)isa),
							 (long long)c.n, k, ref, got, ex);
				}
				if (t.dot_cols)
					for (int nc = 1; nc <= KERN_COLS_MAX; nc++) {
						t.dot_cols(c.n, c.wq, c.aq, c.a_row, nc, out);
						for (int k = 0; k < nc; k++) {
							const void *ak = (uint8_t *)c.aq + (size_t)k * c.a_row;
							double ref = r.vec_dot(c.n, c.wq, ak), ex;
							if (!dot_close(ref, out[k], S_col(&c, k), c.n, &ex))
								fail_msg("%s %s cols n=%lld nc=%d col %d: ref %.9g got %.9g",
									 tname(types[ti]),
									 kern_isa_name((enum kern_isa)isa),
									 (long long)c.n, nc, k, ref, (double)out[k]);
						}
					}
				dot_case_free(&c);
			}
		}
	}
}

/* The reference dot itself against a double-precision dot of the
 * dequantized rows: checks the integer/scale bookkeeping of every type. */
static void test_ref_dot_vs_dequant(void **state)
{
	(void)state;
	for (size_t ti = 0; ti < N_TYPES; ti++) {
		struct dot_case c;
		dot_case_make(&c, types[ti], 4096, 77 + ti);
		double want = 0;
		for (int64_t i = 0; i < c.n; i++)
			want += (double)c.wd[i] * (double)c.ad[i];
		double got = c.ref.vec_dot(c.n, c.wq, c.aq);
		/* the dequantized Q8_1 sums (f16 s) and the f16 scales make the
		 * dequantized product differ a little from the integer one */
		if (fabs(got - want) > 1e-4 * c.S)
			fail_msg("%s: ref dot %.9g, dequantized dot %.9g", tname(types[ti]), got, want);
		dot_case_free(&c);
	}
}

/* One deliberately corrupted block in the weights given to the SIMD path
 * must make the comparison fail, for every type, at the largest size. */
static void test_corrupt_block_detected(void **state)
{
	(void)state;
	enum kern_isa isa = kern_isa_best();
	for (size_t ti = 0; ti < N_TYPES; ti++) {
		struct dot_case c;
		struct kern_traits t;
		assert_int_equal(kern_traits_get(types[ti], isa, &t), 0);
		dot_case_make(&c, types[ti], 11008, 4242 + ti);
		uint8_t *bad = malloc(c.w_row);
		memcpy(bad, c.wq, c.w_row);
		/* block 5: every byte replaced (scales, codes) */
		size_t bb = t.block_size == 1 ? 64 : t.block_bytes;
		memset(bad + 5 * bb, 0x77, bb);
		double ref = c.ref.vec_dot(c.n, c.wq, c.aq);
		double good = t.vec_dot(c.n, c.wq, c.aq);
		double corrupt = t.vec_dot(c.n, bad, c.aq);
		assert_true(dot_close(ref, good, c.S, c.n, NULL));
		if (dot_close(ref, corrupt, c.S, c.n, NULL))
			fail_msg("%s: a corrupted block was not detected (ref %.9g, got %.9g)",
				 tname(types[ti]), ref, corrupt);
		free(bad);
		dot_case_free(&c);
	}
}

/* dequantize(quantize(x)) relative RMS error per type, x ~ N(0, 1).  The
 * bounds are ~1.2× what the formats give (each extra bit halves the error;
 * K-quants with a min do better than their bit count suggests). */
static void test_roundtrip_rmse(void **state)
{
	static const struct {
		uint32_t type;
		double max_rel_rmse;
	} bounds[] = {
		{ GGUF_TYPE_F32, 0 },       { GGUF_TYPE_F16, 4e-4 },    { GGUF_TYPE_BF16, 3e-3 },
		{ GGUF_TYPE_Q8_0, 0.0075 }, { GGUF_TYPE_Q6_K, 0.022 },  { GGUF_TYPE_Q5_0, 0.05 },
		{ GGUF_TYPE_Q5_1, 0.045 },  { GGUF_TYPE_Q5_K, 0.04 },   { GGUF_TYPE_Q4_0, 0.11 },
		{ GGUF_TYPE_Q4_1, 0.095 },  { GGUF_TYPE_Q4_K, 0.085 },  { GGUF_TYPE_Q3_K, 0.19 },
		{ GGUF_TYPE_Q2_K, 0.40 },
	};
	const int64_t n = 8192;
	float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
	void *q = malloc(n * 4);
	(void)state;
	fill_normal(x, n, 99, 1.0f);
	for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
		double se = 0, ss = 0;
		assert_int_equal(kern_quantize(bounds[i].type, x, q, n, NULL), 0);
		assert_int_equal(kern_dequantize(bounds[i].type, q, y, n, NULL), 0);
		for (int64_t j = 0; j < n; j++) {
			se += ((double)x[j] - y[j]) * ((double)x[j] - y[j]);
			ss += (double)x[j] * x[j];
		}
		double rel = sqrt(se / ss);
		print_message("  %-5s relative RMSE %.5f (bound %.4f)\n", tname(bounds[i].type), rel,
			      bounds[i].max_rel_rmse);
		assert_true(rel <= bounds[i].max_rel_rmse);
	}
	free(x);
	free(y);
	free(q);
}

/* One matrix product case: `rows` weight rows of `type` (n elements, from
 * N(0, 0.02)) and `ntok` activation rows (N(0, 1)), with everything needed
 * to check a result against the reference: the reference dots, and per
 * output the bound S = Σ_i |w_i|·|a_i| of the dequantized operands.  eps:
 * the product rounding of the path under test (kern_matmul_eps), set by
 * the caller, added to the tolerance as eps·S. */
struct mm_case {
	uint32_t type;
	int64_t rows, n, ntok;
	size_t wr;
	uint8_t *w;      /* rows × wr bytes */
	float *x;        /* ntok × n */
	double *ref, *S; /* ntok × rows */
	double eps;
};

static void mm_case_make(struct mm_case *c, uint32_t type, int64_t rows, int64_t n, int64_t ntok,
			 uint64_t seed)
{
	struct kern_traits r;
	assert_int_equal(kern_traits_get(type, KERN_ISA_REF, &r), 0);
	size_t ar = kern_act_row_bytes(type, n);
	float *wf = malloc((size_t)(rows * n) * sizeof(float));
	float *wd = malloc((size_t)(rows * n) * sizeof(float));
	float *ad = malloc((size_t)n * sizeof(float));
	uint8_t *a = malloc(ar);
	c->type = type;
	c->eps = 0;
	c->rows = rows;
	c->n = n;
	c->ntok = ntok;
	c->wr = kern_row_bytes(type, n);
	c->w = malloc(c->wr * (size_t)rows);
	c->x = malloc((size_t)(ntok * n) * sizeof(float));
	c->ref = malloc((size_t)(ntok * rows) * sizeof(double));
	c->S = malloc((size_t)(ntok * rows) * sizeof(double));
	fill_normal(wf, rows * n, seed, 0.02f);
	fill_normal(c->x, ntok * n, seed + 1, 1.0f);
	for (int64_t i = 0; i < rows; i++) {
		r.from_float(wf + i * n, c->w + (size_t)i * c->wr, n);
		r.to_float(c->w + (size_t)i * c->wr, wd + i * n, n);
	}
	for (int64_t t = 0; t < ntok; t++) {
		r.act_from_float(c->x + t * n, a, n);
		assert_int_equal(kern_dequantize(r.act_type, a, ad, n, NULL), 0);
		for (int64_t i = 0; i < rows; i++) {
			double S = 0;
			for (int64_t k = 0; k < n; k++)
				S += fabs((double)wd[i * n + k]) * fabs((double)ad[k]);
			c->ref[t * rows + i] = r.vec_dot(n, c->w + (size_t)i * c->wr, a);
			c->S[t * rows + i] = S;
		}
	}
	free(wf);
	free(wd);
	free(ad);
	free(a);
}

static void mm_case_free(struct mm_case *c)
{
	free(c->w);
	free(c->x);
	free(c->ref);
	free(c->S);
}

/* Outputs of y (ntok × rows) outside the dot tolerance; the first one is
 * described in msg. */
static int mm_case_bad(const struct mm_case *c, const float *y, char *msg, size_t msg_len)
{
	int bad = 0;
	for (int64_t t = 0; t < c->ntok; t++)
		for (int64_t i = 0; i < c->rows; i++) {
			double ex, ref = c->ref[t * c->rows + i];
			if (dot_close_eps(ref, y[t * c->rows + i], c->S[t * c->rows + i], c->n, c->eps, &ex))
				continue;
			if (!bad++)
				snprintf(msg, msg_len, "token %lld row %lld: ref %.9g got %.9g (%.2f× tol)",
					 (long long)t, (long long)i, ref, (double)y[t * c->rows + i], ex);
		}
	return bad;
}

/* matvec and matmul, threaded, against per-row reference dots, with the
 * tolerance of the dot test (S from the actual operands).  Shapes cover the
 * panel gemms' edges (AVX2 works in 8-row halves of the 16-row panels and
 * 4-token tiles of the 8-token passes): n with an even and an odd number of
 * 32-blocks, a single block, an odd number of 256-blocks (768), and two
 * 512-element groups (1024, the Q4_0 matvec's 16-block step), 100 (float
 * types only: a row ending inside an 8-element step); rows below,
 * at and past the 16-row panels; token counts below the gemm threshold, odd
 * ones, and past the 8-token passes. */
static void test_matvec_matmul(void **state)
{
	struct dm_pool *pool;
	static const int64_t ns[] = { 512, 544, 32, 768, 1024, 100 };
	static const int64_t shapes[][2] = { /* rows, tokens */
		{ 67, 11 }, { 1, 5 }, { 15, 2 }, { 16, 3 }, { 17, 4 }, { 33, 8 }, { 48, 9 }, { 5, 17 },
	};
	char msg[200];
	(void)state;
	assert_int_equal(dm_pool_init(&pool, 2, NULL), 0);
	for (size_t ti = 0; ti < N_TYPES; ti++)
		for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
			for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
				struct kern_traits r;
				struct mm_case c;
				const int64_t n = ns[ni], rows = shapes[si][0], ntok = shapes[si][1];
				assert_int_equal(kern_traits_get(types[ti], KERN_ISA_REF, &r), 0);
				if (n % r.block_size)
					continue;
				mm_case_make(&c, types[ti], rows, n, ntok, 5 + ti * 101 + ni * 13 + si);
				float *y = malloc((size_t)(ntok * rows) * sizeof(float));
				for (int isa = 0; isa < KERN_ISA_COUNT; isa++) {
					if (!kern_isa_supported((enum kern_isa)isa))
						continue;
					assert_int_equal(kern_matmul(pool, (enum kern_isa)isa, types[ti], c.w,
								     rows, n, c.x, ntok, y, NULL),
							 0);
					c.eps = kern_matmul_eps((enum kern_isa)isa, types[ti], ntok);
					if (mm_case_bad(&c, y, msg, sizeof msg))
						fail_msg("%s %s matmul %lld×%lld, %lld tokens: %s",
							 tname(types[ti]), kern_isa_name((enum kern_isa)isa),
							 (long long)rows, (long long)n, (long long)ntok, msg);
					/* matvec: token 0 alone */
					struct mm_case c1 = c;
					c1.ntok = 1;
					c1.eps = kern_matmul_eps((enum kern_isa)isa, types[ti], 1);
					assert_int_equal(kern_matvec(pool, (enum kern_isa)isa, types[ti], c.w,
								     rows, n, c.x, y, NULL),
							 0);
					if (mm_case_bad(&c1, y, msg, sizeof msg))
						fail_msg("%s %s matvec %lld×%lld: %s", tname(types[ti]),
							 kern_isa_name((enum kern_isa)isa), (long long)rows,
							 (long long)n, msg);
				}
				free(y);
				mm_case_free(&c);
			}
	/* errors: misaligned n, unknown type */
	struct dm_err e;
	float v[64] = { 0 }, o[2];
	assert_int_equal(kern_matvec(NULL, KERN_ISA_REF, GGUF_TYPE_Q4_0, v, 1, 40, v, o, &e),
			 DM_EINVAL);
	assert_int_equal(kern_matvec(NULL, KERN_ISA_REF, GGUF_TYPE_IQ2_XS, v, 1, 256, v, o, &e),
			 DM_EUNSUPPORTED);
	dm_pool_free(pool);
}

/* The matmul and matvec checks can fail: one corrupted block in one weight
 * row (row 17, in the second, partial 16-row panel of the panel gemms)
 * must be caught in that row for every token, and must not show in any
 * other row. */
static void test_matmul_corrupt_block_detected(void **state)
{
	const int64_t rows = 19, n = 2048, ntok = 9, bad_row = 17;
	enum kern_isa isa = kern_isa_best();
	char msg[200];
	(void)state;
	for (size_t ti = 0; ti < N_TYPES; ti++) {
		struct kern_traits t;
		struct mm_case c;
		assert_int_equal(kern_traits_get(types[ti], isa, &t), 0);
		mm_case_make(&c, types[ti], rows, n, ntok, 909 + ti);
		c.eps = kern_matmul_eps(isa, types[ti], ntok);
		float *y = malloc((size_t)(ntok * rows) * sizeof(float));
		assert_int_equal(kern_matmul(NULL, isa, types[ti], c.w, rows, n, c.x, ntok, y, NULL), 0);
		if (mm_case_bad(&c, y, msg, sizeof msg))
			fail_msg("%s: clean weights fail: %s", tname(types[ti]), msg);
		/* block 5 of bad_row: every byte replaced (scales, codes) */
		size_t bb = t.block_size == 1 ? 64 : t.block_bytes;
		memset(c.w + (size_t)bad_row * c.wr + 5 * bb, 0x77, bb);
		assert_int_equal(kern_matmul(NULL, isa, types[ti], c.w, rows, n, c.x, ntok, y, NULL), 0);
		for (int64_t tk = 0; tk < ntok; tk++)
			for (int64_t i = 0; i < rows; i++) {
				bool ok = dot_close_eps(c.ref[tk * rows + i], y[tk * rows + i],
							c.S[tk * rows + i], n, c.eps, NULL);
				if (ok != (i != bad_row))
					fail_msg("%s token %lld row %lld: %s", tname(types[ti]),
						 (long long)tk, (long long)i,
						 ok ? "corrupted block not detected"
						    : "clean row disturbed by a corrupted one");
			}
		/* the same through matvec (its own kernels for some types) */
		assert_int_equal(kern_matvec(NULL, isa, types[ti], c.w, rows, n, c.x, y, NULL), 0);
		for (int64_t i = 0; i < rows; i++)
			if (dot_close(c.ref[i], y[i], c.S[i], n, NULL) != (i != bad_row))
				fail_msg("%s matvec row %lld: corrupted block %s", tname(types[ti]),
					 (long long)i, i == bad_row ? "not detected" : "leaks");
		/* and a row inside an 8-row step of the matvecs that take 8 rows
		 * at once (rows 0..15 here; 17 is left to the one-row kernel) */
		memset(c.w + (size_t)5 * c.wr + 2 * bb, 0x5A, bb);
		assert_int_equal(kern_matvec(NULL, isa, types[ti], c.w, rows, n, c.x, y, NULL), 0);
		for (int64_t i = 0; i < rows; i++)
			if (dot_close(c.ref[i], y[i], c.S[i], n, NULL) != (i != bad_row && i != 5))
				fail_msg("%s matvec row %lld: corrupted block %s", tname(types[ti]),
					 (long long)i, i == bad_row || i == 5 ? "not detected" : "leaks");
		free(y);
		mm_case_free(&c);
	}
}

/* Byte offsets of a quant block's fp16 scale fields (d, then m or dmin
 * where the type has one; -1: none). */
static void fp16_fields(uint32_t type, int off[2])
{
	off[0] = off[1] = -1;
	switch (type) {
	case GGUF_TYPE_Q4_0: case GGUF_TYPE_Q5_0: case GGUF_TYPE_Q8_0: off[0] = 0; break;
	case GGUF_TYPE_Q4_1: case GGUF_TYPE_Q5_1: case GGUF_TYPE_Q4_K: case GGUF_TYPE_Q5_K:
		off[0] = 0;
		off[1] = 2;
		break;
	case GGUF_TYPE_Q2_K:
		off[0] = (int)offsetof(struct block_q2_K, d);
		off[1] = (int)offsetof(struct block_q2_K, dmin);
		break;
	case GGUF_TYPE_Q3_K: off[0] = (int)offsetof(struct block_q3_K, d); break;
	case GGUF_TYPE_Q6_K: off[0] = (int)offsetof(struct block_q6_K, d); break;
	default: break;
	}
}

/* matvec at the ends of the integer ranges, where a SIMD kernel that adds
 * int16 products before widening them would wrap: weight rows of all-ones
 * bytes (every code and scale at its maximum; Q8_0 codes −1), of 0x80
 * bytes (Q8_0 codes −128), of random bytes, and quantized ones, fp16 scale
 * fields set to 1 in the first three; activations all +1 (codes ±127 in
 * every position, all one sign), random ±1, and normal.  Long rows (4096,
 * 11008) on every ISA, against the reference dot of each row. */
static void test_matvec_extremes(void **state)
{
	static const int64_t ns[] = { 4096, 11008 };
	const int64_t rows = 4;
	struct dm_pool *pool;
	struct dm_rng rng;
	(void)state;
	assert_int_equal(dm_pool_init(&pool, 2, NULL), 0);
	dm_rng_seed(&rng, 77);
	for (size_t ti = 0; ti < N_TYPES; ti++) {
		struct kern_traits r;
		int off[2];
		assert_int_equal(kern_traits_get(types[ti], KERN_ISA_REF, &r), 0);
		if (r.block_size == 1)
			continue; /* float types: no codes */
		fp16_fields(types[ti], off);
		assert_true(off[0] >= 0);
		for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
			const int64_t n = ns[ni];
			const size_t wr = kern_row_bytes(types[ti], n), ar = kern_act_row_bytes(types[ti], n);
			uint8_t *w = malloc(wr * (size_t)rows), *a = malloc(ar);
			float *x = malloc((size_t)n * sizeof(float)), *y = malloc((size_t)rows * sizeof(float));
			float *wd = malloc((size_t)n * sizeof(float)), *ad = malloc((size_t)n * sizeof(float));
			memset(w, 0xFF, wr);
			memset(w + wr, 0x80, wr);
			for (size_t i = 0; i < wr; i++)
				w[2 * wr + i] = (uint8_t)dm_rng_u64(&rng);
			fill_normal(x, n, 900 + ti, 0.02f);
			r.from_float(x, w + 3 * wr, n);
			for (int64_t k = 0; k < 3; k++)
				for (size_t b = 0; b < wr; b += r.block_bytes)
					for (int f = 0; f < 2; f++)
						if (off[f] >= 0) {
							const uint16_t one = 0x3C00;
							memcpy(w + (size_t)k * wr + b + (size_t)off[f], &one, 2);
						}
			for (int xk = 0; xk < 3; xk++) {
				if (xk == 2)
					fill_normal(x, n, 950 + ti, 1.0f);
				else
					for (int64_t i = 0; i < n; i++)
						x[i] = xk == 0 || dm_rng_u64(&rng) & 1 ? 1.0f : -1.0f;
				r.act_from_float(x, a, n);
				assert_int_equal(kern_dequantize(r.act_type, a, ad, n, NULL), 0);
				for (int isa = 0; isa < KERN_ISA_COUNT; isa++) {
					if (!kern_isa_supported((enum kern_isa)isa))
						continue;
					assert_int_equal(kern_matvec(pool, (enum kern_isa)isa, types[ti], w, rows, n,
								     x, y, NULL),
							 0);
					for (int64_t k = 0; k < rows; k++) {
						double S = 0, ex, ref = r.vec_dot(n, w + (size_t)k * wr, a);
						r.to_float(w + (size_t)k * wr, wd, n);
						for (int64_t i = 0; i < n; i++)
							S += fabs((double)wd[i]) * fabs((double)ad[i]);
						if (!dot_close(ref, y[k], S, n, &ex))
							fail_msg("%s %s matvec n %lld, row %lld, activation %d: ref %.9g got %.9g (%.2f× tol)",
								 tname(types[ti]), kern_isa_name((enum kern_isa)isa),
								 (long long)n, (long long)k, xk, ref, (double)y[k], ex);
					}
				}
			}
			free(w);
			free(a);
			free(x);
			free(y);
			free(wd);
			free(ad);
		}
	}
	dm_pool_free(pool);
}

/* SIMD matmul results are the same for 1, 2 and 3 threads (bit for bit:
 * each output is computed by exactly one thread in a fixed order), on the
 * dot_cols path (Q4_K) and the panel gemm (Q4_0, Q8_0, F16). */
static void test_matmul_threads_identical(void **state)
{
	static const uint32_t tt[] = { GGUF_TYPE_Q4_K, GGUF_TYPE_Q4_0, GGUF_TYPE_Q8_0, GGUF_TYPE_F16 };
	const int64_t rows = 96, n = 1024, ntok = 9;
	enum kern_isa isa = kern_isa_best();
	float *wf = malloc((size_t)(rows * n) * sizeof(float));
	float *x = malloc((size_t)(ntok * n) * sizeof(float));
	float *y1 = malloc((size_t)(ntok * rows) * sizeof(float));
	float *y2 = malloc((size_t)(ntok * rows) * sizeof(float));
	uint8_t *w = malloc(kern_row_bytes(GGUF_TYPE_F32, n) * rows);
	(void)state;
	fill_normal(wf, rows * n, 11, 0.02f);
	fill_normal(x, ntok * n, 12, 1.0f);
	for (size_t k = 0; k < sizeof tt / sizeof tt[0]; k++) {
		assert_int_equal(kern_quantize(tt[k], wf, w, rows * n, NULL), 0);
		assert_int_equal(kern_matmul(NULL, isa, tt[k], w, rows, n, x, ntok, y1, NULL), 0);
		for (int nt = 2; nt <= 3; nt++) {
			struct dm_pool *p;
			assert_int_equal(dm_pool_init(&p, nt, NULL), 0);
			assert_int_equal(kern_matmul(p, isa, tt[k], w, rows, n, x, ntok, y2, NULL), 0);
			assert_memory_equal(y1, y2, (size_t)(ntok * rows) * sizeof(float));
			dm_pool_free(p);
		}
	}
	free(wf);
	free(x);
	free(y1);
	free(y2);
	free(w);
}

/* A product set (kern_matmul_set) gives each matrix exactly what its own
 * kern_matvec / kern_matmul gives, on every ISA, with 1 and 2 threads:
 * a Q4_K_M-like set (two Q4_K matrices sharing packed activations, a Q6_K
 * one with its own) of different row counts, a Q4_0 + F16 set, for one
 * token (matvec), 3 tokens (below the K-quants' gemm threshold: dot_cols)
 * and 11 (panel gemm).  Counts outside 1..KERN_SET_MAX are refused.
 * The same through a caller's workspace of kern_ws_bytes (for up to 11
 * tokens) with a guard zone behind it: identical results, the guard
 * untouched; a byte less than the 11-token call needs is DM_EINVAL with
 * no output written. */
static void test_matmul_set(void **state)
{
	static const uint32_t sets[][3] = {
		{ GGUF_TYPE_Q4_K, GGUF_TYPE_Q4_K, GGUF_TYPE_Q6_K },
		{ GGUF_TYPE_Q4_0, GGUF_TYPE_F16, GGUF_TYPE_Q4_0 },
	};
	static const int64_t rows[3] = { 48, 17, 33 }, toks[] = { 1, 3, 11 };
	const int64_t n = 512;
	float *wf = malloc((size_t)(48 * n) * sizeof(float));
	float *x = malloc((size_t)(11 * n) * sizeof(float));
	uint8_t *w[3];
	float *y[3], *want = malloc((size_t)(11 * 48) * sizeof(float));
	struct dm_pool *pool;
	struct dm_err e;
	(void)state;
	assert_int_equal(dm_pool_init(&pool, 2, NULL), 0);
	fill_normal(x, 11 * n, 22, 1.0f);
	for (int i = 0; i < 3; i++) {
		w[i] = malloc(kern_row_bytes(GGUF_TYPE_F32, n) * 48);
		y[i] = malloc((size_t)(11 * 48) * sizeof(float));
	}
	for (size_t si = 0; si < sizeof sets / sizeof sets[0]; si++) {
		struct kern_mat m[3];
		for (int i = 0; i < 3; i++) {
			fill_normal(wf, rows[i] * n, 30 + (uint64_t)(si * 3 + (size_t)i), 0.02f);
			assert_int_equal(kern_quantize(sets[si][i], wf, w[i], rows[i] * n, NULL), 0);
			m[i] = (struct kern_mat){ sets[si][i], w[i], rows[i], y[i] };
		}
		for (int isa = 0; isa < KERN_ISA_COUNT; isa++) {
			if (!kern_isa_supported((enum kern_isa)isa))
				continue;
			for (size_t ti = 0; ti < sizeof toks / sizeof toks[0]; ti++)
				for (int th = 0; th < 2; th++) {
					const int64_t nt = toks[ti];
					struct dm_pool *p = th ? pool : NULL;
					size_t wsb;
					assert_int_equal(kern_ws_bytes((enum kern_isa)isa, sets[si], 3, n, 11,
								       th ? 2 : 1, &wsb, NULL), 0);
					uint8_t *wsm = aligned_alloc(64, (wsb + 64 + 63) / 64 * 64);
					memset(wsm + wsb, 0xA5, 64);
					struct kern_ws ws = { wsm, wsb };
					assert_int_equal(kern_matmul_set(p, (enum kern_isa)isa, m, 3, n, x, nt, &ws, NULL), 0);
					for (int g = 0; g < 64; g++)
						assert_int_equal(wsm[wsb + (size_t)g], 0xA5);
					float *via_ws[3];
					for (int i = 0; i < 3; i++) {
						via_ws[i] = malloc((size_t)(nt * rows[i]) * sizeof(float));
						memcpy(via_ws[i], y[i], (size_t)(nt * rows[i]) * sizeof(float));
					}
					if (nt == 11) {
						ws.bytes = wsb - 1;
						for (int i = 0; i < 3; i++)
							memset(y[i], 0x7F, (size_t)(nt * rows[i]) * sizeof(float));
						assert_int_equal(kern_matmul_set(p, (enum kern_isa)isa, m, 3, n, x, nt, &ws, &e),
								 DM_EINVAL);
						for (int i = 0; i < 3; i++)
							assert_int_equal(((uint8_t *)y[i])[0], 0x7F);
					}
					free(wsm);
					assert_int_equal(kern_matmul_set(p, (enum kern_isa)isa, m, 3, n, x, nt, NULL, NULL), 0);
					for (int i = 0; i < 3; i++) {
						assert_memory_equal(via_ws[i], y[i], (size_t)(nt * rows[i]) * sizeof(float));
						free(via_ws[i]);
						if (nt == 1)
							assert_int_equal(kern_matvec(NULL, (enum kern_isa)isa, m[i].type, w[i],
										     rows[i], n, x, want, NULL), 0);
						else
							assert_int_equal(kern_matmul(NULL, (enum kern_isa)isa, m[i].type, w[i],
										     rows[i], n, x, nt, want, NULL), 0);
						assert_memory_equal(want, y[i], (size_t)(nt * rows[i]) * sizeof(float));
					}
				}
		}
	}
	assert_int_equal(kern_matmul_set(NULL, KERN_ISA_REF, NULL, 0, n, x, 1, NULL, &e), DM_EINVAL);
	assert_int_equal(kern_matmul_set(NULL, KERN_ISA_REF, NULL, KERN_SET_MAX + 1, n, x, 1, NULL, &e),
			 DM_EINVAL);
	for (int i = 0; i < 3; i++) {
		free(w[i]);
		free(y[i]);
	}
	dm_pool_free(pool);
	free(wf);
	free(x);
	free(want);
}

/* Row kinds for the quantizer comparison: ordinary weights and the edge
 * cases of the reference's searches (all zero, huge, tiny, equal values,
 * ties of magnitude, one sign only, exact halves that test the rounding
 * rules). */
#define QR_KINDS 12
static void qr_fill(float *x, int64_t n, int kind, uint64_t seed)
{
	fill_normal(x, n, seed, 0.02f);
	for (int64_t i = 0; i < n; i++) {
		float v = x[i];
		switch (kind) {
		case 1: x[i] = 0; break;
		case 2: x[i] = v * 5e5f; break;            /* near F16's largest */
		case 3: x[i] = v * 1e30f; break;           /* squares overflow float */
		case 4: x[i] = v * 1e-4f; break;           /* F16 subnormals */
		case 5: x[i] = v * 1e-38f; break;          /* float subnormals */
		case 6: x[i] = (i / 32) % 2 ? 0.5f : -0.25f; break; /* equal values per block */
		case 7: x[i] = i % 7 == 0 ? (i % 14 ? 3.0f : -3.0f) : 0.0f; break; /* ties of |max| */
		case 8: x[i] = fabsf(v) + 0.01f; break;    /* positive only: min clamped to 0 */
		case 9: x[i] = -fabsf(v) - 0.5f; break;    /* negative only */
		case 10: x[i] = (float)((int)(v * 800) % 17) * 0.25f; break; /* quarters: exact halves */
		case 11: x[i] = i % 32 == 5 ? 1.0f : (i % 64 == 9 ? -0.0f : 1e-3f * v); break; /* one spike */
		default: break;
		}
	}
}

/* kern_quantize_rows on every ISA here, with and without threads, against
 * dequantize + the reference quantizer row by row: the same bytes. */
static void test_quantize_rows_identical(void **state)
{
	const uint32_t dst_types[] = { GGUF_TYPE_Q8_0, GGUF_TYPE_Q4_0, GGUF_TYPE_Q4_K };
	const uint32_t src_types[] = { GGUF_TYPE_F32, GGUF_TYPE_F16, GGUF_TYPE_BF16 };
	const int64_t n = 768, rows_per_kind = 6, rows = QR_KINDS * rows_per_kind;
	float *x = malloc((size_t)(rows * n) * sizeof *x), *row = malloc((size_t)n * sizeof *row);
	uint8_t *src = malloc((size_t)(rows * n) * 4), *want = malloc((size_t)(rows * n) * 2);
	uint8_t *got = malloc((size_t)(rows * n) * 2);
	struct dm_pool *pool;
	int checked = 0, bad = 0;
	(void)state;

	assert_int_equal(dm_pool_init(&pool, 2, NULL), 0);
	for (int64_t r = 0; r < rows; r++)
		qr_fill(x + r * n, n, (int)(r / rows_per_kind), 1000 + (uint64_t)r);
	for (size_t si = 0; si < sizeof src_types / sizeof src_types[0]; si++) {
		uint32_t st = src_types[si];
		size_t sb = kern_row_bytes(st, n);
		for (int64_t r = 0; r < rows; r++) {
			if (st == GGUF_TYPE_F32)
				memcpy(src + (size_t)r * sb, x + r * n, sb);
			else if (st == GGUF_TYPE_F16)
				kern_f32_to_f16(x + r * n, (uint16_t *)(void *)(src + (size_t)r * sb), n);
			else
				kern_f32_to_bf16(x + r * n, (uint16_t *)(void *)(src + (size_t)r * sb), n);
		}
		for (size_t ti = 0; ti < sizeof dst_types / sizeof dst_types[0]; ti++) {
			uint32_t t = dst_types[ti];
			size_t ob = kern_row_bytes(t, n);
			for (int64_t r = 0; r < rows; r++) {
				assert_int_equal(kern_dequantize(st, src + (size_t)r * sb, row, n, NULL), 0);
				assert_int_equal(kern_quantize(t, row, want + (size_t)r * ob, n, NULL), 0);
			}
			for (int isa = 0; isa < KERN_ISA_COUNT; isa++) {
				if (!kern_isa_supported((enum kern_isa)isa))
					continue;
				for (int threaded = 0; threaded < 2; threaded++) {
					memset(got, 0xA5, ob * (size_t)rows);
					assert_int_equal(kern_quantize_rows(threaded ? pool : NULL, (enum kern_isa)isa, st,
									    src, t, got, rows, n, NULL), 0);
					for (int64_t r = 0; r < rows; r++)
						if (memcmp(got + (size_t)r * ob, want + (size_t)r * ob, ob)) {
							size_t b = 0;
							while (got[(size_t)r * ob + b] == want[(size_t)r * ob + b])
								b++;
							bad++;
							print_error("%s -> %s, isa %s%s: row %lld (kind %lld) differs at byte %zu\n",
								 tname(st), tname(t), kern_isa_name((enum kern_isa)isa),
								 threaded ? ", 2 threads" : "", (long long)r,
								 (long long)(r / rows_per_kind), b);
						}
					checked++;
				}
			}
		}
	}
	print_message("  %d type x source x ISA x threads combinations, %lld rows each\n", checked, (long long)rows);
	assert_int_equal(bad, 0);
	/* what it refuses */
	{
		struct dm_err e;
		assert_int_equal(kern_quantize_rows(NULL, KERN_ISA_REF, GGUF_TYPE_Q8_0, src, GGUF_TYPE_Q4_0, got, 1, n, &e),
				 DM_EUNSUPPORTED);
		assert_int_equal(kern_quantize_rows(NULL, KERN_ISA_REF, GGUF_TYPE_F32, src, GGUF_TYPE_Q4_K, got, 1, 100, &e),
				 DM_EINVAL);
		assert_non_null(strstr(e.msg, "block"));
	}
	dm_pool_free(pool);
	free(x);
	free(row);
	free(src);
	free(want);
	free(got);
}

/* v rounded to bf16 (nearest even), as a double. */
static double bf16_round(float v)
{
	return (double)dm_bf16_to_f32(dm_f32_to_bf16(v));
}

/* F16 and BF16 prefill on AVX512BF16 (kern_matmul_eps), and BF16's
 * matvec: the eps stated for each path; each result within float summation of the float64 sum of the
 * operands rounded to bf16 (nearest even: both operands, and nothing else
 * changed — with these small n a truncation instead would be ~30× past the
 * tolerance); and within (eps + float summation)·S of the exact float64
 * product, the documented bound.  Shapes: an even and an odd number of
 * pairs per 16-element group, and a chunk past 512 elements. */
static void test_bf16_products(void **state)
{
	static const uint32_t tt[] = { GGUF_TYPE_F16, GGUF_TYPE_BF16 };
	static const int64_t ns[] = { 64, 100, 542 };
	const int64_t rows = 17, ntok = 9;
	const enum kern_isa isa = KERN_ISA_AVX512BF16;
	(void)state;
	assert_true(kern_matmul_eps(KERN_ISA_AVX512, GGUF_TYPE_F16, 9) == 0);
	assert_true(kern_matmul_eps(isa, GGUF_TYPE_Q8_0, 9) == 0);
	assert_true(kern_matmul_eps(isa, GGUF_TYPE_F16, 1) == 0);
	assert_true(kern_matmul_eps(isa, GGUF_TYPE_BF16, 1) == ldexp(1, -9));
	assert_true(kern_matmul_eps(KERN_ISA_AVX512, GGUF_TYPE_BF16, 1) == 0);
	assert_true(kern_matmul_eps(isa, GGUF_TYPE_F16, 9) == ldexp(1, -8) + ldexp(1, -18));
	assert_true(kern_matmul_eps(isa, GGUF_TYPE_BF16, 9) == ldexp(1, -9));
	if (!kern_isa_supported(isa)) {
		print_message("  no AVX512_BF16 on this CPU: its products not run\n");
		return;
	}
	for (size_t ti = 0; ti < sizeof tt / sizeof tt[0]; ti++)
		for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
			const int64_t n = ns[ni];
			const double eps = kern_matmul_eps(isa, tt[ti], ntok), u = ldexp(1, -24);
			struct mm_case c;
			double worst = 0;
			mm_case_make(&c, tt[ti], rows, n, ntok, 77 + ti * 7 + ni);
			float *y = malloc((size_t)(ntok * rows) * sizeof(float));
			float *wd = malloc((size_t)n * sizeof(float));
			float *yv = malloc((size_t)rows * sizeof(float));
			assert_int_equal(kern_matmul(NULL, isa, tt[ti], c.w, rows, n, c.x, ntok, y, NULL), 0);
			/* BF16's matvec takes bf16 products too: token 0's results
			 * are checked against the same sums (F16's, float products,
			 * against the exact one) */
			assert_int_equal(kern_matvec(NULL, isa, tt[ti], c.w, rows, n, c.x, yv, NULL), 0);
			for (int64_t i = 0; i < rows; i++) {
				assert_int_equal(kern_dequantize(tt[ti], c.w + (size_t)i * c.wr, wd, n, NULL), 0);
				for (int64_t t = 0; t < ntok; t++) {
					const float *x = c.x + t * n;
					double ex = 0, em = 0, S = 0, Sm = 0;
					for (int64_t k = 0; k < n; k++) {
						double wb = bf16_round(wd[k]), xb = bf16_round(x[k]);
						ex += (double)wd[k] * x[k];
						S += fabs((double)wd[k] * x[k]);
						em += wb * xb;
						Sm += fabs(wb * xb);
					}
					const double got = y[t * rows + i];
					if (t == 0 && tt[ti] == GGUF_TYPE_BF16 &&
					    fabs(yv[i] - em) > 2.0 * (double)n * u * Sm)
						fail_msg("BF16 matvec n %lld row %lld: %.9g, bf16 products give %.9g",
							 (long long)n, (long long)i, (double)yv[i], em);
					if (t == 0 && tt[ti] == GGUF_TYPE_F16 &&
					    fabs(yv[i] - ex) > 2.0 * (double)n * u * S)
						fail_msg("F16 matvec n %lld row %lld: %.9g, exact %.9g",
							 (long long)n, (long long)i, (double)yv[i], ex);
					if (fabs(got - em) > 2.0 * (double)n * u * Sm)
						fail_msg("%s n %lld row %lld token %lld: %.9g, bf16 products give %.9g (%.2f× tol)",
							 tname(tt[ti]), (long long)n, (long long)i, (long long)t, got, em,
							 fabs(got - em) / (2.0 * (double)n * u * Sm));
					if (fabs(got - ex) > (eps + 2.0 * (double)n * u) * S)
						fail_msg("%s n %lld row %lld token %lld: %.9g, exact %.9g: past the bound",
							 tname(tt[ti]), (long long)n, (long long)i, (long long)t, got, ex);
					if (fabs(got - ex) / S > worst)
						worst = fabs(got - ex) / S;
				}
			}
			print_message("  %-4s n %4lld: worst |y − exact| = %.2g·S (bound %.2g·S)\n", tname(tt[ti]),
				      (long long)n, worst, eps + 2.0 * (double)n * u);
			free(yv);
			free(wd);
			free(y);
			mm_case_free(&c);
		}
}

static void test_isa_selection(void **state)
{
	(void)state;
	assert_true(kern_isa_supported(KERN_ISA_REF));
	assert_int_equal(kern_isa_from_name("avx2"), KERN_ISA_AVX2);
	assert_int_equal(kern_isa_from_name("nope"), -1);
	setenv("DORMANT_ISA", "ref", 1);
	assert_int_equal(kern_isa_best(), KERN_ISA_REF);
	setenv("DORMANT_ISA", "avx512", 1);
	assert_true(kern_isa_best() <= KERN_ISA_AVX512);
	setenv("DORMANT_ISA", "avx512bf16", 1);
	enum kern_isa b = kern_isa_best();
	assert_true(kern_isa_supported(b));
	unsetenv("DORMANT_ISA");
	assert_int_equal(kern_isa_best(), b); /* the best the CPU has */
	print_message("  best ISA here: %s\n", kern_isa_name(b));
}

/* F16 matvec on the values a fast path can get wrong, on every ISA, each
 * row against the float64 sum of its exact products: f16 subnormals, ±0,
 * ±65504, mixed in random rows; activations of ordinary size, of ±1e-30
 * (products near float's subnormal range), and up to 1e30 (past the AVX-512
 * kernel's 2^44, where it scales the activation down instead of up); and
 * rows holding +inf, −inf, both, a NaN, or +inf against a zero activation,
 * which must give the float64 sum's inf (with its sign) or NaN.  n = 100 (a partial
 * 32-element group), 4096 and 4160 (a 64-element step and a group past it). */
static void test_f16_matvec_values(void **state)
{
	static const int64_t ns[] = { 100, 4096, 4160 };
	static const uint16_t odd[] = { 0x0001, 0x8001, 0x03FF, 0x83FF, 0x0000, 0x8000, 0x7BFF, 0xFBFF, 0x0400 };
	const int64_t rows = 9;
	struct dm_pool *pool;
	struct dm_rng rng;
	struct kern_traits r;
	(void)state;
	assert_int_equal(dm_pool_init(&pool, 2, NULL), 0);
	assert_int_equal(kern_traits_get(GGUF_TYPE_F16, KERN_ISA_REF, &r), 0);
	dm_rng_seed(&rng, 4242);
	for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
		const int64_t n = ns[ni];
		uint16_t *w = malloc((size_t)(n * rows) * 2);
		float *x = malloc((size_t)n * sizeof(float)), *y = malloc((size_t)rows * sizeof(float));
		float *wd = malloc((size_t)n * sizeof(float));
		/* rows 0-3: random weights with special values sprinkled in */
		for (int64_t k = 0; k < 4 * n; k++) {
			const uint64_t v = dm_rng_u64(&rng);
			w[k] = v % 5 == 0 ? odd[(v >> 8) % (sizeof odd / sizeof odd[0])] : (uint16_t)(v >> 16);
			if ((w[k] & 0x7C00) == 0x7C00)
				w[k] &= 0xBFFF; /* no inf/NaN here: exponent 15 instead */
		}
		/* rows 4-8: ordinary weights, then +inf; −inf; +inf and −inf; NaN;
		 * +inf where the activation is 0 */
		for (int64_t k = 4 * n; k < rows * n; k++)
			w[k] = (uint16_t)(0x2000 + dm_rng_u64(&rng) % 0x1000) | (dm_rng_u64(&rng) & 1 ? 0x8000 : 0);
		w[4 * n + n / 3] = 0x7C00;
		w[5 * n + n - 1] = 0xFC00;
		w[6 * n + 1] = 0x7C00;
		w[6 * n + n / 2] = 0xFC00;
		w[7 * n + n / 5] = 0x7E01;
		w[8 * n + 7] = 0x7C00;
		for (int xk = 0; xk < 3; xk++) {
			static const float sig[] = { 1.0f, 1e-30f, 1e30f };
			fill_normal(x, n, 60 + (uint64_t)xk, sig[xk]);
			x[7] = 0.0f;
			for (int isa = 0; isa < KERN_ISA_COUNT; isa++) {
				if (!kern_isa_supported((enum kern_isa)isa))
					continue;
				assert_int_equal(kern_matvec(pool, (enum kern_isa)isa, GGUF_TYPE_F16, w, rows, n, x, y,
							     NULL),
						 0);
				for (int64_t k = 0; k < rows; k++) {
					double ex = 0, S = 0;
					r.to_float(w + k * n, wd, n);
					for (int64_t i = 0; i < n; i++) {
						ex += (double)wd[i] * x[i];
						S += fabs((double)wd[i] * x[i]);
					}
					const double got = y[k];
					bool ok;
					if (k >= 4) /* the float64 sum's inf (with its sign) or NaN */
						ok = !isfinite(ex) && (isnan(ex) ? isnan(got) : got == ex);
					else
						ok = isfinite(got) &&
						     fabs(got - ex) <= 2.0 * (double)n * ldexp(1, -24) * S + (double)n * ldexp(1, -94);
					if (!ok)
						fail_msg("F16 %s matvec n %lld row %lld activation %d: %.9g, exact %.9g (S %.3g)",
							 kern_isa_name((enum kern_isa)isa), (long long)n, (long long)k, xk, got, ex,
							 S);
				}
			}
		}
		free(w);
		free(x);
		free(y);
		free(wd);
	}
	dm_pool_free(pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simd_vs_ref),
		cmocka_unit_test(test_ref_dot_vs_dequant),
		cmocka_unit_test(test_corrupt_block_detected),
		cmocka_unit_test(test_roundtrip_rmse),
		cmocka_unit_test(test_matvec_matmul),
		cmocka_unit_test(test_matmul_corrupt_block_detected),
		cmocka_unit_test(test_matvec_extremes),
		cmocka_unit_test(test_matmul_threads_identical),
		cmocka_unit_test(test_matmul_set),
		cmocka_unit_test(test_quantize_rows_identical),
		cmocka_unit_test(test_bf16_products),
		cmocka_unit_test(test_f16_matvec_values),
		cmocka_unit_test(test_isa_selection),
	};
	return cmocka_run_group_tests_name("kern", tests, NULL, NULL);
}

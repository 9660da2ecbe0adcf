/*
 * kern/kern — trait tables, ISA selection and the threaded matrix products
 * (see kern.h).
 *
 * The reference table below is the complete list of weight types we
 * compute with; an ISA adds its SIMD vec_dot / dot_cols on top through
 * kern_simd_<isa>() (defined in the per-ISA files).  Everything here is
 * const or per call, but for the CPU feature probe (written once).
 */
#include "kern/kern.h"

#include <stdlib.h>
#include <string.h>

#include "base/pool.h"
#include "gguf/gguf.h"
#include "kern/kern_impl.h"

/* ---- ISA selection ---- */

static const char *const isa_names[KERN_ISA_COUNT] = { "ref", "avx2", "avx512", "avx512bf16" };

const char *kern_isa_name(enum kern_isa isa)
{
	return (unsigned)isa < KERN_ISA_COUNT ? isa_names[isa] : "?";
}

int kern_isa_from_name(const char *name)
{
	for (int i = 0; i < KERN_ISA_COUNT; i++)
		if (name && !strcmp(name, isa_names[i]))
			return i;
	return -1;
}

#if defined(__x86_64__)
#include <cpuid.h>
#include <pthread.h>

/* The CPU's features, probed once per process: CPUID traps to the
 * hypervisor in a VM (tens of microseconds), and kern_traits_get asks on
 * every matrix product.  Written once under pthread_once, read-only after:
 * the only static that is not const, and it describes the machine. */
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;
static bool cpu_isa[KERN_ISA_COUNT];

static void cpu_probe(void)
{
	unsigned a, b, c, d;
	/* F16C from CPUID leaf 1, ECX bit 29 (clang 14's
	 * __builtin_cpu_supports does not know "f16c") */
	bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));

	__builtin_cpu_init();
	cpu_isa[KERN_ISA_REF] = true;
	cpu_isa[KERN_ISA_AVX2] = __builtin_cpu_supports("avx2") &&
				 __builtin_cpu_supports("fma") && f16c;
	cpu_isa[KERN_ISA_AVX512] = cpu_isa[KERN_ISA_AVX2] && __builtin_cpu_supports("avx512f") &&
				   __builtin_cpu_supports("avx512bw") &&
				   __builtin_cpu_supports("avx512vl") &&
				   __builtin_cpu_supports("avx512dq") &&
				   __builtin_cpu_supports("avx512vnni");
	/* AVX512_BF16: CPUID leaf 7 subleaf 1, EAX bit 5 */
	cpu_isa[KERN_ISA_AVX512BF16] = cpu_isa[KERN_ISA_AVX512] &&
				       __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5));
}

bool kern_isa_supported(enum kern_isa isa)
{
	if ((unsigned)isa >= KERN_ISA_COUNT)
		return false;
	pthread_once(&cpu_once, cpu_probe);
	return cpu_isa[isa];
}
#else
bool kern_isa_supported(enum kern_isa isa)
{
	return isa == KERN_ISA_REF;
}
#endif

enum kern_isa kern_isa_best(void)
{
	enum kern_isa best = KERN_ISA_REF;
	const char *env = getenv("DORMANT_ISA");
	int want = kern_isa_from_name(env);

	for (int i = KERN_ISA_COUNT - 1; i > 0; i--)
		if (kern_isa_supported((enum kern_isa)i)) {
			best = (enum kern_isa)i;
			break;
		}
	if (want >= 0 && want < (int)best)
		best = (enum kern_isa)want;
	return best;
}

/* ---- trait tables ---- */

#define T(ty, bs, bb, act, tf, ff, af, dot)                                                 \
	[GGUF_TYPE_##ty] = { GGUF_TYPE_##ty, #ty, bs, bb, GGUF_TYPE_##act, tf, ff, af, dot, NULL }

static const struct kern_traits ref_table[GGUF_TYPE_COUNT] = {
	T(F32, 1, 4, F32, kern_to_float_f32_ref, kern_from_float_f32_ref, kern_from_float_f32_ref,
	  kern_dot_f32_ref),
	T(F16, 1, 2, F32, kern_to_float_f16_ref, kern_from_float_f16_ref, kern_from_float_f32_ref,
	  kern_dot_f16_ref),
	T(BF16, 1, 2, F32, kern_to_float_bf16_ref, kern_from_float_bf16_ref,
	  kern_from_float_f32_ref, kern_dot_bf16_ref),
	T(Q4_0, QK4_0, 18, Q8_0, kern_to_float_q4_0_ref, kern_from_float_q4_0_ref,
	  kern_from_float_q8_0_ref, kern_dot_q4_0_ref),
	T(Q4_1, QK4_1, 20, Q8_1, kern_to_float_q4_1_ref, kern_from_float_q4_1_ref,
	  kern_from_float_q8_1_ref, kern_dot_q4_1_ref),
	T(Q5_0, QK5_0, 22, Q8_0, kern_to_float_q5_0_ref, kern_from_float_q5_0_ref,
	  kern_from_float_q8_0_ref, kern_dot_q5_0_ref),
	T(Q5_1, QK5_1, 24, Q8_1, kern_to_float_q5_1_ref, kern_from_float_q5_1_ref,
	  kern_from_float_q8_1_ref, kern_dot_q5_1_ref),
	T(Q8_0, QK8_0, 34, Q8_0, kern_to_float_q8_0_ref, kern_from_float_q8_0_ref,
	  kern_from_float_q8_0_ref, kern_dot_q8_0_ref),
	T(Q2_K, QK_K, 84, Q8_K, kern_to_float_q2_K_ref, kern_from_float_q2_K_ref,
	  kern_from_float_q8_K_ref, kern_dot_q2_K_ref),
	T(Q3_K, QK_K, 110, Q8_K, kern_to_float_q3_K_ref, kern_from_float_q3_K_ref,
	  kern_from_float_q8_K_ref, kern_dot_q3_K_ref),
	T(Q4_K, QK_K, 144, Q8_K, kern_to_float_q4_K_ref, kern_from_float_q4_K_ref,
	  kern_from_float_q8_K_ref, kern_dot_q4_K_ref),
	T(Q5_K, QK_K, 176, Q8_K, kern_to_float_q5_K_ref, kern_from_float_q5_K_ref,
	  kern_from_float_q8_K_ref, kern_dot_q5_K_ref),
	T(Q6_K, QK_K, 210, Q8_K, kern_to_float_q6_K_ref, kern_from_float_q6_K_ref,
	  kern_from_float_q8_K_ref, kern_dot_q6_K_ref),
};
#undef T

/* Activation-only formats: (de)quantizable, but not weight types here. */
struct act_format {
	uint32_t block_size, block_bytes;
	kern_to_float_fn to_float;
	kern_from_float_fn from_float;
};

static const struct act_format act_formats[GGUF_TYPE_COUNT] = {
	[GGUF_TYPE_F32] = { 1, 4, kern_to_float_f32_ref, kern_from_float_f32_ref },
	[GGUF_TYPE_Q8_0] = { QK8_0, 34, kern_to_float_q8_0_ref, kern_from_float_q8_0_ref },
	[GGUF_TYPE_Q8_1] = { QK8_1, 36, kern_to_float_q8_1_ref, kern_from_float_q8_1_ref },
	[GGUF_TYPE_Q8_K] = { QK_K, 292, kern_to_float_q8_K_ref, kern_from_float_q8_K_ref },
};

int kern_traits_get(uint32_t type, enum kern_isa isa, struct kern_traits *out)
{
	struct kern_simd s;

	if (type >= GGUF_TYPE_COUNT || !ref_table[type].name || (unsigned)isa >= KERN_ISA_COUNT ||
	    !kern_isa_supported(isa))
		return DM_EUNSUPPORTED;
	*out = ref_table[type];
	s.vec_dot = out->vec_dot;
	s.dot_cols = NULL;
	if (isa >= KERN_ISA_AVX2)
		kern_simd_avx2(type, &s);
	if (isa >= KERN_ISA_AVX512)
		kern_simd_avx512(type, &s);
	out->vec_dot = s.vec_dot;
	out->dot_cols = s.dot_cols;
	if (isa >= KERN_ISA_AVX2 && kern_act_quant_avx2(out->act_type))
		out->act_from_float = kern_act_quant_avx2(out->act_type);
	if (isa >= KERN_ISA_AVX512 && kern_act_quant_avx512(out->act_type))
		out->act_from_float = kern_act_quant_avx512(out->act_type);
	return 0;
}

static size_t bytes_for(uint32_t bs, uint32_t bb, int64_t n)
{
	if (n < 0 || !bs || n % bs)
		return 0;
	return (size_t)(n / bs) * bb;
}

size_t kern_row_bytes(uint32_t type, int64_t n)
{
	if (type >= GGUF_TYPE_COUNT)
		return 0;
	if (ref_table[type].name)
		return bytes_for(ref_table[type].block_size, ref_table[type].block_bytes, n);
	return bytes_for(act_formats[type].block_size, act_formats[type].block_bytes, n);
}

size_t kern_act_row_bytes(uint32_t type, int64_t n)
{
	if (type >= GGUF_TYPE_COUNT || !ref_table[type].name)
		return 0;
	return kern_row_bytes(ref_table[type].act_type, n);
}

static int check_n(uint32_t type, int64_t n, uint32_t bs, struct dm_err *err)
{
	if (n < 0 || n % bs)
		return dm_err_set(err, DM_EINVAL, "%lld elements is not a multiple of %s's block of %u",
				  (long long)n, gguf_type_get(type) ? gguf_type_get(type)->name : "?",
				  bs);
	return 0;
}

int kern_dequantize(uint32_t type, const void *x, float *y, int64_t n, struct dm_err *err)
{
	kern_to_float_fn fn = NULL;
	uint32_t bs = 1;

	if (type < GGUF_TYPE_COUNT && ref_table[type].name) {
		fn = ref_table[type].to_float;
		bs = ref_table[type].block_size;
	} else if (type < GGUF_TYPE_COUNT && act_formats[type].to_float) {
		fn = act_formats[type].to_float;
		bs = act_formats[type].block_size;
	}
	if (!fn)
		return dm_err_set(err, DM_EUNSUPPORTED, "cannot dequantize type %u", type);
	if (check_n(type, n, bs, err))
		return DM_EINVAL;
	fn(x, y, n);
	return 0;
}

int kern_quantize(uint32_t type, const float *x, void *y, int64_t n, struct dm_err *err)
{
	kern_from_float_fn fn = NULL;
	uint32_t bs = 1;

	if (type < GGUF_TYPE_COUNT && ref_table[type].name) {
		fn = ref_table[type].from_float;
		bs = ref_table[type].block_size;
	} else if (type < GGUF_TYPE_COUNT && act_formats[type].from_float) {
		fn = act_formats[type].from_float;
		bs = act_formats[type].block_size;
	}
	if (!fn)
		return dm_err_set(err, DM_EUNSUPPORTED, "cannot quantize to type %u", type);
	if (check_n(type, n, bs, err))
		return DM_EINVAL;
	fn(x, y, n);
	return 0;
}

/* ---- quantizing whole matrices (quantize-on-load) ---- */

struct qrows_job {
	kern_to_float_fn to_float; /* NULL: the source rows are floats already */
	kern_from_float_fn quant;
	const uint8_t *src;
	uint8_t *dst;
	size_t src_row, dst_row;
	int64_t n;
	float *rows; /* one row of floats per thread */
};

static void qrows_task(void *arg, int64_t b, int64_t e, int thread)
{
	const struct qrows_job *j = arg;
	float *row = j->rows + (size_t)thread * (size_t)j->n;
	for (int64_t r = b; r < e; r++) {
		const uint8_t *s = j->src + (size_t)r * j->src_row;
		const float *x = (const float *)(const void *)s;
		if (j->to_float) {
			j->to_float(s, row, j->n);
			x = row;
		}
		j->quant(x, j->dst + (size_t)r * j->dst_row, j->n);
	}
}

int kern_quantize_rows(struct dm_pool *pool, enum kern_isa isa, uint32_t src_type, const void *src,
		       uint32_t type, void *dst, int64_t n_rows, int64_t n, struct dm_err *err)
{
	struct qrows_job j = { 0 };
	int threads = dm_pool_size(pool);

	if (src_type != GGUF_TYPE_F32 && src_type != GGUF_TYPE_F16 && src_type != GGUF_TYPE_BF16)
		return dm_err_set(err, DM_EUNSUPPORTED, "cannot quantize from type %u (only F32, F16, BF16)",
				  src_type);
	if (type >= GGUF_TYPE_COUNT || !ref_table[type].name || !ref_table[type].from_float)
		return dm_err_set(err, DM_EUNSUPPORTED, "cannot quantize to type %u", type);
	if (n_rows < 0)
		return dm_err_set(err, DM_EINVAL, "%lld rows", (long long)n_rows);
	if (check_n(type, n, ref_table[type].block_size, err))
		return DM_EINVAL;
	if (!kern_isa_supported(isa))
		isa = KERN_ISA_REF;
	j.quant = ref_table[type].from_float;
	j.to_float = src_type == GGUF_TYPE_F32 ? NULL : ref_table[src_type].to_float;
#if defined(__x86_64__)
	if (isa >= KERN_ISA_AVX2) {
		kern_from_float_fn q = kern_quant_avx2(type);
		if (q)
			j.quant = q;
		if (src_type == GGUF_TYPE_F16)
			j.to_float = kern_f16_to_f32_avx2;
	}
#endif
	if (!n_rows || !n)
		return 0;
	j.src = src;
	j.dst = dst;
	j.src_row = kern_row_bytes(src_type, n);
	j.dst_row = kern_row_bytes(type, n);
	j.n = n;
	if (j.to_float && !(j.rows = malloc((size_t)threads * (size_t)n * sizeof(float))))
		return dm_err_set(err, DM_ENOMEM, "cannot allocate %d rows of %lld floats", threads, (long long)n);
	/* chunks of about 64K elements: enough work per hand-out, and every
	 * thread gets several chunks of a large matrix */
	dm_pool_run(pool, n_rows, n >= 65536 ? 1 : 65536 / n, qrows_task, &j);
	free(j.rows);
	return 0;
}

/* ---- matrix products ---- */

/* How one weight matrix is multiplied: the decode matvec (one token), the
 * panel gemm (AVX-512, AVX2 for some types; from its min_tok tokens up), or
 * over token groups the matvec's own several-token kernel (cols, where it
 * has one), else dot_cols / vec_dot.  Every mode packs the activations once
 * per call. */
enum mm_mode { MM_VEC, MM_GEMM, MM_COLS };

struct mm_job {
	const struct kern_traits *t;
	enum mm_mode mode;
	const uint8_t *w;
	size_t w_row;       /* bytes per weight row */
	int64_t n, n_rows, n_tok;
	const struct kern_gemm *gemm; /* MM_GEMM: panel kernel (kern_impl.h) */
	kern_vec_dot_fn dot;          /* MM_VEC: the row kernel */
	void (*dot8)(int64_t n, const uint8_t *w, size_t w_row, const void *act,
		     float *y);           /* MM_VEC: 8 rows at once, or NULL */
	void (*cols)(int64_t n, const void *w, const uint8_t *act, size_t as, int nc,
		     float *out);         /* MM_COLS: the matvec's tokens-at-once kernel, or NULL */
	kern_from_float_fn pack;      /* MM_VEC, MM_COLS: packs one token row */
	const float *x;     /* n_tok × n floats */
	uint8_t *act;       /* packed activations (another job's when shared) */
	bool act_owned;
	size_t act_row;     /* bytes per activation row (MM_GEMM: per token block) */
	uint8_t *scratch;   /* MM_GEMM: one panel buffer per pool thread */
	size_t scratch_row; /* bytes per thread */
	float *y;           /* n_tok × n_rows */
};

static void act_task(void *arg, int64_t b, int64_t e, int thread)
{
	struct mm_job *j = arg;
	(void)thread;
	for (int64_t t = b; t < e; t++) {
		const float *x = j->x + (size_t)t * (size_t)j->n;
		if (j->mode == MM_GEMM) /* token blocks: act_row bytes per KERN_GEMM_TOK tokens */
			j->gemm->act_pack(x, j->act + (size_t)(t / KERN_GEMM_TOK) * j->act_row, j->n,
					  (int)(t % KERN_GEMM_TOK));
		else
			j->pack(x, j->act + (size_t)t * j->act_row, j->n);
	}
}

/* Rows [b, e); with dot8, b is a multiple of 8 and only the matrix's last
 * group can be partial, so a row takes the same kernel (and gives the same
 * bits) however the rows are split over threads. */
static void matvec_task(struct mm_job *j, int64_t b, int64_t e)
{
	int64_t r = b;
	if (j->dot8)
		for (; r + 8 <= e; r += 8)
			j->dot8(j->n, j->w + (size_t)r * j->w_row, j->w_row, j->act, j->y + r);
	for (; r < e; r++)
		j->y[r] = j->dot(j->n, j->w + (size_t)r * j->w_row, j->act);
}

/* Rows [b, e) against every token, KERN_COLS_MAX tokens at a time: the
 * chunk's weight rows stay in L1/L2 while the token groups go by. */
static void matmul_task(struct mm_job *j, int64_t b, int64_t e)
{
	float out[KERN_COLS_MAX];
	for (int64_t t0 = 0; t0 < j->n_tok; t0 += KERN_COLS_MAX) {
		int nc = (int)(j->n_tok - t0 < KERN_COLS_MAX ? j->n_tok - t0 : KERN_COLS_MAX);
		const uint8_t *a = j->act + (size_t)t0 * j->act_row;
		for (int64_t r = b; r < e; r++) {
			const uint8_t *w = j->w + (size_t)r * j->w_row;
			if (j->cols) {
				j->cols(j->n, w, a, j->act_row, nc, out);
			} else if (j->t->dot_cols) {
				j->t->dot_cols(j->n, w, a, j->act_row, nc, out);
			} else {
				for (int c = 0; c < nc; c++)
					out[c] = j->t->vec_dot(j->n, w, a + (size_t)c * j->act_row);
			}
			for (int c = 0; c < nc; c++)
				j->y[(size_t)(t0 + c) * (size_t)j->n_rows + (size_t)r] = out[c];
		}
	}
}

/* The same with the panel gemm: rows [b, e) KERN_PANEL_ROWS at a time,
 * each panel repacked once into this thread's scratch and then run against
 * every token (b is a multiple of KERN_PANEL_ROWS). */
static void gemm_task(struct mm_job *j, int64_t b, int64_t e, int thread)
{
	uint8_t *scratch = j->scratch + (size_t)thread * j->scratch_row;
	for (int64_t r = b; r < e; r += KERN_PANEL_ROWS) {
		int nr = (int)(e - r < KERN_PANEL_ROWS ? e - r : KERN_PANEL_ROWS);
		j->gemm->panel(j->n, j->w + (size_t)r * j->w_row, j->w_row, nr, j->act, j->act_row,
			       j->n_tok, j->y + (size_t)r, (size_t)j->n_rows, scratch);
	}
}

size_t kern_gemm_float_act_bytes(int64_t n)
{
	return (size_t)n * KERN_GEMM_TOK * sizeof(float);
}

void kern_gemm_float_pack(const float *x, uint8_t *blk, int64_t n, int slot)
{
	float *b = (float *)(void *)blk;
	for (int64_t k = 0; k < n; k++)
		b[(size_t)k * KERN_GEMM_TOK + (size_t)slot] = x[k];
}

/* The panel gemm an ISA has for a weight type (NULL: none). */
static const struct kern_gemm *gemm_for(enum kern_isa isa, uint32_t type)
{
	const struct kern_gemm *g;
	if (isa >= KERN_ISA_AVX512BF16 && (g = kern_gemm_avx512bf16(type)))
		return g;
	if (isa >= KERN_ISA_AVX512)
		return kern_gemm_avx512(type);
	if (isa == KERN_ISA_AVX2)
		return kern_gemm_avx2(type);
	return NULL;
}

/* The decode matvec an ISA has for a type (NULL: the traits' vec_dot); a
 * machine runs the matvec of a lower ISA where it has none of its own. */
static const struct kern_gemv *gemv_for(enum kern_isa isa, uint32_t type)
{
	const struct kern_gemv *gv = NULL;
	if (isa >= KERN_ISA_AVX512BF16)
		gv = kern_gemv_avx512bf16(type);
	if (!gv && isa >= KERN_ISA_AVX512)
		gv = kern_gemv_avx512(type);
	if (!gv && isa >= KERN_ISA_AVX2)
		gv = kern_gemv_avx2(type);
	return gv;
}

double kern_matmul_eps(enum kern_isa isa, uint32_t type, int64_t n_tok)
{
	if (n_tok == 1) {
		const struct kern_gemv *gv = gemv_for(isa, type);
		return gv ? gv->eps : 0;
	}
	const struct kern_gemm *g = n_tok > 1 ? gemm_for(isa, type) : NULL;
	return g && n_tok >= g->min_tok ? g->eps : 0;
}

/* Chooses the mode and sizes of one product; allocates nothing (w may be
 * NULL when only sizing). */
static int mm_plan(struct mm_job *j, struct kern_traits *t, enum kern_isa isa, uint32_t type,
		   const void *w, int64_t n_rows, int64_t n, int64_t n_tok, struct dm_err *err)
{
	memset(j, 0, sizeof *j);
	if (kern_traits_get(type, isa, t)) {
		const struct gguf_type_info *ti = gguf_type_get(type);
		return dm_err_set(err, DM_EUNSUPPORTED, "no %s kernels for type %s",
				  kern_isa_name(isa), ti ? ti->name : "?");
	}
	if (n_rows < 0 || n_tok < 0)
		return dm_err_set(err, DM_EINVAL, "negative matrix size");
	if (check_n(type, n, t->block_size, err))
		return DM_EINVAL;
	j->t = t;
	j->w = w;
	j->w_row = kern_row_bytes(type, n);
	j->n = n;
	j->n_rows = n_rows;
	j->n_tok = n_tok;
	j->mode = MM_COLS;
	j->pack = t->act_from_float;
	j->act_row = kern_act_row_bytes(type, n);
	if (n_tok == 1) {
		const struct kern_gemv *gv = gemv_for(isa, type);
		j->mode = MM_VEC;
		j->dot = t->vec_dot;
		if (gv) { /* its own activation layout, in place of act_type's */
			j->pack = gv->act_pack;
			j->act_row = gv->act_bytes(n);
			j->dot = gv->dot;
			j->dot8 = gv->dot8;
		}
	} else if (n > 0 && (j->gemm = gemm_for(isa, type)) &&
		   n_tok >= j->gemm->min_tok) {
		/* the panel gemm repacks its weights once per call: from min_tok up */
		j->mode = MM_GEMM;
		j->pack = NULL;
		j->act_row = j->gemm->act_pack ? j->gemm->act_bytes(n) : 0;
	} else {
		/* fewer tokens: the matvec's own kernel for several tokens where
		 * it has one (its activation layout, as for one token) */
		const struct kern_gemv *gv = gemv_for(isa, type);
		if (gv && gv->cols) {
			j->pack = gv->act_pack;
			j->act_row = gv->act_bytes(n);
			j->cols = gv->cols;
		}
	}
	/* 64-byte aligned rows keep SIMD loads within cache lines */
	j->act_row = (j->act_row + 63) & ~(size_t)63;
	if (j->mode == MM_GEMM && n_rows > 0)
		j->scratch_row = (j->gemm->scratch_bytes(n) + 63) & ~(size_t)63;
	return 0;
}

/* Whether job b can use job a's packed activations (same layout). */
static bool same_act(const struct mm_job *a, const struct mm_job *b)
{
	if (a->mode != b->mode || a->act_row != b->act_row)
		return false;
	return a->mode == MM_GEMM ? a->gemm->act_pack == b->gemm->act_pack : a->pack == b->pack;
}

/* Activation rows of a job: tokens, or token blocks for the gemm. */
static int64_t mm_act_rows(const struct mm_job *j)
{
	return j->mode == MM_GEMM ? (j->n_tok + KERN_GEMM_TOK - 1) / KERN_GEMM_TOK : j->n_tok;
}

/* Lays the set's working memory out from `base` (NULL: only measures):
 * one activation buffer per distinct layout, which the first job of that
 * layout packs and the later ones share, then each gemm job's per-thread
 * panels.  Returns the bytes used. */
static size_t mm_carve(struct mm_job *jobs, int count, int threads, uint8_t *base)
{
	size_t off = 0;
	for (int i = 0; i < count; i++) {
		struct mm_job *j = &jobs[i];
		int k = 0;
		j->act_owned = false;
		if (!j->act_row || j->n == 0 || j->n_tok == 0)
			continue;
		while (k < i && !(jobs[k].act_owned && same_act(&jobs[k], j)))
			k++;
		if (k < i) {
			j->act = jobs[k].act;
			continue;
		}
		j->act_owned = true;
		j->act = base ? base + off : NULL;
		off += j->act_row * (size_t)mm_act_rows(j);
	}
	for (int i = 0; i < count; i++) {
		struct mm_job *j = &jobs[i];
		if (!j->scratch_row)
			continue;
		j->scratch = base ? base + off : NULL;
		off += j->scratch_row * (size_t)threads;
	}
	return off;
}

/* Packs the activations of every job that owns a buffer. */
static void mm_pack(struct mm_job *jobs, int count, struct dm_pool *pool, const float *x)
{
	for (int i = 0; i < count; i++) {
		struct mm_job *j = &jobs[i];
		j->x = x;
		if (j->act_owned)
			/* whole token blocks per task: no two threads write one block */
			dm_pool_run(pool, j->n_tok, j->mode == MM_GEMM ? KERN_GEMM_TOK : 1, act_task, j);
	}
}

/* Several products as one pool job: job i's work items (rows, or panels
 * for MM_GEMM, 8-row groups for MM_VEC with dot8) are [first[i],
 * first[i + 1]) of one range. */
struct mm_set {
	struct mm_job *jobs;
	int count;
	int64_t first[KERN_SET_MAX + 1];
};

/* Work items of a job: rows, 8-row groups (MM_VEC with dot8) or panels. */
static int64_t mm_items(const struct mm_job *j)
{
	if (j->mode == MM_VEC && j->dot8)
		return (j->n_rows + 7) / 8;
	return j->mode == MM_GEMM ? (j->n_rows + KERN_PANEL_ROWS - 1) / KERN_PANEL_ROWS : j->n_rows;
}

static void set_task(void *arg, int64_t b, int64_t e, int thread)
{
	const struct mm_set *s = arg;
	for (int i = 0; i < s->count; i++) {
		struct mm_job *j = &s->jobs[i];
		int64_t lo = b > s->first[i] ? b : s->first[i];
		int64_t hi = e < s->first[i + 1] ? e : s->first[i + 1];
		if (lo >= hi)
			continue;
		lo -= s->first[i];
		hi -= s->first[i];
		if (j->mode == MM_VEC && j->dot8) {
			hi *= 8;
			matvec_task(j, lo * 8, hi < j->n_rows ? hi : j->n_rows);
		} else if (j->mode == MM_VEC) {
			matvec_task(j, lo, hi);
		} else if (j->mode == MM_COLS) {
			matmul_task(j, lo, hi);
		} else {
			hi *= KERN_PANEL_ROWS;
			gemm_task(j, lo * KERN_PANEL_ROWS, hi < j->n_rows ? hi : j->n_rows, thread);
		}
	}
}

int kern_matmul_set(struct dm_pool *pool, enum kern_isa isa, const struct kern_mat *mats,
		    int count, int64_t n, const float *x, int64_t n_tok, const struct kern_ws *ws,
		    struct dm_err *err)
{
	struct kern_traits t[KERN_SET_MAX];
	struct mm_job jobs[KERN_SET_MAX];
	struct mm_set s = { jobs, count, { 0 } };
	const int threads = dm_pool_size(pool);
	uint8_t *own = NULL, *base = NULL;
	size_t need;
	int rc;

	if (count < 1 || count > KERN_SET_MAX)
		return dm_err_set(err, DM_EINVAL, "%d matrices in one product set (1..%d)", count,
				  KERN_SET_MAX);
	for (int i = 0; i < count; i++) {
		const struct kern_mat *m = &mats[i];
		if ((rc = mm_plan(&jobs[i], &t[i], isa, m->type, m->w, m->n_rows, n, n_tok, err)))
			return rc;
		jobs[i].y = m->y;
		s.first[i + 1] = s.first[i] + mm_items(&jobs[i]);
	}
	if (n == 0 || n_tok == 0) {
		for (int i = 0; i < count; i++)
			memset(mats[i].y, 0, (size_t)mats[i].n_rows * (size_t)n_tok * sizeof(float));
		return 0;
	}
	need = mm_carve(jobs, count, threads, NULL);
	if (ws) {
		if (ws->bytes < need)
			return dm_err_set(err, DM_EINVAL,
					  "matrix product workspace of %zu bytes, this call needs %zu",
					  ws->bytes, need);
		base = ws->base;
	} else if (need && !(base = own = aligned_alloc(64, (need + 63) & ~(size_t)63))) {
		return dm_err_set(err, DM_ENOMEM, "out of memory for %zu bytes of activations and panels",
				  need);
	}
	mm_carve(jobs, count, threads, base);
	mm_pack(jobs, count, pool, x);
	{
		/* ~8 chunks per thread for balance, and not below a size whose
		 * scheduling costs more than it balances */
		const int64_t min = jobs[0].mode == MM_VEC ? (jobs[0].dot8 ? 2 : 16)
				    : jobs[0].mode == MM_COLS ? 8
							      : 1;
		int64_t chunk = s.first[count] / ((int64_t)threads * 8);
		dm_pool_run(pool, s.first[count], chunk < min ? min : chunk, set_task, &s);
	}
	free(own);
	return 0;
}

int kern_ws_bytes(enum kern_isa isa, const uint32_t *types, int count, int64_t n,
		  int64_t n_tok_max, int threads, size_t *bytes, struct dm_err *err)
{
	struct kern_traits t[KERN_SET_MAX];
	struct mm_job jobs[KERN_SET_MAX];
	/* every size grows with n_tok inside a mode, so the largest is at the
	 * last n_tok of each mode: 1, below each type's gemm threshold, n_tok_max */
	int64_t at[KERN_SET_MAX + 2];
	int n_at = 0, rc;

	*bytes = 0;
	if (count < 1 || count > KERN_SET_MAX)
		return dm_err_set(err, DM_EINVAL, "%d matrices in one product set (1..%d)", count,
				  KERN_SET_MAX);
	at[n_at++] = 1;
	at[n_at++] = n_tok_max;
	for (int i = 0; i < count; i++) {
		const struct kern_gemm *g = gemm_for(isa, types[i]);
		if (g && g->min_tok - 1 > 1 && g->min_tok - 1 < n_tok_max)
			at[n_at++] = g->min_tok - 1;
	}
	for (int a = 0; a < n_at; a++) {
		if (at[a] < 1 || at[a] > n_tok_max)
			continue;
		for (int i = 0; i < count; i++)
			if ((rc = mm_plan(&jobs[i], &t[i], isa, types[i], NULL, 1, n, at[a], err)))
				return rc;
		size_t b = mm_carve(jobs, count, threads < 1 ? 1 : threads, NULL);
		if (b > *bytes)
			*bytes = b;
	}
	return 0;
}

int kern_matvec(struct dm_pool *pool, enum kern_isa isa, uint32_t type, const void *w,
		int64_t n_rows, int64_t n, const float *x, float *y, struct dm_err *err)
{
	const struct kern_mat m = { type, w, n_rows, y };
	return kern_matmul_set(pool, isa, &m, 1, n, x, 1, NULL, err);
}

int kern_matmul(struct dm_pool *pool, enum kern_isa isa, uint32_t type, const void *w,
		int64_t n_rows, int64_t n, const float *x, int64_t n_tok, float *y,
		struct dm_err *err)
{
	const struct kern_mat m = { type, w, n_rows, y };
	return kern_matmul_set(pool, isa, &m, 1, n, x, n_tok, NULL, err);
}

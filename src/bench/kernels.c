/*
 * bench/kernels — `dormant bench kernels` (bench_kernels) and the memory
 * read bandwidth probe every speed benchmark runs beside its figures
 * (bench_bandwidth).
 *
 * Per weight type, on N threads:
 *   - matvec GB/s: y = W·x over 4096×11008 matrices, rotating through
 *     enough copies that the weights in flight exceed 4× the L3 cache, so
 *     every call streams its weights from memory (as decoding does);
 *   - matmul GFLOP/s: 128 tokens through one 4096×11008 matrix (prefill);
 * then one decoding token's attention over 2048 cached rows (attention);
 * and the machine's memory read bandwidth measured in the same run
 * (STREAM-like: N threads summing 1 GiB with 256-bit loads,
 * bw_avx2.c), once at the start and again right before each type, whose
 * matvec is compared with the bandwidth measured next to it (the machine
 * may be shared, and its available bandwidth changes).  Every figure is
 * the median of R runs.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/half.h"
#include "base/pool.h"
#include "base/rng.h"
#include "bench/bench.h"
#include "gguf/gguf.h"
#include "kern/kern.h"

#define MV_ROWS 11008
#define MV_COLS 4096
#define MM_TOK 128

struct bw_job {
	const uint64_t *p;
	size_t n;
	bool pf; /* software prefetch as the matvecs do */
	uint64_t sums[64];
};

static void bw_task(void *arg, int64_t b, int64_t e, int thread)
{
	struct bw_job *j = arg;
	uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#if defined(__x86_64__)
	if (__builtin_cpu_supports("avx2")) {
		j->sums[thread & 63] += bench_sum_avx2(j->p, b, e, j->pf);
		return;
	}
#endif
	for (int64_t i = b; i < e; i += 4) {
		s0 += j->p[i];
		s1 += j->p[i + 1];
		s2 += j->p[i + 2];
		s3 += j->p[i + 3];
	}
	j->sums[thread & 63] += s0 ^ s1 ^ s2 ^ s3;
}

/* Read bandwidth in GB/s (median of runs): the pool's threads sum a
 * buffer of `bytes` (0: 1 GiB) in 1 MiB chunks, each run once with and
 * once without software prefetch, the faster counting. */
double bench_bandwidth(struct dm_pool *pool, int runs, size_t bytes)
{
	size_t n;
	if (!bytes)
		bytes = (size_t)1 << 30;
	bytes = (bytes + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1);
	n = bytes / 8;
	/* 2 MiB-aligned, with huge pages where the kernel gives them (as a
	 * model's mapping gets them from the page cache): what memory can
	 * deliver, not what the TLB allows with 4 KiB pages */
	const size_t huge = (size_t)2 << 20;
	uint8_t *raw = mmap(NULL, bytes + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t *p;
	double t[64];
	struct bw_job j;

	if (raw == MAP_FAILED)
		return 0;
	p = (uint64_t *)(void *)(((uintptr_t)raw + huge - 1) & ~(uintptr_t)(huge - 1));
#ifdef MADV_HUGEPAGE
	(void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
	j = (struct bw_job){ p, n, false, { 0 } };
	for (size_t i = 0; i < n; i++)
		p[i] = i * 0x9E3779B97F4A7C15ull;
	for (int r = 0; r < runs; r++) {
		t[r] = 0;
		for (int pf = 0; pf < 2; pf++) {
			j.pf = pf;
			double t0 = bench_now();
			dm_pool_run(pool, (int64_t)n, (int64_t)1 << 17, bw_task, &j);
			double gbs = (double)bytes / (bench_now() - t0) / 1e9;
			if (gbs > t[r])
				t[r] = gbs;
		}
	}
	munmap(raw, bytes + huge);
	return bench_median(t, runs);
}

/* `count` copies of a rows × n matrix of `type`, made from a quantized
 * 256-row seed (quantizing 45M weights with the reference K-quant search
 * would dominate the run).  In huge pages where the kernel gives them, as
 * a model's weights are mapped from the page cache (free() releases it). */
static uint8_t *make_weights(uint32_t type, int64_t rows, int64_t n, int count, size_t *mat_bytes)
{
	const size_t huge = (size_t)2 << 20;
	size_t rb = kern_row_bytes(type, n), seed_rows = 256;
	size_t total = rb * (size_t)rows;
	float *x = malloc((size_t)n * sizeof *x);
	uint8_t *w = aligned_alloc(huge, (total * (size_t)count + huge - 1) & ~(huge - 1));
	struct dm_rng r;

	if (!x || !w) {
		free(x);
		free(w);
		return NULL;
	}
#ifdef MADV_HUGEPAGE
	(void)madvise(w, (total * (size_t)count + huge - 1) & ~(huge - 1), MADV_HUGEPAGE);
#endif
	dm_rng_seed(&r, 1234);
	for (size_t i = 0; i < seed_rows; i++) {
		for (int64_t j = 0; j < n; j++)
			x[j] = (float)(0.02 * dm_rng_normal(&r));
		kern_quantize(type, x, w + i * rb, n, NULL);
	}
	for (size_t off = seed_rows * rb; off < total * (size_t)count; off += seed_rows * rb) {
		size_t c = seed_rows * rb;
		if (off + c > total * (size_t)count)
			c = total * (size_t)count - off;
		memcpy(w + off, w, c);
	}
	free(x);
	*mat_bytes = total;
	return w;
}

/* One decoding token's attention over a deep cache at TinyLlama's shape
 * (32 query heads on 4 K/V heads of 64, ATT_DEPTH rows, ATT_LAYERS
 * layers' caches so that they stream from memory), on one thread: the
 * runs decoding uses (kern_attn_run + kern_attn_merge) and the grouped
 * one-K/V-head-at-a-time kernels that prompt batches use.  Prints the
 * median GMAC/s (2 multiply-adds per head, row and element) of each on out. */
#define ATT_DEPTH 2048
#define ATT_LAYERS 22
static int attention(enum kern_isa isa, int runs, FILE *f, struct dm_err *err)
{
	const struct kern_attn_shape sh = { 32, 4, 64, 4 * 64, 0.125f, 0 };
	const int gqa = 8, n_run = (ATT_DEPTH + 127) / 128;
	const size_t lay = (size_t)ATT_DEPTH * sh.stride, ps = kern_attn_part_size(&sh);
	uint16_t *k = malloc(lay * ATT_LAYERS * sizeof *k), *v = malloc(lay * ATT_LAYERS * sizeof *v);
	float *q = malloc(32 * 64 * sizeof *q), *out = malloc(32 * 64 * sizeof *out);
	float *parts = malloc((size_t)n_run * ps * sizeof *parts);
	float *ws = aligned_alloc(64, (kern_attn_run_ws(&sh) * sizeof(float) + 63) / 64 * 64);
	float *qp = aligned_alloc(64, (kern_attn_q_size(&sh) * sizeof(float) + 63) / 64 * 64);
	float *sc = malloc((size_t)gqa * ATT_DEPTH * sizeof *sc);
	double tr[64], tg[64];
	struct dm_rng r;
	if (!k || !v || !q || !out || !parts || !ws || !qp || !sc)
		return dm_err_set(err, DM_ENOMEM, "out of memory for the attention benchmark");
	dm_rng_seed(&r, 9);
	for (size_t i = 0; i < lay * ATT_LAYERS; i++) {
		k[i] = dm_f32_to_f16((float)dm_rng_normal(&r));
		v[i] = dm_f32_to_f16((float)dm_rng_normal(&r));
	}
	for (int i = 0; i < 32 * 64; i++)
		q[i] = (float)dm_rng_normal(&r);
	for (int rn = -1; rn < runs; rn++) { /* the first round pages in, untimed */
		double t0 = bench_now();
		for (int l = 0; l < ATT_LAYERS; l++) {
			const uint16_t *kl = k + (size_t)l * lay, *vl = v + (size_t)l * lay;
			kern_attn_q_prep(isa, &sh, q, qp);
			for (int p = 0; p < n_run; p++) {
				const int64_t n = ATT_DEPTH - p * 128 < 128 ? ATT_DEPTH - p * 128 : 128;
				kern_attn_run(isa, &sh, qp, kl + (size_t)p * 128 * sh.stride,
					      vl + (size_t)p * 128 * sh.stride, n, parts + (size_t)p * ps, ws);
			}
			kern_attn_merge(out, parts, n_run, &sh);
		}
		double t1 = bench_now();
		for (int l = 0; l < ATT_LAYERS; l++)
			for (int h = 0; h < 4; h++) {
				const uint16_t *kl = k + (size_t)l * lay + (size_t)h * 64;
				const uint16_t *vl = v + (size_t)l * lay + (size_t)h * 64;
				kern_attn_scores_grp(isa, sc, ATT_DEPTH, q + (size_t)h * gqa * 64, 64, gqa, kl,
						     ATT_DEPTH, 64, sh.stride, sh.scale);
				for (int j = 0; j < gqa; j++)
					kern_softmax(isa, sc + (size_t)j * ATT_DEPTH, ATT_DEPTH);
				kern_attn_values_grp(isa, out + (size_t)h * gqa * 64, 64, sc, ATT_DEPTH, gqa, vl,
						     ATT_DEPTH, 64, sh.stride);
			}
		if (rn >= 0) {
			tr[rn] = t1 - t0;
			tg[rn] = bench_now() - t1;
		}
	}
	const double macs = 2.0 * ATT_LAYERS * 32 * ATT_DEPTH * 64;
	fprintf(f, "attention, 1 thread: one token, 32 heads on 4 K/V heads of 64, %d rows x %d layers "
	       "(streamed): runs %.1f GMAC/s, grouped per K/V head %.1f GMAC/s\n",
	       ATT_DEPTH, ATT_LAYERS, macs / bench_median(tr, runs) / 1e9, macs / bench_median(tg, runs) / 1e9);
	free(k), free(v), free(q), free(out), free(parts), free(ws), free(qp), free(sc);
	return 0;
}

int bench_kernels(const struct bench_kernels_opts *o, FILE *out, struct dm_err *err)
{
	const int runs = o->runs;
	const enum kern_isa isa = o->isa;
	struct dm_pool *pool;
	size_t l3 = 32u << 20;

	if (runs < 1 || runs > 64 || o->threads < 1)
		return dm_err_set(err, DM_EINVAL, "runs 1..64 and threads >= 1");
	if (!kern_isa_supported(isa))
		return dm_err_set(err, DM_EUNSUPPORTED, "this CPU cannot run %s", kern_isa_name(isa));
	if (dm_pool_init(&pool, o->threads, err))
		return err ? err->code : DM_EIO;
	{
		long c = sysconf(_SC_LEVEL3_CACHE_SIZE);
		if (c > 0)
			l3 = (size_t)c;
	}
	double bw = bench_bandwidth(pool, runs, 0);
	fprintf(out, "dormant bench kernels: isa %s, %d threads, median of %d runs\n", kern_isa_name(isa),
		o->threads, runs);
	fprintf(out, "memory read bandwidth: %.1f GB/s (%d threads summing 1 GiB)\n", bw, o->threads);
	fprintf(out, "matvec %dx%d (weights streamed from memory), matmul %d tokens x %dx%d\n", MV_ROWS,
		MV_COLS, MM_TOK, MV_ROWS, MV_COLS);
	fprintf(out, "%-6s %10s %8s %8s %7s %14s\n", "type", "matvec ms", "GB/s", "bw GB/s", "of bw",
		"matmul GFLOP/s");

	char *list = strdup(o->types);
	if (!list) {
		dm_pool_free(pool);
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	}
	for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
		int type = gguf_type_from_name(tok);
		struct kern_traits tr;
		if (type < 0 || kern_traits_get((uint32_t)type, isa, &tr)) {
			fprintf(out, "%-6s unsupported\n", tok);
			continue;
		}
		size_t mat;
		uint8_t *w0 = make_weights((uint32_t)type, MV_ROWS, MV_COLS, 1, &mat);
		if (!w0) {
			dm_err_set(err, DM_ENOMEM, "out of memory for %s matrices", tok);
			free(list);
			dm_pool_free(pool);
			return DM_ENOMEM;
		}
		int copies = (int)((4 * l3 + mat - 1) / mat);
		if (copies < 2)
			copies = 2;
		free(w0);
		uint8_t *w = make_weights((uint32_t)type, MV_ROWS, MV_COLS, copies, &mat);
		float *x = malloc((size_t)MM_TOK * MV_COLS * sizeof *x);
		float *y = malloc((size_t)MM_TOK * MV_ROWS * sizeof *y);
		double tv[64], tm[64];
		struct dm_rng r;
		if (!w || !x || !y) {
			dm_err_set(err, DM_ENOMEM, "out of memory for %s matrices", tok);
			free(w);
			free(x);
			free(y);
			free(list);
			dm_pool_free(pool);
			return DM_ENOMEM;
		}
		dm_rng_seed(&r, 5);
		for (size_t i = 0; i < (size_t)MM_TOK * MV_COLS; i++)
			x[i] = (float)dm_rng_normal(&r);
		/* matvec: each run = one pass over all copies, timed per call */
		for (int k = 0; k < copies; k++) /* warm-up: page in */
			kern_matvec(pool, isa, (uint32_t)type, w + (size_t)k * mat, MV_ROWS, MV_COLS, x, y,
				    NULL);
		for (int rn = 0; rn < runs; rn++) {
			double t0 = bench_now();
			for (int k = 0; k < copies; k++)
				kern_matvec(pool, isa, (uint32_t)type, w + (size_t)k * mat, MV_ROWS,
					    MV_COLS, x, y, NULL);
			tv[rn] = (bench_now() - t0) / copies;
		}
		kern_matmul(pool, isa, (uint32_t)type, w, MV_ROWS, MV_COLS, x, MM_TOK, y, NULL);
		for (int rn = 0; rn < runs; rn++) {
			double t0 = bench_now();
			kern_matmul(pool, isa, (uint32_t)type, w, MV_ROWS, MV_COLS, x, MM_TOK, y, NULL);
			tm[rn] = bench_now() - t0;
		}
		double bw_here = bench_bandwidth(pool, runs, 0);
		double mv = bench_median(tv, runs), mm = bench_median(tm, runs);
		double gbs = (double)mat / mv / 1e9;
		double gflops = 2.0 * MV_ROWS * MV_COLS * MM_TOK / mm / 1e9;
		fprintf(out, "%-6s %10.3f %8.1f %8.1f %6.0f%% %14.1f\n", tok, mv * 1e3, gbs, bw_here,
			100 * gbs / bw_here, gflops);
		fflush(out);
		free(w);
		free(x);
		free(y);
	}
	free(list);
	dm_pool_free(pool);
	return attention(isa, runs, out, err);
}


/*
 * bench/quant — `dormant bench quantize`: how fast quantize-on-load turns
 * a float model (F32, F16, BF16 matrices) into each type.
 *
 * Per type: one load that is not counted (the file comes into the page
 * cache), then R loads through the engine loader with quantize_on_load set
 * (mmap mode, a small context), each timed by the engine around its
 * quantize step: mapping the output buffer, reading the float matrices
 * from the file mapping (page faults included), quantizing them on the
 * engine's threads and giving the float pages back.  Figures: the median
 * of the R quantize times, the median of the whole load times, and the
 * process's CPU time (user + system, all threads) per whole load: on a
 * machine shared with other jobs the wall times follow the neighbours, the
 * CPU time much less.
 */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "bench/bench.h"
#include "gguf/gguf.h"
#include "mgr/engine.h"

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec * 1e-6;
}

static int one_load(const char *path, int32_t type, int threads, double *quant_s, double *load_s,
		    double *cpu_s, uint64_t *elems, struct dm_err *err)
{
	struct mgr_model_cfg cfg;
	struct engine *e;
	double t0, c0;
	int rc;

	mgr_model_cfg_default(&cfg);
	snprintf(cfg.path, sizeof cfg.path, "%s", path);
	cfg.quantize_on_load = type;
	cfg.n_threads = threads;
	cfg.n_ctx = 64;
	cfg.n_batch = 8;
	t0 = bench_now();
	c0 = cpu_seconds();
	if ((rc = engine_load(&e, &cfg, NULL, NULL, err)))
		return rc;
	*load_s = bench_now() - t0;
	*cpu_s = cpu_seconds() - c0;
	*quant_s = e->quant_s;
	*elems = e->quant_elems;
	engine_unload(e, false);
	return 0;
}

int bench_quant(const char *path, const char *type_name, int threads, int runs, struct bench_quant_row *row,
		struct dm_err *err)
{
	double qs[BENCH_QUANT_RUNS_MAX], ls[BENCH_QUANT_RUNS_MAX], cs[BENCH_QUANT_RUNS_MAX];
	const struct gguf_type_info *ti;
	int32_t type = -1;
	int rc;

	memset(row, 0, sizeof *row);
	if (runs < 1 || runs > BENCH_QUANT_RUNS_MAX || threads < 1)
		return dm_err_set(err, DM_EINVAL, "runs 1..%d and threads >= 1", BENCH_QUANT_RUNS_MAX);
	for (uint32_t k = 0; k < GGUF_TYPE_COUNT; k++)
		if ((ti = gguf_type_get(k)) && !strcmp(ti->name, type_name)) {
			type = (int32_t)k;
			break;
		}
	if (type != GGUF_TYPE_Q8_0 && type != GGUF_TYPE_Q4_0 && type != GGUF_TYPE_Q4_K)
		return dm_err_set(err, DM_EINVAL, "type '%s': quantize-on-load makes Q8_0, Q4_0 or Q4_K", type_name);
	for (int r = -1; r < runs; r++) {
		double q, l, c;
		if ((rc = one_load(path, type, threads, &q, &l, &c, &row->weights, err)))
			return rc;
		if (r >= 0) {
			qs[r] = q;
			ls[r] = l;
			cs[r] = c;
		}
	}
	if (!row->weights)
		return dm_err_set(err, DM_EINVAL, "%s: no float matrix to quantize", path);
	snprintf(row->type, sizeof row->type, "%s", type_name);
	row->quantize_s = bench_median(qs, runs);
	row->load_s = bench_median(ls, runs);
	row->load_cpu_s = bench_median(cs, runs);
	return 0;
}

/*
 * cli/bench_quant — `dormant bench quantize MODEL [--types T,...]
 * [--threads N] [--runs R] [--json]`: how fast quantize-on-load turns a
 * float model (F32, F16, BF16 matrices) into each type.
 *
 * Per type: one load that is not counted (the file comes into the page
 * cache), then R loads through the engine loader with quantize_on_load set
 * (mmap mode, a small context), each timed by the engine around its
 * quantize step: mapping the output buffer, reading the float matrices
 * from the file mapping (page faults included), quantizing them on the
 * engine's threads and giving the float pages back.  Figures: the median
 * of the R quantize times, weights quantized per second, the median of the
 * whole load times, and the process's CPU time (user + system, all
 * threads) per whole load: on a machine shared with other jobs the wall
 * times follow the neighbours, the CPU time much less.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli/cli.h"
#include "gguf/gguf.h"
#include "kern/kern.h"
#include "mgr/engine.h"

#define BQ_RUNS_MAX 64

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
	t0 = cli_now();
	c0 = cpu_seconds();
	if ((rc = engine_load(&e, &cfg, NULL, NULL, err)))
		return rc;
	*load_s = cli_now() - t0;
	*cpu_s = cpu_seconds() - c0;
	*quant_s = e->quant_s;
	*elems = e->quant_elems;
	engine_unload(e, false);
	return 0;
}

int cli_bench_quant(int argc, char **argv)
{
	const char *path = NULL, *types = "Q8_0,Q4_0,Q4_K";
	long threads = 2, runs = 3;
	bool json = false, first = true;
	char list[128];
	struct dm_err err;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--threads") || !strcmp(a, "--runs")) {
			if (cli_parse_long(a, v, 1, a[2] == 't' ? 1024 : BQ_RUNS_MAX, a[2] == 't' ? &threads : &runs))
				return 2;
			i++;
		} else if (!strcmp(a, "--types")) {
			if (!v)
				return cli_fail("bench quantize: --types needs a list (Q8_0,Q4_0,Q4_K)"), 2;
			types = v;
			i++;
		} else if (!strcmp(a, "--json")) {
			json = true;
		} else if (a[0] == '-' && a[1]) {
			return cli_fail("bench quantize: unknown option '%s'", a), 2;
		} else if (!path) {
			path = a;
		} else {
			return cli_fail("bench quantize: more than one MODEL"), 2;
		}
	}
	if (!path)
		return cli_fail("usage: dormant bench quantize MODEL [--types Q8_0,Q4_0,Q4_K] [--threads N] "
				"[--runs R] [--json]"),
		       2;
	if (strlen(types) >= sizeof list)
		return cli_fail("bench quantize: --types list too long"), 2;
	memcpy(list, types, strlen(types) + 1);
	if (json)
		printf("{\"model\":");
	else
		printf("dormant bench quantize: %s, %ld threads, ISA %s, median of %ld loads after one uncounted\n"
		       "%-6s %16s %12s %14s %14s %12s\n",
		       path, threads, kern_isa_name(kern_isa_best()), runs, "type", "weights", "quantize s",
		       "Mweights/s", "whole load s", "load CPU s");
	if (json) {
		cli_json_str(stdout, path, strlen(path));
		printf(",\"threads\":%ld,\"isa\":\"%s\",\"runs\":%ld,\"types\":[", threads,
		       kern_isa_name(kern_isa_best()), runs);
	}
	fflush(stdout);
	for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		const struct gguf_type_info *ti = NULL;
		double qs[BQ_RUNS_MAX], ls[BQ_RUNS_MAX], cs[BQ_RUNS_MAX], q_med, l_med, c_med;
		uint64_t elems = 0;
		int32_t type = -1;
		for (uint32_t k = 0; k < GGUF_TYPE_COUNT; k++)
			if ((ti = gguf_type_get(k)) && !strcmp(ti->name, t)) {
				type = (int32_t)k;
				break;
			}
		if (type != GGUF_TYPE_Q8_0 && type != GGUF_TYPE_Q4_0 && type != GGUF_TYPE_Q4_K) {
			if (json)
				printf("]}\n");
			return cli_fail("bench quantize: type '%s': quantize-on-load makes Q8_0, Q4_0 or Q4_K", t);
		}
		for (long r = -1; r < runs; r++) {
			double q, l, c;
			if (one_load(path, type, (int)threads, &q, &l, &c, &elems, &err)) {
				if (json)
					printf("]}\n");
				return cli_fail("%s", err.msg);
			}
			if (r >= 0) {
				qs[r] = q;
				ls[r] = l;
				cs[r] = c;
			}
		}
		if (!elems) {
			if (json)
				printf("]}\n");
			return cli_fail("bench quantize: %s: no float matrix to quantize", path);
		}
		q_med = cli_median(qs, (int)runs);
		l_med = cli_median(ls, (int)runs);
		c_med = cli_median(cs, (int)runs);
		if (json)
			printf("%s{\"type\":\"%s\",\"weights\":%llu,\"quantize_s\":%.6f,\"weights_per_s\":%.0f,"
			       "\"load_s\":%.6f,\"load_cpu_s\":%.6f}",
			       first ? "" : ",", t, (unsigned long long)elems, q_med, (double)elems / q_med, l_med, c_med);
		else
			printf("%-6s %16llu %12.3f %14.1f %14.3f %12.3f\n", t, (unsigned long long)elems, q_med,
			       (double)elems / q_med / 1e6, l_med, c_med);
		fflush(stdout);
		first = false;
	}
	if (json)
		printf("]}\n");
	return 0;
}

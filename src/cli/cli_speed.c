/*
 * cli/speed — `dormant bench speed MODEL [-p N] [-n N] [-r N] [-t N] [--json]`:
 * steady-state speed the way llama-bench measures it.  The model is loaded
 * once; one warm-up run is not counted; then for each repetition, prompt
 * processing of N tokens (one batch, from an empty cache) and generation of
 * N tokens one at a time (from an empty cache).  Medians, min and max of
 * tok/s.  Memory read bandwidth is measured in the same run so decode speed
 * can be read as a fraction of the bandwidth limit (weight bytes per token
 * / bandwidth).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_model.h"

/* Deterministic token ids spread over the vocabulary (not special ids). */
static void fill_ids(int32_t *ids, int n, int32_t n_vocab, uint32_t salt)
{
	for (int i = 0; i < n; i++)
		ids[i] = (int32_t)(((uint32_t)i * 2654435761u + salt) % (uint32_t)(n_vocab - 3)) + 3;
}

static int run_pp(struct cli_model *cm, const int32_t *ids, int n, float *lg, double *tps,
		  struct dm_err *err)
{
	double t0;
	int rc;
	model_ctx_reset(cm->ctx);
	t0 = cli_now();
	if ((rc = model_decode(cm->ctx, ids, n, lg, false, err)))
		return rc;
	*tps = n / (cli_now() - t0);
	return 0;
}

static int run_tg(struct cli_model *cm, const int32_t *ids, int n, float *lg, double *tps,
		  struct dm_err *err)
{
	double t0;
	int rc;
	model_ctx_reset(cm->ctx);
	t0 = cli_now();
	for (int i = 0; i < n; i++)
		if ((rc = model_decode(cm->ctx, ids + i, 1, lg, false, err)))
			return rc;
	*tps = n / (cli_now() - t0);
	return 0;
}

int cli_bench_speed(int argc, char **argv)
{
	struct cli_model_opts mo = { 0 };
	struct cli_model cm;
	struct dm_err err;
	const char *path = NULL;
	long n_prompt = 128, n_gen = 32, reps = 5, v;
	bool json = false;
	double *pp = NULL, *tg = NULL, bw, pp_med, tg_med, pp_min, pp_max, tg_min, tg_max;
	int32_t *ids = NULL;
	float *lg = NULL;
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "-p") || !strcmp(a, "-n") || !strcmp(a, "-r") || !strcmp(a, "-t")) {
			if (cli_parse_long(a, val, a[1] == 'p' || a[1] == 'n' ? 0 : 1, 1 << 16, &v))
				return 2;
			if (a[1] == 'p')
				n_prompt = v;
			else if (a[1] == 'n')
				n_gen = v;
			else if (a[1] == 'r')
				reps = v;
			else
				mo.n_threads = (int)v;
			i++;
		} else if (!strcmp(a, "--json")) {
			json = true;
		} else if (a[0] == '-' && a[1]) {
			return cli_fail("bench speed: unknown option '%s'", a), 2;
		} else if (!path) {
			path = a;
		} else {
			return cli_fail("bench speed: more than one MODEL"), 2;
		}
	}
	if (!path)
		return cli_fail("usage: dormant bench speed MODEL [-p N] [-n N] [-r N] [-t N] [--json]"), 2;
	if (reps > 1000)
		return cli_fail("bench speed: -r %ld is too many", reps), 2;
	mo.n_ctx = (int32_t)(n_prompt > n_gen ? n_prompt : n_gen) + 1;
	mo.n_batch = (int32_t)(n_prompt > 0 ? n_prompt : 1);
	if (cli_model_open(&cm, path, &mo, &err))
		return cli_fail("%s", err.msg);
	pp = calloc((size_t)reps, sizeof *pp);
	tg = calloc((size_t)reps, sizeof *tg);
	ids = malloc((size_t)(n_prompt + n_gen + 1) * sizeof *ids);
	lg = malloc((size_t)cm.m->hp.n_vocab * sizeof *lg);
	if (!pp || !tg || !ids || !lg) {
		rc = cli_fail("bench speed: out of memory");
		goto out;
	}
	fill_ids(ids, (int)(n_prompt + n_gen), cm.m->hp.n_vocab, 12345);
	bw = cli_bench_bandwidth(cm.pool, 5);
	/* warm-up, not counted: pages of the weights come in, caches settle */
	if ((n_prompt && run_pp(&cm, ids, (int)n_prompt, lg, &pp[0], &err)) ||
	    (n_gen && run_tg(&cm, ids, (int)(n_gen < 4 ? n_gen : 4), lg, &tg[0], &err))) {
		rc = cli_fail("%s: %s", path, err.msg);
		goto out;
	}
	for (long r = 0; r < reps; r++) {
		if (!isatty(2) || json)
			;
		else
			fprintf(stderr, "\rbench speed: repetition %ld/%ld", r + 1, reps);
		if ((n_prompt && run_pp(&cm, ids, (int)n_prompt, lg, &pp[r], &err)) ||
		    (n_gen && run_tg(&cm, ids + n_prompt, (int)n_gen, lg, &tg[r], &err))) {
			rc = cli_fail("%s: %s", path, err.msg);
			goto out;
		}
	}
	if (isatty(2) && !json)
		fputc('\n', stderr);
	pp_med = cli_median(pp, (int)reps);
	pp_min = pp[0];
	pp_max = pp[reps - 1];
	tg_med = cli_median(tg, (int)reps);
	tg_min = tg[0];
	tg_max = tg[reps - 1];
	{
		/* bytes read per generated token: every weight once (the output
		 * matrix included; tied embeddings counted once) */
		double wb = (double)cm.m->weight_bytes;
		double limit = bw * 1e9 / wb; /* tok/s if decode were pure weight streaming */
		if (json) {
			printf("{\"model\":");
			cli_json_str(stdout, path, strlen(path));
			printf(",\"n_prompt\":%ld,\"n_gen\":%ld,\"threads\":%d,\"reps\":%ld,\"isa\":\"%s\","
			       "\"pp_tok_s\":%.3f,\"pp_tok_s_min\":%.3f,\"pp_tok_s_max\":%.3f,"
			       "\"tg_tok_s\":%.3f,\"tg_tok_s_min\":%.3f,\"tg_tok_s_max\":%.3f,"
			       "\"weight_bytes\":%.0f,\"bandwidth_gb_s\":%.3f,\"tg_limit_tok_s\":%.3f,"
			       "\"tg_fraction_of_limit\":%.4f}\n",
			       n_prompt, n_gen, cm.n_threads, reps, kern_isa_name(cm.ctx->isa), pp_med,
			       pp_min, pp_max, tg_med, tg_min, tg_max, wb, bw, limit,
			       limit > 0 ? tg_med / limit : 0.0);
		} else {
			printf("model:      %s (%.1f MiB of weights)\n", path, wb / 1048576.0);
			printf("threads:    %d, ISA %s, %ld repetitions (median [min, max])\n", cm.n_threads,
			       kern_isa_name(cm.ctx->isa), reps);
			if (n_prompt)
				printf("pp%-4ld     %8.2f tok/s [%.2f, %.2f]\n", n_prompt, pp_med, pp_min, pp_max);
			if (n_gen)
				printf("tg%-4ld     %8.2f tok/s [%.2f, %.2f]  = %.0f%% of the bandwidth limit "
				       "(%.2f tok/s at %.1f GB/s)\n",
				       n_gen, tg_med, tg_min, tg_max, 100.0 * tg_med / limit, limit, bw);
		}
	}
out:
	free(pp);
	free(tg);
	free(ids);
	free(lg);
	cli_model_close(&cm);
	return rc;
}

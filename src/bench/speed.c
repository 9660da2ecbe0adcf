/*
 * bench/speed — `dormant bench speed`: steady-state speed the way
 * llama-bench measures it, on an engine already loaded.  One warm-up run
 * is not counted; then for each repetition, prompt processing of N tokens
 * (one batch, from an empty cache) and generation of N tokens one at a
 * time (from an empty cache, or after `depth` tokens of context brought in
 * untimed).  Memory read bandwidth is measured in the same run so decode
 * speed can be read as a fraction of the bandwidth limit (weight bytes per
 * token / bandwidth).
 *
 * With peers, other engines are measured beside dormant: each is a
 * llama-bench-compatible program (peer.c) run as a child process, and the
 * repetitions are rounds, each a bandwidth probe, one dormant repetition,
 * then one run of each peer in the order given, so that every engine sees
 * the machine in the same state on average.  Each engine gets medians over
 * the rounds and decode's weight bytes per second as a fraction of the
 * bandwidth probed in the same round (median over the rounds; every engine
 * is charged the bytes of dormant's weights of the same file).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "model/model.h"

/* Deterministic token ids spread over the vocabulary (not special ids). */
static void fill_ids(int32_t *ids, int n, int32_t n_vocab, uint32_t salt)
{
	for (int i = 0; i < n; i++)
		ids[i] = (int32_t)(((uint32_t)i * 2654435761u + salt) % (uint32_t)(n_vocab - 3)) + 3;
}

static int run_pp(struct model_ctx *ctx, const int32_t *ids, int n, float *lg, double *tps, struct dm_err *err)
{
	double t0;
	int rc;
	model_ctx_reset(ctx);
	t0 = bench_now();
	if ((rc = model_decode(ctx, ids, n, lg, false, err)))
		return rc;
	*tps = n / (bench_now() - t0);
	return 0;
}

/* Generation of n tokens one at a time after `depth` positions of context:
 * ids[0..depth) are brought into the cache first (not timed; what an
 * earlier repetition left there is reused), then ids[depth..depth + n) are
 * decoded and timed. */
static int run_tg(struct model_ctx *ctx, const int32_t *ids, int depth, int batch, int n, float *lg, double *tps,
		  struct dm_err *err)
{
	double t0;
	int rc, at = 0;
	if (depth == 0)
		model_ctx_reset(ctx);
	else
		at = model_ctx_reuse(ctx, ids, depth + 1);
	while (at < depth) {
		int step = depth - at < batch ? depth - at : batch;
		if ((rc = model_decode(ctx, ids + at, step, lg, false, err)))
			return rc;
		at += step;
	}
	t0 = bench_now();
	for (int i = 0; i < n; i++)
		if ((rc = model_decode(ctx, ids + depth + i, 1, lg, false, err)))
			return rc;
	*tps = n / (bench_now() - t0);
	return 0;
}

/* Median of v[0..n) without reordering v; min and max into lo, hi. */
static double median_of(const double *v, long n, double *lo, double *hi)
{
	double *t = malloc((size_t)n * sizeof *t), m;
	if (!t)
		return 0;
	memcpy(t, v, (size_t)n * sizeof *t);
	m = bench_median(t, (int)n);
	if (lo)
		*lo = t[0];
	if (hi)
		*hi = t[n - 1];
	free(t);
	return m;
}

/* One repetition of dormant: the prompt, then the generation. */
static int one_rep(struct model_ctx *ctx, const struct bench_speed_opts *o, const int32_t *ids, float *lg,
		   double *pp, double *tg, struct dm_err *err)
{
	int rc;
	if (o->n_prompt && (rc = run_pp(ctx, ids, (int)o->n_prompt, lg, pp, err)))
		return dm_err_prefix(err, "%s", o->path), rc;
	if (o->n_gen && (rc = run_tg(ctx, ids + o->n_prompt, (int)o->depth, o->batch, (int)o->n_gen, lg, tg, err)))
		return dm_err_prefix(err, "%s", o->path), rc;
	return 0;
}

int bench_speed(struct engine *e, const struct bench_speed_opts *o, struct bench_speed_result *res,
		struct dm_err *err)
{
	const long R = o->reps;
	const int n_eng = 1 + o->n_peers;
	const bool vs = o->n_peers > 0;
	struct model_ctx *ctx = e->ctx;
	int32_t *ids = NULL;
	float *lg = NULL;
	double *frac = NULL;
	int rc = 0;

	memset(res, 0, sizeof *res);
	if (R < 1 || R > 1000 || o->n_peers < 0 || o->n_peers > BENCH_SPEED_PEERS_MAX)
		return dm_err_set(err, DM_EINVAL, "1..1000 repetitions and at most %d peers", BENCH_SPEED_PEERS_MAX);
	res->reps = R;
	res->n_eng = n_eng;
	res->n_bw = vs ? R : 1;
	res->weight_bytes = (double)e->m->weight_bytes;
	res->threads = dm_pool_size(e->pool);
	res->isa = ctx->isa;
	res->bw = calloc((size_t)res->n_bw, sizeof *res->bw);
	res->pp = calloc((size_t)(R * n_eng), sizeof *res->pp);
	res->tg = calloc((size_t)(R * n_eng), sizeof *res->tg);
	frac = calloc((size_t)R, sizeof *frac);
	ids = malloc((size_t)(o->n_prompt + o->depth + o->n_gen + 1) * sizeof *ids);
	lg = malloc((size_t)e->m->hp.n_vocab * sizeof *lg);
	if (!res->bw || !res->pp || !res->tg || !frac || !ids || !lg) {
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
		goto out;
	}
	fill_ids(ids, (int)(o->n_prompt + o->depth + o->n_gen), e->m->hp.n_vocab, 12345);
	/* warm-up, not counted: pages of the weights come in, caches settle */
	{
		struct bench_speed_opts w = *o;
		double pp, tg;
		w.n_gen = o->n_gen < 4 ? o->n_gen : 4;
		if ((rc = one_rep(ctx, &w, ids, lg, &pp, &tg, err)))
			goto out;
	}
	if (!vs) {
		res->bw[0] = bench_bandwidth(e->pool, 5, o->bw_bytes);
		if (!(res->bw[0] > 0)) {
			rc = dm_err_set(err, DM_ENOMEM, "cannot allocate %zu MiB for the bandwidth probe",
					o->bw_bytes >> 20);
			goto out;
		}
	}
	for (long r = 0; r < R; r++) {
		if (vs) {
			res->bw[r] = bench_bandwidth(e->pool, 3, o->bw_bytes);
			if (!(res->bw[r] > 0)) {
				rc = dm_err_set(err, DM_ENOMEM, "cannot allocate %zu MiB for the bandwidth probe",
						o->bw_bytes >> 20);
				goto out;
			}
			fprintf(stderr, "bench speed: round %ld/%ld: bandwidth %.1f GB/s\n", r + 1, R, res->bw[r]);
		} else if (o->progress) {
			fprintf(stderr, "\rbench speed: repetition %ld/%ld", r + 1, R);
		}
		if ((rc = one_rep(ctx, o, ids, lg, &res->pp[r], &res->tg[r], err)))
			goto out;
		if (vs)
			fprintf(stderr, "bench speed: round %ld/%ld: dormant pp %.2f tg %.2f tok/s\n", r + 1, R,
				res->pp[r], res->tg[r]);
		for (int k = 0; k < o->n_peers; k++) {
			double *p = &res->pp[(k + 1) * R + r], *t = &res->tg[(k + 1) * R + r];
			if ((rc = bench_peer_run(&o->peers[k], o->path, o->n_prompt, o->n_gen, o->depth, res->threads,
						 o->vs_timeout, p, t, err)))
				goto out;
			fprintf(stderr, "bench speed: round %ld/%ld: %s pp %.2f tg %.2f tok/s\n", r + 1, R,
				o->peers[k].name, *p, *t);
		}
	}
	if (!vs && o->progress)
		fputc('\n', stderr);
	res->bw_med = median_of(res->bw, res->n_bw, &res->bw_lo, &res->bw_hi);
	for (int k = 0; k < n_eng; k++) {
		struct bench_speed_engine *g = &res->eng[k];
		g->pp = median_of(res->pp + k * R, R, &g->pp_lo, &g->pp_hi);
		g->tg = median_of(res->tg + k * R, R, &g->tg_lo, &g->tg_hi);
		/* decode's weight bytes per second over the bandwidth of its round */
		for (long r = 0; r < R; r++)
			frac[r] = res->tg[k * R + r] * res->weight_bytes / (res->bw[vs ? r : 0] * 1e9);
		g->tg_of_bw = median_of(frac, R, NULL, NULL);
		g->pp_ratio = g->pp > 0 ? res->eng[0].pp / g->pp : 0.0;
		g->tg_ratio = g->tg > 0 ? res->eng[0].tg / g->tg : 0.0;
	}
out:
	free(frac);
	free(ids);
	free(lg);
	if (rc)
		bench_speed_free(res);
	return rc;
}

void bench_speed_free(struct bench_speed_result *res)
{
	free(res->bw);
	free(res->pp);
	free(res->tg);
	res->bw = res->pp = res->tg = NULL;
}

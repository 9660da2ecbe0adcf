/*
 * bench/sweep — settings scenarios of the lifecycle benchmark suite:
 * warm-up on vs off, and sweeps over threads, n_batch and n_ctx (see
 * bench.h).  Each setting is a model of its own in one manager, loaded,
 * measured and unloaded before the next, so only one is in memory at a time.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/pool.h"
#include "bench/bench.h"

#define MiB(x) ((double)(x) / 1048576.0)

static double median_of(const double *v, int n)
{
	struct bench_stats s;
	bench_stats(v, n, &s);
	return s.median;
}

static uint64_t rss_now(void)
{
	struct dm_mem_usage u;
	malloc_trim(0);
	dm_mem_usage(&u);
	return u.rss;
}

/* ---- 6. warmup ---- */

/* Two on-demand models on the same file (keep-alive 0: every request is a
 * first request), one with warm-up, one without; rounds alternate which
 * goes first (A/B, B/A, ...).  The page cache is filled first, so the
 * difference is warm-up's own (faulting in the weights, KV cache and
 * scratch during the load instead of during the first tokens). */
int bench_warmup(struct bench *L, json_t *out)
{
	const int rounds = bench_runs(L, 5, 2);
	const char *names[2] = { "warmup-on", "warmup-off" };
	json_t *samples = json_array(), *summary = json_object();
	struct mgr *m = NULL;
	double *v[2][4];
	int rc = 0;

	memset(v, 0, sizeof v);
	bench_set(out, "runs", json_integer(rounds));
	bench_set(out, "samples", samples);
	bench_set(out, "summary", summary);
	for (int w = 0; w < 2; w++)
		for (int k = 0; k < 4; k++)
			if (!(v[w][k] = calloc((size_t)rounds, sizeof *v[w][k])))
				rc = dm_err_set(&L->err, DM_ENOMEM, "out of memory");
	if (rc || (rc = bench_mgr_init(L, &m, NULL, NULL)))
		goto out;
	for (int w = 0; w < 2; w++) {
		struct mgr_model_cfg mc;
		bench_model_cfg(L, &mc, names[w]);
		mc.keep_alive_ms = 0;
		mc.warmup = w == 0 ? 1 : 0;
		if ((rc = mgr_add(m, &mc, &L->err)))
			goto out;
	}
	bench_cache_fill(L);
	for (int r = 0; r < rounds; r++)
		for (int k = 0; k < 2; k++) {
			int w = (r + k) % 2; /* round 0: on, off; round 1: off, on; ... */
			struct bench_req q;
			json_t *s;
			bench_progress(L, r * 2 + k, rounds * 2);
			if ((rc = bench_request(L, m, names[w], NULL, bench_prompt(L, L->o.n_prompt),
					       L->o.n_prompt, L->o.n_gen, 0, &q)))
				goto out;
			v[w][0][r] = q.latency_s;
			v[w][1][r] = q.ttft_s;
			v[w][2][r] = q.load_s;
			v[w][3][r] = q.latency_s - q.wait_s; /* the generation after the load */
			s = bench_req_json(&q);
			bench_set(s, "round", json_integer(r));
			bench_set(s, "order", json_integer(k));
			bench_set(s, "warmup", json_boolean(w == 0));
			bench_set(s, "gen_latency_s", bench_real(q.latency_s - q.wait_s));
			json_array_append_new(samples, s);
		}
	bench_progress_end(L);
	fprintf(L->o.out, "%-10s %12s %12s %12s %14s\n", "warm-up", "latency s", "ttft s", "load s", "after load s");
	for (int w = 0; w < 2; w++) {
		static const char *const keys[4] = { "latency_s", "ttft_s", "load_s", "gen_latency_s" };
		json_t *o = json_object();
		struct bench_stats st[4];
		for (int k = 0; k < 4; k++) {
			bench_stats(v[w][k], rounds, &st[k]);
			bench_set(o, keys[k], bench_stats_json(&st[k]));
		}
		bench_set(summary, w == 0 ? "on" : "off", o);
		fprintf(L->o.out, "%-10s %12.4f %12.4f %12.4f %14.4f\n", w == 0 ? "on" : "off", st[0].median,
		       st[1].median, st[2].median, st[3].median);
	}
	fprintf(L->o.out, "(median of %d rounds, alternating; each a first request on an on-demand model, "
	       "page cache warm; %d + %d tokens)\n", rounds, L->o.n_prompt, L->o.n_gen);
out:
	mgr_free(m);
	for (int w = 0; w < 2; w++)
		for (int k = 0; k < 4; k++)
			free(v[w][k]);
	return rc;
}

/* ---- 7. threads, batch, ctx ---- */

/* Loads `mc` (warm-up on), runs `runs` requests of n_prompt + n_gen tokens,
 * unloads; medians of prefill and decode tok/s.  Memory: RSS before and
 * after the load (after malloc_trim), and the manager's accounting. */
struct setting_result {
	double prefill_tok_s, tok_s, latency_s, load_s;
	uint64_t rss_delta, est_bytes, bytes, kv_bytes, scratch_bytes;
};

static int measure_setting(struct bench *L, struct mgr *m, const struct mgr_model_cfg *mc, int runs,
			   int n_prompt, int n_gen, json_t *samples, const char *key, long value,
			   struct setting_result *res)
{
	struct mgr_model_status st[64];
	struct mgr_lease *l;
	double *pp = calloc((size_t)runs, sizeof *pp), *tg = calloc((size_t)runs, sizeof *tg);
	double *lat = calloc((size_t)runs, sizeof *lat);
	uint64_t before;
	size_t n;
	int rc;

	memset(res, 0, sizeof *res);
	if (!pp || !tg || !lat) {
		rc = dm_err_set(&L->err, DM_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = mgr_add(m, mc, &L->err)))
		goto out;
	before = rss_now();
	{
		double t0 = bench_now();
		if ((rc = mgr_load(m, mc->name, &L->err)))
			goto out;
		res->load_s = bench_now() - t0;
	}
	{
		uint64_t after = rss_now();
		res->rss_delta = after > before ? after - before : 0;
	}
	n = mgr_status(m, st, 64);
	for (size_t i = 0; i < n && i < 64; i++)
		if (!strcmp(st[i].name, mc->name)) {
			res->est_bytes = st[i].est_bytes;
			res->bytes = st[i].bytes;
		}
	if ((rc = mgr_acquire(m, mc->name, NULL, &l, &L->err)))
		goto out;
	{
		struct engine *en = mgr_lease_handle(l);
		res->kv_bytes = model_ctx_kv_bytes_for(en->ctx, en->n_ctx_default); /* when full */
		res->scratch_bytes = en->ctx->scratch_bytes;
	}
	mgr_release(l);
	for (int r = 0; r < runs; r++) {
		struct bench_req q;
		json_t *s;
		if ((rc = bench_request(L, m, mc->name, NULL, bench_prompt(L, n_prompt), n_prompt, n_gen, 0, &q)))
			goto out;
		pp[r] = q.prefill_tok_s;
		tg[r] = q.tok_s;
		lat[r] = q.latency_s;
		s = bench_req_json(&q);
		bench_set(s, key, json_integer(value));
		bench_set(s, "run", json_integer(r));
		json_array_append_new(samples, s);
	}
	res->prefill_tok_s = median_of(pp, runs);
	res->tok_s = median_of(tg, runs);
	res->latency_s = median_of(lat, runs);
	rc = mgr_unload(m, mc->name, &L->err);
out:
	free(pp);
	free(tg);
	free(lat);
	return rc;
}

static json_t *setting_json(const char *key, long value, const struct setting_result *r)
{
	json_t *o = json_object();
	bench_set(o, key, json_integer(value));
	bench_set(o, "prefill_tok_s", bench_real(r->prefill_tok_s));
	bench_set(o, "tok_s", bench_real(r->tok_s));
	bench_set(o, "latency_s", bench_real(r->latency_s));
	bench_set(o, "load_s", bench_real(r->load_s));
	bench_set(o, "rss_delta_bytes", json_integer((json_int_t)r->rss_delta));
	bench_set(o, "est_bytes", json_integer((json_int_t)r->est_bytes));
	bench_set(o, "bytes", json_integer((json_int_t)r->bytes));
	bench_set(o, "kv_bytes", json_integer((json_int_t)r->kv_bytes));
	bench_set(o, "scratch_bytes", json_integer((json_int_t)r->scratch_bytes));
	return o;
}

/* Threads 1, 2, 4, ... up to --threads (default: the physical cores), the
 * maximum itself included (quick: 1 and the maximum).  Prompt of
 * min(128, context) tokens for prefill, -n tokens for decode. */
int bench_threads(struct bench *L, json_t *out)
{
	const int runs = bench_runs(L, 3, 1), max = L->n_threads;
	int vals[24], nv = 0, rc = 0, pp = 128;
	json_t *samples = json_array(), *table = json_array();
	struct mgr *m = NULL;

	if (pp + L->o.n_gen + 1 > L->n_ctx)
		pp = L->n_ctx - L->o.n_gen - 1;
	for (int t = 1; t < max && nv < 20; t *= 2)
		if (!L->o.quick || t == 1)
			vals[nv++] = t;
	vals[nv++] = max;
	bench_set(out, "runs", json_integer(runs));
	bench_set(out, "n_prompt", json_integer(pp));
	bench_set(out, "n_gen", json_integer(L->o.n_gen));
	bench_set(out, "samples", samples);
	bench_set(out, "table", table);
	if ((rc = bench_mgr_init(L, &m, NULL, NULL)))
		goto out;
	bench_progress_end(L);
	fprintf(L->o.out, "%8s %14s %12s %12s\n", "threads", "prefill tok/s", "decode tok/s", "latency s");
	for (int i = 0; i < nv; i++) {
		struct mgr_model_cfg mc;
		struct setting_result r;
		char name[32];
		bench_progress(L, i, nv);
		snprintf(name, sizeof name, "threads-%d", vals[i]);
		bench_model_cfg(L, &mc, name);
		mc.n_threads = vals[i];
		mc.warmup = 1;
		if ((rc = measure_setting(L, m, &mc, runs, pp, L->o.n_gen, samples, "threads", vals[i], &r)))
			goto out;
		json_array_append_new(table, setting_json("threads", vals[i], &r));
		bench_progress_end(L);
		fprintf(L->o.out, "%8d %14.1f %12.1f %12.4f\n", vals[i], r.prefill_tok_s, r.tok_s, r.latency_s);
	}
	fprintf(L->o.out, "(median of %d run%s; prompt %d, generated %d tokens; %d physical cores)\n", runs,
	       runs > 1 ? "s" : "", pp, L->o.n_gen, dm_cpu_physical_cores());
out:
	mgr_free(m);
	return rc;
}

/* n_batch 16 ... 512 (quick: 32 and 128) over a prompt of min(512, the
 * context) tokens (quick: 128), one generated token: prefill speed, and the
 * memory each n_batch costs (scratch grows with it). */
int bench_batch(struct bench *L, json_t *out)
{
	static const int full[] = { 16, 32, 64, 128, 256, 512 }, quick[] = { 32, 128 };
	const int *list = L->o.quick ? quick : full, nlist = L->o.quick ? 2 : 6;
	const int runs = bench_runs(L, 3, 1);
	int pp = L->o.quick ? 128 : 512, rc = 0;
	json_t *samples = json_array(), *table = json_array();
	struct mgr *m = NULL;

	if (pp + 2 > L->n_ctx)
		pp = L->n_ctx - 2;
	bench_set(out, "runs", json_integer(runs));
	bench_set(out, "n_prompt", json_integer(pp));
	bench_set(out, "samples", samples);
	bench_set(out, "table", table);
	if ((rc = bench_mgr_init(L, &m, NULL, NULL)))
		goto out;
	bench_progress_end(L);
	fprintf(L->o.out, "%8s %14s %12s %13s\n", "n_batch", "prefill tok/s", "latency s", "scratch MiB");
	for (int i = 0; i < nlist; i++) {
		struct mgr_model_cfg mc;
		struct setting_result r;
		char name[32];
		bench_progress(L, i, nlist);
		snprintf(name, sizeof name, "batch-%d", list[i]);
		bench_model_cfg(L, &mc, name);
		mc.n_batch = list[i];
		mc.warmup = 1;
		if ((rc = measure_setting(L, m, &mc, runs, pp, 1, samples, "n_batch", list[i], &r)))
			goto out;
		json_array_append_new(table, setting_json("n_batch", list[i], &r));
		bench_progress_end(L);
		fprintf(L->o.out, "%8d %14.1f %12.4f %13.2f\n", list[i], r.prefill_tok_s, r.latency_s,
		       MiB(r.scratch_bytes));
	}
	fprintf(L->o.out, "(median of %d run%s; prompt %d tokens, one generated)\n", runs, runs > 1 ? "s" : "", pp);
out:
	mgr_free(m);
	return rc;
}

/* n_ctx 256 ... 8192 up to the model's training context (and --ctx when
 * larger; quick: the smallest and the largest up to 1024): what each
 * context costs in memory (KV cache + scratch; RSS after a load with
 * warm-up, which touches them) and in decode speed. */
int bench_ctx(struct bench *L, json_t *out)
{
	static const int full[] = { 256, 512, 1024, 2048, 4096, 8192 };
	const int runs = bench_runs(L, 3, 1);
	int vals[8], nv = 0, rc = 0, top = L->n_ctx_train > 0 ? L->n_ctx_train : 4096;
	json_t *samples = json_array(), *table = json_array();
	struct mgr *m = NULL;

	if (L->o.n_ctx > 8192)
		top = L->o.n_ctx;
	for (size_t i = 0; i < sizeof full / sizeof full[0]; i++) {
		int v = full[i] < top ? full[i] : top;
		if (v > L->o.n_prompt + L->o.n_gen && (!nv || v > vals[nv - 1]))
			vals[nv++] = v;
	}
	if (L->o.n_ctx > 8192 && nv < 8)
		vals[nv++] = L->o.n_ctx;
	if (L->o.quick && nv > 2) {
		int hi = vals[0];
		for (int i = 0; i < nv; i++)
			if (vals[i] <= 1024)
				hi = vals[i];
		vals[1] = hi;
		nv = hi > vals[0] ? 2 : 1;
	}
	bench_set(out, "runs", json_integer(runs));
	bench_set(out, "samples", samples);
	bench_set(out, "table", table);
	if ((rc = bench_mgr_init(L, &m, NULL, NULL)))
		goto out;
	bench_progress_end(L);
	fprintf(L->o.out, "%8s %9s %12s %12s %12s %12s\n", "n_ctx", "KV MiB", "scratch MiB", "held MiB",
	       "RSS +MiB", "decode tok/s");
	for (int i = 0; i < nv; i++) {
		struct mgr_model_cfg mc;
		struct setting_result r;
		char name[32];
		bench_progress(L, i, nv);
		snprintf(name, sizeof name, "ctx-%d", vals[i]);
		bench_model_cfg(L, &mc, name);
		mc.n_ctx = vals[i];
		mc.warmup = 1;
		if ((rc = measure_setting(L, m, &mc, runs, L->o.n_prompt, L->o.n_gen, samples, "n_ctx",
					  vals[i], &r)))
			goto out;
		json_array_append_new(table, setting_json("n_ctx", vals[i], &r));
		bench_progress_end(L);
		fprintf(L->o.out, "%8d %9.2f %12.2f %12.2f %12.2f %12.1f\n", vals[i], MiB(r.kv_bytes),
		       MiB(r.scratch_bytes), MiB(r.bytes), MiB(r.rss_delta), r.tok_s);
	}
	fprintf(L->o.out, "(median of %d run%s; held = the manager's accounting of weights + KV + scratch + "
	       "vocabulary; RSS + = measured from /proc after a load with warm-up, %s mode)\n",
	       runs, runs > 1 ? "s" : "", mgr_mode_name(L->o.mode));
out:
	mgr_free(m);
	return rc;
}

/*
 * bench/scen — the scenarios of the lifecycle benchmark suite (see
 * bench.h and bench/life.c for the definitions of latency, ttft, tok/s).
 *
 * Each scenario makes its own manager(s), measures, prints its table on
 * stdout, and puts every raw sample into `out` (an object: "runs", the
 * "samples" array, and derived figures: summaries, fitted lines).  Nothing
 * stays loaded when a scenario returns.  Memory figures come from /proc
 * (VmRSS, RssAnon, RssFile) and mincore (the model file's page-cache
 * residency).
 */
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "bench/bench.h"

#define MiB(x) ((double)(x) / 1048576.0)

static int add_model(struct bench *L, struct mgr *m, const struct mgr_model_cfg *mc)
{
	return mgr_add(m, mc, &L->err);
}

/* Median of the values v[i] for which sel[i] (at most n). */
static double median_of(const double *v, int n)
{
	struct bench_stats s;
	bench_stats(v, n, &s);
	return s.median;
}

/* The largest prompt that leaves room for n_predict tokens in n_ctx. */
static int prompt_cap(const struct bench *L, int32_t n_ctx, int n_predict)
{
	int cap = n_ctx - n_predict - 1;
	if (cap > L->n_text_ids)
		cap = L->n_text_ids;
	return cap < 1 ? 1 : cap;
}

/* ---- 1. cold ---- */

/* Per load mode (mmap, read, prefetch) and page-cache state (the file's
 * pages dropped with posix_fadvise DONTNEED first: a truly cold disk; or
 * read in first: cached), R requests on a dormant on-demand model (keep
 * alive 0: each request loads, answers and unloads; warm-up off, as the
 * default for keep-alive 0 is).  Runs alternate over modes and states. */
int bench_cold(struct bench *L, json_t *out)
{
	static const enum mgr_load_mode modes[] = { MGR_MODE_MMAP, MGR_MODE_READ, MGR_MODE_PREFETCH };
	static const char *const caches[] = { "dropped", "cached" };
	const int runs = bench_runs(L, 3, 1), nm = 3;
	json_t *samples = json_array(), *summary = json_array();
	struct mgr *m = NULL;
	double *load = calloc((size_t)runs, sizeof *load), *ttft = calloc((size_t)runs, sizeof *ttft);
	double *lat = calloc((size_t)runs, sizeof *lat), *tps = calloc((size_t)runs, sizeof *tps);
	double *cached = calloc((size_t)runs, sizeof *cached);
	double (*res)[2][5] = calloc((size_t)nm, sizeof *res); /* [mode][cache]: medians */
	struct bench_req *all = calloc((size_t)(runs * nm * 2), sizeof *all);
	double *frac = calloc((size_t)(runs * nm * 2), sizeof *frac); /* of the file cached before */
	int rc = 0, step = 0;

	bench_set(out, "runs", json_integer(runs));
	bench_set(out, "samples", samples);
	bench_set(out, "summary", summary);
	if (!load || !ttft || !lat || !tps || !cached || !res || !all || !frac) {
		rc = dm_err_set(&L->err, DM_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = bench_mgr_init(L, &m, NULL, NULL)))
		goto out;
	for (int i = 0; i < nm; i++) {
		struct mgr_model_cfg mc;
		bench_model_cfg(L, &mc, mgr_mode_name(modes[i]));
		mc.mode = modes[i];
		mc.keep_alive_ms = 0;
		if ((rc = add_model(L, m, &mc)))
			goto out;
	}
	for (int r = 0; r < runs; r++)
		for (int i = 0; i < nm; i++)
			for (int c = 0; c < 2; c++) {
				struct bench_req *q = &all[(i * 2 + c) * runs + r];
				uint64_t before = c == 0 ? bench_cache_drop(L) : bench_cache_fill(L);
				json_t *s;
				bench_progress(L, step++, runs * nm * 2);
				if ((rc = bench_request(L, m, mgr_mode_name(modes[i]), NULL,
						       bench_prompt(L, L->o.n_prompt), L->o.n_prompt, L->o.n_gen,
						       0, q)))
					goto out;
				s = bench_req_json(q);
				bench_set(s, "mode", json_string(mgr_mode_name(modes[i])));
				bench_set(s, "cache", json_string(caches[c]));
				bench_set(s, "run", json_integer(r));
				bench_set(s, "file_cached_before_bytes", json_integer((json_int_t)before));
				bench_set(s, "file_bytes", json_integer((json_int_t)L->file_bytes));
				json_array_append_new(samples, s);
				frac[(i * 2 + c) * runs + r] =
					L->file_bytes ? (double)before / (double)L->file_bytes : 0;
			}
	bench_progress_end(L);
	fprintf(L->o.out, "%-9s %-8s %7s %9s %9s %11s %7s %9s\n", "mode", "cache", "cached", "load s", "ttft s",
	       "first gen s", "tokens", "tok/s");
	for (int i = 0; i < nm; i++)
		for (int c = 0; c < 2; c++) {
			const struct bench_req *q = &all[(i * 2 + c) * runs];
			json_t *o = json_object();
			for (int r = 0; r < runs; r++) {
				load[r] = q[r].load_s;
				ttft[r] = q[r].ttft_s;
				lat[r] = q[r].latency_s;
				tps[r] = q[r].tok_s;
				cached[r] = frac[(i * 2 + c) * runs + r];
			}
			res[i][c][0] = median_of(load, runs);
			res[i][c][1] = median_of(ttft, runs);
			res[i][c][2] = median_of(lat, runs);
			res[i][c][3] = median_of(tps, runs);
			res[i][c][4] = median_of(cached, runs);
			bench_set(o, "mode", json_string(mgr_mode_name(modes[i])));
			bench_set(o, "cache", json_string(caches[c]));
			bench_set(o, "n", json_integer(runs));
			bench_set(o, "load_s", bench_real(res[i][c][0]));
			bench_set(o, "ttft_s", bench_real(res[i][c][1]));
			bench_set(o, "latency_s", bench_real(res[i][c][2]));
			bench_set(o, "tok_s", bench_real(res[i][c][3]));
			bench_set(o, "file_cached_before_fraction", bench_real(res[i][c][4]));
			bench_set(o, "n_gen", json_integer(q[0].n_gen));
			json_array_append_new(summary, o);
			fprintf(L->o.out, "%-9s %-8s %6.0f%% %9.4f %9.4f %11.4f %7d %9.1f\n", mgr_mode_name(modes[i]),
			       caches[c], 100 * res[i][c][4], res[i][c][0], res[i][c][1], res[i][c][2],
			       q[0].n_gen, res[i][c][3]);
		}
	fprintf(L->o.out, "(median of %d run%s; latency = acquire, load included, to the last of %d tokens; "
	       "prompt %d tokens)\n", runs, runs > 1 ? "s" : "", L->o.n_gen, L->o.n_prompt);
out:
	mgr_free(m);
	free(load);
	free(ttft);
	free(lat);
	free(tps);
	free(cached);
	free(res);
	free(all);
	free(frac);
	return rc;
}

/* ---- 2. warm ---- */

/* The model is loaded once (warm-up on), then N requests in a row. */
int bench_warm(struct bench *L, json_t *out)
{
	const int runs = bench_runs(L, 10, 3);
	json_t *samples = json_array(), *summary = json_object();
	struct mgr *m = NULL;
	struct mgr_model_cfg mc;
	double *lat = calloc((size_t)runs, sizeof *lat), *tps = calloc((size_t)runs, sizeof *tps);
	double *ttft = calloc((size_t)runs, sizeof *ttft);
	struct bench_stats sl, st, sf;
	int rc = 0, n_gen = 0;

	bench_set(out, "runs", json_integer(runs));
	bench_set(out, "samples", samples);
	bench_set(out, "summary", summary);
	if (!lat || !tps || !ttft) {
		rc = dm_err_set(&L->err, DM_ENOMEM, "out of memory");
		goto out;
	}
	bench_model_cfg(L, &mc, "m");
	mc.warmup = 1;
	if ((rc = bench_mgr_init(L, &m, NULL, NULL)) || (rc = add_model(L, m, &mc)) ||
	    (rc = mgr_load(m, "m", &L->err)))
		goto out;
	for (int r = 0; r < runs; r++) {
		struct bench_req q;
		json_t *s;
		bench_progress(L, r, runs);
		if ((rc = bench_request(L, m, "m", NULL, bench_prompt(L, L->o.n_prompt), L->o.n_prompt,
				       L->o.n_gen, 0, &q)))
			goto out;
		lat[r] = q.latency_s;
		tps[r] = q.tok_s;
		ttft[r] = q.ttft_s;
		n_gen += q.n_gen;
		s = bench_req_json(&q);
		bench_set(s, "run", json_integer(r));
		json_array_append_new(samples, s);
	}
	bench_stats(lat, runs, &sl);
	bench_stats(tps, runs, &st);
	bench_stats(ttft, runs, &sf);
	bench_set(summary, "latency_s", bench_stats_json(&sl));
	bench_set(summary, "ttft_s", bench_stats_json(&sf));
	bench_set(summary, "tok_s", bench_stats_json(&st));
	bench_set(summary, "n_gen_total", json_integer(n_gen));
	bench_progress_end(L);
	fprintf(L->o.out, "%-10s %10s %10s %10s %10s %10s\n", "", "mean", "median", "min", "max", "stddev");
	fprintf(L->o.out, "%-10s %10.4f %10.4f %10.4f %10.4f %10.4f\n", "latency s", sl.mean, sl.median, sl.min,
	       sl.max, sl.stddev);
	fprintf(L->o.out, "%-10s %10.4f %10.4f %10.4f %10.4f %10.4f\n", "ttft s", sf.mean, sf.median, sf.min, sf.max,
	       sf.stddev);
	fprintf(L->o.out, "%-10s %10.1f %10.1f %10.1f %10.1f %10.1f\n", "tok/s", st.mean, st.median, st.min, st.max,
	       st.stddev);
	fprintf(L->o.out, "(%d requests of %d prompt + %d generated tokens on the loaded model)\n", runs,
	       L->o.n_prompt, L->o.n_gen);
out:
	mgr_free(m);
	free(lat);
	free(tps);
	free(ttft);
	return rc;
}

/* ---- 3. context ---- */

/* Prompts of 1, 10, 35, 128, 512, 2048 tokens (those past the context
 * replaced by the largest that fits, once), each request generating one
 * token: latency is the prompt's cost.  Fitted over every sample:
 * latency_s = fixed_s + per_token_s · n_prompt. */
int bench_context(struct bench *L, json_t *out)
{
	static const int lens_full[] = { 1, 10, 35, 128, 512, 2048 };
	const int runs = bench_runs(L, 3, 1), cap = prompt_cap(L, L->n_ctx, 1);
	int lens[8], nl = 0, n = 0, rc = 0;
	json_t *samples = json_array(), *table = json_array();
	struct mgr *m = NULL;
	struct mgr_model_cfg mc;
	double *x = NULL, *y = NULL, *tmp = NULL, *tmp2 = NULL;
	struct bench_fit f;

	for (size_t i = 0; i < sizeof lens_full / sizeof lens_full[0]; i++) {
		int v = lens_full[i] < cap ? lens_full[i] : cap;
		if (!nl || v > lens[nl - 1])
			lens[nl++] = v;
	}
	bench_set(out, "runs", json_integer(runs));
	bench_set(out, "n_ctx", json_integer(L->n_ctx));
	bench_set(out, "n_predict", json_integer(1));
	bench_set(out, "samples", samples);
	bench_set(out, "lengths", table);
	x = calloc((size_t)(nl * runs), sizeof *x);
	y = calloc((size_t)(nl * runs), sizeof *y);
	tmp = calloc((size_t)runs, sizeof *tmp);
	tmp2 = calloc((size_t)runs, sizeof *tmp2);
	if (!x || !y || !tmp || !tmp2) {
		rc = dm_err_set(&L->err, DM_ENOMEM, "out of memory");
		goto out;
	}
	bench_model_cfg(L, &mc, "m");
	mc.warmup = 1;
	if ((rc = bench_mgr_init(L, &m, NULL, NULL)) || (rc = add_model(L, m, &mc)) ||
	    (rc = mgr_load(m, "m", &L->err)))
		goto out;
	for (int r = 0; r < runs; r++)
		for (int i = 0; i < nl; i++) {
			struct bench_req q;
			json_t *s;
			bench_progress(L, r * nl + i, runs * nl);
			if ((rc = bench_request(L, m, "m", NULL, bench_prompt(L, lens[i]), lens[i], 1, 0, &q)))
				goto out;
			x[n] = lens[i];
			y[n++] = q.latency_s;
			s = bench_req_json(&q);
			bench_set(s, "run", json_integer(r));
			json_array_append_new(samples, s);
		}
	bench_fit_line(x, y, n, &f);
	bench_set(out, "fit", bench_fit_json(&f, "fixed_s", "per_token_s"));
	bench_progress_end(L);
	fprintf(L->o.out, "%10s %12s %14s\n", "prompt tok", "latency s", "prefill tok/s");
	for (int i = 0; i < nl; i++) {
		json_t *o = json_object();
		for (int r = 0; r < runs; r++) {
			json_t *s = json_array_get(samples, (size_t)(r * nl + i));
			tmp[r] = json_real_value(json_object_get(s, "latency_s"));
			tmp2[r] = json_real_value(json_object_get(s, "prefill_tok_s"));
		}
		bench_set(o, "n_prompt", json_integer(lens[i]));
		bench_set(o, "latency_s", bench_real(median_of(tmp, runs)));
		bench_set(o, "prefill_tok_s", bench_real(median_of(tmp2, runs)));
		json_array_append_new(table, o);
		fprintf(L->o.out, "%10d %12.4f %14.1f\n", lens[i], median_of(tmp, runs), median_of(tmp2, runs));
	}
	if (f.ok)
		fprintf(L->o.out, "fit: latency = %.3f ms + %.4f ms per prompt token (r^2 %.3f, %d samples)\n",
		       f.fixed * 1e3, f.slope * 1e3, f.r2, f.n);
	fprintf(L->o.out, "(median of %d run%s; one generated token per request; n_ctx %d)\n", runs,
	       runs > 1 ? "s" : "", L->n_ctx);
out:
	mgr_free(m);
	free(x);
	free(y);
	free(tmp);
	free(tmp2);
	return rc;
}

/* ---- 4. max-tokens ---- */

/* Requests asking for 25, 50, 100, 150, 200, 300 tokens (quick: 25, 50,
 * 100) after a prompt of -p tokens, with end-of-generation tokens masked so
 * that every request runs to its length (or to a full context, reported).
 * Fitted: latency_s = fixed_s + per_token_s · tokens produced. */
int bench_max_tokens(struct bench *L, json_t *out)
{
	static const int full[] = { 25, 50, 100, 150, 200, 300 }, quick[] = { 25, 50, 100 };
	const int *list = L->o.quick ? quick : full;
	const int nlist = L->o.quick ? 3 : 6, runs = bench_runs(L, 3, 1);
	int want[8], nw = 0, n = 0, rc = 0, room = L->n_ctx - L->o.n_prompt - 1;
	json_t *samples = json_array(), *table = json_array();
	struct mgr *m = NULL;
	struct mgr_model_cfg mc;
	double *x = NULL, *y = NULL, *tl = NULL, *tt = NULL;
	struct bench_fit f;

	for (int i = 0; i < nlist; i++) {
		int v = list[i] < room ? list[i] : room;
		if (v >= 1 && (!nw || v > want[nw - 1]))
			want[nw++] = v;
	}
	bench_set(out, "runs", json_integer(runs));
	bench_set(out, "n_prompt", json_integer(L->o.n_prompt));
	bench_set(out, "ignore_eos", json_true());
	bench_set(out, "samples", samples);
	bench_set(out, "lengths", table);
	x = calloc((size_t)(nw * runs) + 1, sizeof *x);
	y = calloc((size_t)(nw * runs) + 1, sizeof *y);
	tl = calloc((size_t)runs, sizeof *tl);
	tt = calloc((size_t)runs, sizeof *tt);
	if (!x || !y || !tl || !tt) {
		rc = dm_err_set(&L->err, DM_ENOMEM, "out of memory");
		goto out;
	}
	bench_model_cfg(L, &mc, "m");
	mc.warmup = 1;
	if ((rc = bench_mgr_init(L, &m, NULL, NULL)) || (rc = add_model(L, m, &mc)) ||
	    (rc = mgr_load(m, "m", &L->err)))
		goto out;
	for (int r = 0; r < runs; r++)
		for (int i = 0; i < nw; i++) {
			struct bench_req q;
			json_t *s;
			bench_progress(L, r * nw + i, runs * nw);
			if ((rc = bench_request(L, m, "m", NULL, bench_prompt(L, L->o.n_prompt), L->o.n_prompt,
					       want[i], BENCH_IGNORE_EOS, &q)))
				goto out;
			x[n] = q.n_gen;
			y[n++] = q.latency_s;
			s = bench_req_json(&q);
			bench_set(s, "max_tokens", json_integer(want[i]));
			bench_set(s, "run", json_integer(r));
			json_array_append_new(samples, s);
		}
	bench_fit_line(x, y, n, &f);
	bench_set(out, "fit", bench_fit_json(&f, "fixed_s", "per_token_s"));
	bench_progress_end(L);
	fprintf(L->o.out, "%10s %9s %12s %9s\n", "max tokens", "produced", "latency s", "tok/s");
	for (int i = 0; i < nw; i++) {
		json_t *o = json_object();
		int produced = 0;
		for (int r = 0; r < runs; r++) {
			json_t *s = json_array_get(samples, (size_t)(r * nw + i));
			tl[r] = json_real_value(json_object_get(s, "latency_s"));
			tt[r] = json_real_value(json_object_get(s, "tok_s"));
			produced = (int)json_integer_value(json_object_get(s, "n_gen"));
		}
		bench_set(o, "max_tokens", json_integer(want[i]));
		bench_set(o, "n_gen", json_integer(produced));
		bench_set(o, "latency_s", bench_real(median_of(tl, runs)));
		bench_set(o, "tok_s", bench_real(median_of(tt, runs)));
		json_array_append_new(table, o);
		fprintf(L->o.out, "%10d %9d %12.4f %9.1f\n", want[i], produced, median_of(tl, runs), median_of(tt, runs));
	}
	if (f.ok)
		fprintf(L->o.out, "fit: latency = %.3f ms + %.4f ms per generated token (r^2 %.3f, %d samples)\n",
		       f.fixed * 1e3, f.slope * 1e3, f.r2, f.n);
	fprintf(L->o.out, "(median of %d run%s; prompt %d tokens; end-of-generation tokens never sampled)\n", runs,
	       runs > 1 ? "s" : "", L->o.n_prompt);
out:
	mgr_free(m);
	free(x);
	free(y);
	free(tl);
	free(tt);
	return rc;
}

/* ---- 5. memory ---- */

/* RSS sampled every few milliseconds by a thread into a preallocated
 * array (so the sampling does not move the figures it measures); when the
 * array fills, every other sample is dropped and the interval doubles. */
struct sampler {
	pthread_t th;
	atomic_int stop;
	double t0;
	pthread_mutex_t mu;
	struct bench_mem *v;
	size_t n, cap;
	unsigned interval_us;
};

static void *sampler_main(void *arg)
{
	struct sampler *s = arg;
	while (!atomic_load(&s->stop)) {
		struct dm_mem_usage u;
		dm_mem_usage(&u);
		pthread_mutex_lock(&s->mu);
		if (s->n == s->cap) {
			for (size_t i = 0; i < s->cap / 2; i++)
				s->v[i] = s->v[2 * i];
			s->n = s->cap / 2;
			s->interval_us *= 2;
		}
		s->v[s->n].t_s = bench_now() - s->t0;
		s->v[s->n].rss = u.rss;
		s->v[s->n].rss_anon = u.rss_anon;
		s->v[s->n].rss_file = u.rss_file;
		s->v[s->n].file_cached = 0;
		s->n++;
		pthread_mutex_unlock(&s->mu);
		usleep(s->interval_us);
	}
	return NULL;
}

/* start; load (warm-up on, as a keep-alive model gets by default); first
 * and second generation; a conversation of up to 100 turns (quick: 10)
 * recorded after 10, 50 and 100 turns (quick: 3, 10), each turn adding 16
 * prompt tokens and up to 16 generated ones to the same KV cache (when the
 * context is full it starts over, as a client trimming history would);
 * explicit unload.  Return to baseline: RSS after unload − RSS at start.
 * Before start, one untimed load / generation / unload (priming; its RSS
 * before and after are in the JSON) so that the program's own code pages
 * and allocator arenas touched for the first time are not counted as the
 * model's. */
int bench_memory(struct bench *L, json_t *out)
{
	static const int marks_full[] = { 10, 50, 100 }, marks_quick[] = { 3, 10 };
	const int *marks = L->o.quick ? marks_quick : marks_full, n_marks = L->o.quick ? 2 : 3;
	const int turns = marks[n_marks - 1], turn_user = 16;
	const int turn_gen = L->o.n_gen < 16 ? L->o.n_gen : 16;
	struct sampler smp;
	struct bench_mem pts[16];
	const char *labels[16];
	int np = 0, rc = 0, mark = 0, resets = 0, text_pos = 1, step = 0, steps = turns + 4;
	json_t *points = json_array(), *timeline = json_array(), *turn_arr = json_array();
	struct mgr *m = NULL;
	struct mgr_model_cfg mc;
	double t0, load_s = 0, *tlat = NULL;
	bool started = false;
	struct bench_req q;
	struct bench_mem *tm = NULL;   /* per turn, preallocated like the timeline */
	int *tn_past = NULL;

	memset(&smp, 0, sizeof smp);
	bench_set(out, "runs", json_integer(1));
	bench_set(out, "points", points);
	bench_set(out, "timeline", timeline);
	bench_set(out, "turns", turn_arr);
	bench_set(out, "turn_prompt_tokens", json_integer(turn_user));
	bench_set(out, "turn_gen_tokens", json_integer(turn_gen));
	bench_set(out, "mode", json_string(mgr_mode_name(L->o.mode)));
	smp.cap = (size_t)1 << 16;
	smp.v = dm_mem_map(smp.cap * sizeof *smp.v); /* touched now, before the start figure */
	if (!smp.v)
		return dm_err_set(&L->err, DM_ENOMEM, "out of memory");
	memset(smp.v, 0, smp.cap * sizeof *smp.v);
	smp.interval_us = 5000;
	pthread_mutex_init(&smp.mu, NULL);
	bench_model_cfg(L, &mc, "m");
	mc.warmup = 1;
	if ((rc = bench_mgr_init(L, &m, NULL, NULL)) || (rc = add_model(L, m, &mc)))
		goto out2;
	tm = dm_mem_map((size_t)(turns + 1) * sizeof *tm);
	tn_past = dm_mem_map((size_t)(turns + 1) * sizeof *tn_past);
	tlat = dm_mem_map((size_t)(turns + 1) * sizeof *tlat);
	if (!tm || !tn_past || !tlat) {
		rc = dm_err_set(&L->err, DM_ENOMEM, "out of memory");
		goto out2;
	}
	memset(tm, 0, (size_t)(turns + 1) * sizeof *tm);
	memset(tn_past, 0, (size_t)(turns + 1) * sizeof *tn_past);
	memset(tlat, 0, (size_t)(turns + 1) * sizeof *tlat);
	/* one untimed cycle first, so that what comes back after the measured
	 * one is the model's memory, not the program's own code pages and
	 * allocator arenas touched for the first time */
	{
		struct dm_mem_usage u0, u1;
		dm_mem_usage(&u0);
		if ((rc = mgr_load(m, "m", &L->err)) ||
		    (rc = bench_request(L, m, "m", NULL, bench_prompt(L, L->o.n_prompt), L->o.n_prompt,
				       L->o.n_gen, 0, &q)) ||
		    (rc = mgr_unload(m, "m", &L->err)))
			goto out2;
		malloc_trim(0);
		dm_mem_usage(&u1);
		bench_set(out, "priming_rss_before_bytes", json_integer((json_int_t)u0.rss));
		bench_set(out, "priming_rss_after_bytes", json_integer((json_int_t)u1.rss));
	}
	malloc_trim(0);
	t0 = bench_now();
	smp.t0 = t0;
	if (pthread_create(&smp.th, NULL, sampler_main, &smp) != 0) {
		rc = dm_err_set(&L->err, DM_ENOMEM, "cannot start the sampling thread");
		goto out2;
	}
	started = true;
	usleep(20000);
	bench_mem_now(L, t0, &pts[np]);
	labels[np++] = "start";
	bench_progress(L, step++, steps);
	{
		double a = bench_now();
		if ((rc = mgr_load(m, "m", &L->err)))
			goto out2;
		load_s = bench_now() - a;
	}
	bench_mem_now(L, t0, &pts[np]);
	labels[np++] = "after load";
	for (int g = 0; g < 2; g++) {
		bench_progress(L, step++, steps);
		if ((rc = bench_request(L, m, "m", NULL, bench_prompt(L, L->o.n_prompt), L->o.n_prompt,
				       L->o.n_gen, 0, &q)))
			goto out2;
		bench_mem_now(L, t0, &pts[np]);
		labels[np++] = g == 0 ? "after first generation" : "after second generation";
	}
	{
		int n_past = 0;
		for (int t = 1; t <= turns; t++) {
			unsigned flags = BENCH_KEEP_CACHE;
			const int32_t *ids;
			int n_ids = turn_user;
			bench_progress(L, step++, steps);
			if (t == 1 || n_past + turn_user + turn_gen + 1 > L->n_ctx) {
				/* a new context: BOS and the first turn */
				flags = 0;
				if (t > 1)
					resets++;
				n_past = 0;
				ids = bench_prompt(L, turn_user);
			} else {
				if (text_pos + turn_user > L->n_text_ids)
					text_pos = 1;
				ids = L->text_ids + text_pos;
			}
			text_pos += turn_user;
			if ((rc = bench_request(L, m, "m", NULL, ids, n_ids, turn_gen, flags, &q)))
				goto out2;
			n_past += q.n_prompt + q.n_gen;
			tn_past[t] = n_past;
			tlat[t] = q.latency_s;
			bench_mem_now(L, t0, &tm[t]);
			if (mark < n_marks && t == marks[mark]) {
				static char lab[3][32];
				snprintf(lab[mark], sizeof lab[mark], "after %d turns", t);
				pts[np] = tm[t];
				labels[np++] = lab[mark];
				mark++;
			}
		}
	}
	bench_progress(L, step++, steps);
	if ((rc = mgr_unload(m, "m", &L->err)))
		goto out2;
	malloc_trim(0);
	bench_mem_now(L, t0, &pts[np]);
	labels[np++] = "after unload";
	usleep(20000);
out2:
	if (started) {
		atomic_store(&smp.stop, 1);
		pthread_join(smp.th, NULL);
	}
	if (!rc) {
		const struct bench_mem *s0 = &pts[0], *ld = &pts[1], *un = &pts[np - 1];
		json_t *ret = json_object();
		uint64_t peak = 0;
		for (int i = 0; i < np; i++)
			json_array_append_new(points, bench_mem_json(&pts[i], labels[i]));
		for (size_t i = 0; i < smp.n; i++) {
			json_array_append_new(timeline, json_pack("{s:f,s:I,s:I,s:I}", "t_s", smp.v[i].t_s,
					      "rss_bytes", (json_int_t)smp.v[i].rss, "rss_anon_bytes",
					      (json_int_t)smp.v[i].rss_anon, "rss_file_bytes",
					      (json_int_t)smp.v[i].rss_file));
			if (smp.v[i].rss > peak)
				peak = smp.v[i].rss;
		}
		for (int t = 1; t <= turns; t++) {
			json_t *o = bench_mem_json(&tm[t], NULL);
			bench_set(o, "turn", json_integer(t));
			bench_set(o, "n_past", json_integer(tn_past[t]));
			bench_set(o, "latency_s", bench_real(tlat[t]));
			json_array_append_new(turn_arr, o);
		}
		bench_set(out, "load_s", bench_real(load_s));
		bench_set(out, "context_resets", json_integer(resets));
		bench_set(out, "sample_interval_ms", json_integer(smp.interval_us / 1000));
		bench_set(out, "peak_rss_bytes", json_integer((json_int_t)peak));
		bench_set(ret, "rss_delta_bytes", json_integer((json_int_t)un->rss - (json_int_t)s0->rss));
		bench_set(ret, "rss_anon_delta_bytes",
			 json_integer((json_int_t)un->rss_anon - (json_int_t)s0->rss_anon));
		bench_set(ret, "rss_file_delta_bytes",
			 json_integer((json_int_t)un->rss_file - (json_int_t)s0->rss_file));
		bench_set(ret, "given_back_bytes", json_integer((json_int_t)ld->rss - (json_int_t)un->rss));
		bench_set(out, "return_to_baseline", ret);
		bench_progress_end(L);
		fprintf(L->o.out, "%-26s %9s %9s %9s %9s %10s\n", "point", "t s", "RSS MiB", "anon MiB", "file MiB",
		       "cached MiB");
		for (int i = 0; i < np; i++)
			fprintf(L->o.out, "%-26s %9.3f %9.1f %9.1f %9.1f %10.1f\n", labels[i], pts[i].t_s, MiB(pts[i].rss),
			       MiB(pts[i].rss_anon), MiB(pts[i].rss_file), MiB(pts[i].file_cached));
		fprintf(L->o.out, "return to baseline: RSS after unload %+.3f MiB vs start (anon %+.3f, file %+.3f); "
		       "peak %.1f MiB; load %.3f s\n",
		       (MiB(un->rss) - MiB(s0->rss)), MiB(un->rss_anon) - MiB(s0->rss_anon),
		       MiB(un->rss_file) - MiB(s0->rss_file), MiB(peak), load_s);
		fprintf(L->o.out, "(one run; %d-turn conversation of %d + %d tokens a turn, %d context restart%s; "
		       "%s mode; cached = the model file's pages in the page cache)\n",
		       turns, turn_user, turn_gen, resets, resets == 1 ? "" : "s", mgr_mode_name(L->o.mode));
	}
	dm_mem_unmap(tm, (size_t)(turns + 1) * sizeof *tm);
	dm_mem_unmap(tn_past, (size_t)(turns + 1) * sizeof *tn_past);
	dm_mem_unmap(tlat, (size_t)(turns + 1) * sizeof *tlat);
	mgr_free(m);
	dm_mem_unmap(smp.v, smp.cap * sizeof *smp.v);
	pthread_mutex_destroy(&smp.mu);
	return rc;
}

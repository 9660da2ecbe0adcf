/*
 * bench/policy — scenario `policies`: a scripted day of requests
 * (bursts and idle gaps) replayed under eager, lazy, on-demand (keep-alive
 * 0), keep-alive 30 s and keep-alive 5 min: total latency paid against
 * memory-seconds held.  The chart that tells a user which policy to pick.
 * Then the RAG day (ragday.c): a chat model and two encoders
 * under one budget, by residency setup.
 *
 * Time.  The day runs on a virtual clock in seconds (vt) that this file
 * owns and hands to the manager as its clock (mgr_cfg.now_ms); the
 * keep-alive thread is off and the replay calls mgr_tick itself.
 *   - Requests are real: real loads, real generations, real unloads, each
 *     timed with the monotonic clock, and vt advances by exactly their real
 *     duration.
 *   - Idle gaps are not slept: vt jumps over them, first to each keep-alive
 *     expiry inside the gap (status expires_ms), where mgr_tick unloads the
 *     model for real (vt advancing by the unload's real time), then to the
 *     next request's scheduled time.
 *   - A request scheduled while the previous one still runs (vt already
 *     past its time) starts at vt; the wait counts in its latency.
 *   - Eager loads at vt = 0 (mgr_start); the day ends at day_s, with
 *     whatever is still loaded held until then.
 * A day of 24 h therefore replays in the few seconds its requests take.
 *
 * Memory.  held = process RSS (/proc/self/status) − the RSS before the
 * manager loaded anything, read after every state change.  Between changes
 * nothing runs, so over an idle gap held is constant and contributes
 * held × Δvt exactly; over a load, generation or unload of real duration
 * dt it contributes (held before + held after) / 2 × dt (trapezoid).
 * memory-seconds = the sum, in byte·s; reported also as MiB·h and as the
 * mean held over the day.
 *
 * Latency paid = Σ over requests of (wait + acquire, load included, +
 * generation); eager's start-up load is reported apart (startup_s), not as
 * latency, since no request waited for it.
 */
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "bench/bench.h"

#define MiB(x) ((double)(x) / 1048576.0)

struct burst {
	double t_s;   /* first request, seconds after midnight */
	int n;        /* requests */
	double gap_s; /* between them */
};

/* A working day: a morning burst, scattered questions, a working session
 * with a request every 90 s, an afternoon burst, a quiet evening. */
static const struct burst day_full[] = {
	{ 7 * 3600 + 55 * 60, 3, 20 },  /* 3 requests 20 s apart */
	{ 8 * 3600 + 10 * 60, 1, 0 },
	{ 9 * 3600, 5, 45 },            /* just over keep-alive 30 s apart */
	{ 11 * 3600 + 30 * 60, 2, 10 },
	{ 13 * 3600 + 15 * 60, 8, 90 }, /* a session: every 90 s for 12 min */
	{ 15 * 3600, 1, 0 },
	{ 17 * 3600 + 40 * 60, 4, 25 },
	{ 21 * 3600, 2, 300 },
};
#define DAY_FULL_S 86400.0

/* Quick: one hour that still has a warm hit within 30 s, an expiry in
 * between, and a gap longer than 5 min. */
static const struct burst day_quick[] = {
	{ 60, 2, 10 },
	{ 900, 2, 40 },
	{ 3000, 1, 0 },
};
#define DAY_QUICK_S 3600.0

struct policy {
	const char *name;
	enum mgr_load_policy load;
	int64_t keep_alive_ms;
};

static const struct policy policies[] = {
	{ "eager", MGR_EAGER, MGR_KEEP_FOREVER },
	{ "lazy", MGR_LAZY, MGR_KEEP_FOREVER },
	{ "on-demand", MGR_LAZY, 0 },
	{ "keep-alive 30s", MGR_LAZY, 30000 },
	{ "keep-alive 5m", MGR_LAZY, 300000 },
};
#define N_POL (sizeof policies / sizeof policies[0])

struct vclock {
	uint64_t ms;
};

static uint64_t vclock_now(void *ud)
{
	return ((const struct vclock *)ud)->ms;
}

struct tl_point {
	double t_s, held;
};

struct req_rec {
	double t_s, start_s, wait_s, latency_s, ttft_s, load_s;
	int n_gen;
	bool cold;
};

struct replay {
	struct bench *L;
	struct mgr *m;
	struct vclock clk;
	double vt;           /* virtual seconds */
	uint64_t rss0;
	double held, peak;   /* bytes */
	double mem_bs;       /* byte·seconds */
	struct tl_point *tl; /* preallocated: no allocation while measuring */
	size_t n_tl, cap_tl;
	int expiries;
};

static double held_now(const struct replay *p)
{
	struct dm_mem_usage u;
	dm_mem_usage(&u);
	return u.rss > p->rss0 ? (double)(u.rss - p->rss0) : 0.0;
}

static void set_vt(struct replay *p, double t)
{
	p->vt = t;
	p->clk.ms = (uint64_t)llround(t * 1000.0);
	if (p->n_tl < p->cap_tl)
		p->tl[p->n_tl++] = (struct tl_point){ t, p->held };
	if (p->held > p->peak)
		p->peak = p->held;
}

/* Nothing runs from vt to t: held is constant. */
static void idle_to(struct replay *p, double t)
{
	if (t <= p->vt)
		return;
	p->mem_bs += p->held * (t - p->vt);
	set_vt(p, t);
}

/* Something ran for dt real seconds, after which held_after is held. */
static void busy(struct replay *p, double dt, double held_after)
{
	p->mem_bs += 0.5 * (p->held + held_after) * dt;
	p->held = held_after;
	set_vt(p, p->vt + dt);
}

/* Lets every keep-alive expiry up to t happen (at its own virtual time). */
static void expire_until(struct replay *p, double t)
{
	for (;;) {
		struct mgr_model_status st;
		double t0;
		if (mgr_status(p->m, &st, 1) < 1 || st.state != MGR_READY || st.expires_ms < 0 ||
		    (double)st.expires_ms / 1000.0 > t)
			return;
		idle_to(p, (double)st.expires_ms / 1000.0);
		if (p->clk.ms < (uint64_t)st.expires_ms)
			p->clk.ms = (uint64_t)st.expires_ms;
		t0 = bench_now();
		if (mgr_tick(p->m) < 1)
			return;
		busy(p, bench_now() - t0, held_now(p));
		p->expiries++;
	}
}

static int one_request(struct replay *p, double t_s, struct req_rec *rec)
{
	struct bench *L = p->L;
	struct mgr_lease *l;
	struct bench_req q;
	double t0, t1, t2;
	int rc;

	memset(rec, 0, sizeof *rec);
	memset(&q, 0, sizeof q);
	expire_until(p, t_s);
	idle_to(p, t_s);
	rec->t_s = t_s;
	rec->start_s = p->vt;
	rec->wait_s = p->vt - t_s;
	t0 = bench_now();
	if ((rc = mgr_acquire(p->m, "m", NULL, &l, &L->err)))
		return rc;
	t1 = bench_now();
	busy(p, t1 - t0, held_now(p));
	rec->cold = mgr_lease_cold(l);
	rec->load_s = mgr_lease_load_s(l);
	rc = bench_generate(mgr_lease_handle(l), bench_prompt(L, L->o.n_prompt), L->o.n_prompt, L->o.n_gen,
			   0, &q, &L->err);
	if (rc) {
		mgr_release(l);
		return rc;
	}
	t2 = bench_now();
	busy(p, t2 - t1, held_now(p));
	rec->latency_s = rec->wait_s + (t2 - t0);
	rec->ttft_s = rec->wait_s + (t1 - t0) + q.ttft_s;
	rec->n_gen = q.n_gen;
	mgr_release(l); /* the clock says vt: keep-alive counts from here */
	t0 = bench_now();
	busy(p, t0 - t2, held_now(p));
	return 0;
}

static json_t *policy_json(const struct policy *pol, const struct replay *p, const struct req_rec *recs,
			   int n_req, double day_s, double startup_s, double real_s, uint64_t loads)
{
	json_t *o = json_object(), *reqs = json_array(), *tl = json_array();
	double tot = 0, mx = 0, ttft = 0;
	int cold = 0;

	for (int i = 0; i < n_req; i++) {
		json_t *r = json_object();
		tot += recs[i].latency_s;
		ttft += recs[i].ttft_s;
		mx = recs[i].latency_s > mx ? recs[i].latency_s : mx;
		cold += recs[i].cold;
		bench_set(r, "t_s", bench_real(recs[i].t_s));
		bench_set(r, "start_s", bench_real(recs[i].start_s));
		bench_set(r, "wait_s", bench_real(recs[i].wait_s));
		bench_set(r, "latency_s", bench_real(recs[i].latency_s));
		bench_set(r, "ttft_s", bench_real(recs[i].ttft_s));
		bench_set(r, "load_s", bench_real(recs[i].load_s));
		bench_set(r, "cold", json_boolean(recs[i].cold));
		bench_set(r, "n_gen", json_integer(recs[i].n_gen));
		json_array_append_new(reqs, r);
	}
	for (size_t i = 0; i < p->n_tl; i++)
		json_array_append_new(tl, json_pack("{s:f,s:I}", "t_s", p->tl[i].t_s, "held_bytes",
						    (json_int_t)p->tl[i].held));
	bench_set(o, "policy", json_string(pol->name));
	bench_set(o, "load", json_string(pol->load == MGR_EAGER ? "eager" : "lazy"));
	bench_set(o, "keep_alive_ms", json_integer(pol->keep_alive_ms));
	bench_set(o, "requests", json_integer(n_req));
	bench_set(o, "loads", json_integer((json_int_t)loads));
	bench_set(o, "cold_requests", json_integer(cold));
	bench_set(o, "expiries", json_integer(p->expiries));
	bench_set(o, "total_latency_s", bench_real(tot));
	bench_set(o, "mean_latency_s", bench_real(n_req ? tot / n_req : 0));
	bench_set(o, "max_latency_s", bench_real(mx));
	bench_set(o, "total_ttft_s", bench_real(ttft));
	bench_set(o, "startup_s", bench_real(startup_s));
	bench_set(o, "mem_byte_s", bench_real(p->mem_bs));
	bench_set(o, "mem_mib_h", bench_real(p->mem_bs / 1048576.0 / 3600.0));
	bench_set(o, "mean_held_bytes", bench_real(p->mem_bs / day_s));
	bench_set(o, "peak_held_bytes", bench_real(p->peak));
	bench_set(o, "real_s", bench_real(real_s));
	bench_set(o, "samples", reqs);
	bench_set(o, "timeline", tl);
	return o;
}

int bench_policies(struct bench *L, json_t *out)
{
	const struct burst *day = L->o.quick ? day_quick : day_full;
	const size_t nb = L->o.quick ? sizeof day_quick / sizeof day_quick[0]
				     : sizeof day_full / sizeof day_full[0];
	const double day_s = L->o.quick ? DAY_QUICK_S : DAY_FULL_S;
	json_t *events = json_array(), *results = json_array();
	double *times = NULL;
	struct req_rec *recs = NULL;
	struct replay p;
	int n_req = 0, rc = 0;

	memset(&p, 0, sizeof p);
	for (size_t b = 0; b < nb; b++)
		n_req += day[b].n;
	times = calloc((size_t)n_req, sizeof *times);
	recs = calloc((size_t)n_req, sizeof *recs);
	p.cap_tl = (size_t)n_req * 8 + 64;
	p.tl = calloc(p.cap_tl, sizeof *p.tl);
	bench_set(out, "runs", json_integer(1));
	bench_set(out, "day_s", bench_real(day_s));
	bench_set(out, "time", json_string("virtual: requests real, idle gaps skipped on the manager's clock"));
	bench_set(out, "events", events);
	bench_set(out, "policies", results);
	if (!times || !recs || !p.tl) {
		rc = dm_err_set(&L->err, DM_ENOMEM, "out of memory");
		goto out;
	}
	{
		int k = 0;
		for (size_t b = 0; b < nb; b++)
			for (int i = 0; i < day[b].n; i++) {
				times[k] = day[b].t_s + i * day[b].gap_s;
				json_array_append_new(events, json_real(times[k]));
				k++;
			}
	}
	bench_cache_fill(L);
	for (size_t pi = 0; pi < N_POL; pi++) {
		const struct policy *pol = &policies[pi];
		struct mgr_model_cfg mc;
		struct mgr_model_status st;
		double real0 = bench_now(), startup_s = 0;

		p.L = L;
		p.m = NULL;
		p.clk.ms = 0;
		p.vt = 0;
		p.held = p.peak = p.mem_bs = 0;
		p.n_tl = 0;
		p.expiries = 0;
		bench_model_cfg(L, &mc, "m");
		mc.load = pol->load;
		mc.keep_alive_ms = pol->keep_alive_ms;
		mc.warmup = -1; /* the manager's default: on unless keep-alive is 0 */
		if ((rc = bench_mgr_init(L, &p.m, vclock_now, &p.clk)) || (rc = mgr_add(p.m, &mc, &L->err)))
			goto out;
		malloc_trim(0);
		{
			struct dm_mem_usage u;
			dm_mem_usage(&u);
			p.rss0 = u.rss;
		}
		set_vt(&p, 0);
		if (pol->load == MGR_EAGER) {
			double t0 = bench_now();
			if ((rc = mgr_start(p.m, &L->err)))
				goto out;
			startup_s = bench_now() - t0;
			busy(&p, startup_s, held_now(&p));
		}
		for (int i = 0; i < n_req; i++) {
			bench_progress(L, (int)pi * n_req + i, (int)N_POL * n_req);
			if ((rc = one_request(&p, times[i], &recs[i])))
				goto out;
		}
		expire_until(&p, day_s);
		idle_to(&p, day_s);
		mgr_status(p.m, &st, 1);
		json_array_append_new(results, policy_json(pol, &p, recs, n_req, day_s, startup_s,
							   bench_now() - real0, st.load_count));
		mgr_free(p.m);
		p.m = NULL;
	}
	bench_progress_end(L);
	fprintf(L->o.out, "%-15s %6s %6s %10s %9s %9s %11s %10s\n", "policy", "loads", "cold", "latency s",
	       "mean s", "max s", "memory MiB·h", "mean MiB");
	for (size_t i = 0; i < json_array_size(results); i++) {
		json_t *o = json_array_get(results, i);
#define G(k) json_real_value(json_object_get(o, k))
		fprintf(L->o.out, "%-15s %6d %6d %10.3f %9.4f %9.4f %12.2f %10.2f\n",
		       json_string_value(json_object_get(o, "policy")),
		       (int)json_integer_value(json_object_get(o, "loads")),
		       (int)json_integer_value(json_object_get(o, "cold_requests")), G("total_latency_s"),
		       G("mean_latency_s"), G("max_latency_s"), G("mem_mib_h"), MiB(G("mean_held_bytes")));
#undef G
	}
	fprintf(L->o.out, "(one replay of a %.0f h day with %d requests of %d + %d tokens; idle gaps on a virtual "
	       "clock, requests, loads and unloads real; memory = RSS above the idle process)\n",
	       day_s / 3600, n_req, L->o.n_prompt, L->o.n_gen);
	rc = bench_rag_day(L, out); /* the second half of the scenario: three models, one budget */
out:
	mgr_free(p.m);
	free(times);
	free(recs);
	free(p.tl);
	return rc;
}

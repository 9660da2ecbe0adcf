/*
 * cli/speed — `dormant bench speed MODEL [-p N] [-n N] [-d N] [-r N] [-t N]
 * [--json] [--vs PATH [--vs-args 'ARGS']]...`: steady-state speed the way
 * llama-bench measures it.  The model is loaded once; one warm-up run is not
 * counted; then for each repetition, prompt processing of N tokens (one
 * batch, from an empty cache) and generation of N tokens one at a time (from
 * an empty cache, or after -d tokens of context brought in untimed).
 * Medians, min and max of tok/s.  Memory read bandwidth is
 * measured in the same run so decode speed can be read as a fraction of
 * the bandwidth limit (weight bytes per token / bandwidth).
 *
 * With --vs, other engines are measured beside dormant: each PATH is a
 * llama-bench-compatible program (cli_peer.c) run as a child process, and
 * -r counts rounds, each a bandwidth probe, one dormant repetition, then
 * one run of each peer in the order given (`-r 1` each), so that every
 * engine sees the machine in the same state on average.  The table gives
 * each engine's medians over the rounds, dormant's speed divided by each
 * engine's, and decode's weight bytes per second as a fraction of the
 * bandwidth probed in the same round (median over the rounds; every engine
 * is charged the bytes of dormant's weights of the same file).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "cli/cli.h"
#include "cli/cli_model.h"
#include "cli/cli_peer.h"

#define SPEED_PEERS_MAX 8

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

/* Generation of n tokens one at a time after `depth` positions of context:
 * ids[0..depth) are brought into the cache first (not timed; what an
 * earlier repetition left there is reused), then ids[depth..depth + n) are
 * decoded and timed. */
static int run_tg(struct cli_model *cm, const int32_t *ids, int depth, int batch, int n, float *lg,
		  double *tps, struct dm_err *err)
{
	double t0;
	int rc, at = 0;
	if (depth == 0)
		model_ctx_reset(cm->ctx);
	else
		at = model_ctx_reuse(cm->ctx, ids, depth + 1);
	while (at < depth) {
		int step = depth - at < batch ? depth - at : batch;
		if ((rc = model_decode(cm->ctx, ids + at, step, lg, false, err)))
			return rc;
		at += step;
	}
	t0 = cli_now();
	for (int i = 0; i < n; i++)
		if ((rc = model_decode(cm->ctx, ids + depth + i, 1, lg, false, err)))
			return rc;
	*tps = n / (cli_now() - t0);
	return 0;
}

static void json_list(const double *v, long n)
{
	putchar('[');
	for (long i = 0; i < n; i++)
		printf("%s%.3f", i ? "," : "", v[i]);
	putchar(']');
}

/* Median of v[0..n) without reordering v; min and max into lo, hi. */
static double median_of(const double *v, long n, double *lo, double *hi)
{
	double t[1000], m;
	memcpy(t, v, (size_t)n * sizeof *t);
	m = cli_median(t, (int)n);
	if (lo)
		*lo = t[0];
	if (hi)
		*hi = t[n - 1];
	return m;
}

struct speed_opts {
	const char *path;
	long n_prompt, n_gen, depth, reps;
	int batch; /* the context's batch: the depth is brought in this many tokens at a time */
	bool json;
	size_t bw_bytes;
	double vs_timeout;
	struct cli_peer *peers;
	int n_peers;
};

/* The --vs comparison: rounds of probe, dormant, each peer (see the top of
 * the file).  Engine 0 is dormant, engine k the peer k - 1. */
static int speed_vs(struct cli_model *cm, const struct speed_opts *o, const int32_t *ids, float *lg)
{
	int n_eng = 1 + o->n_peers, rc = 0;
	long R = o->reps;
	double *bw = calloc((size_t)R, sizeof *bw);
	double *pp = calloc((size_t)(R * n_eng), sizeof *pp), *tg = calloc((size_t)(R * n_eng), sizeof *tg);
	double *frac = calloc((size_t)R, sizeof *frac);
	double wb = (double)cm->m->weight_bytes, bw_med, bw_lo, bw_hi;
	double pp_med[SPEED_PEERS_MAX + 1], tg_med[SPEED_PEERS_MAX + 1], fr_med[SPEED_PEERS_MAX + 1];
	double pp_lo[SPEED_PEERS_MAX + 1], pp_hi[SPEED_PEERS_MAX + 1], tg_lo[SPEED_PEERS_MAX + 1],
		tg_hi[SPEED_PEERS_MAX + 1];
	struct dm_err err;

	if (!bw || !pp || !tg || !frac) {
		rc = cli_fail("bench speed: out of memory");
		goto out;
	}
	for (long r = 0; r < R; r++) {
		bw[r] = bench_bandwidth(cm->pool, 3, o->bw_bytes);
		if (!(bw[r] > 0)) {
			rc = cli_fail("bench speed: cannot allocate %zu MiB for the bandwidth probe (--bw-mib)",
				      o->bw_bytes >> 20);
			goto out;
		}
		fprintf(stderr, "bench speed: round %ld/%ld: bandwidth %.1f GB/s\n", r + 1, R, bw[r]);
		if ((o->n_prompt && run_pp(cm, ids, (int)o->n_prompt, lg, &pp[r], &err)) ||
		    (o->n_gen && run_tg(cm, ids + o->n_prompt, (int)o->depth, o->batch, (int)o->n_gen, lg, &tg[r],
					     &err))) {
			rc = cli_fail("%s: %s", o->path, err.msg);
			goto out;
		}
		fprintf(stderr, "bench speed: round %ld/%ld: dormant pp %.2f tg %.2f tok/s\n", r + 1, R, pp[r],
			tg[r]);
		for (int k = 0; k < o->n_peers; k++) {
			double *p = &pp[(k + 1) * R + r], *t = &tg[(k + 1) * R + r];
			if (cli_peer_run(&o->peers[k], o->path, o->n_prompt, o->n_gen, o->depth, cm->n_threads,
					 o->vs_timeout, p, t, &err)) {
				rc = cli_fail("bench speed: %s", err.msg);
				goto out;
			}
			fprintf(stderr, "bench speed: round %ld/%ld: %s pp %.2f tg %.2f tok/s\n", r + 1, R,
				o->peers[k].name, *p, *t);
		}
	}
	bw_med = median_of(bw, R, &bw_lo, &bw_hi);
	for (int k = 0; k < n_eng; k++) {
		pp_med[k] = median_of(pp + k * R, R, &pp_lo[k], &pp_hi[k]);
		tg_med[k] = median_of(tg + k * R, R, &tg_lo[k], &tg_hi[k]);
		/* decode's weight bytes per second over the bandwidth of its round */
		for (long r = 0; r < R; r++)
			frac[r] = tg[k * R + r] * wb / (bw[r] * 1e9);
		fr_med[k] = median_of(frac, R, NULL, NULL);
	}
	if (o->json) {
		printf("{\"model\":");
		cli_json_str(stdout, o->path, strlen(o->path));
		printf(",\"n_prompt\":%ld,\"n_gen\":%ld,\"depth\":%ld,\"threads\":%d,\"rounds\":%ld,"
		       "\"isa\":\"%s\",\"weight_bytes\":%.0f,\"bandwidth_gb_s\":%.3f,\"bandwidth_gb_s_rounds\":",
		       o->n_prompt, o->n_gen, o->depth, cm->n_threads, R, kern_isa_name(cm->ctx->isa), wb, bw_med);
		json_list(bw, R);
		printf(",\"engines\":[");
		for (int k = 0; k < n_eng; k++) {
			const char *name = k ? o->peers[k - 1].name : "dormant";
			printf("%s{\"name\":", k ? "," : "");
			cli_json_str(stdout, name, strlen(name));
			printf(",\"path\":");
			if (k)
				cli_json_str(stdout, o->peers[k - 1].path, strlen(o->peers[k - 1].path));
			else
				printf("null");
			printf(",\"pp_tok_s\":%.3f,\"pp_tok_s_rounds\":", pp_med[k]);
			json_list(pp + k * R, R);
			printf(",\"tg_tok_s\":%.3f,\"tg_tok_s_rounds\":", tg_med[k]);
			json_list(tg + k * R, R);
			printf(",\"tg_fraction_of_bandwidth\":%.4f,\"dormant_pp_ratio\":%.4f,"
			       "\"dormant_tg_ratio\":%.4f}",
			       fr_med[k], pp_med[k] > 0 ? pp_med[0] / pp_med[k] : 0.0,
			       tg_med[k] > 0 ? tg_med[0] / tg_med[k] : 0.0);
		}
		printf("]}\n");
		goto out;
	}
	printf("model:      %s (%.1f MiB of weights)\n", o->path, wb / 1048576.0);
	printf("threads:    %d, ISA %s, %ld rounds alternated (bandwidth probe, dormant, each peer); "
	       "median [min, max]\n", cm->n_threads, kern_isa_name(cm->ctx->isa), R);
	printf("bandwidth:  %.1f GB/s [%.1f, %.1f]\n", bw_med, bw_lo, bw_hi);
	{
		char hp[32], ht[32];
		snprintf(hp, sizeof hp, "pp%ld tok/s", o->n_prompt);
		if (o->depth)
			snprintf(ht, sizeof ht, "tg%ld@d%ld tok/s", o->n_gen, o->depth);
		else
			snprintf(ht, sizeof ht, "tg%ld tok/s", o->n_gen);
		printf("%-28s %24s %24s %8s %12s %12s\n", "engine", hp, ht, "tg of bw", "dormant÷ pp",
		       "dormant÷ tg");
	}
	for (int k = 0; k < n_eng; k++) {
		char cp[48], ct[48], rp[16], rt[16];
		snprintf(cp, sizeof cp, "%.2f [%.2f, %.2f]", pp_med[k], pp_lo[k], pp_hi[k]);
		snprintf(ct, sizeof ct, "%.2f [%.2f, %.2f]", tg_med[k], tg_lo[k], tg_hi[k]);
		snprintf(rp, sizeof rp, "%.2f", pp_med[k] > 0 ? pp_med[0] / pp_med[k] : 0.0);
		snprintf(rt, sizeof rt, "%.2f", tg_med[k] > 0 ? tg_med[0] / tg_med[k] : 0.0);
		printf("%-28s %24s %24s %7.0f%% %12s %12s\n", k ? o->peers[k - 1].name : "dormant",
		       o->n_prompt ? cp : "-", o->n_gen ? ct : "-", 100 * fr_med[k], o->n_prompt ? rp : "-",
		       o->n_gen ? rt : "-");
	}
out:
	free(bw);
	free(pp);
	free(tg);
	free(frac);
	return rc;
}

#define SPEED_USAGE                                                                                        \
	"usage: dormant bench speed MODEL [-p N] [-n N] [-d N] [-r N] [-t N] [--json]\n"                   \
	"         [--vs PATH [--vs-args 'ARGS']]... [--vs-timeout S] [--bw-mib N]\n"                        \
	"  -p N, -n N        prompt tokens (128) and generated tokens (32)\n"                               \
	"  -d N              generate after N tokens of context (0; brought in untimed); the peers\n"      \
	"                    are run with -n 0 -gp N,n (ik_llama.cpp's llama-bench: tg n at depth N)\n"    \
	"  -r N              repetitions (5); with --vs, alternated rounds\n"                               \
	"  -t N              threads (physical cores); the peers get the same\n"                           \
	"  --vs PATH         also measure a llama-bench-compatible program (repeatable), run as\n"          \
	"                    PATH -m MODEL -p N -n N -t N -r 1 -o json; never downloaded or built\n"      \
	"  --vs-args 'ARGS'  extra arguments for the --vs just before it, split on blanks\n"               \
	"                    (e.g. --vs llama-bench --vs-args '-rtr 1')\n"                                  \
	"  --vs-timeout S    a peer run taking longer is killed and is an error (900)\n"                    \
	"  --bw-mib N        the bandwidth probe's buffer (1024 MiB)\n"

int cli_bench_speed(int argc, char **argv)
{
	struct cli_model_opts mo = { 0 };
	struct cli_model cm;
	struct dm_err err;
	struct cli_peer peers[SPEED_PEERS_MAX];
	const char *vs_path[SPEED_PEERS_MAX], *vs_args[SPEED_PEERS_MAX];
	struct speed_opts so = { .n_prompt = 128, .n_gen = 32, .reps = 5, .bw_bytes = (size_t)1 << 30,
				 .vs_timeout = 900, .peers = peers };
	long v;
	double *pp = NULL, *tg = NULL, bw, pp_med, tg_med, pp_min, pp_max, tg_min, tg_max;
	int32_t *ids = NULL;
	float *lg = NULL;
	int rc = 0, n_vs = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "-p") || !strcmp(a, "-n") || !strcmp(a, "-d") || !strcmp(a, "-r") ||
		    !strcmp(a, "-t")) {
			if (cli_parse_long(a, val, a[1] == 'p' || a[1] == 'n' || a[1] == 'd' ? 0 : 1, 1 << 16, &v))
				return 2;
			if (a[1] == 'd')
				so.depth = v;
			else if (a[1] == 'p')
				so.n_prompt = v;
			else if (a[1] == 'n')
				so.n_gen = v;
			else if (a[1] == 'r')
				so.reps = v;
			else
				mo.n_threads = (int)v;
			i++;
		} else if (!strcmp(a, "--json")) {
			so.json = true;
		} else if (!strcmp(a, "--vs")) {
			if (!val || !*val)
				return cli_fail("bench speed: --vs needs the path of a llama-bench-compatible program"), 2;
			if (n_vs == SPEED_PEERS_MAX)
				return cli_fail("bench speed: more than %d --vs", SPEED_PEERS_MAX), 2;
			vs_path[n_vs] = val;
			vs_args[n_vs++] = NULL;
			i++;
		} else if (!strcmp(a, "--vs-args")) {
			if (!n_vs)
				return cli_fail("bench speed: --vs-args applies to the --vs before it, and there is none"), 2;
			if (vs_args[n_vs - 1])
				return cli_fail("bench speed: --vs-args given twice for --vs %s", vs_path[n_vs - 1]), 2;
			if (!val)
				return cli_fail("bench speed: --vs-args needs its arguments (one word, quoted)"), 2;
			vs_args[n_vs - 1] = val;
			i++;
		} else if (!strcmp(a, "--vs-timeout")) {
			if (cli_parse_long(a, val, 1, 86400, &v))
				return 2;
			so.vs_timeout = (double)v;
			i++;
		} else if (!strcmp(a, "--bw-mib")) {
			if (cli_parse_long(a, val, 16, 1 << 16, &v))
				return 2;
			so.bw_bytes = (size_t)v << 20;
			i++;
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			printf("%s", SPEED_USAGE);
			return 0;
		} else if (a[0] == '-' && a[1]) {
			return cli_fail("bench speed: unknown option '%s'", a), 2;
		} else if (!so.path) {
			so.path = a;
		} else {
			return cli_fail("bench speed: more than one MODEL"), 2;
		}
	}
	if (!so.path)
		return fprintf(stderr, "%s", SPEED_USAGE), 2;
	if (so.reps > 1000)
		return cli_fail("bench speed: -r %ld is too many", so.reps), 2;
	/* every peer is checked before the model is loaded */
	for (int k = 0; k < n_vs; k++)
		if (cli_peer_init(&peers[k], vs_path[k], vs_args[k], &err))
			return cli_fail("bench speed: %s", err.msg);
	so.n_peers = n_vs;
	if (so.depth && !so.n_gen)
		return cli_fail("bench speed: -d %ld needs generated tokens (-n)", so.depth), 2;
	mo.n_ctx = (int32_t)(so.n_prompt > so.depth + so.n_gen ? so.n_prompt : so.depth + so.n_gen) + 1;
	so.batch = (int)(so.depth < 512 ? so.depth : 512);
	if (so.batch < so.n_prompt)
		so.batch = (int)so.n_prompt;
	mo.n_batch = so.batch > 0 ? so.batch : 1;
	if (cli_model_open(&cm, so.path, &mo, &err))
		return cli_fail("%s", err.msg);
	pp = calloc((size_t)so.reps, sizeof *pp);
	tg = calloc((size_t)so.reps, sizeof *tg);
	ids = malloc((size_t)(so.n_prompt + so.depth + so.n_gen + 1) * sizeof *ids);
	lg = malloc((size_t)cm.m->hp.n_vocab * sizeof *lg);
	if (!pp || !tg || !ids || !lg) {
		rc = cli_fail("bench speed: out of memory");
		goto out;
	}
	fill_ids(ids, (int)(so.n_prompt + so.depth + so.n_gen), cm.m->hp.n_vocab, 12345);
	/* warm-up, not counted: pages of the weights come in, caches settle */
	if ((so.n_prompt && run_pp(&cm, ids, (int)so.n_prompt, lg, &pp[0], &err)) ||
	    (so.n_gen && run_tg(&cm, ids + so.n_prompt, (int)so.depth, so.batch,
				(int)(so.n_gen < 4 ? so.n_gen : 4), lg, &tg[0], &err))) {
		rc = cli_fail("%s: %s", so.path, err.msg);
		goto out;
	}
	if (n_vs) {
		rc = speed_vs(&cm, &so, ids, lg);
		goto out;
	}
	bw = bench_bandwidth(cm.pool, 5, so.bw_bytes);
	for (long r = 0; r < so.reps; r++) {
		if (!isatty(2) || so.json)
			;
		else
			fprintf(stderr, "\rbench speed: repetition %ld/%ld", r + 1, so.reps);
		if ((so.n_prompt && run_pp(&cm, ids, (int)so.n_prompt, lg, &pp[r], &err)) ||
		    (so.n_gen && run_tg(&cm, ids + so.n_prompt, (int)so.depth, so.batch, (int)so.n_gen, lg, &tg[r],
					     &err))) {
			rc = cli_fail("%s: %s", so.path, err.msg);
			goto out;
		}
	}
	if (isatty(2) && !so.json)
		fputc('\n', stderr);
	pp_med = cli_median(pp, (int)so.reps);
	pp_min = pp[0];
	pp_max = pp[so.reps - 1];
	tg_med = cli_median(tg, (int)so.reps);
	tg_min = tg[0];
	tg_max = tg[so.reps - 1];
	{
		/* bytes read per generated token: every weight once (the output
		 * matrix included; tied embeddings counted once) */
		double wb = (double)cm.m->weight_bytes;
		double limit = bw * 1e9 / wb; /* tok/s if decode were pure weight streaming */
		if (so.json) {
			printf("{\"model\":");
			cli_json_str(stdout, so.path, strlen(so.path));
			printf(",\"n_prompt\":%ld,\"n_gen\":%ld,\"depth\":%ld,\"threads\":%d,\"reps\":%ld,"
			       "\"isa\":\"%s\","
			       "\"pp_tok_s\":%.3f,\"pp_tok_s_min\":%.3f,\"pp_tok_s_max\":%.3f,"
			       "\"tg_tok_s\":%.3f,\"tg_tok_s_min\":%.3f,\"tg_tok_s_max\":%.3f,"
			       "\"weight_bytes\":%.0f,\"bandwidth_gb_s\":%.3f,\"tg_limit_tok_s\":%.3f,"
			       "\"tg_fraction_of_limit\":%.4f}\n",
			       so.n_prompt, so.n_gen, so.depth, cm.n_threads, so.reps, kern_isa_name(cm.ctx->isa), pp_med,
			       pp_min, pp_max, tg_med, tg_min, tg_max, wb, bw, limit,
			       limit > 0 ? tg_med / limit : 0.0);
		} else {
			printf("model:      %s (%.1f MiB of weights)\n", so.path, wb / 1048576.0);
			printf("threads:    %d, ISA %s, %ld repetitions (median [min, max])\n", cm.n_threads,
			       kern_isa_name(cm.ctx->isa), so.reps);
			if (so.n_prompt)
				printf("pp%-4ld     %8.2f tok/s [%.2f, %.2f]\n", so.n_prompt, pp_med, pp_min, pp_max);
			if (so.n_gen && so.depth)
				printf("at depth:   %ld tokens of context before generation\n", so.depth);
			if (so.n_gen)
				printf("tg%-4ld     %8.2f tok/s [%.2f, %.2f]  = %.0f%% of the bandwidth limit "
				       "(%.2f tok/s at %.1f GB/s)\n",
				       so.n_gen, tg_med, tg_min, tg_max, 100.0 * tg_med / limit, limit, bw);
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

/*
 * cli/speed — `dormant bench speed MODEL [-p N] [-n N] [-d N] [-r N] [-t N]
 * [--json] [--vs PATH [--vs-args 'ARGS']]...`: the arguments, the model
 * load and the table (or one JSON object).  What is measured and how is
 * src/bench/speed.c (bench_speed) and src/bench/peer.c (the --vs programs).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "cli/cli.h"
#include "cli/cli_model.h"

static void json_list(const double *v, long n)
{
	putchar('[');
	for (long i = 0; i < n; i++)
		printf("%s%.3f", i ? "," : "", v[i]);
	putchar(']');
}

/* The --vs table or JSON: every engine's medians over the rounds. */
static void print_vs(const struct bench_speed_opts *o, const struct bench_speed_result *s, bool json)
{
	const long R = s->reps;
	if (json) {
		printf("{\"model\":");
		cli_json_str(stdout, o->path, strlen(o->path));
		printf(",\"n_prompt\":%ld,\"n_gen\":%ld,\"depth\":%ld,\"threads\":%d,\"rounds\":%ld,"
		       "\"isa\":\"%s\",\"weight_bytes\":%.0f,\"bandwidth_gb_s\":%.3f,\"bandwidth_gb_s_rounds\":",
		       o->n_prompt, o->n_gen, o->depth, s->threads, R, kern_isa_name(s->isa), s->weight_bytes,
		       s->bw_med);
		json_list(s->bw, R);
		printf(",\"engines\":[");
		for (int k = 0; k < s->n_eng; k++) {
			const struct bench_speed_engine *g = &s->eng[k];
			const char *name = k ? o->peers[k - 1].name : "dormant";
			printf("%s{\"name\":", k ? "," : "");
			cli_json_str(stdout, name, strlen(name));
			printf(",\"path\":");
			if (k)
				cli_json_str(stdout, o->peers[k - 1].path, strlen(o->peers[k - 1].path));
			else
				printf("null");
			printf(",\"pp_tok_s\":%.3f,\"pp_tok_s_rounds\":", g->pp);
			json_list(s->pp + k * R, R);
			printf(",\"tg_tok_s\":%.3f,\"tg_tok_s_rounds\":", g->tg);
			json_list(s->tg + k * R, R);
			printf(",\"tg_fraction_of_bandwidth\":%.4f,\"dormant_pp_ratio\":%.4f,"
			       "\"dormant_tg_ratio\":%.4f}",
			       g->tg_of_bw, g->pp_ratio, g->tg_ratio);
		}
		printf("]}\n");
		return;
	}
	printf("model:      %s (%.1f MiB of weights)\n", o->path, s->weight_bytes / 1048576.0);
	printf("threads:    %d, ISA %s, %ld rounds alternated (bandwidth probe, dormant, each peer); "
	       "median [min, max]\n", s->threads, kern_isa_name(s->isa), R);
	printf("bandwidth:  %.1f GB/s [%.1f, %.1f]\n", s->bw_med, s->bw_lo, s->bw_hi);
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
	for (int k = 0; k < s->n_eng; k++) {
		const struct bench_speed_engine *g = &s->eng[k];
		char cp[48], ct[48], rp[16], rt[16];
		snprintf(cp, sizeof cp, "%.2f [%.2f, %.2f]", g->pp, g->pp_lo, g->pp_hi);
		snprintf(ct, sizeof ct, "%.2f [%.2f, %.2f]", g->tg, g->tg_lo, g->tg_hi);
		snprintf(rp, sizeof rp, "%.2f", g->pp_ratio);
		snprintf(rt, sizeof rt, "%.2f", g->tg_ratio);
		printf("%-28s %24s %24s %7.0f%% %12s %12s\n", k ? o->peers[k - 1].name : "dormant",
		       o->n_prompt ? cp : "-", o->n_gen ? ct : "-", 100 * g->tg_of_bw, o->n_prompt ? rp : "-",
		       o->n_gen ? rt : "-");
	}
}

/* dormant alone: medians [min, max] and decode against the bandwidth limit. */
static void print_alone(const struct bench_speed_opts *o, const struct bench_speed_result *s, bool json)
{
	const struct bench_speed_engine *g = &s->eng[0];
	/* bytes read per generated token: every weight once (the output
	 * matrix included; tied embeddings counted once) */
	const double bw = s->bw[0], limit = bw * 1e9 / s->weight_bytes; /* tok/s if decode were pure weight streaming */
	if (json) {
		printf("{\"model\":");
		cli_json_str(stdout, o->path, strlen(o->path));
		printf(",\"n_prompt\":%ld,\"n_gen\":%ld,\"depth\":%ld,\"threads\":%d,\"reps\":%ld,"
		       "\"isa\":\"%s\","
		       "\"pp_tok_s\":%.3f,\"pp_tok_s_min\":%.3f,\"pp_tok_s_max\":%.3f,"
		       "\"tg_tok_s\":%.3f,\"tg_tok_s_min\":%.3f,\"tg_tok_s_max\":%.3f,"
		       "\"weight_bytes\":%.0f,\"bandwidth_gb_s\":%.3f,\"tg_limit_tok_s\":%.3f,"
		       "\"tg_fraction_of_limit\":%.4f}\n",
		       o->n_prompt, o->n_gen, o->depth, s->threads, s->reps, kern_isa_name(s->isa), g->pp, g->pp_lo,
		       g->pp_hi, g->tg, g->tg_lo, g->tg_hi, s->weight_bytes, bw, limit, limit > 0 ? g->tg / limit : 0.0);
		return;
	}
	printf("model:      %s (%.1f MiB of weights)\n", o->path, s->weight_bytes / 1048576.0);
	printf("threads:    %d, ISA %s, %ld repetitions (median [min, max])\n", s->threads, kern_isa_name(s->isa),
	       s->reps);
	if (o->n_prompt)
		printf("pp%-4ld     %8.2f tok/s [%.2f, %.2f]\n", o->n_prompt, g->pp, g->pp_lo, g->pp_hi);
	if (o->n_gen && o->depth)
		printf("at depth:   %ld tokens of context before generation\n", o->depth);
	if (o->n_gen)
		printf("tg%-4ld     %8.2f tok/s [%.2f, %.2f]  = %.0f%% of the bandwidth limit "
		       "(%.2f tok/s at %.1f GB/s)\n",
		       o->n_gen, g->tg, g->tg_lo, g->tg_hi, 100.0 * g->tg / limit, limit, bw);
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
	struct bench_peer peers[BENCH_SPEED_PEERS_MAX];
	const char *vs_path[BENCH_SPEED_PEERS_MAX], *vs_args[BENCH_SPEED_PEERS_MAX];
	struct bench_speed_opts so = { .n_prompt = 128, .n_gen = 32, .reps = 5, .bw_bytes = (size_t)1 << 30,
				       .vs_timeout = 900, .peers = peers };
	struct bench_speed_result res;
	bool json = false;
	long v;
	int n_vs = 0;

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
			json = true;
		} else if (!strcmp(a, "--vs")) {
			if (!val || !*val)
				return cli_fail("bench speed: --vs needs the path of a llama-bench-compatible program"), 2;
			if (n_vs == BENCH_SPEED_PEERS_MAX)
				return cli_fail("bench speed: more than %d --vs", BENCH_SPEED_PEERS_MAX), 2;
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
		if (bench_peer_init(&peers[k], vs_path[k], vs_args[k], &err))
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
	so.progress = isatty(2) && !json;
	if (bench_speed(cm.e, &so, &res, &err)) {
		cli_model_close(&cm);
		return cli_fail("bench speed: %s", err.msg);
	}
	if (n_vs)
		print_vs(&so, &res, json);
	else
		print_alone(&so, &res, json);
	bench_speed_free(&res);
	cli_model_close(&cm);
	return 0;
}

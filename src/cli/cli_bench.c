/*
 * cli/bench — `dormant bench SCENARIO [options]`: benchmarks (never tests).
 *
 * Scenarios `speed` (cli_speed.c) and the lifecycle suite (cold, warm,
 * context, ..., all: src/bench/, arguments in cli_bench_life.c) live in
 * their own files.
 *
 * Scenario `kernels` [--threads N (2)] [--runs R (7)] [--isa ref|avx2|avx512]
 * [--types Q4_0,Q4_K,...]: the arguments here, the measuring in
 * src/bench/kernels.c (bench_kernels).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "bench/bench.h"
#include "cli/cli.h"
#include "kern/kern.h"

static int kernels_cmd(int argc, char **argv)
{
	struct bench_kernels_opts o = {
		.threads = 2, .runs = 7, .isa = kern_isa_best(),
		.types = "F32,F16,BF16,Q4_0,Q4_1,Q5_0,Q5_1,Q8_0,Q2_K,Q3_K,Q4_K,Q5_K,Q6_K",
	};
	struct dm_err err;

	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			return cli_fail("bench: %s needs a value", argv[i]), 2;
		if (!strcmp(argv[i], "--threads"))
			o.threads = atoi(v);
		else if (!strcmp(argv[i], "--runs"))
			o.runs = atoi(v);
		else if (!strcmp(argv[i], "--types"))
			o.types = v;
		else if (!strcmp(argv[i], "--isa")) {
			int isa = kern_isa_from_name(v);
			if (isa < 0)
				return cli_fail("bench: unknown ISA '%s'", v), 2;
			o.isa = (enum kern_isa)isa;
		} else
			return cli_fail("bench: unknown option '%s'", argv[i]), 2;
		i++;
	}
	if (o.runs < 1 || o.runs > 64 || o.threads < 1)
		return cli_fail("bench: --runs 1..64, --threads >= 1"), 2;
	if (bench_kernels(&o, stdout, &err))
		return cli_fail("bench: %s", err.msg);
	return 0;
}

int cli_bench(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		FILE *f = argc < 2 ? stderr : stdout;
		fprintf(f, "usage: dormant bench kernels [--threads N] [--runs R] [--isa I] [--types T,...]\n"
			   "       dormant bench speed MODEL [-p N] [-n N] [-d N] [-r N] [-t N] [--json] [--vs PATH [--vs-args 'ARGS']]...\n"
			   "                                      beside llama-bench-compatible programs ('dormant bench speed --help')\n"
			   "       dormant bench server MODEL [--runs N] [--json FILE]   HTTP overhead vs in-process\n"
			   "       dormant bench quantize MODEL [--types Q8_0,Q4_0,Q4_K] [--threads N] [--runs R] [--json]   quantize-on-load throughput\n"
			   "       dormant bench rag EMBED_MODEL RERANK_MODEL [--runs N] [--threads T] [--json]   batched vs one-by-one embed and rerank\n");
		bench_usage(f);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "kernels"))
		return kernels_cmd(argc - 1, argv + 1);
	if (!strcmp(argv[1], "speed"))
		return cli_bench_speed(argc - 1, argv + 1);
	if (!strcmp(argv[1], "server"))
		return cli_bench_server(argc - 1, argv + 1);
	if (!strcmp(argv[1], "rag"))
		return cli_bench_rag(argc - 1, argv + 1);
	if (!strcmp(argv[1], "quantize"))
		return cli_bench_quant(argc - 1, argv + 1);
	if (bench_is_scenario(argv[1]))
		return cli_bench_life(argc - 1, argv + 1);
	return cli_fail("bench: unknown scenario '%s' (kernels, speed, quantize, rag, cold, warm, context, max-tokens, "
			"memory, warmup, threads, batch, ctx, policies, all; 'dormant bench --help')",
			argv[1]),
	       2;
}

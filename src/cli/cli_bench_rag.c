/*
 * cli/bench_rag — `dormant bench rag EMBED_MODEL RERANK_MODEL [--runs R]
 * [--threads T] [--json]`: the arguments and the table (or one JSON
 * object); the measuring is src/bench/rag.c (bench_rag).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "cli/cli.h"

int cli_bench_rag(int argc, char **argv)
{
	const char *embed = NULL, *rerank = NULL;
	long runs = 5, threads = 2;
	int json = 0;
	struct bench_rag_result res;
	struct dm_err err;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if ((!strcmp(a, "--runs") || !strcmp(a, "--threads")) && v) {
			char *end;
			long n = strtol(v, &end, 10);
			if (*end || n < 1 || n > 1000)
				return cli_fail("bench rag: %s '%s' is not a number from 1 to 1000", a, v), 2;
			*(!strcmp(a, "--runs") ? &runs : &threads) = n;
			i++;
		} else if (!strcmp(a, "--json")) {
			json = 1;
		} else if (a[0] != '-' && !embed) {
			embed = a;
		} else if (a[0] != '-' && !rerank) {
			rerank = a;
		} else {
			return cli_fail("bench rag: unknown argument '%s'", a), 2;
		}
	}
	if (!embed || !rerank)
		return cli_fail("usage: dormant bench rag EMBED_MODEL RERANK_MODEL [--runs R (5)] [--threads T (2)] [--json]"),
		       2;
	if (bench_rag(embed, rerank, (int)runs, (int)threads, &res, &err))
		return cli_fail("bench rag: %s", err.msg);
	if (json) {
		printf("{\"embed_model\": ");
		cli_json_str(stdout, embed, strlen(embed));
		printf(", \"rerank_model\": ");
		cli_json_str(stdout, rerank, strlen(rerank));
		printf(", \"threads\": %ld, \"runs\": %ld, \"texts\": %d, "
		       "\"dim\": %zu, \"embed_batch_per_s\": %.1f, \"embed_single_per_s\": %.1f, "
		       "\"rerank_batch_pairs_per_s\": %.1f, \"rerank_single_pairs_per_s\": %.1f}\n",
		       threads, runs, BENCH_RAG_TEXTS, res.dim, res.embed_batch_per_s, res.embed_single_per_s,
		       res.rerank_batch_per_s, res.rerank_single_per_s);
	} else {
		printf("bench rag: %d texts, %ld threads, median of %ld runs (dim %zu)\n", BENCH_RAG_TEXTS, threads,
		       runs, res.dim);
		printf("  %-28s %10s %10s %8s\n", "", "one call", "one each", "speedup");
		printf("  %-28s %10.1f %10.1f %7.2fx\n", "embeddings / s", res.embed_batch_per_s,
		       res.embed_single_per_s, res.embed_batch_per_s / res.embed_single_per_s);
		printf("  %-28s %10.1f %10.1f %7.2fx\n", "rerank pairs / s", res.rerank_batch_per_s,
		       res.rerank_single_per_s, res.rerank_batch_per_s / res.rerank_single_per_s);
	}
	return 0;
}

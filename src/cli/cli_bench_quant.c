/*
 * cli/bench_quant — `dormant bench quantize MODEL [--types T,...]
 * [--threads N] [--runs R] [--json]`: the arguments and the table (or one
 * JSON object); the measuring is src/bench/quant.c (bench_quant).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "cli/cli.h"
#include "kern/kern.h"

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
			if (cli_parse_long(a, v, 1, a[2] == 't' ? 1024 : BENCH_QUANT_RUNS_MAX,
					   a[2] == 't' ? &threads : &runs))
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
	if (json) {
		printf("{\"model\":");
		cli_json_str(stdout, path, strlen(path));
		printf(",\"threads\":%ld,\"isa\":\"%s\",\"runs\":%ld,\"types\":[", threads,
		       kern_isa_name(kern_isa_best()), runs);
	} else {
		printf("dormant bench quantize: %s, %ld threads, ISA %s, median of %ld loads after one uncounted\n"
		       "%-6s %16s %12s %14s %14s %12s\n",
		       path, threads, kern_isa_name(kern_isa_best()), runs, "type", "weights", "quantize s",
		       "Mweights/s", "whole load s", "load CPU s");
	}
	fflush(stdout);
	for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		struct bench_quant_row row;
		if (bench_quant(path, t, (int)threads, (int)runs, &row, &err)) {
			if (json)
				printf("]}\n");
			return cli_fail("bench quantize: %s", err.msg);
		}
		if (json)
			printf("%s{\"type\":\"%s\",\"weights\":%llu,\"quantize_s\":%.6f,\"weights_per_s\":%.0f,"
			       "\"load_s\":%.6f,\"load_cpu_s\":%.6f}",
			       first ? "" : ",", row.type, (unsigned long long)row.weights, row.quantize_s,
			       (double)row.weights / row.quantize_s, row.load_s, row.load_cpu_s);
		else
			printf("%-6s %16llu %12.3f %14.1f %14.3f %12.3f\n", row.type, (unsigned long long)row.weights,
			       row.quantize_s, (double)row.weights / row.quantize_s / 1e6, row.load_s, row.load_cpu_s);
		fflush(stdout);
		first = false;
	}
	if (json)
		printf("]}\n");
	return 0;
}

/* cli/bench_life — the arguments of `dormant bench SCENARIO[,...]|all MODEL`
 * (the lifecycle suite of src/bench/) and of `dormant bench server`. */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "cli/cli.h"

static int parse_mode(const char *s, enum mgr_load_mode *m)
{
	for (int i = 0; i < 4; i++)
		if (!strcmp(s, mgr_mode_name((enum mgr_load_mode)i))) {
			*m = (enum mgr_load_mode)i;
			return 0;
		}
	return -1;
}

static int parse_args(struct bench_opts *o, int argc, char **argv)
{
	long v;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--quick")) {
			o->quick = true;
		} else if (!strcmp(a, "--verbose")) {
			o->verbose = true;
		} else if (!strcmp(a, "--runs") || !strcmp(a, "-r")) {
			if (cli_parse_long(a, val, 1, 1000, &v))
				return -1;
			o->runs = (int)v;
			i++;
		} else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
			if (cli_parse_long(a, val, 1, 1024, &v))
				return -1;
			o->n_threads = (int)v;
			i++;
		} else if (!strcmp(a, "--ctx")) {
			if (cli_parse_long(a, val, 16, 1 << 20, &v))
				return -1;
			o->n_ctx = (int32_t)v;
			i++;
		} else if (!strcmp(a, "--batch")) {
			if (cli_parse_long(a, val, 1, 1 << 16, &v))
				return -1;
			o->n_batch = (int32_t)v;
			i++;
		} else if (!strcmp(a, "-p")) {
			if (cli_parse_long(a, val, 1, 1 << 20, &v))
				return -1;
			o->n_prompt = (int)v;
			i++;
		} else if (!strcmp(a, "-n")) {
			if (cli_parse_long(a, val, 1, 1 << 20, &v))
				return -1;
			o->n_gen = (int)v;
			i++;
		} else if (!strcmp(a, "--mode")) {
			if (!val || parse_mode(val, &o->mode))
				return cli_fail("bench: --mode must be mmap, read, mlock or prefetch"), -1;
			i++;
		} else if (!strcmp(a, "--json") || !strcmp(a, "--report") || !strcmp(a, "--from")) {
			if (!val)
				return cli_fail("bench: %s needs a value", a), -1;
			if (a[2] == 'j')
				o->json_path = val;
			else if (a[2] == 'r')
				o->report_dir = val;
			else
				o->from_json = val;
			i++;
		} else if (a[0] == '-' && a[1]) {
			return cli_fail("bench: unknown option '%s'", a), -1;
		} else if (!o->model) {
			o->model = a;
		} else {
			return cli_fail("bench: more than one MODEL ('%s', '%s')", o->model, a), -1;
		}
	}
	return 0;
}

int cli_bench_life(int argc, char **argv)
{
	struct bench_opts o = { .n_prompt = 32, .n_gen = 32, .mode = MGR_MODE_MMAP, .scenarios = argv[0] };
	struct dm_err e;

	if (parse_args(&o, argc, argv))
		return 2;
	if (o.from_json) {
		/* draw a saved run again: no model, nothing measured */
		if (!o.report_dir)
			return cli_fail("bench: --from needs --report DIR"), 2;
		if (bench_redraw(o.from_json, o.report_dir, &e))
			return cli_fail("%s", e.msg);
		printf("report: %s/index.html\n", o.report_dir);
		return 0;
	}
	if (!o.model) {
		bench_usage(stderr);
		return 2;
	}
	if (o.quick) {
		/* fewer tokens per request too, unless asked for */
		bool has_n = false;
		for (int i = 1; i < argc; i++)
			has_n |= !strcmp(argv[i], "-n");
		if (!has_n)
			o.n_gen = 8;
	}
	o.out = stdout;
	if (bench_run(&o, &e))
		return cli_fail("%s", e.msg);
	return 0;
}

int cli_bench_server(int argc, char **argv)
{
	const char *model = NULL, *json_path = NULL;
	long runs = 200, threads = 0;
	json_t *j;
	struct dm_err e;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--runs")) {
			if (cli_parse_long("--runs", i + 1 < argc ? argv[i + 1] : NULL, 5, 100000, &runs))
				return 1;
			i++;
		} else if (!strcmp(argv[i], "--threads")) {
			if (cli_parse_long("--threads", i + 1 < argc ? argv[i + 1] : NULL, 0, 1024, &threads))
				return 1;
			i++;
		} else if (!strcmp(argv[i], "--json") && i + 1 < argc) {
			json_path = argv[++i];
		} else if (argv[i][0] != '-' && !model) {
			model = argv[i];
		} else {
			model = NULL;
			break;
		}
	}
	if (!model) {
		fputs("usage: dormant bench server MODEL [--runs N] [--threads N] [--json FILE]\n", stderr);
		return 2;
	}
	j = json_pack("{s:s}", "scenario", "server");
	rc = bench_server_measure(model, runs, threads, true, stdout, j, &e);
	if (rc)
		rc = cli_fail("%s", e.msg);
	if (!rc && json_path && json_dump_file(j, json_path, JSON_INDENT(2)))
		rc = cli_fail("%s: cannot write", json_path);
	json_decref(j);
	return rc;
}

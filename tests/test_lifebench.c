/*
 * tests/lifebench — `dormant bench SCENARIO MODEL`, the lifecycle benchmark
 * suite, run as a user runs it: every scenario in --quick mode on the tiny
 * synthetic model (the RAG day of `policies` adds two synthetic encoders
 * of its own), through the CLI, with --json and --report.  The JSON is
 * parsed (jansson) and its documented fields checked for sane values (not
 * for speed: nothing here is timed); the report's HTML and SVG files are
 * checked for well-formedness by a small XML checker (which is itself shown
 * to reject a broken document), and rendered by headless Chromium when it
 * is installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ctype.h>
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tutil.h"
#include "txml.h"

/* AddressSanitizer keeps freed memory in quarantine and maps shadow memory:
 * RSS figures mean nothing there, so the memory comparisons are skipped. */
#if defined(__SANITIZE_ADDRESS__)
#define MEASURE_RSS 0
#else
#define MEASURE_RSS 1
#endif

static char model[512], json_path[512], report_dir[512];
static json_t *root;      /* from `bench all --quick` */
static char *all_stdout;

static int setup(void **state)
{
	json_error_t je;
	int st;
	(void)state;
	snprintf(model, sizeof model, "%s", tu_tmp_path("tiny.gguf"));
	snprintf(json_path, sizeof json_path, "%s", tu_tmp_path("all.json"));
	snprintf(report_dir, sizeof report_dir, "%s", tu_tmp_path("report"));
	if (tu_system("%s synth --preset tiny --type Q8_0 --seed 3 -o %s", tu_dormant(), model) != 0)
		return -1;
	all_stdout = tu_capture(&st, "%s bench all %s --quick --json %s --report %s", tu_dormant(), model,
				json_path, report_dir);
	if (!all_stdout || st != 0) {
		fprintf(stderr, "bench all exited with %d:\n%s\n", st, all_stdout ? all_stdout : "");
		return -1;
	}
	root = json_load_file(json_path, 0, &je);
	if (!root) {
		fprintf(stderr, "%s:%d: %s\n", json_path, je.line, je.text);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	json_decref(root);
	free(all_stdout);
	return 0;
}

/* ---- JSON helpers ---- */

static const json_t *scen(const char *name)
{
	const json_t *s = json_object_get(json_object_get(root, "scenarios"), name);
	if (!s)
		fail_msg("scenario '%s' missing from the JSON", name);
	return s;
}

static double num(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	if (!json_is_number(v))
		fail_msg("field '%s' missing or not a number", key);
	return json_number_value(v);
}

static const json_t *arr(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	if (!json_is_array(v))
		fail_msg("field '%s' missing or not an array", key);
	return v;
}

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	if (!s)
		fail_msg("field '%s' missing or not a string", key);
	return s;
}

/* The fields every request sample has, with sane values. */
static void check_request(const json_t *s, int max_gen)
{
	double lat = num(s, "latency_s"), ttft = num(s, "ttft_s");
	assert_true(lat > 0 && isfinite(lat));
	assert_true(ttft > 0 && ttft <= lat + 1e-9);
	assert_true(num(s, "prompt_s") > 0);
	assert_true(num(s, "gen_s") >= 0);
	assert_true(num(s, "load_s") >= 0);
	assert_true(num(s, "n_prompt") >= 1);
	assert_true(num(s, "n_gen") >= 1 && num(s, "n_gen") <= max_gen);
	assert_true(num(s, "prefill_tok_s") > 0);
	assert_true(num(s, "tok_s") >= 0 && isfinite(num(s, "tok_s")));
	assert_true(json_is_boolean(json_object_get(s, "cold")));
	str(s, "stop");
}

static int opt_int(const char *key)
{
	return (int)num(json_object_get(root, "options"), key);
}

/* ---- the CLI ---- */

static void test_header(void **state)
{
	const json_t *m = json_object_get(root, "machine"), *md = json_object_get(root, "model");
	(void)state;
	assert_string_equal(str(root, "tool"), "dormant bench");
	assert_true(strlen(str(m, "cpu")) > 0);
	assert_true(num(m, "cores_used") >= 1);
	assert_true(num(m, "ram_bytes") > 0);
	assert_string_equal(str(md, "path"), model);
	assert_int_equal((int)num(md, "n_ctx_train"), 512);
	assert_true(json_is_true(json_object_get(json_object_get(root, "options"), "quick")));
	/* every scenario ran, each with its table on stdout */
	{
		static const char *const names[] = { "cold", "warm", "context", "max-tokens", "memory",
						     "warmup", "threads", "batch", "ctx", "policies", "chat", "server" };
		char head[64];
		for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
			const json_t *s = scen(names[i]);
			assert_true(num(s, "runs") >= 1);
			assert_true(num(s, "elapsed_s") > 0);
			snprintf(head, sizeof head, "== %s:", names[i]);
			assert_non_null(strstr(all_stdout, head));
		}
		assert_int_equal(json_object_size(json_object_get(root, "scenarios")), 12);
	}
}

static void test_server_scenario(void **state)
{
	const json_t *s = scen("server");
	(void)state;
	/* HTTP adds work on top of the library call; start-up is measured */
	assert_true(num(s, "library_ms") > 0);
	assert_true(num(s, "http_ms") > 0);
	assert_true(num(s, "health_ms") > 0);
	assert_true(num(s, "startup_ms") > 0);
	assert_true(num(s, "runs") >= 5);
}

static void test_cli_errors(void **state)
{
	int st;
	char *out;
	(void)state;
	out = tu_capture(&st, "%s bench nosuch %s 2>/dev/null", tu_dormant(), model);
	assert_int_equal(st, 2);
	free(out);
	out = tu_capture(&st, "%s bench warm 2>/dev/null", tu_dormant());
	assert_int_equal(st, 2); /* no MODEL */
	free(out);
	out = tu_capture(&st, "%s bench warm %s --runs 0 2>/dev/null", tu_dormant(), model);
	assert_int_equal(st, 2);
	free(out);
	out = tu_capture(&st, "%s bench warm %s --mode tape 2>/dev/null", tu_dormant(), model);
	assert_int_equal(st, 2);
	free(out);
	out = tu_capture(&st, "%s bench --help", tu_dormant());
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, "policies"));
	assert_non_null(strstr(out, "kernels"));
	free(out);
	out = tu_capture(&st, "%s bench warm %s/missing.gguf 2>&1", tu_dormant(), tu_tmpdir());
	assert_int_equal(st, 1);
	assert_non_null(strstr(out, "missing.gguf"));
	free(out);
}

/* Scenarios by name (a list): only those run, --runs applies. */
static void test_select(void **state)
{
	const char *j = tu_tmp_path("sel.json");
	json_t *r, *sc;
	json_error_t je;
	char *out;
	int st;
	(void)state;
	out = tu_capture(&st, "%s bench warm,max-tokens %s --quick --runs 2 -n 4 --json %s", tu_dormant(),
			 model, j);
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, "== warm:"));
	assert_null(strstr(out, "== cold:"));
	free(out);
	r = json_load_file(j, 0, &je);
	assert_non_null(r);
	sc = json_object_get(r, "scenarios");
	assert_int_equal(json_object_size(sc), 2);
	{
		const json_t *w = arr(json_object_get(sc, "warm"), "samples");
		assert_int_equal(json_array_size(w), 2);
		for (size_t i = 0; i < 2; i++)
			assert_true(num(json_array_get(w, i), "n_gen") <= 4);
	}
	json_decref(r);
}

/* --json into a folder that does not exist yet: the folders are made
 * before the run, so the finished run is written, not thrown away. */
static void test_json_new_folder(void **state)
{
	char dir[1024], j[1100];
	json_error_t je;
	json_t *r;
	char *out;
	int st;
	(void)state;
	snprintf(dir, sizeof dir, "%s/no-such-folder", tu_tmp_path("jsondir"));
	snprintf(j, sizeof j, "%s/sub/run.json", dir);
	out = tu_capture(&st, "%s bench warm %s --quick --runs 1 -n 2 --json %s 2>&1", tu_dormant(), model, j);
	if (st)
		fprintf(stderr, "%s\n", out);
	assert_int_equal(st, 0);
	free(out);
	r = json_load_file(j, 0, &je);
	assert_non_null(r);
	assert_non_null(json_object_get(json_object_get(r, "scenarios"), "warm"));
	json_decref(r);
}

/* ---- each scenario's JSON ---- */

static void test_cold(void **state)
{
	const json_t *s = scen("cold"), *samples = arr(s, "samples"), *sum = arr(s, "summary");
	int runs = (int)num(s, "runs");
	(void)state;
	assert_int_equal(runs, 1);
	/* mmap, read, prefetch × dropped, cached */
	assert_int_equal(json_array_size(samples), 6 * (size_t)runs);
	assert_int_equal(json_array_size(sum), 6);
	for (size_t i = 0; i < json_array_size(samples); i++) {
		const json_t *x = json_array_get(samples, i);
		check_request(x, opt_int("n_gen"));
		assert_true(json_is_true(json_object_get(x, "cold"))); /* every one loaded */
		assert_true(num(x, "load_s") > 0);
		assert_true(num(x, "file_cached_before_bytes") <= num(x, "file_bytes"));
		assert_true(!strcmp(str(x, "cache"), "dropped") || !strcmp(str(x, "cache"), "cached"));
	}
	for (size_t i = 0; i < json_array_size(sum); i++) {
		const json_t *x = json_array_get(sum, i);
		assert_true(num(x, "load_s") > 0 && num(x, "load_s") < num(x, "latency_s"));
		assert_true(num(x, "tok_s") > 0);
	}
	assert_string_equal(str(json_array_get(sum, 0), "mode"), "mmap");
	assert_string_equal(str(json_array_get(sum, 2), "mode"), "read");
	assert_string_equal(str(json_array_get(sum, 4), "mode"), "prefetch");
}

static void test_warm(void **state)
{
	const json_t *s = scen("warm"), *samples = arr(s, "samples"), *lat;
	(void)state;
	assert_int_equal(json_array_size(samples), (size_t)num(s, "runs"));
	assert_int_equal((int)num(s, "runs"), 3);
	for (size_t i = 0; i < json_array_size(samples); i++) {
		check_request(json_array_get(samples, i), opt_int("n_gen"));
		assert_false(json_is_true(json_object_get(json_array_get(samples, i), "cold")));
	}
	lat = json_object_get(json_object_get(s, "summary"), "latency_s");
	assert_int_equal((int)num(lat, "n"), 3);
	assert_true(num(lat, "min") > 0);
	assert_true(num(lat, "min") <= num(lat, "median") && num(lat, "median") <= num(lat, "max"));
	assert_true(num(lat, "min") <= num(lat, "mean") && num(lat, "mean") <= num(lat, "max"));
	assert_true(num(lat, "stddev") >= 0 && isfinite(num(lat, "stddev")));
	assert_true(num(json_object_get(json_object_get(s, "summary"), "tok_s"), "mean") > 0);
}

static void check_fit(const json_t *s)
{
	const json_t *f = json_object_get(s, "fit");
	assert_non_null(f);
	assert_true(json_is_true(json_object_get(f, "ok")));
	assert_true(isfinite(num(f, "fixed_s")));
	assert_true(isfinite(num(f, "per_token_s")));
	assert_true(isfinite(num(f, "r2")) && num(f, "r2") <= 1.0 + 1e-9);
	assert_int_equal((int)num(f, "n"), (int)json_array_size(arr(s, "samples")));
}

static void test_context(void **state)
{
	const json_t *s = scen("context"), *samples = arr(s, "samples"), *lens = arr(s, "lengths");
	int prev = 0;
	(void)state;
	/* 1, 10, 35, 128, then 512 and 2048 capped by n_ctx 512 to one length */
	assert_int_equal(json_array_size(lens), 5);
	assert_int_equal(json_array_size(samples), 5 * (size_t)num(s, "runs"));
	for (size_t i = 0; i < json_array_size(lens); i++) {
		int n = (int)num(json_array_get(lens, i), "n_prompt");
		assert_true(n > prev && n < (int)num(s, "n_ctx"));
		prev = n;
		assert_true(num(json_array_get(lens, i), "prefill_tok_s") > 0);
	}
	for (size_t i = 0; i < json_array_size(samples); i++) {
		const json_t *x = json_array_get(samples, i);
		check_request(x, 1);
		assert_int_equal((int)num(x, "n_prompt"), (int)num(json_array_get(lens, i), "n_prompt"));
	}
	check_fit(s); /* finite; its sign is a timing, not checked here */
}

static void test_max_tokens(void **state)
{
	const json_t *s = scen("max-tokens"), *samples = arr(s, "samples");
	(void)state;
	assert_int_equal(json_array_size(samples), 3 * (size_t)num(s, "runs"));
	for (size_t i = 0; i < json_array_size(samples); i++) {
		const json_t *x = json_array_get(samples, i);
		check_request(x, 1000);
		/* end-of-generation is never sampled: every request runs to its length */
		assert_int_equal((int)num(x, "n_gen"), (int)num(x, "max_tokens"));
		assert_string_equal(str(x, "stop"), "length");
	}
	assert_int_equal((int)num(json_array_get(samples, 0), "max_tokens"), 25);
	assert_int_equal((int)num(json_array_get(samples, 2), "max_tokens"), 100);
	check_fit(s);
}

static double point(const json_t *pts, const char *label, const char *key)
{
	for (size_t i = 0; i < json_array_size(pts); i++)
		if (!strcmp(str(json_array_get(pts, i), "label"), label))
			return num(json_array_get(pts, i), key);
	fail_msg("memory point '%s' missing", label);
	return 0;
}

static void test_memory(void **state)
{
	const json_t *s = scen("memory"), *pts = arr(s, "points"), *tl = arr(s, "timeline");
	static const char *const labels[] = { "start", "after load", "after first generation",
					      "after second generation", "after 3 turns",
					      "after 10 turns", "after unload" };
	double t = -1;
	(void)state;
	assert_int_equal(json_array_size(pts), 7);
	for (size_t i = 0; i < 7; i++) {
		const json_t *p = json_array_get(pts, i);
		assert_string_equal(str(p, "label"), labels[i]);
		assert_true(num(p, "t_s") >= t);
		t = num(p, "t_s");
		assert_true(num(p, "rss_bytes") > 0);
		assert_true(num(p, "rss_anon_bytes") + num(p, "rss_file_bytes") <= num(p, "rss_bytes") + 4096 * 16);
		assert_true(num(p, "file_cached_bytes") >= 0);
	}
	assert_int_equal(json_array_size(arr(s, "turns")), 10);
	assert_true(json_array_size(tl) >= 2);
	t = -1;
	for (size_t i = 0; i < json_array_size(tl); i++) {
		assert_true(num(json_array_get(tl, i), "t_s") >= t);
		t = num(json_array_get(tl, i), "t_s");
	}
	assert_non_null(json_object_get(s, "return_to_baseline"));
	if (MEASURE_RSS) {
		double start = point(pts, "start", "rss_bytes"), load = point(pts, "after load", "rss_bytes");
		double unload = point(pts, "after unload", "rss_bytes");
		print_message("      RSS start %.2f MiB, after load %.2f, after unload %.2f\n", start / 1048576.0,
			      load / 1048576.0, unload / 1048576.0);
		assert_true(load > start);
		assert_true(unload <= load);
		/* the tiny model holds ~8 MiB; nearly all of it comes back */
		assert_true(unload < start + (load - start) / 4);
		assert_true(num(s, "peak_rss_bytes") >= load);
	}
}

static void test_warmup(void **state)
{
	const json_t *s = scen("warmup"), *samples = arr(s, "samples"), *sum = json_object_get(s, "summary");
	int on = 0;
	(void)state;
	assert_int_equal(json_array_size(samples), 2 * (size_t)num(s, "runs"));
	for (size_t i = 0; i < json_array_size(samples); i++) {
		const json_t *x = json_array_get(samples, i);
		check_request(x, opt_int("n_gen"));
		assert_true(json_is_true(json_object_get(x, "cold"))); /* every one a first request */
		on += json_is_true(json_object_get(x, "warmup"));
		/* A/B alternating: round 0 on first, round 1 off first */
		assert_int_equal(json_is_true(json_object_get(x, "warmup")),
				 ((int)num(x, "round") + (int)num(x, "order")) % 2 == 0);
	}
	assert_int_equal(on, (int)num(s, "runs"));
	assert_true(num(json_object_get(json_object_get(sum, "on"), "latency_s"), "median") > 0);
	assert_true(num(json_object_get(json_object_get(sum, "off"), "latency_s"), "median") > 0);
}

/* chat: without the cache every turn evaluates its whole prompt; with it —
 * kept loaded, or on demand with the cache saved to disk — a later turn
 * evaluates only the new message and the reply's last token (counts, not
 * times: deterministic). */
static void test_chat(void **state)
{
	const json_t *t = arr(scen("chat"), "table");
	int n_user = (int)num(scen("chat"), "n_user");
	(void)state;
	assert_true(json_array_size(t) >= 2);
	for (size_t i = 0; i < json_array_size(t); i++) {
		const json_t *r = json_array_get(t, i);
		assert_int_equal((int)num(r, "evaluated_fresh"), (int)num(r, "n_prompt"));
		assert_int_equal((int)num(r, "evaluated_od"), (int)num(r, "n_prompt"));
		if (i == 0) {
			assert_int_equal((int)num(r, "evaluated_reuse"), (int)num(r, "n_prompt"));
			assert_int_equal((int)num(r, "evaluated_od_kv"), (int)num(r, "n_prompt"));
		} else {
			assert_int_equal((int)num(r, "evaluated_reuse"), n_user + 1);
			assert_int_equal((int)num(r, "evaluated_od_kv"), n_user + 1);
		}
		assert_true(num(r, "ttft_fresh_s") > 0 && num(r, "ttft_reuse_s") > 0);
		assert_true(num(r, "ttft_od_s") > 0 && num(r, "ttft_od_kv_s") > 0);
	}
}

static void test_sweeps(void **state)
{
	const json_t *t = arr(scen("threads"), "table"), *b = arr(scen("batch"), "table");
	const json_t *c = arr(scen("ctx"), "table");
	(void)state;
	assert_true(json_array_size(t) >= 1);
	assert_int_equal((int)num(json_array_get(t, 0), "threads"), 1);
	for (size_t i = 0; i < json_array_size(t); i++) {
		assert_true(num(json_array_get(t, i), "prefill_tok_s") > 0);
		assert_true(num(json_array_get(t, i), "tok_s") > 0);
	}
	assert_int_equal(json_array_size(b), 2);
	for (size_t i = 0; i < json_array_size(b); i++)
		assert_true(num(json_array_get(b, i), "prefill_tok_s") > 0);
	/* scratch grows with n_batch */
	assert_true(num(json_array_get(b, 1), "scratch_bytes") > num(json_array_get(b, 0), "scratch_bytes"));
	assert_int_equal(json_array_size(c), 2);
	assert_int_equal((int)num(json_array_get(c, 0), "n_ctx"), 256);
	assert_int_equal((int)num(json_array_get(c, 1), "n_ctx"), 512);
	/* the KV cache doubles with n_ctx, and the manager's accounting grows */
	assert_true(num(json_array_get(c, 1), "kv_bytes") == 2 * num(json_array_get(c, 0), "kv_bytes"));
	assert_true(num(json_array_get(c, 1), "bytes") > num(json_array_get(c, 0), "bytes"));
	assert_true(num(json_array_get(c, 0), "est_bytes") > 0);
	if (MEASURE_RSS)
		assert_true(num(json_array_get(c, 1), "rss_delta_bytes") > num(json_array_get(c, 0), "rss_delta_bytes"));
}

static const json_t *policy(const json_t *pols, const char *name)
{
	for (size_t i = 0; i < json_array_size(pols); i++)
		if (!strcmp(str(json_array_get(pols, i), "policy"), name))
			return json_array_get(pols, i);
	fail_msg("policy '%s' missing", name);
	return NULL;
}

static void test_policies(void **state)
{
	const json_t *s = scen("policies"), *pols = arr(s, "policies");
	size_t n_ev = json_array_size(arr(s, "events"));
	double day = num(s, "day_s");
	/* the quick day: requests at 60, 70, 900, 940, 3000 s of a 3600 s day */
	static const struct {
		const char *name;
		int loads, cold;
	} want[] = {
		{ "eager", 1, 0 },          /* loaded at start-up, before any request */
		{ "lazy", 1, 1 },
		{ "on-demand", 5, 5 },
		{ "keep-alive 30s", 4, 4 }, /* 70 s is within 30 s of 60 s; 940 s is not of 900 s */
		{ "keep-alive 5m", 3, 3 },  /* 70 and 940 are warm */
	};
	(void)state;
	assert_int_equal(n_ev, 5);
	assert_true(day == 3600);
	assert_int_equal(json_array_size(pols), 5);
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		const json_t *p = policy(pols, want[i].name), *samples = arr(p, "samples"), *tl = arr(p, "timeline");
		double t = -1;
		assert_int_equal((int)num(p, "requests"), 5);
		assert_int_equal(json_array_size(samples), 5);
		assert_int_equal((int)num(p, "loads"), want[i].loads);
		assert_int_equal((int)num(p, "cold_requests"), want[i].cold);
		assert_true(num(p, "total_latency_s") > 0);
		assert_true(num(p, "max_latency_s") <= num(p, "total_latency_s"));
		assert_true(num(p, "mem_byte_s") >= 0 && isfinite(num(p, "mem_byte_s")));
		for (size_t k = 0; k < json_array_size(samples); k++) {
			const json_t *x = json_array_get(samples, k);
			assert_true(num(x, "latency_s") > 0);
			assert_true(num(x, "start_s") >= num(x, "t_s"));
		}
		for (size_t k = 0; k < json_array_size(tl); k++) {
			assert_true(num(json_array_get(tl, k), "t_s") >= t);
			t = num(json_array_get(tl, k), "t_s");
		}
		assert_true(fabs(t - day) < 1e-6); /* integrated to the end of the day */
	}
	if (MEASURE_RSS) {
		/* holding the model longer costs more memory-time, by far */
		double od = num(policy(pols, "on-demand"), "mem_byte_s");
		double k5 = num(policy(pols, "keep-alive 5m"), "mem_byte_s");
		double eg = num(policy(pols, "eager"), "mem_byte_s");
		print_message("      memory-time: on-demand %.3g, keep-alive 5m %.3g, eager %.3g byte-s\n", od, k5, eg);
		assert_true(od < k5 && k5 < eg);
	}
}

static const json_t *rag_setup(const json_t *setups, const char *name)
{
	for (size_t i = 0; i < json_array_size(setups); i++)
		if (!strcmp(str(json_array_get(setups, i), "setup"), name))
			return json_array_get(setups, i);
	fail_msg("RAG day setup '%s' missing", name);
	return NULL;
}

/* The RAG day (part of `policies`): per question embed -> rerank ->
 * generate under one budget.  Counters agree with each other; with room
 * for all, each model loads once; with room for the chat model and one
 * encoder, plain LRU lets the reranker evict the chat model every question
 * while a pinned chat model never reloads. */
static void test_rag_day(void **state)
{
	const json_t *rd = json_object_get(scen("policies"), "rag_day"), *setups;
	static const char *const names[] = { "room for all", "LRU", "roles", "roles + pin" };
	static const char *const models[] = { "chat", "embed", "rerank" };
	int nq;
	(void)state;
	assert_non_null(rd);
	nq = (int)num(rd, "questions");
	assert_true(nq >= 2);
	setups = arr(rd, "setups");
	assert_int_equal(json_array_size(setups), 4);
	assert_non_null(strstr(all_stdout, "RAG day:"));
	for (size_t i = 0; i < 4; i++) {
		const json_t *su = rag_setup(setups, names[i]), *ms = json_object_get(su, "models");
		const json_t *samples = arr(su, "samples");
		double est[3], budget = num(su, "max_ram_bytes");
		assert_int_equal((int)num(su, "questions"), nq);
		assert_int_equal(json_array_size(samples), (size_t)nq);
		for (int k = 0; k < 3; k++) {
			const json_t *m = json_object_get(ms, models[k]);
			int loads = (int)num(m, "loads"), unloads = (int)num(m, "unloads");
			assert_non_null(m);
			est[k] = num(m, "est_bytes");
			assert_true(est[k] > 0);
			/* used every question, never expired (keep-alive forever): every
			 * unload is an eviction, and the model is loaded once more than
			 * it was unloaded when the day ends ready */
			assert_true(loads >= 1 && loads <= nq);
			assert_int_equal(unloads, (int)num(m, "evictions"));
			assert_int_equal(loads - unloads, strcmp(str(m, "state"), "ready") ? 0 : 1);
		}
		assert_int_equal((int)num(su, "chat_reloads"), (int)num(json_object_get(ms, "chat"), "loads") - 1);
		for (size_t k = 0; k < json_array_size(samples); k++)
			assert_true(num(json_array_get(samples, k), "latency_s") > 0);
		assert_true(num(su, "p50_latency_s") > 0 && num(su, "p50_latency_s") <= num(su, "p95_latency_s"));
		if (MEASURE_RSS)
			assert_true(num(su, "peak_held_bytes") >= num(su, "mean_held_bytes"));
		if (i == 0) { /* room for all: each loads once */
			assert_true(budget >= est[0] + est[1] + est[2]);
			for (int k = 0; k < 3; k++)
				assert_int_equal((int)num(json_object_get(ms, models[k]), "loads"), 1);
			continue;
		}
		/* room for the chat model and one encoder, not for all three: the
		 * encoders evict each other every question */
		assert_true(budget >= est[0] + (est[1] > est[2] ? est[1] : est[2]));
		assert_true(budget < est[0] + est[1] + est[2]);
		assert_int_equal((int)num(json_object_get(ms, "embed"), "loads"), nq);
		assert_int_equal((int)num(json_object_get(ms, "rerank"), "loads"), nq);
	}
	/* LRU: the chat model is the least recently used when the reranker
	 * loads, every question */
	assert_int_equal((int)num(rag_setup(setups, "LRU"), "chat_reloads"), nq - 1);
	/* roles: the encoders make room among themselves (embed and rerank
	 * are one class), so the chat model is loaded once */
	assert_int_equal((int)num(rag_setup(setups, "roles"), "chat_reloads"), 0);
	/* pinned: never evicted, never reloaded */
	assert_int_equal((int)num(rag_setup(setups, "roles + pin"), "chat_reloads"), 0);
	assert_int_equal((int)num(json_object_get(json_object_get(rag_setup(setups, "roles + pin"), "models"), "chat"),
				  "evictions"), 0);
}

/* ---- the report ---- */


/* The checker can fail: broken documents are rejected (the tests below
 * would pass vacuously otherwise). */
static void test_xml_checker(void **state)
{
	static const char *const bad[] = {
		"<svg><g></svg>", "<svg><g></g>", "<svg a=1></svg>", "<svg>a & b</svg>", "<svg>a < b</svg>",
		"<a></a><b></b>", "<svg x=\"1\"y=\"2\"/>", "text<svg/>", "<svg><g a=\"<\"/></svg>",
	};
	char why[128];
	(void)state;
	assert_int_equal(txml_check("<?xml version=\"1.0\"?>\n<svg a='1' b=\"&amp;&#183;&#x41;\"><g/>t &lt; u</svg>\n",
				   why, sizeof why), 0);
	assert_int_equal(txml_check("<!DOCTYPE html>\n<html><!-- c --><p>x</p></html>", why, sizeof why), 0);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (txml_check(bad[i], why, sizeof why) == 0)
			fail_msg("accepted a broken document: %s", bad[i]);
}

static void check_file(const char *path)
{
	char why[128];
	size_t n;
	char *doc = tu_read_file(path, &n);
	const char *cpu = str(json_object_get(root, "machine"), "cpu");
	if (!doc)
		fail_msg("%s: cannot read", path);
	if (txml_check(doc, why, sizeof why))
		fail_msg("%s: not well-formed: %s", path, why);
	/* every figure names the machine and how many runs */
	if (!strpbrk(cpu, "&<>\"'"))
		assert_non_null(strstr(doc, cpu));
	assert_true(strstr(doc, " run") || strstr(doc, "replay"));
	free(doc);
}

static void test_report_wellformed(void **state)
{
	static const char *const charts[] = { "memory", "policies", "policies-day", "context", "max-tokens",
					      "cold", "warm", "warmup", "threads", "batch", "ctx", "chat" };
	char p[1024];
	size_t n;
	char *html;
	int svgs = 0;
	(void)state;
	snprintf(p, sizeof p, "%s/index.html", report_dir);
	check_file(p);
	html = tu_read_file(p, &n);
	assert_non_null(html);
	for (const char *q = html; (q = strstr(q, "<svg ")); q++)
		svgs++;
	assert_int_equal(svgs, (int)(sizeof charts / sizeof charts[0]));
	/* self-contained: nothing fetched, nothing run */
	assert_null(strstr(html, "<script"));
	assert_null(strstr(html, "src=\"http"));
	assert_null(strstr(html, "href=\"http"));
	free(html);
	for (size_t i = 0; i < sizeof charts / sizeof charts[0]; i++) {
		char *svg;
		snprintf(p, sizeof p, "%s/%s.svg", report_dir, charts[i]);
		check_file(p);
		svg = tu_read_file(p, &n);
		/* units on the axes */
		assert_true(strstr(svg, "(MiB") || strstr(svg, "(ms") || strstr(svg, "(s") ||
			    strstr(svg, "tokens/s"));
		free(svg);
	}
}

static void test_report_chromium(void **state)
{
	const char *png = tu_tmp_path("report.png");
	unsigned char *img;
	size_t n;
	(void)state;
	if (access("/usr/bin/chromium", X_OK) != 0 && tu_system("command -v chromium >/dev/null 2>&1") != 0)
		skip();
	tu_system("HOME=%s timeout 120 chromium --headless --no-sandbox --disable-gpu --screenshot=%s "
		  "--window-size=1200,2000 file://%s/index.html >/dev/null 2>&1",
		  tu_tmpdir(), png, report_dir);
	img = tu_read_file(png, &n);
	if (!img)
		fail_msg("chromium wrote no screenshot");
	print_message("      screenshot: %zu bytes\n", n);
	assert_true(n > 1000);
	assert_memory_equal(img, "\x89PNG\r\n\x1a\n", 8);
	free(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_server_scenario),
		cmocka_unit_test(test_cli_errors),
		cmocka_unit_test(test_select),
		cmocka_unit_test(test_json_new_folder),
		cmocka_unit_test(test_cold),
		cmocka_unit_test(test_warm),
		cmocka_unit_test(test_context),
		cmocka_unit_test(test_max_tokens),
		cmocka_unit_test(test_memory),
		cmocka_unit_test(test_warmup),
		cmocka_unit_test(test_sweeps),
		cmocka_unit_test(test_chat),
		cmocka_unit_test(test_policies),
		cmocka_unit_test(test_rag_day),
		cmocka_unit_test(test_xml_checker),
		cmocka_unit_test(test_report_wellformed),
		cmocka_unit_test(test_report_chromium),
	};
	return cmocka_run_group_tests_name("lifebench", tests, setup, teardown);
}

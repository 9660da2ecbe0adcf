/*
 * tests/bench_speed — `dormant bench speed MODEL --vs PATH [--vs-args ARGS]`
 * on the tiny synthetic model against fake peers: shell scripts written
 * here that record their arguments and print llama-bench-style JSON with
 * known figures, different on each call.  Checked: the arguments each peer
 * gets (its --vs-args included, no one else's), the order of the rounds
 * (probe, dormant, each peer), the medians and ratios computed from the
 * known figures, decode's fraction of bandwidth recomputed from the
 * per-round figures, and a clear one-line error for each way a peer can
 * fail.  Nothing is timed: dormant's own figures are only required to be
 * positive.  Also `bench quantize` (quantize-on-load throughput) on a tiny
 * F16 file, and `bench rag` on the golden BERT embedder and reranker.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tutil.h"

#define P 16
#define N 8
#define ROUNDS 3

static char model[512];

/* A fake llama-bench at tmp/name: appends "$*" to tmp/name.log, then
 * prints round k's pp and tg (k = its line count in the log, 1-based) from
 * the lists given, as llama-bench's JSON. */
static const char *fake_peer(const char *name, const char *pp3, const char *tg3)
{
	static char path[3][512];
	static int slot;
	char *p = path[slot++ % 3];
	char script[2048];

	snprintf(p, 512, "%s", tu_tmp_path(name));
	snprintf(script, sizeof script,
		 "#!/bin/sh\n"
		 "echo \"$*\" >> '%s.log'\n"
		 "k=$(wc -l < '%s.log')\n"
		 "set -- %s; eval pp=\\${$k}\n"
		 "set -- %s; eval tg=\\${$k}\n"
		 "printf '[\\n  {\\n    \"build_commit\": \"fake\",\\n    \"n_prompt\": %d,\\n    \"n_gen\": 0,\\n"
		 "    \"avg_ts\": %%s,\\n    \"samples_ts\": [ %%s ]\\n  },\\n"
		 "  {\\n    \"n_prompt\": 0,\\n    \"n_gen\": %d,\\n    \"avg_ts\": %%s,\\n"
		 "    \"samples_ts\": [ %%s ]\\n  }\\n]\\n' $pp $pp $tg $tg\n",
		 p, p, pp3, tg3, P, N);
	assert_int_equal(tu_write_file(p, script, strlen(script)), 0);
	assert_int_equal(chmod(p, 0755), 0);
	return p;
}

/* A fake peer whose body is the given shell text. */
static const char *fake_script(const char *name, const char *body)
{
	static char path[512];
	char script[1024];
	snprintf(path, sizeof path, "%s", tu_tmp_path(name));
	snprintf(script, sizeof script, "#!/bin/sh\n%s\n", body);
	assert_int_equal(tu_write_file(path, script, strlen(script)), 0);
	assert_int_equal(chmod(path, 0755), 0);
	return path;
}

static int setup(void **state)
{
	(void)state;
	snprintf(model, sizeof model, "%s", tu_tmp_path("tiny.gguf"));
	return tu_system("%s synth --preset tiny --type Q8_0 --seed 5 -o %s", tu_dormant(), model) == 0 ? 0 : -1;
}

static double num(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_number(v))
		fail_msg("no number '%s'", key);
	return json_number_value(v);
}

static double median3(const double *v)
{
	double a = v[0], b = v[1], c = v[2];
	if ((a <= b && b <= c) || (c <= b && b <= a))
		return b;
	if ((b <= a && a <= c) || (c <= a && a <= b))
		return a;
	return c;
}

static void rounds(json_t *o, const char *key, double *out)
{
	json_t *a = json_object_get(o, key);
	assert_true(json_is_array(a));
	assert_int_equal(json_array_size(a), ROUNDS);
	for (int r = 0; r < ROUNDS; r++)
		out[r] = json_number_value(json_array_get(a, (size_t)r));
}

/* Two peers, the first with --vs-args: each gets exactly llama-bench's
 * arguments plus its own extra words, once per round; the rounds
 * alternate; the medians and ratios follow from the known figures. */
static void test_vs_two_peers(void **state)
{
	const char *a, *b;
	char *out, *errtxt, *log;
	char cmd_err[600], expect[1024];
	double bw[ROUNDS], pp0[ROUNDS], tg0[ROUNDS], v[ROUNDS], wb, fr[ROUNDS];
	json_t *root, *eng, *d, *pa, *pb;
	json_error_t je;
	size_t n;
	int st;
	(void)state;

	a = fake_peer("peer-a", "30.5 10 20", "5 7.25 6");
	b = fake_peer("peer-b", "100 300 200", "40 40 44");
	snprintf(cmd_err, sizeof cmd_err, "%s", tu_tmp_path("two.err"));
	out = tu_capture(&st, "%s bench speed %s -p %d -n %d -r %d -t 2 --bw-mib 32 --json --vs %s --vs-args '-rtr 1  -fa 1' --vs %s 2>%s",
			 tu_dormant(), model, P, N, ROUNDS, a, b, cmd_err);
	assert_non_null(out);
	if (st != 0) {
		errtxt = tu_read_file(cmd_err, &n);
		fail_msg("exit %d: %s", st, errtxt ? errtxt : "");
	}
	root = json_loads(out, 0, &je);
	if (!root)
		fail_msg("not JSON (%s): %s", je.text, out);

	/* the arguments each peer got, once per round */
	snprintf(expect, sizeof expect, "-m %s -p %d -n %d -t 2 -r 1 -o json -rtr 1 -fa 1\n", model, P, N);
	log = tu_read_file(tu_tmp_path("peer-a.log"), &n);
	assert_non_null(log);
	{
		char three[3200];
		snprintf(three, sizeof three, "%s%s%s", expect, expect, expect);
		assert_string_equal(log, three);
		free(log);
		snprintf(expect, sizeof expect, "-m %s -p %d -n %d -t 2 -r 1 -o json\n", model, P, N);
		snprintf(three, sizeof three, "%s%s%s", expect, expect, expect);
		log = tu_read_file(tu_tmp_path("peer-b.log"), &n);
		assert_non_null(log);
		assert_string_equal(log, three);
		free(log);
	}

	/* the rounds alternate: probe, dormant, peer-a, peer-b, probe, ... */
	errtxt = tu_read_file(cmd_err, &n);
	assert_non_null(errtxt);
	{
		const char *p = errtxt;
		for (int r = 1; r <= ROUNDS; r++) {
			const char *who[4] = { "bandwidth", "dormant", "peer-a -rtr 1  -fa 1", "peer-b" };
			for (int k = 0; k < 4; k++) {
				char want[128];
				snprintf(want, sizeof want, "bench speed: round %d/%d: %s ", r, ROUNDS, who[k]);
				const char *hit = strstr(p, want);
				if (!hit)
					fail_msg("'%s' missing or out of order in:\n%s", want, errtxt);
				p = hit + strlen(want);
			}
		}
	}
	free(errtxt);

	assert_int_equal((int)num(root, "rounds"), ROUNDS);
	assert_int_equal((int)num(root, "threads"), 2);
	wb = num(root, "weight_bytes");
	assert_true(wb > 0);
	rounds(root, "bandwidth_gb_s_rounds", bw);
	assert_float_equal(num(root, "bandwidth_gb_s"), median3(bw), 1e-3);
	eng = json_object_get(root, "engines");
	assert_int_equal(json_array_size(eng), 3);
	d = json_array_get(eng, 0);
	pa = json_array_get(eng, 1);
	pb = json_array_get(eng, 2);
	assert_string_equal(json_string_value(json_object_get(d, "name")), "dormant");
	assert_string_equal(json_string_value(json_object_get(pa, "name")), "peer-a -rtr 1  -fa 1");
	assert_string_equal(json_string_value(json_object_get(pb, "name")), "peer-b");
	assert_string_equal(json_string_value(json_object_get(pa, "path")), a);

	/* dormant's own figures: positive, medians of its rounds */
	rounds(d, "pp_tok_s_rounds", pp0);
	rounds(d, "tg_tok_s_rounds", tg0);
	for (int r = 0; r < ROUNDS; r++)
		assert_true(pp0[r] > 0 && tg0[r] > 0 && bw[r] > 0);
	assert_float_equal(num(d, "pp_tok_s"), median3(pp0), 1e-3);
	assert_float_equal(num(d, "tg_tok_s"), median3(tg0), 1e-3);

	/* the peers' figures, in call order, and their medians */
	rounds(pa, "pp_tok_s_rounds", v);
	assert_float_equal(v[0], 30.5, 1e-9);
	assert_float_equal(v[1], 10, 1e-9);
	assert_float_equal(v[2], 20, 1e-9);
	assert_float_equal(num(pa, "pp_tok_s"), 20, 1e-9);
	assert_float_equal(num(pa, "tg_tok_s"), 6, 1e-9);
	assert_float_equal(num(pb, "pp_tok_s"), 200, 1e-9);
	assert_float_equal(num(pb, "tg_tok_s"), 40, 1e-9);

	/* ratios: dormant's median over the peer's */
	assert_float_equal(num(pa, "dormant_pp_ratio"), num(d, "pp_tok_s") / 20, 1e-4 * num(d, "pp_tok_s") / 20 + 1e-4);
	assert_float_equal(num(pb, "dormant_tg_ratio"), num(d, "tg_tok_s") / 40, 1e-4 * num(d, "tg_tok_s") / 40 + 1e-4);
	assert_float_equal(num(d, "dormant_pp_ratio"), 1, 1e-9);

	/* decode's fraction of bandwidth: per round tg · weight bytes / bandwidth */
	rounds(pb, "tg_tok_s_rounds", v);
	for (int r = 0; r < ROUNDS; r++)
		fr[r] = v[r] * wb / (bw[r] * 1e9);
	assert_float_equal(num(pb, "tg_fraction_of_bandwidth"), median3(fr), 1e-3 * median3(fr) + 1e-4);

	json_decref(root);
	free(out);
}

/* The table for humans names every engine and the ratios. */
static void test_vs_table(void **state)
{
	const char *a = fake_peer("peer-t", "50 50 50", "10 10 10");
	char *out;
	int st;
	(void)state;
	out = tu_capture(&st, "%s bench speed %s -p %d -n %d -r %d -t 1 --bw-mib 32 --vs %s 2>/dev/null", tu_dormant(),
			 model, P, N, ROUNDS, a);
	assert_non_null(out);
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, "bandwidth:"));
	assert_non_null(strstr(out, "\ndormant "));
	assert_non_null(strstr(out, "\npeer-t "));
	assert_non_null(strstr(out, "50.00 [50.00, 50.00]"));
	assert_non_null(strstr(out, "10.00 [10.00, 10.00]"));
	free(out);
}

/* Generation at a depth (-d D): the peer is asked for -n 0 -gp D,N, and
 * its "tg N at depth D" result (n_prompt D, n_gen N) is the one read, not
 * a plain tg result it may also print; dormant's own run reports the
 * depth and a positive speed, and -d without -n is refused. */
static void test_depth(void **state)
{
	const char *a;
	char *out, *log, expect[1024];
	json_t *root, *eng;
	size_t n;
	int st;
	(void)state;
	a = fake_script("peer-gp",
			"echo \"$*\" >> \"$0.log\"\n"
			"printf '[{\"n_prompt\": 16, \"n_gen\": 0, \"avg_ts\": 80},"
			" {\"n_prompt\": 0, \"n_gen\": 8, \"avg_ts\": 99},"
			" {\"n_prompt\": 40, \"n_gen\": 8, \"avg_ts\": 7.5}]'");
	out = tu_capture(&st, "%s bench speed %s -p %d -n %d -d 40 -r 2 -t 1 --bw-mib 32 --json --vs %s 2>/dev/null",
			 tu_dormant(), model, P, N, a);
	assert_non_null(out);
	assert_int_equal(st, 0);
	root = json_loads(out, 0, NULL);
	if (!root)
		fail_msg("not JSON: %s", out);
	assert_int_equal((int)num(root, "depth"), 40);
	eng = json_object_get(root, "engines");
	assert_int_equal(json_array_size(eng), 2);
	assert_float_equal(num(json_array_get(eng, 1), "tg_tok_s"), 7.5, 1e-9);
	assert_float_equal(num(json_array_get(eng, 1), "pp_tok_s"), 80, 1e-9);
	assert_true(num(json_array_get(eng, 0), "tg_tok_s") > 0);
	json_decref(root);
	free(out);
	snprintf(expect, sizeof expect, "-m %s -p %d -n 0 -t 1 -r 1 -o json -gp 40,%d\n", model, P, N);
	log = tu_read_file(tu_tmp_path("peer-gp.log"), &n);
	assert_non_null(log);
	assert_non_null(strstr(log, expect));
	free(log);

	/* dormant alone at a depth */
	out = tu_capture(&st, "%s bench speed %s -p 0 -n %d -d 40 -r 2 -t 1 --bw-mib 32 --json 2>/dev/null",
			 tu_dormant(), model, N);
	assert_non_null(out);
	assert_int_equal(st, 0);
	root = json_loads(out, 0, NULL);
	assert_non_null(root);
	assert_int_equal((int)num(root, "depth"), 40);
	assert_true(num(root, "tg_tok_s") > 0);
	json_decref(root);
	free(out);

	out = tu_capture(&st, "%s bench speed %s -n 0 -d 40 2>&1", tu_dormant(), model);
	assert_int_equal(st, 2);
	assert_non_null(strstr(out, "-d 40 needs generated tokens"));
	free(out);
}

/* Runs bench speed with one broken peer; it must fail (status 1, not a
 * signal) with one error line, stderr's last (before it only the
 * progress lines of the rounds), containing want. */
static void expect_peer_error(const char *peer, const char *extra, const char *want)
{
	char *out, *last;
	int st;
	out = tu_capture(&st, "%s bench speed %s -p %d -n %d -r 2 -t 1 --bw-mib 32 --vs-timeout 2 --vs %s %s 2>&1 >/dev/null",
			 tu_dormant(), model, P, N, peer, extra);
	assert_non_null(out);
	last = out;
	for (char *p = out; (p = strstr(p, "\n")) && p[1]; p++)
		last = p + 1;
	if (st != 1 || strncmp(last, "dormant: bench speed: ", 22) || !strstr(last, want) ||
	    strchr(last, '\n') != last + strlen(last) - 1 || strstr(out, "dormant: ") != last)
		fail_msg("peer %s: status %d, stderr '%s', wanted one line with '%s'", peer, st, out, want);
	free(out);
}

static void test_vs_broken_peers(void **state)
{
	char missing[600];
	(void)state;
	snprintf(missing, sizeof missing, "%s", tu_tmp_path("no-such-bench"));
	expect_peer_error(missing, "", "peer no-such-bench: ");
	expect_peer_error(fake_script("exit3", "echo 'error: unknown argument' >&2; exit 3"), "",
			  "peer exit3: exited with status 3: error: unknown argument");
	expect_peer_error(fake_script("garbage", "echo 'this is not json'"), "",
			  "peer garbage: output is not llama-bench JSON");
	expect_peer_error(fake_script("object", "echo '{\"n_prompt\": 16}'"), "",
			  "peer object: output is not llama-bench JSON (not an array)");
	expect_peer_error(fake_script("no-tg", "echo '[{\"n_prompt\": 16, \"n_gen\": 0, \"avg_ts\": 5}]'"), "",
			  "peer no-tg: its JSON output has no tg8 result");
	expect_peer_error(fake_script("zero", "echo '[{\"n_prompt\": 16, \"n_gen\": 0, \"avg_ts\": 0}]'"), "",
			  "peer zero: its pp16 result has no positive avg_ts");
	expect_peer_error(fake_script("killed", "kill -9 $$"), "", "peer killed: killed by signal 9");
	expect_peer_error(fake_script("hangs", "exec sleep 60"), "", "peer hangs: no result after 2 s");
	expect_peer_error(fake_script("plain", "exit 0"), "--vs-args '-rtr 1'", "peer plain -rtr 1: output is not");
	{
		char dir[600];
		snprintf(dir, sizeof dir, "%s", tu_tmpdir());
		expect_peer_error(dir, "", "is not an executable file");
	}
}

static void test_usage_errors(void **state)
{
	char *out;
	int st;
	(void)state;
	out = tu_capture(&st, "%s bench speed %s --vs-args '-rtr 1' 2>&1", tu_dormant(), model);
	assert_int_equal(st, 2);
	assert_non_null(strstr(out, "--vs-args applies to the --vs before it"));
	free(out);
	out = tu_capture(&st, "%s bench speed %s --vs 2>&1", tu_dormant(), model);
	assert_int_equal(st, 2);
	assert_non_null(strstr(out, "--vs needs"));
	free(out);
	out = tu_capture(&st, "%s bench speed --help", tu_dormant());
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, "--vs-args"));
	free(out);
}

/* Without peers: dormant's figures and the bandwidth ratio. */
static void test_no_peer(void **state)
{
	char *out;
	json_t *root;
	int st;
	(void)state;
	out = tu_capture(&st, "%s bench speed %s -p %d -n %d -r 2 -t 1 --bw-mib 32 --json 2>/dev/null", tu_dormant(),
			 model, P, N);
	assert_non_null(out);
	assert_int_equal(st, 0);
	root = json_loads(out, 0, NULL);
	assert_non_null(root);
	assert_true(num(root, "pp_tok_s") > 0);
	assert_true(num(root, "tg_tok_s") > 0);
	assert_true(num(root, "bandwidth_gb_s") > 0);
	assert_float_equal(num(root, "tg_limit_tok_s"), num(root, "bandwidth_gb_s") * 1e9 / num(root, "weight_bytes"),
			   1e-3 * num(root, "tg_limit_tok_s") + 1e-3);
	assert_true(num(root, "tg_fraction_of_limit") > 0);
	json_decref(root);
	free(out);
}

/* `bench quantize` on an F16 file: every type quantizes the same float
 * matrices (the weight count does not depend on the type); a type it
 * cannot make is refused. */
static void test_bench_quantize(void **state)
{
	char f16[512];
	char *out;
	json_t *root, *types;
	int st;
	(void)state;
	snprintf(f16, sizeof f16, "%s", tu_tmp_path("tiny-f16.gguf"));
	assert_int_equal(tu_system("%s synth --preset tiny --type F16 --seed 5 -o %s", tu_dormant(), f16), 0);
	out = tu_capture(&st, "%s bench quantize %s --runs 1 --threads 2 --json", tu_dormant(), f16);
	assert_non_null(out);
	assert_int_equal(st, 0);
	root = json_loads(out, 0, NULL);
	assert_non_null(root);
	types = json_object_get(root, "types");
	assert_int_equal(json_array_size(types), 3);
	for (size_t i = 0; i < 3; i++) {
		json_t *t = json_array_get(types, i);
		assert_true(num(t, "weights") > 0);
		assert_float_equal(num(t, "weights"), num(json_array_get(types, 0), "weights"), 0);
		assert_true(num(t, "quantize_s") > 0);
		assert_true(num(t, "load_cpu_s") >= 0);
		assert_float_equal(num(t, "weights_per_s"), num(t, "weights") / num(t, "quantize_s"),
				   1e-3 * num(t, "weights_per_s") + 1);
	}
	assert_string_equal(json_string_value(json_object_get(json_array_get(types, 2), "type")), "Q4_K");
	json_decref(root);
	free(out);
	out = tu_capture(&st, "%s bench quantize %s --types Q5_K 2>&1", tu_dormant(), f16);
	assert_int_equal(st, 1);
	assert_non_null(strstr(out, "type 'Q5_K'"));
	free(out);
	/* a quantized file has nothing to quantize */
	out = tu_capture(&st, "%s bench quantize %s --runs 1 2>&1", tu_dormant(), model);
	assert_int_equal(st, 1);
	assert_non_null(strstr(out, "no float matrix"));
	free(out);
}

/* `bench rag` on the reference BERT embedder and reranker (skipped
 * without ../shared/golden): one object with the embedder's width and four
 * positive rates; a reranker given as the embedder is refused by role. */
static void test_bench_rag(void **state)
{
	const char *g = tu_golden_dir();
	char embed[600], rerank[600];
	char *out;
	json_t *root;
	int st;
	(void)state;
	if (!g) {
		print_message("  no golden data: skipped\n");
		skip();
	}
	snprintf(embed, sizeof embed, "%s/archs/models/bert.gguf", g);
	snprintf(rerank, sizeof rerank, "%s/archs/models/bert-rerank.gguf", g);
	out = tu_capture(&st, "%s bench rag %s %s --runs 1 --threads 2 --json", tu_dormant(), embed, rerank);
	assert_non_null(out);
	assert_int_equal(st, 0);
	root = json_loads(out, 0, NULL);
	assert_non_null(root);
	assert_float_equal(num(root, "dim"), 128, 0);
	assert_float_equal(num(root, "texts"), 64, 0);
	assert_true(num(root, "embed_batch_per_s") > 0);
	assert_true(num(root, "embed_single_per_s") > 0);
	assert_true(num(root, "rerank_batch_pairs_per_s") > 0);
	assert_true(num(root, "rerank_single_pairs_per_s") > 0);
	json_decref(root);
	free(out);
	out = tu_capture(&st, "%s bench rag %s %s --runs 1 2>&1", tu_dormant(), rerank, rerank);
	assert_int_equal(st, 1);
	assert_non_null(strstr(out, "role rerank"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vs_two_peers),
		cmocka_unit_test(test_vs_table),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_vs_broken_peers),
		cmocka_unit_test(test_usage_errors),
		cmocka_unit_test(test_no_peer),
		cmocka_unit_test(test_bench_quantize),
		cmocka_unit_test(test_bench_rag),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}

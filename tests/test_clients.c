/* tests/clients — the official `openai` and `ollama` JavaScript packages
 * (pinned in tests/js/package-lock.json, installed with `npm ci` when
 * missing) drive a real `dormant serve` process on a random port with a
 * tiny synthetic model: chat and completion, streamed and not, embeddings,
 * model list, ps, keep_alive 0 unloading checked through /api/ps and the
 * server's RSS (tests/js/clients.mjs).  On synthetic encoders, `openai`'s
 * embeddings.create and `cohere-ai`'s rerank get what `dormant embed` and
 * `dormant rerank` (the C API) answer for the same inputs
 * (tests/js/rag.mjs).  Skips when node is not installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "tutil.h"

/* AddressSanitizer's quarantine and shadow memory make RSS meaningless:
 * the return-to-baseline check is left out there (see test_engine.c). */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_CHECK "nocheck"
#else
#define RSS_CHECK "1048576"
#endif

/* 0 when node, npm and the pinned packages are there (npm ci installs
 * them when missing); 1 after saying why the test is skipped. */
static int js_ready(void)
{
	static const char *const pkgs[] = { "openai", "ollama", "cohere-ai" };
	struct stat sb;
	char path[128];
	char *out;
	int st;

	if (system("command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1")) {
		fprintf(stderr, "node/npm not installed: skipping the JavaScript client tests\n");
		return 1;
	}
	for (size_t i = 0; i < sizeof pkgs / sizeof *pkgs; i++) {
		snprintf(path, sizeof path, "tests/js/node_modules/%s/package.json", pkgs[i]);
		if (!stat(path, &sb))
			continue;
		/* exactly the versions in package-lock.json */
		out = tu_capture(&st, "cd tests/js && npm ci --no-audit --no-fund 2>&1");
		if (st)
			fprintf(stderr, "npm ci failed:\n%s\n", out);
		free(out);
		assert_int_equal(st, 0);
		break;
	}
	return 0;
}

static void test_js_clients(void **state)
{
	const char *model = tu_tmp_path("clients.gguf");
	char arg[600], *out;
	const char *argv[] = { "--model", arg, "--quiet", NULL };
	int pid, port, st;
	(void)state;
	if (js_ready()) {
		skip();
		return;
	}
	assert_int_equal(tu_system("%s synth --preset tiny --type Q8_0 -o %s", tu_dormant(), model), 0);
	snprintf(arg, sizeof arg, "tiny=%.500s", model);
	assert_int_equal(tu_serve_start(argv, NULL, &pid, &port), 0);
	out = tu_capture(&st, "node tests/js/clients.mjs http://127.0.0.1:%d tiny " RSS_CHECK " 2>&1", port);
	fputs(out, stderr);
	free(out);
	assert_int_equal(tu_serve_stop(pid), 0); /* and it exits cleanly */
	assert_int_equal(st, 0);
}

/* Runs a dormant command printing one JSON object (--json); NULL on failure. */
static json_t *cli_json(const char *cmd)
{
	json_error_t je;
	json_t *o;
	int st;
	char *out = tu_capture(&st, "%s %s --json", tu_dormant(), cmd);
	o = st ? NULL : json_loads(out, JSON_ALLOW_NUL, &je);
	if (!o)
		fprintf(stderr, "dormant %s: status %d, output:\n%s\n", cmd, st, out);
	free(out);
	return o;
}

static void test_js_rag(void **state)
{
	static const char *const texts[] = { "the river floods in spring",
					     "a volcano erupts when pressure builds under the crust",
					     "bread rises because yeast makes gas", "trains",
					     "bees make honey from the nectar of flowers they visit" };
	static const char *const docs[] = { "honey is made by bees", "trains run on rails",
					    "lava flows from volcanoes", "bees visit flowers for nectar",
					    "rivers carry water to the sea", "yeast and flour make bread" };
	static const char *const query = "how do bees make honey";
	const char *emb = tu_tmp_path("clients-emb.gguf"), *rr = tu_tmp_path("clients-rr.gguf");
	const char *exp_path = tu_tmp_path("clients-rag.json");
	char arg[2][600], cmd[4096], *out;
	const char *argv[] = { "--model", arg[0], "--model", arg[1], "--quiet", NULL };
	json_t *exp, *jt, *jd, *e1, *e2, *rk;
	size_t off;
	int pid, port, st;
	(void)state;
	if (js_ready()) {
		skip();
		return;
	}
	assert_int_equal(tu_system("%s synth --arch bert -o %s", tu_dormant(), emb), 0);
	assert_int_equal(tu_system("%s synth --arch bert --rank --seed 7 -o %s", tu_dormant(), rr), 0);

	/* what the C API answers (through the CLI) for the inputs the clients send */
	jt = json_array();
	off = (size_t)snprintf(cmd, sizeof cmd, "embed %s", emb);
	for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
		json_array_append_new(jt, json_string(texts[i]));
		off += (size_t)snprintf(cmd + off, sizeof cmd - off, " '%s'", texts[i]);
	}
	assert_non_null(e1 = cli_json(cmd));
	snprintf(cmd + off, sizeof cmd - off, " --dimensions 64");
	assert_non_null(e2 = cli_json(cmd));
	jd = json_array();
	off = (size_t)snprintf(cmd, sizeof cmd, "rerank %s '%s'", rr, query);
	for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
		json_array_append_new(jd, json_string(docs[i]));
		off += (size_t)snprintf(cmd + off, sizeof cmd - off, " '%s'", docs[i]);
	}
	assert_non_null(rk = cli_json(cmd));
	exp = json_pack("{s:o,s:o,s:i,s:o,s:s,s:o,s:o}", "texts", jt, "embed", e1, "embed_dims", 64, "embed_small",
			e2, "query", query, "documents", jd, "rerank", rk);
	assert_non_null(exp);
	assert_int_equal(json_dump_file(exp, exp_path, 0), 0);
	json_decref(exp);

	snprintf(arg[0], sizeof arg[0], "emb=%.500s", emb);
	snprintf(arg[1], sizeof arg[1], "rr=%.500s", rr);
	assert_int_equal(tu_serve_start(argv, NULL, &pid, &port), 0);
	out = tu_capture(&st, "node tests/js/rag.mjs http://127.0.0.1:%d emb rr %s 2>&1", port, exp_path);
	fputs(out, stderr);
	free(out);
	assert_int_equal(tu_serve_stop(pid), 0);
	assert_int_equal(st, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_js_clients),
		cmocka_unit_test(test_js_rag),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

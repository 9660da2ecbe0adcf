/* tests/api — the public C API (include/dormant.h) end to end on a small
 * synthetic model: lazy load on first request, keep-alive 0 unloads,
 * status, embeddings, errors into the caller's buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dormant.h"
#include "tutil.h"

struct collect {
	char buf[4096];
	size_t n;
};

static int collect(void *ud, const char *text, size_t n)
{
	struct collect *c = ud;
	if (c->n + n < sizeof c->buf) {
		memcpy(c->buf + c->n, text, n);
		c->n += n;
	}
	return 0;
}

static void test_api_lifecycle(void **state)
{
	const char *model = tu_tmp_path("api.gguf"), *ini = tu_tmp_path("api.ini");
	char cfg[1024], err[256];
	dormant *d;
	struct dormant_gen_opts o = { .max_tokens = 8, .temperature = 0, .top_k = -1, .top_p = -1, .min_p = -1 };
	struct dormant_gen_result r;
	struct dormant_model_status st[4];
	struct collect c = { .n = 0 };
	float emb[512];
	size_t dim;
	(void)state;
	assert_int_equal(tu_system("%s synth --preset tiny --type Q8_0 -o %s", tu_dormant(), model), 0);
	snprintf(cfg, sizeof cfg, "[server]\nkeep_alive = 0\n\n[model tiny]\npath = %s\nthreads = 1\n", model);
	assert_int_equal(tu_write_file(ini, cfg, strlen(cfg)), 0);
	assert_int_equal(dormant_open(&d, ini, NULL, err, sizeof err), 0);
	assert_int_equal(dormant_status(d, st, 4), 1);
	assert_string_equal(st[0].state, "dormant"); /* nothing loaded until needed */
	assert_int_equal(dormant_generate(d, "tiny", "hello", &o, collect, &c, &r, err, sizeof err), 0);
	assert_int_equal(r.n_gen, 8);
	assert_true(c.n > 0);
	assert_string_equal(r.model, "tiny");
	assert_true(r.ttft_s > 0);
	dormant_status(d, st, 4);
	assert_string_equal(st[0].state, "dormant"); /* keep_alive 0: gone again */
	assert_int_equal(st[0].load_count, 1);
	assert_int_equal(st[0].unload_count, 1);
	assert_int_equal(st[0].n_cold, 1);
	/* same seed, greedy: the same text */
	{
		struct collect c2 = { .n = 0 };
		assert_int_equal(dormant_generate(d, "tiny", "hello", &o, collect, &c2, &r, err, sizeof err), 0);
		assert_int_equal(c2.n, c.n);
		assert_memory_equal(c2.buf, c.buf, c.n);
	}
	assert_int_equal(dormant_embed(d, "tiny", "hello world", emb, 512, &dim, NULL, err, sizeof err), 0);
	assert_int_equal(dim, 256);
	{
		double n2 = 0;
		for (size_t i = 0; i < dim; i++)
			n2 += (double)emb[i] * emb[i];
		assert_true(fabs(n2 - 1) < 1e-3);
	}
	assert_int_equal(dormant_embed(d, "tiny", "x", emb, 10, &dim, NULL, err, sizeof err), DORMANT_ENOSPC);
	assert_non_null(strstr(err, "embedding has 256 values"));
	assert_int_equal(dormant_load(d, "tiny", err, sizeof err), 0);
	dormant_status(d, st, 4);
	assert_string_equal(st[0].state, "ready");
	assert_int_equal(dormant_unload(d, "tiny", err, sizeof err), 0);
	dormant_status(d, st, 4);
	assert_string_equal(st[0].state, "dormant");
	/* options and result may be NULL: the defaults (128 tokens at most) */
	assert_int_equal(dormant_generate(d, "tiny", "hello", NULL, NULL, NULL, NULL, err, sizeof err), 0);
	assert_int_equal(dormant_generate(d, "tiny", "hello", NULL, NULL, NULL, &r, err, sizeof err), 0);
	assert_true(r.n_gen > 0 && r.n_gen <= 128);
	assert_int_equal(dormant_generate(d, "nope", "x", NULL, NULL, NULL, NULL, err, sizeof err), DORMANT_ENOTFOUND);
	assert_string_equal(err, "model 'nope' not found");
	assert_string_equal(dormant_code_str(DORMANT_ENOTFOUND), "not found");
	assert_string_equal(dormant_code_str(DORMANT_ETOOLONG), "prompt longer than the context");
	assert_string_equal(dormant_code_str(12345), "unknown error");
	assert_int_equal(dormant_add_model(d, "second", model, err, sizeof err), 0);
	assert_int_equal(dormant_status(d, st, 4), 2);
	dormant_close(d);
	assert_int_equal(dormant_open(&d, "/nonexistent.ini", NULL, err, sizeof err), DORMANT_EIO);
	assert_non_null(strstr(err, "/nonexistent.ini: No such file or directory"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_api_lifecycle),
	};
	return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}

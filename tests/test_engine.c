/*
 * tests/engine — the real backend under the manager: load a model of over
 * 100 MB in every load mode, answer, unload, and check from /proc that the
 * process is back to its RSS before the load (within 1 MiB), and that the
 * manager's estimate was within 10 % of what the load measured; a request's
 * num_ctx grows the KV cache within its reservation (no reload), the
 * budget refuses growth past max_ram, and what the manager reports a model
 * holds follows the RSS after short and long requests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/mem.h"
#include "dormant.h"
#include "gguf/gguf.h"
#include "kern/kern.h"
#include "mgr/engine.h"
#include "mgr/mgr.h"
#include "model/synth.h"
#include "tutil.h"

/* AddressSanitizer keeps freed memory in quarantine and maps shadow memory:
 * RSS figures mean nothing there, so the memory assertions are skipped
 * (the load/unload cycle still runs and is checked for leaks and errors). */
#if defined(__SANITIZE_ADDRESS__)
#define MEASURE_RSS 0
#else
#define MEASURE_RSS 1
#endif

static char path_q8[512], path_f16[512];

/* the 110M-parameter shape (~140 MB at Q8_0, ~260 MB at F16) */
/* Writes the file's dirty pages back: POSIX_FADV_DONTNEED cannot drop a
 * page that is not yet written, so without this the drop_page_cache test
 * depends on how fast the disk writes back what setup just wrote. */
static int sync_file(const char *path)
{
	int fd = open(path, O_RDONLY), rc;
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

static int setup(void **state)
{
	struct synth_opts o = { .seed = 5 };
	struct dm_err e;
	(void)state;
	if (synth_preset("110m", &o.shape, &e))
		return -1;
	o.shape.n_ctx = 256;
	snprintf(path_q8, sizeof path_q8, "%s", tu_tmp_path("m-q8.gguf"));
	snprintf(path_f16, sizeof path_f16, "%s", tu_tmp_path("m-f16.gguf"));
	o.type = GGUF_TYPE_Q8_0;
	if (synth_write(&o, path_q8, &e))
		return fprintf(stderr, "%s\n", e.msg), -1;
	o.type = GGUF_TYPE_F16;
	if (synth_write(&o, path_f16, &e))
		return fprintf(stderr, "%s\n", e.msg), -1;
	return sync_file(path_q8) || sync_file(path_f16) ? -1 : 0;
}

static uint64_t rss_now(void)
{
	struct dm_mem_usage u;
	malloc_trim(0);
	dm_mem_usage(&u);
	return u.rss;
}

static struct mgr_model_status last_status;

static void cycle_ex(const char *path, enum mgr_load_mode mode, int32_t quant, bool drop_cache)
{
	struct engine_backend_cfg bc = { .drop_page_cache = drop_cache };
	struct mgr_cfg c = { 0 };
	struct mgr_model_cfg mc;
	struct mgr *m;
	struct mgr_lease *l;
	struct mgr_model_status s;
	struct dm_err e;
	struct engine *en;
	float *logits;
	int32_t toks[4] = { 1, 300, 400, 500 };
	uint64_t rss0, rss_loaded, rss1;
	double ratio;

	c.max_queue = 4;
	c.no_reaper = true;
	mgr_engine_backend(&c.backend, &bc);
	assert_int_equal(mgr_init(&m, &c, &e), 0);
	mgr_model_cfg_default(&mc);
	snprintf(mc.name, sizeof mc.name, "m");
	snprintf(mc.path, sizeof mc.path, "%s", path);
	mc.mode = mode;
	mc.quantize_on_load = quant;
	mc.keep_alive_ms = 0;  /* on demand: unload when the request ends */
	mc.warmup = 1;
	mc.n_ctx = 256;
	mc.n_threads = 2;
	assert_int_equal(mgr_add(m, &mc, &e), 0);

	rss0 = rss_now();
	if (mgr_acquire(m, "m", NULL, &l, &e))
		fail_msg("%s", e.msg);
	en = mgr_lease_handle(l);
	logits = malloc((size_t)en->m->hp.n_vocab * sizeof *logits);
	assert_int_equal(model_decode(en->ctx, toks, 4, logits, false, &e), 0);
	free(logits);
	rss_loaded = rss_now();
	mgr_status(m, &s, 1);
	ratio = (double)s.est_bytes / (double)(rss_loaded - rss0);
	print_message("      %s%s: estimate %.1f MiB, measured %.1f MiB (ratio %.3f), ",
		      mgr_mode_name(mode), quant >= 0 ? "+quantize" : "", s.est_bytes / 1048576.0,
		      (rss_loaded - rss0) / 1048576.0, ratio);
	if (MEASURE_RSS) {
		assert_true(rss_loaded - rss0 > 100u << 20); /* a model of over 100 MB */
		assert_true(ratio > 0.9 && ratio < 1.1);
	}
	mgr_release(l);
	assert_int_equal(mgr_status(m, &s, 1), 1);
	assert_int_equal(s.state, MGR_DORMANT);
	last_status = s;
	rss1 = rss_now();
	print_message("after unload %+.3f MiB vs before\n", ((double)rss1 - (double)rss0) / 1048576.0);
	if (MEASURE_RSS)
		assert_true(rss1 <= rss0 + (1u << 20));
	mgr_free(m);
}

static void cycle(const char *path, enum mgr_load_mode mode, int32_t quant)
{
	cycle_ex(path, mode, quant, false);
}

static void test_baseline_mmap(void **state)
{
	(void)state;
	cycle(path_q8, MGR_MODE_MMAP, -1);
}

static void test_baseline_read(void **state)
{
	(void)state;
	cycle(path_q8, MGR_MODE_READ, -1);
}

static void test_baseline_prefetch(void **state)
{
	(void)state;
	cycle(path_q8, MGR_MODE_PREFETCH, -1);
}

/* mlock needs RLIMIT_MEMLOCK above the model's size: raised here when the
 * process may (root), else the test is skipped. */
static void test_baseline_mlock(void **state)
{
	struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };
	(void)state;
	if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0)
		skip();
	cycle(path_q8, MGR_MODE_MLOCK, -1);
}

/* drop_page_cache: after unload the file's pages leave the page cache too
 * (mincore on a fresh mapping says how much stayed). */
static void test_drop_page_cache(void **state)
{
	uint64_t cached, size;
	(void)state;
	cycle_ex(path_q8, MGR_MODE_MMAP, -1, true);
	assert_int_equal(dm_file_cached(path_q8, &cached, &size), 0);
	print_message("      after unload with drop_page_cache: %.1f of %.1f MiB cached\n",
		      cached / 1048576.0, size / 1048576.0);
	assert_true(last_status.cached_after_unload < size / 10);
	/* without it the pages stay cached for the next load */
	cycle_ex(path_q8, MGR_MODE_MMAP, -1, false);
	assert_true(last_status.cached_after_unload > size / 2);
}

static void test_baseline_quantize_on_load(void **state)
{
	(void)state;
	cycle(path_f16, MGR_MODE_READ, GGUF_TYPE_Q8_0);
	cycle(path_f16, MGR_MODE_MMAP, GGUF_TYPE_Q8_0);
}

/* A quantize-on-load model computes what the same weights quantized ahead
 * of time compute. */
static void test_quantize_on_load_matches_file(void **state)
{
	struct mgr_model_cfg mc;
	struct engine *a, *b;
	struct dm_err e;
	int32_t toks[3] = { 1, 42, 4242 };
	float *la, *lb;
	int V;
	(void)state;
	mgr_model_cfg_default(&mc);
	mc.n_ctx = 16;
	mc.n_threads = 1;
	snprintf(mc.path, sizeof mc.path, "%s", path_f16);
	mc.quantize_on_load = GGUF_TYPE_Q8_0;
	assert_int_equal(engine_load(&a, &mc, NULL, NULL, &e), 0);
	snprintf(mc.path, sizeof mc.path, "%s", path_q8);
	mc.quantize_on_load = -1;
	assert_int_equal(engine_load(&b, &mc, NULL, NULL, &e), 0);
	V = a->m->hp.n_vocab;
	la = malloc((size_t)V * sizeof *la);
	lb = malloc((size_t)V * sizeof *lb);
	assert_int_equal(model_decode(a->ctx, toks, 3, la, false, &e), 0);
	assert_int_equal(model_decode(b->ctx, toks, 3, lb, false, &e), 0);
	/* the bytes: exactly our reference quantizer applied to the file's
	 * dequantized F16 rows */
	{
		const struct gguf_tensor *t = gguf_tensor_find(a->g, "blk.3.ffn_down.weight");
		size_t ib = kern_row_bytes(GGUF_TYPE_F16, t->ne[0]), ob = kern_row_bytes(GGUF_TYPE_Q8_0, t->ne[0]);
		float *row = malloc((size_t)t->ne[0] * sizeof *row);
		uint8_t *q = malloc(ob);
		assert_int_equal(a->m->layers[3].w_down.type, GGUF_TYPE_Q8_0);
		for (int64_t r = 0; r < t->ne[1]; r++) {
			assert_int_equal(kern_dequantize(GGUF_TYPE_F16, (const uint8_t *)t->data + (size_t)r * ib, row, t->ne[0], &e), 0);
			assert_int_equal(kern_quantize(GGUF_TYPE_Q8_0, row, q, t->ne[0], &e), 0);
			assert_memory_equal(q, (const uint8_t *)a->m->layers[3].w_down.data + (size_t)r * ob, ob);
		}
		free(row);
		free(q);
	}
	/* and the model: Q8_0 of the F16-rounded weights vs Q8_0 of the F32
	 * weights differ where F16 rounding moves a value across a Q8_0
	 * rounding boundary (a few % of values): logits NMSE measured 4.7e-4 */
	{
		double num = 0, den = 0;
		for (int i = 0; i < V; i++) {
			num += ((double)la[i] - lb[i]) * ((double)la[i] - lb[i]);
			den += (double)lb[i] * lb[i];
		}
		print_message("      quantize-on-load vs quantized file: NMSE %.3g\n", num / den);
		assert_true(num / den < 2e-3);
	}
	free(la);
	free(lb);
	engine_unload(a, false);
	engine_unload(b, false);
	mc.quantize_on_load = GGUF_TYPE_Q6_K;
	assert_int_equal(engine_load(&a, &mc, NULL, NULL, &e), DM_EINVAL);
	assert_non_null(strstr(e.msg, "quantize_on_load"));
}

/* kv_persist: an on-demand model saves its KV cache at unload and maps it
 * back at the next load (same logits as never unloading); a corrupt file is
 * refused and removed; a changed model file gets another cache; the
 * folder's bound removes the least recently written file. */
static void test_kv_persist(void **state)
{
	struct synth_opts o = { .type = GGUF_TYPE_F32, .seed = 9, .arch = "qwen3" };
	const int32_t prompt[12] = { 1, 300, 17, 42, 480, 511, 260, 3, 99, 128, 200, 7 }, next = 333;
	char model[512], dir[512], kvf[1400];
	struct mgr_model_cfg mc;
	struct engine *a, *b;
	struct dm_err e;
	float *la, *lb;
	int V;
	(void)state;

	snprintf(dir, sizeof dir, "%s", tu_tmp_path("kvdir"));
	setenv("DORMANT_KV_DIR", dir, 1);
	unsetenv("DORMANT_KV_MAX");
	snprintf(model, sizeof model, "%s", tu_tmp_path("kv-model.gguf"));
	assert_int_equal(synth_preset("tiny", &o.shape, &e), 0);
	if (synth_write(&o, model, &e))
		fail_msg("%s", e.msg);
	mgr_model_cfg_default(&mc);
	snprintf(mc.path, sizeof mc.path, "%s", model);
	mc.keep_alive_ms = 0; /* on demand: kv_persist defaults to disk */
	mc.n_ctx = 64;
	mc.n_threads = 1;

	/* a conversation, then unload: saved */
	assert_int_equal(engine_load(&a, &mc, NULL, NULL, &e), 0);
	assert_int_equal(engine_warmup(a, &e), 0);
	assert_int_equal(a->kv_restored, 0);
	assert_int_equal(model_decode(a->ctx, prompt, 12, NULL, false, &e), 0);
	V = a->m->hp.n_vocab;
	la = malloc((size_t)V * sizeof *la);
	lb = malloc((size_t)V * sizeof *lb);
	assert_int_equal(model_decode(a->ctx, &next, 1, la, false, &e), 0);
	a->ctx->n_past = 12; /* the conversation so far */
	snprintf(kvf, sizeof kvf, "%s", a->kv_path);
	engine_unload(a, false);
	assert_int_equal(access(kvf, R_OK), 0);

	/* the next load maps it back: the same logits for the next token */
	assert_int_equal(engine_load(&b, &mc, NULL, NULL, &e), 0);
	assert_int_equal(engine_warmup(b, &e), 0);
	assert_int_equal(b->kv_restored, 12);
	assert_int_equal(b->ctx->n_past, 12);
	assert_memory_equal(b->ctx->tokens, prompt, sizeof prompt);
	assert_int_equal(model_ctx_reuse(b->ctx, (const int32_t[13]){ 1, 300, 17, 42, 480, 511, 260, 3, 99, 128, 200,
								      7, 333 }, 13), 12);
	assert_int_equal(model_decode(b->ctx, &next, 1, lb, false, &e), 0);
	assert_memory_equal(la, lb, (size_t)V * sizeof *la);
	engine_unload(b, false); /* saves 13 positions */

	/* a corrupt file: refused, removed, the context empty */
	{
		int fd = open(kvf, O_RDWR);
		unsigned char c;
		assert_true(fd >= 0);
		assert_int_equal(pread(fd, &c, 1, 200), 1);
		c ^= 0x40;
		assert_int_equal(pwrite(fd, &c, 1, 200), 1);
		close(fd);
	}
	assert_int_equal(engine_load(&b, &mc, NULL, NULL, &e), 0);
	assert_int_equal(b->kv_restored, 0);
	assert_int_equal(b->ctx->n_past, 0);
	print_message("      corrupt KV file: %s\n", b->kv_note);
	assert_non_null(strstr(b->kv_note, "checksum"));
	assert_int_not_equal(access(kvf, F_OK), 0);
	engine_unload(b, false); /* n_past 0: nothing saved */
	assert_int_not_equal(access(kvf, F_OK), 0);

	/* a changed model file: another identity, the old cache is not used */
	assert_int_equal(engine_load(&a, &mc, NULL, NULL, &e), 0);
	assert_int_equal(model_decode(a->ctx, prompt, 12, NULL, false, &e), 0);
	engine_unload(a, false);
	assert_int_equal(access(kvf, R_OK), 0);
	{
		struct timespec ts[2] = { { 0, UTIME_OMIT }, { 1000000000, 0 } };
		assert_int_equal(utimensat(AT_FDCWD, model, ts, 0), 0);
	}
	assert_int_equal(engine_load(&a, &mc, NULL, NULL, &e), 0);
	assert_int_equal(a->kv_restored, 0);
	assert_string_not_equal(a->kv_path, kvf);
	assert_int_equal(model_decode(a->ctx, prompt, 12, NULL, false, &e), 0);

	/* the folder's bound: room for one file, the older one goes */
	{
		struct stat st;
		char bound[32];
		assert_int_equal(stat(kvf, &st), 0);
		snprintf(bound, sizeof bound, "%lld", (long long)st.st_size + 1);
		setenv("DORMANT_KV_MAX", bound, 1);
		engine_unload(a, false);
		assert_int_not_equal(access(kvf, F_OK), 0); /* the older file went */
		unsetenv("DORMANT_KV_MAX");
	}
	free(la);
	free(lb);
}

/* ---- context on demand (num_ctx) through the C API ---- */

/* A synthetic model of the tiny shape with a trained context of n_ctx
 * (and, when vocab > 0, that vocabulary and `layers` layers). */
static void write_ctx_model(const char *path, uint32_t n_ctx, uint32_t vocab, uint32_t layers)
{
	struct synth_opts o = { .seed = 7, .type = GGUF_TYPE_Q8_0 };
	struct dm_err e;
	assert_int_equal(synth_preset("tiny", &o.shape, &e), 0);
	o.shape.n_ctx = n_ctx;
	if (vocab)
		o.shape.n_vocab = vocab;
	if (layers)
		o.shape.n_layer = layers;
	if (synth_write(&o, path, &e))
		fail_msg("%s", e.msg);
}

static dormant *open_ini(const char *name, const char *text)
{
	const char *ini = tu_tmp_path(name);
	char err[256];
	dormant *d;
	assert_int_equal(tu_write_file(ini, text, strlen(text)), 0);
	if (dormant_open(&d, ini, NULL, err, sizeof err))
		fail_msg("%s", err);
	return d;
}

/* "word word ..." of n words (about 3 tokens each); caller frees. */
static char *words(int n)
{
	char *p = malloc((size_t)n * 5 + 1);
	assert_non_null(p);
	for (int i = 0; i < n; i++)
		memcpy(p + (size_t)i * 5, "word ", 5);
	p[(size_t)n * 5] = '\0';
	return p;
}

static struct dormant_model_status model_status(dormant *d, const char *name)
{
	struct dormant_model_status st[4];
	size_t n = dormant_status(d, st, 4);
	for (size_t i = 0; i < n && i < 4; i++)
		if (!strcmp(st[i].name, name))
			return st[i];
	fail_msg("model '%s' not registered", name);
	return st[0];
}

/* Requests of num_ctx 512, 4096, 2048, 512 and none (n_ctx 512) on one
 * model trained for 4096: each prompt (longer than any of them) is cut to
 * its own context and generation stops at its end; a num_ctx above the
 * trained length gets the trained length; the model loads once. */
static void test_num_ctx_alternate(void **state)
{
	const char *model = tu_tmp_path("ctx4096.gguf");
	static const int want[] = { 512, 4096, 2048, 512, 0, 8192 };
	char cfg[1024], err[256];
	char *text = words(2000);
	dormant *d;
	(void)state;
	write_ctx_model(model, 4096, 0, 0);
	snprintf(cfg, sizeof cfg, "[server]\nkeep_alive = 5m\n\n[model grow]\npath = %s\nthreads = 1\nn_ctx = 512\n",
		 model);
	d = open_ini("ctx4096.ini", cfg);
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		struct dormant_gen_opts o = { .max_tokens = 8, .temperature = 0, .top_k = -1, .top_p = -1,
					      .min_p = -1, .truncate = 1, .num_ctx = want[i] };
		struct dormant_gen_result r;
		int ctx = want[i] == 0 ? 512 : want[i] > 4096 ? 4096 : want[i];
		/* a different first word each time: no prefix worth reusing */
		text[0] = (char)('a' + i);
		if (dormant_generate(d, "grow", text, &o, NULL, NULL, &r, err, sizeof err))
			fail_msg("num_ctx %d: %s", want[i], err);
		print_message("      num_ctx %4d: context %d, prompt %d tokens (%d cached), %d generated (%s)\n", want[i],
			      r.n_ctx, r.n_prompt, r.n_cached, r.n_gen, r.finish);
		assert_int_equal(r.n_ctx, ctx);
		assert_int_equal(r.n_prompt, ctx - 1);
		/* the cache holds the prompt and every generated token but the
		 * last (sampled from the last position's logits) */
		assert_true(r.n_prompt + r.n_gen - 1 <= ctx);
	}
	assert_int_equal(model_status(d, "grow").load_count, 1);
	free(text);
	dormant_close(d);
}

/* max_ram admits the model with its n_ctx of 256 but not a request that
 * would grow the cache to 4096 positions: that request is refused with
 * "insufficient memory ... for this request" (DM_ETOOBIG, the server's
 * 507), a smaller one after it runs, nothing is unloaded. */
static void test_budget_refuses_growth(void **state)
{
	const char *model = tu_tmp_path("ctx-budget.gguf");
	char cfg[1024], err[256];
	uint64_t est;
	dormant *d;
	struct dormant_gen_opts o = { .max_tokens = 4, .temperature = 0, .top_k = -1, .top_p = -1, .min_p = -1,
				      .truncate = 1 };
	struct dormant_gen_result r;
	char *text = words(2000);
	(void)state;
	write_ctx_model(model, 4096, 0, 0);
	snprintf(cfg, sizeof cfg, "[model grow]\npath = %s\nthreads = 1\nn_ctx = 256\n", model);
	d = open_ini("ctx-budget0.ini", cfg);
	assert_int_equal(dormant_check_model(d, "grow", &est, err, sizeof err), 0);
	dormant_close(d);
	/* the estimate (its 256 positions) and 1 MiB more: 4096 positions of
	 * 1 KiB each cannot fit, 1024 can */
	snprintf(cfg, sizeof cfg, "[server]\nmax_ram = %llu\nkeep_alive = 5m\n\n[model grow]\npath = %s\nthreads = 1\nn_ctx = 256\n",
		 (unsigned long long)(est + (1u << 20)), model);
	d = open_ini("ctx-budget.ini", cfg);
	o.num_ctx = 4096;
	assert_int_equal(dormant_generate(d, "grow", text, &o, NULL, NULL, &r, err, sizeof err), DM_ETOOBIG);
	print_message("      num_ctx 4096 under max_ram %.1f MiB: %s\n", (est + (1u << 20)) / 1048576.0, err);
	assert_non_null(strstr(err, "insufficient memory"));
	assert_non_null(strstr(err, "for this request"));
	assert_int_equal(r.n_ctx, 4096);
	o.num_ctx = 1024;
	if (dormant_generate(d, "grow", text, &o, NULL, NULL, &r, err, sizeof err))
		fail_msg("num_ctx 1024: %s", err);
	assert_int_equal(r.n_prompt, 1023);
	assert_string_equal(model_status(d, "grow").state, "ready");
	assert_int_equal(model_status(d, "grow").load_count, 1);
	free(text);
	dormant_close(d);
}

/* What the manager says a loaded model holds (dormant_status bytes, /api/ps
 * size) against the process's RSS above its value before the load, after
 * the load (warm-up makes 1024 positions resident), a short request, a
 * long one (num_ctx 4096: the cache grows) and a short one again (the
 * pages past the conversation go back): within 10 % each time. */
static void test_held_bytes_follow_rss(void **state)
{
	const char *model = tu_tmp_path("ctx-rss.gguf");
	char cfg[1024], err[256];
	dormant *d;
	char *text = words(2000);
	uint64_t rss0;
	static const char *const what[] = { "after load", "after a short request", "after a long request",
					    "after a short request again" };
	static const int num_ctx[] = { 0, 64, 4096, 64 };
	(void)state;
	/* 8 KiB of KV cache per position (8 layers), 8.7 MB of embeddings */
	write_ctx_model(model, 4096, 32000, 8);
	snprintf(cfg, sizeof cfg, "[server]\nkeep_alive = 5m\n\n[model m]\npath = %s\nthreads = 1\nn_ctx = 512\n", model);
	d = open_ini("ctx-rss.ini", cfg);
	rss0 = rss_now();
	assert_int_equal(dormant_load(d, "m", err, sizeof err), 0);
	for (int k = 0; k < 4; k++) {
		struct dormant_gen_opts o = { .max_tokens = 4, .temperature = 0, .top_k = -1, .top_p = -1,
					      .min_p = -1, .truncate = 1, .num_ctx = num_ctx[k] };
		struct dormant_gen_result r;
		struct dormant_model_status st;
		uint64_t rss;
		double ratio;
		if (k > 0) {
			text[0] = (char)('a' + k);
			if (dormant_generate(d, "m", text, &o, NULL, NULL, &r, err, sizeof err))
				fail_msg("%s", err);
		}
		rss = rss_now();
		st = model_status(d, "m");
		ratio = (double)st.bytes / (double)(rss - rss0);
		print_message("      %-28s held %.1f MiB, RSS +%.1f MiB (ratio %.3f)\n", what[k], st.bytes / 1048576.0,
			      (rss - rss0) / 1048576.0, ratio);
		if (MEASURE_RSS)
			assert_true(ratio > 0.9 && ratio < 1.1);
	}
	free(text);
	dormant_close(d);
}

struct text {
	char buf[4096];
	size_t n;
};

static int collect(void *ud, const char *t, size_t n)
{
	struct text *x = ud;
	if (x->n + n < sizeof x->buf) {
		memcpy(x->buf + x->n, t, n);
		x->n += n;
	}
	return 0;
}

/* Two conversations taking turns on one loaded model (A, B, A, B, A, B):
 * every turn after a conversation's first reuses its previous prompt (its
 * saved prefix comes back although the other conversation ran in
 * between), and the greedy text of every turn equals that of a model that
 * keeps no cache at all (loaded for each request, kv_persist off). */
static void test_alternating_conversations(void **state)
{
	const char *model = tu_tmp_path("ctx-conv.gguf");
	static const char *const start[2] = { "alpha beta gamma delta ", "one two three four five six " };
	static const char *const more[2] = { "epsilon zeta eta ", "seven eight nine " };
	char cfg[1024], err[256], prompt[2][2048];
	int prev[2] = { 0, 0 };
	dormant *d;
	(void)state;
	write_ctx_model(model, 512, 0, 0);
	snprintf(cfg, sizeof cfg,
		 "[server]\nkeep_alive = 5m\n\n[model warm]\npath = %s\nthreads = 1\n\n"
		 "[model cold]\npath = %s\nthreads = 1\nkeep_alive = 0\nkv_persist = off\nprefix_cache_max = 0\n",
		 model, model);
	d = open_ini("ctx-conv.ini", cfg);
	for (int c = 0; c < 2; c++) {
		prompt[c][0] = '\0';
		for (int i = 0; i < 6; i++)
			strcat(prompt[c], start[c]);
	}
	for (int turn = 0; turn < 6; turn++) {
		int c = turn % 2;
		struct dormant_gen_opts o = { .max_tokens = 8, .temperature = 0, .top_k = -1, .top_p = -1,
					      .min_p = -1 };
		struct dormant_gen_result rw, rc;
		struct text tw = { .n = 0 }, tc = { .n = 0 };
		if (turn >= 2)
			strcat(prompt[c], more[c]); /* the conversation's next turn */
		if (dormant_generate(d, "warm", prompt[c], &o, collect, &tw, &rw, err, sizeof err) ||
		    dormant_generate(d, "cold", prompt[c], &o, collect, &tc, &rc, err, sizeof err))
			fail_msg("%s", err);
		print_message("      turn %d (%c): prompt %d tokens, %d cached (previous prompt %d), text %s\n", turn + 1,
			      "AB"[c], rw.n_prompt, rw.n_cached, prev[c], tw.n == tc.n && !memcmp(tw.buf, tc.buf, tw.n)
			      ? "as without a cache" : "DIFFERS");
		assert_int_equal(rc.n_cached, 0);
		assert_int_equal(rw.n_prompt, rc.n_prompt);
		if (turn >= 2) {
			/* its previous prompt, but for a token or two where the
			 * words meet, came from the cache */
			assert_true(rw.n_cached >= prev[c] - 2);
			assert_true(rw.n_cached < rw.n_prompt);
		}
		assert_int_equal(tw.n, tc.n);
		assert_memory_equal(tw.buf, tc.buf, tw.n);
		prev[c] = rw.n_prompt;
	}
	assert_int_equal(model_status(d, "warm").load_count, 1);
	dormant_close(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_baseline_mmap),
		cmocka_unit_test(test_baseline_read),
		cmocka_unit_test(test_baseline_prefetch),
		cmocka_unit_test(test_baseline_mlock),
		cmocka_unit_test(test_drop_page_cache),
		cmocka_unit_test(test_kv_persist),
		cmocka_unit_test(test_baseline_quantize_on_load),
		cmocka_unit_test(test_quantize_on_load_matches_file),
		cmocka_unit_test(test_num_ctx_alternate),
		cmocka_unit_test(test_budget_refuses_growth),
		cmocka_unit_test(test_held_bytes_follow_rss),
		cmocka_unit_test(test_alternating_conversations),
	};
	return cmocka_run_group_tests_name("engine", tests, setup, NULL);
}

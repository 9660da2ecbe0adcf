/*
 * tests/discover — model discovery (mgr/discover.h): the scanner's names,
 * split files, mmproj files, broken files, the header cache and rescans on
 * a fake models folder, Ollama store, Hugging Face hub cache and LM Studio
 * tree built here with a tiny synthetic model; registration through the
 * runtime (config wins, [server] defaults, Ollama defaults); and a real
 * `dormant serve` serving them by name (/api/tags, /v1/models, generate,
 * POST /api/rescan, SIGHUP), `dormant ls` and `dormant run NAME`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dormant.h"
#include "mgr/api.h"
#include "mgr/discover.h"
#include "model/synth.h"
#include "server/client.h"
#include "tutil.h"

static char *MODEL;   /* a tiny synthetic GGUF's bytes */
static size_t MODEL_N;
static char MODEL_SHA[65];

static void mkdir_p(const char *path)
{
	char p[1024];
	snprintf(p, sizeof p, "%s", path);
	for (char *s = p + 1; *s; s++)
		if (*s == '/') {
			*s = '\0';
			mkdir(p, 0755);
			*s = '/';
		}
	mkdir(p, 0755);
}

/* Writes data to path, making its folders. */
static void put(const char *path, const void *data, size_t n)
{
	char dir[1024];
	snprintf(dir, sizeof dir, "%s", path);
	*strrchr(dir, '/') = '\0';
	mkdir_p(dir);
	assert_int_equal(tu_write_file(path, data, n), 0);
}

static void put_model(const char *path)
{
	put(path, MODEL, MODEL_N);
}

static const char *P(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *P(const char *fmt, ...)
{
	static char buf[8][1024];
	static int k;
	va_list ap;
	char *b = buf[k++ % 8];
	int n = snprintf(b, 1024, "%s/", tu_tmpdir());
	va_start(ap, fmt);
	vsnprintf(b + n, 1024 - (size_t)n, fmt, ap);
	va_end(ap);
	return b;
}

/* An Ollama blob holding data; its digest into digest ("sha256:..."). */
static void ollama_blob(const char *root, const void *data, size_t n, char digest[72])
{
	char hex[65], path[1024];
	tu_sha256_hex(data, n, hex);
	snprintf(digest, 72, "sha256:%s", hex);
	snprintf(path, sizeof path, "%s/blobs/sha256-%s", root, hex);
	put(path, data, n);
}

/* An Ollama store: llama3.2:1b (system + params + template layers),
 * alice/tiny:latest (model layer only), example.com/ns/m:v1, and
 * broken:x whose model blob is missing. */
static void build_ollama(const char *root, const char *params)
{
	static const char *sys = "You are a terse pirate.";
	static const char *tmpl = "{{ .Prompt }}";
	char dm[72], ds[72], dp[72], dt[72], man[4096], path[1024];

	ollama_blob(root, MODEL, MODEL_N, dm);
	ollama_blob(root, sys, strlen(sys), ds);
	ollama_blob(root, params, strlen(params), dp);
	ollama_blob(root, tmpl, strlen(tmpl), dt);
	snprintf(man, sizeof man,
		 "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
		 "\"config\":{\"mediaType\":\"application/vnd.docker.container.image.v1+json\",\"digest\":\"%s\",\"size\":1},"
		 "\"layers\":[{\"mediaType\":\"application/vnd.ollama.image.model\",\"digest\":\"%s\",\"size\":%zu},"
		 "{\"mediaType\":\"application/vnd.ollama.image.template\",\"digest\":\"%s\",\"size\":%zu},"
		 "{\"mediaType\":\"application/vnd.ollama.image.system\",\"digest\":\"%s\",\"size\":%zu},"
		 "{\"mediaType\":\"application/vnd.ollama.image.params\",\"digest\":\"%s\",\"size\":%zu}]}",
		 dp, dm, MODEL_N, dt, strlen(tmpl), ds, strlen(sys), dp, strlen(params));
	snprintf(path, sizeof path, "%s/manifests/registry.ollama.ai/library/llama3.2/1b", root);
	put(path, man, strlen(man));
	snprintf(man, sizeof man,
		 "{\"layers\":[{\"mediaType\":\"application/vnd.ollama.image.model\",\"digest\":\"%s\"}]}", dm);
	snprintf(path, sizeof path, "%s/manifests/registry.ollama.ai/alice/tiny/latest", root);
	put(path, man, strlen(man));
	snprintf(path, sizeof path, "%s/manifests/example.com/ns/m/v1", root);
	put(path, man, strlen(man));
	snprintf(man, sizeof man,
		 "{\"layers\":[{\"mediaType\":\"application/vnd.ollama.image.model\",\"digest\":\"sha256:%064d\"}]}", 0);
	snprintf(path, sizeof path, "%s/manifests/registry.ollama.ai/library/broken/x", root);
	put(path, man, strlen(man));
}

/* A hub cache: models--org--Repo-GGUF with refs/main -> rev1, whose
 * snapshot links repo-q8.gguf and mmproj-repo.gguf into ../../blobs; an
 * older snapshot rev0 (not main) with old.gguf. */
static void build_hf(const char *root)
{
	char repo[512], path[1024], link[256];
	snprintf(repo, sizeof repo, "%.480s/models--org--Repo-GGUF", root);
	snprintf(path, sizeof path, "%s/blobs/%s", repo, MODEL_SHA);
	put(path, MODEL, MODEL_N);
	snprintf(path, sizeof path, "%s/refs/main", repo);
	put(path, "rev1", 4);
	snprintf(path, sizeof path, "%s/snapshots/rev1", repo);
	mkdir_p(path);
	snprintf(link, sizeof link, "../../blobs/%s", MODEL_SHA);
	snprintf(path, sizeof path, "%s/snapshots/rev1/repo-q8.gguf", repo);
	assert_int_equal(symlink(link, path), 0);
	snprintf(path, sizeof path, "%s/snapshots/rev1/mmproj-repo.gguf", repo);
	assert_int_equal(symlink(link, path), 0);
	snprintf(path, sizeof path, "%s/snapshots/rev0/old.gguf", repo);
	put_model(path);
}

static void build_lms(const char *root)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/pub/repo/x-Q8_0.gguf", root);
	put_model(path);
}

static int setup(void **state)
{
	struct synth_opts o = { .type = 8 /* Q8_0 */ };
	struct dm_err e;
	const char *mp = tu_tmp_path("tiny.gguf");
	(void)state;
	unsetenv("DORMANT_DISCOVER"); /* tests/run.sh sets it for the other tests */
	if (synth_preset("tiny", &o.shape, &e) || synth_write(&o, mp, &e))
		return -1;
	if (!(MODEL = tu_read_file(mp, &MODEL_N)))
		return -1;
	tu_sha256_hex(MODEL, MODEL_N, MODEL_SHA);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(MODEL);
	return 0;
}

static const struct disc_model *find(const struct disc *d, const char *name)
{
	const struct disc_model *m = disc_find(d, name);
	if (!m)
		fail_msg("no entry '%s'", name);
	return m;
}

/* ---- the scanner ---- */

static void test_dir_names(void **state)
{
	struct disc_cfg c = { .dirs = { P("d1") }, .n_dirs = 1 };
	const struct disc_model *m;
	struct disc *d;
	struct dm_err e;
	(void)state;

	put_model(P("d1/a.gguf"));
	put_model(P("d1/sub/b.GGUF"));
	put_model(P("d1/mmproj-a-f16.gguf"));
	put_model(P("d1/s-00001-of-00002.gguf"));
	put_model(P("d1/s-00002-of-00002.gguf"));
	put(P("d1/bad.gguf"), "junk", 4);
	put(P("d1/notes.txt"), "x", 1);
	assert_int_equal(disc_init(&d, &e), 0);
	assert_int_equal(disc_scan(d, &c, &e), 0);
	assert_int_equal(disc_count(d), 4); /* a, bad, s, sub/b */
	m = find(d, "a");
	assert_int_equal(m->rc, 0);
	assert_int_equal(m->source, DISC_DIR);
	assert_string_equal(m->arch, "llama");
	assert_string_equal(m->quant, "Q8_0");
	assert_true(m->n_params > 0);
	assert_true(m->n_ctx_train > 0);
	assert_int_equal(m->size, MODEL_N);
	assert_int_equal(find(d, "sub/b")->rc, 0);
	m = find(d, "bad");
	assert_int_equal(m->rc, DM_EFORMAT);
	assert_non_null(strstr(m->err, "bad magic"));
	m = find(d, "s");
	assert_int_equal(m->n_parts, 2);
	assert_int_equal(m->size, 2 * MODEL_N);
	assert_int_equal(m->rc, DM_EUNSUPPORTED);
	assert_non_null(strstr(m->err, "split into 2 files"));
	assert_null(disc_find(d, "mmproj-a-f16"));
	assert_null(disc_find(d, "s-00002-of-00002"));
	disc_free(d);
}

static void test_cache_and_rescan(void **state)
{
	struct disc_cfg c = { .dirs = { P("d2") }, .n_dirs = 1 };
	struct disc *d;
	struct dm_err e;
	uint64_t r0;
	struct timespec ts[2] = { { 1000, 0 }, { 1000, 0 } };
	(void)state;

	put_model(P("d2/a.gguf"));
	put_model(P("d2/b.gguf"));
	assert_int_equal(disc_init(&d, &e), 0);
	assert_int_equal(disc_scan(d, &c, &e), 0);
	r0 = disc_header_reads(d);
	assert_int_equal(r0, 2);
	/* unchanged (size, mtime): no header opened */
	assert_int_equal(disc_scan(d, &c, &e), 0);
	assert_int_equal(disc_header_reads(d), r0);
	/* a new file is read, a removed one dropped */
	put_model(P("d2/c.gguf"));
	assert_int_equal(unlink(P("d2/a.gguf")), 0);
	assert_int_equal(disc_scan(d, &c, &e), 0);
	assert_int_equal(disc_header_reads(d), r0 + 1);
	assert_int_equal(disc_count(d), 2);
	assert_null(disc_find(d, "a"));
	assert_int_equal(find(d, "c")->rc, 0);
	/* same size, other mtime: read again */
	assert_int_equal(utimensat(AT_FDCWD, P("d2/b.gguf"), ts, 0), 0);
	assert_int_equal(disc_scan(d, &c, &e), 0);
	assert_int_equal(disc_header_reads(d), r0 + 2);
	/* replaced by a broken file: listed with its error */
	put(P("d2/b.gguf"), "GGUF", 4);
	assert_int_equal(disc_scan(d, &c, &e), 0);
	assert_true(find(d, "b")->rc < 0);
	disc_free(d);
}

static void test_ollama_store(void **state)
{
	struct disc_cfg c = { .ollama = P("ollama") };
	const struct disc_model *m;
	struct disc *d;
	struct dm_err e;
	(void)state;

	build_ollama(P("ollama"), "{\"stop\":[\"<|eot|>\",\"END\"],\"temperature\":0.25,\"num_ctx\":256,\"top_k\":7}");
	assert_int_equal(disc_init(&d, &e), 0);
	assert_int_equal(disc_scan(d, &c, &e), 0);
	assert_int_equal(disc_count(d), 4);
	m = find(d, "llama3.2:1b");
	assert_int_equal(m->rc, 0);
	assert_int_equal(m->source, DISC_OLLAMA);
	assert_non_null(strstr(m->path, "/blobs/sha256-"));
	assert_non_null(strstr(m->path, MODEL_SHA));
	assert_non_null(strstr(m->origin, "manifests/registry.ollama.ai/library/llama3.2/1b"));
	assert_string_equal(m->system, "You are a terse pirate.");
	assert_true(m->params.has_temperature);
	assert_true(m->params.temperature == 0.25f);
	assert_true(m->params.has_top_k);
	assert_int_equal(m->params.top_k, 7);
	assert_int_equal(m->params.num_ctx, 256);
	assert_string_equal(m->params.stop[0], "<|eot|>");
	assert_string_equal(m->params.stop[1], "END");
	assert_string_equal(m->params.stop[2], "");
	assert_false(m->params.has_top_p);
	m = find(d, "alice/tiny:latest");
	assert_int_equal(m->rc, 0);
	assert_string_equal(m->system, "");
	assert_int_equal(find(d, "example.com/ns/m:v1")->rc, 0);
	m = find(d, "broken:x");
	assert_int_equal(m->rc, DM_EFORMAT);
	assert_non_null(strstr(m->err, "blob is missing"));
	/* the same blob three times: its header read once */
	assert_int_equal(disc_header_reads(d), 1);
	disc_free(d);
}

static void test_hf_and_lmstudio(void **state)
{
	struct disc_cfg c = { .hf = P("hf"), .lmstudio = P("lms") };
	const struct disc_model *m;
	struct disc *d;
	struct dm_err e;
	(void)state;

	build_hf(P("hf"));
	build_lms(P("lms"));
	assert_int_equal(disc_init(&d, &e), 0);
	assert_int_equal(disc_scan(d, &c, &e), 0);
	assert_int_equal(disc_count(d), 2);
	m = find(d, "org/Repo-GGUF:repo-q8");
	assert_int_equal(m->rc, 0);
	assert_int_equal(m->source, DISC_HF);
	assert_int_equal(m->size, MODEL_N); /* the link followed */
	assert_string_equal(m->arch, "llama");
	assert_null(disc_find(d, "org/Repo-GGUF:old")); /* not refs/main's snapshot */
	assert_null(disc_find(d, "org/Repo-GGUF:mmproj-repo"));
	m = find(d, "pub/repo:x-Q8_0");
	assert_int_equal(m->rc, 0);
	assert_int_equal(m->source, DISC_LMSTUDIO);
	disc_free(d);
}

static const char *fake_env(const char *name)
{
	if (!strcmp(name, "HOME"))
		return P("fakehome");
	if (!strcmp(name, "HF_HOME"))
		return P("hfhome");
	return NULL;
}

static void test_default_roots(void **state)
{
	struct disc_cfg c = { .n_dirs = 0 };
	char bufs[3][MGR_PATH_MAX];
	(void)state;

	mkdir_p(P("fakehome/.ollama/models"));
	mkdir_p(P("hfhome/hub"));
	disc_default_roots(&c, fake_env, bufs);
	assert_non_null(c.ollama);
	assert_string_equal(c.ollama, P("fakehome/.ollama/models"));
	assert_non_null(c.hf);
	assert_string_equal(c.hf, P("hfhome/hub"));
	assert_null(c.lmstudio); /* no ~/.lmstudio/models: not scanned */
}

static void test_name_valid(void **state)
{
	(void)state;
	assert_true(mgr_name_valid("qwen3:4b"));
	assert_true(mgr_name_valid("org/Repo-GGUF:file-q4"));
	assert_true(mgr_name_valid("a.b/c"));
	assert_false(mgr_name_valid(""));
	assert_false(mgr_name_valid("a//b"));
	assert_false(mgr_name_valid("/a"));
	assert_false(mgr_name_valid("a/"));
	assert_false(mgr_name_valid("a/../b"));
	assert_false(mgr_name_valid("a\tb"));
	assert_false(mgr_name_valid("a\\b"));
}

/* ---- through the runtime ---- */

static bool registered(dormant *d, const char *name, struct dormant_model_status *out)
{
	struct dormant_model_status st[64];
	size_t n = dormant_status(d, st, 64);
	for (size_t i = 0; i < n && i < 64; i++)
		if (!strcmp(st[i].name, name)) {
			if (out)
				*out = st[i];
			return true;
		}
	return false;
}

static void test_runtime_register(void **state)
{
	char ini[2048], err[256], d3b[1024];
	const char *dirs[] = { d3b };
	struct dormant_model_status st;
	struct dormant_rescan rs;
	struct dm_err e;
	dormant *d;
	(void)state;

	snprintf(d3b, sizeof d3b, "%s", P("d3b")); /* P's buffers rotate */
	put_model(P("d3/a.gguf"));
	put_model(P("d3/b.gguf"));
	put_model(P("d3b/c.gguf"));
	put_model(P("other.gguf"));
	snprintf(ini, sizeof ini,
		 "[server]\nkeep_alive = 7s\nmodels_dir = %s\ndiscover = false\n\n[model a]\npath = %s\nkeep_alive = 0\n",
		 P("d3"), P("other.gguf"));
	put(P("d3.ini"), ini, strlen(ini));
	assert_int_equal(dormant_open(&d, P("d3.ini"), NULL, err, sizeof err), 0);
	assert_int_equal(dormant_discovery_set(d, dirs, 1, -1, &e), 0);
	assert_int_equal(dormant_rescan(d, &rs, &e), 0);
	assert_int_equal(rs.found, 3);
	assert_int_equal(rs.added, 2);    /* b, c */
	assert_int_equal(rs.shadowed, 1); /* a: the config's */
	/* config wins */
	assert_true(registered(d, "a", &st));
	assert_string_equal(st.path, P("other.gguf"));
	assert_int_equal(st.keep_alive_ms, 0);
	assert_false(dormant_discovered_model(d, "a", NULL));
	/* [server] defaults apply to discovered models */
	assert_true(registered(d, "b", &st));
	assert_int_equal(st.keep_alive_ms, 7000);
	assert_true(dormant_discovered_model(d, "c", NULL));
	assert_int_equal(dormant_check_model(d, "b", NULL, err, sizeof err), 0);
	/* a removed file is unregistered at the next scan */
	assert_int_equal(unlink(P("d3/b.gguf")), 0);
	assert_int_equal(dormant_rescan(d, &rs, &e), 0);
	assert_int_equal(rs.removed, 1);
	assert_false(registered(d, "b", NULL));
	assert_true(registered(d, "c", NULL));
	dormant_close(d);
}

static int count_tokens(void *ud, const char *t, size_t n)
{
	(void)ud, (void)t, (void)n;
	return 0;
}

/* An Ollama model's params are request defaults (num_predict, num_ctx as
 * n_ctx); the same file through the configuration has none. */
static void test_ollama_defaults(void **state)
{
	char ini[1024], err[256];
	struct dormant_gen_result res;
	struct dm_err e;
	dormant *d;
	(void)state;

	build_ollama(P("ollama2"), "{\"num_predict\":3,\"num_ctx\":96,\"temperature\":0}");
	snprintf(ini, sizeof ini, "[model plain]\npath = %s\n", P("tiny.gguf"));
	put(P("d4.ini"), ini, strlen(ini));
	assert_int_equal(setenv("OLLAMA_MODELS", P("ollama2"), 1), 0);
	assert_int_equal(setenv("HOME", P("emptyhome"), 1), 0);
	assert_int_equal(dormant_open(&d, P("d4.ini"), NULL, err, sizeof err), 0);
	assert_int_equal(dormant_rescan(d, NULL, &e), 0);
	unsetenv("OLLAMA_MODELS");
	assert_int_equal(dormant_generate(d, "llama3.2:1b", "hello there", NULL, count_tokens, NULL, &res, err,
					  sizeof err), 0);
	assert_int_equal(res.n_ctx, 96);
	assert_true(res.n_gen <= 3);
	{
		struct dormant_gen_opts o = { .max_tokens = 0, .temperature = 0, .top_k = -1, .top_p = -1,
					      .min_p = -1 };
		assert_int_equal(dormant_generate(d, "plain", "hello there", &o, count_tokens, NULL, &res, err,
						  sizeof err), 0);
		assert_true(res.n_ctx != 96);
		assert_true(res.n_gen > 3); /* so the 3 above came from the params layer */
	}
	dormant_close(d);
}

/* ---- through a real server and the CLI ---- */

static char *get(int port, const char *method, const char *path, const char *body, int *status)
{
	struct srv_http_resp r;
	struct dm_err e;
	char *out;
	if (srv_http("127.0.0.1", (uint16_t)port, method, path, body ? "Content-Type: application/json\r\n" : NULL,
		     body, body ? strlen(body) : 0, 20000, NULL, NULL, &r, &e))
		fail_msg("%s %s: %s", method, path, e.msg);
	*status = r.status;
	out = strndup(r.body ? r.body : "", r.body_len);
	srv_http_resp_free(&r);
	return out;
}

static void test_serve_discovered(void **state)
{
	const char *argv[] = { "--models-dir", P("d5"), "--quiet", NULL };
	char *body, *out;
	int pid, port, status;
	(void)state;

	put_model(P("d5/local.gguf"));
	put(P("d5/bad.gguf"), "nope", 4);
	build_ollama(P("home5/.ollama/models"), "{\"temperature\":0.5}");
	build_hf(P("home5/.cache/huggingface/hub"));
	build_lms(P("home5/.lmstudio/models"));
	assert_int_equal(setenv("HOME", P("home5"), 1), 0);
	unsetenv("OLLAMA_MODELS");
	unsetenv("HF_HUB_CACHE");
	unsetenv("HF_HOME");
	assert_int_equal(tu_serve_start(argv, NULL, &pid, &port), 0);

	body = get(port, "GET", "/api/tags", NULL, &status);
	assert_int_equal(status, 200);
	assert_non_null(strstr(body, "\"llama3.2:1b\""));
	assert_non_null(strstr(body, "\"alice/tiny:latest\""));
	assert_non_null(strstr(body, "\"org/Repo-GGUF:repo-q8\""));
	assert_non_null(strstr(body, "\"pub/repo:x-Q8_0\""));
	assert_non_null(strstr(body, "\"local\""));
	assert_non_null(strstr(body, "\"source\""));
	assert_non_null(strstr(body, "bad magic")); /* listed with its error */
	free(body);
	body = get(port, "POST", "/api/generate",
		   "{\"model\":\"llama3.2:1b\",\"prompt\":\"hi\",\"stream\":false,\"options\":{\"num_predict\":2}}",
		   &status);
	assert_int_equal(status, 200);
	free(body);
	body = get(port, "POST", "/v1/chat/completions",
		   "{\"model\":\"org/Repo-GGUF:repo-q8\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":2}",
		   &status);
	assert_int_equal(status, 200);
	free(body);

	/* POST /api/rescan picks up a new file */
	put_model(P("d5/later.gguf"));
	body = get(port, "GET", "/v1/models", NULL, &status);
	assert_null(strstr(body, "\"later\""));
	free(body);
	body = get(port, "POST", "/api/rescan", "{}", &status);
	assert_int_equal(status, 200);
	free(body);
	body = get(port, "GET", "/v1/models", NULL, &status);
	assert_non_null(strstr(body, "\"later\""));
	free(body);

	/* SIGHUP drops a removed one */
	assert_int_equal(unlink(P("d5/later.gguf")), 0);
	assert_int_equal(kill(pid, SIGHUP), 0);
	for (int i = 0; i < 100; i++) {
		bool gone;
		body = get(port, "GET", "/v1/models", NULL, &status);
		gone = !strstr(body, "\"later\"");
		free(body);
		if (gone)
			break;
		if (i == 99)
			fail_msg("SIGHUP did not rescan");
		usleep(50000);
	}

	/* dormant ls against the server */
	out = tu_capture(&status, "%s ls --port %d", tu_dormant(), port);
	assert_int_equal(status, 0);
	assert_non_null(strstr(out, "llama3.2:1b"));
	assert_non_null(strstr(out, "ollama"));
	free(out);
	assert_int_equal(tu_serve_stop(pid), 0);

	/* dormant ls without a server, and --no-discover */
	out = tu_capture(&status, "%s ls --models-dir %s", tu_dormant(), P("d5"));
	assert_int_equal(status, 0);
	assert_non_null(strstr(out, "org/Repo-GGUF:repo-q8"));
	assert_non_null(strstr(out, "error:"));
	free(out);
	out = tu_capture(&status, "%s ls --models-dir %s --no-discover --json", tu_dormant(), P("d5"));
	assert_int_equal(status, 0);
	assert_non_null(strstr(out, "\"local\""));
	assert_null(strstr(out, "llama3.2:1b"));
	free(out);

	/* dormant run by a discovered name; an unknown name is an error */
	out = tu_capture(&status, "%s run llama3.2:1b hello -n 2 2>&1", tu_dormant());
	assert_int_equal(status, 0);
	free(out);
	out = tu_capture(&status, "%s run no-such:model hello -n 2 2>&1", tu_dormant());
	assert_int_not_equal(status, 0);
	assert_non_null(strstr(out, "neither a file nor a discovered model"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dir_names),
		cmocka_unit_test(test_cache_and_rescan),
		cmocka_unit_test(test_ollama_store),
		cmocka_unit_test(test_hf_and_lmstudio),
		cmocka_unit_test(test_default_roots),
		cmocka_unit_test(test_name_valid),
		cmocka_unit_test(test_runtime_register),
		cmocka_unit_test(test_ollama_defaults),
		cmocka_unit_test(test_serve_discovered),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

/* tests/server — `dormant serve`'s HTTP API against a server on a random
 * loopback port with a tiny synthetic model: OpenAI and Ollama endpoints
 * (streamed and not, checked against the in-process library call), the
 * lifecycle endpoints, auth, every bad-input rule, a full queue (503), a
 * client that goes away (cancelled), 32 concurrent clients on a dormant
 * model (one load), /metrics through promtool, idle RSS and CPU of a real
 * `dormant serve` process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "dormant.h"
#include "server/client.h"
#include "server/server.h"
#include "tsrv.h"
#include "tutil.h"

static dormant *D;
static struct srv *S;
static uint16_t PORT;
static char MODEL[512];

static int setup(void **state)
{
	char cfg[2048];
	(void)state;
	snprintf(MODEL, sizeof MODEL, "%s", tu_tmp_path("server.gguf"));
	if (tu_system("%s synth --preset tiny --type Q8_0 -o %s", tu_dormant(), MODEL))
		return -1;
	/* keep-alive 5 min by default; queue long enough for 32 clients */
	snprintf(cfg, sizeof cfg,
		 "[server]\nkeep_alive = 5m\nmax_queue = 64\nqueue_timeout = 60s\nmax_tokens = 512\n"
		 "max_body = 64KiB\nmax_connections = 128\nmax_connections_per_ip = 128\n\n[model tiny]\npath = %s\nthreads = 1\n\n"
		 "[model ondemand]\npath = %s\nthreads = 1\nkeep_alive = 0\n",
		 MODEL, MODEL);
	return tsrv_open("server.ini", cfg, NULL, &D, &S, &PORT);
}

static int teardown(void **state)
{
	(void)state;
	tsrv_close(D, S);
	return 0;
}

/* ---- helpers ---- */

static int http(const char *method, const char *path, const char *body, struct srv_http_resp *r)
{
	struct dm_err e;
	int rc = srv_http("127.0.0.1", PORT, method, path, NULL, body, body ? strlen(body) : 0, 30000, NULL,
			  NULL, r, &e);
	if (rc)
		fprintf(stderr, "http %s %s: %s\n", method, path, e.msg);
	return rc ? -1 : r->status;
}

/* The JSON body of a request that must answer `want`. */
static json_t *call(const char *method, const char *path, const char *body, int want)
{
	struct srv_http_resp r;
	json_error_t je;
	json_t *o;
	int st = http(method, path, body, &r);
	if (st != want)
		fprintf(stderr, "%s %s -> %d (want %d): %s\n", method, path, st, want, st > 0 ? r.body : "");
	assert_int_equal(st, want);
	o = json_loadb(r.body, r.body_len, JSON_ALLOW_NUL, &je); /* a random model may say \u0000 */
	if (!o)
		fprintf(stderr, "not JSON: %s\n", r.body);
	assert_non_null(o);
	srv_http_resp_free(&r);
	return o;
}

static const char *jstr(json_t *o, const char *path)
{
	/* "a.b.0.c" */
	char buf[256], *save = NULL, *tok;
	snprintf(buf, sizeof buf, "%s", path);
	for (tok = strtok_r(buf, ".", &save); tok && o; tok = strtok_r(NULL, ".", &save))
		o = json_is_array(o) ? json_array_get(o, strtoul(tok, NULL, 10)) : json_object_get(o, tok);
	return json_is_string(o) ? json_string_value(o) : NULL;
}

static json_t *jget(json_t *o, const char *path)
{
	char buf[256], *save = NULL, *tok;
	snprintf(buf, sizeof buf, "%s", path);
	for (tok = strtok_r(buf, ".", &save); tok && o; tok = strtok_r(NULL, ".", &save))
		o = json_is_array(o) ? json_array_get(o, strtoul(tok, NULL, 10)) : json_object_get(o, tok);
	return o;
}

static long long jint(json_t *o, const char *path)
{
	json_t *v = jget(o, path);
	assert_true(json_is_integer(v));
	return json_integer_value(v);
}

struct collect {
	char buf[16384];
	size_t n;
};

static int collect(void *ud, const char *text, size_t n)
{
	struct collect *c = ud;
	if (c->n + n < sizeof c->buf) {
		memcpy(c->buf + c->n, text, n);
		c->n += n;
		c->buf[c->n] = '\0';
	}
	return 0;
}

/* The library's own greedy answer: the server must give the same text.
 * chat: 0 raw, 1 a completion through the template (/api/generate), 2 a
 * one-turn conversation (the chat endpoints). */
static void library_greedy(const char *prompt, int chat, int n, struct collect *c)
{
	struct dormant_msg turn = { "user", prompt };
	struct dormant_gen_opts o = { .max_tokens = n, .temperature = 0, .top_k = -1, .top_p = -1,
				      .min_p = -1, .chat = chat == 1 };
	char err[256];
	if (chat == 2) {
		o.messages = &turn;
		o.n_messages = 1;
	}
	c->n = 0;
	c->buf[0] = '\0';
	assert_int_equal(dormant_generate(D, "tiny", prompt, &o, collect, c, NULL, err, sizeof err), 0);
}

static struct dormant_model_status status_of(const char *name)
{
	struct dormant_model_status st[4];
	size_t n = dormant_status(D, st, 4);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(st[i].name, name))
			return st[i];
	fail_msg("no model %s", name);
	return st[0];
}

/* ---- OpenAI ---- */

static void test_openai_chat(void **state)
{
	struct collect lib;
	json_t *o;
	(void)state;
	library_greedy("hello there", 2, 12, &lib);
	o = call("POST", "/v1/chat/completions",
		 "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"hello there\"}],"
		 "\"max_tokens\":12,\"temperature\":0}",
		 200);
	assert_string_equal(jstr(o, "object"), "chat.completion");
	assert_string_equal(jstr(o, "model"), "tiny");
	assert_string_equal(jstr(o, "choices.0.message.role"), "assistant");
	assert_string_equal(jstr(o, "choices.0.message.content"), lib.buf);
	assert_true(jint(o, "usage.completion_tokens") >= 1 && jint(o, "usage.completion_tokens") <= 12);
	assert_int_equal(jint(o, "usage.total_tokens"),
			 jint(o, "usage.prompt_tokens") + jint(o, "usage.completion_tokens"));
	assert_non_null(jstr(o, "choices.0.finish_reason"));
	assert_true(!strncmp(jstr(o, "id"), "chatcmpl-", 9));
	json_decref(o);
	/* content given as text parts is the same conversation */
	o = call("POST", "/v1/chat/completions",
		 "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
		 "\"text\":\"hello \"},{\"type\":\"text\",\"text\":\"there\"}]}],\"max_tokens\":12,\"temperature\":0}",
		 200);
	assert_string_equal(jstr(o, "choices.0.message.content"), lib.buf);
	json_decref(o);
}

/* Parses an SSE body into its data payloads; returns how many; checks the
 * last one is [DONE]. */
static size_t sse_events(char *body, json_t **ev, size_t cap, int *done)
{
	size_t n = 0;
	char *save = NULL, *blk;
	*done = 0;
	for (blk = strtok_r(body, "\n", &save); blk; blk = strtok_r(NULL, "\n", &save)) {
		if (strncmp(blk, "data: ", 6))
			continue; /* comments, event: lines */
		assert_false(*done); /* nothing after [DONE] */
		if (!strcmp(blk + 6, "[DONE]")) {
			*done = 1;
			continue;
		}
		assert_true(n < cap);
		ev[n] = json_loads(blk + 6, JSON_ALLOW_NUL, NULL);
		assert_non_null(ev[n]);
		n++;
	}
	return n;
}

static void test_openai_chat_stream(void **state)
{
	struct collect lib, got = { .n = 0 };
	struct srv_http_resp r;
	json_t *ev[64];
	size_t n;
	int done;
	char ct[128];
	(void)state;
	library_greedy("stream me", 2, 10, &lib);
	assert_int_equal(http("POST", "/v1/chat/completions",
			      "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"stream me\"}],"
			      "\"max_tokens\":10,\"temperature\":0,\"stream\":true,"
			      "\"stream_options\":{\"include_usage\":true}}",
			      &r),
			 200);
	assert_non_null(srv_http_header(&r, "Content-Type", ct, sizeof ct));
	assert_string_equal(ct, "text/event-stream");
	n = sse_events(r.body, ev, 64, &done);
	assert_true(done);
	assert_true(n >= 3); /* role, content..., finish, usage */
	assert_string_equal(jstr(ev[0], "choices.0.delta.role"), "assistant");
	for (size_t i = 0; i < n; i++) {
		const char *c = jstr(ev[i], "choices.0.delta.content");
		assert_string_equal(jstr(ev[i], "object"), "chat.completion.chunk");
		if (c)
			collect(&got, c, strlen(c));
	}
	assert_string_equal(got.buf, lib.buf);
	assert_non_null(jstr(ev[n - 2], "choices.0.finish_reason"));
	assert_int_equal(json_array_size(jget(ev[n - 1], "choices")), 0);
	assert_true(jint(ev[n - 1], "usage.completion_tokens") >= 1);
	for (size_t i = 0; i < n; i++)
		json_decref(ev[i]);
	srv_http_resp_free(&r);
}

static void test_openai_completions(void **state)
{
	struct collect lib, got = { .n = 0 };
	struct srv_http_resp r;
	json_t *o, *ev[64];
	size_t n;
	int done;
	(void)state;
	library_greedy("once upon", 0, 8, &lib);
	o = call("POST", "/v1/completions",
		 "{\"model\":\"tiny\",\"prompt\":\"once upon\",\"max_tokens\":8,\"temperature\":0}", 200);
	assert_string_equal(jstr(o, "object"), "text_completion");
	assert_string_equal(jstr(o, "choices.0.text"), lib.buf);
	json_decref(o);
	assert_int_equal(http("POST", "/v1/completions",
			      "{\"model\":\"tiny\",\"prompt\":[\"once upon\"],\"max_tokens\":8,\"temperature\":0,"
			      "\"stream\":true}",
			      &r),
			 200);
	n = sse_events(r.body, ev, 64, &done);
	assert_true(done);
	for (size_t i = 0; i < n; i++) {
		const char *t = jstr(ev[i], "choices.0.text");
		assert_non_null(t);
		collect(&got, t, strlen(t));
		json_decref(ev[i]);
	}
	assert_string_equal(got.buf, lib.buf);
	srv_http_resp_free(&r);
}

static void test_openai_embeddings(void **state)
{
	json_t *f, *b;
	float lib[512];
	size_t dim;
	char err[256];
	const char *b64;
	unsigned char raw[4096];
	size_t nraw = 0;
	uint32_t acc = 0;
	int bits = 0;
	(void)state;
	assert_int_equal(dormant_embed(D, "tiny", "embed me", lib, 512, &dim, NULL, err, sizeof err), 0);
	f = call("POST", "/v1/embeddings", "{\"model\":\"tiny\",\"input\":[\"embed me\",\"and me\"]}", 200);
	assert_string_equal(jstr(f, "object"), "list");
	assert_int_equal(json_array_size(jget(f, "data")), 2);
	assert_int_equal(json_array_size(jget(f, "data.0.embedding")), dim);
	for (size_t i = 0; i < dim; i++)
		assert_float_equal(json_real_value(json_array_get(jget(f, "data.0.embedding"), i)), lib[i], 1e-6);
	assert_true(jint(f, "usage.prompt_tokens") > 0);
	/* base64: the same floats, little-endian (what the openai package asks for) */
	b = call("POST", "/v1/embeddings", "{\"model\":\"tiny\",\"input\":\"embed me\",\"encoding_format\":\"base64\"}",
		 200);
	b64 = jstr(b, "data.0.embedding");
	assert_non_null(b64);
	for (const char *p = b64; *p && *p != '='; p++) {
		const char *tab = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
		acc = acc << 6 | (uint32_t)(strchr(tab, *p) - tab);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			raw[nraw++] = (unsigned char)(acc >> bits);
		}
	}
	assert_int_equal(nraw, dim * 4);
	for (size_t i = 0; i < dim; i++) {
		float v;
		memcpy(&v, raw + 4 * i, 4);
		assert_true(v == lib[i]);
	}
	json_decref(f);
	json_decref(b);
}

static void test_openai_models(void **state)
{
	json_t *o = call("GET", "/v1/models", NULL, 200);
	(void)state;
	assert_string_equal(jstr(o, "object"), "list");
	assert_int_equal(json_array_size(jget(o, "data")), 2);
	assert_string_equal(jstr(o, "data.0.id"), "tiny");
	json_decref(o);
	o = call("GET", "/v1/models/ondemand", NULL, 200);
	assert_string_equal(jstr(o, "id"), "ondemand");
	json_decref(o);
}

/* ---- Ollama ---- */

static void test_ollama_generate(void **state)
{
	struct collect lib, got = { .n = 0 };
	struct srv_http_resp r;
	json_t *o;
	char *save = NULL, *ln;
	int lines = 0, done = 0;
	(void)state;
	library_greedy("why is the sky blue", 1, 9, &lib);
	o = call("POST", "/api/generate",
		 "{\"model\":\"tiny\",\"prompt\":\"why is the sky blue\",\"stream\":false,"
		 "\"options\":{\"num_predict\":9,\"temperature\":0}}",
		 200);
	assert_string_equal(jstr(o, "response"), lib.buf);
	assert_true(json_is_true(jget(o, "done")));
	assert_int_equal(jint(o, "eval_count"), 9);
	assert_true(jint(o, "prompt_eval_count") > 0);
	assert_true(jint(o, "total_duration") >= jint(o, "eval_duration"));
	assert_true(jint(o, "eval_duration") > 0);
	json_decref(o);
	/* streamed by default: NDJSON, one object per line, the last done */
	assert_int_equal(http("POST", "/api/generate",
			      "{\"model\":\"tiny\",\"prompt\":\"why is the sky blue\","
			      "\"options\":{\"num_predict\":9,\"temperature\":0}}",
			      &r),
			 200);
	for (ln = strtok_r(r.body, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
		json_t *x = json_loads(ln, JSON_ALLOW_NUL, NULL);
		assert_non_null(x);
		assert_false(done);
		lines++;
		if (json_is_true(jget(x, "done"))) {
			done = 1;
			assert_string_equal(jstr(x, "done_reason"), "length");
			assert_int_equal(jint(x, "eval_count"), 9);
		} else {
			collect(&got, jstr(x, "response"), strlen(jstr(x, "response")));
		}
		json_decref(x);
	}
	assert_true(done);
	assert_string_equal(got.buf, lib.buf);
	srv_http_resp_free(&r);
}

static void test_ollama_chat(void **state)
{
	struct collect lib;
	json_t *o;
	(void)state;
	library_greedy("hi", 2, 6, &lib);
	o = call("POST", "/api/chat",
		 "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":false,"
		 "\"options\":{\"num_predict\":6,\"temperature\":0,\"seed\":7,\"top_k\":5,\"top_p\":0.9,"
		 "\"min_p\":0.01,\"repeat_penalty\":1.0,\"num_ctx\":256,\"stop\":[\"zzzz\"]}}",
		 200);
	assert_string_equal(jstr(o, "message.role"), "assistant");
	assert_string_equal(jstr(o, "message.content"), lib.buf);
	assert_true(json_is_true(jget(o, "done")));
	json_decref(o);
}

static void test_ollama_keep_alive(void **state)
{
	json_t *o;
	(void)state;
	/* empty prompt + keep_alive 0: unload */
	o = call("POST", "/api/generate", "{\"model\":\"tiny\",\"keep_alive\":0}", 200);
	assert_string_equal(jstr(o, "done_reason"), "unload");
	json_decref(o);
	assert_string_equal(status_of("tiny").state, "dormant");
	o = call("GET", "/api/ps", NULL, 200);
	for (size_t i = 0; i < json_array_size(jget(o, "models")); i++)
		assert_string_not_equal(jstr(o, "models.0.name"), "tiny");
	json_decref(o);
	/* empty prompt: load, with the request's keep-alive */
	o = call("POST", "/api/generate", "{\"model\":\"tiny\",\"keep_alive\":\"10m\"}", 200);
	assert_string_equal(jstr(o, "done_reason"), "load");
	assert_true(jint(o, "load_duration") > 0);
	json_decref(o);
	assert_string_equal(status_of("tiny").state, "ready");
	assert_true(status_of("tiny").expires_in_ms > 9 * 60 * 1000);
	o = call("GET", "/api/ps", NULL, 200);
	assert_string_equal(jstr(o, "models.0.name"), "tiny");
	assert_true(jint(o, "models.0.size") > 0);
	assert_int_equal(jint(o, "models.0.size_vram"), 0);
	assert_non_null(jstr(o, "models.0.expires_at"));
	json_decref(o);
	/* negative: forever */
	json_decref(call("POST", "/api/chat", "{\"model\":\"tiny\",\"messages\":[],\"keep_alive\":-1}", 200));
	assert_int_equal(status_of("tiny").expires_in_ms, -1);
	/* a generation with keep_alive 0 unloads when it ends */
	json_decref(call("POST", "/api/generate",
			 "{\"model\":\"tiny\",\"prompt\":\"x\",\"stream\":false,\"keep_alive\":0,"
			 "\"options\":{\"num_predict\":2}}",
			 200));
	assert_string_equal(status_of("tiny").state, "dormant");
	/* an on-demand model is gone after its request */
	json_decref(call("POST", "/api/generate",
			 "{\"model\":\"ondemand\",\"prompt\":\"x\",\"stream\":false,\"options\":{\"num_predict\":2}}",
			 200));
	assert_string_equal(status_of("ondemand").state, "dormant");
}

static void test_ollama_embed_and_listings(void **state)
{
	json_t *o;
	(void)state;
	o = call("POST", "/api/embed", "{\"model\":\"tiny\",\"input\":[\"a\",\"b c\"]}", 200);
	assert_int_equal(json_array_size(jget(o, "embeddings")), 2);
	assert_int_equal(json_array_size(jget(o, "embeddings.1")), 256);
	assert_true(jint(o, "prompt_eval_count") > 0);
	json_decref(o);
	o = call("POST", "/api/embeddings", "{\"model\":\"tiny\",\"prompt\":\"a\"}", 200);
	assert_int_equal(json_array_size(jget(o, "embedding")), 256);
	json_decref(o);
	o = call("GET", "/api/tags", NULL, 200);
	assert_int_equal(json_array_size(jget(o, "models")), 2);
	assert_string_equal(jstr(o, "models.0.details.format"), "gguf");
	assert_string_equal(jstr(o, "models.0.details.family"), "llama");
	assert_string_equal(jstr(o, "models.0.details.quantization_level"), "Q8_0");
	assert_true(jint(o, "models.0.size") > 1000000);
	json_decref(o);
	o = call("POST", "/api/show", "{\"model\":\"tiny\"}", 200);
	assert_string_equal(jstr(o, "details.family"), "llama");
	assert_int_equal(json_integer_value(json_object_get(jget(o, "model_info"), "llama.embedding_length")), 256);
	assert_string_equal(jstr(o, "capabilities.0"), "completion");
	json_decref(o);
	o = call("GET", "/api/version", NULL, 200);
	assert_string_equal(jstr(o, "version"), dormant_version());
	json_decref(o);
}

static void test_lifecycle_endpoints(void **state)
{
	struct srv_http_resp r;
	char *save = NULL, *ln, *last = NULL;
	json_t *o;
	(void)state;
	json_decref(call("POST", "/api/unload", "{\"model\":\"tiny\"}", 200));
	assert_int_equal(http("POST", "/api/load", "{\"model\":\"tiny\"}", &r), 200);
	for (ln = strtok_r(r.body, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save))
		last = ln;
	assert_non_null(last);
	o = json_loads(last, JSON_ALLOW_NUL, NULL);
	assert_non_null(o);
	assert_true(json_is_true(jget(o, "done")));
	assert_string_equal(jstr(o, "status"), "ready");
	assert_true(jint(o, "size") > 0);
	json_decref(o);
	srv_http_resp_free(&r);
	o = call("POST", "/api/unload", "{\"model\":\"tiny\"}", 200);
	assert_string_equal(jstr(o, "status"), "dormant");
	assert_true(jint(o, "rss_after_unload") > 0);
	json_decref(o);
	o = call("POST", "/api/load", "{\"model\":\"tiny\",\"stream\":false}", 200);
	assert_string_equal(jstr(o, "status"), "ready");
	json_decref(o);
	json_decref(call("POST", "/api/load", "{\"model\":\"nope\"}", 404));
	o = call("GET", "/health", NULL, 200);
	assert_string_equal(jstr(o, "status"), "ok");
	assert_string_equal(jstr(o, "models.0.state"), "ready");
	json_decref(o);
}

/* ---- bad input: 4xx with a message, the server keeps serving ---- */

static void expect_error(const char *method, const char *path, const char *body, int status, const char *needle)
{
	json_t *o = call(method, path, body, status);
	const char *m = !strncmp(path, "/v1/", 4) ? jstr(o, "error.message") : jstr(o, "error");
	if (!m || !strstr(m, needle))
		fail_msg("%s %s: message '%s' lacks '%s'", method, path, m ? m : "(none)", needle);
	json_decref(o);
}

static void test_bad_input(void **state)
{
	static const struct {
		const char *path, *body;
		int status;
		const char *needle;
	} cases[] = {
		{ "/v1/chat/completions", "{\"model\":\"tiny\",", 400, "invalid JSON" },
		{ "/v1/chat/completions", "[1,2]", 400, "JSON object" },
		{ "/v1/chat/completions", "", 400, "empty" },
		{ "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 400, "model" },
		{ "/v1/chat/completions", "{\"model\":\"nope\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 404, "not found" },
		{ "/v1/chat/completions", "{\"model\":\"../../../etc/passwd\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 404, "not found" },
		{ "/v1/chat/completions", "{\"model\":\"tiny\",\"messages\":\"hi\"}", 400, "messages" },
		{ "/v1/chat/completions", "{\"model\":\"tiny\",\"messages\":[]}", 400, "messages" },
		{ "/v1/chat/completions", "{\"model\":\"tiny\",\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", 400, "role" },
		{ "/v1/chat/completions", "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":\"ten\"}", 400, "max_tokens" },
		{ "/v1/chat/completions", "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":-5}", 400, "max_tokens" },
		{ "/v1/chat/completions", "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":1e30}", 400, "max_tokens" },
		{ "/v1/chat/completions", "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":99999999999999999999999}", 400, "invalid JSON" },
		{ "/v1/chat/completions", "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":100000}", 400, "limit" },
		{ "/v1/chat/completions", "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":-1}", 400, "temperature" },
		{ "/v1/chat/completions", "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2}", 400, "'n'" },
		{ "/v1/chat/completions", "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", 400, "stop" },
		{ "/v1/chat/completions", "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":\"yes\"}", 400, "stream" },
		{ "/v1/chat/completions", "{\"model\":\"tiny\",\"model\":\"tiny\",\"messages\":[]}", 400, "duplicate" },
		{ "/v1/chat/completions", "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000b\"}]}", 400, "invalid JSON" },
		{ "/v1/completions", "{\"model\":\"tiny\",\"prompt\":42}", 400, "prompt" },
		{ "/v1/embeddings", "{\"model\":\"tiny\",\"input\":[1,2,3]}", 400, "token arrays" },
		{ "/v1/embeddings", "{\"model\":\"tiny\",\"input\":\"x\",\"encoding_format\":\"hex\"}", 400, "encoding_format" },
		{ "/api/generate", "{\"model\":\"tiny\",\"prompt\":\"x\",\"options\":{\"num_predict\":\"lots\"}}", 400, "num_predict" },
		{ "/api/generate", "{\"model\":\"tiny\",\"prompt\":\"x\",\"options\":{\"top_p\":7}}", 400, "top_p" },
		{ "/api/generate", "{\"model\":\"tiny\",\"prompt\":\"x\",\"options\":[]}", 400, "options" },
		{ "/api/generate", "{\"model\":\"tiny\",\"prompt\":\"x\",\"keep_alive\":\"5 fortnights\"}", 400, "keep_alive" },
		{ "/api/generate", "{\"model\":\"tiny\",\"prompt\":\"x\",\"format\":\"json\"}", 400, "format" },
		{ "/api/generate", "{\"model\":\"tiny\",\"prompt\":\"x\",\"images\":[\"aGk=\"]}", 400, "images" },
		{ "/api/generate", "{\"model\":\"/etc/passwd\",\"prompt\":\"x\"}", 404, "not found" },
		{ "/api/chat", "{\"model\":\"tiny\",\"messages\":[{\"content\":\"x\"}]}", 400, "role" },
		{ "/api/chat", "{\"model\":\"tiny\",\"messages\":{}}", 400, "messages" },
		{ "/api/embed", "{\"model\":\"tiny\",\"input\":\"\"}", 400, "non-empty" },
		{ "/api/show", "{}", 400, "model" },
		{ "/api/show", "{\"model\":\"ghost\"}", 404, "not found" },
	};
	struct srv_http_resp r;
	char bad_utf8[] = "{\"model\":\"tiny\",\"prompt\":\"\xff\xfe\"}";
	char *big;
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		expect_error("POST", cases[i].path, cases[i].body, cases[i].status, cases[i].needle);
	expect_error("POST", "/api/generate", bad_utf8, 400, "UTF-8");
	expect_error("GET", "/v1/chat/completions", NULL, 405, "POST");
	expect_error("POST", "/api/tags", "{}", 405, "GET");
	expect_error("GET", "/v2/anything", NULL, 404, "no such endpoint");
	expect_error("GET", "/api/../../etc/passwd", NULL, 404, "no such endpoint");
	/* a body over max_body (64 KiB here): 413 */
	big = malloc(100 * 1024);
	assert_non_null(big);
	memset(big, 'a', 100 * 1024 - 1);
	big[100 * 1024 - 1] = '\0';
	memcpy(big, "{\"model\":\"tiny\",\"prompt\":\"", 26);
	expect_error("POST", "/api/generate", big, 413, "larger than");
	free(big);
	/* still serving everyone */
	assert_int_equal(http("GET", "/health", NULL, &r), 200);
	srv_http_resp_free(&r);
}

static void test_huge_header(void **state)
{
	struct srv_http_resp r;
	struct dm_err e;
	size_t n = 128 * 1024;
	char *h = malloc(n + 32);
	int rc;
	(void)state;
	assert_non_null(h);
	memcpy(h, "X-Junk: ", 8);
	memset(h + 8, 'x', n);
	memcpy(h + 8 + n, "\r\n", 3);
	rc = srv_http("127.0.0.1", PORT, "GET", "/health", h, NULL, 0, 10000, NULL, NULL, &r, &e);
	/* refused (431) or the connection is dropped; never served, never a crash */
	if (!rc) {
		assert_true(r.status == 431 || r.status == 413 || r.status == 400);
		srv_http_resp_free(&r);
	}
	free(h);
	assert_int_equal(http("GET", "/health", NULL, &r), 200);
	srv_http_resp_free(&r);
}

static void test_api_key(void **state)
{
	struct srv *s2;
	struct srv_cfg sc;
	struct srv_http_resp r;
	struct dm_err e;
	uint16_t p;
	(void)state;
	srv_cfg_from_runtime(&sc, D);
	sc.port = 0;
	snprintf(sc.api_key, sizeof sc.api_key, "s3cret");
	assert_int_equal(srv_start(&s2, D, &sc, &e), 0);
	p = srv_port(s2);
	assert_int_equal(srv_http("127.0.0.1", p, "GET", "/v1/models", NULL, NULL, 0, 5000, NULL, NULL, &r, &e), 0);
	assert_int_equal(r.status, 401);
	srv_http_resp_free(&r);
	assert_int_equal(srv_http("127.0.0.1", p, "GET", "/api/tags", "Authorization: Bearer wrong\r\n", NULL, 0,
				  5000, NULL, NULL, &r, &e), 0);
	assert_int_equal(r.status, 401);
	srv_http_resp_free(&r);
	assert_int_equal(srv_http("127.0.0.1", p, "GET", "/api/tags", "Authorization: Bearer s3cre\r\n", NULL, 0,
				  5000, NULL, NULL, &r, &e), 0);
	assert_int_equal(r.status, 401);
	srv_http_resp_free(&r);
	assert_int_equal(srv_http("127.0.0.1", p, "GET", "/metrics", "Authorization: Bearer s3cret\r\n", NULL, 0,
				  5000, NULL, NULL, &r, &e), 0);
	assert_int_equal(r.status, 200);
	srv_http_resp_free(&r);
	/* /health answers without a key */
	assert_int_equal(srv_http("127.0.0.1", p, "GET", "/health", NULL, NULL, 0, 5000, NULL, NULL, &r, &e), 0);
	assert_int_equal(r.status, 200);
	srv_http_resp_free(&r);
	srv_stop(s2);
}

/* ---- concurrency ---- */


struct client {
	const char *body;
	int status;
	char retry_after[16];
	char text[4096];
};

static void *client_main(void *arg)
{
	struct client *c = arg;
	struct srv_http_resp r;
	struct dm_err e;
	c->status = srv_http("127.0.0.1", PORT, "POST", "/api/generate", NULL, c->body, strlen(c->body), 60000,
			     NULL, NULL, &r, &e)
			    ? -1
			    : r.status;
	if (c->status > 0) {
		srv_http_header(&r, "Retry-After", c->retry_after, sizeof c->retry_after);
		snprintf(c->text, sizeof c->text, "%s", r.body);
		srv_http_resp_free(&r);
	}
	return NULL;
}

static void test_queue_full_503(void **state)
{
	/* a second server-side limit: max_queue 64 in the config; fill it
	 * with waiting clients while the model is held, the 65th gets 503 */
	enum { N = 64 };
	struct tsrv_hold g;
	pthread_t cl[N + 1];
	struct client c[N + 1];
	const char *body = "{\"model\":\"tiny\",\"prompt\":\"q\",\"stream\":false,\"options\":{\"num_predict\":1}}";
	(void)state;
	tsrv_hold(&g, D, "tiny");
	for (int i = 0; i < N; i++) {
		memset(&c[i], 0, sizeof c[i]);
		c[i].body = body;
		assert_int_equal(pthread_create(&cl[i], NULL, client_main, &c[i]), 0);
	}
	while (status_of("tiny").queued < N)
		usleep(2000);
	memset(&c[N], 0, sizeof c[N]);
	c[N].body = body;
	client_main(&c[N]);
	assert_int_equal(c[N].status, 503);
	assert_string_equal(c[N].retry_after, "1");
	tsrv_release(&g);
	for (int i = 0; i < N; i++) {
		pthread_join(cl[i], NULL);
		assert_int_equal(c[i].status, 200); /* every queued one answered */
	}
}

static void test_32_clients_one_load(void **state)
{
	enum { N = 32 };
	pthread_t th[N];
	struct client c[N];
	uint64_t loads;
	(void)state;
	json_decref(call("POST", "/api/unload", "{\"model\":\"tiny\"}", 200));
	assert_string_equal(status_of("tiny").state, "dormant");
	loads = status_of("tiny").load_count;
	for (int i = 0; i < N; i++) {
		memset(&c[i], 0, sizeof c[i]);
		c[i].body = "{\"model\":\"tiny\",\"prompt\":\"race\",\"stream\":false,"
			    "\"options\":{\"num_predict\":4,\"temperature\":0}}";
		assert_int_equal(pthread_create(&th[i], NULL, client_main, &c[i]), 0);
	}
	for (int i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < N; i++) {
		json_t *a = json_loads(c[i].text, JSON_ALLOW_NUL, NULL), *b = json_loads(c[0].text, JSON_ALLOW_NUL, NULL);
		assert_int_equal(c[i].status, 200);
		assert_non_null(a);
		assert_true(json_is_true(jget(a, "done")));
		/* greedy, same prompt: every client got the same answer */
		assert_string_equal(jstr(a, "response"), jstr(b, "response"));
		json_decref(a);
		json_decref(b);
	}
	assert_int_equal(status_of("tiny").load_count, loads + 1);
}

/* A client that goes away cancels its generation. */
static int stop_at_once(void *ud, const char *d, size_t n)
{
	(void)ud;
	(void)d;
	(void)n;
	return 1;
}

static long long metric(const char *name)
{
	struct srv_http_resp r;
	long long v = -1;
	const char *p;
	assert_int_equal(http("GET", "/metrics", NULL, &r), 200);
	p = strstr(r.body, name);
	while (p && p > r.body && p[-1] != '\n')
		p = strstr(p + 1, name);
	if (p)
		v = atoll(strchr(p, ' ') + 1);
	srv_http_resp_free(&r);
	return v;
}

static void test_disconnect_cancels(void **state)
{
	struct tsrv_hold g;
	struct srv_http_resp r;
	struct dm_err e;
	long long before = metric("dormant_generations_cancelled_total");
	const char *body = "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"long\"}],"
			   "\"max_tokens\":200,\"stream\":true}";
	(void)state;
	tsrv_hold(&g, D, "tiny");
	/* the request queues behind the held model; the client reads the
	 * first bytes of the (streamed) answer and hangs up */
	/* SSE: the server sends ": waiting" comments while the request
	 * queues, so the client sees bytes before any token exists */
	srv_http("127.0.0.1", PORT, "POST", "/v1/chat/completions", NULL, body, strlen(body), 30000,
		 stop_at_once, NULL, &r, &e);
	srv_http_resp_free(&r);
	/* wait until the server has noticed (its connection is gone) */
	while (metric("dormant_http_connections") > 1)
		usleep(20000);
	tsrv_release(&g);
	while (status_of("tiny").in_use || status_of("tiny").queued)
		usleep(2000);
	assert_int_equal(metric("dormant_generations_cancelled_total"), before + 1);
}

/* ---- metrics ---- */

static void test_metrics_promtool(void **state)
{
	struct srv_http_resp r;
	const char *path = tu_tmp_path("metrics.txt");
	int st;
	char *out;
	(void)state;
	assert_int_equal(http("GET", "/metrics", NULL, &r), 200);
	assert_non_null(strstr(r.body, "dormant_model_loads_total{model=\"tiny\"}"));
	assert_non_null(strstr(r.body, "dormant_time_to_first_token_seconds_count{model=\"tiny\",start=\"cold\"}"));
	assert_non_null(strstr(r.body, "dormant_process_resident_memory_bytes{kind=\"total\"}"));
	assert_non_null(strstr(r.body, "dormant_model_queue_depth{model=\"tiny\"} 0"));
	assert_int_equal(tu_write_file(path, r.body, r.body_len), 0);
	srv_http_resp_free(&r);
	assert_true(metric("dormant_generated_tokens_total{model=\"tiny\"}") > 0);
	if (system("command -v promtool >/dev/null 2>&1")) {
		skip();
		return;
	}
	out = tu_capture(&st, "promtool check metrics < %s 2>&1", path);
	if (st)
		fprintf(stderr, "promtool:\n%s\n", out);
	assert_int_equal(st, 0);
	free(out);
}

/* ---- a real `dormant serve` process: idle RSS and CPU, clean exit ---- */

static long proc_field(pid_t pid, const char *key)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, key, strlen(key)))
			v = atol(line + strlen(key) + 1);
	fclose(f);
	return v;
}

static long cpu_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	p = fgets(buf, sizeof buf, f);
	fclose(f);
	if (!p || !(p = strrchr(buf, ')')))
		return -1;
	/* fields after the name: state(3) ... utime(14) stime(15) */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (long)(ut + st);
}

static void test_serve_process_idle(void **state)
{
	char arg[600];
	const char *argv[] = { "--model", arg, NULL };
	long rss, t0, t1;
	int pid, port;
	struct srv_http_resp r;
	struct dm_err e;
	(void)state;
	snprintf(arg, sizeof arg, "tiny=%.500s", MODEL);
	assert_int_equal(tu_serve_start(argv, NULL, &pid, &port), 0);
	assert_int_equal(srv_http("127.0.0.1", (uint16_t)port, "GET", "/health", NULL, NULL, 0, 5000, NULL,
				  NULL, &r, &e), 0);
	assert_int_equal(r.status, 200);
	srv_http_resp_free(&r);
	rss = proc_field(pid, "VmRSS:");
	fprintf(stderr, "idle dormant serve: VmRSS %ld kB\n", rss);
#if !defined(__SANITIZE_ADDRESS__) /* ASan's shadow memory is RSS too */
	assert_true(rss > 0 && rss < 10 * 1024); /* under 10 MB with nothing loaded */
#endif
	t0 = cpu_ticks(pid);
	sleep(1);
	t1 = cpu_ticks(pid);
	assert_true(t0 >= 0 && t1 - t0 <= 1); /* idle: no busy threads (1 tick = 10 ms of slack) */
	assert_int_equal(tu_serve_stop(pid), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_openai_chat),
		cmocka_unit_test(test_openai_chat_stream),
		cmocka_unit_test(test_openai_completions),
		cmocka_unit_test(test_openai_embeddings),
		cmocka_unit_test(test_openai_models),
		cmocka_unit_test(test_ollama_generate),
		cmocka_unit_test(test_ollama_chat),
		cmocka_unit_test(test_ollama_keep_alive),
		cmocka_unit_test(test_ollama_embed_and_listings),
		cmocka_unit_test(test_lifecycle_endpoints),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_huge_header),
		cmocka_unit_test(test_api_key),
		cmocka_unit_test(test_queue_full_503),
		cmocka_unit_test(test_32_clients_one_load),
		cmocka_unit_test(test_disconnect_cancels),
		cmocka_unit_test(test_metrics_promtool),
		cmocka_unit_test(test_serve_process_idle),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}

/* tests/server_req — the request layer both APIs share, against a server on
 * a random loopback port with a tiny synthetic model registered three ways
 * (a 64-token context, an embedding role, a 63-byte name): prompts longer
 * than the context, refused fields, names never truncated, roles, a client
 * that hangs up while queued, /api/ps for keep_alive -1, the load-only
 * answer's load time, and /api/generate on a model without a template. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
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
/* 63 bytes: the longest name a model may have */
#define LONG_NAME "m123456789012345678901234567890123456789012345678901234567890ab"

/* the 63-byte name through the API (an INI section name is shorter) */
static int add_long_name(dormant *d)
{
	char err[256];
	if (dormant_add_model(d, LONG_NAME, MODEL, err, sizeof err))
		return fprintf(stderr, "%s\n", err), -1;
	return 0;
}

static int setup(void **state)
{
	char cfg[4096];
	(void)state;
	_Static_assert(sizeof LONG_NAME == 64, "a 63-byte name");
	snprintf(MODEL, sizeof MODEL, "%s", tu_tmp_path("server_req.gguf"));
	if (tu_system("%s synth --preset tiny --type Q8_0 -o %s", tu_dormant(), MODEL))
		return -1;
	snprintf(cfg, sizeof cfg,
		 "[server]\nkeep_alive = 5m\nmax_queue = 8\nqueue_timeout = 60s\nmax_tokens = 512\n\n"
		 "[model gen]\npath = %s\nthreads = 1\nn_ctx = 64\n\n"
		 "[model emb]\npath = %s\nthreads = 1\nrole = embed\n",
		 MODEL, MODEL);
	return tsrv_open("server_req.ini", cfg, add_long_name, &D, &S, &PORT);
}

static int teardown(void **state)
{
	(void)state;
	tsrv_close(D, S);
	return 0;
}

/* ---- helpers ---- */

static json_t *call(const char *path, const char *body, int want)
{
	struct srv_http_resp r;
	struct dm_err e;
	json_t *o;
	int rc = srv_http("127.0.0.1", PORT, body ? "POST" : "GET", path, NULL, body, body ? strlen(body) : 0,
			  30000, NULL, NULL, &r, &e);
	if (rc)
		fail_msg("%s: %s", path, e.msg);
	if (r.status != want)
		fail_msg("%s %s -> %d (want %d): %s", path, body ? body : "", r.status, want, r.body);
	o = json_loadb(r.body, r.body_len, JSON_ALLOW_NUL, NULL); /* a random model may say \u0000 */
	if (!o)
		fail_msg("not JSON: %s", r.body);
	srv_http_resp_free(&r);
	return o;
}

static json_t *jget(json_t *o, const char *path)
{
	char buf[256], *save = NULL, *tok;
	snprintf(buf, sizeof buf, "%s", path);
	for (tok = strtok_r(buf, ".", &save); tok && o; tok = strtok_r(NULL, ".", &save))
		o = json_is_array(o) ? json_array_get(o, strtoul(tok, NULL, 10)) : json_object_get(o, tok);
	return o;
}

static const char *jstr(json_t *o, const char *path)
{
	json_t *v = jget(o, path);
	return json_is_string(v) ? json_string_value(v) : "";
}

static long long jint(json_t *o, const char *path)
{
	json_t *v = jget(o, path);
	if (!json_is_integer(v))
		fail_msg("%s is not an integer", path);
	return json_integer_value(v);
}

/* An error answer whose message contains needle. */
static void expect(const char *path, const char *body, int status, const char *needle)
{
	json_t *o = call(path, body, status);
	const char *m = !strncmp(path, "/v1/", 4) ? jstr(o, "error.message") : jstr(o, "error");
	if (!strstr(m, needle))
		fail_msg("%s %s: message '%s' lacks '%s'", path, body, m, needle);
	json_decref(o);
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

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* "word0 word1 ..." of n words (well over 64 tokens for n >= 100). */
static char *words(int n)
{
	char *s = malloc((size_t)n * 8 + 1), *p = s;
	assert_non_null(s);
	for (int i = 0; i < n; i++)
		p += sprintf(p, "w%d ", i % 1000);
	*p = '\0';
	return s;
}

/* ---- 4: a prompt longer than the context ---- */

static void test_prompt_longer_than_context(void **state)
{
	char *w = words(200), body[4096];
	json_t *o, *short_o;
	(void)state;
	/* OpenAI: 400 context_length_exceeded with both counts, never 503 */
	snprintf(body, sizeof body, "{\"model\":\"gen\",\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}", w);
	o = call("/v1/chat/completions", body, 400);
	assert_string_equal(jstr(o, "error.code"), "context_length_exceeded");
	assert_non_null(strstr(jstr(o, "error.message"), "64 tokens"));
	json_decref(o);
	snprintf(body, sizeof body, "{\"model\":\"gen\",\"prompt\":\"%s\"}", w);
	o = call("/v1/completions", body, 400);
	assert_string_equal(jstr(o, "error.code"), "context_length_exceeded");
	json_decref(o);
	/* Ollama: the oldest turns go, the system message and the latest turn
	 * stay: the answer is that of the conversation without them */
	snprintf(body, sizeof body,
		 "{\"model\":\"gen\",\"stream\":false,\"keep_alive\":0,\"options\":{\"temperature\":0,\"num_predict\":3},"
		 "\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":\"%s\"},"
		 "{\"role\":\"assistant\",\"content\":\"ok\"},{\"role\":\"user\",\"content\":\"hi\"}]}",
		 w);
	o = call("/api/chat", body, 200);
	short_o = call("/api/chat",
		       "{\"model\":\"gen\",\"stream\":false,\"keep_alive\":0,\"options\":{\"temperature\":0,\"num_predict\":3},"
		       "\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":\"hi\"}]}",
		       200);
	assert_true(jint(o, "prompt_eval_count") > 0 && jint(o, "prompt_eval_count") < 64);
	assert_int_equal(jint(o, "prompt_eval_count"), jint(short_o, "prompt_eval_count"));
	assert_string_equal(jstr(o, "message.content"), jstr(short_o, "message.content"));
	json_decref(o);
	json_decref(short_o);
	/* "truncate": false: 400 instead */
	snprintf(body, sizeof body,
		 "{\"model\":\"gen\",\"stream\":false,\"truncate\":false,\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}",
		 w);
	expect("/api/chat", body, 400, "context length");
	/* a plain prompt loses its middle */
	snprintf(body, sizeof body, "{\"model\":\"gen\",\"stream\":false,\"raw\":true,\"prompt\":\"%s\","
		 "\"options\":{\"num_predict\":1,\"temperature\":0}}", w);
	o = call("/api/generate", body, 200);
	assert_int_equal(jint(o, "prompt_eval_count"), 63);
	json_decref(o);
	free(w);
}

/* ---- 8: fields dormant does not implement are refused, on both APIs ---- */

static void test_refused_fields(void **state)
{
	static const struct { const char *path, *extra, *field; } cases[] = {
		{ "/v1/chat/completions", "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]", "'tools'" },
		{ "/v1/chat/completions", "\"tool_choice\":\"auto\"", "'tool_choice'" },
		{ "/v1/chat/completions", "\"response_format\":{\"type\":\"json_object\"}", "'response_format'" },
		{ "/v1/chat/completions", "\"logprobs\":true", "'logprobs'" },
		{ "/v1/chat/completions", "\"top_logprobs\":3", "'top_logprobs'" },
		{ "/v1/completions", "\"logprobs\":2", "'logprobs'" },
		{ "/api/chat", "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]", "'tools'" },
		{ "/api/chat", "\"format\":\"json\"", "'format'" },
		{ "/api/generate", "\"format\":{\"type\":\"object\"}", "'format'" },
		{ "/api/generate", "\"tools\":[{\"type\":\"function\"}]", "'tools'" },
	};
	char body[1024];
	json_t *o;
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *p = cases[i].path;
		if (strstr(p, "chat"))
			snprintf(body, sizeof body, "{\"model\":\"gen\",\"stream\":false,%s,\"messages\":[{\"role\":\"user\","
				 "\"content\":\"x\"}]}", cases[i].extra);
		else
			snprintf(body, sizeof body, "{\"model\":\"gen\",\"stream\":false,%s,\"prompt\":\"x\"}",
				 cases[i].extra);
		expect(p, body, 400, cases[i].field);
	}
	/* values that ask for nothing pass */
	o = call("/v1/chat/completions",
		 "{\"model\":\"gen\",\"max_tokens\":1,\"temperature\":0,\"tools\":[],\"tool_choice\":\"none\",\"logprobs\":false,"
		 "\"response_format\":{\"type\":\"text\"},\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
		 200);
	json_decref(o);
	o = call("/api/chat",
		 "{\"model\":\"gen\",\"stream\":false,\"tools\":[],\"format\":\"\",\"options\":{\"num_predict\":1,\"temperature\":0},"
		 "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
		 200);
	json_decref(o);
}

/* ---- 9: one parser for the shared fields ---- */

static void test_model_name_never_truncated(void **state)
{
	/* 79 bytes whose first 63 are a registered model's name */
	static const char *paths[] = { "/v1/completions", "/v1/chat/completions", "/api/generate", "/api/chat",
				       "/v1/embeddings", "/api/embed", "/api/load" };
	char body[512];
	(void)state;
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		snprintf(body, sizeof body,
			 "{\"model\":\"" LONG_NAME "0123456789abcdef\",\"prompt\":\"x\",\"input\":\"x\",\"stream\":false,"
			 "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
		expect(paths[i], body, 404, "not found");
	}
	/* the registered name itself works on both */
	json_decref(call("/v1/completions", "{\"model\":\"" LONG_NAME "\",\"prompt\":\"x\",\"max_tokens\":1,"
					    "\"temperature\":0}", 200));
	json_decref(call("/api/generate", "{\"model\":\"" LONG_NAME "\",\"prompt\":\"x\",\"stream\":false,"
				      "\"options\":{\"num_predict\":1,\"temperature\":0}}", 200));
	/* the same sampling rules on both: Ollama's options, OpenAI's body */
	expect("/v1/chat/completions", "{\"model\":\"gen\",\"top_k\":-3,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
	       400, "top_k");
	expect("/api/chat", "{\"model\":\"gen\",\"options\":{\"top_k\":-3},\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
	       400, "top_k");
	/* and the same duration grammar as the config file */
	json_decref(call("/v1/completions", "{\"model\":\"gen\",\"prompt\":\"x\",\"max_tokens\":1,\"temperature\":0,\"keep_alive\":\"1h30m\"}", 200));
	expect("/v1/completions", "{\"model\":\"gen\",\"prompt\":\"x\",\"keep_alive\":\"soon\"}", 400, "keep_alive");
}

/* ---- 12: roles ---- */

static void test_roles(void **state)
{
	json_t *o;
	(void)state;
	expect("/api/generate", "{\"model\":\"emb\",\"prompt\":\"x\",\"stream\":false}", 400, "role embed");
	expect("/v1/chat/completions", "{\"model\":\"emb\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 400,
	       "role embed");
	o = call("/api/embed", "{\"model\":\"emb\",\"input\":\"x\"}", 200);
	assert_int_equal(json_array_size(jget(o, "embeddings")), 1);
	json_decref(o);
}

/* ---- 6: a client that hangs up while queued leaves the queue ---- */


/* Sends a request on a raw socket, waits until it is queued, hangs up, and
 * returns how long the server took to take it out of the queue. */
static double hang_up_while_queued(const char *path, const char *body)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	char req[2048];
	double t0;
	int fd = socket(AF_INET, SOCK_STREAM, 0), n;
	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
	n = snprintf(req, sizeof req,
		     "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
		     path, strlen(body), body);
	assert_int_equal(send(fd, req, (size_t)n, 0), n);
	t0 = now_s();
	while (status_of("gen").queued < 1) {
		if (now_s() - t0 > 10)
			fail_msg("%s: never queued", path);
		usleep(1000);
	}
	close(fd);
	t0 = now_s();
	/* generous bound (the server polls every 50 ms; the queue every 20) */
	while (status_of("gen").queued > 0 && now_s() - t0 < 3)
		usleep(1000);
	assert_int_equal(status_of("gen").queued, 0);
	assert_true(status_of("gen").in_use); /* the model is still busy */
	return now_s() - t0;
}

static void test_hang_up_while_queued(void **state)
{
	struct tsrv_hold g;
	double t_stream, t_sync;
	(void)state;
	tsrv_hold(&g, D, "gen");
	t_stream = hang_up_while_queued("/v1/chat/completions",
					"{\"model\":\"gen\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
	t_sync = hang_up_while_queued("/api/generate", "{\"model\":\"gen\",\"stream\":false,\"prompt\":\"x\"}");
	print_message("left the queue %.0f ms (streamed) and %.0f ms (not streamed) after the hang-up\n",
		      t_stream * 1e3, t_sync * 1e3);
	tsrv_release(&g);
}

/* ---- 14: /api/ps for keep_alive -1, the load-only answer's load time,
 * /api/generate on a model without a template ---- */

static void test_ps_forever_and_load_time(void **state)
{
	json_t *o, *models;
	bool seen = false;
	(void)state;
	json_decref(call("/api/generate", "{\"model\":\"gen\",\"keep_alive\":0}", 200));
	assert_string_equal(status_of("gen").state, "dormant");
	/* a load-only request without keep_alive reports the real load time */
	o = call("/api/generate", "{\"model\":\"gen\"}", 200);
	assert_string_equal(jstr(o, "done_reason"), "load");
	assert_true(jint(o, "load_duration") > 0);
	json_decref(o);
	/* keep_alive -1: kept forever, and /api/ps says so (as dormant ps) */
	json_decref(call("/api/chat", "{\"model\":\"gen\",\"messages\":[],\"keep_alive\":-1}", 200));
	assert_int_equal(status_of("gen").expires_in_ms, -1);
	o = call("/api/ps", NULL, 200);
	models = jget(o, "models");
	for (size_t i = 0; i < json_array_size(models); i++) {
		json_t *m = json_array_get(models, i);
		if (strcmp(jstr(m, "name"), "gen"))
			continue;
		seen = true;
		if (strncmp(jstr(m, "expires_at"), "2200", 4) < 0)
			fail_msg("keep_alive -1 but expires_at %s", jstr(m, "expires_at"));
	}
	assert_true(seen);
	json_decref(o);
}

static void test_generate_without_template_is_raw(void **state)
{
	json_t *a, *b;
	(void)state;
	/* the synthetic model has no chat template: the prompt goes in as is
	 * (keep_alive 0: each request from an empty cache, so that the counts
	 * are of whole prompts, not of what the prompt cache left to do) */
	a = call("/api/generate", "{\"model\":\"gen\",\"prompt\":\"hello world\",\"stream\":false,\"keep_alive\":0,"
				  "\"options\":{\"temperature\":0,\"num_predict\":4}}", 200);
	b = call("/api/generate", "{\"model\":\"gen\",\"prompt\":\"hello world\",\"stream\":false,\"raw\":true,\"keep_alive\":0,"
				  "\"options\":{\"temperature\":0,\"num_predict\":4}}", 200);
	assert_int_equal(jint(a, "prompt_eval_count"), jint(b, "prompt_eval_count"));
	assert_string_equal(jstr(a, "response"), jstr(b, "response"));
	json_decref(a);
	json_decref(b);
}

/* The model "gen" of this server (or -1): its load count in /health. */
static long long gen_loads(void)
{
	json_t *h = call("/health", NULL, 200), *ms = json_object_get(h, "models"), *m;
	size_t i;
	long long n = -1;
	json_array_foreach(ms, i, m)
		if (!strcmp(json_string_value(json_object_get(m, "name")), "gen"))
			n = json_integer_value(json_object_get(m, "load_count"));
	json_decref(h);
	return n;
}

/* A request's num_ctx is that request's context, below the model's n_ctx
 * of 64 or above it, and never reloads the model. */
static void test_num_ctx_per_request(void **state)
{
	char w[600] = "", body[1024];
	json_t *o;
	long long loads;
	(void)state;
	for (int i = 0; i < 40; i++)
		strcat(w, "word ");
	o = call("/api/generate", "{\"model\":\"gen\",\"prompt\":\"hi\",\"stream\":false,"
				  "\"options\":{\"temperature\":0,\"num_predict\":1}}", 200);
	json_decref(o);
	loads = gen_loads();
	assert_true(loads >= 1);
	/* num_ctx 24: a 40-word prompt is cut to fit, and generation stops there */
	snprintf(body, sizeof body,
		 "{\"model\":\"gen\",\"prompt\":\"%s\",\"stream\":false,\"keep_alive\":\"5m\","
		 "\"options\":{\"temperature\":0,\"num_predict\":100,\"num_ctx\":24}}", w);
	o = call("/api/generate", body, 200);
	print_message("      num_ctx 24: prompt_eval_count %lld, eval_count %lld\n", jint(o, "prompt_eval_count"),
		      jint(o, "eval_count"));
	assert_true(jint(o, "prompt_eval_count") <= 23);
	assert_true(jint(o, "prompt_eval_count") + jint(o, "eval_count") <= 24);
	json_decref(o);
	/* OpenAI: the same limit through the extension field; too long a prompt is 400 */
	snprintf(body, sizeof body, "{\"model\":\"gen\",\"prompt\":\"%s\",\"num_ctx\":24}", w);
	o = call("/v1/completions", body, 400);
	assert_string_equal(jstr(o, "error.code"), "context_length_exceeded");
	json_decref(o);
	/* above the model's n_ctx of 64 (up to its trained 512): the same
	 * prompt fits whole, on both APIs, without a reload */
	snprintf(body, sizeof body, "{\"model\":\"gen\",\"prompt\":\"%s\",\"max_tokens\":2,\"num_ctx\":256}", w);
	o = call("/v1/completions", body, 200);
	print_message("      num_ctx 256: prompt_tokens %lld\n", jint(o, "usage.prompt_tokens"));
	assert_true(jint(o, "usage.prompt_tokens") > 64);
	json_decref(o);
	/* Ollama without truncation: 400 in the model's 64, answered in 256 */
	snprintf(body, sizeof body,
		 "{\"model\":\"gen\",\"prompt\":\"%s\",\"stream\":false,\"truncate\":false,"
		 "\"options\":{\"temperature\":0,\"num_predict\":2%s}}", w, "");
	o = call("/api/generate", body, 400);
	json_decref(o);
	snprintf(body, sizeof body,
		 "{\"model\":\"gen\",\"prompt\":\"%s\",\"stream\":false,\"truncate\":false,"
		 "\"options\":{\"temperature\":0,\"num_predict\":2%s}}", w, ",\"num_ctx\":256");
	o = call("/api/generate", body, 200);
	json_decref(o);
	/* larger than the trained context, then smaller again: no reload */
	o = call("/api/generate", "{\"model\":\"gen\",\"prompt\":\"hi\",\"stream\":false,"
				  "\"options\":{\"temperature\":0,\"num_predict\":2,\"num_ctx\":4096}}", 200);
	json_decref(o);
	o = call("/api/generate", "{\"model\":\"gen\",\"prompt\":\"hi\",\"stream\":false,"
				  "\"options\":{\"temperature\":0,\"num_predict\":2,\"num_ctx\":32}}", 200);
	json_decref(o);
	assert_int_equal(gen_loads(), loads);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prompt_longer_than_context),
		cmocka_unit_test(test_refused_fields),
		cmocka_unit_test(test_model_name_never_truncated),
		cmocka_unit_test(test_roles),
		cmocka_unit_test(test_hang_up_while_queued),
		cmocka_unit_test(test_ps_forever_and_load_time),
		cmocka_unit_test(test_generate_without_template_is_raw),
		cmocka_unit_test(test_num_ctx_per_request),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

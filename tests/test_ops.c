/* tests/ops — what an operator meets when a model cannot serve: the start-up
 * check (`dormant serve` prints one line per model, --strict makes a problem
 * fatal, `dormant config check` does the same without a server), permanent
 * failures answered without Retry-After (507 for a model that can never fit
 * the memory budget, 500 with the reason for a missing file), and a fallback
 * chain through a byte-flipped primary and a missing file whose error texts
 * stay valid UTF-8 all the way into the JSON of the answer and of /health.
 * Fixtures: a tiny synthetic model written by `dormant synth`, and a copy
 * with one byte of its architecture name flipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dormant.h"
#include "base/utf8.h"
#include "server/client.h"
#include "server/server.h"
#include "tutil.h"

static char MODEL[512], FLIPPED[512], MISSING[512];

/* The tiny model, and a copy whose "general.architecture" value reads
 * "ll\xffma": not UTF-8, not a known architecture. */
static int setup(void **state)
{
	static const char key[] = "general.architecture";
	unsigned char *data;
	size_t n;
	(void)state;
	snprintf(MODEL, sizeof MODEL, "%s", tu_tmp_path("ops.gguf"));
	snprintf(FLIPPED, sizeof FLIPPED, "%s", tu_tmp_path("ops-flipped.gguf"));
	snprintf(MISSING, sizeof MISSING, "%s", tu_tmp_path("no-such-file.gguf"));
	if (tu_system("%s synth --preset tiny --type Q8_0 -o %s >/dev/null", tu_dormant(), MODEL))
		return -1;
	if (!(data = tu_read_file(MODEL, &n)))
		return -1;
	for (size_t i = 0; i + sizeof key + 12 + 5 < n; i++)
		if (!memcmp(data + i, key, sizeof key - 1)) {
			/* key, then u32 type (string), u64 length 5, "llama" */
			unsigned char *v = data + i + sizeof key - 1 + 4 + 8;
			if (memcmp(v, "llama", 5))
				break;
			v[2] = 0xff;
			if (tu_write_file(FLIPPED, data, n))
				break;
			free(data);
			return 0;
		}
	free(data);
	return -1;
}

struct server {
	dormant *d;
	struct srv *s;
	uint16_t port;
};

static void start(struct server *sv, const char *ini_text)
{
	const char *ini = tu_tmp_path("ops.ini");
	char err[256];
	struct srv_cfg sc;
	struct dm_err e;
	assert_int_equal(tu_write_file(ini, ini_text, strlen(ini_text)), 0);
	if (dormant_open(&sv->d, ini, NULL, err, sizeof err))
		fail_msg("dormant_open: %s", err);
	srv_cfg_from_runtime(&sc, sv->d);
	sc.port = 0;
	if (srv_start(&sv->s, sv->d, &sc, &e))
		fail_msg("srv_start: %s", e.msg);
	sv->port = srv_port(sv->s);
}

static void stop(struct server *sv)
{
	srv_stop(sv->s);
	dormant_close(sv->d);
}

/* POSTs (or GETs, body NULL) and returns the status; *out gets the JSON
 * body (must parse: an error text that is not UTF-8 would break it) and
 * retry_after whether the header was sent. */
static int request(struct server *sv, const char *path, const char *body, json_t **out, bool *retry_after)
{
	struct srv_http_resp r;
	struct dm_err e;
	json_error_t je;
	char buf[32];
	int st;
	if (srv_http("127.0.0.1", sv->port, body ? "POST" : "GET", path, NULL, body, body ? strlen(body) : 0,
		     30000, NULL, NULL, &r, &e))
		fail_msg("%s: %s", path, e.msg);
	st = r.status;
	*retry_after = srv_http_header(&r, "Retry-After", buf, sizeof buf) != NULL;
	*out = json_loadb(r.body, r.body_len, JSON_ALLOW_NUL, &je);
	if (!*out)
		fail_msg("%s: not JSON (%s): %s", path, je.text, r.body);
	srv_http_resp_free(&r);
	return st;
}

static const char *error_text(json_t *o)
{
	json_t *v = json_object_get(o, "error");
	if (json_is_object(v))
		v = json_object_get(v, "message");
	return json_is_string(v) ? json_string_value(v) : "";
}

#define GEN(model) "{\"model\":\"" model "\",\"prompt\":\"hi\",\"stream\":false,\"options\":{\"num_predict\":2}}"

/* A model larger than max_ram is a permanent failure: 507 without
 * Retry-After, every time (never "busy"); a missing file is 500 with the
 * reason, also without Retry-After. */
static void test_permanent_failures_not_busy(void **state)
{
	struct server sv;
	char ini[2048];
	json_t *o;
	bool ra;
	(void)state;
	snprintf(ini, sizeof ini,
		 "[server]\nmax_ram = 1MiB\n\n[model tiny]\npath = %s\nthreads = 1\n\n"
		 "[model gone]\npath = %s\nthreads = 1\n",
		 MODEL, MISSING);
	start(&sv, ini);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(request(&sv, "/api/generate", GEN("tiny"), &o, &ra), 507);
		assert_false(ra);
		assert_non_null(strstr(error_text(o), "insufficient memory: need"));
		json_decref(o);
	}
	assert_int_equal(request(&sv, "/v1/completions", "{\"model\":\"tiny\",\"prompt\":\"hi\",\"max_tokens\":2}",
				 &o, &ra), 507);
	assert_false(ra);
	json_decref(o);
	assert_int_equal(request(&sv, "/api/generate", GEN("gone"), &o, &ra), 500);
	assert_false(ra);
	assert_non_null(strstr(error_text(o), "No such file or directory"));
	json_decref(o);
	stop(&sv);
}

/* a (architecture bytes flipped) -> b (file missing) -> c: the chain is
 * followed to c; a's reason, with the flipped byte escaped, reaches the
 * answer and /health as valid UTF-8. */
static void test_fallback_chain_utf8(void **state)
{
	struct server sv;
	char ini[2048];
	const char *reason, *last = NULL;
	json_t *o, *m;
	size_t i;
	bool ra;
	(void)state;
	snprintf(ini, sizeof ini,
		 "[server]\nenable_fallback = true\n\n[model a]\npath = %s\nfallback = b\n\n"
		 "[model b]\npath = %s\nfallback = c\n\n[model c]\npath = %s\nthreads = 1\n",
		 FLIPPED, MISSING, MODEL);
	start(&sv, ini);
	assert_int_equal(request(&sv, "/api/generate", GEN("a"), &o, &ra), 200);
	reason = json_string_value(json_object_get(o, "fallback_reason"));
	assert_non_null(reason);
	assert_non_null(strstr(reason, "unsupported architecture 'll\\xffma'"));
	assert_true(dm_utf8_valid((const uint8_t *)reason, strlen(reason)));
	json_decref(o);
	assert_int_equal(request(&sv, "/health", NULL, &o, &ra), 200);
	json_array_foreach(json_object_get(o, "models"), i, m)
		if (!strcmp(json_string_value(json_object_get(m, "name")), "a"))
			last = json_string_value(json_object_get(m, "last_error"));
	assert_non_null(last);
	assert_non_null(strstr(last, "unsupported architecture 'll\\xffma'"));
	json_decref(o);
	stop(&sv);
}

/* The start-up check: one line per model; `dormant config check` and
 * `dormant serve --strict` fail on a problem, plain `dormant serve` starts
 * anyway. */
static void test_startup_check(void **state)
{
	const char *ini = tu_tmp_path("check.ini");
	const char *argv[] = { "--config", ini, NULL };
	char text[4096];
	char *out;
	int st, pid, port;
	(void)state;
	snprintf(text, sizeof text,
		 "[server]\nmax_ram = 64MiB\n\n[model good]\npath = %s\nthreads = 1\n\n"
		 "[model flipped]\npath = %s\n\n[model gone]\npath = %s\n\n"
		 "[model huge]\npath = %s\nthreads = 1\nn_ctx = 100000\n\n"
		 "[model orphan]\npath = %s\nthreads = 1\nfallback = nosuch\n",
		 MODEL, FLIPPED, MISSING, MODEL, MODEL);
	assert_int_equal(tu_write_file(ini, text, strlen(text)), 0);
	out = tu_capture(&st, "%s config check --config %s", tu_dormant(), ini);
	assert_non_null(out);
	assert_int_equal(st, 1);
	assert_non_null(strstr(out, "check good                 ok (needs "));
	assert_non_null(strstr(out, "check flipped              problem: "));
	assert_non_null(strstr(out, "unsupported architecture 'll\\xffma'"));
	assert_non_null(strstr(out, "check gone                 problem: "));
	assert_non_null(strstr(out, "no-such-file.gguf: No such file or directory"));
	assert_non_null(strstr(out, "check huge                 problem: needs "));
	assert_non_null(strstr(out, "more than max_ram 64.0 MiB: it can never be loaded"));
	assert_non_null(strstr(out, "check orphan               problem: fallback 'nosuch' names no registered model"));
	assert_non_null(strstr(out, "5 models, 4 with a problem"));
	free(out);
	out = tu_capture(&st, "%s serve --config %s --port 0 --strict 2>&1", tu_dormant(), ini);
	assert_non_null(out);
	assert_int_equal(st, 1);
	assert_non_null(strstr(out, "check huge                 problem: needs "));
	assert_non_null(strstr(out, "4 models with a problem (--strict)"));
	assert_null(strstr(out, "listening on"));
	free(out);
	/* without --strict the problems are reported and the server runs */
	assert_int_equal(tu_serve_start(argv, NULL, &pid, &port), 0);
	assert_int_equal(tu_serve_stop(pid), 0);
	/* a role the file cannot serve: refused by the check as dormant serve
	 * refuses it, and `dormant config` says so beside the role */
	snprintf(text, sizeof text, "[model wrongrole]\npath = %s\nrole = rerank\n\n[model auto]\npath = %s\n", MODEL,
		 MODEL);
	assert_int_equal(tu_write_file(ini, text, strlen(text)), 0);
	out = tu_capture(&st, "%s config check --config %s", tu_dormant(), ini);
	assert_non_null(out);
	assert_int_equal(st, 1);
	assert_non_null(strstr(out, "check wrongrole            problem: model 'wrongrole': role rerank does not fit"));
	assert_non_null(strstr(out, "check auto                 ok (needs "));
	assert_non_null(strstr(out, "2 models, 1 with a problem"));
	free(out);
	out = tu_capture(&st, "%s config --config %s", tu_dormant(), ini);
	assert_non_null(out);
	assert_non_null(strstr(out, "role = rerank  # does not fit the file"));
	assert_non_null(strstr(out, "role = generate  # from the file"));
	free(out);
	out = tu_capture(&st, "%s serve --config %s --port 0 2>&1", tu_dormant(), ini);
	assert_non_null(out);
	assert_int_equal(st, 1);
	assert_non_null(strstr(out, "role rerank does not fit"));
	free(out);
}

/* The README's main job, `dormant demo`, end to end on a tiny model: the
 * server starts (its banner found after the start-up check's lines), both
 * policies run, the server stops cleanly. */
static void test_demo_runs(void **state)
{
	const char *model = tu_tmp_path("demo-tiny.gguf");
	char *out;
	int st;
	(void)state;
	if (tu_system("%s synth --preset tiny --type Q8_0 -o %s", tu_dormant(), model))
		fail_msg("synth failed");
	out = tu_capture(&st, "%s demo %s 2>&1", tu_dormant(), model);
	assert_non_null(out);
	if (st != 0 || !strstr(out, "server stopped (clean exit)") || !strstr(out, "on-demand (keep_alive 0)"))
		fail_msg("dormant demo failed (%d):\n%s", st, out);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_permanent_failures_not_busy),
		cmocka_unit_test(test_fallback_chain_utf8),
		cmocka_unit_test(test_startup_check),
		cmocka_unit_test(test_demo_runs),
	};
	return cmocka_run_group_tests_name("ops", tests, setup, NULL);
}

/*
 * tests/reload — dormant_reload through POST /api/reload on an in-process
 * server (a request can be held there to keep a model busy) and through
 * SIGHUP to a real `dormant serve`: unchanged models stay loaded, removed
 * ones answer 404 at once and are unloaded when their request ends, new
 * ones are served, a changed n_ctx reloads the model with it, a smaller
 * budget evicts the idle model and never the busy one, server settings
 * that need a restart are named, a bad file is refused with its line
 * while the running configuration stays, and models registered outside
 * the file are left alone.  Models: one tiny synthetic GGUF
 * under several names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dormant.h"
#include "mgr/api.h"
#include "mgr/mgr.h"
#include "model/synth.h"
#include "server/client.h"
#include "tsrv.h"
#include "tutil.h"

static char MODEL[1024]; /* the tiny model's path */

/* Writes the configuration: models (NAME or NAME:n_ctx) one section each,
 * then extra [server] lines. */
static void write_ini(const char *file, const char *server, const char *const *models)
{
	char buf[4096];
	size_t k = (size_t)snprintf(buf, sizeof buf, "[server]\n%s", server);
	for (size_t i = 0; models[i]; i++) {
		char name[64];
		const char *colon = strchr(models[i], ':');
		snprintf(name, sizeof name, "%.*s", colon ? (int)(colon - models[i]) : 63, models[i]);
		k += (size_t)snprintf(buf + k, sizeof buf - k, "[model %s]\npath = %s\n%s%s%s", name, MODEL,
				      colon ? "n_ctx = " : "", colon ? colon + 1 : "", colon ? "\n" : "");
	}
	assert_int_equal(tu_write_file(tu_tmp_path(file), buf, strlen(buf)), 0);
}

static void put_text(const char *file, const char *text)
{
	assert_int_equal(tu_write_file(tu_tmp_path(file), text, strlen(text)), 0);
}

static char *http(int port, const char *method, const char *path, const char *body, int *status)
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

/* POST /api/reload: its status and its parsed body. */
static json_t *reload(int port, int *status)
{
	char *b = http(port, "POST", "/api/reload", NULL, status);
	json_t *o = json_loads(b, 0, NULL);
	if (!o)
		fail_msg("/api/reload answered no JSON: %s", b);
	free(b);
	return o;
}

static json_int_t jint(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	if (!json_is_integer(v))
		fail_msg("no integer '%s'", key);
	return json_integer_value(v);
}

/* Whether the array o[key] holds the string s. */
static bool jhas(const json_t *o, const char *key, const char *s)
{
	const json_t *a = json_object_get(o, key), *v;
	size_t i;
	json_array_foreach(a, i, v)
		if (json_is_string(v) && !strcmp(json_string_value(v), s))
			return true;
	return false;
}

/* Whether GET /api/tags lists name. */
static bool listed(int port, const char *name)
{
	int status;
	char *b = http(port, "GET", "/api/tags", NULL, &status), key[96];
	bool yes;
	assert_int_equal(status, 200);
	snprintf(key, sizeof key, "\"name\":\"%s\"", name);
	yes = strstr(b, key) != NULL;
	free(b);
	return yes;
}

static int generate_status(int port, const char *model)
{
	char body[256];
	int status;
	char *b;
	snprintf(body, sizeof body,
		 "{\"model\":\"%s\",\"prompt\":\"hi\",\"stream\":false,\"options\":{\"num_predict\":2}}", model);
	b = http(port, "POST", "/api/generate", body, &status);
	free(b);
	return status;
}

/* The runtime's status of name; false when it is not registered. */
static bool status_of(dormant *d, const char *name, struct dormant_model_status *out)
{
	struct dormant_model_status st[16];
	size_t n = dormant_status(d, st, 16);
	for (size_t i = 0; i < n && i < 16; i++)
		if (!strcmp(st[i].name, name)) {
			*out = st[i];
			return true;
		}
	return false;
}

static int gen_ctx(dormant *d, const char *model)
{
	struct dormant_gen_opts o = { .max_tokens = 2, .temperature = 0, .top_k = -1, .top_p = -1, .min_p = -1 };
	struct dormant_gen_result res;
	char err[256];
	if (dormant_generate(d, model, "hello", &o, NULL, NULL, &res, err, sizeof err))
		fail_msg("generate %s: %s", model, err);
	return res.n_ctx;
}

/* Lifecycle transitions seen, "model:from>to" each. */
static struct {
	pthread_mutex_t mu;
	char ev[256][48];
	size_t n;
} SEEN = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void observe(void *ud, const struct dormant_event *ev)
{
	(void)ud;
	pthread_mutex_lock(&SEEN.mu);
	if (SEEN.n < 256)
		snprintf(SEEN.ev[SEEN.n++], sizeof SEEN.ev[0], "%s:%s>%s", ev->model, ev->from, ev->to);
	pthread_mutex_unlock(&SEEN.mu);
}

static bool seen(const char *what)
{
	bool yes = false;
	pthread_mutex_lock(&SEEN.mu);
	for (size_t i = 0; i < SEEN.n && !yes; i++)
		yes = !strcmp(SEEN.ev[i], what);
	pthread_mutex_unlock(&SEEN.mu);
	return yes;
}

static void test_reload_http(void **state)
{
	static const char *const m1[] = { "alpha:64", "bravo", NULL };
	static const char *const m2[] = { "alpha:64", "charlie", NULL };
	static const char *const m3[] = { "alpha:96", "charlie", NULL };
	static const char *const m5[] = { "alpha:96", NULL };
	struct dormant_model_status ms, a, c;
	struct mgr_cfg lim;
	struct tsrv_hold hold;
	struct srv *s;
	dormant *d;
	uint16_t port;
	char server[256], *b;
	json_t *o;
	int status;
	(void)state;

	write_ini("r.ini", "", m1);
	{
		size_t n;
		char *text = tu_read_file(tu_tmp_path("r.ini"), &n);
		assert_non_null(text);
		assert_int_equal(tsrv_open("r.ini", text, NULL, &d, &s, &port), 0);
		free(text);
	}
	assert_int_equal(dormant_observe_add(d, observe, NULL), 0);
	assert_int_equal(gen_ctx(d, "alpha"), 64);
	assert_true(status_of(d, "alpha", &ms));
	assert_int_equal(ms.load_count, 1);

	/* alpha unchanged, bravo removed, charlie added, a budget */
	write_ini("r.ini", "max_ram = 1GiB\n", m2);
	o = reload(port, &status);
	assert_int_equal(status, 200);
	assert_int_equal(jint(o, "kept"), 1);
	assert_int_equal(jint(o, "changed"), 0);
	assert_int_equal(jint(o, "added"), 1);
	assert_int_equal(jint(o, "removed"), 1);
	assert_int_equal(jint(o, "needs_restart"), 0);
	assert_true(jhas(o, "kept_models", "alpha"));
	assert_true(jhas(o, "added_models", "charlie"));
	assert_true(jhas(o, "removed_models", "bravo"));
	json_decref(o);
	assert_true(status_of(d, "alpha", &ms));
	assert_string_equal(ms.state, "ready"); /* still loaded, not loaded again */
	assert_int_equal(ms.load_count, 1);
	assert_int_equal(ms.unload_count, 0);
	mgr_limits(dormant_mgr(d), &lim);
	assert_int_equal(lim.max_ram, 1ull << 30);
	assert_false(listed(port, "bravo"));
	assert_int_equal(generate_status(port, "bravo"), 404);
	assert_true(listed(port, "charlie"));
	assert_int_equal(generate_status(port, "charlie"), 200);

	/* a syntax error: refused with its line, the running set stays */
	put_text("r.ini", "[server]\nmax_ram = 2GiB\n[model alpha\n");
	b = http(port, "POST", "/api/reload", NULL, &status);
	assert_int_equal(status, 400);
	assert_non_null(strstr(b, "r.ini:3: syntax error"));
	assert_non_null(strstr(b, "\"error\""));
	free(b);
	/* a value the file cannot have: its line and key */
	put_text("r.ini", "[server]\nmax_ram = lots\n");
	b = http(port, "POST", "/api/reload", NULL, &status);
	assert_int_equal(status, 400);
	assert_non_null(strstr(b, "r.ini:2: server.max_ram"));
	free(b);
	/* a model whose file is missing: the line of its path */
	put_text("r.ini", "[model alpha]\npath = /nonexistent.gguf\n");
	b = http(port, "POST", "/api/reload", NULL, &status);
	assert_int_equal(status, 400);
	assert_non_null(strstr(b, "r.ini:2: model 'alpha'"));
	free(b);
	assert_true(status_of(d, "alpha", &ms));
	assert_string_equal(ms.state, "ready");
	assert_int_equal(ms.load_count, 1);
	assert_true(listed(port, "charlie"));
	assert_false(listed(port, "bravo"));
	assert_int_equal(generate_status(port, "charlie"), 200);
	mgr_limits(dormant_mgr(d), &lim);
	assert_int_equal(lim.max_ram, 1ull << 30);

	/* alpha's n_ctx changes while it is loaded and idle: unloaded now, the
	 * next request loads it with the new one */
	write_ini("r.ini", "max_ram = 1GiB\n", m3);
	o = reload(port, &status);
	assert_int_equal(status, 200);
	assert_true(jhas(o, "changed_models", "alpha"));
	assert_true(jhas(o, "kept_models", "charlie"));
	assert_int_equal(jint(o, "unloaded"), 1);
	json_decref(o);
	assert_true(status_of(d, "alpha", &ms));
	assert_string_equal(ms.state, "dormant");
	assert_int_equal(ms.unload_count, 1);
	assert_int_equal(gen_ctx(d, "alpha"), 96);
	assert_true(status_of(d, "alpha", &ms));
	assert_int_equal(ms.load_count, 2);

	/* a budget that holds one of the two: the idle one is evicted, never
	 * the busy one; a new port needs a restart */
	assert_true(status_of(d, "alpha", &a));
	assert_true(status_of(d, "charlie", &c));
	assert_string_equal(c.state, "ready");
	assert_true(a.bytes > 0 && c.bytes > 0);
	{
		/* room for the larger estimate alone (a smaller budget refuses the
		 * file): the busy model's request reserves its context's growth, so
		 * with the idle one's pages beside it that does not fit */
		uint64_t max_ram = a.est_bytes > c.est_bytes ? a.est_bytes : c.est_bytes;
		snprintf(server, sizeof server, "max_ram = %llu\nport = 1\n", (unsigned long long)max_ram);
	}
	tsrv_hold(&hold, d, "charlie");
	write_ini("r.ini", server, m3);
	o = reload(port, &status);
	assert_int_equal(status, 200);
	assert_int_equal(jint(o, "evicted"), 1);
	assert_int_equal(jint(o, "needs_restart"), 1);
	assert_true(jhas(o, "restart_settings", "server.port"));
	json_decref(o);
	assert_true(status_of(d, "alpha", &a));
	assert_string_equal(a.state, "dormant");
	assert_int_equal(a.evict_count, 1);
	assert_true(status_of(d, "charlie", &c));
	assert_string_equal(c.state, "ready");
	assert_true(c.in_use);

	/* charlie removed while busy: gone for new requests at once, its
	 * request finishes, then it is unloaded */
	write_ini("r.ini", server, m5);
	o = reload(port, &status);
	assert_int_equal(status, 200);
	assert_true(jhas(o, "removed_models", "charlie"));
	assert_int_equal(jint(o, "unload_when_idle"), 1);
	json_decref(o);
	assert_false(listed(port, "charlie"));
	assert_int_equal(generate_status(port, "charlie"), 404);
	assert_false(status_of(d, "charlie", &c));
	assert_false(seen("charlie:ready>unloading"));
	tsrv_release(&hold);
	assert_int_equal(hold.rc, 0); /* the request finished normally */
	assert_true(seen("charlie:ready>unloading"));
	assert_true(seen("charlie:unloading>dormant"));
	assert_int_equal(generate_status(port, "alpha"), 200);

	dormant_observe_remove(d, observe, NULL);
	tsrv_close(d, s);
}

/* The C API: models registered outside the file stay as they are (and
 * keep their name), a runtime opened without a file reloads to itself. */
static void test_reload_api(void **state)
{
	static const char *const m1[] = { "alpha", NULL };
	static const char *const m2[] = { "alpha", "extra", NULL };
	static const char *const m3[] = { "bravo", NULL };
	struct dormant_model_status ms;
	struct dormant_reload r;
	char err[256];
	dormant *d;
	(void)state;

	write_ini("api.ini", "", m1);
	assert_int_equal(dormant_open(&d, tu_tmp_path("api.ini"), NULL, err, sizeof err), 0);
	assert_int_equal(dormant_add_model(d, "extra", MODEL, err, sizeof err), 0);
	write_ini("api.ini", "", m2);
	assert_int_not_equal(dormant_reload(d, &r, err, sizeof err), 0);
	assert_non_null(strstr(err, "model 'extra'"));
	assert_non_null(strstr(err, "outside the configuration"));
	write_ini("api.ini", "", m3);
	assert_int_equal(dormant_reload(d, &r, err, sizeof err), 0);
	assert_int_equal(r.n_removed, 1);
	assert_string_equal(r.removed[0], "alpha");
	assert_int_equal(r.n_added, 1);
	assert_true(status_of(d, "extra", &ms));
	assert_true(status_of(d, "bravo", &ms));
	assert_false(status_of(d, "alpha", &ms));
	/* a new eager model is loaded by the reload, as at start-up */
	{
		char text[2200];
		snprintf(text, sizeof text, "[model bravo]\npath = %s\n[model echo]\npath = %s\nload = eager\n", MODEL,
			 MODEL);
		put_text("api.ini", text);
	}
	assert_int_equal(dormant_reload(d, &r, err, sizeof err), 0);
	assert_int_equal(r.n_kept, 1);
	assert_string_equal(r.added[0], "echo");
	assert_true(status_of(d, "echo", &ms));
	assert_string_equal(ms.state, "ready");
	assert_int_equal(ms.load_count, 1);
	assert_true(status_of(d, "bravo", &ms));
	assert_string_equal(ms.state, "dormant");
	dormant_close(d);

	assert_int_equal(dormant_open(&d, NULL, NULL, err, sizeof err), 0);
	assert_int_equal(dormant_add_model(d, "extra", MODEL, err, sizeof err), 0);
	assert_int_equal(dormant_reload(d, &r, err, sizeof err), 0);
	assert_int_equal(r.n_kept + r.n_changed + r.n_added + r.n_removed + r.n_restart, 0);
	assert_true(status_of(d, "extra", &ms));
	dormant_close(d);
}

/* Polls GET /api/tags until name is listed (want) or not; bounded. */
static bool wait_listed(int port, const char *name, bool want)
{
	for (int i = 0; i < 200; i++) {
		if (listed(port, name) == want)
			return true;
		usleep(50000);
	}
	return false;
}

static bool wait_log(const char *path, const char *text)
{
	for (int i = 0; i < 200; i++) {
		size_t n;
		char *b = tu_read_file(path, &n);
		bool yes = b && strstr(b, text);
		free(b);
		if (yes)
			return true;
		usleep(50000);
	}
	return false;
}

static void test_reload_sighup(void **state)
{
	static const char *const m1[] = { "alpha", NULL };
	static const char *const m2[] = { "alpha", "delta", NULL };
	const char *argv[] = { "--config", tu_tmp_path("h.ini"), NULL };
	const char *log = tu_tmp_path("h.log");
	int pid, port;
	(void)state;

	write_ini("h.ini", "", m1);
	assert_int_equal(tu_serve_start(argv, log, &pid, &port), 0);
	assert_true(listed(port, "alpha"));
	assert_false(listed(port, "delta"));

	write_ini("h.ini", "", m2);
	assert_int_equal(kill(pid, SIGHUP), 0);
	if (!wait_listed(port, "delta", true))
		fail_msg("SIGHUP did not reload");
	assert_true(wait_log(log, "reload: 1 kept, 0 changed, 1 added, 0 removed"));
	assert_int_equal(generate_status(port, "delta"), 200);

	/* a bad file: refused (its line in the log), delta still served */
	put_text("h.ini", "[model delta]\nn_ctx = x\n");
	assert_int_equal(kill(pid, SIGHUP), 0);
	assert_true(wait_log(log, "h.ini:2: model.delta.n_ctx"));
	assert_true(listed(port, "delta"));
	assert_int_equal(generate_status(port, "delta"), 200);
	assert_int_equal(tu_serve_stop(pid), 0);
}

static int setup(void **state)
{
	struct synth_opts o = { .type = 8 /* Q8_0 */ };
	struct dm_err e;
	(void)state;
	snprintf(MODEL, sizeof MODEL, "%s", tu_tmp_path("tiny.gguf"));
	return synth_preset("tiny", &o.shape, &e) || synth_write(&o, MODEL, &e) ? -1 : 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reload_http),
		cmocka_unit_test(test_reload_api),
		cmocka_unit_test(test_reload_sighup),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}

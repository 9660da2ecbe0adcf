/* tests/dash — the dashboard and its event stream: the event hub alone
 * (ring, cursors, a reader that falls behind, the sampler asleep while
 * nobody watches), GET /api/events framing with a load/unload pair and a
 * request event, the API key on the stream, the page's files with their
 * content types and Content-Security-Policy, the idle CPU of a real
 * `dormant serve` with and without an events client, and the page itself
 * in headless Chromium driven by playwright-core (tests/js/dash.mjs; skips
 * without node, npm or chromium). */
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dormant.h"
#include "server/client.h"
#include "server/events.h"
#include "server/server.h"
#include "tsrv.h"
#include "tutil.h"

/* AddressSanitizer's quarantine keeps freed memory resident: the page's
 * rise-and-return check is left out there (see test_clients.c). */
#if defined(__SANITIZE_ADDRESS__)
#define DASH_RSS "DASH_NO_RSS=1"
#else
#define DASH_RSS "DASH_NO_RSS="
#endif

static dormant *D;
static struct srv *S;
static uint16_t PORT;
static char MODEL[512];

static int setup(void **state)
{
	char cfg[2048];
	(void)state;
	snprintf(MODEL, sizeof MODEL, "%s", tu_tmp_path("dash.gguf"));
	if (tu_system("%s synth --preset tiny --type Q8_0 -o %s", tu_dormant(), MODEL))
		return -1;
	snprintf(cfg, sizeof cfg,
		 "[server]\nkeep_alive = 5m\n\n[model tiny]\npath = %s\nthreads = 1\n\n"
		 "[model ondemand]\npath = %s\nthreads = 1\nkeep_alive = 0\n",
		 MODEL, MODEL);
	return tsrv_open("dash.ini", cfg, NULL, &D, &S, &PORT);
}

static int teardown(void **state)
{
	(void)state;
	tsrv_close(D, S);
	return 0;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- the hub alone ---- */

static void test_hub_ring_and_drops(void **state)
{
	struct srv_hub *h;
	struct dm_err e;
	uint64_t cur = 1, seq, dropped;
	char type[16], *data;
	json_t *o;
	(void)state;
	assert_int_equal(srv_hub_init(&h, D, &e), 0);
	/* nothing published: a reader waits its time and gets nothing */
	assert_int_equal(srv_hub_next(h, &cur, &seq, type, &data, &dropped, 50), 0);
	assert_int_equal(dropped, 0);
	/* a reader that sleeps through more than a ring loses the oldest:
	 * publishing never waited for it */
	for (int i = 0; i < SRV_HUB_SLOTS + 10; i++)
		srv_hub_publish(h, "request", json_pack("{s:i}", "i", i));
	assert_int_equal(srv_hub_oldest(h), 11);
	assert_int_equal(srv_hub_next(h, &cur, &seq, type, &data, &dropped, 0), 1);
	assert_int_equal(dropped, 10);
	assert_int_equal(seq, 11);
	assert_string_equal(type, "request");
	o = json_loads(data, 0, NULL);
	assert_non_null(o);
	assert_int_equal(json_integer_value(json_object_get(o, "i")), 10);
	assert_true(json_is_real(json_object_get(o, "t")));
	json_decref(o);
	free(data);
	/* the next one follows without a drop */
	assert_int_equal(srv_hub_next(h, &cur, &seq, type, &data, &dropped, 0), 1);
	assert_int_equal(dropped, 0);
	assert_int_equal(seq, 12);
	free(data);
	srv_hub_free(h);
}

static int count_type(struct srv_hub *h, uint64_t from, const char *want)
{
	uint64_t cur = from, seq;
	char type[16], *data;
	int n = 0;
	while (srv_hub_next(h, &cur, &seq, type, &data, NULL, 0)) {
		n += !strcmp(type, want);
		free(data);
	}
	return n;
}

static void test_hub_samples_only_while_watched(void **state)
{
	struct srv_hub *h;
	struct dm_err e;
	(void)state;
	assert_int_equal(srv_hub_init(&h, D, &e), 0);
	sleep_ms(1300);
	assert_int_equal(count_type(h, 1, "memory"), 0); /* nobody watches: no samples */
	srv_hub_watch(h, 1);
	sleep_ms(1300);
	/* one at once, then one per 500 ms: 3 in 1.3 s (2 at least under load) */
	assert_in_range(count_type(h, 1, "memory"), 2, 4);
	assert_true(count_type(h, 1, "models") >= 1);
	srv_hub_publish(h, "lifecycle", json_pack("{s:s}", "model", "x"));
	srv_hub_watch(h, -1);
	/* the last watcher gone: the samples go, the history stays */
	assert_int_equal(count_type(h, 1, "memory"), 0);
	assert_int_equal(count_type(h, 1, "lifecycle"), 1);
	srv_hub_free(h);
}

/* ---- /api/events over HTTP ---- */

struct sse {
	pthread_mutex_t mu;
	char *buf;
	size_t len;
	const char *until;     /* stop once the text contains this (after `after`) */
	const char *after;
	uint16_t port;
	const char *hdrs;
	double deadline;
	int status;
	char headers[4096];
};

static int sse_body(void *ud, const char *d, size_t n)
{
	struct sse *x = ud;
	int stop;
	pthread_mutex_lock(&x->mu);
	x->buf = realloc(x->buf, x->len + n + 1);
	memcpy(x->buf + x->len, d, n);
	x->len += n;
	x->buf[x->len] = '\0';
	{
		const char *a = x->after ? strstr(x->buf, x->after) : x->buf;
		if (a && x->after)
			a += strlen(x->after);
		stop = (a && strstr(a, x->until)) || now_s() > x->deadline;
	}
	pthread_mutex_unlock(&x->mu);
	return stop;
}

static void *sse_main(void *p)
{
	struct sse *x = p;
	struct srv_http_resp r;
	struct dm_err e;
	if (!srv_http("127.0.0.1", x->port, "GET", "/api/events", x->hdrs, NULL, 0, 30000, sse_body, x, &r, &e)) {
		x->status = r.status;
		memcpy(x->headers, r.headers, sizeof x->headers);
		if (r.status != 200) { /* an error body: not streamed through sse_body */
			pthread_mutex_lock(&x->mu);
			free(x->buf);
			x->buf = strdup(r.body ? r.body : "");
			x->len = strlen(x->buf);
			pthread_mutex_unlock(&x->mu);
		}
		srv_http_resp_free(&r);
	}
	return NULL;
}

static bool sse_has(struct sse *x, const char *needle)
{
	bool yes;
	pthread_mutex_lock(&x->mu);
	yes = x->buf && strstr(x->buf, needle);
	pthread_mutex_unlock(&x->mu);
	return yes;
}

/* The stream's blocks in order: "id: N\nevent: T\ndata: JSON\n\n" (the
 * hello and comments aside; a block counts only once its blank line has
 * arrived, so a framing error loses the request event).  Returns the
 * lifecycle "to" states of model and checks that ids grow. */
static int parse_stream(const char *buf, const char *model, char states[][16], int cap, json_t **request)
{
	const char *p = buf;
	long long last_id = 0;
	int n = 0;
	*request = NULL;
	while (*p) {
		const char *end = strstr(p, "\n\n");
		char block[4096], type[32] = "";
		long long id = -1;
		const char *data = NULL;
		json_t *o;
		if (!end) /* the tail after the client stopped reading: cut by us */
			break;
		assert_true((size_t)(end - p) < sizeof block);
		memcpy(block, p, (size_t)(end - p));
		block[end - p] = '\0';
		p = end + 2;
		if (block[0] == ':' || !strncmp(block, "retry:", 6))
			continue;
		for (char *line = strtok(block, "\n"); line; line = strtok(NULL, "\n")) {
			if (!strncmp(line, "id: ", 4))
				id = atoll(line + 4);
			else if (!strncmp(line, "event: ", 7))
				snprintf(type, sizeof type, "%s", line + 7);
			else if (!strncmp(line, "data: ", 6))
				data = line + 6;
			else
				fail_msg("unexpected line in an SSE block: %s", line);
		}
		assert_non_null(data);
		o = json_loads(data, 0, NULL);
		assert_non_null(o);
		if (strcmp(type, "hello")) {
			assert_true(id > last_id);
			last_id = id;
		}
		if (!strcmp(type, "lifecycle") && !strcmp(json_string_value(json_object_get(o, "model")), model) &&
		    n < cap)
			snprintf(states[n++], 16, "%s", json_string_value(json_object_get(o, "to")));
		if (!strcmp(type, "request") && !*request)
			*request = json_incref(o);
		json_decref(o);
	}
	return n;
}

static void test_events_load_unload(void **state)
{
	/* stop once the request's event is complete (another event follows it;
	 * a keep_alive 0 unload ends before the request's event) */
	struct sse x = { .until = "event:", .after = "event: request", .deadline = now_s() + 30 };
	struct srv_http_resp r;
	struct dm_err e;
	pthread_t th;
	char states[16][16];
	json_t *req;
	char ct[128];
	int n;
	const char *body = "{\"model\":\"ondemand\",\"prompt\":\"hi\",\"stream\":false,\"options\":{\"num_predict\":4}}";
	(void)state;
	x.port = PORT;
	pthread_mutex_init(&x.mu, NULL);
	assert_int_equal(pthread_create(&th, NULL, sse_main, &x), 0);
	for (int i = 0; i < 300 && !sse_has(&x, "event: hello"); i++)
		sleep_ms(10);
	assert_true(sse_has(&x, "event: hello"));
	assert_int_equal(srv_http("127.0.0.1", PORT, "POST", "/api/generate", NULL, body, strlen(body), 30000, NULL,
				  NULL, &r, &e), 0);
	assert_int_equal(r.status, 200);
	srv_http_resp_free(&r);
	pthread_join(th, NULL);
	assert_int_equal(x.status, 200);
	{
		struct srv_http_resp h = { 0 };
		memcpy(h.headers, x.headers, sizeof h.headers);
		assert_non_null(srv_http_header(&h, "Content-Type", ct, sizeof ct));
		assert_string_equal(ct, "text/event-stream");
	}
	assert_true(!strncmp(x.buf, "retry: 2000\n\nevent: hello\ndata: {", 33));
	n = parse_stream(x.buf, "ondemand", states, 16, &req);
	/* the whole lifecycle of a keep_alive 0 model, in order */
	assert_int_equal(n, 4);
	assert_string_equal(states[0], "loading");
	assert_string_equal(states[1], "ready");
	assert_string_equal(states[2], "unloading");
	assert_string_equal(states[3], "dormant");
	assert_non_null(req);
	assert_string_equal(json_string_value(json_object_get(req, "endpoint")), "/api/generate");
	assert_string_equal(json_string_value(json_object_get(req, "model")), "ondemand");
	assert_int_equal(json_integer_value(json_object_get(req, "status")), 200);
	assert_int_equal(json_integer_value(json_object_get(req, "gen_tokens")), 4);
	assert_true(json_real_value(json_object_get(req, "ttft_s")) > 0);
	json_decref(req);
	free(x.buf);
	pthread_mutex_destroy(&x.mu);
}

static void test_events_api_key(void **state)
{
	struct srv *s2;
	struct srv_cfg sc;
	struct srv_http_resp r;
	struct dm_err e;
	char ct[256];
	(void)state;
	srv_cfg_from_runtime(&sc, D);
	sc.port = 0;
	snprintf(sc.api_key, sizeof sc.api_key, "s3cret");
	assert_int_equal(srv_start(&s2, D, &sc, &e), 0);
	{
		struct sse x = { .until = "event: hello", .port = srv_port(s2), .deadline = now_s() + 10 };
		pthread_mutex_init(&x.mu, NULL);
		sse_main(&x); /* no key */
		assert_int_equal(x.status, 401);
		assert_true(sse_has(&x, "API key"));
		free(x.buf);
		x.buf = NULL;
		x.len = 0;
		x.hdrs = "Authorization: Bearer wrong\r\n";
		sse_main(&x);
		assert_int_equal(x.status, 401);
		free(x.buf);
		x.buf = NULL;
		x.len = 0;
		x.hdrs = "Authorization: Bearer s3cret\r\n";
		sse_main(&x);
		assert_int_equal(x.status, 200);
		assert_true(sse_has(&x, "event: hello"));
		free(x.buf);
		pthread_mutex_destroy(&x.mu);
	}
	/* the page's files hold no data (the page asks for the key itself):
	 * served without one, and no model name in them */
	assert_int_equal(srv_http("127.0.0.1", srv_port(s2), "GET", "/", NULL, NULL, 0, 5000, NULL, NULL, &r, &e), 0);
	assert_int_equal(r.status, 200);
	assert_null(strstr(r.body, "ondemand"));
	assert_null(strstr(r.body, "s3cret"));
	assert_non_null(srv_http_header(&r, "Content-Type", ct, sizeof ct));
	srv_http_resp_free(&r);
	/* the actions the page sends obey the key */
	assert_int_equal(srv_http("127.0.0.1", srv_port(s2), "POST", "/api/unload", NULL, "{\"model\":\"tiny\"}", 16,
				  5000, NULL, NULL, &r, &e), 0);
	assert_int_equal(r.status, 401);
	srv_http_resp_free(&r);
	srv_stop(s2);
}

static void get(const char *path, int want, const char *want_ctype, struct srv_http_resp *r)
{
	struct dm_err e;
	char ct[256];
	assert_int_equal(srv_http("127.0.0.1", PORT, "GET", path, NULL, NULL, 0, 5000, NULL, NULL, r, &e), 0);
	assert_int_equal(r->status, want);
	if (want_ctype) {
		assert_non_null(srv_http_header(r, "Content-Type", ct, sizeof ct));
		assert_string_equal(ct, want_ctype);
	}
}

static void test_page_files_and_csp(void **state)
{
	struct srv_http_resp r;
	struct dm_err e;
	char csp[512], nosniff[64];
	size_t total = 0;
	(void)state;
	get("/", 200, "text/html; charset=utf-8", &r);
	total += r.body_len;
	assert_non_null(srv_http_header(&r, "Content-Security-Policy", csp, sizeof csp));
	assert_non_null(strstr(csp, "script-src 'self'"));
	assert_non_null(strstr(csp, "default-src 'none'"));
	assert_null(strstr(csp, "unsafe-inline"));
	assert_null(strstr(csp, "unsafe-eval"));
	assert_non_null(srv_http_header(&r, "X-Content-Type-Options", nosniff, sizeof nosniff));
	/* no inline script: every <script has a src and an empty body */
	for (const char *p = r.body; (p = strstr(p, "<script")); p++) {
		const char *close = strstr(p, "</script>");
		assert_non_null(strstr(p, " src=\"/dash.js\""));
		assert_non_null(close);
		assert_true(strchr(p, '>') + 1 == close);
	}
	assert_null(strstr(r.body, "style=")); /* no inline style either */
	srv_http_resp_free(&r);
	get("/dash.js", 200, "text/javascript; charset=utf-8", &r);
	total += r.body_len;
	assert_non_null(strstr(r.body, "textContent"));
	assert_null(strstr(r.body, "innerHTML")); /* model output is never parsed as HTML */
	assert_null(strstr(r.body, "localStorage"));
	assert_null(strstr(r.body, "sessionStorage"));
	srv_http_resp_free(&r);
	get("/dash.css", 200, "text/css; charset=utf-8", &r);
	total += r.body_len;
	srv_http_resp_free(&r);
	assert_true(total < 100 * 1024);
	get("/dash.js.map", 404, NULL, &r);
	srv_http_resp_free(&r);
	assert_int_equal(srv_http("127.0.0.1", PORT, "POST", "/", NULL, "{}", 2, 5000, NULL, NULL, &r, &e), 0);
	assert_int_equal(r.status, 405);
	srv_http_resp_free(&r);
	assert_int_equal(srv_http("127.0.0.1", PORT, "POST", "/api/events", NULL, "{}", 2, 5000, NULL, NULL, &r, &e), 0);
	assert_int_equal(r.status, 405);
	srv_http_resp_free(&r);
}

/* ---- a real `dormant serve`: idle CPU with and without a watcher ---- */

static long cpu_ticks(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
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

static void test_idle_cpu(void **state)
{
	char arg[600];
	const char *argv[] = { "--model", arg, "--quiet", NULL };
	struct sse x = { .until = "never-appears" };
	long t0, t1, t2;
	int pid, port;
	pthread_t th;
	long hz = sysconf(_SC_CLK_TCK);
	(void)state;
	snprintf(arg, sizeof arg, "tiny=%.500s", MODEL);
	assert_int_equal(tu_serve_start(argv, NULL, &pid, &port), 0);
	t0 = cpu_ticks(pid);
	sleep(5);
	t1 = cpu_ticks(pid);
	x.port = (uint16_t)port;
	x.deadline = now_s() + 5;
	pthread_mutex_init(&x.mu, NULL);
	assert_int_equal(pthread_create(&th, NULL, sse_main, &x), 0);
	pthread_join(th, NULL); /* the client reads for 5 s (a memory sample every 500 ms) */
	t2 = cpu_ticks(pid);
	fprintf(stderr, "dormant serve CPU over 5 s: idle %ld ms, with an events client %ld ms\n",
		(t1 - t0) * 1000 / hz, (t2 - t1) * 1000 / hz);
	assert_true(t0 >= 0 && t1 - t0 <= 1); /* nobody watches: no sampling (1 tick of slack) */
	assert_true(sse_has(&x, "event: memory"));
	free(x.buf);
	pthread_mutex_destroy(&x.mu);
	assert_int_equal(tu_serve_stop(pid), 0);
}

/* ---- the page in headless Chromium ---- */

static void test_browser(void **state)
{
	const char *model = tu_tmp_path("browser.gguf");
	char dir[600], bad[700], arg1[600], arg2[800], *out;
	const char *argv[] = { "--model", arg1, "--model", arg2, NULL };
	struct stat sb;
	int pid, port, st;
	(void)state;
	if (system("command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1") ||
	    (access("/usr/bin/chromium", X_OK) && system("command -v chromium >/dev/null 2>&1"))) {
		fprintf(stderr, "node/npm/chromium not installed: skipping the dashboard browser test\n");
		skip();
		return;
	}
	if (stat("tests/js/node_modules/playwright-core/package.json", &sb)) {
		/* exactly the versions in package-lock.json */
		out = tu_capture(&st, "cd tests/js && npm ci --no-audit --no-fund 2>&1");
		if (st)
			fprintf(stderr, "npm ci failed:\n%s\n", out);
		free(out);
		assert_int_equal(st, 0);
	}
	assert_int_equal(tu_system("%s synth --preset tiny --type Q8_0 -o %s", tu_dormant(), model), 0);
	/* a model whose load fails with a message holding markup: its path */
	snprintf(dir, sizeof dir, "%s", tu_tmp_path("<img src=x onerror=alert(2)><script>alert(1)<"));
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(bad, sizeof bad, "%s/script>.gguf", dir);
	assert_int_equal(tu_write_file(bad, "not a gguf file", 15), 0);
	snprintf(arg1, sizeof arg1, "tiny=%.500s", model);
	snprintf(arg2, sizeof arg2, "broken=%.700s", bad);
	assert_int_equal(tu_serve_start(argv, NULL, &pid, &port), 0);
	tu_system("mkdir -p %s/dash", getenv("BUILD") ? getenv("BUILD") : "build");
	out = tu_capture(&st, "HOME=%s DASH_BROKEN=1 " DASH_RSS " timeout 170 node tests/js/dash.mjs http://127.0.0.1:%d %s/dash/dashboard.png 2>&1",
			 tu_tmpdir(), port, getenv("BUILD") ? getenv("BUILD") : "build");
	fputs(out, stderr);
	free(out);
	assert_int_equal(tu_serve_stop(pid), 0);
	assert_int_equal(st, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hub_ring_and_drops),
		cmocka_unit_test(test_hub_samples_only_while_watched),
		cmocka_unit_test(test_page_files_and_csp),
		cmocka_unit_test(test_events_load_unload),
		cmocka_unit_test(test_events_api_key),
		cmocka_unit_test(test_idle_cpu),
		cmocka_unit_test(test_browser),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

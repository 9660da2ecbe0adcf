/* tests/net — the server's connection handling against a server on a random
 * loopback port with a tiny synthetic model: a busy port is an error (no
 * SO_REUSEPORT sharing), 200 idle sockets from one address leave /health
 * and generation answering for another address within 1 s, idle and
 * byte-at-a-time clients are cut after the head timeout, over-long request
 * lines and headers get 414/431 as JSON, and SIGTERM ends a real
 * `dormant serve` within 2 s with a final object on its open streams. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
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

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int setup(void **state)
{
	char cfg[1024];
	(void)state;
	snprintf(MODEL, sizeof MODEL, "%s", tu_tmp_path("net.gguf"));
	if (tu_system("%s synth --preset tiny --type Q8_0 -o %s", tu_dormant(), MODEL))
		return -1;
	snprintf(cfg, sizeof cfg, "[server]\nkeep_alive = 5m\n\n[model tiny]\npath = %s\nthreads = 1\n", MODEL);
	return tsrv_open("net.ini", cfg, NULL, &D, &S, &PORT);
}

static int teardown(void **state)
{
	(void)state;
	tsrv_close(D, S);
	return 0;
}

/* ---- raw sockets from a chosen source address ---- */

/* A connected socket from src (e.g. "127.0.0.2") to 127.0.0.1:port. */
static int dial(const char *src, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET }, b = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	inet_pton(AF_INET, src, &a.sin_addr);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	b.sin_port = htons(port);
	inet_pton(AF_INET, "127.0.0.1", &b.sin_addr);
	if (connect(fd, (struct sockaddr *)&b, sizeof b)) {
		fprintf(stderr, "connect from %s: %s\n", src, strerror(errno));
		fail();
	}
	return fd;
}

/* Reads until EOF or timeout_s; returns the bytes read (NUL-terminated). */
static size_t read_all(int fd, char *out, size_t cap, double timeout_s)
{
	size_t n = 0;
	double end = now_s() + timeout_s;
	while (n + 1 < cap) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		double left = end - now_s();
		ssize_t k;
		if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) <= 0)
			break;
		k = recv(fd, out + n, cap - 1 - n, 0);
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	out[n] = '\0';
	return n;
}

/* Sends req from src, reads the answer (Connection: close); its status. */
static int raw_http(const char *src, uint16_t port, const char *req, size_t len, char *out, size_t cap)
{
	int fd = dial(src, port), st = -1;
	assert_int_equal(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
	read_all(fd, out, cap, 10.0);
	close(fd);
	if (sscanf(out, "HTTP/1.%*d %d", &st) != 1)
		st = -1;
	return st;
}

static const char *body_of(const char *resp)
{
	const char *b = strstr(resp, "\r\n\r\n");
	return b ? b + 4 : "";
}

/* Decodes a chunked body in place (resp is a whole response); returns the
 * body, or NULL when the framing is broken or the last chunk is missing. */
static char *dechunk(char *resp)
{
	char *in = strstr(resp, "\r\n\r\n"), *out;
	if (!in)
		return NULL;
	in += 4;
	out = in;
	for (char *w = in;;) {
		char *end;
		unsigned long n = strtoul(in, &end, 16);
		if (end == in || strncmp(end, "\r\n", 2))
			return NULL;
		in = end + 2;
		if (!n) {
			*w = '\0';
			return out;
		}
		if (strlen(in) < n + 2 || strncmp(in + n, "\r\n", 2))
			return NULL;
		memmove(w, in, n);
		w += n;
		in += n + 2;
	}
}

/* ---- a busy port ---- */

static void test_port_in_use(void **state)
{
	struct srv *s2 = NULL;
	struct srv_cfg sc;
	struct dm_err e = { 0 };
	char want[64];
	char *out;
	int st;
	(void)state;
	srv_cfg_from_runtime(&sc, D);
	sc.port = PORT;
	snprintf(want, sizeof want, "127.0.0.1:%u is already in use", PORT);
	assert_int_equal(srv_start(&s2, D, &sc, &e), DM_EIO);
	assert_null(s2);
	if (!strstr(e.msg, want))
		fail_msg("got '%s', want '%s'", e.msg, want);
	/* the command: one line, non-zero exit (timeout 10 guards against a
	 * server that starts anyway) */
	out = tu_capture(&st, "timeout 10 %s serve --quiet --port %u 2>&1", tu_dormant(), PORT);
	assert_non_null(out);
	if (st != 1 || !strstr(out, want) || strchr(out, '\n') != strrchr(out, '\n'))
		fail_msg("dormant serve on a busy port: status %d, output '%s'", st, out);
	free(out);
}

/* ---- connection exhaustion ---- */

static void test_idle_flood(void **state)
{
	enum { N_IDLE = 200 };
	static const char gen[] =
		"POST /api/generate HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: "
		"application/json\r\nContent-Length: %zu\r\n\r\n%s";
	static const char gen_body[] =
		"{\"model\":\"tiny\",\"prompt\":\"hi\",\"stream\":false,\"options\":{\"num_predict\":2}}";
	static const char health[] = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	struct srv *s2;
	struct srv_cfg sc;
	struct dm_err e;
	struct rlimit rl;
	int idle[N_IDLE], slow, st, n_cut = 0;
	char req[512], out[8192];
	double t0, dt, t_slow;
	uint16_t p;
	(void)state;

	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < 1024 && rl.rlim_max >= 1024) {
		rl.rlim_cur = 1024;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	/* load the model first: "answered within 1 s" is about the server */
	snprintf(req, sizeof req, gen, strlen(gen_body), gen_body);
	assert_int_equal(raw_http("127.0.0.1", PORT, req, strlen(req), out, sizeof out), 200);

	srv_cfg_from_runtime(&sc, D);
	sc.port = 0;
	sc.max_conns_per_ip = 8;
	sc.head_timeout_ms = 1500;
	assert_int_equal(srv_start(&s2, D, &sc, &e), 0);
	p = srv_port(s2);
	/* one client holds 200 sockets open without sending a byte, and one
	 * more that sends its head a byte at a time */
	for (int i = 0; i < N_IDLE; i++)
		idle[i] = dial("127.0.0.1", p);
	slow = dial("127.0.0.3", p);
	t_slow = now_s();
	assert_int_equal(send(slow, "G", 1, MSG_NOSIGNAL), 1);
	usleep(100 * 1000);

	/* another client is answered at once */
	t0 = now_s();
	st = raw_http("127.0.0.2", p, health, sizeof health - 1, out, sizeof out);
	dt = now_s() - t0;
	fprintf(stderr, "/health with %d idle sockets open: %d in %.3f s\n", N_IDLE, st, dt);
	assert_int_equal(st, 200);
	assert_true(dt < 1.0);
	t0 = now_s();
	st = raw_http("127.0.0.2", p, req, strlen(req), out, sizeof out);
	dt = now_s() - t0;
	fprintf(stderr, "/api/generate with %d idle sockets open: %d in %.3f s\n", N_IDLE, st, dt);
	assert_int_equal(st, 200);
	assert_true(dt < 1.0);
	assert_non_null(strstr(body_of(out), "\"response\""));

	/* the slow client keeps sending, a byte every 100 ms: it is cut after
	 * the head timeout all the same (408), not kept alive by its bytes */
	for (const char *b = "ET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "; *b; b++) {
		struct pollfd pf = { .fd = slow, .events = POLLIN };
		if (poll(&pf, 1, 100) != 0 || send(slow, b, 1, MSG_NOSIGNAL) != 1)
			break; /* the server answered */
	}
	read_all(slow, out, sizeof out, 3.0);
	dt = now_s() - t_slow;
	fprintf(stderr, "byte-at-a-time client cut after %.3f s (head timeout 1.5 s)\n", dt);
	assert_true(dt > 1.0 && dt < 3.5);
	if (sscanf(out, "HTTP/1.1 %d", &st) != 1)
		st = -1;
	assert_int_equal(st, 408);
	assert_non_null(strstr(body_of(out), "\"error\""));
	close(slow);

	/* every idle socket is closed by the server: the 8 over the wait at the
	 * head timeout (408), the rest at once (503, over the address's limit) */
	for (int i = 0; i < N_IDLE; i++) {
		size_t n = read_all(idle[i], out, sizeof out, 3.0);
		struct pollfd pf = { .fd = idle[i], .events = POLLIN };
		char c;
		if (n && (strstr(out, "HTTP/1.1 408") || strstr(out, "HTTP/1.1 503")) &&
		    poll(&pf, 1, 0) == 1 && recv(idle[i], &c, 1, MSG_DONTWAIT) == 0)
			n_cut++;
		else if (!n && poll(&pf, 1, 0) == 1)
			n_cut++; /* closed without an answer (reset) */
		close(idle[i]);
	}
	assert_int_equal(n_cut, N_IDLE);
	srv_stop(s2);
}

/* ---- 414 / 431 as JSON ---- */

static void test_head_too_long_json(void **state)
{
	size_t n = 20 * 1024;
	char *req = malloc(n + 256), *out = malloc(16384);
	json_t *o;
	int st;
	(void)state;
	assert_non_null(req);
	assert_non_null(out);

	/* a request line past the limit, on each API */
	for (int api = 0; api < 2; api++) {
		size_t k = (size_t)sprintf(req, "GET %s", api ? "/v1/models?" : "/api/tags?");
		memset(req + k, 'a', n);
		k += n;
		k += (size_t)sprintf(req + k, " HTTP/1.1\r\nHost: x\r\n\r\n");
		st = raw_http("127.0.0.1", PORT, req, k, out, 16384);
		assert_int_equal(st, 414);
		assert_non_null(strstr(out, "Content-Type: application/json"));
		o = json_loads(body_of(out), 0, NULL);
		if (!o)
			fail_msg("414 body is not JSON: %s", body_of(out));
		if (api)
			assert_true(json_is_string(json_object_get(json_object_get(o, "error"), "message")));
		else
			assert_true(json_is_string(json_object_get(o, "error")));
		json_decref(o);
	}
	/* headers past the limit */
	{
		size_t k = (size_t)sprintf(req, "GET /api/tags HTTP/1.1\r\nHost: x\r\nX-Big: ");
		memset(req + k, 'b', n);
		k += n;
		k += (size_t)sprintf(req + k, "\r\n\r\n");
		st = raw_http("127.0.0.1", PORT, req, k, out, 16384);
		assert_int_equal(st, 431);
		o = json_loads(body_of(out), 0, NULL);
		if (!o)
			fail_msg("431 body is not JSON: %s", body_of(out));
		assert_non_null(strstr(json_string_value(json_object_get(o, "error")), "headers"));
		json_decref(o);
	}
	/* a large head under the limit is served */
	{
		size_t k = (size_t)sprintf(req, "GET /api/tags HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: ");
		memset(req + k, 'c', 8000);
		k += 8000;
		k += (size_t)sprintf(req + k, "\r\n\r\n");
		assert_int_equal(raw_http("127.0.0.1", PORT, req, k, out, 16384), 200);
	}
	free(req);
	free(out);
}

/* ---- shutdown ---- */

/* SIGTERM while a quantize-on-load (tens of seconds here) is running for
 * three requests: the process exits within 2 s, and every open answer ends
 * with an error object instead of being cut: NDJSON's last line has
 * "error", SSE has an error event and then [DONE], the unstreamed request
 * gets a JSON 503. */
static void test_sigterm_cancels_load(void **state)
{
	static const char nd[] = "{\"model\":\"big\",\"prompt\":\"hi\",\"options\":{\"num_predict\":4}}";
	static const char sync[] =
		"{\"model\":\"big\",\"prompt\":\"hi\",\"stream\":false,\"options\":{\"num_predict\":4}}";
	static const char sse[] = "{\"model\":\"big\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
				  "\"stream\":true,\"max_tokens\":4}";
	const char *big = tu_tmp_path("net-110m.gguf");
	char arg[600], req[3][1024], *out = malloc(65536);
	const char *argv[] = { "--model", arg, NULL };
	int pid, port, fd[3], st;
	double t0, dt;
	const char *last;
	char *body;
	(void)state;
	assert_non_null(out);
	assert_int_equal(tu_system("%s synth --preset 110m --type F32 -o %s", tu_dormant(), big), 0);
	snprintf(arg, sizeof arg, "big=%.500s", big);
	/* the reference quantizer on one thread: the SIMD one on two threads
	 * may be done before the signal comes */
	setenv("DORMANT_QUANTIZE_ON_LOAD", "Q4_K", 1);
	setenv("DORMANT_ISA", "ref", 1);
	setenv("DORMANT_THREADS", "1", 1);
	assert_int_equal(tu_serve_start(argv, NULL, &pid, &port), 0);
	unsetenv("DORMANT_QUANTIZE_ON_LOAD");
	unsetenv("DORMANT_ISA");
	unsetenv("DORMANT_THREADS");
	snprintf(req[0], sizeof req[0],
		 "POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s", strlen(nd), nd);
	snprintf(req[1], sizeof req[1],
		 "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
		 strlen(sse), sse);
	snprintf(req[2], sizeof req[2],
		 "POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s", strlen(sync),
		 sync);
	for (int i = 0; i < 3; i++) {
		fd[i] = dial("127.0.0.1", (uint16_t)port);
		assert_int_equal(send(fd[i], req[i], strlen(req[i]), MSG_NOSIGNAL), (ssize_t)strlen(req[i]));
	}
	sleep(2); /* well into the load (it takes tens of seconds here) */
	{
		static const char h[] = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
		assert_int_equal(raw_http("127.0.0.1", (uint16_t)port, h, sizeof h - 1, out, 65536), 200);
		if (!strstr(out, "\"loading\""))
			fail_msg("the model is not loading any more: the test needs a slower load: %s", out);
	}
	t0 = now_s();
	kill(pid, SIGTERM);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	dt = now_s() - t0;
	fprintf(stderr, "SIGTERM during quantize-on-load: exit %d after %.3f s\n",
		WIFEXITED(st) ? WEXITSTATUS(st) : -1, dt);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_true(dt < 2.0);

	/* Ollama NDJSON: the last line is an error object */
	read_all(fd[0], out, 65536, 5.0);
	assert_non_null(strstr(out, "HTTP/1.1 200"));
	body = dechunk(out);
	if (!body || !(last = strrchr(body, '{')) || strncmp(last, "{\"error\":\"server is shutting down", 33) ||
	    strcmp(last + strlen(last) - 2, "}\n"))
		fail_msg("NDJSON stream does not end with an error object: %s",
			 body ? body + (strlen(body) > 300 ? strlen(body) - 300 : 0) : "(bad chunking)");
	close(fd[0]);
	/* OpenAI SSE: an error event, then [DONE] */
	read_all(fd[1], out, 65536, 5.0);
	assert_non_null(strstr(out, "HTTP/1.1 200"));
	body = dechunk(out);
	if (!body || !(last = strstr(body, "data: {\"error\":{\"message\":\"server is shutting down")) ||
	    !strstr(last, "}\n\ndata: [DONE]\n\n") || strcmp(strstr(last, "}\n\ndata: [DONE]\n\n"), "}\n\ndata: [DONE]\n\n"))
		fail_msg("SSE stream does not end with an error event and [DONE]: %s",
			 body ? body + (strlen(body) > 300 ? strlen(body) - 300 : 0) : "(bad chunking)");
	close(fd[1]);
	/* not streamed: a JSON error */
	read_all(fd[2], out, 65536, 5.0);
	if (!strstr(out, "HTTP/1.1 503") || !strstr(body_of(out), "{\"error\":\"server is shutting down"))
		fail_msg("unstreamed answer: %s", out);
	close(fd[2]);
	unlink(big);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_port_in_use),
		cmocka_unit_test(test_idle_flood),
		cmocka_unit_test(test_head_too_long_json),
		cmocka_unit_test(test_sigterm_cancels_load),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}

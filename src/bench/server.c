/* bench/server — `dormant bench server MODEL` and the suite's `server`
 * scenario: what the HTTP layer adds
 * over an in-process call.  In one run, with the model loaded and warm:
 *   - GET /health round trip (HTTP only: no model work);
 *   - a 1-token generation through POST /api/generate vs dormant_generate;
 *   - requests/s on /health with wrk when it is installed;
 *   - start-up: `dormant serve` process start to its first /health answer.
 * Medians of --runs samples (default 200), interleaved so drift hits both
 * sides alike. */
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "dormant.h"
#include "server/client.h"
#include "server/server.h"

static int sink(void *ud, const char *t, size_t n)
{
	(void)ud;
	(void)t;
	(void)n;
	return 0;
}

/* Start-up of a real `dormant serve`: fork+exec to the first /health 200. */
static double startup_ms(const char *model_arg, uint16_t port)
{
	char exe[1024], portbuf[8];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	double t0, t = -1;
	pid_t pid;
	if (n <= 0)
		return -1;
	exe[n] = '\0';
	snprintf(portbuf, sizeof portbuf, "%u", port);
	t0 = bench_now();
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		int fd = open("/dev/null", O_WRONLY);
		if (fd >= 0)
			dup2(fd, 2);
		execl(exe, "dormant", "serve", "--quiet", "--port", portbuf, "--model", model_arg, (char *)NULL);
		_exit(127);
	}
	while (bench_now() - t0 < 10) {
		struct srv_http_resp r;
		struct dm_err e;
		if (!srv_http("127.0.0.1", port, "GET", "/health", NULL, NULL, 0, 1000, NULL, NULL, &r, &e)) {
			int ok = r.status == 200;
			srv_http_resp_free(&r);
			if (ok) {
				t = (bench_now() - t0) * 1000.0;
				break;
			}
		}
		usleep(500);
	}
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	return t;
}

/* wrk on loopback with keep-alive connections (what client libraries
 * use): requests/s and mean latency in ms of METHOD path (with body).
 * Returns -1 when wrk is not installed. */
static int wrk_run(uint16_t port, const char *path, const char *body, int conns, double *rps, double *lat_ms)
{
	char cmd[512], line[512], lua[64] = "";
	FILE *p;
	*rps = *lat_ms = -1;
	if (system("command -v wrk >/dev/null 2>&1"))
		return -1;
	if (body) {
		FILE *f;
		snprintf(lua, sizeof lua, "/tmp/dormant-wrk-%d.lua", (int)getpid());
		if (!(f = fopen(lua, "w")))
			return -1;
		fprintf(f, "wrk.method = \"POST\"\nwrk.body = '%s'\nwrk.headers[\"Content-Type\"] = "
			   "\"application/json\"\n", body);
		fclose(f);
	}
	snprintf(cmd, sizeof cmd, "wrk -t1 -c%d -d3s --latency %s%s http://127.0.0.1:%u%s 2>/dev/null", conns,
		 body ? "-s " : "", lua, port, path);
	if (!(p = popen(cmd, "r")))
		return -1;
	while (fgets(line, sizeof line, p)) {
		char unit[8];
		double v;
		if (!strncmp(line, "Requests/sec:", 13))
			*rps = atof(line + 13);
		else if (sscanf(line, " Latency %lf%7s", &v, unit) == 2)
			*lat_ms = !strcmp(unit, "us") ? v / 1000 : !strcmp(unit, "s") ? v * 1000 : v;
	}
	pclose(p);
	if (body)
		unlink(lua);
	return 0;
}

int bench_server_measure(const char *model, long runs, long threads, bool with_wrk, FILE *print, json_t *out,
			 struct dm_err *err_out)
{
	dormant *d = NULL;
	struct srv *s = NULL;
	struct srv_cfg sc;
	struct dm_err e;
	char err[512], arg[1100];
	double *lib, *http, *health, t_start, rps = -1, rps_gen = -1, lat_health = -1, lat_gen = -1;
	const char *body = "{\"model\":\"m\",\"prompt\":\"hi\",\"raw\":true,\"stream\":false,"
			   "\"options\":{\"num_predict\":1,\"temperature\":0}}";
	struct dormant_gen_opts o = { .max_tokens = 1, .temperature = 0, .top_k = -1, .top_p = -1, .min_p = -1 };
	int rc = -1;

	signal(SIGPIPE, SIG_IGN);
	lib = calloc((size_t)runs, sizeof *lib);
	http = calloc((size_t)runs, sizeof *http);
	health = calloc((size_t)runs, sizeof *health);
	if (!lib || !http || !health) {
		dm_err_set(err_out, DM_ENOMEM, "out of memory");
		goto out;
	}
	if (threads > 0) {
		/* the model's thread count, as DORMANT_THREADS would set it */
		char t[24];
		snprintf(t, sizeof t, "%ld", threads);
		setenv("DORMANT_THREADS", t, 1);
	}
	if (dormant_open(&d, NULL, NULL, err, sizeof err) || dormant_add_model(d, "m", model, err, sizeof err)) {
		dm_err_set(err_out, DM_EINVAL, "%s", err);
		goto out;
	}
	srv_cfg_from_runtime(&sc, d);
	sc.port = 0;
	if (srv_start(&s, d, &sc, &e)) {
		dm_err_set(err_out, e.code ? e.code : DM_EIO, "%s", e.msg);
		goto out;
	}
	if (dormant_load_keep_alive(d, "m", -1, NULL, err, sizeof err)) {
		dm_err_set(err_out, DM_EINVAL, "%s", err);
		goto out;
	}
	/* warm both paths */
	for (int i = 0; i < 5; i++) {
		struct srv_http_resp r;
		dormant_generate(d, "m", "hi", &o, sink, NULL, NULL, err, sizeof err);
		if (!srv_http("127.0.0.1", srv_port(s), "POST", "/api/generate", NULL, body, strlen(body), 30000,
			      NULL, NULL, &r, &e))
			srv_http_resp_free(&r);
	}
	for (long i = 0; i < runs; i++) {
		struct srv_http_resp r;
		double t0 = bench_now();
		if (dormant_generate(d, "m", "hi", &o, sink, NULL, NULL, err, sizeof err)) {
			dm_err_set(err_out, DM_EINVAL, "%s", err);
			goto out;
		}
		lib[i] = bench_now() - t0;
		t0 = bench_now();
		if (srv_http("127.0.0.1", srv_port(s), "POST", "/api/generate", NULL, body, strlen(body), 30000,
			     NULL, NULL, &r, &e) || r.status != 200) {
			dm_err_set(err_out, DM_EIO, "POST /api/generate: %s", e.msg);
			goto out;
		}
		srv_http_resp_free(&r);
		http[i] = bench_now() - t0;
		t0 = bench_now();
		if (srv_http("127.0.0.1", srv_port(s), "GET", "/health", NULL, NULL, 0, 30000, NULL, NULL, &r, &e)) {
			dm_err_set(err_out, DM_EIO, "GET /health: %s", e.msg);
			goto out;
		}
		srv_http_resp_free(&r);
		health[i] = bench_now() - t0;
	}
	if (with_wrk) {
		double unused;
		wrk_run(srv_port(s), "/health", NULL, 8, &rps, &unused);
		wrk_run(srv_port(s), "/health", NULL, 1, &unused, &lat_health);
		wrk_run(srv_port(s), "/api/generate", body, 1, &rps_gen, &lat_gen);
	}
	srv_stop(s);
	s = NULL;
	snprintf(arg, sizeof arg, "m=%s", model);
	t_start = startup_ms(arg, (uint16_t)(30000 + getpid() % 20000));
	{
		double ml = bench_median(lib, (int)runs) * 1e3, mh = bench_median(http, (int)runs) * 1e3;
		double mhe = bench_median(health, (int)runs) * 1e3;
		if (print) {
			fprintf(print, "HTTP overhead (loopback, model loaded and warm; %ld interleaved runs, medians)\n", runs);
			fprintf(print, "  1-token generation, library call                 %8.3f ms\n", ml);
			fprintf(print, "  1-token generation, POST /api/generate (new TCP)  %7.3f ms  (+%.3f ms)\n", mh,
			       mh - ml);
			fprintf(print, "  GET /health round trip (new TCP connection)       %7.3f ms\n", mhe);
			if (rps > 0) {
				fprintf(print, "  with keep-alive (wrk -t1 -c1 -d3s, mean latency):\n");
				fprintf(print, "    POST /api/generate, 1 token                     %7.3f ms  (+%.3f ms over "
				       "the library)\n", lat_gen, lat_gen - ml);
				fprintf(print, "    GET /health                                     %7.3f ms\n", lat_health);
				fprintf(print, "  GET /health throughput (wrk -t1 -c8 -d3s)         %7.0f requests/s\n", rps);
			} else {
				fprintf(print, "  keep-alive figures need wrk (apt-get install wrk)%s\n",
				       with_wrk ? "" : "; skipped with --quick");
			}
			fprintf(print, "  dormant serve start-up to first /health %6.1f ms\n", t_start);
		}
		if (out) {
			json_t *j = json_pack("{s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "runs", (json_int_t)runs,
					      "library_ms", ml, "http_ms", mh, "overhead_ms", mh - ml, "health_ms", mhe,
					      "health_rps", rps, "keepalive_generate_ms", lat_gen,
					      "keepalive_overhead_ms", lat_gen > 0 ? lat_gen - ml : -1.0,
					      "keepalive_health_ms", lat_health, "startup_ms", t_start);
			if (!j || json_object_update(out, j)) {
				json_decref(j);
				dm_err_set(err_out, DM_ENOMEM, "out of memory");
				goto out;
			}
			json_decref(j);
		}
	}
	rc = 0;
out:
	srv_stop(s);
	dormant_close(d);
	free(lib);
	free(http);
	free(health);
	return rc;
}

/* The `server` scenario of the lifecycle suite (`dormant bench all`). */
int bench_server(struct bench *L, json_t *out)
{
	return bench_server_measure(L->o.model, bench_runs(L, 200, 20), L->o.n_threads, !L->o.quick, L->o.out, out,
				    &L->err);
}

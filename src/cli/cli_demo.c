/* cli/demo — `dormant demo [MODEL]`: the story in numbers, through the real
 * HTTP API of a real `dormant serve` process.
 *
 * Without MODEL it synthesizes the built-in default (110M parameters,
 * Q8_0, random weights: its text is meaningless) into build/demo/.  It then
 * starts `dormant serve` with two names for the model — `ondemand`
 * (keep_alive 0) and `keepalive` (keep_alive 30s) — and for each sends
 * streamed /api/generate requests, reading the server's memory from
 * /proc/PID/status while they run: idle RSS, load time, time to first
 * token, tokens/s, RSS during inference, RSS after unload.  The server is
 * stopped at the end (SIGTERM, then waited for): nothing is left running. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "server/client.h"

struct mem {
	long rss, anon, file; /* kB */
};

static int proc_mem(int pid, struct mem *m)
{
	char path[64], line[256];
	FILE *f;
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	if (!(f = fopen(path, "r")))
		return -1;
	m->rss = m->anon = m->file = 0;
	while (fgets(line, sizeof line, f)) {
		if (!strncmp(line, "VmRSS:", 6)) m->rss = atol(line + 6);
		else if (!strncmp(line, "RssAnon:", 8)) m->anon = atol(line + 8);
		else if (!strncmp(line, "RssFile:", 8)) m->file = atol(line + 8);
	}
	fclose(f);
	return 0;
}

/* Samples the server's RSS every 2 ms while a request runs; keeps the peak. */
struct sampler {
	int pid;
	atomic_int stop;
	struct mem peak;
};

static void *sample_main(void *arg)
{
	struct sampler *s = arg;
	while (!atomic_load(&s->stop)) {
		struct mem m;
		if (!proc_mem(s->pid, &m) && m.rss > s->peak.rss)
			s->peak = m;
		usleep(2000);
	}
	return NULL;
}

struct stream {
	double t0, ttft;
	char line[65536];
	size_t n;
	json_t *last;
};

/* NDJSON: notes the first non-empty token and keeps the final object. */
static int on_body(void *ud, const char *d, size_t n)
{
	struct stream *s = ud;
	for (size_t i = 0; i < n; i++) {
		if (d[i] != '\n') {
			if (s->n + 1 < sizeof s->line)
				s->line[s->n++] = d[i];
			continue;
		}
		s->line[s->n] = '\0';
		s->n = 0;
		json_t *o = json_loads(s->line, 0, NULL);
		if (!o)
			continue;
		if (s->ttft < 0 && json_is_string(json_object_get(o, "response")) &&
		    json_string_length(json_object_get(o, "response")))
			s->ttft = cli_now() - s->t0;
		if (json_is_true(json_object_get(o, "done"))) {
			json_decref(s->last);
			s->last = o;
		} else {
			json_decref(o);
		}
	}
	return 0;
}

struct result {
	double load_s, ttft_s, tok_s, total_s;
	long n_gen;
	struct mem during, after;
};

static int generate(int pid, uint16_t port, const char *model, int n_predict, struct result *r)
{
	char body[512];
	struct stream st = { .ttft = -1 };
	struct sampler sm = { .pid = pid };
	struct srv_http_resp resp;
	struct dm_err e;
	pthread_t th;
	int rc;

	snprintf(body, sizeof body,
		 "{\"model\":\"%s\",\"prompt\":\"Tell me a story about a lighthouse keeper.\","
		 "\"options\":{\"num_predict\":%d,\"temperature\":0.7,\"seed\":42}}",
		 model, n_predict);
	proc_mem(pid, &sm.peak);
	pthread_create(&th, NULL, sample_main, &sm);
	st.t0 = cli_now();
	rc = srv_http("127.0.0.1", port, "POST", "/api/generate", NULL, body, strlen(body), 120000, on_body, &st,
		      &resp, &e);
	r->total_s = cli_now() - st.t0;
	atomic_store(&sm.stop, 1);
	pthread_join(th, NULL);
	if (rc || resp.status != 200 || !st.last) {
		cli_fail("demo: POST /api/generate (%s): %s", model,
			 rc ? e.msg : resp.body ? resp.body : "no final object");
		if (!rc)
			srv_http_resp_free(&resp);
		json_decref(st.last);
		return -1;
	}
	srv_http_resp_free(&resp);
	r->during = sm.peak;
	r->load_s = (double)json_integer_value(json_object_get(st.last, "load_duration")) / 1e9;
	r->n_gen = (long)json_integer_value(json_object_get(st.last, "eval_count"));
	{
		double ev = (double)json_integer_value(json_object_get(st.last, "eval_duration")) / 1e9;
		r->tok_s = ev > 0 ? (double)(r->n_gen - 1) / ev : 0;
	}
	r->ttft_s = st.ttft;
	json_decref(st.last);
	usleep(20000); /* the unload of an on-demand model runs as the request ends */
	proc_mem(pid, &r->after);
	return 0;
}

static const char *state_of(uint16_t port, const char *model, char *buf, size_t cap)
{
	struct srv_http_resp r;
	json_t *o, *m;
	size_t i;
	snprintf(buf, cap, "?");
	if (srv_http("127.0.0.1", port, "GET", "/health", NULL, NULL, 0, 5000, NULL, NULL, &r, NULL))
		return buf;
	o = json_loadb(r.body, r.body_len, 0, NULL);
	srv_http_resp_free(&r);
	json_array_foreach(json_object_get(o, "models"), i, m)
		if (!strcmp(json_string_value(json_object_get(m, "name")), model))
			snprintf(buf, cap, "%s", json_string_value(json_object_get(m, "state")));
	json_decref(o);
	return buf;
}

static double mib(long kb)
{
	return (double)kb / 1024.0;
}

static void row(const char *what, const struct mem *m, long base_kb)
{
	printf("  %-38s %8.1f MiB  (anon %6.1f, file %6.1f)  %+8.1f MiB vs idle\n", what, mib(m->rss),
	       mib(m->anon), mib(m->file), mib(m->rss - base_kb));
}

int cli_demo(int argc, char **argv)
{
	const char *model = NULL;
	char path[1024], cfg_path[1100], cfg[4096], exe[1024], portbuf[8], state[32];
	int n_predict = 64, fds[2], pid = -1, rc = 1;
	uint16_t port = 0;
	struct mem idle, m;
	struct result od, ka1, ka2;
	struct stat sb;
	ssize_t n;

	for (int i = 1; i < argc; i++) {
		if (argv[i][0] != '-' && !model)
			model = argv[i];
		else {
			fputs("usage: dormant demo [MODEL.gguf]\n", stderr);
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		return cli_fail("demo: cannot find my own executable");
	exe[n] = '\0';
	mkdir("build", 0755);
	mkdir("build/demo", 0755);
	if (!model) {
		snprintf(path, sizeof path, "build/demo/default-110m-Q8_0.gguf");
		if (stat(path, &sb)) {
			char cmd[2200];
			printf("== synthesizing the built-in default model (110M parameters, Q8_0)\n");
			snprintf(cmd, sizeof cmd, "'%s' synth --preset 110m --type Q8_0 -o %s", exe, path);
			if (system(cmd))
				return cli_fail("demo: synth failed");
		}
		printf("   %s: RANDOM WEIGHTS, its text is meaningless; the figures are real.\n"
		       "   Real use: dormant demo path/to/Llama-3.2-1B-Instruct-Q4_K_M.gguf (or any llama/qwen2 GGUF)\n",
		       path);
		model = path;
	} else if (stat(model, &sb)) {
		return cli_fail("demo: %s: %s", model, strerror(errno));
	}
	snprintf(cfg_path, sizeof cfg_path, "build/demo/demo.ini");
	snprintf(cfg, sizeof cfg,
		 "# written by dormant demo\n[server]\nhost = 127.0.0.1\n\n"
		 "[model ondemand]\npath = %s\nkeep_alive = 0\n\n"
		 "[model keepalive]\npath = %s\nkeep_alive = 30s\n",
		 model, model);
	{
		FILE *f = fopen(cfg_path, "w");
		if (!f || fputs(cfg, f) < 0 || fclose(f))
			return cli_fail("demo: cannot write %s", cfg_path);
	}

	/* the server: a real process, so its RSS is its own */
	if (pipe(fds))
		return cli_fail("demo: pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		return cli_fail("demo: fork: %s", strerror(errno));
	if (!pid) {
		dup2(fds[1], 2);
		close(fds[0]);
		close(fds[1]);
		execl(exe, "dormant", "serve", "--config", cfg_path, "--port", "0", "--quiet", (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	{
		char buf[1024];
		size_t k = 0;
		const char *p;
		double t0 = cli_now();
		while (k + 1 < sizeof buf && cli_now() - t0 < 10) {
			ssize_t got = read(fds[0], buf + k, sizeof buf - 1 - k);
			if (got <= 0)
				break;
			k += (size_t)got;
			buf[k] = '\0';
			/* the banner, after the start-up check's lines */
			if ((p = strstr(buf, "listening on http://")) && strstr(p, ")\n"))
				break;
		}
		buf[k] = '\0';
		p = strstr(buf, "listening on http://127.0.0.1:");
		if (p)
			p += strlen("listening on ");
		if (p)
			port = (uint16_t)atoi(p + 17);
		if (!port) {
			cli_fail("demo: the server did not start: %s", buf);
			goto out;
		}
		/* later stderr (nothing with --quiet) must not block the child */
		if (!fork()) {
			while (read(fds[0], buf, sizeof buf) > 0)
				;
			_exit(0);
		}
		close(fds[0]);
	}
	snprintf(portbuf, sizeof portbuf, "%u", port);
	usleep(100000);
	proc_mem(pid, &idle);
	printf("\n== dormant serve (pid %d) on http://127.0.0.1:%s, two policies for one model file\n", pid, portbuf);
	row("idle, nothing loaded", &idle, idle.rss);

	printf("\n== on-demand (keep_alive 0): load, answer, unload at once\n");
	if (generate(pid, port, "ondemand", n_predict, &od))
		goto out;
	printf("  load time                              %8.3f s\n", od.load_s);
	printf("  time to first token (HTTP, incl. load) %8.3f s\n", od.ttft_s);
	printf("  generation                             %8ld tokens at %.1f tok/s\n", od.n_gen, od.tok_s);
	row("RSS during inference (peak)", &od.during, idle.rss);
	row("RSS after the request (unloaded)", &od.after, idle.rss);
	printf("  model state now                        %s\n", state_of(port, "ondemand", state, sizeof state));

	printf("\n== keep-alive 30s: the first request loads, the next one is warm\n");
	if (generate(pid, port, "keepalive", n_predict, &ka1) || generate(pid, port, "keepalive", n_predict, &ka2))
		goto out;
	printf("  first request:  load %.3f s, first token %.3f s, %ld tokens at %.1f tok/s\n", ka1.load_s,
	       ka1.ttft_s, ka1.n_gen, ka1.tok_s);
	printf("  second request: load %.3f s, first token %.3f s, %ld tokens at %.1f tok/s\n", ka2.load_s,
	       ka2.ttft_s, ka2.n_gen, ka2.tok_s);
	row("RSS during inference (peak)", &ka2.during, idle.rss);
	row("RSS between requests (kept loaded)", &ka2.after, idle.rss);
	printf("  model state now                        %s (unloads 30 s after its last request)\n",
	       state_of(port, "keepalive", state, sizeof state));
	{
		struct srv_http_resp r;
		const char *b = "{\"model\":\"keepalive\"}";
		if (!srv_http("127.0.0.1", port, "POST", "/api/unload", NULL, b, strlen(b), 60000, NULL, NULL, &r, NULL))
			srv_http_resp_free(&r);
		proc_mem(pid, &m);
		row("RSS after POST /api/unload", &m, idle.rss);
	}
	printf("\n== the trade: on-demand pays %.3f s of load on every request and holds %+.1f MiB between\n"
	       "   them; keep-alive answers warm requests %.1fx sooner (first token) and holds %+.1f MiB\n"
	       "   until its timer ends.\n",
	       od.load_s, mib(od.after.rss - idle.rss), ka2.ttft_s > 0 ? ka1.ttft_s / ka2.ttft_s : 0.0,
	       mib(ka2.after.rss - idle.rss));
	rc = 0;
out:
	if (pid > 0) {
		int st;
		kill(pid, SIGTERM);
		waitpid(pid, &st, 0);
		printf("\n== server stopped (%s)\n", WIFEXITED(st) && !WEXITSTATUS(st) ? "clean exit" : "abnormal exit");
	}
	return rc;
}

/* cli/serve — `dormant serve` (the HTTP server) and `dormant ps` (what a
 * running server holds). */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "dormant.h"
#include "mgr/api.h"
#include "server/client.h"
#include "server/server.h"

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static void log_line(void *ud, const char *line)
{
	struct timespec ts;
	struct tm tm;
	char when[32];
	(void)ud;
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof when, "%H:%M:%S", &tm);
	pthread_mutex_lock(&log_mu);
	fprintf(stderr, "%s.%03ld %s\n", when, ts.tv_nsec / 1000000, line);
	pthread_mutex_unlock(&log_mu);
}

static int valid_name(const char *s)
{
	if (!*s || strlen(s) >= 64)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '-' || *s == '_' || *s == '.' || *s == ':'))
			return 0;
	return 1;
}

static const char *serve_usage =
	"usage: dormant serve [--config FILE] [--profile NAME] [--host ADDR] [--port N]\n"
	"                     [--model NAME=PATH]... [--api-key KEY] [--quiet] [--strict]\n"
	"                     [--max-connections-per-ip N] [--models-dir DIR]... [--no-discover]\n";

/* The start-up check: one line per model, ok or its problem (file, header,
 * architecture, size against max_ram, fallbacks), so that a model that can
 * never load is found now instead of at its first request.  Returns the
 * number of models with a problem. */
static int check_models(dormant *d)
{
	static struct dormant_model_status st[64]; /* large; cli_serve runs once */
	size_t n = dormant_status(d, st, 64);
	int bad = 0;

	for (size_t i = 0; i < n && i < 64; i++) {
		char err[256];
		uint64_t est = 0;
		int rc = dormant_check_model(d, st[i].name, &est, err, sizeof err);
		cli_check_line(stderr, st[i].name, rc ? err : NULL, est);
		bad += rc != 0;
	}
	return bad;
}

int cli_serve(int argc, char **argv)
{
	const char *config = NULL, *profile = NULL, *host = NULL, *key = NULL;
	const char *models[64];
	long port = -1, per_ip = -1;
	struct cli_disc cd = { .n_dirs = 0 };
	struct dormant_rescan rs;
	int n_models = 0, quiet = 0, strict = 0, bad, sig, rc = 1, k;
	dormant *d = NULL;
	struct srv *s = NULL;
	struct srv_cfg sc;
	struct dm_err e;
	char err[512];
	sigset_t set;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--config") && v) config = v, i++;
		else if (!strcmp(a, "--profile") && v) profile = v, i++;
		else if (!strcmp(a, "--host") && v) host = v, i++;
		else if (!strcmp(a, "--api-key") && v) key = v, i++;
		else if (!strcmp(a, "--port")) {
			if (cli_parse_long("--port", v, 0, 65535, &port))
				return 1;
			i++;
		} else if (!strcmp(a, "--max-connections-per-ip")) {
			if (cli_parse_long("--max-connections-per-ip", v, 1, 65536, &per_ip))
				return 1;
			i++;
		} else if (!strcmp(a, "--model") && v) {
			if (n_models == 64)
				return cli_fail("--model: at most 64 models");
			models[n_models++] = v;
			i++;
		} else if ((k = cli_disc_opt(&cd, &i, argc, argv))) {
			if (k < 0)
				return 2;
		} else if (!strcmp(a, "--quiet")) {
			quiet = 1;
		} else if (!strcmp(a, "--strict")) {
			strict = 1;
		} else {
			fputs(serve_usage, stderr);
			return 2;
		}
	}
	/* SIGINT/SIGTERM are taken by sigwait below; every thread started
	 * from here on inherits the mask */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP); /* reload the configuration, rescan the models folders and stores */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (dormant_open_log(&d, config, profile, quiet ? NULL : log_line, NULL, err, sizeof err))
		return cli_fail("%s", err);
	for (int i = 0; i < n_models; i++) {
		char name[64];
		const char *eq = strchr(models[i], '=');
		FILE *f;
		if (!eq || (size_t)(eq - models[i]) >= sizeof name) {
			cli_fail("--model '%s': expected NAME=PATH", models[i]);
			goto out;
		}
		memcpy(name, models[i], (size_t)(eq - models[i]));
		name[eq - models[i]] = '\0';
		if (!valid_name(name)) {
			cli_fail("--model '%s': a name is 1-63 of A-Z a-z 0-9 - _ . :", name);
			goto out;
		}
		if (!(f = fopen(eq + 1, "rb"))) {
			cli_fail("--model %s: %s: %s", name, eq + 1, strerror(errno));
			goto out;
		}
		fclose(f);
		if (dormant_add_model(d, name, eq + 1, err, sizeof err)) {
			cli_fail("--model %s: %s", name, err);
			goto out;
		}
	}
	/* after --model: a name given there wins over a discovered one */
	if (dormant_discovery_set(d, cd.dirs, cd.n_dirs, cd.no_discover ? 0 : -1, &e) ||
	    dormant_rescan(d, &rs, &e)) {
		cli_fail("%s", e.msg);
		goto out;
	}
	if (rs.found)
		fprintf(stderr, "dormant: discovered %zu model%s (%zu cannot be used: see dormant ls)\n", rs.added,
			rs.added == 1 ? "" : "s", rs.broken);
	if ((bad = check_models(d)) && strict) {
		cli_fail("%d model%s with a problem (--strict)", bad, bad == 1 ? "" : "s");
		goto out;
	}
	srv_cfg_from_runtime(&sc, d);
	if (host)
		snprintf(sc.host, sizeof sc.host, "%s", host);
	if (port >= 0)
		sc.port = (uint16_t)port;
	if (key)
		snprintf(sc.api_key, sizeof sc.api_key, "%s", key);
	if (per_ip > 0)
		sc.max_conns_per_ip = (uint32_t)per_ip;
	if (!quiet)
		sc.log = log_line;
	if (srv_start(&s, d, &sc, &e)) {
		cli_fail("%s", e.msg);
		goto out;
	}
	{
		struct dormant_model_status st[64];
		size_t n = dormant_status(d, st, 64);
		fprintf(stderr, "dormant %s: listening on http://%s%s%s:%u (%zu model%s%s)\n", dormant_version(),
			strchr(sc.host, ':') ? "[" : "", sc.host, strchr(sc.host, ':') ? "]" : "", srv_port(s), n,
			n == 1 ? "" : "s", sc.api_key[0] ? ", API key required" : "");
		for (size_t i = 0; i < n && i < 64; i++)
			fprintf(stderr, "  %-20s %-8s %s\n", st[i].name, st[i].state, st[i].path);
		if (!n)
			fprintf(stderr, "  no models: add --model NAME=PATH or a [model NAME] section in --config\n");
	}
	while (sigwait(&set, &sig) == 0 && sig != SIGINT && sig != SIGTERM) {
		static struct dormant_reload rl; /* large; one signal at a time */
		char line[768];
		if (sig != SIGHUP)
			continue;
		if (dormant_reload(d, &rl, err, sizeof err)) {
			fprintf(stderr, "dormant: reload refused, the running configuration stays: %s\n", err);
			continue;
		}
		dormant_reload_summary(&rl, line, sizeof line);
		if (!quiet)
			fprintf(stderr, "dormant: %s\n", line);
	}
	fprintf(stderr, "dormant: %s, stopping\n", sig == SIGINT ? "interrupted" : "terminated");
	rc = 0;
out:
	srv_stop(s);
	dormant_close(d);
	return rc;
}

/* ---- ps ---- */

static void human_bytes(char *buf, size_t cap, double b)
{
	if (b >= 1073741824.0)
		snprintf(buf, cap, "%.1f GiB", b / 1073741824.0);
	else if (b >= 1048576.0)
		snprintf(buf, cap, "%.1f MiB", b / 1048576.0);
	else if (b > 0)
		snprintf(buf, cap, "%.0f KiB", b / 1024.0);
	else
		snprintf(buf, cap, "-");
}

static void human_ms(char *buf, size_t cap, json_int_t ms)
{
	if (ms < 0)
		snprintf(buf, cap, "forever");
	else if (ms == 0)
		snprintf(buf, cap, "0 (on-demand)");
	else if (ms < 60000)
		snprintf(buf, cap, "%.0fs", (double)ms / 1000.0);
	else if (ms < 3600000)
		snprintf(buf, cap, "%.0fm", (double)ms / 60000.0);
	else
		snprintf(buf, cap, "%.1fh", (double)ms / 3600000.0);
}

int cli_server_models(const char *host, long port, const char *path, int raw, json_t **doc, json_t **models)
{
	struct srv_http_resp r;
	struct dm_err e;
	json_t *o;

	*doc = *models = NULL;
	if (srv_http(host, (uint16_t)port, "GET", path, NULL, NULL, 0, 10000, NULL, NULL, &r, &e))
		return cli_fail("%s", e.msg), 1;
	if (r.status != 200) {
		cli_fail("%s:%ld%s answered %d", host, port, path, r.status);
		srv_http_resp_free(&r);
		return 1;
	}
	if (raw) {
		fwrite(r.body, 1, r.body_len, stdout);
		putchar('\n');
		srv_http_resp_free(&r);
		return 0;
	}
	o = json_loadb(r.body, r.body_len, 0, NULL);
	srv_http_resp_free(&r);
	if (!o || !json_is_array(json_object_get(o, "models"))) {
		json_decref(o);
		return cli_fail("%s:%ld%s: not a dormant server's model list", host, port, path), 1;
	}
	*doc = o;
	*models = json_object_get(o, "models");
	return 0;
}

int cli_ps(int argc, char **argv)
{
	const char *host = getenv("DORMANT_HOST");
	const char *port_env = getenv("DORMANT_PORT");
	long port = 7373;
	int json = 0;
	json_t *o, *models, *m;
	size_t i;

	if (!host || !*host)
		host = "127.0.0.1";
	if (port_env && *port_env && cli_parse_long("DORMANT_PORT", port_env, 1, 65535, &port))
		return 1;
	for (int k = 1; k < argc; k++) {
		const char *a = argv[k], *v = k + 1 < argc ? argv[k + 1] : NULL;
		if (!strcmp(a, "--host") && v) host = v, k++;
		else if (!strcmp(a, "--port")) {
			if (cli_parse_long("--port", v, 1, 65535, &port))
				return 1;
			k++;
		} else if (!strcmp(a, "--json")) json = 1;
		else {
			fputs("usage: dormant ps [--host ADDR] [--port N] [--json]\n", stderr);
			return 2;
		}
	}
	if (cli_server_models(host, port, "/health", json, &o, &models))
		return 1;
	if (!o)
		return 0;
	printf("%-20s %-10s %-6s %-14s %-10s %-14s %s\n", "NAME", "STATE", "LOAD", "KEEP ALIVE", "MEMORY",
	       "EXPIRES", "USE");
	json_array_foreach(models, i, m) {
		char mem[32], ka[32], exp[48], use[48];
		const char *state = json_string_value(json_object_get(m, "state"));
		json_int_t ex = json_integer_value(json_object_get(m, "expires_in_ms"));
		human_bytes(mem, sizeof mem, (double)json_integer_value(json_object_get(m, "bytes")));
		human_ms(ka, sizeof ka, json_integer_value(json_object_get(m, "keep_alive_ms")));
		if (state && !strcmp(state, "ready") && ex >= 0)
			snprintf(exp, sizeof exp, "in %.0f s", (double)ex / 1000.0);
		else if (state && !strcmp(state, "ready") && json_is_true(json_object_get(m, "in_use")))
			snprintf(exp, sizeof exp, "after use");
		else if (state && !strcmp(state, "ready"))
			snprintf(exp, sizeof exp, "never");
		else if (state && !strcmp(state, "loading")) {
			json_t *p = json_object_get(m, "progress");
			double done = (double)json_integer_value(json_object_get(p, "done"));
			double tot = (double)json_integer_value(json_object_get(p, "total"));
			snprintf(exp, sizeof exp, "loading %.0f%%", tot > 0 ? 100.0 * done / tot : 0.0);
		} else
			snprintf(exp, sizeof exp, "-");
		snprintf(use, sizeof use, "%s%s", json_is_true(json_object_get(m, "in_use")) ? "busy" : "idle",
			 json_integer_value(json_object_get(m, "queued")) ? " +queue" : "");
		printf("%-20s %-10s %-6s %-14s %-10s %-14s %s\n",
		       json_string_value(json_object_get(m, "name")), state ? state : "?",
		       json_string_value(json_object_get(m, "policy")), ka, mem, exp, use);
		if (json_is_string(json_object_get(m, "last_error")))
			printf("  last error: %s\n", json_string_value(json_object_get(m, "last_error")));
	}
	json_decref(o);
	return 0;
}

/*
 * bench/report — `--report DIR`: the lifecycle benchmark drawn from its
 * JSON tree (bench/life.c) as DIR/index.html, self-contained (inline SVG and
 * CSS; no script, no font, no network), plus each chart as DIR/NAME.svg.
 *
 * Charts are drawn by bench/svg.c (bench_svg_*).  Every chart names its
 * units on its axes and says under its
 * plot how many runs it shows and on which machine (CPU, cores used, RAM).
 * Output is well-formed XML (XHTML-compatible HTML): every element closed,
 * every text and attribute escaped.  A chart whose scenario did not run is
 * left out.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench/bench.h"
#include "bench/svg.h"

/* ---- JSON access ---- */

static double num(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return json_is_number(v) ? json_number_value(v) : NAN;
}

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

static const json_t *path2(const json_t *o, const char *a, const char *b)
{
	return json_object_get(json_object_get(o, a), b);
}

/* ---- the charts of each scenario ---- */

struct report {
	const json_t *root, *scen;
	char machine[256];
	FILE *html;
	const char *dir;
	struct dm_err *err;
	int n_charts;
};

/* Seconds or milliseconds, whichever reads better for values up to max_s. */
static double time_scale(double max_s, const char **unit)
{
	if (max_s < 1.0) {
		*unit = "ms";
		return 1e3;
	}
	*unit = "s";
	return 1;
}

static void note(struct bench_svg_chart *c, const struct report *R, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void note(struct bench_svg_chart *c, const struct report *R, const char *fmt, ...)
{
	char what[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	snprintf(c->note, sizeof c->note, "%s; %s", what, R->machine);
}

/* Writes the chart inline in the HTML and as DIR/ID.svg. */
static int emit(struct report *R, struct bench_svg_chart *c, const char *caption)
{
	char path[1200];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s.svg", R->dir, c->id);
	if (!(f = fopen(path, "w")))
		return dm_err_set(R->err, DM_EIO, "%s: %s", path, strerror(errno));
	fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", f);
	bench_svg_write(f, c);
	if (fclose(f) != 0)
		return dm_err_set(R->err, DM_EIO, "%s: %s", path, strerror(errno));
	fprintf(R->html, "<figure id=\"%s\">\n", c->id);
	bench_svg_write(R->html, c);
	fputs("<figcaption>", R->html);
	bench_svg_escape(R->html, caption);
	fputs("</figcaption>\n</figure>\n", R->html);
	R->n_charts++;
	return 0;
}

static int chart_memory(struct report *R)
{
	const json_t *mem = json_object_get(R->scen, "memory"), *tl, *pts;
	struct bench_svg_chart c;
	struct bench_svg_series *s[3];
	size_t n;
	int rc;

	if (!mem)
		return 0;
	tl = json_object_get(mem, "timeline");
	pts = json_object_get(mem, "points");
	n = json_array_size(tl);
	bench_svg_init(&c, "memory", "Process memory through the lifecycle: start, load, generate, unload",
		   "time since start (s)", "memory (MiB)");
	s[0] = bench_svg_series_add(&c, "RSS (MiB)", (int)n + 16, BENCH_SVG_LINE);
	s[1] = bench_svg_series_add(&c, "RSS anonymous (MiB)", (int)n + 16, BENCH_SVG_LINE);
	s[2] = bench_svg_series_add(&c, "RSS file-backed (MiB)", (int)n + 16, BENCH_SVG_LINE);
	if (!s[0] || !s[1] || !s[2]) {
		bench_svg_free(&c);
		return dm_err_set(R->err, DM_ENOMEM, "out of memory");
	}
	if (!n) /* no sampler timeline: the points alone */
		tl = pts;
	for (size_t i = 0; i < json_array_size(tl); i++) {
		const json_t *p = json_array_get(tl, i);
		double t = num(p, "t_s");
		bench_svg_put(s[0], t, num(p, "rss_bytes") / 1048576.0);
		bench_svg_put(s[1], t, num(p, "rss_anon_bytes") / 1048576.0);
		bench_svg_put(s[2], t, num(p, "rss_file_bytes") / 1048576.0);
	}
	for (size_t i = 0; i < json_array_size(pts) && c.nmk < BENCH_SVG_MAX_MARKS; i++) {
		const json_t *p = json_array_get(pts, i);
		c.mk[c.nmk].x = num(p, "t_s");
		snprintf(c.mk[c.nmk].label, sizeof c.mk[c.nmk].label, "%s", str(p, "label"));
		c.nmk++;
	}
	note(&c, R, "1 run, RSS from /proc/self/status every %.0f ms, %s mode",
	     num(mem, "sample_interval_ms"), str(mem, "mode"));
	rc = emit(R, &c, "RSS (anonymous and file-backed) sampled through one lifecycle; dashed lines "
			 "mark the measured points of the memory table. After unload the process is back "
			 "at its start.");
	bench_svg_free(&c);
	return rc;
}

/* Samples (x_key, latency) as points, with the fitted line over them. */
static int chart_fit(struct report *R, const char *scen, const char *id, const char *title,
		     const char *x_key, const char *xlabel, const char *what)
{
	const json_t *sc = json_object_get(R->scen, scen), *samples, *fit;
	struct bench_svg_chart c;
	struct bench_svg_series *pts, *line;
	double xmin = INFINITY, xmax = -INFINITY, ymax = 0, k;
	const char *unit;
	char yl[64], lname[128];
	int rc;

	if (!sc)
		return 0;
	samples = json_object_get(sc, "samples");
	fit = json_object_get(sc, "fit");
	for (size_t i = 0; i < json_array_size(samples); i++) {
		const json_t *p = json_array_get(samples, i);
		xmin = fmin(xmin, num(p, x_key));
		xmax = fmax(xmax, num(p, x_key));
		ymax = fmax(ymax, num(p, "latency_s"));
	}
	k = time_scale(ymax, &unit);
	snprintf(yl, sizeof yl, "latency (%s)", unit);
	bench_svg_init(&c, id, title, xlabel, yl);
	pts = bench_svg_series_add(&c, "each request", (int)json_array_size(samples), BENCH_SVG_POINTS);
	if (json_is_true(json_object_get(fit, "ok")))
		snprintf(lname, sizeof lname, "fit: %.4g %s + %.4g %s per token (r\xc2\xb2 %.3f)",
			 num(fit, "fixed_s") * k, unit, num(fit, "per_token_s") * k, unit, num(fit, "r2"));
	else
		snprintf(lname, sizeof lname, "fit: not enough distinct points");
	line = bench_svg_series_add(&c, lname, 2, BENCH_SVG_LINE | BENCH_SVG_DASH);
	if (!pts || !line) {
		bench_svg_free(&c);
		return dm_err_set(R->err, DM_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < json_array_size(samples); i++) {
		const json_t *p = json_array_get(samples, i);
		bench_svg_put(pts, num(p, x_key), num(p, "latency_s") * k);
	}
	if (json_is_true(json_object_get(fit, "ok")) && xmax > xmin) {
		double a = num(fit, "fixed_s"), b = num(fit, "per_token_s"), xs = xmin;
		if (a + b * xs < 0 && b > 0) /* no negative latency: start where the line crosses 0 */
			xs = fmin(-a / b, xmax);
		bench_svg_put(line, xs, (a + b * xs) * k);
		bench_svg_put(line, xmax, (a + b * xmax) * k);
	}
	c.y_zero = true;
	note(&c, R, "%d run%s per point, %s", (int)num(sc, "runs"), num(sc, "runs") > 1 ? "s" : "", what);
	rc = emit(R, &c, title);
	bench_svg_free(&c);
	return rc;
}

static int chart_policies(struct report *R)
{
	const json_t *sc = json_object_get(R->scen, "policies"), *pol;
	struct bench_svg_chart c, t;
	struct bench_svg_series *s;
	const char **labels;
	double ymax = 0, k;
	const char *unit;
	char yl[64];
	size_t n;
	int rc;

	if (!sc)
		return 0;
	pol = json_object_get(sc, "policies");
	n = json_array_size(pol);
	for (size_t i = 0; i < n; i++)
		ymax = fmax(ymax, num(json_array_get(pol, i), "total_latency_s"));
	k = time_scale(ymax, &unit);
	snprintf(yl, sizeof yl, "total latency paid (%s)", unit);
	bench_svg_init(&c, "policies", "Policy trade-off: latency paid vs memory held over the day",
		   "memory held (MiB \xc2\xb7 hours)", yl);
	s = bench_svg_series_add(&c, "one policy (lower left is better)", (int)n, BENCH_SVG_POINTS);
	labels = calloc(n + 1, sizeof *labels);
	if (!s || !labels) {
		free(labels);
		bench_svg_free(&c);
		return dm_err_set(R->err, DM_ENOMEM, "out of memory");
	}
	s->labels = labels;
	for (size_t i = 0; i < n; i++) {
		const json_t *p = json_array_get(pol, i);
		labels[s->n] = str(p, "policy");
		bench_svg_put(s, num(p, "mem_mib_h"), num(p, "total_latency_s") * k);
	}
	note(&c, R, "1 replay of a %.0f h day, %d requests, idle gaps on a virtual clock",
	     num(sc, "day_s") / 3600, (int)json_array_size(json_object_get(sc, "events")));
	rc = emit(R, &c, "Each policy replays the same day of requests: total latency the requests "
			 "paid (loads included) against memory-time held (RSS above the idle process, "
			 "integrated over the day).");
	bench_svg_free(&c);
	if (rc)
		return rc;

	bench_svg_init(&t, "policies-day", "Memory held through the day, per policy", "hour of the day (h)",
		   "memory held (MiB)");
	for (size_t i = 0; i < n && i < BENCH_SVG_MAX_SERIES; i++) {
		const json_t *p = json_array_get(pol, i), *tl = json_object_get(p, "timeline");
		struct bench_svg_series *ps = bench_svg_series_add(&t, str(p, "policy"), (int)json_array_size(tl), BENCH_SVG_LINE);
		if (!ps) {
			bench_svg_free(&t);
			return dm_err_set(R->err, DM_ENOMEM, "out of memory");
		}
		for (size_t j = 0; j < json_array_size(tl); j++) {
			const json_t *q = json_array_get(tl, j);
			bench_svg_put(ps, num(q, "t_s") / 3600, num(q, "held_bytes") / 1048576.0);
		}
	}
	note(&t, R, "1 replay; RSS above the idle process after each state change");
	rc = emit(R, &t, "Memory each policy holds over the replayed day (lines overlap where policies "
			 "agree).");
	bench_svg_free(&t);
	return rc;
}

static int chart_cold(struct report *R)
{
	const json_t *sc = json_object_get(R->scen, "cold"), *sum;
	struct bench_svg_chart c;
	double ymax = 0, k;
	const char *unit;
	char yl[64];
	int rc;

	if (!sc)
		return 0;
	sum = json_object_get(sc, "summary");
	for (size_t i = 0; i < json_array_size(sum); i++)
		ymax = fmax(ymax, num(json_array_get(sum, i), "latency_s"));
	k = time_scale(ymax, &unit);
	snprintf(yl, sizeof yl, "time (%s)", unit);
	bench_svg_init(&c, "cold", "Cold start per load mode: page cache dropped vs cached", "", yl);
	c.bars = true;
	if (!bench_svg_series_add(&c, "load", 1, 0) || !bench_svg_series_add(&c, "time to first token", 1, 0) ||
	    !bench_svg_series_add(&c, "first generation (load included)", 1, 0)) {
		bench_svg_free(&c);
		return dm_err_set(R->err, DM_ENOMEM, "out of memory");
	}
	snprintf(c.xlabel, sizeof c.xlabel, "load mode, page cache");
	for (size_t i = 0; i < json_array_size(sum) && c.ncat < 16; i++) {
		const json_t *p = json_array_get(sum, i);
		snprintf(c.cat[c.ncat], sizeof c.cat[0], "%s, %s", str(p, "mode"), str(p, "cache"));
		c.bar[c.ncat][0] = num(p, "load_s") * k;
		c.bar[c.ncat][1] = num(p, "ttft_s") * k;
		c.bar[c.ncat][2] = num(p, "latency_s") * k;
		c.ncat++;
	}
	note(&c, R, "median of %d run%s per bar", (int)num(sc, "runs"), num(sc, "runs") > 1 ? "s" : "");
	rc = emit(R, &c, "From a dormant model to the end of the first generation, per load mode, with "
			 "the file's pages dropped from the page cache first (cold disk) or cached.");
	bench_svg_free(&c);
	return rc;
}

static int chart_warm(struct report *R)
{
	const json_t *sc = json_object_get(R->scen, "warm"), *samples;
	struct bench_svg_chart c;
	struct bench_svg_series *a, *b;
	double ymax = 0, k;
	const char *unit;
	char yl[64];
	int rc;

	if (!sc)
		return 0;
	samples = json_object_get(sc, "samples");
	for (size_t i = 0; i < json_array_size(samples); i++)
		ymax = fmax(ymax, num(json_array_get(samples, i), "latency_s"));
	k = time_scale(ymax, &unit);
	snprintf(yl, sizeof yl, "time (%s)", unit);
	bench_svg_init(&c, "warm", "Consecutive requests on the loaded model", "request (#)", yl);
	a = bench_svg_series_add(&c, "latency", (int)json_array_size(samples), BENCH_SVG_LINE | BENCH_SVG_POINTS);
	b = bench_svg_series_add(&c, "time to first token", (int)json_array_size(samples), BENCH_SVG_LINE | BENCH_SVG_POINTS);
	if (!a || !b) {
		bench_svg_free(&c);
		return dm_err_set(R->err, DM_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < json_array_size(samples); i++) {
		const json_t *p = json_array_get(samples, i);
		bench_svg_put(a, (double)i + 1, num(p, "latency_s") * k);
		bench_svg_put(b, (double)i + 1, num(p, "ttft_s") * k);
	}
	note(&c, R, "%d runs", (int)num(sc, "runs"));
	rc = emit(R, &c, "Latency of each of the consecutive requests on a loaded model.");
	bench_svg_free(&c);
	return rc;
}

static int chart_warmup(struct report *R)
{
	const json_t *sc = json_object_get(R->scen, "warmup"), *sum;
	static const char *const keys[3] = { "load_s", "gen_latency_s", "latency_s" };
	static const char *const names[3] = { "load (warm-up included)", "generation after the load",
					      "first-request latency" };
	struct bench_svg_chart c;
	double ymax = 0, k;
	const char *unit;
	char yl[64];
	int rc;

	if (!sc)
		return 0;
	sum = json_object_get(sc, "summary");
	for (int w = 0; w < 2; w++)
		ymax = fmax(ymax, num(path2(sum, w ? "off" : "on", "latency_s"), "median"));
	k = time_scale(ymax, &unit);
	snprintf(yl, sizeof yl, "time (%s, median)", unit);
	bench_svg_init(&c, "warmup", "First request with warm-up on vs off", "warm-up", yl);
	c.bars = true;
	for (int i = 0; i < 3; i++)
		if (!bench_svg_series_add(&c, names[i], 1, 0)) {
			bench_svg_free(&c);
			return dm_err_set(R->err, DM_ENOMEM, "out of memory");
		}
	for (int w = 0; w < 2; w++) {
		snprintf(c.cat[w], sizeof c.cat[0], "%s", w ? "off" : "on");
		for (int i = 0; i < 3; i++)
			c.bar[w][i] = num(path2(sum, w ? "off" : "on", keys[i]), "median") * k;
	}
	c.ncat = 2;
	note(&c, R, "median of %d runs each, in alternating rounds (A/B, B/A, ...)", (int)num(sc, "runs"));
	rc = emit(R, &c, "An on-demand model's first request, warm-up on and off, rounds alternating "
			 "which goes first.");
	bench_svg_free(&c);
	return rc;
}

/* One line per key of the scenario's table over x_key. */
static int chart_table(struct report *R, const char *scen, const char *x_key, const char *title,
		       const char *xlabel, const char *ylabel, int nk, const char *const *keys,
		       const char *const *names, double scale, const char *caption)
{
	const json_t *sc = json_object_get(R->scen, scen), *tab;
	struct bench_svg_chart c;
	int rc;

	if (!sc)
		return 0;
	tab = json_object_get(sc, "table");
	bench_svg_init(&c, scen, title, xlabel, ylabel);
	for (int i = 0; i < nk; i++) {
		struct bench_svg_series *s = bench_svg_series_add(&c, names[i], (int)json_array_size(tab), BENCH_SVG_LINE | BENCH_SVG_POINTS);
		if (!s) {
			bench_svg_free(&c);
			return dm_err_set(R->err, DM_ENOMEM, "out of memory");
		}
		for (size_t j = 0; j < json_array_size(tab); j++) {
			const json_t *p = json_array_get(tab, j);
			bench_svg_put(s, num(p, x_key), num(p, keys[i]) * scale);
		}
	}
	note(&c, R, "median of %d run%s per point", (int)num(sc, "runs"), num(sc, "runs") > 1 ? "s" : "");
	rc = emit(R, &c, caption);
	bench_svg_free(&c);
	return rc;
}

/* ---- the page ---- */

static void html_head(struct report *R)
{
	const json_t *m = json_object_get(R->root, "model"), *o = json_object_get(R->root, "options");
	FILE *f = R->html;

	fputs("<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n"
	      "<meta charset=\"utf-8\"/>\n<title>dormant bench: ", f);
	bench_svg_escape(f, str(m, "name"));
	fputs("</title>\n<style>\n"
	      "body { font-family: sans-serif; max-width: 800px; margin: 1em auto; color: #222222; }\n"
	      "figure { margin: 1.5em 0; } figcaption { font-size: 0.9em; color: #444444; }\n"
	      "table { border-collapse: collapse; font-size: 0.9em; }\n"
	      "td, th { border: 1px solid #cccccc; padding: 2px 8px; text-align: right; }\n"
	      ".meta { font-size: 0.9em; color: #444444; }\n"
	      "</style>\n</head>\n<body>\n<h1>dormant bench: the model lifecycle</h1>\n<p class=\"meta\">", f);
	fputs("Model: ", f);
	bench_svg_escape(f, str(m, "path"));
	fprintf(f, " (%s, %s, %d layers, %.1f MiB). ", str(m, "arch"), str(m, "weight_type"),
		(int)num(m, "n_layer"), num(m, "file_bytes") / 1048576.0);
	fputs("Machine: ", f);
	bench_svg_escape(f, R->machine);
	fprintf(f, ". Options: %s load mode, n_ctx %d, prompt %d and %d generated tokens per request%s, "
		   "greedy sampling. Created ",
		str(o, "mode"), (int)num(o, "n_ctx"), (int)num(o, "n_prompt"), (int)num(o, "n_gen"),
		json_is_true(json_object_get(o, "quick")) ? ", quick mode (fewest samples)" : "");
	bench_svg_escape(f, str(R->root, "created"));
	fprintf(f, " by dormant %s.", str(R->root, "version"));
	{
		const json_t *m0 = path2(R->root, "machine", "loadavg_start");
		const json_t *m1 = path2(R->root, "machine", "loadavg_end");
		if (json_array_size(m0) == 3 && json_array_size(m1) == 3)
			fprintf(f, " Load average (1 min) %.2f at the start, %.2f at the end: other work on "
				   "the machine slows what is measured.",
				json_number_value(json_array_get(m0, 0)), json_number_value(json_array_get(m1, 0)));
	}
	fputs("</p>\n", f);
}

static void html_policy_table(struct report *R)
{
	const json_t *pol = path2(R->scen, "policies", "policies");
	FILE *f = R->html;
	if (!json_array_size(pol))
		return;
	fputs("<table>\n<tr><th>policy</th><th>loads</th><th>cold requests</th><th>latency paid (s)</th>"
	      "<th>max latency (s)</th><th>memory (MiB&#183;h)</th><th>mean held (MiB)</th></tr>\n", f);
	for (size_t i = 0; i < json_array_size(pol); i++) {
		const json_t *p = json_array_get(pol, i);
		fputs("<tr><td>", f);
		bench_svg_escape(f, str(p, "policy"));
		fprintf(f, "</td><td>%d</td><td>%d</td><td>%.4f</td><td>%.4f</td><td>%.3f</td><td>%.2f</td></tr>\n",
			(int)num(p, "loads"), (int)num(p, "cold_requests"), num(p, "total_latency_s"),
			num(p, "max_latency_s"), num(p, "mem_mib_h"), num(p, "mean_held_bytes") / 1048576.0);
	}
	fputs("</table>\n", f);
}

static void html_memory_table(struct report *R)
{
	const json_t *pts = path2(R->scen, "memory", "points");
	FILE *f = R->html;
	if (!json_array_size(pts))
		return;
	fputs("<table>\n<tr><th>point</th><th>t (s)</th><th>RSS (MiB)</th><th>anonymous (MiB)</th>"
	      "<th>file-backed (MiB)</th><th>file in page cache (MiB)</th></tr>\n", f);
	for (size_t i = 0; i < json_array_size(pts); i++) {
		const json_t *p = json_array_get(pts, i);
		fputs("<tr><td>", f);
		bench_svg_escape(f, str(p, "label"));
		fprintf(f, "</td><td>%.3f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td></tr>\n",
			num(p, "t_s"), num(p, "rss_bytes") / 1048576.0, num(p, "rss_anon_bytes") / 1048576.0,
			num(p, "rss_file_bytes") / 1048576.0, num(p, "file_cached_bytes") / 1048576.0);
	}
	fputs("</table>\n", f);
}

int bench_report_write(const json_t *root, const char *dir, struct dm_err *err)
{
	static const char *const thr_keys[2] = { "prefill_tok_s", "tok_s" };
	static const char *const thr_names[2] = { "prefill (tok/s)", "decode (tok/s)" };
	static const char *const bat_keys[1] = { "prefill_tok_s" };
	static const char *const bat_names[1] = { "prefill (tok/s)" };
	static const char *const ctx_keys[4] = { "kv_bytes", "scratch_bytes", "bytes", "rss_delta_bytes" };
	static const char *const ctx_names[4] = { "KV cache (MiB)", "scratch (MiB)",
						  "held, manager's accounting (MiB)", "RSS increase, /proc (MiB)" };
	const json_t *mach = json_object_get(root, "machine");
	struct report R;
	char path[1200];
	int rc = 0;

	memset(&R, 0, sizeof R);
	R.root = root;
	R.scen = json_object_get(root, "scenarios");
	R.dir = dir;
	R.err = err;
	snprintf(R.machine, sizeof R.machine, "%s, %d of %d cores used, %.1f GiB RAM, %s",
		 str(mach, "cpu"), (int)num(mach, "cores_used"), (int)num(mach, "logical_cpus"),
		 num(mach, "ram_bytes") / 1073741824.0, str(mach, "isa"));
	if (mkdir(dir, 0777) != 0 && errno != EEXIST)
		return dm_err_set(err, DM_EIO, "%s: cannot create the report folder: %s", dir, strerror(errno));
	snprintf(path, sizeof path, "%s/index.html", dir);
	if (!(R.html = fopen(path, "w")))
		return dm_err_set(err, DM_EIO, "%s: %s", path, strerror(errno));
	html_head(&R);
	fputs("<h2>Memory through the lifecycle</h2>\n", R.html);
	if ((rc = chart_memory(&R)))
		goto out;
	html_memory_table(&R);
	fputs("<h2>Which policy?</h2>\n", R.html);
	if ((rc = chart_policies(&R)))
		goto out;
	html_policy_table(&R);
	fputs("<h2>Latency</h2>\n", R.html);
	if ((rc = chart_fit(&R, "context", "context", "Latency vs prompt length", "n_prompt",
			    "prompt length (tokens)", "one generated token per request")) ||
	    (rc = chart_fit(&R, "max-tokens", "max-tokens", "Latency vs generated tokens", "n_gen",
			    "tokens generated (tokens)", "end-of-generation never sampled")) ||
	    (rc = chart_cold(&R)) || (rc = chart_warm(&R)) || (rc = chart_warmup(&R)))
		goto out;
	fputs("<h2>Settings</h2>\n", R.html);
	if ((rc = chart_table(&R, "threads", "threads", "Speed vs threads", "threads (count)",
			      "speed (tokens/s)", 2, thr_keys, thr_names, 1,
			      "Prefill and decode speed per number of threads.")) ||
	    (rc = chart_table(&R, "batch", "n_batch", "Prefill speed vs n_batch", "n_batch (tokens)",
			      "speed (tokens/s)", 1, bat_keys, bat_names, 1,
			      "Prompt processing speed per batch size.")) ||
	    (rc = chart_table(&R, "ctx", "n_ctx", "Memory vs context size", "n_ctx (tokens)",
			      "memory (MiB)", 4, ctx_keys, ctx_names, 1.0 / 1048576.0,
			      "What each context size costs: KV cache, scratch, the model's whole "
			      "accounting, and the RSS a load with warm-up adds.")))
		goto out;
	{
		static const char *const chat_keys[4] = { "ttft_fresh_s", "ttft_reuse_s", "ttft_od_s",
							  "ttft_od_kv_s" };
		static const char *const chat_names[4] = { "loaded, whole history prefilled", "loaded, prompt cache",
							   "on demand, reload + whole history",
							   "on demand, cache saved to disk" };
		if ((rc = chart_table(&R, "chat", "turn", "Time to first token per chat turn", "turn",
				      "time to first token (s)", 4, chat_keys, chat_names, 1,
				      "Each turn's prompt is the whole conversation so far; with the prompt "
				      "cache a turn prefills only its new tokens; on demand the model is loaded "
				      "for each turn and unloaded after it.")))
			goto out;
	}
	if (!R.n_charts)
		fputs("<p>No scenario with a chart ran.</p>\n", R.html);
	fputs("</body>\n</html>\n", R.html);
out:
	if (fclose(R.html) != 0 && !rc)
		rc = dm_err_set(err, DM_EIO, "%s: %s", path, strerror(errno));
	return rc;
}

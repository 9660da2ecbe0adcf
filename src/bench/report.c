/*
 * cli/bench_report — `--report DIR`: the lifecycle benchmark drawn from its
 * JSON tree (bench/life.c) as DIR/index.html, self-contained (inline SVG and
 * CSS; no script, no font, no network), plus each chart as DIR/NAME.svg.
 *
 * Charts are drawn here: an x/y chart (lines, points, a fitted line,
 * labelled points, vertical markers) and a grouped bar chart, with "nice"
 * axis ticks.  Every chart names its units on its axes and says under its
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

#define W 760.0
#define H 440.0
#define ML 78.0  /* plot margins: left, right, top, bottom */
#define MR 24.0
#define MT 44.0  /* (the least: the legend's rows add to it) */
#define MB 96.0
#define MAX_SERIES 8
#define MAX_MARKS 16

static const char *const palette[MAX_SERIES] = { "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
						 "#9467bd", "#8c564b", "#e377c2", "#17becf" };

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

/* ---- XML text ---- */

static void esc(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default:
			if ((unsigned char)*s < 0x20 && *s != '\n' && *s != '\t')
				fputc(' ', f); /* not allowed in XML 1.0 */
			else
				fputc(*s, f);
		}
	}
}

/* ---- charts ---- */

enum { S_LINE = 1, S_POINTS = 2, S_DASH = 4 };

struct series {
	char name[96];
	double *x, *y;
	int n;
	unsigned style;
	const char **labels; /* per point, or NULL */
};

struct mark {
	double x;
	char label[48];
};

struct chart {
	char id[32], title[160], xlabel[96], ylabel[96], note[512];
	struct series s[MAX_SERIES];
	int ns;
	struct mark mk[MAX_MARKS];
	int nmk;
	bool y_zero; /* the y axis starts at 0 */
	double mt;   /* top margin: title and legend rows (set by svg_open) */
	double ystep; /* y tick step; the y range is a whole number of steps */
	/* bars: categories × series values in bar[][] */
	bool bars;
	int ncat;
	char cat[16][40];
	double bar[16][MAX_SERIES];
};

static void chart_init(struct chart *c, const char *id, const char *title, const char *xl,
		       const char *yl)
{
	memset(c, 0, sizeof *c);
	snprintf(c->id, sizeof c->id, "%s", id);
	snprintf(c->title, sizeof c->title, "%s", title);
	snprintf(c->xlabel, sizeof c->xlabel, "%s", xl);
	snprintf(c->ylabel, sizeof c->ylabel, "%s", yl);
	c->y_zero = true;
}

static void chart_free(struct chart *c)
{
	for (int i = 0; i < c->ns; i++) {
		free(c->s[i].x);
		free(c->s[i].y);
		free(c->s[i].labels);
	}
}

/* A new series with room for n points (NULL when full or out of memory). */
static struct series *add_series(struct chart *c, const char *name, int n, unsigned style)
{
	struct series *s;
	if (c->ns >= MAX_SERIES)
		return NULL;
	s = &c->s[c->ns];
	s->x = calloc((size_t)n + 1, sizeof *s->x);
	s->y = calloc((size_t)n + 1, sizeof *s->y);
	if (!s->x || !s->y) {
		free(s->x);
		free(s->y);
		memset(s, 0, sizeof *s);
		return NULL;
	}
	snprintf(s->name, sizeof s->name, "%s", name);
	s->style = style;
	c->ns++;
	return s;
}

static void put(struct series *s, double x, double y)
{
	if (s && isfinite(x) && isfinite(y)) {
		s->x[s->n] = x;
		s->y[s->n] = y;
		s->n++;
	}
}

/* Ticks at 1, 2 or 5 × 10^k covering [lo, hi], about 5 of them. */
static double nice_step(double lo, double hi)
{
	double range = hi - lo, raw, mag, f;
	if (!(range > 0))
		return 1;
	raw = range / 5;
	mag = pow(10, floor(log10(raw)));
	f = raw / mag;
	return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

static void fmt_num(char *b, size_t cap, double v)
{
	if (fabs(v) < 1e-12)
		v = 0;
	snprintf(b, cap, "%.6g", v);
}

static void axes_range(struct chart *c, double *x0, double *x1, double *y0, double *y1)
{
	bool any = false;
	*x0 = *y0 = INFINITY;
	*x1 = *y1 = -INFINITY;
	for (int i = 0; i < c->ns; i++)
		for (int k = 0; k < c->s[i].n; k++) {
			any = true;
			*x0 = fmin(*x0, c->s[i].x[k]);
			*x1 = fmax(*x1, c->s[i].x[k]);
			*y0 = fmin(*y0, c->s[i].y[k]);
			*y1 = fmax(*y1, c->s[i].y[k]);
		}
	if (!any) {
		*x0 = *y0 = 0;
		*x1 = *y1 = 1;
	}
	if (c->y_zero && *y0 > 0)
		*y0 = 0;
	if (*x1 <= *x0)
		*x1 = *x0 + 1;
	if (*y1 <= *y0)
		*y1 = *y0 + 1;
	{
		double st = nice_step(*y0, *y1);
		*y1 = ceil(*y1 / st - 1e-9) * st;
		*y0 = floor(*y0 / st + 1e-9) * st;
		c->ystep = st;
	}
}

/* Legend item width at 11 px (an estimate: no font metrics here). */
static double legend_w(const char *name)
{
	return 16 + 6.4 * (double)strlen(name) + 18;
}

/* The legend in rows between the title and the plot; returns the plot's
 * top edge. */
static double svg_legend(FILE *f, const struct chart *c)
{
	double x = ML, y = 44;
	fputs("<g font-size=\"11\">\n", f);
	for (int i = 0; i < c->ns; i++) {
		double w = legend_w(c->s[i].name);
		if (x > ML && x + w > W - MR) {
			x = ML;
			y += 15;
		}
		fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"4\" fill=\"%s\"/>\n", x,
			y - 5, palette[i % MAX_SERIES]);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", x + 16, y);
		esc(f, c->s[i].name);
		fputs("</text>\n", f);
		x += w;
	}
	fputs("</g>\n", f);
	return y + 14;
}

static void svg_open(FILE *f, struct chart *c)
{
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
		   "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H, W, H);
	fputs("<title>", f);
	esc(f, c->title);
	fputs("</title>\n", f);
	fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n", W, H);
	fprintf(f, "<text x=\"%.0f\" y=\"24\" font-size=\"15\" font-weight=\"bold\">", ML);
	esc(f, c->title);
	fputs("</text>\n", f);
	c->mt = svg_legend(f, c);
	if (c->mt < MT)
		c->mt = MT;
}

/* The note (runs, machine) under the plot, wrapped on two lines. */
static void svg_note(FILE *f, const struct chart *c)
{
	const char *n = c->note, *cut = NULL;
	size_t len = strlen(n);
	if (len > 110) {
		for (const char *p = n + 100; p > n + 40; p--)
			if (*p == ';' || *p == ',') {
				cut = p + 1;
				break;
			}
	}
	fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" fill=\"#555555\">", ML, H - 30);
	if (cut) {
		char first[256];
		snprintf(first, sizeof first, "%.*s", (int)(cut - n), n);
		esc(f, first);
		fprintf(f, "</text>\n<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" fill=\"#555555\">", ML,
			H - 15);
		while (*cut == ' ')
			cut++;
		esc(f, cut);
	} else {
		esc(f, n);
	}
	fputs("</text>\n", f);
}

static void svg_axes(FILE *f, const struct chart *c, double x0, double x1, double y0, double y1,
		     bool x_ticks)
{
	const double top = c->mt, pw = W - ML - MR, ph = H - top - MB;
	char b[64];

	/* y grid and ticks */
	for (double st = c->ystep > 0 ? c->ystep : nice_step(y0, y1), v = y0; v <= y1 + st * 1e-6; v += st) {
		double py = top + ph - (v - y0) / (y1 - y0) * ph;
		fmt_num(b, sizeof b, v);
		fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", ML,
			py, ML + pw, py);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", ML - 6, py + 4, b);
	}
	if (x_ticks) {
		double st = nice_step(x0, x1);
		for (double v = ceil(x0 / st - 1e-9) * st; v <= x1 + st * 1e-6; v += st) {
			double px = ML + (v - x0) / (x1 - x0) * pw;
			fmt_num(b, sizeof b, v);
			fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n",
				px, top, px, top + ph);
			fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", px,
				top + ph + 16, b);
		}
	}
	fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
		   "stroke=\"#888888\"/>\n", ML, top, pw, ph);
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", ML + pw / 2, top + ph + 36);
	esc(f, c->xlabel);
	fputs("</text>\n", f);
	fprintf(f, "<text transform=\"translate(16 %.1f) rotate(-90)\" text-anchor=\"middle\">",
		top + ph / 2);
	esc(f, c->ylabel);
	fputs("</text>\n", f);
}

struct box {
	double x0, y0, x1, y1;
};

static bool overlaps(const struct box *a, const struct box *b)
{
	return a->x0 < b->x1 && b->x0 < a->x1 && a->y0 < b->y1 && b->y0 < a->y1;
}

static void svg_xy(FILE *f, struct chart *c)
{
	double x0, x1, y0, y1, pw, ph, top, last_mark = -1e9;
	struct box placed[64];
	int np = 0;
	bool scatter = true;

	axes_range(c, &x0, &x1, &y0, &y1);
	for (int i = 0; i < c->ns; i++)
		scatter &= !(c->s[i].style & S_LINE);
	if (scatter) { /* room around the points and their labels */
		double pad = (x1 - x0) * 0.06;
		x0 -= pad;
		x1 += pad;
	}
	svg_open(f, c);
	top = c->mt;
	pw = W - ML - MR;
	ph = H - top - MB;
	svg_axes(f, c, x0, x1, y0, y1, true);
#define PX(v) (ML + ((v) - x0) / (x1 - x0) * pw)
#define PY(v) (top + ph - ((v) - y0) / (y1 - y0) * ph)
	for (int m = 0; m < c->nmk; m++) {
		double px = PX(c->mk[m].x), lx = px + 10;
		if (lx < last_mark + 11) /* markers close together: labels side by side */
			lx = last_mark + 11;
		last_mark = lx;
		fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999999\" "
			   "stroke-dasharray=\"3 3\"/>\n", px, top, px, top + ph);
		fprintf(f, "<text transform=\"translate(%.1f %.1f) rotate(-90)\" font-size=\"10\" "
			   "fill=\"#555555\" text-anchor=\"end\">", lx, top + 4);
		esc(f, c->mk[m].label);
		fputs("</text>\n", f);
	}
	for (int i = 0; i < c->ns; i++) {
		const struct series *s = &c->s[i];
		const char *col = palette[i % MAX_SERIES];
		if ((s->style & S_LINE) && s->n > 1) {
			fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\"%s points=\"", col,
				(s->style & S_DASH) ? " stroke-dasharray=\"6 4\"" : "");
			for (int k = 0; k < s->n; k++) {
				/* the middle of a flat run adds nothing to the line */
				if (k > 0 && k < s->n - 1 && s->y[k - 1] == s->y[k] && s->y[k + 1] == s->y[k])
					continue;
				fprintf(f, "%s%.1f,%.1f", k ? " " : "", PX(s->x[k]), PY(s->y[k]));
			}
			fputs("\"/>\n", f);
		}
		if (!(s->style & S_POINTS))
			continue;
		for (int k = 0; k < s->n; k++) {
			double px = PX(s->x[k]), py = PY(s->y[k]), lw;
			struct box b;
			bool left;
			fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n", px, py, col);
			if (!s->labels || !s->labels[k])
				continue;
			/* right of the point, or left near the right edge; moved down
			 * while it would cover a label already placed */
			lw = 6.4 * (double)strlen(s->labels[k]);
			left = px + 6 + lw > W - MR;
			b = (struct box){ left ? px - 6 - lw : px + 6, py - 17, left ? px - 6 : px + 6 + lw, py - 4 };
			for (int tries = 0; tries < 6; tries++) {
				bool hit = false;
				for (int q = 0; q < np && !hit; q++)
					hit = overlaps(&b, &placed[q]);
				if (!hit)
					break;
				b.y0 += 13;
				b.y1 += 13;
			}
			if (np < 64)
				placed[np++] = b;
			fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\"%s>", left ? b.x1 : b.x0, b.y1 - 2,
				left ? " text-anchor=\"end\"" : "");
			esc(f, s->labels[k]);
			fputs("</text>\n", f);
		}
	}
#undef PX
#undef PY
	svg_note(f, c);
	fputs("</svg>\n", f);
}

static void svg_bars(FILE *f, struct chart *c)
{
	double y0 = 0, y1 = 0, gw, bw, pw, ph, top;

	for (int k = 0; k < c->ncat; k++)
		for (int i = 0; i < c->ns; i++)
			if (isfinite(c->bar[k][i]))
				y1 = fmax(y1, c->bar[k][i]);
	if (!(y1 > 0))
		y1 = 1;
	c->ystep = nice_step(0, y1);
	y1 = ceil(y1 / c->ystep - 1e-9) * c->ystep;
	svg_open(f, c);
	top = c->mt;
	pw = W - ML - MR;
	ph = H - top - MB;
	svg_axes(f, c, 0, 1, y0, y1, false);
	gw = pw / (c->ncat ? c->ncat : 1);
	bw = (gw * 0.8) / (c->ns ? c->ns : 1);
	for (int k = 0; k < c->ncat; k++) {
		double gx = ML + k * gw + gw * 0.1;
		for (int i = 0; i < c->ns; i++) {
			double v = isfinite(c->bar[k][i]) ? c->bar[k][i] : 0, h = v / y1 * ph;
			fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n",
				gx + i * bw, top + ph - h, bw * 0.92, h, palette[i % MAX_SERIES]);
		}
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"11\">",
			ML + k * gw + gw / 2, top + ph + 16);
		esc(f, c->cat[k]);
		fputs("</text>\n", f);
	}
	svg_note(f, c);
	fputs("</svg>\n", f);
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

static void note(struct chart *c, const struct report *R, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void note(struct chart *c, const struct report *R, const char *fmt, ...)
{
	char what[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	snprintf(c->note, sizeof c->note, "%s; %s", what, R->machine);
}

/* Writes the chart inline in the HTML and as DIR/ID.svg. */
static int emit(struct report *R, struct chart *c, const char *caption)
{
	char path[1200];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s.svg", R->dir, c->id);
	if (!(f = fopen(path, "w")))
		return dm_err_set(R->err, DM_EIO, "%s: %s", path, strerror(errno));
	fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", f);
	if (c->bars)
		svg_bars(f, c);
	else
		svg_xy(f, c);
	if (fclose(f) != 0)
		return dm_err_set(R->err, DM_EIO, "%s: %s", path, strerror(errno));
	fprintf(R->html, "<figure id=\"%s\">\n", c->id);
	if (c->bars)
		svg_bars(R->html, c);
	else
		svg_xy(R->html, c);
	fputs("<figcaption>", R->html);
	esc(R->html, caption);
	fputs("</figcaption>\n</figure>\n", R->html);
	R->n_charts++;
	return 0;
}

static int chart_memory(struct report *R)
{
	const json_t *mem = json_object_get(R->scen, "memory"), *tl, *pts;
	struct chart c;
	struct series *s[3];
	size_t n;
	int rc;

	if (!mem)
		return 0;
	tl = json_object_get(mem, "timeline");
	pts = json_object_get(mem, "points");
	n = json_array_size(tl);
	chart_init(&c, "memory", "Process memory through the lifecycle: start, load, generate, unload",
		   "time since start (s)", "memory (MiB)");
	s[0] = add_series(&c, "RSS (MiB)", (int)n + 16, S_LINE);
	s[1] = add_series(&c, "RSS anonymous (MiB)", (int)n + 16, S_LINE);
	s[2] = add_series(&c, "RSS file-backed (MiB)", (int)n + 16, S_LINE);
	if (!s[0] || !s[1] || !s[2]) {
		chart_free(&c);
		return dm_err_set(R->err, DM_ENOMEM, "out of memory");
	}
	if (!n) /* no sampler timeline: the points alone */
		tl = pts;
	for (size_t i = 0; i < json_array_size(tl); i++) {
		const json_t *p = json_array_get(tl, i);
		double t = num(p, "t_s");
		put(s[0], t, num(p, "rss_bytes") / 1048576.0);
		put(s[1], t, num(p, "rss_anon_bytes") / 1048576.0);
		put(s[2], t, num(p, "rss_file_bytes") / 1048576.0);
	}
	for (size_t i = 0; i < json_array_size(pts) && c.nmk < MAX_MARKS; i++) {
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
	chart_free(&c);
	return rc;
}

/* Samples (x_key, latency) as points, with the fitted line over them. */
static int chart_fit(struct report *R, const char *scen, const char *id, const char *title,
		     const char *x_key, const char *xlabel, const char *what)
{
	const json_t *sc = json_object_get(R->scen, scen), *samples, *fit;
	struct chart c;
	struct series *pts, *line;
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
	chart_init(&c, id, title, xlabel, yl);
	pts = add_series(&c, "each request", (int)json_array_size(samples), S_POINTS);
	if (json_is_true(json_object_get(fit, "ok")))
		snprintf(lname, sizeof lname, "fit: %.4g %s + %.4g %s per token (r\xc2\xb2 %.3f)",
			 num(fit, "fixed_s") * k, unit, num(fit, "per_token_s") * k, unit, num(fit, "r2"));
	else
		snprintf(lname, sizeof lname, "fit: not enough distinct points");
	line = add_series(&c, lname, 2, S_LINE | S_DASH);
	if (!pts || !line) {
		chart_free(&c);
		return dm_err_set(R->err, DM_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < json_array_size(samples); i++) {
		const json_t *p = json_array_get(samples, i);
		put(pts, num(p, x_key), num(p, "latency_s") * k);
	}
	if (json_is_true(json_object_get(fit, "ok")) && xmax > xmin) {
		double a = num(fit, "fixed_s"), b = num(fit, "per_token_s"), xs = xmin;
		if (a + b * xs < 0 && b > 0) /* no negative latency: start where the line crosses 0 */
			xs = fmin(-a / b, xmax);
		put(line, xs, (a + b * xs) * k);
		put(line, xmax, (a + b * xmax) * k);
	}
	c.y_zero = true;
	note(&c, R, "%d run%s per point, %s", (int)num(sc, "runs"), num(sc, "runs") > 1 ? "s" : "", what);
	rc = emit(R, &c, title);
	chart_free(&c);
	return rc;
}

static int chart_policies(struct report *R)
{
	const json_t *sc = json_object_get(R->scen, "policies"), *pol;
	struct chart c, t;
	struct series *s;
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
	chart_init(&c, "policies", "Policy trade-off: latency paid vs memory held over the day",
		   "memory held (MiB \xc2\xb7 hours)", yl);
	s = add_series(&c, "one policy (lower left is better)", (int)n, S_POINTS);
	labels = calloc(n + 1, sizeof *labels);
	if (!s || !labels) {
		free(labels);
		chart_free(&c);
		return dm_err_set(R->err, DM_ENOMEM, "out of memory");
	}
	s->labels = labels;
	for (size_t i = 0; i < n; i++) {
		const json_t *p = json_array_get(pol, i);
		labels[s->n] = str(p, "policy");
		put(s, num(p, "mem_mib_h"), num(p, "total_latency_s") * k);
	}
	note(&c, R, "1 replay of a %.0f h day, %d requests, idle gaps on a virtual clock",
	     num(sc, "day_s") / 3600, (int)json_array_size(json_object_get(sc, "events")));
	rc = emit(R, &c, "Each policy replays the same day of requests: total latency the requests "
			 "paid (loads included) against memory-time held (RSS above the idle process, "
			 "integrated over the day).");
	chart_free(&c);
	if (rc)
		return rc;

	chart_init(&t, "policies-day", "Memory held through the day, per policy", "hour of the day (h)",
		   "memory held (MiB)");
	for (size_t i = 0; i < n && i < MAX_SERIES; i++) {
		const json_t *p = json_array_get(pol, i), *tl = json_object_get(p, "timeline");
		struct series *ps = add_series(&t, str(p, "policy"), (int)json_array_size(tl), S_LINE);
		if (!ps) {
			chart_free(&t);
			return dm_err_set(R->err, DM_ENOMEM, "out of memory");
		}
		for (size_t j = 0; j < json_array_size(tl); j++) {
			const json_t *q = json_array_get(tl, j);
			put(ps, num(q, "t_s") / 3600, num(q, "held_bytes") / 1048576.0);
		}
	}
	note(&t, R, "1 replay; RSS above the idle process after each state change");
	rc = emit(R, &t, "Memory each policy holds over the replayed day (lines overlap where policies "
			 "agree).");
	chart_free(&t);
	return rc;
}

static int chart_cold(struct report *R)
{
	const json_t *sc = json_object_get(R->scen, "cold"), *sum;
	struct chart c;
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
	chart_init(&c, "cold", "Cold start per load mode: page cache dropped vs cached", "", yl);
	c.bars = true;
	if (!add_series(&c, "load", 1, 0) || !add_series(&c, "time to first token", 1, 0) ||
	    !add_series(&c, "first generation (load included)", 1, 0)) {
		chart_free(&c);
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
	chart_free(&c);
	return rc;
}

static int chart_warm(struct report *R)
{
	const json_t *sc = json_object_get(R->scen, "warm"), *samples;
	struct chart c;
	struct series *a, *b;
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
	chart_init(&c, "warm", "Consecutive requests on the loaded model", "request (#)", yl);
	a = add_series(&c, "latency", (int)json_array_size(samples), S_LINE | S_POINTS);
	b = add_series(&c, "time to first token", (int)json_array_size(samples), S_LINE | S_POINTS);
	if (!a || !b) {
		chart_free(&c);
		return dm_err_set(R->err, DM_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < json_array_size(samples); i++) {
		const json_t *p = json_array_get(samples, i);
		put(a, (double)i + 1, num(p, "latency_s") * k);
		put(b, (double)i + 1, num(p, "ttft_s") * k);
	}
	note(&c, R, "%d runs", (int)num(sc, "runs"));
	rc = emit(R, &c, "Latency of each of the consecutive requests on a loaded model.");
	chart_free(&c);
	return rc;
}

static int chart_warmup(struct report *R)
{
	const json_t *sc = json_object_get(R->scen, "warmup"), *sum;
	static const char *const keys[3] = { "load_s", "gen_latency_s", "latency_s" };
	static const char *const names[3] = { "load (warm-up included)", "generation after the load",
					      "first-request latency" };
	struct chart c;
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
	chart_init(&c, "warmup", "First request with warm-up on vs off", "warm-up", yl);
	c.bars = true;
	for (int i = 0; i < 3; i++)
		if (!add_series(&c, names[i], 1, 0)) {
			chart_free(&c);
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
	chart_free(&c);
	return rc;
}

/* One line per key of the scenario's table over x_key. */
static int chart_table(struct report *R, const char *scen, const char *x_key, const char *title,
		       const char *xlabel, const char *ylabel, int nk, const char *const *keys,
		       const char *const *names, double scale, const char *caption)
{
	const json_t *sc = json_object_get(R->scen, scen), *tab;
	struct chart c;
	int rc;

	if (!sc)
		return 0;
	tab = json_object_get(sc, "table");
	chart_init(&c, scen, title, xlabel, ylabel);
	for (int i = 0; i < nk; i++) {
		struct series *s = add_series(&c, names[i], (int)json_array_size(tab), S_LINE | S_POINTS);
		if (!s) {
			chart_free(&c);
			return dm_err_set(R->err, DM_ENOMEM, "out of memory");
		}
		for (size_t j = 0; j < json_array_size(tab); j++) {
			const json_t *p = json_array_get(tab, j);
			put(s, num(p, x_key), num(p, keys[i]) * scale);
		}
	}
	note(&c, R, "median of %d run%s per point", (int)num(sc, "runs"), num(sc, "runs") > 1 ? "s" : "");
	rc = emit(R, &c, caption);
	chart_free(&c);
	return rc;
}

/* ---- the page ---- */

static void html_head(struct report *R)
{
	const json_t *m = json_object_get(R->root, "model"), *o = json_object_get(R->root, "options");
	FILE *f = R->html;

	fputs("<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n"
	      "<meta charset=\"utf-8\"/>\n<title>dormant bench: ", f);
	esc(f, str(m, "name"));
	fputs("</title>\n<style>\n"
	      "body { font-family: sans-serif; max-width: 800px; margin: 1em auto; color: #222222; }\n"
	      "figure { margin: 1.5em 0; } figcaption { font-size: 0.9em; color: #444444; }\n"
	      "table { border-collapse: collapse; font-size: 0.9em; }\n"
	      "td, th { border: 1px solid #cccccc; padding: 2px 8px; text-align: right; }\n"
	      ".meta { font-size: 0.9em; color: #444444; }\n"
	      "</style>\n</head>\n<body>\n<h1>dormant bench: the model lifecycle</h1>\n<p class=\"meta\">", f);
	fputs("Model: ", f);
	esc(f, str(m, "path"));
	fprintf(f, " (%s, %s, %d layers, %.1f MiB). ", str(m, "arch"), str(m, "weight_type"),
		(int)num(m, "n_layer"), num(m, "file_bytes") / 1048576.0);
	fputs("Machine: ", f);
	esc(f, R->machine);
	fprintf(f, ". Options: %s load mode, n_ctx %d, prompt %d and %d generated tokens per request%s, "
		   "greedy sampling. Created ",
		str(o, "mode"), (int)num(o, "n_ctx"), (int)num(o, "n_prompt"), (int)num(o, "n_gen"),
		json_is_true(json_object_get(o, "quick")) ? ", quick mode (fewest samples)" : "");
	esc(f, str(R->root, "created"));
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
		esc(f, str(p, "policy"));
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
		esc(f, str(p, "label"));
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

/*
 * bench/svg — the benchmark report's charts as SVG (see svg.h).  No font
 * metrics are available, so text widths are estimated at 6.4 px per byte of
 * 11 px text; labels that would overlap are moved down, a few rows at most.
 */
#include "bench/svg.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define W 760.0
#define H 440.0
#define ML 78.0  /* plot margins: left, right, top, bottom */
#define MR 24.0
#define MT 44.0  /* (the least: the legend's rows add to it) */
#define MB 96.0

static const char *const palette[BENCH_SVG_MAX_SERIES] = { "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
						 "#9467bd", "#8c564b", "#e377c2", "#17becf" };

/* ---- XML text ---- */

void bench_svg_escape(FILE *f, const char *s)
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

void bench_svg_init(struct bench_svg_chart *c, const char *id, const char *title, const char *xl,
		       const char *yl)
{
	memset(c, 0, sizeof *c);
	snprintf(c->id, sizeof c->id, "%s", id);
	snprintf(c->title, sizeof c->title, "%s", title);
	snprintf(c->xlabel, sizeof c->xlabel, "%s", xl);
	snprintf(c->ylabel, sizeof c->ylabel, "%s", yl);
	c->y_zero = true;
}

void bench_svg_free(struct bench_svg_chart *c)
{
	for (int i = 0; i < c->ns; i++) {
		free(c->s[i].x);
		free(c->s[i].y);
		free(c->s[i].labels);
	}
}

struct bench_svg_series *bench_svg_series_add(struct bench_svg_chart *c, const char *name, int n, unsigned style)
{
	struct bench_svg_series *s;
	if (c->ns >= BENCH_SVG_MAX_SERIES)
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
	s->cap = n;
	c->ns++;
	return s;
}

void bench_svg_put(struct bench_svg_series *s, double x, double y)
{
	if (s && s->n < s->cap && isfinite(x) && isfinite(y)) {
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

static void axes_range(struct bench_svg_chart *c, double *x0, double *x1, double *y0, double *y1)
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
static double svg_legend(FILE *f, const struct bench_svg_chart *c)
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
			y - 5, palette[i % BENCH_SVG_MAX_SERIES]);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", x + 16, y);
		bench_svg_escape(f, c->s[i].name);
		fputs("</text>\n", f);
		x += w;
	}
	fputs("</g>\n", f);
	return y + 14;
}

static void svg_open(FILE *f, struct bench_svg_chart *c)
{
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
		   "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H, W, H);
	fputs("<title>", f);
	bench_svg_escape(f, c->title);
	fputs("</title>\n", f);
	fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n", W, H);
	fprintf(f, "<text x=\"%.0f\" y=\"24\" font-size=\"15\" font-weight=\"bold\">", ML);
	bench_svg_escape(f, c->title);
	fputs("</text>\n", f);
	c->mt = svg_legend(f, c);
	if (c->mt < MT)
		c->mt = MT;
}

/* The note (runs, machine) under the plot, wrapped on two lines. */
static void svg_note(FILE *f, const struct bench_svg_chart *c)
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
		bench_svg_escape(f, first);
		fprintf(f, "</text>\n<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" fill=\"#555555\">", ML,
			H - 15);
		while (*cut == ' ')
			cut++;
		bench_svg_escape(f, cut);
	} else {
		bench_svg_escape(f, n);
	}
	fputs("</text>\n", f);
}

static void svg_axes(FILE *f, const struct bench_svg_chart *c, double x0, double x1, double y0, double y1,
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
	bench_svg_escape(f, c->xlabel);
	fputs("</text>\n", f);
	fprintf(f, "<text transform=\"translate(16 %.1f) rotate(-90)\" text-anchor=\"middle\">",
		top + ph / 2);
	bench_svg_escape(f, c->ylabel);
	fputs("</text>\n", f);
}

struct box {
	double x0, y0, x1, y1;
};

static bool overlaps(const struct box *a, const struct box *b)
{
	return a->x0 < b->x1 && b->x0 < a->x1 && a->y0 < b->y1 && b->y0 < a->y1;
}

static void svg_xy(FILE *f, struct bench_svg_chart *c)
{
	double x0, x1, y0, y1, pw, ph, top, last_mark = -1e9;
	struct box placed[64];
	int np = 0;
	bool scatter = true;

	axes_range(c, &x0, &x1, &y0, &y1);
	for (int i = 0; i < c->ns; i++)
		scatter &= !(c->s[i].style & BENCH_SVG_LINE);
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
		bench_svg_escape(f, c->mk[m].label);
		fputs("</text>\n", f);
	}
	for (int i = 0; i < c->ns; i++) {
		const struct bench_svg_series *s = &c->s[i];
		const char *col = palette[i % BENCH_SVG_MAX_SERIES];
		if ((s->style & BENCH_SVG_LINE) && s->n > 1) {
			fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\"%s points=\"", col,
				(s->style & BENCH_SVG_DASH) ? " stroke-dasharray=\"6 4\"" : "");
			for (int k = 0; k < s->n; k++) {
				/* the middle of a flat run adds nothing to the line */
				if (k > 0 && k < s->n - 1 && s->y[k - 1] == s->y[k] && s->y[k + 1] == s->y[k])
					continue;
				fprintf(f, "%s%.1f,%.1f", k ? " " : "", PX(s->x[k]), PY(s->y[k]));
			}
			fputs("\"/>\n", f);
		}
		if (!(s->style & BENCH_SVG_POINTS))
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
			bench_svg_escape(f, s->labels[k]);
			fputs("</text>\n", f);
		}
	}
#undef PX
#undef PY
	svg_note(f, c);
	fputs("</svg>\n", f);
}

static void svg_bars(FILE *f, struct bench_svg_chart *c)
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
				gx + i * bw, top + ph - h, bw * 0.92, h, palette[i % BENCH_SVG_MAX_SERIES]);
		}
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"11\">",
			ML + k * gw + gw / 2, top + ph + 16);
		bench_svg_escape(f, c->cat[k]);
		fputs("</text>\n", f);
	}
	svg_note(f, c);
	fputs("</svg>\n", f);
}

void bench_svg_write(FILE *f, struct bench_svg_chart *c)
{
	if (c->bars)
		svg_bars(f, c);
	else
		svg_xy(f, c);
}

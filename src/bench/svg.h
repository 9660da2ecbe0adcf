/*
 * bench/svg — small SVG charts for the benchmark report: an x/y chart
 * (lines, points, dashed lines, labelled points, vertical markers) and a
 * grouped bar chart, both 760 × 440 px with "nice" axis ticks (1, 2 or 5 ×
 * 10^k), a legend, axis labels and a note under the plot.
 *
 * Output is one well-formed <svg> element (usable inline in XHTML-style
 * HTML or as a file after an XML declaration): every element closed, every
 * text and attribute value escaped, no script, no external reference.
 * Points that are not finite are dropped when added.
 *
 * Ownership: a chart owns its series' arrays, the labels array included
 * (bench_svg_free frees them all, so a labels array must come from malloc);
 * the label strings are borrowed and must outlive bench_svg_write.
 */
#ifndef DM_BENCH_SVG_H
#define DM_BENCH_SVG_H

#include <stdbool.h>
#include <stdio.h>

#define BENCH_SVG_MAX_SERIES 8
#define BENCH_SVG_MAX_MARKS 16

enum {
	BENCH_SVG_LINE = 1,   /* a polyline through the points */
	BENCH_SVG_POINTS = 2, /* a dot per point (with its label, if any) */
	BENCH_SVG_DASH = 4,   /* the line dashed (a fitted line) */
};

struct bench_svg_series {
	char name[96];
	double *x, *y; /* n points, room for cap */
	int n, cap;
	unsigned style;
	const char **labels; /* per point, or NULL (the array owned, its strings borrowed) */
};

/* A vertical dashed line at x with a rotated label (an event on a time axis). */
struct bench_svg_mark {
	double x;
	char label[48];
};

struct bench_svg_chart {
	char id[32], title[160], xlabel[96], ylabel[96], note[512];
	struct bench_svg_series s[BENCH_SVG_MAX_SERIES];
	int ns;
	struct bench_svg_mark mk[BENCH_SVG_MAX_MARKS];
	int nmk;
	bool y_zero;  /* the y axis starts at 0 (the default) */
	double mt;    /* top margin: title and legend rows (set while writing) */
	double ystep; /* y tick step (set while writing) */
	/* a bar chart: ncat categories × ns series, values in bar[][] */
	bool bars;
	int ncat;
	char cat[16][40];
	double bar[16][BENCH_SVG_MAX_SERIES];
};

/* An empty x/y chart (set bars for a bar chart); strings are copied,
 * truncated to their fields. */
void bench_svg_init(struct bench_svg_chart *c, const char *id, const char *title, const char *xlabel,
		    const char *ylabel);
void bench_svg_free(struct bench_svg_chart *c);
/* A new series with room for n points; NULL when the chart has
 * BENCH_SVG_MAX_SERIES already or memory is short (bench_svg_put on NULL
 * does nothing, so callers may go on). */
struct bench_svg_series *bench_svg_series_add(struct bench_svg_chart *c, const char *name, int n,
					      unsigned style);
/* Appends (x, y) when both are finite and the series has room (points
 * past its capacity are dropped). */
void bench_svg_put(struct bench_svg_series *s, double x, double y);
/* Writes the chart as one <svg> element. */
void bench_svg_write(FILE *f, struct bench_svg_chart *c);
/* Writes s as XML text: & < > " ' escaped, control bytes other than tab
 * and newline (not allowed in XML 1.0) as spaces. */
void bench_svg_escape(FILE *f, const char *s);

#endif

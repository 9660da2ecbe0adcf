/* tests/bench — the benchmark module's pieces that can be checked without
 * measuring anything: the SVG chart renderer (bench/svg.h) and the median.
 * Charts are checked as documents (well-formed XML, text escaped) and by
 * where they put things: a point's position must follow its value along
 * each axis, the largest bar must fill the plot, and points that are not
 * finite or past a series' room never reach the output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "bench/svg.h"
#include "txml.h"

/* The chart as a string (malloc'ed). */
static char *render(struct bench_svg_chart *c)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	assert_non_null(f);
	bench_svg_write(f, c);
	assert_int_equal(fclose(f), 0);
	return buf;
}

static int count(const char *s, const char *what)
{
	int n = 0;
	for (const char *p = s; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

/* The centres of the chart's <circle> elements, in document order. */
static int circles(const char *svg, double *cx, double *cy, int cap)
{
	int n = 0;
	for (const char *p = svg; (p = strstr(p, "<circle ")) && n < cap; p++) {
		assert_int_equal(sscanf(p, "<circle cx=\"%lf\" cy=\"%lf\"", &cx[n], &cy[n]), 2);
		n++;
	}
	return n;
}

static void test_svg_xy_positions(void **state)
{
	struct bench_svg_chart c;
	struct bench_svg_series *s;
	double cx[16], cy[16];
	char why[128];
	(void)state;
	bench_svg_init(&c, "t", "title", "x (s)", "y (MiB)");
	s = bench_svg_series_add(&c, "points", 5, BENCH_SVG_POINTS);
	assert_non_null(s);
	bench_svg_put(s, 1, 10);
	bench_svg_put(s, 2, 40);
	bench_svg_put(s, NAN, 5);      /* dropped */
	bench_svg_put(s, 3, INFINITY); /* dropped */
	bench_svg_put(s, 4, 20);
	assert_int_equal(s->n, 3);
	char *svg = render(&c);
	assert_int_equal(txml_check(svg, why, sizeof why), 0);
	assert_int_equal(circles(svg, cx, cy, 16), 3);
	/* x grows to the right in proportion, y upwards */
	assert_true(cx[0] < cx[1] && cx[1] < cx[2]);
	assert_true(fabs((cx[1] - cx[0]) - (cx[2] - cx[1]) / 2) < 0.2); /* 1 → 2 is half of 2 → 4 */
	assert_true(cy[1] < cy[2] && cy[2] < cy[0]);
	/* the y axis starts at 0 (y_zero): the distances to 0 are in proportion
	 * 10 : 20 : 40, measured from the plot's bottom edge */
	{
		double bottom = 2 * cy[0] - cy[2]; /* y = 0 lies as far below y = 10 as y = 20 lies above it */
		assert_true(fabs((bottom - cy[1]) - 4 * (bottom - cy[0])) < 0.3);
	}
	assert_non_null(strstr(svg, "x (s)"));
	assert_non_null(strstr(svg, "y (MiB)"));
	free(svg);
	bench_svg_free(&c);
}

static void test_svg_escapes_text(void **state)
{
	struct bench_svg_chart c;
	struct bench_svg_series *s;
	const char *labels[2] = { "a<b", "\"q\" & 'r'" };
	char why[128];
	(void)state;
	bench_svg_init(&c, "t", "<script>alert(1)</script> & co", "x", "y");
	snprintf(c.note, sizeof c.note, "runs: 3; cpu <fast> \x01");
	s = bench_svg_series_add(&c, "series </text>", 2, BENCH_SVG_LINE | BENCH_SVG_POINTS);
	s->labels = calloc(2, sizeof *s->labels); /* freed with the chart */
	assert_non_null(s->labels);
	memcpy(s->labels, labels, sizeof labels);
	bench_svg_put(s, 0, 1);
	bench_svg_put(s, 1, 2);
	char *svg = render(&c);
	assert_int_equal(txml_check(svg, why, sizeof why), 0);
	assert_null(strstr(svg, "<script"));
	assert_null(strstr(svg, "a<b"));
	assert_null(strchr(svg, '\x01'));
	assert_non_null(strstr(svg, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"));
	assert_non_null(strstr(svg, "a&lt;b"));
	assert_non_null(strstr(svg, "&quot;q&quot; &amp; &#39;r&#39;"));
	assert_non_null(strstr(svg, "series &lt;/text&gt;"));
	assert_int_equal(count(svg, "<polyline"), 1);
	free(svg);
	bench_svg_free(&c);
}

static void test_svg_capacity_and_series_limit(void **state)
{
	struct bench_svg_chart c;
	struct bench_svg_series *s;
	(void)state;
	bench_svg_init(&c, "t", "t", "x", "y");
	s = bench_svg_series_add(&c, "two", 2, BENCH_SVG_POINTS);
	for (int i = 0; i < 10; i++)
		bench_svg_put(s, i, i);
	assert_int_equal(s->n, 2); /* never past its room */
	for (int i = 1; i < BENCH_SVG_MAX_SERIES; i++)
		assert_non_null(bench_svg_series_add(&c, "more", 1, BENCH_SVG_LINE));
	assert_null(bench_svg_series_add(&c, "one too many", 1, BENCH_SVG_LINE));
	bench_svg_put(NULL, 1, 1); /* harmless */
	char *svg = render(&c);
	assert_int_equal(count(svg, "<circle "), 2);
	free(svg);
	bench_svg_free(&c);
}

/* Bars: heights in proportion to the values; a value on a tick step fills
 * the plot; a missing (NaN) value is an empty bar. */
static void test_svg_bars(void **state)
{
	struct bench_svg_chart c;
	double h[4] = { 0 };
	int n = 0;
	char why[128], *svg;
	(void)state;
	bench_svg_init(&c, "b", "bars", "", "seconds");
	c.bars = true;
	c.ncat = 2;
	snprintf(c.cat[0], sizeof c.cat[0], "mmap");
	snprintf(c.cat[1], sizeof c.cat[1], "read & <co>");
	assert_non_null(bench_svg_series_add(&c, "load", 1, 0));
	assert_non_null(bench_svg_series_add(&c, "first token", 1, 0));
	c.bar[0][0] = 1;
	c.bar[0][1] = 4; /* the largest, a whole tick step: the full height */
	c.bar[1][0] = 2;
	c.bar[1][1] = NAN;
	svg = render(&c);
	assert_int_equal(txml_check(svg, why, sizeof why), 0);
	assert_non_null(strstr(svg, "read &amp; &lt;co&gt;"));
	for (const char *p = svg; (p = strstr(p, "<rect x=")); p++) {
		/* the bars: coloured rects wider than a legend swatch (12 px) */
		double x, y, w, hh;
		const char *fill = strstr(p, "fill=\"");
		if (sscanf(p, "<rect x=\"%lf\" y=\"%lf\" width=\"%lf\" height=\"%lf\"", &x, &y, &w, &hh) != 4 || !fill ||
		    fill > strchr(p, '>') || !strncmp(fill, "fill=\"none\"", 11) || !strncmp(fill, "fill=\"#ffffff\"", 14) ||
		    w <= 13)
			continue;
		assert_true(n < 4);
		h[n++] = hh;
	}
	assert_int_equal(n, 4);
	/* document order: category by category, series within */
	assert_true(fabs(h[0] * 4 - h[1]) < 0.2);
	assert_true(fabs(h[2] - 2 * h[0]) < 0.2);
	assert_true(h[3] == 0);
	{
		/* the plot's frame: the rect with fill="none" */
		const char *fr = strstr(svg, "fill=\"none\" stroke=\"#888888\"");
		double x, y, w, hh;
		assert_non_null(fr);
		while (fr > svg && strncmp(fr, "<rect", 5))
			fr--;
		assert_int_equal(sscanf(fr, "<rect x=\"%lf\" y=\"%lf\" width=\"%lf\" height=\"%lf\"", &x, &y, &w, &hh), 4);
		assert_true(fabs(h[1] - hh) < 0.2);
	}
	free(svg);
	bench_svg_free(&c);
}

static void test_median(void **state)
{
	double odd[5] = { 5, 1, 4, 2, 3 }, even[4] = { 10, 2, 8, 4 };
	(void)state;
	assert_true(bench_median(odd, 5) == 3);
	assert_true(bench_median(even, 4) == 6);
	assert_true(bench_median(NULL, 0) == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_svg_xy_positions),
		cmocka_unit_test(test_svg_escapes_text),
		cmocka_unit_test(test_svg_capacity_and_series_limit),
		cmocka_unit_test(test_svg_bars),
		cmocka_unit_test(test_median),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

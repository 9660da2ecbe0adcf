/*
 * cli/bench_rag — `dormant bench rag EMBED_MODEL RERANK_MODEL [--runs R]
 * [--threads T] [--json]`: what batching buys an encoder, in process (the C
 * API, no HTTP):
 *   - embeddings per second: 64 short texts in one dormant_embed_batch call,
 *     and the same 64 texts one dormant_embed call each;
 *   - rerank pairs per second: one query and 64 documents in one
 *     dormant_rerank call, and the same 64 pairs one call each.
 * Both models are loaded (and each path run once) before timing; every
 * figure is the median of R runs (default 5).  The texts are generated
 * (6 to 11 common words each), so the figures are about the model's shape,
 * not its training.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "dormant.h"

#define N_TEXTS 64

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* One timed pass of each way; the four rates (items per second) into r. */
static int one_run(dormant *d, const char *const *texts, float *vec, size_t dim, float *scores, double r[4],
		   char *err, size_t errlen)
{
	size_t got;
	double t0 = now_s();

	if (dormant_embed_batch(d, "embed", texts, N_TEXTS, NULL, vec, N_TEXTS * dim, &got, NULL, err, errlen))
		return -1;
	r[0] = N_TEXTS / (now_s() - t0);
	t0 = now_s();
	for (int i = 0; i < N_TEXTS; i++)
		if (dormant_embed(d, "embed", texts[i], vec, dim, &got, NULL, err, errlen))
			return -1;
	r[1] = N_TEXTS / (now_s() - t0);
	t0 = now_s();
	if (dormant_rerank(d, "rerank", "which text is about rivers and bridges", texts, N_TEXTS, NULL, scores,
			   NULL, err, errlen))
		return -1;
	r[2] = N_TEXTS / (now_s() - t0);
	t0 = now_s();
	for (int i = 0; i < N_TEXTS; i++)
		if (dormant_rerank(d, "rerank", "which text is about rivers and bridges", texts + i, 1, NULL,
				   scores + i, NULL, err, errlen))
			return -1;
	r[3] = N_TEXTS / (now_s() - t0);
	return 0;
}

int cli_bench_rag(int argc, char **argv)
{
	static const char *const words[] = { "rivers", "bridges", "old", "trains", "cross", "the", "valley",
					     "at", "night", "quiet", "towns", "near", "water", "keep", "their",
					     "mills" };
	const char *embed = NULL, *rerank = NULL;
	char texts_buf[N_TEXTS][96], cfg[8192], ini[] = "/tmp/dormant-bench-rag-XXXXXX", err[256];
	const char *texts[N_TEXTS];
	long runs = 5, threads = 2;
	int json = 0, fd, rc = 1;
	dormant *d = NULL;
	float *vec = NULL, scores[N_TEXTS];
	double (*r)[4] = NULL, med[4];
	size_t dim = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if ((!strcmp(a, "--runs") || !strcmp(a, "--threads")) && v) {
			char *end;
			long n = strtol(v, &end, 10);
			if (*end || n < 1 || n > 1000)
				return cli_fail("bench rag: %s '%s' is not a number from 1 to 1000", a, v), 2;
			*(!strcmp(a, "--runs") ? &runs : &threads) = n;
			i++;
		} else if (!strcmp(a, "--json")) {
			json = 1;
		} else if (a[0] != '-' && !embed) {
			embed = a;
		} else if (a[0] != '-' && !rerank) {
			rerank = a;
		} else {
			return cli_fail("bench rag: unknown argument '%s'", a), 2;
		}
	}
	if (!embed || !rerank)
		return cli_fail("usage: dormant bench rag EMBED_MODEL RERANK_MODEL [--runs R (5)] [--threads T (2)] [--json]"),
		       2;
	for (int i = 0; i < N_TEXTS; i++) {
		int n = 6 + i % 6, o = 0;
		for (int w = 0; w < n; w++)
			o += snprintf(texts_buf[i] + o, sizeof texts_buf[i] - (size_t)o, "%s%s", w ? " " : "",
				      words[(i * 7 + w * 3) % 16]);
		texts[i] = texts_buf[i];
	}
	/* a configuration, so that both models get the same thread count */
	if ((fd = mkstemp(ini)) < 0)
		return cli_fail("bench rag: cannot create a temporary configuration");
	snprintf(cfg, sizeof cfg,
		 "[model embed]\npath = %s\nthreads = %ld\n\n"
		 "[model rerank]\npath = %s\nthreads = %ld\n",
		 embed, threads, rerank, threads);
	if (write(fd, cfg, strlen(cfg)) != (ssize_t)strlen(cfg)) {
		close(fd);
		unlink(ini);
		return cli_fail("bench rag: cannot write %s", ini);
	}
	close(fd);
	if (dormant_open(&d, ini, NULL, err, sizeof err)) {
		unlink(ini);
		return cli_fail("bench rag: %s", err);
	}
	unlink(ini);
	/* load both and learn the width */
	{
		float probe[8192];
		if (dormant_embed(d, "embed", texts[0], probe, 8192, &dim, NULL, err, sizeof err)) {
			cli_fail("bench rag: %s", err);
			goto out;
		}
	}
	vec = malloc((size_t)N_TEXTS * dim * sizeof *vec);
	r = calloc((size_t)runs + 1, sizeof *r);
	if (!vec || !r) {
		cli_fail("bench rag: out of memory");
		goto out;
	}
	/* run 0 warms every path; runs 1..R are timed */
	for (long k = 0; k <= runs; k++)
		if (one_run(d, texts, vec, dim, scores, r[k], err, sizeof err)) {
			cli_fail("bench rag: %s", err);
			goto out;
		}
	for (int j = 0; j < 4; j++) {
		double v[1000];
		for (long k = 0; k < runs; k++)
			v[k] = r[k + 1][j];
		med[j] = median(v, (int)runs);
	}
	if (json) {
		printf("{\"embed_model\": \"%s\", \"rerank_model\": \"%s\", \"threads\": %ld, \"runs\": %ld, \"texts\": %d, "
		       "\"dim\": %zu, \"embed_batch_per_s\": %.1f, \"embed_single_per_s\": %.1f, "
		       "\"rerank_batch_pairs_per_s\": %.1f, \"rerank_single_pairs_per_s\": %.1f}\n",
		       embed, rerank, threads, runs, N_TEXTS, dim, med[0], med[1], med[2], med[3]);
	} else {
		printf("bench rag: %d texts, %ld threads, median of %ld runs (dim %zu)\n", N_TEXTS, threads, runs, dim);
		printf("  %-28s %10s %10s %8s\n", "", "one call", "one each", "speedup");
		printf("  %-28s %10.1f %10.1f %7.2fx\n", "embeddings / s", med[0], med[1], med[0] / med[1]);
		printf("  %-28s %10.1f %10.1f %7.2fx\n", "rerank pairs / s", med[2], med[3], med[2] / med[3]);
	}
	rc = 0;
out:
	free(vec);
	free(r);
	dormant_close(d);
	return rc;
}

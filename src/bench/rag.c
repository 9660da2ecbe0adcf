/*
 * bench/rag — `dormant bench rag`: what batching buys an encoder, in
 * process (the C API, no HTTP):
 *   - embeddings per second: 64 short texts in one dormant_embed_batch call,
 *     and the same 64 texts one dormant_embed call each;
 *   - rerank pairs per second: one query and 64 documents in one
 *     dormant_rerank call, and the same 64 pairs one call each.
 * Both models are loaded (and each path run once) before timing; every
 * figure is the median of R runs.  The texts are generated (6 to 11 common
 * words each), so the figures are about the model's shape, not its
 * training.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "dormant.h"

#define N_TEXTS BENCH_RAG_TEXTS
#define QUERY "which text is about rivers and bridges"

/* One timed pass of each way; the four rates (items per second) into r. */
static int one_run(dormant *d, const char *const *texts, float *vec, size_t dim, float *scores, double r[4],
		   char *msg, size_t msglen)
{
	size_t got;
	double t0 = bench_now();
	int rc;

	if ((rc = dormant_embed_batch(d, "embed", texts, N_TEXTS, NULL, vec, N_TEXTS * dim, &got, NULL, msg, msglen)))
		return rc;
	r[0] = N_TEXTS / (bench_now() - t0);
	t0 = bench_now();
	for (int i = 0; i < N_TEXTS; i++)
		if ((rc = dormant_embed(d, "embed", texts[i], vec, dim, &got, NULL, msg, msglen)))
			return rc;
	r[1] = N_TEXTS / (bench_now() - t0);
	t0 = bench_now();
	if ((rc = dormant_rerank(d, "rerank", QUERY, texts, N_TEXTS, NULL, scores, NULL, msg, msglen)))
		return rc;
	r[2] = N_TEXTS / (bench_now() - t0);
	t0 = bench_now();
	for (int i = 0; i < N_TEXTS; i++)
		if ((rc = dormant_rerank(d, "rerank", QUERY, texts + i, 1, NULL, scores + i, NULL, msg, msglen)))
			return rc;
	r[3] = N_TEXTS / (bench_now() - t0);
	return 0;
}

int bench_rag(const char *embed, const char *rerank, int runs, int threads, struct bench_rag_result *res,
	      struct dm_err *err)
{
	static const char *const words[] = { "rivers", "bridges", "old", "trains", "cross", "the", "valley",
					     "at", "night", "quiet", "towns", "near", "water", "keep", "their",
					     "mills" };
	char texts_buf[N_TEXTS][96], cfg[8192], ini[] = "/tmp/dormant-bench-rag-XXXXXX", msg[256];
	const char *texts[N_TEXTS];
	dormant *d = NULL;
	float *vec = NULL, scores[N_TEXTS];
	double (*r)[4] = NULL, *v = NULL;
	int fd, rc;

	memset(res, 0, sizeof *res);
	if (runs < 1 || runs > 1000 || threads < 1)
		return dm_err_set(err, DM_EINVAL, "runs 1..1000 and threads >= 1");
	for (int i = 0; i < N_TEXTS; i++) {
		int n = 6 + i % 6, o = 0;
		for (int w = 0; w < n; w++)
			o += snprintf(texts_buf[i] + o, sizeof texts_buf[i] - (size_t)o, "%s%s", w ? " " : "",
				      words[(i * 7 + w * 3) % 16]);
		texts[i] = texts_buf[i];
	}
	/* a configuration, so that both models get the same thread count */
	if ((fd = mkstemp(ini)) < 0)
		return dm_err_set(err, DM_EIO, "cannot create a temporary configuration");
	snprintf(cfg, sizeof cfg,
		 "[model embed]\npath = %s\nthreads = %d\n\n"
		 "[model rerank]\npath = %s\nthreads = %d\n",
		 embed, threads, rerank, threads);
	if (write(fd, cfg, strlen(cfg)) != (ssize_t)strlen(cfg)) {
		close(fd);
		unlink(ini);
		return dm_err_set(err, DM_EIO, "cannot write %s", ini);
	}
	close(fd);
	rc = dormant_open(&d, ini, NULL, msg, sizeof msg);
	unlink(ini);
	if (rc)
		return dm_err_set(err, rc, "%s", msg);
	/* load both and learn the width */
	{
		float probe[8192];
		if ((rc = dormant_embed(d, "embed", texts[0], probe, 8192, &res->dim, NULL, msg, sizeof msg))) {
			dm_err_set(err, rc, "%s", msg);
			goto out;
		}
	}
	vec = malloc((size_t)N_TEXTS * res->dim * sizeof *vec);
	r = calloc((size_t)runs + 1, sizeof *r);
	v = malloc((size_t)runs * sizeof *v);
	if (!vec || !r || !v) {
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
		goto out;
	}
	/* run 0 warms every path; runs 1..R are timed */
	for (int k = 0; k <= runs; k++)
		if ((rc = one_run(d, texts, vec, res->dim, scores, r[k], msg, sizeof msg))) {
			dm_err_set(err, rc, "%s", msg);
			goto out;
		}
	{
		double *med[4] = { &res->embed_batch_per_s, &res->embed_single_per_s, &res->rerank_batch_per_s,
				   &res->rerank_single_per_s };
		for (int j = 0; j < 4; j++) {
			for (int k = 0; k < runs; k++)
				v[k] = r[k + 1][j];
			*med[j] = bench_median(v, runs);
		}
	}
	rc = 0;
out:
	free(v);
	free(vec);
	free(r);
	dormant_close(d);
	return rc;
}

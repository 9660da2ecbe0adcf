/* model/ppl — see ppl.h. */
#include "model/ppl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* −log softmax(row)[target], in double. */
static double nll_of(const float *row, int32_t V, int32_t target)
{
	double mx = row[0], sum = 0;
	for (int32_t i = 1; i < V; i++)
		if (row[i] > mx)
			mx = row[i];
	for (int32_t i = 0; i < V; i++)
		sum += exp((double)row[i] - mx);
	return -((double)row[target] - mx - log(sum));
}

int model_perplexity(struct model_ctx *c, const int32_t *ids, size_t n, int32_t bos,
		     ppl_chunk_fn cb, void *ud, struct ppl_result *out, struct dm_err *err)
{
	const int32_t n_ctx = c->n_ctx, V = c->m->hp.n_vocab;
	float *logits;
	int32_t *win;
	double sum = 0, sum2 = 0;
	long count = 0;
	int rc = 0;

	memset(out, 0, sizeof *out);
	if (n_ctx < 4 || n < 2 * (size_t)n_ctx)
		return dm_err_set(err, DM_EINVAL, "perplexity needs at least 2 x n_ctx = %d tokens, have %zu",
				  2 * n_ctx, n);
	logits = malloc((size_t)n_ctx * (size_t)V * sizeof *logits);
	win = malloc((size_t)n_ctx * sizeof *win);
	if (!logits || !win) {
		free(logits);
		free(win);
		return dm_err_set(err, DM_ENOMEM, "out of memory for %d x %d logits", n_ctx, V);
	}
	out->n_chunks = n / (size_t)n_ctx;
	for (size_t ch = 0; ch < out->n_chunks; ch++) {
		memcpy(win, ids + ch * (size_t)n_ctx, (size_t)n_ctx * sizeof *win);
		if (bos >= 0)
			win[0] = bos;
		model_ctx_reset(c);
		if ((rc = model_decode(c, win, n_ctx, logits, true, err)))
			break;
		for (int32_t i = n_ctx / 2; i < n_ctx - 1; i++) {
			double nll = nll_of(logits + (size_t)i * (size_t)V, V, win[i + 1]);
			sum += nll;
			sum2 += nll * nll;
			count++;
		}
		if (cb)
			cb(ud, ch, exp(sum / (double)count));
	}
	model_ctx_reset(c);
	free(logits);
	free(win);
	if (rc)
		return rc;
	out->n_scored = count;
	out->mean_nll = sum / (double)count;
	out->ppl = exp(out->mean_nll);
	{
		double var = sum2 / (double)count - out->mean_nll * out->mean_nll;
		out->ppl_err = count > 1 && var > 0 ? sqrt(var / (double)(count - 1)) * out->ppl : 0.0;
	}
	return 0;
}

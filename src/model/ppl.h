/*
 * model/ppl — perplexity by the standard procedure: the token stream is cut
 * into non-overlapping windows of n_ctx tokens; each window is decoded from
 * an empty cache with its first token replaced by BOS (when the model adds
 * BOS), and only the second half of each window is scored (the logits at
 * position i score token i+1, for i = n_ctx/2 .. n_ctx-2).
 * PPL = exp(mean NLL); the ± is the standard error of the mean NLL, scaled
 * by PPL.
 */
#ifndef DM_MODEL_PPL_H
#define DM_MODEL_PPL_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

struct ppl_result {
	double ppl, ppl_err;
	double mean_nll;
	long n_scored;
	size_t n_chunks;
};

/* Called after each window with the running estimate. */
typedef void (*ppl_chunk_fn)(void *ud, size_t chunk, double running_ppl);

/* ids are not modified.  bos < 0: keep each window's first token.
 * DM_EINVAL if n_ctx < 4 or fewer than 2 × n_ctx tokens. */
int model_perplexity(struct model_ctx *c, const int32_t *ids, size_t n, int32_t bos,
		     ppl_chunk_fn cb, void *ud, struct ppl_result *out, struct dm_err *err);

#endif

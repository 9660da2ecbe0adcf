/*
 * model/sample — turning logits into the next token.
 *
 * The chain, in order (as the usual engines apply it): repetition /
 * frequency / presence penalties over the last repeat_last_n tokens, then
 * greedy (temp <= 0: argmax) or top-k → top-p → min-p → temperature →
 * a draw from the remaining distribution with the sampler's own seeded
 * generator, so a seed makes a run reproducible.
 *
 * The filter steps are exposed on candidate arrays for tests.
 *
 * Prefixes sample_ and sampler_, not model_: a named exception to the
 * folder-is-a-prefix rule (README, "How it works").
 */
#ifndef DM_MODEL_SAMPLE_H
#define DM_MODEL_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/rng.h"

struct sample_params {
	float temp;           /* <= 0: greedy */
	int32_t top_k;        /* <= 0: off */
	float top_p;          /* >= 1: off */
	float min_p;          /* <= 0: off */
	float repeat_penalty; /* 1: off; logits > 0 divided, < 0 multiplied */
	float freq_penalty;   /* subtracted × count */
	float presence_penalty; /* subtracted once if present */
	int32_t repeat_last_n;  /* window for penalties; 0: off, -1: everything */
	uint64_t seed;
};

/* Defaults: temp 0.8, top_k 40, top_p 0.95, min_p 0.05, penalties off,
 * repeat_last_n 64, seed 0. */
void sample_params_default(struct sample_params *p);

struct sample_cand {
	int32_t id;
	float logit;
	float p;
};

struct sampler;

int sampler_init(struct sampler **out, int32_t n_vocab, const struct sample_params *p,
		 struct dm_err *err);
void sampler_free(struct sampler *s);
/* Picks the next token from logits[n_vocab], given the tokens so far. */
int32_t sampler_sample(struct sampler *s, const float *logits, const int32_t *hist, size_t n_hist);
/* Reseeds (same seed → same draws). */
void sampler_reseed(struct sampler *s, uint64_t seed);

/* Filter steps on a candidate array; each returns the new count (>= 1 when
 * n >= 1).  sample_sort_softmax sorts by logit, descending (ties: lower id
 * first) and sets p to the softmax of the logits. */
void sample_sort_softmax(struct sample_cand *c, size_t n);
size_t sample_top_k(struct sample_cand *c, size_t n, int32_t k);
size_t sample_top_p(struct sample_cand *c, size_t n, float p);
size_t sample_min_p(struct sample_cand *c, size_t n, float min_p);

#endif

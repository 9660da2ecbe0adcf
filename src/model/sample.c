/* model/sample — see sample.h. */
#include "model/sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct sampler {
	struct sample_params p;
	int32_t n_vocab;
	struct dm_rng rng;
	struct sample_cand *cand;
	float *work;       /* penalised logits */
	int32_t *counts;   /* occurrences in the penalty window */
};

void sample_params_default(struct sample_params *p)
{
	p->temp = 0.8f;
	p->top_k = 40;
	p->top_p = 0.95f;
	p->min_p = 0.05f;
	p->repeat_penalty = 1.0f;
	p->freq_penalty = 0.0f;
	p->presence_penalty = 0.0f;
	p->repeat_last_n = 64;
	p->seed = 0;
}

int sampler_init(struct sampler **out, int32_t n_vocab, const struct sample_params *p,
		 struct dm_err *err)
{
	struct sampler *s = calloc(1, sizeof *s);

	*out = NULL;
	if (!s || n_vocab < 1)
		goto fail;
	s->p = *p;
	s->n_vocab = n_vocab;
	s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
	s->work = malloc((size_t)n_vocab * sizeof *s->work);
	s->counts = calloc((size_t)n_vocab, sizeof *s->counts);
	if (!s->cand || !s->work || !s->counts)
		goto fail;
	dm_rng_seed(&s->rng, p->seed);
	*out = s;
	return 0;
fail:
	sampler_free(s);
	return dm_err_set(err, n_vocab < 1 ? DM_EINVAL : DM_ENOMEM, "cannot create a sampler");
}

void sampler_free(struct sampler *s)
{
	if (!s)
		return;
	free(s->cand);
	free(s->work);
	free(s->counts);
	free(s);
}

void sampler_reseed(struct sampler *s, uint64_t seed)
{
	dm_rng_seed(&s->rng, seed);
}

static int cmp_cand(const void *a, const void *b)
{
	const struct sample_cand *x = a, *y = b;
	if (x->logit != y->logit)
		return x->logit < y->logit ? 1 : -1;
	return (x->id > y->id) - (x->id < y->id);
}

void sample_sort_softmax(struct sample_cand *c, size_t n)
{
	double sum = 0;
	if (n == 0)
		return;
	qsort(c, n, sizeof *c, cmp_cand);
	for (size_t i = 0; i < n; i++) {
		c[i].p = expf(c[i].logit - c[0].logit);
		sum += c[i].p;
	}
	for (size_t i = 0; i < n; i++)
		c[i].p = (float)(c[i].p / sum);
}

size_t sample_top_k(struct sample_cand *c, size_t n, int32_t k)
{
	if (k <= 0 || (size_t)k >= n)
		return n;
	sample_sort_softmax(c, n);
	return (size_t)k;
}

size_t sample_top_p(struct sample_cand *c, size_t n, float p)
{
	double cum = 0;
	if (p >= 1.0f || n == 0)
		return n;
	sample_sort_softmax(c, n);
	for (size_t i = 0; i < n; i++) {
		cum += c[i].p;
		if (cum >= p)
			return i + 1;
	}
	return n;
}

size_t sample_min_p(struct sample_cand *c, size_t n, float min_p)
{
	size_t k = 0;
	if (min_p <= 0.0f || n == 0)
		return n;
	sample_sort_softmax(c, n);
	while (k < n && c[k].p >= min_p * c[0].p)
		k++;
	return k ? k : 1;
}

static void apply_penalties(struct sampler *s, const int32_t *hist, size_t n_hist)
{
	const struct sample_params *p = &s->p;
	size_t from;

	if (p->repeat_last_n == 0 || n_hist == 0 ||
	    (p->repeat_penalty == 1.0f && p->freq_penalty == 0.0f && p->presence_penalty == 0.0f))
		return;
	from = p->repeat_last_n < 0 || (size_t)p->repeat_last_n >= n_hist ? 0 : n_hist - (size_t)p->repeat_last_n;
	for (size_t i = from; i < n_hist; i++)
		if (hist[i] >= 0 && hist[i] < s->n_vocab)
			s->counts[hist[i]]++;
	for (size_t i = from; i < n_hist; i++) {
		int32_t id = hist[i];
		if (id < 0 || id >= s->n_vocab || s->counts[id] == 0)
			continue;
		float *l = &s->work[id];
		*l = *l > 0 ? *l / p->repeat_penalty : *l * p->repeat_penalty;
		*l -= (float)s->counts[id] * p->freq_penalty + p->presence_penalty;
		s->counts[id] = 0; /* each id once */
	}
}

int32_t sampler_sample(struct sampler *s, const float *logits, const int32_t *hist, size_t n_hist)
{
	const struct sample_params *p = &s->p;
	struct sample_cand *c = s->cand;
	size_t n = 0;
	float maxl = -INFINITY;
	double r, cum = 0;

	memcpy(s->work, logits, (size_t)s->n_vocab * sizeof *s->work);
	apply_penalties(s, hist, n_hist);

	if (p->temp <= 0.0f) {
		int32_t best = 0;
		for (int32_t i = 1; i < s->n_vocab; i++)
			if (s->work[i] > s->work[best])
				best = i;
		return best;
	}
	/* Candidates more than 40 nats below the best have probability < 4e-18
	 * of the best's at any temperature <= 1 and cannot change the top-k,
	 * top-p or min-p sets in practice; dropping them keeps the sort short
	 * on 128k-token vocabularies. */
	for (int32_t i = 0; i < s->n_vocab; i++)
		if (s->work[i] > maxl)
			maxl = s->work[i];
	for (int32_t i = 0; i < s->n_vocab; i++)
		if (s->work[i] >= maxl - 40.0f * (p->temp > 1.0f ? p->temp : 1.0f))
			c[n++] = (struct sample_cand){ i, s->work[i], 0 };
	n = sample_top_k(c, n, p->top_k);
	n = sample_top_p(c, n, p->top_p);
	n = sample_min_p(c, n, p->min_p);
	for (size_t i = 0; i < n; i++)
		c[i].logit /= p->temp;
	sample_sort_softmax(c, n);
	r = dm_rng_uniform(&s->rng);
	for (size_t i = 0; i < n; i++) {
		cum += c[i].p;
		if (r < cum)
			return c[i].id;
	}
	return c[n - 1].id;
}

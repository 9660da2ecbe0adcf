/*
 * model/kvsnap — prompt-prefix reuse and saved prefixes: what lets a
 * conversation's next turn prefill only its new tokens, and two alternating
 * conversations keep each other's cache.
 *
 * A saved prefix ("snapshot") is one anonymous mapping:
 *   int32 tokens[n]
 *   regions × n × row_bytes   K of every layer, then V of every layer, each
 *                             region's first n rows (as the live cache holds
 *                             them at region r: k + r·n_ctx_max·row_bytes)
 * with the LongRoPE factor set its positions were computed with.  The list
 * is kept most recently used first; its mappings (rounded to pages) sum to
 * snap_bytes <= snap_max.  Copying rows in and out is exact, so a restored
 * prefix gives the logits a fresh prefill of the same tokens gives.
 */
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "model/model.h"

struct model_snap {
	struct model_snap *next;
	int32_t n;                 /* positions */
	const float *rope_factors; /* the factor set they were computed with */
	int32_t *tokens;           /* n ids, at the start of the mapping */
	uint8_t *rows;             /* regions × n × row_bytes, after the ids */
	size_t bytes;              /* the mapping */
};

static int32_t regions_of(const struct model_ctx *c)
{
	return 2 * (c->m->hp.encoder ? 1 : c->m->hp.n_layer);
}

static size_t row_bytes_of(const struct model_ctx *c)
{
	return (size_t)c->m->hp.n_head_kv * (size_t)c->m->hp.head_dim * sizeof(uint16_t);
}

size_t model_ctx_snap_bytes_for(const struct model_ctx *c, int32_t n)
{
	const size_t pg = dm_mem_page_size();
	size_t b = (size_t)n * (sizeof(int32_t) + (size_t)regions_of(c) * row_bytes_of(c));
	return n > 0 ? (b + pg - 1) / pg * pg : 0;
}

/* The most positions a copy of at most `bytes` holds. */
static int32_t fit_positions(const struct model_ctx *c, size_t bytes)
{
	const size_t pg = dm_mem_page_size();
	size_t per = sizeof(int32_t) + (size_t)regions_of(c) * row_bytes_of(c);
	size_t n = bytes / pg * pg / per;
	return n > (size_t)c->n_ctx_max ? c->n_ctx_max : (int32_t)n;
}

/* Positions 0.. on which a[0..na) and p[0..n) agree, at most n − 1. */
static int32_t common(const int32_t *a, int32_t na, const int32_t *p, int32_t n)
{
	int32_t k = 0;
	while (k < na && k < n - 1 && a[k] == p[k])
		k++;
	return k;
}

static void snap_free(struct model_ctx *c, struct model_snap **link)
{
	struct model_snap *s = *link;
	*link = s->next;
	c->snap_bytes -= s->bytes;
	c->n_snaps--;
	dm_mem_unmap(s->tokens, s->bytes);
	free(s);
}

/* Moves s to the front (most recently used). */
static void snap_touch(struct model_ctx *c, struct model_snap *s)
{
	struct model_snap **pp = &c->snaps;
	while (*pp != s)
		pp = &(*pp)->next;
	*pp = s->next;
	s->next = c->snaps;
	c->snaps = s;
}

/* Drops least recently used copies other than keep until `need` more
 * bytes fit the bound; false if they cannot. */
static bool make_room(struct model_ctx *c, const struct model_snap *keep, size_t need)
{
	while (c->snap_bytes + need > c->snap_max) {
		struct model_snap **pp = &c->snaps, **victim = NULL;
		for (; *pp; pp = &(*pp)->next)
			if (*pp != keep)
				victim = pp; /* the last one that may go */
		if (!victim)
			return false;
		snap_free(c, victim);
	}
	return true;
}

/* Saves the live conversation, keeping `keep` (about to be restored). */
static void save(struct model_ctx *c, const struct model_snap *keep)
{
	const int32_t regions = regions_of(c);
	const size_t rb = row_bytes_of(c), region = rb * (size_t)c->n_ctx_max;
	int32_t n = c->n_past, fit;
	struct model_snap *s, **pp;
	size_t bytes;

	if (!c->snap_max || n < 1 || (keep && keep->bytes >= c->snap_max))
		return;
	/* a conversation longer than the bound keeps its first positions */
	fit = fit_positions(c, c->snap_max - (keep ? keep->bytes : 0));
	if (n > fit)
		n = fit;
	if (n < 1)
		return;
	/* one already holding these positions (and maybe more) is enough;
	 * ones that hold a part of them are replaced */
	for (pp = &c->snaps; *pp;) {
		s = *pp;
		if (s->rope_factors == c->rope_factors && s->n >= n &&
		    !memcmp(s->tokens, c->tokens, (size_t)n * sizeof *c->tokens)) {
			snap_touch(c, s);
			return;
		}
		if (s != keep && s->rope_factors == c->rope_factors && s->n < n &&
		    !memcmp(s->tokens, c->tokens, (size_t)s->n * sizeof *c->tokens))
			snap_free(c, pp);
		else
			pp = &s->next;
	}
	bytes = model_ctx_snap_bytes_for(c, n);
	if (!make_room(c, keep, bytes) || !(s = calloc(1, sizeof *s)))
		return;
	if (!(s->tokens = dm_mem_map(bytes))) {
		free(s); /* no memory for a copy: the conversation is just not kept */
		return;
	}
	s->n = n;
	s->bytes = bytes;
	s->rope_factors = c->rope_factors;
	s->rows = (uint8_t *)(s->tokens + n);
	memcpy(s->tokens, c->tokens, (size_t)n * sizeof *c->tokens);
	for (int32_t r = 0; r < regions; r++)
		memcpy(s->rows + (size_t)r * (size_t)n * rb, (const uint8_t *)c->k + (size_t)r * region, (size_t)n * rb);
	s->next = c->snaps;
	c->snaps = s;
	c->snap_bytes += bytes;
	c->n_snaps++;
}

void model_ctx_snap_save(struct model_ctx *c)
{
	save(c, NULL);
}

/* Copies the first k positions of s into the live cache. */
static void restore(struct model_ctx *c, struct model_snap *s, int32_t k)
{
	const int32_t regions = regions_of(c);
	const size_t rb = row_bytes_of(c), region = rb * (size_t)c->n_ctx_max;

	for (int32_t r = 0; r < regions; r++)
		memcpy((uint8_t *)c->k + (size_t)r * region, s->rows + (size_t)r * (size_t)s->n * rb, (size_t)k * rb);
	memcpy(c->tokens, s->tokens, (size_t)k * sizeof *c->tokens);
	c->n_past = k;
	if (k > c->n_touched)
		c->n_touched = k;
	snap_touch(c, s);
}

int32_t model_ctx_reuse(struct model_ctx *c, const int32_t *prompt, int32_t n)
{
	int32_t k = common(c->tokens, c->n_past, prompt, n), kb = 0;
	struct model_snap *best = NULL;

	for (struct model_snap *s = c->snaps; s; s = s->next) {
		int32_t ks = s->rope_factors == c->rope_factors ? common(s->tokens, s->n, prompt, n) : 0;
		if (ks > kb) {
			kb = ks;
			best = s;
		}
	}
	if (best && kb <= k)
		best = NULL;
	/* the prompt keeps less than half of the live conversation: keep a
	 * copy of it for when it comes back */
	if (c->snap_max && 2 * (int64_t)k < c->n_past)
		save(c, best);
	if (best) {
		restore(c, best, kb);
		return kb;
	}
	c->n_past = k;
	return k;
}

void model_ctx_set_snap_max(struct model_ctx *c, size_t bytes)
{
	c->snap_max = c->m->hp.encoder ? 0 : bytes;
	make_room(c, NULL, 0);
}

size_t model_ctx_snap_drop(struct model_ctx *c)
{
	size_t freed = c->snap_bytes;
	while (c->snaps)
		snap_free(c, &c->snaps);
	return freed;
}

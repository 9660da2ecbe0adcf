/*
 * mgr/rag — embeddings and reranking on top of the manager: dormant_embed,
 * dormant_embed_batch and dormant_rerank of include/dormant.h.
 *
 * Encoders take a whole request as one model_encode call (sequences packed
 * into few forward passes); decoders embed one text per forward pass
 * (model_embed, mean-pooled).  Every embedding is L2-normalised, then cut
 * to the requested dimensions and normalised again (Matryoshka).
 *
 * Inputs longer than the model's context are cut to fit unless the request
 * says no_truncate: an embedding input keeps its first tokens and its final
 * [SEP]/EOS when the tokenizer added one; a rerank pair keeps its special
 * tokens and loses the end of the document first, then of the query.
 *
 * The rerank input is llama.cpp's (c392e50 format_rerank): BOS query EOS
 * SEP doc EOS, query and doc tokenized without special tokens added but
 * with special tokens in the text recognised.  A file's
 * tokenizer.chat_template.rerank (a template for that input) is not
 * supported yet: such a model is refused rather than fed the wrong layout.
 */
#include "dormant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgr/api.h"
#include "mgr/engine.h"
#include "mgr/mgr.h"

static int fail(char *buf, size_t len, const struct dm_err *e, int rc)
{
	if (buf && len)
		snprintf(buf, len, "%s", e->msg);
	return rc;
}

/* Tokens an encoder (or a decoder) sequence may have in this context. */
static int32_t max_tokens(const struct engine *en)
{
	int32_t n = en->n_ctx_default;
	if (en->m->hp.encoder && en->ctx->n_batch < n)
		n = en->ctx->n_batch; /* model_encode runs a sequence in one pass */
	if (en->m->hp.n_ctx_train > 0 && en->m->hp.n_ctx_train < n)
		n = en->m->hp.n_ctx_train;
	return n;
}

static void l2_normalise(float *v, size_t n)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += (double)v[i] * v[i];
	if (s > 0) {
		float k = (float)(1.0 / sqrt(s));
		for (size_t i = 0; i < n; i++)
			v[i] *= k;
	}
}

/* A growing array of token ids with the length of each sequence. */
struct seqs {
	int32_t *ids, *lens;
	size_t n_ids, cap_ids;
	size_t n;
};

static int seqs_push(struct seqs *s, const int32_t *ids, size_t n, struct dm_err *err)
{
	if (s->n_ids + n > s->cap_ids) {
		size_t cap = (s->n_ids + n) * 2 + 64;
		int32_t *p = realloc(s->ids, cap * sizeof *p);
		if (!p)
			return dm_err_set(err, DM_ENOMEM, "out of memory");
		s->ids = p;
		s->cap_ids = cap;
	}
	if (n)
		memcpy(s->ids + s->n_ids, ids, n * sizeof *ids);
	s->n_ids += n;
	return 0;
}

/* Tokenizes text for embedding into the next sequence (lens[s->n]),
 * truncated to limit tokens (or refused with no_truncate). */
static int embed_tokens(const struct engine *en, const char *text, size_t i, int32_t limit, bool no_truncate,
			struct seqs *s, struct dm_err *err)
{
	int32_t *ids = NULL;
	size_t n = 0;
	int rc;

	if (!text || !*text)
		return dm_err_set(err, DM_EINVAL, "input %zu is empty", i);
	if ((rc = tok_encode(en->v, text, strlen(text), TOK_ADD_SPECIAL, &ids, &n, err)))
		return rc;
	if (!n) {
		free(ids);
		return dm_err_set(err, DM_EINVAL, "input %zu has no tokens", i);
	}
	if (n > (size_t)limit) {
		int32_t last = ids[n - 1];
		if (no_truncate) {
			free(ids);
			return dm_err_set(err, DM_ERANGE,
					  "input %zu has %zu tokens, more than the model's context of %d (truncate is off)",
					  i, n, limit);
		}
		n = (size_t)limit;
		/* keep the closing special token the tokenizer added */
		if (last >= 0 && (last == tok_sep(en->v) || last == tok_eos(en->v)) && n > 1)
			ids[n - 1] = last;
	}
	rc = seqs_push(s, ids, n, err);
	if (!rc)
		s->lens[s->n++] = (int32_t)n;
	free(ids);
	return rc;
}

int dormant_embed_batch(dormant *d, const char *model, const char *const *texts, size_t n,
			const struct dormant_embed_opts *o, float *out, size_t cap, size_t *dim,
			struct dormant_embed_info *info, char *err, size_t errlen)
{
	struct mgr_lease *l = NULL;
	struct engine *en;
	struct seqs s = { 0 };
	float *full = NULL;
	size_t E, k;
	int32_t limit;
	struct dm_err e;
	int rc;

	if (info)
		memset(info, 0, sizeof *info);
	if (!n)
		return fail(err, errlen, &e, dm_err_set(&e, DM_EINVAL, "no input to embed"));
	if ((rc = dormant_role_check(d, model, MGR_ROLE_EMBED, &e)) ||
	    (rc = mgr_acquire(dormant_mgr(d), model, NULL, &l, &e)))
		return fail(err, errlen, &e, rc);
	en = mgr_lease_handle(l);
	E = (size_t)en->m->hp.n_embd;
	k = o && o->dimensions ? o->dimensions : E;
	*dim = k;
	limit = max_tokens(en);
	if (k > E) {
		rc = dm_err_set(&e, DM_EINVAL, "dimensions %zu is more than the model's %zu", k, E);
		goto out;
	}
	if (cap / k < n) {
		rc = n == 1 ? dm_err_set(&e, DM_ENOSPC, "embedding has %zu values, buffer holds %zu", k, cap)
			    : dm_err_set(&e, DM_ENOSPC, "%zu embeddings of %zu values, buffer holds %zu floats", n, k,
					 cap);
		goto out;
	}
	if (en->m->hp.encoder && en->m->hp.pooling == MODEL_POOL_RANK) {
		rc = dm_err_set(&e, DM_EUNSUPPORTED, "model '%s' is a reranker: its output is a score, not an embedding",
				model);
		goto out;
	}
	if (!(s.lens = malloc(n * sizeof *s.lens)) || !(full = malloc(n * E * sizeof *full))) {
		rc = dm_err_set(&e, DM_ENOMEM, "out of memory for %zu embeddings", n);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if ((rc = embed_tokens(en, texts[i], i, limit, o && o->no_truncate, &s, &e)))
			goto out;
	if (en->m->hp.encoder) {
		/* the file's pooling; a file that names none gets mean pooling */
		enum model_pooling pool = en->m->hp.pooling ? MODEL_POOL_NONE : MODEL_POOL_MEAN;
		if ((rc = model_encode(en->ctx, s.ids, s.lens, (int32_t)n, pool, full, &e)))
			goto out;
	} else {
		/* a decoder: its default context, budgeted as a generation's */
		size_t off = 0;
		if ((rc = mgr_lease_reserve(l, engine_bytes_for(en, en->n_ctx_default), NULL, &e)) ||
		    (rc = model_ctx_set_n_ctx(en->ctx, en->n_ctx_default, &e)))
			goto out;
		for (size_t i = 0; i < n; off += (size_t)s.lens[i++])
			if ((rc = model_embed(en->ctx, s.ids + off, s.lens[i], true, full + i * E, &e)))
				goto out;
		model_ctx_trim(en->ctx);
	}
	for (size_t i = 0; i < n; i++) {
		l2_normalise(full + i * E, E);
		memcpy(out + i * k, full + i * E, k * sizeof *out);
		if (k < E)
			l2_normalise(out + i * k, k);
	}
out:
	if (info) {
		info->n_tokens = (int)s.n_ids;
		info->load_s = mgr_lease_load_s(l);
		snprintf(info->model, sizeof info->model, "%s", mgr_lease_model(l));
	}
	free(full);
	free(s.ids);
	free(s.lens);
	mgr_release(l);
	return rc ? fail(err, errlen, &e, rc) : 0;
}

int dormant_embed(dormant *d, const char *model, const char *text, float *out, size_t cap, size_t *dim,
		  struct dormant_embed_info *info, char *err, size_t errlen)
{
	return dormant_embed_batch(d, model, &text, 1, NULL, out, cap, dim, info, err, errlen);
}

/* Appends BOS q EOS SEP d EOS (those the vocabulary has) as one sequence,
 * cutting d, then q, to fit limit. */
static int rerank_pair(const struct engine *en, const int32_t *q, size_t nq, const int32_t *dt, size_t nd,
		       size_t i, int32_t limit, bool no_truncate, struct seqs *s, struct dm_err *err)
{
	const int32_t bos = tok_bos(en->v), eos = tok_eos(en->v), sep = tok_sep(en->v);
	const size_t n_special = (size_t)(bos >= 0) + 2 * (size_t)(eos >= 0) + (size_t)(sep >= 0);
	size_t n0 = s->n_ids;
	int rc = 0;

	if (n_special + nq + nd > (size_t)limit) {
		size_t room = (size_t)limit > n_special ? (size_t)limit - n_special : 0;
		if (no_truncate)
			return dm_err_set(err, DM_ERANGE,
					  "query and document %zu have %zu tokens, more than the model's context of %d (truncate is off)",
					  i, n_special + nq + nd, limit);
		if (room < 2)
			return dm_err_set(err, DM_ERANGE, "the model's context of %d is too short to rerank", limit);
		if (nq > room - 1)
			nq = room - 1; /* the query alone is too long: keep one document token */
		if (nd > room - nq)
			nd = room - nq;
	}
	if (bos >= 0)
		rc = seqs_push(s, &bos, 1, err);
	if (!rc)
		rc = seqs_push(s, q, nq, err);
	if (!rc && eos >= 0)
		rc = seqs_push(s, &eos, 1, err);
	if (!rc && sep >= 0)
		rc = seqs_push(s, &sep, 1, err);
	if (!rc)
		rc = seqs_push(s, dt, nd, err);
	if (!rc && eos >= 0)
		rc = seqs_push(s, &eos, 1, err);
	if (!rc)
		s->lens[s->n++] = (int32_t)(s->n_ids - n0);
	return rc;
}

int dormant_rerank(dormant *d, const char *model, const char *query, const char *const *docs, size_t n_docs,
		   const struct dormant_embed_opts *o, float *scores, struct dormant_embed_info *info, char *err,
		   size_t errlen)
{
	struct mgr_lease *l = NULL;
	struct engine *en;
	struct seqs s = { 0 };
	int32_t *q = NULL, limit;
	size_t nq = 0;
	float *out = NULL;
	struct dm_err e;
	int rc;

	if (info)
		memset(info, 0, sizeof *info);
	if (!n_docs)
		return fail(err, errlen, &e, dm_err_set(&e, DM_EINVAL, "no documents to rerank"));
	if (!query || !*query)
		return fail(err, errlen, &e, dm_err_set(&e, DM_EINVAL, "the query is empty"));
	if ((rc = dormant_role_check(d, model, MGR_ROLE_RERANK, &e)) ||
	    (rc = mgr_acquire(dormant_mgr(d), model, NULL, &l, &e)))
		return fail(err, errlen, &e, rc);
	en = mgr_lease_handle(l);
	limit = max_tokens(en);
	if (!en->m->hp.encoder || en->m->hp.pooling != MODEL_POOL_RANK || en->m->hp.n_cls_out < 1) {
		rc = dm_err_set(&e, DM_EUNSUPPORTED, "model '%s' has no classification head: it cannot rerank", model);
		goto out;
	}
	if (gguf_find_key(en->g, "tokenizer.chat_template.rerank") >= 0) {
		rc = dm_err_set(&e, DM_EUNSUPPORTED,
				"model '%s' defines its rerank input with tokenizer.chat_template.rerank, "
				"which is not supported yet", model);
		goto out;
	}
	if (!(s.lens = malloc(n_docs * sizeof *s.lens)) ||
	    !(out = malloc(n_docs * (size_t)en->m->hp.n_cls_out * sizeof *out))) {
		rc = dm_err_set(&e, DM_ENOMEM, "out of memory for %zu documents", n_docs);
		goto out;
	}
	if ((rc = tok_encode(en->v, query, strlen(query), TOK_PARSE_SPECIAL, &q, &nq, &e)))
		goto out;
	for (size_t i = 0; i < n_docs; i++) {
		int32_t *dt = NULL;
		size_t nd = 0;
		if (!docs[i] || !*docs[i]) {
			rc = dm_err_set(&e, DM_EINVAL, "document %zu is empty", i);
			goto out;
		}
		if (!(rc = tok_encode(en->v, docs[i], strlen(docs[i]), TOK_PARSE_SPECIAL, &dt, &nd, &e)))
			rc = rerank_pair(en, q, nq, dt, nd, i, limit, o && o->no_truncate, &s, &e);
		free(dt);
		if (rc)
			goto out;
	}
	if ((rc = model_encode(en->ctx, s.ids, s.lens, (int32_t)n_docs, MODEL_POOL_RANK, out, &e)))
		goto out;
	/* a head of several outputs: the first is the relevance score */
	for (size_t i = 0; i < n_docs; i++)
		scores[i] = out[i * (size_t)en->m->hp.n_cls_out];
out:
	if (info) {
		info->n_tokens = (int)s.n_ids;
		info->load_s = mgr_lease_load_s(l);
		snprintf(info->model, sizeof info->model, "%s", mgr_lease_model(l));
	}
	free(q);
	free(out);
	free(s.ids);
	free(s.lens);
	mgr_release(l);
	return rc ? fail(err, errlen, &e, rc) : 0;
}

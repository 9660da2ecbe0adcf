/*
 * mgr/rag — embeddings and reranking on top of the manager: dormant_embed,
 * dormant_embed_batch and dormant_rerank of include/dormant.h.
 *
 * Encoders take a whole request as one model_encode call (sequences packed
 * into few forward passes); decoders embed one text per forward pass
 * (model_embed, mean-pooled).  Every embedding is L2-normalised, then cut
 * to the requested dimensions and normalised again (Matryoshka).
 *
 * Requests share forward passes: each call becomes a job in its model's
 * queue (first come, first served).  The oldest waiting job's thread leads:
 * it takes the model's lease, then takes from the front of the queue every
 * job that fits one batch (RAG_BATCH_SEQS sequences, RAG_BATCH_TOKENS
 * tokens; the first job always fits, a job never overtakes an older one),
 * runs them as one model_encode call, and hands each its own rows.  Jobs
 * that come while a batch runs wait for the next one, led by the oldest of
 * them.  A sequence is encoded alone whatever shares its pass (attention
 * stays inside its sequence, every other step is row by row), so a batched
 * answer is the solo answer up to the order of float additions in the
 * matrix kernels.  A job leaves the queue when its cancel flag is set
 * before a batch takes it; a leader cancelled while it waits for the model
 * leaves it to the next oldest job; any other failure to get the model is
 * the answer of every job waiting for it (they asked at the same time).
 * At most the configuration's max_queue jobs wait per model (DM_EBUSY
 * beyond), as the manager's own queue.
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

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* ---- jobs and batches ---- */

#define RAG_BATCH_SEQS 256     /* sequences in one batch (the first job may have more) */
#define RAG_BATCH_TOKENS 16384 /* tokens in one batch (the first job may have more) */

/* One embedding or rerank call, waiting in its model's queue, then in a
 * batch.  The caller's arrays are borrowed until the job is done. */
struct rag_job {
	bool rerank;
	const char *query;         /* rerank */
	const char *const *texts;  /* inputs, or documents */
	size_t n;
	size_t dims;               /* embed: values kept per vector (0: the model's) */
	bool no_truncate;
	float *out;                /* embed: n × dim floats; rerank: n scores */
	size_t cap;
	const atomic_int *cancel;
	/* the answer */
	size_t dim;
	int n_tokens, rc;
	double load_s;
	char model[MGR_NAME_MAX];  /* that answered */
	struct dm_err err;
	/* state, under the queue's mutex */
	bool taken, done;
	struct rag_job *next;
	/* in its batch: sequences [seq0, seq0 + n) and tokens [tok0, tok1) */
	size_t seq0, tok0, tok1;
};

/* The jobs waiting for one model. */
struct rag_queue {
	char model[MGR_NAME_MAX];
	struct rag_job *head, *tail;
	uint32_t waiting;          /* jobs in the queue (not yet taken) */
	bool leading;              /* a job's thread is getting the model or running a batch */
	uint64_t batches, requests;
	struct rag_queue *next;
};

struct dormant_rag {
	pthread_mutex_t mu;
	pthread_cond_t cv;         /* a job finished, or a queue lost its leader */
	uint32_t max_waiting;
	struct rag_queue *queues;
};

int dormant_rag_init(struct dormant_rag **out, uint32_t max_waiting, struct dm_err *err)
{
	struct dormant_rag *g = calloc(1, sizeof *g);
	if (!g)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
	g->max_waiting = max_waiting ? max_waiting : 16;
	*out = g;
	return 0;
}

void dormant_rag_free(struct dormant_rag *g)
{
	if (!g)
		return;
	for (struct rag_queue *q = g->queues, *nx; q; q = nx) {
		nx = q->next;
		free(q);
	}
	pthread_mutex_destroy(&g->mu);
	pthread_cond_destroy(&g->cv);
	free(g);
}

void dormant_rag_counts(struct dormant_rag *g, const char *model, uint64_t *batches, uint64_t *requests,
			uint32_t *waiting)
{
	*batches = *requests = 0;
	*waiting = 0;
	pthread_mutex_lock(&g->mu);
	for (struct rag_queue *q = g->queues; q; q = q->next)
		if (!strcmp(q->model, model)) {
			*batches = q->batches;
			*requests = q->requests;
			*waiting = q->waiting;
		}
	pthread_mutex_unlock(&g->mu);
}

/* The queue of model (made on first use; kept until dormant_rag_free). */
static struct rag_queue *queue_get(struct dormant_rag *g, const char *model)
{
	struct rag_queue *q;
	for (q = g->queues; q; q = q->next)
		if (!strcmp(q->model, model))
			return q;
	if (!(q = calloc(1, sizeof *q)))
		return NULL;
	snprintf(q->model, sizeof q->model, "%s", model);
	q->next = g->queues;
	g->queues = q;
	return q;
}

static void queue_unlink(struct rag_queue *q, struct rag_job *j)
{
	struct rag_job **pp = &q->head, *prev = NULL;
	while (*pp && *pp != j) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (!*pp)
		return;
	*pp = j->next;
	if (q->tail == j)
		q->tail = prev;
	j->next = NULL;
	q->waiting--;
}

static void job_fail(struct rag_job *j, int rc, const struct dm_err *e)
{
	j->rc = rc;
	j->err = *e;
}

/* Checks j against the loaded model and appends its sequences to s;
 * 0, or the job's own error (s as it was). */
static int job_prepare(const struct engine *en, struct rag_job *j, struct seqs *s, struct dm_err *e)
{
	const int32_t limit = max_tokens(en);
	const size_t seq0 = s->n, tok0 = s->n_ids;
	int rc = 0;

	j->seq0 = seq0;
	j->tok0 = tok0;
	if (!j->rerank) {
		const size_t E = (size_t)en->m->hp.n_embd;
		j->dim = j->dims ? j->dims : E;
		if (j->dim > E)
			return dm_err_set(e, DM_EINVAL, "dimensions %zu is more than the model's %zu", j->dim, E);
		if (j->cap / j->dim < j->n)
			return j->n == 1 ? dm_err_set(e, DM_ENOSPC, "embedding has %zu values, buffer holds %zu", j->dim,
						      j->cap)
					 : dm_err_set(e, DM_ENOSPC, "%zu embeddings of %zu values, buffer holds %zu floats",
						      j->n, j->dim, j->cap);
		if (en->m->hp.encoder && en->m->hp.pooling == MODEL_POOL_RANK)
			return dm_err_set(e, DM_EUNSUPPORTED,
					  "model '%s' is a reranker: its output is a score, not an embedding", j->model);
		for (size_t i = 0; i < j->n && !rc; i++)
			rc = embed_tokens(en, j->texts[i], i, limit, j->no_truncate, s, e);
	} else {
		int32_t *q = NULL;
		size_t nq = 0;
		if (!en->m->hp.encoder || en->m->hp.pooling != MODEL_POOL_RANK || en->m->hp.n_cls_out < 1)
			return dm_err_set(e, DM_EUNSUPPORTED, "model '%s' has no classification head: it cannot rerank",
					  j->model);
		if (gguf_find_key(en->g, "tokenizer.chat_template.rerank") >= 0)
			return dm_err_set(e, DM_EUNSUPPORTED,
					  "model '%s' defines its rerank input with tokenizer.chat_template.rerank, "
					  "which is not supported yet", j->model);
		rc = tok_encode(en->v, j->query, strlen(j->query), TOK_PARSE_SPECIAL, &q, &nq, e);
		for (size_t i = 0; i < j->n && !rc; i++) {
			int32_t *dt = NULL;
			size_t nd = 0;
			if (!j->texts[i] || !*j->texts[i]) {
				rc = dm_err_set(e, DM_EINVAL, "document %zu is empty", i);
				break;
			}
			if (!(rc = tok_encode(en->v, j->texts[i], strlen(j->texts[i]), TOK_PARSE_SPECIAL, &dt, &nd, e)))
				rc = rerank_pair(en, q, nq, dt, nd, i, limit, j->no_truncate, s, e);
			free(dt);
		}
		free(q);
	}
	if (rc) {
		s->n = seq0;
		s->n_ids = tok0;
	}
	j->tok1 = s->n_ids;
	return rc;
}

/* Runs the jobs of list (taken, in queue order) as one batch on the leased
 * engine.  Jobs past RAG_BATCH_TOKENS (never the first that has
 * sequences) are not run: they come back in *rest, in order.  Every other
 * job gets its answer or its error.  Returns whether a forward batch ran. */
static bool batch_run(struct mgr_lease *l, struct rag_job *list, size_t n_seq, struct rag_job **rest)
{
	struct engine *en = mgr_lease_handle(l);
	const struct model_hparams *hp = &en->m->hp;
	const bool rank = hp->encoder && hp->pooling == MODEL_POOL_RANK;
	const size_t dim = rank ? (size_t)hp->n_cls_out : (size_t)hp->n_embd;
	struct seqs s = { 0 };
	float *res = NULL;
	struct rag_job *j, **pp;
	struct dm_err e;
	int rc = 0;

	*rest = NULL;
	if (!(s.lens = malloc(n_seq * sizeof *s.lens)) || !(res = malloc(n_seq * dim * sizeof *res)))
		rc = dm_err_set(&e, DM_ENOMEM, "out of memory for %zu inputs", n_seq);
	for (pp = &list; !rc && *pp; pp = &(*pp)->next) {
		j = *pp;
		j->load_s = mgr_lease_load_s(l);
		snprintf(j->model, sizeof j->model, "%s", mgr_lease_model(l));
		if (job_prepare(en, j, &s, &e)) {
			job_fail(j, e.code, &e);
			continue;
		}
		if (s.n_ids > RAG_BATCH_TOKENS && j->seq0 > 0) {
			/* over the bound: this job and the rest wait for the next batch */
			s.n = j->seq0;
			s.n_ids = j->tok0;
			*rest = j;
			*pp = NULL;
			break;
		}
	}
	if (!rc && s.n) {
		if (hp->encoder) {
			/* the file's pooling; an embedder that names none gets mean pooling */
			enum model_pooling pool = rank ? MODEL_POOL_RANK
						       : (hp->pooling ? MODEL_POOL_NONE : MODEL_POOL_MEAN);
			rc = model_encode(en->ctx, s.ids, s.lens, (int32_t)s.n, pool, res, &e);
		} else {
			/* a decoder: its default context, budgeted as a generation's */
			size_t off = 0;
			if (!(rc = mgr_lease_reserve(l, engine_bytes_for(en, en->n_ctx_default), NULL, &e)) &&
			    !(rc = model_ctx_set_n_ctx(en->ctx, en->n_ctx_default, &e))) {
				for (size_t i = 0; i < s.n && !rc; off += (size_t)s.lens[i++])
					rc = model_embed(en->ctx, s.ids + off, s.lens[i], true, res + i * dim, &e);
				model_ctx_trim(en->ctx);
			}
		}
	}
	for (j = list; j; j = j->next) {
		if (j->rc)
			continue;
		j->n_tokens = (int)(j->tok1 - j->tok0);
		if (rc) {
			job_fail(j, rc, &e);
			continue;
		}
		for (size_t i = 0; i < j->n; i++) {
			float *v = res + (j->seq0 + i) * dim;
			if (j->rerank) {
				j->out[i] = v[0]; /* a head of several outputs: the first is the score */
				continue;
			}
			l2_normalise(v, dim);
			memcpy(j->out + i * j->dim, v, j->dim * sizeof *v);
			if (j->dim < dim)
				l2_normalise(j->out + i * j->dim, j->dim);
		}
	}
	free(res);
	free(s.ids);
	free(s.lens);
	return s.n > 0;
}

/* The leader's work, called and returning with g->mu held: gets the model,
 * takes one batch from the front of q, runs it, hands out the answers. */
static void lead(dormant *d, struct dormant_rag *g, struct rag_queue *q, struct rag_job *self)
{
	struct mgr_acquire_opts ao = { .cancel = self->cancel };
	struct mgr_lease *l = NULL;
	struct rag_job *list, *last = NULL, *rest = NULL, *j;
	size_t n_seq = 0, n_jobs = 0;
	struct dm_err e;
	bool ran;
	int rc;

	pthread_mutex_unlock(&g->mu);
	rc = mgr_acquire(dormant_mgr(d), q->model, &ao, &l, &e);
	pthread_mutex_lock(&g->mu);
	if (rc) {
		for (j = q->head; j; j = q->head) {
			if (rc == DM_ECANCELED && j != self)
				break; /* only self is cancelled; it is at the front */
			queue_unlink(q, j);
			job_fail(j, rc, &e);
			j->done = true;
		}
		q->leading = false;
		pthread_cond_broadcast(&g->cv);
		return;
	}
	/* self is the oldest job: it is at the front and always fits */
	list = q->head;
	while (q->head && (!n_jobs || n_seq + q->head->n <= RAG_BATCH_SEQS)) {
		j = q->head;
		queue_unlink(q, j);
		j->taken = true;
		n_seq += j->n;
		n_jobs++;
		if (last)
			last->next = j;
		last = j;
	}
	pthread_mutex_unlock(&g->mu);
	ran = batch_run(l, list, n_seq, &rest);
	mgr_release(l);
	pthread_mutex_lock(&g->mu);
	if (rest) { /* back to the front of the queue, in order */
		for (last = rest; last->next; last = last->next)
			;
		last->next = q->head;
		if (!q->head)
			q->tail = last;
		q->head = rest;
		for (j = rest; j != last->next; j = j->next) {
			j->taken = false;
			q->waiting++;
			n_jobs--;
		}
	}
	for (j = list; j; j = j->next)
		j->done = true;
	q->batches += ran;
	q->requests += n_jobs;
	q->leading = false;
	pthread_cond_broadcast(&g->cv);
}

/* Queues j for its model and waits for its answer (leading a batch when
 * it is the oldest job and no batch runs); 0 or j's error in e. */
static int job_run(dormant *d, const char *model, struct rag_job *j, struct dm_err *e)
{
	struct dormant_rag *g = dormant_rag_state(d);
	struct rag_queue *q;

	snprintf(j->model, sizeof j->model, "%s", model);
	pthread_mutex_lock(&g->mu);
	if (!(q = queue_get(g, model))) {
		pthread_mutex_unlock(&g->mu);
		return dm_err_set(e, DM_ENOMEM, "out of memory");
	}
	if (q->waiting >= g->max_waiting) {
		pthread_mutex_unlock(&g->mu);
		return dm_err_set(e, DM_EBUSY, "model '%s' is busy: %u requests are waiting for it", model,
				  q->waiting);
	}
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	q->waiting++;
	while (!j->done) {
		if (!q->leading && q->head == j) {
			q->leading = true;
			lead(d, g, q, j);
		} else if (!j->taken && j->cancel && atomic_load(j->cancel)) {
			queue_unlink(q, j);
			j->rc = dm_err_set(&j->err, DM_ECANCELED, "request cancelled while waiting for model '%s'",
					   model);
			j->done = true;
		} else if (j->cancel && !j->taken) {
			/* the flag is polled: nobody signals it */
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 50 * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&g->cv, &g->mu, &ts);
		} else {
			pthread_cond_wait(&g->cv, &g->mu);
		}
	}
	pthread_mutex_unlock(&g->mu);
	if (j->rc)
		*e = j->err;
	return j->rc;
}

int dormant_embed_batch(dormant *d, const char *model, const char *const *texts, size_t n,
			const struct dormant_embed_opts *o, float *out, size_t cap, size_t *dim,
			struct dormant_embed_info *info, char *err, size_t errlen)
{
	struct rag_job j = { .texts = texts, .n = n, .out = out, .cap = cap };
	struct dm_err e;
	int rc;

	if (info)
		memset(info, 0, sizeof *info);
	if (!n)
		return fail(err, errlen, &e, dm_err_set(&e, DM_EINVAL, "no input to embed"));
	if ((rc = dormant_role_check(d, model, MGR_ROLE_EMBED, &e)))
		return fail(err, errlen, &e, rc);
	if (o) {
		j.dims = o->dimensions;
		j.no_truncate = o->no_truncate;
		j.cancel = o->cancel;
	}
	rc = job_run(d, model, &j, &e);
	*dim = j.dim;
	if (info) {
		info->n_tokens = j.n_tokens;
		info->load_s = j.load_s;
		snprintf(info->model, sizeof info->model, "%s", j.model);
	}
	return rc ? fail(err, errlen, &e, rc) : 0;
}

int dormant_embed(dormant *d, const char *model, const char *text, float *out, size_t cap, size_t *dim,
		  struct dormant_embed_info *info, char *err, size_t errlen)
{
	return dormant_embed_batch(d, model, &text, 1, NULL, out, cap, dim, info, err, errlen);
}

int dormant_rerank(dormant *d, const char *model, const char *query, const char *const *docs, size_t n_docs,
		   const struct dormant_embed_opts *o, float *scores, struct dormant_embed_info *info, char *err,
		   size_t errlen)
{
	struct rag_job j = { .rerank = true, .query = query, .texts = docs, .n = n_docs, .out = scores,
			     .cap = n_docs };
	struct dm_err e;
	int rc;

	if (info)
		memset(info, 0, sizeof *info);
	if (!n_docs)
		return fail(err, errlen, &e, dm_err_set(&e, DM_EINVAL, "no documents to rerank"));
	if (!query || !*query)
		return fail(err, errlen, &e, dm_err_set(&e, DM_EINVAL, "the query is empty"));
	if ((rc = dormant_role_check(d, model, MGR_ROLE_RERANK, &e)))
		return fail(err, errlen, &e, rc);
	if (o) {
		j.no_truncate = o->no_truncate;
		j.cancel = o->cancel;
	}
	rc = job_run(d, model, &j, &e);
	if (info) {
		info->n_tokens = j.n_tokens;
		info->load_s = j.load_s;
		snprintf(info->model, sizeof info->model, "%s", j.model);
	}
	return rc ? fail(err, errlen, &e, rc) : 0;
}

/*
 * server/rag — reranking endpoints and the batch embedding call the
 * embedding endpoints of both APIs share.
 *
 *   POST /v1/rerank (also /rerank, /v1/reranking) and /api/rerank:
 *     {model, query, documents: [string | {text}], top_n?, return_documents?,
 *      truncate?}
 *   -> {model, object: "list",
 *       results: [{index, relevance_score, document?: {text}}] (best first,
 *                 at most top_n),
 *       usage: {prompt_tokens, total_tokens}}
 * relevance_score is the reranker head's raw output (no sigmoid), as
 * llama.cpp's server returns it.  /api/rerank answers the same shape with
 * Ollama-style errors.
 */
#include "server/srv_int.h"

#include <stdlib.h>
#include <string.h>

/* Reads `truncate` (default true) and `dimensions` (optional, >= 1) into o;
 * replies 400 and returns -1 on a bad value. */
int srv_embed_opts(struct srv_req *r, json_t *b, struct dormant_embed_opts *o)
{
	bool truncate = true, has = false;
	int64_t dims = 0;

	memset(o, 0, sizeof *o);
	if (srv_get_bool(r, b, "truncate", &truncate) ||
	    srv_get_int(r, b, "dimensions", 1, 1 << 20, &has, &dims))
		return -1;
	o->no_truncate = !truncate;
	o->dimensions = has ? (size_t)dims : 0;
	return 0;
}

int srv_embed_run(struct srv_req *r, const char *model, json_t *in, const struct dormant_embed_opts *opts,
		  float **vecs, size_t *dim, struct dormant_embed_info *info)
{
	size_t n = json_array_size(in), cap;
	const char **texts = malloc((n ? n : 1) * sizeof *texts);
	struct dormant_embed_opts o = *opts;
	struct srv_watch w;
	atomic_int cancel = 0;
	char err[256];
	int rc;

	*vecs = NULL;
	if (!texts) {
		srv_reply_error(r, 500, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		texts[i] = json_string_value(json_array_get(in, i));
	/* room for every vector at any model's width (the runtime checks);
	 * pages past the vectors written are never touched */
	cap = n * (size_t)16384;
	if (!(*vecs = malloc(cap * sizeof **vecs))) {
		free(texts);
		srv_reply_error(r, 500, "out of memory for %zu embeddings", n);
		return -1;
	}
	/* a client that hangs up while its request waits for a batch leaves it */
	o.cancel = &cancel;
	srv_watch_start(&w, r->fd, &cancel);
	rc = dormant_embed_batch(r->s->d, model, texts, n, &o, *vecs, cap, dim, info, err, sizeof err);
	srv_watch_stop(&w);
	srv_count_tokens(r->s, rc ? model : info->model, info->n_tokens, 0, rc != 0);
	free(texts);
	if (rc) {
		free(*vecs);
		*vecs = NULL;
		srv_reply_rc(r, rc, err);
		return -1;
	}
	return 0;
}

struct ranked {
	size_t index;
	float score;
};

static int by_score(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;
	if (x->score != y->score)
		return x->score < y->score ? 1 : -1;
	return x->index < y->index ? -1 : x->index > y->index; /* stable: input order */
}

int srv_rerank(struct srv_req *r)
{
	json_t *b, *docs, *x, *results = NULL;
	const char *model, *query, **texts = NULL;
	struct dormant_embed_opts o;
	struct dormant_embed_info info;
	struct ranked *rk = NULL;
	struct srv_watch w;
	atomic_int cancel = 0;
	float *scores = NULL;
	bool ret_docs = false, has_top = false;
	int64_t top_n = 0;
	size_t n, i;
	char err[256];
	int rc;

	if (!strcmp(r->url, "/rerank"))
		r->api = SRV_API_OPENAI; /* llama.cpp's alias of /v1/rerank */
	if (strcmp(r->method, "POST"))
		return srv_reply_error(r, 405, "use POST on %s", r->url);
	if (!(b = srv_body_json(r)))
		return MHD_YES;
	if (srv_get_string(r, b, "model", true, &model) || srv_get_string(r, b, "query", true, &query) ||
	    srv_get_int(r, b, "top_n", 1, 1 << 20, &has_top, &top_n) ||
	    srv_get_bool(r, b, "return_documents", &ret_docs) || srv_embed_opts(r, b, &o))
		goto out;
	if (!*query) {
		srv_reply_error(r, 400, "'query' must be a non-empty string");
		goto out;
	}
	docs = json_object_get(b, "documents");
	n = json_array_size(docs);
	if (!json_is_array(docs) || !n || n > 2048) {
		srv_reply_error(r, 400, "'documents' must be an array of 1 to 2048 strings or {\"text\": ...} objects");
		goto out;
	}
	if (!(texts = calloc(n, sizeof *texts)) || !(scores = calloc(n, sizeof *scores)) ||
	    !(rk = calloc(n, sizeof *rk))) {
		srv_reply_error(r, 500, "out of memory");
		goto out;
	}
	json_array_foreach(docs, i, x) {
		json_t *t = json_is_object(x) ? json_object_get(x, "text") : x;
		if (!json_is_string(t) || !json_string_length(t)) {
			srv_reply_error(r, 400, "documents[%zu] must be a non-empty string or {\"text\": string}", i);
			goto out;
		}
		texts[i] = json_string_value(t);
	}
	if (!srv_model_find(r->s, model, NULL)) {
		srv_reply_error(r, 404, "model '%s' not found", model);
		goto out;
	}
	o.cancel = &cancel;
	srv_watch_start(&w, r->fd, &cancel);
	rc = dormant_rerank(r->s->d, model, query, texts, n, &o, scores, &info, err, sizeof err);
	srv_watch_stop(&w);
	srv_count_tokens(r->s, rc ? model : info.model, info.n_tokens, 0, rc != 0);
	if (rc) {
		srv_reply_rc(r, rc, err);
		goto out;
	}
	for (i = 0; i < n; i++)
		rk[i] = (struct ranked){ i, scores[i] };
	qsort(rk, n, sizeof *rk, by_score);
	if (has_top && (size_t)top_n < n)
		n = (size_t)top_n;
	results = json_array();
	for (i = 0; i < n; i++) {
		json_t *e = json_pack("{s:I,s:f}", "index", (json_int_t)rk[i].index, "relevance_score",
				      (double)rk[i].score);
		if (ret_docs)
			json_object_set_new(e, "document", json_pack("{s:s}", "text", texts[rk[i].index]));
		json_array_append_new(results, e);
	}
	srv_reply_json(r, 200, json_pack("{s:s,s:s,s:o,s:{s:i,s:i}}", "model", info.model, "object", "list",
					 "results", results, "usage", "prompt_tokens", info.n_tokens,
					 "total_tokens", info.n_tokens));
out:
	free(texts);
	free(scores);
	free(rk);
	json_decref(b);
	return MHD_YES;
}

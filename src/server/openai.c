/* server/openai — /v1/chat/completions, /v1/completions, /v1/embeddings,
 * /v1/models in OpenAI's shapes. */
#include "server/srv_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *finish_reason(const char *f)
{
	/* our reasons: stop, length, context, cancel (gen_stop_name) */
	if (!strcmp(f, "length") || !strcmp(f, "context"))
		return "length";
	return "stop";
}

static json_t *usage(const struct srv_gen *g)
{
	return json_pack("{s:i,s:i,s:i,s:{s:i}}", "prompt_tokens", g->res.n_prompt, "completion_tokens",
			 g->res.n_gen, "total_tokens", g->res.n_prompt + g->res.n_gen, "prompt_tokens_details",
			 "cached_tokens", g->res.n_cached);
}

/* The fields every response and chunk carries. */
static json_t *envelope(const struct srv_gen *g, const char *object)
{
	return json_pack("{s:s,s:s,s:I,s:s,s:s}", "id", g->id, "object", object, "created",
			 (json_int_t)g->created, "model", g->res.model[0] ? g->res.model : g->model,
			 "system_fingerprint", "dormant-" DORMANT_VERSION);
}

/* ---- chat ---- */

static json_t *chat_chunk(const struct srv_gen *g, json_t *delta, const char *finish)
{
	json_t *o = envelope(g, "chat.completion.chunk");
	json_object_set_new(o, "choices",
			    json_pack("[{s:i,s:o,s:n,s:o}]", "index", 0, "delta", delta, "logprobs",
				      "finish_reason", finish ? json_string(finish) : json_null()));
	return o;
}

static int chat_text(struct srv_gen *g, const char *t, size_t n)
{
	if (!g->len++) /* first piece: the role chunk first, as OpenAI sends it */
		if (srv_stream_sse(g->st, NULL, chat_chunk(g, json_pack("{s:s,s:s}", "role", "assistant",
									 "content", ""), NULL)))
			return -1;
	return srv_stream_sse(g->st, NULL, chat_chunk(g, json_pack("{s:s%}", "content", t, n), NULL));
}

static void stream_error(struct srv_gen *g)
{
	/* the status line is gone already: the error travels as an event in
	 * OpenAI's error shape, then the stream ends */
	srv_stream_sse(g->st, NULL,
		       json_pack("{s:{s:s,s:s,s:n,s:o}}", "error", "message", g->err, "type",
				 srv_status_for(g->rc) >= 500 ? "server_error" : "invalid_request_error",
				 "param", "code",
				 g->rc == DM_ETOOLONG ? json_string("context_length_exceeded") : json_null()));
	srv_stream_write(g->st, "data: [DONE]\n\n", 14);
}

static void chat_end(struct srv_gen *g)
{
	if (g->rc) {
		stream_error(g);
		return;
	}
	if (!g->len)
		srv_stream_sse(g->st, NULL, chat_chunk(g, json_pack("{s:s,s:s}", "role", "assistant",
								     "content", ""), NULL));
	srv_stream_sse(g->st, NULL, chat_chunk(g, json_object(), finish_reason(g->res.finish)));
	if (g->include_usage) {
		json_t *o = envelope(g, "chat.completion.chunk");
		json_object_set_new(o, "choices", json_array());
		json_object_set_new(o, "usage", usage(g));
		srv_stream_sse(g->st, NULL, o);
	}
	srv_stream_write(g->st, "data: [DONE]\n\n", 14);
}

static void progress(struct srv_gen *g, const struct dormant_model_status *ms)
{
	srv_stream_sse(g->st, "progress",
		       json_pack("{s:s,s:s,s:I,s:I}", "model", ms->name, "status", "loading", "completed",
				 (json_int_t)ms->progress_done, "total", (json_int_t)ms->progress_total));
}

static json_t *chat_full(struct srv_gen *g)
{
	json_t *o = envelope(g, "chat.completion");
	json_object_set_new(o, "choices",
			    json_pack("[{s:i,s:{s:s,s:s%,s:n},s:n,s:s}]", "index", 0, "message", "role",
				      "assistant", "content", g->text ? g->text : "", g->len, "refusal",
				      "logprobs", "finish_reason", finish_reason(g->res.finish)));
	json_object_set_new(o, "usage", usage(g));
	return o;
}

static const struct srv_gen_fmt chat_fmt = {
	"text/event-stream", chat_text, chat_end, progress, chat_full,
};

/* ---- completions ---- */

static json_t *compl_choice(const char *text, size_t n, const char *finish)
{
	return json_pack("[{s:s%,s:i,s:n,s:o}]", "text", text, n, "index", 0, "logprobs", "finish_reason",
			 finish ? json_string(finish) : json_null());
}

static int compl_text(struct srv_gen *g, const char *t, size_t n)
{
	json_t *o = envelope(g, "text_completion");
	g->len++;
	json_object_set_new(o, "choices", compl_choice(t, n, NULL));
	return srv_stream_sse(g->st, NULL, o);
}

static void compl_end(struct srv_gen *g)
{
	json_t *o;
	if (g->rc) {
		stream_error(g);
		return;
	}
	o = envelope(g, "text_completion");
	json_object_set_new(o, "choices", compl_choice("", 0, finish_reason(g->res.finish)));
	if (g->include_usage)
		json_object_set_new(o, "usage", usage(g));
	srv_stream_sse(g->st, NULL, o);
	srv_stream_write(g->st, "data: [DONE]\n\n", 14);
}

static json_t *compl_full(struct srv_gen *g)
{
	json_t *o = envelope(g, "text_completion");
	json_object_set_new(o, "choices", compl_choice(g->text ? g->text : "", g->len,
						       finish_reason(g->res.finish)));
	json_object_set_new(o, "usage", usage(g));
	return o;
}

static const struct srv_gen_fmt compl_fmt = {
	"text/event-stream", compl_text, compl_end, progress, compl_full,
};

/* ---- request parsing ---- */

/* The fields of both generation endpoints (the shared parser, req.c). */
static int common_opts(struct srv_req *r, struct srv_gen *g, json_t *b)
{
	bool has;
	int64_t n;
	json_t *so;

	if (srv_req_model(r, b, g->model, sizeof g->model) || srv_req_refused(r, b) ||
	    srv_req_sampling(r, g, b) || srv_req_keep_alive(r, g, b))
		return -1;
	if (srv_get_int(r, b, "n", 1, 1, &has, &n))
		return -1;
	if (srv_get_bool(r, b, "stream", &g->stream))
		return -1;
	so = json_object_get(b, "stream_options");
	if (so && !json_is_null(so)) {
		if (!json_is_object(so)) {
			srv_reply_error(r, 400, "'stream_options' must be an object");
			return -1;
		}
		if (srv_get_bool(r, so, "include_usage", &g->include_usage))
			return -1;
	}
	g->progress_events = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, "X-Dormant-Progress") != NULL;
	return 0;
}

static int chat_completions(struct srv_req *r)
{
	json_t *b = srv_body_json(r), *msgs;
	struct srv_gen *g;

	if (!b)
		return MHD_YES;
	if (!(g = srv_gen_new(r, b, &chat_fmt))) {
		json_decref(b);
		return srv_reply_error(r, 500, "out of memory");
	}
	g->chat = true;
	srv_make_id(g->id, sizeof g->id, "chatcmpl-");
	if (common_opts(r, g, b))
		goto bad;
	msgs = json_object_get(b, "messages");
	if (!json_is_array(msgs) || !json_array_size(msgs)) {
		srv_reply_error(r, 400, "'messages' must be a non-empty array");
		goto bad;
	}
	if (srv_req_messages(r, g, msgs))
		goto bad;
	return srv_gen_run(r, g);
bad:
	srv_gen_free(g);
	return MHD_YES;
}

static int completions(struct srv_req *r)
{
	json_t *b = srv_body_json(r), *p;
	struct srv_gen *g;

	if (!b)
		return MHD_YES;
	if (!(g = srv_gen_new(r, b, &compl_fmt))) {
		json_decref(b);
		return srv_reply_error(r, 500, "out of memory");
	}
	srv_make_id(g->id, sizeof g->id, "cmpl-");
	if (common_opts(r, g, b))
		goto bad;
	p = json_object_get(b, "prompt");
	if (json_is_array(p) && json_array_size(p) == 1 && json_is_string(json_array_get(p, 0)))
		p = json_array_get(p, 0);
	if (!json_is_string(p) || !json_string_length(p)) {
		srv_reply_error(r, 400, "'prompt' must be a non-empty string (or an array of one string)");
		goto bad;
	}
	g->prompt = json_string_value(p);
	return srv_gen_run(r, g);
bad:
	srv_gen_free(g);
	return MHD_YES;
}

/* ---- embeddings ---- */

static char *base64(const void *data, size_t n)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = data;
	char *o = malloc((n + 2) / 3 * 4 + 1), *q = o;
	size_t i;
	if (!o)
		return NULL;
	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*q++ = t[v >> 18];
		*q++ = t[(v >> 12) & 63];
		*q++ = t[(v >> 6) & 63];
		*q++ = t[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
		*q++ = t[v >> 18];
		*q++ = t[(v >> 12) & 63];
		*q++ = i + 1 < n ? t[(v >> 6) & 63] : '=';
		*q++ = '=';
	}
	*q = '\0';
	return o;
}

static int embeddings(struct srv_req *r)
{
	json_t *b = srv_body_json(r), *in, *data, *x;
	const char *fmt = "float";
	char model[64];
	struct dormant_model_status ms;
	struct dormant_embed_opts o;
	struct dormant_embed_info info;
	float *vec = NULL;
	size_t dim = 0, i;
	int tokens = 0;
	char used[64] = "";

	if (!b)
		return MHD_YES;
	if (srv_req_model(r, b, model, sizeof model) || srv_get_string(r, b, "encoding_format", false, &fmt) ||
	    srv_embed_opts(r, b, &o))
		goto out;
	if (!fmt)
		fmt = "float";
	if (strcmp(fmt, "float") && strcmp(fmt, "base64")) {
		srv_reply_error(r, 400, "'encoding_format' must be float or base64");
		goto out;
	}
	in = json_object_get(b, "input");
	if (json_is_string(in)) {
		json_t *a = json_array();
		json_array_append(a, in);
		json_object_set_new(b, "input", a);
		in = a;
	}
	if (!json_is_array(in) || !json_array_size(in) || json_array_size(in) > 2048) {
		srv_reply_error(r, 400, "'input' must be a string or an array of 1 to 2048 strings");
		goto out;
	}
	json_array_foreach(in, i, x)
		if (!json_is_string(x) || !json_string_length(x)) {
			srv_reply_error(r, 400, "input[%zu] must be a non-empty string (token arrays are not "
					"supported)", i);
			goto out;
		}
	if (!srv_model_find(r->s, model, &ms)) {
		srv_reply_error(r, 404, "model '%s' not found", model);
		goto out;
	}
	if (srv_req_role(r, &ms, SRV_TASK_EMBED))
		goto out;
	if (srv_embed_run(r, model, in, &o, &vec, &dim, &info))
		goto out;
	data = json_array();
	snprintf(used, sizeof used, "%s", info.model);
	tokens = info.n_tokens;
	for (i = 0; i < json_array_size(in); i++) {
		json_t *e;
		if (!strcmp(fmt, "base64")) {
			char *s = base64(vec + i * dim, dim * sizeof *vec);
			e = s ? json_string(s) : NULL;
			free(s);
		} else {
			e = json_array();
			for (size_t k = 0; k < dim; k++)
				json_array_append_new(e, json_real(vec[i * dim + k]));
		}
		json_array_append_new(data, json_pack("{s:s,s:I,s:o}", "object", "embedding", "index",
						      (json_int_t)i, "embedding", e));
	}
	srv_reply_json(r, 200, json_pack("{s:s,s:o,s:s,s:{s:i,s:i}}", "object", "list", "data", data,
					 "model", used, "usage", "prompt_tokens", tokens, "total_tokens",
					 tokens));
out:
	free(vec);
	json_decref(b);
	return MHD_YES;
}

static int models(struct srv_req *r)
{
	struct dormant_model_status st[SRV_MAX_MODELS];
	size_t n = dormant_status(r->s->d, st, SRV_MAX_MODELS);
	json_t *data = json_array();
	for (size_t i = 0; i < n && i < SRV_MAX_MODELS; i++) {
		json_t *o = json_pack("{s:s,s:s,s:I,s:s}", "id", st[i].name, "object", "model", "created",
				      (json_int_t)r->s->t_start, "owned_by", "dormant");
		srv_disc_annotate(r->s, st[i].name, o);
		json_array_append_new(data, o);
	}
	srv_disc_broken(r->s, data, SRV_API_OPENAI);
	return srv_reply_json(r, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
}

int srv_openai(struct srv_req *r)
{
	static const struct {
		const char *path, *method;
		int (*fn)(struct srv_req *);
	} routes[] = {
		{ "/v1/chat/completions", "POST", chat_completions },
		{ "/v1/completions", "POST", completions },
		{ "/v1/embeddings", "POST", embeddings },
		{ "/v1/models", "GET", models },
	};
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
		if (!strcmp(r->url, routes[i].path)) {
			if (strcmp(r->method, routes[i].method))
				return srv_reply_error(r, 405, "use %s on %s", routes[i].method, r->url);
			return routes[i].fn(r);
		}
	if (!strncmp(r->url, "/v1/models/", 11) && !strcmp(r->method, "GET")) {
		const char *name = r->url + 11;
		if (!srv_model_find(r->s, name, NULL))
			return srv_reply_error(r, 404, "model '%s' not found", name);
		return srv_reply_json(r, 200, json_pack("{s:s,s:s,s:I,s:s}", "id", name, "object", "model",
							"created", (json_int_t)r->s->t_start, "owned_by",
							"dormant"));
	}
	return srv_reply_error(r, 404, "no such endpoint: %s %s", r->method, r->url);
}

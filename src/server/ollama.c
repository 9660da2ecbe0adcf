/* server/ollama — /api/generate, /api/chat, /api/embed(dings), /api/tags,
 * /api/ps, /api/show, /api/version in Ollama's shapes, and dormant's own
 * /api/load and /api/unload. */
#include "server/srv_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *head(const char *model)
{
	char ts[48];
	srv_time_rfc3339(ts, sizeof ts, srv_unix_now());
	return json_pack("{s:s,s:s}", "model", model, "created_at", ts);
}

static json_int_t ns(double s)
{
	return (json_int_t)(s * 1e9);
}

static const char *model_of(const struct srv_gen *g)
{
	return g->res.model[0] ? g->res.model : g->model;
}

/* The closing object of a generation: done, reason, real measured times. */
static json_t *final(struct srv_gen *g)
{
	json_t *o = head(model_of(g));
	const char *why = g->res.finish;
	if (!strcmp(why, "context"))
		why = "length";
	else if (strcmp(why, "length"))
		why = "stop";
	if (g->chat)
		json_object_set_new(o, "message", json_pack("{s:s,s:s%}", "role", "assistant", "content",
							     g->stream ? "" : (g->text ? g->text : ""),
							     g->stream ? 0 : g->len));
	else
		json_object_set_new(o, "response", json_stringn(g->stream ? "" : (g->text ? g->text : ""),
								g->stream ? 0 : g->len));
	json_object_set_new(o, "done", json_true());
	json_object_set_new(o, "done_reason", json_string(why));
	json_object_set_new(o, "total_duration", json_integer((json_int_t)g->total_ns));
	json_object_set_new(o, "load_duration", json_integer(ns(g->res.load_s)));
	/* as Ollama: the tokens evaluated, not those the prompt cache supplied */
	json_object_set_new(o, "prompt_eval_count", json_integer(g->res.n_prompt - g->res.n_cached));
	json_object_set_new(o, "prompt_eval_duration", json_integer(ns(g->res.prompt_s)));
	json_object_set_new(o, "eval_count", json_integer(g->res.n_gen));
	json_object_set_new(o, "eval_duration", json_integer(ns(g->res.gen_s)));
	if (g->res.fallback_reason[0])
		json_object_set_new(o, "fallback_reason", json_string(g->res.fallback_reason));
	return o;
}

static int stream_text(struct srv_gen *g, const char *t, size_t n)
{
	json_t *o = head(model_of(g));
	if (g->chat)
		json_object_set_new(o, "message", json_pack("{s:s,s:s%}", "role", "assistant", "content", t, n));
	else
		json_object_set_new(o, "response", json_stringn(t, n));
	json_object_set_new(o, "done", json_false());
	return srv_stream_ndjson(g->st, o);
}

static void stream_end(struct srv_gen *g)
{
	if (g->rc)
		srv_stream_ndjson(g->st, json_pack("{s:s}", "error", g->err));
	else
		srv_stream_ndjson(g->st, final(g));
}

static void progress(struct srv_gen *g, const struct dormant_model_status *ms)
{
	json_t *o = head(ms->name);
	json_object_set_new(o, "status", json_string("loading"));
	json_object_set_new(o, "completed", json_integer((json_int_t)ms->progress_done));
	json_object_set_new(o, "total", json_integer((json_int_t)ms->progress_total));
	json_object_set_new(o, "done", json_false());
	srv_stream_ndjson(g->st, o);
}

static const struct srv_gen_fmt fmt = {
	"application/x-ndjson", stream_text, stream_end, progress, final,
};

/* Fields both /api/generate and /api/chat take (the shared parser, req.c);
 * sampling sits in "options", whose other keys are ignored as Ollama
 * ignores them. */
static int common(struct srv_req *r, struct srv_gen *g, json_t *b)
{
	json_t *o = json_object_get(b, "options");
	bool truncate = true;

	if (srv_req_model(r, b, g->model, sizeof g->model) || srv_req_refused(r, b))
		return -1;
	g->stream = true; /* Ollama streams unless told not to */
	if (srv_get_bool(r, b, "stream", &g->stream) || srv_get_bool(r, b, "truncate", &truncate))
		return -1;
	g->o.truncate = truncate;
	if (o && !json_is_null(o)) {
		if (!json_is_object(o)) {
			srv_reply_error(r, 400, "'options' must be an object");
			return -1;
		}
		if (srv_req_sampling(r, g, o))
			return -1;
	}
	if (srv_req_keep_alive(r, g, b))
		return -1;
	g->progress_events = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, "X-Dormant-Progress") != NULL;
	return 0;
}

/* Empty prompt / no messages: load the model, or with keep_alive 0 unload
 * it (Ollama's convention), answering done_reason "load" / "unload". */
static int load_or_unload(struct srv_req *r, struct srv_gen *g)
{
	char err[256];
	double load_s = 0;
	int rc;
	json_t *o;
	bool has_ka = g->o.has_keep_alive;
	int64_t ka = g->o.keep_alive_ms;
	bool unload = has_ka && ka == 0;

	struct dormant_model_status before, after;

	if (!srv_model_find(r->s, g->model, &before)) {
		rc = srv_reply_error(r, 404, "model '%s' not found", g->model);
		srv_gen_free(g);
		return rc;
	}
	if (unload)
		rc = dormant_unload(r->s->d, g->model, err, sizeof err);
	else if (has_ka)
		rc = dormant_load_keep_alive(r->s->d, g->model, ka, &load_s, err, sizeof err);
	else
		rc = dormant_load(r->s->d, g->model, err, sizeof err);
	/* the time this call spent loading: the model's last load when this
	 * call (or one it waited for) loaded it, else 0 */
	if (!rc && !unload && !load_s && srv_model_find(r->s, g->model, &after) &&
	    after.load_count > before.load_count)
		load_s = after.last_load_s;
	if (rc) {
		rc = srv_reply_rc(r, rc, err);
		srv_gen_free(g);
		return rc;
	}
	o = head(g->model);
	if (g->chat)
		json_object_set_new(o, "message", json_pack("{s:s,s:s}", "role", "assistant", "content", ""));
	else
		json_object_set_new(o, "response", json_string(""));
	json_object_set_new(o, "done", json_true());
	json_object_set_new(o, "done_reason", json_string(unload ? "unload" : "load"));
	if (!unload)
		json_object_set_new(o, "load_duration", json_integer(ns(load_s)));
	srv_gen_free(g);
	return srv_reply_json(r, 200, o);
}

static int generate(struct srv_req *r)
{
	json_t *b = srv_body_json(r);
	struct srv_gen *g;
	const char *prompt, *system;
	bool raw = false;

	if (!b)
		return MHD_YES;
	if (!(g = srv_gen_new(r, b, &fmt))) {
		json_decref(b);
		return srv_reply_error(r, 500, "out of memory");
	}
	if (common(r, g, b) || srv_get_string(r, b, "prompt", false, &prompt) ||
	    srv_get_string(r, b, "system", false, &system) || srv_get_bool(r, b, "raw", &raw))
		goto bad;
	if (!prompt || !*prompt)
		return load_or_unload(r, g);
	g->prompt = prompt;
	if (!raw) {
		/* Ollama applies the model's template unless raw */
		g->o.chat = 1;
		g->o.system = system;
	}
	return srv_gen_run(r, g);
bad:
	srv_gen_free(g);
	return MHD_YES;
}

static int chat(struct srv_req *r)
{
	json_t *b = srv_body_json(r), *msgs;
	struct srv_gen *g;

	if (!b)
		return MHD_YES;
	if (!(g = srv_gen_new(r, b, &fmt))) {
		json_decref(b);
		return srv_reply_error(r, 500, "out of memory");
	}
	g->chat = true;
	if (common(r, g, b))
		goto bad;
	msgs = json_object_get(b, "messages");
	if (!msgs || json_is_null(msgs) || (json_is_array(msgs) && !json_array_size(msgs)))
		return load_or_unload(r, g);
	if (srv_req_messages(r, g, msgs))
		goto bad;
	return srv_gen_run(r, g);
bad:
	srv_gen_free(g);
	return MHD_YES;
}

/* ---- embeddings ---- */

static int embed(struct srv_req *r, bool legacy)
{
	json_t *b = srv_body_json(r), *in, *out = NULL, *x;
	char model[64];
	struct dormant_model_status ms;
	struct dormant_embed_opts o;
	struct dormant_embed_info info;
	float *vec = NULL;
	size_t dim = 0, i;
	int tokens = 0;
	double load_s = 0, t0 = srv_now();
	char used[64];

	if (!b)
		return MHD_YES;
	if (srv_req_model(r, b, model, sizeof model) || srv_embed_opts(r, b, &o))
		goto done;
	snprintf(used, sizeof used, "%s", model);
	in = json_object_get(b, legacy ? "prompt" : "input");
	if (json_is_string(in)) {
		json_t *a = json_array();
		json_array_append(a, in);
		json_object_set_new(b, "__input", a);
		in = a;
	}
	if (!json_is_array(in) || !json_array_size(in) || json_array_size(in) > 2048) {
		srv_reply_error(r, 400, "'%s' must be a string or an array of 1 to 2048 strings",
				legacy ? "prompt" : "input");
		goto done;
	}
	json_array_foreach(in, i, x)
		if (!json_is_string(x) || !json_string_length(x)) {
			srv_reply_error(r, 400, "input[%zu] must be a non-empty string", i);
			goto done;
		}
	if (!srv_model_find(r->s, model, &ms)) {
		srv_reply_error(r, 404, "model '%s' not found", model);
		goto done;
	}
	if (srv_req_role(r, &ms, SRV_TASK_EMBED))
		goto done;
	if (srv_embed_run(r, model, in, &o, &vec, &dim, &info))
		goto done;
	out = json_array();
	snprintf(used, sizeof used, "%s", info.model);
	load_s = info.load_s;
	tokens = info.n_tokens;
	for (i = 0; i < json_array_size(in); i++) {
		json_t *e = json_array();
		for (size_t k = 0; k < dim; k++)
			json_array_append_new(e, json_real(vec[i * dim + k]));
		json_array_append_new(out, e);
	}
	if (legacy) {
		srv_reply_json(r, 200, json_pack("{s:O}", "embedding", json_array_get(out, 0)));
	} else {
		srv_reply_json(r, 200, json_pack("{s:s,s:O,s:I,s:I,s:i}", "model", used, "embeddings", out,
						 "total_duration", ns(srv_now() - t0), "load_duration",
						 ns(load_s), "prompt_eval_count", tokens));
	}
done:
	json_decref(out);
	free(vec);
	json_decref(b);
	return MHD_YES;
}

static int embed_new(struct srv_req *r)
{
	return embed(r, false);
}

static int embed_legacy(struct srv_req *r)
{
	return embed(r, true);
}

/* ---- model listings ---- */

static void file_id(char *buf, size_t cap, const char *path, uint64_t size, double mtime)
{
	/* identifies the file version (path, size, mtime), not its content:
	 * hashing gigabytes per listing would defeat the point */
	uint64_t h = 1469598103934665603ull;
	char tmp[1100];
	snprintf(tmp, sizeof tmp, "%s|%llu|%.9f", path, (unsigned long long)size, mtime);
	for (const char *p = tmp; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	snprintf(buf, cap, "%016llx", (unsigned long long)h);
}

static int tags(struct srv_req *r)
{
	struct dormant_model_status st[SRV_MAX_MODELS];
	size_t n = dormant_status(r->s->d, st, SRV_MAX_MODELS);
	json_t *list = json_array();
	for (size_t i = 0; i < n && i < SRV_MAX_MODELS; i++) {
		uint64_t size;
		double mtime;
		char ts[48], id[32];
		json_t *det = srv_model_details(st[i].path, NULL, NULL, &size, &mtime);
		srv_time_rfc3339(ts, sizeof ts, mtime);
		file_id(id, sizeof id, st[i].path, size, mtime);
		json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:s,s:o}", "name", st[i].name, "model", st[i].name,
				      "modified_at", ts, "size", (json_int_t)size, "digest", id, "details",
				      det ? det : json_object());
		srv_disc_annotate(r->s, st[i].name, o);
		json_array_append_new(list, o);
	}
	srv_disc_broken(r->s, list, SRV_API_OLLAMA);
	return srv_reply_json(r, 200, json_pack("{s:o}", "models", list));
}

static int ps(struct srv_req *r)
{
	struct dormant_model_status st[SRV_MAX_MODELS];
	size_t n = dormant_status(r->s->d, st, SRV_MAX_MODELS);
	json_t *list = json_array();
	double now = srv_unix_now();
	for (size_t i = 0; i < n && i < SRV_MAX_MODELS; i++) {
		uint64_t size;
		double mtime, exp;
		char ts[48], id[32];
		json_t *det;
		if (strcmp(st[i].state, "ready") && strcmp(st[i].state, "loading") &&
		    strcmp(st[i].state, "unloading"))
			continue;
		det = srv_model_details(st[i].path, NULL, NULL, &size, &mtime);
		file_id(id, sizeof id, st[i].path, size, mtime);
		/* as `dormant ps` reads the same status: a timer running, or in
		 * use (the model's keep-alive starts when it ends), or ready and
		 * idle with no timer (kept forever: a date centuries ahead, as
		 * Ollama shows) */
		if (st[i].expires_in_ms >= 0)
			exp = now + (double)st[i].expires_in_ms / 1000.0;
		else if (st[i].in_use && st[i].keep_alive_ms >= 0)
			exp = now + (double)st[i].keep_alive_ms / 1000.0;
		else if (!strcmp(st[i].state, "ready") || st[i].keep_alive_ms < 0)
			exp = 11076912000.0;
		else
			exp = now + (double)(st[i].keep_alive_ms > 0 ? st[i].keep_alive_ms : 0) / 1000.0;
		srv_time_rfc3339(ts, sizeof ts, exp);
		json_array_append_new(
			list, json_pack("{s:s,s:s,s:I,s:s,s:o,s:s,s:I,s:s,s:b,s:i}", "name", st[i].name, "model",
					st[i].name, "size", (json_int_t)(st[i].bytes ? st[i].bytes : st[i].est_bytes),
					"digest", id, "details", det ? det : json_object(), "expires_at", ts,
					"size_vram", (json_int_t)0, "state", st[i].state, "in_use", st[i].in_use,
					"queued", (int)st[i].queued));
	}
	return srv_reply_json(r, 200, json_pack("{s:o}", "models", list));
}

static int show(struct srv_req *r)
{
	json_t *b = srv_body_json(r), *det, *info;
	const char *model, *name;
	struct dormant_model_status st;
	char *tmpl;
	int rc;

	if (!b)
		return MHD_YES;
	if (srv_get_string(r, b, "model", false, &model) || srv_get_string(r, b, "name", false, &name)) {
		json_decref(b);
		return MHD_YES;
	}
	if (!model)
		model = name;
	if (!model) {
		json_decref(b);
		return srv_reply_error(r, 400, "missing field 'model'");
	}
	if (!srv_model_find(r->s, model, &st)) {
		rc = srv_reply_error(r, 404, "model '%s' not found", model);
		json_decref(b);
		return rc;
	}
	json_decref(b);
	{
		uint64_t size;
		double mtime;
		char ts[48], params[160];
		det = srv_model_details(st.path, &info, &tmpl, &size, &mtime);
		srv_time_rfc3339(ts, sizeof ts, mtime);
		snprintf(params, sizeof params, "keep_alive %lld\nload %s\nmode %s",
			 (long long)st.keep_alive_ms, st.policy, st.mode);
		rc = srv_reply_json(r, 200,
				    json_pack("{s:s,s:s,s:s,s:o,s:o,s:[s],s:s}", "modelfile", "", "parameters",
					      params, "template", tmpl ? tmpl : "", "details",
					      det ? det : json_object(), "model_info", info ? info : json_object(),
					      "capabilities",
					      !strcmp(st.role, "embed")    ? "embedding"
					      : !strcmp(st.role, "rerank") ? "rerank"
									   : "completion",
					      "modified_at", ts));
		free(tmpl);
	}
	return rc;
}

/* ---- dormant's lifecycle endpoints ---- */

struct load_job {
	struct srv *s;
	char model[64];
	bool has_ka, sse;
	int64_t ka;
	int rc;
	char err[256];
	double load_s;
};

static int emit(struct srv_stream *st, bool sse, const char *event, json_t *o)
{
	return sse ? srv_stream_sse(st, event, o) : srv_stream_ndjson(st, o);
}

static void load_run(struct srv_stream *st, void *p)
{
	struct load_job *j = p;
	struct dormant_model_status ms;
	json_t *o;
	if (j->has_ka)
		j->rc = dormant_load_keep_alive(j->s->d, j->model, j->ka, &j->load_s, j->err, sizeof j->err);
	else
		j->rc = dormant_load(j->s->d, j->model, j->err, sizeof j->err);
	if (!st)
		return;
	if (j->rc) {
		emit(st, j->sse, "error", json_pack("{s:s}", "error", j->err));
		return;
	}
	srv_model_find(j->s, j->model, &ms);
	o = head(j->model);
	json_object_set_new(o, "status", json_string(ms.state));
	json_object_set_new(o, "load_duration", json_integer(ns(ms.last_load_s)));
	json_object_set_new(o, "size", json_integer((json_int_t)ms.bytes));
	json_object_set_new(o, "done", json_true());
	emit(st, j->sse, "done", o);
}

static void load_idle(struct srv_stream *st, void *p)
{
	struct load_job *j = p;
	struct dormant_model_status ms;
	json_t *o;
	if (!srv_model_find(j->s, j->model, &ms))
		return;
	o = head(j->model);
	json_object_set_new(o, "status", json_string(ms.state));
	json_object_set_new(o, "completed", json_integer((json_int_t)ms.progress_done));
	json_object_set_new(o, "total", json_integer((json_int_t)ms.progress_total));
	json_object_set_new(o, "done", json_false());
	emit(st, j->sse, "progress", o);
}

static int load(struct srv_req *r)
{
	json_t *b = srv_body_json(r), *v;
	struct load_job *j;
	const char *acc;
	char why[DM_ERR_MSG_MAX];
	bool stream = true;

	if (!b)
		return MHD_YES;
	if (!(j = calloc(1, sizeof *j))) {
		json_decref(b);
		return srv_reply_error(r, 500, "out of memory");
	}
	j->s = r->s;
	if (srv_req_model(r, b, j->model, sizeof j->model) || srv_get_bool(r, b, "stream", &stream))
		goto bad;
	if (!srv_model_find(r->s, j->model, NULL)) {
		srv_reply_error(r, 404, "model '%s' not found", j->model);
		goto bad;
	}
	v = json_object_get(b, "keep_alive");
	if (v && !json_is_null(v)) {
		if (srv_parse_keep_alive(v, &j->ka, why, sizeof why)) {
			srv_reply_error(r, 400, "%s", why);
			goto bad;
		}
		j->has_ka = true;
	}
	json_decref(b);
	if (!stream) {
		struct dormant_model_status ms;
		int rc;
		load_run(NULL, j);
		if (j->rc) {
			rc = srv_reply_rc(r, j->rc, j->err);
		} else {
			json_t *o = head(j->model);
			srv_model_find(r->s, j->model, &ms);
			json_object_set_new(o, "status", json_string(ms.state));
			json_object_set_new(o, "load_duration", json_integer(ns(ms.last_load_s)));
			json_object_set_new(o, "size", json_integer((json_int_t)ms.bytes));
			json_object_set_new(o, "done", json_true());
			rc = srv_reply_json(r, 200, o);
		}
		free(j);
		return rc;
	}
	acc = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, "Accept");
	j->sse = acc && strstr(acc, "text/event-stream");
	return srv_stream_start(r, j->sse ? "text/event-stream" : "application/x-ndjson", load_run, load_idle,
				free, j);
bad:
	json_decref(b);
	free(j);
	return MHD_YES;
}

static int unload(struct srv_req *r)
{
	json_t *b = srv_body_json(r), *o;
	const char *model;
	char err[256];
	struct dormant_model_status ms;
	int rc;

	if (!b)
		return MHD_YES;
	if (srv_get_string(r, b, "model", true, &model)) {
		json_decref(b);
		return MHD_YES;
	}
	if ((rc = dormant_unload(r->s->d, model, err, sizeof err))) {
		rc = srv_reply_rc(r, rc, err);
		json_decref(b);
		return rc;
	}
	srv_model_find(r->s, model, &ms);
	o = head(model);
	json_decref(b);
	json_object_set_new(o, "status", json_string(ms.state));
	json_object_set_new(o, "rss_before_load", json_integer((json_int_t)ms.rss_before_load));
	json_object_set_new(o, "rss_after_unload", json_integer((json_int_t)ms.rss_after_unload));
	json_object_set_new(o, "done", json_true());
	return srv_reply_json(r, 200, o);
}

static int version(struct srv_req *r)
{
	return srv_reply_json(r, 200, json_pack("{s:s}", "version", dormant_version()));
}

int srv_ollama(struct srv_req *r)
{
	static const struct {
		const char *path, *method;
		int (*fn)(struct srv_req *);
	} routes[] = {
		{ "/api/generate", "POST", generate },  { "/api/chat", "POST", chat },
		{ "/api/embed", "POST", embed_new },    { "/api/embeddings", "POST", embed_legacy },
		{ "/api/tags", "GET", tags },           { "/api/ps", "GET", ps },
		{ "/api/show", "POST", show },          { "/api/version", "GET", version },
		{ "/api/load", "POST", load },          { "/api/unload", "POST", unload },
		{ "/api/rescan", "POST", srv_rescan }, { "/api/reload", "POST", srv_reload },
	};
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
		if (!strcmp(r->url, routes[i].path)) {
			if (strcmp(r->method, routes[i].method))
				return srv_reply_error(r, 405, "use %s on %s", routes[i].method, r->url);
			return routes[i].fn(r);
		}
	return srv_reply_error(r, 404, "no such endpoint: %s %s", r->method, r->url);
}

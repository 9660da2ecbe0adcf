/* server/req — the request fields both APIs share, parsed once: the model
 * name, the messages of a conversation, the sampling options, stop strings,
 * keep_alive (the config file's duration grammar, base/dur.h), the fields
 * dormant refuses, and which model roles may serve which task.  OpenAI's
 * handlers and Ollama's call these same functions, so the two cannot drift:
 * the only differences are where a field sits (Ollama's sampling lives in
 * "options") and the name of the token limit. */
#include "server/srv_int.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int srv_req_model(struct srv_req *r, json_t *b, char *out, size_t cap)
{
	const char *model;
	if (srv_get_string(r, b, "model", true, &model))
		return -1;
	if (strlen(model) >= cap) {
		/* never truncated: a cut name could match another model */
		srv_reply_error(r, 404, "model '%.60s...' not found (names are at most %zu bytes)", model,
				cap - 1);
		return -1;
	}
	snprintf(out, cap, "%s", model);
	return 0;
}

/* ---- refused fields ---- */

static bool harmless_absent(const json_t *v)
{
	return json_is_null(v);
}

static bool harmless_empty_array(const json_t *v)
{
	return json_is_null(v) || (json_is_array(v) && !json_array_size(v));
}

static bool harmless_empty_string(const json_t *v)
{
	return json_is_null(v) || (json_is_string(v) && !json_string_length(v));
}

static bool harmless_none(const json_t *v)
{
	return json_is_null(v) || (json_is_string(v) && !strcmp(json_string_value(v), "none"));
}

static bool harmless_false(const json_t *v)
{
	return json_is_null(v) || json_is_false(v) || (json_is_integer(v) && !json_integer_value(v));
}

static bool harmless_text_format(const json_t *v)
{
	json_t *t = json_object_get(v, "type");
	return json_is_null(v) || (json_is_object(v) && json_object_size(v) == 1 && json_is_string(t) &&
				   !strcmp(json_string_value(t), "text"));
}

/* Fields of either API that dormant does not implement.  A request that uses
 * one gets 400 naming it (never a silent 200 that ignored it); the values
 * that ask for nothing (tools: [], logprobs: false, ...) pass. */
static const struct {
	const char *key;
	bool (*harmless)(const json_t *v);
	const char *what;
} refused[] = {
	{ "tools", harmless_empty_array, "tool calling is not supported" },
	{ "tool_choice", harmless_none, "tool calling is not supported" },
	{ "functions", harmless_empty_array, "function calling is not supported" },
	{ "function_call", harmless_none, "function calling is not supported" },
	{ "response_format", harmless_text_format, "structured output is not supported (only {\"type\":\"text\"})" },
	{ "format", harmless_empty_string, "structured output is not supported" },
	{ "logprobs", harmless_false, "log probabilities are not supported" },
	{ "top_logprobs", harmless_false, "log probabilities are not supported" },
	{ "logit_bias", harmless_absent, "logit bias is not supported" },
	{ "images", harmless_empty_array, "images are not supported: dormant runs text models" },
	{ "suffix", harmless_empty_string, "fill-in-the-middle is not supported" },
};

int srv_req_refused(struct srv_req *r, json_t *b)
{
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		json_t *v = json_object_get(b, refused[i].key);
		if (v && !refused[i].harmless(v)) {
			srv_reply_error(r, 400, "'%s': %s", refused[i].key, refused[i].what);
			return -1;
		}
	}
	return 0;
}

/* ---- roles ---- */

/* Which model roles may serve which task; a new role (rerank) is a row. */
static const struct {
	enum srv_task task;
	const char *name;
	const char *roles[4]; /* NULL-terminated */
} tasks[] = {
	{ SRV_TASK_GENERATE, "text generation", { "generate", NULL } },
	{ SRV_TASK_EMBED, "embeddings", { "embed", "generate", NULL } },
};

int srv_req_role(struct srv_req *r, const struct dormant_model_status *ms, enum srv_task t)
{
	for (size_t i = 0; i < sizeof tasks / sizeof tasks[0]; i++) {
		if (tasks[i].task != t)
			continue;
		for (size_t k = 0; tasks[i].roles[k]; k++)
			if (!strcmp(ms->role, tasks[i].roles[k]))
				return 0;
		srv_reply_error(r, 400, "model '%s' has role %s; %s (%s) needs a model with role %s", ms->name,
				ms->role, r->url, tasks[i].name, tasks[i].roles[0]);
		return -1;
	}
	return 0;
}

/* ---- messages ---- */

/* Message content: a string, or an array of {type:"text", text} parts
 * (joined; the joined string is kept alive by the request object). */
static int message_content(struct srv_req *r, struct srv_gen *g, size_t idx, json_t *c, const char **out)
{
	size_t i, total = 0;
	json_t *p, *s;
	char *buf, key[48];

	if (!c || json_is_null(c)) {
		*out = "";
		return 0;
	}
	if (json_is_string(c)) {
		*out = json_string_value(c);
		return 0;
	}
	if (!json_is_array(c)) {
		srv_reply_error(r, 400, "messages[%zu].content must be a string or an array of text parts", idx);
		return -1;
	}
	json_array_foreach(c, i, p) {
		json_t *t = json_object_get(p, "text"), *ty = json_object_get(p, "type");
		if (!json_is_object(p) || !json_is_string(ty) || strcmp(json_string_value(ty), "text") ||
		    !json_is_string(t)) {
			srv_reply_error(r, 400, "messages[%zu].content[%zu]: only {\"type\":\"text\",\"text\":...} "
					"parts are supported", idx, i);
			return -1;
		}
		total += json_string_length(t);
	}
	if (!(buf = malloc(total + 1))) {
		srv_reply_error(r, 500, "out of memory");
		return -1;
	}
	total = 0;
	json_array_foreach(c, i, p) {
		json_t *t = json_object_get(p, "text");
		memcpy(buf + total, json_string_value(t), json_string_length(t));
		total += json_string_length(t);
	}
	buf[total] = '\0';
	s = json_stringn_nocheck(buf, total);
	free(buf);
	snprintf(key, sizeof key, "__joined%zu", idx);
	if (!s || json_object_set_new(g->req, key, s)) {
		srv_reply_error(r, 500, "out of memory");
		return -1;
	}
	*out = json_string_value(json_object_get(g->req, key));
	return 0;
}

int srv_req_messages(struct srv_req *r, struct srv_gen *g, json_t *msgs)
{
	size_t i;
	json_t *m;

	if (!json_is_array(msgs)) {
		srv_reply_error(r, 400, "'messages' must be an array");
		return -1;
	}
	if (!(g->msgs = calloc(json_array_size(msgs) + 1, sizeof *g->msgs))) {
		srv_reply_error(r, 500, "out of memory");
		return -1;
	}
	json_array_foreach(msgs, i, m) {
		json_t *rv = json_object_get(m, "role");
		const char *role;
		if (!json_is_object(m) || !json_is_string(rv)) {
			srv_reply_error(r, 400, "messages[%zu] must be an object with a string 'role'", i);
			return -1;
		}
		role = json_string_value(rv);
		if (!strcmp(role, "developer")) /* OpenAI's newer name for system */
			role = "system";
		if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant")) {
			srv_reply_error(r, 400, "messages[%zu].role '%s' is not system, user or assistant", i, role);
			return -1;
		}
		if (!harmless_empty_array(json_object_get(m, "images") ? json_object_get(m, "images") : json_null())) {
			srv_reply_error(r, 400, "messages[%zu].images: images are not supported", i);
			return -1;
		}
		if (!harmless_empty_array(json_object_get(m, "tool_calls") ? json_object_get(m, "tool_calls")
									 : json_null())) {
			srv_reply_error(r, 400, "messages[%zu].tool_calls: tool calling is not supported", i);
			return -1;
		}
		g->msgs[i].role = role;
		if (message_content(r, g, i, json_object_get(m, "content"), &g->msgs[i].content))
			return -1;
	}
	g->n_msgs = json_array_size(msgs);
	g->o.messages = g->msgs;
	g->o.n_messages = g->n_msgs;
	g->prompt = "";
	return 0;
}

/* ---- sampling ---- */

int srv_gen_stop(struct srv_req *r, struct srv_gen *g, json_t *v)
{
	size_t n = 0;
	if (!v || json_is_null(v))
		return 0;
	if (json_is_string(v)) {
		g->o.stop[n++] = json_string_value(v);
	} else if (json_is_array(v)) {
		size_t i;
		json_t *x;
		if (json_array_size(v) > SRV_MAX_STOP) {
			srv_reply_error(r, 400, "'stop' has %zu entries; at most %d are allowed",
					json_array_size(v), SRV_MAX_STOP);
			return -1;
		}
		json_array_foreach(v, i, x) {
			if (!json_is_string(x)) {
				srv_reply_error(r, 400, "'stop' must be a string or an array of strings");
				return -1;
			}
			if (json_string_length(x))
				g->o.stop[n++] = json_string_value(x);
		}
	} else {
		srv_reply_error(r, 400, "'stop' must be a string or an array of strings");
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if (!*g->o.stop[i]) {
			srv_reply_error(r, 400, "'stop' strings must not be empty");
			return -1;
		}
	return 0;
}

enum sfield_kind { SF_FLOAT, SF_INT, SF_SEED };

/* The sampling options, one range each whichever API sends them. */
static const struct {
	const char *key;
	enum sfield_kind kind;
	double lo, hi;
	size_t off; /* in struct dormant_gen_opts */
} sampling[] = {
	{ "temperature", SF_FLOAT, 0, 100, offsetof(struct dormant_gen_opts, temperature) },
	{ "top_p", SF_FLOAT, 0, 1, offsetof(struct dormant_gen_opts, top_p) },
	{ "min_p", SF_FLOAT, 0, 1, offsetof(struct dormant_gen_opts, min_p) },
	{ "top_k", SF_INT, 0, 1 << 20, offsetof(struct dormant_gen_opts, top_k) },
	{ "repeat_penalty", SF_FLOAT, 0, 100, offsetof(struct dormant_gen_opts, repeat_penalty) },
	{ "frequency_penalty", SF_FLOAT, -100, 100, offsetof(struct dormant_gen_opts, frequency_penalty) },
	{ "presence_penalty", SF_FLOAT, -100, 100, offsetof(struct dormant_gen_opts, presence_penalty) },
	{ "seed", SF_SEED, 0, 0, offsetof(struct dormant_gen_opts, seed) },
};

int srv_req_sampling(struct srv_req *r, struct srv_gen *g, json_t *o)
{
	char *base = (char *)&g->o;
	bool has;
	int64_t n;

	for (size_t i = 0; i < sizeof sampling / sizeof sampling[0]; i++) {
		const char *k = sampling[i].key;
		void *dst = base + sampling[i].off;
		switch (sampling[i].kind) {
		case SF_FLOAT:
			if (srv_get_float(r, o, k, sampling[i].lo, sampling[i].hi, dst))
				return -1;
			break;
		case SF_INT:
			if (srv_get_int(r, o, k, (int64_t)sampling[i].lo, (int64_t)sampling[i].hi, &has, &n))
				return -1;
			if (has)
				*(int *)dst = (int)n;
			break;
		case SF_SEED:
			if (srv_get_int(r, o, k, INT64_MIN, INT64_MAX, &has, &n))
				return -1;
			if (has)
				*(uint64_t *)dst = (uint64_t)n;
			break;
		}
	}
	/* the token limit: OpenAI's names, or Ollama's num_predict (-1: no
	 * limit, -2: fill the context; both mean the server's maximum) */
	if (g->api == SRV_API_OPENAI) {
		if (srv_get_int(r, o, "max_tokens", 1, 1 << 30, &has, &n))
			return -1;
		if (has)
			g->o.max_tokens = (int)n;
		if (srv_get_int(r, o, "max_completion_tokens", 1, 1 << 30, &has, &n))
			return -1;
		if (has)
			g->o.max_tokens = (int)n;
		/* a dormant extension: the request's context, as Ollama's num_ctx */
		if (srv_get_int(r, o, "num_ctx", 1, 1 << 24, &has, &n))
			return -1;
		if (has)
			g->o.num_ctx = (int)n;
	} else {
		if (srv_get_int(r, o, "num_predict", -2, 1 << 30, &has, &n))
			return -1;
		if (has && n == 0) {
			srv_reply_error(r, 400, "'num_predict' must be positive, -1 (no limit) or -2 (fill context)");
			return -1;
		}
		if (has)
			g->o.max_tokens = n < 0 ? (int)r->s->cfg.max_tokens : (int)n;
		/* the request's context, up to the loaded model's: never a reload */
		if (srv_get_int(r, o, "num_ctx", 1, 1 << 24, &has, &n))
			return -1;
		if (has)
			g->o.num_ctx = (int)n;
	}
	return srv_gen_stop(r, g, json_object_get(o, "stop"));
}

int srv_req_keep_alive(struct srv_req *r, struct srv_gen *g, json_t *b)
{
	json_t *v = json_object_get(b, "keep_alive");
	char why[DM_ERR_MSG_MAX];
	int64_t ms;

	if (!v || json_is_null(v))
		return 0;
	if (srv_parse_keep_alive(v, &ms, why, sizeof why)) {
		srv_reply_error(r, 400, "%s", why);
		return -1;
	}
	g->o.has_keep_alive = 1;
	g->o.keep_alive_ms = ms;
	return 0;
}

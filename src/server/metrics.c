/* server/metrics — GET /metrics (Prometheus text format 0.0.4) and GET
 * /health. */
#include "server/srv_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "mgr/api.h"

struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;
	for (;;) {
		size_t room = b->cap - b->len;
		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if (b->p && (size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		{
			size_t cap = b->cap ? b->cap * 2 : 8192;
			char *np;
			while (cap < b->len + (size_t)n + 1)
				cap *= 2;
			if (!(np = realloc(b->p, cap))) {
				b->oom = true;
				return;
			}
			b->p = np;
			b->cap = cap;
		}
	}
}

/* A label value with \, " and newline escaped (names come from config). */
static const char *esc(const char *s, char *out, size_t cap)
{
	size_t n = 0;
	for (; *s && n + 3 < cap; s++) {
		if (*s == '\\' || *s == '"') {
			out[n++] = '\\';
			out[n++] = *s;
		} else if (*s == '\n') {
			out[n++] = '\\';
			out[n++] = 'n';
		} else {
			out[n++] = *s;
		}
	}
	out[n] = '\0';
	return out;
}

static void family(struct buf *b, const char *name, const char *type, const char *help)
{
	put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int srv_metrics(struct srv_req *r)
{
	struct srv *s = r->s;
	struct dormant_model_status *st = calloc(SRV_MAX_MODELS, sizeof *st);
	struct srv_model_stats ms[SRV_MAX_MODELS];
	struct srv_req_count rq[128];
	struct dm_mem_usage mu = { 0 };
	size_t n, n_ms, n_rq;
	struct buf b = { 0 };
	char e[200];
	int conns;
	uint64_t busy, cancelled;
	int rc;

	if (!st)
		return srv_reply_error(r, 500, "out of memory");
	n = dormant_status(s->d, st, SRV_MAX_MODELS);
	if (n > SRV_MAX_MODELS)
		n = SRV_MAX_MODELS;
	dm_mem_usage(&mu);
	pthread_mutex_lock(&s->mu);
	n_ms = s->n_models;
	memcpy(ms, s->models, n_ms * sizeof ms[0]);
	n_rq = s->n_reqs;
	memcpy(rq, s->reqs, n_rq * sizeof rq[0]);
	conns = s->n_conns;
	busy = s->n_rejected_busy;
	cancelled = s->n_cancelled;
	pthread_mutex_unlock(&s->mu);

	family(&b, "dormant_build_info", "gauge", "Version of the running dormant.");
	put(&b, "dormant_build_info{version=\"%s\"} 1\n", dormant_version());
	family(&b, "dormant_start_time_seconds", "gauge", "Unix time the server started.");
	put(&b, "dormant_start_time_seconds %.3f\n", s->t_start);
	family(&b, "dormant_process_resident_memory_bytes", "gauge",
	       "Resident memory of the server process (VmRSS), and its anonymous and file-backed parts.");
	put(&b, "dormant_process_resident_memory_bytes{kind=\"total\"} %llu\n", (unsigned long long)mu.rss);
	put(&b, "dormant_process_resident_memory_bytes{kind=\"anon\"} %llu\n", (unsigned long long)mu.rss_anon);
	put(&b, "dormant_process_resident_memory_bytes{kind=\"file\"} %llu\n", (unsigned long long)mu.rss_file);
	family(&b, "dormant_http_connections", "gauge", "HTTP connections open now.");
	put(&b, "dormant_http_connections %d\n", conns);
	family(&b, "dormant_http_requests_total", "counter", "HTTP requests answered, by path, method and status.");
	for (size_t i = 0; i < n_rq; i++)
		put(&b, "dormant_http_requests_total{path=\"%s\",method=\"%s\",code=\"%u\"} %llu\n",
		    esc(rq[i].path, e, sizeof e), rq[i].method, rq[i].status, (unsigned long long)rq[i].n);
	family(&b, "dormant_http_rejected_busy_total", "counter",
	       "Requests answered 503 because a model's queue was full.");
	put(&b, "dormant_http_rejected_busy_total %llu\n", (unsigned long long)busy);
	family(&b, "dormant_generations_cancelled_total", "counter",
	       "Generations stopped because their client went away.");
	put(&b, "dormant_generations_cancelled_total %llu\n", (unsigned long long)cancelled);

	family(&b, "dormant_model_requests_total", "counter", "Generation and embedding requests per model.");
	for (size_t i = 0; i < n_ms; i++)
		put(&b, "dormant_model_requests_total{model=\"%s\"} %llu\n", esc(ms[i].name, e, sizeof e),
		    (unsigned long long)ms[i].requests);
	family(&b, "dormant_model_request_errors_total", "counter", "Requests per model that ended in an error.");
	for (size_t i = 0; i < n_ms; i++)
		put(&b, "dormant_model_request_errors_total{model=\"%s\"} %llu\n", esc(ms[i].name, e, sizeof e),
		    (unsigned long long)ms[i].errors);
	family(&b, "dormant_prompt_tokens_total", "counter", "Prompt tokens processed per model.");
	for (size_t i = 0; i < n_ms; i++)
		put(&b, "dormant_prompt_tokens_total{model=\"%s\"} %llu\n", esc(ms[i].name, e, sizeof e),
		    (unsigned long long)ms[i].prompt_tokens);
	family(&b, "dormant_generated_tokens_total", "counter", "Tokens generated per model.");
	for (size_t i = 0; i < n_ms; i++)
		put(&b, "dormant_generated_tokens_total{model=\"%s\"} %llu\n", esc(ms[i].name, e, sizeof e),
		    (unsigned long long)ms[i].gen_tokens);

	family(&b, "dormant_time_to_first_token_seconds", "summary",
	       "Time from a request to its first token; start=cold when the request loaded the model.");
	for (size_t i = 0; i < n; i++) {
		esc(st[i].name, e, sizeof e);
		put(&b, "dormant_time_to_first_token_seconds_sum{model=\"%s\",start=\"cold\"} %.6f\n", e,
		    st[i].ttft_cold_s);
		put(&b, "dormant_time_to_first_token_seconds_count{model=\"%s\",start=\"cold\"} %llu\n", e,
		    (unsigned long long)st[i].n_cold);
		put(&b, "dormant_time_to_first_token_seconds_sum{model=\"%s\",start=\"warm\"} %.6f\n", e,
		    st[i].ttft_warm_s);
		put(&b, "dormant_time_to_first_token_seconds_count{model=\"%s\",start=\"warm\"} %llu\n", e,
		    (unsigned long long)st[i].n_warm);
	}
#define PER_MODEL(m_name, m_type, m_help, m_fmt, m_expr)                               \
	family(&b, m_name, m_type, m_help);                                            \
	for (size_t i = 0; i < n; i++)                                                 \
		put(&b, m_name "{model=\"%s\"} " m_fmt "\n", esc(st[i].name, e, sizeof e), m_expr)
	PER_MODEL("dormant_model_loads_total", "counter", "Completed loads per model.", "%llu",
		  (unsigned long long)st[i].load_count);
	PER_MODEL("dormant_model_load_seconds_total", "counter", "Time spent loading per model.", "%.6f",
		  st[i].load_s_total);
	PER_MODEL("dormant_model_last_load_seconds", "gauge", "Duration of the latest load.", "%.6f",
		  st[i].last_load_s);
	PER_MODEL("dormant_model_unloads_total", "counter", "Unloads per model (evictions included).", "%llu",
		  (unsigned long long)st[i].unload_count);
	PER_MODEL("dormant_model_unload_seconds_total", "counter", "Time spent unloading per model.", "%.6f",
		  st[i].unload_s_total);
	PER_MODEL("dormant_model_evictions_total", "counter", "Unloads to make room for another model.", "%llu",
		  (unsigned long long)st[i].evict_count);
	PER_MODEL("dormant_model_resident_bytes", "gauge", "Memory a loaded model holds (0 when dormant).",
		  "%llu", (unsigned long long)st[i].bytes);
	PER_MODEL("dormant_model_estimated_bytes", "gauge", "The manager's estimate of a model's cost.", "%llu",
		  (unsigned long long)st[i].est_bytes);
	PER_MODEL("dormant_model_queue_depth", "gauge", "Requests waiting for the model.", "%u",
		  st[i].queued);
	PER_MODEL("dormant_model_in_use", "gauge", "1 while a request holds the model.", "%d",
		  st[i].in_use ? 1 : 0);
	PER_MODEL("dormant_encode_batches_total", "counter",
		  "Batches of embedding or rerank requests run per model (one encode call each).", "%llu",
		  (unsigned long long)st[i].encode_batches);
	PER_MODEL("dormant_encode_requests_total", "counter",
		  "Embedding and rerank requests those batches answered.", "%llu",
		  (unsigned long long)st[i].encode_requests);
	PER_MODEL("dormant_encode_waiting", "gauge", "Embedding and rerank requests waiting for a batch.", "%u",
		  st[i].encode_waiting);
#undef PER_MODEL
	family(&b, "dormant_model_state", "gauge", "1 for the state each model is in.");
	for (size_t i = 0; i < n; i++) {
		static const char *states[] = { "dormant", "loading", "ready", "unloading", "failed" };
		esc(st[i].name, e, sizeof e);
		for (size_t k = 0; k < 5; k++)
			put(&b, "dormant_model_state{model=\"%s\",state=\"%s\"} %d\n", e, states[k],
			    !strcmp(st[i].state, states[k]));
	}
	free(st);
	if (b.oom) {
		free(b.p);
		return srv_reply_error(r, 500, "out of memory");
	}
	rc = srv_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
	free(b.p);
	return rc;
}

int srv_health(struct srv_req *r)
{
	struct srv *s = r->s;
	struct dormant_model_status *st = calloc(SRV_MAX_MODELS, sizeof *st);
	struct dm_mem_usage mu = { 0 };
	json_t *models;
	size_t n;

	if (!st)
		return srv_reply_error(r, 500, "out of memory");
	n = dormant_status(s->d, st, SRV_MAX_MODELS);
	dm_mem_usage(&mu);
	models = json_array();
	for (size_t i = 0; i < n && i < SRV_MAX_MODELS; i++) {
		json_t *m = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:b,s:i,s:I,s:I,s:I,s:{s:I,s:I},s:I,s:I,s:f}",
				      "name", st[i].name, "state", st[i].state, "role", st[i].role, "policy",
				      st[i].policy, "mode", st[i].mode, "keep_alive_ms",
				      (json_int_t)st[i].keep_alive_ms, "in_use", st[i].in_use, "queued",
				      (int)st[i].queued, "bytes", (json_int_t)st[i].bytes, "est_bytes",
				      (json_int_t)st[i].est_bytes, "expires_in_ms", (json_int_t)st[i].expires_in_ms,
				      "progress", "done", (json_int_t)st[i].progress_done, "total",
				      (json_int_t)st[i].progress_total, "load_count", (json_int_t)st[i].load_count,
				      "unload_count", (json_int_t)st[i].unload_count, "last_load_s",
				      st[i].last_load_s);
		if (m && st[i].last_error[0])
			json_object_set_new(m, "last_error", json_string(st[i].last_error));
		if (m)
			json_array_append_new(models, m);
	}
	free(st);
	return srv_reply_json(r, 200, json_pack("{s:s,s:s,s:f,s:I,s:o}", "status", "ok", "version",
						dormant_version(), "uptime_s", srv_unix_now() - s->t_start,
						"rss_bytes", (json_int_t)mu.rss, "models", models));
}

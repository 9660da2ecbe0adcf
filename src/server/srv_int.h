/*
 * server internals shared by server.c (HTTP plumbing), front.c, req.c,
 * openai.c, ollama.c, gen.c, rag.c, disc.c, dash.c, events.c, metrics.c and
 * util.c.
 * Not installed, not for the CLI.
 */
#ifndef DM_SERVER_INT_H
#define DM_SERVER_INT_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "server/server.h"

#define SRV_MAX_MODELS 64
/* longest request head (request line + headers) the front accepts: 414 or
 * 431 above; libmicrohttpd's per-connection memory (64 KiB) holds it */
#define SRV_HEAD_MAX (16 * 1024)
/* srv_stop lets running requests send their last (error) object for up
 * to this long after cancelling them (a stream reader gives up after it,
 * srv_stop stops waiting half as long again later) */
#define SRV_STOP_GRACE_MS 1000

/* Which API a path belongs to: decides the shape of error bodies. */
enum srv_api { SRV_API_OPENAI, SRV_API_OLLAMA };

/* Per-model counters the server keeps itself (the runtime keeps the rest). */
struct srv_model_stats {
	char name[64];
	uint64_t requests, prompt_tokens, gen_tokens;
	uint64_t errors;
};

/* Requests counted by endpoint and status. */
struct srv_req_count {
	char path[32];
	char method[8];
	unsigned status;
	uint64_t n;
};

struct srv {
	dormant *d;
	struct srv_cfg cfg;
	struct MHD_Daemon *mhd;
	struct srv_front *front;     /* listener and head wait (front.c) */
	uint16_t port;
	double t_start;
	pthread_mutex_t mu;          /* guards everything below */
	pthread_cond_t cv;
	int n_jobs;                  /* stream threads alive */
	bool stopping;
	int n_conns;                 /* connections open */
	int n_active;                /* requests between their head and their end (streams too) */
	struct srv_gen *live;        /* generation jobs running (srv_stop cancels them) */
	uint64_t n_rejected_busy;    /* 503s for a full queue */
	uint64_t n_cancelled;        /* generations cancelled (client gone or server stopping) */
	struct srv_model_stats models[SRV_MAX_MODELS];
	size_t n_models;
	struct srv_req_count reqs[128];
	size_t n_reqs;
	struct srv_hub *hub;         /* events for /api/events (events.h, dash.c) */
};

/* One HTTP request (MHD's per-connection request context). */
struct srv_req {
	struct srv *s;
	struct MHD_Connection *c;
	const char *method, *url;    /* MHD's, valid for the request */
	enum srv_api api;
	char *body;
	size_t len, cap;
	bool too_big;
	bool answered;
	unsigned status;             /* what was queued, for the log and metrics */
	int fd;                      /* the client's socket (disconnect checks) */
	double t0;
};

/* ---- the front (front.c): listener, per-address limits, head wait ----
 * srv_front_start binds cfg.host:cfg.port (sets s->port) and starts its
 * thread, which hands each connection whose request head is complete to
 * s->mhd.  srv_front_stop stops accepting and closes waiting connections;
 * srv_front_free (after libmicrohttpd has stopped) frees the rest. */
int srv_front_start(struct srv *s, struct dm_err *err);
void srv_front_stop(struct srv *s);
void srv_front_free(struct srv *s);
/* A connection from sa's address (handed to libmicrohttpd) closed. */
void srv_front_release(struct srv *s, const struct sockaddr *sa);

/* The body of an error in an API's shape (malloc'd, NULL if out of memory). */
char *srv_error_body(enum srv_api api, unsigned status, const char *msg);

/* ---- replies (server.c); each queues exactly one response ---- */
int srv_reply(struct srv_req *r, unsigned status, const char *ctype, const char *body, size_t n);
/* srv_reply of a body that lives for the program (not copied), with extra
 * headers: hdrs holds name, value pairs and ends with NULL. */
int srv_reply_static(struct srv_req *r, unsigned status, const char *ctype, const void *body,
		     size_t n, const char *const *hdrs);
/* Serialises and frees body. */
int srv_reply_json(struct srv_req *r, unsigned status, json_t *body);
/* An error in the request's API shape: OpenAI {"error":{"message",...}} or
 * Ollama {"error":"..."}. */
int srv_reply_error(struct srv_req *r, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* HTTP status for a runtime error code. */
unsigned srv_status_for(int code);
/* srv_reply_error with the status for code (503 + Retry-After for busy). */
int srv_reply_rc(struct srv_req *r, int code, const char *msg);

/* The request body as a JSON object, or NULL after replying 400. */
json_t *srv_body_json(struct srv_req *r);

/* True when the client closed its end of the connection. */
bool srv_client_gone(int fd);

/* The socket watcher of a non-streamed request (gen.c): while the
 * connection's thread waits for a model, loads, generates or encodes, a
 * thread of its own polls the client's socket every 50 ms and sets *cancel
 * when the client hangs up (a streamed request's reader does the same).
 * Without a thread to spare (or fd < 0) it watches nothing. */
struct srv_watch {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done, started;
	int fd;
	atomic_int *cancel;
	pthread_t th;
};
void srv_watch_start(struct srv_watch *w, int fd, atomic_int *cancel);
void srv_watch_stop(struct srv_watch *w);

/* ---- streams (server.c) ----
 * A streamed response: a producer thread writes bytes, libmicrohttpd's
 * reader callback sends them.  While nothing arrives the reader polls:
 * it calls idle() (progress events, keep-alive comments) and watches the
 * client's socket; a gone client sets cancel. */
struct srv_stream;
typedef void (*srv_job_fn)(struct srv_stream *st, void *job);
typedef void (*srv_idle_fn)(struct srv_stream *st, void *job);

/* Starts the producer thread running fn(st, job) and answers 200 with
 * ctype; free_job(job) runs when both sides are done.  When memory or the
 * thread cannot be had, replies 500 instead and frees job. */
int srv_stream_start(struct srv_req *r, const char *ctype, srv_job_fn fn, srv_idle_fn idle,
		     void (*free_job)(void *job), void *job);
/* Appends bytes for the client; -1 when the client is gone. */
int srv_stream_write(struct srv_stream *st, const char *data, size_t n);
/* Writes json followed by "\n" (NDJSON) or as "data: ...\n\n" (SSE). */
int srv_stream_ndjson(struct srv_stream *st, json_t *obj); /* frees obj */
int srv_stream_sse(struct srv_stream *st, const char *event, json_t *obj); /* frees obj */
/* Bytes written and not yet sent to the client (a producer that must not
 * outrun a slow reader waits while this is large). */
size_t srv_stream_pending(struct srv_stream *st);
/* The cancel flag the producer hands to the runtime. */
atomic_int *srv_stream_cancel(struct srv_stream *st);
struct srv *srv_stream_server(struct srv_stream *st);

/* ---- shared helpers (util.c) ---- */
double srv_now(void);
/* RFC 3339 UTC time with nanoseconds ("2026-11-22T10:00:00.123456789Z"). */
void srv_time_rfc3339(char *buf, size_t cap, double unix_s);
double srv_unix_now(void);
/* keep_alive: a number of seconds or a duration ("5m", "1h30m", "-1") in
 * the config file's grammar (base/dur.h); negative means forever (-1 out).
 * 0, or -1 with the reason in why. */
int srv_parse_keep_alive(const json_t *v, int64_t *ms, char *why, size_t cap);
/* A random hex id with prefix ("chatcmpl-..."). */
void srv_make_id(char *buf, size_t cap, const char *prefix);
/* Finds a registered model (any number of them); fills st (may be NULL).
 * false if unknown or out of memory. */
bool srv_model_find(struct srv *s, const char *name, struct dormant_model_status *st);
/* Counters. */
void srv_count_tokens(struct srv *s, const char *model, int prompt, int gen, bool error);
/* GGUF details of a model's file for /api/show and /api/tags: details
 * object and, with info, model_info (all scalar metadata) and template. */
json_t *srv_model_details(const char *path, json_t **model_info, char **chat_template,
			  uint64_t *file_size, double *mtime);
/* JSON helpers that reply 400 themselves and return -1 on a bad field. */
int srv_get_string(struct srv_req *r, json_t *o, const char *key, bool required, const char **out);
int srv_get_number(struct srv_req *r, json_t *o, const char *key, double lo, double hi, bool *has,
		   double *out);
int srv_get_int(struct srv_req *r, json_t *o, const char *key, int64_t lo, int64_t hi, bool *has,
		int64_t *out);
int srv_get_bool(struct srv_req *r, json_t *o, const char *key, bool *out);
/* An optional number in [lo, hi] stored into *dst when present. */
int srv_get_float(struct srv_req *r, json_t *o, const char *key, double lo, double hi, float *dst);

/* ---- generation requests (gen.c), shared by both APIs ----
 * A handler parses its request into a srv_gen (strings borrowed from
 * req, which the job keeps alive), then hands it to srv_gen_run, which
 * either runs it on the connection's thread and answers with fmt->full,
 * or streams it through fmt->stream_*. */
struct srv_gen;
struct srv_gen_fmt {
	const char *ctype;                                      /* of a stream */
	int (*stream_text)(struct srv_gen *g, const char *t, size_t n); /* -1: stop */
	void (*stream_end)(struct srv_gen *g);                  /* last events, errors too */
	void (*progress)(struct srv_gen *g, const struct dormant_model_status *ms);
	json_t *(*full)(struct srv_gen *g);                     /* non-streamed body */
};

#define SRV_MAX_STOP 4

struct srv_gen {
	struct srv *s;
	const struct srv_gen_fmt *fmt;
	enum srv_api api;
	bool chat;                   /* chat endpoint (messages) vs completion */
	json_t *req;                 /* owns the strings below */
	char model[64];
	const char *prompt;
	struct dormant_msg *msgs;
	size_t n_msgs;
	struct dormant_gen_opts o;
	bool stream, include_usage, progress_events;
	/* results */
	char *text;
	size_t len, cap;
	struct dormant_gen_result res;
	int rc;
	char err[256];
	atomic_int cancel;           /* set when the client hangs up (sync path) */
	int fd;
	int n_since_check;
	struct srv_stream *st;
	struct srv_gen *live_prev, *live_next; /* in s->live, under s->mu */
	char id[48];
	double created;              /* unix time */
	double t0;                   /* monotonic, request start */
	uint64_t total_ns;
};

/* A new job with defaults: max_tokens 128, sampling unset (-1: the model's
 * or the runtime's defaults), a per-request seed, truncation on for the
 * Ollama API only; NULL when out of memory. */
struct srv_gen *srv_gen_new(struct srv_req *r, json_t *req, const struct srv_gen_fmt *fmt);
void srv_gen_free(void *g);
/* Checks the model exists and can take the request (404 / 400 / 503), then
 * runs or streams it.  Takes ownership of g. */
int srv_gen_run(struct srv_req *r, struct srv_gen *g);

/* ---- the request fields both APIs share (req.c): each replies 400/404
 * itself and returns -1 on a bad field ---- */
/* "model": required, at most cap - 1 bytes (a longer name is not found,
 * never truncated into another model's name). */
int srv_req_model(struct srv_req *r, json_t *b, char *out, size_t cap);
/* 400 naming the first field of b dormant does not implement (tools,
 * tool_choice, response_format, format, logprobs, images, suffix, ...),
 * unless its value asks for nothing (tools: [], logprobs: false). */
int srv_req_refused(struct srv_req *r, json_t *b);
/* A conversation: roles system/user/assistant (developer = system),
 * content a string or text parts; into g->msgs and g->o. */
int srv_req_messages(struct srv_req *r, struct srv_gen *g, json_t *msgs);
/* Sampling options of o (the body for OpenAI, "options" for Ollama): one
 * table of names and ranges, the token limit by the API's name, stop. */
int srv_req_sampling(struct srv_req *r, struct srv_gen *g, json_t *o);
/* A stop field (string or array of at most SRV_MAX_STOP strings). */
int srv_gen_stop(struct srv_req *r, struct srv_gen *g, json_t *v);
/* keep_alive of b into g->o (the config file's duration grammar). */
int srv_req_keep_alive(struct srv_req *r, struct srv_gen *g, json_t *b);
/* What a request asks a model to do; which roles may is a table. */
enum srv_task { SRV_TASK_GENERATE, SRV_TASK_EMBED };
/* 400 naming the model's role when it may not serve task t. */
int srv_req_role(struct srv_req *r, const struct dormant_model_status *ms, enum srv_task t);

/* ---- handlers ---- */
int srv_openai(struct srv_req *r);   /* /v1/... */
int srv_ollama(struct srv_req *r);   /* /api/... */
int srv_metrics(struct srv_req *r);  /* GET /metrics */
int srv_health(struct srv_req *r);   /* GET /health */
int srv_rerank(struct srv_req *r);   /* POST /v1/rerank, /rerank, /v1/reranking, /api/rerank */

/* ---- embeddings (rag.c), shared by both APIs ---- */
/* Reads the optional `truncate` (bool, default true) and `dimensions`
 * fields of body b into o; replies 400 and returns -1 on a bad value. */
int srv_embed_opts(struct srv_req *r, json_t *b, struct dormant_embed_opts *o);
/* Embeds the strings of the array in (already checked) as one batch:
 * *vecs (malloc'ed, n × *dim floats; the caller frees) and info; counts the
 * tokens.  On error replies (400 for a role or truncate refusal) and
 * returns -1. */
int srv_embed_run(struct srv_req *r, const char *model, json_t *in, const struct dormant_embed_opts *o,
		  float **vecs, size_t *dim, struct dormant_embed_info *info);
int srv_rescan(struct srv_req *r);   /* POST /api/rescan (disc.c) */
int srv_reload(struct srv_req *r);   /* POST /api/reload (disc.c) */
/* Where a registered model came from, added to its listing entry:
 * "source" ("config", or discovery's "dir", "ollama", "hf", "lmstudio")
 * and, for a discovered one, origin, architecture, quantization,
 * parameter_count, context_length (disc.c). */
void srv_disc_annotate(struct srv *s, const char *name, json_t *entry);
/* Appends the discovered files that cannot be used, with their "error",
 * in the API's listing shape. */
void srv_disc_broken(struct srv *s, json_t *list, enum srv_api api);

#endif

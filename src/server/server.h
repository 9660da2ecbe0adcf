/*
 * server — `dormant serve`: an HTTP server (a front thread that accepts and
 * waits for each request head, then libmicrohttpd with one thread per
 * connection; see front.c) speaking the OpenAI and Ollama APIs on top of a runtime
 * (include/dormant.h), plus lifecycle endpoints, /health and /metrics.
 *
 * Endpoints (docs/api.md lists each with its fields):
 *   OpenAI   POST /v1/chat/completions, /v1/completions, /v1/embeddings;
 *            GET /v1/models, /v1/models/{id}
 *   rerank   POST /v1/rerank, /rerank, /v1/reranking, /api/rerank (rag.c)
 *   Ollama   POST /api/generate, /api/chat, /api/embed, /api/embeddings,
 *            /api/show; GET /api/tags, /api/ps, /api/version
 *   dormant  POST /api/load (progress as NDJSON or SSE), /api/unload,
 *            /api/rescan (model discovery again, mgr/discover.h),
 *            /api/reload (the configuration again, then a rescan);
 *            GET /health (no key needed), /metrics (Prometheus text),
 *            /api/events (Server-Sent Events: events.h)
 *   page     GET /, /dash.js, /dash.css: the dashboard (dash.h; no data in
 *            these files, so no key needed: the page asks for it)
 *
 * Invariants:
 *   - the server never opens a path a request names: models are the
 *     runtime's registry, looked up by name;
 *   - every request body is bounded (max_body), parsed as strict JSON
 *     (UTF-8, no NUL, no duplicate keys) and validated before any work
 *     starts; a bad request is a 4xx with a one-line message and never
 *     affects other connections;
 *   - a streamed generation runs in its own thread and is cancelled when
 *     its client goes away; srv_stop waits for every such thread.
 * The server owns nothing of the runtime: the caller opens the runtime
 * before srv_start and closes it after srv_stop.
 */
#ifndef DM_SERVER_H
#define DM_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "dormant.h"

struct srv_cfg {
	char host[64];             /* address to listen on ("127.0.0.1", "::1", "0.0.0.0") */
	uint16_t port;             /* 0: any free port (see srv_port) */
	char api_key[128];         /* "": no key */
	uint64_t max_body;         /* bytes */
	uint32_t max_connections;
	int64_t timeout_ms;        /* idle connection timeout */
	uint32_t max_conns_per_ip; /* connections one client address may hold (waiting or served) */
	int64_t head_timeout_ms;   /* a new connection's time to send its request head (408 after) */
	uint32_t max_tokens;       /* cap on a request's token limit */
	/* one line per request ("POST /api/chat 200 0.412 s"); NULL: silent */
	void (*log)(void *ud, const char *line);
	void *log_ud;
};

/* Defaults from the runtime's configuration ([server] host, port, ...). */
void srv_cfg_from_runtime(struct srv_cfg *c, const dormant *d);

struct srv;

/* Starts listening; returns once the socket accepts connections.
 * DM_EIO with the reason when the address cannot be bound ("HOST:PORT is
 * already in use" for a busy port: the socket never shares it). */
int srv_start(struct srv **out, dormant *d, const struct srv_cfg *cfg, struct dm_err *err);
/* The port actually bound (useful with port 0). */
uint16_t srv_port(const struct srv *s);
/* Stops accepting and cancels every generation (completions and chats of
 * both APIs, in the queue, while their model loads, or between tokens);
 * open answers get about 1.5 s to end with an error object, then their
 * connections are shut.  Not cancelled, and waited for to their end: explicit
 * loads and unloads (POST /api/load, /api/unload, and an Ollama generate or
 * chat with an empty prompt) and embed and rerank requests.  Then waits for
 * every stream thread and frees.  NULL is a no-op. */
void srv_stop(struct srv *s);

#endif

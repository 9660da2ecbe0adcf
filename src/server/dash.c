/* server/dash — the dashboard's files and the /api/events stream.  See
 * dash.h; the hub itself is events.c. */
#include "server/dash.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mgr/api.h"
#include "server/events.h"
#include "server/srv_int.h"

/* Nothing but this origin's own files: no inline script or style (model
 * output the page shows can never run), no other hosts, no framing. */
#define DASH_CSP                                                                              \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "      \
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/* An events client that has this much unsent is slow: the stream stops
 * taking events from the hub until it drains (and drops what it missed). */
#define DASH_PENDING_MAX (256 * 1024)
/* A comment line this often keeps proxies and idle timeouts quiet. */
#define DASH_KEEPALIVE_S 15.0

bool srv_dash_is_asset(const char *url)
{
	for (const struct srv_asset *a = srv_dash_assets; a->path; a++)
		if (!strcmp(a->path, url))
			return true;
	return false;
}

int srv_dash_asset(struct srv_req *r)
{
	static const char *const hdrs[] = {
		"Content-Security-Policy", DASH_CSP, "X-Content-Type-Options", "nosniff",
		"Referrer-Policy", "no-referrer", "Cache-Control", "no-cache", NULL,
	};
	if (strcmp(r->method, "GET") && strcmp(r->method, "HEAD"))
		return srv_reply_error(r, 405, "method %s not allowed on %s", r->method, r->url);
	for (const struct srv_asset *a = srv_dash_assets; a->path; a++)
		if (!strcmp(a->path, r->url))
			return srv_reply_static(r, 200, a->ctype, a->data, a->len, hdrs);
	return srv_reply_error(r, 404, "no such endpoint: %s %s", r->method, r->url);
}

int srv_dash_start(struct srv *s, struct dm_err *err)
{
	int rc = srv_hub_init(&s->hub, s->d, err);
	if (!rc && dormant_observe_add(s->d, srv_hub_observe, s->hub)) {
		srv_hub_free(s->hub);
		s->hub = NULL;
		rc = dm_err_set(err, DM_EBUSY, "too many servers observe this runtime");
	}
	return rc;
}

void srv_dash_stop(struct srv *s)
{
	if (!s->hub)
		return;
	dormant_observe_remove(s->d, srv_hub_observe, s->hub);
	srv_hub_free(s->hub);
	s->hub = NULL;
}

void srv_dash_request(const struct srv_gen *g)
{
	const char *ep = g->api == SRV_API_OPENAI ? (g->chat ? "/v1/chat/completions" : "/v1/completions")
						  : (g->chat ? "/api/chat" : "/api/generate");
	unsigned status = g->rc ? srv_status_for(g->rc) : 200;
	double tok_s = g->res.gen_s > 0 ? g->res.n_gen / g->res.gen_s : 0;

	if (!g->s->hub)
		return;
	srv_hub_publish(g->s->hub, "request",
			json_pack("{s:s,s:s,s:i,s:i,s:i,s:f,s:f,s:f,s:f,s:b,s:s}", "endpoint", ep, "model",
				  g->rc || !g->res.model[0] ? g->model : g->res.model, "status", (int)status,
				  "prompt_tokens", g->res.n_prompt, "gen_tokens", g->res.n_gen, "ttft_s",
				  g->res.ttft_s, "tok_s", tok_s, "total_s", (double)g->total_ns / 1e9,
				  "load_s", g->res.load_s, "stream", g->stream, "error", g->rc ? g->err : ""));
}

struct ev_job {
	struct srv_hub *hub;
	uint64_t cursor;
	unsigned sample_ms;
	uint64_t max_ram;
};

static int put(struct srv_stream *st, const char *txt)
{
	return srv_stream_write(st, txt, strlen(txt));
}

/* The stream's producer: a hello, then every event from the cursor on,
 * until the client leaves or the server stops (both set cancel). */
static void events_job(struct srv_stream *st, void *job)
{
	struct ev_job *j = job;
	const atomic_int *cancel = srv_stream_cancel(st);
	double last = srv_now();
	char head[128];
	json_t *hello = json_pack("{s:s,s:i,s:I,s:f}", "version", dormant_version(), "sample_ms",
				  (int)j->sample_ms, "max_ram", (json_int_t)j->max_ram, "t", srv_unix_now());

	srv_hub_watch(j->hub, 1);
	if (put(st, "retry: 2000\n\n") || srv_stream_sse(st, "hello", hello))
		goto out;
	while (!atomic_load(cancel)) {
		uint64_t seq, dropped;
		char type[16], *data;
		int got;

		if (srv_stream_pending(st) > DASH_PENDING_MAX) {
			/* a slow client: let the hub run ahead; it drops, we never block */
			struct timespec ts = { 0, 100 * 1000000L };
			nanosleep(&ts, NULL);
			continue;
		}
		got = srv_hub_next(j->hub, &j->cursor, &seq, type, &data, &dropped, 250);
		if (dropped) {
			snprintf(head, sizeof head, "event: dropped\ndata: {\"n\":%" PRIu64 "}\n\n", dropped);
			if (put(st, head))
				break;
		}
		if (got) {
			int bad;
			snprintf(head, sizeof head, "id: %" PRIu64 "\nevent: %s\ndata: ", seq, type);
			bad = put(st, head) || put(st, data) || put(st, "\n\n");
			free(data);
			if (bad)
				break;
			last = srv_now();
		} else if (srv_now() - last > DASH_KEEPALIVE_S) {
			if (put(st, ": keep-alive\n\n"))
				break;
			last = srv_now();
		}
	}
out:
	srv_hub_watch(j->hub, -1);
}

int srv_dash_events(struct srv_req *r)
{
	struct ev_job *j;
	const char *last;

	if (strcmp(r->method, "GET"))
		return srv_reply_error(r, 405, "use GET on /api/events");
	if (!r->s->hub)
		return srv_reply_error(r, 503, "the event stream is not available");
	if (!(j = calloc(1, sizeof *j)))
		return srv_reply_error(r, 500, "out of memory");
	j->hub = r->s->hub;
	j->sample_ms = SRV_HUB_SAMPLE_MS;
	{
		struct mgr_cfg lim;
		mgr_limits(dormant_mgr(r->s->d), &lim);
		j->max_ram = lim.max_ram;
	}
	j->cursor = srv_hub_oldest(j->hub);
	/* a reconnecting EventSource resumes after the last event it saw */
	last = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, "Last-Event-ID");
	if (last && *last) {
		char *end;
		unsigned long long v = strtoull(last, &end, 10);
		if (!*end && v + 1 > j->cursor)
			j->cursor = v + 1;
	}
	return srv_stream_start(r, "text/event-stream", events_job, NULL, free, j);
}

/* server/gen — running a generation request for either API: checks, the
 * synchronous path, the streamed path with load progress. */
#include "server/srv_int.h"
#include "server/dash.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mgr/api.h"

struct srv_gen *srv_gen_new(struct srv_req *r, json_t *req, const struct srv_gen_fmt *fmt)
{
	struct srv_gen *g = calloc(1, sizeof *g);
	if (!g)
		return NULL;
	g->s = r->s;
	g->fmt = fmt;
	g->api = r->api;
	g->req = req;
	g->fd = r->fd;
	g->t0 = r->t0;
	g->created = srv_unix_now();
	g->o.max_tokens = 128;
	g->o.temperature = -1; /* the model's default (a discovered one's), else 0.8 */
	g->o.top_k = -1;
	g->o.top_p = -1;
	g->o.min_p = -1;
	/* no seed given: a different one per request, as other servers do */
	g->o.seed = (uint64_t)(g->created * 1e6) ^ (uint64_t)(uintptr_t)g;
	g->o.cancel = &g->cancel;
	/* a prompt longer than the context: Ollama truncates (unless the
	 * request says "truncate": false), OpenAI refuses */
	g->o.truncate = r->api == SRV_API_OLLAMA;
	pthread_mutex_lock(&g->s->mu);
	if (g->s->stopping)
		atomic_store(&g->cancel, 1);
	g->live_next = g->s->live;
	if (g->live_next)
		g->live_next->live_prev = g;
	g->s->live = g;
	pthread_mutex_unlock(&g->s->mu);
	return g;
}

void srv_gen_free(void *p)
{
	struct srv_gen *g = p;
	if (!g)
		return;
	pthread_mutex_lock(&g->s->mu);
	if (g->live_prev)
		g->live_prev->live_next = g->live_next;
	else
		g->s->live = g->live_next;
	if (g->live_next)
		g->live_next->live_prev = g->live_prev;
	pthread_mutex_unlock(&g->s->mu);
	json_decref(g->req);
	free(g->msgs);
	free(g->text);
	free(g);
}

static int on_text_sync(void *ud, const char *t, size_t n)
{
	struct srv_gen *g = ud;
	if (g->len + n + 1 > g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 1024;
		char *nt;
		while (cap < g->len + n + 1)
			cap *= 2;
		if (!(nt = realloc(g->text, cap)))
			return 1;
		g->text = nt;
		g->cap = cap;
	}
	memcpy(g->text + g->len, t, n);
	g->len += n;
	g->text[g->len] = '\0';
	/* a client that hung up cancels its generation (checked every few
	 * tokens: one poll() call) */
	if (++g->n_since_check >= 4) {
		g->n_since_check = 0;
		if (srv_client_gone(g->fd))
			return 1;
	}
	return 0;
}

static void run(struct srv_gen *g, dormant_text_fn cb, void *ud)
{
	char err[256] = "";
	g->rc = dormant_generate(g->s->d, g->model, g->prompt, &g->o, cb, ud, &g->res, err, sizeof err);
	snprintf(g->err, sizeof g->err, "%s", err);
	g->total_ns = (uint64_t)((srv_now() - g->t0) * 1e9);
	srv_count_tokens(g->s, g->rc ? g->model : g->res.model, g->res.n_prompt, g->res.n_gen, g->rc != 0);
	srv_dash_request(g);
	if (g->rc == DM_ECANCELED || (!g->rc && !strcmp(g->res.finish, "cancel"))) {
		bool stopping;
		pthread_mutex_lock(&g->s->mu);
		g->s->n_cancelled++;
		stopping = g->s->stopping;
		pthread_mutex_unlock(&g->s->mu);
		/* cut short by srv_stop, not by its client: the answer (or the
		 * stream's last object) is an error saying so, never a truncated
		 * success */
		if (stopping) {
			g->rc = DM_EBUSY;
			snprintf(g->err, sizeof g->err, "server is shutting down; the request was cancelled");
		}
	}
}

static void *watch_main(void *p)
{
	struct srv_watch *w = p;
	pthread_mutex_lock(&w->mu);
	while (!w->done) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += 50 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT && !w->done &&
		    srv_client_gone(w->fd)) {
			atomic_store(w->cancel, 1);
			break;
		}
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

void srv_watch_start(struct srv_watch *w, int fd, atomic_int *cancel)
{
	pthread_condattr_t ca;

	memset(w, 0, sizeof *w);
	w->fd = fd;
	w->cancel = cancel;
	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cv, &ca);
	pthread_condattr_destroy(&ca);
	w->started = fd >= 0 && pthread_create(&w->th, NULL, watch_main, w) == 0;
}

void srv_watch_stop(struct srv_watch *w)
{
	if (w->started) {
		pthread_mutex_lock(&w->mu);
		w->done = true;
		pthread_cond_signal(&w->cv);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->th, NULL);
	}
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
}

static void run_watched(struct srv_gen *g)
{
	struct srv_watch w;

	/* without a watcher (no thread to spare) the token loop still checks */
	srv_watch_start(&w, g->fd, &g->cancel);
	run(g, on_text_sync, g);
	srv_watch_stop(&w);
}

static int on_text_stream(void *ud, const char *t, size_t n)
{
	struct srv_gen *g = ud;
	return g->fmt->stream_text(g, t, n) ? 1 : 0;
}

static void stream_job(struct srv_stream *st, void *job)
{
	struct srv_gen *g = job;
	g->st = st;
	g->o.cancel = srv_stream_cancel(st);
	run(g, on_text_stream, g);
	g->fmt->stream_end(g);
}

static void stream_idle(struct srv_stream *st, void *job)
{
	struct srv_gen *g = job;
	struct dormant_model_status ms;
	if (!srv_model_find(g->s, g->model, &ms))
		return;
	if (g->progress_events && g->fmt->progress && !strcmp(ms.state, "loading"))
		g->fmt->progress(g, &ms);
	else if (!strcmp(g->fmt->ctype, "text/event-stream")) {
		/* an SSE comment: invisible to clients, keeps proxies and the
		 * client's read timeout happy, readable with curl */
		char line[200];
		if (!strcmp(ms.state, "loading"))
			snprintf(line, sizeof line, ": loading %s %llu/%llu bytes\n\n", ms.name,
				 (unsigned long long)ms.progress_done, (unsigned long long)ms.progress_total);
		else
			snprintf(line, sizeof line, ": %s\n\n", ms.in_use ? "working" : "waiting");
		srv_stream_write(st, line, strlen(line));
	}
}

int srv_gen_run(struct srv_req *r, struct srv_gen *g)
{
	struct dormant_model_status ms;
	struct mgr_cfg lim;
	unsigned limit = g->s->cfg.max_tokens;
	int rc;

	if (!srv_model_find(g->s, g->model, &ms)) {
		rc = srv_reply_error(r, 404, "model '%s' not found", g->model);
		srv_gen_free(g);
		return rc;
	}
	if (srv_req_role(r, &ms, SRV_TASK_GENERATE)) {
		srv_gen_free(g);
		return MHD_YES;
	}
	if ((unsigned)g->o.max_tokens > limit) {
		rc = srv_reply_error(r, 400, "max tokens %d is above this server's limit of %u",
				     g->o.max_tokens, limit);
		srv_gen_free(g);
		return rc;
	}
	/* fail fast instead of streaming an error: the model's queue is full */
	mgr_limits(dormant_mgr(g->s->d), &lim); /* a reload may change them */
	if (ms.in_use && ms.queued >= lim.max_queue) {
		srv_gen_free(g);
		return srv_reply_rc(r, DM_EBUSY, "model is busy: its request queue is full, retry later");
	}
	if (!g->stream) {
		run_watched(g);
		if (g->rc)
			rc = srv_reply_rc(r, g->rc, g->err);
		else
			rc = srv_reply_json(r, 200, g->fmt->full(g));
		srv_gen_free(g);
		return rc;
	}
	return srv_stream_start(r, g->fmt->ctype, stream_job, stream_idle, srv_gen_free, g);
}

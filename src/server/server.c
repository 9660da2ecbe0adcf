/* server — HTTP plumbing on libmicrohttpd: routing, auth, bodies, replies,
 * streams.  See server.h. */
#include "server/srv_int.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "mgr/api.h"
#include "server/dash.h"

void srv_cfg_from_runtime(struct srv_cfg *c, const dormant *d)
{
	const struct dm_config *k = dormant_config(d);
	memset(c, 0, sizeof *c);
	snprintf(c->host, sizeof c->host, "%s", k->host);
	c->port = (uint16_t)k->port;
	snprintf(c->api_key, sizeof c->api_key, "%s", k->api_key);
	c->max_body = k->max_body;
	c->max_connections = k->max_connections;
	c->timeout_ms = k->request_timeout_ms;
	c->max_conns_per_ip = k->max_connections_per_ip;
	c->head_timeout_ms = k->header_timeout_ms;
	c->max_tokens = k->max_tokens;
}

/* ---- replies ---- */

static void count_request(struct srv_req *r)
{
	struct srv *s = r->s;
	const char *path = r->url;
	size_t i;

	/* only known paths get their own series (bounded label set) */
	static const char *known[] = {
		"/", "/health", "/metrics", "/v1/models", "/v1/chat/completions", "/v1/completions",
		"/v1/embeddings", "/api/generate", "/api/chat", "/api/embed", "/api/embeddings",
		"/api/tags", "/api/ps", "/api/show", "/api/version", "/api/load", "/api/unload",
		"/v1/rerank", "/rerank", "/v1/reranking", "/api/rerank",
		"/api/rescan", "/api/reload",
		"/api/events", "/dash.js", "/dash.css",
	};
	for (i = 0; i < sizeof known / sizeof known[0]; i++)
		if (!strcmp(known[i], path))
			break;
	if (i == sizeof known / sizeof known[0])
		path = "other";
	pthread_mutex_lock(&s->mu);
	for (i = 0; i < s->n_reqs; i++)
		if (!strcmp(s->reqs[i].path, path) && !strcmp(s->reqs[i].method, r->method) &&
		    s->reqs[i].status == r->status)
			break;
	if (i == s->n_reqs && i < sizeof s->reqs / sizeof s->reqs[0]) {
		snprintf(s->reqs[i].path, sizeof s->reqs[i].path, "%s", path);
		snprintf(s->reqs[i].method, sizeof s->reqs[i].method, "%.7s", r->method);
		s->reqs[i].status = r->status;
		s->n_reqs++;
	}
	if (i < s->n_reqs)
		s->reqs[i].n++;
	pthread_mutex_unlock(&s->mu);
}

static int queue(struct srv_req *r, unsigned status, struct MHD_Response *resp)
{
	enum MHD_Result ok;
	if (!resp)
		return MHD_NO;
	r->status = status;
	r->answered = true;
	count_request(r);
	ok = MHD_queue_response(r->c, status, resp);
	MHD_destroy_response(resp);
	return ok;
}

int srv_reply(struct srv_req *r, unsigned status, const char *ctype, const char *body, size_t n)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(n, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", ctype);
	if (status == 503)
		MHD_add_response_header(resp, "Retry-After", "1");
	if (status == 401)
		MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
	return queue(r, status, resp);
}

int srv_reply_static(struct srv_req *r, unsigned status, const char *ctype, const void *body,
		     size_t n, const char *const *hdrs)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(n, (void *)(uintptr_t)body, MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", ctype);
	for (size_t i = 0; hdrs && hdrs[i] && hdrs[i + 1]; i += 2)
		MHD_add_response_header(resp, hdrs[i], hdrs[i + 1]);
	return queue(r, status, resp);
}

int srv_reply_json(struct srv_req *r, unsigned status, json_t *body)
{
	char *txt = body ? json_dumps(body, JSON_COMPACT) : NULL;
	int rc;
	json_decref(body);
	if (!txt)
		return srv_reply(r, 500, "application/json", "{\"error\":\"out of memory\"}", 25);
	rc = srv_reply(r, status, "application/json", txt, strlen(txt));
	free(txt);
	return rc;
}

static const char *openai_type(unsigned status)
{
	switch (status) {
	case 401: return "authentication_error";
	case 404: return "not_found_error";
	case 413: return "invalid_request_error";
	case 429:
	case 503: return "server_busy";
	default: return status < 500 ? "invalid_request_error" : "server_error";
	}
}

static json_t *error_obj(enum srv_api api, unsigned status, const char *msg)
{
	if (api == SRV_API_OPENAI)
		return json_pack("{s:{s:s,s:s,s:n,s:n}}", "error", "message", msg, "type",
				 openai_type(status), "param", "code");
	return json_pack("{s:s}", "error", msg);
}

int srv_reply_error(struct srv_req *r, unsigned status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	json_t *o;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	o = error_obj(r->api, status, msg);
	return srv_reply_json(r, status, o);
}

char *srv_error_body(enum srv_api api, unsigned status, const char *msg)
{
	json_t *o = error_obj(api, status, msg);
	char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return t;
}

unsigned srv_status_for(int code)
{
	switch (code) {
	case DM_EINVAL:
	case DM_ERANGE:
	case DM_ETYPE:
	case DM_ETOOLONG: return 400; /* retrying cannot help: never 503 */
	case DM_ENOTFOUND: return 404;
	case DM_ENOSPC: return 400;  /* does not fit the context: the request's size */
	case DM_ETOOBIG: return 507; /* can never fit the memory budget: permanent */
	case DM_EBUSY:
	case DM_ETIMEDOUT: return 503; /* transient: Retry-After */
	case DM_ECANCELED: return 499;
	case DM_EFORMAT:
	case DM_EUNSUPPORTED:
	case DM_EIO: return 500;
	default: return 500;
	}
}

int srv_reply_rc(struct srv_req *r, int code, const char *msg)
{
	unsigned st = srv_status_for(code);
	if (code == DM_EBUSY) {
		pthread_mutex_lock(&r->s->mu);
		r->s->n_rejected_busy++;
		pthread_mutex_unlock(&r->s->mu);
	}
	if (code == DM_ETOOLONG && r->api == SRV_API_OPENAI)
		return srv_reply_json(r, st, json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message", msg, "type",
						       "invalid_request_error", "param", "code",
						       "context_length_exceeded"));
	return srv_reply_error(r, st, "%s", msg);
}

json_t *srv_body_json(struct srv_req *r)
{
	json_error_t je;
	json_t *o;

	if (!r->len) {
		srv_reply_error(r, 400, "request body is empty (expected a JSON object)");
		return NULL;
	}
	o = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &je);
	if (!o && strstr(je.text, "decode byte")) {
		srv_reply_error(r, 400, "invalid UTF-8 in the request body at byte %d", je.position);
		return NULL;
	}
	if (!o) {
		srv_reply_error(r, 400, "invalid JSON at line %d column %d: %s", je.line, je.column, je.text);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		srv_reply_error(r, 400, "request body must be a JSON object");
		return NULL;
	}
	return o;
}

bool srv_client_gone(int fd)
{
	char c;
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
	ssize_t n;
	if (fd < 0)
		return false;
	if (poll(&p, 1, 0) <= 0)
		return false;
	if (p.revents & (POLLERR | POLLHUP | POLLNVAL | POLLRDHUP))
		return true;
	n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* ---- streams ---- */

struct srv_stream {
	struct srv *s;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char *buf;
	size_t len, cap, off;
	bool done;           /* producer finished */
	double t_stop;       /* when the reader saw the server stopping (0: not yet) */
	bool gone;           /* response freed (client done or gone) */
	atomic_int cancel;   /* the one flag the runtime polls (queue, load, tokens) */
	unsigned n_slices;   /* reader's 50 ms waits (idle() every fifth) */
	int refs;
	int fd;
	srv_job_fn fn;
	srv_idle_fn idle;
	void (*free_job)(void *);
	void *job;
};

static void stream_unref(struct srv_stream *st)
{
	bool last;
	pthread_mutex_lock(&st->mu);
	last = --st->refs == 0;
	pthread_mutex_unlock(&st->mu);
	if (!last)
		return;
	if (st->free_job)
		st->free_job(st->job);
	pthread_mutex_destroy(&st->mu);
	pthread_cond_destroy(&st->cv);
	free(st->buf);
	free(st);
}

int srv_stream_write(struct srv_stream *st, const char *data, size_t n)
{
	int rc = 0;
	pthread_mutex_lock(&st->mu);
	if (st->gone) { /* after a cancel the producer may still write its last object */
		rc = -1;
	} else {
		if (st->off && st->off == st->len)
			st->off = st->len = 0;
		if (st->len + n > st->cap) {
			size_t cap = st->cap ? st->cap : 4096;
			char *nb;
			while (cap < st->len + n)
				cap *= 2;
			if (!(nb = realloc(st->buf, cap))) {
				rc = -1;
				goto out;
			}
			st->buf = nb;
			st->cap = cap;
		}
		memcpy(st->buf + st->len, data, n);
		st->len += n;
		pthread_cond_broadcast(&st->cv);
	}
out:
	pthread_mutex_unlock(&st->mu);
	return rc;
}

int srv_stream_ndjson(struct srv_stream *st, json_t *obj)
{
	char *t = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
	int rc = -1;
	json_decref(obj);
	if (t) {
		size_t n = strlen(t);
		t[n] = '\n'; /* json_dumps leaves room for exactly the NUL: use it */
		rc = srv_stream_write(st, t, n + 1);
		free(t);
	}
	return rc;
}

int srv_stream_sse(struct srv_stream *st, const char *event, json_t *obj)
{
	char *t = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
	char head[80];
	int rc = -1;
	json_decref(obj);
	if (t) {
		snprintf(head, sizeof head, "%s%s%sdata: ", event ? "event: " : "", event ? event : "",
			 event ? "\n" : "");
		rc = srv_stream_write(st, head, strlen(head));
		if (!rc)
			rc = srv_stream_write(st, t, strlen(t));
		if (!rc)
			rc = srv_stream_write(st, "\n\n", 2);
		free(t);
	}
	return rc;
}

size_t srv_stream_pending(struct srv_stream *st)
{
	size_t n;
	pthread_mutex_lock(&st->mu);
	n = st->len - st->off;
	pthread_mutex_unlock(&st->mu);
	return n;
}

atomic_int *srv_stream_cancel(struct srv_stream *st)
{
	return &st->cancel;
}

struct srv *srv_stream_server(struct srv_stream *st)
{
	return st->s;
}

static void *stream_main(void *arg)
{
	struct srv_stream *st = arg;
	struct srv *s = st->s;
	st->fn(st, st->job);
	pthread_mutex_lock(&st->mu);
	st->done = true;
	pthread_cond_broadcast(&st->cv);
	pthread_mutex_unlock(&st->mu);
	stream_unref(st);
	pthread_mutex_lock(&s->mu);
	s->n_jobs--;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* libmicrohttpd's reader: blocks (this connection has its own thread)
 * until bytes arrive, the producer ends, or the client goes away. */
static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct srv_stream *st = cls;
	ssize_t got = 0;
	(void)pos;
	pthread_mutex_lock(&st->mu);
	for (;;) {
		if (st->len > st->off) {
			size_t n = st->len - st->off < max ? st->len - st->off : max;
			memcpy(out, st->buf + st->off, n);
			st->off += n;
			got = (ssize_t)n;
			break;
		}
		if (st->done) {
			got = MHD_CONTENT_READER_END_OF_STREAM;
			break;
		}
		{
			/* the socket is watched every 50 ms (a client that hangs up
			 * while its request is queued leaves the queue at once); the
			 * idle callback runs every 250 ms */
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 50 * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			if (pthread_cond_timedwait(&st->cv, &st->mu, &ts) == ETIMEDOUT) {
				bool stopping;
				pthread_mutex_unlock(&st->mu);
				pthread_mutex_lock(&st->s->mu);
				stopping = st->s->stopping;
				pthread_mutex_unlock(&st->s->mu);
				if (srv_client_gone(st->fd) ||
				    (stopping && st->t_stop && srv_now() - st->t_stop > SRV_STOP_GRACE_MS / 1e3)) {
					pthread_mutex_lock(&st->mu);
					atomic_store(&st->cancel, 1);
					got = MHD_CONTENT_READER_END_WITH_ERROR;
					break;
				}
				if (stopping) {
					/* cancel the producer, then send what it writes
					 * last (an error object) before the end */
					pthread_mutex_lock(&st->mu);
					atomic_store(&st->cancel, 1);
					if (!st->t_stop)
						st->t_stop = srv_now();
					continue;
				}
				if (st->idle && ++st->n_slices % 5 == 0)
					st->idle(st, st->job);
				pthread_mutex_lock(&st->mu);
			}
		}
	}
	pthread_mutex_unlock(&st->mu);
	return got;
}

static void stream_free(void *cls)
{
	struct srv_stream *st = cls;
	pthread_mutex_lock(&st->mu);
	st->gone = true;
	atomic_store(&st->cancel, 1); /* a client that left before the end cancels */
	pthread_cond_broadcast(&st->cv);
	pthread_mutex_unlock(&st->mu);
	stream_unref(st);
}

int srv_stream_start(struct srv_req *r, const char *ctype, srv_job_fn fn, srv_idle_fn idle,
		     void (*free_job)(void *job), void *job)
{
	struct srv *s = r->s;
	struct srv_stream *st = calloc(1, sizeof *st);
	struct MHD_Response *resp;
	pthread_t th;
	pthread_attr_t at;

	if (!st) {
		free_job(job);
		return srv_reply_error(r, 500, "out of memory");
	}
	st->s = s;
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->cv, NULL);
	st->fd = r->fd;
	st->fn = fn;
	st->idle = idle;
	st->free_job = free_job;
	st->job = job;
	st->refs = 2;
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, st, stream_free);
	if (!resp) {
		st->refs = 1;
		stream_unref(st);
		return srv_reply_error(r, 500, "out of memory");
	}
	MHD_add_response_header(resp, "Content-Type", ctype);
	MHD_add_response_header(resp, "Cache-Control", "no-cache");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	pthread_mutex_lock(&s->mu);
	s->n_jobs++;
	pthread_mutex_unlock(&s->mu);
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &at, stream_main, st)) {
		pthread_attr_destroy(&at);
		pthread_mutex_lock(&s->mu);
		s->n_jobs--;
		pthread_mutex_unlock(&s->mu);
		st->refs = 1;
		MHD_destroy_response(resp); /* stream_free: frees st and job */
		return srv_reply_error(r, 500, "cannot start a thread for the response");
	}
	pthread_attr_destroy(&at);
	return queue(r, 200, resp);
}

/* ---- routing ---- */

static bool authorized(struct srv_req *r)
{
	const char *key = r->s->cfg.api_key, *h;
	size_t n, k;
	unsigned diff = 0;
	if (!key[0])
		return true;
	h = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, "Authorization");
	if (!h || strncasecmp(h, "Bearer ", 7))
		return false;
	h += 7;
	while (*h == ' ')
		h++;
	n = strlen(h);
	k = strlen(key);
	/* constant time in the key's length */
	for (size_t i = 0; i < k; i++)
		diff |= (unsigned)(unsigned char)key[i] ^ (unsigned)(unsigned char)(i < n ? h[i] : 0);
	return diff == 0 && n == k;
}

static int route(struct srv_req *r)
{
	const char *u = r->url;

	if (srv_dash_is_asset(u)) /* the page's files: no data in them (it asks for the key) */
		return srv_dash_asset(r);
	if (!strcmp(u, "/health"))
		return strcmp(r->method, "GET") && strcmp(r->method, "HEAD")
			       ? srv_reply_error(r, 405, "method %s not allowed on %s", r->method, u)
			       : srv_health(r);
	if (!authorized(r))
		return srv_reply_error(r, 401, "missing or wrong API key (send Authorization: Bearer KEY)");
	if (r->too_big)
		return srv_reply_error(r, 413, "request body larger than %llu bytes",
				       (unsigned long long)r->s->cfg.max_body);
	if (!strcmp(u, "/api/events"))
		return srv_dash_events(r);
	if (!strcmp(u, "/metrics"))
		return strcmp(r->method, "GET") ? srv_reply_error(r, 405, "use GET on /metrics")
						 : srv_metrics(r);
	if (!strcmp(u, "/v1/rerank") || !strcmp(u, "/rerank") || !strcmp(u, "/v1/reranking") ||
	    !strcmp(u, "/api/rerank"))
		return srv_rerank(r);
	if (!strncmp(u, "/v1/", 4))
		return srv_openai(r);
	if (!strncmp(u, "/api/", 5))
		return srv_ollama(r);
	return srv_reply_error(r, 404, "no such endpoint: %s %s", r->method, u);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct srv *s = cls;
	struct srv_req *r = *con_cls;
	(void)version;

	if (!r) {
		const union MHD_ConnectionInfo *ci;
		if (!(r = calloc(1, sizeof *r)))
			return MHD_NO;
		r->s = s;
		r->c = c;
		r->url = url;
		r->method = method;
		r->api = strncmp(url, "/v1/", 4) ? SRV_API_OLLAMA : SRV_API_OPENAI;
		r->t0 = srv_now();
		ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		r->fd = ci ? ci->connect_fd : -1;
		*con_cls = r;
		pthread_mutex_lock(&s->mu);
		s->n_active++;
		pthread_mutex_unlock(&s->mu);
		return MHD_YES;
	}
	if (*upload_size) {
		size_t n = *upload_size;
		*upload_size = 0;
		if (r->too_big || r->len + n > s->cfg.max_body) {
			r->too_big = true;
			return MHD_YES; /* drain; answered 413 at the end */
		}
		if (r->len + n + 1 > r->cap) {
			size_t cap = r->cap ? r->cap : 4096;
			char *nb;
			while (cap < r->len + n + 1)
				cap *= 2;
			if (!(nb = realloc(r->body, cap)))
				return MHD_NO;
			r->body = nb;
			r->cap = cap;
		}
		memcpy(r->body + r->len, upload, n);
		r->len += n;
		r->body[r->len] = '\0';
		return MHD_YES;
	}
	if (r->answered)
		return MHD_YES;
	return route(r) == MHD_YES ? MHD_YES : MHD_NO;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode why)
{
	struct srv *s = cls;
	struct srv_req *r = *con_cls;
	(void)c;
	if (!r)
		return;
	if (s->cfg.log) {
		char line[600];
		snprintf(line, sizeof line, "%s %s %u %.3f s%s", r->method, r->url, r->status,
			 srv_now() - r->t0,
			 why == MHD_REQUEST_TERMINATED_COMPLETED_OK ? ""
			 : why == MHD_REQUEST_TERMINATED_CLIENT_ABORT ? " (client went away)"
			 : why == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? " (timed out)"
			 : " (ended early)");
		s->cfg.log(s->cfg.log_ud, line);
	}
	free(r->body);
	free(r);
	*con_cls = NULL;
	pthread_mutex_lock(&s->mu);
	s->n_active--;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
			  enum MHD_ConnectionNotificationCode code)
{
	struct srv *s = cls;
	(void)socket_ctx;
	pthread_mutex_lock(&s->mu);
	s->n_conns += code == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1;
	pthread_mutex_unlock(&s->mu);
	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		if (ci)
			srv_front_release(s, ci->client_addr);
	}
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct srv *s = cls;
	char line[512];
	size_t n;
	if (!s->cfg.log)
		return;
	vsnprintf(line, sizeof line, fmt, ap);
	n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	s->cfg.log(s->cfg.log_ud, line);
}

int srv_start(struct srv **out, dormant *d, const struct srv_cfg *cfg, struct dm_err *err)
{
	struct srv *s;
	/* no listening socket of its own: the front (front.c) accepts and
	 * hands over connections whose request head has arrived */
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
			 MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
	int rc;

	*out = NULL;
	if (!cfg->max_body || !cfg->max_connections || !cfg->max_tokens || !cfg->max_conns_per_ip ||
	    cfg->head_timeout_ms <= 0)
		return dm_err_set(err, DM_EINVAL, "server limits must be positive");
	if (!(s = calloc(1, sizeof *s)))
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	s->d = d;
	s->cfg = *cfg;
	s->port = cfg->port;
	s->t_start = srv_unix_now();
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if ((rc = srv_dash_start(s, err))) {
		pthread_mutex_destroy(&s->mu);
		pthread_cond_destroy(&s->cv);
		free(s);
		return rc;
	}
	s->mhd = MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, s,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)((cfg->timeout_ms + 999) / 1000),
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
		MHD_OPTION_END);
	if (!s->mhd) {
		int e = errno;
		srv_dash_stop(s);
		pthread_mutex_destroy(&s->mu);
		pthread_cond_destroy(&s->cv);
		free(s);
		return dm_err_set(err, DM_EIO, "cannot start the HTTP server: %s",
				  e ? strerror(e) : "libmicrohttpd refused to start");
	}
	if ((rc = srv_front_start(s, err))) {
		MHD_stop_daemon(s->mhd);
		srv_dash_stop(s);
		pthread_mutex_destroy(&s->mu);
		pthread_cond_destroy(&s->cv);
		free(s);
		return rc;
	}
	*out = s;
	return 0;
}

uint16_t srv_port(const struct srv *s)
{
	return s->port;
}

void srv_stop(struct srv *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	for (struct srv_gen *g = s->live; g; g = g->live_next)
		atomic_store(&g->cancel, 1); /* loads and generations of answers not streamed */
	pthread_mutex_unlock(&s->mu);
	/* stop accepting; let running requests end with their error answer
	 * (stream readers notice `stopping`, cancel their producers and send
	 * the last object) for a bounded time; then end every connection
	 * thread (libmicrohttpd shuts their sockets) */
	srv_front_stop(s);
	{
		struct timespec ts;
		long ns;
		clock_gettime(CLOCK_REALTIME, &ts);
		ns = ts.tv_nsec + SRV_STOP_GRACE_MS * 1500000L;
		ts.tv_sec += ns / 1000000000L;
		ts.tv_nsec = ns % 1000000000L;
		pthread_mutex_lock(&s->mu);
		while (s->n_active > 0 && pthread_cond_timedwait(&s->cv, &s->mu, &ts) != ETIMEDOUT)
			;
		pthread_mutex_unlock(&s->mu);
	}
	MHD_stop_daemon(s->mhd);
	srv_front_free(s);
	pthread_mutex_lock(&s->mu);
	while (s->n_jobs)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
	srv_dash_stop(s);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
}

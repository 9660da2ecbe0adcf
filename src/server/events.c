/* server/events — the event hub: a ring of events, readers with cursors,
 * and a memory sampler that runs only while someone watches.  See events.h. */
#include "server/events.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "mgr/api.h"
#include "server/srv_int.h"

struct slot {
	uint64_t seq;
	char type[16];       /* "": empty (never written, or a dropped sample) */
	char *data;          /* JSON text, malloc'd */
};

struct srv_hub {
	dormant *d;
	pthread_mutex_t mu;  /* guards everything below */
	pthread_cond_t cv;   /* readers: a new event; the sampler: watchers or stop */
	struct slot ring[SRV_HUB_SLOTS];
	uint64_t head;       /* sequence number of the next event (events 1..head-1 exist) */
	int watchers;
	bool dirty;          /* a lifecycle or request event since the last models snapshot */
	bool stop;
	pthread_t sampler;
};

static void deadline_in(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

uint64_t srv_hub_oldest(struct srv_hub *h)
{
	uint64_t o;
	pthread_mutex_lock(&h->mu);
	o = h->head > SRV_HUB_SLOTS ? h->head - SRV_HUB_SLOTS : 1;
	pthread_mutex_unlock(&h->mu);
	return o;
}

void srv_hub_publish(struct srv_hub *h, const char *type, json_t *data)
{
	char *txt;
	struct slot *sl;

	if (!data)
		return;
	json_object_set_new(data, "t", json_real(srv_unix_now()));
	txt = json_dumps(data, JSON_COMPACT);
	json_decref(data);
	if (!txt)
		return;
	pthread_mutex_lock(&h->mu);
	sl = &h->ring[h->head % SRV_HUB_SLOTS];
	free(sl->data);
	sl->seq = h->head++;
	snprintf(sl->type, sizeof sl->type, "%s", type);
	sl->data = txt;
	if (strcmp(type, "memory") && strcmp(type, "models"))
		h->dirty = true;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

void srv_hub_observe(void *ud, const struct dormant_event *ev)
{
	srv_hub_publish(ud, "lifecycle",
			json_pack("{s:s,s:s,s:s,s:f,s:I,s:I,s:I,s:I,s:b,s:s}", "model", ev->model, "from",
				  ev->from, "to", ev->to, "seconds", ev->seconds, "bytes", (json_int_t)ev->bytes,
				  "rss", (json_int_t)ev->rss, "anon", (json_int_t)ev->rss_anon, "file",
				  (json_int_t)ev->rss_file, "evict", ev->evict, "error", ev->error));
}

void srv_hub_watch(struct srv_hub *h, int delta)
{
	pthread_mutex_lock(&h->mu);
	h->watchers += delta;
	if (h->watchers == 0) {
		/* nobody looks: the samples go, the history of what happened stays */
		for (size_t i = 0; i < SRV_HUB_SLOTS; i++) {
			struct slot *sl = &h->ring[i];
			if (!strcmp(sl->type, "memory") || !strcmp(sl->type, "models")) {
				free(sl->data);
				sl->data = NULL;
				sl->type[0] = '\0';
			}
		}
	}
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

int srv_hub_next(struct srv_hub *h, uint64_t *cursor, uint64_t *seq, char *type, char **data,
		 uint64_t *dropped, int wait_ms)
{
	struct timespec ts;
	int got = 0;

	deadline_in(&ts, wait_ms);
	if (dropped)
		*dropped = 0;
	pthread_mutex_lock(&h->mu);
	for (;;) {
		uint64_t oldest = h->head > SRV_HUB_SLOTS ? h->head - SRV_HUB_SLOTS : 1;
		if (*cursor < oldest) {
			if (dropped)
				*dropped += oldest - *cursor;
			*cursor = oldest;
		}
		while (*cursor < h->head && !h->ring[*cursor % SRV_HUB_SLOTS].type[0])
			(*cursor)++; /* a sample dropped while nobody watched */
		if (*cursor < h->head) {
			struct slot *sl = &h->ring[*cursor % SRV_HUB_SLOTS];
			if ((*data = strdup(sl->data))) {
				*seq = sl->seq;
				memcpy(type, sl->type, sizeof sl->type);
				got = 1;
			}
			(*cursor)++;
			break;
		}
		if (h->stop || pthread_cond_timedwait(&h->cv, &h->mu, &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&h->mu);
	return got;
}

void srv_hub_wake(struct srv_hub *h)
{
	pthread_mutex_lock(&h->mu);
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

/* Every model's status as the dashboard's cards show it. */
static json_t *models_json(dormant *d)
{
	struct dormant_model_status *st = calloc(SRV_MAX_MODELS, sizeof *st);
	json_t *arr = json_array();
	size_t n;

	if (!st || !arr) {
		free(st);
		json_decref(arr);
		return NULL;
	}
	n = dormant_status(d, st, SRV_MAX_MODELS);
	for (size_t i = 0; i < n && i < SRV_MAX_MODELS; i++) {
		const struct dormant_model_status *m = &st[i];
		json_t *o = json_pack(
			"{s:s,s:s,s:s,s:s,s:s,s:I,s:b,s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:I,s:I,s:f,s:f,s:s}",
			"name", m->name, "state", m->state, "role", m->role, "policy", m->policy, "mode", m->mode,
			"keep_alive_ms", (json_int_t)m->keep_alive_ms, "in_use", m->in_use, "queued",
			(int)m->queued, "est_bytes", (json_int_t)m->est_bytes, "bytes", (json_int_t)m->bytes,
			"expires_in_ms", (json_int_t)m->expires_in_ms, "progress_done",
			(json_int_t)m->progress_done, "progress_total", (json_int_t)m->progress_total,
			"load_count", (json_int_t)m->load_count, "unload_count", (json_int_t)m->unload_count,
			"evict_count", (json_int_t)m->evict_count, "last_load_s", m->last_load_s, "n_cold",
			(json_int_t)m->n_cold, "n_warm", (json_int_t)m->n_warm, "ttft_cold_s",
			m->n_cold ? m->ttft_cold_s / (double)m->n_cold : 0.0, "ttft_warm_s",
			m->n_warm ? m->ttft_warm_s / (double)m->n_warm : 0.0, "last_error", m->last_error);
		if (o)
			json_array_append_new(arr, o);
	}
	free(st);
	return json_pack("{s:o}", "models", arr);
}

/* Process memory and the model files' bytes in the page cache (counted
 * again only when recount: mincore over every model file is the costly
 * part, a vector byte per page; *cache keeps the last count). */
static json_t *memory_json(dormant *d, bool recount, uint64_t *cache)
{
	struct dm_mem_usage u = { 0 };
	struct dormant_model_status *st = recount ? calloc(SRV_MAX_MODELS, sizeof *st) : NULL;
	struct mgr_cfg lim;

	dm_mem_usage(&u);
	mgr_limits(dormant_mgr(d), &lim); /* max_ram: a reload may change it */
	if (st) {
		size_t n = dormant_status(d, st, SRV_MAX_MODELS);
		*cache = 0;
		for (size_t i = 0; i < n && i < SRV_MAX_MODELS; i++) {
			uint64_t c = 0, size = 0;
			if (st[i].path[0] && !dm_file_cached(st[i].path, &c, &size))
				*cache += c;
		}
		free(st);
	}
	return json_pack("{s:I,s:I,s:I,s:I,s:I}", "rss", (json_int_t)u.rss, "anon", (json_int_t)u.rss_anon,
			 "file", (json_int_t)u.rss_file, "cache", (json_int_t)*cache, "max_ram",
			 (json_int_t)lim.max_ram);
}

/* Asleep while nobody watches; else a memory sample every
 * SRV_HUB_SAMPLE_MS, and a models snapshot and a page cache count when
 * something happened (or every fourth tick, for the countdowns, queues and
 * the cache's slow drift). */
static void *sampler_main(void *arg)
{
	struct srv_hub *h = arg;
	unsigned tick = 0;
	uint64_t cache = 0;

	pthread_mutex_lock(&h->mu);
	while (!h->stop) {
		struct timespec ts;
		bool snap;
		if (!h->watchers) {
			pthread_cond_wait(&h->cv, &h->mu);
			continue;
		}
		snap = h->dirty || tick % 4 == 0;
		h->dirty = false;
		pthread_mutex_unlock(&h->mu);
		srv_hub_publish(h, "memory", memory_json(h->d, snap, &cache));
		if (snap)
			srv_hub_publish(h, "models", models_json(h->d));
		tick++;
		pthread_mutex_lock(&h->mu);
		deadline_in(&ts, SRV_HUB_SAMPLE_MS);
		while (!h->stop && h->watchers && !h->dirty &&
		       pthread_cond_timedwait(&h->cv, &h->mu, &ts) != ETIMEDOUT)
			;
		if (h->dirty) /* a transition: sample now, then keep the rhythm */
			tick = 0;
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

int srv_hub_init(struct srv_hub **out, dormant *d, struct dm_err *err)
{
	struct srv_hub *h = calloc(1, sizeof *h);
	pthread_condattr_t ca;

	*out = NULL;
	if (!h)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	h->d = d;
	h->head = 1;
	pthread_mutex_init(&h->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&h->sampler, NULL, sampler_main, h)) {
		pthread_cond_destroy(&h->cv);
		pthread_mutex_destroy(&h->mu);
		free(h);
		return dm_err_set(err, DM_ENOMEM, "cannot start the event sampler thread");
	}
	*out = h;
	return 0;
}

void srv_hub_free(struct srv_hub *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->mu);
	h->stop = true;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->sampler, NULL);
	for (size_t i = 0; i < SRV_HUB_SLOTS; i++)
		free(h->ring[i].data);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

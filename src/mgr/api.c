/*
 * mgr/api — include/dormant.h on top of the manager, the engine backend,
 * the configuration and the generation loop.
 */
#include "dormant.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/utf8.h"
#include "mgr/api.h"
#include "mgr/config.h"
#include "mgr/engine.h"
#include "mgr/mgr.h"
#include "model/gen.h"
#include "tok/chat.h"

struct ttft {
	char name[MGR_NAME_MAX];
	uint64_t n_cold, n_warm;
	double cold_s, warm_s;
};

struct dormant {
	struct dm_config *cfg;
	struct engine_backend_cfg bc;
	struct mgr *m;
	pthread_mutex_t mu; /* guards ttft */
	pthread_mutex_t obs_mu; /* serialises changes to obs (read under the manager's lock) */
	struct {
		void (*fn)(void *ud, const struct dormant_event *ev);
		void *ud;
	} obs[8];
	size_t n_obs;
	struct ttft ttft[CFG_MAX_MODELS * 2];
	size_t n_ttft;
};

static int fail(char *buf, size_t len, const struct dm_err *e, int rc)
{
	if (buf && len)
		dm_utf8_sanitize(buf, len, e ? e->msg : "error"); /* a short buffer: cut between characters */
	return rc;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int dormant_open(dormant **out, const char *config, const char *profile, char *err, size_t errlen)
{
	return dormant_open_log(out, config, profile, NULL, NULL, err, errlen);
}

int dormant_open_log(dormant **out, const char *config, const char *profile,
		     void (*log)(void *ud, const char *line), void *log_ud, char *err, size_t errlen)
{
	struct dormant *d = calloc(1, sizeof *d);
	struct mgr_cfg mc = { 0 };
	struct dm_err e;
	int rc;

	*out = NULL;
	if (!d || !(d->cfg = calloc(1, sizeof *d->cfg))) {
		free(d);
		dm_err_set(&e, DM_ENOMEM, "out of memory");
		return fail(err, errlen, &e, DM_ENOMEM);
	}
	pthread_mutex_init(&d->mu, NULL);
	pthread_mutex_init(&d->obs_mu, NULL);
	if ((rc = dm_config_load(d->cfg, config, profile, &e)))
		goto bad;
	dm_config_mgr(d->cfg, &mc);
	mc.log = log;
	mc.log_ud = log_ud;
	d->bc.drop_page_cache = d->cfg->drop_page_cache;
	mgr_engine_backend(&mc.backend, &d->bc);
	if ((rc = mgr_init(&d->m, &mc, &e)))
		goto bad;
	for (size_t i = 0; i < d->cfg->n_models; i++)
		if ((rc = mgr_add(d->m, &d->cfg->models[i], &e)))
			goto bad;
	if ((rc = mgr_start(d->m, &e)))
		goto bad;
	*out = d;
	return 0;
bad:
	dormant_close(d);
	return fail(err, errlen, &e, rc);
}

int dormant_add_model(dormant *d, const char *name, const char *path, char *err, size_t errlen)
{
	struct mgr_model_cfg c;
	struct dm_err e;
	int rc;

	mgr_model_cfg_default(&c);
	if (!name || !path || strlen(name) >= sizeof c.name || strlen(path) >= sizeof c.path) {
		dm_err_set(&e, DM_EINVAL, "model name or path missing or too long");
		return fail(err, errlen, &e, DM_EINVAL);
	}
	snprintf(c.name, sizeof c.name, "%s", name);
	snprintf(c.path, sizeof c.path, "%s", path);
	c.keep_alive_ms = d->cfg->keep_alive_ms;
	c.n_threads = d->cfg->threads;
	c.quantize_on_load = d->cfg->quantize_on_load;
	if ((rc = mgr_add(d->m, &c, &e)))
		return fail(err, errlen, &e, rc);
	return 0;
}

void dormant_close(dormant *d)
{
	if (!d)
		return;
	mgr_free(d->m);
	free(d->cfg);
	pthread_mutex_destroy(&d->mu);
	pthread_mutex_destroy(&d->obs_mu);
	free(d);
}

static void record_ttft(dormant *d, const char *name, bool cold, double s)
{
	size_t i;
	pthread_mutex_lock(&d->mu);
	for (i = 0; i < d->n_ttft; i++)
		if (!strcmp(d->ttft[i].name, name))
			break;
	if (i == d->n_ttft && i < sizeof d->ttft / sizeof d->ttft[0]) {
		snprintf(d->ttft[i].name, sizeof d->ttft[i].name, "%s", name);
		d->n_ttft++;
	}
	if (i < d->n_ttft) {
		if (cold) {
			d->ttft[i].n_cold++;
			d->ttft[i].cold_s += s;
		} else {
			d->ttft[i].n_warm++;
			d->ttft[i].warm_s += s;
		}
	}
	pthread_mutex_unlock(&d->mu);
}

struct relay {
	dormant_text_fn cb;
	void *ud;
	const atomic_int *cancel;
};

static int relay_text(void *ud, int32_t id, const char *text, size_t n)
{
	struct relay *r = ud;
	(void)id;
	if (r->cancel && atomic_load(r->cancel))
		return 1;
	return r->cb && n ? r->cb(r->ud, text, n) : 0;
}

/* The prompt's tokens: the conversation (messages, or system + prompt as
 * one user turn) through the model's chat template, or the raw prompt.  A
 * completion-style chat request (o->chat) on a model without a template
 * gets the raw prompt, as Ollama does; a conversation falls back to
 * ChatML.  drop: conversation turns left out after the leading system
 * messages (oldest first). */
static int prompt_build(struct engine *en, const struct dormant_gen_opts *o, const char *prompt, size_t drop,
			int32_t stop_ids[GEN_MAX_STOP], int32_t **ids, size_t *n_ids, struct dm_err *e)
{
	enum tok_chat_kind kind;
	bool fb;
	struct tok_chat_msg two[2], *msgs = two;
	size_t nm = 0, n_sys = 0;
	int rc;

	*ids = NULL;
	*n_ids = 0;
	if (!o || !(o->chat || o->n_messages))
		return gen_prompt_ids(en->v, NULL, NULL, 0, prompt, ids, n_ids, e);
	if ((rc = tok_chat_select(en->v, NULL, &kind, &fb, e)))
		return rc;
	if (fb && !o->n_messages)
		return gen_prompt_ids(en->v, NULL, NULL, 0, prompt, ids, n_ids, e);
	{
		size_t ns = tok_chat_stop_ids(kind, en->v, stop_ids, GEN_MAX_STOP);
		for (size_t k = ns; k < GEN_MAX_STOP; k++)
			stop_ids[k] = -1;
	}
	if (o->n_messages) {
		if (!(msgs = calloc(o->n_messages, sizeof *msgs)))
			return dm_err_set(e, DM_ENOMEM, "out of memory");
		while (n_sys < o->n_messages && !strcmp(o->messages[n_sys].role, "system"))
			msgs[nm++] = (struct tok_chat_msg){ o->messages[n_sys].role, o->messages[n_sys].content }, n_sys++;
		for (size_t i = n_sys + drop; i < o->n_messages; i++)
			msgs[nm++] = (struct tok_chat_msg){ o->messages[i].role, o->messages[i].content };
	} else {
		if (o->system)
			msgs[nm++] = (struct tok_chat_msg){ "system", o->system };
		msgs[nm++] = (struct tok_chat_msg){ "user", prompt };
	}
	rc = gen_prompt_ids(en->v, &kind, msgs, nm, NULL, ids, n_ids, e);
	if (msgs != two)
		free(msgs);
	return rc;
}

/* The prompt's tokens, fitted into the context (room for at least one new
 * token).  Too long: DM_ETOOLONG naming both counts (*n_ids: the full
 * count), unless o->truncate: then the oldest turns after the leading system
 * messages go first (the latest turn always stays), and what still does not
 * fit loses the middle of its tokens (the first one, BOS or the template's
 * start, stays), as Ollama truncates. */
static int prompt_fit(struct engine *en, const struct dormant_gen_opts *o, const char *prompt,
		      int32_t stop_ids[GEN_MAX_STOP], int32_t **ids, size_t *n_ids, struct dm_err *e)
{
	const size_t n_ctx = (size_t)en->ctx->n_ctx;
	size_t n_sys = 0, drop = 0;
	int rc;

	if ((rc = prompt_build(en, o, prompt, 0, stop_ids, ids, n_ids, e)))
		return rc;
	if (!*n_ids)
		return dm_err_set(e, DM_EINVAL, "empty prompt");
	if (*n_ids < n_ctx)
		return 0;
	if (!o || !o->truncate || n_ctx < 2)
		return dm_err_set(e, DM_ETOOLONG,
				  "this model's maximum context length is %zu tokens, but the prompt is %zu tokens",
				  n_ctx, *n_ids);
	while (o->n_messages && n_sys < o->n_messages && !strcmp(o->messages[n_sys].role, "system"))
		n_sys++;
	while (*n_ids >= n_ctx && o->n_messages && n_sys + drop + 1 < o->n_messages) {
		free(*ids);
		if ((rc = prompt_build(en, o, prompt, ++drop, stop_ids, ids, n_ids, e)))
			return rc;
	}
	if (*n_ids >= n_ctx) {
		size_t keep_tail = n_ctx - 2; /* + the first token = n_ctx - 1 */
		memmove(*ids + 1, *ids + (*n_ids - keep_tail), keep_tail * sizeof **ids);
		*n_ids = n_ctx - 1;
	}
	return 0;
}

int dormant_generate(dormant *d, const char *model, const char *prompt,
		     const struct dormant_gen_opts *o, dormant_text_fn cb, void *ud,
		     struct dormant_gen_result *res, char *err, size_t errlen)
{
	struct mgr_acquire_opts ao = { 0 };
	struct mgr_lease *l;
	struct gen_params gp;
	struct gen_stats st;
	struct relay rl = { cb, ud, o ? o->cancel : NULL };
	struct engine *en;
	struct dm_err e;
	int32_t *ids = NULL;
	size_t n_ids = 0;
	double t0 = now_s(), t_run;
	int rc;

	if (res)
		memset(res, 0, sizeof *res);
	if (o && o->has_keep_alive) {
		ao.has_keep_alive = true;
		ao.keep_alive_ms = o->keep_alive_ms;
	}
	/* one cancel flag: the queue, the load and the token loop all poll it */
	ao.cancel = o ? o->cancel : NULL;
	if ((rc = mgr_acquire(d->m, model, &ao, &l, &e)))
		return fail(err, errlen, &e, rc);
	en = mgr_lease_handle(l);
	gen_params_default(&gp);
	if (o) {
		if (o->max_tokens > 0)
			gp.n_predict = o->max_tokens;
		if (o->temperature >= 0)
			gp.sample.temp = o->temperature;
		if (o->top_k >= 0)
			gp.sample.top_k = o->top_k;
		if (o->top_p >= 0)
			gp.sample.top_p = o->top_p;
		if (o->min_p >= 0)
			gp.sample.min_p = o->min_p;
		if (o->repeat_penalty > 0)
			gp.sample.repeat_penalty = o->repeat_penalty;
		gp.sample.freq_penalty = o->frequency_penalty;
		gp.sample.presence_penalty = o->presence_penalty;
		gp.sample.seed = o->seed;
		for (int i = 0; i < 4 && i < GEN_MAX_STOP && o->stop[i]; i++)
			gp.stop[i] = o->stop[i];
	}
	if ((rc = prompt_fit(en, o, prompt, gp.stop_ids, &ids, &n_ids, &e))) {
		if (rc == DM_ETOOLONG && res) {
			res->n_prompt = (int)n_ids;
			res->n_ctx = en->ctx->n_ctx;
		}
		goto out;
	}
	t_run = now_s();
	rc = gen_run(en->ctx, en->v, ids, n_ids, &gp, relay_text, &rl, rl.cancel, &st, &e);
	if (!rc) {
		/* from the call (waiting and loading included) to the first token */
		double ttft = (t_run - t0) + st.t_first_token_s;
		record_ttft(d, mgr_lease_model(l), mgr_lease_cold(l), ttft);
		if (res) {
			res->n_prompt = st.n_prompt;
			res->n_gen = st.n_gen;
			res->n_ctx = en->ctx->n_ctx;
			res->load_s = mgr_lease_load_s(l);
			res->ttft_s = ttft;
			res->prompt_s = st.t_prompt_s;
			res->gen_s = st.t_gen_s;
			snprintf(res->finish, sizeof res->finish, "%s", gen_stop_name(st.stop));
			snprintf(res->model, sizeof res->model, "%s", mgr_lease_model(l));
			snprintf(res->fallback_reason, sizeof res->fallback_reason, "%s",
				 mgr_lease_fallback_reason(l));
		}
	}
out:
	free(ids);
	mgr_release(l);
	return rc ? fail(err, errlen, &e, rc) : 0;
}

int dormant_embed(dormant *d, const char *model, const char *text, float *out, size_t cap,
		  size_t *dim, struct dormant_embed_info *info, char *err, size_t errlen)
{
	struct mgr_lease *l;
	struct engine *en;
	struct dm_err e;
	int32_t *ids = NULL;
	size_t n = 0;
	int rc;

	if ((rc = mgr_acquire(d->m, model, NULL, &l, &e)))
		return fail(err, errlen, &e, rc);
	en = mgr_lease_handle(l);
	*dim = (size_t)en->m->hp.n_embd;
	if (cap < *dim)
		rc = dm_err_set(&e, DM_ENOSPC, "embedding has %zu values, buffer holds %zu", *dim, cap);
	else if (!(rc = tok_encode(en->v, text, strlen(text), TOK_ADD_SPECIAL, &ids, &n, &e)))
		rc = n ? model_embed(en->ctx, ids, (int32_t)n, true, out, &e)
		       : dm_err_set(&e, DM_EINVAL, "empty input");
	if (info) {
		info->n_tokens = (int)n;
		info->load_s = mgr_lease_load_s(l);
		snprintf(info->model, sizeof info->model, "%s", mgr_lease_model(l));
	}
	free(ids);
	mgr_release(l);
	return rc ? fail(err, errlen, &e, rc) : 0;
}

int dormant_load(dormant *d, const char *model, char *err, size_t errlen)
{
	struct dm_err e;
	int rc = mgr_load(d->m, model, &e);
	return rc ? fail(err, errlen, &e, rc) : 0;
}

int dormant_load_keep_alive(dormant *d, const char *model, int64_t keep_alive_ms, double *load_s,
			    char *err, size_t errlen)
{
	struct mgr_acquire_opts ao = { .has_keep_alive = true, .keep_alive_ms = keep_alive_ms };
	struct mgr_lease *l;
	struct dm_err e;
	int rc = mgr_acquire(d->m, model, &ao, &l, &e);
	if (rc)
		return fail(err, errlen, &e, rc);
	if (load_s)
		*load_s = mgr_lease_load_s(l);
	mgr_release(l);
	return 0;
}

int dormant_unload(dormant *d, const char *model, char *err, size_t errlen)
{
	struct dm_err e;
	int rc = mgr_unload(d->m, model, &e);
	return rc ? fail(err, errlen, &e, rc) : 0;
}

int dormant_check_model(dormant *d, const char *model, uint64_t *est_bytes, char *err, size_t errlen)
{
	struct dm_err e;
	int rc = mgr_check_model(d->m, model, est_bytes, &e);
	return rc ? fail(err, errlen, &e, rc) : 0;
}

static void observe(void *ud, const struct mgr_event *ev)
{
	struct dormant *d = ud;
	struct dormant_event e = { .model = ev->model, .from = mgr_state_name(ev->from),
				   .to = mgr_state_name(ev->to), .seconds = ev->seconds,
				   .bytes = ev->bytes, .rss = ev->rss,
				   .rss_anon = ev->rss_anon, .rss_file = ev->rss_file, .evict = ev->evict,
				   .error = ev->error };
	for (size_t i = 0; i < d->n_obs; i++)
		d->obs[i].fn(d->obs[i].ud, &e);
}

/* The manager's one observer is `observe`, detached while obs changes (the
 * manager takes its lock to detach: no call is running afterwards). */
int dormant_observe_add(dormant *d, void (*fn)(void *ud, const struct dormant_event *ev), void *ud)
{
	int rc = -1;
	pthread_mutex_lock(&d->obs_mu);
	if (fn && d->n_obs < sizeof d->obs / sizeof d->obs[0]) {
		mgr_set_observer(d->m, NULL, NULL);
		d->obs[d->n_obs].fn = fn;
		d->obs[d->n_obs].ud = ud;
		d->n_obs++;
		mgr_set_observer(d->m, observe, d);
		rc = 0;
	}
	pthread_mutex_unlock(&d->obs_mu);
	return rc;
}

void dormant_observe_remove(dormant *d, void (*fn)(void *ud, const struct dormant_event *ev), void *ud)
{
	pthread_mutex_lock(&d->obs_mu);
	mgr_set_observer(d->m, NULL, NULL);
	for (size_t i = 0; i < d->n_obs; i++)
		if (d->obs[i].fn == fn && d->obs[i].ud == ud) {
			d->obs[i] = d->obs[--d->n_obs];
			break;
		}
	if (d->n_obs)
		mgr_set_observer(d->m, observe, d);
	pthread_mutex_unlock(&d->obs_mu);
}

const struct dm_config *dormant_config(const dormant *d)
{
	return d->cfg;
}

size_t dormant_status(dormant *d, struct dormant_model_status *out, size_t cap)
{
	struct mgr_model_status s[CFG_MAX_MODELS * 2];
	size_t n = mgr_status(d->m, s, sizeof s / sizeof s[0]);
	uint64_t now = mgr_now_ms(d->m);

	for (size_t i = 0; i < n && i < cap && i < sizeof s / sizeof s[0]; i++) {
		struct dormant_model_status *o = &out[i];
		memset(o, 0, sizeof *o);
		_Static_assert(sizeof o->name == sizeof s[i].name, "name sizes");
		_Static_assert(sizeof o->path == sizeof s[i].path, "path sizes");
		_Static_assert(sizeof o->last_error == sizeof s[i].last_error, "error sizes");
		memcpy(o->name, s[i].name, sizeof o->name);
		memcpy(o->path, s[i].path, sizeof o->path);
		snprintf(o->state, sizeof o->state, "%s", mgr_state_name(s[i].state));
		snprintf(o->role, sizeof o->role, "%s", mgr_role_name(s[i].role));
		snprintf(o->policy, sizeof o->policy, "%s", s[i].load == MGR_EAGER ? "eager" : "lazy");
		snprintf(o->mode, sizeof o->mode, "%s", mgr_mode_name(s[i].mode));
		o->keep_alive_ms = s[i].keep_alive_ms;
		o->in_use = s[i].in_use;
		o->queued = s[i].queued;
		o->est_bytes = s[i].est_bytes;
		o->bytes = s[i].bytes;
		o->load_count = s[i].load_count;
		o->unload_count = s[i].unload_count;
		o->evict_count = s[i].evict_count;
		o->last_load_s = s[i].last_load_s;
		o->load_s_total = s[i].load_s_total;
		o->unload_s_total = s[i].unload_s_total;
		o->cached_after_unload = s[i].cached_after_unload;
		o->expires_in_ms = s[i].expires_ms < 0 ? -1
				   : (s[i].expires_ms > (int64_t)now ? s[i].expires_ms - (int64_t)now : 0);
		o->progress_done = s[i].progress_done;
		o->progress_total = s[i].progress_total;
		o->rss_before_load = s[i].rss_before_load;
		o->rss_after_unload = s[i].rss_after_unload;
		memcpy(o->last_error, s[i].last_error, sizeof o->last_error);
		pthread_mutex_lock(&d->mu);
		for (size_t k = 0; k < d->n_ttft; k++)
			if (!strcmp(d->ttft[k].name, o->name)) {
				o->n_cold = d->ttft[k].n_cold;
				o->n_warm = d->ttft[k].n_warm;
				o->ttft_cold_s = d->ttft[k].cold_s;
				o->ttft_warm_s = d->ttft[k].warm_s;
			}
		pthread_mutex_unlock(&d->mu);
	}
	return n;
}

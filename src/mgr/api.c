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
#include "mgr/discover.h"
#include "mgr/engine.h"
#include "mgr/mgr.h"
#include "model/gen.h"
#include "tok/chat.h"

/* The public codes are the library's own, value for value. */
_Static_assert((int)DORMANT_EINVAL == (int)DM_EINVAL, "DORMANT_EINVAL");
_Static_assert((int)DORMANT_ENOMEM == (int)DM_ENOMEM, "DORMANT_ENOMEM");
_Static_assert((int)DORMANT_EIO == (int)DM_EIO, "DORMANT_EIO");
_Static_assert((int)DORMANT_EFORMAT == (int)DM_EFORMAT, "DORMANT_EFORMAT");
_Static_assert((int)DORMANT_ENOTFOUND == (int)DM_ENOTFOUND, "DORMANT_ENOTFOUND");
_Static_assert((int)DORMANT_ETYPE == (int)DM_ETYPE, "DORMANT_ETYPE");
_Static_assert((int)DORMANT_EUNSUPPORTED == (int)DM_EUNSUPPORTED, "DORMANT_EUNSUPPORTED");
_Static_assert((int)DORMANT_ERANGE == (int)DM_ERANGE, "DORMANT_ERANGE");
_Static_assert((int)DORMANT_EBUSY == (int)DM_EBUSY, "DORMANT_EBUSY");
_Static_assert((int)DORMANT_ECANCELED == (int)DM_ECANCELED, "DORMANT_ECANCELED");
_Static_assert((int)DORMANT_ETIMEDOUT == (int)DM_ETIMEDOUT, "DORMANT_ETIMEDOUT");
_Static_assert((int)DORMANT_ENOSPC == (int)DM_ENOSPC, "DORMANT_ENOSPC");
_Static_assert((int)DORMANT_ETOOBIG == (int)DM_ETOOBIG, "DORMANT_ETOOBIG");
_Static_assert((int)DORMANT_ETOOLONG == (int)DM_ETOOLONG, "DORMANT_ETOOLONG");

const char *dormant_code_str(int code)
{
	return dm_code_str(code);
}

struct ttft {
	char name[MGR_NAME_MAX];
	uint64_t n_cold, n_warm;
	double cold_s, warm_s;
};

struct dormant {
	/* the running configuration: replaced by dormant_reload under disc_mu
	 * (and reload_mu, which serialises reloads) */
	struct dm_config *cfg;
	char *cfg_path;              /* the file it was opened with (NULL: none) */
	char profile[32];            /* the profile asked for ("": $DORMANT_ENV) */
	pthread_mutex_t reload_mu;
	struct engine_backend_cfg bc;
	struct mgr *m;
	struct dormant_rag *rag;     /* embedding and rerank requests waiting for a batch */
	pthread_mutex_t mu; /* guards ttft */
	pthread_mutex_t obs_mu; /* serialises changes to obs (read under the manager's lock) */
	struct {
		void (*fn)(void *ud, const struct dormant_event *ev);
		void *ud;
	} obs[8];
	size_t n_obs;
	struct ttft ttft[CFG_MAX_MODELS * 2];
	size_t n_ttft;
	/* discovery (dormant_rescan), guarded by disc_mu, which is taken
	 * before (never inside) the manager's mutex */
	pthread_mutex_t disc_mu;
	struct disc *disc;
	char dirs[CFG_MAX_MODELS_DIRS][MGR_PATH_MAX]; /* --models-dir, after the config's */
	size_t n_dirs;
	int stores;                  /* -1: the config's discover, 0 off, 1 on */
	struct dreg { char name[MGR_NAME_MAX]; char path[MGR_PATH_MAX]; } *reg; /* what discovery registered */
	size_t n_reg;
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
	pthread_mutex_init(&d->disc_mu, NULL);
	pthread_mutex_init(&d->obs_mu, NULL);
	pthread_mutex_init(&d->reload_mu, NULL);
	d->stores = -1;
	if ((rc = disc_init(&d->disc, &e)))
		goto bad;
	if ((rc = dm_config_load(d->cfg, config, profile, &e)) ||
	    (rc = dormant_rag_init(&d->rag, d->cfg->max_queue, &e)))
		goto bad;
	/* what dormant_reload reads again */
	if (config && !(d->cfg_path = strdup(config))) {
		rc = dm_err_set(&e, DM_ENOMEM, "out of memory");
		goto bad;
	}
	snprintf(d->profile, sizeof d->profile, "%s", profile ? profile : "");
	dm_config_mgr(d->cfg, &mc);
	mc.log = log;
	mc.log_ud = log_ud;
	d->bc.drop_page_cache = d->cfg->drop_page_cache;
	mgr_engine_backend(&mc.backend, &d->bc);
	if ((rc = mgr_init(&d->m, &mc, &e)))
		goto bad;
	for (size_t i = 0; i < d->cfg->n_models; i++)
		if ((rc = engine_role_resolve(&d->cfg->models[i], dm_config_role_set(d->cfg, i), &e)) ||
		    (rc = mgr_add(d->m, &d->cfg->models[i], &e)))
			goto bad;
	if ((rc = mgr_start(d->m, &e)))
		goto bad;
	*out = d;
	return 0;
bad:
	dormant_close(d);
	return fail(err, errlen, &e, rc);
}

/* The [server] settings a model without its own section gets. */
static void model_defaults(const dormant *d, struct mgr_model_cfg *c)
{
	c->keep_alive_ms = d->cfg->keep_alive_ms;
	c->n_threads = d->cfg->threads;
	c->quantize_on_load = d->cfg->quantize_on_load;
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
	pthread_mutex_lock(&d->disc_mu); /* d->cfg: a reload may replace it */
	model_defaults(d, &c);
	pthread_mutex_unlock(&d->disc_mu);
	if ((rc = engine_role_resolve(&c, false, &e)) || (rc = mgr_add(d->m, &c, &e)))
		return fail(err, errlen, &e, rc);
	return 0;
}

void dormant_close(dormant *d)
{
	if (!d)
		return;
	mgr_free(d->m);
	dormant_rag_free(d->rag);
	free(d->cfg);
	free(d->cfg_path);
	disc_free(d->disc);
	free(d->reg);
	pthread_mutex_destroy(&d->mu);
	pthread_mutex_destroy(&d->disc_mu);
	pthread_mutex_destroy(&d->obs_mu);
	pthread_mutex_destroy(&d->reload_mu);
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
/* The context a request gets: its num_ctx, else the model's n_ctx, at
 * most what the KV cache reserves (n_ctx_max): the cache grows into its
 * reservation, the model is never reloaded for it. */
static int32_t request_ctx(const struct engine *en, const struct dormant_gen_opts *o)
{
	int32_t n = o && o->num_ctx > 0 ? o->num_ctx : en->n_ctx_default;
	return n < en->ctx->n_ctx_max ? n : en->ctx->n_ctx_max;
}

static int prompt_fit(struct engine *en, const struct dormant_gen_opts *o, const char *prompt,
		      int32_t stop_ids[GEN_MAX_STOP], int32_t **ids, size_t *n_ids, struct dm_err *e)
{
	const size_t n_ctx = (size_t)request_ctx(en, o);
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

/* ---- discovered models ---- */

/* What discovery registered under name, or NULL.  disc_mu held. */
static struct dreg *reg_find(dormant *d, const char *name)
{
	for (size_t i = 0; i < d->n_reg; i++)
		if (!strcmp(d->reg[i].name, name))
			return &d->reg[i];
	return NULL;
}

/* A request's options with a discovered model's defaults under them. */
struct gen_dflt {
	struct dormant_gen_opts o;
	char stop[DISC_MAX_STOP][64];
	char system[DISC_SYSTEM_MAX];
	struct dormant_msg *msgs;
};

static void gen_dflt_free(struct gen_dflt *g)
{
	if (g) {
		free(g->msgs);
		free(g);
	}
}

static bool params_any(const struct disc_params *p)
{
	return p->has_temperature || p->has_top_k || p->has_top_p || p->has_min_p || p->has_repeat_penalty ||
	       p->has_num_predict || p->stop[0][0];
}

/* Every field at its default (what NULL options mean). */
static const struct dormant_gen_opts unset = { .temperature = -1, .top_k = -1, .top_p = -1,
							.min_p = -1 };

/* o, or (for a model discovery registered with an Ollama system prompt or
 * params) a copy in *out with those filling what the request left unset:
 * the system prompt when the conversation has no system message, and the
 * sampling settings and stop strings it did not give.  NULL: out of
 * memory. */
static const struct dormant_gen_opts *gen_defaults(dormant *d, const char *name,
						   const struct dormant_gen_opts *o, struct gen_dflt **out)
{
	const struct disc_model *m = NULL;
	struct gen_dflt *g;
	const struct disc_params *p;
	bool has_sys = false;

	*out = NULL;
	pthread_mutex_lock(&d->disc_mu);
	if (reg_find(d, name))
		m = disc_find(d->disc, name);
	if (!m || (!m->system[0] && !params_any(&m->params))) {
		pthread_mutex_unlock(&d->disc_mu);
		return o;
	}
	if (!(g = calloc(1, sizeof *g))) {
		pthread_mutex_unlock(&d->disc_mu);
		return NULL;
	}
	g->o = o ? *o : unset;
	p = &m->params;
	memcpy(g->stop, p->stop, sizeof g->stop);
	memcpy(g->system, m->system, sizeof g->system);
	pthread_mutex_unlock(&d->disc_mu);
	if (p->has_temperature && g->o.temperature < 0)
		g->o.temperature = p->temperature;
	if (p->has_top_k && g->o.top_k < 0)
		g->o.top_k = p->top_k;
	if (p->has_top_p && g->o.top_p < 0)
		g->o.top_p = p->top_p;
	if (p->has_min_p && g->o.min_p < 0)
		g->o.min_p = p->min_p;
	if (p->has_repeat_penalty && g->o.repeat_penalty <= 0)
		g->o.repeat_penalty = p->repeat_penalty;
	if (p->has_num_predict && g->o.max_tokens <= 0)
		g->o.max_tokens = p->num_predict;
	if (!g->o.stop[0])
		for (int i = 0; i < 4 && i < DISC_MAX_STOP && g->stop[i][0]; i++)
			g->o.stop[i] = g->stop[i];
	for (size_t i = 0; i < g->o.n_messages; i++)
		has_sys |= !strcmp(g->o.messages[i].role, "system");
	if (g->system[0] && g->o.n_messages && !has_sys) {
		if (!(g->msgs = calloc(g->o.n_messages + 1, sizeof *g->msgs))) {
			free(g);
			return NULL;
		}
		g->msgs[0] = (struct dormant_msg){ "system", g->system };
		memcpy(g->msgs + 1, g->o.messages, g->o.n_messages * sizeof *g->msgs);
		g->o.messages = g->msgs;
		g->o.n_messages++;
	} else if (g->system[0] && g->o.chat && !g->o.system) {
		g->o.system = g->system;
	}
	*out = g;
	return &g->o;
}

int dormant_discovery_set(dormant *d, const char *const *dirs, size_t n, int stores, struct dm_err *err)
{
	pthread_mutex_lock(&d->disc_mu);
	if (d->cfg->n_models_dirs + n > CFG_MAX_MODELS_DIRS) {
		pthread_mutex_unlock(&d->disc_mu);
		return dm_err_set(err, DM_EINVAL, "at most %d models folders", CFG_MAX_MODELS_DIRS);
	}
	for (size_t i = 0; i < n; i++)
		snprintf(d->dirs[i], sizeof d->dirs[i], "%s", dirs[i]);
	d->n_dirs = n;
	d->stores = stores;
	pthread_mutex_unlock(&d->disc_mu);
	return 0;
}

static const char *env_get(const char *name)
{
	return getenv(name);
}

int dormant_rescan(dormant *d, struct dormant_rescan *st, struct dm_err *err)
{
	struct disc_cfg dc = { 0 };
	char roots[3][MGR_PATH_MAX];
	struct dormant_rescan r = { 0 };
	struct dm_err e;
	int rc;

	pthread_mutex_lock(&d->disc_mu);
	for (size_t i = 0; i < d->cfg->n_models_dirs && dc.n_dirs < DISC_MAX_DIRS; i++)
		dc.dirs[dc.n_dirs++] = d->cfg->models_dirs[i];
	for (size_t i = 0; i < d->n_dirs && dc.n_dirs < DISC_MAX_DIRS; i++)
		dc.dirs[dc.n_dirs++] = d->dirs[i];
	if (d->stores < 0 ? d->cfg->discover : d->stores)
		disc_default_roots(&dc, env_get, roots);
	if ((rc = disc_scan(d->disc, &dc, err))) {
		pthread_mutex_unlock(&d->disc_mu);
		return rc;
	}
	/* drop what went away, broke or moved (an in-use one stays until the
	 * next scan finds it idle) */
	for (size_t i = d->n_reg; i-- > 0;) {
		const struct disc_model *m = disc_find(d->disc, d->reg[i].name);
		if (m && !m->rc && !strcmp(m->path, d->reg[i].path))
			continue;
		if (mgr_remove(d->m, d->reg[i].name, &e) == DM_EBUSY) {
			r.busy++;
			continue;
		}
		d->reg[i] = d->reg[--d->n_reg];
		r.removed++;
	}
	/* register what is new; a name the configuration (or --model) holds
	 * stays the configuration's */
	for (size_t i = 0; i < disc_count(d->disc); i++) {
		const struct disc_model *m = disc_get(d->disc, i);
		struct mgr_model_cfg c;
		struct dreg *nr;
		r.found++;
		if (m->rc) {
			r.broken++;
			continue;
		}
		if (reg_find(d, m->name))
			continue;
		if (mgr_has(d->m, m->name)) {
			r.shadowed++;
			continue;
		}
		mgr_model_cfg_default(&c);
		snprintf(c.name, sizeof c.name, "%s", m->name);
		snprintf(c.path, sizeof c.path, "%s", m->path);
		model_defaults(d, &c);
		if (m->params.num_ctx)
			c.n_ctx = m->params.num_ctx;
		if (!(nr = realloc(d->reg, (d->n_reg + 1) * sizeof *nr))) {
			pthread_mutex_unlock(&d->disc_mu);
			return dm_err_set(err, DM_ENOMEM, "out of memory");
		}
		d->reg = nr;
		if (engine_role_resolve(&c, false, &e) || mgr_add(d->m, &c, &e)) { /* the file's role: embed, rerank, generate */
			r.broken++;
			continue;
		}
		snprintf(nr[d->n_reg].name, sizeof nr[d->n_reg].name, "%s", m->name);
		snprintf(nr[d->n_reg].path, sizeof nr[d->n_reg].path, "%s", m->path);
		d->n_reg++;
		r.added++;
	}
	r.header_reads = disc_header_reads(d->disc);
	pthread_mutex_unlock(&d->disc_mu);
	if (st)
		*st = r;
	return 0;
}

size_t dormant_discovered(dormant *d, struct disc_model *out, size_t cap)
{
	size_t n;
	pthread_mutex_lock(&d->disc_mu);
	n = disc_count(d->disc);
	for (size_t i = 0; i < n && i < cap; i++)
		out[i] = *disc_get(d->disc, i);
	pthread_mutex_unlock(&d->disc_mu);
	return n;
}

bool dormant_discovered_model(dormant *d, const char *name, struct disc_model *out)
{
	const struct disc_model *m = NULL;
	pthread_mutex_lock(&d->disc_mu);
	if (reg_find(d, name) && (m = disc_find(d->disc, name)) && out)
		*out = *m;
	pthread_mutex_unlock(&d->disc_mu);
	return m != NULL;
}

/* ---- reload ---- */

static int cfg_index(const struct dm_config *c, const char *name)
{
	for (size_t i = 0; i < c->n_models; i++)
		if (!strcmp(c->models[i].name, name))
			return (int)i;
	return -1;
}

/* Where a configuration key was set ("dormant.ini:12"), or fallback. */
static const char *cfg_src(const struct dm_config *c, const char *key, const char *fallback)
{
	for (size_t i = 0; i < c->n_src; i++)
		if (!strcmp(c->src[i].key, key))
			return c->src[i].src;
	return fallback;
}

/* The line of model i's section (its path's, or its role's when the role
 * is the problem) in front of a model's problem. */
static int model_problem(const struct dm_config *c, size_t i, const char *what, const char *file,
			 const struct dm_err *why, struct dm_err *err)
{
	char key[MGR_NAME_MAX + 16];
	snprintf(key, sizeof key, "model.%s.%s", c->models[i].name, what);
	return dm_err_set(err, why->code, "%s: model '%s': %s", cfg_src(c, key, file), c->models[i].name,
			  why->msg);
}

/* Everything dormant_reload checks before it changes anything (nc's roles
 * are resolved here).  disc_mu and the manager's lock are taken only to
 * look. */
static int reload_check(dormant *d, struct dm_config *nc, struct dm_err *err)
{
	const char *file = d->cfg_path ? d->cfg_path : "config";
	struct mgr_model_status *st = NULL;
	struct mgr_cfg mc = { 0 };
	struct mgr *tm = NULL;
	struct dm_err e;
	size_t n;
	int rc = 0;

	for (size_t i = 0; i < nc->n_models; i++)
		if (engine_role_resolve(&nc->models[i], dm_config_role_set(nc, i), &e))
			return model_problem(nc, i, dm_config_role_set(nc, i) ? "role" : "path", file, &e, err);
	/* a name registered outside the configuration (--model) stays theirs;
	 * one discovery registered goes to the configuration */
	for (size_t i = 0; i < nc->n_models; i++) {
		const char *name = nc->models[i].name;
		bool disc;
		pthread_mutex_lock(&d->disc_mu);
		disc = reg_find(d, name) != NULL;
		pthread_mutex_unlock(&d->disc_mu);
		if (!disc && cfg_index(d->cfg, name) < 0 && mgr_has(d->m, name)) {
			dm_err_set(&e, DM_EINVAL, "the name is registered outside the configuration (--model)");
			return model_problem(nc, i, "path", file, &e, err);
		}
	}
	/* `dormant config check`: every model on a manager that never loads,
	 * with the other registered names there for fallbacks to find */
	dm_config_mgr(nc, &mc);
	mgr_engine_backend(&mc.backend, NULL);
	mc.no_reaper = true;
	if ((rc = mgr_init(&tm, &mc, err)))
		return rc;
	for (size_t i = 0; i < nc->n_models && !rc; i++)
		if ((rc = mgr_add(tm, &nc->models[i], &e)))
			rc = model_problem(nc, i, "path", file, &e, err);
	n = mgr_status(d->m, NULL, 0);
	if (!rc && n && !(st = calloc(n, sizeof *st)))
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	if (!rc) {
		size_t now = mgr_status(d->m, st, n); /* a rescan may have changed the count */
		n = now < n ? now : n;
	}
	for (size_t i = 0; i < n && !rc; i++) {
		struct mgr_model_cfg c;
		if (cfg_index(nc, st[i].name) >= 0 || cfg_index(d->cfg, st[i].name) >= 0)
			continue;
		mgr_model_cfg_default(&c);
		snprintf(c.name, sizeof c.name, "%s", st[i].name);
		snprintf(c.path, sizeof c.path, "%s", st[i].path);
		rc = mgr_add(tm, &c, err);
	}
	for (size_t i = 0; i < nc->n_models && !rc; i++)
		if (mgr_check_model(tm, nc->models[i].name, NULL, &e))
			rc = model_problem(nc, i, strncmp(e.msg, "fallback", 8) ? "path" : "fallback", file, &e, err);
	free(st);
	mgr_free(tm);
	return rc;
}

/* Server settings that only a restart applies: noted in r, and kept in nc
 * as they are now. */
static void reload_restart(const struct dm_config *old, struct dm_config *nc, struct dormant_reload *r)
{
#define KEEP(cond, field, key)                                                                   \
	do {                                                                                     \
		if (cond) {                                                                      \
			if (r->n_restart < sizeof r->restart / sizeof r->restart[0])             \
				snprintf(r->restart[r->n_restart], sizeof r->restart[0], "%s", key); \
			r->n_restart++;                                                          \
		}                                                                                \
		memcpy(&nc->field, &old->field, sizeof nc->field);                              \
	} while (0)
	KEEP(strcmp(old->host, nc->host), host, "server.host");
	KEEP(old->port != nc->port, port, "server.port");
	KEEP(strcmp(old->api_key, nc->api_key), api_key, "server.api_key");
	KEEP(old->max_body != nc->max_body, max_body, "server.max_body");
	KEEP(old->max_connections != nc->max_connections, max_connections, "server.max_connections");
	KEEP(old->request_timeout_ms != nc->request_timeout_ms, request_timeout_ms, "server.request_timeout");
	KEEP(old->max_connections_per_ip != nc->max_connections_per_ip, max_connections_per_ip,
	     "server.max_connections_per_ip");
	KEEP(old->header_timeout_ms != nc->header_timeout_ms, header_timeout_ms, "server.header_timeout");
	KEEP(old->max_tokens != nc->max_tokens, max_tokens, "server.max_tokens");
	KEEP(old->drop_page_cache != nc->drop_page_cache, drop_page_cache, "server.drop_page_cache");
#undef KEEP
}

static void name_add(char (*list)[64], size_t cap, size_t *n, const char *name)
{
	if (*n < cap)
		snprintf(list[*n], 64, "%s", name);
	(*n)++;
}

static void count_apply(struct dormant_reload *r, enum mgr_apply how)
{
	if (how == MGR_APPLY_UNLOADED)
		r->n_unloaded++;
	else if (how == MGR_APPLY_PENDING)
		r->n_pending++;
}

/* Applies a checked configuration: nothing here can be refused but an
 * allocation.  disc_mu held. */
static int reload_apply(dormant *d, const struct dm_config *nc, struct dormant_reload *r, bool *load,
			struct dm_err *err)
{
	const struct dm_config *old = d->cfg;
	struct mgr_cfg mc = { 0 };
	enum mgr_apply how;
	struct dm_err e;
	int rc = 0;

	/* gone from the file: unknown to new requests from now on */
	for (size_t i = 0; i < old->n_models; i++)
		if (cfg_index(nc, old->models[i].name) < 0 && !mgr_retire(d->m, old->models[i].name, &how, &e)) {
			name_add(r->removed, 32, &r->n_removed, old->models[i].name);
			count_apply(r, how);
		}
	for (size_t i = 0; i < nc->n_models; i++) {
		const struct mgr_model_cfg *c = &nc->models[i];
		struct dreg *g = reg_find(d, c->name);
		unsigned diff;
		load[i] = false;
		if (g) { /* discovery's until now: the configuration's from here */
			if (!mgr_retire(d->m, c->name, &how, &e))
				count_apply(r, how);
			*g = d->reg[--d->n_reg];
		}
		if (cfg_index(old, c->name) >= 0 && !mgr_update(d->m, c, &diff, &how, &e)) {
			count_apply(r, how);
			if (diff)
				name_add(r->changed, 32, &r->n_changed, c->name);
			else
				name_add(r->kept, 32, &r->n_kept, c->name);
			load[i] = diff && c->load == MGR_EAGER;
		} else if (!mgr_add(d->m, c, &e)) {
			name_add(r->added, 32, &r->n_added, c->name);
			load[i] = c->load == MGR_EAGER;
		} else if (!rc) {
			rc = dm_err_set(err, e.code, "model '%s': %s", c->name, e.msg);
		}
	}
	dm_config_mgr(nc, &mc);
	r->n_evicted = (size_t)mgr_set_limits(d->m, &mc);
	memcpy(d->cfg, nc, sizeof *nc);
	/* discovered models follow the new [server] defaults */
	for (size_t i = 0; i < d->n_reg; i++) {
		const struct disc_model *m = disc_find(d->disc, d->reg[i].name);
		struct mgr_model_cfg c;
		unsigned diff;
		mgr_model_cfg_default(&c);
		snprintf(c.name, sizeof c.name, "%s", d->reg[i].name);
		snprintf(c.path, sizeof c.path, "%s", d->reg[i].path);
		model_defaults(d, &c);
		if (m && m->params.num_ctx)
			c.n_ctx = m->params.num_ctx;
		engine_role_resolve(&c, false, &e);
		if (!mgr_update(d->m, &c, &diff, &how, &e) && diff) {
			name_add(r->changed, 32, &r->n_changed, c.name);
			count_apply(r, how);
		}
	}
	return rc;
}

/* Whether name is loaded, loading or in use (or unknown): no eager load for it. */
static bool model_loaded(dormant *d, const char *name)
{
	size_t n = mgr_status(d->m, NULL, 0);
	struct mgr_model_status *st = n ? calloc(n, sizeof *st) : NULL;
	bool yes = true;
	if (st) {
		size_t now = mgr_status(d->m, st, n); /* fewer if some went meanwhile */
		for (size_t i = 0; i < n && i < now; i++)
			if (!strcmp(st[i].name, name))
				yes = st[i].in_use || st[i].queued ||
				      (st[i].state != MGR_DORMANT && st[i].state != MGR_FAILED);
	}
	free(st);
	return yes;
}

int dormant_reload(dormant *d, struct dormant_reload *res, char *err, size_t errlen)
{
	struct dm_config *nc = calloc(1, sizeof *nc);
	struct dormant_reload r;
	struct dormant_rescan rs;
	bool load[CFG_MAX_MODELS];
	struct dm_err e;
	int rc;

	_Static_assert(sizeof r.kept[0] == MGR_NAME_MAX && sizeof r.kept / sizeof r.kept[0] == CFG_MAX_MODELS,
		       "one row per model of a configuration");
	memset(&r, 0, sizeof r);
	if (!nc) {
		dm_err_set(&e, DM_ENOMEM, "out of memory");
		return fail(err, errlen, &e, DM_ENOMEM);
	}
	pthread_mutex_lock(&d->reload_mu);
	if ((rc = dm_config_load(nc, d->cfg_path, d->profile[0] ? d->profile : NULL, &e)) ||
	    (rc = reload_check(d, nc, &e)))
		goto out;
	reload_restart(d->cfg, nc, &r);
	pthread_mutex_lock(&d->disc_mu);
	rc = reload_apply(d, nc, &r, load, &e);
	pthread_mutex_unlock(&d->disc_mu);
	if (!rc && !(rc = dormant_rescan(d, &rs, &e))) {
		r.disc_found = rs.found;
		r.disc_added = rs.added;
		r.disc_removed = rs.removed;
		r.disc_broken = rs.broken;
	}
	/* eager models that are new or changed load now, as at start-up, unless
	 * already loaded or busy (a reload does not wait behind a request); one
	 * that fails keeps its error in its status (the reload stands) */
	for (size_t i = 0; i < nc->n_models; i++) {
		struct mgr_lease *l;
		struct dm_err le;
		if (load[i] && !model_loaded(d, nc->models[i].name) &&
		    !mgr_acquire(d->m, nc->models[i].name, NULL, &l, &le))
			mgr_release(l);
	}
out:
	pthread_mutex_unlock(&d->reload_mu);
	free(nc);
	if (res)
		*res = r;
	return rc ? fail(err, errlen, &e, rc) : 0;
}

void dormant_reload_summary(const struct dormant_reload *r, char *buf, size_t cap)
{
	size_t k = 0;
	k += (size_t)snprintf(buf, cap, "reload: %zu kept, %zu changed, %zu added, %zu removed, %zu need%s a restart",
			      r->n_kept, r->n_changed, r->n_added, r->n_removed, r->n_restart,
			      r->n_restart == 1 ? "s" : "");
	for (size_t i = 0; i < r->n_restart && i < sizeof r->restart / sizeof r->restart[0] && k < cap; i++)
		k += (size_t)snprintf(buf + k, cap - k, "%s%s%s", i ? ", " : " (", r->restart[i],
				      i + 1 == r->n_restart || i + 1 == sizeof r->restart / sizeof r->restart[0] ? ")" : "");
	if (k < cap)
		snprintf(buf + k, cap - k, "; %zu unloaded, %zu when idle, %zu evicted; rescan: %zu found, %zu added, "
			 "%zu removed, %zu broken", r->n_unloaded, r->n_pending, r->n_evicted, r->disc_found,
			 r->disc_added, r->disc_removed, r->disc_broken);
}

int dormant_generate(dormant *d, const char *model, const char *prompt,
		     const struct dormant_gen_opts *o, dormant_text_fn cb, void *ud,
		     struct dormant_gen_result *res, char *err, size_t errlen)
{
	struct mgr_acquire_opts ao = { 0 };
	struct mgr_lease *l;
	struct gen_params gp;
	struct gen_stats st;
	struct relay rl;
	struct engine *en;
	struct dm_err e;
	int32_t *ids = NULL;
	size_t n_ids = 0;

	if (!o)
		o = &unset;
	rl = (struct relay){ cb, ud, o->cancel };
	double t0 = now_s(), t_run;
	struct gen_dflt *dflt = NULL;
	size_t snap_max = 0;
	int rc;

	if (res)
		memset(res, 0, sizeof *res);
	if (o && o->has_keep_alive) {
		ao.has_keep_alive = true;
		ao.keep_alive_ms = o->keep_alive_ms;
	}
	/* one cancel flag: the queue, the load and the token loop all poll it */
	ao.cancel = o ? o->cancel : NULL;
	if ((rc = dormant_role_check(d, model, MGR_ROLE_GENERATE, &e)) ||
	    (rc = mgr_acquire(d->m, model, &ao, &l, &e)))
		return fail(err, errlen, &e, rc);
	en = mgr_lease_handle(l);
	if (!(o = gen_defaults(d, mgr_lease_model(l), o, &dflt))) {
		mgr_release(l);
		dm_err_set(&e, DM_ENOMEM, "out of memory");
		return fail(err, errlen, &e, DM_ENOMEM);
	}
	gen_params_default(&gp);
	gp.reuse_prefix = true; /* the conversation the cache holds is reused */
	gp.n_ctx = request_ctx(en, o);
	/* the budget holds what this request's cache may grow to (waiting for,
	 * or refusing with, the manager's "insufficient memory"); when it
	 * cannot, this model's saved prefixes go first, and none is saved
	 * during this request */
	snap_max = en->ctx->snap_max;
	rc = mgr_lease_reserve(l, engine_bytes_for(en, gp.n_ctx), ao.cancel, &e);
	if (rc == DM_ETOOBIG && snap_max) {
		model_ctx_set_snap_max(en->ctx, 0);
		rc = mgr_lease_reserve(l, engine_bytes_for(en, gp.n_ctx), ao.cancel, &e);
	}
	if (rc || (rc = model_ctx_set_n_ctx(en->ctx, gp.n_ctx, &e))) {
		if (res)
			res->n_ctx = gp.n_ctx;
		goto out;
	}
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
			res->n_ctx = request_ctx(en, o);
		}
		goto out;
	}
	t_run = now_s();
	rc = gen_run(en->ctx, en->v, ids, n_ids, &gp, relay_text, &rl, rl.cancel, &st, &e);
	if (rc)
		model_ctx_reset(en->ctx); /* whatever the cache holds now is not worth reusing */
	/* an idle loaded model holds the conversation it caches, not n_ctx's worth */
	model_ctx_trim(en->ctx);
	if (!rc) {
		/* from the call (waiting and loading included) to the first token */
		double ttft = (t_run - t0) + st.t_first_token_s;
		record_ttft(d, mgr_lease_model(l), mgr_lease_cold(l), ttft);
		if (res) {
			res->n_prompt = st.n_prompt;
			res->n_cached = st.n_cached;
			res->n_gen = st.n_gen;
			res->n_ctx = request_ctx(en, o);
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
	model_ctx_set_snap_max(en->ctx, snap_max);
	free(ids);
	gen_dflt_free(dflt);
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

struct mgr *dormant_mgr(dormant *d)
{
	return d->m;
}

struct dormant_rag *dormant_rag_state(dormant *d)
{
	return d->rag;
}

/* Which requests each role answers: a row per role, a column per request
 * kind.  A generating decoder still embeds (mean-pooled, as before roles). */
static const bool role_answers[3][3] = {
	/*                 generate embed  rerank */
	[MGR_ROLE_GENERATE] = { true, true, false },
	[MGR_ROLE_EMBED] = { false, true, false },
	[MGR_ROLE_RERANK] = { false, false, true },
};

int dormant_role_check(dormant *d, const char *model, enum mgr_role want, struct dm_err *err)
{
	enum mgr_role role;
	if (mgr_model_role(d->m, model, &role))
		return 0; /* unknown: mgr_acquire says so */
	if ((unsigned)role < 3 && (unsigned)want < 3 && role_answers[role][want])
		return 0;
	return dm_err_set(err, DM_EINVAL, "model '%s' has role %s: it does not answer %s requests", model,
			  mgr_role_name(role), mgr_role_name(want));
}

size_t dormant_status(dormant *d, struct dormant_model_status *out, size_t cap)
{
	/* discovery can register any number of models: sized to the caller */
	struct mgr_model_status *s = cap ? calloc(cap, sizeof *s) : NULL;
	size_t n = mgr_status(d->m, s, s ? cap : 0);
	uint64_t now = mgr_now_ms(d->m);

	for (size_t i = 0; s && i < n && i < cap; i++) {
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
		dormant_rag_counts(d->rag, o->name, &o->encode_batches, &o->encode_requests, &o->encode_waiting);
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
	free(s);
	return n;
}

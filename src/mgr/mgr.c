/*
 * mgr/mgr — the lifecycle state machine (see mgr.h for the invariants).
 *
 * One mutex guards every model's state; one condition variable is
 * broadcast on every change (load done, lease released, unload done), and
 * waiters re-check their own condition.  Requests waiting for a model form
 * a first-come-first-served queue (a list of tickets, one per waiter): only
 * the ticket at the head may take the model, so a wake-up of every waiter
 * never lets a later arrival overtake an earlier one.  Backend calls (load, warm-up,
 * unload) happen with the mutex released, the model marked LOADING or
 * UNLOADING so nobody else touches it meanwhile.
 */
#include "mgr/mgr.h"

#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"

/* A queued request's place in its model's line (on the waiter's stack). */
struct ticket {
	struct ticket *next;
};

struct mmodel {
	struct mgr_model_cfg cfg;
	enum mgr_state state;
	bool in_use;
	uint32_t queued;           /* tickets in the line */
	struct ticket *line, *line_tail; /* arrival order; the head is served next */
	struct mgr_loaded loaded;
	uint64_t est_bytes;
	uint64_t reserved;         /* what the lease may grow to (mgr_lease_reserve); 0: none */
	uint64_t last_used_ms;
	int64_t expires_ms; /* -1: none */
	int64_t lease_keep_alive_ms;
	uint64_t load_count, unload_count, evict_count;
	double last_load_s, load_s_total, unload_s_total;
	struct mgr_progress prog;
	char last_error[DM_ERR_MSG_MAX];
	uint64_t rss_before_load, rss_after_unload;
	uint64_t anon_after_unload, file_after_unload, cached_after_unload;
	/* a reload's changes waiting for an idle moment (see settle) */
	bool retired;              /* unregistered: no new request finds it */
	enum { PEND_NONE, PEND_LIVE, PEND_LOAD } pending; /* next replaces cfg */
	struct mgr_model_cfg next;
};

struct mgr {
	struct mgr_cfg cfg;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct mmodel **models;
	size_t n, cap;
	struct mmodel **removed;   /* mgr_remove's, freed by mgr_free (see there) */
	size_t n_removed;
	pthread_t reaper;
	bool reaper_started, stop;
	mgr_observer_fn observe;    /* under mu */
	void *observe_ud;
};

struct mgr_lease {
	struct mgr *m;
	struct mmodel *mm;
	bool cold;
	double load_s;
	char reason[DM_ERR_MSG_MAX];
};

const char *mgr_state_name(enum mgr_state s)
{
	static const char *n[] = { "dormant", "loading", "ready", "unloading", "failed" };
	return (unsigned)s < 5 ? n[s] : "?";
}

const char *mgr_role_name(enum mgr_role r)
{
	static const char *n[] = { "generate", "embed", "rerank" };
	return (unsigned)r < 3 ? n[r] : "?";
}

const char *mgr_mode_name(enum mgr_load_mode md)
{
	static const char *n[] = { "mmap", "read", "mlock", "prefetch" };
	return (unsigned)md < 4 ? n[md] : "?";
}

void mgr_model_cfg_default(struct mgr_model_cfg *c)
{
	memset(c, 0, sizeof *c);
	c->role = MGR_ROLE_GENERATE;
	c->load = MGR_LAZY;
	c->keep_alive_ms = 5 * 60 * 1000;
	c->allow_override = true;
	c->mode = MGR_MODE_MMAP;
	c->quantize_on_load = -1;
	c->warmup = -1;
	c->kv_persist = -1;
	c->prefix_cache_max = 32ull << 20;
}

static uint64_t real_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t mgr_now_ms(struct mgr *m)
{
	return m->cfg.now_ms ? m->cfg.now_ms(m->cfg.clock_ud) : real_ms();
}

static double real_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Waits on the condition until woken or the deadline passes (a
 * CLOCK_MONOTONIC time: the condition variable is created with that clock,
 * so a wall-clock step never shortens or stretches a wait). */
static int wait_until(struct mgr *m, const struct timespec *deadline)
{
	return pthread_cond_timedwait(&m->cv, &m->mu, deadline);
}

static void deadline_in(struct timespec *ts, int64_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

static bool before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static uint64_t rss_bytes(void)
{
	struct dm_mem_usage u;
	return dm_mem_usage(&u) == 0 ? u.rss : 0;
}

__attribute__((format(printf, 3, 4)))
static void logf_(struct mgr *m, const struct mmodel *mm, const char *fmt, ...)
{
	char line[512];
	int k;
	va_list ap;

	if (!m->cfg.log)
		return;
	k = snprintf(line, sizeof line, "model '%s': ", mm->cfg.name);
	va_start(ap, fmt);
	vsnprintf(line + k, sizeof line - (size_t)k, fmt, ap);
	va_end(ap);
	m->cfg.log(m->cfg.log_ud, line);
}

/* Tells the observer (if any) about mm's transition from `from` to its
 * current state; called with m->mu held. */
static void emit(struct mgr *m, const struct mmodel *mm, enum mgr_state from, double seconds,
		 uint64_t bytes, bool evict)
{
	struct mgr_event ev = { .model = mm->cfg.name, .from = from, .to = mm->state,
				.seconds = seconds, .bytes = bytes, .evict = evict,
				.error = mm->state == MGR_FAILED ? mm->last_error : "" };
	struct dm_mem_usage u;
	if (!m->observe)
		return;
	/* one read of /proc/self/status: an observer draws memory over time,
	 * and a short load and unload can fall between its own samples */
	if ((mm->state == MGR_LOADING || mm->state == MGR_READY || mm->state == MGR_DORMANT) &&
	    !dm_mem_usage(&u)) {
		ev.rss = u.rss;
		ev.rss_anon = u.rss_anon;
		ev.rss_file = u.rss_file;
	}
	m->observe(m->observe_ud, &ev);
}

void mgr_set_observer(struct mgr *m, mgr_observer_fn fn, void *ud)
{
	pthread_mutex_lock(&m->mu);
	m->observe = fn;
	m->observe_ud = ud;
	pthread_mutex_unlock(&m->mu);
}

/* The registered model of that name; a retired one (mgr_retire) still in
 * the list until its requests end is no longer found. */
static struct mmodel *find(struct mgr *m, const char *name)
{
	for (size_t i = 0; i < m->n; i++)
		if (!m->models[i]->retired && !strcmp(m->models[i]->cfg.name, name))
			return m->models[i];
	return NULL;
}

static void *reaper_main(void *arg);

int mgr_init(struct mgr **out, const struct mgr_cfg *cfg, struct dm_err *err)
{
	struct mgr *m = calloc(1, sizeof *m);
	pthread_condattr_t ca;

	*out = NULL;
	if (!m)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	if (!cfg->backend.load || !cfg->backend.unload || !cfg->backend.estimate) {
		free(m);
		return dm_err_set(err, DM_EINVAL, "manager needs a backend with estimate, load and unload");
	}
	m->cfg = *cfg;
	if (!m->cfg.max_queue)
		m->cfg.max_queue = 16;
	if (m->cfg.queue_timeout_ms <= 0)
		m->cfg.queue_timeout_ms = 60000;
	pthread_mutex_init(&m->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (!cfg->no_reaper) {
		if (pthread_create(&m->reaper, NULL, reaper_main, m) != 0) {
			mgr_free(m);
			return dm_err_set(err, DM_ENOMEM, "cannot start the keep-alive thread");
		}
		m->reaper_started = true;
	}
	*out = m;
	return 0;
}

int mgr_add(struct mgr *m, const struct mgr_model_cfg *c, struct dm_err *err)
{
	struct mmodel *mm;
	int rc = 0;

	if (!mgr_name_valid(c->name))
		return dm_err_set(err, DM_EINVAL, "bad model name '%s'", c->name);
	pthread_mutex_lock(&m->mu);
	if (find(m, c->name)) {
		rc = dm_err_set(err, DM_EINVAL, "model '%s' is registered twice", c->name);
		goto out;
	}
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 8;
		struct mmodel **nm = realloc(m->models, cap * sizeof *nm);
		if (!nm) {
			rc = dm_err_set(err, DM_ENOMEM, "out of memory");
			goto out;
		}
		m->models = nm;
		m->cap = cap;
	}
	mm = calloc(1, sizeof *mm);
	if (!mm) {
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
		goto out;
	}
	mm->cfg = *c;
	mm->state = MGR_DORMANT;
	mm->expires_ms = -1;
	m->models[m->n++] = mm;
out:
	pthread_mutex_unlock(&m->mu);
	return rc;
}

static void unload_locked(struct mgr *m, struct mmodel *x, bool evict);

bool mgr_name_valid(const char *name)
{
	size_t n = strnlen(name, MGR_NAME_MAX), seg = 0;
	if (!n || n >= MGR_NAME_MAX)
		return false;
	for (size_t i = 0; i <= n; i++) {
		unsigned char ch = (unsigned char)name[i];
		if (ch == '/' || ch == '\0') {
			/* no empty, "." or ".." segment */
			if (!seg || (seg == 1 && name[i - 1] == '.') ||
			    (seg == 2 && name[i - 1] == '.' && name[i - 2] == '.'))
				return false;
			seg = 0;
			continue;
		}
		if (ch < 0x20 || ch == 0x7f || ch == '\\')
			return false;
		seg++;
	}
	return true;
}

bool mgr_has(struct mgr *m, const char *name)
{
	bool yes;
	pthread_mutex_lock(&m->mu);
	yes = find(m, name) != NULL;
	pthread_mutex_unlock(&m->mu);
	return yes;
}

/* Takes mm out of the list into the removed ones; DM_ENOMEM (then it stays
 * listed).  Mutex held. */
static int unregister(struct mgr *m, struct mmodel *mm)
{
	struct mmodel **nr = realloc(m->removed, (m->n_removed + 1) * sizeof *nr);
	size_t i;
	if (!nr)
		return DM_ENOMEM;
	m->removed = nr;
	/* kept, not freed: a thread between two steps of the mutex (a start-up
	 * check, a waiter about to look again) may still hold the pointer */
	m->removed[m->n_removed++] = mm;
	for (i = 0; m->models[i] != mm; i++)
		;
	memmove(&m->models[i], &m->models[i + 1], (m->n - i - 1) * sizeof *m->models);
	m->n--;
	return 0;
}

int mgr_remove(struct mgr *m, const char *name, struct dm_err *err)
{
	struct mmodel *mm;
	int rc = 0;

	pthread_mutex_lock(&m->mu);
	for (;;) {
		if (!(mm = find(m, name))) {
			rc = dm_err_set(err, DM_ENOTFOUND, "model '%s' not found", name);
			goto out;
		}
		if (mm->in_use || mm->queued || mm->state == MGR_LOADING || mm->state == MGR_UNLOADING) {
			rc = dm_err_set(err, DM_EBUSY, "model '%s' is in use", name);
			goto out;
		}
		if (mm->state != MGR_READY)
			break;
		unload_locked(m, mm, false); /* unlocks meanwhile: look again */
	}
	if (unregister(m, mm)) {
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
		goto out;
	}
	pthread_cond_broadcast(&m->cv);
out:
	pthread_mutex_unlock(&m->mu);
	return rc;
}

/* ---- budget ---- */

static bool holds_memory(const struct mmodel *x)
{
	return x->state == MGR_LOADING || x->state == MGR_READY || x->state == MGR_UNLOADING;
}

/* What x counts in the budget: while loading its estimate; once ready what
 * it holds, or what its lease may grow to if that is more. */
static uint64_t held_bytes(const struct mmodel *x)
{
	if (x->state != MGR_READY || !x->loaded.bytes)
		return x->est_bytes;
	return x->reserved > x->loaded.bytes ? x->reserved : x->loaded.bytes;
}

static void usage(struct mgr *m, const struct mmodel *skip, uint64_t *bytes, uint32_t *count)
{
	*bytes = 0;
	*count = 0;
	for (size_t i = 0; i < m->n; i++) {
		const struct mmodel *x = m->models[i];
		if (x == skip || !holds_memory(x))
			continue;
		*bytes += held_bytes(x);
		(*count)++;
	}
}

/* Whether mm can hold `need` bytes beside what the others hold. */
static bool fits(struct mgr *m, const struct mmodel *mm, uint64_t need)
{
	uint64_t b;
	uint32_t c;
	usage(m, mm, &b, &c);
	return (!m->cfg.max_ram || b + need <= m->cfg.max_ram) &&
	       (!m->cfg.max_loaded_models || c + 1 <= m->cfg.max_loaded_models);
}

static void unload_why(struct mgr *m, struct mmodel *x, bool evict, const char *why);
/* Drops the caches of one idle loaded model other than mm (the backend's
 * shrink); true if that gave anything back. */
static bool shrink_idle(struct mgr *m, const struct mmodel *mm)
{
	const struct mgr_backend *be = &m->cfg.backend;
	if (!be->shrink)
		return false;
	for (size_t i = 0; i < m->n; i++) {
		struct mmodel *x = m->models[i];
		uint64_t freed;
		if (x == mm || x->state != MGR_READY || x->in_use || x->queued)
			continue;
		if ((freed = be->shrink(be->ud, &x->loaded)) > 0) {
			x->loaded.bytes = be->held ? be->held(be->ud, &x->loaded)
				: x->loaded.bytes > freed ? x->loaded.bytes - freed : 0;
			logf_(m, x, "caches dropped to make room: %.1f MiB", freed / 1048576.0);
			return true;
		}
	}
	return false;
}

/* Unloads x (READY, idle) with the mutex released meanwhile. */
static void unload_locked(struct mgr *m, struct mmodel *x, bool evict)
{
	unload_why(m, x, evict, evict ? "evicted to make room" : "released");
}

/* unload_locked, with the reason its log line gives. */
static void unload_why(struct mgr *m, struct mmodel *x, bool evict, const char *why)
{
	struct mgr_loaded l = x->loaded;
	double t0 = real_s();
	struct dm_mem_usage u;
	uint64_t cached = 0, fsize = 0;
	x->state = MGR_UNLOADING;
	logf_(m, x, "ready -> unloading (%s)", why);
	emit(m, x, MGR_READY, 0, 0, evict);
	pthread_mutex_unlock(&m->mu);
	m->cfg.backend.unload(m->cfg.backend.ud, &l);
	dm_mem_usage(&u);
	if (x->cfg.path[0])
		dm_file_cached(x->cfg.path, &cached, &fsize);
	pthread_mutex_lock(&m->mu);
	x->rss_after_unload = u.rss;
	x->anon_after_unload = u.rss_anon;
	x->file_after_unload = u.rss_file;
	x->cached_after_unload = cached;
	logf_(m, x, "unloading -> dormant in %.3f s, process RSS %.1f MiB (%+.1f MiB vs before the load; "
	      "anon %.1f, file %.1f), file in page cache %.1f MiB",
	      real_s() - t0, u.rss / 1048576.0, ((double)u.rss - (double)x->rss_before_load) / 1048576.0,
	      u.rss_anon / 1048576.0, u.rss_file / 1048576.0, cached / 1048576.0);
	x->unload_s_total += real_s() - t0;
	memset(&x->loaded, 0, sizeof x->loaded);
	x->state = MGR_DORMANT;
	x->expires_ms = -1;
	x->unload_count++;
	if (x->pending) { /* settings a reload left for the next load */
		x->cfg = x->next;
		x->pending = PEND_NONE;
	}
	if (evict)
		x->evict_count++;
	emit(m, x, MGR_UNLOADING, real_s() - t0, 0, evict);
	pthread_cond_broadcast(&m->cv);
}

/* Whether a and b serve the same side of an app: generation, or retrieval
 * (embed and rerank, the two models a RAG app calls before generating). */
static bool same_role_class(enum mgr_role a, enum mgr_role b)
{
	return (a == MGR_ROLE_GENERATE) == (b == MGR_ROLE_GENERATE);
}

/* The idle model to evict for mm: the least recently used of its own role
 * class first (an embedder or a reranker makes room among the retrieval
 * models before it touches the chat model the same app uses a second
 * later), then of any role; a pinned model never. */
static struct mmodel *lru_idle(struct mgr *m, const struct mmodel *mm)
{
	struct mmodel *best = NULL;
	for (int same = 1; same >= 0 && !best; same--)
		for (size_t i = 0; i < m->n; i++) {
			struct mmodel *x = m->models[i];
			if (x == mm || x->state != MGR_READY || x->in_use || x->queued || x->cfg.pin)
				continue;
			if (same && !same_role_class(x->cfg.role, mm->cfg.role))
				continue;
			if (!best || x->last_used_ms < best->last_used_ms)
				best = x;
		}
	return best;
}

static bool pinned_hold(struct mgr *m, const struct mmodel *mm)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->models[i] != mm && m->models[i]->cfg.pin && holds_memory(m->models[i]))
			return true;
	return false;
}

static bool others_busy(struct mgr *m, const struct mmodel *mm)
{
	for (size_t i = 0; i < m->n; i++) {
		const struct mmodel *x = m->models[i];
		if (x != mm && holds_memory(x) && (x->in_use || x->queued || x->state != MGR_READY))
			return true;
	}
	return false;
}

static void human(char *buf, size_t cap, uint64_t b)
{
	snprintf(buf, cap, "%.1f MiB", (double)b / 1048576.0);
}

/* Makes room for mm to hold `bytes` (its load's estimate, or what a
 * lease's request may grow to: `growth`): drops idle models' caches, then
 * evicts idle models (LRU), or waits for busy ones.  Called and returns
 * with the mutex held. */
static int make_room(struct mgr *m, struct mmodel *mm, uint64_t bytes, bool growth,
		     const struct timespec *deadline, const atomic_int *cancel, struct dm_err *err)
{
	const char *what = growth ? " for this request" : "";
	char need[32], have[32];

	if (m->cfg.max_ram && bytes > m->cfg.max_ram) {
		human(need, sizeof need, bytes);
		human(have, sizeof have, m->cfg.max_ram);
		return dm_err_set(err, DM_ETOOBIG, "insufficient memory: need %s, have %s (max_ram) for model '%s'%s",
				  need, have, mm->cfg.name, what);
	}
	while (!fits(m, mm, bytes)) {
		struct mmodel *v;
		if (m->cfg.max_ram && shrink_idle(m, mm))
			continue;
		if ((v = lru_idle(m, mm))) {
			unload_locked(m, v, true);
			continue;
		}
		if (!others_busy(m, mm)) {
			uint64_t b;
			uint32_t c;
			usage(m, mm, &b, &c);
			human(need, sizeof need, bytes);
			human(have, sizeof have, m->cfg.max_ram > b ? m->cfg.max_ram - b : 0);
			/* nothing else holds memory but pinned models: it can never fit */
			return dm_err_set(err, DM_ETOOBIG, "insufficient memory: need %s, have %s for model '%s'%s%s",
					  need, m->cfg.max_ram ? have : "no free model slot", mm->cfg.name, what,
					  pinned_hold(m, mm) ? " (pinned models hold the rest)" : "");
		}
		if (cancel && atomic_load(cancel))
			return dm_err_set(err, DM_ECANCELED, "cancelled while waiting for memory");
		{
			struct timespec slice;
			deadline_in(&slice, cancel ? 20 : 1000);
			if (before(deadline, &slice))
				slice = *deadline;
			if (wait_until(m, &slice) == ETIMEDOUT) {
				struct timespec now;
				clock_gettime(CLOCK_MONOTONIC, &now);
				if (!before(&now, deadline)) {
					uint64_t b;
					uint32_t c;
					usage(m, mm, &b, &c);
					human(need, sizeof need, bytes);
					human(have, sizeof have, m->cfg.max_ram > b ? m->cfg.max_ram - b : 0);
					/* transient: the models in use will end */
					return dm_err_set(err, DM_ETIMEDOUT,
							  "insufficient memory: need %s, have %s for model '%s'%s (waited %.0f s for models in use)",
							  need, m->cfg.max_ram ? have : "no free model slot", mm->cfg.name,
							  what, m->cfg.queue_timeout_ms / 1000.0);
				}
			}
		}
	}
	return 0;
}

/* ---- acquire / release ---- */

static int64_t effective_keep_alive(struct mgr *m, const struct mmodel *mm,
				    const struct mgr_acquire_opts *o)
{
	int64_t ka = mm->cfg.keep_alive_ms;
	if (o && o->has_keep_alive && mm->cfg.allow_override) {
		ka = o->keep_alive_ms < 0 ? MGR_KEEP_FOREVER : o->keep_alive_ms;
		if (ka != MGR_KEEP_FOREVER && ka < m->cfg.keep_alive_min_ms)
			ka = m->cfg.keep_alive_min_ms;
		if (m->cfg.keep_alive_max_ms > 0 &&
		    (ka == MGR_KEEP_FOREVER || ka > m->cfg.keep_alive_max_ms))
			ka = m->cfg.keep_alive_max_ms;
	}
	return ka;
}

static int new_lease(struct mgr *m, struct mmodel *mm, bool cold, double load_s,
		     const struct mgr_acquire_opts *o, struct mgr_lease **out, struct dm_err *err)
{
	struct mgr_lease *l = calloc(1, sizeof *l);
	if (!l)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	l->m = m;
	l->mm = mm;
	l->cold = cold;
	l->load_s = load_s;
	mm->in_use = true;
	mm->reserved = 0;
	mm->expires_ms = -1;
	mm->lease_keep_alive_ms = effective_keep_alive(m, mm, o);
	*out = l;
	return 0;
}

/* Loads mm (DORMANT or FAILED) as the single loader.  Mutex held on entry
 * and exit.  On success the caller holds the first lease. */
static int load_locked(struct mgr *m, struct mmodel *mm, const struct mgr_acquire_opts *o,
		       const struct timespec *deadline, struct mgr_lease **out, struct dm_err *err)
{
	const struct mgr_backend *be = &m->cfg.backend;
	struct mgr_loaded l = { 0 };
	bool warm;
	double t0;
	int rc;

	/* LOADING from here on, so that racing requests wait for this load
	 * instead of starting their own (single-flight) */
	mm->state = MGR_LOADING;
	pthread_mutex_unlock(&m->mu);
	rc = be->estimate(be->ud, &mm->cfg, &mm->est_bytes, err);
	pthread_mutex_lock(&m->mu);
	if (rc)
		goto failed;
	if ((rc = make_room(m, mm, mm->est_bytes, false, deadline, o ? o->cancel : NULL, err)))
		goto failed;
	atomic_store(&mm->prog.done, 0);
	atomic_store(&mm->prog.total, 0);
	warm = mm->cfg.warmup > 0 || (mm->cfg.warmup < 0 && mm->cfg.keep_alive_ms != 0);
	logf_(m, mm, "dormant -> loading (%s, estimate %.1f MiB)", mgr_mode_name(mm->cfg.mode),
	      mm->est_bytes / 1048576.0);
	mm->rss_before_load = rss_bytes();
	emit(m, mm, MGR_DORMANT, 0, mm->est_bytes, false);
	pthread_mutex_unlock(&m->mu);
	t0 = real_s();
	rc = be->load(be->ud, &mm->cfg, &mm->prog, o ? o->cancel : NULL, &l, err);
	if (!rc && warm && be->warmup && (rc = be->warmup(be->ud, &l, err)))
		be->unload(be->ud, &l);
	if (!rc && be->held)
		l.bytes = be->held(be->ud, &l); /* what warm-up made resident counts too */
	pthread_mutex_lock(&m->mu);
	if (rc) {
		memset(&mm->loaded, 0, sizeof mm->loaded);
		goto failed;
	}
	mm->loaded = l;
	mm->state = MGR_READY;
	mm->load_count++;
	mm->last_load_s = real_s() - t0;
	mm->load_s_total += mm->last_load_s;
	logf_(m, mm, "loading -> ready in %.3f s%s, %.1f MiB (estimate %.1f MiB), process RSS %.1f MiB",
	      mm->last_load_s, warm ? " with warm-up" : "", l.bytes / 1048576.0, mm->est_bytes / 1048576.0,
	      rss_bytes() / 1048576.0);
	mm->last_error[0] = '\0';
	emit(m, mm, MGR_LOADING, mm->last_load_s, l.bytes, false);
	mm->last_used_ms = mgr_now_ms(m);
	pthread_cond_broadcast(&m->cv);
	return new_lease(m, mm, true, mm->last_load_s, o, out, err);
failed:
	mm->state = MGR_FAILED;
	snprintf(mm->last_error, sizeof mm->last_error, "%s", err ? err->msg : "load failed");
	logf_(m, mm, "loading -> failed: %s", mm->last_error);
	emit(m, mm, MGR_LOADING, 0, 0, false);
	pthread_cond_broadcast(&m->cv);
	return rc ? rc : DM_EIO;
}

static void line_push(struct mmodel *mm, struct ticket *t)
{
	t->next = NULL;
	if (mm->line_tail)
		mm->line_tail->next = t;
	else
		mm->line = t;
	mm->line_tail = t;
	mm->queued++;
}

static void line_remove(struct mmodel *mm, struct ticket *t)
{
	struct ticket **pp = &mm->line, *prev = NULL;
	while (*pp && *pp != t) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (!*pp)
		return;
	*pp = t->next;
	if (mm->line_tail == t)
		mm->line_tail = prev;
	mm->queued--;
}

static void settle(struct mgr *m, struct mmodel *mm);

/* Serves one request for mm in arrival order: a request may take the model
 * (or start its load) only when nobody is waiting before it. */
static int acquire_one(struct mgr *m, struct mmodel *mm, const struct mgr_acquire_opts *o,
		       struct mgr_lease **out, struct dm_err *err)
{
	const atomic_int *cancel = o ? o->cancel : NULL;
	struct timespec deadline;
	struct ticket t;
	bool queued = false;
	int rc = 0;

	deadline_in(&deadline, m->cfg.queue_timeout_ms);
	for (;;) {
		bool turn = queued ? mm->line == &t : mm->line == NULL;
		if (cancel && atomic_load(cancel)) {
			rc = dm_err_set(err, DM_ECANCELED, "request for '%s' cancelled", mm->cfg.name);
			break;
		}
		if (turn && mm->state == MGR_READY && !mm->in_use) {
			rc = new_lease(m, mm, false, 0, o, out, err);
			break;
		}
		if (turn && (mm->state == MGR_DORMANT || mm->state == MGR_FAILED)) {
			if (queued) {
				line_remove(mm, &t);
				queued = false;
			}
			rc = load_locked(m, mm, o, &deadline, out, err);
			break;
		}
		/* busy, loading, unloading, or others wait first: take a ticket */
		if (!queued) {
			if (mm->queued >= m->cfg.max_queue) {
				rc = dm_err_set(err, DM_EBUSY, "model '%s' is busy: %u requests already waiting",
						mm->cfg.name, mm->queued);
				break;
			}
			line_push(mm, &t);
			queued = true;
			continue;
		}
		{
			struct timespec slice;
			deadline_in(&slice, cancel ? 20 : 1000);
			if (before(&deadline, &slice))
				slice = deadline;
			if (wait_until(m, &slice) == ETIMEDOUT) {
				struct timespec now;
				clock_gettime(CLOCK_MONOTONIC, &now);
				if (!before(&now, &deadline)) {
					rc = dm_err_set(err, DM_ETIMEDOUT, "timed out waiting for model '%s'",
							mm->cfg.name);
					break;
				}
			}
		}
	}
	if (queued) {
		line_remove(mm, &t);
		/* the next in line may be free to go now */
		pthread_cond_broadcast(&m->cv);
	}
	settle(m, mm); /* the last waiter of a retired model, or a failed load */
	return rc;
}

/* Models already tried for one request (the primary first): a fallback
 * chain is followed to its end, and a model met twice ends that branch, so
 * a cycle cannot loop. */
struct tried {
	const struct mmodel *mm[64];
	size_t n;
};

static bool tried_add(struct tried *t, const struct mmodel *mm)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->mm[i] == mm)
			return false;
	if (t->n == sizeof t->mm / sizeof t->mm[0])
		return false;
	t->mm[t->n++] = mm;
	return true;
}

/* Tries mm's fallbacks depth first: each one, and when it fails too, its
 * own fallbacks, before mm's next.  A name that is not registered is
 * skipped.  Mutex held.  Returns 0 with *out, or -1 when none answered. */
static int acquire_fallback(struct mgr *m, const struct mmodel *mm, const struct mgr_acquire_opts *fo,
			    struct tried *t, struct mgr_lease **out)
{
	for (int i = 0; i < MGR_MAX_FALLBACKS && mm->cfg.fallbacks[i][0]; i++) {
		struct mmodel *fb = find(m, mm->cfg.fallbacks[i]);
		struct dm_err ferr;
		int rc;
		if (!fb || !tried_add(t, fb))
			continue;
		rc = acquire_one(m, fb, fo, out, &ferr);
		if (rc == 0)
			return 0;
		if (rc == DM_ECANCELED)
			return -1;
		if (acquire_fallback(m, fb, fo, t, out) == 0)
			return 0;
	}
	return -1;
}

int mgr_acquire(struct mgr *m, const char *name, const struct mgr_acquire_opts *o,
		struct mgr_lease **out, struct dm_err *err)
{
	struct mmodel *mm;
	int rc;

	*out = NULL;
	pthread_mutex_lock(&m->mu);
	mm = find(m, name);
	if (!mm) {
		pthread_mutex_unlock(&m->mu);
		return dm_err_set(err, DM_ENOTFOUND, "model '%s' not found", name);
	}
	rc = acquire_one(m, mm, o, out, err);
	if (rc && rc != DM_ECANCELED && rc != DM_EBUSY && m->cfg.enable_fallback &&
	    !(o && o->no_fallback) && mm->cfg.fallbacks[0][0]) {
		struct mgr_acquire_opts fo = o ? *o : (struct mgr_acquire_opts){ 0 };
		struct tried t = { .n = 0 };
		tried_add(&t, mm);
		fo.no_fallback = true;
		if (acquire_fallback(m, mm, &fo, &t, out) == 0) {
			snprintf((*out)->reason, sizeof (*out)->reason, "%s", err ? err->msg : "load failed");
			rc = 0;
		}
	}
	pthread_mutex_unlock(&m->mu);
	return rc;
}

/* ---- start-up check ---- */

static size_t index_of(const struct mgr *m, const struct mmodel *mm)
{
	size_t i = 0;
	while (m->models[i] != mm)
		i++;
	return i;
}

/* Follows mm's fallbacks depth first (colour per model: 0 unvisited, 1 on
 * path[0..depth], 2 explored without a cycle, so each model is explored
 * once); DM_EINVAL with the chain when one leads back onto the path.
 * Mutex held. */
static int check_cycle(struct mgr *m, const struct mmodel *mm, unsigned char *colour,
		       const struct mmodel **path, size_t depth, struct dm_err *err)
{
	colour[index_of(m, mm)] = 1;
	path[depth] = mm;
	for (int i = 0; i < MGR_MAX_FALLBACKS && mm->cfg.fallbacks[i][0]; i++) {
		const struct mmodel *fb = find(m, mm->cfg.fallbacks[i]);
		size_t d = 0;
		if (!fb || colour[index_of(m, fb)] == 2)
			continue;
		if (colour[index_of(m, fb)] == 1) {
			char chain[512];
			size_t k = 0;
			while (path[d] != fb)
				d++;
			for (; d <= depth; d++)
				k += (size_t)snprintf(chain + k, k < sizeof chain ? sizeof chain - k : 0, "%s -> ",
						      path[d]->cfg.name);
			if (k < sizeof chain)
				snprintf(chain + k, sizeof chain - k, "%s", fb->cfg.name);
			return dm_err_set(err, DM_EINVAL, "fallbacks form a cycle: %s", chain);
		}
		if (check_cycle(m, fb, colour, path, depth + 1, err))
			return DM_EINVAL;
	}
	colour[index_of(m, mm)] = 2;
	return 0;
}

int mgr_check_model(struct mgr *m, const char *name, uint64_t *est_bytes, struct dm_err *err)
{
	const struct mgr_backend *be = &m->cfg.backend;
	struct mgr_model_cfg cfg;
	struct mmodel *mm;
	uint64_t est = 0, max_ram;
	int rc = 0;

	pthread_mutex_lock(&m->mu);
	if (!(mm = find(m, name))) {
		pthread_mutex_unlock(&m->mu);
		return dm_err_set(err, DM_ENOTFOUND, "model '%s' not found", name);
	}
	cfg = mm->cfg;
	max_ram = m->cfg.max_ram; /* mgr_set_limits may change it */
	for (int i = 0; i < MGR_MAX_FALLBACKS && cfg.fallbacks[i][0] && !rc; i++)
		if (!find(m, cfg.fallbacks[i]))
			rc = dm_err_set(err, DM_ENOTFOUND, "fallback '%s' names no registered model",
					cfg.fallbacks[i]);
	if (!rc) {
		/* a path visits each model at most once: m->n entries suffice */
		unsigned char *colour = calloc(m->n, 1);
		const struct mmodel **path = calloc(m->n, sizeof *path);
		rc = colour && path ? check_cycle(m, mm, colour, path, 0, err)
				    : dm_err_set(err, DM_ENOMEM, "out of memory");
		free(colour);
		free(path);
	}
	pthread_mutex_unlock(&m->mu);
	/* the file first: a broken file is the bigger problem */
	{
		struct dm_err ferr;
		int frc = be->estimate(be->ud, &cfg, &est, &ferr);
		if (frc) {
			if (err)
				*err = ferr;
			return frc;
		}
	}
	if (!rc && max_ram && est > max_ram) {
		char need[32], have[32];
		human(need, sizeof need, est);
		human(have, sizeof have, max_ram);
		rc = dm_err_set(err, DM_ETOOBIG, "needs %s, more than max_ram %s: it can never be loaded", need,
				have);
	}
	if (est_bytes)
		*est_bytes = est;
	return rc;
}

void *mgr_lease_handle(const struct mgr_lease *l)
{
	return l->mm->loaded.handle;
}

const char *mgr_lease_model(const struct mgr_lease *l)
{
	return l->mm->cfg.name;
}

const char *mgr_lease_fallback_reason(const struct mgr_lease *l)
{
	return l->reason;
}

bool mgr_lease_cold(const struct mgr_lease *l)
{
	return l->cold;
}

double mgr_lease_load_s(const struct mgr_lease *l)
{
	return l->load_s;
}

int mgr_lease_reserve(struct mgr_lease *l, uint64_t bytes, const atomic_int *cancel, struct dm_err *err)
{
	struct mgr *m = l->m;
	struct mmodel *mm = l->mm;
	struct timespec deadline;
	int rc;

	pthread_mutex_lock(&m->mu);
	deadline_in(&deadline, m->cfg.queue_timeout_ms);
	/* the model is READY and in use by this lease: nobody unloads it */
	if ((rc = make_room(m, mm, bytes, true, &deadline, cancel, err)) == 0)
		mm->reserved = bytes;
	pthread_mutex_unlock(&m->mu);
	return rc;
}

void mgr_release(struct mgr_lease *l)
{
	struct mgr *m;
	struct mmodel *mm;

	if (!l)
		return;
	m = l->m;
	mm = l->mm;
	pthread_mutex_lock(&m->mu);
	if (m->cfg.backend.held && mm->state == MGR_READY)
		mm->loaded.bytes = m->cfg.backend.held(m->cfg.backend.ud, &mm->loaded);
	mm->reserved = 0;
	mm->in_use = false;
	mm->last_used_ms = mgr_now_ms(m);
	settle(m, mm); /* what a reload left for this moment */
	if (mm->state != MGR_READY || mm->in_use) {
		/* unloaded by settle, or already taken by the next in line */
	} else if (mm->lease_keep_alive_ms == 0) {
		if (!mm->queued)
			unload_locked(m, mm, false);
	} else if (mm->lease_keep_alive_ms < 0) {
		mm->expires_ms = -1;
	} else {
		mm->expires_ms = (int64_t)mm->last_used_ms + mm->lease_keep_alive_ms;
	}
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
	free(l);
}

/* ---- reload: new settings, retirement, new limits ---- */

/* Whether the engine keeps a saved KV cache on disk (engine.c's rule). */
static bool kv_on_disk(const struct mgr_model_cfg *c)
{
	return c->kv_persist > 0 || (c->kv_persist < 0 && c->keep_alive_ms == 0);
}

unsigned mgr_model_cfg_diff(const struct mgr_model_cfg *a, const struct mgr_model_cfg *b)
{
	unsigned d = 0;
	if (strcmp(a->path, b->path) || a->mode != b->mode || a->quantize_on_load != b->quantize_on_load ||
	    a->n_ctx != b->n_ctx || a->n_ctx_max != b->n_ctx_max || a->prefix_cache_max != b->prefix_cache_max ||
	    a->n_batch != b->n_batch || a->n_threads != b->n_threads || a->warmup_ctx != b->warmup_ctx ||
	    kv_on_disk(a) != kv_on_disk(b))
		d |= MGR_DIFF_LOAD;
	if (a->role != b->role || a->load != b->load || a->keep_alive_ms != b->keep_alive_ms ||
	    a->allow_override != b->allow_override || a->warmup != b->warmup || a->pin != b->pin ||
	    a->kv_persist != b->kv_persist)
		d |= MGR_DIFF_LIVE;
	for (int i = 0; i < MGR_MAX_FALLBACKS; i++)
		if (strcmp(a->fallbacks[i], b->fallbacks[i]))
			d |= MGR_DIFF_LIVE;
	return d;
}

/* Settings that need no reload, on a model nobody is loading or unloading
 * (the backend reads cfg then, outside the mutex).  An idle loaded model's
 * keep-alive timer follows a new keep_alive unless a request set its own;
 * 0 unloads it now.  Mutex held. */
static void apply_live(struct mgr *m, struct mmodel *mm, const struct mgr_model_cfg *c)
{
	int64_t old_ka = mm->cfg.keep_alive_ms;
	mm->cfg = *c;
	mm->pending = PEND_NONE;
	if (mm->state != MGR_READY || mm->in_use || c->keep_alive_ms == old_ka ||
	    mm->lease_keep_alive_ms != old_ka)
		return;
	mm->lease_keep_alive_ms = c->keep_alive_ms;
	if (c->keep_alive_ms == 0) {
		if (!mm->queued)
			unload_locked(m, mm, false);
	} else {
		mm->expires_ms = c->keep_alive_ms < 0 ? -1 : (int64_t)mm->last_used_ms + c->keep_alive_ms;
	}
}

/* Finishes what mgr_update or mgr_retire left for an idle moment.  Pending
 * settings that need no reload apply once nobody is loading or unloading
 * the model; ones that do, once it has no lease either: it is unloaded
 * (requests in its queue then load it again with them).  A retired model
 * is unloaded and unregistered once nobody holds or waits for it.  Mutex
 * held (released during an unload). */
static void settle(struct mgr *m, struct mmodel *mm)
{
	if (!mm->retired && !mm->pending)
		return;
	if (mm->state == MGR_LOADING || mm->state == MGR_UNLOADING)
		return;
	if (mm->pending == PEND_LIVE)
		apply_live(m, mm, &mm->next);
	if (mm->in_use || (mm->retired && mm->queued))
		return;
	if (mm->state == MGR_READY && (mm->retired || mm->pending == PEND_LOAD))
		/* takes the pending settings */
		unload_why(m, mm, false, mm->retired ? "removed" : "new settings apply from the next load");
	else if (mm->pending)
		apply_live(m, mm, &mm->next);
	if (mm->retired && mm->state != MGR_READY)
		unregister(m, mm); /* out of memory: it stays listed, never found */
	pthread_cond_broadcast(&m->cv);
}

/* How a change met a model: nothing loaded to change, unloaded now, or
 * left until its requests end. */
static enum mgr_apply outcome(const struct mmodel *mm, bool was_loaded)
{
	if (mm->pending == PEND_LOAD ||
	    (mm->retired && (mm->in_use || mm->queued || mm->state == MGR_LOADING || mm->state == MGR_READY)))
		return MGR_APPLY_PENDING;
	return was_loaded && mm->state != MGR_READY ? MGR_APPLY_UNLOADED : MGR_APPLY_DONE;
}

int mgr_update(struct mgr *m, const struct mgr_model_cfg *c, unsigned *diff, enum mgr_apply *how,
	       struct dm_err *err)
{
	struct mmodel *mm;
	unsigned d;
	bool was_loaded;

	pthread_mutex_lock(&m->mu);
	if (!(mm = find(m, c->name))) {
		pthread_mutex_unlock(&m->mu);
		return dm_err_set(err, DM_ENOTFOUND, "model '%s' not found", c->name);
	}
	/* against what the next load will use */
	d = mgr_model_cfg_diff(mm->pending ? &mm->next : &mm->cfg, c);
	was_loaded = mm->state == MGR_READY;
	if (d) {
		mm->next = *c;
		/* needs a reload only if it differs from what is loaded now */
		mm->pending = (mgr_model_cfg_diff(&mm->cfg, c) & MGR_DIFF_LOAD) &&
				      mm->state != MGR_DORMANT && mm->state != MGR_FAILED
				      ? PEND_LOAD : PEND_LIVE;
		settle(m, mm);
	}
	if (diff)
		*diff = d;
	if (how)
		*how = outcome(mm, was_loaded);
	pthread_mutex_unlock(&m->mu);
	return 0;
}

int mgr_retire(struct mgr *m, const char *name, enum mgr_apply *how, struct dm_err *err)
{
	struct mmodel *mm;
	bool was_loaded;

	pthread_mutex_lock(&m->mu);
	for (;;) {
		if (!(mm = find(m, name))) {
			pthread_mutex_unlock(&m->mu);
			return dm_err_set(err, DM_ENOTFOUND, "model '%s' not found", name);
		}
		if (mm->state != MGR_UNLOADING)
			break;
		pthread_cond_wait(&m->cv, &m->mu); /* an unload always ends */
	}
	was_loaded = mm->state == MGR_READY;
	mm->retired = true;
	settle(m, mm);
	if (how)
		*how = outcome(mm, was_loaded);
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
	return 0;
}

int mgr_set_limits(struct mgr *m, const struct mgr_cfg *c)
{
	int n = 0;

	pthread_mutex_lock(&m->mu);
	m->cfg.max_loaded_models = c->max_loaded_models;
	m->cfg.max_ram = c->max_ram;
	m->cfg.keep_alive_min_ms = c->keep_alive_min_ms;
	m->cfg.keep_alive_max_ms = c->keep_alive_max_ms;
	m->cfg.max_queue = c->max_queue ? c->max_queue : 16;
	m->cfg.queue_timeout_ms = c->queue_timeout_ms > 0 ? c->queue_timeout_ms : 60000;
	m->cfg.enable_fallback = c->enable_fallback;
	for (;;) {
		struct mmodel *v = NULL;
		uint64_t b;
		uint32_t k;
		usage(m, NULL, &b, &k);
		if ((!m->cfg.max_ram || b <= m->cfg.max_ram) &&
		    (!m->cfg.max_loaded_models || k <= m->cfg.max_loaded_models))
			break;
		/* the least recently used idle one; never a busy or pinned one */
		for (size_t i = 0; i < m->n; i++) {
			struct mmodel *x = m->models[i];
			if (x->state == MGR_READY && !x->in_use && !x->queued && !x->cfg.pin &&
			    (!v || x->last_used_ms < v->last_used_ms))
				v = x;
		}
		if (!v)
			break;
		unload_why(m, v, true, "evicted to fit a smaller budget");
		n++;
	}
	pthread_cond_broadcast(&m->cv); /* waiters for memory look again */
	pthread_mutex_unlock(&m->mu);
	return n;
}

void mgr_limits(struct mgr *m, struct mgr_cfg *out)
{
	pthread_mutex_lock(&m->mu);
	*out = m->cfg;
	pthread_mutex_unlock(&m->mu);
}

int mgr_load(struct mgr *m, const char *name, struct dm_err *err)
{
	struct mgr_lease *l;
	struct mgr_acquire_opts o = { 0 };
	struct mmodel *mm;
	int rc;

	pthread_mutex_lock(&m->mu);
	mm = find(m, name);
	if (mm && mm->cfg.keep_alive_ms == 0) {
		/* an on-demand model loaded explicitly stays until its next
		 * request ends or an explicit unload */
		o.has_keep_alive = true;
		o.keep_alive_ms = MGR_KEEP_FOREVER;
	}
	pthread_mutex_unlock(&m->mu);
	if ((rc = mgr_acquire(m, name, &o, &l, err)))
		return rc;
	if (o.has_keep_alive)
		l->mm->lease_keep_alive_ms = MGR_KEEP_FOREVER; /* not clamped: explicit */
	mgr_release(l);
	return 0;
}

int mgr_unload(struct mgr *m, const char *name, struct dm_err *err)
{
	struct mmodel *mm;
	struct timespec deadline;
	int rc = 0;

	pthread_mutex_lock(&m->mu);
	mm = find(m, name);
	if (!mm) {
		pthread_mutex_unlock(&m->mu);
		return dm_err_set(err, DM_ENOTFOUND, "model '%s' not found", name);
	}
	deadline_in(&deadline, m->cfg.queue_timeout_ms);
	for (;;) {
		if (mm->state == MGR_READY && !mm->in_use) {
			unload_locked(m, mm, false);
			break;
		}
		if (mm->state == MGR_DORMANT || mm->state == MGR_FAILED)
			break;
		if (wait_until(m, &deadline) == ETIMEDOUT) {
			rc = dm_err_set(err, DM_ETIMEDOUT, "timed out waiting for model '%s' to be idle", name);
			break;
		}
	}
	pthread_mutex_unlock(&m->mu);
	return rc;
}

int mgr_tick(struct mgr *m)
{
	int n = 0;
	bool again = true;

	pthread_mutex_lock(&m->mu);
	while (again) {
		uint64_t now = mgr_now_ms(m);
		again = false;
		for (size_t i = 0; i < m->n; i++) {
			struct mmodel *x = m->models[i];
			if (x->state == MGR_READY && !x->in_use && !x->queued && x->expires_ms >= 0 &&
			    (int64_t)now >= x->expires_ms) {
				unload_locked(m, x, false);
				n++;
				again = true; /* the list may have changed while unlocked */
				break;
			}
		}
	}
	pthread_mutex_unlock(&m->mu);
	return n;
}

static void *reaper_main(void *arg)
{
	struct mgr *m = arg;

	pthread_mutex_lock(&m->mu);
	while (!m->stop) {
		int64_t next = -1;
		uint64_t now = mgr_now_ms(m);
		struct timespec dl;
		for (size_t i = 0; i < m->n; i++) {
			const struct mmodel *x = m->models[i];
			if (x->state == MGR_READY && !x->in_use && x->expires_ms >= 0 &&
			    (next < 0 || x->expires_ms < next))
				next = x->expires_ms;
		}
		if (next >= 0 && (int64_t)now >= next) {
			pthread_mutex_unlock(&m->mu);
			mgr_tick(m);
			pthread_mutex_lock(&m->mu);
			continue;
		}
		/* sleep until the next expiry (or a change); an idle server with
		 * nothing loaded sleeps without waking */
		if (next < 0) {
			pthread_cond_wait(&m->cv, &m->mu);
		} else {
			deadline_in(&dl, next - (int64_t)now);
			wait_until(m, &dl);
		}
	}
	pthread_mutex_unlock(&m->mu);
	return NULL;
}

int mgr_start(struct mgr *m, struct dm_err *err)
{
	for (size_t i = 0;; i++) {
		char name[MGR_NAME_MAX];
		bool eager;
		int rc;
		pthread_mutex_lock(&m->mu);
		if (i >= m->n) {
			pthread_mutex_unlock(&m->mu);
			return 0;
		}
		eager = m->models[i]->cfg.load == MGR_EAGER;
		snprintf(name, sizeof name, "%s", m->models[i]->cfg.name);
		pthread_mutex_unlock(&m->mu);
		if (eager) {
			struct mgr_lease *l;
			if ((rc = mgr_acquire(m, name, NULL, &l, err)))
				return rc;
			mgr_release(l);
		}
	}
}

int mgr_model_role(struct mgr *m, const char *name, enum mgr_role *role)
{
	const struct mmodel *x;
	pthread_mutex_lock(&m->mu);
	if ((x = find(m, name)))
		*role = x->cfg.role;
	pthread_mutex_unlock(&m->mu);
	return x ? 0 : DM_ENOTFOUND;
}

size_t mgr_status(struct mgr *m, struct mgr_model_status *out, size_t cap)
{
	size_t n;
	pthread_mutex_lock(&m->mu);
	n = 0;
	for (size_t i = 0; i < m->n; i++) {
		const struct mmodel *x = m->models[i];
		struct mgr_model_status *s;
		if (x->retired) /* no longer registered; its requests are ending */
			continue;
		if (n++ >= cap)
			continue;
		s = &out[n - 1];
		memset(s, 0, sizeof *s);
		snprintf(s->name, sizeof s->name, "%s", x->cfg.name);
		snprintf(s->path, sizeof s->path, "%s", x->cfg.path);
		s->state = x->state;
		s->role = x->cfg.role;
		s->load = x->cfg.load;
		s->mode = x->cfg.mode;
		s->keep_alive_ms = x->cfg.keep_alive_ms;
		s->in_use = x->in_use;
		s->queued = x->queued;
		s->est_bytes = x->est_bytes;
		s->bytes = x->state == MGR_READY ? x->loaded.bytes : 0;
		s->load_count = x->load_count;
		s->unload_count = x->unload_count;
		s->evict_count = x->evict_count;
		s->last_load_s = x->last_load_s;
		s->load_s_total = x->load_s_total;
		s->unload_s_total = x->unload_s_total;
		s->expires_ms = x->state == MGR_READY && !x->in_use ? x->expires_ms : -1;
		s->progress_done = atomic_load(&x->prog.done);
		s->progress_total = atomic_load(&x->prog.total);
		snprintf(s->last_error, sizeof s->last_error, "%s", x->last_error);
		s->rss_before_load = x->rss_before_load;
		s->rss_after_unload = x->rss_after_unload;
		s->anon_after_unload = x->anon_after_unload;
		s->file_after_unload = x->file_after_unload;
		s->cached_after_unload = x->cached_after_unload;
	}
	pthread_mutex_unlock(&m->mu);
	return n;
}

void mgr_free(struct mgr *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	m->stop = true;
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
	if (m->reaper_started)
		pthread_join(m->reaper, NULL);
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->n; i++) {
		struct mmodel *x = m->models[i];
		while (x->in_use || x->state == MGR_LOADING || x->state == MGR_UNLOADING)
			pthread_cond_wait(&m->cv, &m->mu);
		if (x->state == MGR_READY)
			unload_locked(m, x, false);
	}
	pthread_mutex_unlock(&m->mu);
	for (size_t i = 0; i < m->n; i++)
		free(m->models[i]);
	for (size_t i = 0; i < m->n_removed; i++)
		free(m->removed[i]);
	free(m->models);
	free(m->removed);
	pthread_cond_destroy(&m->cv);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

/*
 * mgr — the model lifecycle manager: which models are in memory, when they
 * load and when they go.
 *
 * Each registered model moves through
 *     dormant → loading → ready → unloading → dormant      (and failed)
 * Requests take a lease (mgr_acquire) and give it back (mgr_release).
 * Invariants, all under one mutex:
 *   - a model is loaded by exactly one thread however many requests race for
 *     it (single-flight); the others wait for that load;
 *   - a model with a lease (in use) is never unloaded or evicted;
 *   - a model serves one lease at a time (one KV cache); other requests for
 *     it wait in a bounded first-come-first-served queue (max_queue),
 *     beyond which they get DM_EBUSY;
 *   - keep-alive timers start when the last lease ends;
 *   - before a load, the estimated cost must fit the budget (max_ram,
 *     max_loaded_models); idle models give up their caches first (the
 *     backend's shrink: prefix snapshots), then idle models are evicted
 *     least recently used first, those of the loading model's role class
 *     (generation; retrieval: embed and rerank) before others, pinned ones
 *     never;
 *     if only busy models stand in the way the request waits (bounded by
 *     queue_timeout_ms, then DM_ETIMEDOUT); if the model can never fit:
 *     DM_ETOOBIG "insufficient memory: need X, have Y" (permanent: the
 *     server answers 507, not "busy").
 *   - a failed load leaves nothing allocated; the model is `failed` with its
 *     error kept, and the next request retries.
 *   - with enable_fallback, a request whose model fails (not busy, not
 *     cancelled) goes to its fallbacks in order, each followed through its
 *     own fallbacks to the end of the chain; a model is tried at most once
 *     per request, so a cycle ends instead of looping.
 *   - a reload (mgr_update, mgr_retire, mgr_set_limits) never unloads a
 *     model in use: what needs an unload waits for its last lease; a
 *     retired model is found by no new request, and its entry lives until
 *     mgr_free (leases and waiters may hold it).
 * Loading, warm-up and unloading run outside the mutex.
 *
 * The work of loading is done by a backend (struct mgr_backend): the real
 * one (mgr_engine_backend, mgr/engine.h) maps GGUF files and builds the engine; tests use
 * fakes.  Time comes from a clock callback so keep-alive can be tested
 * without sleeping.
 */
#ifndef DM_MGR_H
#define DM_MGR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define MGR_NAME_MAX 64
#define MGR_PATH_MAX 1024
#define MGR_MAX_FALLBACKS 4
#define MGR_KEEP_FOREVER (-1)

enum mgr_state { MGR_DORMANT, MGR_LOADING, MGR_READY, MGR_UNLOADING, MGR_FAILED };
enum mgr_role { MGR_ROLE_GENERATE, MGR_ROLE_EMBED, MGR_ROLE_RERANK };
enum mgr_load_policy { MGR_LAZY, MGR_EAGER };
enum mgr_load_mode { MGR_MODE_MMAP, MGR_MODE_READ, MGR_MODE_MLOCK, MGR_MODE_PREFETCH };

const char *mgr_state_name(enum mgr_state s);
const char *mgr_role_name(enum mgr_role r);
const char *mgr_mode_name(enum mgr_load_mode m);

struct mgr_model_cfg {
	char name[MGR_NAME_MAX];
	char path[MGR_PATH_MAX];
	enum mgr_role role;
	enum mgr_load_policy load;
	int64_t keep_alive_ms;     /* 0: unload when the request ends; MGR_KEEP_FOREVER */
	bool allow_override;       /* requests may set keep_alive */
	enum mgr_load_mode mode;
	int32_t quantize_on_load;  /* -1: off, else a GGUF_TYPE_* (Q8_0, Q4_0, Q4_K) */
	int warmup;                /* -1: default (on unless keep_alive is 0), 0, 1 */
	int kv_persist;            /* -1: default (disk when keep_alive is 0), 0: off, 1: disk */
	bool pin;                  /* never evicted to make room for another model (its own
				    * keep-alive still unloads it) */
	int32_t warmup_ctx;        /* KV cache positions warm-up makes resident (0: 1024); the
				    * rest of the cache is committed as a request writes it */
	int32_t n_ctx, n_batch;    /* 0: defaults; n_ctx is a request's context unless it asks
				    * for another (num_ctx) */
	int32_t n_ctx_max;         /* the largest context a request may ask for: the KV cache
				    * reserves address space for it and commits pages as
				    * positions are written; 0: the model's trained length */
	uint64_t prefix_cache_max; /* bytes of saved conversation prefixes (KV snapshots)
				    * kept beside the live one (default 32 MiB; 0: none);
				    * the first thing given back under memory pressure */
	int n_threads;             /* 0: physical cores */
	char fallbacks[MGR_MAX_FALLBACKS][MGR_NAME_MAX]; /* "" ends the list */
};

/* Defaults: lazy, keep_alive 5 min, overrides allowed, mmap, no quantize,
 * warm-up default, 32 MiB of saved prefixes, engine defaults. */
void mgr_model_cfg_default(struct mgr_model_cfg *c);

/* What a backend hands back for a loaded model. */
struct mgr_loaded {
	void *handle;          /* backend's object (the engine for the real one) */
	uint64_t bytes;        /* memory the backend measured it holds */
};

struct mgr_progress {
	atomic_uint_least64_t done, total; /* bytes mapped/read/quantized */
};

struct mgr_backend {
	void *ud;
	/* Bytes a load of cfg will hold (weights as loaded + KV + scratch). */
	int (*estimate)(void *ud, const struct mgr_model_cfg *cfg, uint64_t *bytes, struct dm_err *err);
	/* Loads; must leave nothing allocated on failure.  cancel is polled. */
	int (*load)(void *ud, const struct mgr_model_cfg *cfg, struct mgr_progress *prog,
		    const atomic_int *cancel, struct mgr_loaded *out, struct dm_err *err);
	/* One short forward pass so the KV cache and scratch pages are touched. */
	int (*warmup)(void *ud, struct mgr_loaded *l, struct dm_err *err);
	void (*unload)(void *ud, struct mgr_loaded *l);
	/* Optional.  Bytes the loaded model holds now (weights, the KV pages
	 * written so far, scratch, caches): asked after warm-up and when a
	 * lease ends, so that the budget follows what a model grew to and gave
	 * back.  NULL: loaded.bytes stays as load reported it. */
	uint64_t (*held)(void *ud, const struct mgr_loaded *l);
	/* Optional.  Drops what the loaded model keeps only to be faster
	 * (prefix snapshots); returns the bytes given back.  Called with the
	 * manager's lock held, on an idle model other than the one making room,
	 * before any model is evicted. */
	uint64_t (*shrink)(void *ud, struct mgr_loaded *l);
};

struct mgr_cfg {
	uint32_t max_loaded_models; /* 0: no limit */
	uint64_t max_ram;           /* bytes; 0: no limit */
	int64_t keep_alive_min_ms, keep_alive_max_ms; /* clamp for request overrides; max <= 0: no upper clamp */
	uint32_t max_queue;         /* waiting requests per model; 0: 16 */
	int64_t queue_timeout_ms;   /* how long a request may wait; 0: 60 s */
	bool enable_fallback;
	struct mgr_backend backend;
	uint64_t (*now_ms)(void *ud); /* NULL: CLOCK_MONOTONIC */
	void *clock_ud;
	bool no_reaper;             /* don't start the keep-alive thread (tests call mgr_tick) */
	/* Receives one line per state transition, with timing and memory
	 * figures ("model 'chat': loading -> ready in 0.412 s, 155.3 MiB
	 * (estimate 154.5 MiB), process RSS 170.2 MiB").  NULL: silent. */
	void (*log)(void *ud, const char *line);
	void *log_ud;
};

struct mgr;
struct mgr_lease;

int mgr_init(struct mgr **out, const struct mgr_cfg *cfg, struct dm_err *err);
/* Unloads everything (waits for leases to end first) and frees. */
void mgr_free(struct mgr *m);
/* Registers a model; DM_EINVAL for a duplicate or bad name. */
int mgr_add(struct mgr *m, const struct mgr_model_cfg *c, struct dm_err *err);
/* A model name: 1 to MGR_NAME_MAX - 1 bytes, no control characters or
 * backslashes; '/' separates non-empty segments other than "."
 * and ".." ("qwen3:4b", "org/repo:file"). */
bool mgr_name_valid(const char *name);
bool mgr_has(struct mgr *m, const char *name);
/* Unregisters an idle model (unloading it first if it is loaded):
 * DM_ENOTFOUND, or DM_EBUSY while it is in use, queued for, loading or
 * unloading.  Its memory is kept until mgr_free (a few hundred bytes). */
int mgr_remove(struct mgr *m, const char *name, struct dm_err *err);
/* Loads the eager models. */
int mgr_start(struct mgr *m, struct dm_err *err);

/* ---- reload (a new configuration while requests run) ---- */

/* What differs between two settings of one model: MGR_DIFF_LOAD for one a
 * load reads (path, mode, quantize_on_load, n_ctx, n_ctx_max,
 * prefix_cache_max, n_batch, threads,
 * warmup_ctx, whether the KV cache goes to disk), MGR_DIFF_LIVE for one
 * that applies to a loaded model as it is (role, load, keep_alive,
 * allow_override, warmup, pin, fallbacks); 0: the same. */
enum { MGR_DIFF_LIVE = 1, MGR_DIFF_LOAD = 2 };
unsigned mgr_model_cfg_diff(const struct mgr_model_cfg *a, const struct mgr_model_cfg *b);

/* How a change met a loaded model. */
enum mgr_apply {
	MGR_APPLY_DONE,      /* applied; nothing had to be unloaded */
	MGR_APPLY_UNLOADED,  /* it was loaded and idle: unloaded now */
	MGR_APPLY_PENDING,   /* in use (or loading, or waited for): done when its requests end */
};

/* Gives the registered model c->name the settings c.  Live settings apply
 * at once (a new keep_alive restarts an idle model's timer, unless a
 * request set its own); load settings apply from its next load: a loaded
 * idle model is unloaded now, a busy one when its last lease ends (the
 * requests queued for it then load it with the new settings).  *diff
 * (may be NULL) gets mgr_model_cfg_diff against the settings its next load
 * would have used.  DM_ENOTFOUND for an unknown name. */
int mgr_update(struct mgr *m, const struct mgr_model_cfg *c, unsigned *diff, enum mgr_apply *how,
	       struct dm_err *err);
/* Unregisters a model at once for new requests (DM_ENOTFOUND from then
 * on, and its name is free for mgr_add); the requests that hold it or wait
 * for it finish normally, and it is unloaded when the last one ends (at
 * once when idle).  Its memory counts against the budget until then. */
int mgr_retire(struct mgr *m, const char *name, enum mgr_apply *how, struct dm_err *err);
/* Replaces the limits of c (max_loaded_models, max_ram, keep_alive_min/max,
 * max_queue, queue_timeout_ms, enable_fallback; the backend, clock and log
 * stay) and evicts idle models, least recently used first, until the
 * loaded ones fit; busy and pinned ones stay (over the budget until they
 * end).  Returns how many it evicted. */
int mgr_set_limits(struct mgr *m, const struct mgr_cfg *c);
/* The manager's configuration as it is now (its limits may have changed). */
void mgr_limits(struct mgr *m, struct mgr_cfg *out);

struct mgr_acquire_opts {
	bool has_keep_alive;
	int64_t keep_alive_ms;     /* request override (clamped); negative: forever */
	const atomic_int *cancel;  /* polled while waiting and loading */
	bool no_fallback;
};

/* Takes the model for one request, loading it if needed.  On success *out
 * is a lease; mgr_lease_handle() gives the backend object.  Errors:
 * DM_ENOTFOUND, DM_EBUSY (queue full), DM_ETIMEDOUT (waited too long, for
 * the queue or for memory), DM_ECANCELED, DM_ETOOBIG (can never fit the
 * budget), or the load's own error. */
int mgr_acquire(struct mgr *m, const char *name, const struct mgr_acquire_opts *o,
		struct mgr_lease **out, struct dm_err *err);
void *mgr_lease_handle(const struct mgr_lease *l);
/* Asks that the leased model may hold `bytes` in all while this lease
 * lasts (a request's KV cache growing to its context): the budget counts
 * max(held, bytes) for it until mgr_release.  Room is made as for a load:
 * idle models' caches are dropped (shrink), then idle models evicted,
 * never a busy one; while busy models stand in the way it waits
 * (queue_timeout_ms, then DM_ETIMEDOUT); if it can never fit, DM_ETOOBIG
 * "insufficient memory: need X, have Y (max_ram) for model 'x' for this
 * request" (when models that cannot be evicted stand in the way: without
 * "(max_ram)", Y being what they leave or "no free model slot"), and the
 * lease keeps its earlier reservation. */
int mgr_lease_reserve(struct mgr_lease *l, uint64_t bytes, const atomic_int *cancel, struct dm_err *err);
/* Which model answered (differs from the name asked when a fallback did),
 * and why ("" when no fallback). */
const char *mgr_lease_model(const struct mgr_lease *l);
const char *mgr_lease_fallback_reason(const struct mgr_lease *l);
bool mgr_lease_cold(const struct mgr_lease *l); /* this request triggered the load */
double mgr_lease_load_s(const struct mgr_lease *l);
/* Ends the lease; starts the keep-alive timer or unloads (keep_alive 0). */
void mgr_release(struct mgr_lease *l);

/* Checks a registered model without loading it, for start-up and `dormant
 * config check`: the backend's estimate (file readable, header valid,
 * architecture supported: the estimate's own errors), the estimate against
 * max_ram (DM_ETOOBIG), and its fallbacks (each registered, DM_ENOTFOUND;
 * none leading back to a model on the chain, DM_EINVAL).  Returns 0 and
 * *est_bytes (may be NULL), or the first problem. */
int mgr_check_model(struct mgr *m, const char *name, uint64_t *est_bytes, struct dm_err *err);

/* Explicit load (as if a request came and went, except that a model whose
 * keep_alive is 0 stays loaded until its next request ends or mgr_unload)
 * and unload (waits up to queue_timeout_ms for an in-use, loading or
 * unloading model, then DM_ETIMEDOUT; DM_ENOTFOUND for an unknown name). */
int mgr_load(struct mgr *m, const char *name, struct dm_err *err);
int mgr_unload(struct mgr *m, const char *name, struct dm_err *err);

/* Unloads models whose keep-alive expired; returns how many.  The reaper
 * thread calls it; tests with a fake clock call it directly. */
int mgr_tick(struct mgr *m);

struct mgr_model_status {
	char name[MGR_NAME_MAX];
	char path[MGR_PATH_MAX];
	enum mgr_state state;
	enum mgr_role role;
	enum mgr_load_policy load;
	enum mgr_load_mode mode;
	int64_t keep_alive_ms;
	bool in_use;
	uint32_t queued;
	uint64_t est_bytes, bytes;
	uint64_t load_count, unload_count, evict_count;
	double last_load_s;
	double load_s_total, unload_s_total; /* summed over all loads / unloads */
	int64_t expires_ms;        /* clock value when it unloads; -1 never / not loaded */
	uint64_t rss_before_load;  /* process RSS just before the last load */
	uint64_t rss_after_unload; /* process RSS just after the last unload (0: not yet) */
	uint64_t anon_after_unload, file_after_unload; /* its anonymous / file-backed split */
	uint64_t cached_after_unload; /* the model file's bytes still in the page cache */
	uint64_t progress_done, progress_total;
	char last_error[DM_ERR_MSG_MAX];
};

/* The role a registered model was given; DM_ENOTFOUND for an unknown name. */
int mgr_model_role(struct mgr *m, const char *name, enum mgr_role *role);

/* One lifecycle transition, as an observer receives it.  Strings live for
 * the call only. */
struct mgr_event {
	const char *model;
	enum mgr_state from, to;
	double seconds;     /* to READY: the load's time; to DORMANT: the unload's */
	uint64_t bytes;     /* to LOADING: the estimate; to READY: measured */
	/* process memory right after a transition to LOADING, READY or
	 * DORMANT (VmRSS, RssAnon, RssFile); 0 for the others */
	uint64_t rss, rss_anon, rss_file;
	bool evict;         /* to UNLOADING / DORMANT: made room for another model */
	const char *error;  /* to FAILED: why; else "" */
};
typedef void (*mgr_observer_fn)(void *ud, const struct mgr_event *ev);

/* Sets (fn non-NULL) or clears the one observer of state transitions.  fn
 * runs with the manager's lock held, on whichever thread made the
 * transition: it must return quickly and must not call the manager.  Once
 * this returns, the previous observer is never called again. */
void mgr_set_observer(struct mgr *m, mgr_observer_fn fn, void *ud);

/* Copies up to cap entries; returns the number of models. */
size_t mgr_status(struct mgr *m, struct mgr_model_status *out, size_t cap);
uint64_t mgr_now_ms(struct mgr *m);

#endif

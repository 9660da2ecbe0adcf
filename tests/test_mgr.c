/*
 * tests/mgr — the lifecycle state machine with a fake backend and a fake
 * clock: policies, keep-alive, single-flight, budget and eviction, queue
 * limits, fallback, retry after failure, cancellation.  Waits for other
 * threads poll the manager's status; no assertion depends on timing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mgr/mgr.h"

/* ---- fake backend: "size=N" in the path sets the estimate; "fail=N"
 * makes the first N loads fail; "badfile" fails the estimate; "corrupt"
 * always fails; "slow" waits for
 * the gate or the cancel flag ---- */
struct fake {
	atomic_int loads, unloads, live;
	atomic_int fails_left;
	atomic_int gate; /* slow loads wait until this is set */
};

static struct fake fk;
static uint64_t fake_now;

static uint64_t clock_fn(void *ud)
{
	(void)ud;
	return __atomic_load_n(&fake_now, __ATOMIC_SEQ_CST);
}

static uint64_t path_num(const char *path, const char *key, uint64_t def)
{
	const char *p = strstr(path, key);
	return p ? strtoull(p + strlen(key), NULL, 10) : def;
}

static int fk_estimate(void *ud, const struct mgr_model_cfg *c, uint64_t *bytes, struct dm_err *err)
{
	(void)ud;
	if (strstr(c->path, "badfile"))
		return dm_err_set(err, DM_EFORMAT, "%s: bad magic", c->path);
	*bytes = path_num(c->path, "size=", 100);
	return 0;
}

static int fk_load(void *ud, const struct mgr_model_cfg *c, struct mgr_progress *prog,
		   const atomic_int *cancel, struct mgr_loaded *out, struct dm_err *err)
{
	(void)ud;
	atomic_fetch_add(&fk.loads, 1);
	if (strstr(c->path, "slow")) {
		while (!atomic_load(&fk.gate)) {
			if (cancel && atomic_load(cancel))
				return dm_err_set(err, DM_ECANCELED, "load of '%s' cancelled", c->name);
			usleep(1000);
		}
	}
	if (strstr(c->path, "corrupt"))
		return dm_err_set(err, DM_EFORMAT, "%s: offset 0: bad magic", c->path);
	if (strstr(c->path, "flaky") && atomic_fetch_sub(&fk.fails_left, 1) > 0)
		return dm_err_set(err, DM_EIO, "%s: read error", c->path);
	atomic_store(&prog->total, 10);
	atomic_store(&prog->done, 10);
	out->handle = &fk; /* any non-NULL object */
	out->bytes = path_num(c->path, "size=", 100);
	atomic_fetch_add(&fk.live, 1);
	return 0;
}

static void fk_unload(void *ud, struct mgr_loaded *l)
{
	(void)ud;
	(void)l;
	atomic_fetch_add(&fk.unloads, 1);
	atomic_fetch_sub(&fk.live, 1);
}

static struct mgr *mk(uint64_t max_ram, uint32_t max_models, uint32_t max_queue)
{
	struct mgr_cfg c = { 0 };
	struct mgr *m;
	memset(&fk, 0, sizeof fk);
	fake_now = 1000;
	c.max_ram = max_ram;
	c.max_loaded_models = max_models;
	c.max_queue = max_queue;
	c.keep_alive_max_ms = -1;
	c.backend = (struct mgr_backend){ NULL, fk_estimate, fk_load, NULL, fk_unload, NULL, NULL };
	c.now_ms = clock_fn;
	c.no_reaper = true;
	assert_int_equal(mgr_init(&m, &c, NULL), 0);
	return m;
}

static void add(struct mgr *m, const char *name, const char *path, int64_t ka)
{
	struct mgr_model_cfg c;
	mgr_model_cfg_default(&c);
	snprintf(c.name, sizeof c.name, "%s", name);
	snprintf(c.path, sizeof c.path, "%s", path);
	c.keep_alive_ms = ka;
	assert_int_equal(mgr_add(m, &c, NULL), 0);
}

static struct mgr_model_status st(struct mgr *m, const char *name)
{
	struct mgr_model_status s[16];
	size_t n = mgr_status(m, s, 16);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(s[i].name, name))
			return s[i];
	fail_msg("no model %s", name);
	return s[0];
}

static void use(struct mgr *m, const char *name)
{
	struct mgr_lease *l;
	struct dm_err e;
	if (mgr_acquire(m, name, NULL, &l, &e))
		fail_msg("%s", e.msg);
	mgr_release(l);
}

static void test_lazy_and_keep_alive_duration(void **state)
{
	struct mgr *m = mk(0, 0, 0);
	(void)state;
	add(m, "a", "size=10", 30000);
	assert_int_equal(st(m, "a").state, MGR_DORMANT); /* nothing until needed */
	assert_int_equal(fk.loads, 0);
	use(m, "a");
	assert_int_equal(st(m, "a").state, MGR_READY);
	assert_int_equal(st(m, "a").expires_ms, 1000 + 30000);
	fake_now += 29999;
	assert_int_equal(mgr_tick(m), 0);
	assert_int_equal(st(m, "a").state, MGR_READY);
	use(m, "a"); /* a second request restarts the timer, no reload */
	assert_int_equal(fk.loads, 1);
	fake_now += 29999;
	assert_int_equal(mgr_tick(m), 0);
	fake_now += 1;
	assert_int_equal(mgr_tick(m), 1);
	assert_int_equal(st(m, "a").state, MGR_DORMANT);
	assert_int_equal(fk.live, 0);
	mgr_free(m);
}

static void test_keep_alive_zero_and_forever(void **state)
{
	struct mgr *m = mk(0, 0, 0);
	(void)state;
	add(m, "ondemand", "size=1", 0);
	add(m, "forever", "size=1", MGR_KEEP_FOREVER);
	use(m, "ondemand");
	assert_int_equal(st(m, "ondemand").state, MGR_DORMANT); /* unloaded at once */
	assert_int_equal(fk.loads, 1);
	assert_int_equal(fk.unloads, 1);
	use(m, "forever");
	fake_now += 1000ull * 3600 * 24 * 365;
	assert_int_equal(mgr_tick(m), 0);
	assert_int_equal(st(m, "forever").state, MGR_READY);
	mgr_free(m);
	assert_int_equal(fk.live, 0); /* freeing unloads everything */
}

/* mgr_remove: an in-use model stays (DM_EBUSY), an idle loaded one is
 * unloaded first, a removed name is gone and can be registered again. */
static void test_remove(void **state)
{
	struct mgr *m = mk(0, 0, 0);
	struct mgr_lease *l;
	struct dm_err e;
	(void)state;
	add(m, "a", "size=5", MGR_KEEP_FOREVER);
	add(m, "b", "size=5", MGR_KEEP_FOREVER);
	assert_int_equal(mgr_acquire(m, "a", NULL, &l, &e), 0);
	assert_int_equal(mgr_remove(m, "a", &e), DM_EBUSY);
	mgr_release(l);
	assert_int_equal(fk.live, 1);
	assert_int_equal(mgr_remove(m, "a", &e), 0);
	assert_int_equal(fk.live, 0); /* unloaded on the way out */
	assert_false(mgr_has(m, "a"));
	assert_true(mgr_has(m, "b"));
	assert_int_equal(mgr_acquire(m, "a", NULL, &l, &e), DM_ENOTFOUND);
	assert_int_equal(mgr_remove(m, "a", &e), DM_ENOTFOUND);
	add(m, "a", "size=6", 0);
	use(m, "a");
	assert_int_equal(fk.loads, 2);
	mgr_free(m);
}

static void test_keep_alive_override_clamped(void **state)
{
	struct mgr_cfg c = { 0 };
	struct mgr *m;
	struct mgr_lease *l;
	struct mgr_acquire_opts o = { .has_keep_alive = true, .keep_alive_ms = 999999999 };
	struct mgr_model_cfg mc;
	(void)state;
	memset(&fk, 0, sizeof fk);
	fake_now = 0;
	c.keep_alive_min_ms = 1000;
	c.keep_alive_max_ms = 60000;
	c.backend = (struct mgr_backend){ NULL, fk_estimate, fk_load, NULL, fk_unload, NULL, NULL };
	c.now_ms = clock_fn;
	c.no_reaper = true;
	assert_int_equal(mgr_init(&m, &c, NULL), 0);
	add(m, "a", "", 5000);
	mgr_model_cfg_default(&mc);
	snprintf(mc.name, sizeof mc.name, "locked");
	mc.allow_override = false;
	mc.keep_alive_ms = 5000;
	assert_int_equal(mgr_add(m, &mc, NULL), 0);
	assert_int_equal(mgr_acquire(m, "a", &o, &l, NULL), 0);
	mgr_release(l);
	assert_int_equal(st(m, "a").expires_ms, 60000); /* clamped to max */
	o.keep_alive_ms = 10;
	assert_int_equal(mgr_acquire(m, "a", &o, &l, NULL), 0);
	mgr_release(l);
	assert_int_equal(st(m, "a").expires_ms, 1000); /* clamped to min */
	o.keep_alive_ms = 10;
	assert_int_equal(mgr_acquire(m, "locked", &o, &l, NULL), 0);
	mgr_release(l);
	assert_int_equal(st(m, "locked").expires_ms, 5000); /* override not allowed */
	mgr_free(m);
}

struct race {
	struct mgr *m;
	atomic_int *ok;
};

static void *racer(void *arg)
{
	struct race *r = arg;
	struct mgr_lease *l;
	struct dm_err e;
	if (mgr_acquire(r->m, "big", NULL, &l, &e) == 0) {
		atomic_fetch_add(r->ok, 1);
		mgr_release(l);
	}
	return NULL;
}

/* 16 threads ask for a dormant model at once: one load, 16 answers. */
static void test_single_flight(void **state)
{
	struct mgr *m = mk(0, 0, 32);
	pthread_t th[16];
	atomic_int ok = 0;
	struct race r = { m, &ok };
	(void)state;
	add(m, "big", "slow size=5", 60000);
	for (int i = 0; i < 16; i++)
		assert_int_equal(pthread_create(&th[i], NULL, racer, &r), 0);
	/* let every thread arrive while the first load is held at the gate */
	while (st(m, "big").queued < 15)
		usleep(1000);
	atomic_store(&fk.gate, 1);
	for (int i = 0; i < 16; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(ok, 16);
	assert_int_equal(fk.loads, 1);
	assert_int_equal(st(m, "big").load_count, 1);
	mgr_free(m);
}

/* Three models that cannot all fit: the least recently used idle one goes,
 * never the busy one; a model that can never fit gets a clear error. */
static void test_budget_lru_eviction(void **state)
{
	struct mgr *m = mk(250, 0, 0);
	struct mgr_lease *busy;
	struct dm_err e;
	(void)state;
	add(m, "a", "size=100", MGR_KEEP_FOREVER);
	add(m, "b", "size=100", MGR_KEEP_FOREVER);
	add(m, "c", "size=100", MGR_KEEP_FOREVER);
	add(m, "huge", "size=300", MGR_KEEP_FOREVER);
	use(m, "b");
	fake_now += 10;
	assert_int_equal(mgr_acquire(m, "a", NULL, &busy, &e), 0); /* a: newer, and busy */
	fake_now += 10;
	use(m, "c"); /* needs room: b (idle, LRU) goes, a (busy) stays */
	assert_int_equal(st(m, "b").state, MGR_DORMANT);
	assert_int_equal(st(m, "b").evict_count, 1);
	assert_int_equal(st(m, "a").state, MGR_READY);
	assert_int_equal(st(m, "c").state, MGR_READY);
	mgr_release(busy);
	fake_now += 10;
	use(m, "b"); /* now a is idle and older than c: a goes */
	assert_int_equal(st(m, "a").state, MGR_DORMANT);
	assert_int_equal(st(m, "c").state, MGR_READY);
	assert_int_equal(mgr_acquire(m, "huge", NULL, &busy, &e), DM_ETOOBIG); /* permanent */
	assert_non_null(strstr(e.msg, "insufficient memory: need"));
	assert_int_equal(st(m, "huge").state, MGR_FAILED);
	assert_non_null(strstr(st(m, "huge").last_error, "insufficient memory"));
	mgr_free(m);
}

/* Residency by role: an embedder makes room among the encoders before it
 * evicts the chat model, even when the chat model is the least recently
 * used; a pinned model is never evicted, and a load that only a pinned
 * model stands in the way of is refused, saying so. */
static void test_eviction_by_role_and_pin(void **state)
{
	struct mgr *m = mk(200, 0, 0);
	struct mgr_model_cfg c;
	struct mgr_lease *l;
	struct dm_err e;
	(void)state;
	static const struct { const char *name, *path; enum mgr_role role; bool pin; } ms[] = {
		{ "chat", "size=120", MGR_ROLE_GENERATE, false }, { "emb1", "size=50", MGR_ROLE_EMBED, false },
		{ "emb2", "size=50", MGR_ROLE_EMBED, false },     { "rr", "size=50", MGR_ROLE_RERANK, false },
		{ "big", "size=200", MGR_ROLE_GENERATE, false },  { "pinned", "size=50", MGR_ROLE_GENERATE, true },
	};
	for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
		mgr_model_cfg_default(&c);
		snprintf(c.name, sizeof c.name, "%s", ms[i].name);
		snprintf(c.path, sizeof c.path, "%s", ms[i].path);
		c.keep_alive_ms = MGR_KEEP_FOREVER;
		c.role = ms[i].role;
		c.pin = ms[i].pin;
		assert_int_equal(mgr_add(m, &c, NULL), 0);
	}
	use(m, "chat"); /* the oldest */
	fake_now += 10;
	use(m, "emb1");
	fake_now += 10;
	use(m, "emb2"); /* 220 > 200: emb1 goes (its role), not the older chat */
	assert_int_equal(st(m, "chat").state, MGR_READY);
	assert_int_equal(st(m, "emb1").state, MGR_DORMANT);
	assert_int_equal(st(m, "emb2").state, MGR_READY);
	fake_now += 10;
	use(m, "rr"); /* embed and rerank are one class: emb2 goes, not the older chat */
	assert_int_equal(st(m, "chat").state, MGR_READY);
	assert_int_equal(st(m, "emb2").state, MGR_DORMANT);
	assert_int_equal(st(m, "rr").state, MGR_READY);
	/* a generating model makes room among the generating ones first */
	fake_now += 10;
	use(m, "pinned");
	assert_int_equal(st(m, "pinned").state, MGR_READY);
	assert_int_equal(st(m, "chat").state, MGR_DORMANT);
	assert_int_equal(st(m, "rr").state, MGR_READY);
	/* a pinned model stays whatever comes: with no other generating model
	 * idle, the chat model takes the retrieval model's room, though the
	 * pinned one is the least recently used */
	fake_now += 10;
	use(m, "chat");
	assert_int_equal(st(m, "pinned").state, MGR_READY);
	assert_int_equal(st(m, "chat").state, MGR_READY);
	assert_int_equal(st(m, "rr").state, MGR_DORMANT);
	assert_int_equal(mgr_acquire(m, "big", NULL, &l, &e), DM_ETOOBIG);
	assert_non_null(strstr(e.msg, "pinned models hold the rest"));
	assert_int_equal(st(m, "pinned").state, MGR_READY);
	mgr_free(m);
}

/* Only a busy model stands in the way: wait (bounded), then the clear error. */
static void test_budget_wait_then_insufficient(void **state)
{
	struct mgr_cfg c = { 0 };
	struct mgr *m;
	struct mgr_lease *busy, *l;
	struct dm_err e;
	(void)state;
	memset(&fk, 0, sizeof fk);
	c.max_ram = 150u << 20;
	c.queue_timeout_ms = 100;
	c.backend = (struct mgr_backend){ NULL, fk_estimate, fk_load, NULL, fk_unload, NULL, NULL };
	c.now_ms = clock_fn;
	c.no_reaper = true;
	assert_int_equal(mgr_init(&m, &c, NULL), 0);
	add(m, "a", "size=104857600", MGR_KEEP_FOREVER);
	add(m, "b", "size=104857600", MGR_KEEP_FOREVER);
	assert_int_equal(mgr_acquire(m, "a", NULL, &busy, &e), 0);
	/* transient (a model in use stands in the way): not the permanent code */
	assert_int_equal(mgr_acquire(m, "b", NULL, &l, &e), DM_ETIMEDOUT);
	assert_non_null(strstr(e.msg, "insufficient memory: need 100.0 MiB, have 50.0 MiB for model 'b' (waited"));
	assert_int_equal(st(m, "a").state, MGR_READY); /* the busy one untouched */
	mgr_release(busy);
	assert_int_equal(mgr_acquire(m, "b", NULL, &l, &e), 0); /* now a is idle: evicted */
	assert_int_equal(st(m, "a").state, MGR_DORMANT);
	mgr_release(l);
	mgr_free(m);
}

static void test_max_loaded_models(void **state)
{
	struct mgr *m = mk(0, 1, 0);
	(void)state;
	add(m, "a", "", MGR_KEEP_FOREVER);
	add(m, "b", "", MGR_KEEP_FOREVER);
	use(m, "a");
	fake_now++;
	use(m, "b");
	assert_int_equal(st(m, "a").state, MGR_DORMANT);
	assert_int_equal(st(m, "b").state, MGR_READY);
	mgr_free(m);
}

struct waiter {
	struct mgr *m;
	const char *name;
	atomic_int cancel;
	int rc;
	struct dm_err e;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;
	struct mgr_acquire_opts o = { .cancel = &w->cancel };
	struct mgr_lease *l;
	w->rc = mgr_acquire(w->m, w->name, &o, &l, &w->e);
	if (w->rc == 0)
		mgr_release(l);
	return NULL;
}

/* A busy model queues requests up to max_queue; beyond that: busy. */
static void test_queue_limit_and_cancel_while_queued(void **state)
{
	struct mgr *m = mk(0, 0, 1);
	struct mgr_lease *held, *l;
	struct waiter w = { .name = "a" };
	pthread_t th;
	struct dm_err e;
	(void)state;
	w.m = m;
	add(m, "a", "", MGR_KEEP_FOREVER);
	assert_int_equal(mgr_acquire(m, "a", NULL, &held, &e), 0);
	assert_int_equal(pthread_create(&th, NULL, wait_thread, &w), 0);
	while (st(m, "a").queued < 1)
		usleep(1000);
	assert_int_equal(mgr_acquire(m, "a", NULL, &l, &e), DM_EBUSY);
	assert_non_null(strstr(e.msg, "busy"));
	atomic_store(&w.cancel, 1);
	pthread_join(th, NULL);
	assert_int_equal(w.rc, DM_ECANCELED);
	assert_int_equal(st(m, "a").queued, 0);
	/* the running request was never disturbed */
	assert_true(st(m, "a").in_use);
	mgr_release(held);
	/* a queued request is served when the lease ends */
	w.cancel = 0;
	assert_int_equal(mgr_acquire(m, "a", NULL, &held, &e), 0);
	assert_int_equal(pthread_create(&th, NULL, wait_thread, &w), 0);
	while (st(m, "a").queued < 1)
		usleep(1000);
	mgr_release(held);
	pthread_join(th, NULL);
	assert_int_equal(w.rc, 0);
	mgr_free(m);
}

/* Waiters are served in arrival order (tickets), however the wake-ups
 * fall: N requests queue one after another behind a held model; when it is
 * released each takes it in turn and writes down its number. */
struct fifo_waiter {
	struct mgr *m;
	int id;
	int *order, *n_order;
	pthread_mutex_t *mu;
	int rc;
};

static void *fifo_thread(void *arg)
{
	struct fifo_waiter *w = arg;
	struct mgr_lease *l;
	struct dm_err e;
	w->rc = mgr_acquire(w->m, "a", NULL, &l, &e);
	if (w->rc == 0) {
		pthread_mutex_lock(w->mu);
		w->order[(*w->n_order)++] = w->id;
		pthread_mutex_unlock(w->mu);
		usleep(1000); /* hold it a moment: the others wake and must wait their turn */
		mgr_release(l);
	}
	return NULL;
}

static void test_queue_first_come_first_served(void **state)
{
	enum { N = 10 };
	struct mgr *m = mk(0, 0, 16);
	struct fifo_waiter w[N];
	pthread_t th[N];
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	struct mgr_lease *held;
	struct dm_err e;
	int order[N], n_order = 0;
	(void)state;
	add(m, "a", "", MGR_KEEP_FOREVER);
	assert_int_equal(mgr_acquire(m, "a", NULL, &held, &e), 0);
	for (int i = 0; i < N; i++) {
		w[i] = (struct fifo_waiter){ m, i, order, &n_order, &mu, -1 };
		assert_int_equal(pthread_create(&th[i], NULL, fifo_thread, &w[i]), 0);
		while (st(m, "a").queued < (uint32_t)i + 1) /* i is in line before i + 1 starts */
			usleep(500);
	}
	mgr_release(held);
	for (int i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(n_order, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(w[i].rc, 0);
		if (order[i] != i)
			fail_msg("served out of order: position %d went to request %d", i, order[i]);
	}
	assert_int_equal(st(m, "a").queued, 0);
	mgr_free(m);
}

static void test_cancel_while_loading(void **state)
{
	struct mgr *m = mk(0, 0, 0);
	struct waiter w = { .name = "s" };
	pthread_t th;
	(void)state;
	w.m = m;
	add(m, "s", "slow", MGR_KEEP_FOREVER);
	assert_int_equal(pthread_create(&th, NULL, wait_thread, &w), 0);
	while (st(m, "s").state != MGR_LOADING || fk.loads < 1)
		usleep(1000);
	atomic_store(&w.cancel, 1);
	pthread_join(th, NULL);
	assert_int_equal(w.rc, DM_ECANCELED);
	assert_int_equal(st(m, "s").state, MGR_FAILED);
	assert_int_equal(fk.live, 0); /* nothing left allocated */
	mgr_free(m);
}

static void test_failed_load_then_retry(void **state)
{
	struct mgr *m = mk(0, 0, 0);
	struct mgr_lease *l;
	struct dm_err e;
	(void)state;
	add(m, "f", "flaky", MGR_KEEP_FOREVER);
	atomic_store(&fk.fails_left, 1);
	assert_int_equal(mgr_acquire(m, "f", NULL, &l, &e), DM_EIO);
	assert_int_equal(st(m, "f").state, MGR_FAILED);
	assert_string_equal(st(m, "f").last_error, "flaky: read error");
	assert_int_equal(fk.live, 0);
	assert_int_equal(mgr_acquire(m, "f", NULL, &l, &e), 0); /* the next request retries */
	assert_int_equal(st(m, "f").state, MGR_READY);
	assert_string_equal(st(m, "f").last_error, "");
	mgr_release(l);
	mgr_free(m);
}

static void test_fallback_on_corrupt_primary(void **state)
{
	struct mgr_cfg c = { 0 };
	struct mgr *m;
	struct mgr_lease *l;
	struct mgr_model_cfg mc;
	struct dm_err e;
	(void)state;
	memset(&fk, 0, sizeof fk);
	c.enable_fallback = true;
	c.backend = (struct mgr_backend){ NULL, fk_estimate, fk_load, NULL, fk_unload, NULL, NULL };
	c.now_ms = clock_fn;
	c.no_reaper = true;
	assert_int_equal(mgr_init(&m, &c, NULL), 0);
	mgr_model_cfg_default(&mc);
	snprintf(mc.name, sizeof mc.name, "primary");
	snprintf(mc.path, sizeof mc.path, "corrupt.gguf");
	snprintf(mc.fallbacks[0], sizeof mc.fallbacks[0], "missing");
	snprintf(mc.fallbacks[1], sizeof mc.fallbacks[1], "small");
	assert_int_equal(mgr_add(m, &mc, NULL), 0);
	add(m, "small", "small.gguf", 0);
	assert_int_equal(mgr_acquire(m, "primary", NULL, &l, &e), 0);
	assert_string_equal(mgr_lease_model(l), "small");
	assert_string_equal(mgr_lease_fallback_reason(l), "corrupt.gguf: offset 0: bad magic");
	mgr_release(l);
	assert_int_equal(st(m, "primary").state, MGR_FAILED);
	/* with fallback off, the error comes back */
	{
		struct mgr_acquire_opts o = { .no_fallback = true };
		assert_int_equal(mgr_acquire(m, "primary", &o, &l, &e), DM_EFORMAT);
	}
	mgr_free(m);
}

/* ---- a backend whose models hold droppable caches: "cache=N" in the path
 * is what a loaded model holds beyond its size until shrink drops it ---- */
struct cached_model {
	uint64_t size, cache;
};

static int ck_load(void *ud, const struct mgr_model_cfg *c, struct mgr_progress *prog,
		   const atomic_int *cancel, struct mgr_loaded *out, struct dm_err *err)
{
	struct cached_model *cm = calloc(1, sizeof *cm);
	(void)ud;
	(void)prog;
	(void)cancel;
	if (!cm)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	cm->size = path_num(c->path, "size=", 100);
	cm->cache = path_num(c->path, "cache=", 0);
	out->handle = cm;
	out->bytes = cm->size; /* as a load measures it, before held() is asked */
	return 0;
}

static void ck_unload(void *ud, struct mgr_loaded *l)
{
	(void)ud;
	free(l->handle);
}

static uint64_t ck_held(void *ud, const struct mgr_loaded *l)
{
	const struct cached_model *cm = l->handle;
	(void)ud;
	return cm->size + cm->cache;
}

static uint64_t ck_shrink(void *ud, struct mgr_loaded *l)
{
	struct cached_model *cm = l->handle;
	uint64_t freed = cm->cache;
	(void)ud;
	cm->cache = 0;
	return freed;
}

/* The budget counts what a model holds (held), an idle model's caches go
 * before any model is evicted, and a lease's reservation (a request's
 * growth) evicts idle models, never fits past max_ram (DM_ETOOBIG naming
 * the request) and ends with the lease. */
static void test_budget_caches_and_growth(void **state)
{
	struct mgr_cfg c = { 0 };
	struct mgr *m;
	struct mgr_lease *l;
	struct dm_err e;
	(void)state;
	c.max_ram = 300;
	c.keep_alive_max_ms = -1;
	c.queue_timeout_ms = 200;
	c.backend = (struct mgr_backend){ NULL, fk_estimate, ck_load, NULL, ck_unload, ck_held, ck_shrink };
	c.now_ms = clock_fn;
	c.no_reaper = true;
	assert_int_equal(mgr_init(&m, &c, &e), 0);
	add(m, "x", "size=100 cache=80", 60000);
	add(m, "y", "size=150", 60000);
	use(m, "x");
	assert_int_equal(st(m, "x").bytes, 180); /* its cache counts */
	/* 180 + 150 > 300: x's cache goes, x stays */
	if (mgr_acquire(m, "y", NULL, &l, &e))
		fail_msg("%s", e.msg);
	assert_int_equal(st(m, "x").state, MGR_READY);
	assert_int_equal(st(m, "x").bytes, 100);
	assert_int_equal(st(m, "x").evict_count, 0);
	/* y's request may grow to 190: fits beside x; to 250: x is evicted */
	assert_int_equal(mgr_lease_reserve(l, 190, NULL, &e), 0);
	assert_int_equal(st(m, "x").state, MGR_READY);
	assert_int_equal(mgr_lease_reserve(l, 250, NULL, &e), 0);
	assert_int_equal(st(m, "x").state, MGR_DORMANT);
	assert_int_equal(st(m, "x").evict_count, 1);
	/* past max_ram: never */
	assert_int_equal(mgr_lease_reserve(l, 301, NULL, &e), DM_ETOOBIG);
	print_message("      %s\n", e.msg);
	assert_non_null(strstr(e.msg, "insufficient memory"));
	assert_non_null(strstr(e.msg, "for this request"));
	/* the reservation of 250 still holds: x (100) waits for y's request,
	 * then gives up (queue_timeout) */
	{
		struct mgr_lease *lx;
		assert_int_equal(st(m, "y").bytes, 150);
		assert_int_equal(mgr_acquire(m, "x", NULL, &lx, &e), DM_ETIMEDOUT);
		print_message("      %s\n", e.msg);
		mgr_release(l);
		/* released: y counts what it holds (150) and x fits again */
		if (mgr_acquire(m, "x", NULL, &lx, &e))
			fail_msg("%s", e.msg);
		assert_int_equal(st(m, "y").state, MGR_READY);
		mgr_release(lx);
	}
	mgr_free(m);
}

static void add_fb(struct mgr *m, const char *name, const char *path, const char *fb0, const char *fb1)
{
	struct mgr_model_cfg c;
	mgr_model_cfg_default(&c);
	snprintf(c.name, sizeof c.name, "%s", name);
	snprintf(c.path, sizeof c.path, "%s", path);
	snprintf(c.fallbacks[0], sizeof c.fallbacks[0], "%s", fb0);
	snprintf(c.fallbacks[1], sizeof c.fallbacks[1], "%s", fb1);
	assert_int_equal(mgr_add(m, &c, NULL), 0);
}

/* a -> b (broken) -> c: the chain is followed to its end, with a's reason;
 * a cycle of broken models ends with the primary's error. */
static void test_fallback_chain_and_cycle(void **state)
{
	struct mgr_cfg c = { 0 };
	struct mgr *m;
	struct mgr_lease *l;
	struct dm_err e;
	(void)state;
	memset(&fk, 0, sizeof fk);
	c.enable_fallback = true;
	c.backend = (struct mgr_backend){ NULL, fk_estimate, fk_load, NULL, fk_unload, NULL, NULL };
	c.now_ms = clock_fn;
	c.no_reaper = true;
	assert_int_equal(mgr_init(&m, &c, NULL), 0);
	add_fb(m, "a", "corrupt-a.gguf", "b", "");
	add_fb(m, "b", "corrupt-b.gguf", "nosuch", "c");
	add(m, "c", "c.gguf", 0);
	assert_int_equal(mgr_acquire(m, "a", NULL, &l, &e), 0);
	assert_string_equal(mgr_lease_model(l), "c");
	assert_string_equal(mgr_lease_fallback_reason(l), "corrupt-a.gguf: offset 0: bad magic");
	mgr_release(l);
	assert_int_equal(st(m, "b").state, MGR_FAILED);
	/* x -> y -> x, both broken: each tried once, then x's own error */
	add_fb(m, "x", "corrupt-x.gguf", "y", "");
	add_fb(m, "y", "corrupt-y.gguf", "x", "y");
	fk.loads = 0;
	assert_int_equal(mgr_acquire(m, "x", NULL, &l, &e), DM_EFORMAT);
	assert_string_equal(e.msg, "corrupt-x.gguf: offset 0: bad magic");
	assert_int_equal(fk.loads, 2);
	mgr_free(m);
}

/* The start-up check finds, without loading anything, what a request would
 * only find later: a broken file, a model larger than the budget, a fallback
 * naming no model, a fallback cycle. */
static void test_check_model(void **state)
{
	struct mgr *m = mk(250u << 20, 0, 0);
	struct dm_err e;
	uint64_t est = 0;
	(void)state;
	add(m, "ok", "size=100", 0);
	add(m, "huge", "size=314572800", 0);
	add_fb(m, "orphan", "size=10", "ok", "nosuch");
	add_fb(m, "p", "size=10", "q", "");
	add_fb(m, "q", "size=10", "ok", "p");
	add(m, "broken", "size=10 badfile", 0);
	assert_int_equal(mgr_check_model(m, "ok", &est, &e), 0);
	assert_int_equal(est, 100);
	assert_int_equal(mgr_check_model(m, "huge", &est, &e), DM_ETOOBIG);
	assert_string_equal(e.msg, "needs 300.0 MiB, more than max_ram 250.0 MiB: it can never be loaded");
	assert_int_equal(mgr_check_model(m, "orphan", NULL, &e), DM_ENOTFOUND);
	assert_string_equal(e.msg, "fallback 'nosuch' names no registered model");
	assert_int_equal(mgr_check_model(m, "p", NULL, &e), DM_EINVAL);
	assert_string_equal(e.msg, "fallbacks form a cycle: p -> q -> p");
	assert_int_equal(mgr_check_model(m, "broken", NULL, &e), DM_EFORMAT);
	assert_string_equal(e.msg, "size=10 badfile: bad magic");
	assert_int_equal(mgr_check_model(m, "nosuch", NULL, &e), DM_ENOTFOUND);
	assert_int_equal(fk.loads, 0); /* nothing was loaded */
	assert_int_equal(st(m, "ok").state, MGR_DORMANT);
	mgr_free(m);
}

static void test_eager_and_explicit(void **state)
{
	struct mgr *m = mk(0, 0, 0);
	struct mgr_model_cfg mc;
	struct dm_err e;
	(void)state;
	mgr_model_cfg_default(&mc);
	snprintf(mc.name, sizeof mc.name, "e");
	mc.load = MGR_EAGER;
	mc.keep_alive_ms = MGR_KEEP_FOREVER;
	assert_int_equal(mgr_add(m, &mc, NULL), 0);
	add(m, "od", "", 0);
	assert_int_equal(mgr_start(m, &e), 0);
	assert_int_equal(st(m, "e").state, MGR_READY);
	assert_int_equal(st(m, "od").state, MGR_DORMANT);
	assert_int_equal(mgr_load(m, "od", &e), 0); /* explicit load stays */
	assert_int_equal(st(m, "od").state, MGR_READY);
	use(m, "od"); /* ... until its next request ends */
	assert_int_equal(st(m, "od").state, MGR_DORMANT);
	assert_int_equal(mgr_unload(m, "e", &e), 0);
	assert_int_equal(st(m, "e").state, MGR_DORMANT);
	assert_int_equal(mgr_unload(m, "nope", &e), DM_ENOTFOUND);
	{
		struct mgr_lease *l;
		assert_int_equal(mgr_acquire(m, "nope", NULL, &l, &e), DM_ENOTFOUND);
		assert_string_equal(e.msg, "model 'nope' not found");
	}
	mgr_free(m);
}

static char log_buf[4096];

static void log_line(void *ud, const char *line)
{
	(void)ud;
	strncat(log_buf, line, sizeof log_buf - strlen(log_buf) - 2);
	strcat(log_buf, "\n");
}

/* Every transition is logged with timing and memory figures. */
static void test_transition_log(void **state)
{
	struct mgr_cfg c = { 0 };
	struct mgr *m;
	struct mgr_lease *l;
	struct dm_err e;
	(void)state;
	memset(&fk, 0, sizeof fk);
	log_buf[0] = '\0';
	c.backend = (struct mgr_backend){ NULL, fk_estimate, fk_load, NULL, fk_unload, NULL, NULL };
	c.no_reaper = true;
	c.log = log_line;
	assert_int_equal(mgr_init(&m, &c, NULL), 0);
	add(m, "a", "size=2097152", 0);
	add(m, "bad", "corrupt.gguf", 0);
	use(m, "a");
	assert_int_equal(mgr_acquire(m, "bad", NULL, &l, &e), DM_EFORMAT);
	mgr_free(m);
	assert_non_null(strstr(log_buf, "model 'a': dormant -> loading (mmap, estimate 2.0 MiB)"));
	assert_non_null(strstr(log_buf, "model 'a': loading -> ready in "));
	assert_non_null(strstr(log_buf, "model 'a': ready -> unloading (released)"));
	assert_non_null(strstr(log_buf, "model 'a': unloading -> dormant in "));
	assert_non_null(strstr(log_buf, "MiB vs before the load; anon "));
	assert_non_null(strstr(log_buf, "model 'bad': loading -> failed: corrupt.gguf: offset 0: bad magic"));
}

/* ---- the observer: every transition, in order, with its figures ---- */

static char obs_buf[2048];

static void observer(void *ud, const struct mgr_event *ev)
{
	size_t n = strlen(obs_buf);
	(void)ud;
	snprintf(obs_buf + n, sizeof obs_buf - n, "%s:%s>%s%s%s%s ", ev->model, mgr_state_name(ev->from),
		 mgr_state_name(ev->to), ev->evict ? "(evict)" : "", ev->error[0] ? ":" : "", ev->error);
	if (ev->to == MGR_READY) {
		assert_int_equal(ev->bytes, 100);
		assert_true(ev->rss > 0 && ev->rss >= ev->rss_anon);
	}
	if (ev->to == MGR_UNLOADING)
		assert_int_equal(ev->rss, 0); /* measured only where the memory settled */
}

static void test_observer(void **state)
{
	struct mgr *m = mk(150, 0, 0);
	struct mgr_lease *l;
	struct dm_err e;
	(void)state;
	obs_buf[0] = '\0';
	add(m, "a", "size=100", MGR_KEEP_FOREVER);
	add(m, "b", "size=100", MGR_KEEP_FOREVER);
	add(m, "f", "flaky", MGR_KEEP_FOREVER);
	mgr_set_observer(m, observer, NULL);
	use(m, "a");
	use(m, "b"); /* a is evicted to make room */
	atomic_store(&fk.fails_left, 1);
	assert_int_equal(mgr_unload(m, "b", &e), 0);
	assert_int_equal(mgr_acquire(m, "f", NULL, &l, &e), DM_EIO);
	assert_string_equal(obs_buf, "a:dormant>loading a:loading>ready "
				     "a:ready>unloading(evict) a:unloading>dormant(evict) "
				     "b:dormant>loading b:loading>ready b:ready>unloading b:unloading>dormant "
				     "f:dormant>loading f:loading>failed:flaky: read error ");
	/* cleared: never called again */
	mgr_set_observer(m, NULL, NULL);
	obs_buf[0] = '\0';
	use(m, "a");
	assert_string_equal(obs_buf, "");
	mgr_free(m);
}

static struct mgr_model_cfg cfg_of(const char *name, const char *path, int64_t ka)
{
	struct mgr_model_cfg c;
	mgr_model_cfg_default(&c);
	snprintf(c.name, sizeof c.name, "%s", name);
	snprintf(c.path, sizeof c.path, "%s", path);
	c.keep_alive_ms = ka;
	return c;
}

/* New settings for registered models: none, live ones (in place), load
 * ones on an idle, a busy (its queue loads the new ones) and a loading
 * model. */
/* Which settings need a reload: everything a load reads (the KV cache's
 * reservation and the saved-prefix bound included), and nothing else. */
static void test_cfg_diff(void **state)
{
	struct mgr_model_cfg a, b;
	(void)state;
	mgr_model_cfg_default(&a);
	snprintf(a.name, sizeof a.name, "m");
	snprintf(a.path, sizeof a.path, "x.gguf");
	b = a;
	assert_int_equal(mgr_model_cfg_diff(&a, &b), 0);
	b.n_ctx_max = 8192;
	assert_int_equal(mgr_model_cfg_diff(&a, &b), MGR_DIFF_LOAD);
	b = a;
	b.prefix_cache_max = 1u << 20;
	assert_int_equal(mgr_model_cfg_diff(&a, &b), MGR_DIFF_LOAD);
	b = a;
	b.n_ctx = 1024;
	assert_int_equal(mgr_model_cfg_diff(&a, &b), MGR_DIFF_LOAD);
	b = a;
	b.keep_alive_ms = 1000;
	assert_int_equal(mgr_model_cfg_diff(&a, &b) & MGR_DIFF_LOAD, 0);
	assert_true(mgr_model_cfg_diff(&a, &b) & MGR_DIFF_LIVE);
	b = a;
	b.pin = !a.pin;
	assert_int_equal(mgr_model_cfg_diff(&a, &b), MGR_DIFF_LIVE);
}

static void test_update(void **state)
{
	struct mgr *m = mk(0, 0, 4);
	struct mgr_model_cfg c;
	struct mgr_lease *held;
	struct waiter w = { .name = "b" }, ws = { .name = "s" };
	pthread_t th;
	enum mgr_apply how;
	unsigned diff;
	(void)state;
	w.m = ws.m = m;
	add(m, "a", "size=10", MGR_KEEP_FOREVER);
	add(m, "b", "size=10", MGR_KEEP_FOREVER);
	use(m, "a");
	use(m, "b");

	c = cfg_of("a", "size=10", MGR_KEEP_FOREVER);
	assert_int_equal(mgr_update(m, &c, &diff, &how, NULL), 0);
	assert_int_equal(diff, 0);
	assert_int_equal(how, MGR_APPLY_DONE);
	assert_int_equal(st(m, "a").state, MGR_READY);
	assert_int_equal(st(m, "a").load_count, 1);

	/* live: still loaded, its timer follows the new keep_alive */
	c.keep_alive_ms = 30000;
	c.pin = true;
	assert_int_equal(mgr_update(m, &c, &diff, &how, NULL), 0);
	assert_int_equal(diff, MGR_DIFF_LIVE);
	assert_int_equal(how, MGR_APPLY_DONE);
	assert_int_equal(st(m, "a").state, MGR_READY);
	assert_int_equal(st(m, "a").keep_alive_ms, 30000);
	assert_int_equal(st(m, "a").expires_ms, 1000 + 30000);
	assert_int_equal(fk.unloads, 0);

	/* load settings on an idle model: unloaded now, loaded with them next */
	c.n_ctx = 512;
	assert_int_equal(mgr_update(m, &c, &diff, &how, NULL), 0);
	assert_int_equal(diff, MGR_DIFF_LOAD);
	assert_int_equal(how, MGR_APPLY_UNLOADED);
	assert_int_equal(st(m, "a").state, MGR_DORMANT);
	assert_int_equal(fk.unloads, 1);

	/* on a busy one: it stays until its lease ends; the request queued
	 * behind it loads the new file */
	assert_int_equal(mgr_acquire(m, "b", NULL, &held, NULL), 0);
	assert_int_equal(pthread_create(&th, NULL, wait_thread, &w), 0);
	while (st(m, "b").queued < 1)
		usleep(1000);
	c = cfg_of("b", "size=20", MGR_KEEP_FOREVER);
	assert_int_equal(mgr_update(m, &c, &diff, &how, NULL), 0);
	assert_int_equal(diff, MGR_DIFF_LOAD);
	assert_int_equal(how, MGR_APPLY_PENDING);
	assert_int_equal(st(m, "b").state, MGR_READY);
	assert_string_equal(st(m, "b").path, "size=10"); /* the loaded one's, until then */
	assert_int_equal(st(m, "b").bytes, 10);
	mgr_release(held);
	pthread_join(th, NULL);
	assert_int_equal(w.rc, 0);
	assert_int_equal(st(m, "b").load_count, 2);
	assert_int_equal(st(m, "b").bytes, 20);
	assert_int_equal(fk.unloads, 2);

	/* on a loading one: the load in flight finishes with the old
	 * settings, its request ends, then it goes */
	add(m, "s", "slow size=5", MGR_KEEP_FOREVER);
	assert_int_equal(pthread_create(&th, NULL, wait_thread, &ws), 0);
	while (st(m, "s").state != MGR_LOADING || fk.loads < 4)
		usleep(1000);
	c = cfg_of("s", "size=6", MGR_KEEP_FOREVER);
	assert_int_equal(mgr_update(m, &c, &diff, &how, NULL), 0);
	assert_int_equal(how, MGR_APPLY_PENDING);
	atomic_store(&fk.gate, 1);
	pthread_join(th, NULL);
	assert_int_equal(ws.rc, 0);
	assert_int_equal(st(m, "s").state, MGR_DORMANT);
	assert_string_equal(st(m, "s").path, "size=6");
	use(m, "s");
	assert_int_equal(st(m, "s").bytes, 6);
	c.name[0] = 'x';
	assert_int_equal(mgr_update(m, &c, NULL, NULL, NULL), DM_ENOTFOUND);
	mgr_free(m);
	assert_int_equal(fk.live, 0);
}

/* A retired model: unknown to new requests at once, its lease ends
 * normally, then it is unloaded; its name can be registered again
 * meanwhile. */
static void test_retire(void **state)
{
	struct mgr *m = mk(0, 0, 4);
	struct mgr_model_status all[8];
	struct mgr_lease *held, *l;
	struct mgr_model_cfg c;
	enum mgr_apply how;
	struct dm_err e;
	(void)state;
	add(m, "a", "size=10", MGR_KEEP_FOREVER);
	add(m, "b", "size=10", MGR_KEEP_FOREVER);
	add(m, "c", "size=10", MGR_KEEP_FOREVER);
	use(m, "b");

	assert_int_equal(mgr_retire(m, "c", &how, NULL), 0); /* never loaded */
	assert_int_equal(how, MGR_APPLY_DONE);
	assert_int_equal(mgr_retire(m, "b", &how, NULL), 0); /* loaded, idle */
	assert_int_equal(how, MGR_APPLY_UNLOADED);
	assert_int_equal(fk.live, 0);

	assert_int_equal(mgr_acquire(m, "a", NULL, &held, NULL), 0);
	assert_int_equal(mgr_retire(m, "a", &how, NULL), 0);
	assert_int_equal(how, MGR_APPLY_PENDING);
	assert_false(mgr_has(m, "a"));
	assert_int_equal(mgr_acquire(m, "a", NULL, &l, &e), DM_ENOTFOUND);
	assert_int_equal(mgr_status(m, all, 8), 0);
	assert_int_equal(fk.live, 1); /* still held */
	c = cfg_of("a", "size=3", MGR_KEEP_FOREVER);
	assert_int_equal(mgr_add(m, &c, NULL), 0); /* the name is free */
	assert_int_equal(st(m, "a").state, MGR_DORMANT);
	mgr_release(held);
	assert_int_equal(fk.live, 0);
	assert_int_equal(fk.unloads, 2);
	use(m, "a");
	assert_int_equal(st(m, "a").bytes, 3);
	assert_int_equal(mgr_retire(m, "zz", NULL, &e), DM_ENOTFOUND);
	mgr_free(m);
}

/* A smaller budget evicts idle models, least recently used first, never a
 * busy or a pinned one; a larger one lets a waiting load go on. */
static void test_set_limits(void **state)
{
	struct mgr *m = mk(0, 0, 4);
	struct mgr_cfg lim;
	struct mgr_lease *held;
	struct mgr_model_cfg c;
	(void)state;
	add(m, "a", "size=10", MGR_KEEP_FOREVER);
	add(m, "b", "size=10", MGR_KEEP_FOREVER);
	c = cfg_of("p", "size=10", MGR_KEEP_FOREVER);
	c.pin = true;
	assert_int_equal(mgr_add(m, &c, NULL), 0);
	use(m, "p");
	use(m, "a");
	fake_now += 10;
	use(m, "b");
	mgr_limits(m, &lim);
	lim.max_ram = 25;
	assert_int_equal(mgr_set_limits(m, &lim), 1);
	assert_int_equal(st(m, "a").state, MGR_DORMANT); /* least recently used */
	assert_int_equal(st(m, "a").evict_count, 1);
	assert_int_equal(st(m, "b").state, MGR_READY);
	assert_int_equal(st(m, "p").state, MGR_READY);

	assert_int_equal(mgr_acquire(m, "b", NULL, &held, NULL), 0);
	lim.max_ram = 10;
	lim.max_queue = 2;
	assert_int_equal(mgr_set_limits(m, &lim), 0); /* b busy, p pinned */
	assert_int_equal(st(m, "b").state, MGR_READY);
	mgr_limits(m, &lim);
	assert_int_equal(lim.max_ram, 10);
	assert_int_equal(lim.max_queue, 2);
	mgr_release(held);
	mgr_free(m);
}

struct churn {
	struct mgr *m;
	atomic_int stop, rounds, fail_a, ok_b, gone_b, other_b;
};

static void *churn_thread(void *arg)
{
	struct churn *c = arg;
	while (!atomic_load(&c->stop)) {
		struct mgr_lease *l;
		struct dm_err e;
		int rc = mgr_acquire(c->m, "a", NULL, &l, &e);
		if (rc)
			atomic_fetch_add(&c->fail_a, 1);
		else
			mgr_release(l);
		rc = mgr_acquire(c->m, "b", NULL, &l, &e);
		if (!rc) {
			atomic_fetch_add(&c->ok_b, 1);
			mgr_release(l);
		} else {
			atomic_fetch_add(rc == DM_ENOTFOUND ? &c->gone_b : &c->other_b, 1);
		}
		atomic_fetch_add(&c->rounds, 1);
	}
	return NULL;
}

/* Reloads racing requests: a changes its load settings back and forth, b
 * is retired and registered again; every request for a is served, one for
 * b is served or finds no model, and nothing stays allocated. */
static void test_update_under_load(void **state)
{
	struct mgr *m = mk(0, 0, 64);
	struct churn c = { .m = m };
	pthread_t th[4];
	(void)state;
	add(m, "a", "size=10", MGR_KEEP_FOREVER);
	add(m, "b", "size=10", MGR_KEEP_FOREVER);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, churn_thread, &c), 0);
	for (int k = 0; k < 300; k++) {
		struct mgr_model_cfg a = cfg_of("a", k % 2 ? "size=20" : "size=10", MGR_KEEP_FOREVER);
		struct mgr_model_cfg b = cfg_of("b", "size=10", MGR_KEEP_FOREVER);
		/* a change per round of requests, so that they overlap */
		while (atomic_load(&c.rounds) < k)
			usleep(100);
		assert_int_equal(mgr_update(m, &a, NULL, NULL, NULL), 0);
		if (k % 3 == 0) {
			assert_int_equal(mgr_retire(m, "b", NULL, NULL), 0);
			assert_int_equal(mgr_add(m, &b, NULL), 0);
		}
	}
	atomic_store(&c.stop, 1);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	assert_true(c.rounds >= 300);
	assert_int_equal(c.fail_a, 0);
	assert_int_equal(c.other_b, 0);
	assert_int_equal(c.ok_b + c.gone_b, c.rounds);
	mgr_free(m);
	assert_int_equal(fk.live, 0);
	assert_int_equal(fk.loads, fk.unloads);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lazy_and_keep_alive_duration),
		cmocka_unit_test(test_keep_alive_zero_and_forever),
		cmocka_unit_test(test_remove),
		cmocka_unit_test(test_keep_alive_override_clamped),
		cmocka_unit_test(test_single_flight),
		cmocka_unit_test(test_budget_lru_eviction),
		cmocka_unit_test(test_eviction_by_role_and_pin),
		cmocka_unit_test(test_budget_wait_then_insufficient),
		cmocka_unit_test(test_budget_caches_and_growth),
		cmocka_unit_test(test_max_loaded_models),
		cmocka_unit_test(test_queue_limit_and_cancel_while_queued),
		cmocka_unit_test(test_queue_first_come_first_served),
		cmocka_unit_test(test_cancel_while_loading),
		cmocka_unit_test(test_failed_load_then_retry),
		cmocka_unit_test(test_fallback_on_corrupt_primary),
		cmocka_unit_test(test_fallback_chain_and_cycle),
		cmocka_unit_test(test_check_model),
		cmocka_unit_test(test_eager_and_explicit),
		cmocka_unit_test(test_transition_log),
		cmocka_unit_test(test_observer),
		cmocka_unit_test(test_cfg_diff),
		cmocka_unit_test(test_update),
		cmocka_unit_test(test_retire),
		cmocka_unit_test(test_set_limits),
		cmocka_unit_test(test_update_under_load),
	};
	return cmocka_run_group_tests_name("mgr", tests, NULL, NULL);
}

/*
 * base/pool — a persistent pthread pool for data-parallel loops.
 *
 * dm_pool_run(p, n, chunk, fn, arg) splits [0, n) into chunks of `chunk`
 * items handed out through one atomic counter, so faster threads take more
 * chunks; the calling thread works too, and the call returns when every
 * chunk is done.  Workers are created once by dm_pool_init; between jobs
 * they spin briefly (to catch the next job of a decode step quickly) and
 * then sleep on a condition variable, so an idle pool uses no CPU.
 *
 * One submitter at a time: dm_pool_run must not be called concurrently on
 * the same pool, nor from inside fn.  The pool owns its threads; they are
 * joined by dm_pool_free.
 */
#ifndef DM_BASE_POOL_H
#define DM_BASE_POOL_H

#include <stdint.h>

#include "base/err.h"

struct dm_pool;

/* Processes items [begin, end); `thread` is 0 for the caller and
 * 1..n_threads-1 for workers (for per-thread scratch). */
typedef void (*dm_pool_fn)(void *arg, int64_t begin, int64_t end, int thread);

/* Physical cores this process may run on: the CPUs of sched_getaffinity
 * with SMT siblings counted once (by physical_package_id and core_id from
 * /sys when readable, else every allowed CPU counts).  At least 1. */
int dm_cpu_physical_cores(void);

/* Creates a pool of n_threads threads in all (the caller counts as one, so
 * n_threads - 1 workers are started); n_threads <= 0 means
 * dm_cpu_physical_cores().  DM_EINVAL above 1024 threads, DM_ENOMEM, or
 * DM_EIO if threads cannot start. */
int dm_pool_init(struct dm_pool **out, int n_threads, struct dm_err *err);
/* Stops and joins the workers and frees the pool; NULL is a no-op. */
void dm_pool_free(struct dm_pool *p);
/* Threads in all, the caller included (1 for a NULL pool). */
int dm_pool_size(const struct dm_pool *p);

/* Runs fn over [0, n) in chunks of `chunk` (>= 1) items on every thread of
 * the pool and waits for all of them.  A NULL pool runs everything on the
 * calling thread. */
void dm_pool_run(struct dm_pool *p, int64_t n, int64_t chunk, dm_pool_fn fn, void *arg);

#endif

/*
 * base/pool — see pool.h.
 *
 * Protocol (a seqlock on `gen`): `gen` is even while a job is published and
 * odd while the submitter rewrites the job fields.  To publish, the
 * submitter makes `gen` odd, waits until no worker is `inside` the previous
 * job, writes the fields and resets the counters, then makes `gen` even
 * again and wakes sleepers.  A worker that sees a new even `gen` increments
 * `inside`, re-checks `gen` (if it moved, it leaves without touching the
 * fields), takes chunks from the atomic `next` counter and counts finished
 * ones in `done`.  The submitter takes chunks too and returns as soon as
 * `done` reaches the chunk count: it never waits for a sleeping worker to
 * wake up just to find nothing left to do (that wake-up costs a
 * millisecond in a VM).  Both sides spin a little before sleeping; every
 * sleep re-checks its condition under the mutex, so no wake-up is lost.
 */
#include "base/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SPIN_ITERS 20000

struct dm_pool {
	int n_threads;
	pthread_t *threads;
	pthread_mutex_t mu;
	pthread_cond_t cv_work, cv_done;
	/* current job (written by the submitter while gen is odd) */
	dm_pool_fn fn;
	void *arg;
	int64_t n, chunk, n_chunks;
	atomic_int_fast64_t next;  /* next chunk index to take */
	atomic_int_fast64_t done;  /* chunks finished */
	atomic_uint_fast64_t gen;
	atomic_int inside;         /* workers inside the current job */
	int sleepers;              /* workers waiting on cv_work (under mu) */
	bool submitter_sleeping;   /* under mu */
	atomic_bool stop;
};

struct worker_arg {
	struct dm_pool *p;
	int id;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static void run_chunks(struct dm_pool *p, int id)
{
	for (;;) {
		int64_t c = atomic_fetch_add(&p->next, 1);
		if (c >= p->n_chunks)
			break;
		int64_t b = c * p->chunk, e = b + p->chunk < p->n ? b + p->chunk : p->n;
		p->fn(p->arg, b, e, id);
		if (atomic_fetch_add(&p->done, 1) + 1 == p->n_chunks) {
			pthread_mutex_lock(&p->mu);
			if (p->submitter_sleeping)
				pthread_cond_signal(&p->cv_done);
			pthread_mutex_unlock(&p->mu);
		}
	}
}

static void *worker_main(void *v)
{
	struct worker_arg wa = *(struct worker_arg *)v;
	struct dm_pool *p = wa.p;
	uint_fast64_t seen = 0;

	free(v);
	for (;;) {
		uint_fast64_t g = atomic_load(&p->gen);
		for (int i = 0; i < SPIN_ITERS && (g == seen || (g & 1)) && !atomic_load(&p->stop); i++) {
			cpu_relax();
			g = atomic_load(&p->gen);
		}
		if (g == seen || (g & 1)) {
			pthread_mutex_lock(&p->mu);
			p->sleepers++;
			while (((g = atomic_load(&p->gen)) == seen || (g & 1)) && !atomic_load(&p->stop))
				pthread_cond_wait(&p->cv_work, &p->mu);
			p->sleepers--;
			pthread_mutex_unlock(&p->mu);
		}
		if (atomic_load(&p->stop))
			break;
		seen = g;
		atomic_fetch_add(&p->inside, 1);
		if (atomic_load(&p->gen) == g)
			run_chunks(p, wa.id);
		atomic_fetch_sub(&p->inside, 1);
	}
	return NULL;
}

static int read_int_file(const char *path, long *out)
{
	FILE *f = fopen(path, "r");
	int ok;
	if (!f)
		return -1;
	ok = fscanf(f, "%ld", out) == 1;
	fclose(f);
	return ok ? 0 : -1;
}

int dm_cpu_physical_cores(void)
{
	cpu_set_t set;
	long seen[CPU_SETSIZE][2];
	int n_seen = 0, n_cpus = 0;
	bool topo = true;

	if (sched_getaffinity(0, sizeof set, &set) != 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		return n > 0 ? (int)n : 1;
	}
	for (int c = 0; c < CPU_SETSIZE; c++) {
		char path[128];
		long core, pkg;
		if (!CPU_ISSET(c, &set))
			continue;
		n_cpus++;
		if (!topo)
			continue;
		snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/core_id", c);
		if (read_int_file(path, &core)) {
			topo = false;
			continue;
		}
		snprintf(path, sizeof path,
			 "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", c);
		if (read_int_file(path, &pkg))
			pkg = 0;
		bool dup = false;
		for (int i = 0; i < n_seen && !dup; i++)
			dup = seen[i][0] == pkg && seen[i][1] == core;
		if (!dup) {
			seen[n_seen][0] = pkg;
			seen[n_seen][1] = core;
			n_seen++;
		}
	}
	if (!topo || n_seen == 0)
		return n_cpus > 0 ? n_cpus : 1;
	return n_seen;
}

int dm_pool_init(struct dm_pool **out, int n_threads, struct dm_err *err)
{
	struct dm_pool *p;
	int started = 0;

	*out = NULL;
	if (n_threads <= 0)
		n_threads = dm_cpu_physical_cores();
	if (n_threads > 1024)
		return dm_err_set(err, DM_EINVAL, "pool: %d threads is too many", n_threads);
	p = calloc(1, sizeof *p);
	if (!p)
		return dm_err_set(err, DM_ENOMEM, "pool: out of memory");
	p->n_threads = n_threads;
	p->threads = calloc((size_t)n_threads, sizeof *p->threads);
	if (!p->threads) {
		free(p);
		return dm_err_set(err, DM_ENOMEM, "pool: out of memory");
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv_work, NULL);
	pthread_cond_init(&p->cv_done, NULL);
	atomic_init(&p->next, 0);
	atomic_init(&p->gen, 0);
	atomic_init(&p->done, 0);
	atomic_init(&p->inside, 0);
	atomic_init(&p->stop, false);
	for (int i = 1; i < n_threads; i++) {
		struct worker_arg *wa = malloc(sizeof *wa);
		if (wa) {
			wa->p = p;
			wa->id = i;
		}
		if (!wa || pthread_create(&p->threads[i], NULL, worker_main, wa) != 0) {
			free(wa);
			p->n_threads = started + 1; /* join only those running */
			dm_pool_free(p);
			return dm_err_set(err, DM_EIO, "pool: cannot start thread %d of %d", i,
					  n_threads);
		}
		started++;
	}
	*out = p;
	return 0;
}

void dm_pool_free(struct dm_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	atomic_store(&p->stop, true);
	pthread_cond_broadcast(&p->cv_work);
	pthread_mutex_unlock(&p->mu);
	for (int i = 1; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->cv_work);
	pthread_cond_destroy(&p->cv_done);
	pthread_mutex_destroy(&p->mu);
	free(p->threads);
	free(p);
}

int dm_pool_size(const struct dm_pool *p)
{
	return p ? p->n_threads : 1;
}

void dm_pool_run(struct dm_pool *p, int64_t n, int64_t chunk, dm_pool_fn fn, void *arg)
{
	if (n <= 0)
		return;
	if (chunk < 1)
		chunk = 1;
	if (!p || p->n_threads == 1 || n <= chunk) {
		for (int64_t b = 0; b < n; b += chunk)
			fn(arg, b, b + chunk < n ? b + chunk : n, 0);
		return;
	}
	/* odd gen: no worker may join the old job any more; wait for those
	 * still inside it (they find no chunk left and leave at once) */
	atomic_fetch_add(&p->gen, 1);
	while (atomic_load(&p->inside) > 0)
		cpu_relax();
	p->fn = fn;
	p->arg = arg;
	p->n = n;
	p->chunk = chunk;
	p->n_chunks = (n + chunk - 1) / chunk;
	atomic_store(&p->next, 0);
	atomic_store(&p->done, 0);
	atomic_fetch_add(&p->gen, 1); /* even: published */
	pthread_mutex_lock(&p->mu);
	if (p->sleepers)
		pthread_cond_broadcast(&p->cv_work);
	pthread_mutex_unlock(&p->mu);

	run_chunks(p, 0);

	for (int i = 0; i < SPIN_ITERS && atomic_load(&p->done) < p->n_chunks; i++)
		cpu_relax();
	if (atomic_load(&p->done) < p->n_chunks) {
		pthread_mutex_lock(&p->mu);
		p->submitter_sleeping = true;
		while (atomic_load(&p->done) < p->n_chunks)
			pthread_cond_wait(&p->cv_done, &p->mu);
		p->submitter_sleeping = false;
		pthread_mutex_unlock(&p->mu);
	}
}

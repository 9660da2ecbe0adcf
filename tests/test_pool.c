/* tests/pool — the thread pool: every item exactly once, identical results
 * for 1, 2 and N threads, idle workers asleep, no thread left after free. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/pool.h"

static int count_tasks(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;
	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

struct sq_job {
	const double *x;
	double *y;
	atomic_int *hits;
};

/* y[i] = a small deterministic computation of x[i]; counts visits. */
static void sq_task(void *arg, int64_t b, int64_t e, int thread)
{
	struct sq_job *j = arg;
	(void)thread;
	for (int64_t i = b; i < e; i++) {
		double v = j->x[i];
		for (int k = 0; k < 20; k++)
			v = v * 0.5 + 1.0 / (1.0 + v * v);
		j->y[i] = v;
		atomic_fetch_add(&j->hits[i], 1);
	}
}

static void run_job(struct dm_pool *p, int64_t n, int64_t chunk, double *y)
{
	double *x = malloc((size_t)n * sizeof *x);
	atomic_int *hits = calloc((size_t)n, sizeof *hits);
	struct sq_job j = { x, y, hits };
	for (int64_t i = 0; i < n; i++)
		x[i] = (double)i * 0.001;
	dm_pool_run(p, n, chunk, sq_task, &j);
	for (int64_t i = 0; i < n; i++)
		assert_int_equal(atomic_load(&hits[i]), 1);
	free(x);
	free(hits);
}

static void test_identical_across_threads(void **state)
{
	const int64_t n = 100003;
	double *y1 = malloc(n * sizeof *y1), *y = malloc(n * sizeof *y);
	int nmax = dm_cpu_physical_cores() + 2;
	(void)state;
	run_job(NULL, n, 64, y1);
	for (int nt = 1; nt <= (nmax > 4 ? nmax : 4); nt++) {
		struct dm_pool *p;
		assert_int_equal(dm_pool_init(&p, nt, NULL), 0);
		assert_int_equal(dm_pool_size(p), nt);
		for (int rep = 0; rep < 20; rep++) { /* many jobs back to back */
			memset(y, 0, n * sizeof *y);
			run_job(p, n, rep % 2 ? 7 : 1000, y);
			assert_memory_equal(y1, y, n * sizeof *y);
		}
		/* tiny and empty jobs */
		run_job(p, 1, 16, y);
		dm_pool_run(p, 0, 16, sq_task, NULL);
		dm_pool_free(p);
	}
	free(y1);
	free(y);
}

static void test_no_threads_left(void **state)
{
	struct dm_pool *p;
	double y[1000];
	int before = count_tasks();
	(void)state;
	assert_true(before >= 1);
	assert_int_equal(dm_pool_init(&p, 4, NULL), 0);
	assert_int_equal(count_tasks(), before + 3);
	run_job(p, 1000, 10, y);
	dm_pool_free(p);
	/* the workers are joined, but the kernel may list an exiting thread in
	 * /proc/self/task for a moment after pthread_join returns (its tid is
	 * cleared before it is reaped): a leaked worker would stay for good */
	int now = count_tasks();
	for (int i = 0; i < 500 && now != before; i++) {
		nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
		now = count_tasks();
	}
	assert_int_equal(now, before);
	dm_pool_free(NULL);
}

/* An idle pool sleeps: after the brief spin, the process uses (almost) no
 * CPU while the main thread sleeps.  Measured with CPU time, not wall time,
 * and with a generous margin (spinning workers would burn ~100%). */
static void test_idle_pool_sleeps(void **state)
{
	struct dm_pool *p;
	struct timespec a, b, nap = { 0, 200 * 1000 * 1000 };
	double y[100];
	(void)state;
	assert_int_equal(dm_pool_init(&p, 3, NULL), 0);
	run_job(p, 100, 1, y);
	nanosleep(&(struct timespec){ 0, 50 * 1000 * 1000 }, NULL); /* let spins end */
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
	nanosleep(&nap, NULL);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
	double used = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
	assert_true(used < 0.05);
	dm_pool_free(p);
}

static void test_physical_cores(void **state)
{
	(void)state;
	int n = dm_cpu_physical_cores();
	assert_true(n >= 1 && n <= 4096);
	struct dm_pool *p;
	assert_int_equal(dm_pool_init(&p, 0, NULL), 0);
	assert_int_equal(dm_pool_size(p), n);
	dm_pool_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identical_across_threads),
		cmocka_unit_test(test_no_threads_left),
		cmocka_unit_test(test_idle_pool_sleeps),
		cmocka_unit_test(test_physical_cores),
	};
	return cmocka_run_group_tests_name("pool", tests, NULL, NULL);
}

/*
 * cli/model — open a model file for the one-shot commands (run, perplexity,
 * bench speed) through the engine loader the lifecycle manager uses (mmap
 * mode, no manager around it).  The server goes through the manager.
 */
#include "cli/cli_model.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>
#include <string.h>
#include <unistd.h>

/* A spinner with the load's progress on a terminal's stderr while a model
 * loads (a load that ends within 0.3 s shows nothing). */
struct spinner {
	struct mgr_progress prog;
	atomic_int stop;
	const char *name;
};

static void *spin(void *arg)
{
	static const char frames[] = "|/-\\";
	struct spinner *sp = arg;
	bool shown = false;
	for (int i = 0; !atomic_load(&sp->stop); i++) {
		struct timespec ts = { 0, 100 * 1000000L };
		nanosleep(&ts, NULL);
		if (i < 3 || atomic_load(&sp->stop))
			continue;
		uint64_t done = atomic_load(&sp->prog.done), total = atomic_load(&sp->prog.total);
		if (total)
			fprintf(stderr, "\r%c loading %s %3d%%", frames[i % 4], sp->name, (int)(100.0 * (double)done / (double)total));
		else
			fprintf(stderr, "\r%c loading %s", frames[i % 4], sp->name);
		shown = true;
	}
	if (shown)
		fprintf(stderr, "\r\033[K");
	return NULL;
}

int cli_model_open(struct cli_model *cm, const char *path, const struct cli_model_opts *o,
		   struct dm_err *err)
{
	struct mgr_model_cfg cfg;
	struct timespec t0, t1;
	struct spinner sp = { .name = path };
	pthread_t th;
	bool spinning;
	int rc;

	memset(cm, 0, sizeof *cm);
	mgr_model_cfg_default(&cfg);
	if (strlen(path) >= sizeof cfg.path)
		return dm_err_set(err, DM_EINVAL, "%s: path too long", path);
	memcpy(cfg.path, path, strlen(path) + 1);
	if (o) {
		cfg.n_ctx = o->n_ctx;
		cfg.n_batch = o->n_batch;
		cfg.n_threads = o->n_threads;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	atomic_init(&sp.prog.done, 0);
	atomic_init(&sp.prog.total, 0);
	atomic_init(&sp.stop, 0);
	spinning = isatty(2) && pthread_create(&th, NULL, spin, &sp) == 0;
	rc = engine_load(&cm->e, &cfg, &sp.prog, NULL, err);
	if (spinning) {
		atomic_store(&sp.stop, 1);
		pthread_join(th, NULL);
	}
	if (rc)
		return rc;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cm->load_s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
	cm->g = cm->e->g;
	cm->m = cm->e->m;
	cm->v = cm->e->v;
	cm->pool = cm->e->pool;
	cm->ctx = cm->e->ctx;
	cm->n_threads = dm_pool_size(cm->pool);
	return 0;
}

void cli_model_close(struct cli_model *cm)
{
	engine_unload(cm->e, false);
	memset(cm, 0, sizeof *cm);
}

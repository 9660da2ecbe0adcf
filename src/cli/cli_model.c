/*
 * cli/model — open a model file for the one-shot commands (run, perplexity,
 * bench speed) through the engine loader the lifecycle manager uses (mmap
 * mode, no manager around it).  The server goes through the manager.
 */
#include "cli/cli_model.h"

#include <string.h>
#include <time.h>

int cli_model_open(struct cli_model *cm, const char *path, const struct cli_model_opts *o,
		   struct dm_err *err)
{
	struct mgr_model_cfg cfg;
	struct timespec t0, t1;
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
	if ((rc = engine_load(&cm->e, &cfg, NULL, NULL, err)))
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

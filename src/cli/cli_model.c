/*
 * cli/model — open a model file for the one-shot commands (run, perplexity,
 * bench speed): map the GGUF, bind the architecture, load the vocabulary,
 * start the thread pool and allocate a context.  The server goes through the
 * lifecycle manager instead.
 */
#include "cli/cli_model.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

int cli_model_open(struct cli_model *cm, const char *path, const struct cli_model_opts *o,
		   struct dm_err *err)
{
	struct model_ctx_params cp = { 0 };
	struct timespec t0, t1;
	int rc, nt;

	memset(cm, 0, sizeof *cm);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((rc = gguf_open(&cm->g, path, err)))
		return rc;
	if ((rc = model_bind(&cm->m, cm->g, err)))
		goto fail;
	if ((rc = tok_load(&cm->v, cm->g, err)))
		goto fail;
	nt = o && o->n_threads > 0 ? o->n_threads : dm_cpu_physical_cores();
	if ((rc = dm_pool_init(&cm->pool, nt, err)))
		goto fail;
	cp.n_ctx = o ? o->n_ctx : 0;
	cp.n_batch = o ? o->n_batch : 0;
	cp.pool = cm->pool;
	if ((rc = model_ctx_init(&cm->ctx, cm->m, &cp, err)))
		goto fail;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cm->load_s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
	cm->n_threads = nt;
	return 0;
fail:
	cli_model_close(cm);
	return rc;
}

void cli_model_close(struct cli_model *cm)
{
	model_ctx_free(cm->ctx);
	dm_pool_free(cm->pool);
	tok_free(cm->v);
	model_free(cm->m);
	gguf_close(cm->g);
	memset(cm, 0, sizeof *cm);
}

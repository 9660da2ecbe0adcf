/* cli/model — see cli_model.c. */
#ifndef DM_CLI_MODEL_H
#define DM_CLI_MODEL_H

#include "base/pool.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "mgr/engine.h"
#include "tok/tok.h"

struct cli_model_opts {
	int n_threads; /* 0: physical cores */
	int32_t n_ctx, n_batch; /* 0: defaults */
};

struct cli_model {
	struct engine *e;       /* owns everything below (borrowed views) */
	struct gguf_file *g;
	struct model *m;
	struct tok_vocab *v;
	struct dm_pool *pool;
	struct model_ctx *ctx;
	double load_s;
	int n_threads;
};

int cli_model_open(struct cli_model *cm, const char *path, const struct cli_model_opts *o,
		   struct dm_err *err);
void cli_model_close(struct cli_model *cm);

#endif

/* cli/config — `dormant config [--config FILE] [--profile NAME]`: the
 * effective configuration, with where each value came from; `dormant config
 * check`: every model checked without loading it (what `dormant serve` does
 * at start-up). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "base/gpu.h"
#include "base/pool.h"
#include "mgr/config.h"
#include "mgr/engine.h"

#include <unistd.h>

void cli_check_line(FILE *f, const char *name, const char *problem, uint64_t est_bytes)
{
	if (problem)
		fprintf(f, "  check %-20s problem: %s\n", name, problem);
	else
		fprintf(f, "  check %-20s ok (needs %.1f MiB)\n", name, (double)est_bytes / 1048576.0);
}

/* Every model of the configuration through mgr_check_model, on a manager
 * that never loads anything; 1 if any has a problem. */
static int check(const struct dm_config *c)
{
	struct mgr_cfg mc = { 0 };
	struct mgr *m;
	struct dm_err err;
	int bad = 0;

	dm_config_mgr(c, &mc);
	mgr_engine_backend(&mc.backend, NULL);
	mc.no_reaper = true;
	if (mgr_init(&m, &mc, &err))
		return cli_fail("%s", err.msg);
	bool *added = calloc(c->n_models + 1, sizeof *added);
	if (!added) {
		mgr_free(m);
		return cli_fail("out of memory");
	}
	for (size_t i = 0; i < c->n_models; i++) {
		/* the role as dormant serve settles it: from the file, or checked
		 * against it when the configuration sets one */
		struct mgr_model_cfg mcfg = c->models[i];
		if (engine_role_resolve(&mcfg, dm_config_role_set(c, i), &err) || mgr_add(m, &mcfg, &err)) {
			cli_check_line(stdout, c->models[i].name, err.msg, 0);
			bad++;
		} else {
			added[i] = true;
		}
	}
	for (size_t i = 0; i < c->n_models; i++) {
		uint64_t est = 0;
		int rc;
		if (!added[i])
			continue; /* its problem is already said */
		rc = mgr_check_model(m, c->models[i].name, &est, &err);
		cli_check_line(stdout, c->models[i].name, rc ? err.msg : NULL, est);
		bad += rc != 0;
	}
	free(added);
	mgr_free(m);
	printf("%zu model%s, %d with a problem\n", c->n_models, c->n_models == 1 ? "" : "s", bad);
	return bad ? 1 : 0;
}

int cli_config(int argc, char **argv)
{
	static struct dm_config c; /* large; not on the stack */
	const char *file = NULL, *profile = NULL;
	struct dm_err err;
	int a = 1, do_check = 0;

	if (argc > 1 && !strcmp(argv[1], "check"))
		do_check = 1, a++;
	for (; a < argc; a++) {
		const char *val = a + 1 < argc ? argv[a + 1] : NULL;
		if ((!strcmp(argv[a], "--config") || !strcmp(argv[a], "--profile")) && val) {
			if (argv[a][2] == 'c')
				file = val;
			else
				profile = val;
			a++;
		} else {
			return cli_fail("usage: dormant config [check] [--config FILE] [--profile NAME]"), 2;
		}
	}
	if (dm_config_load(&c, file, profile, &err))
		return cli_fail("%s", err.msg);
	if (do_check)
		return check(&c);
	{
		struct dm_gpu_info gi;
		long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
		printf("# machine: %d physical cores available, %.1f GiB RAM\n", dm_cpu_physical_cores(),
		       pages > 0 && psz > 0 ? (double)pages * (double)psz / 1073741824.0 : 0.0);
		if (dm_gpu_query(&gi, &err))
			printf("# GPU: error: %s\n", err.msg);
		else if (!gi.n)
			printf("# GPU: none (%s)\n", gi.absent_reason);
		for (size_t i = 0; i < gi.n; i++)
			printf("# GPU %zu: %s, %.1f GiB total, %.1f GiB free\n", i, gi.gpu[i].name,
			       gi.gpu[i].total / 1073741824.0, gi.gpu[i].free / 1073741824.0);
	}
	printf("# effective configuration (profile: %s)\n", c.profile[0] ? c.profile : "none");
	for (size_t i = 0; i < c.n_src; i++)
		printf("%-40s = %-20s # %s\n", c.src[i].key, c.src[i].val, c.src[i].src);
	for (size_t i = 0; i < c.n_models; i++) {
		const struct mgr_model_cfg *m = &c.models[i];
		struct mgr_model_cfg r = *m; /* the role as the runtime settles it */
		bool set = dm_config_role_set(&c, i), bad = engine_role_resolve(&r, set, &err) != 0;
		printf("\n[model %s]\npath = %s\nrole = %s%s\nload = %s\nkeep_alive_ms = %lld\nmode = %s\n"
		       "quantize_on_load = %d\nthreads = %d\nn_ctx = %d\nn_ctx_max = %d\nprefix_cache_max = %llu\n",
		       m->name, m->path, mgr_role_name(r.role),
		       bad ? "  # does not fit the file" : set ? "" : "  # from the file",
		       m->load == MGR_EAGER ? "eager" : "lazy",
		       (long long)m->keep_alive_ms, mgr_mode_name(m->mode), m->quantize_on_load, m->n_threads,
		       m->n_ctx, m->n_ctx_max, (unsigned long long)m->prefix_cache_max);
	}
	return 0;
}

/* cli/config — `dormant config [--config FILE] [--profile NAME]`: the
 * effective configuration, with where each value came from. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "base/gpu.h"
#include "base/pool.h"
#include "mgr/config.h"

#include <unistd.h>

int cli_config(int argc, char **argv)
{
	static struct dm_config c; /* large; not on the stack */
	const char *file = NULL, *profile = NULL;
	struct dm_err err;

	for (int i = 1; i < argc; i++) {
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		if ((!strcmp(argv[i], "--config") || !strcmp(argv[i], "--profile")) && val) {
			if (argv[i][2] == 'c')
				file = val;
			else
				profile = val;
			i++;
		} else {
			return cli_fail("usage: dormant config [--config FILE] [--profile NAME]"), 2;
		}
	}
	if (dm_config_load(&c, file, profile, &err))
		return cli_fail("%s", err.msg);
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
		printf("\n[model %s]\npath = %s\nrole = %s\nload = %s\nkeep_alive_ms = %lld\nmode = %s\n"
		       "quantize_on_load = %d\nthreads = %d\nn_ctx = %d\n",
		       m->name, m->path, mgr_role_name(m->role), m->load == MGR_EAGER ? "eager" : "lazy",
		       (long long)m->keep_alive_ms, mgr_mode_name(m->mode), m->quantize_on_load, m->n_threads,
		       m->n_ctx);
	}
	return 0;
}

/* cli/config — `dormant config [--config FILE] [--profile NAME]`: the
 * effective configuration, with where each value came from. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "mgr/config.h"

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

/* cli/synth — `dormant synth`: write a synthetic decoder or encoder (see model/synth.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "gguf/gguf.h"
#include "model/synth.h"

int cli_synth(int argc, char **argv)
{
	struct synth_opts o = { .type = GGUF_TYPE_F32, .seed = 1 };
	const char *preset = "tiny", *out = NULL;
	struct dm_err err;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--rank")) {
			o.rank = true;
			continue;
		}
		if (!strcmp(a, "--preset") || !strcmp(a, "--type") || !strcmp(a, "--seed") ||
		    !strcmp(a, "--arch") || !strcmp(a, "-o")) {
			if (!val)
				return cli_fail("synth: %s needs a value", a), 2;
			i++;
			if (!strcmp(a, "--rank")) {
			o.rank = true;
			continue;
		}
		if (!strcmp(a, "--preset")) {
				preset = val;
			} else if (!strcmp(a, "--arch")) {
				o.arch = val;
			} else if (!strcmp(a, "--type")) {
				int t = gguf_type_from_name(val);
				o.q4_k_m = !strcmp(val, "Q4_K_M");
				if (o.q4_k_m)
					t = GGUF_TYPE_Q4_K;
				if (t < 0)
					return cli_fail("synth: unknown type '%s'", val), 2;
				o.type = (uint32_t)t;
			} else if (!strcmp(a, "--seed")) {
				char *end;
				errno = 0;
				o.seed = strtoull(val, &end, 10);
				if (errno || *end || !*val || val[0] == '-')
					return cli_fail("synth: --seed '%s' is not a number", val), 2;
			} else {
				out = val;
			}
		} else {
			return cli_fail("synth: unknown argument '%s'", a), 2;
		}
	}
	if (!out)
		return cli_fail("usage: dormant synth [--preset tiny|110m|1b|minilm] [--arch llama|qwen2|qwen3|gemma2|gemma3|phi3|bert|nomic-bert] [--rank] [--type T|Q4_K_M] [--seed S] -o FILE"), 2;
	if (synth_preset(preset, &o.shape, &err))
		return cli_fail("synth: %s", err.msg), 2;
	if (synth_write(&o, out, &err))
		return cli_fail("%s: %s", out, err.msg);
	return 0;
}

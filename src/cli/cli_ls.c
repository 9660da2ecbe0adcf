/* cli/ls — `dormant ls`: the models a server would serve, configured and
 * discovered (mgr/discover.h), with their file's facts; from a
 * configuration without a server, or from a running one (--host/--port,
 * GET /api/tags). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "dormant.h"
#include "mgr/api.h"
#include "server/client.h"

int cli_disc_opt(struct cli_disc *cd, int *i, int argc, char **argv)
{
	const char *a = argv[*i];
	if (!strcmp(a, "--no-discover")) {
		cd->no_discover = true;
		return 1;
	}
	if (strcmp(a, "--models-dir"))
		return 0;
	if (*i + 1 >= argc)
		return cli_fail("--models-dir needs a folder"), -1;
	if (cd->n_dirs == sizeof cd->dirs / sizeof cd->dirs[0])
		return cli_fail("--models-dir: at most %zu folders", sizeof cd->dirs / sizeof cd->dirs[0]), -1;
	cd->dirs[cd->n_dirs++] = argv[++*i];
	return 1;
}

static const char *env_get(const char *name)
{
	return getenv(name);
}

int cli_disc_find(const struct cli_disc *cd, const char *name, struct disc_model *out, struct dm_err *err)
{
	struct disc_cfg dc = { .n_dirs = 0 };
	char roots[3][MGR_PATH_MAX];
	const struct disc_model *m;
	struct disc *d;
	int rc;

	for (size_t i = 0; i < cd->n_dirs && i < DISC_MAX_DIRS; i++)
		dc.dirs[dc.n_dirs++] = cd->dirs[i];
	if (!cd->no_discover)
		disc_default_roots(&dc, env_get, roots);
	if ((rc = disc_init(&d, err)))
		return rc;
	if (!(rc = disc_scan(d, &dc, err))) {
		if (!(m = disc_find(d, name)))
			rc = dm_err_set(err, DM_ENOTFOUND,
					"'%s' is neither a file nor a discovered model (dormant ls lists them)", name);
		else if (m->rc)
			rc = dm_err_set(err, m->rc, "%s (%s): %s", name, m->path, m->err);
		else
			*out = *m;
	}
	disc_free(d);
	return rc;
}

static void human_size(char *buf, size_t cap, double b)
{
	if (b >= 1e9)
		snprintf(buf, cap, "%.1f GB", b / 1e9);
	else if (b >= 1e6)
		snprintf(buf, cap, "%.1f MB", b / 1e6);
	else
		snprintf(buf, cap, "%.0f KB", b / 1e3);
}

static void human_params(char *buf, size_t cap, double n)
{
	if (n <= 0)
		snprintf(buf, cap, "-");
	else if (n >= 1e9)
		snprintf(buf, cap, "%.1fB", n / 1e9);
	else
		snprintf(buf, cap, "%.0fM", n / 1e6);
}

static void header_line(void)
{
	printf("%-40s %-9s %-8s %-8s %-7s %-7s %s\n", "NAME", "SIZE", "ARCH", "QUANT", "PARAMS", "CTX", "SOURCE");
}

static void row(const char *name, uint64_t size, const char *arch, const char *quant, uint64_t n_params,
		uint64_t n_ctx, const char *source, const char *where, const char *error)
{
	char sz[32], np[32], ctx[32];
	human_size(sz, sizeof sz, (double)size);
	human_params(np, sizeof np, (double)n_params);
	snprintf(ctx, sizeof ctx, n_ctx ? "%llu" : "-", (unsigned long long)n_ctx);
	printf("%-40s %-9s %-8s %-8s %-7s %-7s %s%s%s\n", name, sz, arch && *arch ? arch : "-",
	       quant && *quant ? quant : "-", np, ctx, source, where && *where ? " " : "", where ? where : "");
	if (error && *error)
		printf("  error: %s\n", error);
}

static void json_row(bool first, const char *name, const struct disc_model *m, const char *source)
{
	printf("%s\n  {\"name\": ", first ? "" : ",");
	cli_json_str(stdout, name, strlen(name));
	printf(", \"size\": %llu, \"architecture\": ", (unsigned long long)m->size);
	cli_json_str(stdout, m->arch, strlen(m->arch));
	printf(", \"quantization\": ");
	cli_json_str(stdout, m->quant, strlen(m->quant));
	printf(", \"parameter_count\": %llu, \"context_length\": %u, \"source\": \"%s\", \"path\": ",
	       (unsigned long long)m->n_params, m->n_ctx_train, source);
	cli_json_str(stdout, m->path, strlen(m->path));
	if (m->rc) {
		printf(", \"error\": ");
		cli_json_str(stdout, m->err, strlen(m->err));
	}
	printf("}");
}

/* From a running server's /api/tags. */
static int ls_remote(const char *host, long port, bool json)
{
	json_t *o, *models, *m;
	size_t i;

	if (cli_server_models(host, port, "/api/tags", json, &o, &models))
		return 1;
	if (!o)
		return 0;
	header_line();
	json_array_foreach(models, i, m) {
		json_t *det = json_object_get(m, "details");
		const char *arch = json_string_value(json_object_get(m, "architecture"));
		const char *quant = json_string_value(json_object_get(m, "quantization"));
		const char *src = json_string_value(json_object_get(m, "source"));
		row(json_string_value(json_object_get(m, "name")) ? json_string_value(json_object_get(m, "name")) : "?",
		    (uint64_t)json_integer_value(json_object_get(m, "size")),
		    arch ? arch : json_string_value(json_object_get(det, "family")),
		    quant ? quant : json_string_value(json_object_get(det, "quantization_level")),
		    (uint64_t)json_integer_value(json_object_get(m, "parameter_count")),
		    (uint64_t)json_integer_value(json_object_get(m, "context_length")), src ? src : "?",
		    json_string_value(json_object_get(m, "origin")),
		    json_string_value(json_object_get(m, "error")));
	}
	json_decref(o);
	return 0;
}

int cli_ls(int argc, char **argv)
{
	const char *config = NULL, *profile = NULL, *host = NULL;
	long port = 7373;
	bool json = false, remote = false, first = true;
	struct cli_disc cd = { .n_dirs = 0 };
	struct dormant_model_status *st = NULL;
	struct disc_model *all = NULL, *m = NULL;
	struct disc *facts = NULL;
	struct dm_err e;
	char err[512];
	dormant *d = NULL;
	size_t n = 0, nd = 0;
	int rc = 1, k;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--config") && v) config = v, i++;
		else if (!strcmp(a, "--profile") && v) profile = v, i++;
		else if (!strcmp(a, "--host") && v) host = v, remote = true, i++;
		else if (!strcmp(a, "--port")) {
			if (cli_parse_long("--port", v, 1, 65535, &port))
				return 1;
			remote = true;
			i++;
		} else if (!strcmp(a, "--json")) json = true;
		else if ((k = cli_disc_opt(&cd, &i, argc, argv))) {
			if (k < 0)
				return 2;
		} else {
			fputs("usage: dormant ls [--config FILE] [--profile NAME] [--models-dir DIR]... [--no-discover] [--json]\n"
			      "       dormant ls --host ADDR [--port N] [--json]\n", stderr);
			return 2;
		}
	}
	if (remote)
		return ls_remote(host ? host : "127.0.0.1", port, json);
	if (dormant_open(&d, config, profile, err, sizeof err))
		return cli_fail("%s", err);
	if (dormant_discovery_set(d, cd.dirs, cd.n_dirs, cd.no_discover ? 0 : -1, &e) ||
	    dormant_rescan(d, NULL, &e) || disc_init(&facts, &e)) {
		cli_fail("%s", e.msg);
		goto out;
	}
	n = dormant_status(d, NULL, 0);
	nd = dormant_discovered(d, NULL, 0);
	st = calloc(n + 1, sizeof *st);
	all = calloc(nd + 1, sizeof *all);
	m = malloc(sizeof *m);
	if (!st || !all || !m) {
		cli_fail("out of memory");
		goto out;
	}
	n = dormant_status(d, st, n);
	nd = dormant_discovered(d, all, nd);
	if (json)
		printf("{\"models\": [");
	else
		header_line();
	/* what the server would serve, then what it found but cannot use */
	for (size_t i = 0; i < n; i++) {
		const char *src = "config";
		if (dormant_discovered_model(d, st[i].name, m))
			src = disc_source_name(m->source);
		else
			disc_describe(facts, st[i].path, m);
		if (json)
			json_row(first, st[i].name, m, src);
		else
			row(st[i].name, m->size, m->arch, m->quant, m->n_params, m->n_ctx_train, src, m->path,
			    m->rc ? m->err : NULL);
		first = false;
	}
	for (size_t i = 0; i < nd; i++) {
		if (!all[i].rc)
			continue;
		if (json)
			json_row(first, all[i].name, &all[i], disc_source_name(all[i].source));
		else
			row(all[i].name, all[i].size, all[i].arch, all[i].quant, all[i].n_params, all[i].n_ctx_train,
			    disc_source_name(all[i].source), all[i].path, all[i].err);
		first = false;
	}
	if (json)
		printf("\n]}\n");
	rc = 0;
out:
	free(st);
	free(all);
	free(m);
	disc_free(facts);
	dormant_close(d);
	return rc;
}

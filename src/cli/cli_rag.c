/*
 * cli/rag — `dormant embed MODEL TEXT... [--file F]` and
 * `dormant rerank MODEL QUERY DOC...`, through the C API (as a server
 * would answer them: the role follows the file, vectors are L2-normalised).
 *
 * embed prints one line per input: its vector as space-separated floats
 * (%.9g, enough digits to read back the same float); rerank prints one
 * line per document in input order: "score<TAB>document".  --json prints
 * one object instead: {"model", "dim", "embeddings": [[...]...],
 * "prompt_tokens"} or {"model", "scores": [...], "prompt_tokens"}.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "cli/cli.h"
#include "dormant.h"

static const char embed_usage[] =
	"usage: dormant embed MODEL [TEXT...] [--file F] [--dimensions N] [--no-truncate] [--json]\n"
	"  TEXT            texts to embed, one vector each (in one batch)\n"
	"  --file F        also each non-empty line of F ('-' reads stdin)\n"
	"  --dimensions N  keep the first N values and normalise again (Matryoshka)\n"
	"  --no-truncate   an input longer than the context is an error (default: cut it)\n"
	"  --json          one JSON object: model, dim, embeddings, prompt_tokens\n";

static const char rerank_usage[] =
	"usage: dormant rerank MODEL QUERY DOC... [--no-truncate] [--json]\n"
	"  prints 'score<TAB>document' per document in input order; the score is the\n"
	"  reranker's raw output (no sigmoid): higher is more relevant\n";

/* Opens a runtime with the model file at path as "model" (its role from the
 * file); 0 or 1 after printing why. */
static int open_model(dormant **d, const char *path)
{
	char err[256];
	if (dormant_open(d, NULL, NULL, err, sizeof err))
		return cli_fail("%s", err);
	if (dormant_add_model(*d, "model", path, err, sizeof err)) {
		dormant_close(*d);
		return cli_fail("%s: %s", path, err);
	}
	return 0;
}

/* The list of inputs; lines of a file point into buf. */
struct inputs {
	const char **v;
	size_t n, cap;
};

static int push(struct inputs *in, const char *s)
{
	if (in->n == in->cap) {
		size_t cap = in->cap ? in->cap * 2 : 16;
		const char **p = realloc(in->v, cap * sizeof *p);
		if (!p)
			return -1;
		in->v = p;
		in->cap = cap;
	}
	in->v[in->n++] = s;
	return 0;
}

int cli_embed(int argc, char **argv)
{
	struct dormant_embed_opts o = { 0 };
	struct dormant_embed_info info;
	struct inputs in = { 0 };
	const char *model = NULL, *file = NULL;
	char *buf = NULL, err[256];
	bool json = false;
	float *vec = NULL;
	size_t dim = 0, cap;
	dormant *d = NULL;
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		long v;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(embed_usage, stdout);
			return 0;
		} else if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "--no-truncate")) {
			o.no_truncate = 1;
		} else if (!strcmp(argv[i], "--file") && i + 1 < argc) {
			file = argv[++i];
		} else if (!strcmp(argv[i], "--dimensions")) {
			if (cli_parse_long("--dimensions", i + 1 < argc ? argv[++i] : NULL, 1, 1 << 20, &v))
				return 1;
			o.dimensions = (size_t)v;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			fputs(embed_usage, stderr);
			return cli_fail("unknown option '%s'", argv[i]);
		} else if (!model) {
			model = argv[i];
		} else if (push(&in, argv[i])) {
			return cli_fail("out of memory");
		}
	}
	if (file) {
		size_t n;
		if (!(buf = dm_read_all(file, &n))) {
			free(in.v);
			return cli_fail("%s: cannot read it", file);
		}
		for (char *p = buf, *nl; *p; p = nl ? nl + 1 : p + strlen(p)) {
			if ((nl = strchr(p, '\n')))
				*nl = '\0';
			if (*p && push(&in, p)) {
				cli_fail("out of memory");
				goto out;
			}
			if (!nl)
				break;
		}
	}
	if (!model || !in.n) {
		fputs(embed_usage, stderr);
		goto out;
	}
	if (open_model(&d, model))
		goto out;
	cap = in.n * (size_t)16384;
	if (!(vec = malloc(cap * sizeof *vec))) {
		cli_fail("out of memory");
		goto out;
	}
	if (dormant_embed_batch(d, "model", in.v, in.n, &o, vec, cap, &dim, &info, err, sizeof err)) {
		cli_fail("%s: %s", model, err);
		goto out;
	}
	if (json) {
		printf("{\"model\": ");
		cli_json_str(stdout, model, strlen(model));
		printf(", \"dim\": %zu, \"prompt_tokens\": %d, \"embeddings\": [", dim, info.n_tokens);
	}
	for (size_t i = 0; i < in.n; i++) {
		if (json)
			printf("%s[", i ? ", " : "");
		for (size_t k = 0; k < dim; k++)
			printf("%s%.9g", k ? (json ? ", " : " ") : "", (double)vec[i * dim + k]);
		printf(json ? "]" : "\n");
	}
	if (json)
		printf("]}\n");
	rc = 0;
out:
	dormant_close(d);
	free(vec);
	free(buf);
	free(in.v);
	return rc;
}

int cli_rerank(int argc, char **argv)
{
	struct dormant_embed_opts o = { 0 };
	struct dormant_embed_info info;
	struct inputs in = { 0 };
	const char *model = NULL, *query = NULL;
	char err[256];
	bool json = false;
	float *scores = NULL;
	dormant *d = NULL;
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(rerank_usage, stdout);
			return 0;
		} else if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "--no-truncate")) {
			o.no_truncate = 1;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			fputs(rerank_usage, stderr);
			return cli_fail("unknown option '%s'", argv[i]);
		} else if (!model) {
			model = argv[i];
		} else if (!query) {
			query = argv[i];
		} else if (push(&in, argv[i])) {
			return cli_fail("out of memory");
		}
	}
	if (!model || !query || !in.n) {
		fputs(rerank_usage, stderr);
		goto out;
	}
	if (open_model(&d, model))
		goto out;
	if (!(scores = malloc(in.n * sizeof *scores))) {
		cli_fail("out of memory");
		goto out;
	}
	if (dormant_rerank(d, "model", query, in.v, in.n, &o, scores, &info, err, sizeof err)) {
		cli_fail("%s: %s", model, err);
		goto out;
	}
	if (json) {
		printf("{\"model\": ");
		cli_json_str(stdout, model, strlen(model));
		printf(", \"prompt_tokens\": %d, \"scores\": [", info.n_tokens);
		for (size_t i = 0; i < in.n; i++)
			printf("%s%.9g", i ? ", " : "", (double)scores[i]);
		printf("]}\n");
	} else {
		for (size_t i = 0; i < in.n; i++) {
			printf("%.9g\t", (double)scores[i]);
			cli_text_str(stdout, in.v[i], strlen(in.v[i]));
			printf("\n");
		}
	}
	rc = 0;
out:
	dormant_close(d);
	free(scores);
	free(in.v);
	return rc;
}

/*
 * cli — the `dormant` command: main() and one file per subcommand.  Only
 * this module prints to stdout or exits.  Each subcommand returns the
 * process exit status; errors are one line on stderr: "dormant: FILE: reason".
 */
#ifndef DM_CLI_H
#define DM_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

int cli_info(int argc, char **argv);
int cli_synth(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_run(int argc, char **argv);
int cli_config(int argc, char **argv);
int cli_perplexity(int argc, char **argv);
int cli_logits(int argc, char **argv);
int cli_bench_speed(int argc, char **argv);
int cli_tokenize(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_demo(int argc, char **argv);
int cli_bench_server(int argc, char **argv);
/* `dormant bench SCENARIO[,...]|all MODEL` (cli_bench_life.c): the lifecycle
 * suite of src/bench/; argv[0] is the scenario list. */
int cli_bench_life(int argc, char **argv);
/* `dormant bench rag` (cli_bench_rag.c): batched vs one-by-one embed and rerank. */
int cli_bench_rag(int argc, char **argv);
/* `dormant bench quantize` (cli_bench_quant.c): quantize-on-load throughput. */
int cli_bench_quant(int argc, char **argv);
int cli_ps(int argc, char **argv);
int cli_detokenize(int argc, char **argv);
int cli_embed(int argc, char **argv);
int cli_rerank(int argc, char **argv);
int cli_ls(int argc, char **argv);

/* Model discovery options shared by serve, ls and run (cli_ls.c):
 * --models-dir DIR (repeatable) and --no-discover. */
struct cli_disc {
	const char *dirs[8];
	size_t n_dirs;
	bool no_discover;
};
/* Takes argv[*i] (and its value) when it is one of those: 1 taken (*i
 * advanced past a value), 0 not ours, -1 bad (message printed). */
int cli_disc_opt(struct cli_disc *cd, int *i, int argc, char **argv);
struct disc_model;
struct dm_err;
/* The discovered model called name (the --models-dir folders, then the
 * default stores unless --no-discover): 0, DM_ENOTFOUND, or why the file
 * cannot be used. */
int cli_disc_find(const struct cli_disc *cd, const char *name, struct disc_model *out, struct dm_err *err);

/* Strict number parsing for options: returns -1 after printing
 * "dormant: OPT needs a value" when VAL is missing, or
 * "dormant: OPT: 'VAL' is not ..." when it is malformed or out of [lo, hi]. */
int cli_parse_long(const char *opt, const char *val, long lo, long hi, long *out);
int cli_parse_float(const char *opt, const char *val, double lo, double hi, float *out);

/* Seconds on the monotonic clock. */
double cli_now(void);

/* One line of the start-up check (`dormant serve`, `dormant config check`):
 * "  check NAME ok (needs X MiB)" or "  check NAME problem: MESSAGE"
 * (problem NULL: ok). */
void cli_check_line(FILE *f, const char *name, const char *problem, uint64_t est_bytes);

/* "dormant: " + message + newline on stderr; returns 1. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* GETs path from a running server and returns its "models" array: 0 with
 * *doc (the whole answer, the caller's) and *models set; with raw the body
 * is printed as it came and *doc is NULL.  Non-zero (the message printed):
 * unreachable, not 200, or no models array. */
struct json_t;
int cli_server_models(const char *host, long port, const char *path, int raw, struct json_t **doc,
		      struct json_t **models);

/* Writes s[0..n) as a JSON string literal (quotes included); invalid UTF-8
 * bytes become U+FFFD so the output is always valid JSON. */
void cli_json_str(FILE *f, const char *s, size_t n);
/* Writes s[0..n) for humans: printable UTF-8 as is; backslash, double quote,
 * control characters and invalid bytes as C escapes (\\, \", \n, \x01). */
void cli_text_str(FILE *f, const char *s, size_t n);

#endif

/*
 * cli/life — `dormant bench SCENARIO MODEL [options]`: the lifecycle
 * benchmark suite.  Steady-state tokens/s is one figure among many; these
 * scenarios measure what a user trades when choosing a policy and settings:
 * load time, time to first token, latency against prompt length and output
 * length, memory held over time, and memory given back.
 *
 * Everything runs in process, through the lifecycle manager (mgr_* with the
 * engine backend), the generation loop (gen_run) and the /proc readers of
 * base/mem.  Each scenario prints a table on stdout and stores every raw
 * sample in one JSON tree (jansson) that `--json FILE` writes and
 * `--report DIR` draws (cli_life_report.c).
 *
 * Files: cli_life.c (options, scenario table, shared measuring helpers,
 * JSON), cli_life_scen.c (cold, warm, context, max-tokens, memory),
 * cli_life_sweep.c (warmup, threads, batch, ctx), cli_life_policy.c
 * (policies) and cli_life_ragday.c (its RAG day), cli_life_report.c
 * (HTML + SVG).
 *
 * The JSON (--json FILE): { tool, version, created, machine { cpu,
 * cores_used, physical_cores, logical_cpus, ram_bytes, isa, kernel,
 * loadavg_start, loadavg_end }, model { path, name, arch, file_bytes,
 * weight_bytes, weight_type, n_layer, n_embd, n_vocab, n_ctx_train },
 * options { quick, runs, threads, n_ctx, n_batch, n_prompt, n_gen, mode,
 * sampling }, scenarios { NAME: { runs, samples [...], elapsed_s, and
 * the scenario's derived figures } } }.  Units are in the field names
 * (_s seconds, _bytes, _tok_s tokens per second, _byte_s byte·seconds,
 * _mib_h MiB·hours).  A request sample (life_req_json) has cold, load_s,
 * wait_s, ttft_s, latency_s, prompt_s, gen_s, release_s, n_prompt, n_gen,
 * prefill_tok_s, tok_s, stop, plus the scenario's own keys.
 *
 * Adding a scenario (e.g. `server`): write `int life_server(struct life *L,
 * json_t *out)` in its own file, declare it below, and add one line to the
 * table in cli_life.c.  `all` runs every entry of the table in order.
 */
#ifndef DM_CLI_LIFE_H
#define DM_CLI_LIFE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "mgr/engine.h"
#include "mgr/mgr.h"

/* Entry point: argv[0] is the scenario list ("cold", "warm,context", "all"). */
int cli_bench_life(int argc, char **argv);
/* Whether name is a lifecycle scenario, a comma-separated list of them, or
 * "all" (cli_bench dispatches on it). */
bool cli_life_is_scenario(const char *name);
/* One line per scenario for usage messages. */
void cli_life_usage(FILE *f);

struct life_opts {
	const char *model;
	bool quick;          /* fewest samples that still exercise each scenario */
	bool verbose;        /* manager transitions on stderr */
	int runs;            /* 0: each scenario's default */
	int n_threads;       /* 0: physical cores */
	int32_t n_ctx;       /* 0: min(4096, the model's training context) */
	int32_t n_batch;     /* 0: engine default */
	int n_prompt, n_gen; /* prompt and generated tokens of an ordinary request */
	enum mgr_load_mode mode; /* load mode outside the cold scenario */
	const char *json_path, *report_dir;
	const char *from_json;   /* --from: draw this saved run instead of measuring */
};

struct life {
	struct life_opts o;
	json_t *root;          /* everything measured */
	json_t *scen;          /* root.scenarios, one object per scenario */
	struct engine_backend_cfg bc; /* borrowed by every manager the scenarios make */
	bool progress;         /* stderr is a terminal: draw a progress bar */
	bool progress_shown;   /* a bar is on the line now */
	const char *cur;       /* the running scenario (progress label) */
	int n_threads;         /* resolved */
	int32_t n_ctx;         /* resolved context of ordinary requests */
	int32_t n_ctx_train, n_vocab;
	uint64_t file_bytes;
	int32_t *text_ids;     /* a long tokenized English text; prompts are its prefixes */
	int n_text_ids;
	struct dm_err err;
};

/* ---- shared helpers (cli_life.c) ---- */

double life_now(void);
/* Scenario repetitions: --runs, else `quick` with --quick, else `full`. */
int life_runs(const struct life *L, int full, int quick);
/* done of total steps of the running scenario (stderr, terminals only);
 * _end clears the bar before the scenario prints its table. */
void life_progress(struct life *L, int done, int total);
void life_progress_end(struct life *L);

/* A model config for the file under test with the options applied; name
 * is the manager's name for it.  Lazy, keep-alive forever, warm-up off. */
void life_model_cfg(const struct life *L, struct mgr_model_cfg *mc, const char *name);
/* A manager with the engine backend and no reaper thread (scenarios call
 * mgr_tick); now_ms NULL: the real clock. */
int life_mgr_init(struct life *L, struct mgr **m, uint64_t (*now_ms)(void *), void *clock_ud);

/* The first n tokens of the benchmark text (n <= L->n_text_ids): a real
 * prompt, BOS first when the model adds one.  Borrowed from L. */
const int32_t *life_prompt(const struct life *L, int n);

#define LIFE_IGNORE_EOS 1u  /* end-of-generation tokens are never sampled */
#define LIFE_KEEP_CACHE 2u  /* continue after the context's current tokens */

/* One request: acquire (loading if needed), generate greedily, release. */
struct life_req {
	bool cold;             /* this request loaded the model */
	double wait_s;         /* acquire, load included */
	double load_s;         /* the load (and warm-up) alone, 0 when warm */
	double ttft_s;         /* from acquire to the first token's text */
	double latency_s;      /* from acquire to the last token */
	double prompt_s, gen_s;
	double release_s;      /* mgr_release (the unload, with keep-alive 0) */
	int n_prompt, n_gen;
	double prefill_tok_s;  /* n_prompt / prompt_s */
	double tok_s;          /* n_gen / gen_s: decode rate */
	char stop[16];
};
int life_request(struct life *L, struct mgr *m, const char *name, const struct mgr_acquire_opts *ao,
		 const int32_t *ids, int n_ids, int n_predict, unsigned flags, struct life_req *r);
/* The generation alone on an engine already held. */
int life_generate(struct engine *en, const int32_t *ids, int n_ids, int n_predict, unsigned flags,
		  struct life_req *r, struct dm_err *err);
json_t *life_req_json(const struct life_req *r);

struct life_stats {
	int n;
	double mean, median, min, max, stddev; /* stddev: sample (n - 1) */
};
void life_stats(const double *v, int n, struct life_stats *s);
json_t *life_stats_json(const struct life_stats *s);

/* Least-squares line y = fixed + slope·x; ok false when fewer than two
 * distinct x. */
struct life_fit {
	bool ok;
	int n;
	double fixed, slope, r2;
};
void life_fit_line(const double *x, const double *y, int n, struct life_fit *f);
json_t *life_fit_json(const struct life_fit *f, const char *fixed_name, const char *slope_name);

/* Process memory (/proc/self/status) and the model file's page-cache
 * residency (mincore). */
struct life_mem {
	double t_s;
	uint64_t rss, rss_anon, rss_file, file_cached;
};
void life_mem_now(const struct life *L, double t0, struct life_mem *m);
json_t *life_mem_json(const struct life_mem *m, const char *label);
/* Drops the model file's pages from the page cache (posix_fadvise
 * DONTNEED; only pages nobody maps go) / reads it all in; returns the bytes
 * cached afterwards. */
uint64_t life_cache_drop(const struct life *L);
uint64_t life_cache_fill(const struct life *L);

/* A finite double as a JSON real, anything else as null. */
json_t *life_real(double v);
/* Sets key to value, taking the reference (NULL values are skipped). */
void life_set(json_t *obj, const char *key, json_t *value);

/* ---- scenarios (cli_life_scen.c, cli_life_sweep.c, cli_life_policy.c) ---- */

int life_cold(struct life *L, json_t *out);
int life_warm(struct life *L, json_t *out);
int life_context(struct life *L, json_t *out);
int life_max_tokens(struct life *L, json_t *out);
int life_memory(struct life *L, json_t *out);
int life_warmup(struct life *L, json_t *out);
int life_threads(struct life *L, json_t *out);
int life_batch(struct life *L, json_t *out);
int life_ctx(struct life *L, json_t *out);
int life_policies(struct life *L, json_t *out);
/* The RAG day, run by life_policies: out gets "rag_day". */
int life_rag_day(struct life *L, json_t *out); /* cli_life_ragday.c */
int life_server(struct life *L, json_t *out);   /* cli_bench_server.c */
int life_chat(struct life *L, json_t *out);     /* cli_life_chat.c */

/* ---- report (cli_life_report.c) ---- */

/* Writes DIR/index.html (self-contained: inline SVG, no scripts, no
 * network) and one DIR/NAME.svg per chart, from the tree life builds. */
int life_report_write(const json_t *root, const char *dir, struct dm_err *err);

#endif

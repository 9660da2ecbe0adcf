/*
 * bench — the lifecycle benchmark suite behind `dormant bench SCENARIO
 * MODEL [options]` (src/cli/cli_bench_life.c parses the arguments).
 * Steady-state tokens/s is one figure among many; these scenarios measure what a user trades when choosing a policy and settings:
 * load time, time to first token, latency against prompt length and output
 * length, memory held over time, and memory given back.
 *
 * Everything runs in process, through the lifecycle manager (mgr_* with the
 * engine backend), the generation loop (gen_run) and the /proc readers of
 * base/mem.  Each scenario writes a table to the caller's stream
 * (bench_opts.out) and stores every raw sample in one JSON tree (jansson)
 * that `--json FILE` writes and `--report DIR` draws (bench/report.c).
 *
 * Files: life.c (bench_run, scenario table, shared measuring helpers,
 * JSON), scen.c (cold, warm, context, max-tokens, memory), sweep.c
 * (warmup, threads, batch, ctx), policy.c (policies) and ragday.c (its RAG
 * day), chat.c (chat), server.c (server: HTTP overhead), report.c (the
 * HTML report), svg.c (its charts, bench_svg_*); kernels.c and bw_avx2.c
 * (`dormant bench kernels` and the memory bandwidth probe), quant.c
 * (`dormant bench quantize`), rag.c (`dormant bench rag`), speed.c and
 * peer.c (`dormant bench speed`, beside llama-bench-compatible programs).
 *
 * The JSON (--json FILE): { tool, version, created, machine { cpu,
 * cores_used, physical_cores, logical_cpus, ram_bytes, isa, kernel,
 * loadavg_start, loadavg_end }, model { path, name, arch, file_bytes,
 * weight_bytes, weight_type, n_layer, n_embd, n_vocab, n_ctx_train },
 * options { quick, runs, threads, n_ctx, n_batch, n_prompt, n_gen, mode,
 * sampling }, scenarios { NAME: { runs, samples [...], elapsed_s, and
 * the scenario's derived figures } } }.  Units are in the field names
 * (_s seconds, _bytes, _tok_s tokens per second, _byte_s byte·seconds,
 * _mib_h MiB·hours).  A request sample (bench_req_json) has cold, load_s,
 * wait_s, ttft_s, latency_s, prompt_s, gen_s, release_s, n_prompt, n_gen,
 * prefill_tok_s, tok_s, stop, plus the scenario's own keys.
 *
 * Adding a scenario NAME: write `int bench_NAME(struct bench *L, json_t
 * *out)` in its own file, declare it below, and add one line to the table
 * in life.c.  `all` runs every entry of the table in order.
 */
#ifndef DM_BENCH_BENCH_H
#define DM_BENCH_BENCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kern/kern.h"
#include "mgr/engine.h"
#include "mgr/mgr.h"

/* Whether name is a lifecycle scenario, a comma-separated list of them, or
 * "all" (the CLI dispatches on it). */
bool bench_is_scenario(const char *name);
/* One line per scenario for usage messages. */
void bench_usage(FILE *f);

struct bench_opts {
	const char *scenarios; /* "cold", "warm,context", "all" */
	const char *model;
	FILE *out;           /* the tables (NULL: stdout); progress goes to stderr */
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

struct bench {
	struct bench_opts o;
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

/* ---- shared helpers (bench/life.c) ---- */

double bench_now(void);
/* Scenario repetitions: --runs, else `quick` with --quick, else `full`. */
int bench_runs(const struct bench *L, int full, int quick);
/* done of total steps of the running scenario (stderr, terminals only);
 * _end clears the bar before the scenario prints its table. */
void bench_progress(struct bench *L, int done, int total);
void bench_progress_end(struct bench *L);

/* A model config for the file under test with the options applied; name
 * is the manager's name for it.  Lazy, keep-alive forever, warm-up off. */
void bench_model_cfg(const struct bench *L, struct mgr_model_cfg *mc, const char *name);
/* A manager with the engine backend and no reaper thread (scenarios call
 * mgr_tick); now_ms NULL: the real clock. */
int bench_mgr_init(struct bench *L, struct mgr **m, uint64_t (*now_ms)(void *), void *clock_ud);

/* The first n tokens of the benchmark text (n <= L->n_text_ids): a real
 * prompt, BOS first when the model adds one.  Borrowed from L. */
const int32_t *bench_prompt(const struct bench *L, int n);

#define BENCH_IGNORE_EOS 1u  /* end-of-generation tokens are never sampled */
#define BENCH_KEEP_CACHE 2u  /* continue after the context's current tokens */

/* One request: acquire (loading if needed), generate greedily, release. */
struct bench_req {
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
int bench_request(struct bench *L, struct mgr *m, const char *name, const struct mgr_acquire_opts *ao,
		 const int32_t *ids, int n_ids, int n_predict, unsigned flags, struct bench_req *r);
/* The generation alone on an engine already held. */
int bench_generate(struct engine *en, const int32_t *ids, int n_ids, int n_predict, unsigned flags,
		  struct bench_req *r, struct dm_err *err);
json_t *bench_req_json(const struct bench_req *r);

struct bench_stats {
	int n;
	double mean, median, min, max, stddev; /* stddev: sample (n - 1) */
};
void bench_stats(const double *v, int n, struct bench_stats *s);
json_t *bench_stats_json(const struct bench_stats *s);

/* Least-squares line y = fixed + slope·x; ok false when fewer than two
 * distinct x. */
struct bench_fit {
	bool ok;
	int n;
	double fixed, slope, r2;
};
void bench_fit_line(const double *x, const double *y, int n, struct bench_fit *f);
json_t *bench_fit_json(const struct bench_fit *f, const char *fixed_name, const char *slope_name);

/* Process memory (/proc/self/status) and the model file's page-cache
 * residency (mincore). */
struct bench_mem {
	double t_s;
	uint64_t rss, rss_anon, rss_file, file_cached;
};
void bench_mem_now(const struct bench *L, double t0, struct bench_mem *m);
json_t *bench_mem_json(const struct bench_mem *m, const char *label);
/* Drops the model file's pages from the page cache (posix_fadvise
 * DONTNEED; only pages nobody maps go) / reads it all in; returns the bytes
 * cached afterwards. */
uint64_t bench_cache_drop(const struct bench *L);
uint64_t bench_cache_fill(const struct bench *L);

/* A finite double as a JSON real, anything else as null. */
json_t *bench_real(double v);
/* Sets key to value, taking the reference (NULL values are skipped). */
void bench_set(json_t *obj, const char *key, json_t *value);

/* ---- scenarios (bench/scen.c, bench/sweep.c, bench/policy.c) ---- */

int bench_cold(struct bench *L, json_t *out);
int bench_warm(struct bench *L, json_t *out);
int bench_context(struct bench *L, json_t *out);
int bench_max_tokens(struct bench *L, json_t *out);
int bench_memory(struct bench *L, json_t *out);
int bench_warmup(struct bench *L, json_t *out);
int bench_threads(struct bench *L, json_t *out);
int bench_batch(struct bench *L, json_t *out);
int bench_ctx(struct bench *L, json_t *out);
int bench_policies(struct bench *L, json_t *out);
/* The RAG day, run by bench_policies: out gets "rag_day". */
int bench_rag_day(struct bench *L, json_t *out); /* ragday.c */
int bench_server(struct bench *L, json_t *out);   /* bench/server.c */
int bench_chat(struct bench *L, json_t *out);     /* bench/chat.c */

/* ---- running ---- */

/* Runs the scenarios of o->scenarios on o->model: tables on o->out, every
 * sample into o->json_path and o->report_dir when set (their folders are
 * created first, so a bad path fails before minutes of measuring).  0, or
 * a negative code with the first failure in err. */
int bench_run(const struct bench_opts *o, struct dm_err *err);
/* Draws a saved run (--json output) into report_dir again. */
int bench_redraw(const char *json_path, const char *report_dir, struct dm_err *err);
/* The median of v[0..n) (v is sorted in place); 0 for n = 0. */
double bench_median(double *v, int n);

/* ---- kernels.c: `dormant bench kernels` and the bandwidth probe ---- */
struct dm_pool;
/* Memory read bandwidth in GB/s (median of runs) with the pool's threads
 * summing a buffer of `bytes` (0: 1 GiB; rounded up to whole MiB), each
 * run once with and once without software prefetch, the faster counting;
 * 0 when the buffer cannot be allocated. */
double bench_bandwidth(struct dm_pool *pool, int runs, size_t bytes);
/* bw_avx2.c: the probe's sum of p[b..e) in 256-bit loads (pf: software
 * prefetch 16 KiB ahead, as the matvecs do); AVX2 CPUs only. */
uint64_t bench_sum_avx2(const uint64_t *p, int64_t b, int64_t e, bool pf);
struct bench_kernels_opts {
	int threads, runs; /* runs 1..64 */
	enum kern_isa isa;
	const char *types; /* comma-separated GGUF type names */
};
/* Per weight type: matvec GB/s against the bandwidth measured beside it,
 * and matmul GFLOP/s; then one decoding token's attention over 2048 cached
 * rows on one thread.  A table on out; 0 or a negative code (err). */
int bench_kernels(const struct bench_kernels_opts *o, FILE *out, struct dm_err *err);

/* ---- quant.c: `dormant bench quantize` ---- */
#define BENCH_QUANT_RUNS_MAX 64
struct bench_quant_row {
	char type[8];
	uint64_t weights;     /* weights quantized per load */
	double quantize_s;    /* median of the engine's quantize step */
	double load_s;        /* median of the whole loads */
	double load_cpu_s;    /* median CPU time (user + system) per whole load */
};
/* One uncounted load of path with quantize_on_load = type_name (Q8_0, Q4_0
 * or Q4_K), then runs timed ones on threads threads, into row.  0 or a
 * negative code (err): a bad type, a file with no float matrix, a load
 * that fails. */
int bench_quant(const char *path, const char *type_name, int threads, int runs, struct bench_quant_row *row,
		struct dm_err *err);

/* ---- rag.c: `dormant bench rag` ---- */
#define BENCH_RAG_TEXTS 64
struct bench_rag_result {
	size_t dim; /* the embedding width */
	double embed_batch_per_s, embed_single_per_s;   /* texts per second: one call, one call each */
	double rerank_batch_per_s, rerank_single_per_s; /* pairs per second, the same two ways */
};
/* Loads both models (threads each) through the C API, runs each path once
 * untimed, then runs (1..1000) timed rounds; medians into res.  0 or a
 * negative code (err). */
int bench_rag(const char *embed, const char *rerank, int runs, int threads, struct bench_rag_result *res,
	      struct dm_err *err);

/* ---- peer.c: a llama-bench-compatible program for `bench speed --vs` ---- */
/* One --vs program and its --vs-args. */
struct bench_peer {
	const char *path;     /* borrowed (argv) */
	char name[192];       /* the program's file name and its extra words, for tables and errors */
	char words_buf[512];  /* the extra words, split in place */
	char *words[32];
	int n_words;
};

/* Fills *p for the program at path with extra arguments (NULL: none):
 * DM_ENOTFOUND / DM_EINVAL when path is not an executable file or the
 * extra words do not fit. */
int bench_peer_init(struct bench_peer *p, const char *path, const char *extra, struct dm_err *err);

/* Runs the peer once on model (-p n_prompt -n n_gen -t threads -r 1 -o
 * json + its words; with depth > 0, -n 0 -gp depth,n_gen in place of -n)
 * and reads its prompt and generation tokens per second into *pp and *tg
 * (a test of 0 tokens is not looked for).  Killed after
 * timeout_s.  Errors (one line naming the peer): cannot start it, killed,
 * non-zero exit (with the last line of its stderr), output that is not
 * llama-bench JSON or lacks a result. */
int bench_peer_run(const struct bench_peer *p, const char *model, long n_prompt, long n_gen, long depth,
		 int threads, double timeout_s, double *pp, double *tg, struct dm_err *err);

/* ---- server.c: `dormant bench server` ---- */
/* `dormant bench server`: what HTTP adds over the library call, on model
 * (runs interleaved samples, threads 0 = the default; with_wrk: also the
 * keep-alive figures, about 9 s).  A table on print (NULL: none), the
 * figures into out (NULL: none). */
int bench_server_measure(const char *model, long runs, long threads, bool with_wrk, FILE *print, json_t *out,
			 struct dm_err *err);

/* ---- report (report.c) ---- */

/* Writes DIR/index.html (self-contained: inline SVG, no scripts, no
 * network) and one DIR/NAME.svg per chart, from the tree life builds. */
int bench_report_write(const json_t *root, const char *dir, struct dm_err *err);

/* ---- speed.c: `dormant bench speed` ---- */
#define BENCH_SPEED_PEERS_MAX 8
struct bench_speed_opts {
	const char *path;      /* the model's file (the peers are given it) */
	long n_prompt, n_gen;  /* tokens of the prompt test and of the generation test (0: none) */
	long depth;            /* generate after this many tokens of context */
	long reps;             /* repetitions, 1..1000; with peers, alternated rounds */
	int batch;             /* the context is brought in this many tokens at a time */
	size_t bw_bytes;       /* the bandwidth probe's buffer */
	double vs_timeout;     /* seconds a peer run may take */
	const struct bench_peer *peers;
	int n_peers;           /* 0..BENCH_SPEED_PEERS_MAX */
	bool progress;         /* without peers: "repetition i/R" on stderr */
};
/* One engine's figures: medians over the repetitions [min, max] in tok/s,
 * decode's weight bytes per second as a fraction of the bandwidth, and
 * dormant's speed divided by this engine's. */
struct bench_speed_engine {
	double pp, pp_lo, pp_hi, tg, tg_lo, tg_hi, tg_of_bw, pp_ratio, tg_ratio;
};
struct bench_speed_result {
	long reps;
	int n_eng;             /* engine 0 is dormant, engine k the peer k − 1 */
	int threads;
	enum kern_isa isa;
	double weight_bytes;   /* dormant's weights, read once per generated token */
	double *bw;            /* n_bw probes in GB/s: one per round with peers, else one */
	long n_bw;
	double bw_med, bw_lo, bw_hi;
	double *pp, *tg;       /* every repetition: [k·reps + r] for engine k */
	struct bench_speed_engine eng[BENCH_SPEED_PEERS_MAX + 1];
};
/* Measures the engine e holds (its context must fit the prompt, or depth
 * + generation, plus one) and the peers as above; progress lines on
 * stderr.  0 (free res with bench_speed_free) or a negative code (err,
 * naming the peer or the model). */
int bench_speed(struct engine *e, const struct bench_speed_opts *o, struct bench_speed_result *res,
		struct dm_err *err);
void bench_speed_free(struct bench_speed_result *res);

#endif

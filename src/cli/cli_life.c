/*
 * cli/life — the lifecycle benchmark suite: options, the scenario table,
 * the measuring helpers every scenario shares, and the JSON tree (see
 * cli_life.h for the whole picture).
 *
 * Definitions used by every scenario (and written into the JSON):
 *   latency_s  from mgr_acquire (loading included when the model was
 *              dormant) to the last generated token; the release after it
 *              (the unload of an on-demand model) is release_s, not latency:
 *              a server has answered by then.
 *   ttft_s     from mgr_acquire to the first generated token's text.
 *   tok_s      generated tokens / the time after the prompt (as `run --stats`).
 *   prefill_tok_s  prompt tokens / prompt time.
 * Sampling is greedy (deterministic); prompts are prefixes of one English
 * text tokenized once at start, so a prompt of n tokens is always the same.
 */
#include "cli/cli_life.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "base/mem.h"
#include "base/pool.h"
#include "cli/cli.h"
#include "dormant.h"
#include "gguf/gguf.h"
#include "kern/kern.h"
#include "model/gen.h"
#include "model/model.h"
#include "tok/tok.h"

struct life_scenario {
	const char *name;
	const char *help;
	int (*run)(struct life *L, json_t *out);
};

/* The suite, in the order `all` runs it.  The server's `server` scenario
 * (HTTP overhead vs in process) goes here as one more line. */
static const struct life_scenario scenarios[] = {
	{ "cold", "dormant -> load, first token, first generation; page cache dropped vs cached; mmap, read, prefetch", life_cold },
	{ "warm", "N consecutive generations on the loaded model: mean, median, min, max, stddev", life_warm },
	{ "context", "latency and prefill tok/s vs prompt length, fitted line", life_context },
	{ "max-tokens", "latency and tok/s vs generated tokens (EOS ignored), fitted line", life_max_tokens },
	{ "memory", "RSS anon/file and page cache: start, load, generations, long conversation, unload", life_memory },
	{ "warmup", "first-request latency with warm-up on vs off (A/B, alternating)", life_warmup },
	{ "threads", "prefill and decode tok/s vs threads", life_threads },
	{ "batch", "prefill tok/s vs n_batch", life_batch },
	{ "ctx", "memory and decode tok/s vs n_ctx", life_ctx },
	{ "policies", "a scripted day under eager, lazy, on-demand, keep-alive: latency vs memory-seconds; then a RAG day (embed, rerank, generate per question) under one budget: LRU vs roles vs a pinned chat model", life_policies },
	{ "chat", "a multi-turn conversation: time to first token per turn, kept loaded or on demand, with and without the prompt cache", life_chat },
	{ "server", "HTTP overhead vs the in-process call, /health round trip, serve start-up", life_server },
};
#define N_SCEN (sizeof scenarios / sizeof scenarios[0])

/* ---- small helpers ---- */

double life_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int life_runs(const struct life *L, int full, int quick)
{
	if (L->o.runs > 0)
		return L->o.runs;
	return L->o.quick ? quick : full;
}

void life_progress(struct life *L, int done, int total)
{
	static const char bar[] = "##############################";
	const int w = (int)sizeof bar - 1;
	int k;

	if (!L->progress || total <= 0)
		return;
	k = done >= total ? w : done * w / total;
	fprintf(stderr, "\r%-10s [%.*s%*s] %d/%d ", L->cur ? L->cur : "", k, bar, w - k, "", done, total);
	fflush(stderr);
	L->progress_shown = true;
}

void life_progress_end(struct life *L)
{
	if (!L->progress_shown)
		return;
	fprintf(stderr, "\r%*s\r", 60, "");
	fflush(stderr);
	L->progress_shown = false;
}

json_t *life_real(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

void life_set(json_t *obj, const char *key, json_t *value)
{
	if (value)
		json_object_set_new(obj, key, value);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

void life_stats(const double *v, int n, struct life_stats *s)
{
	double *c;

	memset(s, 0, sizeof *s);
	s->n = n;
	if (n <= 0)
		return;
	c = malloc((size_t)n * sizeof *c);
	if (!c)
		return;
	memcpy(c, v, (size_t)n * sizeof *c);
	qsort(c, (size_t)n, sizeof *c, cmp_double);
	s->min = c[0];
	s->max = c[n - 1];
	s->median = n % 2 ? c[n / 2] : 0.5 * (c[n / 2 - 1] + c[n / 2]);
	for (int i = 0; i < n; i++)
		s->mean += c[i];
	s->mean /= n;
	for (int i = 0; n > 1 && i < n; i++)
		s->stddev += (c[i] - s->mean) * (c[i] - s->mean);
	s->stddev = n > 1 ? sqrt(s->stddev / (n - 1)) : 0.0;
	free(c);
}

json_t *life_stats_json(const struct life_stats *s)
{
	json_t *o = json_object();
	life_set(o, "n", json_integer(s->n));
	life_set(o, "mean", life_real(s->mean));
	life_set(o, "median", life_real(s->median));
	life_set(o, "min", life_real(s->min));
	life_set(o, "max", life_real(s->max));
	life_set(o, "stddev", life_real(s->stddev));
	return o;
}

void life_fit_line(const double *x, const double *y, int n, struct life_fit *f)
{
	double mx = 0, my = 0, sxx = 0, sxy = 0, syy = 0, res = 0;

	memset(f, 0, sizeof *f);
	f->n = n;
	if (n < 2)
		return;
	for (int i = 0; i < n; i++) {
		mx += x[i];
		my += y[i];
	}
	mx /= n;
	my /= n;
	for (int i = 0; i < n; i++) {
		sxx += (x[i] - mx) * (x[i] - mx);
		sxy += (x[i] - mx) * (y[i] - my);
		syy += (y[i] - my) * (y[i] - my);
	}
	if (!(sxx > 0))
		return; /* every x the same: no line */
	f->slope = sxy / sxx;
	f->fixed = my - f->slope * mx;
	for (int i = 0; i < n; i++) {
		double e = y[i] - (f->fixed + f->slope * x[i]);
		res += e * e;
	}
	f->r2 = syy > 0 ? 1.0 - res / syy : 1.0;
	f->ok = isfinite(f->slope) && isfinite(f->fixed);
}

json_t *life_fit_json(const struct life_fit *f, const char *fixed_name, const char *slope_name)
{
	json_t *o = json_object();
	life_set(o, "n", json_integer(f->n));
	life_set(o, "ok", json_boolean(f->ok));
	life_set(o, fixed_name, f->ok ? life_real(f->fixed) : json_null());
	life_set(o, slope_name, f->ok ? life_real(f->slope) : json_null());
	life_set(o, "r2", f->ok ? life_real(f->r2) : json_null());
	return o;
}

void life_mem_now(const struct life *L, double t0, struct life_mem *m)
{
	struct dm_mem_usage u;
	uint64_t size = 0;

	dm_mem_usage(&u);
	memset(m, 0, sizeof *m);
	m->t_s = life_now() - t0;
	m->rss = u.rss;
	m->rss_anon = u.rss_anon;
	m->rss_file = u.rss_file;
	dm_file_cached(L->o.model, &m->file_cached, &size);
}

json_t *life_mem_json(const struct life_mem *m, const char *label)
{
	json_t *o = json_object();
	if (label)
		life_set(o, "label", json_string(label));
	life_set(o, "t_s", life_real(m->t_s));
	life_set(o, "rss_bytes", json_integer((json_int_t)m->rss));
	life_set(o, "rss_anon_bytes", json_integer((json_int_t)m->rss_anon));
	life_set(o, "rss_file_bytes", json_integer((json_int_t)m->rss_file));
	life_set(o, "file_cached_bytes", json_integer((json_int_t)m->file_cached));
	return o;
}

uint64_t life_cache_drop(const struct life *L)
{
	uint64_t cached = 0, size = 0;
	int fd = open(L->o.model, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		fdatasync(fd);
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
	dm_file_cached(L->o.model, &cached, &size);
	return cached;
}

uint64_t life_cache_fill(const struct life *L)
{
	uint64_t cached = 0, size = 0;
	size_t cap = 4u << 20;
	char *buf = malloc(cap);
	int fd = open(L->o.model, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && buf) {
		posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		while (read(fd, buf, cap) > 0)
			;
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	dm_file_cached(L->o.model, &cached, &size);
	return cached;
}

/* ---- models, managers, requests ---- */

void life_model_cfg(const struct life *L, struct mgr_model_cfg *mc, const char *name)
{
	mgr_model_cfg_default(mc);
	snprintf(mc->name, sizeof mc->name, "%s", name);
	snprintf(mc->path, sizeof mc->path, "%s", L->o.model);
	mc->keep_alive_ms = MGR_KEEP_FOREVER;
	mc->mode = L->o.mode;
	mc->warmup = 0;
	mc->n_ctx = L->n_ctx;
	mc->n_batch = L->o.n_batch;
	mc->n_threads = L->n_threads;
}

static void log_stderr(void *ud, const char *line)
{
	(void)ud;
	fprintf(stderr, "mgr: %s\n", line);
}

int life_mgr_init(struct life *L, struct mgr **m, uint64_t (*now_ms)(void *), void *clock_ud)
{
	struct mgr_cfg c;

	memset(&c, 0, sizeof c);
	c.no_reaper = true;
	c.keep_alive_max_ms = -1;
	c.now_ms = now_ms;
	c.clock_ud = clock_ud;
	c.queue_timeout_ms = 600000;
	if (L->o.verbose)
		c.log = log_stderr;
	mgr_engine_backend(&c.backend, &L->bc);
	return mgr_init(m, &c, &L->err);
}

const int32_t *life_prompt(const struct life *L, int n)
{
	DM_CHECK(n >= 1 && n <= L->n_text_ids); /* the scenarios cap their lengths */
	return L->text_ids;
}

/* Greedy decoding that never picks an end-of-generation token, so a request
 * runs to its length (or to a full context).  The same steps as gen_run:
 * prefill, then per token argmax, streaming detokenization, one decode. */
static int gen_to_length(struct engine *en, const int32_t *ids, int n_ids, int n_predict,
			 bool keep, struct life_req *r, struct dm_err *err)
{
	struct model_ctx *c = en->ctx;
	const int32_t V = en->m->hp.n_vocab;
	float *lg = malloc((size_t)V * sizeof *lg);
	int32_t eog[64];
	int n_eog = 0, rc = 0;
	struct tok_decoder dec;
	double t0 = life_now(), t1;

	if (!lg)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	for (int32_t i = 0; i < V && n_eog < 64; i++)
		if (tok_is_eog(en->v, i))
			eog[n_eog++] = i;
	tok_decoder_init(&dec, en->v, 0);
	if (!keep)
		model_ctx_reset(c);
	if ((rc = model_decode(c, ids, n_ids, lg, false, err)))
		goto out;
	t1 = life_now();
	r->n_prompt = n_ids;
	r->prompt_s = t1 - t0;
	snprintf(r->stop, sizeof r->stop, "length");
	while (r->n_gen < n_predict) {
		const char *txt;
		size_t tn;
		int32_t id = 0;
		for (int k = 0; k < n_eog; k++)
			lg[eog[k]] = -INFINITY;
		for (int32_t i = 1; i < V; i++)
			if (lg[i] > lg[id])
				id = i;
		r->n_gen++;
		if (r->n_gen == 1)
			r->ttft_s = life_now() - t0;
		if ((rc = tok_decoder_push(&dec, id, &txt, &tn, err)))
			goto out;
		if (r->n_gen >= n_predict)
			break;
		if (c->n_past >= c->n_ctx) {
			snprintf(r->stop, sizeof r->stop, "context");
			break;
		}
		if ((rc = model_decode(c, &id, 1, lg, false, err)))
			goto out;
	}
	r->gen_s = life_now() - t1;
out:
	tok_decoder_free(&dec);
	free(lg);
	return rc;
}

int life_generate(struct engine *en, const int32_t *ids, int n_ids, int n_predict, unsigned flags,
		  struct life_req *r, struct dm_err *err)
{
	int rc;

	if (flags & LIFE_IGNORE_EOS) {
		if ((rc = gen_to_length(en, ids, n_ids, n_predict, flags & LIFE_KEEP_CACHE, r, err)))
			return rc;
	} else {
		struct gen_params gp;
		struct gen_stats st;
		gen_params_default(&gp);
		gp.sample.temp = 0;
		gp.n_predict = n_predict;
		gp.keep_cache = flags & LIFE_KEEP_CACHE;
		if ((rc = gen_run(en->ctx, en->v, ids, (size_t)n_ids, &gp, NULL, NULL, NULL, &st, err)))
			return rc;
		r->n_prompt = st.n_prompt;
		r->n_gen = st.n_gen;
		r->prompt_s = st.t_prompt_s;
		r->gen_s = st.t_gen_s;
		r->ttft_s = st.t_first_token_s;
		snprintf(r->stop, sizeof r->stop, "%s", gen_stop_name(st.stop));
	}
	r->prefill_tok_s = r->prompt_s > 0 ? r->n_prompt / r->prompt_s : 0;
	r->tok_s = r->gen_s > 0 ? r->n_gen / r->gen_s : 0;
	return 0;
}

int life_request(struct life *L, struct mgr *m, const char *name, const struct mgr_acquire_opts *ao,
		 const int32_t *ids, int n_ids, int n_predict, unsigned flags, struct life_req *r)
{
	struct mgr_lease *l;
	double t0, t1, t2;
	int rc;

	memset(r, 0, sizeof *r);
	t0 = life_now();
	if ((rc = mgr_acquire(m, name, ao, &l, &L->err)))
		return rc;
	t1 = life_now();
	r->wait_s = t1 - t0;
	r->cold = mgr_lease_cold(l);
	r->load_s = mgr_lease_load_s(l);
	rc = life_generate(mgr_lease_handle(l), ids, n_ids, n_predict, flags, r, &L->err);
	t2 = life_now();
	r->ttft_s += r->wait_s;
	r->latency_s = t2 - t0;
	mgr_release(l);
	r->release_s = life_now() - t2;
	return rc;
}

json_t *life_req_json(const struct life_req *r)
{
	json_t *o = json_object();
	life_set(o, "cold", json_boolean(r->cold));
	life_set(o, "load_s", life_real(r->load_s));
	life_set(o, "wait_s", life_real(r->wait_s));
	life_set(o, "ttft_s", life_real(r->ttft_s));
	life_set(o, "latency_s", life_real(r->latency_s));
	life_set(o, "prompt_s", life_real(r->prompt_s));
	life_set(o, "gen_s", life_real(r->gen_s));
	life_set(o, "release_s", life_real(r->release_s));
	life_set(o, "n_prompt", json_integer(r->n_prompt));
	life_set(o, "n_gen", json_integer(r->n_gen));
	life_set(o, "prefill_tok_s", life_real(r->prefill_tok_s));
	life_set(o, "tok_s", life_real(r->tok_s));
	life_set(o, "stop", json_string(r->stop));
	return o;
}

/* ---- the machine and the model ---- */

static void cpu_model(char *out, size_t cap)
{
	char line[512];
	FILE *f = fopen("/proc/cpuinfo", "r");

	snprintf(out, cap, "unknown CPU");
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		char *c = strchr(line, ':');
		if (c && !strncmp(line, "model name", 10)) {
			c++;
			while (*c == ' ' || *c == '\t')
				c++;
			c[strcspn(c, "\n")] = '\0';
			snprintf(out, cap, "%s", c);
			break;
		}
	}
	fclose(f);
}

static uint64_t ram_total(void)
{
	char line[256];
	unsigned long long kb = 0;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return (uint64_t)kb * 1024;
}

static json_t *loadavg_json(void)
{
	double la[3];
	if (getloadavg(la, 3) != 3)
		return json_null();
	return json_pack("[fff]", la[0], la[1], la[2]);
}

static json_t *machine_json(const struct life *L)
{
	char cpu[256];
	struct utsname u;
	json_t *o = json_object();

	cpu_model(cpu, sizeof cpu);
	life_set(o, "cpu", json_string(cpu));
	life_set(o, "cores_used", json_integer(L->n_threads));
	life_set(o, "physical_cores", json_integer(dm_cpu_physical_cores()));
	life_set(o, "logical_cpus", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
	life_set(o, "ram_bytes", json_integer((json_int_t)ram_total()));
	life_set(o, "isa", json_string(kern_isa_name(kern_isa_best())));
	if (uname(&u) == 0) {
		char k[300];
		snprintf(k, sizeof k, "%s %s %s", u.sysname, u.release, u.machine);
		life_set(o, "kernel", json_string(k));
	}
	life_set(o, "loadavg_start", loadavg_json());
	return o;
}

/* An ordinary English text, repeated as often as needed: prompts are real
 * text whatever the tokenizer. */
static const char bench_text[] =
	"The lighthouse keeper climbed the spiral stairs every evening at dusk, counting the steps "
	"as his father had taught him. From the lantern room he could see the harbour, the fishing "
	"boats returning with the tide, and the long road that wound between the hills toward the "
	"town. On clear nights the beam reached far across the water, and sailors said they could "
	"find their way home by its steady rhythm. He kept a journal of the weather, the ships that "
	"passed, and the birds that rested on the rail during storms. ";

/* Reads the model's shape and tokenizes the benchmark text (at least
 * `need` tokens), then lets go of the file: nothing stays loaded. */
static int model_info(struct life *L, int need, json_t **out)
{
	struct gguf_file *g = NULL;
	struct model *m = NULL;
	struct tok_vocab *v = NULL;
	char *text = NULL;
	int32_t *ids = NULL;
	size_t n_ids = 0, len = 0, tl = strlen(bench_text);
	char name[128] = "";
	int rc;
	json_t *o;

	if ((rc = gguf_open(&g, L->o.model, &L->err)) || (rc = model_bind(&m, g, &L->err)) ||
	    (rc = tok_load(&v, g, &L->err)))
		goto out;
	for (int reps = 8;; reps *= 2) {
		char *nt = realloc(text, tl * (size_t)reps + 1);
		if (!nt) {
			rc = dm_err_set(&L->err, DM_ENOMEM, "out of memory");
			goto out;
		}
		text = nt;
		for (len = 0; len < tl * (size_t)reps; len += tl)
			memcpy(text + len, bench_text, tl);
		text[len] = '\0';
		free(ids);
		ids = NULL;
		if ((rc = tok_encode(v, text, len, 0, &ids, &n_ids, &L->err)))
			goto out;
		if (n_ids + 1 >= (size_t)need || reps > (1 << 16))
			break;
	}
	L->text_ids = malloc((n_ids + 1) * sizeof *L->text_ids);
	if (!L->text_ids) {
		rc = dm_err_set(&L->err, DM_ENOMEM, "out of memory");
		goto out;
	}
	L->n_text_ids = 0;
	if (tok_add_bos(v) && tok_bos(v) >= 0)
		L->text_ids[L->n_text_ids++] = tok_bos(v);
	memcpy(L->text_ids + L->n_text_ids, ids, n_ids * sizeof *ids);
	L->n_text_ids += (int)n_ids;
	L->n_ctx_train = m->hp.n_ctx_train;
	L->n_vocab = m->hp.n_vocab;
	L->file_bytes = g->size;
	gguf_get_str_buf(g, "general.name", name, sizeof name, NULL);
	o = json_object();
	life_set(o, "path", json_string(L->o.model));
	life_set(o, "name", json_string(name));
	life_set(o, "arch", json_string(m->hp.arch_name));
	life_set(o, "file_bytes", json_integer((json_int_t)g->size));
	life_set(o, "weight_bytes", json_integer((json_int_t)m->weight_bytes));
	life_set(o, "weight_type", json_string(gguf_type_get(m->layers[0].wq.type)
						       ? gguf_type_get(m->layers[0].wq.type)->name : "?"));
	life_set(o, "n_layer", json_integer(m->hp.n_layer));
	life_set(o, "n_embd", json_integer(m->hp.n_embd));
	life_set(o, "n_vocab", json_integer(m->hp.n_vocab));
	life_set(o, "n_ctx_train", json_integer(m->hp.n_ctx_train));
	*out = o;
out:
	free(ids);
	free(text);
	tok_free(v);
	model_free(m);
	gguf_close(g);
	return rc;
}

/* ---- the command ---- */

bool cli_life_is_scenario(const char *list)
{
	const char *p = list;

	if (!*p)
		return false;
	while (*p) {
		size_t n = strcspn(p, ",");
		bool ok = n == 3 && !strncmp(p, "all", 3);
		for (size_t i = 0; !ok && i < N_SCEN; i++)
			ok = strlen(scenarios[i].name) == n && !strncmp(p, scenarios[i].name, n);
		if (!ok)
			return false;
		p += n;
		if (*p == ',')
			p++;
	}
	return true;
}

void cli_life_usage(FILE *f)
{
	fprintf(f, "usage: dormant bench SCENARIO[,SCENARIO...]|all MODEL [--quick] [--runs N] [--threads N]\n"
		   "         [--ctx N] [--batch N] [-p N] [-n N] [--mode mmap|read|mlock|prefetch]\n"
		   "         [--json FILE] [--report DIR] [--verbose]\n"
		   "       dormant bench all --from FILE.json --report DIR   (draw a saved run again)\n"
		   "scenarios:\n");
	for (size_t i = 0; i < N_SCEN; i++)
		fprintf(f, "  %-11s %s\n", scenarios[i].name, scenarios[i].help);
	fprintf(f, "  %-11s every scenario above, in this order\n", "all");
}

static int parse_mode(const char *s, enum mgr_load_mode *m)
{
	for (int i = 0; i < 4; i++)
		if (!strcmp(s, mgr_mode_name((enum mgr_load_mode)i))) {
			*m = (enum mgr_load_mode)i;
			return 0;
		}
	return -1;
}

static int parse_args(struct life_opts *o, int argc, char **argv)
{
	long v;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--quick")) {
			o->quick = true;
		} else if (!strcmp(a, "--verbose")) {
			o->verbose = true;
		} else if (!strcmp(a, "--runs") || !strcmp(a, "-r")) {
			if (cli_parse_long(a, val, 1, 1000, &v))
				return -1;
			o->runs = (int)v;
			i++;
		} else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
			if (cli_parse_long(a, val, 1, 1024, &v))
				return -1;
			o->n_threads = (int)v;
			i++;
		} else if (!strcmp(a, "--ctx")) {
			if (cli_parse_long(a, val, 16, 1 << 20, &v))
				return -1;
			o->n_ctx = (int32_t)v;
			i++;
		} else if (!strcmp(a, "--batch")) {
			if (cli_parse_long(a, val, 1, 1 << 16, &v))
				return -1;
			o->n_batch = (int32_t)v;
			i++;
		} else if (!strcmp(a, "-p")) {
			if (cli_parse_long(a, val, 1, 1 << 20, &v))
				return -1;
			o->n_prompt = (int)v;
			i++;
		} else if (!strcmp(a, "-n")) {
			if (cli_parse_long(a, val, 1, 1 << 20, &v))
				return -1;
			o->n_gen = (int)v;
			i++;
		} else if (!strcmp(a, "--mode")) {
			if (!val || parse_mode(val, &o->mode))
				return cli_fail("bench: --mode must be mmap, read, mlock or prefetch"), -1;
			i++;
		} else if (!strcmp(a, "--json") || !strcmp(a, "--report") || !strcmp(a, "--from")) {
			if (!val)
				return cli_fail("bench: %s needs a value", a), -1;
			if (a[2] == 'j')
				o->json_path = val;
			else if (a[2] == 'r')
				o->report_dir = val;
			else
				o->from_json = val;
			i++;
		} else if (a[0] == '-' && a[1]) {
			return cli_fail("bench: unknown option '%s'", a), -1;
		} else if (!o->model) {
			o->model = a;
		} else {
			return cli_fail("bench: more than one MODEL ('%s', '%s')", o->model, a), -1;
		}
	}
	return 0;
}

/* Creates dir and its parents (mkdir -p) and checks it is writable, so that
 * an output path is known good before minutes of measuring, not after. */
static int make_dirs(const char *dir)
{
	char buf[4096];
	size_t n = strlen(dir);
	if (!n)
		return 0;
	if (n >= sizeof buf)
		return cli_fail("%s: path too long", dir);
	memcpy(buf, dir, n + 1);
	for (char *q = buf + 1;; q++) {
		bool end = !*q;
		if (*q != '/' && !end)
			continue;
		*q = '\0';
		if (mkdir(buf, 0777) != 0 && errno != EEXIST)
			return cli_fail("%s: cannot create the folder: %s", buf, strerror(errno));
		if (end)
			break;
		*q = '/';
	}
	if (access(dir, W_OK) != 0)
		return cli_fail("%s: cannot write there: %s", dir, strerror(errno));
	return 0;
}

static int make_parent_dirs(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	if (!slash || slash == path)
		return slash ? 0 : (access(".", W_OK) ? cli_fail(".: cannot write there: %s", strerror(errno)) : 0);
	if ((size_t)(slash - path) >= sizeof dir)
		return cli_fail("%s: path too long", path);
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	return make_dirs(dir);
}

int cli_bench_life(int argc, char **argv)
{
	struct life L;
	bool sel[N_SCEN] = { false };
	json_t *minfo = NULL, *opts;
	const char *p = argv[0];
	char when[64];
	int rc = 0, need;
	time_t now = time(NULL);
	struct tm tmv;

	memset(&L, 0, sizeof L);
	L.o.n_prompt = 32;
	L.o.n_gen = 32;
	L.o.mode = MGR_MODE_MMAP;
	if (parse_args(&L.o, argc, argv))
		return 2;
	if (L.o.from_json) {
		/* draw a saved run again: no model, nothing measured */
		json_error_t je;
		struct dm_err e;
		json_t *r;
		if (!L.o.report_dir)
			return cli_fail("bench: --from needs --report DIR"), 2;
		if (!(r = json_load_file(L.o.from_json, 0, &je)))
			return cli_fail("%s:%d: %s", L.o.from_json, je.line, je.text);
		rc = life_report_write(r, L.o.report_dir, &e);
		json_decref(r);
		if (rc)
			return cli_fail("%s", e.msg);
		printf("report: %s/index.html\n", L.o.report_dir);
		return 0;
	}
	if (!L.o.model) {
		cli_life_usage(stderr);
		return 2;
	}
	if (L.o.quick) {
		/* fewer tokens per request too, unless asked for */
		bool has_n = false;
		for (int i = 1; i < argc; i++)
			has_n |= !strcmp(argv[i], "-n");
		if (!has_n)
			L.o.n_gen = 8;
	}
	while (*p) {
		size_t n = strcspn(p, ",");
		for (size_t i = 0; i < N_SCEN; i++)
			if ((n == 3 && !strncmp(p, "all", 3)) ||
			    (strlen(scenarios[i].name) == n && !strncmp(p, scenarios[i].name, n)))
				sel[i] = true;
		p += n;
		if (*p == ',')
			p++;
	}
	/* output folders first: a finished run must not be lost to a typo */
	if ((L.o.json_path && make_parent_dirs(L.o.json_path)) || (L.o.report_dir && make_dirs(L.o.report_dir)))
		return 1;
	L.progress = isatty(2);
	L.n_threads = L.o.n_threads > 0 ? L.o.n_threads : dm_cpu_physical_cores();
	need = 4200;
	if (L.o.n_ctx > need)
		need = L.o.n_ctx + 64;
	if (L.o.n_prompt + 64 > need)
		need = L.o.n_prompt + 64;
	if (model_info(&L, need, &minfo)) {
		rc = cli_fail("%s", L.err.msg);
		goto out;
	}
	/* the engine's default context: min(4096, the training context) */
	L.n_ctx = L.o.n_ctx > 0 ? L.o.n_ctx
		  : (L.n_ctx_train > 0 && L.n_ctx_train < 4096 ? L.n_ctx_train : 4096);
	if (L.o.n_prompt + L.o.n_gen >= L.n_ctx || L.o.n_prompt > L.n_text_ids) {
		rc = cli_fail("bench: -p %d + -n %d does not fit the context of %d tokens (--ctx)",
			      L.o.n_prompt, L.o.n_gen, L.n_ctx);
		goto out;
	}
	gmtime_r(&now, &tmv);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tmv);
	L.root = json_object();
	life_set(L.root, "tool", json_string("dormant bench"));
	life_set(L.root, "version", json_string(DORMANT_VERSION));
	life_set(L.root, "created", json_string(when));
	life_set(L.root, "machine", machine_json(&L));
	life_set(L.root, "model", minfo);
	minfo = NULL;
	opts = json_object();
	life_set(opts, "quick", json_boolean(L.o.quick));
	life_set(opts, "runs", json_integer(L.o.runs));
	life_set(opts, "threads", json_integer(L.n_threads));
	life_set(opts, "n_ctx", json_integer(L.n_ctx));
	life_set(opts, "n_batch", json_integer(L.o.n_batch));
	life_set(opts, "n_prompt", json_integer(L.o.n_prompt));
	life_set(opts, "n_gen", json_integer(L.o.n_gen));
	life_set(opts, "mode", json_string(mgr_mode_name(L.o.mode)));
	life_set(opts, "sampling", json_string("greedy"));
	life_set(L.root, "options", opts);
	L.scen = json_object();
	json_object_set(L.root, "scenarios", L.scen);

	printf("dormant bench: %s (%.1f MiB), %d threads, n_ctx %d%s\n", L.o.model,
	       L.file_bytes / 1048576.0, L.n_threads, L.n_ctx, L.o.quick ? ", quick" : "");
	printf("machine: %s, %d of %d logical CPUs, %.1f GiB RAM\n",
	       json_string_value(json_object_get(json_object_get(L.root, "machine"), "cpu")), L.n_threads,
	       (int)sysconf(_SC_NPROCESSORS_ONLN), ram_total() / 1073741824.0);
	fflush(stdout);
	for (size_t i = 0; i < N_SCEN; i++) {
		json_t *out;
		double t0;
		if (!sel[i])
			continue;
		L.cur = scenarios[i].name;
		printf("\n== %s: %s\n", scenarios[i].name, scenarios[i].help);
		fflush(stdout);
		out = json_object();
		t0 = life_now();
		rc = scenarios[i].run(&L, out);
		life_set(out, "elapsed_s", life_real(life_now() - t0));
		json_object_set_new(L.scen, scenarios[i].name, out);
		life_progress_end(&L);
		fflush(stdout);
		if (rc) {
			rc = cli_fail("bench %s: %s", scenarios[i].name, L.err.msg);
			break;
		}
	}
	life_set(json_object_get(L.root, "machine"), "loadavg_end", loadavg_json());
	if (L.o.json_path) {
		if (json_dump_file(L.root, L.o.json_path, JSON_INDENT(1) | JSON_REAL_PRECISION(10)) != 0) {
			rc = cli_fail("%s: cannot write the JSON: %s", L.o.json_path, strerror(errno));
			goto out;
		}
		printf("\njson: %s\n", L.o.json_path);
	}
	if (L.o.report_dir) {
		struct dm_err e;
		if (life_report_write(L.root, L.o.report_dir, &e)) {
			rc = cli_fail("%s", e.msg);
			goto out;
		}
		printf("report: %s/index.html\n", L.o.report_dir);
	}
out:
	json_decref(minfo);
	json_decref(L.scen);
	json_decref(L.root);
	free(L.text_ids);
	return rc;
}

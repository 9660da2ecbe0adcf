/*
 * bench/life — the lifecycle benchmark suite: options, the scenario table,
 * the measuring helpers every scenario shares, and the JSON tree (see
 * bench.h for the whole picture).
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
#include "bench/bench.h"

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
#include "dormant.h"
#include "gguf/gguf.h"
#include "kern/kern.h"
#include "model/gen.h"
#include "model/model.h"
#include "tok/tok.h"

struct bench_scenario {
	const char *name;
	const char *help;
	int (*run)(struct bench *L, json_t *out);
};

/* The suite, in the order `all` runs it.  The server's `server` scenario
 * (HTTP overhead vs in process) goes here as one more line. */
static const struct bench_scenario scenarios[] = {
	{ "cold", "dormant -> load, first token, first generation; page cache dropped vs cached; mmap, read, prefetch", bench_cold },
	{ "warm", "N consecutive generations on the loaded model: mean, median, min, max, stddev", bench_warm },
	{ "context", "latency and prefill tok/s vs prompt length, fitted line", bench_context },
	{ "max-tokens", "latency and tok/s vs generated tokens (EOS ignored), fitted line", bench_max_tokens },
	{ "memory", "RSS anon/file and page cache: start, load, generations, long conversation, unload", bench_memory },
	{ "warmup", "first-request latency with warm-up on vs off (A/B, alternating)", bench_warmup },
	{ "threads", "prefill and decode tok/s vs threads", bench_threads },
	{ "batch", "prefill tok/s vs n_batch", bench_batch },
	{ "ctx", "memory and decode tok/s vs n_ctx", bench_ctx },
	{ "policies", "a scripted day under eager, lazy, on-demand, keep-alive: latency vs memory-seconds; then a RAG day (embed, rerank, generate per question) under one budget: LRU vs roles vs a pinned chat model", bench_policies },
	{ "chat", "a multi-turn conversation: time to first token per turn, kept loaded or on demand, with and without the prompt cache", bench_chat },
	{ "server", "HTTP overhead vs the in-process call, /health round trip, serve start-up", bench_server },
};
#define N_SCEN (sizeof scenarios / sizeof scenarios[0])

/* ---- small helpers ---- */

double bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int bench_runs(const struct bench *L, int full, int quick)
{
	if (L->o.runs > 0)
		return L->o.runs;
	return L->o.quick ? quick : full;
}

void bench_progress(struct bench *L, int done, int total)
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

void bench_progress_end(struct bench *L)
{
	if (!L->progress_shown)
		return;
	fprintf(stderr, "\r%*s\r", 60, "");
	fflush(stderr);
	L->progress_shown = false;
}

json_t *bench_real(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

void bench_set(json_t *obj, const char *key, json_t *value)
{
	if (value)
		json_object_set_new(obj, key, value);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double bench_median(double *v, int n)
{
	if (n <= 0)
		return 0;
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void bench_stats(const double *v, int n, struct bench_stats *s)
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

json_t *bench_stats_json(const struct bench_stats *s)
{
	json_t *o = json_object();
	bench_set(o, "n", json_integer(s->n));
	bench_set(o, "mean", bench_real(s->mean));
	bench_set(o, "median", bench_real(s->median));
	bench_set(o, "min", bench_real(s->min));
	bench_set(o, "max", bench_real(s->max));
	bench_set(o, "stddev", bench_real(s->stddev));
	return o;
}

void bench_fit_line(const double *x, const double *y, int n, struct bench_fit *f)
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

json_t *bench_fit_json(const struct bench_fit *f, const char *fixed_name, const char *slope_name)
{
	json_t *o = json_object();
	bench_set(o, "n", json_integer(f->n));
	bench_set(o, "ok", json_boolean(f->ok));
	bench_set(o, fixed_name, f->ok ? bench_real(f->fixed) : json_null());
	bench_set(o, slope_name, f->ok ? bench_real(f->slope) : json_null());
	bench_set(o, "r2", f->ok ? bench_real(f->r2) : json_null());
	return o;
}

void bench_mem_now(const struct bench *L, double t0, struct bench_mem *m)
{
	struct dm_mem_usage u;
	uint64_t size = 0;

	dm_mem_usage(&u);
	memset(m, 0, sizeof *m);
	m->t_s = bench_now() - t0;
	m->rss = u.rss;
	m->rss_anon = u.rss_anon;
	m->rss_file = u.rss_file;
	dm_file_cached(L->o.model, &m->file_cached, &size);
}

json_t *bench_mem_json(const struct bench_mem *m, const char *label)
{
	json_t *o = json_object();
	if (label)
		bench_set(o, "label", json_string(label));
	bench_set(o, "t_s", bench_real(m->t_s));
	bench_set(o, "rss_bytes", json_integer((json_int_t)m->rss));
	bench_set(o, "rss_anon_bytes", json_integer((json_int_t)m->rss_anon));
	bench_set(o, "rss_file_bytes", json_integer((json_int_t)m->rss_file));
	bench_set(o, "file_cached_bytes", json_integer((json_int_t)m->file_cached));
	return o;
}

uint64_t bench_cache_drop(const struct bench *L)
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

uint64_t bench_cache_fill(const struct bench *L)
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

void bench_model_cfg(const struct bench *L, struct mgr_model_cfg *mc, const char *name)
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

int bench_mgr_init(struct bench *L, struct mgr **m, uint64_t (*now_ms)(void *), void *clock_ud)
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

const int32_t *bench_prompt(const struct bench *L, int n)
{
	DM_CHECK(n >= 1 && n <= L->n_text_ids); /* the scenarios cap their lengths */
	return L->text_ids;
}

/* Greedy decoding that never picks an end-of-generation token, so a request
 * runs to its length (or to a full context).  The same steps as gen_run:
 * prefill, then per token argmax, streaming detokenization, one decode. */
static int gen_to_length(struct engine *en, const int32_t *ids, int n_ids, int n_predict,
			 bool keep, struct bench_req *r, struct dm_err *err)
{
	struct model_ctx *c = en->ctx;
	const int32_t V = en->m->hp.n_vocab;
	float *lg = malloc((size_t)V * sizeof *lg);
	int32_t eog[64];
	int n_eog = 0, rc = 0;
	struct tok_decoder dec;
	double t0 = bench_now(), t1;

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
	t1 = bench_now();
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
			r->ttft_s = bench_now() - t0;
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
	r->gen_s = bench_now() - t1;
out:
	tok_decoder_free(&dec);
	free(lg);
	return rc;
}

int bench_generate(struct engine *en, const int32_t *ids, int n_ids, int n_predict, unsigned flags,
		  struct bench_req *r, struct dm_err *err)
{
	int rc;

	if (flags & BENCH_IGNORE_EOS) {
		if ((rc = gen_to_length(en, ids, n_ids, n_predict, flags & BENCH_KEEP_CACHE, r, err)))
			return rc;
	} else {
		struct gen_params gp;
		struct gen_stats st;
		gen_params_default(&gp);
		gp.sample.temp = 0;
		gp.n_predict = n_predict;
		gp.keep_cache = flags & BENCH_KEEP_CACHE;
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

int bench_request(struct bench *L, struct mgr *m, const char *name, const struct mgr_acquire_opts *ao,
		 const int32_t *ids, int n_ids, int n_predict, unsigned flags, struct bench_req *r)
{
	struct mgr_lease *l;
	double t0, t1, t2;
	int rc;

	memset(r, 0, sizeof *r);
	t0 = bench_now();
	if ((rc = mgr_acquire(m, name, ao, &l, &L->err)))
		return rc;
	t1 = bench_now();
	r->wait_s = t1 - t0;
	r->cold = mgr_lease_cold(l);
	r->load_s = mgr_lease_load_s(l);
	rc = bench_generate(mgr_lease_handle(l), ids, n_ids, n_predict, flags, r, &L->err);
	t2 = bench_now();
	r->ttft_s += r->wait_s;
	r->latency_s = t2 - t0;
	mgr_release(l);
	r->release_s = bench_now() - t2;
	return rc;
}

json_t *bench_req_json(const struct bench_req *r)
{
	json_t *o = json_object();
	bench_set(o, "cold", json_boolean(r->cold));
	bench_set(o, "load_s", bench_real(r->load_s));
	bench_set(o, "wait_s", bench_real(r->wait_s));
	bench_set(o, "ttft_s", bench_real(r->ttft_s));
	bench_set(o, "latency_s", bench_real(r->latency_s));
	bench_set(o, "prompt_s", bench_real(r->prompt_s));
	bench_set(o, "gen_s", bench_real(r->gen_s));
	bench_set(o, "release_s", bench_real(r->release_s));
	bench_set(o, "n_prompt", json_integer(r->n_prompt));
	bench_set(o, "n_gen", json_integer(r->n_gen));
	bench_set(o, "prefill_tok_s", bench_real(r->prefill_tok_s));
	bench_set(o, "tok_s", bench_real(r->tok_s));
	bench_set(o, "stop", json_string(r->stop));
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

static json_t *machine_json(const struct bench *L)
{
	char cpu[256];
	struct utsname u;
	json_t *o = json_object();

	cpu_model(cpu, sizeof cpu);
	bench_set(o, "cpu", json_string(cpu));
	bench_set(o, "cores_used", json_integer(L->n_threads));
	bench_set(o, "physical_cores", json_integer(dm_cpu_physical_cores()));
	bench_set(o, "logical_cpus", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
	bench_set(o, "ram_bytes", json_integer((json_int_t)ram_total()));
	bench_set(o, "isa", json_string(kern_isa_name(kern_isa_best())));
	if (uname(&u) == 0) {
		char k[300];
		snprintf(k, sizeof k, "%s %s %s", u.sysname, u.release, u.machine);
		bench_set(o, "kernel", json_string(k));
	}
	bench_set(o, "loadavg_start", loadavg_json());
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
static int model_info(struct bench *L, int need, json_t **out)
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
	bench_set(o, "path", json_string(L->o.model));
	bench_set(o, "name", json_string(name));
	bench_set(o, "arch", json_string(m->hp.arch_name));
	bench_set(o, "file_bytes", json_integer((json_int_t)g->size));
	bench_set(o, "weight_bytes", json_integer((json_int_t)m->weight_bytes));
	bench_set(o, "weight_type", json_string(gguf_type_get(m->layers[0].wq.type)
						       ? gguf_type_get(m->layers[0].wq.type)->name : "?"));
	bench_set(o, "n_layer", json_integer(m->hp.n_layer));
	bench_set(o, "n_embd", json_integer(m->hp.n_embd));
	bench_set(o, "n_vocab", json_integer(m->hp.n_vocab));
	bench_set(o, "n_ctx_train", json_integer(m->hp.n_ctx_train));
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

bool bench_is_scenario(const char *list)
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

void bench_usage(FILE *f)
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

/* Creates dir and its parents (mkdir -p) and checks it is writable, so that
 * an output path is known good before minutes of measuring, not after. */
static int make_dirs(const char *dir, struct dm_err *err)
{
	char buf[4096];
	size_t n = strlen(dir);
	if (!n)
		return 0;
	if (n >= sizeof buf)
		return dm_err_set(err, DM_ERANGE, "%s: path too long", dir);
	memcpy(buf, dir, n + 1);
	for (char *q = buf + 1;; q++) {
		bool end = !*q;
		if (*q != '/' && !end)
			continue;
		*q = '\0';
		if (mkdir(buf, 0777) != 0 && errno != EEXIST)
			return dm_err_set(err, DM_EIO, "%s: cannot create the folder: %s", buf, strerror(errno));
		if (end)
			break;
		*q = '/';
	}
	if (access(dir, W_OK) != 0)
		return dm_err_set(err, DM_EIO, "%s: cannot write there: %s", dir, strerror(errno));
	return 0;
}

static int make_parent_dirs(const char *path, struct dm_err *err)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	if (!slash || slash == path)
		return slash || !access(".", W_OK) ? 0
						   : dm_err_set(err, DM_EIO, ".: cannot write there: %s", strerror(errno));
	if ((size_t)(slash - path) >= sizeof dir)
		return dm_err_set(err, DM_ERANGE, "%s: path too long", path);
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	return make_dirs(dir, err);
}

int bench_redraw(const char *json_path, const char *report_dir, struct dm_err *err)
{
	json_error_t je;
	json_t *r;
	int rc;
	if (!(r = json_load_file(json_path, 0, &je)))
		return dm_err_set(err, DM_EFORMAT, "%s:%d: %s", json_path, je.line, je.text);
	rc = bench_report_write(r, report_dir, err);
	json_decref(r);
	return rc;
}

int bench_run(const struct bench_opts *o, struct dm_err *err)
{
	struct bench L;
	bool sel[N_SCEN] = { false };
	json_t *minfo = NULL, *opts;
	const char *p = o->scenarios;
	char when[64];
	int rc = 0, need;
	time_t now = time(NULL);
	struct tm tmv;

	memset(&L, 0, sizeof L);
	L.o = *o;
	if (!L.o.out)
		L.o.out = stdout;
	if (!L.o.model || !p || !bench_is_scenario(p))
		return dm_err_set(err, DM_EINVAL, "bench: a scenario list and a model are needed");
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
	if ((L.o.json_path && make_parent_dirs(L.o.json_path, err)) ||
	    (L.o.report_dir && make_dirs(L.o.report_dir, err)))
		return err ? err->code : DM_EIO;
	L.progress = isatty(2);
	L.n_threads = L.o.n_threads > 0 ? L.o.n_threads : dm_cpu_physical_cores();
	need = 4200;
	if (L.o.n_ctx > need)
		need = L.o.n_ctx + 64;
	if (L.o.n_prompt + 64 > need)
		need = L.o.n_prompt + 64;
	if (model_info(&L, need, &minfo)) {
		rc = dm_err_set(err, L.err.code ? L.err.code : DM_EIO, "%s", L.err.msg);
		goto out;
	}
	/* the engine's default context: min(4096, the training context) */
	L.n_ctx = L.o.n_ctx > 0 ? L.o.n_ctx
		  : (L.n_ctx_train > 0 && L.n_ctx_train < 4096 ? L.n_ctx_train : 4096);
	if (L.o.n_prompt + L.o.n_gen >= L.n_ctx || L.o.n_prompt > L.n_text_ids) {
		rc = dm_err_set(err, DM_ERANGE, "bench: -p %d + -n %d does not fit the context of %d tokens (--ctx)",
				L.o.n_prompt, L.o.n_gen, L.n_ctx);
		goto out;
	}
	gmtime_r(&now, &tmv);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tmv);
	L.root = json_object();
	bench_set(L.root, "tool", json_string("dormant bench"));
	bench_set(L.root, "version", json_string(DORMANT_VERSION));
	bench_set(L.root, "created", json_string(when));
	bench_set(L.root, "machine", machine_json(&L));
	bench_set(L.root, "model", minfo);
	minfo = NULL;
	opts = json_object();
	bench_set(opts, "quick", json_boolean(L.o.quick));
	bench_set(opts, "runs", json_integer(L.o.runs));
	bench_set(opts, "threads", json_integer(L.n_threads));
	bench_set(opts, "n_ctx", json_integer(L.n_ctx));
	bench_set(opts, "n_batch", json_integer(L.o.n_batch));
	bench_set(opts, "n_prompt", json_integer(L.o.n_prompt));
	bench_set(opts, "n_gen", json_integer(L.o.n_gen));
	bench_set(opts, "mode", json_string(mgr_mode_name(L.o.mode)));
	bench_set(opts, "sampling", json_string("greedy"));
	bench_set(L.root, "options", opts);
	L.scen = json_object();
	json_object_set(L.root, "scenarios", L.scen);

	fprintf(L.o.out, "dormant bench: %s (%.1f MiB), %d threads, n_ctx %d%s\n", L.o.model,
	       L.file_bytes / 1048576.0, L.n_threads, L.n_ctx, L.o.quick ? ", quick" : "");
	fprintf(L.o.out, "machine: %s, %d of %d logical CPUs, %.1f GiB RAM\n",
	       json_string_value(json_object_get(json_object_get(L.root, "machine"), "cpu")), L.n_threads,
	       (int)sysconf(_SC_NPROCESSORS_ONLN), ram_total() / 1073741824.0);
	fflush(L.o.out);
	for (size_t i = 0; i < N_SCEN; i++) {
		json_t *out;
		double t0;
		if (!sel[i])
			continue;
		L.cur = scenarios[i].name;
		fprintf(L.o.out, "\n== %s: %s\n", scenarios[i].name, scenarios[i].help);
		fflush(L.o.out);
		out = json_object();
		t0 = bench_now();
		rc = scenarios[i].run(&L, out);
		bench_set(out, "elapsed_s", bench_real(bench_now() - t0));
		json_object_set_new(L.scen, scenarios[i].name, out);
		bench_progress_end(&L);
		fflush(L.o.out);
		if (rc) {
			rc = dm_err_set(err, L.err.code ? L.err.code : DM_EIO, "bench %s: %s", scenarios[i].name,
					L.err.msg);
			break;
		}
	}
	bench_set(json_object_get(L.root, "machine"), "loadavg_end", loadavg_json());
	/* what was measured is written even after a failure, which stays the
	 * one reported */
	if (L.o.json_path) {
		if (json_dump_file(L.root, L.o.json_path, JSON_INDENT(1) | JSON_REAL_PRECISION(10)) != 0) {
			if (!rc)
				rc = dm_err_set(err, DM_EIO, "%s: cannot write the JSON: %s", L.o.json_path,
						strerror(errno));
			goto out;
		}
		fprintf(L.o.out, "\njson: %s\n", L.o.json_path);
	}
	if (L.o.report_dir) {
		struct dm_err later;
		int wrc = bench_report_write(L.root, L.o.report_dir, rc ? &later : err);
		if (wrc) {
			if (!rc)
				rc = wrc;
			goto out;
		}
		fprintf(L.o.out, "report: %s/index.html\n", L.o.report_dir);
	}
out:
	json_decref(minfo);
	json_decref(L.scen);
	json_decref(L.root);
	free(L.text_ids);
	return rc;
}

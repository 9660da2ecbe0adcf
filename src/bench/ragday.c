/*
 * bench/ragday — the RAG day of `dormant bench policies`: per question,
 * embed the query (an embedder), rerank passages (a reranker), then
 * generate (the chat model under test), all three through one manager with
 * a memory budget, under residency setups that differ only in how the
 * manager chooses what to evict:
 *
 *   room for all  max_ram fits the three models: each loads once (the
 *                 reference for latency and memory)
 *   LRU           max_ram fits the chat model and one encoder; every model
 *                 registered with one role, so eviction is plain least
 *                 recently used
 *   roles         the same budget, roles from the files (generate, embed,
 *                 rerank): eviction tries the loading model's role class
 *                 first (generation, or retrieval: embed and rerank)
 *   roles + pin   the same, with the chat model pinned (never evicted)
 *
 * The encoders are synthetic (model/synth: the tiny shape with --quick,
 * else all-MiniLM-L6-v2's), written to a temporary folder and removed
 * after.  Questions run back to back on the real clock (no idle gaps:
 * keep-alive never expires), so every reload is an eviction's price.
 * Reported per setup: loads and evictions per model, chat-model reloads,
 * p50 / p95 latency per question (the three steps, loads included) and the
 * RSS above the process before the manager loaded anything (peak and mean
 * of the value after each question).  The rerank input is query and
 * passage as one WordPiece sequence ([CLS] q [SEP] d [SEP]): the same work
 * as dormant_rerank's layout within a token.
 */
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "bench/bench.h"
#include "model/synth.h"
#include "tok/tok.h"

#define MiB(x) ((double)(x) / 1048576.0)
#define N_PASS 10 /* passages reranked per question */

static const char *const passages[N_PASS] = {
	"Bees make honey from the nectar of flowers, which they carry back to the hive.",
	"A volcano erupts when pressure from gas and magma under the crust builds up.",
	"Bread rises because yeast turns sugar into carbon dioxide.",
	"Trains became fast when electric traction and welded rails arrived.",
	"Rivers flood in spring when snow melts in the mountains.",
	"Honey keeps for years because it holds little water and much sugar.",
	"Lava is molten rock that flows out of a volcano.",
	"Sourdough uses wild yeast and bacteria instead of baker's yeast.",
	"High-speed lines need gentle curves and no level crossings.",
	"A river delta forms where the current slows and drops its sand.",
};

static const char *const questions[] = {
	"how do bees make honey",         "why do volcanoes erupt",      "why does bread rise",
	"when did trains become fast",    "why do rivers flood",         "how long does honey keep",
	"what is lava",                   "what is sourdough",           "what makes a railway fast",
	"how does a river delta form",
};
#define N_QUESTIONS (sizeof questions / sizeof questions[0])

struct setup {
	const char *name;
	bool all_fit;   /* max_ram: the three models, else chat + the larger encoder */
	bool roles;     /* roles from the files, else one role for all */
	bool pin_chat;
};

static const struct setup setups[] = {
	{ "room for all", true, true, false },
	{ "LRU", false, false, false },
	{ "roles", false, true, false },
	{ "roles + pin", false, true, true },
};
#define N_SETUPS (sizeof setups / sizeof setups[0])

static const char *const names[3] = { "chat", "embed", "rerank" };

/* Nearest-rank percentile p (0..100] of v[0..n), sorted in place. */
static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double percentile(double *v, int n, double p)
{
	int k;
	if (n <= 0)
		return 0;
	qsort(v, (size_t)n, sizeof *v, cmp_d);
	k = (int)ceil(p / 100.0 * n) - 1;
	return v[k < 0 ? 0 : (k >= n ? n - 1 : k)];
}

static uint64_t rss_now(void)
{
	struct dm_mem_usage u;
	dm_mem_usage(&u);
	return u.rss;
}

/* Writes the embedder and the reranker into dir. */
static int write_encoders(struct bench *L, const char *dir, char paths[2][600])
{
	struct synth_opts so;
	int rc;

	for (int i = 0; i < 2; i++) {
		memset(&so, 0, sizeof so);
		if ((rc = synth_preset(L->o.quick ? "tiny" : "minilm", &so.shape, &L->err)))
			return rc;
		so.arch = "bert";
		so.type = GGUF_TYPE_Q8_0;
		so.rank = i == 1;
		so.seed = 11 + (uint64_t)i;
		snprintf(paths[i], sizeof paths[i], "%s/%s.gguf", dir, i ? "rerank" : "embed");
		if ((rc = synth_write(&so, paths[i], &L->err)))
			return rc;
	}
	return 0;
}

/* Step 1: the query's embedding (its pooled vector; the search over an
 * index is not what is measured). */
static int embed_query(struct engine *en, const char *q, struct dm_err *err)
{
	const struct model_hparams *hp = &en->m->hp;
	float *out = malloc((size_t)hp->n_embd * sizeof *out);
	int32_t *ids = NULL, len;
	size_t n = 0;
	int rc;

	if (!out)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	rc = tok_encode(en->v, q, strlen(q), TOK_ADD_SPECIAL, &ids, &n, err);
	len = (int32_t)n;
	if (!rc)
		rc = model_encode(en->ctx, ids, &len, 1, hp->pooling ? MODEL_POOL_NONE : MODEL_POOL_MEAN, out, err);
	free(ids);
	free(out);
	return rc;
}

/* Step 2: one score per passage, all pairs in one encode call. */
static int rerank_passages(struct engine *en, const char *q, struct dm_err *err)
{
	int32_t *ids = NULL, *qi = NULL, lens[N_PASS], sep = tok_sep(en->v);
	size_t n_ids = 0, nq = 0;
	float out[N_PASS * 4];
	int rc;

	if (en->m->hp.n_cls_out < 1 || en->m->hp.n_cls_out > 4)
		return dm_err_set(err, DM_EUNSUPPORTED, "rag day: the reranker's head has %d outputs",
				  en->m->hp.n_cls_out);
	if ((rc = tok_encode(en->v, q, strlen(q), TOK_ADD_SPECIAL, &qi, &nq, err)))
		return rc;
	for (int i = 0; i < N_PASS && !rc; i++) {
		int32_t *di = NULL, *p;
		size_t nd = 0;
		if ((rc = tok_encode(en->v, passages[i], strlen(passages[i]), 0, &di, &nd, err)))
			break;
		if (!(p = realloc(ids, (n_ids + nq + nd + 1) * sizeof *ids))) {
			free(di);
			rc = dm_err_set(err, DM_ENOMEM, "out of memory");
			break;
		}
		ids = p;
		memcpy(ids + n_ids, qi, nq * sizeof *ids);
		memcpy(ids + n_ids + nq, di, nd * sizeof *ids);
		ids[n_ids + nq + nd] = sep;
		lens[i] = (int32_t)(nq + nd + 1);
		n_ids += nq + nd + 1;
		free(di);
	}
	if (!rc)
		rc = model_encode(en->ctx, ids, lens, N_PASS, MODEL_POOL_RANK, out, err);
	free(qi);
	free(ids);
	return rc;
}

/* Step 3: the answer, the chat model's ordinary request. */
static int answer(struct bench *L, struct engine *en, struct dm_err *err)
{
	struct bench_req q;
	memset(&q, 0, sizeof q);
	return bench_generate(en, bench_prompt(L, L->o.n_prompt), L->o.n_prompt, L->o.n_gen, 0, &q, err);
}

/* One question: the three steps, each a lease of its model. */
static int question(struct bench *L, struct mgr *m, const char *q)
{
	for (int step = 1; step <= 3; step++) {
		const char *name = names[step % 3]; /* embed, rerank, chat */
		struct mgr_lease *l;
		int rc;
		if ((rc = mgr_acquire(m, name, NULL, &l, &L->err)))
			return rc;
		if (step == 1)
			rc = embed_query(mgr_lease_handle(l), q, &L->err);
		else if (step == 2)
			rc = rerank_passages(mgr_lease_handle(l), q, &L->err);
		else
			rc = answer(L, mgr_lease_handle(l), &L->err);
		mgr_release(l);
		if (rc)
			return rc;
	}
	return 0;
}

static int run_setup(struct bench *L, const struct setup *su, char paths[2][600], int n_q, json_t *results)
{
	struct mgr_model_cfg mc[3];
	struct mgr_cfg c;
	struct mgr *m = NULL;
	uint64_t est[3] = { 0 }, rss0;
	double *lat = calloc((size_t)n_q, sizeof *lat), peak = 0, sum_held = 0;
	json_t *o, *models, *samples;
	int rc;

	if (!lat)
		return dm_err_set(&L->err, DM_ENOMEM, "out of memory");
	for (int i = 0; i < 3; i++) {
		if (i == 0) {
			bench_model_cfg(L, &mc[0], names[0]);
		} else {
			mgr_model_cfg_default(&mc[i]);
			snprintf(mc[i].name, sizeof mc[i].name, "%s", names[i]);
			snprintf(mc[i].path, sizeof mc[i].path, "%s", paths[i - 1]);
			mc[i].n_threads = L->n_threads;
			mc[i].warmup = 0;
			mc[i].mode = L->o.mode;
		}
		mc[i].keep_alive_ms = MGR_KEEP_FOREVER;
		mc[i].role = !su->roles || i == 0 ? MGR_ROLE_GENERATE : (i == 1 ? MGR_ROLE_EMBED : MGR_ROLE_RERANK);
		mc[i].pin = i == 0 && su->pin_chat;
	}
	/* the budget comes from the manager's own estimates */
	memset(&c, 0, sizeof c);
	c.no_reaper = true;
	c.keep_alive_max_ms = -1;
	c.queue_timeout_ms = 600000;
	mgr_engine_backend(&c.backend, &L->bc);
	if ((rc = mgr_init(&m, &c, &L->err)))
		goto out;
	for (int i = 0; i < 3; i++)
		if ((rc = mgr_add(m, &mc[i], &L->err)) || (rc = mgr_check_model(m, names[i], &est[i], &L->err)))
			goto out;
	mgr_free(m);
	m = NULL;
	c.max_ram = est[0] + est[1] + est[2];
	if (!su->all_fit)
		c.max_ram = est[0] + (est[1] > est[2] ? est[1] : est[2]) + (1u << 20);
	if ((rc = mgr_init(&m, &c, &L->err)))
		goto out;
	for (int i = 0; i < 3; i++)
		if ((rc = mgr_add(m, &mc[i], &L->err)))
			goto out;
	malloc_trim(0);
	rss0 = rss_now();
	samples = json_array();
	for (int k = 0; k < n_q; k++) {
		double t0 = bench_now(), held;
		uint64_t r;
		if ((rc = question(L, m, questions[(size_t)k % N_QUESTIONS]))) {
			json_decref(samples);
			goto out;
		}
		lat[k] = bench_now() - t0;
		r = rss_now();
		held = r > rss0 ? (double)(r - rss0) : 0;
		peak = held > peak ? held : peak;
		sum_held += held;
		json_array_append_new(samples, json_pack("{s:f,s:f}", "latency_s", lat[k], "held_bytes", held));
	}
	o = json_object();
	models = json_object();
	for (int i = 0; i < 3; i++) {
		struct mgr_model_status st[3];
		size_t n = mgr_status(m, st, 3);
		for (size_t j = 0; j < n && j < 3; j++)
			if (!strcmp(st[j].name, names[i]))
				bench_set(models, names[i],
					 json_pack("{s:I,s:I,s:I,s:I,s:s}", "est_bytes", (json_int_t)est[i], "loads",
						   (json_int_t)st[j].load_count, "unloads", (json_int_t)st[j].unload_count,
						   "evictions", (json_int_t)st[j].evict_count, "state",
						   mgr_state_name(st[j].state)));
	}
	bench_set(o, "setup", json_string(su->name));
	bench_set(o, "roles", json_boolean(su->roles));
	bench_set(o, "pin_chat", json_boolean(su->pin_chat));
	bench_set(o, "max_ram_bytes", json_integer((json_int_t)c.max_ram));
	bench_set(o, "questions", json_integer(n_q));
	bench_set(o, "models", models);
	bench_set(o, "chat_reloads",
		 json_integer(json_integer_value(json_object_get(json_object_get(models, "chat"), "loads")) - 1));
	bench_set(o, "peak_held_bytes", bench_real(peak));
	bench_set(o, "mean_held_bytes", bench_real(n_q ? sum_held / n_q : 0));
	bench_set(o, "samples", samples);
	bench_set(o, "p50_latency_s", bench_real(percentile(lat, n_q, 50)));
	bench_set(o, "p95_latency_s", bench_real(percentile(lat, n_q, 95)));
	json_array_append_new(results, o);
out:
	mgr_free(m);
	free(lat);
	return rc;
}

int bench_rag_day(struct bench *L, json_t *out)
{
	const int n_q = L->o.quick ? 6 : 20;
	char dir[512], paths[2][600];
	json_t *results = json_array();
	int rc;

	snprintf(dir, sizeof dir, "%s/dormant-ragday-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	bench_set(out, "rag_day", json_pack("{s:i,s:i,s:o}", "questions", n_q, "passages", N_PASS, "setups", results));
	if (!mkdtemp(dir))
		return dm_err_set(&L->err, DM_EIO, "rag day: %s: %s", dir, strerror(errno));
	paths[0][0] = paths[1][0] = '\0';
	rc = write_encoders(L, dir, paths);
	for (size_t i = 0; !rc && i < N_SETUPS; i++) {
		bench_progress(L, (int)i, (int)N_SETUPS);
		rc = run_setup(L, &setups[i], paths, n_q, results);
	}
	for (int i = 0; i < 2; i++)
		if (paths[i][0])
			unlink(paths[i]);
	rmdir(dir);
	if (rc)
		return rc;
	bench_progress_end(L);
	fprintf(L->o.out, "\nRAG day: %d questions back to back, each embed -> rerank %d passages -> generate (%d + %d tokens)\n",
	       n_q, N_PASS, L->o.n_prompt, L->o.n_gen);
	fprintf(L->o.out, "%-13s %9s %6s %6s %6s %9s %9s %9s %9s %9s\n", "setup", "max_ram", "chat", "embed", "rerank",
	       "reloads", "p50 s", "p95 s", "peak MiB", "mean MiB");
	for (size_t i = 0; i < json_array_size(results); i++) {
		json_t *o = json_array_get(results, i), *ms = json_object_get(o, "models");
#define LOADS(k) (int)json_integer_value(json_object_get(json_object_get(ms, k), "loads"))
		fprintf(L->o.out, "%-13s %9.1f %6d %6d %6d %9d %9.4f %9.4f %9.1f %9.1f\n",
		       json_string_value(json_object_get(o, "setup")),
		       MiB(json_integer_value(json_object_get(o, "max_ram_bytes"))), LOADS("chat"), LOADS("embed"),
		       LOADS("rerank"), (int)json_integer_value(json_object_get(o, "chat_reloads")),
		       json_real_value(json_object_get(o, "p50_latency_s")),
		       json_real_value(json_object_get(o, "p95_latency_s")),
		       MiB(json_real_value(json_object_get(o, "peak_held_bytes"))),
		       MiB(json_real_value(json_object_get(o, "mean_held_bytes"))));
#undef LOADS
	}
	fprintf(L->o.out, "(chat, embed, rerank: loads of each model; reloads: of the chat model; max_ram in MiB; "
	       "memory = RSS above the idle process after each question)\n");
	return 0;
}

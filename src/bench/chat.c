/*
 * bench/chat — `dormant bench chat`: a multi-turn conversation on the
 * model, each turn's prompt the whole history (earlier prompts, the
 * model's replies, a new user message), run four ways:
 *   fresh    kept loaded, every turn prefills its whole history (a runtime
 *            that starts each request from an empty cache)
 *   reuse    kept loaded, the prompt cache: a turn prefills only what is new
 *   od       on demand (keep_alive 0, kv_persist off): every turn loads the
 *            model and prefills its whole history
 *   od_kv    on demand with kv_persist = disk: every turn loads the model,
 *            maps the saved cache back and prefills only what is new
 * Time to first token per turn (the load included for the on-demand ways),
 * the tokens each turn evaluated, and the RSS after each on-demand turn
 * against the RSS before the conversation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <unistd.h>

#include "base/mem.h"
#include "bench/bench.h"
#include "model/gen.h"

struct chat_collect {
	int32_t *ids;
	int n, cap;
};

static int collect(void *ud, int32_t id, const char *text, size_t n)
{
	struct chat_collect *c = ud;
	(void)text;
	(void)n;
	if (id >= 0 && c->n < c->cap)
		c->ids[c->n++] = id;
	return 0;
}

static uint64_t rss_bytes(void)
{
	struct dm_mem_usage u;
	return dm_mem_usage(&u) == 0 ? u.rss : 0;
}

/* One conversation of `turns` turns; ttft[t], evaluated[t], n_prompt[t]
 * and (rss not NULL) the RSS after the turn's release, per turn. */
static int run_chat(struct bench *L, struct mgr *m, const char *name, bool reuse, int turns, int n_user,
		    int n_gen, double *ttft, int *evaluated, int *n_prompt, uint64_t *rss)
{
	const int32_t *text = bench_prompt(L, L->n_text_ids);
	int cap = turns * (n_user + n_gen) + 8, n_hist = 0, rc = 0;
	int32_t *hist = malloc((size_t)cap * sizeof *hist);
	struct chat_collect col = { malloc((size_t)(n_gen + 1) * sizeof(int32_t)), 0, n_gen };

	if (!hist || !col.ids) {
		rc = dm_err_set(&L->err, DM_ENOMEM, "out of memory");
		goto out;
	}
	for (int t = 0; t < turns; t++) {
		struct mgr_lease *l;
		struct engine *en;
		struct gen_params gp;
		struct gen_stats st;
		double t0, t1;
		/* the user's message: the next n_user tokens of the text (BOS
		 * only at the start of the conversation) */
		for (int i = 0; i < n_user; i++)
			hist[n_hist++] = text[(t == 0 ? 0 : 1) + (t * n_user + i) % (L->n_text_ids - 1)];
		t0 = bench_now();
		if ((rc = mgr_acquire(m, name, NULL, &l, &L->err)))
			goto out;
		t1 = bench_now();
		en = mgr_lease_handle(l);
		gen_params_default(&gp);
		gp.sample.temp = 0;
		gp.n_predict = n_gen;
		gp.reuse_prefix = reuse;
		col.n = 0;
		rc = gen_run(en->ctx, en->v, hist, (size_t)n_hist, &gp, collect, &col, NULL, &st, &L->err);
		if (!reuse)
			model_ctx_reset(en->ctx);
		mgr_release(l);
		if (rc)
			goto out;
		if (rss) {
			malloc_trim(0);
			rss[t] = rss_bytes();
		}
		ttft[t] = (t1 - t0) + st.t_first_token_s;
		evaluated[t] = st.n_prompt - st.n_cached;
		n_prompt[t] = st.n_prompt;
		/* the reply joins the history */
		for (int i = 0; i < col.n && n_hist < cap; i++)
			hist[n_hist++] = col.ids[i];
	}
out:
	free(hist);
	free(col.ids);
	return rc;
}

int bench_chat(struct bench *L, json_t *out)
{
	static const char *const way[4] = { "fresh", "reuse", "od", "od_kv" };
	const int turns_want = L->o.quick ? 4 : 10, n_gen = L->o.quick ? 8 : 40;
	int n_user = L->o.quick ? 24 : 150, turns = turns_want, rc;
	double ttft[4][16];
	int evaluated[4][16], n_prompt[4][16];
	uint64_t rss[4][16], rss0 = 0;
	json_t *table = json_array();
	struct mgr *m = NULL;
	char kv_dir[1024] = "", old_kv[1024];
	bool had_kv = false;

	/* the whole conversation must fit the context and the text */
	while (turns > 2 && turns * (n_user + n_gen) + 8 > L->n_ctx)
		turns--;
	if (turns * (n_user + n_gen) + 8 > L->n_ctx)
		n_user = (L->n_ctx - 8) / turns - n_gen;
	if (n_user < 1 || L->n_text_ids < 2)
		return dm_err_set(&L->err, DM_EINVAL, "chat: a context of %d is too small for a conversation",
				  L->n_ctx);
	memset(rss, 0, sizeof rss);
	/* the on-demand passes save their caches in a folder of their own:
	 * none left by earlier runs or scenarios, none left behind */
	{
		const char *old = getenv("DORMANT_KV_DIR");
		snprintf(old_kv, sizeof old_kv, "%s", old ? old : "");
		had_kv = old != NULL;
		snprintf(kv_dir, sizeof kv_dir, "%s/dormant-chat-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
		if (!mkdtemp(kv_dir)) {
			rc = dm_err_set(&L->err, DM_EIO, "chat: %s: %s", kv_dir, strerror(errno));
			kv_dir[0] = '\0';
			goto out;
		}
		setenv("DORMANT_KV_DIR", kv_dir, 1);
	}
	if ((rc = bench_mgr_init(L, &m, NULL, NULL)))
		goto out;
	for (int w = 0; w < 4; w++) {
		struct mgr_model_cfg mc;
		bench_model_cfg(L, &mc, way[w]);
		mc.warmup = 1;
		if (w >= 2) {
			mc.keep_alive_ms = 0;
			mc.kv_persist = w == 3;
		}
		if ((rc = mgr_add(m, &mc, &L->err)))
			goto out;
	}
	bench_progress_end(L);
	malloc_trim(0);
	rss0 = rss_bytes();
	/* kept loaded without the cache, then with it; then on demand */
	for (int w = 0; w < 4; w++) {
		if (w < 2 && (rc = mgr_load(m, way[w], &L->err)))
			goto out;
		if ((rc = run_chat(L, m, way[w], w != 0 && w != 2, turns, n_user, n_gen, ttft[w], evaluated[w],
				   n_prompt[w], w >= 2 ? rss[w] : NULL)))
			goto out;
		if (w < 2 && (rc = mgr_unload(m, way[w], &L->err)))
			goto out;
	}
	fprintf(L->o.out, "%5s %7s %11s %11s %11s %11s %10s %10s %12s\n", "turn", "prompt", "fresh s", "cache s",
	       "od s", "od+disk s", "evaluated", "od+disk ev", "od+disk RSS");
	for (int t = 0; t < turns; t++) {
		json_t *o = json_object();
		double d_rss = ((double)rss[3][t] - (double)rss0) / 1048576.0;
		bench_set(o, "turn", json_integer(t + 1));
		bench_set(o, "n_prompt", json_integer(n_prompt[1][t]));
		for (int w = 0; w < 4; w++) {
			char k[32];
			snprintf(k, sizeof k, "ttft_%s_s", way[w]);
			bench_set(o, k, bench_real(ttft[w][t]));
			snprintf(k, sizeof k, "evaluated_%s", way[w]);
			bench_set(o, k, json_integer(evaluated[w][t]));
		}
		bench_set(o, "od_kv_rss_delta_bytes", json_integer((json_int_t)rss[3][t] - (json_int_t)rss0));
		json_array_append_new(table, o);
		fprintf(L->o.out, "%5d %7d %11.4f %11.4f %11.4f %11.4f %10d %10d %+10.2f MiB\n", t + 1, n_prompt[1][t], ttft[0][t],
		       ttft[1][t], ttft[2][t], ttft[3][t], evaluated[1][t], evaluated[3][t], d_rss);
	}
	bench_set(out, "runs", json_integer(1));
	bench_set(out, "turns", json_integer(turns));
	bench_set(out, "n_user", json_integer(n_user));
	bench_set(out, "n_gen", json_integer(n_gen));
	bench_set(out, "table", json_incref(table));
	bench_set(out, "last_turn_ratio", bench_real(ttft[0][turns - 1] > 0 ? ttft[1][turns - 1] / ttft[0][turns - 1] : 0));
	bench_set(out, "last_turn_ratio_od", bench_real(ttft[2][turns - 1] > 0 ? ttft[3][turns - 1] / ttft[2][turns - 1] : 0));
	fprintf(L->o.out, "(turn %d: time to first token with the prompt cache = %.1f %% of without; on demand, with the\n"
	       " cache saved to disk = %.1f %% of reload + full prefill; user messages of %d tokens, replies of\n"
	       " up to %d; RSS after each on-demand turn against before the conversation)\n",
	       turns, ttft[0][turns - 1] > 0 ? 100.0 * ttft[1][turns - 1] / ttft[0][turns - 1] : 0,
	       ttft[2][turns - 1] > 0 ? 100.0 * ttft[3][turns - 1] / ttft[2][turns - 1] : 0, n_user, n_gen);
out:
	json_decref(table);
	mgr_free(m);
	if (kv_dir[0]) {
		DIR *d = opendir(kv_dir);
		struct dirent *de;
		char p[1400];
		while (d && (de = readdir(d)))
			if (de->d_name[0] != '.' && snprintf(p, sizeof p, "%s/%s", kv_dir, de->d_name) < (int)sizeof p)
				unlink(p);
		if (d)
			closedir(d);
		rmdir(kv_dir);
		if (had_kv)
			setenv("DORMANT_KV_DIR", old_kv, 1);
		else
			unsetenv("DORMANT_KV_DIR");
	}
	return rc;
}

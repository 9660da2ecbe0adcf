/*
 * cli/life_chat — `dormant bench chat`: a multi-turn conversation on the
 * loaded model, each turn's prompt the whole history (earlier prompts, the
 * model's replies, a new user message), run twice: with the prompt cache
 * (a turn reuses the prefix the KV cache holds and prefills only what is
 * new) and without it (every turn prefills its whole history, as a runtime
 * that starts each request from an empty cache does).  Time to first token
 * per turn for both, the tokens each turn evaluated, and turn N's ratio.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_life.h"
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

/* One conversation of `turns` turns; ttft[t], evaluated[t] per turn. */
static int run_chat(struct life *L, struct mgr *m, const char *name, bool reuse, int turns, int n_user,
		    int n_gen, double *ttft, int *evaluated, int *n_prompt)
{
	const int32_t *text = life_prompt(L, L->n_text_ids);
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
		t0 = life_now();
		if ((rc = mgr_acquire(m, name, NULL, &l, &L->err)))
			goto out;
		t1 = life_now();
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

int life_chat(struct life *L, json_t *out)
{
	const int turns_want = L->o.quick ? 4 : 10, n_gen = L->o.quick ? 8 : 40;
	int n_user = L->o.quick ? 24 : 150, turns = turns_want, rc;
	double ttft[2][16];
	int evaluated[2][16], n_prompt[2][16];
	json_t *table = json_array();
	struct mgr *m = NULL;
	struct mgr_model_cfg mc;

	/* the whole conversation must fit the context and the text */
	while (turns > 2 && turns * (n_user + n_gen) + 8 > L->n_ctx)
		turns--;
	if (turns * (n_user + n_gen) + 8 > L->n_ctx)
		n_user = (L->n_ctx - 8) / turns - n_gen;
	if (n_user < 1 || L->n_text_ids < 2)
		return dm_err_set(&L->err, DM_EINVAL, "chat: a context of %d is too small for a conversation",
				  L->n_ctx);
	if ((rc = life_mgr_init(L, &m, NULL, NULL)))
		goto out;
	life_model_cfg(L, &mc, "chat");
	mc.warmup = 1;
	if ((rc = mgr_add(m, &mc, &L->err)) || (rc = mgr_load(m, "chat", &L->err)))
		goto out;
	life_progress_end(L);
	/* without the cache first, then with it, on the same loaded model */
	for (int pass = 0; pass < 2; pass++)
		if ((rc = run_chat(L, m, "chat", pass == 1, turns, n_user, n_gen, ttft[pass], evaluated[pass],
				   n_prompt[pass])))
			goto out;
	printf("%5s %10s %16s %16s %14s %14s\n", "turn", "prompt", "TTFT no cache s", "TTFT cache s",
	       "evaluated", "evaluated");
	for (int t = 0; t < turns; t++) {
		json_t *o = json_object();
		int hist = n_prompt[1][t];
		life_set(o, "turn", json_integer(t + 1));
		life_set(o, "n_prompt", json_integer(hist));
		life_set(o, "ttft_fresh_s", life_real(ttft[0][t]));
		life_set(o, "ttft_reuse_s", life_real(ttft[1][t]));
		life_set(o, "evaluated_fresh", json_integer(evaluated[0][t]));
		life_set(o, "evaluated_reuse", json_integer(evaluated[1][t]));
		json_array_append_new(table, o);
		printf("%5d %10d %16.4f %16.4f %14d %14d\n", t + 1, hist, ttft[0][t], ttft[1][t], evaluated[0][t],
		       evaluated[1][t]);
	}
	life_set(out, "runs", json_integer(1));
	life_set(out, "turns", json_integer(turns));
	life_set(out, "n_user", json_integer(n_user));
	life_set(out, "n_gen", json_integer(n_gen));
	life_set(out, "table", json_incref(table));
	life_set(out, "last_turn_ratio", life_real(ttft[0][turns - 1] > 0 ? ttft[1][turns - 1] / ttft[0][turns - 1] : 0));
	printf("(turn %d: time to first token with the prompt cache = %.1f %% of without; user messages of %d "
	       "tokens, replies of up to %d)\n",
	       turns, ttft[0][turns - 1] > 0 ? 100.0 * ttft[1][turns - 1] / ttft[0][turns - 1] : 0, n_user, n_gen);
out:
	json_decref(table);
	mgr_free(m);
	return rc;
}

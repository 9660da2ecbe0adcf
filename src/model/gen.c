/* model/gen — see gen.h. */
#include "model/gen.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void gen_params_default(struct gen_params *p)
{
	memset(p, 0, sizeof *p);
	sample_params_default(&p->sample);
	p->n_predict = 128;
	for (int i = 0; i < GEN_MAX_STOP; i++)
		p->stop_ids[i] = -1;
}

const char *gen_stop_name(enum gen_stop s)
{
	switch (s) {
	case GEN_STOP_NONE: return "none";
	case GEN_STOP_EOG: return "stop";
	case GEN_STOP_STRING: return "stop";
	case GEN_STOP_LENGTH: return "length";
	case GEN_STOP_CONTEXT: return "context";
	case GEN_STOP_CANCEL: return "cancel";
	}
	return "?";
}

/* Pending text not yet handed out, scanned for stop strings. */
struct pending {
	char *buf;
	size_t n, cap;
};

static int pending_add(struct pending *pd, const char *s, size_t n)
{
	if (pd->n + n + 1 > pd->cap) {
		size_t cap = (pd->n + n + 1) * 2;
		char *nb = realloc(pd->buf, cap);
		if (!nb)
			return DM_ENOMEM;
		pd->buf = nb;
		pd->cap = cap;
	}
	memcpy(pd->buf + pd->n, s, n);
	pd->n += n;
	pd->buf[pd->n] = '\0';
	return 0;
}

/* How much of the pending text is safe to emit: everything before a stop
 * string (*hit set), else everything except a tail that is a proper prefix
 * of some stop string. */
static size_t safe_len(const struct pending *pd, const struct gen_params *p, bool *hit)
{
	size_t safe = pd->n;
	*hit = false;
	for (int i = 0; i < GEN_MAX_STOP && p->stop[i]; i++) {
		const char *s = p->stop[i];
		size_t sl = strlen(s);
		if (!sl)
			continue;
		for (size_t at = 0; at + sl <= pd->n; at++)
			if (!memcmp(pd->buf + at, s, sl)) {
				if (!*hit || at < safe)
					safe = at;
				*hit = true;
				break;
			}
		if (*hit)
			continue;
		for (size_t k = sl - 1; k > 0; k--)
			if (k <= pd->n && !memcmp(pd->buf + pd->n - k, s, k)) {
				if (pd->n - k < safe)
					safe = pd->n - k;
				break;
			}
	}
	return safe;
}

static bool is_stop_id(const struct tok_vocab *v, const struct gen_params *p, int32_t id)
{
	if (tok_is_eog(v, id))
		return true;
	for (int i = 0; i < GEN_MAX_STOP; i++)
		if (p->stop_ids[i] >= 0 && p->stop_ids[i] == id)
			return true;
	return false;
}

int gen_run(struct model_ctx *c, const struct tok_vocab *v, const int32_t *prompt, size_t n_prompt,
	    const struct gen_params *p, gen_text_fn cb, void *ud, const atomic_int *cancel,
	    struct gen_stats *st, struct dm_err *err)
{
	const int32_t V = c->m->hp.n_vocab;
	struct sampler *smp = NULL;
	struct tok_decoder dec;
	struct pending pd = { 0 };
	int32_t *hist = NULL;
	float *logits = NULL;
	size_t n_hist = 0;
	double t0 = now_s(), t1;
	int rc;

	memset(st, 0, sizeof *st);
	tok_decoder_init(&dec, v, 0);
	if (n_prompt == 0) {
		if (!p->keep_cache)
			model_ctx_reset(c);
		rc = dm_err_set(err, DM_EINVAL, "empty prompt");
		goto out;
	}
	if (p->keep_cache)
		st->n_cached = 0;
	else if (p->reuse_prefix && n_prompt <= (size_t)INT32_MAX)
		st->n_cached = model_ctx_reuse(c, prompt, (int32_t)n_prompt);
	else
		model_ctx_reset(c);
	logits = malloc((size_t)V * sizeof *logits);
	hist = malloc((n_prompt + (size_t)c->n_ctx + 1) * sizeof *hist);
	if (!logits || !hist) {
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = sampler_init(&smp, V, &p->sample, err)))
		goto out;
	memcpy(hist, prompt, n_prompt * sizeof *hist);
	n_hist = n_prompt;
	if ((rc = model_decode(c, prompt + st->n_cached, (int32_t)(n_prompt - (size_t)st->n_cached), logits,
			       false, err)))
		goto out;
	st->n_prompt = (int32_t)n_prompt;
	t1 = now_s();
	st->t_prompt_s = t1 - t0;

	for (;;) {
		const char *txt;
		size_t tn, safe;
		bool hit;
		int32_t id;

		if (cancel && atomic_load(cancel)) {
			st->stop = GEN_STOP_CANCEL;
			break;
		}
		id = sampler_sample(smp, logits, hist, n_hist);
		hist[n_hist++] = id;
		if (is_stop_id(v, p, id)) {
			st->stop = GEN_STOP_EOG;
			break;
		}
		st->n_gen++;
		if ((rc = tok_decoder_push(&dec, id, &txt, &tn, err)) || (rc = pending_add(&pd, txt, tn))) {
			if (rc == DM_ENOMEM)
				dm_err_set(err, rc, "out of memory");
			goto out;
		}
		safe = safe_len(&pd, p, &hit);
		if (st->n_gen == 1)
			st->t_first_token_s = now_s() - t0;
		if (cb && cb(ud, id, pd.buf, safe)) {
			st->stop = GEN_STOP_CANCEL;
			break;
		}
		memmove(pd.buf, pd.buf + safe, pd.n - safe);
		pd.n -= safe;
		if (hit) {
			pd.n = 0; /* the stop string and anything after it are dropped */
			st->stop = GEN_STOP_STRING;
			break;
		}
		if (p->n_predict > 0 && st->n_gen >= p->n_predict) {
			st->stop = GEN_STOP_LENGTH;
			break;
		}
		if (c->n_past >= (p->n_ctx > 0 && p->n_ctx < c->n_ctx ? p->n_ctx : c->n_ctx)) {
			st->stop = GEN_STOP_CONTEXT;
			break;
		}
		if ((rc = model_decode(c, &id, 1, logits, false, err)))
			goto out;
	}
	/* flush: held-back bytes and any stop-string prefix that never completed */
	if (st->stop != GEN_STOP_STRING && st->stop != GEN_STOP_CANCEL) {
		const char *txt;
		size_t tn;
		if ((rc = tok_decoder_flush(&dec, &txt, &tn, err)) || (rc = pending_add(&pd, txt, tn)))
			goto out;
		if (cb && pd.n)
			cb(ud, -1, pd.buf, pd.n);
	}
	st->t_gen_s = now_s() - t1;
	rc = 0;
out:
	sampler_free(smp);
	tok_decoder_free(&dec);
	free(pd.buf);
	free(hist);
	free(logits);
	return rc;
}

int gen_prompt_ids(const struct tok_vocab *v, const enum tok_chat_kind *kind,
		   const struct tok_chat_msg *msgs, size_t nm, const char *raw, int32_t **ids,
		   size_t *n, struct dm_err *err)
{
	char *text = NULL;
	size_t len;
	int rc;

	if (!kind)
		return tok_encode(v, raw, strlen(raw), TOK_ADD_SPECIAL, ids, n, err);
	if ((rc = tok_chat_apply(*kind, v, msgs, nm, true, &text, &len, err)))
		return rc;
	rc = tok_encode(v, text, len, TOK_PARSE_SPECIAL, ids, n, err);
	free(text);
	if (rc)
		return rc;
	if (tok_add_bos(v) && tok_bos(v) >= 0 && (*n == 0 || (*ids)[0] != tok_bos(v))) {
		int32_t *nid = realloc(*ids, (*n + 1) * sizeof **ids);
		if (!nid)
			return dm_err_set(err, DM_ENOMEM, "out of memory");
		memmove(nid + 1, nid, *n * sizeof *nid);
		nid[0] = tok_bos(v);
		*ids = nid;
		(*n)++;
	}
	return 0;
}

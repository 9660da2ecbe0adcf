/*
 * model/gen — the generation loop: prompt prefill, then sample / decode one
 * token at a time, streaming text through a callback, until an
 * end-of-generation token, a stop token, a stop string, max tokens,
 * cancellation or a full context.
 *
 * Text handed to the callback is always whole UTF-8 characters (the
 * tokenizer's streaming decoder holds back split characters) and never
 * contains any part of a stop string (text that might be the start of a stop
 * string is held back until it is known not to be).
 *
 * Prefix gen_, not model_: a named exception to the folder-is-a-prefix rule
 * (README, "How it works"), kept for the call sites' readability.
 */
#ifndef DM_MODEL_GEN_H
#define DM_MODEL_GEN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/model.h"
#include "model/sample.h"
#include "tok/chat.h"
#include "tok/tok.h"

#define GEN_MAX_STOP 8

struct gen_params {
	struct sample_params sample;
	int32_t n_predict;                 /* max new tokens; <= 0: until the context is full */
	const char *stop[GEN_MAX_STOP];    /* stop strings (NUL-terminated), NULL-padded */
	int32_t stop_ids[GEN_MAX_STOP];    /* extra stop tokens (chat templates), -1-padded */
	bool keep_cache;                   /* continue after the ctx's current n_past */
	bool reuse_prefix;                 /* (without keep_cache) keep the cached prefix the
					    * prompt starts with, prefill only the rest */
	int32_t n_ctx;                     /* > 0: stop when this many positions are filled
					    * (at most the ctx's n_ctx); 0: the ctx's n_ctx */
};

void gen_params_default(struct gen_params *p);

enum gen_stop {
	GEN_STOP_NONE = 0,
	GEN_STOP_EOG,      /* an end-of-generation or stop token */
	GEN_STOP_STRING,   /* a stop string */
	GEN_STOP_LENGTH,   /* n_predict reached */
	GEN_STOP_CONTEXT,  /* the context is full */
	GEN_STOP_CANCEL,   /* cancelled (flag or callback) */
};

const char *gen_stop_name(enum gen_stop s);

struct gen_stats {
	int32_t n_prompt, n_gen;
	int32_t n_cached;             /* prompt tokens whose KV came from the cache (reuse_prefix) */
	double t_prompt_s, t_gen_s;   /* prefill, and sampling+decode of the rest */
	double t_first_token_s;       /* from the call to the first token's text */
	enum gen_stop stop;
};

/* Receives each piece of text (may be empty for tokens that produce no
 * text).  Return non-zero to stop (counted as a cancellation); id is -1 for
 * the final flush of held-back text, whose return value is ignored. */
typedef int (*gen_text_fn)(void *ud, int32_t id, const char *text, size_t n);

/* Runs the loop.  cancel (may be NULL) is polled between tokens. */
int gen_run(struct model_ctx *c, const struct tok_vocab *v, const int32_t *prompt, size_t n_prompt,
	    const struct gen_params *p, gen_text_fn cb, void *ud, const atomic_int *cancel,
	    struct gen_stats *st, struct dm_err *err);

/* Token ids for a prompt: the chat template k over msgs when kind is not
 * NULL (special tokens in the template parsed; BOS added only if the
 * template text did not already start with it), else the raw text with the
 * model's BOS/EOS rules.  *ids is malloc'ed. */
int gen_prompt_ids(const struct tok_vocab *v, const enum tok_chat_kind *kind,
		   const struct tok_chat_msg *msgs, size_t nm, const char *raw, int32_t **ids,
		   size_t *n, struct dm_err *err);

#endif

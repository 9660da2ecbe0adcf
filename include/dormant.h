/*
 * dormant.h — the public C API of libdormant.
 *
 * dormant is a local LLM runtime that holds nothing in memory until a
 * request needs a model, and gives the memory back by the policy the user
 * chose (see README: eager/lazy, keep-alive, memory budget, fallbacks).
 *
 * A runtime is opened from a configuration file (or none) and knows models
 * by name.  Generation and embedding calls load the model if needed (once,
 * however many threads ask), run, and release it per its keep-alive.  All
 * functions are thread-safe.  Errors: a negative code, and a one-line
 * message in the caller's buffer (err, errlen; may be NULL/0).
 */
#ifndef DORMANT_H
#define DORMANT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define DORMANT_VERSION "0.1.0"

#ifdef __cplusplus
extern "C" {
#endif

/* The error codes every function returns (0 on success).  The message in
 * the caller's buffer says which file, field, model or value is at fault;
 * the code says what kind of failure it is, for a program to act on. */
enum dormant_code {
	DORMANT_OK = 0,
	DORMANT_EINVAL = -1,       /* bad argument, request field or configuration */
	DORMANT_ENOMEM = -2,       /* memory could not be allocated or mapped */
	DORMANT_EIO = -3,          /* a file could not be opened, read or written */
	DORMANT_EFORMAT = -4,      /* a malformed file (GGUF, KV cache, chat) */
	DORMANT_ENOTFOUND = -5,    /* no such model, key or tensor */
	DORMANT_ETYPE = -6,        /* a value of another type than expected */
	DORMANT_EUNSUPPORTED = -7, /* valid, but not supported (architecture, type, role) */
	DORMANT_ERANGE = -8,       /* a value out of range */
	DORMANT_EBUSY = -9,        /* the model's queue is full: try again later */
	DORMANT_ECANCELED = -10,   /* the caller's cancel flag was set */
	DORMANT_ETIMEDOUT = -11,   /* waited longer than queue_timeout for the model */
	DORMANT_ENOSPC = -12,      /* does not fit (the context, a caller's buffer) */
	DORMANT_ETOOBIG = -13,     /* can never fit the memory budget */
	DORMANT_ETOOLONG = -14,    /* the prompt is longer than the model's context */
};

/* A short description of a code ("invalid argument", "busy", ...;
 * "unknown error" for anything else).  Never NULL. */
const char *dormant_code_str(int code);

/* The library's version string, e.g. "0.1.0". */
const char *dormant_version(void);

typedef struct dormant dormant;

/* Opens a runtime.  config: an INI file or NULL; profile: a profile name or
 * NULL ($DORMANT_ENV).  Nothing is loaded except models marked eager. */
int dormant_open(dormant **out, const char *config, const char *profile, char *err, size_t errlen);
/* As dormant_open, with a callback receiving one line per lifecycle event
 * (load, unload, eviction, with timing and memory figures) from any thread;
 * log may be NULL. */
int dormant_open_log(dormant **out, const char *config, const char *profile,
		     void (*log)(void *ud, const char *line), void *log_ud, char *err, size_t errlen);
/* Registers a model without a config file (lazy, the configured default
 * keep-alive).  Call before the first request for it. */
int dormant_add_model(dormant *d, const char *name, const char *path, char *err, size_t errlen);
/* Unloads everything and frees; NULL is a no-op. */
void dormant_close(dormant *d);

/* Receives generated text as it is produced (whole UTF-8 characters).
 * Return non-zero to stop. */
typedef int (*dormant_text_fn)(void *ud, const char *text, size_t n);

/* One chat message: role "system", "user" or "assistant". */
struct dormant_msg {
	const char *role;
	const char *content;
};

struct dormant_gen_opts {
	int max_tokens;          /* <= 0: 128 */
	float temperature;       /* < 0: default 0.8; 0: greedy */
	int top_k;               /* < 0: default 40; 0: off */
	float top_p, min_p;      /* < 0: defaults 0.95 / 0.05 */
	float repeat_penalty;    /* <= 0: off (1.0) */
	float frequency_penalty, presence_penalty; /* 0: off (OpenAI's meaning) */
	uint64_t seed;
	const char *stop[4];     /* stop strings, NULL-terminated list */
	int chat;                /* apply the model's chat template to prompt as a user
				  * turn (a model without a template: the raw prompt) */
	const char *system;      /* with chat: a system message */
	const struct dormant_msg *messages; /* n_messages > 0: the conversation to */
	size_t n_messages;       /* continue (chat template applied; prompt ignored) */
	int truncate;            /* a prompt longer than the context: drop the oldest
				  * turns after the leading system messages (keeping
				  * the latest turn), then, if it still does not fit,
				  * cut the middle (all a plain prompt gets), instead
				  * of failing with DORMANT_ETOOLONG ("this model's
				  * maximum context length is N tokens, but the prompt
				  * is M tokens") */
	int has_keep_alive;      /* override the model's keep-alive (if allowed) */
	int64_t keep_alive_ms;   /* 0: unload after; negative: forever */
	/* set (to non-zero) from any thread to cancel: polled while the request
	 * waits in the model's queue, while it loads, and between tokens; may be
	 * NULL */
	const atomic_int *cancel;
	int num_ctx;             /* > 0: this request's context, up to the model's n_ctx_max
				  * (its trained length unless configured): the KV cache
				  * grows into it, the model is never reloaded for it;
				  * 0: the model's n_ctx */
};

struct dormant_gen_result {
	int n_prompt, n_gen;     /* n_prompt: the tokens kept (see truncate); on
				  * DORMANT_ETOOLONG, the full prompt's length */
	int n_cached;            /* of n_prompt, the tokens whose KV cache a previous request
				  * left (prompt-prefix reuse): not evaluated again */
	int n_ctx;               /* the request's context (num_ctx, else the model's n_ctx,
				  * at most n_ctx_max), also set on a too-long prompt */
	double load_s;           /* time spent loading for this call (0 if warm) */
	double ttft_s;           /* from the call to the first token */
	double prompt_s, gen_s;
	char finish[16];         /* "stop", "length", "context", "cancel" */
	char model[64];          /* the model that answered (a fallback, maybe) */
	char fallback_reason[256];
};

/* Generates from `model`.  opts and res may be NULL. */
int dormant_generate(dormant *d, const char *model, const char *prompt,
		     const struct dormant_gen_opts *opts, dormant_text_fn cb, void *ud,
		     struct dormant_gen_result *res, char *err, size_t errlen);

struct dormant_embed_info {
	int n_tokens;            /* tokens the text became (all inputs, after truncation) */
	double load_s;           /* time spent loading for this call (0 if warm) */
	char model[64];          /* the model that answered */
};

/* L2-normalised embedding of one text into out[cap] (dormant_embed_batch
 * of one); *dim gets the model's dimension (DORMANT_ENOSPC if cap is
 * smaller).  info may be NULL. */
int dormant_embed(dormant *d, const char *model, const char *text, float *out, size_t cap,
		  size_t *dim, struct dormant_embed_info *info, char *err, size_t errlen);

struct dormant_embed_opts {
	size_t dimensions;       /* 0: the model's; else keep the first k values and
				  * L2-normalise again (Matryoshka) */
	int no_truncate;         /* an input longer than the model's context is an
				  * error (DORMANT_ERANGE) instead of being cut to fit */
	/* set (to non-zero) from any thread to cancel: polled while the request
	 * waits for its batch and for the model; may be NULL */
	const atomic_int *cancel;
};

/* Embeds texts[0..n) in one call: an encoder runs them as one batch (packed
 * into few forward passes), together with the embedding calls of other
 * threads for the same model that wait at the same moment (each gets its
 * own rows: what it would get alone, up to float rounding), and pools each
 * by the file's pooling type; a
 * decoder mean-pools each (as dormant_embed always did).  Every vector is
 * L2-normalised.  out receives n × *dim floats (row i: texts[i]); *dim is
 * the model's dimension or o->dimensions.  Errors: the model's role does not
 * embed (DORMANT_EINVAL, naming the role), an empty text (DORMANT_EINVAL), a text too
 * long with no_truncate (DORMANT_ERANGE), dimensions above the model's
 * (DORMANT_EINVAL), cap < n × dim (DORMANT_ENOSPC).  o and info may be NULL. */
int dormant_embed_batch(dormant *d, const char *model, const char *const *texts, size_t n,
			const struct dormant_embed_opts *o, float *out, size_t cap, size_t *dim,
			struct dormant_embed_info *info, char *err, size_t errlen);

/* Scores docs[0..n_docs) against query with a reranker (an encoder with a
 * classification head, role rerank) into scores[0..n_docs), in input order:
 * the head's raw output for `[CLS] query [SEP] [SEP] doc [SEP]` (BOS query
 * EOS SEP doc EOS, as llama.cpp builds it), no sigmoid.  A pair longer than
 * the context loses the end of its document (then of its query) unless
 * o->no_truncate (DORMANT_ERANGE); o->dimensions is ignored.  info->n_tokens
 * counts every pair's tokens.  Concurrent rerank calls for one model share
 * batches as embedding calls do. */
int dormant_rerank(dormant *d, const char *model, const char *query, const char *const *docs,
		   size_t n_docs, const struct dormant_embed_opts *o, float *scores,
		   struct dormant_embed_info *info, char *err, size_t errlen);

/* Explicit lifecycle control.  dormant_load keeps the model by its own
 * keep-alive (an on-demand model stays until its next request ends);
 * dormant_load_keep_alive sets the timer as a request's override would
 * (clamped to the server's limits; negative: forever; ignored when the model
 * does not allow overrides).  *load_s (may be NULL) gets the time spent
 * loading (0 when it was already loaded). */
int dormant_load(dormant *d, const char *model, char *err, size_t errlen);
int dormant_load_keep_alive(dormant *d, const char *model, int64_t keep_alive_ms, double *load_s,
			    char *err, size_t errlen);
int dormant_unload(dormant *d, const char *model, char *err, size_t errlen);

struct dormant_model_status {
	char name[64];
	char path[1024];
	char state[16];          /* dormant, loading, ready, unloading, failed */
	char role[16];           /* generate, embed, rerank */
	char policy[16];         /* lazy, eager */
	char mode[16];           /* mmap, read, mlock, prefetch */
	int64_t keep_alive_ms;   /* negative: forever */
	int in_use;
	unsigned queued;
	uint64_t est_bytes;      /* what a load is budgeted at: weights, scratch, n_ctx's KV cache */
	uint64_t bytes;          /* what the loaded model holds now (weights, the KV pages of its
				  * conversation, saved prefixes, scratch while in use) */
	uint64_t load_count, unload_count, evict_count;
	double last_load_s;
	double load_s_total, unload_s_total;
	int64_t expires_in_ms;   /* -1: not scheduled */
	uint64_t progress_done, progress_total;
	uint64_t rss_before_load, rss_after_unload;
	uint64_t cached_after_unload; /* the file's bytes still in the page cache */
	/* time to first token, summed over requests, split cold / warm */
	uint64_t n_cold, n_warm;
	double ttft_cold_s, ttft_warm_s;
	/* embedding and rerank requests share forward passes (see
	 * dormant_embed_batch): batches run, requests they answered, requests
	 * waiting for a batch now */
	uint64_t encode_batches, encode_requests;
	uint32_t encode_waiting;
	char last_error[256];
};

/* Copies up to cap entries; returns the number of models. */
size_t dormant_status(dormant *d, struct dormant_model_status *out, size_t cap);

/* One lifecycle transition of a model (strings live for the call only). */
struct dormant_event {
	const char *model;
	const char *from, *to;   /* state names, as in dormant_model_status */
	double seconds;          /* to "ready": the load's time; to "dormant": the unload's */
	uint64_t bytes;          /* to "loading": the estimate; to "ready": measured */
	uint64_t rss, rss_anon, rss_file; /* process memory right after it (VmRSS,
				  * RssAnon, RssFile; 0: not measured) */
	int evict;               /* an unload that made room for another model */
	const char *error;       /* to "failed": why; else "" */
};

/* Adds an observer of lifecycle transitions (at most 8 at a time; -1
 * beyond).  fn runs on the thread that made the transition with the
 * runtime's lock held: it must return quickly and must not call the
 * runtime.  Once dormant_observe_remove(d, fn, ud) returns, that observer
 * is never called again. */
int dormant_observe_add(dormant *d, void (*fn)(void *ud, const struct dormant_event *ev), void *ud);
void dormant_observe_remove(dormant *d, void (*fn)(void *ud, const struct dormant_event *ev), void *ud);

/* Checks a registered model without loading it: its file readable, its
 * header valid, its architecture supported, its estimated size within the
 * memory budget, its fallbacks registered and free of cycles.  Returns 0
 * and *est_bytes (may be NULL), or the first problem with its message.
 * `dormant serve` runs it for every model at start-up. */
int dormant_check_model(dormant *d, const char *model, uint64_t *est_bytes, char *err, size_t errlen);

/* What dormant_reload did.  Names are cut at the arrays' sizes; the counts
 * are whole. */
struct dormant_reload {
	size_t n_kept, n_changed, n_added, n_removed, n_restart;
	char kept[32][64];       /* the configuration's models with the same settings: untouched */
	char changed[32][64];    /* new settings (a discovered model's too, for new [server] defaults) */
	char added[32][64];
	char removed[32][64];
	char restart[16][40];    /* server settings that changed but apply at the next start
				  * ("server.port", "server.host", ...) */
	size_t n_unloaded;       /* loaded idle models unloaded now (removed, or new load settings) */
	size_t n_pending;        /* busy ones: unloaded when their requests end */
	size_t n_evicted;        /* idle models evicted to fit a smaller budget */
	/* the rescan that follows (models_dir folders and stores) */
	size_t disc_found, disc_added, disc_removed, disc_broken;
};

/* Reads the configuration file the runtime was opened with again (the same
 * profile selection and environment overrides) and checks all of it before
 * anything changes: its syntax and values, each model's role against its
 * file, its file's header and architecture, its estimate against max_ram,
 * its fallbacks (what `dormant config check` does, without loading).  A
 * problem is returned as "FILE:LINE: ..." and the running configuration
 * stays as it was.  Otherwise, per model of the configuration:
 *   - same settings: untouched (a loaded one stays loaded, its requests run on);
 *   - settings a load reads (path, mode, quantize_on_load, n_ctx, n_ctx_max,
 *     prefix_cache_max, n_batch, threads, warmup_ctx, kv_persist): from its
 *     next load; a loaded idle
 *     model is unloaded now, a busy one when its requests end;
 *   - other settings (keep_alive, pin, role, load, fallbacks, ...): at once;
 *   - removed: unknown to new requests at once, unloaded when its requests end;
 *   - new: registered (an eager one is loaded).
 * The budget and queue limits apply at once (idle models are evicted to fit
 * a smaller budget; busy ones never), except that the embed/rerank wait
 * queue keeps the max_queue read at dormant_open until the handle is
 * reopened.  Server settings that cannot change while serving (host, port,
 * api_key, max_body, connections, timeouts, max_tokens, drop_page_cache)
 * keep their values and are listed in res->restart.  Models registered by
 * dormant_add_model stay as they are (a configuration that takes one's name
 * is refused); a discovered model's name the configuration takes becomes the
 * configuration's.  Then the model folders and stores are scanned again.
 * Reloads run one at a time.  res may be NULL. */
int dormant_reload(dormant *d, struct dormant_reload *res, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif

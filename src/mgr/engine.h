/*
 * mgr/engine — the real backend of the lifecycle manager: loads a GGUF
 * file into a ready-to-run engine (weights, vocabulary, thread pool, KV
 * cache and scratch) in one of the load modes, and unloads it so that every
 * byte goes back.
 *
 * Load modes:
 *   mmap      weights are views of the file mapping (PROT_READ, MAP_PRIVATE)
 *   read      the file is read into anonymous memory (for network disks;
 *             RSS shows the real cost)
 *   mlock     mmap, then the mapping is locked in RAM
 *   prefetch  mmap, then the kernel is asked to read the file ahead
 *             (MADV_WILLNEED) so the first token does not stall on faults
 * Quantize-on-load: F32/F16/BF16 matrices are quantized to Q8_0, Q4_0 or
 * Q4_K into anonymous memory as they load, on the engine's threads (the
 * bytes the reference quantizer gives; kern_quantize_rows); the file's
 * float pages are read once and never touched again (in mmap mode the
 * kernel may drop them).
 *
 * Unload frees in reverse order, unmaps, returns the heap's free pages to
 * the OS (malloc_trim) and, when asked, drops the file from the page cache.
 *
 * Prefix engine_, not mgr_: a named exception to the folder-is-a-prefix
 * rule (README, "How it works").
 */
#ifndef DM_MGR_ENGINE_H
#define DM_MGR_ENGINE_H

#include <stdbool.h>

#include "base/pool.h"
#include "gguf/gguf.h"
#include "mgr/mgr.h"
#include "model/model.h"
#include "tok/tok.h"

/* A loaded model, as handed out through mgr_lease_handle(). */
struct engine {
	struct gguf_file *g;
	void *file_copy;        /* read mode: the file in anonymous memory */
	size_t file_copy_bytes;
	void *qbuf;             /* quantize-on-load: all quantized matrices */
	size_t qbuf_bytes;
	bool locked;
	struct model *m;
	struct tok_vocab *v;
	struct dm_pool *pool;
	struct model_ctx *ctx;
	int32_t n_ctx_default;  /* a request's context when it asks for none (the configured
				 * n_ctx); ctx->n_ctx is the last request's */
	uint64_t weight_bytes;  /* as loaded (after quantize-on-load) */
	uint64_t vocab_bytes;
	uint64_t replaced_bytes; /* file bytes of matrices replaced by quantize-on-load */
	uint64_t quant_elems;   /* quantize-on-load: weights quantized, and the time it took */
	double quant_s;
	int32_t warmup_ctx;     /* KV positions warm-up makes resident */
	char *kv_path;          /* where the KV cache is saved at unload (kv_persist), or NULL */
	uint64_t kv_identity;   /* what made it: file path, size, mtime, n_ctx, conversion */
	int32_t kv_restored;    /* positions restored from kv_path at load */
	char kv_note[160];      /* why a saved cache was not used (stale, corrupt), or "" */
};

/* The directory KV caches are saved in: $DORMANT_KV_DIR, else
 * $XDG_CACHE_HOME/dormant/kv, else $HOME/.cache/dormant/kv (/tmp without
 * HOME); and its bound in
 * bytes ($DORMANT_KV_MAX, default 4 GiB): after a save the least recently
 * written files go until the rest fit. */
const char *engine_kv_dir(char *buf, size_t cap);
uint64_t engine_kv_max(void);

struct engine_backend_cfg {
	bool drop_page_cache;   /* posix_fadvise(DONTNEED) the file at unload */
};

/* Fills *be with the engine backend (estimate, load, warmup, unload, held, shrink).
 * cfg (may be NULL) is borrowed and must outlive the manager. */
void mgr_engine_backend(struct mgr_backend *be, struct engine_backend_cfg *cfg);

/* The same steps without a manager (dormant run and friends use them). */
int engine_load(struct engine **out, const struct mgr_model_cfg *cfg, struct mgr_progress *prog,
		const atomic_int *cancel, struct dm_err *err);
int engine_estimate(const struct mgr_model_cfg *cfg, uint64_t *bytes, struct dm_err *err);
int engine_warmup(struct engine *e, struct dm_err *err);
/* Bytes the engine holds now: weights, vocabulary, scratch, the KV pages
 * of the positions written so far and the saved prefixes
 * (model_ctx_held_bytes); and what it may hold during a request whose
 * context is n_ctx positions (the KV cache grown to n_ctx, or what it holds
 * already if that is more, and the saved prefixes with a copy of the live
 * conversation, within their bound). */
uint64_t engine_bytes(const struct engine *e);
uint64_t engine_bytes_for(const struct engine *e, int32_t n_ctx);
void engine_unload(struct engine *e, bool drop_page_cache);

/* The role a model file serves (reads its header and binds it; loads
 * nothing): an encoder with rank pooling reranks, another encoder embeds,
 * a decoder generates.  Errors: those of opening and binding the file. */
int engine_file_role(const char *path, enum mgr_role *role, struct dm_err *err);

/* A model's role follows its file (engine_file_role) unless the config set
 * one (role_set); a set role must fit the file: a decoder generates or
 * embeds, an encoder serves only its own role (DM_EINVAL naming both).  A
 * file that cannot be read now is left alone (its load will say why). */
int engine_role_resolve(struct mgr_model_cfg *c, bool role_set, struct dm_err *err);

#endif

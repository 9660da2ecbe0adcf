/*
 * mgr/api — what libdormant's own modules (the server, the CLI) may ask of
 * a runtime beyond include/dormant.h.
 */
#ifndef DM_MGR_API_H
#define DM_MGR_API_H

#include "dormant.h"
#include "mgr/config.h"
#include "mgr/discover.h"

/* The runtime's configuration (valid until dormant_close).  dormant_reload
 * replaces its contents under the runtime's own lock, except the server
 * settings it lists as needing a restart: read those (srv_cfg_from_runtime
 * at start-up) or ask the manager for its limits (mgr_limits), not the
 * rest, while a reload may run. */
const struct dm_config *dormant_config(const dormant *d);

/* The runtime's manager (valid until dormant_close), for the runtime's
 * own files (rag.c). */
struct mgr *dormant_mgr(dormant *d);

/* 0 when model's role answers `want` requests (or the model is unknown:
 * acquiring it reports that); DM_EINVAL "model 'x' has role embed: it does
 * not answer generate requests" otherwise. */
int dormant_role_check(dormant *d, const char *model, enum mgr_role want, struct dm_err *err);
/* One line for a log: the counts of dormant_reload, the settings that need
 * a restart by name, and the rescan's counts. */
void dormant_reload_summary(const struct dormant_reload *r, char *buf, size_t cap);
/* ---- requests sharing an encoder's forward pass (rag.c) ----
 * Each runtime has one; at most max_waiting jobs wait per model (0: 16). */
struct dormant_rag;
int dormant_rag_init(struct dormant_rag **out, uint32_t max_waiting, struct dm_err *err);
void dormant_rag_free(struct dormant_rag *g);
/* The runtime's (valid until dormant_close). */
struct dormant_rag *dormant_rag_state(dormant *d);
/* For model: batches run, requests they answered, requests waiting now. */
void dormant_rag_counts(struct dormant_rag *g, const char *model, uint64_t *batches, uint64_t *requests,
			uint32_t *waiting);

/* ---- discovered models (mgr/discover.h) ----
 * dormant_rescan scans the configuration's models_dir folders, the folders
 * given here and (unless switched off) the Ollama, Hugging Face and LM
 * Studio stores, then registers the usable models that are new, and
 * unregisters the ones it registered before that are gone, broken or moved
 * (an in-use one at the next scan).  A name the configuration or
 * dormant_add_model registered stays theirs.  A discovered model gets the
 * [server] defaults (keep_alive, threads, quantize_on_load), its Ollama
 * num_ctx as n_ctx, and its Ollama system prompt and sampling settings as
 * request defaults. */

/* Folders to scan after the configuration's (copied); stores: -1 the
 * configuration's discover, 0 off, 1 on.  Takes effect at the next scan. */
int dormant_discovery_set(dormant *d, const char *const *dirs, size_t n, int stores, struct dm_err *err);

struct dormant_rescan {
	size_t found;        /* entries, broken ones included */
	size_t added, removed;
	size_t broken;       /* listed with an error, not registered */
	size_t shadowed;     /* names the configuration holds */
	size_t busy;         /* gone but in use: removed at a later scan */
	uint64_t header_reads; /* GGUF headers opened so far (cache misses) */
};

int dormant_rescan(dormant *d, struct dormant_rescan *st, struct dm_err *err);
/* Copies up to cap entries of the last scan; returns how many there are. */
size_t dormant_discovered(dormant *d, struct disc_model *out, size_t cap);
/* The entry behind a model discovery registered (out may be NULL); false
 * for a model of the configuration or one that is not registered. */
bool dormant_discovered_model(dormant *d, const char *name, struct disc_model *out);

#endif

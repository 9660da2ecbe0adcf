/*
 * mgr/discover — find the GGUF models already on disk and name them.
 *
 * Sources, scanned in this order (a name found twice keeps the first and
 * lists the second with an error):
 *   models dir   every *.gguf under DIR, named by its path relative to DIR
 *                without ".gguf" ("llama/3b-q4"); split files
 *                ("x-00001-of-00003.gguf") are one entry named "x";
 *   Ollama       ROOT/manifests/<registry>/<namespace>/<model>/<tag> (JSON)
 *                naming layers in ROOT/blobs/sha256-<hex>: the model layer is
 *                the GGUF, the system and params layers give defaults (the
 *                template layer is Go template text: not used, the GGUF's
 *                own tokenizer.chat_template is).  Named "model:tag",
 *                "ns/model:tag" outside library/, "registry/ns/model:tag"
 *                outside registry.ollama.ai;
 *   HF hub cache ROOT/models--ORG--NAME/snapshots/REV/ (any depth) *.gguf (REV from
 *                refs/main when present; snapshot files are usually symlinks
 *                into ../../blobs), named "ORG/NAME:STEM";
 *   LM Studio    ROOT/PUBLISHER/REPO/ (any depth) *.gguf, named "PUBLISHER/REPO:STEM".
 * Files whose name contains "mmproj" (vision projectors) are not models.
 *
 * Scanning reads directory entries, small JSON/text layers and GGUF headers
 * only (gguf_open maps the file and validates the header and tensor table;
 * tensor pages are never touched).  Header facts are cached by (path, size,
 * mtime): a rescan of unchanged files opens none of them.  A file that
 * cannot be used (bad header, split into parts, name too long, ...) is an
 * entry with rc < 0 and its message; a scan never fails because of one.
 *
 * Ownership: struct disc owns its entries; pointers from disc_get are
 * valid until the next disc_scan or disc_free.  Not thread-safe: the
 * caller serialises scans and reads.
 *
 * Prefix disc_, not mgr_: a named exception to the folder-is-a-prefix rule
 * (README, "How it works").
 */
#ifndef DM_MGR_DISCOVER_H
#define DM_MGR_DISCOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "mgr/mgr.h"

#define DISC_MAX_DIRS 8
#define DISC_MAX_STOP 4
#define DISC_SYSTEM_MAX 4096

enum disc_source { DISC_DIR, DISC_OLLAMA, DISC_HF, DISC_LMSTUDIO };
const char *disc_source_name(enum disc_source s); /* "dir", "ollama", "hf", "lmstudio" */

/* Request defaults from an Ollama params layer, for the settings the
 * runtime has (others are ignored). */
struct disc_params {
	bool has_temperature, has_top_k, has_top_p, has_min_p, has_repeat_penalty, has_seed,
		has_num_predict;
	float temperature, top_p, min_p, repeat_penalty;
	int32_t top_k, num_predict;
	uint64_t seed;
	int32_t num_ctx;                       /* 0: not set (a load setting: n_ctx) */
	char stop[DISC_MAX_STOP][64];          /* "" ends the list */
};

struct disc_model {
	char name[MGR_NAME_MAX];
	char path[MGR_PATH_MAX];               /* the GGUF (the first part of a split) */
	enum disc_source source;
	char origin[MGR_PATH_MAX];             /* the models dir, or the manifest / repo folder */
	uint64_t size;                         /* bytes, all parts */
	int64_t mtime_ns;
	char arch[32];                         /* "" when unknown */
	char quant[16];                        /* general.file_type's name, "" unknown */
	uint64_t n_params;
	uint32_t n_ctx_train;                  /* <arch>.context_length, 0 unknown */
	uint32_t n_parts;                      /* 1, or the split's part count */
	int rc;                                /* 0, or why it cannot be used */
	char err[DM_ERR_MSG_MAX];
	char system[DISC_SYSTEM_MAX];          /* Ollama system layer, "" none */
	struct disc_params params;
};

/* Where to look.  A NULL root skips that store. */
struct disc_cfg {
	const char *dirs[DISC_MAX_DIRS];
	size_t n_dirs;
	const char *ollama, *hf, *lmstudio;
};

/* The default store roots from an environment lookup (getenv, or a fake in
 * tests): $OLLAMA_MODELS else $HOME/.ollama/models; $HF_HUB_CACHE else
 * $HF_HOME/hub else $HOME/.cache/huggingface/hub; $HOME/.lmstudio/models.
 * Only folders that exist are set (the others NULL); bufs hold the paths. */
void disc_default_roots(struct disc_cfg *c, const char *(*env)(const char *name),
			char bufs[3][MGR_PATH_MAX]);

struct disc;

int disc_init(struct disc **out, struct dm_err *err);
void disc_free(struct disc *d);
/* Replaces the entries with what c finds now.  Errors only for out of
 * memory (the old entries stay). */
int disc_scan(struct disc *d, const struct disc_cfg *c, struct dm_err *err);
size_t disc_count(const struct disc *d);
const struct disc_model *disc_get(const struct disc *d, size_t i);
const struct disc_model *disc_find(const struct disc *d, const char *name);
/* The header facts of one file (for a model of the configuration): out's
 * path, size, arch, quant, n_params, n_ctx_train, and rc/err when it cannot
 * be read; through the cache. */
int disc_describe(struct disc *d, const char *path, struct disc_model *out);
/* GGUF headers opened since disc_init (a cache hit opens none). */
uint64_t disc_header_reads(const struct disc *d);

#endif

/*
 * mgr/config — dormant's configuration: an INI file (parsed with inih),
 * named profiles, and environment overrides, resolved into a manager
 * configuration and its models, with the source of every value kept for
 * `dormant config`.
 *
 *   [server]                 global settings (keys below); models_dir = DIR (one
 *                            line per folder) and discover = BOOL feed model
 *                            discovery (mgr/discover.h, dormant_rescan)
 *   [model NAME]             one model: path, role, load, keep_alive, ...
 *   [profile NAME]           overrides of [server] keys (and "model.NAME.key")
 *
 * Precedence, lowest first: built-in defaults, the built-in profile of the
 * same name (testing, development, production), the file's [server], the
 * selected profile's section in the file, environment variables
 * (DORMANT_KEEP_ALIVE, DORMANT_MAX_RAM, DORMANT_THREADS,
 * DORMANT_ENABLE_FALLBACK, DORMANT_QUANTIZE_ON_LOAD, DORMANT_MAX_LOADED_MODELS,
 * DORMANT_MAX_QUEUE, DORMANT_QUEUE_TIMEOUT, DORMANT_DROP_PAGE_CACHE, DORMANT_HOST,
 * DORMANT_PORT, DORMANT_API_KEY, DORMANT_MAX_CONNECTIONS_PER_IP,
 * DORMANT_DISCOVER).  The API key's value is never shown by
 * `dormant config` (only that it is set and where).  The
 * profile comes from the caller (--profile) or DORMANT_ENV; one that is
 * neither built in nor a [profile NAME] of the file is an error listing the
 * known ones.  A section written twice is an error naming both lines, and
 * so are fallbacks that lead back to where they started (names not in the
 * file are left to the start-up check: --model may register them).
 *
 * Values: durations "0", "30s", "5m", "1h", "250ms", "forever" (or -1);
 * sizes "512MiB", "8GiB", "8G", "1500000000", "60%" (of physical RAM);
 * booleans true/false/yes/no/on/off/1/0.  An invalid value is an error
 * naming the file, line and key.
 *
 * Prefixes dm_config_ and dm_parse_, not mgr_ (the parsers are shared with
 * the server): a named exception to the folder-is-a-prefix rule (README,
 * "How it works").
 */
#ifndef DM_MGR_CONFIG_H
#define DM_MGR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "mgr/mgr.h"

#define CFG_MAX_MODELS 32
#define CFG_SRC_MAX 160
#define CFG_DEFAULT_PORT 7373
#define CFG_MAX_MODELS_DIRS 8

struct dm_config {
	char profile[32];
	/* server */
	uint32_t max_loaded_models;
	uint64_t max_ram;
	int64_t keep_alive_ms;        /* default for models without their own */
	int64_t keep_alive_min_ms, keep_alive_max_ms;
	uint32_t max_queue;
	int64_t queue_timeout_ms;
	bool enable_fallback;
	bool drop_page_cache;
	int threads;                  /* default per model; 0: physical cores */
	int32_t quantize_on_load;     /* default per model; -1: off */
	/* HTTP (dormant serve) */
	char host[64];                /* default 127.0.0.1 */
	uint32_t port;                /* default CFG_DEFAULT_PORT */
	char api_key[128];            /* "": no key */
	uint64_t max_body;            /* request body limit, bytes (default 8 MiB) */
	uint32_t max_connections;     /* default 64 */
	int64_t request_timeout_ms;   /* idle connection timeout (default 30 s) */
	uint32_t max_connections_per_ip; /* per client address, waiting or served (default 32) */
	int64_t header_timeout_ms;    /* a new connection's time to send its request head (10 s) */
	uint32_t max_tokens;          /* cap on a request's max tokens (default 4096) */
	/* model discovery (mgr/discover.h) */
	char models_dirs[CFG_MAX_MODELS_DIRS][MGR_PATH_MAX]; /* models_dir, one per line */
	size_t n_models_dirs;
	bool discover;                /* scan the Ollama, HF and LM Studio stores (default true) */
	/* models */
	struct mgr_model_cfg models[CFG_MAX_MODELS];
	size_t n_models;
	unsigned model_set[CFG_MAX_MODELS]; /* private: keys a model set itself */
	/* where each value came from: "default", "profile production (built-in)",
	 * "dormant.ini:12", "env DORMANT_MAX_RAM" */
	struct { char key[64]; char src[CFG_SRC_MAX]; char val[96]; } src[64 + CFG_MAX_MODELS * 16];
	size_t n_src;
};

/* Fills c from defaults, an optional file (NULL: none), a profile (NULL:
 * $DORMANT_ENV, else none) and the environment. */
int dm_config_load(struct dm_config *c, const char *path, const char *profile, struct dm_err *err);

/* Whether model i's role was written in the configuration (else the
 * runtime takes it from the file: see engine_role_resolve). */
bool dm_config_role_set(const struct dm_config *c, size_t i);

/* The manager configuration (backend and clock left to the caller). */
void dm_config_mgr(const struct dm_config *c, struct mgr_cfg *out);

/* Parsers, exposed for tests and the CLI.  Return 0 or DM_EINVAL. */
int dm_parse_duration_ms(const char *s, int64_t *out);
int dm_parse_size(const char *s, uint64_t *out);
int dm_parse_bool(const char *s, bool *out);

#endif

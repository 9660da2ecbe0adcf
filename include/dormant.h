/*
 * dormant.h — the public C API of libdormant.
 *
 * dormant is a local LLM runtime that holds nothing in memory until a request
 * needs a model, and gives the memory back by the policy the user chose.
 * This header grows with the runtime: today it exposes the version; the
 * lifecycle manager API (open a runtime from a config, generate/embed by
 * model name, load/unload, status) lands with the manager.
 */
#ifndef DORMANT_H
#define DORMANT_H

#define DORMANT_VERSION "0.1.0"

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version string, e.g. "0.1.0". */
const char *dormant_version(void);

#ifdef __cplusplus
}
#endif

#endif

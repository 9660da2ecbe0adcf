/*
 * server/events — the event hub behind GET /api/events and the dashboard.
 *
 * Producers (the runtime's lifecycle observer, the generation code, the
 * hub's own memory sampler) publish small JSON events into a ring of
 * SRV_HUB_SLOTS slots; each slot holds one event's type and text, numbered
 * by a sequence that only grows.  Readers (one per /api/events client)
 * keep their own cursor: a reader that falls more than a ring behind
 * skips the events it lost (and is told how many).  Publishing never waits
 * for a reader.
 *
 * The sampler thread exists for the hub's life but sleeps on a condition
 * variable while nobody watches: it samples memory (process RSS split into
 * anonymous and file-backed, the model files' bytes in the page cache)
 * every SRV_HUB_SAMPLE_MS only while at least one reader is registered.
 * When the last reader leaves, the samples are dropped from the ring, so an
 * unwatched server holds only its lifecycle and request history.
 *
 * Event types and their data (every one has "t": unix seconds):
 *   lifecycle {model, from, to, seconds, bytes, rss, anon, file, evict, error}
 *   request   {endpoint, model, status, prompt_tokens, gen_tokens, ttft_s,
 *              tok_s, total_s, load_s, stream, error}
 *   memory    {rss, anon, file, cache, max_ram}
 *   models    {models: [per-model status as in /health, plus ttft]}
 */
#ifndef DM_SERVER_EVENTS_H
#define DM_SERVER_EVENTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "dormant.h"

#define SRV_HUB_SLOTS 1024
#define SRV_HUB_SAMPLE_MS 500

struct srv_hub;

/* A hub for runtime d (borrowed; must outlive the hub), its sampler thread
 * started and asleep.  DM_ENOMEM when out of memory or threads. */
int srv_hub_init(struct srv_hub **out, dormant *d, struct dm_err *err);
/* Stops the sampler and frees every event.  No reader or producer may be
 * running.  NULL is a no-op. */
void srv_hub_free(struct srv_hub *h);

/* Publishes an event of type (at most 15 bytes) with data (an object,
 * taken; "t" is added).  Never blocks on readers; drops the event when out
 * of memory.  Safe from any thread, including the runtime's observer. */
void srv_hub_publish(struct srv_hub *h, const char *type, json_t *data);

/* A runtime observer (dormant_observe_add) publishing lifecycle
 * events into the hub passed as ud. */
void srv_hub_observe(void *ud, const struct dormant_event *ev);

/* Registers (+1) or unregisters (-1) a reader; the sampler runs while the
 * count is positive. */
void srv_hub_watch(struct srv_hub *h, int delta);
/* The sequence number a new reader starts from: the oldest event kept. */
uint64_t srv_hub_oldest(struct srv_hub *h);

/* The next event at or after *cursor, waiting up to wait_ms for one.
 * Returns 1 with *seq, type (cap >= 16) and *data (malloc'd JSON text, the
 * caller frees) and *cursor moved past it; 0 when none came.  *dropped
 * (may be NULL) gets how many events the reader lost by falling behind. */
int srv_hub_next(struct srv_hub *h, uint64_t *cursor, uint64_t *seq, char *type, char **data,
		 uint64_t *dropped, int wait_ms);

/* Wakes every reader waiting in srv_hub_next (the server is stopping). */
void srv_hub_wake(struct srv_hub *h);

#endif

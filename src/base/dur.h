/*
 * base/dur — the one duration grammar of dormant, shared by the config file
 * (keep_alive, queue_timeout, ...) and both HTTP APIs (keep_alive).
 *
 *   duration := ws ( "forever" | [sign] ws term (ws term)* | [sign] ws number ) ws
 *   term     := number ws unit          unit := ns | us | ms | s | m | min | h
 *
 * where ws is any run of white space, empty included ("- 5m", "1h 30m"), and
 * "forever" is matched in any case.
 *
 * Go's time.ParseDuration ("1h30m", "250ms", "1.5h"), which Ollama's clients
 * send, plus "min" and a bare number of seconds.  A negative duration means
 * forever, as in Ollama ("-1", "-5m").
 */
#ifndef DM_BASE_DUR_H
#define DM_BASE_DUR_H

#include <stdint.h>

#include "base/err.h"

#define DM_DURATION_FOREVER (-1)

/* Parses s into milliseconds (fractions of a millisecond are dropped);
 * DM_DURATION_FOREVER for "forever" or a negative duration.  DM_EINVAL with
 * a message naming what is wrong; DM_ERANGE above ~31 years. */
int dm_duration_parse(const char *s, int64_t *ms, struct dm_err *err);

#endif

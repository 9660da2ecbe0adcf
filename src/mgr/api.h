/*
 * mgr/api — what libdormant's own modules (the server, the CLI) may ask of
 * a runtime beyond include/dormant.h.
 */
#ifndef DM_MGR_API_H
#define DM_MGR_API_H

#include "dormant.h"
#include "mgr/config.h"

/* The configuration the runtime was opened with (valid until
 * dormant_close). */
const struct dm_config *dormant_config(const dormant *d);

#endif

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

/* The runtime's manager (valid until dormant_close), for the runtime's
 * own files (rag.c). */
struct mgr *dormant_mgr(dormant *d);

/* 0 when model's role answers `want` requests (or the model is unknown:
 * acquiring it reports that); DM_EINVAL "model 'x' has role embed: it does
 * not answer generate requests" otherwise. */
int dormant_role_check(dormant *d, const char *model, enum mgr_role want, struct dm_err *err);

#endif

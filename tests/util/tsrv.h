/*
 * tests/util/tsrv — a runtime and an in-process server for the HTTP tests:
 * one place for the set-up they share.
 */
#ifndef DM_TESTS_TSRV_H
#define DM_TESTS_TSRV_H

#include <pthread.h>
#include <stdint.h>

#include "dormant.h"
#include "server/server.h"

/* Writes ini_text to tu_tmp_path(ini_name), opens a runtime on it, lets
 * prepare (may be NULL) register more models, then starts a server on a
 * free port of 127.0.0.1.  0, or -1 with the reason on stderr. */
int tsrv_open(const char *ini_name, const char *ini_text, int (*prepare)(dormant *d), dormant **d,
	      struct srv **s, uint16_t *port);
/* Stops the server, then closes the runtime. */
void tsrv_close(dormant *d, struct srv *s);

/* Keeps a model busy: tsrv_hold starts a generation on another thread and
 * returns once it holds the model (its first token waits); tsrv_release
 * lets it finish and joins the thread. */
struct tsrv_hold {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int entered, open;
	dormant *d;
	const char *model;
	pthread_t th;
	int rc;               /* the generation's result, after tsrv_release */
};
void tsrv_hold(struct tsrv_hold *h, dormant *d, const char *model);
void tsrv_release(struct tsrv_hold *h);

#endif

/* tests/util/tsrv — see tsrv.h. */
#include "tsrv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tutil.h"

int tsrv_open(const char *ini_name, const char *ini_text, int (*prepare)(dormant *d), dormant **d,
	      struct srv **s, uint16_t *port)
{
	const char *ini = tu_tmp_path(ini_name);
	char err[256];
	struct srv_cfg sc;
	struct dm_err e;

	*d = NULL;
	*s = NULL;
	if (tu_write_file(ini, ini_text, strlen(ini_text)))
		return fprintf(stderr, "%s: cannot write\n", ini), -1;
	if (dormant_open(d, ini, NULL, err, sizeof err))
		return fprintf(stderr, "%s\n", err), -1;
	if (prepare && prepare(*d))
		return -1;
	srv_cfg_from_runtime(&sc, *d);
	sc.port = 0;
	if (srv_start(s, *d, &sc, &e))
		return fprintf(stderr, "%s\n", e.msg), -1;
	*port = srv_port(*s);
	return 0;
}

void tsrv_close(dormant *d, struct srv *s)
{
	srv_stop(s);
	dormant_close(d);
}

static int hold_first_token(void *ud, const char *t, size_t n)
{
	struct tsrv_hold *h = ud;
	(void)t;
	(void)n;
	pthread_mutex_lock(&h->mu);
	h->entered = 1;
	pthread_cond_broadcast(&h->cv);
	while (!h->open)
		pthread_cond_wait(&h->cv, &h->mu);
	pthread_mutex_unlock(&h->mu);
	return 0;
}

static void *holder(void *arg)
{
	struct tsrv_hold *h = arg;
	struct dormant_gen_opts o = { .max_tokens = 2, .temperature = 0, .top_k = -1, .top_p = -1, .min_p = -1 };
	char err[256];
	h->rc = dormant_generate(h->d, h->model, "hold", &o, hold_first_token, h, NULL, err, sizeof err);
	return NULL;
}

void tsrv_hold(struct tsrv_hold *h, dormant *d, const char *model)
{
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	h->entered = h->open = 0;
	h->d = d;
	h->model = model;
	if (pthread_create(&h->th, NULL, holder, h))
		abort();
	pthread_mutex_lock(&h->mu);
	while (!h->entered)
		pthread_cond_wait(&h->cv, &h->mu);
	pthread_mutex_unlock(&h->mu);
}

void tsrv_release(struct tsrv_hold *h)
{
	pthread_mutex_lock(&h->mu);
	h->open = 1;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->th, NULL);
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
}

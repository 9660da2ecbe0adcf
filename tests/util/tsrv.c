/* tests/util/tsrv — see tsrv.h. */
#include "tsrv.h"

#include <stdio.h>
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

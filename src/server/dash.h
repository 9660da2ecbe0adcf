/*
 * server/dash — the dashboard served by `dormant serve` at GET / (a page,
 * its script and its style sheet, embedded in the binary at build time
 * from src/server/dash/ by scripts/embed.sh) and the GET /api/events
 * Server-Sent Events stream (events.h) it draws from.
 */
#ifndef DM_SERVER_DASH_H
#define DM_SERVER_DASH_H

#include <stdbool.h>
#include <stddef.h>

/* One embedded file (the generated build/gen/dash_assets.c defines the
 * table; its last entry has path NULL). */
struct srv_asset {
	const char *path;  /* URL path: "/", "/dash.js", ... */
	const char *ctype;
	const unsigned char *data;
	size_t len;
};
extern const struct srv_asset srv_dash_assets[];

struct srv;
struct srv_req;
struct srv_gen;
struct dm_err;

/* Creates s->hub and adds it as an observer of the runtime's lifecycle
 * (srv_start, before any connection); srv_dash_stop (srv_stop, after every
 * stream thread ended) removes the observer and frees the hub. */
int srv_dash_start(struct srv *s, struct dm_err *err);
void srv_dash_stop(struct srv *s);
/* Publishes a finished generation request (gen.c, once per request). */
void srv_dash_request(const struct srv_gen *g);
/* True when url names an embedded asset. */
bool srv_dash_is_asset(const char *url);
/* Serves an asset (GET or HEAD) with its content type and a
 * Content-Security-Policy that allows nothing but this origin's own files
 * (no inline script or style, no other hosts). */
int srv_dash_asset(struct srv_req *r);
/* GET /api/events: the event stream (text/event-stream), from the oldest
 * event the hub keeps, or after the one a Last-Event-ID header names. */
int srv_dash_events(struct srv_req *r);

#endif

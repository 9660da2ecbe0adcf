/* server/disc — discovered models in the listings (/api/tags, /v1/models),
 * POST /api/rescan (mgr/discover.h) and POST /api/reload (the configuration
 * again, then a rescan: dormant_reload).  Kept apart from the API files:
 * the listings only call the two helpers below. */
#include "server/srv_int.h"

#include <stdlib.h>
#include <string.h>

#include "mgr/api.h"

static void put_facts(json_t *o, const struct disc_model *m)
{
	json_object_set_new(o, "source", json_string(disc_source_name(m->source)));
	json_object_set_new(o, "origin", json_string(m->origin));
	if (m->arch[0])
		json_object_set_new(o, "architecture", json_string(m->arch));
	if (m->quant[0])
		json_object_set_new(o, "quantization", json_string(m->quant));
	if (m->n_params)
		json_object_set_new(o, "parameter_count", json_integer((json_int_t)m->n_params));
	if (m->n_ctx_train)
		json_object_set_new(o, "context_length", json_integer((json_int_t)m->n_ctx_train));
	if (m->rc)
		json_object_set_new(o, "error", json_string(m->err));
}

void srv_disc_annotate(struct srv *s, const char *name, json_t *entry)
{
	struct disc_model *m = malloc(sizeof *m);
	if (m && dormant_discovered_model(s->d, name, m))
		put_facts(entry, m);
	else
		json_object_set_new(entry, "source", json_string("config"));
	free(m);
}

void srv_disc_broken(struct srv *s, json_t *list, enum srv_api api)
{
	size_t n = dormant_discovered(s->d, NULL, 0);
	struct disc_model *all = n ? calloc(n, sizeof *all) : NULL;
	if (!all)
		return;
	n = dormant_discovered(s->d, all, n);
	for (size_t i = 0; i < n; i++) {
		json_t *o;
		if (!all[i].rc)
			continue;
		o = api == SRV_API_OLLAMA
			    ? json_pack("{s:s,s:s,s:I}", "name", all[i].name, "model", all[i].name, "size",
					(json_int_t)all[i].size)
			    : json_pack("{s:s,s:s,s:s}", "id", all[i].name, "object", "model", "owned_by", "dormant");
		if (o) {
			put_facts(o, &all[i]);
			json_array_append_new(list, o);
		}
	}
	free(all);
}

int srv_rescan(struct srv_req *r)
{
	struct dormant_rescan st;
	struct dm_err e;
	json_t *list;
	int rc = dormant_rescan(r->s->d, &st, &e);

	if (rc)
		return srv_reply_rc(r, rc, e.msg);
	if (r->s->cfg.log) {
		char line[160];
		snprintf(line, sizeof line, "rescan: %zu found, %zu added, %zu removed, %zu broken", st.found,
			 st.added, st.removed, st.broken);
		r->s->cfg.log(r->s->cfg.log_ud, line);
	}
	list = json_array();
	srv_disc_broken(r->s, list, SRV_API_OLLAMA);
	return srv_reply_json(r, 200,
			      json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:o}", "found", (json_int_t)st.found, "added",
					(json_int_t)st.added, "removed", (json_int_t)st.removed, "broken",
					(json_int_t)st.broken, "shadowed", (json_int_t)st.shadowed, "busy",
					(json_int_t)st.busy, "errors", list));
}

/* A JSON array of the first min(n, cap) rows of a char[cap][stride] list. */
static json_t *names(const char *rows, size_t stride, size_t n, size_t cap)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < n && i < cap; i++)
		json_array_append_new(a, json_string(rows + i * stride));
	return a;
}

#define NAMES(st, f, n) names((st)->f[0], sizeof (st)->f[0], (st)->n, sizeof (st)->f / sizeof (st)->f[0])

int srv_reload(struct srv_req *r)
{
	struct dormant_reload *st = calloc(1, sizeof *st);
	char err[DM_ERR_MSG_MAX], line[512];
	json_t *o;
	int rc;

	if (!st)
		return srv_reply_error(r, 500, "out of memory");
	if ((rc = dormant_reload(r->s->d, st, err, sizeof err))) {
		/* the configuration was refused and the running one stays */
		if (r->s->cfg.log) {
			snprintf(line, sizeof line, "reload refused: %s", err);
			r->s->cfg.log(r->s->cfg.log_ud, line);
		}
		free(st);
		return srv_reply_error(r, rc == DM_ENOMEM ? 500 : 400, "%s", err);
	}
	if (r->s->cfg.log) {
		dormant_reload_summary(st, line, sizeof line);
		r->s->cfg.log(r->s->cfg.log_ud, line);
	}
	o = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:o,s:o,s:o,s:o,s:{s:I,s:I,s:I,s:I}}",
		      "kept", (json_int_t)st->n_kept, "changed", (json_int_t)st->n_changed, "added",
		      (json_int_t)st->n_added, "removed", (json_int_t)st->n_removed, "needs_restart",
		      (json_int_t)st->n_restart, "unloaded", (json_int_t)st->n_unloaded, "unload_when_idle",
		      (json_int_t)st->n_pending, "evicted", (json_int_t)st->n_evicted,
		      "kept_models", NAMES(st, kept, n_kept), "changed_models", NAMES(st, changed, n_changed),
		      "added_models", NAMES(st, added, n_added), "removed_models", NAMES(st, removed, n_removed),
		      "restart_settings", NAMES(st, restart, n_restart),
		      "rescan", "found", (json_int_t)st->disc_found, "added", (json_int_t)st->disc_added,
		      "removed", (json_int_t)st->disc_removed, "broken", (json_int_t)st->disc_broken);
	free(st);
	return srv_reply_json(r, 200, o);
}

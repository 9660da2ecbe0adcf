/* server/util — time, ids, keep-alive parsing, JSON field checks, model
 * details from GGUF metadata. */
#include "server/srv_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/dur.h"
#include "gguf/gguf.h"

double srv_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double srv_unix_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void srv_time_rfc3339(char *buf, size_t cap, double unix_s)
{
	time_t t = (time_t)floor(unix_s);
	long ns = (long)((unix_s - (double)t) * 1e9);
	struct tm tm;
	char base[32];
	if (ns < 0)
		ns = 0;
	if (ns > 999999999)
		ns = 999999999;
	gmtime_r(&t, &tm);
	strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, cap, "%s.%09ldZ", base, ns);
}

void srv_make_id(char *buf, size_t cap, const char *prefix)
{
	static const char hex[] = "0123456789abcdef";
	struct timespec ts;
	uint64_t x;
	size_t n;
	clock_gettime(CLOCK_REALTIME, &ts);
	/* splitmix64 of the time and the buffer address: unique enough for
	 * response ids, which only need to differ between responses */
	x = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + (uint64_t)(uintptr_t)buf;
	snprintf(buf, cap, "%s", prefix);
	n = strlen(buf);
	for (int k = 0; k < 2; k++) {
		uint64_t z = (x += 0x9e3779b97f4a7c15ull);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		z ^= z >> 31;
		for (int i = 0; i < 12 && n + 1 < cap; i++, z >>= 4)
			buf[n++] = hex[z & 15];
	}
	buf[n < cap ? n : cap - 1] = '\0';
}

/* A number of seconds or a duration string in the grammar the config file
 * uses too (base/dur.h); negative means forever (-1 out). */
int srv_parse_keep_alive(const json_t *v, int64_t *ms, char *why, size_t cap)
{
	struct dm_err e;

	if (json_is_number(v)) {
		double x = json_number_value(v);
		if (!isfinite(x) || fabs(x) > 1e9)
			return snprintf(why, cap, "keep_alive is out of range"), -1;
		*ms = x < 0 ? -1 : (int64_t)(x * 1000.0);
		return 0;
	}
	if (!json_is_string(v))
		return snprintf(why, cap, "keep_alive must be a number of seconds or a duration string like \"5m\""), -1;
	if (dm_duration_parse(json_string_value(v), ms, &e))
		return snprintf(why, cap, "keep_alive: %s", e.msg), -1;
	return 0;
}

bool srv_model_find(struct srv *s, const char *name, struct dormant_model_status *st)
{
	/* as many as are registered (discovery has no upper bound); a model
	 * registered between the two calls is found by the next request */
	size_t cap = dormant_status(s->d, NULL, 0) + 1, n;
	struct dormant_model_status *all = calloc(cap, sizeof *all);
	bool found = false;
	if (!all)
		return false;
	n = dormant_status(s->d, all, cap);
	for (size_t i = 0; i < n && i < cap && !found; i++)
		if (!strcmp(all[i].name, name)) {
			if (st)
				*st = all[i];
			found = true;
		}
	free(all);
	return found;
}

void srv_count_tokens(struct srv *s, const char *model, int prompt, int gen, bool error)
{
	size_t i;
	pthread_mutex_lock(&s->mu);
	for (i = 0; i < s->n_models; i++)
		if (!strcmp(s->models[i].name, model))
			break;
	if (i == s->n_models && i < SRV_MAX_MODELS) {
		snprintf(s->models[i].name, sizeof s->models[i].name, "%s", model);
		s->n_models++;
	}
	if (i < s->n_models) {
		s->models[i].requests++;
		s->models[i].prompt_tokens += (uint64_t)(prompt > 0 ? prompt : 0);
		s->models[i].gen_tokens += (uint64_t)(gen > 0 ? gen : 0);
		s->models[i].errors += error;
	}
	pthread_mutex_unlock(&s->mu);
}

/* ---- JSON fields ---- */

int srv_get_string(struct srv_req *r, json_t *o, const char *key, bool required, const char **out)
{
	json_t *v = json_object_get(o, key);
	*out = NULL;
	if (!v || json_is_null(v)) {
		if (required) {
			srv_reply_error(r, 400, "missing field '%s'", key);
			return -1;
		}
		return 0;
	}
	if (!json_is_string(v)) {
		srv_reply_error(r, 400, "field '%s' must be a string", key);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

int srv_get_number(struct srv_req *r, json_t *o, const char *key, double lo, double hi, bool *has,
		   double *out)
{
	json_t *v = json_object_get(o, key);
	*has = false;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_number(v)) {
		srv_reply_error(r, 400, "field '%s' must be a number", key);
		return -1;
	}
	*out = json_number_value(v);
	if (!isfinite(*out) || *out < lo || *out > hi) {
		srv_reply_error(r, 400, "field '%s' = %g is out of range [%g, %g]", key, *out, lo, hi);
		return -1;
	}
	*has = true;
	return 0;
}

int srv_get_int(struct srv_req *r, json_t *o, const char *key, int64_t lo, int64_t hi, bool *has,
		int64_t *out)
{
	json_t *v = json_object_get(o, key);
	*has = false;
	if (!v || json_is_null(v))
		return 0;
	if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
	    fabs(json_real_value(v)) < 9e15) {
		*out = (int64_t)json_real_value(v);
	} else if (json_is_integer(v)) {
		*out = json_integer_value(v);
	} else {
		srv_reply_error(r, 400, "field '%s' must be a whole number", key);
		return -1;
	}
	if (*out < lo || *out > hi) {
		srv_reply_error(r, 400, "field '%s' = %lld is out of range [%lld, %lld]", key,
				(long long)*out, (long long)lo, (long long)hi);
		return -1;
	}
	*has = true;
	return 0;
}

int srv_get_float(struct srv_req *r, json_t *o, const char *key, double lo, double hi, float *dst)
{
	bool has;
	double x;
	if (srv_get_number(r, o, key, lo, hi, &has, &x))
		return -1;
	if (has)
		*dst = (float)x;
	return 0;
}

int srv_get_bool(struct srv_req *r, json_t *o, const char *key, bool *out)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v)) {
		srv_reply_error(r, 400, "field '%s' must be true or false", key);
		return -1;
	}
	*out = json_is_true(v);
	return 0;
}

/* ---- model details from the file's metadata ---- */

json_t *srv_model_details(const char *path, json_t **model_info, char **chat_template,
			  uint64_t *file_size, double *mtime)
{
	struct gguf_file *g = NULL;
	struct gguf_str str;
	struct dm_err e;
	struct stat sb;
	json_t *d;
	char psize[32], buf[160];
	uint32_t ft;
	uint64_t n_params = 0;

	if (model_info)
		*model_info = NULL;
	if (chat_template)
		*chat_template = NULL;
	if (file_size)
		*file_size = 0;
	if (mtime)
		*mtime = 0;
	if (!stat(path, &sb)) {
		if (file_size)
			*file_size = (uint64_t)sb.st_size;
		if (mtime)
			*mtime = (double)sb.st_mtim.tv_sec + (double)sb.st_mtim.tv_nsec * 1e-9;
	}
	d = json_pack("{s:s,s:s,s:[],s:s,s:s,s:s}", "parent_model", "", "format", "gguf", "families",
		      "family", "unknown", "parameter_size", "unknown", "quantization_level", "unknown");
	if (!d || gguf_open(&g, path, &e))
		return d;
	if (!gguf_get_str_buf(g, "general.architecture", buf, sizeof buf, NULL)) {
		json_object_set_new(d, "family", json_string(buf));
		json_array_append_new(json_object_get(d, "families"), json_string(buf));
	}
	if (!gguf_get_u32(g, "general.file_type", &ft, NULL))
		json_object_set_new(d, "quantization_level", json_string(gguf_file_type_name(ft)));
	for (uint64_t i = 0; i < g->n_tensors; i++)
		n_params += (uint64_t)g->tensors[i].n_elem;
	if (n_params >= 1000000000ull)
		snprintf(psize, sizeof psize, "%.1fB", (double)n_params / 1e9);
	else
		snprintf(psize, sizeof psize, "%.0fM", (double)n_params / 1e6);
	json_object_set_new(d, "parameter_size", json_string(psize));
	if (chat_template && !gguf_get_str(g, "tokenizer.chat_template", &str, NULL))
		*chat_template = strndup(str.ptr, (size_t)str.len);
	if (model_info && (*model_info = json_object())) {
		json_object_set_new(*model_info, "general.parameter_count", json_integer((json_int_t)n_params));
		for (uint64_t i = 0; i < g->n_kv; i++) {
			const struct gguf_kv *kv = &g->kv[i];
			const struct gguf_value *v = &kv->val;
			json_t *val = NULL;
			int64_t iv;
			double fv;
			if (kv->key.len >= sizeof buf)
				continue;
			memcpy(buf, kv->key.ptr, (size_t)kv->key.len);
			buf[kv->key.len] = '\0';
			switch (v->type) {
			case GGUF_VT_STRING:
				/* the chat template has its own field; long strings are elided */
				if (strcmp(buf, "tokenizer.chat_template") && v->str.len <= 1024)
					val = json_stringn(v->str.ptr, (size_t)v->str.len);
				break;
			case GGUF_VT_ARRAY:
				break; /* vocabularies and the like are elided, as Ollama does */
			case GGUF_VT_BOOL:
				val = json_boolean(v->p[0] != 0);
				break;
			case GGUF_VT_FLOAT32:
			case GGUF_VT_FLOAT64:
				if (!gguf_value_f64(v, &fv))
					val = json_real(fv);
				break;
			default:
				if (!gguf_value_i64(v, &iv))
					val = json_integer((json_int_t)iv);
				break;
			}
			/* invalid UTF-8 in a string value: json_stringn refuses it */
			if (val)
				json_object_set_new(*model_info, buf, val);
		}
	}
	gguf_close(g);
	return d;
}

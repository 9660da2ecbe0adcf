/* mgr/config — see config.h. */
#include "mgr/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/dur.h"
#include "gguf/gguf.h"

/* ---- value parsers ---- */

static const char *skip_ws(const char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	return s;
}

int dm_parse_duration_ms(const char *s, int64_t *out)
{
	/* the grammar requests use too (base/dur.h) */
	return dm_duration_parse(s, out, NULL) ? DM_EINVAL : 0;
}

static uint64_t physical_ram(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	return pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
}

int dm_parse_size(const char *s, uint64_t *out)
{
	static const struct { const char *u; double m; } units[] = {
		{ "", 1 }, { "b", 1 }, { "k", 1e3 }, { "kb", 1e3 }, { "kib", 1024.0 },
		{ "m", 1e6 }, { "mb", 1e6 }, { "mib", 1048576.0 }, { "g", 1e9 }, { "gb", 1e9 },
		{ "gib", 1073741824.0 }, { "t", 1e12 }, { "tb", 1e12 }, { "tib", 1099511627776.0 },
	};
	char *end;
	double v;

	s = skip_ws(s);
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return DM_EINVAL;
	end = (char *)(uintptr_t)skip_ws(end);
	if (!strcmp(end, "%")) {
		if (v > 100)
			return DM_EINVAL;
		*out = (uint64_t)(v / 100.0 * (double)physical_ram());
		return 0;
	}
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (!strcasecmp(end, units[i].u)) {
			if (v * units[i].m > 1.8e19)
				return DM_EINVAL;
			*out = (uint64_t)(v * units[i].m);
			return 0;
		}
	return DM_EINVAL;
}

int dm_parse_bool(const char *s, bool *out)
{
	static const char *yes[] = { "true", "yes", "on", "1" }, *no[] = { "false", "no", "off", "0" };
	s = skip_ws(s);
	for (int i = 0; i < 4; i++) {
		if (!strcasecmp(s, yes[i]))
			return *out = true, 0;
		if (!strcasecmp(s, no[i]))
			return *out = false, 0;
	}
	return DM_EINVAL;
}

static int parse_uint(const char *s, long max, long *out)
{
	char *end;
	long v;
	errno = 0;
	v = strtol(skip_ws(s), &end, 10);
	if (errno || end == s || *skip_ws(end) || v < 0 || v > max)
		return DM_EINVAL;
	*out = v;
	return 0;
}

/* ---- sources ---- */

static void note(struct dm_config *c, const char *key, const char *val, const char *src)
{
	size_t i;
	for (i = 0; i < c->n_src; i++)
		if (!strcmp(c->src[i].key, key))
			break;
	if (i == c->n_src) {
		if (c->n_src == sizeof c->src / sizeof c->src[0])
			return;
		c->n_src++;
	}
	snprintf(c->src[i].key, sizeof c->src[i].key, "%s", key);
	snprintf(c->src[i].val, sizeof c->src[i].val, "%s", val);
	snprintf(c->src[i].src, sizeof c->src[i].src, "%s", src);
}

/* ---- applying one key ---- */

static struct mgr_model_cfg *model_get(struct dm_config *c, const char *name, bool create)
{
	for (size_t i = 0; i < c->n_models; i++)
		if (!strcmp(c->models[i].name, name))
			return &c->models[i];
	if (!create || c->n_models == CFG_MAX_MODELS)
		return NULL;
	mgr_model_cfg_default(&c->models[c->n_models]);
	snprintf(c->models[c->n_models].name, MGR_NAME_MAX, "%s", name);
	return &c->models[c->n_models++];
}

/* explicit-set flags of per-model keys that have server-level defaults */
enum { SET_KA = 1, SET_THREADS = 2, SET_QUANT = 4, SET_ROLE = 8 };

static int apply_server(struct dm_config *c, const char *key, const char *v, const char **why)
{
	long l;
	if (!strcmp(key, "max_loaded_models")) {
		if (parse_uint(v, 1 << 20, &l))
			return *why = "is not a whole number", DM_EINVAL;
		c->max_loaded_models = (uint32_t)l;
	} else if (!strcmp(key, "max_ram")) {
		if (dm_parse_size(v, &c->max_ram))
			return *why = "is not a size (e.g. 8GiB, 6000MB, 60%)", DM_EINVAL;
	} else if (!strcmp(key, "keep_alive")) {
		if (dm_parse_duration_ms(v, &c->keep_alive_ms))
			return *why = "is not a duration (e.g. 0, 30s, 5m, 1h, forever)", DM_EINVAL;
	} else if (!strcmp(key, "keep_alive_min")) {
		if (dm_parse_duration_ms(v, &c->keep_alive_min_ms) || c->keep_alive_min_ms < 0)
			return *why = "is not a finite duration", DM_EINVAL;
	} else if (!strcmp(key, "keep_alive_max")) {
		if (dm_parse_duration_ms(v, &c->keep_alive_max_ms))
			return *why = "is not a duration", DM_EINVAL;
	} else if (!strcmp(key, "max_queue")) {
		if (parse_uint(v, 1 << 20, &l) || l < 1)
			return *why = "is not a whole number >= 1", DM_EINVAL;
		c->max_queue = (uint32_t)l;
	} else if (!strcmp(key, "queue_timeout")) {
		if (dm_parse_duration_ms(v, &c->queue_timeout_ms) || c->queue_timeout_ms <= 0)
			return *why = "is not a positive duration", DM_EINVAL;
	} else if (!strcmp(key, "enable_fallback")) {
		if (dm_parse_bool(v, &c->enable_fallback))
			return *why = "is not a boolean", DM_EINVAL;
	} else if (!strcmp(key, "drop_page_cache")) {
		if (dm_parse_bool(v, &c->drop_page_cache))
			return *why = "is not a boolean", DM_EINVAL;
	} else if (!strcmp(key, "threads")) {
		if (parse_uint(v, 1024, &l))
			return *why = "is not a whole number (0 = physical cores)", DM_EINVAL;
		c->threads = (int)l;
	} else if (!strcmp(key, "quantize_on_load")) {
		int t = strcasecmp(skip_ws(v), "off") && strcasecmp(skip_ws(v), "none") ? gguf_type_from_name(skip_ws(v)) : -1;
		if (t != -1 && t != GGUF_TYPE_Q8_0 && t != GGUF_TYPE_Q4_0 && t != GGUF_TYPE_Q4_K)
			return *why = "must be off, Q8_0, Q4_0 or Q4_K", DM_EINVAL;
		if (t == -1 && strcasecmp(skip_ws(v), "off") && strcasecmp(skip_ws(v), "none"))
			return *why = "must be off, Q8_0, Q4_0 or Q4_K", DM_EINVAL;
		c->quantize_on_load = t;
	} else if (!strcmp(key, "host")) {
		v = skip_ws(v);
		if (!*v || strlen(v) >= sizeof c->host)
			return *why = "is empty or too long", DM_EINVAL;
		snprintf(c->host, sizeof c->host, "%s", v);
	} else if (!strcmp(key, "port")) {
		if (parse_uint(v, 65535, &l))
			return *why = "is not a port number (0-65535; 0 = any free port)", DM_EINVAL;
		c->port = (uint32_t)l;
	} else if (!strcmp(key, "api_key")) {
		if (strlen(v) >= sizeof c->api_key)
			return *why = "is too long", DM_EINVAL;
		snprintf(c->api_key, sizeof c->api_key, "%s", v);
	} else if (!strcmp(key, "max_body")) {
		if (dm_parse_size(v, &c->max_body) || c->max_body < 1024 || c->max_body > (1ull << 32))
			return *why = "is not a size between 1KiB and 4GiB", DM_EINVAL;
	} else if (!strcmp(key, "max_connections")) {
		if (parse_uint(v, 1 << 16, &l) || l < 1)
			return *why = "is not a whole number >= 1", DM_EINVAL;
		c->max_connections = (uint32_t)l;
	} else if (!strcmp(key, "request_timeout")) {
		if (dm_parse_duration_ms(v, &c->request_timeout_ms) || c->request_timeout_ms < 1000)
			return *why = "is not a duration of at least 1s", DM_EINVAL;
	} else if (!strcmp(key, "max_connections_per_ip")) {
		if (parse_uint(v, 1 << 16, &l) || l < 1)
			return *why = "is not a whole number >= 1", DM_EINVAL;
		c->max_connections_per_ip = (uint32_t)l;
	} else if (!strcmp(key, "header_timeout")) {
		if (dm_parse_duration_ms(v, &c->header_timeout_ms) || c->header_timeout_ms < 100)
			return *why = "is not a duration of at least 100ms", DM_EINVAL;
	} else if (!strcmp(key, "max_tokens")) {
		if (parse_uint(v, 1 << 24, &l) || l < 1)
			return *why = "is not a whole number >= 1", DM_EINVAL;
		c->max_tokens = (uint32_t)l;
	} else if (!strcmp(key, "models_dir")) {
		/* each line adds a folder */
		if (!*v || strlen(v) >= sizeof c->models_dirs[0])
			return *why = "is not a folder path", DM_EINVAL;
		if (c->n_models_dirs == CFG_MAX_MODELS_DIRS)
			return *why = "is one folder too many", DM_EINVAL;
		snprintf(c->models_dirs[c->n_models_dirs++], sizeof c->models_dirs[0], "%s", v);
	} else if (!strcmp(key, "discover")) {
		if (dm_parse_bool(v, &c->discover))
			return *why = "is not a boolean", DM_EINVAL;
	} else {
		return *why = "is not a known setting", DM_EINVAL;
	}
	return 0;
}

static int apply_model(struct dm_config *c, struct mgr_model_cfg *m, const char *key, const char *v,
		       const char **why)
{
	unsigned *set = &c->model_set[m - c->models];
	long l;
	bool b;

	if (!strcmp(key, "path")) {
		if (!*skip_ws(v) || strlen(v) >= MGR_PATH_MAX)
			return *why = "is empty or too long", DM_EINVAL;
		snprintf(m->path, sizeof m->path, "%s", skip_ws(v));
	} else if (!strcmp(key, "role")) {
		if (!strcmp(v, "generate")) m->role = MGR_ROLE_GENERATE;
		else if (!strcmp(v, "embed")) m->role = MGR_ROLE_EMBED;
		else if (!strcmp(v, "rerank")) m->role = MGR_ROLE_RERANK;
		else return *why = "must be generate, embed or rerank", DM_EINVAL;
		*set |= SET_ROLE;
	} else if (!strcmp(key, "load")) {
		if (!strcmp(v, "lazy")) m->load = MGR_LAZY;
		else if (!strcmp(v, "eager")) m->load = MGR_EAGER;
		else return *why = "must be lazy or eager", DM_EINVAL;
	} else if (!strcmp(key, "keep_alive")) {
		if (dm_parse_duration_ms(v, &m->keep_alive_ms))
			return *why = "is not a duration (e.g. 0, 30s, 5m, 1h, forever)", DM_EINVAL;
		*set |= SET_KA;
	} else if (!strcmp(key, "allow_override")) {
		if (dm_parse_bool(v, &b))
			return *why = "is not a boolean", DM_EINVAL;
		m->allow_override = b;
	} else if (!strcmp(key, "mode")) {
		if (!strcmp(v, "mmap")) m->mode = MGR_MODE_MMAP;
		else if (!strcmp(v, "read")) m->mode = MGR_MODE_READ;
		else if (!strcmp(v, "mlock")) m->mode = MGR_MODE_MLOCK;
		else if (!strcmp(v, "prefetch")) m->mode = MGR_MODE_PREFETCH;
		else return *why = "must be mmap, read, mlock or prefetch", DM_EINVAL;
	} else if (!strcmp(key, "quantize_on_load")) {
		struct dm_config tmp = { .quantize_on_load = -1 };
		if (apply_server(&tmp, "quantize_on_load", v, why))
			return DM_EINVAL;
		m->quantize_on_load = tmp.quantize_on_load;
		*set |= SET_QUANT;
	} else if (!strcmp(key, "warmup")) {
		if (!strcmp(v, "auto"))
			m->warmup = -1;
		else if (dm_parse_bool(v, &b))
			return *why = "must be auto, true or false", DM_EINVAL;
		else
			m->warmup = b;
	} else if (!strcmp(key, "pin")) {
		if (dm_parse_bool(v, &b))
			return *why = "must be true or false", DM_EINVAL;
		m->pin = b;
	} else if (!strcmp(key, "kv_persist")) {
		if (!strcmp(v, "auto"))
			m->kv_persist = -1;
		else if (!strcmp(v, "off"))
			m->kv_persist = 0;
		else if (!strcmp(v, "disk"))
			m->kv_persist = 1;
		else
			return *why = "must be auto, off or disk", DM_EINVAL;
	} else if (!strcmp(key, "warmup_ctx")) {
		if (parse_uint(v, 1 << 24, &l))
			return *why = "is not a whole number of positions (0 = default 1024)", DM_EINVAL;
		m->warmup_ctx = (int32_t)l;
	} else if (!strcmp(key, "n_ctx") || !strcmp(key, "n_batch")) {
		if (parse_uint(v, 1 << 24, &l))
			return *why = "is not a whole number (0 = default)", DM_EINVAL;
		*(key[2] == 'c' ? &m->n_ctx : &m->n_batch) = (int32_t)l;
	} else if (!strcmp(key, "n_ctx_max")) {
		if (parse_uint(v, 1 << 24, &l))
			return *why = "is not a whole number of positions (0 = the model's trained context)", DM_EINVAL;
		m->n_ctx_max = (int32_t)l;
	} else if (!strcmp(key, "prefix_cache_max")) {
		if (dm_parse_size(v, &m->prefix_cache_max))
			return *why = "is not a size (e.g. 0, 32MiB, 1GiB)", DM_EINVAL;
	} else if (!strcmp(key, "threads")) {
		if (parse_uint(v, 1024, &l))
			return *why = "is not a whole number", DM_EINVAL;
		m->n_threads = (int)l;
		*set |= SET_THREADS;
	} else if (!strcmp(key, "fallback")) {
		char buf[512], *save = NULL, *tok;
		int k = 0;
		snprintf(buf, sizeof buf, "%s", v);
		memset(m->fallbacks, 0, sizeof m->fallbacks);
		for (tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
			if (k == MGR_MAX_FALLBACKS || strlen(tok) >= MGR_NAME_MAX)
				return *why = "lists too many or too long names", DM_EINVAL;
			snprintf(m->fallbacks[k++], MGR_NAME_MAX, "%s", tok);
		}
	} else {
		return *why = "is not a known model setting", DM_EINVAL;
	}
	return 0;
}

/* ---- the file ---- */

struct entry {
	char section[96], key[96], val[512];
	int line;
};

/* A section header as written ("model chat", "profile production"), with
 * the blanks after the kind collapsed so "[model  chat]" is "model chat". */
struct section {
	char name[96];
	int line;
};

struct parse_state {
	const char *path;
	FILE *f;
	int line;
	bool mid_line;            /* the last chunk read did not end a line */
	struct entry *e;
	size_t n, cap;
	struct section sec[2 * CFG_MAX_MODELS + 32];
	size_t n_sec;
	int dup_line, dup_first;  /* a section header seen twice (0: none) */
	char dup_name[96];
	struct dm_err *err;
	bool failed;
};

/* Records a section header line ("[name]", inih's syntax: the first
 * non-blank is '[') and notes the first duplicate.  inih merges a repeated
 * section into the first, so a second [model a] would silently replace
 * keys of the first; the loader refuses it instead. */
static void section_seen(struct parse_state *ps, const char *line)
{
	const char *p = skip_ws(line), *end, *rest;
	char name[96];
	size_t k, n;

	if (*p != '[' || !(end = strchr(p, ']')))
		return;
	p = skip_ws(p + 1);
	n = (size_t)(end - p);
	while (n && isspace((unsigned char)p[n - 1]))
		n--;
	if (n >= sizeof name)
		n = sizeof name - 1;
	memcpy(name, p, n);
	name[n] = '\0';
	for (k = 0; name[k] && !isspace((unsigned char)name[k]); k++)
		;
	rest = skip_ws(name + k);
	if (name[k] && rest != name + k + 1)
		memmove(name + k + 1, rest, strlen(rest) + 1);
	for (size_t i = 0; i < ps->n_sec; i++)
		if (!strcmp(ps->sec[i].name, name)) {
			if (!ps->dup_line) {
				ps->dup_line = ps->line;
				ps->dup_first = ps->sec[i].line;
				snprintf(ps->dup_name, sizeof ps->dup_name, "%s", name);
			}
			return;
		}
	if (ps->n_sec < sizeof ps->sec / sizeof ps->sec[0]) {
		snprintf(ps->sec[ps->n_sec].name, sizeof ps->sec[ps->n_sec].name, "%s", name);
		ps->sec[ps->n_sec++].line = ps->line;
	}
}

static char *reader(char *str, int num, void *stream)
{
	struct parse_state *ps = stream;
	char *r = fgets(str, num, ps->f);
	if (r) {
		bool at_start = !ps->mid_line;
		ps->line++;
		ps->mid_line = !strchr(r, '\n');
		if (at_start)
			section_seen(ps, r);
	}
	return r;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse_state *ps = user;
	struct entry *e;

	if (ps->n == ps->cap) {
		size_t cap = ps->cap ? ps->cap * 2 : 32;
		struct entry *ne = realloc(ps->e, cap * sizeof *ne);
		if (!ne) {
			dm_err_set(ps->err, DM_ENOMEM, "out of memory");
			ps->failed = true;
			return 0;
		}
		ps->e = ne;
		ps->cap = cap;
	}
	e = &ps->e[ps->n++];
	snprintf(e->section, sizeof e->section, "%s", section);
	snprintf(e->key, sizeof e->key, "%s", name);
	snprintf(e->val, sizeof e->val, "%s", value);
	e->line = ps->line;
	return 1;
}

/* Applies one entry; section "server", "model NAME", or a profile's keys
 * ("key" or "model.NAME.key"). */
static int apply(struct dm_config *c, const char *section, const char *key, const char *val,
		 const char *src, struct dm_err *err)
{
	const char *why = NULL;
	char nk[200];
	int rc;

	if (!strcmp(section, "server")) {
		rc = apply_server(c, key, val, &why);
		snprintf(nk, sizeof nk, "server.%s", key);
	} else if (!strncmp(section, "model ", 6) || !strncmp(key, "model.", 6)) {
		char name[MGR_NAME_MAX];
		const char *k = key;
		struct mgr_model_cfg *m;
		if (!strncmp(section, "model ", 6)) {
			snprintf(name, sizeof name, "%s", skip_ws(section + 6));
		} else {
			const char *dot = strchr(key + 6, '.');
			if (!dot || (size_t)(dot - (key + 6)) >= sizeof name)
				return dm_err_set(err, DM_EINVAL, "%s: key '%s' must be model.NAME.setting", src, key);
			memcpy(name, key + 6, (size_t)(dot - (key + 6)));
			name[dot - (key + 6)] = '\0';
			k = dot + 1;
		}
		if (!mgr_name_valid(name))
			return dm_err_set(err, DM_EINVAL, "%s: bad model name '%s'", src, name);
		m = model_get(c, name, true);
		if (!m)
			return dm_err_set(err, DM_EINVAL, "%s: more than %d models", src, CFG_MAX_MODELS);
		rc = apply_model(c, m, k, val, &why);
		snprintf(nk, sizeof nk, "model.%s.%s", name, k);
	} else {
		return dm_err_set(err, DM_EINVAL, "%s: unknown section [%s]", src, section);
	}
	if (rc)
		return dm_err_set(err, DM_EINVAL, "%s: %s = '%s' %s", src, nk, val, why);
	note(c, nk, strcmp(nk, "server.api_key") ? val : (*val ? "(set)" : ""), src);
	return 0;
}

/* Built-in profiles (the file's [profile NAME] sections go on top). */
static const struct { const char *profile, *key, *val; } builtin[] = {
	{ "testing", "keep_alive", "0" },
	{ "testing", "max_queue", "4" },
	{ "testing", "queue_timeout", "10s" },
	{ "development", "keep_alive", "5m" },
	{ "production", "keep_alive", "30m" },
	{ "production", "enable_fallback", "true" },
};

static const struct { const char *env, *key; } env_keys[] = {
	{ "DORMANT_KEEP_ALIVE", "keep_alive" },
	{ "DORMANT_MAX_RAM", "max_ram" },
	{ "DORMANT_THREADS", "threads" },
	{ "DORMANT_ENABLE_FALLBACK", "enable_fallback" },
	{ "DORMANT_QUANTIZE_ON_LOAD", "quantize_on_load" },
	{ "DORMANT_MAX_LOADED_MODELS", "max_loaded_models" },
	{ "DORMANT_MAX_QUEUE", "max_queue" },
	{ "DORMANT_QUEUE_TIMEOUT", "queue_timeout" },
	{ "DORMANT_DROP_PAGE_CACHE", "drop_page_cache" },
	{ "DORMANT_HOST", "host" },
	{ "DORMANT_PORT", "port" },
	{ "DORMANT_API_KEY", "api_key" },
	{ "DORMANT_MAX_CONNECTIONS_PER_IP", "max_connections_per_ip" },
	{ "DORMANT_DISCOVER", "discover" },
};

/* The file's entries and section headers into ps (nothing applied yet). */
static int parse_file(struct parse_state *ps, const char *path, struct dm_err *err)
{
	int line;

	ps->path = path;
	ps->err = err;
	ps->f = fopen(path, "r");
	if (!ps->f)
		return dm_err_set(err, DM_EIO, "%s: %s", path, strerror(errno));
	line = ini_parse_stream(reader, ps, handler, ps);
	fclose(ps->f);
	if (ps->failed)
		return err ? err->code : DM_ENOMEM;
	if (line != 0)
		return dm_err_set(err, DM_EINVAL, "%s:%d: syntax error", path, line);
	if (ps->dup_line)
		return dm_err_set(err, DM_EINVAL, "%s:%d: section [%s] appears twice (first at line %d)",
				  path, ps->dup_line, ps->dup_name, ps->dup_first);
	return 0;
}
static bool profile_known_builtin(const char *profile)
{
	for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
		if (!strcmp(builtin[i].profile, profile))
			return true;
	return false;
}

/* 1 if profile is built in or has a [profile NAME] section in the file. */
static bool profile_known(const struct parse_state *ps, const char *profile)
{
	char sec[96];
	if (profile_known_builtin(profile))
		return true;
	snprintf(sec, sizeof sec, "profile %s", profile);
	for (size_t i = 0; i < ps->n_sec; i++)
		if (!strcmp(ps->sec[i].name, sec))
			return true;
	return false;
}

/* "profile 'x' is not defined (known profiles: ...)": a typo in --profile
 * or DORMANT_ENV must not quietly run on the base settings. */
static int profile_unknown(const struct parse_state *ps, const char *profile, bool from_env,
			   struct dm_err *err)
{
	char known[200] = "";
	size_t k = 0;
	for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
		if (i == 0 || strcmp(builtin[i].profile, builtin[i - 1].profile))
			k += (size_t)snprintf(known + k, k < sizeof known ? sizeof known - k : 0, "%s%s",
					      k ? ", " : "", builtin[i].profile);
	for (size_t i = 0; i < ps->n_sec && k < sizeof known; i++)
		if (!strncmp(ps->sec[i].name, "profile ", 8) && !profile_known_builtin(ps->sec[i].name + 8))
			k += (size_t)snprintf(known + k, sizeof known - k, ", %s", ps->sec[i].name + 8);
	return dm_err_set(err, DM_EINVAL, "%sprofile '%s' is not defined (known profiles: %s%s)",
			  from_env ? "DORMANT_ENV: " : "", profile, known,
			  ps->path ? "" : "; no configuration file");
}

/* Refuses fallbacks that lead back to a model on the current path (depth
 * first; colour 0 unvisited, 1 on the path, 2 done).  Names that are not in
 * the file are left for the start-up check: --model may add them. */
static int fallback_visit(const struct dm_config *c, size_t i, unsigned char *colour, size_t *path,
			  size_t depth, struct dm_err *err)
{
	colour[i] = 1;
	path[depth] = i;
	for (int f = 0; f < MGR_MAX_FALLBACKS && c->models[i].fallbacks[f][0]; f++) {
		size_t j;
		for (j = 0; j < c->n_models; j++)
			if (!strcmp(c->models[j].name, c->models[i].fallbacks[f]))
				break;
		if (j == c->n_models || colour[j] == 2)
			continue;
		if (colour[j] == 1) {
			char chain[512], key[96];
			const char *src = "config";
			size_t k = 0, d = 0;
			while (path[d] != j)
				d++;
			for (; d <= depth; d++)
				k += (size_t)snprintf(chain + k, k < sizeof chain ? sizeof chain - k : 0, "%s -> ",
						      c->models[path[d]].name);
			if (k < sizeof chain)
				snprintf(chain + k, sizeof chain - k, "%s", c->models[j].name);
			snprintf(key, sizeof key, "model.%s.fallback", c->models[i].name);
			for (size_t e = 0; e < c->n_src; e++)
				if (!strcmp(c->src[e].key, key))
					src = c->src[e].src;
			return dm_err_set(err, DM_EINVAL, "%s: model fallbacks form a cycle: %s", src, chain);
		}
		if (fallback_visit(c, j, colour, path, depth + 1, err))
			return DM_EINVAL;
	}
	colour[i] = 2;
	return 0;
}

int dm_config_load(struct dm_config *c, const char *path, const char *profile, struct dm_err *err)
{
	struct parse_state ps = { .path = NULL };
	char src[CFG_SRC_MAX];
	bool from_env = false;
	int rc = 0;

	memset(c, 0, sizeof *c);
	c->keep_alive_ms = 5 * 60 * 1000;
	c->keep_alive_max_ms = -1;
	c->max_queue = 16;
	c->queue_timeout_ms = 60000;
	c->quantize_on_load = -1;
	snprintf(c->host, sizeof c->host, "127.0.0.1");
	c->port = CFG_DEFAULT_PORT;
	c->max_body = 8u << 20;
	c->max_connections = 64;
	c->request_timeout_ms = 30000;
	c->max_connections_per_ip = 32;
	c->header_timeout_ms = 10000;
	c->max_tokens = 4096;
	c->discover = true;
	if (!profile || !*profile) {
		profile = getenv("DORMANT_ENV");
		from_env = true;
	}
	if (profile && *profile) {
		if (strlen(profile) >= sizeof c->profile)
			return dm_err_set(err, DM_EINVAL, "profile name '%s' is too long", profile);
		snprintf(c->profile, sizeof c->profile, "%s", profile);
	}
	{
		static const char *defaults[][2] = {
			{ "keep_alive", "5m" }, { "max_queue", "16" }, { "queue_timeout", "60s" },
			{ "max_ram", "0" }, { "max_loaded_models", "0" }, { "enable_fallback", "false" },
			{ "threads", "0" }, { "quantize_on_load", "off" }, { "drop_page_cache", "false" },
			{ "host", "127.0.0.1" }, { "port", "7373" }, { "api_key", "" },
			{ "max_body", "8MiB" }, { "max_connections", "64" }, { "request_timeout", "30s" },
			{ "max_tokens", "4096" }, { "max_connections_per_ip", "32" },
			{ "header_timeout", "10s" },
		};
		for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
			char nk[96];
			snprintf(nk, sizeof nk, "server.%s", defaults[i][0]);
			note(c, nk, defaults[i][1], "default");
		}
	}
	if (path && (rc = parse_file(&ps, path, err)))
		goto out;
	if (c->profile[0] && !profile_known(&ps, c->profile)) {
		rc = profile_unknown(&ps, c->profile, from_env, err);
		goto out;
	}
	for (size_t i = 0; c->profile[0] && i < sizeof builtin / sizeof builtin[0]; i++)
		if (!strcmp(builtin[i].profile, c->profile)) {
			snprintf(src, sizeof src, "profile %s (built-in)", c->profile);
			if ((rc = apply(c, "server", builtin[i].key, builtin[i].val, src, err)))
				goto out;
		}
	/* [server] and [model ...] in file order, then the profile */
	for (int pass = 0; pass < 2 && !rc; pass++)
		for (size_t i = 0; i < ps.n && !rc; i++) {
			const struct entry *e = &ps.e[i];
			bool is_profile = !strncmp(e->section, "profile ", 8);
			snprintf(src, sizeof src, "%s:%d", path, e->line);
			if (pass == 0 && !is_profile) {
				rc = apply(c, e->section, e->key, e->val, src, err);
			} else if (pass == 1 && is_profile && c->profile[0] &&
				   !strcmp(skip_ws(e->section + 8), c->profile)) {
				snprintf(src, sizeof src, "%s:%d (profile %s)", path, e->line, c->profile);
				rc = apply(c, strncmp(e->key, "model.", 6) ? "server" : "profile",
					   e->key, e->val, src, err);
			}
		}
	if (rc)
		goto out;
	for (size_t i = 0; i < sizeof env_keys / sizeof env_keys[0]; i++) {
		const char *v = getenv(env_keys[i].env);
		if (v && *v) {
			snprintf(src, sizeof src, "env %s", env_keys[i].env);
			if ((rc = apply(c, "server", env_keys[i].key, v, src, err)))
				goto out;
		}
	}
	/* server-level defaults for models that did not set their own */
	for (size_t i = 0; i < c->n_models; i++) {
		struct mgr_model_cfg *m = &c->models[i];
		if (!(c->model_set[i] & SET_KA))
			m->keep_alive_ms = c->keep_alive_ms;
		if (!(c->model_set[i] & SET_THREADS))
			m->n_threads = c->threads;
		if (!(c->model_set[i] & SET_QUANT))
			m->quantize_on_load = c->quantize_on_load;
		if (!m->path[0]) {
			rc = dm_err_set(err, DM_EINVAL, "%s: model '%s' has no path", path ? path : "config",
					m->name);
			goto out;
		}
	}
	{
		unsigned char colour[CFG_MAX_MODELS] = { 0 };
		size_t stack[CFG_MAX_MODELS];
		for (size_t i = 0; i < c->n_models && !rc; i++)
			if (!colour[i])
				rc = fallback_visit(c, i, colour, stack, 0, err);
	}
out:
	free(ps.e);
	return rc;
}

bool dm_config_role_set(const struct dm_config *c, size_t i)
{
	return i < c->n_models && (c->model_set[i] & SET_ROLE);
}

void dm_config_mgr(const struct dm_config *c, struct mgr_cfg *out)
{
	out->max_loaded_models = c->max_loaded_models;
	out->max_ram = c->max_ram;
	out->keep_alive_min_ms = c->keep_alive_min_ms;
	out->keep_alive_max_ms = c->keep_alive_max_ms;
	out->max_queue = c->max_queue;
	out->queue_timeout_ms = c->queue_timeout_ms;
	out->enable_fallback = c->enable_fallback;
}

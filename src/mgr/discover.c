/*
 * mgr/discover — see discover.h.  A scan builds a new entry list from
 * scratch; only the header facts are kept between scans (the cache, keyed
 * by path, size and mtime, pruned to the files the last scan saw).
 */
#include "mgr/discover.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "gguf/gguf.h"

#define WALK_DEPTH 8         /* folders below a root a scan goes into */
#define LAYER_MAX (1 << 20)  /* system / params layers larger than this are ignored */

/* Header facts of one file version. */
struct hdr {
	char path[MGR_PATH_MAX];
	uint64_t size;
	int64_t mtime_ns;
	bool seen;               /* by the scan in progress */
	char arch[32], quant[16];
	uint64_t n_params;
	uint32_t n_ctx_train, split_count;
	int rc;
	char err[DM_ERR_MSG_MAX];
};

struct disc {
	struct disc_model *m;
	size_t n, cap;
	struct hdr *h;
	size_t n_h, cap_h;
	uint64_t header_reads;
};

/* A file a walk found: its path relative to the walk's root and in full. */
struct found {
	char rel[MGR_PATH_MAX];
	char full[MGR_PATH_MAX];
	uint64_t size;
	int64_t mtime_ns;
};

struct flist {
	struct found *f;
	size_t n, cap;
};

const char *disc_source_name(enum disc_source s)
{
	static const char *n[] = { "dir", "ollama", "hf", "lmstudio" };
	return (unsigned)s < 4 ? n[s] : "?";
}

int disc_init(struct disc **out, struct dm_err *err)
{
	if (!(*out = calloc(1, sizeof **out)))
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	return 0;
}

void disc_free(struct disc *d)
{
	if (!d)
		return;
	free(d->m);
	free(d->h);
	free(d);
}

size_t disc_count(const struct disc *d)
{
	return d->n;
}

const struct disc_model *disc_get(const struct disc *d, size_t i)
{
	return i < d->n ? &d->m[i] : NULL;
}

const struct disc_model *disc_find(const struct disc *d, const char *name)
{
	for (size_t i = 0; i < d->n; i++)
		if (!strcmp(d->m[i].name, name))
			return &d->m[i];
	return NULL;
}

uint64_t disc_header_reads(const struct disc *d)
{
	return d->header_reads;
}

static bool is_dir(const char *p)
{
	struct stat sb;
	return p && !stat(p, &sb) && S_ISDIR(sb.st_mode);
}

void disc_default_roots(struct disc_cfg *c, const char *(*env)(const char *name),
			char bufs[3][MGR_PATH_MAX])
{
	const char *home = env("HOME"), *v;

	c->ollama = c->hf = c->lmstudio = NULL;
	if ((v = env("OLLAMA_MODELS")) && *v)
		snprintf(bufs[0], MGR_PATH_MAX, "%s", v);
	else if (home && *home)
		snprintf(bufs[0], MGR_PATH_MAX, "%s/.ollama/models", home);
	else
		bufs[0][0] = '\0';
	if ((v = env("HF_HUB_CACHE")) && *v)
		snprintf(bufs[1], MGR_PATH_MAX, "%s", v);
	else if ((v = env("HF_HOME")) && *v)
		snprintf(bufs[1], MGR_PATH_MAX, "%s/hub", v);
	else if (home && *home)
		snprintf(bufs[1], MGR_PATH_MAX, "%s/.cache/huggingface/hub", home);
	else
		bufs[1][0] = '\0';
	if (home && *home)
		snprintf(bufs[2], MGR_PATH_MAX, "%s/.lmstudio/models", home);
	else
		bufs[2][0] = '\0';
	if (bufs[0][0] && is_dir(bufs[0]))
		c->ollama = bufs[0];
	if (bufs[1][0] && is_dir(bufs[1]))
		c->hf = bufs[1];
	if (bufs[2][0] && is_dir(bufs[2]))
		c->lmstudio = bufs[2];
}

/* ---- walking folders ---- */

static bool ends_with_ci(const char *s, const char *suf)
{
	size_t n = strlen(s), k = strlen(suf);
	return n >= k && !strcasecmp(s + n - k, suf);
}

static bool contains_ci(const char *s, const char *w)
{
	for (size_t k = strlen(w); *s; s++)
		if (!strncasecmp(s, w, k))
			return true;
	return false;
}

/* Appends the *.gguf files under dir (rel: its path below the root, "" at
 * the root), following symlinks to files (the hub cache's snapshots) but
 * not to folders (no loops).  Unreadable folders are skipped. */
static int walk(const char *dir, const char *rel, int depth, struct flist *out)
{
	DIR *dp = opendir(dir);
	struct dirent *de;
	int rc = 0;

	if (!dp)
		return 0;
	while (!rc && (de = readdir(dp))) {
		char full[MGR_PATH_MAX], sub[MGR_PATH_MAX];
		struct stat sb, lb;
		if (de->d_name[0] == '.')
			continue; /* ., .., hidden files and partial downloads */
		if ((size_t)snprintf(full, sizeof full, "%s/%s", dir, de->d_name) >= sizeof full ||
		    (size_t)snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", de->d_name) >= sizeof sub)
			continue;
		if (stat(full, &sb) || lstat(full, &lb))
			continue;
		if (S_ISDIR(sb.st_mode)) {
			if (!S_ISLNK(lb.st_mode) && depth < WALK_DEPTH)
				rc = walk(full, sub, depth + 1, out);
			continue;
		}
		if (!S_ISREG(sb.st_mode) || !ends_with_ci(de->d_name, ".gguf"))
			continue;
		if (out->n == out->cap) {
			size_t cap = out->cap ? out->cap * 2 : 16;
			struct found *nf = realloc(out->f, cap * sizeof *nf);
			if (!nf) {
				rc = DM_ENOMEM;
				break;
			}
			out->f = nf;
			out->cap = cap;
		}
		struct found *f = &out->f[out->n++];
		memcpy(f->rel, sub, sizeof f->rel);
		memcpy(f->full, full, sizeof f->full);
		f->size = (uint64_t)sb.st_size;
		f->mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
	}
	closedir(dp);
	return rc;
}

static int found_cmp(const void *a, const void *b)
{
	return strcmp(((const struct found *)a)->rel, ((const struct found *)b)->rel);
}

/* "name-00001-of-00003.gguf": part 1 of 3, *base_len the length of "name".
 * Returns false for a file that is not a part. */
static bool split_part(const char *rel, size_t *base_len, unsigned *part, unsigned *total)
{
	size_t n = strlen(rel);
	const char *s;
	unsigned p, t;
	/* "-NNNNN-of-NNNNN.gguf" is 20 characters */
	if (n < 21)
		return false;
	s = rel + n - 20;
	if (s[0] != '-' || strncmp(s + 6, "-of-", 4) || strcasecmp(s + 15, ".gguf"))
		return false;
	for (int i = 1; i <= 5; i++)
		if (!isdigit((unsigned char)s[i]) || !isdigit((unsigned char)s[i + 9]))
			return false;
	p = (unsigned)strtoul(s + 1, NULL, 10);
	t = (unsigned)strtoul(s + 10, NULL, 10);
	if (p < 1 || p > t)
		return false;
	*part = p;
	*total = t;
	*base_len = n - 20;
	return true;
}

/* ---- headers ---- */

static const struct hdr *header(struct disc *d, const char *path, uint64_t size, int64_t mtime_ns)
{
	struct gguf_file *g = NULL;
	struct dm_err e;
	struct hdr *h;
	char key[64];
	uint32_t ft;

	for (size_t i = 0; i < d->n_h; i++)
		if (d->h[i].size == size && d->h[i].mtime_ns == mtime_ns && !strcmp(d->h[i].path, path)) {
			d->h[i].seen = true;
			return &d->h[i];
		}
	if (d->n_h == d->cap_h) {
		size_t cap = d->cap_h ? d->cap_h * 2 : 16;
		struct hdr *nh = realloc(d->h, cap * sizeof *nh);
		if (!nh)
			return NULL;
		d->h = nh;
		d->cap_h = cap;
	}
	h = &d->h[d->n_h++];
	memset(h, 0, sizeof *h);
	snprintf(h->path, sizeof h->path, "%s", path);
	h->size = size;
	h->mtime_ns = mtime_ns;
	h->seen = true;
	d->header_reads++;
	/* gguf_open maps the file and checks the header and tensor table
	 * against its size; nothing reads the tensor pages */
	if ((h->rc = gguf_open(&g, path, &e))) {
		snprintf(h->err, sizeof h->err, "%s", e.msg);
		return h;
	}
	gguf_get_str_buf(g, "general.architecture", h->arch, sizeof h->arch, NULL);
	if (!gguf_get_u32(g, "general.file_type", &ft, NULL))
		snprintf(h->quant, sizeof h->quant, "%s", gguf_file_type_name(ft));
	for (uint64_t i = 0; i < g->n_tensors; i++)
		h->n_params += (uint64_t)g->tensors[i].n_elem;
	snprintf(key, sizeof key, "%s.context_length", h->arch);
	if (h->arch[0])
		gguf_get_u32(g, key, &h->n_ctx_train, NULL);
	if (gguf_get_u32(g, "split.count", &h->split_count, NULL))
		h->split_count = 0;
	gguf_close(g);
	return h;
}

/* ---- entries ---- */

static struct disc_model *entry_new(struct disc_model **v, size_t *n, size_t *cap)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		struct disc_model *nv = realloc(*v, c * sizeof *nv);
		if (!nv)
			return NULL;
		*v = nv;
		*cap = c;
	}
	memset(&(*v)[*n], 0, sizeof **v);
	return &(*v)[(*n)++];
}

struct scan {
	struct disc *d;
	struct disc_model *v;
	size_t n, cap;
};

__attribute__((format(printf, 3, 4)))
static void entry_fail(struct disc_model *m, int rc, const char *fmt, ...)
{
	va_list ap;
	if (m->rc)
		return; /* the first problem stays */
	m->rc = rc;
	va_start(ap, fmt);
	vsnprintf(m->err, sizeof m->err, fmt, ap);
	va_end(ap);
}

/* Adds an entry for file f named name (origin: where it came from); parts:
 * the split's part count when f is part 1 of several, size_all their sum. */
static int entry_add(struct scan *s, const char *name, enum disc_source src, const char *origin,
		     const struct found *f, unsigned parts, uint64_t size_all)
{
	struct disc_model *m = entry_new(&s->v, &s->n, &s->cap);
	const struct hdr *h;

	if (!m)
		return DM_ENOMEM;
	snprintf(m->name, sizeof m->name, "%s", name);
	snprintf(m->path, sizeof m->path, "%s", f->full);
	snprintf(m->origin, sizeof m->origin, "%s", origin);
	m->source = src;
	m->size = size_all;
	m->mtime_ns = f->mtime_ns;
	m->n_parts = parts ? parts : 1;
	if (strlen(name) >= sizeof m->name)
		entry_fail(m, DM_EINVAL, "name '%.40s...' is longer than %d bytes", name, MGR_NAME_MAX - 1);
	else if (!mgr_name_valid(name))
		entry_fail(m, DM_EINVAL, "'%s' is not a usable model name", name);
	for (size_t i = 0; i + 1 < s->n; i++)
		if (!strcmp(s->v[i].name, m->name)) {
			entry_fail(m, DM_EINVAL, "name already used by %s", s->v[i].path);
			break;
		}
	if (!(h = header(s->d, f->full, f->size, f->mtime_ns)))
		return DM_ENOMEM;
	memcpy(m->arch, h->arch, sizeof m->arch);
	memcpy(m->quant, h->quant, sizeof m->quant);
	m->n_params = h->n_params;
	m->n_ctx_train = h->n_ctx_train;
	if (h->rc)
		entry_fail(m, h->rc, "%s", h->err);
	if (h->split_count > 1 && m->n_parts < h->split_count)
		m->n_parts = h->split_count;
	if (m->n_parts > 1)
		entry_fail(m, DM_EUNSUPPORTED,
			   "split into %u files: dormant cannot load split GGUF files yet "
			   "(merge them into one with llama-gguf-split --merge)", m->n_parts);
	return 0;
}

/* Turns a walk's files into entries: mmproj files skipped, the parts of a
 * split grouped under part 1.  name_of(rel without ".gguf" and split suffix)
 * gives the entry's name. */
static int add_files(struct scan *s, struct flist *fl, enum disc_source src, const char *origin,
		     const char *prefix)
{
	qsort(fl->f, fl->n, sizeof *fl->f, found_cmp);
	for (size_t i = 0; i < fl->n; i++) {
		const struct found *f = &fl->f[i];
		const char *base = strrchr(f->rel, '/');
		char stem[MGR_PATH_MAX], name[MGR_PATH_MAX + 128];
		size_t blen = strlen(f->rel) - 5; /* without ".gguf" */
		unsigned part = 1, total = 1;
		uint64_t size_all = f->size;
		int rc;

		if (contains_ci(base ? base + 1 : f->rel, "mmproj"))
			continue;
		if (split_part(f->rel, &blen, &part, &total)) {
			if (part != 1)
				continue; /* counted with part 1 */
			for (size_t k = 0; k < fl->n; k++) {
				size_t bk;
				unsigned pk, tk;
				if (k != i && split_part(fl->f[k].rel, &bk, &pk, &tk) && bk == blen &&
				    tk == total && !strncmp(fl->f[k].rel, f->rel, blen))
					size_all += fl->f[k].size;
			}
		}
		memcpy(stem, f->rel, blen);
		stem[blen] = '\0';
		if (prefix) /* "ORG/NAME:" + the file's stem (its folders dropped) */
			snprintf(name, sizeof name, "%s%s", prefix, strrchr(stem, '/') ? strrchr(stem, '/') + 1 : stem);
		else
			snprintf(name, sizeof name, "%s", stem);
		if ((rc = entry_add(s, name, src, origin, f, total > 1 ? total : 0, size_all)))
			return rc;
	}
	return 0;
}

static int scan_dir(struct scan *s, const char *dir, enum disc_source src, const char *origin,
		    const char *prefix)
{
	struct flist fl = { 0 };
	int rc = walk(dir, "", 0, &fl);
	if (!rc)
		rc = add_files(s, &fl, src, origin, prefix);
	free(fl.f);
	return rc;
}

/* ---- Ollama ---- */

/* A small layer's bytes (NUL-terminated, malloc'd) or NULL. */
static char *read_small(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	if (!f)
		return NULL;
	buf = malloc(LAYER_MAX + 1);
	*n = buf ? fread(buf, 1, LAYER_MAX + 1, f) : 0;
	fclose(f);
	if (!buf || *n > LAYER_MAX) {
		free(buf);
		return NULL;
	}
	buf[*n] = '\0';
	return buf;
}

/* Ollama's params layer: {"stop": [...], "temperature": 0.6, ...}. */
static void parse_params(struct disc_params *p, const char *text, size_t n)
{
	json_t *o = json_loadb(text, n, 0, NULL), *v;
	size_t i;

	if (!json_is_object(o)) {
		json_decref(o);
		return;
	}
#define NUM(key, has, field)                                                   \
	if (json_is_number(v = json_object_get(o, key))) {                     \
		p->has = true;                                                 \
		p->field = (float)json_number_value(v);                        \
	}
	NUM("temperature", has_temperature, temperature)
	NUM("top_p", has_top_p, top_p)
	NUM("min_p", has_min_p, min_p)
	NUM("repeat_penalty", has_repeat_penalty, repeat_penalty)
#undef NUM
	if (json_is_integer(v = json_object_get(o, "top_k")) && json_integer_value(v) >= 0 &&
	    json_integer_value(v) < 1 << 30)
		p->has_top_k = true, p->top_k = (int32_t)json_integer_value(v);
	if (json_is_integer(v = json_object_get(o, "num_predict")) && json_integer_value(v) > 0 &&
	    json_integer_value(v) < 1 << 30)
		p->has_num_predict = true, p->num_predict = (int32_t)json_integer_value(v);
	if (json_is_integer(v = json_object_get(o, "seed")) && json_integer_value(v) >= 0)
		p->has_seed = true, p->seed = (uint64_t)json_integer_value(v);
	if (json_is_integer(v = json_object_get(o, "num_ctx")) && json_integer_value(v) > 0 &&
	    json_integer_value(v) < 1 << 24)
		p->num_ctx = (int32_t)json_integer_value(v);
	v = json_object_get(o, "stop");
	if (json_is_string(v))
		snprintf(p->stop[0], sizeof p->stop[0], "%s", json_string_value(v));
	else if (json_is_array(v)) {
		json_t *x;
		int k = 0;
		json_array_foreach(v, i, x)
			if (json_is_string(x) && k < DISC_MAX_STOP && strlen(json_string_value(x)) < sizeof p->stop[0])
				snprintf(p->stop[k++], sizeof p->stop[0], "%s", json_string_value(x));
	}
	json_decref(o);
}

/* "sha256:<hex>" to ROOT/blobs/sha256-<hex>; false for anything else. */
static bool blob_path(const char *root, const char *digest, char *out, size_t cap)
{
	const char *hex;
	if (!digest || strncmp(digest, "sha256:", 7))
		return false;
	hex = digest + 7;
	if (strlen(hex) != 64 || strspn(hex, "0123456789abcdef") != 64)
		return false;
	return (size_t)snprintf(out, cap, "%s/blobs/sha256-%s", root, hex) < cap;
}

static int ollama_manifest(struct scan *s, const char *root, const char *mpath, const char *reg,
			   const char *ns, const char *model, const char *tag)
{
	char name[MGR_PATH_MAX], blob[MGR_PATH_MAX];
	struct found f = { 0 };
	struct disc_model *m;
	struct stat sb;
	json_t *o, *layers, *l;
	size_t i, n;
	char *text;
	int rc;

	if (!strcmp(reg, "registry.ollama.ai") && !strcmp(ns, "library"))
		snprintf(name, sizeof name, "%s:%s", model, tag);
	else if (!strcmp(reg, "registry.ollama.ai"))
		snprintf(name, sizeof name, "%s/%s:%s", ns, model, tag);
	else
		snprintf(name, sizeof name, "%s/%s/%s:%s", reg, ns, model, tag);
	snprintf(f.full, sizeof f.full, "%s", mpath);
	text = read_small(mpath, &n);
	o = text ? json_loadb(text, n, 0, NULL) : NULL;
	free(text);
	layers = json_object_get(o, "layers");
	json_array_foreach(layers, i, l) {
		const char *mt = json_string_value(json_object_get(l, "mediaType"));
		if (mt && !strcmp(mt, "application/vnd.ollama.image.model") &&
		    blob_path(root, json_string_value(json_object_get(l, "digest")), blob, sizeof blob) &&
		    !stat(blob, &sb)) {
			snprintf(f.full, sizeof f.full, "%s", blob);
			f.size = (uint64_t)sb.st_size;
			f.mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
			break;
		}
	}
	if (!json_is_array(layers) || !f.size) {
		/* listed with what is wrong: no header to read */
		if (!(m = entry_new(&s->v, &s->n, &s->cap))) {
			json_decref(o);
			return DM_ENOMEM;
		}
		snprintf(m->name, sizeof m->name, "%.*s", MGR_NAME_MAX - 1, name);
		snprintf(m->path, sizeof m->path, "%s", mpath);
		snprintf(m->origin, sizeof m->origin, "%s", mpath);
		m->source = DISC_OLLAMA;
		m->n_parts = 1;
		entry_fail(m, DM_EFORMAT, "%s", !o ? "manifest is not JSON" : !json_is_array(layers)
						 ? "manifest has no layers"
						 : "manifest names no model layer, or its blob is missing");
		json_decref(o);
		return 0;
	}
	if ((rc = entry_add(s, name, DISC_OLLAMA, mpath, &f, 0, f.size))) {
		json_decref(o);
		return rc;
	}
	m = &s->v[s->n - 1];
	json_array_foreach(layers, i, l) {
		const char *mt = json_string_value(json_object_get(l, "mediaType"));
		bool sys = mt && !strcmp(mt, "application/vnd.ollama.image.system");
		bool par = mt && !strcmp(mt, "application/vnd.ollama.image.params");
		if ((!sys && !par) ||
		    !blob_path(root, json_string_value(json_object_get(l, "digest")), blob, sizeof blob))
			continue;
		if (!(text = read_small(blob, &n)))
			continue;
		if (sys)
			snprintf(m->system, sizeof m->system, "%s", text);
		else
			parse_params(&m->params, text, n);
		free(text);
	}
	json_decref(o);
	return 0;
}

/* Calls fn for each entry of dir that is a folder (files: want_files). */
static int each_entry(const char *dir, bool want_files, int (*fn)(void *ud, const char *path, const char *name),
		      void *ud)
{
	DIR *dp = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	if (!dp)
		return 0;
	while ((de = readdir(dp))) {
		char p[MGR_PATH_MAX];
		struct stat sb;
		if (de->d_name[0] == '.' ||
		    (size_t)snprintf(p, sizeof p, "%s/%s", dir, de->d_name) >= sizeof p || stat(p, &sb) ||
		    (want_files ? !S_ISREG(sb.st_mode) : !S_ISDIR(sb.st_mode)))
			continue;
		if (n == cap) {
			char **nn = realloc(names, (cap = cap ? cap * 2 : 16) * sizeof *nn);
			if (!nn) {
				rc = DM_ENOMEM;
				break;
			}
			names = nn;
		}
		if (!(names[n] = strdup(de->d_name))) {
			rc = DM_ENOMEM;
			break;
		}
		n++;
	}
	closedir(dp);
	/* sorted: the same tree gives the same order (names, first-wins) */
	for (size_t i = 1; i < n; i++)
		for (size_t k = i; k > 0 && strcmp(names[k - 1], names[k]) > 0; k--) {
			char *t = names[k];
			names[k] = names[k - 1];
			names[k - 1] = t;
		}
	for (size_t i = 0; i < n && !rc; i++) {
		char p[MGR_PATH_MAX];
		snprintf(p, sizeof p, "%s/%s", dir, names[i]);
		rc = fn(ud, p, names[i]);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

struct oll {
	struct scan *s;
	const char *root;
	const char *part[3]; /* registry, namespace, model */
	int level;
};

static int oll_visit(void *ud, const char *path, const char *name)
{
	struct oll *o = ud;
	int rc;
	if (o->level == 3)
		return ollama_manifest(o->s, o->root, path, o->part[0], o->part[1], o->part[2], name);
	o->part[o->level++] = name;
	rc = each_entry(path, o->level == 3, oll_visit, o);
	o->level--;
	return rc;
}

static int scan_ollama(struct scan *s, const char *root)
{
	char dir[MGR_PATH_MAX];
	struct oll o = { .s = s, .root = root };
	snprintf(dir, sizeof dir, "%s/manifests", root);
	return each_entry(dir, false, oll_visit, &o);
}

/* ---- Hugging Face hub cache and LM Studio ---- */

static int hf_repo(void *ud, const char *path, const char *name)
{
	struct scan *s = ud;
	char prefix[MGR_PATH_MAX], snap[MGR_PATH_MAX], rev[128] = "";
	const char *sep;
	FILE *f;

	if (strncmp(name, "models--", 8) || !(sep = strstr(name + 8, "--")))
		return 0;
	snprintf(prefix, sizeof prefix, "%.*s/%s:", (int)(sep - (name + 8)), name + 8, sep + 2);
	snprintf(snap, sizeof snap, "%s/refs/main", path);
	if ((f = fopen(snap, "r"))) {
		if (!fgets(rev, sizeof rev, f))
			rev[0] = '\0';
		fclose(f);
		rev[strcspn(rev, "\r\n")] = '\0';
	}
	if (rev[0] && !strchr(rev, '/') && strcmp(rev, "..")) {
		snprintf(snap, sizeof snap, "%s/snapshots/%s", path, rev);
		if (is_dir(snap))
			return scan_dir(s, snap, DISC_HF, path, prefix);
	}
	/* no refs/main: every snapshot, the first name found wins */
	snprintf(snap, sizeof snap, "%s/snapshots", path);
	return scan_dir(s, snap, DISC_HF, path, prefix);
}

static int lms_repo(void *ud, const char *path, const char *name)
{
	struct scan *s = ((void **)ud)[0];
	const char *publisher = ((void **)ud)[1];
	char prefix[MGR_PATH_MAX];
	snprintf(prefix, sizeof prefix, "%s/%s:", publisher, name);
	return scan_dir(s, path, DISC_LMSTUDIO, path, prefix);
}

static int lms_publisher(void *ud, const char *path, const char *name)
{
	void *pair[2] = { ud, (void *)(uintptr_t)name };
	return each_entry(path, false, lms_repo, pair);
}

int disc_describe(struct disc *d, const char *path, struct disc_model *out)
{
	struct stat sb;
	const struct hdr *h;

	memset(out, 0, sizeof *out);
	snprintf(out->path, sizeof out->path, "%s", path);
	out->n_parts = 1;
	if (stat(path, &sb)) {
		out->rc = DM_EIO;
		snprintf(out->err, sizeof out->err, "%s: %s", path, strerror(errno));
		return out->rc;
	}
	out->size = (uint64_t)sb.st_size;
	out->mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
	if (!(h = header(d, path, out->size, out->mtime_ns)))
		return out->rc = DM_ENOMEM;
	memcpy(out->arch, h->arch, sizeof out->arch);
	memcpy(out->quant, h->quant, sizeof out->quant);
	out->n_params = h->n_params;
	out->n_ctx_train = h->n_ctx_train;
	if ((out->rc = h->rc))
		memcpy(out->err, h->err, sizeof out->err);
	return out->rc;
}

/* ---- the scan ---- */

int disc_scan(struct disc *d, const struct disc_cfg *c, struct dm_err *err)
{
	struct scan s = { .d = d };
	int rc = 0;

	for (size_t i = 0; i < d->n_h; i++)
		d->h[i].seen = false;
	for (size_t i = 0; i < c->n_dirs && i < DISC_MAX_DIRS && !rc; i++)
		if (c->dirs[i])
			rc = scan_dir(&s, c->dirs[i], DISC_DIR, c->dirs[i], NULL);
	if (!rc && c->ollama)
		rc = scan_ollama(&s, c->ollama);
	if (!rc && c->hf)
		rc = each_entry(c->hf, false, hf_repo, &s);
	if (!rc && c->lmstudio)
		rc = each_entry(c->lmstudio, false, lms_publisher, &s);
	if (rc) {
		free(s.v);
		return dm_err_set(err, rc, "model discovery: out of memory");
	}
	/* the cache keeps what this scan saw */
	{
		size_t k = 0;
		for (size_t i = 0; i < d->n_h; i++)
			if (d->h[i].seen)
				d->h[k++] = d->h[i];
		d->n_h = k;
	}
	free(d->m);
	d->m = s.v;
	d->n = s.n;
	d->cap = s.cap;
	return 0;
}

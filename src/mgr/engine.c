/* mgr/engine — see engine.h. */
#include "mgr/engine.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/mem.h"
#include "kern/kern.h"

/* Every matrix of a bound model, for quantize-on-load. */
static size_t model_weights(struct model *m, struct model_w **out, size_t cap)
{
	size_t n = 0;
#define PUT(w) do { if (n < cap) out[n] = (w); n++; } while (0)
	PUT(&m->tok_embd);
	if (m->output.data != m->tok_embd.data)
		PUT(&m->output);
	for (int32_t l = 0; l < m->hp.n_layer; l++) {
		struct model_layer *L = &m->layers[l];
		PUT(&L->wq);
		PUT(&L->wk);
		PUT(&L->wv);
		PUT(&L->wo);
		PUT(&L->w_gate);
		PUT(&L->w_up);
		PUT(&L->w_down);
	}
#undef PUT
	return n;
}

/* The type a weight gets with quantize-on-load q (-1: none): only float
 * matrices are quantized; a row that does not fit the target's blocks keeps
 * its type (or takes Q8_0 when Q4_K's 256-blocks do not fit but 32 do). */
static uint32_t target_type(const struct model_w *w, int32_t q)
{
	if (q < 0 || (w->type != GGUF_TYPE_F32 && w->type != GGUF_TYPE_F16 && w->type != GGUF_TYPE_BF16))
		return w->type;
	if (kern_row_bytes((uint32_t)q, w->ne0))
		return (uint32_t)q;
	if (kern_row_bytes(GGUF_TYPE_Q8_0, w->ne0))
		return GGUF_TYPE_Q8_0;
	return w->type;
}

static int check_quant(int32_t q, struct dm_err *err)
{
	if (q >= 0 && q != GGUF_TYPE_Q8_0 && q != GGUF_TYPE_Q4_0 && q != GGUF_TYPE_Q4_K)
		return dm_err_set(err, DM_EINVAL, "quantize_on_load must be Q8_0, Q4_0 or Q4_K");
	return 0;
}

/* The context: n_ctx for requests that ask for none, and a reservation
 * for the largest one a request may ask for (n_ctx_max, else the trained
 * length). */
static struct model_ctx_params ctx_params(const struct mgr_model_cfg *cfg, const struct model *m,
					  struct dm_pool *pool)
{
	struct model_ctx_params cp = { .n_ctx = cfg->n_ctx, .n_batch = cfg->n_batch, .pool = pool };
	cp.n_ctx_max = cfg->n_ctx_max > 0 ? cfg->n_ctx_max : m->hp.n_ctx_train;
	cp.prefix_cache_max = (size_t)cfg->prefix_cache_max;
	return cp;
}

/* ---- the KV cache on disk (kv_persist) ---- */

const char *engine_kv_dir(char *buf, size_t cap)
{
	const char *d = getenv("DORMANT_KV_DIR"), *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	if (d && *d)
		snprintf(buf, cap, "%s", d);
	else if (x && *x)
		snprintf(buf, cap, "%s/dormant/kv", x);
	else
		snprintf(buf, cap, "%s/.cache/dormant/kv", home && *home ? home : "/tmp");
	return buf;
}

uint64_t engine_kv_max(void)
{
	const char *v = getenv("DORMANT_KV_MAX");
	char *end;
	unsigned long long n;
	if (!v || !*v)
		return 4ull << 30;
	n = strtoull(v, &end, 10);
	return end != v && !*end ? (uint64_t)n : 4ull << 30;
}

static void mkdirs(const char *path)
{
	char tmp[1024];
	snprintf(tmp, sizeof tmp, "%s", path);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(tmp, 0700);
			*p = '/';
		}
	mkdir(tmp, 0700);
}

/* Deletes the least recently written *.kv files of dir until the rest
 * fit max bytes. */
static void kv_bound(const char *dir, uint64_t max)
{
	for (int guard = 0; guard < 10000; guard++) {
		DIR *d = opendir(dir);
		struct dirent *de;
		uint64_t total = 0;
		struct timespec oldest = { 0, 0 };
		char victim[1400] = "";
		if (!d)
			return;
		while ((de = readdir(d))) {
			char p[1400];
			struct stat st;
			size_t n = strlen(de->d_name);
			if (n < 4 || strcmp(de->d_name + n - 3, ".kv") ||
			    snprintf(p, sizeof p, "%s/%s", dir, de->d_name) >= (int)sizeof p)
				continue;
			if (stat(p, &st) != 0 || !S_ISREG(st.st_mode))
				continue;
			total += (uint64_t)st.st_size;
			if (!victim[0] || st.st_mtim.tv_sec < oldest.tv_sec ||
			    (st.st_mtim.tv_sec == oldest.tv_sec && st.st_mtim.tv_nsec < oldest.tv_nsec)) {
				oldest = st.st_mtim;
				snprintf(victim, sizeof victim, "%s", p);
			}
		}
		closedir(d);
		if (total <= max || !victim[0])
			return;
		unlink(victim);
	}
}

static void kv_setup(struct engine *e, const struct mgr_model_cfg *cfg)
{
	char dir[1024], path[1100];
	struct stat st;
	uint64_t h = 1469598103934665603ull;
	const char *p;
	struct dm_err err;

	if (!(cfg->kv_persist > 0 || (cfg->kv_persist < 0 && cfg->keep_alive_ms == 0)) || e->m->hp.encoder ||
	    stat(e->g->name, &st) != 0)
		return;
	/* identity: the file (path, size, mtime), the context (LongRoPE picks
	 * its factors by it) and the weights' conversion */
	for (p = e->g->name; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ull;
	{
		uint64_t f[5] = { (uint64_t)st.st_size, (uint64_t)st.st_mtim.tv_sec, (uint64_t)st.st_mtim.tv_nsec,
				  (uint64_t)e->ctx->n_ctx, (uint64_t)(int64_t)cfg->quantize_on_load };
		for (int i = 0; i < 5; i++)
			for (int b = 0; b < 8; b++)
				h = (h ^ (uint8_t)(f[i] >> (8 * b))) * 1099511628211ull;
	}
	engine_kv_dir(dir, sizeof dir);
	snprintf(path, sizeof path, "%s/%016llx.kv", dir, (unsigned long long)h);
	if (!(e->kv_path = strdup(path)))
		return;
	e->kv_identity = h;
	if (model_ctx_restore(e->ctx, path, h, &err) == 0)
		e->kv_restored = e->ctx->n_past;
	else if (err.code != DM_ENOTFOUND) {
		memcpy(e->kv_note, err.msg, sizeof e->kv_note - 1);
		e->kv_note[sizeof e->kv_note - 1] = '\0';
		unlink(path); /* never trusted, never tried again */
	}
}

static void kv_save(struct engine *e)
{
	char dir[1024];
	struct dm_err err;

	if (!e->kv_path || !e->ctx || e->ctx->n_past < 1)
		return;
	mkdirs(engine_kv_dir(dir, sizeof dir));
	if (model_ctx_save(e->ctx, e->kv_path, e->kv_identity, &err) == 0)
		kv_bound(dir, engine_kv_max());
}

int engine_estimate(const struct mgr_model_cfg *cfg, uint64_t *bytes, struct dm_err *err)
{
	struct gguf_file *g = NULL;
	struct model *m = NULL;
	struct tok_vocab *v = NULL;
	struct model_w *ws[4096];
	struct model_ctx_params cp;
	uint64_t total;
	size_t n;
	int rc, nt;

	if ((rc = check_quant(cfg->quantize_on_load, err)) || (rc = gguf_open(&g, cfg->path, err)))
		return rc;
	if ((rc = model_bind(&m, g, err)) || (rc = tok_load(&v, g, err)))
		goto out;
	total = m->weight_bytes;
	n = model_weights(m, ws, sizeof ws / sizeof ws[0]);
	for (size_t i = 0; i < n && i < sizeof ws / sizeof ws[0]; i++) {
		uint32_t t = target_type(ws[i], cfg->quantize_on_load);
		if (t != ws[i]->type)
			total = total - kern_row_bytes(ws[i]->type, ws[i]->ne0) * (uint64_t)ws[i]->ne1 +
				kern_row_bytes(t, ws[i]->ne0) * (uint64_t)ws[i]->ne1;
	}
	nt = cfg->n_threads > 0 ? cfg->n_threads : dm_cpu_physical_cores();
	cp = ctx_params(cfg, m, NULL);
	cp.n_threads = nt; /* the pool does not exist yet; size scratch for it */
	total += model_ctx_bytes(m, &cp);
	total += tok_vocab_bytes(v);
	*bytes = total;
out:
	tok_free(v);
	model_free(m);
	gguf_close(g);
	return rc;
}

/* Read mode: the whole file into anonymous memory, counting progress. */
static int read_file(const char *path, void **out, size_t *n, struct mgr_progress *prog,
		     const atomic_int *cancel, struct dm_err *err)
{
	struct stat st;
	uint8_t *buf;
	size_t done = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return dm_err_set(err, DM_EIO, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0 || st.st_size <= 0) {
		close(fd);
		return dm_err_set(err, DM_EIO, "%s: cannot read its size", path);
	}
	buf = dm_mem_map((size_t)st.st_size);
	if (!buf) {
		close(fd);
		return dm_err_set(err, DM_ENOMEM, "%s: cannot allocate %lld bytes to read it", path,
				  (long long)st.st_size);
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	if (prog)
		atomic_store(&prog->total, (uint64_t)st.st_size);
	while (done < (size_t)st.st_size) {
		size_t want = (size_t)st.st_size - done;
		ssize_t k = read(fd, buf + done, want > (8u << 20) ? (8u << 20) : want);
		if (k <= 0 || (cancel && atomic_load(cancel))) {
			int e = k < 0 ? errno : 0;
			dm_mem_unmap(buf, (size_t)st.st_size);
			close(fd);
			if (cancel && atomic_load(cancel))
				return dm_err_set(err, DM_ECANCELED, "%s: load cancelled", path);
			return dm_err_set(err, DM_EIO, "%s: read: %s", path, e ? strerror(e) : "unexpected end of file");
		}
		done += (size_t)k;
		if (prog)
			atomic_store(&prog->done, done);
	}
	close(fd);
	*out = buf;
	*n = (size_t)st.st_size;
	return 0;
}

/* The quantize-on-load step: every float matrix whose target type
 * differs is quantized into one anonymous buffer on the engine's pool, a
 * slice of rows at a time so that cancel is seen within a fraction of a
 * second; the float pages of each matrix are given back when it is done. */
static int quantize_weights(struct engine *e, int32_t q, struct mgr_progress *prog,
			    const atomic_int *cancel, struct dm_err *err)
{
	struct model_w *ws[4096];
	size_t n = model_weights(e->m, ws, sizeof ws / sizeof ws[0]), off = 0, need = 0;
	bool tied = e->m->output.data == e->m->tok_embd.data;
	enum kern_isa isa = kern_isa_best();
	struct timespec t0, t1;

	if (n > sizeof ws / sizeof ws[0])
		return dm_err_set(err, DM_EUNSUPPORTED, "too many layers for quantize-on-load");
	for (size_t i = 0; i < n; i++) {
		uint32_t t = target_type(ws[i], q);
		if (t != ws[i]->type)
			need += (kern_row_bytes(t, ws[i]->ne0) * (size_t)ws[i]->ne1 + 63) & ~(size_t)63;
	}
	if (!need)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	e->qbuf = dm_mem_map(need);
	e->qbuf_bytes = need;
	if (!e->qbuf)
		return dm_err_set(err, DM_ENOMEM, "cannot allocate %zu MiB for quantize-on-load", need >> 20);
	if (prog) {
		atomic_store(&prog->total, need);
		atomic_store(&prog->done, 0);
	}
	for (size_t i = 0; i < n; i++) {
		struct model_w *w = ws[i];
		uint32_t t = target_type(w, q);
		size_t ib = kern_row_bytes(w->type, w->ne0), ob = kern_row_bytes(t, w->ne0);
		uint8_t *dst = (uint8_t *)e->qbuf + off;
		/* slices of about a million weights (a fraction of a second on
		 * the reference path) */
		int64_t slice = w->ne0 >= ((int64_t)1 << 20) ? 1 : ((int64_t)1 << 20) / w->ne0;
		int rc;
		if (t == w->type)
			continue;
		for (int64_t r = 0; r < w->ne1; r += slice) {
			int64_t k = w->ne1 - r < slice ? w->ne1 - r : slice;
			if (cancel && atomic_load(cancel))
				return dm_err_set(err, DM_ECANCELED, "load cancelled");
			if ((rc = kern_quantize_rows(e->pool, isa, w->type, (const uint8_t *)w->data + (size_t)r * ib, t,
						     dst + (size_t)r * ob, k, w->ne0, err)))
				return rc;
			if (prog)
				atomic_store(&prog->done, off + (size_t)(r + k) * ob);
		}
		e->replaced_bytes += ib * (size_t)w->ne1;
		e->quant_elems += (uint64_t)w->ne0 * (uint64_t)w->ne1;
		{
			/* the float copy of this matrix is not needed any more: give
			 * its whole pages back now (read mode: anonymous memory;
			 * mapped modes: the file stays in the page cache only) */
			uintptr_t lo = ((uintptr_t)w->data + 4095) & ~(uintptr_t)4095;
			uintptr_t hi = ((uintptr_t)w->data + ib * (size_t)w->ne1) & ~(uintptr_t)4095;
			if (hi > lo)
				madvise((void *)lo, hi - lo, MADV_DONTNEED);
		}
		w->data = dst;
		w->type = t;
		off += (ob * (size_t)w->ne1 + 63) & ~(size_t)63;
		if (prog)
			atomic_store(&prog->done, off);
	}
	if (tied)
		e->m->output = e->m->tok_embd;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	e->quant_s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
	return 0;
}

int engine_load(struct engine **out, const struct mgr_model_cfg *cfg, struct mgr_progress *prog,
		const atomic_int *cancel, struct dm_err *err)
{
	struct engine *e = calloc(1, sizeof *e);
	struct model_ctx_params cp;
	int rc, nt;

	*out = NULL;
	if (!e)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	if ((rc = check_quant(cfg->quantize_on_load, err)))
		goto fail;
	if (cfg->mode == MGR_MODE_READ) {
		if ((rc = read_file(cfg->path, &e->file_copy, &e->file_copy_bytes, prog, cancel, err)) ||
		    (rc = gguf_open_buffer(&e->g, e->file_copy, e->file_copy_bytes, cfg->path, err)))
			goto fail;
	} else {
		if ((rc = gguf_open(&e->g, cfg->path, err)))
			goto fail;
		if (prog) {
			atomic_store(&prog->total, e->g->size);
			atomic_store(&prog->done, e->g->size);
		}
		if (cfg->mode == MGR_MODE_MLOCK) {
			if (mlock(e->g->base, e->g->size) != 0) {
				rc = dm_err_set(err, DM_ENOMEM, "%s: mlock of %llu bytes failed: %s (raise RLIMIT_MEMLOCK)",
						cfg->path, (unsigned long long)e->g->size, strerror(errno));
				goto fail;
			}
			e->locked = true;
		} else if (cfg->mode == MGR_MODE_PREFETCH) {
			/* asynchronous readahead of the whole file */
			madvise((void *)(uintptr_t)e->g->base, e->g->size, MADV_WILLNEED);
		}
	}
	if ((rc = model_bind(&e->m, e->g, err)) || (rc = tok_load(&e->v, e->g, err)))
		goto fail;
	nt = cfg->n_threads > 0 ? cfg->n_threads : dm_cpu_physical_cores();
	if ((rc = dm_pool_init(&e->pool, nt, err)) ||
	    (rc = quantize_weights(e, cfg->quantize_on_load, prog, cancel, err)))
		goto fail;
	cp = ctx_params(cfg, e->m, e->pool);
	e->warmup_ctx = cfg->warmup_ctx > 0 ? cfg->warmup_ctx : 1024;
	if ((rc = model_ctx_init(&e->ctx, e->m, &cp, err)))
		goto fail;
	e->n_ctx_default = e->ctx->n_ctx;
	kv_setup(e, cfg);
	e->vocab_bytes = tok_vocab_bytes(e->v);
	e->weight_bytes = e->m->weight_bytes;
	/* the replaced float matrices stay mapped but are never touched again */
	e->weight_bytes = e->m->weight_bytes - e->replaced_bytes + e->qbuf_bytes;
	*out = e;
	return 0;
fail:
	engine_unload(e, false);
	return rc;
}

uint64_t engine_bytes(const struct engine *e)
{
	return e->weight_bytes + e->vocab_bytes + model_ctx_held_bytes(e->ctx);
}

uint64_t engine_bytes_for(const struct engine *e, int32_t n_ctx)
{
	const struct model_ctx *c = e->ctx;
	int32_t n = n_ctx > c->n_touched ? n_ctx : c->n_touched;
	size_t snaps = c->snap_bytes + model_ctx_snap_bytes_for(c, c->n_past); /* the live one may be saved */
	if (c->m->hp.encoder)
		return engine_bytes(e);
	if (snaps > c->snap_max)
		snaps = c->snap_max > c->snap_bytes ? c->snap_max : c->snap_bytes;
	return e->weight_bytes + e->vocab_bytes + c->scratch_bytes + model_ctx_kv_bytes_for(c, n) + snaps;
}

int engine_warmup(struct engine *e, struct dm_err *err)
{
	float *logits = malloc((size_t)e->m->hp.n_vocab * sizeof *logits);
	int32_t tok = tok_bos(e->v) >= 0 ? tok_bos(e->v) : 0;
	int rc;

	if (!logits)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	/* make the scratch and the KV cache of the first warmup_ctx positions
	 * resident now, so that a first request of that size does not pay for
	 * page faults; the rest of the cache is committed as requests write it
	 * (populating faults pages in without writing every byte) */
	model_ctx_prefault(e->ctx, e->warmup_ctx);
	/* and every page of the weights in use (mapped modes fault them in
	 * here instead of during the first request; the rows of the token
	 * embedding table would otherwise come in one by one) */
	{
		struct model_w *ws[4096];
		size_t n = model_weights(e->m, ws, sizeof ws / sizeof ws[0]);
		volatile uint8_t sink = 0;
		for (size_t i = 0; i < n && i < sizeof ws / sizeof ws[0]; i++) {
			const uint8_t *p = ws[i]->data;
			size_t nb = kern_row_bytes(ws[i]->type, ws[i]->ne0) * (size_t)ws[i]->ne1;
			for (size_t o = 0; o < nb; o += 4096)
				sink ^= p[o];
		}
		(void)sink;
	}
	if (e->ctx->n_past > 0) {
		/* a KV cache restored from disk: its pages are resident already,
		 * and a decode here would overwrite its first position */
		free(logits);
		return 0;
	}
	model_ctx_reset(e->ctx);
	if (e->m->hp.encoder) {
		/* one token through the encoder and its head: scratch touched,
		 * nothing decoded (an encoder has no logits to give) */
		int32_t len = 1;
		enum model_pooling pool = e->m->hp.pooling ? e->m->hp.pooling : MODEL_POOL_MEAN;
		float *pooled = malloc((size_t)model_pooled_dim(e->m, pool) * sizeof *pooled);
		rc = pooled ? model_encode(e->ctx, &tok, &len, 1, pool, pooled, err)
			    : dm_err_set(err, DM_ENOMEM, "out of memory");
		free(pooled);
	} else {
		rc = model_decode(e->ctx, &tok, 1, logits, false, err);
	}
	model_ctx_reset(e->ctx);
	free(logits);
	return rc;
}

int engine_file_role(const char *path, enum mgr_role *role, struct dm_err *err)
{
	struct gguf_file *g = NULL;
	struct model *m = NULL;
	int rc;

	if (!(rc = gguf_open(&g, path, err)) && !(rc = model_bind(&m, g, err)))
		*role = !m->hp.encoder ? MGR_ROLE_GENERATE
			: m->hp.pooling == MODEL_POOL_RANK ? MGR_ROLE_RERANK : MGR_ROLE_EMBED;
	model_free(m);
	gguf_close(g);
	return rc;
}

void engine_unload(struct engine *e, bool drop_page_cache)
{
	char *path = NULL;

	if (!e)
		return;
	if (e->g && drop_page_cache && !e->file_copy)
		path = strdup(e->g->name);
	kv_save(e); /* the conversation survives the unload (kv_persist) */
	free(e->kv_path);
	model_ctx_free(e->ctx);
	dm_pool_free(e->pool);
	tok_free(e->v);
	model_free(e->m);
	dm_mem_unmap(e->qbuf, e->qbuf_bytes);
	if (e->locked)
		munlock(e->g->base, e->g->size);
	gguf_close(e->g);
	dm_mem_unmap(e->file_copy, e->file_copy_bytes);
	free(e);
	if (path) {
		/* only now that nothing maps the file can its pages be dropped */
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
			close(fd);
		}
		free(path);
	}
	malloc_trim(0); /* give the heap's free pages back too */
}

/* ---- as a manager backend ---- */

static int be_estimate(void *ud, const struct mgr_model_cfg *cfg, uint64_t *bytes, struct dm_err *err)
{
	(void)ud;
	return engine_estimate(cfg, bytes, err);
}

static int be_load(void *ud, const struct mgr_model_cfg *cfg, struct mgr_progress *prog,
		   const atomic_int *cancel, struct mgr_loaded *out, struct dm_err *err)
{
	struct engine *e;
	int rc = engine_load(&e, cfg, prog, cancel, err);
	(void)ud;
	if (rc)
		return rc;
	out->handle = e;
	out->bytes = engine_bytes(e);
	return 0;
}

static uint64_t be_held(void *ud, const struct mgr_loaded *l)
{
	(void)ud;
	return engine_bytes(l->handle);
}

static uint64_t be_shrink(void *ud, struct mgr_loaded *l)
{
	struct engine *e = l->handle;
	(void)ud;
	return model_ctx_snap_drop(e->ctx);
}

static int be_warmup(void *ud, struct mgr_loaded *l, struct dm_err *err)
{
	(void)ud;
	return engine_warmup(l->handle, err);
}

static void be_unload(void *ud, struct mgr_loaded *l)
{
	const struct engine_backend_cfg *c = ud;
	engine_unload(l->handle, c && c->drop_page_cache);
}

void mgr_engine_backend(struct mgr_backend *be, struct engine_backend_cfg *cfg)
{
	be->ud = cfg;
	be->estimate = be_estimate;
	be->load = be_load;
	be->warmup = be_warmup;
	be->unload = be_unload;
	be->held = be_held;
	be->shrink = be_shrink;
}

/* A model's role follows its file (engine_file_role) unless the config set
 * one; a set role must fit the file: a decoder generates or embeds, an
 * encoder serves only its own role.  A file that cannot be read now is left
 * alone (its load will say why). */
int engine_role_resolve(struct mgr_model_cfg *c, bool role_set, struct dm_err *err)
{
	enum mgr_role own;
	struct dm_err ignored;

	if (engine_file_role(c->path, &own, &ignored))
		return 0;
	if (!role_set)
		c->role = own;
	else if (c->role != own && !(own == MGR_ROLE_GENERATE && c->role == MGR_ROLE_EMBED))
		return dm_err_set(err, DM_EINVAL, "model '%s': role %s does not fit %s, which can only %s", c->name,
				  mgr_role_name(c->role), c->path,
				  own == MGR_ROLE_GENERATE ? "generate or embed (a decoder)"
				  : own == MGR_ROLE_RERANK ? "rerank (an encoder with a classification head)"
							   : "embed (an encoder)");
	return 0;
}

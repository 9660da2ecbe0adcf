/*
 * gguf/read — the validating reader (see gguf.h for the invariants).
 *
 * Parsing walks the bytes once with a cursor that refuses to move past the
 * end: every length is compared with the bytes that remain before anything
 * is read or allocated, so allocations are bounded by the file size and
 * every loop by the number of bytes.  Arrays of arrays recurse at most
 * GGUF_MAX_ARRAY_DEPTH levels.
 */
#include "gguf/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Cursor over the whole file; `what` strings go into messages. */
struct rd {
	const uint8_t *base;
	uint64_t size;
	uint64_t pos;
	const char *name;
	struct dm_err *err;
};

/* Variable-size element offsets gathered while parsing; pointers into the
 * grown array are fixed up once parsing ends. */
struct offs {
	uint64_t *v;
	uint64_t n, cap;
};

#define FAIL(r, at, ...) rd_fail((r), (at), __VA_ARGS__)

__attribute__((format(printf, 3, 4)))
static int rd_fail(struct rd *r, uint64_t at, const char *fmt, ...)
{
	char what[DM_ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return dm_err_set(r->err, DM_EFORMAT, "%s: offset %" PRIu64 ": %s", r->name, at, what);
}

static uint64_t rd_left(const struct rd *r)
{
	return r->size - r->pos;
}

static int rd_u32(struct rd *r, uint32_t *out, const char *what)
{
	if (rd_left(r) < 4)
		return FAIL(r, r->pos, "%s: needs 4 bytes, %" PRIu64 " left", what, rd_left(r));
	*out = gguf_rd_u32(r->base + r->pos);
	r->pos += 4;
	return 0;
}

static int rd_u64(struct rd *r, uint64_t *out, const char *what)
{
	if (rd_left(r) < 8)
		return FAIL(r, r->pos, "%s: needs 8 bytes, %" PRIu64 " left", what, rd_left(r));
	*out = gguf_rd_u64(r->base + r->pos);
	r->pos += 8;
	return 0;
}

static int rd_str(struct rd *r, struct gguf_str *s, const char *what)
{
	uint64_t at = r->pos, len = 0;
	int rc = rd_u64(r, &len, what);

	if (rc)
		return rc;
	if (len > rd_left(r))
		return FAIL(r, at, "%s: string length %" PRIu64 " exceeds the %" PRIu64 " bytes left",
			    what, len, rd_left(r));
	s->len = len;
	s->ptr = (const char *)(r->base + r->pos);
	r->pos += len;
	return 0;
}

/* Smallest encoded size of one value of a type (for count checks). */
static uint64_t vtype_min_size(uint32_t t)
{
	if (t == GGUF_VT_STRING)
		return 8;
	if (t == GGUF_VT_ARRAY)
		return 12;
	return gguf_vtype_size(t);
}

static int offs_push(struct offs *o, uint64_t v, struct dm_err *err)
{
	if (o->n == o->cap) {
		uint64_t cap = o->cap ? o->cap * 2 : 256;
		uint64_t *nv = realloc(o->v, cap * sizeof *nv);
		if (!nv)
			return dm_err_set(err, DM_ENOMEM, "out of memory for array index");
		o->v = nv;
		o->cap = cap;
	}
	o->v[o->n++] = v;
	return 0;
}

/*
 * Parses one value of type `type` at the cursor into *v.  `what` names the
 * key for messages.  For top-level arrays of variable-size elements, element
 * offsets are pushed to `idx` (NULL for nested arrays) and v->elem_off holds
 * the start index, cast, until the caller fixes it up.
 */
static int parse_value(struct rd *r, uint32_t type, int depth, struct gguf_value *v,
		       const char *what, struct offs *idx, uint64_t *idx_start)
{
	uint64_t at = r->pos;
	int rc;

	memset(v, 0, sizeof *v);
	v->type = type;
	if (type >= GGUF_VT_COUNT)
		return FAIL(r, at, "%s: unknown value type %u", what, type);

	if (type == GGUF_VT_STRING) {
		if ((rc = rd_str(r, &v->str, what)))
			return rc;
		v->p = (const uint8_t *)v->str.ptr;
		v->nbytes = v->str.len;
		return 0;
	}

	if (type != GGUF_VT_ARRAY) {
		size_t sz = gguf_vtype_size(type);
		if (rd_left(r) < sz)
			return FAIL(r, at, "%s: %s value needs %zu bytes, %" PRIu64 " left",
				    what, gguf_vtype_name(type), sz, rd_left(r));
		if (type == GGUF_VT_BOOL && r->base[r->pos] > 1)
			return FAIL(r, at, "%s: bool value %u is neither 0 nor 1", what,
				    r->base[r->pos]);
		v->p = r->base + r->pos;
		v->nbytes = sz;
		r->pos += sz;
		return 0;
	}

	/* array: u32 elem_type | u64 n | elements */
	if (depth >= GGUF_MAX_ARRAY_DEPTH)
		return FAIL(r, at, "%s: arrays nested deeper than %d levels", what,
			    GGUF_MAX_ARRAY_DEPTH);
	if ((rc = rd_u32(r, &v->elem_type, what)))
		return rc;
	if (v->elem_type >= GGUF_VT_COUNT)
		return FAIL(r, at, "%s: unknown array element type %u", what, v->elem_type);
	if ((rc = rd_u64(r, &v->n, what)))
		return rc;
	{
		uint64_t min = vtype_min_size(v->elem_type);
		if (v->n > rd_left(r) / min)
			return FAIL(r, at + 4, "%s: array of %" PRIu64 " %s needs at least %" PRIu64
				    " bytes each, only %" PRIu64 " bytes left",
				    what, v->n, gguf_vtype_name(v->elem_type), min, rd_left(r));
	}
	v->p = r->base + r->pos;
	if (v->elem_type != GGUF_VT_STRING && v->elem_type != GGUF_VT_ARRAY) {
		uint64_t nb = v->n * gguf_vtype_size(v->elem_type); /* checked above */
		if (v->elem_type == GGUF_VT_BOOL)
			for (uint64_t i = 0; i < v->n; i++)
				if (v->p[i] > 1)
					return FAIL(r, r->pos + i,
						    "%s: bool element %" PRIu64 " is %u, not 0 or 1",
						    what, i, v->p[i]);
		r->pos += nb;
		v->nbytes = nb;
		return 0;
	}
	if (idx)
		*idx_start = idx->n;
	for (uint64_t i = 0; i < v->n; i++) {
		struct gguf_value sub;
		if (idx && (rc = offs_push(idx, r->pos - (uint64_t)(v->p - r->base), r->err)))
			return rc;
		if (v->elem_type == GGUF_VT_STRING) {
			struct gguf_str s;
			if ((rc = rd_str(r, &s, what)))
				return rc;
		} else if ((rc = parse_value(r, GGUF_VT_ARRAY, depth + 1, &sub, what, NULL,
					       NULL))) {
			return rc;
		}
	}
	v->nbytes = r->pos - (uint64_t)(v->p - r->base);
	return 0;
}

/* FNV-1a over a length-delimited string. */
static uint32_t hash_str(const char *s, uint64_t n)
{
	uint32_t h = 2166136261u;
	for (uint64_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)s[i]) * 16777619u;
	return h;
}

bool gguf_str_eq(struct gguf_str a, const char *s)
{
	size_t n = strlen(s);
	return a.len == n && memcmp(a.ptr, s, n) == 0;
}

static bool str_eq2(struct gguf_str a, struct gguf_str b)
{
	return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

static uint32_t hash_cap_for(uint64_t n)
{
	uint32_t cap = 16;
	while (cap < 2 * n)
		cap *= 2;
	return cap;
}

/* Open addressing; slots hold index+1 (0 = empty).  Returns the index of an
 * equal existing entry, or -1 after inserting `i`. */
static int64_t hash_insert(uint32_t *tab, uint32_t cap, struct gguf_str key, uint32_t i,
			   struct gguf_str (*key_of)(const void *ctx, uint32_t), const void *ctx)
{
	uint32_t h = hash_str(key.ptr, key.len) & (cap - 1);
	for (;; h = (h + 1) & (cap - 1)) {
		if (!tab[h]) {
			tab[h] = i + 1;
			return -1;
		}
		if (str_eq2(key_of(ctx, tab[h] - 1), key))
			return tab[h] - 1;
	}
}

static int64_t hash_find(const uint32_t *tab, uint32_t cap, const char *key,
			 struct gguf_str (*key_of)(const void *ctx, uint32_t), const void *ctx)
{
	size_t n = strlen(key);
	uint32_t h;

	if (!tab)
		return -1;
	h = hash_str(key, n) & (cap - 1);
	for (;; h = (h + 1) & (cap - 1)) {
		if (!tab[h])
			return -1;
		if (gguf_str_eq(key_of(ctx, tab[h] - 1), key))
			return tab[h] - 1;
	}
}

static struct gguf_str kv_key(const void *ctx, uint32_t i)
{
	return ((const struct gguf_file *)ctx)->kv[i].key;
}

static struct gguf_str tensor_key(const void *ctx, uint32_t i)
{
	return ((const struct gguf_file *)ctx)->tensors[i].name;
}

/* Prints a key for messages, truncated and with control bytes replaced. */
static const char *key_for_msg(struct gguf_str s, char *buf, size_t cap)
{
	size_t n = s.len < cap - 4 ? s.len : cap - 4, j = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s.ptr[i];
		buf[j++] = (c < 32 || c == 127) ? '?' : (char)c;
	}
	if (n < s.len) {
		memcpy(buf + j, "...", 3);
		j += 3;
	}
	buf[j] = '\0';
	return buf;
}

static int cmp_tensor_offset(const void *a, const void *b, void *ctx)
{
	const struct gguf_tensor *t = ctx;
	uint64_t x = t[*(const uint32_t *)a].offset, y = t[*(const uint32_t *)b].offset;
	return x < y ? -1 : x > y;
}

static int parse_kvs(struct gguf_file *g, struct rd *r, struct offs *idx, uint64_t *idx_start)
{
	char kb[80], what[120];
	int rc;

	for (uint64_t i = 0; i < g->n_kv; i++) {
		struct gguf_kv *kv = &g->kv[i];
		uint32_t vt;
		int64_t dup;

		kv->file_offset = r->pos;
		snprintf(what, sizeof what, "key %" PRIu64, i);
		if ((rc = rd_str(r, &kv->key, what)))
			return rc;
		snprintf(what, sizeof what, "key '%s'", key_for_msg(kv->key, kb, sizeof kb));
		dup = hash_insert(g->kv_hash, g->kv_hash_cap, kv->key, (uint32_t)i, kv_key, g);
		if (dup >= 0)
			return FAIL(r, kv->file_offset, "duplicate %s (first at offset %" PRIu64 ")",
				    what, g->kv[dup].file_offset);
		if ((rc = rd_u32(r, &vt, what)))
			return rc;
		idx_start[i] = UINT64_MAX;
		if ((rc = parse_value(r, vt, 0, &kv->val, what, idx, &idx_start[i])))
			return rc;
	}
	return 0;
}

static int parse_alignment(struct gguf_file *g, struct rd *r)
{
	int64_t k = gguf_find_key(g, "general.alignment");
	uint32_t a;

	g->alignment = GGUF_DEFAULT_ALIGNMENT;
	if (k < 0)
		return 0;
	if (g->kv[k].val.type != GGUF_VT_UINT32)
		return FAIL(r, g->kv[k].file_offset, "general.alignment is %s, expected u32",
			    gguf_vtype_name(g->kv[k].val.type));
	a = gguf_rd_u32(g->kv[k].val.p);
	if (a == 0 || (a & (a - 1)) != 0)
		return FAIL(r, g->kv[k].file_offset,
			    "general.alignment %u is not a power of two", a);
	g->alignment = a;
	return 0;
}

static int parse_tensor_infos(struct gguf_file *g, struct rd *r)
{
	char nb[80], what[120];
	int rc;

	for (uint64_t i = 0; i < g->n_tensors; i++) {
		struct gguf_tensor *t = &g->tensors[i];
		const struct gguf_type_info *ti;
		uint64_t at, rowbytes, nbytes;
		int64_t dup, nelem = 1;

		t->info_offset = r->pos;
		snprintf(what, sizeof what, "tensor %" PRIu64, i);
		if ((rc = rd_str(r, &t->name, what)))
			return rc;
		snprintf(what, sizeof what, "tensor '%s'", key_for_msg(t->name, nb, sizeof nb));
		dup = hash_insert(g->tensor_hash, g->tensor_hash_cap, t->name, (uint32_t)i,
				  tensor_key, g);
		if (dup >= 0)
			return FAIL(r, t->info_offset,
				    "duplicate %s (first at offset %" PRIu64 ")", what,
				    g->tensors[dup].info_offset);
		at = r->pos;
		if ((rc = rd_u32(r, &t->n_dims, what)))
			return rc;
		if (t->n_dims > GGUF_MAX_DIMS)
			return FAIL(r, at, "%s: n_dims %u exceeds %d", what, t->n_dims,
				    GGUF_MAX_DIMS);
		for (int d = 0; d < GGUF_MAX_DIMS; d++)
			t->ne[d] = 1;
		for (uint32_t d = 0; d < t->n_dims; d++) {
			uint64_t ne = 0;
			at = r->pos;
			if ((rc = rd_u64(r, &ne, what)))
				return rc;
			if (ne == 0 || ne > (uint64_t)INT64_MAX)
				return FAIL(r, at, "%s: dimension %u is %" PRIu64
					    " (must be between 1 and 2^63-1)", what, d, ne);
			t->ne[d] = (int64_t)ne;
			if (nelem > INT64_MAX / t->ne[d])
				return FAIL(r, at, "%s: element count overflows at dimension %u",
					    what, d);
			nelem *= t->ne[d];
		}
		t->n_elem = nelem;
		at = r->pos;
		if ((rc = rd_u32(r, &t->type, what)))
			return rc;
		ti = gguf_type_get(t->type);
		if (!ti)
			return FAIL(r, at, "%s: unknown tensor type %u", what, t->type);
		if (t->ne[0] % ti->block_size != 0)
			return FAIL(r, at, "%s: row length %" PRId64
				    " is not a multiple of %s's block size %u",
				    what, t->ne[0], ti->name, ti->block_size);
		/* ne0 / block_size * type_size can wrap 64 bits (F32 with ne0 =
		 * 2^62 would be 0 bytes): the checked helper refuses it */
		if (gguf_type_row_bytes(t->type, t->ne[0], &rowbytes, NULL))
			return FAIL(r, at, "%s: row byte size overflows (row length %" PRId64
				    " of %s)", what, t->ne[0], ti->name);
		nbytes = rowbytes;
		for (int d = 1; d < GGUF_MAX_DIMS; d++) {
			if (nbytes > UINT64_MAX / (uint64_t)t->ne[d])
				return FAIL(r, at, "%s: byte size overflows", what);
			nbytes *= (uint64_t)t->ne[d];
		}
		t->nbytes = nbytes;
		at = r->pos;
		if ((rc = rd_u64(r, &t->offset, what)))
			return rc;
		if (t->offset % g->alignment != 0)
			return FAIL(r, at, "%s: data offset %" PRIu64
				    " is not a multiple of the alignment %u",
				    what, t->offset, g->alignment);
	}
	return 0;
}

/* Data section bounds and overlap checks (after all infos are read). */
static int check_tensor_data(struct gguf_file *g, struct rd *r)
{
	char nb[80], nb2[80];
	uint32_t *order;
	uint64_t end = 0;

	for (uint64_t i = 0; i < g->n_tensors; i++) {
		struct gguf_tensor *t = &g->tensors[i];
		uint64_t avail = g->size >= g->data_offset ? g->size - g->data_offset : 0;
		if (t->offset > avail || t->nbytes > avail - t->offset)
			return FAIL(r, t->info_offset,
				    "tensor '%s': data [%" PRIu64 ", +%" PRIu64
				    ") runs past the end of the file (data section is %" PRIu64
				    " bytes)",
				    key_for_msg(t->name, nb, sizeof nb), t->offset, t->nbytes,
				    avail);
		t->data = g->base + g->data_offset + t->offset;
		if (t->offset + t->nbytes > end)
			end = t->offset + t->nbytes;
	}
	g->data_size = end;
	if (g->n_tensors < 2)
		return 0;
	order = malloc(g->n_tensors * sizeof *order);
	if (!order)
		return dm_err_set(r->err, DM_ENOMEM, "%s: out of memory", g->name);
	for (uint64_t i = 0; i < g->n_tensors; i++)
		order[i] = (uint32_t)i;
	qsort_r(order, g->n_tensors, sizeof *order, cmp_tensor_offset, g->tensors);
	for (uint64_t i = 0; i + 1 < g->n_tensors; i++) {
		const struct gguf_tensor *a = &g->tensors[order[i]], *b = &g->tensors[order[i + 1]];
		if (a->offset + a->nbytes > b->offset) {
			int rc = FAIL(r, b->info_offset,
				      "tensor '%s' at data offset %" PRIu64
				      " overlaps tensor '%s' [%" PRIu64 ", +%" PRIu64 ")",
				      key_for_msg(b->name, nb, sizeof nb), b->offset,
				      key_for_msg(a->name, nb2, sizeof nb2), a->offset, a->nbytes);
			free(order);
			return rc;
		}
	}
	free(order);
	return 0;
}

static int parse(struct gguf_file *g, struct dm_err *err)
{
	struct rd r = { g->base, g->size, 0, g->name, err };
	struct offs idx = { 0 };
	uint64_t *idx_start = NULL;
	int rc;

	if (g->size < 4 || gguf_rd_u32(g->base) != GGUF_MAGIC) {
		if (g->size < 4)
			return FAIL(&r, 0, "file is %" PRIu64 " bytes, too short for a GGUF header",
				    g->size);
		return FAIL(&r, 0, "bad magic %02x %02x %02x %02x (not a GGUF file)",
			    g->base[0], g->base[1], g->base[2], g->base[3]);
	}
	r.pos = 4;
	if ((rc = rd_u32(&r, &g->version, "version")))
		return rc;
	if (g->version != 2 && g->version != 3) {
		if (g->version == 1)
			return FAIL(&r, 4, "GGUF version 1 is not supported (only 2 and 3)");
		if ((g->version & 0xffff) == 0)
			return FAIL(&r, 4, "GGUF version %u: a big-endian file? (only little-endian v2 and v3)",
				    g->version);
		return FAIL(&r, 4, "unsupported GGUF version %u (only 2 and 3)", g->version);
	}
	if ((rc = rd_u64(&r, &g->n_tensors, "tensor count")) ||
	    (rc = rd_u64(&r, &g->n_kv, "key count")))
		return rc;
	/* smallest key/value: u64 len + u32 type + 1 byte; smallest tensor info:
	 * u64 len + u32 n_dims + u32 type + u64 offset */
	if (g->n_kv > rd_left(&r) / 13)
		return FAIL(&r, 16, "key count %" PRIu64 " cannot fit in the %" PRIu64
			    " bytes left", g->n_kv, rd_left(&r));
	if (g->n_tensors > (rd_left(&r) - g->n_kv * 13) / 24)
		return FAIL(&r, 8, "tensor count %" PRIu64 " cannot fit in the %" PRIu64
			    " bytes left", g->n_tensors, rd_left(&r) - g->n_kv * 13);
	if (g->n_kv > UINT32_MAX / 4 || g->n_tensors > UINT32_MAX / 4)
		return FAIL(&r, 8, "too many keys or tensors");

	g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv);
	g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
	idx_start = calloc(g->n_kv ? g->n_kv : 1, sizeof *idx_start);
	g->kv_hash_cap = hash_cap_for(g->n_kv);
	g->tensor_hash_cap = hash_cap_for(g->n_tensors);
	g->kv_hash = calloc(g->kv_hash_cap, sizeof *g->kv_hash);
	g->tensor_hash = calloc(g->tensor_hash_cap, sizeof *g->tensor_hash);
	if (!g->kv || !g->tensors || !idx_start || !g->kv_hash || !g->tensor_hash) {
		rc = dm_err_set(err, DM_ENOMEM, "%s: out of memory for %" PRIu64 " keys and %" PRIu64
				" tensors", g->name, g->n_kv, g->n_tensors);
		goto out;
	}

	if ((rc = parse_kvs(g, &r, &idx, idx_start)))
		goto out;
	g->elem_offs = idx.v;
	idx.v = NULL;
	for (uint64_t i = 0; i < g->n_kv; i++)
		if (idx_start[i] != UINT64_MAX && g->elem_offs)
			g->kv[i].val.elem_off = g->elem_offs + idx_start[i];
	if ((rc = parse_alignment(g, &r)))
		goto out;
	if ((rc = parse_tensor_infos(g, &r)))
		goto out;

	/* data section starts at the next multiple of the alignment */
	if (r.pos > UINT64_MAX - g->alignment) {
		rc = FAIL(&r, r.pos, "data offset overflows");
		goto out;
	}
	g->data_offset = (r.pos + g->alignment - 1) / g->alignment * g->alignment;
	rc = check_tensor_data(g, &r);
out:
	free(idx.v);
	free(idx_start);
	return rc;
}

static int file_new(struct gguf_file **out, const char *name, struct dm_err *err)
{
	struct gguf_file *g = calloc(1, sizeof *g);
	if (g)
		g->name = strdup(name ? name : "(buffer)");
	if (!g || !g->name) {
		free(g);
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	}
	*out = g;
	return 0;
}

int gguf_open_buffer(struct gguf_file **out, const void *buf, size_t size, const char *name,
		     struct dm_err *err)
{
	struct gguf_file *g;
	int rc;

	*out = NULL;
	if ((rc = file_new(&g, name, err)))
		return rc;
	g->base = buf;
	g->size = size;
	if ((rc = parse(g, err))) {
		gguf_close(g);
		return rc;
	}
	*out = g;
	return 0;
}

int gguf_open(struct gguf_file **out, const char *path, struct dm_err *err)
{
	struct gguf_file *g;
	struct stat st;
	void *map;
	int fd, rc;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dm_err_set(err, DM_EIO, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		rc = dm_err_set(err, DM_EIO, "%s: %s", path, strerror(errno));
		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return dm_err_set(err, DM_EIO, "%s: not a regular file", path);
	}
	if (st.st_size < 4) {
		close(fd);
		return dm_err_set(err, DM_EFORMAT, "%s: offset 0: file is %lld bytes, too short for a GGUF header",
				  path, (long long)st.st_size);
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return dm_err_set(err, DM_EIO, "%s: mmap: %s", path, strerror(errno));
#ifdef MADV_HUGEPAGE
	/* Where the kernel can: pages read in through this mapping come as
	 * 2 MiB folios and are mapped as huge pages (a matvec streaming the
	 * weights then stops missing the TLB every 4 KiB).  Advice only: no
	 * memory is touched, and the mapping's pages still belong to the page
	 * cache.  Refused where THP is off, which changes nothing. */
	(void)madvise(map, (size_t)st.st_size, MADV_HUGEPAGE);
#endif
	if ((rc = file_new(&g, path, err))) {
		munmap(map, (size_t)st.st_size);
		return rc;
	}
	g->base = map;
	g->size = (uint64_t)st.st_size;
	g->mapped = true;
	if ((rc = parse(g, err))) {
		gguf_close(g);
		return rc;
	}
	*out = g;
	return 0;
}

void gguf_close(struct gguf_file *g)
{
	if (!g)
		return;
	if (g->mapped)
		munmap((void *)(uintptr_t)g->base, g->size);
	free(g->kv);
	free(g->tensors);
	free(g->elem_offs);
	free(g->kv_hash);
	free(g->tensor_hash);
	free(g->name);
	free(g);
}

int64_t gguf_find_key(const struct gguf_file *g, const char *key)
{
	return hash_find(g->kv_hash, g->kv_hash_cap, key, kv_key, g);
}

const struct gguf_tensor *gguf_tensor_find(const struct gguf_file *g, const char *name)
{
	int64_t i = hash_find(g->tensor_hash, g->tensor_hash_cap, name, tensor_key, g);
	return i < 0 ? NULL : &g->tensors[i];
}

/* ---- value conversions ---- */

static int scalar_bits(const struct gguf_value *v, int64_t *si, uint64_t *ui, double *f,
		       int *kind)
{
	const uint8_t *p = v->p;
	union { uint32_t u; float f; } u32f;
	union { uint64_t u; double f; } u64f;

	/* kind: 0 signed int, 1 unsigned int, 2 float */
	switch (v->type) {
	case GGUF_VT_UINT8: *ui = p[0]; *kind = 1; return 0;
	case GGUF_VT_BOOL: *ui = p[0]; *kind = 1; return 0;
	case GGUF_VT_INT8: *si = (int8_t)p[0]; *kind = 0; return 0;
	case GGUF_VT_UINT16: *ui = (uint16_t)(p[0] | p[1] << 8); *kind = 1; return 0;
	case GGUF_VT_INT16: *si = (int16_t)(uint16_t)(p[0] | p[1] << 8); *kind = 0; return 0;
	case GGUF_VT_UINT32: *ui = gguf_rd_u32(p); *kind = 1; return 0;
	case GGUF_VT_INT32: *si = (int32_t)gguf_rd_u32(p); *kind = 0; return 0;
	case GGUF_VT_UINT64: *ui = gguf_rd_u64(p); *kind = 1; return 0;
	case GGUF_VT_INT64: *si = (int64_t)gguf_rd_u64(p); *kind = 0; return 0;
	case GGUF_VT_FLOAT32: u32f.u = gguf_rd_u32(p); *f = u32f.f; *kind = 2; return 0;
	case GGUF_VT_FLOAT64: u64f.u = gguf_rd_u64(p); *f = u64f.f; *kind = 2; return 0;
	}
	return DM_ETYPE;
}

int gguf_value_i64(const struct gguf_value *v, int64_t *out)
{
	int64_t si = 0;
	uint64_t ui = 0;
	double f = 0;
	int kind, rc = scalar_bits(v, &si, &ui, &f, &kind);

	if (rc || kind == 2)
		return DM_ETYPE;
	if (kind == 1) {
		if (ui > (uint64_t)INT64_MAX)
			return DM_ERANGE;
		si = (int64_t)ui;
	}
	*out = si;
	return 0;
}

int gguf_value_u64(const struct gguf_value *v, uint64_t *out)
{
	int64_t si = 0;
	uint64_t ui = 0;
	double f = 0;
	int kind, rc = scalar_bits(v, &si, &ui, &f, &kind);

	if (rc || kind == 2)
		return DM_ETYPE;
	if (kind == 0) {
		if (si < 0)
			return DM_ERANGE;
		ui = (uint64_t)si;
	}
	*out = ui;
	return 0;
}

int gguf_value_f64(const struct gguf_value *v, double *out)
{
	int64_t si = 0;
	uint64_t ui = 0;
	double f = 0;
	int kind, rc = scalar_bits(v, &si, &ui, &f, &kind);

	if (rc)
		return DM_ETYPE;
	*out = kind == 2 ? f : kind == 1 ? (double)ui : (double)si;
	return 0;
}

/* ---- typed getters ---- */

static int get_kv(const struct gguf_file *g, const char *key, const struct gguf_kv **kv,
		  struct dm_err *err)
{
	int64_t i = gguf_find_key(g, key);
	if (i < 0)
		return dm_err_set(err, DM_ENOTFOUND, "%s: key '%s' not found", g->name, key);
	*kv = &g->kv[i];
	return 0;
}

static int wrong_type(const struct gguf_file *g, const char *key, uint32_t have,
		      const char *want, struct dm_err *err)
{
	return dm_err_set(err, DM_ETYPE, "%s: key '%s' is %s, expected %s", g->name, key,
			  gguf_vtype_name(have), want);
}

static int get_int(const struct gguf_file *g, const char *key, int64_t lo, uint64_t hi,
		   const char *want, int64_t *si, uint64_t *ui, struct dm_err *err)
{
	const struct gguf_kv *kv = NULL;
	int rc = get_kv(g, key, &kv, err);

	if (rc)
		return rc;
	if (kv->val.type == GGUF_VT_STRING || kv->val.type == GGUF_VT_ARRAY ||
	    kv->val.type == GGUF_VT_FLOAT32 || kv->val.type == GGUF_VT_FLOAT64 ||
	    kv->val.type == GGUF_VT_BOOL)
		return wrong_type(g, key, kv->val.type, want, err);
	if (lo < 0) {
		int64_t v;
		if (gguf_value_i64(&kv->val, &v) || v < lo || (v > 0 && (uint64_t)v > hi))
			return dm_err_set(err, DM_ERANGE, "%s: key '%s' value out of range for %s",
					  g->name, key, want);
		*si = v;
	} else {
		uint64_t v;
		if (gguf_value_u64(&kv->val, &v) || v > hi)
			return dm_err_set(err, DM_ERANGE, "%s: key '%s' value out of range for %s",
					  g->name, key, want);
		*ui = v;
	}
	return 0;
}

int gguf_get_u32(const struct gguf_file *g, const char *key, uint32_t *out, struct dm_err *err)
{
	uint64_t v = 0;
	int rc = get_int(g, key, 0, UINT32_MAX, "u32", NULL, &v, err);
	if (!rc)
		*out = (uint32_t)v;
	return rc;
}

int gguf_get_u64(const struct gguf_file *g, const char *key, uint64_t *out, struct dm_err *err)
{
	return get_int(g, key, 0, UINT64_MAX, "u64", NULL, out, err);
}

int gguf_get_i32(const struct gguf_file *g, const char *key, int32_t *out, struct dm_err *err)
{
	int64_t v = 0;
	int rc = get_int(g, key, INT32_MIN, INT32_MAX, "i32", &v, NULL, err);
	if (!rc)
		*out = (int32_t)v;
	return rc;
}

int gguf_get_i64(const struct gguf_file *g, const char *key, int64_t *out, struct dm_err *err)
{
	return get_int(g, key, INT64_MIN, INT64_MAX, "i64", out, NULL, err);
}

int gguf_get_f64(const struct gguf_file *g, const char *key, double *out, struct dm_err *err)
{
	const struct gguf_kv *kv = NULL;
	int rc = get_kv(g, key, &kv, err);

	if (rc)
		return rc;
	if (kv->val.type != GGUF_VT_FLOAT32 && kv->val.type != GGUF_VT_FLOAT64)
		return wrong_type(g, key, kv->val.type, "f32 or f64", err);
	return gguf_value_f64(&kv->val, out);
}

int gguf_get_f32(const struct gguf_file *g, const char *key, float *out, struct dm_err *err)
{
	double v;
	int rc = gguf_get_f64(g, key, &v, err);
	if (!rc)
		*out = (float)v;
	return rc;
}

int gguf_get_bool(const struct gguf_file *g, const char *key, bool *out, struct dm_err *err)
{
	const struct gguf_kv *kv = NULL;
	int rc = get_kv(g, key, &kv, err);

	if (rc)
		return rc;
	if (kv->val.type != GGUF_VT_BOOL)
		return wrong_type(g, key, kv->val.type, "bool", err);
	*out = kv->val.p[0] != 0;
	return 0;
}

int gguf_get_str(const struct gguf_file *g, const char *key, struct gguf_str *out,
		 struct dm_err *err)
{
	const struct gguf_kv *kv = NULL;
	int rc = get_kv(g, key, &kv, err);

	if (rc)
		return rc;
	if (kv->val.type != GGUF_VT_STRING)
		return wrong_type(g, key, kv->val.type, "str", err);
	*out = kv->val.str;
	return 0;
}

int gguf_get_str_buf(const struct gguf_file *g, const char *key, char *buf, size_t cap,
		     struct dm_err *err)
{
	struct gguf_str s;
	int rc = gguf_get_str(g, key, &s, err);

	if (rc)
		return rc;
	if (s.len >= cap)
		return dm_err_set(err, DM_ERANGE, "%s: key '%s': string of %" PRIu64
				  " bytes is too long (max %zu)", g->name, key, s.len, cap - 1);
	memcpy(buf, s.ptr, s.len);
	buf[s.len] = '\0';
	return 0;
}

int gguf_get_arr(const struct gguf_file *g, const char *key, int elem_type,
		 const struct gguf_value **out, struct dm_err *err)
{
	const struct gguf_kv *kv = NULL;
	int rc = get_kv(g, key, &kv, err);

	if (rc)
		return rc;
	if (kv->val.type != GGUF_VT_ARRAY)
		return wrong_type(g, key, kv->val.type, "arr", err);
	if (elem_type >= 0 && kv->val.elem_type != (uint32_t)elem_type)
		return dm_err_set(err, DM_ETYPE, "%s: key '%s' is arr[%s], expected arr[%s]",
				  g->name, key, gguf_vtype_name(kv->val.elem_type),
				  gguf_vtype_name((uint32_t)elem_type));
	*out = &kv->val;
	return 0;
}

/* Encoded size of a value of `type` at p (validated at open, so the walk
 * stays inside the array; nesting is bounded by GGUF_MAX_ARRAY_DEPTH). */
static uint64_t value_span(const uint8_t *p, uint32_t type)
{
	uint32_t et;
	uint64_t n, off = 12;

	if (type == GGUF_VT_STRING)
		return 8 + gguf_rd_u64(p);
	if (type != GGUF_VT_ARRAY)
		return gguf_vtype_size(type);
	et = gguf_rd_u32(p);
	n = gguf_rd_u64(p + 4);
	if (gguf_vtype_size(et))
		return off + n * gguf_vtype_size(et);
	for (uint64_t i = 0; i < n; i++)
		off += value_span(p + off, et);
	return off;
}

/* Byte offset of element i from arr->p. */
static uint64_t elem_offset(const struct gguf_value *arr, uint64_t i)
{
	size_t sz = gguf_vtype_size(arr->elem_type);
	uint64_t off = 0;

	if (sz)
		return i * sz;
	if (arr->elem_off)
		return arr->elem_off[i];
	for (uint64_t k = 0; k < i; k++)
		off += value_span(arr->p + off, arr->elem_type);
	return off;
}

int gguf_arr_elem(const struct gguf_value *arr, uint64_t i, struct gguf_value *out,
		  struct dm_err *err)
{
	const uint8_t *p;

	if (arr->type != GGUF_VT_ARRAY)
		return dm_err_set(err, DM_ETYPE, "value is %s, not an array",
				  gguf_vtype_name(arr->type));
	if (i >= arr->n)
		return dm_err_set(err, DM_ERANGE, "array index %" PRIu64 " out of range (%" PRIu64
				  " elements)", i, arr->n);
	p = arr->p + elem_offset(arr, i);
	memset(out, 0, sizeof *out);
	out->type = arr->elem_type;
	if (arr->elem_type == GGUF_VT_STRING) {
		out->str.len = gguf_rd_u64(p);
		out->str.ptr = (const char *)(p + 8);
		out->p = p + 8;
		out->nbytes = out->str.len;
	} else if (arr->elem_type == GGUF_VT_ARRAY) {
		out->elem_type = gguf_rd_u32(p);
		out->n = gguf_rd_u64(p + 4);
		out->p = p + 12;
		out->nbytes = value_span(p, GGUF_VT_ARRAY) - 12;
	} else {
		out->p = p;
		out->nbytes = gguf_vtype_size(arr->elem_type);
	}
	return 0;
}

int gguf_arr_str(const struct gguf_value *arr, uint64_t i, struct gguf_str *out,
		 struct dm_err *err)
{
	struct gguf_value v;
	int rc;

	if (arr->type != GGUF_VT_ARRAY || arr->elem_type != GGUF_VT_STRING)
		return dm_err_set(err, DM_ETYPE, "value is not an array of strings");
	if ((rc = gguf_arr_elem(arr, i, &v, err)))
		return rc;
	*out = v.str;
	return 0;
}

int gguf_arr_f64(const struct gguf_value *arr, uint64_t i, double *out, struct dm_err *err)
{
	struct gguf_value v;
	int rc;

	if ((rc = gguf_arr_elem(arr, i, &v, err)))
		return rc;
	if (gguf_value_f64(&v, out))
		return dm_err_set(err, DM_ETYPE, "array element is %s, not a number",
				  gguf_vtype_name(v.type));
	return 0;
}

int gguf_arr_i64(const struct gguf_value *arr, uint64_t i, int64_t *out, struct dm_err *err)
{
	struct gguf_value v;
	int rc;

	if ((rc = gguf_arr_elem(arr, i, &v, err)))
		return rc;
	rc = gguf_value_i64(&v, out);
	if (rc == DM_ERANGE)
		return dm_err_set(err, DM_ERANGE, "array element %" PRIu64 " out of range", i);
	if (rc)
		return dm_err_set(err, DM_ETYPE, "array element is %s, not an integer",
				  gguf_vtype_name(v.type));
	return 0;
}

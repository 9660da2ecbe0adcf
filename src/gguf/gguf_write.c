/*
 * gguf/write — a streaming GGUF v3 writer.
 *
 * Metadata values are encoded into small owned buffers as they are added.
 * Tensor offsets follow from the declared shapes (each tensor starts at the
 * next multiple of the alignment), so the header can be written before any
 * tensor data exists and the data can then be streamed in any chunk sizes.
 * The writer owns copies of every key, value and name it was given.
 */
#include "gguf/gguf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct wkv {
	char *key;
	uint32_t type;
	uint8_t *bytes; /* the encoded value, without its type field */
	uint64_t nbytes;
};

struct wtensor {
	char *name;
	uint32_t type, n_dims;
	int64_t ne[GGUF_MAX_DIMS];
	uint64_t nbytes, offset;
};

struct gguf_writer {
	FILE *f;
	bool own_f;
	char *name;
	uint32_t alignment;
	struct wkv *kv;
	size_t n_kv, cap_kv;
	struct wtensor *t;
	size_t n_t, cap_t;
	bool header_done;
	uint64_t data_start; /* file offset of the data section */
	uint64_t pos;        /* bytes of the data section produced so far */
	size_t cur;          /* tensor being written */
	uint64_t cur_done;   /* bytes of it written */
	bool failed;
};

/* growable byte buffer for encoding */
struct buf {
	uint8_t *p;
	uint64_t n, cap;
};

static int buf_put(struct buf *b, const void *data, uint64_t n)
{
	if (b->n + n > b->cap) {
		uint64_t cap = b->cap ? b->cap : 64;
		uint8_t *np;
		while (cap < b->n + n)
			cap *= 2;
		np = realloc(b->p, cap);
		if (!np)
			return DM_ENOMEM;
		b->p = np;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->n, data, n);
	b->n += n;
	return 0;
}

static int buf_u32(struct buf *b, uint32_t v)
{
	uint8_t x[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	return buf_put(b, x, 4);
}

static int buf_u64(struct buf *b, uint64_t v)
{
	int rc = buf_u32(b, (uint32_t)v);
	return rc ? rc : buf_u32(b, (uint32_t)(v >> 32));
}

static int buf_str(struct buf *b, const char *s, uint64_t n)
{
	int rc = buf_u64(b, n);
	return rc ? rc : buf_put(b, s, n);
}

int gguf_writer_open_stream(struct gguf_writer **out, FILE *f, const char *name,
			    struct dm_err *err)
{
	struct gguf_writer *w = calloc(1, sizeof *w);

	*out = NULL;
	if (w)
		w->name = strdup(name ? name : "(stream)");
	if (!w || !w->name) {
		free(w);
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	}
	w->f = f;
	w->alignment = GGUF_DEFAULT_ALIGNMENT;
	*out = w;
	return 0;
}

int gguf_writer_open(struct gguf_writer **out, const char *path, struct dm_err *err)
{
	FILE *f = fopen(path, "wb");
	int rc;

	*out = NULL;
	if (!f)
		return dm_err_set(err, DM_EIO, "%s: %s", path, strerror(errno));
	if ((rc = gguf_writer_open_stream(out, f, path, err))) {
		fclose(f);
		return rc;
	}
	(*out)->own_f = true;
	return 0;
}

static int check_open(struct gguf_writer *w, struct dm_err *err)
{
	if (w->header_done)
		return dm_err_set(err, DM_EINVAL, "%s: header already written", w->name);
	return 0;
}

static int add_kv(struct gguf_writer *w, const char *key, uint32_t type, const void *bytes,
		  uint64_t nbytes, struct dm_err *err)
{
	struct wkv *kv;
	int rc;

	if ((rc = check_open(w, err)))
		return rc;
	if (type >= GGUF_VT_COUNT)
		return dm_err_set(err, DM_EINVAL, "%s: key '%s': bad value type %u", w->name, key, type);
	/* the alignment the file claims is the one its data uses */
	uint32_t align = 0;
	if (strcmp(key, "general.alignment") == 0) {
		if (type != GGUF_VT_UINT32 || nbytes != 4)
			return dm_err_set(err, DM_ETYPE, "%s: general.alignment must be a u32", w->name);
		memcpy(&align, bytes, 4);
		if (align == 0 || (align & (align - 1)))
			return dm_err_set(err, DM_EINVAL, "%s: alignment %u is not a power of two", w->name, align);
	}
	for (size_t i = 0; i < w->n_kv; i++)
		if (strcmp(w->kv[i].key, key) == 0)
			return dm_err_set(err, DM_EINVAL, "%s: duplicate key '%s'", w->name, key);
	if (w->n_kv == w->cap_kv) {
		size_t cap = w->cap_kv ? w->cap_kv * 2 : 16;
		struct wkv *nk = realloc(w->kv, cap * sizeof *nk);
		if (!nk)
			return dm_err_set(err, DM_ENOMEM, "out of memory");
		w->kv = nk;
		w->cap_kv = cap;
	}
	kv = &w->kv[w->n_kv];
	kv->key = strdup(key);
	kv->bytes = malloc(nbytes ? nbytes : 1);
	if (!kv->key || !kv->bytes) {
		free(kv->key);
		free(kv->bytes);
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	}
	if (nbytes)
		memcpy(kv->bytes, bytes, nbytes);
	kv->type = type;
	kv->nbytes = nbytes;
	w->n_kv++;
	if (align)
		w->alignment = align;
	return 0;
}

/* Scalars are stored little-endian; this project only builds on
 * little-endian hosts (checked in gguf_writer_write_header). */
#define ADD_SCALAR(fn, ctype, vt)                                                        \
	int fn(struct gguf_writer *w, const char *key, ctype v, struct dm_err *err)        \
	{                                                                                 \
		return add_kv(w, key, vt, &v, sizeof v, err);                             \
	}
ADD_SCALAR(gguf_writer_add_u8, uint8_t, GGUF_VT_UINT8)
ADD_SCALAR(gguf_writer_add_i8, int8_t, GGUF_VT_INT8)
ADD_SCALAR(gguf_writer_add_u16, uint16_t, GGUF_VT_UINT16)
ADD_SCALAR(gguf_writer_add_i16, int16_t, GGUF_VT_INT16)
ADD_SCALAR(gguf_writer_add_u32, uint32_t, GGUF_VT_UINT32)
ADD_SCALAR(gguf_writer_add_i32, int32_t, GGUF_VT_INT32)
ADD_SCALAR(gguf_writer_add_u64, uint64_t, GGUF_VT_UINT64)
ADD_SCALAR(gguf_writer_add_i64, int64_t, GGUF_VT_INT64)
ADD_SCALAR(gguf_writer_add_f32, float, GGUF_VT_FLOAT32)
ADD_SCALAR(gguf_writer_add_f64, double, GGUF_VT_FLOAT64)

int gguf_writer_add_bool(struct gguf_writer *w, const char *key, bool v, struct dm_err *err)
{
	uint8_t b = v ? 1 : 0;
	return add_kv(w, key, GGUF_VT_BOOL, &b, 1, err);
}

int gguf_writer_add_strn(struct gguf_writer *w, const char *key, const char *s, size_t len,
			 struct dm_err *err)
{
	struct buf b = { 0 };
	int rc;

	if (buf_str(&b, s, len)) {
		free(b.p);
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	}
	rc = add_kv(w, key, GGUF_VT_STRING, b.p, b.n, err);
	free(b.p);
	return rc;
}

int gguf_writer_add_str(struct gguf_writer *w, const char *key, const char *s, struct dm_err *err)
{
	return gguf_writer_add_strn(w, key, s, strlen(s), err);
}

int gguf_writer_add_arr(struct gguf_writer *w, const char *key, uint32_t elem_type,
			const void *data, uint64_t n, struct dm_err *err)
{
	size_t sz = gguf_vtype_size(elem_type);
	struct buf b = { 0 };
	int rc;

	if (!sz)
		return dm_err_set(err, DM_EINVAL, "%s: key '%s': array of %s needs its own call",
				  w->name, key, gguf_vtype_name(elem_type));
	if (n > (UINT64_MAX - 12) / sz)
		return dm_err_set(err, DM_ERANGE, "%s: key '%s': array too large", w->name, key);
	if (buf_u32(&b, elem_type) || buf_u64(&b, n) || buf_put(&b, data, n * sz)) {
		free(b.p);
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	}
	rc = add_kv(w, key, GGUF_VT_ARRAY, b.p, b.n, err);
	free(b.p);
	return rc;
}

int gguf_writer_add_arr_str(struct gguf_writer *w, const char *key, const char *const *strs,
			    const size_t *lens, uint64_t n, struct dm_err *err)
{
	struct buf b = { 0 };
	int rc = buf_u32(&b, GGUF_VT_STRING);

	rc = rc ? rc : buf_u64(&b, n);
	for (uint64_t i = 0; i < n && !rc; i++)
		rc = buf_str(&b, strs[i], lens ? lens[i] : strlen(strs[i]));
	if (rc) {
		free(b.p);
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	}
	rc = add_kv(w, key, GGUF_VT_ARRAY, b.p, b.n, err);
	free(b.p);
	return rc;
}

int gguf_writer_add_raw(struct gguf_writer *w, const char *key, uint32_t vtype,
			const void *bytes, uint64_t nbytes, struct dm_err *err)
{
	return add_kv(w, key, vtype, bytes, nbytes, err);
}

int gguf_writer_set_alignment(struct gguf_writer *w, uint32_t alignment, struct dm_err *err)
{
	int rc;

	if ((rc = check_open(w, err)))
		return rc;
	if (alignment == 0 || (alignment & (alignment - 1)))
		return dm_err_set(err, DM_EINVAL, "%s: alignment %u is not a power of two",
				  w->name, alignment);
	for (size_t i = 0; i < w->n_kv; i++)
		if (strcmp(w->kv[i].key, "general.alignment") == 0) { /* a u32 (add_kv) */
			memcpy(w->kv[i].bytes, &alignment, 4);
			w->alignment = alignment;
			return 0;
		}
	return gguf_writer_add_u32(w, "general.alignment", alignment, err);
}

static uint64_t align_up(uint64_t x, uint32_t a)
{
	return (x + a - 1) / a * a;
}

int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, uint32_t type,
			   uint32_t n_dims, const int64_t *ne, struct dm_err *err)
{
	struct wtensor *t;
	uint64_t nbytes;
	int rc;

	if ((rc = check_open(w, err)))
		return rc;
	if (!gguf_type_get(type))
		return dm_err_set(err, DM_EINVAL, "%s: tensor '%s': unknown type %u", w->name, name, type);
	if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
		return dm_err_set(err, DM_EINVAL, "%s: tensor '%s': n_dims %u", w->name, name, n_dims);
	for (uint32_t d = 0; d < n_dims; d++)
		if (ne[d] < 1)
			return dm_err_set(err, DM_EINVAL, "%s: tensor '%s': dimension %u is %lld",
					  w->name, name, d, (long long)ne[d]);
	if ((rc = gguf_type_row_bytes(type, ne[0], &nbytes, err)))
		return dm_err_prefix(err, "%s: tensor '%s'", w->name, name);
	for (uint32_t d = 1; d < n_dims; d++) {
		if (nbytes > UINT64_MAX / (uint64_t)ne[d])
			return dm_err_set(err, DM_ERANGE, "%s: tensor '%s': size overflows", w->name, name);
		nbytes *= (uint64_t)ne[d];
	}
	for (size_t i = 0; i < w->n_t; i++)
		if (strcmp(w->t[i].name, name) == 0)
			return dm_err_set(err, DM_EINVAL, "%s: duplicate tensor '%s'", w->name, name);
	if (w->n_t == w->cap_t) {
		size_t cap = w->cap_t ? w->cap_t * 2 : 16;
		struct wtensor *nt = realloc(w->t, cap * sizeof *nt);
		if (!nt)
			return dm_err_set(err, DM_ENOMEM, "out of memory");
		w->t = nt;
		w->cap_t = cap;
	}
	t = &w->t[w->n_t];
	memset(t, 0, sizeof *t);
	if (!(t->name = strdup(name)))
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	t->type = type;
	t->n_dims = n_dims;
	for (int d = 0; d < GGUF_MAX_DIMS; d++)
		t->ne[d] = d < (int)n_dims ? ne[d] : 1;
	t->nbytes = nbytes;
	return (int)w->n_t++;
}

static int wfail(struct gguf_writer *w, struct dm_err *err, const char *what)
{
	w->failed = true;
	return dm_err_set(err, DM_EIO, "%s: %s: %s", w->name, what, strerror(errno ? errno : EIO));
}

int gguf_writer_write_header(struct gguf_writer *w, struct dm_err *err)
{
	const uint16_t probe = 1;
	struct buf b = { 0 };
	uint64_t off = 0;
	int rc = 0;

	if ((rc = check_open(w, err)))
		return rc;
	if (*(const uint8_t *)&probe != 1)
		return dm_err_set(err, DM_EUNSUPPORTED, "big-endian hosts are not supported");
	/* tensor offsets: each at the next multiple of the alignment */
	for (size_t i = 0; i < w->n_t; i++) {
		w->t[i].offset = off;
		if (w->t[i].nbytes > UINT64_MAX - off - w->alignment)
			return dm_err_set(err, DM_ERANGE, "%s: data section overflows", w->name);
		off = align_up(off + w->t[i].nbytes, w->alignment);
	}
	rc = buf_u32(&b, GGUF_MAGIC);
	rc = rc ? rc : buf_u32(&b, 3);
	rc = rc ? rc : buf_u64(&b, w->n_t);
	rc = rc ? rc : buf_u64(&b, w->n_kv);
	for (size_t i = 0; i < w->n_kv && !rc; i++) {
		rc = buf_str(&b, w->kv[i].key, strlen(w->kv[i].key));
		rc = rc ? rc : buf_u32(&b, w->kv[i].type);
		rc = rc ? rc : buf_put(&b, w->kv[i].bytes, w->kv[i].nbytes);
	}
	for (size_t i = 0; i < w->n_t && !rc; i++) {
		const struct wtensor *t = &w->t[i];
		rc = buf_str(&b, t->name, strlen(t->name));
		rc = rc ? rc : buf_u32(&b, t->n_dims);
		for (uint32_t d = 0; d < t->n_dims && !rc; d++)
			rc = buf_u64(&b, (uint64_t)t->ne[d]);
		rc = rc ? rc : buf_u32(&b, t->type);
		rc = rc ? rc : buf_u64(&b, t->offset);
	}
	while (!rc && b.n % w->alignment)
		rc = buf_put(&b, "", 1);
	if (rc) {
		free(b.p);
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	}
	errno = 0;
	if (fwrite(b.p, 1, b.n, w->f) != b.n) {
		free(b.p);
		return wfail(w, err, "write");
	}
	w->data_start = b.n;
	free(b.p);
	w->header_done = true;
	return 0;
}

static int put_zeros(struct gguf_writer *w, uint64_t n, bool may_seek, struct dm_err *err)
{
	static const uint8_t zero[4096];

	if (!n)
		return 0;
	errno = 0;
	if (may_seek && fileno(w->f) >= 0) {
		if (fseeko(w->f, (off_t)n, SEEK_CUR) != 0)
			return wfail(w, err, "seek");
		return 0;
	}
	while (n) {
		size_t k = n < sizeof zero ? (size_t)n : sizeof zero;
		if (fwrite(zero, 1, k, w->f) != k)
			return wfail(w, err, "write");
		n -= k;
	}
	return 0;
}

/* Shared by write and skip: data == NULL means zeros (seeking if possible). */
static int put_data(struct gguf_writer *w, const void *data, uint64_t n, struct dm_err *err)
{
	const uint8_t *p = data;
	int rc;

	if (!w->header_done)
		return dm_err_set(err, DM_EINVAL, "%s: tensor data before the header", w->name);
	if (w->failed)
		return dm_err_set(err, DM_EIO, "%s: writer already failed", w->name);
	while (n) {
		struct wtensor *t;
		uint64_t take;

		if (w->cur >= w->n_t)
			return dm_err_set(err, DM_EINVAL, "%s: %" PRIu64
					  " bytes more than the declared tensors hold", w->name, n);
		t = &w->t[w->cur];
		take = t->nbytes - w->cur_done;
		if (take > n)
			take = n;
		if (p) {
			errno = 0;
			if (fwrite(p, 1, take, w->f) != take)
				return wfail(w, err, "write");
			p += take;
		} else if ((rc = put_zeros(w, take, true, err))) {
			return rc;
		}
		n -= take;
		w->cur_done += take;
		w->pos += take;
		if (w->cur_done == t->nbytes) {
			uint64_t pad = align_up(w->pos, w->alignment) - w->pos;
			if ((rc = put_zeros(w, pad, false, err)))
				return rc;
			w->pos += pad;
			w->cur++;
			w->cur_done = 0;
		}
	}
	return 0;
}

int gguf_writer_write(struct gguf_writer *w, const void *data, uint64_t n, struct dm_err *err)
{
	static const uint8_t none;
	return put_data(w, data ? data : &none, data ? n : 0, err);
}

int gguf_writer_skip(struct gguf_writer *w, uint64_t n, struct dm_err *err)
{
	return put_data(w, NULL, n, err);
}

void gguf_writer_free(struct gguf_writer *w)
{
	if (!w)
		return;
	if (w->own_f && w->f)
		fclose(w->f);
	for (size_t i = 0; i < w->n_kv; i++) {
		free(w->kv[i].key);
		free(w->kv[i].bytes);
	}
	for (size_t i = 0; i < w->n_t; i++)
		free(w->t[i].name);
	free(w->kv);
	free(w->t);
	free(w->name);
	free(w);
}

int gguf_writer_close(struct gguf_writer *w, struct dm_err *err)
{
	int rc = 0;

	if (!w)
		return 0;
	if (!w->header_done && !w->failed)
		rc = gguf_writer_write_header(w, err);
	if (!rc && w->cur < w->n_t)
		rc = dm_err_set(err, DM_EINVAL, "%s: tensor '%s' got %" PRIu64 " of %" PRIu64
				" bytes before close", w->name, w->t[w->cur].name, w->cur_done,
				w->t[w->cur].nbytes);
	if (!rc) {
		errno = 0;
		if (fflush(w->f) != 0) {
			rc = wfail(w, err, "flush");
		} else if (fileno(w->f) >= 0) {
			/* a trailing hole left by skip: extend the file to its size */
			struct stat st;
			uint64_t end = w->data_start + w->pos;
			int fd = fileno(w->f);
			if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size < end &&
			    ftruncate(fd, (off_t)end) != 0)
				rc = wfail(w, err, "truncate");
		}
	}
	if (w->own_f) {
		errno = 0;
		if (fclose(w->f) != 0 && !rc)
			rc = dm_err_set(err, DM_EIO, "%s: close: %s", w->name, strerror(errno));
		w->f = NULL;
	}
	gguf_writer_free(w);
	return rc;
}

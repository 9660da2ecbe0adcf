/*
 * gguf — a validating reader and a streaming writer for GGUF files (v2, v3).
 *
 * Reader invariants: after gguf_open*() succeeds, every key, value, array,
 * tensor info and tensor data range lies inside the mapped bytes; every
 * element and byte count was computed with overflow checks; keys and tensor
 * names are unique; tensors do not overlap.  Nothing in the file is trusted
 * before it is checked, so a corrupt file gives a one-line error naming the
 * field and byte offset, never a crash, an out-of-bounds read or a hang.
 *
 * Ownership: struct gguf_file owns its mapping (or borrows the caller's
 * buffer for gguf_open_buffer).  Every pointer handed out — strings, array
 * data, tensor data — is a borrowed view, valid until gguf_close().
 * Strings in GGUF are length-prefixed and NOT NUL-terminated: use the
 * struct gguf_str length.
 *
 * Layout of a GGUF file (all little-endian):
 *   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv × { str key | u32 value_type | value }
 *   n_tensors × { str name | u32 n_dims | u64 ne[n_dims] | u32 type | u64 offset }
 *   padding to general.alignment (default 32)
 *   data section: tensor i at data_offset + offset_i (offset_i aligned)
 * where str = { u64 len | len bytes } and an array value is
 *   { u32 elem_type | u64 n | n × value }.
 * (Version 1 used u32 counts and lengths; it is rejected.)
 */
#ifndef DM_GGUF_H
#define DM_GGUF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "base/err.h"

#define GGUF_MAGIC 0x46554747u /* "GGUF" read as little-endian u32 */
#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_MAX_DIMS 4
#define GGUF_MAX_ARRAY_DEPTH 8 /* nesting limit for arrays of arrays */

/* Metadata value types, as numbered by the format. */
enum gguf_vtype {
	GGUF_VT_UINT8 = 0,
	GGUF_VT_INT8 = 1,
	GGUF_VT_UINT16 = 2,
	GGUF_VT_INT16 = 3,
	GGUF_VT_UINT32 = 4,
	GGUF_VT_INT32 = 5,
	GGUF_VT_FLOAT32 = 6,
	GGUF_VT_BOOL = 7,
	GGUF_VT_STRING = 8,
	GGUF_VT_ARRAY = 9,
	GGUF_VT_UINT64 = 10,
	GGUF_VT_INT64 = 11,
	GGUF_VT_FLOAT64 = 12,
	GGUF_VT_COUNT
};

/* Tensor types, numbered as ggml numbers them (gaps are removed types). */
enum gguf_type {
	GGUF_TYPE_F32 = 0,
	GGUF_TYPE_F16 = 1,
	GGUF_TYPE_Q4_0 = 2,
	GGUF_TYPE_Q4_1 = 3,
	GGUF_TYPE_Q5_0 = 6,
	GGUF_TYPE_Q5_1 = 7,
	GGUF_TYPE_Q8_0 = 8,
	GGUF_TYPE_Q8_1 = 9,
	GGUF_TYPE_Q2_K = 10,
	GGUF_TYPE_Q3_K = 11,
	GGUF_TYPE_Q4_K = 12,
	GGUF_TYPE_Q5_K = 13,
	GGUF_TYPE_Q6_K = 14,
	GGUF_TYPE_Q8_K = 15,
	GGUF_TYPE_IQ2_XXS = 16,
	GGUF_TYPE_IQ2_XS = 17,
	GGUF_TYPE_IQ3_XXS = 18,
	GGUF_TYPE_IQ1_S = 19,
	GGUF_TYPE_IQ4_NL = 20,
	GGUF_TYPE_IQ3_S = 21,
	GGUF_TYPE_IQ2_S = 22,
	GGUF_TYPE_IQ4_XS = 23,
	GGUF_TYPE_I8 = 24,
	GGUF_TYPE_I16 = 25,
	GGUF_TYPE_I32 = 26,
	GGUF_TYPE_I64 = 27,
	GGUF_TYPE_F64 = 28,
	GGUF_TYPE_IQ1_M = 29,
	GGUF_TYPE_BF16 = 30,
	GGUF_TYPE_TQ1_0 = 34,
	GGUF_TYPE_TQ2_0 = 35,
	GGUF_TYPE_MXFP4 = 39,
	GGUF_TYPE_COUNT = 40
};

/* Storage facts of a tensor type: `block_size` elements are stored in
 * `type_size` bytes.  A row of n elements needs n % block_size == 0. */
struct gguf_type_info {
	const char *name;
	uint32_t block_size;
	uint32_t type_size;
	bool quantized;
};

/* Info for a type id, or NULL for ids that are unknown or removed. */
const struct gguf_type_info *gguf_type_get(uint32_t type);
/* Type id for a name such as "Q4_K" (case-insensitive), or -1. */
int gguf_type_from_name(const char *name);
/* Bytes of a row of n elements; DM_EFORMAT if n is not a multiple of the
 * block size, DM_ERANGE on overflow. */
int gguf_type_row_bytes(uint32_t type, int64_t n, uint64_t *out, struct dm_err *err);

/* Name of a general.file_type value (llama's ftype: "Q4_K_M", "F16", ...),
 * or "unknown". */
const char *gguf_file_type_name(uint32_t ftype);

/* Name of a metadata value type ("u32", "str", "arr", ...). */
const char *gguf_vtype_name(uint32_t vtype);
/* Byte size of a fixed-size value type, 0 for string and array. */
size_t gguf_vtype_size(uint32_t vtype);

struct gguf_str {
	uint64_t len;
	const char *ptr; /* not NUL-terminated; borrowed */
};

/* A view of one metadata value.  For scalars `p` points at the value's bytes
 * (little-endian, possibly unaligned).  For strings `str` is set.  For arrays
 * `elem_type` and `n` are set and `p`/`nbytes` span the elements; `elem_off`,
 * when not NULL, holds each element's byte offset from `p` (built at open for
 * top-level arrays of strings or arrays so element access is O(1)). */
struct gguf_value {
	uint32_t type;
	const uint8_t *p;
	uint64_t nbytes;
	struct gguf_str str;
	uint32_t elem_type;
	uint64_t n;
	const uint64_t *elem_off;
};

struct gguf_kv {
	struct gguf_str key;
	uint64_t file_offset; /* where the key's length field starts */
	struct gguf_value val;
};

struct gguf_tensor {
	struct gguf_str name;
	uint32_t n_dims;
	int64_t ne[GGUF_MAX_DIMS]; /* ne[0] = row length; unused dims are 1 */
	uint32_t type;
	uint64_t offset;      /* relative to the data section */
	uint64_t nbytes;
	int64_t n_elem;
	uint64_t info_offset; /* where the tensor info starts in the file */
	const void *data;     /* borrowed view of the bytes */
};

struct gguf_file {
	char *name;          /* path or caller-supplied name, for messages */
	uint32_t version;
	uint32_t alignment;
	uint64_t n_kv;
	uint64_t n_tensors;
	uint64_t data_offset; /* start of the data section */
	uint64_t data_size;   /* bytes from data_offset to the end of the last tensor */
	const uint8_t *base;
	uint64_t size;
	struct gguf_kv *kv;
	struct gguf_tensor *tensors;
	/* private */
	uint64_t *elem_offs; /* storage for gguf_value.elem_off */
	uint32_t *kv_hash, *tensor_hash;
	uint32_t kv_hash_cap, tensor_hash_cap;
	bool mapped;
};

/* Maps `path` read-only (PROT_READ, MAP_PRIVATE) and validates it.  On
 * success *out owns the mapping; on failure *out is NULL and err says why,
 * e.g. "model.gguf: offset 24: key 3: string length 99999 exceeds the 12
 * bytes left". */
int gguf_open(struct gguf_file **out, const char *path, struct dm_err *err);
/* Parses and validates `size` bytes at `buf`, which the caller keeps alive
 * until gguf_close(). `name` is used in messages. */
int gguf_open_buffer(struct gguf_file **out, const void *buf, size_t size,
		     const char *name, struct dm_err *err);
/* Unmaps and frees; NULL is a no-op. */
void gguf_close(struct gguf_file *g);

/* Key lookup: index into g->kv, or -1. */
int64_t gguf_find_key(const struct gguf_file *g, const char *key);
/* Tensor lookup by name: the tensor, or NULL. */
const struct gguf_tensor *gguf_tensor_find(const struct gguf_file *g, const char *name);

/* Typed getters.  Missing key → DM_ENOTFOUND ("key 'x' not found"); wrong
 * type → DM_ETYPE ("key 'x' is str, expected u32"); an integer of another
 * width that does not fit the asked type → DM_ERANGE.  Integer getters accept
 * any integer type whose value fits; float getters accept f32 and f64. */
int gguf_get_u32(const struct gguf_file *g, const char *key, uint32_t *out, struct dm_err *err);
int gguf_get_i32(const struct gguf_file *g, const char *key, int32_t *out, struct dm_err *err);
int gguf_get_u64(const struct gguf_file *g, const char *key, uint64_t *out, struct dm_err *err);
int gguf_get_i64(const struct gguf_file *g, const char *key, int64_t *out, struct dm_err *err);
int gguf_get_f32(const struct gguf_file *g, const char *key, float *out, struct dm_err *err);
int gguf_get_f64(const struct gguf_file *g, const char *key, double *out, struct dm_err *err);
int gguf_get_bool(const struct gguf_file *g, const char *key, bool *out, struct dm_err *err);
int gguf_get_str(const struct gguf_file *g, const char *key, struct gguf_str *out, struct dm_err *err);
/* Copies a string value into buf (NUL-terminated); DM_ERANGE if it does not fit. */
int gguf_get_str_buf(const struct gguf_file *g, const char *key, char *buf, size_t cap, struct dm_err *err);
/* An array value; if elem_type >= 0 it must match (DM_ETYPE otherwise). */
int gguf_get_arr(const struct gguf_file *g, const char *key, int elem_type,
		 const struct gguf_value **out, struct dm_err *err);

/* Element access on an array value (bounds-checked with DM_ERANGE). */
int gguf_arr_str(const struct gguf_value *arr, uint64_t i, struct gguf_str *out, struct dm_err *err);
/* Numeric element converted to double (u8..i64, f32, f64, bool) / int64
 * (integers and bool; floats are DM_ETYPE). */
int gguf_arr_f64(const struct gguf_value *arr, uint64_t i, double *out, struct dm_err *err);
int gguf_arr_i64(const struct gguf_value *arr, uint64_t i, int64_t *out, struct dm_err *err);
/* Any element as a value view (strings, nested arrays included). */
int gguf_arr_elem(const struct gguf_value *arr, uint64_t i, struct gguf_value *out, struct dm_err *err);

/* Scalar value conversions: _i64 / _u64 take integers and bool (floats are
 * DM_ETYPE, a value that does not fit DM_ERANGE); _f64 takes every number. */
int gguf_value_i64(const struct gguf_value *v, int64_t *out);
int gguf_value_u64(const struct gguf_value *v, uint64_t *out);
int gguf_value_f64(const struct gguf_value *v, double *out);

/* Little-endian loads from unaligned bytes. */
static inline uint32_t gguf_rd_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t gguf_rd_u64(const uint8_t *p)
{
	return (uint64_t)gguf_rd_u32(p) | (uint64_t)gguf_rd_u32(p + 4) << 32;
}

/* True if the string equals the NUL-terminated s. */
bool gguf_str_eq(struct gguf_str a, const char *s);

/* ---------------------------------------------------------------------
 * Writer: declare metadata and tensor infos, then stream tensor data in the
 * declared order.  Offsets are computed from shapes, so no tensor needs to be
 * in memory all at once; gguf_writer_skip() leaves holes (sparse files).
 * Always writes version 3.  Keys and tensor names must be unique.
 * --------------------------------------------------------------------- */
struct gguf_writer;

int gguf_writer_open(struct gguf_writer **out, const char *path, struct dm_err *err);
/* Writes into an open stream (not closed by the writer). */
int gguf_writer_open_stream(struct gguf_writer **out, FILE *f, const char *name, struct dm_err *err);
/* Must be a power of two; also recorded as general.alignment (u32).  Adding
 * that key directly does the same (it must be a u32 and a power of two). */
int gguf_writer_set_alignment(struct gguf_writer *w, uint32_t alignment, struct dm_err *err);

int gguf_writer_add_u8(struct gguf_writer *w, const char *key, uint8_t v, struct dm_err *err);
int gguf_writer_add_i8(struct gguf_writer *w, const char *key, int8_t v, struct dm_err *err);
int gguf_writer_add_u16(struct gguf_writer *w, const char *key, uint16_t v, struct dm_err *err);
int gguf_writer_add_i16(struct gguf_writer *w, const char *key, int16_t v, struct dm_err *err);
int gguf_writer_add_u32(struct gguf_writer *w, const char *key, uint32_t v, struct dm_err *err);
int gguf_writer_add_i32(struct gguf_writer *w, const char *key, int32_t v, struct dm_err *err);
int gguf_writer_add_u64(struct gguf_writer *w, const char *key, uint64_t v, struct dm_err *err);
int gguf_writer_add_i64(struct gguf_writer *w, const char *key, int64_t v, struct dm_err *err);
int gguf_writer_add_f32(struct gguf_writer *w, const char *key, float v, struct dm_err *err);
int gguf_writer_add_f64(struct gguf_writer *w, const char *key, double v, struct dm_err *err);
int gguf_writer_add_bool(struct gguf_writer *w, const char *key, bool v, struct dm_err *err);
int gguf_writer_add_str(struct gguf_writer *w, const char *key, const char *s, struct dm_err *err);
int gguf_writer_add_strn(struct gguf_writer *w, const char *key, const char *s, size_t len, struct dm_err *err);
/* Array of fixed-size elements (u8..f64, bool), copied from `data`. */
int gguf_writer_add_arr(struct gguf_writer *w, const char *key, uint32_t elem_type,
			const void *data, uint64_t n, struct dm_err *err);
/* Array of strings; lens may be NULL for NUL-terminated strings. */
int gguf_writer_add_arr_str(struct gguf_writer *w, const char *key, const char *const *strs,
			    const size_t *lens, uint64_t n, struct dm_err *err);
/* Raw value: type plus its exact encoded bytes (for copying a value from
 * another file, nested arrays included). */
int gguf_writer_add_raw(struct gguf_writer *w, const char *key, uint32_t vtype,
			const void *bytes, uint64_t nbytes, struct dm_err *err);

/* Declares a tensor (ne[0] is the row length).  Returns its index. */
int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, uint32_t type,
			   uint32_t n_dims, const int64_t *ne, struct dm_err *err);
/* Writes header, metadata, tensor infos and padding.  No more declarations after this. */
int gguf_writer_write_header(struct gguf_writer *w, struct dm_err *err);
/* Appends n bytes of tensor data; may be called many times per tensor and
 * may cross tensor boundaries (padding between tensors is inserted). */
int gguf_writer_write(struct gguf_writer *w, const void *data, uint64_t n, struct dm_err *err);
/* Like gguf_writer_write with zeros.  On a stream with a file descriptor it
 * seeks over them (leaving a hole), so such a stream must be seekable: a
 * failed seek is DM_EIO and fails the writer.  Zeros are written only to a
 * stream without a descriptor. */
int gguf_writer_skip(struct gguf_writer *w, uint64_t n, struct dm_err *err);
/* Checks every declared byte was written, flushes, closes, frees.  NULL is a
 * no-op.  On error the partial file is left for inspection. */
int gguf_writer_close(struct gguf_writer *w, struct dm_err *err);
/* Frees without finishing (after an error). */
void gguf_writer_free(struct gguf_writer *w);

#endif

/*
 * tests/gguf — the validating reader and the writer.
 *
 * Corrupt files are built byte by byte with a small builder so that each
 * test breaks exactly one rule; every parse runs on a copy that ends right
 * before a PROT_NONE page, so any over-read crashes the test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "tutil.h"

/* ---- byte builder ---- */
struct bb {
	uint8_t *p;
	size_t n, cap;
};

static void bb_put(struct bb *b, const void *d, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->n, d, n);
	b->n += n;
}
static void bb_u8(struct bb *b, uint8_t v) { bb_put(b, &v, 1); }
static void bb_u32(struct bb *b, uint32_t v) { bb_put(b, &v, 4); }
static void bb_u64(struct bb *b, uint64_t v) { bb_put(b, &v, 8); }
static void bb_str(struct bb *b, const char *s)
{
	bb_u64(b, strlen(s));
	bb_put(b, s, strlen(s));
}
static void bb_hdr(struct bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
	bb_put(b, "GGUF", 4);
	bb_u32(b, version);
	bb_u64(b, n_tensors);
	bb_u64(b, n_kv);
}
static void bb_kv_u32(struct bb *b, const char *k, uint32_t v)
{
	bb_str(b, k);
	bb_u32(b, GGUF_VT_UINT32);
	bb_u32(b, v);
}
static void bb_kv_str(struct bb *b, const char *k, const char *v)
{
	bb_str(b, k);
	bb_u32(b, GGUF_VT_STRING);
	bb_str(b, v);
}
static void bb_tensor(struct bb *b, const char *name, uint32_t n_dims, const uint64_t *ne,
		      uint32_t type, uint64_t off)
{
	bb_str(b, name);
	bb_u32(b, n_dims);
	for (uint32_t i = 0; i < n_dims; i++)
		bb_u64(b, ne[i]);
	bb_u32(b, type);
	bb_u64(b, off);
}
static void bb_pad(struct bb *b, size_t a)
{
	while (b->n % a)
		bb_u8(b, 0);
}
static void bb_zeros(struct bb *b, size_t n)
{
	while (n--)
		bb_u8(b, 0);
}

/* Parses b through a guard-page copy; returns the code, message in *e. */
static int parse_bb(const struct bb *b, struct dm_err *e)
{
	struct gguf_file *g = NULL;
	void *copy = tu_guard_copy(b->p, b->n);
	int rc = gguf_open_buffer(&g, copy, b->n, "t.gguf", e);
	if (rc == 0)
		assert_non_null(g);
	else
		assert_null(g);
	gguf_close(g);
	tu_guard_free(copy, b->n);
	return rc;
}

/* Asserts that parsing fails with DM_EFORMAT and a message containing want. */
static void expect_fail(struct bb *b, const char *want)
{
	struct dm_err e = { 0 };
	int rc = parse_bb(b, &e);
	if (rc != DM_EFORMAT || !strstr(e.msg, want))
		fail_msg("expected format error containing \"%s\", got %d: %s", want, rc, e.msg);
	/* one line, naming the file */
	assert_null(strchr(e.msg, '\n'));
	assert_true(strncmp(e.msg, "t.gguf: offset ", 15) == 0);
	free(b->p);
}

/* A small valid file: 2 keys, 2 F32 tensors of 8 and 4 floats. */
static void build_valid(struct bb *b)
{
	uint64_t ne1[1] = { 8 }, ne2[2] = { 2, 2 };
	memset(b, 0, sizeof *b);
	bb_hdr(b, 3, 2, 2);
	bb_kv_str(b, "general.architecture", "llama");
	bb_kv_u32(b, "llama.block_count", 2);
	bb_tensor(b, "a", 1, ne1, GGUF_TYPE_F32, 0);
	bb_tensor(b, "b", 2, ne2, GGUF_TYPE_F32, 32);
	bb_pad(b, 32);
	for (int i = 0; i < 8; i++) {
		float f = (float)i;
		bb_put(b, &f, 4);
	}
	for (int i = 0; i < 4; i++) {
		float f = (float)(10 + i);
		bb_put(b, &f, 4);
	}
}

static void test_valid_minimal(void **state)
{
	struct bb b;
	struct gguf_file *g;
	struct dm_err e;
	const struct gguf_tensor *t;
	void *copy;
	(void)state;

	build_valid(&b);
	copy = tu_guard_copy(b.p, b.n);
	assert_int_equal(gguf_open_buffer(&g, copy, b.n, "t.gguf", &e), 0);
	assert_int_equal(g->version, 3);
	assert_int_equal(g->n_kv, 2);
	assert_int_equal(g->n_tensors, 2);
	assert_int_equal(g->alignment, 32);
	assert_int_equal(g->data_offset % 32, 0);
	t = gguf_tensor_find(g, "b");
	assert_non_null(t);
	assert_int_equal(t->n_dims, 2);
	assert_int_equal(t->ne[0], 2);
	assert_int_equal(t->ne[1], 2);
	assert_int_equal(t->ne[2], 1);
	assert_int_equal(t->n_elem, 4);
	assert_int_equal(t->nbytes, 16);
	assert_true(((const float *)t->data)[3] == 13.0f);
	assert_null(gguf_tensor_find(g, "c"));
	gguf_close(g);
	tu_guard_free(copy, b.n);
	free(b.p);
}

/* ---- one test per validation rule ---- */

static void test_bad_magic(void **state)
{
	struct bb b = { 0 };
	(void)state;
	bb_put(&b, "GGUG", 4);
	bb_u32(&b, 3);
	bb_u64(&b, 0);
	bb_u64(&b, 0);
	expect_fail(&b, "bad magic");
	memset(&b, 0, sizeof b);
	bb_put(&b, "GG", 2);
	expect_fail(&b, "too short");
}

static void test_bad_version(void **state)
{
	struct bb b = { 0 };
	(void)state;
	bb_hdr(&b, 1, 0, 0);
	expect_fail(&b, "version 1 is not supported");
	memset(&b, 0, sizeof b);
	bb_hdr(&b, 4, 0, 0);
	expect_fail(&b, "unsupported GGUF version 4");
	memset(&b, 0, sizeof b);
	bb_hdr(&b, 0x03000000, 0, 0);
	expect_fail(&b, "big-endian");
}

static void test_version2_ok(void **state)
{
	struct bb b = { 0 };
	struct dm_err e;
	(void)state;
	bb_hdr(&b, 2, 0, 1);
	bb_kv_u32(&b, "k", 7);
	assert_int_equal(parse_bb(&b, &e), 0);
	free(b.p);
}

static void test_key_count_vs_bytes(void **state)
{
	struct bb b = { 0 };
	(void)state;
	bb_hdr(&b, 3, 0, 1000);
	bb_kv_u32(&b, "k", 1);
	expect_fail(&b, "key count 1000 cannot fit");
	memset(&b, 0, sizeof b);
	bb_hdr(&b, 3, 0, UINT64_MAX);
	expect_fail(&b, "key count");
}

static void test_tensor_count_vs_bytes(void **state)
{
	struct bb b = { 0 };
	(void)state;
	bb_hdr(&b, 3, (uint64_t)1 << 40, 0);
	bb_zeros(&b, 100);
	expect_fail(&b, "tensor count 1099511627776 cannot fit");
}

static void test_string_length(void **state)
{
	struct bb b = { 0 };
	(void)state;
	bb_hdr(&b, 3, 0, 1);
	bb_u64(&b, 99999); /* key length */
	bb_put(&b, "abcdefghijkl", 12);
	expect_fail(&b, "string length 99999 exceeds the 12 bytes left");
	/* a string value */
	memset(&b, 0, sizeof b);
	bb_hdr(&b, 3, 0, 1);
	bb_str(&b, "k");
	bb_u32(&b, GGUF_VT_STRING);
	bb_u64(&b, UINT64_MAX);
	expect_fail(&b, "key 'k': string length 18446744073709551615");
}

static void test_array_length(void **state)
{
	struct bb b = { 0 };
	(void)state;
	bb_hdr(&b, 3, 0, 1);
	bb_str(&b, "arr");
	bb_u32(&b, GGUF_VT_ARRAY);
	bb_u32(&b, GGUF_VT_UINT32);
	bb_u64(&b, 5);
	bb_zeros(&b, 16); /* room for 4 */
	expect_fail(&b, "array of 5 u32 needs at least 4 bytes each, only 16 bytes left");
	/* huge count of strings: must be refused before any loop */
	memset(&b, 0, sizeof b);
	bb_hdr(&b, 3, 0, 1);
	bb_str(&b, "arr");
	bb_u32(&b, GGUF_VT_ARRAY);
	bb_u32(&b, GGUF_VT_STRING);
	bb_u64(&b, (uint64_t)1 << 62);
	expect_fail(&b, "array of 4611686018427387904 str");
	/* a string element longer than what is left */
	memset(&b, 0, sizeof b);
	bb_hdr(&b, 3, 0, 1);
	bb_str(&b, "arr");
	bb_u32(&b, GGUF_VT_ARRAY);
	bb_u32(&b, GGUF_VT_STRING);
	bb_u64(&b, 2);
	bb_str(&b, "ok");
	bb_u64(&b, 50);
	bb_zeros(&b, 3);
	expect_fail(&b, "string length 50 exceeds the 3 bytes left");
}

static void test_value_types(void **state)
{
	struct bb b = { 0 };
	(void)state;
	bb_hdr(&b, 3, 0, 1);
	bb_str(&b, "k");
	bb_u32(&b, 13);
	bb_zeros(&b, 8);
	expect_fail(&b, "key 'k': unknown value type 13");
	memset(&b, 0, sizeof b);
	bb_hdr(&b, 3, 0, 1);
	bb_str(&b, "k");
	bb_u32(&b, GGUF_VT_ARRAY);
	bb_u32(&b, 99);
	bb_u64(&b, 0);
	expect_fail(&b, "unknown array element type 99");
	memset(&b, 0, sizeof b);
	bb_hdr(&b, 3, 0, 1);
	bb_str(&b, "k");
	bb_u32(&b, GGUF_VT_BOOL);
	bb_u8(&b, 2);
	expect_fail(&b, "bool value 2 is neither 0 nor 1");
	/* arrays nested too deep */
	memset(&b, 0, sizeof b);
	bb_hdr(&b, 3, 0, 1);
	bb_str(&b, "k");
	bb_u32(&b, GGUF_VT_ARRAY);
	for (int i = 0; i < 20; i++) {
		bb_u32(&b, GGUF_VT_ARRAY);
		bb_u64(&b, 1);
	}
	bb_u32(&b, GGUF_VT_UINT8);
	bb_u64(&b, 0);
	expect_fail(&b, "nested deeper than 8");
}

/* Regression (found by the fuzzer): a file whose only variable-size array is
 * empty has no element index at all. */
static void test_empty_string_array(void **state)
{
	struct bb b = { 0 };
	struct gguf_file *g;
	struct dm_err e;
	const struct gguf_value *arr;
	struct gguf_str s;
	(void)state;
	bb_hdr(&b, 3, 0, 1);
	bb_str(&b, "toks");
	bb_u32(&b, GGUF_VT_ARRAY);
	bb_u32(&b, GGUF_VT_STRING);
	bb_u64(&b, 0);
	assert_int_equal(parse_bb(&b, &e), 0);
	assert_int_equal(gguf_open_buffer(&g, b.p, b.n, "t.gguf", &e), 0);
	assert_int_equal(gguf_get_arr(g, "toks", GGUF_VT_STRING, &arr, &e), 0);
	assert_int_equal(arr->n, 0);
	assert_int_equal(gguf_arr_str(arr, 0, &s, &e), DM_ERANGE);
	gguf_close(g);
	free(b.p);
}

static void test_n_dims(void **state)
{
	struct bb b = { 0 };
	uint64_t ne[5] = { 1, 1, 1, 1, 1 };
	(void)state;
	bb_hdr(&b, 3, 1, 0);
	bb_tensor(&b, "w", 5, ne, GGUF_TYPE_F32, 0);
	expect_fail(&b, "tensor 'w': n_dims 5 exceeds 4");
}

static void test_dimension_zero(void **state)
{
	struct bb b = { 0 };
	uint64_t ne[2] = { 4, 0 };
	(void)state;
	bb_hdr(&b, 3, 1, 0);
	bb_tensor(&b, "w", 2, ne, GGUF_TYPE_F32, 0);
	bb_pad(&b, 32);
	bb_zeros(&b, 64);
	expect_fail(&b, "tensor 'w': dimension 1 is 0");
	memset(&b, 0, sizeof b);
	ne[1] = (uint64_t)1 << 63; /* negative as int64 */
	bb_hdr(&b, 3, 1, 0);
	bb_tensor(&b, "w", 2, ne, GGUF_TYPE_F32, 0);
	expect_fail(&b, "dimension 1 is 9223372036854775808");
}

static void test_element_overflow(void **state)
{
	struct bb b = { 0 };
	uint64_t ne[3] = { (uint64_t)1 << 32, (uint64_t)1 << 20, (uint64_t)1 << 20 };
	(void)state;
	bb_hdr(&b, 3, 1, 0);
	bb_tensor(&b, "w", 3, ne, GGUF_TYPE_F32, 0);
	expect_fail(&b, "element count overflows at dimension 2");
}

static void test_byte_overflow(void **state)
{
	struct bb b = { 0 };
	uint64_t ne[2] = { (uint64_t)1 << 31, (uint64_t)1 << 31 }; /* 2^62 elements */
	(void)state;
	bb_hdr(&b, 3, 1, 0);
	bb_tensor(&b, "w", 2, ne, GGUF_TYPE_F64, 0); /* 2^65 bytes */
	expect_fail(&b, "tensor 'w': byte size overflows");
}

/* ne0 / block_size * type_size wrapping 64 bits: an F32 row of 2^62
 * elements was 0 bytes, of 2^62 + 1 elements 4 bytes, and the file was
 * accepted (a reader of the row then ran off a 4-byte buffer). */
static void test_row_byte_overflow(void **state)
{
	static const uint64_t ne0s[] = { (uint64_t)1 << 62, ((uint64_t)1 << 62) + 1,
					 ((uint64_t)1 << 63) - 1 };
	(void)state;
	for (size_t i = 0; i < sizeof ne0s / sizeof ne0s[0]; i++) {
		struct bb b = { 0 };
		uint64_t ne[1] = { ne0s[i] };
		bb_hdr(&b, 3, 1, 0);
		bb_tensor(&b, "output_norm.weight", 1, ne, GGUF_TYPE_F32, 0);
		bb_pad(&b, 32);
		bb_zeros(&b, 64);
		expect_fail(&b, "tensor 'output_norm.weight': row byte size overflows");
	}
	/* a quantized type: 2^63-32 elements of Q8_0 are 2^58-1 blocks of 34
	 * bytes, more than 2^63 bytes but below 2^64: no wrap, too big a file */
	{
		struct bb b = { 0 };
		uint64_t ne[1] = { ((uint64_t)1 << 63) - 32 };
		bb_hdr(&b, 3, 1, 0);
		bb_tensor(&b, "q", 1, ne, GGUF_TYPE_Q8_0, 0);
		bb_pad(&b, 32);
		bb_zeros(&b, 64);
		expect_fail(&b, "tensor 'q': data [0, +9799832789158199262)");
	}
}

static void test_unknown_type(void **state)
{
	struct bb b = { 0 };
	uint64_t ne[1] = { 32 };
	(void)state;
	bb_hdr(&b, 3, 1, 0);
	bb_tensor(&b, "w", 1, ne, 4 /* Q4_2, removed */, 0);
	expect_fail(&b, "tensor 'w': unknown tensor type 4");
	memset(&b, 0, sizeof b);
	bb_hdr(&b, 3, 1, 0);
	bb_tensor(&b, "w", 1, ne, 1000, 0);
	expect_fail(&b, "unknown tensor type 1000");
}

static void test_row_not_block_multiple(void **state)
{
	struct bb b = { 0 };
	uint64_t ne[2] = { 33, 2 };
	(void)state;
	bb_hdr(&b, 3, 1, 0);
	bb_tensor(&b, "w", 2, ne, GGUF_TYPE_Q4_0, 0);
	expect_fail(&b, "row length 33 is not a multiple of Q4_0's block size 32");
	memset(&b, 0, sizeof b);
	ne[0] = 128;
	bb_hdr(&b, 3, 1, 0);
	bb_tensor(&b, "w", 2, ne, GGUF_TYPE_Q4_K, 0);
	expect_fail(&b, "not a multiple of Q4_K's block size 256");
}

static void test_offset_unaligned(void **state)
{
	struct bb b = { 0 };
	uint64_t ne[1] = { 4 };
	(void)state;
	bb_hdr(&b, 3, 1, 0);
	bb_tensor(&b, "w", 1, ne, GGUF_TYPE_F32, 4);
	bb_pad(&b, 32);
	bb_zeros(&b, 64);
	expect_fail(&b, "tensor 'w': data offset 4 is not a multiple of the alignment 32");
}

static void test_data_past_end(void **state)
{
	struct bb b = { 0 };
	uint64_t ne[1] = { 16 };
	(void)state;
	bb_hdr(&b, 3, 1, 0);
	bb_tensor(&b, "w", 1, ne, GGUF_TYPE_F32, 0);
	bb_pad(&b, 32);
	bb_zeros(&b, 63); /* needs 64 */
	expect_fail(&b, "tensor 'w': data [0, +64) runs past the end of the file");
	/* an offset so large that offset + nbytes wraps around */
	memset(&b, 0, sizeof b);
	bb_hdr(&b, 3, 1, 0);
	bb_tensor(&b, "w", 1, ne, GGUF_TYPE_F32, UINT64_MAX - 31);
	bb_pad(&b, 32);
	bb_zeros(&b, 64);
	expect_fail(&b, "runs past the end");
}

static void test_duplicate_key(void **state)
{
	struct bb b = { 0 };
	(void)state;
	bb_hdr(&b, 3, 0, 3);
	bb_kv_u32(&b, "a", 1);
	bb_kv_u32(&b, "b", 2);
	bb_kv_str(&b, "a", "again");
	expect_fail(&b, "duplicate key 'a' (first at offset 24)");
}

static void test_duplicate_tensor(void **state)
{
	struct bb b = { 0 };
	uint64_t ne[1] = { 8 };
	(void)state;
	bb_hdr(&b, 3, 2, 0);
	bb_tensor(&b, "w", 1, ne, GGUF_TYPE_F32, 0);
	bb_tensor(&b, "w", 1, ne, GGUF_TYPE_F32, 32);
	bb_pad(&b, 32);
	bb_zeros(&b, 64);
	expect_fail(&b, "duplicate tensor 'w'");
}

static void test_alignment_rules(void **state)
{
	struct bb b = { 0 };
	struct dm_err e;
	uint64_t ne[1] = { 4 };
	(void)state;
	bb_hdr(&b, 3, 0, 1);
	bb_kv_u32(&b, "general.alignment", 48);
	expect_fail(&b, "general.alignment 48 is not a power of two");
	memset(&b, 0, sizeof b);
	bb_hdr(&b, 3, 0, 1);
	bb_kv_u32(&b, "general.alignment", 0);
	expect_fail(&b, "general.alignment 0 is not a power of two");
	memset(&b, 0, sizeof b);
	bb_hdr(&b, 3, 0, 1);
	bb_kv_str(&b, "general.alignment", "32");
	expect_fail(&b, "general.alignment is str, expected u32");
	/* a valid custom alignment moves the data section */
	memset(&b, 0, sizeof b);
	bb_hdr(&b, 3, 1, 1);
	bb_kv_u32(&b, "general.alignment", 256);
	bb_tensor(&b, "w", 1, ne, GGUF_TYPE_F32, 0);
	bb_pad(&b, 256);
	bb_zeros(&b, 16);
	assert_int_equal(parse_bb(&b, &e), 0);
	free(b.p);
}

static void test_overlap(void **state)
{
	struct bb b = { 0 };
	uint64_t ne[1] = { 16 };
	(void)state;
	bb_hdr(&b, 3, 2, 0);
	bb_tensor(&b, "x", 1, ne, GGUF_TYPE_F32, 32); /* [32, 96) */
	bb_tensor(&b, "y", 1, ne, GGUF_TYPE_F32, 64); /* [64, 128) */
	bb_pad(&b, 32);
	bb_zeros(&b, 256);
	expect_fail(&b, "tensor 'y' at data offset 64 overlaps tensor 'x' [32, +64)");
}

/* Every strict prefix of a valid file fails cleanly (and never over-reads:
 * each ends at a guard page). */
static void test_truncations(void **state)
{
	struct bb b, cut = { 0 };
	struct dm_err e;
	(void)state;
	build_valid(&b);
	for (size_t n = 0; n < b.n; n++) {
		cut.p = b.p;
		cut.n = n;
		int rc = parse_bb(&cut, &e);
		if (rc != DM_EFORMAT)
			fail_msg("prefix of %zu bytes: rc %d (%s)", n, rc, e.msg);
	}
	assert_int_equal(parse_bb(&b, &e), 0);
	free(b.p);
}

/* Every byte of a valid file set to several values: the reader either
 * accepts or rejects, never crashes or over-reads. */
static void test_byte_mutations(void **state)
{
	static const uint8_t vals[] = { 0x00, 0x01, 0x07, 0x20, 0x7f, 0x80, 0xff };
	struct bb b;
	struct dm_err e;
	int fails = 0;
	(void)state;
	build_valid(&b);
	for (size_t i = 0; i < b.n; i++) {
		uint8_t orig = b.p[i];
		for (size_t v = 0; v < sizeof vals; v++) {
			b.p[i] = vals[v];
			fails += parse_bb(&b, &e) != 0;
		}
		b.p[i] = orig;
	}
	assert_true(fails > 0); /* the mutations did hit validated fields */
	free(b.p);
}

/* ---- writer round trip ---- */

static void test_writer_roundtrip(void **state)
{
	const char *path = tu_tmp_path("rt.gguf");
	struct gguf_writer *w;
	struct gguf_file *g;
	struct dm_err e;
	const char *strs[] = { "alpha", "", "\xe2\x96\x81gamma" };
	const int32_t ints[] = { -1, 0, 7, 2147483647 };
	const float fl[] = { 0.5f, -2.0f };
	int64_t ne[GGUF_TYPE_COUNT][2];
	uint8_t *data[GGUF_TYPE_COUNT] = { 0 };
	uint64_t nbytes[GGUF_TYPE_COUNT] = { 0 };
	uint8_t nested[64];
	size_t nn = 0;
	int idx;
	(void)state;

	assert_int_equal(gguf_writer_open(&w, path, &e), 0);
	assert_int_equal(gguf_writer_set_alignment(w, 64, &e), 0);
	assert_int_equal(gguf_writer_add_u8(w, "u8", 200, &e), 0);
	assert_int_equal(gguf_writer_add_i8(w, "i8", -100, &e), 0);
	assert_int_equal(gguf_writer_add_u16(w, "u16", 65000, &e), 0);
	assert_int_equal(gguf_writer_add_i16(w, "i16", -30000, &e), 0);
	assert_int_equal(gguf_writer_add_u32(w, "u32", 4000000000u, &e), 0);
	assert_int_equal(gguf_writer_add_i32(w, "i32", -2000000000, &e), 0);
	assert_int_equal(gguf_writer_add_u64(w, "u64", UINT64_MAX, &e), 0);
	assert_int_equal(gguf_writer_add_i64(w, "i64", INT64_MIN, &e), 0);
	assert_int_equal(gguf_writer_add_f32(w, "f32", 1e-5f, &e), 0);
	assert_int_equal(gguf_writer_add_f64(w, "f64", 3.141592653589793, &e), 0);
	assert_int_equal(gguf_writer_add_bool(w, "bool", true, &e), 0);
	assert_int_equal(gguf_writer_add_str(w, "str", "h\xc3\xa9llo", &e), 0);
	assert_int_equal(gguf_writer_add_arr_str(w, "arr.str", strs, NULL, 3, &e), 0);
	assert_int_equal(gguf_writer_add_arr(w, "arr.i32", GGUF_VT_INT32, ints, 4, &e), 0);
	assert_int_equal(gguf_writer_add_arr(w, "arr.f32", GGUF_VT_FLOAT32, fl, 2, &e), 0);
	/* nested: arr[arr[u16]] = [[1, 2], [3]] */
	{
		uint32_t u32;
		uint64_t u64;
		uint16_t u16;
		u32 = GGUF_VT_ARRAY; memcpy(nested + nn, &u32, 4); nn += 4;
		u64 = 2; memcpy(nested + nn, &u64, 8); nn += 8;
		u32 = GGUF_VT_UINT16; memcpy(nested + nn, &u32, 4); nn += 4;
		u64 = 2; memcpy(nested + nn, &u64, 8); nn += 8;
		u16 = 1; memcpy(nested + nn, &u16, 2); nn += 2;
		u16 = 2; memcpy(nested + nn, &u16, 2); nn += 2;
		u32 = GGUF_VT_UINT16; memcpy(nested + nn, &u32, 4); nn += 4;
		u64 = 1; memcpy(nested + nn, &u64, 8); nn += 8;
		u16 = 3; memcpy(nested + nn, &u16, 2); nn += 2;
	}
	assert_int_equal(gguf_writer_add_raw(w, "arr.nested", GGUF_VT_ARRAY, nested, nn, &e), 0);
	/* duplicate key refused */
	assert_int_equal(gguf_writer_add_u8(w, "u8", 1, &e), DM_EINVAL);
	/* one tensor of every type: 2 blocks by 3 rows, bytes i*7+type */
	for (int t = 0; t < GGUF_TYPE_COUNT; t++) {
		const struct gguf_type_info *ti = gguf_type_get((uint32_t)t);
		char name[32];
		if (!ti)
			continue;
		ne[t][0] = 2 * ti->block_size;
		ne[t][1] = 3;
		nbytes[t] = 6 * ti->type_size;
		data[t] = malloc(nbytes[t]);
		for (uint64_t i = 0; i < nbytes[t]; i++)
			data[t][i] = (uint8_t)(i * 7 + (uint64_t)t);
		snprintf(name, sizeof name, "t.%s", ti->name);
		idx = gguf_writer_add_tensor(w, name, (uint32_t)t, 2, ne[t], &e);
		assert_true(idx >= 0);
	}
	assert_int_equal(gguf_writer_add_tensor(w, "t.F32", GGUF_TYPE_F32, 2, ne[0], &e), DM_EINVAL);
	assert_int_equal(gguf_writer_write_header(w, &e), 0);
	for (int t = 0; t < GGUF_TYPE_COUNT; t++) {
		if (!data[t])
			continue;
		/* stream in two uneven pieces */
		assert_int_equal(gguf_writer_write(w, data[t], 5, &e), 0);
		assert_int_equal(gguf_writer_write(w, data[t] + 5, nbytes[t] - 5, &e), 0);
	}
	assert_int_equal(gguf_writer_write(w, "x", 1, &e), DM_EINVAL); /* more than declared */
	assert_int_equal(gguf_writer_close(w, &e), 0);

	assert_int_equal(gguf_open(&g, path, &e), 0);
	assert_int_equal(g->version, 3);
	assert_int_equal(g->alignment, 64);
	{
		uint32_t u32; int32_t i32; uint64_t u64; int64_t i64; float f; double d; bool bo;
		struct gguf_str s;
		const struct gguf_value *arr;
		struct gguf_value el, el2;
		assert_int_equal(gguf_get_u32(g, "u8", &u32, &e), 0);
		assert_int_equal(u32, 200);
		assert_int_equal(gguf_get_i32(g, "i8", &i32, &e), 0);
		assert_int_equal(i32, -100);
		assert_int_equal(gguf_get_u32(g, "u16", &u32, &e), 0);
		assert_int_equal(u32, 65000);
		assert_int_equal(gguf_get_i32(g, "i16", &i32, &e), 0);
		assert_int_equal(i32, -30000);
		assert_int_equal(gguf_get_u32(g, "u32", &u32, &e), 0);
		assert_int_equal(u32, 4000000000u);
		assert_int_equal(gguf_get_i32(g, "i32", &i32, &e), 0);
		assert_int_equal(i32, -2000000000);
		assert_int_equal(gguf_get_u64(g, "u64", &u64, &e), 0);
		assert_true(u64 == UINT64_MAX);
		assert_int_equal(gguf_get_i64(g, "i64", &i64, &e), 0);
		assert_true(i64 == INT64_MIN);
		assert_int_equal(gguf_get_f32(g, "f32", &f, &e), 0);
		assert_true(f == 1e-5f);
		assert_int_equal(gguf_get_f64(g, "f64", &d, &e), 0);
		assert_true(d == 3.141592653589793);
		assert_int_equal(gguf_get_bool(g, "bool", &bo, &e), 0);
		assert_true(bo);
		assert_int_equal(gguf_get_str(g, "str", &s, &e), 0);
		assert_int_equal(s.len, 6);
		assert_memory_equal(s.ptr, "h\xc3\xa9llo", 6);
		assert_int_equal(gguf_get_arr(g, "arr.str", GGUF_VT_STRING, &arr, &e), 0);
		assert_int_equal(arr->n, 3);
		for (int i = 2; i >= 0; i--) {
			assert_int_equal(gguf_arr_str(arr, (uint64_t)i, &s, &e), 0);
			assert_true(gguf_str_eq(s, strs[i]));
		}
		assert_int_equal(gguf_arr_str(arr, 3, &s, &e), DM_ERANGE);
		assert_int_equal(gguf_get_arr(g, "arr.i32", GGUF_VT_INT32, &arr, &e), 0);
		for (int i = 0; i < 4; i++) {
			assert_int_equal(gguf_arr_i64(arr, (uint64_t)i, &i64, &e), 0);
			assert_int_equal(i64, ints[i]);
		}
		assert_int_equal(gguf_get_arr(g, "arr.f32", GGUF_VT_FLOAT32, &arr, &e), 0);
		assert_int_equal(gguf_arr_f64(arr, 1, &d, &e), 0);
		assert_true(d == -2.0);
		assert_int_equal(gguf_get_arr(g, "arr.nested", GGUF_VT_ARRAY, &arr, &e), 0);
		assert_int_equal(arr->n, 2);
		assert_int_equal(gguf_arr_elem(arr, 1, &el, &e), 0);
		assert_int_equal(el.type, GGUF_VT_ARRAY);
		assert_int_equal(el.elem_type, GGUF_VT_UINT16);
		assert_int_equal(el.n, 1);
		assert_int_equal(gguf_arr_i64(&el, 0, &i64, &e), 0);
		assert_int_equal(i64, 3);
		assert_int_equal(gguf_arr_elem(arr, 0, &el2, &e), 0);
		assert_int_equal(el2.n, 2);
		assert_int_equal(el2.nbytes, 4);
		assert_int_equal(gguf_arr_i64(&el2, 1, &i64, &e), 0);
		assert_int_equal(i64, 2);
	}
	for (int t = 0; t < GGUF_TYPE_COUNT; t++) {
		const struct gguf_type_info *ti = gguf_type_get((uint32_t)t);
		const struct gguf_tensor *tt;
		char name[32];
		if (!ti)
			continue;
		snprintf(name, sizeof name, "t.%s", ti->name);
		tt = gguf_tensor_find(g, name);
		assert_non_null(tt);
		assert_int_equal(tt->type, t);
		assert_int_equal(tt->ne[0], ne[t][0]);
		assert_int_equal(tt->ne[1], 3);
		assert_int_equal(tt->nbytes, nbytes[t]);
		assert_int_equal((g->data_offset + tt->offset) % 64, 0);
		assert_memory_equal(tt->data, data[t], nbytes[t]);
		free(data[t]);
	}
	gguf_close(g);
}

static void test_getter_errors(void **state)
{
	struct bb b;
	struct gguf_file *g;
	struct dm_err e;
	uint32_t u32;
	int32_t i32;
	float f;
	struct gguf_str s;
	const struct gguf_value *arr;
	char buf[4];
	(void)state;

	build_valid(&b);
	assert_int_equal(gguf_open_buffer(&g, b.p, b.n, "m.gguf", &e), 0);
	assert_int_equal(gguf_get_u32(g, "missing.key", &u32, &e), DM_ENOTFOUND);
	assert_string_equal(e.msg, "m.gguf: key 'missing.key' not found");
	assert_int_equal(gguf_get_u32(g, "general.architecture", &u32, &e), DM_ETYPE);
	assert_string_equal(e.msg, "m.gguf: key 'general.architecture' is str, expected u32");
	assert_int_equal(gguf_get_f32(g, "llama.block_count", &f, &e), DM_ETYPE);
	assert_int_equal(gguf_get_arr(g, "llama.block_count", -1, &arr, &e), DM_ETYPE);
	assert_int_equal(gguf_get_str(g, "llama.block_count", &s, &e), DM_ETYPE);
	assert_int_equal(gguf_get_i32(g, "llama.block_count", &i32, &e), 0);
	assert_int_equal(i32, 2);
	assert_int_equal(gguf_get_str_buf(g, "general.architecture", buf, sizeof buf, &e), DM_ERANGE);
	gguf_close(g);
	free(b.p);
}

static void test_integer_range(void **state)
{
	const char *path = tu_tmp_path("range.gguf");
	struct gguf_writer *w;
	struct gguf_file *g;
	struct dm_err e;
	uint32_t u32;
	int32_t i32;
	(void)state;
	assert_int_equal(gguf_writer_open(&w, path, &e), 0);
	assert_int_equal(gguf_writer_add_u64(w, "big", (uint64_t)1 << 40, &e), 0);
	assert_int_equal(gguf_writer_add_i32(w, "neg", -5, &e), 0);
	assert_int_equal(gguf_writer_add_u64(w, "small64", 4096, &e), 0);
	assert_int_equal(gguf_writer_close(w, &e), 0);
	assert_int_equal(gguf_open(&g, path, &e), 0);
	assert_int_equal(gguf_get_u32(g, "big", &u32, &e), DM_ERANGE);
	assert_int_equal(gguf_get_u32(g, "neg", &u32, &e), DM_ERANGE);
	assert_int_equal(gguf_get_i32(g, "neg", &i32, &e), 0);
	assert_int_equal(i32, -5);
	assert_int_equal(gguf_get_u32(g, "small64", &u32, &e), 0); /* u64 that fits */
	assert_int_equal(u32, 4096);
	gguf_close(g);
}

/* Two 3-float tensors "a" and "b", then the file is finished. */
static void write_two_tensors(struct gguf_writer *w)
{
	const int64_t ne[1] = { 3 };
	const float vals[3] = { 1, 2, 3 };
	struct dm_err e;
	assert_int_equal(gguf_writer_add_tensor(w, "a", GGUF_TYPE_F32, 1, ne, &e), 0);
	assert_int_equal(gguf_writer_add_tensor(w, "b", GGUF_TYPE_F32, 1, ne, &e), 1);
	assert_int_equal(gguf_writer_write_header(w, &e), 0);
	assert_int_equal(gguf_writer_write(w, vals, sizeof vals, &e), 0);
	assert_int_equal(gguf_writer_write(w, vals, sizeof vals, &e), 0);
	assert_int_equal(gguf_writer_close(w, &e), 0);
}

/* general.alignment through the writer: set_alignment and adding the key
 * directly both change where tensor data goes, so the file's claim and its
 * layout agree; a key of another type or a value that is not a power of
 * two is refused (a u8 key once overwrote 4 bytes of a 1-byte value); the
 * f64 getter's type error names the types it takes. */
static void test_writer_alignment(void **state)
{
	const char *path = tu_tmp_path("align.gguf");
	struct gguf_writer *w;
	struct gguf_file *g;
	struct dm_err e;
	double d;
	(void)state;
	assert_int_equal(gguf_writer_open(&w, path, &e), 0);
	assert_int_equal(gguf_writer_add_u8(w, "general.alignment", 4, &e), DM_ETYPE);
	assert_int_equal(gguf_writer_add_u32(w, "general.alignment", 48, &e), DM_EINVAL);
	assert_int_equal(gguf_writer_add_u32(w, "general.alignment", 256, &e), 0);
	assert_int_equal(gguf_writer_add_str(w, "name", "x", &e), 0);
	write_two_tensors(w);
	assert_int_equal(gguf_open(&g, path, &e), 0);
	assert_int_equal(g->alignment, 256);
	assert_int_equal(g->data_offset % 256, 0);
	assert_int_equal(g->tensors[1].offset, 256); /* b after a's 12 bytes, padded */
	assert_int_equal(gguf_get_f64(g, "name", &d, &e), DM_ETYPE);
	assert_non_null(strstr(e.msg, "expected f32 or f64"));
	gguf_close(g);
	/* set_alignment replaces a directly added value */
	assert_int_equal(gguf_writer_open(&w, path, &e), 0);
	assert_int_equal(gguf_writer_add_u32(w, "general.alignment", 128, &e), 0);
	assert_int_equal(gguf_writer_set_alignment(w, 64, &e), 0);
	write_two_tensors(w);
	assert_int_equal(gguf_open(&g, path, &e), 0);
	assert_int_equal(g->alignment, 64);
	assert_int_equal(g->tensors[1].offset, 64);
	gguf_close(g);
}

/* Offsets past 4 GiB survive the round trip: a 4.5 GiB hole, then a small
 * tensor whose bytes are checked through the mapping. */
static void test_offsets_past_4gib(void **state)
{
	const char *path = tu_tmp_path("big.gguf");
	const int64_t ne_big[2] = { 1024, (int64_t)1152 * 1024 }; /* 4.5 GiB of F32 */
	const int64_t ne_small[1] = { 8 };
	const float vals[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	struct gguf_writer *w;
	struct gguf_file *g;
	struct dm_err e;
	const struct gguf_tensor *t;
	struct stat st;
	(void)state;

	assert_int_equal(gguf_writer_open(&w, path, &e), 0);
	assert_true(gguf_writer_add_tensor(w, "hole", GGUF_TYPE_F32, 2, ne_big, &e) >= 0);
	assert_true(gguf_writer_add_tensor(w, "tail", GGUF_TYPE_F32, 1, ne_small, &e) >= 0);
	assert_int_equal(gguf_writer_write_header(w, &e), 0);
	assert_int_equal(gguf_writer_skip(w, (uint64_t)4608 << 20, &e), 0);
	assert_int_equal(gguf_writer_write(w, vals, sizeof vals, &e), 0);
	assert_int_equal(gguf_writer_close(w, &e), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true((uint64_t)st.st_size > ((uint64_t)4608 << 20));
	assert_true((uint64_t)st.st_blocks * 512 < ((uint64_t)64 << 20)); /* it is sparse */

	assert_int_equal(gguf_open(&g, path, &e), 0);
	t = gguf_tensor_find(g, "hole");
	assert_non_null(t);
	assert_true(t->nbytes == ((uint64_t)4608 << 20));
	t = gguf_tensor_find(g, "tail");
	assert_non_null(t);
	assert_true(t->offset == ((uint64_t)4608 << 20));
	assert_true(g->data_offset + t->offset > UINT32_MAX);
	assert_memory_equal(t->data, vals, sizeof vals);
	gguf_close(g);
	unlink(path);
}

static void test_type_table(void **state)
{
	uint64_t rb;
	struct dm_err e;
	(void)state;
	/* sizes as the format defines them */
	assert_int_equal(gguf_type_get(GGUF_TYPE_Q4_0)->type_size, 18);
	assert_int_equal(gguf_type_get(GGUF_TYPE_Q4_K)->type_size, 144);
	assert_int_equal(gguf_type_get(GGUF_TYPE_Q6_K)->type_size, 210);
	assert_int_equal(gguf_type_get(GGUF_TYPE_Q8_K)->type_size, 292);
	assert_int_equal(gguf_type_get(GGUF_TYPE_IQ4_XS)->type_size, 136);
	assert_null(gguf_type_get(4));
	assert_null(gguf_type_get(31));
	assert_null(gguf_type_get(GGUF_TYPE_COUNT));
	assert_int_equal(gguf_type_from_name("q4_k"), GGUF_TYPE_Q4_K);
	assert_int_equal(gguf_type_from_name("nope"), -1);
	assert_int_equal(gguf_type_row_bytes(GGUF_TYPE_Q8_0, 4096, &rb, &e), 0);
	assert_int_equal(rb, 4096 / 32 * 34);
	assert_int_equal(gguf_type_row_bytes(GGUF_TYPE_Q8_0, 40, &rb, &e), DM_EFORMAT);
}

/* ---- files made by another tool (llama.cpp), from ../shared/golden ---- */

static void test_golden_files(void **state)
{
	const char *gd = tu_golden_dir();
	char path[1024], line[1024];
	FILE *f;
	int checked = 0, hashed = 0;
	(void)state;
	if (!gd)
		skip();

	/* tensor types of every kquant file */
	snprintf(path, sizeof path, "%s/kquant/expected/tensor_types.tsv", gd);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof line, f)); /* header */
	while (fgets(line, sizeof line, f)) {
		char file[128], tensor[128], type[32];
		struct gguf_file *g;
		struct dm_err e;
		const struct gguf_tensor *t;
		if (sscanf(line, "%127s %127s %31s", file, tensor, type) != 3)
			continue;
		snprintf(path, sizeof path, "%s/kquant/%s", gd, file);
		if (access(path, R_OK) != 0)
			continue; /* kquant-F32.gguf is not shipped */
		if (gguf_open(&g, path, &e))
			fail_msg("%s", e.msg);
		assert_int_equal(g->n_tensors, 21);
		t = gguf_tensor_find(g, tensor);
		assert_non_null(t);
		assert_string_equal(gguf_type_get(t->type)->name, type);
		gguf_close(g);
		checked++;
	}
	fclose(f);
	assert_true(checked >= 13 * 21);

	/* byte sizes, shapes and sha256 of raw bytes of two tensors per file */
	snprintf(path, sizeof path, "%s/kquant/expected/tensors.tsv", gd);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof line, f));
	while (fgets(line, sizeof line, f)) {
		char file[128], tensor[128], type[32], sha[80];
		long long ne0, ne1, nb;
		char hex[65];
		struct gguf_file *g;
		struct dm_err e;
		const struct gguf_tensor *t;
		if (sscanf(line, "%127s %127s %31s %lld %lld %lld %79s", file, tensor, type, &ne0, &ne1,
			   &nb, sha) != 7)
			continue;
		snprintf(path, sizeof path, "%s/kquant/%s", gd, file);
		if (access(path, R_OK) != 0)
			continue;
		assert_int_equal(gguf_open(&g, path, &e), 0);
		t = gguf_tensor_find(g, tensor);
		assert_non_null(t);
		assert_int_equal(t->ne[0], ne0);
		assert_int_equal(t->ne[1], ne1);
		assert_int_equal(t->nbytes, nb);
		tu_sha256_hex(t->data, t->nbytes, hex);
		assert_string_equal(hex, sha);
		gguf_close(g);
		hashed++;
	}
	fclose(f);
	assert_true(hashed >= 26);

	/* the other real files open, with the documented contents */
	{
		struct gguf_file *g;
		struct dm_err e;
		uint32_t u32;
		const struct gguf_value *arr;
		snprintf(path, sizeof path, "%s/stories260K/stories260K.gguf", gd);
		assert_int_equal(gguf_open(&g, path, &e), 0);
		assert_int_equal(g->n_tensors, 48);
		assert_int_equal(gguf_get_u32(g, "llama.context_length", &u32, &e), 0);
		assert_int_equal(u32, 128);
		assert_int_equal(gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_VT_STRING, &arr, &e), 0);
		assert_int_equal(arr->n, 512);
		gguf_close(g);
		snprintf(path, sizeof path, "%s/tokenizer/ggml-vocab-gpt-2.gguf", gd);
		assert_int_equal(gguf_open(&g, path, &e), 0);
		assert_int_equal(g->n_tensors, 0);
		assert_int_equal(gguf_get_arr(g, "tokenizer.ggml.merges", GGUF_VT_STRING, &arr, &e), 0);
		assert_int_equal(arr->n, 50000);
		gguf_close(g);
	}
}

/* ---- the CLI, run as a user would ---- */

static void test_cli_info(void **state)
{
	const char *path = tu_tmp_path("cli.gguf");
	const char *bad = tu_tmp_path("bad.gguf");
	char *out;
	int st;
	struct bb b;
	(void)state;

	assert_int_equal(tu_system("%s synth --preset tiny -o %s", tu_dormant(), path), 0);
	out = tu_capture(&st, "%s info %s", tu_dormant(), path);
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, "general.architecture"));
	assert_non_null(strstr(out, "tensors: 21"));
	assert_non_null(strstr(out, "blk.1.ffn_down.weight"));
	free(out);
	out = tu_capture(&st, "%s info --json %s", tu_dormant(), path);
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, "\"n_tensors\":21"));
	assert_non_null(strstr(out, "\"truncated\":true"));
	free(out);
	out = tu_capture(&st, "%s info --json --full %s", tu_dormant(), path);
	assert_int_equal(st, 0);
	assert_null(strstr(out, "\"truncated\":true"));
	free(out);

	/* bad input: one line on stderr naming the file, non-zero status */
	build_valid(&b);
	b.p[0] = 'X';
	assert_int_equal(tu_write_file(bad, b.p, b.n), 0);
	free(b.p);
	out = tu_capture(&st, "%s info %s 2>&1 >/dev/null", tu_dormant(), bad);
	assert_int_not_equal(st, 0);
	assert_true(strncmp(out, "dormant: ", 9) == 0);
	assert_non_null(strstr(out, "bad.gguf: offset 0: bad magic"));
	assert_non_null(strchr(out, '\n'));
	assert_true(strchr(out, '\n')[1] == '\0'); /* exactly one line */
	free(out);
	out = tu_capture(&st, "%s info /nonexistent.gguf 2>&1", tu_dormant());
	assert_int_not_equal(st, 0);
	assert_non_null(strstr(out, "dormant: /nonexistent.gguf: No such file or directory"));
	free(out);
	out = tu_capture(&st, "%s info 2>&1", tu_dormant());
	assert_int_equal(st, 2);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_minimal),
		cmocka_unit_test(test_bad_magic),
		cmocka_unit_test(test_bad_version),
		cmocka_unit_test(test_version2_ok),
		cmocka_unit_test(test_key_count_vs_bytes),
		cmocka_unit_test(test_tensor_count_vs_bytes),
		cmocka_unit_test(test_string_length),
		cmocka_unit_test(test_array_length),
		cmocka_unit_test(test_value_types),
		cmocka_unit_test(test_empty_string_array),
		cmocka_unit_test(test_n_dims),
		cmocka_unit_test(test_dimension_zero),
		cmocka_unit_test(test_element_overflow),
		cmocka_unit_test(test_byte_overflow),
		cmocka_unit_test(test_row_byte_overflow),
		cmocka_unit_test(test_unknown_type),
		cmocka_unit_test(test_row_not_block_multiple),
		cmocka_unit_test(test_offset_unaligned),
		cmocka_unit_test(test_data_past_end),
		cmocka_unit_test(test_duplicate_key),
		cmocka_unit_test(test_duplicate_tensor),
		cmocka_unit_test(test_alignment_rules),
		cmocka_unit_test(test_overlap),
		cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_byte_mutations),
		cmocka_unit_test(test_writer_roundtrip),
		cmocka_unit_test(test_getter_errors),
		cmocka_unit_test(test_integer_range),
		cmocka_unit_test(test_offsets_past_4gib),
		cmocka_unit_test(test_writer_alignment),
		cmocka_unit_test(test_type_table),
		cmocka_unit_test(test_golden_files),
		cmocka_unit_test(test_cli_info),
	};
	return cmocka_run_group_tests_name("gguf", tests, NULL, NULL);
}

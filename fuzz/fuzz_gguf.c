/*
 * fuzz/gguf — libFuzzer target for the GGUF reader.  Any input must either
 * be rejected with an error or parse into a file whose every value and
 * tensor can be walked without reading outside the buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

__extension__ typedef unsigned __int128 u128;

static void walk(const struct gguf_value *v, int depth)
{
	if (v->type == GGUF_VT_STRING) {
		for (uint64_t i = 0; i < v->str.len; i++)
			sink += (uint8_t)v->str.ptr[i];
		return;
	}
	if (v->type != GGUF_VT_ARRAY) {
		double d;
		if (gguf_value_f64(v, &d) == 0)
			sink += (uint64_t)(d != d);
		return;
	}
	for (uint64_t i = 0; i < v->n && i < 64; i++) {
		struct gguf_value e;
		if (gguf_arr_elem(v, i, &e, NULL) == 0 && depth < GGUF_MAX_ARRAY_DEPTH)
			walk(&e, depth + 1);
	}
	if (v->n)  {
		struct gguf_value e;
		if (gguf_arr_elem(v, v->n - 1, &e, NULL) == 0)
			sink += e.type;
	}
}

/* The oracle for an accepted tensor: its byte size is exactly
 * n_elements / block_size * type_size computed without wrapping (128 bits),
 * the element count is the product of the dimensions, and its data lies
 * inside the buffer.  Any disagreement aborts (a finding). */
static void check_tensor(const struct gguf_file *g, const struct gguf_tensor *t,
			 const uint8_t *buf, size_t size)
{
	const struct gguf_type_info *ti = gguf_type_get(t->type);
	u128 nel = 1, want;
	const uint8_t *p = t->data;

	if (!ti || t->n_dims > GGUF_MAX_DIMS)
		abort();
	for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
		if (t->ne[d] < 1)
			abort();
		nel *= (u128)(uint64_t)t->ne[d];
	}
	if (nel != (u128)(uint64_t)t->n_elem || (uint64_t)t->ne[0] % ti->block_size)
		abort();
	want = nel / ti->block_size * ti->type_size;
	if (want != (u128)t->nbytes)
		abort();
	if (p < buf || (size_t)(p - buf) > size || t->nbytes > size - (size_t)(p - buf))
		abort();
	if ((uint64_t)(p - buf) != g->data_offset + t->offset)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gguf_file *g;
	struct dm_err err;
	/* copy so the buffer ends exactly where ASan's redzone starts */
	uint8_t *copy = malloc(size ? size : 1);

	if (!copy)
		return 0;
	if (size)
		memcpy(copy, data, size);
	if (gguf_open_buffer(&g, copy, size, "fuzz", &err) == 0) {
		uint32_t u;
		struct gguf_str s;
		for (uint64_t i = 0; i < g->n_kv; i++)
			walk(&g->kv[i].val, 0);
		for (uint64_t i = 0; i < g->n_tensors; i++) {
			const struct gguf_tensor *t = &g->tensors[i];
			const uint8_t *p = t->data;
			check_tensor(g, t, copy, size);
			if (t->nbytes)
				sink += p[0] + p[t->nbytes - 1];
		}
		(void)gguf_get_u32(g, "general.alignment", &u, &err);
		(void)gguf_get_str(g, "general.architecture", &s, &err);
		gguf_close(g);
	} else if (err.msg[0] == '\0') {
		abort(); /* every failure must explain itself */
	}
	free(copy);
	return 0;
}

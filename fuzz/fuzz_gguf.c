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

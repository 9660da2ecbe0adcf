/*
 * cli/info — `dormant info FILE [--json] [--full]`: the header, every
 * metadata key and the tensor table of a GGUF file, with totals.  Arrays
 * longer than ARR_SHOW elements and strings longer than STR_SHOW bytes are
 * abbreviated unless --full (in JSON an abbreviated array carries
 * "truncated": true and its full length "n").
 *
 * `dormant info FILE --tensor NAME [--limit N]` prints only that tensor's
 * values dequantized to float, one per line in storage order (%.9g, which
 * round-trips every float), the first N of them with --limit.
 */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "gguf/gguf.h"
#include "kern/kern.h"

#define ARR_SHOW 8
#define STR_SHOW 160

struct info_opts {
	bool json, full;
	const char *tensor; /* --tensor NAME: print its values only */
	uint64_t limit;     /* --limit N (0: all) */
};

/* Prints the tensor's values, dequantized row by row; returns the exit status. */
static int print_tensor_values(const struct gguf_file *g, const struct info_opts *o)
{
	const struct gguf_tensor *t = gguf_tensor_find(g, o->tensor);
	struct dm_err err;
	uint64_t left = o->limit ? o->limit : UINT64_MAX;
	int64_t ne0, rows;
	size_t rb;
	float *row;

	if (!t)
		return cli_fail("%s: no tensor '%s'", g->name, o->tensor);
	ne0 = t->n_dims ? t->ne[0] : 1;
	rows = ne0 ? t->n_elem / ne0 : 0;
	rb = kern_row_bytes(t->type, ne0);
	if (!rb && ne0)
		return cli_fail("%s: tensor '%s': cannot dequantize type %s", g->name, o->tensor,
				gguf_type_get(t->type)->name);
	/* the reader checked nbytes; check again that the rows we are about to
	 * read are exactly those bytes and that the row buffer's size fits */
	if (ne0 < 0 || (uint64_t)ne0 > SIZE_MAX / sizeof *row ||
	    (rows && (rb == 0 || (uint64_t)rows > t->nbytes / rb || (uint64_t)rows * rb != t->nbytes)))
		return cli_fail("%s: tensor '%s': %" PRId64 " rows of %zu bytes do not match its %" PRIu64
				" bytes", g->name, o->tensor, rows, rb, t->nbytes);
	row = malloc((size_t)(ne0 ? ne0 : 1) * sizeof *row);
	if (!row)
		return cli_fail("info: out of memory");
	for (int64_t r = 0; r < rows && left; r++) {
		if (kern_dequantize(t->type, (const uint8_t *)t->data + (size_t)r * rb, row, ne0,
				    &err)) {
			free(row);
			return cli_fail("%s: tensor '%s': %s", g->name, o->tensor, err.msg);
		}
		for (int64_t i = 0; i < ne0 && left; i++, left--)
			printf("%.9g\n", row[i]);
	}
	free(row);
	return 0;
}

/* The shortest decimal that reads back as the same f32/f64. */
static void print_shortest(FILE *f, double d, bool is_f32)
{
	char buf[40];
	for (int prec = is_f32 ? 6 : 15; prec <= (is_f32 ? 9 : 17); prec++) {
		snprintf(buf, sizeof buf, "%.*g", prec, d);
		if (is_f32 ? strtof(buf, NULL) == (float)d : strtod(buf, NULL) == d)
			break;
	}
	fputs(buf, f);
}

static void print_num(FILE *f, const struct gguf_value *v, bool json)
{
	int64_t i;
	uint64_t u;
	double d;

	if (v->type == GGUF_VT_BOOL) {
		fputs(v->p[0] ? "true" : "false", f);
	} else if (v->type == GGUF_VT_FLOAT32 || v->type == GGUF_VT_FLOAT64) {
		gguf_value_f64(v, &d);
		if (!isfinite(d))
			fputs(json ? "null" : (isnan(d) ? "nan" : d > 0 ? "inf" : "-inf"), f);
		else
			print_shortest(f, d, v->type == GGUF_VT_FLOAT32);
	} else if (v->type == GGUF_VT_UINT64) {
		gguf_value_u64(v, &u);
		fprintf(f, "%" PRIu64, u);
	} else {
		gguf_value_i64(v, &i);
		fprintf(f, "%" PRId64, i);
	}
}

static void print_value(FILE *f, const struct gguf_value *v, const struct info_opts *o)
{
	if (v->type == GGUF_VT_STRING) {
		uint64_t n = v->str.len;
		bool cut = !o->full && n > STR_SHOW;
		if (cut)
			n = STR_SHOW;
		if (o->json) {
			cli_json_str(f, v->str.ptr, n);
		} else {
			fputc('"', f);
			cli_text_str(f, v->str.ptr, n);
			fputc('"', f);
			if (cut)
				fprintf(f, "... (%" PRIu64 " bytes)", v->str.len);
		}
		return;
	}
	if (v->type == GGUF_VT_ARRAY) {
		uint64_t n = v->n;
		bool cut = !o->full && n > ARR_SHOW;
		if (cut)
			n = ARR_SHOW;
		fputc('[', f);
		for (uint64_t i = 0; i < n; i++) {
			struct gguf_value e;
			if (gguf_arr_elem(v, i, &e, NULL))
				break;
			if (i)
				fputs(", ", f);
			print_value(f, &e, o);
		}
		if (cut && !o->json)
			fprintf(f, ", ... %" PRIu64 " more", v->n - n);
		fputc(']', f);
		return;
	}
	print_num(f, v, o->json);
}

/* "arr[str,32000]" style type label. */
static void type_label(char *buf, size_t cap, const struct gguf_value *v)
{
	if (v->type == GGUF_VT_ARRAY)
		snprintf(buf, cap, "arr[%s,%" PRIu64 "]", gguf_vtype_name(v->elem_type), v->n);
	else
		snprintf(buf, cap, "%s", gguf_vtype_name(v->type));
}

struct type_total {
	uint64_t tensors, bytes, params;
};

static void shape_str(char *buf, size_t cap, const struct gguf_tensor *t)
{
	size_t k = 0;
	buf[0] = '\0';
	for (uint32_t d = 0; d < t->n_dims && k < cap; d++)
		k += (size_t)snprintf(buf + k, cap - k, "%s%" PRId64, d ? " x " : "", t->ne[d]);
	if (t->n_dims == 0)
		snprintf(buf, cap, "scalar");
}

static void human_bytes(char *buf, size_t cap, uint64_t b)
{
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)b;
	int i = 0;
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	snprintf(buf, cap, i ? "%.2f %s" : "%.0f %s", v, u[i]);
}

static void print_text(const struct gguf_file *g, const struct info_opts *o,
		       const struct type_total *tt, uint64_t params, uint64_t tbytes)
{
	char hb[32], tl[48], sh[96];

	printf("file:        %s\n", g->name);
	human_bytes(hb, sizeof hb, g->size);
	printf("size:        %" PRIu64 " bytes (%s)\n", g->size, hb);
	printf("gguf:        version %u, alignment %u, data at offset %" PRIu64 "\n", g->version,
	       g->alignment, g->data_offset);
	printf("\nmetadata: %" PRIu64 " keys\n", g->n_kv);
	for (uint64_t i = 0; i < g->n_kv; i++) {
		const struct gguf_kv *kv = &g->kv[i];
		fputs("  ", stdout);
		cli_text_str(stdout, kv->key.ptr, kv->key.len);
		printf("%*s", kv->key.len < 44 ? (int)(44 - kv->key.len) : 1, "");
		type_label(tl, sizeof tl, &kv->val);
		printf("%-16s ", tl);
		print_value(stdout, &kv->val, o);
		putchar('\n');
	}
	printf("\ntensors: %" PRIu64 "\n", g->n_tensors);
	if (g->n_tensors)
		printf("  %5s  %-40s %-8s %-24s %14s %14s\n", "#", "name", "type", "shape", "bytes",
		       "offset");
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		const struct gguf_tensor *t = &g->tensors[i];
		shape_str(sh, sizeof sh, t);
		printf("  %5" PRIu64 "  ", i);
		cli_text_str(stdout, t->name.ptr, t->name.len);
		printf("%*s", t->name.len < 40 ? (int)(40 - t->name.len) : 1, "");
		printf(" %-8s %-24s %14" PRIu64 " %14" PRIu64 "\n", gguf_type_get(t->type)->name, sh,
		       t->nbytes, g->data_offset + t->offset);
	}
	printf("\ntotals:\n");
	printf("  parameters:  %" PRIu64 " (%.3f B)\n", params, (double)params / 1e9);
	human_bytes(hb, sizeof hb, tbytes);
	printf("  tensor data: %" PRIu64 " bytes (%s)\n", tbytes, hb);
	human_bytes(hb, sizeof hb, g->size);
	printf("  file size:   %" PRIu64 " bytes (%s)\n", g->size, hb);
	if (params)
		printf("  bits/param:  %.3f\n", 8.0 * (double)tbytes / (double)params);
	for (int t = 0; t < GGUF_TYPE_COUNT; t++)
		if (tt[t].tensors) {
			human_bytes(hb, sizeof hb, tt[t].bytes);
			printf("  %-8s %5" PRIu64 " tensors %14" PRIu64 " bytes (%s) %14" PRIu64
			       " params\n",
			       gguf_type_get((uint32_t)t)->name, tt[t].tensors, tt[t].bytes, hb,
			       tt[t].params);
		}
}

static void print_json(const struct gguf_file *g, const struct info_opts *o,
		       const struct type_total *tt, uint64_t params, uint64_t tbytes)
{
	bool first = true;

	printf("{\"file\":");
	cli_json_str(stdout, g->name, strlen(g->name));
	printf(",\"file_size\":%" PRIu64 ",\"version\":%u,\"alignment\":%u,\"data_offset\":%" PRIu64
	       ",\"n_kv\":%" PRIu64 ",\"n_tensors\":%" PRIu64 ",\n\"metadata\":[",
	       g->size, g->version, g->alignment, g->data_offset, g->n_kv, g->n_tensors);
	for (uint64_t i = 0; i < g->n_kv; i++) {
		const struct gguf_kv *kv = &g->kv[i];
		printf("%s\n {\"key\":", i ? "," : "");
		cli_json_str(stdout, kv->key.ptr, kv->key.len);
		printf(",\"type\":\"%s\"", gguf_vtype_name(kv->val.type));
		if (kv->val.type == GGUF_VT_ARRAY) {
			printf(",\"elem_type\":\"%s\",\"n\":%" PRIu64, gguf_vtype_name(kv->val.elem_type),
			       kv->val.n);
			if (!o->full && kv->val.n > ARR_SHOW)
				printf(",\"truncated\":true");
		} else if (kv->val.type == GGUF_VT_STRING && !o->full && kv->val.str.len > STR_SHOW) {
			printf(",\"bytes\":%" PRIu64 ",\"truncated\":true", kv->val.str.len);
		}
		printf(",\"value\":");
		print_value(stdout, &kv->val, o);
		putchar('}');
	}
	printf("],\n\"tensors\":[");
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		const struct gguf_tensor *t = &g->tensors[i];
		printf("%s\n {\"name\":", i ? "," : "");
		cli_json_str(stdout, t->name.ptr, t->name.len);
		printf(",\"type\":\"%s\",\"shape\":[", gguf_type_get(t->type)->name);
		for (uint32_t d = 0; d < t->n_dims; d++)
			printf("%s%" PRId64, d ? "," : "", t->ne[d]);
		printf("],\"n_elements\":%" PRId64 ",\"bytes\":%" PRIu64 ",\"offset\":%" PRIu64
		       ",\"file_offset\":%" PRIu64 "}",
		       t->n_elem, t->nbytes, t->offset, g->data_offset + t->offset);
	}
	printf("],\n\"totals\":{\"parameters\":%" PRIu64 ",\"tensor_bytes\":%" PRIu64
	       ",\"file_size\":%" PRIu64 ",\"by_type\":{",
	       params, tbytes, g->size);
	for (int t = 0; t < GGUF_TYPE_COUNT; t++)
		if (tt[t].tensors) {
			printf("%s\"%s\":{\"tensors\":%" PRIu64 ",\"bytes\":%" PRIu64
			       ",\"parameters\":%" PRIu64 "}",
			       first ? "" : ",", gguf_type_get((uint32_t)t)->name, tt[t].tensors,
			       tt[t].bytes, tt[t].params);
			first = false;
		}
	printf("}}}\n");
}

int cli_info(int argc, char **argv)
{
	struct info_opts o = { 0 };
	struct type_total tt[GGUF_TYPE_COUNT] = { { 0 } };
	struct gguf_file *g;
	struct dm_err err;
	const char *path = NULL;
	uint64_t params = 0, tbytes = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			o.json = true;
		else if (!strcmp(argv[i], "--full"))
			o.full = true;
		else if (!strcmp(argv[i], "--tensor") && i + 1 < argc)
			o.tensor = argv[++i];
		else if (!strcmp(argv[i], "--limit") && i + 1 < argc) {
			char *end;
			o.limit = strtoull(argv[++i], &end, 10);
			if (*end || !*argv[i] || argv[i][0] == '-')
				return cli_fail("info: --limit '%s' is not a number", argv[i]), 2;
		}
		else if (argv[i][0] == '-' && argv[i][1])
			return cli_fail("info: unknown option '%s'", argv[i]), 2;
		else if (!path)
			path = argv[i];
		else
			return cli_fail("info: more than one FILE given"), 2;
	}
	if (!path)
		return cli_fail("usage: dormant info FILE [--json] [--full] [--tensor NAME [--limit N]]"), 2;
	if (gguf_open(&g, path, &err))
		return cli_fail("%s", err.msg);
	if (o.tensor) {
		int rc = print_tensor_values(g, &o);
		gguf_close(g);
		if (!rc && (fflush(stdout) != 0 || ferror(stdout)))
			return cli_fail("info: error writing output");
		return rc;
	}

	for (uint64_t i = 0; i < g->n_tensors; i++) {
		const struct gguf_tensor *t = &g->tensors[i];
		tt[t->type].tensors++;
		tt[t->type].bytes += t->nbytes;
		tt[t->type].params += (uint64_t)t->n_elem;
		params += (uint64_t)t->n_elem;
		tbytes += t->nbytes;
	}
	if (o.json)
		print_json(g, &o, tt, params, tbytes);
	else
		print_text(g, &o, tt, params, tbytes);
	gguf_close(g);
	if (fflush(stdout) != 0 || ferror(stdout))
		return cli_fail("info: error writing output");
	return 0;
}

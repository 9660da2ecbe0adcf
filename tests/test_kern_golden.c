/* tests/kern_golden — bit compatibility with ggml.
 *
 * 1. Fixed-input checksums (no external data): for every quantized type,
 *    random valid blocks are packed by an independent packer written here
 *    from the published layouts (byte arithmetic, no kern structs), decoded
 *    by an independent decoder, and the decoded floats — which lie exactly
 *    on the format's grid — are re-quantized by our reference quantizer.
 *    A quantizer that searches like ggml's recovers exactly the packed
 *    bytes, so the SHA-256 of its output must equal the SHA-256 of the
 *    independently packed bytes; and kern_dequantize must give exactly the
 *    independent decoder's floats.
 * 2. /work/shared/golden (skipped when absent): our dequantization of the
 *    kquant-<T>.gguf tensors is bit-identical to ggml's (expected/<file>.f32),
 *    and
 *    re-quantizing the F16 model's tensors with our reference quantizers
 *    reproduces llama-quantize's raw bytes (sha256 in expected/tensors.tsv).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/half.h"
#include "base/pool.h"
#include "base/rng.h"
#include "gguf/gguf.h"
#include "kern/kern.h"
#include "tutil.h"

/* ---------------- independent packer / decoder ---------------- */

struct gen {
	struct dm_rng r;
};

static int rnd(struct gen *g, int lo, int hi) /* inclusive */
{
	return lo + (int)(dm_rng_u64(&g->r) % (uint64_t)(hi - lo + 1));
}

/* A positive f16 scale 2^e·(1 + k/64): few mantissa bits, so products with
 * small integers stay exact in float. */
static uint16_t rnd_scale(struct gen *g, int e_lo, int e_hi)
{
	float v = ldexpf(1.0f + (float)rnd(g, 0, 63) / 64.0f, rnd(g, e_lo, e_hi));
	return dm_f32_to_f16(v);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

/* Codes for `n` elements in [lo, hi] with code `must1` (and `must2` unless
 * it is below lo) present, at random positions. */
static void rnd_codes(struct gen *g, int *q, int n, int lo, int hi, int must1, int must2)
{
	for (int i = 0; i < n; i++)
		q[i] = rnd(g, lo, hi);
	int a = rnd(g, 0, n - 1), b;
	q[a] = must1;
	if (must2 >= lo) {
		do
			b = rnd(g, 0, n - 1);
		while (b == a);
		q[b] = must2;
	}
}

/*
 * Generates one block of `type` into blk (bytes) and its exact values into
 * x (floats, as ggml's dequantizer computes them).  Constraints that make
 * the grid recoverable: the extreme codes a quantizer starts from are
 * present in every (sub-)block, and the largest scale is the one the
 * quantizer normalises to.
 */
static void gen_block(struct gen *g, uint32_t type, uint8_t *blk, float *x)
{
	int q[256];
	switch (type) {
	case GGUF_TYPE_Q4_0:
	case GGUF_TYPE_Q5_0: {
		int five = type == GGUF_TYPE_Q5_0, off = five ? 16 : 8;
		uint16_t d = rnd_scale(g, -10, -4);
		uint32_t qh = 0;
		uint8_t *qs = blk + (five ? 6 : 2);
		rnd_codes(g, q, 32, 0, 2 * off - 1, 0, -1);
		put16(blk, d);
		for (int j = 0; j < 16; j++)
			qs[j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
		for (int j = 0; j < 32; j++)
			qh |= (uint32_t)(q[j] >> 4 & 1) << j;
		if (five)
			for (int k = 0; k < 4; k++)
				blk[2 + k] = (uint8_t)(qh >> 8 * k);
		for (int j = 0; j < 32; j++)
			x[j] = (float)(q[j] - off) * dm_f16_to_f32(d);
		break;
	}
	case GGUF_TYPE_Q4_1:
	case GGUF_TYPE_Q5_1: {
		int five = type == GGUF_TYPE_Q5_1, top = five ? 31 : 15;
		uint16_t d = rnd_scale(g, -10, -4);
		float mv = -dm_f16_to_f32(d) * (float)rnd(g, 0, top);
		uint16_t m = dm_f32_to_f16(mv == 0 ? 0.0f : mv); /* +0: min(x) of codes 0 is +0 */
		uint32_t qh = 0;
		uint8_t *qs = blk + (five ? 8 : 4);
		rnd_codes(g, q, 32, 0, top, 0, top);
		put16(blk, d);
		put16(blk + 2, m);
		for (int j = 0; j < 16; j++)
			qs[j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
		for (int j = 0; j < 32; j++)
			qh |= (uint32_t)(q[j] >> 4 & 1) << j;
		if (five)
			for (int k = 0; k < 4; k++)
				blk[4 + k] = (uint8_t)(qh >> 8 * k);
		for (int j = 0; j < 32; j++)
			x[j] = (float)q[j] * dm_f16_to_f32(d) + dm_f16_to_f32(m);
		break;
	}
	case GGUF_TYPE_Q8_0: {
		uint16_t d = rnd_scale(g, -12, -6);
		rnd_codes(g, q, 32, -126, 126, rnd(g, 0, 1) ? 127 : -127, -200);
		put16(blk, d);
		for (int j = 0; j < 32; j++) {
			blk[2 + j] = (uint8_t)(int8_t)q[j];
			x[j] = (float)q[j] * dm_f16_to_f32(d);
		}
		break;
	}
	case GGUF_TYPE_Q2_K: { /* scales[16] qs[64] d dmin */
		uint16_t d = rnd_scale(g, -10, -6), dm = rnd_scale(g, -10, -6);
		int sc[16], mn[16], big = rnd(g, 0, 15), bigm = rnd(g, 0, 15);
		for (int j = 0; j < 16; j++) {
			sc[j] = j == big ? 15 : rnd(g, 1, 14);
			mn[j] = j == bigm ? 15 : rnd(g, 0, 14);
			rnd_codes(g, q + 16 * j, 16, 0, 3, 0, 3);
			blk[j] = (uint8_t)(sc[j] | mn[j] << 4);
		}
		memset(blk + 16, 0, 64);
		for (int e = 0; e < 256; e++) /* element 128h+32s+l: byte 32h+l, bits 2s */
			blk[16 + 32 * (e / 128) + e % 32] |= (uint8_t)(q[e] << 2 * (e % 128 / 32));
		put16(blk + 80, d);
		put16(blk + 82, dm);
		for (int e = 0; e < 256; e++) {
			float dl = dm_f16_to_f32(d) * (float)sc[e / 16];
			float ml = dm_f16_to_f32(dm) * (float)mn[e / 16];
			x[e] = dl * (float)q[e] - ml;
		}
		break;
	}
	case GGUF_TYPE_Q3_K: { /* hmask[32] qs[64] scales[12] d */
		uint16_t d = rnd_scale(g, -10, -6);
		int sc[16], big = rnd(g, 0, 15);
		memset(blk, 0, 110);
		for (int j = 0; j < 16; j++) {
			sc[j] = j == big ? -32 : (rnd(g, 0, 1) ? rnd(g, 1, 31) : -rnd(g, 1, 31));
			rnd_codes(g, q + 16 * j, 16, -4, 3, -4, -100);
			int u = sc[j] + 32; /* 6-bit code */
			blk[96 + j % 8] |= (uint8_t)((u & 15) << 4 * (j / 8));
			blk[96 + 8 + j % 4] |= (uint8_t)((u >> 4) << 2 * (j / 4));
		}
		for (int e = 0; e < 256; e++) {
			int u = q[e] + 4; /* 0..7: low 2 bits + high bit */
			blk[32 + 32 * (e / 128) + e % 32] |= (uint8_t)((u & 3) << 2 * (e % 128 / 32));
			if (u & 4)
				blk[e % 32] |= (uint8_t)(1 << (e / 32));
		}
		put16(blk + 108, d);
		for (int e = 0; e < 256; e++)
			x[e] = dm_f16_to_f32(d) * (float)sc[e / 16] * (float)q[e];
		break;
	}
	case GGUF_TYPE_Q4_K:
	case GGUF_TYPE_Q5_K: { /* d dmin scales[12] (qh[32]) qs[128] */
		int five = type == GGUF_TYPE_Q5_K, top = five ? 31 : 15;
		uint16_t d = rnd_scale(g, -10, -6), dm = rnd_scale(g, -10, -6);
		int sc[8], mn[8], big = rnd(g, 0, 7), bigm = rnd(g, 0, 7);
		uint8_t *s12 = blk + 4, *qh = blk + 16, *qs = blk + (five ? 48 : 16);
		memset(blk, 0, five ? 176 : 144);
		put16(blk, d);
		put16(blk + 2, dm);
		for (int j = 0; j < 8; j++) {
			sc[j] = j == big ? 63 : rnd(g, 1, 62);
			mn[j] = j == bigm ? 63 : rnd(g, 0, 62);
			rnd_codes(g, q + 32 * j, 32, 0, top, 0, top);
			if (j < 4) {
				s12[j] |= (uint8_t)sc[j];
				s12[j + 4] |= (uint8_t)mn[j];
			} else {
				s12[j + 4] = (uint8_t)((sc[j] & 15) | (mn[j] & 15) << 4);
				s12[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
				s12[j] |= (uint8_t)((mn[j] >> 4) << 6);
			}
		}
		for (int e = 0; e < 256; e++) { /* chunk c = e/64: low nibble first 32, high next */
			int c = e / 64, hi = e % 64 >= 32, l = e % 32;
			qs[32 * c + l] |= (uint8_t)((q[e] & 15) << 4 * hi);
			if (five && (q[e] & 16))
				qh[l] |= (uint8_t)(1 << (2 * c + hi));
		}
		for (int e = 0; e < 256; e++) {
			float dl = dm_f16_to_f32(d) * (float)sc[e / 32];
			float ml = dm_f16_to_f32(dm) * (float)mn[e / 32];
			x[e] = dl * (float)q[e] - ml;
		}
		break;
	}
	case GGUF_TYPE_Q6_K: { /* ql[128] qh[64] scales[16] d */
		uint16_t d = rnd_scale(g, -12, -8);
		int sc[16], big = rnd(g, 0, 15);
		memset(blk, 0, 210);
		for (int j = 0; j < 16; j++) {
			sc[j] = j == big ? -128 : (rnd(g, 0, 1) ? rnd(g, 1, 127) : -rnd(g, 1, 127));
			rnd_codes(g, q + 16 * j, 16, -32, 31, -32, -100);
			blk[192 + j] = (uint8_t)(int8_t)sc[j];
		}
		for (int e = 0; e < 256; e++) {
			int u = q[e] + 32, h = e / 128, r = e % 128, l = r % 32, grp = r / 32;
			/* groups 0,1 take low nibbles of ql[l], ql[l+32]; 2,3 the high ones */
			blk[64 * h + l + 32 * (grp & 1)] |= (uint8_t)((u & 15) << 4 * (grp >> 1));
			blk[128 + 32 * h + l] |= (uint8_t)((u >> 4) << 2 * grp);
		}
		put16(blk + 208, d);
		for (int e = 0; e < 256; e++)
			x[e] = dm_f16_to_f32(d) * (float)sc[e / 16] * (float)q[e];
		break;
	}
	default:
		fail_msg("no generator for type %u", type);
	}
}

static const uint32_t qtypes[] = {
	GGUF_TYPE_Q4_0, GGUF_TYPE_Q4_1, GGUF_TYPE_Q5_0, GGUF_TYPE_Q5_1, GGUF_TYPE_Q8_0,
	GGUF_TYPE_Q2_K, GGUF_TYPE_Q3_K, GGUF_TYPE_Q4_K, GGUF_TYPE_Q5_K, GGUF_TYPE_Q6_K,
};

static void test_fixed_input_checksums(void **state)
{
	(void)state;
	for (size_t ti = 0; ti < sizeof qtypes / sizeof qtypes[0]; ti++) {
		const struct gguf_type_info *info = gguf_type_get(qtypes[ti]);
		const int nb = 24; /* a small tensor: 24 blocks */
		int64_t n = (int64_t)nb * info->block_size;
		size_t bytes = (size_t)nb * info->type_size;
		uint8_t *packed = calloc(1, bytes), *ours = calloc(1, bytes);
		float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
		struct gen g;
		char want[65], got[65];

		dm_rng_seed(&g.r, 0xC0FFEE + ti);
		for (int b = 0; b < nb; b++)
			gen_block(&g, qtypes[ti], packed + (size_t)b * info->type_size,
				  x + (size_t)b * info->block_size);
		/* our dequantizer reads the independently packed bytes exactly */
		assert_int_equal(kern_dequantize(qtypes[ti], packed, y, n, NULL), 0);
		for (int64_t i = 0; i < n; i++)
			if (memcmp(&x[i], &y[i], 4))
				fail_msg("%s: element %lld: independent decode %.9g, kern %.9g", info->name,
					 (long long)i, x[i], y[i]);
		/* our quantizer recovers the packed bytes */
		assert_int_equal(kern_quantize(qtypes[ti], x, ours, n, NULL), 0);
		tu_sha256_hex(packed, bytes, want);
		tu_sha256_hex(ours, bytes, got);
		if (strcmp(want, got)) {
			size_t k = 0;
			while (k < bytes && packed[k] == ours[k])
				k++;
			fail_msg("%s: sha256 %s, expected %s (first difference at byte %zu: %02x vs %02x)",
				 info->name, got, want, k, ours[k], packed[k]);
		}
		free(packed);
		free(ours);
		free(x);
		free(y);
	}
}

/* ---------------- /work/shared/golden ---------------- */

static const char *const gfiles[] = {
	"F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
	"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q4_K_M",
};
static const char *const gtensors[] = { "blk.0.attn_q.weight", "blk.1.ffn_down.weight" };

static void test_golden_dequant(void **state)
{
	const char *dir = tu_golden_dir();
	char path[1024];
	(void)state;
	if (!dir)
		skip();
	for (size_t f = 0; f < sizeof gfiles / sizeof gfiles[0]; f++) {
		struct gguf_file *g;
		struct dm_err e;
		snprintf(path, sizeof path, "%s/kquant/kquant-%s.gguf", dir, gfiles[f]);
		if (gguf_open(&g, path, &e))
			fail_msg("%s", e.msg);
		for (size_t t = 0; t < 2; t++) {
			const struct gguf_tensor *ten = gguf_tensor_find(g, gtensors[t]);
			size_t n_exp;
			assert_non_null(ten);
			snprintf(path, sizeof path, "%s/kquant/expected/kquant-%s.gguf.%s.f32", dir,
				 gfiles[f], gtensors[t]);
			float *want = tu_read_file(path, &n_exp);
			float *got = malloc((size_t)ten->n_elem * sizeof(float));
			assert_non_null(want);
			assert_int_equal(n_exp, (size_t)ten->n_elem * sizeof(float));
			if (kern_dequantize(ten->type, ten->data, got, ten->n_elem, &e))
				fail_msg("%s", e.msg);
			if (memcmp(want, got, n_exp))
				fail_msg("kquant-%s %s: dequantization differs from ggml", gfiles[f],
					 gtensors[t]);
			free(want);
			free(got);
		}
		gguf_close(g);
	}
}

/* sha256 of the raw bytes of (file, tensor) from tensors.tsv. */
static int tsv_sha(const char *tsv, const char *file, const char *tensor, char out[65])
{
	char key[256];
	snprintf(key, sizeof key, "\n%s\t%s\t", file, tensor);
	const char *p = strstr(tsv, key);
	if (!p)
		return -1;
	p += strlen(key);
	for (int col = 0; col < 4; col++) { /* type ne0 ne1 n_bytes */
		p = strchr(p, '\t');
		if (!p)
			return -1;
		p++;
	}
	memcpy(out, p, 64);
	out[64] = '\0';
	return 0;
}

/*
 * Re-quantizes kquant-F16.gguf's tensors (exactly the F32 source values)
 * with our reference quantizer.  llama-quantize without an importance
 * matrix calls ggml's quantize_row_*_ref for every type tested here, so
 * every file made with --pure must be reproduced byte for byte.
 */
static void test_golden_requantize(void **state)
{
	static const struct {
		const char *file;
		uint32_t type;
	} cases[] = {
		{ "BF16", GGUF_TYPE_BF16 }, { "Q4_0", GGUF_TYPE_Q4_0 }, { "Q4_1", GGUF_TYPE_Q4_1 },
		{ "Q5_0", GGUF_TYPE_Q5_0 }, { "Q5_1", GGUF_TYPE_Q5_1 }, { "Q8_0", GGUF_TYPE_Q8_0 },
		{ "Q2_K", GGUF_TYPE_Q2_K }, { "Q3_K", GGUF_TYPE_Q3_K }, { "Q4_K", GGUF_TYPE_Q4_K },
		{ "Q5_K", GGUF_TYPE_Q5_K }, { "Q6_K", GGUF_TYPE_Q6_K },
	};
	const char *dir = tu_golden_dir();
	char path[1024];
	struct gguf_file *g;
	struct dm_err e;
	size_t tsv_n;
	int mismatches = 0;
	struct dm_pool *pool;
	(void)state;
	if (!dir)
		skip();
	assert_int_equal(dm_pool_init(&pool, 2, NULL), 0);
	snprintf(path, sizeof path, "%s/kquant/expected/tensors.tsv", dir);
	char *tsv = tu_read_file(path, &tsv_n);
	assert_non_null(tsv);
	snprintf(path, sizeof path, "%s/kquant/kquant-F16.gguf", dir);
	if (gguf_open(&g, path, &e))
		fail_msg("%s", e.msg);
	for (size_t t = 0; t < 2; t++) {
		const struct gguf_tensor *ten = gguf_tensor_find(g, gtensors[t]);
		float *x = malloc((size_t)ten->n_elem * sizeof(float));
		uint8_t *q = malloc((size_t)ten->n_elem * 4);
		assert_int_equal(kern_dequantize(GGUF_TYPE_F16, ten->data, x, ten->n_elem, NULL), 0);
		for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
			char file[64], want[65], got[65];
			size_t bytes = kern_row_bytes(cases[c].type, ten->ne[0]) * (size_t)ten->ne[1];
			snprintf(file, sizeof file, "kquant-%s.gguf", cases[c].file);
			assert_int_equal(tsv_sha(tsv, file, gtensors[t], want), 0);
			/* row by row, as llama-quantize does (the result is the same) */
			for (int64_t r = 0; r < ten->ne[1]; r++)
				assert_int_equal(kern_quantize(cases[c].type, x + r * ten->ne[0],
							       q + (size_t)r * (bytes / (size_t)ten->ne[1]),
							       ten->ne[0], NULL),
						 0);
			tu_sha256_hex(q, bytes, got);
			int ok = !strcmp(want, got);
			print_message("  %-5s %-22s %s\n", cases[c].file, gtensors[t],
				      ok ? "byte-identical to llama-quantize" : "DIFFERS");
			mismatches += !ok;
			/* quantize-on-load's path: straight from the F16 rows, every ISA
			 * here, on two threads */
			if (cases[c].type != GGUF_TYPE_Q8_0 && cases[c].type != GGUF_TYPE_Q4_0 &&
			    cases[c].type != GGUF_TYPE_Q4_K)
				continue;
			for (int isa = 0; isa < KERN_ISA_COUNT; isa++) {
				if (!kern_isa_supported((enum kern_isa)isa))
					continue;
				memset(q, 0, bytes);
				assert_int_equal(kern_quantize_rows(pool, (enum kern_isa)isa, GGUF_TYPE_F16, ten->data,
								    cases[c].type, q, ten->ne[1], ten->ne[0], NULL),
						 0);
				tu_sha256_hex(q, bytes, got);
				ok = !strcmp(want, got);
				print_message("  %-5s %-22s kern_quantize_rows %-6s %s\n", cases[c].file, gtensors[t],
					      kern_isa_name((enum kern_isa)isa), ok ? "byte-identical" : "DIFFERS");
				mismatches += !ok;
			}
		}
		free(x);
		free(q);
	}
	gguf_close(g);
	free(tsv);
	dm_pool_free(pool);
	assert_int_equal(mismatches, 0);
}

/* `dormant info FILE --tensor NAME --limit N` prints ggml's values. */
static void test_cli_info_tensor(void **state)
{
	const char *dir = tu_golden_dir();
	char path[1024];
	size_t n;
	int st;
	(void)state;
	if (!dir)
		skip();
	snprintf(path, sizeof path, "%s/kquant/expected/kquant-Q6_K.gguf.blk.1.ffn_down.weight.f32",
		 dir);
	float *want = tu_read_file(path, &n);
	assert_non_null(want);
	char *out = tu_capture(&st, "%s info %s/kquant/kquant-Q6_K.gguf --tensor blk.1.ffn_down.weight "
				    "--limit 1000",
			       tu_dormant(), dir);
	assert_int_equal(st, 0);
	assert_non_null(out);
	char *p = out;
	int k = 0;
	for (; k < 1000 && *p; k++) {
		float v = strtof(p, &p);
		assert_memory_equal(&v, &want[k], 4);
	}
	assert_int_equal(k, 1000);
	free(out);
	free(want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixed_input_checksums),
		cmocka_unit_test(test_golden_dequant),
		cmocka_unit_test(test_golden_requantize),
		cmocka_unit_test(test_cli_info_tensor),
	};
	return cmocka_run_group_tests_name("kern_golden", tests, NULL, NULL);
}

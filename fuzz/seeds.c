/*
 * fuzz/seeds — writes a small seed corpus for the fuzz targets with our own
 * writer: `seeds DIR`.  Seeds are valid files that exercise every value
 * type, nested arrays, several tensor types and a custom alignment, plus
 * hand-made F32 files around the row-size overflow (one valid, one not).
 */
#include <stdio.h>
#include <string.h>

#include "gguf/gguf.h"
#include "model/synth.h"

static int seed_file(const char *dir, int k)
{
	char path[1024];
	struct gguf_writer *w;
	struct dm_err e;
	const char *strs[] = { "<s>", "\xe2\x96\x81the", "a b" };
	const float fl[] = { 1.0f, -0.5f, 3.0f };
	const int64_t ne[2] = { 32, 2 };
	uint8_t buf[256];
	int rc = 0;

	snprintf(path, sizeof path, "%s/seed%d.gguf", dir, k);
	if (gguf_writer_open(&w, path, &e))
		return fprintf(stderr, "%s\n", e.msg), 1;
	if (k == 1)
		rc |= gguf_writer_set_alignment(w, 64, &e);
	rc |= gguf_writer_add_str(w, "general.architecture", "llama", &e);
	rc |= gguf_writer_add_u32(w, "llama.block_count", 2, &e);
	rc |= gguf_writer_add_f32(w, "llama.rope.freq_base", 10000.0f, &e);
	rc |= gguf_writer_add_bool(w, "b", true, &e);
	rc |= gguf_writer_add_i64(w, "i64", -7, &e);
	rc |= gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", strs, NULL, 3, &e);
	rc |= gguf_writer_add_arr(w, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, fl, 3, &e);
	if (k < 2) {
		rc |= gguf_writer_add_tensor(w, "a", GGUF_TYPE_F32, 2, ne, &e) < 0;
		rc |= gguf_writer_add_tensor(w, "q", k ? GGUF_TYPE_Q4_0 : GGUF_TYPE_Q8_0, 2, ne, &e) < 0;
	}
	rc |= gguf_writer_write_header(w, &e);
	memset(buf, 0x3c, sizeof buf);
	if (k < 2) {
		rc |= gguf_writer_write(w, buf, 256, &e);
		rc |= gguf_writer_write(w, buf, k ? 36 : 68, &e);
	}
	rc |= gguf_writer_close(w, &e);
	if (rc)
		fprintf(stderr, "seed %d: %s\n", k, e.msg);
	return rc != 0;
}

/* A model of each architecture synth writes, as small as it gets (Q8_0
 * matrices, 32-wide), for the binding's fuzz target. */
static int seed_models(const char *dir)
{
	static const char *const archs[] = { "llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3" };
	int rc = 0;
	for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++) {
		struct synth_opts o = { .type = GGUF_TYPE_Q8_0, .seed = 1, .arch = archs[i] };
		struct dm_err e;
		char path[1024];
		o.shape = (struct synth_shape){ "fuzz", 32, 2, 2, 1, 32, 260, 64 };
		snprintf(path, sizeof path, "%s/model-%s.gguf", dir, archs[i]);
		if (synth_write(&o, path, &e))
			rc |= fprintf(stderr, "seed %s: %s\n", archs[i], e.msg) > 0;
	}
	return rc;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A hand-made file with one F32 tensor of ne0 elements and 4 data bytes:
 * ne0 = 2^62 + 1 once wrapped to a 4-byte tensor (row-size overflow); the
 * fuzzer mutates the neighbours. */
static int seed_raw_f32(const char *dir, int k, uint64_t ne0)
{
	static const char name[] = "output_norm.weight";
	uint8_t b[128] = { 0 };
	size_t n = 0, nl = sizeof name - 1;
	char path[512];
	FILE *f;

	memcpy(b, "GGUF", 4), n = 4;
	put_u32(b + n, 3), n += 4;
	put_u64(b + n, 1), n += 8; /* tensors */
	put_u64(b + n, 0), n += 8; /* keys */
	put_u64(b + n, nl), n += 8;
	memcpy(b + n, name, nl), n += nl;
	put_u32(b + n, 1), n += 4;
	put_u64(b + n, ne0), n += 8;
	put_u32(b + n, GGUF_TYPE_F32), n += 4;
	put_u64(b + n, 0), n += 8;
	n = (n + 31) / 32 * 32 + 4; /* aligned data section, 4 bytes of data */
	snprintf(path, sizeof path, "%s/seed%d.gguf", dir, k);
	if (!(f = fopen(path, "wb")) || fwrite(b, 1, n, f) != n) {
		fprintf(stderr, "seed %d: cannot write %s\n", k, path);
		if (f)
			fclose(f);
		return 1;
	}
	return fclose(f) != 0;
}

int main(int argc, char **argv)
{
	int rc = 0;
	if (argc != 2)
		return fprintf(stderr, "usage: seeds DIR\n"), 2;
	for (int k = 0; k < 3; k++)
		rc |= seed_file(argv[1], k);
	rc |= seed_models(argv[1]);
	rc |= seed_raw_f32(argv[1], 3, 1);
	rc |= seed_raw_f32(argv[1], 4, ((uint64_t)1 << 62) + 1);
	return rc;
}

/*
 * tests/tok — tokenizers: hand-made vocabularies written by our GGUF writer
 * with tokenizations derived by hand, every pre-tokenizer, special tokens,
 * round trips on random UTF-8, the streaming decoder, the CLI, and the
 * golden vectors of ../shared/golden (made by llama.cpp) when present.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "base/utf8.h"
#include "gguf/gguf.h"
#include "tok/tok.h"
#include "tok/tok_int.h"
#include "ttok.h"
#include "tutil.h"

#define WS "\xe2\x96\x81" /* U+2581, SentencePiece's space */
#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- fixtures ---------------------------------------------------------- */

static struct tok_vocab *load_path(const char *path)
{
	struct gguf_file *g;
	struct tok_vocab *v;
	struct dm_err e;
	if (gguf_open(&g, path, &e)) {
		print_error("%s\n", e.msg);
		return NULL;
	}
	if (tok_load(&v, g, &e)) {
		print_error("%s\n", e.msg);
		v = NULL;
	}
	gguf_close(g);
	return v;
}

/* Hand-made SentencePiece vocabulary (ids in comments are used below). */
static const char *const spm_tokens[] = {
	"<unk>", "<s>", "</s>",            /* 0 1 2 */
	/* 3 .. 258: <0x00> .. <0xFF> */
};
struct spm_extra {
	const char *text;
	float score;
	int32_t type;
};
static const struct spm_extra spm_extras[] = {
	{ WS, -1.0f, 1 },             /* 259 */
	{ "a", -2.0f, 1 },            /* 260 */
	{ "b", -3.0f, 1 },            /* 261 */
	{ "c", -4.0f, 1 },            /* 262 */
	{ WS "a", -5.0f, 1 },         /* 263 */
	{ "ab", -6.0f, 1 },           /* 264 */
	{ WS "ab", -7.0f, 1 },        /* 265 */
	{ "bc", -0.5f, 1 },           /* 266 */
	{ WS "b", -8.0f, 1 },         /* 267 */
	{ WS WS, -9.0f, 1 },          /* 268 */
	{ "\xc3\xa9", -10.0f, 1 },    /* 269: é */
	{ "\xe4\xb8\xad", -11.0f, 1 }, /* 270: 中 */
	{ "<|user|>", 0.0f, 4 },      /* 271: user-defined */
	{ "<|end|>", 0.0f, 3 },       /* 272: control */
	{ "x", -12.0f, 5 },           /* 273: unused */
};
#define B(c) (3 + (c)) /* SPM byte token */

/* Writes the hand SPM vocab; extra_kv adds keys (may be NULL). */
static const char *write_spm(const char *name, void (*extra_kv)(struct gguf_writer *))
{
	const char *path = tu_tmp_path(name);
	const size_t n = 3 + 256 + N_ELEMS(spm_extras);
	char **toks = calloc(n, sizeof *toks);
	float *scores = calloc(n, sizeof *scores);
	int32_t *types = calloc(n, sizeof *types);
	struct gguf_writer *w;
	struct dm_err e;
	size_t k = 0;

	assert_non_null(toks);
	for (size_t i = 0; i < 3; i++, k++) {
		toks[k] = strdup(spm_tokens[i]);
		types[k] = i == 0 ? 2 : 3;
	}
	for (int b = 0; b < 256; b++, k++) {
		char buf[8];
		snprintf(buf, sizeof buf, "<0x%02X>", b);
		toks[k] = strdup(buf);
		types[k] = 6;
	}
	for (size_t i = 0; i < N_ELEMS(spm_extras); i++, k++) {
		toks[k] = strdup(spm_extras[i].text);
		scores[k] = spm_extras[i].score;
		types[k] = spm_extras[i].type;
	}
	assert_int_equal(gguf_writer_open(&w, path, &e), 0);
	assert_int_equal(gguf_writer_add_str(w, "general.architecture", "llama", &e), 0);
	assert_int_equal(gguf_writer_add_str(w, "tokenizer.ggml.model", "llama", &e), 0);
	assert_int_equal(gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks,
						 NULL, n, &e), 0);
	assert_int_equal(gguf_writer_add_arr(w, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, scores, n, &e), 0);
	assert_int_equal(gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, types, n, &e), 0);
	assert_int_equal(gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 1, &e), 0);
	assert_int_equal(gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 2, &e), 0);
	assert_int_equal(gguf_writer_add_u32(w, "tokenizer.ggml.padding_token_id", 0xFFFFFFFFu, &e), 0);
	if (extra_kv)
		extra_kv(w);
	assert_int_equal(gguf_writer_write_header(w, &e), 0);
	assert_int_equal(gguf_writer_close(w, &e), 0);
	for (size_t i = 0; i < n; i++)
		free(toks[i]);
	free(toks);
	free(scores);
	free(types);
	return path;
}

/* Hand-made byte-level BPE vocabulary: ids 0..255 are the GPT-2 alphabet
 * characters of bytes 0..255 (so a byte's id is the byte), then the merge
 * results below, then two special tokens. */
static const char *const bpe_merges[] = {
	"\xc4\xa0 a",             /* r0: Ġa   -> 256 */
	"a b",                    /* r1: ab   -> 257 */
	"\xc4\xa0" "a b",         /* r2: Ġab  -> 258 */
	"1 2",                    /* r3: 12   -> 259 */
	"12 3",                   /* r4: 123  -> 260 */
	"3 4",                    /* r5: 34   -> 261 */
	"\xc4\x8a \xc4\x8a",      /* r6: ĊĊ   -> 262 */
	"\xc4\xa0 \xc4\xa0",      /* r7: ĠĠ   -> 263 */
};
static const char *const bpe_merged[] = {
	"\xc4\xa0" "a", "ab", "\xc4\xa0" "ab", "12", "123", "34", "\xc4\x8a\xc4\x8a", "\xc4\xa0\xc4\xa0",
};
#define BPE_EOT 264  /* <|endoftext|>, control */
#define BPE_USER 265 /* <|user|>, user-defined */

static const char *bpe_pre;    /* tokenizer.ggml.pre for write_bpe, NULL: none */
static const char *write_bpe(const char *name)
{
	const char *path = tu_tmp_path(name);
	const size_t n = 256 + N_ELEMS(bpe_merged) + 2;
	char **toks = calloc(n, sizeof *toks);
	int32_t *types = calloc(n, sizeof *types);
	struct gguf_writer *w;
	struct dm_err e;
	uint32_t next = 256;
	size_t k = 0;

	assert_non_null(toks);
	for (int b = 0; b < 256; b++, k++) {
		uint32_t cp = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE
				      ? (uint32_t)b : next++;
		uint8_t u[5] = { 0 };
		dm_utf8_encode(cp, u);
		toks[k] = strdup((const char *)u);
		types[k] = 1;
	}
	for (size_t i = 0; i < N_ELEMS(bpe_merged); i++, k++) {
		toks[k] = strdup(bpe_merged[i]);
		types[k] = 1;
	}
	toks[k] = strdup("<|endoftext|>");
	types[k++] = 3;
	toks[k] = strdup("<|user|>");
	types[k++] = 4;
	assert_int_equal(gguf_writer_open(&w, path, &e), 0);
	assert_int_equal(gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2", &e), 0);
	if (bpe_pre)
		assert_int_equal(gguf_writer_add_str(w, "tokenizer.ggml.pre", bpe_pre, &e), 0);
	assert_int_equal(gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks,
						 NULL, n, &e), 0);
	assert_int_equal(gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, types, n, &e), 0);
	assert_int_equal(gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", bpe_merges, NULL,
						 N_ELEMS(bpe_merges), &e), 0);
	assert_int_equal(gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", BPE_EOT, &e), 0);
	assert_int_equal(gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", BPE_EOT, &e), 0);
	assert_int_equal(gguf_writer_write_header(w, &e), 0);
	assert_int_equal(gguf_writer_close(w, &e), 0);
	for (size_t i = 0; i < n; i++)
		free(toks[i]);
	free(toks);
	free(types);
	return path;
}

static struct tok_vocab *bpe_with_pre(const char *pre)
{
	char name[64];
	snprintf(name, sizeof name, "bpe-%s.gguf", pre ? pre : "none");
	bpe_pre = pre;
	return load_path(write_bpe(name));
}


static void check_decode(const struct tok_vocab *v, const int32_t *ids, size_t n, unsigned flags,
			 const char *want)
{
	char *out;
	size_t len;
	struct dm_err e;
	assert_int_equal(tok_decode(v, ids, n, flags, &out, &len, &e), 0);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(out, want, len);
	free(out);
}

/* ---- SentencePiece, hand-made -------------------------------------------- */

static void test_spm_hand(void **state)
{
	struct tok_vocab *v = load_path(write_spm("spm.gguf", NULL));
	(void)state;
	assert_non_null(v);
	assert_int_equal(tok_kind(v), TOK_KIND_SPM);
	assert_int_equal(tok_n_tokens(v), 3 + 256 + (int)N_ELEMS(spm_extras));
	assert_int_equal(tok_bos(v), 1);
	assert_int_equal(tok_eos(v), 2);
	assert_int_equal(tok_unk(v), 0);
	assert_int_equal(tok_pad(v), -1); /* 0xFFFFFFFF means none */
	assert_true(tok_add_bos(v));
	assert_false(tok_add_eos(v));
	assert_true(tok_add_space_prefix(v));
	assert_true(tok_is_eog(v, 2));
	assert_false(tok_is_eog(v, 1));
	assert_true(tok_vocab_bytes(v) > 10000);

	/* empty: nothing, or just BOS */
	NO_IDS(v, "", 0);
	IDS(v, "", TOK_ADD_SPECIAL, 1);
	/* "▁a" is one token */
	IDS(v, "a", 0, 263);
	IDS(v, "a", TOK_ADD_SPECIAL, 1, 263);
	/* ▁a (-5) merges before ab (-6), then ▁a+b = ▁ab (-7) */
	IDS(v, "ab", 0, 265);
	/* bc (-0.5) wins over ▁a (-5) and ab (-6); ▁abc is no token */
	IDS(v, "abc", 0, 263, 266);
	/* spaces become ▁ inside the text */
	IDS(v, "b a", 0, 267, 263);
	/* leading spaces: ▁▁▁a -> ▁a first (-5), then the leftmost ▁▁ (-9) */
	IDS(v, "  a", 0, 268, 263);
	/* trailing space */
	IDS(v, "a ", 0, 263, 259);
	/* multiple spaces alone */
	IDS(v, "   ", 0, 268, 268);
	/* newline, tab and digits fall back to bytes */
	IDS(v, "\n", 0, 259, B('\n'));
	IDS(v, "a\n\tb", 0, 263, B('\n'), B('\t'), 261);
	IDS(v, "12", 0, 259, B('1'), B('2'));
	/* a 2-byte and a 3-byte character that are tokens */
	IDS(v, "\xc3\xa9\xe4\xb8\xad", 0, 259, 269, 270);
	/* CJK, emoji and a combining mark that are not: their bytes */
	IDS(v, "\xe6\x97\xa5", 0, 259, B(0xE6), B(0x97), B(0xA5));
	IDS(v, "\xf0\x9f\x98\x80", 0, 259, B(0xF0), B(0x9F), B(0x98), B(0x80));
	IDS(v, "e\xcc\x81", 0, 259, B('e'), B(0xCC), B(0x81));
	/* the unused token x is still a piece of text */
	IDS(v, "x", 0, 259, 273);
	/* invalid UTF-8 is kept byte for byte, each byte alone */
	IDS(v, "\xff" "a", 0, 259, B(0xFF), 260);
	IDS(v, "\xe2 a", 0, 259, B(0xE2), 263);
	IDS(v, "a\x80", 0, 263, B(0x80));
	/* user-defined tokens are always cut out; the text after one gets a
	 * space prefix again */
	IDS(v, "a<|user|>b", 0, 263, 271, 267);
	/* control tokens only with TOK_PARSE_SPECIAL */
	IDS(v, "<|end|>", 0, 259, B('<'), B('|'), B('e'), B('n'), B('d'), B('|'), B('>'));
	IDS(v, "<|end|>", TOK_PARSE_SPECIAL, 272);
	IDS(v, "<s>a", TOK_PARSE_SPECIAL | TOK_ADD_SPECIAL, 1, 1, 263);
	IDS(v, "a</s>", TOK_PARSE_SPECIAL, 263, 2);
	IDS(v, "<unk>", TOK_PARSE_SPECIAL, 0);
	tok_free(v);
}

static void add_eos_kv(struct gguf_writer *w)
{
	struct dm_err e;
	assert_int_equal(gguf_writer_add_bool(w, "tokenizer.ggml.add_eos_token", true, &e), 0);
	assert_int_equal(gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", false, &e), 0);
	assert_int_equal(gguf_writer_add_bool(w, "tokenizer.ggml.add_space_prefix", false, &e), 0);
}

static void test_spm_flags(void **state)
{
	struct tok_vocab *v = load_path(write_spm("spm-flags.gguf", add_eos_kv));
	(void)state;
	assert_non_null(v);
	assert_false(tok_add_bos(v));
	assert_true(tok_add_eos(v));
	assert_false(tok_add_space_prefix(v));
	IDS(v, "a", TOK_ADD_SPECIAL, 260, 2);
	IDS(v, "a", 0, 260);
	IDS(v, " a", 0, 263);
	tok_free(v);
}

static void phi3_kv(struct gguf_writer *w)
{
	struct dm_err e;
	assert_int_equal(gguf_writer_add_str(w, "general.name", "Phi-3-mini-4k-instruct", &e), 0);
}

/* Phi-3 files: special tokens eat the whitespace after them (RSTRIP),
 * except <s>. */
static void test_spm_rstrip(void **state)
{
	struct tok_vocab *v = load_path(write_spm("spm-phi3.gguf", phi3_kv));
	(void)state;
	assert_non_null(v);
	assert_true(tok_attr(v, 272) & TOK_ATTR_RSTRIP);
	assert_true(tok_attr(v, 271) & TOK_ATTR_RSTRIP);
	assert_false(tok_attr(v, 1) & TOK_ATTR_RSTRIP);
	IDS(v, "<|end|>  a", TOK_PARSE_SPECIAL, 272, 263);
	IDS(v, "<|user|> \n a", 0, 271, 263);
	IDS(v, "<s>  a", TOK_PARSE_SPECIAL, 1, 268, 263);
	tok_free(v);
	/* without the name: the spaces stay */
	v = load_path(write_spm("spm-nophi.gguf", NULL));
	IDS(v, "<|end|>  a", TOK_PARSE_SPECIAL, 272, 268, 263);
	tok_free(v);
}

static void test_spm_decode(void **state)
{
	struct tok_vocab *v = load_path(write_spm("spm-dec.gguf", NULL));
	const char *s;
	size_t n;
	struct dm_err e;
	(void)state;
	assert_non_null(v);
	assert_int_equal(tok_piece(v, 263, 0, &s, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(s, " a", 2);
	assert_int_equal(tok_piece(v, B(0x41), 0, &s, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_int_equal(s[0], 'A');
	assert_int_equal(tok_piece(v, 1, 0, &s, &n, &e), 0);
	assert_int_equal(n, 0); /* control: nothing unless asked */
	assert_int_equal(tok_piece(v, 1, TOK_DEC_SPECIAL, &s, &n, &e), 0);
	assert_int_equal(n, 3);
	assert_int_equal(tok_piece(v, 273, 0, &s, &n, &e), 0);
	assert_int_equal(n, 1); /* unused: still text */
	assert_int_equal(s[0], 'x');
	assert_int_equal(tok_piece(v, 99999, 0, &s, &n, &e), DM_ERANGE);
	assert_int_equal(tok_piece(v, -1, 0, &s, &n, &e), DM_ERANGE);
	assert_int_equal(tok_text(v, 263, &s, &n, &e), 0);
	assert_int_equal(n, 4);

	{
		int32_t a[] = { 1, 263, 271, 267 };
		check_decode(v, a, 4, TOK_DEC_STRIP_SPACE, "a<|user|>b");
		check_decode(v, a, 4, 0, " a<|user|> b");
		check_decode(v, a, 4, TOK_DEC_SPECIAL | TOK_DEC_STRIP_SPACE, "<s>a<|user|>b");
	}
	{
		int32_t a[] = { 259, B(0xE6), B(0x97), B(0xA5), 263 };
		check_decode(v, a, 5, TOK_DEC_STRIP_SPACE, "\xe6\x97\xa5 a");
	}
	{
		int32_t bad[] = { 263, 5000 };
		char *out;
		size_t len;
		assert_int_equal(tok_decode(v, bad, 2, 0, &out, &len, &e), DM_ERANGE);
	}
	check_decode(v, NULL, 0, 0, "");
	tok_free(v);
}

/* ---- byte-level BPE, hand-made ------------------------------------------- */

static void test_bpe_hand(void **state)
{
	struct tok_vocab *v = bpe_with_pre("gpt-2");
	(void)state;
	assert_non_null(v);
	assert_int_equal(tok_kind(v), TOK_KIND_BPE);
	assert_string_equal(tok_pre_name(v), "gpt-2");
	assert_int_equal(tok_bos(v), BPE_EOT);
	assert_false(tok_add_bos(v));
	assert_false(tok_add_space_prefix(v));
	assert_true(tok_is_eog(v, BPE_EOT));
	/* <|endoftext|> is found as EOT by its text */
	assert_int_equal(tok_eot(v), BPE_EOT);

	NO_IDS(v, "", 0);
	NO_IDS(v, "", TOK_ADD_SPECIAL); /* gpt-2 adds no BOS */
	/* words "ab" and " ab": a+b (r1); Ġ+a (r0) then Ġa+b (r2) */
	IDS(v, "ab ab", 0, 257, 258);
	/* a double space: one space alone, the other joins the word */
	IDS(v, "ab  ab", 0, 257, ' ', 258);
	/* trailing spaces are one word: ĠĠ (leftmost) then Ġ */
	IDS(v, "ab   ", 0, 257, 263, ' ');
	/* newlines: "\n" "\n" are separate words for GPT-2 (no ĊĊ merge) */
	IDS(v, "a\n\nb", 0, 'a', '\n', '\n', 'b');
	IDS(v, "\n\n", 0, 262);
	IDS(v, "\t", 0, '\t');
	/* digits: " ?\p{N}+" is one word; 1+2 (r3) before 3+4 (r5) */
	IDS(v, "3412", 0, 261, 259);
	IDS(v, "1234", 0, 260, '4');
	/* unicode: the bytes' alphabet characters */
	IDS(v, "\xc3\xa9", 0, 0xC3, 0xA9);
	IDS(v, "\xe4\xb8\xad", 0, 0xE4, 0xB8, 0xAD);
	IDS(v, "\xf0\x9f\x98\x80", 0, 0xF0, 0x9F, 0x98, 0x80);
	IDS(v, "e\xcc\x81", 0, 'e', 0xCC, 0x81);
	/* invalid UTF-8 bytes are words of their own */
	IDS(v, "a\xff" "b", 0, 'a', 0xFF, 'b');
	/* special tokens */
	IDS(v, "a<|endoftext|>b", TOK_PARSE_SPECIAL, 'a', BPE_EOT, 'b');
	IDS(v, "<|endoftext|>", 0, '<', '|', 'e', 'n', 'd', 'o', 'f', 't', 'e', 'x', 't', '|', '>');
	IDS(v, "a<|user|>b", 0, 'a', BPE_USER, 'b');
	tok_free(v);
}

/* The digit rules of each pre-tokenizer, seen through the merges. */
static void test_bpe_digits_by_pre(void **state)
{
	static const struct {
		const char *pre;
		int32_t ids[4];
		size_t n;
	} cases[] = {
		{ NULL, { 261, '1', '2' }, 3 },      /* missing = default: "341" "2" */
		{ "default", { 261, '1', '2' }, 3 },
		{ "gpt-2", { 261, 259 }, 2 },        /* "3412" one word */
		{ "phi-2", { 261, 259 }, 2 },
		{ "mpt", { 261, 259 }, 2 },
		{ "olmo", { 261, 259 }, 2 },
		{ "llama-bpe", { 261, '1', '2' }, 3 }, /* "341" "2" */
		{ "llama3", { 261, '1', '2' }, 3 },
		{ "deepseek-v3", { 261, '1', '2' }, 3 },
		{ "qwen2", { '3', '4', '1', '2' }, 4 }, /* single digits */
		{ "deepseek-r1-qwen", { '3', '4', '1', '2' }, 4 },
		{ "deepseek-coder", { '3', '4', '1', '2' }, 4 },
		{ "starcoder", { '3', '4', '1', '2' }, 4 },
		{ "refact", { '3', '4', '1', '2' }, 4 },
		{ "command-r", { '3', '4', '1', '2' }, 4 },
		{ "smollm", { '3', '4', '1', '2' }, 4 },
		{ "tekken", { '3', '4', '1', '2' }, 4 },
		{ "deepseek-llm", { 261, 259 }, 2 },  /* \p{N}+ */
		{ "falcon", { 261, '1', '2' }, 3 },   /* "341" then "2" */
		{ "gpt-4o", { 261, '1', '2' }, 3 },
	};
	(void)state;
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		struct tok_vocab *v = bpe_with_pre(cases[i].pre);
		int32_t *ids;
		size_t n;
		struct dm_err e;
		assert_non_null(v);
		assert_int_equal(tok_encode(v, "3412", 4, 0, &ids, &n, &e), 0);
		if (n != cases[i].n || memcmp(ids, cases[i].ids, n * sizeof *ids)) {
			print_error("pre %s: got", cases[i].pre ? cases[i].pre : "(none)");
			for (size_t k = 0; k < n; k++)
				print_error(" %d", ids[k]);
			print_error("\n");
			fail();
		}
		free(ids);
		tok_free(v);
	}
}

/* Llama 3 and Tekken take a word that is a token whole (ignore_merges),
 * llama3 adds BOS, and newlines group differently from GPT-2. */
static void test_bpe_llama3(void **state)
{
	struct tok_vocab *v = bpe_with_pre("llama-bpe");
	(void)state;
	assert_non_null(v);
	assert_string_equal(tok_pre_name(v), "llama3");
	assert_true(tok_add_bos(v));
	IDS(v, "ab", TOK_ADD_SPECIAL, BPE_EOT, 257);
	IDS(v, "a\n\nb", 0, 'a', 262, 'b');
	IDS(v, "ab  ab", 0, 257, ' ', 258);
	tok_free(v);
}

static void test_bpe_unknown_pre(void **state)
{
	struct gguf_file *g;
	struct tok_vocab *v;
	struct dm_err e;
	(void)state;
	bpe_pre = "no-such-pre";
	assert_int_equal(gguf_open(&g, write_bpe("bpe-bad.gguf"), &e), 0);
	assert_int_equal(tok_load(&v, g, &e), DM_EUNSUPPORTED);
	assert_null(v);
	assert_non_null(strstr(e.msg, "'no-such-pre'"));
	gguf_close(g);
}

/* Every pre-tokenizer compiles, covers its input exactly, and splits a few
 * telling inputs as its published regexes say. */
static void split_words(const char *pre, const char *s, char *out, size_t cap)
{
	struct tok_vocab v;
	struct tok_pre_scratch sc;
	struct dm_err e;
	size_t o = 0, n = strlen(s), covered = 0;

	memset(&v, 0, sizeof v);
	memset(&sc, 0, sizeof sc);
	v.pre = tok_pre_find(pre);
	assert_non_null(v.pre);
	assert_int_equal(tok_pre_compile(&v, &e), 0);
	assert_int_equal(tok_pre_split(&v, &sc, s, n, &e), 0);
	for (size_t i = 0; i < sc.out.n; i++) {
		assert_int_equal(sc.out.v[i].off, covered);
		assert_true(sc.out.v[i].len > 0);
		covered += sc.out.v[i].len;
		o += (size_t)snprintf(out + o, cap - o, "%s%.*s", i ? "|" : "", (int)sc.out.v[i].len,
				      s + sc.out.v[i].off);
		assert_true(o < cap);
	}
	assert_int_equal(covered, n);
	tok_pre_scratch_free(&sc);
	for (int i = 0; i < v.n_re; i++)
		pcre2_code_free(v.re[i]);
}

static void test_pre_splits(void **state)
{
	static const struct {
		const char *pre, *in, *want;
	} cases[] = {
		{ "gpt-2", "Hello world's 1234 !!  x\n\n", "Hello| world|'s| 1234| !!| | x|\n\n" },
		{ "gpt-2", "\xc3\xa9t\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87", "\xc3\xa9t\xc3\xa9| \xe4\xb8\xad\xe6\x96\x87" },
		{ "llama3", "I'M 1234567 ok\n\n  x", "I|'M| |123|456|7| ok|\n\n| | x" },
		{ "llama3", "a\xcc\x81" "b", "a|\xcc\x81" "b" }, /* a mark is not \p{L} */
		{ "qwen2", "x123", "x|1|2|3" },
		{ "default", "a+b 12345", "a|+|b| |123|45" },
		{ "falcon", "a+b 12345", "a|+|b| |123|45" },
		{ "starcoder", "x 12", "x| |1|2" },
		{ "deepseek-coder", "ab12,\n\xe4\xb8\xad", "ab|1|2|,|\n|\xe4\xb8\xad" },
		{ "deepseek-llm", "Hello, \xe4\xb8\xad\xe6\x96\x87 42", "Hello|,| |\xe4\xb8\xad\xe6\x96\x87| |42" },
		{ "deepseek-v3", "12345 \xe3\x81\x82\xe4\xb8\xad", "123|45| |\xe3\x81\x82\xe4\xb8\xad" },
		{ "tekken", "HelloWorld ABCdef", "Hello|World| ABCdef" },
		{ "gpt-4o", "HelloWorld's", "Hello|World's" },
		{ "bloom", "hi, there", "hi|,| there" },
		{ "viking", "x12 y", "x|1|2| y" },
	};
	char buf[512];
	size_t n;
	const struct tok_pre_def *defs = tok_pre_all(&n);
	(void)state;

	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		split_words(cases[i].pre, cases[i].in, buf, sizeof buf);
		if (strcmp(buf, cases[i].want))
			print_error("pre %s: '%s' -> '%s', want '%s'\n", cases[i].pre, cases[i].in, buf,
				    cases[i].want);
		assert_string_equal(buf, cases[i].want);
	}
	/* every definition and alias resolves and compiles */
	for (size_t i = 0; i < n; i++) {
		assert_ptr_equal(tok_pre_find(defs[i].name), &defs[i]);
		for (const char *const *a = defs[i].aliases; a && *a; a++)
			assert_ptr_equal(tok_pre_find(*a), &defs[i]);
		split_words(defs[i].name, "Hello, World! 12345 \xe4\xb8\xad\n\t  x", buf, sizeof buf);
	}
	assert_null(tok_pre_find("nope"));
	assert_ptr_equal(tok_pre_find(""), tok_pre_find("default"));
}

/* ---- round trips on random text ------------------------------------------ */

/* Random UTF-8 text of up to max_cp code points drawn from ASCII (with
 * spaces, tabs, newlines), Latin-1, combining marks, CJK and emoji; with
 * invalid=true some raw bytes too. */
static size_t random_text(struct dm_rng *r, char *out, size_t max_cp, bool invalid)
{
	size_t n = dm_rng_u64(r) % (max_cp + 1), o = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t k = dm_rng_u64(r) % 20;
		uint32_t cp;
		if (k < 6)
			cp = 0x20 + (uint32_t)(dm_rng_u64(r) % 95);
		else if (k < 9)
			cp = " \t\n  \r"[dm_rng_u64(r) % 6];
		else if (k < 11)
			cp = 0xA0 + (uint32_t)(dm_rng_u64(r) % 0x60);
		else if (k < 13)
			cp = 0x300 + (uint32_t)(dm_rng_u64(r) % 0x70);
		else if (k < 15)
			cp = 0x4E00 + (uint32_t)(dm_rng_u64(r) % 0x5000);
		else if (k < 17)
			cp = 0x1F300 + (uint32_t)(dm_rng_u64(r) % 0x300);
		else if (k < 18)
			cp = 'a' + (uint32_t)(dm_rng_u64(r) % 3);
		else if (k < 19 || !invalid)
			cp = 1 + (uint32_t)(dm_rng_u64(r) % 0x10FFFF);
		else {
			out[o++] = (char)(0x80 + dm_rng_u64(r) % 0x80);
			continue;
		}
		if (cp >= 0xD800 && cp <= 0xDFFF)
			cp = 0xFFFD;
		o += dm_utf8_encode(cp, (uint8_t *)out + o);
	}
	return o;
}

static void roundtrip(const struct tok_vocab *v, int n_texts, bool invalid, uint64_t seed)
{
	struct dm_rng r;
	char text[800];
	dm_rng_seed(&r, seed);
	for (int t = 0; t < n_texts; t++) {
		size_t len = random_text(&r, text, 120, invalid), n, olen;
		int32_t *ids;
		char *out;
		struct dm_err e;
		assert_int_equal(tok_encode(v, text, len, TOK_ADD_SPECIAL, &ids, &n, &e), 0);
		assert_int_equal(tok_decode(v, ids, n, TOK_DEC_STRIP_SPACE, &out, &olen, &e), 0);
		if (olen != len || memcmp(out, text, len)) {
			print_error("round trip %d failed: '%.*s' -> '%.*s'\n", t, (int)len, text,
				    (int)olen, out);
			fail();
		}
		free(ids);
		free(out);
	}
}

static void test_roundtrip_hand(void **state)
{
	struct tok_vocab *s = load_path(write_spm("spm-rt.gguf", NULL));
	struct tok_vocab *b = bpe_with_pre("llama3");
	(void)state;
	assert_non_null(s);
	assert_non_null(b);
	roundtrip(s, 300, false, 1);
	roundtrip(s, 300, true, 2);
	roundtrip(b, 300, false, 3);
	roundtrip(b, 300, true, 4);
	tok_free(s);
	tok_free(b);
}

/* ---- streaming decoder ----------------------------------------------------- */

/* Pushes ids one at a time; checks each push returns want[i]. */
static void stream(const struct tok_vocab *v, unsigned flags, const int32_t *ids, size_t n,
		   const char *const *want, const char *want_flush)
{
	struct tok_decoder d;
	struct dm_err e;
	const char *out;
	size_t len;
	tok_decoder_init(&d, v, flags);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(tok_decoder_push(&d, ids[i], &out, &len, &e), 0);
		assert_int_equal(len, strlen(want[i]));
		assert_memory_equal(out, want[i], len);
	}
	assert_int_equal(tok_decoder_flush(&d, &out, &len, &e), 0);
	assert_int_equal(len, strlen(want_flush));
	assert_memory_equal(out, want_flush, len);
	tok_decoder_free(&d);
}

static void test_stream_decoder(void **state)
{
	struct tok_vocab *v = load_path(write_spm("spm-stream.gguf", NULL));
	(void)state;
	assert_non_null(v);
	{ /* "€" (E2 82 AC) split over three byte tokens */
		int32_t ids[] = { 263, B(0xE2), B(0x82), B(0xAC), 261 };
		const char *want[] = { " a", "", "", "\xe2\x82\xac", "b" };
		stream(v, 0, ids, 5, want, "");
	}
	{ /* the leading-space rule */
		int32_t ids[] = { 1, 263, 271, 267 };
		const char *want[] = { "", "a", "<|user|>", "b" };
		stream(v, TOK_DEC_STRIP_SPACE, ids, 4, want, "");
	}
	{ /* a 4-byte emoji, then an interruption: held bytes become U+FFFD */
		int32_t ids[] = { B(0xF0), B(0x9F), B(0x98), B(0x80), B(0xF0), B(0x9F), 260 };
		const char *want[] = { "", "", "", "\xf0\x9f\x98\x80", "", "", "\xef\xbf\xbd\xef\xbf\xbd" "a" };
		stream(v, 0, ids, 7, want, "");
	}
	{ /* stray bytes and a truncated end */
		int32_t ids[] = { B(0xFF), B(0x80), B(0xE4), B(0xB8) };
		const char *want[] = { "\xef\xbf\xbd", "\xef\xbf\xbd", "", "" };
		stream(v, 0, ids, 4, want, "\xef\xbf\xbd");
	}
	{ /* a bad id is an error and leaves the decoder usable */
		struct tok_decoder d;
		struct dm_err e;
		const char *out;
		size_t len;
		tok_decoder_init(&d, v, 0);
		assert_int_equal(tok_decoder_push(&d, -5, &out, &len, &e), DM_ERANGE);
		assert_int_equal(tok_decoder_push(&d, 260, &out, &len, &e), 0);
		assert_int_equal(len, 1);
		tok_decoder_free(&d);
		tok_decoder_free(NULL);
	}
	tok_free(v);
}

/* The concatenated stream equals tok_decode for valid text. */
static void stream_equals_decode(const struct tok_vocab *v, uint64_t seed)
{
	struct dm_rng r;
	char text[800];
	dm_rng_seed(&r, seed);
	for (int t = 0; t < 200; t++) {
		size_t len = random_text(&r, text, 100, false), n, olen, slen = 0;
		int32_t *ids;
		char *out, *cat = malloc(4 * len + 16);
		struct tok_decoder d;
		struct dm_err e;
		const char *p;
		size_t k;
		assert_int_equal(tok_encode(v, text, len, TOK_ADD_SPECIAL, &ids, &n, &e), 0);
		assert_int_equal(tok_decode(v, ids, n, TOK_DEC_STRIP_SPACE, &out, &olen, &e), 0);
		tok_decoder_init(&d, v, TOK_DEC_STRIP_SPACE);
		for (size_t i = 0; i < n; i++) {
			assert_int_equal(tok_decoder_push(&d, ids[i], &p, &k, &e), 0);
			assert_true(dm_utf8_valid((const uint8_t *)p, k));
			memcpy(cat + slen, p, k);
			slen += k;
		}
		assert_int_equal(tok_decoder_flush(&d, &p, &k, &e), 0);
		memcpy(cat + slen, p, k);
		slen += k;
		assert_int_equal(slen, olen);
		assert_memory_equal(cat, out, olen);
		tok_decoder_free(&d);
		free(ids);
		free(out);
		free(cat);
	}
}

static void test_stream_random(void **state)
{
	struct tok_vocab *s = load_path(write_spm("spm-stream2.gguf", NULL));
	struct tok_vocab *b = bpe_with_pre("gpt-2");
	(void)state;
	stream_equals_decode(s, 11);
	stream_equals_decode(b, 12);
	tok_free(s);
	tok_free(b);
}

/* ---- CLI ------------------------------------------------------------------- */

static void test_cli(void **state)
{
	const char *spm = write_spm("cli-spm.gguf", NULL);
	const char *txt = tu_tmp_path("cli-text.txt");
	char *out;
	int st;
	(void)state;
	bpe_pre = "gpt-2";
	const char *bpe = write_bpe("cli-bpe.gguf");

	out = tu_capture(&st, "%s tokenize %s 'ab ab'", tu_dormant(), bpe);
	assert_int_equal(st, 0);
	assert_string_equal(out, "257 258\n");
	free(out);
	out = tu_capture(&st, "%s tokenize %s 'a<|user|>b'", tu_dormant(), spm);
	assert_string_equal(out, "1 263 271 267\n");
	free(out);
	out = tu_capture(&st, "%s tokenize %s --no-bos ''", tu_dormant(), spm);
	assert_string_equal(out, "\n");
	free(out);
	out = tu_capture(&st, "%s tokenize %s --special --no-bos '<|end|>'", tu_dormant(), spm);
	assert_string_equal(out, "272\n");
	free(out);
	out = tu_capture(&st, "%s tokenize %s --pieces 'ab'", tu_dormant(), spm);
	assert_string_equal(out, "1\t<s>\n265\t ab\n");
	free(out);
	/* a file and stdin, byte for byte: the final newline is kept */
	assert_int_equal(tu_write_file(txt, "ab\n", 3), 0);
	out = tu_capture(&st, "%s tokenize %s --no-bos --file %s", tu_dormant(), spm, txt);
	assert_string_equal(out, "265 13\n");
	free(out);
	out = tu_capture(&st, "%s tokenize %s --no-bos - < %s", tu_dormant(), spm, txt);
	assert_string_equal(out, "265 13\n");
	free(out);
	/* detokenize: the exact text, no newline added */
	out = tu_capture(&st, "%s detokenize %s 1 263 271 267", tu_dormant(), spm);
	assert_int_equal(st, 0);
	assert_string_equal(out, "a<|user|>b");
	free(out);
	out = tu_capture(&st, "%s detokenize %s --special '1,265' 2", tu_dormant(), spm);
	assert_string_equal(out, "<s>ab</s>");
	free(out);
	out = tu_capture(&st, "%s detokenize %s 257 258", tu_dormant(), bpe);
	assert_string_equal(out, "ab ab");
	free(out);
	/* errors: a bad id, a missing file, no arguments */
	out = tu_capture(&st, "%s detokenize %s 99999 2>&1", tu_dormant(), spm);
	assert_int_not_equal(st, 0);
	assert_non_null(strstr(out, "out of range"));
	free(out);
	out = tu_capture(&st, "%s tokenize /nonexistent.gguf x 2>&1", tu_dormant());
	assert_int_not_equal(st, 0);
	free(out);
	out = tu_capture(&st, "%s tokenize 2>&1", tu_dormant());
	assert_int_not_equal(st, 0);
	assert_non_null(strstr(out, "usage"));
	free(out);
}

/* ---- golden vectors (llama.cpp) -------------------------------------------- */

static char *golden_path(const char *rel)
{
	static char buf[1024];
	const char *g = tu_golden_dir();
	if (!g)
		return NULL;
	snprintf(buf, sizeof buf, "%s/%s", g, rel);
	return buf;
}

/* Runs one vocab's .inp/.out pairs; returns matches, sets *total. */
static int run_golden_vocab(const char *name, int *total)
{
	char path[1100];
	const char *sep = "\n__ggml_vocab_test__\n";
	size_t n_inp, n_out;
	char *inp, *outs, *p, *line;
	struct tok_vocab *v;
	int ok = 0;

	snprintf(path, sizeof path, "%s", golden_path(name));
	v = load_path(path);
	assert_non_null(v);
	snprintf(path, sizeof path, "%.1024s.inp", golden_path(name));
	inp = tu_read_file(path, &n_inp);
	snprintf(path, sizeof path, "%.1024s.out", golden_path(name));
	outs = tu_read_file(path, &n_out);
	assert_non_null(inp);
	assert_non_null(outs);
	*total = 0;
	p = inp;
	line = outs;
	for (;;) {
		char *end = strstr(p, sep), *nl;
		int32_t *ids;
		size_t n, k = 0;
		struct dm_err e;
		bool same = true;
		if (!end)
			break;
		nl = strchr(line, '\n');
		assert_non_null(nl);
		*nl = 0;
		assert_int_equal(tok_encode(v, p, (size_t)(end - p), 0, &ids, &n, &e), 0);
		for (char *q = line; *q;) {
			char *qe;
			long x = strtol(q, &qe, 10);
			if (qe == q)
				break;
			if (k >= n || ids[k] != x)
				same = false;
			k++;
			q = qe;
		}
		if (k != n)
			same = false;
		if (!same)
			print_error("%s: test %d ('%.*s') differs\n", name, *total, (int)(end - p), p);
		ok += same;
		(*total)++;
		free(ids);
		p = end + strlen(sep);
		line = nl + 1;
	}
	free(inp);
	free(outs);
	tok_free(v);
	return ok;
}

static void test_golden_vocabs(void **state)
{
	static const char *const names[] = {
		"tokenizer/ggml-vocab-llama-spm.gguf",
		"tokenizer/ggml-vocab-gpt-2.gguf",
		"tokenizer/ggml-vocab-bert-bge.gguf", /* WordPiece */
	};
	int all_ok = 1;
	(void)state;
	if (!tu_golden_dir())
		skip();
	for (size_t i = 0; i < N_ELEMS(names); i++) {
		int total, ok = run_golden_vocab(names[i], &total);
		print_message("golden %s: %d/%d exact matches\n", names[i], ok, total);
		assert_true(total > 0);
		if (ok != total)
			all_ok = 0;
	}
	assert_true(all_ok);
}

/* Reads "1 2 3\n" into ids. */
static size_t read_ids(const char *path, int32_t *ids, size_t cap)
{
	size_t n = 0, len;
	char *s = tu_read_file(path, &len), *q = s, *e;
	assert_non_null(s);
	for (long x; (x = strtol(q, &e, 10)), e != q; q = e) {
		assert_true(n < cap);
		ids[n++] = (int32_t)x;
	}
	free(s);
	return n;
}

static void test_golden_stories(void **state)
{
	char path[1024], *prompts, *story, *p;
	size_t n, len, n_want;
	int32_t want[2048], *ids;
	struct tok_vocab *v;
	struct dm_err e;
	int k = 1, ok = 0;
	(void)state;
	if (!tu_golden_dir())
		skip();
	v = load_path(golden_path("stories260K/stories260K.gguf"));
	assert_non_null(v);
	snprintf(path, sizeof path, "%s", golden_path("stories260K/prompts.txt"));
	prompts = tu_read_file(path, &len);
	assert_non_null(prompts);
	for (p = prompts; *p; k++) {
		char *nl = strchr(p, '\n');
		size_t plen = nl ? (size_t)(nl - p) : strlen(p);
		snprintf(path, sizeof path, "%s", golden_path("stories260K/expected/prompt.0.ids"));
		path[strlen(path) - 5] = (char)('0' + k);
		n_want = read_ids(path, want, 2048);
		assert_int_equal(tok_encode(v, p, plen, TOK_ADD_SPECIAL | TOK_PARSE_SPECIAL, &ids, &n, &e), 0);
		ok += n == n_want && !memcmp(ids, want, n * sizeof *ids);
		free(ids);
		p = nl ? nl + 1 : p + plen;
	}
	free(prompts);
	snprintf(path, sizeof path, "%s", golden_path("stories260K/story.txt"));
	story = tu_read_file(path, &len);
	assert_non_null(story);
	if (len && story[len - 1] == '\n')
		len--; /* llama-perplexity drops one final newline */
	n_want = read_ids(golden_path("stories260K/expected/story.ids"), want, 2048);
	assert_int_equal(tok_encode(v, story, len, TOK_ADD_SPECIAL, &ids, &n, &e), 0);
	ok += n == n_want && !memcmp(ids, want, n * sizeof *ids);
	{
		char *back;
		size_t blen;
		assert_int_equal(tok_decode(v, ids, n, TOK_DEC_STRIP_SPACE, &back, &blen, &e), 0);
		assert_int_equal(blen, len);
		assert_memory_equal(back, story, len);
		free(back);
	}
	free(ids);
	free(story);
	tok_free(v);
	print_message("golden stories260K: %d/%d exact matches (4 prompts + story)\n", ok, k);
	assert_int_equal(ok, k);
}

/* Real vocabularies: random round trips, the stream, and SentencePiece's
 * segmented merging against one whole-fragment pass. */
static void test_golden_roundtrip(void **state)
{
	struct tok_vocab *s, *b;
	struct dm_rng r;
	char text[800];
	(void)state;
	if (!tu_golden_dir())
		skip();
	s = load_path(golden_path("tokenizer/ggml-vocab-llama-spm.gguf"));
	b = load_path(golden_path("tokenizer/ggml-vocab-gpt-2.gguf"));
	assert_non_null(s);
	assert_non_null(b);
	roundtrip(s, 300, true, 21);
	roundtrip(b, 300, true, 22);
	stream_equals_decode(s, 23);
	stream_equals_decode(b, 24);

	assert_true(s->spm_split);
	dm_rng_seed(&r, 25);
	for (int t = 0; t < 200; t++) {
		size_t len = random_text(&r, text, 150, true), n1, n2;
		int32_t *a, *c;
		struct dm_err e;
		s->spm_split = true;
		assert_int_equal(tok_encode(s, text, len, 0, &a, &n1, &e), 0);
		s->spm_split = false;
		assert_int_equal(tok_encode(s, text, len, 0, &c, &n2, &e), 0);
		assert_int_equal(n1, n2);
		assert_memory_equal(a, c, n1 * sizeof *a);
		free(a);
		free(c);
	}
	s->spm_split = true;
	tok_free(s);
	tok_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spm_hand),
		cmocka_unit_test(test_spm_flags),
		cmocka_unit_test(test_spm_rstrip),
		cmocka_unit_test(test_spm_decode),
		cmocka_unit_test(test_bpe_hand),
		cmocka_unit_test(test_bpe_digits_by_pre),
		cmocka_unit_test(test_bpe_llama3),
		cmocka_unit_test(test_bpe_unknown_pre),
		cmocka_unit_test(test_pre_splits),
		cmocka_unit_test(test_roundtrip_hand),
		cmocka_unit_test(test_stream_decoder),
		cmocka_unit_test(test_stream_random),
		cmocka_unit_test(test_cli),
		cmocka_unit_test(test_golden_vocabs),
		cmocka_unit_test(test_golden_stories),
		cmocka_unit_test(test_golden_roundtrip),
	};
	return cmocka_run_group_tests_name("tok", tests, NULL, NULL);
}

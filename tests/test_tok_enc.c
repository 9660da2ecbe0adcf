/*
 * tests/tok_enc — the tokenizers of encoder models: WordPiece ("bert") and
 * SentencePiece Unigram ("t5").  Hand-made vocabularies written by our GGUF
 * writer with tokenizations worked out by hand in the comments, and, when
 * ../shared/golden is present, the token ids llama.cpp c392e50 gave for the
 * encoder texts of golden/archs (bert, nomic-bert, bert-rerank).  (The
 * llama.cpp vectors of ggml-vocab-bert-bge run in tests/test_tok.c with the
 * other vocabularies.)
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
#include "gguf/gguf.h"
#include "tok/tok.h"
#include "tok/tok_int.h"
#include "tok/tok_unicode.h"
#include "ttok.h"
#include "tutil.h"

#define WS "\xe2\x96\x81" /* U+2581 */
#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

struct tok_def {
	const char *text;
	float score;
	int32_t type; /* 1 normal, 2 unknown, 3 control, 4 user-defined, 6 byte */
};

/* Writes a vocab-only file: model, the tokens (then, with bytes, the 256
 * <0xNN> byte tokens), and whatever extra() adds. */
static struct tok_vocab *make_vocab(const char *name, const char *model, const struct tok_def *defs,
				    size_t n_defs, bool bytes, void (*extra)(struct gguf_writer *))
{
	const char *path = tu_tmp_path(name);
	size_t n = n_defs + (bytes ? 256 : 0);
	char **toks = calloc(n, sizeof *toks);
	float *scores = calloc(n, sizeof *scores);
	int32_t *types = calloc(n, sizeof *types);
	struct gguf_writer *w;
	struct gguf_file *g;
	struct tok_vocab *v = NULL;
	struct dm_err e;

	assert_non_null(toks);
	for (size_t i = 0; i < n_defs; i++) {
		toks[i] = strdup(defs[i].text);
		scores[i] = defs[i].score;
		types[i] = defs[i].type;
	}
	for (size_t b = 0; bytes && b < 256; b++) {
		char buf[8];
		snprintf(buf, sizeof buf, "<0x%02zX>", b);
		toks[n_defs + b] = strdup(buf);
		types[n_defs + b] = 6;
	}
	assert_int_equal(gguf_writer_open(&w, path, &e), 0);
	assert_int_equal(gguf_writer_add_str(w, "tokenizer.ggml.model", model, &e), 0);
	assert_int_equal(gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks,
						 NULL, n, &e), 0);
	assert_int_equal(gguf_writer_add_arr(w, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, scores, n, &e), 0);
	assert_int_equal(gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, types, n, &e), 0);
	if (extra)
		extra(w);
	assert_int_equal(gguf_writer_write_header(w, &e), 0);
	assert_int_equal(gguf_writer_close(w, &e), 0);
	for (size_t i = 0; i < n; i++)
		free(toks[i]);
	free(toks);
	free(scores);
	free(types);
	assert_int_equal(gguf_open(&g, path, &e), 0);
	if (tok_load(&v, g, &e))
		print_error("%s\n", e.msg);
	gguf_close(g);
	return v;
}


static void check_decode(const struct tok_vocab *v, const int32_t *ids, size_t n, unsigned flags,
			 const char *want)
{
	char *out;
	size_t len;
	struct dm_err e;
	assert_int_equal(tok_decode(v, ids, n, flags, &out, &len, &e), 0);
	if (len != strlen(want) || memcmp(out, want, len))
		print_error("decoded '%.*s', want '%s'\n", (int)len, out, want);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(out, want, len);
	free(out);
}

/* ---- Unicode tables ------------------------------------------------------ */

static void test_unicode_tables(void **state)
{
	(void)state;
	/* NFD base: precomposed letters lose their accents; ASCII, the
	 * combining marks themselves and unassigned code points stay */
	assert_int_equal(tok_uni_nfd_base(0xE9), 'e');     /* é */
	assert_int_equal(tok_uni_nfd_base(0xC9), 'E');     /* É */
	assert_int_equal(tok_uni_nfd_base(0x1E69), 's');   /* ṩ: s + two marks */
	assert_int_equal(tok_uni_nfd_base(0xAC00), 0x1100); /* 가 -> ᄀ */
	assert_int_equal(tok_uni_nfd_base(0x301), 0x301);
	assert_int_equal(tok_uni_nfd_base('A'), 'A');
	assert_int_equal(tok_uni_nfd_base(0x10FFFF), 0x10FFFF);
	/* simple lowercase */
	assert_int_equal(tok_uni_lower_of('Q'), 'q');
	assert_int_equal(tok_uni_lower_of(0x130), 'i');   /* İ: simple mapping */
	assert_int_equal(tok_uni_lower_of(0x3A3), 0x3C3); /* Σ -> σ */
	assert_int_equal(tok_uni_lower_of(0x410), 0x430); /* А -> а */
	assert_int_equal(tok_uni_lower_of(0xDF), 0xDF);   /* ß has no simple lowercase change */
	assert_int_equal(tok_uni_lower_of(0x4E2D), 0x4E2D);
	/* classes */
	assert_int_equal(tok_uni_class(','), TOK_UNI_PUNCT);
	assert_int_equal(tok_uni_class(0x3002), TOK_UNI_PUNCT); /* 。 */
	assert_int_equal(tok_uni_class('$'), 0);                /* a symbol, not punctuation */
	assert_int_equal(tok_uni_class(0x01), TOK_UNI_CONTROL);
	assert_int_equal(tok_uni_class(0x200B), TOK_UNI_CONTROL); /* ZWSP is Cf */
	assert_int_equal(tok_uni_class(0xE000), TOK_UNI_CONTROL); /* private use */
	assert_int_equal(tok_uni_class(0x378), 0);                /* unassigned: not control */
	assert_int_equal(tok_uni_class('a'), 0);
	assert_true(tok_uni_is_space(0x3000) && tok_uni_is_space('\t') && tok_uni_is_space(0x85));
	assert_false(tok_uni_is_space(0x200B) || tok_uni_is_space('a'));
	/* lenient decoding: overlongs decode, stray bytes do not */
	{
		uint32_t cp;
		assert_int_equal(tok_utf8_decode_lenient((const uint8_t *)"\xc1\x81", 2, &cp), 2);
		assert_int_equal(cp, 'A');
		assert_int_equal(tok_utf8_decode_lenient((const uint8_t *)"\x80", 1, &cp), 0);
		assert_int_equal(tok_utf8_decode_lenient((const uint8_t *)"\xe4\xb8", 2, &cp), 0);
		assert_int_equal(tok_utf8_decode_lenient((const uint8_t *)"\xe4\xb8\xad", 3, &cp), 3);
		assert_int_equal(cp, 0x4E2D);
	}
}

/* ---- WordPiece, hand-made ------------------------------------------------ */

static const struct tok_def wpm_defs[] = {
	{ "[PAD]", 0, 3 },        /* 0 */
	{ "[UNK]", 0, 2 },        /* 1 */
	{ "[CLS]", 0, 3 },        /* 2 */
	{ "[SEP]", 0, 3 },        /* 3 */
	{ "[MASK]", 0, 3 },       /* 4 */
	{ WS "un", 0, 1 },        /* 5 */
	{ WS "una", 0, 1 },       /* 6 */
	{ "ff", 0, 1 },           /* 7 */
	{ "able", 0, 1 },         /* 8 */
	{ WS ",", 0, 1 },         /* 9 */
	{ WS "hello", 0, 1 },     /* 10 */
	{ WS "cafe", 0, 1 },      /* 11 */
	{ WS "\xe4\xb8\xad", 0, 1 }, /* 12: ▁中 */
	{ WS "a", 0, 1 },         /* 13 */
	{ "b", 0, 1 },            /* 14 */
	{ WS "$", 0, 1 },         /* 15 */
	{ "ffable", 0, 1 },       /* 16 */
	{ WS "\xcf\x83", 0, 1 },  /* 17: ▁σ */
};

static void wpm_keys(struct gguf_writer *w)
{
	struct dm_err e;
	assert_int_equal(gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", 1, &e), 0);
	assert_int_equal(gguf_writer_add_u32(w, "tokenizer.ggml.cls_token_id", 2, &e), 0);
	assert_int_equal(gguf_writer_add_u32(w, "tokenizer.ggml.seperator_token_id", 3, &e), 0);
	assert_int_equal(gguf_writer_add_u32(w, "tokenizer.ggml.padding_token_id", 0, &e), 0);
	assert_int_equal(gguf_writer_add_u32(w, "tokenizer.ggml.mask_token_id", 4, &e), 0);
}

static void test_wpm_hand(void **state)
{
	struct tok_vocab *v = make_vocab("wpm.gguf", "bert", wpm_defs, N_ELEMS(wpm_defs), false, wpm_keys);
	(void)state;
	assert_non_null(v);
	assert_int_equal(tok_kind(v), TOK_KIND_WPM);
	assert_string_equal(tok_kind_name(v), "bert");
	assert_int_equal(tok_bos(v), 2); /* from cls_token_id */
	assert_int_equal(tok_sep(v), 3);
	assert_int_equal(tok_unk(v), 1);
	assert_true(tok_add_bos(v) && tok_add_sep(v) && !tok_add_eos(v));

	/* "▁unaffable": the longest token at 0 is ▁una (not ▁un), then
	 * ffable (not ff + able) */
	IDS(v, "unaffable", 0, 6, 16);
	/* lowercased, accents stripped (É -> e), punctuation its own word; "!"
	 * has no token ("▁!"), so that word is [UNK] */
	IDS(v, "Hello, CAFÉ!", 0, 10, 9, 11, 1);
	/* ▁a + b; "abc" cannot be finished (no "c"): the whole word is [UNK] */
	IDS(v, "ab", 0, 13, 14);
	IDS(v, "abc ab", 0, 1, 13, 14);
	/* every CJK ideograph is a word; ASCII symbols too ($) */
	IDS(v, "\xe4\xb8\xad\xe4\xb8\xad$ab", 0, 12, 12, 15, 13, 14);
	/* control characters vanish without ending the word; whitespace of
	 * every kind (tab, U+3000, NBSP) separates */
	IDS(v, "a\x01" "b", 0, 13, 14);
	IDS(v, "a\t\xe3\x80\x80\xc2\xa0" "ab", 0, 13, 13, 14);
	/* an already decomposed accent (e + U+0301) is kept, so "▁é" does not
	 * match: [UNK]; Σ lowercases to σ */
	IDS(v, "e\xcc\x81 \xce\xa3", 0, 1, 17);
	/* invalid bytes are dropped */
	IDS(v, "a\xff" "b\x80", 0, 13, 14);
	NO_IDS(v, "", 0);
	NO_IDS(v, " \t\n", 0);
	/* [CLS] ... [SEP]; special tokens in the text only when parsed */
	IDS(v, "ab", TOK_ADD_SPECIAL, 2, 13, 14, 3);
	IDS(v, "", TOK_ADD_SPECIAL, 2, 3);
	IDS(v, "[MASK] ab", TOK_PARSE_SPECIAL, 4, 13, 14);
	IDS(v, "[MASK]", 0, 1, 1, 1); /* "[", "mask", "]": all unknown */

	/* decoding: word-initial pieces bring their space, continuation
	 * pieces join; STRIP_SPACE drops the first one (and the one after a
	 * control token such as [CLS]) */
	{
		const int32_t a[] = { 2, 6, 16, 9, 10, 3 };
		check_decode(v, a, N_ELEMS(a), TOK_DEC_STRIP_SPACE, "unaffable , hello");
		check_decode(v, a, N_ELEMS(a), 0, " unaffable , hello");
		check_decode(v, a, N_ELEMS(a), TOK_DEC_SPECIAL, "[CLS] unaffable , hello[SEP]");
	}
	tok_free(v);
}

/* A bert vocab with add_sep_token false: only [CLS] is added. */
static void wpm_no_sep(struct gguf_writer *w)
{
	struct dm_err e;
	wpm_keys(w);
	assert_int_equal(gguf_writer_add_bool(w, "tokenizer.ggml.add_sep_token", false, &e), 0);
}

static void test_wpm_flags(void **state)
{
	struct tok_vocab *v = make_vocab("wpm-nosep.gguf", "bert", wpm_defs, N_ELEMS(wpm_defs), false,
					 wpm_no_sep);
	(void)state;
	assert_non_null(v);
	IDS(v, "ab", TOK_ADD_SPECIAL, 2, 13, 14);
	tok_free(v);
}

/* ---- Unigram, hand-made --------------------------------------------------- */

/* Scores are log-probabilities; the lowest normal score is -20, so an
 * unknown character scores -30. */
static const struct tok_def ugm_defs[] = {
	{ "<pad>", 0, 3 },        /* 0 */
	{ "</s>", 0, 3 },         /* 1 */
	{ "<unk>", 0, 2 },        /* 2 */
	{ WS, -2, 1 },            /* 3 */
	{ "a", -3, 1 },           /* 4 */
	{ "b", -3, 1 },           /* 5 */
	{ WS "ab", -10, 1 },      /* 6 */
	{ WS "a", -2, 1 },        /* 7 */
	{ "bc", -2, 1 },          /* 8 */
	{ "c", -4, 1 },           /* 9 */
	{ WS "abc", -20, 1 },     /* 10 */
	{ "<x>", -50, 4 },        /* 11: user-defined (scores 0 in Viterbi) */
	{ "d", -6, 1 },           /* 12 */
	{ "dd", -13, 1 },         /* 13 */
	{ "<0x41>", 0, 3 },       /* 14: control; looks like a byte, is not one */
};

static void ugm_prefix(struct gguf_writer *w)
{
	struct dm_err e;
	assert_int_equal(gguf_writer_add_bool(w, "tokenizer.ggml.add_space_prefix", true, &e), 0);
}

static void ugm_prefix_merge(struct gguf_writer *w)
{
	struct dm_err e;
	ugm_prefix(w);
	assert_int_equal(gguf_writer_add_bool(w, "tokenizer.ggml.remove_extra_whitespaces", true, &e), 0);
}

/* A tiny precompiled_charsmap: 'A' -> "a" and '\t' -> " ".  Double array
 * (see tok_ugm.c): the root unit 0 is 0, so its children are at index
 * label ^ 0 = the byte itself.
 *   unit[0x41] = label 'A', has-value bit, offset 1: value at 0x41 ^ 1 = 0x40
 *   unit[0x40] = value unit (bit 31) -> replacement offset 0 ("a")
 *   unit[0x09] = label '\t', has-value bit, offset 2: value at 9 ^ 2 = 11
 *   unit[11]   = value unit -> replacement offset 2 (" ")
 * Replacements: "a\0 \0". */
static uint8_t charsmap[4 + 66 * 4 + 4];
static size_t charsmap_len;

static void put_unit(uint32_t i, uint32_t u)
{
	uint8_t *p = charsmap + 4 + 4 * (size_t)i;
	p[0] = (uint8_t)u, p[1] = (uint8_t)(u >> 8), p[2] = (uint8_t)(u >> 16), p[3] = (uint8_t)(u >> 24);
}

static void build_charsmap(void)
{
	const uint32_t blob = 66 * 4;
	memset(charsmap, 0, sizeof charsmap);
	charsmap[0] = (uint8_t)blob, charsmap[1] = (uint8_t)(blob >> 8);
	put_unit(0x41, 1u << 10 | 1u << 8 | 0x41);
	put_unit(0x40, 1u << 31 | 0);
	put_unit(0x09, 2u << 10 | 1u << 8 | 0x09);
	put_unit(11, 1u << 31 | 2);
	memcpy(charsmap + 4 + blob, "a\0 \0", 4);
	charsmap_len = 4 + blob + 4;
}

static void ugm_charsmap(struct gguf_writer *w)
{
	struct dm_err e;
	ugm_prefix(w);
	assert_int_equal(gguf_writer_add_arr(w, "tokenizer.ggml.precompiled_charsmap", GGUF_VT_UINT8,
					     charsmap, charsmap_len, &e), 0);
}

static void test_ugm_hand(void **state)
{
	struct tok_vocab *v = make_vocab("ugm.gguf", "t5", ugm_defs, N_ELEMS(ugm_defs), false, ugm_prefix);
	(void)state;
	assert_non_null(v);
	assert_int_equal(tok_kind(v), TOK_KIND_UGM);
	assert_string_equal(tok_kind_name(v), "t5");
	assert_int_equal(tok_eos(v), 1);
	assert_int_equal(tok_unk(v), 2);
	assert_int_equal(tok_bos(v), -1);

	/* "abc" -> "▁abc".  Segmentations and their total scores:
	 *   ▁abc          -20           (what greedy longest-match takes)
	 *   ▁a + bc       -2 - 2 = -4   <- best
	 *   ▁ab + c       -10 - 4 = -14
	 *   ▁ + a + bc    -2 - 3 - 2 = -7
	 *   ▁a + b + c    -2 - 3 - 4 = -9 */
	IDS(v, "abc", 0, 7, 8);
	/* "dd" -> "▁dd": ▁ + dd = -15 vs ▁ + d + d = -14: two d's win even
	 * though "dd" is a token */
	IDS(v, "dd", 0, 3, 12, 12);
	/* unknown characters score -30 each; the two snowmen are one [unk]:
	 * ▁a, unk, unk, b */
	IDS(v, "a\xe2\x98\x83\xe2\x98\x83" "b", 0, 7, 2, 5);
	/* spaces: each one is a "▁"; the prefix goes in front of the first
	 * non-space: "  a " -> "▁▁▁a▁" = ▁ ▁ ▁a ▁ (-8; ▁ ▁ ▁ a ▁ is -11) */
	IDS(v, "  a ", 0, 3, 3, 7, 3);
	IDS(v, "a  b", 0, 7, 3, 3, 5);
	/* a user-defined token is cut out first; each side is normalised on
	 * its own, with its own prefix: "▁a" <x> "▁b" */
	IDS(v, "a<x>b", 0, 7, 11, 3, 5);
	/* a control token written in the text is plain text unless parsed:
	 * "<0x41>" has no tokens for < 0 x 4 1 > -> one merged [unk] after ▁ */
	IDS(v, "<0x41>", 0, 3, 2);
	IDS(v, "<0x41>", TOK_PARSE_SPECIAL, 14);
	/* add_eos (the t5 default) */
	IDS(v, "abc", TOK_ADD_SPECIAL, 7, 8, 1);
	NO_IDS(v, "", 0);
	IDS(v, "", TOK_ADD_SPECIAL, 1);
	/* invalid UTF-8 becomes U+FFFD (unknown) */
	IDS(v, "a\xff", 0, 7, 2);
	{
		const int32_t a[] = { 7, 8, 3, 3, 5, 1 };
		check_decode(v, a, N_ELEMS(a), TOK_DEC_STRIP_SPACE, "abc  b");
	}
	tok_free(v);

	/* remove_extra_whitespaces: runs of spaces vanish, each word gets one
	 * "▁": "  a   b " -> "▁a▁b" */
	v = make_vocab("ugm-merge.gguf", "t5", ugm_defs, N_ELEMS(ugm_defs), false, ugm_prefix_merge);
	assert_non_null(v);
	IDS(v, "  a   b ", 0, 7, 3, 5);
	NO_IDS(v, "   ", 0);
	tok_free(v);

	/* no add_space_prefix (the default): "abc" has no ▁: a + bc */
	v = make_vocab("ugm-noprefix.gguf", "t5", ugm_defs, N_ELEMS(ugm_defs), false, NULL);
	assert_non_null(v);
	IDS(v, "abc", 0, 4, 8);
	tok_free(v);
}

static void test_ugm_charsmap(void **state)
{
	struct tok_vocab *v;
	(void)state;
	build_charsmap();
	v = make_vocab("ugm-cmap.gguf", "t5", ugm_defs, N_ELEMS(ugm_defs), false, ugm_charsmap);
	assert_non_null(v);
	/* "A\tbc" -> "a bc" -> "▁a▁bc": ▁a ▁ bc (-6; ▁a ▁ b c is -11) */
	IDS(v, "A\tbc", 0, 7, 3, 8);
	tok_free(v);

	/* a charsmap whose trie runs past its end is refused at load */
	{
		struct gguf_writer *w;
		struct gguf_file *g;
		struct tok_vocab *bad = NULL;
		struct dm_err e;
		const char *path = tu_tmp_path("ugm-badmap.gguf");
		uint8_t blob[8] = { 0xff, 0, 0, 0, 1, 2, 3, 4 };
		const char *toks[] = { "<unk>", "a" };
		assert_int_equal(gguf_writer_open(&w, path, &e), 0);
		assert_int_equal(gguf_writer_add_str(w, "tokenizer.ggml.model", "t5", &e), 0);
		assert_int_equal(gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 2, &e), 0);
		assert_int_equal(gguf_writer_add_arr(w, "tokenizer.ggml.precompiled_charsmap",
						     GGUF_VT_UINT8, blob, sizeof blob, &e), 0);
		assert_int_equal(gguf_writer_write_header(w, &e), 0);
		assert_int_equal(gguf_writer_close(w, &e), 0);
		assert_int_equal(gguf_open(&g, path, &e), 0);
		assert_int_equal(tok_load(&bad, g, &e), DM_EFORMAT);
		assert_null(bad);
		assert_non_null(strstr(e.msg, "precompiled_charsmap"));
		gguf_close(g);
	}
}

static void test_ugm_byte_fallback(void **state)
{
	struct tok_vocab *v = make_vocab("ugm-bytes.gguf", "t5", ugm_defs, N_ELEMS(ugm_defs), true,
					 ugm_prefix);
	const int32_t byte0 = (int32_t)N_ELEMS(ugm_defs);
	(void)state;
	assert_non_null(v);
	/* the snowman (E2 98 83) has no token: its bytes instead of [unk] */
	IDS(v, "a\xe2\x98\x83" "b", 0, 7, byte0 + 0xE2, byte0 + 0x98, byte0 + 0x83, 5);
	{
		int32_t *ids;
		size_t n;
		struct dm_err e;
		const char *s = "b\xe2\x98\x83 a";
		assert_int_equal(tok_encode(v, s, strlen(s), 0, &ids, &n, &e), 0);
		check_decode(v, ids, n, TOK_DEC_STRIP_SPACE, s);
		free(ids);
	}
	tok_free(v);
}

/* ---- golden: encoder texts of golden/archs (llama.cpp c392e50) --------------- */

static char *golden_file(const char *rel, size_t *n)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", tu_golden_dir(), rel);
	return tu_read_file(path, n);
}

static struct tok_vocab *golden_vocab(const char *rel)
{
	char path[1024];
	struct gguf_file *g;
	struct tok_vocab *v = NULL;
	struct dm_err e;
	snprintf(path, sizeof path, "%s/%s", tu_golden_dir(), rel);
	assert_int_equal(gguf_open(&g, path, &e), 0);
	assert_int_equal(tok_load(&v, g, &e), 0);
	gguf_close(g);
	return v;
}

/* Compares ids[0..n) with the ids of one line of want; moves *want past it. */
static bool same_line(const int32_t *ids, size_t n, const char **want)
{
	const char *q = *want;
	size_t k = 0;
	bool same = true;
	while (*q && *q != '\n') {
		char *e;
		long x = strtol(q, &e, 10);
		if (e == q)
			break;
		if (k >= n || ids[k] != x)
			same = false;
		k++;
		q = e;
		while (*q == ' ')
			q++;
	}
	*want = *q == '\n' ? q + 1 : q;
	return same && k == n;
}

/* Tokenizes each line of inputs/texts.txt with [CLS]/[SEP]. */
static int run_texts(const char *model, const char *expected, int *total)
{
	struct tok_vocab *v = golden_vocab(model);
	size_t n_texts, n_want;
	char *texts = golden_file("archs/inputs/texts.txt", &n_texts);
	char *want = golden_file(expected, &n_want);
	const char *w = want;
	int ok = 0;

	assert_non_null(texts);
	assert_non_null(want);
	*total = 0;
	for (char *p = texts; *p;) {
		char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		int32_t *ids;
		size_t n;
		struct dm_err e;
		assert_int_equal(tok_encode(v, p, len, TOK_ADD_SPECIAL, &ids, &n, &e), 0);
		if (same_line(ids, n, &w))
			ok++;
		else
			print_error("%s: text %d differs\n", model, *total);
		(*total)++;
		free(ids);
		p = nl ? nl + 1 : p + len;
	}
	free(texts);
	free(want);
	tok_free(v);
	return ok;
}

static void push_all(struct tok_ids *o, const int32_t *ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		assert_int_equal(tok_ids_push(o, ids[i], NULL), 0);
}

/* The rerank inputs: c392e50 formats [BOS] query [EOS] [SEP] doc [EOS],
 * query and document tokenized without special tokens added, with special
 * tokens parsed; BOS 101, EOS = SEP = 102. */
static int run_rerank(int *total)
{
	struct tok_vocab *v = golden_vocab("archs/models/bert-rerank.gguf");
	size_t nq, nd, nw;
	char *query = golden_file("archs/inputs/rerank_query.txt", &nq);
	char *docs = golden_file("archs/inputs/rerank_docs.txt", &nd);
	char *want = golden_file("archs/expected/bert-rerank.c392e50.tokens", &nw);
	const char *w = want;
	int32_t *q_ids;
	size_t n_q;
	struct dm_err e;
	int ok = 0;

	assert_non_null(query);
	assert_non_null(docs);
	assert_non_null(want);
	assert_int_equal(tok_bos(v), 101);
	assert_int_equal(tok_eos(v), 102);
	assert_int_equal(tok_sep(v), 102);
	if (nq && query[nq - 1] == '\n')
		nq--;
	assert_int_equal(tok_encode(v, query, nq, TOK_PARSE_SPECIAL, &q_ids, &n_q, &e), 0);
	*total = 0;
	for (char *p = docs; *p;) {
		char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		struct tok_ids all = { 0 };
		int32_t *d_ids, bos = tok_bos(v), eos = tok_eos(v), sep = tok_sep(v);
		size_t n_d;
		assert_int_equal(tok_encode(v, p, len, TOK_PARSE_SPECIAL, &d_ids, &n_d, &e), 0);
		push_all(&all, &bos, 1);
		push_all(&all, q_ids, n_q);
		push_all(&all, &eos, 1);
		push_all(&all, &sep, 1);
		push_all(&all, d_ids, n_d);
		push_all(&all, &eos, 1);
		if (same_line(all.v, all.n, &w))
			ok++;
		else
			print_error("rerank: document %d differs\n", *total);
		(*total)++;
		free(d_ids);
		free(all.v);
		p = nl ? nl + 1 : p + len;
	}
	free(q_ids);
	free(query);
	free(docs);
	free(want);
	tok_free(v);
	return ok;
}

static void test_golden_archs(void **state)
{
	static const char *const runs[][2] = {
		{ "archs/models/bert.gguf", "archs/expected/bert.c392e50.tokens" },
		{ "archs/models/nomic-bert.gguf", "archs/expected/nomic-bert.c392e50.tokens" },
	};
	int all_ok = 1, total, ok;
	(void)state;
	if (!tu_golden_dir())
		skip();
	for (size_t i = 0; i < N_ELEMS(runs); i++) {
		ok = run_texts(runs[i][0], runs[i][1], &total);
		print_message("golden %s: %d/%d exact matches\n", runs[i][1], ok, total);
		assert_int_equal(total, 6);
		all_ok &= ok == total;
	}
	ok = run_rerank(&total);
	print_message("golden archs/expected/bert-rerank.c392e50.tokens: %d/%d exact matches\n", ok, total);
	assert_int_equal(total, 5);
	all_ok &= ok == total;
	assert_true(all_ok);
}

/* decode(encode(x)) on the real BERT vocabulary: for lowercase ASCII
 * words separated by single spaces, every word in the vocabulary, the
 * text comes back. */
static void test_golden_wpm_roundtrip(void **state)
{
	static const char *const texts[] = {
		"the quick brown fox jumps over the lazy dog",
		"tokenization is surprisingly subtle",
		"a , b . c ! d ?",
	};
	struct tok_vocab *v;
	(void)state;
	if (!tu_golden_dir())
		skip();
	v = golden_vocab("tokenizer/ggml-vocab-bert-bge.gguf");
	for (size_t i = 0; i < N_ELEMS(texts); i++) {
		int32_t *ids;
		size_t n;
		struct dm_err e;
		assert_int_equal(tok_encode(v, texts[i], strlen(texts[i]), TOK_ADD_SPECIAL, &ids, &n, &e), 0);
		check_decode(v, ids, n, TOK_DEC_STRIP_SPACE, texts[i]);
		free(ids);
	}
	tok_free(v);
}

static void test_cli(void **state)
{
	struct tok_vocab *v = make_vocab("cli-wpm.gguf", "bert", wpm_defs, N_ELEMS(wpm_defs), false, wpm_keys);
	char *out;
	int st;
	(void)state;
	tok_free(v);
	out = tu_capture(&st, "%s tokenize %s 'Una ffable, hello'", tu_dormant(), tu_tmp_path("cli-wpm.gguf"));
	assert_int_equal(st, 0);
	/* "una" = ▁una; "ffable" alone is "▁ffable": no "▁f..." token -> [UNK] */
	assert_string_equal(out, "2 6 1 9 10 3\n");
	free(out);
	out = tu_capture(&st, "%s tokenize %s --no-bos --pieces 'unaffable'", tu_dormant(),
			 tu_tmp_path("cli-wpm.gguf"));
	assert_string_equal(out, "6\t una\n16\tffable\n");
	free(out);
	out = tu_capture(&st, "%s detokenize %s 2 6 16 9 10 3", tu_dormant(), tu_tmp_path("cli-wpm.gguf"));
	assert_int_equal(st, 0);
	assert_string_equal(out, "unaffable , hello");
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unicode_tables),
		cmocka_unit_test(test_wpm_hand),
		cmocka_unit_test(test_wpm_flags),
		cmocka_unit_test(test_ugm_hand),
		cmocka_unit_test(test_ugm_charsmap),
		cmocka_unit_test(test_ugm_byte_fallback),
		cmocka_unit_test(test_golden_archs),
		cmocka_unit_test(test_golden_wpm_roundtrip),
		cmocka_unit_test(test_cli),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

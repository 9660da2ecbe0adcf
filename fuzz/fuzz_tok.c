/*
 * fuzz/tok — libFuzzer target for the tokenizers.  Small hand-made
 * vocabularies (a SentencePiece one, byte-level BPE ones under several
 * pre-tokenizers, a WordPiece one and two Unigram ones) are built once, in
 * memory, with our GGUF writer.  The first input byte picks what to do with
 * the rest:
 *   encode it (checking that every id is in range and that decoding gives
 *   the text back, where the tokenizer promises that), decode it as token
 *   ids (whole and streamed: the stream must be valid UTF-8), or format it
 *   as chat messages.
 * WordPiece promise: for ASCII text, decoding gives the text's words
 * (lowercased, punctuation split off, control characters dropped) joined by
 * single spaces — its vocabulary has "▁c" and "c" for every printable ASCII
 * character, so no word becomes [UNK].  Unigram promise (the vocabulary
 * with byte fallback, no normalisation options): valid UTF-8 comes back
 * byte for byte.
 * A broken promise aborts, so the fuzzer reports it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "gguf/gguf.h"
#include "tok/chat.h"
#include "tok/tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_BPE 6
static const char *const bpe_pres[N_BPE] = { "gpt-2", "llama3", "qwen2", "deepseek-llm", "tekken", "default" };

/* Built on the first call and kept for the process (fuzzer state, not
 * library state). */
static struct tok_vocab *spm, *bpe[N_BPE], *wpm, *ugm_bytes, *ugm_norm;

static _Noreturn void die(const char *what)
{
	fprintf(stderr, "fuzz_tok: %s\n", what);
	abort();
}

/* Writes the keys add() declares into memory and loads a vocab from them. */
static struct tok_vocab *build(void (*add)(struct gguf_writer *, const char *), const char *arg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct gguf_writer *w;
	struct gguf_file *g;
	struct tok_vocab *v;
	struct dm_err e;

	if (!f || gguf_writer_open_stream(&w, f, "fuzz", &e))
		die("writer");
	add(w, arg);
	if (gguf_writer_write_header(w, &e) || gguf_writer_close(w, &e))
		die(e.msg);
	fclose(f);
	if (gguf_open_buffer(&g, buf, len, "fuzz", &e) || tok_load(&v, g, &e))
		die(e.msg);
	gguf_close(g);
	free(buf);
	return v;
}

static void add_spm(struct gguf_writer *w, const char *arg)
{
	static const char *const extra[] = {
		"\342\226\201", "a", "b", "\342\226\201a", "ab", "\342\226\201ab", "bc", "c",
		"\xe2\x96\x81\xe2\x96\x81", "\xc3\xa9", "<|user|>", "<|end|>", "x",
	};
	static const int32_t extra_type[] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 4, 3, 5 };
	char *toks[3 + 256 + 13];
	float scores[3 + 256 + 13];
	int32_t types[3 + 256 + 13];
	char bytes[256][8];
	size_t n = 0;
	struct dm_err e;
	(void)arg;
	toks[n] = "<unk>", types[n] = 2, scores[n++] = 0;
	toks[n] = "<s>", types[n] = 3, scores[n++] = 0;
	toks[n] = "</s>", types[n] = 3, scores[n++] = 0;
	for (int b = 0; b < 256; b++) {
		snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
		toks[n] = bytes[b], types[n] = 6, scores[n++] = 0;
	}
	for (size_t i = 0; i < 13; i++)
		toks[n] = (char *)extra[i], types[n] = extra_type[i], scores[n++] = -(float)i;
	if (gguf_writer_add_str(w, "tokenizer.ggml.model", "llama", &e) ||
	    gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, NULL, n, &e) ||
	    gguf_writer_add_arr(w, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, scores, n, &e) ||
	    gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, types, n, &e))
		die(e.msg);
}

static void add_bpe(struct gguf_writer *w, const char *pre)
{
	static const char *const merges[] = {
		"\xc4\xa0 a", "a b", "\304\240a b", "1 2", "12 3", "\xc4\x8a \xc4\x8a", "\xc4\xa0 \xc4\xa0",
	};
	static const char *const merged[] = {
		"\304\240a", "ab", "\304\240ab", "12", "123", "\xc4\x8a\xc4\x8a", "\xc4\xa0\xc4\xa0",
	};
	char *toks[256 + 7 + 2];
	int32_t types[256 + 7 + 2];
	uint8_t chars[256][4];
	uint32_t next = 256;
	size_t n = 0;
	struct dm_err e;
	for (int b = 0; b < 256; b++) {
		uint32_t cp = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE
				      ? (uint32_t)b : next++;
		memset(chars[b], 0, 4);
		dm_utf8_encode(cp, chars[b]);
		toks[n] = (char *)chars[b], types[n++] = 1;
	}
	for (size_t i = 0; i < 7; i++)
		toks[n] = (char *)merged[i], types[n++] = 1;
	toks[n] = "<|endoftext|>", types[n++] = 3;
	toks[n] = "<|user|>", types[n++] = 4;
	if (gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2", &e) ||
	    gguf_writer_add_str(w, "tokenizer.ggml.pre", pre, &e) ||
	    gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, NULL, n, &e) ||
	    gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, types, n, &e) ||
	    gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", merges, NULL, 7, &e) ||
	    gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 256 + 7, &e) ||
	    gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 256 + 7, &e))
		die(e.msg);
}

/* WordPiece: the five BERT specials, then "▁c" and "c" for every printable
 * ASCII character except upper-case letters, then a few longer pieces. */
static void add_wpm(struct gguf_writer *w, const char *arg)
{
	static const char *const specials[] = { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" };
	static const char *const longer[] = { "\xe2\x96\x81" "ab", "ab", "\xe2\x96\x81\xe4\xb8\xad", "\xe2\x96\x81\xc3\xa9" };
	char *toks[5 + 2 * 94 + 4];
	int32_t types[5 + 2 * 94 + 4];
	char text[2 * 94][5];
	size_t n = 0, k = 0;
	struct dm_err e;
	(void)arg;
	for (size_t i = 0; i < 5; i++)
		toks[n] = (char *)specials[i], types[n++] = i == 1 ? 2 : 3;
	for (int c = 0x21; c < 0x7F; c++) {
		if (c >= 'A' && c <= 'Z')
			continue;
		snprintf(text[k], sizeof text[k], "\xe2\x96\x81%c", c);
		toks[n] = text[k++], types[n++] = 1;
		snprintf(text[k], sizeof text[k], "%c", c);
		toks[n] = text[k++], types[n++] = 1;
	}
	for (size_t i = 0; i < 4; i++)
		toks[n] = (char *)longer[i], types[n++] = 1;
	if (gguf_writer_add_str(w, "tokenizer.ggml.model", "bert", &e) ||
	    gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, NULL, n, &e) ||
	    gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, types, n, &e) ||
	    gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", 1, &e) ||
	    gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 2, &e) ||
	    gguf_writer_add_u32(w, "tokenizer.ggml.seperator_token_id", 3, &e))
		die(e.msg);
}

/* Unigram: arg "bytes": 256 byte tokens, no options; arg "norm": no byte
 * tokens, add_space_prefix, remove_extra_whitespaces and a charsmap of one
 * rule ('A' -> "a"; the double array of tests/test_tok_enc.c). */
static void add_ugm(struct gguf_writer *w, const char *arg)
{
	static const char *const extra[] = {
		"\xe2\x96\x81", "a", "b", "\xe2\x96\x81" "a", "ab", "\xe2\x96\x81" "ab", "bc", "c", "\xc3\xa9",
	};
	bool bytes = !strcmp(arg, "bytes");
	char *toks[4 + 9 + 256];
	float scores[4 + 9 + 256];
	int32_t types[4 + 9 + 256];
	char bt[256][8];
	uint8_t cmap[4 + 66 * 4 + 2] = { 0 };
	size_t n = 0;
	struct dm_err e;
	toks[n] = "<pad>", types[n] = 3, scores[n++] = 0;
	toks[n] = "</s>", types[n] = 3, scores[n++] = 0;
	toks[n] = "<unk>", types[n] = 2, scores[n++] = 0;
	toks[n] = "<|user|>", types[n] = 4, scores[n++] = 0;
	for (size_t i = 0; i < 9; i++)
		toks[n] = (char *)extra[i], types[n] = 1, scores[n++] = -1.0f - (float)(i % 4);
	for (int b = 0; bytes && b < 256; b++) {
		snprintf(bt[b], sizeof bt[b], "<0x%02X>", b);
		toks[n] = bt[b], types[n] = 6, scores[n++] = 0;
	}
	if (gguf_writer_add_str(w, "tokenizer.ggml.model", "t5", &e) ||
	    gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, NULL, n, &e) ||
	    gguf_writer_add_arr(w, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, scores, n, &e) ||
	    gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, types, n, &e))
		die(e.msg);
	if (bytes)
		return;
	cmap[0] = (66 * 4) & 0xFF, cmap[1] = (66 * 4) >> 8;
	cmap[4 + 4 * 0x41] = 0x41, cmap[4 + 4 * 0x41 + 1] = 1 | 4; /* label 'A', has value, offset 1 */
	cmap[4 + 4 * 0x40 + 3] = 0x80;                           /* value unit: replacement 0 */
	cmap[4 + 66 * 4] = 'a';
	if (gguf_writer_add_bool(w, "tokenizer.ggml.add_space_prefix", true, &e) ||
	    gguf_writer_add_bool(w, "tokenizer.ggml.remove_extra_whitespaces", true, &e) ||
	    gguf_writer_add_arr(w, "tokenizer.ggml.precompiled_charsmap", GGUF_VT_UINT8, cmap,
				sizeof cmap, &e))
		die(e.msg);
}

static void init(void)
{
	if (spm)
		return;
	spm = build(add_spm, NULL);
	for (int i = 0; i < N_BPE; i++)
		bpe[i] = build(add_bpe, bpe_pres[i]);
	wpm = build(add_wpm, NULL);
	ugm_bytes = build(add_ugm, "bytes");
	ugm_norm = build(add_ugm, "norm");
}

/* WordPiece's text for ASCII s: its words joined by single spaces. */
static char *wpm_expect(const uint8_t *s, size_t n, size_t *len)
{
	char *out = malloc(2 * n + 1);
	size_t k = 0;
	bool in_word = false;
	if (!out)
		die("out of memory");
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];
		bool word_char = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
		if (c == ' ' || (c >= '\t' && c <= '\r')) {
			in_word = false;
		} else if (c < 0x20 || c == 0x7F) {
			continue; /* control: dropped, the word goes on */
		} else if (!word_char) { /* ASCII punctuation and symbols */
			if (k)
				out[k++] = ' ';
			out[k++] = (char)c;
			in_word = false;
		} else {
			if (!in_word && k)
				out[k++] = ' ';
			out[k++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
			in_word = true;
		}
	}
	*len = k;
	return out;
}

static bool all_ascii(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] >= 0x80)
			return false;
	return true;
}

/* Encodes with WordPiece or Unigram: ids in range, and the promises of the
 * file comment. */
static void encode_enc(const struct tok_vocab *v, const uint8_t *s, size_t n, unsigned flags)
{
	int32_t *ids;
	size_t k, len, want_len = n;
	char *back, *want = NULL;
	struct dm_err e;
	bool check = false;

	if (tok_encode(v, (const char *)s, n, flags, &ids, &k, &e))
		die(e.msg);
	for (size_t i = 0; i < k; i++)
		if (ids[i] < 0 || ids[i] >= tok_n_tokens(v))
			die("id out of range");
	if (tok_decode(v, ids, k, TOK_DEC_STRIP_SPACE, &back, &len, &e))
		die(e.msg);
	if (v == wpm && !(flags & TOK_PARSE_SPECIAL) && all_ascii(s, n)) {
		want = wpm_expect(s, n, &want_len);
		check = true;
	} else if (v == ugm_bytes && !(flags & TOK_PARSE_SPECIAL) && dm_utf8_valid(s, n) &&
		   !memmem(s, n, "\xe2\x96\x81", 3)) {
		check = true;
	}
	if (check && (len != want_len || memcmp(back, want ? want : (const char *)s, len)))
		die("round trip");
	free(want);
	free(back);
	free(ids);
}

static void encode(const struct tok_vocab *v, const uint8_t *s, size_t n, unsigned flags)
{
	int32_t *ids;
	size_t k, len;
	char *back;
	struct dm_err e;

	if (tok_encode(v, (const char *)s, n, flags, &ids, &k, &e))
		die(e.msg);
	if (tok_decode(v, ids, k, TOK_DEC_STRIP_SPACE, &back, &len, &e))
		die(e.msg);
	/* The text comes back unless special tokens were parsed or (SPM) the
	 * text itself holds U+2581, which decodes as a space. */
	if (!(flags & TOK_PARSE_SPECIAL) &&
	    !(tok_kind(v) == TOK_KIND_SPM && memmem(s, n, "\xe2\x96\x81", 3)) &&
	    (len != n || memcmp(back, s, n)))
		die("round trip");
	free(back);
	free(ids);
}

static void decode(const struct tok_vocab *v, const uint8_t *s, size_t n, unsigned flags)
{
	int32_t ids[512];
	size_t k = 0;
	struct tok_decoder d;
	const char *out;
	size_t len;
	char *all;
	struct dm_err e;
	int32_t nt = tok_n_tokens(v);

	for (size_t i = 0; i + 1 < n && k < 512; i += 2)
		ids[k++] = (int32_t)((s[i] | s[i + 1] << 8) % (uint32_t)(nt + 4)) - 2;
	if (tok_decode(v, ids, k, flags, &all, &len, &e) == 0)
		free(all);
	tok_decoder_init(&d, v, flags);
	for (size_t i = 0; i < k; i++)
		if (tok_decoder_push(&d, ids[i], &out, &len, &e) == 0 &&
		    !dm_utf8_valid((const uint8_t *)out, len))
			die("stream gave invalid UTF-8");
	if (tok_decoder_flush(&d, &out, &len, &e) || !dm_utf8_valid((const uint8_t *)out, len))
		die("flush");
	tok_decoder_free(&d);
}

/* Messages separated by 0 bytes; each starts with a role byte. */
static void chat(const uint8_t *s, size_t n, unsigned k)
{
	static const char *const roles[] = { "system", "user", "assistant", "tool" };
	char *copy = malloc(n + 1), *out;
	struct tok_chat_msg msgs[16];
	size_t nm = 0, len;
	struct dm_err e;
	char *p;

	if (!copy)
		return;
	memcpy(copy, s, n);
	copy[n] = 0;
	for (p = copy; nm < 16 && p < copy + n; p += strlen(p) + 1) {
		msgs[nm].role = roles[(uint8_t)*p % 4];
		msgs[nm].content = *p ? p + 1 : p;
		nm++;
	}
	if (tok_chat_apply((enum tok_chat_kind)(k % TOK_CHAT_COUNT), spm, msgs, nm, k & 8, &out, &len, &e) == 0) {
		int32_t *ids;
		size_t ni;
		if (strlen(out) != len)
			die("chat length");
		if (tok_encode(spm, out, len, TOK_ADD_SPECIAL | TOK_PARSE_SPECIAL, &ids, &ni, &e))
			die(e.msg);
		free(ids);
		free(out);
	}
	{
		bool fb;
		(void)tok_chat_detect(copy, &fb);
	}
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t op;
	init();
	if (size < 2)
		return 0;
	op = data[0];
	data += 2;
	size -= 2;
	switch (op % 5) {
	case 0:
		encode(spm, data, size, (data[-1] & 3));
		break;
	case 4: {
		const struct tok_vocab *enc[3] = { wpm, ugm_bytes, ugm_norm };
		encode_enc(enc[(op >> 3) % 3], data, size, data[-1] & 3);
		break;
	}
	case 1:
		encode(bpe[(op >> 2) % N_BPE], data, size, (data[-1] & 3));
		break;
	case 2:
		decode((op >> 2) & 1 ? spm : (op >> 3) % 4 == 3 ? wpm : bpe[(op >> 3) % N_BPE], data, size,
		       data[-1] & 3);
		break;
	case 3:
		chat(data, size, data[-1]);
		break;
	}
	return 0;
}

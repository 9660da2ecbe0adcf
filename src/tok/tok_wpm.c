/*
 * tok/wpm — WordPiece, the tokenizer of BERT-style encoders
 * (tokenizer.ggml.model = "bert"), as llama.cpp's llm_tokenizer_wpm does it.
 *
 * Pre-tokenization (BERT's BasicTokenizer as llama.cpp implements it), one
 * code point at a time (decoded leniently, see tok_utf8_decode_lenient; a
 * byte that decodes to nothing is dropped):
 *   1. c = tok_uni_nfd_base(c): an accented letter becomes its base letter.
 *   2. whitespace ends the current word;
 *   3. NUL, U+FFFD and control characters (Cc Cf Co Cs) are dropped (they do
 *      not end the word);
 *   4. punctuation (P*), ASCII symbols ($ + < = > ^ ` | ~) and CJK
 *      ideographs become words of their own;
 *   5. anything else, lowercased, is appended to the current word.
 *
 * Each word, with U+2581 "▁" put in front, is cut greedily from the left
 * into the longest tokens of the vocabulary (any token, by exact text).
 * The GGUF vocabulary (llama.cpp's BERT conversion) stores word-initial
 * pieces as "▁word" and continuation pieces without BERT's "##", so the
 * first piece is a "▁" token and the rest are continuation pieces.  If some
 * position of the word matches no token, the word's pieces are dropped and
 * the word becomes one unknown token ([UNK]).
 *
 * Cost: O(L) hash probes per matched position (L = longest token): the
 * FNV-1a hash of every prefix length comes from the previous one.
 */
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "tok/tok_int.h"
#include "tok/tok_unicode.h"

/* The CJK ideograph blocks BERT splits character by character (upper bound
 * of the fourth supplementary range as in HF tokenizers, 0x2B920). */
static bool is_cjk(uint32_t c)
{
	return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
	       (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
	       (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
	       (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static bool is_ascii_symbol(uint32_t c)
{
	return c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' || c == '`' ||
	       c == '|' || c == '~';
}

struct word {
	char *s; /* "▁" + the word's characters */
	size_t n, cap;
};

static int word_add(struct word *w, uint32_t c, struct dm_err *err)
{
	uint8_t u[4];
	size_t k = dm_utf8_encode(c, u);
	if (!k)
		return 0; /* past U+10FFFF or a surrogate: no text (llama.cpp throws) */
	if (w->n + k > w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		char *p;
		while (cap < w->n + k)
			cap *= 2;
		if (!(p = realloc(w->s, cap)))
			return dm_err_set(err, DM_ENOMEM, "out of memory");
		w->s = p;
		w->cap = cap;
	}
	memcpy(w->s + w->n, u, k);
	w->n += k;
	return 0;
}

/* Greedy longest-match of w (which starts with "▁"); the word is emptied. */
static int word_flush(const struct tok_vocab *v, struct word *w, struct tok_ids *out,
		      struct dm_err *err)
{
	size_t n = w->n, start = out->n;
	int rc;

	if (n <= 3)
		return 0; /* only the "▁": no word */
	w->n = 3;
	for (size_t i = 0; i < n;) {
		uint64_t h = TOK_HASH_INIT;
		size_t best = 0, lim = n - i < v->max_len ? n - i : v->max_len;
		int32_t id = -1;
		for (size_t k = 1; k <= lim; k++) {
			int32_t t;
			h = tok_hash_step(h, (uint8_t)w->s[i + k - 1]);
			if ((t = tok_find_h(v, w->s + i, k, h)) >= 0) {
				best = k;
				id = t;
			}
		}
		if (!best) {
			out->n = start;
			return v->unk >= 0 ? tok_ids_push(out, v->unk, err) : 0;
		}
		if ((rc = tok_ids_push(out, id, err)))
			return rc;
		i += best;
	}
	return 0;
}

int tok_wpm_fragment(const struct tok_vocab *v, const char *text, size_t len, struct tok_ids *out,
		     struct dm_err *err)
{
	const uint8_t *u = (const uint8_t *)text;
	struct word w = { 0 };
	int rc = 0;

	if ((rc = word_add(&w, 0x2581, err)))
		return rc;
	for (size_t i = 0; i < len;) {
		uint32_t c;
		size_t k = tok_utf8_decode_lenient(u + i, len - i, &c);
		unsigned cls;
		if (!k) { /* invalid: llama.cpp drops it (or drops its U+FFFD) */
			i++;
			continue;
		}
		i += k;
		c = tok_uni_nfd_base(c);
		if (tok_uni_is_space(c)) {
			if ((rc = word_flush(v, &w, out, err)))
				break;
			continue;
		}
		cls = tok_uni_class(c);
		if (c == 0 || c == 0xFFFD || cls == TOK_UNI_CONTROL)
			continue;
		if (cls == TOK_UNI_PUNCT || (c < 0x7F && is_ascii_symbol(c)) || is_cjk(c)) {
			if ((rc = word_flush(v, &w, out, err)) ||
			    (rc = word_add(&w, tok_uni_lower_of(c), err)) ||
			    (rc = word_flush(v, &w, out, err)))
				break;
			continue;
		}
		if ((rc = word_add(&w, tok_uni_lower_of(c), err)))
			break;
	}
	if (!rc)
		rc = word_flush(v, &w, out, err);
	free(w.s);
	return rc;
}

/*
 * tok/ugm — the Unigram tokenizer of SentencePiece (tokenizer.ggml.model =
 * "t5": T5, XLM-RoBERTa, bge-m3 and the like), as llama.cpp's
 * llm_tokenizer_ugm does it.
 *
 * Normalisation, per raw fragment, left to right:
 *   1. a user-defined token starting here is copied unchanged (longest);
 *   2. else the longest prefix the precompiled_charsmap knows is replaced
 *      by its replacement string (SentencePiece's compiled normaliser, e.g.
 *      NFKC and whitespace folding: a double array over the input bytes);
 *   3. else one UTF-8 character is copied (an invalid byte becomes U+FFFD).
 *   Then spaces: every ' ' of that output becomes "▁" (U+2581), or with
 *   remove_extra_whitespaces every run of spaces is dropped and each run of
 *   non-spaces gets one "▁" in front; add_space_prefix puts one "▁" in
 *   front of the first non-space.
 *
 * Segmentation: Viterbi over the normalised bytes, one code point at a time:
 * best[j] is the highest total score of a segmentation of the first j bytes
 * (scores are log-probabilities; user-defined tokens score 0; ties keep the
 * first candidate found, scanning start positions left to right and
 * lengths short to long).  Candidates are the normal, user-defined and
 * unused tokens; a code point that no single token covers may also be
 * taken as "unknown" with score (lowest normal score - 10).  The best path
 * is read back from the end; consecutive unknowns become one unknown token.
 *
 * Byte fallback: when the vocabulary has <0xNN> byte tokens (SentencePiece
 * trained with byte_fallback), an unknown span is emitted as the byte
 * tokens of its UTF-8 bytes, as SentencePiece does.  llama.cpp emits the
 * unknown token there instead; no T5 or XLM-R vocabulary has byte tokens,
 * so real files tokenize the same.
 *
 * A charsmap whose double array points outside itself stops matching at
 * that point (llama.cpp throws) — the file is bad, the text still
 * tokenizes.  Cost: O(m L) hash probes for m normalised bytes and the
 * longest token L; O(m) memory.
 */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "tok/tok_int.h"
#include "tok/tok_unicode.h"

static const char ws[] = "\xe2\x96\x81";

int tok_ugm_init(struct tok_vocab *v, struct dm_err *err)
{
	float lo = FLT_MAX;

	for (int32_t i = 0; i < v->n; i++) {
		if (v->attr[i] & TOK_ATTR_NORMAL && v->score[i] < lo)
			lo = v->score[i];
		if (v->attr[i] & TOK_ATTR_BYTE)
			v->ugm_byte_fallback = true;
	}
	v->ugm_unk_score = (double)lo - 10.0;
	if (v->charsmap) {
		uint32_t blob;
		size_t n = v->n_charsmap;
		if (n < 4 || (blob = gguf_rd_u32(v->charsmap)) > n - 4 || blob == n - 4)
			return dm_err_set(err, DM_EFORMAT,
					  "tokenizer.ggml.precompiled_charsmap: %zu bytes, trie of %u", n,
					  n < 4 ? 0 : gguf_rd_u32(v->charsmap));
		v->xcda = v->charsmap + 4;
		v->n_xcda = blob / 4;
		v->repl = (const char *)v->charsmap + 4 + blob;
		v->n_repl = n - 4 - blob;
	}
	return 0;
}

/* ---- normalisation ---- */

struct buf {
	char *s;
	size_t n, cap;
};

static int put(struct buf *b, const char *s, size_t n, struct dm_err *err)
{
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		char *p;
		while (cap < b->n + n) {
			if (cap > SIZE_MAX / 2)
				return dm_err_set(err, DM_ENOMEM, "out of memory");
			cap *= 2;
		}
		if (!(p = realloc(b->s, cap)))
			return dm_err_set(err, DM_ENOMEM, "out of memory");
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->n, s, n);
	b->n += n;
	return 0;
}

/* Double-array units (darts-clone layout, as SentencePiece stores it):
 *   bit 31      set on value units (so no label ever matches them)
 *   bits 10..30 offset to the children (shifted left by 8 when bit 9 is set)
 *   bit 8       the node has a value (a key ends here)
 *   bits 0..7   the label: the input byte that leads to this node
 * A value unit holds the offset of the replacement string in bits 0..30.
 * Returns false for an index outside the array. */
static bool unit(const struct tok_vocab *v, uint32_t i, uint32_t *u)
{
	if (i >= v->n_xcda)
		return false;
	*u = gguf_rd_u32(v->xcda + 4 * (size_t)i);
	return true;
}

static uint32_t unit_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
static uint32_t unit_label(uint32_t u) { return u & ((1u << 31) | 0xFF); }

/* Longest key of the charsmap at s[0..n): its length (0: none) and the
 * replacement (*r, *rn). */
static size_t charsmap_match(const struct tok_vocab *v, const uint8_t *s, size_t n, const char **r,
			     size_t *rn)
{
	uint32_t node, u, val = 0;
	size_t best = 0;

	if (!v->n_xcda || !unit(v, 0, &u))
		return 0;
	node = unit_offset(u);
	for (size_t k = 0; k < n && s[k]; k++) {
		bool leaf;
		node ^= s[k];
		if (!unit(v, node, &u) || unit_label(u) != s[k])
			break;
		leaf = (u >> 8) & 1;
		node ^= unit_offset(u);
		if (leaf) {
			uint32_t w;
			if (!unit(v, node, &w))
				break;
			best = k + 1;
			val = w & ((1u << 31) - 1);
		}
	}
	if (!best || val >= v->n_repl)
		return 0;
	*r = v->repl + val;
	*rn = strnlen(*r, v->n_repl - val);
	return best;
}

/* The normalised text of text[0..len) into out (see the file comment). */
static int normalize(const struct tok_vocab *v, const char *text, size_t len, struct buf *out,
		     struct dm_err *err)
{
	const uint8_t *u = (const uint8_t *)text;
	bool prepended = false, in_word = false;
	int32_t *ranks = NULL;
	int rc = 0;

	if (v->n_spec && !(ranks = malloc(((size_t)v->max_len + 1) * sizeof *ranks)))
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	for (size_t off = 0; off < len;) {
		const char *r = text + off;
		size_t rn = 0, used = 0;
		int k = ranks ? tok_special_walk(v, u + off, len - off, false, ranks,
						 (size_t)v->max_len + 1)
			      : 0;
		uint32_t cp;
		if (k > 0) {
			int32_t id = v->spec_id[ranks[k - 1]];
			used = rn = v->off[id + 1] - v->off[id];
		} else if ((used = charsmap_match(v, u + off, len - off, &r, &rn)) == 0) {
			if ((used = tok_utf8_decode_lenient(u + off, len - off, &cp)) != 0) {
				rn = used;
			} else {
				r = "\xef\xbf\xbd";
				rn = 3;
				used = 1;
			}
		}
		off += used;
		for (size_t i = 0; i < rn && !rc; i++) {
			if (r[i] != ' ') {
				if (!in_word) {
					in_word = true;
					if ((v->add_space_prefix && !prepended) || v->remove_extra_ws) {
						rc = put(out, ws, 3, err);
						prepended = true;
					}
				}
				if (!rc)
					rc = put(out, r + i, 1, err);
			} else {
				in_word = false;
				if (!v->remove_extra_ws)
					rc = put(out, ws, 3, err);
			}
		}
		if (rc)
			break;
	}
	free(ranks);
	return rc;
}

/* ---- Viterbi ---- */

#define UNK_MARK (-2) /* an unknown code point, not a token of the vocab */

struct node {
	double score; /* best total score of the prefix ending here */
	size_t start; /* where its last piece starts */
	int32_t id;   /* its last piece, or UNK_MARK */
};

static bool candidate(const struct tok_vocab *v, int32_t id)
{
	return v->attr[id] & (TOK_ATTR_NORMAL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNUSED);
}

int tok_ugm_fragment(const struct tok_vocab *v, const char *text, size_t len, struct tok_ids *out,
		     struct dm_err *err)
{
	struct buf nb = { 0 };
	struct node *best = NULL;
	size_t m, *path = NULL, n_path = 0;
	int rc;

	if ((rc = normalize(v, text, len, &nb, err)) || (m = nb.n) == 0)
		goto out;
	if (m + 1 > SIZE_MAX / sizeof *best || !(best = malloc((m + 1) * sizeof *best)) ||
	    !(path = malloc((m + 1) * sizeof *path))) {
		rc = dm_err_set(err, DM_ENOMEM, "out of memory for %zu bytes of text", m);
		goto out;
	}
	for (size_t j = 0; j <= m; j++)
		best[j] = (struct node){ -DBL_MAX, 0, UNK_MARK };
	best[0].score = 0;
	for (size_t off = 0; off < m;) {
		size_t ncu = tok_utf8_len((uint8_t)nb.s[off]), lim = m - off;
		bool single = false;
		uint64_t h = TOK_HASH_INIT;
		double base = best[off].score;
		if (ncu > lim)
			ncu = lim;
		if (lim > v->max_len)
			lim = v->max_len;
		for (size_t k = 1; k <= lim; k++) {
			int32_t id;
			double sc;
			h = tok_hash_step(h, (uint8_t)nb.s[off + k - 1]);
			if ((id = tok_find_h(v, nb.s + off, k, h)) < 0 || !candidate(v, id))
				continue;
			if (k == ncu)
				single = true;
			sc = base + (v->attr[id] & TOK_ATTR_USER_DEFINED ? 0.0 : (double)v->score[id]);
			if (sc > best[off + k].score)
				best[off + k] = (struct node){ sc, off, id };
		}
		if (!single) {
			double sc = base + v->ugm_unk_score;
			if (sc > best[off + ncu].score)
				best[off + ncu] = (struct node){ sc, off, UNK_MARK };
		}
		off += ncu;
	}
	/* read the path back: path[] holds the end positions, last first */
	for (size_t j = m; j > 0; j = best[j].start)
		path[n_path++] = j;
	for (size_t p = n_path; p-- > 0 && !rc;) {
		size_t end = path[p], start = best[end].start;
		int32_t id = best[end].id;
		if (id != UNK_MARK) {
			rc = tok_ids_push(out, id, err);
		} else if (v->ugm_byte_fallback) {
			for (size_t b = start; b < end && !rc; b++)
				if (v->byte_tok[(uint8_t)nb.s[b]] >= 0)
					rc = tok_ids_push(out, v->byte_tok[(uint8_t)nb.s[b]], err);
		} else if (v->unk >= 0 && !(p + 1 < n_path && best[path[p + 1]].id == UNK_MARK)) {
			rc = tok_ids_push(out, v->unk, err); /* one for a run of unknowns */
		}
	}
out:
	free(nb.s);
	free(best);
	free(path);
	return rc;
}

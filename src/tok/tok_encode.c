/*
 * tok/encode — text to token ids.
 *
 *   1. Special tokens are cut out of the text (partition), longest first.
 *   2. Each remaining raw fragment is tokenized by the model's algorithm:
 *      SentencePiece bigram merging by score, or byte-level BPE by merge
 *      rank over the pre-tokenizer's words (both here), WordPiece
 *      (tok_wpm.c) or Unigram Viterbi (tok_ugm.c).
 *
 * Both merge loops keep the symbols as a doubly linked list over one buffer
 * and candidate pairs in a binary heap; a popped pair whose symbols changed
 * since it was pushed is stale and skipped (symbols only grow, so a pair is
 * current exactly when its two sizes still add up to the size it had).
 * Cost: O(m log m) per fragment or word of m characters.
 */
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "tok/tok_int.h"

struct sym {
	size_t start;   /* in the session buffer */
	uint32_t n;     /* bytes; 0: merged away */
	int32_t prev, next;
};

/* A candidate merge; the heap pops the smallest key, ties to the leftmost.
 * 16 bytes, so that the four children of a node of the 4-ary heap share a
 * cache line: the heap of a 1 MB fragment is far bigger than the caches. */
struct bigram {
	uint32_t key; /* SPM: order of -score; BPE: merge rank */
	int32_t left, right;
	uint32_t size;
};

/* SPM keys: higher score -> smaller key, equal scores -> equal keys (the
 * IEEE bits made monotonic; -0 counts as +0, NaN as the lowest score). */
static uint32_t score_key(float f)
{
	uint32_t u;
	if (f != f)
		return UINT32_MAX;
	if (f == 0.0f)
		f = 0.0f;
	memcpy(&u, &f, sizeof u);
	u = (u & 0x80000000u) ? ~u : u | 0x80000000u; /* ascending with f */
	return ~u;
}

struct sess {
	const struct tok_vocab *v;
	struct tok_ids out;
	struct sym *sym;
	size_t n_sym, cap_sym;
	struct bigram *heap;
	size_t n_heap, cap_heap;
	char *buf;
	size_t cap_buf;
	struct tok_pre_scratch pre;
	struct dm_err *err;
};

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
	size_t c = *cap ? *cap : 16;
	void *q;
	if (need <= *cap)
		return 0;
	while (c < need) {
		if (c > SIZE_MAX / 2 / size)
			return DM_ENOMEM;
		c *= 2;
	}
	if (!(q = realloc(*p, c * size)))
		return DM_ENOMEM;
	*p = q;
	*cap = c;
	return 0;
}

int tok_ids_push(struct tok_ids *o, int32_t id, struct dm_err *err)
{
	if (o->n == o->cap && grow((void **)&o->v, &o->cap, o->n + 1, sizeof *o->v))
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	o->v[o->n++] = id;
	return 0;
}

static int push_id(struct sess *s, int32_t id)
{
	return tok_ids_push(&s->out, id, s->err);
}

/* ---- the heap ---- */

static inline bool before(const struct bigram *a, const struct bigram *b)
{
	return a->key < b->key || (a->key == b->key && a->left < b->left);
}

static int heap_push(struct sess *s, const struct bigram *b)
{
	size_t i;
	if (s->n_heap == s->cap_heap &&
	    grow((void **)&s->heap, &s->cap_heap, s->n_heap + 1, sizeof *s->heap))
		return dm_err_set(s->err, DM_ENOMEM, "out of memory");
	i = s->n_heap++;
	while (i > 0) {
		size_t p = (i - 1) / 4;
		if (!before(b, &s->heap[p]))
			break;
		s->heap[i] = s->heap[p];
		i = p;
	}
	s->heap[i] = *b;
	return 0;
}

static struct bigram heap_pop(struct sess *s)
{
	struct bigram top = s->heap[0], last = s->heap[--s->n_heap];
	size_t i = 0, n = s->n_heap;
	for (;;) {
		size_t c = 4 * i + 1, end = c + 4 < n ? c + 4 : n;
		if (c >= n)
			break;
		for (size_t j = c + 1; j < end; j++)
			if (before(&s->heap[j], &s->heap[c]))
				c = j;
		if (!before(&s->heap[c], &last))
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	if (n)
		s->heap[i] = last;
	return top;
}

/* Splits buf[0..m) into one symbol per UTF-8 character; each byte that is
 * not part of a valid character is a symbol of its own.  (llama.cpp takes
 * the length its lead byte announces, which is the same for valid UTF-8 but
 * lets an invalid byte swallow its neighbours, even half of a U+2581.) */
static int make_symbols(struct sess *s, size_t m)
{
	const uint8_t *u = (const uint8_t *)s->buf;
	size_t off = 0;
	s->n_sym = 0;
	if (m >= INT32_MAX)
		return dm_err_set(s->err, DM_ERANGE, "a piece of %zu bytes is too long to tokenize", m);
	while (off < m) {
		uint32_t cp;
		size_t len = u[off] < 0x80 ? 1 : dm_utf8_decode(u + off, m - off, &cp);
		struct sym *y;
		if (!len)
			len = 1;
		if (s->n_sym == s->cap_sym &&
		    grow((void **)&s->sym, &s->cap_sym, s->n_sym + 1, sizeof *s->sym))
			return dm_err_set(s->err, DM_ENOMEM, "out of memory");
		y = &s->sym[s->n_sym];
		y->start = off;
		y->n = (uint32_t)len;
		y->prev = (int32_t)s->n_sym - 1;
		off += len;
		y->next = off == m ? -1 : (int32_t)s->n_sym + 1;
		s->n_sym++;
	}
	return 0;
}

/* Merges the pair b (already checked to be current). */
static void merge(struct sess *s, const struct bigram *b)
{
	struct sym *l = &s->sym[b->left], *r = &s->sym[b->right];
	l->n += r->n;
	r->n = 0;
	l->next = r->next;
	if (r->next >= 0)
		s->sym[r->next].prev = b->left;
}

static bool stale(const struct sess *s, const struct bigram *b)
{
	const struct sym *l = &s->sym[b->left], *r = &s->sym[b->right];
	return l->n == 0 || r->n == 0 || l->n + r->n != b->size;
}

/* ---- SentencePiece ---- */

static int spm_add(struct sess *s, int32_t left, int32_t right)
{
	struct bigram b;
	int32_t id;
	if (left < 0 || right < 0)
		return 0;
	b.size = s->sym[left].n + s->sym[right].n;
	id = tok_find(s->v, s->buf + s->sym[left].start, b.size);
	if (id < 0)
		return 0;
	b.key = score_key(s->v->score[id]);
	b.left = left;
	b.right = right;
	return heap_push(s, &b);
}

/* True if symbol i is exactly U+2581. */
static bool is_ws(const struct sess *s, size_t i)
{
	return s->sym[i].n == 3 && !memcmp(s->buf + s->sym[i].start, "\xe2\x96\x81", 3);
}

/* Merges the symbols a..b-1 (an unlinked run) and emits their ids. */
static int spm_segment(struct sess *s, int32_t a, int32_t b)
{
	const struct tok_vocab *v = s->v;
	int rc;

	s->n_heap = 0;
	for (int32_t i = a + 1; i < b; i++)
		if ((rc = spm_add(s, i - 1, i)))
			return rc;
	while (s->n_heap) {
		struct bigram g = heap_pop(s);
		if (stale(s, &g))
			continue;
		merge(s, &g);
		if ((rc = spm_add(s, s->sym[g.left].prev, g.left)) ||
		    (rc = spm_add(s, g.left, s->sym[g.left].next)))
			return rc;
	}
	/* every merged symbol is a token; a single character that is not
	 * falls back to its bytes */
	for (int32_t i = a; i >= 0; i = s->sym[i].next) {
		const struct sym *y = &s->sym[i];
		int32_t id = tok_find(v, s->buf + y->start, y->n);
		if (id >= 0) {
			if ((rc = push_id(s, id)))
				return rc;
			continue;
		}
		for (size_t k = 0; k < y->n; k++) {
			uint8_t c = (uint8_t)s->buf[y->start + k];
			if (v->byte_tok[c] < 0)
				return dm_err_set(s->err, DM_EUNSUPPORTED,
						  "byte 0x%02x has no token and there is no unknown token", c);
			if ((rc = push_id(s, v->byte_tok[c])))
				return rc;
		}
	}
	return 0;
}

static int spm_fragment(struct sess *s, const char *text, size_t len, bool prefix)
{
	const struct tok_vocab *v = s->v;
	size_t m = 0;
	int rc;

	/* escape: every space becomes U+2581 (3 bytes) */
	if (len > (SIZE_MAX - 3) / 3 ||
	    grow((void **)&s->buf, &s->cap_buf, 3 * len + 3, 1))
		return dm_err_set(s->err, DM_ENOMEM, "out of memory");
	if (prefix) {
		memcpy(s->buf, "\xe2\x96\x81", 3);
		m = 3;
	}
	for (size_t i = 0; i < len; i++) {
		if (text[i] == ' ') {
			memcpy(s->buf + m, "\xe2\x96\x81", 3);
			m += 3;
		} else {
			s->buf[m++] = text[i];
		}
	}
	if ((rc = make_symbols(s, m)))
		return rc;
	/* Cut into segments that cannot merge with each other (see
	 * tok_vocab.spm_split), each with its own small heap; otherwise one
	 * segment. */
	for (size_t a = 0, b; a < s->n_sym; a = b) {
		for (b = a + 1; b < s->n_sym; b++)
			if (v->spm_split && is_ws(s, b) && !is_ws(s, b - 1))
				break;
		s->sym[a].prev = -1;
		s->sym[b - 1].next = -1;
		if ((rc = spm_segment(s, (int32_t)a, (int32_t)b)))
			return rc;
	}
	return 0;
}

/* ---- byte-level BPE ---- */

static int bpe_add(struct sess *s, int32_t left, int32_t right)
{
	const struct sym *l, *r;
	struct bigram b;
	int32_t rank;
	if (left < 0 || right < 0)
		return 0;
	l = &s->sym[left];
	r = &s->sym[right];
	rank = tok_merge_rank(s->v, s->buf + l->start, l->n, s->buf + r->start, r->n);
	if (rank < 0)
		return 0;
	b.key = (uint32_t)rank;
	b.left = left;
	b.right = right;
	b.size = l->n + r->n;
	return heap_push(s, &b);
}

static int bpe_word(struct sess *s, const uint8_t *w, size_t len)
{
	const struct tok_vocab *v = s->v;
	size_t m = 0;
	int32_t id;
	int rc;

	if (len > SIZE_MAX / 2 || grow((void **)&s->buf, &s->cap_buf, 2 * len, 1))
		return dm_err_set(s->err, DM_ENOMEM, "out of memory");
	for (size_t i = 0; i < len; i++) {
		memcpy(s->buf + m, v->b2u[w[i]], v->b2u_len[w[i]]);
		m += v->b2u_len[w[i]];
	}
	if (v->ignore_merges && (id = tok_find(v, s->buf, m)) >= 0)
		return push_id(s, id);
	if ((rc = make_symbols(s, m)))
		return rc;
	s->n_heap = 0;
	for (size_t i = 1; i < s->n_sym; i++)
		if ((rc = bpe_add(s, (int32_t)i - 1, (int32_t)i)))
			return rc;
	while (s->n_heap) {
		struct bigram b = heap_pop(s);
		if (stale(s, &b))
			continue;
		merge(s, &b);
		if ((rc = bpe_add(s, s->sym[b.left].prev, b.left)) ||
		    (rc = bpe_add(s, b.left, s->sym[b.left].next)))
			return rc;
	}
	for (int32_t i = s->n_sym ? 0 : -1; i >= 0; i = s->sym[i].next) {
		const struct sym *y = &s->sym[i];
		if ((id = tok_find(v, s->buf + y->start, y->n)) >= 0) {
			if ((rc = push_id(s, id)))
				return rc;
			continue;
		}
		/* not a token (a vocabulary without the full byte alphabet):
		 * its single bytes where they are tokens, as llama.cpp does */
		for (size_t k = 0; k < y->n; k++)
			if ((id = tok_find(v, s->buf + y->start + k, 1)) >= 0 && (rc = push_id(s, id)))
				return rc;
	}
	return 0;
}

static int bpe_fragment(struct sess *s, const char *text, size_t len)
{
	int rc;
	if ((rc = tok_pre_split(s->v, &s->pre, text, len, s->err)))
		return rc;
	for (size_t i = 0; i < s->pre.out.n; i++) {
		const struct tok_span *w = &s->pre.out.v[i];
		if ((rc = bpe_word(s, (const uint8_t *)text + w->off, w->len)))
			return rc;
	}
	return 0;
}

/* ---- special-token partition ---- */

struct occ {
	int32_t rank;
	size_t pos;
};

static int cmp_occ(const void *a, const void *b)
{
	const struct occ *x = a, *y = b;
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return (x->pos > y->pos) - (x->pos < y->pos);
}

static bool is_space(uint8_t c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/* A raw fragment (id < 0) or a special token. */
struct frag {
	size_t off, len;
	int32_t id;
};

/* Cuts the special tokens out of text[0..n) with llama.cpp's semantics:
 * tokens in rank order (longest first); each one takes its leftmost
 * non-overlapping occurrences inside text no earlier token took; LSTRIP /
 * RSTRIP tokens also remove the whitespace next to them.  Found by one
 * trie walk per position instead of one scan per special token. */
static int partition(struct sess *s, const char *text, size_t n, bool all, struct frag **out,
		     size_t *n_out)
{
	const struct tok_vocab *v = s->v;
	const uint8_t *u = (const uint8_t *)text;
	struct occ *occ = NULL;
	struct frag *fr = NULL;
	size_t n_occ = 0, cap_occ = 0, n_fr = 0, cap_fr = 0;
	uint8_t *claimed = NULL; /* 0 raw, 1 token, 2 stripped */
	int32_t *ranks = NULL;
	int32_t *tok_at = NULL; /* rank of the token starting at a claimed byte */
	int rc = DM_ENOMEM;

	*out = NULL;
	*n_out = 0;
	if (v->n_spec > 0) {
		if (!(ranks = malloc(((size_t)v->max_len + 1) * sizeof *ranks)))
			goto oom;
		for (size_t i = 0; i < n; i++) {
			int k;
			if (!v->spec_first[u[i]])
				continue;
			k = tok_special_walk(v, u + i, n - i, all, ranks, (size_t)v->max_len + 1);
			for (int j = 0; j < k; j++) {
				if (grow((void **)&occ, &cap_occ, n_occ + 1, sizeof *occ))
					goto oom;
				occ[n_occ].rank = ranks[j];
				occ[n_occ++].pos = i;
			}
		}
	}
	if (n_occ) {
		qsort(occ, n_occ, sizeof *occ, cmp_occ);
		if (!(claimed = calloc(n, 1)) || !(tok_at = malloc(n * sizeof *tok_at)))
			goto oom;
		for (size_t k = 0; k < n_occ; k++) {
			int32_t id = v->spec_id[occ[k].rank];
			size_t p = occ[k].pos, len = v->off[id + 1] - v->off[id], j;
			for (j = 0; j < len && !claimed[p + j]; j++)
				;
			if (j < len)
				continue;
			memset(claimed + p, 1, len);
			tok_at[p] = occ[k].rank;
			if (v->attr[id] & TOK_ATTR_LSTRIP)
				for (j = p; j > 0 && !claimed[j - 1] && is_space(u[j - 1]); j--)
					claimed[j - 1] = 2;
			if (v->attr[id] & TOK_ATTR_RSTRIP)
				for (j = p + len; j < n && !claimed[j] && is_space(u[j]); j++)
					claimed[j] = 2;
		}
	}
	for (size_t i = 0; i < n;) {
		struct frag f;
		if (!claimed || !claimed[i]) {
			size_t j = i;
			while (j < n && (!claimed || !claimed[j]))
				j++;
			f.off = i;
			f.len = j - i;
			f.id = -1;
			i = j;
		} else if (claimed[i] == 2) {
			i++;
			continue;
		} else {
			int32_t id = v->spec_id[tok_at[i]];
			f.off = i;
			f.len = v->off[id + 1] - v->off[id];
			f.id = id;
			i += f.len;
		}
		if (grow((void **)&fr, &cap_fr, n_fr + 1, sizeof *fr))
			goto oom;
		fr[n_fr++] = f;
	}
	*out = fr;
	*n_out = n_fr;
	fr = NULL;
	rc = 0;
oom:
	free(fr);
	free(occ);
	free(claimed);
	free(ranks);
	free(tok_at);
	if (rc)
		dm_err_set(s->err, rc, "out of memory");
	return rc;
}

int tok_encode(const struct tok_vocab *v, const char *text, size_t len, unsigned flags,
	       int32_t **ids, size_t *n, struct dm_err *err)
{
	struct sess s;
	struct frag *fr = NULL;
	size_t n_fr = 0;
	bool prev_special = true; /* SPM: the first fragment gets the space prefix */
	int rc;

	*ids = NULL;
	*n = 0;
	memset(&s, 0, sizeof s);
	s.v = v;
	s.err = err;
	if ((flags & TOK_ADD_SPECIAL) && tok_add_bos(v) && (rc = push_id(&s, v->bos)))
		goto out;
	if ((rc = partition(&s, text, len, (flags & TOK_PARSE_SPECIAL) != 0, &fr, &n_fr)))
		goto out;
	for (size_t i = 0; i < n_fr; i++) {
		if (fr[i].id >= 0) {
			rc = push_id(&s, fr[i].id);
			prev_special = true;
		} else if (v->kind == TOK_KIND_SPM) {
			rc = spm_fragment(&s, text + fr[i].off, fr[i].len,
					  v->add_space_prefix && prev_special);
			prev_special = false;
		} else if (v->kind == TOK_KIND_BPE) {
			rc = bpe_fragment(&s, text + fr[i].off, fr[i].len);
		} else if (v->kind == TOK_KIND_WPM) {
			rc = tok_wpm_fragment(v, text + fr[i].off, fr[i].len, &s.out, err);
		} else {
			rc = tok_ugm_fragment(v, text + fr[i].off, fr[i].len, &s.out, err);
		}
		if (rc)
			goto out;
	}
	if ((flags & TOK_ADD_SPECIAL) && tok_add_eos(v) && (rc = push_id(&s, v->eos)))
		goto out;
	/* BERT: [SEP] closes the sequence ([CLS] is its BOS) */
	if ((flags & TOK_ADD_SPECIAL) && tok_add_sep(v) && (rc = push_id(&s, v->sep)))
		goto out;
	*ids = s.out.v;
	*n = s.out.n;
	s.out.v = NULL;
out:
	free(fr);
	free(s.out.v);
	free(s.sym);
	free(s.heap);
	free(s.buf);
	tok_pre_scratch_free(&s.pre);
	return rc;
}

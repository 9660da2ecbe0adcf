/*
 * tok/tok_int — private layout of struct tok_vocab and the helpers shared by
 * the files of the tok module (and by its tests).  Not part of the API.
 *
 * Token i's text is text[off[i] .. off[i+1]); its decoded piece (what
 * tok_piece returns) is piece[poff[i] .. poff[i+1]).  Lookup tables are
 * open-addressing hash tables of int32 indices (-1 = empty) whose capacity is
 * a power of two at least twice the number of entries, so probes end.
 */
#ifndef DM_TOK_INT_H
#define DM_TOK_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tok/tok.h"

#define TOK_PRE_MAX_RE 8

/* One pre-tokenizer: the regexes applied in order (each splits every piece
 * the previous ones left, keeping unmatched text as pieces of its own) and
 * the flags llama.cpp ties to the name. */
struct tok_pre_def {
	const char *name;          /* canonical name */
	const char *const *aliases; /* NULL-terminated, may be NULL */
	const char *const *re;     /* NULL-terminated */
	bool ignore_merges;        /* a word that is a token is taken whole */
	bool add_bos;              /* default for add_bos_token */
};

/* The definition for a tokenizer.ggml.pre value ("" = missing = default),
 * or NULL when the name is unknown. */
const struct tok_pre_def *tok_pre_find(const char *name);
/* Every definition, for tests: *n entries. */
const struct tok_pre_def *tok_pre_all(size_t *n);

struct tok_vocab {
	enum tok_kind kind;
	int32_t n; /* number of tokens */
	char *text;
	uint32_t *off;   /* n + 1 */
	float *score;    /* n */
	uint8_t *attr;   /* n, TOK_ATTR_* */
	char *piece;
	uint32_t *poff;  /* n + 1 */
	uint32_t max_len; /* longest token text */

	/* token text -> id */
	int32_t *slot;
	uint32_t slot_mask;

	/* BPE merges: merge i is the pair (mtext[moff[2i] .. moff[2i+1]),
	 * mtext[moff[2i+1] .. moff[2i+2])), its rank is i. */
	char *mtext;
	uint32_t *moff;
	int32_t n_merges;
	int32_t *mslot;
	uint32_t mslot_mask;

	/* Special tokens (control, user-defined, unknown) ranked longest
	 * first (ties: lower id first): spec_id[rank].  A byte trie over their
	 * texts: node 0 is the root, edge (node, byte) -> child in an open
	 * hash of keys node << 8 | byte; term_any[node] / term_user[node] are
	 * the best rank ending there among all specials / among user-defined
	 * ones (those parsed without TOK_PARSE_SPECIAL), or -1. */
	int32_t *spec_id;
	int32_t n_spec;
	uint64_t *edge_key;
	int32_t *edge_val;
	uint32_t edge_mask;
	int32_t *term_any, *term_user;
	int32_t n_nodes;
	uint8_t spec_first[256]; /* 1 if some special starts with this byte */

	/* Byte fallback: for each byte the id of its <0xNN> token, else of the
	 * token that is that single byte, else the unknown token's id; -1 only
	 * when there is no unknown token either. */
	int32_t byte_tok[256];
	/* GPT-2 byte alphabet: byte -> UTF-8 of its character (1 or 2 bytes). */
	uint8_t b2u[256][2];
	uint8_t b2u_len[256];

	int32_t bos, eos, eot, eom, unk, sep, pad, mask;
	bool add_bos, add_eos, add_sep, add_space_prefix, ignore_merges;
	/* Unigram: SentencePiece's remove_extra_whitespaces; the score of an
	 * unknown character (lowest normal score - 10, as llama.cpp); byte
	 * fallback (the vocab has <0xNN> byte tokens). */
	bool remove_extra_ws, ugm_byte_fallback;
	/* TOK_DEC_STRIP_SPACE applies: add_space_prefix is true (for a
	 * vocabulary of any kind), the vocabulary is WordPiece (every word
	 * starts with "▁"), or it is Unigram with remove_extra_whitespaces. */
	bool dec_strip;
	double ugm_unk_score;
	/* Unigram: tokenizer.ggml.precompiled_charsmap (owned copy), split
	 * into the double array of the normaliser trie (n_xcda 32-bit units,
	 * little-endian) and the NUL-terminated replacement strings. */
	uint8_t *charsmap;
	size_t n_charsmap;
	const uint8_t *xcda;
	uint32_t n_xcda;
	const char *repl;
	size_t n_repl;
	/* SPM: no token has U+2581 right after something that is not U+2581,
	 * so no merge can join a symbol to a following U+2581 and the text can
	 * be merged in independent segments cut in front of each run of
	 * U+2581 (same result as one pass, much smaller heaps). */
	bool spm_split;
	int32_t *eog; /* sorted */
	size_t n_eog;

	const struct tok_pre_def *pre;
	pcre2_code *re[TOK_PRE_MAX_RE];
	int n_re;

	char *chat_template;
	size_t bytes;
};

/* 64-bit FNV-1a. */
static inline uint64_t tok_hash(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
	return h;
}

/* One byte of FNV-1a: tok_hash(s, n + 1) == tok_hash_step(tok_hash(s, n), s[n]). */
static inline uint64_t tok_hash_step(uint64_t h, uint8_t c)
{
	return (h ^ c) * 0x100000001b3ull;
}
#define TOK_HASH_INIT 0xcbf29ce484222325ull

/* tok_find with the text's tok_hash already known. */
int32_t tok_find_h(const struct tok_vocab *v, const char *s, size_t n, uint64_t h);

/* A growing list of token ids (malloc'ed). */
struct tok_ids {
	int32_t *v;
	size_t n, cap;
};
/* Appends id; DM_ENOMEM. */
int tok_ids_push(struct tok_ids *o, int32_t id, struct dm_err *err);

/* Tokenizes one raw fragment (no special tokens left in it) with WordPiece
 * (tok_wpm.c) / Unigram (tok_ugm.c), appending to out.  DM_ENOMEM. */
int tok_wpm_fragment(const struct tok_vocab *v, const char *text, size_t len, struct tok_ids *out,
		     struct dm_err *err);
int tok_ugm_fragment(const struct tok_vocab *v, const char *text, size_t len, struct tok_ids *out,
		     struct dm_err *err);
/* Unigram: parses v->charsmap into xcda/repl; DM_EFORMAT if malformed. */
int tok_ugm_init(struct tok_vocab *v, struct dm_err *err);

/* Rank of the merge (a, b), or -1. */
int32_t tok_merge_rank(const struct tok_vocab *v, const char *a, size_t na, const char *b, size_t nb);

/* Length of the UTF-8 sequence a lead byte announces, as llama.cpp counts
 * it: 1 for ASCII and stray continuation bytes, else 2, 3 or 4. */
static inline size_t tok_utf8_len(uint8_t c)
{
	static const uint8_t lens[16] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };
	return lens[c >> 4];
}

/* A span of bytes of the text being split. */
struct tok_span {
	size_t off, len;
};

struct tok_spans {
	struct tok_span *v;
	size_t n, cap;
};

/* Scratch for the pre-tokenizer, per encode call (zero-initialise). */
struct tok_pre_scratch {
	pcre2_match_data *md;
	pcre2_match_context *mc;
	pcre2_jit_stack *js;
	struct tok_spans out, t1, t2;
};

/* Splits s[0..n) into words with v's pre-tokenizer.  The words cover s
 * exactly, in order; they are left in sc->out.  Each maximal run of valid
 * UTF-8 goes through the regexes; each invalid byte is a word of its own. */
int tok_pre_split(const struct tok_vocab *v, struct tok_pre_scratch *sc, const char *s, size_t n,
		  struct dm_err *err);
void tok_pre_scratch_free(struct tok_pre_scratch *sc);
/* Special tokens that match at the start of s[0..n) (all of them, or only
 * the user-defined ones): their ranks, shortest first, go to ranks[] (at
 * most cap); returns how many. */
int tok_special_walk(const struct tok_vocab *v, const uint8_t *s, size_t n, bool all,
		     int32_t *ranks, size_t cap);
/* Compiles (and JIT-compiles) v->pre's regexes into v->re. */
int tok_pre_compile(struct tok_vocab *v, struct dm_err *err);

#endif

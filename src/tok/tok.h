/*
 * tok — the tokenizers of dormant: SentencePiece BPE ("llama"), byte-level
 * BPE ("gpt2"), WordPiece ("bert") and SentencePiece Unigram ("t5"), built
 * from the tokenizer.ggml.* metadata of a GGUF file, plus decoding (whole
 * sequences and a streaming decoder).
 * Chat templates live in tok/chat.h.
 *
 * Behaviour follows the tool that made the files (llama.cpp at the commit
 * the golden vectors come from) so that ids match token for token:
 *
 *   llama (SPM)  text -> special-token partition -> per raw fragment: add
 *                one space in front when add_space_prefix and the fragment
 *                is the first or follows a special token, spaces -> U+2581
 *                "▁", then greedy bigram merging by token score (priority
 *                queue, ties to the leftmost pair); a piece that is not a
 *                token falls back to its bytes as <0xNN> tokens.
 *   gpt2 (BPE)   text -> special-token partition -> per raw fragment: the
 *                pre-tokenizer regexes of tokenizer.ggml.pre split it into
 *                words (PCRE2, UTF + UCP, JIT), each word's bytes are mapped
 *                to the GPT-2 byte alphabet and merged by merge rank
 *                (priority queue, ties to the leftmost pair).
 *   bert (WPM)   text -> special-token partition -> per raw fragment: accents
 *                stripped, lowercased, split at whitespace, punctuation and
 *                CJK ideographs; each word, "▁" in front, cut greedily into
 *                the longest tokens, or [UNK] (tok_wpm.c).  TOK_ADD_SPECIAL
 *                gives [CLS] ... [SEP] (BOS and separator ids).
 *   t5 (UGM)     text -> special-token partition -> per raw fragment: the
 *                precompiled_charsmap normalisation, spaces -> "▁", then
 *                the Viterbi segmentation of highest total score (tok_ugm.c).
 *
 * Special tokens (types control, user-defined, unknown) are cut out of the
 * text before tokenization, longest first; user-defined tokens always,
 * control and unknown ones only with TOK_PARSE_SPECIAL.  A special token is
 * never split.
 *
 * Deliberate differences from llama.cpp, all for inputs its tests never
 * cover, so that decode(encode(x)) == x for every byte string (llama and
 * gpt2; WordPiece and Unigram normalise the text, so are lossy): invalid
 * UTF-8 is kept byte for byte (gpt2: each invalid byte is a word of its own
 * instead of becoming U+FFFD; llama: each invalid byte is a symbol of its
 * own instead of swallowing the bytes after it); unused and untyped tokens
 * decode to their text instead of nothing.  Also: a SentencePiece byte with
 * no <0xNN> token (and no single-byte token) becomes the unknown token
 * instead of aborting, and an unknown tokenizer.ggml.pre is an error, not a
 * silent fallback.  WordPiece and Unigram: a Unigram vocabulary with
 * <0xNN> byte tokens falls back to them for unknown characters (as
 * SentencePiece does; llama.cpp gives [unk]); WordPiece drops a lenient
 * decoding past U+10FFFF (llama.cpp throws).  The WordPiece Unicode tables
 * come from Python's unicodedata (tok_unicode_version, 14.0 here), so
 * characters added to Unicode after that version may differ from
 * llama.cpp's tables.
 *
 * Ownership: struct tok_vocab copies everything it needs out of the GGUF
 * file (the file may be closed after tok_load) and owns it until tok_free.
 * A loaded vocab is immutable and may be used from many threads at once;
 * every encode call allocates its own scratch.
 */
#ifndef DM_TOK_H
#define DM_TOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "gguf/gguf.h"

struct tok_vocab;

enum tok_kind {
	TOK_KIND_SPM = 1, /* tokenizer.ggml.model = "llama" */
	TOK_KIND_BPE = 2, /* tokenizer.ggml.model = "gpt2" */
	TOK_KIND_WPM = 3, /* tokenizer.ggml.model = "bert" (WordPiece) */
	TOK_KIND_UGM = 4, /* tokenizer.ggml.model = "t5" (Unigram) */
};

/* Token attributes, from tokenizer.ggml.token_type (1 normal, 2 unknown,
 * 3 control, 4 user-defined, 5 unused, 6 byte; anything else: none). */
enum {
	TOK_ATTR_NORMAL = 1u << 0,
	TOK_ATTR_UNKNOWN = 1u << 1,
	TOK_ATTR_CONTROL = 1u << 2,
	TOK_ATTR_USER_DEFINED = 1u << 3,
	TOK_ATTR_UNUSED = 1u << 4,
	TOK_ATTR_BYTE = 1u << 5,
	TOK_ATTR_LSTRIP = 1u << 6, /* eats whitespace on its left when parsed */
	TOK_ATTR_RSTRIP = 1u << 7, /* eats whitespace on its right when parsed */
};

/* ---- loading --------------------------------------------------------- */

/* Builds the tokenizer from g's tokenizer.ggml.* keys: model, pre, tokens,
 * scores, token_type, merges, {bos,eos,eot,eom,unknown,seperator,padding,
 * mask,cls}_token_id, add_bos_token, add_eos_token, add_sep_token,
 * add_space_prefix, remove_extra_whitespaces, precompiled_charsmap, and
 * tokenizer.chat_template.  Works on vocab-only files.  Errors:
 * DM_ENOTFOUND (no tokenizer.ggml.model / tokens / merges for gpt2),
 * DM_EUNSUPPORTED (another tokenizer model, an unknown pre-tokenizer:
 * "unknown pre-tokenizer 'x'"), DM_EFORMAT (wrong types or lengths of the
 * arrays, more than INT32_MAX tokens), DM_ENOMEM. */
int tok_load(struct tok_vocab **out, const struct gguf_file *g, struct dm_err *err);
/* Frees everything; NULL is a no-op. */
void tok_free(struct tok_vocab *v);
/* Bytes of memory owned by v (tables, text, compiled regexes). */
size_t tok_vocab_bytes(const struct tok_vocab *v);

/* ---- facts about the vocabulary -------------------------------------- */

enum tok_kind tok_kind(const struct tok_vocab *v);
/* "llama", "gpt2", "bert" or "t5". */
const char *tok_kind_name(const struct tok_vocab *v);
/* Pre-tokenizer name as resolved ("default", "llama3", ...) for BPE (gpt2)
 * vocabularies; "" for every other kind. */
const char *tok_pre_name(const struct tok_vocab *v);
int32_t tok_n_tokens(const struct tok_vocab *v);

/* Special ids: the file's id when it gives one in range, else the default
 * llama.cpp uses for the tokenizer kind (SPM: bos 1, eos 2, unk 0;
 * WordPiece: bos 101 (or cls_token_id), unk 100, sep 102, pad 0, mask 103;
 * Unigram: eos 1, unk 2, pad 0; BPE: bos and eos 11) when that is in range;
 * -1 only when there is none. */
int32_t tok_bos(const struct tok_vocab *v);
int32_t tok_eos(const struct tok_vocab *v);
int32_t tok_eot(const struct tok_vocab *v);
int32_t tok_eom(const struct tok_vocab *v);
int32_t tok_unk(const struct tok_vocab *v);
int32_t tok_pad(const struct tok_vocab *v);
int32_t tok_sep(const struct tok_vocab *v);
/* Whether TOK_ADD_SPECIAL puts a BOS in front / an EOS at the end. */
bool tok_add_bos(const struct tok_vocab *v);
bool tok_add_eos(const struct tok_vocab *v);
/* Whether TOK_ADD_SPECIAL ends the sequence with the separator ([SEP]):
 * WordPiece vocabularies, unless tokenizer.ggml.add_sep_token says no. */
bool tok_add_sep(const struct tok_vocab *v);
bool tok_add_space_prefix(const struct tok_vocab *v);
/* True for ids that end generation: EOS, EOT, EOM and tokens whose text is
 * one of the end markers models use (<|eot_id|>, <|im_end|>, <|end|>,
 * <end_of_turn>, <|endoftext|>, <|eom_id|>, <|end_of_text|>, <EOT>, _<EOT>,
 * <end_of_utterance>). */
bool tok_is_eog(const struct tok_vocab *v, int32_t id);
/* The TOK_ATTR_* bits of id (0 for ids out of range). */
unsigned tok_attr(const struct tok_vocab *v, int32_t id);
/* The id whose text is exactly s[0..n), or -1. */
int32_t tok_find(const struct tok_vocab *v, const char *s, size_t n);
/* The token's text as stored in the file (▁ and GPT-2 byte characters
 * included); borrowed until tok_free.  DM_ERANGE for a bad id. */
int tok_text(const struct tok_vocab *v, int32_t id, const char **s, size_t *n, struct dm_err *err);
/* tokenizer.chat_template (NUL-terminated copy) or NULL. */
const char *tok_chat_template(const struct tok_vocab *v);

/* ---- encoding -------------------------------------------------------- */

enum {
	/* Add BOS / EOS / SEP as add_bos_token / add_eos_token / tok_add_sep
	 * say (WordPiece: [CLS] ... [SEP]). */
	TOK_ADD_SPECIAL = 1u << 0,
	/* Recognise control and unknown tokens written in the text. */
	TOK_PARSE_SPECIAL = 1u << 1,
};

/* Tokenizes text[0..len) (any bytes; NUL is an ordinary byte).  On success
 * *ids is malloc'ed (free with free(); NULL when *n is 0).  Errors:
 * DM_ENOMEM, DM_ERANGE (a regex ran out of its match limits, which needs a
 * pathological input, or an SPM or BPE fragment is 2 GiB (INT32_MAX bytes)
 * or more once escaped), DM_EUNSUPPORTED (a byte with no token at all). */
int tok_encode(const struct tok_vocab *v, const char *text, size_t len, unsigned flags,
	       int32_t **ids, size_t *n, struct dm_err *err);

/* ---- decoding -------------------------------------------------------- */

enum {
	/* Render control and unknown tokens as their text (else nothing). */
	TOK_DEC_SPECIAL = 1u << 0,
	/* Undo the space SentencePiece add_space_prefix put in front of the
	 * text (or the "▁" every WordPiece word and every Unigram word under
	 * remove_extra_whitespaces starts with): one leading space is removed
	 * from the first token and from the first token after each special
	 * token, when that token is a normal token.  Set it when the ids are a
	 * whole encoded text (then decode(encode(x)) == x for SentencePiece);
	 * leave it off when continuing after a prompt.  It applies to a
	 * vocabulary of any kind whose add_space_prefix is true (SPM's
	 * default; a file may set it for any kind), to every WordPiece
	 * vocabulary and to Unigram under remove_extra_whitespaces; no effect
	 * on others. */
	TOK_DEC_STRIP_SPACE = 1u << 1,
};

/* The bytes token id stands for: ▁ -> space for SPM, WordPiece and
 * Unigram (a WordPiece continuation piece has no space), <0xNN> -> that byte,
 * GPT-2 byte characters -> bytes; control/unknown tokens give their text
 * with TOK_DEC_SPECIAL and nothing without; user-defined, unused and
 * untyped tokens give their text.
 * The view is borrowed until tok_free.  DM_ERANGE for a bad id. */
int tok_piece(const struct tok_vocab *v, int32_t id, unsigned flags, const char **s, size_t *n,
	      struct dm_err *err);

/* Concatenated pieces of ids[0..n) (raw bytes; no UTF-8 repair), with the
 * TOK_DEC_* flags.  *out is malloc'ed and NUL-terminated beyond *len. */
int tok_decode(const struct tok_vocab *v, const int32_t *ids, size_t n, unsigned flags,
	       char **out, size_t *len, struct dm_err *err);

/* Streaming decoder for tokens arriving one at a time: what it returns is
 * always valid UTF-8.  A character whose bytes are spread over several
 * tokens is held back until it is complete; bytes that can never form a
 * character are returned as U+FFFD.  Concatenating every push and the
 * final flush equals tok_decode's text whenever that text is valid UTF-8. */
struct tok_decoder {
	const struct tok_vocab *v;
	unsigned flags;  /* TOK_DEC_* */
	bool strip_next; /* the next normal token loses a leading space */
	uint8_t hold[4]; /* start of an incomplete character */
	size_t n_hold;
	char *buf; /* output of the last call; owned */
	size_t cap;
};

/* Never fails; d holds no memory until the first push. */
void tok_decoder_init(struct tok_decoder *d, const struct tok_vocab *v, unsigned flags);
/* Adds one token.  out/n get the newly complete text (possibly empty),
 * valid until the next call on d.  DM_ERANGE for a bad id, DM_ENOMEM. */
int tok_decoder_push(struct tok_decoder *d, int32_t id, const char **out, size_t *n,
		     struct dm_err *err);
/* Ends the stream: a held incomplete character comes out as U+FFFD.  The
 * decoder can then be reused for a new stream. */
int tok_decoder_flush(struct tok_decoder *d, const char **out, size_t *n, struct dm_err *err);
/* Frees the output buffer; NULL is a no-op. */
void tok_decoder_free(struct tok_decoder *d);

#endif

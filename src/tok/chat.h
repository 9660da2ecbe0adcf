/*
 * tok/chat — chat templates: a list of {role, content} messages turned into
 * the prompt text a model was trained on, and the stop tokens of each
 * template.
 *
 * A template is one of a fixed set of known formats.  Which one a model
 * uses is detected from the tokenizer.chat_template text of its file by
 * looking for marker strings (the Jinja code is never executed), or forced
 * by name.  An unrecognised template falls back to ChatML and says so
 * (*fallback = true), so the caller can warn.
 *
 * The prompt never contains the leading BOS token: encode it with
 * TOK_PARSE_SPECIAL (so <|im_start|>, [INST]-era </s><s> and the like
 * become their special tokens) and put BOS in front when tok_add_bos()
 * says so, as gen_prompt_ids does (TOK_ADD_SPECIAL would also append EOS
 * or SEP for vocabularies that add them).  BOS/EOS texts inside the prompt (Llama 2,
 * Mistral, Zephyr) are the vocabulary's own token texts.
 */
#ifndef DM_TOK_CHAT_H
#define DM_TOK_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "tok/tok.h"

enum tok_chat_kind {
	TOK_CHAT_CHATML,  /* <|im_start|>role\n...<|im_end|>\n (Qwen, many others) */
	TOK_CHAT_LLAMA2,  /* [INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST] ... </s><s>[INST] */
	TOK_CHAT_LLAMA3,  /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
	TOK_CHAT_MISTRAL, /* [INST] ... [/INST]...</s>[INST] (Mistral-Instruct v0.1-v0.3) */
	TOK_CHAT_ZEPHYR,  /* <|role|>\n...</s>\n (Zephyr, TinyLlama-Chat) */
	TOK_CHAT_GEMMA,   /* <start_of_turn>user|model\n...<end_of_turn>\n */
	TOK_CHAT_PHI3,    /* <|role|>\n...<|end|>\n */
	TOK_CHAT_COUNT
};

/* One message.  role is "system", "user" or "assistant"; content may be
 * NULL (empty). */
struct tok_chat_msg {
	const char *role;
	const char *content;
};

/* The canonical name of a kind ("chatml", "llama2", "llama3", "mistral",
 * "zephyr", "gemma", "phi3"). */
const char *tok_chat_name(enum tok_chat_kind k);

/* Kind for a name (canonical or alias: "qwen", "llama-2", "llama-3",
 * "mistral-instruct", "tinyllama", "phi-3").  DM_ENOTFOUND lists the known
 * names. */
int tok_chat_by_name(const char *name, enum tok_chat_kind *out, struct dm_err *err);

/* Recognises a template from its text (a Jinja template or a bare name).
 * NULL or unrecognised text gives TOK_CHAT_CHATML with *fallback = true. */
enum tok_chat_kind tok_chat_detect(const char *tmpl, bool *fallback);

/* The kind to use for a model: `force` (a name) when not NULL, else
 * detected from v's tokenizer.chat_template, else from marker tokens in
 * v's vocabulary (<|im_start|>, <|start_header_id|>, <start_of_turn>),
 * else ChatML with *fallback = true.  DM_ENOTFOUND for an unknown force. */
int tok_chat_select(const struct tok_vocab *v, const char *force, enum tok_chat_kind *out,
		    bool *fallback, struct dm_err *err);

/* Formats msgs[0..n) with template k; add_assistant appends the opening of
 * an assistant turn for the model to complete.  v (may be NULL) supplies
 * the BOS/EOS texts ("<s>", "</s>" without it).  *out is malloc'ed,
 * NUL-terminated, *len bytes.  DM_EINVAL for an unknown role. */
int tok_chat_apply(enum tok_chat_kind k, const struct tok_vocab *v, const struct tok_chat_msg *msgs,
		   size_t n, bool add_assistant, char **out, size_t *len, struct dm_err *err);

/* The texts that end an assistant turn in template k (static strings). */
size_t tok_chat_stops(enum tok_chat_kind k, const char *const **stops);

/* Ids of v that end generation for template k: its stop texts that are
 * tokens of v, plus every end-of-generation id of v's EOS/EOT/EOM.  Writes
 * at most cap ids, returns how many were written. */
size_t tok_chat_stop_ids(enum tok_chat_kind k, const struct tok_vocab *v, int32_t *ids, size_t cap);

#endif

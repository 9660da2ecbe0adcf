/*
 * tok/chat — see chat.h.  Each template's output is what its reference
 * Jinja template renders (with HF's trim_blocks / lstrip_blocks), minus the
 * leading BOS; where a template has no system role the system message is
 * put in front of the first user message, as llama.cpp does.
 */
#include "tok/chat.h"

#include <stdlib.h>
#include <string.h>

static const struct {
	const char *name;
	enum tok_chat_kind kind;
} names[] = {
	{ "chatml", TOK_CHAT_CHATML },   { "llama2", TOK_CHAT_LLAMA2 },
	{ "llama3", TOK_CHAT_LLAMA3 },   { "mistral", TOK_CHAT_MISTRAL },
	{ "zephyr", TOK_CHAT_ZEPHYR },   { "gemma", TOK_CHAT_GEMMA },
	{ "phi3", TOK_CHAT_PHI3 },       { "qwen", TOK_CHAT_CHATML },
	{ "qwen2", TOK_CHAT_CHATML },    { "llama-2", TOK_CHAT_LLAMA2 },
	{ "llama-3", TOK_CHAT_LLAMA3 },  { "mistral-instruct", TOK_CHAT_MISTRAL },
	{ "tinyllama", TOK_CHAT_ZEPHYR }, { "phi-3", TOK_CHAT_PHI3 },
	{ "gemma2", TOK_CHAT_GEMMA },
};

const char *tok_chat_name(enum tok_chat_kind k)
{
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (names[i].kind == k)
			return names[i].name;
	return "?";
}

int tok_chat_by_name(const char *name, enum tok_chat_kind *out, struct dm_err *err)
{
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (!strcmp(name, names[i].name)) {
			*out = names[i].kind;
			return 0;
		}
	return dm_err_set(err, DM_ENOTFOUND,
			  "unknown chat template '%.64s' (chatml, llama2, llama3, mistral, zephyr, gemma, phi3)",
			  name);
}

enum tok_chat_kind tok_chat_detect(const char *t, bool *fallback)
{
	enum tok_chat_kind k;

	*fallback = false;
	if (!t) {
		*fallback = true;
		return TOK_CHAT_CHATML;
	}
	if (!tok_chat_by_name(t, &k, NULL))
		return k;
	if (strstr(t, "<|im_start|>"))
		return TOK_CHAT_CHATML;
	if (strstr(t, "<|start_header_id|>") && strstr(t, "<|end_header_id|>"))
		return TOK_CHAT_LLAMA3;
	if (strstr(t, "<start_of_turn>"))
		return TOK_CHAT_GEMMA;
	if (strstr(t, "<|assistant|>") && strstr(t, "<|end|>"))
		return TOK_CHAT_PHI3;
	if (strstr(t, "<|user|>") && (strstr(t, "<|assistant|>") || strstr(t, "<|system|>")))
		return TOK_CHAT_ZEPHYR;
	if (strstr(t, "[INST]"))
		return strstr(t, "<<SYS>>") ? TOK_CHAT_LLAMA2 : TOK_CHAT_MISTRAL;
	*fallback = true;
	return TOK_CHAT_CHATML;
}

int tok_chat_select(const struct tok_vocab *v, const char *force, enum tok_chat_kind *out,
		    bool *fallback, struct dm_err *err)
{
	static const struct {
		const char *tok;
		enum tok_chat_kind kind;
	} markers[] = {
		{ "<|im_start|>", TOK_CHAT_CHATML },
		{ "<|start_header_id|>", TOK_CHAT_LLAMA3 },
		{ "<start_of_turn>", TOK_CHAT_GEMMA },
	};
	const char *t;

	*fallback = false;
	if (force)
		return tok_chat_by_name(force, out, err);
	t = v ? tok_chat_template(v) : NULL;
	*out = tok_chat_detect(t, fallback);
	if (!*fallback || !v)
		return 0;
	for (size_t i = 0; i < sizeof markers / sizeof markers[0]; i++)
		if (tok_find(v, markers[i].tok, strlen(markers[i].tok)) >= 0) {
			*out = markers[i].kind;
			*fallback = false;
			return 0;
		}
	return 0;
}

/* A growable output string. */
struct sb {
	char *p;
	size_t n, cap;
	bool oom;
};

static void sb_add(struct sb *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;
		while (cap < b->n + n + 1)
			cap *= 2;
		if (!(p = realloc(b->p, cap))) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = 0;
}

static void sb_str(struct sb *b, const char *s) { sb_add(b, s, strlen(s)); }

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* s with leading and trailing whitespace removed (Jinja's trim/strip). */
static void sb_trim(struct sb *b, const char *s)
{
	size_t n = strlen(s);
	while (n && is_ws(*s)) {
		s++;
		n--;
	}
	while (n && is_ws(s[n - 1]))
		n--;
	sb_add(b, s, n);
}

enum role { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT };

/* The text of special token id, or dflt. */
static const char *tok_str(const struct tok_vocab *v, int32_t id, const char *dflt, char *buf,
			   size_t cap)
{
	const char *s;
	size_t n;
	if (!v || id < 0 || tok_text(v, id, &s, &n, NULL) || n >= cap)
		return dflt;
	memcpy(buf, s, n);
	buf[n] = 0;
	return buf;
}

int tok_chat_apply(enum tok_chat_kind k, const struct tok_vocab *v, const struct tok_chat_msg *msgs,
		   size_t n, bool add_assistant, char **out, size_t *len, struct dm_err *err)
{
	static const char *const role_names[] = { "system", "user", "assistant" };
	char bos_buf[64], eos_buf[64];
	const char *bos = tok_str(v, v ? tok_bos(v) : -1, "<s>", bos_buf, sizeof bos_buf);
	const char *eos = tok_str(v, v ? tok_eos(v) : -1, "</s>", eos_buf, sizeof eos_buf);
	const char *sys = NULL; /* a system message waiting for the first user turn */
	struct sb b = { 0 };
	bool first_user = true;

	*out = NULL;
	*len = 0;
	if ((unsigned)k >= TOK_CHAT_COUNT)
		return dm_err_set(err, DM_EINVAL, "chat template %d does not exist", (int)k);
	sb_add(&b, "", 0);
	for (size_t i = 0; i < n; i++) {
		const char *c = msgs[i].content ? msgs[i].content : "";
		const char *rs = msgs[i].role ? msgs[i].role : "(null)";
		enum role r;
		if (!strcmp(rs, "system")) {
			r = ROLE_SYSTEM;
		} else if (!strcmp(rs, "user")) {
			r = ROLE_USER;
		} else if (!strcmp(rs, "assistant")) {
			r = ROLE_ASSISTANT;
		} else {
			free(b.p);
			return dm_err_set(err, DM_EINVAL,
					  "message %zu: unknown role '%.32s' (system, user, assistant)", i, rs);
		}

		switch (k) {
		case TOK_CHAT_CHATML:
			sb_str(&b, "<|im_start|>");
			sb_str(&b, role_names[r]);
			sb_str(&b, "\n");
			sb_str(&b, c);
			sb_str(&b, "<|im_end|>\n");
			break;
		case TOK_CHAT_LLAMA3:
			sb_str(&b, "<|start_header_id|>");
			sb_str(&b, role_names[r]);
			sb_str(&b, "<|end_header_id|>\n\n");
			sb_trim(&b, c);
			sb_str(&b, "<|eot_id|>");
			break;
		case TOK_CHAT_ZEPHYR:
			sb_str(&b, "<|");
			sb_str(&b, role_names[r]);
			sb_str(&b, "|>\n");
			sb_str(&b, c);
			sb_str(&b, eos);
			sb_str(&b, "\n");
			break;
		case TOK_CHAT_PHI3:
			sb_str(&b, "<|");
			sb_str(&b, role_names[r]);
			sb_str(&b, "|>\n");
			sb_str(&b, c);
			sb_str(&b, "<|end|>\n");
			break;
		case TOK_CHAT_GEMMA:
			if (r == ROLE_SYSTEM) {
				sys = c;
				break;
			}
			sb_str(&b, r == ROLE_USER ? "<start_of_turn>user\n" : "<start_of_turn>model\n");
			if (r == ROLE_USER && sys) {
				sb_trim(&b, sys);
				sb_str(&b, "\n\n");
				sys = NULL;
			}
			sb_trim(&b, c);
			sb_str(&b, "<end_of_turn>\n");
			break;
		case TOK_CHAT_MISTRAL:
			if (r == ROLE_SYSTEM) {
				sys = c;
			} else if (r == ROLE_USER) {
				sb_str(&b, "[INST] ");
				if (sys) {
					sb_str(&b, sys);
					sb_str(&b, "\n\n");
					sys = NULL;
				}
				sb_str(&b, c);
				sb_str(&b, " [/INST]");
			} else {
				sb_str(&b, c);
				sb_str(&b, eos);
			}
			break;
		case TOK_CHAT_LLAMA2:
			if (r == ROLE_SYSTEM) {
				sys = c;
			} else if (r == ROLE_USER) {
				struct sb t = { 0 };
				if (!first_user)
					sb_str(&b, bos);
				sb_str(&b, "[INST] ");
				if (sys && first_user) {
					sb_str(&t, "<<SYS>>\n");
					sb_str(&t, sys);
					sb_str(&t, "\n<</SYS>>\n\n");
				}
				sb_str(&t, c);
				if (t.oom)
					b.oom = true;
				else
					sb_trim(&b, t.p);
				free(t.p);
				sb_str(&b, " [/INST]");
				first_user = false;
			} else {
				sb_str(&b, " ");
				sb_trim(&b, c);
				sb_str(&b, " ");
				sb_str(&b, eos);
			}
			break;
		case TOK_CHAT_COUNT:
			break;
		}
	}
	if (add_assistant) {
		switch (k) {
		case TOK_CHAT_CHATML:
			sb_str(&b, "<|im_start|>assistant\n");
			break;
		case TOK_CHAT_LLAMA3:
			sb_str(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
			break;
		case TOK_CHAT_ZEPHYR:
		case TOK_CHAT_PHI3:
			sb_str(&b, "<|assistant|>\n");
			break;
		case TOK_CHAT_GEMMA:
			sb_str(&b, "<start_of_turn>model\n");
			break;
		case TOK_CHAT_LLAMA2:  /* the assistant turn follows [/INST] */
		case TOK_CHAT_MISTRAL:
		case TOK_CHAT_COUNT:
			break;
		}
	}
	if (b.oom) {
		free(b.p);
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	}
	*out = b.p;
	*len = b.n;
	return 0;
}

size_t tok_chat_stops(enum tok_chat_kind k, const char *const **stops)
{
	static const char *const chatml[] = { "<|im_end|>", "<|endoftext|>" };
	static const char *const llama3[] = { "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>" };
	static const char *const eos[] = { "</s>" };
	static const char *const gemma[] = { "<end_of_turn>", "<eos>" };
	static const char *const phi3[] = { "<|end|>", "<|endoftext|>" };

	switch (k) {
	case TOK_CHAT_CHATML: *stops = chatml; return 2;
	case TOK_CHAT_LLAMA3: *stops = llama3; return 3;
	case TOK_CHAT_GEMMA: *stops = gemma; return 2;
	case TOK_CHAT_PHI3: *stops = phi3; return 2;
	case TOK_CHAT_LLAMA2:
	case TOK_CHAT_MISTRAL:
	case TOK_CHAT_ZEPHYR: *stops = eos; return 1;
	case TOK_CHAT_COUNT: break;
	}
	*stops = NULL;
	return 0;
}

static size_t add_unique(int32_t *ids, size_t n, size_t cap, int32_t id)
{
	if (id < 0 || n >= cap)
		return n;
	for (size_t i = 0; i < n; i++)
		if (ids[i] == id)
			return n;
	ids[n] = id;
	return n + 1;
}

size_t tok_chat_stop_ids(enum tok_chat_kind k, const struct tok_vocab *v, int32_t *ids, size_t cap)
{
	const char *const *stops;
	size_t ns = tok_chat_stops(k, &stops), n = 0;
	for (size_t i = 0; i < ns; i++)
		n = add_unique(ids, n, cap, tok_find(v, stops[i], strlen(stops[i])));
	n = add_unique(ids, n, cap, tok_eos(v));
	n = add_unique(ids, n, cap, tok_eot(v));
	n = add_unique(ids, n, cap, tok_eom(v));
	return n;
}

/*
 * tok/pre — the pre-tokenizers of byte-level BPE vocabularies: the regexes
 * that split text into words before BPE, chosen by tokenizer.ggml.pre.
 *
 * The patterns are the published definitions (the "pre_tokenizer" regexes
 * of each model's tokenizer.json, as grouped by name in llama.cpp's
 * llama-vocab.cpp), run on PCRE2 with PCRE2_UTF | PCRE2_UCP so \p{L},
 * \p{N}, \p{M}, \p{P}, \p{S} and \s are the full Unicode categories.  A few
 * are written with \x{...} escapes instead of literal characters, so that
 * no editor or normalisation can change them silently.
 *
 * Splitting: the regexes of a definition are applied in order; each one
 * cuts every piece left by the previous ones into its matches and the text
 * between them (unmatched text is kept as a piece, as llama.cpp's
 * unicode_regex_split does).  Each regex sees one piece at a time as its
 * whole subject, so lookarounds and $ stop at the piece's edges.
 */
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "tok/tok_int.h"

/* GPT-2's own pattern (without its final `|\s+`, which only ever matches
 * text the rest leaves unmatched, and unmatched text is kept anyway). */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"

/* Llama 3 (tiktoken cl100k-style): digits in groups of up to three. */
#define RE_LLAMA3 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}" \
	"| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* Qwen2: as Llama 3 but every digit alone. */
#define RE_QWEN2 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}" \
	"| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* Mistral Tekken: case-aware words, single digits, '/' kept with punctuation. */
#define RE_TEKKEN "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+" \
	"|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*" \
	"|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* GPT-4o (o200k): as Tekken with contractions and digit triples. */
#define RE_GPT4O "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+" \
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)?" \
	"|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*" \
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)?" \
	"|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* DeepSeek LLM's cased-letter class (Unicode's L& as of its tokenizer). */
#define DS_CASED "A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}" \
	"\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}" \
	"\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}" \
	"\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}" \
	"\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}" \
	"\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}" \
	"\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}" \
	"\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}" \
	"\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}" \
	"\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}" \
	"\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}" \
	"\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}" \
	"\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}" \
	"\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}" \
	"\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}" \
	"\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}" \
	"\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}" \
	"\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}"

/* CJK ideographs (U+4E00..U+9FA5), U+0800..U+4E00 and Hangul (DeepSeek). */
#define DS_CJK "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"

/* BLOOM / Poro / GPT-3 Finnish: everything up to whitespace or punctuation. */
#define RE_BLOOM " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+"

static const char *const re_default[] = {
	"[\\p{P}\\$\\+<=>\\^~\\|]+",
	RE_GPT2,
	"\\p{N}+",
	"[0-9][0-9][0-9]",
	NULL,
};
static const char *const re_gpt2[] = { RE_GPT2, NULL };
static const char *const re_llama3[] = { RE_LLAMA3, NULL };
static const char *const re_qwen2[] = { RE_QWEN2, NULL };
static const char *const re_tekken[] = { RE_TEKKEN, NULL };
static const char *const re_gpt4o[] = { RE_GPT4O, NULL };
static const char *const re_deepseek_llm[] = {
	"[\\r\\n]",
	"\\s?[" DS_CASED "]+",
	"\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
	"\\s+$",
	DS_CJK,
	"\\p{N}+",
	NULL,
};
static const char *const re_deepseek_coder[] = {
	"[\\r\\n]",
	"\\s?\\p{L}+",
	"\\s?\\p{P}+",
	DS_CJK,
	"\\p{N}",
	NULL,
};
static const char *const re_deepseek_v3[] = {
	"\\p{N}{1,3}",
	"[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
	"[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
	"| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
	NULL,
};
static const char *const re_falcon[] = {
	"[\\p{P}\\$\\+<=>\\^~\\|`]+",
	RE_GPT2,
	"[0-9][0-9][0-9]",
	NULL,
};
/* StarCoder family: every digit alone, then GPT-2. */
static const char *const re_starcoder[] = { "\\p{N}", RE_GPT2, NULL };
static const char *const re_bloom[] = { RE_BLOOM, NULL };
static const char *const re_viking[] = { RE_BLOOM, "\\p{N}", NULL };

static const char *const al_gpt2[] = {
	"phi-2", "jina-es", "jina-de", "gigachat", "jina-v1-en", "jina-v2-es", "jina-v2-de",
	"jina-v2-code", "roberta-bpe", "exaone4", NULL,
};
static const char *const al_llama3[] = { "llama-bpe", "llama-v3", "falcon3", NULL };
static const char *const al_qwen2[] = { "deepseek-r1-qwen", "megrez", NULL };
static const char *const al_gpt4o[] = { "llama4", NULL };
static const char *const al_poro[] = { "poro-chat", NULL };

static const struct tok_pre_def defs[] = {
	{ "default", NULL, re_default, false, false },
	{ "gpt-2", al_gpt2, re_gpt2, false, false },
	{ "mpt", NULL, re_gpt2, false, false },
	{ "olmo", NULL, re_gpt2, false, false },
	{ "jais", NULL, re_gpt2, false, false },
	{ "trillion", NULL, re_gpt2, false, false },
	{ "llama3", al_llama3, re_llama3, true, true },
	{ "dbrx", NULL, re_llama3, false, false },
	{ "smaug-bpe", NULL, re_llama3, false, false },
	{ "qwen2", al_qwen2, re_qwen2, false, false },
	{ "stablelm2", NULL, re_qwen2, false, false },
	{ "deepseek-llm", NULL, re_deepseek_llm, false, false },
	{ "deepseek-coder", NULL, re_deepseek_coder, false, false },
	{ "deepseek-v3", NULL, re_deepseek_v3, false, false },
	{ "falcon", NULL, re_falcon, false, false },
	{ "starcoder", NULL, re_starcoder, false, false },
	{ "refact", NULL, re_starcoder, false, false },
	{ "command-r", NULL, re_starcoder, false, false },
	{ "smollm", NULL, re_starcoder, false, false },
	{ "codeshell", NULL, re_starcoder, false, false },
	{ "exaone", NULL, re_starcoder, false, false },
	{ "minerva-7b", NULL, re_starcoder, false, false },
	{ "tekken", NULL, re_tekken, true, true },
	{ "gpt-4o", al_gpt4o, re_gpt4o, false, false },
	{ "bloom", NULL, re_bloom, false, false },
	{ "gpt3-finnish", NULL, re_bloom, false, false },
	{ "poro", al_poro, re_bloom, false, false },
	{ "viking", NULL, re_viking, false, false },
};

const struct tok_pre_def *tok_pre_all(size_t *n)
{
	*n = sizeof defs / sizeof defs[0];
	return defs;
}

const struct tok_pre_def *tok_pre_find(const char *name)
{
	if (!name || !*name)
		return &defs[0];
	for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
		if (!strcmp(name, defs[i].name))
			return &defs[i];
		for (const char *const *a = defs[i].aliases; a && *a; a++)
			if (!strcmp(name, *a))
				return &defs[i];
	}
	return NULL;
}

int tok_pre_compile(struct tok_vocab *v, struct dm_err *err)
{
	v->n_re = 0;
	for (const char *const *p = v->pre->re; *p; p++) {
		int ec;
		PCRE2_SIZE eo;
		size_t sz = 0;
		pcre2_code *re;

		if (v->n_re >= TOK_PRE_MAX_RE)
			return dm_err_set(err, DM_EUNSUPPORTED, "pre-tokenizer '%s': too many regexes",
					  v->pre->name);
		re = pcre2_compile((PCRE2_SPTR)*p, PCRE2_ZERO_TERMINATED,
				   PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &ec, &eo, NULL);
		if (!re) {
			PCRE2_UCHAR msg[120];
			pcre2_get_error_message(ec, msg, sizeof msg);
			return dm_err_set(err, DM_EUNSUPPORTED,
					  "pre-tokenizer '%s': regex %d at offset %zu: %s", v->pre->name,
					  v->n_re, (size_t)eo, (const char *)msg);
		}
		/* Without JIT (not built in, or no executable memory) the
		 * interpreter gives the same matches, only slower. */
		(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
		v->re[v->n_re++] = re;
		if (pcre2_pattern_info(re, PCRE2_INFO_SIZE, &sz) == 0)
			v->bytes += sz;
		sz = 0;
		if (pcre2_pattern_info(re, PCRE2_INFO_JITSIZE, &sz) == 0)
			v->bytes += sz;
	}
	return 0;
}

static int spans_push(struct tok_spans *s, size_t off, size_t len)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct tok_span *p = realloc(s->v, cap * sizeof *p);
		if (!p)
			return DM_ENOMEM;
		s->v = p;
		s->cap = cap;
	}
	s->v[s->n].off = off;
	s->v[s->n].len = len;
	s->n++;
	return 0;
}

void tok_pre_scratch_free(struct tok_pre_scratch *sc)
{
	if (!sc)
		return;
	pcre2_match_data_free(sc->md);
	pcre2_match_context_free(sc->mc);
	pcre2_jit_stack_free(sc->js);
	free(sc->out.v);
	free(sc->t1.v);
	free(sc->t2.v);
	memset(sc, 0, sizeof *sc);
}

/* Applies regex re to the piece s[off .. off+len), appending its matches
 * and the unmatched text between them (in order) to out. */
static int split_one(const pcre2_code *re, struct tok_pre_scratch *sc, const char *s, size_t off,
		     size_t len, struct tok_spans *out, struct dm_err *err)
{
	const uint8_t *sub = (const uint8_t *)s + off;
	size_t gap = 0, at = 0;

	while (at < len) {
		int rc = pcre2_match(re, sub, len, at, PCRE2_NO_UTF_CHECK, sc->md, sc->mc);
		PCRE2_SIZE *ov;
		size_t ms, me;

		if (rc == PCRE2_ERROR_NOMATCH)
			break;
		if (rc < 0) {
			PCRE2_UCHAR msg[120];
			pcre2_get_error_message(rc, msg, sizeof msg);
			return dm_err_set(err, DM_ERANGE, "pre-tokenizer: %s (piece of %zu bytes)",
					  (const char *)msg, len);
		}
		ov = pcre2_get_ovector_pointer(sc->md);
		ms = ov[0];
		me = ov[1];
		if (me <= ms) {
			/* an empty match splits nothing: search again one
			 * character further on */
			at = ms + tok_utf8_len(sub[ms < len ? ms : len - 1]);
			continue;
		}
		if (ms > gap && spans_push(out, off + gap, ms - gap))
			return dm_err_set(err, DM_ENOMEM, "out of memory");
		if (spans_push(out, off + ms, me - ms))
			return dm_err_set(err, DM_ENOMEM, "out of memory");
		gap = at = me;
	}
	if (gap < len && spans_push(out, off + gap, len - gap))
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	return 0;
}

/* Runs every regex over the valid UTF-8 run s[off .. off+len) and appends
 * the resulting words to sc->out. */
static int split_run(const struct tok_vocab *v, struct tok_pre_scratch *sc, const char *s,
		     size_t off, size_t len, struct dm_err *err)
{
	struct tok_spans *cur = &sc->t1, *next = &sc->t2, *t;
	int rc;

	cur->n = 0;
	if (spans_push(cur, off, len))
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	for (int r = 0; r < v->n_re; r++) {
		next->n = 0;
		for (size_t i = 0; i < cur->n; i++)
			if ((rc = split_one(v->re[r], sc, s, cur->v[i].off, cur->v[i].len, next, err)))
				return rc;
		t = cur;
		cur = next;
		next = t;
	}
	for (size_t i = 0; i < cur->n; i++)
		if (spans_push(&sc->out, cur->v[i].off, cur->v[i].len))
			return dm_err_set(err, DM_ENOMEM, "out of memory");
	return 0;
}

int tok_pre_split(const struct tok_vocab *v, struct tok_pre_scratch *sc, const char *s, size_t n,
		  struct dm_err *err)
{
	const uint8_t *u = (const uint8_t *)s;
	size_t i = 0, run = 0;
	int rc;

	sc->out.n = 0;
	if (!sc->md) {
		/* The largest JIT stack a match may grow to: long runs of
		 * letters or spaces backtrack through it. */
		sc->md = pcre2_match_data_create(4, NULL);
		sc->mc = pcre2_match_context_create(NULL);
		sc->js = pcre2_jit_stack_create(32 * 1024, 64 * 1024 * 1024, NULL);
		if (!sc->md || !sc->mc || !sc->js)
			return dm_err_set(err, DM_ENOMEM, "out of memory");
		pcre2_jit_stack_assign(sc->mc, NULL, sc->js);
	}
	while (i < n) {
		uint32_t cp;
		size_t k = dm_utf8_decode(u + i, n - i, &cp);
		if (k) {
			i += k;
			continue;
		}
		if (i > run && (rc = split_run(v, sc, s, run, i - run, err)))
			return rc;
		if (spans_push(&sc->out, i, 1))
			return dm_err_set(err, DM_ENOMEM, "out of memory");
		run = ++i;
	}
	if (n > run && (rc = split_run(v, sc, s, run, n - run, err)))
		return rc;
	return 0;
}

/*
 * cli/tokenize — `dormant tokenize MODEL [options] [TEXT]` and
 * `dormant detokenize MODEL IDS...`.  Both work on full models and on
 * vocab-only GGUF files: only the tokenizer.* metadata is read.
 *
 * tokenize prints the ids of TEXT as one line of space-separated integers
 * (or, with --pieces, one "id<TAB>piece" line per token, the piece escaped
 * for the terminal).  The text comes from the argument, or byte for byte
 * from a file (--file F) or stdin (-): no newline is added or removed.
 * detokenize writes the decoded bytes exactly, with no newline added.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "gguf/gguf.h"
#include "tok/chat.h"
#include "tok/tok.h"

static const char tokenize_usage[] =
	"usage: dormant tokenize MODEL [options] [--file F | - | TEXT]\n"
	"  --no-bos             do not add the BOS/EOS ([CLS]/[SEP]) tokens the model asks for\n"
	"  --special            recognise special tokens written in the text (<s>, <|im_end|>, ...)\n"
	"  --pieces             print one 'id<TAB>piece' line per token\n"
	"  --file F             read the text from F byte for byte ('-' reads stdin)\n"
	"  --chat               tokenize the chat prompt for TEXT as a user message\n"
	"  --system S           with --chat: a system message first\n"
	"  --chat-template NAME with --chat: chatml, llama2, llama3, mistral, zephyr, gemma, phi3\n"
	"                       (default: detected from the model's tokenizer.chat_template)\n";

static const char detokenize_usage[] =
	"usage: dormant detokenize MODEL [--special] [--keep-space] IDS...\n"
	"  --special     write control tokens (<s>, </s>, ...) as their text\n"
	"  --keep-space  keep the space SentencePiece models put in front of the text\n"
	"  IDS           token ids, as separate arguments or one space/comma separated list\n";

/* Loads the tokenizer of the GGUF file at path. */
static int load_vocab(const char *path, struct tok_vocab **v)
{
	struct gguf_file *g;
	struct dm_err err;

	if (gguf_open(&g, path, &err))
		return cli_fail("%s", err.msg);
	if (tok_load(v, g, &err)) {
		gguf_close(g);
		return cli_fail("%s: %s", path, err.msg);
	}
	gguf_close(g);
	return 0;
}

/* Reads all of f into a malloc'ed buffer (NUL-terminated beyond *n). */
static char *slurp(FILE *f, size_t *n)
{
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	while (buf) {
		size_t k = fread(buf + len, 1, cap - len - 1, f);
		len += k;
		if (len < cap - 1) {
			if (ferror(f)) {
				free(buf);
				return NULL;
			}
			buf[len] = 0;
			*n = len;
			return buf;
		}
		char *p = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
		if (!p)
			free(buf);
		buf = p;
		cap *= 2;
	}
	return NULL;
}

int cli_tokenize(int argc, char **argv)
{
	const char *model = NULL, *text = NULL, *file = NULL, *system = NULL, *tmpl = NULL;
	unsigned flags = TOK_ADD_SPECIAL;
	bool pieces = false, opts = true, have_text = false, chat = false;
	char *prompt = NULL;
	struct tok_vocab *v = NULL;
	struct dm_err err;
	char *buf = NULL;
	size_t len = 0, n = 0;
	int32_t *ids = NULL;
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (opts && !strcmp(a, "--")) {
			opts = false;
		} else if (opts && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
			fputs(tokenize_usage, stdout);
			return 0;
		} else if (opts && !strcmp(a, "--no-bos")) {
			flags &= ~(unsigned)TOK_ADD_SPECIAL;
		} else if (opts && !strcmp(a, "--special")) {
			flags |= TOK_PARSE_SPECIAL;
		} else if (opts && !strcmp(a, "--pieces")) {
			pieces = true;
		} else if (opts && !strcmp(a, "--chat")) {
			chat = true;
		} else if (opts && (!strcmp(a, "--system") || !strcmp(a, "--chat-template"))) {
			if (++i >= argc)
				return cli_fail("%s needs a value", a), 2;
			*(a[2] == 's' ? &system : &tmpl) = argv[i];
		} else if (opts && !strcmp(a, "--file")) {
			if (++i >= argc)
				return cli_fail("--file needs a file name"), 2;
			file = argv[i];
		} else if (opts && a[0] == '-' && a[1]) {
			cli_fail("tokenize: unknown option '%s'", a);
			fputs(tokenize_usage, stderr);
			return 2;
		} else if (!model) {
			model = a;
		} else if (!have_text) {
			if (!strcmp(a, "-") && opts)
				file = "-";
			else
				text = a;
			have_text = true;
		} else {
			return cli_fail("tokenize: more than one TEXT (quote it)"), 2;
		}
	}
	if (!model || (!have_text && !file) || (file && text)) {
		fputs(tokenize_usage, stderr);
		return 2;
	}
	if (file) {
		FILE *f = strcmp(file, "-") ? fopen(file, "rb") : stdin;
		if (!f)
			return cli_fail("%s: %s", file, strerror(errno));
		buf = slurp(f, &len);
		if (f != stdin)
			fclose(f);
		if (!buf)
			return cli_fail("%s: cannot read", file);
	} else {
		len = strlen(text);
	}
	if (load_vocab(model, &v))
		goto out;
	if (chat) {
		struct tok_chat_msg msgs[2];
		enum tok_chat_kind kind;
		size_t nm = 0;
		bool fallback;
		if (tok_chat_select(v, tmpl, &kind, &fallback, &err)) {
			cli_fail("%s", err.msg);
			goto out;
		}
		if (fallback)
			fprintf(stderr, "dormant: warning: %s: chat template not recognised, using chatml\n",
				model);
		if (system)
			msgs[nm++] = (struct tok_chat_msg){ "system", system };
		msgs[nm++] = (struct tok_chat_msg){ "user", buf ? buf : text };
		if (tok_chat_apply(kind, v, msgs, nm, true, &prompt, &len, &err)) {
			cli_fail("%s", err.msg);
			goto out;
		}
		flags |= TOK_PARSE_SPECIAL;
	}
	if (tok_encode(v, prompt ? prompt : buf ? buf : text, len, flags, &ids, &n, &err)) {
		cli_fail("%s: %s", model, err.msg);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (pieces) {
			const char *s;
			size_t k;
			tok_piece(v, ids[i], TOK_DEC_SPECIAL, &s, &k, NULL);
			printf("%d\t", ids[i]);
			cli_text_str(stdout, s, k);
			putchar('\n');
		} else {
			printf(i ? " %d" : "%d", ids[i]);
		}
	}
	if (!pieces)
		putchar('\n');
	rc = fflush(stdout) ? cli_fail("stdout: write error") : 0;
out:
	free(prompt);
	free(ids);
	free(buf);
	tok_free(v);
	return rc;
}

/* Appends the ids in s (separated by spaces, tabs, newlines or commas). */
static int parse_ids(const char *s, int32_t **ids, size_t *n, size_t *cap)
{
	while (*s) {
		char *end;
		long x;
		if (strchr(" \t\n\r,", *s)) {
			s++;
			continue;
		}
		errno = 0;
		x = strtol(s, &end, 10);
		if (end == s || errno || x < INT32_MIN || x > INT32_MAX ||
		    (*end && !strchr(" \t\n\r,", *end)))
			return cli_fail("detokenize: '%s' is not a token id", s);
		if (*n == *cap) {
			size_t c = *cap ? *cap * 2 : 64;
			int32_t *p = realloc(*ids, c * sizeof *p);
			if (!p)
				return cli_fail("out of memory");
			*ids = p;
			*cap = c;
		}
		(*ids)[(*n)++] = (int32_t)x;
		s = end;
	}
	return 0;
}

int cli_detokenize(int argc, char **argv)
{
	const char *model = NULL;
	unsigned flags = TOK_DEC_STRIP_SPACE;
	bool opts = true;
	struct tok_vocab *v = NULL;
	struct dm_err err;
	int32_t *ids = NULL;
	size_t n = 0, cap = 0, len;
	char *text = NULL;
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (opts && !strcmp(a, "--")) {
			opts = false;
		} else if (opts && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
			fputs(detokenize_usage, stdout);
			rc = 0;
			goto out;
		} else if (opts && !strcmp(a, "--special")) {
			flags |= TOK_DEC_SPECIAL;
		} else if (opts && !strcmp(a, "--keep-space")) {
			flags &= ~(unsigned)TOK_DEC_STRIP_SPACE;
		} else if (opts && a[0] == '-' && !(a[1] >= '0' && a[1] <= '9')) {
			cli_fail("detokenize: unknown option '%s'", a);
			fputs(detokenize_usage, stderr);
			rc = 2;
			goto out;
		} else if (!model) {
			model = a;
		} else if (parse_ids(a, &ids, &n, &cap)) {
			rc = 2;
			goto out;
		}
	}
	if (!model) {
		fputs(detokenize_usage, stderr);
		rc = 2;
		goto out;
	}
	if (load_vocab(model, &v))
		goto out;
	if (tok_decode(v, ids, n, flags, &text, &len, &err)) {
		cli_fail("%s: %s", model, err.msg);
		goto out;
	}
	fwrite(text, 1, len, stdout);
	rc = fflush(stdout) ? cli_fail("stdout: write error") : 0;
out:
	free(text);
	free(ids);
	tok_free(v);
	return rc;
}

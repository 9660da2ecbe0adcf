/* cli/main — subcommand dispatch. */
#include "cli/cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/utf8.h"
#include "dormant.h"

int cli_fail(const char *fmt, ...)
{
	va_list ap;
	fputs("dormant: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

void cli_json_str(FILE *f, const char *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0;

	fputc('"', f);
	while (i < n) {
		uint32_t cp;
		size_t k = dm_utf8_decode(p + i, n - i, &cp);
		if (!k) {
			fputs("\\ufffd", f);
			i++;
			continue;
		}
		if (cp == '"' || cp == '\\')
			fprintf(f, "\\%c", (char)cp);
		else if (cp == '\n')
			fputs("\\n", f);
		else if (cp == '\r')
			fputs("\\r", f);
		else if (cp == '\t')
			fputs("\\t", f);
		else if (cp < 0x20 || cp == 0x7F)
			fprintf(f, "\\u%04x", cp);
		else
			fwrite(p + i, 1, k, f);
		i += k;
	}
	fputc('"', f);
}

void cli_text_str(FILE *f, const char *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0;

	while (i < n) {
		uint32_t cp;
		size_t k = dm_utf8_decode(p + i, n - i, &cp);
		if (!k) {
			fprintf(f, "\\x%02x", p[i]);
			i++;
			continue;
		}
		if (cp == '\n')
			fputs("\\n", f);
		else if (cp == '\t')
			fputs("\\t", f);
		else if (cp == '\r')
			fputs("\\r", f);
		else if (cp == '\\')
			fputs("\\\\", f);
		else if (cp == '"')
			fputs("\\\"", f);
		else if (cp < 0x20 || cp == 0x7F)
			fprintf(f, "\\x%02x", cp);
		else
			fwrite(p + i, 1, k, f);
		i += k;
	}
}

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *help;
} commands[] = {
	{ "info", cli_info, "info FILE [--json] [--full]   show a GGUF file's header, metadata and tensors" },
	{ "synth", cli_synth, "synth [--preset tiny|110m|1b|minilm] [--arch A] [--rank] [--type T] [--seed S] -o FILE   write a synthetic model (llama, qwen2, qwen3, gemma2, gemma3, phi3; encoders bert, nomic-bert, --rank for a reranker)" },
	{ "bench", cli_bench, "bench kernels|speed|rag|cold|warm|context|max-tokens|memory|warmup|threads|batch|ctx|policies|all [MODEL] [--quick] [--json FILE] [--report DIR]   benchmarks: kernels, steady-state speed, the model lifecycle ('dormant bench --help')" },
	{ "run", cli_run, "run MODEL [PROMPT] [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P] [--seed S] [--ctx N] [--batch N] [--threads N] [--chat] [--system S] [--stats]   generate text" },
	{ "perplexity", cli_perplexity, "perplexity MODEL FILE [--ctx N] [--batch N] [--threads N]   perplexity of a text file" },
	{ "logits", cli_logits, "logits MODEL (PROMPT | --ids FILE) -o OUT.f32 [--ctx N] [--threads N]   float32 logits at every prompt position (to compare with another engine)" },
	{ "serve", cli_serve, "serve [--config FILE] [--profile NAME] [--host ADDR] [--port N] [--model NAME=PATH]... [--models-dir DIR]... [--no-discover] [--api-key KEY] [--strict]   HTTP server (OpenAI + Ollama APIs)" },
	{ "demo", cli_demo, "demo [MODEL]   the lifecycle story in numbers through a real server (default: a synthetic 110M model)" },
	{ "ls", cli_ls, "ls [--config FILE] [--profile NAME] [--models-dir DIR]... [--no-discover] [--json] | ls --host ADDR [--port N]   models a server would serve (configured and discovered): size, architecture, quantization, parameters, context, source" },
	{ "ps", cli_ps, "ps [--host ADDR] [--port N] [--json]   models of a running server: state, memory, expiry" },
	{ "config", cli_config, "config [check] [--config FILE] [--profile NAME]   the effective configuration and where each value came from; check: every model checked without loading it" },
	{ "tokenize", cli_tokenize, "tokenize MODEL [--no-bos] [--special] [--pieces] [--chat] [--file F | - | TEXT]   print token ids" },
	{ "embed", cli_embed, "embed MODEL TEXT... [--file F] [--dimensions N] [--no-truncate] [--json]   one L2-normalised vector per text (encoders batched, pooled as the file says)" },
	{ "rerank", cli_rerank, "rerank MODEL QUERY DOC... [--no-truncate] [--json]   a reranker's score per document, in input order (raw head output)" },
	{ "detokenize", cli_detokenize, "detokenize MODEL [--special] [--keep-space] IDS...   print the text of token ids" },
};

static void usage(FILE *f)
{
	fprintf(f, "dormant %s — a local LLM runtime that gives memory back\n\nusage:\n",
		DORMANT_VERSION);
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  dormant %s\n", commands[i].help);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage(stderr), 2;
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("dormant %s\n", DORMANT_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	cli_fail("unknown command '%s' (try 'dormant --help')", argv[1]);
	return 2;
}

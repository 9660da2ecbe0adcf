/*
 * cli/run — `dormant run MODEL [PROMPT]` (generate text) and
 * `dormant perplexity MODEL FILE` (the standard perplexity procedure).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "base/mem.h"
#include "cli/cli.h"
#include "cli/cli_model.h"
#include "mgr/discover.h"
#include "model/gen.h"
#include "model/ppl.h"
#include "tok/chat.h"

#include <editline/readline.h>

double cli_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double cli_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int cli_parse_long(const char *opt, const char *val, long lo, long hi, long *out)
{
	char *end;
	long v;

	if (!val)
		return cli_fail("%s needs a value", opt), -1;
	errno = 0;
	v = strtol(val, &end, 10);
	if (errno || !*val || *end || v < lo || v > hi)
		return cli_fail("%s: '%s' is not a whole number between %ld and %ld", opt, val, lo, hi), -1;
	*out = v;
	return 0;
}

int cli_parse_float(const char *opt, const char *val, double lo, double hi, float *out)
{
	char *end;
	double v;

	if (!val)
		return cli_fail("%s needs a value", opt), -1;
	errno = 0;
	v = strtod(val, &end);
	if (errno || !*val || *end || !(v >= lo && v <= hi))
		return cli_fail("%s: '%s' is not a number between %g and %g", opt, val, lo, hi), -1;
	*out = (float)v;
	return 0;
}

/* Reads a whole file (or stdin for "-") byte for byte. */
char *cli_read_all(const char *path, size_t *n)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	char *buf = NULL;
	size_t cap = 0, len = 0;

	if (!f)
		return NULL;
	for (;;) {
		if (len + 65536 + 1 > cap) {
			char *nb;
			cap = cap ? cap * 2 : 1 << 17;
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
		}
		size_t k = fread(buf + len, 1, 65536, f);
		len += k;
		if (k == 0)
			break;
	}
	if (buf && ferror(f)) {
		free(buf);
		buf = NULL;
	}
	if (f != stdin)
		fclose(f);
	if (buf) {
		buf[len] = '\0';
		*n = len;
	}
	return buf;
}

static int print_text(void *ud, int32_t id, const char *text, size_t n)
{
	(void)ud;
	(void)id;
	if (n && fwrite(text, 1, n, stdout) != n)
		return 1;
	fflush(stdout);
	return 0;
}

/* Collects the assistant's reply while printing it. */
struct reply {
	char *buf;
	size_t n, cap;
};

static int print_and_keep(void *ud, int32_t id, const char *text, size_t n)
{
	struct reply *r = ud;
	if (r->n + n + 1 > r->cap) {
		size_t cap = (r->n + n + 1) * 2;
		char *nb = realloc(r->buf, cap);
		if (!nb)
			return 1;
		r->buf = nb;
		r->cap = cap;
	}
	memcpy(r->buf + r->n, text, n);
	r->n += n;
	r->buf[r->n] = '\0';
	return print_text(NULL, id, text, n);
}

/* Interactive chat on a terminal: line editing and history (libedit); the
 * whole conversation is re-formatted with the template each turn. */
static int interactive(struct cli_model *cm, enum tok_chat_kind kind, const char *system_msg,
		       const struct gen_params *gp)
{
	struct tok_chat_msg *msgs = NULL;
	char **owned = NULL;
	size_t nm = 0, no = 0;
	struct dm_err err;
	int rc = 0;

	fprintf(stderr, "dormant: chatting with %s (template %s); Ctrl-D to quit\n", cm->g->name,
		tok_chat_name(kind));
	msgs = malloc(sizeof *msgs);
	if (!msgs)
		return cli_fail("out of memory");
	if (system_msg)
		msgs[nm++] = (struct tok_chat_msg){ "system", system_msg };
	for (;;) {
		char *line = readline("> ");
		struct reply r = { 0 };
		struct gen_stats st;
		int32_t *ids = NULL;
		size_t n_ids = 0;
		void *p1, *p2;

		if (!line)
			break;
		if (!*line) {
			free(line);
			continue;
		}
		add_history(line);
		p1 = realloc(msgs, (nm + 2) * sizeof *msgs);
		p2 = realloc(owned, (no + 2) * sizeof *owned);
		if (!p1 || !p2) {
			free(line);
			free(p1 ? p1 : msgs);
			msgs = NULL;
			owned = p2 ? p2 : owned;
			rc = cli_fail("out of memory");
			break;
		}
		msgs = p1;
		owned = p2;
		owned[no++] = line;
		msgs[nm++] = (struct tok_chat_msg){ "user", line };
		if (gen_prompt_ids(cm->v, &kind, msgs, nm, NULL, &ids, &n_ids, &err) ||
		    gen_run(cm->ctx, cm->v, ids, n_ids, gp, print_and_keep, &r, NULL, &st, &err)) {
			fprintf(stderr, "\ndormant: %s\n", err.msg);
			free(ids);
			free(r.buf);
			nm--; /* drop the turn that failed (context full, ...) */
			continue;
		}
		free(ids);
		putchar('\n');
		owned[no++] = r.buf ? r.buf : strdup("");
		msgs[nm++] = (struct tok_chat_msg){ "assistant", owned[no - 1] };
	}
	for (size_t i = 0; i < no; i++)
		free(owned[i]);
	free(owned);
	free(msgs);
	return rc;
}

/* Common options of run / perplexity / bench speed. */
static int model_opt(int *i, int argc, char **argv, struct cli_model_opts *mo, bool *used)
{
	const char *a = argv[*i], *val = *i + 1 < argc ? argv[*i + 1] : NULL;
	long v;

	*used = true;
	if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
		if (cli_parse_long(a, val, 1, 512, &v))
			return -1;
		mo->n_threads = (int)v;
	} else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
		if (cli_parse_long(a, val, 1, 1 << 24, &v))
			return -1;
		mo->n_ctx = (int32_t)v;
	} else if (!strcmp(a, "-b") || !strcmp(a, "--batch")) {
		if (cli_parse_long(a, val, 1, 1 << 20, &v))
			return -1;
		mo->n_batch = (int32_t)v;
	} else {
		*used = false;
		return 0;
	}
	(*i)++;
	return 0;
}

int cli_run(int argc, char **argv)
{
	struct cli_model_opts mo = { 0 };
	struct gen_params gp;
	struct cli_model cm;
	struct gen_stats st;
	struct dm_err err;
	struct dm_mem_usage mu;
	enum tok_chat_kind kind = TOK_CHAT_CHATML;
	bool fallback = false;
	const char *path = NULL, *prompt = NULL, *system_msg = NULL, *tmpl = NULL;
	bool stats = false, chat = false;
	int32_t *ids = NULL;
	size_t n_ids = 0;
	struct cli_disc cd = { .n_dirs = 0 };
	static struct disc_model dm; /* large; the stop strings point into it */
	unsigned set = 0;            /* sampling flags given: a discovered model's defaults stay under them */
	struct stat sb;
	int rc;

	gen_params_default(&gp);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		bool used;
		long v;

		if (model_opt(&i, argc, argv, &mo, &used))
			return 2;
		if (used)
			continue;
		if ((rc = cli_disc_opt(&cd, &i, argc, argv))) {
			if (rc < 0)
				return 2;
			continue;
		}
		if (!strcmp(a, "--temp")) set |= 1;
		else if (!strcmp(a, "--top-k")) set |= 2;
		else if (!strcmp(a, "--top-p")) set |= 4;
		else if (!strcmp(a, "--min-p")) set |= 8;
		else if (!strcmp(a, "--repeat-penalty")) set |= 16;
		else if (!strcmp(a, "-n") || !strcmp(a, "--max-tokens")) set |= 32;
		if (!strcmp(a, "-n") || !strcmp(a, "--max-tokens")) {
			if (cli_parse_long(a, val, -1, 1 << 24, &v))
				return 2;
			gp.n_predict = (int32_t)v;
			i++;
		} else if (!strcmp(a, "--temp")) {
			if (cli_parse_float(a, val, 0, 100, &gp.sample.temp))
				return 2;
			i++;
		} else if (!strcmp(a, "--top-k")) {
			if (cli_parse_long(a, val, 0, 1 << 24, &v))
				return 2;
			gp.sample.top_k = (int32_t)v;
			i++;
		} else if (!strcmp(a, "--top-p")) {
			if (cli_parse_float(a, val, 0, 1, &gp.sample.top_p))
				return 2;
			i++;
		} else if (!strcmp(a, "--min-p")) {
			if (cli_parse_float(a, val, 0, 1, &gp.sample.min_p))
				return 2;
			i++;
		} else if (!strcmp(a, "--repeat-penalty")) {
			if (cli_parse_float(a, val, 0.01, 100, &gp.sample.repeat_penalty))
				return 2;
			i++;
		} else if (!strcmp(a, "--seed")) {
			if (cli_parse_long(a, val, 0, LONG_MAX, &v))
				return 2;
			gp.sample.seed = (uint64_t)v;
			i++;
		} else if (!strcmp(a, "--stats")) {
			stats = true;
		} else if (!strcmp(a, "--chat")) {
			chat = true;
		} else if (!strcmp(a, "--system") || !strcmp(a, "--chat-template")) {
			if (!val)
				return cli_fail("run: %s needs a value", a), 2;
			if (a[2] == 's')
				system_msg = val;
			else
				tmpl = val;
			i++;
		} else if (a[0] == '-' && a[1]) {
			return cli_fail("run: unknown option '%s'", a), 2;
		} else if (!path) {
			path = a;
		} else if (!prompt) {
			prompt = a;
		} else {
			return cli_fail("run: more than one PROMPT (quote it)"), 2;
		}
	}
	if (!path)
		return cli_fail("usage: dormant run MODEL [PROMPT] [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R] [--seed S] [--ctx N] [--batch N] [--threads N] [--chat] [--system S] [--chat-template NAME] [--stats] [--models-dir DIR]... [--no-discover]"), 2;
	/* not a file (nor written like a path: "/...", "./...", "*.gguf"): a
	 * discovered model's name (mgr/discover.h), with its Ollama defaults
	 * under the flags given */
	if (stat(path, &sb) && path[0] != '/' && path[0] != '.' &&
	    !(strlen(path) > 5 && !strcasecmp(path + strlen(path) - 5, ".gguf"))) {
		if (cli_disc_find(&cd, path, &dm, &err))
			return cli_fail("run: %s", err.msg);
		path = dm.path;
		if (!system_msg && dm.system[0])
			system_msg = dm.system;
		if (!mo.n_ctx && dm.params.num_ctx)
			mo.n_ctx = dm.params.num_ctx;
		if (!(set & 1) && dm.params.has_temperature)
			gp.sample.temp = dm.params.temperature;
		if (!(set & 2) && dm.params.has_top_k)
			gp.sample.top_k = dm.params.top_k;
		if (!(set & 4) && dm.params.has_top_p)
			gp.sample.top_p = dm.params.top_p;
		if (!(set & 8) && dm.params.has_min_p)
			gp.sample.min_p = dm.params.min_p;
		if (!(set & 16) && dm.params.has_repeat_penalty)
			gp.sample.repeat_penalty = dm.params.repeat_penalty;
		if (!(set & 32) && dm.params.has_num_predict)
			gp.n_predict = dm.params.num_predict;
		for (int k = 0; k < DISC_MAX_STOP && k < GEN_MAX_STOP && dm.params.stop[k][0]; k++)
			gp.stop[k] = dm.params.stop[k];
	}
	if (cli_model_open(&cm, path, &mo, &err))
		return cli_fail("%s", err.msg);
	if (chat || (!prompt && isatty(0))) {
		if (tok_chat_select(cm.v, tmpl, &kind, &fallback, &err)) {
			cli_model_close(&cm);
			return cli_fail("run: %s", err.msg);
		}
		if (fallback)
			fprintf(stderr, "dormant: warning: %s: chat template not recognised, using %s\n", path,
				tok_chat_name(kind));
		{
			int32_t stop_ids[GEN_MAX_STOP];
			size_t ns = tok_chat_stop_ids(kind, cm.v, stop_ids, GEN_MAX_STOP);
			for (size_t k = 0; k < ns; k++)
				gp.stop_ids[k] = stop_ids[k];
		}
	}
	if (!prompt && isatty(0)) {
		rc = interactive(&cm, kind, system_msg, &gp);
		cli_model_close(&cm);
		return rc;
	}
	if (!prompt)
		prompt = "";
	{
		struct tok_chat_msg msgs[2];
		size_t nm = 0;
		if (system_msg)
			msgs[nm++] = (struct tok_chat_msg){ "system", system_msg };
		msgs[nm++] = (struct tok_chat_msg){ "user", prompt };
		rc = gen_prompt_ids(cm.v, chat ? &kind : NULL, msgs, nm, prompt, &ids, &n_ids, &err);
	}
	if (rc) {
		cli_model_close(&cm);
		return cli_fail("%s: %s", path, err.msg);
	}
	if (n_ids == 0) {
		free(ids);
		cli_model_close(&cm);
		return cli_fail("run: the prompt is empty and the model adds no BOS token");
	}
	rc = gen_run(cm.ctx, cm.v, ids, n_ids, &gp, print_text, NULL, NULL, &st, &err);
	putchar('\n');
	fflush(stdout);
	if (!rc && stats) {
		dm_mem_usage(&mu);
		fprintf(stderr,
			"load:      %.3f s (%d threads, ISA %s)\n"
			"prompt:    %d tokens in %.3f s, %.2f tok/s\n"
			"generated: %d tokens in %.3f s, %.2f tok/s (stop: %s)\n"
			"peak RSS:  %.1f MiB\n",
			cm.load_s, cm.n_threads, kern_isa_name(cm.ctx->isa), st.n_prompt, st.t_prompt_s,
			st.t_prompt_s > 0 ? st.n_prompt / st.t_prompt_s : 0.0, st.n_gen, st.t_gen_s,
			st.t_gen_s > 0 ? st.n_gen / st.t_gen_s : 0.0, gen_stop_name(st.stop),
			(double)mu.rss_peak / 1048576.0);
	}
	free(ids);
	cli_model_close(&cm);
	if (rc)
		return cli_fail("%s: %s", path, err.msg);
	return 0;
}

static void print_chunk(void *ud, size_t chunk, double running)
{
	(void)ud;
	printf("[%zu]%.4f,", chunk + 1, running);
	fflush(stdout);
}

int cli_perplexity(int argc, char **argv)
{
	struct cli_model_opts mo = { 0 };
	struct cli_model cm;
	struct dm_err err;
	const char *path = NULL, *text_path = NULL;
	char *text;
	size_t n_text, n_ids;
	int32_t *ids = NULL, n_ctx;
	struct ppl_result res;
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		bool used;
		if (model_opt(&i, argc, argv, &mo, &used))
			return 2;
		if (used)
			continue;
		if (argv[i][0] == '-' && argv[i][1])
			return cli_fail("perplexity: unknown option '%s'", argv[i]), 2;
		if (!path)
			path = argv[i];
		else if (!text_path)
			text_path = argv[i];
		else
			return cli_fail("perplexity: too many arguments"), 2;
	}
	if (!path || !text_path)
		return cli_fail("usage: dormant perplexity MODEL FILE [--ctx N] [--batch N] [--threads N]"), 2;
	if (!(text = cli_read_all(text_path, &n_text)))
		return cli_fail("%s: %s", text_path, strerror(errno ? errno : EIO));
	/* as the reference tool does: one trailing newline of the file is dropped */
	if (n_text && text[n_text - 1] == '\n')
		text[--n_text] = '\0';
	if (cli_model_open(&cm, path, &mo, &err)) {
		free(text);
		return cli_fail("%s", err.msg);
	}
	n_ctx = cm.ctx->n_ctx;
	if (tok_encode(cm.v, text, n_text, TOK_ADD_SPECIAL, &ids, &n_ids, &err)) {
		rc = cli_fail("%s: %s", path, err.msg);
		goto out;
	}
	if (n_ids < 2 * (size_t)n_ctx) {
		rc = cli_fail("perplexity: %s has %zu tokens, need at least 2 × n_ctx = %d",
			      text_path, n_ids, 2 * n_ctx);
		goto out;
	}
	fprintf(stderr, "perplexity: %zu tokens, %zu chunks of %d, scoring the second half of each\n",
		n_ids, n_ids / (size_t)n_ctx, n_ctx);
	if (model_perplexity(cm.ctx, ids, n_ids, tok_add_bos(cm.v) ? tok_bos(cm.v) : -1, print_chunk,
			     NULL, &res, &err)) {
		rc = cli_fail("%s: %s", path, err.msg);
		goto out;
	}
	printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", res.ppl, res.ppl_err);
out:
	free(ids);
	free(text);
	cli_model_close(&cm);
	return rc;
}

/*
 * dormant logits MODEL (PROMPT | --ids FILE) -o OUT.f32 [--ctx N] [--batch N] [--threads N]
 *
 * The float32 logits after every prompt position (n_pos × n_vocab,
 * little-endian, row i predicting token i + 1: the layout of the reference
 * engine's dumps), so dormant can be held against another engine on the
 * same file.  A PROMPT is tokenized as `run` does (BOS when the vocabulary
 * adds one); --ids reads whitespace-separated token ids used as given.
 * The prompt runs as one batch unless --batch says otherwise.
 */
int cli_logits(int argc, char **argv)
{
	struct cli_model_opts mo = { 0 };
	struct cli_model cm;
	struct dm_err err;
	const char *path = NULL, *prompt = NULL, *ids_path = NULL, *out_path = NULL;
	int32_t *ids = NULL;
	size_t n_ids = 0;
	float *lg = NULL;
	FILE *f = NULL;
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		bool used;
		if (model_opt(&i, argc, argv, &mo, &used))
			return 2;
		if (used)
			continue;
		if (!strcmp(argv[i], "--ids") || !strcmp(argv[i], "-o")) {
			if (i + 1 >= argc)
				return cli_fail("logits: %s needs a value", argv[i]), 2;
			*(!strcmp(argv[i], "-o") ? &out_path : &ids_path) = argv[i + 1];
			i++;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return cli_fail("logits: unknown option '%s'", argv[i]), 2;
		} else if (!path) {
			path = argv[i];
		} else if (!prompt) {
			prompt = argv[i];
		} else {
			return cli_fail("logits: too many arguments"), 2;
		}
	}
	if (!path || !out_path || !prompt == !ids_path)
		return cli_fail("usage: dormant logits MODEL (PROMPT | --ids FILE) -o OUT.f32 [--ctx N] [--batch N] [--threads N]"), 2;
	if (ids_path) {
		size_t n_text, cap = 0;
		char *text = cli_read_all(ids_path, &n_text), *p, *end;
		if (!text)
			return cli_fail("%s: %s", ids_path, strerror(errno ? errno : EIO));
		for (p = text;; p = end) {
			while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
				p++;
			if (!*p)
				break;
			errno = 0;
			long v = strtol(p, &end, 10);
			if (end == p || errno || v < 0 || v > INT32_MAX ||
			    (*end && *end != ' ' && *end != '\t' && *end != '\n' && *end != '\r')) {
				rc = cli_fail("%s: offset %zu: not a token id", ids_path, (size_t)(p - text));
				free(text);
				free(ids);
				return rc;
			}
			if (n_ids == cap) {
				int32_t *grown = realloc(ids, (cap = cap ? 2 * cap : 256) * sizeof *ids);
				if (!grown) {
					free(text);
					free(ids);
					return cli_fail("out of memory");
				}
				ids = grown;
			}
			ids[n_ids++] = (int32_t)v;
		}
		free(text);
		if (!n_ids)
			return cli_fail("%s: no token ids", ids_path);
	}
	if (!mo.n_batch)
		mo.n_batch = mo.n_ctx ? mo.n_ctx : 1 << 20; /* one batch (capped at n_ctx) */
	if (cli_model_open(&cm, path, &mo, &err)) {
		free(ids);
		return cli_fail("%s", err.msg);
	}
	if (prompt && tok_encode(cm.v, prompt, strlen(prompt), TOK_ADD_SPECIAL, &ids, &n_ids, &err)) {
		rc = cli_fail("%s: %s", path, err.msg);
		goto out;
	}
	if (n_ids > (size_t)cm.ctx->n_ctx) {
		rc = cli_fail("logits: %zu tokens do not fit a context of %d (--ctx)", n_ids, cm.ctx->n_ctx);
		goto out;
	}
	lg = malloc(n_ids * (size_t)cm.m->hp.n_vocab * sizeof *lg);
	if (!lg) {
		rc = cli_fail("out of memory");
		goto out;
	}
	if (model_decode(cm.ctx, ids, (int32_t)n_ids, lg, true, &err)) {
		rc = cli_fail("%s: %s", path, err.msg);
		goto out;
	}
	if (!(f = fopen(out_path, "wb")) ||
	    fwrite(lg, sizeof *lg, n_ids * (size_t)cm.m->hp.n_vocab, f) != n_ids * (size_t)cm.m->hp.n_vocab ||
	    fclose(f) != 0) {
		f = NULL;
		rc = cli_fail("%s: %s", out_path, strerror(errno ? errno : EIO));
		goto out;
	}
	f = NULL;
	fprintf(stderr, "logits: %zu positions × %d vocabulary -> %s\n", n_ids, cm.m->hp.n_vocab, out_path);
out:
	if (f)
		fclose(f);
	free(lg);
	free(ids);
	cli_model_close(&cm);
	return rc;
}

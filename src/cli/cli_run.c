/*
 * cli/run — `dormant run MODEL [PROMPT]` (generate text),
 * `dormant perplexity MODEL FILE` (the standard perplexity procedure) and
 * `dormant logits`, plus the option and number helpers of cli.h.
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

#include "base/file.h"
#include "base/mem.h"
#include "cli/cli.h"
#include "cli/cli_model.h"
#include "mgr/discover.h"
#include "model/gen.h"
#include "model/ppl.h"
#include "tok/chat.h"

#include <editline/readline.h>
#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>

double cli_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
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

/* Collects the reply without printing it (--format json). */
static int keep_only(void *ud, int32_t id, const char *text, size_t n)
{
	struct reply *r = ud;
	(void)id;
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
	return 0;
}

static int print_and_keep(void *ud, int32_t id, const char *text, size_t n)
{
	return keep_only(ud, id, text, n) || print_text(NULL, id, text, n);
}

/* Ctrl-C during a reply: stops the reply, the conversation stays. */
static atomic_int chat_interrupt;

static void on_sigint(int sig)
{
	(void)sig;
	atomic_store(&chat_interrupt, 1);
}

/* The conversation: messages whose texts it owns (the system message is
 * messages[0] when there is one). */
struct convo {
	struct tok_chat_msg *m;
	char **own;
	size_t n, cap;
};

static int convo_add(struct convo *c, const char *role, const char *text)
{
	char *t = strdup(text ? text : "");
	if (!t)
		return -1;
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 16;
		void *p1 = realloc(c->m, cap * sizeof *c->m), *p2;
		if (!p1) {
			free(t);
			return -1;
		}
		c->m = p1;
		p2 = realloc(c->own, cap * sizeof *c->own);
		if (!p2) {
			free(t);
			return -1;
		}
		c->own = p2;
		c->cap = cap;
	}
	c->own[c->n] = t;
	c->m[c->n++] = (struct tok_chat_msg){ !strcmp(role, "system") ? "system" : !strcmp(role, "user") ? "user"
													 : "assistant",
					      t };
	return 0;
}

static void convo_drop(struct convo *c, size_t i)
{
	free(c->own[i]);
	memmove(c->own + i, c->own + i + 1, (c->n - i - 1) * sizeof *c->own);
	memmove(c->m + i, c->m + i + 1, (c->n - i - 1) * sizeof *c->m);
	c->n--;
}

static void convo_clear(struct convo *c, bool keep_system)
{
	while (c->n > (keep_system && c->n && !strcmp(c->m[0].role, "system") ? 1u : 0u))
		convo_drop(c, c->n - 1);
}

static void convo_free(struct convo *c)
{
	convo_clear(c, false);
	free(c->m);
	free(c->own);
}

/* /save FILE: the conversation as JSON [{"role":..,"content":..}, ...]. */
static int convo_save(const struct convo *c, const char *path)
{
	json_t *a = json_array();
	int rc;
	for (size_t i = 0; i < c->n; i++)
		json_array_append_new(a, json_pack("{s:s,s:s}", "role", c->m[i].role, "content", c->m[i].content));
	rc = json_dump_file(a, path, JSON_INDENT(1));
	json_decref(a);
	return rc;
}

/* /load-chat FILE: replaces the conversation; DM_EFORMAT naming what is wrong. */
static int convo_load(struct convo *c, const char *path, char *why, size_t cap)
{
	json_error_t je;
	json_t *a = json_load_file(path, 0, &je), *x;
	size_t i;
	if (!a)
		return snprintf(why, cap, "%s: %s (line %d)", path, je.text, je.line), -1;
	if (!json_is_array(a)) {
		json_decref(a);
		return snprintf(why, cap, "%s: not a JSON array of messages", path), -1;
	}
	json_array_foreach(a, i, x) {
		const char *r = json_string_value(json_object_get(x, "role"));
		if (!r || (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant")) ||
		    !json_is_string(json_object_get(x, "content"))) {
			json_decref(a);
			return snprintf(why, cap, "%s: message %zu needs a role (system, user, assistant) and a content",
					path, i), -1;
		}
	}
	convo_clear(c, false);
	json_array_foreach(a, i, x)
		if (convo_add(c, json_string_value(json_object_get(x, "role")),
			      json_string_value(json_object_get(x, "content")))) {
			json_decref(a);
			return snprintf(why, cap, "out of memory"), -1;
		}
	json_decref(a);
	return 0;
}

/* What /load needs to open another model as run opened the first. */
struct chat_env {
	const struct cli_model_opts *mo;
	const struct cli_disc *cd;
	const char *tmpl;         /* --chat-template, or NULL */
	enum tok_chat_kind *kind;
};

/* /load NAME: a path or a discovered name; the conversation stays.  The
 * new model is opened before the old one closes, so a failure keeps the
 * old one. */
static void chat_load(struct cli_model *cm, const struct chat_env *env, const char *name, struct gen_params *gp)
{
	static struct disc_model dm;
	struct cli_model nm;
	struct dm_err err;
	struct stat sb;
	const char *path = name;
	enum tok_chat_kind kind;
	bool fallback = false;

	if (stat(path, &sb) && path[0] != '/' && path[0] != '.') {
		if (cli_disc_find(env->cd, name, &dm, &err)) {
			fprintf(stderr, "%s\n", err.msg);
			return;
		}
		path = dm.path;
	}
	if (cli_model_open(&nm, path, env->mo, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		return;
	}
	if (tok_chat_select(nm.v, env->tmpl, &kind, &fallback, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		cli_model_close(&nm);
		return;
	}
	cli_model_close(cm);
	*cm = nm;
	*env->kind = kind;
	{
		int32_t stop_ids[GEN_MAX_STOP];
		size_t ns = tok_chat_stop_ids(kind, cm->v, stop_ids, GEN_MAX_STOP);
		for (size_t k = 0; k < GEN_MAX_STOP; k++)
			gp->stop_ids[k] = k < ns ? stop_ids[k] : -1;
	}
	fprintf(stderr, "(now chatting with %s, template %s%s)\n", cm->g->name, tok_chat_name(kind),
		fallback ? ", not recognised: a fallback" : "");
}

static const char chat_help[] =
	"  /bye                 quit (also Ctrl-D, or Ctrl-C at an empty prompt)\n"
	"  /clear               start a new conversation (the system message stays)\n"
	"  /set system TEXT     the system message\n"
	"  /set parameter NAME VALUE   temperature, top_k, top_p, min_p, seed, num_predict\n"
	"  /show info           the model's facts;  /load NAME  switch model (the chat stays)\n"
	"  /save FILE           the conversation as JSON;  /load-chat FILE  read one back\n"
	"  /?                   this help\n"
	"  \"\"\"                  begins and ends a message of several lines\n"
	"  Ctrl-C during a reply stops it; the conversation stays.\n";

/* A /command; 1: quit, 0: handled. */
static int chat_command(struct cli_model *cm, const struct chat_env *env, struct convo *c, char *line,
			struct gen_params *gp)
{
	char why[512];
	if (!strcmp(line, "/bye") || !strcmp(line, "/exit"))
		return 1;
	if (!strcmp(line, "/?") || !strcmp(line, "/help")) {
		fputs(chat_help, stderr);
	} else if (!strcmp(line, "/clear")) {
		convo_clear(c, true);
		fprintf(stderr, "(new conversation)\n");
	} else if (!strncmp(line, "/set system ", 12)) {
		if (c->n && !strcmp(c->m[0].role, "system"))
			convo_drop(c, 0);
		/* the system message goes first */
		if (convo_add(c, "system", line + 12) == 0) {
			struct tok_chat_msg m = c->m[c->n - 1];
			char *o = c->own[c->n - 1];
			memmove(c->m + 1, c->m, (c->n - 1) * sizeof *c->m);
			memmove(c->own + 1, c->own, (c->n - 1) * sizeof *c->own);
			c->m[0] = m;
			c->own[0] = o;
		}
		fprintf(stderr, "(system message set)\n");
	} else if (!strncmp(line, "/set parameter ", 15)) {
		char name[32];
		double v;
		char *end;
		if (sscanf(line + 15, "%31s", name) != 1 || !strchr(line + 15, ' ') ||
		    (v = strtod(strchr(line + 15, ' ') + 1, &end), end == strchr(line + 15, ' ') + 1)) {
			fprintf(stderr, "usage: /set parameter NAME VALUE\n");
		} else if (!strcmp(name, "temperature") && v >= 0 && v <= 100) {
			gp->sample.temp = (float)v;
		} else if (!strcmp(name, "top_k") && v >= 0 && v <= 1e6) {
			gp->sample.top_k = (int32_t)v;
		} else if (!strcmp(name, "top_p") && v >= 0 && v <= 1) {
			gp->sample.top_p = (float)v;
		} else if (!strcmp(name, "min_p") && v >= 0 && v <= 1) {
			gp->sample.min_p = (float)v;
		} else if (!strcmp(name, "seed") && v >= 0) {
			gp->sample.seed = (uint64_t)v;
		} else if (!strcmp(name, "num_predict") && v >= -1 && v <= 1e9) {
			gp->n_predict = (int32_t)v;
		} else {
			fprintf(stderr, "unknown parameter or value out of range: %s (temperature, top_k, top_p, min_p, seed, num_predict)\n",
				name);
			return 0;
		}
		fprintf(stderr, "(%s set)\n", name);
	} else if (!strcmp(line, "/show info")) {
		const struct model_hparams *hp = &cm->m->hp;
		fprintf(stderr, "  file           %s\n  architecture   %s\n  layers         %d\n  embedding      %d\n"
				"  heads          %d (%d KV)\n  vocabulary     %d\n  context        %d (trained %d)\n"
				"  weights        %.1f MiB\n",
			cm->g->name, hp->arch_name, hp->n_layer, hp->n_embd, hp->n_head, hp->n_head_kv, hp->n_vocab,
			cm->ctx->n_ctx, hp->n_ctx_train, (double)cm->m->weight_bytes / 1048576.0);
	} else if (!strncmp(line, "/save ", 6)) {
		if (convo_save(c, line + 6))
			fprintf(stderr, "cannot write %s\n", line + 6);
		else
			fprintf(stderr, "(saved to %s)\n", line + 6);
	} else if (!strncmp(line, "/load ", 6)) {
		chat_load(cm, env, line + 6, gp);
	} else if (!strncmp(line, "/load-chat ", 11)) {
		if (convo_load(c, line + 11, why, sizeof why))
			fprintf(stderr, "%s\n", why);
		else
			fprintf(stderr, "(%zu messages loaded)\n", c->n);
	} else {
		fprintf(stderr, "unknown command %s: /? lists the commands (a message that begins with '/' can be "
				"sent between \"\"\" lines)\n", line);
	}
	return 0;
}

/* Interactive chat on a terminal: line editing and history (libedit), the
 * commands above, the prompt cache (each turn prefills only what is new);
 * when the conversation no longer fits the context the oldest turns go
 * (the system message stays) and stderr says so. */
static int interactive(struct cli_model *cm, const struct chat_env *env, const char *system_msg,
		       const struct gen_params *gp0)
{
	enum tok_chat_kind kind = *env->kind;
	struct gen_params gp = *gp0;
	struct convo c = { 0 };
	struct dm_err err;
	struct sigaction sa, old;
	int rc = 0;

	gp.reuse_prefix = true;
	fprintf(stderr, "dormant: chatting with %s (template %s); /? for help, /bye or Ctrl-D to quit\n",
		cm->g->name, tok_chat_name(kind));
	if (system_msg && convo_add(&c, "system", system_msg))
		return cli_fail("out of memory");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigint;
	sigemptyset(&sa.sa_mask);
	for (;;) {
		char *line = readline("> ");
		struct reply r = { 0 };
		struct gen_stats st;
		int32_t *ids = NULL;
		size_t n_ids = 0;

		if (!line)
			break;
		if (!*line) {
			free(line);
			continue;
		}
		add_history(line);
		if (!strncmp(line, "\"\"\"", 3)) { /* a message of several lines */
			size_t len = strlen(line + 3), cap = len + 256;
			char *msg = malloc(cap), *more;
			bool done = len >= 3 && !strcmp(line + 3 + len - 3, "\"\"\"");
			if (!msg) {
				free(line);
				rc = cli_fail("out of memory");
				break;
			}
			memcpy(msg, line + 3, len + 1);
			if (done)
				msg[len -= 3] = '\0';
			while (!done && (more = readline(". "))) {
				size_t m = strlen(more);
				done = m >= 3 && !strcmp(more + m - 3, "\"\"\"");
				if (done)
					more[m -= 3] = '\0';
				if (len + m + 2 > cap) {
					char *nb = realloc(msg, cap = 2 * (len + m + 2));
					if (!nb) {
						free(more);
						break;
					}
					msg = nb;
				}
				if (len)
					msg[len++] = '\n';
				memcpy(msg + len, more, m + 1);
				len += m;
				free(more);
			}
			free(line);
			line = msg;
		} else if (line[0] == '/') {
			int q = chat_command(cm, env, &c, line, &gp);
			kind = *env->kind; /* /load may have switched the template */
			free(line);
			if (q)
				break;
			continue;
		}
		if (convo_add(&c, "user", line)) {
			free(line);
			rc = cli_fail("out of memory");
			break;
		}
		free(line);
		/* fit the conversation: the oldest turns go, the system message stays */
		for (;;) {
			free(ids);
			ids = NULL;
			if (gen_prompt_ids(cm->v, &kind, c.m, c.n, NULL, &ids, &n_ids, &err)) {
				n_ids = 0;
				break;
			}
			size_t first = c.n && !strcmp(c.m[0].role, "system") ? 1 : 0;
			if (n_ids + 8 <= (size_t)cm->ctx->n_ctx || c.n - first <= 1)
				break;
			convo_drop(&c, first);
			if (c.n - first > 1 && !strcmp(c.m[first].role, "assistant"))
				convo_drop(&c, first);
			fprintf(stderr, "(the conversation no longer fits the context of %d: its oldest turn was dropped)\n",
				cm->ctx->n_ctx);
		}
		atomic_store(&chat_interrupt, 0);
		sigaction(SIGINT, &sa, &old);
		if (!n_ids || gen_run(cm->ctx, cm->v, ids, n_ids, &gp, print_and_keep, &r, &chat_interrupt, &st, &err)) {
			sigaction(SIGINT, &old, NULL);
			fprintf(stderr, "\ndormant: %s\n", n_ids ? err.msg : "cannot format the conversation");
			free(ids);
			free(r.buf);
			convo_drop(&c, c.n - 1); /* the turn that failed */
			continue;
		}
		sigaction(SIGINT, &old, NULL);
		free(ids);
		putchar('\n');
		if (st.stop == GEN_STOP_CANCEL)
			fprintf(stderr, "(reply stopped)\n");
		if (convo_add(&c, "assistant", r.buf ? r.buf : "")) {
			free(r.buf);
			rc = cli_fail("out of memory");
			break;
		}
		free(r.buf);
	}
	convo_free(&c);
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
	bool stats = false, chat = false, verbose = false, json_out = false;
	char *piped = NULL;
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
		} else if (!strcmp(a, "--verbose")) {
			verbose = true;
		} else if (!strcmp(a, "--format")) {
			if (!val || strcmp(val, "json"))
				return cli_fail("run: --format takes json"), 2;
			json_out = true;
			i++;
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
		return cli_fail("usage: dormant run MODEL [PROMPT] [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R] [--seed S] [--ctx N] [--batch N] [--threads N] [--chat] [--system S] [--chat-template NAME] [--stats] [--verbose] [--format json] [--models-dir DIR]... [--no-discover]"), 2;
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
		struct chat_env env = { &mo, &cd, tmpl, &kind };
		rc = interactive(&cm, &env, system_msg, &gp);
		cli_model_close(&cm);
		return rc;
	}
	if (!prompt && !isatty(0)) {
		/* piped: the whole of stdin is the prompt, answered once */
		size_t n_in;
		if (!(piped = dm_read_all("-", &n_in))) {
			cli_model_close(&cm);
			return cli_fail("run: cannot read stdin: %s", strerror(errno ? errno : EIO));
		}
		while (n_in && (piped[n_in - 1] == '\n' || piped[n_in - 1] == '\r'))
			piped[--n_in] = '\0';
		prompt = piped;
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
	{
		struct reply r = { 0 };
		double t0 = cli_now();
		rc = gen_run(cm.ctx, cm.v, ids, n_ids, &gp, json_out ? keep_only : print_text, &r, NULL, &st, &err);
		if (json_out && !rc) {
			/* one object, Ollama's /api/generate fields (durations in ns) */
			json_t *o = json_pack("{s:s,s:s,s:b,s:s,s:I,s:I,s:i,s:I,s:i,s:I}", "model", path, "response",
					      r.buf ? r.buf : "", "done", 1, "done_reason", gen_stop_name(st.stop),
					      "total_duration", (json_int_t)((cm.load_s + cli_now() - t0) * 1e9),
					      "load_duration", (json_int_t)(cm.load_s * 1e9), "prompt_eval_count",
					      st.n_prompt, "prompt_eval_duration", (json_int_t)(st.t_prompt_s * 1e9),
					      "eval_count", st.n_gen, "eval_duration", (json_int_t)(st.t_gen_s * 1e9));
			char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
			if (t)
				puts(t);
			free(t);
			json_decref(o);
		} else {
			putchar('\n');
		}
		fflush(stdout);
		free(r.buf);
		if (!rc && verbose) /* the figures `ollama run --verbose` prints */
			fprintf(stderr,
				"total duration:       %.3fs\n"
				"load duration:        %.3fs\n"
				"prompt eval count:    %d token(s)\n"
				"prompt eval duration: %.3fs\n"
				"prompt eval rate:     %.2f tokens/s\n"
				"eval count:           %d token(s)\n"
				"eval duration:        %.3fs\n"
				"eval rate:            %.2f tokens/s\n",
				cm.load_s + cli_now() - t0, cm.load_s, st.n_prompt, st.t_prompt_s,
				st.t_prompt_s > 0 ? st.n_prompt / st.t_prompt_s : 0.0, st.n_gen, st.t_gen_s,
				st.t_gen_s > 0 ? st.n_gen / st.t_gen_s : 0.0);
	}
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
	free(piped);
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
	if (!(text = dm_read_all(text_path, &n_text)))
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
		char *text = dm_read_all(ids_path, &n_text), *p, *end;
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

/* tests/rag — embeddings and reranking end to end from text.
 *
 * Always, on synthetic encoders (dormant synth --arch bert|nomic-bert
 * [--rank]): they load, embed unit vectors (batch == one by one) and rerank
 * to one finite score per document; response shapes (sorted, top_n,
 * return_documents, usage), dimensions (truncate + renormalise), role
 * refusals naming the role, truncate true / false, and HTTP and CLI answers
 * equal to the C API's.  Requests that wait for a model at the same moment
 * share one batch (the model held busy, N requests queued, released: one
 * batch by the runtime's counters, or as many as the batch bound makes),
 * each answered with its solo result; a cancelled request (or a client
 * that hangs up) leaves its batch without harming the others.
 *
 * With ../shared/golden/archs (skipped when absent): the golden encoders
 * through the C API (dormant_embed_batch, dormant_rerank), HTTP (/v1/rerank,
 * /v1/embeddings, /api/embed) and the CLI against the reference engine's
 * dumps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dormant.h"
#include "mgr/api.h"
#include "mgr/mgr.h"
#include "server/client.h"
#include "server/server.h"
#include "tsrv.h"
#include "tutil.h"

#define N_TEXTS 6
#define N_DOCS 5
#define E 128  /* the golden encoders' width */
#define SE 256 /* the synthetic encoders' (synth's tiny preset) */

static char G[4096];  /* golden/archs, "" when absent */
static dormant *D;
static struct srv *S;
static uint16_t PORT;
static char *TEXTS_BUF, *QUERY, *DOCS_BUF;
static const char *TEXTS[N_TEXTS], *DOCS[N_DOCS];

static char *gpath(const char *rel)
{
	static char buf[4][4200];
	static int k;
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof buf[k], "%s/%s", G, rel);
	return buf[k];
}

/* Splits buf into lines (no trailing newline); returns how many. */
static size_t lines(char *buf, const char **out, size_t cap)
{
	size_t n = 0;
	for (char *p = buf; *p && n < cap;) {
		char *nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		out[n++] = p;
		if (!nl)
			break;
		p = nl + 1;
	}
	return n;
}

static float *golden_f32(const char *rel, size_t want)
{
	size_t n;
	float *f = tu_read_file(gpath(rel), &n);
	assert_non_null(f);
	assert_int_equal(n, want * sizeof(float));
	return f;
}

static double cosine(const float *a, const float *b, size_t n)
{
	double ab = 0, aa = 0, bb = 0;
	for (size_t i = 0; i < n; i++) {
		ab += (double)a[i] * b[i];
		aa += (double)a[i] * a[i];
		bb += (double)b[i] * b[i];
	}
	return ab / sqrt(aa * bb);
}

static double norm(const float *a, size_t n)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += (double)a[i] * a[i];
	return sqrt(s);
}

/* Texts for the synthetic encoders (any text works with them). */
static const char *const STEXTS[N_TEXTS] = {
	"hello world",
	"The quick brown fox jumps over the lazy dog.",
	"dormant unloads models that nobody uses",
	"a",
	"Embeddings map text to vectors; similar texts land close together, in theory.",
	"42 is the answer, or so they say (in a book).",
};
static const char *const SQUERY = "what does a reranker do";
static const char *const SDOCS[N_DOCS] = {
	"a reranker scores each document against the query",
	"bananas are yellow",
	"the cross-encoder reads the query and the document together",
	"zebra",
	"embedding models give one vector per text",
};
static char SYN[3][4200]; /* synthetic bert, nomic-bert, bert --rank */

static int setup(void **state)
{
	const char *gd = tu_golden_dir();
	char cfg[20000], gcfg[14000] = "", *tiny = strdup(tu_tmp_path("rag-tiny.gguf"));
	size_t n;
	(void)state;
	snprintf(SYN[0], sizeof SYN[0], "%s", tu_tmp_path("rag-sbert.gguf"));
	snprintf(SYN[1], sizeof SYN[1], "%s", tu_tmp_path("rag-snomic.gguf"));
	snprintf(SYN[2], sizeof SYN[2], "%s", tu_tmp_path("rag-srerank.gguf"));
	if (tu_system("%s synth --arch bert -o %s", tu_dormant(), SYN[0]) ||
	    tu_system("%s synth --arch nomic-bert --type Q8_0 -o %s", tu_dormant(), SYN[1]) ||
	    tu_system("%s synth --arch bert --rank --seed 7 -o %s", tu_dormant(), SYN[2]) ||
	    tu_system("%s synth --preset tiny --type Q8_0 -o %s", tu_dormant(), tiny))
		return -1;
	G[0] = '\0';
	if (gd) {
		snprintf(G, sizeof G, "%s/archs", gd);
		if (access(gpath("models/bert-rerank.gguf"), R_OK))
			G[0] = '\0';
	}
	/* roles from the files: [s]bert embeds, [s]rerank reranks, tiny generates */
	snprintf(cfg, sizeof cfg,
		 "[server]\nkeep_alive = 5m\n\n[model sbert]\npath = %s\nthreads = 1\n\n"
		 "[model snomic]\npath = %s\nthreads = 1\n\n[model srerank]\npath = %s\nthreads = 1\n\n"
		 "[model tiny]\npath = %s\nthreads = 1\n\n[model tinyembed]\npath = %s\nthreads = 1\nrole = embed\n",
		 SYN[0], SYN[1], SYN[2], tiny, tiny);
	free(tiny);
	if (!G[0])
		return tsrv_open("rag.ini", cfg, NULL, &D, &S, &PORT);
	TEXTS_BUF = tu_read_file(gpath("inputs/texts.txt"), &n);
	QUERY = tu_read_file(gpath("inputs/rerank_query.txt"), &n);
	DOCS_BUF = tu_read_file(gpath("inputs/rerank_docs.txt"), &n);
	if (!TEXTS_BUF || !QUERY || !DOCS_BUF || lines(TEXTS_BUF, TEXTS, N_TEXTS) != N_TEXTS ||
	    lines(DOCS_BUF, DOCS, N_DOCS) != N_DOCS)
		return -1;
	QUERY[strcspn(QUERY, "\n")] = '\0';
	snprintf(gcfg, sizeof gcfg,
		 "\n[model bert]\npath = %s\nthreads = 1\n\n"
		 "[model nomic]\npath = %s\nthreads = 1\n\n[model rerank]\npath = %s\nthreads = 1\n",
		 gpath("models/bert.gguf"), gpath("models/nomic-bert.gguf"), gpath("models/bert-rerank.gguf"));
	strncat(cfg, gcfg, sizeof cfg - strlen(cfg) - 1);
	return tsrv_open("rag.ini", cfg, NULL, &D, &S, &PORT);
}

static int teardown(void **state)
{
	(void)state;
	tsrv_close(D, S);
	free(TEXTS_BUF);
	free(QUERY);
	free(DOCS_BUF);
	return 0;
}

#define NEED_GOLDEN()                                                                \
	do {                                                                         \
		if (!G[0]) {                                                         \
			print_message("golden/archs absent: skipped\n");             \
			skip();                                                      \
		}                                                                    \
	} while (0)

/* The body of a request that must answer `want`. */
/* POST body (taken) to the server on port, which must answer `want`; the
 * JSON answer. */
static json_t *call_at(uint16_t port, const char *path, json_t *body, int want)
{
	struct srv_http_resp r;
	struct dm_err e;
	json_error_t je;
	char *s = json_dumps(body, 0);
	json_t *o;
	int rc = srv_http("127.0.0.1", port, "POST", path, NULL, s, strlen(s), 60000, NULL, NULL, &r, &e);
	json_decref(body);
	free(s);
	assert_int_equal(rc, 0);
	if ((int)r.status != want)
		fprintf(stderr, "POST %s -> %u (want %d): %s\n", path, r.status, want, r.body);
	assert_int_equal(r.status, want);
	o = json_loadb(r.body, r.body_len, JSON_ALLOW_NUL, &je);
	assert_non_null(o);
	srv_http_resp_free(&r);
	return o;
}

static json_t *call(const char *path, json_t *body, int want)
{
	return call_at(PORT, path, body, want);
}

static json_t *str_array(const char *const *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static const char *err_msg(json_t *o)
{
	json_t *e = json_object_get(o, "error");
	if (json_is_object(e))
		e = json_object_get(e, "message");
	assert_true(json_is_string(e));
	return json_string_value(e);
}

/* ---- synthetic encoders ---- */

/* synth writes the same bytes for the same options, and encoders of both
 * architectures load, embed and rerank. */
static void test_synth_deterministic(void **state)
{
	const char *again = tu_tmp_path("rag-sbert-again.gguf");
	size_t na, nb;
	char *a, *b;
	(void)state;
	assert_int_equal(tu_system("%s synth --arch bert -o %s", tu_dormant(), again), 0);
	a = tu_read_file(SYN[0], &na);
	b = tu_read_file(again, &nb);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, na);
	free(b);
	/* another seed: other weights, same size */
	assert_int_equal(tu_system("%s synth --arch bert --seed 2 -o %s", tu_dormant(), again), 0);
	b = tu_read_file(again, &nb);
	assert_int_equal(na, nb);
	assert_memory_not_equal(a, b, na);
	free(a);
	free(b);
	/* rank pooling is for encoders only; the architecture list names them */
	{
		int status;
		char *out = tu_capture(&status, "%s synth --rank -o %s 2>&1", tu_dormant(), again);
		assert_int_not_equal(status, 0);
		assert_non_null(strstr(out, "needs an encoder"));
		free(out);
		out = tu_capture(&status, "%s synth --arch t5 -o %s 2>&1", tu_dormant(), again);
		assert_int_not_equal(status, 0);
		assert_non_null(strstr(out, "bert, nomic-bert"));
		free(out);
	}
}

static void check_synth_embed(const char *model)
{
	float out[N_TEXTS * SE], one[SE];
	struct dormant_embed_info info;
	size_t dim;
	char err[256];

	assert_int_equal(dormant_embed_batch(D, model, STEXTS, N_TEXTS, NULL, out, N_TEXTS * SE, &dim, &info, err,
					     sizeof err), 0);
	assert_int_equal(dim, SE);
	/* [CLS] text [SEP]: at least 3 tokens each, and "a" is exactly that */
	assert_true(info.n_tokens > 3 * N_TEXTS);
	for (int i = 0; i < N_TEXTS; i++) {
		for (int k = 0; k < SE; k++)
			assert_true(isfinite(out[i * SE + k]));
		assert_true(fabs(norm(out + i * SE, SE) - 1) < 1e-5);
		assert_int_equal(dormant_embed(D, model, STEXTS[i], one, SE, &dim, &info, err, sizeof err), 0);
		if (i == 3)
			assert_int_equal(info.n_tokens, 3);
		for (int k = 0; k < SE; k++)
			assert_true(fabsf(one[k] - out[i * SE + k]) < 1e-5f);
		/* different texts, different vectors */
		if (i)
			assert_true(cosine(out + i * SE, out, SE) < 0.9999);
	}
}

static void test_synth_embed(void **state)
{
	(void)state;
	check_synth_embed("sbert");
	check_synth_embed("snomic");
}

static void test_synth_rerank(void **state)
{
	float sc[N_DOCS], one;
	struct dormant_embed_info info;
	char err[256];
	(void)state;
	for (int i = 0; i < N_DOCS; i++)
		sc[i] = NAN;
	assert_int_equal(dormant_rerank(D, "srerank", SQUERY, SDOCS, N_DOCS, NULL, sc, &info, err, sizeof err), 0);
	assert_true(info.n_tokens > N_DOCS * 3);
	for (int i = 0; i < N_DOCS; i++) {
		assert_true(isfinite(sc[i]));
		if (i)
			assert_true(sc[i] != sc[0]);
		/* one pair at a time gives the same score */
		assert_int_equal(dormant_rerank(D, "srerank", SQUERY, SDOCS + i, 1, NULL, &one, NULL, err, sizeof err),
				 0);
		assert_true(fabsf(one - sc[i]) < 1e-5f);
	}
	/* an empty document is refused, naming it */
	{
		const char *docs[2] = { SDOCS[0], "" };
		assert_int_equal(dormant_rerank(D, "srerank", SQUERY, docs, 2, NULL, sc, NULL, err, sizeof err), -1);
		assert_non_null(strstr(err, "document 1 is empty"));
	}
}

/* ---- C API ---- */

static void check_embed(const char *model, const char *expected)
{
	float *want = golden_f32(expected, N_TEXTS * E), out[N_TEXTS * E], one[E];
	struct dormant_embed_info info;
	size_t dim;
	char err[256];

	assert_int_equal(dormant_embed_batch(D, model, TEXTS, N_TEXTS, NULL, out, N_TEXTS * E, &dim, &info, err,
					     sizeof err), 0);
	assert_int_equal(dim, E);
	assert_int_equal(info.n_tokens, 4 + 12 + 9 + 13 + 28 + 72); /* golden token counts */
	for (int i = 0; i < N_TEXTS; i++) {
		double c = cosine(out + i * E, want + i * E, E);
		if (c < 0.9999)
			fprintf(stderr, "%s text %d: cosine %.8f\n", model, i, c);
		assert_true(c >= 0.9999);
		assert_true(fabs(norm(out + i * E, E) - 1) < 1e-5);
		/* one at a time gives the same vector as the batch */
		assert_int_equal(dormant_embed(D, model, TEXTS[i], one, E, &dim, NULL, err, sizeof err), 0);
		for (int k = 0; k < E; k++)
			assert_true(fabsf(one[k] - out[i * E + k]) < 1e-5f);
	}
	free(want);
}

static void test_api_embed_golden(void **state)
{
	(void)state;
	NEED_GOLDEN();
	check_embed("bert", "expected/bert.c392e50.embd.f32");
	check_embed("nomic", "expected/nomic-bert.c392e50.embd.f32");
}

static void test_api_dimensions(void **state)
{
	struct dormant_embed_opts o = { .dimensions = 32 };
	float full[2 * SE], cut[2 * 32];
	size_t dim;
	char err[256];
	(void)state;
	assert_int_equal(dormant_embed_batch(D, "sbert", STEXTS, 2, NULL, full, 2 * SE, &dim, NULL, err, sizeof err), 0);
	assert_int_equal(dormant_embed_batch(D, "sbert", STEXTS, 2, &o, cut, 2 * 32, &dim, NULL, err, sizeof err), 0);
	assert_int_equal(dim, 32);
	for (int i = 0; i < 2; i++) {
		double nf = norm(full + i * SE, 32);
		assert_true(nf < 0.99); /* the cut alone is not unit length... */
		assert_true(fabs(norm(cut + i * 32, 32) - 1) < 1e-5); /* ...the answer is */
		for (int k = 0; k < 32; k++)
			assert_true(fabs(cut[i * 32 + k] - full[i * SE + k] / nf) < 1e-5);
	}
	o.dimensions = SE + 1;
	assert_int_equal(dormant_embed_batch(D, "sbert", STEXTS, 1, &o, full, 2 * SE, &dim, NULL, err, sizeof err),
			 -1);
	assert_non_null(strstr(err, "dimensions 257"));
	/* a buffer too small for the batch */
	assert_int_equal(dormant_embed_batch(D, "sbert", STEXTS, 2, NULL, full, SE, &dim, NULL, err, sizeof err), -12);
}

static void test_api_rerank_golden(void **state)
{
	float *want, got[N_DOCS];
	struct dormant_embed_info info;
	char err[256];
	(void)state;
	NEED_GOLDEN();
	want = golden_f32("expected/bert-rerank.c392e50.scores.f32", N_DOCS);
	assert_int_equal(dormant_rerank(D, "rerank", QUERY, DOCS, N_DOCS, NULL, got, &info, err, sizeof err), 0);
	for (int i = 0; i < N_DOCS; i++) {
		print_message("doc %d: %.9f (reference %.9f)\n", i, got[i], want[i]);
		assert_true(fabsf(got[i] - want[i]) <= 1e-4f);
	}
	assert_int_equal(info.n_tokens, 95); /* the reference server's usage.prompt_tokens */
	free(want);
}

/* Inputs longer than the context (512): cut by default, refused with
 * no_truncate.  "a" ×700 cut keeps [CLS], 510 × "a" and the final [SEP],
 * which is exactly the text of 510 "a". */
static void test_api_truncate(void **state)
{
	struct dormant_embed_opts strict = { .no_truncate = 1 };
	char *long_text = malloc(700 * 2 + 1), *fit = malloc(510 * 2 + 1);
	const char *docs[2];
	float a[SE], b[SE], sc[2];
	size_t dim;
	char err[256];
	(void)state;
	for (int i = 0; i < 700; i++)
		memcpy(long_text + 2 * i, "a ", 2);
	long_text[1399] = '\0';
	memcpy(fit, long_text, 1019);
	fit[1019] = '\0';
	assert_int_equal(dormant_embed(D, "sbert", long_text, a, SE, &dim, NULL, err, sizeof err), 0);
	assert_int_equal(dormant_embed(D, "sbert", fit, b, SE, &dim, NULL, err, sizeof err), 0);
	for (int k = 0; k < SE; k++)
		assert_true(fabsf(a[k] - b[k]) < 1e-6f);
	assert_int_equal(dormant_embed_batch(D, "sbert", (const char *const *)&long_text, 1, &strict, a, SE, &dim,
					     NULL, err, sizeof err), -8);
	assert_non_null(strstr(err, "truncate is off"));
	assert_int_equal(dormant_embed_batch(D, "sbert", (const char *const *)&fit, 1, &strict, a, SE, &dim, NULL,
					     err, sizeof err), 0);
	docs[0] = SDOCS[0];
	docs[1] = long_text;
	assert_int_equal(dormant_rerank(D, "srerank", SQUERY, docs, 2, NULL, sc, NULL, err, sizeof err), 0);
	assert_int_equal(dormant_rerank(D, "srerank", SQUERY, docs, 2, &strict, sc, NULL, err, sizeof err), -8);
	assert_non_null(strstr(err, "document 1"));
	free(long_text);
	free(fit);
}

static void test_api_roles(void **state)
{
	float v[1024], sc[1];
	size_t dim;
	char err[256], cfg[4400];
	const char *ini = tu_tmp_path("rag-role.ini");
	dormant *d;
	struct dormant_model_status st[8];
	size_t n;
	(void)state;
	n = dormant_status(D, st, 8);
	assert_int_equal(n, G[0] ? 8 : 5);
	assert_string_equal(st[0].role, "embed");
	assert_string_equal(st[1].role, "embed");
	assert_string_equal(st[2].role, "rerank");
	assert_string_equal(st[3].role, "generate");
	assert_string_equal(st[4].role, "embed");
	assert_int_equal(dormant_rerank(D, "sbert", "q", SDOCS, 1, NULL, sc, NULL, err, sizeof err), -1);
	assert_non_null(strstr(err, "has role embed"));
	assert_int_equal(dormant_embed(D, "srerank", "x", v, 1024, &dim, NULL, err, sizeof err), -1);
	assert_non_null(strstr(err, "has role rerank"));
	assert_int_equal(dormant_generate(D, "sbert", "hi", NULL, NULL, NULL, NULL, err, sizeof err), -1);
	assert_non_null(strstr(err, "has role embed: it does not answer generate"));
	assert_int_equal(dormant_generate(D, "tinyembed", "hi", NULL, NULL, NULL, NULL, err, sizeof err), -1);
	/* a generating decoder still embeds; an embedding decoder too */
	assert_int_equal(dormant_embed(D, "tiny", "x", v, 1024, &dim, NULL, err, sizeof err), 0);
	assert_int_equal(dormant_embed(D, "tinyembed", "x", v, 1024, &dim, NULL, err, sizeof err), 0);
	/* a configured role the file cannot serve is refused at open */
	snprintf(cfg, sizeof cfg, "[model b]\npath = %s\nrole = generate\n", SYN[0]);
	assert_int_equal(tu_write_file(ini, cfg, strlen(cfg)), 0);
	assert_int_equal(dormant_open(&d, ini, NULL, err, sizeof err), -1);
	assert_non_null(strstr(err, "role generate does not fit"));
	snprintf(cfg, sizeof cfg, "[model b]\npath = %s\nrole = embed\n", SYN[2]);
	assert_int_equal(tu_write_file(ini, cfg, strlen(cfg)), 0);
	assert_int_equal(dormant_open(&d, ini, NULL, err, sizeof err), -1);
	assert_non_null(strstr(err, "can only rerank"));
}

/* ---- HTTP ---- */

/* A rerank request: the golden query and documents for the golden
 * reranker "rerank", the synthetic ones for any other model. */
static json_t *rerank_body(const char *model)
{
	const bool g = !strcmp(model, "rerank");
	return json_pack("{s:s,s:s,s:o}", "model", model, "query", g ? QUERY : SQUERY, "documents",
			 str_array(g ? DOCS : SDOCS, N_DOCS));
}

static void test_http_rerank_golden(void **state)
{
	float *want;
	json_t *o, *res, *x;
	double prev = INFINITY;
	size_t i;
	int seen = 0;
	(void)state;
	NEED_GOLDEN();
	want = golden_f32("expected/bert-rerank.c392e50.scores.f32", N_DOCS);
	o = call("/v1/rerank", rerank_body("rerank"), 200);
	assert_string_equal(json_string_value(json_object_get(o, "object")), "list");
	assert_string_equal(json_string_value(json_object_get(o, "model")), "rerank");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "usage"), "prompt_tokens")), 95);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "usage"), "total_tokens")), 95);
	res = json_object_get(o, "results");
	assert_int_equal(json_array_size(res), N_DOCS);
	json_array_foreach(res, i, x) {
		json_int_t idx = json_integer_value(json_object_get(x, "index"));
		double s = json_real_value(json_object_get(x, "relevance_score"));
		assert_true(idx >= 0 && idx < N_DOCS);
		seen |= 1 << idx;
		assert_true(fabs(s - want[idx]) <= 1e-4);
		assert_true(s <= prev); /* best first */
		prev = s;
		assert_null(json_object_get(x, "document"));
	}
	assert_int_equal(seen, (1 << N_DOCS) - 1);
	/* the reference order: 1, 3, 4, 0, 2 */
	assert_int_equal(json_integer_value(json_object_get(json_array_get(res, 0), "index")), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(res, 4), "index")), 2);
	json_decref(o);
	free(want);
}

static void test_http_rerank_shape(void **state)
{
	static const char *paths[] = { "/v1/rerank", "/rerank", "/v1/reranking", "/api/rerank" };
	json_t *o, *b, *docs = json_array(), *x;
	size_t i;
	int best = 0;
	(void)state;
	/* the best document by the C API */
	{
		float sc[N_DOCS];
		char err[256];
		assert_int_equal(dormant_rerank(D, "srerank", SQUERY, SDOCS, N_DOCS, NULL, sc, NULL, err, sizeof err), 0);
		for (int k = 1; k < N_DOCS; k++)
			if (sc[k] > sc[best])
				best = k;
	}
	/* documents as {text} objects and strings, top_n, return_documents */
	for (i = 0; i < N_DOCS; i++)
		json_array_append_new(docs, i % 2 ? json_string(SDOCS[i]) : json_pack("{s:s}", "text", SDOCS[i]));
	for (size_t p = 0; p < 4; p++) {
		b = json_pack("{s:s,s:s,s:O,s:i,s:b}", "model", "srerank", "query", SQUERY, "documents", docs, "top_n", 2,
			      "return_documents", 1);
		o = call(paths[p], b, 200);
		assert_int_equal(json_array_size(json_object_get(o, "results")), 2);
		json_array_foreach(json_object_get(o, "results"), i, x) {
			json_int_t idx = json_integer_value(json_object_get(x, "index"));
			assert_string_equal(json_string_value(json_object_get(json_object_get(x, "document"), "text")),
					    SDOCS[idx]);
		}
		assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(o, "results"), 0),
								    "index")), best);
		json_decref(o);
	}
	/* top_n above the count: all of them */
	b = rerank_body("srerank");
	json_object_set_new(b, "top_n", json_integer(50));
	o = call("/v1/rerank", b, 200);
	assert_int_equal(json_array_size(json_object_get(o, "results")), N_DOCS);
	json_decref(o);
	/* bad requests */
	o = call("/v1/rerank", json_pack("{s:s,s:s,s:[]}", "model", "srerank", "query", "q", "documents"), 400);
	assert_non_null(strstr(err_msg(o), "'documents'"));
	json_decref(o);
	o = call("/v1/rerank", json_pack("{s:s,s:s,s:[i]}", "model", "srerank", "query", "q", "documents", 3), 400);
	assert_non_null(strstr(err_msg(o), "documents[0]"));
	json_decref(o);
	b = rerank_body("srerank");
	json_object_set_new(b, "top_n", json_integer(0));
	json_decref(call("/v1/rerank", b, 400));
	json_decref(call("/v1/rerank", rerank_body("nope"), 404));
	/* truncate: false refuses a pair longer than the context */
	{
		char *t = malloc(1401);
		for (int k = 0; k < 700; k++)
			memcpy(t + 2 * k, "a ", 2);
		t[1399] = '\0';
		b = json_pack("{s:s,s:s,s:[s],s:b}", "model", "srerank", "query", "q", "documents", t, "truncate", 0);
		o = call("/v1/rerank", b, 400);
		assert_non_null(strstr(err_msg(o), "truncate is off"));
		json_decref(o);
		b = json_pack("{s:s,s:s,s:[s]}", "model", "srerank", "query", "q", "documents", t);
		json_decref(call("/v1/rerank", b, 200));
		b = json_pack("{s:s,s:[s],s:b}", "model", "sbert", "input", t, "truncate", 0);
		o = call("/v1/embeddings", b, 400);
		assert_non_null(strstr(err_msg(o), "truncate is off"));
		json_decref(o);
		b = json_pack("{s:s,s:[s],s:b}", "model", "sbert", "input", t, "truncate", 0);
		o = call("/api/embed", b, 400);
		assert_non_null(strstr(err_msg(o), "truncate is off"));
		json_decref(o);
		free(t);
	}
	json_decref(docs);
}

static void test_http_roles(void **state)
{
	json_t *o;
	(void)state;
	o = call("/v1/rerank", rerank_body("sbert"), 400);
	assert_non_null(strstr(err_msg(o), "role embed"));
	json_decref(o);
	o = call("/api/rerank", rerank_body("tiny"), 400);
	assert_non_null(strstr(err_msg(o), "role generate"));
	json_decref(o);
	o = call("/v1/embeddings", json_pack("{s:s,s:s}", "model", "srerank", "input", "x"), 400);
	assert_non_null(strstr(err_msg(o), "role rerank"));
	json_decref(o);
	o = call("/api/embed", json_pack("{s:s,s:s}", "model", "srerank", "input", "x"), 400);
	assert_non_null(strstr(err_msg(o), "role rerank"));
	json_decref(o);
	o = call("/api/generate", json_pack("{s:s,s:s,s:b}", "model", "sbert", "prompt", "x", "stream", 0), 400);
	assert_non_null(strstr(err_msg(o), "role embed"));
	json_decref(o);
	o = call("/v1/chat/completions", json_pack("{s:s,s:[{s:s,s:s}]}", "model", "srerank", "messages", "role",
						   "user", "content", "x"), 400);
	assert_non_null(strstr(err_msg(o), "role rerank"));
	json_decref(o);
	/* /api/show names what each model can do, from its role */
	{
		static const char *const names[3] = { "tiny", "sbert", "srerank" };
		static const char *const caps[3] = { "completion", "embedding", "rerank" };
		for (int i = 0; i < 3; i++) {
			o = call("/api/show", json_pack("{s:s}", "model", names[i]), 200);
			assert_string_equal(json_string_value(json_array_get(json_object_get(o, "capabilities"), 0)),
					    caps[i]);
			json_decref(o);
		}
	}
}

static void test_http_embeddings(void **state)
{
	float *want;
	json_t *o, *data, *x;
	size_t i;
	(void)state;
	NEED_GOLDEN();
	want = golden_f32("expected/bert.c392e50.embd.f32", N_TEXTS * E);
	o = call("/v1/embeddings", json_pack("{s:s,s:o}", "model", "bert", "input", str_array(TEXTS, N_TEXTS)), 200);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "usage"), "prompt_tokens")), 138);
	data = json_object_get(o, "data");
	assert_int_equal(json_array_size(data), N_TEXTS);
	json_array_foreach(data, i, x) {
		json_t *e = json_object_get(x, "embedding");
		float v[E];
		assert_int_equal(json_integer_value(json_object_get(x, "index")), i);
		assert_int_equal(json_array_size(e), E);
		for (int k = 0; k < E; k++)
			v[k] = (float)json_real_value(json_array_get(e, k));
		assert_true(cosine(v, want + i * E, E) >= 0.9999);
	}
	json_decref(o);
	/* dimensions: the first 16 values, unit length */
	o = call("/v1/embeddings", json_pack("{s:s,s:s,s:i}", "model", "bert", "input", TEXTS[1], "dimensions", 16),
		 200);
	{
		json_t *e = json_object_get(json_array_get(json_object_get(o, "data"), 0), "embedding");
		float v[16];
		double nf = norm(want + E, 16);
		assert_int_equal(json_array_size(e), 16);
		for (int k = 0; k < 16; k++) {
			v[k] = (float)json_real_value(json_array_get(e, k));
			assert_true(fabs(v[k] - want[E + k] / nf) < 1e-4);
		}
		assert_true(fabs(norm(v, 16) - 1) < 1e-5);
	}
	json_decref(o);
	o = call("/api/embed", json_pack("{s:s,s:o,s:i}", "model", "nomic", "input", str_array(TEXTS, 3), "dimensions",
					 64), 200);
	assert_int_equal(json_array_size(json_object_get(o, "embeddings")), 3);
	assert_int_equal(json_array_size(json_array_get(json_object_get(o, "embeddings"), 2)), 64);
	assert_int_equal(json_integer_value(json_object_get(o, "prompt_eval_count")), 4 + 12 + 9);
	json_decref(o);
	o = call("/v1/embeddings", json_pack("{s:s,s:s,s:i}", "model", "bert", "input", "x", "dimensions", 0), 400);
	json_decref(o);
	free(want);
}

/* The HTTP answers carry the C API's vectors and token counts. */
static void test_http_embeddings_synth(void **state)
{
	struct dormant_embed_opts o16 = { .dimensions = 16 };
	struct dormant_embed_info info;
	float want[N_TEXTS * SE], cut[16];
	json_t *o, *data, *x;
	size_t i, dim;
	char err[256];
	(void)state;
	assert_int_equal(dormant_embed_batch(D, "sbert", STEXTS, N_TEXTS, NULL, want, N_TEXTS * SE, &dim, &info, err,
					     sizeof err), 0);
	o = call("/v1/embeddings", json_pack("{s:s,s:o}", "model", "sbert", "input", str_array(STEXTS, N_TEXTS)),
		 200);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "usage"), "prompt_tokens")),
			 info.n_tokens);
	data = json_object_get(o, "data");
	assert_int_equal(json_array_size(data), N_TEXTS);
	json_array_foreach(data, i, x) {
		json_t *e = json_object_get(x, "embedding");
		assert_int_equal(json_integer_value(json_object_get(x, "index")), i);
		assert_int_equal(json_array_size(e), SE);
		for (int k = 0; k < SE; k++)
			assert_true(fabs(json_real_value(json_array_get(e, k)) - want[i * SE + k]) < 1e-6);
	}
	json_decref(o);
	/* dimensions: the C API's cut */
	assert_int_equal(dormant_embed_batch(D, "sbert", STEXTS + 1, 1, &o16, cut, 16, &dim, NULL, err, sizeof err),
			 0);
	o = call("/v1/embeddings", json_pack("{s:s,s:s,s:i}", "model", "sbert", "input", STEXTS[1], "dimensions", 16),
		 200);
	{
		json_t *e = json_object_get(json_array_get(json_object_get(o, "data"), 0), "embedding");
		assert_int_equal(json_array_size(e), 16);
		for (int k = 0; k < 16; k++)
			assert_true(fabs(json_real_value(json_array_get(e, k)) - cut[k]) < 1e-6);
	}
	json_decref(o);
	assert_int_equal(dormant_embed_batch(D, "snomic", STEXTS, 3, NULL, want, N_TEXTS * SE, &dim, &info, err,
					     sizeof err), 0);
	o = call("/api/embed", json_pack("{s:s,s:o,s:i}", "model", "snomic", "input", str_array(STEXTS, 3),
					 "dimensions", 64), 200);
	assert_int_equal(json_array_size(json_object_get(o, "embeddings")), 3);
	assert_int_equal(json_array_size(json_array_get(json_object_get(o, "embeddings"), 2)), 64);
	assert_int_equal(json_integer_value(json_object_get(o, "prompt_eval_count")), info.n_tokens);
	json_decref(o);
	o = call("/v1/embeddings", json_pack("{s:s,s:s,s:i}", "model", "sbert", "input", "x", "dimensions", 0), 400);
	json_decref(o);
}

/* ---- CLI ---- */

/* The CLI loads the file itself: its vectors and scores are the server's. */
static void test_cli_synth(void **state)
{
	const char *txt = tu_tmp_path("rag-texts.txt");
	float want[N_TEXTS * SE], sc[N_DOCS];
	struct dormant_embed_info info;
	char *out, err[256], buf[1024] = "";
	int status;
	size_t i, dim;
	json_error_t je;
	json_t *o, *x;
	(void)state;
	for (i = 0; i < N_TEXTS; i++) {
		strcat(buf, STEXTS[i]);
		strcat(buf, "\n");
	}
	assert_int_equal(tu_write_file(txt, buf, strlen(buf)), 0);
	assert_int_equal(dormant_embed_batch(D, "snomic", STEXTS, N_TEXTS, NULL, want, N_TEXTS * SE, &dim, &info, err,
					     sizeof err), 0);
	out = tu_capture(&status, "%s embed %s --file %s --json", tu_dormant(), SYN[1], txt);
	assert_int_equal(status, 0);
	o = json_loads(out, 0, &je);
	assert_non_null(o);
	assert_int_equal(json_integer_value(json_object_get(o, "dim")), SE);
	assert_int_equal(json_integer_value(json_object_get(o, "prompt_tokens")), info.n_tokens);
	assert_int_equal(json_array_size(json_object_get(o, "embeddings")), N_TEXTS);
	json_array_foreach(json_object_get(o, "embeddings"), i, x)
		for (int k = 0; k < SE; k++)
			assert_true(fabs(json_real_value(json_array_get(x, k)) - want[i * SE + k]) < 1e-6);
	json_decref(o);
	free(out);
	/* plain output: one line per input */
	out = tu_capture(&status, "%s embed %s 'hello world' 'second' --dimensions 8", tu_dormant(), SYN[0]);
	assert_int_equal(status, 0);
	{
		float v[8];
		char *p = out;
		for (int k = 0; k < 8; k++)
			v[k] = strtof(p, &p);
		assert_true(fabs(norm(v, 8) - 1) < 1e-5);
		assert_int_equal(*p, '\n');
		assert_non_null(strchr(p + 1, '\n'));
	}
	free(out);
	assert_int_equal(dormant_rerank(D, "srerank", SQUERY, SDOCS, N_DOCS, NULL, sc, &info, err, sizeof err), 0);
	out = tu_capture(&status, "%s rerank %s '%s' '%s' '%s' '%s' '%s' '%s' --json", tu_dormant(), SYN[2], SQUERY,
			 SDOCS[0], SDOCS[1], SDOCS[2], SDOCS[3], SDOCS[4]);
	assert_int_equal(status, 0);
	o = json_loads(out, 0, &je);
	assert_non_null(o);
	assert_int_equal(json_array_size(json_object_get(o, "scores")), N_DOCS);
	for (i = 0; i < N_DOCS; i++)
		assert_true(fabs(json_real_value(json_array_get(json_object_get(o, "scores"), i)) - sc[i]) <= 1e-6);
	assert_int_equal(json_integer_value(json_object_get(o, "prompt_tokens")), info.n_tokens);
	json_decref(o);
	free(out);
	/* the wrong kind of model: a one-line error naming the role */
	out = tu_capture(&status, "%s rerank %s q d 2>&1", tu_dormant(), SYN[0]);
	assert_int_not_equal(status, 0);
	assert_non_null(strstr(out, "has role embed"));
	free(out);
}

static void test_cli(void **state)
{
	float *want;
	char *out;
	int status;
	json_error_t je;
	json_t *o;
	size_t i;
	json_t *x;
	(void)state;
	NEED_GOLDEN();
	want = golden_f32("expected/nomic-bert.c392e50.embd.f32", N_TEXTS * E);
	out = tu_capture(&status, "%s embed %s --file %s --json", tu_dormant(), gpath("models/nomic-bert.gguf"),
			 gpath("inputs/texts.txt"));
	assert_int_equal(status, 0);
	o = json_loads(out, 0, &je);
	assert_non_null(o);
	assert_int_equal(json_integer_value(json_object_get(o, "dim")), E);
	assert_int_equal(json_array_size(json_object_get(o, "embeddings")), N_TEXTS);
	json_array_foreach(json_object_get(o, "embeddings"), i, x) {
		float v[E];
		for (int k = 0; k < E; k++)
			v[k] = (float)json_real_value(json_array_get(x, k));
		assert_true(cosine(v, want + i * E, E) >= 0.9999);
	}
	json_decref(o);
	free(out);
	free(want);
	/* plain output: one line per input */
	out = tu_capture(&status, "%s embed %s 'hello world' 'second' --dimensions 8", tu_dormant(),
			 gpath("models/bert.gguf"));
	assert_int_equal(status, 0);
	{
		float v[8];
		char *p = out;
		for (int k = 0; k < 8; k++)
			v[k] = strtof(p, &p);
		assert_true(fabs(norm(v, 8) - 1) < 1e-5);
		assert_int_equal(*p, '\n');
		assert_non_null(strchr(p + 1, '\n'));
	}
	free(out);
	want = golden_f32("expected/bert-rerank.c392e50.scores.f32", N_DOCS);
	out = tu_capture(&status, "%s rerank %s '%s' '%s' '%s' '%s' '%s' '%s' --json", tu_dormant(),
			 gpath("models/bert-rerank.gguf"), QUERY, DOCS[0], DOCS[1], DOCS[2], DOCS[3], DOCS[4]);
	assert_int_equal(status, 0);
	o = json_loads(out, 0, &je);
	assert_non_null(o);
	for (i = 0; i < N_DOCS; i++)
		assert_true(fabs(json_real_value(json_array_get(json_object_get(o, "scores"), i)) - want[i]) <= 1e-4);
	assert_int_equal(json_integer_value(json_object_get(o, "prompt_tokens")), 95);
	json_decref(o);
	free(out);
	free(want);
	/* the wrong kind of model: a one-line error naming the role */
	out = tu_capture(&status, "%s rerank %s q d 2>&1", tu_dormant(), gpath("models/bert.gguf"));
	assert_int_not_equal(status, 0);
	assert_non_null(strstr(out, "has role embed"));
	free(out);
}

/* ---- a RAG scenario through a real `dormant serve` ---- */

/* GET path from the server on port: the body (malloc'ed), status 200. */
static char *get_at(uint16_t port, const char *path)
{
	struct srv_http_resp r;
	struct dm_err e;
	char *b;
	assert_int_equal(srv_http("127.0.0.1", port, "GET", path, NULL, NULL, 0, 30000, NULL, NULL, &r, &e), 0);
	assert_int_equal(r.status, 200);
	b = malloc(r.body_len + 1);
	assert_non_null(b);
	memcpy(b, r.body, r.body_len);
	b[r.body_len] = '\0';
	srv_http_resp_free(&r);
	return b;
}

/* The vectors of a /v1/embeddings answer, in input order, into out (n × dim). */
static void embeddings_of(json_t *o, float *out, size_t n, size_t dim)
{
	json_t *data = json_object_get(o, "data"), *x;
	size_t i;
	assert_int_equal(json_array_size(data), n);
	json_array_foreach(data, i, x) {
		json_t *e = json_object_get(x, "embedding");
		size_t idx = (size_t)json_integer_value(json_object_get(x, "index"));
		assert_true(idx < n);
		assert_int_equal(json_array_size(e), dim);
		for (size_t k = 0; k < dim; k++)
			out[idx * dim + k] = (float)json_real_value(json_array_get(e, k));
	}
}

static int SCEN_PID = -1; /* the scenario's server, stopped by its teardown */

static int scenario_teardown(void **state)
{
	(void)state;
	if (SCEN_PID > 0)
		tu_serve_stop(SCEN_PID);
	SCEN_PID = -1;
	return 0;
}

#define N_PASS 50
#define N_TOP 10
#define N_CTX_DOCS 3

/* Retrieval-augmented generation against a `dormant serve` with a chat
 * model, an embedder and a reranker under a max_ram that fits all three:
 * embed 50 passages, then for each of 3 questions embed it, take the 10
 * nearest passages by cosine, rerank them, and generate with the best 3 in
 * the prompt.  All three models stay loaded: each is loaded exactly once
 * and never evicted (/health's load_count / unload_count, /metrics'
 * dormant_model_evictions_total). */
/* The server finds a model however many are registered (its lookup once
 * stopped at the first 64): the 80th of 80 extra models answers. */
static void test_http_many_models(void **state)
{
	char name[32], err[256];
	json_t *o;
	(void)state;
	for (int i = 0; i < 80; i++) {
		snprintf(name, sizeof name, "many%02d", i);
		assert_int_equal(dormant_add_model(D, name, tu_tmp_path("rag-tiny.gguf"), err, sizeof err), 0);
	}
	o = call("/api/show", json_pack("{s:s}", "model", "many79"), 200);
	assert_string_equal(json_string_value(json_array_get(json_object_get(o, "capabilities"), 0)), "completion");
	json_decref(o);
	json_decref(call("/api/show", json_pack("{s:s}", "model", "many80"), 404));
}

static void test_rag_scenario(void **state)
{
	static const char *const topics[] = { "rivers", "volcanoes", "bread", "trains", "bees" };
	static const char *const questions[] = { "how do bees make honey", "why do volcanoes erupt",
						 "when did trains become fast" };
	const char *ini = tu_tmp_path("rag-serve.ini"), *chat = tu_tmp_path("rag-chat.gguf");
	const char *argv[] = { "--config", ini, "--quiet", NULL };
	char cfg[16384], pass[N_PASS][160], *body;
	const char *pp[N_PASS];
	float *pv = malloc((size_t)N_PASS * SE * sizeof *pv), qv[SE];
	int pid, port_i;
	uint16_t port;
	json_t *o, *models, *m;
	size_t i;
	(void)state;
	assert_non_null(pv);
	assert_int_equal(tu_system("%s synth --preset tiny --type Q8_0 -o %s", tu_dormant(), chat), 0);
	snprintf(cfg, sizeof cfg,
		 "[server]\nmax_ram = 256MiB\nkeep_alive = 10m\n\n"
		 "[model chat]\npath = %s\nthreads = 1\n\n[model embed]\npath = %s\nthreads = 1\n\n"
		 "[model rerank]\npath = %s\nthreads = 1\n",
		 chat, SYN[0], SYN[2]);
	assert_int_equal(tu_write_file(ini, cfg, strlen(cfg)), 0);
	assert_int_equal(tu_serve_start(argv, NULL, &SCEN_PID, &port_i), 0);
	port = (uint16_t)port_i;
	for (i = 0; i < N_PASS; i++) {
		snprintf(pass[i], sizeof pass[i], "passage %zu: a note on %s, part %zu, with facts about %s.", i,
			 topics[i % 5], i / 5, topics[(i * 3 + 1) % 5]);
		pp[i] = pass[i];
	}
	o = call_at(port, "/v1/embeddings", json_pack("{s:s,s:o}", "model", "embed", "input", str_array(pp, N_PASS)),
		    200);
	embeddings_of(o, pv, N_PASS, SE);
	json_decref(o);
	for (size_t q = 0; q < 3; q++) {
		int top[N_TOP], best[N_CTX_DOCS];
		double cs[N_PASS];
		const char *docs[N_TOP];
		char prompt[2048];
		json_t *res, *x;
		double prev = INFINITY;

		o = call_at(port, "/v1/embeddings", json_pack("{s:s,s:s}", "model", "embed", "input", questions[q]),
			    200);
		embeddings_of(o, qv, 1, SE);
		json_decref(o);
		/* the 10 nearest by cosine (the vectors are unit length), best first */
		for (i = 0; i < N_PASS; i++)
			cs[i] = cosine(qv, pv + i * SE, SE);
		for (int t = 0; t < N_TOP; t++) {
			int b = -1;
			for (i = 0; i < N_PASS; i++)
				if (cs[i] > -2 && (b < 0 || cs[i] > cs[b]))
					b = (int)i;
			top[t] = b;
			docs[t] = pass[b];
			cs[b] = -3; /* taken */
		}
		o = call_at(port, "/v1/rerank", json_pack("{s:s,s:s,s:o,s:i}", "model", "rerank", "query", questions[q],
							  "documents", str_array(docs, N_TOP), "top_n", N_CTX_DOCS),
			    200);
		res = json_object_get(o, "results");
		assert_int_equal(json_array_size(res), N_CTX_DOCS);
		json_array_foreach(res, i, x) {
			json_int_t idx = json_integer_value(json_object_get(x, "index"));
			double sc = json_real_value(json_object_get(x, "relevance_score"));
			assert_true(idx >= 0 && idx < N_TOP);
			assert_true(isfinite(sc) && sc <= prev);
			prev = sc;
			best[i] = top[idx];
		}
		json_decref(o);
		snprintf(prompt, sizeof prompt, "Answer from these notes.\n1. %s\n2. %s\n3. %s\nQuestion: %s",
			 pass[best[0]], pass[best[1]], pass[best[2]], questions[q]);
		o = call_at(port, "/v1/chat/completions",
			    json_pack("{s:s,s:[{s:s,s:s}],s:i,s:f,s:i}", "model", "chat", "messages", "role", "user",
				      "content", prompt, "max_tokens", 8, "temperature", 0.0, "seed", 1),
			    200);
		x = json_object_get(json_object_get(o, "usage"), "completion_tokens");
		assert_true(json_integer_value(x) >= 1 && json_integer_value(x) <= 8);
		/* the prompt holds the three passages: more tokens than them alone */
		assert_true(json_integer_value(json_object_get(json_object_get(o, "usage"), "prompt_tokens")) > 30);
		assert_true(json_is_string(json_object_get(
			json_object_get(json_array_get(json_object_get(o, "choices"), 0), "message"), "content")));
		json_decref(o);
	}
	/* every model loaded once and still loaded */
	body = get_at(port, "/health");
	o = json_loads(body, 0, NULL);
	assert_non_null(o);
	models = json_object_get(o, "models");
	assert_int_equal(json_array_size(models), 3);
	json_array_foreach(models, i, m) {
		const char *nm = json_string_value(json_object_get(m, "name"));
		if (json_integer_value(json_object_get(m, "load_count")) != 1 ||
		    json_integer_value(json_object_get(m, "unload_count")) != 0)
			fprintf(stderr, "%s: %s\n", nm, body);
		assert_int_equal(json_integer_value(json_object_get(m, "load_count")), 1);
		assert_int_equal(json_integer_value(json_object_get(m, "unload_count")), 0);
		assert_string_equal(json_string_value(json_object_get(m, "state")), "ready");
	}
	json_decref(o);
	free(body);
	body = get_at(port, "/metrics");
	assert_non_null(strstr(body, "dormant_model_loads_total{model=\"chat\"} 1\n"));
	assert_non_null(strstr(body, "dormant_model_evictions_total{model=\"chat\"} 0\n"));
	free(body);
	pid = SCEN_PID;
	SCEN_PID = -1;
	assert_int_equal(tu_serve_stop(pid), 0); /* and it exits cleanly */
	free(pv);
}

/* ---- requests sharing a batch ---- */

/* Batched answers are compared with solo answers at 1e-5 absolute, as the
 * batch against one-by-one checks above: a sequence's rows never mix with
 * other sequences' (attention stays inside the sequence, every other step
 * is row by row), so the only difference the kernels may make is the order
 * of float additions when a matrix product takes another path for another
 * number of rows: a few float ulps of values at most 1 (unit vectors) or
 * of a score near 1e-1, well under 1e-5, while a row of another sequence
 * (or no answer) is off by 1e-2 or more. */
#define BATCH_TOL 1e-5f

/* One embedding or rerank call on a thread of its own. */
struct call {
	const char *model, *query; /* query: a rerank */
	const char *const *texts;
	size_t n;
	struct dormant_embed_opts o;
	atomic_int cancel;
	float *out;
	size_t cap, dim;
	int rc;
	char err[256];
	pthread_t th;
};

static void *call_main(void *p)
{
	struct call *c = p;
	c->o.cancel = &c->cancel;
	if (c->query)
		c->rc = dormant_rerank(D, c->model, c->query, c->texts, c->n, &c->o, c->out, NULL, c->err,
				       sizeof c->err);
	else
		c->rc = dormant_embed_batch(D, c->model, c->texts, c->n, &c->o, c->out, c->cap, &c->dim, NULL, c->err,
					    sizeof c->err);
	return NULL;
}

static void call_start(struct call *c, const char *model, const char *query, const char *const *texts, size_t n,
		       size_t dims)
{
	memset(c, 0, sizeof *c);
	c->model = model;
	c->query = query;
	c->texts = texts;
	c->n = n;
	c->o.dimensions = dims;
	c->cap = n * SE;
	c->out = calloc(c->cap, sizeof *c->out);
	assert_non_null(c->out);
	assert_int_equal(pthread_create(&c->th, NULL, call_main, c), 0);
}

static void encode_counts(const char *model, uint64_t *batches, uint64_t *requests, uint32_t *waiting)
{
	struct dormant_model_status st[16];
	size_t n = dormant_status(D, st, 16);
	for (size_t i = 0; i < n && i < 16; i++)
		if (!strcmp(st[i].name, model)) {
			*batches = st[i].encode_batches;
			*requests = st[i].encode_requests;
			*waiting = st[i].encode_waiting;
			return;
		}
	fail_msg("model %s not listed", model);
}

/* Waits (at most 30 s) until `want` requests wait for a batch of model. */
static void wait_waiting(const char *model, uint32_t want)
{
	uint64_t b, r;
	uint32_t w = 0;
	for (int i = 0; i < 30000; i++) {
		struct timespec ts = { 0, 1000000 };
		encode_counts(model, &b, &r, &w);
		if (w == want)
			return;
		nanosleep(&ts, NULL);
	}
	fail_msg("%u requests wait for %s, expected %u", w, model, want);
}

/* Holds model busy (a lease of the manager's, as a running request has). */
static struct mgr_lease *hold(const char *model)
{
	struct mgr_lease *l = NULL;
	struct dm_err e;
	assert_int_equal(mgr_acquire(dormant_mgr(D), model, NULL, &l, &e), 0);
	return l;
}

static void assert_close(const float *got, const float *want, size_t n)
{
	float worst = 0;
	for (size_t k = 0; k < n; k++)
		if (fabsf(got[k] - want[k]) > worst)
			worst = fabsf(got[k] - want[k]);
	if (worst > BATCH_TOL)
		fprintf(stderr, "batched vs solo: max |difference| %g\n", (double)worst);
	assert_true(worst <= BATCH_TOL);
}

static void test_batch_embed(void **state)
{
	/* five requests: texts of their own, other dimensions, an empty input */
	static const char *const r0[] = { "hello world", "a" };
	static const char *const r1[] = { "The quick brown fox jumps over the lazy dog." };
	static const char *const r2[] = { "dormant unloads models that nobody uses", "42 is the answer",
					  "embeddings map text to vectors" };
	static const char *const r3[] = { "bad", "" };
	static const char *const r4[] = { "hello world", "zebra" };
	const char *const *in[5] = { r0, r1, r2, r3, r4 };
	const size_t n[5] = { 2, 1, 3, 2, 2 }, dims[5] = { 0, 0, 0, 0, 64 };
	struct call c[5];
	float *solo[5];
	uint64_t b0, q0, b1, q1;
	uint32_t w;
	struct mgr_lease *l;
	size_t dim;
	char err[256];
	(void)state;
	for (int i = 0; i < 5; i++) {
		struct dormant_embed_opts o = { .dimensions = dims[i] };
		assert_non_null(solo[i] = calloc(n[i] * SE, sizeof(float)));
		if (i != 3)
			assert_int_equal(dormant_embed_batch(D, "sbert", in[i], n[i], &o, solo[i], n[i] * SE, &dim, NULL,
							     err, sizeof err), 0);
	}
	encode_counts("sbert", &b0, &q0, &w);
	l = hold("sbert");
	for (int i = 0; i < 5; i++) {
		call_start(&c[i], "sbert", NULL, in[i], n[i], dims[i]);
		wait_waiting("sbert", (uint32_t)i + 1); /* queued in this order */
	}
	mgr_release(l);
	for (int i = 0; i < 5; i++)
		pthread_join(c[i].th, NULL);
	encode_counts("sbert", &b1, &q1, &w);
	assert_int_equal(b1 - b0, 1); /* one batch answered all five */
	assert_int_equal(q1 - q0, 5);
	assert_int_equal(w, 0);
	for (int i = 0; i < 5; i++) {
		if (i == 3) { /* its own error, nobody else's */
			assert_int_equal(c[i].rc, DM_EINVAL);
			assert_non_null(strstr(c[i].err, "input 1 is empty"));
		} else {
			assert_int_equal(c[i].rc, 0);
			assert_int_equal(c[i].dim, dims[i] ? dims[i] : SE);
			assert_close(c[i].out, solo[i], n[i] * c[i].dim);
		}
		free(c[i].out);
		free(solo[i]);
	}
}

static void test_batch_rerank(void **state)
{
	static const char *const queries[3] = { "what does a reranker do", "yellow fruit", "zebra" };
	struct call c[3];
	float solo[3][N_DOCS];
	uint64_t b0, q0, b1, q1;
	uint32_t w;
	struct mgr_lease *l;
	char err[256];
	(void)state;
	for (int i = 0; i < 3; i++)
		assert_int_equal(dormant_rerank(D, "srerank", queries[i], SDOCS + i, N_DOCS - (size_t)i, NULL, solo[i],
						NULL, err, sizeof err), 0);
	encode_counts("srerank", &b0, &q0, &w);
	l = hold("srerank");
	for (int i = 0; i < 3; i++) {
		call_start(&c[i], "srerank", queries[i], SDOCS + i, N_DOCS - (size_t)i, 0);
		wait_waiting("srerank", (uint32_t)i + 1);
	}
	mgr_release(l);
	for (int i = 0; i < 3; i++)
		pthread_join(c[i].th, NULL);
	encode_counts("srerank", &b1, &q1, &w);
	assert_int_equal(b1 - b0, 1);
	assert_int_equal(q1 - q0, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(c[i].rc, 0);
		assert_close(c[i].out, solo[i], N_DOCS - (size_t)i);
		free(c[i].out);
	}
}

/* Three requests of 100 inputs: a batch holds at most 256 sequences, so
 * the first two share one and the third runs in the next. */
static void test_batch_bound(void **state)
{
	enum { PER = 100 };
	static char buf[3 * PER][48];
	const char *texts[3 * PER];
	struct call c[3];
	uint64_t b0, q0, b1, q1;
	uint32_t w;
	struct mgr_lease *l;
	(void)state;
	for (int i = 0; i < 3 * PER; i++) {
		snprintf(buf[i], sizeof buf[i], "text number %d of the bound test", i);
		texts[i] = buf[i];
	}
	encode_counts("sbert", &b0, &q0, &w);
	l = hold("sbert");
	for (int i = 0; i < 3; i++) {
		call_start(&c[i], "sbert", NULL, texts + i * PER, PER, 0);
		wait_waiting("sbert", (uint32_t)i + 1);
	}
	mgr_release(l);
	for (int i = 0; i < 3; i++)
		pthread_join(c[i].th, NULL);
	encode_counts("sbert", &b1, &q1, &w);
	assert_int_equal(b1 - b0, 2); /* ceil(300 / 256) */
	assert_int_equal(q1 - q0, 3);
	for (int i = 0; i < 3; i++) {
		float one[SE];
		size_t dim;
		char err[256];
		assert_int_equal(c[i].rc, 0);
		/* spot check: the last input of each against itself alone */
		assert_int_equal(dormant_embed(D, "sbert", texts[i * PER + PER - 1], one, SE, &dim, NULL, err,
					       sizeof err), 0);
		assert_close(c[i].out + (size_t)(PER - 1) * SE, one, SE);
		free(c[i].out);
	}
}

/* Requests of long inputs: a batch holds at most 16384 tokens, so a
 * request that would pass it waits for the next batch (put back at the
 * front, ahead of younger requests). */
static void test_batch_tokens(void **state)
{
	enum { LONG = 6000 };
	char *text = malloc(LONG + 1);
	const char *texts[256];
	size_t PER;
	struct call c[3];
	struct dormant_embed_info info;
	uint64_t b0, q0, b1, q1, per_req;
	uint32_t w;
	struct mgr_lease *l;
	float *solo;
	size_t dim;
	char err[256];
	(void)state;
	assert_non_null(text);
	for (int i = 0; i < LONG; i++)
		text[i] = "ab c"[i % 4];
	text[LONG] = '\0';
	for (int i = 0; i < 256; i++)
		texts[i] = text; /* each cut to the model's context */
	/* requests of PER inputs: the bound sits between one and two requests */
	assert_non_null(solo = malloc(256 * SE * sizeof *solo));
	assert_int_equal(dormant_embed(D, "sbert", text, solo, SE, &dim, &info, err, sizeof err), 0);
	PER = 16384 / (size_t)info.n_tokens * 2 / 3 + 1;
	assert_true(PER >= 2 && PER <= 256);
	assert_int_equal(dormant_embed_batch(D, "sbert", texts, PER, NULL, solo, (size_t)PER * SE, &dim, &info, err,
					     sizeof err), 0);
	per_req = (uint64_t)info.n_tokens;
	assert_true(per_req <= 16384 && 2 * per_req > 16384);
	encode_counts("sbert", &b0, &q0, &w);
	l = hold("sbert");
	for (int i = 0; i < 3; i++) {
		call_start(&c[i], "sbert", NULL, texts, PER, 0);
		wait_waiting("sbert", (uint32_t)i + 1);
	}
	mgr_release(l);
	for (int i = 0; i < 3; i++)
		pthread_join(c[i].th, NULL);
	encode_counts("sbert", &b1, &q1, &w);
	assert_int_equal(b1 - b0, 3);
	assert_int_equal(q1 - q0, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(c[i].rc, 0);
		assert_close(c[i].out, solo, (size_t)PER * SE);
		free(c[i].out);
	}
	free(solo);
	free(text);
}

/* A cancelled request leaves the queue; a cancelled leader (waiting for
 * the model) hands the batch to the next; the others get their answers. */
static void test_batch_cancel(void **state)
{
	static const char *const r[3][1] = { { "first request" }, { "second request" }, { "third request" } };
	struct call c[3];
	float solo[SE];
	uint64_t b0, q0, b1, q1;
	uint32_t w;
	struct mgr_lease *l;
	size_t dim;
	char err[256];
	(void)state;
	assert_int_equal(dormant_embed(D, "sbert", r[2][0], solo, SE, &dim, NULL, err, sizeof err), 0);
	encode_counts("sbert", &b0, &q0, &w);
	l = hold("sbert");
	for (int i = 0; i < 3; i++) {
		call_start(&c[i], "sbert", NULL, r[i], 1, 0);
		wait_waiting("sbert", (uint32_t)i + 1);
	}
	atomic_store(&c[1].cancel, 1); /* a follower */
	pthread_join(c[1].th, NULL);
	assert_int_equal(c[1].rc, DM_ECANCELED);
	wait_waiting("sbert", 2);
	atomic_store(&c[0].cancel, 1); /* the leader, waiting for the model */
	pthread_join(c[0].th, NULL);
	assert_int_equal(c[0].rc, DM_ECANCELED);
	wait_waiting("sbert", 1);
	mgr_release(l);
	pthread_join(c[2].th, NULL);
	assert_int_equal(c[2].rc, 0);
	assert_close(c[2].out, solo, SE);
	encode_counts("sbert", &b1, &q1, &w);
	assert_int_equal(b1 - b0, 1);
	assert_int_equal(q1 - q0, 1);
	for (int i = 0; i < 3; i++)
		free(c[i].out);
}

/* One HTTP request on a thread of its own. */
struct hcall {
	const char *path;
	char *body;
	struct srv_http_resp resp;
	int rc;
	pthread_t th;
};

static void *hcall_main(void *p)
{
	struct hcall *h = p;
	struct dm_err e;
	h->rc = srv_http("127.0.0.1", PORT, "POST", h->path, NULL, h->body, strlen(h->body), 60000, NULL, NULL,
			 &h->resp, &e);
	return NULL;
}

/* Sends an embeddings request on a raw socket and closes it without
 * reading the answer (a client that hangs up). */
static void hang_up(const char *body)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	char req[1024];
	int fd = socket(AF_INET, SOCK_STREAM, 0), n;
	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
	n = snprintf(req, sizeof req,
		     "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
	assert_int_equal(send(fd, req, (size_t)n, 0), n);
	wait_waiting("sbert", 1);
	close(fd);
}

/* Concurrent /v1/embeddings and /v1/rerank requests: one batch per model,
 * each answer its solo (C API) result; a client that hangs up while it
 * waits leaves the queue and the /metrics counters show it all. */
static void test_batch_http(void **state)
{
	static const char *const t[3][2] = { { "hello world", "a" }, { "zebra", "bananas are yellow" },
					     { "The quick brown fox", "dormant" } };
	struct hcall h[5];
	float solo[3][2 * SE], sc[2][N_DOCS];
	uint64_t b0, q0, b1, q1, rb0, rq0, rb1, rq1;
	uint32_t w;
	struct mgr_lease *l, *lr;
	size_t dim;
	char err[256], *m, line[160];
	(void)state;
	for (int i = 0; i < 3; i++)
		assert_int_equal(dormant_embed_batch(D, "sbert", t[i], 2, NULL, solo[i], 2 * SE, &dim, NULL, err,
						     sizeof err), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(dormant_rerank(D, "srerank", t[i][0], SDOCS, N_DOCS, NULL, sc[i], NULL, err,
						sizeof err), 0);
	encode_counts("sbert", &b0, &q0, &w);
	encode_counts("srerank", &rb0, &rq0, &w);
	l = hold("sbert");
	lr = hold("srerank");
	hang_up("{\"model\":\"sbert\",\"input\":[\"gone before its answer\"]}");
	wait_waiting("sbert", 0); /* its watcher noticed and the request left */
	for (int i = 0; i < 5; i++) {
		json_t *body = i < 3 ? json_pack("{s:s,s:o,s:s}", "model", "sbert", "input", str_array(t[i], 2),
						 "encoding_format", "float")
				     : json_pack("{s:s,s:s,s:o}", "model", "srerank", "query", t[i - 3][0], "documents",
						 str_array(SDOCS, N_DOCS));
		memset(&h[i], 0, sizeof h[i]);
		h[i].path = i < 3 ? "/v1/embeddings" : "/v1/rerank";
		h[i].body = json_dumps(body, 0);
		json_decref(body);
		assert_int_equal(pthread_create(&h[i].th, NULL, hcall_main, &h[i]), 0);
		wait_waiting(i < 3 ? "sbert" : "srerank", (uint32_t)(i < 3 ? i + 1 : i - 2));
	}
	mgr_release(l);
	mgr_release(lr);
	for (int i = 0; i < 5; i++) {
		json_error_t je;
		json_t *o;
		pthread_join(h[i].th, NULL);
		assert_int_equal(h[i].rc, 0);
		if (h[i].resp.status != 200)
			fprintf(stderr, "%s -> %u: %s\n", h[i].path, h[i].resp.status, h[i].resp.body);
		assert_int_equal(h[i].resp.status, 200);
		assert_non_null(o = json_loadb(h[i].resp.body, h[i].resp.body_len, 0, &je));
		if (i < 3) {
			float got[2 * SE];
			embeddings_of(o, got, 2, SE);
			assert_close(got, solo[i], 2 * SE);
		} else {
			json_t *x;
			size_t k;
			json_array_foreach(json_object_get(o, "results"), k, x) {
				size_t idx = (size_t)json_integer_value(json_object_get(x, "index"));
				float got = (float)json_real_value(json_object_get(x, "relevance_score"));
				assert_true(idx < N_DOCS);
				assert_close(&got, &sc[i - 3][idx], 1);
			}
			assert_int_equal(k, N_DOCS);
		}
		json_decref(o);
		srv_http_resp_free(&h[i].resp);
		free(h[i].body);
	}
	encode_counts("sbert", &b1, &q1, &w);
	encode_counts("srerank", &rb1, &rq1, &w);
	assert_int_equal(b1 - b0, 1);
	assert_int_equal(q1 - q0, 3);
	assert_int_equal(rb1 - rb0, 1);
	assert_int_equal(rq1 - rq0, 2);
	m = get_at(PORT, "/metrics");
	snprintf(line, sizeof line, "dormant_encode_batches_total{model=\"sbert\"} %llu\n", (unsigned long long)b1);
	assert_non_null(strstr(m, line));
	snprintf(line, sizeof line, "dormant_encode_requests_total{model=\"srerank\"} %llu\n",
		 (unsigned long long)rq1);
	assert_non_null(strstr(m, line));
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_synth_deterministic), cmocka_unit_test(test_synth_embed),
		cmocka_unit_test(test_synth_rerank),
		cmocka_unit_test(test_api_embed_golden), cmocka_unit_test(test_api_dimensions),
		cmocka_unit_test(test_api_rerank_golden), cmocka_unit_test(test_api_truncate),
		cmocka_unit_test(test_api_roles),         cmocka_unit_test(test_http_rerank_golden),
		cmocka_unit_test(test_http_rerank_shape), cmocka_unit_test(test_http_roles),
		cmocka_unit_test(test_http_embeddings),   cmocka_unit_test(test_http_embeddings_synth),
		cmocka_unit_test(test_cli),               cmocka_unit_test(test_cli_synth),
		cmocka_unit_test(test_batch_embed),       cmocka_unit_test(test_batch_rerank),
		cmocka_unit_test(test_batch_bound),       cmocka_unit_test(test_batch_tokens),
		cmocka_unit_test(test_batch_cancel),
		cmocka_unit_test(test_batch_http),
		cmocka_unit_test(test_http_many_models),
		cmocka_unit_test_teardown(test_rag_scenario, scenario_teardown),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

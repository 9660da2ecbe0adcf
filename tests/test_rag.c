/* tests/rag — embeddings and reranking end to end from text.
 *
 * Always, on synthetic encoders (dormant synth --arch bert|nomic-bert
 * [--rank]): they load, embed unit vectors (batch == one by one) and rerank
 * to one finite score per document; response shapes (sorted, top_n,
 * return_documents, usage), dimensions (truncate + renormalise), role
 * refusals naming the role, truncate true / false, and HTTP and CLI answers
 * equal to the C API's.
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
#include <string.h>
#include <unistd.h>

#include "dormant.h"
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
		cmocka_unit_test_teardown(test_rag_scenario, scenario_teardown),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

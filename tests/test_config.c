/* tests/config — value parsers, file + profile + environment precedence,
 * and errors that name the file, line and key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "mgr/config.h"
#include "tutil.h"

static struct dm_config cfg;

static void test_parsers(void **state)
{
	int64_t ms;
	uint64_t b;
	bool v;
	(void)state;
	assert_int_equal(dm_parse_duration_ms("30s", &ms), 0);
	assert_int_equal(ms, 30000);
	assert_int_equal(dm_parse_duration_ms("5m", &ms), 0);
	assert_int_equal(ms, 300000);
	assert_int_equal(dm_parse_duration_ms("1h", &ms), 0);
	assert_int_equal(ms, 3600000);
	assert_int_equal(dm_parse_duration_ms("250ms", &ms), 0);
	assert_int_equal(ms, 250);
	assert_int_equal(dm_parse_duration_ms("0", &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(dm_parse_duration_ms("forever", &ms), 0);
	assert_int_equal(ms, MGR_KEEP_FOREVER);
	assert_int_equal(dm_parse_duration_ms("5 parsecs", &ms), DM_EINVAL);
	/* the grammar requests use (base/dur.h): Go's compound durations, and a
	 * negative one means forever as in Ollama */
	assert_int_equal(dm_parse_duration_ms("1h30m", &ms), 0);
	assert_int_equal(ms, 5400000);
	assert_int_equal(dm_parse_duration_ms("-5s", &ms), 0);
	assert_int_equal(ms, MGR_KEEP_FOREVER);
	assert_int_equal(dm_parse_size("8GiB", &b), 0);
	assert_true(b == 8ull << 30);
	assert_int_equal(dm_parse_size("6000MB", &b), 0);
	assert_true(b == 6000000000ull);
	assert_int_equal(dm_parse_size("50%", &b), 0);
	assert_true(b > 0);
	assert_int_equal(dm_parse_size("101%", &b), DM_EINVAL);
	assert_int_equal(dm_parse_size("12XB", &b), DM_EINVAL);
	assert_int_equal(dm_parse_bool("Yes", &v), 0);
	assert_true(v);
	assert_int_equal(dm_parse_bool("off", &v), 0);
	assert_false(v);
	assert_int_equal(dm_parse_bool("maybe", &v), DM_EINVAL);
}

static const char *write_ini(const char *name, const char *text)
{
	const char *p = tu_tmp_path(name);
	assert_int_equal(tu_write_file(p, text, strlen(text)), 0);
	return p;
}

static const char *source_of(const char *key)
{
	for (size_t i = 0; i < cfg.n_src; i++)
		if (!strcmp(cfg.src[i].key, key))
			return cfg.src[i].src;
	return "";
}

static void test_precedence(void **state)
{
	const char *p = write_ini("a.ini",
				  "[server]\nmax_ram = 2GiB\nkeep_alive = 10m\nthreads = 2\n\n"
				  "[model chat]\npath = /m/chat.gguf\nfallback = small, tiny\n\n"
				  "[model small]\npath = /m/small.gguf\nkeep_alive = 0\nmode = read\n"
				  "quantize_on_load = Q4_K\n\n"
				  "[profile production]\nkeep_alive = 1h\nmodel.chat.mode = prefetch\n");
	struct dm_err e;
	(void)state;
	unsetenv("DORMANT_ENV");
	setenv("DORMANT_MAX_RAM", "3GiB", 1);
	assert_int_equal(dm_config_load(&cfg, p, "production", &e), 0);
	unsetenv("DORMANT_MAX_RAM");
	assert_true(cfg.max_ram == 3ull << 30); /* env beats the file */
	assert_string_equal(source_of("server.max_ram"), "env DORMANT_MAX_RAM");
	assert_int_equal(cfg.keep_alive_ms, 3600000); /* profile beats [server] */
	assert_non_null(strstr(source_of("server.keep_alive"), "a.ini:17 (profile production)"));
	assert_true(cfg.enable_fallback); /* built-in production profile */
	assert_int_equal(cfg.n_models, 2);
	assert_string_equal(cfg.models[0].name, "chat");
	assert_int_equal(cfg.models[0].keep_alive_ms, 3600000); /* server default */
	assert_int_equal(cfg.models[0].mode, MGR_MODE_PREFETCH);
	assert_int_equal(cfg.models[0].n_threads, 2);
	assert_string_equal(cfg.models[0].fallbacks[1], "tiny");
	assert_int_equal(cfg.models[1].keep_alive_ms, 0); /* its own */
	assert_int_equal(cfg.models[1].mode, MGR_MODE_READ);
	assert_int_equal(cfg.models[1].quantize_on_load, GGUF_TYPE_Q4_K);
	/* DORMANT_ENV selects the profile */
	setenv("DORMANT_ENV", "testing", 1);
	assert_int_equal(dm_config_load(&cfg, NULL, NULL, &e), 0);
	unsetenv("DORMANT_ENV");
	assert_string_equal(cfg.profile, "testing");
	assert_int_equal(cfg.keep_alive_ms, 0);
	assert_int_equal(cfg.max_queue, 4);
}

static void expect_error(const char *text, const char *want)
{
	const char *p = write_ini("bad.ini", text);
	struct dm_err e;
	assert_int_equal(dm_config_load(&cfg, p, NULL, &e), DM_EINVAL);
	if (!strstr(e.msg, want))
		fail_msg("expected \"%s\" in \"%s\"", want, e.msg);
}

static void test_errors(void **state)
{
	(void)state;
	expect_error("[server]\n\nmax_ram = 12XB\n", "bad.ini:3: server.max_ram = '12XB' is not a size");
	expect_error("[server]\nkeep_alive = soon\n", "bad.ini:2: server.keep_alive = 'soon' is not a duration");
	expect_error("[server]\nmax_rams = 1\n", "server.max_rams = '1' is not a known setting");
	expect_error("[model x]\npath = a.gguf\nmode = telepathy\n", "bad.ini:3: model.x.mode = 'telepathy' must be mmap");
	expect_error("[model x]\nrole = chat\n", "model.x.role = 'chat' must be generate, embed or rerank");
	expect_error("[model x]\nload = lazy\n", "model 'x' has no path");
	expect_error("[weird]\na = 1\n", "unknown section [weird]");
	expect_error("[server\nx\n", "syntax error");
	expect_error("[model a//b]\npath = x\n", "bad model name 'a//b'");
	expect_error("[model ../b]\npath = x\n", "bad model name '../b'");
	setenv("DORMANT_QUANTIZE_ON_LOAD", "Q6_K", 1);
	{
		struct dm_err e;
		assert_int_equal(dm_config_load(&cfg, NULL, NULL, &e), DM_EINVAL);
		assert_non_null(strstr(e.msg, "env DORMANT_QUANTIZE_ON_LOAD: server.quantize_on_load = 'Q6_K' must be off, Q8_0, Q4_0 or Q4_K"));
	}
	unsetenv("DORMANT_QUANTIZE_ON_LOAD");
}

/* Operator mistakes are errors, not silent base settings: an unknown
 * profile (named in --profile or DORMANT_ENV) lists the known ones. */
static void test_unknown_profile(void **state)
{
	const char *p = write_ini("prof.ini", "[server]\nkeep_alive = 1m\n\n[profile  staging]\nkeep_alive = 2m\n");
	struct dm_err e;
	(void)state;
	unsetenv("DORMANT_ENV");
	assert_int_equal(dm_config_load(&cfg, p, "nosuch", &e), DM_EINVAL);
	assert_string_equal(e.msg, "profile 'nosuch' is not defined (known profiles: testing, development, "
				   "production, staging)");
	setenv("DORMANT_ENV", "prodution", 1);
	assert_int_equal(dm_config_load(&cfg, NULL, NULL, &e), DM_EINVAL);
	assert_non_null(strstr(e.msg, "DORMANT_ENV: profile 'prodution' is not defined (known profiles: "
				      "testing, development, production"));
	/* a file's own profile is known, by DORMANT_ENV too */
	setenv("DORMANT_ENV", "staging", 1);
	assert_int_equal(dm_config_load(&cfg, p, NULL, &e), 0);
	unsetenv("DORMANT_ENV");
	assert_int_equal(cfg.keep_alive_ms, 120000);
	assert_int_equal(dm_config_load(&cfg, p, "production", &e), 0);
}

/* A section written twice names both lines (inih would merge them). */
static void test_duplicate_section(void **state)
{
	(void)state;
	expect_error("[model a]\npath = /m/a.gguf\n\n[model b]\npath = /m/b.gguf\n\n[model a]\npath = /m/other.gguf\n",
		     "bad.ini:7: section [model a] appears twice (first at line 1)");
	expect_error("[server]\nmax_queue = 2\n[ server ]\nthreads = 1\n",
		     "bad.ini:3: section [server] appears twice (first at line 1)");
}

/* Discovery settings: models_dir once per line, discover a boolean (on by
 * default; DORMANT_DISCOVER over the file). */
static void test_discovery_keys(void **state)
{
	struct dm_err e;
	(void)state;
	unsetenv("DORMANT_DISCOVER");
	assert_int_equal(dm_config_load(&cfg, NULL, NULL, &e), 0);
	assert_true(cfg.discover);
	assert_int_equal(cfg.n_models_dirs, 0);
	assert_int_equal(dm_config_load(&cfg, write_ini("disc.ini", "[server]\nmodels_dir = /m/one\n"
				"models_dir = /m/two\ndiscover = no\n"), NULL, &e), 0);
	assert_int_equal(cfg.n_models_dirs, 2);
	assert_string_equal(cfg.models_dirs[1], "/m/two");
	assert_false(cfg.discover);
	setenv("DORMANT_DISCOVER", "yes", 1);
	assert_int_equal(dm_config_load(&cfg, tu_tmp_path("disc.ini"), NULL, &e), 0);
	assert_true(cfg.discover);
	unsetenv("DORMANT_DISCOVER");
	expect_error("[server]\ndiscover = perhaps\n", "server.discover = 'perhaps' is not a boolean");
}

/* Fallbacks that loop are refused at load, naming the cycle and the line
 * that closes it. */
static void test_fallback_cycle(void **state)
{
	const char *p;
	struct dm_err e;
	(void)state;
	expect_error("[model a]\npath = a\nfallback = b\n[model b]\npath = b\nfallback = nosuch, c\n"
		     "[model c]\npath = c\nfallback = a\n",
		     "bad.ini:9: model fallbacks form a cycle: a -> b -> c -> a");
	expect_error("[model a]\npath = a\nfallback = a\n", "bad.ini:3: model fallbacks form a cycle: a -> a");
	/* a fallback naming no model in the file is not a load error (--model
	 * may add it; the start-up check reports it) */
	p = write_ini("fb.ini", "[model a]\npath = a\nfallback = elsewhere, b\n[model b]\npath = b\nfallback = elsewhere\n");
	assert_int_equal(dm_config_load(&cfg, p, NULL, &e), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parsers),
		cmocka_unit_test(test_precedence),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_unknown_profile),
		cmocka_unit_test(test_duplicate_section),
		cmocka_unit_test(test_fallback_cycle),
		cmocka_unit_test(test_discovery_keys),
	};
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}

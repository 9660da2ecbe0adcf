/* tests/clients — the official `openai` and `ollama` JavaScript packages
 * (pinned in tests/js/package-lock.json, installed with `npm ci` when
 * missing) drive a real `dormant serve` process on a random port with a
 * tiny synthetic model: chat and completion, streamed and not, embeddings,
 * model list, ps, keep_alive 0 unloading checked through /api/ps and the
 * server's RSS (tests/js/clients.mjs).  Skips when node is not installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tutil.h"

/* AddressSanitizer's quarantine and shadow memory make RSS meaningless:
 * the return-to-baseline check is left out there (see test_engine.c). */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_CHECK "nocheck"
#else
#define RSS_CHECK "1048576"
#endif

static void test_js_clients(void **state)
{
	const char *model = tu_tmp_path("clients.gguf");
	char arg[600], *out;
	const char *argv[] = { "--model", arg, "--quiet", NULL };
	struct stat sb;
	int pid, port, st;
	(void)state;
	if (system("command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1")) {
		fprintf(stderr, "node/npm not installed: skipping the JavaScript client tests\n");
		skip();
		return;
	}
	if (stat("tests/js/node_modules/openai/package.json", &sb) ||
	    stat("tests/js/node_modules/ollama/package.json", &sb)) {
		/* exactly the versions in package-lock.json */
		out = tu_capture(&st, "cd tests/js && npm ci --no-audit --no-fund 2>&1");
		if (st)
			fprintf(stderr, "npm ci failed:\n%s\n", out);
		free(out);
		assert_int_equal(st, 0);
	}
	assert_int_equal(tu_system("%s synth --preset tiny --type Q8_0 -o %s", tu_dormant(), model), 0);
	snprintf(arg, sizeof arg, "tiny=%.500s", model);
	assert_int_equal(tu_serve_start(argv, NULL, &pid, &port), 0);
	out = tu_capture(&st, "node tests/js/clients.mjs http://127.0.0.1:%d tiny " RSS_CHECK " 2>&1", port);
	fputs(out, stderr);
	free(out);
	assert_int_equal(tu_serve_stop(pid), 0); /* and it exits cleanly */
	assert_int_equal(st, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_js_clients),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

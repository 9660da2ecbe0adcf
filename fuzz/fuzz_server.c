/* fuzz/server — request bodies for every POST endpoint of `dormant serve`,
 * through a real in-process server on a loopback port.  The first input
 * byte picks the endpoint, the rest is the body.  The runtime has one
 * model whose file does not exist, so valid requests reach the load path
 * and fail there; the server must answer every input (any status) and
 * keep serving. */
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dormant.h"
#include "server/client.h"
#include "server/server.h"

static dormant *D;
static struct srv *S;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[256];
	struct srv_cfg sc;
	struct dm_err e;
	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	if (dormant_open(&D, NULL, NULL, err, sizeof err) ||
	    dormant_add_model(D, "m", "/nonexistent/dormant-fuzz.gguf", err, sizeof err)) {
		fprintf(stderr, "fuzz_server: %s\n", err);
		abort();
	}
	srv_cfg_from_runtime(&sc, D);
	sc.port = 0;
	sc.max_tokens = 64;
	/* connections close as fast as the fuzzer makes them; their threads
	 * may linger a moment past the default limit of 64 */
	sc.max_connections = 4096;
	if (srv_start(&S, D, &sc, &e)) {
		fprintf(stderr, "fuzz_server: %s\n", e.msg);
		abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *paths[] = {
		"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/api/generate", "/api/chat",
		"/api/embed",           "/api/embeddings", "/api/show",      "/api/load",     "/api/unload",
	};
	struct srv_http_resp r;
	struct dm_err e;
	if (!size)
		return 0;
	for (int tries = 0;; tries++) {
		if (!srv_http("127.0.0.1", srv_port(S), "POST", paths[data[0] % 10], NULL, data + 1, size - 1,
			      10000, NULL, NULL, &r, &e))
			break;
		/* a refused or dropped connection (limits) is retried; an input
		 * that never gets an answer is a finding */
		if (tries == 3) {
			fprintf(stderr, "fuzz_server: no answer: %s\n", e.msg);
			abort();
		}
		usleep(20000);
	}
	if (r.status < 200 || r.status >= 600)
		abort();
	srv_http_resp_free(&r);
	return 0;
}

/*
 * server/client — a minimal blocking HTTP/1.1 client for loopback use:
 * `dormant ps`, the demo, the server benchmark and the tests.  One request
 * per connection (Connection: close); chunked bodies are decoded; a body
 * callback sees the bytes as they arrive (streamed responses).
 */
#ifndef DM_SERVER_CLIENT_H
#define DM_SERVER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct srv_http_resp {
	int status;
	char headers[4096];   /* raw header lines after the status line */
	char *body;           /* malloc'ed, NUL-terminated, decoded */
	size_t body_len;
	double t_first_byte;  /* seconds from the call to the first body byte */
	double t_total;       /* seconds from the call to the end */
};

/* Called with each decoded body piece; return non-zero to stop reading
 * (the connection is closed: a client going away). */
typedef int (*srv_http_body_fn)(void *ud, const char *data, size_t n);

/* Sends method path with body (may be NULL) and extra header lines (each
 * ending in "\r\n"; may be NULL) to host:port, reads the answer into r.
 * timeout_ms bounds each wait for reply bytes (connect and send have no
 * timeout of their own).  DM_EIO on connection or protocol failure.  Free
 * with srv_http_resp_free. */
int srv_http(const char *host, uint16_t port, const char *method, const char *path,
	     const char *headers, const void *body, size_t body_len, int timeout_ms,
	     srv_http_body_fn on_body, void *ud, struct srv_http_resp *r, struct dm_err *err);
void srv_http_resp_free(struct srv_http_resp *r);

/* Value of header name in r (case-insensitive) copied into buf, or NULL. */
const char *srv_http_header(const struct srv_http_resp *r, const char *name, char *buf, size_t cap);

#endif

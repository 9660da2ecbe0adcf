/* server/client — see client.h. */
#include "server/client.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct conn {
	int fd;
	int timeout_ms;
	char buf[16384];
	size_t off, len;
};

/* Fills the buffer if empty; 0 at EOF, -1 on error/timeout. */
static int fill(struct conn *c)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };
	ssize_t n;
	if (c->off < c->len)
		return 1;
	if (poll(&p, 1, c->timeout_ms) <= 0)
		return -1;
	do
		n = recv(c->fd, c->buf, sizeof c->buf, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	c->off = 0;
	c->len = (size_t)n;
	return n > 0;
}

/* One line (without CRLF) into out; -1 on EOF/overflow. */
static int line(struct conn *c, char *out, size_t cap)
{
	size_t n = 0;
	for (;;) {
		char ch;
		if (fill(c) <= 0)
			return -1;
		ch = c->buf[c->off++];
		if (ch == '\n') {
			if (n && out[n - 1] == '\r')
				n--;
			out[n] = '\0';
			return 0;
		}
		if (n + 1 >= cap)
			return -1;
		out[n++] = ch;
	}
}

struct sink {
	struct srv_http_resp *r;
	srv_http_body_fn fn;
	void *ud;
	double t0;
	int stopped;
};

static int deliver(struct sink *s, const char *p, size_t n)
{
	struct srv_http_resp *r = s->r;
	char *nb;
	if (!n)
		return 0;
	if (!r->body_len && !r->t_first_byte)
		r->t_first_byte = mono() - s->t0;
	if (!(nb = realloc(r->body, r->body_len + n + 1)))
		return -1;
	r->body = nb;
	memcpy(r->body + r->body_len, p, n);
	r->body_len += n;
	r->body[r->body_len] = '\0';
	if (s->fn && s->fn(s->ud, p, n)) {
		s->stopped = 1;
		return -1;
	}
	return 0;
}

/* Copies up to want bytes (SIZE_MAX: to EOF) to the sink. */
static int copy(struct conn *c, struct sink *s, size_t want, int to_eof)
{
	while (want || to_eof) {
		size_t n;
		int f = fill(c);
		if (f < 0)
			return -1;
		if (f == 0)
			return to_eof ? 0 : -1;
		n = c->len - c->off;
		if (!to_eof && n > want)
			n = want;
		if (deliver(s, c->buf + c->off, n))
			return -1;
		c->off += n;
		if (!to_eof)
			want -= n;
	}
	return 0;
}

int srv_http(const char *host, uint16_t port, const char *method, const char *path,
	     const char *headers, const void *body, size_t body_len, int timeout_ms,
	     srv_http_body_fn on_body, void *ud, struct srv_http_resp *r, struct dm_err *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	struct conn c = { .fd = -1, .timeout_ms = timeout_ms };
	struct sink s = { r, on_body, ud, mono(), 0 };
	char portbuf[8], ln[8192], *req = NULL;
	int n, rc = DM_EIO, chunked = 0, has_len = 0;
	size_t clen = 0, hl = 0;

	memset(r, 0, sizeof *r);
	snprintf(portbuf, sizeof portbuf, "%u", port);
	if (getaddrinfo(host, portbuf, &hints, &ai))
		return dm_err_set(err, DM_EIO, "%s: cannot resolve", host);
	c.fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c.fd < 0 || connect(c.fd, ai->ai_addr, ai->ai_addrlen)) {
		dm_err_set(err, DM_EIO, "cannot connect to %s:%u: %s (is `dormant serve` running?)", host, port,
			   strerror(errno));
		goto out;
	}
	n = asprintf(&req, "%s %s HTTP/1.1\r\nHost: %s:%u\r\nConnection: close\r\n%s%s%zu\r\n\r\n", method,
		     path, host, port, headers ? headers : "",
		     body ? "Content-Type: application/json\r\nContent-Length: " : "Content-Length: ",
		     body ? body_len : 0);
	if (n < 0) {
		req = NULL;
		dm_err_set(err, DM_ENOMEM, "out of memory");
		goto out;
	}
	if (send(c.fd, req, (size_t)n, MSG_NOSIGNAL) != n ||
	    (body_len && send(c.fd, body, body_len, MSG_NOSIGNAL) != (ssize_t)body_len)) {
		dm_err_set(err, DM_EIO, "%s:%u: send failed: %s", host, port, strerror(errno));
		goto out;
	}
	if (line(&c, ln, sizeof ln) || sscanf(ln, "HTTP/%*d.%*d %d", &r->status) != 1) {
		dm_err_set(err, DM_EIO, "%s:%u: no HTTP status line in the answer", host, port);
		goto out;
	}
	for (;;) {
		if (line(&c, ln, sizeof ln)) {
			dm_err_set(err, DM_EIO, "%s:%u: headers cut short", host, port);
			goto out;
		}
		if (!ln[0])
			break;
		if (!strncasecmp(ln, "Transfer-Encoding:", 18) && strstr(ln, "chunked"))
			chunked = 1;
		if (!strncasecmp(ln, "Content-Length:", 15)) {
			clen = strtoull(ln + 15, NULL, 10);
			has_len = 1;
		}
		n = snprintf(r->headers + hl, sizeof r->headers - hl, "%s\r\n", ln);
		if (n > 0 && (size_t)n < sizeof r->headers - hl)
			hl += (size_t)n;
	}
	if (!strcmp(method, "HEAD") || r->status == 204 || r->status == 304) {
		rc = 0;
	} else if (chunked) {
		for (;;) {
			size_t sz;
			if (line(&c, ln, sizeof ln))
				break;
			sz = strtoull(ln, NULL, 16);
			if (!sz) {
				rc = 0;
				break;
			}
			if (copy(&c, &s, sz, 0) || line(&c, ln, sizeof ln))
				break;
		}
		if (rc && !s.stopped)
			dm_err_set(err, DM_EIO, "%s:%u: chunked body cut short", host, port);
	} else if (has_len) {
		rc = copy(&c, &s, clen, 0) ? DM_EIO : 0;
		if (rc && !s.stopped)
			dm_err_set(err, DM_EIO, "%s:%u: body cut short", host, port);
	} else {
		rc = copy(&c, &s, 0, 1) ? DM_EIO : 0;
	}
	if (s.stopped)
		rc = 0;
	if (!r->body && !(r->body = calloc(1, 1)))
		rc = dm_err_set(err, DM_ENOMEM, "out of memory");
	r->t_total = mono() - s.t0;
out:
	free(req);
	if (c.fd >= 0)
		close(c.fd);
	freeaddrinfo(ai);
	if (rc)
		srv_http_resp_free(r);
	return rc;
}

void srv_http_resp_free(struct srv_http_resp *r)
{
	free(r->body);
	r->body = NULL;
	r->body_len = 0;
}

const char *srv_http_header(const struct srv_http_resp *r, const char *name, char *buf, size_t cap)
{
	size_t nl = strlen(name);
	const char *p = r->headers;
	while (*p) {
		const char *e = strstr(p, "\r\n");
		if (!e)
			break;
		if ((size_t)(e - p) > nl && !strncasecmp(p, name, nl) && p[nl] == ':') {
			const char *v = p + nl + 1;
			size_t n;
			while (*v == ' ')
				v++;
			n = (size_t)(e - v) < cap - 1 ? (size_t)(e - v) : cap - 1;
			memcpy(buf, v, n);
			buf[n] = '\0';
			return buf;
		}
		p = e + 2;
	}
	return NULL;
}

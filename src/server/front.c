/* server/front — the listening socket and the wait for a request's head.
 *
 * libmicrohttpd gives each connection its own thread and keeps it for as
 * long as the connection is open, so idle or half-sent connections used
 * to take every worker (64 of them held the whole server for the 30 s
 * idle timeout).  The front sits before it: one thread accepts every
 * connection and holds it in a poll() set, costing a file descriptor and a
 * few bytes, until the request's head (request line and headers, up to
 * SRV_HEAD_MAX bytes) has arrived; only then is the socket handed to
 * libmicrohttpd (MHD_add_connection), with the bytes still unread in the
 * kernel (the front only peeks).  Around that:
 *   - a client address holds at most max_conns_per_ip connections, waiting
 *     or served (503 in JSON for one more), and at most SRV_FRONT_MAX wait
 *     in all;
 *   - a connection that has not sent a complete head within head_timeout
 *     gets 408 and is closed (idle and byte-a-minute clients alike);
 *   - a head longer than SRV_HEAD_MAX gets 414 (request line) or 431
 *     (headers) as JSON in the API's error shape, never libmicrohttpd's
 *     HTML page;
 *   - the socket is bound with SO_REUSEADDR only: a port in use is an
 *     error ("127.0.0.1:7373 is already in use"), never a second server
 *     sharing it (SO_REUSEPORT).
 * Waiting for "more bytes than last time" without spinning: after peeking
 * n bytes without the end of the head, SO_RCVLOWAT is set to n + 1, so
 * poll() reports the socket again only when something new arrived (or on
 * EOF); it is reset to 1 before the hand-over.
 *
 * Requests that follow on a kept-alive connection are read by
 * libmicrohttpd itself (its idle timeout and memory limit apply); they
 * still count against their address's limit, since the connection does.
 */
#include "server/srv_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <unistd.h>

#define SRV_FRONT_MAX 4096    /* connections waiting for their head, all addresses */
#define LINGER_MS 1000        /* after an error answer: drain the client's bytes this long */

enum { WAIT_HEAD, LINGER };

struct front_conn {
	int fd;
	int state;
	struct sockaddr_storage addr;
	socklen_t alen;
	double deadline;      /* srv_now() seconds */
	size_t seen;          /* bytes peeked last time */
};

/* connections per client address (waiting and served) */
struct front_ip {
	uint8_t key[17];      /* family byte + 16 address bytes */
	uint32_t n;
};

struct srv_front {
	struct srv *s;
	int lfd;
	int wake[2];
	pthread_t th;
	struct pollfd *p;     /* poll set: wake pipe, listener, waiting connections */
	struct front_conn *c;
	size_t n, cap;
	pthread_mutex_t mu;   /* guards ip[] (MHD threads release entries) */
	struct front_ip *ip;
	size_t n_ip, cap_ip;
	char buf[SRV_HEAD_MAX + 1];
};

static void ip_key(const struct sockaddr *sa, uint8_t key[17])
{
	memset(key, 0, 17);
	if (sa->sa_family == AF_INET) {
		key[0] = 4;
		memcpy(key + 1, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		key[0] = 6;
		memcpy(key + 1, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
	}
}

/* Counts one more connection for sa's address; false (nothing counted)
 * when the address is at its limit or the table cannot grow. */
static bool ip_take(struct srv_front *f, const struct sockaddr *sa)
{
	uint8_t key[17];
	bool ok = false;
	size_t i;
	ip_key(sa, key);
	pthread_mutex_lock(&f->mu);
	for (i = 0; i < f->n_ip; i++)
		if (!memcmp(f->ip[i].key, key, 17))
			break;
	if (i == f->n_ip) {
		if (f->n_ip == f->cap_ip) {
			size_t cap = f->cap_ip ? f->cap_ip * 2 : 16;
			struct front_ip *n = realloc(f->ip, cap * sizeof *n);
			if (!n)
				goto out;
			f->ip = n;
			f->cap_ip = cap;
		}
		memcpy(f->ip[i].key, key, 17);
		f->ip[i].n = 0;
		f->n_ip++;
	}
	if (f->ip[i].n < f->s->cfg.max_conns_per_ip) {
		f->ip[i].n++;
		ok = true;
	}
out:
	pthread_mutex_unlock(&f->mu);
	return ok;
}

void srv_front_release(struct srv *s, const struct sockaddr *sa)
{
	struct srv_front *f = s->front;
	uint8_t key[17];
	if (!f || !sa)
		return;
	ip_key(sa, key);
	pthread_mutex_lock(&f->mu);
	for (size_t i = 0; i < f->n_ip; i++)
		if (!memcmp(f->ip[i].key, key, 17)) {
			if (f->ip[i].n && !--f->ip[i].n)
				f->ip[i] = f->ip[--f->n_ip];
			break;
		}
	pthread_mutex_unlock(&f->mu);
}

static void addr_text(const struct sockaddr *sa, char *buf, size_t cap)
{
	if (getnameinfo(sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
							: sizeof(struct sockaddr_in),
			buf, (socklen_t)cap, NULL, 0, NI_NUMERICHOST))
		snprintf(buf, cap, "?");
}

static void conn_close(struct srv_front *f, size_t i)
{
	close(f->c[i].fd);
	srv_front_release(f->s, (const struct sockaddr *)&f->c[i].addr);
	f->c[i] = f->c[--f->n];
}

static void set_lowat(int fd, int n)
{
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &n, sizeof n);
}

/* Answers an error in the API's shape (the path decides: /v1/ is OpenAI)
 * and lets the connection linger until the client has read it. */
static void answer(struct srv_front *f, size_t i, unsigned status, const char *reason,
		   const char *path, size_t path_len, const char *msg)
{
	struct front_conn *c = &f->c[i];
	enum srv_api api = path_len >= 4 && !memcmp(path, "/v1/", 4) ? SRV_API_OPENAI : SRV_API_OLLAMA;
	char *body = srv_error_body(api, status, msg);
	char head[256];
	int n;

	n = snprintf(head, sizeof head,
		     "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
		     "Connection: close\r\n\r\n",
		     status, reason, body ? strlen(body) : 0);
	/* small enough for any socket buffer: one non-blocking send each */
	(void)!send(c->fd, head, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (body)
		(void)!send(c->fd, body, strlen(body), MSG_NOSIGNAL | MSG_DONTWAIT);
	free(body);
	shutdown(c->fd, SHUT_WR);
	set_lowat(c->fd, 1);
	c->state = LINGER;
	c->deadline = srv_now() + LINGER_MS / 1e3;
}

/* The end of the head ("\r\n\r\n", or bare "\n\n") in b[0..n), or NULL. */
static const char *head_end(const char *b, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++)
		if (b[i] == '\n' && (b[i + 1] == '\n' || (i + 2 < n && b[i + 1] == '\r' && b[i + 2] == '\n')))
			return b + i;
	return NULL;
}

/* The path of a request line "METHOD PATH ..." in b[0..n) (may be cut). */
static const char *req_path(const char *b, size_t n, size_t *len)
{
	const char *sp = memchr(b, ' ', n), *e;
	if (!sp) {
		*len = 0;
		return b;
	}
	sp++;
	e = memchr(sp, ' ', n - (size_t)(sp - b));
	*len = e ? (size_t)(e - sp) : n - (size_t)(sp - b);
	return sp;
}

static void hand_over(struct srv_front *f, size_t i)
{
	struct front_conn c = f->c[i];
	struct srv *s = f->s;
	int busy;

	pthread_mutex_lock(&s->mu);
	busy = s->n_conns >= (int)s->cfg.max_connections;
	pthread_mutex_unlock(&s->mu);
	if (busy) {
		char msg[160];
		size_t pl;
		const char *p = req_path(f->buf, c.seen, &pl);
		snprintf(msg, sizeof msg, "server busy: all %u connections are in use, retry later",
			 s->cfg.max_connections);
		answer(f, i, 503, "Service Unavailable", p, pl, msg);
		return;
	}
	set_lowat(c.fd, 1);
	f->c[i] = f->c[--f->n];
	/* libmicrohttpd closes the socket itself when it refuses it; a
	 * connection it took is released from its address on NOTIFY_CLOSED */
	if (MHD_add_connection(s->mhd, c.fd, (const struct sockaddr *)&c.addr, c.alen) != MHD_YES)
		srv_front_release(s, (const struct sockaddr *)&c.addr);
}

/* Something arrived on a waiting connection: look at the head so far. */
static void on_readable(struct srv_front *f, size_t i, short revents)
{
	struct front_conn *c = &f->c[i];
	ssize_t n;

	if (c->state == LINGER) {
		char junk[4096];
		while ((n = recv(c->fd, junk, sizeof junk, MSG_DONTWAIT)) > 0)
			;
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			conn_close(f, i);
		return;
	}
	n = recv(c->fd, f->buf, sizeof f->buf, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		conn_close(f, i);
		return;
	}
	c->seen = (size_t)n;
	if (head_end(f->buf, c->seen)) {
		hand_over(f, i);
	} else if (c->seen > SRV_HEAD_MAX) {
		char msg[160];
		size_t pl;
		const char *p = req_path(f->buf, c->seen, &pl);
		bool line = !memchr(f->buf, '\n', SRV_HEAD_MAX);
		snprintf(msg, sizeof msg, "request %s longer than %d bytes",
			 line ? "line (method, path and version) is" : "headers are", SRV_HEAD_MAX);
		if (line)
			answer(f, i, 414, "URI Too Long", p, pl, msg);
		else
			answer(f, i, 431, "Request Header Fields Too Large", p, pl, msg);
	} else if (revents & (POLLRDHUP | POLLHUP | POLLERR)) {
		conn_close(f, i); /* the client stopped sending before the end of its head */
	} else {
		set_lowat(c->fd, (int)c->seen + 1);
	}
}

static void on_accept(struct srv_front *f)
{
	for (int k = 0; k < 64; k++) {
		struct front_conn c = { .state = WAIT_HEAD, .alen = sizeof c.addr };
		c.fd = accept4(f->lfd, (struct sockaddr *)&c.addr, &c.alen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c.fd < 0)
			return; /* EAGAIN, or out of descriptors: poll's timeout retries */
		if (f->n == SRV_FRONT_MAX) {
			close(c.fd);
			continue;
		}
		if (!ip_take(f, (const struct sockaddr *)&c.addr)) {
			/* over the address's limit: a short answer, then close
			 * (the client may not have sent anything yet) */
			char msg[160], who[64];
			addr_text((const struct sockaddr *)&c.addr, who, sizeof who);
			snprintf(msg, sizeof msg,
				 "too many connections from %s (max_connections_per_ip = %u)", who,
				 f->s->cfg.max_conns_per_ip);
			{
				char *body = srv_error_body(SRV_API_OLLAMA, 503, msg);
				char head[200];
				int hn = snprintf(head, sizeof head,
						  "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
						  "application/json\r\nContent-Length: %zu\r\nRetry-After: 1\r\n"
						  "Connection: close\r\n\r\n",
						  body ? strlen(body) : 0);
				(void)!send(c.fd, head, (size_t)hn, MSG_NOSIGNAL | MSG_DONTWAIT);
				if (body)
					(void)!send(c.fd, body, strlen(body), MSG_NOSIGNAL | MSG_DONTWAIT);
				free(body);
			}
			close(c.fd);
			continue;
		}
		c.deadline = srv_now() + (double)f->s->cfg.head_timeout_ms / 1e3;
		f->c[f->n++] = c;
	}
}

static void *front_main(void *arg)
{
	struct srv_front *f = arg;
	struct pollfd *p = f->p;

	for (;;) {
		double now = srv_now(), next = now + 1.0;
		size_t n = f->n;
		int ms;

		p[0] = (struct pollfd){ .fd = f->wake[0], .events = POLLIN };
		p[1] = (struct pollfd){ .fd = f->lfd, .events = POLLIN };
		for (size_t i = 0; i < n; i++) {
			p[i + 2] = (struct pollfd){ .fd = f->c[i].fd, .events = POLLIN | POLLRDHUP };
			if (f->c[i].deadline < next)
				next = f->c[i].deadline;
		}
		ms = next > now ? (int)((next - now) * 1e3) + 1 : 0;
		if (poll(p, n + 2, ms) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break; /* srv_front_stop */
		/* walk from the end: closing swaps the last entry into i */
		for (size_t i = n; i-- > 0;)
			if (p[i + 2].revents)
				on_readable(f, i, p[i + 2].revents);
		now = srv_now();
		for (size_t i = f->n; i-- > 0;) {
			if (f->c[i].deadline > now)
				continue;
			if (f->c[i].state == LINGER) {
				conn_close(f, i);
			} else {
				char msg[160];
				size_t pl;
				ssize_t k = recv(f->c[i].fd, f->buf, sizeof f->buf, MSG_PEEK | MSG_DONTWAIT);
				const char *path = req_path(f->buf, k > 0 ? (size_t)k : 0, &pl);
				snprintf(msg, sizeof msg, "request head not received within %.3g s",
					 (double)f->s->cfg.head_timeout_ms / 1e3);
				answer(f, i, 408, "Request Timeout", path, pl, msg);
			}
		}
		if (p[1].revents)
			on_accept(f);
	}
	return NULL;
}

int srv_front_start(struct srv *s, struct dm_err *err)
{
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_PASSIVE, .ai_socktype = SOCK_STREAM },
			*ai = NULL;
	struct srv_front *f;
	char port[8], where[80];
	int gai, one = 1, e;
	bool v6 = strchr(s->cfg.host, ':') != NULL;

	snprintf(port, sizeof port, "%u", s->cfg.port);
	snprintf(where, sizeof where, "%s%s%s:%u", v6 ? "[" : "", s->cfg.host, v6 ? "]" : "", s->cfg.port);
	if ((gai = getaddrinfo(s->cfg.host, port, &hints, &ai)))
		return dm_err_set(err, DM_EINVAL, "--host '%s': not a numeric IPv4/IPv6 address (%s)",
				  s->cfg.host, gai_strerror(gai));
	if (!(f = calloc(1, sizeof *f)) || !(f->c = malloc(SRV_FRONT_MAX * sizeof *f->c)) ||
	    !(f->p = malloc((SRV_FRONT_MAX + 2) * sizeof *f->p))) {
		if (f)
			free(f->c);
		free(f);
		freeaddrinfo(ai);
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	}
	f->s = s;
	f->wake[0] = f->wake[1] = -1;
	pthread_mutex_init(&f->mu, NULL);
	f->lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (f->lfd < 0) {
		e = errno;
		goto fail;
	}
	/* SO_REUSEADDR: restart at once over TIME_WAIT; never SO_REUSEPORT */
	setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ai->ai_family == AF_INET6)
		setsockopt(f->lfd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(f->lfd, ai->ai_addr, ai->ai_addrlen) || listen(f->lfd, 512) ||
	    pipe2(f->wake, O_CLOEXEC | O_NONBLOCK)) {
		e = errno;
		goto fail;
	}
	{
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		if (!getsockname(f->lfd, (struct sockaddr *)&ss, &sl))
			s->port = ntohs(ss.ss_family == AF_INET6
						? ((struct sockaddr_in6 *)&ss)->sin6_port
						: ((struct sockaddr_in *)&ss)->sin_port);
	}
	s->front = f;
	if (pthread_create(&f->th, NULL, front_main, f)) {
		s->front = NULL;
		e = EAGAIN;
		goto fail;
	}
	freeaddrinfo(ai);
	return 0;
fail:
	freeaddrinfo(ai);
	if (f->wake[0] >= 0)
		close(f->wake[0]), close(f->wake[1]);
	if (f->lfd >= 0)
		close(f->lfd);
	pthread_mutex_destroy(&f->mu);
	free(f->p);
	free(f->c);
	free(f);
	if (e == EADDRINUSE)
		return dm_err_set(err, DM_EIO, "%s is already in use", where);
	return dm_err_set(err, DM_EIO, "cannot listen on %s: %s", where, strerror(e));
}

void srv_front_stop(struct srv *s)
{
	struct srv_front *f = s->front;
	if (!f)
		return;
	(void)!write(f->wake[1], "x", 1);
	pthread_join(f->th, NULL);
	close(f->lfd);
	close(f->wake[0]);
	close(f->wake[1]);
	for (size_t i = 0; i < f->n; i++)
		close(f->c[i].fd);
	/* libmicrohttpd still holds connections that release their address
	 * while it stops: the table lives until srv_front_free */
}

void srv_front_free(struct srv *s)
{
	struct srv_front *f = s->front;
	if (!f)
		return;
	s->front = NULL;
	pthread_mutex_destroy(&f->mu);
	free(f->ip);
	free(f->p);
	free(f->c);
	free(f);
}

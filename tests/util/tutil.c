/* tests/util — see tutil.h. */
#include "tutil.h"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

const char *tu_golden_dir(void)
{
	static char buf[4096];
	const char *env = getenv("DORMANT_GOLDEN");
	const char *cands[] = { env, "../shared/golden", "../../shared/golden" };
	struct stat st;

	for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++)
		if (cands[i] && stat(cands[i], &st) == 0 && S_ISDIR(st.st_mode)) {
			snprintf(buf, sizeof buf, "%s", cands[i]);
			return buf;
		}
	return NULL;
}

const char *tu_dormant(void)
{
	static char buf[512];
	const char *b = getenv("BUILD");
	snprintf(buf, sizeof buf, "./%s/dormant", b && *b ? b : "build");
	return buf;
}

static char tmpdir[256];

static void rm_tmpdir(void)
{
	char cmd[300];
	if (tmpdir[0]) {
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "warning: could not remove %s\n", tmpdir);
	}
}

const char *tu_tmpdir(void)
{
	if (!tmpdir[0]) {
		const char *base = getenv("TMPDIR");
		snprintf(tmpdir, sizeof tmpdir, "%s/dormant-test-XXXXXX", base ? base : "/tmp");
		if (!mkdtemp(tmpdir)) {
			perror("mkdtemp");
			abort();
		}
		atexit(rm_tmpdir);
	}
	return tmpdir;
}

const char *tu_tmp_path(const char *name)
{
	static char bufs[8][512];
	static int k;
	char *b = bufs[k++ & 7];
	snprintf(b, 512, "%s/%s", tu_tmpdir(), name);
	return b;
}

void *tu_read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long sz;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (sz = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)sz + 1)) && fread(buf, 1, (size_t)sz, f) == (size_t)sz) {
		buf[sz] = '\0';
		*n = (size_t)sz;
	} else {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

int tu_write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	int ok;
	if (!f)
		return -1;
	ok = fwrite(data, 1, n, f) == n;
	return (fclose(f) == 0 && ok) ? 0 : -1;
}

void *tu_guard_copy(const void *data, size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t span = (n + pg - 1) / pg * pg;
	uint8_t *m = mmap(NULL, span + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED)
		abort();
	if (mprotect(m + span, pg, PROT_NONE) != 0)
		abort();
	if (n)
		memcpy(m + span - n, data, n);
	return m + span - n;
}

void tu_guard_free(void *p, size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t span = (n + pg - 1) / pg * pg;
	munmap((uint8_t *)p + n - span, span + pg);
}

int tu_system(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	st = system(cmd);
	if (st == -1)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

char *tu_capture(int *status, const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	FILE *p;
	char *buf = NULL;
	size_t n = 0, cap = 0;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	p = popen(cmd, "r");
	if (!p)
		return NULL;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap);
			if (!buf)
				abort();
		}
		size_t k = fread(buf + n, 1, 4096, p);
		n += k;
		if (k == 0)
			break;
	}
	buf[n] = '\0';
	st = pclose(p);
	*status = (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
	return buf;
}

/* SHA-256 (FIPS 180-4), straightforward, for checking golden tensor bytes. */
static const uint32_t K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha_block(uint32_t h[8], const uint8_t *b)
{
	uint32_t w[64], a, bb, c, d, e, f, g, hh;
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 |
		       (uint32_t)b[4 * i + 2] << 8 | b[4 * i + 3];
	for (int i = 16; i < 64; i++) {
		uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	a = h[0]; bb = h[1]; c = h[2]; d = h[3]; e = h[4]; f = h[5]; g = h[6]; hh = h[7];
	for (int i = 0; i < 64; i++) {
		uint32_t S1 = ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25);
		uint32_t ch = (e & f) ^ (~e & g);
		uint32_t t1 = hh + S1 + ch + K[i] + w[i];
		uint32_t S0 = ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22);
		uint32_t mj = (a & bb) ^ (a & c) ^ (bb & c);
		uint32_t t2 = S0 + mj;
		hh = g; g = f; f = e; e = d + t1; d = c; c = bb; bb = a; a = t1 + t2;
	}
	h[0] += a; h[1] += bb; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

void tu_sha256_hex(const void *data, size_t n, char out[65])
{
	uint32_t h[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
			  0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };
	const uint8_t *p = data;
	uint8_t tail[128] = { 0 };
	size_t full = n / 64 * 64, rem = n - full, tn;
	uint64_t bits = (uint64_t)n * 8;

	for (size_t i = 0; i < full; i += 64)
		sha_block(h, p + i);
	if (rem)
		memcpy(tail, p + full, rem);
	tail[rem] = 0x80;
	tn = rem + 1 + 8 <= 64 ? 64 : 128;
	for (int i = 0; i < 8; i++)
		tail[tn - 1 - i] = (uint8_t)(bits >> (8 * i));
	for (size_t i = 0; i < tn; i += 64)
		sha_block(h, tail + i);
	for (int i = 0; i < 8; i++)
		sprintf(out + 8 * i, "%08x", h[i]);
	out[64] = '\0';
}

int tu_serve_start(const char *const *argv, const char *log_path, int *pid, int *port)
{
	int fds[2];
	char buf[2048];
	size_t n = 0;
	const char *p;
	pid_t c;

	if (pipe(fds))
		return -1;
	c = fork();
	if (c < 0)
		return -1;
	if (!c) {
		const char *args[64];
		int k = 0;
		args[k++] = "dormant";
		args[k++] = "serve";
		args[k++] = "--port";
		args[k++] = "0";
		for (int i = 0; argv && argv[i] && k < 63; i++)
			args[k++] = argv[i];
		args[k] = NULL;
		dup2(fds[1], 2);
		close(fds[0]);
		close(fds[1]);
		execv(tu_dormant(), (char *const *)(uintptr_t)args);
		_exit(127);
	}
	close(fds[1]);
	/* the banner: "dormant X: listening on http://ADDR:PORT (...)\n", after
	 * the start-up check's lines; a server that has not printed it within
	 * 60 s (one that cannot start but does not exit) is given up on */
	while (n + 1 < sizeof buf) {
		struct pollfd pf = { fds[0], POLLIN, 0 };
		if (poll(&pf, 1, 60000) <= 0)
			break;
		ssize_t k = read(fds[0], buf + n, sizeof buf - 1 - n);
		if (k <= 0)
			break;
		n += (size_t)k;
		buf[n] = '\0';
		if ((p = strstr(buf, "listening on http://")) && strstr(p, ")\n"))
			break;
	}
	buf[n] = '\0';
	p = strstr(buf, "listening on http://");
	if (p) {
		const char *end = strchr(p + 20, ' ');
		const char *q = end;
		while (q && q > p && *q != ':')
			q--;
		p = q && *q == ':' ? q : NULL;
	}
	if (!p || !(*port = atoi(p + 1))) {
		fprintf(stderr, "tu_serve_start: no banner: %s\n", buf);
		kill(c, SIGKILL);
		waitpid(c, NULL, 0);
		close(fds[0]);
		return -1;
	}
	/* keep draining its stderr so it never blocks on a full pipe */
	if (!fork()) {
		int out = log_path ? open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644) : -1;
		char b[4096];
		ssize_t k;
		while ((k = read(fds[0], b, sizeof b)) > 0)
			if (out >= 0 && write(out, b, (size_t)k) < 0)
				break;
		_exit(0);
	}
	close(fds[0]);
	*pid = (int)c;
	return 0;
}

int tu_serve_stop(int pid)
{
	int st;
	kill((pid_t)pid, SIGTERM);
	if (waitpid((pid_t)pid, &st, 0) != (pid_t)pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

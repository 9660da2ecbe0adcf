/* tests/docs — the shell examples of README.md and docs/ (every .md) run as written.
 *
 * Every fenced block opened by "```sh" is part of its file's script, unless
 * the line before the fence is "<!-- doc-test: skip (why) -->" (a block
 * that needs a downloaded model, another language's packages, or is run by
 * the test suite itself).  A file's blocks run in order, in one `bash -e`, in
 * a fresh folder where `build` is the build under test, so that a server
 * started in one block serves the next.  Two things differ from a user's
 * shell, both so that the test cannot disturb (or be disturbed by) a real
 * server: the port 7373 is replaced by a free one (DORMANT_PORT is set to
 * it as well), and the stores of the machine's user are not scanned
 * (DORMANT_DISCOVER=false).  And every curl call answered with an HTTP
 * error fails the file, piped or not.  Every ```ini block must be a
 * configuration `dormant config --config FILE` accepts.  Processes a block leaves in the background
 * are stopped at the end.  A failing block fails the test with the
 * script's output, and so does a file whose blocks run past 10 minutes
 * (examples must be quick: measurements are marked to skip). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tutil.h"

/* A TCP port nobody listens on now (the kernel's choice for port 0). */
static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t n = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
	if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof a) && !getsockname(fd, (struct sockaddr *)&a, &n))
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

struct buf {
	char *p;
	size_t n, cap;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		b->cap = (b->n + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

/* Appends line (n bytes, no newline) to b with every "7373" replaced by
 * port. */
static void add_line(struct buf *b, const char *line, size_t n, int port)
{
	char ps[16];
	int k = snprintf(ps, sizeof ps, "%d", port);
	for (size_t i = 0; i < n; i++) {
		if (i + 4 <= n && !memcmp(line + i, "7373", 4)) {
			buf_add(b, ps, (size_t)k);
			i += 3;
		} else {
			buf_add(b, line + i, 1);
		}
	}
	buf_add(b, "\n", 1);
}

/* The script of one Markdown text: its runnable sh blocks in order; *n_blocks
 * gets their number and *n_skipped the number of blocks marked to skip. */
static char *doc_script(const char *md, int port, int *n_blocks, int *n_skipped)
{
	struct buf b = { 0 };
	const char *p = md, *prev = "";
	size_t prev_n = 0;
	bool in = false, run = false;
	*n_blocks = *n_skipped = 0;
	buf_add(&b, "", 0);
	while (*p) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (!in && n >= 3 && !memcmp(p, "```", 3)) {
			in = true;
			run = n == 5 && !memcmp(p, "```sh", 5);
			if (run && prev_n >= 19 && !memcmp(prev, "<!-- doc-test: skip", 19)) {
				run = false;
				(*n_skipped)++;
			}
			if (run) {
				(*n_blocks)++;
				char hdr[64];
				snprintf(hdr, sizeof hdr, "echo '--- block %d'\n", *n_blocks);
				buf_add(&b, hdr, strlen(hdr));
			}
		} else if (in && n >= 3 && !memcmp(p, "```", 3)) {
			in = false;
		} else if (in && run) {
			add_line(&b, p, n, port);
		}
		prev = p;
		prev_n = n;
		p = e ? e + 1 : p + n;
	}
	assert_false(in); /* an unclosed fence is a broken document */
	return b.p;
}

/* Runs the sh blocks of one document; returns the number of blocks run. */
static int run_doc(const char *path)
{
	size_t md_n;
	char *md = tu_read_file(path, &md_n), *script;
	char dir[512], sh[600], build[512], cwd[400];
	int port = free_port(), blocks, skipped, st;
	const char *b = getenv("BUILD");
	assert_non_null(md);
	assert_true(port > 0);
	script = doc_script(md, port, &blocks, &skipped);
	free(md);
	if (!blocks) {
		free(script);
		return 0;
	}
	assert_non_null(getcwd(cwd, sizeof cwd));
	snprintf(build, sizeof build, "%s/%s", cwd, b && *b ? b : "build");
	snprintf(dir, sizeof dir, "%s/doc-%d", tu_tmpdir(), port);
	assert_int_equal(tu_system("mkdir -p '%s' && ln -s '%s' '%s/build'", dir, build, dir), 0);
	snprintf(sh, sizeof sh, "%s/script.sh", dir);
	{
		struct buf full = { 0 };
		char pre[2048];
		snprintf(pre, sizeof pre,
			 "set -e\ncd '%s'\nexport DORMANT_PORT=%d DORMANT_DISCOVER=false\n"
			 /* an HTTP error (curl's exit status 22 with --fail or
			  * --fail-with-body, which every call gets unless it asks
			  * for --fail itself) fails the script, even where that
			  * status is lost in a pipe */
			 "curl() { local a x=--fail-with-body c; for a; do case $a in --fail*|-[!-]*f*) x=;; esac; done\n"
			 "  command curl $x \"$@\" && return 0; c=$?\n"
			 "  [ $c != 22 ] || echo \"curl $*: HTTP error\" >>curl-failures; return $c; }\n"
			 "trap 'rc=$?; kill $(jobs -p) 2>/dev/null || true; wait; [ ! -s curl-failures ] || { cat curl-failures; rc=1; }; "
			 "exit $rc' EXIT\n",
			 dir, port);
		buf_add(&full, pre, strlen(pre));
		buf_add(&full, script, strlen(script));
		assert_int_equal(tu_write_file(sh, full.p, full.n), 0);
		free(full.p);
	}
	free(script);
	char *out = tu_capture(&st, "timeout 600 bash -x '%s' >'%s.out' 2>&1; rc=$?; cat -v '%s.out'; exit $rc", sh, sh, sh);
	if (st != 0) { /* the end of the output: where it failed */
		size_t n = out ? strlen(out) : 0;
		fprintf(stderr, "%s: its shell blocks failed (exit %d); the end of their output:\n%s\n", path, st,
			      out ? out + (n > 2000 ? n - 2000 : 0) : "");
	}
	free(out);
	assert_int_equal(st, 0);
	print_message("%s: %d blocks ran, %d skipped as marked\n", path, blocks, skipped);
	return blocks;
}

/* The extractor itself: a marked block is skipped, an unmarked one runs,
 * other languages never run, and the port is rewritten. */
static void test_doc_script_extraction(void **state)
{
	const char *md = "text\n```sh\necho a:7373\n```\n<!-- doc-test: skip (x) -->\n```sh\nfalse\n```\n"
			 "```python\nraise\n```\n```sh\necho b\n```\n";
	int blocks, skipped;
	char *s = doc_script(md, 4242, &blocks, &skipped);
	(void)state;
	assert_int_equal(blocks, 2);
	assert_int_equal(skipped, 1);
	assert_non_null(strstr(s, "echo a:4242\n"));
	assert_null(strstr(s, "7373"));
	assert_null(strstr(s, "false"));
	assert_null(strstr(s, "raise"));
	assert_non_null(strstr(s, "echo b\n"));
	free(s);
}

/* Every ```ini block of a Markdown file read by `dormant config --config
 * FILE` (keys, values, sections and profiles checked; model files need
 * not exist): the number of blocks, each one accepted. */
static int check_ini(const char *path)
{
	size_t md_n;
	char *md = tu_read_file(path, &md_n);
	const char *p = md;
	const char *b = getenv("BUILD");
	int n_ini = 0;
	bool in = false;
	struct buf cur = { 0 };
	assert_non_null(md);
	while (*p) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (!in && n == 6 && !memcmp(p, "```ini", 6)) {
			in = true;
			cur.n = 0;
			buf_add(&cur, "", 0);
		} else if (in && n >= 3 && !memcmp(p, "```", 3)) {
			char f[600];
			int st;
			in = false;
			snprintf(f, sizeof f, "%s/doc-ini-%d.ini", tu_tmpdir(), ++n_ini);
			assert_int_equal(tu_write_file(f, cur.p, cur.n), 0);
			char *out = tu_capture(&st, "DORMANT_DISCOVER=false %s/dormant config --config '%s' 2>&1 >/dev/null",
					       b && *b ? b : "build", f);
			if (st != 0)
				fail_msg("%s: ini block %d is not a valid configuration: %s", path, n_ini, out ? out : "");
			free(out);
		} else if (in) {
			buf_add(&cur, p, n);
			buf_add(&cur, "\n", 1);
		}
		p = e ? e + 1 : p + n;
	}
	free(cur.p);
	free(md);
	return n_ini;
}

static void test_readme_runs(void **state)
{
	(void)state;
	assert_true(run_doc("README.md") > 0);
	print_message("README.md: %d ini blocks accepted\n", check_ini("README.md"));
}

static void test_docs_run(void **state)
{
	DIR *d = opendir("docs");
	struct dirent *e;
	(void)state;
	assert_non_null(d);
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		char path[300];
		if (n < 4 || strcmp(e->d_name + n - 3, ".md"))
			continue;
		snprintf(path, sizeof path, "docs/%s", e->d_name);
		run_doc(path);
		int k = check_ini(path);
		if (k)
			print_message("%s: %d ini blocks accepted\n", path, k);
	}
	closedir(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_doc_script_extraction),
		cmocka_unit_test(test_readme_runs),
		cmocka_unit_test(test_docs_run),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

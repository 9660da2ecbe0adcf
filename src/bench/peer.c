/*
 * bench/peer — runs another engine's llama-bench-compatible program for
 * `dormant bench speed --vs` and reads its figures.
 *
 * The program is started directly (posix_spawn, no shell) as
 *   PATH -m MODEL -p P -n N -t T -r 1 -o json EXTRA...
 * with EXTRA the words of --vs-args (split on blanks, no quoting).  Its
 * stdout and stderr go to two temporary files that are read after it exits
 * and then removed.  llama-bench's JSON output is an array of one object
 * per test; the prompt test has n_prompt = P and n_gen = 0, the generation
 * test n_prompt = 0 and n_gen = N, and each carries avg_ts, its tokens per
 * second averaged over its repetitions (one here).  Generation at a depth D
 * is asked for with -n 0 -gp D,N (ik_llama.cpp's llama-bench: N tokens
 * generated and timed after an untimed prompt of D) and is the test with
 * n_prompt = D and n_gen = N.
 *
 * Nothing here downloads or builds a peer: the user names the program.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/file.h"
#include "bench/bench.h"

extern char **environ;

#define PEER_WORDS_MAX 32

int bench_peer_init(struct bench_peer *p, const char *path, const char *extra, struct dm_err *err)
{
	const char *base = strrchr(path, '/');
	char *save = NULL, *w;
	struct stat st;

	memset(p, 0, sizeof *p);
	p->path = path;
	snprintf(p->name, sizeof p->name, "%s%s%s", base ? base + 1 : path, extra && *extra ? " " : "",
		 extra ? extra : "");
	if (stat(path, &st) != 0)
		return dm_err_set(err, DM_ENOTFOUND, "peer %s: %s: %s", p->name, path, strerror(errno));
	if (!S_ISREG(st.st_mode) || access(path, X_OK) != 0)
		return dm_err_set(err, DM_EINVAL, "peer %s: %s is not an executable file", p->name, path);
	if (!extra)
		return 0;
	if (strlen(extra) >= sizeof p->words_buf)
		return dm_err_set(err, DM_EINVAL, "peer %s: --vs-args longer than %zu bytes", p->name,
				  sizeof p->words_buf - 1);
	memcpy(p->words_buf, extra, strlen(extra) + 1);
	for (w = strtok_r(p->words_buf, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
		if (p->n_words == PEER_WORDS_MAX)
			return dm_err_set(err, DM_EINVAL, "peer %s: more than %d words in --vs-args", p->name,
					  PEER_WORDS_MAX);
		p->words[p->n_words++] = w;
	}
	return 0;
}

/* The tokens per second of the test (n_prompt, n_gen) in llama-bench's
 * JSON array: 0 with *tps, or DM_EFORMAT naming what is missing. */
static int find_test(json_t *arr, long n_prompt, long n_gen, double *tps, struct dm_err *err)
{
	size_t i;
	json_t *o;

	json_array_foreach(arr, i, o) {
		json_t *np = json_object_get(o, "n_prompt"), *ng = json_object_get(o, "n_gen");
		json_t *ts = json_object_get(o, "avg_ts");
		if (!json_is_integer(np) || !json_is_integer(ng) || json_integer_value(np) != n_prompt ||
		    json_integer_value(ng) != n_gen)
			continue;
		if (!json_is_number(ts) || !(json_number_value(ts) > 0))
			return dm_err_set(err, DM_EFORMAT, "its %s%ld result has no positive avg_ts",
					  n_gen ? "tg" : "pp", n_gen ? n_gen : n_prompt);
		*tps = json_number_value(ts);
		return 0;
	}
	return dm_err_set(err, DM_EFORMAT, "its JSON output has no %s%ld result (n_prompt %ld, n_gen %ld)",
			  n_gen ? "tg" : "pp", n_gen ? n_gen : n_prompt, n_prompt, n_gen);
}

/* The last non-empty line of a file, for an error message ("" if none). */
static void last_line(const char *path, char *out, size_t cap)
{
	size_t n = 0, e, b;
	char *s = dm_read_all(path, &n);

	out[0] = '\0';
	if (!s)
		return;
	e = n;
	while (e > 0 && (s[e - 1] == '\n' || s[e - 1] == '\r' || s[e - 1] == ' '))
		e--;
	b = e;
	while (b > 0 && s[b - 1] != '\n')
		b--;
	if (e - b >= cap)
		b = e - (cap - 1);
	memcpy(out, s + b, e - b);
	out[e - b] = '\0';
	free(s);
}

/* A private temporary file's name (created empty, mode 0600), from
 * $TMPDIR or /tmp: 0, or -1. */
static int tmp_file(char *path, size_t cap, const char *what)
{
	const char *dir = getenv("TMPDIR");
	int fd;

	snprintf(path, cap, "%s/dormant-peer-%s-XXXXXX", dir && *dir ? dir : "/tmp", what);
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

int bench_peer_run(const struct bench_peer *p, const char *model, long n_prompt, long n_gen, long depth,
		 int threads, double timeout_s, double *pp, double *tg, struct dm_err *err)
{
	char out_path[512], err_path[512], sp[24], sn[24], sg[48], st[24], why[200];
	char *argv[16 + PEER_WORDS_MAX];
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int n = 0, rc, status = 0;
	double t0;
	size_t len = 0;
	char *text = NULL;
	json_t *doc = NULL;
	json_error_t je;

	*pp = *tg = 0;
	snprintf(sp, sizeof sp, "%ld", n_prompt);
	snprintf(sn, sizeof sn, "%ld", depth ? 0 : n_gen);
	snprintf(sg, sizeof sg, "%ld,%ld", depth, n_gen);
	snprintf(st, sizeof st, "%d", threads);
	argv[n++] = (char *)(uintptr_t)p->path;
	argv[n++] = "-m";
	argv[n++] = (char *)(uintptr_t)model;
	argv[n++] = "-p";
	argv[n++] = sp;
	argv[n++] = "-n";
	argv[n++] = sn;
	argv[n++] = "-t";
	argv[n++] = st;
	argv[n++] = "-r";
	argv[n++] = "1";
	argv[n++] = "-o";
	argv[n++] = "json";
	if (depth && n_gen) {
		argv[n++] = "-gp";
		argv[n++] = sg;
	}
	for (int i = 0; i < p->n_words; i++)
		argv[n++] = p->words[i];
	argv[n] = NULL;

	if (tmp_file(out_path, sizeof out_path, "out"))
		return dm_err_set(err, DM_EIO, "peer %s: cannot create a temporary file: %s", p->name,
				  strerror(errno));
	if (tmp_file(err_path, sizeof err_path, "err")) {
		unlink(out_path);
		return dm_err_set(err, DM_EIO, "peer %s: cannot create a temporary file: %s", p->name,
				  strerror(errno));
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_TRUNC, 0);
	posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_TRUNC, 0);
	rc = posix_spawn(&pid, p->path, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		rc = dm_err_set(err, DM_EIO, "peer %s: cannot run %s: %s", p->name, p->path, strerror(rc));
		goto out;
	}
	/* wait, but not forever: a peer that hangs is killed */
	t0 = bench_now();
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			rc = dm_err_set(err, DM_EIO, "peer %s: waitpid: %s", p->name, strerror(errno));
			goto out;
		}
		if (bench_now() - t0 > timeout_s) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			rc = dm_err_set(err, DM_ETIMEDOUT, "peer %s: no result after %.0f s (killed; --vs-timeout)",
					p->name, timeout_s);
			goto out;
		}
		struct timespec ts = { 0, 20 * 1000000L };
		nanosleep(&ts, NULL);
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		last_line(err_path, why, sizeof why);
		if (WIFSIGNALED(status))
			rc = dm_err_set(err, DM_EIO, "peer %s: killed by signal %d%s%s", p->name, WTERMSIG(status),
					*why ? ": " : "", why);
		else
			rc = dm_err_set(err, DM_EIO, "peer %s: exited with status %d%s%s", p->name,
					WEXITSTATUS(status), *why ? ": " : "", why);
		goto out;
	}
	text = dm_read_all(out_path, &len);
	if (!text) {
		rc = dm_err_set(err, DM_EIO, "peer %s: cannot read its output: %s", p->name, strerror(errno));
		goto out;
	}
	doc = json_loadb(text, len, 0, &je);
	if (!doc || !json_is_array(doc)) {
		rc = dm_err_set(err, DM_EFORMAT, "peer %s: output is not llama-bench JSON (%s)", p->name,
				doc ? "not an array" : je.text);
		goto out;
	}
	rc = 0;
	if ((n_prompt && (rc = find_test(doc, n_prompt, 0, pp, err))) ||
	    (n_gen && (rc = find_test(doc, depth, n_gen, tg, err))))
		dm_err_prefix(err, "peer %s", p->name);
out:
	json_decref(doc);
	free(text);
	unlink(out_path);
	unlink(err_path);
	return rc;
}

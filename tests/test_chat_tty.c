/*
 * tests/chat_tty — `dormant run MODEL` on a pseudo-terminal, as a person
 * uses it: the commands, a message of several lines, a conversation that
 * outgrows the context (the oldest turns go, said on stderr), /save and
 * /load-chat, and Ctrl-C during a reply (the reply stops, the chat goes on).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tutil.h"

static int master = -1;
static pid_t child = -1;
static char out[1 << 20];
static size_t n_out, seen;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Reads the terminal until `want` appears after what was seen before
 * (then marks it seen), or timeout_s passes. */
static bool wait_for(const char *want, double timeout_s)
{
	double end = now_s() + timeout_s;
	for (;;) {
		out[n_out] = '\0';
		char *hit = strstr(out + seen, want);
		if (hit) {
			seen = (size_t)(hit - out) + strlen(want);
			return true;
		}
		double left = end - now_s();
		if (left <= 0)
			return false;
		struct pollfd p = { master, POLLIN, 0 };
		if (poll(&p, 1, (int)(left * 1000) + 1) > 0) {
			ssize_t r = read(master, out + n_out, sizeof out - 1 - n_out);
			if (r <= 0)
				return false;
			n_out += (size_t)r;
		}
	}
}

static void type(const char *s)
{
	assert_int_equal(write(master, s, strlen(s)), (ssize_t)strlen(s));
}

static void start(const char *model, const char *ctx)
{
	master = posix_openpt(O_RDWR | O_NOCTTY);
	assert_true(master >= 0);
	assert_int_equal(grantpt(master), 0);
	assert_int_equal(unlockpt(master), 0);
	const char *slave = ptsname(master);
	assert_non_null(slave);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		setsid();
		int s = open(slave, O_RDWR);
		if (s < 0)
			_exit(127);
		dup2(s, 0);
		dup2(s, 1);
		dup2(s, 2);
		if (s > 2)
			close(s);
		execl(tu_dormant(), "dormant", "run", model, "--temp", "0", "-n", "6", "--ctx", ctx, "--threads", "1",
		      (char *)NULL);
		_exit(127);
	}
	n_out = seen = 0;
}

static int stop(void)
{
	int st = 0;
	close(master);
	master = -1;
	for (int i = 0; i < 50 && waitpid(child, &st, WNOHANG) == 0; i++)
		usleep(100000);
	if (waitpid(child, &st, WNOHANG) == 0) {
		kill(child, SIGKILL);
		waitpid(child, &st, 0);
	}
	return st;
}

static void test_chat_on_a_terminal(void **state)
{
	char model[512], model2[512];
	const char *saved = tu_tmp_path("chat.json");
	char line[700], words[512] = "";
	(void)state;

	snprintf(model, sizeof model, "%s", tu_tmp_path("tty.gguf"));
	snprintf(model2, sizeof model2, "%s", tu_tmp_path("tty2.gguf"));
	if (tu_system("%s synth --preset tiny --type Q8_0 --seed 4 -o %s", tu_dormant(), model) ||
	    tu_system("%s synth --preset tiny --arch qwen2 --type Q8_0 --seed 5 -o %s", tu_dormant(), model2))
		fail_msg("synth failed");
	start(model, "160");
	assert_true(wait_for("chatting with", 20));
	assert_true(wait_for("> ", 5));
	type("/?\n");
	assert_true(wait_for("/load-chat", 5));
	type("/nosuch\n");
	assert_true(wait_for("unknown command /nosuch", 5));
	type("/set parameter temperature 0\n");
	assert_true(wait_for("(temperature set)", 5));
	type("/set system be brief\n");
	assert_true(wait_for("(system message set)", 5));
	type("hello there\n");
	assert_true(wait_for("\n> ", 20));
	/* several lines between """ */
	type("\"\"\"first line\n");
	type("second line\"\"\"\n");
	assert_true(wait_for("\n> ", 20));
	/* outgrow the context of 160: the oldest turns go */
	for (int i = 0; i < 12; i++)
		strcat(words, "apple tree river ");
	for (int i = 0; i < 4; i++) {
		snprintf(line, sizeof line, "%.200s\n", words);
		type(line);
		assert_true(wait_for("\n> ", 30));
	}
	out[n_out] = '\0';
	assert_non_null(strstr(out, "no longer fits the context of 160"));
	type("/show info\n");
	assert_true(wait_for("architecture", 5));
	/* /load: a missing file keeps the model; another model takes over, the chat stays */
	type("/load /nonexistent.gguf\n");
	assert_true(wait_for("nonexistent.gguf", 10));
	snprintf(line, sizeof line, "/load %s\n", model2);
	type(line);
	assert_true(wait_for("(now chatting with", 20));
	type("and now?\n");
	assert_true(wait_for("\n> ", 20));
	snprintf(line, sizeof line, "/save %s\n", saved);
	type(line);
	assert_true(wait_for("(saved to", 5));
	type("/clear\n");
	assert_true(wait_for("(new conversation)", 5));
	snprintf(line, sizeof line, "/load-chat %s\n", saved);
	type(line);
	assert_true(wait_for("messages loaded)", 5));
	{
		size_t n;
		char *j = tu_read_file(saved, &n);
		assert_non_null(j);
		assert_non_null(strstr(j, "\"role\": \"system\""));
		assert_non_null(strstr(j, "be brief"));
		free(j);
	}
	type("/bye\n");
	assert_int_equal(stop(), 0);

	/* Ctrl-C during a long reply stops it; the chat goes on */
	start(model, "4096");
	assert_true(wait_for("> ", 20));
	type("/set parameter num_predict 100000\n");
	assert_true(wait_for("(num_predict set)", 5));
	type("tell me everything\n");
	usleep(400000);
	type("\x03");
	assert_true(wait_for("(reply stopped)", 20));
	assert_true(wait_for("> ", 5));
	type("/bye\n");
	assert_int_equal(stop(), 0);
}

/* Piped stdin is the prompt, answered once; --format json prints one
 * object with the figures; --verbose prints Ollama's timing lines. */
static void test_run_piped(void **state)
{
	const char *model = tu_tmp_path("pipe.gguf");
	int st;
	char *o;
	(void)state;
	if (tu_system("%s synth --preset tiny --type Q8_0 --seed 4 -o %s", tu_dormant(), model))
		fail_msg("synth failed");
	o = tu_capture(&st, "echo 'hello there' | %s run %s -n 4 --temp 0 --format json", tu_dormant(), model);
	assert_int_equal(st, 0);
	assert_non_null(o);
	assert_non_null(strstr(o, "\"response\":"));
	assert_non_null(strstr(o, "\"eval_count\":4"));
	assert_non_null(strstr(o, "\"prompt_eval_count\":"));
	free(o);
	/* the same prompt as an argument gives the same text */
	{
		char *a = tu_capture(&st, "echo 'hello there' | %s run %s -n 4 --temp 0", tu_dormant(), model);
		char *b = tu_capture(&st, "%s run %s 'hello there' -n 4 --temp 0 </dev/null", tu_dormant(), model);
		assert_non_null(a);
		assert_non_null(b);
		assert_string_equal(a, b);
		free(a);
		free(b);
	}
	o = tu_capture(&st, "echo hi | %s run %s -n 3 --temp 0 --verbose 2>&1 >/dev/null", tu_dormant(), model);
	assert_int_equal(st, 0);
	assert_non_null(o);
	assert_non_null(strstr(o, "prompt eval rate:"));
	assert_non_null(strstr(o, "eval count:           3 token(s)"));
	free(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chat_on_a_terminal),
		cmocka_unit_test(test_run_piped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

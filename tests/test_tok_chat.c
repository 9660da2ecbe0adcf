/*
 * tests/tok_chat — chat templates: detection from real template texts,
 * formatting of a conversation with every template, forced names, stop
 * tokens, and a templated prompt tokenized through the CLI.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "tok/chat.h"
#include "tok/tok.h"
#include "tutil.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* Template texts as they appear in tokenizer.chat_template (abridged where
 * long, keeping the parts that identify them). */
static const char tmpl_llama2[] =
	"{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
	"{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
	"{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
	"{% if loop.index0 == 0 and system_message != false %}"
	"{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
	"{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
	"{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
	"{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";
static const char tmpl_mistral[] =
	"{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
	"{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
	"{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
	"{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}"
	"{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}";
static const char tmpl_chatml[] =
	"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
	"'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
static const char tmpl_llama3[] =
	"{% set loop_messages = messages %}{% for message in loop_messages %}"
	"{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ "
	"message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
	"{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
	"{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";
static const char tmpl_zephyr[] =
	"{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + "
	"message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + "
	"message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + "
	"message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n"
	"{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";
static const char tmpl_gemma[] =
	"{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
	"{% endif %}{% for message in messages %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
	"{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\\n' + "
	"message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}"
	"{{'<start_of_turn>model\\n'}}{% endif %}";
static const char tmpl_phi3[] =
	"{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\\n' + "
	"message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\\n' + "
	"message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\\n' + "
	"message['content'] + '<|end|>\\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}"
	"{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}";

static void test_detect(void **state)
{
	static const struct {
		const char *tmpl;
		enum tok_chat_kind kind;
	} cases[] = {
		{ tmpl_llama2, TOK_CHAT_LLAMA2 }, { tmpl_mistral, TOK_CHAT_MISTRAL },
		{ tmpl_chatml, TOK_CHAT_CHATML }, { tmpl_llama3, TOK_CHAT_LLAMA3 },
		{ tmpl_zephyr, TOK_CHAT_ZEPHYR }, { tmpl_gemma, TOK_CHAT_GEMMA },
		{ tmpl_phi3, TOK_CHAT_PHI3 },     { "llama3", TOK_CHAT_LLAMA3 },
		{ "tinyllama", TOK_CHAT_ZEPHYR },
	};
	bool fb;
	enum tok_chat_kind k;
	struct dm_err e;
	(void)state;
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		assert_int_equal(tok_chat_detect(cases[i].tmpl, &fb), cases[i].kind);
		assert_false(fb);
	}
	/* unknown or missing: ChatML, flagged */
	assert_int_equal(tok_chat_detect("{{ messages | tojson }}", &fb), TOK_CHAT_CHATML);
	assert_true(fb);
	assert_int_equal(tok_chat_detect(NULL, &fb), TOK_CHAT_CHATML);
	assert_true(fb);
	/* names */
	for (int i = 0; i < TOK_CHAT_COUNT; i++) {
		assert_int_equal(tok_chat_by_name(tok_chat_name((enum tok_chat_kind)i), &k, &e), 0);
		assert_int_equal(k, i);
	}
	assert_int_equal(tok_chat_by_name("qwen", &k, &e), 0);
	assert_int_equal(k, TOK_CHAT_CHATML);
	assert_int_equal(tok_chat_by_name("vicuna", &k, &e), DM_ENOTFOUND);
	assert_non_null(strstr(e.msg, "'vicuna'"));
}

static void test_apply(void **state)
{
	static const struct tok_chat_msg msgs[] = {
		{ "system", "You are nice." },
		{ "user", " Hi " },
		{ "assistant", "Yo" },
		{ "user", "Again" },
	};
	static const struct {
		enum tok_chat_kind kind;
		const char *want;
	} cases[] = {
		{ TOK_CHAT_CHATML,
		  "<|im_start|>system\nYou are nice.<|im_end|>\n<|im_start|>user\n Hi <|im_end|>\n"
		  "<|im_start|>assistant\nYo<|im_end|>\n<|im_start|>user\nAgain<|im_end|>\n"
		  "<|im_start|>assistant\n" },
		{ TOK_CHAT_LLAMA3,
		  "<|start_header_id|>system<|end_header_id|>\n\nYou are nice.<|eot_id|>"
		  "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
		  "<|start_header_id|>assistant<|end_header_id|>\n\nYo<|eot_id|>"
		  "<|start_header_id|>user<|end_header_id|>\n\nAgain<|eot_id|>"
		  "<|start_header_id|>assistant<|end_header_id|>\n\n" },
		{ TOK_CHAT_ZEPHYR,
		  "<|system|>\nYou are nice.</s>\n<|user|>\n Hi </s>\n<|assistant|>\nYo</s>\n"
		  "<|user|>\nAgain</s>\n<|assistant|>\n" },
		{ TOK_CHAT_PHI3,
		  "<|system|>\nYou are nice.<|end|>\n<|user|>\n Hi <|end|>\n<|assistant|>\nYo<|end|>\n"
		  "<|user|>\nAgain<|end|>\n<|assistant|>\n" },
		{ TOK_CHAT_GEMMA,
		  "<start_of_turn>user\nYou are nice.\n\nHi<end_of_turn>\n<start_of_turn>model\nYo<end_of_turn>\n"
		  "<start_of_turn>user\nAgain<end_of_turn>\n<start_of_turn>model\n" },
		{ TOK_CHAT_MISTRAL, "[INST] You are nice.\n\n Hi  [/INST]Yo</s>[INST] Again [/INST]" },
		{ TOK_CHAT_LLAMA2,
		  "[INST] <<SYS>>\nYou are nice.\n<</SYS>>\n\n Hi [/INST] Yo </s><s>[INST] Again [/INST]" },
	};
	struct dm_err e;
	char *out;
	size_t len;
	(void)state;
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		assert_int_equal(tok_chat_apply(cases[i].kind, NULL, msgs, N_ELEMS(msgs), true, &out, &len, &e), 0);
		if (strcmp(out, cases[i].want))
			print_error("%s:\n%s\n", tok_chat_name(cases[i].kind), out);
		assert_string_equal(out, cases[i].want);
		assert_int_equal(len, strlen(out));
		free(out);
	}
	/* no generation prompt; empty conversation */
	assert_int_equal(tok_chat_apply(TOK_CHAT_CHATML, NULL, msgs + 1, 1, false, &out, &len, &e), 0);
	assert_string_equal(out, "<|im_start|>user\n Hi <|im_end|>\n");
	free(out);
	assert_int_equal(tok_chat_apply(TOK_CHAT_LLAMA3, NULL, NULL, 0, false, &out, &len, &e), 0);
	assert_string_equal(out, "");
	assert_int_equal(len, 0);
	free(out);
	{
		static const struct tok_chat_msg bad[] = { { "user", "a" }, { "tool", "b" } };
		assert_int_equal(tok_chat_apply(TOK_CHAT_CHATML, NULL, bad, 2, true, &out, &len, &e), DM_EINVAL);
		assert_non_null(strstr(e.msg, "message 1"));
		assert_null(out);
	}
}

/* A small vocab with ChatML tokens and optionally a template. */
static const char *write_vocab(const char *name, const char *tmpl)
{
	static const char *const toks[] = {
		"<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "a", "\xe2\x96\x81",
	};
	static const int32_t types[] = { 2, 3, 3, 3, 3, 3, 1, 1 };
	const char *path = tu_tmp_path(name);
	struct gguf_writer *w;
	struct dm_err e;
	assert_int_equal(gguf_writer_open(&w, path, &e), 0);
	assert_int_equal(gguf_writer_add_str(w, "tokenizer.ggml.model", "llama", &e), 0);
	assert_int_equal(gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, N_ELEMS(toks), &e), 0);
	assert_int_equal(gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, types,
					     N_ELEMS(types), &e), 0);
	if (tmpl)
		assert_int_equal(gguf_writer_add_str(w, "tokenizer.chat_template", tmpl, &e), 0);
	assert_int_equal(gguf_writer_write_header(w, &e), 0);
	assert_int_equal(gguf_writer_close(w, &e), 0);
	return path;
}

static struct tok_vocab *load(const char *path)
{
	struct gguf_file *g;
	struct tok_vocab *v;
	struct dm_err e;
	assert_int_equal(gguf_open(&g, path, &e), 0);
	assert_int_equal(tok_load(&v, g, &e), 0);
	gguf_close(g);
	return v;
}

static void test_select_and_stops(void **state)
{
	struct tok_vocab *v = load(write_vocab("chat-phi.gguf", tmpl_phi3));
	struct tok_vocab *m = load(write_vocab("chat-none.gguf", NULL));
	enum tok_chat_kind k;
	bool fb;
	struct dm_err e;
	int32_t ids[8];
	size_t n;
	const char *const *stops;
	(void)state;

	assert_string_equal(tok_chat_template(v), tmpl_phi3);
	assert_int_equal(tok_chat_select(v, NULL, &k, &fb, &e), 0);
	assert_int_equal(k, TOK_CHAT_PHI3);
	assert_false(fb);
	assert_int_equal(tok_chat_select(v, "gemma", &k, &fb, &e), 0);
	assert_int_equal(k, TOK_CHAT_GEMMA);
	assert_int_equal(tok_chat_select(v, "nope", &k, &fb, &e), DM_ENOTFOUND);
	/* no template, but <|im_start|> is a token */
	assert_null(tok_chat_template(m));
	assert_int_equal(tok_chat_select(m, NULL, &k, &fb, &e), 0);
	assert_int_equal(k, TOK_CHAT_CHATML);
	assert_false(fb);
	assert_int_equal(tok_chat_select(NULL, NULL, &k, &fb, &e), 0);
	assert_true(fb);

	assert_int_equal(tok_chat_stops(TOK_CHAT_CHATML, &stops), 2);
	assert_string_equal(stops[0], "<|im_end|>");
	assert_int_equal(tok_chat_stops(TOK_CHAT_LLAMA3, &stops), 3);
	assert_string_equal(stops[0], "<|eot_id|>");
	/* <|im_end|> (4), <|endoftext|> (5), EOS </s> (2); EOT was found by
	 * its text (<|im_end|>) and is already there */
	n = tok_chat_stop_ids(TOK_CHAT_CHATML, m, ids, 8);
	assert_int_equal(n, 3);
	assert_int_equal(ids[0], 4);
	assert_int_equal(ids[1], 5);
	assert_int_equal(ids[2], 2);
	assert_true(tok_is_eog(m, 4));
	assert_true(tok_is_eog(m, 5));
	assert_int_equal(tok_chat_stop_ids(TOK_CHAT_CHATML, m, ids, 1), 1);
	tok_free(v);
	tok_free(m);
}

/* A ChatML prompt tokenized with special tokens parsed, via the CLI. */
static void test_cli_chat(void **state)
{
	const char *path = write_vocab("chat-cli.gguf", tmpl_chatml);
	char *out;
	int st;
	(void)state;
	/* <s> <|im_start|> "user\n" ... : check the special ids are there */
	out = tu_capture(&st, "%s tokenize %s --chat a", tu_dormant(), path);
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, "1 3 "));
	assert_non_null(strstr(out, " 4 "));
	free(out);
	out = tu_capture(&st, "%s tokenize %s --chat --chat-template nope a 2>&1", tu_dormant(), path);
	assert_int_not_equal(st, 0);
	assert_non_null(strstr(out, "nope"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_detect),
		cmocka_unit_test(test_apply),
		cmocka_unit_test(test_select_and_stops),
		cmocka_unit_test(test_cli_chat),
	};
	return cmocka_run_group_tests_name("tok_chat", tests, NULL, NULL);
}

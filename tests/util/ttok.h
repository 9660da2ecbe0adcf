/*
 * tests/util/ttok — the tokenizer tests' shared check: encode a text and
 * compare with the ids that follow (cmocka assertion; the ids printed on a
 * mismatch).
 */
#ifndef DM_TESTS_TTOK_H
#define DM_TESTS_TTOK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tok/tok.h"

void ttok_check_ids(const struct tok_vocab *v, const char *s, size_t len, unsigned flags, size_t n, ...);
#define IDS(v, s, flags, ...)                                                                  \
	ttok_check_ids(v, s, strlen(s), flags, sizeof((int32_t[]){ __VA_ARGS__ }) / sizeof(int32_t), \
		       __VA_ARGS__)
#define NO_IDS(v, s, flags) ttok_check_ids(v, s, strlen(s), flags, 0)

#endif

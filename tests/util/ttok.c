/* tests/util/ttok — see ttok.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "ttok.h"

void ttok_check_ids(const struct tok_vocab *v, const char *s, size_t len, unsigned flags, size_t n, ...)
{
	int32_t *ids;
	size_t got;
	struct dm_err e;
	va_list ap;
	bool ok;

	assert_int_equal(tok_encode(v, s, len, flags, &ids, &got, &e), 0);
	ok = got == n;
	va_start(ap, n);
	for (size_t i = 0; i < n; i++) {
		int32_t want = va_arg(ap, int32_t);
		if (ok && ids[i] != want)
			ok = false;
	}
	va_end(ap);
	if (!ok) {
		print_error("text '%.*s': got %zu ids:", (int)len, s, got);
		for (size_t i = 0; i < got; i++)
			print_error(" %d", ids[i]);
		print_error("\n");
	}
	free(ids);
	assert_true(ok);
}

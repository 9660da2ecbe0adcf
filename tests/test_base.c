/* tests/base — error convention, UTF-8, half conversions, rng. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/err.h"
#include "base/gpu.h"
#include "base/half.h"
#include "base/mem.h"
#include "base/rng.h"
#include "base/utf8.h"
#include "tutil.h"

static void test_err_set_prefix(void **state)
{
	struct dm_err e;
	(void)state;
	assert_int_equal(dm_err_set(&e, DM_EFORMAT, "offset %d: bad", 12), DM_EFORMAT);
	assert_string_equal(e.msg, "offset 12: bad");
	assert_int_equal(dm_err_prefix(&e, "f.gguf"), DM_EFORMAT);
	assert_string_equal(e.msg, "f.gguf: offset 12: bad");
	assert_int_equal(dm_err_set(NULL, DM_EIO, "ignored"), DM_EIO);
}

/* Messages go into JSON: bytes from a file that are not UTF-8 are escaped,
 * valid characters kept, and a cut never splits a character. */
static void test_err_valid_utf8(void **state)
{
	struct dm_err e;
	char big[600], small[8];
	(void)state;
	dm_err_set(&e, DM_EUNSUPPORTED, "unsupported architecture '%s'", "ll\xffma\xc3");
	assert_string_equal(e.msg, "unsupported architecture 'll\\xffma\\xc3'");
	assert_true(dm_utf8_valid((const uint8_t *)e.msg, strlen(e.msg)));
	dm_err_set(&e, DM_EFORMAT, "key '%s'", "caf\xc3\xa9");
	assert_string_equal(e.msg, "key 'caf\xc3\xa9'");
	dm_err_prefix(&e, "f\x80.gguf");
	assert_string_equal(e.msg, "f\\x80.gguf: key 'caf\xc3\xa9'");
	/* err->msg as an argument of its own message */
	dm_err_set(&e, DM_EIO, "%s (again)", e.msg);
	assert_string_equal(e.msg, "f\\x80.gguf: key 'caf\xc3\xa9' (again)");
	/* 254 ASCII bytes then a 2-byte character: cut before it, not inside */
	memset(big, 'a', 254);
	memcpy(big + 254, "\xc3\xa9", 3);
	dm_err_set(&e, DM_EIO, "%s", big);
	assert_int_equal(strlen(e.msg), 254);
	assert_true(dm_utf8_valid((const uint8_t *)e.msg, strlen(e.msg)));
	/* an escape is written whole or not at all */
	assert_int_equal(dm_utf8_sanitize(small, sizeof small, "ab\xff\xfe"), 6);
	assert_string_equal(small, "ab\\xff");
}

static void test_utf8(void **state)
{
	uint32_t cp;
	uint8_t buf[4];
	(void)state;
	assert_int_equal(dm_utf8_decode((const uint8_t *)"\xe2\x96\x81", 3, &cp), 3);
	assert_int_equal(cp, 0x2581);
	assert_int_equal(dm_utf8_decode((const uint8_t *)"\xf0\x9f\x98\x80", 4, &cp), 4);
	assert_int_equal(cp, 0x1F600);
	/* overlong, surrogate, truncated, stray continuation */
	assert_int_equal(dm_utf8_decode((const uint8_t *)"\xc0\xaf", 2, &cp), 0);
	assert_int_equal(dm_utf8_decode((const uint8_t *)"\xed\xa0\x80", 3, &cp), 0);
	assert_int_equal(dm_utf8_decode((const uint8_t *)"\xe2\x96", 2, &cp), 0);
	assert_int_equal(dm_utf8_decode((const uint8_t *)"\x80", 1, &cp), 0);
	assert_int_equal(dm_utf8_encode(0x1F600, buf), 4);
	assert_memory_equal(buf, "\xf0\x9f\x98\x80", 4);
	assert_int_equal(dm_utf8_encode(0xD800, buf), 0);
	/* a 3-byte character split after 2 bytes is held back */
	assert_int_equal(dm_utf8_complete_prefix((const uint8_t *)"ab\xe2\x96", 4), 2);
	assert_int_equal(dm_utf8_complete_prefix((const uint8_t *)"ab\xe2\x96\x81", 5), 5);
	assert_true(dm_utf8_valid((const uint8_t *)"h\xc3\xa9llo", 6));
	assert_false(dm_utf8_valid((const uint8_t *)"h\xc3", 2));
}

/* Every one of the 65536 F16 values survives F16 -> F32 -> F16 (NaNs stay NaN). */
static void test_f16_roundtrip_all(void **state)
{
	(void)state;
	for (uint32_t h = 0; h < 65536; h++) {
		float f = dm_f16_to_f32((uint16_t)h);
		uint16_t back = dm_f32_to_f16(f);
		if (isnan(f))
			assert_true((back & 0x7C00) == 0x7C00 && (back & 0x3FF));
		else
			assert_int_equal(back, h);
	}
}

/* F32 -> F16 rounding checked against an independent computation in double:
 * the nearest of the two neighbouring F16 values, ties to even. */
static void test_f16_rounding(void **state)
{
	struct dm_rng r;
	(void)state;
	dm_rng_seed(&r, 7);
	for (int i = 0; i < 200000; i++) {
		float x = (float)(dm_rng_normal(&r) * pow(2.0, (double)(int)(dm_rng_u64(&r) % 40) - 26));
		uint16_t h = dm_f32_to_f16(x);
		double v = dm_f16_to_f32(h), ax = fabs((double)x);
		if (ax >= 65520.0) {
			assert_true(isinf(v));
			continue;
		}
		/* neighbours of h in magnitude */
		uint16_t mag = h & 0x7FFF;
		double lo = mag ? fabs((double)dm_f16_to_f32((uint16_t)(mag - 1))) : 0.0;
		double hi = fabs((double)dm_f16_to_f32((uint16_t)(mag + 1)));
		double err = fabs(fabs(v) - ax);
		assert_true(err <= fabs(ax - lo) + 0.0);
		assert_true(err <= fabs(hi - ax) + 0.0 || isinf(hi));
	}
	assert_int_equal(dm_f32_to_f16(1.0f), 0x3C00);
	assert_int_equal(dm_f32_to_f16(-2.0f), 0xC000);
	assert_int_equal(dm_f32_to_f16(65504.0f), 0x7BFF);
	assert_int_equal(dm_f32_to_f16(1e6f), 0x7C00);
	assert_int_equal(dm_f32_to_f16(5.9604645e-8f), 0x0001); /* smallest subnormal */
}

static void test_bf16(void **state)
{
	(void)state;
	assert_int_equal(dm_f32_to_bf16(1.0f), 0x3F80);
	/* 1 + 2^-8 is a tie between 0x3F80 and 0x3F81: even wins */
	assert_int_equal(dm_f32_to_bf16(1.00390625f), 0x3F80);
	assert_int_equal(dm_f32_to_bf16(1.01171875f), 0x3F82); /* 1 + 3*2^-8: tie to even (up) */
	assert_true(dm_bf16_to_f32(0x3F80) == 1.0f);
	assert_true(isnan(dm_bf16_to_f32(dm_f32_to_bf16(NAN))));
}

static void test_rng_deterministic(void **state)
{
	struct dm_rng a, b;
	double sum = 0, sq = 0;
	(void)state;
	dm_rng_seed(&a, 42);
	dm_rng_seed(&b, 42);
	for (int i = 0; i < 1000; i++)
		assert_true(dm_rng_u64(&a) == dm_rng_u64(&b));
	for (int i = 0; i < 100000; i++) {
		double x = dm_rng_normal(&a);
		sum += x;
		sq += x * x;
	}
	assert_true(fabs(sum / 100000) < 0.02);
	assert_true(fabs(sq / 100000 - 1.0) < 0.02);
}

static void test_sha256_known(void **state)
{
	char hex[65];
	(void)state;
	tu_sha256_hex("abc", 3, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	tu_sha256_hex("", 0, hex);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* No driver is not an error: zero devices and a reason; with a driver,
 * every device reports total >= free. */
static void test_gpu_query(void **state)
{
	struct dm_gpu_info gi;
	struct dm_err e;
	(void)state;
	assert_int_equal(dm_gpu_query(&gi, &e), 0);
	if (gi.n == 0)
		assert_true(gi.absent_reason[0] != '\0');
	for (size_t i = 0; i < gi.n; i++)
		assert_true(gi.gpu[i].total >= gi.gpu[i].free && gi.gpu[i].total > 0);
}

/* dm_mem_populate makes a fresh mapping resident page by page (mincore
 * before: none; after: all) and leaves it zero; NULL / 0 are no-ops. */
static void test_mem_populate(void **state)
{
	const size_t page = (size_t)sysconf(_SC_PAGESIZE), n = 64 * page;
	unsigned char vec[64];
	uint8_t *p = dm_mem_map(n);
	size_t resident = 0;
	(void)state;
	assert_non_null(p);
	assert_int_equal(mincore(p, n, vec), 0);
	for (int i = 0; i < 64; i++)
		resident += vec[i] & 1;
	assert_int_equal(resident, 0);
	dm_mem_populate(p, n);
	assert_int_equal(mincore(p, n, vec), 0);
	for (int i = 0; i < 64; i++)
		assert_true(vec[i] & 1);
	for (size_t i = 0; i < n; i++)
		if (p[i])
			fail_msg("byte %zu is %u after populate", i, p[i]);
	dm_mem_populate(NULL, n);
	dm_mem_populate(p, 0);
	dm_mem_unmap(p, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_err_set_prefix),
		cmocka_unit_test(test_err_valid_utf8),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_f16_roundtrip_all),
		cmocka_unit_test(test_f16_rounding),
		cmocka_unit_test(test_bf16),
		cmocka_unit_test(test_rng_deterministic),
		cmocka_unit_test(test_sha256_known),
		cmocka_unit_test(test_gpu_query),
		cmocka_unit_test(test_mem_populate),
	};
	return cmocka_run_group_tests_name("base", tests, NULL, NULL);
}

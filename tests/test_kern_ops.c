/* tests/kern_ops — element-wise operations against straightforward double
 * precision formulas (relative tolerances of a few float ulps times the
 * number of terms). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/half.h"
#include "base/rng.h"
#include "kern/kern.h"

static void fill(float *x, int n, uint64_t seed)
{
	struct dm_rng r;
	dm_rng_seed(&r, seed);
	for (int i = 0; i < n; i++)
		x[i] = (float)dm_rng_normal(&r);
}

static void test_rmsnorm(void **state)
{
	float x[300], w[300], y[300];
	double ss = 0;
	(void)state;
	fill(x, 300, 1);
	fill(w, 300, 2);
	for (int i = 0; i < 300; i++)
		ss += (double)x[i] * x[i];
	double s = 1.0 / sqrt(ss / 300 + 1e-5);
	kern_rmsnorm(y, x, w, 300, 1e-5f);
	for (int i = 0; i < 300; i++)
		assert_true(fabs(y[i] - x[i] * s * w[i]) <= 1e-6 * (1 + fabs(x[i] * s * w[i])));
	kern_rmsnorm(x, x, NULL, 300, 1e-5f); /* in place, no weight */
	ss = 0;
	for (int i = 0; i < 300; i++)
		ss += (double)x[i] * x[i];
	assert_true(fabs(ss / 300 - 1.0) < 1e-3);
}

/* Both RoPE modes against θ_i = pos·scale·base^(−2i/n_rot)/ff_i in double. */
static void test_rope(void **state)
{
	const int hd = 64, nh = 3, nrot = 48;
	float x[3 * 64], y[3 * 64], ff[24];
	(void)state;
	for (int i = 0; i < 24; i++)
		ff[i] = 1.0f + (float)i / 8;
	for (int mode = 0; mode <= 2; mode += 2)
		for (int use_ff = 0; use_ff < 2; use_ff++) {
			struct kern_rope r = { (enum kern_rope_mode)mode, nrot, 10000.0f, 0.5f,
					       use_ff ? ff : NULL };
			const int64_t pos = 37;
			fill(x, nh * hd, 3);
			memcpy(y, x, sizeof x);
			kern_rope_apply(y, nh, hd, pos, &r);
			for (int h = 0; h < nh; h++)
				for (int i = 0; i < hd; i++) {
					double want = x[h * hd + i];
					if (i < nrot) {
						int p = mode == KERN_ROPE_NEOX ? i % (nrot / 2) : i / 2;
						int a = mode == KERN_ROPE_NEOX ? p : 2 * p;
						int b = mode == KERN_ROPE_NEOX ? p + nrot / 2 : 2 * p + 1;
						double th = pos * 0.5 * pow(10000.0, -2.0 * p / nrot) /
							    (use_ff ? ff[p] : 1.0);
						double xa = x[h * hd + a], xb = x[h * hd + b];
						want = i == a ? xa * cos(th) - xb * sin(th)
							      : xa * sin(th) + xb * cos(th);
					}
					assert_true(fabs(y[h * hd + i] - want) < 1e-4);
				}
		}
}

static void test_softmax_activations(void **state)
{
	float x[100], y[100], g[100], u[100];
	double sum = 0, mx = -1e30;
	(void)state;
	fill(x, 100, 4);
	for (int i = 0; i < 100; i++)
		x[i] *= 10, mx = fmax(mx, x[i]);
	memcpy(y, x, sizeof x);
	kern_softmax(y, 100);
	for (int i = 0; i < 100; i++)
		sum += exp(x[i] - mx);
	for (int i = 0; i < 100; i++)
		assert_true(fabs(y[i] - exp(x[i] - mx) / sum) <= 1e-6 * (exp(x[i] - mx) / sum) + 1e-12);
	kern_silu(y, x, 100);
	for (int i = 0; i < 100; i++)
		assert_true(fabs(y[i] - x[i] / (1 + exp(-x[i]))) <= 1e-5 * (1 + fabs(x[i])));
	kern_gelu(y, x, 100);
	for (int i = 0; i < 100; i++) {
		double v = x[i], want = 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
		assert_true(fabs(y[i] - want) <= 1e-5 * (1 + fabs(v)));
	}
	fill(g, 100, 5);
	fill(u, 100, 6);
	memcpy(y, g, sizeof g);
	kern_swiglu(y, u, 100);
	for (int i = 0; i < 100; i++)
		assert_true(fabs(y[i] - g[i] / (1 + exp(-g[i])) * u[i]) <= 1e-5 * (1 + fabs(g[i] * u[i])));
	kern_add(y, g, u, 100);
	assert_true(y[7] == g[7] + u[7]);
	kern_mul(y, g, u, 100);
	assert_true(y[7] == g[7] * u[7]);
	kern_scale(y, g, 3.0f, 100);
	assert_true(y[7] == g[7] * 3.0f);
}

static void test_conversions(void **state)
{
	float x[64], y[64];
	uint16_t h[64];
	(void)state;
	fill(x, 64, 7);
	kern_f32_to_f16(x, h, 64);
	kern_f16_to_f32(h, y, 64);
	for (int i = 0; i < 64; i++)
		assert_true(h[i] == dm_f32_to_f16(x[i]) && y[i] == dm_f16_to_f32(h[i]));
	kern_f32_to_bf16(x, h, 64);
	kern_bf16_to_f32(h, y, 64);
	for (int i = 0; i < 64; i++)
		assert_true(h[i] == dm_f32_to_bf16(x[i]) && y[i] == dm_bf16_to_f32(h[i]));
}

/* Scores and values over an F16 cache with a row stride wider than the head. */
static void test_attention(void **state)
{
	enum { NKV = 19, HD = 40, STRIDE = 56 };
	float q[HD], kf[NKV * STRIDE], p[NKV], sc[NKV], out[HD];
	uint16_t k[NKV * STRIDE], v[NKV * STRIDE];
	(void)state;
	fill(q, HD, 8);
	fill(kf, NKV * STRIDE, 9);
	fill(p, NKV, 10);
	kern_f32_to_f16(kf, k, NKV * STRIDE);
	for (int i = 0; i < NKV * STRIDE; i++)
		v[i] = k[(i * 7) % (NKV * STRIDE)];
	kern_attn_scores(sc, q, k, NKV, HD, STRIDE, 0.125f);
	for (int t = 0; t < NKV; t++) {
		double s = 0, a = 0;
		for (int i = 0; i < HD; i++) {
			s += (double)q[i] * dm_f16_to_f32(k[t * STRIDE + i]);
			a += fabs((double)q[i] * dm_f16_to_f32(k[t * STRIDE + i]));
		}
		assert_true(fabs(sc[t] - 0.125 * s) <= 0.125 * a * HD * 1.2e-7 + 1e-7);
	}
	kern_attn_values(out, p, v, NKV, HD, STRIDE);
	for (int i = 0; i < HD; i++) {
		double s = 0, a = 0;
		for (int t = 0; t < NKV; t++) {
			s += (double)p[t] * dm_f16_to_f32(v[t * STRIDE + i]);
			a += fabs((double)p[t] * dm_f16_to_f32(v[t * STRIDE + i]));
		}
		assert_true(fabs(out[i] - s) <= a * NKV * 1.2e-7 + 1e-7);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rmsnorm),
		cmocka_unit_test(test_rope),
		cmocka_unit_test(test_softmax_activations),
		cmocka_unit_test(test_conversions),
		cmocka_unit_test(test_attention),
	};
	return cmocka_run_group_tests_name("kern_ops", tests, NULL, NULL);
}

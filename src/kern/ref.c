/*
 * kern/ref — the executable specification of every type: scalar,
 * readable, kept forever, and the fallback on machines without SIMD.
 *
 * Three things per type:
 *  - to_float: dequantization, bit-identical to ggml's to_float (the float
 *    operations are done in the same order, e.g. (d*sc)*q - d_min*m);
 *  - from_float: the reference quantizer, producing the same bytes as
 *    ggml's quantize_row_*_ref (same scale search, same rounding: Q4_0/Q5_0
 *    truncate x+8.5, Q8_0 rounds half away from zero, the K-quants round
 *    half to even);
 *  - dot: a weight row times an activation row of the type's act_type.
 *    Within a block (or sub-block) the products are integer and summed
 *    exactly; the per-block results are combined in float in block order.
 *    SIMD kernels reproduce the per-block integers exactly and differ only
 *    in how the float block results are added up.
 *
 * This file must be compiled without floating-point contraction (the
 * default for -std=c11 with GCC and Clang; no -ffast-math anywhere), or
 * the quantizers' searches would not match ggml's bit for bit.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "base/half.h"
#include "kern/kern_impl.h"

#define GROUP_MAX_EPS 1e-15f

static inline float fp16(uint16_t h)
{
	return dm_f16_to_f32(h);
}

static inline int imin(int a, int b)
{
	return a < b ? a : b;
}

static inline int imax(int a, int b)
{
	return a > b ? a : b;
}

/* Round to nearest, ties to even, for |v| < 2^22: adding 1.5·2^23 puts the
 * integer part in the low mantissa bits (the FPU does the rounding). */
static inline int nearest_int(float v)
{
	float t = v + 12582912.0f;
	int32_t bits;
	memcpy(&bits, &t, sizeof bits);
	return (bits & 0x007FFFFF) - 0x00400000;
}

/* (int)v as x86-64's cvttss2si computes it: truncation toward zero, and
 * INT_MIN for NaN and values outside int's range, where a C cast is
 * undefined.  ggml's quantizers reach those on blocks whose scale's
 * inverse overflows (all-subnormal blocks); this keeps their bytes and
 * makes them defined. */
static inline int trunc_int(float v)
{
	if (!(v > -2147483648.0f && v < 2147483648.0f))
		return INT32_MIN;
	return (int)v;
}

/* ======================= plain float types ======================= */

void kern_to_float_f32_ref(const void *x, float *y, int64_t n)
{
	memcpy(y, x, (size_t)n * sizeof(float));
}

void kern_to_float_f16_ref(const void *x, float *y, int64_t n)
{
	const uint16_t *h = x;
	for (int64_t i = 0; i < n; i++)
		y[i] = dm_f16_to_f32(h[i]);
}

void kern_to_float_bf16_ref(const void *x, float *y, int64_t n)
{
	const uint16_t *h = x;
	for (int64_t i = 0; i < n; i++)
		y[i] = dm_bf16_to_f32(h[i]);
}

void kern_from_float_f32_ref(const float *x, void *y, int64_t n)
{
	memcpy(y, x, (size_t)n * sizeof(float));
}

void kern_from_float_f16_ref(const float *x, void *y, int64_t n)
{
	uint16_t *h = y;
	for (int64_t i = 0; i < n; i++)
		h[i] = dm_f32_to_f16(x[i]);
}

void kern_from_float_bf16_ref(const float *x, void *y, int64_t n)
{
	uint16_t *h = y;
	for (int64_t i = 0; i < n; i++)
		h[i] = dm_f32_to_bf16(x[i]);
}

float kern_dot_f32_ref(int64_t n, const void *w, const void *a)
{
	const float *p = w, *q = a;
	float s = 0;
	for (int64_t i = 0; i < n; i++)
		s += p[i] * q[i];
	return s;
}

float kern_dot_f16_ref(int64_t n, const void *w, const void *a)
{
	const uint16_t *p = w;
	const float *q = a;
	float s = 0;
	for (int64_t i = 0; i < n; i++)
		s += dm_f16_to_f32(p[i]) * q[i];
	return s;
}

float kern_dot_bf16_ref(int64_t n, const void *w, const void *a)
{
	const uint16_t *p = w;
	const float *q = a;
	float s = 0;
	for (int64_t i = 0; i < n; i++)
		s += dm_bf16_to_f32(p[i]) * q[i];
	return s;
}

/* ======================= 32-element block types ======================= */

/* Q4_0 / Q5_0 code of element j (0..31), before subtracting the offset. */
static inline int q4_code(const uint8_t *qs, int j)
{
	return j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4;
}

static inline int q5_code(const uint8_t *qs, const uint8_t qh4[4], int j)
{
	uint32_t qh = (uint32_t)qh4[0] | (uint32_t)qh4[1] << 8 | (uint32_t)qh4[2] << 16 |
		      (uint32_t)qh4[3] << 24;
	return q4_code(qs, j) | (int)((qh >> j) & 1) << 4;
}

void kern_to_float_q4_0_ref(const void *x, float *y, int64_t n)
{
	const struct block_q4_0 *b = x;
	for (int64_t i = 0; i < n / QK4_0; i++, y += QK4_0) {
		float d = fp16(b[i].d);
		for (int j = 0; j < QK4_0; j++)
			y[j] = (float)(q4_code(b[i].qs, j) - 8) * d;
	}
}

void kern_to_float_q4_1_ref(const void *x, float *y, int64_t n)
{
	const struct block_q4_1 *b = x;
	for (int64_t i = 0; i < n / QK4_1; i++, y += QK4_1) {
		float d = fp16(b[i].d), m = fp16(b[i].m);
		for (int j = 0; j < QK4_1; j++)
			y[j] = (float)q4_code(b[i].qs, j) * d + m;
	}
}

void kern_to_float_q5_0_ref(const void *x, float *y, int64_t n)
{
	const struct block_q5_0 *b = x;
	for (int64_t i = 0; i < n / QK5_0; i++, y += QK5_0) {
		float d = fp16(b[i].d);
		for (int j = 0; j < QK5_0; j++)
			y[j] = (float)(q5_code(b[i].qs, b[i].qh, j) - 16) * d;
	}
}

void kern_to_float_q5_1_ref(const void *x, float *y, int64_t n)
{
	const struct block_q5_1 *b = x;
	for (int64_t i = 0; i < n / QK5_1; i++, y += QK5_1) {
		float d = fp16(b[i].d), m = fp16(b[i].m);
		for (int j = 0; j < QK5_1; j++)
			y[j] = (float)q5_code(b[i].qs, b[i].qh, j) * d + m;
	}
}

void kern_to_float_q8_0_ref(const void *x, float *y, int64_t n)
{
	const struct block_q8_0 *b = x;
	for (int64_t i = 0; i < n / QK8_0; i++, y += QK8_0) {
		float d = fp16(b[i].d);
		for (int j = 0; j < QK8_0; j++)
			y[j] = (float)b[i].qs[j] * d;
	}
}

void kern_to_float_q8_1_ref(const void *x, float *y, int64_t n)
{
	const struct block_q8_1 *b = x;
	for (int64_t i = 0; i < n / QK8_1; i++, y += QK8_1) {
		float d = fp16(b[i].d);
		for (int j = 0; j < QK8_1; j++)
			y[j] = (float)b[i].qs[j] * d;
	}
}

/* The symmetric 4/5-bit quantizers: the value of largest magnitude maps to
 * code 0 (d = max / -2^(bits-1)); codes are truncated after adding the
 * offset plus one half, clamped to the top code. */
void kern_from_float_q4_0_ref(const float *x, void *y, int64_t n)
{
	struct block_q4_0 *b = y;
	for (int64_t i = 0; i < n / QK4_0; i++, x += QK4_0) {
		float amax = 0, max = 0;
		for (int j = 0; j < QK4_0; j++)
			if (amax < fabsf(x[j])) {
				amax = fabsf(x[j]);
				max = x[j];
			}
		float d = max / -8, id = d != 0 ? 1.0f / d : 0.0f;
		b[i].d = dm_f32_to_f16(d);
		for (int j = 0; j < QK4_0 / 2; j++) {
			int lo = imin(15, trunc_int(x[j] * id + 8.5f));
			int hi = imin(15, trunc_int(x[j + 16] * id + 8.5f));
			b[i].qs[j] = (uint8_t)((unsigned)lo | (unsigned)hi << 4);
		}
	}
}

void kern_from_float_q5_0_ref(const float *x, void *y, int64_t n)
{
	struct block_q5_0 *b = y;
	for (int64_t i = 0; i < n / QK5_0; i++, x += QK5_0) {
		float amax = 0, max = 0;
		uint32_t qh = 0;
		for (int j = 0; j < QK5_0; j++)
			if (amax < fabsf(x[j])) {
				amax = fabsf(x[j]);
				max = x[j];
			}
		float d = max / -16, id = d != 0 ? 1.0f / d : 0.0f;
		b[i].d = dm_f32_to_f16(d);
		for (int j = 0; j < QK5_0 / 2; j++) {
			int lo = imin(31, (int)(x[j] * id + 16.5f));
			int hi = imin(31, (int)(x[j + 16] * id + 16.5f));
			b[i].qs[j] = (uint8_t)((lo & 0xF) | (hi & 0xF) << 4);
			qh |= (uint32_t)(lo >> 4) << j;
			qh |= (uint32_t)(hi >> 4) << (j + 16);
		}
		for (int k = 0; k < 4; k++)
			b[i].qh[k] = (uint8_t)(qh >> 8 * k);
	}
}

/* The asymmetric quantizers: m = min, d = (max - min) / top code. */
static void minmax(const float *x, int n, float *mn, float *mx)
{
	float lo = FLT_MAX, hi = -FLT_MAX;
	for (int j = 0; j < n; j++) {
		if (x[j] < lo)
			lo = x[j];
		if (x[j] > hi)
			hi = x[j];
	}
	*mn = lo;
	*mx = hi;
}

void kern_from_float_q4_1_ref(const float *x, void *y, int64_t n)
{
	struct block_q4_1 *b = y;
	for (int64_t i = 0; i < n / QK4_1; i++, x += QK4_1) {
		float mn, mx;
		minmax(x, QK4_1, &mn, &mx);
		float d = (mx - mn) / 15, id = d != 0 ? 1.0f / d : 0.0f;
		b[i].d = dm_f32_to_f16(d);
		b[i].m = dm_f32_to_f16(mn);
		for (int j = 0; j < QK4_1 / 2; j++) {
			int lo = imin(15, (int)((x[j] - mn) * id + 0.5f));
			int hi = imin(15, (int)((x[j + 16] - mn) * id + 0.5f));
			b[i].qs[j] = (uint8_t)(lo | hi << 4);
		}
	}
}

void kern_from_float_q5_1_ref(const float *x, void *y, int64_t n)
{
	struct block_q5_1 *b = y;
	for (int64_t i = 0; i < n / QK5_1; i++, x += QK5_1) {
		float mn, mx;
		uint32_t qh = 0;
		minmax(x, QK5_1, &mn, &mx);
		float d = (mx - mn) / 31, id = d != 0 ? 1.0f / d : 0.0f;
		b[i].d = dm_f32_to_f16(d);
		b[i].m = dm_f32_to_f16(mn);
		for (int j = 0; j < QK5_1 / 2; j++) {
			/* no clamp: (x - min) / d <= 31 up to rounding */
			int lo = (uint8_t)((x[j] - mn) * id + 0.5f);
			int hi = (uint8_t)((x[j + 16] - mn) * id + 0.5f);
			b[i].qs[j] = (uint8_t)((lo & 0xF) | (hi & 0xF) << 4);
			qh |= (uint32_t)((lo >> 4) & 1) << j;
			qh |= (uint32_t)((hi >> 4) & 1) << (j + 16);
		}
		for (int k = 0; k < 4; k++)
			b[i].qh[k] = (uint8_t)(qh >> 8 * k);
	}
}

/* Q8_0 / Q8_1: d = amax / 127, codes roundf(x / d) (half away from zero). */
static float q8_block(const float *x, int8_t *qs)
{
	float amax = 0;
	for (int j = 0; j < 32; j++)
		amax = fmaxf(amax, fabsf(x[j]));
	float d = amax / 127, id = d != 0 ? 1.0f / d : 0.0f;
	for (int j = 0; j < 32; j++)
		qs[j] = (int8_t)trunc_int(roundf(x[j] * id)); /* the low byte, as on x86-64 */
	return d;
}

void kern_from_float_q8_0_ref(const float *x, void *y, int64_t n)
{
	struct block_q8_0 *b = y;
	for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0)
		b[i].d = dm_f32_to_f16(q8_block(x, b[i].qs));
}

void kern_from_float_q8_1_ref(const float *x, void *y, int64_t n)
{
	struct block_q8_1 *b = y;
	for (int64_t i = 0; i < n / QK8_1; i++, x += QK8_1) {
		float d = q8_block(x, b[i].qs);
		int sum = 0;
		for (int j = 0; j < QK8_1; j++)
			sum += b[i].qs[j];
		b[i].d = dm_f32_to_f16(d);
		b[i].s = dm_f32_to_f16((float)sum * d);
	}
}

/* Dots of the 32-element types: per block an exact integer sum, scaled by
 * the product of the two block scales. */
float kern_dot_q4_0_ref(int64_t n, const void *w, const void *a)
{
	const struct block_q4_0 *x = w;
	const struct block_q8_0 *y = a;
	float s = 0;
	for (int64_t i = 0; i < n / QK4_0; i++) {
		int sum = 0;
		for (int j = 0; j < 32; j++)
			sum += (q4_code(x[i].qs, j) - 8) * y[i].qs[j];
		s += (float)sum * (fp16(x[i].d) * fp16(y[i].d));
	}
	return s;
}

float kern_dot_q5_0_ref(int64_t n, const void *w, const void *a)
{
	const struct block_q5_0 *x = w;
	const struct block_q8_0 *y = a;
	float s = 0;
	for (int64_t i = 0; i < n / QK5_0; i++) {
		int sum = 0;
		for (int j = 0; j < 32; j++)
			sum += (q5_code(x[i].qs, x[i].qh, j) - 16) * y[i].qs[j];
		s += (float)sum * (fp16(x[i].d) * fp16(y[i].d));
	}
	return s;
}

float kern_dot_q8_0_ref(int64_t n, const void *w, const void *a)
{
	const struct block_q8_0 *x = w;
	const struct block_q8_0 *y = a;
	float s = 0;
	for (int64_t i = 0; i < n / QK8_0; i++) {
		int sum = 0;
		for (int j = 0; j < 32; j++)
			sum += x[i].qs[j] * y[i].qs[j];
		s += (float)sum * (fp16(x[i].d) * fp16(y[i].d));
	}
	return s;
}

/* Σ (d·q + m)·(da·a) = d·da·Σ q·a + m·(da·Σ a), and da·Σ a is the Q8_1 s. */
float kern_dot_q4_1_ref(int64_t n, const void *w, const void *a)
{
	const struct block_q4_1 *x = w;
	const struct block_q8_1 *y = a;
	float s = 0;
	for (int64_t i = 0; i < n / QK4_1; i++) {
		int sum = 0;
		for (int j = 0; j < 32; j++)
			sum += q4_code(x[i].qs, j) * y[i].qs[j];
		s += (float)sum * (fp16(x[i].d) * fp16(y[i].d)) + fp16(x[i].m) * fp16(y[i].s);
	}
	return s;
}

float kern_dot_q5_1_ref(int64_t n, const void *w, const void *a)
{
	const struct block_q5_1 *x = w;
	const struct block_q8_1 *y = a;
	float s = 0;
	for (int64_t i = 0; i < n / QK5_1; i++) {
		int sum = 0;
		for (int j = 0; j < 32; j++)
			sum += q5_code(x[i].qs, x[i].qh, j) * y[i].qs[j];
		s += (float)sum * (fp16(x[i].d) * fp16(y[i].d)) + fp16(x[i].m) * fp16(y[i].s);
	}
	return s;
}

/* ======================= K-quants: element codes ======================= */

/* Unpacks a Q2_K block's 256 codes (0..3) into q. */
static void q2k_codes(const struct block_q2_K *b, int8_t q[QK_K])
{
	for (int h = 0; h < 2; h++)
		for (int s = 0; s < 4; s++)
			for (int l = 0; l < 32; l++)
				q[128 * h + 32 * s + l] = (int8_t)((b->qs[32 * h + l] >> 2 * s) & 3);
}

/* Unpacks a Q3_K block's 256 codes (-4..3). */
static void q3k_codes(const struct block_q3_K *b, int8_t q[QK_K])
{
	for (int h = 0; h < 2; h++)
		for (int s = 0; s < 4; s++)
			for (int l = 0; l < 32; l++) {
				int lo = (b->qs[32 * h + l] >> 2 * s) & 3;
				int hb = (b->hmask[l] >> (4 * h + s)) & 1;
				q[128 * h + 32 * s + l] = (int8_t)(lo - (hb ? 0 : 4));
			}
}

/* Unpacks a Q4_K (qh == NULL) or Q5_K block's codes (0..15 / 0..31). */
static void q45k_codes(const uint8_t *qs, const uint8_t *qh, int8_t q[QK_K])
{
	for (int c = 0; c < 4; c++)
		for (int l = 0; l < 32; l++) {
			int lo = qs[32 * c + l] & 0xF, hi = qs[32 * c + l] >> 4;
			if (qh) {
				lo |= ((qh[l] >> (2 * c)) & 1) << 4;
				hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
			}
			q[64 * c + l] = (int8_t)lo;
			q[64 * c + 32 + l] = (int8_t)hi;
		}
}

/* Unpacks a Q6_K block's codes (0..63, offset 32 not yet subtracted). */
static void q6k_codes(const struct block_q6_K *b, int8_t q[QK_K])
{
	for (int h = 0; h < 2; h++) {
		const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
		int8_t *o = q + 128 * h;
		for (int l = 0; l < 32; l++) {
			o[l] = (int8_t)((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4);
			o[l + 32] = (int8_t)((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4);
			o[l + 64] = (int8_t)((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4);
			o[l + 96] = (int8_t)((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4);
		}
	}
}

/* ======================= K-quants: dequantization ======================= */

void kern_to_float_q2_K_ref(const void *x, float *y, int64_t n)
{
	const struct block_q2_K *b = x;
	int8_t q[QK_K];
	for (int64_t i = 0; i < n / QK_K; i++, y += QK_K) {
		float d = fp16(b[i].d), mn = fp16(b[i].dmin);
		q2k_codes(&b[i], q);
		for (int j = 0; j < 16; j++) {
			float dl = d * (float)(b[i].scales[j] & 0xF);
			float ml = mn * (float)(b[i].scales[j] >> 4);
			for (int l = 0; l < 16; l++)
				y[16 * j + l] = dl * (float)q[16 * j + l] - ml;
		}
	}
}

void kern_to_float_q3_K_ref(const void *x, float *y, int64_t n)
{
	const struct block_q3_K *b = x;
	int8_t q[QK_K], sc[16];
	for (int64_t i = 0; i < n / QK_K; i++, y += QK_K) {
		float d = fp16(b[i].d);
		q3k_codes(&b[i], q);
		kern_k3_scales(b[i].scales, sc);
		for (int j = 0; j < 16; j++) {
			float dl = d * (float)sc[j];
			for (int l = 0; l < 16; l++)
				y[16 * j + l] = dl * (float)q[16 * j + l];
		}
	}
}

static void q45k_to_float(uint16_t d16, uint16_t dmin16, const uint8_t *scales,
			  const int8_t *q, float *y)
{
	float d = fp16(d16), mn = fp16(dmin16);
	for (int j = 0; j < 8; j++) {
		uint8_t sc, m;
		kern_k4_scale_min(j, scales, &sc, &m);
		float dl = d * (float)sc, ml = mn * (float)m;
		for (int l = 0; l < 32; l++)
			y[32 * j + l] = dl * (float)q[32 * j + l] - ml;
	}
}

void kern_to_float_q4_K_ref(const void *x, float *y, int64_t n)
{
	const struct block_q4_K *b = x;
	int8_t q[QK_K];
	for (int64_t i = 0; i < n / QK_K; i++, y += QK_K) {
		q45k_codes(b[i].qs, NULL, q);
		q45k_to_float(b[i].d, b[i].dmin, b[i].scales, q, y);
	}
}

void kern_to_float_q5_K_ref(const void *x, float *y, int64_t n)
{
	const struct block_q5_K *b = x;
	int8_t q[QK_K];
	for (int64_t i = 0; i < n / QK_K; i++, y += QK_K) {
		q45k_codes(b[i].qs, b[i].qh, q);
		q45k_to_float(b[i].d, b[i].dmin, b[i].scales, q, y);
	}
}

void kern_to_float_q6_K_ref(const void *x, float *y, int64_t n)
{
	const struct block_q6_K *b = x;
	int8_t q[QK_K];
	for (int64_t i = 0; i < n / QK_K; i++, y += QK_K) {
		float d = fp16(b[i].d);
		q6k_codes(&b[i], q);
		for (int e = 0; e < QK_K; e++)
			y[e] = d * (float)b[i].scales[e / 16] * (float)(q[e] - 32);
	}
}

void kern_to_float_q8_K_ref(const void *x, float *y, int64_t n)
{
	const struct block_q8_K *b = x;
	for (int64_t i = 0; i < n / QK_K; i++, y += QK_K)
		for (int j = 0; j < QK_K; j++)
			y[j] = b[i].d * (float)b[i].qs[j];
}

/* ======================= K-quants: scale searches ======================= */

/*
 * Symmetric codes in [-nmax, nmax) for n values with weights x² (ggml's
 * make_qx_quants with rmse_type 1): start from the scale that maps the
 * largest-magnitude value to -nmax, then try 18 nearby scales and keep the
 * one that maximises (Σ w·x·l)² / Σ w·l², the weighted least-squares fit.
 * Returns the scale; L gets codes + nmax.
 */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L)
{
	float max = 0, amax = 0;
	for (int i = 0; i < n; i++)
		if (fabsf(x[i]) > amax) {
			amax = fabsf(x[i]);
			max = x[i];
		}
	if (amax < GROUP_MAX_EPS) {
		memset(L, 0, (size_t)n);
		return 0;
	}
	float iscale = (float)-nmax / max;
	float sumlx = 0, suml2 = 0;
	for (int i = 0; i < n; i++) {
		int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
		L[i] = (int8_t)(l + nmax);
		float w = x[i] * x[i];
		sumlx += w * x[i] * (float)l;
		suml2 += w * (float)l * (float)l;
	}
	float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
	float best = scale * sumlx;
	for (int is = -9; is <= 9; is++) {
		if (is == 0)
			continue;
		iscale = -((float)nmax + 0.1f * (float)is) / max;
		sumlx = suml2 = 0;
		for (int i = 0; i < n; i++) {
			int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
			float w = x[i] * x[i];
			sumlx += w * x[i] * (float)l;
			suml2 += w * (float)l * (float)l;
		}
		if (suml2 > 0 && sumlx * sumlx > best * suml2) {
			for (int i = 0; i < n; i++) {
				int l = nearest_int(iscale * x[i]);
				L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, l)));
			}
			scale = sumlx / suml2;
			best = scale * sumlx;
		}
	}
	return scale;
}

/*
 * Q3_K's sub-block search (ggml's make_q3_quants with do_rmse): codes in
 * [-nmax, nmax) from the max-magnitude scale, then up to 5 passes of
 * coordinate descent moving single codes while the weighted fit improves.
 * Returns the scale; L gets codes + nmax.
 */
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L)
{
	float max = 0, amax = 0;
	for (int i = 0; i < n; i++)
		if (fabsf(x[i]) > amax) {
			amax = fabsf(x[i]);
			max = x[i];
		}
	if (amax < GROUP_MAX_EPS) {
		memset(L, 0, (size_t)n);
		return 0;
	}
	float iscale = (float)-nmax / max;
	float sumlx = 0, suml2 = 0;
	for (int i = 0; i < n; i++) {
		int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
		L[i] = (int8_t)l;
		float w = x[i] * x[i];
		sumlx += w * x[i] * (float)l;
		suml2 += w * (float)l * (float)l;
	}
	for (int itry = 0; itry < 5; itry++) {
		int n_changed = 0;
		for (int i = 0; i < n; i++) {
			float w = x[i] * x[i];
			float slx = sumlx - w * x[i] * (float)L[i];
			if (slx > 0) {
				float sl2 = suml2 - w * (float)L[i] * (float)L[i];
				int nl = imax(-nmax, imin(nmax - 1, nearest_int(x[i] * sl2 / slx)));
				if (nl != L[i]) {
					slx += w * x[i] * (float)nl;
					sl2 += w * (float)nl * (float)nl;
					if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
						L[i] = (int8_t)nl;
						sumlx = slx;
						suml2 = sl2;
						n_changed++;
					}
				}
			}
		}
		if (!n_changed)
			break;
	}
	for (int i = 0; i < n; i++)
		L[i] = (int8_t)(L[i] + nmax);
	return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/*
 * Asymmetric codes in [0, nmax] with a min (ggml's make_qkx2_quants):
 * x ≈ scale·l + min with min <= 0.  Starts from the min/max fit, then tries
 * nstep + 1 code assignments from scales (rmin + rdelta·is + nmax)/(max-min)
 * and for each solves the weighted least-squares scale and min, keeping the
 * assignment with the least weighted error (|e| if use_mad, else e²).
 * Returns the scale; *the_min gets -min (>= 0).
 */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights,
			      uint8_t *L, float *the_min, uint8_t *Laux, float rmin,
			      float rdelta, int nstep, bool use_mad)
{
	float min = x[0], max = x[0];
	float sum_w = weights[0], sum_x = sum_w * x[0];
	for (int i = 1; i < n; i++) {
		if (x[i] < min)
			min = x[i];
		if (x[i] > max)
			max = x[i];
		sum_w += weights[i];
		sum_x += weights[i] * x[i];
	}
	if (min > 0)
		min = 0;
	if (max == min) {
		memset(L, 0, (size_t)n);
		*the_min = -min;
		return 0;
	}
	float iscale = (float)nmax / (max - min);
	float scale = 1 / iscale;
	float best_error = 0;
	for (int i = 0; i < n; i++) {
		int l = nearest_int(iscale * (x[i] - min));
		L[i] = (uint8_t)imax(0, imin(nmax, l));
		float diff = scale * (float)L[i] + min - x[i];
		diff = use_mad ? fabsf(diff) : diff * diff;
		best_error += weights[i] * diff;
	}
	for (int is = 0; is <= nstep; is++) {
		iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
		float sum_l = 0, sum_l2 = 0, sum_xl = 0;
		for (int i = 0; i < n; i++) {
			int l = imax(0, imin(nmax, nearest_int(iscale * (x[i] - min))));
			Laux[i] = (uint8_t)l;
			float w = weights[i];
			sum_l += w * (float)l;
			sum_l2 += w * (float)l * (float)l;
			sum_xl += w * (float)l * x[i];
		}
		float D = sum_w * sum_l2 - sum_l * sum_l;
		if (D > 0) {
			float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
			float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
			if (this_min > 0) {
				this_min = 0;
				this_scale = sum_xl / sum_l2;
			}
			float cur_error = 0;
			for (int i = 0; i < n; i++) {
				float diff = this_scale * (float)Laux[i] + this_min - x[i];
				diff = use_mad ? fabsf(diff) : diff * diff;
				cur_error += weights[i] * diff;
			}
			if (cur_error < best_error) {
				memcpy(L, Laux, (size_t)n);
				best_error = cur_error;
				scale = this_scale;
				min = this_min;
			}
		}
	}
	*the_min = -min;
	return scale;
}

/* Packs codes 0..3 of 256 elements four to a byte (Q2_K and Q3_K low bits). */
static void pack_2bit(const uint8_t *L, uint8_t *qs)
{
	for (int h = 0; h < 2; h++)
		for (int l = 0; l < 32; l++) {
			const uint8_t *p = L + 128 * h + l;
			qs[32 * h + l] = (uint8_t)(p[0] | p[32] << 2 | p[64] << 4 | p[96] << 6);
		}
}

/* ======================= K-quants: reference quantizers ======================= */

void kern_from_float_q2_K_ref(const float *x, void *y, int64_t n)
{
	struct block_q2_K *b = y;
	uint8_t L[QK_K], Laux[16];
	float weights[16], mins[16], scales[16];
	const float q4scale = 15.f;

	for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
		float max_scale = 0, max_min = 0;
		for (int j = 0; j < 16; j++) {
			for (int l = 0; l < 16; l++)
				weights[l] = fabsf(x[16 * j + l]);
			scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j],
						     Laux, -0.5f, 0.1f, 15, true);
			if (scales[j] > max_scale)
				max_scale = scales[j];
			if (mins[j] > max_min)
				max_min = mins[j];
		}
		if (max_scale > 0) {
			float iscale = q4scale / max_scale;
			for (int j = 0; j < 16; j++)
				b[i].scales[j] = (uint8_t)nearest_int(iscale * scales[j]);
			b[i].d = dm_f32_to_f16(max_scale / q4scale);
		} else {
			memset(b[i].scales, 0, 16);
			b[i].d = dm_f32_to_f16(0.f);
		}
		if (max_min > 0) {
			float iscale = q4scale / max_min;
			for (int j = 0; j < 16; j++)
				b[i].scales[j] |= (uint8_t)(nearest_int(iscale * mins[j]) << 4);
			b[i].dmin = dm_f32_to_f16(max_min / q4scale);
		} else {
			b[i].dmin = dm_f32_to_f16(0.f);
		}
		/* re-derive the codes from the rounded scales */
		for (int j = 0; j < 16; j++) {
			float d = fp16(b[i].d) * (float)(b[i].scales[j] & 0xF);
			if (d == 0)
				continue;
			float dm = fp16(b[i].dmin) * (float)(b[i].scales[j] >> 4);
			for (int l = 0; l < 16; l++) {
				int q = nearest_int((x[16 * j + l] + dm) / d);
				L[16 * j + l] = (uint8_t)imax(0, imin(3, q));
			}
		}
		pack_2bit(L, b[i].qs);
	}
}

void kern_from_float_q3_K_ref(const float *x, void *y, int64_t n)
{
	struct block_q3_K *b = y;
	int8_t L[QK_K];
	float scales[16];

	for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
		float max_scale = 0, amax = 0;
		for (int j = 0; j < 16; j++) {
			scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
			if (fabsf(scales[j]) > amax) {
				amax = fabsf(scales[j]);
				max_scale = scales[j];
			}
		}
		memset(b[i].scales, 0, 12);
		if (max_scale != 0) {
			float iscale = -32.f / max_scale;
			for (int j = 0; j < 16; j++) {
				int l = (int8_t)nearest_int(iscale * scales[j]);
				l = imax(-32, imin(31, l)) + 32;
				if (j < 8)
					b[i].scales[j] = (uint8_t)(l & 0xF);
				else
					b[i].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
				b[i].scales[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
			}
			b[i].d = dm_f32_to_f16(1 / iscale);
		} else {
			b[i].d = dm_f32_to_f16(0.f);
		}
		int8_t sc[16];
		kern_k3_scales(b[i].scales, sc);
		for (int j = 0; j < 16; j++) {
			float d = fp16(b[i].d) * (float)sc[j];
			if (d == 0)
				continue;
			for (int l = 0; l < 16; l++) {
				int q = nearest_int(x[16 * j + l] / d);
				L[16 * j + l] = (int8_t)(imax(-4, imin(3, q)) + 4);
			}
		}
		/* high bit of element j goes to bit j / 32 of hmask[j % 32] */
		memset(b[i].hmask, 0, sizeof b[i].hmask);
		uint8_t U[QK_K];
		for (int j = 0; j < QK_K; j++) {
			int l = L[j];
			if (l > 3) {
				b[i].hmask[j % 32] |= (uint8_t)(1 << (j / 32));
				l -= 4;
			}
			U[j] = (uint8_t)l;
		}
		pack_2bit(U, b[i].qs);
	}
}

/* The second half of the Q4_K/Q5_K search: the 8 sub-block scales and
 * mins are themselves quantized to 6 bits against the block's largest
 * (scales12 must be zeroed by the caller). */
void kern_q45k_scales(const float scales[8], const float mins[8], uint8_t scales12[12],
		      uint16_t *d16, uint16_t *dmin16)
{
	float max_scale = 0, max_min = 0;

	for (int j = 0; j < 8; j++) {
		if (scales[j] > max_scale)
			max_scale = scales[j];
		if (mins[j] > max_min)
			max_min = mins[j];
	}
	float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
	float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
	for (int j = 0; j < 8; j++) {
		int ls = imin(63, (uint8_t)nearest_int(inv_scale * scales[j]));
		int lm = imin(63, (uint8_t)nearest_int(inv_min * mins[j]));
		if (j < 4) {
			scales12[j] = (uint8_t)ls;
			scales12[j + 4] = (uint8_t)lm;
		} else {
			scales12[j + 4] = (uint8_t)((ls & 0xF) | (lm & 0xF) << 4);
			scales12[j - 4] |= (uint8_t)((ls >> 4) << 6);
			scales12[j] |= (uint8_t)((lm >> 4) << 6);
		}
	}
	*d16 = dm_f32_to_f16(max_scale / 63.f);
	*dmin16 = dm_f32_to_f16(max_min / 63.f);
}

/* Shared by Q4_K (nmax 15) and Q5_K (nmax 31): per 32-element sub-block an
 * asymmetric search, then the scales and mins are themselves quantized to
 * 6 bits against the block's largest, and the codes re-derived. */
static void q45k_quantize(const float *x, int nmax, float rmin, int nstep, uint16_t *d16,
			  uint16_t *dmin16, uint8_t scales12[12], uint8_t L[QK_K])
{
	uint8_t Laux[32];
	float weights[32], mins[8], scales[8];

	for (int j = 0; j < 8; j++) {
		float sum_x2 = 0;
		for (int l = 0; l < 32; l++)
			sum_x2 += x[32 * j + l] * x[32 * j + l];
		float av_x = sqrtf(sum_x2 / 32);
		for (int l = 0; l < 32; l++)
			weights[l] = av_x + fabsf(x[32 * j + l]);
		scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
					     rmin, 0.1f, nstep, false);
	}
	kern_q45k_scales(scales, mins, scales12, d16, dmin16);
	for (int j = 0; j < 8; j++) {
		uint8_t sc, m;
		kern_k4_scale_min(j, scales12, &sc, &m);
		float d = fp16(*d16) * (float)sc;
		if (d == 0)
			continue;
		float dm = fp16(*dmin16) * (float)m;
		for (int l = 0; l < 32; l++) {
			int q = nearest_int((x[32 * j + l] + dm) / d);
			L[32 * j + l] = (uint8_t)imax(0, imin(nmax, q));
		}
	}
}

void kern_from_float_q4_K_ref(const float *x, void *y, int64_t n)
{
	struct block_q4_K *b = y;
	uint8_t L[QK_K];
	for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
		memset(b[i].scales, 0, sizeof b[i].scales);
		q45k_quantize(x, 15, -1.f, 20, &b[i].d, &b[i].dmin, b[i].scales, L);
		for (int c = 0; c < 4; c++)
			for (int l = 0; l < 32; l++)
				b[i].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | L[64 * c + 32 + l] << 4);
	}
}

void kern_from_float_q5_K_ref(const float *x, void *y, int64_t n)
{
	struct block_q5_K *b = y;
	uint8_t L[QK_K];
	for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
		memset(b[i].scales, 0, sizeof b[i].scales);
		q45k_quantize(x, 31, -0.5f, 15, &b[i].d, &b[i].dmin, b[i].scales, L);
		memset(b[i].qh, 0, sizeof b[i].qh);
		for (int c = 0; c < 4; c++)
			for (int l = 0; l < 32; l++) {
				int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
				b[i].qh[l] |= (uint8_t)((lo >> 4) << (2 * c) | (hi >> 4) << (2 * c + 1));
				b[i].qs[32 * c + l] = (uint8_t)((lo & 0xF) | (hi & 0xF) << 4);
			}
	}
}

void kern_from_float_q6_K_ref(const float *x, void *y, int64_t n)
{
	struct block_q6_K *b = y;
	int8_t L[QK_K];
	float scales[16];

	for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
		float max_scale = 0, max_abs = 0;
		for (int j = 0; j < 16; j++) {
			scales[j] = make_qx_quants(16, 32, x + 16 * j, L + 16 * j);
			if (fabsf(scales[j]) > max_abs) {
				max_abs = fabsf(scales[j]);
				max_scale = scales[j];
			}
		}
		if (max_abs < GROUP_MAX_EPS) {
			memset(&b[i], 0, sizeof b[i]);
			continue;
		}
		float iscale = -128.f / max_scale;
		b[i].d = dm_f32_to_f16(1 / iscale);
		for (int j = 0; j < 16; j++)
			b[i].scales[j] = (int8_t)imin(127, nearest_int(iscale * scales[j]));
		for (int j = 0; j < 16; j++) {
			float d = fp16(b[i].d) * (float)b[i].scales[j];
			if (d == 0)
				continue;
			for (int l = 0; l < 16; l++) {
				int q = nearest_int(x[16 * j + l] / d);
				L[16 * j + l] = (int8_t)(imax(-32, imin(31, q)) + 32);
			}
		}
		for (int h = 0; h < 2; h++) {
			uint8_t *ql = b[i].ql + 64 * h, *qh = b[i].qh + 32 * h;
			const int8_t *p = L + 128 * h;
			for (int l = 0; l < 32; l++) {
				ql[l] = (uint8_t)((p[l] & 0xF) | (p[l + 64] & 0xF) << 4);
				ql[l + 32] = (uint8_t)((p[l + 32] & 0xF) | (p[l + 96] & 0xF) << 4);
				qh[l] = (uint8_t)((p[l] >> 4) | (p[l + 32] >> 4) << 2 |
						  (p[l + 64] >> 4) << 4 | (p[l + 96] >> 4) << 6);
			}
		}
	}
}

/* Q8_K: d = max / -127 for the value of largest magnitude, codes rounded
 * half to even, bsums of each 16. */
void kern_from_float_q8_K_ref(const float *x, void *y, int64_t n)
{
	struct block_q8_K *b = y;
	for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
		float max = 0, amax = 0;
		for (int j = 0; j < QK_K; j++)
			if (fabsf(x[j]) > amax) {
				amax = fabsf(x[j]);
				max = x[j];
			}
		if (amax == 0) {
			memset(&b[i], 0, sizeof b[i]);
			continue;
		}
		float iscale = -127.f / max;
		for (int j = 0; j < QK_K; j++)
			b[i].qs[j] = (int8_t)imin(127, nearest_int(iscale * x[j]));
		for (int j = 0; j < 16; j++) {
			int s = 0;
			for (int l = 0; l < 16; l++)
				s += b[i].qs[16 * j + l];
			b[i].bsums[j] = (int16_t)s;
		}
		b[i].d = 1 / iscale;
	}
}

/* ======================= K-quants: dot products ======================= */

/* Σ over 16 (or 32) elements of code · activation. */
static inline int isum(const int8_t *q, const int8_t *a, int n)
{
	int s = 0;
	for (int l = 0; l < n; l++)
		s += q[l] * a[l];
	return s;
}

float kern_dot_q2_K_ref(int64_t n, const void *w, const void *a)
{
	const struct block_q2_K *x = w;
	const struct block_q8_K *y = a;
	int8_t q[QK_K];
	float s = 0;
	for (int64_t i = 0; i < n / QK_K; i++) {
		int sum = 0, summ = 0;
		q2k_codes(&x[i], q);
		for (int j = 0; j < 16; j++) {
			sum += (x[i].scales[j] & 0xF) * isum(q + 16 * j, y[i].qs + 16 * j, 16);
			summ += (x[i].scales[j] >> 4) * y[i].bsums[j];
		}
		s += (y[i].d * fp16(x[i].d)) * (float)sum - (y[i].d * fp16(x[i].dmin)) * (float)summ;
	}
	return s;
}

float kern_dot_q3_K_ref(int64_t n, const void *w, const void *a)
{
	const struct block_q3_K *x = w;
	const struct block_q8_K *y = a;
	int8_t q[QK_K], sc[16];
	float s = 0;
	for (int64_t i = 0; i < n / QK_K; i++) {
		int sum = 0;
		q3k_codes(&x[i], q);
		kern_k3_scales(x[i].scales, sc);
		for (int j = 0; j < 16; j++)
			sum += sc[j] * isum(q + 16 * j, y[i].qs + 16 * j, 16);
		s += (y[i].d * fp16(x[i].d)) * (float)sum;
	}
	return s;
}

static float q45k_dot(uint16_t d16, uint16_t dmin16, const uint8_t *scales, const int8_t *q,
		      const struct block_q8_K *y)
{
	int sum = 0, summ = 0;
	for (int j = 0; j < 8; j++) {
		uint8_t sc, m;
		kern_k4_scale_min(j, scales, &sc, &m);
		sum += sc * isum(q + 32 * j, y->qs + 32 * j, 32);
		summ += m * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
	}
	return (y->d * fp16(d16)) * (float)sum - (y->d * fp16(dmin16)) * (float)summ;
}

float kern_dot_q4_K_ref(int64_t n, const void *w, const void *a)
{
	const struct block_q4_K *x = w;
	const struct block_q8_K *y = a;
	int8_t q[QK_K];
	float s = 0;
	for (int64_t i = 0; i < n / QK_K; i++) {
		q45k_codes(x[i].qs, NULL, q);
		s += q45k_dot(x[i].d, x[i].dmin, x[i].scales, q, &y[i]);
	}
	return s;
}

float kern_dot_q5_K_ref(int64_t n, const void *w, const void *a)
{
	const struct block_q5_K *x = w;
	const struct block_q8_K *y = a;
	int8_t q[QK_K];
	float s = 0;
	for (int64_t i = 0; i < n / QK_K; i++) {
		q45k_codes(x[i].qs, x[i].qh, q);
		s += q45k_dot(x[i].d, x[i].dmin, x[i].scales, q, &y[i]);
	}
	return s;
}

float kern_dot_q6_K_ref(int64_t n, const void *w, const void *a)
{
	const struct block_q6_K *x = w;
	const struct block_q8_K *y = a;
	int8_t q[QK_K];
	float s = 0;
	for (int64_t i = 0; i < n / QK_K; i++) {
		int sum = 0;
		q6k_codes(&x[i], q);
		for (int e = 0; e < QK_K; e++)
			q[e] = (int8_t)(q[e] - 32);
		for (int j = 0; j < 16; j++)
			sum += x[i].scales[j] * isum(q + 16 * j, y[i].qs + 16 * j, 16);
		s += (y[i].d * fp16(x[i].d)) * (float)sum;
	}
	return s;
}

/*
 * kern/blocks — the byte layout of every quantized block we compute with.
 *
 * These layouts are a file format: GGUF files written by other tools store
 * tensors as arrays of exactly these blocks, so every struct here has the
 * same size, field order and bit packing as ggml's (checked against the
 * published ggml-common.h layouts and by the golden tests).  All multi-byte
 * fields are little-endian; f16 fields are IEEE half bits.  No padding: every
 * struct is made of byte arrays and 16/32-bit fields at naturally aligned
 * offsets, and a _Static_assert pins each size.
 *
 * Notation below: a block covers QK elements x[0..QK); "q" are the stored
 * integer codes, d / dmin are scales, value = d * (q - offset) or
 * d * q - m.
 */
#ifndef DM_KERN_BLOCKS_H
#define DM_KERN_BLOCKS_H

#include <stdint.h>

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K 256
#define K_SCALE_SIZE 12

/* Q4_0: x[j] = d * (q[j] - 8), q in 0..15.
 *   qs[j] low nibble = q[j], high nibble = q[j + 16]   (j = 0..15)  */
struct block_q4_0 {
	uint16_t d;
	uint8_t qs[QK4_0 / 2];
};
_Static_assert(sizeof(struct block_q4_0) == 18, "block_q4_0 size");

/* Q4_1: x[j] = d * q[j] + m, q in 0..15; nibbles as Q4_0. */
struct block_q4_1 {
	uint16_t d;
	uint16_t m;
	uint8_t qs[QK4_1 / 2];
};
_Static_assert(sizeof(struct block_q4_1) == 20, "block_q4_1 size");

/* Q5_0: x[j] = d * (q[j] - 16), q in 0..31.  Low 4 bits as Q4_0's nibbles;
 * bit 4 of q[j] is bit j of the little-endian u32 qh. */
struct block_q5_0 {
	uint16_t d;
	uint8_t qh[4];
	uint8_t qs[QK5_0 / 2];
};
_Static_assert(sizeof(struct block_q5_0) == 22, "block_q5_0 size");

/* Q5_1: x[j] = d * q[j] + m, q in 0..31; bits as Q5_0. */
struct block_q5_1 {
	uint16_t d;
	uint16_t m;
	uint8_t qh[4];
	uint8_t qs[QK5_1 / 2];
};
_Static_assert(sizeof(struct block_q5_1) == 24, "block_q5_1 size");

/* Q8_0: x[j] = d * qs[j].  Also the activation format for Q4_0/Q5_0/Q8_0. */
struct block_q8_0 {
	uint16_t d;
	int8_t qs[QK8_0];
};
_Static_assert(sizeof(struct block_q8_0) == 34, "block_q8_0 size");

/* Q8_1: as Q8_0 plus s = d * sum(qs) (f16).  Activation format for
 * Q4_1/Q5_1, whose min term needs the sum of the activations. */
struct block_q8_1 {
	uint16_t d;
	uint16_t s;
	int8_t qs[QK8_1];
};
_Static_assert(sizeof(struct block_q8_1) == 36, "block_q8_1 size");

/* Q2_K: 16 sub-blocks of 16.  scales[i]: low nibble = scale code,
 * high nibble = min code of sub-block i.  x = d*sc*q - dmin*m, q in 0..3.
 * Element e = 128*h + 32*s + l (h half, s shift 0..3, l 0..31) is
 * (qs[32*h + l] >> 2*s) & 3, in sub-block 8*h + 2*s + l/16. */
struct block_q2_K {
	uint8_t scales[QK_K / 16];
	uint8_t qs[QK_K / 4];
	uint16_t d;
	uint16_t dmin;
};
_Static_assert(sizeof(struct block_q2_K) == 84, "block_q2_K size");

/* Q3_K: 16 sub-blocks of 16, signed 6-bit scales (code - 32) packed in 12
 * bytes: low 4 bits of scale i in scales[i % 8] (nibble i / 8), high 2 bits
 * in scales[8 + i % 4] at bit 2*(i / 4).  q = low2 + 4*high - 4 in -4..3:
 * low 2 bits as Q2_K's qs, high bit of element e = 128*h + 32*s + l is bit
 * (4*h + s) of hmask[l].  x = d * (scale - 32) * q. */
struct block_q3_K {
	uint8_t hmask[QK_K / 8];
	uint8_t qs[QK_K / 4];
	uint8_t scales[12];
	uint16_t d;
};
_Static_assert(sizeof(struct block_q3_K) == 110, "block_q3_K size");

/* Q4_K: 8 sub-blocks of 32 with 6-bit scale sc and min m packed in 12 bytes:
 *   j < 4: sc = scales[j] & 63,  m = scales[j + 4] & 63
 *   j >= 4: sc = (scales[j + 4] & 15) | (scales[j - 4] >> 6) << 4
 *           m  = (scales[j + 4] >> 4) | (scales[j] >> 6) << 4
 * x = d*sc*q - dmin*m, q in 0..15.  qs[32*c + l]: low nibble = element
 * 64*c + l (sub-block 2c), high nibble = element 64*c + 32 + l (2c + 1). */
struct block_q4_K {
	uint16_t d;
	uint16_t dmin;
	uint8_t scales[K_SCALE_SIZE];
	uint8_t qs[QK_K / 2];
};
_Static_assert(sizeof(struct block_q4_K) == 144, "block_q4_K size");

/* Q5_K: Q4_K plus a fifth bit: element 64*c + l has bit 4 in bit 2c of
 * qh[l], element 64*c + 32 + l in bit 2c + 1.  q in 0..31. */
struct block_q5_K {
	uint16_t d;
	uint16_t dmin;
	uint8_t scales[K_SCALE_SIZE];
	uint8_t qh[QK_K / 8];
	uint8_t qs[QK_K / 2];
};
_Static_assert(sizeof(struct block_q5_K) == 176, "block_q5_K size");

/* Q6_K: 16 sub-blocks of 16 with int8 scales; x = d * scales[i] * (q - 32),
 * q in 0..63.  Per half h (128 elements), with ql = ql + 64h, qh = qh + 32h,
 * for l = 0..31:
 *   element 128h +  0 + l: ql[l] & 15      | ((qh[l] >> 0) & 3) << 4
 *   element 128h + 32 + l: ql[l + 32] & 15 | ((qh[l] >> 2) & 3) << 4
 *   element 128h + 64 + l: ql[l] >> 4      | ((qh[l] >> 4) & 3) << 4
 *   element 128h + 96 + l: ql[l + 32] >> 4 | ((qh[l] >> 6) & 3) << 4
 * and element e belongs to sub-block e / 16. */
struct block_q6_K {
	uint8_t ql[QK_K / 2];
	uint8_t qh[QK_K / 4];
	int8_t scales[QK_K / 16];
	uint16_t d;
};
_Static_assert(sizeof(struct block_q6_K) == 210, "block_q6_K size");

/* Q8_K: activation format for the K-quants.  x = d * qs (d is f32);
 * bsums[i] = sum of qs[16i .. 16i + 15]. */
struct block_q8_K {
	float d;
	int8_t qs[QK_K];
	int16_t bsums[QK_K / 16];
};
_Static_assert(sizeof(struct block_q8_K) == 292, "block_q8_K size");

#endif

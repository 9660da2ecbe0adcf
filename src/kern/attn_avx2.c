/*
 * kern/attn_avx2 — kern_attn_run on AVX2 + FMA + F16C (the kernel is in
 * attn_x86.h): 8 score vectors per key block, the most that leave room in
 * 16 registers for the queries and a broadcast.  Only called after
 * kern_isa_supported(AVX2).
 */
#include "kern/kern_impl.h"

#if defined(__x86_64__)
#define SFX(name) name##_avx2
#define ATTN_NV 8
#define SOFTCAP(y, x, c, n) kern_softcap_avx2(y, x, c, n)

#include "kern/attn_x86.h"
#endif

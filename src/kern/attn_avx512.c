/*
 * kern/attn_avx512 — kern_attn_run compiled for AVX-512 (the kernel is in
 * attn_x86.h, on 256-bit vectors): 32 registers hold 16 score vectors per
 * key block, and one-float key broadcasts (one key per lane group) fold
 * into the multiply-adds.  Only called after kern_isa_supported(AVX512).
 */
#include "kern/kern_impl.h"

#if defined(__x86_64__)
#define SFX(name) name##_avx512
#define ATTN_NV 16
#define SOFTCAP(y, x, c, n) kern_softcap_avx512(y, x, c, n)

#include "kern/attn_x86.h"
#endif

/*
 * gguf/types — storage facts of every tensor type GGUF files use today, and
 * of the metadata value types.  Numbers are the format's: block size in
 * elements and bytes per block, as ggml defines its block structs.  Types
 * whose support was removed from the format (Q4_2, Q4_3, the repacked
 * Q4_0_4_4/4_8/8_8 and IQ4_NL_4_4/4_8/8_8) are unknown here on purpose.
 */
#include "gguf/gguf.h"

#include <ctype.h>
#include <string.h>

#define QK_K 256

static const struct gguf_type_info type_table[GGUF_TYPE_COUNT] = {
	/*                        name       block  bytes  quantized */
	[GGUF_TYPE_F32] =     { "F32",     1,     4,     false },
	[GGUF_TYPE_F16] =     { "F16",     1,     2,     false },
	[GGUF_TYPE_Q4_0] =    { "Q4_0",    32,    18,    true },  /* f16 d; 16 B nibbles */
	[GGUF_TYPE_Q4_1] =    { "Q4_1",    32,    20,    true },  /* f16 d, m; 16 B */
	[GGUF_TYPE_Q5_0] =    { "Q5_0",    32,    22,    true },  /* f16 d; 4 B qh; 16 B */
	[GGUF_TYPE_Q5_1] =    { "Q5_1",    32,    24,    true },  /* f16 d, m; 4 B qh; 16 B */
	[GGUF_TYPE_Q8_0] =    { "Q8_0",    32,    34,    true },  /* f16 d; 32 i8 */
	[GGUF_TYPE_Q8_1] =    { "Q8_1",    32,    36,    true },  /* f16 d, s; 32 i8 */
	[GGUF_TYPE_Q2_K] =    { "Q2_K",    QK_K,  84,    true },  /* 16 scales, 64 qs, f16 d, dmin */
	[GGUF_TYPE_Q3_K] =    { "Q3_K",    QK_K,  110,   true },  /* 32 hmask, 64 qs, 12 scales, f16 d */
	[GGUF_TYPE_Q4_K] =    { "Q4_K",    QK_K,  144,   true },  /* f16 d, dmin; 12 scales; 128 qs */
	[GGUF_TYPE_Q5_K] =    { "Q5_K",    QK_K,  176,   true },  /* f16 d, dmin; 12 scales; 32 qh; 128 qs */
	[GGUF_TYPE_Q6_K] =    { "Q6_K",    QK_K,  210,   true },  /* 128 ql, 64 qh, 16 scales, f16 d */
	[GGUF_TYPE_Q8_K] =    { "Q8_K",    QK_K,  292,   true },  /* f32 d; 256 i8; 16 i16 bsums */
	[GGUF_TYPE_IQ2_XXS] = { "IQ2_XXS", QK_K,  66,    true },  /* f16 d; 32 u16 */
	[GGUF_TYPE_IQ2_XS] =  { "IQ2_XS",  QK_K,  74,    true },  /* f16 d; 32 u16; 8 scales */
	[GGUF_TYPE_IQ3_XXS] = { "IQ3_XXS", QK_K,  98,    true },  /* f16 d; 96 B */
	[GGUF_TYPE_IQ1_S] =   { "IQ1_S",   QK_K,  50,    true },  /* f16 d; 32 qs; 8 u16 qh */
	[GGUF_TYPE_IQ4_NL] =  { "IQ4_NL",  32,    18,    true },  /* f16 d; 16 B */
	[GGUF_TYPE_IQ3_S] =   { "IQ3_S",   QK_K,  110,   true },  /* f16 d; 64 qs; 8 qh; 32 signs; 4 scales */
	[GGUF_TYPE_IQ2_S] =   { "IQ2_S",   QK_K,  82,    true },  /* f16 d; 64 qs; 8 qh; 8 scales */
	[GGUF_TYPE_IQ4_XS] =  { "IQ4_XS",  QK_K,  136,   true },  /* f16 d; u16 scales_h; 4 scales_l; 128 qs */
	[GGUF_TYPE_I8] =      { "I8",      1,     1,     false },
	[GGUF_TYPE_I16] =     { "I16",     1,     2,     false },
	[GGUF_TYPE_I32] =     { "I32",     1,     4,     false },
	[GGUF_TYPE_I64] =     { "I64",     1,     8,     false },
	[GGUF_TYPE_F64] =     { "F64",     1,     8,     false },
	[GGUF_TYPE_IQ1_M] =   { "IQ1_M",   QK_K,  56,    true },  /* 32 qs; 16 qh; 8 scales */
	[GGUF_TYPE_BF16] =    { "BF16",    1,     2,     false },
	[GGUF_TYPE_TQ1_0] =   { "TQ1_0",   QK_K,  54,    true },  /* 48 qs; 4 qh; f16 d */
	[GGUF_TYPE_TQ2_0] =   { "TQ2_0",   QK_K,  66,    true },  /* 64 qs; f16 d */
	[GGUF_TYPE_MXFP4] =   { "MXFP4",   32,    17,    true },  /* u8 e8m0 scale; 16 B */
};

const struct gguf_type_info *gguf_type_get(uint32_t type)
{
	if (type >= GGUF_TYPE_COUNT || !type_table[type].name)
		return NULL;
	return &type_table[type];
}

int gguf_type_from_name(const char *name)
{
	for (int t = 0; t < GGUF_TYPE_COUNT; t++) {
		const char *n = type_table[t].name;
		size_t i;
		if (!n)
			continue;
		for (i = 0; n[i] && name[i]; i++)
			if (toupper((unsigned char)name[i]) != n[i])
				break;
		if (!n[i] && !name[i])
			return t;
	}
	return -1;
}

int gguf_type_row_bytes(uint32_t type, int64_t n, uint64_t *out, struct dm_err *err)
{
	const struct gguf_type_info *ti = gguf_type_get(type);
	uint64_t blocks;

	if (!ti)
		return dm_err_set(err, DM_EFORMAT, "unknown tensor type %u", type);
	if (n < 0 || (uint64_t)n % ti->block_size != 0)
		return dm_err_set(err, DM_EFORMAT,
				  "row of %lld elements is not a multiple of %s's block size %u",
				  (long long)n, ti->name, ti->block_size);
	blocks = (uint64_t)n / ti->block_size;
	if (blocks > UINT64_MAX / ti->type_size)
		return dm_err_set(err, DM_ERANGE, "row byte size overflows");
	*out = blocks * ti->type_size;
	return 0;
}

static const struct {
	const char *name;
	size_t size;
} vtype_table[GGUF_VT_COUNT] = {
	[GGUF_VT_UINT8] = { "u8", 1 },     [GGUF_VT_INT8] = { "i8", 1 },
	[GGUF_VT_UINT16] = { "u16", 2 },   [GGUF_VT_INT16] = { "i16", 2 },
	[GGUF_VT_UINT32] = { "u32", 4 },   [GGUF_VT_INT32] = { "i32", 4 },
	[GGUF_VT_FLOAT32] = { "f32", 4 },  [GGUF_VT_BOOL] = { "bool", 1 },
	[GGUF_VT_STRING] = { "str", 0 },   [GGUF_VT_ARRAY] = { "arr", 0 },
	[GGUF_VT_UINT64] = { "u64", 8 },   [GGUF_VT_INT64] = { "i64", 8 },
	[GGUF_VT_FLOAT64] = { "f64", 8 },
};

const char *gguf_file_type_name(uint32_t ftype)
{
	/* general.file_type (llama_ftype) values */
	static const struct { uint32_t v; const char *n; } t[] = {
		{ 0, "F32" }, { 1, "F16" }, { 2, "Q4_0" }, { 3, "Q4_1" }, { 7, "Q8_0" }, { 8, "Q5_0" },
		{ 9, "Q5_1" }, { 10, "Q2_K" }, { 11, "Q3_K_S" }, { 12, "Q3_K_M" }, { 13, "Q3_K_L" },
		{ 14, "Q4_K_S" }, { 15, "Q4_K_M" }, { 16, "Q5_K_S" }, { 17, "Q5_K_M" }, { 18, "Q6_K" },
		{ 32, "BF16" },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (t[i].v == ftype)
			return t[i].n;
	return "unknown";
}

const char *gguf_vtype_name(uint32_t vtype)
{
	return vtype < GGUF_VT_COUNT ? vtype_table[vtype].name : "?";
}

size_t gguf_vtype_size(uint32_t vtype)
{
	return vtype < GGUF_VT_COUNT ? vtype_table[vtype].size : 0;
}

/*
 * tok/vocab — building a struct tok_vocab from GGUF metadata: token texts,
 * scores and types, the text -> id table, BPE merge ranks, the special-token
 * trie, byte fallback ids, decoded pieces, special ids and end-of-generation
 * ids.  Everything is copied out of the file and counted in v->bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "tok/tok_int.h"

#define KEY(k) "tokenizer.ggml." k

/* calloc that counts what it hands out. */
static void *vcalloc(struct tok_vocab *v, size_t n, size_t size)
{
	void *p;
	if (n == 0)
		n = 1;
	p = calloc(n, size);
	if (p)
		v->bytes += n * size;
	return p;
}

/* Smallest power of two >= 2n (at least 16). */
static uint32_t table_cap(size_t n)
{
	uint32_t cap = 16;
	while (cap < 2 * n)
		cap <<= 1;
	return cap;
}

int32_t tok_find(const struct tok_vocab *v, const char *s, size_t n)
{
	return tok_find_h(v, s, n, tok_hash(s, n));
}

int32_t tok_find_h(const struct tok_vocab *v, const char *s, size_t n, uint64_t hash)
{
	uint32_t h = (uint32_t)hash & v->slot_mask;
	for (;; h = (h + 1) & v->slot_mask) {
		int32_t id = v->slot[h];
		if (id < 0)
			return -1;
		if (v->off[id + 1] - v->off[id] == n && !memcmp(v->text + v->off[id], s, n))
			return id;
	}
}

static uint64_t merge_hash(const char *a, size_t na, const char *b, size_t nb)
{
	return tok_hash(a, na) * 0x9E3779B97F4A7C15ull ^ tok_hash(b, nb);
}

int32_t tok_merge_rank(const struct tok_vocab *v, const char *a, size_t na, const char *b, size_t nb)
{
	uint32_t h;
	if (!v->mslot)
		return -1;
	h = (uint32_t)merge_hash(a, na, b, nb) & v->mslot_mask;
	for (;; h = (h + 1) & v->mslot_mask) {
		int32_t r = v->mslot[h];
		const uint32_t *o;
		if (r < 0)
			return -1;
		o = v->moff + 2 * (size_t)r;
		if (o[1] - o[0] == na && o[2] - o[1] == nb && !memcmp(v->mtext + o[0], a, na) &&
		    !memcmp(v->mtext + o[1], b, nb))
			return r;
	}
}

/* Reads an optional bool key into *out (left alone when missing). */
static int opt_bool(const struct gguf_file *g, const char *key, bool *out, struct dm_err *err)
{
	int rc = gguf_get_bool(g, key, out, err);
	if (rc == DM_ENOTFOUND) {
		dm_err_clear(err);
		return 0;
	}
	return rc;
}

/* Reads an optional token id key: missing, negative or >= n keeps *id (as
 * llama.cpp does, which writes 0xFFFFFFFF for "none"). */
static int opt_id(const struct gguf_file *g, const char *key, int32_t n, int32_t *id,
		  struct dm_err *err)
{
	int64_t x;
	int rc = gguf_get_i64(g, key, &x, err);
	if (rc == DM_ENOTFOUND || rc == DM_ERANGE) {
		dm_err_clear(err);
		return 0;
	}
	if (rc)
		return rc;
	if (x >= 0 && x < n)
		*id = (int32_t)x;
	return 0;
}

static int load_tokens(struct tok_vocab *v, const struct gguf_file *g, struct dm_err *err)
{
	const struct gguf_value *arr, *sc = NULL, *ty = NULL;
	uint64_t total = 0;
	int rc;

	if ((rc = gguf_get_arr(g, KEY("tokens"), GGUF_VT_STRING, &arr, err)))
		return rc;
	if (arr->n == 0 || arr->n > INT32_MAX)
		return dm_err_set(err, DM_EFORMAT, "%s: %llu tokens", KEY("tokens"),
				  (unsigned long long)arr->n);
	v->n = (int32_t)arr->n;
	for (int32_t i = 0; i < v->n; i++) {
		struct gguf_str s;
		if ((rc = gguf_arr_str(arr, (uint64_t)i, &s, err)))
			return rc;
		total += s.len;
		if (total >= UINT32_MAX)
			return dm_err_set(err, DM_EFORMAT, "%s: token texts exceed 4 GiB", KEY("tokens"));
	}
	v->text = vcalloc(v, total + 1, 1);
	v->off = vcalloc(v, (size_t)v->n + 1, sizeof *v->off);
	v->score = vcalloc(v, (size_t)v->n, sizeof *v->score);
	v->attr = vcalloc(v, (size_t)v->n, sizeof *v->attr);
	if (!v->text || !v->off || !v->score || !v->attr)
		return dm_err_set(err, DM_ENOMEM, "out of memory for %d tokens", v->n);
	total = 0;
	for (int32_t i = 0; i < v->n; i++) {
		struct gguf_str s;
		gguf_arr_str(arr, (uint64_t)i, &s, NULL);
		v->off[i] = (uint32_t)total;
		memcpy(v->text + total, s.ptr, s.len);
		total += s.len;
		if (s.len > v->max_len)
			v->max_len = (uint32_t)s.len;
	}
	v->off[v->n] = (uint32_t)total;

	rc = gguf_get_arr(g, KEY("scores"), -1, &sc, err);
	if (rc && rc != DM_ENOTFOUND)
		return rc;
	if (!rc && sc->n != arr->n)
		return dm_err_set(err, DM_EFORMAT, "%s has %llu entries for %d tokens", KEY("scores"),
				  (unsigned long long)sc->n, v->n);
	rc = gguf_get_arr(g, KEY("token_type"), -1, &ty, err);
	if (rc && rc != DM_ENOTFOUND)
		return rc;
	if (!rc && ty->n != arr->n)
		return dm_err_set(err, DM_EFORMAT, "%s has %llu entries for %d tokens",
				  KEY("token_type"), (unsigned long long)ty->n, v->n);
	dm_err_clear(err);
	for (int32_t i = 0; i < v->n; i++) {
		double d = 0;
		int64_t t = 1;
		if (sc && (rc = gguf_arr_f64(sc, (uint64_t)i, &d, err)))
			return dm_err_prefix(err, "%s", KEY("scores"));
		if (ty && (rc = gguf_arr_i64(ty, (uint64_t)i, &t, err)))
			return dm_err_prefix(err, "%s", KEY("token_type"));
		v->score[i] = (float)d;
		switch (t) {
		case 1: v->attr[i] = TOK_ATTR_NORMAL; break;
		case 2: v->attr[i] = TOK_ATTR_UNKNOWN; break;
		case 3: v->attr[i] = TOK_ATTR_CONTROL; break;
		case 4: v->attr[i] = TOK_ATTR_USER_DEFINED; break;
		case 5: v->attr[i] = TOK_ATTR_UNUSED; break;
		case 6: v->attr[i] = TOK_ATTR_BYTE; break;
		default: v->attr[i] = 0; break;
		}
	}
	return 0;
}

static int build_token_table(struct tok_vocab *v, struct dm_err *err)
{
	v->slot_mask = table_cap((size_t)v->n) - 1;
	v->slot = vcalloc(v, (size_t)v->slot_mask + 1, sizeof *v->slot);
	if (!v->slot)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	memset(v->slot, 0xff, ((size_t)v->slot_mask + 1) * sizeof *v->slot);
	for (int32_t i = 0; i < v->n; i++) {
		size_t n = v->off[i + 1] - v->off[i];
		const char *s = v->text + v->off[i];
		uint32_t h;
		if (n == 0)
			continue; /* an empty token can never be matched */
		/* a duplicate text maps to its last id */
		for (h = (uint32_t)tok_hash(s, n) & v->slot_mask; v->slot[h] >= 0;
		     h = (h + 1) & v->slot_mask) {
			int32_t o = v->slot[h];
			if (v->off[o + 1] - v->off[o] == n && !memcmp(v->text + v->off[o], s, n))
				break;
		}
		v->slot[h] = i;
	}
	return 0;
}

/* Merges "a b": split at the first space after the first byte; the rank is
 * the index; a repeated pair keeps its first rank. */
static int load_merges(struct tok_vocab *v, const struct gguf_file *g, struct dm_err *err)
{
	const struct gguf_value *arr;
	uint64_t total = 0;
	int rc;

	if ((rc = gguf_get_arr(g, KEY("merges"), GGUF_VT_STRING, &arr, err)))
		return rc;
	if (arr->n > INT32_MAX / 2)
		return dm_err_set(err, DM_EFORMAT, "%s: %llu merges", KEY("merges"),
				  (unsigned long long)arr->n);
	for (uint64_t i = 0; i < arr->n; i++) {
		struct gguf_str s;
		if ((rc = gguf_arr_str(arr, i, &s, err)))
			return rc;
		total += s.len;
		if (total >= UINT32_MAX)
			return dm_err_set(err, DM_EFORMAT, "%s: merges exceed 4 GiB", KEY("merges"));
	}
	v->mtext = vcalloc(v, total + 1, 1);
	v->moff = vcalloc(v, 2 * arr->n + 1, sizeof *v->moff);
	v->mslot_mask = table_cap(arr->n) - 1;
	v->mslot = vcalloc(v, (size_t)v->mslot_mask + 1, sizeof *v->mslot);
	if (!v->mtext || !v->moff || !v->mslot)
		return dm_err_set(err, DM_ENOMEM, "out of memory for %llu merges",
				  (unsigned long long)arr->n);
	memset(v->mslot, 0xff, ((size_t)v->mslot_mask + 1) * sizeof *v->mslot);
	total = 0;
	v->n_merges = (int32_t)arr->n;
	for (int32_t r = 0; r < v->n_merges; r++) {
		struct gguf_str s;
		const char *sp = NULL;
		uint32_t *o = v->moff + 2 * (size_t)r;
		size_t na, nb;
		uint32_t h;

		gguf_arr_str(arr, (uint64_t)r, &s, NULL);
		if (s.len > 1)
			sp = memchr(s.ptr + 1, ' ', s.len - 1);
		o[0] = (uint32_t)total;
		if (!sp) { /* not a pair: an entry that can never match */
			o[1] = o[2] = (uint32_t)total;
			continue;
		}
		na = (size_t)(sp - s.ptr);
		nb = s.len - na - 1;
		memcpy(v->mtext + total, s.ptr, na);
		memcpy(v->mtext + total + na, sp + 1, nb);
		o[1] = (uint32_t)(total + na);
		o[2] = (uint32_t)(total + na + nb);
		total += na + nb;
		if (tok_merge_rank(v, v->mtext + o[0], na, v->mtext + o[1], nb) >= 0)
			continue;
		h = (uint32_t)merge_hash(v->mtext + o[0], na, v->mtext + o[1], nb) & v->mslot_mask;
		while (v->mslot[h] >= 0)
			h = (h + 1) & v->mslot_mask;
		v->mslot[h] = r;
	}
	return 0;
}

static bool text_is(const struct tok_vocab *v, int32_t id, const char *s)
{
	size_t n = strlen(s);
	return v->off[id + 1] - v->off[id] == n && !memcmp(v->text + v->off[id], s, n);
}

static int cmp_i32(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	return (x > y) - (x < y);
}

/* EOT/EOM by text when the file names none (forcing them to control, as
 * llama.cpp does), then the end-of-generation set. */
static int find_eog(struct tok_vocab *v, struct dm_err *err)
{
	static const char *const eot_texts[] = {
		"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
		"<|end_of_text|>", "<EOT>", "_<EOT>", "<\357\275\234end\342\226\201of\342\226\201sentence\357\275\234>",
		"<end_of_utterance>",
	};
	static const char *const eog_texts[] = {
		"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
		"<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>",
	};
	const size_t n_eot = sizeof eot_texts / sizeof eot_texts[0];
	const size_t n_eog = sizeof eog_texts / sizeof eog_texts[0];
	size_t n = 0;

	for (size_t k = 0; k < n_eot && v->eot < 0; k++) {
		int32_t id = tok_find(v, eot_texts[k], strlen(eot_texts[k]));
		if (id >= 0) {
			v->eot = id;
			v->attr[id] = TOK_ATTR_CONTROL;
		}
	}
	if (v->eom < 0) {
		int32_t id = tok_find(v, "<|eom_id|>", 10);
		if (id >= 0) {
			v->eom = id;
			v->attr[id] = TOK_ATTR_CONTROL;
		}
	}
	v->eog = vcalloc(v, n_eog + 3, sizeof *v->eog);
	if (!v->eog)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	for (size_t k = 0; k < n_eog; k++) {
		int32_t id = tok_find(v, eog_texts[k], strlen(eog_texts[k]));
		if (id >= 0) {
			v->eog[n++] = id;
			v->attr[id] = TOK_ATTR_CONTROL;
		}
	}
	if (v->eos >= 0)
		v->eog[n++] = v->eos;
	if (v->eot >= 0)
		v->eog[n++] = v->eot;
	if (v->eom >= 0)
		v->eog[n++] = v->eom;
	qsort(v->eog, n, sizeof *v->eog, cmp_i32);
	v->n_eog = 0;
	for (size_t k = 0; k < n; k++)
		if (!v->n_eog || v->eog[v->n_eog - 1] != v->eog[k])
			v->eog[v->n_eog++] = v->eog[k];
	return 0;
}

/* Phi-3 files: special tokens eat the whitespace on their right, except
 * <unk>, <s> and <|endoftext|> (llama.cpp keys this on general.name). */
static void set_strip_attrs(struct tok_vocab *v, const struct gguf_file *g)
{
	struct gguf_str name;
	char low[128];
	size_t n;

	if (gguf_get_str(g, "general.name", &name, NULL))
		return;
	n = name.len < sizeof low - 1 ? name.len : sizeof low - 1;
	for (size_t i = 0; i < n; i++) {
		char c = name.ptr[i];
		low[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	low[n] = 0;
	if (!strstr(low, "phi-3") && !strstr(low, "phi3"))
		return;
	for (int32_t i = 0; i < v->n; i++) {
		if (!(v->attr[i] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN)) &&
		    !text_is(v, i, "</s>"))
			continue;
		if (text_is(v, i, "<unk>") || text_is(v, i, "<s>") || text_is(v, i, "<|endoftext|>"))
			continue;
		v->attr[i] |= TOK_ATTR_RSTRIP;
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static int32_t *edge_slot(const struct tok_vocab *v, uint64_t key, bool *found)
{
	uint32_t h = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & v->edge_mask;
	for (;; h = (h + 1) & v->edge_mask) {
		if (v->edge_val[h] < 0) {
			*found = false;
			return &v->edge_val[h];
		}
		if (v->edge_key[h] == key) {
			*found = true;
			return &v->edge_val[h];
		}
	}
}

/* The child of node by byte c, or -1. */
static inline int32_t trie_next(const struct tok_vocab *v, int32_t node, uint8_t c)
{
	bool found;
	int32_t *p = edge_slot(v, (uint64_t)node << 8 | c, &found);
	return found ? *p : -1;
}

static int build_specials(struct tok_vocab *v, struct dm_err *err)
{
	size_t total = 1;

	uint64_t *keys;

	v->n_spec = 0;
	v->spec_id = vcalloc(v, (size_t)v->n, sizeof *v->spec_id);
	keys = calloc((size_t)v->n, sizeof *keys);
	if (!v->spec_id || !keys) {
		free(keys);
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	}
	/* rank order: longer text first, then lower id; sorted as keys
	 * (UINT32_MAX - length) << 32 | id */
	for (int32_t i = 0; i < v->n; i++)
		if ((v->attr[i] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN)) &&
		    v->off[i + 1] > v->off[i]) {
			uint32_t len = v->off[i + 1] - v->off[i];
			keys[v->n_spec++] = (uint64_t)(UINT32_MAX - len) << 32 | (uint32_t)i;
			total += len;
		}
	qsort(keys, (size_t)v->n_spec, sizeof *keys, cmp_u64);
	for (int32_t r = 0; r < v->n_spec; r++)
		v->spec_id[r] = (int32_t)(keys[r] & 0xffffffffu);
	free(keys);

	v->edge_mask = table_cap(total) - 1;
	v->edge_key = vcalloc(v, (size_t)v->edge_mask + 1, sizeof *v->edge_key);
	v->edge_val = vcalloc(v, (size_t)v->edge_mask + 1, sizeof *v->edge_val);
	v->term_any = vcalloc(v, total, sizeof *v->term_any);
	v->term_user = vcalloc(v, total, sizeof *v->term_user);
	if (!v->edge_key || !v->edge_val || !v->term_any || !v->term_user)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	memset(v->edge_val, 0xff, ((size_t)v->edge_mask + 1) * sizeof *v->edge_val);
	memset(v->term_any, 0xff, total * sizeof *v->term_any);
	memset(v->term_user, 0xff, total * sizeof *v->term_user);
	v->n_nodes = 1;
	for (int32_t r = 0; r < v->n_spec; r++) {
		int32_t id = v->spec_id[r], node = 0;
		const uint8_t *s = (const uint8_t *)v->text + v->off[id];
		size_t n = v->off[id + 1] - v->off[id];
		v->spec_first[s[0]] = 1;
		for (size_t k = 0; k < n; k++) {
			bool found;
			int32_t *p = edge_slot(v, (uint64_t)node << 8 | s[k], &found);
			if (!found) {
				v->edge_key[p - v->edge_val] = (uint64_t)node << 8 | s[k];
				*p = v->n_nodes++;
			}
			node = *p;
		}
		/* ranks ascend, so the first one to end here is the best */
		if (v->term_any[node] < 0)
			v->term_any[node] = r;
		if (v->term_user[node] < 0 && !(v->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN)))
			v->term_user[node] = r;
	}
	return 0;
}

int tok_special_walk(const struct tok_vocab *v, const uint8_t *s, size_t n, bool all,
		     int32_t *ranks, size_t cap)
{
	int32_t node = 0;
	size_t k = 0, m = 0;

	if (!n || !v->spec_first[s[0]])
		return 0;
	while (k < n && (node = trie_next(v, node, s[k])) >= 0) {
		int32_t r = all ? v->term_any[node] : v->term_user[node];
		k++;
		if (r >= 0 && m < cap)
			ranks[m++] = r;
	}
	return (int)m;
}

/* GPT-2's byte alphabet: printable bytes stand for themselves, the other 68
 * (controls, space, DEL, NBSP, soft hyphen...) are moved to U+0100.. in
 * byte order, so every byte is a visible character. */
static void build_byte_alphabet(struct tok_vocab *v)
{
	uint32_t next = 256;
	for (int b = 0; b < 256; b++) {
		uint32_t cp = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE
				      ? (uint32_t)b
				      : next++;
		v->b2u_len[b] = (uint8_t)dm_utf8_encode(cp, v->b2u[b]);
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The byte a "<0xNN>" text stands for, or -1. */
static int byte_token_value(const char *s, size_t n)
{
	if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>' || hexval(s[3]) < 0 || hexval(s[4]) < 0)
		return -1;
	return hexval(s[3]) * 16 + hexval(s[4]);
}

static void build_byte_fallback(struct tok_vocab *v)
{
	static const char hex[] = "0123456789ABCDEF";
	for (int b = 0; b < 256; b++) {
		char buf[6] = { '<', '0', 'x', hex[b >> 4], hex[b & 15], '>' };
		char one = (char)b;
		int32_t id = tok_find(v, buf, 6);
		if (id < 0)
			id = tok_find(v, &one, 1);
		v->byte_tok[b] = id >= 0 ? id : v->unk;
	}
}

/* Whether every U+2581 inside a token follows another U+2581 (see
 * tok_vocab.spm_split). */
static bool spm_can_split(const struct tok_vocab *v)
{
	for (int32_t i = 0; i < v->n; i++) {
		const char *s = v->text + v->off[i];
		size_t n = v->off[i + 1] - v->off[i];
		for (size_t k = 1; k + 3 <= n; k++)
			if (!memcmp(s + k, "\xe2\x96\x81", 3) &&
			    (k < 3 || memcmp(s + k - 3, "\xe2\x96\x81", 3)))
				return false;
	}
	return true;
}

/* What each token decodes to (see tok_piece).  Unused and untyped tokens
 * decode like normal ones (llama.cpp prints nothing for them, but the
 * encoder can produce them from plain text, and text must survive). */
static int build_pieces(struct tok_vocab *v, struct dm_err *err)
{
	int16_t u2b[256 + 68]; /* GPT-2 alphabet character -> byte, or -1 */
	size_t total = 0;

	memset(u2b, 0xff, sizeof u2b);
	for (int b = 0; b < 256; b++) {
		uint32_t cp;
		dm_utf8_decode(v->b2u[b], v->b2u_len[b], &cp);
		u2b[cp] = (int16_t)b;
	}
	v->piece = vcalloc(v, (size_t)v->off[v->n] + 1, 1); /* decoding never grows */
	v->poff = vcalloc(v, (size_t)v->n + 1, sizeof *v->poff);
	if (!v->piece || !v->poff)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	for (int32_t i = 0; i < v->n; i++) {
		const char *s = v->text + v->off[i];
		size_t n = v->off[i + 1] - v->off[i];
		uint8_t a = v->attr[i];
		int b;

		v->poff[i] = (uint32_t)total;
		if ((a & TOK_ATTR_BYTE) && (b = byte_token_value(s, n)) >= 0) {
			v->piece[total++] = (char)b;
		} else if (a & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN | TOK_ATTR_USER_DEFINED)) {
			memcpy(v->piece + total, s, n);
			total += n;
		} else if (v->kind != TOK_KIND_BPE) { /* SPM, WordPiece, Unigram */
			for (size_t k = 0; k < n;) {
				if (k + 3 <= n && !memcmp(s + k, "\xe2\x96\x81", 3)) {
					v->piece[total++] = ' ';
					k += 3;
				} else {
					v->piece[total++] = s[k++];
				}
			}
		} else {
			for (size_t k = 0; k < n;) {
				uint32_t cp;
				size_t len = dm_utf8_decode((const uint8_t *)s + k, n - k, &cp);
				int byte = len && cp < 256 + 68 ? u2b[cp] : -1;
				if (byte >= 0) {
					v->piece[total++] = (char)byte;
					k += len;
				} else { /* not byte-level text: keep it as is */
					if (!len)
						len = 1;
					memcpy(v->piece + total, s + k, len);
					total += len;
					k += len;
				}
			}
		}
	}
	v->poff[v->n] = (uint32_t)total;
	return 0;
}

static int load_model(struct tok_vocab *v, const struct gguf_file *g, struct dm_err *err)
{
	struct gguf_str s;
	char pre[64] = "";
	int rc;

	if ((rc = gguf_get_str(g, KEY("model"), &s, err)))
		return rc;
	if (gguf_str_eq(s, "llama")) {
		v->kind = TOK_KIND_SPM;
	} else if (gguf_str_eq(s, "gpt2")) {
		v->kind = TOK_KIND_BPE;
	} else if (gguf_str_eq(s, "bert")) {
		v->kind = TOK_KIND_WPM;
	} else if (gguf_str_eq(s, "t5")) {
		v->kind = TOK_KIND_UGM;
	} else {
		int n = s.len > 40 ? 40 : (int)s.len;
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "tokenizer model '%.*s' is not supported (llama, gpt2, bert, t5)", n,
				  s.ptr);
	}
	if (v->kind == TOK_KIND_BPE) {
		rc = gguf_get_str(g, KEY("pre"), &s, err);
		if (rc && rc != DM_ENOTFOUND)
			return rc;
		if (!rc) {
			if (s.len >= sizeof pre || memchr(s.ptr, 0, s.len))
				return dm_err_set(err, DM_EUNSUPPORTED, "unknown pre-tokenizer '%.*s'",
						  (int)(s.len > 40 ? 40 : s.len), s.ptr);
			memcpy(pre, s.ptr, s.len);
			pre[s.len] = 0;
		}
		dm_err_clear(err);
		if (!(v->pre = tok_pre_find(pre)))
			return dm_err_set(err, DM_EUNSUPPORTED, "unknown pre-tokenizer '%s'", pre);
	}
	return 0;
}

static int load_flags(struct tok_vocab *v, const struct gguf_file *g, struct dm_err *err)
{
	static const struct {
		const char *key;
		size_t off;
	} ids[] = {
		{ KEY("bos_token_id"), offsetof(struct tok_vocab, bos) },
		{ KEY("eos_token_id"), offsetof(struct tok_vocab, eos) },
		{ KEY("eot_token_id"), offsetof(struct tok_vocab, eot) },
		{ KEY("eom_token_id"), offsetof(struct tok_vocab, eom) },
		{ KEY("unknown_token_id"), offsetof(struct tok_vocab, unk) },
		{ KEY("seperator_token_id"), offsetof(struct tok_vocab, sep) },
		{ KEY("padding_token_id"), offsetof(struct tok_vocab, pad) },
		{ KEY("mask_token_id"), offsetof(struct tok_vocab, mask) },
	};
	int rc;

	/* llama.cpp's defaults, for files that do not say */
	v->eot = v->eom = v->sep = v->pad = v->mask = -1;
	if (v->kind == TOK_KIND_SPM) {
		v->bos = 1;
		v->eos = 2;
		v->unk = 0;
		v->add_space_prefix = true;
		v->add_bos = true;
	} else if (v->kind == TOK_KIND_WPM) {
		v->bos = 101; /* [CLS] */
		v->eos = -1;
		v->unk = 100; /* [UNK] */
		v->sep = 102; /* [SEP] */
		v->pad = 0;
		v->mask = 103;
		v->add_bos = v->add_sep = true;
	} else if (v->kind == TOK_KIND_UGM) {
		v->bos = -1;
		v->eos = 1;
		v->unk = 2;
		v->pad = 0;
		v->add_eos = true;
	} else {
		v->bos = v->eos = 11;
		v->unk = -1;
		v->add_bos = v->pre->add_bos;
		v->ignore_merges = v->pre->ignore_merges;
	}
	if (v->bos >= v->n)
		v->bos = -1;
	if (v->eos >= v->n)
		v->eos = -1;
	if (v->unk >= v->n)
		v->unk = -1;
	if (v->sep >= v->n)
		v->sep = -1;
	if (v->pad >= v->n)
		v->pad = -1;
	if (v->mask >= v->n)
		v->mask = -1;
	/* BERT's [CLS] is its BOS; an explicit bos_token_id still wins */
	if (v->kind == TOK_KIND_WPM && (rc = opt_id(g, KEY("cls_token_id"), v->n, &v->bos, err)))
		return rc;
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
		if ((rc = opt_id(g, ids[i].key, v->n, (int32_t *)((char *)v + ids[i].off), err)))
			return rc;
	if ((rc = opt_bool(g, KEY("add_bos_token"), &v->add_bos, err)) ||
	    (rc = opt_bool(g, KEY("add_eos_token"), &v->add_eos, err)) ||
	    (rc = opt_bool(g, KEY("add_sep_token"), &v->add_sep, err)) ||
	    (rc = opt_bool(g, KEY("add_space_prefix"), &v->add_space_prefix, err)) ||
	    (rc = opt_bool(g, KEY("remove_extra_whitespaces"), &v->remove_extra_ws, err)))
		return rc;
	v->dec_strip = v->add_space_prefix || v->kind == TOK_KIND_WPM ||
		       (v->kind == TOK_KIND_UGM && v->remove_extra_ws);
	return 0;
}

/* Unigram: a copy of tokenizer.ggml.precompiled_charsmap (bytes), if any. */
static int load_charsmap(struct tok_vocab *v, const struct gguf_file *g, struct dm_err *err)
{
	const struct gguf_value *arr;
	int rc = gguf_get_arr(g, KEY("precompiled_charsmap"), -1, &arr, err);
	if (rc == DM_ENOTFOUND) {
		dm_err_clear(err);
		return 0;
	}
	if (rc)
		return rc;
	if (arr->elem_type != GGUF_VT_UINT8 && arr->elem_type != GGUF_VT_INT8)
		return dm_err_set(err, DM_EFORMAT, "%s: elements of type %u, not bytes",
				  KEY("precompiled_charsmap"), arr->elem_type);
	if (arr->n == 0)
		return 0;
	if (!(v->charsmap = vcalloc(v, arr->n, 1)))
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	memcpy(v->charsmap, arr->p, arr->n);
	v->n_charsmap = arr->n;
	return 0;
}

int tok_load(struct tok_vocab **out, const struct gguf_file *g, struct dm_err *err)
{
	struct tok_vocab *v;
	struct gguf_str tmpl;
	int rc;

	*out = NULL;
	v = calloc(1, sizeof *v);
	if (!v)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	v->bytes = sizeof *v;
	if ((rc = load_model(v, g, err)) || (rc = load_tokens(v, g, err)) ||
	    (rc = build_token_table(v, err)) || (rc = load_flags(v, g, err)))
		goto fail;
	if (v->kind == TOK_KIND_BPE && (rc = load_merges(v, g, err)))
		goto fail;
	if (v->kind == TOK_KIND_UGM && (rc = load_charsmap(v, g, err)))
		goto fail;
	if ((rc = find_eog(v, err)))
		goto fail;
	set_strip_attrs(v, g);
	if ((rc = build_specials(v, err)))
		goto fail;
	build_byte_fallback(v);
	build_byte_alphabet(v);
	if (v->kind == TOK_KIND_UGM && (rc = tok_ugm_init(v, err)))
		goto fail;
	v->spm_split = v->kind == TOK_KIND_SPM && spm_can_split(v);
	if ((rc = build_pieces(v, err)))
		goto fail;
	if (!gguf_get_str(g, "tokenizer.chat_template", &tmpl, NULL)) {
		if (!(v->chat_template = vcalloc(v, tmpl.len + 1, 1))) {
			rc = dm_err_set(err, DM_ENOMEM, "out of memory");
			goto fail;
		}
		memcpy(v->chat_template, tmpl.ptr, tmpl.len);
	}
	if (v->kind == TOK_KIND_BPE && (rc = tok_pre_compile(v, err)))
		goto fail;
	*out = v;
	return 0;
fail:
	tok_free(v);
	return rc;
}

void tok_free(struct tok_vocab *v)
{
	if (!v)
		return;
	for (int i = 0; i < v->n_re; i++)
		pcre2_code_free(v->re[i]);
	free(v->text);
	free(v->off);
	free(v->score);
	free(v->attr);
	free(v->piece);
	free(v->poff);
	free(v->slot);
	free(v->mtext);
	free(v->moff);
	free(v->mslot);
	free(v->spec_id);
	free(v->edge_key);
	free(v->edge_val);
	free(v->term_any);
	free(v->term_user);
	free(v->eog);
	free(v->chat_template);
	free(v->charsmap);
	free(v);
}

size_t tok_vocab_bytes(const struct tok_vocab *v) { return v ? v->bytes : 0; }
enum tok_kind tok_kind(const struct tok_vocab *v) { return v->kind; }
const char *tok_kind_name(const struct tok_vocab *v)
{
	switch (v->kind) {
	case TOK_KIND_SPM: return "llama";
	case TOK_KIND_BPE: return "gpt2";
	case TOK_KIND_WPM: return "bert";
	default: return "t5";
	}
}
const char *tok_pre_name(const struct tok_vocab *v) { return v->pre ? v->pre->name : ""; }
int32_t tok_n_tokens(const struct tok_vocab *v) { return v->n; }
int32_t tok_bos(const struct tok_vocab *v) { return v->bos; }
int32_t tok_eos(const struct tok_vocab *v) { return v->eos; }
int32_t tok_eot(const struct tok_vocab *v) { return v->eot; }
int32_t tok_eom(const struct tok_vocab *v) { return v->eom; }
int32_t tok_unk(const struct tok_vocab *v) { return v->unk; }
int32_t tok_pad(const struct tok_vocab *v) { return v->pad; }
int32_t tok_sep(const struct tok_vocab *v) { return v->sep; }
bool tok_add_bos(const struct tok_vocab *v) { return v->add_bos && v->bos >= 0; }
bool tok_add_eos(const struct tok_vocab *v) { return v->add_eos && v->eos >= 0; }
bool tok_add_sep(const struct tok_vocab *v) { return v->add_sep && v->sep >= 0; }
bool tok_add_space_prefix(const struct tok_vocab *v) { return v->add_space_prefix; }
const char *tok_chat_template(const struct tok_vocab *v) { return v->chat_template; }

unsigned tok_attr(const struct tok_vocab *v, int32_t id)
{
	return id >= 0 && id < v->n ? v->attr[id] : 0;
}

bool tok_is_eog(const struct tok_vocab *v, int32_t id)
{
	return id >= 0 && bsearch(&id, v->eog, v->n_eog, sizeof *v->eog, cmp_i32) != NULL;
}

int tok_text(const struct tok_vocab *v, int32_t id, const char **s, size_t *n, struct dm_err *err)
{
	if (id < 0 || id >= v->n)
		return dm_err_set(err, DM_ERANGE, "token id %d out of range (0..%d)", id, v->n - 1);
	*s = v->text + v->off[id];
	*n = v->off[id + 1] - v->off[id];
	return 0;
}

/*
 * tok/unicode — lookups in the generated tables (binary search) and the
 * lenient UTF-8 decoder; see tok_unicode.h.
 */
#include "tok/tok_unicode.h"

/* The range of t[0..n) holding cp, or NULL. */
static const struct tok_uni_range *find_range(const struct tok_uni_range *t, size_t n, uint32_t cp)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (cp < t[mid].first)
			hi = mid;
		else if (cp > t[mid].last)
			lo = mid + 1;
		else
			return &t[mid];
	}
	return NULL;
}

unsigned tok_uni_class(uint32_t cp)
{
	const struct tok_uni_range *r = find_range(tok_uni_classes, tok_uni_n_classes, cp);
	return r ? r->val : 0;
}

uint32_t tok_uni_nfd_base(uint32_t cp)
{
	const struct tok_uni_range *r;
	if (cp < 0xC0)
		return cp; /* nothing below U+00C0 decomposes */
	r = find_range(tok_uni_nfd, tok_uni_n_nfd, cp);
	return r ? r->val : cp;
}

uint32_t tok_uni_lower_of(uint32_t cp)
{
	size_t lo = 0, hi = tok_uni_n_lower;
	if (cp < 0x80)
		return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (cp < tok_uni_lower[mid].from)
			hi = mid;
		else if (cp > tok_uni_lower[mid].from)
			lo = mid + 1;
		else
			return tok_uni_lower[mid].to;
	}
	return cp;
}

bool tok_uni_is_space(uint32_t cp)
{
	switch (cp) {
	case 0x20: case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
	case 0x202F: case 0x205F: case 0x3000:
		return true;
	default:
		return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x2000 && cp <= 0x200A);
	}
}

size_t tok_utf8_decode_lenient(const uint8_t *s, size_t n, uint32_t *cp)
{
	size_t len;
	uint32_t c;
	if (!n)
		return 0;
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xE0) == 0xC0) {
		len = 2;
		c = s[0] & 0x1F;
	} else if ((s[0] & 0xF0) == 0xE0) {
		len = 3;
		c = s[0] & 0x0F;
	} else if ((s[0] & 0xF8) == 0xF0) {
		len = 4;
		c = s[0] & 0x07;
	} else {
		return 0; /* a continuation byte, or 0xF8..0xFF */
	}
	if (len > n)
		return 0;
	for (size_t k = 1; k < len; k++) {
		if ((s[k] & 0xC0) != 0x80)
			return 0;
		c = c << 6 | (s[k] & 0x3F);
	}
	*cp = c;
	return len;
}

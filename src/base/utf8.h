/*
 * base/utf8 — strict UTF-8 decoding (no overlongs, no surrogates, max
 * U+10FFFF), shared by the tokenizers, the CLI and the server.
 */
#ifndef DM_BASE_UTF8_H
#define DM_BASE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decodes one code point from s[0..n).  Returns its length in bytes (1..4)
 * and sets *cp, or returns 0 for an invalid or truncated sequence (then *cp
 * is set to U+FFFD).  n == 0 returns 0. */
size_t dm_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp);

/* Encodes cp (<= U+10FFFF, not a surrogate) into out[4]; returns the length,
 * or 0 for an invalid code point. */
size_t dm_utf8_encode(uint32_t cp, uint8_t out[4]);

/* Length of s[0..n) less an *incomplete* trailing sequence: a lead byte
 * (C0-F7) among the last 3 bytes followed only by continuation bytes, fewer
 * than its form needs, is held back with them.  Only the lead byte's form is
 * looked at, so such a tail is held back even when it can never become valid
 * (C0, C1, F5-F7, or a continuation byte out of range, as in E0 80); any
 * other invalid byte counts as a complete single byte.  Used by streaming
 * decoders to hold back a character split across tokens. */
size_t dm_utf8_complete_prefix(const uint8_t *s, size_t n);

/* 1 if s[0..n) is entirely valid UTF-8. */
int dm_utf8_valid(const uint8_t *s, size_t n);

/* Copies the NUL-terminated src into dst[cap] (cap >= 1) as valid UTF-8:
 * valid sequences as they are, every other byte as the four characters
 * "\xNN".  When dst is too small the copy stops at a character (or escape)
 * boundary, never inside one.  dst and src must not overlap.  Returns the
 * length written (excluding the NUL). */
size_t dm_utf8_sanitize(char *dst, size_t cap, const char *src);

#endif

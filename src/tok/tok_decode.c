/*
 * tok/decode — token ids to text: single pieces (precomputed at load), whole
 * sequences, and the streaming decoder that only ever hands out complete,
 * valid UTF-8.
 */
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "tok/tok_int.h"

int tok_piece(const struct tok_vocab *v, int32_t id, unsigned flags, const char **s, size_t *n,
	      struct dm_err *err)
{
	if (id < 0 || id >= v->n)
		return dm_err_set(err, DM_ERANGE, "token id %d out of range (0..%d)", id, v->n - 1);
	*s = v->piece + v->poff[id];
	*n = v->poff[id + 1] - v->poff[id];
	if ((v->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN)) && !(flags & TOK_DEC_SPECIAL))
		*n = 0;
	return 0;
}

/* The piece of id after the leading-space rule of TOK_DEC_STRIP_SPACE;
 * *strip_next carries the rule's state from token to token. */
static int piece_stripped(const struct tok_vocab *v, int32_t id, unsigned flags, bool *strip_next,
			  const char **s, size_t *n, struct dm_err *err)
{
	int rc = tok_piece(v, id, flags, s, n, err);
	unsigned a;
	if (rc || !(flags & TOK_DEC_STRIP_SPACE) || !v->dec_strip)
		return rc;
	a = v->attr[id];
	if (!(a & (TOK_ATTR_BYTE | TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN | TOK_ATTR_USER_DEFINED))) {
		if (*strip_next && *n && **s == ' ') {
			(*s)++;
			(*n)--;
		}
		*strip_next = false;
	} else if (a & TOK_ATTR_BYTE) {
		*strip_next = false;
	} else {
		/* the encoder puts a space in front of the text after a
		 * special token */
		*strip_next = true;
	}
	return 0;
}

int tok_decode(const struct tok_vocab *v, const int32_t *ids, size_t n, unsigned flags,
	       char **out, size_t *len, struct dm_err *err)
{
	bool strip = true;
	size_t total = 0;
	char *buf;
	int rc;

	*out = NULL;
	*len = 0;
	for (size_t i = 0; i < n; i++) {
		const char *s;
		size_t k;
		if ((rc = piece_stripped(v, ids[i], flags, &strip, &s, &k, err)))
			return dm_err_prefix(err, "token %zu", i);
		total += k; /* pieces live in memory: no overflow */
	}
	if (!(buf = malloc(total + 1)))
		return dm_err_set(err, DM_ENOMEM, "out of memory for %zu bytes of text", total);
	strip = true;
	total = 0;
	for (size_t i = 0; i < n; i++) {
		const char *s;
		size_t k;
		piece_stripped(v, ids[i], flags, &strip, &s, &k, NULL);
		memcpy(buf + total, s, k);
		total += k;
	}
	buf[total] = 0;
	*out = buf;
	*len = total;
	return 0;
}

void tok_decoder_init(struct tok_decoder *d, const struct tok_vocab *v, unsigned flags)
{
	memset(d, 0, sizeof *d);
	d->v = v;
	d->flags = flags;
	d->strip_next = true;
}

void tok_decoder_free(struct tok_decoder *d)
{
	if (!d)
		return;
	free(d->buf);
	d->buf = NULL;
	d->cap = 0;
}

static int reserve(struct tok_decoder *d, size_t need, struct dm_err *err)
{
	size_t cap = d->cap ? d->cap : 64;
	char *p;
	if (need <= d->cap)
		return 0;
	while (cap < need)
		cap *= 2;
	if (!(p = realloc(d->buf, cap)))
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	d->buf = p;
	d->cap = cap;
	return 0;
}

/* True if s[0..n) (1 <= n <= 3) is the start of a valid UTF-8 sequence
 * that needs more bytes. */
static bool utf8_partial(const uint8_t *s, size_t n)
{
	uint8_t c = s[0], lo = 0x80, hi = 0xBF;
	size_t need;
	if (c >= 0xC2 && c <= 0xDF)
		need = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		need = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		need = 4;
	else
		return false;
	if (n >= need)
		return false;
	if (c == 0xE0)
		lo = 0xA0; /* no overlongs */
	else if (c == 0xED)
		hi = 0x9F; /* no surrogates */
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F; /* <= U+10FFFF */
	if (n >= 2 && (s[1] < lo || s[1] > hi))
		return false;
	for (size_t i = 2; i < n; i++)
		if ((s[i] & 0xC0) != 0x80)
			return false;
	return true;
}

/* Writes s[0..n) to d->buf at *o as valid UTF-8: complete characters as
 * they are, each byte that cannot be part of one as U+FFFD, and an
 * incomplete character at the very end into d->hold. */
static void emit(struct tok_decoder *d, const uint8_t *s, size_t n, size_t *o)
{
	size_t i = 0;
	while (i < n) {
		uint32_t cp;
		size_t k = dm_utf8_decode(s + i, n - i, &cp);
		if (k) {
			memmove(d->buf + *o, s + i, k);
			*o += k;
			i += k;
		} else if (n - i < 4 && utf8_partial(s + i, n - i)) {
			memcpy(d->hold, s + i, n - i);
			d->n_hold = n - i;
			return;
		} else {
			memcpy(d->buf + *o, "\xef\xbf\xbd", 3);
			*o += 3;
			i++;
		}
	}
}

int tok_decoder_push(struct tok_decoder *d, int32_t id, const char **out, size_t *n,
		     struct dm_err *err)
{
	const char *s;
	size_t k, in, at, o = 0;
	int rc;

	*out = "";
	*n = 0;
	if ((rc = piece_stripped(d->v, id, d->flags, &d->strip_next, &s, &k, err)))
		return rc;
	/* The held bytes and the piece are copied behind the room the output
	 * can need (3 bytes per input byte), so writing the output from the
	 * start of the buffer never overtakes the input being read. */
	in = d->n_hold + k;
	at = 3 * in;
	if ((rc = reserve(d, at + in + 1, err)))
		return rc;
	memcpy(d->buf + at, d->hold, d->n_hold);
	memcpy(d->buf + at + d->n_hold, s, k);
	d->n_hold = 0;
	emit(d, (const uint8_t *)d->buf + at, in, &o);
	*out = d->buf;
	*n = o;
	return 0;
}

int tok_decoder_flush(struct tok_decoder *d, const char **out, size_t *n, struct dm_err *err)
{
	size_t o = 0;
	int rc;

	*out = "";
	*n = 0;
	if ((rc = reserve(d, 4, err)))
		return rc;
	if (d->n_hold) { /* a truncated character is one U+FFFD */
		memcpy(d->buf, "\xef\xbf\xbd", 3);
		o = 3;
	}
	d->n_hold = 0;
	d->strip_next = true;
	*out = d->buf;
	*n = o;
	return 0;
}

/*
 * tests/util/txml — a small XML well-formedness checker for the tests of
 * generated SVG and HTML.
 */
#ifndef DM_TESTS_TXML_H
#define DM_TESTS_TXML_H

#include <stddef.h>

/* One root element, properly nested and closed tags, quoted attributes,
 * the five XML entities or character references, no stray '<' or '&';
 * prolog (<?...?>, <!DOCTYPE ...>) and comments allowed.  0 when
 * well-formed, else -1 with the reason in why. */
int txml_check(const char *s, char *why, size_t cap);

#endif

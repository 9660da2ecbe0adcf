/*
 * base/file — see file.h.
 */
#include "base/file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *dm_read_all(const char *path, size_t *n)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	char *buf = NULL;
	size_t cap = 0, len = 0;

	if (!f)
		return NULL;
	for (;;) {
		if (len + 65536 + 1 > cap) {
			char *nb;
			cap = cap ? cap * 2 : 1 << 17;
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
		}
		size_t k = fread(buf + len, 1, 65536, f);
		len += k;
		if (k == 0)
			break;
	}
	if (buf && ferror(f)) {
		free(buf);
		buf = NULL;
	}
	if (f != stdin)
		fclose(f);
	if (buf) {
		buf[len] = '\0';
		*n = len;
	}
	return buf;
}

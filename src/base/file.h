/*
 * base/file — whole-file reads.
 */
#ifndef DM_BASE_FILE_H
#define DM_BASE_FILE_H

#include <stddef.h>

/* Reads a whole file, or stdin for "-", byte for byte (NUL-terminated
 * beyond *n); NULL with errno on failure.  The caller frees it. */
char *dm_read_all(const char *path, size_t *n);

#endif

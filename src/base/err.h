/*
 * base/err — the one error convention of dormant.
 *
 * Every fallible function returns 0 on success or a negative DM_E* code, and
 * writes a one-line human message into a caller-owned struct dm_err (which may
 * be NULL when the caller does not care).  Messages name the file, field or
 * byte offset that is wrong.  Library code never prints and never exits.
 */
#ifndef DM_BASE_ERR_H
#define DM_BASE_ERR_H

#include <stddef.h>

enum dm_code {
	DM_OK = 0,
	DM_EINVAL = -1,       /* bad argument or usage */
	DM_ENOMEM = -2,       /* allocation failed */
	DM_EIO = -3,          /* open/read/write/mmap failed */
	DM_EFORMAT = -4,      /* malformed file or data */
	DM_ENOTFOUND = -5,    /* key, tensor or model not present */
	DM_ETYPE = -6,        /* value present but of another type */
	DM_EUNSUPPORTED = -7, /* valid, but not something we implement */
	DM_ERANGE = -8,       /* value out of range */
	DM_EBUSY = -9,        /* queue full / resource busy */
	DM_ECANCELED = -10,   /* request cancelled */
	DM_ETIMEDOUT = -11,   /* waited too long */
	DM_ENOSPC = -12,      /* does not fit (context, a caller's buffer) */
	DM_ETOOBIG = -13,     /* can never fit the memory budget (permanent) */
	DM_ETOOLONG = -14,    /* a request's prompt is longer than the model's context */
};

#define DM_ERR_MSG_MAX 256

struct dm_err {
	int code;
	char msg[DM_ERR_MSG_MAX];
};

/* Sets err (if not NULL) to code and a printf-formatted message; returns code
 * so that `return dm_err_set(err, DM_EFORMAT, "...")` reads naturally.  The
 * message is always valid UTF-8 (bytes from files that are not become
 * "\xNN"; a long message is cut at a character boundary), so it can go into
 * JSON as it is.  err->msg may be one of the arguments. */
int dm_err_set(struct dm_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefixes an existing message: "prefix: old message" (valid UTF-8, as
 * above).  Returns err->code (DM_EINVAL when err is NULL). */
int dm_err_prefix(struct dm_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Clears err to DM_OK and an empty message. */
void dm_err_clear(struct dm_err *err);

/* A short constant name for a code ("format error", "out of memory", ...). */
const char *dm_code_str(int code);

/* Programmer-error check: aborts with file:line.  Never for data from files,
 * sockets or users. */
#define DM_CHECK(cond)                                                       \
	do {                                                                 \
		if (!(cond))                                                 \
			dm_check_fail(__FILE__, __LINE__, #cond);            \
	} while (0)

_Noreturn void dm_check_fail(const char *file, int line, const char *expr);

#endif

/* base/err — see err.h. */
#include "base/err.h"
#include "base/utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Messages often carry strings from files and requests (names, keys,
 * paths) and end up in JSON bodies, which must be valid UTF-8: format into a
 * larger buffer, then copy with invalid bytes escaped and any cut made at a
 * character boundary.  Formatting into a buffer of its own also makes
 * err->msg safe to pass as an argument. */
int dm_err_set(struct dm_err *err, int code, const char *fmt, ...)
{
	if (err) {
		char raw[DM_ERR_MSG_MAX * 2];
		va_list ap;
		err->code = code;
		va_start(ap, fmt);
		vsnprintf(raw, sizeof raw, fmt, ap);
		va_end(ap);
		dm_utf8_sanitize(err->msg, sizeof err->msg, raw);
	}
	return code;
}

int dm_err_prefix(struct dm_err *err, const char *fmt, ...)
{
	char raw[DM_ERR_MSG_MAX * 2];
	int k;
	va_list ap;

	if (!err)
		return DM_EINVAL;
	va_start(ap, fmt);
	k = vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	if (k >= 0 && (size_t)k + 2 < sizeof raw)
		snprintf(raw + k, sizeof raw - (size_t)k, ": %s", err->msg);
	dm_utf8_sanitize(err->msg, sizeof err->msg, raw);
	return err->code;
}

void dm_err_clear(struct dm_err *err)
{
	if (err) {
		err->code = DM_OK;
		err->msg[0] = '\0';
	}
}

const char *dm_code_str(int code)
{
	switch (code) {
	case DM_OK: return "ok";
	case DM_EINVAL: return "invalid argument";
	case DM_ENOMEM: return "out of memory";
	case DM_EIO: return "I/O error";
	case DM_EFORMAT: return "format error";
	case DM_ENOTFOUND: return "not found";
	case DM_ETYPE: return "wrong type";
	case DM_EUNSUPPORTED: return "unsupported";
	case DM_ERANGE: return "out of range";
	case DM_EBUSY: return "busy";
	case DM_ECANCELED: return "cancelled";
	case DM_ETIMEDOUT: return "timed out";
	case DM_ENOSPC: return "insufficient space";
	case DM_ETOOBIG: return "larger than the memory budget";
	case DM_ETOOLONG: return "prompt longer than the context";
	}
	return "unknown error";
}

void dm_check_fail(const char *file, int line, const char *expr)
{
	fprintf(stderr, "dormant: internal error at %s:%d: check failed: %s\n",
		file, line, expr);
	abort();
}

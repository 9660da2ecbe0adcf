/* base/err — see err.h. */
#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dm_err_set(struct dm_err *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		err->code = code;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
	}
	return code;
}

int dm_err_prefix(struct dm_err *err, const char *fmt, ...)
{
	char old[DM_ERR_MSG_MAX];
	size_t n;
	va_list ap;

	if (!err)
		return DM_EINVAL;
	memcpy(old, err->msg, sizeof old);
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	n = strlen(err->msg);
	if (n + 2 < sizeof err->msg) {
		memcpy(err->msg + n, ": ", 3);
		n += 2;
		memcpy(err->msg + n, old, strnlen(old, sizeof err->msg - n - 1));
		err->msg[n + strnlen(old, sizeof err->msg - n - 1)] = '\0';
	}
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

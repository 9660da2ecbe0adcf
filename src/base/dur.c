/* base/dur — the duration grammar (see dur.h). */
#include "base/dur.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DUR_MAX_MS 1e12 /* ~31 years: far beyond any keep-alive or timeout */

static const char *skip_ws(const char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	return s;
}

int dm_duration_parse(const char *s, int64_t *ms, struct dm_err *err)
{
	static const struct { const char *name; double ms; } units[] = {
		/* longest first where one is a prefix of another (ms/m, min/m) */
		{ "ns", 1e-6 }, { "us", 1e-3 }, { "ms", 1 }, { "min", 60000 },
		{ "s", 1000 },  { "m", 60000 }, { "h", 3600000 },
	};
	const char *p = skip_ws(s);
	double total = 0;
	bool neg = false;
	int terms = 0;

	if (!strncasecmp(p, "forever", 7) && !*skip_ws(p + 7)) {
		*ms = DM_DURATION_FOREVER;
		return 0;
	}
	if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	if (!*skip_ws(p))
		return dm_err_set(err, DM_EINVAL, "empty duration");
	while (*(p = skip_ws(p))) {
		char *end;
		double x, unit = 0;
		size_t k;
		if (!isdigit((unsigned char)*p) && *p != '.')
			return dm_err_set(err, DM_EINVAL, "'%s' is not a duration (e.g. 30s, 5m, 1h30m, forever)", s);
		x = strtod(p, &end);
		if (end == p || !isfinite(x))
			return dm_err_set(err, DM_EINVAL, "'%s' is not a duration (e.g. 30s, 5m, 1h30m, forever)", s);
		p = skip_ws(end);
		for (k = 0; k < sizeof units / sizeof units[0]; k++) {
			size_t n = strlen(units[k].name);
			if (!strncmp(p, units[k].name, n) && !isalpha((unsigned char)p[n])) {
				unit = units[k].ms;
				p += n;
				break;
			}
		}
		if (k == sizeof units / sizeof units[0]) {
			if (*p || terms)
				return dm_err_set(err, DM_EINVAL, "'%s' has an unknown unit (use ms, s, m or h)", s);
			unit = 1000; /* a bare number: seconds */
		}
		total += x * unit;
		terms++;
		if (total > DUR_MAX_MS)
			return dm_err_set(err, DM_ERANGE, "duration '%s' is out of range", s);
	}
	*ms = neg && total > 0 ? DM_DURATION_FOREVER : (int64_t)total;
	return 0;
}

/* base/version — the library's version (see include/dormant.h). */
#include "dormant.h"

const char *dormant_version(void)
{
	return DORMANT_VERSION;
}

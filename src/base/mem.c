/* base/mem — see mem.h. */
#include "base/mem.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "base/err.h"

void *dm_mem_map(size_t n)
{
	void *p;
	if (n == 0)
		return NULL;
	p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void dm_mem_unmap(void *p, size_t n)
{
	if (p && n)
		munmap(p, n);
}

int dm_mem_usage(struct dm_mem_usage *out)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");

	memset(out, 0, sizeof *out);
	if (!f)
		return DM_EIO;
	while (fgets(line, sizeof line, f)) {
		unsigned long long kb;
		if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
			out->rss = kb * 1024;
		else if (sscanf(line, "RssAnon: %llu kB", &kb) == 1)
			out->rss_anon = kb * 1024;
		else if (sscanf(line, "RssFile: %llu kB", &kb) == 1)
			out->rss_file = kb * 1024;
		else if (sscanf(line, "VmHWM: %llu kB", &kb) == 1)
			out->rss_peak = kb * 1024;
	}
	fclose(f);
	return 0;
}

/* base/mem — see mem.h. */
#include "base/mem.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"

void *dm_mem_map(size_t n)
{
	void *p;
	if (n == 0)
		return NULL;
	p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void *dm_mem_reserve(size_t n)
{
	void *p;
	if (n == 0)
		return NULL;
	p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void dm_mem_unmap(void *p, size_t n)
{
	if (p && n)
		munmap(p, n);
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14; older headers lack it */
#endif

void dm_mem_populate(void *p, size_t n)
{
	const size_t page = dm_mem_page_size();
	uintptr_t lo, hi;
	if (!p || !n)
		return;
	/* whole pages: from the one p is in to the one p + n − 1 is in */
	lo = (uintptr_t)p / page * page;
	hi = ((uintptr_t)p + n + page - 1) / page * page;
	if (madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE) == 0)
		return;
	/* older kernels: a read faults each page in (as a shared zero page
	 * for untouched anonymous memory: then a write of what is there) */
	for (uintptr_t a = lo > (uintptr_t)p ? lo : (uintptr_t)p; a < (uintptr_t)p + n; a += page) {
		volatile char *c = (volatile char *)a;
		*c = *c;
	}
}

size_t dm_mem_page_size(void)
{
	const long page = sysconf(_SC_PAGESIZE);
	return page > 0 ? (size_t)page : 4096;
}

void dm_mem_release(void *p, size_t n)
{
	/* MADV_DONTNEED on private anonymous memory frees the pages now (RSS
	 * drops at once, unlike MADV_FREE) and reads back zeros */
	if (p && n)
		madvise(p, n, MADV_DONTNEED);
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

int dm_file_cached(const char *path, uint64_t *bytes, uint64_t *size)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), np;
	unsigned char *vec;
	struct stat st;
	void *map;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*bytes = 0;
	if (fd < 0)
		return DM_EIO;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return DM_EIO;
	}
	*size = (uint64_t)st.st_size;
	if (st.st_size <= 0) {
		close(fd);
		return 0;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return DM_EIO;
	np = ((size_t)st.st_size + pg - 1) / pg;
	vec = malloc(np);
	if (vec && mincore(map, (size_t)st.st_size, vec) == 0)
		for (size_t i = 0; i < np; i++)
			*bytes += (vec[i] & 1) ? pg : 0;
	free(vec);
	munmap(map, (size_t)st.st_size);
	if (*bytes > *size)
		*bytes = *size;
	return 0;
}

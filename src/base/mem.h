/*
 * base/mem — big allocations that go back to the OS when freed, and
 * process memory figures from /proc.
 *
 * A loaded model's KV cache and scratch buffers are mapped anonymously
 * (never from the malloc heap) so that unmapping them returns every page at
 * once: the point of dormant is to give memory back, to the byte.
 */
#ifndef DM_BASE_MEM_H
#define DM_BASE_MEM_H

#include <stddef.h>
#include <stdint.h>

/* Zero-filled anonymous mapping of n bytes (n > 0), or NULL. */
void *dm_mem_map(size_t n);
/* The same for address space to grow into (a KV cache reserved for a
 * long context): MAP_NORESERVE, so that the kernel commits memory page by
 * page as it is written, not for the whole range at once.  Unmapped with
 * dm_mem_unmap. */
void *dm_mem_reserve(size_t n);
/* Unmaps what dm_mem_map or dm_mem_reserve returned; NULL is a no-op. */
void dm_mem_unmap(void *p, size_t n);
/* Makes every page of p[0..n) (from dm_mem_map) resident now, so later
 * use takes no page faults: MADV_POPULATE_WRITE where the kernel has it
 * (5.14+; the kernel zeroes each page once), else a write to each page.
 * Contents are unchanged (zero for memory never written). */
void dm_mem_populate(void *p, size_t n);
/* Gives the pages of p[0..n) (page-aligned, from dm_mem_map) back to the
 * OS at once; they read as zeros afterwards. */
void dm_mem_release(void *p, size_t n);
/* The page size. */
size_t dm_mem_page_size(void);

/* Process memory from /proc/self/status, in bytes (0 when unreadable). */
struct dm_mem_usage {
	uint64_t rss;      /* VmRSS */
	uint64_t rss_anon; /* RssAnon */
	uint64_t rss_file; /* RssFile */
	uint64_t rss_peak; /* VmHWM */
};
int dm_mem_usage(struct dm_mem_usage *out);

/* Bytes of the file at path that sit in the page cache now (mincore over a
 * fresh mapping) in *bytes (set to 0 first), its size in *size.  DM_EIO if
 * it cannot be opened, stat'ed or mapped; *size is left unset when it cannot
 * be opened or stat'ed.  When malloc or mincore fails it returns 0 with
 * *bytes = 0. */
int dm_file_cached(const char *path, uint64_t *bytes, uint64_t *size);

#endif

/*
 * base/gpu — GPU memory as the NVIDIA driver reports it, through NVML
 * loaded at run time with dlopen (libnvidia-ml.so.1).  No driver is not an
 * error: the query succeeds with zero devices and says why, so that a later
 * GPU backend can choose how many layers to offload from the free VRAM.
 */
#ifndef DM_BASE_GPU_H
#define DM_BASE_GPU_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define DM_GPU_MAX 16

struct dm_gpu {
	char name[96];
	uint64_t total, free, used; /* bytes */
};

struct dm_gpu_info {
	size_t n;                  /* devices found (0 when absent) */
	struct dm_gpu gpu[DM_GPU_MAX];
	char absent_reason[160];   /* why n == 0 */
};

/* Fills *out (at most DM_GPU_MAX devices).  Returns 0 also when no GPU or
 * driver is present, when the library lacks an entry point, and when
 * nvmlInit fails (each with n == 0 and absent_reason set); a device whose
 * handle or memory query fails is skipped.  Only a failed
 * nvmlDeviceGetCount is an error: DM_EIO. */
int dm_gpu_query(struct dm_gpu_info *out, struct dm_err *err);

#endif

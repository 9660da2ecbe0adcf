/* base/gpu — see gpu.h.  NVML's C API is declared here by hand (the few
 * entry points used, with the ABI the driver library exports), so no CUDA
 * headers or libraries are needed to build. */
#include "base/gpu.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

typedef int nvml_ret;   /* nvmlReturn_t: 0 = success */
typedef void *nvml_dev; /* nvmlDevice_t */
struct nvml_mem { unsigned long long total, free, used; };

int dm_gpu_query(struct dm_gpu_info *out, struct dm_err *err)
{
	nvml_ret (*init)(void), (*shutdown)(void), (*count)(unsigned *);
	nvml_ret (*handle)(unsigned, nvml_dev *), (*mem)(nvml_dev, struct nvml_mem *);
	nvml_ret (*name)(nvml_dev, char *, unsigned);
	unsigned n = 0;
	void *lib;
	int rc = 0;

	memset(out, 0, sizeof *out);
	lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		snprintf(out->absent_reason, sizeof out->absent_reason,
			 "no NVIDIA driver (libnvidia-ml.so.1 not found)");
		return 0;
	}
	*(void **)&init = dlsym(lib, "nvmlInit_v2");
	*(void **)&shutdown = dlsym(lib, "nvmlShutdown");
	*(void **)&count = dlsym(lib, "nvmlDeviceGetCount_v2");
	*(void **)&handle = dlsym(lib, "nvmlDeviceGetHandleByIndex_v2");
	*(void **)&mem = dlsym(lib, "nvmlDeviceGetMemoryInfo");
	*(void **)&name = dlsym(lib, "nvmlDeviceGetName");
	if (!init || !shutdown || !count || !handle || !mem || !name) {
		snprintf(out->absent_reason, sizeof out->absent_reason, "libnvidia-ml.so.1 lacks NVML entry points");
		dlclose(lib);
		return 0;
	}
	if (init() != 0) {
		snprintf(out->absent_reason, sizeof out->absent_reason, "NVML found but nvmlInit failed (no GPU?)");
		dlclose(lib);
		return 0;
	}
	if (count(&n) != 0) {
		rc = dm_err_set(err, DM_EIO, "nvmlDeviceGetCount failed");
		goto out;
	}
	for (unsigned i = 0; i < n && out->n < DM_GPU_MAX; i++) {
		nvml_dev d;
		struct nvml_mem m;
		struct dm_gpu *g = &out->gpu[out->n];
		if (handle(i, &d) != 0 || mem(d, &m) != 0)
			continue;
		if (name(d, g->name, sizeof g->name) != 0)
			snprintf(g->name, sizeof g->name, "GPU %u", i);
		g->total = m.total;
		g->free = m.free;
		g->used = m.used;
		out->n++;
	}
	if (!out->n)
		snprintf(out->absent_reason, sizeof out->absent_reason, "NVML reports no GPU");
out:
	shutdown();
	dlclose(lib);
	return rc;
}

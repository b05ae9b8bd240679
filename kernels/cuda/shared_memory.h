// Host side of a kernel's dynamic shared memory.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "core/cuda_check.h"

namespace hymba::cuda {

// Dynamic shared memory above the default 48 KiB must be opted into, per kernel, before a launch
// asks for it; below that nothing needs setting.
template <class Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
  if (bytes > 48 * 1024) {
    HYMBA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  }
}

}  // namespace hymba::cuda

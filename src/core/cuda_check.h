// Every CUDA runtime call is checked: a failure becomes a hymba::Error naming the call, the
// source line and CUDA's own message. Kernel launches are checked with HYMBA_CUDA_CHECK_LAUNCH().
#pragma once

#include <cuda_runtime_api.h>

#include "core/error.h"

#define HYMBA_CUDA_CHECK(call)                                                             \
  do {                                                                                     \
    const cudaError_t hymba_cuda_status_ = (call);                                         \
    if (hymba_cuda_status_ != cudaSuccess) {                                               \
      ::hymba::fail(__FILE__, ":", __LINE__, ": ", #call, ": ",                            \
                    cudaGetErrorString(hymba_cuda_status_));                               \
    }                                                                                      \
  } while (0)

#define HYMBA_CUDA_CHECK_LAUNCH() HYMBA_CUDA_CHECK(cudaGetLastError())

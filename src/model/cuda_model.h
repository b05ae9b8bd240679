// The model on the GPU: the layer code of hymba_model.h over the CUDA backend, in fp32 (checked
// against the CPU model) or with bf16 activations and fp32 master weights (train.precision: bf16).
// Built only with CUDA.
#pragma once

#ifdef HYMBA_HAVE_CUDA

#include "model/cuda_backend.h"
#include "model/hymba_model.h"

namespace hymba {

using CudaHymbaModel = HymbaModelOn<CudaBackend<float>>;
using CudaBf16HymbaModel = HymbaModelOn<CudaBackend<__nv_bfloat16>>;
extern template class HymbaModelOn<CudaBackend<float>>;
extern template class HymbaModelOn<CudaBackend<__nv_bfloat16>>;

}  // namespace hymba

#endif

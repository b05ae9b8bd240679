// The GPU instantiations of the model: fp32 and bf16 activations. Built only with CUDA.
#ifdef HYMBA_HAVE_CUDA

#include "model/cuda_model.h"
#include "model/hymba_model_impl.h"

namespace hymba {

template class HymbaModelOn<CudaBackend<float>>;
template class HymbaModelOn<CudaBackend<__nv_bfloat16>>;

}  // namespace hymba

#endif

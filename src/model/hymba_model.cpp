// The CPU instantiations of the model: float (training, evaluation) and double (gradient checks).
#include "model/hymba_model_impl.h"

namespace hymba {

template class HymbaModelOn<CpuBackend<float>>;
template class HymbaModelOn<CpuBackend<double>>;

}  // namespace hymba

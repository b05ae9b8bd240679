#include "cuda/tma.h"

#include <cuda_runtime_api.h>
#include <cudaTypedefs.h>

#include "core/cuda_check.h"
#include "core/error.h"
#include "cuda/alignment.h"

namespace hymba::cuda {

namespace {

// The driver's encoder, looked up through the runtime once: linking libcuda itself would keep the
// executables from starting on machines without a driver (CI runs the CPU path there).
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    HYMBA_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found));
    if (found != cudaDriverEntryPointSuccess || fn == nullptr) {
      fail("cuTensorMapEncodeTiled: the CUDA driver does not provide it (TMA needs a driver for CUDA 12.0 or newer)");
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
  }();
  return encode;
}

}  // namespace

CUtensorMap bf16_tile_map(const void* base, int64_t cols, int64_t rows, int64_t outer, int64_t ld, int box_rows,
                          const char* what) {
  constexpr int64_t kBoxCols = 64;  // 128 bytes: the widest box the 128-byte swizzle takes
  if (!aligned(base, 16) || ld % 8 != 0 || ld < cols || cols < kBoxCols || rows < 1 || outer < 1 || box_rows < 1 ||
      box_rows > 256) {
    fail(what, ": no TMA descriptor for a bf16 tensor [", outer, "][", rows, "][", cols, "] at ", base, ", row stride ",
         ld, ", tiles of ", box_rows, " x ", kBoxCols,
         " (needs a 16-byte aligned base, a row stride that is a multiple of 8 and >= cols, cols >= 64, box rows "
         "1-256)");
  }
  const cuuint64_t dims[3] = {cuuint64_t(cols), cuuint64_t(rows), cuuint64_t(outer)};
  const cuuint64_t strides[2] = {cuuint64_t(ld) * 2, cuuint64_t(ld * rows) * 2};  // bytes, dims 1 and 2
  const cuuint32_t box[3] = {cuuint32_t(kBoxCols), cuuint32_t(box_rows), 1};
  const cuuint32_t element_strides[3] = {1, 1, 1};
  CUtensorMap map;
  const CUresult status = tensor_map_encoder()(
      &map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, const_cast<void*>(base), dims, strides, box, element_strides,
      CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
      CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (status != CUDA_SUCCESS) {
    fail(what, ": cuTensorMapEncodeTiled failed (CUresult ", int(status), ") for a bf16 tensor [", outer, "][", rows,
         "][", cols, "] at ", base, ", row stride ", ld);
  }
  return map;
}

}  // namespace hymba::cuda

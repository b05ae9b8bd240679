// The roof of a memory-bound kernel with a given pattern of loads and stores: a kernel that reads
// `reads` arrays and writes `writes` arrays of the same size, 16 bytes a load or store, with one
// integer add a vector (so nothing is optimized away). HBM serves a mix of reads and writes at other
// rates than a copy's half and half, so a kernel that reads two tensors and writes one (the norm
// backward) is held to this, not to cudaMemcpy. Benchmarks use it; training does not.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace hymba::cuda {

// out[w][i] = Σ_r in[r][i] (as 32-bit integers) for i < vectors 16-byte vectors; 1 <= reads <= 3,
// 1 <= writes <= 2; every pointer 16-byte aligned.
void stream_roof(void* const* out, int writes, const void* const* in, int reads, int64_t vectors,
                 cudaStream_t stream = nullptr);

}  // namespace hymba::cuda

// Tensor Memory Accelerator descriptors (Hopper's TMA) for the kernels that load 128-byte-swizzled
// bf16 tiles: the host encodes one CUtensorMap per operand and passes it by value
// (__grid_constant__); kernels/cuda/tma.cuh issues the copies.
#pragma once

#include <cuda.h>

#include <cstdint>

namespace hymba::cuda {

// A TMA descriptor of the bf16 tensor [outer][rows][cols] at base, rows `ld` elements apart and
// outer slices rows·ld apart, that copies tiles of [box_rows][64] (128 bytes a row) into shared
// memory in the 128-byte swizzle (the 16-byte chunk c of tile row r lands at chunk c ^ (r % 8);
// the destination must be 1024-byte aligned). Coordinates are (column, row, outer); a tile row at
// or past `rows` is filled with zeros, so a tile may hang over the end of a sequence.
// Fails (hymba::fail naming `what` and the values) where TMA cannot describe the tensor: base not
// 16-byte aligned, ld not a multiple of 8 or below cols, or the driver lacks TMA.
CUtensorMap bf16_tile_map(const void* base, int64_t cols, int64_t rows, int64_t outer, int64_t ld, int box_rows,
                          const char* what);

}  // namespace hymba::cuda

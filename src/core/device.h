// What accelerator this process can use. Built without CUDA, or run on a machine without an
// NVIDIA driver (CI, laptops), it reports none and everything runs on the CPU.
#pragma once

#include <string>

namespace hymba {

int cuda_device_count();
std::string cuda_device_name(int device);  // "" when there is none

}  // namespace hymba

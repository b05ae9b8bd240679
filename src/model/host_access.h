// Host access to a backend's arrays, for what needs host memory (checkpoints, initial values):
// a std::vector is used in place; device memory is staged through a host vector and copied back.
//
//   float* p = host_buffer(model.params, staging);   // the values, readable and writable
//   ... read or fill p ...
//   commit_host_buffer(model.params, staging);       // device arrays: upload what was written
//
// host_buffer_to_overwrite is the same for a caller that writes every value it cares about and
// leaves the rest zero (a load, an initialisation): device memory is not downloaded first.
#pragma once

#include <vector>

#ifdef HYMBA_HAVE_CUDA
#include "cuda/device_array.h"
#endif

namespace hymba {

template <class T>
T* host_buffer(std::vector<T>& a, std::vector<T>&) { return a.data(); }
template <class T>
T* host_buffer_to_overwrite(std::vector<T>& a, std::vector<T>&) { return a.data(); }
template <class T>
void commit_host_buffer(std::vector<T>&, const std::vector<T>&) {}

#ifdef HYMBA_HAVE_CUDA
template <class T>
T* host_buffer(cuda::DeviceArray<T>& a, std::vector<T>& staging) {
  staging.resize(size_t(a.size()));
  a.download(staging.data());
  return staging.data();
}
template <class T>
T* host_buffer_to_overwrite(cuda::DeviceArray<T>& a, std::vector<T>& staging) {
  staging.assign(size_t(a.size()), T(0));
  return staging.data();
}
template <class T>
void commit_host_buffer(cuda::DeviceArray<T>& a, const std::vector<T>& staging) {
  a.upload(staging.data());
}
#endif

}  // namespace hymba

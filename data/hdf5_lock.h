// One process-wide lock around every HDF5 call. Why: a distribution's HDF5 may be built without
// thread safety, and the data loader reads shards on a background thread while other code opens
// shards or writes checkpoints. Any code that calls HDF5 holds an Hdf5Lock for the duration.
#pragma once

#include <hdf5.h>

#include <mutex>

#include "core/error.h"

namespace hymba {

class Hdf5Lock {
 public:
  Hdf5Lock() : guard_(mutex()) { quiet_errors(); }
  Hdf5Lock(const Hdf5Lock&) = delete;
  Hdf5Lock& operator=(const Hdf5Lock&) = delete;

 private:
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  // HDF5 prints its error stack on every failed call; we raise our own message instead. A
  // thread-safe HDF5 keeps this setting per thread, so each thread turns it off once.
  static void quiet_errors() {
    thread_local bool quiet = false;
    if (quiet) return;
    if (H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr) < 0) {
      fail("HDF5: cannot turn off its error printing");
    }
    quiet = true;
  }

  std::lock_guard<std::mutex> guard_;
};

}  // namespace hymba

// HDF5 helpers shared by shards and checkpoints.
//
// Hdf5Lock: one process-wide lock around every HDF5 call. Why: a distribution's HDF5 may be built without
// thread safety, and the data loader reads shards on a background thread while other code opens
// shards or writes checkpoints. Any code that calls HDF5 holds an Hdf5Lock for the duration.
#pragma once

#include <hdf5.h>

#include <mutex>
#include <utility>

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

// An HDF5 id, closed when it goes out of scope (which must be while the Hdf5Lock is held). Error
// paths rely on this; write paths close explicitly, to report a close that fails.
class H5Id {
 public:
  using Closer = herr_t (*)(hid_t);
  H5Id(hid_t id, Closer close) : id_(id), close_(close) {}
  ~H5Id() {
    if (id_ >= 0) close_(id_);
  }
  H5Id(H5Id&& other) noexcept : id_(std::exchange(other.id_, -1)), close_(other.close_) {}
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;

  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }
  hid_t release() { return std::exchange(id_, -1); }
  bool close() { return close_(std::exchange(id_, -1)) >= 0; }

 private:
  hid_t id_;
  Closer close_;
};

}  // namespace hymba

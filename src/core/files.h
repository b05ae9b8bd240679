// Small file-system helpers shared by everything that writes results to disk.
#pragma once

#include <string>

namespace hymba {

// Writes `text` to `path` through `path.tmp` and a rename, so a crash leaves either the old file
// or the new one, never half of one. Errors name the path.
void write_file_atomically(const std::string& path, const std::string& text);

// The whole content of a (plain) file; errors name the path.
std::string read_all_text(const std::string& path);

// Holds an exclusive advisory lock on `path` (created if missing) for its lifetime, so two
// processes never prepare or write the same folder at once. Blocks until the lock is free.
class FileLock {
 public:
  explicit FileLock(const std::string& path);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace hymba

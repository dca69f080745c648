// Files that are replaced whole or not at all. Every file the project writes for a user (checkpoints,
// config.json, recipe.yaml, metrics rewrites, reports) goes through here, so a kill, a full disk or a
// crash leaves either the old file or the new one under its name, never a torn one:
//   PATH.tmp is created fresh (a stale temporary, or a symlink planted under its name, is removed and
//   never followed, so nothing outside PATH can be truncated), written, fsynced, renamed over PATH, and
//   the folder is fsynced so the rename itself survives a power cut.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace mega {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);  // creates PATH.tmp; errors name PATH
  ~AtomicFile();                          // not committed: PATH.tmp is removed and PATH left as it was
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);
  void write(std::string_view text) { write(text.data(), text.size()); }
  void commit();  // fsync, close, rename over PATH, fsync the folder

 private:
  std::string path_, tmp_;
  int fd_ = -1;
};

void write_file_atomically(const std::string& path, std::string_view bytes);

// fsync of a file or folder by name, ignoring failures: used where durability is a bonus (a folder
// after a rename) rather than a promise to the user.
void fsync_path(const std::string& path);

}  // namespace mega

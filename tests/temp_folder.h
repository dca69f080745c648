// Test helper: a temporary folder per test program and name, made fresh on first use and removed when
// the program ends, and the two file helpers the loader tests share. One copy for every test file that
// writes the small files it reads.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace mega::testing {

// TempDir()/NAME_<pid> (CTest runs test processes side by side), empty. A GoogleTest environment removes
// it after the last test; GoogleTest tears down environments added while tests run too.
inline std::filesystem::path make_temp_folder(const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(::testing::TempDir()) / (name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  struct Remove : ::testing::Environment {
    explicit Remove(fs::path folder) : folder(std::move(folder)) {}
    void TearDown() override { fs::remove_all(folder); }
    fs::path folder;
  };
  ::testing::AddGlobalTestEnvironment(new Remove(dir));
  return dir;
}

// Writes `text` as bytes, making the folders above it.
inline void write_file(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace mega::testing

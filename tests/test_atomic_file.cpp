// core/atomic_file.h: a file is replaced whole or not at all, and the temporary beside it is never a
// way to write through a planted symlink. MegaConfig::save goes through it like every other writer.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "nn/config.h"

namespace fs = std::filesystem;

namespace {

class AtomicFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) / ("mega_atomic_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  static std::string slurp(const fs::path& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  fs::path root_;
};

}  // namespace

TEST_F(AtomicFileTest, ReplacesTheFileWholeAndLeavesNoTemporary) {
  const fs::path path = root_ / "a.txt";
  std::ofstream(path) << "old";
  mega::write_file_atomically(path.string(), "new text");
  EXPECT_EQ(slurp(path), "new text");
  EXPECT_FALSE(fs::exists(root_ / "a.txt.tmp"));
}

TEST_F(AtomicFileTest, AnUncommittedFileLeavesTheOldOneAsItWas) {
  const fs::path path = root_ / "a.txt";
  std::ofstream(path) << "old";
  {
    mega::AtomicFile file(path.string());
    file.write("half of the new");  // an exception before commit() unwinds through here
  }
  EXPECT_EQ(slurp(path), "old");
  EXPECT_FALSE(fs::exists(root_ / "a.txt.tmp"));
}

TEST_F(AtomicFileTest, ASymlinkPlantedAtTheTemporaryIsNeverWrittenThrough) {
  const fs::path victim = root_ / "victim.txt";
  std::ofstream(victim) << "precious";
  fs::create_symlink(victim, root_ / "config.json.tmp");
  mega::MegaConfig config;
  config.save((root_ / "config.json").string());
  EXPECT_EQ(slurp(victim), "precious");
  EXPECT_FALSE(fs::is_symlink(root_ / "config.json"));
  EXPECT_EQ(mega::MegaConfig::load((root_ / "config.json").string()).hidden_size, config.hidden_size);
}

TEST_F(AtomicFileTest, AnUnwritableFolderIsAnErrorNamingThePath) {
  const fs::path path = root_ / "missing" / "a.txt";
  try {
    mega::write_file_atomically(path.string(), "x");
    FAIL() << "wrote into a folder that does not exist";
  } catch (const mega::Error& e) {
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
  }
}

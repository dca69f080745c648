// Atomic checkpoint folders with retention.
#include "recipes/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/json_file.h"
#include "core/safetensors.h"

namespace fs = std::filesystem;

namespace mega {

namespace {

constexpr const char* kPrefix = "step-";

std::string step_name(int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "%s%08lld", kPrefix, static_cast<long long>(step));
  return name;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.flush();
  MEGA_CHECK(out.good(), "cannot write '", path.string(), "'");
}

void fsync_path(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// read_json_file refuses a folder, a device or a huge file by name, where an ifstream would fail with
// a bare "basic_filebuf::underflow" or read forever.
nlohmann::json read_json(const fs::path& path) {
  try {
    return read_json_file(path.string());
  } catch (const Error& e) {
    fail("checkpoint file ", e.what());
  }
}

// "NaN or infinite values" / "negative values" when a floating tensor holds them, else nullptr.
const char* bad_values(const Tensor& tensor, bool must_be_non_negative) {
  const DType dtype = tensor.dtype();
  if (dtype != DType::F32 && dtype != DType::F64 && dtype != DType::F16 && dtype != DType::BF16) return nullptr;
  const Tensor values = tensor.to(DType::F64);
  const double* v = values.data<double>();
  for (int64_t i = 0; i < values.numel(); ++i) {
    if (!std::isfinite(v[i])) return "NaN or infinite values";
    if (must_be_non_negative && v[i] < 0) return "negative values (a second moment is a mean of squares)";
  }
  return nullptr;
}

}  // namespace

CheckpointDir::CheckpointDir(const std::string& run_dir) : root_((fs::path(run_dir) / "checkpoints").string()) {}

std::string CheckpointDir::save(int64_t step, const Checkpoint& checkpoint, int64_t keep_last,
                                std::optional<int64_t> keep_also) {
  fs::create_directories(root_);
  fs::path final_dir = fs::path(root_) / step_name(step);
  // Built by appending: GCC 12 warns falsely (-Wrestrict, bug 105329) on "." + std::string.
  std::string tmp_name(".");
  tmp_name.append(step_name(step)).append(".tmp");
  fs::path tmp_dir = fs::path(root_) / tmp_name;
  fs::remove_all(tmp_dir);
  fs::create_directories(tmp_dir);
  write_text(tmp_dir / "config.json", checkpoint.config.dump(2) + "\n");
  save_safetensors((tmp_dir / "model.safetensors").string(), checkpoint.model, {{"format", "pt"}});
  save_safetensors((tmp_dir / "optimizer.safetensors").string(), checkpoint.optimizer);
  write_text(tmp_dir / "trainer_state.json", checkpoint.trainer_state.dump(2) + "\n");
  for (const auto& [name, bytes] : checkpoint.files) {
    const fs::path path = tmp_dir / name;
    MEGA_CHECK(fs::path(name).is_relative() && name.find("..") == std::string::npos, "[checkpoint] file name '",
               name, "' leaves the checkpoint folder");
    fs::create_directories(path.parent_path());
    write_text(path, bytes);
  }
  for (const char* file : {"config.json", "trainer_state.json"}) fsync_path(tmp_dir / file);
  fsync_path(tmp_dir);
  // Fault injection for the kill-and-resume tests (tests/test_trainer.cpp): MEGA_FAULT_KILL_IN_SAVE=N
  // makes the process SIGKILL itself while saving step N, with the temporary folder written and not yet
  // renamed: the worst moment for a kill.
  if (const char* kill_step = std::getenv("MEGA_FAULT_KILL_IN_SAVE"); kill_step && *kill_step &&
      std::stoll(kill_step) == step)
    std::raise(SIGKILL);
  // A checkpoint of the same step (a rerun after resuming) is replaced whole: the old one is renamed
  // aside before the new one takes its name, and removed only then, so at no moment is neither on disk.
  std::string old_name(".");
  old_name.append(step_name(step)).append(".old");
  const fs::path old_dir = fs::path(root_) / old_name;
  fs::remove_all(old_dir);
  const bool replacing = fs::exists(final_dir);
  if (replacing) fs::rename(final_dir, old_dir);
  fs::rename(tmp_dir, final_dir);
  fsync_path(root_);
  if (replacing) fs::remove_all(old_dir);

  std::vector<std::string> all = list();
  int64_t excess = static_cast<int64_t>(all.size()) - std::max<int64_t>(keep_last, 1);
  for (int64_t i = 0; i < excess; ++i) {
    if (keep_also && fs::path(all[i]).filename() == step_name(*keep_also)) continue;
    fs::remove_all(all[i]);
  }
  return final_dir.string();
}

std::vector<std::string> CheckpointDir::list() const {
  std::vector<std::string> found;
  if (!fs::is_directory(root_)) return found;
  for (const auto& entry : fs::directory_iterator(root_)) {
    std::string name = entry.path().filename().string();
    if (entry.is_directory() && name.rfind(kPrefix, 0) == 0) found.push_back(entry.path().string());
  }
  std::sort(found.begin(), found.end());  // zero-padded step numbers sort as numbers
  return found;
}

std::optional<std::string> CheckpointDir::newest() const {
  std::vector<std::string> all = list();
  if (all.empty()) return std::nullopt;
  return all.back();
}

Checkpoint CheckpointDir::load(const std::string& dir) {
  MEGA_CHECK(fs::is_directory(dir), "checkpoint '", dir, "' is not a folder");
  Checkpoint checkpoint;
  checkpoint.config = read_json(fs::path(dir) / "config.json");
  checkpoint.trainer_state = read_json(fs::path(dir) / "trainer_state.json");
  MEGA_CHECK(checkpoint.trainer_state.is_object() && checkpoint.trainer_state.contains("step") &&
                 checkpoint.trainer_state["step"].is_number_integer(),
             "checkpoint '", dir, "': trainer_state.json has no integer 'step'");
  // load_safetensors validates the whole header and the file size, naming the file on failure; the
  // tensors are copied so the checkpoint can be deleted while training goes on.
  for (auto [file, target] : {std::pair{"model.safetensors", &checkpoint.model},
                              std::pair{"optimizer.safetensors", &checkpoint.optimizer}}) {
    fs::path path = fs::path(dir) / file;
    MEGA_CHECK(fs::exists(path), "checkpoint '", dir, "' has no ", file);
    for (auto& [name, tensor] : load_safetensors(path.string()).tensors) (*target)[name] = tensor.clone();
  }
  // A NaN or infinite weight (a diverged run saved) would resume into a run that only skips updates;
  // a negative second moment would put a NaN into the first Adam step.
  for (auto [file, tensors] : {std::pair{"model.safetensors", &checkpoint.model},
                               std::pair{"optimizer.safetensors", &checkpoint.optimizer}}) {
    for (const auto& [name, tensor] : *tensors) {
      const bool second_moment = name.size() > 11 && name.compare(name.size() - 11, 11, ".exp_avg_sq") == 0;
      if (const char* problem = bad_values(tensor, second_moment))
        fail("checkpoint '", dir, "': tensor '", name, "' holds ", problem, " (in ", dir, "/", file, ")");
    }
  }
  return checkpoint;
}

}  // namespace mega

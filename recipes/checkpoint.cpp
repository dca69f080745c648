// Atomic checkpoint folders with retention.
#include "recipes/checkpoint.h"


#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "core/atomic_file.h"
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

// A checkpoint's folder name: step- and the step's digits, nothing else (a stray "step-old" or
// "step-1 copy" is not a checkpoint and never counts towards the ones kept).
bool is_step_name(const std::string& name) {
  const size_t prefix = std::char_traits<char>::length(kPrefix);
  return name.size() > prefix && name.rfind(kPrefix, 0) == 0 &&
         std::all_of(name.begin() + prefix, name.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string hidden_name(const std::string& name, const char* suffix) {
  // Built by appending: GCC 12 warns falsely (-Wrestrict, bug 105329) on "." + std::string.
  std::string hidden(".");
  return hidden.append(name).append(suffix);
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

CheckpointDir::CheckpointDir(const std::string& run_dir) : root_((fs::path(run_dir) / "checkpoints").string()) {
  // A kill between the two renames of a replacing save leaves the step only under .step-N.old: put it
  // back, so the newest checkpoint is never lost to that moment.
  if (!fs::is_directory(root_)) return;
  for (const auto& entry : fs::directory_iterator(root_)) {
    const std::string name = entry.path().filename().string();
    const std::string suffix = ".old";
    if (!entry.is_directory() || name.size() <= suffix.size() + 1 || name[0] != '.' ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string step = name.substr(1, name.size() - 1 - suffix.size());
    if (is_step_name(step) && !fs::exists(fs::path(root_) / step)) fs::rename(entry.path(), fs::path(root_) / step);
  }
}

std::string CheckpointDir::save(int64_t step, const Checkpoint& checkpoint, int64_t keep_last,
                                std::optional<int64_t> keep_also) {
  fs::create_directories(root_);
  fs::path final_dir = fs::path(root_) / step_name(step);
  fs::path tmp_dir = fs::path(root_) / hidden_name(step_name(step), ".tmp");
  fs::remove_all(tmp_dir);
  fs::create_directories(tmp_dir);
  write_file_atomically((tmp_dir / "config.json").string(), checkpoint.config.dump(2) + "\n");
  save_safetensors((tmp_dir / "model.safetensors").string(), checkpoint.model, {{"format", "pt"}});
  save_safetensors((tmp_dir / "optimizer.safetensors").string(), checkpoint.optimizer);
  write_file_atomically((tmp_dir / "trainer_state.json").string(), checkpoint.trainer_state.dump(2) + "\n");
  for (const auto& [name, bytes] : checkpoint.files) {
    const fs::path path = tmp_dir / name;
    MEGA_CHECK(fs::path(name).is_relative() && name.find("..") == std::string::npos && name != "config.json" &&
                   name != "trainer_state.json" && name.find(".safetensors") == std::string::npos,
               "[checkpoint] file name '", name, "' is not a file of its own inside the checkpoint folder");
    fs::create_directories(path.parent_path());
    write_file_atomically(path.string(), bytes);
  }
  // Fault injection for the kill-and-resume tests (tests/test_trainer.cpp): MEGA_FAULT_KILL_IN_SAVE=N
  // makes the process SIGKILL itself while saving step N, with the temporary folder written and not yet
  // renamed: the worst moment for a kill.
  if (const char* kill_step = std::getenv("MEGA_FAULT_KILL_IN_SAVE"); kill_step && *kill_step &&
      std::stoll(kill_step) == step)
    std::raise(SIGKILL);
  // A checkpoint of the same step (a rerun after resuming) is replaced whole: the old one is renamed
  // aside before the new one takes its name, and removed only then, so at no moment is neither on disk.
  // A kill between the two renames is repaired by the constructor.
  const fs::path old_dir = fs::path(root_) / hidden_name(step_name(step), ".old");
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
    if (entry.is_directory() && is_step_name(name)) found.push_back(entry.path().string());
  }
  std::sort(found.begin(), found.end());  // zero-padded step numbers sort as numbers
  return found;
}

std::optional<std::string> CheckpointDir::newest() const {
  std::vector<std::string> all = list();
  if (all.empty()) return std::nullopt;
  return all.back();
}

std::string CheckpointDir::set_aside(const std::string& dir) {
  const fs::path folder(dir);
  const fs::path aside = folder.parent_path() / hidden_name(folder.filename().string(), ".unusable");
  fs::remove_all(aside);
  fs::rename(folder, aside);
  fsync_path(root_);
  return aside.string();
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

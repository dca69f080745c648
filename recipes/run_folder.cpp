// The run folder across processes (see run_folder.h): the lock, the resumed recipe, the trainer state.
#include "recipes/run_folder.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <sstream>

#include "core/error.h"

namespace fs = std::filesystem;

namespace mega {

// ---- RunFolderLock ----

RunFolderLock::RunFolderLock(const std::string& run_dir) {
  fs::create_directories(run_dir);
  const std::string path = (fs::path(run_dir) / ".lock").string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  MEGA_CHECK(fd_ >= 0, "cannot open the run folder's lock '", path, "': ", std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    char holder[32] = {};
    const ssize_t n = ::pread(fd_, holder, sizeof holder - 1, 0);
    ::close(fd_);
    fd_ = -1;
    std::string pid = n > 0 ? std::string(holder, static_cast<size_t>(n)) : std::string("unknown");
    pid.erase(std::remove(pid.begin(), pid.end(), '\n'), pid.end());
    MEGA_CHECK(error != EWOULDBLOCK, "output_dir '", run_dir, "' is in use by another run (pid ", pid, ", holding ",
               path, "): wait for it to finish, or set another output_dir");
    fail("cannot lock '", path, "': ", std::strerror(error));
  }
  // The holder's pid, for the message a second run prints; written only once the lock is ours.
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
    fail("cannot write the run folder's lock '", path, "': ", std::strerror(errno));
}

RunFolderLock::~RunFolderLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

// ---- The resumed recipe ----

const std::vector<std::string>& resumable_recipe_keys() {
  static const std::vector<std::string> keys = {
      "output_dir",          "data.dir",           "data.generate",      "train.max_steps",
      "train.max_epochs",    "train.eval_interval", "train.save_interval", "train.log_interval",
      "train.eval_batch_size", "train.threads",    "train.max_nonfinite_steps"};
  return keys;
}

namespace {

std::string value_text(const RecipeValue& value) {
  std::ostringstream out;
  std::visit(
      [&](const auto& v) {
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<V, std::monostate>) out << "null";
        else if constexpr (std::is_same_v<V, bool>) out << (v ? "true" : "false");
        else if constexpr (std::is_same_v<V, int64_t> || std::is_same_v<V, std::string>) out << v;
        else if constexpr (std::is_same_v<V, double>) out << v;
        else {
          out << "[";
          for (size_t i = 0; i < v.size(); ++i) out << (i ? ", " : "") << v[i];
          out << "]";
        }
      },
      value);
  return out.str();
}

}  // namespace

void check_resume_recipe(const Recipe& recipe, const std::string& run_dir, int64_t world_size_then,
                         int64_t world_size_now) {
  const fs::path saved_path = fs::path(run_dir) / "recipe.yaml";
  if (!fs::exists(saved_path)) return;
  Recipe saved;
  try {
    saved = load_recipe(saved_path.string());
  } catch (const Error& e) {
    fail("cannot compare with the run's recipe: ", e.what());
  }
  const std::vector<std::string>& free_keys = resumable_recipe_keys();
  std::string differences;
  for (const KeySpec& spec : recipe_schema()) {
    if (std::find(free_keys.begin(), free_keys.end(), spec.path) != free_keys.end()) continue;
    if (spec.path == "train.batch_size" &&
        recipe.train.batch_size * world_size_now == saved.train.batch_size * world_size_then)
      continue;  // the same global batch on another number of ranks
    const RecipeValue& now = recipe.entry(spec.path).value;
    const RecipeValue& then = saved.entry(spec.path).value;
    if (now != then) differences += "\n  " + spec.path + ": " + value_text(then) + " in the run, " + value_text(now) + " now";
  }
  if (differences.empty()) return;
  std::string allowed;
  for (const std::string& key : free_keys) allowed += (allowed.empty() ? "" : ", ") + key;
  fail("--resume: the recipe differs from the run's ", saved_path.string(), " in keys that change the training:",
       differences, "\n(a resumed run may change only ", allowed, "; start a new output_dir for the others)");
}

// ---- TrainerState ----

nlohmann::json TrainerState::to_json() const {
  return {{"step", step},
          {"epoch", data.epoch},
          {"batch", data.batch},
          {"rng_stream", rng_stream},
          {"best_val_accuracy", best_val_accuracy},
          {"best_val_loss", best_val_loss},
          {"best_step", best_step},
          {"loss_since_log", loss_since_log},
          {"steps_since_log", steps_since_log},
          {"skipped_steps", skipped_steps},
          {"nonfinite_streak", nonfinite_streak},
          {"world_size", world_size}};
}

namespace {

// Far beyond any run (the recipe allows 1e9 updates), yet small enough that no count wraps.
constexpr int64_t kMaxCount = int64_t{1} << 50;

int64_t int_field(const nlohmann::json& j, const char* key, int64_t min, int64_t max, const std::string& file) {
  MEGA_CHECK(j.contains(key), "checkpoint file '", file, "': no '", key, "'");
  const nlohmann::json& v = j.at(key);
  MEGA_CHECK(v.is_number_integer(), "checkpoint file '", file, "': '", key, "' is ", v.dump(), ", not an integer");
  MEGA_CHECK(!v.is_number_unsigned() || v.get<uint64_t>() <= static_cast<uint64_t>(kMaxCount), "checkpoint file '",
             file, "': '", key, "' is ", v.dump(), ", outside [", min, ", ", max, "]");
  const int64_t value = v.get<int64_t>();
  MEGA_CHECK(value >= min && value <= max, "checkpoint file '", file, "': '", key, "' is ", value, ", outside [", min,
             ", ", max, "]");
  return value;
}

double number_field(const nlohmann::json& j, const char* key, double min, double max, const std::string& file) {
  MEGA_CHECK(j.contains(key), "checkpoint file '", file, "': no '", key, "'");
  const nlohmann::json& v = j.at(key);
  MEGA_CHECK(v.is_number(), "checkpoint file '", file, "': '", key, "' is ", v.dump(), ", not a number");
  const double value = v.get<double>();
  MEGA_CHECK(std::isfinite(value) && value >= min && value <= max, "checkpoint file '", file, "': '", key, "' is ",
             value, ", outside [", min, ", ", max, "]");
  return value;
}

}  // namespace

TrainerState TrainerState::from_json(const nlohmann::json& j, const std::string& file) {
  MEGA_CHECK(j.is_object(), "checkpoint file '", file, "' is not a JSON object");
  TrainerState s;
  s.step = int_field(j, "step", 1, kMaxCount, file);
  s.data.epoch = int_field(j, "epoch", 0, kMaxCount, file);
  s.data.batch = int_field(j, "batch", 0, kMaxCount, file);
  MEGA_CHECK(j.contains("rng_stream") && j["rng_stream"].is_number_unsigned(), "checkpoint file '", file,
             "': 'rng_stream' must be a non-negative integer");
  s.rng_stream = j["rng_stream"].get<uint64_t>();
  s.best_step = int_field(j, "best_step", -1, s.step, file);
  MEGA_CHECK(s.best_step != 0, "checkpoint file '", file, "': 'best_step' is 0 (-1: none yet, else 1 to 'step')");
  s.best_val_accuracy = number_field(j, "best_val_accuracy", -1, s.best_step < 0 ? -1 : 1, file);
  // Checkpoints from before language models lack it: none.
  if (j.contains("best_val_loss"))
    s.best_val_loss = number_field(j, "best_val_loss", -1, s.best_step < 0 ? -1 : std::numeric_limits<double>::max(), file);
  s.loss_since_log = number_field(j, "loss_since_log", 0, std::numeric_limits<double>::max(), file);
  s.steps_since_log = int_field(j, "steps_since_log", 0, s.step, file);
  s.skipped_steps = int_field(j, "skipped_steps", 0, s.step, file);
  // Checkpoints from before the divergence guard lack it: no streak.
  if (j.contains("nonfinite_streak")) s.nonfinite_streak = int_field(j, "nonfinite_streak", 0, s.skipped_steps, file);
  // Checkpoints from before data parallelism lack it: one process.
  if (j.contains("world_size")) s.world_size = int_field(j, "world_size", 1, kMaxCount, file);
  return s;
}

void TrainerState::check_fits(const std::string& file, const BatchSource& batches, int64_t accumulate,
                              int64_t total_updates) const {
  MEGA_CHECK(step <= total_updates, "checkpoint file '", file, "': the checkpoint is at step ", step,
             ", past the recipe's ", total_updates, " updates; raise train.max_steps (or max_epochs) to resume it");
  // Every update draws `accumulate` batches in order, so the position follows from the step.
  const int64_t drawn = step * accumulate;
  const DataPosition expected = batches.position_after(drawn);
  MEGA_CHECK(data == expected, "checkpoint file '", file, "': data position epoch ", data.epoch, " batch ", data.batch,
             " does not follow from step ", step, " (expected epoch ", expected.epoch, " batch ", expected.batch,
             " with ", batches.batches_per_epoch(), " batches per epoch): the checkpoint is damaged or from other data");
}

// ---- Choosing the checkpoint to resume ----

namespace {

// N of a folder named step-N; fails for any other name.
int64_t step_of_folder(const std::string& dir) {
  const std::string name = fs::path(dir).filename().string();
  const std::string digits = name.substr(std::min<size_t>(name.size(), 5));
  int64_t step = -1;
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), step);
  MEGA_CHECK(name.rfind("step-", 0) == 0 && error == std::errc() && end == digits.data() + digits.size() && step > 0,
             "checkpoint '", dir, "': the folder name is not step-N");
  return step;
}

}  // namespace

std::optional<ResumePoint> newest_valid_checkpoint(const CheckpointDir& checkpoints, std::vector<std::string>& warnings) {
  const std::vector<std::string> all = checkpoints.list();
  if (all.empty()) return std::nullopt;
  std::string reasons;
  std::vector<std::string> skipped;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    try {
      const int64_t folder_step = step_of_folder(*it);
      ResumePoint point;
      point.dir = *it;
      point.checkpoint = CheckpointDir::load(*it);
      const std::string state_file = (fs::path(*it) / "trainer_state.json").string();
      point.state = TrainerState::from_json(point.checkpoint.trainer_state, state_file);
      MEGA_CHECK(point.state.step == folder_step, "checkpoint file '", state_file, "': 'step' is ", point.state.step,
                 " in a folder named for step ", folder_step);
      point.skipped = skipped;
      return point;
    } catch (const Error& e) {
      warnings.push_back(std::string("skipped checkpoint ") + *it + ": " + e.what());
      skipped.push_back(*it);
      reasons += "\n  " + std::string(e.what());
    }
  }
  fail("--resume: no checkpoint in '", fs::path(all.front()).parent_path().string(), "' is usable:", reasons);
}

}  // namespace mega

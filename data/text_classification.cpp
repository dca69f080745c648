// Labelled text files, label ids, tokenization with a saved tokenizer, and the text_classification row
// (data/text_classification.h).
#include "data/text_classification.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/draws.h"

namespace mega {

namespace fs = std::filesystem;

namespace {

std::string read_whole(const std::string& path) {
  MEGA_CHECK(fs::is_regular_file(path), "cannot open ", path, ": not a file");
  std::ifstream in(path, std::ios::binary);
  MEGA_CHECK(in, "cannot open ", path);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  MEGA_CHECK(!in.bad(), "error reading ", path);
  return bytes;
}

std::string excerpt(std::string_view s) {
  return s.size() <= 40 ? std::string(s) : std::string(s.substr(0, 40)) + "...";
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

bool parse_integer(const std::string& s, int64_t& value) {
  if (s.empty()) return false;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, value);
  return ec == std::errc() && ptr == end;
}

void check_text(const LabelledText& row, const std::string& where) {
  MEGA_CHECK(!row.label.empty(), where, ": missing label");
  MEGA_CHECK(!row.text.empty(), where, ": empty text (an empty labelled document is refused: check the column or the quoting)");
}

std::string where_of(const LabelledText& row) {
  return row.line > 0 ? row.file + ":" + std::to_string(row.line) : row.file;
}

std::vector<std::string> split_list(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) {
    const size_t b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    MEGA_CHECK(b != std::string::npos, "labels '", list, "' has an empty name");
    out.push_back(item.substr(b, e - b + 1));
  }
  return out;
}

}  // namespace

// ---- Reading labelled text ----

std::vector<DelimitedRecord> read_delimited_records(const std::string& path, char delimiter) {
  const std::string bytes = read_whole(path);
  std::vector<DelimitedRecord> records;
  DelimitedRecord record;
  std::string field;
  int64_t line = 1;
  record.line = 1;
  size_t i = 0;
  const size_t n = bytes.size();
  bool field_started = false;  // the record has a field beyond an empty first one
  auto end_field = [&] {
    record.fields.push_back(std::move(field));
    field.clear();
  };
  auto end_record = [&] {
    end_field();
    const bool blank = record.fields.size() == 1 && record.fields[0].empty() && !field_started;
    if (!blank) records.push_back(std::move(record));
    record = DelimitedRecord();
    field_started = false;
  };
  while (i < n) {
    if (bytes[i] == '"' && field.empty()) {  // a quoted field
      const int64_t opened = line;
      field_started = true;
      ++i;
      while (true) {
        MEGA_CHECK(i < n, path, ":", opened, ": a quoted field is never closed");
        if (bytes[i] == '"') {
          if (i + 1 < n && bytes[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        if (bytes[i] == '\n') ++line;
        field += bytes[i++];
      }
      const bool at_end = i >= n || bytes[i] == delimiter || bytes[i] == '\n' ||
                          (bytes[i] == '\r' && (i + 1 >= n || bytes[i + 1] == '\n'));
      MEGA_CHECK(at_end, path, ":", line, ": text after the closing quote of a field (a quote inside a quoted ",
                 "field is written twice: \"\")");
      continue;
    }
    const char c = bytes[i];
    if (c == delimiter) {
      end_field();
      field_started = true;
      ++i;
    } else if (c == '\n' || (c == '\r' && i + 1 < n && bytes[i + 1] == '\n')) {
      i += c == '\r' ? 2 : 1;
      end_record();
      ++line;
      record.line = line;
    } else {
      field += c;
      field_started = true;
      ++i;
    }
  }
  if (field_started || !field.empty()) end_record();
  return records;
}

std::vector<LabelledText> read_delimited(const std::string& path, char delimiter, const std::string& text_column,
                                         const std::string& label_column) {
  std::vector<DelimitedRecord> records = read_delimited_records(path, delimiter);
  MEGA_CHECK(!records.empty(), path, ": empty file (expected a header naming the columns ", text_column, " and ",
             label_column, ")");
  const std::vector<std::string>& header = records[0].fields;
  auto column = [&](const std::string& name) {
    auto found = std::find(header.begin(), header.end(), name);
    MEGA_CHECK(found != header.end(), path, ":", records[0].line, ": the header has no column '", name,
               "' (columns: ", joined(header), ")");
    return static_cast<size_t>(found - header.begin());
  };
  const size_t text_at = column(text_column), label_at = column(label_column);
  std::vector<LabelledText> rows;
  rows.reserve(records.size() - 1);
  for (size_t r = 1; r < records.size(); ++r) {
    DelimitedRecord& record = records[r];
    MEGA_CHECK(record.fields.size() == header.size(), path, ":", record.line, ": ", record.fields.size(),
               " fields, the header has ", header.size());
    LabelledText row{.text = std::move(record.fields[text_at]), .label = std::move(record.fields[label_at]),
                     .line = record.line, .file = path, .group = -1};
    check_text(row, where_of(row));
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<LabelledText> read_jsonl(const std::string& path, const std::string& text_key, const std::string& label_key) {
  std::istringstream in(read_whole(path));
  std::vector<LabelledText> rows;
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(number);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(where, ": not a JSON object: ", e.what());
    }
    MEGA_CHECK(j.is_object(), where, ": expected a JSON object {\"", text_key, "\": ..., \"", label_key, "\": ...}");
    auto text = j.find(text_key);
    MEGA_CHECK(text != j.end() && text->is_string(), where, ": no string \"", text_key, "\"");
    auto label = j.find(label_key);
    MEGA_CHECK(label != j.end() && !label->is_null(), where, ": missing label (no \"", label_key, "\")");
    LabelledText row{.text = text->get<std::string>(), .label = "", .line = number, .file = path, .group = -1};
    if (label->is_string()) row.label = label->get<std::string>();
    else if (label->is_number_integer()) row.label = std::to_string(label->get<int64_t>());
    else fail(where, ": label ", excerpt(label->dump()), " is neither a string nor an integer");
    check_text(row, where);
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<LabelledText> read_label_folders(const std::string& split_dir) {
  MEGA_CHECK(fs::is_directory(split_dir), split_dir, " is not a folder (expected <split>/<label>/*.txt)");
  std::vector<fs::path> files;
  for (const fs::directory_entry& label_dir : fs::directory_iterator(split_dir)) {
    if (!label_dir.is_directory()) continue;
    for (const fs::directory_entry& entry : fs::directory_iterator(label_dir.path()))
      if (entry.is_regular_file() && entry.path().extension() == ".txt") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  std::vector<LabelledText> rows;
  for (const fs::path& file : files) {
    LabelledText row{.text = read_whole(file.string()), .label = file.parent_path().filename().string(), .line = 0,
                     .file = file.string(), .group = -1};
    check_text(row, row.file);
    rows.push_back(std::move(row));
  }
  MEGA_CHECK(!rows.empty(), split_dir, " holds no <label>/*.txt files");
  return rows;
}

std::vector<std::string> label_order(const std::vector<LabelledText>& train, const std::vector<std::string>& given) {
  if (!given.empty()) {
    std::set<std::string> seen;
    for (const std::string& name : given) MEGA_CHECK(seen.insert(name).second, "labels names '", name, "' twice");
    return given;
  }
  std::set<std::string> names;
  for (const LabelledText& row : train) names.insert(row.label);
  std::vector<std::string> order(names.begin(), names.end());
  int64_t a = 0, b = 0;
  const bool integers = std::all_of(order.begin(), order.end(), [&](const std::string& s) { return parse_integer(s, a); });
  if (integers)
    std::sort(order.begin(), order.end(), [&](const std::string& x, const std::string& y) {
      parse_integer(x, a);
      parse_integer(y, b);
      return a < b;
    });
  return order;
}

// ---- Shared by the text rows ----

std::vector<TaskKey> tokenizer_keys() {
  auto key = [](std::string name, TaskValue def, double min, double max, std::vector<std::string> choices,
                std::string help) {
    return TaskKey{.name = std::move(name), .default_value = std::move(def), .min = min, .max = max,
                   .choices = std::move(choices), .help = std::move(help)};
  };
  const double inf = std::numeric_limits<double>::infinity();
  return {key("tokenizer", std::string("bytes"), -inf, inf, tokenizer_kinds(),
              "bytes (LRA's ids), chars, words or subword (SentencePiece), learnt on train on first use"),
          key("vocab_size", int64_t{8000}, 3, 1e9, {}, "chars, words, subword: ids in all, <pad> and <unk> included"),
          key("min_frequency", int64_t{1}, 1, 1e18, {}, "chars, words: rarer tokens of train become <unk>"),
          key("lowercase", false, -inf, inf, {}, "words: lowercase ASCII letters"),
          key("subword_model", std::string("unigram"), -inf, inf, {"unigram", "bpe"}, "subword: SentencePiece's model type"),
          key("model_file", std::string(""), -inf, inf, {},
              "subword: an existing SentencePiece .model (pad id 0) instead of training one")};
}

TokenizerOptions tokenizer_options(const TaskSettings& s) {
  return TokenizerOptions{.kind = s.get_string("tokenizer"), .vocab_size = s.get_int("vocab_size"),
                          .min_frequency = s.get_int("min_frequency"), .lowercase = s.get_bool("lowercase"),
                          .subword_model = s.get_string("subword_model"), .model_file = s.get_string("model_file")};
}

std::vector<LabelledText> carve_labelled(std::vector<LabelledText>& from, double fraction, uint64_t seed,
                                         uint64_t stream) {
  const int64_t n = static_cast<int64_t>(from.size());
  const int64_t take = static_cast<int64_t>(std::llround(fraction * static_cast<double>(n)));
  if (take == 0) return {};
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  Draws draws(seed, stream);
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[draws.below(i + 1)]);
  std::vector<char> chosen(n, 0);
  for (int64_t i = 0; i < take; ++i) chosen[order[i]] = 1;
  std::vector<LabelledText> kept, carved;
  for (int64_t i = 0; i < n; ++i) (chosen[i] ? carved : kept).push_back(std::move(from[i]));
  from = std::move(kept);
  return carved;
}

namespace {

std::unique_ptr<Tokenizer> saved_tokenizer(const DataSource& source, const TokenizerOptions& options) {
  std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(source.artifacts_dir);
  MEGA_CHECK(tokenizer->kind() == options.kind, "the tokenizer saved in ", source.artifacts_dir, " is ",
             tokenizer->kind(), ", the recipe's is ", options.kind);
  return tokenizer;
}

// The tokenizer saved in artifacts_dir, or one learnt on train and saved there.
std::unique_ptr<Tokenizer> run_tokenizer(const DataSource& source, const TokenizerOptions& options,
                                         const std::vector<LabelledText>& train) {
  if (!source.artifacts_dir.empty() && has_tokenizer(source.artifacts_dir)) return saved_tokenizer(source, options);
  MEGA_CHECK(!source.artifacts_read_only, source.artifacts_dir, " holds no tokenizer (tokenizer.json)");
  std::vector<std::string> texts;
  texts.reserve(train.size());
  for (const LabelledText& row : train) texts.push_back(row.text);
  if (options.kind == "subword" && options.model_file.empty()) {
    std::printf("training a SentencePiece %s tokenizer (vocab_size %lld) on %zu texts ...\n",
                options.subword_model.c_str(), static_cast<long long>(options.vocab_size), texts.size());
    std::fflush(stdout);
  }
  std::unique_ptr<Tokenizer> tokenizer = train_tokenizer(options, texts);
  if (!source.artifacts_dir.empty()) {
    const fs::path dir(source.artifacts_dir);
    fs::path tmp = dir;
    tmp += ".tmp-" + std::to_string(::getpid());
    fs::remove_all(tmp);
    fs::create_directories(tmp);
    tokenizer->save(tmp.string());
    fs::remove_all(dir);  // an incomplete folder (no tokenizer.json) from an interrupted run
    fs::rename(tmp, dir);
  }
  return tokenizer;
}

std::vector<int64_t> cut(std::vector<int64_t> ids, int64_t max_length) {
  if (max_length > 0 && static_cast<int64_t>(ids.size()) > max_length) ids.resize(static_cast<size_t>(max_length));
  return ids;
}

}  // namespace

TaskSplits tokenize_splits(const DataSource& source, const LabelledSplits& splits, const std::vector<std::string>& labels) {
  const TokenizerOptions options = tokenizer_options(source.settings);
  std::unique_ptr<Tokenizer> tokenizer = run_tokenizer(source, options, splits.train);
  std::map<std::string, int64_t> ids;
  for (size_t i = 0; i < labels.size(); ++i) ids[labels[i]] = static_cast<int64_t>(i);
  auto encode = [&](const std::vector<LabelledText>& rows) {
    std::vector<SequenceExample> out;
    out.reserve(rows.size());
    for (const LabelledText& row : rows) {
      auto found = ids.find(row.label);
      MEGA_CHECK(found != ids.end(), where_of(row), ": label '", excerpt(row.label), "' is not one of the labels (",
                 joined(labels), "); name every label in data.<task>.labels");
      SequenceExample e;
      e.ids = cut(tokenizer->encode(row.text), source.max_length);
      MEGA_CHECK(!e.ids.empty(), where_of(row), ": the text has no tokens");
      e.label = found->second;
      e.group = row.group;
      out.push_back(std::move(e));
    }
    return out;
  };
  return TaskSplits{encode(splits.train), encode(splits.val), encode(splits.test)};
}

std::vector<std::vector<int64_t>> encode_with_saved_tokenizer(const DataSource& source,
                                                              const std::vector<std::string>& texts) {
  MEGA_CHECK(!source.artifacts_dir.empty() && has_tokenizer(source.artifacts_dir), "no tokenizer saved in '",
             source.artifacts_dir, "' (tokenizer.json)");
  std::unique_ptr<Tokenizer> tokenizer = saved_tokenizer(source, tokenizer_options(source.settings));
  std::vector<std::vector<int64_t>> out;
  out.reserve(texts.size());
  for (const std::string& text : texts) out.push_back(cut(tokenizer->encode(text), source.max_length));
  return out;
}

// ---- The row ----

namespace {

const char* extension_of(const std::string& format) {
  return format == "csv" ? ".csv" : format == "tsv" ? ".tsv" : format == "jsonl" ? ".jsonl" : "";
}

// The split's file (or folder, for the folder form) in data.dir.
fs::path split_path(const std::string& dir, const std::string& format, const std::string& split) {
  return fs::path(dir) / (split + extension_of(format));
}

std::vector<LabelledText> read_split(const fs::path& path, const TaskSettings& s) {
  const std::string& format = s.get_string("format");
  if (format == "folder") return read_label_folders(path.string());
  if (format == "jsonl") return read_jsonl(path.string(), s.get_string("text_column"), s.get_string("label_column"));
  return read_delimited(path.string(), format == "csv" ? ',' : '\t', s.get_string("text_column"),
                        s.get_string("label_column"));
}

bool split_exists(const fs::path& path, const std::string& format) {
  return format == "folder" ? fs::is_directory(path) : fs::is_regular_file(path);
}

// The labels when the recipe does not name them: read from the train split, cached per file state so
// describe (called several times per command) reads it once.
std::vector<std::string> train_labels(const std::string& dir, const TaskSettings& s) {
  const std::string& format = s.get_string("format");
  const fs::path train = split_path(dir, format, "train");
  MEGA_CHECK(split_exists(train, format), "data.text_classification.labels is empty, so the labels are read from ",
             train.string(), ", which does not exist: put the data there or name the labels");
  // Built by appending: GCC 12 warns falsely (-Wrestrict, bug 105329) on "|" + std::string.
  std::string key = train.string();
  for (const std::string& part : {format, s.get_string("text_column"), s.get_string("label_column")}) key.append("|").append(part);
  if (format != "folder")
    key.append("|").append(std::to_string(fs::file_size(train))).append("|").append(
        std::to_string(fs::last_write_time(train).time_since_epoch().count()));
  static std::map<std::string, std::vector<std::string>> cache;
  auto found = cache.find(key);
  if (found != cache.end()) return found->second;
  std::vector<std::string> labels = label_order(read_split(train, s), {});
  cache[key] = labels;
  return labels;
}

std::vector<std::string> labels_of(const std::string& dir, const TaskSettings& s) {
  const std::string& given = s.get_string("labels");
  if (!given.empty()) return label_order({}, split_list(given));
  return train_labels(dir, s);
}

std::vector<TaskKeyProblem> check_text_classification(const TaskSettings& s) {
  std::vector<TaskKeyProblem> problems;
  try {
    check_tokenizer_options(tokenizer_options(s));
  } catch (const Error& e) {
    problems.push_back({"tokenizer", e.what()});
  }
  const double val = s.get_float("val_fraction"), test = s.get_float("test_fraction");
  if (val < 0 || test < 0 || val + test >= 1)
    problems.push_back({"val_fraction", "val_fraction + test_fraction must lie in [0, 1), got " +
                                            std::to_string(val) + " + " + std::to_string(test)});
  if (!s.get_string("labels").empty()) {
    try {
      label_order({}, split_list(s.get_string("labels")));
    } catch (const Error& e) {
      problems.push_back({"labels", e.what()});
    }
  }
  return problems;
}

// Described from the source, not the settings alone: without the labels option the label set is train's.
TaskDescription describe_text_classification(const DataSource& source) {
  const TaskSettings& s = source.settings;
  TaskDescription d;
  d.input = TaskInput{.kind = InputKind::Tokens, .vocab_size = tokenizer_vocab_size(tokenizer_options(s)),
                      .pad_id = kTokenPad, .pixel_mean = 0, .pixel_std = 1};
  d.label_names = labels_of(source.dir, s);
  d.num_labels = static_cast<int64_t>(d.label_names.size());
  d.metric = Metric::Accuracy;
  const std::string& f1 = s.get_string("f1_label");
  if (!f1.empty()) {
    auto found = std::find(d.label_names.begin(), d.label_names.end(), f1);
    MEGA_CHECK(found != d.label_names.end(), "f1_label '", f1, "' is not one of the labels (", joined(d.label_names), ")");
    d.f1_labels = {static_cast<int64_t>(found - d.label_names.begin())};
  }
  const std::string& format = s.get_string("format");
  const std::string ext = extension_of(format);
  if (format == "folder") d.files = {"train/<label>/*.txt", "val/<label>/*.txt (optional)", "test/<label>/*.txt (optional)"};
  else d.files = {"train" + ext, "val" + ext + " (optional)", "test" + ext + " (optional)"};
  return d;
}

TaskSplits load_text_classification(const DataSource& source) {
  const TaskSettings& s = source.settings;
  const std::string& format = s.get_string("format");
  const fs::path train_path = split_path(source.dir, format, "train");
  MEGA_CHECK(split_exists(train_path, format), "data.dir '", source.dir, "' lacks ", train_path.filename().string(),
             " (data.text_classification.format ", format, ")");
  LabelledSplits splits;
  splits.train = read_split(train_path, s);
  const uint64_t seed = static_cast<uint64_t>(s.get_int("split_seed"));
  const size_t n_train = splits.train.size();
  for (const auto& [name, target, fraction_key, stream] :
       {std::tuple<const char*, std::vector<LabelledText>*, const char*, uint64_t>{"test", &splits.test, "test_fraction", 1},
        {"val", &splits.val, "val_fraction", 2}}) {
    const fs::path path = split_path(source.dir, format, name);
    if (split_exists(path, format)) {
      *target = read_split(path, s);
    } else {
      // Both fractions are of the whole train file, so carving test first leaves val its share.
      const double fraction = s.get_float(fraction_key);
      const double of_rest = splits.train.empty() ? 0 : fraction * static_cast<double>(n_train) / static_cast<double>(splits.train.size());
      *target = carve_labelled(splits.train, std::min(of_rest, 1.0), seed, stream);
    }
  }
  return tokenize_splits(source, splits, labels_of(source.dir, s));
}

}  // namespace

Task text_classification_task() {
  auto key = [](std::string name, TaskValue def, std::vector<std::string> choices, std::string help, double min = -1e300,
                double max = 1e300) {
    return TaskKey{.name = std::move(name), .default_value = std::move(def), .min = min, .max = max,
                   .choices = std::move(choices), .help = std::move(help)};
  };
  std::vector<TaskKey> keys = {
      key("format", std::string("csv"), {"csv", "tsv", "jsonl", "folder"},
          "{train,val,test}.csv / .tsv (a header), .jsonl, or {train,val,test}/<label>/*.txt"),
      key("text_column", std::string("text"), {}, "csv, tsv: the text's column; jsonl: its key"),
      key("label_column", std::string("label"), {}, "csv, tsv: the label's column; jsonl: its key"),
      key("labels", std::string(""), {}, "comma-separated label names in id order; empty: train's, sorted"),
      key("f1_label", std::string(""), {}, "a label whose F1 is reported with accuracy (the positive class)"),
      key("val_fraction", 0.1, {}, "without val: the share of train moved to val", 0, 1),
      key("test_fraction", 0.1, {}, "without test: the share of train moved to test", 0, 1),
      key("split_seed", int64_t{0}, {}, "seed of the permutation carving val and test from train", 0, 9.2e18)};
  for (TaskKey& k : tokenizer_keys()) keys.push_back(std::move(k));
  return Task{
      .name = "text_classification",
      .help = "your labelled text: CSV/TSV with a header, JSON Lines or <split>/<label>/*.txt; a tokenizer of choice",
      .keys = std::move(keys),
      .check = check_text_classification,
      .describe = nullptr,
      .load = load_text_classification,
      .describe_source = describe_text_classification,
      .encode_texts = encode_with_saved_tokenizer,
  };
}

}  // namespace mega

// LRA Text and Retrieval loaders and byte tokenisation (data/text_tasks.h).
#include "data/text_tasks.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <numeric>

#include "core/error.h"
#include "data/draws.h"

namespace mega {

namespace fs = std::filesystem;

namespace {

std::string read_whole_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  MEGA_CHECK(in, "cannot open ", path.string());
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  MEGA_CHECK(!in.bad(), "error reading ", path.string());
  return bytes;
}

[[noreturn]] void line_error(const std::string& path, int64_t line, const std::string& what) {
  fail(path, ":", line, ": ", what);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Shows a field in an error message: at most 40 bytes.
std::string excerpt(std::string_view s) {
  return s.size() <= 40 ? std::string(s) : std::string(s.substr(0, 40)) + "...";
}

// Lines of a file with LF or CRLF ends; calls f(line, number) for each.
template <class F>
void for_each_line(const std::string& path, F&& f) {
  std::ifstream in(path, std::ios::binary);
  MEGA_CHECK(in, "cannot open ", path);
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    f(line, number);
  }
  MEGA_CHECK(!in.bad(), "error reading ", path);
}

void add_document(TextSplit& split, std::string_view text, int64_t label, const ByteEncoding& encoding) {
  bool truncated = false;
  SequenceExample example;
  example.ids = encode_bytes(text, encoding, &truncated);
  example.label = label;
  split.truncated += truncated;
  split.examples.push_back(std::move(example));
}

bool is_tree(const fs::path& dir) {
  return fs::is_directory(dir / "train" / "neg") && fs::is_directory(dir / "train" / "pos") &&
         fs::is_directory(dir / "test" / "neg") && fs::is_directory(dir / "test" / "pos");
}

bool is_tsv_form(const fs::path& dir) {
  return fs::is_regular_file(dir / "train.tsv") && fs::is_regular_file(dir / "test.tsv");
}

}  // namespace

std::vector<int64_t> encode_bytes(std::string_view text, const ByteEncoding& encoding, bool* truncated) {
  size_t keep = text.size();
  if (encoding.max_length > 0) {
    MEGA_CHECK(!encoding.append_eos || encoding.max_length >= 2,
               "[bytes] max_length must leave room for a byte besides <eos>, got ", encoding.max_length);
    size_t room = static_cast<size_t>(encoding.max_length - (encoding.append_eos ? 1 : 0));
    keep = std::min(keep, room);
  }
  if (truncated) *truncated = keep < text.size();
  std::vector<int64_t> ids;
  ids.reserve(keep + 1);
  for (size_t i = 0; i < keep; ++i) ids.push_back(static_cast<unsigned char>(text[i]) + kByteOffset);
  if (encoding.append_eos) ids.push_back(kByteEos);
  return ids;
}

std::string decode_bytes(const std::vector<int64_t>& ids) {
  std::string out;
  for (int64_t id : ids) {
    MEGA_CHECK(id >= 0 && id < kByteVocabSize, "[bytes] id ", id, " outside the byte vocabulary (0..",
               kByteVocabSize - 1, ")");
    if (id != kBytePad && id != kByteEos) out += static_cast<char>(id - kByteOffset);
  }
  return out;
}

TextSplit load_imdb_tree_split(const std::string& split_dir, const ByteEncoding& encoding) {
  TextSplit split;
  split.source = split_dir;
  const std::pair<const char*, int64_t> classes[] = {{"neg", 0}, {"pos", 1}};
  for (const auto& [folder, label] : classes) {
    fs::path dir = fs::path(split_dir) / folder;
    MEGA_CHECK(fs::is_directory(dir), "[text] ", dir.string(), " is not a folder (expected the aclImdb layout ",
               "SPLIT/neg/*.txt and SPLIT/pos/*.txt)");
    std::vector<fs::path> files;
    for (const fs::directory_entry& entry : fs::directory_iterator(dir))
      if (entry.is_regular_file() && entry.path().extension() == ".txt") files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    for (const fs::path& file : files) {
      std::string text = read_whole_file(file);
      if (text.empty()) {
        split.skipped["empty document"] += 1;
        continue;
      }
      add_document(split, text, label, encoding);
    }
  }
  return split;
}

TextSplit load_text_tsv(const std::string& path, const ByteEncoding& encoding) {
  TextSplit split;
  split.source = path;
  for_each_line(path, [&](const std::string& line, int64_t number) {
    if (line.empty()) {
      split.skipped["blank line"] += 1;
      return;
    }
    size_t tab = line.find('\t');
    if (tab == std::string::npos) line_error(path, number, "expected label<TAB>text, found no tab");
    std::string label_field = lower(std::string_view(line).substr(0, tab));
    std::string_view text = std::string_view(line).substr(tab + 1);
    if (number == 1 && label_field == "label" && lower(text) == "text") return;  // the optional header
    int64_t label;
    if (label_field == "0" || label_field == "neg") label = 0;
    else if (label_field == "1" || label_field == "pos") label = 1;
    else line_error(path, number, "label '" + excerpt(label_field) + "' is not 0, 1, neg or pos");
    if (text.empty()) {
      split.skipped["empty document"] += 1;
      return;
    }
    add_document(split, text, label, encoding);
  });
  return split;
}

TextSplit carve_split(TextSplit& train, double fraction, uint64_t seed) {
  MEGA_CHECK(fraction >= 0.0 && fraction < 1.0, "[text] val_fraction must lie in [0, 1), got ", fraction);
  TextSplit carved;
  carved.source = train.source + " (carved, fraction " + std::to_string(fraction) + ", seed " +
                  std::to_string(seed) + ")";
  const int64_t n = static_cast<int64_t>(train.examples.size());
  const int64_t take = static_cast<int64_t>(std::llround(fraction * static_cast<double>(n)));
  if (take == 0) return carved;
  // Fisher-Yates on the indices; the first `take` go to the carved split.
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  Draws draws(seed, 0);
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[draws.below(i + 1)]);
  std::vector<char> chosen(n, 0);
  for (int64_t i = 0; i < take; ++i) chosen[order[i]] = 1;
  std::vector<SequenceExample> kept;
  kept.reserve(n - take);
  carved.examples.reserve(take);
  for (int64_t i = 0; i < n; ++i) (chosen[i] ? carved.examples : kept).push_back(std::move(train.examples[i]));
  train.examples = std::move(kept);
  return carved;
}

TextSplits load_text_splits(const std::string& dir_name, const TextLoadOptions& options) {
  fs::path dir(dir_name);
  if (!is_tree(dir) && !is_tsv_form(dir) && is_tree(dir / "aclImdb")) dir /= "aclImdb";
  TextSplits splits;
  if (is_tree(dir)) {
    splits.train = load_imdb_tree_split((dir / "train").string(), options.encoding);
    splits.test = load_imdb_tree_split((dir / "test").string(), options.encoding);
    if (fs::is_directory(dir / "val")) {
      splits.val = load_imdb_tree_split((dir / "val").string(), options.encoding);
      return splits;
    }
  } else if (is_tsv_form(dir)) {
    splits.train = load_text_tsv((dir / "train.tsv").string(), options.encoding);
    splits.test = load_text_tsv((dir / "test.tsv").string(), options.encoding);
    if (fs::is_regular_file(dir / "val.tsv")) {
      splits.val = load_text_tsv((dir / "val.tsv").string(), options.encoding);
      return splits;
    }
  } else {
    fail("[text] ", dir_name, " holds neither the aclImdb tree ({train,test}/{neg,pos}/*.txt, optionally under ",
         "aclImdb/) nor train.tsv and test.tsv");
  }
  splits.val = carve_split(splits.train, options.val_fraction, options.val_seed);
  return splits;
}

bool text_dataset_exists(const std::string& dir) {
  return is_tree(dir) || is_tsv_form(dir) || is_tree(fs::path(dir) / "aclImdb");
}

PairFile load_aan_tsv(const std::string& path, const ByteEncoding& encoding) {
  PairFile file;
  file.path = path;
  for_each_line(path, [&](const std::string& line, int64_t number) {
    if (line.empty()) return;
    std::vector<std::string_view> fields;
    size_t begin = 0;
    while (true) {
      size_t tab = line.find('\t', begin);
      fields.push_back(std::string_view(line).substr(begin, tab == std::string::npos ? std::string::npos : tab - begin));
      if (tab == std::string::npos) break;
      begin = tab + 1;
    }
    if (fields.size() != 5)
      line_error(path, number, "expected 5 tab-separated fields (label, id1, id2, text1, text2), found " +
                                   std::to_string(fields.size()));
    PairExample example;
    const std::string_view label = fields[0];
    if (label == "0" || label == "0.0") example.label = 0;
    else if (label == "1" || label == "1.0") example.label = 1;
    else line_error(path, number, "label '" + excerpt(label) + "' is not 0 or 1");
    if (fields[3].empty() || fields[4].empty())
      line_error(path, number, std::string("empty text") + (fields[3].empty() ? "1" : "2"));
    bool cut1 = false, cut2 = false;
    example.ids1 = encode_bytes(fields[3], encoding, &cut1);
    example.ids2 = encode_bytes(fields[4], encoding, &cut2);
    file.truncated += cut1 + cut2;
    file.examples.push_back(std::move(example));
  });
  return file;
}

PairSplits load_aan_splits(const std::string& dir, const ByteEncoding& encoding) {
  auto path = [&](const char* split) { return (fs::path(dir) / ("new_aan_pairs." + std::string(split) + ".tsv")).string(); };
  return {load_aan_tsv(path("train"), encoding), load_aan_tsv(path("eval"), encoding),
          load_aan_tsv(path("test"), encoding)};
}

bool aan_dataset_exists(const std::string& dir) {
  for (const char* split : {"train", "eval", "test"})
    if (!fs::is_regular_file(fs::path(dir) / ("new_aan_pairs." + std::string(split) + ".tsv"))) return false;
  return true;
}

}  // namespace mega

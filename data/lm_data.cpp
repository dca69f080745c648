// Token streams for language modelling and the LM task rows (data/lm_data.h).
#include "data/lm_data.h"


#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <numeric>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/sotu.h"
#include "data/task.h"

namespace mega {

namespace fs = std::filesystem;

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

std::string byte_symbol(int64_t b) {
  char text[8];
  std::snprintf(text, sizeof text, "<0x%02X>", static_cast<unsigned>(b));
  return text;
}

// Calls visit(line) for every line of `text` (the last one need not end in '\n').
template <class Visit>
void for_each_line(std::string_view text, Visit&& visit) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    visit(text.substr(start, end - start));
    start = end + 1;
  }
}

std::string read_whole_file(const fs::path& path) {
  std::error_code error;
  MEGA_CHECK(fs::is_regular_file(path, error), "'", path.string(), "' is missing or not a regular file");
  std::ifstream in(path, std::ios::binary);
  MEGA_CHECK(in, "cannot open '", path.string(), "'");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  MEGA_CHECK(!in.bad(), "error reading '", path.string(), "'");
  return text;
}

void check_unit(const std::shared_ptr<const Vocabulary>& given, TokenUnit unit) {
  MEGA_CHECK(!given || given->unit() == unit, "the saved vocabulary is ", token_unit_name(given->unit()),
             " level, the data is read at ", token_unit_name(unit), " level");
}

}  // namespace

const char* token_unit_name(TokenUnit unit) { return unit == TokenUnit::Word ? "word" : "byte"; }

TokenUnit token_unit_from_name(const std::string& name) {
  if (name == "word") return TokenUnit::Word;
  if (name == "byte") return TokenUnit::Byte;
  fail("unknown token unit '", name, "' (expected word or byte)");
}

// ---- Vocabulary ----

Vocabulary Vocabulary::bytes(std::vector<int64_t> counts) {
  MEGA_CHECK(counts.empty() || counts.size() == 256, "[vocabulary] byte counts need 256 entries, got ", counts.size());
  Vocabulary v;
  v.unit_ = TokenUnit::Byte;
  v.counts_ = counts.empty() ? std::vector<int64_t>(256, 0) : std::move(counts);
  for (int64_t b = 0; b < 256; ++b) v.symbols_.push_back(byte_symbol(b));
  return v;
}

Vocabulary Vocabulary::words(const std::vector<std::string>& words, const std::vector<int64_t>& counts,
                             int64_t max_size, int64_t min_count) {
  MEGA_CHECK(words.size() == counts.size(), "[vocabulary] ", words.size(), " words but ", counts.size(), " counts");
  Vocabulary v;
  v.unit_ = TokenUnit::Word;
  for (int64_t i = 0; i < kSpecials; ++i) {
    v.symbols_.push_back(kSpecialSymbols[i]);
    v.counts_.push_back(0);
    v.index_[kSpecialSymbols[i]] = i;
  }
  std::vector<size_t> order(words.size());
  std::iota(order.begin(), order.end(), 0);
  // Stable: equal counts keep the order of first appearance, as Python's Counter.most_common.
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return counts[a] > counts[b]; });
  for (size_t i : order) {
    if (auto special = v.index_.find(words[i]); special != v.index_.end() && special->second < kSpecials) {
      v.counts_[static_cast<size_t>(special->second)] += counts[i];  // "<unk>" written in the text
      continue;
    }
    if (counts[i] < min_count || (max_size > 0 && v.size() >= max_size)) {
      v.counts_[kUnk] += counts[i];  // what becomes <unk> in train
      continue;
    }
    v.index_[words[i]] = v.size();
    v.symbols_.push_back(words[i]);
    v.counts_.push_back(counts[i]);
  }
  return v;
}

int64_t Vocabulary::id(std::string_view word) const {
  if (unit_ == TokenUnit::Byte) {
    MEGA_CHECK(word.size() == 1, "[vocabulary] a byte-level symbol is one byte");
    return static_cast<unsigned char>(word[0]);
  }
  auto found = index_.find(std::string(word));
  return found == index_.end() ? kUnk : found->second;
}

const std::string& Vocabulary::symbol(int64_t id) const {
  MEGA_CHECK(id >= 0 && id < size(), "[vocabulary] id ", id, " outside [0, ", size(), ")");
  return symbols_[static_cast<size_t>(id)];
}

std::string Vocabulary::to_dict_text() const {
  std::string text;
  for (int64_t i = unit_ == TokenUnit::Word ? kSpecials : 0; i < size(); ++i)
    text += symbols_[static_cast<size_t>(i)] + " " + std::to_string(counts_[static_cast<size_t>(i)]) + "\n";
  return text;
}

Vocabulary Vocabulary::from_dict_text(const std::string& text, TokenUnit unit, const std::string& file) {
  std::vector<std::string> symbols;
  std::vector<int64_t> counts;
  int64_t line_number = 0;
  for_each_line(text, [&](std::string_view line) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const size_t space = line.rfind(' ');
    int64_t count = -1;
    const char* end = line.data() + line.size();
    bool ok = space != std::string_view::npos && space > 0;
    if (ok) {
      auto [ptr, error] = std::from_chars(line.data() + space + 1, end, count);
      ok = error == std::errc() && ptr == end && count >= 0;
    }
    MEGA_CHECK(ok, file, ":", line_number, ": expected 'symbol count', got '", std::string(line), "'");
    symbols.emplace_back(line.substr(0, space));
    counts.push_back(count);
  });
  if (unit == TokenUnit::Byte) {
    MEGA_CHECK(symbols.size() == 256, file, ": a byte vocabulary has 256 lines, got ", symbols.size());
    for (int64_t b = 0; b < 256; ++b)
      MEGA_CHECK(symbols[static_cast<size_t>(b)] == byte_symbol(b), file, ":", b + 1, ": expected ", byte_symbol(b),
                 ", got '", symbols[static_cast<size_t>(b)], "'");
    return bytes(std::move(counts));
  }
  Vocabulary v;
  v.unit_ = TokenUnit::Word;
  for (int64_t i = 0; i < kSpecials; ++i) {
    v.symbols_.push_back(kSpecialSymbols[i]);
    v.counts_.push_back(0);
    v.index_[kSpecialSymbols[i]] = i;
  }
  for (size_t i = 0; i < symbols.size(); ++i) {
    MEGA_CHECK(line_words(symbols[i]).size() == 1, file, ":", i + 1, ": '", symbols[i], "' is not one word");
    MEGA_CHECK(v.index_.emplace(symbols[i], v.size()).second, file, ":", i + 1, ": '", symbols[i],
               "' appears twice (or is a special symbol)");
    v.symbols_.push_back(symbols[i]);
    v.counts_.push_back(counts[i]);
  }
  return v;
}

std::vector<int64_t> Vocabulary::encode(std::string_view text) const {
  std::vector<int64_t> ids;
  if (unit_ == TokenUnit::Byte) {
    for (char c : text) ids.push_back(static_cast<unsigned char>(c));
    return ids;
  }
  for (std::string_view word : line_words(text)) ids.push_back(id(word));
  return ids;
}

std::string Vocabulary::decode(const std::vector<int64_t>& ids) const {
  std::string text;
  for (int64_t id : ids) {
    if (unit_ == TokenUnit::Byte) {
      MEGA_CHECK(id >= 0 && id < 256, "[vocabulary] id ", id, " is not a byte");
      text += static_cast<char>(id);
    } else if (id == kEos) {
      text += "\n";
    } else {
      if (!text.empty() && text.back() != '\n') text += ' ';
      text += symbol(id);
    }
  }
  return text;
}

void write_vocabulary(const Vocabulary& vocabulary, const std::string& dir) {
  write_file_atomically((fs::path(dir) / "dict.txt").string(), vocabulary.to_dict_text());
}

Vocabulary read_vocabulary(const std::string& dir, TokenUnit unit) {
  const fs::path path = fs::path(dir) / "dict.txt";
  return Vocabulary::from_dict_text(read_whole_file(path), unit, path.string());
}

// ---- Word level ----

std::vector<std::string_view> line_words(std::string_view line) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_space(line[i])) ++i;
    size_t start = i;
    while (i < line.size() && !is_space(line[i])) ++i;
    if (i > start) words.push_back(line.substr(start, i - start));
  }
  return words;
}

void count_words(std::string_view text, std::vector<std::string>& words, std::vector<int64_t>& counts,
                 std::unordered_map<std::string, int64_t>& index) {
  for_each_line(text, [&](std::string_view line) {
    for (std::string_view word : line_words(line)) {
      auto [it, inserted] = index.try_emplace(std::string(word), static_cast<int64_t>(words.size()));
      if (inserted) {
        words.emplace_back(word);
        counts.push_back(0);
      }
      counts[static_cast<size_t>(it->second)] += 1;
    }
  });
}

std::vector<int64_t> encode_words(std::string_view text, const Vocabulary& vocabulary, EmptyLines empty_lines) {
  std::vector<int64_t> ids;
  for_each_line(text, [&](std::string_view line) {
    std::vector<std::string_view> words = line_words(line);
    if (words.empty() && empty_lines == EmptyLines::Skip) return;
    for (std::string_view word : words) ids.push_back(vocabulary.id(word));
    ids.push_back(Vocabulary::kEos);
  });
  return ids;
}

TokenStreams word_streams(std::string_view train, std::string_view valid, std::string_view test,
                          const WordOptions& options, std::shared_ptr<const Vocabulary> given) {
  check_unit(given, TokenUnit::Word);
  TokenStreams streams;
  if (given) {
    streams.vocabulary = std::move(given);
  } else {
    std::vector<std::string> words;
    std::vector<int64_t> counts;
    std::unordered_map<std::string, int64_t> index;
    count_words(train, words, counts, index);
    streams.vocabulary =
        std::make_shared<Vocabulary>(Vocabulary::words(words, counts, options.max_vocab, options.min_count));
  }
  streams.train = encode_words(train, *streams.vocabulary, options.empty_lines);
  streams.valid = encode_words(valid, *streams.vocabulary, options.empty_lines);
  streams.test = encode_words(test, *streams.vocabulary, options.empty_lines);
  return streams;
}

TokenStreams byte_streams(std::string_view train, std::string_view valid, std::string_view test) {
  TokenStreams streams;
  std::vector<int64_t> counts(256, 0);
  auto encode = [&](std::string_view text, bool count) {
    std::vector<int64_t> ids(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
      ids[i] = static_cast<unsigned char>(text[i]);
      if (count) counts[static_cast<size_t>(ids[i])] += 1;
    }
    return ids;
  };
  streams.train = encode(train, true);
  streams.valid = encode(valid, false);
  streams.test = encode(test, false);
  streams.vocabulary = std::make_shared<Vocabulary>(Vocabulary::bytes(std::move(counts)));
  return streams;
}

TokenStreams load_wikitext(const std::string& dir, const WordOptions& options, std::shared_ptr<const Vocabulary> given) {
  const fs::path root(dir);
  const std::string train = read_whole_file(root / "wiki.train.tokens");
  const std::string valid = read_whole_file(root / "wiki.valid.tokens");
  const std::string test = read_whole_file(root / "wiki.test.tokens");
  return word_streams(train, valid, test, options, std::move(given));
}

// ---- Byte level ----

TokenStreams load_raw_bytes(const std::string& path, int64_t train, int64_t valid, int64_t test) {
  const std::string bytes = read_whole_file(path);
  const int64_t need = train + valid + test;
  MEGA_CHECK(static_cast<int64_t>(bytes.size()) >= need, "'", path, "' holds ", bytes.size(), " bytes, fewer than the ",
             train, " + ", valid, " + ", test, " of the split");
  const std::string_view all(bytes);
  return byte_streams(all.substr(0, static_cast<size_t>(train)), all.substr(static_cast<size_t>(train), static_cast<size_t>(valid)),
                      all.substr(static_cast<size_t>(train + valid), static_cast<size_t>(test)));
}

// ---- A plain-text corpus folder ----

TokenStreams load_text_corpus(const std::string& dir, const CorpusOptions& options,
                              std::shared_ptr<const Vocabulary> given) {
  std::error_code error;
  MEGA_CHECK(fs::is_directory(dir, error), "corpus folder '", dir, "' is missing or not a folder");
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it) {
    if (it->path().filename().string().rfind('.', 0) == 0) {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file()) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  MEGA_CHECK(!files.empty(), "corpus folder '", dir, "' holds no files");
  std::string parts[3];
  if (options.split == CorpusSplit::ByFile) {
    const int64_t n = static_cast<int64_t>(files.size());
    const int64_t n_test = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(options.test_fraction * n)));
    const int64_t n_valid = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(options.valid_fraction * n)));
    MEGA_CHECK(n - n_test - n_valid >= 1, "corpus folder '", dir, "' holds ", n, " files: too few to split by file into ",
               n - n_test - n_valid, " train, ", n_valid, " valid and ", n_test, " test files");
    for (int64_t i = 0; i < n; ++i) {
      std::string text = read_whole_file(files[static_cast<size_t>(i)]);
      if (!text.empty() && text.back() != '\n') text += '\n';
      parts[i < n - n_test - n_valid ? 0 : i < n - n_test ? 1 : 2] += text;
    }
  } else {
    std::string all;
    for (const fs::path& file : files) {
      all += read_whole_file(file);
      if (!all.empty() && all.back() != '\n') all += '\n';
    }
    auto cut = [&](double fraction_before_end) {
      size_t at = static_cast<size_t>(std::floor(static_cast<double>(all.size()) * (1.0 - fraction_before_end)));
      if (options.unit == TokenUnit::Word)
        while (at > 0 && all[at - 1] != '\n') --at;  // a line stays whole
      return at;
    };
    const size_t valid_at = cut(options.valid_fraction + options.test_fraction), test_at = cut(options.test_fraction);
    parts[0] = all.substr(0, valid_at);
    parts[1] = all.substr(valid_at, test_at - valid_at);
    parts[2] = all.substr(test_at);
  }
  for (int i = 0; i < 3; ++i)
    MEGA_CHECK(!parts[i].empty(), "corpus folder '", dir, "': the ", i == 0 ? "train" : i == 1 ? "valid" : "test",
               " split is empty (too little text for the fractions)");
  if (options.unit == TokenUnit::Byte) {
    check_unit(given, TokenUnit::Byte);
    return byte_streams(parts[0], parts[1], parts[2]);
  }
  return word_streams(parts[0], parts[1], parts[2], options.words, std::move(given));
}

// ---- The State of the Union by year ----

TokenStreams sotu_streams(const std::vector<SotuText>& addresses, const SotuLmOptions& options,
                          std::shared_ptr<const Vocabulary> given) {
  std::string parts[3];
  for (const SotuText& a : addresses) {
    std::string& part = parts[a.year <= options.train_until ? 0 : a.year <= options.valid_until ? 1 : 2];
    part += a.text;
    if (!a.text.empty() && a.text.back() != '\n') part += '\n';
  }
  for (int i = 0; i < 3; ++i)
    MEGA_CHECK(!parts[i].empty(), "[sotu_lm] no address falls in the ", i == 0 ? "train" : i == 1 ? "valid" : "test",
               " years (train <= ", options.train_until, ", valid <= ", options.valid_until, ", test after)");
  if (options.unit == TokenUnit::Byte) {
    check_unit(given, TokenUnit::Byte);
    return byte_streams(parts[0], parts[1], parts[2]);
  }
  return word_streams(parts[0], parts[1], parts[2], options.words, std::move(given));
}

// ---- The task rows ----

namespace {

TaskKey int_key(std::string name, int64_t def, double min, double max, std::string help) {
  return TaskKey{.name = std::move(name), .default_value = def, .min = min, .max = max, .choices = {},
                 .help = std::move(help)};
}
TaskKey float_key(std::string name, double def, double min, double max, std::string help) {
  return TaskKey{.name = std::move(name), .default_value = def, .min = min, .max = max, .choices = {},
                 .help = std::move(help)};
}
TaskKey string_key(std::string name, std::string def, std::vector<std::string> choices, std::string help) {
  return TaskKey{.name = std::move(name), .default_value = std::move(def), .choices = std::move(choices),
                 .help = std::move(help)};
}

std::vector<TaskKey> word_keys() {
  return {int_key("max_vocab", 0, 0, 1e7, "word level: symbols kept, the 4 specials included (0: every train word)"),
          int_key("min_count", 1, 1, 1e12, "word level: train words seen fewer times become <unk>"),
          string_key("empty_lines", "eos", {"eos", "skip"},
                     "word level: a line without words gives </s> (fairseq's binarizer) or nothing")};
}

WordOptions word_options(const TaskSettings& s) {
  return WordOptions{.max_vocab = s.get_int("max_vocab"), .min_count = s.get_int("min_count"),
                     .empty_lines = s.get_string("empty_lines") == "skip" ? EmptyLines::Skip : EmptyLines::Eos};
}

std::vector<TaskKeyProblem> check_word_keys(const TaskSettings& s) {
  const int64_t max_vocab = s.get_int("max_vocab");
  if (max_vocab > 0 && max_vocab <= Vocabulary::kSpecials)
    return {{"max_vocab", "must be 0 (no cap) or more than the 4 special symbols, got " + std::to_string(max_vocab)}};
  return {};
}

TaskDescription lm_description(TokenUnit unit, std::vector<std::string> files) {
  TaskDescription d;
  d.kind = TaskKind::LanguageModel;
  d.input.kind = InputKind::Tokens;
  d.input.vocab_size = unit == TokenUnit::Byte ? 256 : 0;  // word level: from the train split
  d.input.pad_id = unit == TokenUnit::Byte ? 0 : Vocabulary::kPad;
  d.metric = unit == TokenUnit::Byte ? Metric::BitsPerByte : Metric::Perplexity;
  d.files = std::move(files);
  return d;
}

TaskSplits lm_splits(TokenStreams&& streams) {
  TaskSplits splits;
  auto one = [](std::vector<int64_t>&& ids) {
    std::vector<SequenceExample> examples(1);
    examples[0].ids = std::move(ids);
    return examples;
  };
  splits.train = one(std::move(streams.train));
  splits.val = one(std::move(streams.valid));
  splits.test = one(std::move(streams.test));
  splits.vocabulary = std::move(streams.vocabulary);
  return splits;
}

// ---- wikitext ----

TaskDescription describe_wikitext(const TaskSettings&) {
  return lm_description(TokenUnit::Word, {"wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"});
}

TaskSplits load_wikitext_row(const DataSource& source) {
  return lm_splits(load_wikitext(source.dir, word_options(source.settings), source.vocabulary));
}

// ---- enwik8 ----

TaskDescription describe_enwik8(const TaskSettings& s) { return lm_description(TokenUnit::Byte, {s.get_string("file")}); }

TaskSplits load_enwik8(const DataSource& source) {
  const TaskSettings& s = source.settings;
  return lm_splits(load_raw_bytes((fs::path(source.dir) / s.get_string("file")).string(), s.get_int("train_bytes"),
                                  s.get_int("valid_bytes"), s.get_int("test_bytes")));
}

// ---- text_corpus ----

TokenUnit unit_of(const TaskSettings& s) { return token_unit_from_name(s.get_string("level")); }

std::vector<TaskKeyProblem> check_text_corpus(const TaskSettings& s) {
  std::vector<TaskKeyProblem> problems = check_word_keys(s);
  if (s.get_float("valid_fraction") + s.get_float("test_fraction") >= 1)
    problems.push_back({"test_fraction", "valid_fraction + test_fraction must be below 1, leaving text to train on"});
  return problems;
}

TaskDescription describe_text_corpus(const TaskSettings& s) {
  return lm_description(unit_of(s), {"every file under data.dir"});
}

TaskSplits load_text_corpus_row(const DataSource& source) {
  const TaskSettings& s = source.settings;
  CorpusOptions options{.unit = unit_of(s),
                        .split = s.get_string("split") == "file" ? CorpusSplit::ByFile : CorpusSplit::ByFraction,
                        .valid_fraction = s.get_float("valid_fraction"),
                        .test_fraction = s.get_float("test_fraction"),
                        .words = word_options(s)};
  return lm_splits(load_text_corpus(source.dir, options, source.vocabulary));
}

// ---- sotu_lm ----

std::vector<TaskKeyProblem> check_sotu_lm(const TaskSettings& s) {
  std::vector<TaskKeyProblem> problems = check_word_keys(s);
  if (s.get_int("valid_until") < s.get_int("train_until"))
    problems.push_back({"valid_until", "must be >= train_until (the valid years follow the train years)"});
  return problems;
}

TaskDescription describe_sotu_lm(const TaskSettings& s) {
  return lm_description(unit_of(s), {"<year>_<president>_<party>.txt (data.generate: fetched from npm)"});
}

TaskSplits load_sotu_lm(const DataSource& source) {
  const TaskSettings& s = source.settings;
  std::vector<SotuAddress> addresses;
  std::error_code error;
  if (fs::is_directory(source.dir, error)) {
    addresses = read_sotu(source.dir);
  } else {
    MEGA_CHECK(source.generate, "data.dir '", source.dir, "' is not a folder of State of the Union addresses; ",
               "put the corpus there or set data.generate=true to fetch ", kSotuPackage, " from npm");
    addresses = fetch_sotu(s.get_string("sotu_cache"));
  }
  std::vector<SotuText> texts;
  for (SotuAddress& a : addresses) texts.push_back({a.year, std::move(a.text)});
  SotuLmOptions options{.unit = unit_of(s), .train_until = s.get_int("train_until"),
                        .valid_until = s.get_int("valid_until"), .words = word_options(s)};
  return lm_splits(sotu_streams(texts, options, source.vocabulary));
}

}  // namespace

Task wikitext_task() {
  return Task{.name = "wikitext",
              .help = "language modelling (word level): WikiText-103/-2 release files wiki.{train,valid,test}.tokens",
              .keys = word_keys(),
              .check = check_word_keys,
              .describe = describe_wikitext,
              .load = load_wikitext_row};
}

Task enwik8_task() {
  return Task{.name = "enwik8",
              .help = "language modelling (byte level): enwik8 or text8's raw file cut 90M/5M/5M bytes",
              .keys = {string_key("file", "enwik8", {}, "the raw file in data.dir (text8: text8)"),
                       int_key("train_bytes", 90'000'000, 1, 1e12, "the first bytes: train"),
                       int_key("valid_bytes", 5'000'000, 1, 1e12, "the next bytes: valid"),
                       int_key("test_bytes", 5'000'000, 1, 1e12, "the next bytes: test")},
              .check = nullptr,
              .describe = describe_enwik8,
              .load = load_enwik8};
}

Task text_corpus_task() {
  std::vector<TaskKey> keys = {
      string_key("level", "word", {"word", "byte"}, "tokens: whitespace-separated words or bytes"),
      string_key("split", "fraction", {"fraction", "file"},
                 "fraction: the joined text cut at the fractions; file: whole files to each split"),
      float_key("valid_fraction", 0.05, 0, 1, "the share of text (or files) for valid"),
      float_key("test_fraction", 0.05, 0, 1, "the share of text (or files) for test, at the end")};
  for (TaskKey& key : word_keys()) keys.push_back(std::move(key));
  return Task{.name = "text_corpus",
              .help = "language modelling on a folder of UTF-8 text files, at word or byte level",
              .keys = std::move(keys),
              .check = check_text_corpus,
              .describe = describe_text_corpus,
              .load = load_text_corpus_row};
}

Task sotu_lm_task() {
  std::vector<TaskKey> keys = {
      string_key("level", "word", {"word", "byte"}, "tokens: whitespace-separated words or bytes"),
      int_key("train_until", 2000, 1700, 3000, "train: addresses of years up to this one"),
      int_key("valid_until", 2010, 1700, 3000, "valid: the years after train_until up to this one; test: the rest"),
      string_key("sotu_cache", "data_cache", {}, "data.generate: where the SOTU npm package is fetched to")};
  for (TaskKey& key : word_keys()) keys.push_back(std::move(key));
  return Task{.name = "sotu_lm",
              .help = "language modelling on the State of the Union addresses (npm), split by year",
              .keys = std::move(keys),
              .check = check_sotu_lm,
              .describe = describe_sotu_lm,
              .load = load_sotu_lm};
}

}  // namespace mega

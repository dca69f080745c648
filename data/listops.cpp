// ListOps generation (the distribution of LRA's generate_tree) and the TSV loader (data/listops.h).
#include "data/listops.h"

#include <algorithm>
#include <cstdio>
#include <array>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <unordered_set>

#include "data/draws.h"

namespace mega {

namespace {

// The operators in LRA's order (OPERATORS = [MIN, MAX, MED, SUM_MOD]).
constexpr std::array<const char*, 4> kOperators = {"[MIN", "[MAX", "[MED", "[SM"};
constexpr double kValueProbability = 0.25;  // LRA's VALUE_P: below max depth, a node is an operator
                                            // when random() <= 0.25, else a digit

int64_t apply_operator(int op, std::vector<int64_t>& args) {
  switch (op) {
    case 0: return *std::min_element(args.begin(), args.end());
    case 1: return *std::max_element(args.begin(), args.end());
    case 2: {  // int(np.median(args)): the two middle values averaged, then truncated
      std::sort(args.begin(), args.end());
      size_t n = args.size();
      return n % 2 ? args[n / 2] : (args[n / 2 - 1] + args[n / 2]) / 2;
    }
    default: return std::accumulate(args.begin(), args.end(), int64_t{0}) % 10;
  }
}

// generate_tree(depth, max_depth, max_args) writing LRA's to_string form into `out`; returns the value
// and adds the node's token count (parentheses excluded) to `length`. The draws follow LRA's order:
// random(), then either the digit or the argument count, the arguments, and the operator last.
int64_t generate_node(int64_t depth, const ListOpsGeneratorOptions& o, Draws& draws, std::string& out,
                      int64_t& length) {
  const double r = depth < o.max_depth ? draws.uniform() : 1.0;
  if (r > kValueProbability) {
    int64_t digit = draws.below(10);
    out += static_cast<char>('0' + digit);
    length += 1;
    return digit;
  }
  const int64_t arguments = 2 + draws.below(o.max_args - 1);  // randint(2, max_args)
  // The operator is drawn after the arguments but written before them: render them apart first.
  std::vector<std::string> rendered(arguments);
  std::vector<int64_t> values(arguments);
  for (int64_t i = 0; i < arguments; ++i) values[i] = generate_node(depth + 1, o, draws, rendered[i], length);
  const int op = static_cast<int>(draws.below(4));
  length += 2;  // the operator and ']'
  for (int64_t i = 0; i <= arguments; ++i) out += "( ";
  out += kOperators[op];
  for (const std::string& argument : rendered) {
    out += ' ';
    out += argument;
    out += " )";
  }
  out += " ] )";
  return apply_operator(op, values);
}

[[noreturn]] void row_error(const std::string& path, int64_t line, const std::string& what) {
  fail(path, ":", line, ": ", what);
}

}  // namespace

std::vector<ListOpsRow> generate_listops(const ListOpsGeneratorOptions& o, int64_t count, uint64_t seed) {
  MEGA_CHECK(o.max_depth >= 1 && o.max_args >= 2 && o.min_length >= 1 && o.max_length >= o.min_length,
             "[listops] generator needs max_depth >= 1, max_args >= 2 and 1 <= min_length <= max_length, got "
             "max_depth ",
             o.max_depth, ", max_args ", o.max_args, ", lengths ", o.min_length, "..", o.max_length);
  MEGA_CHECK(count >= 0, "[listops] negative example count");
  Draws draws(seed, 0);
  std::vector<ListOpsRow> rows;
  std::unordered_set<std::string> seen;
  const int64_t max_tries = 1000 * count + 100000;
  for (int64_t tries = 0; static_cast<int64_t>(rows.size()) < count; ++tries) {
    MEGA_CHECK(tries < max_tries, "[listops] found only ", rows.size(), " of ", count, " distinct expressions of ",
               o.min_length, "..", o.max_length, " tokens in ", max_tries, " tries");
    ListOpsRow row;
    int64_t length = 0;
    row.target = generate_node(1, o, draws, row.source, length);
    if (length < o.min_length || length > o.max_length) continue;
    if (!seen.insert(row.source).second) continue;
    rows.push_back(std::move(row));
  }
  return rows;
}

void write_listops_tsv(const std::string& path, const std::vector<ListOpsRow>& rows) {
  std::ofstream out(path, std::ios::binary);
  MEGA_CHECK(out, "[listops] cannot write ", path);
  out << "Source\tTarget\r\n";
  for (const ListOpsRow& row : rows) out << row.source << '\t' << row.target << "\r\n";
  out.close();
  MEGA_CHECK(out, "[listops] error writing ", path);
}

void write_listops_dataset(const std::string& dir, const ListOpsGeneratorOptions& options, int64_t train,
                           int64_t val, int64_t test, uint64_t seed) {
  std::filesystem::create_directories(dir);
  std::vector<ListOpsRow> rows = generate_listops(options, train + val + test, seed);
  auto slice = [&](int64_t begin, int64_t end) {
    return std::vector<ListOpsRow>(rows.begin() + begin, rows.begin() + end);
  };
  write_listops_tsv(dir + "/basic_train.tsv", slice(0, train));
  write_listops_tsv(dir + "/basic_val.tsv", slice(train, train + val));
  write_listops_tsv(dir + "/basic_test.tsv", slice(train + val, train + val + test));
}

GeneratedDataset listops_generated_dataset(const ListOpsGeneratorOptions& options, int64_t train, int64_t val,
                                           int64_t test, uint64_t seed) {
  GeneratedDataset dataset;
  dataset.generator = "listops";
  dataset.settings = {{"seed", seed},
                      {"train_examples", train},
                      {"val_examples", val},
                      {"test_examples", test},
                      {"min_length", options.min_length},
                      {"max_length", options.max_length},
                      {"max_depth", options.max_depth},
                      {"max_args", options.max_args}};
  dataset.files = {"basic_train.tsv", "basic_val.tsv", "basic_test.tsv"};
  dataset.write = [=](const std::string& folder) { write_listops_dataset(folder, options, train, val, test, seed); };
  return dataset;
}

int64_t listops_token_id(std::string_view token) {
  if (token.size() == 1 && token[0] >= '0' && token[0] <= '9') return 2 + (token[0] - '0');
  if (token == "[MAX") return 12;
  if (token == "[MIN") return 13;
  if (token == "[MED") return 14;
  if (token == "[SM") return 15;
  if (token == "]") return 16;
  return kListOpsUnk;
}

std::string_view listops_token(int64_t id) {
  static constexpr std::array<std::string_view, kListOpsVocabSize> names = {
      "<pad>", "<unk>", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "[MAX", "[MIN", "[MED", "[SM", "]"};
  MEGA_CHECK(id >= 0 && id < kListOpsVocabSize, "[listops] token id ", id, " outside the vocabulary");
  return names[id];
}

std::vector<std::string_view> tokenize_listops(std::string_view source) {
  // Deleting '(' and ')' then splitting on whitespace is splitting on whitespace and parentheses, except
  // that a parenthesis inside a word joins its halves ("a(b" -> "ab"); LRA sources never do that.
  std::vector<std::string_view> tokens;
  size_t i = 0;
  auto separator = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; };
  while (i < source.size()) {
    while (i < source.size() && (separator(source[i]) || source[i] == '(' || source[i] == ')')) ++i;
    size_t begin = i;
    while (i < source.size() && !separator(source[i]) && source[i] != '(' && source[i] != ')') ++i;
    if (i > begin) tokens.push_back(source.substr(begin, i - begin));
  }
  return tokens;
}

ListOpsFile load_listops_tsv(const std::string& path, int64_t max_length) {
  std::ifstream in(path, std::ios::binary);
  MEGA_CHECK(in, "[listops] cannot open ", path);
  ListOpsFile file;
  file.path = path;
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (number == 1) {
      if (line != "Source\tTarget")
        row_error(path, number, "expected the header 'Source<TAB>Target', found '" + line.substr(0, 60) + "'");
      continue;
    }
    if (line.empty()) continue;
    size_t tab = line.find('\t');
    if (tab == std::string::npos || line.find('\t', tab + 1) != std::string::npos)
      row_error(path, number, "expected 2 tab-separated fields (Source, Target), found " +
                                  std::to_string(std::count(line.begin(), line.end(), '\t') + 1));
    std::string_view source(line.data(), tab), target(line.data() + tab + 1, line.size() - tab - 1);
    int64_t label = -1;
    auto [end, error] = std::from_chars(target.data(), target.data() + target.size(), label);
    if (error != std::errc() || end != target.data() + target.size() || label < 0 || label >= kListOpsClasses)
      row_error(path, number, "target '" + std::string(target) + "' is not a digit 0-9");
    std::vector<std::string_view> tokens = tokenize_listops(source);
    if (tokens.empty()) row_error(path, number, "empty source");
    SequenceExample example;
    example.label = label;
    if (max_length > 0 && static_cast<int64_t>(tokens.size()) > max_length) {
      tokens.resize(max_length);
      ++file.truncated;
    }
    example.ids.reserve(tokens.size());
    for (std::string_view token : tokens) {
      int64_t id = listops_token_id(token);
      file.unknown_tokens += id == kListOpsUnk;
      example.ids.push_back(id);
    }
    file.examples.push_back(std::move(example));
  }
  MEGA_CHECK(number >= 1, path, ": empty file (expected the header 'Source<TAB>Target')");
  return file;
}

ListOpsSplits load_listops_splits(const std::string& dir, int64_t max_length) {
  return {load_listops_tsv(dir + "/basic_train.tsv", max_length), load_listops_tsv(dir + "/basic_val.tsv", max_length),
          load_listops_tsv(dir + "/basic_test.tsv", max_length)};
}

bool listops_dataset_exists(const std::string& dir) {
  for (const char* split : {"train", "val", "test"})
    if (!std::filesystem::exists(dir + "/basic_" + split + ".tsv")) return false;
  return true;
}

}  // namespace mega

namespace mega {

namespace {

ListOpsGeneratorOptions generator_options(const TaskSettings& s) {
  ListOpsGeneratorOptions o;
  o.max_depth = s.get_int("max_depth");
  o.max_args = s.get_int("max_args");
  o.min_length = s.get_int("min_length");
  o.max_length = s.get_int("max_length");
  return o;
}

std::vector<TaskKeyProblem> check_listops(const TaskSettings& s) {
  if (s.get_int("min_length") > s.get_int("max_length"))
    return {{"min_length", std::to_string(s.get_int("min_length")) + " exceeds data.listops.max_length (" +
                               std::to_string(s.get_int("max_length")) + ")"}};
  return {};
}

TaskDescription describe_listops(const TaskSettings&) {
  TaskDescription d;
  d.input = TaskInput{.kind = InputKind::Tokens, .vocab_size = kListOpsVocabSize, .pad_id = kListOpsPad,
                      .pixel_mean = 0, .pixel_std = 1};
  d.num_labels = kListOpsClasses;
  d.metric = Metric::Accuracy;
  d.files = {"basic_train.tsv", "basic_val.tsv", "basic_test.tsv"};
  return d;
}

TaskSplits load_listops(const DataSource& source) {
  if (source.generate) {
    const GeneratedDataset generated = listops_generated_dataset(source.settings);
    const GenerationLock lock(source.dir);
    if (!generated_dataset_ready(source.dir, generated)) {
      std::printf("generating ListOps into %s ...\n", source.dir.c_str());
      std::fflush(stdout);
      generate_dataset(source.dir, generated);
    }
  }
  MEGA_CHECK(listops_dataset_exists(source.dir), "data.dir '", source.dir,
             "' lacks basic_{train,val,test}.tsv; put LRA's ListOps release there or set data.generate=true");
  ListOpsSplits splits = load_listops_splits(source.dir, source.max_length);
  return TaskSplits{std::move(splits.train.examples), std::move(splits.val.examples), std::move(splits.test.examples)};
}

}  // namespace

Task listops_task() {
  const double big = 1e9;
  auto key = [](std::string name, int64_t def, double min, double max, std::string help) {
    return TaskKey{.name = std::move(name), .default_value = def, .min = min, .max = max, .choices = {},
                   .help = std::move(help)};
  };
  return Task{
      .name = "listops",
      .help = "LRA ListOps: nested MAX/MIN/MED/SM over digits, 10 classes; LRA's TSV release or our generator",
      .keys = {key("seed", 0, 0, 9.2e18, "generator seed"),
               key("train_examples", 96000, 1, big, "generated training examples"),
               key("val_examples", 2000, 1, big, "generated validation examples"),
               key("test_examples", 2000, 1, big, "generated test examples"),
               key("min_length", 500, 1, big, "generated expressions' length in tokens, inclusive"),
               key("max_length", 2000, 1, big, "generated expressions' length in tokens, inclusive"),
               key("max_depth", 10, 1, 100, "generated expressions' nesting depth"),
               key("max_args", 10, 2, 1000, "arguments per operator")},
      .check = check_listops,
      .describe = describe_listops,
      .load = load_listops,
  };
}

GeneratedDataset listops_generated_dataset(const TaskSettings& s) {
  return listops_generated_dataset(generator_options(s), s.get_int("train_examples"), s.get_int("val_examples"),
                                   s.get_int("test_examples"), static_cast<uint64_t>(s.get_int("seed")));
}

}  // namespace mega

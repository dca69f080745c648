// ListOps: the generator against an independent evaluator and re-serialiser (written here from LRA's
// definition, not shared with data/), determinism, the loader on literal LRA-format lines, malformed
// files, and batching (padding, bucketing, seeded shuffling, resuming).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "data/listops.h"

using namespace mega;

namespace {

// A parsed expression: a digit or an operator with arguments.
struct Expr {
  std::string op;  // empty for a digit
  int digit = 0;
  std::vector<Expr> args;
};

// Parses tokens (parentheses already removed) from position i.
Expr parse(const std::vector<std::string>& tokens, size_t& i) {
  Expr e;
  const std::string& t = tokens.at(i++);
  if (t.size() == 1 && isdigit(t[0])) {
    e.digit = t[0] - '0';
    return e;
  }
  e.op = t;
  while (tokens.at(i) != "]") e.args.push_back(parse(tokens, i));
  ++i;
  return e;
}

int evaluate(const Expr& e) {
  if (e.op.empty()) return e.digit;
  std::vector<int> v;
  for (const Expr& a : e.args) v.push_back(evaluate(a));
  std::sort(v.begin(), v.end());
  if (e.op == "[MIN") return v.front();
  if (e.op == "[MAX") return v.back();
  if (e.op == "[SM") {
    int s = 0;
    for (int x : v) s += x;
    return s % 10;
  }
  EXPECT_EQ(e.op, "[MED");
  size_t n = v.size();  // numpy's median, then int(): truncation toward zero of a non-negative value
  double median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
  return static_cast<int>(median);
}

// LRA's to_string of its nested pairs: ((op, a0), a1) ... , ']').
std::string lra_string(const Expr& e) {
  if (e.op.empty()) return std::to_string(e.digit);
  std::string s = "( " + e.op + " " + lra_string(e.args[0]) + " )";
  for (size_t k = 1; k < e.args.size(); ++k) s = "( " + s + " " + lra_string(e.args[k]) + " )";
  return "( " + s + " ] )";
}

std::vector<std::string> strings(const std::vector<std::string_view>& views) {
  return std::vector<std::string>(views.begin(), views.end());
}

int depth(const Expr& e) {
  int d = 0;
  for (const Expr& a : e.args) d = std::max(d, depth(a));
  return e.op.empty() ? 1 : d + 1;
}

std::string temp_file(const std::string& name, const std::string& contents) {
  auto dir = std::filesystem::temp_directory_path() / "mega_test_listops";
  std::filesystem::create_directories(dir);
  std::string path = (dir / name).string();
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

void expect_load_error(const std::string& name, const std::string& contents, const std::string& needle) {
  std::string path = temp_file(name, contents);
  try {
    load_listops_tsv(path, 0);
    ADD_FAILURE() << "no error for " << name;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ":" + needle), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(ListOps, GeneratedLabelsFormatAndLengthsAreCorrect) {
  ListOpsGeneratorOptions o;
  o.min_length = 20;
  o.max_length = 120;
  o.max_depth = 6;
  o.max_args = 6;
  auto rows = generate_listops(o, 300, 7);
  ASSERT_EQ(rows.size(), 300u);
  std::set<std::string> distinct;
  std::set<int64_t> labels;
  for (const ListOpsRow& row : rows) {
    std::vector<std::string> tokens = strings(tokenize_listops(row.source));
    size_t i = 0;
    Expr e = parse(tokens, i);
    ASSERT_EQ(i, tokens.size()) << row.source;
    EXPECT_EQ(evaluate(e), row.target) << row.source;
    EXPECT_EQ(lra_string(e), row.source);  // LRA's parenthesisation, exactly
    EXPECT_GE(static_cast<int64_t>(tokens.size()), o.min_length);
    EXPECT_LE(static_cast<int64_t>(tokens.size()), o.max_length);
    EXPECT_LE(depth(e), o.max_depth);
    distinct.insert(row.source);
    labels.insert(row.target);
  }
  EXPECT_EQ(distinct.size(), rows.size());
  EXPECT_EQ(labels.size(), 10u);  // every class occurs
}

TEST(ListOps, GeneratorIsDeterministicInTheSeed) {
  ListOpsGeneratorOptions o;
  o.min_length = 10;
  o.max_length = 60;
  auto a = generate_listops(o, 50, 3), b = generate_listops(o, 50, 3), c = generate_listops(o, 50, 4);
  for (size_t k = 0; k < a.size(); ++k) {
    EXPECT_EQ(a[k].source, b[k].source);
    EXPECT_EQ(a[k].target, b[k].target);
  }
  EXPECT_NE(a[0].source, c[0].source);
}

TEST(ListOps, TokenizesALiteralLraLine) {
  // [MAX 2 9 [MIN 4 7 ] 0 ] in LRA's TSV form.
  const std::string source = "( ( ( ( ( [MAX 2 ) 9 ) ( ( ( [MIN 4 ) 7 ) ] ) ) 0 ) ] )";
  EXPECT_EQ(strings(tokenize_listops(source)),
            (std::vector<std::string>{"[MAX", "2", "9", "[MIN", "4", "7", "]", "0", "]"}));
  std::string path = temp_file("literal.tsv", "Source\tTarget\r\n" + source + "\t9\r\n( ( [SM 5 ) FOO ] )\t5\r\n");
  ListOpsFile file = load_listops_tsv(path, 0);
  ASSERT_EQ(file.examples.size(), 2u);
  EXPECT_EQ(file.examples[0].ids, (std::vector<int64_t>{12, 4, 11, 13, 6, 9, 16, 2, 16}));
  EXPECT_EQ(file.examples[0].label, 9);
  EXPECT_EQ(file.examples[1].ids, (std::vector<int64_t>{15, 7, kListOpsUnk, 16}));
  EXPECT_EQ(file.unknown_tokens, 1);
  for (int64_t id = 2; id < kListOpsVocabSize; ++id) EXPECT_EQ(listops_token_id(listops_token(id)), id);
  ListOpsFile cut = load_listops_tsv(path, 4);
  EXPECT_EQ(cut.examples[0].ids, (std::vector<int64_t>{12, 4, 11, 13}));
  EXPECT_EQ(cut.truncated, 1);
}

TEST(ListOps, WrittenDatasetLoadsBack) {
  ListOpsGeneratorOptions o;
  o.min_length = 10;
  o.max_length = 80;
  auto dir = (std::filesystem::temp_directory_path() / "mega_test_listops" / "set").string();
  write_listops_dataset(dir, o, 40, 10, 10, 1);
  std::set<std::string> seen;
  for (const char* split : {"train", "val", "test"}) {
    std::string path = dir + "/basic_" + split + ".tsv";
    ListOpsFile file = load_listops_tsv(path, 0);
    EXPECT_EQ(file.examples.size(), std::string(split) == "train" ? 40u : 10u);
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    EXPECT_EQ(line, "Source\tTarget\r");
    while (std::getline(in, line)) EXPECT_TRUE(seen.insert(line.substr(0, line.find('\t'))).second);
  }
}

TEST(ListOps, MalformedFilesNameFileAndLine) {
  expect_load_error("header.tsv", "Src\tTgt\n( [MAX 1 ] )\t1\n", "1: expected the header");
  expect_load_error("fields.tsv", "Source\tTarget\n( ( [MAX 1 ) ] )\t1\n( [MIN 2 ] )\t2\textra\n", "3: expected 2 tab");
  expect_load_error("nofield.tsv", "Source\tTarget\n( ( [MAX 1 ) ] )\n", "2: expected 2 tab");
  expect_load_error("target.tsv", "Source\tTarget\n( ( [MAX 1 ) ] )\tx\n", "2: target 'x'");
  expect_load_error("range.tsv", "Source\tTarget\n\n( ( [MAX 1 ) ] )\t12\n", "3: target '12'");
  expect_load_error("empty.tsv", "Source\tTarget\n ( )\t1\n", "2: empty source");
  EXPECT_THROW(load_listops_tsv("/nonexistent/basic_train.tsv", 0), Error);
}

TEST(Batching, PadsAndMasks) {
  std::vector<SequenceExample> examples = {{{5, 6, 7}, 1}, {{8}, 2}};
  Batch b = make_batch(examples, {1, 0}, 0, 4);
  EXPECT_EQ(b.ids.shape(), (Shape{2, 4}));
  EXPECT_EQ(b.ids.to_vector(), (std::vector<double>{8, 0, 0, 0, 5, 6, 7, 0}));
  EXPECT_EQ(b.mask.to_vector(), (std::vector<double>{1, 0, 0, 0, 1, 1, 1, 0}));
  EXPECT_EQ(b.labels.to_vector(), (std::vector<double>{2, 1}));
  EXPECT_EQ(b.tokens, 4);
}

TEST(Batching, EpochsCoverEveryExampleOnceBucketedAndSeeded) {
  std::vector<int64_t> lengths;
  for (int i = 0; i < 103; ++i) lengths.push_back((i * 37) % 50 + 1);
  BatchingOptions o;
  o.batch_size = 8;
  o.bucket_batches = 4;
  o.seed = 5;
  auto e0 = epoch_batches(lengths, o, 0), again = epoch_batches(lengths, o, 0), e1 = epoch_batches(lengths, o, 1);
  EXPECT_EQ(e0, again);
  EXPECT_NE(e0, e1);
  std::vector<int64_t> all;
  int64_t padding = 0;
  for (const auto& batch : e0) {
    all.insert(all.end(), batch.begin(), batch.end());
    int64_t longest = 0;
    for (int64_t i : batch) longest = std::max(longest, lengths[i]);
    for (int64_t i : batch) padding += longest - lengths[i];
  }
  std::sort(all.begin(), all.end());
  for (int i = 0; i < 103; ++i) EXPECT_EQ(all[i], i);
  // Without bucketing, the same data pads more.
  o.bucket_batches = 1;
  int64_t unbucketed = 0;
  for (const auto& batch : epoch_batches(lengths, o, 0)) {
    int64_t longest = 0;
    for (int64_t i : batch) longest = std::max(longest, lengths[i]);
    for (int64_t i : batch) unbucketed += longest - lengths[i];
  }
  EXPECT_LT(padding * 2, unbucketed);
}

TEST(Batching, StreamResumesFromASavedPosition) {
  std::vector<SequenceExample> examples;
  for (int i = 0; i < 30; ++i) examples.push_back({std::vector<int64_t>(1 + i % 7, 3), i % 10});
  BatchingOptions o;
  o.batch_size = 4;
  o.bucket_batches = 2;
  BatchStream stream(&examples, o);
  EXPECT_EQ(stream.batches_per_epoch(), 8);
  for (int k = 0; k < 11; ++k) stream.next();  // into the second epoch
  DataPosition saved = stream.position();
  EXPECT_EQ(saved, (DataPosition{1, 3}));
  std::vector<std::vector<int64_t>> expected;
  for (int k = 0; k < 7; ++k) expected.push_back(stream.next().indices);
  BatchStream resumed(&examples, o);
  resumed.set_position(saved);
  for (int k = 0; k < 7; ++k) EXPECT_EQ(resumed.next().indices, expected[k]) << "batch " << k;
  EXPECT_THROW(resumed.set_position({0, 8}), Error);
}

TEST(ListOps, SplitsLoadFromADirectory) {
  ListOpsGeneratorOptions o;
  o.min_length = 10;
  o.max_length = 40;
  auto dir = (std::filesystem::temp_directory_path() / "mega_test_listops" / "splits").string();
  std::filesystem::remove_all(dir);
  EXPECT_FALSE(listops_dataset_exists(dir));
  write_listops_dataset(dir, o, 12, 3, 4, 2);
  EXPECT_TRUE(listops_dataset_exists(dir));
  ListOpsSplits splits = load_listops_splits(dir, 0);
  EXPECT_EQ(splits.train.examples.size(), 12u);
  EXPECT_EQ(splits.val.examples.size(), 3u);
  EXPECT_EQ(splits.test.examples.size(), 4u);
}

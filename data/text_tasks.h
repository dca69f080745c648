// LRA Text (IMDB reviews, byte level) and Retrieval (AAN citation pairs, byte level) read from their
// release files, with LRA's byte tokenisation. No network: data/fetch.h fetches npm-packaged corpora.
//
// Byte ids (LRA's pipeline, lra_benchmarks/{text_classification,matching}/input_pipeline.py, encodes with
// tfds.deprecated.text.ByteTextEncoder() without extra tokens: UTF-8 byte b -> b + 1, 0 is padding):
//   0 <pad>, 1..256 the bytes 0x00..0xFF, 257 <eos>.
// LRA appends no end-of-sequence token; S4-style pipelines (and fairseq's binarised data, which Mega's
// LRA scripts use) append one. <eos> is therefore optional (ByteEncoding::append_eos, off by default as in
// LRA) and sits after the bytes, so ids 0..256 match LRA exactly; the vocabulary is 258 either way (a
// model trained without <eos> never sees id 257).
// Truncation as LRA's `inputs[:max_length]`: the bytes are cut to max_length (to max_length - 1 when
// <eos> is appended, so a sequence never exceeds max_length). Bytes are bytes: invalid UTF-8 is kept.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "data/batching.h"

namespace mega {

// ---- Byte tokenisation ----

constexpr int64_t kBytePad = 0;
constexpr int64_t kByteOffset = 1;  // byte b has id b + kByteOffset
constexpr int64_t kByteEos = 257;
constexpr int64_t kByteVocabSize = 258;

struct ByteEncoding {
  int64_t max_length = 4000;  // LRA and Mega: 4000 for Text and for each Retrieval document; <= 0: no limit
  bool append_eos = false;    // LRA: false
};

// `truncated` (if given) is set when bytes were cut.
std::vector<int64_t> encode_bytes(std::string_view text, const ByteEncoding& encoding, bool* truncated = nullptr);
// The bytes back (<pad> and <eos> dropped); for inspecting data.
std::string decode_bytes(const std::vector<int64_t>& ids);

// ---- Text: IMDB reviews, label 0 negative, 1 positive (tfds imdb_reviews) ----

struct TextSplit {
  std::string source;                     // the folder or file read
  std::vector<SequenceExample> examples;  // in the deterministic order described below
  int64_t truncated = 0;                  // documents cut to max_length
  std::map<std::string, int64_t> skipped; // reason -> count, e.g. "empty document"
};

struct TextSplits {
  TextSplit train, val, test;
};

struct TextLoadOptions {
  ByteEncoding encoding;
  // When the release has no validation split, this fraction of train is moved to val, chosen by a
  // permutation seeded by val_seed (both keep file order). LRA itself evaluates on the test split, so 0
  // (an empty val) is the default.
  double val_fraction = 0.0;
  uint64_t val_seed = 0;
};

// One split of the aclImdb tree: SPLIT_DIR/neg/*.txt (label 0) and SPLIT_DIR/pos/*.txt (label 1); other
// entries (unsup/, urls_*.txt, labeledBow.feat) are not read. Files are taken in byte order of their path
// (neg/ before pos/), so the order is the same on every machine. Empty files are skipped and counted.
TextSplit load_imdb_tree_split(const std::string& split_dir, const ByteEncoding& encoding);

// A TSV of `label<TAB>text` per line, LF or CRLF. An optional first line `label<TAB>text` (any case) is a
// header and skipped. Labels: 0/1 or neg/pos (any case). The text is everything after the first tab
// (tabs inside it are kept). A line without a tab or with another label is an error naming FILE:LINE;
// blank lines and empty texts are skipped and counted.
TextSplit load_text_tsv(const std::string& path, const ByteEncoding& encoding);

// A Text release folder DIR, either form:
//   the tree: DIR/train/{neg,pos}, DIR/test/{neg,pos}, and DIR/val/{neg,pos} if present (`mega lra-data`
//             writes one), else val carved from train (TextLoadOptions::val_fraction); DIR may also be the
//             folder holding aclImdb/;
//   the TSV:  DIR/train.tsv, DIR/test.tsv and DIR/val.tsv if present (else carved the same way).
// Anything else is an error saying what was looked for.
TextSplits load_text_splits(const std::string& dir, const TextLoadOptions& options);
// True when DIR holds one of the two forms.
bool text_dataset_exists(const std::string& dir);

// Moves round(fraction * n) examples, chosen by a Philox permutation seeded by `seed`, from `train` into
// the returned split; both keep their relative order.
TextSplit carve_split(TextSplit& train, double fraction, uint64_t seed);

// ---- Retrieval: AAN pairs, label 1 when the first paper cites the second ----

struct PairExample {
  std::vector<int64_t> ids1, ids2;
  int64_t label = 0;
};

struct PairFile {
  std::string path;
  std::vector<PairExample> examples;  // file order
  int64_t truncated = 0;              // documents (not pairs) cut to max_length
};

struct PairSplits {
  PairFile train, eval, test;
};

// new_aan_pairs.*.tsv: no header; per line label<TAB>id1<TAB>id2<TAB>text1<TAB>text2 (LF or CRLF). Labels
// 0/1, also written 0.0/1.0. A line with another column count, a bad label or an empty text is an error
// naming FILE:LINE; blank lines are skipped. Each text is encoded on its own (ByteEncoding per document).
PairFile load_aan_tsv(const std::string& path, const ByteEncoding& encoding);
// DIR/new_aan_pairs.{train,eval,test}.tsv (the LRA release's names).
PairSplits load_aan_splits(const std::string& dir, const ByteEncoding& encoding);
bool aan_dataset_exists(const std::string& dir);

}  // namespace mega

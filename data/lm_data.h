// Token streams for language modelling: the vocabulary (words or bytes), the loaders of WikiText's release
// files, of enwik8/text8's raw bytes, of a plain-text corpus folder and of the State of the Union by year,
// and the four task rows built on them (wikitext, enwik8, text_corpus, sotu_lm). A split is one stream of
// token ids; the trainer cuts it into segments (data/lm_batching.h).
//
// Word level follows fairseq's preprocessing of WikiText-103 (fairseq-preprocess --only-source, then
// eval_lm):
//   - a line is split on ASCII whitespace (space, \t, \n, \v, \f, \r) into words, and </s> (fairseq's eos)
//     ends every line; a line without words gives </s> alone (fairseq's binarizer appends eos to every
//     line: WikiText-103's test split is 245,569 tokens that way), or nothing with empty_lines: skip.
//   - text is bytes: a word is any byte string between whitespace; a byte sequence that is not UTF-8 is
//     kept inside its word as it is (fairseq reads UTF-8 and would fail on it), and Unicode spaces other
//     than ASCII ones (U+00A0, ...) do not split words.
//   - the vocabulary is fairseq's Dictionary: <s> 0, <pad> 1, </s> 2, <unk> 3, then the train split's words
//     by count, most frequent first, ties in order of first appearance (Counter.most_common's order);
//     words below min_count or past max_size become <unk>; "<unk>" in the text (WikiText writes it) is
//     the <unk> id. Valid/test words absent from it are <unk>. No padding_factor: the size is not rounded
//     up to a multiple of 8 with made-up words.
//   - saved as fairseq's dict.txt: one "word count" line per symbol after the four specials, in id order,
//     so fairseq's Dictionary.load reads it and so does read_vocabulary.
// Byte level: ids are the byte values 0-255 (enwik8's 1.02 bits per byte are per byte); pad id 0 (NUL,
// absent from text). Saved as 256 "<0xNN> count" lines.
//
// Every split is scored (and trained on) after a context token, begin_id: </s> at word level (the stream
// reads as if after a line end, as fairseq's TokenBlockDataset starts a stream with eos), '\n' at byte level.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace mega {

struct Task;

enum class TokenUnit { Word, Byte };
const char* token_unit_name(TokenUnit unit);  // "word", "byte"
TokenUnit token_unit_from_name(const std::string& name);

class Vocabulary {
 public:
  static constexpr int64_t kBos = 0, kPad = 1, kEos = 2, kUnk = 3, kSpecials = 4;  // word level
  static constexpr const char* kSpecialSymbols[kSpecials] = {"<s>", "<pad>", "</s>", "<unk>"};

  // The 256 byte values; counts (256 or empty) are what dict.txt records.
  static Vocabulary bytes(std::vector<int64_t> counts = {});
  // Words by count (ties: the order of `words`, which is first appearance), then cut: max_size counts
  // every symbol, the four specials included (0: no cap); words seen fewer than min_count times are left out.
  static Vocabulary words(const std::vector<std::string>& words, const std::vector<int64_t>& counts, int64_t max_size,
                          int64_t min_count);

  TokenUnit unit() const { return unit_; }
  int64_t size() const { return static_cast<int64_t>(symbols_.size()); }
  int64_t pad_id() const { return unit_ == TokenUnit::Word ? kPad : 0; }
  int64_t eos_id() const { return unit_ == TokenUnit::Word ? kEos : '\n'; }
  int64_t begin_id() const { return eos_id(); }  // the context before a split's first token
  int64_t id(std::string_view word) const;      // word level: kUnk when absent
  const std::string& symbol(int64_t id) const;  // "<0x41>" at byte level
  int64_t count(int64_t id) const { return counts_.at(static_cast<size_t>(id)); }

  // dict.txt's text (see above), and back; errors name `file` and the line.
  std::string to_dict_text() const;
  static Vocabulary from_dict_text(const std::string& text, TokenUnit unit, const std::string& file);

  // For `mega generate`: text to ids (words split on whitespace, "</s>" the eos; bytes as they are), and
  // ids to text (words joined by spaces with </s> as a line end; bytes as they are).
  std::vector<int64_t> encode(std::string_view text) const;
  std::string decode(const std::vector<int64_t>& ids) const;

 private:
  TokenUnit unit_ = TokenUnit::Word;
  std::vector<std::string> symbols_;
  std::vector<int64_t> counts_;
  std::unordered_map<std::string, int64_t> index_;
};

// Writes DIR/dict.txt through a temporary file and a rename; reads it back.
void write_vocabulary(const Vocabulary& vocabulary, const std::string& dir);
Vocabulary read_vocabulary(const std::string& dir, TokenUnit unit);

struct TokenStreams {
  std::shared_ptr<const Vocabulary> vocabulary;
  std::vector<int64_t> train, valid, test;
};

// ---- Word level ----

enum class EmptyLines { Eos, Skip };  // a line without words: </s> alone (fairseq), or nothing

// The words of one line (ASCII whitespace separates them).
std::vector<std::string_view> line_words(std::string_view line);
// Every word of `text` with its count, in order of first appearance (what Vocabulary::words takes).
void count_words(std::string_view text, std::vector<std::string>& words, std::vector<int64_t>& counts,
                 std::unordered_map<std::string, int64_t>& index);
// The ids of `text`, line by line, each line ending in </s>.
std::vector<int64_t> encode_words(std::string_view text, const Vocabulary& vocabulary, EmptyLines empty_lines);

struct WordOptions {
  int64_t max_vocab = 0;  // 0: every train word
  int64_t min_count = 1;
  EmptyLines empty_lines = EmptyLines::Eos;
};
// Builds the vocabulary from `train` (unless `given`, a saved one, is set) and encodes the three texts.
TokenStreams word_streams(std::string_view train, std::string_view valid, std::string_view test,
                          const WordOptions& options, std::shared_ptr<const Vocabulary> given = nullptr);
TokenStreams byte_streams(std::string_view train, std::string_view valid, std::string_view test);

// WikiText's release: DIR/wiki.{train,valid,test}.tokens (WikiText-103 and WikiText-2 alike).
TokenStreams load_wikitext(const std::string& dir, const WordOptions& options,
                           std::shared_ptr<const Vocabulary> given = nullptr);

// ---- Byte level ----

// enwik8 / text8: one raw file cut into its first `train` bytes, the next `valid`, the next `test` (the
// standard 90M/5M/5M); the file must hold at least train + valid + test bytes, and bytes past them are
// left out (enwik8 is exactly 10^8).
TokenStreams load_raw_bytes(const std::string& path, int64_t train, int64_t valid, int64_t test);

// ---- A plain-text corpus folder ----

enum class CorpusSplit { ByFile, ByFraction };
struct CorpusOptions {
  TokenUnit unit = TokenUnit::Word;
  CorpusSplit split = CorpusSplit::ByFraction;
  double valid_fraction = 0.05, test_fraction = 0.05;
  WordOptions words;
};
// Every regular file under DIR (recursively, hidden ones left out), in path order. ByFile: the first files
// train, then valid, then test, ceil(fraction * files) each (at least one); ByFraction: the files' text
// joined, cut at the fractions (the last fractions valid and test), each cut moved back to a line start
// at word level. Errors name the folder.
TokenStreams load_text_corpus(const std::string& dir, const CorpusOptions& options,
                              std::shared_ptr<const Vocabulary> given = nullptr);

// ---- The State of the Union by year ----

struct SotuLmOptions {
  TokenUnit unit = TokenUnit::Word;
  int64_t train_until = 2000;  // train: years <= train_until; valid: up to valid_until; test: the rest
  int64_t valid_until = 2010;
  WordOptions words;
};
struct SotuText {
  int64_t year = 0;
  std::string text;
};
// Addresses in name order; each address's text ends with a newline if it lacks one.
TokenStreams sotu_streams(const std::vector<SotuText>& addresses, const SotuLmOptions& options,
                          std::shared_ptr<const Vocabulary> given = nullptr);

// ---- The task rows ----

Task wikitext_task();
Task enwik8_task();
Task text_corpus_task();
Task sotu_lm_task();

}  // namespace mega

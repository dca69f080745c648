// Tokenizers for text classification, chosen in the recipe (data.text_classification.tokenizer):
//   bytes    LRA's byte ids (data/text_tasks.h): 0 <pad>, 1..256 the bytes, 257 <eos>; nothing is learnt.
//   chars    Unicode characters (code points of the UTF-8 text) seen at least min_frequency times in the
//            training split, the most frequent first, at most vocab_size ids in all.
//   words    words (runs of letters, digits, '_' and non-ASCII characters; every other non-space ASCII
//            character is a token of its own; whitespace separates), optionally lowercased, the
//            vocab_size - 2 most frequent with at least min_frequency occurrences.
//   subword  SentencePiece (unigram or BPE) trained on the training split with vocab_size pieces
//            (fewer when the text cannot fill them), with byte fallback so no character is unknown; or
//            an existing .model file (model_file).
// Ids: 0 is <pad> for every kind; chars, words and subword use 1 for <unk>. vocab_size() is what the
// model's embedding holds: a learnt vocabulary may use fewer ids (the rest stay unused), so the model's
// size is known from the recipe before any text is read.
// Text that is not valid UTF-8 is fine: bytes keeps every byte; chars, words and subword read each invalid
// byte as U+FFFD (Python's errors="replace"), so the saved vocabulary is valid UTF-8 JSON.
// A learnt tokenizer is saved in a folder (tokenizer.json, plus tokenizer.model for subword) that travels
// with every checkpoint, so `mega eval` and `mega predict` tokenize as training did.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mega {

struct TokenizerOptions {
  std::string kind = "bytes";           // bytes, chars, words, subword
  int64_t vocab_size = 8000;            // chars, words, subword (trained): ids in all, <pad> and <unk> included
  int64_t min_frequency = 1;            // chars, words: fewer occurrences in train make a token <unk>
  bool lowercase = false;               // words: ASCII letters lowercased before counting and encoding
  std::string subword_model = "unigram";  // subword: unigram or bpe
  std::string model_file;               // subword: an existing SentencePiece .model instead of training
};

const std::vector<std::string>& tokenizer_kinds();  // bytes, chars, words, subword

constexpr int64_t kTokenPad = 0;
constexpr int64_t kTokenUnk = 1;  // chars, words, subword

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual const std::string& kind() const = 0;
  virtual int64_t vocab_size() const = 0;
  // The ids of a text, all of it (the caller truncates).
  virtual std::vector<int64_t> encode(std::string_view text) const = 0;
  // Writes tokenizer.json (and tokenizer.model) into `dir`, which exists.
  virtual void save(const std::string& dir) const = 0;
};

// The vocabulary size the options give without reading any text: bytes 258; subword with a model_file
// that file's piece count; otherwise options.vocab_size. Errors name the option.
int64_t tokenizer_vocab_size(const TokenizerOptions& options);
// Checks the options alone (kind, sizes, subword_model); the message names the option.
void check_tokenizer_options(const TokenizerOptions& options);

// Learns the tokenizer the options describe from the training texts (bytes and a model_file learn
// nothing).
std::unique_ptr<Tokenizer> train_tokenizer(const TokenizerOptions& options, const std::vector<std::string>& texts);
// Reads a folder written by Tokenizer::save; errors name the file.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir);
bool has_tokenizer(const std::string& dir);  // dir/tokenizer.json exists

// Valid UTF-8 with every invalid byte replaced by U+FFFD.
std::string sanitize_utf8(std::string_view text);

}  // namespace mega

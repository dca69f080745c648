// Byte, character, word and SentencePiece tokenizers (data/tokenizer.h).
#include "data/tokenizer.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_file.h"
#include "data/sentencepiece/sentencepiece_module.h"
#include "data/text_tasks.h"

namespace mega {

namespace fs = std::filesystem;

namespace {

constexpr const char* kJsonName = "tokenizer.json";
constexpr const char* kModelName = "tokenizer.model";

// The length of the valid UTF-8 sequence starting at s[i], or 0 when the byte there starts none.
size_t utf8_length(std::string_view s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 0;
  // Overlong forms, surrogates and code points past U+10FFFF are invalid too.
  const unsigned char c1 = static_cast<unsigned char>(n > 1 ? s[i + 1] : 0);
  if (n == 2 && c < 0xC2) return 0;
  if (n == 3 && ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0))) return 0;
  if (n == 4 && ((c == 0xF0 && c1 < 0x90) || c > 0xF4 || (c == 0xF4 && c1 >= 0x90))) return 0;
  return n;
}

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// The characters of (sanitized) UTF-8 text.
std::vector<std::string_view> characters(std::string_view text) {
  std::vector<std::string_view> out;
  for (size_t i = 0; i < text.size();) {
    const size_t n = std::max<size_t>(1, utf8_length(text, i));
    out.push_back(text.substr(i, n));
    i += n;
  }
  return out;
}

bool is_word_byte(unsigned char c) { return std::isalnum(c) || c == '_' || c >= 0x80; }

std::vector<std::string> words(std::string_view text, bool lowercase) {
  std::vector<std::string> out;
  std::string word;
  auto flush = [&] {
    if (!word.empty()) out.push_back(std::move(word));
    word.clear();
  };
  for (char ch : text) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (is_word_byte(c)) {
      word += lowercase ? static_cast<char>(std::tolower(c)) : ch;
    } else {
      flush();
      if (!std::isspace(c)) out.emplace_back(1, ch);
    }
  }
  flush();
  return out;
}

// The tokens kept from counts: at least min_frequency, most frequent first (ties in byte order), at most
// `room` of them.
std::vector<std::string> most_frequent(const std::unordered_map<std::string, int64_t>& counts, int64_t min_frequency,
                                       int64_t room) {
  std::vector<std::pair<std::string, int64_t>> kept;
  for (const auto& [token, count] : counts)
    if (count >= min_frequency) kept.emplace_back(token, count);
  std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  if (static_cast<int64_t>(kept.size()) > room) kept.resize(static_cast<size_t>(room));
  std::vector<std::string> tokens;
  for (auto& [token, count] : kept) tokens.push_back(std::move(token));
  return tokens;
}

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  out.flush();
  MEGA_CHECK(out.good(), "[tokenizer] cannot write ", path.string());
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  MEGA_CHECK(in, "[tokenizer] cannot open ", path.string());
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  MEGA_CHECK(!in.bad(), "[tokenizer] error reading ", path.string());
  return bytes;
}

// ---- bytes ----

class ByteTokenizer : public Tokenizer {
 public:
  const std::string& kind() const override { return kind_; }
  int64_t vocab_size() const override { return kByteVocabSize; }
  std::vector<int64_t> encode(std::string_view text) const override {
    return encode_bytes(text, ByteEncoding{.max_length = 0, .append_eos = false});
  }
  void save(const std::string& dir) const override {
    write_file(fs::path(dir) / kJsonName, nlohmann::json{{"kind", kind_}, {"vocab_size", vocab_size()}}.dump(2) + "\n");
  }

 private:
  std::string kind_ = "bytes";
};

// ---- chars and words: a vocabulary list; id = 2 + position ----

class VocabularyTokenizer : public Tokenizer {
 public:
  VocabularyTokenizer(std::string kind, int64_t vocab_size, bool lowercase, std::vector<std::string> tokens)
      : kind_(std::move(kind)), vocab_size_(vocab_size), lowercase_(lowercase), tokens_(std::move(tokens)) {
    MEGA_CHECK(static_cast<int64_t>(tokens_.size()) + 2 <= vocab_size_, "[tokenizer] ", tokens_.size(),
               " tokens do not fit a vocabulary of ", vocab_size_, " with <pad> and <unk>");
    for (size_t i = 0; i < tokens_.size(); ++i) ids_.emplace(tokens_[i], static_cast<int64_t>(i) + 2);
  }
  const std::string& kind() const override { return kind_; }
  int64_t vocab_size() const override { return vocab_size_; }
  std::vector<int64_t> encode(std::string_view text) const override {
    const std::string clean = sanitize_utf8(text);
    std::vector<int64_t> ids;
    auto id_of = [&](const std::string& token) {
      auto found = ids_.find(token);
      return found == ids_.end() ? kTokenUnk : found->second;
    };
    if (kind_ == "chars") {
      for (std::string_view c : characters(clean)) ids.push_back(id_of(std::string(c)));
    } else {
      for (const std::string& w : words(clean, lowercase_)) ids.push_back(id_of(w));
    }
    return ids;
  }
  void save(const std::string& dir) const override {
    nlohmann::json j{{"kind", kind_}, {"vocab_size", vocab_size_}, {"lowercase", lowercase_}, {"tokens", tokens_}};
    write_file(fs::path(dir) / kJsonName, j.dump(2) + "\n");
  }

 private:
  std::string kind_;
  int64_t vocab_size_;
  bool lowercase_;
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int64_t> ids_;
};

std::unique_ptr<Tokenizer> learn_vocabulary(const TokenizerOptions& o, const std::vector<std::string>& texts) {
  std::unordered_map<std::string, int64_t> counts;
  for (const std::string& text : texts) {
    const std::string clean = sanitize_utf8(text);
    if (o.kind == "chars") {
      for (std::string_view c : characters(clean)) counts[std::string(c)] += 1;
    } else {
      for (std::string& w : words(clean, o.lowercase)) counts[std::move(w)] += 1;
    }
  }
  return std::make_unique<VocabularyTokenizer>(o.kind, o.vocab_size, o.lowercase,
                                               most_frequent(counts, o.min_frequency, o.vocab_size - 2));
}

// ---- subword: SentencePiece, through its module (data/sentencepiece/sentencepiece_module.h) ----

// The module's functions, loaded once. It lies beside the running program (MEGA_SENTENCEPIECE_MODULE
// names another path).
struct SentencePieceModule {
  decltype(&mega_spm_train) train;
  decltype(&mega_spm_load) load;
  decltype(&mega_spm_free_processor) free_processor;
  decltype(&mega_spm_piece_size) piece_size;
  decltype(&mega_spm_pad_id) pad_id;
  decltype(&mega_spm_encode) encode;

  static const SentencePieceModule& get() {
    static const SentencePieceModule module = open();
    return module;
  }

  // Takes a malloc()ed message from the module.
  static std::string take_message(char* error) {
    std::string message = error ? error : "(no message)";
    std::free(error);
    return message;
  }

 private:
  static SentencePieceModule open() {
    std::string path;
    if (const char* given = std::getenv("MEGA_SENTENCEPIECE_MODULE"); given && *given) {
      path = given;
    } else {
      std::error_code error;
      const fs::path program = fs::read_symlink("/proc/self/exe", error);
      path = ((error ? fs::path(".") : program.parent_path()) / "libmega_sentencepiece.so").string();
    }
    // Local and deep-bound: SentencePiece's bundled protobuf must neither see nor be seen by the system's.
#ifdef __SANITIZE_ADDRESS__  // GCC defines it under -fsanitize=address
    fail("[tokenizer] SentencePiece is not available in an AddressSanitizer build: its module needs ",
         "RTLD_DEEPBIND, which the sanitizer runtime refuses (google/sanitizers#611)");
#endif
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    MEGA_CHECK(handle, "[tokenizer] cannot load the SentencePiece module ", path, " (built beside the mega binary; ",
               "needs libsentencepiece0): ", ::dlerror());
    SentencePieceModule m;
    auto symbol = [&](const char* name) {
      void* address = ::dlsym(handle, name);
      MEGA_CHECK(address, "[tokenizer] the SentencePiece module ", path, " lacks ", name);
      return address;
    };
    m.train = reinterpret_cast<decltype(&mega_spm_train)>(symbol("mega_spm_train"));
    m.load = reinterpret_cast<decltype(&mega_spm_load)>(symbol("mega_spm_load"));
    m.free_processor = reinterpret_cast<decltype(&mega_spm_free_processor)>(symbol("mega_spm_free_processor"));
    m.piece_size = reinterpret_cast<decltype(&mega_spm_piece_size)>(symbol("mega_spm_piece_size"));
    m.pad_id = reinterpret_cast<decltype(&mega_spm_pad_id)>(symbol("mega_spm_pad_id"));
    m.encode = reinterpret_cast<decltype(&mega_spm_encode)>(symbol("mega_spm_encode"));
    return m;
  }
};

class SubwordTokenizer : public Tokenizer {
 public:
  // `vocab_size`: the model's embedding rows, at least the piece count (<= 0: the piece count).
  SubwordTokenizer(const std::string& serialized, int64_t vocab_size, const std::string& source)
      : serialized_(serialized), vocab_size_(vocab_size) {
    const SentencePieceModule& spm = SentencePieceModule::get();
    char* error = nullptr;
    processor_ = spm.load(serialized_.data(), serialized_.size(), &error);
    MEGA_CHECK(processor_, "[tokenizer] ", source, " is not a SentencePiece model: ", SentencePieceModule::take_message(error));
    const int pad = spm.pad_id(processor_), pieces = spm.piece_size(processor_);
    if (pad != kTokenPad) spm.free_processor(processor_);
    MEGA_CHECK(pad == kTokenPad, "[tokenizer] ", source, ": the SentencePiece model's <pad> is id ", pad,
               ", but padding is id ", kTokenPad, " (train it with --pad_id=0 --unk_id=1, or let mega train one)");
    if (vocab_size_ <= 0) vocab_size_ = pieces;
    if (pieces > vocab_size_) spm.free_processor(processor_);
    MEGA_CHECK(pieces <= vocab_size_, "[tokenizer] ", source, " has ", pieces, " pieces, more than the vocabulary of ",
               vocab_size_);
  }
  ~SubwordTokenizer() override { SentencePieceModule::get().free_processor(processor_); }
  SubwordTokenizer(const SubwordTokenizer&) = delete;
  SubwordTokenizer& operator=(const SubwordTokenizer&) = delete;

  const std::string& kind() const override { return kind_; }
  int64_t vocab_size() const override { return vocab_size_; }
  std::vector<int64_t> encode(std::string_view text) const override {
    const std::string clean = sanitize_utf8(text);
    int* ids = nullptr;
    size_t count = 0;
    char* error = nullptr;
    MEGA_CHECK(SentencePieceModule::get().encode(processor_, clean.data(), clean.size(), &ids, &count, &error) == 0,
               "[tokenizer] SentencePiece cannot encode a text: ", SentencePieceModule::take_message(error));
    std::vector<int64_t> out(ids, ids + count);
    std::free(ids);
    return out;
  }
  void save(const std::string& dir) const override {
    write_file(fs::path(dir) / kModelName, serialized_);
    nlohmann::json j{{"kind", kind_}, {"vocab_size", vocab_size_}, {"model", kModelName}};
    write_file(fs::path(dir) / kJsonName, j.dump(2) + "\n");
  }

 private:
  std::string kind_ = "subword";
  std::string serialized_;
  int64_t vocab_size_;
  void* processor_ = nullptr;
};

// The training texts as SentencePiece sentences: their lines (an e-mail or a document is many sentences;
// SentencePiece drops sentences over max_sentence_length bytes), cut to that length. At most kMaxSentences
// of them, every stride-th non-empty line, so training time is bounded and the sample is the same on
// every run (SentencePiece's own sampling is not seeded).
class LineIterator {
 public:
  static constexpr size_t kMaxSentence = 4096;
  static constexpr size_t kMaxSentences = 100000;
  explicit LineIterator(const std::vector<std::string>& texts) : texts_(texts) {
    size_t lines = 0;
    for (const std::string& text : texts)
      for (size_t at = 0; at < text.size();) {
        size_t end = text.find('\n', at);
        if (end == std::string::npos) end = text.size();
        lines += end > at;
        at = end + 1;
      }
    stride_ = std::max<size_t>(1, (lines + kMaxSentences - 1) / kMaxSentences);
  }
  // mega_spm_next_sentence: the next non-empty line, or nullptr.
  static const char* next(void* context, size_t* length) {
    auto* self = static_cast<LineIterator*>(context);
    if (!self->advance()) return nullptr;
    *length = self->line_.size();
    return self->line_.data();
  }
  bool any() const {
    for (const std::string& text : texts_)
      if (text.find_first_not_of('\n') != std::string::npos) return true;
    return false;
  }

 private:
  bool advance() {
    while (text_ < texts_.size()) {
      const std::string& text = texts_[text_];
      if (at_ >= text.size()) {
        ++text_;
        at_ = 0;
        continue;
      }
      size_t end = text.find('\n', at_);
      if (end == std::string::npos) end = text.size();
      const size_t begin = at_;
      at_ = end + 1;
      if (end == begin || seen_++ % stride_ != 0) continue;
      line_ = sanitize_utf8(std::string_view(text).substr(begin, std::min(end - begin, kMaxSentence)));
      return true;
    }
    return false;
  }
  const std::vector<std::string>& texts_;
  size_t text_ = 0, at_ = 0, seen_ = 0, stride_ = 1;
  std::string line_;
};

std::unique_ptr<Tokenizer> train_subword(const TokenizerOptions& o, const std::vector<std::string>& texts) {
  LineIterator lines(texts);
  MEGA_CHECK(lines.any(), "[tokenizer] the training split has no text to train SentencePiece on");
  const std::vector<std::pair<std::string, std::string>> args = {
      {"model_type", o.subword_model},
      {"vocab_size", std::to_string(o.vocab_size)},
      {"hard_vocab_limit", "false"},  // a small corpus gets fewer pieces instead of an error
      {"pad_id", "0"}, {"unk_id", "1"}, {"bos_id", "-1"}, {"eos_id", "-1"},
      {"byte_fallback", "true"},
      {"character_coverage", "0.9995"},
      {"max_sentence_length", std::to_string(LineIterator::kMaxSentence)},
      {"input_sentence_size", "0"},  // every line LineIterator gives (it samples)
      {"shuffle_input_sentence", "false"},
      {"num_threads", "2"},
      {"minloglevel", "1"},
  };
  std::vector<const char*> keys, values;
  for (const auto& [key, value] : args) {
    keys.push_back(key.c_str());
    values.push_back(value.c_str());
  }
  char *model = nullptr, *error = nullptr;
  size_t length = 0;
  const int failed = SentencePieceModule::get().train(keys.data(), values.data(), static_cast<int>(keys.size()),
                                                      &LineIterator::next, &lines, &model, &length, &error);
  MEGA_CHECK(!failed, "[tokenizer] training SentencePiece (", o.subword_model, ", vocab_size ", o.vocab_size,
             ") failed: ", SentencePieceModule::take_message(error));
  std::string serialized(model, length);
  std::free(model);
  return std::make_unique<SubwordTokenizer>(serialized, o.vocab_size, "the trained SentencePiece model");
}

}  // namespace

const std::vector<std::string>& tokenizer_kinds() {
  static const std::vector<std::string> kinds = {"bytes", "chars", "words", "subword"};
  return kinds;
}

std::string sanitize_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t n = utf8_length(text, i);
    if (n == 0) {
      out += kReplacement;
      ++i;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  return out;
}

void check_tokenizer_options(const TokenizerOptions& o) {
  const auto& kinds = tokenizer_kinds();
  MEGA_CHECK(std::find(kinds.begin(), kinds.end(), o.kind) != kinds.end(), "tokenizer '", o.kind,
             "' is not bytes, chars, words or subword");
  if (o.kind == "bytes") return;
  if (o.kind == "subword" && !o.model_file.empty()) {
    MEGA_CHECK(fs::is_regular_file(o.model_file), "model_file '", o.model_file, "' is not a file");
    return;
  }
  MEGA_CHECK(o.vocab_size >= 3, "vocab_size must leave room for <pad>, <unk> and a token, got ", o.vocab_size);
  MEGA_CHECK(o.min_frequency >= 1, "min_frequency must be >= 1, got ", o.min_frequency);
  if (o.kind == "subword")
    MEGA_CHECK(o.subword_model == "unigram" || o.subword_model == "bpe", "subword_model '", o.subword_model,
               "' is not unigram or bpe");
}

int64_t tokenizer_vocab_size(const TokenizerOptions& o) {
  check_tokenizer_options(o);
  if (o.kind == "bytes") return kByteVocabSize;
  if (o.kind == "subword" && !o.model_file.empty())
    return SubwordTokenizer(read_file(o.model_file), 0, o.model_file).vocab_size();
  return o.vocab_size;
}

std::unique_ptr<Tokenizer> train_tokenizer(const TokenizerOptions& o, const std::vector<std::string>& texts) {
  check_tokenizer_options(o);
  if (o.kind == "bytes") return std::make_unique<ByteTokenizer>();
  if (o.kind == "subword") {
    if (!o.model_file.empty()) return std::make_unique<SubwordTokenizer>(read_file(o.model_file), 0, o.model_file);
    return train_subword(o, texts);
  }
  return learn_vocabulary(o, texts);
}

bool has_tokenizer(const std::string& dir) { return fs::is_regular_file(fs::path(dir) / kJsonName); }

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir) {
  const fs::path json_path = fs::path(dir) / kJsonName;
  const nlohmann::json j = read_json_file(json_path.string());
  const std::string where = json_path.string();
  try {
    const std::string kind = j.at("kind").get<std::string>();
    const int64_t vocab_size = j.at("vocab_size").get<int64_t>();
    if (kind == "bytes") {
      MEGA_CHECK(vocab_size == kByteVocabSize, "bytes has vocab_size ", kByteVocabSize, ", not ", vocab_size);
      return std::make_unique<ByteTokenizer>();
    }
    if (kind == "chars" || kind == "words")
      return std::make_unique<VocabularyTokenizer>(kind, vocab_size, j.value("lowercase", false),
                                                   j.at("tokens").get<std::vector<std::string>>());
    if (kind == "subword") {
      const fs::path model = fs::path(dir) / j.at("model").get<std::string>();
      return std::make_unique<SubwordTokenizer>(read_file(model), vocab_size, model.string());
    }
    fail("kind '", kind, "' is not bytes, chars, words or subword");
  } catch (const nlohmann::json::exception& e) {
    fail("[tokenizer] ", where, ": ", e.what());
  } catch (const Error& e) {
    fail("[tokenizer] ", where, ": ", e.what());
  }
}

}  // namespace mega

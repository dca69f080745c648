// libmega_sentencepiece.so: SentencePiece behind a C interface (sentencepiece_module.h explains why).
#include "data/sentencepiece/sentencepiece_module.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

char* copy_out(const std::string& bytes) {
  char* out = static_cast<char*>(std::malloc(bytes.size() + 1));
  if (out) {
    std::memcpy(out, bytes.data(), bytes.size());
    out[bytes.size()] = '\0';
  }
  return out;
}

class CallbackSentences : public sentencepiece::SentenceIterator {
 public:
  CallbackSentences(mega_spm_next_sentence next, void* context) : next_(next), context_(context) { Next(); }
  bool done() const override { return done_; }
  void Next() override {
    size_t length = 0;
    const char* bytes = next_(context_, &length);
    done_ = bytes == nullptr;
    if (!done_) value_.assign(bytes, length);
  }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  mega_spm_next_sentence next_;
  void* context_;
  bool done_ = false;
  std::string value_;
};

}  // namespace

extern "C" {

int mega_spm_train(const char* const* keys, const char* const* values, int n, mega_spm_next_sentence next,
                   void* context, char** model, size_t* model_length, char** error) {
  try {
    std::unordered_map<std::string, std::string> args;
    for (int i = 0; i < n; ++i) args[keys[i]] = values[i];
    CallbackSentences sentences(next, context);
    std::string serialized;
    const auto status = sentencepiece::SentencePieceTrainer::Train(args, &sentences, &serialized);
    if (!status.ok()) {
      *error = copy_out(status.ToString());
      return 1;
    }
    *model = copy_out(serialized);
    *model_length = serialized.size();
    return 0;
  } catch (const std::exception& e) {
    *error = copy_out(e.what());
    return 1;
  }
}

void* mega_spm_load(const char* model, size_t model_length, char** error) {
  auto* processor = new sentencepiece::SentencePieceProcessor();
  const auto status = processor->LoadFromSerializedProto(std::string_view(model, model_length));
  if (!status.ok()) {
    *error = copy_out(status.ToString());
    delete processor;
    return nullptr;
  }
  return processor;
}

void mega_spm_free_processor(void* processor) { delete static_cast<sentencepiece::SentencePieceProcessor*>(processor); }

int mega_spm_piece_size(const void* processor) {
  return static_cast<const sentencepiece::SentencePieceProcessor*>(processor)->GetPieceSize();
}

int mega_spm_pad_id(const void* processor) {
  return static_cast<const sentencepiece::SentencePieceProcessor*>(processor)->pad_id();
}

int mega_spm_encode(const void* processor, const char* text, size_t length, int** ids, size_t* count, char** error) {
  std::vector<int> pieces;
  const auto status =
      static_cast<const sentencepiece::SentencePieceProcessor*>(processor)->Encode(std::string_view(text, length), &pieces);
  if (!status.ok()) {
    *error = copy_out(status.ToString());
    return 1;
  }
  *ids = static_cast<int*>(std::malloc(std::max<size_t>(1, pieces.size()) * sizeof(int)));
  std::memcpy(*ids, pieces.data(), pieces.size() * sizeof(int));
  *count = pieces.size();
  return 0;
}

}  // extern "C"

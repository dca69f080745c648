// The C interface of the SentencePiece module (libmega_sentencepiece.so, built beside the mega binary).
//
// Why a module loaded at run time rather than a link to libsentencepiece: Debian's libsentencepiece
// carries its own copy of protobuf (3.14, default visibility), while the TensorBoard writer needs the
// system's libprotobuf (3.21). Linked into one program, the two copies' symbols interpose each other and
// the program dies before main (or on protobuf's version check). data/tokenizer.cpp therefore dlopen()s
// this module with RTLD_LOCAL | RTLD_DEEPBIND: SentencePiece then resolves protobuf to its own copy, and
// nothing outside sees it. Only plain C types cross the boundary; errors come back as strings.
#pragma once
#include <cstddef>
#include <cstdint>

extern "C" {

// One training sentence per call: its bytes and length, or nullptr when there are no more.
typedef const char* (*mega_spm_next_sentence)(void* context, size_t* length);

// Trains a model with the given "key" / "value" trainer options (n pairs). On success returns 0 and a
// malloc()ed serialized model in *model (*model_length bytes); otherwise returns 1 and a malloc()ed
// message in *error.
int mega_spm_train(const char* const* keys, const char* const* values, int n, mega_spm_next_sentence next,
                   void* context, char** model, size_t* model_length, char** error);

// A processor for a serialized model, or nullptr with a malloc()ed message in *error.
void* mega_spm_load(const char* model, size_t model_length, char** error);
void mega_spm_free_processor(void* processor);
int mega_spm_piece_size(const void* processor);
int mega_spm_pad_id(const void* processor);
// Encodes text into a malloc()ed array of ids (*count of them); 0 on success, else 1 with *error set.
int mega_spm_encode(const void* processor, const char* text, size_t length, int** ids, size_t* count, char** error);

}  // extern "C"

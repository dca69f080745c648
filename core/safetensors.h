// safetensors read and write (https://github.com/huggingface/safetensors format): an 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, raw data.
// Reading memory-maps the file: tensors are views of the mapping (no copy) in their stored dtype.
// Every header is validated; a bad file is refused with an error naming the file and the tensor.
#pragma once
#include <map>
#include <string>

#include "core/tensor.h"

namespace mega {

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
};

SafetensorsFile load_safetensors(const std::string& path);

// Writes to `path`.tmp, then renames over `path`: a crash never leaves a half-written file under the
// real name. Tensors are laid out by decreasing element size then name, so each is aligned to its size.
void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace mega

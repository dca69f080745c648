// safetensors read (memory-mapped, validated) and write (aligned layout, atomic rename). Reads the
// dtypes mega has (F32, F64, F16, BF16, I64, I32, BOOL); any other dtype is refused, not converted.
#include "core/safetensors.h"

#include "core/atomic_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

namespace mega {

namespace {

using nlohmann::json;

// The reference implementation refuses headers above 100 MB; a real one is a few hundred kB at most.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Every refusal starts the same way so the file is always named: "[safetensors] path: ...".
template <class... Parts>
[[noreturn]] void refuse(const std::string& path, const Parts&... parts) {
  fail("[safetensors] ", path, ": ", parts...);
}

std::optional<DType> parse_dtype(const std::string& name) {
  for (DType d : {DType::F32, DType::F64, DType::I64, DType::I32, DType::F16, DType::BF16,
                  DType::Bool}) {
    if (name == dtype_name(d)) return d;
  }
  return std::nullopt;
}

// The whole file, mapped copy-on-write: the file is never modified, and a caller that writes into a
// loaded tensor (an in-place optimizer step) gets private pages instead of a SIGSEGV.
struct Mapping {
  const char* bytes = nullptr;
  size_t size = 0;
  std::shared_ptr<void> owner;  // munmaps when the last tensor viewing the file is gone
};

Mapping map_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) refuse(path, "cannot open: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    refuse(path, "cannot stat: ", std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    refuse(path, "not a regular file");
  }
  Mapping m;
  m.size = static_cast<size_t>(st.st_size);
  if (m.size < 8) {
    ::close(fd);
    refuse(path, "file is ", m.size, " bytes, shorter than the 8-byte header length");
  }
  void* p = ::mmap(nullptr, m.size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);  // the mapping keeps its own reference to the file
  if (p == MAP_FAILED) refuse(path, "cannot mmap ", m.size, " bytes: ", std::strerror(err));
  m.bytes = static_cast<const char*>(p);
  size_t size = m.size;
  m.owner = std::shared_ptr<void>(p, [size](void* q) { ::munmap(q, size); });
  return m;
}

uint64_t read_u64_le(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | static_cast<unsigned char>(p[i]);
  return v;
}

// Parses the header, refusing duplicate keys at any depth: nlohmann keeps the last of two equal keys,
// which would silently hide a second tensor of the same name.
json parse_header(const std::string& path, const char* text, size_t length) {
  std::vector<std::set<std::string>> keys_at_depth;
  std::string duplicate, top_level_key, duplicate_in;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    size_t d = static_cast<size_t>(depth);
    if (event == json::parse_event_t::object_start) {
      // Keys of this object are reported one level deeper than the object itself.
      if (keys_at_depth.size() < d + 2) keys_at_depth.resize(d + 2);
      keys_at_depth[d + 1].clear();
    } else if (event == json::parse_event_t::key && duplicate.empty()) {
      if (keys_at_depth.size() < d + 1) keys_at_depth.resize(d + 1);
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!keys_at_depth[d].insert(key).second) {
        duplicate = key;
        if (d > 1) duplicate_in = top_level_key;
      }
      if (d == 1) top_level_key = key;
    }
    return true;
  };
  json header;
  try {
    header = json::parse(text, text + length, callback);
  } catch (const json::exception& e) {
    refuse(path, "header is not valid JSON: ", e.what());
  }
  if (!duplicate_in.empty()) {
    refuse(path, "tensor '", duplicate_in, "': has the key '", duplicate, "' twice");
  }
  if (!duplicate.empty()) refuse(path, "header has the key '", duplicate, "' twice");
  if (!header.is_object()) refuse(path, "header is a JSON ", header.type_name(), ", not an object");
  return header;
}

std::map<std::string, std::string> parse_metadata(const std::string& path, const json& value) {
  if (!value.is_object()) refuse(path, "__metadata__ is a JSON ", value.type_name(), ", not an object");
  std::map<std::string, std::string> metadata;
  for (const auto& [key, v] : value.items()) {
    if (!v.is_string()) {
      refuse(path, "__metadata__ key '", key, "' is a JSON ", v.type_name(), ", not a string");
    }
    metadata[key] = v.get<std::string>();
  }
  return metadata;
}

// One header entry, checked on its own; the layout of all entries together is checked afterwards.
struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;  // relative to the start of the data section
};

Entry parse_entry(const std::string& path, const std::string& name, const json& value) {
  auto bad = [&](const auto&... parts) { refuse(path, "tensor '", name, "': ", parts...); };
  if (!value.is_object()) bad("entry is a JSON ", value.type_name(), ", not an object");
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!value.contains(field)) bad("missing \"", field, "\"");
  }
  const json& dtype = value["dtype"];
  const json& shape = value["shape"];
  const json& offsets = value["data_offsets"];

  if (!dtype.is_string()) bad("\"dtype\" is a JSON ", dtype.type_name(), ", not a string");
  Entry e;
  e.name = name;
  std::optional<DType> parsed = parse_dtype(dtype.get<std::string>());
  if (!parsed) {
    bad("unsupported dtype '", dtype.get<std::string>(), "' (mega reads F32, F64, F16, BF16, I64, I32, BOOL)");
  }
  e.dtype = *parsed;

  if (!shape.is_array()) bad("\"shape\" is a JSON ", shape.type_name(), ", not an array");
  uint64_t numel = 1;
  for (const json& d : shape) {
    if (!d.is_number_integer()) bad("\"shape\" holds ", d.dump(), ", not an integer");
    if (d.is_number_integer() && !d.is_number_unsigned() && d.get<int64_t>() < 0) {
      bad("negative dimension ", d.get<int64_t>(), " in shape ", shape.dump());
    }
    uint64_t n = d.get<uint64_t>();
    if (n > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(numel, n, &numel)) {
      bad("shape ", shape.dump(), " has more elements than fit in 64 bits");
    }
    e.shape.push_back(static_cast<int64_t>(n));
  }

  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    bad("\"data_offsets\" is ", offsets.dump(), ", not [begin, end] with non-negative integers");
  }
  e.begin = offsets[0].get<uint64_t>();
  e.end = offsets[1].get<uint64_t>();
  if (e.begin > e.end) bad("data_offsets [", e.begin, ", ", e.end, "] end before they begin");

  uint64_t expected = 0;
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(e.dtype)), &expected) ||
      e.end - e.begin != expected) {
    bad("data_offsets [", e.begin, ", ", e.end, "] hold ", e.end - e.begin, " bytes, but ",
        dtype_name(e.dtype), " shape ", shape.dump(), " needs ", numel, " x ", dtype_size(e.dtype),
        " bytes");
  }
  return e;
}

// The data section must be tiled exactly: no overlap, no hole, nothing past the last tensor (the
// reference implementation refuses the same files).
void check_layout(const std::string& path, std::vector<Entry>& entries, uint64_t data_bytes) {
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    if (e.end > data_bytes) {
      refuse(path, "tensor '", e.name, "': data_offsets [", e.begin, ", ", e.end,
             "] run past the end of the data section (", data_bytes, " bytes)");
    }
    if (e.begin < covered) {
      refuse(path, "tensor '", e.name, "': data_offsets [", e.begin, ", ", e.end,
             "] overlap tensor '", previous->name, "', which ends at ", covered);
    }
    if (e.begin > covered) {
      refuse(path, "tensor '", e.name, "': data_offsets [", e.begin, ", ", e.end,
             "] leave bytes [", covered, ", ", e.begin, ") of the data section unused");
    }
    covered = e.end;
    previous = &e;
  }
  if (covered != data_bytes) {
    refuse(path, "data section has ", data_bytes, " bytes but its tensors cover only ", covered);
  }
}

// Writes all of `bytes` or fails naming the path; write() may write less than asked.
}  // namespace

SafetensorsFile load_safetensors(const std::string& path) {
  Mapping file = map_file(path);
  uint64_t header_bytes = read_u64_le(file.bytes);
  if (header_bytes > kMaxHeaderBytes) {
    refuse(path, "header length ", header_bytes, " is absurd (more than ", kMaxHeaderBytes,
           " bytes): not a safetensors file?");
  }
  if (header_bytes > file.size - 8) {
    refuse(path, "header length ", header_bytes, " runs past the end of the file (", file.size,
           " bytes)");
  }
  json header = parse_header(path, file.bytes + 8, header_bytes);

  SafetensorsFile result;
  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      result.metadata = parse_metadata(path, value);
    } else {
      entries.push_back(parse_entry(path, name, value));
    }
  }
  const char* data = file.bytes + 8 + header_bytes;
  check_layout(path, entries, file.size - 8 - header_bytes);

  for (const Entry& e : entries) {
    char* p = const_cast<char*>(data + e.begin);
    if (reinterpret_cast<uintptr_t>(p) % dtype_size(e.dtype) == 0) {
      result.tensors[e.name] = Tensor::wrap(p, e.shape, e.dtype, file.owner);
    } else {
      // The format does not promise alignment (other writers pad nothing): copy into aligned storage.
      Tensor t = Tensor::empty(e.shape, e.dtype);
      std::memcpy(t.raw(), p, t.nbytes());
      result.tensors[e.name] = std::move(t);
    }
  }
  return result;
}

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, Tensor>> order;
  for (const auto& [name, t] : tensors) {
    MEGA_CHECK(name != "__metadata__", "[safetensors] ", path,
               ": a tensor cannot be named __metadata__");
    MEGA_CHECK(t.defined(), "[safetensors] ", path, ": tensor '", name, "' is undefined");
    order.emplace_back(name, t);
  }
  // Decreasing element size keeps every offset a multiple of its own element size.
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return dtype_size(a.second.dtype()) > dtype_size(b.second.dtype());
  });

  json header = json::object();
  uint64_t offset = 0;
  for (const auto& [name, t] : order) {
    header[name] = {{"dtype", dtype_name(t.dtype())},
                    {"shape", t.shape()},
                    {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  header["__metadata__"] = metadata.empty() ? std::map<std::string, std::string>{{"format", "pt"}}
                                            : metadata;
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {  // a name or value that is not valid UTF-8
    fail("[safetensors] ", path, ": cannot write header: ", e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-aligned, as the offsets assume
  char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<char>(static_cast<uint64_t>(text.size()) >> (8 * i));

  // A torn or half-written checkpoint is never left under `path` (core/atomic_file.h).
  AtomicFile file(path);
  file.write(length, 8);
  file.write(text);
  for (const auto& [name, t] : order) file.write(t.raw(), t.nbytes());
  file.commit();
}

}  // namespace mega

// TensorBoard event files (TFRecord framing of Event protos).
#include "recipes/tensorboard.h"

#include <unistd.h>

#include <array>
#include <filesystem>

#include "core/error.h"
#include "recipes/tensorboard_event.pb.h"

namespace mega {

namespace {

// The byte-at-a-time table of the reflected CRC-32C polynomial.
const std::array<uint32_t, 256>& crc32c_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int bit = 0; bit < 8; ++bit) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

void append_le(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

}  // namespace

uint32_t crc32c(const void* data, size_t size) {
  const auto& table = crc32c_table();
  const auto* bytes = static_cast<const unsigned char*>(data);
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ bytes[i]) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const void* data, size_t size) {
  const uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u;
}

double unix_time_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  std::filesystem::create_directories(dir);
  const double now = unix_time_now();
  const std::string base = (std::filesystem::path(dir) / ("events.out.tfevents." +
                                                             std::to_string(static_cast<int64_t>(now)) + "." +
                                                             host_name()))
                               .string();
  // A second writer in the same second (a quick resume) must not clobber the first file.
  path_ = base;
  for (int n = 1; std::filesystem::exists(path_); ++n) path_ = base + "." + std::to_string(n);
  out_.open(path_, std::ios::binary | std::ios::trunc);
  MEGA_CHECK(out_.good(), "cannot open TensorBoard event file '", path_, "' for writing");
  tensorboard::Event event;
  event.set_wall_time(now);
  event.set_file_version("brain.Event:2");
  write_record(event.SerializeAsString());
  flush();
}

TensorBoardWriter::~TensorBoardWriter() { out_.flush(); }

void TensorBoardWriter::add_scalar(const std::string& tag, double value, int64_t step, double wall_time) {
  tensorboard::Event event;
  event.set_wall_time(wall_time);
  event.set_step(step);
  tensorboard::SummaryValue* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  v->set_simple_value(static_cast<float>(value));
  write_record(event.SerializeAsString());
}

void TensorBoardWriter::write_record(const std::string& data) {
  std::string header;
  append_le(header, data.size(), 8);
  const uint32_t length_crc = masked_crc32c(header.data(), 8);
  append_le(header, length_crc, 4);
  std::string footer;
  append_le(footer, masked_crc32c(data.data(), data.size()), 4);
  out_ << header << data << footer;
  MEGA_CHECK(out_.good(), "cannot write TensorBoard event file '", path_, "'");
}

void TensorBoardWriter::flush() {
  out_.flush();
  MEGA_CHECK(out_.good(), "cannot write TensorBoard event file '", path_, "'");
}

void TensorBoardSink::write(const nlohmann::json& row) {
  if (!row.is_object() || !row.contains("step")) return;
  const int64_t step = row["step"].get<int64_t>();
  const double wall_time = row.contains("wall_time") ? row["wall_time"].get<double>() : unix_time_now();
  const bool eval = row.contains("split");
  const std::string split = eval ? row["split"].get<std::string>() : "";
  for (const auto& [key, value] : row.items()) {
    if (key == "step" || key == "wall_time" || key == "split" || !value.is_number()) continue;
    std::string tag = "train/" + key;
    if (eval) {
      // "val_loss" of split "val" -> eval/val/loss
      const std::string prefix = split + "_";
      tag = "eval/" + split + "/" + (key.rfind(prefix, 0) == 0 ? key.substr(prefix.size()) : key);
    }
    writer_.add_scalar(tag, value.get<double>(), step, wall_time);
  }
  const auto now = std::chrono::steady_clock::now();
  if (eval || now - last_flush_ > std::chrono::seconds(30)) {
    writer_.flush();
    last_flush_ = now;
  }
}

}  // namespace mega

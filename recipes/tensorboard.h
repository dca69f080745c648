// TensorBoard event files: RUN_DIR/tb/events.out.tfevents.<time>.<host>, scalars for the series of
// metrics.jsonl, so `tensorboard --logdir runs/` shows our runs beside PyTorch ones.
// File format (TensorFlow's TFRecord): each record is
//   uint64 length, uint32 masked_crc32c(length), length bytes of a serialized Event, uint32 masked_crc32c(data)
// all little-endian; the first record's Event carries file_version "brain.Event:2".
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "recipes/metrics.h"

namespace mega {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord uses: crc32c("123456789") = 0xE3069283.
uint32_t crc32c(const void* data, size_t size);
// TFRecord stores the CRC rotated and offset, so a CRC over data that holds CRCs stays well spread.
uint32_t masked_crc32c(const void* data, size_t size);

class TensorBoardWriter {
 public:
  // Creates dir (and parents) and a new event file in it, named as TensorBoard's own writers name theirs.
  explicit TensorBoardWriter(const std::string& dir);
  ~TensorBoardWriter();
  void add_scalar(const std::string& tag, double value, int64_t step, double wall_time);
  void flush();
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& data);
  std::string path_;
  std::ofstream out_;
};

// Feeds every metrics.jsonl row to an event file: training rows as train/<key> (loss, lr, grad_norm, ...),
// eval rows ({"split": "val", "val_loss": ...}) as eval/<split>/<metric>. Flushes after each eval row
// and at least every 30 seconds, so a running run shows up in TensorBoard.
class TensorBoardSink : public MetricsSink {
 public:
  explicit TensorBoardSink(const std::string& dir) : writer_(dir) {}
  void write(const nlohmann::json& row) override;
  const std::string& path() const { return writer_.path(); }

 private:
  TensorBoardWriter writer_;
  std::chrono::steady_clock::time_point last_flush_ = std::chrono::steady_clock::now();
};

double unix_time_now();  // seconds since the epoch, as TensorBoard's wall_time

}  // namespace mega

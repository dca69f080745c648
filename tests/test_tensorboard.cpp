// TensorBoard event files: CRC-32C, TFRecord framing, and the scalars a MetricsLog feeds them, read back
// with protobuf as TensorBoard reads them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "recipes/metrics.h"
#include "recipes/tensorboard.h"
#include "recipes/tensorboard_event.pb.h"

using namespace mega;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::path(::testing::TempDir()) / name;
  fs::remove_all(dir);
  return dir;
}

uint64_t read_le(const std::string& bytes, size_t at, int width) {
  uint64_t v = 0;
  for (int i = 0; i < width; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[at + i])) << (8 * i);
  return v;
}

// Every record of an event file, after checking both of its CRCs.
std::vector<tensorboard::Event> read_events(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string bytes = buffer.str();
  std::vector<tensorboard::Event> events;
  size_t at = 0;
  while (at < bytes.size()) {
    EXPECT_LE(at + 12, bytes.size()) << "truncated record header";
    if (at + 12 > bytes.size()) break;
    const uint64_t length = read_le(bytes, at, 8);
    EXPECT_EQ(read_le(bytes, at + 8, 4), masked_crc32c(bytes.data() + at, 8)) << "length CRC at byte " << at;
    EXPECT_LE(at + 12 + length + 4, bytes.size()) << "truncated record data";
    if (at + 12 + length + 4 > bytes.size()) break;
    const std::string data = bytes.substr(at + 12, length);
    EXPECT_EQ(read_le(bytes, at + 12 + length, 4), masked_crc32c(data.data(), data.size())) << "data CRC at byte "
                                                                                             << at;
    tensorboard::Event event;
    EXPECT_TRUE(event.ParseFromString(data));
    events.push_back(event);
    at += 12 + length + 4;
  }
  return events;
}

fs::path only_event_file(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) files.push_back(entry.path());
  EXPECT_EQ(files.size(), 1u);
  return files.empty() ? fs::path() : files[0];
}

}  // namespace

TEST(TensorBoard, Crc32cMatchesTheStandardCheckValue) {
  const char* text = "123456789";
  EXPECT_EQ(crc32c(text, std::strlen(text)), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
  // 32 zero bytes: the RFC 3720 (iSCSI) test vector.
  const std::string zeros(32, '\0');
  EXPECT_EQ(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  // TFRecord's mask: rotate right by 15 bits, add 0xa282ead8 (expected values from an independent implementation of that rule).
  EXPECT_EQ(masked_crc32c(text, 9), 0xC78AB0E5u);
  const unsigned char length_13[8] = {13, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(masked_crc32c(length_13, 8), 0x34B8373Cu);
}

TEST(TensorBoard, WriterFramesRecordsTensorBoardReads) {
  const fs::path dir = fresh_dir("tb_writer");
  {
    TensorBoardWriter writer(dir.string());
    EXPECT_NE(fs::path(writer.path()).filename().string().find("events.out.tfevents."), std::string::npos);
    writer.add_scalar("train/loss", 2.5, 10, 1000.25);
    writer.add_scalar("train/loss", 1.25, 20, 1001.5);
  }
  const std::vector<tensorboard::Event> events = read_events(only_event_file(dir));
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].file_version(), "brain.Event:2");
  EXPECT_GT(events[0].wall_time(), 1.6e9);  // now, in seconds since the epoch
  EXPECT_EQ(events[1].step(), 10);
  EXPECT_DOUBLE_EQ(events[1].wall_time(), 1000.25);
  ASSERT_EQ(events[1].summary().value_size(), 1);
  EXPECT_EQ(events[1].summary().value(0).tag(), "train/loss");
  EXPECT_FLOAT_EQ(events[1].summary().value(0).simple_value(), 2.5f);
  EXPECT_EQ(events[2].step(), 20);
  EXPECT_FLOAT_EQ(events[2].summary().value(0).simple_value(), 1.25f);
  fs::remove_all(dir);
}

TEST(TensorBoard, MetricsLogFeedsTrainAndEvalScalars) {
  const fs::path dir = fresh_dir("tb_sink");
  fs::create_directories(dir);
  {
    MetricsLog log((dir / "metrics.jsonl").string());
    log.add_sink(std::make_unique<TensorBoardSink>((dir / "tb").string()));
    log.write({{"step", 50}, {"epoch", 0}, {"loss", 2.25}, {"lr", 1e-3}, {"grad_norm", 0.5},
               {"tokens_per_s", 12000.0}, {"skipped_steps", 0}, {"wall_time", 1700000000.5}});
    log.write({{"step", 100}, {"split", "val"}, {"val_loss", 1.75}, {"val_accuracy", 0.375}});
  }
  const std::vector<tensorboard::Event> events = read_events(only_event_file(dir / "tb"));
  std::map<std::string, std::pair<int64_t, float>> scalars;
  for (size_t i = 1; i < events.size(); ++i)
    for (const auto& v : events[i].summary().value()) scalars[v.tag()] = {events[i].step(), v.simple_value()};
  EXPECT_EQ(scalars.size(), 8u);  // 6 training series (wall_time is the event's own field) + 2 eval
  EXPECT_EQ(scalars["train/loss"], (std::pair<int64_t, float>{50, 2.25f}));
  EXPECT_EQ(scalars["train/lr"], (std::pair<int64_t, float>{50, 1e-3f}));
  EXPECT_EQ(scalars["train/grad_norm"], (std::pair<int64_t, float>{50, 0.5f}));
  EXPECT_EQ(scalars["train/tokens_per_s"], (std::pair<int64_t, float>{50, 12000.0f}));
  EXPECT_EQ(scalars["eval/val/loss"], (std::pair<int64_t, float>{100, 1.75f}));
  EXPECT_EQ(scalars["eval/val/accuracy"], (std::pair<int64_t, float>{100, 0.375f}));
  EXPECT_EQ(scalars.count("train/wall_time"), 0u);
  EXPECT_DOUBLE_EQ(events[1].wall_time(), 1700000000.5);
  // metrics.jsonl got both rows as before.
  std::ifstream jsonl(dir / "metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(jsonl, line);) ++lines;
  EXPECT_EQ(lines, 2);
  fs::remove_all(dir);
}

TEST(TensorBoard, TwoWritersInOneSecondKeepTheirOwnFiles) {
  const fs::path dir = fresh_dir("tb_two");
  TensorBoardWriter a(dir.string()), b(dir.string());
  EXPECT_NE(a.path(), b.path());
  fs::remove_all(dir);
}

// `mega train` end to end: with the default train.tensorboard the event file holds every logged loss of
// metrics.jsonl at its step, and the evaluations; with train.tensorboard=false there is no tb/ folder.
TEST(TensorBoard, TrainWritesTheSeriesOfMetricsJsonl) {
  const fs::path root = fresh_dir("tb_train");
  fs::create_directories(root / "data");
  // The data as LRA's release files ([MAX a b ] -> the larger digit), so the recipe needs no generator keys.
  for (auto [split, count] : {std::pair{"train", 48}, {"val", 8}, {"test", 8}}) {
    std::ofstream tsv(root / "data" / (std::string("basic_") + split + ".tsv"));
    tsv << "Source\tTarget\n";
    for (int i = 0; i < count; ++i)
      tsv << "( [MAX " << i % 10 << " " << (i * 7) % 10 << " ] )\t" << std::max(i % 10, (i * 7) % 10) << "\n";
  }
  const fs::path recipe = root / "tiny.yaml";
  {
    std::ofstream out(recipe);
    out << "model: {num_hidden_layers: 1, hidden_size: 16, intermediate_size: 32, nffn_hidden_size: 32,\n"
           "        shared_representation_size: 8, ema_projection_size: 4, max_positions: 64,\n"
           "        classifier_hidden_size: 16}\n"
           "data: {dir: " << (root / "data").string() << ", max_length: 64}\n"
           "train: {batch_size: 8, max_steps: 6, eval_interval: 3, save_interval: 100, log_interval: 2, threads: 1}\n";
  }
  auto train = [&](const std::string& run, const std::string& extra) {
    const std::string command = "OMP_WAIT_POLICY=PASSIVE " + std::string(MEGA_BINARY) + " train " + recipe.string() +
                                " output_dir=" + (root / run).string() + " " + extra + " > " +
                                (root / (run + ".log")).string() + " 2>&1";
    return std::system(command.c_str());
  };
  ASSERT_EQ(train("on", ""), 0);
  std::map<std::string, std::map<int64_t, float>> logged;  // tag -> step -> value
  for (const tensorboard::Event& event : read_events(only_event_file(root / "on" / "tb")))
    for (const auto& v : event.summary().value()) logged[v.tag()][event.step()] = v.simple_value();
  std::ifstream jsonl(root / "on" / "metrics.jsonl");
  int train_rows = 0, eval_rows = 0;
  for (std::string line; std::getline(jsonl, line);) {
    const auto row = nlohmann::json::parse(line);
    const int64_t step = row["step"].get<int64_t>();
    if (row.contains("split")) {
      const std::string split = row["split"].get<std::string>();
      EXPECT_EQ(logged["eval/" + split + "/accuracy"][step],
                static_cast<float>(row[split + "_accuracy"].get<double>()));
      ++eval_rows;
    } else {
      EXPECT_EQ(logged["train/loss"][step], static_cast<float>(row["loss"].get<double>())) << "step " << step;
      EXPECT_EQ(logged["train/lr"][step], static_cast<float>(row["lr"].get<double>())) << "step " << step;
      ++train_rows;
    }
  }
  EXPECT_EQ(train_rows, 3);  // steps 2, 4, 6
  EXPECT_EQ(eval_rows, 3);   // val at 3 and 6, test at 6
  EXPECT_EQ(logged["train/loss"].size(), 3u);
  ASSERT_EQ(train("off", "train.tensorboard=false"), 0);
  EXPECT_TRUE(fs::exists(root / "off" / "metrics.jsonl"));
  EXPECT_FALSE(fs::exists(root / "off" / "tb"));
  fs::remove_all(root);
}

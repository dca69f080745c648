// CIFAR-10 binary and MNIST-family IDX loaders, grey conversion and the validation split (data/image_data.h).
#include "data/image_data.h"

#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>

#include "core/error.h"
#include "data/draws.h"

namespace mega {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr uint32_t kIdxImagesMagic = 0x00000803;  // unsigned byte data, 3 dimensions
constexpr uint32_t kIdxLabelsMagic = 0x00000801;  // unsigned byte data, 1 dimension

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  MEGA_CHECK(in, path, ": cannot open");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  MEGA_CHECK(!in.bad(), path, ": read error");
  return bytes;
}

std::string hex(uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof(text), "0x%08x", value);
  return text;
}

uint32_t big_endian_u32(const std::vector<uint8_t>& bytes, size_t at) {
  return (uint32_t{bytes[at]} << 24) | (uint32_t{bytes[at + 1]} << 16) | (uint32_t{bytes[at + 2]} << 8) |
         uint32_t{bytes[at + 3]};
}

// The IDX header: checks the magic and that the file holds every byte its dimensions promise.
std::vector<int64_t> idx_dimensions(const std::vector<uint8_t>& bytes, const std::string& path, uint32_t magic,
                                    const char* what) {
  MEGA_CHECK(bytes.size() >= 4, path, ": too short for an IDX header (", bytes.size(), " bytes)");
  const uint32_t found = big_endian_u32(bytes, 0);
  MEGA_CHECK(found == magic, path, ": magic number ", hex(found), " is not that of IDX ", what, " (", hex(magic), ")");
  const int64_t rank = magic & 0xff;
  const size_t header = 4 + 4 * static_cast<size_t>(rank);
  MEGA_CHECK(bytes.size() >= header, path, ": truncated IDX header (", bytes.size(), " bytes, ", rank,
             " dimensions need ", header, ")");
  std::vector<int64_t> dims;
  int64_t payload = 1;
  for (int64_t d = 0; d < rank; ++d) {
    dims.push_back(big_endian_u32(bytes, 4 + 4 * d));
    payload *= dims.back();
  }
  const int64_t available = static_cast<int64_t>(bytes.size() - header);
  MEGA_CHECK(available >= payload, path, ": truncated: the dimensions promise ", payload, " bytes of data, the file has ",
             available);
  MEGA_CHECK(available == payload, path, ": ", available - payload, " bytes after the data the dimensions describe");
  return dims;
}

std::string first_existing(const std::string& dir, const std::string& name) {
  namespace fs = std::filesystem;
  for (const std::string& candidate : {name, name + ".gz"})
    if (fs::exists(fs::path(dir) / candidate)) return (fs::path(dir) / candidate).string();
  return "";
}

constexpr const char* kMnistFiles[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};

}  // namespace

int64_t rgb_to_grey(uint8_t r, uint8_t g, uint8_t b) {
  // TF's convert_image_dtype uint8 -> float32 multiplies by 1/255; float32 -> uint8 multiplies by
  // 255 + 0.5 "to avoid rounding problems in the cast" and truncates. Float32 throughout, like TF.
  const float scale = 1.0f / 255.0f;
  const float grey = 0.2989f * (r * scale) + 0.5870f * (g * scale) + 0.1140f * (b * scale);
  return static_cast<int64_t>(grey * 255.5f);
}

std::pair<std::vector<SequenceExample>, std::vector<SequenceExample>> split_validation(
    std::vector<SequenceExample> examples, const ValidationSplit& split) {
  MEGA_CHECK(split.fraction >= 0 && split.fraction < 1, "[image_data] validation fraction must be in [0, 1), got ",
             split.fraction);
  if (split.shuffle_seed) {
    Draws draws(*split.shuffle_seed, 0);
    for (size_t i = examples.size(); i > 1; --i)  // Fisher-Yates
      std::swap(examples[i - 1], examples[static_cast<size_t>(draws.below(static_cast<int64_t>(i)))]);
  }
  const auto train_count = static_cast<size_t>(std::llround((1 - split.fraction) * static_cast<double>(examples.size())));
  std::vector<SequenceExample> val(std::make_move_iterator(examples.begin() + static_cast<std::ptrdiff_t>(train_count)),
                                   std::make_move_iterator(examples.end()));
  examples.resize(train_count);
  return {std::move(examples), std::move(val)};
}

// ---- CIFAR-10 ----

std::vector<SequenceExample> load_cifar10_batch(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file(path);
  MEGA_CHECK(bytes.size() % kCifarRecordBytes == 0, path, ": ", bytes.size(),
             " bytes is not a whole number of CIFAR-10 records of ", kCifarRecordBytes, " bytes");
  const size_t records = bytes.size() / kCifarRecordBytes;
  std::vector<SequenceExample> examples(records);
  for (size_t i = 0; i < records; ++i) {
    const uint8_t* record = bytes.data() + i * kCifarRecordBytes;
    MEGA_CHECK(record[0] < kImageClasses, path, ": record ", i, " has label ", int{record[0]},
               " (CIFAR-10 labels are 0-9)");
    const uint8_t *red = record + 1, *green = red + kCifarPixels, *blue = green + kCifarPixels;
    SequenceExample& e = examples[i];
    e.label = record[0];
    e.ids.resize(kCifarPixels);
    for (int64_t p = 0; p < kCifarPixels; ++p) e.ids[p] = rgb_to_grey(red[p], green[p], blue[p]);
  }
  return examples;
}

bool cifar10_dataset_exists(const std::string& dir) {
  namespace fs = std::filesystem;
  for (int b = 1; b <= 5; ++b)
    if (!fs::exists(fs::path(dir) / ("data_batch_" + std::to_string(b) + ".bin"))) return false;
  return fs::exists(fs::path(dir) / "test_batch.bin");
}

ImageSplits load_cifar10(const std::string& dir, const ValidationSplit& split) {
  namespace fs = std::filesystem;
  MEGA_CHECK(cifar10_dataset_exists(dir), dir,
             ": lacks CIFAR-10's binary release (data_batch_1.bin .. data_batch_5.bin, test_batch.bin)");
  std::vector<SequenceExample> train;
  for (int b = 1; b <= 5; ++b) {
    std::vector<SequenceExample> batch = load_cifar10_batch((fs::path(dir) / ("data_batch_" + std::to_string(b) + ".bin")).string());
    train.insert(train.end(), std::make_move_iterator(batch.begin()), std::make_move_iterator(batch.end()));
  }
  ImageSplits splits;
  std::tie(splits.train, splits.val) = split_validation(std::move(train), split);
  splits.test = load_cifar10_batch((fs::path(dir) / "test_batch.bin").string());
  return splits;
}

// ---- MNIST-family IDX ----

std::vector<uint8_t> read_maybe_gzip(const std::string& path) {
  std::vector<uint8_t> raw = read_file(path);
  if (raw.size() < 2 || raw[0] != 0x1f || raw[1] != 0x8b) return raw;
  z_stream stream{};
  // 15 + 16: a gzip wrapper (not zlib's), the largest window.
  MEGA_CHECK(inflateInit2(&stream, 15 + 16) == Z_OK, path, ": zlib inflateInit2 failed");
  stream.next_in = raw.data();
  stream.avail_in = static_cast<uInt>(raw.size());
  std::vector<uint8_t> out;
  uint8_t chunk[1 << 16];
  int status = Z_OK;
  while (status != Z_STREAM_END) {
    stream.next_out = chunk;
    stream.avail_out = sizeof(chunk);
    status = inflate(&stream, Z_NO_FLUSH);
    if (status != Z_OK && status != Z_STREAM_END) {
      const std::string message = stream.msg ? stream.msg : (status == Z_BUF_ERROR ? "unexpected end of data" : "error");
      inflateEnd(&stream);
      fail(path, ": corrupt or truncated gzip data (zlib: ", message, ")");
    }
    out.insert(out.end(), chunk, chunk + (sizeof(chunk) - stream.avail_out));
  }
  inflateEnd(&stream);
  return out;
}

IdxImages load_idx_images(const std::string& path) {
  std::vector<uint8_t> bytes = read_maybe_gzip(path);
  const std::vector<int64_t> dims = idx_dimensions(bytes, path, kIdxImagesMagic, "images");
  IdxImages images;
  images.count = dims[0];
  images.rows = dims[1];
  images.cols = dims[2];
  images.pixels.assign(bytes.begin() + 16, bytes.end());
  return images;
}

std::vector<int64_t> load_idx_labels(const std::string& path) {
  std::vector<uint8_t> bytes = read_maybe_gzip(path);
  idx_dimensions(bytes, path, kIdxLabelsMagic, "labels");
  return std::vector<int64_t>(bytes.begin() + 8, bytes.end());
}

std::vector<SequenceExample> load_idx_examples(const std::string& images_path, const std::string& labels_path) {
  const IdxImages images = load_idx_images(images_path);
  const std::vector<int64_t> labels = load_idx_labels(labels_path);
  MEGA_CHECK(static_cast<int64_t>(labels.size()) == images.count, images_path, " holds ", images.count,
             " images but ", labels_path, " holds ", labels.size(), " labels");
  const int64_t pixels = images.rows * images.cols;
  std::vector<SequenceExample> examples(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) {
    MEGA_CHECK(labels[i] < kImageClasses, labels_path, ": label ", i, " is ", labels[i], " (expected 0-9)");
    examples[i].label = labels[i];
    const uint8_t* image = images.pixels.data() + static_cast<int64_t>(i) * pixels;
    examples[i].ids.assign(image, image + pixels);
  }
  return examples;
}

bool mnist_family_dataset_exists(const std::string& dir) {
  for (const char* name : kMnistFiles)
    if (first_existing(dir, name).empty()) return false;
  return true;
}

ImageSplits load_mnist_family(const std::string& dir, const ValidationSplit& split) {
  std::string paths[4];
  for (int i = 0; i < 4; ++i) {
    paths[i] = first_existing(dir, kMnistFiles[i]);
    MEGA_CHECK(!paths[i].empty(), dir, ": has no ", kMnistFiles[i], " (nor ", kMnistFiles[i], ".gz)");
  }
  ImageSplits splits;
  std::tie(splits.train, splits.val) = split_validation(load_idx_examples(paths[0], paths[1]), split);
  splits.test = load_idx_examples(paths[2], paths[3]);
  return splits;
}

std::string find_fashion_mnist(const std::string& dir) {
  const std::string where = dir.empty() ? kDebianFashionMnistDir : dir;
  MEGA_CHECK(mnist_family_dataset_exists(where), "[fashion_mnist] ", where,
             " lacks {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]",
             dir.empty() ? " (Debian: apt-get install dataset-fashion-mnist)" : "");
  return where;
}

// ---- The task rows ----

namespace {

constexpr int64_t kImageTokenPad = 256;  // the token variant's padding: no grey level takes it

TaskKey number_key(std::string name, double value, double min, double max, std::string help) {
  return TaskKey{.name = std::move(name), .default_value = value, .min = min, .max = max, .choices = {},
                 .help = std::move(help)};
}

TaskInput pixel_input(const TaskSettings& s) {
  return TaskInput{.kind = InputKind::Pixels, .vocab_size = 256, .pad_id = 0, .pixel_mean = s.get_float("pixel_mean"),
                   .pixel_std = s.get_float("pixel_std")};
}

// Each image cut to data.max_length steps, as every task's sequences are.
TaskSplits task_splits(ImageSplits splits, int64_t max_length) {
  for (auto* split : {&splits.train, &splits.val, &splits.test})
    for (SequenceExample& e : *split)
      if (max_length > 0 && static_cast<int64_t>(e.ids.size()) > max_length) e.ids.resize(static_cast<size_t>(max_length));
  return TaskSplits{std::move(splits.train), std::move(splits.val), std::move(splits.test)};
}

TaskDescription describe_image(const TaskSettings& s) {
  TaskDescription d;
  if (s.get_string("input") == "tokens")
    d.input = TaskInput{.kind = InputKind::Tokens, .vocab_size = 257, .pad_id = kImageTokenPad, .pixel_mean = 0,
                        .pixel_std = 1};
  else d.input = pixel_input(s);
  d.num_labels = kImageClasses;
  d.metric = Metric::Accuracy;
  d.files = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin",
             "test_batch.bin"};
  return d;
}

TaskSplits load_image(const DataSource& source) {
  MEGA_CHECK(cifar10_dataset_exists(source.dir), "data.dir '", source.dir,
             "' lacks CIFAR-10's binary release (data_batch_1.bin .. data_batch_5.bin, test_batch.bin; the "
             "cifar-10-batches-bin folder of cifar-10-binary.tar.gz)");
  return task_splits(load_cifar10(source.dir, ValidationSplit{source.settings.get_float("val_fraction"), std::nullopt}),
                     source.max_length);
}

TaskDescription describe_fashion_mnist(const TaskSettings& s) {
  TaskDescription d;
  d.input = pixel_input(s);
  d.num_labels = kImageClasses;
  d.metric = Metric::Accuracy;
  for (const char* name : kMnistFiles) d.files.push_back(std::string(name) + "[.gz]");
  return d;
}

TaskSplits load_fashion_mnist(const DataSource& source) {
  MEGA_CHECK(mnist_family_dataset_exists(source.dir), "data.dir '", source.dir,
             "' lacks {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] (Debian: apt-get install "
             "dataset-fashion-mnist, then data.dir=", kDebianFashionMnistDir, ")");
  return task_splits(
      load_mnist_family(source.dir, ValidationSplit{source.settings.get_float("val_fraction"), std::nullopt}),
      source.max_length);
}

}  // namespace

Task image_task() {
  return Task{
      .name = "image",
      .help = "LRA Image: CIFAR-10 (binary release) as 1024 grey steps, 10 classes; pixels or grey-level tokens",
      .keys = {TaskKey{.name = "input", .default_value = std::string("pixels"), .min = -kInf, .max = kInf,
                       .choices = {"pixels", "tokens"},
                       .help = "pixels: real-valued embedding (Mega); tokens: an embedding per grey level (LRA)"},
               number_key("pixel_mean", 0.48, 0, 1, "pixels: (v / 255 - pixel_mean) / pixel_std"),
               number_key("pixel_std", 0.24, 1e-6, 1e6, "pixels: (v / 255 - pixel_mean) / pixel_std"),
               number_key("val_fraction", 0.1, 0, 0.99, "the tail of the training batches held out for validation")},
      .check = nullptr,
      .describe = describe_image,
      .load = load_image,
  };
}

Task fashion_mnist_task() {
  return Task{
      .name = "fashion_mnist",
      .help = "Fashion-MNIST (or any MNIST-family IDX set) as 784 pixel steps, 10 classes",
      .keys = {number_key("pixel_mean", 0.2860, 0, 1, "(v / 255 - pixel_mean) / pixel_std"),
               number_key("pixel_std", 0.3530, 1e-6, 1e6, "(v / 255 - pixel_mean) / pixel_std"),
               number_key("val_fraction", 0.1, 0, 0.99, "the tail of the training file held out for validation")},
      .check = nullptr,
      .describe = describe_fashion_mnist,
      .load = load_fashion_mnist,
  };
}

}  // namespace mega

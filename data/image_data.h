// Images as pixel sequences for the Long Range Arena's Image task (sequential CIFAR-10, grey, 1024 steps)
// and for sequential MNIST-family classification (784 steps): loaders of the datasets' own release
// formats, each image flattened row-major into SequenceExample::ids = intensities 0-255.
//
// CIFAR-10 binary release: data_batch_{1..5}.bin and test_batch.bin, records of 1 label byte and 3072
// pixel bytes (the R plane, then G, then B, each 32x32 row-major).
// MNIST-family IDX files (*-images-idx3-ubyte, *-labels-idx1-ubyte, plain or gzip): big-endian magic
// 0x00000803 / 0x00000801, then big-endian dimensions, then one byte per pixel or label.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/batching.h"
#include "data/task.h"

namespace mega {

constexpr int64_t kImageClasses = 10;  // CIFAR-10, MNIST and Fashion-MNIST
constexpr int64_t kCifarSide = 32;
constexpr int64_t kCifarPixels = kCifarSide * kCifarSide;       // 1024 steps
constexpr int64_t kCifarRecordBytes = 1 + 3 * kCifarPixels;     // 3073

// tf.image.rgb_to_grayscale on uint8 pixels, as LRA's input pipeline calls it: each channel to float32
// in [0, 1] (v / 255), the luma weights 0.2989 R + 0.5870 G + 0.1140 B, then back to uint8 by TF's
// convert_image_dtype (times 255.5, truncated). White stays 255, black 0.
int64_t rgb_to_grey(uint8_t r, uint8_t g, uint8_t b);

// The held-out part of a training set. LRA slices tfds's train split as train[:90%] / train[90%:]:
// without a seed, the last `fraction` of the file order is validation (the same cut; tfds's own record
// order differs from the release files'). With a seed, the examples are first permuted by Philox draws
// (deterministic on every machine). The train count is round((1 - fraction) * n).
struct ValidationSplit {
  double fraction = 0.1;
  std::optional<uint64_t> shuffle_seed;
};

struct ImageSplits {
  std::vector<SequenceExample> train, val, test;
};

// Splits `examples` into (train, validation) as described by `split`; fraction must lie in [0, 1).
std::pair<std::vector<SequenceExample>, std::vector<SequenceExample>> split_validation(
    std::vector<SequenceExample> examples, const ValidationSplit& split);

// ---- CIFAR-10 ----

// One batch file: each record's grey image (1024 ids) and label. A size that is not a multiple of 3073
// bytes, or a label above 9, is an error naming the file (and the record).
std::vector<SequenceExample> load_cifar10_batch(const std::string& path);
// DIR/data_batch_{1..5}.bin (train, split by `split`) and DIR/test_batch.bin (test).
ImageSplits load_cifar10(const std::string& dir, const ValidationSplit& split = {});
bool cifar10_dataset_exists(const std::string& dir);

// ---- MNIST-family IDX ----

struct IdxImages {
  int64_t count = 0, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // count * rows * cols, row-major per image
};

// A file's bytes, gunzipped when it starts with gzip's magic (1f 8b) whatever its name.
std::vector<uint8_t> read_maybe_gzip(const std::string& path);
// Wrong magic, missing dimensions or fewer bytes than the dimensions promise: an error naming the file.
IdxImages load_idx_images(const std::string& path);
std::vector<int64_t> load_idx_labels(const std::string& path);
// Images and labels paired; a count mismatch or a label above 9 is an error naming both files.
std::vector<SequenceExample> load_idx_examples(const std::string& images_path, const std::string& labels_path);

// DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte, each plain or with ".gz" (plain preferred).
ImageSplits load_mnist_family(const std::string& dir, const ValidationSplit& split = {});
bool mnist_family_dataset_exists(const std::string& dir);

// Debian's package dataset-fashion-mnist installs the four .gz files here.
constexpr const char* kDebianFashionMnistDir = "/usr/share/datasets/fashion-mnist";
// `dir` when it holds the four IDX files; with `dir` empty, the Debian location when it does. Otherwise
// an error saying where it looked and how to get the files (apt-get install dataset-fashion-mnist).
std::string find_fashion_mnist(const std::string& dir = "");

// ---- The task rows (data/task.h) ----

// data.task: image, LRA's Image task: CIFAR-10's binary release in data.dir, grey, 1024 steps, 10 classes,
// train = the first 90% of data_batch_1..5 (data.image.val_fraction), val = the rest, test = test_batch.
// data.image.input: pixels (default; the real-valued embedding of Mega, normalised by
// data.image.pixel_mean / pixel_std, Mega's --pixel-normalization 0.48 0.24) or tokens (LRA's token
// variant: each grey level an id of a learned embedding; the vocabulary is 257 so that padding, id 256,
// is none of the 256 levels: black keeps a trainable embedding of its own).
Task image_task();
// data.task: fashion_mnist: an MNIST-family IDX set in data.dir (Debian's dataset-fashion-mnist installs
// Fashion-MNIST in kDebianFashionMnistDir), 784 pixel steps, 10 classes; train = the first 90% of the
// training file (data.fashion_mnist.val_fraction), val the rest, test = t10k. pixel_mean / pixel_std
// default to Fashion-MNIST's training-set statistics (0.2860, 0.3530); set them for MNIST (0.1307, 0.3081).
Task fashion_mnist_task();

}  // namespace mega

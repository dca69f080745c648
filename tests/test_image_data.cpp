// Image datasets as pixel sequences: TF's grey conversion, the CIFAR-10 binary and MNIST-family IDX
// loaders on small files written here (plain and gzip, malformed), the validation split, and
// Fashion-MNIST from Debian's package when it is installed.
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "data/image_data.h"
#include "tests/gradcheck_util.h"

using namespace mega;
using mega::testing::error_of;

namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) : path(fs::temp_directory_path() / ("mega_test_image_data_" + name)) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void write_gzip(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile out = gzopen(path.c_str(), "wb");
  ASSERT_NE(out, nullptr);
  ASSERT_EQ(gzwrite(out, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  gzclose(out);
}

// A CIFAR-10 record: label, then every pixel of the R, G and B planes set to r, g, b, except
// pixel 0 of R, pixel 1 of G and pixel 2 of B, set to 255 (to pin the plane order).
std::vector<uint8_t> cifar_record(uint8_t label, uint8_t r, uint8_t g, uint8_t b) {
  std::vector<uint8_t> record(kCifarRecordBytes);
  record[0] = label;
  std::fill(record.begin() + 1, record.begin() + 1 + kCifarPixels, r);
  std::fill(record.begin() + 1 + kCifarPixels, record.begin() + 1 + 2 * kCifarPixels, g);
  std::fill(record.begin() + 1 + 2 * kCifarPixels, record.end(), b);
  record[1] = 255;
  record[1 + kCifarPixels + 1] = 255;
  record[1 + 2 * kCifarPixels + 2] = 255;
  return record;
}

std::vector<uint8_t> cifar_batch(const std::vector<uint8_t>& labels) {
  std::vector<uint8_t> bytes;
  for (uint8_t label : labels) {
    std::vector<uint8_t> record = cifar_record(label, 0, 0, 0);
    bytes.insert(bytes.end(), record.begin(), record.end());
  }
  return bytes;
}

void put_u32(std::vector<uint8_t>& bytes, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<uint8_t>(value >> shift));
}

// IDX images: `count` images of rows x cols, pixel p of image i = (i * 10 + p) % 256.
std::vector<uint8_t> idx_images(uint32_t count, uint32_t rows, uint32_t cols) {
  std::vector<uint8_t> bytes;
  put_u32(bytes, 0x803);
  put_u32(bytes, count);
  put_u32(bytes, rows);
  put_u32(bytes, cols);
  for (uint32_t i = 0; i < count; ++i)
    for (uint32_t p = 0; p < rows * cols; ++p) bytes.push_back(static_cast<uint8_t>((i * 10 + p) % 256));
  return bytes;
}

std::vector<uint8_t> idx_labels(const std::vector<uint8_t>& labels) {
  std::vector<uint8_t> bytes;
  put_u32(bytes, 0x801);
  put_u32(bytes, static_cast<uint32_t>(labels.size()));
  bytes.insert(bytes.end(), labels.begin(), labels.end());
  return bytes;
}

}  // namespace

TEST(ImageData, GreyIsTensorflowsRgbToGrayscaleOnUint8) {
  EXPECT_EQ(rgb_to_grey(0, 0, 0), 0);
  EXPECT_EQ(rgb_to_grey(255, 255, 255), 255);  // 0.9999 * 255.5 = 255.47
  EXPECT_EQ(rgb_to_grey(255, 0, 0), 76);       // 0.2989 * 255.5 = 76.37
  EXPECT_EQ(rgb_to_grey(0, 255, 0), 149);      // 0.5870 * 255.5 = 149.98: truncated, where rounding 0.587 * 255 gives 150
  EXPECT_EQ(rgb_to_grey(0, 0, 255), 29);       // 0.1140 * 255.5 = 29.13
  EXPECT_EQ(rgb_to_grey(100, 150, 200), 141);  // (0.2989 * 100 + 0.587 * 150 + 0.114 * 200) / 255 * 255.5 = 141.02
  EXPECT_EQ(rgb_to_grey(128, 128, 128), 128);
}

TEST(ImageData, CifarBatchReadsPlanesAndLabels) {
  TempDir dir("cifar_batch");
  std::vector<uint8_t> bytes = cifar_record(7, 10, 20, 30);
  std::vector<uint8_t> second = cifar_record(0, 255, 255, 255);
  bytes.insert(bytes.end(), second.begin(), second.end());
  write_bytes(dir.file("b.bin"), bytes);
  std::vector<SequenceExample> examples = load_cifar10_batch(dir.file("b.bin"));
  ASSERT_EQ(examples.size(), 2u);
  EXPECT_EQ(examples[0].label, 7);
  ASSERT_EQ(examples[0].ids.size(), static_cast<size_t>(kCifarPixels));
  EXPECT_EQ(examples[0].ids[0], rgb_to_grey(255, 20, 30));  // R plane's pixel 0
  EXPECT_EQ(examples[0].ids[1], rgb_to_grey(10, 255, 30));  // G plane's pixel 1
  EXPECT_EQ(examples[0].ids[2], rgb_to_grey(10, 20, 255));  // B plane's pixel 2
  EXPECT_EQ(examples[0].ids[1023], rgb_to_grey(10, 20, 30));
  EXPECT_EQ(examples[1].label, 0);
  EXPECT_EQ(examples[1].ids[500], 255);
}

TEST(ImageData, CifarMalformedFilesAreErrorsNamingThem) {
  TempDir dir("cifar_bad");
  std::vector<uint8_t> bytes = cifar_batch({1, 2});
  bytes.pop_back();
  write_bytes(dir.file("short.bin"), bytes);
  std::string e = error_of([&] { load_cifar10_batch(dir.file("short.bin")); });
  EXPECT_NE(e.find("short.bin"), std::string::npos) << e;
  EXPECT_NE(e.find("6145 bytes"), std::string::npos) << e;
  EXPECT_NE(e.find("3073"), std::string::npos) << e;

  write_bytes(dir.file("label.bin"), cifar_batch({1, 10}));
  e = error_of([&] { load_cifar10_batch(dir.file("label.bin")); });
  EXPECT_NE(e.find("label.bin: record 1 has label 10"), std::string::npos) << e;

  e = error_of([&] { load_cifar10_batch(dir.file("missing.bin")); });
  EXPECT_NE(e.find("missing.bin: cannot open"), std::string::npos) << e;
  e = error_of([&] { load_cifar10(dir.path.string()); });
  EXPECT_NE(e.find("data_batch_1.bin"), std::string::npos) << e;
}

TEST(ImageData, CifarSplitsHoldOutTheTailOrASeededTenth) {
  TempDir dir("cifar_splits");
  for (int b = 1; b <= 5; ++b)
    write_bytes(dir.file("data_batch_" + std::to_string(b) + ".bin"),
                cifar_batch({static_cast<uint8_t>(2 * b - 2), static_cast<uint8_t>(2 * b - 1)}));
  write_bytes(dir.file("test_batch.bin"), cifar_batch({3, 4, 5}));
  ASSERT_TRUE(cifar10_dataset_exists(dir.path.string()));
  ImageSplits splits = load_cifar10(dir.path.string());
  ASSERT_EQ(splits.train.size(), 9u);
  ASSERT_EQ(splits.val.size(), 1u);
  ASSERT_EQ(splits.test.size(), 3u);
  for (size_t i = 0; i < 9; ++i) EXPECT_EQ(splits.train[i].label, static_cast<int64_t>(i));  // file order
  EXPECT_EQ(splits.val[0].label, 9);  // LRA's train[90%:]: the tail
  EXPECT_EQ(splits.test[2].label, 5);

  ImageSplits a = load_cifar10(dir.path.string(), {0.2, 11}), b = load_cifar10(dir.path.string(), {0.2, 11});
  ASSERT_EQ(a.train.size(), 8u);
  ASSERT_EQ(a.val.size(), 2u);
  std::set<int64_t> labels;
  bool reordered = false;
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(a.train[i].label, b.train[i].label);  // deterministic in the seed
    reordered = reordered || a.train[i].label != static_cast<int64_t>(i);
    labels.insert(a.train[i].label);
  }
  for (const SequenceExample& e : a.val) labels.insert(e.label);
  EXPECT_EQ(labels.size(), 10u);  // a permutation: nothing lost or repeated
  EXPECT_TRUE(reordered);
  EXPECT_NE(error_of([&] { split_validation({}, {1.0, std::nullopt}); }).find("[0, 1)"), std::string::npos);
}

TEST(ImageData, IdxPlainAndGzipLoadAlike) {
  TempDir dir("idx");
  write_bytes(dir.file("images"), idx_images(3, 2, 2));
  write_bytes(dir.file("labels"), idx_labels({4, 0, 9}));
  write_gzip(dir.file("images.gz"), idx_images(3, 2, 2));
  write_gzip(dir.file("labels.gz"), idx_labels({4, 0, 9}));
  IdxImages images = load_idx_images(dir.file("images.gz"));
  EXPECT_EQ(images.count, 3);
  EXPECT_EQ(images.rows, 2);
  EXPECT_EQ(images.cols, 2);
  for (const auto& [image_file, label_file] : {std::pair{"images", "labels"}, std::pair{"images.gz", "labels.gz"}}) {
    std::vector<SequenceExample> examples = load_idx_examples(dir.file(image_file), dir.file(label_file));
    ASSERT_EQ(examples.size(), 3u) << image_file;
    EXPECT_EQ(examples[0].label, 4);
    EXPECT_EQ(examples[2].label, 9);
    EXPECT_EQ(examples[1].ids, (std::vector<int64_t>{10, 11, 12, 13})) << image_file;
  }
}

TEST(ImageData, IdxMalformedFilesAreErrorsNamingThem) {
  TempDir dir("idx_bad");
  std::vector<uint8_t> labels = idx_labels({1, 2, 3});
  write_bytes(dir.file("labels"), labels);
  // Labels where images are expected: the magic says so.
  std::string e = error_of([&] { load_idx_images(dir.file("labels")); });
  EXPECT_NE(e.find("labels: magic number 0x00000801 is not that of IDX images (0x00000803)"), std::string::npos) << e;

  std::vector<uint8_t> images = idx_images(3, 2, 2);
  images.pop_back();
  write_bytes(dir.file("short-images"), images);
  e = error_of([&] { load_idx_images(dir.file("short-images")); });
  EXPECT_NE(e.find("short-images: truncated"), std::string::npos) << e;
  write_bytes(dir.file("header"), {0, 0, 8, 3, 0, 0});
  e = error_of([&] { load_idx_images(dir.file("header")); });
  EXPECT_NE(e.find("header: truncated IDX header"), std::string::npos) << e;

  std::vector<uint8_t> gz;
  write_gzip(dir.file("full.gz"), idx_images(3, 2, 2));
  {
    std::ifstream in(dir.file("full.gz"), std::ios::binary);
    gz.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  gz.resize(gz.size() / 2);
  write_bytes(dir.file("cut.gz"), gz);
  e = error_of([&] { load_idx_images(dir.file("cut.gz")); });
  EXPECT_NE(e.find("cut.gz: corrupt or truncated gzip"), std::string::npos) << e;

  write_bytes(dir.file("images"), idx_images(4, 2, 2));
  e = error_of([&] { load_idx_examples(dir.file("images"), dir.file("labels")); });
  EXPECT_NE(e.find("images holds 4 images but"), std::string::npos) << e;
  EXPECT_NE(e.find("labels holds 3 labels"), std::string::npos) << e;

  write_bytes(dir.file("images3"), idx_images(3, 2, 2));
  write_bytes(dir.file("bad-labels"), idx_labels({1, 12, 3}));
  e = error_of([&] { load_idx_examples(dir.file("images3"), dir.file("bad-labels")); });
  EXPECT_NE(e.find("bad-labels: label 1 is 12"), std::string::npos) << e;
}

TEST(ImageData, MnistFamilyFolderMixesPlainAndGzip) {
  TempDir dir("mnist");
  std::vector<uint8_t> train_labels(20);
  for (int i = 0; i < 20; ++i) train_labels[i] = static_cast<uint8_t>(i % 10);
  write_gzip(dir.file("train-images-idx3-ubyte.gz"), idx_images(20, 28, 28));
  write_gzip(dir.file("train-labels-idx1-ubyte.gz"), idx_labels(train_labels));
  write_bytes(dir.file("t10k-images-idx3-ubyte"), idx_images(5, 28, 28));
  EXPECT_FALSE(mnist_family_dataset_exists(dir.path.string()));
  std::string e = error_of([&] { load_mnist_family(dir.path.string()); });
  EXPECT_NE(e.find("t10k-labels-idx1-ubyte"), std::string::npos) << e;
  write_bytes(dir.file("t10k-labels-idx1-ubyte"), idx_labels({0, 1, 2, 3, 4}));
  ASSERT_TRUE(mnist_family_dataset_exists(dir.path.string()));
  ImageSplits splits = load_mnist_family(dir.path.string());
  EXPECT_EQ(splits.train.size(), 18u);
  EXPECT_EQ(splits.val.size(), 2u);
  EXPECT_EQ(splits.test.size(), 5u);
  EXPECT_EQ(splits.train[0].ids.size(), 784u);
  EXPECT_EQ(splits.val[1].label, 9);
  EXPECT_EQ(find_fashion_mnist(dir.path.string()), dir.path.string());
  e = error_of([&] { find_fashion_mnist(dir.file("nowhere")); });
  EXPECT_NE(e.find("nowhere lacks"), std::string::npos) << e;
}

TEST(ImageData, FashionMnistFromDebiansPackage) {
  if (!mnist_family_dataset_exists(kDebianFashionMnistDir))
    GTEST_SKIP() << "dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)";
  ImageSplits splits = load_mnist_family(find_fashion_mnist(), {0.1, 1});
  EXPECT_EQ(splits.train.size(), 54000u);
  EXPECT_EQ(splits.val.size(), 6000u);
  EXPECT_EQ(splits.test.size(), 10000u);
  std::vector<int64_t> per_class(10);
  for (const SequenceExample& e : splits.test) {
    ASSERT_EQ(e.ids.size(), 784u);
    per_class[e.label]++;
  }
  for (int64_t count : per_class) EXPECT_EQ(count, 1000);  // Fashion-MNIST's test set is balanced
}

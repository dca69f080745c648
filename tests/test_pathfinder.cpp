// Pathfinder: PNG reading and writing (round trip, libpng's colour conversions, errors naming the file),
// the LRA-layout loader on small trees written here (missing and empty images, malformed lines, CRLF),
// the seeded split, and the generator: its label checked on the drawn pixels by connected components,
// determinism, balance, and the written dataset read back through the loader.
#include <gtest/gtest.h>
#include <png.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "core/threading.h"
#include "data/pathfinder.h"
#include "data/pathfinder_gen.h"
#include "data/png.h"

using namespace mega;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("mega_test_pathfinder_" + std::to_string(::getpid())) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

struct RemoveOnExit {
  ~RemoveOnExit() { fs::remove_all(fs::temp_directory_path() / ("mega_test_pathfinder_" + std::to_string(::getpid()))); }
};

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

GreyImage pattern(int64_t width, int64_t height, int salt) {
  GreyImage image;
  image.width = width;
  image.height = height;
  for (int64_t i = 0; i < width * height; ++i) image.pixels.push_back(static_cast<uint8_t>((i * 37 + salt) % 256));
  return image;
}

// Writes a PNG of another colour type / bit depth with libpng directly (no error handling: test input).
void write_png_raw(const fs::path& path, int width, int height, int colour, int depth,
                   const std::vector<uint8_t>& bytes) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  ASSERT_TRUE(file);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_init_io(png, file);
  png_set_IHDR(png, info, width, height, depth, colour, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  const size_t row_bytes = bytes.size() / height;
  for (int y = 0; y < height; ++y) png_write_row(png, bytes.data() + y * row_bytes);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  std::fclose(file);
}

// The error message of `f`, or "" when it does not throw.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Connected components of the inked pixels (value > 0), 8-neighbourhood; -1 for background.
std::vector<int> components(const GreyImage& image) {
  const int64_t w = image.width, h = image.height;
  std::vector<int> label(static_cast<size_t>(w * h), -1);
  int next = 0;
  std::vector<int64_t> stack;
  for (int64_t start = 0; start < w * h; ++start) {
    if (image.pixels[start] == 0 || label[start] >= 0) continue;
    label[start] = next;
    stack.push_back(start);
    while (!stack.empty()) {
      const int64_t p = stack.back();
      stack.pop_back();
      const int64_t x = p % w, y = p / w;
      for (int64_t dy = -1; dy <= 1; ++dy)
        for (int64_t dx = -1; dx <= 1; ++dx) {
          const int64_t nx = x + dx, ny = y + dy;
          if (nx < 0 || ny < 0 || nx >= w || ny >= h) continue;
          const int64_t q = ny * w + nx;
          if (image.pixels[q] == 0 || label[q] >= 0) continue;
          label[q] = next;
          stack.push_back(q);
        }
    }
    ++next;
  }
  return label;
}

int component_at(const std::vector<int>& label, const GreyImage& image, std::array<double, 2> centre) {
  const int64_t x = static_cast<int64_t>(centre[0]), y = static_cast<int64_t>(centre[1]);
  EXPECT_EQ(image.at(x, y), 255) << "the marker's centre pixel is fully inked";
  return label[y * image.width + x];
}

const RemoveOnExit cleanup;

}  // namespace

// ---- PNG ----

TEST(PathfinderPng, RoundTripAndOddSizes) {
  const fs::path dir = fresh_dir("png");
  for (auto [w, h] : {std::pair{32, 32}, std::pair{17, 3}, std::pair{1, 1}}) {
    GreyImage image = pattern(w, h, w + h);
    write_png_grey((dir / "a.png").string(), image);
    GreyImage back = read_png_grey((dir / "a.png").string());
    EXPECT_EQ(back.width, w);
    EXPECT_EQ(back.height, h);
    EXPECT_EQ(back.pixels, image.pixels);
  }
  EXPECT_FALSE(fs::exists(dir / "a.png.tmp"));
}

TEST(PathfinderPng, ConvertsColourAndBitDepthToGrey) {
  const fs::path dir = fresh_dir("png_convert");
  // RGB: white, black, pure red (luminance 0.2126), pure green (0.7152).
  write_png_raw(dir / "rgb.png", 4, 1, PNG_COLOR_TYPE_RGB, 8, {255, 255, 255, 0, 0, 0, 255, 0, 0, 0, 255, 0});
  GreyImage rgb = read_png_grey((dir / "rgb.png").string());
  ASSERT_EQ(rgb.pixels.size(), 4u);
  EXPECT_EQ(rgb.pixels[0], 255);
  EXPECT_EQ(rgb.pixels[1], 0);
  EXPECT_NEAR(rgb.pixels[2], 54, 1);
  EXPECT_NEAR(rgb.pixels[3], 182, 1);
  // 16-bit grey, big-endian samples 0xFFFF, 0x0000, 0x8080.
  write_png_raw(dir / "g16.png", 3, 1, PNG_COLOR_TYPE_GRAY, 16, {0xFF, 0xFF, 0x00, 0x00, 0x80, 0x80});
  GreyImage g16 = read_png_grey((dir / "g16.png").string());
  EXPECT_EQ(g16.pixels, (std::vector<uint8_t>{255, 0, 128}));
  // 1-bit grey: 1 0 1 1 0 0 0 1 packed into one byte, expanded to 0 / 255.
  write_png_raw(dir / "g1.png", 8, 1, PNG_COLOR_TYPE_GRAY, 1, {0b10110001});
  GreyImage g1 = read_png_grey((dir / "g1.png").string());
  EXPECT_EQ(g1.pixels, (std::vector<uint8_t>{255, 0, 255, 255, 0, 0, 0, 255}));
  // Grey + alpha: the alpha channel is dropped.
  write_png_raw(dir / "ga.png", 2, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, {10, 255, 200, 0});
  EXPECT_EQ(read_png_grey((dir / "ga.png").string()).pixels, (std::vector<uint8_t>{10, 200}));
}

TEST(PathfinderPng, ErrorsNameTheFile) {
  const fs::path dir = fresh_dir("png_errors");
  const std::string missing = (dir / "missing.png").string();
  EXPECT_NE(error_of([&] { read_png_grey(missing); }).find(missing), std::string::npos);

  const std::string empty = (dir / "empty.png").string();
  write_text(empty, "");
  EXPECT_NE(error_of([&] { read_png_grey(empty); }).find(empty + " is not a PNG file (empty)"), std::string::npos);

  const std::string text = (dir / "text.png").string();
  write_text(text, "imgs/0 sample_0.png 0 1\n");
  EXPECT_NE(error_of([&] { read_png_grey(text); }).find(text + " is not a PNG"), std::string::npos);

  // A valid image cut in half: libpng's error (by longjmp) becomes an Error naming the file.
  const std::string whole = (dir / "whole.png").string(), cut = (dir / "cut.png").string();
  write_png_grey(whole, pattern(64, 64, 1));
  std::ifstream in(whole, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write_text(cut, bytes.substr(0, bytes.size() / 2));
  const std::string truncated = error_of([&] { read_png_grey(cut); });
  EXPECT_NE(truncated.find("cannot read " + cut), std::string::npos) << truncated;

  // A corrupted data chunk (bytes flipped after the header): a CRC or zlib error, not a crash.
  std::string corrupt = bytes;
  for (size_t i = 60; i < corrupt.size() - 20; i += 7) corrupt[i] = static_cast<char>(corrupt[i] ^ 0x5A);
  write_text(dir / "corrupt.png", corrupt);
  EXPECT_NE(error_of([&] { read_png_grey((dir / "corrupt.png").string()); }).find((dir / "corrupt.png").string()),
            std::string::npos);

  GreyImage wrong;
  wrong.width = 3;
  wrong.height = 3;
  wrong.pixels.resize(4);
  EXPECT_NE(error_of([&] { write_png_grey((dir / "w.png").string(), wrong); }).find("w.png"), std::string::npos);
}

// ---- Loader ----

namespace {

// A difficulty folder with 4x4 images: 0.npy lists 6 (one missing, one empty, one CRLF line), 1.npy
// lists 3, 10.npy lists 1 (read after 1.npy: numeric order). Image k has every pixel equal to 10 * k.
fs::path write_small_tree(const fs::path& root) {
  const fs::path dir = root / "pathfinder32" / "curv_baseline";
  auto image = [&](int folder, int index, int value) {
    GreyImage g;
    g.width = g.height = 4;
    g.pixels.assign(16, static_cast<uint8_t>(value));
    fs::create_directories(dir / "imgs" / std::to_string(folder));
    write_png_grey((dir / "imgs" / std::to_string(folder) / ("sample_" + std::to_string(index) + ".png")).string(), g);
  };
  for (int i = 0; i < 6; ++i)
    if (i != 2 && i != 4) image(0, i, 10 * i);
  write_text(dir / "imgs/0/sample_4.png", "");  // empty: skipped like a missing one
  write_text(dir / "metadata/0.npy",
             "imgs/0 sample_0.png 0 1 1.0 14 4 2 0.5 1 1\n"
             "imgs/0 sample_1.png 1 0 1.0 14 4 2 0.5 1 1\r\n"
             "imgs/0 sample_2.png 2 1 1.0 14 4 2 0.5 1 1\n"
             "\n"
             "imgs/0 sample_3.png 3 0 1.0 14 4 2 0.5 1 1\n"
             "imgs/0 sample_4.png 4 1 1.0 14 4 2 0.5 1 1\n"
             "imgs/0   sample_5.png\t5 1\n");
  for (int i = 0; i < 3; ++i) image(1, i, 100 + i);
  write_text(dir / "metadata/1.npy",
             "imgs/1 sample_0.png 0 0\nimgs/1 sample_1.png 1 1\nimgs/1 sample_2.png 2 0");  // no final newline
  image(10, 0, 200);
  write_text(dir / "metadata/10.npy", "imgs/10 sample_0.png 0 1\n");
  write_text(dir / "metadata/notes.txt", "not metadata\n");
  return dir;
}

}  // namespace

TEST(PathfinderLoader, ReadsTheReleaseLayout) {
  const fs::path root = fresh_dir("tree");
  const fs::path dir = write_small_tree(root);
  PathfinderImages read = load_pathfinder_images(dir.string(), 4);
  EXPECT_EQ(read.skipped_images, 2);
  const std::vector<int> values = {0, 10, 30, 50, 100, 101, 102, 200};
  const std::vector<int64_t> labels = {1, 0, 0, 1, 0, 1, 0, 1};
  ASSERT_EQ(read.examples.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(read.examples[i].ids, std::vector<int64_t>(16, values[i])) << "example " << i;
    EXPECT_EQ(read.examples[i].label, labels[i]) << "example " << i;
  }
  EXPECT_EQ(pathfinder_dir(root.string(), 32, "easy"), dir.string());
  // pathfinder32 promises 32x32 images; these are 4x4.
  const std::string wrong_size = error_of([&] { load_pathfinder(root.string(), 32, "curv_baseline", 0); });
  EXPECT_NE(wrong_size.find("sample_0.png is 4x4, expected 32x32"), std::string::npos) << wrong_size;
}

TEST(PathfinderLoader, MalformedMetadataNamesFileAndLine) {
  const fs::path dir = write_small_tree(fresh_dir("bad_lines"));
  const std::string metadata = (dir / "metadata" / "1.npy").string();
  write_text(metadata, "imgs/1 sample_0.png 0 0\nimgs/1 sample_1.png 1\n");
  std::string e = error_of([&] { load_pathfinder_images(dir.string(), 4); });
  EXPECT_NE(e.find(metadata + ":2: expected at least 4 fields"), std::string::npos) << e;
  write_text(metadata, "imgs/1 sample_0.png 0 0\r\n\r\nimgs/1 sample_1.png 1 2\r\n");
  e = error_of([&] { load_pathfinder_images(dir.string(), 4); });
  EXPECT_NE(e.find(metadata + ":3: label must be 0 or 1, got '2'"), std::string::npos) << e;
  write_text(metadata, "imgs/1 sample_0.png 0 1.0\n");
  EXPECT_NE(error_of([&] { load_pathfinder_images(dir.string(), 4); }).find(metadata + ":1:"), std::string::npos);
  // A corrupt image (not empty) is an error, not a skip.
  write_text(metadata, "imgs/1 sample_0.png 0 0\n");
  write_text(dir / "imgs/1/sample_0.png", "garbage");
  e = error_of([&] { load_pathfinder_images(dir.string(), 4); });
  EXPECT_NE(e.find((dir / "imgs/1/sample_0.png").string() + " is not a PNG"), std::string::npos) << e;
  EXPECT_NE(error_of([&] { load_pathfinder_images((dir / "nowhere").string(), 4); }).find("nowhere"),
            std::string::npos);
  EXPECT_NE(error_of([] { pathfinder_difficulty("curv_contour_length_7"); }).find("curv_contour_length_7"),
            std::string::npos);
}

TEST(PathfinderLoader, SplitIsSeededEightyTenTen) {
  std::vector<SequenceExample> examples(1001);
  for (size_t i = 0; i < examples.size(); ++i) examples[i] = {{static_cast<int64_t>(i)}, static_cast<int64_t>(i % 2)};
  PathfinderSplits a = split_pathfinder(examples, 7), b = split_pathfinder(examples, 7), c = split_pathfinder(examples, 8);
  EXPECT_EQ(a.train.size(), 800u);
  EXPECT_EQ(a.val.size(), 100u);
  EXPECT_EQ(a.test.size(), 101u);
  std::set<int64_t> seen;
  for (const auto* part : {&a.train, &a.val, &a.test})
    for (const SequenceExample& e : *part) {
      seen.insert(e.ids[0]);
      EXPECT_EQ(e.label, e.ids[0] % 2);
    }
  EXPECT_EQ(seen.size(), examples.size()) << "every example in exactly one split";
  auto ids = [](const std::vector<SequenceExample>& v) {
    std::vector<int64_t> out;
    for (const SequenceExample& e : v) out.push_back(e.ids[0]);
    return out;
  };
  EXPECT_EQ(ids(a.train), ids(b.train));
  EXPECT_EQ(ids(a.test), ids(b.test));
  EXPECT_NE(ids(a.train), ids(c.train));
  std::vector<int64_t> in_order(800);
  for (int64_t i = 0; i < 800; ++i) in_order[i] = i;
  EXPECT_NE(ids(a.train), in_order) << "shuffled, not the file order";
}

// ---- Generator ----

TEST(PathfinderGenerator, LabelIsTheDrawnConnectivity) {
  struct Case {
    int64_t resolution;
    const char* difficulty;
    int samples;
  };
  for (const Case& c : {Case{32, "curv_baseline", 60}, Case{32, "curv_contour_length_14", 60},
                        Case{64, "curv_contour_length_9", 30}, Case{128, "curv_contour_length_14", 10}}) {
    const PathfinderGeneratorOptions options = pathfinder_preset(c.resolution, c.difficulty);
    int positives = 0;
    for (int i = 0; i < c.samples; ++i) {
      const int64_t label = pathfinder_label(3, i);
      PathfinderSample s = generate_pathfinder_sample(options, label, 3, static_cast<uint64_t>(i) + 1);
      ASSERT_EQ(s.image.width, c.resolution);
      ASSERT_EQ(s.label, label);
      const std::vector<int> component = components(s.image);
      const int first = component_at(component, s.image, s.markers[0]);
      const int second = component_at(component, s.image, s.markers[1]);
      EXPECT_EQ(first == second, label == 1) << c.resolution << " " << c.difficulty << " sample " << i;
      std::set<int> distinct(component.begin(), component.end());
      EXPECT_GT(distinct.size(), 10u) << "distractors drawn";
      positives += static_cast<int>(label);
    }
    EXPECT_EQ(positives, c.samples / 2);
  }
}

TEST(PathfinderGenerator, DeterministicInSeedAndBalanced) {
  const PathfinderGeneratorOptions options = pathfinder_preset(32, "intermediate");
  PathfinderSample a = generate_pathfinder_sample(options, 1, 5, 9), b = generate_pathfinder_sample(options, 1, 5, 9);
  EXPECT_EQ(a.image.pixels, b.image.pixels);
  EXPECT_NE(a.image.pixels, generate_pathfinder_sample(options, 1, 6, 9).image.pixels);
  EXPECT_NE(a.image.pixels, generate_pathfinder_sample(options, 1, 5, 10).image.pixels);
  int64_t positives = 0, first_of_pair = 0;
  for (int64_t i = 0; i < 2000; ++i) {
    positives += pathfinder_label(11, i);
    if (i % 2 == 0) {
      EXPECT_NE(pathfinder_label(11, i), pathfinder_label(11, i + 1));
      first_of_pair += pathfinder_label(11, i);
    }
  }
  EXPECT_EQ(positives, 1000);
  EXPECT_GT(first_of_pair, 400) << "the order within a pair is random";
  EXPECT_LT(first_of_pair, 600);
  PathfinderGeneratorOptions broken = options;
  broken.paddle_gap = 2;  // wider than the stroke: a snake would fall apart into pieces
  EXPECT_NE(error_of([&] { generate_pathfinder_sample(broken, 0, 0, 1); }).find("paddle_gap"), std::string::npos);
}

TEST(PathfinderGenerator, WritesTheReleaseLayoutTheLoaderReads) {
  const fs::path root = fresh_dir("dataset"), root2 = fresh_dir("dataset_threads");
  const PathfinderGeneratorOptions options = pathfinder_preset(32, "hard");
  set_num_threads(1);
  write_pathfinder_dataset(root.string(), "hard", options, 40, 21, 16);
  set_num_threads(2);
  write_pathfinder_dataset(root2.string(), "curv_contour_length_14", options, 40, 21, 16);
  set_num_threads(0);
  const fs::path dir = root / "pathfinder32" / "curv_contour_length_14";
  EXPECT_TRUE(fs::is_regular_file(dir / "metadata" / "2.npy"));
  EXPECT_TRUE(fs::is_regular_file(dir / "imgs" / "2" / "sample_7.png"));
  EXPECT_FALSE(fs::exists(dir / "imgs" / "2" / "sample_8.png"));
  EXPECT_FALSE(fs::exists(root / "pathfinder32" / ".curv_contour_length_14.partial"));
  std::ifstream metadata(dir / "metadata" / "1.npy");
  std::string line;
  std::getline(metadata, line);
  EXPECT_EQ(line.rfind("imgs/1 sample_0.png 0 " + std::to_string(pathfinder_label(21, 16)) + " ", 0), 0u) << line;

  PathfinderImages read = load_pathfinder_images(dir.string(), 32);
  EXPECT_EQ(read.skipped_images, 0);
  ASSERT_EQ(read.examples.size(), 40u);
  for (int64_t i = 0; i < 40; ++i) {
    EXPECT_EQ(read.examples[i].label, pathfinder_label(21, i));
    PathfinderSample s = generate_pathfinder_sample(options, pathfinder_label(21, i), 21, static_cast<uint64_t>(i) + 1);
    EXPECT_EQ(read.examples[i].ids, std::vector<int64_t>(s.image.pixels.begin(), s.image.pixels.end()));
  }
  PathfinderImages threaded = load_pathfinder_images((root2 / "pathfinder32" / "curv_contour_length_14").string(), 32);
  for (int64_t i = 0; i < 40; ++i) EXPECT_EQ(threaded.examples[i].ids, read.examples[i].ids) << "thread count changed image " << i;

  const std::string again = error_of([&] { write_pathfinder_dataset(root.string(), "hard", options, 4, 21); });
  EXPECT_NE(again.find("already exists"), std::string::npos) << again;
}

TEST(PathfinderGenerator, Command) {
  const fs::path root = fresh_dir("command");
  const std::string command = std::string(MEGA_BINARY) + " --threads 1 pathfinder-data --out " + root.string() +
                              " --resolution 32 --difficulty curv_baseline --count 50 --seed 4 > " +
                              (root / "log.txt").string() + " 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0);
  std::ifstream log(root / "log.txt");
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("wrote 50 images"), std::string::npos) << text;
  EXPECT_NE(text.find("train      40 examples of 1024 pixels"), std::string::npos) << text;
  EXPECT_NE(text.find("0 images skipped"), std::string::npos) << text;
}

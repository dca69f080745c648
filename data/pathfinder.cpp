// The Pathfinder loader (data/pathfinder.h): metadata parsing, parallel PNG decoding and the split.
#include "data/pathfinder.h"

#include <algorithm>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "core/error.h"
#include "core/threading.h"
#include "data/draws.h"
#include "data/png.h"

namespace fs = std::filesystem;

namespace mega {

namespace {

struct ImageEntry {
  std::string path;
  int64_t label = 0;
};

// metadata/<n>.npy with n a non-negative integer, in numeric order (so 10.npy follows 9.npy).
std::vector<std::pair<int64_t, fs::path>> metadata_files(const fs::path& dir) {
  const fs::path metadata = dir / "metadata";
  MEGA_CHECK(fs::is_directory(metadata), "[pathfinder] ", metadata.string(), " is not a folder");
  std::vector<std::pair<int64_t, fs::path>> files;
  for (const fs::directory_entry& entry : fs::directory_iterator(metadata)) {
    const fs::path& p = entry.path();
    const std::string stem = p.stem().string();
    const bool numbered = !stem.empty() && std::all_of(stem.begin(), stem.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (p.extension() != ".npy" || !numbered) continue;
    files.emplace_back(std::stoll(stem), p);
  }
  MEGA_CHECK(!files.empty(), "[pathfinder] no <n>.npy files in ", metadata.string());
  std::sort(files.begin(), files.end());
  return files;
}

void read_metadata(const fs::path& dir, const fs::path& file, std::vector<ImageEntry>& entries) {
  std::ifstream in(file, std::ios::binary);
  MEGA_CHECK(in, "[pathfinder] cannot open ", file.string());
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::istringstream fields(line);
    std::vector<std::string> field;
    for (std::string f; fields >> f;) field.push_back(f);
    if (field.empty()) continue;
    MEGA_CHECK(field.size() >= 4, "[pathfinder] ", file.string(), ":", number,
               ": expected at least 4 fields (folder, file, index, label), got ", field.size());
    MEGA_CHECK(field[3] == "0" || field[3] == "1", "[pathfinder] ", file.string(), ":", number,
               ": label must be 0 or 1, got '", field[3], "'");
    entries.push_back({(dir / field[0] / field[1]).string(), field[3] == "1" ? 1 : 0});
  }
}

}  // namespace

std::string pathfinder_difficulty(const std::string& name) {
  if (name == "easy" || name == "curv_baseline") return "curv_baseline";
  if (name == "intermediate" || name == "curv_contour_length_9") return "curv_contour_length_9";
  if (name == "hard" || name == "curv_contour_length_14") return "curv_contour_length_14";
  fail("[pathfinder] unknown difficulty '", name,
       "': use curv_baseline (easy), curv_contour_length_9 (intermediate) or curv_contour_length_14 (hard)");
}

std::string pathfinder_dir(const std::string& root, int64_t resolution, const std::string& difficulty) {
  MEGA_CHECK(resolution == 32 || resolution == 64 || resolution == 128 || resolution == 256,
             "[pathfinder] resolution must be 32, 64, 128 or 256, got ", resolution);
  return (fs::path(root) / ("pathfinder" + std::to_string(resolution)) / pathfinder_difficulty(difficulty)).string();
}

PathfinderImages load_pathfinder_images(const std::string& dir, int64_t resolution) {
  std::vector<ImageEntry> entries;
  for (const auto& [number, file] : metadata_files(dir)) read_metadata(dir, file, entries);

  const int64_t n = static_cast<int64_t>(entries.size());
  std::vector<SequenceExample> examples(entries.size());
  std::vector<char> present(entries.size(), 0);
  std::mutex error_mutex;
  std::exception_ptr error;
  // Exceptions may not leave an OpenMP region: the first is kept and rethrown after it.
  parallel_for(n, 64, [&](int64_t begin, int64_t end) {
    try {
      for (int64_t i = begin; i < end; ++i) {
        std::error_code code;
        const auto size = fs::file_size(entries[i].path, code);
        if (code || size == 0) continue;  // missing or empty: skipped and counted
        GreyImage image = read_png_grey(entries[i].path);
        MEGA_CHECK(image.width == resolution && image.height == resolution, "[pathfinder] ", entries[i].path,
                   " is ", image.width, "x", image.height, ", expected ", resolution, "x", resolution);
        examples[i].ids.assign(image.pixels.begin(), image.pixels.end());
        examples[i].label = entries[i].label;
        present[i] = 1;
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  });
  if (error) std::rethrow_exception(error);

  PathfinderImages result;
  result.examples.reserve(entries.size());
  for (int64_t i = 0; i < n; ++i) {
    if (present[i])
      result.examples.push_back(std::move(examples[i]));
    else
      result.skipped_images += 1;
  }
  return result;
}

PathfinderSplits split_pathfinder(std::vector<SequenceExample> examples, uint64_t seed) {
  Draws draws(seed, 0);
  for (int64_t i = static_cast<int64_t>(examples.size()) - 1; i > 0; --i)
    std::swap(examples[i], examples[draws.below(i + 1)]);
  const size_t n = examples.size(), train = n * 8 / 10, val = n / 10;
  PathfinderSplits splits;
  auto move_range = [&](size_t begin, size_t end, std::vector<SequenceExample>& out) {
    out.assign(std::make_move_iterator(examples.begin() + begin), std::make_move_iterator(examples.begin() + end));
  };
  move_range(0, train, splits.train);
  move_range(train, train + val, splits.val);
  move_range(train + val, n, splits.test);
  return splits;
}

PathfinderSplits load_pathfinder(const std::string& root, int64_t resolution, const std::string& difficulty,
                                 uint64_t split_seed) {
  PathfinderImages images = load_pathfinder_images(pathfinder_dir(root, resolution, difficulty), resolution);
  PathfinderSplits splits = split_pathfinder(std::move(images.examples), split_seed);
  splits.skipped_images = images.skipped_images;
  return splits;
}

}  // namespace mega

// 8-bit greyscale PNG files through libpng, for the image tasks (Pathfinder). Reading converts any
// colour type or bit depth to 8-bit grey with libpng's own transforms (palette and low bit depths
// expanded, 16 bits scaled, colour weighted to luminance, alpha dropped); writing is always 8-bit grey.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mega {

struct GreyImage {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> pixels;  // row-major, height * width
  uint8_t at(int64_t x, int64_t y) const { return pixels[static_cast<size_t>(y * width + x)]; }
};

// Throws mega::Error naming the file for a missing, truncated, corrupt or non-PNG file.
GreyImage read_png_grey(const std::string& path);

// Writes an 8-bit grey PNG through a temporary file renamed into place, so a crash never leaves a
// partial image under `path`.
void write_png_grey(const std::string& path, const GreyImage& image);

}  // namespace mega

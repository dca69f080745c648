// libpng reports errors by longjmp from its error callback. Unwinding C++ frames that way is undefined,
// so each libpng session runs in one function whose only live objects between setjmp and the jump are
// trivially destructible (raw pointers, a FILE*, plain buffers owned by the caller); the message is
// copied out and turned into a C++ exception only after libpng's state is destroyed.
#include "data/png.h"

#include <png.h>

#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace mega {

namespace {

// The largest side accepted: far above any task's images, and small enough that width * height bytes
// cannot overflow or exhaust memory on a corrupt header.
constexpr uint32_t kMaxSide = 1u << 15;

struct PngErrorState {
  std::jmp_buf jump;
  char message[256] = {};
};

void on_png_error(png_structp png, png_const_charp message) {
  auto* state = static_cast<PngErrorState*>(png_get_error_ptr(png));
  std::snprintf(state->message, sizeof state->message, "%s", message);
  std::longjmp(state->jump, 1);
}

void on_png_warning(png_structp, png_const_charp) {}  // e.g. a bad CRC in an ancillary chunk: harmless

struct DecodeTarget {
  uint32_t width = 0, height = 0;
  std::vector<uint8_t>* pixels = nullptr;
  std::vector<png_bytep>* rows = nullptr;
};

// Returns false with state.message set on a libpng error. The vectors are resized here but owned by the
// caller, so a longjmp skips no destructor.
bool decode(std::FILE* file, PngErrorState& state, DecodeTarget& target) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &state, on_png_error, on_png_warning);
  if (!png) {
    std::snprintf(state.message, sizeof state.message, "out of memory");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    std::snprintf(state.message, sizeof state.message, "out of memory");
    return false;
  }
  if (setjmp(state.jump)) {  // libpng failed: on_png_error stored the message
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_init_io(png, file);
  png_read_info(png, info);
  const png_byte colour = png_get_color_type(png, info);
  const png_byte depth = png_get_bit_depth(png, info);
  if (colour == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (colour == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (depth == 16) png_set_scale_16(png);
  if (colour & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
  if (colour == PNG_COLOR_TYPE_PALETTE || (colour & PNG_COLOR_MASK_COLOR))
    png_set_rgb_to_gray_fixed(png, 1, -1, -1);  // ITU-R 709 luminance weights, libpng's defaults
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  target.width = png_get_image_width(png, info);
  target.height = png_get_image_height(png, info);
  if (target.width == 0 || target.height == 0 || target.width > kMaxSide || target.height > kMaxSide ||
      png_get_rowbytes(png, info) != target.width || png_get_channels(png, info) != 1) {
    std::snprintf(state.message, sizeof state.message, "unsupported image of %ux%u after conversion to grey",
                  target.width, target.height);
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  target.pixels->resize(static_cast<size_t>(target.width) * target.height);
  target.rows->resize(target.height);
  for (uint32_t y = 0; y < target.height; ++y) (*target.rows)[y] = target.pixels->data() + size_t{y} * target.width;
  png_read_image(png, target.rows->data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

bool encode(std::FILE* file, PngErrorState& state, const GreyImage& image, std::vector<png_bytep>& rows) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &state, on_png_error, on_png_warning);
  if (!png) {
    std::snprintf(state.message, sizeof state.message, "out of memory");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_write_struct(&png, nullptr);
    std::snprintf(state.message, sizeof state.message, "out of memory");
    return false;
  }
  if (setjmp(state.jump)) {  // libpng failed: on_png_error stored the message
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_init_io(png, file);
  png_set_IHDR(png, info, static_cast<png_uint_32>(image.width), static_cast<png_uint_32>(image.height), 8,
               PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

}  // namespace

GreyImage read_png_grey(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  MEGA_CHECK(file, "[png] cannot open ", path, ": ", std::strerror(errno));
  unsigned char signature[8] = {};
  const size_t got = std::fread(signature, 1, sizeof signature, file);
  if (got != sizeof signature || png_sig_cmp(signature, 0, sizeof signature) != 0) {
    std::fclose(file);
    fail("[png] ", path, " is not a PNG file", got == 0 ? " (empty)" : "");
  }
  std::rewind(file);
  PngErrorState state;
  std::vector<uint8_t> pixels;
  std::vector<png_bytep> rows;
  DecodeTarget target{0, 0, &pixels, &rows};
  const bool ok = decode(file, state, target);
  std::fclose(file);
  MEGA_CHECK(ok, "[png] cannot read ", path, ": ", state.message);
  GreyImage image;
  image.width = target.width;
  image.height = target.height;
  image.pixels = std::move(pixels);
  return image;
}

void write_png_grey(const std::string& path, const GreyImage& image) {
  MEGA_CHECK(image.width > 0 && image.height > 0 && image.width <= kMaxSide && image.height <= kMaxSide &&
                 image.pixels.size() == static_cast<size_t>(image.width * image.height),
             "[png] cannot write ", path, ": image of ", image.width, "x", image.height, " with ",
             image.pixels.size(), " pixels");
  const std::string temporary = path + ".tmp";
  std::FILE* file = std::fopen(temporary.c_str(), "wb");
  MEGA_CHECK(file, "[png] cannot create ", temporary, ": ", std::strerror(errno));
  std::vector<png_bytep> rows(static_cast<size_t>(image.height));
  for (int64_t y = 0; y < image.height; ++y)
    rows[y] = const_cast<png_bytep>(image.pixels.data() + y * image.width);  // libpng's API is not const
  PngErrorState state;
  const bool ok = encode(file, state, image, rows);
  const bool closed = std::fclose(file) == 0;
  if (!ok || !closed) {
    std::remove(temporary.c_str());
    fail("[png] cannot write ", path, ": ", ok ? "write error" : state.message);
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) {
    std::remove(temporary.c_str());
    fail("[png] cannot rename ", temporary, " to ", path, ": ", error.message());
  }
}

}  // namespace mega

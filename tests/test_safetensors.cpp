// safetensors: bit-exact round trips of every dtype, the HF fixtures, refusal of corrupt files (each
// message must name the file and the tensor), and the atomic save.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>

#include "core/safetensors.h"

using namespace mega;
namespace fs = std::filesystem;

namespace {

// A fresh, empty folder per test under gtest's temp dir.
std::string temp_dir(const std::string& name) {
  fs::path dir = fs::path(::testing::TempDir()) / ("mega_safetensors_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

// A tensor of `dtype` whose bytes are an arbitrary pattern (NaN payloads, subnormals and all): the
// round trip must preserve bytes, not values.
Tensor patterned(const Shape& shape, DType dtype, unsigned seed) {
  Tensor t = Tensor::empty(shape, dtype);
  auto* bytes = static_cast<unsigned char*>(t.raw());
  for (size_t i = 0; i < t.nbytes(); ++i) bytes[i] = static_cast<unsigned char>(seed + 37 * i + (i >> 3));
  if (dtype == DType::Bool) {
    for (size_t i = 0; i < t.nbytes(); ++i) bytes[i] &= 1;
  }
  return t;
}

void expect_same_bytes(const Tensor& expected, const Tensor& actual, const std::string& name) {
  ASSERT_TRUE(actual.defined()) << name;
  EXPECT_EQ(actual.dtype(), expected.dtype()) << name;
  EXPECT_EQ(actual.shape(), expected.shape()) << name;
  ASSERT_EQ(actual.nbytes(), expected.nbytes()) << name;
  EXPECT_EQ(std::memcmp(actual.raw(), expected.raw(), expected.nbytes()), 0) << name;
  EXPECT_EQ(reinterpret_cast<uintptr_t>(actual.raw()) % dtype_size(actual.dtype()), 0u) << name;
}

// Writes a file from a header and a data section exactly as given: the 8-byte length is the header's
// own length unless `length` overrides it.
std::string write_raw(const std::string& path, const std::string& header, const std::string& data,
                      std::optional<uint64_t> length = std::nullopt) {
  uint64_t n = length.value_or(header.size());
  std::ofstream out(path, std::ios::binary);
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>(n >> (8 * i)));
  out << header << data;
  return path;
}

void expect_refused(const std::string& path, const std::vector<std::string>& needles) {
  try {
    load_safetensors(path);
    ADD_FAILURE() << path << " was loaded, expected a refusal";
  } catch (const Error& e) {
    std::string message = e.what();
    EXPECT_NE(message.find(path), std::string::npos) << "message does not name the file: " << message;
    for (const std::string& needle : needles) {
      EXPECT_NE(message.find(needle), std::string::npos)
          << "message lacks \"" << needle << "\": " << message;
    }
  }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

const std::string kFixtures = std::string(MEGA_FIXTURES_DIR);

}  // namespace

TEST(Safetensors, RoundTripEveryDtypeBitExact) {
  std::map<std::string, Tensor> tensors = {
      {"f32", patterned({3, 5}, DType::F32, 1)},
      {"f64", patterned({7}, DType::F64, 2)},
      {"f16", patterned({2, 3, 3}, DType::F16, 3)},
      {"bf16", patterned({5}, DType::BF16, 4)},
      {"i64", patterned({4, 1}, DType::I64, 5)},
      {"i32", patterned({3}, DType::I32, 6)},
      {"bool", patterned({9}, DType::Bool, 7)},
      {"scalar", Tensor::scalar(-0.0)},
      {"empty", Tensor::empty({0, 4}, DType::I64)},
      {"special", Tensor::from(std::vector<float>{std::numeric_limits<float>::quiet_NaN(),
                                                  -std::numeric_limits<float>::infinity(), 1e-45f, -0.0f},
                               {4})},
  };
  std::map<std::string, std::string> metadata = {{"step", "1200"}, {"note", "h\u00e9llo \"quoted\""}};
  std::string path = temp_dir("round_trip") + "/all.safetensors";
  save_safetensors(path, tensors, metadata);

  SafetensorsFile file = load_safetensors(path);
  EXPECT_EQ(file.metadata, metadata);
  ASSERT_EQ(file.tensors.size(), tensors.size());
  for (const auto& [name, t] : tensors) expect_same_bytes(t, file.tensors.at(name), name);
  EXPECT_EQ(file.tensors.at("scalar").dim(), 0);
  EXPECT_EQ(file.tensors.at("empty").numel(), 0);
}

TEST(Safetensors, LayoutIsPaddedSortedAndDefaultsToFormatPt) {
  std::string path = temp_dir("layout") + "/x.safetensors";
  save_safetensors(path, {{"b", patterned({3}, DType::BF16, 0)},
                          {"a", patterned({1}, DType::Bool, 0)},
                          {"z", patterned({2}, DType::F64, 0)},
                          {"c", patterned({1}, DType::F32, 0)}});
  std::string bytes = read_file(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
  std::string header = bytes.substr(8, n);
  // Decreasing element size, then name: z (8) at 0, c (4) at 16, b (2) at 20, a (1) at 26.
  EXPECT_NE(header.find("\"z\":{\"data_offsets\":[0,16]"), std::string::npos) << header;
  EXPECT_NE(header.find("\"c\":{\"data_offsets\":[16,20]"), std::string::npos) << header;
  EXPECT_NE(header.find("\"b\":{\"data_offsets\":[20,26]"), std::string::npos) << header;
  EXPECT_NE(header.find("\"a\":{\"data_offsets\":[26,27]"), std::string::npos) << header;
  EXPECT_EQ(bytes.size(), 8 + n + 27);
  EXPECT_EQ(load_safetensors(path).metadata, (std::map<std::string, std::string>{{"format", "pt"}}));
}

TEST(Safetensors, MappedViewsAndCopyOnWrite) {
  std::string path = temp_dir("mapped") + "/x.safetensors";
  save_safetensors(path, {{"w", Tensor::from(std::vector<float>{1, 2, 3}, {3})}});
  std::string before = read_file(path);
  {
    SafetensorsFile file = load_safetensors(path);
    Tensor w = file.tensors.at("w");
    file = {};  // the tensor alone keeps the mapping alive
    EXPECT_EQ(w.at(2), 3.0);
    w.data<float>()[0] = 42;  // private page: the file is untouched
    EXPECT_EQ(w.at(0), 42.0);
  }
  EXPECT_EQ(read_file(path), before);
}

TEST(Safetensors, MisalignedTensorsAreCopiedIntoAlignedStorage) {
  // Another writer may place a F32 at an odd offset: one BOOL byte first, then three floats.
  float values[3] = {1.5f, -2.0f, 3.25f};
  std::string data(1, '\1');
  data.append(reinterpret_cast<const char*>(values), sizeof values);
  std::string header =
      R"({"flag":{"dtype":"BOOL","shape":[1],"data_offsets":[0,1]},)"
      R"("w":{"dtype":"F32","shape":[3],"data_offsets":[1,13]}})";
  header.append((8 - header.size() % 8) % 8, ' ');  // data starts 8-aligned, so "w" sits at 1 mod 8
  std::string path = write_raw(temp_dir("misaligned") + "/x.safetensors", header, data);
  SafetensorsFile file = load_safetensors(path);
  const Tensor& w = file.tensors.at("w");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(w.raw()) % 4, 0u);
  EXPECT_EQ(w.to_vector(), (std::vector<double>{1.5, -2.0, 3.25}));
  EXPECT_EQ(file.tensors.at("flag").item(), 1.0);
  EXPECT_TRUE(file.metadata.empty());
}

TEST(Safetensors, LoadsHfFixture) {
  std::string dir = kFixtures + "/pub01_model_scalenorm_softmax_rotary";
  ASSERT_TRUE(fs::exists(dir)) << "no fixtures at " << dir << " (they ship in tests/fixtures)";
  SafetensorsFile model = load_safetensors(dir + "/model.safetensors");
  const Tensor& damping = model.tensors.at("layers.0.mega_layer.ema_gate.damping_factor");
  EXPECT_EQ(damping.dtype(), DType::F32);
  EXPECT_EQ(damping.shape(), (Shape{32, 4, 1}));
  EXPECT_EQ(model.tensors.at("embedding_layer.word_embeddings.weight").shape(), (Shape{64, 16}));
  EXPECT_EQ(model.metadata.at("format"), "pt");

  SafetensorsFile inputs = load_safetensors(dir + "/inputs.safetensors");
  const Tensor& ids = inputs.tensors.at("input_ids");
  EXPECT_EQ(ids.dtype(), DType::I64);
  EXPECT_EQ(ids.shape(), (Shape{2, 16}));
  for (int64_t i = 0; i < ids.numel(); ++i) {
    EXPECT_GE(ids.at(i), 0);
    EXPECT_LT(ids.at(i), 64);  // the vocabulary of the word embeddings above
  }
}

TEST(Safetensors, LoadsEveryHfFixtureFile) {
  ASSERT_TRUE(fs::exists(kFixtures)) << "no fixtures at " << kFixtures << " (they ship in tests/fixtures)";
  int files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(kFixtures)) {
    if (entry.path().extension() != ".safetensors") continue;
    SCOPED_TRACE(entry.path().string());
    SafetensorsFile file = load_safetensors(entry.path().string());
    EXPECT_FALSE(file.tensors.empty());
    ++files;
  }
  EXPECT_GT(files, 0);
}

TEST(Safetensors, RefusesCorruptFiles) {
  std::string dir = temp_dir("corrupt");
  auto at = [&](const std::string& name) { return dir + "/" + name + ".safetensors"; };
  const std::string eight(8, '\0');
  auto entry = [](const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
    return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape +
           ",\"data_offsets\":" + offsets + "}";
  };

  {
    std::ofstream out(at("short"), std::ios::binary);
    out << "abc";
  }
  expect_refused(at("short"), {"shorter than the 8-byte header length"});
  expect_refused(write_raw(at("past_eof"), "{}", "", 1000), {"past the end of the file"});
  expect_refused(write_raw(at("absurd"), "{}", "", uint64_t{1} << 40), {"absurd"});
  expect_refused(write_raw(at("bad_json"), "{\"w\": {", ""), {"not valid JSON"});
  expect_refused(write_raw(at("not_object"), "[1, 2]", ""), {"not an object"});
  expect_refused(write_raw(at("unknown_dtype"), "{" + entry("w", "Q7", "[2]", "[0,8]") + "}", eight),
                 {"'w'", "unsupported dtype 'Q7'"});
  expect_refused(write_raw(at("past_end"), "{" + entry("w", "F32", "[2]", "[0,8]") + "}", "1234"),
                 {"'w'", "past the end of the data section"});
  expect_refused(write_raw(at("byte_count"), "{" + entry("w", "F32", "[3]", "[0,8]") + "}", eight),
                 {"'w'", "hold 8 bytes", "needs 3 x 4"});
  expect_refused(write_raw(at("overlap"),
                           "{" + entry("a", "F32", "[2]", "[0,8]") + "," +
                               entry("b", "F32", "[1]", "[4,8]") + "}",
                           eight),
                 {"'b'", "overlap tensor 'a'"});
  expect_refused(write_raw(at("hole"), "{" + entry("w", "F32", "[1]", "[4,8]") + "}", eight),
                 {"'w'", "unused"});
  expect_refused(write_raw(at("trailing"), "{" + entry("w", "F32", "[1]", "[0,4]") + "}", eight),
                 {"cover only 4"});
  expect_refused(write_raw(at("missing_field"), R"({"w":{"dtype":"F32","shape":[2]}})", eight),
                 {"'w'", "missing \"data_offsets\""});
  expect_refused(write_raw(at("wrong_type"), "{" + entry("w", "F32", "\"2\"", "[0,8]") + "}", eight),
                 {"'w'", "\"shape\" is a JSON string"});
  expect_refused(write_raw(at("float_dim"), "{" + entry("w", "F32", "[2.0]", "[0,8]") + "}", eight),
                 {"'w'", "not an integer"});
  expect_refused(write_raw(at("negative_dim"), "{" + entry("w", "F32", "[-2]", "[0,8]") + "}", eight),
                 {"'w'", "negative dimension -2"});
  expect_refused(write_raw(at("reversed"), "{" + entry("w", "F32", "[0]", "[8,0]") + "}", eight),
                 {"'w'", "end before they begin"});
  expect_refused(write_raw(at("three_offsets"), "{" + entry("w", "F32", "[2]", "[0,8,8]") + "}", eight),
                 {"'w'", "not [begin, end]"});
  expect_refused(write_raw(at("duplicate"),
                           "{" + entry("w", "F32", "[1]", "[0,4]") + "," +
                               entry("w", "F32", "[1]", "[4,8]") + "}",
                           eight),
                 {"'w' twice"});
  expect_refused(write_raw(at("duplicate_field"),
                           R"({"w":{"dtype":"F32","dtype":"F64","shape":[1],"data_offsets":[0,4]}})",
                           std::string(4, '\0')),
                 {"tensor 'w'", "'dtype' twice"});
  expect_refused(write_raw(at("bad_metadata"), R"({"__metadata__":{"step":3}})", ""),
                 {"__metadata__ key 'step'", "not a string"});
  expect_refused(dir + "/does_not_exist.safetensors", {"cannot open", std::strerror(ENOENT)});
}

TEST(Safetensors, SaveIsAtomic) {
  std::string dir = temp_dir("atomic");
  std::string path = dir + "/ckpt.safetensors";
  Tensor old_weights = Tensor::from(std::vector<float>{1, 2, 3}, {3});
  Tensor new_weights = Tensor::from(std::vector<double>{4, 5}, {2});
  save_safetensors(path, {{"w", old_weights}});

  // A reader of the old file keeps its mapping valid while the new file replaces it.
  SafetensorsFile old_file = load_safetensors(path);
  save_safetensors(path, {{"w", new_weights}});
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  expect_same_bytes(old_weights, old_file.tensors.at("w"), "old mapping");
  expect_same_bytes(new_weights, load_safetensors(path).tensors.at("w"), "new file");

  // A save that fails part-way (here: the temporary cannot be created) leaves the old file whole.
  std::string before = read_file(path);
  fs::create_directory(path + ".tmp");
  try {
    save_safetensors(path, {{"w", old_weights}});
    ADD_FAILURE() << "save over a blocked .tmp succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_file(path), before);
  fs::remove(path + ".tmp");

  EXPECT_THROW(save_safetensors(dir + "/no/such/dir/x.safetensors", {{"w", old_weights}}), Error);
  EXPECT_THROW(save_safetensors(path, {{"__metadata__", old_weights}}), Error);
}

// JSON file reading with errors naming the file and key (see json_file.h).
#include "core/json_file.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace mega {

nlohmann::json read_json_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  MEGA_CHECK(fs::exists(status), path, ": does not exist");
  MEGA_CHECK(!fs::is_directory(status), path, ": is a folder, not a JSON file");
  MEGA_CHECK(fs::is_regular_file(status), path, ": is not a regular file (a device, pipe or socket)");
  const uintmax_t size = fs::file_size(path, error);
  MEGA_CHECK(!error, path, ": cannot be read: ", error.message());
  MEGA_CHECK(size <= kMaxJsonFileBytes, path, ": is ", size, " bytes; a JSON file may be at most ",
             kMaxJsonFileBytes, " bytes (16 MiB)");
  std::ifstream in(path, std::ios::binary);
  MEGA_CHECK(in, path, ": cannot be opened for reading");
  std::ostringstream text;
  text << in.rdbuf();
  MEGA_CHECK(in.good() || in.eof(), path, ": read failed");
  try {
    return nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::parse_error& e) {
    std::string what = e.what();
    if (what.starts_with("[json.exception.")) what = what.substr(what.find("] ") + 2);
    fail(path, ": not valid JSON: ", what);
  }
}

namespace {

const nlohmann::json& member(const nlohmann::json& object, const std::string& key, const std::string& where) {
  MEGA_CHECK(object.is_object(), where, ": expected a JSON object, got ", object.type_name());
  auto it = object.find(key);
  MEGA_CHECK(it != object.end(), where, ": '", key, "' is missing");
  return *it;
}

}  // namespace

int64_t json_integer(const nlohmann::json& object, const std::string& key, const std::string& where, int64_t min,
                     int64_t max) {
  const nlohmann::json& value = member(object, key, where);
  MEGA_CHECK(value.is_number(), where, ": '", key, "' must be an integer in ", min, "..", max, ", got ",
             value.dump());
  // Compared as a double first so 1e30 is refused before any conversion (which would be undefined).
  const double v = value.get<double>();
  MEGA_CHECK(std::floor(v) == v, where, ": '", key, "' must be an integer, got ", value.dump());
  MEGA_CHECK(v >= static_cast<double>(min) && v <= static_cast<double>(max), where, ": '", key, "' is ",
             value.dump(), ", outside ", min, "..", max);
  return value.is_number_float() ? static_cast<int64_t>(v) : value.get<int64_t>();
}

double json_number(const nlohmann::json& object, const std::string& key, const std::string& where, double min,
                   double max) {
  const nlohmann::json& value = member(object, key, where);
  MEGA_CHECK(value.is_number(), where, ": '", key, "' must be a number in [", min, ", ", max, "], got ",
             value.dump());
  const double v = value.get<double>();
  MEGA_CHECK(v >= min && v <= max, where, ": '", key, "' is ", value.dump(), ", outside [", min, ", ", max, "]");
  return v;
}

std::string json_string(const nlohmann::json& object, const std::string& key, const std::string& where) {
  const nlohmann::json& value = member(object, key, where);
  MEGA_CHECK(value.is_string(), where, ": '", key, "' must be a string, got ", value.dump());
  return value.get<std::string>();
}

std::string json_key_at_fault(const nlohmann::json& object,
                              const std::function<void(const nlohmann::json&)>& parse) {
  if (!object.is_object()) return "";
  for (const auto& [key, value] : object.items()) {
    try {
      parse(nlohmann::json{{key, value}});
    } catch (const nlohmann::json::exception&) {
      return key;
    } catch (const std::exception&) {  // a check on the lone value (or on its missing partners): not this key
    }
  }
  return "";
}

}  // namespace mega

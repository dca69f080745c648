// Reading JSON files (config.json, trainer_state.json, ...) with errors that name the file and the key.
// nlohmann's own exceptions say neither ("type must be string, but is number"), so every read of a file
// goes through read_json_file, and values are taken with the typed getters below or parsed through
// parse_json_file / parse_json_naming_key, which find the key at fault when a parser lets a JSON type
// error escape.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"

namespace mega {

// A JSON file of a few kilobytes; anything past this is not one of ours (a data file named by mistake).
constexpr uintmax_t kMaxJsonFileBytes = uintmax_t{16} << 20;

// Parses `path`, which must be a regular file of at most kMaxJsonFileBytes (not a folder, a device or
// a pipe, which would fail obscurely or be read forever). Errors name the file and, for malformed
// JSON, the line and column.
nlohmann::json read_json_file(const std::string& path);

// object[key] of the given kind, or an error "<where>: '<key>': ..." saying what was expected. An
// integer may be written as 1e9 (a JSON number with an integral value); it must lie in [min, max].
int64_t json_integer(const nlohmann::json& object, const std::string& key, const std::string& where, int64_t min,
                     int64_t max);
double json_number(const nlohmann::json& object, const std::string& key, const std::string& where, double min,
                   double max);
std::string json_string(const nlohmann::json& object, const std::string& key, const std::string& where);

// The top-level key of `object` whose value alone (in an object of that one key) makes `parse` throw a
// nlohmann::json::exception; "" when none does. Only run on the error path.
std::string json_key_at_fault(const nlohmann::json& object, const std::function<void(const nlohmann::json&)>& parse);

// parse(json), with a JSON type error (which names no key) turned into a mega::Error
// "'<key>': <what> (value ...)"; mega::Errors pass through.
template <class Parse>
auto parse_json_naming_key(const nlohmann::json& json, Parse&& parse) -> decltype(parse(json)) {
  try {
    return parse(json);
  } catch (const nlohmann::json::exception& e) {
    std::string what = e.what();
    if (what.starts_with("[json.exception.")) what = what.substr(what.find("] ") + 2);
    const std::string key = json_key_at_fault(json, [&](const nlohmann::json& one) { parse(one); });
    if (key.empty()) fail(what);
    fail("'", key, "': ", what, " (value ", json.at(key).dump(), ")");
  }
}

// parse_json_naming_key, with `path` named in any error: "<path>: <message>".
template <class Parse>
auto parse_json_file(const std::string& path, const nlohmann::json& json, Parse&& parse) -> decltype(parse(json)) {
  try {
    return parse_json_naming_key(json, parse);
  } catch (const Error& e) {
    fail(path, ": ", e.what());
  }
}

}  // namespace mega

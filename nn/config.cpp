// MegaConfig from and to HF's config.json, and the checks that keep a bad configuration from building a
// model that would fail (or silently differ from HF) later.
#include "nn/config.h"

#include <cstdio>
#include <limits>

#include "core/atomic_file.h"
#include "core/error.h"
#include "nn/config_fields.h"
#include "core/json_file.h"

namespace mega {

namespace {

using nlohmann::json;

// The keys config.cpp reads by hand (not scalars, so not in the field table).
const char* const kCompositeKeys[] = {"id2label", "label2id", "num_labels", "architectures"};

bool is_known_key(const std::string& key) {
  for (const ConfigField& field : mega_config_fields())
    if (key == field.name) return true;
  for (const char* composite : kCompositeKeys)
    if (key == composite) return true;
  return false;
}

// A config.json value as the field's kind expects it. Integers must be written as integers: 1e9 and
// 3.5 are refused for an Int field (nlohmann keeps the distinction: 1e9 parses as a float).
FieldValue field_value_of(const ConfigField& field, const json& value) {
  auto wrong = [&](const char* expected) -> FieldValue {
    fail("[config] '", field.name, "': expected ", expected, ", got ", value.dump());
  };
  if (value.is_null()) return std::monostate{};
  switch (field.kind()) {
    case FieldKind::Bool:
      if (!value.is_boolean()) return wrong("true or false");
      return value.get<bool>();
    case FieldKind::Int:
      if (!value.is_number_integer()) return wrong("an integer");
      if (value.is_number_unsigned() && value.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
        fail("[config] '", field.name, "': ", value.dump(), " is out of range ", field.range_text());
      return value.get<int64_t>();
    case FieldKind::Float:
      if (!value.is_number()) return wrong("a number");
      return value.get<double>();
    case FieldKind::Choice:
      if (!value.is_string()) return wrong("a string");
      return value.get<std::string>();
  }
  fail("unreachable");
}

json json_of(const FieldValue& value) {
  return std::visit(
      [](const auto& v) -> json {
        if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::monostate>) return nullptr;
        else return v;
      },
      value);
}

// An integer a composite key needs (num_labels), read like an Int field.
int64_t read_count(const json& j, const char* key) {
  const json& value = j.at(key);
  MEGA_CHECK(value.is_number_integer(), "[config] '", key, "': expected an integer, got ", value.dump());
  return value.get<int64_t>();
}

}  // namespace

void MegaConfig::set_num_labels(int64_t n) {
  // The classifier's output width: bounded like a vocabulary, before the label map is filled.
  MEGA_CHECK(n >= 1 && n <= 10'000'000, "[config] num_labels must be in [1, 10000000], got ", n);
  id2label.clear();
  for (int64_t i = 0; i < n; ++i) id2label[std::to_string(i)] = "LABEL_" + std::to_string(i);
}

void MegaConfig::validate() const {
  for (const ConfigField& field : mega_config_fields()) field.check(*this);
  MEGA_CHECK(!(relative_positional_bias == RelativePositionalBias::Rotary && shared_representation_size % 2 != 0),
             "[config] the rotary relative bias rotates halves of the shared representation, so "
             "shared_representation_size must be even, got ",
             shared_representation_size);
  MEGA_CHECK(!(is_decoder && bidirectional),
             "[config] a decoder (is_decoder=true) cannot use a bidirectional EMA: it would read future "
             "tokens; set bidirectional=false");
  MEGA_CHECK(!add_cross_attention || is_decoder,
             "[config] add_cross_attention needs is_decoder=true (cross-attention follows a decoder's "
             "self-attention)");
  MEGA_CHECK(!use_chunking || chunk_size > 0, "[config] use_chunking needs a positive chunk_size, got ",
             chunk_size);
  MEGA_CHECK(!(relative_positional_bias == RelativePositionalBias::Simple && chunk_size > max_positions),
             "[config] the simple relative bias holds 2*max_positions-1 = ", 2 * max_positions - 1,
             " weights but chunk_size (", chunk_size, ") needs 2*chunk_size-1; raise max_positions");
  MEGA_CHECK(!id2label.empty(), "[config] id2label is empty (num_labels must be at least 1)");
}

MegaConfig MegaConfig::from_json(const json& j) {
  MEGA_CHECK(j.is_object(), "[config] expected a JSON object");
  MegaConfig c;
  for (const ConfigField& field : mega_config_fields())
    if (auto it = j.find(field.name); it != j.end()) field.set(c, field_value_of(field, *it));
  if (auto it = j.find("id2label"); it != j.end() && !it->is_null()) {
    MEGA_CHECK(it->is_object(), "[config] 'id2label' must be an object {\"0\": \"name\", ...}");
    c.id2label.clear();
    for (auto& [k, v] : it->items()) {
      MEGA_CHECK(v.is_string(), "[config] id2label[", k, "] must be a string");
      c.id2label[k] = v.get<std::string>();
    }
    if (j.contains("num_labels")) {
      int64_t num_labels = read_count(j, "num_labels");
      MEGA_CHECK(num_labels == c.num_labels(), "[config] num_labels (", num_labels,
                 ") disagrees with id2label (", c.num_labels(), " entries)");
    }
  } else if (j.contains("num_labels")) {
    c.set_num_labels(read_count(j, "num_labels"));
  }
  if (auto it = j.find("architectures"); it != j.end() && !it->is_null()) {
    MEGA_CHECK(it->is_array(), "[config] 'architectures' must be a list of class names");
    for (const json& a : *it) {
      MEGA_CHECK(a.is_string(), "[config] 'architectures' must be a list of class names, got ", a.dump());
      c.architectures.push_back(a.get<std::string>());
    }
  }
  for (auto& [k, v] : j.items())
    if (!is_known_key(k)) c.extra[k] = v;
  c.validate();
  return c;
}

json MegaConfig::to_json() const {
  json j = extra;
  for (const ConfigField& field : mega_config_fields()) j[field.name] = json_of(field.get(*this));
  j["id2label"] = id2label;
  json label2id = json::object();
  for (const auto& [id, label] : id2label) label2id[label] = std::stoll(id);
  j["label2id"] = label2id;
  j["num_labels"] = num_labels();
  j["architectures"] = architectures;
  if (!j.contains("model_type")) j["model_type"] = "mega";
  return j;
}

MegaConfig MegaConfig::load(const std::string& path) {
  return parse_json_file(path, read_json_file(path), [](const json& j) { return from_json(j); });
}

void MegaConfig::save(const std::string& path) const {
  write_file_atomically(path, to_json().dump(2) + "\n");
}

}  // namespace mega

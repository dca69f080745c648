// One description per scalar MegaConfig field: its config.json key (HF's name), the member it lives in,
// the range a value must lie in, a help line, and whether recipes offer it. config.json read/write,
// MegaConfig::validate, the recipe schema's model section and the recipe -> MegaConfig builder are all
// loops over this table, so a field added here is read, written, checked and offered everywhere.
//
// Why a table of pointers-to-member rather than an X-macro: each row stays ordinary C++ that grep and an
// IDE can follow (&MegaConfig::hidden_size), the type of each field comes from the member itself, and
// the generic code is a handful of std::visit calls in config_fields.cpp, not a macro body.
//
// The default of a field is the struct's initializer (MegaConfig{}), written once, in config.h.
// id2label/label2id/num_labels and architectures are not scalars and are read by hand in config.cpp.
#pragma once
#include <limits>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "nn/config.h"

namespace mega {

// The kinds a field's value takes in config.json and recipes. Choice: one of an enum's names.
enum class FieldKind { Bool, Int, Float, Choice };

// A field's value outside the struct: null (only for nullable fields), or its kind's scalar; a Choice
// is its name.
using FieldValue = std::variant<std::monostate, bool, int64_t, double, std::string>;

// Every scalar member of MegaConfig, by type.
using FieldMember =
    std::variant<bool MegaConfig::*, int64_t MegaConfig::*, std::optional<int64_t> MegaConfig::*,
                 double MegaConfig::*, std::optional<double> MegaConfig::*, Activation MegaConfig::*,
                 AttentionFunction MegaConfig::*, NormalizationType MegaConfig::*,
                 RelativePositionalBias MegaConfig::*, std::optional<ProblemType> MegaConfig::*>;

// Inclusive [min, max], or [min, max) when max_open. Only Int and Float fields use it.
struct FieldRange {
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool max_open = false;
};

// How recipes (recipes/recipe.cpp) use a field.
enum class RecipeUse {
  Key,          // a recipe key "model.<name>", defaulting to the field's default
  TaskDefault,  // a recipe key defaulting to null: the trainer then takes the value from the task
  NotInRecipe,  // the recipe trainer's classifier never reads it; config.json only
};

struct ConfigField {
  const char* name;  // the config.json key, HF's name
  FieldMember member;
  FieldRange range;  // Int, Float
  const char* help;
  RecipeUse recipe = RecipeUse::Key;

  FieldKind kind() const;
  bool nullable() const;                 // an std::optional member: null is a value
  std::vector<std::string> choices() const;  // Choice: the enum's names, aliases included; else empty
  std::string range_text() const;        // "[1, 1024]", "[0, 1)"
  FieldValue default_value() const;      // the value in MegaConfig{}

  FieldValue get(const MegaConfig& config) const;
  // Stores `value`, checking its kind, its range or its name; the error names the key. A Float field
  // takes an integer too; an Int field takes no double, integral or not.
  void set(MegaConfig& config, const FieldValue& value) const;
  // The field's current value is in its range (for configs built in code).
  void check(const MegaConfig& config) const;
};

// The table, in HF's configuration_mega.py order (the order of a recipe's model section).
std::span<const ConfigField> mega_config_fields();

// "true or false", "an integer", "a number", "one of a, b or c".
std::string field_kind_text(const ConfigField& field);

}  // namespace mega

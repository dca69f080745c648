// The MegaConfig field table: every field reaches the recipe schema and round-trips through
// config.json; enum names come from one table (aliases and the once-drifted values included); sizes
// are bounded and wrong types refused, with errors naming the file and the key.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "nn/config_fields.h"
#include "recipes/recipe.h"
#include "recipes/trainer.h"
#include "tests/gradcheck_util.h"

using namespace mega;
using mega::testing::error_of;
namespace fs = std::filesystem;

namespace {

std::string source_dir() { return fs::path(__FILE__).parent_path().parent_path().string(); }
std::string small_recipe() { return source_dir() + "/recipes/configs/lra/listops_small.yaml"; }

// A temp folder removed with the test.
struct TempDir {
  fs::path path = fs::temp_directory_path() / ("mega_test_config_fields_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
  std::string write(const std::string& name, const std::string& text) const {
    std::string file = (path / name).string();
    std::ofstream(file) << text;
    return file;
  }
};

// A valid value for `field` other than its default, chosen from the field's own description, so a new
// field is covered without editing this test. Changing every field at once stays valid: is_decoder
// turns on as bidirectional turns off, use_chunking gets chunk_size 1, sizes stay even.
FieldValue other_value(const ConfigField& field) {
  FieldValue def = field.default_value();
  switch (field.kind()) {
    case FieldKind::Bool: return !std::get<bool>(def);
    case FieldKind::Int: {
      if (std::holds_alternative<std::monostate>(def)) return static_cast<int64_t>(field.range.min) + 1;
      int64_t v = std::get<int64_t>(def);
      return v + 2 <= field.range.max ? v + 2 : v - 2;
    }
    case FieldKind::Float:
      if (std::holds_alternative<std::monostate>(def)) return 0.25;
      return std::get<double>(def) / 2;
    case FieldKind::Choice: return field.choices().back();
  }
  return std::monostate{};
}

const KeySpec* find_key(const std::string& path) {
  for (const KeySpec& spec : recipe_schema())
    if (spec.path == path) return &spec;
  return nullptr;
}

}  // namespace

TEST(ConfigFields, EveryFieldIsInTheRecipeSchemaWithItsTypeRangeChoicesAndDefault) {
  for (const ConfigField& field : mega_config_fields()) {
    const KeySpec* spec = find_key(std::string("model.") + field.name);
    if (field.recipe == RecipeUse::NotInRecipe) {
      EXPECT_EQ(spec, nullptr) << field.name;
      continue;
    }
    ASSERT_NE(spec, nullptr) << field.name;
    const ValueType expected_type[] = {ValueType::Bool, ValueType::Int, ValueType::Float, ValueType::String};
    EXPECT_EQ(spec->type, expected_type[static_cast<int>(field.kind())]) << field.name;
    EXPECT_EQ(spec->choices, field.choices()) << field.name;
    EXPECT_EQ(spec->min, field.range.min) << field.name;
    EXPECT_EQ(spec->max, field.range.max) << field.name;
    EXPECT_EQ(spec->max_open, field.range.max_open) << field.name;
    if (field.recipe == RecipeUse::TaskDefault) {
      EXPECT_TRUE(spec->nullable && std::holds_alternative<std::monostate>(spec->default_value)) << field.name;
    } else {
      EXPECT_EQ(spec->nullable, field.nullable()) << field.name;
      FieldValue def = field.default_value();
      RecipeValue expected = std::visit([](const auto& v) -> RecipeValue { return v; }, def);
      EXPECT_TRUE(spec->default_value == expected) << field.name;
    }
  }
}

TEST(ConfigFields, EveryFieldRoundTripsThroughConfigJson) {
  MegaConfig changed;
  for (const ConfigField& field : mega_config_fields()) field.set(changed, other_value(field));
  ASSERT_EQ(error_of([&] { changed.validate(); }), "(no error)");

  TempDir dir;
  std::string path = (dir.path / "config.json").string();
  changed.save(path);
  MegaConfig loaded = MegaConfig::load(path);
  nlohmann::json written = changed.to_json();
  for (const ConfigField& field : mega_config_fields()) {
    EXPECT_TRUE(field.get(changed) != field.default_value()) << field.name << ": the test value is the default";
    EXPECT_TRUE(field.get(loaded) == field.get(changed)) << field.name;
    ASSERT_TRUE(written.contains(field.name)) << field.name;
  }
  EXPECT_EQ(loaded.to_json(), written);
}

TEST(ConfigFields, RecipeValuesReachTheConfigThroughTheTable) {
  Recipe r = load_recipe(small_recipe(), {"model.hidden_size=48", "model.is_decoder=true", "model.bidirectional=false",
                                          "model.ema_beta_range=0.5", "model.truncation=null"});
  MegaConfig c = mega_config_from_recipe(r, task_info(r));
  EXPECT_EQ(c.hidden_size, 48);
  EXPECT_TRUE(c.is_decoder);
  EXPECT_FALSE(c.bidirectional);
  EXPECT_EQ(c.ema_beta_range, 0.5);
  EXPECT_FALSE(c.truncation.has_value());
  // Null task-default keys come from the task; bos/eos are not recipe keys and are cleared.
  EXPECT_EQ(c.vocab_size, task_info(r).vocab_size);
  EXPECT_EQ(c.pad_token_id.value(), task_info(r).pad_id);
  EXPECT_FALSE(c.bos_token_id.has_value());
  EXPECT_EQ(c.classifier_dropout.value(), c.dropout_prob);
}

// Once accepted by MegaConfig but not by recipes (syncbatchnorm) or by the activation parser but not
// recipes (identity): both lists are now the enums' name tables.
TEST(ConfigFields, RecipesAcceptEveryNameTheConfigAccepts) {
  Recipe r = load_recipe(small_recipe(), {"model.normalization_type=syncbatchnorm", "model.activation=identity",
                                          "model.classifier_activation=swish"});
  MegaConfig c = mega_config_from_recipe(r, task_info(r));
  EXPECT_EQ(c.normalization_type, NormalizationType::SyncBatchNorm);
  EXPECT_EQ(c.activation, Activation::Identity);
  EXPECT_EQ(classifier_options_from_recipe(r, task_info(r)).classifier_activation, Activation::Silu);
  for (const auto& [value, name] : normalization_type_names()) {
    MegaConfig read = MegaConfig::from_json({{"normalization_type", name}});
    EXPECT_EQ(read.normalization_type, value) << name;
    EXPECT_NO_THROW(load_recipe(small_recipe(), {"model.normalization_type=" + std::string(name)})) << name;
  }
  // An alias reads as its value and is written back under the canonical name.
  MegaConfig swish = MegaConfig::from_json({{"activation", "swish"}});
  EXPECT_EQ(swish.activation, Activation::Silu);
  EXPECT_EQ(swish.to_json()["activation"], "silu");
}

TEST(ConfigFields, AnUnknownNameIsRefusedWithTheTableOfNames) {
  std::string message = error_of([] { MegaConfig::from_json({{"normalization_type", "groupnorm"}}); });
  EXPECT_NE(message.find("'normalization_type'"), std::string::npos) << message;
  EXPECT_NE(message.find(or_list(enum_name_list(normalization_type_names()))), std::string::npos) << message;
  message = error_of([] { MegaConfig::from_json({{"problem_type", "ranking"}}); });
  EXPECT_NE(message.find(or_list(enum_name_list(problem_type_names()))), std::string::npos) << message;
  message = error_of([] { activation_from_name("mish"); });
  EXPECT_NE(message.find(or_list(enum_name_list(activation_names()))), std::string::npos) << message;
}

TEST(ConfigFields, ConfigJsonSizesAreBoundedAndIntegersMustBeIntegers) {
  TempDir dir;
  auto load_error = [&](const std::string& body) {
    std::string path = dir.write("config.json", "{" + body + "}");
    std::string message = error_of([&] { MegaConfig::load(path); });
    EXPECT_NE(message.find(path), std::string::npos) << message;  // the file
    return message;
  };
  auto has = [](const std::string& message, const std::string& needle) {
    return message.find(needle) != std::string::npos;
  };
  std::string m = load_error("\"num_hidden_layers\": 1000000000");
  EXPECT_TRUE(has(m, "'num_hidden_layers': 1000000000 is out of range [1, 1024]")) << m;
  m = load_error("\"num_hidden_layers\": 1e9");
  EXPECT_TRUE(has(m, "'num_hidden_layers': expected an integer")) << m;
  m = load_error("\"hidden_size\": 3.5");
  EXPECT_TRUE(has(m, "'hidden_size': expected an integer, got 3.5")) << m;
  m = load_error("\"hidden_size\": 64.0");
  EXPECT_TRUE(has(m, "'hidden_size': expected an integer")) << m;
  m = load_error("\"vocab_size\": 18446744073709551615");
  EXPECT_TRUE(has(m, "'vocab_size'") && has(m, "out of range")) << m;
  m = load_error("\"max_positions\": -5");
  EXPECT_TRUE(has(m, "'max_positions': -5 is out of range")) << m;
  m = load_error("\"truncation\": 0");
  EXPECT_TRUE(has(m, "'truncation'")) << m;
  m = load_error("\"bidirectional\": 1");
  EXPECT_TRUE(has(m, "'bidirectional': expected true or false")) << m;
  m = load_error("\"hidden_size\": null");
  EXPECT_TRUE(has(m, "'hidden_size': must not be null")) << m;
  m = load_error("\"activation\": 3");
  EXPECT_TRUE(has(m, "'activation': expected a string")) << m;
  m = load_error("\"hidden_dropout_prob\": 1.0");
  EXPECT_TRUE(has(m, "'hidden_dropout_prob': 1 is out of range [0, 1)")) << m;
  m = load_error("\"num_labels\": 1e9");
  EXPECT_TRUE(has(m, "'num_labels': expected an integer")) << m;
  m = load_error("\"num_labels\": 1000000000");
  EXPECT_TRUE(has(m, "num_labels")) << m;
  // A float field takes an integer, and a nullable field takes null.
  std::string ok = dir.write("ok.json", "{\"initializer_range\": 1, \"truncation\": null, \"problem_type\": null}");
  EXPECT_EQ(MegaConfig::load(ok).initializer_range, 1.0);
}

TEST(ConfigFields, ConfigsBuiltInCodeAreBoundedToo) {
  MegaConfig c;
  c.num_hidden_layers = 1 << 20;
  EXPECT_NE(error_of([&] { c.validate(); }).find("'num_hidden_layers'"), std::string::npos);
}

TEST(ConfigFields, RecipeSizesAreBoundedAndIntegersMustBeIntegers) {
  auto recipe_error = [](const std::string& override_text) {
    return error_of([&] { load_recipe(small_recipe(), {override_text}); });
  };
  std::string m = recipe_error("model.num_hidden_layers=1000000000");
  EXPECT_NE(m.find("<command line>:1: model.num_hidden_layers: 1000000000 is out of range"), std::string::npos) << m;
  m = recipe_error("model.num_hidden_layers=1e9");
  EXPECT_NE(m.find("model.num_hidden_layers: expected an integer, got '1e9'"), std::string::npos) << m;
  m = recipe_error("model.hidden_size=3.5");
  EXPECT_NE(m.find("model.hidden_size: expected an integer, got '3.5'"), std::string::npos) << m;
  m = recipe_error("model.vocab_size=20000000");
  EXPECT_NE(m.find("model.vocab_size: 20000000 is out of range"), std::string::npos) << m;
  m = recipe_error("model.attention_activation=sparsemax");
  EXPECT_NE(m.find("model.attention_activation: 'sparsemax' is not one of " +
                   std::string(attention_function_names()[0].name)),
            std::string::npos)
      << m;
}

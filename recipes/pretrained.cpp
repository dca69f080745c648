// Loading an HF Mega checkpoint's encoder into a freshly built model (recipes/pretrained.h).
#include "recipes/pretrained.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "core/safetensors.h"

namespace mega {

namespace {

constexpr const char* kEncoderPrefix = "mega.";
// config.json keys that describe the head or the file, not the encoder the weights fit.
const std::set<std::string> kHeadKeys = {"architectures", "transformers_version", "id2label", "label2id",
                                         "num_labels", "problem_type", "lra_classifier", "classifier_dropout"};

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

nlohmann::json read_config(const std::string& path) {
  std::ifstream in(path);
  MEGA_CHECK(in, "[from_pretrained] cannot read ", path, " (an HF checkpoint folder holds config.json and model.safetensors)");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("[from_pretrained] ", path, " is not valid JSON: ", e.what());
  }
}

}  // namespace

PretrainedLoad load_pretrained(Module& model, const nlohmann::json& model_config, const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string config_path = (fs::path(dir) / "config.json").string();
  const std::string weights_path = (fs::path(dir) / "model.safetensors").string();
  const nlohmann::json config = read_config(config_path);
  MEGA_CHECK(fs::exists(weights_path), "[from_pretrained] ", weights_path, " does not exist");
  const SafetensorsFile file = load_safetensors(weights_path);

  bool prefixed = false;
  for (const auto& [key, tensor] : file.tensors) prefixed = prefixed || starts_with(key, kEncoderPrefix);
  PretrainedLoad load;
  std::map<std::string, Tensor> own = model.state_dict();  // shares storage with the model
  std::set<std::string> loaded;
  for (const auto& [key, tensor] : file.tensors) {
    const std::string name = prefixed ? key : kEncoderPrefix + key;
    auto target = own.find(name);
    if (!starts_with(name, kEncoderPrefix) || target == own.end()) {
      load.unexpected.push_back(key);
      continue;
    }
    MEGA_CHECK(tensor.shape() == target->second.shape(), "[from_pretrained] ", weights_path, ": '", key,
               "' has shape ", shape_str(tensor.shape()), " but the model's '", name, "' has shape ",
               shape_str(target->second.shape()));
    target->second.copy_from(tensor);
    loaded.insert(name);
  }
  for (const auto& [name, tensor] : own) (loaded.count(name) ? load.loaded : load.missing).push_back(name);

  for (const auto& [key, value] : config.items()) {
    if (!model_config.contains(key) || model_config[key] == value) continue;
    if (kHeadKeys.count(key)) continue;
    load.config_differences.push_back(key + " (checkpoint " + value.dump() + ", model " + model_config[key].dump() + ")");
  }
  return load;
}

std::vector<std::string> pretrained_report(const PretrainedLoad& load, const std::string& dir) {
  std::vector<std::string> lines;
  lines.push_back("from_pretrained " + dir + ": loaded " + std::to_string(load.loaded.size()) + " of " +
                  std::to_string(load.loaded.size() + load.missing.size()) + " tensors of the model");
  if (!load.missing.empty())
    lines.push_back("from_pretrained: missing keys, newly initialized: " + joined(load.missing));
  if (!load.unexpected.empty())
    lines.push_back("from_pretrained: unexpected keys of the checkpoint, not used: " + joined(load.unexpected));
  if (!load.config_differences.empty())
    lines.push_back("from_pretrained: config.json differs from the recipe's model in: " +
                    joined(load.config_differences));
  return lines;
}

void start_from_pretrained(const Recipe& recipe, TaskModel& model) {
  const std::string dir = recipe.get_string("model.from_pretrained");
  try {
    for (const std::string& line : pretrained_report(load_pretrained(model.module(), model.config_json(), dir), dir))
      std::printf("%s\n", line.c_str());
  } catch (const Error& e) {
    fail(problem_at(recipe, "model.from_pretrained", e.what()));
  }
}

}  // namespace mega

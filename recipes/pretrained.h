// model.from_pretrained: start a run from an HF Mega checkpoint folder (config.json + model.safetensors,
// as HF's save_pretrained writes it and as `mega train` saves its checkpoints).
//
// The encoder's weights are read from the checkpoint, whatever head it was saved with: keys under "mega."
// (MegaForMaskedLM, MegaForSequenceClassification, MegaForCausalLM, ...), or, for a bare MegaModel whose
// keys have no prefix, every key read as under "mega.". They are copied into the model's parameters and
// buffers of the same name; the model's own head (HF's classifier or the LRA head) keeps its fresh init.
// As HF's from_pretrained warns, what is not loaded is reported: the model's keys the checkpoint lacks
// (missing: the new head) and the checkpoint's keys the model does not take (unexpected: the old head,
// lm_head.*, a pooler). A key of both with different shapes is an error naming it and both shapes.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/module.h"
#include "recipes/recipe.h"
#include "recipes/task_model.h"

namespace mega {

struct PretrainedLoad {
  std::vector<std::string> loaded, missing, unexpected;  // model names; checkpoint names for unexpected
  std::vector<std::string> config_differences;           // "key (checkpoint V, model W)"
};

// Loads DIR/model.safetensors into `model` as described above. `model_config` (the model's config.json)
// is compared with DIR/config.json on the keys both have, and differences are listed (a recipe may
// change dropout, but a changed activation or normalization usually means the wrong checkpoint).
PretrainedLoad load_pretrained(Module& model, const nlohmann::json& model_config, const std::string& dir);

// The lines to print: what was loaded from where, then one line each for missing and unexpected keys
// and for config differences, when there are any.
std::vector<std::string> pretrained_report(const PretrainedLoad& load, const std::string& dir);

// The trainer's step for a fresh run with model.from_pretrained set: loads it into `model` (after its
// init, so what is missing keeps that init) and prints the report; errors are located at the key.
void start_from_pretrained(const Recipe& recipe, TaskModel& model);

}  // namespace mega

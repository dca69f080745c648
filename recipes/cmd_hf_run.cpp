// `mega hf-run`: runs an HF Mega checkpoint folder (config.json + model.safetensors) on the tensors of
// an inputs file and writes the outputs under the HF fixture names (see nn/hf_run.h), so any case
// folder of shared/fixtures/hf_mega can be checked against its expected.safetensors.
#include <algorithm>
#include <boost/program_options.hpp>
#include <filesystem>
#include <iostream>

#include "core/safetensors.h"
#include "nn/hf_run.h"
#include "recipes/commands.h"
#include "recipes/cli_options.h"

namespace po = boost::program_options;

namespace mega::cli {

namespace {

// --out is replaced by a rename, so it must not name anything the run reads (the inputs file, any
// file of the --model folder) nor anything that is not a regular file (a folder, a device, a symlink,
// whose target a user means to keep): those are refused before any work.
void check_output_path(const std::string& out, const std::string& model_dir, const std::string& inputs) {
  namespace fs = std::filesystem;
  std::error_code error;
  fs::file_status status = fs::symlink_status(out, error);
  if (fs::exists(status) && !fs::is_regular_file(status))
    fail("[hf-run] --out ", out, " exists and is not a regular file (",
         fs::is_symlink(status) ? "a symlink" : fs::is_directory(status) ? "a folder" : "a device or other special file",
         "): refusing to replace it");
  if (fs::exists(status) && fs::exists(inputs, error) && fs::equivalent(out, inputs, error))
    fail("[hf-run] --out ", out, " is the inputs file (--inputs ", inputs, "): refusing to overwrite an input");
  const fs::path target = fs::weakly_canonical(fs::absolute(out)), model = fs::weakly_canonical(fs::absolute(model_dir));
  if (std::mismatch(model.begin(), model.end(), target.begin(), target.end()).first == model.end())
    fail("[hf-run] --out ", out, " is inside the checkpoint folder (--model ", model_dir,
         "): refusing to write into an input; choose a path outside it");
}

}  // namespace

int hf_run(const Args& args) {
  std::string model_dir, inputs_path, out_path;
  HfRunOptions options;
  int64_t seed = 0;  // signed, so that a negative seed is refused rather than wrapped to 2^64 - n
  po::options_description description("mega hf-run options");
  description.add_options()("help,h", "show this help")(
      "model", po::value(&model_dir)->required(), "checkpoint folder: config.json + model.safetensors")(
      "inputs", po::value(&inputs_path)->required(), "inputs .safetensors (input_ids, attention_mask, ...)")(
      "out", po::value(&out_path)->required(), "where to write the outputs .safetensors")(
      "grads", po::bool_switch(&options.grads), "add grad.<param> for every parameter")(
      "train", po::bool_switch(&options.train), "train mode (batch statistics); add running.<buffer>")(
      "incremental", po::bool_switch(&options.incremental),
      "causal LM: add incremental.logits (one token per call through the cache)")(
      "prefill", po::value(&options.prefill)->default_value(0),
      "with --incremental: add incremental_prefill.logits (the first K tokens in one call)")(
      "seed", po::value(&seed)->default_value(0), "dropout seed");
  po::variables_map vm;
  if (!parse_command_options(args, description, vm)) return 0;
  MEGA_CHECK(options.prefill == 0 || options.incremental, "--prefill needs --incremental");
  MEGA_CHECK(seed >= 0, "--seed must be 0 or more, got ", seed);
  options.seed = static_cast<uint64_t>(seed);
  options.inputs_name = inputs_path;
  check_output_path(out_path, model_dir, inputs_path);

  MegaCheckpoint checkpoint = load_pretrained(model_dir);
  SafetensorsFile inputs = load_safetensors(inputs_path);
  std::map<std::string, Tensor> outputs = mega::hf_run(*checkpoint.model, inputs.tensors, options);
  save_safetensors(out_path, outputs, {{"format", "pt"}});
  std::cout << "wrote " << outputs.size() << " tensors to " << out_path << "\n";
  return 0;
}

}  // namespace mega::cli

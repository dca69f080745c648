// `mega generate`: continues a prompt of token ids with a causal Mega checkpoint, decoding through the
// cache (each new token costs one cached step, not a forward over the whole prefix). Greedy, or
// sampling with temperature, top-k and top-p (nucleus) from a seeded counter-based RNG. A language model
// trained here (its folder holds dict.txt and config.json's "mega_lm") takes the prompt as text (words or
// bytes, read after the context token it was trained with: </s> or '\n') and prints text; --ids keeps ids.
#include <algorithm>
#include <boost/program_options.hpp>
#include <cmath>
#include <functional>
#include <iostream>
#include <numeric>
#include <optional>
#include <sstream>

#include <filesystem>

#include "core/json_file.h"
#include "core/safetensors.h"
#include "data/lm_data.h"
#include "nn/mega_model.h"
#include "recipes/commands.h"
#include "recipes/cli_options.h"
#include "recipes/lm_objective.h"

namespace po = boost::program_options;

namespace mega::cli {

namespace {

constexpr int64_t kMaxNewTokens = int64_t{1} << 20;

struct Sampling {
  bool greedy = false;
  double temperature = 1.0;
  int64_t top_k = 0;    // 0: all tokens
  double top_p = 1.0;   // 1: all tokens
};

// Picks the next token from one row of logits or log-probabilities (V).
int64_t sample(const float* logits, int64_t vocab, const Sampling& s, const Rng& rng, uint64_t stream,
               uint64_t step) {
  std::vector<int64_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return logits[a] > logits[b]; });
  if (s.greedy || s.temperature <= 0) return order[0];
  int64_t keep = s.top_k > 0 ? std::min(s.top_k, vocab) : vocab;
  std::vector<double> p(keep);
  double total = 0;
  for (int64_t i = 0; i < keep; ++i) total += p[i] = std::exp((logits[order[i]] - logits[order[0]]) / s.temperature);
  // Nucleus: the smallest prefix (by probability) whose mass reaches top_p.
  double mass = 0;
  int64_t nucleus = keep;
  for (int64_t i = 0; i < keep; ++i) {
    mass += p[i] / total;
    if (mass >= s.top_p) {
      nucleus = i + 1;
      break;
    }
  }
  double kept = std::accumulate(p.begin(), p.begin() + nucleus, 0.0);
  double u = rng.uniform(stream, step) * kept;
  for (int64_t i = 0; i < nucleus; ++i) {
    if (u < p[i]) return order[i];
    u -= p[i];
  }
  return order[nucleus - 1];
}

}  // namespace

int generate(const Args& args) {
  std::string model_dir, prompt;
  int64_t max_new_tokens = 20;
  int64_t seed = 0;  // signed, so that a negative seed is refused rather than wrapped to 2^64 - n
  bool ignore_eos = false;
  bool ids_only = false;
  Sampling sampling;
  po::options_description description("mega generate options");
  description.add_options()("help,h", "show this help")(
      "model", po::value(&model_dir)->required(), "MegaForCausalLM checkpoint folder")(
      "prompt", po::value(&prompt)->required(),
      "token ids separated by spaces, e.g. \"1 5 9\"; text for a language model with a vocabulary")(
      "ids", po::bool_switch(&ids_only), "prompt and output as ids even when the model has a vocabulary")(
      "max-new-tokens", po::value(&max_new_tokens)->default_value(max_new_tokens), "tokens to generate")(
      "greedy", po::bool_switch(&sampling.greedy), "always take the most likely token")(
      "temperature", po::value(&sampling.temperature)->default_value(1.0), "softmax temperature (0: greedy)")(
      "top-k", po::value(&sampling.top_k)->default_value(0), "sample among the k most likely (0: all)")(
      "top-p", po::value(&sampling.top_p)->default_value(1.0), "sample within this probability mass")(
      "seed", po::value(&seed)->default_value(0), "sampling seed")(
      "ignore-eos", po::bool_switch(&ignore_eos), "keep going after the end-of-sequence token");
  po::variables_map vm;
  if (!parse_command_options(args, description, vm)) return 0;
  // Comparisons written so that NaN fails them.
  // Each new token costs a cached step over every kept key: far past a million is a typo, not a run.
  MEGA_CHECK(max_new_tokens >= 0 && max_new_tokens <= kMaxNewTokens, "--max-new-tokens must be in 0..", kMaxNewTokens,
             ", got ", max_new_tokens);
  MEGA_CHECK(seed >= 0, "--seed must be 0 or more, got ", seed);
  MEGA_CHECK(sampling.temperature >= 0 && std::isfinite(sampling.temperature),
             "--temperature must be a finite number >= 0 (0: greedy), got ", sampling.temperature);
  MEGA_CHECK(sampling.top_k >= 0, "--top-k must be 0 (all tokens) or more, got ", sampling.top_k);
  MEGA_CHECK(sampling.top_p > 0 && sampling.top_p <= 1, "--top-p must be in (0, 1], got ", sampling.top_p);

  // A language model trained here (config.json's "mega_lm") maps text both ways through its saved
  // vocabulary and decodes through its own input and head (an adaptive softmax gives every word's
  // log-probability); any other folder is an HF MegaForCausalLM.
  namespace fs = std::filesystem;
  const fs::path config_path = fs::path(model_dir) / "config.json";
  const nlohmann::json config = read_json_file(config_path.string());
  const bool trained_here = config.is_object() && config.contains("mega_lm");
  std::optional<Vocabulary> vocabulary;
  if (trained_here && !ids_only && fs::is_regular_file(fs::path(model_dir) / "dict.txt"))
    vocabulary = read_vocabulary(model_dir, lm_unit_of_config(config));
  std::vector<int64_t> ids;
  if (vocabulary) {
    ids = vocabulary->encode(prompt);
    ids.insert(ids.begin(), vocabulary->begin_id());  // as training read every stream
  } else {
    std::istringstream in(prompt);
    for (int64_t id; in >> id;) ids.push_back(id);
    MEGA_CHECK(!ids.empty() && in.eof(), "--prompt must be token ids separated by spaces, got '", prompt, "'");
  }

  // next_scores(ids (1, L)) -> scores (L, V) of the L new tokens, whose softmax is the next-token distribution.
  std::unique_ptr<CausalLmModel> trained;
  MegaCheckpoint checkpoint;
  MegaCache cache;
  Rng rng(static_cast<uint64_t>(seed));
  std::function<Tensor(const Tensor&)> next_scores;
  MegaConfig model_config;
  if (trained_here) {
    try {
      trained = language_model_from_config_json(config);
    } catch (const Error& e) {
      fail(e.what(), " (in ", config_path.string(), ")");
    }
    const std::string weights = (fs::path(model_dir) / "model.safetensors").string();
    try {
      trained->module().load_state_dict(load_safetensors(weights).tensors);
    } catch (const Error& e) {
      fail(e.what(), " (in ", weights, ")");
    }
    trained->module().eval();
    model_config = trained->encoder_config();
    next_scores = [&](const Tensor& step) { return trained->language_model().log_probs_cached(step, cache); };
  } else {
    checkpoint = load_pretrained(model_dir);
    auto* lm = dynamic_cast<MegaForCausalLM*>(checkpoint.model.get());
    MEGA_CHECK(lm, "[generate] needs a MegaForCausalLM checkpoint, got ", architecture_of(checkpoint.config));
    lm->eval();
    model_config = checkpoint.config;
    next_scores = [&, lm](const Tensor& step) {
      MegaInputs inputs;
      inputs.input_ids = step;
      Tensor logits = lm->forward_cached(inputs, cache, rng).value();  // (1, L, V)
      return logits.reshape({logits.size(1), logits.size(2)});
    };
  }
  const int64_t vocab = model_config.vocab_size;
  for (int64_t id : ids) MEGA_CHECK(id >= 0 && id < vocab, "[generate] token id ", id, " outside the vocabulary");

  uint64_t stream = rng.next_stream();
  Tensor step = Tensor::from(ids, {1, static_cast<int64_t>(ids.size())});  // the prompt in one call
  std::vector<int64_t> generated;
  for (int64_t n = 0; n < max_new_tokens; ++n) {
    Tensor scores = next_scores(step).to(DType::F32);
    const float* last = scores.data<float>() + (scores.size(0) - 1) * vocab;
    int64_t next = sample(last, vocab, sampling, rng, stream, static_cast<uint64_t>(n));
    generated.push_back(next);
    if (!ignore_eos && model_config.eos_token_id && next == *model_config.eos_token_id) break;
    step = Tensor::from(std::vector<int64_t>{next}, {1, 1});
  }
  if (vocabulary) {
    MEGA_CHECK(vocabulary->size() == vocab, "[generate] dict.txt holds ", vocabulary->size(),
               " symbols, the model's vocab_size is ", vocab);
    std::cout << vocabulary->decode(generated) << "\n";
    return 0;
  }
  for (size_t i = 0; i < generated.size(); ++i) std::cout << (i ? " " : "") << generated[i];
  std::cout << "\n";
  return 0;
}

}  // namespace mega::cli

// The language-modelling objective, its evaluation and its baselines (recipes/lm_objective.h).
#include "recipes/lm_objective.h"

#include <cmath>
#include <unordered_map>

#include "core/error.h"
#include "recipes/trainer.h"

namespace mega {

Var CausalLmModel::forward(const Batch& batch, Rng&) { return model_.log_probs(batch.ids, batch.mask); }

Var CausalLmModel::loss(const Batch& batch, Rng& rng) {
  MEGA_CHECK(batch.labels.dim() == 2, "[lm] a language-model batch has targets (B, L)");
  return model_.loss(batch.ids, batch.mask, batch.labels, rng);
}

LmScore CausalLmModel::score(const Batch& batch) { return model_.score(batch.ids, batch.mask, batch.labels); }

nlohmann::json CausalLmModel::config_json() const {
  nlohmann::json json = model_.config_json();
  json["mega_lm"] = {{"unit", token_unit_name(unit_)}, {"vocabulary", "dict.txt"}};
  return json;
}

std::unique_ptr<CausalLmModel> build_language_model(const Recipe& recipe, TokenUnit unit, int64_t vocab_size) {
  for (const char* key : {"model.adaptive_input", "model.tie_adaptive_weights"})
    MEGA_CHECK(!recipe.get_bool(key), problem_at(recipe, key, "adaptive input/softmax are not built yet (nn/adaptive.h)"));
  MEGA_CHECK(recipe.get_floats("model.adaptive_softmax_cutoff").empty(),
             problem_at(recipe, "model.adaptive_softmax_cutoff", "adaptive softmax is not built yet (nn/adaptive.h)"));
  const int64_t pad = unit == TokenUnit::Word ? Vocabulary::kPad : 0;
  // HF's default of 2 labels: an LM has none, and config.json keeps HF's id2label.
  MegaConfig c = mega_config_from_recipe(recipe, TaskInfo{vocab_size, 2, pad});
  c = causal_lm_config(c);
  c.tie_word_embeddings = recipe.get_bool("model.tie_word_embeddings");
  if (unit == TokenUnit::Word) {  // fairseq's <s>, </s>: also HF's defaults
    c.bos_token_id = Vocabulary::kBos;
    c.eos_token_id = Vocabulary::kEos;
  }
  try {
    return std::make_unique<CausalLmModel>(MegaLmOptions{.config = c}, unit);
  } catch (const Error& e) {
    fail(locate_problem(recipe, "model.", e.what(), "model.head"));
  }
}

TokenUnit lm_unit_of_config(const nlohmann::json& config) {
  MEGA_CHECK(config.contains("mega_lm") && config["mega_lm"].is_object() && config["mega_lm"].contains("unit") &&
                 config["mega_lm"]["unit"].is_string(),
             "config.json has no \"mega_lm\": {\"unit\": ...}: not a language model saved by mega train");
  return token_unit_from_name(config["mega_lm"]["unit"].get<std::string>());
}

std::unique_ptr<CausalLmModel> language_model_from_config_json(const nlohmann::json& config) {
  const TokenUnit unit = lm_unit_of_config(config);
  MegaConfig c = MegaConfig::from_json(config);
  MEGA_CHECK(architecture_of(c) == "MegaForCausalLM", "config.json describes a ", architecture_of(c),
             ", not a MegaForCausalLM");
  return std::make_unique<CausalLmModel>(MegaLmOptions{.config = causal_lm_config(c)}, unit);
}

SegmentOptions segment_options(const Recipe& recipe, const Vocabulary& vocabulary) {
  SegmentOptions o;
  o.batch_size = recipe.train.batch_size;
  o.chunk = recipe.get_int("model.chunk_size");
  o.min_chunks = recipe.get_int("data.segment_chunks_min");
  o.max_chunks = recipe.get_int("data.segment_chunks_max");
  o.seed = recipe.train.seed;
  o.begin_id = vocabulary.begin_id();
  o.pad_id = vocabulary.pad_id();
  return o;
}

int64_t eval_length(const Recipe& recipe) {
  if (!recipe.is_null("data.eval_length")) return recipe.get_int("data.eval_length");
  return recipe.get_int("model.chunk_size") * recipe.get_int("data.segment_chunks_max");
}

LmMetrics lm_metrics(const LmScore& score) {
  LmMetrics m;
  m.tokens = score.count;
  m.loss = score.count > 0 ? score.nll_sum / static_cast<double>(score.count) : 0;
  m.perplexity = std::exp(m.loss);
  m.bits_per_byte = m.loss / std::log(2.0);
  return m;
}

LmMetrics evaluate_stream(CausalLmModel& model, const std::vector<int64_t>& stream, int64_t length, int64_t batch_size,
                          const Vocabulary& vocabulary) {
  const MegaConfig& c = model.encoder_config();
  const int64_t multiple = c.use_chunking ? c.chunk_size : 1;
  model.module().eval();
  LmScore total;
  for (const Batch& batch : evaluation_blocks(stream, length, batch_size, vocabulary.begin_id(), vocabulary.pad_id(),
                                              multiple)) {
    const LmScore s = model.score(batch);
    total.nll_sum += s.nll_sum;
    total.count += s.count;
  }
  model.module().train();
  return lm_metrics(total);
}

namespace {

// x = begin, t_0, ..., t_{N-1}: the token before t_i.
int64_t previous(const std::vector<int64_t>& stream, size_t i, int64_t begin_id) {
  return i == 0 ? begin_id : stream[i - 1];
}

}  // namespace

LmMetrics unigram_baseline(const std::vector<int64_t>& train, const std::vector<int64_t>& split, int64_t vocab_size,
                           int64_t) {
  std::vector<int64_t> counts(static_cast<size_t>(vocab_size), 0);
  for (int64_t id : train) counts[static_cast<size_t>(id)] += 1;
  const double denominator = static_cast<double>(train.size()) + static_cast<double>(vocab_size);
  LmScore s;
  for (int64_t id : split) {
    s.nll_sum -= std::log((static_cast<double>(counts[static_cast<size_t>(id)]) + 1) / denominator);
    s.count += 1;
  }
  return lm_metrics(s);
}

LmMetrics bigram_baseline(const std::vector<int64_t>& train, const std::vector<int64_t>& split, int64_t vocab_size,
                          int64_t begin_id) {
  const uint64_t V = static_cast<uint64_t>(vocab_size);
  std::unordered_map<uint64_t, int64_t> pairs;
  std::vector<int64_t> contexts(V, 0);
  for (size_t i = 0; i < train.size(); ++i) {
    const uint64_t v = static_cast<uint64_t>(previous(train, i, begin_id));
    pairs[v * V + static_cast<uint64_t>(train[i])] += 1;
    contexts[v] += 1;
  }
  LmScore s;
  for (size_t i = 0; i < split.size(); ++i) {
    const uint64_t v = static_cast<uint64_t>(previous(split, i, begin_id));
    auto found = pairs.find(v * V + static_cast<uint64_t>(split[i]));
    const double pair = found == pairs.end() ? 0 : static_cast<double>(found->second);
    s.nll_sum -= std::log((pair + 1) / (static_cast<double>(contexts[v]) + static_cast<double>(vocab_size)));
    s.count += 1;
  }
  return lm_metrics(s);
}

}  // namespace mega

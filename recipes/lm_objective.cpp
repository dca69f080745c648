// The language-modelling objective, its evaluation and its baselines (recipes/lm_objective.h).
#include "recipes/lm_objective.h"

#include <algorithm>
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

void CausalLmModel::init_weights(Rng& rng) { model_.init_weights(rng); }

nlohmann::json CausalLmModel::config_json() const {
  nlohmann::json json = model_.config_json();
  json["mega_lm"]["unit"] = token_unit_name(unit_);
  json["mega_lm"]["vocabulary"] = "dict.txt";
  return json;
}

namespace {

// The recipe key an AdaptiveOptions field comes from, for check_adaptive_options' messages.
std::string adaptive_key_of(const std::string& message) {
  const std::pair<const char*, const char*> fields[] = {{"cutoffs", "model.adaptive_softmax_cutoff"},
                                                        {"factor", "model.adaptive_softmax_factor"},
                                                        {"dropout", "model.adaptive_softmax_dropout"},
                                                        {"padding_idx", "model.pad_token_id"}};
  size_t best_at = std::string::npos;
  std::string key = "model.adaptive_softmax_cutoff";
  for (const auto& [field, recipe_key] : fields) {
    const size_t at = message.find(field);
    if (at < best_at) best_at = at, key = recipe_key;
  }
  return key;
}

// model.adaptive_*: the seams of the model and their bands, checked against the vocabulary.
void read_adaptive_keys(const Recipe& recipe, MegaLmOptions& o) {
  const char* cutoff_key = "model.adaptive_softmax_cutoff";
  for (double cutoff : recipe.get_floats(cutoff_key)) {
    MEGA_CHECK(cutoff == std::floor(cutoff), problem_at(recipe, cutoff_key, "cutoffs are word ids: " +
                                                                                std::to_string(cutoff) + " is not whole"));
    o.adaptive_cutoffs.push_back(static_cast<int64_t>(cutoff));
  }
  if (recipe.get_bool("model.adaptive_input")) o.input = LmInputKind::AdaptiveInput;
  if (!o.adaptive_cutoffs.empty()) o.output = LmOutputKind::AdaptiveSoftmax;
  o.adaptive_factor = recipe.get_float("model.adaptive_softmax_factor");
  o.adaptive_softmax_dropout = recipe.get_float("model.adaptive_softmax_dropout");
  o.tie_adaptive_weights = recipe.get_bool("model.tie_adaptive_weights");
  MEGA_CHECK(o.input == LmInputKind::WordEmbeddings || !o.adaptive_cutoffs.empty(),
             problem_at(recipe, cutoff_key, "model.adaptive_input needs the bands: set the cutoffs, e.g. [20000, 60000]"));
  MEGA_CHECK(!o.tie_adaptive_weights || (o.input == LmInputKind::AdaptiveInput && !o.adaptive_cutoffs.empty()),
             problem_at(recipe, "model.tie_adaptive_weights",
                        "ties the adaptive softmax to the adaptive input: it needs model.adaptive_input: true and "
                        "model.adaptive_softmax_cutoff"));
  if (o.input == LmInputKind::WordEmbeddings && o.output == LmOutputKind::FullSoftmax) return;
  // The adaptive softmax ties through tie_adaptive_weights; config.json says the word embeddings are not tied.
  o.config.tie_word_embeddings = false;
  try {
    check_adaptive_options(adaptive_options(o));
  } catch (const Error& e) {
    fail(problem_at(recipe, adaptive_key_of(e.what()), e.what()));
  }
}

}  // namespace

std::unique_ptr<CausalLmModel> build_language_model(const Recipe& recipe, TokenUnit unit, int64_t vocab_size) {
  const int64_t pad = unit == TokenUnit::Word ? Vocabulary::kPad : 0;
  if (vocab_size <= 0) {  // not known before train is read (validate): a stand-in above every cutoff
    vocab_size = Vocabulary::kSpecials + 1;
    for (double cutoff : recipe.get_floats("model.adaptive_softmax_cutoff"))
      vocab_size = std::max(vocab_size, static_cast<int64_t>(cutoff) + 1);
  }
  // HF's default of 2 labels: an LM has none, and config.json keeps HF's id2label.
  MegaConfig c = mega_config_from_recipe(recipe, TaskInfo{vocab_size, 2, pad});
  c = causal_lm_config(c);
  c.tie_word_embeddings = recipe.get_bool("model.tie_word_embeddings");
  if (unit == TokenUnit::Word) {  // fairseq's <s>, </s>: also HF's defaults
    c.bos_token_id = Vocabulary::kBos;
    c.eos_token_id = Vocabulary::kEos;
  }
  MegaLmOptions options{.config = c};
  read_adaptive_keys(recipe, options);
  try {
    return std::make_unique<CausalLmModel>(options, unit);
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
  MegaLmOptions options{.config = causal_lm_config(c)};
  read_adaptive_json(config["mega_lm"], options);
  return std::make_unique<CausalLmModel>(options, unit);
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

// The trainer (see trainer.h): builders from recipe to model, then setup, train, evaluate, save, resume.
#include "recipes/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <optional>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_file.h"
#include "core/safetensors.h"
#include "core/threading.h"
#include "data/task.h"
#include "nn/config_fields.h"
#include "nn/init.h"
#include "ops/elementwise.h"
#include "ops/loss.h"
#include "recipes/checkpoint.h"
#include "recipes/distributed.h"
#include "recipes/lm_objective.h"
#include "recipes/metrics.h"
#include "recipes/mlm_objective.h"
#include "recipes/pretrained.h"
#include "recipes/run_folder.h"
#include "recipes/tensorboard.h"

namespace fs = std::filesystem;

namespace mega {

// ---- Builders ----

TaskDescription describe_task(const Recipe& recipe) {
  try {
    TaskDescription description = describe_row(task_named(recipe.data.task), recipe.data.source);
    check_description(recipe.data.task, description);
    return description;
  } catch (const Error& e) {
    fail(locate_problem(recipe, "data." + recipe.data.task + ".", e.what(), "data.task"));
  }
}

TaskInfo task_info(const Recipe& recipe) {
  const TaskDescription d = describe_task(recipe);
  return TaskInfo{d.input.vocab_size, d.num_labels, d.input.pad_id, d.label_names};
}

MegaConfig mega_config_from_recipe(const Recipe& r, const TaskInfo& task) {
  // Every MegaConfig key the recipe has, through the field table that made the schema; a key left null
  // for the task (vocab_size, pad_token_id) is filled from it below, the rest keep HF's defaults.
  auto config_value = [](const RecipeValue& value) {
    return std::visit(
        [](const auto& v) -> FieldValue {
          if constexpr (std::is_constructible_v<FieldValue, decltype(v)>) return v;
          else fail("a list value for a model key");  // the schema never gives a model field a list type
        },
        value);
  };
  MegaConfig c;
  for (const ConfigField& field : mega_config_fields()) {
    if (field.recipe == RecipeUse::NotInRecipe) continue;
    const std::string key = std::string("model.") + field.name;
    if (field.recipe == RecipeUse::TaskDefault && r.is_null(key)) continue;
    try {
      field.set(c, config_value(r.entry(key).value));
    } catch (const Error& e) {
      fail(r.path, ": ", key, ": ", e.what());
    }
  }
  if (r.is_null("model.vocab_size")) c.vocab_size = task.vocab_size;
  if (r.is_null("model.pad_token_id")) c.pad_token_id = task.pad_id;
  c.bos_token_id = std::nullopt;  // classification: no sentence markers
  c.eos_token_id = std::nullopt;
  if (!c.classifier_dropout) c.classifier_dropout = c.dropout_prob;
  c.set_num_labels(r.is_null("model.num_labels") ? task.num_labels : r.get_int("model.num_labels"));
  if (static_cast<int64_t>(task.label_names.size()) == c.num_labels())  // HF's id2label: {"0": "ham", ...}
    for (size_t i = 0; i < task.label_names.size(); ++i) c.id2label[std::to_string(i)] = task.label_names[i];
  c.architectures = {"MegaModel"};
  c.validate();
  return c;
}

LraClassifierOptions classifier_options_from_recipe(const Recipe& r, const TaskInfo& task) {
  LraClassifierOptions o;
  o.encoder = mega_config_from_recipe(r, task);
  o.pooling = pooling_from_name(r.get_string("model.pooling"));
  o.classifier_layers = r.get_int("model.classifier_layers");
  o.classifier_hidden_size =
      r.is_null("model.classifier_hidden_size") ? o.encoder.hidden_size : r.get_int("model.classifier_hidden_size");
  o.classifier_activation = activation_from_name(r.get_string("model.classifier_activation"));
  o.classifier_dropout = *o.encoder.classifier_dropout;
  o.num_labels = o.encoder.num_labels();
  return o;
}

std::unique_ptr<TaskModel> build_model(const Recipe& recipe, int64_t lm_vocab_size) {
  const TaskDescription task = describe_task(recipe);
  const bool lm_head = recipe.get_string("model.head") == "causal_lm";
  if (lm_head != is_language_model(task))
    fail(problem_at(recipe, "model.head",
                    std::string("task ") + recipe.data.task + " is " + task_kind_name(task.kind) + ", which needs " +
                        (is_language_model(task) ? "causal_lm" : "sequence_classification")));
  if (is_language_model(task)) {
    const TokenUnit unit = task.metric == Metric::BitsPerByte ? TokenUnit::Byte : TokenUnit::Word;
    // A word-level vocabulary is known once train is read; before that (validate) 0: a stand-in size.
    return build_language_model(recipe, unit, lm_vocab_size > 0 ? lm_vocab_size : task.input.vocab_size);
  }
  try {
    if (recipe.get_string("model.head") == "masked_lm") return build_masked_lm(recipe, task);
    return make_task_model(task.input, classifier_options_from_recipe(recipe, task_info(recipe)),
                           pair_features_from_name(recipe.get_string("model.pair_features")));
  } catch (const Error& e) {
    fail(locate_problem(recipe, "model.", e.what(), "model.head"));
  }
}

std::vector<std::string> check_setup(const Recipe& recipe) {
  std::vector<std::string> problems;
  try {
    if (is_language_model(describe_task(recipe)) && recipe.train.max_steps == 0)
      problems.push_back(problem_at(recipe, "train.max_epochs",
                                    "a language model trains for train.max_steps: its epochs' batch counts "
                                    "depend on the drawn segment lengths"));
  } catch (const Error& e) {
    return {e.what()};  // nothing after it can be built
  }
  std::unique_ptr<TaskModel> model;
  try {
    model = build_model(recipe);
  } catch (const Error& e) {
    problems.push_back(e.what());
  }
  if (model) {
    try {
      Optimizer optimizer(rule_groups(model->module().named_parameters(), recipe.optim.group_rules()),
                          recipe.optim.options);
    } catch (const Error& e) {
      problems.push_back(locate_problem(recipe, "optim.", e.what(), "optim.name"));
    }
  }
  // With max_epochs and no schedule.total_steps the schedule's length needs the data's batch count.
  if (!recipe.is_null("schedule.total_steps") || recipe.train.max_steps > 0) {
    try {
      resolved_schedule(recipe, 1);
    } catch (const Error& e) {
      problems.push_back(locate_problem(recipe, "schedule.", e.what(), "schedule.name"));
    }
  }
  return problems;
}

namespace {

constexpr int64_t kKeepLastCheckpoints = 2;

// ---- setup ----

// The folder of a run or checkpoint where the task keeps what it learnt from the data (DataSource).
constexpr const char* kArtifactsFolder = "tokenizer";

// The task row's splits, each checked against its description. A loader's error is reported at data.dir.
TaskSplits load_data(const Recipe& recipe, const TaskDescription& description, const DataSource& source) {
  TaskSplits splits;
  try {
    splits = task_named(recipe.data.task).load(source);
    TaskDescription loaded = description;
    if (is_language_model(description)) {  // the ids lie in the vocabulary the row read or built
      MEGA_CHECK(splits.vocabulary, "a language-model row returned no vocabulary");
      loaded.input.vocab_size = splits.vocabulary->size();
    }
    check_examples(loaded, splits.train, "train");
    check_examples(loaded, splits.val, "val");
    check_examples(loaded, splits.test, "test");
  } catch (const Error& e) {
    fail(problem_at(recipe, "data.dir", std::string("task ") + recipe.data.task + ": " + e.what()));
  }
  MEGA_CHECK(!splits.train.empty(), problem_at(recipe, "data.dir", "the task's train split is empty"));
  return splits;
}

int64_t pad_multiple(const TaskModel& model) {
  const MegaConfig& c = model.encoder_config();
  return c.use_chunking ? c.chunk_size : 1;
}

// Fault injection for the kill-and-resume tests: MEGA_FAULT_KILL_AFTER_STEP=N makes the process SIGKILL
// itself right after update N, before that step is logged or saved (a kill while training);
// MEGA_FAULT_KILL_AFTER_STEP=R:N kills only rank R of an MPI job. The kill while saving is
// MEGA_FAULT_KILL_IN_SAVE (recipes/checkpoint.cpp).
std::optional<int64_t> fault_kill_after_step(int rank) {
  const char* value = std::getenv("MEGA_FAULT_KILL_AFTER_STEP");
  if (!value || !*value) return std::nullopt;
  const std::string text = value;
  const size_t colon = text.find(':');
  if (colon == std::string::npos) return std::stoll(text);
  if (std::stoi(text.substr(0, colon)) != rank) return std::nullopt;
  return std::stoll(text.substr(colon + 1));
}

// Every file under `dir` by its path relative to dir's parent ("tokenizer/tokenizer.json"), for the
// checkpoints to carry; nothing when dir does not exist.
std::map<std::string, std::string> folder_files(const fs::path& dir) {
  std::map<std::string, std::string> files;
  if (!fs::is_directory(dir)) return files;
  for (const fs::directory_entry& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    MEGA_CHECK(in.good() || in.eof(), "cannot read '", entry.path().string(), "'");
    files[fs::relative(entry.path(), dir.parent_path()).string()] = std::move(bytes);
  }
  return files;
}

// ---- evaluate ----

EvalResult evaluate(TaskModel& model, const std::vector<SequenceExample>& examples, const Recipe& recipe,
                    const TaskDescription& task, const Vocabulary* vocabulary = nullptr) {
  if (examples.empty()) return {};
  if (is_language_model(task)) {  // the split is one stream, scored as fairseq's eval_lm
    NoGradGuard no_grad;
    const LmMetrics m = evaluate_stream(dynamic_cast<CausalLmModel&>(model), examples[0].ids, eval_length(recipe),
                                        recipe.train.eval_batch_size, *vocabulary);
    return EvalResult{.loss = m.loss, .accuracy = 0, .examples = 1, .perplexity = m.perplexity,
                      .bits_per_byte = m.bits_per_byte, .tokens = m.tokens};
  }
  if (auto* masked_lm = dynamic_cast<MaskedLmModel*>(&model))
    return evaluate_masked_lm(*masked_lm, examples, recipe, task);
  MEGA_CHECK(task.metric == Metric::Accuracy, "[trainer] metric '", metric_name(task.metric), "' is not computed yet");
  model.module().eval();
  NoGradGuard no_grad;
  Rng rng(0);  // eval draws no dropout; a throwaway so the training stream is untouched
  BatchingOptions options;
  options.batch_size = recipe.train.eval_batch_size;
  options.shuffle = false;
  options.bucket_batches = recipe.data.bucket_batches;
  double loss_sum = 0;
  int64_t correct = 0;
  const int64_t labels = task.num_labels;
  std::vector<int64_t> confusion(static_cast<size_t>(labels * labels), 0);  // [truth][prediction]
  std::vector<int64_t> group_total(task.groups.size(), 0), group_correct(task.groups.size(), 0);
  for (const std::vector<int64_t>& indices : epoch_batches(sequence_lengths(examples), options, 0)) {
    Batch batch = make_batch(examples, indices, task.input.pad_id, pad_multiple(model));
    Var logits = model.forward(batch, rng);  // (B, C)
    const int64_t B = logits.size(0), C = logits.size(1);
    loss_sum += cross_entropy(logits, batch.labels).item() * static_cast<double>(B);
    Tensor values = logits.value().to(DType::F32);
    const float* z = values.data<float>();
    const int64_t* y = batch.labels.data<int64_t>();
    for (int64_t b = 0; b < B; ++b) {
      const int64_t predicted = std::max_element(z + b * C, z + (b + 1) * C) - (z + b * C);
      correct += predicted == y[b];
      if (C == labels && y[b] < labels) confusion[static_cast<size_t>(y[b] * labels + predicted)] += 1;
      const int64_t group = examples[static_cast<size_t>(batch.indices[static_cast<size_t>(b)])].group;
      if (group >= 0) {
        group_total[static_cast<size_t>(group)] += 1;
        group_correct[static_cast<size_t>(group)] += predicted == y[b];
      }
    }
  }
  model.module().train();
  const double n = static_cast<double>(examples.size());
  EvalResult result{loss_sum / n, static_cast<double>(correct) / n, static_cast<int64_t>(examples.size())};
  const auto label_name = [&](int64_t label) {
    return label < static_cast<int64_t>(task.label_names.size()) ? task.label_names[static_cast<size_t>(label)]
                                                                  : std::to_string(label);
  };
  for (int64_t label : task.f1_labels) {
    // F1 = 2 TP / (2 TP + FP + FN); 0 when the label is neither predicted nor present.
    int64_t tp = confusion[static_cast<size_t>(label * labels + label)], fp = 0, fn = 0;
    for (int64_t other = 0; other < labels; ++other) {
      if (other == label) continue;
      fp += confusion[static_cast<size_t>(other * labels + label)];
      fn += confusion[static_cast<size_t>(label * labels + other)];
    }
    result.scores["f1_" + label_name(label)] =
        tp + fp + fn > 0 ? 2.0 * static_cast<double>(tp) / static_cast<double>(2 * tp + fp + fn) : 0.0;
  }
  for (size_t g = 0; g < task.groups.size(); ++g)
    if (group_total[g] > 0)
      result.scores[task.groups[g] + "_accuracy"] =
          static_cast<double>(group_correct[g]) / static_cast<double>(group_total[g]);
  return result;
}

nlohmann::json eval_row(int64_t step, const std::string& split, const EvalResult& result, const TaskDescription& task) {
  nlohmann::json row = {{"step", step}, {"split", split}, {split + "_loss", result.loss}};
  if (task.metric == Metric::Accuracy) row[split + "_accuracy"] = result.accuracy;
  if (task.metric == Metric::Perplexity) row[split + "_perplexity"] = result.perplexity;
  if (task.metric == Metric::BitsPerByte) row[split + "_bits_per_byte"] = result.bits_per_byte;
  if (is_language_model(task)) row[split + "_tokens"] = result.tokens;
  for (const auto& [name, value] : result.scores) row[split + "_" + name] = value;
  return row;
}

// "val loss 1.2345  val accuracy 0.5000" (or perplexity, bits per byte), then the task's other scores.
std::string eval_text(const std::string& split, const EvalResult& result, const TaskDescription& task) {
  char line[160];
  const double value = task.metric == Metric::Accuracy     ? result.accuracy
                       : task.metric == Metric::Perplexity ? result.perplexity
                                                           : result.bits_per_byte;
  std::snprintf(line, sizeof line, "%s loss %.4f  %s %s %.4f", split.c_str(), result.loss, split.c_str(),
                metric_name(task.metric), value);
  return line + std::string(result.scores.empty() ? "" : "  ") + format_scores(result);
}

// ---- save ----

void save(CheckpointDir& checkpoints, const TaskModel& model, const Optimizer& optimizer,
          const TrainerState& state, const std::map<std::string, std::string>& files) {
  Checkpoint checkpoint;
  checkpoint.files = files;
  checkpoint.config = model.config_json();
  checkpoint.model = model.module().state_dict();
  checkpoint.optimizer = optimizer.state_dict();
  checkpoint.trainer_state = state.to_json();
  std::optional<int64_t> best = state.best_step >= 0 ? std::optional<int64_t>(state.best_step) : std::nullopt;
  checkpoints.save(state.step, checkpoint, kKeepLastCheckpoints, best);
}

// ---- resume ----

// Restores model and optimizer from a validated checkpoint and checks that its trainer state fits the
// run the recipe describes; errors name the folder and the file.
TrainerState restore(const ResumePoint& point, TaskModel& model, Optimizer& optimizer,
                     const BatchSource& stream, const Recipe& recipe, int64_t total) {
  const std::string& dir = point.dir;
  try {
    model.module().load_state_dict(point.checkpoint.model);
  } catch (const Error& e) {
    fail("checkpoint '", dir, "' does not fit the recipe's model: ", e.what(), " (in ", dir, "/model.safetensors)");
  }
  try {
    optimizer.load_state_dict(point.checkpoint.optimizer);
  } catch (const Error& e) {
    fail("checkpoint '", dir, "': ", e.what(), " (in ", dir, "/optimizer.safetensors)");
  }
  point.state.check_fits((fs::path(dir) / "trainer_state.json").string(), stream,
                         recipe.train.accumulate, total);
  return point.state;
}

// Counts an update skipped for a non-finite loss or gradient; a run that only skips has diverged, and
// saving or evaluating it further would only produce checkpoints of a broken model: it stops.
void count_nonfinite_update(TrainerState& state, bool finite, int64_t limit) {
  if (finite) {
    state.nonfinite_streak = 0;
    return;
  }
  state.skipped_steps += 1;
  state.nonfinite_streak += 1;
  MEGA_CHECK(state.nonfinite_streak < limit, "training diverged: ", state.nonfinite_streak,
             " updates in a row (to step ", state.step, ") had a non-finite loss or gradient and were skipped (",
             state.skipped_steps, " in all); lower optim.lr or set train.grad_clip, then resume from the last "
             "checkpoint (train.max_nonfinite_steps=", limit, " sets this limit)");
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The recipe with train.batch_size made the global batch of `world` ranks, for the batch streams.
Recipe global_batch_recipe(const Recipe& recipe, int world) {
  Recipe global = recipe;
  global.train.batch_size *= world;
  return global;
}

}  // namespace

// ---- The driver ----

TrainSummary train(const Recipe& recipe, const TrainOptions& options) {
  const fs::path run_dir = recipe.output_dir;
  const TrainRecipe& t = recipe.train;
  // Data parallelism (distributed.h): every rank runs this driver on its shard of each global batch of
  // world x train.batch_size; rank 0 alone writes the run folder and evaluates.
  Communicator& comm = Communicator::world();
  const int world = comm.size();
  const bool root = comm.is_root();
  std::optional<RunFolderLock> lock;
  if (root) lock.emplace(run_dir.string());  // one run at a time writes the folder
  CheckpointDir checkpoints(run_dir.string());

  // Resume reads and validates everything (recipe, checkpoint, metrics log) before anything is
  // written: a resume that cannot work leaves the run directory untouched. A broken newest checkpoint
  // is skipped for the newest valid one, with a warning.
  std::optional<ResumePoint> resumed;
  if (options.resume) {
    std::vector<std::string> skipped;
    resumed = newest_valid_checkpoint(checkpoints, skipped);
    for (const std::string& warning : skipped) std::fprintf(stderr, "warning: %s\n", warning.c_str());
    if (resumed) check_resume_recipe(recipe, run_dir.string(), resumed->state.world_size, world);
  } else {
    MEGA_CHECK(checkpoints.list().empty(), "output_dir '", run_dir.string(),
               "' already holds checkpoints: pass --resume to continue that run, or set another output_dir");
  }

  // ---- setup ----
  if (t.threads > 0) set_num_threads(static_cast<int>(t.threads));
  // Everything the recipe alone decides is built first, so its errors come before any data is generated.
  TaskDescription task = describe_task(recipe);
  // What the task learns from the data (a tokenizer) is learnt once per run: a fresh run learns it anew,
  // a resumed one reads it back; every checkpoint carries a copy.
  DataSource source = recipe.data.source;
  source.artifacts_dir = (run_dir / kArtifactsFolder).string();
  if (!resumed && root) fs::remove_all(source.artifacts_dir);
  // Rank 0 reads (generates, learns the tokenizer) first; the others then read what it left.
  const auto load_in_rank_order = [&] {
    if (!root) comm.barrier();
    TaskSplits splits = load_data(recipe, task, source);
    if (root) comm.barrier();
    return splits;
  };
  // A language model's vocabulary (and so its size) comes from its train split: read before the model.
  std::optional<TaskSplits> lm_data;
  if (is_language_model(task)) lm_data = load_in_rank_order();
  MEGA_CHECK(!lm_data || t.max_steps > 0, problem_at(recipe, "train.max_epochs",
                                                     "a language model trains for train.max_steps"));
  std::unique_ptr<TaskModel> model = build_model(recipe, lm_data ? lm_data->vocabulary->size() : 0);
  Rng rng(t.seed);  // init draws its streams first, then every dropout call takes the next one
  model->init_weights(rng);  // the same weights on every rank
  if (!resumed && !recipe.is_null("model.from_pretrained")) start_from_pretrained(recipe, *model);
  if (world > 1) rng = rank_rng(t.seed, comm.rank(), rng.stream_position());  // dropout: (seed, rank, step)
  Optimizer optimizer(rule_groups(model->module().named_parameters(), recipe.optim.group_rules()),
                      recipe.optim.options);
  TaskSplits data = lm_data ? std::move(*lm_data) : load_in_rank_order();
  const Vocabulary* vocabulary = data.vocabulary.get();
  std::map<std::string, std::string> checkpoint_files = folder_files(source.artifacts_dir);
  if (vocabulary) checkpoint_files["dict.txt"] = vocabulary->to_dict_text();
  const std::vector<Var> params = all_params(optimizer.groups());
  BatchingOptions batching;
  batching.batch_size = t.batch_size * world;  // the global batch; each rank trains on its rows
  batching.shuffle = true;
  batching.seed = t.seed;
  batching.bucket_batches = recipe.data.bucket_batches;
  std::unique_ptr<BatchSource> stream;
  if (is_language_model(task))
    stream = std::make_unique<SegmentStream>(&data.train[0].ids, segment_options(global_batch_recipe(recipe, world),
                                                                                   *vocabulary));
  else stream = std::make_unique<BatchStream>(&data.train, batching, task.input.pad_id, pad_multiple(*model));
  const Schedule schedule = resolved_schedule(recipe, stream->batches_per_epoch());
  const int64_t total = total_updates(recipe, stream->batches_per_epoch());

  TrainerState state;
  if (resumed) {
    state = restore(*resumed, *model, optimizer, *stream, recipe, total);
    stream->set_position(state.data);
    rng.set_stream_position(state.rng_stream);
  }
  state.world_size = world;  // this run's, whatever the checkpoint's was
  const fs::path metrics_path = run_dir / "metrics.jsonl";
  comm.barrier();  // every rank has read the run folder before rank 0 writes it
  if (!resumed && root) fs::remove(metrics_path);  // a fresh run starts a fresh log
  // The last check before writing; the other ranks log nowhere.
  std::optional<MetricsLog> metrics;
  if (root) metrics.emplace(metrics_path.string(), resumed ? state.step : -1);
  if (root) write_file_atomically((run_dir / "recipe.yaml").string(), recipe_to_yaml(recipe));
  if (vocabulary && root) write_vocabulary(*vocabulary, run_dir.string());
  if (resumed && root) {
    for (const std::string& dir : resumed->skipped) {
      const std::string aside = checkpoints.set_aside(dir);
      std::fprintf(stderr, "warning: set the unusable checkpoint %s aside as %s\n", dir.c_str(), aside.c_str());
    }
  }
  if (t.tensorboard && root) metrics->add_sink(std::make_unique<TensorBoardSink>((run_dir / "tb").string()));
  std::optional<Progress> progress;
  if (root) progress.emplace(total, state.step, options.terminal);
  if (resumed && root) progress->message("resumed from " + resumed->dir + " at step " + std::to_string(state.step));
  else if (root)
    progress->message("training " + std::to_string(total) + " updates, " +
                     (vocabulary ? std::to_string(data.train[0].ids.size()) + " tokens (vocabulary " +
                                       std::to_string(vocabulary->size()) + ")"
                                 : std::to_string(data.train.size()) + " examples") +
                     ", run directory " + run_dir.string());

  const auto kill_after = fault_kill_after_step(comm.rank());
  std::optional<GradientAllreduce> gradients;
  if (world > 1) gradients.emplace(params, comm);
  const SyncBatchNormScope sync_batch_norm(comm);
  double allreduce_wait_since_log = 0;
  const auto started = std::chrono::steady_clock::now();
  auto log_started = started;
  int64_t tokens_total = 0, tokens_since_log = 0;
  model->module().train();
  std::optional<EvalResult> last_val;  // the final step's, to report without evaluating again

  // ---- train ----
  while (state.step < total) {
    double loss_sum = 0;
    for (int64_t micro = 0; micro < t.accumulate; ++micro) {
      Batch global = stream->next();
      Batch batch = shard_batch(global, comm.rank(), world);
      // This rank's share of the global batch's mean loss (its examples, or a language model's tokens).
      const double share = world == 1 ? 1.0 : shard_weight(batch, global, is_language_model(task));
      Var loss = model->loss(batch, rng);
      (loss * (share / static_cast<double>(t.accumulate))).backward();
      loss_sum += loss.item() * share;
      tokens_since_log += global.tokens;
      tokens_total += global.tokens;
    }
    // The shares' gradients and losses summed over the ranks are those of the whole global batch.
    if (gradients) allreduce_wait_since_log += gradients->reduce(1.0);
    if (world > 1) loss_sum = sum_over_ranks(comm, loss_sum);
    const double loss = loss_sum / static_cast<double>(t.accumulate);
    const double lr = learning_rate(schedule, state.step);  // the rate of update step + 1 (schedule.h)
    const double norm = t.grad_clip > 0 ? clip_grad_norm(params, t.grad_clip) : grad_norm(params);
    // A non-finite gradient would poison every weight: the update is skipped.
    const bool finite = std::isfinite(norm) && std::isfinite(loss);
    if (finite) optimizer.step(lr);
    optimizer.zero_grad();
    state.step += 1;
    state.data = stream->position();
    state.rng_stream = rng.stream_position();
    if (kill_after && state.step == *kill_after) std::raise(SIGKILL);
    count_nonfinite_update(state, finite, t.max_nonfinite_steps);

    if (std::isfinite(loss)) {
      state.loss_since_log += loss;
      state.steps_since_log += 1;
    }
    if (state.step % t.log_interval == 0 || state.step == total) {
      const double seconds = seconds_since(log_started);
      const double tokens_per_second = seconds > 0 ? static_cast<double>(tokens_since_log) / seconds : 0;
      // The mean of the finite losses (NaN, written as null, when every step of the interval was skipped).
      const double mean_loss = state.steps_since_log > 0
                                   ? state.loss_since_log / static_cast<double>(state.steps_since_log)
                                   : std::numeric_limits<double>::quiet_NaN();
      nlohmann::json row = {{"step", state.step},
                            {"epoch", state.data.epoch},
                            {"loss", mean_loss},
                            {"lr", lr},
                            {"grad_norm", norm},
                            {"tokens_per_s", tokens_per_second},
                            {"skipped_steps", state.skipped_steps},
                            {"wall_time", unix_time_now()}};
      if (world > 1) {
        row["world_size"] = world;
        row["global_batch"] = t.batch_size * world;
        row["allreduce_wait_s"] = allreduce_wait_since_log;  // this rank's (rank 0), over the interval
      }
      allreduce_wait_since_log = 0;
      if (root) {
        metrics->write(row);
        progress->update(state.step, mean_loss, lr, tokens_per_second, state.skipped_steps);
      }
      state.loss_since_log = 0;
      state.steps_since_log = 0;
      tokens_since_log = 0;
      log_started = std::chrono::steady_clock::now();
    }

    bool new_best = false;
    // Rank 0 alone evaluates (the others go on to the next allreduce and wait there for it).
    if (root && (state.step % t.eval_interval == 0 || state.step == total)) {
      const EvalResult val = evaluate(*model, data.val, recipe, task, vocabulary);
      last_val = val;
      metrics->write(eval_row(state.step, "val", val, task));
      progress->message("step " + std::to_string(state.step) + "  " + eval_text("val", val, task));
      // The accuracy of NaN logits is an accident of argmax: such an evaluation is never the best. A
      // language model's best is its lowest valid loss.
      const bool better = is_language_model(task)
                              ? state.best_step < 0 || val.loss < state.best_val_loss
                              : val.accuracy > state.best_val_accuracy;
      if (std::isfinite(val.loss) && better) {
        if (is_language_model(task)) state.best_val_loss = val.loss;
        else state.best_val_accuracy = val.accuracy;
        state.best_step = state.step;
        new_best = true;
      }
    }
    // The best model gets a checkpoint of its own, so retention can keep it.
    if (root && (state.step % t.save_interval == 0 || state.step == total || new_best))
      save(checkpoints, *model, optimizer, state, checkpoint_files);
  }
  if (root) progress->finish();

  TrainSummary summary;
  summary.steps = state.step;
  summary.seconds = seconds_since(started);
  summary.tokens_per_second = summary.seconds > 0 ? static_cast<double>(tokens_total) / summary.seconds : 0;
  summary.best_val_accuracy = state.best_val_accuracy;
  summary.best_val_loss = state.best_val_loss;
  summary.metric = task.metric;
  if (!root) return summary;  // rank 0 evaluates and reports
  summary.val = last_val ? *last_val : evaluate(*model, data.val, recipe, task, vocabulary);
  summary.test = evaluate(*model, data.test, recipe, task, vocabulary);
  // A finished run resumed again already logged its test row.
  if (!metrics->has_eval(state.step, "test")) metrics->write(eval_row(state.step, "test", summary.test, task));
  return summary;
}

namespace {

// A checkpoint folder's model, and the recipe's task and data as the checkpoint saw them: its learnt
// tokenizer (read-only), or a language model's vocabulary (dict.txt, which also fixes the task's
// vocabulary size).
struct LoadedCheckpoint {
  std::unique_ptr<TaskModel> model;
  TaskDescription task;
  DataSource source;
};

LoadedCheckpoint load_checkpoint(const Recipe& recipe, const std::string& dir) {
  const fs::path config_path = fs::path(dir) / "config.json", model_path = fs::path(dir) / "model.safetensors";
  MEGA_CHECK(fs::is_directory(dir), "checkpoint '", dir, "' is not a folder");
  const nlohmann::json config = read_json_file(config_path.string());  // names the file; refuses a folder or device
  LoadedCheckpoint loaded;
  loaded.task = describe_task(recipe);
  loaded.source = recipe.data.source;
  loaded.source.artifacts_dir = (fs::path(dir) / kArtifactsFolder).string();
  loaded.source.artifacts_read_only = true;
  try {
    if (is_language_model(loaded.task)) {
      loaded.model = language_model_from_config_json(config);
      const TokenUnit unit = lm_unit_of_config(config);
      loaded.source.vocabulary = std::make_shared<Vocabulary>(read_vocabulary(dir, unit));
      loaded.task.input.vocab_size = loaded.source.vocabulary->size();
      MEGA_CHECK(loaded.task.input.vocab_size == loaded.model->encoder_config().vocab_size, "dict.txt holds ",
                 loaded.task.input.vocab_size, " symbols, the model's vocab_size is ",
                 loaded.model->encoder_config().vocab_size);
    } else {
      loaded.model = task_model_from_config_json(loaded.task.input, config);
    }
  } catch (const Error& e) {
    fail(e.what(), " (in ", config_path.string(), ")");
  }
  try {
    loaded.model->module().load_state_dict(load_safetensors(model_path.string()).tensors);
  } catch (const Error& e) {
    fail(e.what(), " (in ", model_path.string(), ")");
  }
  if (recipe.train.threads > 0) set_num_threads(static_cast<int>(recipe.train.threads));
  return loaded;
}

}  // namespace

std::string format_scores(const EvalResult& result) {
  std::string out;
  for (const auto& [name, value] : result.scores) {
    char text[64];
    std::snprintf(text, sizeof text, "%.4f", value);
    out += (out.empty() ? "" : ", ") + name + " " + text;
  }
  return out;
}

EvalSummary evaluate_checkpoint(const Recipe& recipe, const std::string& dir) {
  const LoadedCheckpoint loaded = load_checkpoint(recipe, dir);
  const TaskDescription& task = loaded.task;
  TaskModel& model = *loaded.model;
  TaskSplits data = load_data(recipe, task, loaded.source);
  EvalSummary summary;
  summary.metric = task.metric;
  summary.val = evaluate(model, data.val, recipe, task, data.vocabulary.get());
  summary.test = evaluate(model, data.test, recipe, task, data.vocabulary.get());
  return summary;
}

Predictions predict_texts(const Recipe& recipe, const std::string& dir, const std::vector<std::string>& texts) {
  const Task& row = task_named(recipe.data.task);
  MEGA_CHECK(row.encode_texts, problem_at(recipe, "data.task", "task " + row.name + " does not read raw text, so it "
                                                               "cannot predict from a text file"));
  const LoadedCheckpoint loaded = load_checkpoint(recipe, dir);
  const TaskDescription& task = loaded.task;
  const DataSource& source = loaded.source;
  TaskModel* model = loaded.model.get();
  std::vector<SequenceExample> examples;
  for (std::vector<int64_t>& ids : row.encode_texts(source, texts)) {
    SequenceExample e;
    e.ids = std::move(ids);
    examples.push_back(std::move(e));
  }
  for (size_t i = 0; i < examples.size(); ++i)
    MEGA_CHECK(!examples[i].ids.empty(), "input ", i + 1, ": the text has no tokens");
  const MegaConfig& config = model->encoder_config();
  Predictions out;
  for (int64_t i = 0; i < config.num_labels(); ++i) {
    auto found = config.id2label.find(std::to_string(i));
    out.label_names.push_back(found != config.id2label.end() ? found->second : std::to_string(i));
  }
  out.rows.resize(examples.size());
  model->module().eval();
  NoGradGuard no_grad;
  Rng rng(0);
  BatchingOptions options;
  options.batch_size = recipe.train.eval_batch_size;
  options.shuffle = false;
  options.bucket_batches = recipe.data.bucket_batches;
  for (const std::vector<int64_t>& indices : epoch_batches(sequence_lengths(examples), options, 0)) {
    Batch batch = make_batch(examples, indices, task.input.pad_id, pad_multiple(*model));
    Tensor logits = model->forward(batch, rng).value().to(DType::F64);  // (B, C)
    const int64_t C = logits.size(1);
    const double* z = logits.data<double>();
    for (size_t b = 0; b < indices.size(); ++b) {
      const double* row_z = z + static_cast<int64_t>(b) * C;
      const double top = *std::max_element(row_z, row_z + C);
      Prediction& p = out.rows[static_cast<size_t>(indices[b])];
      double sum = 0;
      for (int64_t c = 0; c < C; ++c) sum += std::exp(row_z[c] - top);
      for (int64_t c = 0; c < C; ++c) p.probabilities.push_back(std::exp(row_z[c] - top) / sum);
      p.label = std::max_element(row_z, row_z + C) - row_z;
    }
  }
  return out;
}

}  // namespace mega

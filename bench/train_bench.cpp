// `mega bench train`: the full training step (forward, loss, backward, optimizer) of a recipe's model, or
// of the PyTorch baseline harness's config (../shared/baselines/torch_mega/bench_torch.py listops_config),
// on synthetic batches of batch x length = batch tokens. Each row (length, attention) runs in its own
// process, this binary executed again, so that its peak RSS (VmHWM) is that row's alone, as the
// harness's are. A row reports the median step after warm-up, tokens/s, peak RSS, the model's matmul
// FLOPs per token, the fraction of oneDNN's sgemm peak (measured in the same process) that reaches, and
// the per-op breakdown of further profiled steps (autograd/profile.h).
#include <oneapi/dnnl/dnnl.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "autograd/profile.h"
#include "bench/bench.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_file.h"
#include "core/rng.h"
#include "core/threading.h"
#include "nn/init.h"
#include "ops/ema_internal.h"
#include "ops/fft.h"
#include "recipes/recipe.h"
#include "recipes/task_model.h"
#include "recipes/trainer.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace mega::bench {

MegaConfig baseline_mega_config(int64_t length, int64_t chunk) {
  MegaConfig c;
  c.vocab_size = 32;
  c.set_num_labels(10);
  c.num_hidden_layers = 6;
  c.hidden_size = 80;
  c.intermediate_size = 160;
  c.shared_representation_size = 64;
  c.ema_projection_size = 16;
  c.nffn_hidden_size = 160;
  c.normalization_type = NormalizationType::BatchNorm;
  c.attention_activation = AttentionFunction::Softmax;
  c.activation = Activation::Silu;
  c.bidirectional = true;
  c.relative_positional_bias = RelativePositionalBias::Simple;
  c.max_positions = std::max<int64_t>(2048, length);  // the harness's max(2048, len)
  c.use_chunking = chunk > 0;
  c.chunk_size = chunk > 0 ? chunk : -1;
  c.truncation = std::nullopt;
  c.normalize_before_mega = c.normalize_before_ffn = c.use_normalized_ffn = true;
  c.dropout_prob = c.hidden_dropout_prob = 0.1;
  c.attention_probs_dropout_prob = c.nffn_activation_dropout_prob = 0;
  c.add_token_type_embeddings = false;
  c.architectures = {"MegaModel"};
  c.validate();
  return c;
}

double model_flops_per_token(const MegaConfig& c, int64_t length, bool training) {
  const double D = static_cast<double>(c.hidden_size), I = static_cast<double>(c.intermediate_size);
  const double Z = static_cast<double>(c.shared_representation_size), F = static_cast<double>(c.nffn_hidden_size);
  const int64_t keys = c.use_chunking && c.chunk_size > 0 ? std::min(c.chunk_size, length) : length;
  const double projections = 2 * D * I                   // v_proj
                             + 2 * D * (Z + I + 2 * D)   // mx_proj
                             + 2 * I * D;                // h_proj
  const double attention = 2 * static_cast<double>(keys) * (Z + I);  // QK^T and AV
  const double ffn = c.use_normalized_ffn ? 4 * D * F : 0;
  const int64_t kernel = c.truncation ? std::min(*c.truncation, length) : length;
  const int directions = c.bidirectional ? 2 : 1;
  double ema = 0;
  if (ema_auto_path(length, kernel, directions) == EmaPath::Direct) {
    ema = 2.0 * directions * static_cast<double>(kernel) * D;  // every output sums K products per direction
  } else {
    // Per channel and sequence: one real transform of x, one back (2.5 n log2 n each), the complex
    // product (6 per bin, n/2 bins), spread over the L tokens.
    const double n = static_cast<double>(fft::fast_length(length + kernel - 1));
    ema = D * (5 * n * std::log2(n) + 3 * n) / static_cast<double>(length);
  }
  const double forward = static_cast<double>(c.num_hidden_layers) * (projections + attention + ffn + ema);
  return training ? 3 * forward : forward;
}

double sgemm_peak_gflops(int64_t size, int repeats) {
  const int64_t n = size;
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
  double ms = median_ms([&] {
    dnnl_sgemm('N', 'N', n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
  }, repeats);
  return 2.0 * static_cast<double>(n * n * n) / (ms * 1e6);
}

namespace {

struct TrainBenchOptions {
  std::string recipe;
  std::vector<std::string> overrides;
  bool baseline = false;
  std::string lengths = "512,1024,2048,4096";
  int64_t chunk = 0;           // 0: the recipe's chunk size, else 128
  std::string chunking;        // off, on, both; empty: both for the baseline, the recipe's own otherwise
  int64_t batch_tokens = 8192;
  int steps = 3, warmup = 1;
  std::string mode = "train";
  int threads = 0;
  int top = 12;
  std::string json;
};

double peak_rss_mb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

struct BuiltModel {
  std::unique_ptr<TaskModel> model;
  std::vector<ParamGroup> groups;
  OptimizerOptions optimizer;
  double lr = 1e-3;
  double grad_clip = 0;
};

BuiltModel build(const TrainBenchOptions& o, int64_t length, int64_t chunk) {
  BuiltModel b;
  if (o.baseline) {
    // HF's MegaClassificationHead: the first token, dense + tanh, out_proj; AdamW on every parameter.
    LraClassifierOptions options;
    options.encoder = baseline_mega_config(length, chunk);
    options.pooling = Pooling::First;
    options.classifier_layers = 1;
    options.classifier_hidden_size = options.encoder.hidden_size;
    options.classifier_activation = Activation::Tanh;
    options.classifier_dropout = 0.1;
    options.num_labels = 10;
    b.model = make_task_model(TaskInput{.kind = InputKind::Tokens, .vocab_size = 32}, options);
    b.groups = decay_groups(b.model->module().named_parameters(), 0.01, {});
    b.optimizer.kind = OptimizerKind::AdamW;
    return b;
  }
  std::vector<std::string> overrides = o.overrides;
  const Recipe plain = load_recipe(o.recipe, overrides);
  const int64_t positions = plain.get_int("model.max_positions");
  if (positions < length) overrides.push_back("model.max_positions=" + std::to_string(length));
  if (!o.chunking.empty()) {
    overrides.push_back(std::string("model.use_chunking=") + (chunk > 0 ? "true" : "false"));
    overrides.push_back("model.chunk_size=" + std::to_string(chunk > 0 ? chunk : -1));
  }
  const Recipe recipe = load_recipe(o.recipe, overrides);
  b.model = build_model(recipe);
  b.groups = rule_groups(b.model->module().named_parameters(), recipe.optim.group_rules());
  b.optimizer = recipe.optim.options;
  b.lr = recipe.optim.lr;
  b.grad_clip = recipe.train.grad_clip;
  return b;
}

// A batch of `batch` sequences of `length` random tokens (never the padding id), all unmasked.
Batch synthetic_batch(const TaskModel& model, int64_t batch, int64_t length) {
  const MegaConfig& c = model.encoder_config();
  int64_t vocab = c.vocab_size;
  if (const auto* sequence = dynamic_cast<const SequenceClassifierModel*>(&model))
    if (sequence->options().input == LraInput::Pixels) vocab = 256;
  Rng rng(7);
  auto ids = [&](uint64_t stream) {
    Tensor t = Tensor::empty({batch, length}, DType::I64);
    int64_t* p = t.data<int64_t>();
    const int64_t low = std::min<int64_t>(3, vocab - 1);
    for (int64_t i = 0; i < t.numel(); ++i)
      p[i] = low + static_cast<int64_t>(rng.uniform(stream, i) * static_cast<float>(vocab - low)) % (vocab - low);
    return t;
  };
  Batch b;
  b.ids = ids(0);
  b.mask = Tensor::full({batch, length}, 1.0, DType::F32);
  b.labels = Tensor::empty({batch}, DType::I64);
  const int64_t labels = std::max<int64_t>(1, c.num_labels());
  for (int64_t i = 0; i < batch; ++i)
    b.labels.data<int64_t>()[i] = static_cast<int64_t>(rng.uniform(1, i) * static_cast<float>(labels)) % labels;
  if (dynamic_cast<const DualEncoderModel*>(&model)) {
    b.pair_ids = ids(2);
    b.pair_mask = b.mask.clone();
  }
  b.tokens = batch * length * (b.is_pair() ? 2 : 1);
  return b;
}

// One row, in this process: what the parent reads back as JSON.
nlohmann::json run_row(const TrainBenchOptions& o, int64_t length, int64_t chunk) {
  if (o.threads > 0) set_num_threads(o.threads);
  const double peak = sgemm_peak_gflops(1024, 5);
  BuiltModel built = build(o, length, chunk);
  TaskModel& model = *built.model;
  Rng rng(0);
  model.init_weights(rng);
  Optimizer optimizer(built.groups, built.optimizer);
  const std::vector<Var> params = all_params(optimizer.groups());
  const int64_t batch = std::max<int64_t>(1, o.batch_tokens / length);
  const Batch data = synthetic_batch(model, batch, length);
  const bool training = o.mode == "train";
  if (training) model.module().train();
  else model.module().eval();

  double optimizer_s = 0;
  auto step = [&] {
    if (!training) {
      NoGradGuard no_grad;
      model.forward(data, rng);
      return;
    }
    optimizer.zero_grad();
    Var loss = model.loss(data, rng);
    loss.backward();
    const auto update = std::chrono::steady_clock::now();
    if (built.grad_clip > 0) clip_grad_norm(params, built.grad_clip);
    optimizer.step(built.lr);
    optimizer_s += seconds_since(update);
  };
  for (int i = 0; i < o.warmup; ++i) step();
  std::vector<double> times;
  optimizer_s = 0;
  for (int i = 0; i < o.steps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    step();
    times.push_back(seconds_since(start));
  }
  const double optimizer_ms = optimizer_s / o.steps * 1e3;
  // The breakdown from as many steps again, profiled: the timed steps above ran without the profiler.
  set_profiling(true);
  const auto profiled_start = std::chrono::steady_clock::now();
  for (int i = 0; i < o.steps; ++i) step();
  const double profiled_s = seconds_since(profiled_start);
  set_profiling(false);

  const MegaConfig& config = model.encoder_config();
  const double med = median(times);
  const double tokens_per_s = static_cast<double>(batch * length) / med;
  const double flops = model_flops_per_token(config, length, training);
  nlohmann::json ops = nlohmann::json::array();
  for (const OpTime& t : profile_snapshot()) {
    ops.push_back({{"name", t.name},
                   {"forward_ms", t.forward_s / o.steps * 1e3},
                   {"backward_ms", t.backward_s / o.steps * 1e3},
                   {"forward_calls", t.forward_calls / o.steps},
                   {"backward_calls", t.backward_calls / o.steps},
                   {"share_forward", t.forward_s / profiled_s},
                   {"share_backward", t.backward_s / profiled_s},
                   {"share", (t.forward_s + t.backward_s) / profiled_s}});
  }
  return {{"mode", o.mode},
          {"length", length},
          {"batch", batch},
          {"chunking", chunk > 0 || (config.use_chunking && config.chunk_size > 0)},
          {"chunk_size", config.use_chunking ? nlohmann::json(config.chunk_size) : nlohmann::json()},
          {"threads", num_threads()},
          {"steps", o.steps},
          {"warmup", o.warmup},
          {"median_s", med},
          {"times_s", times},
          {"tokens_per_s", tokens_per_s},
          {"peak_rss_mb", peak_rss_mb()},
          {"num_parameters", [&] {
             int64_t n = 0;
             for (const Var& p : params) n += p.numel();
             return n;
           }()},
          {"flops_per_token", flops},
          {"achieved_gflops", flops * tokens_per_s / 1e9},
          {"sgemm_peak_gflops", peak},
          {"sgemm_fraction", flops * tokens_per_s / 1e9 / peak},
          {"optimizer_ms", optimizer_ms},
          {"profiled_step_ms", profiled_s / o.steps * 1e3},
          {"ops", ops}};
}

std::vector<int64_t> parse_lengths(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      size_t used = 0;
      const int64_t v = std::stoll(item, &used);
      MEGA_CHECK(used == item.size() && v > 0, "");
      out.push_back(v);
    } catch (const std::exception&) {
      fail("--lengths: '", item, "' is not a positive integer (in '", text, "')");
    }
  }
  MEGA_CHECK(!out.empty(), "--lengths: no length given");
  return out;
}

void print_row(const nlohmann::json& r, int top) {
  std::printf("%-5s L=%-6lld B=%-4lld %-10s %8.3f s/step %9.0f tok/s  peak %6.0f MB  %.0f MFLOP/token  "
              "%.1f GFLOP/s = %.1f%% of sgemm %.0f GFLOP/s\n",
              r["mode"].get<std::string>().c_str(), static_cast<long long>(r["length"].get<int64_t>()),
              static_cast<long long>(r["batch"].get<int64_t>()),
              r["chunk_size"].is_null() ? "full" : ("chunk " + std::to_string(r["chunk_size"].get<int64_t>())).c_str(),
              r["median_s"].get<double>(), r["tokens_per_s"].get<double>(), r["peak_rss_mb"].get<double>(),
              r["flops_per_token"].get<double>() / 1e6, r["achieved_gflops"].get<double>(),
              100 * r["sgemm_fraction"].get<double>(), r["sgemm_peak_gflops"].get<double>());
  std::printf("    profiled step %.1f ms, optimizer %.1f ms; top ops (ms per step, share of step):\n",
              r["profiled_step_ms"].get<double>(), r["optimizer_ms"].get<double>());
  std::printf("    %-24s %9s %7s %9s %7s\n", "op", "fwd ms", "fwd %", "bwd ms", "bwd %");
  int shown = 0;
  for (const auto& op : r["ops"]) {
    if (shown++ == top) break;
    std::printf("    %-24s %9.2f %6.1f%% %9.2f %6.1f%%\n", op["name"].get<std::string>().c_str(),
                op["forward_ms"].get<double>(), 100 * op["share_forward"].get<double>(),
                op["backward_ms"].get<double>(), 100 * op["share_backward"].get<double>());
  }
  std::fflush(stdout);
}

// Runs this binary again for one row and reads its JSON back.
nlohmann::json run_row_in_child(const std::vector<std::string>& args, int64_t length, int64_t chunk,
                                const fs::path& out) {
  std::vector<std::string> argv = {"mega", "bench", "train"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {"--row", std::to_string(length) + ":" + std::to_string(chunk), "--row-out", out.string()});
  std::vector<char*> c_argv;
  for (std::string& a : argv) c_argv.push_back(a.data());
  c_argv.push_back(nullptr);
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  MEGA_CHECK(pid >= 0, "bench train: fork failed");
  if (pid == 0) {
    execv("/proc/self/exe", c_argv.data());
    std::perror("bench train: execv /proc/self/exe");
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  MEGA_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "bench train: the row L=", length,
             chunk ? " chunk=" + std::to_string(chunk) : std::string(" full"), " failed (status ", status, ")");
  return read_json_file(out.string());
}

}  // namespace

int train_command(const std::vector<std::string>& args) {
  TrainBenchOptions o;
  std::string row, row_out;
  po::options_description described("mega bench train RECIPE [key=value ...] | --baseline-config, options");
  described.add_options()("help,h", "show this help")(
      "baseline-config", po::bool_switch(&o.baseline),
      "the config of ../shared/baselines/torch_mega/bench_torch.py (listops_config), AdamW lr 1e-3 wd 0.01")(
      "lengths", po::value(&o.lengths)->default_value(o.lengths), "sequence lengths, comma-separated")(
      "chunk", po::value(&o.chunk), "chunk size when chunking is on (default: the recipe's, else 128)")(
      "chunking", po::value(&o.chunking), "off, on or both (default: both for --baseline-config, else the recipe's)")(
      "batch-tokens", po::value(&o.batch_tokens)->default_value(o.batch_tokens), "batch x length")(
      "steps", po::value(&o.steps)->default_value(o.steps), "timed steps (median), then as many profiled")(
      "warmup", po::value(&o.warmup)->default_value(o.warmup), "untimed steps first")(
      "mode", po::value(&o.mode)->default_value(o.mode), "train (forward, loss, backward, optimizer) or infer")(
      "threads", po::value(&o.threads), "threads (default: the process default)")(
      "top", po::value(&o.top)->default_value(o.top), "ops shown per row")(
      "json", po::value(&o.json), "also write the rows as JSON");
  po::options_description all;
  all.add(described).add_options()("positional", po::value<std::vector<std::string>>())(
      "row", po::value(&row))("row-out", po::value(&row_out));
  po::positional_options_description positional;
  positional.add("positional", -1);
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(all).positional(positional).run(), vm);
  po::notify(vm);
  std::vector<std::string> words = vm.count("positional") ? vm["positional"].as<std::vector<std::string>>()
                                                          : std::vector<std::string>{};
  if (vm.count("help") || (words.empty() != o.baseline)) {
    std::cout << "usage: mega bench train RECIPE [key=value ...] [options]\n"
                 "       mega bench train --baseline-config [options]\n"
              << described;
    return vm.count("help") ? 0 : 2;
  }
  if (!o.baseline) {
    o.recipe = words[0];
    o.overrides.assign(words.begin() + 1, words.end());
  }
  MEGA_CHECK(o.mode == "train" || o.mode == "infer", "--mode: train or infer, got '", o.mode, "'");
  MEGA_CHECK(o.chunking.empty() || o.chunking == "off" || o.chunking == "on" || o.chunking == "both",
             "--chunking: off, on or both, got '", o.chunking, "'");
  MEGA_CHECK(o.steps >= 1 && o.warmup >= 0 && o.batch_tokens >= 1, "--steps >= 1, --warmup >= 0, --batch-tokens >= 1");
  if (o.baseline && o.chunking.empty()) o.chunking = "both";

  if (!row.empty()) {  // a child: one row
    const size_t colon = row.find(':');
    const int64_t length = std::stoll(row.substr(0, colon)), chunk = std::stoll(row.substr(colon + 1));
    write_file_atomically(row_out, run_row(o, length, chunk).dump());
    return 0;
  }

  int64_t chunk_size = o.chunk;
  if (chunk_size <= 0) {
    chunk_size = 128;
    if (!o.baseline) {
      const Recipe recipe = load_recipe(o.recipe, o.overrides);
      if (recipe.get_int("model.chunk_size") > 0) chunk_size = recipe.get_int("model.chunk_size");
    }
  }
  std::vector<int64_t> chunks;  // 0: full attention
  if (o.chunking == "off" || o.chunking == "both") chunks.push_back(0);
  if (o.chunking == "on" || o.chunking == "both") chunks.push_back(chunk_size);
  if (o.chunking.empty()) chunks.push_back(0);  // as the recipe says (its overrides untouched)
  const std::vector<int64_t> lengths = parse_lengths(o.lengths);
  std::cout << (o.baseline ? "baseline config (bench_torch.py listops_config)" : "recipe " + o.recipe) << ", "
            << o.batch_tokens << " tokens per step, " << o.mode << "\n";
  const fs::path scratch = fs::temp_directory_path() / ("mega_bench_train_" + std::to_string(getpid()));
  fs::create_directories(scratch);
  nlohmann::json rows = nlohmann::json::array();
  try {
    for (int64_t chunk : chunks) {
      for (int64_t length : lengths) {
        nlohmann::json r = run_row_in_child(args, length, chunk, scratch / "row.json");
        print_row(r, o.top);
        rows.push_back(std::move(r));
      }
    }
  } catch (...) {
    fs::remove_all(scratch);
    throw;
  }
  fs::remove_all(scratch);
  if (!o.json.empty()) {
    nlohmann::json doc = {{"what", o.baseline ? "baseline config" : o.recipe},
                          {"batch_tokens", o.batch_tokens},
                          {"rows", rows}};
    write_file_atomically(o.json, doc.dump(1));
  }
  return 0;
}

}  // namespace mega::bench

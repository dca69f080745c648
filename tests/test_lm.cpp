// Language modelling: the loaders (WikiText release files, raw bytes, a corpus folder, SOTU by year) on
// small files written here, the vocabulary and its dict.txt, segment batching and its resumable position,
// evaluation blocks that score every token once, the baselines on a hand-computed corpus, the LM head,
// and a word-level recipe trained, killed, resumed, evaluated and sampled through the `mega` binary.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "data/lm_batching.h"
#include "data/lm_data.h"
#include "data/task.h"
#include "core/safetensors.h"
#include "nn/init.h"
#include "nn/mega_lm.h"
#include "ops/shape.h"
#include "optim/optimizer.h"
#include "recipes/lm_objective.h"
#include "tests/gradcheck_util.h"
#include "tests/process_util.h"

namespace fs = std::filesystem;
using namespace mega;
using mega::testing::error_of;

namespace {

class TempDir {
 public:
  TempDir() : path_(fs::path(::testing::TempDir()) / ("mega_lm_test_" + std::to_string(::getpid()) + "_" +
                                                       std::to_string(counter_++))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

void write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// In the release's form: " = Title = " lines, blank " " lines between paragraphs, <unk> written out.
// The last word holds a byte that is not UTF-8 (0xFF).
const char* kTrain = " = A = \n \n the cat sat on the mat . \n the dog <unk> . \n\n b\xff \n";
const char* kValid = " the cow sat . \n \n";
const char* kTest = "the cat\n";

TEST(LmWikitext, VocabularyIsFairseqsDictionaryAndLinesEndInEos) {
  TempDir dir;
  write(dir.path() / "wiki.train.tokens", kTrain);
  write(dir.path() / "wiki.valid.tokens", kValid);
  write(dir.path() / "wiki.test.tokens", kTest);
  TokenStreams s = load_wikitext(dir.path().string(), WordOptions{});
  const Vocabulary& v = *s.vocabulary;
  // Counts: the 3, = 2, . 2 (first seen before '.': ties keep first appearance), A, cat, sat, on, mat,
  // dog, b\xff once each, in order of appearance; <unk> (once in the text) is the special id 3.
  const std::vector<std::string> expected = {"<s>", "<pad>", "</s>", "<unk>", "the", "=", ".", "A",
                                             "cat", "sat", "on", "mat", "dog", "b\xff"};
  ASSERT_EQ(v.size(), static_cast<int64_t>(expected.size()));
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(v.symbol(static_cast<int64_t>(i)), expected[i]) << i;
  EXPECT_EQ(v.count(Vocabulary::kUnk), 1);
  const int64_t eos = Vocabulary::kEos, unk = Vocabulary::kUnk;
  // Every line ends in </s>, the blank ones too (fairseq's binarizer).
  EXPECT_EQ(s.train, (std::vector<int64_t>{5, 7, 5, eos, eos, 4, 8, 9, 10, 4, 11, 6, eos, 4, 12, unk, 6, eos, eos,
                                           13, eos}));
  EXPECT_EQ(s.valid, (std::vector<int64_t>{4, unk, 9, 6, eos, eos}));  // "cow" is not in train
  EXPECT_EQ(s.test, (std::vector<int64_t>{4, 8, eos}));
  EXPECT_EQ(v.begin_id(), eos);

  TokenStreams skipped = load_wikitext(dir.path().string(), WordOptions{.empty_lines = EmptyLines::Skip});
  EXPECT_EQ(skipped.train.size(), s.train.size() - 2);  // the " " line and the empty one
  EXPECT_EQ(skipped.valid, (std::vector<int64_t>{4, unk, 9, 6, eos}));

  // A cap keeps the most frequent (the specials count), min_count drops the rare; both become <unk>.
  TokenStreams capped = load_wikitext(dir.path().string(), WordOptions{.max_vocab = 6});
  EXPECT_EQ(capped.vocabulary->size(), 6);
  EXPECT_EQ(capped.test, (std::vector<int64_t>{4, unk, eos}));
  TokenStreams frequent = load_wikitext(dir.path().string(), WordOptions{.min_count = 2});
  EXPECT_EQ(frequent.vocabulary->size(), 7);
}

TEST(LmWikitext, MissingFileIsNamed) {
  TempDir dir;
  write(dir.path() / "wiki.train.tokens", kTrain);
  try {
    load_wikitext(dir.path().string(), WordOptions{});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("wiki.valid.tokens"), std::string::npos) << e.what();
  }
}

TEST(LmVocabulary, DictTxtRoundTripsAndBadLinesAreNamed) {
  TempDir dir;
  write(dir.path() / "wiki.train.tokens", kTrain);
  write(dir.path() / "wiki.valid.tokens", kValid);
  write(dir.path() / "wiki.test.tokens", kTest);
  TokenStreams s = load_wikitext(dir.path().string(), WordOptions{});
  write_vocabulary(*s.vocabulary, dir.path().string());
  const std::string text = slurp(dir.path() / "dict.txt");
  EXPECT_EQ(text.substr(0, 12), "the 3\n= 2\n. ");  // fairseq's "word count", specials left out
  Vocabulary back = read_vocabulary(dir.path().string(), TokenUnit::Word);
  ASSERT_EQ(back.size(), s.vocabulary->size());
  for (int64_t i = 0; i < back.size(); ++i) {
    EXPECT_EQ(back.symbol(i), s.vocabulary->symbol(i));
    EXPECT_EQ(back.id(back.symbol(i)), i);
  }
  // Encoding valid with the saved vocabulary gives the same ids.
  TokenStreams again = load_wikitext(dir.path().string(), WordOptions{}, std::make_shared<Vocabulary>(back));
  EXPECT_EQ(again.valid, s.valid);
  EXPECT_EQ(back.decode({4, 8, Vocabulary::kEos, 12}), "the cat\ndog");

  Vocabulary bytes = Vocabulary::bytes();
  EXPECT_EQ(Vocabulary::from_dict_text(bytes.to_dict_text(), TokenUnit::Byte, "b").size(), 256);
  for (const std::string& bad : {std::string("the 4\ncat\n"), std::string("the 4\nthe 2\n"), std::string("a -1\n")}) {
    try {
      Vocabulary::from_dict_text(bad, TokenUnit::Word, "x/dict.txt");
      FAIL() << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("x/dict.txt:"), std::string::npos) << e.what();
    }
  }
}

TEST(LmBytes, RawFileIsCutIntoTrainValidTest) {
  TempDir dir;
  std::string bytes;
  for (int i = 0; i < 40; ++i) bytes += static_cast<char>(i * 7 % 256);
  bytes[3] = static_cast<char>(0xFF);
  write(dir.path() / "enwik8", bytes);
  TokenStreams s = load_raw_bytes((dir.path() / "enwik8").string(), 30, 5, 4);
  ASSERT_EQ(s.train.size(), 30u);
  ASSERT_EQ(s.valid.size(), 5u);
  ASSERT_EQ(s.test.size(), 4u);  // the 40th byte is left out
  EXPECT_EQ(s.train[3], 255);
  EXPECT_EQ(s.valid[0], static_cast<unsigned char>(bytes[30]));
  EXPECT_EQ(s.test[3], static_cast<unsigned char>(bytes[38]));
  EXPECT_EQ(s.vocabulary->size(), 256);
  EXPECT_EQ(s.vocabulary->begin_id(), '\n');
  EXPECT_THROW(load_raw_bytes((dir.path() / "enwik8").string(), 30, 6, 5), Error);
}

TEST(LmCorpus, SplitByFileAndByFraction) {
  TempDir dir;
  write(dir.path() / "a.txt", "one two\nthree\n");
  write(dir.path() / "b.txt", "four five");
  write(dir.path() / "sub" / "c.txt", "six\n");
  write(dir.path() / ".hidden", "never\n");
  CorpusOptions by_file{.unit = TokenUnit::Word, .split = CorpusSplit::ByFile, .valid_fraction = 0.2,
                        .test_fraction = 0.2, .words = {}};
  TokenStreams f = load_text_corpus(dir.path().string(), by_file);
  EXPECT_EQ(f.train.size(), 5u);  // one two </s> three </s>
  EXPECT_EQ(f.valid, (std::vector<int64_t>{Vocabulary::kUnk, Vocabulary::kUnk, Vocabulary::kEos}));
  EXPECT_EQ(f.test, (std::vector<int64_t>{Vocabulary::kUnk, Vocabulary::kEos}));
  CorpusOptions by_fraction{.unit = TokenUnit::Byte, .split = CorpusSplit::ByFraction, .valid_fraction = 0.25,
                            .test_fraction = 0.25, .words = {}};
  TokenStreams b = load_text_corpus(dir.path().string(), by_fraction);
  // "one two\nthree\nfour five\nsix\n" is 28 bytes: 14 / 7 / 7.
  EXPECT_EQ(b.train.size(), 14u);
  EXPECT_EQ(b.valid.size(), 7u);
  EXPECT_EQ(b.test.size(), 7u);
  EXPECT_THROW(load_text_corpus((dir.path() / "none").string(), by_file), Error);
}

TEST(LmSotu, SplitByYear) {
  std::vector<SotuText> addresses = {{1999, "old words\n"}, {2000, "old"}, {2005, "middle"}, {2015, "new new"}};
  TokenStreams s = sotu_streams(addresses, SotuLmOptions{});
  EXPECT_EQ(s.train, (std::vector<int64_t>{4, 5, Vocabulary::kEos, 4, Vocabulary::kEos}));
  EXPECT_EQ(s.valid, (std::vector<int64_t>{Vocabulary::kUnk, Vocabulary::kEos}));
  EXPECT_EQ(s.test.size(), 3u);
  SotuLmOptions bytes;
  bytes.unit = TokenUnit::Byte;
  EXPECT_EQ(sotu_streams(addresses, bytes).valid.size(), 7u);  // "middle\n"
  EXPECT_THROW(sotu_streams({{1999, "x"}}, SotuLmOptions{}), Error);
}

// Segments: one epoch's batches score every token exactly once, each batch has m in range chunks per row,
// the plan is a function of (seed, epoch), and position_after follows next().
TEST(LmBatching, SegmentsCoverTheStreamOncePerEpoch) {
  std::vector<int64_t> stream(1000);
  for (size_t i = 0; i < stream.size(); ++i) stream[i] = static_cast<int64_t>(i % 50) + 4;
  SegmentOptions o{.batch_size = 3, .chunk = 8, .min_chunks = 2, .max_chunks = 4, .seed = 5, .begin_id = 2, .pad_id = 1};
  SegmentStream segments(&stream, o);
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    std::set<int64_t> lengths;
    const int64_t batches = segments.batches_in_epoch(epoch);
    for (int64_t b = 0; b < batches; ++b) {
      EXPECT_EQ(segments.position(), (DataPosition{epoch, b}));
      Batch batch = segments.next();
      const int64_t B = batch.ids.size(0), L = batch.ids.size(1);
      EXPECT_EQ(L % o.chunk, 0);
      EXPECT_GE(L, 16);
      EXPECT_LE(L, 32);
      lengths.insert(L);
      for (int64_t i = 0; i < B * L; ++i) {
        const int64_t target = batch.labels.data<int64_t>()[i];
        if (target == -100) continue;
        // A target is the token after its input: find which stream position it is.
        const int64_t input = batch.ids.data<int64_t>()[i];
        EXPECT_TRUE(input == 2 || (input - 4 + 1) % 50 == target - 4) << input << " -> " << target;
      }
      int64_t scored_here = 0;
      for (int64_t i = 0; i < B * L; ++i) scored_here += batch.labels.data<int64_t>()[i] != -100;
      EXPECT_EQ(scored_here, batch.tokens);
    }
    EXPECT_GT(lengths.size(), 1u);  // m is drawn
    EXPECT_EQ(segments.position(), (DataPosition{epoch + 1, 0}));
  }
  // Exactly once: the plan's rows tile [0, N).
  std::vector<SegmentBatchPlan> plan = segment_epoch(1000, o, 0);
  std::vector<std::pair<int64_t, int64_t>> rows;
  for (const SegmentBatchPlan& b : plan)
    for (int64_t r = 0; r < o.batch_size && b.start + r * b.chunks * o.chunk < 1000; ++r)
      rows.emplace_back(b.start + r * b.chunks * o.chunk, b.chunks * o.chunk);
  std::sort(rows.begin(), rows.end());
  int64_t covered = 0;
  for (auto [start, length] : rows) {
    EXPECT_EQ(start, covered);
    covered = start + length;
  }
  EXPECT_GE(covered, 1000);
  // Resumable: a fresh stream set to a position continues with the same batches.
  SegmentStream a(&stream, o), b(&stream, o);
  for (int i = 0; i < 7; ++i) a.next();
  b.set_position(b.position_after(7));
  EXPECT_EQ(b.position(), a.position());
  Batch x = a.next(), y = b.next();
  EXPECT_TRUE(std::equal(x.ids.data<int64_t>(), x.ids.data<int64_t>() + x.ids.numel(), y.ids.data<int64_t>()));
  EXPECT_EQ(segment_epoch(1000, o, 3).size(), segment_epoch(1000, o, 3).size());
  EXPECT_THROW(b.set_position({0, 1000}), Error);
}

// Hand-counted: a stream of 10 tokens t0..t9 after the context b, blocks of 4, two blocks a batch:
//   block 0  inputs b  t0 t1 t2   targets t0 t1 t2 t3
//   block 1  inputs t3 t4 t5 t6   targets t4 t5 t6 t7
//   block 2  inputs t7 t8 -  -    targets t8 t9 -  -     (padded to 4, ignored)
TEST(LmEvaluation, BlocksScoreEveryTokenOnce) {
  std::vector<int64_t> stream = {10, 11, 12, 13, 14, 15, 16, 17, 18, 19};
  std::vector<Batch> batches = evaluation_blocks(stream, 4, 2, 2, 1, 4);
  ASSERT_EQ(batches.size(), 2u);
  auto row = [](const Tensor& t, int64_t r) {
    return std::vector<int64_t>(t.data<int64_t>() + r * t.size(1), t.data<int64_t>() + (r + 1) * t.size(1));
  };
  EXPECT_EQ(row(batches[0].ids, 0), (std::vector<int64_t>{2, 10, 11, 12}));
  EXPECT_EQ(row(batches[0].labels, 0), (std::vector<int64_t>{10, 11, 12, 13}));
  EXPECT_EQ(row(batches[0].ids, 1), (std::vector<int64_t>{13, 14, 15, 16}));
  EXPECT_EQ(row(batches[0].labels, 1), (std::vector<int64_t>{14, 15, 16, 17}));
  EXPECT_EQ(row(batches[1].ids, 0), (std::vector<int64_t>{17, 18, 1, 1}));
  EXPECT_EQ(row(batches[1].labels, 0), (std::vector<int64_t>{18, 19, -100, -100}));
  EXPECT_EQ(batches[0].tokens + batches[1].tokens, 10);
  EXPECT_EQ(batches[1].mask.data<float>()[2], 0.0f);
}

// Train "a b a b" (after </s>: contexts </s> a b a), V = 6 (the 4 specials, a, b), valid "a a".
//   unigram: p(a) = (2 + 1) / (4 + 6) = 0.3           -> loss -ln 0.3
//   bigram:  p(a | </s>) = (1 + 1) / (1 + 6) = 2/7,  p(a | a) = (0 + 1) / (2 + 6) = 1/8
TEST(LmBaselines, HandComputedCorpus) {
  const std::vector<int64_t> train = {4, 5, 4, 5}, valid = {4, 4};
  LmMetrics u = unigram_baseline(train, valid, 6, Vocabulary::kEos);
  EXPECT_NEAR(u.loss, -std::log(0.3), 1e-12);
  EXPECT_NEAR(u.perplexity, 1 / 0.3, 1e-9);
  EXPECT_EQ(u.tokens, 2);
  LmMetrics b = bigram_baseline(train, valid, 6, Vocabulary::kEos);
  EXPECT_NEAR(b.loss, -(std::log(2.0 / 7) + std::log(1.0 / 8)) / 2, 1e-12);
  EXPECT_NEAR(b.bits_per_byte, b.loss / std::log(2.0), 1e-12);
}

MegaConfig tiny_lm_config(int64_t vocab) {
  MegaConfig c;
  c.vocab_size = vocab;
  c.hidden_size = 16;
  c.num_hidden_layers = 1;
  c.intermediate_size = 32;
  c.nffn_hidden_size = 32;
  c.shared_representation_size = 8;
  c.ema_projection_size = 4;
  c.bidirectional = false;
  c.use_chunking = true;
  c.chunk_size = 4;
  c.max_positions = 64;
  return causal_lm_config(c);
}

// The head's loss is the mean of what score sums, its log-probabilities sum to 1 per position, and the
// model is causal: a position's score does not change with later tokens.
TEST(LmModel, LossScoreAndLogProbsAgree) {
  MegaLanguageModel lm(MegaLmOptions{.config = tiny_lm_config(11)});
  Rng rng(4);
  init_mega_weights(lm, lm.config(), rng);
  lm.eval();
  std::vector<int64_t> stream = {4, 5, 6, 7, 8, 9, 10, 4, 5, 6, 7};
  Batch batch = stream_rows(stream, {0}, 8, 2, 1, 4);
  Var loss = lm.loss(batch.ids, batch.mask, batch.labels, rng);
  LmScore s = lm.score(batch.ids, batch.mask, batch.labels);
  EXPECT_EQ(s.count, 8);
  EXPECT_NEAR(loss.item(), s.nll_sum / 8, 1e-5);
  Tensor lp = lm.log_probs(batch.ids, batch.mask).value();
  for (int64_t i = 0; i < lp.size(0); ++i) {
    double total = 0;
    for (int64_t v = 0; v < 11; ++v) total += std::exp(static_cast<double>(lp.data<float>()[i * 11 + v]));
    EXPECT_NEAR(total, 1.0, 1e-5);
  }
  std::vector<int64_t> changed = stream;
  changed[5] = 4;  // was 9: the input of position 6: positions 0-5 keep their predictions, position 6 changes
  Batch other = stream_rows(changed, {0}, 8, 2, 1, 4);
  Tensor lp2 = lm.log_probs(other.ids, other.mask).value();
  for (int64_t i = 0; i < 6 * 11; ++i) EXPECT_NEAR(lp.data<float>()[i], lp2.data<float>()[i], 1e-6) << i;
  double moved = 0;
  for (int64_t i = 6 * 11; i < 7 * 11; ++i) moved += std::fabs(lp.data<float>()[i] - lp2.data<float>()[i]);
  EXPECT_GT(moved, 1e-4);
}

// ---- The adaptive input and softmax in the model ----

// Bands [0, 8), [8, 16), [16, 24) of a 24-word vocabulary: dims 16, 4, 1.
MegaLmOptions adaptive_lm_options(bool tied) {
  MegaLmOptions o{.config = tiny_lm_config(24)};
  o.config.tie_word_embeddings = false;
  o.input = LmInputKind::AdaptiveInput;
  o.output = LmOutputKind::AdaptiveSoftmax;
  o.adaptive_cutoffs = {8, 16};
  o.tie_adaptive_weights = tied;
  return o;
}

// Every band as input and as target.
const std::vector<int64_t> kBandStream = {4, 9, 17, 5, 20, 12, 6, 23, 4, 10, 18, 7, 4, 9, 17, 2, 13};

Batch band_batch() { return stream_rows(kBandStream, {0, 8}, 8, 2, 1, 4); }

std::map<std::string, Var> parameters_by_name(const Module& m) {
  std::map<std::string, Var> out;
  for (auto& [name, p] : m.named_parameters()) out[name] = p;
  return out;
}

TEST(LmAdaptive, ParametersAreFairseqsUnderTheSeamsWithoutWordEmbeddings) {
  MegaLanguageModel lm(adaptive_lm_options(true));
  const std::map<std::string, Var> p = parameters_by_name(lm);
  EXPECT_FALSE(p.count("mega.embedding_layer.word_embeddings.weight"));
  EXPECT_FALSE(p.count("lm_head.weight"));
  ASSERT_TRUE(p.count("mega.layers.0.mega_layer.ema_gate.damping_factor"));
  ASSERT_TRUE(p.count("adaptive_input.embeddings.2.0.weight"));
  EXPECT_EQ(p.at("adaptive_input.embeddings.2.0.weight").shape(), (Shape{8, 1}));
  EXPECT_EQ(p.at("adaptive_softmax.head.class_proj.weight").shape(), (Shape{2, 16}));
  // Tied: one storage under both names (fairseq's tie_adaptive_weights + tie_adaptive_proj).
  EXPECT_EQ(p.at("adaptive_softmax.head.word_proj.weight").impl(), p.at("adaptive_input.embeddings.0.0.weight").impl());
  for (int tail = 0; tail < 2; ++tail) {
    const std::string t = std::to_string(tail), band = std::to_string(tail + 1);
    EXPECT_EQ(p.at("adaptive_softmax.tail." + t + ".2.weight").impl(),
              p.at("adaptive_input.embeddings." + band + ".0.weight").impl()) << tail;
    EXPECT_EQ(p.at("adaptive_softmax.tail." + t + ".0.weight").impl(),
              p.at("adaptive_input.embeddings." + band + ".1.weight").impl()) << tail;
  }
  EXPECT_EQ(lm.tied_aliases().count("adaptive_softmax.tail.1.2.weight"), 1u);
  MegaLanguageModel untied(adaptive_lm_options(false));
  const std::map<std::string, Var> q = parameters_by_name(untied);
  EXPECT_NE(q.at("adaptive_softmax.tail.0.2.weight").impl(), q.at("adaptive_input.embeddings.1.0.weight").impl());
}

// The loss is the mean of what score sums, and each position's log-probabilities over the whole
// vocabulary sum to 1 and give the scored target's -log p.
TEST(LmAdaptive, LossScoreAndLogProbsAgreeAndSumToOne) {
  MegaLanguageModel lm(adaptive_lm_options(true));
  Rng rng(4);
  lm.init_weights(rng);
  lm.eval();
  const Batch batch = band_batch();
  Var loss = lm.loss(batch.ids, batch.mask, batch.labels, rng);
  const LmScore s = lm.score(batch.ids, batch.mask, batch.labels);
  ASSERT_EQ(s.count, 16);
  EXPECT_NEAR(loss.item(), s.nll_sum / 16, 1e-5);
  const Tensor lp = lm.log_probs(batch.ids, batch.mask).value().to(DType::F64);
  ASSERT_EQ(lp.shape(), (Shape{16, 24}));
  const Tensor y = batch.labels.reshape({-1}).to(DType::I64);
  double nll = 0;
  for (int64_t i = 0; i < 16; ++i) {
    double total = 0;
    for (int64_t v = 0; v < 24; ++v) total += std::exp(lp.data<double>()[i * 24 + v]);
    EXPECT_NEAR(total, 1.0, 1e-5) << i;
    nll -= lp.data<double>()[i * 24 + y.data<int64_t>()[i]];
  }
  EXPECT_NEAR(nll, s.nll_sum, 1e-4);
}

// A tied weight collects the gradient of both of its uses: the untied model with the same values gets
// one part on the input's copy and the other on the softmax's (the projection used transposed).
TEST(LmAdaptive, TiedWeightsGetBothGradients) {
  MegaLanguageModel tied(adaptive_lm_options(true)), untied(adaptive_lm_options(false));
  Rng rng(6);
  tied.init_weights(rng);
  const std::map<std::string, Var> t = parameters_by_name(tied), u = parameters_by_name(untied);
  {
    NoGradGuard no_grad;
    for (auto& [name, p] : u) {
      std::string source = name;
      if (name == "adaptive_softmax.head.word_proj.weight") source = "adaptive_input.embeddings.0.0.weight";
      for (int tail = 0; tail < 2; ++tail) {
        const std::string band = std::to_string(tail + 1), prefix = "adaptive_softmax.tail." + std::to_string(tail);
        if (name == prefix + ".2.weight") source = "adaptive_input.embeddings." + band + ".0.weight";
        if (name == prefix + ".0.weight") source = "adaptive_input.embeddings." + band + ".1.weight";
      }
      const Tensor value = t.at(source).value();
      p.value_mut().copy_from(value.dim() == 2 && value.shape() != p.shape() ? transpose(Var(value), 0, 1).value()
                                                                             : value);
    }
  }
  tied.eval();
  untied.eval();
  const Batch batch = band_batch();
  Var a = tied.loss(batch.ids, batch.mask, batch.labels, rng), b = untied.loss(batch.ids, batch.mask, batch.labels, rng);
  EXPECT_NEAR(a.item(), b.item(), 1e-6);
  a.backward();
  b.backward();
  auto expect_sum = [&](const std::string& input_name, const std::string& softmax_name, bool transposed) {
    const Tensor g = t.at(input_name).grad().to(DType::F64), in = u.at(input_name).grad().to(DType::F64);
    Tensor out = u.at(softmax_name).grad();
    if (transposed) out = transpose(Var(out), 0, 1).value();
    out = out.to(DType::F64);
    ASSERT_EQ(g.shape(), in.shape()) << input_name;
    double both = 0, largest = 0;
    for (int64_t i = 0; i < g.numel(); ++i) {
      const double expected = in.data<double>()[i] + out.data<double>()[i];
      EXPECT_NEAR(g.data<double>()[i], expected, 1e-5 + 1e-4 * std::fabs(expected)) << input_name << " " << i;
      both = std::max(both, std::min(std::fabs(in.data<double>()[i]), std::fabs(out.data<double>()[i])));
      largest = std::max(largest, std::fabs(g.data<double>()[i]));
    }
    EXPECT_GT(both, 0) << input_name << ": an entry with a gradient from each use";
    EXPECT_GT(largest, 0) << input_name;
  };
  expect_sum("adaptive_input.embeddings.0.0.weight", "adaptive_softmax.head.word_proj.weight", false);
  expect_sum("adaptive_input.embeddings.1.0.weight", "adaptive_softmax.tail.0.2.weight", false);
  expect_sum("adaptive_input.embeddings.2.1.weight", "adaptive_softmax.tail.1.0.weight", true);
}

// A few Adam steps on one batch lower the loss.
TEST(LmAdaptive, TrainsAndTheLossFalls) {
  MegaLanguageModel lm(adaptive_lm_options(true));
  Rng rng(8);
  lm.init_weights(rng);
  Optimizer optimizer(decay_groups(lm.named_parameters(), 0.0, {}), OptimizerOptions{});
  const Batch batch = band_batch();
  std::vector<double> losses;
  for (int step = 0; step < 8; ++step) {
    optimizer.zero_grad();
    Var loss = lm.loss(batch.ids, batch.mask, batch.labels, rng);
    losses.push_back(loss.item());
    loss.backward();
    optimizer.step(1e-2);
  }
  EXPECT_LT(losses.back(), losses.front() - 0.2) << losses.front() << " -> " << losses.back();
}

// config.json carries the seams, and a model rebuilt from it with the saved weights scores the same, bit
// for bit.
TEST(LmAdaptive, SavedAndLoadedScoresTheSameBitForBit) {
  TempDir dir;
  MegaLmOptions options = adaptive_lm_options(true);
  options.adaptive_softmax_dropout = 0.1;
  CausalLmModel model(options, TokenUnit::Word);
  Rng rng(9);
  model.init_weights(rng);
  const nlohmann::json config = model.config_json();
  EXPECT_EQ(config["mega_lm"]["input"], "adaptive_input");
  EXPECT_EQ(config["mega_lm"]["output"], "adaptive_softmax");
  EXPECT_EQ(config["mega_lm"]["adaptive_cutoffs"], nlohmann::json::parse("[8, 16]"));
  EXPECT_EQ(config["mega_lm"]["unit"], "word");
  const fs::path weights = dir.path() / "model.safetensors";
  save_safetensors(weights.string(), model.module().state_dict());
  std::unique_ptr<CausalLmModel> loaded = language_model_from_config_json(nlohmann::json::parse(config.dump()));
  const MegaLmOptions& back = loaded->language_model().options();
  EXPECT_EQ(back.adaptive_cutoffs, options.adaptive_cutoffs);
  EXPECT_EQ(back.adaptive_softmax_dropout, 0.1);
  EXPECT_TRUE(back.tie_adaptive_weights);
  loaded->module().load_state_dict(load_safetensors(weights.string()).tensors);
  model.module().eval();
  loaded->module().eval();
  const Batch batch = band_batch();
  const LmScore a = model.score(batch), b = loaded->score(batch);
  EXPECT_EQ(a.count, b.count);
  EXPECT_EQ(a.nll_sum, b.nll_sum);
  // Still tied after loading.
  const std::map<std::string, Var> p = parameters_by_name(loaded->module());
  EXPECT_EQ(p.at("adaptive_softmax.tail.0.2.weight").impl(), p.at("adaptive_input.embeddings.1.0.weight").impl());
  nlohmann::json bad = config;
  bad["mega_lm"]["adaptive_cutoffs"] = "8,16";
  const std::string error = error_of([&] { language_model_from_config_json(bad); });
  EXPECT_NE(error.find("mega_lm.adaptive_cutoffs"), std::string::npos) << error;
}

// ---- End to end through the binary ----

using Result = mega::testing::CommandResult;

struct LmRun {
  TempDir dir;
  fs::path recipe;
  LmRun() {
    std::string train, valid, test;
    const char* words[] = {"the", "union", "is", "strong", "and", "free", "we", "shall", "act", "now"};
    for (int line = 0; line < 120; ++line) {
      std::string text;
      for (int w = 0; w < 6; ++w) text += std::string(" ") + words[(line * 3 + w * 7) % 10];
      (line % 10 == 9 ? (line % 20 == 19 ? test : valid) : train) += text + " \n";
    }
    valid += " unseen words \n";
    write(dir.path() / "data" / "wiki.train.tokens", train);
    write(dir.path() / "data" / "wiki.valid.tokens", valid);
    write(dir.path() / "data" / "wiki.test.tokens", test);
    recipe = dir.path() / "lm.yaml";
    write(recipe, "model:\n"
                  "  head: causal_lm\n  num_hidden_layers: 1\n  hidden_size: 16\n  intermediate_size: 32\n"
                  "  nffn_hidden_size: 32\n  shared_representation_size: 8\n  ema_projection_size: 4\n"
                  "  bidirectional: false\n  use_chunking: true\n  chunk_size: 8\n  max_positions: 64\n"
                  "  normalization_type: layernorm\n  normalize_before_mega: true\n  relative_positional_bias: rotary\n"
                  "  dropout_prob: 0.1\n"
                  "data:\n  task: wikitext\n  dir: " + (dir.path() / "data").string() + "\n"
                  "  segment_chunks_min: 1\n  segment_chunks_max: 3\n"
                  "optim: {name: adamw, lr: 3.0e-3, weight_decay: 0.01}\n"
                  "schedule: {name: linear, warmup_steps: 2}\n"
                  "train: {batch_size: 4, eval_batch_size: 4, max_steps: 12, eval_interval: 6, save_interval: 4,\n"
                  "        log_interval: 1, seed: 3, threads: 1, accumulate: 1}\n"
                  "output_dir: " + (dir.path() / "unused").string() + "\n");
  }
  Result mega(const std::string& arguments, const std::string& environment = "") const {
    return mega::testing::run_mega_command(arguments, dir.path() / "output.txt", environment);
  }
  Result train(const std::string& name, const std::string& extra = "", const std::string& environment = "") const {
    return mega("train " + recipe.string() + " output_dir=" + (dir.path() / name).string() + " " + extra, environment);
  }
  std::vector<std::string> lines(const std::string& name) const {
    std::vector<std::string> out;
    std::ifstream in(dir.path() / name / "metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
      nlohmann::json row = nlohmann::json::parse(line);
      row.erase("wall_time");
      row.erase("tokens_per_s");
      out.push_back(row.dump());
    }
    return out;
  }
};

TEST(LmEndToEnd, TrainsResumesMidStreamEvaluatesAndGenerates) {
  LmRun run;
  Result straight = run.train("straight");
  ASSERT_EQ(straight.exit_code, 0) << straight.output;
  EXPECT_NE(straight.output.find("test loss"), std::string::npos) << straight.output;
  EXPECT_NE(straight.output.find("perplexity"), std::string::npos) << straight.output;
  const std::vector<std::string> reference = run.lines("straight");
  ASSERT_FALSE(reference.empty());
  nlohmann::json last = nlohmann::json::parse(reference.back());
  EXPECT_EQ(last["split"], "test");
  EXPECT_TRUE(last.contains("test_perplexity")) << last.dump();
  EXPECT_FALSE(last.contains("test_accuracy")) << last.dump();
  const fs::path folder = run.dir.path() / "straight";
  EXPECT_TRUE(fs::exists(folder / "dict.txt"));
  EXPECT_TRUE(fs::exists(folder / "checkpoints" / "step-00000012" / "dict.txt"));
  nlohmann::json config = nlohmann::json::parse(slurp(folder / "checkpoints" / "step-00000012" / "config.json"));
  EXPECT_EQ(config["architectures"][0], "MegaForCausalLM");
  EXPECT_EQ(config["mega_lm"]["unit"], "word");
  nlohmann::json state = nlohmann::json::parse(slurp(folder / "checkpoints" / "step-00000012" / "trainer_state.json"));
  EXPECT_GT(state["best_val_loss"].get<double>(), 0);

  // Killed mid-stream after update 7 (a checkpoint at 4), resumed: the same log, bit for bit.
  Result killed = run.train("resumed", "", "MEGA_FAULT_KILL_AFTER_STEP=7");
  EXPECT_EQ(killed.exit_code, 128 + 9) << killed.output;
  Result resumed = run.train("resumed", "--resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(run.lines("resumed"), reference);

  // eval reads the checkpoint's vocabulary and prints the same test numbers.
  Result eval = run.mega("eval " + run.recipe.string() + " --checkpoint " +
                         (folder / "checkpoints" / "step-00000012").string());
  ASSERT_EQ(eval.exit_code, 0) << eval.output;
  char expected[64];
  std::snprintf(expected, sizeof expected, "test loss %.4f", last["test_loss"].get<double>());
  EXPECT_NE(eval.output.find(expected), std::string::npos) << eval.output << " lacks " << expected;

  // generate maps words both ways.
  Result generated = run.mega("generate --model " + (folder / "checkpoints" / "step-00000012").string() +
                              " --prompt 'the union' --max-new-tokens 5 --greedy --ignore-eos");
  ASSERT_EQ(generated.exit_code, 0) << generated.output;
  EXPECT_NE(generated.output.find_first_of("abcdefghijklmnopqrstuvwxyz<"), std::string::npos) << generated.output;

  Result baselines = run.mega("lm-baselines " + run.recipe.string());
  ASSERT_EQ(baselines.exit_code, 0) << baselines.output;
  EXPECT_NE(baselines.output.find("bigram (add-one)"), std::string::npos) << baselines.output;

  // A classification head on an LM task, and max_epochs, are refused naming the key.
  Result head = run.mega("validate " + run.recipe.string() + " model.head=sequence_classification");
  EXPECT_NE(head.exit_code, 0);
  EXPECT_NE(head.output.find("model.head"), std::string::npos) << head.output;
}

// The recipe's adaptive keys: trained, killed and resumed mid-stream bit for bit, evaluated from the
// checkpoint to the same test loss, sampled through the adaptive softmax.
TEST(LmEndToEnd, AdaptiveModelTrainsResumesEvaluatesAndGenerates) {
  LmRun run;
  // The vocabulary: 4 specials and the 10 words of train (valid's "unseen words" read as <unk>).
  const std::string adaptive = "model.adaptive_input=true model.adaptive_softmax_cutoff=[6,10] "
                               "model.tie_adaptive_weights=true model.adaptive_softmax_dropout=0.1";
  Result straight = run.train("adaptive", adaptive);
  ASSERT_EQ(straight.exit_code, 0) << straight.output;
  const std::vector<std::string> reference = run.lines("adaptive");
  ASSERT_FALSE(reference.empty());
  const nlohmann::json last = nlohmann::json::parse(reference.back());
  ASSERT_TRUE(last.contains("test_perplexity")) << last.dump();
  const fs::path checkpoint = run.dir.path() / "adaptive" / "checkpoints" / "step-00000012";
  const nlohmann::json config = nlohmann::json::parse(slurp(checkpoint / "config.json"));
  EXPECT_EQ(config["mega_lm"]["output"], "adaptive_softmax") << config.dump();
  EXPECT_EQ(config["mega_lm"]["adaptive_cutoffs"], nlohmann::json::parse("[6, 10]"));

  Result killed = run.train("adaptive_resumed", adaptive, "MEGA_FAULT_KILL_AFTER_STEP=7");
  EXPECT_EQ(killed.exit_code, 128 + 9) << killed.output;
  Result resumed = run.train("adaptive_resumed", adaptive + " --resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(run.lines("adaptive_resumed"), reference);

  Result eval = run.mega("eval " + run.recipe.string() + " " + adaptive + " --checkpoint " + checkpoint.string());
  ASSERT_EQ(eval.exit_code, 0) << eval.output;
  char expected[64];
  std::snprintf(expected, sizeof expected, "test loss %.4f", last["test_loss"].get<double>());
  EXPECT_NE(eval.output.find(expected), std::string::npos) << eval.output << " lacks " << expected;

  Result generated = run.mega("generate --model " + checkpoint.string() +
                              " --prompt 'the union' --max-new-tokens 5 --seed 3 --ignore-eos");
  ASSERT_EQ(generated.exit_code, 0) << generated.output;
  EXPECT_NE(generated.output.find_first_of("abcdefghijklmnopqrstuvwxyz<"), std::string::npos) << generated.output;

  // Bands the vocabulary (14 symbols) cannot hold are refused once train is read, naming the key.
  Result too_big = run.train("too_big", "model.adaptive_softmax_cutoff=[6,14]");
  EXPECT_NE(too_big.exit_code, 0);
  EXPECT_NE(too_big.output.find("model.adaptive_softmax_cutoff"), std::string::npos) << too_big.output;
  EXPECT_NE(too_big.output.find("below vocab_size = 14"), std::string::npos) << too_big.output;
}

// Bad bands and seams are refused by validate, naming the key; the paper's WikiText-103 recipe sets them.
TEST(LmRecipe, AdaptiveKeysAreCheckedAndWikitext103SetsThem) {
  LmRun run;
  const std::pair<std::string, std::string> refused[] = {
      {"model.adaptive_softmax_cutoff=[10,6]", "model.adaptive_softmax_cutoff"},
      {"model.adaptive_softmax_cutoff=[6,6]", "strictly increasing"},
      {"model.adaptive_softmax_cutoff=[2.5]", "not whole"},
      {"model.adaptive_input=true", "model.adaptive_softmax_cutoff"},
      {"model.tie_adaptive_weights=true model.adaptive_softmax_cutoff=[6]", "model.tie_adaptive_weights"},
  };
  for (const auto& [overrides, expected] : refused) {
    Result r = run.mega("validate " + run.recipe.string() + " " + overrides);
    EXPECT_NE(r.exit_code, 0) << overrides;
    EXPECT_NE(r.output.find(expected), std::string::npos) << overrides << "\n" << r.output;
  }
  // In process: the same message from the model builder, with the vocabulary known.
  const Recipe recipe = load_recipe(run.recipe.string(), {"model.adaptive_softmax_cutoff=[6,40]"});
  const std::string error = error_of([&] { build_language_model(recipe, TokenUnit::Word, 40); });
  EXPECT_NE(error.find("model.adaptive_softmax_cutoff: [adaptive] cutoffs[1] = 40 must be below vocab_size = 40"),
            std::string::npos)
      << error;

  // The paper's recipe sets the adaptive keys (test_task's shipped-recipe check runs `mega validate` on it).
  const Recipe wikitext =
      load_recipe((fs::path(__FILE__).parent_path().parent_path() / "recipes/configs/lm/wikitext103.yaml").string());
  EXPECT_TRUE(wikitext.get_bool("model.adaptive_input"));
  EXPECT_EQ(wikitext.get_floats("model.adaptive_softmax_cutoff"), (std::vector<double>{20000, 60000}));
  EXPECT_EQ(wikitext.get_float("model.adaptive_softmax_factor"), 4);
  EXPECT_TRUE(wikitext.get_bool("model.tie_adaptive_weights"));
}

}  // namespace

// `mega generate` decodes through the cache: greedy continuation must equal the argmax of repeated full
// causal forwards over the growing sequence; sampling is reproducible for a seed.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <memory>
#include <sstream>

#include "core/threading.h"
#include "nn/mega_model.h"

using namespace mega;

namespace {

const std::string kCheckpoint = std::string(MEGA_FIXTURES_DIR) + "/pub18_clm_incremental_chunked_softmax";

std::string run(const std::string& arguments) {
  std::string command = std::string(MEGA_BINARY) + " --threads 1 generate --model " + kCheckpoint + " " + arguments;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  std::string output;
  std::array<char, 256> buffer;
  while (pipe && fgets(buffer.data(), buffer.size(), pipe.get())) output += buffer.data();
  return output;
}

}  // namespace

TEST(MegaGenerate, GreedyThroughTheCacheEqualsRepeatedFullForwards) {
  std::vector<int64_t> ids = {0, 17, 23, 5, 42};
  const int64_t steps = 9;  // crosses chunk boundaries (chunk_size 4)
  set_num_threads(1);
  MegaCheckpoint checkpoint = load_pretrained(kCheckpoint);
  Rng rng(0);
  std::vector<int64_t> expected;
  for (int64_t n = 0; n < steps; ++n) {
    MegaInputs in;
    in.input_ids = Tensor::from(ids, {1, static_cast<int64_t>(ids.size())});
    NoGradGuard no_grad;
    Tensor logits = checkpoint.model->forward(in, rng).logits.value();
    const int64_t V = logits.size(2), last = logits.size(1) - 1;
    int64_t best = 0;
    for (int64_t v = 1; v < V; ++v)
      if (logits.data<float>()[last * V + v] > logits.data<float>()[last * V + best]) best = v;
    expected.push_back(best);
    ids.push_back(best);
  }
  set_num_threads(0);
  std::ostringstream want;
  for (size_t i = 0; i < expected.size(); ++i) want << (i ? " " : "") << expected[i];
  EXPECT_EQ(run("--prompt \"0 17 23 5 42\" --max-new-tokens 9 --greedy --ignore-eos"), want.str() + "\n");
}

TEST(MegaGenerate, SamplingIsReproducibleForASeed) {
  std::string a = run("--prompt \"0 17 23\" --max-new-tokens 6 --temperature 0.8 --top-k 10 --top-p 0.9 --seed 7 --ignore-eos");
  std::string b = run("--prompt \"0 17 23\" --max-new-tokens 6 --temperature 0.8 --top-k 10 --top-p 0.9 --seed 7 --ignore-eos");
  EXPECT_EQ(a, b);
  EXPECT_EQ(std::count(a.begin(), a.end(), ' '), 5) << a;
}

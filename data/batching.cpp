// Padding, length bucketing and seeded shuffling (data/batching.h).
#include "data/batching.h"

#include <algorithm>
#include <numeric>

#include "data/draws.h"

namespace mega {

namespace {
// Streams of the shuffle RNG: two per epoch, one for the example permutation, one for batch order.
uint64_t permutation_stream(int64_t epoch) { return 2 * static_cast<uint64_t>(epoch); }
uint64_t batch_order_stream(int64_t epoch) { return 2 * static_cast<uint64_t>(epoch) + 1; }

template <class T>
void shuffle(std::vector<T>& items, Draws& draws) {  // Fisher-Yates
  for (int64_t i = static_cast<int64_t>(items.size()) - 1; i > 0; --i) std::swap(items[i], items[draws.below(i + 1)]);
}
}  // namespace

namespace {
// Pads one side of a batch: `sequence(example)` picks the sequence (the first or a pair's second).
template <class Pick>
void pad_side(const std::vector<SequenceExample>& examples, const std::vector<int64_t>& indices, int64_t pad_id,
              int64_t pad_to_multiple, Pick sequence, Tensor& ids_out, Tensor& mask_out, int64_t& tokens) {
  int64_t longest = 1;
  for (int64_t i : indices) longest = std::max<int64_t>(longest, static_cast<int64_t>(sequence(examples[i]).size()));
  const int64_t rows = static_cast<int64_t>(indices.size());
  const int64_t length = (longest + pad_to_multiple - 1) / pad_to_multiple * pad_to_multiple;
  ids_out = Tensor::full({rows, length}, static_cast<double>(pad_id), DType::I64);
  mask_out = Tensor::zeros({rows, length});
  int64_t* ids = ids_out.data<int64_t>();
  float* mask = mask_out.data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<int64_t>& seq = sequence(examples[indices[r]]);
    std::copy(seq.begin(), seq.end(), ids + r * length);
    std::fill(mask + r * length, mask + r * length + seq.size(), 1.0f);
    tokens += static_cast<int64_t>(seq.size());
  }
}
}  // namespace

Batch make_batch(const std::vector<SequenceExample>& examples, const std::vector<int64_t>& indices, int64_t pad_id,
                 int64_t pad_to_multiple) {
  MEGA_CHECK(!indices.empty(), "[make_batch] no examples");
  MEGA_CHECK(pad_to_multiple >= 1, "[make_batch] pad_to_multiple must be >= 1, got ", pad_to_multiple);
  for (int64_t i : indices)
    MEGA_CHECK(i >= 0 && i < static_cast<int64_t>(examples.size()), "[make_batch] example ", i, " of ",
               examples.size());
  const bool pair = !examples[indices[0]].pair_ids.empty();
  for (int64_t i : indices)
    MEGA_CHECK(examples[i].pair_ids.empty() != pair, "[make_batch] example ", i,
               pair ? " lacks the second sequence of a pair" : " has a second sequence in a batch of single ones");
  Batch batch;
  batch.indices = indices;
  pad_side(examples, indices, pad_id, pad_to_multiple, [](const SequenceExample& e) -> const auto& { return e.ids; },
           batch.ids, batch.mask, batch.tokens);
  if (pair)
    pad_side(examples, indices, pad_id, pad_to_multiple,
             [](const SequenceExample& e) -> const auto& { return e.pair_ids; }, batch.pair_ids, batch.pair_mask,
             batch.tokens);
  batch.labels = Tensor::empty({static_cast<int64_t>(indices.size())}, DType::I64);
  for (size_t r = 0; r < indices.size(); ++r) batch.labels.data<int64_t>()[r] = examples[indices[r]].label;
  return batch;
}

std::vector<int64_t> sequence_lengths(const std::vector<SequenceExample>& examples) {
  std::vector<int64_t> lengths;
  lengths.reserve(examples.size());
  for (const SequenceExample& e : examples)
    lengths.push_back(static_cast<int64_t>(std::max(e.ids.size(), e.pair_ids.size())));
  return lengths;
}

std::vector<std::vector<int64_t>> epoch_batches(const std::vector<int64_t>& lengths, const BatchingOptions& options,
                                                int64_t epoch) {
  MEGA_CHECK(options.batch_size >= 1, "[batching] batch_size must be >= 1, got ", options.batch_size);
  MEGA_CHECK(options.bucket_batches >= 1, "[batching] bucket_batches must be >= 1, got ", options.bucket_batches);
  const int64_t n = static_cast<int64_t>(lengths.size());
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  if (options.shuffle) {
    Draws draws(options.seed, permutation_stream(epoch));
    shuffle(order, draws);
  }
  std::vector<std::vector<int64_t>> batches;
  const int64_t pool = options.batch_size * options.bucket_batches;
  for (int64_t begin = 0; begin < n; begin += pool) {
    auto first = order.begin() + begin, last = order.begin() + std::min(n, begin + pool);
    if (options.bucket_batches > 1)
      std::stable_sort(first, last, [&](int64_t a, int64_t b) { return lengths[a] < lengths[b]; });
    for (auto it = first; it < last; it += std::min<int64_t>(options.batch_size, last - it)) {
      auto end = it + std::min<int64_t>(options.batch_size, last - it);
      batches.emplace_back(it, end);
    }
  }
  if (options.drop_last && !batches.empty() && static_cast<int64_t>(batches.back().size()) < options.batch_size)
    batches.pop_back();
  if (options.shuffle) {
    Draws draws(options.seed, batch_order_stream(epoch));
    shuffle(batches, draws);
  }
  return batches;
}

BatchStream::BatchStream(const std::vector<SequenceExample>* examples, BatchingOptions options, int64_t pad_id,
                         int64_t pad_to_multiple)
    : examples_(examples), options_(options), pad_id_(pad_id), pad_to_multiple_(pad_to_multiple) {
  MEGA_CHECK(examples_ && !examples_->empty(), "[batching] an empty dataset");
  lengths_ = sequence_lengths(*examples_);
  // The count does not depend on the epoch: pools are cut the same way whatever the permutation.
  BatchingOptions unshuffled = options_;
  unshuffled.shuffle = false;
  batches_per_epoch_ = static_cast<int64_t>(epoch_batches(lengths_, unshuffled, 0).size());
  MEGA_CHECK(batches_per_epoch_ > 0, "[batching] ", examples_->size(), " examples make no batch of ",
             options_.batch_size, " with drop_last");
}

void BatchStream::set_position(DataPosition position) {
  MEGA_CHECK(position.epoch >= 0 && position.batch >= 0 && position.batch < batches_per_epoch(),
             "[batching] position (epoch ", position.epoch, ", batch ", position.batch, ") outside an epoch of ",
             batches_per_epoch(), " batches");
  position_ = position;
}

Batch BatchStream::next() {
  if (plan_epoch_ != position_.epoch) {
    plan_ = epoch_batches(lengths_, options_, position_.epoch);
    plan_epoch_ = position_.epoch;
  }
  Batch batch = make_batch(*examples_, plan_[position_.batch], pad_id_, pad_to_multiple_);
  if (++position_.batch == static_cast<int64_t>(plan_.size())) position_ = {position_.epoch + 1, 0};
  return batch;
}

}  // namespace mega

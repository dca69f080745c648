// Segments and evaluation blocks of a token stream (data/lm_batching.h).
#include "data/lm_batching.h"

#include <algorithm>

#include "core/error.h"
#include "data/draws.h"

namespace mega {

namespace {

constexpr int64_t kIgnore = -100;  // cross_entropy's ignore_index

// Streams of the segment RNG: two per epoch (the chunk counts, then the batch order), apart from
// BatchStream's, which only ever reads one seed's streams 0, 1, 2, ...: these start at 2^62.
constexpr uint64_t kSegmentStreams = uint64_t{1} << 62;
uint64_t chunks_stream(int64_t epoch) { return kSegmentStreams + 2 * static_cast<uint64_t>(epoch); }
uint64_t order_stream(int64_t epoch) { return kSegmentStreams + 2 * static_cast<uint64_t>(epoch) + 1; }

}  // namespace

Batch stream_rows(const std::vector<int64_t>& stream, const std::vector<int64_t>& starts, int64_t length,
                  int64_t begin_id, int64_t pad_id, int64_t pad_to_multiple) {
  const int64_t n = static_cast<int64_t>(stream.size());
  const int64_t B = static_cast<int64_t>(starts.size());
  const int64_t L = (length + pad_to_multiple - 1) / pad_to_multiple * pad_to_multiple;
  Batch batch;
  batch.ids = Tensor::empty({B, L}, DType::I64);
  batch.labels = Tensor::empty({B, L}, DType::I64);
  batch.mask = Tensor::zeros({B, L}, DType::F32);
  int64_t* ids = batch.ids.data<int64_t>();
  int64_t* targets = batch.labels.data<int64_t>();
  float* mask = batch.mask.data<float>();
  for (int64_t r = 0; r < B; ++r) {
    const int64_t s = starts[static_cast<size_t>(r)];
    MEGA_CHECK(s >= 0 && s < n, "[lm_batching] row start ", s, " outside the stream of ", n, " tokens");
    for (int64_t j = 0; j < L; ++j) {
      const int64_t at = s + j;  // the input x[at] predicts x[at + 1] = stream[at]
      const bool scored = j < length && at < n;
      ids[r * L + j] = !scored ? pad_id : at == 0 ? begin_id : stream[static_cast<size_t>(at - 1)];
      targets[r * L + j] = scored ? stream[static_cast<size_t>(at)] : kIgnore;
      mask[r * L + j] = scored ? 1.0f : 0.0f;
      batch.tokens += scored;
    }
  }
  return batch;
}

std::vector<SegmentBatchPlan> segment_epoch(int64_t stream_tokens, const SegmentOptions& o, int64_t epoch) {
  MEGA_CHECK(o.batch_size >= 1 && o.chunk >= 1 && o.min_chunks >= 1 && o.min_chunks <= o.max_chunks,
             "[lm_batching] need batch_size >= 1, chunk >= 1 and 1 <= min_chunks <= max_chunks, got ", o.batch_size,
             ", ", o.chunk, ", ", o.min_chunks, ", ", o.max_chunks);
  MEGA_CHECK(stream_tokens >= 1, "[lm_batching] an empty token stream");
  std::vector<SegmentBatchPlan> plan;
  Draws chunks(o.seed, chunks_stream(epoch));
  for (int64_t start = 0; start < stream_tokens;) {
    const int64_t m = o.min_chunks + chunks.below(o.max_chunks - o.min_chunks + 1);
    plan.push_back({start, m});
    start += o.batch_size * m * o.chunk;
  }
  Draws order(o.seed, order_stream(epoch));
  for (size_t i = plan.size(); i > 1; --i)  // Fisher-Yates
    std::swap(plan[i - 1], plan[static_cast<size_t>(order.below(static_cast<int64_t>(i)))]);
  return plan;
}

SegmentStream::SegmentStream(const std::vector<int64_t>* stream, SegmentOptions options)
    : stream_(stream), options_(options) {
  MEGA_CHECK(stream_ && !stream_->empty(), "[lm_batching] an empty token stream");
  plan(0);  // checks the options
}

const std::vector<SegmentBatchPlan>& SegmentStream::plan(int64_t epoch) const {
  if (plan_epoch_ != epoch) {
    plan_ = segment_epoch(static_cast<int64_t>(stream_->size()), options_, epoch);
    plan_epoch_ = epoch;
  }
  return plan_;
}

int64_t SegmentStream::batches_in_epoch(int64_t epoch) const {
  // Only the chunk counts decide the count; the order is not needed.
  int64_t count = 0;
  Draws chunks(options_.seed, chunks_stream(epoch));
  for (int64_t start = 0; start < static_cast<int64_t>(stream_->size()); ++count)
    start += options_.batch_size * options_.chunk *
             (options_.min_chunks + chunks.below(options_.max_chunks - options_.min_chunks + 1));
  return count;
}

DataPosition SegmentStream::position_after(int64_t batches) const {
  DataPosition p;
  for (int64_t in_epoch = batches_in_epoch(0); batches >= in_epoch; in_epoch = batches_in_epoch(p.epoch)) {
    batches -= in_epoch;
    p.epoch += 1;
  }
  p.batch = batches;
  return p;
}

void SegmentStream::set_position(DataPosition position) {
  MEGA_CHECK(position.epoch >= 0 && position.batch >= 0 && position.batch < batches_in_epoch(position.epoch),
             "[lm_batching] position (epoch ", position.epoch, ", batch ", position.batch, ") outside that epoch's ",
             batches_in_epoch(position.epoch), " batches");
  position_ = position;
}

Batch SegmentStream::next() {
  const std::vector<SegmentBatchPlan>& batches = plan(position_.epoch);
  const SegmentBatchPlan& b = batches[static_cast<size_t>(position_.batch)];
  const int64_t length = b.chunks * options_.chunk;
  std::vector<int64_t> starts;
  for (int64_t r = 0; r < options_.batch_size; ++r) {
    const int64_t s = b.start + r * length;
    if (s >= static_cast<int64_t>(stream_->size())) break;  // the stream's last batch may have fewer rows
    starts.push_back(s);
  }
  Batch batch = stream_rows(*stream_, starts, length, options_.begin_id, options_.pad_id);
  if (++position_.batch == static_cast<int64_t>(batches.size())) position_ = {position_.epoch + 1, 0};
  return batch;
}

std::vector<Batch> evaluation_blocks(const std::vector<int64_t>& stream, int64_t length, int64_t batch_size,
                                     int64_t begin_id, int64_t pad_id, int64_t pad_to_multiple) {
  MEGA_CHECK(length >= 1 && batch_size >= 1, "[lm_batching] eval length and batch size must be >= 1");
  std::vector<Batch> batches;
  std::vector<int64_t> starts;
  const int64_t n = static_cast<int64_t>(stream.size());
  for (int64_t s = 0; s < n; s += length) {
    starts.push_back(s);
    if (static_cast<int64_t>(starts.size()) == batch_size || s + length >= n) {
      batches.push_back(stream_rows(stream, starts, length, begin_id, pad_id, pad_to_multiple));
      starts.clear();
    }
  }
  return batches;
}

}  // namespace mega

// Batches of sequences for classification: padding, bucketing by length and seeded shuffling with a
// resumable position. Shapes: B batch, L the longest sequence in the batch (rounded up to
// pad_to_multiple, e.g. Mega's chunk size), L2 the same for the second sequences of a pair task.
// A step is a token id, or for a pixel task an intensity 0-255 (padded with 0; the mask tells real steps
// from padding). A pair task (Retrieval) carries a second sequence per example; each of the two is padded
// on its own, and bucketing sorts examples by the longer of the two.
//
// An epoch's batches are a pure function of (seed, epoch): the examples are permuted, cut into pools of
// `bucket_batches` batches, each pool is sorted by length and cut into batches (so a batch holds
// sequences of similar length), and the batches' order is shuffled. The position a trainer checkpoints
// is (epoch, batch index), and resuming there replays exactly the batches that were left.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace mega {

struct SequenceExample {
  std::vector<int64_t> ids;       // token ids, or pixel intensities 0-255
  int64_t label = 0;
  std::vector<int64_t> pair_ids{};  // a pair task's second sequence; empty for single-sequence tasks
  int64_t group{-1};  // the subset it is reported in (TaskDescription::groups, e.g. hard-ham), -1 none
};

struct Batch {
  Tensor ids;     // (B, L) I64, pad_id after each sequence
  Tensor mask;    // (B, L) F32, 1 for a token, 0 for padding
  Tensor labels;  // (B) I64
  // A pair batch only (its examples have pair_ids); undefined tensors otherwise.
  Tensor pair_ids;   // (B, L2) I64
  Tensor pair_mask;  // (B, L2) F32
  std::vector<int64_t> indices;  // which examples, in row order
  int64_t tokens = 0;            // non-padding steps, both sequences of a pair counted
  bool is_pair() const { return pair_ids.defined(); }
};

// Pads the given examples into one batch. The batch is a pair batch when its first example has pair_ids;
// then every example must have them.
Batch make_batch(const std::vector<SequenceExample>& examples, const std::vector<int64_t>& indices,
                 int64_t pad_id = 0, int64_t pad_to_multiple = 1);

struct BatchingOptions {
  int64_t batch_size = 32;
  bool shuffle = true;          // false: examples in file order (pools still sorted by length)
  uint64_t seed = 0;
  int64_t bucket_batches = 50;  // batches per length-sorted pool; 1 = no bucketing
  bool drop_last = false;       // drop the epoch's final short batch (of its last pool)
};

struct DataPosition {
  int64_t epoch = 0;
  int64_t batch = 0;  // next batch within the epoch
  bool operator==(const DataPosition&) const = default;
};

// Each example's length for bucketing: its sequence's, or the longer of a pair's two.
std::vector<int64_t> sequence_lengths(const std::vector<SequenceExample>& examples);

// The example indices of each batch of `epoch`, given every example's length. For evaluation, use
// shuffle = false and epoch 0: a fixed order, still bucketed so batches pad little.
std::vector<std::vector<int64_t>> epoch_batches(const std::vector<int64_t>& lengths, const BatchingOptions& options,
                                                int64_t epoch);

// What a training loop draws batches from, epoch after epoch: examples (BatchStream) or the segments of
// a token stream (SegmentStream, data/lm_batching.h).
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual Batch next() = 0;  // the batch at position(), then advances (into the next epoch after the last)
  virtual DataPosition position() const = 0;
  virtual void set_position(DataPosition position) = 0;  // resume; the batch index must lie within its epoch
  virtual int64_t batches_per_epoch() const = 0;  // a SegmentStream's vary by epoch: epoch 0's
  // Where drawing `batches` batches from the start leads: a checkpoint's position must be there.
  virtual DataPosition position_after(int64_t batches) const = 0;
};

// Endless iteration over a dataset, epoch after epoch, for a training loop. `examples` must outlive it.
class BatchStream : public BatchSource {
 public:
  BatchStream(const std::vector<SequenceExample>* examples, BatchingOptions options, int64_t pad_id = 0,
              int64_t pad_to_multiple = 1);
  Batch next() override;
  DataPosition position() const override { return position_; }
  void set_position(DataPosition position) override;
  int64_t batches_per_epoch() const override { return batches_per_epoch_; }
  DataPosition position_after(int64_t batches) const override {
    return {batches / batches_per_epoch_, batches % batches_per_epoch_};
  }

 private:
  const std::vector<SequenceExample>* examples_;
  BatchingOptions options_;
  int64_t pad_id_, pad_to_multiple_;
  std::vector<int64_t> lengths_;
  int64_t batches_per_epoch_ = 0;
  DataPosition position_;
  int64_t plan_epoch_ = -1;
  std::vector<std::vector<int64_t>> plan_;  // batches of plan_epoch_
};

}  // namespace mega

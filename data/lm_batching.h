// Batches of a token stream for a causal language model: training segments of a random number of chunks,
// and the consecutive blocks fairseq's eval_lm scores. Shapes: B rows, L = the row length (a multiple of
// the chunk size).
//
// A split's stream t_0 .. t_{N-1} is read after a context token b (Vocabulary::begin_id): the sequence
// x = b, t_0, ..., t_{N-1}. A row starting at s of length L holds inputs x[s .. s+L) and targets
// x[s+1 .. s+L+1), so rows that follow each other score every token t_i exactly once; targets past the
// stream's end are -100 (ignored), their inputs pad_id with mask 0. (fairseq's TokenBlockDataset with
// break_mode none reads its stream after eos the same way.)
//
// Training (the Mega paper, Sec. 4.3): the stream is walked from its start; each batch draws its number of
// chunks m in [min_chunks, max_chunks] (uniform, from the seeded counter-based RNG) and takes the next
// B rows of m * chunk tokens, one after another; the epoch's batches are then shuffled. An epoch's plan is
// a pure function of (seed, epoch), so the position (epoch, batch) is all a checkpoint needs; the number
// of batches differs from epoch to epoch with the drawn m.
#pragma once
#include <cstdint>
#include <vector>

#include "data/batching.h"

namespace mega {

struct SegmentOptions {
  int64_t batch_size = 8;  // rows per batch
  int64_t chunk = 128;     // the model's chunk size (a row is a whole number of chunks)
  int64_t min_chunks = 1, max_chunks = 1;
  uint64_t seed = 0;
  int64_t begin_id = 0;  // the context before the stream's first token
  int64_t pad_id = 0;
};

// Rows at `starts` (positions in x) of `length` tokens each: ids and mask (B, L), labels the targets
// (B, L) I64 with -100 past the end; tokens = the scored targets.
Batch stream_rows(const std::vector<int64_t>& stream, const std::vector<int64_t>& starts, int64_t length,
                  int64_t begin_id, int64_t pad_id, int64_t pad_to_multiple = 1);

struct SegmentBatchPlan {
  int64_t start = 0;   // of the first row, in x
  int64_t chunks = 0;  // m: each row holds m * chunk tokens
};

// The batches of `epoch` in training order.
std::vector<SegmentBatchPlan> segment_epoch(int64_t stream_tokens, const SegmentOptions& options, int64_t epoch);

class SegmentStream : public BatchSource {
 public:
  SegmentStream(const std::vector<int64_t>* stream, SegmentOptions options);  // `stream` must outlive it
  Batch next() override;
  DataPosition position() const override { return position_; }
  void set_position(DataPosition position) override;
  int64_t batches_per_epoch() const override { return batches_in_epoch(0); }
  DataPosition position_after(int64_t batches) const override;
  int64_t batches_in_epoch(int64_t epoch) const;

 private:
  const std::vector<SegmentBatchPlan>& plan(int64_t epoch) const;
  const std::vector<int64_t>* stream_;
  SegmentOptions options_;
  DataPosition position_;
  mutable int64_t plan_epoch_ = -1;
  mutable std::vector<SegmentBatchPlan> plan_;
};

// fairseq eval_lm's blocks (context window 0): x cut into consecutive blocks of `length`, grouped
// `batch_size` blocks a batch, in order; every token of the stream is a target exactly once.
std::vector<Batch> evaluation_blocks(const std::vector<int64_t>& stream, int64_t length, int64_t batch_size,
                                     int64_t begin_id, int64_t pad_id, int64_t pad_to_multiple);

}  // namespace mega

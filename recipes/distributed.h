// Data-parallel training over MPI (Open MPI from Debian). `mpirun -np N mega train RECIPE` starts N ranks;
// each computes the gradients of its shard of every global batch and the gradients are summed with MPI
// allreduce. Without mpirun the communicator has one rank, no MPI call is made, and the trainer is the
// single-process trainer, unchanged.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/variable.h"
#include "core/rng.h"
#include "data/batching.h"

namespace mega {

// The job's ranks (MPI_COMM_WORLD). MPI is initialised on first use when the process was started by
// mpirun (Open MPI's OMPI_COMM_WORLD_SIZE is set) and finalised at exit.
class Communicator {
 public:
  static Communicator& world();
  int size() const { return size_; }
  int rank() const { return rank_; }
  bool is_root() const { return rank_ == 0; }

  void allreduce_sum(float* data, size_t count);
  void allreduce_sum(double* data, size_t count);
  void barrier();
  void broadcast(std::string& bytes, int root = 0);  // resized on the other ranks
  // Ends the whole job at once (MPI_Abort): no rank is left waiting in a collective for a dead one.
  [[noreturn]] void abort(int code);

  // A non-blocking float sum in place; wait() completes it. One handle per buffer in flight.
  struct Pending {
    void* request = nullptr;  // MPI_Request, kept opaque so only distributed.cpp sees mpi.h
  };
  Pending start_allreduce_sum(float* data, size_t count);
  void wait(Pending& pending);

  ~Communicator();

 private:
  Communicator();
  int size_ = 1, rank_ = 0;
  bool initialised_ = false;
};

// Rows [begin, end) of a global batch: rank r of n takes rows [r B / n, (r+1) B / n), so every rank of the
// same step sees the same padded length as the one-process run of the whole batch.
struct ShardRange {
  int64_t begin = 0, end = 0;
};
ShardRange shard_rows(int64_t rows, int rank, int world_size);
Batch shard_batch(const Batch& batch, int rank, int world_size);

// Sums the parameters' gradients over the ranks in buckets of about bucket_bytes (parameters in reverse
// order of registration, the order backward finishes them), each bucket one non-blocking allreduce, and
// scales the sums by 1 / divisor. A parameter without a gradient on this rank contributes zeros.
class GradientAllreduce {
 public:
  GradientAllreduce(std::vector<Var> params, Communicator& comm, size_t bucket_bytes = size_t{1} << 20);
  // Returns the seconds spent waiting for the reductions.
  double reduce(double divisor);
  const std::vector<std::vector<size_t>>& buckets() const { return buckets_; }  // indices into params

 private:
  std::vector<Var> params_;
  Communicator& comm_;
  std::vector<std::vector<size_t>> buckets_;
  std::vector<std::vector<float>> buffers_;
};

// Groups parameters of the given element counts (F32) into buckets of about bucket_bytes, from the last
// parameter to the first; a parameter larger than a bucket gets one of its own.
std::vector<std::vector<size_t>> gradient_buckets(const std::vector<int64_t>& numels, size_t bucket_bytes);

// Installs the SyncBatchNorm hook (ops/norm.h: batch statistics summed over the ranks) for its scope
// when there are several ranks; removes it after.
class SyncBatchNormScope {
 public:
  explicit SyncBatchNormScope(Communicator& comm);
  ~SyncBatchNormScope();
  SyncBatchNormScope(const SyncBatchNormScope&) = delete;
  SyncBatchNormScope& operator=(const SyncBatchNormScope&) = delete;

 private:
  bool installed_ = false;
};

// `value` summed over the ranks (one allreduce); `value` itself on one rank.
double sum_over_ranks(Communicator& comm, double value);

// The shard's share of the global batch's mean loss: its rows over the batch's, or (a language model,
// whose loss is a mean per token) its tokens over the batch's. The shares sum to 1 over the ranks.
double shard_weight(const Batch& shard, const Batch& global, bool by_tokens);

// The dropout stream of `rank`: a function of (seed, rank), continuing at `stream_position`, so a run
// is reproducible for a given number of ranks.
Rng rank_rng(uint64_t seed, int rank, uint64_t stream_position);

}  // namespace mega

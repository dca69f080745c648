// Data parallelism over MPI (see distributed.h). The only file that includes mpi.h.
#include "recipes/distributed.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "ops/sync_batch_norm.h"

namespace mega {

namespace {

void check_mpi(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  fail("[mpi] ", what, ": ", std::string(text, static_cast<size_t>(length)));
}

// Open MPI's launcher sets it in every rank it starts; a plain run has none and makes no MPI call.
bool launched_by_mpirun() {
  const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
  return size && *size;
}

// Non-padding steps of a batch, both sequences of a pair counted (Batch::tokens).
int64_t mask_tokens(const Batch& batch) {
  double tokens = 0;
  for (const Tensor* mask : {&batch.mask, &batch.pair_mask}) {
    if (!mask->defined()) continue;
    const Tensor m = mask->to(DType::F64);
    const double* v = m.data<double>();
    for (int64_t i = 0; i < m.numel(); ++i) tokens += v[i];
  }
  return static_cast<int64_t>(tokens);
}

}  // namespace

Communicator& Communicator::world() {
  static Communicator instance;
  return instance;
}

Communicator::Communicator() {
  if (!launched_by_mpirun()) return;
  int provided = 0;
  // OpenMP threads compute; only the main thread calls MPI.
  check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  initialised_ = true;
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  check_mpi(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
  check_mpi(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
}

Communicator::~Communicator() {
  int finalized = 0;
  if (initialised_ && MPI_Finalized(&finalized) == MPI_SUCCESS && !finalized) MPI_Finalize();
}

void Communicator::allreduce_sum(float* data, size_t count) {
  if (size_ == 1) return;
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(count), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
            "MPI_Allreduce");
}

void Communicator::allreduce_sum(double* data, size_t count) {
  if (size_ == 1) return;
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(count), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD),
            "MPI_Allreduce");
}

void Communicator::barrier() {
  if (size_ == 1) return;
  check_mpi(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
}

void Communicator::broadcast(std::string& bytes, int root) {
  if (size_ == 1) return;
  int64_t length = static_cast<int64_t>(bytes.size());
  check_mpi(MPI_Bcast(&length, 1, MPI_INT64_T, root, MPI_COMM_WORLD), "MPI_Bcast");
  bytes.resize(static_cast<size_t>(length));
  check_mpi(MPI_Bcast(bytes.data(), static_cast<int>(length), MPI_CHAR, root, MPI_COMM_WORLD), "MPI_Bcast");
}

void Communicator::abort(int code) {
  if (initialised_) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

Communicator::Pending Communicator::start_allreduce_sum(float* data, size_t count) {
  Pending pending;
  if (size_ == 1) return pending;
  auto* request = new MPI_Request;
  check_mpi(MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(count), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                           request),
            "MPI_Iallreduce");
  pending.request = request;
  return pending;
}

void Communicator::wait(Pending& pending) {
  if (!pending.request) return;
  auto* request = static_cast<MPI_Request*>(pending.request);
  const int code = MPI_Wait(request, MPI_STATUS_IGNORE);
  delete request;
  pending.request = nullptr;
  check_mpi(code, "MPI_Wait");
}

ShardRange shard_rows(int64_t rows, int rank, int world_size) {
  return {rows * rank / world_size, rows * (rank + 1) / world_size};
}

Batch shard_batch(const Batch& batch, int rank, int world_size) {
  if (world_size == 1) return batch;
  const ShardRange range = shard_rows(batch.ids.size(0), rank, world_size);
  MEGA_CHECK(range.end > range.begin, "[distributed] a batch of ", batch.ids.size(0), " rows cannot be split over ",
             world_size, " ranks: raise train.batch_size");
  const auto rows = [&](const Tensor& t) { return t.defined() ? t.narrow0(range.begin, range.end).clone() : t; };
  Batch shard;
  shard.ids = rows(batch.ids);
  shard.mask = rows(batch.mask);
  shard.labels = rows(batch.labels);
  shard.pair_ids = rows(batch.pair_ids);
  shard.pair_mask = rows(batch.pair_mask);
  if (!batch.indices.empty())
    shard.indices.assign(batch.indices.begin() + range.begin, batch.indices.begin() + range.end);
  shard.tokens = mask_tokens(shard);
  return shard;
}

std::vector<std::vector<size_t>> gradient_buckets(const std::vector<int64_t>& numels, size_t bucket_bytes) {
  std::vector<std::vector<size_t>> buckets;
  size_t bytes = 0;
  for (size_t i = numels.size(); i-- > 0;) {
    const size_t size = static_cast<size_t>(numels[i]) * sizeof(float);
    if (buckets.empty() || (bytes > 0 && bytes + size > bucket_bytes)) {
      buckets.emplace_back();
      bytes = 0;
    }
    buckets.back().push_back(i);
    bytes += size;
  }
  return buckets;
}

GradientAllreduce::GradientAllreduce(std::vector<Var> params, Communicator& comm, size_t bucket_bytes)
    : params_(std::move(params)), comm_(comm) {
  std::vector<int64_t> numels;
  for (const Var& p : params_) {
    MEGA_CHECK(p.value().dtype() == DType::F32, "[distributed] gradients are reduced as F32; a parameter is ",
               dtype_name(p.value().dtype()));
    numels.push_back(p.value().numel());
  }
  buckets_ = gradient_buckets(numels, bucket_bytes);
  for (const std::vector<size_t>& bucket : buckets_) {
    size_t count = 0;
    for (size_t i : bucket) count += static_cast<size_t>(numels[i]);
    buffers_.emplace_back(count);
  }
}

double GradientAllreduce::reduce(double divisor) {
  std::vector<Communicator::Pending> pending(buckets_.size());
  for (size_t b = 0; b < buckets_.size(); ++b) {
    float* out = buffers_[b].data();
    for (size_t i : buckets_[b]) {
      const Var& p = params_[i];
      const size_t n = static_cast<size_t>(p.value().numel());
      if (p.grad().defined()) {
        const Tensor g = p.grad().to(DType::F32);
        std::memcpy(out, g.data<float>(), n * sizeof(float));
      } else {
        std::fill(out, out + n, 0.0f);
      }
      out += n;
    }
    pending[b] = comm_.start_allreduce_sum(buffers_[b].data(), buffers_[b].size());
  }
  const auto started = std::chrono::steady_clock::now();
  const float scale = static_cast<float>(1.0 / divisor);
  for (size_t b = 0; b < buckets_.size(); ++b) {
    comm_.wait(pending[b]);
    const float* in = buffers_[b].data();
    for (size_t i : buckets_[b]) {
      const Var& p = params_[i];
      Tensor g = Tensor::empty(p.value().shape(), DType::F32);
      float* dst = g.data<float>();
      const size_t n = static_cast<size_t>(p.value().numel());
      for (size_t k = 0; k < n; ++k) dst[k] = in[k] * scale;
      p.set_grad(std::move(g));
      in += n;
    }
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
}

SyncBatchNormScope::SyncBatchNormScope(Communicator& comm) : installed_(comm.size() > 1) {
  if (installed_)
    set_sync_batch_norm_sum([&comm](std::vector<double>& values) { comm.allreduce_sum(values.data(), values.size()); });
}

SyncBatchNormScope::~SyncBatchNormScope() {
  if (installed_) set_sync_batch_norm_sum(nullptr);
}

double sum_over_ranks(Communicator& comm, double value) {
  comm.allreduce_sum(&value, 1);
  return value;
}

double shard_weight(const Batch& shard, const Batch& global, bool by_tokens) {
  if (!by_tokens) return static_cast<double>(shard.ids.size(0)) / static_cast<double>(global.ids.size(0));
  return static_cast<double>(mask_tokens(shard)) / static_cast<double>(mask_tokens(global));
}

Rng rank_rng(uint64_t seed, int rank, uint64_t stream_position) {
  Rng rng(seed + 0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(rank));  // rank 0: the one-process stream
  rng.set_stream_position(stream_position);
  return rng;
}

}  // namespace mega

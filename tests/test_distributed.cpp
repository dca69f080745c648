// The single-process pieces of data parallelism (recipes/distributed.h); the MPI jobs themselves are
// tests/mpi (label mpi).
#include <gtest/gtest.h>

#include "core/error.h"
#include "recipes/distributed.h"

namespace mega {
namespace {

TEST(Distributed, WithoutMpirunTheCommunicatorHasOneRankAndReducesNothing) {
  Communicator& comm = Communicator::world();
  EXPECT_EQ(comm.size(), 1);
  EXPECT_EQ(comm.rank(), 0);
  EXPECT_TRUE(comm.is_root());
  std::vector<float> values = {1.5f, -2.0f};
  comm.allreduce_sum(values.data(), values.size());
  EXPECT_EQ(values, (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(sum_over_ranks(comm, 3.25), 3.25);
  std::string bytes = "kept";
  comm.broadcast(bytes);
  EXPECT_EQ(bytes, "kept");
  comm.barrier();
}

TEST(Distributed, BucketsFillFromTheLastParameterAndABigOneStandsAlone) {
  // 4-byte floats, buckets of 40 bytes: 10 floats each.
  const auto buckets = gradient_buckets({4, 20, 3, 3, 5}, 40);
  ASSERT_EQ(buckets.size(), 4u);
  EXPECT_EQ(buckets[0], (std::vector<size_t>{4, 3}));  // 5 + 3 floats; the next 3 would overflow
  EXPECT_EQ(buckets[1], (std::vector<size_t>{2}));     // 3, then 20 would overflow
  EXPECT_EQ(buckets[2], (std::vector<size_t>{1}));     // 20 floats, over the size: a bucket of its own
  EXPECT_EQ(buckets[3], (std::vector<size_t>{0}));
}

TEST(Distributed, ShardsSplitTheRowsOfAGlobalBatchInRankOrder) {
  EXPECT_EQ(shard_rows(16, 0, 2).begin, 0);
  EXPECT_EQ(shard_rows(16, 0, 2).end, 8);
  EXPECT_EQ(shard_rows(16, 1, 2).begin, 8);
  EXPECT_EQ(shard_rows(16, 1, 2).end, 16);
  EXPECT_EQ(shard_rows(5, 2, 3).begin, 3);  // the short last batch: 1, 2, 2 rows
  EXPECT_EQ(shard_rows(5, 2, 3).end, 5);

  Batch global;
  global.ids = Tensor::from(std::vector<int64_t>{1, 2, 0, 3, 0, 0, 4, 5, 6}, {3, 3});
  global.mask = Tensor::from(std::vector<float>{1, 1, 0, 1, 0, 0, 1, 1, 1}, {3, 3});
  global.labels = Tensor::from(std::vector<int64_t>{7, 8, 9}, {3});
  global.indices = {10, 11, 12};
  global.tokens = 6;
  const Batch last = shard_batch(global, 1, 2);  // rows [1, 3)
  ASSERT_EQ(last.ids.size(0), 2);
  EXPECT_EQ(last.ids.data<int64_t>()[0], 3);
  EXPECT_EQ(last.labels.data<int64_t>()[1], 9);
  EXPECT_EQ(last.indices, (std::vector<int64_t>{11, 12}));
  EXPECT_EQ(last.tokens, 4);
  EXPECT_FALSE(last.pair_ids.defined());
  EXPECT_DOUBLE_EQ(shard_weight(last, global, false), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(shard_weight(last, global, true), 4.0 / 6.0);
  const Batch first = shard_batch(global, 0, 2);
  EXPECT_DOUBLE_EQ(shard_weight(first, global, false) + shard_weight(last, global, false), 1.0);
  EXPECT_DOUBLE_EQ(shard_weight(first, global, true), 2.0 / 6.0);
  EXPECT_THROW(shard_batch(global, 0, 4), Error);  // 3 rows over 4 ranks leaves rank 0 none
}

TEST(Distributed, OneRankGradientReductionOnlyScales) {
  Var a(Tensor::from(std::vector<float>{1, 2}, {2}), true), b(Tensor::from(std::vector<float>{3}, {1}), true);
  a.set_grad(Tensor::from(std::vector<float>{4, 6}, {2}));  // b has none: it counts as zeros
  GradientAllreduce reduction({a, b}, Communicator::world(), 4);
  EXPECT_EQ(reduction.buckets().size(), 2u);
  EXPECT_GE(reduction.reduce(2.0), 0.0);
  EXPECT_EQ(a.grad().data<float>()[0], 2.0f);
  EXPECT_EQ(a.grad().data<float>()[1], 3.0f);
  ASSERT_TRUE(b.grad().defined());
  EXPECT_EQ(b.grad().data<float>()[0], 0.0f);
}

TEST(Distributed, RankZeroKeepsTheOneProcessDropoutStream) {
  Rng one(7);
  one.set_stream_position(5);
  Rng zero = rank_rng(7, 0, 5), first = rank_rng(7, 1, 5);
  EXPECT_EQ(zero.stream_position(), 5u);
  const uint64_t stream = one.next_stream();
  EXPECT_EQ(stream, zero.next_stream());
  EXPECT_EQ(one.uniform(stream, 3), zero.uniform(stream, 3));
  EXPECT_NE(one.uniform(stream, 3), first.uniform(first.next_stream(), 3));
}

}  // namespace
}  // namespace mega

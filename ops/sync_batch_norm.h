// SyncBatchNorm (HF's normalization_type syncbatchnorm): batch_norm (ops/norm.h) whose training
// statistics are those of the batch of every data-parallel rank. Per feature, (sum, sum of squares) and
// the count are summed over the ranks by the hook in one call in forward, and (sum g xhat, sum g) in one
// call in backward; the weight and bias gradients stay this rank's (the gradient allreduce sums them).
// Without a hook (one process) it is batch_norm. Implemented beside batch_norm in ops/norm.cpp.
#pragma once
#include <functional>
#include <vector>

#include "ops/norm.h"

namespace mega {

using BatchNormSum = std::function<void(std::vector<double>& values)>;  // sums in place over the ranks
void set_sync_batch_norm_sum(BatchNormSum sum);  // nullptr: none
Var sync_batch_norm(const Var& x, const Var& weight, const Var& bias, BatchNormState& state, bool training,
                    double momentum = 0.1, double eps = 1e-5);

}  // namespace mega

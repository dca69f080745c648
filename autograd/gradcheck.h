// The one gradient check every op test uses: the analytic vector-Jacobian product of f against central
// differences, objective sum(f(x) * w) with a fixed random cotangent w. Runs in F64 by default; ops
// whose fast path is F32-only may check in F32 with a wider step and tolerances set in their test.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "autograd/variable.h"

namespace mega {

struct GradcheckOptions {
  DType dtype = DType::F64;  // floating inputs are converted to this; integer inputs are passed as is
  double eps = 1e-6;         // central-difference step
  double atol = 1e-6;        // pass when |analytic - numeric| <= atol + rtol * |numeric|
  double rtol = 1e-4;
  std::vector<int> skip;     // indices of floating inputs not to differentiate (masks, constants)
  uint64_t seed = 1234;      // for the cotangent
};

struct GradcheckReport {
  bool ok = true;
  double worst_excess = 0;  // largest |a - n| - (atol + rtol |n|); > 0 means failure
  std::string message;      // the worst element: input, index, analytic, numeric
};

using GradcheckFn = std::function<Var(const std::vector<Var>&)>;

GradcheckReport gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});

}  // namespace mega

// `mega train-mlp`: fits an MLP to a generated regression task (y = sin(3 x0) cos(2 x1)) with SGD and
// momentum, printing the loss. The smallest end-to-end exercise of tensors, ops and autograd.
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>

#include "nn/mlp.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"
#include "recipes/commands.h"

namespace po = boost::program_options;

namespace mega::cli {

int train_mlp(const Args& args) {
  int steps = 2000, hidden = 64, points = 512;
  double lr = 0.05;
  int64_t seed = 0;  // signed, so that a negative seed is refused rather than wrapped
  po::options_description options("mega train-mlp options");
  options.add_options()("help,h", "show this help")("steps", po::value(&steps)->default_value(steps),
                                                    "SGD steps")(
      "hidden", po::value(&hidden)->default_value(hidden), "hidden width")(
      "lr", po::value(&lr)->default_value(lr), "learning rate")("seed", po::value(&seed)->default_value(seed),
                                                                "random seed");
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(options).run(), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  // A smoke run on 512 points: widths past a few thousand only allocate (hidden^2 weights).
  MEGA_CHECK(seed >= 0, "--seed must be 0 or more, got ", seed);
  MEGA_CHECK(steps >= 1, "--steps must be 1 or more, got ", steps);
  MEGA_CHECK(hidden >= 1 && hidden <= 4096, "--hidden must be in 1..4096, got ", hidden);
  MEGA_CHECK(lr > 0 && std::isfinite(lr), "--lr must be a finite number > 0, got ", lr);

  Rng rng(static_cast<uint64_t>(seed));
  Tensor x = Tensor::empty({points, 2}), y = Tensor::empty({points, 1});
  uint64_t data_stream = rng.next_stream();
  for (int i = 0; i < points; ++i) {
    float a = 2 * rng.uniform(data_stream, i, 0) - 1, b = 2 * rng.uniform(data_stream, i, 1) - 1;
    x.data<float>()[2 * i] = a;
    x.data<float>()[2 * i + 1] = b;
    y.data<float>()[i] = std::sin(3 * a) * std::cos(2 * b);
  }
  Mlp mlp({2, hidden, hidden, 1}, Activation::Tanh, rng);
  std::vector<Var> params = mlp.parameters();
  std::vector<Tensor> velocity;
  for (const Var& p : params) velocity.push_back(Tensor::zeros(p.shape()));

  auto start = std::chrono::steady_clock::now();
  double loss_value = 0;
  for (int step = 1; step <= steps; ++step) {
    Var loss = mean(square(mlp.forward(Var(x)) - Var(y)));
    for (const Var& p : params) p.zero_grad();
    loss.backward();
    loss_value = loss.item();
    for (size_t i = 0; i < params.size(); ++i) {  // SGD with momentum 0.9
      float* w = params[i].value_mut().data<float>();
      float* v = velocity[i].data<float>();
      const float* g = params[i].grad().data<float>();
      for (int64_t j = 0; j < params[i].numel(); ++j) {
        v[j] = 0.9f * v[j] + g[j];
        w[j] -= static_cast<float>(lr) * v[j];
      }
    }
    if (step == 1 || step % 200 == 0) std::printf("step %5d  loss %.6f\n", step, loss_value);
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("final loss %.6f after %d steps (%.2f s, %.0f steps/s)\n", loss_value, steps, seconds,
              steps / seconds);
  return loss_value < 1e-2 ? 0 : 1;
}

}  // namespace mega::cli

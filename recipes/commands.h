// The subcommands of `mega`, one file each (recipes/cmd_<name>.cpp). Each takes the arguments after its
// name and returns the process exit code.
#pragma once
#include <string>
#include <vector>

namespace mega::cli {

using Args = std::vector<std::string>;

int version(const Args& args);
int train_mlp(const Args& args);
int bench(const Args& args);
int validate(const Args& args);
int listops_data(const Args& args);
int lra_data(const Args& args);
int pathfinder_data(const Args& args);
int lra_table(const Args& args);
int hf_run(const Args& args);
int generate(const Args& args);
int train(const Args& args);
int eval(const Args& args);
int predict(const Args& args);
int report(const Args& args);
int lm_baselines(const Args& args);

// What `mega version` prints (also the machine section of `mega report`).
std::string version_text();

}  // namespace mega::cli

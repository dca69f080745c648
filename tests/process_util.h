// Test helper: the `mega` binary (MEGA_BINARY) run as a user runs it, through the shell, with what it
// prints captured. One copy for every test that drives a command end to end.
#pragma once
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace mega::testing {

struct CommandResult {
  int exit_code = -1;  // 128 + signal when killed, as a shell reports it
  std::string output;  // stdout and stderr together
};

// `mega ARGUMENTS` with `environment` ("VAR=value ..." or a wrapper such as "timeout 60") before it.
// OpenMP threads wait passively, since CTest runs test processes side by side on few cores. The output
// goes to `log` and is read back.
inline CommandResult run_mega_command(const std::string& arguments, const std::filesystem::path& log,
                                      const std::string& environment = "") {
  const std::string command = "OMP_WAIT_POLICY=PASSIVE " + environment + " " + std::string(MEGA_BINARY) + " " +
                              arguments + " > " + log.string() + " 2>&1";
  const int status = std::system(command.c_str());
  CommandResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  result.output = text.str();
  return result;
}

}  // namespace mega::testing

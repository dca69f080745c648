// The shared step of every subcommand that takes Boost.Program_options flags: parse, answer --help,
// then fill the bound variables.
#pragma once
#include <boost/program_options.hpp>

#include "recipes/commands.h"

namespace mega::cli {

// Parses `args` into `vm`. With --help among them it prints `description` and returns false (the command
// then exits 0); otherwise it fills the variables bound to the options (po::notify) and returns true.
bool parse_command_options(const Args& args, const boost::program_options::options_description& description,
                           boost::program_options::variables_map& vm);

}  // namespace mega::cli

#include "recipes/cli_options.h"

#include <iostream>

namespace mega::cli {

bool parse_command_options(const Args& args, const boost::program_options::options_description& description,
                           boost::program_options::variables_map& vm) {
  namespace po = boost::program_options;
  po::store(po::command_line_parser(args).options(description).run(), vm);
  if (vm.count("help")) {
    std::cout << description;
    return false;
  }
  po::notify(vm);
  return true;
}

}  // namespace mega::cli

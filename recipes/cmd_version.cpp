// `mega version`: what this binary is and what it runs on.
#include <fftw3.h>
#include <omp.h>

#include <iostream>
#include <oneapi/dnnl/dnnl.hpp>
#include <sstream>

#include "core/threading.h"
#include "recipes/commands.h"

namespace mega::cli {

static const char* isa_name(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::sse41: return "sse4.1";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return "other";
  }
}

std::string version_text() {
  const dnnl_version_t* dv = dnnl_version();
  std::ostringstream out;
  out << "mega " << MEGA_VERSION << " (commit " << MEGA_GIT_COMMIT << ")\n"
      << "compiler: " << __VERSION__ << ", C++ " << __cplusplus << "\n"
      << "oneDNN: " << dv->major << "." << dv->minor << "." << dv->patch << " (" << dv->hash << ")\n"
      << "FFTW: " << fftwf_version << "\n"
      << "CPU ISA (oneDNN): " << isa_name(dnnl::get_effective_cpu_isa()) << "\n"
      << "threads: " << num_threads() << " of " << omp_get_num_procs() << " cores\n";
  return out.str();
}

int version(const Args& args) {
  if (!args.empty()) {
    std::cerr << "usage: mega version\n";
    return 2;
  }
  std::cout << version_text();
  return 0;
}

}  // namespace mega::cli

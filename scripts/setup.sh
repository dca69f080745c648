#!/usr/bin/env bash
# Installs the Debian packages the build needs when run as root; otherwise prints the exact command.
set -euo pipefail
packages=(cmake make g++ pkg-config git libdnnl-dev libfftw3-dev libboost-program-options-dev libprotobuf-dev protobuf-compiler
          libyaml-cpp-dev libgtest-dev nlohmann-json3-dev
          zlib1g-dev   # gzip IDX files (MNIST family)
          libpng-dev   # Pathfinder images
          libsentencepiece-dev   # subword tokenizers (data/tokenizer.cpp)
          libopenmpi-dev openmpi-bin   # data-parallel training (recipes/distributed.cpp, mpirun)
          ocl-icd-opencl-dev)  # dnnl-config.cmake find_package(OpenCL)s even for the CPU engine
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  echo "Installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "Missing Debian packages. Run as root:" >&2
  echo "  apt-get install -y ${missing[*]}" >&2
  exit 1
fi

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian packages dptrain builds and tests with (DESIGN.md "Dependencies").
# Idempotent: only missing packages are installed. PyTorch (python3-torch) is the reference the
# checkpoint test loads checkpoints into; matplotlib draws scripts/dpt-plot's and the benchmarks'
# pictures. --bench is accepted for compatibility (everything is in the default set).
# The CUDA toolkit, cuDNN and NCCL are not Debian packages this script installs: where they are
# present (/usr/local/cuda), `cmake --preset release` builds the CUDA backend as well.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libopenmpi-dev openmpi-bin
  libhdf5-dev hdf5-tools
  libdnnl-dev ocl-icd-opencl-dev opencl-c-headers libopenblas-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev libtomlplusplus-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
  dataset-fashion-mnist
  python3 python3-numpy python3-h5py python3-torch python3-matplotlib
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
[[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"

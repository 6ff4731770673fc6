#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian packages dptrain builds, tests and benchmarks with (DESIGN.md
# "Dependencies"). Idempotent: only missing packages are installed. One set serves all three: the
# benchmarks (bench/) need nothing the tests do not (PyTorch, h5py and numpy are the reference the
# checkpoint test loads checkpoints into, matplotlib draws scripts/dpt-plot's and the benchmarks'
# pictures, iproute2's ip and tc build launch/emulated-cluster's nodes for its test).
# The CUDA toolkit, cuDNN and NCCL are not Debian packages this script installs: where they are
# present (/usr/local/cuda), `cmake --preset release` builds the CUDA backend as well.
# Usage: scripts/install-deps.sh [--list]   (--list: print the packages, install nothing)
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
  iproute2
)

[[ $# -le 1 ]] || { echo "install-deps: one argument at most (usage: scripts/install-deps.sh [--list])" >&2; exit 2; }
case "${1:-}" in
  "") ;;
  --list) printf '%s\n' "${packages[@]}"; exit 0 ;;
  *) echo "install-deps: unknown argument '$1' (usage: scripts/install-deps.sh [--list])" >&2; exit 2 ;;
esac

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
